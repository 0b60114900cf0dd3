//! The environment a job gets (pure). Names are upstream's, so the job-side SDK keeps working:
//! `QRMI_JOB_ID`, `QRMI_JOB_UID`, `QRMI_JOB_QPU_RESOURCES`, `QRMI_JOB_QPU_TYPES`,
//! `SLURM_JOB_QPU_RESOURCES`, `SLURM_JOB_QPU_TYPES`, `<name>_<KEY>` for every environment entry,
//! `<name>_QRMI_JOB_ACQUISITION_TOKEN` and `<name>_QRMI_JOB_TIMEOUT_SECONDS`.
//!
//! Precedence (upstream weakness #7): everything the plugin sets from the admin's config or the
//! acquisition replaces a value the user set (`overwrite = true`); a user's other variables stay,
//! including extra `<name>_QRMI_*` keys the admin did not set. `--env:` values from plugstack.conf
//! are the site's and replace the user's (as upstream sets them): the site's `https_proxy` is
//! the one QRMI uses. An `--env:` name that collides with a name the plugin computes is dropped
//! (ours wins). `RUST_LOG` follows `srun -v`/`--quiet` (the job's SRUN_DEBUG, as upstream maps
//! it) unless the job sets its own; with neither, `--env:RUST_LOG` applies, else `info`. For the IBM session
//! types `<name>_QRMI_IBM_QCS_SESSION_ID` (QRMI prefers it to the acquisition token) is set to
//! the acquired session, so a job's own value cannot silently replace it.
use std::collections::BTreeMap;
use std::fmt;

use crate::config::{Redacted, RedactedMap, ResourceType};

/// `<name>_QRMI_JOB_TIMEOUT_SECONDS` when the job has no time limit (upstream's value).
pub const UNLIMITED_SECONDS: u64 = 4_294_967_295;

/// One QPU acquired for the job. Environment values and the token are secrets: Debug redacts.
#[derive(Clone, PartialEq)]
pub struct AcquiredQpu {
    pub name: String,
    pub kind: ResourceType,
    /// The config's `type` string (the job's QRMI reads it from `QRMI_JOB_QPU_TYPES`).
    pub type_name: String,
    pub environment: BTreeMap<String, String>,
    pub token: String,
}

impl fmt::Debug for AcquiredQpu {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AcquiredQpu")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("environment", &RedactedMap(&self.environment))
            .field("token", &Redacted)
            .finish()
    }
}

/// Everything the job environment depends on.
#[derive(Debug, Clone, Copy)]
pub struct JobEnvInput<'a> {
    pub job_id: u32,
    pub uid: u32,
    /// Seconds; None = unlimited.
    pub time_limit_secs: Option<u64>,
    /// In the order the user asked for them.
    pub qpus: &'a [AcquiredQpu],
    /// plugstack.conf `--env:NAME=VALUE` pairs.
    pub plugstack_env: &'a [(String, String)],
    /// Names already in the user's (job's) environment.
    pub user_env_names: &'a [String],
    /// The job's SRUN_DEBUG (srun's verbosity: 3 by default, more with -v, less with -Q).
    pub srun_debug: Option<&'a str>,
}

/// QRMI's `RUST_LOG` for srun's verbosity, as upstream maps it: 2 or less → error, 3 → info,
/// 4 → debug, 5 and more → trace. None for a value that is not a number.
pub fn rust_log_for(srun_debug: &str) -> Option<&'static str> {
    let level: i64 = srun_debug.trim().parse().ok()?;
    Some(match level {
        i64::MIN..=2 => "error",
        3 => "info",
        4 => "debug",
        _ => "trace",
    })
}

/// One variable to set. `secret` values (config environment, tokens) are redacted by Debug and
/// Display and must never be logged.
#[derive(Clone, PartialEq, Eq)]
pub struct EnvVar {
    pub name: String,
    pub value: String,
    pub overwrite: bool,
    pub secret: bool,
}

