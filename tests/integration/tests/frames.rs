//! spank_frames on the real cluster, as the unprivileged test user: frame routing for job
//! arrays across nodes, records of every ending, the finisher's merge, byte-identical output,
//! attacks on the frame directory, a node crash mid-array and `frames resubmit`.
use std::time::Duration;

use integration_tests::{Cluster, cluster_script, read_json, record_files};

const RENDER: &str = r#"#!/bin/sh
printf 'frame %s at t=%s\n' "$FRAME_INDEX" "$FRAME_TIME" > "$FRAME_PATH"
echo "RESULT:{\"index\":$FRAME_INDEX,\"host\":\"$(hostname)\"}"
"#;

#[test]
#[ignore = "needs the test cluster: tests/run-all.sh"]
fn array_of_100_frames_on_two_nodes_is_recorded_and_merged_once() {
    let cluster = Cluster::connect();
    let work = cluster.user_dir("frames-array");
    let script = cluster.user_script(&work, "render.sh", RENDER);
    let dir = work.join("frames");
    let frame_dir = format!("--frame-dir={}", dir.display());
    cluster
        .as_user(
            "sbatch",
            &[
                "--wait",
                "-p",
                "normal",
                "--array=0-99",
                "-o",
                "/dev/null",
                &frame_dir,
                "--frame-t0=0",
                "--frame-dt=0.5",
                script.to_str().unwrap(),
            ],
        )
        .expect_ok("sbatch array");
    let frame = std::fs::read_to_string(dir.join("frame_0042.png")).expect("frame 42");
    assert_eq!(frame, "frame 42 at t=21\n");
    let records = record_files(&dir);
    assert_eq!(records.len(), 100);
    let summary = read_json(&dir.join("summary.json"));
    assert_eq!(summary["done"], 100, "{summary}");
    assert_eq!(summary["missing"], 0, "{summary}");
    let manifest = std::fs::read_to_string(dir.join("manifest.jsonl")).expect("manifest");
    assert_eq!(manifest.lines().count(), 100);
    // Both nodes did work, and each record names its node and carries the task's result.
    let hosts: std::collections::BTreeSet<String> = records
        .iter()
        .map(|r| r["node"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(hosts, ["c1", "c2"].iter().map(|s| s.to_string()).collect());
    for record in &records {
        assert_eq!(record["results"][0]["host"], record["node"], "{record}");
        assert_eq!(record["results"][0]["index"], record["index"], "{record}");
        assert_eq!(record["status"], "done");
        // The BLAKE3 of the frame as it is on disk; SHA-256 only with --frame-sha256.
        let frame = std::fs::read(record["frame_path"].as_str().unwrap_or("")).unwrap_or_default();
        assert_eq!(
            record["frame_blake3"].as_str(),
            Some(blake3::hash(&frame).to_hex().as_str()),
            "{record}"
        );
        assert!(record["frame_sha256"].is_null(), "{record}");
    }
    // Exactly one finisher merged.
    let finish_markers = std::fs::read_dir(dir.join(".frames"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("finish."))
        .count();
    assert_eq!(finish_markers, 1);
    // The CLI's re-merge gives the same manifest.
    cluster
        .as_user(&cluster.tool("frames"), &["collect", dir.to_str().unwrap()])
        .expect_ok("frames collect");
    assert_eq!(
        std::fs::read_to_string(dir.join("manifest.jsonl")).unwrap(),
        manifest
    );
    cluster.assert_no_unhealthy_nodes();
}

/// `--frame-sha256` (a flag: sbatch's own parsing of the line must not take the script for
/// its value) reaches every task: each record has the SHA-256 sha256sum prints, beside BLAKE3.
#[test]
#[ignore = "needs the test cluster: tests/run-all.sh"]
fn frame_sha256_flag_adds_sha256_to_every_record() {
    let cluster = Cluster::connect();
    let work = cluster.user_dir("frames-sha256");
    let script = cluster.user_script(&work, "render.sh", RENDER);
    let dir = work.join("frames");
    let frame_dir = format!("--frame-dir={}", dir.display());
    cluster
        .as_user(
            "sbatch",
            &[
                "--wait",
                "-p",
                "normal",
                "--array=0-3",
                "-o",
                "/dev/null",
                &frame_dir,
                "--frame-sha256",
                script.to_str().unwrap(),
            ],
        )
        .expect_ok("sbatch --frame-sha256");
    let records = record_files(&dir);
    assert_eq!(records.len(), 4);
    for record in &records {
        let path = record["frame_path"].as_str().unwrap_or("");
        let sum = cluster.as_root("sha256sum", &[path]).expect_ok("sha256sum");
        assert_eq!(
            record["frame_sha256"].as_str(),
            sum.stdout.split_whitespace().next(),
            "{record}"
        );
        assert!(
            record["frame_blake3"]
                .as_str()
                .is_some_and(|h| h.len() == 64),
            "{record}"
        );
    }
    let summary = read_json(&dir.join("summary.json"));
    assert_eq!(summary["done"], 4, "{summary}");
}

#[test]
#[ignore = "needs the test cluster: tests/run-all.sh"]
fn exit_codes_signals_and_bad_results_are_recorded() {
    let cluster = Cluster::connect();
    let work = cluster.user_dir("frames-failures");
    let script = cluster.user_script(
        &work,
        "job.sh",
        r#"#!/bin/sh
case "$FRAME_INDEX" in
  0) printf x > "$FRAME_PATH"; exit 3 ;;
  1) printf x > "$FRAME_PATH"; kill -9 $$ ;;
  2) printf x > "$FRAME_PATH"; echo 'RESULT:{not json'; echo 'RESULT:[1,2]' ;;
  3) echo "no frame written" ;;
esac
"#,
    );
    let dir = work.join("frames");
    let run = cluster.as_user(
        "sbatch",
        &[
            "--wait",
            "-p",
            "normal",
            "--array=0-3",
            "-o",
            "/dev/null",
            &format!("--frame-dir={}", dir.display()),
            script.to_str().unwrap(),
        ],
    );
    assert!(
        !run.ok(),
        "an array with failing tasks must report failure: {run:?}"
    );
    let records = record_files(&dir);
    let by_index = |i: u64| {
        records
            .iter()
            .find(|r| r["index"] == i)
            .unwrap_or_else(|| panic!("no record {i}: {records:?}"))
            .clone()
    };
    assert_eq!(by_index(0)["exit_code"], 3);
    assert_eq!(by_index(0)["status"], "failed");
    assert_eq!(by_index(1)["signal"], 9);
    let two = by_index(2);
    assert_eq!(two["status"], "done");
    assert_eq!(two["results"], serde_json::json!([[1, 2]]));
    assert_eq!(two["result_errors"][0]["line"], "RESULT:{not json");
    assert!(
        by_index(3)["reason"]
            .as_str()
            .unwrap_or("")
            .contains("missing")
    );
    let summary = read_json(&dir.join("summary.json"));
    assert_eq!(summary["failed"], 3, "{summary}");
    cluster.assert_no_unhealthy_nodes();
}

