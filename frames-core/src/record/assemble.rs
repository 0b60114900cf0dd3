//! A task's record from the facts the plugin gathered about it: how it ended, when and where
//! it ran, its frame's checksum and the results it printed or wrote. Pure: the plugin reads
//! the files and the task's status, [`assemble`] decides what the record says.
use std::collections::HashMap;
use std::path::PathBuf;

use super::{FrameDigest, RECORD_VERSION, RawJson, ResultError, ResultSource, Status, TaskRecord};
use crate::capture::CapturedLine;
use crate::layout::{StepId, TaskKey};
use crate::pattern::JobIds;

/// Most warnings one record carries; the rest are counted in a last one.
const MAX_WARNINGS: usize = 10;
/// Largest FRAME_RESULT file read, in bytes.
pub const RESULT_FILE_LIMIT: u64 = 16 << 20;

/// How the task ended, as its wait status says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskEnd {
    Exited(i32),
    Signaled {
        signal: i32,
        core_dumped: bool,
    },
    /// Neither (stopped/continued): the raw status.
    Other(i32),
}

/// What slurmstepd knows of a task when it ended.
#[derive(Debug, Clone)]
pub struct TaskFacts {
    /// The task's key, its attempt fixed by the records already written.
    pub key: TaskKey,
    pub ids: JobIds,
    pub task_count: u32,
    pub job_task_count: Option<u32>,
    pub uid: u32,
    /// The submission id the job carries.
    pub submission: Option<String>,
    /// The node, from the host (not the job's environment, which the user controls).
    pub node: String,
    pub end: TaskEnd,
    pub start_time: Option<f64>,
    pub end_time: f64,
    /// Where the task's frame goes; `None` when the pattern is `none`.
    pub frame_path: Option<PathBuf>,
}

/// The task's FRAME_RESULT file, as the record writer found it.
#[derive(Debug, Clone, PartialEq)]
pub enum ResultFile {
    Absent,
    /// Larger than [`RESULT_FILE_LIMIT`]: not read.
    TooLarge {
        path: PathBuf,
        len: u64,
    },
    Unreadable {
        path: PathBuf,
        error: String,
    },
    Read(Vec<u8>),
}

/// What the record writer read, as the user, from the frame directory.
#[derive(Debug, Clone)]
pub struct TaskOutputs {
    /// The lines the result capture kept, and whether it saw the end of the task's stdout;
    /// `None` when there is no capture file.
    pub captured: Option<(Vec<CapturedLine>, bool)>,
    pub result_file: ResultFile,
    /// The frame's size and checksums; `None` when it is missing or unreadable.
    pub frame: Option<FrameDigest>,
    /// Batch step only: results the job's other steps recorded (text → how many times). The
    /// batch script's stdout carries their output too, so their lines were captured twice.
    pub printed_by_steps: HashMap<String, usize>,
}

/// The record of one task attempt, judged done or failed.
pub fn assemble(facts: &TaskFacts, outputs: TaskOutputs) -> TaskRecord {
    let (exit_code, signal, core_dumped) = match facts.end {
        TaskEnd::Exited(code) => (Some(code), None, false),
        TaskEnd::Signaled {
            signal,
            core_dumped,
        } => (None, Some(signal), core_dumped),
        TaskEnd::Other(raw) => (None, None, raw & 0x80 != 0),
    };
    let mut record = TaskRecord {
        version: RECORD_VERSION,
        index: facts.key.index,
        attempt: facts.key.attempt,
        job_id: facts.ids.job_id,
        array_job_id: facts.ids.array_job_id,
        array_task_id: facts.ids.array_task_id,
        step: facts.key.step.to_string(),
        task_id: facts.key.task_id,
        task_count: facts.task_count,
        job_task_count: facts.job_task_count,
        uid: Some(facts.uid),
        submission: facts.submission.clone(),
        node: facts.node.clone(),
        exit_code,
        signal,
        core_dumped,
        start_time: facts.start_time,
        end_time: facts.end_time,
        frame_path: facts.frame_path.as_ref().map(|p| p.display().to_string()),
        frame_size: None,
        frame_sha256: None,
        frame_blake3: None,
        results: Vec::new(),
        result_errors: Vec::new(),
        warnings: Vec::new(),
        status: Status::Failed,
        reason: None,
    };
    if let Some((lines, complete)) = outputs.captured {
        for line in lines {
            match line {
                CapturedLine::Result(value) => record.results.push(value),
                CapturedLine::Invalid { line, error } => record.result_errors.push(ResultError {
                    source: ResultSource::Stdout,
                    line,
                    error,
                }),
            }
        }
        if !complete {
            record.result_errors.push(ResultError {
                source: ResultSource::Stdout,
                line: String::new(),
                error: "output capture incomplete: stdout was still open when the task ended"
                    .into(),
            });
        }
    }
    add_result_file(&mut record, outputs.result_file);
    if let Some(digest) = outputs.frame {
        record.frame_size = Some(digest.size);
        record.frame_blake3 = Some(digest.blake3);
        record.frame_sha256 = digest.sha256;
    }
    if facts.key.step == StepId::Batch && !record.results.is_empty() {
        drop_step_results(&mut record.results, outputs.printed_by_steps);
    }
    record.warnings = warnings(&record.result_errors);
    record.decide(facts.frame_path.is_some());
    record
}

