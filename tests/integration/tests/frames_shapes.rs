//! spank_frames's recording side for the job shapes of issue 20, on the real cluster as the
//! test users run them: srun steps inside sbatch and salloc record every task on its node,
//! submissions are linked to the job Slurm made (or marked rejected), results stay as printed,
//! frame options without --frame-dir are refused, a requeue after a node crash is attempt 1,
//! and `.frames` stays private to the job's user.
use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use integration_tests::{Cluster, cluster_script, read_json, record_files};

/// The submissions stored in DIR/.frames/submissions, parsed.
fn submissions(dir: &Path) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir.join(".frames/submissions")) {
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "json") {
                out.push(read_json(&path));
            }
        }
    }
    out
}

fn uid_of(cluster: &Cluster, user: &str) -> u64 {
    let run = cluster.as_root("id", &["-u", user]);
    run.stdout.trim().parse().expect("uid")
}

fn mode_of(path: &Path) -> u32 {
    use std::os::unix::fs::MetadataExt;
    std::fs::symlink_metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .mode()
        & 0o7777
}

/// A worker that reports its rank and node, and a result whose number, key order and
/// duplicate key only survive if kept as printed.
const WORKER: &str = r#"#!/bin/sh
echo "RESULT:{\"rank\":$SLURM_PROCID,\"host\":\"$(hostname)\",\"step\":\"$SLURM_STEP_ID\"}"
echo 'RESULT:{"id":12345678901234567890123,"z":1,"a":2,"a":3}'
"#;
const AS_PRINTED: &str = r#"{"id":12345678901234567890123,"z":1,"a":2,"a":3}"#;

#[test]
#[ignore = "needs the test cluster: tests/run-all.sh"]
fn srun_inside_sbatch_records_every_task_on_its_node() {
    let cluster = Cluster::connect();
    let work = cluster.user_dir("shapes-sbatch-srun");
    let worker = cluster.user_script(&work, "worker.sh", WORKER);
    let dir = work.join("frames");
    let run = cluster
        .as_user(
            "sbatch",
            &[
                "--wait",
                "--parsable",
                "-p",
                "normal",
                "-N2",
                "-n4",
                "-o",
                "/dev/null",
                &format!("--frame-dir={}", dir.display()),
                "--frame-pattern=none",
                "--wrap",
                &format!("srun {}", worker.display()),
            ],
        )
        .expect_ok("sbatch -N2 -n4 --wrap srun worker");
    let job: u64 = run.stdout.trim().parse().expect("job id");
    let uid = uid_of(&cluster, cluster.user());
    let subs = submissions(&dir);
    assert_eq!(subs.len(), 1, "{subs:?}");
    let submission = &subs[0];
    assert_eq!(submission["uid"], uid, "{submission}");
    assert_eq!(submission["state"], "provisional", "{submission}");
    let id = submission["id"]
        .as_str()
        .expect("submission id")
        .to_string();

    let records = record_files(&dir);
    assert_eq!(
        records.len(),
        5,
        "4 task records + the batch record: {records:#?}"
    );
    for r in &records {
        assert_eq!(r["job_id"], job, "{r}");
        assert_eq!(r["uid"], uid, "{r}");
        assert_eq!(
            r["submission"],
            id.as_str(),
            "the record links the submission: {r}"
        );
        assert_eq!(r["status"], "done", "{r}");
        assert_eq!(r["version"], 2, "{r}");
    }
    let batch: Vec<_> = records.iter().filter(|r| r["step"] == "batch").collect();
    assert_eq!(batch.len(), 1, "{records:#?}");
    assert_eq!(batch[0]["job_task_count"], 4, "{}", batch[0]);
    assert_eq!(
        batch[0]["task_count"], 1,
        "a batch script is one task: {}",
        batch[0]
    );
    // The batch step's stdout carried the workers' results: they are theirs, not its own.
    assert_eq!(batch[0]["results"], serde_json::json!([]), "{}", batch[0]);
    let tasks: Vec<_> = records.iter().filter(|r| r["step"] == "0").collect();
    let ranks: BTreeSet<u64> = tasks.iter().filter_map(|r| r["task_id"].as_u64()).collect();
    assert_eq!(ranks, (0..4).collect::<BTreeSet<u64>>(), "{tasks:#?}");
    let nodes: BTreeSet<&str> = tasks.iter().filter_map(|r| r["node"].as_str()).collect();
    assert_eq!(nodes, ["c1", "c2"].into_iter().collect(), "{tasks:#?}");
    for r in &tasks {
        assert_eq!(r["task_count"], 4, "{r}");
        // The record's node is where the task ran (its own result says so).
        assert_eq!(r["results"][0]["host"], r["node"], "{r}");
        assert_eq!(r["results"][0]["rank"], r["task_id"], "{r}");
    }
    // Results as printed: in the record files and in the capture files.
    for (name, bytes) in integration_tests::record_texts(&dir) {
        if name.contains(".s0.") {
            let text = String::from_utf8_lossy(&bytes);
            assert!(text.contains(AS_PRINTED), "{name}: {text}");
        }
    }
    let captured: Vec<String> = std::fs::read_dir(dir.join(".frames/results"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".captured.jsonl"))
        .map(|e| std::fs::read_to_string(e.path()).unwrap())
        .collect();
    assert_eq!(
        captured.iter().filter(|t| t.contains(AS_PRINTED)).count(),
        5,
        "every worker's capture, and the batch step's (it sees their output): {captured:?}"
    );
    // Private state, the job's user's.
    assert_eq!(mode_of(&dir.join(".frames")), 0o700);
    assert_eq!(mode_of(&dir.join(".frames/records")), 0o700);
    cluster.assert_no_unhealthy_nodes();
}

