//! Merging a frame directory's records into DIR/manifest.jsonl, DIR/summary.json and
//! DIR/summary.csv, and electing the one task that does it when a job completes.
//!
//! The job model (issue 20): the unit of work of an array job is its array index (a frame);
//! the unit of work of a non-array job (plain sbatch, sbatch with srun steps, salloc, srun) is
//! the job itself, keyed by its job id, so several jobs in one directory never hide each other.
//! A unit's standing records are every task record (all steps, all tasks) of its latest
//! attempt: for an index, of the newest job that ran it (a resubmission gets a new, larger job
//! id; Slurm's ids only grow), within that job the latest attempt (requeues raise the restart
//! count). A unit is done when all of them are done and every step has as many task records
//! as it had tasks; failed when any of them failed (the reason names the step, task and node);
//! missing when it has none (or a step's tasks are not all recorded yet).
//!
//! Expected units: the union of the trusted submissions' `--array` indices, the indices seen,
//! and every non-array job seen. Indices that have records but are outside every spec are kept
//! too (listed as `unexpected`): a merge never hides a record.
//!
//! Trust: records and submissions count only when their file is owned by the owner of
//! `DIR/.frames` (the plugin creates it as the job's user and keeps it private); others are
//! reported as problems. Merging is idempotent: the outputs hold nothing but what the files say.
//!
//! Stages, one file each: `collect` (reading and trust), `select` (units and the summary),
//! `outputs` (manifest, CSV, summary.json), `view` (per-unit JSON for `frames status`),
//! `finish` (the finisher election).
mod collect;
mod finish;
mod outputs;
mod select;
mod view;

use std::collections::BTreeMap;
use std::io;

use serde::{Deserialize, Serialize};

use crate::Problem;
use crate::layout::Layout;
use crate::record::TaskRecord;
use crate::submission::Submission;

pub use collect::{Refreshed, Tracker, collect, collect_with_threads};
pub use finish::try_finish;
pub use outputs::{Submissions, csv_bytes, manifest_bytes, write_outputs};
pub use select::{
    failing_nodes, job_resubmits, job_units, resubmit_commands, summarize, task_place, unit_of,
};
pub use view::{TaskView, UnitView, unit_views};

/// Version of the summary format (2: units are indices or jobs, `jobs`, `unique_hosts`).
pub const SUMMARY_VERSION: u32 = 2;

/// Everything read from a frame directory.
#[derive(Debug, Clone, Default)]
pub struct Collection {
    /// DIR.
    pub root: String,
    /// Every readable, trusted record, ordered by file name key (index, attempt, job, step, task).
    pub records: Vec<TaskRecord>,
    /// Trusted submissions, oldest first.
    pub submissions: Vec<OwnedSubmission>,
    /// Files that could not be used (unreadable, corrupt, foreign), sorted by path.
    pub problems: Vec<Problem>,
    /// The uid that owns `DIR/.frames`: the user whose jobs' files are trusted.
    pub owner_uid: Option<u32>,
    /// Things about the directory itself a user should know (writable by others, ...).
    pub warnings: Vec<String>,
}

/// A submission and the uid that owns its file.
#[derive(Debug, Clone, PartialEq)]
pub struct OwnedSubmission {
    /// The file name under `.frames/submissions/`.
    pub name: String,
    pub uid: u32,
    pub submission: Submission,
}

/// Reads as the submission it holds (`s.job_id`, `s.is_sbatch()`).
impl std::ops::Deref for OwnedSubmission {
    type Target = Submission;

    fn deref(&self) -> &Submission {
        &self.submission
    }
}

/// Counts of standing task records on one node.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NodeCounts {
    pub done: u64,
    pub failed: u64,
}

/// A command that reruns some indices, or one non-array job.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct ResubmitCommand {
    /// The indices it reruns, compressed (empty for a non-array job).
    pub indices: String,
    /// The non-array job it replaces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<u32>,
    /// Directory to run it in (the original submission's).
    pub cwd: String,
    pub argv: Vec<String>,
    /// `cd CWD && ARGV...`, shell-quoted, for copy and paste.
    pub command: String,
    /// The uid that owns the recorded submission: `frames resubmit` runs only its own.
    pub uid: u32,
    /// The id of the submission whose command it reruns.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub submission: String,
}

