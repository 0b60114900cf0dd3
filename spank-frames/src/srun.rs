//! srun / sbatch / salloc side (local and allocator contexts), running as the submitting user:
//! make sure the frame directory can be used before the job is queued, and record each call
//! that makes a job (its command line, so `frames resubmit` can submit only the missing frames
//! later) together with what became of it.
//!
//! A submission counts only once Slurm accepted it (frames-model). What each client lets a
//! plugin learn (Slurm 22.05 to 26.05 source): sbatch (allocator context) offers only the uid
//! and gid and never exports its job id, and its exit hook runs the same way after a refusal
//! and a success; salloc sets SLURM_JOB_ID in its own environment once it holds an allocation
//! and runs the exit hook on every exit; srun knows the job id in `local_user_init`, which it
//! runs only after it got an allocation. Hence:
//! - sbatch: a `provisional` submission whose id goes into the job's environment
//!   (`spank_job_control_setenv`, which reaches the job as SLURM_SPANK_FRAMES_SUBMISSION even
//!   with --export=NONE); the job's records name it, which links it to its job id. Until
//!   then the reader asks the queue and, past a grace period, counts it as rejected.
//! - salloc: `provisional` with the id exported likewise; at exit `accepted` with the job id,
//!   or `rejected` when no allocation was made.
//! - srun that makes its own job: written in local_user_init as `accepted` with the job id;
//!   an srun that got no job writes nothing. An srun inside an existing job makes a step of
//!   that job, not a submission.
use std::path::Path;

use frames_core::layout::Layout;
use frames_core::options::FrameOptions;
use frames_core::submission::{SUBMISSION_ENV, Submission, SubmissionState};
use spank::{Context, Error, Result, Spank};

use crate::sys;

/// Creates DIR (as the user: this process is the user's own srun/sbatch) and checks that the
/// user can write there and owns the frame state. Errors name the directory and the reason.
pub fn prepare_dir(dir: &Path) -> Result<Layout> {
    std::fs::create_dir_all(dir)
        .map_err(|e| Error::new(format!("cannot create '{}': {e}", dir.display())))?;
    writable(dir)?;
    let layout = Layout::new(dir);
    // A frame dir another user opened up (mode 0777) still holds that user's .frames: refuse
    // it here with the reason, not later in slurmstepd with a failed capture or record.
    layout
        .create_private_dirs(sys::uid())
        .map_err(|e| Error::new(format!("cannot use '{}': {e}", dir.display())))?;
    Ok(layout)
}

fn writable(dir: &Path) -> Result<()> {
    if dir.as_os_str().as_encoded_bytes().contains(&0) {
        return Err(Error::new("the directory path contains a NUL byte"));
    }
    if let Err(err) = sys::can_write_dir(dir) {
        let owner = std::fs::metadata(dir)
            .map(|m| {
                format!(
                    " (owned by uid {})",
                    std::os::unix::fs::MetadataExt::uid(&m)
                )
            })
            .unwrap_or_default();
        return Err(Error::new(format!(
            "'{}'{owner} is not writable by you: {err}; use a frame directory of your own",
            dir.display()
        )));
    }
    Ok(())
}

