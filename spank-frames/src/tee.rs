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
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use frames_core::capture::{CapturedLine, ResultScanner};

use crate::sys;

pub fn partial_path(capture: &Path) -> PathBuf {
    let mut name = capture.as_os_str().to_owned();
    name.push(".partial");
    PathBuf::from(name)
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
        let n = match sys::read_fd(input, &mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let chunk = &buf[..n];
        // The output comes first: a failing capture file must never hold the task's output.
        if passthrough {
            passthrough = sys::write_all_fd(output, chunk);
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

/// Starts the capture for this task; on return fd 1 (and 2 if it is the same file) feed it.
/// Errors leave the task's stdio untouched.
pub fn start(prefix: &str, capture: &Path) -> Result<(), String> {
    start_inner(prefix, capture).inspect_err(|_| {
        // No capture will run: leave no partial file for task_exit to wait on.
        let _ = std::fs::remove_file(partial_path(capture));
    })
}

fn start_inner(prefix: &str, capture: &Path) -> Result<(), String> {
    let combined = sys::same_file(1, 2);
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
    let (read_end, write_end) = sys::pipe(false).map_err(|e| format!("pipe: {e}"))?;
    // Our stdout, kept by the capture process as its output.
    let original = sys::dup_above(1, 3, true).map_err(|e| format!("dup stdout: {e}"))?;
    let (read_fd, original_fd, file_fd) =
        (read_end.as_raw_fd(), original.as_raw_fd(), file.as_raw_fd());
    // The capture process keeps only its pipe end, the original output and the partial
    // file; the intermediate process leaves at once.
    let capture_process = || match sys::isolate(&[read_fd, original_fd, file_fd]) {
        Some(kept) => {
            let file = sys::file_from_kept(kept[2]);
            capture_loop(kept[0], kept[1], file, prefix, capture)
        }
        None => 1,
    };
    let middle = sys::fork_run(|| match sys::fork_run(capture_process) {
        Ok(_) => 0,
        Err(_) => 1,
    })
    .map_err(|e| format!("fork: {e}"))?;
    let status = sys::wait_child(middle);
    drop((read_end, original));
    if !status.is_ok_and(|s| libc::WIFEXITED(s) && libc::WEXITSTATUS(s) == 0) {
        return Err("the capture process could not be started".to_string());
    }
    sys::dup_onto(write_end.as_raw_fd(), 1).map_err(|e| format!("dup2: {e}"))?;
    if combined {
        sys::dup_onto(write_end.as_raw_fd(), 2).map_err(|e| format!("dup2: {e}"))?;
    }
    Ok(())
}
