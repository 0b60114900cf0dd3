//! Benchmark helper for tests/bench/run.sh (issue #5, items 6 and 7): generates synthetic frame
//! directories in the real format (TaskRecord serialized as the plugin does, named by
//! Layout::record_path, one submission::write) and times the plugin's own frame checksum code (record::frame_checksum).
//! It prints numbers only; nothing here asserts a time.
//!
//! ```text
//! frames_bench gen [--files] DIR N    N records (in 4 segments, or with --files one file each
//!                                     as older plugins wrote) + N frame files + one submission
//! frames_bench gen-frames DIR COUNT MIB   COUNT frame files of MIB MiB each (pseudo-random bytes)
//! frames_bench checksum-peak MIB     BLAKE3 of MIB MiB from a buffer in cache: the ceiling
//! frames_bench write DIR N            times N record writes: segment append vs one file each
//! frames_bench checksum [--sha256] FILE...   frame_checksum of each file (BLAKE3, and SHA-256
//!                                     too with --sha256, as --frame-sha256 does); prints "bytes seconds"
//! frames_bench tick DIR N REPS        `frames watch`'s tick on a generated DIR: REPS times, N
//!                                     reruns appended (not timed), then the tracker's refresh +
//!                                     summary (timed) and a whole collect + summary (timed);
//!                                     prints "tick SECONDS RECORDS BYTES REFRESH_SECONDS" and
//!                                     "whole SECONDS"
//! ```
use std::io::Write as _;
use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use frames_core::Layout;
use frames_core::layout::{StepId, TaskKey};
use frames_core::merge;
use frames_core::record::{RECORD_VERSION, RawJson, Status, TaskRecord, frame_checksum};
use frames_core::store;
use frames_core::submission::{self, Submission};

/// A done record like the plugin writes for array task `index` of job 1000 (one RESULT line).
fn record(dir: &Path, index: u64) -> TaskRecord {
    TaskRecord {
        version: RECORD_VERSION,
        index,
        attempt: 0,
        job_id: 1001 + index as u32,
        array_job_id: Some(1000),
        array_task_id: Some(index as u32),
        step: "batch".into(),
        task_id: 0,
        task_count: 1,
        job_task_count: None,
        // The generating user, as the plugin writes the job's user: the merge trusts only
        // records whose uid is their file's owner.
        // SAFETY: geteuid(2) has no preconditions.
        uid: Some(unsafe { libc::geteuid() }),
        submission: None,
        node: format!("c{}", 1 + index % 4),
        exit_code: Some(0),
        signal: None,
        core_dumped: false,
        start_time: Some(1_700_000_000.0 + index as f64),
        end_time: 1_700_000_010.5 + index as f64,
        frame_path: Some(format!("{}/frame_{index:04}.png", dir.display())),
        frame_size: Some(64),
        frame_sha256: None,
        frame_blake3: Some(format!(
            "{:064x}",
            index.wrapping_mul(0x9e37_79b9_7f4a_7c15)
        )),
        results: vec![
            RawJson::parse(&format!(r#"{{"loss": 0.5, "step": {index}}}"#)).expect("valid JSON"),
        ],
        result_errors: vec![],
        warnings: vec![],
        status: Status::Done,
        reason: None,
    }
}

/// `files`: one record file per task, as plugin versions before segments wrote them (the
/// reader still reads those); otherwise segments, as the plugin writes now.
fn gen_records(dir: &Path, n: u64, files: bool) -> Result<(), String> {
    let layout = Layout::new(dir);
    layout.create_dirs().map_err(|e| e.to_string())?;
    let argv: Vec<String> = [
        "sbatch".to_string(),
        format!("--array=0-{}", n - 1),
        format!("--frame-dir={}", dir.display()),
        "render.sbatch".to_string(),
    ]
    .into();
    let mut accepted = Submission::from_argv(&argv, "/home/u", 1.0);
    accepted.state = submission::SubmissionState::Accepted;
    submission::write(&layout, &mut accepted, "login").map_err(|e| e.to_string())?;
    let frame = [0x89u8; 64];
    // One segment per node (the records name 4 nodes), kept open and appended to with plain
    // writes: the plugin's host_io::append_line adds one fdatasync per record.
    let mut segments: std::collections::HashMap<String, std::fs::File> = Default::default();
    for i in 0..n {
        let r = record(dir, i);
        let key = TaskKey {
            index: i,
            attempt: 0,
            job_id: r.job_id,
            step: StepId::Batch,
            task_id: 0,
        };
        let bytes = serde_json::to_vec(&r).map_err(|e| e.to_string())?;
        if files {
            // The old writer (host_io::write_new) added a temp file, a link and two fsyncs
            // per record; the bytes and names are the same, and the merge only reads them.
            std::fs::write(layout.record_path(&key), &bytes).map_err(|e| e.to_string())?;
        } else {
            let path = store::segment_path(&layout, &r);
            let name = path.display().to_string();
            let seg = match segments.entry(name) {
                std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
                std::collections::hash_map::Entry::Vacant(v) => {
                    let mut f = std::fs::OpenOptions::new()
                        .create_new(true)
                        .append(true)
                        .open(&path)
                        .map_err(|e| format!("{}: {e}", path.display()))?;
                    f.write_all(store::SEGMENT_HEADER)
                        .map_err(|e| e.to_string())?;
                    v.insert(f)
                }
            };
            seg.write_all(&store::encode_line(&key, &bytes))
                .map_err(|e| e.to_string())?;
        }
        std::fs::write(dir.join(format!("frame_{i:04}.png")), frame)
            .map_err(|e| format!("frame {i}: {e}"))?;
    }
    // Sanity: the generated directory merges to n done frames (not timed).
    let s = merge::summarize(&merge::collect(&layout).map_err(|e| e.to_string())?);
    if s.done != n || !s.problems.is_empty() {
        return Err(format!(
            "generated directory summarizes to {} done, problems {:?}",
            s.done, s.problems
        ));
    }
    Ok(())
}

fn gen_frames(dir: &Path, count: u64, mib: u64) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    // xorshift bytes: incompressible enough, and no dependency on a random crate.
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut block = vec![0u8; (mib << 20) as usize];
    for i in 0..count {
        for chunk in block.chunks_exact_mut(8) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            chunk.copy_from_slice(&state.to_le_bytes());
        }
        std::fs::write(dir.join(format!("frame_{i:04}.png")), &block)
            .map_err(|e| format!("frame {i}: {e}"))?;
    }
    Ok(())
}

