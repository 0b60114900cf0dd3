//! Per-unit view of a summary for `frames status --json`: what a runner needs without parsing
//! the manifest (state, job, nodes, attempt, exit, reason, results, warnings, tasks).
use std::collections::BTreeSet;

use serde::Serialize;

use super::{Collection, Summary, UnitKey, UnitState, outputs, select};
use crate::record::TaskRecord;

/// One task record that stands for a unit.
#[derive(Serialize, Debug)]
pub struct TaskView<'a> {
    pub step: &'a str,
    pub task: u32,
    pub node: &'a str,
    pub status: &'static str,
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub reason: Option<&'a str>,
}

/// One unit: an array index (`index`) or a non-array job (`job`).
#[derive(Serialize, Debug)]
pub struct UnitView<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job: Option<u32>,
    pub state: UnitState,
    /// The job whose records stand (for an index: the element's own job id).
    pub job_id: Option<u32>,
    pub array_job_id: Option<u32>,
    /// Distinct nodes of the standing records.
    pub nodes: Vec<&'a str>,
    pub attempt: Option<u32>,
    /// The first failing task's exit code, else the batch step's (or first task's).
    pub exit_code: Option<i32>,
    pub reason: Option<&'a str>,
    /// The results of every standing task, in step and task order.
    pub results: Vec<&'a crate::record::RawJson>,
    /// Results that could not be used (line cap, entry cap, broken JSON).
    pub warnings: Vec<String>,
    /// The job's standard output file, when its submission is known.
    pub output_file: Option<String>,
    /// Earlier jobs this unit's records supersede (a resubmission).
    pub replaced_jobs: &'a [u32],
    pub tasks: Vec<TaskView<'a>>,
}

/// The record's warnings (result data dropped or cut), each prefixed with where it ran.
fn warnings_of(r: &TaskRecord) -> impl Iterator<Item = String> + '_ {
    r.warnings
        .iter()
        .map(move |w| format!("{}: {w}", select::task_place(r)))
}

/// The unit views of a summary, in unit order.
pub fn unit_views<'a>(c: &'a Collection, s: &'a Summary) -> Vec<UnitView<'a>> {
    let subs = outputs::Submissions::new(c);
    s.units
        .iter()
        .map(|u| {
            let recs: Vec<&TaskRecord> =
                u.records.iter().filter_map(|&i| c.records.get(i)).collect();
            let chosen = u.chosen.and_then(|i| c.records.get(i));
            let first_failed = recs
                .iter()
                .find(|r| r.status == crate::record::Status::Failed);
            let nodes: BTreeSet<&str> = recs.iter().map(|r| r.node.as_str()).collect();
            UnitView {
                index: match u.key {
                    UnitKey::Index(i) => Some(i),
                    UnitKey::Job(_) => None,
                },
                job: match u.key {
                    UnitKey::Job(j) => Some(j),
                    UnitKey::Index(_) => None,
                },
                state: u.state,
                job_id: chosen.map(|r| r.job_id),
                array_job_id: chosen.and_then(|r| r.array_job_id),
                nodes: nodes.into_iter().collect(),
                attempt: chosen.map(|r| r.attempt),
                exit_code: first_failed.or(chosen.as_ref()).and_then(|r| r.exit_code),
                reason: u.reason.as_deref(),
                results: recs.iter().flat_map(|r| r.results.iter()).collect(),
                warnings: recs.iter().flat_map(|r| warnings_of(r)).collect(),
                output_file: chosen.and_then(|r| subs.output_file(r)),
                replaced_jobs: &u.replaced_jobs,
                tasks: recs
                    .iter()
                    .map(|r| TaskView {
                        step: &r.step,
                        task: r.task_id,
                        node: &r.node,
                        status: r.status.as_str(),
                        exit_code: r.exit_code,
                        signal: r.signal,
                        reason: r.reason.as_deref(),
                    })
                    .collect(),
            }
        })
        .collect()
}
