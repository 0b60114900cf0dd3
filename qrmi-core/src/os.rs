//! The process primitives qrmi-core needs from libc: an exclusive flock held while a value
//! lives, and for talking to the backend helper, poll with a timeout and a write that cannot
//! raise SIGPIPE. The crate's only `unsafe`.
use std::fs::File;
use std::os::fd::AsRawFd;

/// Holds an exclusive flock until dropped (closing the file would release it too).
pub(crate) struct Flock<'a>(&'a File);

impl<'a> Flock<'a> {
    pub(crate) fn exclusive(file: &'a File) -> std::io::Result<Flock<'a>> {
        loop {
            // SAFETY: a valid open descriptor; flock has no memory effects.
            let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
            if rc == 0 {
                return Ok(Flock(file));
            }
            let err = std::io::Error::last_os_error();
            if err.kind() != std::io::ErrorKind::Interrupted {
                return Err(err);
            }
        }
    }
}

impl Drop for Flock<'_> {
    fn drop(&mut self) {
        // SAFETY: as above.
        unsafe { libc::flock(self.0.as_raw_fd(), libc::LOCK_UN) };
    }
}

/// Whether `fd` has something to read (or is at EOF) within `timeout`: poll(2), restarted
/// after a signal with the time left.
pub(crate) fn wait_readable(
    fd: &impl AsRawFd,
    timeout: std::time::Duration,
) -> std::io::Result<bool> {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let mut pfd = libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = left.as_millis().min(i32::MAX as u128) as i32;
        // SAFETY: one valid pollfd for the duration of the call.
        let rc = unsafe { libc::poll(&mut pfd, 1, ms) };
        if rc >= 0 {
            return Ok(rc > 0);
        }
        let err = std::io::Error::last_os_error();
        if err.kind() != std::io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

/// Runs `write` with SIGPIPE blocked in this thread, and discards a SIGPIPE it raised: writing
/// to a helper that died is then an EPIPE error, whatever SIGPIPE does in the host process
/// (Slurm's processes are not Rust programs, which ignore it).
pub(crate) fn without_sigpipe<T>(write: impl FnOnce() -> std::io::Result<T>) -> std::io::Result<T> {
    // SAFETY: signal-mask calls on local, initialised sets; they affect this thread only.
    unsafe {
        let mut pipe: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut pipe);
        libc::sigaddset(&mut pipe, libc::SIGPIPE);
        let was_pending = {
            let mut pending: libc::sigset_t = std::mem::zeroed();
            libc::sigpending(&mut pending);
            libc::sigismember(&pending, libc::SIGPIPE) == 1
        };
        libc::pthread_sigmask(libc::SIG_BLOCK, &pipe, &mut old);
        let result = write();
        if matches!(&result, Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe) && !was_pending {
            let zero = libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            };
            libc::sigtimedwait(&pipe, std::ptr::null_mut(), &zero);
        }
        libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
        result
    }
}
