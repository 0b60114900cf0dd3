//! Merging a frame directory's records into DIR/manifest.jsonl, DIR/summary.json and
//! DIR/summary.csv, and electing the one task that does it when a job completes.
//!
//! Which indices are expected: the union of the recorded submissions' `--array` specs; without
//! an array spec, `0..task_count` of the non-array records (a job's tasks are its frames); with
//! neither, the indices seen. Indices that have records but are outside every spec are kept too
//! (listed as `unexpected`): a merge never hides a record.
//!
//! Which record stands for an index: the newest job's (a resubmission gets a new, larger job
//! id; Slurm's ids only grow), within a job the latest attempt (requeues raise the restart
//! count); among equal attempts a done record beats a failed one; then the later end time
//! (then step and task id, so the choice is deterministic). Merging is idempotent: the outputs hold nothing but what the files say.
use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Write as _};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::layout::{Layout, TaskKey};
use crate::record::{Status, TaskRecord};
use crate::submission::{self, Submission};
use crate::{Problem, atomic, ranges};

/// Version of the summary format.
pub const SUMMARY_VERSION: u32 = 1;

/// Everything read from a frame directory.
#[derive(Debug, Clone, Default)]
pub struct Collection {
    /// DIR.
    pub root: String,
    /// Every readable record, ordered by file name key (index, attempt, job, step, task).
    pub records: Vec<TaskRecord>,
    /// Submissions, oldest first.
    pub submissions: Vec<Submission>,
    /// Files that could not be used, sorted by path.
    pub problems: Vec<Problem>,
}

/// Counts of attempts on one node.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NodeCounts {
    pub done: u64,
    pub failed: u64,
}

/// A command that reruns some indices.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct ResubmitCommand {
    /// The indices it reruns, compressed.
    pub indices: String,
    /// Directory to run it in (the original submission's).
    pub cwd: String,
    pub argv: Vec<String>,
    /// `cd CWD && ARGV...`, shell-quoted, for copy and paste.
    pub command: String,
}

/// The state of one expected index: the chosen record's position in `Collection::records`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameChoice {
    pub index: u64,
    pub chosen: Option<usize>,
}

/// The merged state of a frame directory (summary.json).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Summary {
    pub version: u32,
    pub frame_dir: String,
    /// Indices in the manifest.
    pub expected: u64,
    pub done: u64,
    pub failed: u64,
    pub missing: u64,
    /// Where the expected indices come from: "submissions", "task_count" or "records".
    pub expected_from: String,
    pub missing_ranges: String,
    pub failed_ranges: String,
    /// Missing and failed: what `frames resubmit` reruns.
    pub rerun_ranges: String,
    /// Indices with records that no submission's array spec lists.
    pub unexpected_ranges: String,
    /// Record files read (every attempt).
    pub attempts: u64,
    /// Done and failed attempts per node (every attempt, not only the chosen ones).
    pub nodes: BTreeMap<String, NodeCounts>,
    /// Distinct nodes that ran tasks.
    pub hosts: Vec<String>,
    /// Nodes that failed two or more attempts and more than they completed; excluded by
    /// resubmit. Empty when that would be every node (the job, not the nodes, is failing).
    pub failing_nodes: Vec<String>,
    /// Earliest task start and latest task end, unix seconds.
    pub first_start: Option<f64>,
    pub last_end: Option<f64>,
    /// Commands that rerun the missing and failed indices (one per submission they belong to).
    pub resubmit: Vec<ResubmitCommand>,
    /// Rerun indices that no recorded sbatch submission covers.
    pub not_resubmittable_ranges: String,
    pub problems: Vec<Problem>,
    /// Each manifest index and its chosen record (not serialized: that is the manifest).
    #[serde(skip)]
    pub frames: Vec<FrameChoice>,
}

impl Summary {
    /// Every expected index has a record (done or failed).
    pub fn is_settled(&self) -> bool {
        self.expected > 0 && self.missing == 0
    }
}

fn annotate(e: io::Error, what: &str, path: &Path) -> io::Error {
    io::Error::new(e.kind(), format!("{what} {}: {e}", path.display()))
}

/// Record files: key and file name.
type RecordNames = Vec<(TaskKey, String)>;

/// Lists the record files by name: (key, file name). Names that are not record names are
/// returned separately (temp files of writers in progress, starting with '.', are ignored).
fn list_records(layout: &Layout) -> io::Result<(RecordNames, Vec<String>)> {
    let dir = layout.records_dir();
    let entries = std::fs::read_dir(&dir).map_err(|e| annotate(e, "cannot read", &dir))?;
    let mut keys = Vec::new();
    let mut strange = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| annotate(e, "cannot read", &dir))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') {
            continue;
        }
        match TaskKey::parse_record_name(&name) {
            Some(key) => keys.push((key, name.into_owned())),
            None => strange.push(name.into_owned()),
        }
    }
    Ok((keys, strange))
}

/// The records directory, open, so each record is opened relative to it (`openat`): no path
/// lookup per file, which is most of the cost of reading 100,000 small files.
struct RecordDir {
    fd: std::os::fd::OwnedFd,
}

