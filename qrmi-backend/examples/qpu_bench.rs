//! Benchmark helper for tests/bench/run.sh (issue #5, item 8): QPU acquire + release through the
//! plugin's own code in qrmi-core (acquire::acquire_all, acquire::release_job, a LeaseStore and
//! the accounting log) with the plugin's backends: `backend::helper`, which runs the
//! spank-qrmi-backend executable for every operation that calls the backend, as slurmstepd and
//! the keeper do (found next to this example's directory, target/release/, or given as the
//! second argument); `--in-process` instead calls the backends inside this process (the cost
//! of the helper alone = the difference). Against the loopback mock server of the tests, which
//! answers at once. Usage: `qpu_bench [CYCLES] [HELPER | --in-process]`. Prints one line per QPU
//! type:
//! `TYPE requests_per_cycle p50_ms p99_ms min_ms max_ms raw_http_p50_ms cycles`.
//! raw_http is one plain GET to the same server on a kept-alive connection (what the loopback
//! and the server cost per request, as the plugin's requests after the first of an operation
//! pay), so "our side" ≈ p50 − requests × raw_http, our connection setups included.
//! Percentiles are nearest-rank, as bench-report computes them. Prints numbers only.
use qrmi_backend::backend::backend_for;
use qrmi_core::backend::helper::{self, HelperSettings};
use qrmi_core::{acquire, backend, config, lease};

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use acquire::{Node, Retry};
use backend::{AcquireContext, Backend, BackendError};
use config::{Config, Resource};
use lease::LeaseStore;
use qrmi_backend::http::HttpConfig;
use spank_test_support::mock_server::MockServer;

/// Nearest-rank percentile of sorted samples: the ceil(p × n)-th smallest.
fn pct(sorted: &[f64], p: f64) -> f64 {
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn main() {
    let cycles: u32 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(1000);
    let server = MockServer::start();
    let base = server.base.clone();
    let json = format!(
        r#"{{"resources": [
        {{"name": "ibm_torino", "type": "ibm-quantum-compute-service", "environment": {{
            "QRMI_IBM_QCS_ENDPOINT": "{base}/api", "QRMI_IBM_QCS_IAM_ENDPOINT": "{base}",
            "QRMI_IBM_QCS_IAM_APIKEY": "k", "QRMI_IBM_QCS_SERVICE_CRN": "crn:x"}}}},
        {{"name": "garnet", "type": "iqm-server", "status_check": false, "environment": {{
            "QRMI_IQM_ISA_ENDPOINT": "{base}/iqm", "QRMI_IQM_ISA_TOKEN": "t"}}}},
        {{"name": "garnet_checked", "type": "iqm-server", "status_check": true, "environment": {{
            "QRMI_IQM_ISA_ENDPOINT": "{base}/iqm", "QRMI_IQM_ISA_TOKEN": "t"}}}}
        ]}}"#
    );
    let config = Config::parse(Path::new("/bench/qrmi_config.json"), &json).expect("config");
    let state: PathBuf = std::env::temp_dir().join(format!("qpu-bench-{}", std::process::id()));
    let store = LeaseStore::open(&state).expect("lease store");
    let http = HttpConfig {
        connect_timeout: Duration::from_secs(2),
        timeout: Duration::from_secs(3),
        ..HttpConfig::default()
    };
    let how = std::env::args().nth(2);
    let in_process = how.as_deref() == Some("--in-process");
    let program = match how.filter(|_| !in_process) {
        Some(path) => PathBuf::from(path),
        None => std::env::current_exe()
            .expect("own path")
            .parent()
            .and_then(Path::parent)
            .expect("target/release")
            .join(helper::HELPER_NAME),
    };
    assert!(
        in_process || program.is_file(),
        "no helper at {}",
        program.display()
    );
    let settings = HelperSettings {
        program: Ok(program),
        http: http.clone(),
        munge: false,
    };
    let make = |r: &Resource| -> Result<Box<dyn Backend>, BackendError> {
        if in_process {
            backend_for(r, &http, None)
        } else {
            Ok(helper::backend_for(r, &settings))
        }
    };
    let node = Node {
        name: "bench",
        store: &store,
    };
    // One plain request per cycle on one kept-alive connection (opened by a first request):
    // the loopback + server share of each request.
    let agent = ureq::AgentBuilder::new().build();
    let _ = agent.get(&format!("{base}/qs/v1/backends/x")).call();
    let mut raw: Vec<f64> = (0..cycles.min(500))
        .map(|_| {
            let t = Instant::now();
            let _ = agent.get(&format!("{base}/qs/v1/backends/x")).call();
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    raw.sort_by(f64::total_cmp);
    let raw_p50 = pct(&raw, 0.5);
    for name in ["garnet", "garnet_checked", "ibm_torino"] {
        let kind = config.get(name).expect("resource").kind.as_str();
        let before = server.requests().len();
        let mut times = Vec::with_capacity(cycles as usize);
        for i in 0..cycles {
            let job = AcquireContext {
                job_id: 100_000 + i,
                uid: 1000,
                time_limit_secs: Some(600),
            };
            let t = Instant::now();
            let got = acquire::acquire_all(
                &config,
                &node,
                &job,
                &[name.to_string()],
                &make,
                Retry::default(),
            );
            let (released, failed) =
                acquire::release_job(Some(&config), &node, job.job_id, &make, Retry::default());
            times.push(t.elapsed().as_secs_f64() * 1e3);
            assert!(
                got.is_ok() && released == 1 && failed == 0,
                "{name}: {got:?}"
            );
        }
        let requests = (server.requests().len() - before) as f64 / f64::from(cycles);
        times.sort_by(f64::total_cmp);
        println!(
            "{name}({kind}) {requests:.0} {:.3} {:.3} {:.3} {:.3} {raw_p50:.3} {cycles}",
            pct(&times, 0.5),
            pct(&times, 0.99),
            times[0],
            times[times.len() - 1]
        );
    }
    let _ = std::fs::remove_dir_all(&state);
}
