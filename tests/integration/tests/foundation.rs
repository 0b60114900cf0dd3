//! Both plugins loaded in a real cluster: options in every client's --help, jobs of every
//! kind on every node with the plugins loaded (seen in the node logs), nothing changed for
//! jobs that do not use the options, no node drained.
//!
//! Needs the test cluster: run through tests/run-all.sh (these tests are ignored otherwise).
use std::collections::BTreeSet;
use std::time::Duration;

use integration_tests::{Cluster, wait_for_file};

fn hostnames(text: &str) -> BTreeSet<String> {
    text.lines()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
        .collect()
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

#[test]
#[ignore = "needs the test cluster: tests/run-all.sh"]
fn options_show_in_every_clients_help() {
    let cluster = Cluster::connect();
    for client in ["sbatch", "salloc", "srun"] {
        let run = cluster.as_user(client, &["--help"]);
        let text = format!("{}{}", run.stdout, run.stderr);
        assert!(
            text.contains("--qpu=NAMES"),
            "{client} --help lacks --qpu:\n{text}"
        );
        assert!(
            text.contains("--frame-dir=DIR"),
            "{client} --help lacks --frame-dir:\n{text}"
        );
        assert!(
            text.contains("Comma separated list of QPU resources"),
            "{client}"
        );
    }
}

#[test]
#[ignore = "needs the test cluster: tests/run-all.sh"]
fn srun_runs_on_every_node_with_plugins_loaded() {
    let cluster = Cluster::connect();
    let normal = cluster
        .as_user("srun", &["-p", "normal", "-N2", "hostname"])
        .expect_ok("srun normal");
    assert_eq!(hostnames(&normal.stdout), set(&["c1", "c2"]));
    let quantum = cluster
        .as_user("srun", &["-p", "quantum", "-N2", "hostname"])
        .expect_ok("srun quantum");
    assert_eq!(hostnames(&quantum.stdout), set(&["q1", "q2"]));
    let all = cluster
        .as_user(
            "srun",
            &[
                "-p",
                "all",
                "-N4",
                "sh",
                "-c",
                "echo $(hostname) $SLURM_JOB_ID",
            ],
        )
        .expect_ok("srun all");
    let job_id = all
        .stdout
        .split_whitespace()
        .nth(1)
        .expect("job id")
        .to_string();
    for node in ["c1", "c2", "q1", "q2"] {
        let log = cluster.node_log(node);
        for plugin in ["spank_qrmi", "spank_frames"] {
            let evidence = format!("{plugin}: loaded in remote context (job {job_id} ");
            assert!(
                log.contains(&evidence),
                "{node}: no '{evidence}' in its slurmd log"
            );
        }
    }
    cluster.assert_no_unhealthy_nodes();
}

#[test]
#[ignore = "needs the test cluster: tests/run-all.sh"]
fn sbatch_jobs_run_on_every_node() {
    let cluster = Cluster::connect();
    let dir = cluster.user_dir("foundation-sbatch");
    for (partition, nodes) in [("normal", ["c1", "c2"]), ("quantum", ["q1", "q2"])] {
        let out = dir.join(format!("{partition}.out"));
        cluster
            .as_user(
                "sbatch",
                &[
                    "--wait",
                    "-p",
                    partition,
                    "-N2",
                    "-o",
                    out.to_str().unwrap(),
                    "--wrap",
                    "srun hostname",
                ],
            )
            .expect_ok("sbatch");
        let text = wait_for_file(&out, Duration::from_secs(30));
        assert_eq!(hostnames(&text), set(&nodes), "{partition}: {text}");
    }
    cluster.assert_no_unhealthy_nodes();
}

#[test]
#[ignore = "needs the test cluster: tests/run-all.sh"]
fn salloc_then_srun_runs_on_every_node() {
    let cluster = Cluster::connect();
    for (partition, nodes) in [("normal", ["c1", "c2"]), ("quantum", ["q1", "q2"])] {
        let run = cluster
            .as_user("salloc", &["-p", partition, "-N2", "srun", "hostname"])
            .expect_ok("salloc");
        assert_eq!(hostnames(&run.stdout), set(&nodes), "{partition}: {run:?}");
    }
    cluster.assert_no_unhealthy_nodes();
}

/// Variables that differ between any two jobs, plugins or not.
const PER_JOB: &[&str] = &[
    "SLURM_JOB_ID",
    "SLURM_JOBID",
    // 26.05: the job's cluster-unique id (a new value per job, like the job id).
    "SLURM_JOB_SLUID",
    "SLURM_STEP_ID",
    "SLURM_STEPID",
    "SLURM_TASK_PID",
    "SLURM_JOB_START_TIME",
    "SLURM_JOB_END_TIME",
    "SLURM_LAUNCH_NODE_IPADDR",
    "SLURM_SRUN_COMM_PORT",
    "SLURM_STEP_LAUNCHER_PORT",
    "SLURM_STEP_RESV_PORTS",
];

fn comparable_env(text: &str) -> Vec<String> {
    let mut lines: Vec<String> = text
        .lines()
        .filter(|l| !PER_JOB.iter().any(|v| l.starts_with(&format!("{v}="))))
        .map(str::to_string)
        .collect();
    lines.sort();
    lines
}

#[test]
#[ignore = "needs the test cluster: tests/run-all.sh"]
fn unused_options_change_no_environment_and_no_output() {
    let cluster = Cluster::connect();
    cluster.wait_queue_empty(std::time::Duration::from_secs(60));
    let job = [
        "-p",
        "normal",
        "-w",
        "c1",
        "-N1",
        "sh",
        "-c",
        "env; printf 'out\\n'; printf 'err\\n' >&2",
    ];
    let with_plugins = cluster.as_user("srun", &job).expect_ok("srun with plugins");
    let old = cluster.set_plugstack("");
    let without = cluster.as_user("srun", &job);
    cluster.set_plugstack(&old);
    let without = without.expect_ok("srun without plugins");
    assert_eq!(
        comparable_env(&with_plugins.stdout),
        comparable_env(&without.stdout)
    );
    // srun's own scheduling notes ("job N queued and waiting for resources") depend on timing.
    let task_stderr = |text: &str| -> String {
        text.lines()
            .filter(|l| !l.starts_with("srun: job "))
            .map(|l| format!("{l}\n"))
            .collect()
    };
    assert_eq!(
        task_stderr(&with_plugins.stderr),
        task_stderr(&without.stderr)
    );
    assert!(with_plugins.stdout.ends_with("out\n"));
    // And the plugins really were loaded for the first run.
    let with_again = cluster.as_user("srun", &["-p", "normal", "-w", "c1", "-N1", "true"]);
    assert!(with_again.ok());
    cluster.assert_no_unhealthy_nodes();
}

#[test]
#[ignore = "needs the test cluster: tests/run-all.sh"]
fn bad_option_value_is_refused_at_submission_with_its_reason() {
    let cluster = Cluster::connect();
    let run = cluster.as_user("sbatch", &["--frame-dir=relative/dir", "--wrap", "true"]);
    assert!(!run.ok(), "sbatch accepted a relative --frame-dir: {run:?}");
    assert!(
        run.stderr
            .contains("spank_frames: --frame-dir: 'relative/dir' is a relative path"),
        "{run:?}"
    );
    let run = cluster.as_user("srun", &["--qpu=a,,b", "true"]);
    assert!(!run.ok());
    assert!(
        run.stderr
            .contains("spank_qrmi: --qpu: 'a,,b' has an empty QPU name"),
        "{run:?}"
    );
    cluster.assert_no_unhealthy_nodes();
}
