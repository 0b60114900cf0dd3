//! What Slurm still does with a frame directory's jobs: parses the machine-readable output of
//! `squeue` and `sacct` into one state per job or array task (pending, running, requeued,
//! completed, failed, cancelled, timeout, lost with its node), and runs those commands with a
//! bounded time so `frames` never hangs on a slow or dead controller.
//!
//! Formats: `squeue --format` (`-o`) `%` fields and `sacct --parsable2 --format=` field names
//! are the same on Slurm 22.05, 24.11 and 26.05, while `--json` output changed its schema
//! between them (data_parser v0.0.38 → v0.0.40+) and needs a data_parser plugin installed, so
//! the text formats are used. squeue knows jobs until MinJobAge after they end; sacct knows
//! them as long as accounting keeps them, and says "accounting storage is disabled" without it.
use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::merge::{self, Collection, Summary};
use crate::ranges;
use crate::record::Status;
use crate::submission::{Submission, SubmissionState};

/// squeue's fields, `|`-separated: job id, array job id, array task id (or range while the
/// array's rest is pending, "N/A" for non-array jobs), state, nodes, reason, then (to link a
/// submission to its job) uid, submit time (printed in UTC: the runner sets TZ=UTC) and the
/// working directory, last because a path may hold a `|`.
/// The partition (%P) lets a submission that names partitions be linked only to a job in one of
/// them; the working directory (%Z) comes last, as the one field that may hold a '|'.
pub const SQUEUE_FORMAT: &str = "%A|%F|%K|%T|%N|%r|%U|%V|%P|%Z";
/// sacct's fields (`--parsable2` separates them with `|`).
pub const SACCT_FORMAT: &str = "JobIDRaw,JobID,State,NodeList,ExitCode";
/// The programs, overridable (FRAMES_SQUEUE, FRAMES_SACCT, FRAMES_SINFO) so tests can stand
/// in recorded answers and sites can point at a wrapper.
pub fn program(name: &str) -> String {
    let var = format!("FRAMES_{}", name.to_ascii_uppercase());
    std::env::var(var)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| name.to_owned())
}

/// How long one squeue or sacct call may take before it is abandoned (killed).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(15);

/// What Slurm says a job or array task is doing.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum State {
    Pending,
    Running,
    /// Requeued (REQUEUED, REQUEUE_HOLD, REQUEUE_FED): it will run again.
    Requeued,
    Completed,
    Failed,
    Cancelled,
    Timeout,
    /// The node failed under it (NODE_FAIL, BOOT_FAIL) and Slurm will not run it again.
    Lost,
    /// A state this parser does not know, as Slurm spelled it.
    Other(String),
}

impl State {
    /// Maps Slurm's state name (squeue %T or sacct State, e.g. "CANCELLED by 6001",
    /// "COMPLETING", "OUT_OF_MEMORY") to a state.
    pub fn parse(raw: &str) -> State {
        let word = raw
            .split_whitespace()
            .next()
            .unwrap_or("")
            .trim_end_matches('+');
        match word {
            "PENDING" | "PD" | "RESV_DEL_HOLD" => State::Pending,
            "RUNNING" | "R" | "COMPLETING" | "CG" | "CONFIGURING" | "CF" | "SUSPENDED" | "S"
            | "RESIZING" | "SIGNALING" | "STAGE_OUT" | "STOPPED" | "ST" => State::Running,
            "REQUEUED" | "RQ" | "REQUEUE_HOLD" | "RH" | "REQUEUE_FED" | "RF" => State::Requeued,
            "COMPLETED" | "CD" => State::Completed,
            "FAILED" | "F" | "OUT_OF_MEMORY" | "OOM" | "SPECIAL_EXIT" | "SE" => State::Failed,
            "CANCELLED" | "CA" | "PREEMPTED" | "PR" | "REVOKED" | "RV" | "DEADLINE" | "DL" => {
                State::Cancelled
            }
            "TIMEOUT" | "TO" => State::Timeout,
            "NODE_FAIL" | "NF" | "BOOT_FAIL" | "BF" => State::Lost,
            _ => State::Other(raw.trim().to_owned()),
        }
    }

    /// Slurm still has work to do for it: pending, running or requeued (an unknown state
    /// counts as active, so nothing is resubmitted that Slurm may still run).
    pub fn is_active(&self) -> bool {
        matches!(
            self,
            State::Pending | State::Running | State::Requeued | State::Other(_)
        )
    }

    pub fn as_str(&self) -> &str {
        match self {
            State::Pending => "pending",
            State::Running => "running",
            State::Requeued => "requeued",
            State::Completed => "completed",
            State::Failed => "failed",
            State::Cancelled => "cancelled",
            State::Timeout => "timeout",
            State::Lost => "lost",
            State::Other(s) => s,
        }
    }
}

/// Which command answered for a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Source {
    Squeue,
    Sacct,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Squeue => "squeue",
            Source::Sacct => "sacct",
        }
    }
}

/// One job, or one array task, as squeue or sacct reported it.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// The job's own id (for an array task: its own id, e.g. 12 for task 12_3; for a
    /// still-pending rest of an array: the array job id).
    pub job_id: u32,
    /// The array job id (None for a non-array job).
    pub array_job_id: Option<u32>,
    /// The array task index (None for a non-array job).
    pub array_task: Option<u64>,
    pub state: State,
    /// State as Slurm printed it ("CANCELLED by 6001").
    pub raw_state: String,
    /// Node list ("" while pending).
    pub nodes: String,
    /// squeue's reason ("BeginTime", "JobHeldUser"; "" from sacct).
    pub reason: String,
    pub source: Source,
    /// The job's uid, submit time (Unix seconds) and working directory, when squeue said.
    pub uid: Option<u32>,
    pub submit_time: Option<f64>,
    pub work_dir: String,
    /// The job's partition(s), comma-separated while it pends in several ("" when unknown).
    pub partition: String,
}

impl Entry {
    /// "12_3" or "12".
    pub fn name(&self) -> String {
        match (self.array_job_id, self.array_task) {
            (Some(a), Some(t)) => format!("{a}_{t}"),
            _ => self.job_id.to_string(),
        }
    }
}

fn bad_line(source: Source, line: &str, what: &str) -> String {
    format!("{}: cannot read line '{line}': {what}", source.as_str())
}

fn parse_id(source: Source, line: &str, field: &str) -> Result<u32, String> {
    field
        .trim()
        .parse()
        .map_err(|_| bad_line(source, line, &format!("'{field}' is not a job id")))
}

/// Expands an array task field: "3", "6-19%6", "[6-19%6]", "N/A" (→ none).
fn tasks_of(source: Source, line: &str, field: &str) -> Result<Option<Vec<u64>>, String> {
    let f = field.trim().trim_start_matches('[').trim_end_matches(']');
    if f.is_empty() || f == "N/A" {
        return Ok(None);
    }
    ranges::parse_array_spec(f)
        .map(Some)
        .map_err(|e| bad_line(source, line, &e))
}

/// Entries for one job row, one per array task when the row stands for several.
fn push_rows(out: &mut Vec<Entry>, template: Entry, tasks: Option<Vec<u64>>) {
    match tasks {
        None => out.push(template),
        Some(list) => out.extend(list.into_iter().map(|t| Entry {
            array_task: Some(t),
            ..template.clone()
        })),
    }
}

