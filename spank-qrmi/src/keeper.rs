//! The job's keeper: one small process per job on each node where the job holds QPUs, so the
//! plugin needs no job epilog (slurmd runs a SPANK epilog for every job on a node as soon as
//! one loaded plugin has one). Forked twice from slurmstepd when a step acquires (so no Slurm
//! process is its parent), and from slurmd when it starts with leases left by a reboot. It
//! waits while a step of the job still runs here; when none does, it asks Slurm (`squeue`, a
//! fresh process; libslurm's slurm_load_job where squeue is not installed, as on a Debian node
//! with slurmd but not slurm-client) whether the job still runs, and releases the job's QPUs
//! here once it has ended, then exits. A batch job's QPUs are released by its batch step's exit
//! already; the keeper covers srun and salloc jobs, other nodes of a job, and a slurmstepd
//! killed outright.
//! The process primitives it needs (fork, setsid, descriptors, signals) are the crate's only
//! `unsafe`.
use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use spank::host::ProcessId;

use qrmi_core::lease::{LeaseState, LeaseStore, Role};
use qrmi_core::site::Site;

/// First look soon after the last step ended; then less often while the job runs on
/// (between salloc's steps, or while the controller is away).
const FIRST_LOOK: Duration = Duration::from_secs(1);
const LONGEST_WAIT: Duration = Duration::from_secs(20);
const SQUEUE_TIMEOUT: Duration = Duration::from_secs(15);

/// Starts the job's keeper unless one runs already. Never fails the caller: without a keeper
/// the leases stay until the batch step's exit or the next slurmd start releases them.
pub fn ensure(site: &Site, store: &LeaseStore, job_id: u32) {
    if !store.live(job_id, Role::Keeper).is_empty() {
        return;
    }
    if let Err(e) = spawn(site, store, job_id) {
        tracing::error!("job {job_id}: cannot start the process that releases its QPUs: {e}");
    }
}

/// When slurmd starts: a keeper for every job that still holds a lease here and has neither
/// a running step nor a keeper (after a reboot, or a keeper that was killed).
pub fn reclaim_orphans(site: &Site, store: &LeaseStore) {
    let Ok(jobs) = store.jobs_holding() else {
        return;
    };
    for job_id in jobs {
        if store.live(job_id, Role::Step).is_empty() {
            ensure(site, store, job_id);
        }
    }
}

fn spawn(site: &Site, store: &LeaseStore, job_id: u32) -> Result<(), String> {
    // SAFETY: fork; the child only calls setsid and fork and leaves with _exit, the grandchild
    // runs the keeper and leaves with _exit (Slurm's log lock is fork-safe: it installs
    // pthread_atfork handlers, and glibc's malloc is too).
    let middle = unsafe { libc::fork() };
    if middle < 0 {
        return Err(format!("fork: {}", std::io::Error::last_os_error()));
    }
    if middle == 0 {
        // SAFETY: setsid/fork/_exit in the freshly forked child.
        unsafe {
            libc::setsid();
            if libc::fork() != 0 {
                libc::_exit(0);
            }
        }
        let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            detach();
            run(site, store, job_id)
        }))
        .unwrap_or(70);
        // SAFETY: leave without running the forked process's atexit handlers.
        unsafe { libc::_exit(code) }
    }
    let mut status = 0;
    // SAFETY: reaps the short-lived middle child (ECHILD if slurmstepd reaped it first).
    unsafe { libc::waitpid(middle, &mut status, 0) };
    Ok(())
}

/// Cuts the keeper loose from the Slurm process it was forked from: no inherited pipes or
/// sockets (srun waits for the end of its tasks' output, slurmd's port must stay free), only
/// append-mode regular files are kept (the node's log), the standard streams on /dev/null,
/// default signal handling, its own name, and out of the job's cgroup if it is in one.
fn detach() {
    if let Ok(entries) = std::fs::read_dir("/proc/self/fd") {
        let fds: Vec<i32> = entries
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse().ok())
            .filter(|&fd| fd > 2)
            .collect();
        for fd in fds {
            if !is_append_regular_file(fd) {
                // SAFETY: closing a descriptor this process owns.
                unsafe { libc::close(fd) };
            }
        }
    }
    // SAFETY: plain system calls on this process's own state.
    unsafe {
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
        if null >= 0 {
            for fd in 0..3 {
                libc::dup2(null, fd);
            }
            if null > 2 {
                libc::close(null);
            }
        }
        let mut all: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut all);
        libc::sigprocmask(libc::SIG_SETMASK, &all, std::ptr::null_mut());
        for signal in [libc::SIGTERM, libc::SIGINT, libc::SIGQUIT, libc::SIGCHLD] {
            libc::signal(signal, libc::SIG_DFL);
        }
        libc::signal(libc::SIGHUP, libc::SIG_IGN);
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
        libc::prctl(libc::PR_SET_NAME, c"qrmi-keeper".as_ptr());
    }
    leave_job_cgroup();
}

fn is_append_regular_file(fd: i32) -> bool {
    // SAFETY: fstat/fcntl on a descriptor number; a closed one just fails.
    unsafe {
        let mut st: libc::stat = std::mem::zeroed();
        if libc::fstat(fd, &mut st) != 0 || st.st_mode & libc::S_IFMT != libc::S_IFREG {
            return false;
        }
        let flags = libc::fcntl(fd, libc::F_GETFL);
        flags >= 0 && flags & libc::O_APPEND != 0
    }
}

