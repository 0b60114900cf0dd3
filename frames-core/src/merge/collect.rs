//! Reading a frame directory: every record (relative to the open records directory, over a
//! few threads when there are many), every submission, and who owns them. A file owned by
//! someone other than the owner of `.frames` is a problem, never counted. [`Tracker`] reads
//! it again and again, each time only what is new (`frames watch`); [`collect`] is one read.
use std::io;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use super::{Collection, OwnedSubmission};
use crate::Problem;
use crate::layout::{Layout, TaskKey};
use crate::record::TaskRecord;
use crate::store::{self, Listing, Place};
use crate::submission;

pub(super) fn annotate(e: io::Error, what: &str, path: &Path) -> io::Error {
    io::Error::new(e.kind(), format!("{what} {}: {e}", path.display()))
}

/// Lists the records (record files and segment lines); a missing records directory lists
/// nothing.
pub(super) fn list_records(layout: &Layout) -> io::Result<Listing> {
    match store::list(layout, None) {
        Ok(l) => Ok(l),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Listing::default()),
        Err(e) => Err(e),
    }
}

/// The records directory, open, so each record is opened relative to it (`openat`): no path
/// lookup per file, which is most of the cost of reading 100,000 small files.
struct RecordDir {
    dir: std::fs::File,
}

/// Largest record file read; a bigger one is reported as a problem.
pub(super) const MAX_RECORD_BYTES: usize = 64 << 20;

impl RecordDir {
    fn open(dir: &Path) -> io::Result<RecordDir> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
            .open(dir)
            .map_err(|e| annotate(e, "cannot open", dir))?;
        Ok(RecordDir { dir: file })
    }

    /// Reads and parses the record file `name` (never following a symlink). Records are
    /// written whole and never modified (host_io::write_new), so when the first read returns
    /// less than the buffer and parses as a record, that is the file: one read system call
    /// instead of two, which matters with 100,000 files.
    fn read(
        &self,
        name: &str,
        buf: &mut Vec<u8>,
    ) -> io::Result<(u32, serde_json::Result<TaskRecord>)> {
        use std::io::Read;
        let (mut file, meta) = host_io::open_regular_in(&self.dir, name)?;
        let uid = meta.uid();
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
            return Ok((uid, Ok(record)));
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
        Ok((uid, serde_json::from_slice::<TaskRecord>(buf)))
    }
}

