//! The process primitive qrmi-core needs from libc: an exclusive flock held while a value
//! lives. The crate's only `unsafe`.
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
