//! The process primitives the plugin needs (fork, pipes and descriptors, the drop to the
//! job's user, waiting for a child, inotify), each behind a safe function. The only module of
//! the plugin with `unsafe`: everything else calls these.
use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::{Duration, Instant};

/// A user and group to run as.
#[derive(Debug, Clone, Copy)]
pub struct Identity {
    pub uid: u32,
    pub gid: u32,
}

pub fn uid() -> u32 {
    // SAFETY: getuid(2) has no preconditions and cannot fail.
    unsafe { libc::getuid() }
}

#[cfg(test)]
pub fn gid() -> u32 {
    // SAFETY: getgid(2) has no preconditions and cannot fail.
    unsafe { libc::getgid() }
}

#[cfg(test)]
pub fn euid() -> u32 {
    // SAFETY: geteuid(2) has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// This process's parent (0 if it does not fit a u32, which Linux never does).
pub fn parent_pid() -> u32 {
    // SAFETY: getppid(2) has no preconditions and cannot fail.
    u32::try_from(unsafe { libc::getppid() }).unwrap_or(0)
}

/// Whether this process (its real ids, as access(2) checks) may create files in `dir`.
pub fn can_write_dir(dir: &Path) -> io::Result<()> {
    let c_dir = CString::new(dir.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))?;
    // SAFETY: access() on a valid C string.
    if unsafe { libc::access(c_dir.as_ptr(), libc::W_OK | libc::X_OK) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// A pipe, (read end, write end); close-on-exec when `cloexec`.
pub fn pipe(cloexec: bool) -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    let flags = if cloexec { libc::O_CLOEXEC } else { 0 };
    // SAFETY: pipe2 fills two descriptors.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), flags) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: two fresh descriptors we own.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// A copy of `fd` at number `min` or above; close-on-exec when `cloexec`.
pub fn dup_above(fd: RawFd, min: RawFd, cloexec: bool) -> io::Result<OwnedFd> {
    let cmd = if cloexec {
        libc::F_DUPFD_CLOEXEC
    } else {
        libc::F_DUPFD
    };
    // SAFETY: fcntl duplicating a descriptor; the copy is ours.
    let copy = unsafe { libc::fcntl(fd, cmd, min) };
    if copy < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor we own.
    Ok(unsafe { OwnedFd::from_raw_fd(copy) })
}

/// Makes descriptor `target` (stdout, stderr...) refer to what `fd` refers to.
pub fn dup_onto(fd: RawFd, target: RawFd) -> io::Result<()> {
    // SAFETY: dup2 replaces `target`, which the caller gives up.
    if unsafe { libc::dup2(fd, target) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Whether two descriptors are the same file (same device and inode).
pub fn same_file(a: RawFd, b: RawFd) -> bool {
    // SAFETY: fstat into zeroed structs.
    unsafe {
        let mut sa: libc::stat = std::mem::zeroed();
        let mut sb: libc::stat = std::mem::zeroed();
        libc::fstat(a, &mut sa) == 0
            && libc::fstat(b, &mut sb) == 0
            && sa.st_dev == sb.st_dev
            && sa.st_ino == sb.st_ino
    }
}

/// One read(2) into `buf`, retried on EINTR; 0 at end of file.
pub fn read_fd(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        // SAFETY: reading into our buffer.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        if n >= 0 {
            return Ok(n as usize);
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

/// Reads up to `max` bytes from `fd` until its end of file, waiting at most `limit` in all:
/// the bytes read, or an error when the time ran out first.
pub fn read_within(fd: RawFd, max: usize, limit: Duration) -> io::Result<Vec<u8>> {
    let started = Instant::now();
    let mut bytes = Vec::with_capacity(max);
    let mut buf = [0u8; 64];
    while bytes.len() < max {
        let left = limit.saturating_sub(started.elapsed());
        if left.is_zero() {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("no answer after {} s", limit.as_secs()),
            ));
        }
        let ms = libc::c_int::try_from(left.as_millis().max(1)).unwrap_or(libc::c_int::MAX);
        if !poll_readable(fd, ms) {
            continue;
        }
        let want = (max - bytes.len()).min(buf.len());
        match read_fd(fd, &mut buf[..want])? {
            0 => break,
            n => bytes.extend_from_slice(&buf[..n]),
        }
    }
    Ok(bytes)
}

/// Writes all of `bytes` to `fd` (retrying on EINTR); false on an error.
pub fn write_all_fd(fd: RawFd, mut bytes: &[u8]) -> bool {
    while !bytes.is_empty() {
        // SAFETY: writing from a valid buffer.
        let n = unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) };
        if n < 0 {
            if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return false;
        }
        bytes = &bytes[n as usize..];
    }
    true
}

/// Forks. The child runs `child` and leaves with its code through _exit (no atexit handlers,
/// no destructors that belong to the parent process; a panic leaves with code 2); the parent
/// gets the child's pid. The child must do only what is safe after a fork of this process:
/// in slurmstepd no logging through Slurm and no locks another thread may hold.
pub fn fork_run(child: impl FnOnce() -> i32) -> io::Result<libc::pid_t> {
    // SAFETY: fork; the child only runs `child` and exits with _exit.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    if pid == 0 {
        let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(child)).unwrap_or(2);
        // SAFETY: leaving the child without running the parent's atexit handlers.
        unsafe { libc::_exit(code) };
    }
    Ok(pid)
}