/// With cgroup v2 (proctrack/cgroup), a process left in a job's cgroup is killed with the
/// step; the keeper must outlive it, so it moves to the root cgroup (root may).
fn leave_job_cgroup() {
    let Ok(cgroup) = std::fs::read_to_string("/proc/self/cgroup") else {
        return;
    };
    let in_job = cgroup
        .lines()
        .filter_map(|l| l.strip_prefix("0::"))
        .any(|path| path.contains("/job_"));
    if in_job {
        let _ = std::fs::write(
            "/sys/fs/cgroup/cgroup.procs",
            std::process::id().to_string(),
        );
    }
}

/// What Slurm says of a job.
#[derive(Debug, PartialEq, Eq)]
pub enum JobState {
    /// It runs (or is starting, suspended, …): its leases may still be used.
    Active,
    /// It has ended, or it is no longer known, or it went back to pending (requeued).
    Ended(String),
    /// No answer (controller down, squeue missing): ask again later.
    Unknown(String),
}

/// Reads `squeue -h -j JOB -o %T`'s outcome.
pub fn job_state_from_squeue(success: bool, stdout: &str, stderr: &str) -> JobState {
    if !success {
        if stderr.contains("Invalid job id") {
            return JobState::Ended("no longer known to Slurm".to_string());
        }
        return JobState::Unknown(stderr.trim().chars().take(200).collect());
    }
    let state = stdout.lines().next().unwrap_or("").trim();
    match state {
        "" => JobState::Ended("no longer in the queue".to_string()),
        "RUNNING" | "CONFIGURING" | "SUSPENDED" | "RESIZING" | "STOPPED" | "SIGNALING" => {
            JobState::Active
        }
        other => JobState::Ended(other.to_string()),
    }
}

fn squeue_state(job_id: u32) -> JobState {
    let child = Command::new("squeue")
        .args(["-h", "-j", &job_id.to_string(), "-o", "%T"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(child) => child,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return match spank::slurm::job_runs(job_id) {
                Ok(true) => JobState::Active,
                Ok(false) => JobState::Ended("not running, says slurmctld".to_string()),
                Err(e) => JobState::Unknown(e),
            };
        }
        Err(e) => return JobState::Unknown(format!("cannot run squeue: {e}")),
    };
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if started.elapsed() < SQUEUE_TIMEOUT => {
                std::thread::sleep(Duration::from_millis(50))
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return JobState::Unknown(format!(
                    "squeue gave no answer in {}s",
                    SQUEUE_TIMEOUT.as_secs()
                ));
            }
        }
    };
    let mut stdout = String::new();
    let mut stderr = String::new();
    if let Some(mut out) = child.stdout.take() {
        let _ = out.by_ref().take(4096).read_to_string(&mut stdout);
    }
    if let Some(mut err) = child.stderr.take() {
        let _ = err.by_ref().take(4096).read_to_string(&mut stderr);
    }
    job_state_from_squeue(status.success(), &stdout, &stderr)
}

fn run(site: &Site, store: &LeaseStore, job_id: u32) -> i32 {
    let Some(me) = ProcessId::current() else {
        return 1;
    };
    if store.register(job_id, Role::Keeper, me).is_err() {
        return 1;
    }
    // Two steps starting at once may each start one: the older keeper stays.
    let oldest = store
        .live(job_id, Role::Keeper)
        .into_iter()
        .min_by_key(|p| (p.start_ticks, p.pid));
    if oldest.is_some_and(|oldest| oldest != me) {
        store.unregister(job_id, Role::Keeper, me);
        return 0;
    }
    let code = keep(site, store, job_id);
    store.unregister(job_id, Role::Keeper, me);
    code
}

fn keep(site: &Site, store: &LeaseStore, job_id: u32) -> i32 {
    let mut wait = FIRST_LOOK;
    let mut said_unknown = false;
    loop {
        std::thread::sleep(wait);
        // The state directory gone or the leases released (the batch step's exit): done.
        match store.leases(job_id) {
            Ok(leases) if leases.iter().any(|l| l.state != LeaseState::Released) => {}
            _ => return 0,
        }
        if !store.live(job_id, Role::Step).is_empty() {
            wait = FIRST_LOOK;
            continue;
        }
        match squeue_state(job_id) {
            JobState::Active => {}
            JobState::Ended(why) => {
                tracing::debug!("job {job_id}: {why}: releasing its QPUs");
                return match site.release_job_here(job_id) {
                    Ok(_) => 0,
                    Err(e) => {
                        tracing::error!("{e}");
                        1
                    }
                };
            }
            JobState::Unknown(why) => {
                if !said_unknown {
                    tracing::warn!(
                        "job {job_id}: cannot ask Slurm whether it still runs ({why}); its QPUs stay held until it answers"
                    );
                    said_unknown = true;
                }
            }
        }
        wait = (wait * 2).min(LONGEST_WAIT);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn squeue_answers_are_read_as_slurm_means_them() {
        assert_eq!(
            job_state_from_squeue(true, "RUNNING\n", ""),
            JobState::Active
        );
        assert_eq!(
            job_state_from_squeue(true, "SUSPENDED\n", ""),
            JobState::Active
        );
        assert_eq!(
            job_state_from_squeue(true, "COMPLETING\n", ""),
            JobState::Ended("COMPLETING".into())
        );
        assert_eq!(
            job_state_from_squeue(true, "PENDING\n", ""),
            JobState::Ended("PENDING".into()),
            "requeued: it no longer runs here"
        );
        assert!(matches!(
            job_state_from_squeue(true, "", ""),
            JobState::Ended(_)
        ));
        assert!(matches!(
            job_state_from_squeue(
                false,
                "",
                "slurm_load_jobs error: Invalid job id specified\n"
            ),
            JobState::Ended(_)
        ));
        assert!(matches!(
            job_state_from_squeue(
                false,
                "",
                "slurm_load_jobs error: Unable to contact slurm controller (connect failure)"
            ),
            JobState::Unknown(_)
        ));
    }
}
