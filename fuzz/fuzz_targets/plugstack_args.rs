//! plugstack.conf arguments (written by admins), NUL-separated words: spank_qrmi's parser
//! (upstream line and key=value) and the generic key=value parser spank_frames uses.
#![no_main]
use libfuzzer_sys::fuzz_target;
use qrmi_core::plugstack::PlugstackConfig;
use spank::args::PluginArgs;

fuzz_target!(|data: &[u8]| {
    let words = spank_fuzz::split_strings(data, 64);
    {
        let c = PlugstackConfig::parse(&words);
        for (name, _) in &c.env {
            assert!(
                !name.is_empty() && !name.contains('='),
                "bad env name {name:?}"
            );
        }
        for s in [c.http_timeout_secs, c.http_connect_timeout_secs]
            .into_iter()
            .flatten()
        {
            assert!(s.is_finite() && s > 0.0, "bad timeout {s}");
        }
    }
    let known = ["log_level", "state_dir", "config"];
    if let Ok(args) = PluginArgs::parse("spank_fuzz", &words, &known) {
        // Every word is key=value with a known key, given once: get() returns its value.
        for w in &words {
            let (k, v) = w.split_once('=').expect("accepted a word without '='");
            assert!(known.contains(&k));
            assert_eq!(args.get(k), Some(v));
        }
        let _ = args.get_parsed("spank_fuzz", "log_level", "a level", |s| {
            s.parse::<u8>().ok()
        });
    }
});
