//! qrmi-usage: QPU usage per user and per QPU from spank_qrmi's accounting log(s).
//!
//! ```text
//! qrmi-usage [--state-dir DIR] [--from TIME] [--to TIME] [--json] [FILE...]
//! ```
//! Reads `DIR/accounting.jsonl` (default state directory /var/spool/slurm/spank_qrmi), or the
//! FILEs given (e.g. logs collected from several nodes). TIME is Unix seconds, `YYYY-MM-DD` or
//! `YYYY-MM-DDTHH:MM[:SS]` in UTC; the range is [from, to), default everything up to now.
use std::ffi::CStr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use qrmi_core::accounting::{self, accounting_path, parse_time, usage_report};
use qrmi_core::lease::DEFAULT_STATE_DIR;
use spank::host::unix_secs;

/// DIR/accounting.jsonl, and those of the per-cluster, per-host directories under it (the
/// plugin's default is DIR/<ClusterName>/<host>).
fn state_dir_logs(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut files = vec![accounting_path(dir)];
    let subdirs = |d: &std::path::Path| -> Vec<PathBuf> {
        let mut found: Vec<PathBuf> = std::fs::read_dir(d)
            .map(|e| {
                e.flatten()
                    .map(|e| e.path())
                    .filter(|p| p.is_dir())
                    .collect()
            })
            .unwrap_or_default();
        found.sort();
        found
    };
    for cluster in subdirs(dir) {
        for host in subdirs(&cluster) {
            let log = accounting_path(&host);
            if log.is_file() {
                files.push(log);
            }
        }
    }
    if files.len() > 1 && !files[0].is_file() {
        files.remove(0);
    }
    files
}

#[derive(Parser, Debug)]
#[command(
    name = "qrmi-usage",
    about = "QPU usage per user and per QPU from spank_qrmi accounting logs"
)]
struct Args {
    /// spank_qrmi state directory (reads DIR/accounting.jsonl and DIR/*/*/accounting.jsonl)
    #[arg(long, value_name = "DIR", default_value = DEFAULT_STATE_DIR)]
    state_dir: PathBuf,
    /// Start of the range: Unix seconds, YYYY-MM-DD or YYYY-MM-DDTHH:MM[:SS] (UTC)
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    from: Option<u64>,
    /// End of the range (exclusive); default now
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    to: Option<u64>,
    /// Print JSON instead of tables
    #[arg(long)]
    json: bool,
    /// Accounting files to read instead of the state directory's
    #[arg(value_name = "FILE")]
    files: Vec<PathBuf>,
}

fn user_name(uid: u32) -> Option<String> {
    let mut buf = vec![0 as libc::c_char; 4096];
    // SAFETY: passwd is plain data; getpwuid_r writes only into pwd and buf (of the given
    // length) and sets result to &pwd or NULL.
    unsafe {
        let mut pwd: libc::passwd = std::mem::zeroed();
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        let rc = libc::getpwuid_r(uid, &mut pwd, buf.as_mut_ptr(), buf.len(), &mut result);
        if rc != 0 || result.is_null() || pwd.pw_name.is_null() {
            return None;
        }
        Some(CStr::from_ptr(pwd.pw_name).to_string_lossy().into_owned())
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    let from = args.from.unwrap_or(0);
    let to = args.to.unwrap_or_else(|| unix_secs().saturating_add(1));
    if from >= to {
        eprintln!(
            "qrmi-usage: --from {} is not before --to {}",
            accounting::format_time(from),
            accounting::format_time(to)
        );
        return ExitCode::from(2);
    }
    let files = if args.files.is_empty() {
        state_dir_logs(&args.state_dir)
    } else {
        args.files
    };
    let mut records = Vec::new();
    for file in &files {
        match accounting::read(file) {
            Ok((mut r, bad)) => {
                if bad > 0 {
                    eprintln!(
                        "qrmi-usage: {}: skipped {bad} malformed line(s)",
                        file.display()
                    );
                }
                records.append(&mut r);
            }
            Err(e) => {
                eprintln!("qrmi-usage: {}: {e}", file.display());
                return ExitCode::FAILURE;
            }
        }
    }
    let report = usage_report(&records, from, to);
    if args.json {
        println!("{}", report.json());
    } else {
        print!("{}", report.table(&user_name));
    }
    ExitCode::SUCCESS
}
