//! The record the plugin writes for each task attempt, how it is judged done or failed, the
//! frame file checksum, and [`RawJson`], a result kept exactly as the task printed it.
//!
//! Record versions: 1 had no `uid`, `job_task_count`, `submission` or `warnings` (read with
//! those empty); 2 adds them. `results` is JSON text in both, read back verbatim.
pub mod assemble;

use std::fmt;
use std::io::{self, Read};
use std::path::Path;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};

/// Version of the record format written by this crate.
pub const RECORD_VERSION: u32 = 2;

/// One JSON value kept as the text it was printed as: numbers keep every digit
/// (`12345678901234567890123` stays), object keys keep their order and duplicates. Serialized
/// verbatim, so records, the manifest and capture files carry the user's text. Always a single
/// line: a multi-line document (a FRAME_RESULT file) has its line breaks and the indentation
/// after them removed (valid JSON has line breaks only between tokens, never inside a string).
#[derive(Clone)]
pub struct RawJson(Box<RawValue>);

impl RawJson {
    /// Parses one JSON value; surrounding whitespace is dropped, everything else is kept.
    pub fn parse(text: &str) -> serde_json::Result<RawJson> {
        let raw: Box<RawValue> = serde_json::from_str(text)?;
        if raw.get().contains(['\n', '\r']) {
            return serde_json::from_str(&join_lines(raw.get())).map(RawJson);
        }
        Ok(RawJson(raw))
    }

    /// The JSON text.
    pub fn as_str(&self) -> &str {
        self.0.get()
    }

    /// The value parsed as a `serde_json::Value` (numbers as f64 or integers, duplicate keys
    /// collapsed): for computations, never for storing.
    pub fn to_value(&self) -> serde_json::Result<serde_json::Value> {
        serde_json::from_str(self.as_str())
    }
}

/// Removes every line break of valid JSON text together with the spaces and tabs that follow it.
fn join_lines(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut after_break = false;
    for c in text.chars() {
        match c {
            '\n' | '\r' => after_break = true,
            ' ' | '\t' if after_break => {}
            c => {
                after_break = false;
                out.push(c);
            }
        }
    }
    out
}

impl PartialEq for RawJson {
    fn eq(&self, other: &RawJson) -> bool {
        self.as_str() == other.as_str()
    }
}

impl fmt::Debug for RawJson {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for RawJson {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for RawJson {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for RawJson {
    /// Only from serde_json's own deserializers (`from_str`, `from_slice`, `from_reader`), not
    /// from a `serde_json::Value` or inside `#[serde(flatten)]`/untagged types.
    /// A value spread over lines (a hand-edited or forged record) is joined into one line,
    /// so every manifest line stays one record.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<RawJson, D::Error> {
        let raw = Box::<RawValue>::deserialize(deserializer)?;
        if raw.get().contains(['\n', '\r']) {
            return RawValue::from_string(join_lines(raw.get()))
                .map(RawJson)
                .map_err(serde::de::Error::custom);
        }
        Ok(RawJson(raw))
    }
}

/// Outcome of one task attempt.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Done,
    Failed,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Done => "done",
            Status::Failed => "failed",
        }
    }
}

/// Where a result error came from.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ResultSource {
    /// A prefixed line of the task's stdout.
    Stdout,
    /// The FRAME_RESULT file.
    ResultFile,
}

/// A result the plugin could not use: the offending text (possibly truncated) and why.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct ResultError {
    pub source: ResultSource,
    pub line: String,
    pub error: String,
}

