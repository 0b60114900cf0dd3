//! The `frames` CLI: status, watch, missing, resubmit, collect and video for a directory that
//! jobs filled through spank_frames' `--frame-dir`. All logic lives in frames-core; this file
//! is argument parsing, presentation and running sbatch/ffmpeg.
mod video;
mod watch;

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use frames_core::Layout;
use frames_core::merge::{self, Summary};

/// Exit statuses, documented in `--help` and frames(1).
pub mod exit {
    pub const OK: u8 = 0;
    /// An error: unreadable directory, not a frame directory, sbatch or ffmpeg failed.
    pub const ERROR: u8 = 1;
    /// Bad usage (clap's status).
    pub const USAGE: u8 = 2;
    /// Refused: nothing to resubmit, no submission recorded, gaps in the frames.
    pub const REFUSED: u8 = 3;
    /// `watch` ended with frames missing or failed and nothing of the dir left in Slurm
    /// (or only jobs that will not start by themselves).
    pub const INCOMPLETE: u8 = 4;
    /// `watch --timeout` reached.
    pub const TIMEOUT: u8 = 5;
    /// `watch` interrupted by Ctrl-C.
    pub const INTERRUPTED: u8 = 130;
}

const EXIT_HELP: &str = "\
Exit status:
  0    success
  1    error (directory unreadable or not a frame directory, sbatch or ffmpeg failed)
  2    bad usage
  3    refused: nothing to resubmit, no submission recorded, gaps in the frames (video)
  4    watch ended: Slurm runs nothing of the dir (or only held jobs) and frames are missing or failed
  5    watch --timeout reached
  130  watch interrupted by Ctrl-C

Files: DIR/.frames/records/ (one record per task attempt), DIR/.frames/submissions/,
DIR/manifest.jsonl, DIR/summary.json, DIR/summary.csv. See frames(1).";

#[derive(Parser, Debug)]
#[command(
    name = "frames",
    version,
    about = "Inspect and finish job arrays that ran with sbatch --frame-dir (spank_frames)",
    after_help = EXIT_HELP
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Counts, progress, missing and failed indices, per-node counts
    Status {
        /// The --frame-dir directory
        dir: PathBuf,
        /// Print the summary as JSON (the content of summary.json)
        #[arg(long)]
        json: bool,
    },
    /// Live view of frames, the dir's jobs and the nodes, until Slurm runs nothing of the dir
    Watch {
        dir: PathBuf,
        /// Seconds between refreshes
        #[arg(long, default_value_t = 5.0, value_parser = parse_interval)]
        interval: f64,
        /// Give up after this many seconds (exit 5), e.g. for a job that stays pending
        #[arg(long, value_parser = parse_interval)]
        timeout: Option<f64>,
    },
    /// Print the missing and failed indices as ranges on one line (empty line when none)
    Missing { dir: PathBuf },
    /// Rerun the missing and failed indices with the original sbatch options
    Resubmit {
        dir: PathBuf,
        /// Print the command(s) instead of running them
        #[arg(long)]
        dry_run: bool,
    },
    /// Merge the records into manifest.jsonl, summary.json and summary.csv
    Collect { dir: PathBuf },
    /// Encode the frames, in index order, into a video with ffmpeg
    Video {
        dir: PathBuf,
        /// Output file (overwritten), e.g. out.mp4
        #[arg(short, long)]
        output: PathBuf,
        /// Frames per second
        #[arg(long, default_value_t = 24, value_parser = clap::value_parser!(u32).range(1..=1000))]
        fps: u32,
        /// Repeat the previous good frame in place of missing or failed ones
        #[arg(long)]
        fill_gaps: bool,
    },
}

fn parse_interval(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && (0.1..=3600.0).contains(&v) => Ok(v),
        _ => Err(format!(
            "'{s}': expected a number of seconds between 0.1 and 3600"
        )),
    }
}

/// A failure: exit status and one line for stderr.
#[derive(Debug)]
pub struct Fail {
    pub code: u8,
    pub message: String,
}

