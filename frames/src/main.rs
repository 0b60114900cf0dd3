//! The `frames` CLI: status, watch, missing, resubmit, collect, video and report for a
//! directory that jobs filled through spank_frames' `--frame-dir`. All logic lives in
//! frames-core; this file is argument parsing, presentation and running sbatch/ffmpeg
//! (`report/` draws the HTML report).
mod gather;
mod progress;
mod report;
mod video;
mod watch;

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use frames_core::Layout;
use frames_core::merge::{self, Summary, UnitKey, UnitState};

/// Exit statuses, documented in `--help` and frames(1).
pub mod exit {
    pub const OK: u8 = 0;
    /// An error: unreadable directory, not a frame directory, sbatch or ffmpeg failed.
    pub const ERROR: u8 = 1;
    /// Bad usage (clap's status).
    pub const USAGE: u8 = 2;
    /// Refused: nothing to resubmit, no submission recorded, gaps in the frames.
    pub const REFUSED: u8 = 3;
    /// `status --check`: some units failed or are missing; `watch` ended with units missing or
    /// failed and nothing of the dir left in Slurm (or only jobs that will not start by themselves).
    pub const INCOMPLETE: u8 = 4;
    /// `watch --timeout` reached.
    pub const TIMEOUT: u8 = 5;
    /// `--require-hosts N` / `--expected N`: fewer hosts or units took part.
    pub const TOO_FEW: u8 = 6;
    /// `watch` interrupted by Ctrl-C.
    pub const INTERRUPTED: u8 = 130;
}

const EXIT_HELP: &str = "\
Exit status:
  0    success
  1    error (directory unreadable or not a frame directory, sbatch or ffmpeg failed)
  2    bad usage
  3    refused: nothing to resubmit, no submission recorded, gaps in the frames (video)
  4    status --check: some frames or jobs failed or are missing; watch ended: Slurm runs nothing
       of the dir (or only held jobs) and frames or jobs are missing or failed
  5    watch --timeout reached
  6    status --require-hosts/--expected: fewer hosts or units took part
  130  watch interrupted by Ctrl-C

Files: DIR/.frames/records/ (task records: JOB.NODE.seg segments, older per-task .json files),
DIR/.frames/submissions/,
DIR/manifest.jsonl, DIR/summary.json, DIR/summary.csv. See frames(1).";

#[derive(Parser, Debug)]
#[command(
    name = "frames",
    version,
    about = "Inspect, finish and report job arrays that ran with sbatch --frame-dir (spank_frames)",
    after_help = EXIT_HELP
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Counts, progress, missing and failed units (indices and jobs), each failure's reason
    Status {
        /// The --frame-dir directory
        dir: PathBuf,
        /// Print the summary as JSON (summary.json's content plus `units`: each index or job)
        #[arg(long)]
        json: bool,
        /// Exit 4 when some units (frames or jobs) failed or are missing
        #[arg(long)]
        check: bool,
        /// Exit 6 when fewer than N distinct hosts ran tasks
        #[arg(long, value_name = "N")]
        require_hosts: Option<u64>,
        /// Exit 6 when fewer than N units (frames or jobs) are done
        #[arg(long, value_name = "N")]
        expected: Option<u64>,
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
    /// Bring a node-local frame dir (--frame-local) back from every node, through Slurm (one
    /// srun step per node), verify each frame against its record, and merge here
    Gather {
        /// The --frame-dir path the jobs used
        dir: PathBuf,
        /// Gather into this directory instead of DIR on this host
        #[arg(long, value_name = "LOCAL")]
        to: Option<PathBuf>,
        /// The nodes to gather from (Slurm hostlist); default: the nodes of the dir's jobs
        /// (records, squeue, sacct), else every node sinfo lists
        #[arg(long, value_name = "LIST")]
        nodes: Option<String>,
        /// The `frames` program on the nodes (default: this one's path)
        #[arg(long, value_name = "PATH")]
        frames_bin: Option<PathBuf>,
        /// Seconds a node's step may wait for resources (srun --immediate)
        #[arg(long, value_name = "SECONDS", default_value_t = 30)]
        immediate: u32,
    },
    /// Node side of `gather` (run by it through srun): streams this node's part of DIR
    #[command(hide = true)]
    ServeNode { dir: PathBuf },
    /// Write an HTML report: contact sheet, per-node timeline, results table
    Report {
        dir: PathBuf,
        /// The page (overwritten); thumbnails and PNGs go to the folder NAME_files beside it
        #[arg(short, long, default_value = "report.html")]
        output: PathBuf,
        /// Also draw the contact sheet and the timeline as PNG files (no text in them)
        #[arg(long)]
        png: bool,
        /// Threads that make thumbnails (default: every core)
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=256))]
        jobs: Option<u16>,
        /// Do not ask squeue/sacct what Slurm still runs: judge by the records alone
        #[arg(long)]
        no_queue: bool,
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

