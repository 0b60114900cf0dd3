//! Slurm accounting (slurmdbd over MariaDB, tests/cluster/accounting.sh) and what reads it:
//! `frames status` after squeue has forgotten a run's jobs (MinJobAge) tells, from sacct, the
//! frames lost with a crashed node (named) and the cancelled ones, and agrees with sacct on
//! every job; without accounting it says so and judges by the records. QPU jobs: sacct counts
//! gres/qpu, and qrmi-usage (spank_qrmi's own log) and Slurm's accounting agree on who used
//! which QPU when.
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use integration_tests::qpu_site;
use integration_tests::{Cluster, Run, cluster_script};

fn wait_until(what: &str, limit: Duration, mut ok: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ok() {
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// sacct as root with the cluster's own client, times as Unix seconds.
fn sacct(cluster: &Cluster, args: &[&str]) -> Run {
    let mut cmd = match cluster.root() {
        Some(root) => {
            let mut c = Command::new("chroot");
            c.arg(root).arg("env");
            c
        }
        None => Command::new("env"),
    };
    let out = cmd
        .arg(format!("SLURM_CONF={}", cluster.var("SLURM_CONF")))
        .args(["SLURM_TIME_FORMAT=%s", "sacct"])
        .args(args)
        .output()
        .expect("run sacct");
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// sacct's allocations of `jobs`: "JobID" ("12_3", "14") → (State, NodeList).
fn sacct_jobs(cluster: &Cluster, jobs: &[&str]) -> BTreeMap<String, (String, String)> {
    let list = jobs.join(",");
    let run = sacct(
        cluster,
        &[
            "-n",
            "-X",
            "-P",
            "-j",
            &list,
            "--format=JobID,State,NodeList",
        ],
    )
    .expect_ok("sacct");
    run.lines()
        .iter()
        .filter_map(|l| {
            let f: Vec<&str> = l.split('|').collect();
            (f.len() == 3).then(|| (f[0].to_string(), (f[1].to_string(), f[2].to_string())))
        })
        .collect()
}

fn sbatch(cluster: &Cluster, args: &[&str]) -> String {
    let mut all = vec!["--parsable", "-o", "/dev/null"];
    all.extend_from_slice(args);
    let run = cluster.as_user("sbatch", &all).expect_ok("sbatch");
    run.stdout.trim().split(';').next().unwrap().to_string()
}

fn squeue_knows(cluster: &Cluster, jobs: &[&str]) -> bool {
    let run = cluster.as_root(
        "squeue",
        &[
            "-h",
            "--array",
            "--states=all",
            "-j",
            &jobs.join(","),
            "-o",
            "%i",
        ],
    );
    !run.stdout.trim().is_empty()
}

fn frames_status(cluster: &Cluster, dir: &Path, json: bool) -> Run {
    let mut args = vec!["status"];
    if json {
        args.push("--json");
    }
    args.push(dir.to_str().unwrap());
    cluster.as_user(&cluster.tool("frames"), &args)
}

/// One frame dir, four arrays: two tasks done on c1, one failing on c1, two on c2 when the
/// node crashes (--no-requeue: lost), two running on c1 when they are scancelled. Once squeue
/// has forgotten them all (MinJobAge), `frames status` reads sacct: the lost frames with their
/// node, the cancelled ones, and for every task exactly sacct's state and node list. Without
/// accounting it says sacct cannot know and judges by the records.
#[test]
#[ignore = "needs the test cluster: tests/run-all.sh"]
fn after_min_job_age_frames_status_and_sacct_agree_on_every_job() {
    let cluster = Cluster::connect();
    let work = cluster.user_dir("acct-frames");
    let dir = work.join("frames");
    let fd = format!("--frame-dir={}", dir.display());
    let frame = "echo x > \"$FRAME_PATH\"";
    let on = |node: &str, array: &str, wrap: &str| {
        sbatch(
            &cluster,
            &[
                "-p",
                "normal",
                "-w",
                node,
                &format!("--array={array}"),
                "--no-requeue",
                &fd,
                "--wrap",
                wrap,
            ],
        )
    };
    let done = on("c1", "0-1", frame);
    let failed = on("c1", "2", "exit 3");
    let lost = on("c2", "3-4", &format!("sleep 300; {frame}"));
    let cancelled = on("c1", "5-6", &format!("sleep 300; {frame}"));
    let all = [
        done.as_str(),
        failed.as_str(),
        lost.as_str(),
        cancelled.as_str(),
    ];
    let running = |job: &str| {
        cluster
            .as_root(
                "squeue",
                &["-h", "--array", "-j", job, "-t", "R", "-o", "%i"],
            )
            .lines()
            .len()
    };
    wait_until(
        "the c2 and c1 sleepers running",
        Duration::from_secs(60),
        || running(&lost) == 2 && running(&cancelled) == 2,
    );
    // A node crash: everything on c2 killed, then the node set down as an admin would (its
    // jobs end NODE_FAIL at once instead of after SlurmdTimeout).
    cluster_script(&["kill-node", "c2"]).expect_ok("kill-node c2");
    cluster
        .as_root(
            "scontrol",
            &[
                "update",
                "nodename=c2",
                "state=down",
                "reason=acct-test-crash",
            ],
        )
        .expect_ok("scontrol down c2");
    cluster.as_user("scancel", &[&cancelled]);
    cluster.wait_queue_empty(Duration::from_secs(60));
    cluster_script(&["start-node", "c2"]).expect_ok("start-node c2");
    // MinJobAge (30 s) later squeue has forgotten them.
    wait_until("squeue forgets the jobs", Duration::from_secs(120), || {
        !squeue_knows(&cluster, &all)
    });
    let uid = cluster.as_user("id", &["-u"]).stdout.trim().to_string();
    let status = frames_status(&cluster, &dir, false);
    let json: serde_json::Value = serde_json::from_str(&frames_status(&cluster, &dir, true).stdout)
        .unwrap_or_else(|e| panic!("status --json: {e}"));
    if !cluster.accounting() {
        let run = sacct(&cluster, &["-n", "-j", &done]);
        assert!(
            !run.ok() && run.stderr.contains("disabled"),
            "sacct without accounting: {run:?}"
        );
        assert!(
            status
                .stdout
                .contains("sacct: accounting storage is disabled"),
            "{status:?}"
        );
        // The lost array left no record and squeue has forgotten it: without accounting
        // nothing names it (the limit accounting lifts). The others are known by their records.
        for job in [&done, &failed, &cancelled] {
            assert!(
                status.stdout.contains(&format!(
                    "job {job}: unknown to Slurm (ended more than MinJobAge ago, no accounting)"
                )),
                "{status:?}"
            );
        }
        assert_eq!(json["queue"]["jobs"], serde_json::json!([]), "{json:#}");
        assert_eq!(json["done"], 2, "{json:#}");
        wait_until("c2 back", Duration::from_secs(90), || {
            cluster.unhealthy_nodes().is_empty()
        });
        return;
    }
    // Every task as sacct has it, and as frames has it: the same set, states, node lists.
    let slurm = sacct_jobs(&cluster, &all);
    let frames: BTreeMap<String, (String, String, String)> = json["queue"]["jobs"]
        .as_array()
        .unwrap_or_else(|| panic!("no queue.jobs: {json:#}"))
        .iter()
        .map(|j| {
            (
                j["job"].as_str().unwrap().to_string(),
                (
                    j["slurm_state"].as_str().unwrap().to_string(),
                    j["nodes"].as_str().unwrap().to_string(),
                    j["source"].as_str().unwrap().to_string(),
                ),
            )
        })
        .collect();
    assert_eq!(slurm.len(), 7, "seven tasks in sacct: {slurm:?}");
    assert_eq!(
        slurm.keys().collect::<Vec<_>>(),
        frames.keys().collect::<Vec<_>>(),
        "{json:#}"
    );
    for (job, (state, nodes)) in &slurm {
        let (f_state, f_nodes, source) = &frames[job];
        assert_eq!((f_state, f_nodes), (state, nodes), "{job}: {json:#}");
        assert_eq!(source, "sacct", "{job}: squeue had forgotten it: {json:#}");
    }
    let state_of = |job: &str| {
        json["queue"]["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|j| j["job"] == job)
            .map(|j| j["state"].as_str().unwrap().to_string())
    };
    for (task, want) in [
        (format!("{done}_0"), "completed"),
        (format!("{failed}_2"), "failed"),
        (format!("{lost}_3"), "lost"),
        (format!("{lost}_4"), "lost"),
        (format!("{cancelled}_5"), "cancelled"),
        (format!("{cancelled}_6"), "cancelled"),
    ] {
        assert_eq!(state_of(&task).as_deref(), Some(want), "{task}: {json:#}");
    }
    assert_eq!(slurm[&format!("{lost}_3")].0, "NODE_FAIL");
    assert!(status.stdout.contains("sacct answered"), "{status:?}");
    assert!(
        status.stdout.contains(&format!(
            "lost with node c2: {lost}_3,{lost}_4 (NODE_FAIL, not requeued)"
        )),
        "{status:?}"
    );
    assert!(
        status.stdout.contains(&format!(
            "cancelled: {cancelled}_5,{cancelled}_6 (CANCELLED by {uid})"
        )),
        "{status:?}"
    );
    assert!(!status.stdout.contains("unknown to Slurm"), "{status:?}");
    wait_until("c2 back", Duration::from_secs(90), || {
        cluster.unhealthy_nodes().is_empty()
    });
}

/// QPU jobs of two users on both QPUs: sacct shows gres/qpu=1 for each, and spank_qrmi's
/// accounting log (read by qrmi-usage) has, for each, one acquisition and release by that
/// user's uid on that job's node and QPU, inside the job's start and end; qrmi-usage's counts
/// per user and per QPU are sacct's.
#[test]
#[ignore = "needs the test cluster: tests/run-all.sh"]
fn qrmi_usage_and_slurm_accounting_agree_on_who_used_which_qpu_when() {
    let site = qpu_site::site();
    let cluster = &site.cluster;
    if !cluster.accounting() {
        let run = sacct(cluster, &["-n"]);
        assert!(run.stderr.contains("disabled"), "{run:?}");
        return;
    }
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let user2 = cluster.var("SPANK_TEST_USER2").to_string();
    let mut jobs: Vec<String> = Vec::new();
    for (user, gres) in [
        (cluster.user().to_string(), "qpu:ibm_torino:1"),
        (user2.clone(), "qpu:fresnel:1"),
        (user2.clone(), "qpu:ibm_torino:1"),
    ] {
        let run = cluster
            .as_named_user(
                &user,
                "sbatch",
                &[
                    "--parsable",
                    "--wait",
                    "-o",
                    "/dev/null",
                    &format!("--gres={gres}"),
                    "--wrap",
                    "sleep 2",
                ],
            )
            .expect_ok("sbatch");
        jobs.push(run.stdout.trim().to_string());
    }
    let ids: Vec<&str> = jobs.iter().map(String::as_str).collect();
    // sacct: user, uid, node, QPU count, start and end (Unix seconds), once both are recorded.
    let mut rows: Vec<Vec<String>> = Vec::new();
    wait_until(
        "sacct has the three QPU jobs ended",
        Duration::from_secs(30),
        || {
            let run = sacct(
                cluster,
                &[
                    "-n",
                    "-X",
                    "-P",
                    "-j",
                    &ids.join(","),
                    "--format=JobID,User,UID,NodeList,AllocTRES,Start,End,State",
                ],
            );
            rows = run
                .lines()
                .iter()
                .map(|l| l.split('|').map(str::to_string).collect())
                .collect();
            rows.len() == 3 && rows.iter().all(|r| r.len() == 8 && r[7] == "COMPLETED")
        },
    );
    let records: Vec<serde_json::Value> = ["q1", "q2"]
        .iter()
        .flat_map(|n| {
            std::fs::read_to_string(qpu_site::state_dir(cluster, n).join("accounting.jsonl"))
                .unwrap_or_default()
                .lines()
                .filter_map(|l| serde_json::from_str(l).ok())
                .collect::<Vec<serde_json::Value>>()
        })
        .collect();
    let mut per_user: BTreeMap<String, u64> = BTreeMap::new();
    let mut per_qpu: BTreeMap<String, u64> = BTreeMap::new();
    for r in &rows {
        let (job, uid, node, tres) = (&r[0], &r[2], &r[3], &r[4]);
        let (start, end): (u64, u64) = (r[5].parse().unwrap(), r[6].parse().unwrap());
        assert!(tres.contains("gres/qpu=1"), "sacct counts the QPU: {r:?}");
        let qpu = if node == "q1" {
            "ibm_torino"
        } else {
            "fresnel"
        };
        *per_user.entry(uid.clone()).or_default() += 1;
        *per_qpu.entry(qpu.to_string()).or_default() += 1;
        let mine: Vec<&serde_json::Value> = records
            .iter()
            .filter(|x| x["job"].as_u64().is_some_and(|j| j.to_string() == *job))
            .collect();
        let acquire = mine
            .iter()
            .find(|x| x["event"] == "acquire")
            .unwrap_or_else(|| panic!("job {job}: no acquisition in qrmi's log: {records:?}"));
        let release = mine
            .iter()
            .find(|x| x["event"] == "release")
            .unwrap_or_else(|| panic!("job {job}: no release in qrmi's log: {records:?}"));
        for x in [acquire, release] {
            assert_eq!(x["uid"].to_string(), *uid, "job {job}: {x}");
            assert_eq!(x["node"], node.as_str(), "job {job}: {x}");
            assert_eq!(x["qpu"], qpu, "job {job}: {x}");
        }
        // Slurm's times have whole seconds; qrmi's too: the hold lies inside the job.
        let acquired = acquire["time_acquired"].as_u64().unwrap();
        let released = release["time_released"].as_u64().unwrap();
        assert!(
            start <= acquired && acquired <= released && released <= end + 1,
            "job {job}: Slurm {start}..{end}, QPU held {acquired}..{released}"
        );
    }
    // qrmi-usage's report over the same span: counts per uid and per QPU are sacct's.
    let logs: Vec<String> = ["q1", "q2"]
        .iter()
        .map(|n| {
            qpu_site::state_dir(cluster, n)
                .join("accounting.jsonl")
                .display()
                .to_string()
        })
        .collect();
    let from = since.to_string();
    let mut args = vec!["--json", "--from", &from];
    args.extend(logs.iter().map(String::as_str));
    let usage = cluster
        .as_root(&cluster.tool("qrmi-usage"), &args)
        .expect_ok("qrmi-usage");
    let report: serde_json::Value = serde_json::from_str(&usage.stdout).expect("qrmi-usage --json");
    for (uid, n) in &per_user {
        assert_eq!(
            report["per_user"][uid]["count"], *n,
            "uid {uid}: {report:#}"
        );
    }
    for (qpu, n) in &per_qpu {
        assert_eq!(report["per_qpu"][qpu]["count"], *n, "{qpu}: {report:#}");
    }
    assert_eq!(
        report["per_user"].as_object().map(|m| m.len()),
        Some(per_user.len()),
        "no other user in the span: {report:#}"
    );
}