#[test]
#[ignore = "needs the test cluster: tests/run-all.sh"]
fn batch_output_is_byte_identical_with_and_without_the_plugin() {
    let cluster = Cluster::connect();
    let work = cluster.user_dir("frames-bytes");
    let script = cluster.user_script(
        &work,
        "job.sh",
        r#"#!/bin/bash
for i in $(seq 1 200); do
  echo "out $i"
  echo "err $i" >&2
  if [ $((i % 50)) -eq 0 ]; then printf 'RESULT:{"i":%d}\n' "$i"; fi
done
printf 'binary\001\002\377 and no newline'
printf x > "${FRAME_PATH:-/dev/null}"
"#,
    );
    let plain = work.join("plain.out");
    let routed = work.join("routed.out");
    cluster
        .as_user(
            "sbatch",
            &[
                "--wait",
                "-p",
                "normal",
                "-o",
                plain.to_str().unwrap(),
                script.to_str().unwrap(),
            ],
        )
        .expect_ok("sbatch plain");
    cluster
        .as_user(
            "sbatch",
            &[
                "--wait",
                "-p",
                "normal",
                "-o",
                routed.to_str().unwrap(),
                &format!("--frame-dir={}", work.join("frames").display()),
                script.to_str().unwrap(),
            ],
        )
        .expect_ok("sbatch with --frame-dir");
    let plain = std::fs::read(&plain).unwrap();
    let routed = std::fs::read(&routed).unwrap();
    assert!(plain.len() > 2000);
    assert!(
        plain == routed,
        "outputs differ:\n{}\n---\n{}",
        String::from_utf8_lossy(&plain),
        String::from_utf8_lossy(&routed)
    );
    let records = record_files(&work.join("frames"));
    assert_eq!(records.len(), 1);
    assert_eq!(records[0]["results"].as_array().map(Vec::len), Some(4));
}

