//! spank_qrmi on the real cluster, as the unprivileged test user, against mock QPU backends
//! listening on the bridge address (reachable from every node's namespace): --qpu and GRES
//! requests in srun, sbatch and salloc jobs, release after every kind of job end, failures,
//! secrets kept out of every log, accounting.
use std::time::{Duration, Instant};

use integration_tests::cluster_script;
use integration_tests::qpu_site::{self, Site, env_value, held_leases, is_release, state_dir};
use spank_test_support::mock_server::Mode;

const API_KEY: &str = "sekret-apikey-6f1e9c";

fn site() -> Site {
    qpu_site::site_with_apikey(API_KEY)
}

/// The session token of the lease `node` holds for `job`, once it holds one.
fn job_lease_token(cluster: &integration_tests::Cluster, node: &str, job: &str) -> Option<String> {
    held_leases(cluster, node).iter().find_map(|text| {
        let lease: serde_json::Value = serde_json::from_str(text).ok()?;
        (lease["job_id"].as_u64().map(|j| j.to_string()).as_deref() == Some(job))
            .then(|| lease["token"].as_str().map(str::to_string))?
    })
}

/// Waits (up to a minute) until `node` holds a lease of `job`; its session token.
fn wait_for_lease(cluster: &integration_tests::Cluster, node: &str, job: &str) -> String {
    let mut token = None;
    let held = qpu_site::wait_for(Duration::from_secs(60), || {
        token = job_lease_token(cluster, node, job);
        token.is_some()
    });
    assert!(
        held,
        "job {job}'s lease on {node}: not within 60 s\n{}",
        job_diagnosis(cluster, node, job)
    );
    token.unwrap_or_default()
}

/// What Slurm says and logged of `job` and what `node` logged last, for a failure message
/// (a job that ran once left the queue, or went back to pending, without saying why).
fn job_diagnosis(cluster: &integration_tests::Cluster, node: &str, job: &str) -> String {
    let state = cluster.as_root("squeue", &["-h", "-j", job, "-o", "%T %r %N"]);
    let controller = std::fs::read_to_string(cluster.log_dir().join("slurmctld.log"))
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(&format!("JobId={job} ")) || l.ends_with(&format!("JobId={job}")))
        .map(str::to_string)
        .collect::<Vec<_>>();
    let node_log = cluster.node_log(node);
    let node_lines: Vec<&str> = node_log.lines().collect();
    format!(
        "squeue: {:?}\nslurmctld.log on job {job}:\n{}\n{node}'s log ends with:\n{}",
        state.stdout.trim(),
        controller[controller.len().saturating_sub(30)..].join("\n"),
        node_lines[node_lines.len().saturating_sub(40)..].join("\n")
    )
}

fn wait_for(what: &str, limit: Duration, done: impl FnMut() -> bool) {
    assert!(
        qpu_site::wait_for(limit, done),
        "{what}: not within {limit:?}"
    );
}

#[test]
#[ignore = "needs the test cluster: tests/run-all.sh"]
fn srun_with_qpu_option_gets_a_session_released_at_job_end() {
    let site = site();
    let run = site
        .cluster
        .as_user(
            "srun",
            &["-p", "quantum", "-w", "q1", "--qpu=ibm_torino", "env"],
        )
        .expect_ok("srun --qpu");
    assert_eq!(
        env_value(&run.stdout, "QRMI_JOB_QPU_RESOURCES"),
        Some("ibm_torino")
    );
    assert_eq!(
        env_value(&run.stdout, "SLURM_JOB_QPU_TYPES"),
        Some("ibm-quantum-compute-service")
    );
    assert_eq!(
        env_value(&run.stdout, "ibm_torino_QRMI_JOB_TIMEOUT_SECONDS"),
        Some("4294967295")
    );
    let token = env_value(&run.stdout, "ibm_torino_QRMI_JOB_ACQUISITION_TOKEN")
        .expect("token")
        .to_string();
    assert!(
        site.server
            .requests()
            .iter()
            .any(|r| r.method == "POST" && r.target == "/api/sessions")
    );
    wait_for("release after the job", Duration::from_secs(30), || {
        site.server
            .requests()
            .iter()
            .any(|r| is_release(r) && r.target.contains(&token))
    });
    // The lease is marked released just after the backend answered the DELETE.
    wait_for("the lease no longer held", Duration::from_secs(10), || {
        held_leases(&site.cluster, "q1").is_empty()
    });
    site.cluster.assert_no_unhealthy_nodes();
}

