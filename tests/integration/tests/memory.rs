//! Leak check on the real cluster: one job using both plugins (--qpu on a token-only QPU, so no
//! backend is called, and --frame-dir) runs 1,000 `srun` steps. Sampled from /proc at steps
//! 10, 500 and 1000: the resident memory of each step's slurmstepd (read by the step's task from
//! its parent, after the plugins' per-step callbacks ran) and of the job's batch slurmstepd
//! (read by the batch script from its parent, which lives across all steps). Both must stay
//! flat: growth from step 10 to step 1000 below BOUND_KIB. slurmd's VmRSS is reported too (it
//! serves other work, so it is not asserted). A leak check, not a timing check.
//!
//! Heavy (about 1,000 step launches): skips itself unless SPANK_HEAVY_TESTS=1; run it under
//! `flock /work/heavy.lock` where the machine is shared.
use std::path::Path;
use std::time::Instant;

use integration_tests::Cluster;
use spank_test_support::reliability;

const TEST: &str = "slurmstepd_memory_flat_across_1000_steps_with_both_plugins";
const STEPS: u32 = 1000;
/// Largest accepted growth of a slurmstepd's VmRSS between step 10 and step 1000: a leak of
/// even 1 KiB per step would exceed it (990 steps).
const BOUND_KIB: i64 = 1024;

const SCRIPT: &str = r#"#!/bin/bash
out=$1
steps=$2
mid=$3
rss() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }
for i in $(seq 1 "$steps"); do
  if ! s=$(srun -n1 --frame-dir="$out/steps" --frame-pattern=none sh -c 'awk "/^VmRSS:/ { print \$2 }" /proc/$PPID/status'); then
    echo "$i" >> "$out/failed"
    continue
  fi
  if [ "$i" = 1 ]; then
    srun -n1 --frame-dir="$out/steps" --frame-pattern=none sh -c 'env | grep -c "^garnet_mem_QRMI_JOB_ACQUISITION_TOKEN="' > "$out/qpu-env" || true
  fi
  case $i in 1|10|100|$mid|$steps) echo "$i $s $(rss $PPID)" >> "$out/rss" ;; esac
done
echo ok > "$out/finished"
"#;

/// Restores the cluster's qrmi_config.json on drop.
struct ConfigGuard {
    path: std::path::PathBuf,
    old: Option<Vec<u8>>,
}

impl Drop for ConfigGuard {
    fn drop(&mut self) {
        match &self.old {
            Some(bytes) => {
                let _ = std::fs::write(&self.path, bytes);
            }
            None => {
                let _ = std::fs::remove_file(&self.path);
            }
        }
    }
}

/// VmRSS in KiB of the slurmd serving `node` (the tests run in the host's pid namespace).
fn slurmd_rss(node: &str) -> Option<i64> {
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let args: Vec<&[u8]> = cmdline.split(|&b| b == 0).collect();
        let is_slurmd = args
            .first()
            .is_some_and(|a| Path::new(std::str::from_utf8(a).unwrap_or("")).ends_with("slurmd"));
        let is_node = args
            .windows(2)
            .any(|w| w[0] == b"-N" && w[1] == node.as_bytes());
        if is_slurmd && is_node {
            let status = std::fs::read_to_string(entry.path().join("status")).ok()?;
            return status
                .lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok());
        }
    }
    None
}