impl fmt::Debug for EnvVar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

impl fmt::Display for EnvVar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.secret {
            write!(f, "{}={Redacted}", self.name)?;
        } else {
            write!(f, "{}={}", self.name, self.value)?;
        }
        if !self.overwrite {
            f.write_str(" (unless set)")?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobEnv {
    /// In the order to set them.
    pub vars: Vec<EnvVar>,
    /// User variables that the plugin replaces (to tell the user; names only).
    pub replaced_user_vars: Vec<String>,
}

/// Computes the job environment.
pub fn job_environment(input: &JobEnvInput<'_>) -> JobEnv {
    let mut ours: Vec<EnvVar> = Vec::new();
    let mut push = |name: String, value: String, secret: bool| {
        ours.push(EnvVar {
            name,
            value,
            overwrite: true,
            secret,
        })
    };
    let names = input
        .qpus
        .iter()
        .map(|q| q.name.as_str())
        .collect::<Vec<_>>()
        .join(",");
    let types = input
        .qpus
        .iter()
        .map(|q| q.type_name.as_str())
        .collect::<Vec<_>>()
        .join(",");
    push("QRMI_JOB_ID".into(), input.job_id.to_string(), false);
    push("QRMI_JOB_UID".into(), input.uid.to_string(), false);
    push("QRMI_JOB_QPU_RESOURCES".into(), names.clone(), false);
    push("QRMI_JOB_QPU_TYPES".into(), types.clone(), false);
    push("SLURM_JOB_QPU_RESOURCES".into(), names, false);
    push("SLURM_JOB_QPU_TYPES".into(), types, false);
    let timeout = input
        .time_limit_secs
        .unwrap_or(UNLIMITED_SECONDS)
        .min(UNLIMITED_SECONDS);
    for qpu in input.qpus {
        for (key, value) in &qpu.environment {
            push(format!("{}_{key}", qpu.name), value.clone(), true);
        }
        push(
            format!("{}_QRMI_JOB_ACQUISITION_TOKEN", qpu.name),
            qpu.token.clone(),
            true,
        );
        push(
            format!("{}_QRMI_JOB_TIMEOUT_SECONDS", qpu.name),
            timeout.to_string(),
            false,
        );
        if let Some(prefix) = qpu
            .kind
            .ibm_prefix()
            .filter(|_| qpu.kind != ResourceType::IbmQuantumSystem)
        {
            push(
                format!("{}_{prefix}SESSION_ID", qpu.name),
                qpu.token.clone(),
                true,
            );
        }
    }
    // RUST_LOG: the job's own wins; srun -v/--quiet (SRUN_DEBUG other than 3) beats the
    // site's --env:RUST_LOG; otherwise --env:RUST_LOG, else what SRUN_DEBUG says, else
    // (a batch job has no SRUN_DEBUG, or it is not a number) upstream's "info".
    let site_rust_log = input.plugstack_env.iter().any(|(k, _)| k == "RUST_LOG");
    let user_rust_log = input.user_env_names.iter().any(|k| k == "RUST_LOG");
    let level = match input
        .srun_debug
        .and_then(|d| Some((rust_log_for(d)?, d.trim() == "3")))
    {
        Some((level, false)) => Some(level),
        _ if site_rust_log => None,
        Some((level, true)) => Some(level),
        None => Some("info"),
    };
    if !user_rust_log && let Some(level) = level {
        push("RUST_LOG".into(), level.to_string(), false);
    }
    let user_rust_log = input.user_env_names.iter().any(|k| k == "RUST_LOG");
    let mut vars: Vec<EnvVar> = input
        .plugstack_env
        .iter()
        .filter(|(name, _)| !ours.iter().any(|v| &v.name == name))
        .filter(|(name, _)| !(name == "RUST_LOG" && user_rust_log))
        .map(|(name, value)| EnvVar {
            name: name.clone(),
            value: value.clone(),
            overwrite: true,
            secret: false,
        })
        .collect();
    let replaced_user_vars = vars
        .iter()
        .chain(ours.iter())
        .filter(|v| v.overwrite && input.user_env_names.contains(&v.name))
        .map(|v| v.name.clone())
        .collect();
    vars.extend(ours);
    JobEnv {
        vars,
        replaced_user_vars,
    }
}

/// The job's variables whose value the plugin changes (names only, for slurmd's log): a value
/// the job brought and that is used as it is (a key the site leaves to the job, a session
/// mode of `user_keys`) is not "replaced".
pub fn replaced_values(env: &JobEnv, job_env: &BTreeMap<String, String>) -> Vec<String> {
    env.replaced_user_vars
        .iter()
        .filter(|name| {
            let ours = env.vars.iter().find(|v| &v.name == *name).map(|v| &v.value);
            job_env.get(name.as_str()) != ours
        })
        .cloned()
        .collect()
}

/// Applies `vars` to an environment map the way `setenv(name, value, overwrite)` would (for
/// tests and for callers that hold the environment as a map).
pub fn apply(env: &mut BTreeMap<String, String>, vars: &[EnvVar]) {
    for var in vars {
        if var.overwrite || !env.contains_key(&var.name) {
            env.insert(var.name.clone(), var.value.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn qpu(name: &str, kind: ResourceType, env: &[(&str, &str)], token: &str) -> AcquiredQpu {
        AcquiredQpu {
            name: name.into(),
            kind,
            type_name: kind.as_str().to_string(),
            environment: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            token: token.into(),
        }
    }

    fn sample() -> Vec<AcquiredQpu> {
        vec![
            qpu(
                "ibm_torino",
                ResourceType::IbmQuantumComputeService,
                &[
                    ("QRMI_IBM_QCS_ENDPOINT", "https://q"),
                    ("QRMI_IBM_QCS_IAM_APIKEY", "APIKEY-SECRET"),
                ],
                "session-123",
            ),
            qpu(
                "FRESNEL",
                ResourceType::PasqalLocal,
                &[("QRMI_WARDEN_URL", "http://w:8006")],
                "warden-9",
            ),
        ]
    }

    #[test]
    fn upstream_names_and_values() {
        let qpus = sample();
        let env = job_environment(&JobEnvInput {
            job_id: 42,
            uid: 1000,
            time_limit_secs: Some(600),
            qpus: &qpus,
            plugstack_env: &[("https_proxy".into(), "http://proxy:3128".into())],
            user_env_names: &[],
            srun_debug: None,
        });
        let mut map = BTreeMap::new();
        apply(&mut map, &env.vars);
        let get = |k: &str| map.get(k).map(String::as_str);
        assert_eq!(get("QRMI_JOB_ID"), Some("42"));
        assert_eq!(get("QRMI_JOB_UID"), Some("1000"));
        assert_eq!(get("QRMI_JOB_QPU_RESOURCES"), Some("ibm_torino,FRESNEL"));
        assert_eq!(
            get("QRMI_JOB_QPU_TYPES"),
            Some("ibm-quantum-compute-service,pasqal-local")
        );
        assert_eq!(get("SLURM_JOB_QPU_RESOURCES"), Some("ibm_torino,FRESNEL"));
        assert_eq!(
            get("SLURM_JOB_QPU_TYPES"),
            Some("ibm-quantum-compute-service,pasqal-local")
        );
        assert_eq!(get("ibm_torino_QRMI_IBM_QCS_ENDPOINT"), Some("https://q"));
        assert_eq!(
            get("ibm_torino_QRMI_IBM_QCS_IAM_APIKEY"),
            Some("APIKEY-SECRET")
        );
        assert_eq!(
            get("ibm_torino_QRMI_JOB_ACQUISITION_TOKEN"),
            Some("session-123")
        );
        assert_eq!(get("ibm_torino_QRMI_JOB_TIMEOUT_SECONDS"), Some("600"));
        assert_eq!(get("FRESNEL_QRMI_WARDEN_URL"), Some("http://w:8006"));
        assert_eq!(get("FRESNEL_QRMI_JOB_ACQUISITION_TOKEN"), Some("warden-9"));
        assert_eq!(get("https_proxy"), Some("http://proxy:3128"));
        // Issue 15 item 8: QRMI prefers SESSION_ID to the token: it is our session too.
        assert_eq!(
            get("ibm_torino_QRMI_IBM_QCS_SESSION_ID"),
            Some("session-123")
        );
        assert_eq!(get("RUST_LOG"), Some("info"));
        assert_eq!(map.len(), 16);
    }

    // Issue 15 item 7: srun -v / --quiet set QRMI's log level, as upstream maps SRUN_DEBUG.
    #[test]
    fn rust_log_follows_srun_verbosity() {
        let qpus = sample();
        let rust_log = |srun_debug: Option<&str>, site: bool, user: bool| {
            let site_env = [("RUST_LOG".to_string(), "qrmi=warn".to_string())];
            let user_env = ["RUST_LOG".to_string()];
            let env = job_environment(&JobEnvInput {
                job_id: 7,
                uid: 1000,
                time_limit_secs: None,
                qpus: &qpus,
                plugstack_env: if site { &site_env } else { &[] },
                user_env_names: if user { &user_env } else { &[] },
                srun_debug,
            });
            let mut map = BTreeMap::new();
            if user {
                map.insert("RUST_LOG".to_string(), "mine".to_string());
            }
            apply(&mut map, &env.vars);
            map.get("RUST_LOG").cloned()
        };
        assert_eq!(rust_log(Some("4"), false, false).as_deref(), Some("debug"));
        assert_eq!(rust_log(Some("2"), false, false).as_deref(), Some("error"));
        assert_eq!(rust_log(Some("6"), false, false).as_deref(), Some("trace"));
        assert_eq!(rust_log(Some("3"), false, false).as_deref(), Some("info"));
        // The site's --env:RUST_LOG is the default; -v beats it; the job's own beats both.
        assert_eq!(
            rust_log(Some("3"), true, false).as_deref(),
            Some("qrmi=warn")
        );
        assert_eq!(rust_log(Some("4"), true, false).as_deref(), Some("debug"));
        assert_eq!(rust_log(Some("5"), true, true).as_deref(), Some("mine"));
        // A batch job has no SRUN_DEBUG: upstream's "info" (before: unset), or the site's.
        assert_eq!(rust_log(None, false, false).as_deref(), Some("info"));
        assert_eq!(rust_log(Some("x"), false, false).as_deref(), Some("info"));
        assert_eq!(rust_log(None, true, false).as_deref(), Some("qrmi=warn"));
        assert_eq!(rust_log(None, false, true).as_deref(), Some("mine"));
    }

    #[test]
    fn unlimited_time_limit() {
        let qpus = sample();
        let env = job_environment(&JobEnvInput {
            job_id: 1,
            uid: 0,
            time_limit_secs: None,
            qpus: &qpus,
            plugstack_env: &[],
            user_env_names: &[],
            srun_debug: None,
        });
        let v = env
            .vars
            .iter()
            .find(|v| v.name == "FRESNEL_QRMI_JOB_TIMEOUT_SECONDS")
            .unwrap();
        assert_eq!(v.value, "4294967295");
        // Absurdly large limits are capped to the same value.
        let env = job_environment(&JobEnvInput {
            time_limit_secs: Some(u64::MAX),
            qpus: &qpus,
            job_id: 1,
            uid: 0,
            plugstack_env: &[],
            user_env_names: &[],
            srun_debug: None,
        });
        assert!(env.vars.iter().any(|v| v.value == "4294967295"));
    }

    #[test]
    fn admin_values_and_tokens_replace_the_users_extra_keys_stay() {
        let qpus = sample();
        let user: Vec<String> = [
            "ibm_torino_QRMI_JOB_ACQUISITION_TOKEN",
            "ibm_torino_QRMI_IBM_QCS_ENDPOINT",
            "ibm_torino_QRMI_IBM_QCS_SESSION_MODE",
            "https_proxy",
            "QRMI_JOB_ID",
        ]
        .map(String::from)
        .to_vec();
        let env = job_environment(&JobEnvInput {
            job_id: 7,
            uid: 1000,
            time_limit_secs: Some(60),
            qpus: &qpus,
            plugstack_env: &[
                ("https_proxy".into(), "http://site-proxy:3128".into()),
                ("QRMI_JOB_ID".into(), "999".into()),
            ],
            user_env_names: &user,
            srun_debug: None,
        });
        let mut map: BTreeMap<String, String> = user
            .iter()
            .map(|k| (k.clone(), "user".to_string()))
            .collect();
        apply(&mut map, &env.vars);
        assert_eq!(map["ibm_torino_QRMI_JOB_ACQUISITION_TOKEN"], "session-123");
        assert_eq!(map["ibm_torino_QRMI_IBM_QCS_ENDPOINT"], "https://q");
        assert_eq!(map["ibm_torino_QRMI_IBM_QCS_SESSION_MODE"], "user");
        // Issue 15 item 6: the site's --env:https_proxy beats the user's (as upstream).
        assert_eq!(map["https_proxy"], "http://site-proxy:3128");
        // The --env: entry colliding with ours is dropped, ours wins.
        assert_eq!(map["QRMI_JOB_ID"], "7");
        assert_eq!(
            env.replaced_user_vars,
            vec![
                "https_proxy",
                "QRMI_JOB_ID",
                "ibm_torino_QRMI_IBM_QCS_ENDPOINT",
                "ibm_torino_QRMI_JOB_ACQUISITION_TOKEN"
            ]
        );
    }

    #[test]
    fn debug_and_display_redact_secrets() {
        let qpus = sample();
        let env = job_environment(&JobEnvInput {
            job_id: 1,
            uid: 2,
            time_limit_secs: None,
            qpus: &qpus,
            plugstack_env: &[],
            user_env_names: &[],
            srun_debug: None,
        });
        let shown = format!(
            "{env:?} {qpus:?} {}",
            env.vars
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(" ")
        );
        for secret in [
            "APIKEY-SECRET",
            "session-123",
            "warden-9",
            "https://q",
            "http://w:8006",
        ] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        assert!(
            shown.contains("ibm_torino_QRMI_IBM_QCS_IAM_APIKEY=<redacted>"),
            "{shown}"
        );
        assert!(
            shown.contains("QRMI_JOB_QPU_RESOURCES=ibm_torino,FRESNEL"),
            "{shown}"
        );
    }

    // slurmd's log said "replaced the job's own ibm_user_QRMI_IBM_QCS_IAM_APIKEY, ... with the
    // site's values" for keys the job brought and that were used as they were.
    #[test]
    fn values_the_job_brought_and_kept_are_not_said_replaced() {
        let qpus = sample();
        let user_env_names = [
            "ibm_torino_QRMI_IBM_QCS_ENDPOINT".to_string(),
            "ibm_torino_QRMI_IBM_QCS_IAM_APIKEY".to_string(),
        ];
        let env = job_environment(&JobEnvInput {
            job_id: 1,
            uid: 0,
            time_limit_secs: None,
            qpus: &qpus,
            plugstack_env: &[],
            user_env_names: &user_env_names,
            srun_debug: None,
        });
        let job: BTreeMap<String, String> = [
            ("ibm_torino_QRMI_IBM_QCS_ENDPOINT", "https://elsewhere"),
            ("ibm_torino_QRMI_IBM_QCS_IAM_APIKEY", "APIKEY-SECRET"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(
            replaced_values(&env, &job),
            vec!["ibm_torino_QRMI_IBM_QCS_ENDPOINT".to_string()]
        );
    }
}
