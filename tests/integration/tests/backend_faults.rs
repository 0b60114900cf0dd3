//! Backend faults seen from the user's side on the real cluster: the QPU backend (mock, on the
//! bridge) answers garbage, closes mid-response, sends a huge body, hangs or refuses
//! connections while a job acquires; and fails while the job epilog releases. What must hold:
//! the job fails within a bounded time with the QPU and the reason in srun's output, nothing
//! stays held, the node is not drained; a failed release is retried and stays recorded.
//! (HTTP-level trickling and floods: qrmi-backend/tests/faults.rs.)
use std::time::{Duration, Instant};

use integration_tests::qpu_site;
use qpu_site::{held_leases, site, site_with, state_dir, wait_for};
use reliability::report;
use spank_test_support::mock_server::Mode;
use spank_test_support::reliability;

fn error_lines(stderr: &str) -> String {
    stderr
        .lines()
        .filter(|l| l.contains("fresnel") || l.contains("error"))
        .take(2)
        .collect::<Vec<_>>()
        .join(" / ")
}

#[test]
#[ignore = "needs the test cluster: tests/run-all.sh"]
fn each_backend_fault_fails_the_job_in_bounded_time_with_the_reason() {
    const TEST: &str = "each_backend_fault_fails_the_job_in_bounded_time_with_the_reason";
    reliability::start(TEST);
    let cases: [(&str, Option<Mode>, &str); 6] = [
        (
            "HTTP 500 with a JSON error body",
            Some(Mode::Fail),
            "HTTP 500",
        ),
        (
            "HTTP 200 with a body that is not JSON",
            Some(Mode::Garbage),
            "unexpected response",
        ),
        (
            "connection closed mid-response",
            Some(Mode::CloseMid),
            "connection broken",
        ),
        ("a 2 MiB body", Some(Mode::Huge), "response larger than"),
        ("no answer at all (hang)", Some(Mode::Hang), "timed out"),
        (
            "connection refused (nothing listens)",
            None,
            "connection refused",
        ),
    ];
    for (tried, mode, expected) in cases {
        let site = match mode {
            Some(_) => site(),
            None => {
                let port = std::net::TcpListener::bind("0.0.0.0:0")
                    .unwrap()
                    .local_addr()
                    .unwrap()
                    .port();
                let bridge = integration_tests::Cluster::connect()
                    .var("SPANK_BRIDGE_ADDR")
                    .to_string();
                site_with(Some(format!("http://{bridge}:{port}/warden")))
            }
        };
        if let Some(mode) = mode {
            site.server.set_mode_for("POST", "/warden/sessions", mode);
        }
        let started = Instant::now();
        let run = site.cluster.as_user(
            "srun",
            &["-p", "quantum", "-w", "q2", "--qpu=fresnel", "true"],
        );
        let took = started.elapsed();
        let held = held_leases(&site.cluster, "q2").len();
        report(
            "fault: QPU backend (acquire)",
            &format!("srun --qpu=fresnel; the backend's session call gets {tried}"),
            &format!(
                "srun rc {:?} after {:.1} s: {}",
                run.code,
                took.as_secs_f64(),
                error_lines(&run.stderr)
            ),
            &format!(
                "leases still held on q2: {held}; node healthy: {}",
                site.cluster.unhealthy_nodes().is_empty()
            ),
            TEST,
        );
        assert!(!run.ok(), "{tried}: {run:?}");
        assert!(
            run.stderr
                .contains("QPU fresnel (pasqal-local): acquire failed")
                || run.stderr.contains("QPU fresnel (pasqal-local)"),
            "{tried}: {run:?}"
        );
        assert!(run.stderr.contains(expected), "{tried}: {run:?}");
        // http_timeout=3 in the staged plugstack line; the rest is Slurm's own start-up.
        assert!(took < Duration::from_secs(45), "{tried}: took {took:?}");
        assert_eq!(held, 0, "{tried}");
        site.cluster.assert_no_unhealthy_nodes();
    }
}

#[test]
#[ignore = "needs the test cluster: tests/run-all.sh"]
fn a_failing_release_is_retried_and_stays_recorded() {
    const TEST: &str = "a_failing_release_is_retried_and_stays_recorded";
    reliability::start(TEST);
    let site = site();
    site.server
        .set_mode_for("DELETE", "/warden/sessions", Mode::Fail);
    let run = site.cluster.as_user(
        "srun",
        &[
            "-p",
            "quantum",
            "-w",
            "q2",
            "--qpu=fresnel",
            "printenv",
            "fresnel_QRMI_JOB_ACQUISITION_TOKEN",
        ],
    );
    assert!(run.ok(), "{run:?}");
    let token = run.stdout.trim().to_string();
    let deletes = |s: &qpu_site::Site| {
        s.server
            .requests()
            .iter()
            .filter(|r| r.method == "DELETE" && r.target.ends_with(&token))
            .count()
    };
    // Three attempts with backoff once the job ended, then the lease stays as release_failed.
    let state = state_dir(&site.cluster, "q2");
    let mut lease = String::new();
    let recorded = wait_for(Duration::from_secs(60), || {
        lease = std::fs::read_dir(&state)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with("lease-"))
            .filter_map(|e| std::fs::read_to_string(e.path()).ok())
            .find(|t| t.contains(&token) || t.contains("release_failed"))
            .unwrap_or_default();
        lease.contains("release_failed")
    });
    let accounting = std::fs::read_to_string(state.join("accounting.jsonl")).unwrap_or_default();
    let release_line = accounting
        .lines()
        .rev()
        .find(|l| l.contains("release"))
        .unwrap_or("")
        .to_string();
    let lease_json: serde_json::Value = serde_json::from_str(&lease).unwrap_or_default();
    report(
        "fault: QPU backend (release)",
        "the backend answers HTTP 500 to every DELETE of the job's session (release at the job's end)",
        &format!(
            "srun rc {:?} (the job itself succeeded); release calls seen by the backend: {}",
            run.code,
            deletes(&site)
        ),
        &format!(
            "lease state {}, release_attempts {}, last error: {}; accounting: {}",
            lease_json["state"],
            lease_json["release_attempts"],
            lease_json["last_error"].as_str().unwrap_or(""),
            if release_line.len() > 160 {
                &release_line[..160]
            } else {
                &release_line
            }
        ),
        TEST,
    );
    assert!(
        recorded,
        "no release_failed lease in {}: {lease}",
        state.display()
    );
    assert!(deletes(&site) >= 2, "the release was not retried");
    assert!(
        lease_json["last_error"]
            .as_str()
            .unwrap_or("")
            .contains("HTTP 500"),
        "{lease}"
    );
    site.cluster.assert_no_unhealthy_nodes();
}