/// Largest record file read; a bigger one is reported as a problem.
const MAX_RECORD_BYTES: usize = 64 << 20;

impl RecordDir {
    fn open(dir: &Path) -> io::Result<RecordDir> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
            .open(dir)
            .map_err(|e| annotate(e, "cannot open", dir))?;
        Ok(RecordDir { fd: file.into() })
    }

    /// Reads and parses the record file `name` (never following a symlink). Records are
    /// written whole and never modified (atomic::write_new), so when the first read returns
    /// less than the buffer and parses as a record, that is the file: one read system call
    /// instead of two, which matters with 100,000 files.
    fn read(&self, name: &str, buf: &mut Vec<u8>) -> io::Result<serde_json::Result<TaskRecord>> {
        use std::io::Read;
        use std::os::fd::{AsRawFd, FromRawFd};
        let cname = std::ffi::CString::new(name).map_err(io::Error::other)?;
        // SAFETY: a valid directory fd and a NUL-terminated name; the returned fd is owned below.
        let fd = unsafe {
            libc::openat(
                self.fd.as_raw_fd(),
                cname.as_ptr(),
                libc::O_RDONLY | libc::O_CLOEXEC | libc::O_NOFOLLOW | libc::O_NONBLOCK,
            )
        };
        if fd < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::ELOOP) {
                return Err(io::Error::other("a symbolic link, not a regular file"));
            }
            return Err(e);
        }
        // SAFETY: fd was just opened and is owned by nobody else.
        let mut file = unsafe { std::fs::File::from_raw_fd(fd) };
        // A FIFO or device planted under a record's name: refused (O_NONBLOCK kept the open
        // from blocking; a read could still block or never end).
        if !file.metadata()?.file_type().is_file() {
            return Err(io::Error::other("not a regular file"));
        }
        const FIRST_READ: usize = 64 * 1024;
        buf.clear();
        buf.resize(FIRST_READ, 0);
        let n = loop {
            match file.read(buf) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        };
        buf.truncate(n);
        if n < FIRST_READ
            && let Ok(record) = serde_json::from_slice::<TaskRecord>(buf)
        {
            return Ok(Ok(record));
        }
        if n > 0 {
            file.take(MAX_RECORD_BYTES as u64 + 1 - n as u64)
                .read_to_end(buf)?;
        }
        if buf.len() > MAX_RECORD_BYTES {
            return Err(io::Error::other(format!(
                "larger than {MAX_RECORD_BYTES} bytes"
            )));
        }
        Ok(serde_json::from_slice::<TaskRecord>(buf))
    }
}

fn read_records(
    dir: &RecordDir,
    records_dir: &Path,
    keys: &[(TaskKey, String)],
) -> Vec<Result<TaskRecord, Problem>> {
    let mut buf = Vec::with_capacity(64 * 1024);
    keys.iter()
        .map(|(key, name)| {
            let problem = |e: String| Problem::new(&records_dir.join(name), e);
            match dir.read(name, &mut buf) {
                Ok(parsed) => match parsed {
                    Ok(r) if r.index == key.index => Ok(r),
                    Ok(r) => Err(problem(format!(
                        "the file name says index {} but the record says {}",
                        key.index, r.index
                    ))),
                    Err(e) => Err(problem(format!("corrupt record: {e}"))),
                },
                Err(e) => Err(problem(format!("cannot read: {e}"))),
            }
        })
        .collect()
}

/// Reads every record and submission. Unreadable or corrupt files become problems; only a
/// missing or unreadable `.frames/records` directory is an error.
pub fn collect(layout: &Layout) -> io::Result<Collection> {
    collect_with_threads(layout, None)
}

/// [`collect`] reading records with `threads` threads (default: up to 8, by the CPUs, when
/// there are many records).
pub fn collect_with_threads(layout: &Layout, threads: Option<usize>) -> io::Result<Collection> {
    if !layout.state_dir().is_dir() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!(
                "{}: no .frames directory (not a --frame-dir directory, or no task started yet)",
                layout.root().display()
            ),
        ));
    }
    let records_dir = layout.records_dir();
    let (keys, strange) = match list_records(layout) {
        Ok(v) => v,
        Err(e) if e.kind() == io::ErrorKind::NotFound => (Vec::new(), Vec::new()),
        Err(e) => return Err(e),
    };
    let mut problems: Vec<Problem> = strange
        .iter()
        .map(|n| {
            Problem::new(
                &records_dir.join(n),
                "unexpected file name: expected INDEX.aATTEMPT.jJOB.sSTEP.tTASK.json",
            )
        })
        .collect();
    // Read in directory order (cheaper for the file system than name order), sort after.
    let dir = RecordDir::open(&records_dir)?;
    // Reading many small files is bound by system call latency, not by the CPU: with enough
    // files, spread them over threads (in order-preserving chunks).
    let threads = if let Some(t) = threads {
        t.max(1)
    } else if keys.len() < 4096 {
        1
    } else {
        std::thread::available_parallelism().map_or(1, |n| n.get().min(8))
    };
    let chunk = keys.len().div_ceil(threads).max(1);
    let parts: Vec<Vec<Result<TaskRecord, Problem>>> = std::thread::scope(|scope| {
        let handles: Vec<_> = keys
            .chunks(chunk)
            .map(|part| scope.spawn(|| read_records(&dir, &records_dir, part)))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join().map_err(|_| {
                    io::Error::other(format!(
                        "{}: a reader thread panicked",
                        records_dir.display()
                    ))
                })
            })
            .collect::<io::Result<_>>()
    })?;
    let mut keyed = Vec::with_capacity(keys.len());
    for ((key, _), item) in keys.iter().zip(parts.into_iter().flatten()) {
        match item {
            Ok(r) => keyed.push((*key, r)),
            Err(p) => problems.push(p),
        }
    }
    keyed.sort_unstable_by_key(|(k, _)| *k);
    let records = keyed.into_iter().map(|(_, r)| r).collect();
    let (submissions, sub_problems) = submission::read_all(layout)?;
    problems.extend(sub_problems);
    problems.sort();
    Ok(Collection {
        root: layout.root().display().to_string(),
        records,
        submissions,
        problems,
    })
}

