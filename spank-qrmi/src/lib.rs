//! spank_qrmi.so: hook → context → one call. plugstack.conf arguments are parsed in
//! `plugstack`, the `--qpu` option in `request`; `submit` checks names in srun/sbatch/salloc,
//! `remote` acquires in slurmstepd and lets go at the step's end, `release` gives QPUs back
//! (from the batch step's exit, or from the job's `keeper` once the job has ended, also after
//! a killed slurmstepd; slurmd's start restarts keepers a reboot stopped). No job epilog: a
//! SPANK epilog would make slurmd run one for every job. Jobs that ask for no QPU are
//! untouched: no controller call, no environment change, no process.
pub mod accounting;
mod acquire;
pub mod backend;
pub mod config;
pub mod gres;
pub mod http;
pub mod jobenv;
mod joblookup;
mod keeper;
pub mod lease;
mod munge;
mod node;
pub mod plugstack; // pub for fuzz/ only
mod release;
mod remote;
pub mod request; // pub for fuzz/ only
mod submit;
pub mod usersupplied;

use spank::{Context, OptionSpec, Plugin, Result, Spank};

use plugstack::PlugstackConfig;
use request::QpuRequest;

#[derive(Default)]
pub struct Qrmi {
    config: PlugstackConfig,
    request: QpuRequest,
    /// Set in slurmstepd while this step uses the job's leases.
    holding: Option<remote::Holding>,
}

impl Plugin for Qrmi {
    const NAME: &'static str = "spank_qrmi";
    const OPTIONS: &'static [OptionSpec] = request::SPECS;

    fn option(&mut self, name: &'static str, value: Option<&str>, _remote: bool) -> Result<()> {
        self.request.set(name, value)
    }

    fn init(&mut self, sp: &Spank, args: &[String]) -> Result<()> {
        self.config = PlugstackConfig::parse(args);
        if let Some(level) = self.config.log_level {
            spank::log::set_max_level(level);
        }
        // Said once, when slurmd starts (it reads plugstack.conf then), not per job.
        if sp.context() == Context::Slurmd {
            for warning in &self.config.warnings {
                tracing::warn!("{warning}");
            }
            for problem in &self.config.qpu_errors {
                tracing::error!("{problem}: jobs asking for a QPU on this node will fail");
            }
            if let Some(path) = &self.config.config_path {
                match config::Config::load(path) {
                    Ok(config) => {
                        for message in config.admin_messages() {
                            tracing::warn!("{message}");
                        }
                    }
                    Err(e) => {
                        tracing::error!("{e}: jobs asking for a QPU on this node will fail")
                    }
                }
            }
            // Leases a reboot left behind get their keeper back (one directory listing).
            let dir = node::state_dir(&self.config);
            if let Some(store) = dir
                .is_dir()
                .then(|| lease::LeaseStore::open(&dir).ok())
                .flatten()
            {
                keeper::reclaim_orphans(&self.config, &store);
            }
        }
        Ok(())
    }

    fn init_post_opt(&mut self, sp: &Spank) -> Result<()> {
        match sp.context() {
            Context::Local | Context::Allocator => submit::check(&self.config, &self.request.names),
            Context::Remote => {
                self.holding = remote::init_post_opt(sp, &self.config, &self.request.names)?;
                Ok(())
            }
            _ => Ok(()),
        }
    }

    fn exit(&mut self, sp: &Spank) -> Result<()> {
        match (sp.context(), self.holding.take()) {
            (Context::Remote, Some(holding)) => remote::exit(sp, &self.config, holding),
            _ => Ok(()),
        }
    }
}

// task_init only surfaces errors deferred from slurmstepd's init/init_post_opt (the layer's
// failure policy): Qrmi itself does nothing there.
spank::spank_plugin!(Qrmi, "spank_qrmi", [init_post_opt, task_init, exit]);