#[test]
#[ignore = "needs the test cluster: tests/run-all.sh"]
fn srun_inside_an_array_element_records_under_the_elements_index() {
    let cluster = Cluster::connect();
    let work = cluster.user_dir("shapes-array-srun");
    let worker = cluster.user_script(
        &work,
        "worker.sh",
        "#!/bin/sh\necho \"RESULT:{\\\"index\\\":$FRAME_INDEX,\\\"rank\\\":$SLURM_PROCID}\"\nprintf x > \"$FRAME_PATH\"\n",
    );
    let dir = work.join("frames");
    cluster
        .as_user(
            "sbatch",
            &[
                "--wait",
                "-p",
                "normal",
                "--array=3-4",
                "-n2",
                "-o",
                "/dev/null",
                &format!("--frame-dir={}", dir.display()),
                "--wrap",
                &format!("srun {}", worker.display()),
            ],
        )
        .expect_ok("sbatch --array=3-4 -n2 --wrap srun worker");
    let records = record_files(&dir);
    // Per element: the batch record and two task records, all under the element's index.
    let mut keys: Vec<(u64, String, u64)> = records
        .iter()
        .map(|r| {
            (
                r["index"].as_u64().unwrap_or(99),
                r["step"].as_str().unwrap_or("?").to_string(),
                r["task_id"].as_u64().unwrap_or(99),
            )
        })
        .collect();
    keys.sort();
    let want: Vec<(u64, String, u64)> = [3, 4]
        .iter()
        .flat_map(|&i| {
            [
                (i, "0".to_string(), 0),
                (i, "0".to_string(), 1),
                (i, "batch".to_string(), 0),
            ]
        })
        .collect();
    assert_eq!(keys, want, "{records:#?}");
    for r in &records {
        assert_eq!(r["status"], "done", "{r}");
        assert_eq!(r["array_task_id"], r["index"], "{r}");
        if r["step"] == "0" {
            assert_eq!(r["results"][0]["index"], r["index"], "FRAME_INDEX: {r}");
        }
    }
}

