//! Which job each of a frame dir's sbatch submissions became (sbatch never tells the plugin
//! its job id): from records, from the submissions that know it, or matched in squeue.
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use super::*;
use crate::merge::{Collection, Summary};
use crate::ranges;
use crate::submission::{Submission, SubmissionState};

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

/// sacct's --starttime for submissions made from `earliest` on: "now-N" (seconds), a clock
/// second and a minute of slack before it (Slurm's relative time needs no time zone).
pub fn sacct_since(earliest: f64, now: f64) -> String {
    let back = if earliest.is_finite() {
        (now - earliest).max(0.0).ceil() as u64 + 61
    } else {
        86_400
    };
    format!("now-{back}")
}

fn now_secs() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Links the dir's unlinked sbatch submissions through the submitting users' jobs in squeue
/// and, for jobs squeue has forgotten, in sacct (one call of each per user). Returns an error
/// line when squeue could not be asked.
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
        // squeue forgets a job MinJobAge after it ends (a whole array lost with its node leaves
        // no record): accounting, where there is any, still has it. Without accounting sacct
        // fails, and squeue's answer stands alone.
        let earliest = subs
            .iter()
            .filter(|s| s.uid.map_or_else(String::new, |u| u.to_string()) == user)
            .map(|s| s.time)
            .fold(f64::INFINITY, f64::min);
        let mut args = vec![
            "--noheader".to_string(),
            "--parsable2".to_string(),
            "--allocations".to_string(),
            format!("--format={SACCT_LINK_FORMAT}"),
            format!("--starttime={}", sacct_since(earliest, now_secs())),
        ];
        if !user.is_empty() {
            args.push(format!("--user={user}"));
        }
        if let Ok(Ok(mut e)) = run_bounded(&program("sacct"), &args, limit).map(|t| parse_sacct(&t))
        {
            entries.append(&mut e);
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
