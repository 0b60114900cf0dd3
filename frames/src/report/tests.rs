//! Unit tests of `frames report`: the data (tiles for missing and failed frames, attempts in
//! the timeline, runs without images), the page (escaping, what it shows) and thumbnails.
use std::path::Path;

use frames_core::merge::{self, Collection, OwnedSubmission};
use frames_core::record::{RECORD_VERSION, RawJson, TaskRecord};
use frames_core::submission::Submission;
use frames_core::test_util::TempDir;

use super::html::{self, esc};
use super::model::{self, Lost, Outcome, TileState};
use super::thumbs::{self, Thumb};
use super::{assets_name, relative};

/// A record as the plugin writes it (through its JSON, as `frames` reads it).
fn record(index: u64, job: u32, node: &str, start: f64, secs: f64, code: i32) -> TaskRecord {
    let text = format!(
        r#"{{"version":{RECORD_VERSION},"index":{index},"attempt":0,"job_id":{id},
        "array_job_id":{job},"array_task_id":{index},"step":"batch","task_id":0,"task_count":1,
        "uid":1000,"node":{node},"exit_code":{code},"signal":null,"core_dumped":false,
        "start_time":{start},"end_time":{end},"frame_path":"frame_{index:04}.png",
        "frame_size":100,"frame_sha256":null,"frame_blake3":"{blake3}",
        "results":[{{"frame_time": {index}, "loss": 0.5}}],"result_errors":[],
        "status":"done","reason":null}}"#,
        id = job + index as u32 + 1,
        node = serde_json::Value::from(node),
        end = start + secs,
        blake3 = "ab".repeat(32),
    );
    let mut r: TaskRecord = serde_json::from_str(&text).unwrap();
    r.decide(true);
    r
}

