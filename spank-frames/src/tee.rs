//! Result capture: in task_init (the task's own process, already the user, just before exec)
//! the task's stdout is routed through a pipe to the capture helper, `spank_frames-capture`
//! (src/bin/capture.rs), which copies every byte unchanged to the original stdout and records
//! lines starting with the result prefix. A small executable, not a forked copy of slurmstepd:
//! no slurmstepd-sized process stays alive per task.
//!
//! - The helper is found next to spank_frames.so (symlinks resolved: where the package put it)
//!   unless plugstack.conf names it with `capture_helper=PATH`.
//! - It is exec'd by a grandchild of the task that keeps only its three descriptors (the pipe's
//!   read end, the original stdout, the partial capture file) and runs as the job's user. The
//!   child between them exits at once, so the helper is never a child of the user's program (a
//!   shell's bare `wait` would wait for it while it waits for the shell's stdout to close).
//!   task_init waits only until the helper's exec succeeded (a close-on-exec pipe closes), not
//!   for the helper to load and run.
//! - When stdout and stderr are the same file (sbatch's default), both go through the one pipe,
//!   so their interleaving in the output file is exactly what it would be without us.
//! - Captured lines go to `<capture>.partial`, renamed to the capture path at end of output:
//!   the rename tells task_exit the capture is complete.
use std::ffi::CString;
use std::fs::OpenOptions;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use frames_core::capture::partial_path;

use crate::sys::{self, Identity};

/// The helper's file name, in the directory of spank_frames.so.
pub const HELPER_NAME: &str = "spank_frames-capture";
/// How long task_init waits for the helper's exec (the child that forks it exits at once).
const START_LIMIT: Duration = Duration::from_secs(10);
/// Exit codes of the child that forks the helper, or of the grandchild when exec fails.
const EXIT_FORK: i32 = 124;
const EXIT_DESCRIPTORS: i32 = 125;
const EXIT_USER: i32 = 126;
const EXIT_EXEC: i32 = 127;

/// The helper to run: `configured` (plugstack.conf `capture_helper=`), else the file next to
/// the real path of this plugin.
pub fn helper_path(configured: Option<&Path>) -> Result<PathBuf, String> {
    if let Some(path) = configured {
        return Ok(path.to_owned());
    }
    let plugin = spank::host::loaded_from()
        .ok_or("cannot tell where spank_frames.so was loaded from (dladdr)")?;
    let real = std::fs::canonicalize(&plugin)
        .map_err(|e| format!("cannot resolve {}: {e}", plugin.display()))?;
    Ok(real.with_file_name(HELPER_NAME))
}

/// Starts the capture for this task; on return fd 1 (and 2 if it is the same file) feed it.
/// Errors leave the task's stdio untouched.
pub fn start(
    helper: &Path,
    prefix: &str,
    capture: &Path,
    user: Identity,
    groups: &[u32],
) -> Result<(), String> {
    start_inner(helper, prefix, capture, user, groups).inspect_err(|_| {
        // No capture will run: leave no partial file for task_exit to wait on.
        let _ = std::fs::remove_file(partial_path(capture));
    })
}

