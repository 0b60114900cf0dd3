//! The QPU site of qrmi.rs and the hardening tests: mock backends on the bridge address and the
//! cluster's qrmi_config.json pointing at them (ibm_torino and fresnel), and what the tests ask
//! of it (held leases, release requests, a job's environment).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use spank_test_support::mock_server::{MockServer, Recorded};

use crate::Cluster;

pub struct Site {
    pub cluster: Cluster,
    pub server: MockServer,
}

/// Starts the mock backends and writes qrmi_config.json; `warden` replaces fresnel's
/// QRMI_WARDEN_URL (e.g. a port nothing listens on).
pub fn site_with(warden: Option<String>) -> Site {
    start("hardening-apikey", warden)
}

/// The site with `apikey` as ibm_torino's QRMI_IBM_QCS_IAM_APIKEY (a test that looks for the
/// key where it must not be).
pub fn site_with_apikey(apikey: &str) -> Site {
    start(apikey, None)
}

fn start(apikey: &str, warden: Option<String>) -> Site {
    let cluster = Cluster::connect();
    let server = MockServer::start_on(cluster.var("SPANK_BRIDGE_ADDR"));
    let etc = cluster.scratch().join("etc");
    std::fs::create_dir_all(&etc).unwrap();
    let config = serde_json::json!({"resources": [
        {"name": "ibm_torino", "type": "ibm-quantum-compute-service", "environment": {
            "QRMI_IBM_QCS_ENDPOINT": format!("{}/api", server.base),
            "QRMI_IBM_QCS_IAM_ENDPOINT": server.base,
            "QRMI_IBM_QCS_IAM_APIKEY": apikey,
            "QRMI_IBM_QCS_SERVICE_CRN": "crn:v1:bluemix:public:quantum-computing:us-east:a/test::",
            "QRMI_IBM_QCS_SESSION_MODE": "batch"}},
        {"name": "fresnel", "type": "pasqal-local", "environment": {
            "QRMI_WARDEN_URL": warden.unwrap_or_else(|| format!("{}/warden", server.base))}}
    ]});
    install_config(&cluster, &config, "0600");
    Site { cluster, server }
}

/// Writes `config` as the cluster's qrmi_config.json with file mode `mode`.
fn install_config(cluster: &Cluster, config: &serde_json::Value, mode: &str) {
    let path = cluster.scratch().join("etc").join("qrmi_config.json");
    std::fs::write(&path, config.to_string()).unwrap();
    let run = cluster.as_root("chmod", &[mode, path.to_str().unwrap()]);
    assert!(run.ok(), "{run:?}");
}

/// Replaces the site's qrmi_config.json (file mode `mode`) once no earlier job holds a lease.
pub fn write_config(site: &Site, config: &serde_json::Value, mode: &str) {
    wait_for_earlier_releases(&site.cluster);
    install_config(&site.cluster, config, mode);
}

pub fn site() -> Site {
    site_with(None)
}

/// Path of the QPU state directory of a node.
pub fn state_dir(cluster: &Cluster, node: &str) -> PathBuf {
    cluster.scratch().join("qrmi-state").join(node)
}

/// Lease files of `node` that still say "held".
pub fn held_leases(cluster: &Cluster, node: &str) -> Vec<String> {
    std::fs::read_dir(state_dir(cluster, node))
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("lease-"))
        .filter_map(|e| std::fs::read_to_string(e.path()).ok())
        .filter(|text| text.contains("\"held\""))
        .collect()
}

/// The value of `name` in `env` output.
pub fn env_value<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}=")))
}

pub fn is_release(r: &Recorded) -> bool {
    (r.method == "DELETE" || r.method == "PATCH") && r.target.contains("/sessions/")
}

pub fn wait_for(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while !done() {
        if start.elapsed() > limit {
            return false;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    true
}

/// Waits until no node holds a lease of an earlier job: its epilog reads the config and the
/// plugstack line, so neither may change under it.
pub fn wait_for_earlier_releases(cluster: &Cluster) {
    let held = |node: &str| !held_leases(cluster, node).is_empty();
    assert!(
        wait_for(Duration::from_secs(30), || !held("q1") && !held("q2")),
        "leases of earlier jobs still held"
    );
}