#[test]
#[ignore = "needs the test cluster: tests/run-all.sh"]
fn salloc_steps_are_each_recorded_and_the_failing_one_says_so() {
    let cluster = Cluster::connect();
    let work = cluster.user_dir("shapes-salloc");
    let worker = cluster.user_script(&work, "worker.sh", WORKER);
    let dir = work.join("frames");
    let w = worker.display().to_string();
    cluster
        .as_user(
            "salloc",
            &[
                "-p",
                "normal",
                "-N2",
                "-n4",
                &format!("--frame-dir={}", dir.display()),
                "--frame-pattern=none",
                "bash",
                "-c",
                &format!("srun {w}; srun -n2 {w}; srun -n1 false; true"),
            ],
        )
        .expect_ok("salloc with three steps");
    let records = record_files(&dir);
    let mut by_step: Vec<(String, u64, String)> = records
        .iter()
        .map(|r| {
            (
                r["step"].as_str().unwrap_or("?").to_string(),
                r["task_id"].as_u64().unwrap_or(99),
                r["status"].as_str().unwrap_or("?").to_string(),
            )
        })
        .collect();
    by_step.sort();
    let want: Vec<(String, u64, String)> = [
        ("0", 0, "done"),
        ("0", 1, "done"),
        ("0", 2, "done"),
        ("0", 3, "done"),
        ("1", 0, "done"),
        ("1", 1, "done"),
        ("2", 0, "failed"),
    ]
    .iter()
    .map(|(s, t, st)| (s.to_string(), *t, st.to_string()))
    .collect();
    assert_eq!(by_step, want, "{records:#?}");
    let failed = records.iter().find(|r| r["step"] == "2").unwrap();
    assert_eq!(failed["reason"], "exit code 1", "{failed}");
    assert_eq!(
        records.iter().find(|r| r["step"] == "1").unwrap()["task_count"],
        2
    );
    // salloc learned its job id: the submission is accepted and names the records' job.
    let subs = submissions(&dir);
    assert_eq!(subs.len(), 1, "{subs:?}");
    assert_eq!(subs[0]["state"], "accepted", "{}", subs[0]);
    assert_eq!(subs[0]["job_id"], records[0]["job_id"], "{}", subs[0]);
    for r in &records {
        assert_eq!(r["submission"], subs[0]["id"], "{r}");
    }
    let nodes: BTreeSet<&str> = records.iter().filter_map(|r| r["node"].as_str()).collect();
    assert_eq!(nodes, ["c1", "c2"].into_iter().collect());
    cluster.assert_no_unhealthy_nodes();
}