/// Sets the groups (when root), then gid and uid (real, effective and saved) to `id`, and
/// checks that root cannot be regained.
pub fn drop_privileges(id: Identity, groups: &[u32]) -> Result<(), String> {
    let groups: Vec<libc::gid_t> = if groups.is_empty() {
        vec![id.gid]
    } else {
        groups.to_vec()
    };
    // SAFETY: plain syscalls on values we own.
    unsafe {
        if libc::geteuid() == 0 && libc::setgroups(groups.len(), groups.as_ptr()) != 0 {
            return Err(format!("setgroups: {}", io::Error::last_os_error()));
        }
        if libc::setresgid(id.gid, id.gid, id.gid) != 0 {
            return Err(format!(
                "setresgid({}): {}",
                id.gid,
                io::Error::last_os_error()
            ));
        }
        if libc::setresuid(id.uid, id.uid, id.uid) != 0 {
            return Err(format!(
                "setresuid({}): {}",
                id.uid,
                io::Error::last_os_error()
            ));
        }
        if id.uid != 0 && (libc::geteuid() == 0 || libc::setuid(0) == 0) {
            return Err("privileges were not dropped".to_string());
        }
    }
    Ok(())
}

/// chdir to `/`, so no relative path means the user's working directory.
pub fn chdir_root() {
    // SAFETY: chdir to a path that always exists.
    unsafe { libc::chdir(c"/".as_ptr()) };
}

/// Waits for `pid` to end, at most `limit` (then kills and reaps it); returns its wait status.
///
/// Blocks on a pidfd (Linux 5.3+), which becomes readable when the child exits: the caller
/// resumes as soon as the child is gone, with no polling interval added to every task's end.
/// Where pidfd_open is not available, falls back to polling every millisecond.
pub fn wait_for_child(pid: libc::pid_t, limit: Duration) -> Result<libc::c_int, String> {
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
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
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
                let ms = libc::c_int::try_from(left.as_millis().max(1)).unwrap_or(libc::c_int::MAX);
                // EINTR and timeouts loop back to waitpid.
                poll_readable(fd.as_raw_fd(), ms);
            }
            None => std::thread::sleep(Duration::from_millis(1)),
        }
    }
}

/// Waits at most `ms` milliseconds for `fd` to become readable; true if it did.
fn poll_readable(fd: RawFd, ms: libc::c_int) -> bool {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: polling one descriptor the caller owns.
    unsafe { libc::poll(&mut pfd, 1, ms) > 0 }
}

/// An inotify watch on one directory for entries renamed in, renamed out or deleted.
pub struct DirWatch {
    fd: OwnedFd,
}

impl DirWatch {
    /// `None` when inotify is not available or the directory cannot be watched.
    pub fn new(dir: &Path) -> Option<DirWatch> {
        // SAFETY: creating a descriptor we own.
        let raw = unsafe { libc::inotify_init1(libc::IN_CLOEXEC | libc::IN_NONBLOCK) };
        if raw < 0 {
            return None;
        }
        // SAFETY: a fresh descriptor we own.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let dir = CString::new(dir.as_os_str().as_bytes()).ok()?;
        // SAFETY: a NUL-terminated path and our descriptor.
        let added = unsafe {
            libc::inotify_add_watch(
                fd.as_raw_fd(),
                dir.as_ptr(),
                libc::IN_MOVED_TO | libc::IN_MOVED_FROM | libc::IN_DELETE,
            )
        };
        (added >= 0).then_some(DirWatch { fd })
    }

