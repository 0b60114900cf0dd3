//! Controller failover on a cluster brought up with `cluster.sh up --backup-ctl` (a primary
//! and a backup slurmctld sharing one StateSaveLocation): the primary is stopped in the middle
//! of a frame array and of a running QPU job; the backup takes over; every task record is
//! written, the array's merge completes once, every QPU session is released and no lease is
//! left. Then the primary returns, takes control back, and nothing changes.
//!
//! On a cluster without a backup controller (the main suite's) the test prints why and
//! passes without doing anything, unless SPANK_FAILOVER_REQUIRED=1 (tests/run-all.sh's
//! failover section), where a missing backup fails it.
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use integration_tests::controllers;
use integration_tests::qpu_site::held_leases;
use integration_tests::{Cluster, read_json, record_files};
use spank_test_support::mock_server::MockServer;

/// Array tasks; with 4 CPUs on each of c1 and c2 they run in three waves.
const TASKS: u64 = 24;

fn finish_markers(dir: &Path) -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(dir.join(".frames"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("finish."))
        .collect();
    out.sort();
    out
}

/// The mock warden on the bridge address and the cluster's qrmi_config.json naming it.
fn mock_warden(cluster: &Cluster) -> MockServer {
    let server = MockServer::start_on(cluster.var("SPANK_BRIDGE_ADDR"));
    let etc = cluster.scratch().join("etc");
    std::fs::create_dir_all(&etc).expect("create etc");
    let config = serde_json::json!({"resources": [
        {"name": "fresnel", "type": "pasqal-local", "environment": {
            "QRMI_WARDEN_URL": format!("{}/warden", server.base)}}
    ]});
    let path = etc.join("qrmi_config.json");
    std::fs::write(&path, config.to_string()).expect("write qrmi_config.json");
    let run = cluster.as_root("chmod", &["0600", path.to_str().unwrap_or("")]);
    assert!(run.ok(), "{run:?}");
    server
}

fn count(server: &MockServer, method: &str, prefix: &str) -> usize {
    server
        .requests()
        .iter()
        .filter(|r| r.method == method && r.target.starts_with(prefix))
        .count()
}

fn submit(cluster: &Cluster, args: &[&str]) -> String {
    let mut all = vec!["--parsable"];
    all.extend_from_slice(args);
    let run = cluster.as_user("sbatch", &all).expect_ok("sbatch");
    run.stdout.trim().to_string()
}

/// Everything of the frame directory and the backend that must not change after the merge.
#[derive(Debug, PartialEq)]
struct Outcome {
    records: usize,
    manifest: String,
    summary: String,
    finish_markers: Vec<String>,
    backend_requests: usize,
    open_sessions: usize,
    held_leases: usize,
}

fn outcome(cluster: &Cluster, dir: &Path, server: &MockServer) -> Outcome {
    Outcome {
        records: record_files(dir).len(),
        manifest: std::fs::read_to_string(dir.join("manifest.jsonl")).unwrap_or_default(),
        summary: std::fs::read_to_string(dir.join("summary.json")).unwrap_or_default(),
        finish_markers: finish_markers(dir),
        backend_requests: server.requests().len(),
        open_sessions: server.state().open_sessions.len(),
        held_leases: held_leases(cluster, "q2").len(),
    }
}

/// Prints a measurement on the real stderr (libtest captures `eprintln!`), so it lands in
/// target/run-all.log.
fn measured(text: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr().lock(), "FAILOVER: {text}");
}

fn is_up(pings: &[controllers::Ping], role: &str) -> Option<bool> {
    pings.iter().find(|p| p.role == role).map(|p| p.up)
}

