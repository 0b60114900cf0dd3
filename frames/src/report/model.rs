//! What `frames report` shows, computed from a collection and its summary (no I/O): one tile
//! per expected frame (done, failed with its reason and node, missing with why when Slurm
//! said), the timeline (every task attempt as a bar on its node, superseded attempts kept),
//! per-node figures, and the results table (every standing task's RESULT fields).
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;

use frames_core::merge::{Collection, Submissions, Summary, UnitKey, UnitState};
use frames_core::ranges;
use frames_core::record::{Status, TaskRecord};
use frames_core::submission::SubmissionState;

/// At most this many RESULT keys get a column of their own; the rest share one.
pub const MAX_RESULT_COLUMNS: usize = 24;

/// How a tile looks: a frame, a failed frame, or a placeholder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TileState {
    Done,
    Failed,
    Missing,
}

impl TileState {
    pub fn as_str(self) -> &'static str {
        match self {
            TileState::Done => "done",
            TileState::Failed => "failed",
            TileState::Missing => "missing",
        }
    }
}

/// One expected array index in the contact sheet.
#[derive(Debug, Clone, PartialEq)]
pub struct Tile {
    pub index: u64,
    pub state: TileState,
    /// Why it failed ("exit code 3") or is missing ("lost with node c2 (NODE_FAIL)"); None
    /// for a done frame.
    pub reason: Option<String>,
    /// The node of the record that stands for it (the failing task's for a failed frame).
    pub node: Option<String>,
    /// The frame file to show (as the record names it, joined to DIR), when it has one.
    pub frame: Option<PathBuf>,
    /// The record's size and checksums of the frame, to tell a changed file.
    pub size: Option<u64>,
    pub blake3: Option<String>,
    pub sha256: Option<String>,
    /// "rerun by job 212 (first run: job 200)" when a resubmission made the standing record.
    pub rerun: Option<String>,
}

/// How a task attempt ended, as the timeline colours it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Done,
    Failed,
    /// An earlier attempt (requeue) or an earlier job (resubmission) whose record no longer
    /// stands for its unit.
    Superseded,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Done => "done",
            Outcome::Failed => "failed",
            Outcome::Superseded => "superseded",
        }
    }
}

/// One task attempt on the timeline.
#[derive(Debug, Clone, PartialEq)]
pub struct Bar {
    /// "index 5" or "job 312".
    pub unit: String,
    pub job_id: u32,
    pub attempt: u32,
    pub start: f64,
    pub end: f64,
    pub outcome: Outcome,
    /// Lane within the node's row (tasks that overlap in time get different lanes).
    pub lane: usize,
    /// The task's failure reason, if it failed.
    pub reason: Option<String>,
}

/// One node's row of the timeline and its figures.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeRow {
    pub node: String,
    pub bars: Vec<Bar>,
    pub lanes: usize,
    /// Task attempts that ran on the node (every attempt).
    pub tasks: usize,
    pub failures: usize,
    pub superseded: usize,
    /// Median seconds from start to end of its tasks that have a start time.
    pub median: Option<f64>,
    /// Tasks Slurm says were lost with the node (node failure): they left no record, so no bar.
    pub lost: usize,
}

/// One row of the results table: a standing task, or a unit with no record.
#[derive(Debug, Clone, PartialEq)]
pub struct ResultRow {
    /// "5" or "job 312".
    pub unit: String,
    /// For sorting: the index, or the job id.
    pub unit_key: u64,
    pub state: &'static str,
    pub node: String,
    pub job: String,
    pub attempt: String,
    pub start: Option<f64>,
    pub seconds: Option<f64>,
    pub exit: String,
    pub reason: String,
    /// One cell per `Report::columns`.
    pub fields: Vec<String>,
    /// Results that are no JSON object, and keys beyond the column cap, as JSON text.
    pub other: String,
}

/// Everything the page and the PNGs show.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub dir: String,
    pub expected: u64,
    pub done: u64,
    pub failed: u64,
    pub missing: u64,
    /// The run makes image files (false for `--frame-pattern=none` runs and job sweeps).
    pub has_frames: bool,
    pub tiles: Vec<Tile>,
    pub nodes: Vec<NodeRow>,
    /// Earliest start and latest end over every attempt.
    pub span: Option<(f64, f64)>,
    pub columns: Vec<String>,
    pub rows: Vec<ResultRow>,
    pub missing_ranges: String,
    pub failed_ranges: String,
    pub rerun_ranges: String,
    pub rerun_jobs: Vec<u32>,
    /// The sbatch commands `frames resubmit` runs (after what Slurm still runs is left out).
    pub resubmit: Vec<String>,
    /// Standing task records per host (`unique_hosts` of the summary: every attempt).
    pub host_counts: Vec<(String, u64, u64)>,
    pub unique_hosts: u64,
    /// Warnings, problems and what Slurm said, one line each.
    pub notes: Vec<String>,
}