/// Leaves a large collection to the kernel: the process ends right after, and unmapping its
/// memory at exit is far cheaper than freeing 100,000 records one allocation at a time.
fn leave_to_exit<T>(big: T) {
    std::mem::forget(big);
}

/// Reads and summarizes without writing anything. The tracker reads again only what is new
/// (watch::consult, after asking Slurm).
fn summary_of(dir: &Path) -> Result<(merge::Tracker, Summary), Fail> {
    let layout = layout(dir)?;
    let mut t = merge::Tracker::new();
    t.refresh(&layout)?;
    let s = merge::summarize(t.collection());
    Ok((t, s))
}

fn run(command: Command) -> Result<u8, Fail> {
    match command {
        Command::Status {
            dir,
            json,
            check,
            require_hosts,
            expected,
        } => {
            let (mut t, mut s) = summary_of(&dir)?;
            let note = node_local_note(&dir, t.collection())?;
            let q = watch::consult(&Layout::new(&dir), &mut t, &mut s);
            let c = t.collection();
            let mut out = std::io::stdout().lock();
            if let Some(note) = note {
                eprintln!("frames: {note}");
            }
            if json {
                let text = serde_json::to_string_pretty(&StatusJson {
                    summary: &s,
                    units: merge::unit_views(c, &s),
                    queue: QueueJson::of(&q),
                })
                .map_err(|e| Fail::error(e.to_string()))?;
                let _ = writeln!(out, "{text}");
            } else {
                print_status(&mut out, c, &s, std::io::stdout().is_terminal());
                for line in q.lines() {
                    let _ = writeln!(out, "{line}");
                }
            }
            drop(out);
            let code = status_code(&s, check, require_hosts, expected);
            leave_to_exit((t, s, q));
            Ok(code)
        }
        Command::Watch {
            dir,
            interval,
            timeout,
        } => watch::run(&dir, interval, timeout),
        Command::Missing { dir } => {
            let (mut t, mut s) = summary_of(&dir)?;
            let q = watch::consult(&Layout::new(&dir), &mut t, &mut s);
            println!("{}", s.rerun_ranges);
            if !s.rerun_jobs.is_empty() {
                println!("jobs: {}", join_ids(&s.rerun_jobs));
            }
            for line in q.lines() {
                eprintln!("frames: {line}");
            }
            warn_problems(&s);
            Ok(exit::OK)
        }
        Command::Collect { dir } => {
            let layout = layout(&dir)?;
            let c = merge::collect(&layout)?;
            let s = merge::summarize(&c);
            merge::write_outputs(&layout, &c, &s)?;
            leave_to_exit(c);
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
            let (t, s) = summary_of(&dir)?;
            video::run(&dir, t.collection(), &s, &output, fps, fill_gaps)
        }
        Command::Gather {
            dir,
            to,
            nodes,
            frames_bin,
            immediate,
        } => gather::run(
            &dir,
            &gather::Options {
                to,
                nodes,
                frames_bin,
                immediate,
            },
        ),
        Command::ServeNode { dir } => gather::serve_node(&dir),
        Command::Report {
            dir,
            output,
            png,
            jobs,
            no_queue,
        } => report::run(
            &dir,
            &report::Options {
                output,
                png,
                jobs: jobs.map(usize::from),
                no_queue,
            },
        ),
    }
}

