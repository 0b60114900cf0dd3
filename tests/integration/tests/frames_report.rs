//! `frames report` on the real cluster, checked in a real browser: a 16-frame render of the
//! demo renderer with a frame that always fails, a node killed mid-array and `frames
//! resubmit`; the report before and after the resubmit is opened in headless Chromium (Debian's
//! `chromium`), which dumps the DOM after the page's script ran and takes a screenshot
//! (kept in target/report-browser/). Checked as a person would look: one tile per frame,
//! missing ones as placeholders, the failed frame framed red in the screenshot, thumbnails
//! drawn, one timeline row per node that ran tasks, superseded attempts visible.
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use integration_tests::{Cluster, cluster_script, record_files};

/// Chromium's viewport for both the DOM dump and the screenshot (same layout in both).
const WINDOW: (u32, u32) = (1280, 1600);

fn chromium() -> String {
    for name in ["chromium", "chromium-browser", "google-chrome"] {
        if Command::new(name)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
        {
            return name.to_owned();
        }
    }
    panic!("no chromium: install Debian's chromium (tests/install-deps.sh does)");
}

/// Headless Chromium on `url` with the test's viewport, plus `args`; stdout.
fn browse(args: &[&str], url: &str) -> String {
    let out = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--force-device-scale-factor=1",
            "--virtual-time-budget=5000",
            &format!("--window-size={},{}", WINDOW.0, WINDOW.1),
        ])
        .args(args)
        .arg(url)
        .output()
        .expect("run chromium");
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The page's layout probe (`?probe`): "tile-STATE-INDEX x y w h" and "row NODE x y w h".
fn probe(dom: &str) -> Boxes {
    let start = dom
        .find(r#"<pre id="probe">"#)
        .expect("the page's script ran (probe)");
    let body = &dom[start + 16..];
    let body = &body[..body.find("</pre>").expect("probe end")];
    body.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.rsplitn(5, ' ').collect();
            let n = |i: usize| f.get(i).and_then(|v| v.parse().ok());
            Some((f.get(4)?.to_string(), (n(3)?, n(2)?, n(1)?, n(0)?)))
        })
        .collect()
}

/// What the probe says was drawn where: name → (x, y, width, height) in CSS pixels.
type Boxes = BTreeMap<String, (i64, i64, i64, i64)>;

/// A decoded screenshot: width, height and RGB of each pixel.
struct Shot {
    w: u32,
    h: u32,
    rgb: Vec<[u8; 3]>,
}

impl Shot {
    fn open(path: &Path) -> Shot {
        let file = std::fs::File::open(path).expect("screenshot");
        let mut dec = png::Decoder::new(file);
        dec.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
        let mut reader = dec.read_info().expect("screenshot is a PNG");
        let mut buf = vec![0; reader.output_buffer_size()];
        let info = reader.next_frame(&mut buf).expect("screenshot pixels");
        let step = info.color_type.samples();
        let rgb = buf[..info.buffer_size()]
            .chunks(step)
            .map(|p| [p[0], p[1], p[2]])
            .collect();
        Shot {
            w: info.width,
            h: info.height,
            rgb,
        }
    }

    fn at(&self, x: i64, y: i64) -> [u8; 3] {
        assert!(
            x >= 0 && y >= 0 && (x as u32) < self.w && (y as u32) < self.h,
            "({x},{y}) outside the {}x{} screenshot",
            self.w,
            self.h
        );
        self.rgb[(y as u32 * self.w + x as u32) as usize]
    }
}

fn artifacts() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    let dir = target.join("report-browser");
    std::fs::create_dir_all(&dir).expect("target/report-browser");
    dir
}

/// Writes the report as the test user, opens it in Chromium; the DOM probe and screenshot.
fn report_in_browser(
    cluster: &Cluster,
    dir: &Path,
    page: &Path,
    name: &str,
) -> (String, Boxes, Shot) {
    let run = cluster
        .as_user(
            &cluster.tool("frames"),
            &[
                "report",
                dir.to_str().unwrap(),
                "-o",
                page.to_str().unwrap(),
                "--png",
            ],
        )
        .expect_ok("frames report");
    assert!(run.stdout.contains("report of"), "{run:?}");
    let url = format!("file://{}?probe", page.display());
    let dom = browse(&["--dump-dom"], &url);
    let shot_path = artifacts().join(format!("{name}.png"));
    let _ = std::fs::remove_file(&shot_path);
    browse(&[&format!("--screenshot={}", shot_path.display())], &url);
    let _ = std::fs::copy(page, artifacts().join(format!("{name}.html")));
    let shot = Shot::open(&shot_path);
    assert_eq!((shot.w, shot.h), WINDOW);
    let boxes = probe(&dom);
    (dom, boxes, shot)
}

fn count(boxes: &Boxes, prefix: &str) -> usize {
    boxes.keys().filter(|k| k.starts_with(prefix)).count()
}

fn near(a: [u8; 3], b: [u8; 3]) -> bool {
    a.iter().zip(b).all(|(x, y)| x.abs_diff(y) <= 12)
}

const RED: [u8; 3] = [211, 47, 47];

