//! A task-completion storm: 500 array tasks of one job wait until every one of them runs, then
//! all end at the same wall-clock instant, so their task_exit callbacks (record writes and the
//! finisher election) race. Three rounds: each must give 500 records, exactly one merge, no
//! torn or temporary file, and a manifest identical to a re-merge by `frames collect`.
//!
//! Tasks wait for the instant without polling: each blocks on a shared flock(1) of a file the
//! test holds exclusively until every task is ready (500 tasks polling every second would load
//! the 2-core machine so much that slurmd cannot confirm batch launches in time).
//!
//! Relaunches: under a launch storm Slurm may requeue an element whose batch launch slurmd did
//! not confirm in time. That is Slurm's doing, before the task runs; it is allowed and counted,
//! but only if the end state is still exactly one record per frame, all done, and one merge.
//!
//! Heavy (500 batch launches, three times; minutes): skips itself unless SPANK_HEAVY_TESTS=1;
//! run it under `flock /work/heavy.lock` where the machine is shared.
//!
//! The cluster's nodes have 4 CPUs; to run 500 tasks at once the test creates a partition
//! `storm` over c1 and c2 with OverSubscribe=FORCE:64 (8 CPUs x 64 = 512 job slots) at run
//! time and deletes it afterwards, so other tests see the cluster unchanged.
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use integration_tests::Cluster;
use spank_test_support::reliability;

const TASKS: usize = 500;
const TEST: &str = "storm_of_500_simultaneous_endings_three_times";

struct Partition<'a> {
    cluster: &'a Cluster,
}

impl Drop for Partition<'_> {
    fn drop(&mut self) {
        let _ = self.cluster.as_root("scancel", &["-p", "storm"]);
        let _ = self
            .cluster
            .as_root("scontrol", &["delete", "PartitionName=storm"]);
    }
}

// Writes its frame, blocks on the test's lock, reads the instant from the go file, sleeps
// until it and ends: every task leaves at the same wall-clock time. It reports whether it was
// still waiting at that instant (it must be, or the test would measure nothing).
const TASK: &str = r#"#!/bin/bash
printf 'frame %s\n' "$FRAME_INDEX" > "$FRAME_PATH"
: > "$1/ready.$FRAME_INDEX"
flock -s "$1/lock" true
at=$(cat "$1/go")
now=$EPOCHREALTIME
early=$(awk -v a="$at" -v n="$now" 'BEGIN { print (n < a) ? 1 : 0 }')
awk -v a="$at" -v n="$now" 'BEGIN { d = a - n; if (d > 0) system("exec sleep " d) }'
# After the instant only shell builtins: no process start stands between waking and ending.
echo "RESULT:{\"early\":$early,\"end\":$EPOCHREALTIME}"
"#;

/// An exclusive flock(1) held by a child process until released (or dropped).
struct GoLock(std::process::Child);