/// Parses `squeue --noheader --array --states=all --format=SQUEUE_FORMAT` output.
pub fn parse_squeue(text: &str) -> Result<Vec<Entry>, String> {
    let src = Source::Squeue;
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let f: Vec<&str> = line.splitn(10, '|').collect();
        // 6 fields: the state columns alone; 9: without the partition (before it was asked).
        let (job, array_job, task, state, nodes, reason, link, partition) = match f[..] {
            [j, a, t, st, n, r] => (j, a, t, st, n, r, None, ""),
            [j, a, t, st, n, r, u, v, z] => (j, a, t, st, n, r, Some((u, v, z)), ""),
            [j, a, t, st, n, r, u, v, p, z] => (j, a, t, st, n, r, Some((u, v, z)), p),
            _ => return Err(bad_line(src, line, "expected 10 '|'-separated fields")),
        };
        let job_id = parse_id(src, line, job)?;
        let tasks = tasks_of(src, line, task)?;
        let array_job_id = match &tasks {
            Some(_) => Some(parse_id(src, line, array_job)?),
            None => None,
        };
        let template = Entry {
            job_id,
            array_job_id,
            array_task: None,
            state: State::parse(state),
            raw_state: state.trim().to_owned(),
            nodes: nodes.trim().to_owned(),
            reason: reason.trim().to_owned(),
            source: src,
            uid: link.and_then(|(u, _, _)| u.trim().parse().ok()),
            submit_time: link.and_then(|(_, v, _)| parse_utc(v)),
            work_dir: link.map(|(_, _, z)| z.to_owned()).unwrap_or_default(),
            partition: partition.trim().to_owned(),
        };
        push_rows(&mut out, template, tasks);
    }
    Ok(out)
}

/// "2026-12-02T06:40:01" (UTC) as Unix seconds; None for "N/A" or anything else.
fn parse_utc(text: &str) -> Option<f64> {
    let (date, time) = text.trim().split_once('T')?;
    let d: Vec<i64> = date
        .split('-')
        .map(|x| x.parse().ok())
        .collect::<Option<_>>()?;
    let t: Vec<i64> = time
        .split(':')
        .map(|x| x.parse().ok())
        .collect::<Option<_>>()?;
    let (&[y, m, day], &[hh, mm, ss]) = (&d[..], &t[..]) else {
        return None;
    };
    if !(1..=12).contains(&m) || !(1..=31).contains(&day) {
        return None;
    }
    // Days from the civil date (proleptic Gregorian), after H. Hinnant's algorithm.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some((days * 86_400 + hh * 3600 + mm * 60 + ss) as f64)
}

/// Parses `sacct --noheader --parsable2 --allocations --format=SACCT_FORMAT` output. Step
/// lines ("12.batch"), which `--allocations` leaves out anyway, are skipped.
pub fn parse_sacct(text: &str) -> Result<Vec<Entry>, String> {
    let src = Source::Sacct;
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let f: Vec<&str> = line.split('|').collect();
        let [raw, job, state, nodes, _exit] = f[..] else {
            return Err(bad_line(src, line, "expected 5 '|'-separated fields"));
        };
        if raw.contains('.') || job.contains('.') {
            continue;
        }
        let job_id = parse_id(src, line, raw)?;
        let (array_job_id, tasks) = match job.split_once('_') {
            Some((a, t)) => (Some(parse_id(src, line, a)?), tasks_of(src, line, t)?),
            None => (None, None),
        };
        let template = Entry {
            job_id,
            array_job_id: tasks.as_ref().and(array_job_id),
            array_task: None,
            state: State::parse(state),
            raw_state: state.trim().to_owned(),
            nodes: nodes.trim().to_owned(),
            reason: String::new(),
            source: src,
            uid: None,
            submit_time: None,
            work_dir: String::new(),
            partition: String::new(),
        };
        push_rows(&mut out, template, tasks);
    }
    Ok(out)
}

/// How one of the two commands answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// It answered (entries are in the view).
    Answered,
    /// It could not know: accounting disabled, command not installed.
    Unavailable(String),
    /// It failed or timed out.
    Failed(String),
    /// Not asked (no job to ask about).
    NotAsked,
}

impl Answer {
    pub fn describe(&self, source: Source) -> String {
        match self {
            Answer::Answered => format!("{} answered", source.as_str()),
            Answer::Unavailable(why) => format!("{}: {why}", source.as_str()),
            Answer::Failed(why) => format!("{} failed: {why}", source.as_str()),
            Answer::NotAsked => format!("{} not asked", source.as_str()),
        }
    }
}

/// What squeue and sacct said about a set of jobs. squeue (the live queue) wins over sacct
/// for a job both know.
#[derive(Debug, Clone)]
pub struct QueueView {
    pub squeue: Answer,
    pub sacct: Answer,
    /// Array tasks by (array job id, task index).
    tasks: BTreeMap<(u32, u64), Entry>,
    /// Jobs by job id (non-array jobs, and array tasks by their own id).
    jobs: BTreeMap<u32, Entry>,
    /// Array job ids some command knew (any of its tasks).
    arrays: BTreeSet<u32>,
}

impl QueueView {
    /// A view built from parsed entries (squeue's first: they win).
    pub fn from_entries(squeue: Answer, sacct: Answer, entries: Vec<Entry>) -> QueueView {
        let mut v = QueueView {
            squeue,
            sacct,
            tasks: BTreeMap::new(),
            jobs: BTreeMap::new(),
            arrays: BTreeSet::new(),
        };
        for e in entries {
            if let (Some(a), Some(t)) = (e.array_job_id, e.array_task) {
                v.arrays.insert(a);
                v.tasks.entry((a, t)).or_insert_with(|| e.clone());
                // A pending rest of an array has the array's id: not a job of its own.
                if e.job_id != a || e.state != State::Pending {
                    v.jobs.entry(e.job_id).or_insert(e);
                }
            } else {
                v.jobs.entry(e.job_id).or_insert(e);
            }
        }
        v
    }

    /// An array task's entry.
    pub fn task(&self, array_job_id: u32, index: u64) -> Option<&Entry> {
        self.tasks.get(&(array_job_id, index))
    }

    /// A job's entry by its own id.
    pub fn job(&self, job_id: u32) -> Option<&Entry> {
        self.jobs.get(&job_id)
    }

    /// Whether squeue or sacct knew the job or array (by job id or array job id).
    pub fn knows(&self, id: u32) -> bool {
        self.jobs.contains_key(&id) || self.arrays.contains(&id)
    }

    /// Every array task of `array_job_id` Slurm knows.
    pub fn tasks_of(&self, array_job_id: u32) -> impl Iterator<Item = &Entry> {
        self.tasks
            .range((array_job_id, 0)..=(array_job_id, u64::MAX))
            .map(|(_, e)| e)
    }

    /// One line saying who answered: "squeue answered; sacct: accounting storage is disabled".
    pub fn sources(&self) -> String {
        format!(
            "{}; {}",
            self.squeue.describe(Source::Squeue),
            self.sacct.describe(Source::Sacct)
        )
    }

    /// What the CLI concludes about a job neither command knows.
    pub fn unknown_verdict(&self, id: u32) -> String {
        let accounting = match &self.sacct {
            Answer::Answered => "not in accounting either",
            Answer::Unavailable(_) => "no accounting",
            Answer::Failed(_) => "sacct failed",
            Answer::NotAsked => "sacct not asked",
        };
        let queue = match &self.squeue {
            Answer::Answered => "ended more than MinJobAge ago",
            _ => "squeue did not answer",
        };
        format!("job {id}: unknown to Slurm ({queue}, {accounting}): judged by its records")
    }
}

/// A command that failed to give output in time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunError {
    /// The program is not installed (or not on PATH).
    NotFound(String),
    /// It ran longer than the limit and was killed.
    TimedOut(String),
    /// It exited non-zero; the text is its stderr's first line.
    Exit(String),
    /// Another error starting or reading it.
    Io(String),
}

impl std::fmt::Display for RunError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RunError::NotFound(s) | RunError::TimedOut(s) | RunError::Exit(s) | RunError::Io(s) => {
                f.write_str(s)
            }
        }
    }
}

fn drain(mut r: impl Read + Send + 'static) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = r.read_to_end(&mut buf);
        buf
    })
}

