//! plugstack.conf arguments. Accepts the upstream line unchanged
//! (`spank_qrmi.so /etc/slurm/qrmi_config.json --env:NAME=VALUE ...`) and our `key=value`
//! arguments (`log_level=` is the SPANK layer's, for every plugin). Parsing never fails: words upstream would ignore are warnings, and a problem that
//! makes QPUs unusable (a relative config path, a malformed `--env:`, a bad value of one of our
//! keys) is kept in `qpu_error`, so only jobs that ask for a QPU fail (upstream fails those
//! too), never the others. Pure.
use std::path::PathBuf;

use crate::config::is_env_name;

const PLUGIN: &str = "spank_qrmi";
pub const KEYS: &[&str] = &[
    "config",
    "state_dir",
    "http_connect_timeout",
    "http_timeout",
    "warden_munge",
    "backend_helper",
];

#[derive(Debug, Default, Clone, PartialEq)]
pub struct PlugstackConfig {
    /// qrmi_config.json; a login node may omit it.
    pub config_path: Option<PathBuf>,
    /// `--env:NAME=VALUE`: set in slurmstepd and in the job.
    pub env: Vec<(String, String)>,
    pub state_dir: Option<PathBuf>,
    pub http_connect_timeout_secs: Option<f64>,
    pub http_timeout_secs: Option<f64>,
    /// Send a munge credential (`x-munge-cred`) with pasqal-local session calls.
    /// None = not given (the default depends on whether munge is available).
    pub warden_munge: Option<bool>,
    /// `backend_helper=`: the spank-qrmi-backend executable (default: where packaging put it,
    /// else next to spank_qrmi.so).
    pub backend_helper: Option<PathBuf>,
    /// Words upstream ignores (and we do, with this warning in slurmd's log).
    pub warnings: Vec<String>,
    /// Why no QPU can be acquired with this line (each problem, naming the argument). Jobs
    /// that ask for a QPU fail with it; other jobs are not affected.
    pub qpu_errors: Vec<String>,
}

fn seconds(value: &str) -> Option<f64> {
    value
        .parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s > 0.0 && *s <= 3600.0)
}

fn yes_no(value: &str) -> Option<bool> {
    match value {
        "yes" | "true" | "1" => Some(true),
        "no" | "false" | "0" => Some(false),
        _ => None,
    }
}

impl PlugstackConfig {
    pub fn parse<S: AsRef<str>>(args: &[S]) -> Self {
        let mut config = PlugstackConfig::default();
        let bad = |config: &mut PlugstackConfig, word: &str, why: String| {
            config
                .qpu_errors
                .push(format!("{PLUGIN}: plugstack.conf argument '{word}': {why}"));
        };
        let mut seen: Vec<&str> = Vec::new();
        for (index, word) in args.iter().map(AsRef::as_ref).enumerate() {
            if let Some(assignment) = word.strip_prefix("--env:") {
                match assignment.split_once('=') {
                    None => bad(&mut config, word, "expected --env:NAME=VALUE".into()),
                    Some((name, _)) if !is_env_name(name) => bad(
                        &mut config,
                        word,
                        format!("'{name}' is not a valid environment variable name"),
                    ),
                    Some((name, value)) => config.env.push((name.to_string(), value.to_string())),
                }
                continue;
            }
            let Some((key, value)) = word.split_once('=').filter(|(k, _)| KEYS.contains(k)) else {
                if index == 0 {
                    // Upstream form: the config path comes first.
                    if word.starts_with('/') {
                        config.config_path = Some(PathBuf::from(word));
                    } else {
                        bad(
                            &mut config,
                            word,
                            "the config path must be absolute (e.g. /etc/slurm/qrmi_config.json)"
                                .into(),
                        );
                    }
                } else {
                    config.warnings.push(format!(
                        "{PLUGIN}: plugstack.conf argument '{word}' is not known and is ignored (known: a config path first, --env:NAME=VALUE, {}=...)",
                        KEYS.join("=..., ")
                    ));
                }
                continue;
            };
            if seen.contains(&key) {
                bad(&mut config, word, format!("{key} is given twice"));
                continue;
            }
            seen.push(key);
            match key {
                "config" => {
                    if config.config_path.is_some() {
                        bad(
                            &mut config,
                            word,
                            "the config path is given twice (first argument and config=)".into(),
                        );
                    } else if !value.starts_with('/') {
                        bad(&mut config, word, "the config path must be absolute".into());
                    } else {
                        config.config_path = Some(PathBuf::from(value));
                    }
                }
                "backend_helper" => {
                    if value.starts_with('/') {
                        config.backend_helper = Some(PathBuf::from(value));
                    } else {
                        bad(
                            &mut config,
                            word,
                            "backend_helper must be an absolute path".into(),
                        );
                    }
                }
                "state_dir" => {
                    if value.starts_with('/') {
                        config.state_dir = Some(PathBuf::from(value));
                    } else {
                        bad(
                            &mut config,
                            word,
                            "state_dir must be an absolute path".into(),
                        );
                    }
                }
                "http_connect_timeout" | "http_timeout" => match seconds(value) {
                    Some(s) if key == "http_timeout" => config.http_timeout_secs = Some(s),
                    Some(s) => config.http_connect_timeout_secs = Some(s),
                    None => bad(
                        &mut config,
                        word,
                        format!("{key}='{value}': expected seconds, 0 < s <= 3600"),
                    ),
                },
                _ => match yes_no(value) {
                    Some(b) => config.warden_munge = Some(b),
                    None => bad(
                        &mut config,
                        word,
                        format!("warden_munge='{value}': expected yes or no"),
                    ),
                },
            }
        }
        config
    }