impl GoLock {
    fn hold(path: &Path) -> GoLock {
        use std::io::BufRead;
        use std::process::{Command, Stdio};
        let mut child = Command::new("flock")
            .arg("-x")
            .arg(path)
            .args(["-c", "echo locked; exec cat >/dev/null"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("cannot run flock");
        let mut line = String::new();
        let out = child.stdout.take().expect("piped");
        std::io::BufReader::new(out).read_line(&mut line).unwrap();
        assert_eq!(line.trim(), "locked", "flock {}", path.display());
        GoLock(child)
    }

    /// Releases the lock: `cat` sees end of input, flock exits and unlocks.
    fn release(mut self) {
        drop(self.0.stdin.take());
        let _ = self.0.wait();
    }
}

impl Drop for GoLock {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

fn running(cluster: &Cluster, job: &str) -> usize {
    let run = cluster.as_root("squeue", &["-h", "-r", "-j", job, "-t", "R", "-o", "%i"]);
    run.stdout.lines().filter(|l| !l.trim().is_empty()).count()
}

fn files_in(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
#[ignore = "needs the test cluster: tests/run-all.sh"]
fn storm_of_500_simultaneous_endings_three_times() {
    if std::env::var("SPANK_HEAVY_TESTS").as_deref() != Ok("1") {
        eprintln!("skipped: heavy test, set SPANK_HEAVY_TESTS=1 (run-all.sh does)");
        return;
    }
    reliability::start(TEST);
    let cluster = Cluster::connect();
    cluster
        .as_root(
            "scontrol",
            &[
                "create",
                "PartitionName=storm",
                "Nodes=c1,c2",
                "OverSubscribe=FORCE:64",
                "MaxTime=INFINITE",
                "State=UP",
            ],
        )
        .expect_ok("create partition storm");
    let _partition = Partition { cluster: &cluster };
    let work = cluster.user_dir("storm");
    let script = cluster.user_script(&work, "task.sh", TASK);
    let frames = cluster.tool("frames");
    for round in 1..=3 {
        let dir = work.join(format!("round{round}"));
        let go = work.join(format!("go{round}"));
        assert!(cluster.as_user("mkdir", &["-p", go.to_str().unwrap()]).ok());
        let lock_file = go.join("lock");
        assert!(
            cluster
                .as_user("touch", &[lock_file.to_str().unwrap()])
                .ok()
        );
        let lock = GoLock::hold(&lock_file);
        let started = Instant::now();
        let run = cluster
            .as_user(
                "sbatch",
                &[
                    "--parsable",
                    "-p",
                    "storm",
                    &format!("--array=0-{}", TASKS - 1),
                    "-o",
                    "/dev/null",
                    &format!("--frame-dir={}", dir.display()),
                    script.to_str().unwrap(),
                    go.to_str().unwrap(),
                ],
            )
            .expect_ok("sbatch storm");
        let job = run.stdout.trim().to_string();
        // Every task must be waiting in its script before the instant is set. Under a launch
        // storm slurmd sometimes cannot confirm a batch launch in time and Slurm requeues that
        // element (held ~2 min): it is waited for too, and counted in the report.
        let limit = Duration::from_secs(420);
        loop {
            let ready = files_in(&go)
                .iter()
                .filter(|n| n.starts_with("ready."))
                .count();
            if ready == TASKS {
                break;
            }
            assert!(
                started.elapsed() < limit,
                "round {round}: only {ready} of {TASKS} tasks waiting after {limit:?} ({} running)",
                running(&cluster, &job)
            );
            std::thread::sleep(Duration::from_millis(500));
        }
        let launch = started.elapsed();
        // 500 tasks wake at the release and each starts a few processes before sleeping:
        // 10 s leaves room on a loaded 2-core machine (each task reports if it was late).
        let instant = now().floor() + 10.0;
        let tmp = work.join(format!("go{round}.tmp"));
        std::fs::write(&tmp, format!("{instant:.0}\n")).unwrap();
        std::fs::rename(&tmp, go.join("go")).unwrap();
        lock.release();
        cluster.wait_queue_empty(Duration::from_secs(300));

        // 500 records, each a whole line of a segment (or a record file), each done.
        let listing =
            frames_core::store::list(&frames_core::Layout::new(&dir), None).expect("records");
        assert!(
            listing.strange.is_empty(),
            "round {round}: stray files {:?}",
            listing.strange
        );
        assert!(
            listing.bad.is_empty() && listing.incomplete.is_empty(),
            "round {round}: torn records {:?} {:?}",
            listing.bad,
            listing.incomplete
        );
        let mut records = Vec::new();
        for (name, bytes) in integration_tests::record_texts(&dir) {
            let value: serde_json::Value = serde_json::from_slice(&bytes)
                .unwrap_or_else(|e| panic!("round {round}: torn record {name}: {e}"));
            records.push(value);
        }
        assert_eq!(records.len(), TASKS, "round {round}: records");
        let done = records.iter().filter(|r| r["status"] == "done").count();
        let relaunched = records
            .iter()
            .filter(|r| r["attempt"].as_u64().unwrap_or(0) > 0)
            .count();
        assert_eq!(done, TASKS, "round {round}: not all done");
        let early = records
            .iter()
            .filter(|r| r["results"][0]["early"] == 1)
            .count();
        assert_eq!(
            early, TASKS,
            "round {round}: every task must have been waiting at the common instant"
        );
        let ends: Vec<f64> = records
            .iter()
            .filter_map(|r| r["results"][0]["end"].as_f64())
            .collect();
        let exits: Vec<f64> = records
            .iter()
            .filter_map(|r| r["end_time"].as_f64())
            .collect();
        let spread = |v: &[f64]| {
            v.iter().cloned().fold(f64::MIN, f64::max) - v.iter().cloned().fold(f64::MAX, f64::min)
        };
        // Exactly one finisher, no temporary or partial file anywhere in the frame dir.
        let state = files_in(&dir.join(".frames"));
        let finishers: Vec<&String> = state.iter().filter(|n| n.starts_with("finish.")).collect();
        assert_eq!(finishers.len(), 1, "round {round}: {state:?}");
        let mut leftovers = Vec::new();
        for sub in ["", ".frames", ".frames/records", ".frames/results"] {
            for name in files_in(&dir.join(sub)) {
                if name.contains(".tmp") || name.ends_with(".partial") || name.starts_with(".#") {
                    leftovers.push(format!("{sub}/{name}"));
                }
            }
        }
        assert!(leftovers.is_empty(), "round {round}: {leftovers:?}");
        let manifest = std::fs::read_to_string(dir.join("manifest.jsonl")).expect("manifest");
        assert_eq!(manifest.lines().count(), TASKS, "round {round}");
        for line in manifest.lines() {
            serde_json::from_str::<serde_json::Value>(line)
                .unwrap_or_else(|e| panic!("round {round}: torn manifest line: {e}: {line}"));
        }
        let summary: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join("summary.json")).unwrap())
                .expect("summary.json");
        assert_eq!(summary["done"], TASKS, "round {round}: {summary}");
        let csv = std::fs::read(dir.join("summary.csv")).unwrap();
        // The CLI's re-merge from the records gives the same files.
        cluster
            .as_user(&frames, &["collect", dir.to_str().unwrap()])
            .expect_ok("frames collect");
        assert_eq!(
            std::fs::read_to_string(dir.join("manifest.jsonl")).unwrap(),
            manifest,
            "round {round}: re-merge differs"
        );
        assert_eq!(
            std::fs::read(dir.join("summary.csv")).unwrap(),
            csv,
            "round {round}: summary.csv of the re-merge differs"
        );
        let line = format!(
            "round {round}: all {TASKS} waiting after {:.0} s ({relaunched} relaunched); task ends spread {:.2} s, task_exit records spread {:.2} s",
            launch.as_secs_f64(),
            spread(&ends),
            spread(&exits)
        );
        println!("{line}");
        reliability::report(
            "storm",
            &format!(
                "round {round}/3: {TASKS} array tasks of one job end at one wall-clock instant ({} on 2 nodes, OverSubscribe)",
                job
            ),
            &format!(
                "sbatch ok; all {TASKS} tasks waiting at the instant ({relaunched} relaunched by Slurm after an unconfirmed batch launch); task ends spread {:.2} s, records' end_time spread {:.2} s",
                spread(&ends),
                spread(&exits)
            ),
            &format!(
                "{} records ({} done), {} merge ({}), manifest {} lines, no temp/partial file, frames collect gives identical manifest.jsonl and summary.csv",
                records.len(),
                done,
                finishers.len(),
                finishers[0],
                manifest.lines().count()
            ),
            TEST,
        );
    }
    cluster.assert_no_unhealthy_nodes();
}