#[test]
#[ignore = "needs the test cluster: tests/run-all.sh"]
fn sbatch_with_gres_only_gets_its_typed_qpu() {
    let site = site();
    let dir = site.cluster.user_dir("qrmi-gres");
    let out = dir.join("job.out");
    site.cluster
        .as_user(
            "sbatch",
            &[
                "--wait",
                "-p",
                "quantum",
                "--gres=qpu:fresnel:1",
                "-t",
                "5",
                "-o",
                out.to_str().unwrap(),
                "--wrap",
                "hostname; env | sort",
            ],
        )
        .expect_ok("sbatch --gres");
    let text = std::fs::read_to_string(&out).unwrap();
    assert_eq!(text.lines().next(), Some("q2"), "{text}");
    assert_eq!(
        env_value(&text, "QRMI_JOB_QPU_RESOURCES"),
        Some("fresnel"),
        "{text}"
    );
    assert_eq!(
        env_value(&text, "fresnel_QRMI_JOB_TIMEOUT_SECONDS"),
        Some("300")
    );
    assert!(env_value(&text, "fresnel_QRMI_WARDEN_URL").is_some());
    let token = env_value(&text, "fresnel_QRMI_JOB_ACQUISITION_TOKEN")
        .expect("token")
        .to_string();
    // The warden gets a munge credential with each session call (warden_munge=yes).
    let post = site
        .server
        .requests()
        .into_iter()
        .find(|r| r.method == "POST" && r.target == "/warden/sessions");
    let cred = post
        .as_ref()
        .and_then(|r| r.header("x-munge-cred"))
        .unwrap_or("");
    assert!(cred.starts_with("MUNGE:"), "{post:?}");
    wait_for(
        "DELETE of the warden session",
        Duration::from_secs(30),
        || {
            site.server
                .requests()
                .iter()
                .any(|r| r.method == "DELETE" && r.target.ends_with(&token))
        },
    );
}

#[test]
#[ignore = "needs the test cluster: tests/run-all.sh"]
fn untyped_gres_means_the_qpu_of_the_node_the_job_got() {
    let site = site();
    for (node, qpu) in [("q1", "ibm_torino"), ("q2", "fresnel")] {
        let run = site
            .cluster
            .as_user(
                "srun",
                &[
                    "-p",
                    "quantum",
                    "-w",
                    node,
                    "--gres=qpu:1",
                    "printenv",
                    "QRMI_JOB_QPU_RESOURCES",
                ],
            )
            .expect_ok("srun --gres=qpu:1");
        assert_eq!(run.stdout.trim(), qpu, "{node}: {run:?}");
    }
}

#[test]
#[ignore = "needs the test cluster: tests/run-all.sh"]
fn salloc_steps_share_one_session() {
    let site = site();
    let run = site
        .cluster
        .as_user(
            "salloc",
            &["-p", "quantum", "--gres=qpu:ibm_torino:1", "sh", "-c",
              "srun printenv ibm_torino_QRMI_JOB_ACQUISITION_TOKEN; srun printenv ibm_torino_QRMI_JOB_ACQUISITION_TOKEN"],
        )
        .expect_ok("salloc");
    let tokens: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(tokens.len(), 2, "{run:?}");
    assert_eq!(tokens[0], tokens[1], "later steps reuse the job's session");
    let posts = site
        .server
        .requests()
        .iter()
        .filter(|r| r.method == "POST" && r.target == "/api/sessions")
        .count();
    assert_eq!(posts, 1);
    let token = tokens[0].to_string();
    wait_for("release", Duration::from_secs(30), || {
        site.server
            .requests()
            .iter()
            .any(|r| is_release(r) && r.target.contains(&token))
    });
}

