//! Which units a frame directory expects, which task records stand for each, and the summary
//! (counts, per-node table, resubmit commands). The model is described in `merge/mod.rs`.
use std::collections::{BTreeMap, BTreeSet};

use super::{
    Collection, NodeCounts, OwnedSubmission, ResubmitCommand, SUMMARY_VERSION, Summary, Unit,
    UnitKey, UnitState,
};
use crate::layout::StepId;
use crate::record::{Status, TaskRecord};
use crate::submission::{self, Submission, SubmissionState};
use crate::{Problem, ranges};

/// The indices the submissions' array specs list, and problems with unparsable specs.
pub(super) fn submitted_indices<'a>(
    submissions: impl Iterator<Item = &'a Submission>,
) -> (BTreeSet<u64>, bool, Vec<Problem>) {
    let mut set = BTreeSet::new();
    let mut any = false;
    let mut problems = Vec::new();
    for s in submissions {
        let Some(spec) = &s.array else { continue };
        match ranges::parse_array_spec(spec) {
            Ok(v) => {
                any = true;
                set.extend(v);
            }
            Err(e) => problems.push(Problem {
                path: format!("submission of {}", submission::shell_join(&s.argv)),
                error: format!("array spec {e}"),
            }),
        }
    }
    (set, any, problems)
}

/// The unit a record belongs to: its array index, or its (non-array) job.
pub fn unit_of(r: &TaskRecord) -> UnitKey {
    if r.array_task_id.is_some() {
        UnitKey::Index(r.index)
    } else {
        UnitKey::Job(r.job_id)
    }
}

/// Non-array jobs that rerun earlier ones (`frames resubmit` ran them: their submission says
/// `reruns_job`), each mapped to the job whose unit stands for the whole chain: its newest job
/// with records, else its first job. A job in no chain is not in the map (it is its own
/// unit). Only an older job can be rerun (Slurm's ids only grow), so a chain never loops.
pub fn job_units(c: &Collection) -> BTreeMap<u32, u32> {
    let reruns: BTreeMap<&str, u32> = c
        .submissions
        .iter()
        .filter(|s| s.submission.state != SubmissionState::Rejected && s.array.is_none())
        .filter_map(|s| Some((s.submission.id.as_str(), s.submission.reruns_job?)))
        .filter(|(id, _)| !id.is_empty())
        .collect();
    let mut parent: BTreeMap<u32, u32> = BTreeMap::new();
    let mut with_records: BTreeSet<u32> = BTreeSet::new();
    for r in c.records.iter().filter(|r| r.array_task_id.is_none()) {
        with_records.insert(r.job_id);
        if let Some(&old) = r.submission.as_deref().and_then(|id| reruns.get(id))
            && old < r.job_id
        {
            parent.insert(r.job_id, old);
        }
    }
    for s in c.submissions.iter().filter(|s| s.array.is_none()) {
        if let (Some(job), Some(&old)) = (s.job_id, reruns.get(s.submission.id.as_str()))
            && old < job
        {
            parent.entry(job).or_insert(old);
        }
    }
    let root = |mut j: u32| {
        while let Some(&p) = parent.get(&j) {
            j = p;
        }
        j
    };
    let mut chains: BTreeMap<u32, BTreeSet<u32>> = BTreeMap::new();
    for (&job, &old) in &parent {
        let r = root(job);
        chains.entry(r).or_default().extend([job, old]);
    }
    let mut map = BTreeMap::new();
    for (first, members) in chains {
        let unit = members
            .iter()
            .rev()
            .find(|j| with_records.contains(j))
            .copied()
            .unwrap_or(first);
        map.extend(members.into_iter().map(|j| (j, unit)));
    }
    map
}

/// The step as ordered in a unit (batch first, then step numbers; anything else last).
fn step_order(step: &str) -> (u8, u32) {
    match step.parse::<StepId>() {
        Ok(StepId::Batch) => (0, 0),
        Ok(StepId::Step(n)) => (1, n),
        Err(_) => (2, 0),
    }
}

/// "batch step on c1" or "step 2 task 0 on c1": where a task record came from.
pub fn task_place(r: &TaskRecord) -> String {
    match r.step.as_str() {
        "batch" | "extern" => format!("{} step on {}", r.step, r.node),
        step => format!("step {step} task {} on {}", r.task_id, r.node),
    }
}

