//! spank_frames.so: hook → context → one call into the file of the Slurm process it runs in:
//! `srun` (srun/sbatch/salloc: check the frame dir, record the submission) and `slurmstepd`
//! (per-task variables, the result capture in `tee`, the record written as the job's user by
//! `as_user`). The options, their checks and the records are frames-core's; the process
//! primitives (fork, pipes, the drop to the user, inotify) are in `sys`, the only module with
//! `unsafe`. Jobs without --frame-dir are untouched: every hook returns at once.
mod as_user;
mod slurmstepd;
mod srun;
mod sys;
mod tee;

use frames_core::options::{FrameOptions, OPTIONS};
use spank::args::PluginArgs;
use spank::{Context, Error, OptionSpec, Plugin, Result, Spank};

use slurmstepd::Remote;

/// frames-core's option table in the form the SPANK layer registers.
const SPECS: [OptionSpec; OPTIONS.len()] = {
    let mut specs = [OptionSpec::flag("", ""); OPTIONS.len()];
    let mut i = 0;
    while i < OPTIONS.len() {
        specs[i] = OptionSpec {
            name: OPTIONS[i].name,
            arginfo: OPTIONS[i].arg,
            usage: OPTIONS[i].usage,
        };
        i += 1;
    }
    specs
};

#[derive(Default)]
pub struct Frames {
    options: FrameOptions,
    remote: Remote,
    /// srun/salloc: the submission to complete once its outcome is known.
    pending: Option<srun::Pending>,
    /// plugstack.conf `capture_helper=PATH`: the result-capture helper, if not the one next to
    /// spank_frames.so.
    capture_helper: Option<std::path::PathBuf>,
}

/// plugstack.conf arguments this plugin accepts (`log_level=` is the layer's, for every plugin).
const PLUGSTACK_KEYS: &[&str] = &["capture_helper"];

impl Plugin for Frames {
    const NAME: &'static str = "spank_frames";
    const OPTIONS: &'static [OptionSpec] = &SPECS;

    fn option(&mut self, name: &'static str, value: Option<&str>, _remote: bool) -> Result<()> {
        self.options.set(name, value).map_err(Error::new)
    }

    fn init(&mut self, _sp: &Spank, args: &[String]) -> Result<()> {
        let args = PluginArgs::parse(Self::NAME, args, PLUGSTACK_KEYS)?;
        self.capture_helper =
            args.get_parsed(Self::NAME, "capture_helper", "an absolute path", |v| {
                Some(std::path::PathBuf::from(v)).filter(|p| p.is_absolute())
            })?;
        Ok(())
    }

    fn init_post_opt(&mut self, sp: &Spank) -> Result<()> {
        match sp.context() {
            // Frame options without --frame-dir are refused here, in srun/sbatch/salloc,
            // never in slurmstepd (a refusal there fails a job that was already accepted).
            context @ (Context::Local | Context::Allocator) => {
                self.pending = srun::check(&self.options, context, sp)?;
                Ok(())
            }
            Context::Remote if self.options.enabled() => {
                self.remote.init_post_opt(sp, &self.options)
            }
            _ => Ok(()),
        }
    }

    fn local_user_init(&mut self, sp: &Spank) -> Result<()> {
        srun::local_user_init(&mut self.pending, sp)
    }

    fn exit(&mut self, _sp: &Spank) -> Result<()> {
        srun::exit(&mut self.pending);
        Ok(())
    }

    fn task_init(&mut self, sp: &Spank) -> Result<()> {
        self.remote
            .task_init(sp, &self.options, self.capture_helper.as_deref())
    }

    fn task_post_fork(&mut self, sp: &Spank) -> Result<()> {
        self.remote.task_post_fork(sp)
    }

    fn task_exit(&mut self, sp: &Spank) -> Result<()> {
        self.remote.task_exit(sp, &self.options)
    }
}

spank::spank_plugin!(
    Frames,
    "spank_frames",
    [
        init_post_opt,
        local_user_init,
        task_init,
        task_post_fork,
        task_exit,
        exit
    ]
);
