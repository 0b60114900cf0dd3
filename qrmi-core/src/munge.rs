//! A munge credential for pasqal-local's `x-munge-cred` header, made by the munge command of
//! the node (no libmunge link: a plugin must load in processes that lack it). Bounded in time.
use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const LIMIT: Duration = Duration::from_secs(5);

/// True when a `munge` command is on this process's PATH (or in /usr/bin).
pub fn available() -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .chain([std::path::PathBuf::from("/usr/bin")])
        .any(|dir| dir.join("munge").is_file())
}

pub fn credential() -> Result<String, String> {
    let mut child = Command::new("munge")
        .arg("-n")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run munge -n: {e}"))?;
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if started.elapsed() < LIMIT => std::thread::sleep(Duration::from_millis(5)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "munge -n gave no credential within {} s",
                    LIMIT.as_secs()
                ));
            }
            Err(e) => return Err(format!("munge -n: {e}")),
        }
    };
    let mut out = String::new();
    if let Some(mut stdout) = child.stdout.take() {
        let _ = stdout.read_to_string(&mut out);
    }
    if !status.success() {
        let mut err = String::new();
        if let Some(mut stderr) = child.stderr.take() {
            let _ = stderr.read_to_string(&mut err);
        }
        return Err(format!("munge -n failed ({status}): {}", err.trim()));
    }
    let cred = out.trim().to_string();
    if !cred.starts_with("MUNGE:") {
        return Err("munge -n printed no credential".into());
    }
    Ok(cred)
}
