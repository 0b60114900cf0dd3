//! Frame dirs on node-local disks (`--frame-local`, issue 14) on a cluster brought up with
//! `cluster.sh up --private-dir PATH` (each node its own PATH, the submit host its own): an
//! array across c1 and c2, `frames status` refusing to guess before a gather, `frames gather`
//! through Slurm with c2 down (named unreachable), a frame changed on c1 (checksum mismatch:
//! reported, not merged), `missing`, `resubmit`, gather again, a last gather that brings
//! nothing new; and a non-shared --frame-dir without the option told on the job's stderr.
//!
//! On a cluster without --private-dir (the main suite's) the test prints why and passes
//! without doing anything, unless SPANK_PRIVATE_REQUIRED=1 (tests/run-all.sh's section).
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use integration_tests::{Cluster, Run, cluster_script};

fn private(cluster: &Cluster) -> Option<(PathBuf, PathBuf)> {
    let dir = std::env::var("SPANK_PRIVATE_DIR").ok().or_else(|| {
        let env = std::fs::read_to_string(cluster.scratch().join("cluster.env")).ok()?;
        env.lines()
            .find_map(|l| l.strip_prefix("export SPANK_PRIVATE_DIR="))
            .map(str::to_owned)
    });
    match dir {
        Some(d) if !d.is_empty() => Some((PathBuf::from(d), cluster.scratch().join("private"))),
        _ => {
            assert!(
                std::env::var("SPANK_PRIVATE_REQUIRED").is_err(),
                "SPANK_PRIVATE_REQUIRED: the cluster has no --private-dir"
            );
            eprintln!("skipped: the cluster was brought up without --private-dir");
            None
        }
    }
}

fn frames(cluster: &Cluster, args: &[&str]) -> Run {
    cluster.as_user(&cluster.tool("frames"), args)
}

fn pngs(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "png"))
        .collect();
    out.sort();
    out
}

fn wait_healthy(cluster: &Cluster) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !cluster.unhealthy_nodes().is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(500));
    }
    cluster.assert_no_unhealthy_nodes();
}

