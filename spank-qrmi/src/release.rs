//! Releasing every QPU a job holds on this node (root): from the batch step's exit, and from
//! the job's keeper once Slurm says the job has ended. Failed releases stay recorded
//! (release_failed) for a later attempt; released leases are removed.
use crate::acquire::{self, Node, Retry};
use crate::backend;
use crate::config::Config;
use crate::lease::LeaseStore;
use crate::node::{http_config, munge_fn, state_dir};
use crate::plugstack::PlugstackConfig;

/// Releases what the job holds here; Ok(released count), or why some release failed.
pub fn release_job_here(plugstack: &PlugstackConfig, job_id: u32) -> Result<usize, String> {
    let dir = state_dir(plugstack);
    let store = LeaseStore::open(&dir).map_err(|e| e.to_string())?;
    if store.leases(job_id).map_err(|e| e.to_string())?.is_empty() {
        return Ok(0);
    }
    let config = match &plugstack.config_path {
        Some(path) => match Config::load(path) {
            Ok(config) => Some(config),
            Err(e) => {
                tracing::error!("job {job_id}: {e}");
                None
            }
        },
        None => None,
    };
    let http = http_config(plugstack);
    let make = |resource: &crate::config::Resource| {
        backend::backend_for(resource, &http, munge_fn(plugstack))
    };
    let node = spank::host::hostname();
    let (released, failed) = acquire::release_job(
        config.as_ref(),
        &Node {
            name: &node,
            store: &store,
        },
        job_id,
        &make,
        Retry::default(),
    );
    if failed > 0 {
        return Err(format!(
            "job {job_id}: {failed} QPU release(s) failed and stay recorded in {} ({released} released)",
            dir.display()
        ));
    }
    if released > 0 {
        tracing::info!("job {job_id}: released {released} QPU(s)");
    }
    Ok(released)
}