#[test]
#[ignore = "needs the test cluster: tests/run-all.sh"]
fn contradicting_and_unknown_requests_fail_with_the_reason() {
    let site = site();
    let run = site.cluster.as_user(
        "srun",
        &[
            "-p",
            "quantum",
            "--gres=qpu:ibm_torino:1",
            "--qpu=fresnel",
            "true",
        ],
    );
    assert!(!run.ok());
    assert!(
        run.stderr
            .contains("--qpu=fresnel contradicts --gres=qpu:ibm_torino"),
        "{run:?}"
    );
    let run = site
        .cluster
        .as_user("srun", &["-p", "quantum", "--qpu=nosuch", "true"]);
    assert!(!run.ok());
    assert!(
        run.stderr
            .contains("unknown QPU 'nosuch': available QPUs are ibm_torino, fresnel"),
        "{run:?}"
    );
    // Refused by slurmctld before any of our code runs.
    let run = site
        .cluster
        .as_user("srun", &["-p", "quantum", "--gres=qpu:nosuch:1", "true"]);
    assert!(!run.ok());
    site.cluster.assert_no_unhealthy_nodes();
}

#[test]
#[ignore = "needs the test cluster: tests/run-all.sh"]
fn failing_and_hanging_backends_fail_the_job_cleanly() {
    let site = site();
    site.server
        .set_mode_for("POST", "/warden/sessions", Mode::Fail);
    let run = site.cluster.as_user(
        "srun",
        &["-p", "quantum", "-w", "q2", "--qpu=fresnel", "true"],
    );
    assert!(!run.ok());
    assert!(
        run.stderr
            .contains("QPU fresnel (pasqal-local): acquire failed"),
        "{run:?}"
    );
    assert!(run.stderr.contains("HTTP 500"), "{run:?}");
    let site = self::site();
    site.server
        .set_mode_for("POST", "/warden/sessions", Mode::Hang);
    let started = Instant::now();
    let run = site.cluster.as_user(
        "srun",
        &["-p", "quantum", "-w", "q2", "--qpu=fresnel", "true"],
    );
    assert!(!run.ok());
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "took {:?}",
        started.elapsed()
    );
    assert!(run.stderr.contains("fresnel"), "{run:?}");
    assert!(held_leases(&site.cluster, "q2").is_empty());
    site.cluster.assert_no_unhealthy_nodes();
}

#[test]
#[ignore = "needs the test cluster: tests/run-all.sh"]
fn scancel_and_a_killed_slurmstepd_still_release() {
    let site = site();
    for kill_stepd in [false, true] {
        let run = site
            .cluster
            .as_user(
                "sbatch",
                &[
                    "--parsable",
                    "-p",
                    "quantum",
                    "-w",
                    "q2",
                    "--qpu=fresnel",
                    "-o",
                    "/dev/null",
                    "--wrap",
                    "sleep 120",
                ],
            )
            .expect_ok("sbatch");
        let job = run.stdout.trim().to_string();
        // A failed assertion must not leave this job holding q2 for the tests after it.
        let _cancel = site.cluster.cancel_on_drop(&job);
        // This job's own lease (any earlier request on the mock server may be another job's).
        let token = wait_for_lease(&site.cluster, "q2", &job);
        if kill_stepd {
            // The batch step's slurmstepd only (the job's keeper, forked from it, shares its
            // command line but not its name).
            let pids = site.cluster.as_root(
                "pgrep",
                &["-f", &format!("slurmstepd: \\[{job}\\.batch\\]")],
            );
            let pids: Vec<String> = pids
                .stdout
                .split_whitespace()
                .filter(|pid| {
                    std::fs::read_to_string(format!("/proc/{pid}/comm"))
                        .is_ok_and(|comm| comm.trim() == "slurmstepd")
                })
                .map(str::to_string)
                .collect();
            assert!(
                !pids.is_empty(),
                "no slurmstepd for job {job}\n{}",
                job_diagnosis(&site.cluster, "q2", &job)
            );
            for pid in &pids {
                site.cluster.as_root("kill", &["-9", pid]);
            }
        }
        site.cluster.as_root("scancel", &[&job]);
        let ended = Instant::now();
        wait_for(
            &format!("release of job {job} (killed stepd: {kill_stepd})"),
            Duration::from_secs(60),
            || {
                site.server
                    .requests()
                    .iter()
                    .any(|r| r.method == "DELETE" && r.target.ends_with(&token))
            },
        );
        println!(
            "job {job}: released {:.1} s after scancel (batch slurmstepd killed with SIGKILL: {kill_stepd})",
            ended.elapsed().as_secs_f64()
        );
    }
    wait_for("q2 healthy", Duration::from_secs(60), || {
        site.cluster.unhealthy_nodes().is_empty()
    });
}

