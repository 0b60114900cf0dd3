//! Runs the `frames` binary on frame directories built with frames-core's own types.
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use frames_core::Layout;
use frames_core::layout::{StepId, TaskKey};
use frames_core::options::FrameOptions;
use frames_core::record::{RECORD_VERSION, RawJson, Status, TaskRecord};
use frames_core::submission::{self, Submission};
use frames_core::test_util::TempDir;
use host_io::write_new;

/// Runs frames with no Slurm to ask (the queue tests stand in recorded answers).
fn frames(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_frames"))
        .args(args)
        .env("FRAMES_SQUEUE", "frames-test-no-squeue")
        .env("FRAMES_SACCT", "frames-test-no-sacct")
        .env("FRAMES_SINFO", "frames-test-no-sinfo")
        .output()
        .expect("run frames")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn record(index: u64, node: &str, frame: Option<&Path>, exit_code: i32) -> TaskRecord {
    let frame_size = frame
        .and_then(|p| std::fs::metadata(p).ok())
        .map(|m| m.len());
    let mut r = TaskRecord {
        version: RECORD_VERSION,
        index,
        attempt: 0,
        job_id: 500 + index as u32,
        array_job_id: Some(500),
        array_task_id: Some(index as u32),
        step: "batch".into(),
        task_id: 0,
        task_count: 1,
        job_task_count: None,
        uid: None,
        submission: None,
        node: node.into(),
        exit_code: Some(exit_code),
        signal: None,
        core_dumped: false,
        start_time: Some(1000.0),
        end_time: 1010.0,
        frame_path: frame.map(|p| p.display().to_string()),
        frame_size,
        frame_sha256: None,
        // As the plugin records it at task end.
        frame_blake3: frame
            .and_then(|p| frames_core::record::frame_checksum(p, false).ok())
            .map(|d| d.blake3),
        results: vec![RawJson::parse(&format!(r#"{{"loss": {index}}}"#)).unwrap()],
        result_errors: vec![],
        warnings: vec![],
        status: Status::Done,
        reason: None,
    };
    r.decide(frame.is_some());
    r
}

fn put(layout: &Layout, r: &TaskRecord) {
    let key = TaskKey {
        index: r.index,
        attempt: r.attempt,
        job_id: r.job_id,
        step: r.step.parse().unwrap_or(StepId::Batch),
        task_id: r.task_id,
    };
    write_new(&layout.record_path(&key), &serde_json::to_vec(r).unwrap()).unwrap();
}

/// A submission as the plugin records it: the command line and the `--frame-dir` Slurm gave
/// the plugin (`None`: the call had none).
fn submit(layout: &Layout, frame_dir: Option<&str>, cmd: &[&str]) {
    let argv: Vec<String> = cmd.iter().map(|s| s.to_string()).collect();
    let mut options = FrameOptions::default();
    if let Some(dir) = frame_dir {
        options.set("frame-dir", Some(dir)).unwrap();
    }
    let mut s = Submission::new(&argv, "/home/u/anim", 1700000000.0, &options);
    s.state = submission::SubmissionState::Accepted;
    submission::write(layout, &mut s, "login").unwrap();
}

/// DIR with --array=0-5: 0,1,3 done; 2 and 5 failed on node c2; 4 missing.
fn fake_dir(tag: &str) -> (TempDir, Layout, String) {
    let t = TempDir::new(tag);
    let layout = Layout::new(t.path().join("bh"));
    layout.create_dirs().unwrap();
    submit(
        &layout,
        Some("/shared/bh"),
        &[
            "sbatch",
            "-p",
            "all",
            "--array=0-5",
            "--frame-dir=/shared/bh",
            "render.sbatch",
            "--quality",
            "high",
        ],
    );
    for i in [0, 1, 3] {
        put(&layout, &record(i, "c1", None, 0));
    }
    put(&layout, &record(2, "c2", None, 3));
    put(&layout, &record(5, "c2", None, 139));
    let dir = layout.root().display().to_string();
    (t, layout, dir)
}

#[test]
fn status_json() {
    let (_t, _l, dir) = fake_dir("cli-status");
    let out = frames(&["status", &dir, "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["expected"], 6);
    assert_eq!(v["done"], 3);
    assert_eq!(v["failed"], 2);
    assert_eq!(v["missing"], 1);
    assert_eq!(v["missing_ranges"], "4");
    assert_eq!(v["failed_ranges"], "2,5");
    assert_eq!(v["nodes"]["c2"]["failed"], 2);
    assert_eq!(v["failing_nodes"], serde_json::json!(["c2"]));
    // status writes nothing.
    assert!(!Path::new(&dir).join("summary.json").exists());

    let out = frames(&["status", &dir]);
    assert_eq!(out.status.code(), Some(0));
    let s = text(&out.stdout);
    assert!(
        s.contains("6 expected, 3 done, 2 failed, 1 missing (50.0% done)"),
        "{s}"
    );
    assert!(s.contains("missing:  4"), "{s}");
    assert!(s.contains("failed:   2,5"), "{s}");
}

#[test]
fn missing_prints_ranges() {
    let (_t, l, dir) = fake_dir("cli-missing");
    let out = frames(&["missing", &dir]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(text(&out.stdout), "2,4-5\n");
    // Nothing missing: an empty line.
    put(&l, &record(4, "c1", None, 0));
    for i in [2, 5] {
        let mut r = record(i, "c1", None, 0);
        r.attempt = 1;
        put(&l, &r);
    }
    let out = frames(&["missing", &dir]);
    assert_eq!(text(&out.stdout), "\n");
}

#[test]
fn collect_writes_outputs() {
    let (_t, l, dir) = fake_dir("cli-collect");
    let out = frames(&["collect", &dir]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("6 expected, 3 done, 2 failed, 1 missing"));
    let manifest = std::fs::read_to_string(l.manifest_path()).unwrap();
    assert_eq!(manifest.lines().count(), 6);
    assert_eq!(
        manifest.lines().nth(4),
        Some("{\"index\":4,\"status\":\"missing\"}")
    );
    let csv = std::fs::read_to_string(l.summary_csv_path()).unwrap();
    assert!(
        csv.contains(
            "\n2,2,failed,0,502,500,2,batch,0,c2,3,,10,2,,,,,/home/u/anim/slurm-500_2.out,exit code 3\n"
        ),
        "{csv}"
    );
    let before = std::fs::read(l.summary_json_path()).unwrap();
    assert_eq!(frames(&["collect", &dir]).status.code(), Some(0));
    assert_eq!(std::fs::read(l.summary_json_path()).unwrap(), before);
}

#[test]
fn resubmit_dry_run_and_refusals() {
    let (_t, l, dir) = fake_dir("cli-resubmit");
    let out = frames(&["resubmit", &dir, "--dry-run"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "cd /home/u/anim && sbatch --exclude=c2 -p all --array=2,4-5 --frame-dir=/shared/bh render.sbatch --quality high\n"
    );
    assert!(text(&out.stderr).contains("excluding node(s) that failed repeatedly: c2"));

    // Nothing missing.
    put(&l, &record(4, "c1", None, 0));
    for i in [2, 5] {
        let mut r = record(i, "c1", None, 0);
        r.attempt = 1;
        put(&l, &r);
    }
    let out = frames(&["resubmit", &dir, "--dry-run"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(text(&out.stderr).starts_with("frames: "));
    assert!(
        text(&out.stderr).contains("nothing to resubmit"),
        "{}",
        text(&out.stderr)
    );

    // No submission recorded.
    let t = TempDir::new("cli-nosub");
    let l2 = Layout::new(t.path());
    l2.create_dirs().unwrap();
    put(&l2, &record(0, "c1", None, 1));
    let out = frames(&["resubmit", &t.path().display().to_string(), "--dry-run"]);
    assert_eq!(out.status.code(), Some(3));
    let err = text(&out.stderr);
    assert!(
        err.contains("no sbatch submission recorded") && err.contains("indices 0"),
        "{err}"
    );
}

#[test]
fn errors_are_one_line_with_status() {
    let t = TempDir::new("cli-errors");
    let out = frames(&["status", &t.path().display().to_string()]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.starts_with("frames: ") && err.contains("no .frames directory"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    let out = frames(&["status", "/definitely/not/here"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("/definitely/not/here"));
    let out = frames(&["nope"]);
    assert_eq!(out.status.code(), Some(2));
    let out = frames(&["video", "/tmp", "-o", "x.mp4", "--fps", "0"]);
    assert_eq!(out.status.code(), Some(2));
    let out = frames(&["--help"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out.stdout).contains("130"));
}

fn have_ffmpeg() -> bool {
    Command::new("ffmpeg")
        .arg("-version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Makes `n` small PNG frames with ffmpeg's test source.
fn make_pngs(dir: &Path, n: usize) -> Vec<PathBuf> {
    let status = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-nostdin", "-y"])
        .args(["-f", "lavfi", "-i", "testsrc=size=64x48:rate=1"])
        .args(["-frames:v", &n.to_string()])
        .arg(dir.join("frame_%04d.png"))
        .status()
        .unwrap();
    assert!(status.success());
    (1..=n)
        .map(|i| dir.join(format!("frame_{i:04}.png")))
        .collect()
}

fn probe(path: &Path) -> (String, u64, f64) {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-count_frames", "-select_streams", "v:0"])
        .args([
            "-show_entries",
            "stream=codec_name,nb_read_frames:format=duration,format_name",
        ])
        .args(["-of", "json"])
        .arg(path)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let frames = v["streams"][0]["nb_read_frames"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let duration = v["format"]["duration"].as_str().unwrap().parse().unwrap();
    (
        v["format"]["format_name"].as_str().unwrap().to_owned(),
        frames,
        duration,
    )
}

/// A DIR whose array 0-3 has frames 0, 1, 3 done (real PNGs) and 2 failed.
fn video_dir(tag: &str) -> (TempDir, Layout, String) {
    let t = TempDir::new(tag);
    let layout = Layout::new(t.path().join("anim dir"));
    layout.create_dirs().unwrap();
    submit(&layout, None, &["sbatch", "--array=0-3", "r.sh"]);
    let pngs = make_pngs(layout.root(), 4);
    for i in [0u64, 1, 3] {
        put(&layout, &record(i, "c1", Some(&pngs[i as usize]), 0));
    }
    put(&layout, &record(2, "c1", Some(&pngs[2]), 1));
    let dir = layout.root().display().to_string();
    (t, layout, dir)
}

#[test]
fn video_refuses_a_frame_changed_after_its_task_ended() {
    let (t, layout, dir) = video_dir("cli-video-changed");
    // Index 2 rerun and done too, then index 1's file overwritten (same size, other bytes).
    let pngs: Vec<PathBuf> = (1..=4)
        .map(|i| layout.root().join(format!("frame_{i:04}.png")))
        .collect();
    let mut rerun = record(2, "c1", Some(&pngs[2]), 0);
    rerun.attempt = 1;
    put(&layout, &rerun);
    let mut bytes = std::fs::read(&pngs[1]).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&pngs[1], bytes).unwrap();
    let out_str = t.path().join("out.mp4").display().to_string();
    let out = frames(&["video", &dir, "-o", &out_str]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(
        err.contains("index 1: ") && err.contains("BLAKE3 differs"),
        "{err}"
    );
    assert!(err.contains("missing, failed or changed: 1"), "{err}");
}

#[test]
fn video_refuses_gaps_then_fills_them() {
    if !have_ffmpeg() {
        // Needs ffmpeg on PATH (Debian: apt-get install ffmpeg). Fail when CI asks for it.
        assert!(
            std::env::var_os("FRAMES_REQUIRE_FFMPEG").is_none(),
            "ffmpeg not installed"
        );
        eprintln!("SKIPPED: ffmpeg is not installed");
        return;
    }
    let (t, _l, dir) = video_dir("cli-video");
    let out_path = t.path().join("out.mp4");
    let out_str = out_path.display().to_string();

    let out = frames(&["video", &dir, "-o", &out_str]);
    assert_eq!(out.status.code(), Some(3));
    let err = text(&out.stderr);
    assert!(
        err.contains("1 of 4 frames are missing, failed or changed: 2")
            && err.contains("--fill-gaps"),
        "{err}"
    );
    assert!(!out_path.exists());

    let out = frames(&["video", &dir, "-o", &out_str, "--fps", "2", "--fill-gaps"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr)
            .contains("filled 1 missing or failed frame(s) with the previous good frame: 2")
    );
    let (format, frames_n, duration) = probe(&out_path);
    assert!(format.contains("mp4"), "{format}");
    assert_eq!(frames_n, 4);
    assert!((duration - 2.0).abs() < 0.1, "{duration}");
}

#[test]
fn video_without_gaps_and_without_ffmpeg() {
    if !have_ffmpeg() {
        assert!(
            std::env::var_os("FRAMES_REQUIRE_FFMPEG").is_none(),
            "ffmpeg not installed"
        );
        eprintln!("SKIPPED: ffmpeg is not installed");
        return;
    }
    let (t, l, dir) = video_dir("cli-video2");
    let mut r = record(2, "c1", Some(&l.root().join("frame_0003.png")), 0);
    r.attempt = 1;
    put(&l, &r);
    let out_path = t.path().join("ok.mp4");
    let out = frames(&[
        "video",
        &dir,
        "-o",
        &out_path.display().to_string(),
        "--fps",
        "4",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    // Not a terminal: one progress line per step, with the seconds since the start.
    let err = text(&out.stderr);
    assert!(
        err.contains("frames video: [") && err.contains("] checking the frames of"),
        "{err}"
    );
    assert!(
        err.contains("] encoding 4 frames with ffmpeg into"),
        "{err}"
    );
    let (_, frames_n, duration) = probe(&out_path);
    assert_eq!(frames_n, 4);
    assert!((duration - 1.0).abs() < 0.1, "{duration}");

    // ffmpeg missing from PATH: one clear line, status 1.
    let empty = t.path().join("empty-path");
    std::fs::create_dir(&empty).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_frames"))
        .args([
            "video",
            &dir,
            "-o",
            &t.path().join("x.mp4").display().to_string(),
        ])
        .env("PATH", &empty)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    // After the progress lines ("frames video: [0.0 s] checking ..."), the error.
    let err = text(&out.stderr);
    let last = err.lines().last().unwrap_or_default();
    assert!(last.starts_with("frames: ffmpeg is not installed"), "{err}");
    assert!(err.lines().all(|l| l.starts_with("frames")), "{err}");
}

#[test]
fn video_with_no_frames_refuses() {
    let (_t, _l, dir) = fake_dir("cli-video-none");
    let out = frames(&["video", &dir, "-o", "/tmp/never.mp4"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(
        text(&out.stderr).contains("no frame files to encode"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn watch_exits_when_settled_and_130_on_ctrl_c() {
    // Settled (every index done or failed): exits 0 at once.
    let (_t, l, dir) = fake_dir("cli-watch");
    put(&l, &record(4, "c1", None, 0));
    let out = frames(&["watch", &dir, "--interval", "0.1"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let s = text(&out.stdout);
    assert!(
        s.contains("all 6 expected frames are done or failed"),
        "{s}"
    );
    assert!(s.contains("failed: 2,5"), "{s}");

    // Incomplete: keeps refreshing until interrupted.
    let (_t2, _l2, dir2) = fake_dir("cli-watch-int");
    let child = Command::new(env!("CARGO_BIN_EXE_frames"))
        .args(["watch", &dir2, "--interval", "0.2"])
        .env("FRAMES_SQUEUE", "frames-test-no-squeue")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(700));
    // SAFETY: signalling our own child by its pid.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGINT) }, 0);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("3 done, 2 failed, 1 missing of 6"));
    assert!(text(&out.stderr).contains("interrupted"));
}

/// A task of a non-array job (`job`), step, rank of `count`, node, exit code.
fn job_task(job: u32, step: &str, task: u32, count: u32, node: &str, code: i32) -> TaskRecord {
    let mut r = record(u64::from(task), node, None, code);
    r.job_id = job;
    r.array_job_id = None;
    r.array_task_id = None;
    r.step = step.into();
    r.task_id = task;
    r.task_count = count;
    r
}

/// Every file under `dir` with its content, to show a command wrote nothing.
fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let bytes = std::fs::read(&p).unwrap();
                out.push((p, bytes));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn status_exit_codes_gate_a_pipeline() {
    let (_t, l, dir) = fake_dir("cli-codes");
    // Failures: 4 with --check; 0 without.
    assert_eq!(frames(&["status", &dir]).status.code(), Some(0));
    assert_eq!(frames(&["status", &dir, "--check"]).status.code(), Some(4));
    // Two hosts ran tasks: --require-hosts 2 passes, 3 does not (6, with the count on stderr).
    assert_eq!(
        frames(&["status", &dir, "--require-hosts", "2"])
            .status
            .code(),
        Some(0)
    );
    let out = frames(&["status", &dir, "--require-hosts", "3", "--json"]);
    assert_eq!(out.status.code(), Some(6));
    assert!(
        text(&out.stderr)
            .contains("2 distinct host(s) ran tasks (c1,c2), fewer than the 3 required")
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["unique_hosts"], 2);
    let out = frames(&["status", &dir, "--expected", "4"]);
    assert_eq!(out.status.code(), Some(6));
    assert!(text(&out.stderr).contains("3 unit(s) done, fewer than the 4 expected"));
    // Failed ones done on a retry: only 4 missing, still 4.
    for i in [2, 5] {
        let mut r = record(i, "c1", None, 0);
        r.attempt = 1;
        put(&l, &r);
    }
    assert_eq!(frames(&["status", &dir, "--check"]).status.code(), Some(4));
    put(&l, &record(4, "c3", None, 0));
    assert_eq!(
        frames(&["status", &dir, "--check", "--expected", "6"])
            .status
            .code(),
        Some(0)
    );
}

#[test]
fn status_json_has_each_unit() {
    let (_t, l, dir) = fake_dir("cli-units");
    // Index 1 had result data dropped by the plugin's caps: a warning on that frame.
    let mut r = record(1, "c1", None, 0);
    r.attempt = 1;
    r.warnings = vec!["2 result lines over the 1000-entry cap were dropped".into()];
    put(&l, &r);
    let out = frames(&["status", &dir, "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let units = v["units"].as_array().unwrap();
    assert_eq!(units.len(), 6);
    let u2 = &units[2];
    assert_eq!(u2["index"], 2);
    assert_eq!(u2["state"], "failed");
    assert_eq!(u2["job_id"], 502);
    assert_eq!(u2["array_job_id"], 500);
    assert_eq!(u2["nodes"], serde_json::json!(["c2"]));
    assert_eq!(u2["attempt"], 0);
    assert_eq!(u2["exit_code"], 3);
    assert_eq!(u2["reason"], "batch step on c2: exit code 3");
    assert_eq!(u2["results"], serde_json::json!([{"loss": 2}]));
    assert_eq!(u2["output_file"], "/home/u/anim/slurm-500_2.out");
    assert_eq!(units[4]["state"], "missing");
    assert_eq!(
        units[1]["warnings"],
        serde_json::json!([
            "batch step on c1: 2 result lines over the 1000-entry cap were dropped"
        ])
    );
    assert_eq!(units[4]["job_id"], serde_json::Value::Null);
    // Text: each failure with its reason and output file.
    let s = text(&frames(&["status", &dir]).stdout);
    assert!(
        s.contains("index 2 (job 502) failed: batch step on c2: exit code 3; output: /home/u/anim/slurm-500_2.out"),
        "{s}"
    );
    assert!(
        s.contains("result warnings:\n  index 1, batch step on c1: 2 result lines over"),
        "{s}"
    );
}

/// A sweep of 4 plain sbatch jobs in one dir, one failing: 4 units, the failed job named, the
/// per-node table adding up, `missing` listing the job, resubmit rerunning that job's command.
#[test]
fn a_sweep_of_jobs_and_resubmit_of_a_non_array_job() {
    let t = TempDir::new("cli-sweep");
    let l = Layout::new(t.path());
    l.create_dirs().unwrap();
    let dir = t.path().display().to_string();
    submit(
        &l,
        Some(&dir),
        &[
            "sbatch",
            "-N2",
            "-n4",
            &format!("--frame-dir={dir}"),
            "train.sh",
            "--lr=0.1",
        ],
    );
    for (job, code) in [(701, 0), (702, 0), (703, 2), (704, 0)] {
        put(&l, &job_task(job, "batch", 0, 1, "c1", code));
        for task in 0..4 {
            let node = if task < 2 { "c1" } else { "c2" };
            put(&l, &job_task(job, "0", task, 4, node, code));
        }
    }
    let out = frames(&["status", &dir, "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (
            v["expected"].as_u64(),
            v["done"].as_u64(),
            v["failed"].as_u64()
        ),
        (Some(4), Some(3), Some(1))
    );
    assert_eq!(v["jobs"]["703"], "failed");
    assert_eq!(v["hosts"], serde_json::json!(["c1", "c2"]));
    let job703 = v["units"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["job"] == 703)
        .unwrap();
    assert_eq!(job703["tasks"].as_array().unwrap().len(), 5);
    assert_eq!(job703["reason"], "batch step on c1: exit code 2");
    let s = text(&frames(&["status", &dir]).stdout);
    assert!(s.contains("4 expected, 3 done, 1 failed, 0 missing"), "{s}");
    assert!(
        s.contains("4 non-array job(s): 3 done, 1 failed, 0 missing"),
        "{s}"
    );
    assert!(s.contains("c2               6        2"), "{s}");
    assert_eq!(text(&frames(&["missing", &dir]).stdout), "\njobs: 703\n");
    let before = snapshot(t.path());
    let out = frames(&["resubmit", &dir, "--dry-run"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        format!("cd /home/u/anim && sbatch -N2 -n4 --frame-dir={dir} train.sh --lr=0.1\n")
    );
    assert_eq!(snapshot(t.path()), before, "--dry-run wrote something");
}

/// A copied directory: resubmit says where the recorded jobs wrote and refuses to run.
#[test]
fn resubmit_of_a_copied_dir_names_the_original() {
    let (_t, _l, dir) = fake_dir("cli-copied");
    let out = frames(&["resubmit", &dir]);
    assert_eq!(out.status.code(), Some(3));
    let err = text(&out.stderr);
    assert!(
        err.contains("the recorded jobs wrote to /shared/bh, not here")
            && err.contains("frames resubmit /shared/bh"),
        "{err}"
    );
}

/// frames with squeue answering `squeue_out` (as 22.05 prints `--format=%A|%F|%K|%T|%N|%r`)
/// and sacct saying accounting is disabled, as on the test cluster.
fn frames_with_queue(t: &TempDir, squeue_out: &str, args: &[&str]) -> Output {
    use std::os::unix::fs::PermissionsExt;
    let write = |name: &str, body: &str| {
        let p = t.path().join(name);
        std::fs::write(&p, body).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        p.display().to_string()
    };
    let data = t.path().join("squeue.out");
    std::fs::write(&data, squeue_out).unwrap();
    let squeue = write("squeue", &format!("#!/bin/sh\ncat '{}'\n", data.display()));
    let sacct = write(
        "sacct",
        "#!/bin/sh\necho 'Slurm accounting storage is disabled' >&2\nexit 1\n",
    );
    let sinfo = write(
        "sinfo",
        "#!/bin/sh\nprintf 'c1|idle\\nc2|down*\\nc2|down*\\n'\n",
    );
    Command::new(env!("CARGO_BIN_EXE_frames"))
        .args(args)
        .env("FRAMES_SQUEUE", squeue)
        .env("FRAMES_SACCT", sacct)
        .env("FRAMES_SINFO", sinfo)
        .output()
        .expect("run frames")
}

#[test]
fn missing_and_resubmit_leave_out_what_slurm_still_runs_and_say_who_answered() {
    let (t, _l, dir) = fake_dir("cli-queue-missing");
    // Index 4 (no record yet) is running; 5 (failed) was requeued and is pending again.
    let queue = "504|500|4|RUNNING|c1|None\n505|500|5|PENDING||BeginTime\n";
    let out = frames_with_queue(&t, queue, &["missing", &dir]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "2\n");
    let err = text(&out.stderr);
    assert!(
        err.contains("squeue answered; sacct: accounting storage is disabled"),
        "{err}"
    );
    assert!(err.contains("not proposed): 4-5"), "{err}");
    let out = frames_with_queue(&t, queue, &["resubmit", "--dry-run", &dir]);
    let cmd = text(&out.stdout);
    assert!(cmd.contains("--array=2 ") && !cmd.contains("4"), "{cmd}");
    // Slurm forgot the job (MinJobAge passed, no accounting): judged by the records.
    let out = frames_with_queue(&t, "", &["missing", &dir]);
    assert_eq!(text(&out.stdout), "2,4-5\n");
    assert!(
        text(&out.stderr).contains(
            "job 500: unknown to Slurm (ended more than MinJobAge ago, no accounting): judged by its records"
        ),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn watch_ends_on_a_lost_node_a_hold_and_a_timeout() {
    let (t, _l, dir) = fake_dir("cli-queue-watch");
    let out = frames_with_queue(
        &t,
        "504|500|4|NODE_FAIL|c2|NodeDown\n",
        &["watch", &dir, "--interval", "0.1"],
    );
    let s = text(&out.stdout);
    assert_eq!(out.status.code(), Some(4), "{s}");
    assert!(
        s.contains("lost with node c2: 500_4 (NODE_FAIL, not requeued)"),
        "{s}"
    );
    assert!(
        s.contains("nothing of") && s.contains("missing and failed: 2,4-5"),
        "{s}"
    );
    assert!(s.contains("nodes: down* c2; idle c1"), "{s}");

    let out = frames_with_queue(
        &t,
        "500|500|4|PENDING||JobHeldUser\n",
        &["watch", &dir, "--interval", "0.1"],
    );
    let s = text(&out.stdout);
    assert_eq!(out.status.code(), Some(4), "{s}");
    assert!(
        s.contains("500_4 pending (JobHeldUser): it will not start by itself"),
        "{s}"
    );

    let out = frames_with_queue(
        &t,
        "500|500|4|PENDING||BeginTime\n",
        &["watch", &dir, "--interval", "0.1", "--timeout", "0.5"],
    );
    let s = text(&out.stdout);
    assert_eq!(out.status.code(), Some(5), "{s}");
    assert!(
        s.contains("--timeout 0.5 s reached, slurm: 1 pending"),
        "{s}"
    );
    // One line per change without a terminal: the unchanged state is printed once.
    assert_eq!(s.matches("1 missing of 6").count(), 1, "{s}");
}
