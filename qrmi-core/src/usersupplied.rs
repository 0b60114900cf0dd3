//! Keys a job brings for a QPU (issue 15 item 5; pure, no FFI). Upstream lets a job's own
//! `<name>_QRMI_*` variables take part in acquisition; a site may leave credentials to its
//! users (`"environment": {}`). The rule here: keys the site's config sets are the site's,
//! except those it marks user-overridable (`user_keys`; session mode and TTL by default); keys
//! it leaves out may come from the job — but never an endpoint the plugin itself calls (as root,
//! from slurmstepd) when the site's config holds a credential for that QPU, since the site's
//! secret would then go where the job chose. Keys only the job's QRMI uses (an S3 endpoint, an
//! oqtopus proxy, any key of a type we do not know) are the job's, as upstream: the job reads
//! the site's credential from its own environment anyway, so refusing them protects nothing
//! and would fail jobs upstream runs.
use std::collections::BTreeMap;

use crate::config::{self, Resource};

/// Keys the plugin itself sets for the job; a job's value is never used for them.
/// (The session id is ours too: QRMI prefers it to the acquisition token.)
const PLUGIN_KEYS: &[&str] = &[
    "QRMI_JOB_ACQUISITION_TOKEN",
    "QRMI_JOB_TIMEOUT_SECONDS",
    "QRMI_IBM_QCS_SESSION_ID",
    "QRMI_IBM_QRS_SESSION_ID",
];

