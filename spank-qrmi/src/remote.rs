//! slurmstepd side (root, before the tasks start): find which QPUs the job asked for, acquire
//! them once per job (later steps reuse the lease) and give the tasks their environment.
//! Errors here fail the tasks with the reason in the user's output (the layer defers them to
//! task_init), never the node.
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use spank::{Error, Result, Spank};

use crate::acquire::{self, Node, Retry};
use crate::backend::{self, AcquireContext};
use crate::config::Config;
use crate::gres;
use crate::http::HttpConfig;
use crate::jobenv::{self, JobEnvInput};
use crate::joblookup;
use crate::lease::{self, LeaseStore};
use crate::plugstack::PlugstackConfig;
use crate::usersupplied;

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
fn node_qpu_gres(node: &str) -> Vec<gres::QpuGres> {
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

/// The lease and accounting directory of this slurmd: see [`lease::state_dir_for`].
pub fn state_dir(plugstack: &PlugstackConfig) -> PathBuf {
    lease::state_dir_for(
        plugstack.state_dir.as_deref(),
        &cluster_name(),
        &node_name(),
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

/// This host's name (not taken from the job's environment, which the user controls; slurmstepd
/// has no other record of its node name). Several slurmd of one cluster on one host therefore
/// share a state directory: job ids are unique within a cluster, so the leases there are the
/// job's on that host, reused by its steps and released once by the first epilog.
pub fn node_name() -> String {
    spank::host::hostname()
}

pub fn init_post_opt(sp: &Spank, plugstack: &PlugstackConfig, qpu_option: &[String]) -> Result<()> {
    let node = node_name();
    let configured_here = node_qpu_gres(&node);
    if qpu_option.is_empty() && configured_here.is_empty() {
        return Ok(());
    }
    let job_id = sp.job_id()?;
    // The one controller call of this step on this node.
    let facts = match joblookup::load_job(job_id, &node) {
        Ok(facts) => facts,
        Err(e) if qpu_option.is_empty() => {
            // A job that did not name a QPU is not failed for the controller's sake.
            tracing::error!("job {job_id}: cannot tell whether it holds a QPU GRES: {e}");
            return Ok(());
        }
        Err(e) => return Err(Error::new(e)),
    };
    let mut allocated_here = gres::parse_qpu_gres(&facts.gres_here);
    if allocated_here.iter().all(|g| g.kind.is_none()) {
        allocated_here = configured_here;
    }
    let names = gres::requested_qpus(
        qpu_option,
        &gres::parse_qpu_gres(&facts.tres_per_node),
        &allocated_here,
    )
    .map_err(Error::new)?;
    if names.is_empty() {
        return Ok(());
    }
    if let Some(why) = plugstack.qpu_unusable() {
        return Err(Error::new(why));
    }
    let config_path = plugstack.config_path.as_ref().ok_or_else(|| {
        Error::new(
            "this node's plugstack.conf names no qrmi_config.json: no QPU can be acquired here",
        )
    })?;
    let mut config = Config::load(config_path).map_err(|e| Error::new(e.to_string()))?;
    let job_env: BTreeMap<String, String> = sp
        .job_env()
        .unwrap_or_default()
        .iter()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    // The keys this job brings for the QPUs it asked for (only where the site allows).
    let shown = config_path.display().to_string();
    for resource in config
        .resources
        .iter_mut()
        .filter(|r| names.contains(&r.name))
    {
        *resource =
            usersupplied::effective_resource(resource, &job_env, &shown).map_err(Error::new)?;
    }
    let store = LeaseStore::open(&state_dir(plugstack)).map_err(|e| Error::new(e.to_string()))?;
    let time_limit_secs = facts.time_limit_minutes.map(|m| u64::from(m) * 60);
    let job = AcquireContext {
        job_id,
        uid: sp.uid()?,
        time_limit_secs,
    };
    let http = http_config(plugstack);
    let make = |resource: &crate::config::Resource| {
        backend::backend_for(resource, &http, munge_fn(plugstack))
    };
    let acquired = acquire::acquire_all(
        &config,
        &Node {
            name: &node,
            store: &store,
        },
        &job,
        &names,
        &make,
        Retry::default(),
    )
    .map_err(Error::new)?;
    let user_env_names: Vec<String> = job_env.keys().cloned().collect();
    let env = jobenv::job_environment(&JobEnvInput {
        job_id,
        uid: job.uid,
        time_limit_secs,
        qpus: &acquired,
        plugstack_env: &plugstack.env,
        user_env_names: &user_env_names,
        srun_debug: job_env.get("SRUN_DEBUG").map(String::as_str),
    });
    for var in &env.vars {
        sp.setenv(&var.name, &var.value, var.overwrite)?;
    }
    if !env.replaced_user_vars.is_empty() {
        tracing::info!(
            "job {job_id}: replaced the job's own {} with the site's values",
            env.replaced_user_vars.join(", ")
        );
    }
    tracing::info!(
        "job {job_id}: QPUs {} ready on {node}",
        acquired
            .iter()
            .map(|q| q.name.as_str())
            .collect::<Vec<_>>()
            .join(",")
    );
    Ok(())
}
