//! Electing the one task that merges when a job completes (called by the plugin after each
//! record write).
use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::os::unix::fs::OpenOptionsExt;

use super::Summary;
use super::collect::{MAX_RECORD_BYTES, annotate, list_records};
use super::merge;
use super::select::submitted_indices;
use crate::layout::{Layout, StepId};
use crate::record::TaskRecord;
use crate::store::{self, Listing, Place};
use crate::submission;

/// (job id, attempt, step): the task records of one step of one attempt.
type StepAttempt = (u32, u32, StepId);

/// Whether every expected unit has its records, judged from names (plus the small submission
/// files, and one record per non-array step for its task count):
/// - with array specs recorded: every listed index has a record (cheap at 100,000 indices: no
///   record is opened);
/// - without: every step of every job has as many task records as it has tasks (one record
///   of each step is read for its task count). Array records without a recorded array spec
///   cannot be judged (`false`): `frames collect` merges those.
fn complete_by_names(layout: &Layout, listing: &Listing) -> io::Result<bool> {
    let keys = &listing.records;
    let (submissions, _) = submission::read_all(layout)?;
    let (submitted, have_spec, _) = submitted_indices(submissions.iter());
    if have_spec {
        let seen: BTreeSet<u64> = keys.iter().map(|(k, _)| k.index).collect();
        return Ok(submitted.iter().all(|i| seen.contains(i)));
    }
    // Task ids seen per (job, attempt, step); a step's task count comes from one readable
    // record of it (a FIFO, symlink or corrupt file under a record's name is skipped, not
    // waited on).
    let mut steps: BTreeMap<StepAttempt, (BTreeSet<u32>, Vec<&Place>)> = BTreeMap::new();
    for (k, place) in keys {
        let e = steps.entry((k.job_id, k.attempt, k.step)).or_default();
        e.0.insert(k.task_id);
        e.1.push(place);
    }
    // Only each job's latest attempt counts.
    let mut latest: BTreeMap<u32, u32> = BTreeMap::new();
    for &(job, attempt, _) in steps.keys() {
        let a = latest.entry(job).or_default();
        *a = (*a).max(attempt);
    }
    for ((job, attempt, _), (tasks, names)) in &steps {
        if latest.get(job) != Some(attempt) {
            continue;
        }
        let record = names.iter().find_map(|place| {
            let bytes = store::read_json(layout, listing, place, MAX_RECORD_BYTES)?;
            serde_json::from_slice::<TaskRecord>(&bytes).ok()
        });
        match record {
            Some(r) if r.array_task_id.is_some() => return Ok(false),
            Some(r) if (tasks.len() as u64) < u64::from(r.task_count) => return Ok(false),
            Some(_) => {}
            None => {}
        }
    }
    Ok(!steps.is_empty())
}

/// Called by the plugin after each record write. When every expected index has a record,
/// elects exactly one finisher among concurrent callers and merges; `Ok(None)` otherwise (the
/// job is incomplete, or another caller is the finisher).
///
/// Election: the caller creates `.frames/finish.N` with `O_CREAT|O_EXCL`, N being the number
/// of record files it saw. Records are only ever added, so N names one state of the directory:
/// - 500 tasks ending in the same second: every task writes its record before listing the
///   directory, so whichever record is written last, its writer lists a complete directory (at
///   least one caller sees completion); all callers that see the same complete directory see
///   the same N and race for the same name, which exactly one creates (also on NFS: exclusive
///   create is atomic on the server).
/// - A record added later (a requeued task, a resubmission) makes N+1 records: its writer
///   sees a complete directory with a new N and merges again, so the outputs include it.
/// - A record added while a finisher merges: after writing, the finisher lists the directory
///   again and merges again while the count changed, so the last outputs written reflect every
///   record present when they were written, whoever wrote last.
///
/// On NFS this relies on each client seeing the others' new records when it lists the
/// directory (Linux revalidates a directory's cache when its mtime changes); a finisher that
/// never ran is repaired by `frames collect`.
///
/// Cheap while incomplete: one listing of the record names (no record is opened) and a read
/// of the few submission files.
pub fn try_finish(layout: &Layout) -> io::Result<Option<Summary>> {
    let listing = list_records(layout)?;
    if listing.records.is_empty() || !complete_by_names(layout, &listing)? {
        return Ok(None);
    }
    let mut count = listing.records.len();
    let token = layout.finish_token_path(count);
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&token)
    {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(None),
        Err(e) => return Err(annotate(e, "cannot create", &token)),
    }
    // Bounded: each round means more records arrived meanwhile.
    for _ in 0..1000 {
        let summary = merge(layout)?;
        let now = list_records(layout)?.records.len();
        if now == count {
            return Ok(Some(summary));
        }
        count = now;
    }
    merge(layout).map(Some)
}
