//! Result capture: in task_init (the task's own process, already the user, just before exec)
//! the task's stdout is routed through a pipe to a small capture process that copies every
//! byte unchanged to the original stdout and records lines starting with the result prefix.
//!
//! - The capture process is double-forked so it is not a child of the user's program: a
//!   shell's bare `wait` would otherwise wait for it, and it waits for the shell's stdout to
//!   close: a deadlock.
//! - When stdout and stderr are the same file (sbatch's default), both go through the one pipe,
//!   so their interleaving in the output file is exactly what it would be without us.
//! - Captured lines go to `<capture>.partial` and are renamed to the capture path at end of
//!   output: the rename tells task_exit the capture is complete.
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use frames_core::capture::{CapturedLine, ResultScanner};

pub fn partial_path(capture: &Path) -> PathBuf {
    let mut name = capture.as_os_str().to_owned();
    name.push(".partial");
    PathBuf::from(name)
}

fn same_file(a: libc::c_int, b: libc::c_int) -> bool {
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

fn write_all_fd(fd: libc::c_int, mut bytes: &[u8]) -> bool {
    while !bytes.is_empty() {
        // SAFETY: writing from a valid buffer.
        let n = unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) };
        if n < 0 {
            if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return false;
        }
        bytes = &bytes[n as usize..];
    }
    true
}

fn append(out: &mut Option<File>, lines: Vec<CapturedLine>) {
    let Some(file) = out else { return };
    for line in lines {
        if let Ok(mut text) = serde_json::to_vec(&line) {
            text.push(b'\n');
            if file.write_all(&text).is_err() {
                *out = None;
                return;
            }
        }
    }
}

/// The capture process's main loop: copy `input` to `output`, record result lines in `file`
/// (the partial capture file, created before the fork).
fn capture_loop(
    input: libc::c_int,
    output: libc::c_int,
    file: File,
    prefix: &str,
    capture: &Path,
) -> i32 {
    let partial = partial_path(capture);
    let mut file = Some(file);
    let mut scanner = ResultScanner::new(prefix);
    let mut passthrough = true;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        // SAFETY: reading into our buffer.
        let n = unsafe { libc::read(input, buf.as_mut_ptr().cast(), buf.len()) };
        if n < 0 {
            if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            break;
        }
        if n == 0 {
            break;
        }
        let chunk = &buf[..n as usize];
        // The output comes first: a failing capture file must never hold the task's output.
        if passthrough {
            passthrough = write_all_fd(output, chunk);
        }
        let lines = scanner.feed(chunk);
        append(&mut file, lines);
    }
    let lines = scanner.finish();
    append(&mut file, lines);
    // Not fsynced: the record, written after this file is read, is the durable copy of the
    // results (spank_frames(8), DURABILITY); a flush here would only delay the task's end.
    match file {
        Some(f) => {
            drop(f);
            if std::fs::rename(&partial, capture).is_ok() {
                0
            } else {
                1
            }
        }
        None => 1,
    }
}

/// Puts `fd` at number `target` (above every descriptor we keep); returns `target` or -1.
///
/// # Safety
/// Only for the freshly forked capture process.
unsafe fn move_fd(fd: libc::c_int, target: libc::c_int) -> libc::c_int {
    if fd < 0 {
        return -1;
    }
    // SAFETY: per the caller's contract.
    unsafe {
        if libc::dup2(fd, target) < 0 {
            return -1;
        }
        libc::close(fd);
    }
    target
}