/// Issue 14's workflow, scaled down: 24 frames on c1 and c2's own disks, c2 crashed mid-array.
#[test]
#[ignore = "needs the test cluster with --private-dir"]
fn node_local_frames_gathered_through_slurm() {
    let cluster = Cluster::connect();
    let Some((private, backing)) = private(&cluster) else {
        return;
    };
    let name = format!("render-{}", std::process::id());
    let dir = private.join(&name);
    let d = dir.to_str().unwrap_or_default();
    let work = cluster.user_dir("frames-local");
    let script = cluster.user_script(
        &work,
        "render.sh",
        &format!(
            "#!/bin/sh\nif [ \"$FRAME_INDEX\" -ge 8 ]; then sleep 4; fi\n\
             exec {} --time \"$FRAME_TIME\" --out \"$FRAME_PATH\"\n",
            cluster.tool("blackhole-render")
        ),
    );
    let frame_dir = format!("--frame-dir={d}");
    let mut args: Vec<&str> = "--parsable -p normal --array=0-23 --no-requeue -o /dev/null"
        .split(' ')
        .collect();
    args.extend([
        frame_dir.as_str(),
        "--frame-local",
        script.to_str().unwrap_or_default(),
    ]);
    cluster.as_user("sbatch", &args).expect_ok("sbatch");
    // The first wave (0-7) ends on both nodes; c2 dies while the slow second wave runs there.
    let (on_c1, on_c2) = (
        backing.join("c1").join(&name),
        backing.join("c2").join(&name),
    );
    let start = Instant::now();
    while pngs(&on_c1).len() + pngs(&on_c2).len() < 8 {
        assert!(
            start.elapsed() < Duration::from_secs(90),
            "first wave never ended"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    std::thread::sleep(Duration::from_secs(1));
    cluster_script(&["kill-node", "c2"]).expect_ok("kill-node c2");
    cluster.wait_queue_empty(Duration::from_secs(180));
    assert!(
        !on_c1.join("summary.json").exists(),
        "a node merged its part"
    );
    assert!(
        !pngs(&on_c2).is_empty(),
        "c2 rendered nothing before it died"
    );

    // Not gathered yet: status says so instead of counting 24 missing.
    let st = frames(&cluster, &["status", d]);
    assert_eq!(st.code, Some(3), "{st:?}");
    assert!(st.stderr.contains("not gathered yet"), "{st:?}");

    // c2 is down during the gather, and a frame on c1 changed after its task ended.
    let changed = pngs(&on_c1).into_iter().next().expect("a frame on c1");
    let original = std::fs::read(&changed).expect("read a frame on c1");
    std::fs::write(&changed, b"not what the task wrote").expect("change a frame");
    let g = frames(&cluster, &["gather", d]);
    assert_eq!(g.code, Some(4), "{g:?}");
    assert!(g.stderr.contains("unreachable on c2"), "{g:?}");
    assert!(g.stderr.contains("checksum mismatch, not merged"), "{g:?}");
    let st = frames(&cluster, &["status", "--json", d]);
    assert!(st.stderr.contains("unreachable on c2"), "{st:?}");
    let s: serde_json::Value = serde_json::from_str(&st.stdout).expect("status json");
    assert_eq!(
        s["done"].as_u64(),
        Some(pngs(&on_c1).len() as u64 - 1),
        "{st:?}"
    );

    // c2 back, the frame as its task wrote it: the next gather brings c2's part and that frame.
    cluster_script(&["start-node", "c2"]).expect_ok("start-node c2");
    wait_healthy(&cluster);
    std::fs::write(&changed, original).expect("restore the frame");
    let g = frames(&cluster, &["gather", d]);
    assert!(g.ok(), "{g:?}");
    assert!(g.stderr.contains("c1: 1 new record(s)"), "{g:?}");
    let missing = frames(&cluster, &["missing", d]);
    assert!(
        !missing.stdout.trim().is_empty(),
        "c2's killed tasks: {missing:?}"
    );

    // Rerun what is missing (with --frame-local again), gather, and all 24 are here.
    frames(&cluster, &["resubmit", d]).expect_ok("frames resubmit");
    cluster.wait_queue_empty(Duration::from_secs(120));
    let g = frames(&cluster, &["gather", d]);
    assert!(g.ok(), "{g:?}");
    assert!(
        g.stdout
            .contains("24 expected, 24 done, 0 failed, 0 missing"),
        "{g:?}"
    );
    // A last gather transfers nothing.
    let g = frames(&cluster, &["gather", d]);
    assert!(
        g.ok() && g.stdout.contains("gathered 0 new record(s)"),
        "{g:?}"
    );
    frames(&cluster, &["status", "--check", d]).expect_ok("status --check");
    assert_eq!(pngs(&dir).len(), 24);
    let video = work.join("render.mp4");
    frames(
        &cluster,
        &["video", d, "-o", video.to_str().unwrap_or_default()],
    )
    .expect_ok("frames video");
    assert!(std::fs::metadata(&video).map(|m| m.len()).unwrap_or(0) > 0);
}

#[test]
#[ignore = "needs the test cluster with --private-dir"]
fn a_frame_dir_that_is_not_shared_is_told_not_summarized() {
    let cluster = Cluster::connect();
    let Some((private, backing)) = private(&cluster) else {
        return;
    };
    let dir = private.join(format!("unshared-{}", std::process::id()));
    let d = dir.to_str().unwrap_or_default();
    let err = cluster
        .shared_dir()
        .join(format!("unshared-{}.err", std::process::id()));
    let run = cluster.as_user(
        "sbatch",
        &[
            "--wait",
            "-p",
            "normal",
            "-w",
            "c1",
            "-o",
            err.to_str().unwrap_or_default(),
            &format!("--frame-dir={d}"),
            "--wrap",
            "echo x > \"$FRAME_PATH\"",
        ],
    );
    assert!(run.ok(), "{run:?}");
    let text = std::fs::read_to_string(&err).unwrap_or_default();
    assert!(
        text.contains("is not shared") && text.contains("--frame-local"),
        "{text}"
    );
    let part = backing.join("c1").join(dir.file_name().unwrap_or_default());
    let st = frames(&cluster, &["status", part.to_str().unwrap_or_default()]);
    assert_eq!(st.code, Some(3), "{st:?}");
    assert!(st.stderr.contains("node c1's own part"), "{st:?}");
    let g = frames(&cluster, &["gather", d]);
    assert!(g.ok() && g.stdout.contains("1 done"), "{g:?}");
}