#[test]
#[ignore = "needs the test cluster: tests/run-all.sh"]
fn srun_job_tasks_get_their_own_frames() {
    let cluster = Cluster::connect();
    let work = cluster.user_dir("frames-srun");
    let dir = work.join("frames");
    let run = cluster
        .as_user(
            "srun",
            &[
                "-p",
                "normal",
                "-N2",
                "-n4",
                &format!("--frame-dir={}", dir.display()),
                "--frame-pattern=none",
                "sh",
                "-c",
                "echo \"RESULT:{\\\"task\\\":$FRAME_INDEX}\"",
            ],
        )
        .expect_ok("srun");
    assert_eq!(
        run.stdout
            .lines()
            .filter(|l| l.starts_with("RESULT:"))
            .count(),
        4,
        "{run:?}"
    );
    // The job is the unit of work (issue 20): one done unit of 4 task records, one per task.
    let summary = read_json(&dir.join("summary.json"));
    assert_eq!(
        (&summary["expected"], &summary["done"]),
        (&1.into(), &1.into()),
        "{summary}"
    );
    let manifest = std::fs::read_to_string(dir.join("manifest.jsonl")).expect("manifest");
    let tasks: std::collections::BTreeSet<String> = manifest
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["task_id"].to_string())
        .collect();
    assert_eq!(tasks.len(), 4, "{manifest}");
}

#[test]
#[ignore = "needs the test cluster: tests/run-all.sh"]
fn another_users_directory_is_refused_at_submission() {
    let cluster = Cluster::connect();
    let private = cluster.user_dir("frames-private");
    assert!(
        cluster
            .as_user("chmod", &["0700", private.to_str().unwrap()])
            .ok()
    );
    let target = private.join("stolen");
    let user2 = cluster.var("SPANK_TEST_USER2").to_string();
    let run = cluster.as_named_user(
        &user2,
        "sbatch",
        &[
            &format!("--frame-dir={}", target.display()),
            "--wrap",
            "true",
        ],
    );
    assert!(!run.ok(), "{run:?}");
    assert!(run.stderr.contains("--frame-dir: cannot create"), "{run:?}");
    assert!(!target.exists());
}

#[test]
#[ignore = "needs the test cluster: tests/run-all.sh"]
fn planted_symlinks_never_lead_root_writes_elsewhere() {
    let cluster = Cluster::connect();
    let work = cluster.user_dir("frames-symlink");
    // At submission: .frames is a symlink to a root-owned directory.
    let dir = work.join("planted");
    assert!(
        cluster
            .as_user("mkdir", &["-p", dir.to_str().unwrap()])
            .ok()
    );
    assert!(
        cluster
            .as_user("ln", &["-s", "/etc", dir.join(".frames").to_str().unwrap()])
            .ok()
    );
    let run = cluster.as_user(
        "sbatch",
        &[&format!("--frame-dir={}", dir.display()), "--wrap", "true"],
    );
    assert!(!run.ok(), "{run:?}");
    assert!(
        run.stderr.contains("symlink") || run.stderr.contains("symbolic link"),
        "{run:?}"
    );
    // At run time: the job itself swaps the records directory for a link to a root-only dir
    // after the checks; the record write runs as the user, so it fails instead of writing there.
    let target = cluster
        .scratch()
        .join(format!("root-owned-{}", std::process::id()));
    std::fs::create_dir_all(&target).expect("root-owned dir");
    let before = std::fs::read_dir(&target).map(|d| d.count()).unwrap_or(0);
    let script = cluster.user_script(
        &work,
        "swap.sh",
        &format!(
            "#!/bin/sh\nrm -rf \"$FRAME_DIR/.frames/records\" && ln -s {} \"$FRAME_DIR/.frames/records\"\n",
            target.display()
        ),
    );
    let dir2 = work.join("swapped");
    cluster
        .as_user(
            "sbatch",
            &[
                "--wait",
                "-p",
                "normal",
                "-o",
                "/dev/null",
                &format!("--frame-dir={}", dir2.display()),
                "--frame-pattern=none",
                script.to_str().unwrap(),
            ],
        )
        .expect_ok("sbatch swap");
    let after = std::fs::read_dir(&target).map(|d| d.count()).unwrap_or(0);
    assert_eq!(
        before,
        after,
        "something was written into {}",
        target.display()
    );
    cluster.assert_no_unhealthy_nodes();
}

