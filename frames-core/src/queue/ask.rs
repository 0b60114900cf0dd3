//! Running squeue and sacct with a bounded time, and what they answered about a set of jobs.
use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::*;

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

/// Reads `r` to its end in a thread; the bytes arrive on `done` tagged `which` (the pipe's end
/// is how the caller learns, without polling, that the program is finishing).
fn drain(
    mut r: impl Read + Send + 'static,
    which: usize,
    done: std::sync::mpsc::Sender<(usize, Vec<u8>)>,
) {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = r.read_to_end(&mut buf);
        let _ = done.send((which, buf));
    });
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
    let (tx, rx) = std::sync::mpsc::channel();
    drain(out, 0, tx.clone());
    drain(err, 1, tx);
    let deadline = Instant::now() + limit;
    let timed_out = |child: &mut std::process::Child| {
        let _ = child.kill();
        let _ = child.wait();
        // The reader threads end once the pipes close (a grandchild holding them open would
        // keep them: they are left to end on their own).
        RunError::TimedOut(format!(
            "{program}: no answer within {} s: killed",
            limit.as_secs_f64()
        ))
    };
    // Both pipes at their end first (woken at once, no polling), then the exit status.
    let mut outputs: [Vec<u8>; 2] = [Vec::new(), Vec::new()];
    for _ in 0..2 {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok((which, bytes)) => outputs[which] = bytes,
            Err(_) => return Err(timed_out(&mut child)),
        }
    }
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() >= deadline => return Err(timed_out(&mut child)),
            // Closed its output, not exited yet: that is usually a matter of microseconds.
            Ok(None) => std::thread::sleep(Duration::from_millis(1)),
            Err(e) => return Err(RunError::Io(format!("{program}: {e}"))),
        }
    };
    let [out, err] = outputs;
    let stdout = String::from_utf8_lossy(&out).into_owned();
    let stderr = String::from_utf8_lossy(&err).into_owned();
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
