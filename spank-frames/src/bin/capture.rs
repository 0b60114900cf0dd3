//! spank_frames-capture: the result-capture helper spank_frames.so runs for each task of a
//! --frame-dir job (spank_frames(8), RESULT CAPTURE). A small program of its own, so no copy of
//! slurmstepd stays alive per task.
//!
//!   spank_frames-capture PREFIX CAPTURE_PATH      (descriptors 3, 4, 5 set up by the plugin)
//!
//! The plugin starts it from task_init, already as the job's user, with fd 3 the read end of
//! the task's stdout pipe, fd 4 the task's original stdout and fd 5 the capture file
//! `CAPTURE_PATH.partial` (created by the plugin), every other descriptor closed, stdio on
//! /dev/null, SIGPIPE and the termination signals ignored. It runs as a grandchild of the task
//! whose parent has already exited, so it is no child of the user's program (see
//! spank-frames/src/tee.rs). At the end of the output the partial file is renamed to
//! CAPTURE_PATH, which tells task_exit the capture is complete.
use std::fs::File;
use std::os::fd::FromRawFd;
use std::path::PathBuf;
use std::process::ExitCode;

use frames_core::capture::{partial_path, tee};

fn main() -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let [_, prefix, capture] = &args[..] else {
        eprintln!("usage: spank_frames-capture PREFIX CAPTURE_PATH (started by spank_frames.so)");
        return ExitCode::from(2);
    };
    let (Some(prefix), capture) = (prefix.to_str(), PathBuf::from(capture)) else {
        return ExitCode::from(2);
    };
    // SAFETY: descriptors 3, 4 and 5 were set up for this program by the plugin and nothing
    // else in it owns them.
    let (input, output, file) = unsafe {
        (
            File::from_raw_fd(3),
            File::from_raw_fd(4),
            File::from_raw_fd(5),
        )
    };
    let complete = tee(input, output, &file, prefix);
    // Not fsynced: the record, written after this file is read, is the durable copy of the
    // results (spank_frames(8), DURABILITY); a flush here would only delay the task's end.
    drop(file);
    if complete && std::fs::rename(partial_path(&capture), &capture).is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