fn submission(array: &str) -> OwnedSubmission {
    let argv: Vec<String> = [
        "sbatch",
        &format!("--array={array}"),
        "--frame-dir=/f",
        "r.sh",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut s = Submission::from_argv(&argv, "/home/u", 1_700_000_000.0);
    s.id = "sub-1".into();
    s.uid = Some(1000);
    OwnedSubmission {
        name: "sub-1.json".into(),
        uid: 1000,
        submission: s,
    }
}

fn collection(records: Vec<TaskRecord>, subs: Vec<OwnedSubmission>) -> Collection {
    Collection {
        root: "/f".into(),
        records,
        submissions: subs,
        owner_uid: Some(1000),
        ..Collection::default()
    }
}

fn report_of(c: &Collection, lost: &Lost) -> model::Report {
    let s = merge::summarize(c);
    model::build(c, &s, lost, vec![])
}

fn page_of(r: &model::Report) -> String {
    let thumbs = vec![Thumb::None; r.tiles.len()];
    let links = vec![None; r.tiles.len()];
    html::page(&html::Page {
        report: r,
        thumbs: &thumbs,
        links: &links,
        assets: "report_files",
        thumb_box: (160, 90),
        pngs: &[],
    })
}

/// An array 0-5: 2 missing (one lost with its node), 4 failed, the rest done.
fn array_with_gaps() -> Collection {
    let mut recs = vec![
        record(0, 200, "c1", 100.0, 10.0, 0),
        record(1, 200, "c2", 100.0, 12.0, 0),
        record(3, 200, "c1", 110.0, 10.0, 0),
        record(4, 200, "c2", 112.0, 11.0, 3),
        record(5, 200, "c1", 120.0, 10.0, 0),
    ];
    recs.sort_by_key(|r| r.index);
    collection(recs, vec![submission("0-5")])
}

#[test]
fn every_expected_frame_has_a_tile_in_index_order_with_missing_and_failed_marked() {
    let c = array_with_gaps();
    let mut lost = Lost::new();
    lost.insert(2, "lost with node c2 (NODE_FAIL)".into());
    let r = report_of(&c, &lost);
    let idx: Vec<u64> = r.tiles.iter().map(|t| t.index).collect();
    assert_eq!(idx, [0, 1, 2, 3, 4, 5]);
    let t2 = &r.tiles[2];
    assert_eq!(t2.state, TileState::Missing);
    assert_eq!(t2.reason.as_deref(), Some("lost with node c2 (NODE_FAIL)"));
    assert!(t2.frame.is_none());
    let t4 = &r.tiles[4];
    assert_eq!(t4.state, TileState::Failed);
    assert_eq!(t4.reason.as_deref(), Some("exit code 3"));
    assert_eq!(t4.node.as_deref(), Some("c2"));
    assert_eq!(
        r.tiles[0].frame.as_deref(),
        Some(Path::new("/f/frame_0000.png"))
    );
    assert!(r.has_frames);
    assert_eq!(
        (r.missing_ranges.as_str(), r.failed_ranges.as_str()),
        ("2", "4")
    );
    assert_eq!(r.rerun_ranges, "2,4");

    let page = page_of(&r);
    assert_eq!(page.matches(r#"<figure class="tile "#).count(), 6);
    assert_eq!(page.matches(r#"data-state="missing""#).count(), 1);
    assert_eq!(page.matches(r#"data-state="failed""#).count(), 1);
    assert!(
        page.contains(r#"<span class="why">exit code 3 · c2</span>"#),
        "{page}"
    );
    assert!(page.contains("lost with node c2 (NODE_FAIL)"));
    assert!(page.contains(">missing</div>"));
    // Two timeline rows, the resubmit command of the dir.
    assert_eq!(page.matches(r#"<g class="node-row""#).count(), 2);
    assert!(page.contains("<code>frames resubmit /f</code>"), "{page}");
}

#[test]
fn the_timeline_shows_every_attempt_with_superseded_ones_and_lanes() {
    // Index 1: job 200 killed by SIGKILL on c2, rerun by job 300 on c1 (attempt 0), done.
    let mut first = record(1, 200, "c2", 100.0, 5.0, 0);
    first.exit_code = None;
    first.signal = Some(9);
    first.decide(true);
    let rerun = record(1, 300, "c1", 200.0, 4.0, 0);
    let c = collection(
        vec![
            record(0, 200, "c1", 100.0, 10.0, 0),
            first,
            rerun,
            // Overlaps index 0 on c1: a second lane.
            record(2, 200, "c1", 105.0, 10.0, 0),
        ],
        vec![submission("0-2")],
    );
    let r = report_of(&c, &Lost::new());
    assert_eq!(r.done, 3);
    let c1 = r.nodes.iter().find(|n| n.node == "c1").unwrap();
    let c2 = r.nodes.iter().find(|n| n.node == "c2").unwrap();
    assert_eq!((c1.tasks, c1.lanes, c1.failures), (3, 2, 0));
    assert_eq!((c2.tasks, c2.failures, c2.superseded), (1, 1, 1));
    assert_eq!(c2.bars[0].outcome, Outcome::Superseded);
    assert!(
        c2.bars[0]
            .reason
            .as_deref()
            .unwrap_or("")
            .contains("SIGKILL")
    );
    assert_eq!(c1.median, Some(10.0));
    let lanes: Vec<usize> = c1.bars.iter().map(|b| b.lane).collect();
    assert_eq!(lanes, [0, 1, 0]);
    assert_eq!(
        r.tiles[1].rerun.as_deref(),
        Some("rerun by job 300 (first run: job 200)")
    );
    let page = page_of(&r);
    assert_eq!(page.matches(r#"<rect class="b superseded""#).count(), 1);
    assert_eq!(page.matches(r#"<rect class="b done""#).count(), 3);
    assert!(page.contains("index 1 · job 202 attempt 0 · 5.00 s · superseded: killed by signal 9"));
}

#[test]
fn a_run_without_images_gets_timeline_results_and_host_counts() {
    // A sweep of two non-array jobs with --frame-pattern=none, one of two tasks per job.
    let job = |job: u32, task: u32, node: &str, loss: f64| {
        let mut r = record(0, job, node, 100.0 + f64::from(task), 3.0, 0);
        r.job_id = job;
        r.array_job_id = None;
        r.array_task_id = None;
        r.task_id = task;
        r.task_count = 2;
        r.step = "0".into();
        r.frame_path = None;
        r.frame_size = None;
        r.frame_blake3 = None;
        r.results = vec![RawJson::parse(&format!(r#"{{"loss": {loss}, "lr": 0.1}}"#)).unwrap()];
        r.decide(false);
        r
    };
    let c = collection(
        vec![
            job(501, 0, "c1", 0.25),
            job(501, 1, "c2", 0.5),
            job(502, 0, "q1", 0.75),
            job(502, 1, "q1", 1.0),
        ],
        vec![],
    );
    let r = report_of(&c, &Lost::new());
    assert!(!r.has_frames);
    assert!(r.tiles.is_empty());
    assert_eq!(r.unique_hosts, 3);
    assert_eq!(r.columns, ["loss", "lr"]);
    assert_eq!(r.rows.len(), 4);
    assert_eq!(r.rows[2].unit, "job 502");
    assert_eq!(r.rows[2].fields, ["0.75", "0.1"]);
    assert_eq!(r.rows[1].job, "501 step 0.1");
    let page = page_of(&r);
    assert!(!page.contains(r#"id="sheet""#));
    assert_eq!(page.matches(r#"<g class="node-row""#).count(), 3);
    assert!(page.contains("hosts (unique_hosts)"));
    assert!(page.contains("3 — c1: 1 done, 0 failed; c2: 1 done, 0 failed; q1: 2 done, 0 failed"));
    assert!(page.contains("<p>Nothing to resubmit.</p>"));
}

#[test]
fn strings_from_records_are_escaped() {
    let mut r = record(0, 200, "<script>alert(1)</script>", 100.0, 1.0, 0);
    r.results = vec![
        RawJson::parse(r#"{"<b>key</b>": "<img src=x onerror=alert(2)>", "q": "a\"b'c&"}"#)
            .unwrap(),
        RawJson::parse(r#"["<i>list</i>"]"#).unwrap(),
    ];
    let c = collection(vec![r], vec![submission("0")]);
    let page = page_of(&report_of(&c, &Lost::new()));
    for raw in ["<script>alert", "<img src=x", "<b>key", "<i>list"] {
        assert!(!page.contains(raw), "{raw} reached the page unescaped");
    }
    assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(page.contains("&lt;img src=x onerror=alert(2)&gt;"));
    assert!(page.contains("a&quot;b&#39;c&amp;"));
    assert_eq!(
        esc(r#"<a href="x">'&'</a>"#),
        "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
    );
    assert_eq!(html::url_path("a b/#c%.png"), "a%20b/%23c%25.png");
}

#[test]
fn results_keep_non_objects_and_unusable_lines_in_their_own_column() {
    let mut r = record(0, 200, "c1", 100.0, 1.0, 0);
    r.results.push(RawJson::parse("[1, 2]").unwrap());
    r.result_errors.push(frames_core::record::ResultError {
        source: frames_core::record::ResultSource::Stdout,
        line: "RESULT:{bad".into(),
        error: "EOF".into(),
    });
    let c = collection(vec![r], vec![submission("0")]);
    let rep = report_of(&c, &Lost::new());
    assert_eq!(rep.columns, ["frame_time", "loss"]);
    assert_eq!(rep.rows[0].fields, ["0", "0.5"]);
    assert_eq!(
        rep.rows[0].other,
        r#"[1,2]; unusable result "RESULT:{bad": EOF"#
    );
}

#[test]
fn paths_relative_to_the_page() {
    assert_eq!(
        relative(Path::new("/s/reports"), Path::new("/s/frames/bh/f.png")),
        "../frames/bh/f.png"
    );
    assert_eq!(relative(Path::new("/s"), Path::new("/s/f.png")), "f.png");
    assert_eq!(relative(Path::new("/a"), Path::new("/b/f.png")), "/b/f.png");
    assert_eq!(assets_name(Path::new("out/run.html")), "run_files");
    assert_eq!(html::tick_step(30.0, 8.0), 5.0);
    assert_eq!(html::tick_step(0.9, 8.0), 0.2);
}

fn write_png(path: &Path, w: u32, h: u32, shade: u8) {
    image::RgbImage::from_pixel(w, h, image::Rgb([shade, 20, 200]))
        .save(path)
        .unwrap();
}

#[test]
fn thumbnails_are_cached_by_checksum_and_changed_or_broken_frames_are_said() {
    let t = TempDir::new("report-thumbs");
    let frames_dir = t.path().join("frames");
    std::fs::create_dir_all(&frames_dir).unwrap();
    let mut tiles = Vec::new();
    for i in 0..4u64 {
        let p = frames_dir.join(format!("frame_{i:04}.png"));
        write_png(&p, 320, 180, i as u8 * 40);
        let d = frames_core::record::frame_checksum(&p, false).unwrap();
        tiles.push(model::Tile {
            index: i,
            state: TileState::Done,
            reason: None,
            node: Some("c1".into()),
            frame: Some(p),
            size: Some(d.size),
            blake3: Some(d.blake3),
            sha256: None,
            rerun: None,
        });
    }
    // Frame 2 changes after its task ended; frame 3 is no image; a failed task left no file.
    write_png(tiles[2].frame.as_ref().unwrap(), 320, 180, 255);
    std::fs::write(tiles[3].frame.as_ref().unwrap(), b"not a png").unwrap();
    tiles[3].size = Some(9);
    tiles[3].blake3 = None;
    let mut gone = tiles[0].clone();
    gone.index = 4;
    gone.state = TileState::Failed;
    gone.frame = Some(frames_dir.join("frame_0004.png"));
    tiles.push(gone);

    let assets = t.path().join("report_files");
    let ticks = std::sync::atomic::AtomicUsize::new(0);
    let tick = || {
        ticks.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    };
    let (made, counts) = thumbs::make_all(&tiles, &assets, 3, &tick).unwrap();
    assert_eq!(ticks.into_inner(), 5);
    assert_eq!((counts.new, counts.cached, counts.errors), (3, 0, 1));
    let Thumb::Made {
        file,
        changed: None,
    } = &made[0]
    else {
        panic!("{:?}", made[0]);
    };
    assert_eq!(
        image::image_dimensions(assets.join(file)).unwrap(),
        (160, 90)
    );
    assert!(
        matches!(&made[2], Thumb::Made { changed: Some(c), .. } if c.contains("changed after its task ended"))
    );
    assert!(
        matches!(&made[3], Thumb::Error(e) if e.contains("frame_0003.png") && e.contains("expected a PNG or JPEG"))
    );
    assert_eq!(made[4], Thumb::None);
    // A second report makes nothing new.
    let (again, counts) = thumbs::make_all(&tiles, &assets, 1, &|| {}).unwrap();
    assert_eq!((counts.new, counts.cached), (0, 3));
    assert_eq!(again, made);
    // Pruning keeps what is shown.
    std::fs::write(assets.join("thumbs/stale.jpg"), b"x").unwrap();
    thumbs::prune(&assets, &again);
    assert!(!assets.join("thumbs/stale.jpg").exists());
    assert!(assets.join(file).exists());
}

/// Whether `img` shows `s` as `font` draws it in `colour` on the background, with its top
/// left anywhere in x0..=x1, y0..=y1 (pixel for pixel).
fn shows_text(
    img: &image::RgbImage,
    s: &str,
    font: super::text::Font,
    colour: image::Rgb<u8>,
    (x0, y0, x1, y1): (u32, u32, u32, u32),
) -> bool {
    let want = super::png::rendered(s, font, colour);
    let fits = |x: u32, y: u32| {
        x + want.width() <= img.width()
            && y + want.height() <= img.height()
            && want
                .enumerate_pixels()
                .all(|(dx, dy, p)| img.get_pixel(x + dx, y + dy) == p)
    };
    (y0..=y1).any(|y| (x0..=x1).any(|x| fits(x, y)))
}

/// At exactly (x, y).
fn text_at(
    img: &image::RgbImage,
    s: &str,
    font: super::text::Font,
    colour: image::Rgb<u8>,
    (x, y): (u32, u32),
) -> bool {
    shows_text(img, s, font, colour, (x, y, x, y))
}

#[test]
fn pngs_of_the_sheet_and_timeline() {
    use super::png::{self, CAPTION_LINE, FAILED, FAILED_INK, GREY_INK, HEAD_LINE, INK, MARGIN};
    use super::text::{LARGE, LARGE_BOLD, SMALL, SMALL_BOLD};
    let (cols, cw, _) = png::sheet_grid(10_000, (160, 90));
    assert!(cols * cw <= 4096, "{cols} x {cw}");
    let c = array_with_gaps();
    let mut lost = Lost::new();
    lost.insert(2, "lost with node c2 (NODE_FAIL)".into());
    let mut r = report_of(&c, &lost);
    // Slurm lost index 2 with c2, and a task with c3, which left no record at all.
    let per_node = [("c2".to_owned(), 1), ("c3".to_owned(), 1)]
        .into_iter()
        .collect();
    model::count_lost(&mut r, &per_node);
    let t = TempDir::new("report-png");
    let thumbs = vec![Thumb::None; r.tiles.len()];
    let sheet = t.path().join("sheet.png");
    png::contact_sheet(&r, &thumbs, t.path(), (160, 90), &sheet).unwrap();
    let img = image::open(&sheet).unwrap().to_rgb8();
    let l = png::sheet_layout(&r, (160, 90));
    // 6 tiles of 164 px cells fill the 720 px the title needs: 4 columns, two caption lines
    // (reasons to tell).
    assert_eq!((l.cols, l.cell_w, l.caption_lines), (4, 164, 2));
    assert_eq!(img.width(), 720);
    // The title, the counts and the failed and missing ranges above the tiles.
    let title = "Contact sheet of /f";
    assert!(text_at(&img, title, LARGE_BOLD, INK, (MARGIN, MARGIN)));
    let counts = "6 frames in index order (row by row): 4 done, 1 failed, 1 missing";
    assert!(text_at(
        &img,
        counts,
        LARGE,
        INK,
        (MARGIN, MARGIN + HEAD_LINE)
    ));
    assert!(shows_text(
        &img,
        "failed",
        LARGE,
        INK,
        (MARGIN, MARGIN + 2 * HEAD_LINE, 200, MARGIN + 2 * HEAD_LINE)
    ));
    let ranges = "failed: 4   missing: 2";
    assert!(text_at(
        &img,
        ranges,
        LARGE,
        FAILED_INK,
        (MARGIN, MARGIN + 3 * HEAD_LINE)
    ));
    // Every tile's number under it; tile 4 framed red, FAILED and its reason and node;
    // tile 2 missing with why.
    for (i, tile) in r.tiles.iter().enumerate() {
        let (x, y) = l.tile(i);
        let cap = y + l.pic_h - 2;
        let n = tile.index.to_string();
        assert!(text_at(&img, &n, SMALL_BOLD, INK, (x, cap)), "tile {i}");
        assert!(!text_at(&img, "9", SMALL_BOLD, INK, (x, cap)), "tile {i}");
    }
    let (x, y) = l.tile(4);
    assert_eq!(img.get_pixel(x + 1, y + 1).0, FAILED.0);
    let cap = y + l.pic_h - 2;
    assert!(text_at(
        &img,
        " FAILED",
        SMALL_BOLD,
        FAILED_INK,
        (x + SMALL_BOLD.char_w(), cap)
    ));
    assert!(text_at(
        &img,
        "exit code 3, node c2",
        SMALL,
        FAILED_INK,
        (x, cap + CAPTION_LINE)
    ));
    let (x, y) = l.tile(2);
    let cap = y + l.pic_h - 2;
    assert!(text_at(
        &img,
        " missing",
        SMALL_BOLD,
        GREY_INK,
        (x + SMALL_BOLD.char_w(), cap)
    ));
    assert!(text_at(
        &img,
        "lost with node",
        SMALL,
        GREY_INK,
        (x, cap + CAPTION_LINE)
    ));
    assert!(!text_at(
        &img,
        " FAILED",
        SMALL_BOLD,
        FAILED_INK,
        (x + SMALL_BOLD.char_w(), cap)
    ));

    let tl = t.path().join("timeline.png");
    png::timeline(&r, &tl).unwrap();
    let img = image::open(&tl).unwrap().to_rgb8();
    assert!(img.pixels().any(|p| p.0 == FAILED.0), "no failed bar drawn");
    let l = png::timeline_layout(&r);
    assert!(text_at(
        &img,
        "Timeline of /f: 5 task attempts on 3 node(s)",
        LARGE_BOLD,
        INK,
        (MARGIN, MARGIN)
    ));
    assert!(shows_text(
        &img,
        "superseded (requeued",
        LARGE,
        INK,
        (MARGIN, MARGIN + HEAD_LINE, 900, MARGIN + HEAD_LINE)
    ));
    // A row per node, its name, counts and median beside it.
    assert_eq!(l.rows.len(), r.nodes.len());
    for (n, &(y, _)) in r.nodes.iter().zip(&l.rows) {
        let y = y + png::TL_ROW_PAD;
        assert!(
            text_at(&img, &n.node, SMALL_BOLD, INK, (MARGIN, y)),
            "{}",
            n.node
        );
        let other = if n.node == "c1" { "c2" } else { "c1" };
        assert!(
            !text_at(&img, other, SMALL_BOLD, INK, (MARGIN, y)),
            "{}",
            n.node
        );
        let counts = match n.node.as_str() {
            "c1" => "3 tasks, 0 failed",
            "c2" => "2 tasks, 1 failed, 1 lost",
            _ => "0 tasks, 0 failed, 1 lost",
        };
        let ink = if n.node == "c1" { INK } else { FAILED_INK };
        assert!(
            text_at(&img, counts, SMALL, ink, (MARGIN, y + 18)),
            "{counts}"
        );
        if n.node != "c3" {
            assert!(
                text_at(&img, "median 1", SMALL, INK, (MARGIN, y + 36)),
                "{}",
                n.node
            );
        }
    }
    // The time axis: 0 at the plot's left edge, then every 5 s over the 30 s span.
    let zero = "0.00 s";
    let zx = l.plot_x - SMALL.width(zero) / 2;
    assert!(text_at(&img, zero, SMALL, INK, (zx, l.axis_y)));
    let ten = "10.0 s";
    let tx = l.plot_x + l.plot_w / 3 - SMALL.width(ten) / 2;
    assert!(shows_text(
        &img,
        ten,
        SMALL,
        INK,
        (tx - 1, l.axis_y, tx + 1, l.axis_y)
    ));
}

#[test]
fn the_png_timeline_says_which_node_is_slow() {
    use super::png::{self, INK, SLOW};
    use super::text::{SMALL, SMALL_BOLD};
    let recs = vec![
        record(0, 200, "c1", 100.0, 10.0, 0),
        record(1, 200, "c2", 100.0, 11.0, 0),
        record(2, 200, "c3", 100.0, 40.0, 0),
    ];
    let r = report_of(&collection(recs, vec![submission("0-2")]), &Lost::new());
    let t = TempDir::new("report-png-slow");
    let tl = t.path().join("timeline.png");
    png::timeline(&r, &tl).unwrap();
    let img = image::open(&tl).unwrap().to_rgb8();
    let l = png::timeline_layout(&r);
    for (n, &(y, _)) in r.nodes.iter().zip(&l.rows) {
        let line = format!("median {}", html::seconds(n.median.unwrap()));
        let y = y + png::TL_ROW_PAD + 36;
        assert!(text_at(&img, &line, SMALL, INK, (png::MARGIN, y)), "{line}");
        let slow_x = png::MARGIN + SMALL.width(&line);
        let slow = text_at(&img, " SLOW", SMALL_BOLD, SLOW, (slow_x, y));
        assert_eq!(slow, n.node == "c3", "{}", n.node);
    }
}

#[test]
fn a_large_sheet_names_later_thumbnails_for_the_script_to_load() {
    // 300 frames: the first EAGER_TILES thumbnails in src (shown without JavaScript too),
    // the rest in data-src, loaded when scrolled near; tiles laid out only near the screen.
    let recs = (0..300)
        .map(|i| record(i, 200, "c1", 100.0 + i as f64, 1.0, 0))
        .collect();
    let r = report_of(&collection(recs, vec![submission("0-299")]), &Lost::new());
    let thumbs: Vec<Thumb> = (0..300)
        .map(|i| Thumb::Made {
            file: format!("thumbs/{i}.jpg"),
            changed: None,
        })
        .collect();
    let links = vec![None; 300];
    let page = html::page(&html::Page {
        report: &r,
        thumbs: &thumbs,
        links: &links,
        assets: "report_files",
        thumb_box: (160, 90),
        pngs: &[],
    });
    let eager = html::EAGER_TILES;
    assert_eq!(page.matches(r#" src="report_files/thumbs/"#).count(), eager);
    assert_eq!(
        page.matches(r#" data-src="report_files/thumbs/"#).count(),
        300 - eager
    );
    assert!(page.contains(&format!(r#"data-src="report_files/thumbs/{eager}.jpg""#)));
    assert!(page.contains(r#"<div class="sheet big""#));
    // A short run: every thumbnail in src, every tile laid out.
    let small = page_of(&report_of(&array_with_gaps(), &Lost::new()));
    assert!(!small.contains("data-src=\"") && !small.contains("sheet big"));
}