/// The indices the submissions' array specs list, and problems with unparsable specs.
fn submitted_indices(submissions: &[Submission]) -> (BTreeSet<u64>, bool, Vec<Problem>) {
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

/// Orders candidate records for one index: the greatest is chosen.
fn choice_key(r: &TaskRecord) -> (u32, u32, bool, OrdF64, &str, u32) {
    (
        r.job_id,
        r.attempt,
        r.status == Status::Done,
        OrdF64(r.end_time),
        r.step.as_str(),
        r.task_id,
    )
}

/// An f64 ordered by `total_cmp`.
struct OrdF64(f64);
impl PartialEq for OrdF64 {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other).is_eq()
    }
}
impl Eq for OrdF64 {}
impl PartialOrd for OrdF64 {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for OrdF64 {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0)
    }
}

/// Computes the summary (and each index's chosen record) of a collection.
pub fn summarize(c: &Collection) -> Summary {
    let (submitted, have_spec, mut problems) = submitted_indices(&c.submissions);
    problems.extend(c.problems.iter().cloned());
    problems.sort();

    // Chosen record per index.
    let mut best: BTreeMap<u64, usize> = BTreeMap::new();
    for (i, r) in c.records.iter().enumerate() {
        match best.get(&r.index) {
            Some(&j) if choice_key(&c.records[j]) >= choice_key(r) => {}
            _ => {
                best.insert(r.index, i);
            }
        }
    }

    let (mut indices, expected_from) = if have_spec {
        (submitted.clone(), "submissions")
    } else if let Some(n) = c
        .records
        .iter()
        .filter(|r| r.array_task_id.is_none())
        .map(|r| r.task_count)
        .max()
    {
        ((0..u64::from(n)).collect(), "task_count")
    } else {
        (BTreeSet::new(), "records")
    };
    let unexpected: Vec<u64> = best
        .keys()
        .copied()
        .filter(|i| !indices.contains(i))
        .collect();
    let unexpected_ranges = if expected_from == "records" {
        String::new()
    } else {
        ranges::compress(&unexpected)
    };
    indices.extend(unexpected);

    let mut frames = Vec::with_capacity(indices.len());
    let (mut missing, mut failed, mut done) = (Vec::new(), Vec::new(), 0u64);
    for &index in &indices {
        let chosen = best.get(&index).copied();
        match chosen.map(|i| c.records[i].status) {
            None => missing.push(index),
            Some(Status::Failed) => failed.push(index),
            Some(Status::Done) => done += 1,
        }
        frames.push(FrameChoice { index, chosen });
    }

    let mut nodes: BTreeMap<String, NodeCounts> = BTreeMap::new();
    let mut first_start: Option<f64> = None;
    let mut last_end: Option<f64> = None;
    for r in &c.records {
        let n = nodes.entry(r.node.clone()).or_default();
        match r.status {
            Status::Done => n.done += 1,
            Status::Failed => n.failed += 1,
        }
        if let Some(s) = r.start_time {
            first_start = Some(first_start.map_or(s, |f| f.min(s)));
        }
        last_end = Some(last_end.map_or(r.end_time, |l| l.max(r.end_time)));
    }
    let hosts: Vec<String> = nodes.keys().cloned().collect();
    let mut failing_nodes: Vec<String> = nodes
        .iter()
        .filter(|(_, n)| n.failed >= 2 && n.failed > n.done)
        .map(|(name, _)| name.clone())
        .collect();
    if failing_nodes.len() == hosts.len() {
        failing_nodes.clear();
    }

    let mut rerun: Vec<u64> = missing.iter().chain(&failed).copied().collect();
    rerun.sort_unstable();
    let (resubmit, uncovered) = resubmit_commands(&c.submissions, &rerun, &failing_nodes);

    Summary {
        version: SUMMARY_VERSION,
        frame_dir: c.root.clone(),
        expected: indices.len() as u64,
        done,
        failed: failed.len() as u64,
        missing: missing.len() as u64,
        expected_from: expected_from.to_owned(),
        missing_ranges: ranges::compress(&missing),
        failed_ranges: ranges::compress(&failed),
        rerun_ranges: ranges::compress(&rerun),
        unexpected_ranges,
        attempts: c.records.len() as u64,
        nodes,
        hosts,
        failing_nodes,
        first_start,
        last_end,
        resubmit,
        not_resubmittable_ranges: ranges::compress(&uncovered),
        problems,
        frames,
    }
}