/// The failing record of a unit, else its chosen one.
fn standing_record<'a>(
    c: &'a Collection,
    records: &[usize],
    chosen: Option<usize>,
) -> Option<&'a TaskRecord> {
    records
        .iter()
        .filter_map(|&i| c.records.get(i))
        .find(|r| r.status == Status::Failed)
        .or_else(|| chosen.and_then(|i| c.records.get(i)))
}

/// For each index, the oldest accepted array submission listing it (its id).
fn first_submission_of(c: &Collection) -> HashMap<u64, &str> {
    let mut first = HashMap::new();
    for s in c
        .submissions
        .iter()
        .filter(|s| s.submission.state != SubmissionState::Rejected)
    {
        let Some(spec) = s.submission.array.as_deref() else {
            continue;
        };
        let Ok(list) = ranges::parse_array_spec(spec) else {
            continue;
        };
        for i in list {
            first.entry(i).or_insert(s.submission.id.as_str());
        }
    }
    first
}

/// The oldest job that ran an index (any attempt), to name in a rerun note.
fn first_job_of(c: &Collection) -> HashMap<u64, u32> {
    let mut first: HashMap<u64, u32> = HashMap::new();
    for r in c.records.iter().filter(|r| r.array_task_id.is_some()) {
        let job = r.array_job_id.unwrap_or(r.job_id);
        first
            .entry(r.index)
            .and_modify(|j| *j = (*j).min(job))
            .or_insert(job);
    }
    first
}

/// Missing indices Slurm said were lost with a node: index → "lost with node c2 (NODE_FAIL)".
pub type Lost = BTreeMap<u64, String>;