/// What a unit of work is: an array index (a frame) or a non-array job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum UnitKey {
    Index(u64),
    Job(u32),
}

/// The state of a unit.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum UnitState {
    Done,
    Failed,
    Missing,
}

impl UnitState {
    pub fn as_str(self) -> &'static str {
        match self {
            UnitState::Done => "done",
            UnitState::Failed => "failed",
            UnitState::Missing => "missing",
        }
    }
}

/// One unit of work and the records that stand for it.
#[derive(Debug, Clone, PartialEq)]
pub struct Unit {
    pub key: UnitKey,
    pub state: UnitState,
    /// Positions in `Collection::records` of the standing task records (latest attempt of the
    /// newest job), by step and task.
    pub records: Vec<usize>,
    /// The record that names the unit's frame file and stands for it in the manifest's
    /// per-index view: the batch step's, else the first standing one.
    pub chosen: Option<usize>,
    /// Why it failed ("step 2 task 0 on c1: exit code 1") or is incomplete.
    pub reason: Option<String>,
    /// Earlier jobs whose records this unit's newest job supersedes (a resubmitted frame).
    pub replaced_jobs: Vec<u32>,
}

/// The merged state of a frame directory (summary.json).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Summary {
    pub version: u32,
    pub frame_dir: String,
    /// Units of work (array indices and non-array jobs).
    pub expected: u64,
    pub done: u64,
    pub failed: u64,
    pub missing: u64,
    /// Where the expected indices come from: "submissions" (array specs) or "records".
    pub expected_from: String,
    pub missing_ranges: String,
    pub failed_ranges: String,
    /// Missing and failed indices: what `frames resubmit` reruns of the array jobs.
    pub rerun_ranges: String,
    /// Indices with records that no submission's array spec lists.
    pub unexpected_ranges: String,
    /// Non-array jobs (units keyed by job id), each with its state.
    #[serde(default)]
    pub jobs: BTreeMap<u32, UnitState>,
    /// Non-array jobs that failed or whose tasks are not all recorded.
    #[serde(default)]
    pub rerun_jobs: Vec<u32>,
    /// Record files read (every attempt).
    pub attempts: u64,
    /// Done and failed standing task records per node (what the headline counts, by task).
    pub nodes: BTreeMap<String, NodeCounts>,
    /// Distinct nodes that ran tasks (every attempt).
    pub hosts: Vec<String>,
    /// `hosts.len()`, for runbooks that require several hosts.
    #[serde(default)]
    pub unique_hosts: u64,
    /// Nodes that failed two or more attempts and more than they completed; excluded by
    /// resubmit. Empty when that would be every node (the job, not the nodes, is failing).
    /// Tasks ended by SIGTERM (scancel, time limit, preemption) do not count.
    pub failing_nodes: Vec<String>,
    /// Earliest task start and latest task end, unix seconds.
    pub first_start: Option<f64>,
    pub last_end: Option<f64>,
    /// Commands that rerun the missing and failed units (one per submission for indices, one
    /// per failed non-array job).
    pub resubmit: Vec<ResubmitCommand>,
    /// Rerun indices that no recorded sbatch submission covers.
    pub not_resubmittable_ranges: String,
    /// Rerun non-array jobs whose submission is not known.
    #[serde(default)]
    pub not_resubmittable_jobs: Vec<u32>,
    pub problems: Vec<Problem>,
    /// About the directory itself (writable by others, `.frames` owned by someone else).
    #[serde(default)]
    pub warnings: Vec<String>,
    /// Each unit and its standing records (not serialized: that is the manifest).
    #[serde(skip)]
    pub units: Vec<Unit>,
}

impl Summary {
    /// Every expected unit has its records (done or failed).
    pub fn is_settled(&self) -> bool {
        self.expected > 0 && self.missing == 0
    }
}

/// Collects, summarizes and writes the outputs. Same files in, byte-identical outputs out.
pub fn merge(layout: &Layout) -> io::Result<Summary> {
    let c = collect(layout)?;
    let s = summarize(&c);
    write_outputs(layout, &c, &s)?;
    Ok(s)
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod model_tests;
