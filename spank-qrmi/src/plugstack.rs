//! plugstack.conf arguments. Accepts the upstream line unchanged
//! (`spank_qrmi.so /etc/slurm/qrmi_config.json --env:NAME=VALUE ...`) and our `key=value`
//! arguments; refuses anything else, naming it. Pure.
use std::path::PathBuf;

use spank::args::PluginArgs;
use spank::{Error, Result};

const PLUGIN: &str = "spank_qrmi";
pub const KEYS: &[&str] = &[
    "config",
    "state_dir",
    "log_level",
    "http_connect_timeout",
    "http_timeout",
    "warden_munge",
];

#[derive(Debug, Default, Clone, PartialEq)]
pub struct PlugstackConfig {
    /// qrmi_config.json; a login node may omit it.
    pub config_path: Option<PathBuf>,
    /// `--env:NAME=VALUE`: set in slurmstepd and in the job.
    pub env: Vec<(String, String)>,
    pub state_dir: Option<PathBuf>,
    pub log_level: Option<u8>,
    pub http_connect_timeout_secs: Option<f64>,
    pub http_timeout_secs: Option<f64>,
    /// Send a munge credential (`x-munge-cred`) with pasqal-local session calls.
    pub warden_munge: bool,
}

fn is_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn seconds(value: &str) -> Option<f64> {
    value
        .parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s > 0.0 && *s <= 3600.0)
}

impl PlugstackConfig {
    pub fn parse<S: AsRef<str>>(args: &[S]) -> Result<Self> {
        let mut config = PlugstackConfig::default();
        let mut pairs = Vec::new();
        for (index, word) in args.iter().map(AsRef::as_ref).enumerate() {
            if let Some(assignment) = word.strip_prefix("--env:") {
                let Some((name, value)) = assignment.split_once('=') else {
                    return Err(Error::new(format!(
                        "{PLUGIN}: plugstack.conf argument '{word}': expected --env:NAME=VALUE"
                    )));
                };
                if !is_env_name(name) {
                    return Err(Error::new(format!(
                        "{PLUGIN}: plugstack.conf argument '{word}': '{name}' is not a valid environment variable name"
                    )));
                }
                config.env.push((name.to_string(), value.to_string()));
            } else if index == 0 && !word.contains('=') && word.starts_with('/') {
                // Upstream form: the config path comes first.
                config.config_path = Some(PathBuf::from(word));
            } else {
                pairs.push(word);
            }
        }
        let args = PluginArgs::parse(PLUGIN, &pairs, KEYS)?;
        if let Some(path) = args.get("config") {
            if config.config_path.is_some() {
                return Err(Error::new(format!(
                    "{PLUGIN}: the config path is given twice in plugstack.conf (first argument and config=)"
                )));
            }
            config.config_path = Some(PathBuf::from(path));
        }
        config.state_dir = args.get("state_dir").map(PathBuf::from);
        if let Some(level) = args.get("log_level") {
            config.log_level = Some(spank::log::parse_level(level).map_err(|e| e.context(PLUGIN))?);
        }
        config.http_connect_timeout_secs = args.get_parsed(
            PLUGIN,
            "http_connect_timeout",
            "seconds, 0 < s <= 3600",
            seconds,
        )?;
        config.http_timeout_secs =
            args.get_parsed(PLUGIN, "http_timeout", "seconds, 0 < s <= 3600", seconds)?;
        config.warden_munge = args
            .get_parsed(PLUGIN, "warden_munge", "yes or no", |v| match v {
                "yes" | "true" | "1" => Some(true),
                "no" | "false" | "0" => Some(false),
                _ => None,
            })?
            .unwrap_or(false);
        for path in [&config.config_path, &config.state_dir]
            .into_iter()
            .flatten()
        {
            if !path.is_absolute() {
                return Err(Error::new(format!(
                    "{PLUGIN}: plugstack.conf path '{}' must be absolute",
                    path.display()
                )));
            }
        }
        Ok(config)
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
        ])
        .unwrap();
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
    }

    #[test]
    fn login_node_may_omit_the_config() {
        assert_eq!(
            PlugstackConfig::parse::<&str>(&[]).unwrap(),
            PlugstackConfig::default()
        );
    }

    #[test]
    fn accepts_our_keys() {
        let config = PlugstackConfig::parse(&[
            "config=/etc/slurm/q.json",
            "state_dir=/var/spool/qrmi",
            "log_level=debug",
            "http_timeout=2.5",
            "warden_munge=yes",
        ])
        .unwrap();
        assert!(config.warden_munge);
        assert_eq!(config.config_path, Some(PathBuf::from("/etc/slurm/q.json")));
        assert_eq!(config.state_dir, Some(PathBuf::from("/var/spool/qrmi")));
        assert_eq!(config.log_level, Some(4));
        assert_eq!(config.http_timeout_secs, Some(2.5));
    }

    #[test]
    fn refuses_other_arguments_by_name() {
        for (args, needle) in [
            (vec!["/etc/q.json", "verbose"], "'verbose'"),
            (vec!["colour=red"], "'colour'"),
            (vec!["--env:1BAD=x"], "'1BAD'"),
            (vec!["--env:NOVALUE"], "--env:NAME=VALUE"),
            (vec!["http_timeout=0"], "http_timeout='0'"),
            (vec!["warden_munge=maybe"], "warden_munge='maybe'"),
            (vec!["config=relative.json"], "must be absolute"),
            (vec!["/etc/a.json", "config=/etc/b.json"], "twice"),
        ] {
            let err = PlugstackConfig::parse(&args).unwrap_err();
            assert!(err.message().contains(needle), "{args:?}: {err}");
            assert!(err.message().contains("spank_qrmi"), "{args:?}: {err}");
        }
    }
}