fn read_records(
    dir: Option<&RecordDir>,
    layout: &Layout,
    listing: &Listing,
    part: &[(TaskKey, Place)],
    owner: u32,
) -> Vec<Result<TaskRecord, Problem>> {
    let mut buf = Vec::with_capacity(64 * 1024);
    part.iter()
        .map(|(key, place)| {
            let problem = |e: String| Problem::new(&store::place_path(layout, listing, place), e);
            let read = match place {
                Place::File(name) => match dir {
                    Some(dir) => dir.read(name, &mut buf),
                    None => Err(io::Error::other("record file read without its directory")),
                },
                Place::Segment { .. } => match listing.segment_json(place) {
                    Some((seg, json)) => Ok((seg.uid, serde_json::from_slice::<TaskRecord>(json))),
                    None => Err(io::Error::other("segment line out of range")),
                },
            };
            match read {
                Ok((uid, _)) if uid != owner => Err(problem(foreign(uid, owner))),
                Ok((uid, parsed)) => match parsed {
                    Ok(r) if r.uid.is_some_and(|said| said != uid) => {
                        Err(problem(impostor(r.uid.unwrap_or(uid), uid)))
                    }
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
    let mut tracker = Tracker::with_threads(threads);
    tracker.refresh(layout)?;
    Ok(tracker.into_collection())
}

/// A frame directory's collection kept up to date by reading only what is new: lines
/// appended to segments since the last refresh (an unterminated last line is read again) and
/// record files not read before; the submissions, which are few, are read whole every time.
/// Anything removed or replaced rather than appended (a segment gone, shorter or another
/// file, a record file gone, another owner of `.frames`) makes that refresh read everything,
/// so the collection is always what [`collect`] would return.
#[derive(Debug, Default)]
pub struct Tracker {
    marks: store::Marks,
    collection: Collection,
    /// The keys of `collection.records`, in the same (sorted) order.
    keys: Vec<TaskKey>,
    /// Problems of what is never read again (bad lines, bad record files).
    lasting: Vec<Problem>,
    threads: Option<usize>,
}

/// What one refresh read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Refreshed {
    /// Records read and counted (new ones; all of them when `whole`).
    pub records: usize,
    /// Segment bytes read.
    pub bytes: u64,
    /// Everything was read: the first refresh, or something was removed or replaced.
    pub whole: bool,
}

impl Tracker {
    pub fn new() -> Tracker {
        Tracker::default()
    }

    /// A tracker reading record files with `threads` threads (see [`collect_with_threads`]).
    pub fn with_threads(threads: Option<usize>) -> Tracker {
        Tracker {
            threads,
            ..Tracker::default()
        }
    }

    /// The collection as of the last refresh.
    pub fn collection(&self) -> &Collection {
        &self.collection
    }

    /// The collection, for changes to its submissions (queue::settle_submissions): the next
    /// refresh reads them again. Its records must stay as they are.
    pub fn collection_mut(&mut self) -> &mut Collection {
        &mut self.collection
    }

    pub fn into_collection(self) -> Collection {
        self.collection
    }

    fn forget(&mut self) {
        *self = Tracker::with_threads(self.threads);
    }

    /// Brings the collection up to date with the directory.
    pub fn refresh(&mut self, layout: &Layout) -> io::Result<Refreshed> {
        let state = state_dir_owner(layout)?;
        let owner = state.uid();
        if self.collection.owner_uid != Some(owner) {
            self.forget();
        }
        let mut whole = self.marks.is_empty();
        let records_dir = layout.records_dir();
        let Scanned {
            listing,
            mut fresh,
            bytes,
        } = match self.scan(layout, owner)? {
            Some(found) => found,
            None => {
                self.forget();
                whole = true;
                self.scan(layout, owner)?.unwrap_or_default()
            }
        };
        let mut transient: Vec<Problem> = listing
            .strange
            .iter()
            .map(|n| {
                Problem::new(
                    &records_dir.join(n),
                    "unexpected file name: expected JOB.NODE.seg or INDEX.aATTEMPT.jJOB.sSTEP.tTASK.json",
                )
            })
            .collect();
        transient.extend(
            listing
                .incomplete
                .iter()
                .map(|(name, e)| Problem::new(&records_dir.join(name), e.as_str())),
        );
        self.lasting.extend(
            listing
                .bad
                .iter()
                .map(|(name, e)| Problem::new(&records_dir.join(name), e.as_str())),
        );
        // Record files (older plugin versions), opened relative to the records directory.
        if !listing.records.is_empty() {
            let dir = RecordDir::open(&records_dir)?;
            let read = read_all_records(Some(&dir), layout, &listing, owner, self.threads)?;
            for ((key, _), item) in listing.records.iter().zip(read) {
                match item {
                    Ok(r) => fresh.push((*key, r)),
                    Err(p) => self.lasting.push(p),
                }
            }
        }
        let counted = fresh.len();
        self.insert(fresh);
        let (found, sub_problems) = submission::read_all_owned(layout)?;
        transient.extend(sub_problems);
        let submissions = owned_submissions(layout, found, owner, &mut transient);
        let mut problems = self.lasting.clone();
        problems.extend(transient);
        problems.sort();
        let c = &mut self.collection;
        c.root = layout.root().display().to_string();
        c.submissions = submissions;
        c.problems = problems;
        c.owner_uid = Some(owner);
        c.warnings = dir_warnings(layout, &state);
        Ok(Refreshed {
            records: counted,
            bytes,
            whole,
        })
    }

    /// Reads what is new: segment lines chunk by chunk (judged as they come) and the names of
    /// new record files (in the listing). `None`: something was removed or replaced.
    fn scan(&mut self, layout: &Layout, owner: u32) -> io::Result<Option<Scanned>> {
        let mut fresh = Vec::new();
        let mut failed = None;
        let mut bytes = 0u64;
        let threads = self.threads;
        let lasting = &mut self.lasting;
        let listing = list_records_since(layout, &mut self.marks, |chunk| {
            bytes += chunk
                .segments
                .iter()
                .map(|s| s.bytes.len() as u64)
                .sum::<u64>();
            match read_all_records(None, layout, chunk, owner, threads) {
                Ok(read) => {
                    for ((key, _), item) in chunk.records.iter().zip(read) {
                        match item {
                            Ok(r) => fresh.push((*key, r)),
                            Err(p) => lasting.push(p),
                        }
                    }
                }
                Err(e) => failed = Some(e),
            }
        })?;
        if let Some(e) = failed {
            return Err(e);
        }
        Ok(listing.map(|listing| Scanned {
            listing,
            fresh,
            bytes,
        }))
    }

    /// Adds records to the collection, keeping it in key order (new records mostly come
    /// after the old ones: then nothing moves).
    fn insert(&mut self, mut fresh: Vec<(TaskKey, TaskRecord)>) {
        if fresh.is_empty() {
            return;
        }
        fresh.sort_by_key(|(k, _)| *k);
        let in_order = match (self.keys.last(), fresh.first()) {
            (Some(last), Some((first, _))) => last <= first,
            _ => true,
        };
        if in_order {
            self.keys.extend(fresh.iter().map(|(k, _)| *k));
            if self.collection.records.is_empty() {
                // Collected in place: the records are not copied to a new allocation.
                self.collection.records = fresh.into_iter().map(|(_, r)| r).collect();
            } else {
                self.collection
                    .records
                    .extend(fresh.into_iter().map(|(_, r)| r));
            }
            return;
        }
        let old_keys = std::mem::take(&mut self.keys);
        let old = std::mem::take(&mut self.collection.records);
        let total = old_keys.len() + fresh.len();
        let mut keys = Vec::with_capacity(total);
        let mut records = Vec::with_capacity(total);
        let mut old = old_keys.into_iter().zip(old).peekable();
        let mut new = fresh.into_iter().peekable();
        loop {
            let take_old = match (old.peek(), new.peek()) {
                (Some((a, _)), Some((b, _))) => a <= b,
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (None, None) => break,
            };
            let next = if take_old { old.next() } else { new.next() };
            if let Some((k, r)) = next {
                keys.push(k);
                records.push(r);
            }
        }
        self.keys = keys;
        self.collection.records = records;
    }
}

/// What one scan read: the rest of the listing (record files, strange names, bad lines), the
/// segment records judged as they came, and the segment bytes read.
#[derive(Default)]
struct Scanned {
    listing: Listing,
    fresh: Vec<(TaskKey, TaskRecord)>,
    bytes: u64,
}

/// Segments are read in chunks of this many bytes (see store::scan_since).
const CHUNK_BYTES: usize = 4 << 20;

/// Reads what is new since `marks` (store::scan_since, segment chunks to `each`); a missing
/// records directory lists nothing (and, when something had been read from it, is a removal:
/// `None`).
fn list_records_since(
    layout: &Layout,
    marks: &mut store::Marks,
    each: impl FnMut(&mut Listing),
) -> io::Result<Option<Listing>> {
    match store::scan_since(layout, None, marks, CHUNK_BYTES, each) {
        Ok(l) => Ok(l),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            if marks.is_empty() {
                Ok(Some(Listing::default()))
            } else {
                *marks = store::Marks::default();
                Ok(None)
            }
        }
        Err(e) => Err(e),
    }
}

/// Reads and judges the listed records, over threads when there are many: one result per
/// listed record, in listing order.
fn read_all_records(
    dir: Option<&RecordDir>,
    layout: &Layout,
    listing: &Listing,
    owner: u32,
    threads: Option<usize>,
) -> io::Result<Vec<Result<TaskRecord, Problem>>> {
    let keys = &listing.records;
    // Reading many small files is bound by system call latency, not by the CPU: with enough
    // files, spread them over threads (in order-preserving chunks).
    let threads = if let Some(t) = threads {
        t.max(1)
    } else if keys.len() < 4096 {
        1
    } else {
        std::thread::available_parallelism().map_or(1, |n| n.get().min(8))
    };
    if threads == 1 {
        // In this thread: a spawned one would grow its own malloc arena page by page.
        return Ok(read_records(dir, layout, listing, keys, owner));
    }
    let chunk = keys.len().div_ceil(threads).max(1);
    let parts: Vec<Vec<Result<TaskRecord, Problem>>> = std::thread::scope(|scope| {
        let handles: Vec<_> = keys
            .chunks(chunk)
            .map(|part| scope.spawn(|| read_records(dir, layout, listing, part, owner)))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join().map_err(|_| {
                    io::Error::other(format!(
                        "{}: a reader thread panicked",
                        layout.records_dir().display()
                    ))
                })
            })
            .collect::<io::Result<_>>()
    })?;
    Ok(parts.into_iter().flatten().collect())
}