#[test]
#[ignore = "needs the test cluster: tests/run-all.sh"]
fn slurmstepd_memory_flat_across_1000_steps_with_both_plugins() {
    if std::env::var("SPANK_HEAVY_TESTS").as_deref() != Ok("1") {
        eprintln!("skipped: heavy test, set SPANK_HEAVY_TESTS=1 (run-all.sh does)");
        return;
    }
    reliability::start(TEST);
    let cluster = Cluster::connect();
    // A token-only QPU (iqm-server) with its status check turned off: acquiring it calls no
    // backend, so only the plugins' own memory is measured.
    let path = cluster.scratch().join("etc/qrmi_config.json");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let _guard = ConfigGuard {
        old: std::fs::read(&path).ok(),
        path: path.clone(),
    };
    let config = serde_json::json!({"resources": [
        {"name": "garnet_mem", "type": "iqm-server", "environment": {
            "QRMI_IQM_ISA_ENDPOINT": "http://127.0.0.1:9/",
            "QRMI_IQM_ISA_TOKEN": "memory-test-token"}, "status_check": false}
    ]});
    std::fs::write(&path, config.to_string()).unwrap();
    assert!(
        cluster
            .as_root("chmod", &["0600", path.to_str().unwrap()])
            .ok()
    );

    // SPANK_MEMORY_STEPS: fewer steps for a quick try of the test itself (>= 20).
    let steps: u32 = std::env::var("SPANK_MEMORY_STEPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n| n >= 20)
        .unwrap_or(STEPS);
    let work = cluster.user_dir("memory");
    let script = cluster.user_script(&work, "steps.sh", SCRIPT);
    let slurmd_before = slurmd_rss("c1");
    let started = Instant::now();
    let run = cluster.as_user(
        "sbatch",
        &[
            "--wait",
            "-p",
            "normal",
            "-w",
            "c1",
            "-n",
            "1",
            "--qpu=garnet_mem",
            "-o",
            work.join("job.out").to_str().unwrap(),
            script.to_str().unwrap(),
            work.to_str().unwrap(),
            &steps.to_string(),
            &(steps / 2).to_string(),
        ],
    );
    let took = started.elapsed();
    let slurmd_after = slurmd_rss("c1");
    let job_out = std::fs::read_to_string(work.join("job.out")).unwrap_or_default();
    assert!(run.ok(), "sbatch: {run:?}\n{job_out}");
    assert!(
        work.join("finished").exists(),
        "the batch script did not finish: {job_out}"
    );
    let failed = std::fs::read_to_string(work.join("failed")).unwrap_or_default();
    let qpu_env = std::fs::read_to_string(work.join("qpu-env")).unwrap_or_default();
    // step -> (step slurmstepd KiB, batch slurmstepd KiB)
    let samples: Vec<(u32, i64, i64)> = std::fs::read_to_string(work.join("rss"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let v: Vec<&str> = l.split_whitespace().collect();
            Some((
                v.first()?.parse().ok()?,
                v.get(1)?.parse().ok()?,
                v.get(2)?.parse().ok()?,
            ))
        })
        .collect();
    let at = |step: u32| samples.iter().find(|s| s.0 == step).copied();
    let (Some(s10), Some(s500), Some(s1000)) = (at(10), at(steps / 2), at(steps)) else {
        panic!("samples missing: {samples:?}\n{job_out}");
    };
    // Each srun names the frame dir (a step inside a job that routes frames is left alone).
    let records = integration_tests::record_texts(&work.join("steps"))
        .iter()
        .filter(|(n, _)| !n.contains(".sbatch."))
        .count();
    let step_growth = s1000.1 - s10.1;
    let batch_growth = s1000.2 - s10.2;
    let kib = |v: Option<i64>| v.map_or("?".to_string(), |v| v.to_string());
    reliability::report(
        "memory",
        &format!(
            "{steps} srun steps in one job with --qpu (token-only iqm-server) and --frame-dir, VmRSS from /proc at steps 10, {}, {steps}",
            steps / 2
        ),
        &format!(
            "sbatch ok in {:.0} s; failed steps: {}; QPU token in the step environment: {}",
            took.as_secs_f64(),
            failed.lines().count(),
            qpu_env.trim() == "1"
        ),
        &format!(
            "step slurmstepd {}/{}/{} KiB (growth {step_growth} KiB), batch slurmstepd {}/{}/{} KiB (growth {batch_growth} KiB), bound {BOUND_KIB} KiB; slurmd {} -> {} KiB (not asserted); {records} step records",
            s10.1,
            s500.1,
            s1000.1,
            s10.2,
            s500.2,
            s1000.2,
            kib(slurmd_before),
            kib(slurmd_after)
        ),
        TEST,
    );
    assert!(failed.is_empty(), "failed steps: {failed}");
    assert_eq!(
        qpu_env.trim(),
        "1",
        "the QPU plugin did not act on the steps"
    );
    assert_eq!(
        records as u32,
        steps + 1,
        "one record per step (plus the probe step)"
    );
    assert!(
        step_growth < BOUND_KIB,
        "step slurmstepd grew {step_growth} KiB: {samples:?}"
    );
    assert!(
        batch_growth < BOUND_KIB,
        "batch slurmstepd grew {batch_growth} KiB: {samples:?}"
    );
    cluster.assert_no_unhealthy_nodes();
}
