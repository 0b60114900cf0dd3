//! Runs `frames report` on a frame directory with real PNG frames: the page, its folder of
//! thumbnails and PNGs, one progress line per step without a terminal, the thumbnail cache on a
//! second run, and errors that name what is wrong.
use std::path::Path;
use std::process::{Command, Output};

use frames_core::Layout;
use frames_core::layout::{StepId, TaskKey};
use frames_core::record::frame_checksum;
use frames_core::submission::{self, Submission, SubmissionState};
use frames_core::test_util::TempDir;
use host_io::write_new;

fn frames(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_frames"))
        .args(args)
        .env("FRAMES_SQUEUE", "frames-test-no-squeue")
        .env("FRAMES_SACCT", "frames-test-no-sacct")
        .output()
        .expect("run frames")
}

/// Writes the record of array index `index` (job 700) as the plugin would; `frame` when the
/// task wrote one.
fn put_record(layout: &Layout, index: u64, code: i32, frame: Option<&Path>) {
    let digest = frame.map(|p| frame_checksum(p, false).unwrap());
    let text = serde_json::json!({
        "version": 2, "index": index, "attempt": 0, "job_id": 701 + index, "array_job_id": 700,
        "array_task_id": index, "step": "batch", "task_id": 0, "task_count": 1,
        "node": if index.is_multiple_of(2) { "c1" } else { "c2" }, "exit_code": code, "signal": null,
        "core_dumped": false, "start_time": 1000.0 + index as f64, "end_time": 1002.5 + index as f64,
        "frame_path": layout.root().join(format!("frame_{index:04}.png")),
        "frame_size": digest.as_ref().map(|d| d.size), "frame_sha256": null,
        "frame_blake3": digest.as_ref().map(|d| d.blake3.clone()),
        "results": [{"render_ms": 80 + index}], "result_errors": [],
        "status": if code == 0 && frame.is_some() { "done" } else { "failed" },
        "reason": match (code, frame) {
            (0, Some(_)) => None,
            (0, None) => Some("frame file missing".to_owned()),
            _ => Some(format!("exit code {code}")),
        },
    });
    let key = TaskKey {
        index,
        attempt: 0,
        job_id: 701 + index as u32,
        step: StepId::Batch,
        task_id: 0,
    };
    write_new(&layout.record_path(&key), text.to_string().as_bytes()).unwrap();
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn report_writes_the_page_its_images_and_reuses_thumbnails() {
    let t = TempDir::new("report-cli");
    let layout = Layout::new(t.path().join("bh"));
    layout.create_dirs().unwrap();
    for i in 0..2u64 {
        let p = layout.root().join(format!("frame_{i:04}.png"));
        image::RgbImage::from_pixel(320, 180, image::Rgb([10, 10, 40 * i as u8]))
            .save(&p)
            .unwrap();
        put_record(&layout, i, 0, Some(&p));
    }
    put_record(&layout, 2, 3, None);
    put_record(&layout, 4, 0, None); // no frame file: failed ("frame file missing")
    let dir = layout.root().display().to_string();
    // The submission expects 0-4: index 3 never ran.
    let argv: Vec<String> = [
        "sbatch",
        "--array=0-4",
        &format!("--frame-dir={dir}"),
        "r.sh",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut sub = Submission::from_argv(&argv, "/tmp", 1_700_000_000.0);
    sub.state = SubmissionState::Accepted;
    submission::write(&layout, &mut sub, "login").unwrap();
    let page = t.path().join("out/r.html");
    std::fs::create_dir_all(t.path().join("out")).unwrap();
    let page_arg = page.display().to_string();

    let out = frames(&["report", &dir, "-o", &page_arg, "--png", "--jobs", "2"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("r.html: report of"),
        "{}",
        text(&out.stdout)
    );
    let err = text(&out.stderr);
    assert!(
        err.contains("thumbnails: 2 new, 0 cached, 0 unreadable"),
        "{err}"
    );
    assert!(
        err.lines().all(|l| l.starts_with("frames report: [")),
        "one line per step without a terminal: {err}"
    );
    let html = std::fs::read_to_string(&page).unwrap();
    assert_eq!(html.matches(r#"<figure class="tile "#).count(), 5);
    assert_eq!(html.matches(r#"data-state="missing""#).count(), 1);
    assert_eq!(html.matches(r#"data-state="failed""#).count(), 2);
    assert!(html.contains(r#"src="r_files/thumbs/"#));
    assert!(html.contains("<code>frames resubmit "));
    assert!(
        html.contains(r#"href="../bh/frame_0000.png""#),
        "relative link to the frame"
    );
    let files = t.path().join("out/r_files");
    assert_eq!(std::fs::read_dir(files.join("thumbs")).unwrap().count(), 2);
    for png in ["contact-sheet.png", "timeline.png"] {
        assert!(image::open(files.join(png)).is_ok(), "{png}");
    }

    let again = frames(&["report", &dir, "-o", &page_arg, "--no-queue"]);
    assert!(again.status.success(), "{}", text(&again.stderr));
    assert!(text(&again.stderr).contains("thumbnails: 0 new, 2 cached"));
    assert!(
        std::fs::read_to_string(&page)
            .unwrap()
            .contains("--no-queue")
    );
}

#[test]
fn report_errors_name_the_file() {
    let out = frames(&["report", "/nonexistent-frames-dir"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).starts_with("frames: /nonexistent-frames-dir: "));
    let t = TempDir::new("report-cli-err");
    let layout = Layout::new(t.path().join("bh"));
    layout.create_dirs().unwrap();
    put_record(&layout, 0, 3, None);
    let blocked = t.path().join("file");
    std::fs::write(&blocked, b"x").unwrap();
    let page = blocked.join("r.html").display().to_string();
    let dir = layout.root().display().to_string();
    let out = frames(&["report", &dir, "-o", &page, "--no-queue"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains(&format!("cannot create {}/r_files", blocked.display())),
        "{}",
        text(&out.stderr)
    );
    let out = frames(&["report", &dir, "--jobs", "0"]);
    assert_eq!(out.status.code(), Some(2));
}