/// Runs `program args` with at most `limit` wall time (then kills it, by its PID) and returns
/// its stdout. Its stdin is /dev/null, so it can never wait on a terminal. The frames CLI is
/// not a Slurm process, so reader threads are fine here.
pub fn run_bounded(program: &str, args: &[String], limit: Duration) -> Result<String, RunError> {
    let mut child = match Command::new(program)
        .args(args)
        .env("TZ", "UTC")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(RunError::NotFound(format!("{program}: not installed")));
        }
        Err(e) => return Err(RunError::Io(format!("cannot run {program}: {e}"))),
    };
    let (Some(out), Some(err)) = (child.stdout.take(), child.stderr.take()) else {
        let _ = child.kill();
        let _ = child.wait();
        return Err(RunError::Io(format!("{program}: no pipes")));
    };
    let (out, err) = (drain(out), drain(err));
    let deadline = Instant::now() + limit;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                // The reader threads end once the pipes close (a grandchild holding them
                // open would keep them: they are left to end on their own).
                return Err(RunError::TimedOut(format!(
                    "{program}: no answer within {} s: killed",
                    limit.as_secs_f64()
                )));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => return Err(RunError::Io(format!("{program}: {e}"))),
        }
    };
    let stdout = String::from_utf8_lossy(&out.join().unwrap_or_default()).into_owned();
    let stderr = String::from_utf8_lossy(&err.join().unwrap_or_default()).into_owned();
    if status.success() {
        Ok(stdout)
    } else {
        let first = stderr.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
        Err(RunError::Exit(format!(
            "{program} exited with {status}: {first}"
        )))
    }
}

fn id_list(ids: &BTreeSet<u32>) -> String {
    ids.iter().map(u32::to_string).collect::<Vec<_>>().join(",")
}

