//! The merge's files: DIR/manifest.jsonl (one line per standing task record), DIR/summary.csv
//! (the same rows, flat) and DIR/summary.json, each written atomically.
use std::collections::{BTreeSet, HashMap};
use std::io::{self, Write as _};

use super::{Collection, Summary, UnitKey};
use crate::layout::Layout;
use crate::ranges;
use crate::record::TaskRecord;
use crate::submission::{OutputTemplate, Submission};

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

/// How the manifest and CSV name a unit: `{"index":N}` / `{"job":N}`, and "N" / "job N".
fn unit_json(key: UnitKey) -> String {
    match key {
        UnitKey::Index(i) => format!("{{\"index\":{i}}}"),
        UnitKey::Job(j) => format!("{{\"job\":{j}}}"),
    }
}

fn unit_text(key: UnitKey) -> String {
    match key {
        UnitKey::Index(i) => i.to_string(),
        UnitKey::Job(j) => format!("job {j}"),
    }
}

/// The manifest: one JSON line per standing task record (the record, with `"unit"` first:
/// which step, task and node each came from is in the record), and
/// `{"index":N,"status":"missing"}` for an index without any.
pub fn manifest_bytes(c: &Collection, s: &Summary) -> Vec<u8> {
    let mut all = Vec::with_capacity(s.units.len() * 512);
    let _ = manifest_into(c, s, |part| {
        all.extend_from_slice(part);
        Ok(())
    });
    all
}

/// Bytes gathered before they are handed on: the outputs are made in parts of this size, so
/// writing a 60 MB manifest never holds it in memory.
const PART: usize = 1 << 20;

/// The manifest's bytes, handed to `emit` in parts of about [`PART`] bytes.
fn manifest_into(
    c: &Collection,
    s: &Summary,
    mut emit: impl FnMut(&[u8]) -> io::Result<()>,
) -> io::Result<()> {
    let mut out = Vec::with_capacity(PART + 64 * 1024);
    for u in &s.units {
        if out.len() >= PART {
            emit(&out)?;
            out.clear();
        }
        if u.records.is_empty() {
            if let UnitKey::Index(i) = u.key {
                let _ = write!(out, "{{\"index\":{i},\"status\":\"missing\"}}");
            } else {
                let _ = write!(
                    out,
                    "{{\"unit\":{},\"status\":\"missing\"}}",
                    unit_json(u.key)
                );
            }
            out.push(b'\n');
            continue;
        }
        let unit = unit_json(u.key);
        for r in u.records.iter().filter_map(|&i| c.records.get(i)) {
            let start = out.len();
            // Serializing a record into memory cannot fail.
            let _ = serde_json::to_writer(&mut out, r);
            // `{...}` becomes `{"unit":U,...}`.
            if out.get(start) == Some(&b'{') {
                let insert = format!("{{\"unit\":{unit},");
                out.splice(start..start + 1, insert.into_bytes());
            }
            out.push(b'\n');
        }
    }
    emit(&out)
}

/// Where each record's frame time and job output file come from: for an array index the
/// latest array submission listing it, for a non-array job its submission. Built once per
/// collection (an array spec is expanded once, not per record).
pub struct Submissions<'a> {
    c: &'a Collection,
    /// Array submissions, newest first, with the indices they list.
    specs: Vec<(Known<'a>, BTreeSet<u64>)>,
    /// Every submission by id (the id a record names).
    by_id: HashMap<&'a str, Known<'a>>,
}

/// A submission and its parsed output file template.
struct Known<'a> {
    submission: &'a Submission,
    output: Option<OutputTemplate>,
}