/// Judges a unit from its standing records (all of one job and attempt, in step/task order).
fn judge(c: &Collection, standing: &[usize]) -> (UnitState, Option<String>) {
    if let Some(&i) = standing
        .iter()
        .find(|&&i| c.records[i].status == Status::Failed)
    {
        let r = &c.records[i];
        let why = r.reason.as_deref().unwrap_or("failed");
        return (UnitState::Failed, Some(format!("{}: {why}", task_place(r))));
    }
    // Done only when every step has all its tasks recorded: a 4-task step with 2 records is
    // still running (or lost two tasks).
    let mut k = 0;
    while k < standing.len() {
        let step = &c.records[standing[k]].step;
        let run = standing[k..]
            .iter()
            .take_while(|&&i| c.records[i].step == *step)
            .count();
        // Sorted by task within the step: distinct tasks are the changes of task id.
        let run_tasks = &standing[k..k + run];
        let tasks = 1 + run_tasks
            .windows(2)
            .filter(|w| c.records[w[0]].task_id != c.records[w[1]].task_id)
            .count();
        let want = standing[k..k + run]
            .iter()
            .map(|&i| c.records[i].task_count)
            .max()
            .unwrap_or(1);
        if (tasks as u64) < u64::from(want) {
            let name = if step == "batch" {
                "batch step".to_owned()
            } else {
                format!("step {step}")
            };
            return (
                UnitState::Missing,
                Some(format!("{name}: {tasks} of {want} tasks recorded")),
            );
        }
        k += run;
    }
    (UnitState::Done, None)
}

/// A unit's standing records and the earlier jobs they supersede.
type Grouped = (Vec<usize>, Vec<u32>);

/// A record's sort key in [`group_units`]: (unit, job, attempt, step, task, position).
type OrderKey = (UnitKey, u32, u32, (u8, u32), u32, usize);

/// Groups the records into units: for each unit key, its standing records and the earlier
/// jobs they supersede.
fn group_units(
    c: &Collection,
    chains: &BTreeMap<u32, u32>,
) -> Vec<(UnitKey, Vec<usize>, Vec<u32>)> {
    // Sort positions by (unit, job, attempt, step, task); each unit's standing records are
    // then the tail run of its greatest (job, attempt).
    let mut order: Vec<OrderKey> = c
        .records
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let unit = match unit_of(r) {
                UnitKey::Job(j) => UnitKey::Job(chains.get(&j).copied().unwrap_or(j)),
                key => key,
            };
            (unit, r.job_id, r.attempt, step_order(&r.step), r.task_id, i)
        })
        .collect();
    order.sort_unstable();
    let mut units = Vec::new();
    let mut k = 0;
    while k < order.len() {
        let key = order[k].0;
        let end = k + order[k..].iter().take_while(|o| o.0 == key).count();
        let (job, attempt) = (order[end - 1].1, order[end - 1].2);
        let start = end
            - order[k..end]
                .iter()
                .rev()
                .take_while(|o| (o.1, o.2) == (job, attempt))
                .count();
        let standing: Vec<usize> = order[start..end].iter().map(|o| o.5).collect();
        let mut replaced: Vec<u32> = order[k..start]
            .iter()
            .map(|o| o.1)
            .filter(|&j| j != job)
            .collect();
        replaced.dedup();
        units.push((key, standing, replaced));
        k = end;
    }
    units
}