/// A node crash (every process of q2 killed, the keeper too, as a reboot would) while a batch
/// job holds a QPU there: when q2's slurmd starts again it restarts the job's keeper from the
/// lease left on disk, and the QPU is released once Slurm has ended the job.
#[test]
#[ignore = "needs the test cluster: tests/run-all.sh"]
fn a_crashed_node_releases_its_leases_when_slurmd_starts_again() {
    let site = site();
    let run = site
        .cluster
        .as_user(
            "sbatch",
            &[
                "--parsable",
                "--no-requeue",
                "-p",
                "quantum",
                "-w",
                "q2",
                "--qpu=fresnel",
                "-o",
                "/dev/null",
                "--wrap",
                "sleep 300",
            ],
        )
        .expect_ok("sbatch");
    let job = run.stdout.trim().to_string();
    let _cancel = site.cluster.cancel_on_drop(&job);
    let token = wait_for_lease(&site.cluster, "q2", &job);
    cluster_script(&["kill-node", "q2"]).expect_ok("kill-node q2");
    let crashed = Instant::now();
    // Down long enough for Slurm to end the job (NODE_FAIL), as after a real crash.
    site.cluster.wait_queue_empty(Duration::from_secs(120));
    assert!(
        !held_leases(&site.cluster, "q2").is_empty(),
        "the lease stays on q2's disk"
    );
    let restarted = Instant::now();
    cluster_script(&["start-node", "q2"]).expect_ok("start-node q2");
    wait_for(
        &format!("release of job {job}'s QPU after q2 came back"),
        Duration::from_secs(60),
        || {
            site.server
                .requests()
                .iter()
                .any(|r| r.method == "DELETE" && r.target.ends_with(&token))
        },
    );
    println!(
        "job {job}: released {:.1} s after q2's slurmd started again ({:.1} s after the crash)",
        restarted.elapsed().as_secs_f64(),
        crashed.elapsed().as_secs_f64()
    );
    wait_for("no lease held on q2", Duration::from_secs(10), || {
        held_leases(&site.cluster, "q2").is_empty()
    });
    site.cluster.as_root("scancel", &[&job]);
    wait_for("q2 healthy", Duration::from_secs(60), || {
        site.cluster.unhealthy_nodes().is_empty()
    });
}

/// slurmd runs a SPANK epilog for every job once any loaded plugin exports one; ours has none,
/// so no job pays for it: not a job without a QPU, and not one with a QPU either.
#[test]
#[ignore = "needs the test cluster: tests/run-all.sh"]
fn slurmd_runs_no_spank_epilog_for_any_job() {
    let site = site();
    let plain = site
        .cluster
        .as_user(
            "sbatch",
            &[
                "--parsable",
                "-p",
                "quantum",
                "-w",
                "q1",
                "-o",
                "/dev/null",
                "--wrap",
                "true",
            ],
        )
        .expect_ok("sbatch");
    let with_qpu = site
        .cluster
        .as_user(
            "sbatch",
            &[
                "--parsable",
                "-p",
                "quantum",
                "-w",
                "q1",
                "--qpu=ibm_torino",
                "-o",
                "/dev/null",
                "--wrap",
                "srun true",
            ],
        )
        .expect_ok("sbatch --qpu");
    site.cluster
        .as_user("srun", &["-p", "quantum", "-w", "q1", "true"])
        .expect_ok("srun");
    site.cluster.wait_queue_empty(Duration::from_secs(60));
    let log = site.cluster.node_log("q1");
    for job in [plain.stdout.trim(), with_qpu.stdout.trim()] {
        assert!(
            log.contains(&format!("job {job}"))
                || log.contains(&format!("JobId={job}"))
                || log.contains(&format!("[{job}")),
            "job {job} left no trace in q1's log: is this the right log?"
        );
    }
    let epilogs: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("spank/epilog") || l.contains("spank epilog"))
        .collect();
    assert!(epilogs.is_empty(), "slurmd ran SPANK epilogs: {epilogs:?}");
    // The QPU job's session was still released (by its batch step's exit).
    wait_for(
        "release of the batch job's session",
        Duration::from_secs(30),
        || site.server.requests().iter().any(is_release),
    );
}