/// The resource as this job uses it: the site's environment plus the job's `<name>_<KEY>`
/// values where allowed (their keys listed in `from_job`). Errors name the QPU, the key and
/// what to do; values are never shown.
pub fn effective_resource(
    resource: &Resource,
    job_env: &BTreeMap<String, String>,
    config_path: &str,
) -> Result<Resource, String> {
    let name = &resource.name;
    let prefix = format!("{name}_");
    let site_secret = resource
        .environment
        .iter()
        .find(|(k, v)| config::is_secret_key(k) && !v.is_empty())
        .map(|(k, _)| k.clone());
    let mut out = resource.clone();
    let mut refused = Vec::new();
    for (var, value) in job_env {
        let Some(key) = var.strip_prefix(&prefix) else {
            continue;
        };
        if !key.starts_with("QRMI_") || PLUGIN_KEYS.contains(&key) || value.is_empty() {
            continue;
        }
        let site_sets = resource.get(key).is_some();
        if site_sets && !resource.user_keys.iter().any(|k| k == key) {
            continue; // the site's value; jobenv replaces the job's copy and says so
        }
        if !site_sets
            && resource.kind.plugin_url_keys().contains(&key)
            && let Some(secret) = &site_secret
        {
            refused.push(format!(
                "the job's {var} is refused: {config_path} holds {secret} for QPU '{name}' but not {key}, so the site's credential would go where the job chose (ask the admin to set {key})"
            ));
            continue;
        }
        out.environment.insert(key.to_string(), value.clone());
        out.from_job.push(key.to_string());
    }
    if !refused.is_empty() {
        return Err(refused.join("; "));
    }
    let missing = config::missing_keys(out.kind, &out.environment);
    if !missing.is_empty() {
        return Err(format!(
            "QPU '{name}' ({}) needs {}: neither {config_path} nor the job (as {name}_<KEY>) sets {}",
            out.type_name,
            missing.join(", "),
            if missing.len() == 1 { "it" } else { "them" }
        ));
    }
    let problems = config::value_problems(&out);
    if !problems.is_empty() {
        return Err(problems.join("; "));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, SessionMode};
    use std::path::Path;

    fn config(text: &str) -> Config {
        Config::parse(Path::new("/etc/slurm/qrmi_config.json"), text).unwrap()
    }

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    const EMPTY: &str = r#"{"resources": [{"name": "ibm_torino", "type": "ibm-quantum-compute-service", "environment": {}}]}"#;

    // Issue 15 item 5: a resource with "environment": {} whose keys come from the user.
    #[test]
    fn the_job_may_bring_every_key_the_site_leaves_out() {
        let config = config(EMPTY);
        let resource = config.get("ibm_torino").unwrap();
        let job = env(&[
            (
                "ibm_torino_QRMI_IBM_QCS_ENDPOINT",
                "https://q.example/api/v1",
            ),
            (
                "ibm_torino_QRMI_IBM_QCS_IAM_ENDPOINT",
                "https://iam.example",
            ),
            ("ibm_torino_QRMI_IBM_QCS_IAM_APIKEY", "user-key"),
            ("ibm_torino_QRMI_IBM_QCS_SERVICE_CRN", "crn:v1:user"),
            ("ibm_torino_QRMI_JOB_ACQUISITION_TOKEN", "forged"),
            (
                "ibm_torino_QRMI_IBM_QCS_SESSION_ID",
                "someone-elses-session",
            ),
            ("other_QRMI_IBM_QCS_IAM_APIKEY", "not-for-this-qpu"),
        ]);
        let used = effective_resource(resource, &job, "/etc/slurm/qrmi_config.json").unwrap();
        assert_eq!(used.get("QRMI_IBM_QCS_IAM_APIKEY"), Some("user-key"));
        assert_eq!(used.from_job.len(), 4, "{:?}", used.from_job);
        assert!(used.get("QRMI_JOB_ACQUISITION_TOKEN").is_none());
        assert!(used.get("QRMI_IBM_QCS_SESSION_ID").is_none());
        // Nothing brought: the job fails naming what is missing.
        let e = effective_resource(resource, &BTreeMap::new(), "/etc/slurm/qrmi_config.json")
            .unwrap_err();
        assert!(
            e.contains("needs QRMI_IBM_QCS_ENDPOINT, QRMI_IBM_QCS_IAM_ENDPOINT, QRMI_IBM_QCS_IAM_APIKEY, QRMI_IBM_QCS_SERVICE_CRN")
                && e.contains("ibm_torino_<KEY>"),
            "{e}"
        );
    }

    // Issue 15 item 5: a user's SESSION_MODE=batch is the session we open.
    #[test]
    fn session_mode_and_ttl_are_the_users_to_choose() {
        let config = config(
            r#"{"resources": [{"name": "ibm_torino", "type": "ibm-quantum-compute-service", "environment": {
                "QRMI_IBM_QCS_ENDPOINT": "https://q/api/v1", "QRMI_IBM_QCS_IAM_ENDPOINT": "https://iam",
                "QRMI_IBM_QCS_IAM_APIKEY": "SITE-SECRET", "QRMI_IBM_QCS_SERVICE_CRN": "crn:v1:site",
                "QRMI_IBM_QCS_SESSION_MODE": "dedicated"}}]}"#,
        );
        let resource = config.get("ibm_torino").unwrap();
        let job = env(&[
            ("ibm_torino_QRMI_IBM_QCS_SESSION_MODE", "batch"),
            ("ibm_torino_QRMI_IBM_QCS_SESSION_MAX_TTL", "600"),
            ("ibm_torino_QRMI_IBM_QCS_SERVICE_CRN", "crn:v1:user"),
        ]);
        let used = effective_resource(resource, &job, "/q.json").unwrap();
        assert_eq!(used.session_mode(), SessionMode::Batch);
        assert_eq!(used.session_max_ttl(), 600);
        // The site's own keys stay the site's.
        assert_eq!(used.get("QRMI_IBM_QCS_SERVICE_CRN"), Some("crn:v1:site"));
        // A bad value from the job fails the job, naming the key.
        let e = effective_resource(
            resource,
            &env(&[("ibm_torino_QRMI_IBM_QCS_SESSION_MODE", "shared")]),
            "/q.json",
        )
        .unwrap_err();
        assert!(e.contains("QRMI_IBM_QCS_SESSION_MODE is \"shared\""), "{e}");
    }

    // Issue 15 rule: keys only the job's QRMI uses are the job's even where the site holds a
    // credential (the job sees it anyway). Before: an oqtopus proxy, an S3 endpoint or an
    // unknown type's URL from the user failed the job; upstream runs it.
    #[test]
    fn keys_only_the_jobs_qrmi_uses_are_the_jobs() {
        let config = config(
            r#"{"resources": [
                {"name": "oq", "type": "oqtopus", "environment": {
                    "QRMI_OQTOPUS_URL": "https://oq", "QRMI_OQTOPUS_API_TOKEN": "SITE-SECRET"}},
                {"name": "heron", "type": "ibm-quantum-system", "environment": {
                    "QRMI_IBM_QS_ENDPOINT": "https://qs", "QRMI_IBM_QS_IAM_ENDPOINT": "https://iam",
                    "QRMI_IBM_QS_IAM_APIKEY": "SITE-SECRET", "QRMI_IBM_QS_SERVICE_CRN": "crn"}},
                {"name": "future", "type": "quantum-2030", "environment": {
                    "QRMI_FUTURE_API_TOKEN": "SITE-SECRET"}}]}"#,
        );
        for (name, var, key) in [
            ("oq", "oq_QRMI_OQTOPUS_PROXY", "QRMI_OQTOPUS_PROXY"),
            (
                "heron",
                "heron_QRMI_IBM_QS_S3_ENDPOINT",
                "QRMI_IBM_QS_S3_ENDPOINT",
            ),
            (
                "future",
                "future_QRMI_FUTURE_ENDPOINT",
                "QRMI_FUTURE_ENDPOINT",
            ),
        ] {
            let resource = config.get(name).unwrap();
            let used =
                effective_resource(resource, &env(&[(var, "https://users.example")]), "/q.json")
                    .unwrap_or_else(|e| panic!("{var}: {e}"));
            assert_eq!(used.get(key), Some("https://users.example"), "{var}");
        }
        // An endpoint the plugin calls stays the site's.
        let used = effective_resource(
            config.get("heron").unwrap(),
            &env(&[("heron_QRMI_IBM_QS_ENDPOINT", "https://evil.example")]),
            "/q.json",
        )
        .unwrap();
        assert_eq!(used.get("QRMI_IBM_QS_ENDPOINT"), Some("https://qs"));
    }

    #[test]
    fn the_job_cannot_point_the_sites_secret_elsewhere() {
        let config = config(
            r#"{"resources": [{"name": "garnet", "type": "iqm-server", "environment": {
                "QRMI_IQM_ISA_TOKEN": "SITE-SECRET"}}]}"#,
        );
        let resource = config.get("garnet").unwrap();
        let e = effective_resource(
            resource,
            &env(&[("garnet_QRMI_IQM_ISA_ENDPOINT", "https://evil.example")]),
            "/q.json",
        )
        .unwrap_err();
        assert!(
            e.contains("garnet_QRMI_IQM_ISA_ENDPOINT is refused")
                && e.contains("QRMI_IQM_ISA_TOKEN")
                && !e.contains("evil")
                && !e.contains("SITE-SECRET"),
            "{e}"
        );
    }
}