/// Computes the summary (and each unit's standing records) of a collection.
pub fn summarize(c: &Collection) -> Summary {
    let (submitted, have_spec, mut problems) = submitted_indices(
        c.submissions
            .iter()
            .map(|s| &s.submission)
            .filter(|s| s.state != SubmissionState::Rejected),
    );
    problems.extend(c.problems.iter().cloned());
    problems.sort();

    // Every unit: those with records (sorted by key), the submitted indices without any,
    // and the accepted non-array jobs without any.
    let chains = job_units(c);
    let grouped = group_units(c, &chains);
    let has = |key: &UnitKey| grouped.binary_search_by(|g| g.0.cmp(key)).is_ok();
    let unexpected: Vec<u64> = grouped
        .iter()
        .filter_map(|g| match g.0 {
            UnitKey::Index(i) if !submitted.contains(&i) => Some(i),
            _ => None,
        })
        .collect();
    let mut without: Vec<UnitKey> = submitted
        .iter()
        .map(|&i| UnitKey::Index(i))
        .chain(
            // A non-array job Slurm accepted (srun and salloc know their job id; the queue
            // links sbatch's) is expected before any of its tasks ended.
            c.submissions
                .iter()
                .map(|s| &s.submission)
                .filter(|s| s.array.is_none() && s.state != SubmissionState::Rejected)
                .filter_map(|s| s.job_id)
                .map(|j| UnitKey::Job(chains.get(&j).copied().unwrap_or(j))),
        )
        .filter(|k| !has(k))
        .collect();
    without.sort_unstable();
    without.dedup();
    let mut keys: Vec<(UnitKey, Option<Grouped>)> = grouped
        .into_iter()
        .map(|(k, standing, replaced)| (k, Some((standing, replaced))))
        .chain(without.into_iter().map(|k| (k, None)))
        .collect();
    keys.sort_unstable_by_key(|k| k.0);

    let mut units = Vec::with_capacity(keys.len());
    let (mut missing, mut failed, mut done) = (Vec::new(), Vec::new(), 0u64);
    let (mut jobs_failed, mut jobs_missing) = (0u64, 0u64);
    let mut jobs = BTreeMap::new();
    let mut rerun_jobs = Vec::new();
    let mut nodes: BTreeMap<&str, NodeCounts> = BTreeMap::new();
    for (key, found) in keys {
        let (standing, replaced_jobs) = found.unwrap_or_default();
        let (state, reason) = if standing.is_empty() {
            (UnitState::Missing, None)
        } else {
            judge(c, &standing)
        };
        for &i in &standing {
            let r = &c.records[i];
            let n = nodes.entry(r.node.as_str()).or_default();
            match r.status {
                Status::Done => n.done += 1,
                Status::Failed => n.failed += 1,
            }
        }
        match (key, state) {
            (_, UnitState::Done) => done += 1,
            (UnitKey::Index(i), UnitState::Failed) => failed.push(i),
            (UnitKey::Index(i), UnitState::Missing) => missing.push(i),
            (UnitKey::Job(_), UnitState::Failed) => jobs_failed += 1,
            (UnitKey::Job(_), UnitState::Missing) => jobs_missing += 1,
        }
        if let UnitKey::Job(j) = key {
            jobs.insert(j, state);
            if state != UnitState::Done {
                rerun_jobs.push(j);
            }
        }
        let chosen = standing
            .iter()
            .copied()
            .find(|&i| c.records[i].step == "batch")
            .or_else(|| standing.first().copied());
        units.push(Unit {
            key,
            state,
            records: standing,
            chosen,
            reason,
            replaced_jobs,
        });
    }
    let failed_count = failed.len() as u64 + jobs_failed;
    let missing_count = missing.len() as u64 + jobs_missing;

    // Every attempt counts for the hosts, the time span and the failing nodes.
    let mut hosts: BTreeSet<&str> = BTreeSet::new();
    let mut first_start: Option<f64> = None;
    let mut last_end: Option<f64> = None;
    for r in &c.records {
        hosts.insert(r.node.as_str());
        if let Some(s) = r.start_time {
            first_start = Some(first_start.map_or(s, |f| f.min(s)));
        }
        last_end = Some(last_end.map_or(r.end_time, |l| l.max(r.end_time)));
    }
    let hosts: Vec<String> = hosts.into_iter().map(str::to_owned).collect();
    let failing_nodes = failing_nodes(&c.records, &BTreeSet::new());

    let mut rerun: Vec<u64> = missing.iter().chain(&failed).copied().collect();
    rerun.sort_unstable();
    let (mut resubmit, uncovered) = resubmit_commands(&c.submissions, &rerun, &failing_nodes);
    let (job_commands, jobs_uncovered) = job_resubmits(c, &units, &failing_nodes);
    resubmit.extend(job_commands);

    Summary {
        version: SUMMARY_VERSION,
        frame_dir: c.root.clone(),
        expected: units.len() as u64,
        done,
        failed: failed_count,
        missing: missing_count,
        expected_from: if have_spec { "submissions" } else { "records" }.to_owned(),
        missing_ranges: ranges::compress(&missing),
        failed_ranges: ranges::compress(&failed),
        rerun_ranges: ranges::compress(&rerun),
        unexpected_ranges: if have_spec {
            ranges::compress(&unexpected)
        } else {
            String::new()
        },
        jobs,
        rerun_jobs,
        attempts: c.records.len() as u64,
        nodes: nodes.into_iter().map(|(n, v)| (n.to_owned(), v)).collect(),
        unique_hosts: hosts.len() as u64,
        hosts,
        failing_nodes,
        first_start,
        last_end,
        resubmit,
        not_resubmittable_ranges: ranges::compress(&uncovered),
        not_resubmittable_jobs: jobs_uncovered,
        problems,
        warnings: c.warnings.clone(),
        units,
    }
}

/// A resubmit command from a submission and the indices it reruns (none: a non-array job).
fn command(
    s: &OwnedSubmission,
    indices: &[u64],
    job: Option<u32>,
    exclude: &[String],
) -> ResubmitCommand {
    let argv = s.submission.resubmit_argv(indices, exclude);
    ResubmitCommand {
        indices: ranges::compress(indices),
        job,
        cwd: s.submission.cwd.clone(),
        command: format!(
            "cd {} && {}",
            submission::shell_quote(&s.submission.cwd),
            submission::shell_join(&argv)
        ),
        argv,
        uid: s.uid,
        submission: s.submission.id.clone(),
    }
}