#[test]
#[ignore = "needs the test cluster: tests/run-all.sh"]
fn two_jobs_compete_for_one_qpu_one_after_the_other() {
    let site = site();
    let mut jobs = Vec::new();
    for _ in 0..2 {
        let run = site
            .cluster
            .as_user(
                "sbatch",
                &[
                    "--parsable",
                    "-p",
                    "quantum",
                    "--gres=qpu:fresnel:1",
                    "-o",
                    "/dev/null",
                    "--wrap",
                    "sleep 2",
                ],
            )
            .expect_ok("sbatch");
        jobs.push(run.stdout.trim().to_string());
    }
    site.cluster.wait_queue_empty(Duration::from_secs(90));
    wait_for("both released", Duration::from_secs(30), || {
        site.server
            .requests()
            .iter()
            .filter(|r| r.method == "DELETE")
            .count()
            >= 2
    });
    // The GRES count of 1 serialises them: each session is deleted before the next is made.
    let sequence: Vec<String> = site
        .server
        .requests()
        .iter()
        .filter(|r| r.target.starts_with("/warden/sessions"))
        .map(|r| r.method.clone())
        .collect();
    assert_eq!(
        sequence,
        vec!["POST", "DELETE", "POST", "DELETE"],
        "{jobs:?}"
    );
}

#[test]
#[ignore = "needs the test cluster: tests/run-all.sh"]
fn z_secrets_never_reach_a_log_and_accounting_matches() {
    let site = site();
    // One more job that logs at debug level everywhere.
    site.cluster
        .as_user(
            "srun",
            &[
                "-p",
                "quantum",
                "-w",
                "q1",
                "--qpu=ibm_torino",
                "-v",
                "true",
            ],
        )
        .expect_ok("srun");
    std::thread::sleep(Duration::from_secs(3));
    let mut checked = 0;
    for dir in [site.cluster.log_dir(), site.cluster.shared_dir()] {
        let mut stack = vec![dir];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                let path = entry.path();
                // Only directories and regular files: other tests plant FIFOs in frame dirs
                // (opening one would wait for a writer forever).
                let Ok(kind) = entry.file_type() else {
                    continue;
                };
                if kind.is_dir() {
                    stack.push(path);
                } else if !kind.is_file() {
                    continue;
                } else if let Ok(bytes) = std::fs::read(&path) {
                    checked += 1;
                    let text = String::from_utf8_lossy(&bytes);
                    assert!(
                        !text.contains(API_KEY),
                        "the API key is in {}",
                        path.display()
                    );
                }
            }
        }
    }
    assert!(checked > 5, "only {checked} files checked");
    // Accounting on q1: acquisitions and releases of the test user, as a report.
    let usage = site.cluster.as_root(
        &site.cluster.tool("qrmi-usage"),
        &[
            "--state-dir",
            state_dir(&site.cluster, "q1").to_str().unwrap(),
            "--json",
        ],
    );
    assert!(usage.ok(), "{usage:?}");
    let report: serde_json::Value = serde_json::from_str(&usage.stdout).expect("qrmi-usage --json");
    let text = report.to_string();
    assert!(text.contains("ibm_torino"), "{text}");
    assert!(text.contains("6001"), "{text}");
    assert!(!text.contains(API_KEY));
}

