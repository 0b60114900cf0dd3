//! Frame directories that are not shared between nodes (`--frame-local`, or detected): the
//! node's marker, the gathered state on the submit host, and the stream `frames gather` reads
//! from each node over srun's own stdout (`frames serve-node` writes it).
//!
//! Stream: for each record the gatherer lacks, one header line
//! `{"record_len":N,"frame_len":M}` (M null without a frame) then N bytes of record JSON and M
//! bytes of frame; `{"problem":"..."}` lines for what the node could not send; and last
//! `{"end":K}` (K records sent), so a stream cut short (node died) is told from a complete one.
use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, BufRead, Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::layout::{Layout, StepId, TaskKey};
use crate::record::TaskRecord;

/// DIR/.frames/node-local.json on a node: this copy of DIR is the node's own.
pub fn marker_path(layout: &Layout) -> PathBuf {
    layout.state_dir().join("node-local.json")
}

/// DIR/.frames/gathered.json on the submit host: what the last `frames gather` reached.
pub fn gathered_path(layout: &Layout) -> PathBuf {
    layout.state_dir().join("gathered.json")
}

/// Written by the first task on a node whose DIR is its own.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct NodeMark {
    pub node: String,
    /// `true`: the job said `--frame-local`; `false`: detected (the submission is not here).
    pub declared: bool,
    pub submission: Option<String>,
}

/// Writes the marker unless one is there (first task wins; never replaced).
pub fn mark(layout: &Layout, mark: &NodeMark) -> io::Result<()> {
    let bytes = serde_json::to_vec(mark).map_err(io::Error::other)?;
    match host_io::write_new(&marker_path(layout), &bytes) {
        Err(e) if e.kind() != io::ErrorKind::AlreadyExists => Err(e),
        _ => Ok(()),
    }
}