fn start_inner(
    helper: &Path,
    prefix: &str,
    capture: &Path,
    user: Identity,
    groups: &[u32],
) -> Result<(), String> {
    let cstr = |bytes: &[u8], what: &str| {
        CString::new(bytes).map_err(|_| format!("{what} contains a NUL byte"))
    };
    let argv = [
        cstr(HELPER_NAME.as_bytes(), "the helper name")?,
        cstr(prefix.as_bytes(), "--frame-result-prefix")?,
        cstr(capture.as_os_str().as_bytes(), "the capture path")?,
    ];
    let program = cstr(helper.as_os_str().as_bytes(), "capture_helper")?;
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
    let (read_end, write_end) = sys::pipe(true).map_err(|e| format!("pipe: {e}"))?;
    // Our stdout, kept by the helper as its output.
    let original = sys::dup_above(1, 3, true).map_err(|e| format!("dup stdout: {e}"))?;
    // Carries exec's errno back; closed by a successful exec (close-on-exec).
    let (status_read, status_write) = sys::pipe(true).map_err(|e| format!("pipe: {e}"))?;
    let keep = [
        read_end.as_raw_fd(),
        original.as_raw_fd(),
        file.as_raw_fd(),
        status_write.as_raw_fd(),
    ];
    let child = sys::fork_run(|| {
        // fds 3, 4, 5 for the helper; 6 is the status pipe, closed at exec.
        let Some(kept) = sys::isolate(&keep) else {
            return EXIT_DESCRIPTORS;
        };
        if !sys::set_cloexec(kept[3]) {
            return EXIT_DESCRIPTORS;
        }
        // task_init runs as the user already; should Slurm ever call it with root still in
        // reach, drop to the user before running anything.
        if !sys::is_only(user) && sys::drop_privileges(user, groups).is_err() {
            return EXIT_USER;
        }
        let helper = sys::fork_run(|| {
            // Nothing of ours is opened between the isolation and here, but a tool that runs
            // the host (valgrind's per-process log) may open one at fork: not for the helper.
            sys::close_from(kept[3] + 1);
            let errno = sys::exec(&program, &argv);
            sys::write_all_fd(kept[3], &errno.to_ne_bytes());
            EXIT_EXEC
        });
        if helper.is_ok() { 0 } else { EXIT_FORK }
    })
    .map_err(|e| format!("fork: {e}"))?;
    drop((read_end, original, file, status_write));
    let status = sys::wait_for_child(child, START_LIMIT);
    // The status pipe's last write end is the helper's: it closes at a successful exec, or
    // carries exec's errno. Bounded, so a helper on a hung file system cannot hang the task.
    let exec_error = if status
        .as_ref()
        .is_ok_and(|&s| libc::WIFEXITED(s) && libc::WEXITSTATUS(s) == 0)
    {
        match sys::read_within(status_read.as_raw_fd(), 4, START_LIMIT) {
            Ok(bytes) if bytes.len() == 4 => {
                Some(std::io::Error::from_raw_os_error(i32::from_ne_bytes([
                    bytes[0], bytes[1], bytes[2], bytes[3],
                ])))
            }
            Ok(_) => None,
            Err(e) => {
                return Err(format!(
                    "capture helper {} did not start: {e}",
                    helper.display()
                ));
            }
        }
    } else {
        None
    };
    let what = || format!("capture helper {}", helper.display());
    match (status, exec_error) {
        (_, Some(e)) => {
            return Err(format!(
                "cannot run the {}: {e} (installed next to spank_frames.so, or set capture_helper= in plugstack.conf)",
                what()
            ));
        }
        (Ok(s), None) if libc::WIFEXITED(s) && libc::WEXITSTATUS(s) == 0 => {}
        (Ok(s), None) if libc::WIFEXITED(s) => {
            let why = match libc::WEXITSTATUS(s) {
                EXIT_FORK => "it could not be forked".to_string(),
                EXIT_DESCRIPTORS => "its descriptors could not be set up".to_string(),
                EXIT_USER => format!("could not run it as uid {}", user.uid),
                code => format!("it exited with status {code}"),
            };
            return Err(format!("{} did not start: {why}", what()));
        }
        (Ok(s), None) => {
            return Err(format!(
                "{} did not start: killed by signal {}",
                what(),
                libc::WTERMSIG(s)
            ));
        }
        (Err(e), None) => return Err(format!("{} did not start: {e}", what())),
    }
    sys::dup_onto(write_end.as_raw_fd(), 1).map_err(|e| format!("dup2: {e}"))?;
    if combined {
        sys::dup_onto(write_end.as_raw_fd(), 2).map_err(|e| format!("dup2: {e}"))?;
    }
    Ok(())
}
