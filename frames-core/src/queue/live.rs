//! What Slurm still does with a frame dir's jobs, in the dir's terms: active, lost, stuck or
//! unknown indices and jobs, taken out of what `missing` and `resubmit` propose.
use std::collections::{BTreeMap, BTreeSet};

use super::*;
use crate::merge::{self, Collection, Summary};
use crate::ranges;
use crate::record::Status;

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
    /// Tasks or jobs cancelled (scancel, preemption, deadline) whose index has no done record.
    pub cancelled: Vec<Entry>,
    /// Every task and job of the dir Slurm knows, as squeue or sacct said (in id order).
    pub entries: Vec<Entry>,
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

    /// One line for the cancelled tasks/jobs: "cancelled: 22_4,22_5 (CANCELLED by 6001)".
    pub fn cancelled_lines(&self) -> Vec<String> {
        let mut by_raw: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        for e in &self.cancelled {
            by_raw.entry(&e.raw_state).or_default().push(e.name());
        }
        by_raw
            .into_iter()
            .map(|(raw, names)| format!("cancelled: {} ({raw})", names.join(",")))
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
        live.entries.push(e.clone());
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
            } else if e.state == State::Cancelled && !done.contains(&index) {
                live.cancelled.push(e.clone());
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
        } else if e.state == State::Cancelled {
            live.cancelled.push(e.clone());
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
    // The records alone cannot tell every cancel from a node's fault (a script may exit 1 on
    // SIGTERM): the tasks Slurm says it cancelled or timed out do not count against a node.
    let ended_by_slurm: BTreeSet<u32> = live
        .entries
        .iter()
        .filter(|e| matches!(e.state, State::Cancelled | State::Timeout))
        .map(|e| e.job_id)
        .collect();
    if !ended_by_slurm.is_empty() {
        s.failing_nodes = merge::failing_nodes(&c.records, &ended_by_slurm);
    }
    let (mut resubmit, uncovered) =
        merge::resubmit_commands(&c.submissions, &keep, &s.failing_nodes);
    // A non-array job's command reruns that job: kept while the job is still to rerun.
    let (job_commands, _) = merge::job_resubmits(c, &s.units, &s.failing_nodes);
    resubmit.extend(
        job_commands
            .into_iter()
            .filter(|cmd| cmd.job.is_some_and(|j| s.rerun_jobs.contains(&j))),
    );
    s.rerun_ranges = ranges::compress(&keep);
    s.resubmit = resubmit;
    s.not_resubmittable_ranges = ranges::compress(&uncovered);
}