/// Builds the report. `lost` comes from asking Slurm (empty when it was not asked); `notes`
/// are lines to show as they are (what Slurm said).
pub fn build(c: &Collection, s: &Summary, lost: &Lost, notes: Vec<String>) -> Report {
    let subs = Submissions::new(c);
    let first_sub = first_submission_of(c);
    let first_job = first_job_of(c);
    let root = PathBuf::from(&c.root);
    let has_frames = c.records.iter().any(|r| r.frame_path.is_some())
        || c.submissions
            .iter()
            .any(|s| s.submission.array.is_some() && s.submission.frame_pattern != "none");

    let mut tiles = Vec::new();
    for u in &s.units {
        let UnitKey::Index(index) = u.key else {
            continue;
        };
        let record = standing_record(c, &u.records, u.chosen);
        let state = match u.state {
            UnitState::Done => TileState::Done,
            UnitState::Failed => TileState::Failed,
            UnitState::Missing => TileState::Missing,
        };
        let reason = match state {
            TileState::Done => None,
            TileState::Failed => Some(
                record
                    .and_then(|r| r.reason.clone())
                    .or_else(|| u.reason.clone())
                    .unwrap_or_else(|| "failed".into()),
            ),
            TileState::Missing => Some(match (lost.get(&index), &u.reason) {
                (Some(l), _) => l.clone(),
                (None, Some(r)) => format!("incomplete: {r}"),
                (None, None) => "no record (not run yet, or lost)".into(),
            }),
        };
        let chosen = u.chosen.and_then(|i| c.records.get(i));
        let rerun = chosen.and_then(|r| {
            let job = r.array_job_id.unwrap_or(r.job_id);
            let first = first_job.get(&index).copied().filter(|&f| f != job);
            let by_other_submission = match (r.submission.as_deref(), first_sub.get(&index)) {
                (Some(mine), Some(&oldest)) => !mine.is_empty() && mine != oldest,
                _ => false,
            };
            match first {
                Some(f) => Some(format!("rerun by job {job} (first run: job {f})")),
                None if by_other_submission => Some(format!("rerun by job {job}")),
                None => None,
            }
        });
        tiles.push(Tile {
            index,
            state,
            reason,
            node: record.map(|r| r.node.clone()),
            frame: chosen
                .and_then(|r| r.frame_path.as_deref())
                .map(|p| root.join(p)),
            size: chosen.and_then(|r| r.frame_size),
            blake3: chosen.and_then(|r| r.frame_blake3.clone()),
            sha256: chosen.and_then(|r| r.frame_sha256.clone()),
            rerun,
        });
    }

    let standing: HashSet<usize> = s
        .units
        .iter()
        .flat_map(|u| u.records.iter().copied())
        .collect();
    let mut by_node: BTreeMap<&str, Vec<Bar>> = BTreeMap::new();
    for (i, r) in c.records.iter().enumerate() {
        let outcome = if !standing.contains(&i) {
            Outcome::Superseded
        } else if r.status == Status::Failed {
            Outcome::Failed
        } else {
            Outcome::Done
        };
        by_node.entry(r.node.as_str()).or_default().push(Bar {
            unit: unit_name(r),
            job_id: r.job_id,
            attempt: r.attempt,
            start: r.start_time.unwrap_or(r.end_time).min(r.end_time),
            end: r.end_time,
            outcome,
            lane: 0,
            reason: r.reason.clone(),
        });
    }
    let nodes = by_node
        .into_iter()
        .map(|(node, bars)| node_row(node, bars))
        .collect();

    let (columns, rows) = result_rows(c, s, &subs);
    let host_counts = s
        .nodes
        .iter()
        .map(|(n, k)| (n.clone(), k.done, k.failed))
        .collect();
    let mut all_notes: Vec<String> = s.warnings.iter().map(|w| format!("warning: {w}")).collect();
    all_notes.extend(
        s.problems
            .iter()
            .map(|p| format!("{}: {}", p.path, p.error)),
    );
    all_notes.extend(notes);
    Report {
        dir: s.frame_dir.clone(),
        expected: s.expected,
        done: s.done,
        failed: s.failed,
        missing: s.missing,
        has_frames,
        tiles,
        nodes,
        span: s.first_start.zip(s.last_end),
        columns,
        rows,
        missing_ranges: s.missing_ranges.clone(),
        failed_ranges: s.failed_ranges.clone(),
        rerun_ranges: s.rerun_ranges.clone(),
        rerun_jobs: s.rerun_jobs.clone(),
        resubmit: s.resubmit.iter().map(|r| r.command.clone()).collect(),
        host_counts,
        unique_hosts: s.unique_hosts,
        notes: all_notes,
    }
}

fn unit_name(r: &TaskRecord) -> String {
    match frames_core::merge::unit_of(r) {
        UnitKey::Index(i) => format!("index {i}"),
        UnitKey::Job(j) => format!("job {j}"),
    }
}

/// Lanes for overlapping tasks (first free lane, in start order) and the node's figures.
pub fn node_row(node: &str, mut bars: Vec<Bar>) -> NodeRow {
    bars.sort_by(|a, b| a.start.total_cmp(&b.start).then(a.end.total_cmp(&b.end)));
    let mut lane_ends: Vec<f64> = Vec::new();
    for bar in &mut bars {
        match lane_ends.iter().position(|&end| end <= bar.start) {
            Some(l) => {
                bar.lane = l;
                lane_ends[l] = bar.end;
            }
            None => {
                bar.lane = lane_ends.len();
                lane_ends.push(bar.end);
            }
        }
    }
    let mut times: Vec<f64> = bars
        .iter()
        .filter(|b| b.end > b.start)
        .map(|b| b.end - b.start)
        .collect();
    times.sort_by(f64::total_cmp);
    let median = match times.len() {
        0 => None,
        n if n % 2 == 1 => Some(times[n / 2]),
        n => Some((times[n / 2 - 1] + times[n / 2]) / 2.0),
    };
    NodeRow {
        node: node.to_owned(),
        tasks: bars.len(),
        // Every failed attempt, superseded or not (a failed task always has a reason).
        failures: bars.iter().filter(|b| b.reason.is_some()).count(),
        superseded: bars
            .iter()
            .filter(|b| b.outcome == Outcome::Superseded)
            .count(),
        lanes: lane_ends.len().max(1),
        bars,
        median,
        lost: 0,
    }
}

/// Counts Slurm's lost tasks on their nodes' rows (a node that left no record at all gets a
/// row of its own, without bars): a node that died shows as such on the timeline.
pub fn count_lost(r: &mut Report, per_node: &BTreeMap<String, usize>) {
    for (node, &n) in per_node {
        match r.nodes.iter_mut().find(|row| &row.node == node) {
            Some(row) => row.lost += n,
            None => {
                let mut row = node_row(node, Vec::new());
                row.lost = n;
                r.nodes.push(row);
            }
        }
    }
}

