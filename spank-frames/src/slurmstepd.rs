//! slurmstepd side. Before the fork (root): decide whether this step routes frames and set
//! what all tasks share. In each task (the user, before exec): per-task variables and the
//! result capture. After each task (root): the record, written by a child running as the user.
//!
//! Every step of a job with --frame-dir records its tasks on the node where they ran: the
//! batch script's step, and each srun step inside it or inside salloc (same FRAME_INDEX as
//! the batch step for an array element). Records are keyed by (index, attempt, job, step,
//! task), so no task's record replaces another's.
use std::collections::HashMap;
use std::time::Duration;

use frames_core::layout::{Layout, StepId, TaskKey};
use frames_core::options::FrameOptions;
use frames_core::pattern::JobIds;
use frames_core::record::assemble::{
    RESULT_FILE_LIMIT, ResultFile, TaskEnd, TaskFacts, TaskOutputs, assemble,
    results_printed_by_steps,
};
use spank::handle::BATCH_STEP_ID as BATCH_STEP;
use spank::{Error, Result, Spank, TaskExit};

use crate::as_user::{Identity, run_as_user};
use crate::sys::DirWatch;

/// Step ids from here up are Slurm's special steps (extern, interactive, pending...) other
/// than the batch step: they run no user work of their own to record.
const SPECIAL_STEPS: u32 = 0xffff_fff0;
/// How long task_exit waits for the capture process to finish after the task ended.
const CAPTURE_WAIT: Duration = Duration::from_secs(5);
/// Upper bound for writing one record (and, for the last task, merging all of them).
const RECORD_LIMIT: Duration = Duration::from_secs(120);

/// What every task of an active step shares.
#[derive(Debug, Clone)]
struct Step {
    layout: Layout,
    ids: JobIds,
    step: StepId,
    attempt: u32,
    identity: Identity,
    groups: Vec<u32>,
    task_count: u32,
    /// SLURM_NTASKS of the job, known in the batch step.
    job_task_count: Option<u32>,
    /// The submission id the job carries (SLURM_SPANK_FRAMES_SUBMISSION).
    submission: Option<String>,
    /// --frame-sha256: a SHA-256 of each frame besides its BLAKE3.
    sha256: bool,
}

#[derive(Default)]
pub struct Remote {
    step: Option<Step>,
    /// Start time of each local task, taken in the parent right after the fork.
    starts: HashMap<u32, f64>,
}

/// The job's restart count. Slurm 22.05's slurmstepd reports 0 for S_SLURM_RESTART_COUNT in
/// a requeued batch job while it sets SLURM_RESTART_COUNT in the job's environment: take the
/// larger.
fn restart_count(sp: &Spank) -> u32 {
    let item = sp.restart_count().unwrap_or(0);
    let env = sp
        .getenv("SLURM_RESTART_COUNT")
        .ok()
        .flatten()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    item.max(env)
}

/// Attempts of this task already recorded (same index, job, step and task). A requeued job
/// keeps its id; its earlier runs left records, so this counts its restarts even where Slurm's
/// own counter is not visible to the plugin. Runs as the user (task_init, record writer).
/// Reads only the segments of `group` (the array job, else the job).
fn recorded_attempts(layout: &Layout, key: &TaskKey, group: u32) -> u32 {
    let Ok(listing) = frames_core::store::list(layout, Some(group)) else {
        return 0;
    };
    let count = listing
        .records
        .iter()
        .filter(|(k, _)| {
            (k.index, k.job_id, k.step, k.task_id) == (key.index, key.job_id, key.step, key.task_id)
        })
        .count();
    u32::try_from(count).unwrap_or(u32::MAX)
}

/// The key with the attempt number fixed: Slurm's restart count or the records' count.
fn with_attempt(layout: &Layout, mut key: TaskKey, ids: &JobIds) -> TaskKey {
    let group = ids.array_job_id.unwrap_or(ids.job_id);
    key.attempt = key.attempt.max(recorded_attempts(layout, &key, group));
    key
}

