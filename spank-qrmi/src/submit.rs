//! srun / sbatch / salloc side (local and allocator contexts), as the submitting user: where
//! the QPU configuration is readable (login nodes given a copy without secrets), unknown QPU
//! names are refused before the job is queued, with the list of available QPUs.
use spank::{Error, Result};

use crate::config::{Config, ConfigErrorKind};
use crate::plugstack::PlugstackConfig;

pub fn check(plugstack: &PlugstackConfig, names: &[String]) -> Result<()> {
    if names.is_empty() {
        return Ok(());
    }
    if let Some(why) = plugstack.qpu_unusable() {
        return Err(Error::new(why));
    }
    let Some(path) = &plugstack.config_path else {
        return Ok(());
    };
    let config = match Config::load(path) {
        Ok(config) => config,
        // Not readable here (root-only, as a config holding secrets must be): the names are
        // checked when the job starts.
        Err(e) if matches!(e.kind, ConfigErrorKind::Unreadable { .. }) => return Ok(()),
        Err(e) => return Err(Error::new(format!("--qpu cannot be checked: {e}"))),
    };
    for name in names {
        if let Some(why) = config.unusable_reason(name) {
            return Err(Error::new(format!("--qpu: {why}")));
        }
        if config.get(name).is_none() {
            return Err(Error::new(format!(
                "--qpu: unknown QPU '{name}': available QPUs are {}",
                config.names().join(", ")
            )));
        }
    }
    Ok(())
}