/// Asks squeue, then sacct, about `ids` (job ids or array job ids) and builds the view.
/// Never fails: what did not answer is said in the view's `squeue`/`sacct` fields.
pub fn ask(ids: &BTreeSet<u32>, limit: Duration) -> QueueView {
    if ids.is_empty() {
        return QueueView::from_entries(Answer::NotAsked, Answer::NotAsked, Vec::new());
    }
    let list = id_list(ids);
    let mut entries = Vec::new();
    let squeue_args: Vec<String> = [
        "--noheader",
        "--array",
        "--states=all",
        &format!("--format={SQUEUE_FORMAT}"),
        &format!("--jobs={list}"),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let squeue = match run_bounded(&program("squeue"), &squeue_args, limit) {
        Ok(text) => match parse_squeue(&text) {
            Ok(mut e) => {
                entries.append(&mut e);
                Answer::Answered
            }
            Err(e) => Answer::Failed(e),
        },
        // With one job id, squeue fails with this when the job is gone; with several, it
        // leaves the unknown ones out. Both mean: squeue does not know it.
        Err(RunError::Exit(msg)) if msg.contains("Invalid job id") => Answer::Answered,
        Err(RunError::NotFound(msg)) => Answer::Unavailable(msg),
        Err(e) => Answer::Failed(e.to_string()),
    };
    let sacct_args: Vec<String> = [
        "--noheader",
        "--parsable2",
        "--allocations",
        &format!("--format={SACCT_FORMAT}"),
        &format!("--jobs={list}"),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let sacct = match run_bounded(&program("sacct"), &sacct_args, limit) {
        Ok(text) => match parse_sacct(&text) {
            Ok(mut e) => {
                entries.append(&mut e);
                Answer::Answered
            }
            Err(e) => Answer::Failed(e),
        },
        Err(RunError::Exit(msg)) if msg.contains("accounting storage is disabled") => {
            Answer::Unavailable("accounting storage is disabled".into())
        }
        Err(RunError::NotFound(msg)) => Answer::Unavailable(msg),
        Err(e) => Answer::Failed(e.to_string()),
    };
    QueueView::from_entries(squeue, sacct, entries)
}

/// Pending reasons that do not go away by themselves: the job waits for a person (a hold, a
/// dependency that can never be met, a request the partition or account can never grant).
pub fn never_starts_by_itself(reason: &str) -> bool {
    const REASONS: &[&str] = &[
        "JobHeldUser",
        "JobHeldAdmin",
        "DependencyNeverSatisfied",
        "BadConstraints",
        "PartitionConfig",
        "PartitionNodeLimit",
        "PartitionTimeLimit",
        "InvalidAccount",
        "InvalidQOS",
        "AccountNotAllowed",
        "QOSNotAllowed",
    ];
    REASONS.iter().any(|r| reason.starts_with(r))
}

/// The jobs of a frame dir: array jobs (by array job id) and non-array jobs, from its records,
/// from the submissions that know their job (srun, salloc) and from links squeue made.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DirJobs {
    pub arrays: BTreeSet<u32>,
    pub singles: BTreeSet<u32>,
    /// (submission id, job id) linked by squeue: user, working directory and submit time.
    pub linked: Vec<(String, u32)>,
    /// (submission id, jobs) that several jobs in squeue could be: not linked.
    pub ambiguous: Vec<(String, Vec<u32>)>,
}

impl DirJobs {
    pub fn ids(&self) -> BTreeSet<u32> {
        self.arrays.union(&self.singles).copied().collect()
    }

    pub fn is_empty(&self) -> bool {
        self.arrays.is_empty() && self.singles.is_empty()
    }

    /// The jobs to ask Slurm about: the dir's, and those an unlinked submission could be.
    pub fn ids_to_ask(&self) -> BTreeSet<u32> {
        let mut ids = self.ids();
        for (_, candidates) in &self.ambiguous {
            ids.extend(candidates.iter().copied());
        }
        ids
    }
}

/// The dir's jobs its records and submissions name.
pub fn dir_jobs(c: &Collection) -> DirJobs {
    let mut jobs = DirJobs::default();
    for r in &c.records {
        match r.array_job_id {
            Some(a) => jobs.arrays.insert(a),
            None => jobs.singles.insert(r.job_id),
        };
    }
    for sub in &c.submissions {
        if let Some(j) = sub.job_id {
            match sub.array {
                Some(_) => jobs.arrays.insert(j),
                None => jobs.singles.insert(j),
            };
        }
    }
    jobs
}

/// sbatch submissions no record and no job id links yet (sbatch does not tell the plugin its
/// job id): what squeue may link.
fn unlinked(c: &Collection) -> Vec<&Submission> {
    let named: BTreeSet<&str> = c
        .records
        .iter()
        .filter_map(|r| r.submission.as_deref())
        .collect();
    let mut subs: Vec<&Submission> = c
        .submissions
        .iter()
        .map(|s| &s.submission)
        .filter(|s| {
            s.state == SubmissionState::Provisional
                && s.job_id.is_none()
                && s.is_sbatch()
                && !(s.id.is_empty() || named.contains(s.id.as_str()))
        })
        .collect();
    subs.sort_by(|a, b| a.time.total_cmp(&b.time));
    subs
}

/// How long after the submission was written its job may have been submitted (sbatch writes
/// the submission, then sends the request; a slow controller answers within MessageTimeout).
const LINK_WINDOW: f64 = 60.0;

/// Links each unlinked sbatch submission to the job squeue lists of the same user, working
/// directory and array-ness, submitted within LINK_WINDOW after it (a clock second of slack
/// before), in a partition its command line asked for (when it names any), whose array tasks
/// all lie in the submission's --array spec, and that no other
/// submission or record of the dir has. Only an unambiguous match links: several jobs sent
/// from one directory in the same second (squeue's submit time has whole seconds) stay
/// unlinked until a record names them, and `ambiguous` says which.
pub fn link(c: &Collection, jobs: &mut DirJobs, entries: &[Entry]) {
    let taken = jobs.ids();
    let mut array_tasks: BTreeMap<u32, BTreeSet<u64>> = BTreeMap::new();
    for e in entries {
        if let (Some(a), Some(t)) = (e.array_job_id, e.array_task) {
            array_tasks.entry(a).or_default().insert(t);
        }
    }
    let mut per_sub: Vec<(&Submission, BTreeSet<u32>)> = Vec::new();
    for sub in unlinked(c) {
        let spec: Option<BTreeSet<u64>> = sub
            .array
            .as_deref()
            .and_then(|a| ranges::parse_array_spec(a).ok())
            .map(|v| v.into_iter().collect());
        let partitions = sub.partitions();
        let candidates: BTreeSet<u32> = entries
            .iter()
            .filter(|e| sub.uid.is_none_or(|u| e.uid == Some(u)))
            .filter(|e| e.work_dir == sub.cwd)
            .filter(|e| in_partitions(e, partitions.as_ref()))
            .filter(|e| e.array_job_id.is_some() == sub.array.is_some())
            .filter(|e| {
                e.submit_time
                    .is_some_and(|t| t >= sub.time.floor() - 1.0 && t <= sub.time + LINK_WINDOW)
            })
            .map(|e| e.array_job_id.unwrap_or(e.job_id))
            .filter(|id| !taken.contains(id))
            .filter(|id| match (&spec, array_tasks.get(id)) {
                (Some(spec), Some(seen)) => seen.is_subset(spec),
                (Some(_), None) => false,
                (None, _) => true,
            })
            .collect();
        per_sub.push((sub, candidates));
    }
    let add = |jobs: &mut DirJobs, sub: &Submission, id: u32| {
        jobs.linked.push((sub.id.clone(), id));
        if sub.array.is_some() {
            jobs.arrays.insert(id);
        } else {
            jobs.singles.insert(id);
        }
    };
    // One candidate: linked. Several submissions sharing exactly as many candidates (a sweep
    // sent in one second): paired in order of time. Anything else is ambiguous.
    let mut rest = Vec::new();
    for (sub, candidates) in per_sub {
        match candidates.len() {
            0 => {}
            1 => candidates.iter().for_each(|&id| add(jobs, sub, id)),
            _ => rest.push((sub, candidates)),
        }
    }
    let linked_now: BTreeSet<u32> = jobs.linked.iter().map(|(_, id)| *id).collect();
    let union: BTreeSet<u32> = rest
        .iter()
        .flat_map(|(_, c)| c.iter().copied())
        .filter(|id| !linked_now.contains(id))
        .collect();
    if !rest.is_empty() && union.len() == rest.len() {
        let time_of = |id: u32| {
            entries
                .iter()
                .filter(|e| e.array_job_id.unwrap_or(e.job_id) == id)
                .filter_map(|e| e.submit_time)
                .fold(f64::INFINITY, f64::min)
        };
        let mut ordered: Vec<u32> = union.into_iter().collect();
        ordered.sort_by(|a, b| time_of(*a).total_cmp(&time_of(*b)).then(a.cmp(b)));
        for ((sub, _), id) in rest.into_iter().zip(ordered) {
            add(jobs, sub, id);
        }
    } else {
        for (sub, candidates) in rest {
            jobs.ambiguous
                .push((sub.id.clone(), candidates.into_iter().collect()));
        }
    }
    // Submission ids begin with their time: in order of submission.
    jobs.linked.sort();
}

/// True when the job runs or pends in one of `wanted` (no filter when the command line named
/// no partition, or squeue did not say): a refused `sbatch -p typo` is never taken for the job
/// an `sbatch -p normal` sent in the same second became.
fn in_partitions(e: &Entry, wanted: Option<&BTreeSet<String>>) -> bool {
    match wanted {
        Some(wanted) if !e.partition.is_empty() => {
            e.partition.split(',').any(|p| wanted.contains(p))
        }
        _ => true,
    }
}

/// Links the dir's unlinked sbatch submissions through the submitting users' jobs in squeue
/// (one call per user). Returns an error line when squeue could not be asked.
pub fn link_by_squeue(c: &Collection, jobs: &mut DirJobs, limit: Duration) -> Option<String> {
    let subs = unlinked(c);
    if subs.is_empty() {
        return None;
    }
    let users: BTreeSet<String> = subs
        .iter()
        .map(|s| s.uid.map_or_else(|| "".to_string(), |u| u.to_string()))
        .collect();
    let mut entries = Vec::new();
    for user in users {
        let mut args = vec![
            "--noheader".to_string(),
            "--array".to_string(),
            "--states=all".to_string(),
            format!("--format={SQUEUE_FORMAT}"),
        ];
        if !user.is_empty() {
            args.push(format!("--user={user}"));
        }
        match run_bounded(&program("squeue"), &args, limit).map(|t| parse_squeue(&t)) {
            Ok(Ok(mut e)) => entries.append(&mut e),
            Ok(Err(e)) => return Some(e),
            Err(e) => return Some(e.to_string()),
        }
    }
    link(c, jobs, &entries);
    None
}

/// Applies what squeue told about the dir's provisional sbatch submissions to the collection
/// (in memory; the files stay as the plugin wrote them): a linked one is the job it was linked
/// to; one that no record names, that squeue could not link although it answered, and that is
/// older than LINK_WINDOW never became a job (slurmctld refused it, e.g. a mistyped partition)
/// and is no expected work and nothing to resubmit. Returns a line per such submission, so
/// nothing is dropped unseen. `squeue_answered`: false leaves every provisional one counted.
pub fn settle_submissions(
    c: &mut Collection,
    jobs: &DirJobs,
    squeue_answered: bool,
    now: f64,
) -> Vec<String> {
    let ambiguous: BTreeSet<&str> = jobs.ambiguous.iter().map(|(s, _)| s.as_str()).collect();
    let unlinked_ids: BTreeSet<String> = unlinked(c)
        .into_iter()
        .filter(|s| !ambiguous.contains(s.id.as_str()))
        .filter(|s| now - s.time > LINK_WINDOW)
        .map(|s| s.id.clone())
        .collect();
    let mut lines = Vec::new();
    for owned in &mut c.submissions {
        let sub = &mut owned.submission;
        if let Some((_, job)) = jobs.linked.iter().find(|(id, _)| *id == sub.id) {
            sub.job_id = Some(*job);
            sub.state = SubmissionState::Accepted;
        } else if squeue_answered && unlinked_ids.contains(&sub.id) {
            sub.state = SubmissionState::Rejected;
            lines.push(format!(
                "submission {}: no job came of it (squeue knows none of its time and directory, \
                 no record names it): rejected by Slurm, not counted: {}",
                sub.id,
                crate::submission::shell_join(&sub.argv)
            ));
        }
    }
    lines
}

/// Takes out of the resubmit commands those whose submission Slurm may have refused: an
/// sbatch submission no record names and no job is linked to (made less than a minute ago,
/// or squeue did not answer, or several jobs could be it). `settle_submissions` runs first:
/// what is left unlinked is undecided, and replaying it could replay a refused command (a
/// mistyped partition). Only `uid`'s commands are held (the others are never run anyway, and
/// are shown as someone else's). Returns a line per command held back.
pub fn hold_undecided(s: &mut Summary, c: &Collection, uid: u32) -> Vec<String> {
    let undecided: BTreeSet<&str> = unlinked(c).into_iter().map(|s| s.id.as_str()).collect();
    let mut lines = Vec::new();
    s.resubmit.retain(|cmd| {
        let hold = cmd.uid == uid
            && !cmd.submission.is_empty()
            && undecided.contains(cmd.submission.as_str());
        if hold {
            lines.push(format!(
                "submission {}: not run: no record names it and squeue links no job to it yet \
                 (Slurm may have refused it; it is judged {LINK_WINDOW:.0} s after it was made): {}",
                cmd.submission, cmd.command
            ));
        }
        !hold
    });
    lines
}

/// What Slurm still does with a frame dir's jobs, in the dir's terms.
#[derive(Debug, Clone, Default)]
pub struct Live {
    /// Array indices a job of the dir still has pending, running or requeued.
    pub active: BTreeSet<u64>,
    /// Non-array jobs of the dir that are pending, running or requeued.
    pub active_jobs: Vec<Entry>,
    /// Array tasks and jobs of the dir by state ("running" → ["12_3", ...]).
    pub by_state: BTreeMap<String, Vec<String>>,
    /// Tasks or jobs lost with their node (NODE_FAIL) whose index has no done record.
    pub lost: Vec<Entry>,
    /// Pending ones whose reason never goes away by itself (a hold, a never-met dependency).
    pub stuck: Vec<Entry>,
    /// Jobs of the dir neither squeue nor sacct knows.
    pub unknown: Vec<u32>,
    /// How many tasks/jobs are active (stuck ones included).
    pub active_entries: usize,
    /// Non-array jobs that a submission not yet linked to its job reruns, while a job it
    /// could be is pending or running: not proposed again.
    pub active_reruns: BTreeSet<u32>,
    /// Pending or running jobs that an unlinked submission of the dir could be.
    pub unlinked_active: usize,
}

impl Live {
    /// Slurm has nothing of the dir pending or running.
    pub fn is_idle(&self) -> bool {
        self.active.is_empty() && self.active_jobs.is_empty() && self.unlinked_active == 0
    }

    /// Something is active, and all of it waits for a person.
    pub fn all_stuck(&self) -> bool {
        !self.stuck.is_empty() && self.stuck.len() == self.active_entries
    }

    /// "3 running (12_[0-2]), 5 pending" — one clause per state, in a fixed order.
    pub fn state_line(&self) -> String {
        self.by_state
            .iter()
            .map(|(state, names)| format!("{} {state}", names.len()))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// One line per lost task/job: "lost with node c2: 22_4 (NODE_FAIL)".
    pub fn lost_lines(&self) -> Vec<String> {
        let mut by_node: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        for e in &self.lost {
            by_node.entry(&e.nodes).or_default().push(e.name());
        }
        by_node
            .into_iter()
            .map(|(node, names)| {
                format!(
                    "lost with node {}: {} (NODE_FAIL, not requeued)",
                    if node.is_empty() { "?" } else { node },
                    names.join(",")
                )
            })
            .collect()
    }
}

/// Reads the view in the dir's terms: which indices and jobs are still active, lost, stuck or
/// unknown. An index counts as active when any array job of the dir (the render and its
/// resubmit) still has that task pending, running or requeued.
pub fn live(c: &Collection, jobs: &DirJobs, view: &QueueView) -> Live {
    let done: BTreeSet<u64> = c
        .records
        .iter()
        .filter(|r| r.status == Status::Done)
        .map(|r| r.index)
        .collect();
    let mut live = Live::default();
    let (arrays, singles) = (&jobs.arrays, &jobs.singles);
    let note = |live: &mut Live, e: &Entry| {
        live.by_state
            .entry(e.state.as_str().to_owned())
            .or_default()
            .push(e.name());
        if e.state == State::Pending && never_starts_by_itself(&e.reason) {
            live.stuck.push(e.clone());
        }
    };
    for &a in arrays {
        if !view.knows(a) {
            live.unknown.push(a);
            continue;
        }
        for e in view.tasks_of(a) {
            let Some(index) = e.array_task else { continue };
            note(&mut live, e);
            if e.state.is_active() {
                live.active_entries += 1;
                live.active.insert(index);
            } else if e.state == State::Lost && !done.contains(&index) {
                live.lost.push(e.clone());
            }
        }
    }
    for &j in singles {
        let Some(e) = view.job(j) else {
            live.unknown.push(j);
            continue;
        };
        note(&mut live, e);
        if e.state.is_active() {
            live.active_entries += 1;
            live.active_jobs.push(e.clone());
        } else if e.state == State::Lost {
            live.lost.push(e.clone());
        }
    }
    // A submission squeue could not link (several jobs of the same user, directory and
    // second could be it): while any of those jobs is pending or running, what it submitted
    // may be running. Its indices (and the job it reruns) are held back, never proposed.
    for (id, candidates) in &jobs.ambiguous {
        let Some(sub) = c.submissions.iter().find(|s| s.submission.id == *id) else {
            continue;
        };
        let spec: Option<BTreeSet<u64>> = sub
            .array
            .as_deref()
            .and_then(|a| ranges::parse_array_spec(a).ok())
            .map(|v| v.into_iter().collect());
        for &j in candidates {
            if let Some(spec) = &spec {
                for e in view.tasks_of(j).filter(|e| e.state.is_active()) {
                    if let Some(index) = e.array_task.filter(|i| spec.contains(i)) {
                        live.unlinked_active += 1;
                        if live.active.insert(index) {
                            live.active_entries += 1;
                        }
                    }
                }
            } else if view.job(j).is_some_and(|e| e.state.is_active()) {
                live.unlinked_active += 1;
                live.active_entries += 1;
                if let Some(old) = sub.reruns_job {
                    live.active_reruns.insert(old);
                }
            }
        }
    }
    live
}

/// Takes out of the summary's rerun lists (what `missing` prints and `resubmit` proposes)
/// every array index Slurm still pends, runs or requeued and every non-array job it still
/// has, and rebuilds the resubmit commands without them.
pub fn exclude_active(s: &mut Summary, c: &Collection, live: &Live) {
    let Ok(rerun) = ranges::parse_ranges(&s.rerun_ranges) else {
        return;
    };
    let keep: Vec<u64> = rerun
        .into_iter()
        .filter(|i| !live.active.contains(i))
        .collect();
    // A job that reruns an earlier one (frames resubmit) keeps that one's unit in progress.
    let chains = merge::job_units(c);
    let active_jobs: BTreeSet<u32> = live
        .active_jobs
        .iter()
        .map(|e| chains.get(&e.job_id).copied().unwrap_or(e.job_id))
        .chain(live.active_reruns.iter().copied())
        .collect();
    s.rerun_jobs.retain(|j| !active_jobs.contains(j));
    let (mut resubmit, uncovered) =
        merge::resubmit_commands(&c.submissions, &keep, &s.failing_nodes);
    // A non-array job's command reruns that job: kept while the job is still to rerun.
    resubmit.extend(
        s.resubmit
            .drain(..)
            .filter(|cmd| cmd.job.is_some_and(|j| s.rerun_jobs.contains(&j))),
    );
    s.rerun_ranges = ranges::compress(&keep);
    s.resubmit = resubmit;
    s.not_resubmittable_ranges = ranges::compress(&uncovered);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A submission as collect() hands it over: trusted, owned by its uid.
    fn owned(submission: crate::submission::Submission) -> merge::OwnedSubmission {
        merge::OwnedSubmission {
            name: format!("{}.json", submission.id),
            uid: submission.uid.unwrap_or(6001),
            submission,
        }
    }

    // Recorded on the 22.05.8 test cluster with TZ=UTC: `squeue --noheader --array
    // --states=all --format=SQUEUE_FORMAT` with a throttled array 94 (0-9%3) and a held job
    // 95, then the same without --array (the pending rest compressed), cut to a few lines.
    const SQUEUE_2205: &str = "\
94|94|3|PENDING||JobArrayTaskLimit|6001|2026-12-02T06:45:03|/tmp/spank-cluster-3/shared
94|94|4|PENDING||JobArrayTaskLimit|6001|2026-12-02T06:45:03|/tmp/spank-cluster-3/shared
95|95|N/A|PENDING||JobHeldUser|6001|2026-12-02T06:45:03|/tmp/spank-cluster-3/shared
96|94|0|RUNNING|c1|None|6001|2026-12-02T06:45:03|/tmp/spank-cluster-3/shared
97|94|1|RUNNING|c1|None|6001|2026-12-02T06:45:03|/tmp/spank-cluster-3/shared
9|9|N/A|COMPLETED|c2|None|6001|2026-12-02T06:30:01|/tmp/spank-cluster-3/shared
";
    const SQUEUE_2205_COMPRESSED: &str = "94|94|3-9%3|PENDING||JobArrayTaskLimit|6001|2026-12-02T06:45:03|/tmp/spank-cluster-3/shared\n";

    #[test]
    fn squeue_rows_become_jobs_and_array_tasks() {
        let e = parse_squeue(SQUEUE_2205).unwrap();
        assert_eq!(e.len(), 6);
        assert_eq!((e[0].name(), e[0].job_id), ("94_3".to_string(), 94));
        assert_eq!(e[0].state, State::Pending);
        assert_eq!(e[0].reason, "JobArrayTaskLimit");
        assert_eq!(e[2].array_task, None);
        assert_eq!(e[2].reason, "JobHeldUser");
        assert!(never_starts_by_itself(&e[2].reason));
        assert_eq!((e[3].job_id, e[3].name()), (96, "94_0".to_string()));
        assert_eq!(e[3].state, State::Running);
        assert_eq!(e[3].nodes, "c1");
        assert_eq!(e[5].state, State::Completed);
        assert_eq!(e[5].uid, Some(6001));
        assert_eq!(e[5].submit_time, parse_utc("2026-12-02T06:30:01"));
        assert_eq!(e[5].work_dir, "/tmp/spank-cluster-3/shared");
    }

    #[test]
    fn squeue_compressed_pending_rest_expands_to_each_task() {
        let e = parse_squeue(SQUEUE_2205_COMPRESSED).unwrap();
        assert_eq!(e.len(), 7);
        assert_eq!(e[0].array_task, Some(3));
        assert_eq!(e[6].array_task, Some(9));
        assert!(e.iter().all(|x| x.state == State::Pending));
    }

    #[test]
    fn squeue_bad_lines_are_named() {
        let err = parse_squeue("12|12|N/A|RUNNING\n").unwrap_err();
        assert!(
            err.contains("'12|12|N/A|RUNNING'") && err.contains("expected 10"),
            "{err}"
        );
        let err = parse_squeue("x|1|2|RUNNING|c1|None\n").unwrap_err();
        assert!(err.contains("'x' is not a job id"), "{err}");
        let err = parse_squeue("3|1|2-a|RUNNING|c1|None\n").unwrap_err();
        assert!(err.contains("squeue"), "{err}");
    }

    // `sacct --noheader --parsable2 --allocations --format=JobIDRaw,JobID,State,NodeList,
    // ExitCode` in the layout sacct(1) documents for 22.05, 24.11 and 26.05 alike. Written by
    // hand, not recorded: the test cluster has no accounting yet (issue 13).
    const SACCT: &str = "\
20|20_0|COMPLETED|c1|0:0
21|20_1|NODE_FAIL|c2|0:0
22|20_2|CANCELLED by 6001|c1|0:15
20|20_[3-5]|PENDING|None assigned|0:0
30|30|TIMEOUT|c2|0:0
31|31|REQUEUED|c2|0:0
31.batch|31.batch|CANCELLED|c2|0:15
";

    #[test]
    fn sacct_rows_become_states_with_nodes() {
        let e = parse_sacct(SACCT).unwrap();
        assert_eq!(e.len(), 8, "{e:?}");
        assert_eq!(e[1].state, State::Lost);
        assert_eq!(e[1].nodes, "c2");
        assert_eq!(e[1].name(), "20_1");
        assert_eq!(e[2].state, State::Cancelled);
        assert_eq!(e[2].raw_state, "CANCELLED by 6001");
        assert_eq!(
            e[3..6].iter().map(|x| x.array_task).collect::<Vec<_>>(),
            [Some(3), Some(4), Some(5)]
        );
        assert_eq!(e[6].state, State::Timeout);
        assert_eq!(e[7].state, State::Requeued);
        assert!(e[7].state.is_active());
    }

    #[test]
    fn states_cover_slurms_names() {
        for (raw, want) in [
            ("COMPLETING", State::Running),
            ("SUSPENDED", State::Running),
            ("REQUEUE_HOLD", State::Requeued),
            ("OUT_OF_MEMORY", State::Failed),
            ("PREEMPTED", State::Cancelled),
            ("BOOT_FAIL", State::Lost),
            ("RUNNING+", State::Running),
        ] {
            assert_eq!(State::parse(raw), want, "{raw}");
        }
        assert_eq!(State::parse("WEIRD"), State::Other("WEIRD".into()));
        assert!(State::parse("WEIRD").is_active());
        assert!(!State::Lost.is_active() && !State::Completed.is_active());
    }

    #[test]
    fn squeue_wins_over_sacct_and_unknown_jobs_get_a_verdict() {
        let mut entries = parse_squeue("21|20|1|PENDING||BeginTime\n").unwrap();
        entries.extend(parse_sacct(SACCT).unwrap());
        let v = QueueView::from_entries(Answer::Answered, Answer::Answered, entries);
        let t = v.task(20, 1).unwrap();
        assert_eq!(
            (t.state.clone(), t.source),
            (State::Pending, Source::Squeue)
        );
        assert_eq!(v.task(20, 0).unwrap().source, Source::Sacct);
        assert!(v.knows(20) && v.knows(30) && !v.knows(99));
        assert_eq!(v.tasks_of(20).count(), 6);
        let none = QueueView::from_entries(
            Answer::Answered,
            Answer::Unavailable("accounting storage is disabled".into()),
            Vec::new(),
        );
        assert_eq!(
            none.unknown_verdict(123),
            "job 123: unknown to Slurm (ended more than MinJobAge ago, no accounting): judged by its records"
        );
        assert_eq!(
            none.sources(),
            "squeue answered; sacct: accounting storage is disabled"
        );
    }

    #[test]
    fn bounded_run_kills_a_command_that_hangs() {
        let t0 = Instant::now();
        let r = run_bounded("sleep", &["30".to_string()], Duration::from_millis(300));
        assert!(matches!(r, Err(RunError::TimedOut(_))), "{r:?}");
        assert!(t0.elapsed() < Duration::from_secs(5));
        assert!(matches!(
            run_bounded("frames-no-such-program", &[], Duration::from_secs(1)),
            Err(RunError::NotFound(_))
        ));
        let r = run_bounded(
            "sh",
            &[
                "-c".into(),
                "echo 'slurm_load_jobs error: Invalid job id specified' >&2; exit 1".into(),
            ],
            Duration::from_secs(5),
        );
        assert!(
            matches!(&r, Err(RunError::Exit(m)) if m.contains("Invalid job id")),
            "{r:?}"
        );
        assert_eq!(
            run_bounded(
                "sh",
                &["-c".into(), "echo hi".into()],
                Duration::from_secs(5)
            ),
            Ok("hi\n".to_string())
        );
    }

    fn dir_of_array_1000() -> Collection {
        use crate::record::tests::sample;
        use crate::submission::Submission;
        let mut records: Vec<_> = (0..4).map(sample).collect();
        let mut failed = sample(4);
        failed.node = "c2".into();
        failed.exit_code = Some(1);
        failed.decide(true);
        records.push(failed);
        let argv: Vec<String> = "sbatch --array=0-9 --frame-dir=/f r.sh"
            .split(' ')
            .map(str::to_owned)
            .collect();
        Collection {
            root: "/f".into(),
            records,
            submissions: vec![owned(Submission::from_argv(&argv, "/home/u", 1.0))],
            problems: vec![],
            owner_uid: None,
            warnings: vec![],
        }
    }

    #[test]
    fn running_pending_and_requeued_indices_are_never_proposed_lost_ones_are() {
        let c = dir_of_array_1000();
        let view = QueueView::from_entries(
            Answer::Answered,
            Answer::Unavailable("accounting storage is disabled".into()),
            parse_squeue(
                "1005|1000|5|RUNNING|c1|None\n1006|1000|6|COMPLETING|c1|None\n\
                 1007|1000|7|NODE_FAIL|c2|NodeDown\n1000|1000|8-9|PENDING||Resources\n\
                 1003|1000|3|COMPLETED|c1|None\n",
            )
            .unwrap(),
        );
        let jobs = dir_jobs(&c);
        assert_eq!(jobs.ids(), BTreeSet::from([1000]));
        let live = live(&c, &jobs, &view);
        assert_eq!(live.active, BTreeSet::from([5, 6, 8, 9]));
        assert_eq!(
            live.lost_lines(),
            ["lost with node c2: 1000_7 (NODE_FAIL, not requeued)"]
        );
        assert_eq!(
            live.state_line(),
            "1 completed, 1 lost, 2 pending, 2 running"
        );
        assert!(!live.is_idle() && live.unknown.is_empty() && live.stuck.is_empty());
        let mut s = merge::summarize(&c);
        assert_eq!(s.rerun_ranges, "4-9");
        exclude_active(&mut s, &c, &live);
        assert_eq!(s.rerun_ranges, "4,7");
        assert_eq!(s.resubmit.len(), 1);
        assert!(
            s.resubmit[0].command.contains("--array=4,7"),
            "{}",
            s.resubmit[0].command
        );
    }

    /// Several arrays sent from one directory in the same second (a script submitting to
    /// several frame dirs): squeue cannot tell which job is this dir's. While any of them
    /// runs the submission's indices, none is proposed and watch goes on.
    #[test]
    fn an_unlinked_submission_holds_back_what_its_candidate_jobs_still_run() {
        use crate::submission::Submission;
        let argv: Vec<String> = "sbatch --array=0-7%2 --frame-dir=/f r.sh"
            .split(' ')
            .map(str::to_owned)
            .collect();
        let mut sub = Submission::from_argv(&argv, "/home/u", 1.0);
        sub.id = "x".into();
        let c = Collection {
            root: "/f".into(),
            submissions: vec![owned(sub)],
            ..Collection::default()
        };
        let mut jobs = dir_jobs(&c);
        jobs.ambiguous.push(("x".into(), vec![12, 13]));
        assert_eq!(jobs.ids_to_ask(), BTreeSet::from([12, 13]));
        let view = QueueView::from_entries(
            Answer::Answered,
            Answer::Unavailable("accounting storage is disabled".into()),
            parse_squeue(
                "1301|13|0|RUNNING|c1|None\n1302|13|1|RUNNING|c2|None\n\
                 13|13|2-7|PENDING||JobArrayTaskLimit\n1201|12|0-3|COMPLETED|c1|None\n",
            )
            .unwrap(),
        );
        let live = live(&c, &jobs, &view);
        assert_eq!(live.active, (0..8).collect::<BTreeSet<u64>>());
        assert!(!live.is_idle());
        let mut s = merge::summarize(&c);
        assert_eq!(s.rerun_ranges, "0-7");
        exclude_active(&mut s, &c, &live);
        assert_eq!(s.rerun_ranges, "");
        assert!(s.resubmit.is_empty(), "{:?}", s.resubmit);
    }

    /// `frames resubmit` reran failed job 102 as job 110 (linked by squeue, no record yet):
    /// while 110 runs, 102 is not proposed again.
    #[test]
    fn a_running_rerun_holds_back_the_job_it_reruns() {
        use crate::record::tests::sample;
        use crate::submission::Submission;
        let argv: Vec<String> = "sbatch --frame-dir=/f r.sh"
            .split(' ')
            .map(str::to_owned)
            .collect();
        let mut first = Submission::from_argv(&argv, "/home/u", 1.0);
        first.id = "a".into();
        let mut rerun = Submission::from_argv(&argv, "/home/u", 2.0);
        rerun.id = "b".into();
        rerun.reruns_job = Some(102);
        let mut r = sample(0);
        r.job_id = 102;
        r.array_job_id = None;
        r.array_task_id = None;
        r.step = "batch".into();
        r.exit_code = Some(3);
        r.submission = Some("a".into());
        r.decide(false);
        let mut c = Collection {
            root: "/f".into(),
            records: vec![r],
            submissions: vec![owned(first), owned(rerun)],
            ..Collection::default()
        };
        let mut jobs = dir_jobs(&c);
        jobs.linked.push(("b".into(), 110));
        jobs.singles.insert(110);
        settle_submissions(&mut c, &jobs, true, 10.0);
        let view = QueueView::from_entries(
            Answer::Answered,
            Answer::Unavailable("accounting storage is disabled".into()),
            parse_squeue("110|110|N/A|RUNNING|c1|None\n102|102|N/A|FAILED|c1|None\n").unwrap(),
        );
        let live = live(&c, &jobs, &view);
        let mut s = merge::summarize(&c);
        assert_eq!((s.expected, s.failed), (1, 1));
        assert_eq!(s.rerun_jobs, vec![102]);
        exclude_active(&mut s, &c, &live);
        assert!(s.rerun_jobs.is_empty(), "{:?}", s.rerun_jobs);
        assert!(s.resubmit.is_empty(), "{:?}", s.resubmit);
    }

    #[test]
    fn a_dir_whose_jobs_slurm_forgot_is_idle_and_judged_by_its_records() {
        let c = dir_of_array_1000();
        let view = QueueView::from_entries(
            Answer::Answered,
            Answer::Unavailable("accounting storage is disabled".into()),
            Vec::new(),
        );
        let live = live(&c, &dir_jobs(&c), &view);
        assert!(live.is_idle());
        assert_eq!(live.unknown, [1000]);
        let mut s = merge::summarize(&c);
        exclude_active(&mut s, &c, &live);
        assert_eq!(s.rerun_ranges, "4-9");
        let held = QueueView::from_entries(
            Answer::Answered,
            Answer::NotAsked,
            parse_squeue("1000|1000|5-9|PENDING||JobHeldUser\n").unwrap(),
        );
        let live = super::live(&c, &dir_jobs(&c), &held);
        assert_eq!(live.stuck.len(), 5);
        assert!(live.all_stuck());
        assert_eq!(live.stuck[0].reason, "JobHeldUser");
    }

    #[test]
    fn squeue_times_are_utc_seconds() {
        assert_eq!(parse_utc("1970-01-01T00:00:00"), Some(0.0));
        assert_eq!(parse_utc("2026-12-02T06:40:01"), Some(1_796_193_601.0));
        assert_eq!(parse_utc("2024-02-29T12:00:00"), Some(1_709_208_000.0));
        assert_eq!(parse_utc("N/A"), None);
        assert_eq!(parse_utc("2026-13-02T06:40:01"), None);
    }

    #[test]
    fn a_provisional_submission_no_job_came_of_is_rejected_only_once_squeue_answered() {
        use crate::submission::Submission;
        let sub = |id: &str, spec: &str, time: f64| {
            let argv: Vec<String> = vec!["sbatch".into(), format!("--array={spec}"), "r.sh".into()];
            let mut s = Submission::from_argv(&argv, "/home/u/proj", time);
            s.id = id.into();
            s.uid = Some(6001);
            s.state = SubmissionState::Provisional;
            owned(s)
        };
        let collection = || Collection {
            root: "/f".into(),
            records: vec![],
            // `sbatch -p typo --array=0-19` (refused, long ago) and a fresh one still being sent.
            submissions: vec![sub("typo", "0-19", 1000.0), sub("fresh", "0-3", 1990.0)],
            problems: vec![],
            owner_uid: Some(6001),
            warnings: vec![],
        };
        let jobs = DirJobs::default();
        // squeue did not answer: nothing is concluded, indices 0-19 stay expected.
        let mut c = collection();
        assert!(settle_submissions(&mut c, &jobs, false, 2000.0).is_empty());
        assert_eq!(merge::summarize(&c).expected, 20);
        // squeue answered and knows neither: the old one never became a job.
        let mut c = collection();
        let lines = settle_submissions(&mut c, &jobs, true, 2000.0);
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(
            lines[0].starts_with("submission typo: no job came of it"),
            "{}",
            lines[0]
        );
        assert!(lines[0].contains("--array=0-19"), "{}", lines[0]);
        let s = merge::summarize(&c);
        assert_eq!(s.expected, 4);
        assert!(s.resubmit.iter().all(|cmd| !cmd.command.contains("0-19")));
        // Linked by squeue: the job it became, accepted.
        let mut c = collection();
        let linked = DirJobs {
            linked: vec![("typo".into(), 77)],
            ..DirJobs::default()
        };
        assert!(settle_submissions(&mut c, &linked, true, 2000.0).is_empty());
        assert_eq!(c.submissions[0].submission.job_id, Some(77));
        assert_eq!(c.submissions[0].submission.state, SubmissionState::Accepted);
        assert_eq!(merge::summarize(&c).expected, 20);
    }

    #[test]
    fn unlinked_sbatch_submissions_link_to_the_users_job_of_that_dir_and_time() {
        use crate::submission::Submission;
        let sub = |id: &str, array: bool, time: f64| {
            let argv: Vec<String> = if array {
                vec!["sbatch".into(), "--array=0-3".into(), "r.sh".into()]
            } else {
                vec!["sbatch".into(), "r.sh".into()]
            };
            let mut s = Submission::from_argv(&argv, "/home/u/proj", time);
            s.id = id.into();
            s.uid = Some(6001);
            s
        };
        let c = Collection {
            root: "/f".into(),
            records: vec![],
            // A sweep of two jobs one second apart, and an array.
            submissions: vec![
                owned(sub("s1", false, 1_796_193_600.2)),
                owned(sub("s2", false, 1_796_193_601.5)),
                owned(sub("s3", true, 1_796_193_601.7)),
            ],
            problems: vec![],
            owner_uid: Some(6001),
            warnings: vec![],
        };
        // squeue --user: another user's job, a job of another dir, a job from before, then
        // the three jobs.
        let entries = parse_squeue(
            "40|40|N/A|RUNNING|c1|None|6002|2026-12-02T06:40:00|/home/u/proj\n\
             41|41|N/A|RUNNING|c1|None|6001|2026-12-02T06:40:00|/home/u/other\n\
             39|39|N/A|COMPLETED|c1|None|6001|2026-12-02T06:30:00|/home/u/proj\n\
             42|42|N/A|PENDING||BeginTime|6001|2026-12-02T06:40:00|/home/u/proj\n\
             43|43|N/A|PENDING||Priority|6001|2026-12-02T06:40:02|/home/u/proj\n\
             44|44|0-3|PENDING||Priority|6001|2026-12-02T06:40:02|/home/u/proj\n",
        )
        .unwrap();
        assert_eq!(entries[0].work_dir, "/home/u/proj");
        let mut jobs = dir_jobs(&c);
        assert!(jobs.is_empty());
        link(&c, &mut jobs, &entries);
        assert_eq!(
            jobs.linked,
            [
                ("s1".to_string(), 42),
                ("s2".to_string(), 43),
                ("s3".to_string(), 44)
            ]
        );
        assert_eq!(jobs.singles, BTreeSet::from([42, 43]));
        assert!(jobs.ambiguous.is_empty());
        // A job of another dir sent from the same directory in the same second: the sweep
        // can no longer be told apart, so nothing of it is linked (records will link it).
        let mut crowded = entries.clone();
        crowded.extend(
            parse_squeue("45|45|N/A|PENDING||Priority|6001|2026-12-02T06:40:01|/home/u/proj\n")
                .unwrap(),
        );
        let mut guess = dir_jobs(&c);
        link(&c, &mut guess, &crowded);
        assert_eq!(guess.linked, [("s3".to_string(), 44)]);
        assert_eq!(guess.ambiguous.len(), 2, "{guess:?}");
        assert_eq!(jobs.arrays, BTreeSet::from([44]));
        let view = QueueView::from_entries(Answer::Answered, Answer::NotAsked, entries);
        let live = live(&c, &jobs, &view);
        assert_eq!(live.active_jobs.len(), 2);
        assert_eq!(live.active, BTreeSet::from([0, 1, 2, 3]));
    }

    /// A script sends `sbatch -p normal --array=0-9 --frame-dir=A` and, in the same second,
    /// `sbatch -p typo --array=0-9 --frame-dir=B` from one directory: B's refused submission is
    /// never linked to A's job (squeue's %P says normal), so resubmit in B never replays the
    /// typo as accepted work; a submission naming the job's partition still links.
    #[test]
    fn a_submission_naming_partitions_links_only_to_a_job_in_one_of_them() {
        use crate::submission::Submission;
        let collection = |argv: &str| {
            let argv: Vec<String> = argv.split(' ').map(str::to_owned).collect();
            let mut s = Submission::from_argv(&argv, "/home/u/proj", 1_796_193_600.4);
            s.id = "b".into();
            s.uid = Some(6001);
            Collection {
                root: "/f/B".into(),
                submissions: vec![owned(s)],
                owner_uid: Some(6001),
                ..Collection::default()
            }
        };
        let a_job = parse_squeue(
            "50|50|0-9|PENDING||Priority|6001|2026-12-02T06:40:00|normal|/home/u/proj\n",
        )
        .unwrap();
        assert_eq!(a_job[0].partition, "normal");
        for (argv, linked) in [
            ("sbatch -p typo --array=0-9 r.sh", false),
            ("sbatch --partition=typo,nope --array=0-9 r.sh", false),
            ("sbatch -ptypo --array=0-9 r.sh", false),
            ("sbatch -p normal --array=0-9 r.sh", true),
            ("sbatch --partition all,normal --array=0-9 r.sh", true),
            // No partition named: the script or the default decides, so no filter.
            ("sbatch --array=0-9 r.sh", true),
        ] {
            let c = collection(argv);
            let mut jobs = dir_jobs(&c);
            link(&c, &mut jobs, &a_job);
            assert_eq!(!jobs.linked.is_empty(), linked, "{argv}: {jobs:?}");
        }
        // A squeue line from before the partition was asked (9 fields) links as before.
        let legacy =
            parse_squeue("50|50|0-9|PENDING||Priority|6001|2026-12-02T06:40:00|/home/u/proj\n")
                .unwrap();
        assert_eq!(
            (legacy[0].partition.as_str(), legacy[0].work_dir.as_str()),
            ("", "/home/u/proj")
        );
        let c = collection("sbatch -p typo --array=0-9 r.sh");
        let mut jobs = dir_jobs(&c);
        link(&c, &mut jobs, &legacy);
        assert_eq!(jobs.linked.len(), 1);
    }

    /// `sbatch -p typo --array=0-9` a few seconds ago: no job came of it, but squeue has not
    /// had its minute yet. Status counts it as expected; resubmit does not replay it.
    #[test]
    fn a_fresh_unlinked_submission_is_not_replayed() {
        use crate::submission::Submission;
        let argv: Vec<String> = "sbatch -p typo --array=0-9 --frame-dir=/f --wrap true"
            .split(' ')
            .map(str::to_owned)
            .collect();
        let mut sub = Submission::from_argv(&argv, "/home/u", 1000.0);
        sub.id = "typo".into();
        let mut c = Collection {
            root: "/f".into(),
            submissions: vec![owned(sub)],
            ..Collection::default()
        };
        let jobs = dir_jobs(&c);
        assert!(settle_submissions(&mut c, &jobs, true, 1010.0).is_empty());
        let mut s = merge::summarize(&c);
        assert_eq!(s.rerun_ranges, "0-9");
        assert_eq!(s.resubmit.len(), 1);
        let uid = s.resubmit[0].uid;
        // Someone else's command is not held here: it is shown as theirs, never run.
        let mut other = s.clone();
        assert!(hold_undecided(&mut other, &c, uid + 1).is_empty());
        let held = hold_undecided(&mut s, &c, uid);
        assert!(s.resubmit.is_empty(), "{:?}", s.resubmit);
        assert_eq!(held.len(), 1);
        assert!(held[0].contains("-p typo"), "{held:?}");
        // A record names it: decided, replayed.
        let mut r = crate::record::tests::sample(3);
        r.exit_code = Some(1);
        r.submission = Some("typo".into());
        r.decide(false);
        c.records.push(r);
        let mut s = merge::summarize(&c);
        assert!(hold_undecided(&mut s, &c, uid).is_empty());
        assert_eq!(s.resubmit.len(), 1);
    }

    #[test]
    fn holds_and_impossible_requests_never_start_by_themselves() {
        assert!(never_starts_by_itself("JobHeldUser"));
        assert!(never_starts_by_itself("DependencyNeverSatisfied"));
        assert!(!never_starts_by_itself("BeginTime"));
        assert!(!never_starts_by_itself("Resources"));
    }
}