fn own_command_line() -> Vec<String> {
    std::fs::read("/proc/self/cmdline")
        .map(|raw| {
            raw.split(|&b| b == 0)
                .filter(|w| !w.is_empty())
                .map(|w| String::from_utf8_lossy(w).into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// A submission this process completes once it knows the outcome.
pub enum Pending {
    /// An srun that makes its own job: written once the job id is known.
    Srun {
        layout: Layout,
        submission: Box<Submission>,
    },
    /// A salloc: written provisional; accepted or rejected at exit. `job_before` is
    /// SLURM_JOB_ID when salloc started (set when salloc runs inside another job).
    Salloc {
        layout: Layout,
        submission: Box<Submission>,
        job_before: Option<String>,
    },
}

/// The submission every client writes: its own command line (what `frames resubmit`
/// replays), directory and the options Slurm gave this plugin.
fn new_submission(argv: Vec<String>, options: &FrameOptions) -> Submission {
    let cwd = std::env::current_dir()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let mut submission = Submission::new(&argv, &cwd, spank::host::unix_time(), options);
    submission.uid = Some(sys::uid());
    submission
}

fn store(layout: &Layout, submission: &mut Submission) -> Result<()> {
    frames_core::submission::write(layout, submission, &spank::host::hostname())
        .map(|_| ())
        .map_err(|e| {
            Error::new(format!(
                "--frame-dir: cannot record the submission in '{}': {e}",
                layout.submissions_dir().display()
            ))
        })
}

/// Runs once the options are parsed, before the job is queued.
pub fn check(options: &FrameOptions, context: Context, sp: &Spank) -> Result<Option<Pending>> {
    options.check_complete().map_err(Error::new)?;
    let Some(dir) = &options.frame_dir else {
        return Ok(None);
    };
    let layout = prepare_dir(dir).map_err(|e| e.context("--frame-dir"))?;
    let argv = own_command_line();
    let command = argv
        .first()
        .and_then(|a| Path::new(a).file_name())
        .and_then(|n| n.to_str())
        .unwrap_or("")
        .to_owned();
    match (context, command.as_str()) {
        (Context::Allocator, "sbatch") => {
            let mut submission = new_submission(argv, options);
            // sbatch's precedence for --array: command line, then SBATCH_ARRAY_INX, then the
            // script's #SBATCH lines (read as the user, who is running this sbatch).
            submission.fill_from_env(std::env::var("SBATCH_ARRAY_INX").ok().as_deref());
            if let Some(script) = submission
                .script_path()
                .map(|s| Path::new(&submission.cwd).join(s))
                && let Ok(text) = read_script(&script)
            {
                submission.fill_from_script(&String::from_utf8_lossy(&text));
            }
            // `frames resubmit` rerunning a non-array job names it (see RERUN_ENV).
            if submission.array.is_none() {
                let parent = sys::parent_pid();
                let ancestors = [
                    parent,
                    frames_core::submission::parent_of(parent).unwrap_or(0),
                ];
                submission.reruns_job = std::env::var(frames_core::submission::RERUN_ENV)
                    .ok()
                    .and_then(|v| frames_core::submission::rerun_of(&v, &ancestors));
            }
            store(&layout, &mut submission)?;
            sp.job_control_setenv(SUBMISSION_ENV, &submission.id, true)?;
            Ok(None)
        }
        (Context::Allocator, "salloc") => {
            let mut submission = new_submission(argv, options);
            submission.array = None;
            store(&layout, &mut submission)?;
            sp.job_control_setenv(SUBMISSION_ENV, &submission.id, true)?;
            Ok(Some(Pending::Salloc {
                layout,
                submission: Box::new(submission),
                job_before: std::env::var("SLURM_JOB_ID").ok(),
            }))
        }
        // An srun inside an allocation (a batch script, salloc) adds a step to that job.
        (Context::Local, _) if std::env::var_os("SLURM_JOB_ID").is_some() => Ok(None),
        (Context::Local, _) => {
            let mut submission = new_submission(argv, options);
            submission.array = None;
            Ok(Some(Pending::Srun {
                layout,
                submission: Box::new(submission),
            }))
        }
        _ => Ok(None),
    }
}

/// srun, after it got its allocation: the job exists, record it as accepted. A submission
/// that cannot be stored (a full file system) does not stop the job: srun's submission is
/// not needed to run or resubmit it (its records carry the job id), and the tasks report
/// their own record failures.
pub fn local_user_init(pending: &mut Option<Pending>, sp: &Spank) -> Result<()> {
    if !matches!(pending, Some(Pending::Srun { .. })) {
        return Ok(());
    }
    let Some(Pending::Srun {
        layout,
        mut submission,
    }) = pending.take()
    else {
        return Ok(());
    };
    submission.job_id = Some(sp.job_id()?);
    submission.state = SubmissionState::Accepted;
    if let Err(e) = store(&layout, &mut submission) {
        tracing::warn!("{e}; the job runs without it");
    }
    Ok(())
}

/// salloc at exit: accepted when it held an allocation (SLURM_JOB_ID set by salloc itself),
/// rejected otherwise. Errors are logged only: the user's command already ran.
pub fn exit(pending: &mut Option<Pending>) {
    let Some(Pending::Salloc {
        layout,
        mut submission,
        job_before,
    }) = pending.take()
    else {
        return;
    };
    let now = std::env::var("SLURM_JOB_ID").ok();
    match now.filter(|id| Some(id) != job_before.as_ref()) {
        Some(id) => match id.trim().parse::<u32>() {
            Ok(job) => {
                submission.job_id = Some(job);
                submission.state = SubmissionState::Accepted;
            }
            Err(_) => {
                submission.state = SubmissionState::Rejected;
                submission.reason = Some(format!("salloc set SLURM_JOB_ID={id}: not a job id"));
            }
        },
        None => {
            submission.state = SubmissionState::Rejected;
            submission.reason =
                Some("salloc ended without an allocation (refused by Slurm or interrupted)".into());
        }
    }
    if let Err(e) = frames_core::submission::update(&layout, &submission) {
        tracing::error!(
            "--frame-dir: cannot record the outcome of submission {}: {e}",
            submission.id
        );
    }
}

/// The batch script, for its #SBATCH lines: only a regular file (a FIFO would block sbatch
/// here and lose its content for sbatch itself), at most 16 MiB.
fn read_script(path: &Path) -> std::io::Result<Vec<u8>> {
    host_io::read_regular_prefix(path, 16 << 20)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::as_user::{Identity, run_as_user};
    use std::os::unix::fs::PermissionsExt;
    use std::time::Duration;

    #[test]
    fn another_users_frame_state_in_an_open_dir_is_refused_at_submission() {
        if sys::euid() != 0 {
            return; // needs a second identity; CI runs as root
        }
        let base = std::env::temp_dir().join(format!("frames-submit-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        std::fs::create_dir_all(&base).unwrap();
        std::fs::set_permissions(&base, std::fs::Permissions::from_mode(0o777)).unwrap();
        let dir = base.join("frames");
        // The first user (root here) prepares the dir, then opens it to everybody.
        prepare_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        let nobody = Identity {
            uid: 65534,
            gid: 65534,
        };
        let dir2 = dir.clone();
        let report = run_as_user(nobody, &[], Duration::from_secs(10), move || {
            prepare_dir(&dir2)
                .map(|_| "accepted".to_string())
                .map_err(|e| e.to_string())
        })
        .unwrap();
        let _ = std::fs::remove_dir_all(&base);
        let e = report.unwrap_err();
        assert!(
            e.contains("/.frames is owned by uid 0, not by you (uid 65534)"),
            "{e}"
        );
    }
}
