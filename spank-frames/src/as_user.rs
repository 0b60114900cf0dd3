//! Runs file work as the job's user, never as root: slurmstepd calls task_exit as root, but
//! the frame directory is the user's, so everything that touches it happens in a forked
//! child that has dropped to the user's uid, gid and groups before its first file operation.
//! Symlinks or hard links a user planted can then only reach what the user could reach anyway.
//!
//! The child must not log through Slurm (another slurmstepd thread may hold the log lock at
//! fork time): it reports one line of text through a pipe, which the parent logs.
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy)]
pub struct Identity {
    pub uid: u32,
    pub gid: u32,
}

/// What the child reported: Ok(message) on exit status 0, Err(message) otherwise.
pub type ChildReport = Result<String, String>;

fn drop_privileges(id: Identity, groups: &[u32]) -> Result<(), String> {
    let groups: Vec<libc::gid_t> = if groups.is_empty() {
        vec![id.gid]
    } else {
        groups.to_vec()
    };
    // SAFETY: plain syscalls on values we own.
    unsafe {
        if libc::geteuid() == 0 && libc::setgroups(groups.len(), groups.as_ptr()) != 0 {
            return Err(format!("setgroups: {}", std::io::Error::last_os_error()));
        }
        if libc::setresgid(id.gid, id.gid, id.gid) != 0 {
            return Err(format!(
                "setresgid({}): {}",
                id.gid,
                std::io::Error::last_os_error()
            ));
        }
        if libc::setresuid(id.uid, id.uid, id.uid) != 0 {
            return Err(format!(
                "setresuid({}): {}",
                id.uid,
                std::io::Error::last_os_error()
            ));
        }
        if id.uid != 0 && (libc::geteuid() == 0 || libc::setuid(0) == 0) {
            return Err("privileges were not dropped".to_string());
        }
    }
    Ok(())
}

/// Waits for `pid` to end, at most `limit` (then kills and reaps it); returns its wait status.
///
/// Blocks on a pidfd (Linux 5.3+), which becomes readable when the child exits: the caller
/// resumes as soon as the child is gone, with no polling interval added to every task's end.
/// Where pidfd_open is not available, falls back to polling every millisecond.
fn wait_for_child(pid: libc::pid_t, limit: Duration) -> Result<libc::c_int, String> {
    let started = Instant::now();
    let mut status = 0;
    // SAFETY: pidfd_open on our own child, not yet reaped (only this function reaps it).
    let raw = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    let pidfd = (raw >= 0).then(|| {
        // SAFETY: a fresh descriptor we own (pidfd_open sets O_CLOEXEC).
        unsafe { OwnedFd::from_raw_fd(raw as libc::c_int) }
    });
    loop {
        // SAFETY: waiting for our own child.
        let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if r == pid {
            return Ok(status);
        }
        if r < 0 {
            let err = std::io::Error::last_os_error();
            if err.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(format!("waitpid: {err}"));
        }
        let left = limit.saturating_sub(started.elapsed());
        if left.is_zero() {
            // SAFETY: killing and reaping our own child.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::waitpid(pid, &mut status, 0);
            }
            return Err(format!("gave up after {} s", limit.as_secs()));
        }
        match &pidfd {
            Some(fd) => {
                let mut pfd = libc::pollfd {
                    fd: fd.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                };
                let ms = libc::c_int::try_from(left.as_millis().max(1)).unwrap_or(libc::c_int::MAX);
                // SAFETY: polling one descriptor we own; EINTR and timeouts loop back to waitpid.
                unsafe { libc::poll(&mut pfd, 1, ms) };
            }
            None => std::thread::sleep(Duration::from_millis(1)),
        }
    }
}

/// Forks, drops to `id` in the child and runs `work` there; waits at most `limit` (then kills
/// the child). `work` returns the line to report.
pub fn run_as_user(
    id: Identity,
    groups: &[u32],
    limit: Duration,
    work: impl FnOnce() -> Result<String, String>,
) -> Result<ChildReport, String> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills two descriptors.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(format!("pipe: {}", std::io::Error::last_os_error()));
    }
    // SAFETY: fork; the child only runs `work` and exits with _exit.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        // SAFETY: closing our own descriptors.
        unsafe {
            libc::close(fds[0]);
            libc::close(fds[1]);
        }
        return Err(format!("fork: {}", std::io::Error::last_os_error()));
    }
    if pid == 0 {
        // SAFETY: the read end is ours.
        unsafe { libc::close(fds[0]) };
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            drop_privileges(id, groups)?;
            // SAFETY: chdir to a path that always exists, so no relative path means the user's cwd.
            unsafe { libc::chdir(c"/".as_ptr()) };
            work()
        }));
        let (code, text) = match outcome {
            Ok(Ok(text)) => (0, text),
            Ok(Err(text)) => (1, text),
            Err(_) => (
                2,
                "internal error (panic) while writing as the user".to_string(),
            ),
        };
        let bytes = text.as_bytes();
        // SAFETY: writing our own buffer to our pipe, then leaving without running atexit
        // handlers or destructors that belong to slurmstepd.
        unsafe {
            libc::write(fds[1], bytes.as_ptr().cast(), bytes.len().min(65536));
            libc::_exit(code);
        }
    }
    // SAFETY: the write end belongs to the child now.
    unsafe { libc::close(fds[1]) };
    // SAFETY: fds[0] is a fresh descriptor we own.
    let read_end = unsafe { OwnedFd::from_raw_fd(fds[0]) };
    let status = wait_for_child(pid, limit)?;
    let mut text = String::new();
    let _ = std::fs::File::from(read_end)
        .take(65536)
        .read_to_string(&mut text);
    if libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0 {
        Ok(Ok(text))
    } else {
        Ok(Err(text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn me() -> Identity {
        // SAFETY: trivial getters.
        unsafe {
            Identity {
                uid: libc::getuid(),
                gid: libc::getgid(),
            }
        }
    }

    #[test]
    fn reports_success_and_failure() {
        let ok = run_as_user(me(), &[], Duration::from_secs(5), || Ok("wrote".into())).unwrap();
        assert_eq!(ok, Ok("wrote".to_string()));
        let failed =
            run_as_user(me(), &[], Duration::from_secs(5), || Err("no space".into())).unwrap();
        assert_eq!(failed, Err("no space".to_string()));
    }

    #[test]
    fn a_hanging_child_is_killed() {
        let started = Instant::now();
        let err = run_as_user(me(), &[], Duration::from_millis(200), || {
            std::thread::sleep(Duration::from_secs(30));
            Ok(String::new())
        })
        .unwrap_err();
        assert!(err.contains("gave up"), "{err}");
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn drops_to_an_unprivileged_user_when_root() {
        // SAFETY: trivial getter.
        if unsafe { libc::geteuid() } != 0 {
            return; // only root can switch users; CI runs as root
        }
        let nobody = Identity {
            uid: 65534,
            gid: 65534,
        };
        let report = run_as_user(nobody, &[], Duration::from_secs(5), || {
            // SAFETY: trivial getters.
            let ids = unsafe { (libc::getuid(), libc::geteuid(), libc::getgid()) };
            Ok(format!("{ids:?}"))
        })
        .unwrap();
        assert_eq!(report, Ok("(65534, 65534, 65534)".to_string()));
        // And a root-only file is out of reach.
        let report = run_as_user(nobody, &[], Duration::from_secs(5), || {
            std::fs::read("/etc/shadow")
                .map(|_| "read".to_string())
                .map_err(|e| e.to_string())
        })
        .unwrap();
        assert!(report.is_err(), "{report:?}");
    }
}
