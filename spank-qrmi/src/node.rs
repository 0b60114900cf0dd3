//! This node's QRMI setup, shared by every context that acquires or releases: where its
//! leases live, its name and cluster, its QPU GRES in slurm.conf, and how backends are
//! reached (timeouts, proxies, munge) as plugstack.conf says.
use std::path::PathBuf;
use std::time::Duration;

use crate::backend;
use crate::gres;
use crate::http::HttpConfig;
use crate::joblookup;
use crate::lease;
use crate::plugstack::PlugstackConfig;

/// Where slurmstepd's own configuration is (its environment, not the job's).
fn slurm_conf_path() -> PathBuf {
    std::env::var_os("SLURM_CONF")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/etc/slurm/slurm.conf"))
}

/// slurm.conf and the files it includes, scanned for QPU GRES and the cluster name.
fn scan_slurm_conf_files() -> Vec<gres::SlurmConfQpus> {
    let main = slurm_conf_path();
    let mut scans = Vec::new();
    let mut files = vec![main.clone()];
    let mut seen = 0;
    while let Some(path) = files.pop() {
        seen += 1;
        if seen > 16 {
            break;
        }
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        let scan = gres::scan_slurm_conf(&text);
        for include in &scan.includes {
            let include = PathBuf::from(include);
            files.push(match (include.is_absolute(), main.parent()) {
                (false, Some(dir)) => dir.join(include),
                _ => include,
            });
        }
        scans.push(scan);
    }
    scans
}

/// This node's `qpu` GRES as slurm.conf declares them (empty when it has none). Count-only
/// GRES leave no trace in a job's environment, so only on such nodes can a job without --qpu
/// hold a QPU; elsewhere no controller call is made.
pub fn node_qpu_gres(node: &str) -> Vec<gres::QpuGres> {
    scan_slurm_conf_files()
        .iter()
        .flat_map(|scan| scan.nodes.iter())
        .find(|(expr, _)| joblookup::hostlist_contains(expr, node))
        .map(|(_, line_gres)| gres::parse_qpu_gres(line_gres))
        .unwrap_or_default()
}

/// slurm.conf's ClusterName ("cluster" when it has none).
fn cluster_name() -> String {
    scan_slurm_conf_files()
        .into_iter()
        .find_map(|scan| scan.cluster_name)
        .unwrap_or_else(|| "cluster".to_string())
}

/// The lease and accounting directory of this slurmd: see [`lease::state_dir_for`]. Named
/// after the host (slurmstepd has no other record of its node name, and the job's environment
/// is the user's): several slurmd of one cluster on one host therefore share it, which is safe
/// as job ids are unique within a cluster (the leases there are the job's on that host, reused
/// by its steps and released once by the first epilog).
pub fn state_dir(plugstack: &PlugstackConfig) -> PathBuf {
    lease::state_dir_for(
        plugstack.state_dir.as_deref(),
        &cluster_name(),
        &spank::host::hostname(),
    )
}

/// The munge credential maker for pasqal-local. `warden_munge` unset: send one whenever the
/// node has munge, as upstream's munge build does (Pasqal's warden authorises by munge UID,
/// and QRMI in the job sends one too).
pub fn munge_fn(plugstack: &PlugstackConfig) -> Option<backend::MungeFn> {
    plugstack
        .warden_munge
        .unwrap_or_else(crate::munge::available)
        .then(|| Box::new(crate::munge::credential) as backend::MungeFn)
}

pub fn http_config(plugstack: &PlugstackConfig) -> HttpConfig {
    let mut http = HttpConfig {
        connect_timeout: Duration::from_secs_f64(
            plugstack.http_connect_timeout_secs.unwrap_or(5.0),
        ),
        timeout: Duration::from_secs_f64(plugstack.http_timeout_secs.unwrap_or(30.0)),
        ..HttpConfig::default()
    };
    http.https_proxy = plugstack.proxy_env("https_proxy").map(str::to_string);
    http.http_proxy = plugstack.proxy_env("http_proxy").map(str::to_string);
    http.no_proxy = plugstack
        .proxy_env("no_proxy")
        .map(|list| list.split(',').map(|h| h.trim().to_string()).collect())
        .unwrap_or_default();
    http
}