    /// Waits at most `ms` milliseconds for events, and drains them (the caller re-checks the
    /// names it waits for, whatever the events were).
    pub fn wait(&self, ms: libc::c_int) {
        if poll_readable(self.fd.as_raw_fd(), ms) {
            let mut buf = [0u8; 4096];
            // Non-blocking: ends when drained.
            while read_fd(self.fd.as_raw_fd(), &mut buf).is_ok_and(|n| n > 0) {}
        }
    }
}

/// Turns a freshly forked process into one that keeps only `keep` (moved to 3, 4, 5, ... in
/// order), has /dev/null as stdin, stdout and stderr, and ignores SIGPIPE and the job-control
/// signals (so it can finish its work after the task is signalled). Returns the kept
/// descriptors at their new numbers, or `None` if one could not be moved.
///
/// Closes every other descriptor of the process: only for a child made for this purpose,
/// whose other descriptors nothing in it owns (an inherited copy of some other pipe would keep
/// its reader waiting for an end of file that never comes).
pub fn isolate(keep: &[RawFd]) -> Option<Vec<RawFd>> {
    // Above any of their new numbers first, so moving one never overwrites another.
    let high: Vec<RawFd> = keep
        .iter()
        // SAFETY: duplicating descriptors of this process.
        .map(|&fd| unsafe { libc::fcntl(fd, libc::F_DUPFD, 1000) })
        .collect();
    let moved: Vec<RawFd> = high
        .iter()
        .zip(3..)
        .map(|(&fd, target)| move_fd(fd, target))
        .collect();
    close_from(3 + keep.len() as RawFd);
    if moved.iter().any(|&fd| fd < 0) {
        return None;
    }
    // SAFETY: signal dispositions and stdio of this (new, single-purpose) process.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
        libc::signal(libc::SIGTERM, libc::SIG_IGN);
        libc::signal(libc::SIGINT, libc::SIG_IGN);
        libc::signal(libc::SIGHUP, libc::SIG_IGN);
        let devnull = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR | libc::O_CLOEXEC);
        if devnull >= 0 {
            libc::dup2(devnull, 0);
            libc::dup2(devnull, 1);
            libc::dup2(devnull, 2);
            // Opened above the kept ones: not one more descriptor for the process to keep.
            if devnull > 2 {
                libc::close(devnull);
            }
        }
    }
    Some(moved)
}

/// Puts `fd` at number `target`; returns `target` or -1.
fn move_fd(fd: RawFd, target: RawFd) -> RawFd {
    if fd < 0 {
        return -1;
    }
    // SAFETY: only used by `isolate`, on descriptors it made.
    unsafe {
        if libc::dup2(fd, target) < 0 {
            return -1;
        }
        libc::close(fd);
    }
    target
}

/// Closes every descriptor from `first` up.
pub fn close_from(first: RawFd) {
    // SAFETY: only called in a child made for one purpose (`isolate` and the process that
    // execs the capture helper), which gives up every descriptor from `first` up.
    unsafe {
        if libc::syscall(
            libc::SYS_close_range,
            first as libc::c_uint,
            libc::c_uint::MAX,
            0,
        ) != 0
        {
            let max = libc::sysconf(libc::_SC_OPEN_MAX).clamp(256, 65536) as libc::c_int;
            for fd in first..max {
                libc::close(fd);
            }
        }
    }
}

/// Sets close-on-exec on `fd`; false on an error.
pub fn set_cloexec(fd: RawFd) -> bool {
    // SAFETY: fcntl on a descriptor of this process.
    unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) == 0 }
}

/// Whether this process is `id` and nothing else: real, effective and saved uid and gid.
pub fn is_only(id: Identity) -> bool {
    let (mut ru, mut eu, mut su) = (0, 0, 0);
    let (mut rg, mut eg, mut sg) = (0, 0, 0);
    // SAFETY: getresuid/getresgid fill the three values.
    let ok = unsafe {
        libc::getresuid(&mut ru, &mut eu, &mut su) == 0
            && libc::getresgid(&mut rg, &mut eg, &mut sg) == 0
    };
    ok && [ru, eu, su] == [id.uid; 3] && [rg, eg, sg] == [id.gid; 3]
}

/// Replaces this process with `program` run with `argv` and an empty environment; returns
/// the errno only if that failed.
pub fn exec(program: &CStr, argv: &[CString]) -> i32 {
    let mut args: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    args.push(std::ptr::null());
    let env: [*const libc::c_char; 1] = [std::ptr::null()];
    // SAFETY: NUL-terminated strings and null-terminated arrays that outlive the call.
    unsafe { libc::execve(program.as_ptr(), args.as_ptr(), env.as_ptr()) };
    io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::ENOEXEC)
}