/// Assigns each rerun index to the latest sbatch submission whose array lists it (else the
/// latest sbatch submission without an array) and builds one command per submission.
/// Public for queue::exclude_active, which rebuilds them without what Slurm still runs.
pub fn resubmit_commands(
    submissions: &[Submission],
    rerun: &[u64],
    exclude: &[String],
) -> (Vec<ResubmitCommand>, Vec<u64>) {
    let specs: Vec<Option<BTreeSet<u64>>> = submissions
        .iter()
        .map(|s| {
            s.array
                .as_deref()
                .and_then(|a| ranges::parse_array_spec(a).ok())
                .map(|v| v.into_iter().collect())
        })
        .collect();
    let mut groups: BTreeMap<usize, Vec<u64>> = BTreeMap::new();
    let mut uncovered = Vec::new();
    for &index in rerun {
        let by_spec = (0..submissions.len()).rev().find(|&k| {
            submissions[k].is_sbatch() && specs[k].as_ref().is_some_and(|s| s.contains(&index))
        });
        let owner = by_spec.or_else(|| {
            (0..submissions.len())
                .rev()
                .find(|&k| submissions[k].is_sbatch() && submissions[k].array.is_none())
        });
        match owner {
            Some(k) => groups.entry(k).or_default().push(index),
            None => uncovered.push(index),
        }
    }
    let commands = groups
        .into_iter()
        .map(|(k, indices)| {
            let s = &submissions[k];
            let argv = s.resubmit_argv(&indices, exclude);
            ResubmitCommand {
                indices: ranges::compress(&indices),
                cwd: s.cwd.clone(),
                command: format!(
                    "cd {} && {}",
                    submission::shell_quote(&s.cwd),
                    submission::shell_join(&argv)
                ),
                argv,
            }
        })
        .collect();
    (commands, uncovered)
}

fn csv_field(out: &mut Vec<u8>, s: &str) {
    if s.contains([',', '"', '\n', '\r']) {
        out.push(b'"');
        out.extend_from_slice(s.replace('"', "\"\"").as_bytes());
        out.push(b'"');
    } else {
        out.extend_from_slice(s.as_bytes());
    }
}

fn opt<T: ToString>(v: Option<T>) -> String {
    v.map(|v| v.to_string()).unwrap_or_default()
}

/// The manifest: one JSON line per index, the chosen record or `{"index":N,"status":"missing"}`.
pub fn manifest_bytes(c: &Collection, s: &Summary) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.frames.len() * 512);
    for f in &s.frames {
        match f.chosen.and_then(|i| c.records.get(i)) {
            Some(r) => {
                // Serializing a record into memory cannot fail.
                let _ = serde_json::to_writer(&mut out, r);
            }
            None => {
                let _ = write!(out, "{{\"index\":{},\"status\":\"missing\"}}", f.index);
            }
        }
        out.push(b'\n');
    }
    out
}

/// summary.csv: one row per index.
pub fn csv_bytes(c: &Collection, s: &Summary) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.frames.len() * 128);
    out.extend_from_slice(
        b"index,status,attempt,node,exit_code,signal,duration,frame_size,frame_sha256,reason\n",
    );
    for f in &s.frames {
        match f.chosen.and_then(|i| c.records.get(i)) {
            Some(r) => {
                let _ = write!(out, "{},{},{},", r.index, r.status.as_str(), r.attempt);
                csv_field(&mut out, &r.node);
                let _ = write!(
                    out,
                    ",{},{},{},{},{},",
                    opt(r.exit_code),
                    opt(r.signal),
                    opt(r.duration()),
                    opt(r.frame_size),
                    r.frame_sha256.as_deref().unwrap_or("")
                );
                csv_field(&mut out, r.reason.as_deref().unwrap_or(""));
            }
            None => {
                let _ = write!(out, "{},missing,,,,,,,,", f.index);
            }
        }
        out.push(b'\n');
    }
    out
}

/// Writes manifest.jsonl, summary.json and summary.csv, each atomically.
pub fn write_outputs(layout: &Layout, c: &Collection, s: &Summary) -> io::Result<()> {
    atomic::write_atomic(&layout.manifest_path(), &manifest_bytes(c, s))?;
    let mut json = serde_json::to_vec_pretty(s).map_err(io::Error::other)?;
    json.push(b'\n');
    atomic::write_atomic(&layout.summary_json_path(), &json)?;
    atomic::write_atomic(&layout.summary_csv_path(), &csv_bytes(c, s))
}

/// Collects, summarizes and writes the outputs. Same files in, byte-identical outputs out.
pub fn merge(layout: &Layout) -> io::Result<Summary> {
    let c = collect(layout)?;
    let s = summarize(&c);
    write_outputs(layout, &c, &s)?;
    Ok(s)
}

