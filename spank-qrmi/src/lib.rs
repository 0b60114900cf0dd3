//! spank_qrmi.so: hook → context → one call. plugstack.conf arguments are parsed in
//! `plugstack`, the `--qpu` option in `request`.
//!
//! Foundation scope: `--qpu=NAMES` is registered everywhere and syntax-checked at submission;
//! the upstream plugstack.conf line is accepted. Acquisition and release come with the
//! spank-qrmi issue; jobs that do not ask for a QPU are untouched.
pub mod accounting;
pub mod backend;
pub mod config;
pub mod http;
pub mod jobenv;
pub mod lease;
mod plugstack;
mod request;

use spank::{OptionSpec, Plugin, Result, Spank};

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

    fn init(&mut self, _sp: &Spank, args: &[String]) -> Result<()> {
        self.config = PlugstackConfig::parse(args)?;
        if let Some(level) = self.config.log_level {
            spank::log::set_max_level(level);
        }
        Ok(())
    }
}

spank::spank_plugin!(Qrmi, "spank_qrmi", []);