/// A result value as a cell: strings as they are, anything else as JSON.
fn cell(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The results table: one row per standing task record (one per unit without any), the
/// union of the results' top-level keys as columns (first seen first, capped).
fn result_rows(c: &Collection, s: &Summary, subs: &Submissions) -> (Vec<String>, Vec<ResultRow>) {
    let mut columns: Vec<String> = Vec::new();
    let mut known: HashSet<String> = HashSet::new();
    let mut parsed: Vec<(usize, Vec<serde_json::Value>)> = Vec::new();
    for u in &s.units {
        for &i in &u.records {
            let Some(r) = c.records.get(i) else { continue };
            let values: Vec<serde_json::Value> = r
                .results
                .iter()
                .map(|raw| {
                    raw.to_value()
                        .unwrap_or_else(|_| serde_json::Value::String(raw.as_str().to_owned()))
                })
                .collect();
            for v in &values {
                if let serde_json::Value::Object(map) = v {
                    for k in map.keys() {
                        if columns.len() < MAX_RESULT_COLUMNS && known.insert(k.clone()) {
                            columns.push(k.clone());
                        }
                    }
                }
            }
            parsed.push((i, values));
        }
    }
    let mut values_of: HashMap<usize, Vec<serde_json::Value>> = parsed.into_iter().collect();
    let mut rows = Vec::new();
    for u in &s.units {
        let (unit, unit_key) = match u.key {
            UnitKey::Index(i) => (i.to_string(), i),
            UnitKey::Job(j) => (format!("job {j}"), u64::from(j)),
        };
        if u.records.is_empty() {
            rows.push(ResultRow {
                unit,
                unit_key,
                state: u.state.as_str(),
                node: String::new(),
                job: String::new(),
                attempt: String::new(),
                start: None,
                seconds: None,
                exit: String::new(),
                reason: u.reason.clone().unwrap_or_default(),
                fields: vec![String::new(); columns.len()],
                other: String::new(),
            });
            continue;
        }
        for &i in &u.records {
            let Some(r) = c.records.get(i) else { continue };
            let values = values_of.remove(&i).unwrap_or_default();
            let mut fields = vec![String::new(); columns.len()];
            let mut other = Vec::new();
            for v in values {
                match v {
                    serde_json::Value::Object(map) => {
                        let mut rest = serde_json::Map::new();
                        for (k, v) in map {
                            match columns.iter().position(|c| *c == k) {
                                Some(p) if fields[p].is_empty() => fields[p] = cell(&v),
                                Some(p) => fields[p] = format!("{}; {}", fields[p], cell(&v)),
                                None => {
                                    rest.insert(k, v);
                                }
                            }
                        }
                        if !rest.is_empty() {
                            other.push(serde_json::Value::Object(rest).to_string());
                        }
                    }
                    v => other.push(v.to_string()),
                }
            }
            for e in &r.result_errors {
                other.push(format!("unusable result {:?}: {}", e.line, e.error));
            }
            let job = match r.array_job_id.zip(r.array_task_id) {
                Some((a, t)) => format!("{a}_{t}"),
                None => r.job_id.to_string(),
            };
            let step = match r.step.as_str() {
                "batch" => String::new(),
                s => format!(" step {s}.{}", r.task_id),
            };
            let exit = match (r.signal, r.exit_code) {
                (Some(sig), _) => frames_core::record::signal_name(sig)
                    .map_or_else(|| format!("signal {sig}"), str::to_owned),
                (None, Some(code)) => code.to_string(),
                (None, None) => String::new(),
            };
            let output = subs.output_file(r).map(|f| format!(" (output: {f})"));
            rows.push(ResultRow {
                unit: unit.clone(),
                unit_key,
                state: if r.status == Status::Failed {
                    "failed"
                } else {
                    u.state.as_str()
                },
                node: r.node.clone(),
                job: format!("{job}{step}"),
                attempt: r.attempt.to_string(),
                start: r.start_time,
                seconds: r.duration(),
                exit,
                reason: r
                    .reason
                    .clone()
                    .map(|why| format!("{why}{}", output.unwrap_or_default()))
                    .unwrap_or_default(),
                fields,
                other: other.join("; "),
            });
        }
    }
    (columns, rows)
}