fn add_result_file(record: &mut TaskRecord, file: ResultFile) {
    let error = |line: String, error: String| ResultError {
        source: ResultSource::ResultFile,
        line,
        error,
    };
    match file {
        ResultFile::Absent => {}
        ResultFile::TooLarge { path, len } => record.result_errors.push(error(
            String::new(),
            format!(
                "{} is {len} bytes, over the {RESULT_FILE_LIMIT} byte limit",
                path.display()
            ),
        )),
        ResultFile::Unreadable { path, error: e } => record.result_errors.push(error(
            String::new(),
            format!("cannot read {}: {e}", path.display()),
        )),
        ResultFile::Read(bytes) => match std::str::from_utf8(&bytes)
            .map_err(|e| e.to_string())
            .and_then(|text| RawJson::parse(text).map_err(|e| e.to_string()))
        {
            Ok(value) => record.results.push(value),
            Err(e) => record.result_errors.push(error(
                String::from_utf8_lossy(&bytes[..bytes.len().min(4096)]).into_owned(),
                format!("invalid JSON: {e}"),
            )),
        },
    }
}

/// The batch script's stdout carries the output of its srun steps, so its capture also saw
/// the result lines those steps' tasks printed, which their own records already hold. Those
/// are removed from the batch record (each once, by exact text), so a result is recorded by
/// the task that printed it and counted once.
fn drop_step_results(results: &mut Vec<RawJson>, mut printed_by_steps: HashMap<String, usize>) {
    results.retain(|r| match printed_by_steps.get_mut(r.as_str()) {
        Some(n) if *n > 0 => {
            *n -= 1;
            false
        }
        _ => true,
    });
}

/// The result data that did not make it into `results`, one sentence per problem (at most
/// MAX_WARNINGS, then a count), for `frames status` to show on the frame.
fn warnings(errors: &[ResultError]) -> Vec<String> {
    let mut out: Vec<String> = errors
        .iter()
        .take(MAX_WARNINGS)
        .map(|e| match e.source {
            ResultSource::Stdout => format!("result line not kept: {}", e.error),
            ResultSource::ResultFile => format!("FRAME_RESULT not kept: {}", e.error),
        })
        .collect();
    if errors.len() > MAX_WARNINGS {
        out.push(format!(
            "{} more result problems (see result_errors)",
            errors.len() - MAX_WARNINGS
        ));
    }
    out
}

