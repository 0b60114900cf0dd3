//! slurmd side (root, when slurmd starts and reads plugstack.conf): what is wrong with the
//! plugstack line or qrmi_config.json is said once in slurmd's log, not per job; leases a
//! reboot left behind get their keeper back (one directory listing).
use qrmi_core::plugstack::PlugstackConfig;
use qrmi_core::site::Site;

use crate::keeper;

pub fn init(plugstack: &PlugstackConfig) {
    for warning in &plugstack.warnings {
        tracing::warn!("{warning}");
    }
    for problem in &plugstack.qpu_errors {
        tracing::error!("{problem}: jobs asking for a QPU on this node will fail");
    }
    let site = Site::new(plugstack.clone());
    match site.load_config() {
        Some(Ok(config)) => {
            for message in config.admin_messages() {
                tracing::warn!("{message}");
            }
        }
        Some(Err(e)) => tracing::error!("{e}: jobs asking for a QPU on this node will fail"),
        None => {}
    }
    if let Some(store) = site
        .state_dir
        .is_dir()
        .then(|| site.open_store().ok())
        .flatten()
    {
        keeper::reclaim_orphans(&site, &store);
    }
}
