//! Outcome lines for docs/RELIABILITY.md: each hardening test states what it tried, what the
//! user saw and what was recorded, from the output it observed. A line is printed (visible
//! with `--nocapture`) and appended to `target/reliability/<test>.txt` (or `$RELIABILITY_DIR`),
//! which `tests/reliability-report.sh` turns into the table.

use std::io::Write;
use std::path::PathBuf;

/// `$RELIABILITY_DIR`, else `target/reliability` of the workspace (the first directory up
/// from this crate that holds Cargo.lock).
fn out_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("RELIABILITY_DIR") {
        return PathBuf::from(dir);
    }
    let crate_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let root = crate_dir
        .ancestors()
        .find(|d| d.join("Cargo.lock").exists())
        .unwrap_or(&crate_dir);
    root.join("target/reliability")
}

/// One table cell: one line, no `|`, control bytes escaped, at most 300 characters.
pub fn cell(text: &str) -> String {
    let mut out = String::new();
    for c in text.trim().chars() {
        match c {
            '|' => out.push('/'),
            '\n' | '\r' | '\t' => out.push(' '),
            c if c.is_control() => out.push_str(&c.escape_unicode().to_string()),
            c => out.push(c),
        }
        if out.chars().count() >= 300 {
            out.push('…');
            break;
        }
    }
    out
}

/// The lines of `text` that contain `needle` (e.g. "error"), joined; for the "user saw" cell.
pub fn lines_with(text: &str, needle: &str) -> String {
    text.lines()
        .filter(|l| l.contains(needle))
        .collect::<Vec<_>>()
        .join(" / ")
}

/// Starts a fresh file for `test` (so reruns do not accumulate lines).
pub fn start(test: &str) {
    let dir = out_dir();
    let _ = std::fs::create_dir_all(&dir);
    let _ = std::fs::remove_file(dir.join(format!("{test}.txt")));
}

/// Prints and stores `RELIABILITY: area | tried | user saw | recorded | test`.
pub fn report(area: &str, tried: &str, saw: &str, recorded: &str, test: &str) {
    let line = format!(
        "RELIABILITY: {} | {} | {} | {} | {}",
        cell(area),
        cell(tried),
        cell(saw),
        cell(recorded),
        cell(test)
    );
    println!("{line}");
    let dir = out_dir();
    let _ = std::fs::create_dir_all(&dir);
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(format!("{test}.txt")))
    {
        let _ = writeln!(f, "{line}");
    }
}
