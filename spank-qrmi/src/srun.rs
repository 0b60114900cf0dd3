//! srun / sbatch / salloc side (local and allocator contexts), as the submitting user: where
//! the QPU configuration is readable (login nodes given a copy without secrets), unknown QPU
//! names are refused before the job is queued, with the list of available QPUs.
//!
//! Nothing else is refused here: the QPUs are acquired on the compute node, with that node's
//! plugstack line and qrmi_config.json. A line or a copy of the file on the submitting host
//! that we cannot use (a word upstream ignores in first place, a malformed `--env:`, a file
//! that is not JSON, world-writable, or a resource with a placeholder URL) says nothing about
//! the compute node's, and upstream does nothing at submission: the names are then checked
//! when the job starts, where a real problem fails the job with its reason.
use spank::{Error, Result};

use qrmi_core::config::Config;
use qrmi_core::plugstack::PlugstackConfig;

pub fn check(plugstack: &PlugstackConfig, names: &[String]) -> Result<()> {
    if names.is_empty() || plugstack.qpu_unusable().is_some() {
        return Ok(());
    }
    let Some(path) = &plugstack.config_path else {
        return Ok(());
    };
    let Ok(config) = Config::load(path) else {
        // Not readable here (root-only, as a config holding secrets must be) or not usable:
        // the names are checked when the job starts.
        return Ok(());
    };
    for name in names {
        if config.get(name).is_none() && config.unusable_reason(name).is_none() {
            return Err(Error::new(format!(
                "--qpu: unknown QPU '{name}': available QPUs are {}",
                config.names().join(", ")
            )));
        }
    }
    Ok(())
}
