//! The record store: where task records live under `DIR/.frames/records/` and how they are
//! read back as one listing, whichever way they were written.
//!
//! - Segments (this version): `<GROUP>.<NODE>.seg`, one per job (the array job for an array)
//!   and node, appended to by every task of that job that ends on that node
//!   ([`host_io::append_line`]: one `write` per record, then `fdatasync`). A node writes only
//!   its own segments, so on NFS each file has one writer kernel. Each record is one line,
//!   framed so a line torn by a crash is detected and never read as a record:
//!
//!   ```text
//!   # frames record segment 1                     (written by the creator; '#' lines are skipped)
//!   <STEM> <LEN> <CHECK> <JSON>\n                 STEM = TaskKey::stem, LEN = bytes of JSON,
//!                                                 CHECK = CRC-32 of JSON, 8 hex digits
//!   ```
//!
//! - Record files (plugin versions before segments): `<STEM>.json`, one whole file per task
//!   attempt (host_io::write_new). Still read, so a frame directory from before an upgrade
//!   keeps working, and both kinds may sit side by side.
//!
//! Reading 100,000 records from a few segments costs a few large reads instead of 100,000
//! opens. [`list`] reads every segment whole and checks each line's framing; record files are
//! listed by name and read by the caller (merge::collect, with `openat`).
use std::collections::{HashMap, HashSet};
use std::io::{self, Read};
use std::ops::Range;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::PathBuf;

use crate::layout::{Layout, TaskKey};
use crate::record::TaskRecord;

/// The first line of every segment.
pub const SEGMENT_HEADER: &[u8] = b"# frames record segment 1\n";

/// Largest segment read (a bigger one is reported as a problem, not read).
pub const MAX_SEGMENT_BYTES: u64 = 16 << 30;

/// The name of the segment of job (or array job) `group` on `node`. Characters other than
/// ASCII letters, digits, '-' and '_' in the node name become '_' (a name stays one file name).
pub fn segment_name(group: u32, node: &str) -> String {
    let node = crate::layout::file_name_part(node);
    format!("{group}.{node}.seg")
}

/// Whether a file name under `records/` is a segment.
pub fn is_segment_name(name: &str) -> bool {
    name.ends_with(".seg") && !name.starts_with('.')
}

/// The segment a record belongs in: its array job's (or its job's) on its node.
pub fn segment_path(layout: &Layout, record: &TaskRecord) -> PathBuf {
    let group = record.array_job_id.unwrap_or(record.job_id);
    layout.records_dir().join(segment_name(group, &record.node))
}

/// One framed line for `key`'s record `json` (compact JSON: one line).
pub fn encode_line(key: &TaskKey, json: &[u8]) -> Vec<u8> {
    let check = check_hex(json);
    let stem = key.stem();
    let mut line = Vec::with_capacity(stem.len() + json.len() + 40);
    line.extend_from_slice(stem.as_bytes());
    line.extend_from_slice(format!(" {} {check} ", json.len()).as_bytes());
    line.extend_from_slice(json);
    line.push(b'\n');
    line
}

/// The line check: CRC-32 of the JSON, 8 hex digits. It detects torn and garbled lines (SIMD
/// CRC runs at memory speed, unlike a cryptographic hash on 600-byte inputs); forgery is not
/// its business: only the owner of `.frames` can write a segment that is counted.
fn check_hex(json: &[u8]) -> String {
    format!("{:08x}", crc32fast::hash(json))
}

/// Appends `record` (as `key`) to its segment, durably (see [`host_io::append_line`]). Runs as
/// the record's user. Returns the segment's path.
pub fn append(layout: &Layout, key: &TaskKey, record: &TaskRecord) -> io::Result<PathBuf> {
    let json = serde_json::to_vec(record).map_err(io::Error::other)?;
    let path = segment_path(layout, record);
    host_io::append_line(&path, SEGMENT_HEADER, &encode_line(key, &json))?;
    Ok(path)
}

/// What one line of a segment holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    /// A whole record: its key and the byte range of its JSON in the segment.
    Record(TaskKey, Range<usize>),
    /// Bytes that are not a record (torn by a crash, or altered): where they start and why.
    Bad { offset: usize, error: String },
}