/// Whether every expected index has a record, judged from names (plus the small submission
/// files, and one record per non-array step for its task count). `false` as well when
/// completeness cannot be judged (array records but no recorded array spec): `frames collect`
/// merges those.
fn complete_by_names(layout: &Layout, keys: &[(TaskKey, String)]) -> io::Result<bool> {
    let (submissions, _) = submission::read_all(layout)?;
    let (submitted, have_spec, _) = submitted_indices(&submissions);
    let seen: BTreeSet<u64> = keys.iter().map(|(k, _)| k.index).collect();
    if have_spec {
        return Ok(submitted.iter().all(|i| seen.contains(i)));
    }
    // No array spec: a non-array job's tasks are its frames. Read one readable record per
    // step (a FIFO, symlink or corrupt file under a record's name is skipped, not waited on).
    let mut steps_read = BTreeSet::new();
    let mut task_count: Option<u32> = None;
    for (k, name) in keys {
        if steps_read.contains(&(k.job_id, k.step)) {
            continue;
        }
        let path = layout.records_dir().join(name);
        let Ok(bytes) = crate::atomic::read_regular_nofollow(&path, MAX_RECORD_BYTES) else {
            continue;
        };
        let Ok(r) = serde_json::from_slice::<TaskRecord>(&bytes) else {
            continue;
        };
        steps_read.insert((k.job_id, k.step));
        if r.array_task_id.is_none() {
            task_count = Some(task_count.unwrap_or(0).max(r.task_count));
        }
    }
    Ok(match task_count {
        Some(n) => (0..u64::from(n)).all(|i| seen.contains(&i)),
        None => false,
    })
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
    let (keys, _) = list_records(layout)?;
    if keys.is_empty() || !complete_by_names(layout, &keys)? {
        return Ok(None);
    }
    let mut count = keys.len();
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
        let now = list_records(layout)?.0.len();
        if now == count {
            return Ok(Some(summary));
        }
        count = now;
    }
    merge(layout).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::StepId;
    use crate::record::tests::sample;
    use crate::test_util::TempDir;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn key(r: &TaskRecord) -> TaskKey {
        TaskKey {
            index: r.index,
            attempt: r.attempt,
            job_id: r.job_id,
            step: r.step.parse().unwrap_or(StepId::Batch),
            task_id: r.task_id,
        }
    }

    fn put(layout: &Layout, r: &TaskRecord) {
        atomic::write_new(
            &layout.record_path(&key(r)),
            &serde_json::to_vec(r).unwrap(),
        )
        .unwrap();
    }

    fn submit(layout: &Layout, cmd: &str, time: f64) {
        let argv: Vec<String> = cmd.split(' ').map(str::to_owned).collect();
        let mut s = Submission::from_argv(&argv, "/home/u/proj", time);
        s.state = submission::SubmissionState::Accepted;
        submission::write(layout, &mut s, "login1").unwrap();
    }

    fn failed(index: u64, attempt: u32, node: &str, end: f64) -> TaskRecord {
        let mut r = sample(index);
        r.attempt = attempt;
        r.node = node.into();
        r.end_time = end;
        r.exit_code = Some(1);
        r.decide(true);
        r
    }

    fn dir(tag: &str) -> (TempDir, Layout) {
        let t = TempDir::new(tag);
        let l = Layout::new(t.path());
        l.create_dirs().unwrap();
        (t, l)
    }

    #[test]
    fn a_resubmission_beats_a_requeued_failure_of_the_original_job() {
        let (_t, l) = dir("merge-resubmit-choice");
        submit(&l, "sbatch --array=0 --frame-dir=/f r.sh", 1.0);
        let mut requeued = failed(0, 1, "c2", 50.0);
        requeued.job_id = 10;
        put(&l, &requeued);
        let mut resubmitted = sample(0);
        resubmitted.job_id = 20;
        resubmitted.attempt = 0;
        put(&l, &resubmitted);
        let c = collect(&l).unwrap();
        let s = summarize(&c);
        let chosen = &c.records[s.frames[0].chosen.unwrap()];
        assert_eq!((chosen.job_id, chosen.status), (20, Status::Done));
    }

    #[test]
    fn choice_rules() {
        let (_t, l) = dir("merge-choice");
        submit(&l, "sbatch --array=0-5 --frame-dir=/f r.sh", 1.0);
        // 0: failed attempt 0, done attempt 1 → done.
        put(&l, &failed(0, 0, "c1", 10.0));
        let mut r = sample(0);
        r.attempt = 1;
        put(&l, &r);
        // 1: done attempt 0, failed attempt 1 → latest attempt wins: failed.
        put(&l, &sample(1));
        put(&l, &failed(1, 1, "c2", 5.0));
        // 2: same attempt, done and failed → done, even if failed ended later.
        let mut d = sample(2);
        d.end_time = 1.0;
        put(&l, &d);
        let mut f = failed(2, 0, "c2", 99.0);
        f.job_id = 5;
        put(&l, &f);
        // 3: two failed same attempt → later end time.
        let mut a = failed(3, 0, "c1", 50.0);
        a.job_id = 7;
        a.exit_code = Some(7);
        a.decide(true);
        put(&l, &a);
        let mut b = failed(3, 0, "c2", 60.0);
        b.job_id = 8;
        b.exit_code = Some(8);
        b.decide(true);
        put(&l, &b);
        // 4 missing, 5 done.
        put(&l, &sample(5));

        let c = collect(&l).unwrap();
        let s = summarize(&c);
        let chosen = |i: u64| &c.records[s.frames[i as usize].chosen.unwrap()];
        assert_eq!(chosen(0).attempt, 1);
        assert_eq!(chosen(0).status, Status::Done);
        assert_eq!(chosen(1).status, Status::Failed);
        assert_eq!(chosen(2).status, Status::Done);
        assert_eq!(chosen(3).reason.as_deref(), Some("exit code 8"));
        assert_eq!(s.frames[4].chosen, None);
        assert_eq!((s.expected, s.done, s.failed, s.missing), (6, 3, 2, 1));
        assert_eq!(s.failed_ranges, "1,3");
        assert_eq!(s.missing_ranges, "4");
        assert_eq!(s.rerun_ranges, "1,3-4");
        assert_eq!(s.expected_from, "submissions");
        assert_eq!(s.attempts, 9);
        assert_eq!(s.nodes["c2"], NodeCounts { done: 0, failed: 3 });
        assert_eq!(s.nodes["c1"], NodeCounts { done: 4, failed: 2 });
        assert_eq!(s.hosts, vec!["c1", "c2"]);
        assert_eq!(s.failing_nodes, vec!["c2"]);
        assert_eq!(s.resubmit.len(), 1);
        assert_eq!(
            s.resubmit[0].argv,
            vec![
                "sbatch",
                "--exclude=c2",
                "--array=1,3-4",
                "--frame-dir=/f",
                "r.sh"
            ]
        );
        assert_eq!(
            s.resubmit[0].command,
            "cd /home/u/proj && sbatch --exclude=c2 --array=1,3-4 --frame-dir=/f r.sh"
        );
        assert!(!s.is_settled());
    }

    #[test]
    fn corrupt_and_strange_files_are_problems_not_fatal() {
        let (_t, l) = dir("merge-corrupt");
        submit(&l, "sbatch --array=0-2 r.sh", 1.0);
        put(&l, &sample(0));
        std::fs::write(
            l.records_dir().join("00000001.a0.j1.sbatch.t0.json"),
            b"{\"index\":",
        )
        .unwrap();
        std::fs::write(l.records_dir().join("README"), b"hi").unwrap();
        std::fs::write(
            l.records_dir()
                .join(".00000002.a0.j1.sbatch.t0.json.tmp.1.2.3"),
            b"",
        )
        .unwrap();
        // Name and content disagree.
        let r = sample(7);
        std::fs::write(
            l.records_dir().join("00000002.a0.j9.sbatch.t0.json"),
            serde_json::to_vec(&r).unwrap(),
        )
        .unwrap();
        let s = merge(&l).unwrap();
        assert_eq!((s.done, s.missing), (1, 2));
        assert_eq!(s.problems.len(), 3, "{:?}", s.problems);
        let all = format!("{:?}", s.problems);
        assert!(all.contains("corrupt record"), "{all}");
        assert!(all.contains("unexpected file name"), "{all}");
        assert!(all.contains("says index 2 but the record says 7"), "{all}");
        assert!(!all.contains(".tmp."), "{all}");
        let manifest = std::fs::read_to_string(l.manifest_path()).unwrap();
        let lines: Vec<&str> = manifest.lines().collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[1], "{\"index\":1,\"status\":\"missing\"}");
        let first: TaskRecord = serde_json::from_str(lines[0]).unwrap();
        assert_eq!(first, sample(0));
    }

    fn mkfifo(p: &Path) {
        let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    }

    /// A FIFO or symlink planted under a record's (or submission's) name: a named problem, the
    /// other records merged, and no hang (a blocking open of the FIFO would never return).
    #[test]
    fn fifo_and_symlink_records_are_skipped_with_a_named_problem() {
        let (t, l) = dir("merge-fifo");
        submit(&l, "sbatch --array=0-3 r.sh", 1.0);
        put(&l, &sample(0));
        put(&l, &sample(2));
        mkfifo(&l.record_path(&key(&sample(1))));
        let elsewhere = t.path().join("outside.json");
        std::fs::write(&elsewhere, serde_json::to_vec(&sample(3)).unwrap()).unwrap();
        std::os::unix::fs::symlink(&elsewhere, l.record_path(&key(&sample(3)))).unwrap();
        mkfifo(&l.submissions_dir().join("zz-planted.json"));
        let s = merge(&l).unwrap();
        assert_eq!((s.done, s.missing), (2, 2), "{:?}", s.problems);
        let all = format!("{:?}", s.problems);
        assert!(all.contains("not a regular file"), "{all}");
        assert!(all.contains("symbolic link"), "{all}");
        let c = collect(&l).unwrap();
        assert!(
            c.problems
                .iter()
                .any(|p| p.path.contains("zz-planted.json")),
            "{:?}",
            c.problems
        );
        // The finisher judges completeness by names (all four are there): it merges, without
        // blocking on the FIFO, and reports the same two problems.
        let f = try_finish(&l).unwrap().expect("complete by names");
        assert_eq!((f.done, f.missing), (2, 2));
    }

    #[test]
    fn try_finish_non_array_skips_a_fifo_record() {
        let (_t, l) = dir("finish-nonarray-fifo");
        let mut recs = Vec::new();
        for i in 0..3u64 {
            let mut r = sample(i);
            r.array_job_id = None;
            r.array_task_id = None;
            r.job_id = 78;
            r.step = "0".into();
            r.task_id = i as u32;
            r.task_count = 3;
            recs.push(r);
        }
        // Task 0's name is taken by a FIFO; tasks 1 and 2 carry the task count.
        mkfifo(&l.record_path(&key(&recs[0])));
        put(&l, &recs[1]);
        put(&l, &recs[2]);
        let s = try_finish(&l).unwrap().expect("all names present: merged");
        assert_eq!(s.done, 2);
        assert!(format!("{:?}", s.problems).contains("not a regular file"));
    }

    #[test]
    fn outputs_are_idempotent_and_complete() {
        let (_t, l) = dir("merge-idem");
        submit(&l, "sbatch --array=0-3 r.sh", 1.0);
        for i in 0..4 {
            let mut r = sample(i);
            r.node = format!("n,{}\"q", i % 2);
            if i == 2 {
                r.frame_size = Some(0);
                r.decide(true);
            }
            put(&l, &r);
        }
        let s1 = merge(&l).unwrap();
        let read = |p: &Path| std::fs::read(p).unwrap();
        let (m1, j1, c1) = (
            read(&l.manifest_path()),
            read(&l.summary_json_path()),
            read(&l.summary_csv_path()),
        );
        let s2 = merge(&l).unwrap();
        assert_eq!(s1, s2);
        assert_eq!(read(&l.manifest_path()), m1);
        assert_eq!(read(&l.summary_json_path()), j1);
        assert_eq!(read(&l.summary_csv_path()), c1);
        assert!(s1.is_settled());
        let csv = String::from_utf8(c1).unwrap();
        let rows: Vec<&str> = csv.lines().collect();
        assert_eq!(rows.len(), 5);
        assert_eq!(
            rows[3],
            format!(
                "2,failed,0,\"n,0\"\"q\",0,,10.5,0,{},frame file empty: /f/frame_0002.png",
                "00".repeat(32)
            )
        );
        let summary: Summary = serde_json::from_slice(&j1).unwrap();
        assert_eq!(summary.failed_ranges, "2");
        assert!(summary.frames.is_empty());
    }

    #[test]
    fn expected_without_submissions() {
        // Non-array job: 0..task_count.
        let (_t, l) = dir("merge-nonarray");
        for i in [0u64, 2] {
            let mut r = sample(i);
            r.array_job_id = None;
            r.array_task_id = None;
            r.task_count = 4;
            r.step = "0".into();
            r.task_id = i as u32;
            put(&l, &r);
        }
        let s = summarize(&collect(&l).unwrap());
        assert_eq!(s.expected_from, "task_count");
        assert_eq!((s.expected, s.done, s.missing), (4, 2, 2));
        assert_eq!(s.missing_ranges, "1,3");
        assert!(s.resubmit.is_empty());
        assert_eq!(s.not_resubmittable_ranges, "1,3");

        // Array records, no submission: the indices seen.
        let (_t2, l2) = dir("merge-seen");
        put(&l2, &sample(3));
        put(&l2, &sample(9));
        let s = summarize(&collect(&l2).unwrap());
        assert_eq!(s.expected_from, "records");
        assert_eq!((s.expected, s.done, s.missing), (2, 2, 0));
        assert_eq!(s.unexpected_ranges, "");
    }

    #[test]
    fn unexpected_indices_are_kept_and_submissions_split_resubmits() {
        let (_t, l) = dir("merge-multi");
        submit(&l, "sbatch --array=0-3 a.sh", 1.0);
        submit(&l, "sbatch --array=10-11 b.sh", 2.0);
        put(&l, &sample(0));
        put(&l, &sample(20));
        let s = summarize(&collect(&l).unwrap());
        assert_eq!(s.expected, 7);
        assert_eq!(s.unexpected_ranges, "20");
        assert_eq!(s.missing_ranges, "1-3,10-11");
        let cmds: Vec<String> = s.resubmit.iter().map(|c| c.argv.join(" ")).collect();
        assert_eq!(
            cmds,
            vec!["sbatch --array=1-3 a.sh", "sbatch --array=10-11 b.sh"]
        );
    }

    #[test]
    fn failing_nodes_not_everything() {
        let (_t, l) = dir("merge-allfail");
        submit(&l, "sbatch --array=0-3 r.sh", 1.0);
        for i in 0..4 {
            put(&l, &failed(i, 0, if i % 2 == 0 { "c1" } else { "c2" }, 1.0));
        }
        let s = summarize(&collect(&l).unwrap());
        assert!(s.failing_nodes.is_empty(), "{:?}", s.failing_nodes);
        assert_eq!(s.resubmit[0].argv.join(" "), "sbatch --array=0-3 r.sh");
    }

    #[test]
    fn not_a_frame_dir() {
        let t = TempDir::new("merge-none");
        let err = collect(&Layout::new(t.path())).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        assert!(err.to_string().contains("no .frames directory"), "{err}");
    }

    #[test]
    fn try_finish_waits_for_completion_then_merges_once() {
        let (_t, l) = dir("finish-seq");
        submit(&l, "sbatch --array=0-2 r.sh", 1.0);
        put(&l, &sample(0));
        assert!(try_finish(&l).unwrap().is_none());
        put(&l, &sample(1));
        assert!(try_finish(&l).unwrap().is_none());
        assert!(!l.manifest_path().exists());
        put(&l, &failed(2, 0, "c1", 1.0));
        let s = try_finish(&l).unwrap().expect("complete: merges");
        assert_eq!((s.done, s.failed), (2, 1));
        assert!(l.manifest_path().exists());
        // Same state: already finished.
        assert!(try_finish(&l).unwrap().is_none());
        // A requeued attempt adds a record: merges again and the outputs include it.
        let mut r = sample(2);
        r.attempt = 1;
        put(&l, &r);
        let s = try_finish(&l).unwrap().expect("new record: merges again");
        assert_eq!((s.done, s.failed), (3, 0));
        let csv = std::fs::read_to_string(l.summary_csv_path()).unwrap();
        assert!(csv.contains("\n2,done,1,"), "{csv}");
    }

    #[test]
    fn try_finish_non_array_uses_task_count() {
        let (_t, l) = dir("finish-nonarray");
        for i in 0..3u64 {
            let mut r = sample(i);
            r.array_job_id = None;
            r.array_task_id = None;
            r.job_id = 77;
            r.step = "0".into();
            r.task_id = i as u32;
            r.task_count = 3;
            put(&l, &r);
            let finished = try_finish(&l).unwrap();
            assert_eq!(finished.is_some(), i == 2, "after task {i}");
        }
    }

    #[test]
    fn try_finish_elects_exactly_one_of_many_racing_tasks() {
        for round in 0..3 {
            let (t, l) = dir(&format!("finish-race-{round}"));
            submit(&l, "sbatch --array=0-49 r.sh", 1.0);
            let l = Arc::new(l);
            let merges = Arc::new(AtomicUsize::new(0));
            let barrier = Arc::new(std::sync::Barrier::new(50));
            let handles: Vec<_> = (0..50u64)
                .map(|i| {
                    let (l, merges, barrier) = (l.clone(), merges.clone(), barrier.clone());
                    std::thread::spawn(move || {
                        barrier.wait();
                        put(&l, &sample(i));
                        if let Some(s) = try_finish(&l).unwrap() {
                            assert_eq!(s.done, 50);
                            merges.fetch_add(1, Ordering::SeqCst);
                        }
                    })
                })
                .collect();
            for h in handles {
                h.join().unwrap();
            }
            assert_eq!(merges.load(Ordering::SeqCst), 1, "round {round}");
            let manifest = std::fs::read_to_string(l.manifest_path()).unwrap();
            assert_eq!(manifest.lines().count(), 50);
            assert!(!manifest.contains("missing"));
            drop(t);
        }
    }

    /// Generates synthetic records and times collect + summarize + write. Run with
    /// `cargo test --release -p frames-core -- --ignored --nocapture merge_benchmark`.
    #[test]
    #[ignore]
    fn merge_benchmark() {
        for n in [10_000u64, 100_000] {
            let (_t, l) = dir(&format!("bench-{n}"));
            submit(&l, &format!("sbatch --array=0-{} r.sh", n - 1), 1.0);
            for i in 0..n {
                let mut r = sample(i);
                r.results.push(
                    crate::record::RawJson::parse(&format!(r#"{{"loss": 0.5, "step": {i}}}"#))
                        .unwrap(),
                );
                std::fs::write(l.record_path(&key(&r)), serde_json::to_vec(&r).unwrap()).unwrap();
            }
            // Let the writeback of the generated files finish: it would slow the reads down.
            // SAFETY: sync(2) has no preconditions.
            unsafe { libc::sync() };
            let one = std::time::Instant::now();
            let c1 = collect_with_threads(&l, Some(1)).unwrap();
            let one = one.elapsed();
            assert_eq!(c1.records.len() as u64, n);
            drop(c1);
            let t0 = std::time::Instant::now();
            let c = collect(&l).unwrap();
            let t1 = t0.elapsed();
            let s = summarize(&c);
            let t2 = t0.elapsed();
            write_outputs(&l, &c, &s).unwrap();
            let t3 = t0.elapsed();
            assert_eq!(s.done, n);
            println!(
                "collect of {n} records on one thread: {:.3}s",
                one.as_secs_f64()
            );
            println!(
                "merge of {n} records: collect {:.3}s, summarize {:.3}s, write {:.3}s, total {:.3}s",
                t1.as_secs_f64(),
                (t2 - t1).as_secs_f64(),
                (t3 - t2).as_secs_f64(),
                t3.as_secs_f64()
            );
        }
    }
}