impl Fail {
    pub fn error(message: impl Into<String>) -> Fail {
        Fail {
            code: exit::ERROR,
            message: message.into(),
        }
    }

    pub fn refused(message: impl Into<String>) -> Fail {
        Fail {
            code: exit::REFUSED,
            message: message.into(),
        }
    }
}

impl From<std::io::Error> for Fail {
    fn from(e: std::io::Error) -> Fail {
        Fail::error(e.to_string())
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() {
                exit::USAGE
            } else {
                exit::OK
            });
        }
    };
    match run(cli.command) {
        Ok(code) => ExitCode::from(code),
        Err(fail) => {
            eprintln!("frames: {}", fail.message);
            ExitCode::from(fail.code)
        }
    }
}

/// The directory must exist; `.frames` is checked by collect.
fn layout(dir: &Path) -> Result<Layout, Fail> {
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => Ok(Layout::new(dir)),
        Ok(_) => Err(Fail::error(format!(
            "{}: not a directory: expected the --frame-dir directory",
            dir.display()
        ))),
        Err(e) => Err(Fail::error(format!("{}: {e}", dir.display()))),
    }
}

/// Reads and summarizes without writing anything.
fn summary_of(dir: &Path) -> Result<(merge::Collection, Summary), Fail> {
    let layout = layout(dir)?;
    let c = merge::collect(&layout)?;
    let s = merge::summarize(&c);
    Ok((c, s))
}

fn run(command: Command) -> Result<u8, Fail> {
    match command {
        Command::Status { dir, json } => {
            let (mut c, mut s) = summary_of(&dir)?;
            let q = watch::consult(&Layout::new(&dir), &mut c, &mut s);
            let mut out = std::io::stdout().lock();
            if json {
                let text =
                    serde_json::to_string_pretty(&s).map_err(|e| Fail::error(e.to_string()))?;
                let _ = writeln!(out, "{text}");
            } else {
                print_status(&mut out, &s, std::io::stdout().is_terminal());
                for line in q.lines() {
                    let _ = writeln!(out, "{line}");
                }
            }
            Ok(exit::OK)
        }
        Command::Watch {
            dir,
            interval,
            timeout,
        } => watch::run(&dir, interval, timeout),
        Command::Missing { dir } => {
            let (mut c, mut s) = summary_of(&dir)?;
            let q = watch::consult(&Layout::new(&dir), &mut c, &mut s);
            println!("{}", s.rerun_ranges);
            for line in q.lines() {
                eprintln!("frames: {line}");
            }
            warn_problems(&s);
            Ok(exit::OK)
        }
        Command::Collect { dir } => {
            let layout = layout(&dir)?;
            let s = merge::merge(&layout)?;
            println!(
                "{}: {} expected, {} done, {} failed, {} missing; wrote manifest.jsonl, summary.json, summary.csv",
                dir.display(),
                s.expected,
                s.done,
                s.failed,
                s.missing
            );
            warn_problems(&s);
            Ok(exit::OK)
        }
        Command::Resubmit { dir, dry_run } => resubmit(&dir, dry_run),
        Command::Video {
            dir,
            output,
            fps,
            fill_gaps,
        } => {
            let (c, s) = summary_of(&dir)?;
            video::run(&dir, &c, &s, &output, fps, fill_gaps)
        }
    }
}

fn warn_problems(s: &Summary) {
    if !s.problems.is_empty() {
        eprintln!(
            "frames: warning: {} file(s) could not be used (see `frames status`):",
            s.problems.len()
        );
        for p in s.problems.iter().take(10) {
            eprintln!("  {}: {}", p.path, p.error);
        }
    }
}

fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        100.0 * part as f64 / whole as f64
    }
}