/// Splits a segment into its lines. Never fails: a bad line is reported and reading goes on
/// at the next '\n', so one torn or altered line never hides the records after it. An
/// unterminated last line is a record being appended or one cut by a crash: not a record.
pub fn parse_segment(bytes: &[u8]) -> Vec<Line> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < bytes.len() {
        let rest = &bytes[pos..];
        if rest[0] == b'\n' {
            pos += 1; // an empty line: a writer's separator after a torn line
            continue;
        }
        if rest[0] == b'#' {
            pos += memchr(rest).map_or(rest.len(), |n| n + 1);
            continue;
        }
        match parse_line(rest) {
            Ok((key, json, used)) => {
                out.push(Line::Record(key, pos + json.start..pos + json.end));
                pos += used;
            }
            Err(error) => {
                out.push(Line::Bad { offset: pos, error });
                pos += memchr(rest).map_or(rest.len(), |n| n + 1);
            }
        }
    }
    out
}

fn memchr(bytes: &[u8]) -> Option<usize> {
    memchr::memchr(b'\n', bytes)
}

/// One framed line at the start of `rest`: key, JSON range (relative) and bytes used. The line
/// ends at the first '\n' (compact JSON has none), and its length field must match exactly.
fn parse_line(rest: &[u8]) -> Result<(TaskKey, Range<usize>, usize), String> {
    let Some(nl) = memchr(rest) else {
        return Err(
            "incomplete last record (being appended, or cut by a crash): not counted".into(),
        );
    };
    let line = &rest[..nl];
    // STEM LEN CHECK: the three fields before the JSON, within the first 128 bytes.
    let mut fields = [0usize; 3];
    let mut found = 0;
    for (i, &b) in line.iter().take(128).enumerate() {
        if b == b' ' {
            fields[found] = i;
            found += 1;
            if found == 3 {
                break;
            }
        }
    }
    if found < 3 {
        return Err("not a record line (expected STEM LEN CHECK JSON)".into());
    }
    let text = |r: Range<usize>| std::str::from_utf8(&line[r]).unwrap_or("");
    let stem = text(0..fields[0]);
    let key = TaskKey::parse_stem(stem).ok_or_else(|| format!("bad record key '{stem}'"))?;
    // Decimal digits as the writer prints them (no sign, no leading zero): one framing per record.
    let len_text = text(fields[0] + 1..fields[1]);
    let canonical = len_text.bytes().all(|b| b.is_ascii_digit())
        && (len_text == "0" || !len_text.starts_with('0'));
    let len: usize = len_text
        .parse()
        .ok()
        .filter(|_| canonical)
        .ok_or_else(|| format!("record {stem}: bad length '{len_text}'"))?;
    let check = text(fields[1] + 1..fields[2]);
    let start = fields[2] + 1;
    if line.len() - start != len {
        return Err(format!(
            "record {stem}: {} bytes where its length says {len} (torn by a crash?)",
            line.len() - start
        ));
    }
    if check_hex(&line[start..]) != check {
        return Err(format!("record {stem}: checksum differs (altered or torn)"));
    }
    Ok((key, start..nl, nl + 1))
}

/// Where one listed record is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Place {
    /// A record file (older plugin versions), by name.
    File(String),
    /// A line of `Listing::segments[segment]`, its JSON at `range`.
    Segment { segment: usize, range: Range<usize> },
}

/// A segment, read whole or (an incremental listing) from `base` on.
#[derive(Debug, Clone)]
pub struct Segment {
    pub name: String,
    /// The owner of the file (the user who appended to it).
    pub uid: u32,
    /// The file offset of `bytes[0]`.
    pub base: u64,
    pub bytes: Vec<u8>,
}

/// Every record under `records/`: keys and places, in directory order.
#[derive(Debug, Clone, Default)]
pub struct Listing {
    pub records: Vec<(TaskKey, Place)>,
    pub segments: Vec<Segment>,
    /// Names that are neither records nor segments (temp files, starting with '.', are
    /// skipped).
    pub strange: Vec<String>,
    /// Segments that could not be read and bad lines: (file name, what is wrong).
    pub bad: Vec<(String, String)>,
    /// Unterminated last lines (a record being appended, or cut by a crash): (file name, what
    /// is wrong). Read again by the next incremental listing, so not a lasting problem there.
    pub incomplete: Vec<(String, String)>,
}