#[test]
#[ignore = "needs the test cluster with a backup controller: tests/run-all.sh"]
fn primary_stopped_mid_array_and_qpu_job_then_back_loses_and_repeats_nothing() {
    let cluster = Cluster::connect();
    if !controllers::has_backup(&cluster) {
        let why = "the test cluster has no backup controller (cluster.sh up --backup-ctl)";
        assert!(
            std::env::var("SPANK_FAILOVER_REQUIRED").as_deref() != Ok("1"),
            "SPANK_FAILOVER_REQUIRED=1 but {why}"
        );
        measured(&format!("SKIPPED: {why}"));
        return;
    }
    let pings = controllers::ping(&cluster);
    assert_eq!(is_up(&pings, "primary"), Some(true), "{pings:?}");
    assert_eq!(is_up(&pings, "backup"), Some(true), "{pings:?}");
    cluster.wait_queue_empty(Duration::from_secs(60));
    let server = mock_warden(&cluster);

    // A frame array on c1/c2, then two QPU jobs for q2's single fresnel: the first runs
    // through the outage, the second can only start once the first ended, under the backup
    // (its controller lookup then finds the primary gone).
    let work = cluster.user_dir("failover");
    let script = cluster.user_script(
        &work,
        "render.sh",
        "#!/bin/sh\nsleep 4\nprintf 'frame %s\\n' \"$FRAME_INDEX\" > \"$FRAME_PATH\"\necho \"RESULT:{\\\"index\\\":$FRAME_INDEX}\"\n",
    );
    let dir: PathBuf = work.join("frames");
    let array = submit(
        &cluster,
        &[
            "-p",
            "normal",
            &format!("--array=0-{}", TASKS - 1),
            "-o",
            "/dev/null",
            &format!("--frame-dir={}", dir.display()),
            script.to_str().unwrap_or(""),
        ],
    );
    let qpu_jobs: Vec<String> = ["sleep 8", "printenv fresnel_QRMI_JOB_ACQUISITION_TOKEN"]
        .iter()
        .enumerate()
        .map(|(i, wrap)| {
            submit(
                &cluster,
                &[
                    "-p",
                    "quantum",
                    "-w",
                    "q2",
                    "--gres=qpu:fresnel:1",
                    "-o",
                    work.join(format!("qpu{i}.out")).to_str().unwrap_or(""),
                    "--wrap",
                    wrap,
                ],
            )
        })
        .collect();

    // Stop the primary once the first QPU job holds its session and array tasks run.
    controllers::wait_until(
        "first QPU job acquired its session",
        Duration::from_secs(60),
        || count(&server, "POST", "/warden/sessions") >= 1,
    );
    controllers::wait_until("array tasks running", Duration::from_secs(60), || {
        let run = cluster.as_root("squeue", &["-h", "-j", &array, "-t", "R", "-o", "%i"]);
        run.ok() && !run.stdout.trim().is_empty()
    });
    let records_before = record_files(&dir).len();
    assert!(
        (records_before as u64) < TASKS,
        "the array ended before the primary was stopped"
    );
    let takeovers = controllers::takeovers(&cluster);
    let stopped = Instant::now();
    controllers::stop_primary(false);
    let stop_took = stopped.elapsed();
    let log_takeover = controllers::wait_until(
        "the backup's log says it takes over",
        Duration::from_secs(60),
        || controllers::takeovers(&cluster) > takeovers,
    ) + stop_took;
    controllers::wait_until(
        "scontrol ping: primary DOWN, backup UP, and RPCs answered",
        Duration::from_secs(60),
        || {
            let pings = controllers::ping(&cluster);
            is_up(&pings, "primary") == Some(false)
                && is_up(&pings, "backup") == Some(true)
                && controllers::in_control_answers(&cluster)
        },
    );
    let answered = stopped.elapsed();
    measured(&format!(
        "takeover: primary stop (SIGTERM) took {:.1} s; backup took over {:.1} s after the stop began; first answered RPC after {:.1} s; {records_before}/{TASKS} records written before the stop",
        stop_took.as_secs_f64(),
        log_takeover.as_secs_f64(),
        answered.as_secs_f64()
    ));

    // Everything finishes under the backup.
    cluster.wait_queue_empty(Duration::from_secs(180));
    controllers::wait_until(
        "both QPU sessions released",
        Duration::from_secs(60),
        || count(&server, "DELETE", "/warden/sessions/") >= 2,
    );
    let records = record_files(&dir);
    let indices: BTreeSet<u64> = records.iter().filter_map(|r| r["index"].as_u64()).collect();
    assert_eq!(records.len() as u64, TASKS, "{records:?}");
    assert_eq!(indices, (0..TASKS).collect(), "{records:?}");
    for record in &records {
        assert_eq!(record["status"], "done", "{record}");
    }
    let summary = read_json(&dir.join("summary.json"));
    assert_eq!(summary["done"], TASKS, "{summary}");
    assert_eq!(summary["missing"], 0, "{summary}");
    let manifest = std::fs::read_to_string(dir.join("manifest.jsonl")).expect("manifest");
    assert_eq!(manifest.lines().count() as u64, TASKS);
    assert_eq!(finish_markers(&dir).len(), 1, "exactly one merge");
    // The QPU: as many releases as acquisitions, nothing open at the backend, no lease held.
    assert_eq!(count(&server, "POST", "/warden/sessions"), 2);
    assert_eq!(count(&server, "DELETE", "/warden/sessions/"), 2);
    assert!(server.state().open_sessions.is_empty());
    assert!(held_leases(&cluster, "q2").is_empty());
    // The second QPU job started under the backup and got its session.
    let out = std::fs::read_to_string(work.join("qpu1.out")).unwrap_or_default();
    assert!(
        !out.trim().is_empty(),
        "job {}: no token: {out}",
        qpu_jobs[1]
    );
    let before = outcome(&cluster, &dir, &server);

    // The primary returns and takes control back from the backup.
    let relinquished = controllers::relinquished(&cluster);
    let started = Instant::now();
    controllers::start_primary();
    controllers::wait_until(
        "the backup hands control back",
        Duration::from_secs(60),
        || controllers::relinquished(&cluster) > relinquished,
    );
    controllers::wait_until(
        "scontrol ping: both UP, and RPCs answered",
        Duration::from_secs(60),
        || {
            let pings = controllers::ping(&cluster);
            is_up(&pings, "primary") == Some(true)
                && is_up(&pings, "backup") == Some(true)
                && controllers::in_control_answers(&cluster)
        },
    );
    controllers::wait_until("nodes healthy again", Duration::from_secs(90), || {
        cluster.unhealthy_nodes().is_empty()
    });
    measured(&format!(
        "primary back in control and all nodes idle {:.1} s after start-ctl",
        started.elapsed().as_secs_f64()
    ));
    // The primary schedules again (a job without frames or QPU), and after a while nothing of
    // the array or the QPU jobs has changed: no record, merge, release or backend call more.
    cluster
        .as_user("srun", &["-p", "normal", "true"])
        .expect_ok("srun under the returned primary");
    std::thread::sleep(Duration::from_secs(5));
    cluster.wait_queue_empty(Duration::from_secs(60));
    assert_eq!(outcome(&cluster, &dir, &server), before);
    cluster.assert_no_unhealthy_nodes();
}