impl Remote {
    /// Before the fork, as root: what every task of this step shares. Environment values
    /// are read once here, not per task.
    pub fn init_post_opt(&mut self, sp: &Spank, options: &FrameOptions) -> Result<()> {
        let Some(dir) = &options.frame_dir else {
            return Ok(());
        };
        let job_id = sp.job_id()?;
        let step_id = sp.step_id()?;
        if step_id != BATCH_STEP && step_id >= SPECIAL_STEPS {
            tracing::debug!("special step {step_id:#x}: no tasks of its own to record");
            return Ok(());
        }
        let env_u32 = |name: &str| -> Option<u32> {
            sp.getenv(name)
                .ok()
                .flatten()
                .and_then(|v| v.trim().parse().ok())
        };
        // An srun step of an array element: Slurm gives the array ids to the batch step; the
        // step has them from the job's environment.
        let array = sp.array()?.or_else(|| {
            Some((
                env_u32("SLURM_ARRAY_JOB_ID")?,
                env_u32("SLURM_ARRAY_TASK_ID")?,
            ))
        });
        let submission = sp
            .getenv(&format!(
                "SLURM_SPANK_{}",
                frames_core::submission::SUBMISSION_ENV
            ))
            .ok()
            .flatten()
            .filter(|v| !v.is_empty() && v.len() <= 256);
        let step = Step {
            layout: Layout::new(dir.clone()),
            ids: JobIds {
                job_id,
                array_job_id: array.map(|a| a.0),
                array_task_id: array.map(|a| a.1),
            },
            step: if step_id == BATCH_STEP {
                StepId::Batch
            } else {
                StepId::Step(step_id)
            },
            attempt: restart_count(sp),
            identity: Identity {
                uid: sp.uid()?,
                gid: sp.gid()?,
            },
            groups: sp.supplementary_gids().unwrap_or_default(),
            // A batch script is one task, whatever the job's task count.
            task_count: if step_id == BATCH_STEP {
                1
            } else {
                sp.total_task_count().unwrap_or(1).max(1)
            },
            job_task_count: if step_id == BATCH_STEP {
                env_u32("SLURM_NTASKS")
            } else {
                None
            },
            submission,
            sha256: options.sha256,
        };
        sp.setenv("FRAME_DIR", &dir.display().to_string(), true)?;
        sp.setenv("FRAME_ATTEMPT", &step.attempt.to_string(), true)?;
        self.step = Some(step);
        Ok(())
    }

    /// The task's key. The attempt is Slurm's restart count as the task sees it: a batch
    /// step's SLURM_RESTART_COUNT is only in the environment Slurm builds for its task (after
    /// init_post_opt), where task_init and task_exit both read it.
    fn key(sp: &Spank, step: &Step, global_task: u32) -> TaskKey {
        TaskKey {
            index: step
                .ids
                .array_task_id
                .map_or(u64::from(global_task), u64::from),
            attempt: step.attempt.max(restart_count(sp)),
            job_id: step.ids.job_id,
            step: step.step,
            task_id: global_task,
        }
    }

    /// In the task's own process, as the user, just before exec.
    /// `helper`: plugstack.conf's `capture_helper=`, if set.
    pub fn task_init(
        &mut self,
        sp: &Spank,
        options: &FrameOptions,
        helper: Option<&std::path::Path>,
    ) -> Result<()> {
        let Some(step) = &self.step else {
            return Ok(());
        };
        let layout = &step.layout;
        // Private to the job's user before anything is read or written there (this process
        // is already the user); a .frames another user owns fails the task with the reason.
        layout.create_private_dirs(step.identity.uid).map_err(|e| {
            Error::new(format!(
                "--frame-dir: cannot use '{}': {e}",
                layout.root().display()
            ))
        })?;
        note_node_local(layout, step.submission.as_deref(), options.local);
        let key = with_attempt(layout, Self::key(sp, step, sp.task_global_id()?), &step.ids);
        let time = frames_core::options::frame_time(options.t0, options.dt, key.index);
        sp.setenv("FRAME_INDEX", &key.index.to_string(), true)?;
        sp.setenv("FRAME_ATTEMPT", &key.attempt.to_string(), true)?;
        sp.setenv(
            "FRAME_TIME",
            &frames_core::options::format_frame_time(time),
            true,
        )?;
        sp.setenv(
            "FRAME_RESULT",
            &layout.result_path(&key).display().to_string(),
            true,
        )?;
        if let Some(relative) = options.pattern.expand(key.index, &step.ids) {
            let path = layout.root().join(relative);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).map_err(|e| {
                    Error::new(format!(
                        "--frame-dir: cannot create '{}': {e}",
                        parent.display()
                    ))
                })?;
            }
            sp.setenv("FRAME_PATH", &path.display().to_string(), true)?;
        }
        let capture = || {
            let helper = crate::tee::helper_path(helper)?;
            crate::tee::start(
                &helper,
                &options.result_prefix,
                &layout.capture_path(&key),
                step.identity,
                &step.groups,
            )
        };
        capture().map_err(|e| Error::new(format!("--frame-dir: cannot start result capture: {e}")))
    }

    /// In slurmstepd right after a task was forked (root): remember when it started.
    pub fn task_post_fork(&mut self, sp: &Spank) -> Result<()> {
        if self.step.is_some() {
            self.starts
                .insert(sp.task_local_id()?, spank::host::unix_time());
        }
        Ok(())
    }

    /// In slurmstepd when a task ended (root): the record is written by a child that is the
    /// user, so root never writes into the user's directory.
    pub fn task_exit(&mut self, sp: &Spank, options: &FrameOptions) -> Result<()> {
        let Some(step) = &self.step else {
            return Ok(());
        };
        let end_time = spank::host::unix_time();
        let global = sp.task_global_id()?;
        let start_time = sp
            .task_local_id()
            .ok()
            .and_then(|id| self.starts.remove(&id));
        let key = Self::key(sp, step, global);
        let end = match sp.task_exit_status()? {
            TaskExit::Exited(code) => TaskEnd::Exited(code),
            TaskExit::Signaled {
                signal,
                core_dumped,
            } => TaskEnd::Signaled {
                signal,
                core_dumped,
            },
            TaskExit::Other(raw) => TaskEnd::Other(raw),
        };
        let facts = TaskFacts {
            key,
            ids: step.ids,
            task_count: step.task_count,
            job_task_count: step.job_task_count,
            uid: step.identity.uid,
            submission: step.submission.clone(),
            // From the host, not the job's environment: the user controls that, and the
            // summary's per-node counts must be trustworthy.
            node: spank::host::hostname(),
            end,
            start_time,
            end_time,
            frame_path: options
                .pattern
                .expand(key.index, &step.ids)
                .map(|relative| step.layout.root().join(relative)),
        };
        let layout = step.layout.clone();
        let sha256 = step.sha256;
        let report = run_as_user(step.identity, &step.groups, RECORD_LIMIT, move || {
            write_record(&layout, facts, sha256)
        });
        match report {
            Ok(Ok(text)) => tracing::debug!("task {global}: {text}"),
            Ok(Err(text)) => tracing::error!("task {global}: {text}"),
            Err(text) => tracing::error!("task {global}: record not written: {text}"),
        }
        if let TaskEnd::Signaled { signal, .. } = end {
            match frames_core::record::signal_name(signal) {
                Some(name) => tracing::debug!("task {global} ended by {name}"),
                None => tracing::debug!("task {global} ended by signal {signal}"),
            }
        }
        Ok(())
    }
}