#[test]
#[ignore = "needs the test cluster: tests/run-all.sh"]
fn rejected_submissions_are_not_accepted_work() {
    let cluster = Cluster::connect();
    let work = cluster.user_dir("shapes-rejected");
    let dir = work.join("frames");
    let frame_dir = format!("--frame-dir={}", dir.display());
    // sbatch: refused by slurmctld. sbatch never tells a plugin its job id, so the
    // submission stays provisional; no job carries its id, and Slurm knows no job of it.
    // The script also sends an accepted array of the same shape from the same directory in
    // the same second (into another frame dir), still in the queue a minute later (one task at
    // a time): squeue's whole-second submit times cannot tell the two apart, the partition
    // the typo asked for does (checked below, once squeue's minute to link has passed).
    let neighbour = work.join("neighbour");
    let run = cluster.as_user(
        "sh",
        &[
            "-c",
            &format!(
                "sbatch -p normal -J neighbour --array=0-19%1 --frame-dir={} \
                 --frame-pattern=none --wrap 'sleep 100' >/dev/null && \
                 exec sbatch -p typo --array=0-19 {frame_dir} --wrap true",
                neighbour.display()
            ),
        ],
    );
    assert!(!run.ok(), "{run:?}");
    assert!(
        run.stderr.to_lowercase().contains("invalid partition"),
        "{run:?}"
    );
    let subs = submissions(&dir);
    assert_eq!(subs.len(), 1, "{subs:?}");
    assert_eq!(subs[0]["state"], "provisional", "{}", subs[0]);
    assert_eq!(subs[0]["job_id"], serde_json::Value::Null);
    assert!(record_files(&dir).is_empty());
    // Only the neighbour's array is in the queue: nothing in partition typo.
    let queue = cluster.as_root("squeue", &["-h", "-u", cluster.user(), "-o", "%P"]);
    assert!(
        queue.stdout.lines().all(|p| p.trim() == "normal"),
        "{queue:?}"
    );
    // salloc: knows at exit that it got no allocation.
    let run = cluster.as_user("salloc", &["-p", "typo", &frame_dir, "true"]);
    assert!(!run.ok(), "{run:?}");
    let subs = submissions(&dir);
    let salloc: Vec<_> = subs
        .iter()
        .filter(|s| s["argv"][0].as_str().is_some_and(|a| a.ends_with("salloc")))
        .collect();
    assert_eq!(salloc.len(), 1, "{subs:?}");
    assert_eq!(salloc[0]["state"], "rejected", "{}", salloc[0]);
    assert!(
        salloc[0]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("without an allocation")),
        "{}",
        salloc[0]
    );
    // srun: writes its submission only once it has a job.
    let run = cluster.as_user("srun", &["-p", "typo", &frame_dir, "true"]);
    assert!(!run.ok(), "{run:?}");
    assert_eq!(submissions(&dir).len(), 2, "{:?}", submissions(&dir));
    // An accepted srun: accepted, with its job id.
    let ok_dir = work.join("ok");
    cluster
        .as_user(
            "srun",
            &[
                "-p",
                "normal",
                &format!("--frame-dir={}", ok_dir.display()),
                "--frame-pattern=none",
                "true",
            ],
        )
        .expect_ok("srun");
    let subs = submissions(&ok_dir);
    assert_eq!(subs.len(), 1, "{subs:?}");
    assert_eq!(subs[0]["state"], "accepted");
    assert_eq!(subs[0]["job_id"], record_files(&ok_dir)[0]["job_id"]);
    // The reading side, in the dir of the refused sbatch: a good array beside it is all the
    // expected work once squeue has had its chance to link the refused one (the CLI waits
    // 60 s after a submission before it calls it refused), and nothing replays the typo.
    let started = Instant::now();
    cluster
        .as_user(
            "sbatch",
            &[
                "--wait",
                "-p",
                "normal",
                "--array=0-1",
                &frame_dir,
                "--frame-pattern=none",
                "--wrap",
                "true",
            ],
        )
        .expect_ok("sbatch --wait");
    std::thread::sleep(Duration::from_secs(62).saturating_sub(started.elapsed()));
    // The neighbour's array is still in the queue, so squeue offers it as a candidate.
    let listed = cluster.as_root("squeue", &["-h", "-u", cluster.user(), "-n", "neighbour"]);
    assert!(!listed.stdout.trim().is_empty(), "{listed:?}");
    let frames = cluster.tool("frames");
    let dir_arg = dir.display().to_string();
    let status = cluster.as_user(&frames, &["status", "--json", &dir_arg]);
    assert!(status.ok(), "{status:?}");
    let v: serde_json::Value = serde_json::from_str(&status.stdout).expect("status --json");
    assert_eq!(
        (&v["expected"], &v["done"], &v["missing"]),
        (&2.into(), &2.into(), &0.into()),
        "{v}"
    );
    let text = cluster.as_user(&frames, &["status", &dir_arg]);
    assert!(
        text.stdout.contains("no job came of it") && text.stdout.contains("-p typo"),
        "the refused submission is named, not hidden: {text:?}"
    );
    let missing = cluster.as_user(&frames, &["missing", &dir_arg]);
    assert_eq!(missing.stdout.trim(), "", "{missing:?}");
    let resubmit = cluster.as_user(&frames, &["resubmit", "--dry-run", &dir_arg]);
    assert!(!resubmit.stdout.contains("typo"), "{resubmit:?}");
    cluster
        .as_user("scancel", &["-n", "neighbour"])
        .expect_ok("scancel the neighbour array");
    cluster.wait_queue_empty(Duration::from_secs(60));
}

#[test]
#[ignore = "needs the test cluster: tests/run-all.sh"]
fn frame_options_without_frame_dir_are_refused_before_queueing() {
    let cluster = Cluster::connect();
    for (program, args) in [
        (
            "sbatch",
            vec!["-p", "normal", "--frame-t0=5", "--wrap", "true"],
        ),
        (
            "srun",
            vec!["-p", "normal", "--frame-pattern=f_%04d.exr", "true"],
        ),
        ("salloc", vec!["-p", "normal", "--result-prefix=R:", "true"]),
    ] {
        let run = cluster.as_user(program, &args);
        assert!(!run.ok(), "{program}: {run:?}");
        assert!(
            run.stderr.contains("no effect without --frame-dir"),
            "{program}: {run:?}"
        );
    }
    let queue = cluster.as_root("squeue", &["-h", "-u", cluster.user()]);
    assert_eq!(queue.stdout.trim(), "", "nothing was queued: {queue:?}");
    cluster.assert_no_unhealthy_nodes();
}