/// Counts, for the batch step's record, the results the job's other steps (same job and
/// attempt) recorded: what [`TaskOutputs::printed_by_steps`] holds. Only the segments of
/// `group` (the job's array job id, else its job id) are read. Unreadable records are
/// skipped. Runs as the user.
pub fn results_printed_by_steps(
    layout: &crate::layout::Layout,
    key: &TaskKey,
    group: u32,
) -> HashMap<String, usize> {
    let mut printed: HashMap<String, usize> = HashMap::new();
    let Ok(listing) = crate::store::list(layout, Some(group)) else {
        return printed;
    };
    for (k, place) in &listing.records {
        if k.job_id != key.job_id || k.attempt != key.attempt || k.step == StepId::Batch {
            continue;
        }
        let Some(bytes) = crate::store::read_json(layout, &listing, place, 64 << 20) else {
            continue;
        };
        let Ok(step_record) = serde_json::from_slice::<TaskRecord>(&bytes) else {
            continue;
        };
        for r in step_record.results {
            *printed.entry(r.as_str().to_owned()).or_default() += 1;
        }
    }
    printed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(step: StepId, end: TaskEnd, frame: bool) -> TaskFacts {
        TaskFacts {
            key: TaskKey {
                index: 7,
                attempt: 1,
                job_id: 42,
                step,
                task_id: 0,
            },
            ids: JobIds {
                job_id: 42,
                array_job_id: Some(40),
                array_task_id: Some(7),
            },
            task_count: 1,
            job_task_count: Some(1),
            uid: 1000,
            submission: Some("s1".into()),
            node: "c1".into(),
            end,
            start_time: Some(10.0),
            end_time: 12.5,
            frame_path: frame.then(|| PathBuf::from("/f/frame_0007.png")),
        }
    }

    fn nothing() -> TaskOutputs {
        TaskOutputs {
            captured: None,
            result_file: ResultFile::Absent,
            frame: None,
            printed_by_steps: HashMap::new(),
        }
    }

    fn digest(size: u64) -> FrameDigest {
        FrameDigest {
            size,
            blake3: "b3".into(),
            sha256: Some("s2".into()),
        }
    }

    fn result(text: &str) -> CapturedLine {
        CapturedLine::Result(RawJson::parse(text).unwrap())
    }

    #[test]
    fn a_task_that_exited_0_with_its_frame_is_done() {
        let f = facts(StepId::Batch, TaskEnd::Exited(0), true);
        let r = assemble(
            &f,
            TaskOutputs {
                frame: Some(digest(3)),
                ..nothing()
            },
        );
        assert_eq!(r.status, Status::Done);
        assert_eq!(r.reason, None);
        assert_eq!((r.index, r.attempt, r.job_id), (7, 1, 42));
        assert_eq!((r.array_job_id, r.array_task_id), (Some(40), Some(7)));
        assert_eq!((r.step.as_str(), r.task_id, r.task_count), ("batch", 0, 1));
        assert_eq!((r.uid, r.submission.as_deref()), (Some(1000), Some("s1")));
        assert_eq!(r.node, "c1");
        assert_eq!(
            (r.exit_code, r.signal, r.core_dumped),
            (Some(0), None, false)
        );
        assert_eq!((r.start_time, r.end_time), (Some(10.0), 12.5));
        assert_eq!(r.frame_path.as_deref(), Some("/f/frame_0007.png"));
        assert_eq!(r.frame_size, Some(3));
        assert_eq!(r.frame_blake3.as_deref(), Some("b3"));
        assert_eq!(r.frame_sha256.as_deref(), Some("s2"));
        assert_eq!(r.version, RECORD_VERSION);
    }

    #[test]
    fn exit_status_signal_and_missing_frame_fail_the_task() {
        let r = assemble(&facts(StepId::Batch, TaskEnd::Exited(3), true), nothing());
        assert_eq!(r.reason.as_deref(), Some("exit code 3"));
        let killed = TaskEnd::Signaled {
            signal: 9,
            core_dumped: true,
        };
        let r = assemble(&facts(StepId::Batch, killed, false), nothing());
        assert_eq!(
            (r.exit_code, r.signal, r.core_dumped),
            (None, Some(9), true)
        );
        assert_eq!(
            r.reason.as_deref(),
            Some("killed by signal 9 (SIGKILL), core dumped")
        );
        let r = assemble(
            &facts(StepId::Batch, TaskEnd::Other(0x80), false),
            nothing(),
        );
        assert_eq!((r.exit_code, r.signal, r.core_dumped), (None, None, true));
        assert_eq!(r.reason.as_deref(), Some("no exit status recorded"));
        let r = assemble(&facts(StepId::Batch, TaskEnd::Exited(0), true), nothing());
        assert_eq!(
            r.reason.as_deref(),
            Some("frame file missing: /f/frame_0007.png")
        );
        // Pattern `none`: no frame expected.
        let r = assemble(&facts(StepId::Batch, TaskEnd::Exited(0), false), nothing());
        assert_eq!(r.status, Status::Done);
        assert_eq!(r.frame_path, None);
    }

    #[test]
    fn results_come_from_the_capture_and_the_result_file() {
        let outputs = TaskOutputs {
            captured: Some((
                vec![
                    result(r#"{"loss":0.1}"#),
                    CapturedLine::Invalid {
                        line: "RESULT:{oops".into(),
                        error: "invalid JSON".into(),
                    },
                ],
                false,
            )),
            result_file: ResultFile::Read(b"{\n  \"psnr\": 41\n}\n".to_vec()),
            ..nothing()
        };
        let r = assemble(&facts(StepId::Step(0), TaskEnd::Exited(0), false), outputs);
        let texts: Vec<&str> = r.results.iter().map(RawJson::as_str).collect();
        assert_eq!(texts, [r#"{"loss":0.1}"#, r#"{"psnr": 41}"#]);
        assert_eq!(r.result_errors.len(), 2);
        assert_eq!(
            r.warnings,
            [
                "result line not kept: invalid JSON",
                "result line not kept: output capture incomplete: stdout was still open when the task ended"
            ]
        );
        // Result problems do not fail a task.
        assert_eq!(r.status, Status::Done);
    }

    #[test]
    fn result_file_problems_are_warnings() {
        let path = PathBuf::from("/f/.frames/results/x.json");
        let cases = [
            (
                ResultFile::TooLarge {
                    path: path.clone(),
                    len: 1 << 30,
                },
                "FRAME_RESULT not kept: /f/.frames/results/x.json is 1073741824 bytes, over the 16777216 byte limit",
            ),
            (
                ResultFile::Unreadable {
                    path: path.clone(),
                    error: "Permission denied".into(),
                },
                "FRAME_RESULT not kept: cannot read /f/.frames/results/x.json: Permission denied",
            ),
        ];
        for (file, warning) in cases {
            let r = assemble(
                &facts(StepId::Batch, TaskEnd::Exited(0), false),
                TaskOutputs {
                    result_file: file,
                    ..nothing()
                },
            );
            assert_eq!(r.warnings, [warning]);
            assert!(r.results.is_empty());
        }
        let r = assemble(
            &facts(StepId::Batch, TaskEnd::Exited(0), false),
            TaskOutputs {
                result_file: ResultFile::Read(b"not json".to_vec()),
                ..nothing()
            },
        );
        assert_eq!(r.result_errors[0].line, "not json");
        assert!(r.warnings[0].starts_with("FRAME_RESULT not kept: invalid JSON: "));
    }

    #[test]
    fn warnings_are_capped() {
        let lines = (0..12)
            .map(|n| CapturedLine::Invalid {
                line: format!("RESULT:{n}"),
                error: format!("bad {n}"),
            })
            .collect();
        let r = assemble(
            &facts(StepId::Batch, TaskEnd::Exited(0), false),
            TaskOutputs {
                captured: Some((lines, true)),
                ..nothing()
            },
        );
        assert_eq!(r.result_errors.len(), 12);
        assert_eq!(r.warnings.len(), MAX_WARNINGS + 1);
        assert_eq!(r.warnings[10], "2 more result problems (see result_errors)");
    }

    #[test]
    fn the_batch_record_drops_results_its_steps_recorded_once_each() {
        let captured = vec![
            result(r#"{"a":1}"#),
            result(r#"{"a":1}"#),
            result(r#"{"b":2}"#),
        ];
        let printed = HashMap::from([(r#"{"a":1}"#.to_owned(), 1), (r#"{"b":2}"#.to_owned(), 1)]);
        let outputs = |printed: HashMap<String, usize>| TaskOutputs {
            captured: Some((captured.clone(), true)),
            printed_by_steps: printed,
            ..nothing()
        };
        let r = assemble(
            &facts(StepId::Batch, TaskEnd::Exited(0), false),
            outputs(printed.clone()),
        );
        let texts: Vec<&str> = r.results.iter().map(RawJson::as_str).collect();
        assert_eq!(texts, [r#"{"a":1}"#]);
        // A step's own record keeps everything it printed.
        let r = assemble(
            &facts(StepId::Step(0), TaskEnd::Exited(0), false),
            outputs(printed),
        );
        assert_eq!(r.results.len(), 3);
    }
}
