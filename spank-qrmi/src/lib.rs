//! spank_qrmi.so: hook → context → one call. plugstack.conf arguments are parsed in
//! `plugstack`, the `--qpu` option in `request`; `submit` checks names in srun/sbatch/salloc,
//! `remote` acquires in slurmstepd, `epilog` releases when the job ends (job epilog, so a
//! killed slurmstepd still gets its QPUs released). Jobs that ask for no QPU are untouched:
//! no controller call, no environment change; the epilog only looks for a lease file.
pub mod accounting;
mod acquire;
pub mod backend;
pub mod config;
mod epilog;
pub mod gres;
pub mod http;
pub mod jobenv;
mod joblookup;
pub mod lease;
mod munge;
pub mod plugstack; // pub for fuzz/ only
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
        }
        Ok(())
    }

    fn init_post_opt(&mut self, sp: &Spank) -> Result<()> {
        match sp.context() {
            Context::Local | Context::Allocator => submit::check(&self.config, &self.request.names),
            Context::Remote => remote::init_post_opt(sp, &self.config, &self.request.names),
            _ => Ok(()),
        }
    }

    fn job_epilog(&mut self, sp: &Spank) -> Result<()> {
        epilog::release(sp, &self.config)
    }
}

spank::spank_plugin!(Qrmi, "spank_qrmi", [init_post_opt, job_epilog]);