impl<'a> Known<'a> {
    fn new(submission: &'a Submission) -> Known<'a> {
        Known {
            submission,
            output: submission.output_template(),
        }
    }
}

impl<'a> Submissions<'a> {
    pub fn new(c: &'a Collection) -> Submissions<'a> {
        let specs = c
            .submissions
            .iter()
            .rev()
            .filter_map(|s| {
                let spec = s.submission.array.as_deref()?;
                let set = ranges::parse_array_spec(spec).ok()?;
                Some((Known::new(&s.submission), set.into_iter().collect()))
            })
            .collect();
        let by_id = c
            .submissions
            .iter()
            .filter(|s| !s.submission.id.is_empty())
            .map(|s| (s.submission.id.as_str(), Known::new(&s.submission)))
            .collect();
        Submissions { c, specs, by_id }
    }

    /// The output template and submission of a record's job: the submission its record
    /// names, else (array) the newest array submission listing its index, else (non-array)
    /// the one the merge attributes the job to.
    fn with<T>(&self, r: &TaskRecord, f: impl FnOnce(&Known<'a>) -> T) -> Option<T> {
        if let Some(k) = r.submission.as_deref().and_then(|id| self.by_id.get(id)) {
            return Some(f(k));
        }
        if r.array_task_id.is_some() {
            return self
                .specs
                .iter()
                .find(|(_, set)| set.contains(&r.index))
                .map(|(k, _)| f(k));
        }
        super::select::job_submission(self.c, r).map(|s| f(&Known::new(&s.submission)))
    }

    /// The job output file of a record's job, when its submission is known.
    pub fn output_file(&self, r: &TaskRecord) -> Option<String> {
        self.with(r, |k| {
            k.output
                .as_ref()
                .map(|t| t.file(r.job_id, r.array_job_id.zip(r.array_task_id), &r.node))
        })
        .flatten()
    }

    /// The submission a record's job came from, when known.
    pub fn of(&self, r: &TaskRecord) -> Option<&'a Submission> {
        self.with(r, |k| k.submission)
    }
}

/// summary.csv: one row per standing task record, and one per index without any.
pub fn csv_bytes(c: &Collection, s: &Summary) -> Vec<u8> {
    let mut all = Vec::with_capacity(s.units.len() * 192);
    let _ = csv_into(c, s, |part| {
        all.extend_from_slice(part);
        Ok(())
    });
    all
}

/// The CSV's bytes, handed to `emit` in parts of about [`PART`] bytes.
fn csv_into(
    c: &Collection,
    s: &Summary,
    mut emit: impl FnMut(&[u8]) -> io::Result<()>,
) -> io::Result<()> {
    let subs = Submissions::new(c);
    let mut out = Vec::with_capacity(PART + 64 * 1024);
    out.extend_from_slice(
        b"unit,index,status,attempt,job_id,array_job_id,array_task_id,step,task,node,exit_code,\
signal,duration,frame_time,frame_size,frame_sha256,frame_blake3,frame_path,output_file,reason\n",
    );
    for u in &s.units {
        if out.len() >= PART {
            emit(&out)?;
            out.clear();
        }
        if u.records.is_empty() {
            let unit = unit_text(u.key);
            let index = match u.key {
                UnitKey::Index(i) => i.to_string(),
                UnitKey::Job(_) => String::new(),
            };
            let _ = writeln!(out, "{unit},{index},missing,,,,,,,,,,,,,,,,,");
            continue;
        }
        let unit = unit_text(u.key);
        for r in u.records.iter().filter_map(|&i| c.records.get(i)) {
            let sub = subs.of(r);
            let frame_time = sub.map(|s| s.t0 + r.index as f64 * s.dt);
            let output = subs.output_file(r);
            let _ = write!(
                out,
                "{unit},{},{},{},{},{},{},",
                r.index,
                r.status.as_str(),
                r.attempt,
                r.job_id,
                opt(r.array_job_id),
                opt(r.array_task_id)
            );
            csv_field(&mut out, &r.step);
            let _ = write!(out, ",{},", r.task_id);
            csv_field(&mut out, &r.node);
            let _ = write!(
                out,
                ",{},{},{},{},{},{},{},",
                opt(r.exit_code),
                opt(r.signal),
                opt(r.duration()),
                opt(frame_time),
                opt(r.frame_size),
                r.frame_sha256.as_deref().unwrap_or(""),
                r.frame_blake3.as_deref().unwrap_or("")
            );
            csv_field(&mut out, r.frame_path.as_deref().unwrap_or(""));
            out.push(b',');
            csv_field(&mut out, output.as_deref().unwrap_or(""));
            out.push(b',');
            csv_field(&mut out, r.reason.as_deref().unwrap_or(""));
            out.push(b'\n');
        }
    }
    emit(&out)
}

/// Writes manifest.jsonl, summary.json and summary.csv, each atomically.
pub fn write_outputs(layout: &Layout, c: &Collection, s: &Summary) -> io::Result<()> {
    host_io::write_atomic_from(&layout.manifest_path(), 0o666, |w| {
        manifest_into(c, s, |part| w.write_all(part))
    })?;
    let mut json = serde_json::to_vec_pretty(s).map_err(io::Error::other)?;
    json.push(b'\n');
    host_io::write_atomic(&layout.summary_json_path(), &json)?;
    host_io::write_atomic_from(&layout.summary_csv_path(), 0o666, |w| {
        csv_into(c, s, |part| w.write_all(part))
    })
}
