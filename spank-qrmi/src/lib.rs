//! spank_qrmi.so: hook → context → one call into qrmi-core, in one file per Slurm process:
//! `srun` (srun/sbatch/salloc check the `--qpu` names), `slurmstepd` (acquires before the
//! tasks, lets go at the step's end; the batch step's exit releases), `slurmd` (says what is
//! wrong with the plugstack line and config once, and restarts keepers a reboot stopped), and
//! the job's `keeper` process (releases once the job has ended, also after a killed
//! slurmstepd). No job epilog: a SPANK epilog would make slurmd run one for every job. Jobs
//! that ask for no QPU are untouched: no controller call, no environment change, no process.
mod keeper;
mod slurmd;
mod slurmstepd;
mod srun;

use spank::{Context, OptionSpec, Plugin, Result, Spank};

use qrmi_core::plugstack::PlugstackConfig;
use qrmi_core::request::{self, QpuRequest};

#[derive(Default)]
pub struct Qrmi {
    config: PlugstackConfig,
    request: QpuRequest,
    /// Set in slurmstepd while this step uses the job's leases.
    holding: Option<slurmstepd::Holding>,
}

impl Plugin for Qrmi {
    const NAME: &'static str = "spank_qrmi";
    const OPTIONS: &'static [OptionSpec] = request::SPECS;

    fn option(&mut self, name: &'static str, value: Option<&str>, _remote: bool) -> Result<()> {
        self.request.set(name, value)
    }

    fn init(&mut self, sp: &Spank, args: &[String]) -> Result<()> {
        self.config = PlugstackConfig::parse(args);
        // Said once, when slurmd starts (it reads plugstack.conf then), not per job.
        if sp.context() == Context::Slurmd {
            slurmd::init(&self.config);
        }
        Ok(())
    }

    fn init_post_opt(&mut self, sp: &Spank) -> Result<()> {
        match sp.context() {
            Context::Local | Context::Allocator => srun::check(&self.config, &self.request.names),
            Context::Remote => {
                self.holding = slurmstepd::init_post_opt(sp, &self.config, &self.request.names)?;
                Ok(())
            }
            _ => Ok(()),
        }
    }

    fn exit(&mut self, sp: &Spank) -> Result<()> {
        match (sp.context(), self.holding.take()) {
            (Context::Remote, Some(holding)) => slurmstepd::exit(sp, holding),
            _ => Ok(()),
        }
    }
}

// task_init only surfaces errors deferred from slurmstepd's init/init_post_opt (the layer's
// failure policy): Qrmi itself does nothing there.
spank::spank_plugin!(Qrmi, "spank_qrmi", [init_post_opt, task_init, exit]);
