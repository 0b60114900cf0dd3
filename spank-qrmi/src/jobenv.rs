//! The environment a job gets (pure). Names are upstream's, so the job-side SDK keeps working:
//! `QRMI_JOB_ID`, `QRMI_JOB_UID`, `QRMI_JOB_QPU_RESOURCES`, `QRMI_JOB_QPU_TYPES`,
//! `SLURM_JOB_QPU_RESOURCES`, `SLURM_JOB_QPU_TYPES`, `<name>_<KEY>` for every environment entry,
//! `<name>_QRMI_JOB_ACQUISITION_TOKEN` and `<name>_QRMI_JOB_TIMEOUT_SECONDS`.
//!
//! Precedence (upstream weakness #7): everything the plugin sets from the admin's config or the
//! acquisition replaces a value the user set (`overwrite = true`); a user's other variables stay,
//! including extra `<name>_QRMI_*` keys the admin did not set. `--env:` values from plugstack.conf
//! are defaults (`overwrite = false`): a user's own `https_proxy` or `RUST_LOG` wins. An `--env:`
//! name that collides with a name the plugin computes is dropped (ours wins).
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
    }
    let mut vars: Vec<EnvVar> = input
        .plugstack_env
        .iter()
        .filter(|(name, _)| !ours.iter().any(|v| &v.name == name))
        .map(|(name, value)| EnvVar {
            name: name.clone(),
            value: value.clone(),
            overwrite: false,
            secret: false,
        })
        .collect();
    let replaced_user_vars = ours
        .iter()
        .filter(|v| input.user_env_names.contains(&v.name))
        .map(|v| v.name.clone())
        .collect();
    vars.extend(ours);
    JobEnv {
        vars,
        replaced_user_vars,
    }
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
        assert_eq!(map.len(), 14);
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
        });
        let mut map: BTreeMap<String, String> = user
            .iter()
            .map(|k| (k.clone(), "user".to_string()))
            .collect();
        apply(&mut map, &env.vars);
        assert_eq!(map["ibm_torino_QRMI_JOB_ACQUISITION_TOKEN"], "session-123");
        assert_eq!(map["ibm_torino_QRMI_IBM_QCS_ENDPOINT"], "https://q");
        assert_eq!(map["ibm_torino_QRMI_IBM_QCS_SESSION_MODE"], "user");
        assert_eq!(map["https_proxy"], "user");
        // The --env: entry colliding with ours is dropped, ours wins.
        assert_eq!(map["QRMI_JOB_ID"], "7");
        assert_eq!(
            env.replaced_user_vars,
            vec![
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
}