/// Times the plugin's record write, N times into DIR: the append to a segment
/// (store::append: one write + fdatasync, the directory synced once at the segment's creation)
/// and the one-file write of earlier versions (host_io::write_new: temp file, fsync, link,
/// directory fsync). Prints "append p50 p99" and "file p50 p99" in ms.
fn write_cost(dir: &Path, n: u64) -> Result<(), String> {
    let layout = Layout::new(dir);
    layout.create_dirs().map_err(|e| e.to_string())?;
    let mut append = Vec::new();
    let mut file = Vec::new();
    for i in 0..n {
        let r = record(dir, i);
        let key = TaskKey {
            index: i,
            attempt: 0,
            job_id: r.job_id,
            step: StepId::Batch,
            task_id: 0,
        };
        let t = Instant::now();
        store::append(&layout, &key, &r).map_err(|e| e.to_string())?;
        append.push(t.elapsed().as_secs_f64() * 1000.0);
        let bytes = serde_json::to_vec_pretty(&r).map_err(|e| e.to_string())?;
        let t = Instant::now();
        host_io::write_new(&layout.record_path(&key), &bytes).map_err(|e| e.to_string())?;
        file.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    let pct = |v: &mut Vec<f64>, p: f64| {
        v.sort_by(f64::total_cmp);
        v[((v.len() as f64 * p).ceil() as usize).clamp(1, v.len()) - 1]
    };
    let mut out = std::io::stdout();
    let _ = writeln!(
        out,
        "append {:.3} {:.3}",
        pct(&mut append, 0.5),
        pct(&mut append, 0.99)
    );
    let _ = writeln!(
        out,
        "file {:.3} {:.3}",
        pct(&mut file, 0.5),
        pct(&mut file, 0.99)
    );
    Ok(())
}

/// BLAKE3's single-core peak on this CPU: the hash of a 256 KiB buffer already in cache,
/// MIB MiB in all (no file, no copy). Prints "bytes seconds": the ceiling for frame_checksum.
fn checksum_peak(mib: u64) -> Result<(), String> {
    let buf = vec![0x5au8; 256 << 10];
    let rounds = (mib << 20) / buf.len() as u64;
    let t = Instant::now();
    for _ in 0..rounds {
        std::hint::black_box(blake3::hash(std::hint::black_box(&buf)));
    }
    let secs = t.elapsed().as_secs_f64();
    let _ = writeln!(std::io::stdout(), "{} {secs:.6}", rounds * buf.len() as u64);
    Ok(())
}

fn checksum(files: &[String]) -> Result<(), String> {
    let t = Instant::now();
    let (sha256, files) = match files {
        [first, rest @ ..] if first == "--sha256" => (true, rest),
        _ => (false, files),
    };
    let mut bytes = 0u64;
    for f in files {
        let digest = frame_checksum(Path::new(f), sha256).map_err(|e| format!("{f}: {e}"))?;
        bytes += digest.size;
    }
    let secs = t.elapsed().as_secs_f64();
    let _ = writeln!(std::io::stdout(), "{bytes} {secs:.6}");
    Ok(())
}

/// `frames watch`'s work per tick on DIR (made by `gen`): what changed read by a tracker
/// (merge::Tracker, as watch keeps one), then the summary; against a whole collect + summary
/// of the same directory. The reruns appended are spread over the dir's indices (their keys
/// fall among the old ones: the tracker's merge, not its cheap append-at-the-end case).
fn tick(dir: &Path, n: u64, reps: u64) -> Result<(), String> {
    let layout = Layout::new(dir);
    let mut tracker = merge::Tracker::new();
    tracker.refresh(&layout).map_err(|e| e.to_string())?;
    let total = tracker.collection().records.len() as u64;
    if total == 0 {
        return Err(format!("{}: no records (make it with gen)", dir.display()));
    }
    let mut out = std::io::stdout();
    for rep in 0..reps {
        for k in 0..n {
            let mut r = record(dir, (k * total / n.max(1)) % total);
            r.attempt = 1 + rep as u32;
            let key = TaskKey {
                index: r.index,
                attempt: r.attempt,
                job_id: r.job_id,
                step: StepId::Batch,
                task_id: 0,
            };
            store::append(&layout, &key, &r).map_err(|e| e.to_string())?;
        }
        let t = Instant::now();
        let read = tracker.refresh(&layout).map_err(|e| e.to_string())?;
        let refresh = t.elapsed().as_secs_f64();
        let s = merge::summarize(tracker.collection());
        let tick = t.elapsed().as_secs_f64();
        std::hint::black_box(&s);
        if read.whole || read.records as u64 != n {
            return Err(format!("tick read {read:?}, expected {n} new records"));
        }
        let t = Instant::now();
        let whole = merge::summarize(&merge::collect(&layout).map_err(|e| e.to_string())?);
        let secs = t.elapsed().as_secs_f64();
        if whole != s {
            return Err("the tracker's summary differs from a whole collect's".into());
        }
        let _ = writeln!(
            out,
            "tick {tick:.6} {} {} {refresh:.6}",
            read.records, read.bytes
        );
        let _ = writeln!(out, "whole {secs:.6}");
    }
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let num = |s: &String| {
        s.parse::<u64>()
            .map_err(|_| format!("'{s}': expected a number"))
    };
    let result = match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["gen", dir, n] => num(&n.to_string()).and_then(|n| gen_records(Path::new(dir), n, false)),
        ["gen", "--files", dir, n] => {
            num(&n.to_string()).and_then(|n| gen_records(Path::new(dir), n, true))
        }
        ["gen-frames", dir, count, mib] => num(&count.to_string())
            .and_then(|c| num(&mib.to_string()).map(|m| (c, m)))
            .and_then(|(c, m)| gen_frames(Path::new(dir), c, m)),
        ["checksum", ..] => checksum(&args[1..]),
        ["checksum-peak", mib] => num(&mib.to_string()).and_then(checksum_peak),
        ["write", dir, n] => num(&n.to_string()).and_then(|n| write_cost(Path::new(dir), n)),
        ["tick", dir, n, reps] => num(&n.to_string())
            .and_then(|n| num(&reps.to_string()).map(|r| (n, r)))
            .and_then(|(n, r)| tick(Path::new(dir), n, r)),
        _ => Err(
            "usage: frames_bench gen [--files] DIR N | gen-frames DIR COUNT MIB | write DIR N | tick DIR N REPS | checksum-peak MIB | checksum [--sha256] FILE...".into(),
        ),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("frames_bench: {e}");
            ExitCode::FAILURE
        }
    }
}
