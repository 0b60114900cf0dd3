//! squeue and sacct output parsed into one entry per job or array task.
use crate::ranges;

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
pub(super) fn parse_utc(text: &str) -> Option<f64> {
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

/// Parses `sacct --noheader --parsable2 --allocations --format=SACCT_FORMAT` (or
/// SACCT_LINK_FORMAT) output. Step
/// lines ("12.batch"), which `--allocations` leaves out anyway, are skipped.
pub fn parse_sacct(text: &str) -> Result<Vec<Entry>, String> {
    let src = Source::Sacct;
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let f: Vec<&str> = line.splitn(9, '|').collect();
        let (raw, job, state, nodes, link, partition) = match f[..] {
            [raw, job, state, nodes, _exit] => (raw, job, state, nodes, None, ""),
            [raw, job, state, nodes, _exit, u, v, p, z] => {
                (raw, job, state, nodes, Some((u, v, z)), p)
            }
            _ => {
                return Err(bad_line(
                    src,
                    line,
                    "expected 5 (or 9, with the link fields) '|'-separated fields",
                ));
            }
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
            uid: link.and_then(|(u, _, _)| u.trim().parse().ok()),
            submit_time: link.and_then(|(_, v, _)| parse_utc(v)),
            work_dir: link.map(|(_, _, z)| z.to_owned()).unwrap_or_default(),
            partition: partition.trim().to_owned(),
        };
        push_rows(&mut out, template, tasks);
    }
    Ok(out)
}
