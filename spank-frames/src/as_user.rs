//! Runs file work as the job's user, never as root: slurmstepd calls task_exit as root, but
//! the frame directory is the user's, so everything that touches it happens in a forked
//! child that has dropped to the user's uid, gid and groups before its first file operation.
//! Symlinks or hard links a user planted can then only reach what the user could reach anyway.
//!
//! The child must not log through Slurm (another slurmstepd thread may hold the log lock at
//! fork time): it reports one line of text through a pipe, which the parent logs.
use std::io::Read;
use std::os::fd::AsRawFd;
use std::time::Duration;

pub use crate::sys::Identity;
use crate::sys::{chdir_root, drop_privileges, fork_run, pipe, wait_for_child, write_all_fd};

/// What the child reported: Ok(message) on exit status 0, Err(message) otherwise.
pub type ChildReport = Result<String, String>;

/// Forks, drops to `id` in the child and runs `work` there; waits at most `limit` (then kills
/// the child). `work` returns the line to report.
pub fn run_as_user(
    id: Identity,
    groups: &[u32],
    limit: Duration,
    work: impl FnOnce() -> Result<String, String>,
) -> Result<ChildReport, String> {
    let (read_end, write_end) = pipe(true).map_err(|e| format!("pipe: {e}"))?;
    let child = || {
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            drop_privileges(id, groups)?;
            chdir_root();
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
        write_all_fd(write_end.as_raw_fd(), &bytes[..bytes.len().min(65536)]);
        code
    };
    let pid = fork_run(child).map_err(|e| format!("fork: {e}"))?;
    // The write end belongs to the child now.
    drop(write_end);
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

    use std::time::Instant;

    fn me() -> Identity {
        Identity {
            uid: crate::sys::uid(),
            gid: crate::sys::gid(),
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
        if crate::sys::euid() != 0 {
            return; // only root can switch users; CI runs as root
        }
        let nobody = Identity {
            uid: 65534,
            gid: 65534,
        };
        let report = run_as_user(nobody, &[], Duration::from_secs(5), || {
            let ids = (crate::sys::uid(), crate::sys::euid(), crate::sys::gid());
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