pub fn read_mark(layout: &Layout) -> Option<NodeMark> {
    let bytes = host_io::read_regular_nofollow(&marker_path(layout), 64 * 1024).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Whether submission `id` is visible in this node's copy of DIR. Lists the directory instead
/// of one lookup: NFS may cache a negative lookup, a directory read is revalidated.
pub fn submission_visible(layout: &Layout, id: &str) -> bool {
    let want = format!("{id}.json");
    if crate::submission::path_of(layout, id).exists() {
        return true;
    }
    std::fs::read_dir(layout.submissions_dir())
        .map(|rd| {
            rd.flatten()
                .any(|e| e.file_name().to_string_lossy() == want)
        })
        .unwrap_or(false)
}

/// One node in the last gather.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
pub struct NodeGather {
    /// `None`: reached, its stream complete; else why not ("unreachable: node state DOWN").
    pub error: Option<String>,
    /// Records received this time.
    pub received: u64,
    /// Frames whose bytes did not match their record (not merged).
    pub corrupt: Vec<String>,
}

/// DIR/.frames/gathered.json.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
pub struct Gathered {
    pub time: f64,
    pub nodes: BTreeMap<String, NodeGather>,
}

impl Gathered {
    pub fn read(layout: &Layout) -> Option<Gathered> {
        let bytes = host_io::read_regular_nofollow(&gathered_path(layout), 16 << 20).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    pub fn write(&self, layout: &Layout) -> io::Result<()> {
        let bytes = serde_json::to_vec_pretty(self).map_err(io::Error::other)?;
        host_io::write_atomic(&gathered_path(layout), &bytes)
    }

    /// Nodes not reached, with why.
    pub fn unreachable(&self) -> Vec<(String, String)> {
        self.nodes
            .iter()
            .filter_map(|(n, g)| g.error.clone().map(|e| (n.clone(), e)))
            .collect()
    }
}

/// What `frames status` should say first about a dir that is (or may be) node-local; `Err`
/// when the counts would be a guess and status must not print them.
pub fn status_note(
    layout: &Layout,
    submissions: &[crate::submission::Submission],
    records: usize,
) -> Result<Option<String>, String> {
    let dir = layout.root().display();
    if let Some(m) = read_mark(layout)
        && submissions.is_empty()
    {
        let how = if m.declared {
            "--frame-local"
        } else {
            "detected: the submission was not visible on the node, DIR is not shared"
        };
        return Err(format!(
            "{dir} is node {}'s own part of a node-local frame dir ({how}): its counts would be a guess; run 'frames gather {dir}' on the submit host",
            m.node
        ));
    }
    let local = submissions.iter().any(|s| s.frame_local);
    match Gathered::read(layout) {
        None if local => Err(format!(
            "{dir} is node-local (--frame-local) and was not gathered yet: run 'frames gather {dir}' to bring every node's frames and records here"
        )),
        None if !submissions.is_empty() && records == 0 => Ok(Some(format!(
            "no task record here yet; if the dir's jobs already ran, {dir} is probably not shared with the nodes: submit with --frame-local and run 'frames gather {dir}'"
        ))),
        None => Ok(None),
        Some(g) => {
            let down = g.unreachable();
            if down.is_empty() {
                Ok(Some(format!(
                    "gathered from {} node(s): {}",
                    g.nodes.len(),
                    g.nodes.keys().cloned().collect::<Vec<_>>().join(",")
                )))
            } else {
                let list: Vec<String> = down.iter().map(|(n, e)| format!("{n} ({e})")).collect();
                Ok(Some(format!(
                    "gathered, but unreachable on {}: frames rendered there are not here; run 'frames gather {dir}' again when they are up",
                    list.join(", ")
                )))
            }
        }
    }
}

/// The key of a record (its file stem).
pub fn key_of(r: &TaskRecord) -> Option<TaskKey> {
    Some(TaskKey {
        index: r.index,
        attempt: r.attempt,
        job_id: r.job_id,
        step: r.step.parse::<StepId>().ok()?,
        task_id: r.task_id,
    })
}

#[derive(Serialize, Deserialize, Debug)]
#[serde(untagged)]
enum Header {
    Item {
        record_len: u64,
        frame_len: Option<u64>,
    },
    Problem {
        problem: String,
    },
    End {
        end: u64,
    },
}

/// Largest record or frame accepted from a stream.
const MAX_RECORD: u64 = 64 << 20;
const MAX_FRAME: u64 = 1 << 40;

/// Node side: writes every record of `layout` whose stem is not in `have` (with its frame).
/// Returns the number sent.
pub fn serve(layout: &Layout, have: &BTreeSet<String>, out: &mut impl Write) -> io::Result<u64> {
    let c = crate::merge::collect(layout)?;
    let mut sent = 0;
    for p in &c.problems {
        line(
            out,
            &Header::Problem {
                problem: format!("{}: {}", p.path, p.error),
            },
        )?;
    }
    for r in &c.records {
        let Some(key) = key_of(r) else { continue };
        if have.contains(&key.stem()) {
            continue;
        }
        let record = serde_json::to_vec(r).map_err(io::Error::other)?;
        let frame = match (&r.frame_path, r.frame_size) {
            (Some(p), Some(_)) => match host_io::open_regular(Path::new(p)) {
                Ok(f) => Some(f),
                Err(e) => {
                    line(
                        out,
                        &Header::Problem {
                            problem: format!("index {}: frame {p}: {e}", r.index),
                        },
                    )?;
                    None
                }
            },
            _ => None,
        };
        let mut frame = match frame {
            Some(f) => {
                let len = f.metadata()?.len();
                Some((f, len))
            }
            None => None,
        };
        line(
            out,
            &Header::Item {
                record_len: record.len() as u64,
                frame_len: frame.as_ref().map(|f| f.1),
            },
        )?;
        out.write_all(&record)?;
        if let Some((f, len)) = frame.as_mut() {
            // Exactly the announced length, even if the file grows meanwhile.
            let copied = io::copy(&mut f.take(*len), out)?;
            if copied < *len {
                return Err(io::Error::other(format!(
                    "index {}: frame shrank while sending",
                    r.index
                )));
            }
        }
        sent += 1;
    }
    line(out, &Header::End { end: sent })?;
    out.flush()?;
    Ok(sent)
}

fn line(out: &mut impl Write, h: &Header) -> io::Result<()> {
    serde_json::to_writer(&mut *out, h).map_err(io::Error::other)?;
    out.write_all(b"\n")
}

/// What one node's stream brought.
#[derive(Debug, Default, PartialEq)]
pub struct Received {
    pub records: u64,
    pub frames: u64,
    pub bytes: u64,
    /// Frames that did not match their record's checksum (the record was not kept).
    pub corrupt: Vec<String>,
    /// Problems the node reported, and records refused here.
    pub problems: Vec<String>,
    /// The stream ended with its end line.
    pub complete: bool,
}

/// Gatherer side: reads a node's stream into `dest` (records under `.frames`, frames at their
/// path relative to `src_root`, the dir as the nodes name it). Each frame is written to a
/// temporary name, checked against its record's checksum, then renamed; the record is
/// written only after its frame checked (so a re-gather asks again for what failed).
/// `progress` is called after each record.
pub fn receive(
    dest: &Layout,
    src_root: &Path,
    node: &str,
    input: &mut impl BufRead,
    mut progress: impl FnMut(&Received),
) -> io::Result<Received> {
    let mut got = Received::default();
    dest.create_dirs()?;
    let mut header = String::new();
    loop {
        header.clear();
        if input.read_line(&mut header)? == 0 {
            return Ok(got);
        }
        let h: Header = match serde_json::from_str(header.trim_end()) {
            Ok(h) => h,
            Err(e) => {
                got.problems
                    .push(format!("{node}: unexpected output from serve-node: {e}"));
                return Ok(got);
            }
        };
        match h {
            Header::End { .. } => {
                got.complete = true;
                return Ok(got);
            }
            Header::Problem { problem } => got.problems.push(format!("{node}: {problem}")),
            Header::Item {
                record_len,
                frame_len,
            } => {
                if record_len > MAX_RECORD || frame_len.is_some_and(|l| l > MAX_FRAME) {
                    got.problems
                        .push(format!("{node}: oversized item in the stream"));
                    return Ok(got);
                }
                let mut buf = vec![0; record_len as usize];
                if input.read_exact(&mut buf).is_err() {
                    return Ok(got);
                }
                let record: Option<TaskRecord> = serde_json::from_slice(&buf).ok();
                let Some(mut record) = record.filter(|r| key_of(r).is_some()) else {
                    got.problems.push(format!("{node}: a record did not parse"));
                    if let Some(len) = frame_len {
                        io::copy(&mut input.take(len), &mut io::sink())?;
                    }
                    continue;
                };
                match take_item(dest, src_root, node, &mut record, frame_len, input)? {
                    Item::Cut => return Ok(got),
                    Item::Refused(why) => got.problems.push(why),
                    Item::Corrupt(why) => got.corrupt.push(why),
                    Item::Kept { frame_bytes } => {
                        got.records += 1;
                        if let Some(b) = frame_bytes {
                            got.frames += 1;
                            got.bytes += b;
                        }
                    }
                }
                progress(&got);
            }
        }
    }
}

enum Item {
    Kept {
        frame_bytes: Option<u64>,
    },
    Corrupt(String),
    Refused(String),
    /// The stream ended inside the item.
    Cut,
}

fn take_item(
    dest: &Layout,
    src_root: &Path,
    node: &str,
    record: &mut TaskRecord,
    frame_len: Option<u64>,
    input: &mut impl BufRead,
) -> io::Result<Item> {
    let skip = |input: &mut dyn Read| -> io::Result<bool> {
        let len = frame_len.unwrap_or(0);
        Ok(io::copy(&mut input.take(len), &mut io::sink())? == len)
    };
    let Some(key) = key_of(record) else {
        return Ok(if skip(input)? {
            Item::Refused(format!("{node}: record without a key"))
        } else {
            Item::Cut
        });
    };
    let mut frame_bytes = None;
    if let (Some(len), Some(path)) = (frame_len, record.frame_path.clone()) {
        let rel = match Path::new(&path).strip_prefix(src_root) {
            Ok(rel)
                if !rel.as_os_str().is_empty()
                    && rel
                        .components()
                        .all(|c| matches!(c, std::path::Component::Normal(_))) =>
            {
                rel.to_path_buf()
            }
            _ => {
                return Ok(if skip(input)? {
                    Item::Refused(format!(
                        "{node}: index {}: frame {path} is outside {}",
                        record.index,
                        src_root.display()
                    ))
                } else {
                    Item::Cut
                });
            }
        };
        let target = dest.root().join(&rel);
        let parent = target.parent().unwrap_or(dest.root());
        std::fs::create_dir_all(parent)?;
        let tmp = parent.join(format!(
            ".gather.{}.{}",
            std::process::id(),
            target
                .file_name()
                .map_or("f".into(), |n| n.to_string_lossy())
        ));
        let mut file = std::fs::File::create(&tmp)?;
        let copied = io::copy(&mut input.take(len), &mut file)?;
        drop(file);
        if copied < len {
            let _ = std::fs::remove_file(&tmp);
            return Ok(Item::Cut);
        }
        if let Err(e) = crate::record::verify_frame(&tmp, record) {
            let _ = std::fs::remove_file(&tmp);
            let e = e.replace(&tmp.display().to_string(), &path);
            return Ok(Item::Corrupt(format!(
                "index {} (job {}) on {node}: checksum mismatch, not merged: {e}",
                record.index, record.job_id
            )));
        }
        std::fs::rename(&tmp, &target)?;
        record.frame_path = Some(target.display().to_string());
        frame_bytes = Some(len);
    } else if !skip(input)? {
        return Ok(Item::Cut);
    } else if record.frame_size.is_some() && record.frame_path.is_some() {
        // The record has a frame the node could not send: not done here.
        return Ok(Item::Corrupt(format!(
            "index {} (job {}) on {node}: frame not sent (gone or unreadable there), not merged",
            record.index, record.job_id
        )));
    }
    // Into the record store as the plugin writes it (the node's segment for that job): a
    // gathered dir reads exactly like a shared one. Only records not yet here are sent.
    crate::store::append(dest, &key, record)?;
    Ok(Item::Kept { frame_bytes })
}

/// The stems of the records `layout` holds (what a gather need not fetch again).
pub fn have(layout: &Layout) -> io::Result<BTreeSet<String>> {
    match crate::merge::collect(layout) {
        Ok(c) => Ok(c
            .records
            .iter()
            .filter_map(key_of)
            .map(|k| k.stem())
            .collect()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(BTreeSet::new()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests;