#[test]
#[ignore = "needs the test cluster: tests/run-all.sh"]
fn another_users_frame_state_is_refused_and_never_written() {
    let cluster = Cluster::connect();
    let user2 = cluster.var("SPANK_TEST_USER2").to_string();
    let uid2 = uid_of(&cluster, &user2);
    // A team share both users may write (user 2's files from an earlier run are removed as
    // root first: the test user cannot).
    let _ = cluster.as_root(
        "rm",
        &[
            "-rf",
            cluster.shared_dir().join("shapes-team").to_str().unwrap(),
        ],
    );
    let team = cluster.user_dir("shapes-team");
    assert!(
        cluster
            .as_user("chmod", &["0777", team.to_str().unwrap()])
            .ok()
    );
    let dir = team.join("frames");
    assert!(
        cluster
            .as_user("mkdir", &["-m", "0777", dir.to_str().unwrap()])
            .ok()
    );
    let frame_dir = format!("--frame-dir={}", dir.display());
    // user2 gets there first: their .frames is 0700 and theirs.
    cluster
        .as_named_user(
            &user2,
            "srun",
            &["-p", "normal", &frame_dir, "--frame-pattern=none", "true"],
        )
        .expect_ok("user2 srun");
    assert_eq!(mode_of(&dir.join(".frames")), 0o700);
    // The test user is refused at submission, with the reason.
    let run = cluster.as_user("sbatch", &["-p", "normal", &frame_dir, "--wrap", "true"]);
    assert!(!run.ok(), "{run:?}");
    assert!(
        run.stderr
            .contains(&format!(".frames is owned by uid {uid2}, not by you")),
        "{run:?}"
    );
    // At run time: the test user's job is held while user2 renames the owner's .frames away
    // and plants their own (open to all); the task refuses it and writes nothing there.
    // The frame dirs themselves are team-writable, as in a shared project dir.
    for sub in ["own", "own2"] {
        let path = team.join(sub);
        assert!(
            cluster
                .as_user("mkdir", &["-m", "0777", path.to_str().unwrap()])
                .ok()
        );
    }
    let own = team.join("own");
    let own_dir = format!("--frame-dir={}", own.display());
    let out = team.join("held.out");
    let run = cluster
        .as_user(
            "sbatch",
            &[
                "--parsable",
                "--hold",
                "-p",
                "normal",
                "-o",
                out.to_str().unwrap(),
                &own_dir,
                "--frame-pattern=none",
                "--wrap",
                "echo RESULT:1",
            ],
        )
        .expect_ok("sbatch --hold");
    let job = run.stdout.trim().to_string();
    let planted = own.join(".frames");
    let script = format!(
        "mv '{0}' '{0}.away' && mkdir -m 0777 '{0}' '{0}/records' '{0}/results' '{0}/submissions' && chmod 0777 '{0}/records' '{0}/results' '{0}/submissions'",
        planted.display()
    );
    cluster
        .as_named_user(&user2, "sh", &["-c", &script])
        .expect_ok("user2 plants .frames");
    cluster
        .as_user("scontrol", &["release", &job])
        .expect_ok("release");
    cluster.wait_queue_empty(Duration::from_secs(60));
    let text = std::fs::read_to_string(&out).unwrap_or_default();
    assert!(
        text.contains("spank_frames: --frame-dir: cannot use")
            && text.contains(&format!("is owned by uid {uid2}")),
        "the task says why on the job's stderr: {text:?}"
    );
    assert!(!text.contains("RESULT:1"), "the task did not run: {text:?}");
    for sub in ["records", "results", "submissions"] {
        let n = std::fs::read_dir(planted.join(sub))
            .map(|d| d.count())
            .unwrap_or(0);
        assert_eq!(n, 0, "nothing written into user2's planted {sub}");
    }
    // A planted symlink instead: refused at run time as well, never followed.
    let run = cluster
        .as_user(
            "sbatch",
            &[
                "--parsable",
                "--hold",
                "-p",
                "normal",
                "-o",
                out.to_str().unwrap(),
                &format!("--frame-dir={}", team.join("own2").display()),
                "--frame-pattern=none",
                "--wrap",
                "true",
            ],
        )
        .expect_ok("sbatch --hold 2");
    let job = run.stdout.trim().to_string();
    let target = team.join("user2-target");
    let link = team.join("own2/.frames");
    let script = format!(
        "mkdir -m 0777 '{t}' && mv '{l}' '{l}.away' && ln -s '{t}' '{l}'",
        t = target.display(),
        l = link.display()
    );
    cluster
        .as_named_user(&user2, "sh", &["-c", &script])
        .expect_ok("user2 plants a symlink");
    cluster
        .as_user("scontrol", &["release", &job])
        .expect_ok("release 2");
    cluster.wait_queue_empty(Duration::from_secs(60));
    let text = std::fs::read_to_string(&out).unwrap_or_default();
    assert!(text.contains("symlink"), "{text:?}");
    assert_eq!(
        std::fs::read_dir(&target).map(|d| d.count()).unwrap_or(0),
        0
    );
    cluster.assert_no_unhealthy_nodes();
}