/// The submissions owned by `owner` that say no other uid; the others become problems.
fn owned_submissions(
    layout: &Layout,
    found: Vec<(String, u32, submission::Submission)>,
    owner: u32,
    problems: &mut Vec<Problem>,
) -> Vec<OwnedSubmission> {
    let mut submissions = Vec::with_capacity(found.len());
    for (name, uid, s) in found {
        if s.uid.is_some_and(|said| said != uid) {
            problems.push(Problem::new(
                &layout.submissions_dir().join(&name),
                format!(
                    "{}; its command is never run: {}",
                    impostor(s.uid.unwrap_or(uid), uid),
                    submission::shell_join(&s.argv)
                ),
            ));
        } else if uid == owner {
            submissions.push(OwnedSubmission {
                name,
                uid,
                submission: s,
            });
        } else {
            problems.push(Problem::new(
                &layout.submissions_dir().join(&name),
                format!(
                    "{}; its command is never run: {}",
                    foreign(uid, owner),
                    submission::shell_join(&s.argv)
                ),
            ));
        }
    }
    submissions
}

/// The problem text of a file that the owner of `.frames` did not write.
fn foreign(uid: u32, owner: u32) -> String {
    format!("owned by uid {uid}, not by uid {owner} who owns .frames: not trusted, not counted")
}