/// One task attempt, as written to `.frames/records/<stem>.json`.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct TaskRecord {
    pub version: u32,
    pub index: u64,
    pub attempt: u32,
    pub job_id: u32,
    pub array_job_id: Option<u32>,
    pub array_task_id: Option<u32>,
    /// "batch" or the step number.
    pub step: String,
    /// The task's rank in its step (SLURM_PROCID).
    pub task_id: u32,
    /// Tasks in the step.
    pub task_count: u32,
    /// Tasks of the job (SLURM_NTASKS of the batch step, when the job set it); `None` in the
    /// records of srun steps and of version 1.
    #[serde(default)]
    pub job_task_count: Option<u32>,
    /// The uid the job ran as (the owner every file of this job must have); `None` in version 1.
    #[serde(default)]
    pub uid: Option<u32>,
    /// Id of the submission (`Submission::id`) that produced the job, when the job carried it.
    #[serde(default)]
    pub submission: Option<String>,
    pub node: String,
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub core_dumped: bool,
    /// Unix seconds.
    pub start_time: Option<f64>,
    /// Unix seconds.
    pub end_time: f64,
    /// The frame file, as FRAME_PATH gave it to the task.
    pub frame_path: Option<String>,
    /// Size of the frame file at task end; `None` when it did not exist.
    pub frame_size: Option<u64>,
    /// SHA-256 of the frame (lowercase hex), only for jobs submitted with `--frame-sha256`
    /// (and in every record written before BLAKE3 came).
    pub frame_sha256: Option<String>,
    /// BLAKE3 of the frame (lowercase hex, 256 bits): the checksum every record has.
    #[serde(default)]
    pub frame_blake3: Option<String>,
    /// The task's results as printed (stdout result lines, then the FRAME_RESULT document).
    pub results: Vec<RawJson>,
    pub result_errors: Vec<ResultError>,
    /// Result data that was dropped or cut (a line over the length cap, entries over the
    /// count cap, JSON that did not parse, an oversized or unreadable FRAME_RESULT): one
    /// sentence each, for `frames status` to show on the frame.
    #[serde(default)]
    pub warnings: Vec<String>,
    pub status: Status,
    pub reason: Option<String>,
}

impl TaskRecord {
    /// Sets `status` and `reason`: done iff the task exited with code 0, was not killed by a
    /// signal, and (when a frame is expected) its frame file exists and is not empty.
    pub fn decide(&mut self, frame_expected: bool) {
        self.reason = self.failure_reason(frame_expected);
        self.status = if self.reason.is_none() {
            Status::Done
        } else {
            Status::Failed
        };
    }

    fn failure_reason(&self, frame_expected: bool) -> Option<String> {
        if let Some(sig) = self.signal {
            let core = if self.core_dumped {
                ", core dumped"
            } else {
                ""
            };
            return Some(match signal_name(sig) {
                Some(name) => format!("killed by signal {sig} ({name}){core}"),
                None => format!("killed by signal {sig}{core}"),
            });
        }
        match self.exit_code {
            None => return Some("no exit status recorded".to_owned()),
            Some(0) => {}
            Some(code) => return Some(format!("exit code {code}")),
        }
        if frame_expected {
            let path = self.frame_path.as_deref().unwrap_or("");
            match self.frame_size {
                None if path.is_empty() => return Some("frame file missing".to_owned()),
                None => return Some(format!("frame file missing: {path}")),
                Some(0) => return Some(format!("frame file empty: {path}")),
                Some(_) => {}
            }
        }
        None
    }

    /// Seconds from start to end, when the start is known.
    pub fn duration(&self) -> Option<f64> {
        self.start_time.map(|s| self.end_time - s)
    }
}

/// The conventional name of a Linux signal number.
pub fn signal_name(sig: i32) -> Option<&'static str> {
    Some(match sig {
        1 => "SIGHUP",
        2 => "SIGINT",
        3 => "SIGQUIT",
        4 => "SIGILL",
        5 => "SIGTRAP",
        6 => "SIGABRT",
        7 => "SIGBUS",
        8 => "SIGFPE",
        9 => "SIGKILL",
        10 => "SIGUSR1",
        11 => "SIGSEGV",
        12 => "SIGUSR2",
        13 => "SIGPIPE",
        14 => "SIGALRM",
        15 => "SIGTERM",
        16 => "SIGSTKFLT",
        17 => "SIGCHLD",
        18 => "SIGCONT",
        19 => "SIGSTOP",
        20 => "SIGTSTP",
        21 => "SIGTTIN",
        22 => "SIGTTOU",
        23 => "SIGURG",
        24 => "SIGXCPU",
        25 => "SIGXFSZ",
        26 => "SIGVTALRM",
        27 => "SIGPROF",
        28 => "SIGWINCH",
        29 => "SIGIO",
        30 => "SIGPWR",
        31 => "SIGSYS",
        _ => return None,
    })
}