impl Listing {
    /// The JSON of a record in a segment; `None` for a record file.
    pub fn segment_json(&self, place: &Place) -> Option<(&Segment, &[u8])> {
        match place {
            Place::File(_) => None,
            Place::Segment { segment, range } => {
                let seg = self.segments.get(*segment)?;
                Some((seg, seg.bytes.get(range.clone())?))
            }
        }
    }
}

/// How far listings have read each segment and which record files they listed, so the next
/// listing ([`scan_since`]) reads only what came since: `frames watch` on a big directory.
#[derive(Debug, Clone, Default)]
pub struct Marks {
    segments: HashMap<String, SegmentMark>,
    files: HashSet<String>,
}

impl Marks {
    /// Nothing read yet.
    pub fn is_empty(&self) -> bool {
        self.segments.is_empty() && self.files.is_empty()
    }
}

/// A segment read up to `read_to` (the end of its last whole line), identified by device,
/// inode and owner: any other file under that name is a rewrite, never an append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct SegmentMark {
    dev: u64,
    ino: u64,
    uid: u32,
    read_to: u64,
}

/// Lists the records directory: record files by name, segments read whole. With
/// `only_group`, reads only the segments of that job (or array job): what a task of that job
/// needs to see its own job's records (record files are listed all the same).
pub fn list(layout: &Layout, only_group: Option<u32>) -> io::Result<Listing> {
    let mut segments = Vec::new();
    let mut records = Vec::new();
    let scan = scan_since(
        layout,
        only_group,
        &mut Marks::default(),
        usize::MAX,
        |chunk| {
            // A whole segment per chunk: kept, its places renumbered into the listing.
            let index = segments.len();
            records.extend(chunk.records.drain(..).map(|(key, place)| match place {
                Place::Segment { range, .. } => (
                    key,
                    Place::Segment {
                        segment: index,
                        range,
                    },
                ),
                file => (key, file),
            }));
            segments.append(&mut chunk.segments);
        },
    )?;
    // Empty marks never see a removal: the scan's listing is always there.
    let mut listing = scan.unwrap_or_default();
    listing.records.append(&mut records);
    listing.segments = segments;
    Ok(listing)
}

/// Lists what is new since `marks` (and moves them on): record files not listed before, and
/// the lines appended to each segment since it was last read (a segment's unterminated last
/// line is read again next time). `None` when anything was not appended to but removed or
/// replaced (a segment gone, shorter, or another file; a record file gone): then the caller
/// starts again from empty marks. Segments are read in
/// chunks of about `chunk` bytes (whole lines; a longer line makes its chunk longer), each
/// handed to `each` as a listing of one segment (the chunk, its `base` the file offset) and its
/// record lines, then its buffer is used for the next chunk: reading 100,000 records touches a
/// few MiB of memory, not the size of every segment. The returned listing holds the rest: new
/// record files (by name), strange names, bad and incomplete lines.
pub fn scan_since(
    layout: &Layout,
    only_group: Option<u32>,
    marks: &mut Marks,
    chunk: usize,
    mut each: impl FnMut(&mut Listing),
) -> io::Result<Option<Listing>> {
    let dir_path = layout.records_dir();
    let entries = std::fs::read_dir(&dir_path).map_err(|e| {
        io::Error::new(e.kind(), format!("cannot read {}: {e}", dir_path.display()))
    })?;
    let dir = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
        .open(&dir_path)
        .map_err(|e| {
            io::Error::new(e.kind(), format!("cannot open {}: {e}", dir_path.display()))
        })?;
    let mut out = Listing::default();
    // What was read before and is still there: all of it, or this is no append.
    let (segments_before, files_before) = (count_marked(marks, only_group), marks.files.len());
    let (mut segments_seen, mut files_seen) = (0, 0);
    let mut buf = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| {
            io::Error::new(e.kind(), format!("cannot read {}: {e}", dir_path.display()))
        })?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') {
            continue;
        }
        if let Some(key) = TaskKey::parse_record_name(&name) {
            if marks.files.contains(name.as_ref()) {
                files_seen += 1;
            } else {
                marks.files.insert(name.to_string());
                out.records.push((key, Place::File(name.into_owned())));
            }
        } else if is_segment_name(&name) {
            if let Some(group) = only_group
                && !name.starts_with(&format!("{group}."))
            {
                continue;
            }
            let mark = marks.segments.get(name.as_ref()).copied();
            if mark.is_some() {
                segments_seen += 1;
            }
            let mut reader = SegmentReader {
                name: &name,
                chunk,
                buf: &mut buf,
                out: &mut out,
                each: &mut each,
            };
            match reader.read(&dir, mark) {
                Ok(Some(new_mark)) => {
                    marks.segments.insert(name.to_string(), new_mark);
                }
                Ok(None) => return Ok(None),
                // Read before, unreadable now: its records are not an append any more.
                Err(_) if mark.is_some() => return Ok(None),
                Err(e) => out
                    .bad
                    .push((name.into_owned(), format!("cannot read: {e}"))),
            }
        } else {
            out.strange.push(name.into_owned());
        }
    }
    // A record file or a read segment no longer there: not an append.
    if files_seen < files_before || segments_seen < segments_before {
        return Ok(None);
    }
    Ok(Some(out))
}