#[test]
#[ignore = "needs the test cluster: tests/run-all.sh"]
fn report_of_a_run_with_a_failed_frame_a_killed_node_and_a_resubmit_reads_in_a_browser() {
    let cluster = Cluster::connect();
    let work = cluster.user_dir("frames-report");
    // Index 5 always fails (its RESULT has markup to escape); 8-15 are slow, so c2 dies
    // while some of them run there.
    let script = cluster.user_script(
        &work,
        "render.sh",
        &format!(
            "#!/bin/sh\nif [ \"$FRAME_INDEX\" = 5 ]; then echo 'RESULT:{{\"note\":\"<b>bad</b>\"}}'; exit 3; fi\n\
             if [ \"$FRAME_INDEX\" -ge 8 ]; then sleep 6; fi\n\
             exec {} --time \"$FRAME_TIME\" --out \"$FRAME_PATH\" --result\n",
            cluster.tool("blackhole-render")
        ),
    );
    let dir = work.join("frames");
    let frame_dir = format!("--frame-dir={}", dir.display());
    let mut args: Vec<&str> = "--parsable -p normal --array=0-15 --no-requeue -o /dev/null"
        .split(' ')
        .collect();
    args.extend([frame_dir.as_str(), script.to_str().unwrap()]);
    cluster.as_user("sbatch", &args).expect_ok("sbatch");
    // The first wave (0-7) ends; the slow second wave is running when c2 dies.
    let start = Instant::now();
    while record_files(&dir).len() < 8 {
        assert!(
            start.elapsed() < Duration::from_secs(90),
            "first wave never ended"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    std::thread::sleep(Duration::from_secs(2));
    cluster_script(&["kill-node", "c2"]).expect_ok("kill-node c2");
    cluster.wait_queue_empty(Duration::from_secs(180));
    cluster_script(&["start-node", "c2"]).expect_ok("start-node c2");

    // Before the resubmit: the lost frames are placeholders, frame 5 is failed.
    let before = work.join("before.html");
    let (dom, boxes, shot) = report_in_browser(&cluster, &dir, &before, "before-resubmit");
    let status = cluster
        .as_user(
            &cluster.tool("frames"),
            &["status", "--json", dir.to_str().unwrap()],
        )
        .expect_ok("frames status");
    let summary: serde_json::Value = serde_json::from_str(&status.stdout).expect("status --json");
    let missing = summary["missing"].as_u64().unwrap_or(0) as usize;
    assert!(missing > 0, "c2's slow frames should be missing: {summary}");
    assert_eq!(count(&boxes, "tile-"), 16, "{boxes:?}");
    assert_eq!(count(&boxes, "tile-missing-"), missing, "{boxes:?}");
    assert_eq!(count(&boxes, "tile-failed-"), 1, "{boxes:?}");
    assert!(dom.contains("exit code 3"), "the failure's reason is shown");
    assert!(!dom.contains("<b>bad</b>") && dom.contains("&lt;b&gt;bad&lt;/b&gt;"));
    let (x, y, _, h) = boxes["tile-failed-5"];
    assert!(
        near(shot.at(x + 1, y + h / 2), RED),
        "frame 5 is not framed red"
    );
    // The dead node's timeline row says what it lost (Slurm's count: no records, no bars).
    let c2_row = &dom[dom.find(r#"data-node="c2""#).expect("a row for c2")..];
    let c2_row = &c2_row[..c2_row.find("</g>").unwrap_or(c2_row.len())];
    assert!(
        c2_row.contains(&format!(", {missing} lost</text>")),
        "c2's row: {c2_row}"
    );

    cluster
        .as_user(
            &cluster.tool("frames"),
            &["resubmit", dir.to_str().unwrap()],
        )
        .expect_ok("frames resubmit");
    cluster.wait_queue_empty(Duration::from_secs(120));

    // After: every frame but 5 done, the reruns marked, every node that ran a task a row.
    let page = work.join("report.html");
    let (dom, boxes, shot) = report_in_browser(&cluster, &dir, &page, "report");
    assert_eq!(count(&boxes, "tile-"), 16, "{boxes:?}");
    assert_eq!(count(&boxes, "tile-done-"), 15, "{boxes:?}");
    assert_eq!(count(&boxes, "tile-failed-"), 1, "{boxes:?}");
    assert_eq!(dom.matches(r#"<img class="pic""#).count(), 15);
    // The lost frames and the failed one were rerun.
    assert!(dom.matches(r#"class="badge rerun""#).count() > missing);
    // The failed frame is framed red; a done frame shows its render (the dark sky), not the
    // page's background.
    let (x, y, _, h) = boxes["tile-failed-5"];
    assert!(
        near(shot.at(x + 1, y + h / 2), RED),
        "frame 5 is not framed red"
    );
    let (x, y, w, _) = boxes["tile-done-0"];
    let px = shot.at(x + w / 2, y + 30);
    assert!(
        px.iter().map(|&v| u32::from(v)).sum::<u32>() < 3 * 160,
        "frame 0's thumbnail is not drawn (pixel {px:?})"
    );
    let ran: BTreeSet<String> = record_files(&dir)
        .iter()
        .filter_map(|r| r["node"].as_str().map(str::to_owned))
        .collect();
    let rows: BTreeSet<String> = boxes
        .keys()
        .filter_map(|k| k.strip_prefix("row "))
        .map(str::to_owned)
        .collect();
    assert_eq!(rows, ran, "one timeline row per node that ran tasks");
    assert!(rows.contains("c2"), "c2 ran the first wave before it died");
    assert!(
        dom.contains(r#"class="b superseded""#),
        "earlier attempts are shown"
    );
    assert!(dom.contains("frames resubmit "));
    for png in ["contact-sheet.png", "timeline.png"] {
        assert!(work.join("report_files").join(png).is_file(), "{png}");
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while !cluster.unhealthy_nodes().is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(500));
    }
    cluster.assert_no_unhealthy_nodes();
}