/// Closes every descriptor from `first` up.
///
/// # Safety
/// Only for the freshly forked capture process.
unsafe fn close_from(first: libc::c_int) {
    // SAFETY: per the caller's contract.
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

/// Starts the capture for this task; on return fd 1 (and 2 if it is the same file) feed it.
/// Errors leave the task's stdio untouched.
pub fn start(prefix: &str, capture: &Path) -> Result<(), String> {
    start_inner(prefix, capture).inspect_err(|_| {
        // No capture will run: leave no partial file for task_exit to wait on.
        let _ = std::fs::remove_file(partial_path(capture));
    })
}

fn start_inner(prefix: &str, capture: &Path) -> Result<(), String> {
    let combined = same_file(1, 2);
    // Created before the task runs, so task_exit can tell "capture still running" (partial
    // file present) from "nothing captured" even for a task that ends at once.
    let partial = partial_path(capture);
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&partial)
        .map_err(|e| format!("cannot create {}: {e}", partial.display()))?;
    let mut fds = [0; 2];
    // SAFETY: pipe fills two descriptors.
    if unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
        return Err(format!("pipe: {}", std::io::Error::last_os_error()));
    }
    let (read_end, write_end) = (fds[0], fds[1]);
    // SAFETY: dup of our stdout, kept by the capture process as its output.
    let original = unsafe { libc::fcntl(1, libc::F_DUPFD_CLOEXEC, 3) };
    if original < 0 {
        // SAFETY: closing our pipe.
        unsafe {
            libc::close(read_end);
            libc::close(write_end);
        }
        return Err(format!("dup stdout: {}", std::io::Error::last_os_error()));
    }
    // SAFETY: fork in the single-threaded task process; the child forks again and leaves.
    let middle = unsafe { libc::fork() };
    if middle < 0 {
        // SAFETY: closing our descriptors.
        unsafe {
            libc::close(read_end);
            libc::close(write_end);
            libc::close(original);
        }
        return Err(format!("fork: {}", std::io::Error::last_os_error()));
    }
    if middle == 0 {
        // SAFETY: second fork; the grandchild is the capture process.
        let capture_pid = unsafe { libc::fork() };
        if capture_pid != 0 {
            // SAFETY: leaving the intermediate process at once.
            unsafe { libc::_exit(if capture_pid > 0 { 0 } else { 1 }) };
        }
        // SAFETY: the capture process keeps only its pipe end and the original output;
        // it ignores job-control signals so it can finish writing after the task is signalled
        // (it ends by itself at end of output).
        unsafe {
            libc::close(write_end);
            // Keep only our two descriptors (as 3 and 4): an inherited copy of some other pipe
            // would keep its reader waiting for an end of file that never comes.
            let (high_read, high_original, high_file) = (
                libc::fcntl(read_end, libc::F_DUPFD, 1000),
                libc::fcntl(original, libc::F_DUPFD, 1000),
                libc::fcntl(file.as_raw_fd(), libc::F_DUPFD, 1000),
            );
            // The File's own descriptor is closed below with the rest; never drop it.
            std::mem::forget(file);
            let (read_end, original, file_fd) = (
                move_fd(high_read, 3),
                move_fd(high_original, 4),
                move_fd(high_file, 5),
            );
            close_from(6);
            if read_end < 0 || original < 0 || file_fd < 0 {
                libc::_exit(1);
            }
            libc::signal(libc::SIGPIPE, libc::SIG_IGN);
            libc::signal(libc::SIGTERM, libc::SIG_IGN);
            libc::signal(libc::SIGINT, libc::SIG_IGN);
            libc::signal(libc::SIGHUP, libc::SIG_IGN);
            let devnull = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
            if devnull >= 0 {
                libc::dup2(devnull, 0);
                libc::dup2(devnull, 1);
                libc::dup2(devnull, 2);
            }
        }
        // SAFETY: fd 5 is the partial capture file, owned by nothing else in this process.
        let file = unsafe { File::from_raw_fd(5) };
        let code = std::panic::catch_unwind(move || capture_loop(3, 4, file, prefix, capture))
            .unwrap_or(2);
        // SAFETY: leaving without running the task's atexit handlers.
        unsafe { libc::_exit(code) };
    }
    let mut status = 0;
    // SAFETY: reaping the intermediate child; routing stdout (and stderr) into the pipe.
    unsafe {
        libc::waitpid(middle, &mut status, 0);
        libc::close(read_end);
        libc::close(original);
        if !(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0) {
            libc::close(write_end);
            return Err("the capture process could not be started".to_string());
        }
        if libc::dup2(write_end, 1) < 0 || (combined && libc::dup2(write_end, 2) < 0) {
            return Err(format!("dup2: {}", std::io::Error::last_os_error()));
        }
        libc::close(write_end);
    }
    Ok(())
}