/// Waits until the capture process has published `capture` (it renames `partial` there at the
/// end of the task's output) or `partial` is gone, at most `limit`. Blocks on inotify events
/// of the results directory (the rename is done on this node, so it is reported also on NFS),
/// re-checking the names at each event and at least every 50 ms (a file system that reports
/// nothing costs at most that much more); without inotify, checks every millisecond.
/// Runs in the record writer child (single-threaded, as the user).
fn wait_for_capture(capture: &std::path::Path, partial: &std::path::Path, limit: Duration) {
    let done = || capture.exists() || !partial.exists();
    if done() {
        return;
    }
    let started = std::time::Instant::now();
    let watch = DirWatch::new(capture.parent().unwrap_or(std::path::Path::new("/")));
    // Watching first, checking after: a rename between the two is seen by the check.
    while !done() {
        let left = limit.saturating_sub(started.elapsed());
        if left.is_zero() {
            return;
        }
        match &watch {
            Some(watch) => watch.wait(left.as_millis().clamp(1, 50) as libc::c_int),
            None => std::thread::sleep(Duration::from_millis(1)),
        }
    }
}

/// In the task, as the user: marks a DIR that is this node's own (`--frame-local`, or the
/// job's submission is not visible here: DIR is not shared), so no task merges a part, and
/// says so on the task's stderr when the user did not declare it.
fn note_node_local(layout: &Layout, submission: Option<&str>, declared: bool) {
    let Some(id) = submission else { return };
    if !declared && frames_core::gather::submission_visible(layout, id) {
        return;
    }
    let node = spank::host::hostname();
    if !declared {
        eprintln!(
            "spank_frames: --frame-dir {} is not shared: this node ({node}) does not see the submission made on the submit host; frames and records stay on {node}. Submit with --frame-local and run 'frames gather {}' on the submit host",
            layout.root().display(),
            layout.root().display()
        );
    }
    let mark = frames_core::gather::NodeMark {
        node,
        declared,
        submission: Some(id.to_owned()),
    };
    if let Err(e) = frames_core::gather::mark(layout, &mark) {
        tracing::error!("cannot mark {} node-local: {e}", layout.root().display());
    }
}