/// The marked segments a listing of `only_group` looks at.
fn count_marked(marks: &Marks, only_group: Option<u32>) -> usize {
    match only_group {
        None => marks.segments.len(),
        Some(group) => {
            let prefix = format!("{group}.");
            marks
                .segments
                .keys()
                .filter(|n| n.starts_with(&prefix))
                .count()
        }
    }
}

/// One segment read chunk by chunk into a reused buffer (see [`scan_since`]).
struct SegmentReader<'a, F: FnMut(&mut Listing)> {
    name: &'a str,
    chunk: usize,
    buf: &'a mut Vec<u8>,
    out: &'a mut Listing,
    each: &'a mut F,
}

impl<F: FnMut(&mut Listing)> SegmentReader<'_, F> {
    /// Reads the segment (never following a symlink, never blocking on a FIFO): whole, or
    /// from `mark` on when it is the same file grown or unchanged; `None` when it is not
    /// (shorter, another inode or owner). The new mark ends at its last whole line.
    fn read(
        &mut self,
        dir: &std::fs::File,
        mark: Option<SegmentMark>,
    ) -> io::Result<Option<SegmentMark>> {
        use std::io::{Seek, SeekFrom};
        let (mut file, meta) = host_io::open_regular_in(dir, self.name)?;
        if meta.len() > MAX_SEGMENT_BYTES {
            return Err(io::Error::other(format!(
                "larger than {MAX_SEGMENT_BYTES} bytes"
            )));
        }
        let base = match mark {
            None => 0,
            Some(m)
                if (m.dev, m.ino, m.uid) == (meta.dev(), meta.ino(), meta.uid())
                    && meta.len() >= m.read_to =>
            {
                m.read_to
            }
            Some(_) => return Ok(None),
        };
        if base > 0 {
            file.seek(SeekFrom::Start(base))?;
        }
        let mut left = MAX_SEGMENT_BYTES - base;
        // The file offset of buf[0]; buf holds at most a part of a line when a read begins.
        let mut pos = base;
        self.buf.clear();
        let want = self
            .chunk
            .min(meta.len().saturating_sub(base) as usize + 1)
            .max(1);
        loop {
            // Read into the buffer's own memory (zeroed, not grown once it is big enough): a
            // reused buffer costs no new pages, whatever the segments' sizes.
            let start = self.buf.len();
            let take = (want as u64).min(left) as usize;
            self.buf.resize(start + take, 0);
            let mut got = 0;
            while got < take {
                match file.read(&mut self.buf[start + got..start + take]) {
                    Ok(0) => break,
                    Ok(n) => got += n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e),
                }
            }
            self.buf.truncate(start + got);
            left -= got as u64;
            let at_end = got < take || left == 0;
            let whole = self
                .buf
                .iter()
                .rposition(|&b| b == b'\n')
                .map_or(0, |i| i + 1);
            let upto = if at_end { self.buf.len() } else { whole };
            if upto > 0 {
                // The part of a line after the chunk's last '\n' starts the next chunk, whether
                // or not `each` keeps this one's buffer.
                let rest = self.buf.split_off(upto);
                self.hand_over(meta.uid(), pos, whole);
                self.buf.clear();
                self.buf.extend_from_slice(&rest);
                pos += whole as u64;
            }
            if at_end {
                break;
            }
        }
        Ok(Some(SegmentMark {
            dev: meta.dev(),
            ino: meta.ino(),
            uid: meta.uid(),
            read_to: pos,
        }))
    }

    /// Parses the buffer (whole lines up to `whole`, then possibly an unterminated last one)
    /// and hands it to `each` as a listing of one segment based at `pos`.
    fn hand_over(&mut self, uid: u32, pos: u64, whole: usize) {
        let mut chunk = Listing::default();
        for line in parse_segment(self.buf) {
            match line {
                Line::Record(key, range) => chunk
                    .records
                    .push((key, Place::Segment { segment: 0, range })),
                Line::Bad { offset, error } => {
                    let bad = (
                        self.name.to_string(),
                        format!("at byte {}: {error}", pos + offset as u64),
                    );
                    if offset < whole {
                        self.out.bad.push(bad);
                    } else {
                        self.out.incomplete.push(bad);
                    }
                }
            }
        }
        if chunk.records.is_empty() {
            return; // only '#' lines and bad ones
        }
        chunk.segments.push(Segment {
            name: self.name.to_owned(),
            uid,
            base: pos,
            bytes: std::mem::take(self.buf),
        });
        (self.each)(&mut chunk);
        // The buffer back for the next chunk, unless `each` kept it.
        if let Some(seg) = chunk.segments.pop() {
            *self.buf = seg.bytes;
        }
    }
}