/// Assigns each rerun index to the latest sbatch submission whose array lists it and builds
/// one command per submission. An index no array submission lists is not resubmittable (a
/// non-array submission reruns a job, not an index). Public for readers that narrow the
/// rerun set (the live queue: nothing pending or running is proposed).
pub fn resubmit_commands(
    submissions: &[OwnedSubmission],
    rerun: &[u64],
    exclude: &[String],
) -> (Vec<ResubmitCommand>, Vec<u64>) {
    let specs: Vec<Option<BTreeSet<u64>>> = submissions
        .iter()
        .map(|s| {
            s.submission
                .array
                .as_deref()
                .and_then(|a| ranges::parse_array_spec(a).ok())
                .map(|v| v.into_iter().collect())
        })
        .collect();
    let mut groups: BTreeMap<usize, Vec<u64>> = BTreeMap::new();
    let mut uncovered = Vec::new();
    for &index in rerun {
        let owner = (0..submissions.len()).rev().find(|&k| {
            let s = &submissions[k].submission;
            s.is_sbatch()
                && s.state != SubmissionState::Rejected
                && specs[k].as_ref().is_some_and(|set| set.contains(&index))
        });
        match owner {
            Some(k) => groups.entry(k).or_default().push(index),
            None => uncovered.push(index),
        }
    }
    let commands = groups
        .into_iter()
        .map(|(k, indices)| command(&submissions[k], &indices, None, exclude))
        .collect();
    (commands, uncovered)
}

/// The submission that made a non-array job: the one its records name (`submission`, the
/// id the plugin passed into the job), else the one that recorded its job id, else the only
/// non-array sbatch submission of the directory (with several, which one made the job is
/// not known, and guessing would rerun another job's command).
pub(super) fn job_submission<'a>(c: &'a Collection, r: &TaskRecord) -> Option<&'a OwnedSubmission> {
    let live = |s: &&OwnedSubmission| s.submission.state != SubmissionState::Rejected;
    if let Some(id) = r.submission.as_deref().filter(|id| !id.is_empty()) {
        return c
            .submissions
            .iter()
            .filter(live)
            .find(|s| s.submission.id == id);
    }
    if let Some(s) = c
        .submissions
        .iter()
        .filter(live)
        .find(|s| s.submission.job_id == Some(r.job_id))
    {
        return Some(s);
    }
    let non_array: Vec<&OwnedSubmission> = c
        .submissions
        .iter()
        .filter(live)
        .filter(|s| s.submission.is_sbatch() && s.submission.array.is_none())
        .collect();
    match non_array.as_slice() {
        [only] => Some(only),
        _ => None,
    }
}

/// The nodes whose attempts failed at least twice and more often than they succeeded (every
/// attempt counts, replaced ones too), unless that is every node that ran any: `resubmit`
/// excludes them. A task Slurm itself ended is no fault of its node: one killed by SIGTERM
/// (how Slurm cancels, times out and preempts), one whose shell reported that SIGTERM
/// (exit code 128 + 15: the shell can exit before its own SIGTERM arrives), and one of the
/// jobs in `ended_by_slurm` (the task ids Slurm says it cancelled or timed out).
pub fn failing_nodes(records: &[TaskRecord], ended_by_slurm: &BTreeSet<u32>) -> Vec<String> {
    let mut attempts: BTreeMap<&str, NodeCounts> = BTreeMap::new();
    for r in records {
        let n = attempts.entry(r.node.as_str()).or_default();
        let excused = r.signal == Some(libc::SIGTERM)
            || r.exit_code == Some(128 + libc::SIGTERM)
            || ended_by_slurm.contains(&r.job_id);
        match r.status {
            Status::Done => n.done += 1,
            Status::Failed if excused => {}
            Status::Failed => n.failed += 1,
        }
    }
    let failing: Vec<String> = attempts
        .iter()
        .filter(|(_, n)| n.failed >= 2 && n.failed > n.done)
        .map(|(name, _)| (*name).to_owned())
        .collect();
    if failing.len() == attempts.len() {
        return Vec::new();
    }
    failing
}

/// One command per rerun non-array job (its submission as recorded), and the jobs whose
/// submission is not known.
pub fn job_resubmits(
    c: &Collection,
    units: &[Unit],
    exclude: &[String],
) -> (Vec<ResubmitCommand>, Vec<u32>) {
    let mut commands = Vec::new();
    let mut uncovered = Vec::new();
    for u in units {
        let UnitKey::Job(job) = u.key else { continue };
        if u.state == UnitState::Done {
            continue;
        }
        let made_by = match u.chosen.and_then(|i| c.records.get(i)) {
            Some(r) => job_submission(c, r),
            // No record yet: the submission that recorded the job id.
            None => c
                .submissions
                .iter()
                .find(|s| s.submission.job_id == Some(job)),
        };
        match made_by.filter(|s| s.submission.is_sbatch()) {
            Some(s) => commands.push(command(s, &[], Some(job), exclude)),
            None => uncovered.push(job),
        }
    }
    (commands, uncovered)
}