#[test]
#[ignore = "needs the test cluster: tests/run-all.sh"]
fn node_crash_mid_array_leaves_missing_frames_that_resubmit_completes() {
    let cluster = Cluster::connect();
    let work = cluster.user_dir("frames-crash");
    let script = cluster.user_script(
        &work,
        "slow.sh",
        "#!/bin/sh\nsleep 3\nprintf 'frame %s\\n' \"$FRAME_INDEX\" > \"$FRAME_PATH\"\n",
    );
    let dir = work.join("frames");
    let run = cluster
        .as_user(
            "sbatch",
            &[
                "--parsable",
                "-p",
                "normal",
                "--array=0-15",
                "--no-requeue",
                "-o",
                "/dev/null",
                &format!("--frame-dir={}", dir.display()),
                script.to_str().unwrap(),
            ],
        )
        .expect_ok("sbatch");
    let _job = run.stdout.trim().to_string();
    std::thread::sleep(Duration::from_millis(1500));
    cluster_script(&["kill-node", "c2"]).expect_ok("kill-node c2");
    cluster.wait_queue_empty(Duration::from_secs(120));
    cluster_script(&["start-node", "c2"]).expect_ok("start-node c2");
    let frames = cluster.tool("frames");
    let missing = cluster.as_user(&frames, &["missing", dir.to_str().unwrap()]);
    assert!(
        !missing.stdout.trim().is_empty(),
        "c2's frames should be missing: {missing:?}"
    );
    cluster
        .as_user(&frames, &["resubmit", dir.to_str().unwrap()])
        .expect_ok("frames resubmit");
    cluster.wait_queue_empty(Duration::from_secs(120));
    let status = cluster
        .as_user(&frames, &["status", "--json", dir.to_str().unwrap()])
        .expect_ok("frames status");
    let summary: serde_json::Value = serde_json::from_str(&status.stdout).expect("status --json");
    assert_eq!(summary["done"], 16, "{summary}");
    assert_eq!(summary["missing"], 0, "{summary}");
    // Wait for c2 to be back before other tests run.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !cluster.unhealthy_nodes().is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(500));
    }
    cluster.assert_no_unhealthy_nodes();
}

#[test]
#[ignore = "needs the test cluster: tests/run-all.sh"]
fn time_limit_and_requeue_are_recorded_per_attempt() {
    let cluster = Cluster::connect();
    let work = cluster.user_dir("frames-limits");
    // Attempt 0 runs until it is stopped (time limit or requeue); a later attempt finishes.
    // `exec`: the task itself is what Slurm signals. With a shell waiting on `sleep`, Slurm
    // 24.11 signalled the sleep first and the shell went on to write the frame (exit 0).
    let script = cluster.user_script(
        &work,
        "job.sh",
        "#!/bin/sh\nif [ \"$FRAME_ATTEMPT\" = 0 ]; then exec sleep 300; fi\nprintf 'frame %s\\n' \"$FRAME_INDEX\" > \"$FRAME_PATH\"\n",
    );
    let timed = work.join("timed");
    let run = cluster
        .as_user(
            "sbatch",
            &[
                "--parsable",
                "-p",
                "normal",
                "--time=1",
                "--no-requeue",
                "-o",
                "/dev/null",
                &format!("--frame-dir={}", timed.display()),
                script.to_str().unwrap(),
            ],
        )
        .expect_ok("sbatch --time=1");
    let timed_job = run.stdout.trim().to_string();
    let requeued = work.join("requeued");
    let run = cluster
        .as_user(
            "sbatch",
            &[
                "--parsable",
                "-p",
                "normal",
                "--requeue",
                "-o",
                "/dev/null",
                &format!("--frame-dir={}", requeued.display()),
                script.to_str().unwrap(),
            ],
        )
        .expect_ok("sbatch --requeue");
    let requeued_job = run.stdout.trim().to_string();
    // Requeue once it runs.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let state = cluster.as_root("squeue", &["-h", "-j", &requeued_job, "-o", "%T"]);
        if state.stdout.trim() == "RUNNING" {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "job {requeued_job} never ran: {state:?}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    std::thread::sleep(Duration::from_secs(1));
    cluster
        .as_root("scontrol", &["requeue", &requeued_job])
        .expect_ok("scontrol requeue");
    // Slurm holds a requeued batch job for about two minutes before it runs again.
    cluster.wait_queue_empty(Duration::from_secs(400));

    // The time limit: Slurm signals the task; the record says so.
    let records = record_files(&timed);
    assert_eq!(records.len(), 1, "{timed_job}: {records:?}");
    assert_eq!(records[0]["status"], "failed");
    assert!(records[0]["signal"].as_i64().is_some(), "{}", records[0]);
    // The requeue: attempt 0 killed, attempt 1 done; the summary counts the frame done.
    let mut attempts: Vec<(i64, String)> = record_files(&requeued)
        .iter()
        .map(|r| {
            (
                r["attempt"].as_i64().unwrap_or(-1),
                r["status"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    attempts.sort();
    assert_eq!(
        attempts,
        vec![(0, "failed".to_string()), (1, "done".to_string())]
    );
    let summary = read_json(&requeued.join("summary.json"));
    assert_eq!(summary["done"], 1, "{summary}");
    cluster.assert_no_unhealthy_nodes();
}