/// Reads one listed record's JSON text: from its segment, or its record file (at most `cap`
/// bytes, never following a symlink). Used where a few records are needed (not the merge).
pub fn read_json(layout: &Layout, listing: &Listing, place: &Place, cap: usize) -> Option<Vec<u8>> {
    match place {
        Place::File(name) => {
            host_io::read_regular_nofollow(&layout.records_dir().join(name), cap).ok()
        }
        Place::Segment { .. } => listing.segment_json(place).map(|(_, j)| j.to_vec()),
    }
}

/// Every record's JSON text with its key and where it is (`NAME.json` for a record file,
/// `SEGMENT@BYTE` for a segment line), unchecked for ownership: for tests and tools that look
/// at what the plugin wrote. Bad segment lines are left out (they are in `Listing::bad`).
pub fn read_all(layout: &Layout) -> io::Result<Vec<(TaskKey, String, Vec<u8>)>> {
    let listing = list(layout, None)?;
    let mut out = Vec::with_capacity(listing.records.len());
    for (key, place) in &listing.records {
        let name = place_path(layout, &listing, place)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if let Some(json) = read_json(layout, &listing, place, 64 << 20) {
            out.push((*key, name, json));
        }
    }
    out.sort_by_key(|a| a.0);
    Ok(out)
}

