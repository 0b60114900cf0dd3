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
    writable(dir)?;
    let layout = Layout::new(dir);
    layout.create_dirs().map_err(|e| {
        Error::new(format!(
            "cannot prepare '{}': {e}",
            layout.state_dir().display()
        ))
    })?;
    // A frame dir another user opened up (mode 0777) still holds that user's .frames: refuse
    // it here with the reason, not later in slurmstepd with a failed capture or record.
    for sub in [
        layout.state_dir(),
        layout.records_dir(),
        layout.results_dir(),
        layout.submissions_dir(),
    ] {
        writable(&sub)?;
    }
    Ok(layout)
}

fn writable(dir: &Path) -> Result<()> {
    let c_dir = CString::new(dir.as_os_str().as_bytes())
        .map_err(|_| Error::new("the directory path contains a NUL byte"))?;
    // SAFETY: access() on a valid C string.
    if unsafe { libc::access(c_dir.as_ptr(), libc::W_OK | libc::X_OK) } != 0 {
        let err = std::io::Error::last_os_error();
        let owner = std::fs::metadata(dir)
            .map(|m| {
                format!(
                    " (owned by uid {})",
                    std::os::unix::fs::MetadataExt::uid(&m)
                )
            })
            .unwrap_or_default();
        return Err(Error::new(format!(
            "'{}'{owner} is not writable by you: {err}; use a frame directory of your own",
            dir.display()
        )));
    }
    Ok(())
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
            && let Ok(text) = read_script(&script)
        {
            submission.fill_from_script(&String::from_utf8_lossy(&text));
        }
        submission.frame_dir = dir.display().to_string();
        submission.frame_pattern = options.pattern_text.clone();
        submission.t0 = options.t0;
        submission.dt = options.dt;
        submission.result_prefix = options.result_prefix.clone();
        frames_core::submission::write(&layout, &mut submission, &spank::host::hostname())
            .map_err(|e| {
                Error::new(format!(
                    "--frame-dir: cannot record the submission in '{}': {e}",
                    layout.submissions_dir().display()
                ))
            })?;
    }
    Ok(())
}

/// The batch script, for its #SBATCH lines: only a regular file (a FIFO would block sbatch
/// here and lose its content for sbatch itself), at most 16 MiB.
fn read_script(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut text = Vec::new();
    frames_core::atomic::open_regular(path)?
        .take(16 << 20)
        .read_to_end(&mut text)?;
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::as_user::{Identity, run_as_user};
    use std::os::unix::fs::PermissionsExt;
    use std::time::Duration;

    #[test]
    fn another_users_frame_state_in_an_open_dir_is_refused_at_submission() {
        // SAFETY: trivial getter.
        if unsafe { libc::geteuid() } != 0 {
            return; // needs a second identity; CI runs as root
        }
        let base = std::env::temp_dir().join(format!("frames-submit-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        std::fs::create_dir_all(&base).unwrap();
        std::fs::set_permissions(&base, std::fs::Permissions::from_mode(0o777)).unwrap();
        let dir = base.join("frames");
        // The first user (root here) prepares the dir, then opens it to everybody.
        prepare_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        let nobody = Identity {
            uid: 65534,
            gid: 65534,
        };
        let dir2 = dir.clone();
        let report = run_as_user(nobody, &[], Duration::from_secs(10), move || {
            prepare_dir(&dir2)
                .map(|_| "accepted".to_string())
                .map_err(|e| e.to_string())
        })
        .unwrap();
        let _ = std::fs::remove_dir_all(&base);
        let e = report.unwrap_err();
        assert!(
            e.contains("/.frames' (owned by uid 0) is not writable by you"),
            "{e}"
        );
    }
}