/// What status says first of a node-local dir; refuses (exit 3) where counts would be a guess.
fn node_local_note(dir: &Path, c: &merge::Collection) -> Result<Option<String>, Fail> {
    let subs: Vec<_> = c.submissions.iter().map(|s| s.submission.clone()).collect();
    frames_core::gather::status_note(&Layout::new(dir), &subs, c.records.len())
        .map_err(Fail::refused)
}

/// `frames status --json`: summary.json's fields and each unit.
#[derive(serde::Serialize)]
struct StatusJson<'a> {
    #[serde(flatten)]
    summary: &'a Summary,
    units: Vec<merge::UnitView<'a>>,
    queue: QueueJson<'a>,
}

/// `frames status --json`'s `queue`: who answered, and each task or job of the dir as Slurm
/// (squeue while it knows the job, then sacct) has it.
#[derive(serde::Serialize)]
struct QueueJson<'a> {
    sources: String,
    jobs: Vec<QueueJob<'a>>,
}

#[derive(serde::Serialize)]
struct QueueJob<'a> {
    /// "12_3" or "12".
    job: String,
    /// pending, running, requeued, completed, failed, cancelled, timeout, lost.
    state: &'a str,
    /// As Slurm spelled it ("CANCELLED by 6001", "NODE_FAIL").
    slurm_state: &'a str,
    nodes: &'a str,
    source: &'static str,
}

