//! The trait a plugin implements: one method per SPANK callback, each a no-op by default.
//! Only the hooks named in `spank_plugin!` are exported to Slurm.
use crate::error::Result;
use crate::handle::Spank;
use crate::options::OptionSpec;

pub trait Plugin: Default + Send + 'static {
    /// The name Slurm knows the plugin by (also the prefix of its log lines).
    const NAME: &'static str;
    /// Options registered in srun, sbatch, salloc, slurmstepd and prolog/epilog.
    const OPTIONS: &'static [OptionSpec] = &[];

    /// An option was given. Runs in srun/sbatch/salloc (`remote == false`, possibly more than
    /// once) and again in slurmstepd (`remote == true`). `value` is None for flags.
    fn option(&mut self, _name: &'static str, _value: Option<&str>, _remote: bool) -> Result<()> {
        Ok(())
    }

    /// First callback in every context; `args` are the plugstack.conf arguments except
    /// `log_level=`, which the layer applies for every plugin.
    fn init(&mut self, _sp: &Spank, _args: &[String]) -> Result<()> {
        Ok(())
    }
    fn init_post_opt(&mut self, _sp: &Spank) -> Result<()> {
        Ok(())
    }
    fn local_user_init(&mut self, _sp: &Spank) -> Result<()> {
        Ok(())
    }
    fn user_init(&mut self, _sp: &Spank) -> Result<()> {
        Ok(())
    }
    fn task_init_privileged(&mut self, _sp: &Spank) -> Result<()> {
        Ok(())
    }
    fn task_init(&mut self, _sp: &Spank) -> Result<()> {
        Ok(())
    }
    fn task_post_fork(&mut self, _sp: &Spank) -> Result<()> {
        Ok(())
    }
    fn task_exit(&mut self, _sp: &Spank) -> Result<()> {
        Ok(())
    }
    fn exit(&mut self, _sp: &Spank) -> Result<()> {
        Ok(())
    }
    fn job_prolog(&mut self, _sp: &Spank) -> Result<()> {
        Ok(())
    }
    fn job_epilog(&mut self, _sp: &Spank) -> Result<()> {
        Ok(())
    }
    fn slurmd_exit(&mut self, _sp: &Spank) -> Result<()> {
        Ok(())
    }
}