#[test]
#[ignore = "needs the test cluster: tests/run-all.sh"]
fn each_qpu_by_batch_srun_and_salloc() {
    let site = site();
    let dir = site.cluster.user_dir("qrmi-matrix");
    for qpu in ["ibm_torino", "fresnel"] {
        let var = format!("{qpu}_QRMI_JOB_ACQUISITION_TOKEN");
        let qpu_opt = format!("--qpu={qpu}");
        let out = dir.join(format!("{qpu}.out"));
        site.cluster
            .as_user(
                "sbatch",
                &[
                    "--wait",
                    "-p",
                    "quantum",
                    &qpu_opt,
                    "-o",
                    out.to_str().unwrap(),
                    "--wrap",
                    &format!("printenv {var}"),
                ],
            )
            .expect_ok("sbatch");
        let batch = std::fs::read_to_string(&out).unwrap().trim().to_string();
        let srun = site
            .cluster
            .as_user("srun", &["-p", "quantum", &qpu_opt, "printenv", &var])
            .expect_ok("srun");
        let salloc = site
            .cluster
            .as_user(
                "salloc",
                &["-p", "quantum", &qpu_opt, "srun", "printenv", &var],
            )
            .expect_ok("salloc");
        for (kind, token) in [
            ("batch", batch),
            ("srun", srun.stdout.trim().to_string()),
            ("salloc", salloc.stdout.trim().to_string()),
        ] {
            assert!(!token.is_empty(), "{qpu} {kind}: no token");
            wait_for(
                &format!("{qpu} {kind}: release"),
                Duration::from_secs(30),
                || {
                    site.server
                        .requests()
                        .iter()
                        .any(|r| is_release(r) && r.target.contains(&token))
                },
            );
        }
    }
    site.cluster.assert_no_unhealthy_nodes();
}

/// Puts a moved file back when dropped (also when the test fails).
struct MovedBack(std::path::PathBuf, std::path::PathBuf);

impl Drop for MovedBack {
    fn drop(&mut self) {
        let _ = std::fs::rename(&self.0, &self.1);
    }
}

// The backend helper missing on a node (an install that left it out): a QPU job fails before
// its tasks with where the plugin looked (next to the .so as loaded, then where the packaged
// file is), a job without QPU runs, and no node drains.
#[test]
#[ignore = "needs the test cluster: tests/run-all.sh"]
fn a_missing_backend_helper_fails_only_qpu_jobs_saying_where_it_looked() {
    let site = site();
    let link = site.cluster.scratch().join("plugins/spank_qrmi.so");
    let packaged = std::fs::read_link(&link).expect(
        "plugins/spank_qrmi.so links to the packaged file (cluster.sh --plugins with .deb)",
    );
    let dir = packaged.parent().expect("the packaged plugin's directory");
    let helper = std::path::PathBuf::from(format!(
        "{}{}",
        site.cluster.root().unwrap_or(""),
        dir.join("spank-qrmi-backend").display()
    ));
    assert!(helper.is_file(), "{} is not installed", helper.display());
    let away = helper.with_extension("away");
    std::fs::rename(&helper, &away).expect("move the helper away");
    let _back = MovedBack(away, helper.clone());
    let run = site.cluster.as_user(
        "srun",
        &["-p", "quantum", "-w", "q1", "--qpu=fresnel", "true"],
    );
    assert!(!run.ok(), "{run:?}");
    // Where it looked: the packaged directory, after the .so's path as Slurm loaded it (the
    // cluster's plugin dir on 22.05; 24.11's rootfs finds the packaged file first).
    let said = format!(
        "the QPU backend helper spank-qrmi-backend is not installed on this node (looked for {}",
        if site.cluster.root().is_some() {
            String::new()
        } else {
            format!(
                "{} and ",
                site.cluster
                    .scratch()
                    .join("plugins/spank-qrmi-backend")
                    .display()
            )
        }
    );
    let said = format!("{said}{})", dir.join("spank-qrmi-backend").display());
    assert!(run.stderr.contains(&said), "expected: {said}\n{run:?}");
    site.cluster
        .as_user("srun", &["-p", "quantum", "-w", "q1", "hostname"])
        .expect_ok("a job without QPU on the same node");
    site.cluster.assert_no_unhealthy_nodes();
}
