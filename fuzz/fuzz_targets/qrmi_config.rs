//! qrmi_config.json (written by admins): parse + validate must never panic; a valid config
//! has unique names, and every error names the file.
#![no_main]
use libfuzzer_sys::fuzz_target;
use qrmi_core::config::Config;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = Path::new("/etc/slurm/qrmi_config.json");
    match Config::parse(path, text) {
        Ok(config) => {
            let names = config.names();
            for (i, n) in names.iter().enumerate() {
                assert!(!names[..i].contains(n), "duplicate name {n:?} accepted");
                assert!(config.get(n).is_some());
            }
            for r in &config.resources {
                // Exercise the accessors the plugin calls on every resource.
                let _ = (r.session_mode(), r.session_max_ttl(), r.warden_url());
                let _ = format!("{r:?}");
                let _ = r.secret_values();
            }
        }
        Err(e) => {
            let msg = e.to_string();
            assert!(
                msg.contains("qrmi_config.json"),
                "error does not name the file: {msg}"
            );
        }
    }
});