/// The path of a listed record, for messages: `records/NAME` or `records/SEGMENT@BYTE`.
pub fn place_path(layout: &Layout, listing: &Listing, place: &Place) -> PathBuf {
    match place {
        Place::File(name) => layout.records_dir().join(name),
        Place::Segment { segment, range } => {
            let name = listing
                .segments
                .get(*segment)
                .map_or("?", |s| s.name.as_str());
            let base = listing.segments.get(*segment).map_or(0, |s| s.base);
            layout
                .records_dir()
                .join(format!("{name}@{}", base + range.start as u64))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::StepId;

    fn key(index: u64) -> TaskKey {
        TaskKey {
            index,
            attempt: 0,
            job_id: 7,
            step: StepId::Batch,
            task_id: 0,
        }
    }

    fn records(lines: &[Line]) -> Vec<TaskKey> {
        lines
            .iter()
            .filter_map(|l| match l {
                Line::Record(k, _) => Some(*k),
                Line::Bad { .. } => None,
            })
            .collect()
    }

    #[test]
    fn lines_round_trip_and_torn_lines_hide_nothing() {
        let mut seg = SEGMENT_HEADER.to_vec();
        seg.extend(encode_line(&key(1), br#"{"a":1}"#));
        let second = encode_line(&key(2), br#"{"b":2}"#);
        // A crash cut the second record; the next writer put a '\n' after the piece.
        seg.extend_from_slice(&second[..second.len() - 4]);
        seg.push(b'\n');
        seg.extend(encode_line(&key(3), br#"{"c":3}"#));
        let lines = parse_segment(&seg);
        assert_eq!(records(&lines), vec![key(1), key(3)]);
        let Line::Record(_, range) = &lines[0] else {
            panic!("{lines:?}")
        };
        assert_eq!(&seg[range.clone()], br#"{"a":1}"#);
        assert!(
            matches!(&lines[1], Line::Bad { error, .. } if error.contains("where its length says"))
        );
        // An unterminated last line is not a record.
        seg.extend_from_slice(&second[..10]);
        let lines = parse_segment(&seg);
        assert_eq!(records(&lines), vec![key(1), key(3)]);
        assert!(
            matches!(lines.last(), Some(Line::Bad { error, .. }) if error.contains("incomplete"))
        );
    }

    #[test]
    fn altered_lines_are_refused() {
        let mut line = encode_line(&key(1), br#"{"a":1}"#);
        let at = line.len() - 3;
        line[at] = b'2';
        let lines = parse_segment(&line);
        assert!(
            matches!(&lines[..], [Line::Bad { error, .. }] if error.contains("checksum")),
            "{lines:?}"
        );
        for bad in [
            &b"x y z\n"[..],
            b"00000001.a0.j7.sbatch.t0 99999999999999999999999 0 {}\n",
        ] {
            let lines = parse_segment(bad);
            assert!(matches!(&lines[..], [Line::Bad { .. }]), "{lines:?}");
        }
    }

    #[test]
    fn segment_names_are_one_file_name() {
        assert_eq!(segment_name(12, "c1"), "12.c1.seg");
        assert_eq!(segment_name(12, "n1.ex/../a"), "12.n1_ex____a.seg");
        assert!(is_segment_name("12.c1.seg"));
        assert!(!is_segment_name(".12.c1.seg"));
        assert_eq!(TaskKey::parse_record_name("12.c1.seg"), None);
    }

    /// Every record's key and JSON, as a scan in chunks of `chunk` bytes hands them over, with
    /// the bad and incomplete lines it reports.
    #[allow(clippy::type_complexity)]
    fn scanned(
        layout: &Layout,
        chunk: usize,
    ) -> (
        Vec<(TaskKey, Vec<u8>)>,
        Vec<(String, String)>,
        Vec<(String, String)>,
    ) {
        let mut got = Vec::new();
        let rest = scan_since(layout, None, &mut Marks::default(), chunk, |c| {
            for (key, place) in &c.records {
                got.push((*key, c.segment_json(place).unwrap().1.to_vec()));
            }
        })
        .unwrap()
        .unwrap();
        got.sort();
        (got, rest.bad, rest.incomplete)
    }

    #[test]
    fn a_scan_in_small_chunks_reads_what_a_whole_read_does() {
        let tmp = crate::test_util::TempDir::new("segments-chunks");
        let layout = Layout::new(tmp.path());
        layout.create_dirs().unwrap();
        for i in 0..40u64 {
            let mut r = crate::record::tests::sample(i);
            r.node = if i % 3 == 0 { "c1" } else { "c2" }.into();
            if i == 7 {
                // One line longer than any chunk below.
                r.results = vec![
                    crate::record::RawJson::parse(&format!("\"{}\"", "y".repeat(3000))).unwrap(),
                ];
            }
            let k = TaskKey {
                index: i,
                attempt: 0,
                job_id: r.job_id,
                step: StepId::Batch,
                task_id: 0,
            };
            append(&layout, &k, &r).unwrap();
        }
        let seg = layout.records_dir().join(segment_name(1000, "c2"));
        let mut f = std::fs::OpenOptions::new().append(true).open(&seg).unwrap();
        // An altered line between whole ones, then a torn tail.
        std::io::Write::write_all(&mut f, b"00000500.a0.j1500.sbatch.t0 2 00000000 {}\n").unwrap();
        std::io::Write::write_all(&mut f, b"00000999.a0.j1999.sbatch.t0 500 ab").unwrap();
        let whole = list(&layout, None).unwrap();
        let mut expect: Vec<(TaskKey, Vec<u8>)> = whole
            .records
            .iter()
            .map(|(k, p)| (*k, whole.segment_json(p).unwrap().1.to_vec()))
            .collect();
        expect.sort();
        assert_eq!(expect.len(), 40);
        let (mut bad, mut incomplete) = (whole.bad.clone(), whole.incomplete.clone());
        bad.sort();
        incomplete.sort();
        assert_eq!(
            (bad.len(), incomplete.len()),
            (1, 1),
            "{bad:?} {incomplete:?}"
        );
        for chunk in [1, 64, 700, 4096, usize::MAX] {
            let (got, mut b, mut i) = scanned(&layout, chunk);
            b.sort();
            i.sort();
            assert_eq!(got, expect, "chunk {chunk}");
            assert_eq!((b, i), (bad.clone(), incomplete.clone()), "chunk {chunk}");
            // A reader that keeps each chunk (as `list` keeps whole segments) loses nothing
            // either: the part of a line after a chunk's last '\n' goes on to the next chunk.
            let mut kept: Vec<Segment> = Vec::new();
            let mut places = Vec::new();
            let rest = scan_since(&layout, None, &mut Marks::default(), chunk, |c| {
                let base = kept.len();
                places.extend(c.records.drain(..).map(|(k, p)| match p {
                    Place::Segment { segment, range } => (k, base + segment, range),
                    Place::File(_) => unreachable!("segments only"),
                }));
                kept.append(&mut c.segments);
            })
            .unwrap()
            .unwrap();
            let mut got: Vec<(TaskKey, Vec<u8>)> = places
                .into_iter()
                .map(|(k, seg, range)| (k, kept[seg].bytes[range].to_vec()))
                .collect();
            got.sort();
            assert_eq!(got, expect, "chunk {chunk}, chunks kept");
            assert_eq!(
                rest.bad.len(),
                1,
                "chunk {chunk}, chunks kept: {:?}",
                rest.bad
            );
        }
    }

    #[test]
    fn appends_from_many_writers_are_whole_lines() {
        let tmp = crate::test_util::TempDir::new("segments");
        let layout = Layout::new(tmp.path());
        layout.create_dirs().unwrap();
        let threads: Vec<_> = (0..8u64)
            .map(|t| {
                let layout = layout.clone();
                std::thread::spawn(move || {
                    for i in 0..50 {
                        let mut r = crate::record::tests::sample(t * 100 + i);
                        r.results = vec![
                            crate::record::RawJson::parse(&format!("\"{}\"", "x".repeat(5000)))
                                .unwrap(),
                        ];
                        let k = TaskKey {
                            index: r.index,
                            attempt: 0,
                            job_id: r.job_id,
                            step: StepId::Batch,
                            task_id: 0,
                        };
                        append(&layout, &k, &r).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let listing = list(&layout, None).unwrap();
        assert!(listing.bad.is_empty(), "{:?}", listing.bad);
        assert_eq!(listing.records.len(), 400);
        assert_eq!(listing.segments.len(), 1);
        // The header comes first unless another writer was quicker than the creator.
        assert_eq!(
            listing.segments[0]
                .bytes
                .windows(SEGMENT_HEADER.len())
                .filter(|w| *w == SEGMENT_HEADER)
                .count(),
            1
        );
        // A torn tail (crash) is skipped, and the next append is not swallowed by it.
        let path = layout.records_dir().join(&listing.segments[0].name);
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        std::io::Write::write_all(&mut f, b"00000999.a0.j1999.sbatch.t0 500 ab").unwrap();
        let r = crate::record::tests::sample(998);
        let k = TaskKey {
            index: 998,
            attempt: 0,
            job_id: r.job_id,
            step: StepId::Batch,
            task_id: 0,
        };
        append(&layout, &k, &r).unwrap();
        let listing = list(&layout, None).unwrap();
        assert_eq!(listing.records.len(), 401, "{:?}", listing.bad);
        assert_eq!(listing.bad.len(), 1, "{:?}", listing.bad);
        // Someone else's file or a symlink at the name is never appended to.
        let seg = segment_path(&layout, &r);
        std::fs::remove_file(&seg).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", &seg).unwrap();
        assert!(append(&layout, &k, &r).is_err());
        std::fs::remove_file(&seg).unwrap();
        let c = std::ffi::CString::new(seg.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: mkfifo on a valid C string.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let err = append(&layout, &k, &r).unwrap_err();
        assert!(err.to_string().contains("not a regular file"), "{err}");
        std::fs::remove_file(&seg).unwrap();
        let victim = tmp.path().join("victim");
        std::fs::write(&victim, "precious\n").unwrap();
        std::fs::hard_link(&victim, &seg).unwrap();
        let err = append(&layout, &k, &r).unwrap_err();
        assert!(err.to_string().contains("links"), "{err}");
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
    }
}