#[test]
#[ignore = "needs the test cluster: tests/run-all.sh"]
fn requeue_after_a_node_crash_is_the_next_attempt() {
    let cluster = Cluster::connect();
    let work = cluster.user_dir("shapes-node-requeue");
    let script = cluster.user_script(
        &work,
        "job.sh",
        "#!/bin/sh\necho \"RESULT:{\\\"attempt\\\":$FRAME_ATTEMPT,\\\"restarts\\\":${SLURM_RESTART_COUNT:-0}}\"\nif [ \"$FRAME_ATTEMPT\" = 0 ]; then exec sleep 300; fi\nprintf 'frame\\n' > \"$FRAME_PATH\"\n",
    );
    let dir = work.join("frames");
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
                &format!("--frame-dir={}", dir.display()),
                script.to_str().unwrap(),
            ],
        )
        .expect_ok("sbatch --requeue");
    let job = run.stdout.trim().to_string();
    let deadline = Instant::now() + Duration::from_secs(60);
    let node = loop {
        let state = cluster.as_root("squeue", &["-h", "-j", &job, "-o", "%T %N"]);
        let text = state.stdout.trim().to_string();
        if let Some(node) = text.strip_prefix("RUNNING ") {
            break node.to_string();
        }
        assert!(Instant::now() < deadline, "job {job} never ran: {state:?}");
        std::thread::sleep(Duration::from_millis(300));
    };
    std::thread::sleep(Duration::from_secs(2));
    cluster_script(&["kill-node", &node]).expect_ok("kill-node");
    // slurmctld declares the node down (SlurmdTimeout), requeues the job, which runs again
    // on the other node once Slurm's requeue hold has passed.
    let outcome = std::panic::catch_unwind(|| cluster.wait_queue_empty(Duration::from_secs(400)));
    cluster_script(&["start-node", &node]).expect_ok("start-node");
    outcome.expect("the requeued job ended");
    let records = record_files(&dir);
    assert_eq!(
        records.len(),
        1,
        "the crashed attempt left no record: {records:#?}"
    );
    let r = &records[0];
    assert_eq!(r["attempt"], 1, "{r}");
    assert_eq!(r["status"], "done", "{r}");
    assert_eq!(r["results"][0]["attempt"], 1, "FRAME_ATTEMPT: {r}");
    assert_eq!(r["results"][0]["restarts"], 1, "SLURM_RESTART_COUNT: {r}");
    assert!(
        integration_tests::record_texts(&dir)
            .iter()
            .any(|(name, _)| name.contains(".a1.")),
        "the record's name carries a1"
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    while !cluster.unhealthy_nodes().is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(500));
    }
    cluster.assert_no_unhealthy_nodes();
}
