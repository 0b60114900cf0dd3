//! srun / sbatch / salloc side (local and allocator contexts), running as the submitting user:
//! make sure the frame directory can be used before the job is queued, and record sbatch's
//! command line so `frames resubmit` can submit only the missing frames later.
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use frames_core::layout::Layout;
use frames_core::submission::Submission;
use spank::{Context, Error, Result};

use crate::options::FrameOptions;

/// Creates DIR (as the user: this process is the user's own srun/sbatch) and checks that the
/// user can write there. Errors name the directory and the reason.
pub fn prepare_dir(dir: &Path) -> Result<Layout> {
    std::fs::create_dir_all(dir)
        .map_err(|e| Error::new(format!("cannot create '{}': {e}", dir.display())))?;
    let c_dir = CString::new(dir.as_os_str().as_bytes())
        .map_err(|_| Error::new("the directory path contains a NUL byte"))?;
    // SAFETY: access() on a valid C string.
    if unsafe { libc::access(c_dir.as_ptr(), libc::W_OK | libc::X_OK) } != 0 {
        return Err(Error::new(format!(
            "'{}' is not writable by you: {}",
            dir.display(),
            std::io::Error::last_os_error()
        )));
    }
    let layout = Layout::new(dir);
    layout.create_dirs().map_err(|e| {
        Error::new(format!(
            "cannot prepare '{}': {e}",
            layout.state_dir().display()
        ))
    })?;
    Ok(layout)
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

/// Runs once the options are parsed, before the job is queued.
pub fn check(options: &FrameOptions, context: Context) -> Result<()> {
    let Some(dir) = &options.frame_dir else {
        return Ok(());
    };
    let layout = prepare_dir(dir).map_err(|e| e.context("--frame-dir"))?;
    let argv = own_command_line();
    let is_sbatch = argv
        .first()
        .and_then(|a| Path::new(a).file_name())
        .is_some_and(|name| name == "sbatch");
    if context == Context::Allocator && is_sbatch {
        let cwd = std::env::current_dir()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        let mut submission = Submission::from_argv(&argv, &cwd, spank::host::unix_time());
        // sbatch's precedence for --array: command line, then SBATCH_ARRAY_INX, then the
        // script's #SBATCH lines (read as the user, who is running this sbatch).
        submission.fill_from_env(std::env::var("SBATCH_ARRAY_INX").ok().as_deref());
        if let Some(script) = submission.script_path().map(|s| Path::new(&cwd).join(s))
            && let Ok(text) = std::fs::read(&script)
        {
            submission.fill_from_script(&String::from_utf8_lossy(&text));
        }
        submission.frame_dir = dir.display().to_string();
        submission.frame_pattern = options.pattern_text.clone();
        submission.t0 = options.t0;
        submission.dt = options.dt;
        submission.result_prefix = options.result_prefix.clone();
        frames_core::submission::write(&layout, &submission).map_err(|e| {
            Error::new(format!(
                "--frame-dir: cannot record the submission in '{}': {e}",
                layout.submissions_dir().display()
            ))
        })?;
    }
    Ok(())
}
