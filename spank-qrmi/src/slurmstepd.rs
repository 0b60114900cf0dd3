//! slurmstepd side (root, before the tasks start): find which QPUs the job asked for, acquire
//! them once per job (later steps reuse the lease) and give the tasks their environment; at
//! the step's end, let go of them (the batch step's exit releases them, as the job ends with
//! it). The site is built once per step. Errors before the tasks fail the tasks with the
//! reason in the user's output (the layer defers them to task_init), never the node.
use std::collections::BTreeMap;

use spank::host::ProcessId;
use spank::{Error, Result, Spank};

use qrmi_core::backend::AcquireContext;
use qrmi_core::config::Config;
use qrmi_core::gres;
use qrmi_core::jobenv::{self, JobEnvInput};
use qrmi_core::lease::Role;
use qrmi_core::plugstack::PlugstackConfig;
use qrmi_core::site::Site;
use qrmi_core::usersupplied;

use crate::keeper;

/// A step that uses the job's leases on this node: it is registered with them until it ends.
pub struct Holding {
    job_id: u32,
    step: ProcessId,
    site: Site,
}

/// Acquires (or reuses) what the step asked for. `Some` when the step now uses leases here.
pub fn init_post_opt(
    sp: &Spank,
    plugstack: &PlugstackConfig,
    qpu_option: &[String],
) -> Result<Option<Holding>> {
    let site = Site::new(plugstack.clone());
    let configured_here = site.node_qpu_gres(spank::slurm::hostlist_contains);
    if qpu_option.is_empty() && configured_here.is_empty() {
        return Ok(None);
    }
    let job_id = sp.job_id()?;
    // The one controller call of this step on this node.
    let facts = match spank::slurm::load_job(job_id, &site.node) {
        Ok(facts) => facts,
        Err(e) if qpu_option.is_empty() => {
            // A job that did not name a QPU is not failed for the controller's sake.
            tracing::error!("job {job_id}: cannot tell whether it holds a QPU GRES: {e}");
            return Ok(None);
        }
        Err(e) => return Err(Error::new(e)),
    };
    let mut allocated_here = gres::parse_qpu_gres(&facts.gres_here);
    if allocated_here.iter().all(|g| g.kind.is_none()) {
        allocated_here = configured_here;
    }
    let requested_gres = gres::parse_qpu_gres(&facts.tres_per_node);
    // Nothing asked for (no --qpu, no GRES that could name a QPU): not a QPU job.
    if matches!(
        gres::requested_qpus(qpu_option, &requested_gres, &allocated_here),
        Ok(names) if names.is_empty()
    ) {
        return Ok(None);
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
    let names =
        gres::requested_qpus_in_config(qpu_option, &requested_gres, &allocated_here, |name| {
            config.get(name).is_some() || config.unusable_reason(name).is_some()
        })
        .map_err(Error::new)?;
    if names.is_empty() {
        tracing::info!(
            "job {job_id}: its qpu GRES types name no QPU of {}: nothing to acquire",
            config_path.display()
        );
        return Ok(None);
    }
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
    let store = site.open_store().map_err(|e| Error::new(e.to_string()))?;
    // Registered before acquiring, so the job's keeper never takes this step for gone.
    let step = ProcessId::current()
        .ok_or_else(|| Error::new("cannot read this slurmstepd's /proc/self/stat"))?;
    store
        .register(job_id, Role::Step, step)
        .map_err(|e| Error::new(e.to_string()))?;

    let time_limit_secs = facts.time_limit_minutes.map(|m| u64::from(m) * 60);
    let job = AcquireContext {
        job_id,
        uid: sp.uid()?,
        time_limit_secs,
    };
    let acquired = match site.acquire(&config, &store, &job, &names) {
        Ok(acquired) => acquired,
        Err(e) => {
            store.unregister(job_id, Role::Step, step);
            return Err(Error::new(e));
        }
    };
    // Whatever ends the job from here on, its keeper releases what is left.
    keeper::ensure(&site, &store, job_id);
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
    let replaced = jobenv::replaced_values(&env, &job_env);
    if !replaced.is_empty() {
        tracing::info!(
            "job {job_id}: replaced the job's own {} with the site's values",
            replaced.join(", ")
        );
    }
    tracing::info!(
        "job {job_id}: QPUs {} ready on {}",
        acquired
            .iter()
            .map(|q| q.name.as_str())
            .collect::<Vec<_>>()
            .join(","),
        site.node
    );
    Ok(Some(Holding { job_id, step, site }))
}

/// At the end of a step that used the job's leases (slurm_spank_exit, root). The batch step
/// lasts as long as the job, so its end is the job's: release at once, as upstream does.
/// Other steps only let go; the keeper releases once Slurm says the job has ended.
pub fn exit(sp: &Spank, holding: Holding) -> Result<()> {
    // Released before letting go, so the keeper never sees the job without a step mid-release.
    let released = if sp.is_batch_step() {
        holding.site.release_job_here(holding.job_id).map(|_| ())
    } else {
        Ok(())
    };
    if let Ok(store) = holding.site.open_store() {
        store.unregister(holding.job_id, Role::Step, holding.step);
    }
    released.map_err(Error::new)
}
