//! Frame dirs on node-local disks (`--frame-local`, issue 14) on a cluster brought up with
//! `cluster.sh up --private-dir PATH` (each node its own PATH, the submit host its own): an
//! array across c1 and c2, `frames status` refusing to guess before a gather, `frames gather`
//! through Slurm with c2 down (named unreachable), a frame changed on c1 (checksum mismatch:
//! reported, not merged), `missing`, `resubmit`, gather again, a last gather that brings
//! nothing new; and a non-shared --frame-dir without the option told on the job's stderr.
//!
//! On a cluster without --private-dir (the main suite's) the test prints why and passes
//! without doing anything, unless SPANK_PRIVATE_REQUIRED=1 (tests/run-all.sh's section).
use std::path::PathBuf;
use std::time::Duration;

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

#[test]
#[ignore = "needs the test cluster with --private-dir"]
fn node_local_frames_gathered_through_slurm() {
    let cluster = Cluster::connect();
    let Some((private, backing)) = private(&cluster) else {
        return;
    };
    let dir = private.join(format!("render-{}", std::process::id()));
    let d = dir.to_str().unwrap_or_default();
    let wrap = "yes \"$SLURM_ARRAY_TASK_ID\" | head -c 102400 > \"$FRAME_PATH\"";
    let run = cluster.as_user(
        "sbatch",
        &[
            "--wait",
            "-p",
            "normal",
            "-N1",
            "--array=0-11",
            "-o",
            "/dev/null",
            &format!("--frame-dir={d}"),
            "--frame-local",
            "--wrap",
            wrap,
        ],
    );
    assert!(run.ok(), "{run:?}");
    // Not gathered yet: status says so instead of counting 12 missing.
    let st = frames(&cluster, &["status", d]);
    assert_eq!(st.code, Some(3), "{st:?}");
    assert!(st.stderr.contains("not gathered yet"), "{st:?}");
    // Both nodes took part; each holds only its own records, and none merged.
    let on = |n: &str| {
        std::fs::read_dir(backing.join(n).join(dir.file_name().unwrap_or_default()))
            .map(|r| {
                r.flatten()
                    .filter(|e| e.path().extension().is_some_and(|x| x == "png"))
                    .count()
            })
            .unwrap_or(0)
    };
    let (c1, c2) = (on("c1"), on("c2"));
    assert_eq!(c1 + c2, 12, "records on c1 {c1}, c2 {c2}");
    assert!(c1 > 0 && c2 > 0, "records on c1 {c1}, c2 {c2}");
    let node_part = backing.join("c1").join(dir.file_name().unwrap_or_default());
    assert!(
        !node_part.join("summary.json").exists(),
        "a node merged its part"
    );

    // A frame changed on c1 after its task ended; c2 down.
    let changed = std::fs::read_dir(&node_part)
        .expect("c1's part")
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "png"))
        .expect("a frame on c1");
    let original = std::fs::read(&changed).expect("read a frame on c1");
    std::fs::write(&changed, b"not what the task wrote").expect("change a frame");
    let down = cluster_script(&["kill-node", "c2"]);
    assert!(down.ok(), "{down:?}");
    let run = cluster.as_root(
        "scontrol",
        &["update", "nodename=c2", "state=down", "reason=test"],
    );
    assert!(run.ok(), "{run:?}");
    let g = frames(&cluster, &["gather", d]);
    assert_eq!(g.code, Some(4), "{g:?}");
    assert!(g.stderr.contains("unreachable on c2"), "{g:?}");
    assert!(g.stderr.contains("checksum mismatch, not merged"), "{g:?}");
    let st = frames(&cluster, &["status", "--json", d]);
    assert!(st.stderr.contains("unreachable on c2"), "{st:?}");
    let s: serde_json::Value = serde_json::from_str(&st.stdout).expect("status json");
    assert_eq!(s["done"].as_u64(), Some((c1 - 1) as u64), "{st:?}");
    let miss = frames(&cluster, &["missing", d]);
    assert!(!miss.stdout.trim().is_empty(), "{miss:?}");

    // c2 back and the frame as its task wrote it: the next gather brings only what is missing.
    let up = cluster_script(&["start-node", "c2"]);
    assert!(up.ok(), "{up:?}");
    std::thread::sleep(Duration::from_secs(2));
    std::fs::write(&changed, original).expect("restore the frame");
    let g = frames(&cluster, &["gather", d]);
    assert!(g.ok(), "{g:?}");
    assert!(
        g.stderr.contains(&format!("c2: {c2} new record(s)")),
        "{g:?}"
    );
    assert!(g.stderr.contains("c1: 1 new record(s)"), "{g:?}");
    assert!(g.stdout.contains("12 done, 0 failed, 0 missing"), "{g:?}");
    // Nothing new: a last gather transfers nothing.
    let g = frames(&cluster, &["gather", d]);
    assert!(
        g.ok() && g.stdout.contains("gathered 0 new record(s)"),
        "{g:?}"
    );
    let st = frames(&cluster, &["status", "--check", d]);
    assert!(st.ok(), "{st:?}");
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