/// The problem text of a file whose content names another user than its owner (a copy of
/// someone's record or submission).
fn impostor(said: u32, owner: u32) -> String {
    format!("says uid {said} but the file is owned by uid {owner}: not trusted, not counted")
}

/// The metadata of `DIR/.frames`, or an error that says what is wrong: missing (not a frame
/// directory), or not readable by the caller (permission denied, with the owner and mode).
fn state_dir_owner(layout: &Layout) -> io::Result<std::fs::Metadata> {
    let root = layout.root();
    let state = layout.state_dir();
    let describe = |p: &Path| match std::fs::metadata(p) {
        Ok(m) => format!(
            " ({} is owned by uid {}, mode {:04o})",
            p.display(),
            m.uid(),
            m.permissions().mode() & 0o7777
        ),
        Err(_) => String::new(),
    };
    match std::fs::metadata(&state) {
        Ok(m) if m.is_dir() => {
            // Listing it is what the merge needs: say so now rather than per file.
            if let Err(e) = std::fs::read_dir(&state)
                && e.kind() == io::ErrorKind::PermissionDenied
            {
                return Err(io::Error::new(
                    e.kind(),
                    format!("{}: permission denied{}", state.display(), describe(&state)),
                ));
            }
            Ok(m)
        }
        Ok(_) => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{}: not a directory", state.display()),
        )),
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => Err(io::Error::new(
            e.kind(),
            format!(
                "{}: permission denied: cannot look into {}{}",
                root.display(),
                root.display(),
                describe(root)
            ),
        )),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Err(io::Error::new(
            e.kind(),
            format!(
                "{}: no .frames directory (not a --frame-dir directory, or no task started yet)",
                root.display()
            ),
        )),
        Err(e) => Err(annotate(e, "cannot read", &state)),
    }
}

/// Warnings about DIR itself: writable by other users (anyone who can write it can replace
/// `.frames`), or `.frames` owned by someone other than the caller.
fn dir_warnings(layout: &Layout, state: &std::fs::Metadata) -> Vec<String> {
    let mut out = Vec::new();
    let root = layout.root();
    if let Ok(m) = std::fs::metadata(root) {
        let mode = m.permissions().mode();
        if mode & 0o022 != 0 {
            out.push(format!(
                "{} is writable by other users (mode {:04o}): they can replace .frames; only \
                 files owned by uid {} are counted",
                root.display(),
                mode & 0o7777,
                state.uid()
            ));
        }
    }
    let me = host_io::real_uid();
    if state.uid() != me {
        out.push(format!(
            "{} is owned by uid {}, not by you (uid {me}): the status is that user's; \
             `frames resubmit` runs only submissions you made",
            layout.state_dir().display(),
            state.uid()
        ));
    }
    out
}