impl<'a> QueueJson<'a> {
    fn of(q: &'a watch::Consulted) -> QueueJson<'a> {
        QueueJson {
            sources: if q.asked == 0 {
                "not asked".into()
            } else {
                q.view.sources()
            },
            jobs: q
                .live
                .entries
                .iter()
                .map(|e| QueueJob {
                    job: e.name(),
                    state: e.state.as_str(),
                    slurm_state: &e.raw_state,
                    nodes: &e.nodes,
                    source: e.source.as_str(),
                })
                .collect(),
        }
    }
}

/// The exit status of `frames status`: the host/unit requirements first, then `--check`.
fn status_code(s: &Summary, check: bool, hosts: Option<u64>, units: Option<u64>) -> u8 {
    let mut code = exit::OK;
    if let Some(n) = hosts
        && s.unique_hosts < n
    {
        eprintln!(
            "frames: {} distinct host(s) ran tasks ({}), fewer than the {n} required",
            s.unique_hosts,
            s.hosts.join(",")
        );
        code = exit::TOO_FEW;
    }
    if let Some(n) = units
        && s.done < n
    {
        eprintln!(
            "frames: {} unit(s) done, fewer than the {n} expected",
            s.done
        );
        code = exit::TOO_FEW;
    }
    if code == exit::OK && check {
        code = check_code(s);
    }
    code
}

/// `--check`: 4 when units failed or are missing (or none is expected), else 0.
pub fn check_code(s: &Summary) -> u8 {
    if s.failed > 0 || s.missing > 0 || s.expected == 0 {
        exit::INCOMPLETE
    } else {
        exit::OK
    }
}

fn join_ids(ids: &[u32]) -> String {
    ids.iter().map(u32::to_string).collect::<Vec<_>>().join(",")
}

fn warn_problems(s: &Summary) {
    for w in &s.warnings {
        eprintln!("frames: warning: {w}");
    }
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

/// How many failures `frames status` lists one per line (the rest: `--json`).
const FAILURES_LISTED: usize = 20;

/// The status table. With a terminal, a progress bar is drawn (indicatif).
pub fn print_status(out: &mut impl Write, c: &merge::Collection, s: &Summary, tty: bool) {
    for w in &s.warnings {
        let _ = writeln!(out, "warning: {w}");
    }
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
    if !s.jobs.is_empty() {
        let count = |st: UnitState| s.jobs.values().filter(|&&v| v == st).count();
        let _ = writeln!(
            out,
            "{:<10}{} non-array job(s): {} done, {} failed, {} missing",
            "jobs:",
            s.jobs.len(),
            count(UnitState::Done),
            count(UnitState::Failed),
            count(UnitState::Missing)
        );
    }
    if !s.nodes.is_empty() {
        let _ = writeln!(
            out,
            "{:<10}{:>8} {:>8}   (task records that stand)",
            "node", "done", "failed"
        );
        for (node, n) in &s.nodes {
            let _ = writeln!(out, "{node:<10}{:>8} {:>8}", n.done, n.failed);
        }
    }
    line(
        out,
        "hosts:",
        &format!("{} ({})", s.unique_hosts, s.hosts.join(",")),
    );
    line(out, "failing:", &s.failing_nodes.join(","));
    if let (Some(a), Some(b)) = (s.first_start, s.last_end) {
        let _ = writeln!(
            out,
            "{:<10}{:.0} s from first start to last end",
            "elapsed:",
            b - a
        );
    }
    print_failures(out, c, s);
    print_result_warnings(out, c, s);
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

/// Each failed (and incomplete) unit with its reason and the job's output file.
fn print_failures(out: &mut impl Write, c: &merge::Collection, s: &Summary) {
    let bad: Vec<&merge::Unit> = s
        .units
        .iter()
        .filter(|u| u.state == UnitState::Failed || u.reason.is_some())
        .collect();
    if bad.is_empty() {
        return;
    }
    let subs = merge::Submissions::new(c);
    let _ = writeln!(out, "failures:");
    for u in bad.iter().take(FAILURES_LISTED) {
        let name = match u.key {
            UnitKey::Index(i) => format!("index {i}"),
            UnitKey::Job(j) => format!("job {j}"),
        };
        let record = u.chosen.and_then(|i| c.records.get(i));
        let job = match (u.key, record) {
            (UnitKey::Index(_), Some(r)) => format!(" (job {})", r.job_id),
            _ => String::new(),
        };
        let state = if u.state == UnitState::Failed {
            "failed"
        } else {
            "incomplete"
        };
        let _ = write!(
            out,
            "  {name}{job} {state}: {}",
            u.reason.as_deref().unwrap_or("failed")
        );
        if let Some(file) = record.and_then(|r| subs.output_file(r)) {
            let _ = write!(out, "; output: {file}");
        }
        let _ = writeln!(out);
    }
    if bad.len() > FAILURES_LISTED {
        let _ = writeln!(
            out,
            "  ... and {} more (frames status --json lists them all)",
            bad.len() - FAILURES_LISTED
        );
    }
}

/// Result data the plugin dropped or cut (line cap, entry cap, broken JSON), per unit: the
/// records keep it, and the user should see it without reading them.
fn print_result_warnings(out: &mut impl Write, c: &merge::Collection, s: &Summary) {
    let mut lines = Vec::new();
    for u in &s.units {
        for r in u.records.iter().filter_map(|&i| c.records.get(i)) {
            for w in &r.warnings {
                let name = match u.key {
                    UnitKey::Index(i) => format!("index {i}"),
                    UnitKey::Job(j) => format!("job {j}"),
                };
                lines.push(format!("  {name}, {}: {w}", merge::task_place(r)));
            }
        }
    }
    if lines.is_empty() {
        return;
    }
    let _ = writeln!(out, "result warnings:");
    for l in lines.iter().take(FAILURES_LISTED) {
        let _ = writeln!(out, "{l}");
    }
    if lines.len() > FAILURES_LISTED {
        let _ = writeln!(
            out,
            "  ... and {} more (frames status --json lists them all)",
            lines.len() - FAILURES_LISTED
        );
    }
}

/// Where the recorded jobs of DIR wrote, when that is not DIR itself (a copied directory):
/// resubmitting from a copy would write into the original.
fn recorded_elsewhere(dir: &Path, c: &merge::Collection) -> Option<String> {
    let here = std::fs::canonicalize(dir).ok()?;
    c.submissions.iter().find_map(|s| {
        let recorded = Path::new(&s.submission.cwd).join(&s.submission.frame_dir);
        let same = std::fs::canonicalize(&recorded).map_or(recorded == here, |r| r == here);
        (!same).then(|| recorded.display().to_string())
    })
}

/// Reruns the missing and failed units. Reads only (never merges into DIR): works on a
/// directory the user may read but not write, and `--dry-run` writes nothing. Runs only
/// commands the invoking user submitted; shows the others, skipped.
fn resubmit(dir: &Path, dry_run: bool) -> Result<u8, Fail> {
    let (mut t, mut s) = summary_of(dir)?;
    warn_problems(&s);
    if let Some(original) = recorded_elsewhere(dir, t.collection()) {
        let text = format!(
            "{}: the recorded jobs wrote to {original}, not here (a copied directory?): \
             resubmitting would write there; run `frames resubmit {original}`",
            dir.display()
        );
        if !dry_run {
            return Err(Fail::refused(text));
        }
        eprintln!("frames: warning: {text}");
    }
    let q = watch::consult(&Layout::new(dir), &mut t, &mut s);
    let c = t.collection();
    for line in q.lines() {
        eprintln!("frames: {line}");
    }
    let nothing_to_rerun = s.rerun_ranges.is_empty() && s.rerun_jobs.is_empty();
    if nothing_to_rerun && !q.live.is_idle() {
        return Err(Fail::refused(format!(
            "{}: nothing to resubmit yet: what is not done is still pending or running in Slurm",
            dir.display()
        )));
    }
    if nothing_to_rerun {
        return Err(Fail::refused(format!(
            "{}: nothing to resubmit: all {} expected units are done",
            dir.display(),
            s.expected
        )));
    }
    if s.resubmit.is_empty() {
        let what = if s.rerun_ranges.is_empty() {
            format!("jobs {}", join_ids(&s.rerun_jobs))
        } else {
            format!("indices {}", s.rerun_ranges)
        };
        return Err(Fail::refused(format!(
            "{}: no sbatch submission recorded in {} that made {what}: cannot rebuild the \
             command (submit them again by hand)",
            dir.display(),
            Layout::new(dir).submissions_dir().display(),
        )));
    }
    if !s.not_resubmittable_ranges.is_empty() {
        eprintln!(
            "frames: warning: indices {} belong to no recorded sbatch array submission: not resubmitted",
            s.not_resubmittable_ranges
        );
    }
    if !s.not_resubmittable_jobs.is_empty() {
        eprintln!(
            "frames: warning: jobs {}: which recorded submission made them is not known: not resubmitted",
            join_ids(&s.not_resubmittable_jobs)
        );
    }
    if !s.failing_nodes.is_empty() {
        eprintln!(
            "frames: excluding node(s) that failed repeatedly: {}",
            s.failing_nodes.join(",")
        );
    }
    let me = host_io::real_uid();
    let held = frames_core::queue::hold_undecided(&mut s, c, me);
    for line in &held {
        eprintln!("frames: {line}");
    }
    let (mine, others): (Vec<_>, Vec<_>) = s.resubmit.iter().partition(|cmd| cmd.uid == me);
    for cmd in &others {
        eprintln!(
            "frames: skipped (submitted by uid {}, not by you, uid {me}): {}",
            cmd.uid, cmd.command
        );
    }
    if mine.is_empty() && !held.is_empty() {
        return Err(Fail::refused(format!(
            "{}: nothing to resubmit yet: whether Slurm accepted the recorded submission is not \
             known yet",
            dir.display()
        )));
    }
    if mine.is_empty() {
        return Err(Fail::refused(format!(
            "{}: none of the recorded submissions is yours: nothing run",
            dir.display()
        )));
    }
    for cmd in mine {
        let what = match cmd.job {
            Some(job) => format!("job {job}"),
            None => format!("indices {}", cmd.indices),
        };
        if dry_run {
            println!("{}", cmd.command);
            continue;
        }
        eprintln!("frames: resubmitting {what}: {}", cmd.command);
        let Some((program, args)) = cmd.argv.split_first() else {
            return Err(Fail::error("recorded submission has an empty command line"));
        };
        let mut run = std::process::Command::new(program);
        run.args(args).current_dir(&cmd.cwd);
        // A rerun non-array job tells the plugin which job it reruns, so it stands for that
        // job instead of becoming one more unit beside it (proposed again and again).
        match cmd.job {
            Some(job) => run.env(
                frames_core::submission::RERUN_ENV,
                frames_core::submission::rerun_value(job, std::process::id()),
            ),
            None => run.env_remove(frames_core::submission::RERUN_ENV),
        };
        let status = run
            .status()
            .map_err(|e| Fail::error(format!("cannot run {program} in {}: {e}", cmd.cwd)))?;
        if !status.success() {
            return Err(Fail::error(format!(
                "{program} failed ({status}) resubmitting {what}"
            )));
        }
    }
    Ok(exit::OK)
}
