//! The job epilog (root, once per job on each node, also after scancel, a time limit or a
//! killed slurmstepd): release every QPU the job holds on this node. slurmd runs it for every
//! job, so a job without a lease costs one directory listing and nothing else.
use spank::{Error, Result, Spank};

use crate::acquire::{self, Node, Retry};
use crate::backend;
use crate::config::Config;
use crate::lease::LeaseStore;
use crate::plugstack::PlugstackConfig;
use crate::remote::{http_config, munge_fn, node_name, state_dir};

pub fn release(sp: &Spank, plugstack: &PlugstackConfig) -> Result<()> {
    let job_id = sp.job_id()?;
    let dir = state_dir(plugstack);
    if !acquire::has_leases(&dir, job_id) {
        return Ok(());
    }
    let store = LeaseStore::open(&dir).map_err(|e| Error::new(e.to_string()))?;
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
    let node = node_name();
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
        return Err(Error::new(format!(
            "job {job_id}: {failed} QPU release(s) failed and stay recorded in {} ({released} released)",
            dir.display()
        )));
    }
    tracing::info!("job {job_id}: released {released} QPU(s)");
    Ok(())
}
