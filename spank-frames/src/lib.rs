//! spank_frames.so: hook → context → one call. Option parsing lives in `options`, what runs
//! in srun/sbatch/salloc in `submit`.
//!
//! Foundation scope: `--frame-dir=DIR` is registered everywhere and validated at submission;
//! jobs that do not use it are untouched (the plugin returns at once in every hook).
mod options;
mod submit;

use spank::args::PluginArgs;
use spank::{Context, OptionSpec, Plugin, Result, Spank};

use options::FrameOptions;

#[derive(Default)]
pub struct Frames {
    options: FrameOptions,
}

/// plugstack.conf arguments this plugin accepts.
const PLUGSTACK_KEYS: &[&str] = &["log_level"];

impl Plugin for Frames {
    const NAME: &'static str = "spank_frames";
    const OPTIONS: &'static [OptionSpec] = options::SPECS;

    fn option(&mut self, name: &'static str, value: Option<&str>, _remote: bool) -> Result<()> {
        self.options.set(name, value)
    }

    fn init(&mut self, _sp: &Spank, args: &[String]) -> Result<()> {
        let args = PluginArgs::parse(Self::NAME, args, PLUGSTACK_KEYS)?;
        if let Some(level) = args.get("log_level") {
            spank::log::set_max_level(spank::log::parse_level(level)?);
        }
        Ok(())
    }

    fn init_post_opt(&mut self, sp: &Spank) -> Result<()> {
        if !self.options.enabled() {
            return Ok(());
        }
        match sp.context() {
            Context::Local | Context::Allocator => submit::check(&self.options),
            _ => Ok(()),
        }
    }
}

spank::spank_plugin!(Frames, "spank_frames", [init_post_opt]);