/// Runs as the user in a forked child: gathers the task's outputs, assembles the record,
/// writes it without ever replacing one, and lets the last task merge.
fn write_record(
    layout: &Layout,
    mut facts: TaskFacts,
    sha256: bool,
) -> std::result::Result<String, String> {
    // task_init refused a .frames that is not the user's (or a symlink): write nothing there.
    // Checked again here, as the user: it may have been swapped since.
    layout
        .create_private_dirs(facts.uid)
        .map_err(|e| format!("record not written: {e}"))?;
    facts.key = with_attempt(layout, facts.key, &facts.ids);
    let key = &facts.key;
    let capture = layout.capture_path(key);
    let partial = crate::tee::partial_path(&capture);
    wait_for_capture(&capture, &partial, CAPTURE_WAIT);
    let (source, complete) = if capture.exists() {
        (capture, true)
    } else {
        (partial, false)
    };
    let captured = frames_core::capture::read_capture_file(&source)
        .ok()
        .map(|lines| (lines, complete));
    let path = layout.result_path(key);
    let result_file = match std::fs::metadata(&path) {
        Ok(meta) if meta.len() > RESULT_FILE_LIMIT => ResultFile::TooLarge {
            path,
            len: meta.len(),
        },
        Ok(_) => match host_io::read_regular_prefix(&path, RESULT_FILE_LIMIT) {
            Ok(bytes) => ResultFile::Read(bytes),
            Err(e) => ResultFile::Unreadable {
                path,
                error: e.to_string(),
            },
        },
        Err(_) => ResultFile::Absent,
    };
    let frame = facts
        .frame_path
        .as_ref()
        .and_then(|path| frames_core::record::frame_checksum(path, sha256).ok());
    let printed_by_steps = if key.step == StepId::Batch {
        results_printed_by_steps(
            layout,
            key,
            facts.ids.array_job_id.unwrap_or(facts.ids.job_id),
        )
    } else {
        HashMap::new()
    };
    let record = assemble(
        &facts,
        TaskOutputs {
            captured,
            result_file,
            frame,
            printed_by_steps,
        },
    );
    // One durable append to this job's segment on this node (frames_core::store).
    let path = frames_core::store::append(layout, key, &record)
        .map_err(|e| format!("record not written: {e}"))?;
    let status = format!("{:?}", record.status).to_lowercase();
    // A node-local DIR holds only this node's records: `frames gather` merges on the submit host.
    if frames_core::gather::read_mark(layout).is_some() {
        return Ok(format!(
            "record {} ({status}); node-local dir",
            path.display()
        ));
    }
    match frames_core::merge::try_finish(layout) {
        Ok(Some(summary)) => Ok(format!(
            "record {} ({status}); all frames ended: merged {} done, {} failed, {} missing",
            path.display(),
            summary.done,
            summary.failed,
            summary.missing
        )),
        Ok(None) => Ok(format!("record {} ({status})", path.display())),
        Err(e) => Err(format!(
            "record {} written, merge failed: {e}",
            path.display()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use frames_core::test_util::TempDir;
    use std::time::Instant;

    #[test]
    fn capture_wait_ends_at_the_rename() {
        let tmp = TempDir::new("capture-wait");
        let capture = tmp.path().join("t.captured.jsonl");
        let partial = crate::tee::partial_path(&capture);
        std::fs::write(&partial, b"").unwrap();
        let (from, to) = (partial.clone(), capture.clone());
        let renamer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(200));
            let renamed = Instant::now();
            std::fs::rename(from, to).unwrap();
            renamed
        });
        wait_for_capture(&capture, &partial, Duration::from_secs(10));
        let woke = Instant::now();
        let renamed = renamer.join().unwrap();
        assert!(capture.exists());
        // Woken by the rename (inotify; at the latest by the 50 ms re-check): no timing bound
        // tighter than that holds on a loaded CI machine.
        assert!(woke >= renamed);
        assert!(woke.duration_since(renamed) < Duration::from_secs(1));
    }

    #[test]
    fn capture_wait_returns_when_the_partial_file_goes_or_the_limit_passes() {
        let tmp = TempDir::new("capture-gone");
        let capture = tmp.path().join("t.captured.jsonl");
        let partial = crate::tee::partial_path(&capture);
        // No partial file: no capture runs, nothing to wait for.
        let started = Instant::now();
        wait_for_capture(&capture, &partial, Duration::from_secs(10));
        assert!(started.elapsed() < Duration::from_secs(1));
        // Removed while waiting.
        std::fs::write(&partial, b"").unwrap();
        let gone = partial.clone();
        let remover = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            std::fs::remove_file(gone).unwrap();
        });
        wait_for_capture(&capture, &partial, Duration::from_secs(10));
        remover.join().unwrap();
        assert!(started.elapsed() < Duration::from_secs(5));
        // Never finished: bounded by the limit.
        std::fs::write(&partial, b"").unwrap();
        let started = Instant::now();
        wait_for_capture(&capture, &partial, Duration::from_millis(300));
        let waited = started.elapsed();
        assert!(waited >= Duration::from_millis(300) && waited < Duration::from_secs(5));
    }
}