/// What a task's record says of its frame file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameDigest {
    pub size: u64,
    /// BLAKE3, lowercase hex.
    pub blake3: String,
    /// SHA-256, lowercase hex, when asked for.
    pub sha256: Option<String>,
}

fn hex(bytes: &[u8]) -> String {
    let mut hex = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        hex.push_str(&format!("{b:02x}"));
    }
    hex
}

/// Size and BLAKE3 (and SHA-256 when `sha256`) of a regular file, read once in 1 MiB blocks.
/// BLAKE3 runs at memory speed with SIMD on one core; SHA-256 is several times slower.
pub fn frame_checksum(path: &Path, sha256: bool) -> io::Result<FrameDigest> {
    let mut file = host_io::open_regular(path)?;
    let mut blake = blake3::Hasher::new();
    let mut sha = sha256.then(Sha256::new);
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        blake.update(&buf[..n]);
        if let Some(sha) = sha.as_mut() {
            sha.update(&buf[..n]);
        }
        size += n as u64;
    }
    Ok(FrameDigest {
        size,
        blake3: blake.finalize().to_hex().to_string(),
        sha256: sha.map(|sha| hex(&sha.finalize())),
    })
}

/// Whether `path` still holds the frame a record describes: same size and, by the strongest
/// checksum the record has (BLAKE3, else SHA-256), the same bytes. Err names what differs.
pub fn verify_frame(path: &Path, record: &TaskRecord) -> Result<(), String> {
    let want_sha = record.frame_blake3.is_none() && record.frame_sha256.is_some();
    let digest = frame_checksum(path, want_sha).map_err(|e| format!("{}: {e}", path.display()))?;
    if let Some(size) = record.frame_size
        && size != digest.size
    {
        return Err(format!(
            "{}: {} bytes, the record says {size}",
            path.display(),
            digest.size
        ));
    }
    let (kind, want, got) = match (&record.frame_blake3, &record.frame_sha256) {
        (Some(want), _) => ("BLAKE3", want, Some(&digest.blake3)),
        (None, Some(want)) => ("SHA-256", want, digest.sha256.as_ref()),
        (None, None) => return Ok(()),
    };
    if got != Some(want) {
        return Err(format!(
            "{}: {kind} differs from the record's (the file changed after its task ended)",
            path.display()
        ));
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn a_fifo_frame_is_refused_without_blocking() {
        let dir = crate::test_util::TempDir::new("fifo-frame");
        let fifo = dir.path().join("frame_0000.png");
        let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: mkfifo on a valid C string.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let err = frame_checksum(&fifo, false).unwrap_err();
        assert!(err.to_string().contains("not a regular file"), "{err}");
    }

    /// A done record for tests.
    pub(crate) fn sample(index: u64) -> TaskRecord {
        TaskRecord {
            version: RECORD_VERSION,
            index,
            attempt: 0,
            job_id: 1000 + index as u32,
            array_job_id: Some(1000),
            array_task_id: Some(index as u32),
            step: "batch".into(),
            task_id: 0,
            task_count: 1,
            job_task_count: None,
            uid: Some(1000),
            submission: None,
            node: "c1".into(),
            exit_code: Some(0),
            signal: None,
            core_dumped: false,
            start_time: Some(100.0),
            end_time: 110.5,
            frame_path: Some(format!("/f/frame_{index:04}.png")),
            frame_size: Some(10),
            frame_sha256: None,
            frame_blake3: Some("00".repeat(32)),
            results: vec![],
            result_errors: vec![],
            warnings: vec![],
            status: Status::Done,
            reason: None,
        }
    }

    fn decided(mut r: TaskRecord, frame_expected: bool) -> (Status, Option<String>) {
        r.status = Status::Done;
        r.reason = Some("stale".into());
        r.decide(frame_expected);
        (r.status, r.reason)
    }

    #[test]
    fn decide_rules() {
        assert_eq!(decided(sample(1), true), (Status::Done, None));
        let mut r = sample(1);
        r.exit_code = Some(3);
        assert_eq!(
            decided(r, true),
            (Status::Failed, Some("exit code 3".into()))
        );
        let mut r = sample(1);
        r.exit_code = None;
        r.signal = Some(9);
        assert_eq!(
            decided(r, true),
            (Status::Failed, Some("killed by signal 9 (SIGKILL)".into()))
        );
        let mut r = sample(1);
        r.signal = Some(11);
        r.core_dumped = true;
        assert_eq!(
            decided(r, false).1.as_deref(),
            Some("killed by signal 11 (SIGSEGV), core dumped")
        );
        let mut r = sample(1);
        r.signal = Some(77);
        assert_eq!(decided(r, false).1.as_deref(), Some("killed by signal 77"));
        let mut r = sample(1);
        r.exit_code = None;
        assert_eq!(
            decided(r, false).1.as_deref(),
            Some("no exit status recorded")
        );
        let mut r = sample(2);
        r.frame_size = None;
        assert_eq!(
            decided(r.clone(), true).1.as_deref(),
            Some("frame file missing: /f/frame_0002.png")
        );
        // Not expected (--frame-pattern=none): exit 0 is enough.
        assert_eq!(decided(r.clone(), false), (Status::Done, None));
        r.frame_path = None;
        assert_eq!(decided(r, true).1.as_deref(), Some("frame file missing"));
        let mut r = sample(2);
        r.frame_size = Some(0);
        assert_eq!(
            decided(r, true).1.as_deref(),
            Some("frame file empty: /f/frame_0002.png")
        );
    }

    #[test]
    fn json_shape() {
        let mut r = sample(3);
        r.result_errors.push(ResultError {
            source: ResultSource::ResultFile,
            line: "{".into(),
            error: "EOF".into(),
        });
        r.status = Status::Failed;
        let text = serde_json::to_string(&r).unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["status"], "failed");
        assert_eq!(v["result_errors"][0]["source"], "result_file");
        assert_eq!(v["array_job_id"], 1000);
        assert_eq!(v["version"], RECORD_VERSION);
        let back: TaskRecord = serde_json::from_str(&text).unwrap();
        assert_eq!(back, r);
        assert_eq!(sample(1).duration(), Some(10.5));
    }

    #[test]
    fn results_are_kept_as_printed() {
        let printed =
            r#"{"id":12345678901234567890123,"z":1,"a":2,"a":3,"f":1.50,"e":1E+2, "s":"x\u0041"}"#;
        let raw = RawJson::parse(printed).unwrap();
        assert_eq!(raw.as_str(), printed);
        let mut r = sample(4);
        r.results = vec![raw, RawJson::parse(" 7 ").unwrap()];
        // Compact (manifest) and pretty (record file) forms both carry the text verbatim.
        for text in [
            serde_json::to_string(&r).unwrap(),
            serde_json::to_string_pretty(&r).unwrap(),
        ] {
            assert!(text.contains(printed), "{text}");
            let back: TaskRecord = serde_json::from_str(&text).unwrap();
            assert_eq!(back.results[0].as_str(), printed);
            assert_eq!(back.results[1].as_str(), "7");
            assert_eq!(back, r);
        }
        // Read from a file spread over lines: one line again.
        let spread: Vec<RawJson> = serde_json::from_str("[{\n \"a\": 1,\n \"a\": 2}]").unwrap();
        assert_eq!(spread[0].as_str(), r#"{"a": 1,"a": 2}"#);
        assert!(RawJson::parse("{").is_err());
        assert!(RawJson::parse("1 2").is_err());
        // A multi-line document becomes one line; strings and numbers are untouched.
        let doc = "{\n  \"a b\": 12345678901234567890123,\r\n\t\"k\": [1,\n 2]\n}\n";
        assert_eq!(
            RawJson::parse(doc).unwrap().as_str(),
            r#"{"a b": 12345678901234567890123,"k": [1,2]}"#
        );
    }

    #[test]
    fn version_1_records_are_read() {
        let v1 = r#"{"version":1,"index":3,"attempt":0,"job_id":7,"array_job_id":null,
            "array_task_id":null,"step":"batch","task_id":0,"task_count":1,"node":"c1",
            "exit_code":0,"signal":null,"core_dumped":false,"start_time":1.0,"end_time":2.0,
            "frame_path":null,"frame_size":null,"frame_sha256":null,
            "results":[{"b":1.2345678901234568e22,"a":1}],"result_errors":[],
            "status":"done","reason":null}"#;
        let r: TaskRecord = serde_json::from_str(v1).unwrap();
        assert_eq!(r.version, 1);
        assert_eq!((r.uid, r.job_task_count, r.submission), (None, None, None));
        assert!(r.warnings.is_empty());
        assert_eq!(
            r.results[0].as_str(),
            r#"{"b":1.2345678901234568e22,"a":1}"#
        );
    }

    #[test]
    fn checksum() {
        let tmp = crate::test_util::TempDir::new("checksum");
        let p = tmp.path().join("f");
        std::fs::write(&p, b"abc").unwrap();
        // Reference values: BLAKE3's and SHA-256's published digests of "abc".
        assert_eq!(
            frame_checksum(&p, true).unwrap(),
            FrameDigest {
                size: 3,
                blake3: "6437b3ac38465133ffb63b75273a8db548c558465d79db03fd359c6cd5bd9d85".into(),
                sha256: Some(
                    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad".into()
                ),
            }
        );
        assert_eq!(frame_checksum(&p, false).unwrap().sha256, None);
        // Spanning several read blocks.
        let big = vec![7u8; (1 << 20) * 2 + 5];
        std::fs::write(&p, &big).unwrap();
        let digest = frame_checksum(&p, true).unwrap();
        assert_eq!(digest.size, big.len() as u64);
        assert_eq!(digest.blake3, blake3::hash(&big).to_hex().to_string());
        assert_eq!(digest.sha256, Some(hex(&Sha256::digest(&big))));
        std::fs::write(&p, b"").unwrap();
        assert_eq!(
            frame_checksum(&p, false).unwrap().blake3,
            "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"
        );
        assert!(frame_checksum(&tmp.path().join("none"), false).is_err());
    }

    #[test]
    fn frames_are_verified_with_the_checksum_their_record_has() {
        let tmp = crate::test_util::TempDir::new("verify");
        let p = tmp.path().join("f");
        std::fs::write(&p, b"frame").unwrap();
        let digest = frame_checksum(&p, true).unwrap();
        let mut record = sample(1);
        record.frame_size = Some(digest.size);
        record.frame_blake3 = Some(digest.blake3.clone());
        record.frame_sha256 = None;
        assert_eq!(verify_frame(&p, &record), Ok(()));
        // An old record has only SHA-256: that one is checked.
        record.frame_blake3 = None;
        record.frame_sha256 = digest.sha256.clone();
        assert_eq!(verify_frame(&p, &record), Ok(()));
        std::fs::write(&p, b"fraMe").unwrap();
        let err = verify_frame(&p, &record).unwrap_err();
        assert!(err.contains("SHA-256 differs"), "{err}");
        record.frame_blake3 = Some(digest.blake3);
        assert!(
            verify_frame(&p, &record)
                .unwrap_err()
                .contains("BLAKE3 differs")
        );
        std::fs::write(&p, b"longer frame").unwrap();
        assert!(
            verify_frame(&p, &record)
                .unwrap_err()
                .contains("12 bytes, the record says 5")
        );
    }
}
