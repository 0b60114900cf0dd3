//! `frames` and the live queue (issue 20 items 6 and 7) on the test cluster: during a running
//! array nothing running or pending is proposed for resubmission; after a node crash the
//! frames Slurm requeued are not proposed and those it lost are, with the node named, and
//! `watch` ends by itself; held and waiting jobs; another user's private dir. With accounting
//! sacct answers too; without it (`up --no-accounting`) sacct says so, and the CLI must say so too.
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use integration_tests::{Cluster, Run, cluster_script};

/// Array tasks of `job` as squeue shows them: (task, state, node).
fn tasks(cluster: &Cluster, job: &str) -> Vec<(u64, String, String)> {
    let run = cluster.as_root(
        "squeue",
        &["-h", "--array", "--states=all", "-j", job, "-o", "%K|%T|%N"],
    );
    run.lines()
        .into_iter()
        .filter_map(|l| {
            let mut f = l.split('|');
            let task = f.next()?.parse().ok()?;
            Some((task, f.next()?.to_string(), f.next()?.to_string()))
        })
        .collect()
}

fn wait_until(what: &str, limit: Duration, mut ok: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ok() {
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn records(dir: &Path) -> usize {
    integration_tests::record_texts(dir).len()
}

fn sbatch(cluster: &Cluster, args: &[&str]) -> String {
    let mut all = vec!["--parsable", "-o", "/dev/null"];
    all.extend_from_slice(args);
    cluster
        .as_user("sbatch", &all)
        .expect_ok("sbatch")
        .stdout
        .trim()
        .to_string()
}

/// `frames watch` as the test user, with no terminal, killed (by its PID) after `limit`.
fn watch(cluster: &Cluster, dir: &Path, extra: &[&str], limit: Duration) -> (Option<i32>, String) {
    use std::os::unix::process::CommandExt;
    let frames = cluster.tool("frames");
    // With the cluster's own Slurm clients (chrooted on 24.11/26.05: a 22.05 squeue cannot
    // ask a newer controller), in a process group of its own, so that a watch that does not
    // end is stopped whole at `limit` (killing runuser alone would leave frames holding the
    // output pipes).
    let mut child = cluster
        .user_command(cluster.user(), &frames)
        .arg("watch")
        .arg(dir)
        .args(["--interval", "1"])
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .expect("run frames watch");
    let start = Instant::now();
    let mut killed = false;
    loop {
        if child.try_wait().expect("wait frames").is_some() {
            break;
        }
        if start.elapsed() > limit {
            let group = format!("-{}", child.id());
            let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
            killed = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let out = child.wait_with_output().expect("frames output");
    let text = format!(
        "{}{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        if killed {
            format!("\n[frames watch still running after {limit:?}: killed]")
        } else {
            String::new()
        }
    );
    (out.status.code(), text)
}

fn frames(cluster: &Cluster, args: &[&str]) -> Run {
    cluster.as_user(&cluster.tool("frames"), args)
}

#[test]
#[ignore = "needs the test cluster: tests/run-all.sh"]
fn running_array_resubmit_dry_run_proposes_nothing_still_running_or_pending() {
    let cluster = Cluster::connect();
    let work = cluster.user_dir("queue-running");
    let dir = work.join("frames");
    let d = dir.to_str().unwrap();
    let job = sbatch(
        &cluster,
        &[
            "-p",
            "normal",
            "--array=0-39",
            &format!("--frame-dir={d}"),
            "--wrap",
            "sleep 3; echo x > \"$FRAME_PATH\"",
        ],
    );
    // Some tasks ended (their records name the array job), the rest runs or waits.
    wait_until("first records", Duration::from_secs(60), || {
        records(&dir) > 0
    });
    let before = tasks(&cluster, &job);
    let dry = frames(&cluster, &["resubmit", "--dry-run", d]);
    let active_before = before
        .iter()
        .filter(|(_, s, _)| s == "PENDING" || s == "RUNNING")
        .count();
    assert!(
        active_before > 0,
        "array ended before the check: {before:?}"
    );
    assert_eq!(dry.code, Some(3), "{dry:?}");
    assert!(
        dry.stdout.trim().is_empty(),
        "proposed during the run: {dry:?}"
    );
    // With accounting (the default) sacct answers too; without it, sacct says why not.
    let sources = if cluster.accounting() {
        "queue: squeue answered; sacct answered"
    } else {
        "queue: squeue answered; sacct: accounting storage is disabled"
    };
    assert!(dry.stderr.contains(sources), "{dry:?}");
    assert!(dry.stderr.contains("not proposed)"), "{dry:?}");
    assert!(dry.stderr.contains("nothing to resubmit yet"), "{dry:?}");
    let missing = frames(&cluster, &["missing", d]).expect_ok("frames missing");
    assert_eq!(missing.stdout.trim(), "", "{missing:?}");
    let status = frames(&cluster, &["status", d]).expect_ok("frames status");
    assert!(status.stdout.contains("slurm: "), "{status:?}");
    // watch follows the array to its end by itself.
    let (code, out) = watch(&cluster, &dir, &[], Duration::from_secs(120));
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("all 40 expected frames are done or failed"),
        "{out}"
    );
    cluster.wait_queue_empty(Duration::from_secs(60));
}

#[test]
#[ignore = "needs the test cluster: tests/run-all.sh"]
fn node_crash_lost_frames_are_named_with_the_node_and_requeued_ones_are_not_proposed() {
    let cluster = Cluster::connect();
    let work = cluster.user_dir("queue-crash");
    let (lost_dir, requeued_dir) = (work.join("lost"), work.join("requeued"));
    let (ld, rd) = (lost_dir.to_str().unwrap(), requeued_dir.to_str().unwrap());
    let frame = "echo x > \"$FRAME_PATH\"";
    // One dir, two array jobs: 0-2 on c1 (they finish), 3-4 on c2 (lost, no requeue).
    let a1 = sbatch(
        &cluster,
        &[
            "-p",
            "normal",
            "-w",
            "c1",
            "--array=0-2",
            "--no-requeue",
            &format!("--frame-dir={ld}"),
            "--wrap",
            &format!("sleep 10; {frame}"),
        ],
    );
    let a2 = sbatch(
        &cluster,
        &[
            "-p",
            "normal",
            "-w",
            "c2",
            "--array=3-4",
            "--no-requeue",
            &format!("--frame-dir={ld}"),
            "--wrap",
            &format!("sleep 300; {frame}"),
        ],
    );
    // Another dir: 0-1 on c2 with --requeue. None of its tasks ends before the crash, so no
    // record names the job: squeue links its submission.
    let b = sbatch(
        &cluster,
        &[
            "-p",
            "normal",
            "-w",
            "c2",
            "--array=0-1",
            "--requeue",
            &format!("--frame-dir={rd}"),
            "--wrap",
            &format!("sleep 300; {frame}"),
        ],
    );
    wait_until("a2 and b running on c2", Duration::from_secs(60), || {
        tasks(&cluster, &b)
            .iter()
            .filter(|(_, s, _)| s == "RUNNING")
            .count()
            == 2
            && tasks(&cluster, &a2)
                .iter()
                .filter(|(_, s, _)| s == "RUNNING")
                .count()
                == 2
    });
    let mut b_on_c2: Vec<u64> = tasks(&cluster, &b)
        .into_iter()
        .filter(|(_, s, n)| s == "RUNNING" && n == "c2")
        .map(|(t, _, _)| t)
        .collect();
    b_on_c2.sort_unstable();
    cluster_script(&["kill-node", "c2"]).expect_ok("kill-node c2");
    wait_until("a2 NODE_FAIL", Duration::from_secs(120), || {
        tasks(&cluster, &a2)
            .iter()
            .all(|(_, s, _)| s == "NODE_FAIL")
    });
    // Slurm requeued b's tasks: not missing, not proposed.
    let b_now = tasks(&cluster, &b);
    let missing = frames(&cluster, &["missing", rd]).expect_ok("frames missing (requeued)");
    let proposed: Vec<u64> = missing
        .stdout
        .trim()
        .split(',')
        .filter(|s| !s.is_empty())
        .flat_map(|r| match r.split_once('-') {
            Some((a, b)) => (a.parse().unwrap_or(0)..=b.parse().unwrap_or(0)).collect::<Vec<u64>>(),
            None => vec![r.parse().unwrap_or(u64::MAX)],
        })
        .collect();
    assert_eq!(b_on_c2, [0, 1], "b's tasks on c2 before the crash");
    for t in &b_on_c2 {
        let state = b_now.iter().find(|(i, _, _)| i == t);
        assert!(
            state.is_some_and(|(_, s, _)| s == "PENDING" || s.starts_with("REQUEUE")),
            "Slurm did not requeue {t}: {state:?}"
        );
        assert!(
            !proposed.contains(t),
            "requeued index {t} ({state:?}) proposed: {missing:?}"
        );
    }
    assert!(missing.stderr.contains("squeue answered"), "{missing:?}");
    // The lost dir: watch ends by itself once c1's tasks are done, naming c2's frames.
    let (code, out) = watch(&cluster, &lost_dir, &[], Duration::from_secs(60));
    assert_eq!(code, Some(4), "{out}");
    assert!(
        out.contains(&format!(
            "lost with node c2: {a2}_3,{a2}_4 (NODE_FAIL, not requeued)"
        )),
        "{out}"
    );
    assert!(out.contains("missing and failed: 3-4"), "{out}");
    assert!(out.contains("down"), "the node's state is shown: {out}");
    let missing = frames(&cluster, &["missing", ld]).expect_ok("frames missing (lost)");
    assert_eq!(missing.stdout.trim(), "3-4", "{missing:?}");
    let _ = a1;
    cluster_script(&["start-node", "c2"]).expect_ok("start-node c2");
    cluster.as_user("scancel", &[&b]);
    cluster.wait_queue_empty(Duration::from_secs(120));
    wait_until("c2 back", Duration::from_secs(90), || {
        cluster.unhealthy_nodes().is_empty()
    });
}

#[test]
#[ignore = "needs the test cluster: tests/run-all.sh"]
fn held_and_waiting_jobs_end_watch_with_the_reason_or_at_the_timeout() {
    let cluster = Cluster::connect();
    let work = cluster.user_dir("queue-held");
    let dir = work.join("frames");
    let d = dir.to_str().unwrap();
    // %1: one task at a time; task 0 records, then the rest is held by its user.
    let job = sbatch(
        &cluster,
        &[
            "-p",
            "normal",
            "--array=0-3%1",
            &format!("--frame-dir={d}"),
            "--wrap",
            "if [ \"$FRAME_INDEX\" = 0 ]; then echo x > \"$FRAME_PATH\"; exit 0; fi; sleep 2; echo x > \"$FRAME_PATH\"",
        ],
    );
    wait_until("task 0 recorded", Duration::from_secs(60), || {
        records(&dir) > 0
    });
    // Exits 1 because task 0 has already finished ("38_0: Job has already finished"), and
    // what else it prints differs between releases: the watch below shows that the rest is
    // held (JobHeldUser).
    cluster.as_user("scontrol", &["hold", &job]);
    let t0 = Instant::now();
    let (code, out) = watch(&cluster, &dir, &[], Duration::from_secs(60));
    assert_eq!(code, Some(4), "{out}");
    assert!(
        out.contains("pending (JobHeldUser): it will not start by itself"),
        "{out}"
    );
    assert!(
        t0.elapsed() < Duration::from_secs(20),
        "took {:?}",
        t0.elapsed()
    );
    // Released but set to begin later: it waits for a reason that passes, so watch keeps
    // watching until --timeout.
    // (Both exit 1 for the tasks that already finished, as hold did; a job still held would
    // end the watch with 4, so its exit 5 shows the release took.)
    cluster.as_user(
        "scontrol",
        &["update", &format!("JobId={job}"), "StartTime=now+3600"],
    );
    cluster.as_user("scontrol", &["release", &job]);
    let (code, out) = watch(&cluster, &dir, &["--timeout", "4"], Duration::from_secs(60));
    assert_eq!(code, Some(5), "{out}");
    assert!(out.contains("--timeout 4 s reached, slurm:"), "{out}");
    assert!(out.contains("pending"), "{out}");
    // From 24.11 on, scancel of an array some of whose tasks ended exits 1 ("Job has already
    // finished") while it cancels the rest: the queue emptying is what counts.
    cluster.as_user("scancel", &[&job]);
    cluster.wait_queue_empty(Duration::from_secs(60));
}

#[test]
#[ignore = "needs the test cluster: tests/run-all.sh"]
fn watch_on_another_users_private_dir_is_permission_denied_at_once() {
    let cluster = Cluster::connect();
    let work = cluster.user_dir("queue-private");
    let dir = work.join("frames");
    let d = dir.to_str().unwrap();
    cluster
        .as_user(
            "sbatch",
            &[
                "--wait",
                "-p",
                "normal",
                "-o",
                "/dev/null",
                &format!("--frame-dir={d}"),
                "--wrap",
                "echo x > \"$FRAME_PATH\"",
            ],
        )
        .expect_ok("sbatch --wait");
    cluster
        .as_user("chmod", &["0700", d])
        .expect_ok("chmod 0700");
    let other = cluster.var("SPANK_TEST_USER2").to_string();
    let t0 = Instant::now();
    let run = cluster.as_named_user(&other, &cluster.tool("frames"), &["watch", d]);
    assert!(
        t0.elapsed() < Duration::from_secs(10),
        "took {:?}",
        t0.elapsed()
    );
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(run.stderr.contains("permission denied"), "{run:?}");
}

#[test]
#[ignore = "needs the test cluster: tests/run-all.sh"]
fn queued_non_array_job_is_found_by_squeue_and_watch_reports_it_pending() {
    let cluster = Cluster::connect();
    let work = cluster.user_dir("queue-pending");
    let dir = work.join("frames");
    let d = dir.to_str().unwrap();
    // No task ran, so no record names the job: squeue links the submission to it.
    let job = sbatch(
        &cluster,
        &[
            "-p",
            "normal",
            "--begin=now+3600",
            &format!("--frame-dir={d}"),
            "--wrap",
            "echo x > \"$FRAME_PATH\"",
        ],
    );
    let (code, out) = watch(&cluster, &dir, &["--timeout", "3"], Duration::from_secs(60));
    assert_eq!(code, Some(5), "{out}");
    assert!(
        out.contains(&format!("job {job} (linked by squeue")),
        "{out}"
    );
    assert!(
        out.contains(&format!("job {job} pending (BeginTime)")),
        "{out}"
    );
    let missing = frames(&cluster, &["missing", d]).expect_ok("frames missing");
    assert_eq!(
        missing.stdout.trim(),
        "",
        "a pending job's work is not missing: {missing:?}"
    );
    // Held by its user: watch ends at once, saying so.
    cluster
        .as_user("scontrol", &["hold", &job])
        .expect_ok("scontrol hold");
    let (code, out) = watch(&cluster, &dir, &[], Duration::from_secs(60));
    assert_eq!(code, Some(4), "{out}");
    assert!(
        out.contains(&format!(
            "{job} pending (JobHeldUser): it will not start by itself"
        )),
        "{out}"
    );
    // From 24.11 on, scancel of an array some of whose tasks ended exits 1 ("Job has already
    // finished") while it cancels the rest: the queue emptying is what counts.
    cluster.as_user("scancel", &[&job]);
    cluster.wait_queue_empty(Duration::from_secs(60));
}

/// A sweep job that failed and was rerun by `frames resubmit` (issue 20 items 2 and 6): while
/// the rerun runs, the failed job is not proposed again; once the rerun worked, the sweep
/// point is done (the rerun stands for it) and nothing is left to propose.
#[test]
#[ignore = "needs the test cluster: tests/run-all.sh"]
fn a_rerun_sweep_job_is_not_proposed_while_it_runs_nor_after_it_worked() {
    let cluster = Cluster::connect();
    let work = cluster.user_dir("queue-rerun-job");
    let dir = work.join("frames");
    let d = dir.to_str().unwrap();
    let flag = work.join("fail-now");
    std::fs::write(&flag, "").expect("flag");
    let worker = cluster.user_script(
        &work,
        "point.sh",
        &format!(
            "#!/bin/sh\necho 'RESULT:{{\"point\":2}}'\n[ -e '{}' ] && exit 7\nsleep 10\n",
            flag.display()
        ),
    );
    let mut args = vec!["--wait", "-p", "normal", "--frame-pattern=none"];
    let frame_dir = format!("--frame-dir={d}");
    args.push(&frame_dir);
    let mut first = args.clone();
    first.push("--wrap=echo 'RESULT:{\"point\":1}'");
    sbatch(&cluster, &first);
    let mut second = args.clone();
    second.push(worker.to_str().unwrap());
    let code = cluster.as_user("sbatch", &{
        let mut a = vec!["--parsable", "-o", "/dev/null"];
        a.extend_from_slice(&second);
        a
    });
    assert_eq!(
        code.code,
        Some(7),
        "the point fails (sbatch --wait exits with its code): {code:?}"
    );
    std::fs::remove_file(&flag).expect("rm flag");
    frames(&cluster, &["resubmit", d]).expect_ok("frames resubmit");
    let dry = frames(&cluster, &["resubmit", "--dry-run", d]);
    assert_eq!(dry.code, Some(3), "proposed while its rerun runs: {dry:?}");
    assert!(dry.stdout.trim().is_empty(), "{dry:?}");
    let missing = frames(&cluster, &["missing", d]).expect_ok("frames missing");
    assert!(!missing.stdout.contains("jobs:"), "{missing:?}");
    cluster.wait_queue_empty(Duration::from_secs(60));
    let status = frames(&cluster, &["status", d, "--check", "--json"]);
    assert_eq!(status.code, Some(0), "{status:?}");
    let json: serde_json::Value = serde_json::from_str(&status.stdout).expect("json");
    assert_eq!(
        (json["expected"].as_u64(), json["done"].as_u64()),
        (Some(2), Some(2)),
        "{json}"
    );
    let replaced = json["units"]
        .as_array()
        .expect("units")
        .iter()
        .filter(|u| u["replaced_jobs"].as_array().is_some_and(|r| r.len() == 1))
        .count();
    assert_eq!(replaced, 1, "the rerun replaces the failed job: {json}");
    let dry = frames(&cluster, &["resubmit", "--dry-run", d]);
    assert_eq!(dry.code, Some(3), "{dry:?}");
    assert!(dry.stdout.trim().is_empty(), "{dry:?}");
}

/// A script that sends arrays to two frame dirs at once (same user, directory and second:
/// squeue cannot tell which job is which dir's until records name them): while they run,
/// neither dir proposes its indices for resubmission.
#[test]
#[ignore = "needs the test cluster: tests/run-all.sh"]
fn arrays_sent_to_two_dirs_at_once_are_not_proposed_while_they_run() {
    let cluster = Cluster::connect();
    let work = cluster.user_dir("queue-two-dirs");
    let (a, b) = (work.join("a"), work.join("b"));
    let script = format!(
        "sbatch -o /dev/null -p all --array=0-7%2 --frame-pattern=none --frame-dir={} --wrap 'sleep 5' && \
         sbatch -o /dev/null -p all --array=0-3 --frame-pattern=none --frame-dir={} --wrap 'sleep 5'",
        a.display(),
        b.display()
    );
    cluster
        .as_user("sh", &["-c", &script])
        .expect_ok("two sbatch");
    for dir in [&a, &b] {
        let d = dir.to_str().unwrap();
        let dry = frames(&cluster, &["resubmit", "--dry-run", d]);
        assert_eq!(dry.code, Some(3), "proposed while running: {dry:?}");
        assert!(dry.stdout.trim().is_empty(), "{dry:?}");
        assert!(dry.stderr.contains("nothing to resubmit yet"), "{dry:?}");
        let missing = frames(&cluster, &["missing", d]).expect_ok("frames missing");
        assert_eq!(missing.stdout.trim(), "", "{missing:?}");
    }
    cluster.wait_queue_empty(Duration::from_secs(120));
}

/// Part of an array scancelled (issue 20 item 6): the cancelled indices are proposed, the
/// running ones are not, and the nodes the cancelled tasks ran on are not excluded (a
/// cancel is no node failure).
#[test]
#[ignore = "needs the test cluster: tests/run-all.sh"]
fn a_partly_cancelled_array_proposes_the_cancelled_indices_on_every_node() {
    let cluster = Cluster::connect();
    let work = cluster.user_dir("queue-part-cancel");
    let dir = work.join("frames");
    let d = dir.to_str().unwrap();
    let job = sbatch(
        &cluster,
        &[
            "-p",
            "all",
            "--array=0-9",
            "--frame-pattern=none",
            &format!("--frame-dir={d}"),
            "--wrap",
            "sleep 30",
        ],
    );
    let _cancel = cluster.cancel_on_drop(&job);
    wait_until("all running", Duration::from_secs(60), || {
        let t = tasks(&cluster, &job);
        t.len() == 10 && t.iter().all(|(_, s, _)| s == "RUNNING")
    });
    cluster.as_user("scancel", &[&format!("{job}_[3-5]")]);
    // Records are appended as the tasks end, which can be before Slurm has finished them:
    // wait for both.
    wait_until(
        "cancelled tasks recorded and ended",
        Duration::from_secs(60),
        || {
            records(&dir) == 3
                && tasks(&cluster, &job)
                    .iter()
                    .filter(|(i, s, _)| {
                        (3..=5).contains(i) && (s == "RUNNING" || s == "COMPLETING")
                    })
                    .count()
                    == 0
        },
    );
    let dry = frames(&cluster, &["resubmit", "--dry-run", d]);
    assert_eq!(dry.code, Some(0), "{dry:?}");
    assert!(dry.stdout.contains("--array=3-5"), "{dry:?}");
    assert!(
        !dry.stdout.contains("--exclude"),
        "a cancel excluded a node: {dry:?}"
    );
    assert_eq!(dry.stdout.lines().count(), 1, "{dry:?}");
    cluster.as_user("scancel", &[&job]);
    cluster.wait_queue_empty(Duration::from_secs(60));
}

/// `sbatch -p typo --array=0-9 --frame-dir=D` (issue 20 item 4) and `frames resubmit` right
/// after it, before squeue has had its minute to link the submission: the refused command is
/// not replayed, and resubmit says why.
#[test]
#[ignore = "needs the test cluster: tests/run-all.sh"]
fn a_refused_sbatch_is_not_replayed_in_its_first_minute() {
    let cluster = Cluster::connect();
    let work = cluster.user_dir("queue-typo-now");
    let dir = work.join("frames");
    let d = dir.to_str().unwrap();
    // squeue's submit times have whole seconds and the link allows a second of clock skew:
    // a job the previous test sent from the same directory within that time (an array 0-9
    // too) would be linked to the refused submission (a known limit of linking by time).
    std::thread::sleep(Duration::from_secs(3));
    let refused = cluster.as_user(
        "sbatch",
        &[
            "-p",
            "typo",
            "--array=0-9",
            &format!("--frame-dir={d}"),
            "--wrap",
            "true",
        ],
    );
    assert!(!refused.ok(), "{refused:?}");
    for args in [&["resubmit", "--dry-run", d][..], &["resubmit", d][..]] {
        let run = frames(&cluster, args);
        assert_eq!(run.code, Some(3), "{run:?}");
        assert!(run.stdout.trim().is_empty(), "{run:?}");
        assert!(run.stderr.contains("not known yet"), "{run:?}");
        assert!(!run.stderr.contains("resubmitting"), "{run:?}");
    }
    let queue = cluster.as_root("squeue", &["-h", "-u", cluster.user()]);
    assert!(
        queue.stdout.trim().is_empty(),
        "a job was submitted: {queue:?}"
    );
}