    /// Why no QPU can be acquired with this plugstack line (None: nothing in the line stops it).
    pub fn qpu_unusable(&self) -> Option<String> {
        (!self.qpu_errors.is_empty()).then(|| {
            format!(
                "no QPU can be used on this node: {}",
                self.qpu_errors.join("; ")
            )
        })
    }

    /// The proxy `--env:` sets for `scheme` ("http" or "https"): the lower-case name wins, as
    /// curl and QRMI's reqwest read it.
    pub fn proxy_env(&self, name: &str) -> Option<&str> {
        let lower = name.to_ascii_lowercase();
        let upper = name.to_ascii_uppercase();
        self.env
            .iter()
            .find(|(k, _)| *k == lower)
            .or_else(|| self.env.iter().find(|(k, _)| *k == upper))
            .map(|(_, v)| v.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_upstream_line() {
        let config = PlugstackConfig::parse(&[
            "/etc/slurm/qrmi_config.json",
            "--env:https_proxy=http://proxy:3128",
            "--env:RUST_LOG=qrmi=debug",
        ]);
        assert_eq!(
            config.config_path,
            Some(PathBuf::from("/etc/slurm/qrmi_config.json"))
        );
        assert_eq!(
            config.env,
            vec![
                ("https_proxy".to_string(), "http://proxy:3128".to_string()),
                ("RUST_LOG".to_string(), "qrmi=debug".to_string())
            ]
        );
        assert!(config.warnings.is_empty() && config.qpu_errors.is_empty());
        assert_eq!(config.proxy_env("https_proxy"), Some("http://proxy:3128"));
        assert_eq!(config.proxy_env("HTTPS_PROXY"), Some("http://proxy:3128"));
    }

    #[test]
    fn login_node_may_omit_the_config() {
        assert_eq!(
            PlugstackConfig::parse::<&str>(&[]),
            PlugstackConfig::default()
        );
    }

    #[test]
    fn accepts_our_keys() {
        let config = PlugstackConfig::parse(&[
            "config=/etc/slurm/q.json",
            "state_dir=/var/spool/qrmi",
            "http_timeout=2.5",
            "warden_munge=yes",
        ]);
        assert!(config.qpu_errors.is_empty(), "{:?}", config.qpu_errors);
        assert_eq!(config.warden_munge, Some(true));
        assert_eq!(config.config_path, Some(PathBuf::from("/etc/slurm/q.json")));
        assert_eq!(config.state_dir, Some(PathBuf::from("/var/spool/qrmi")));
        assert_eq!(config.http_timeout_secs, Some(2.5));
    }

    // Issue 15 item 1: upstream ignores unknown words, so they are a warning, never an error
    // that would fail every job on the node.
    #[test]
    fn unknown_words_are_warnings_only() {
        let config = PlugstackConfig::parse(&["/etc/q.json", "verbose", "colour=red", "--env:A=b"]);
        assert!(config.qpu_errors.is_empty(), "{:?}", config.qpu_errors);
        assert_eq!(config.config_path, Some(PathBuf::from("/etc/q.json")));
        assert_eq!(config.env, vec![("A".to_string(), "b".to_string())]);
        assert_eq!(config.warnings.len(), 2, "{:?}", config.warnings);
        assert!(
            config.warnings[0].contains("'verbose'"),
            "{:?}",
            config.warnings
        );
        assert!(
            config.warnings[1].contains("'colour=red'"),
            "{:?}",
            config.warnings
        );
    }

    // Issue 15 item 1: problems that make QPUs unusable are kept for QPU jobs, not raised.
    #[test]
    fn unusable_arguments_are_kept_for_qpu_jobs_naming_the_argument() {
        for (args, needle) in [
            (
                vec!["relative.json"],
                "'relative.json': the config path must be absolute",
            ),
            (vec!["--env:1BAD=x"], "'1BAD'"),
            (
                vec!["/etc/q.json", "--env:NOVALUE"],
                "'--env:NOVALUE': expected --env:NAME=VALUE",
            ),
            (vec!["http_timeout=0"], "http_timeout='0'"),
            (vec!["warden_munge=maybe"], "warden_munge='maybe'"),
            (vec!["config=relative.json"], "must be absolute"),
            (vec!["/etc/a.json", "config=/etc/b.json"], "twice"),
            (vec!["http_timeout=1", "http_timeout=2"], "given twice"),
        ] {
            let config = PlugstackConfig::parse(&args);
            let all = config.qpu_errors.join("; ");
            assert!(all.contains(needle), "{args:?}: {all}");
            assert!(all.contains("spank_qrmi"), "{args:?}: {all}");
        }
    }
}