/// The status table. With a terminal, a progress bar is drawn (indicatif).
pub fn print_status(out: &mut impl Write, s: &Summary, tty: bool) {
    let _ = writeln!(
        out,
        "{}: {} expected, {} done, {} failed, {} missing ({:.1}% done)",
        s.frame_dir,
        s.expected,
        s.done,
        s.failed,
        s.missing,
        percent(s.done, s.expected)
    );
    if tty && s.expected > 0 {
        let bar = indicatif::ProgressBar::with_draw_target(
            Some(s.expected),
            indicatif::ProgressDrawTarget::stdout(),
        );
        if let Ok(style) = indicatif::ProgressStyle::with_template("{bar:50.green/red} {pos}/{len}")
        {
            bar.set_style(style);
        }
        bar.set_position(s.done);
        bar.abandon();
        // indicatif leaves the cursor at the end of the bar.
        let _ = writeln!(out);
    }
    let line = |out: &mut dyn Write, label: &str, value: &str| {
        if !value.is_empty() {
            let _ = writeln!(out, "{label:<10}{value}");
        }
    };
    line(out, "missing:", &s.missing_ranges);
    line(out, "failed:", &s.failed_ranges);
    line(out, "extra:", &s.unexpected_ranges);
    if !s.nodes.is_empty() {
        let _ = writeln!(out, "{:<10}{:>8} {:>8}", "node", "done", "failed");
        for (node, n) in &s.nodes {
            let _ = writeln!(out, "{node:<10}{:>8} {:>8}", n.done, n.failed);
        }
    }
    line(out, "failing:", &s.failing_nodes.join(","));
    if let (Some(a), Some(b)) = (s.first_start, s.last_end) {
        let _ = writeln!(
            out,
            "{:<10}{:.0} s from first start to last end",
            "elapsed:",
            b - a
        );
    }
    if !s.problems.is_empty() {
        let _ = writeln!(
            out,
            "problems: {} file(s) could not be used:",
            s.problems.len()
        );
        for p in &s.problems {
            let _ = writeln!(out, "  {}: {}", p.path, p.error);
        }
    }
}

fn resubmit(dir: &Path, dry_run: bool) -> Result<u8, Fail> {
    let layout = layout(dir)?;
    let mut s = merge::merge(&layout)?;
    warn_problems(&s);
    let q = watch::consult(&layout, &mut merge::collect(&layout)?, &mut s);
    for line in q.lines() {
        eprintln!("frames: {line}");
    }
    if s.rerun_ranges.is_empty() && !q.live.is_idle() {
        return Err(Fail::refused(format!(
            "{}: nothing to resubmit yet: what is not done is still pending or running in Slurm",
            dir.display()
        )));
    }
    if s.rerun_ranges.is_empty() {
        return Err(Fail::refused(format!(
            "{}: nothing to resubmit: all {} expected frames are done",
            dir.display(),
            s.expected
        )));
    }
    if s.resubmit.is_empty() {
        return Err(Fail::refused(format!(
            "{}: no sbatch submission recorded in {}: cannot rebuild the command for indices {} \
             (submit them again by hand with --array={})",
            dir.display(),
            layout.submissions_dir().display(),
            s.rerun_ranges,
            s.rerun_ranges
        )));
    }
    if !s.not_resubmittable_ranges.is_empty() {
        eprintln!(
            "frames: warning: indices {} belong to no recorded sbatch submission: not resubmitted",
            s.not_resubmittable_ranges
        );
    }
    if !s.failing_nodes.is_empty() {
        eprintln!(
            "frames: excluding node(s) that failed repeatedly: {}",
            s.failing_nodes.join(",")
        );
    }
    for cmd in &s.resubmit {
        if dry_run {
            println!("{}", cmd.command);
            continue;
        }
        eprintln!("frames: resubmitting {}: {}", cmd.indices, cmd.command);
        let Some((program, args)) = cmd.argv.split_first() else {
            return Err(Fail::error("recorded submission has an empty command line"));
        };
        let status = std::process::Command::new(program)
            .args(args)
            .current_dir(&cmd.cwd)
            .status()
            .map_err(|e| Fail::error(format!("cannot run {program} in {}: {e}", cmd.cwd)))?;
        if !status.success() {
            return Err(Fail::error(format!(
                "{program} failed ({status}) resubmitting indices {}",
                cmd.indices
            )));
        }
    }
    Ok(exit::OK)
}
