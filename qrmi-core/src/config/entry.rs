//! One entry of `resources` in qrmi_config.json: its fields parsed and checked (type, keys,
//! values, our optional fields), every problem named with the entry's position and name.
use std::collections::BTreeMap;

use serde_json::Value;

use super::{
    MAX_NAME_LEN, Resource, ResourceType, is_env_name, is_http_url, is_qpu_name, json_type,
};

/// Keys our plugin sets per QPU; a config entry of that name would be silently replaced.
const RESERVED_KEYS: &[&str] = &["QRMI_JOB_ACQUISITION_TOKEN", "QRMI_JOB_TIMEOUT_SECONDS"];

const KNOWN_RESOURCE_FIELDS: &[&str] = &[
    "name",
    "type",
    "environment",
    "is_dynamic",
    "status_check",
    "status_endpoint",
    "user_keys",
];

/// One entry: its name (when it has a usable one) and the resource (when nothing is wrong).
pub(super) fn parse_resource(
    index: usize,
    entry: &Value,
    problems: &mut Vec<String>,
    warnings: &mut Vec<String>,
) -> (Option<String>, Option<Resource>) {
    let Value::Object(fields) = entry else {
        problems.push(format!(
            "resources[{index}]: expected an object, found {}",
            json_type(entry)
        ));
        return (None, None);
    };
    let before = problems.len();
    let name = match fields.get("name") {
        None => {
            problems.push(format!("resources[{index}]: missing \"name\""));
            None
        }
        Some(Value::String(name)) => {
            if !is_qpu_name(name) {
                problems.push(format!(
                    "resources[{index}]: name \"{}\" is not usable as a QPU name: expected letters, digits, '_', '-' and '.', not starting with '-' or '.', at most {MAX_NAME_LEN} characters",
                    name.escape_debug()
                ));
                None
            } else {
                Some(name.clone())
            }
        }
        Some(other) => {
            problems.push(format!(
                "resources[{index}]: \"name\" must be a string, found {}",
                json_type(other)
            ));
            None
        }
    };
    let at = match &name {
        Some(n) => format!("resources[{index}] \"{n}\""),
        None => format!("resources[{index}]"),
    };
    let valid_types = || {
        ResourceType::ALL
            .iter()
            .map(|t| t.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let kind = match fields.get("type") {
        None => {
            problems.push(format!(
                "{at}: missing \"type\" (one of: {})",
                valid_types()
            ));
            None
        }
        Some(Value::String(t)) => match ResourceType::parse(t) {
            Some(kind) => Some(kind),
            None if t.is_empty() => {
                problems.push(format!("{at}: empty \"type\" (one of: {})", valid_types()));
                None
            }
            None => {
                warnings.push(format!(
                    "{at}: type \"{}\" is not one this plugin knows ({}): passed to the job as QRMI does, with a random acquisition token and no status check",
                    t.escape_debug(),
                    valid_types()
                ));
                Some(ResourceType::Other)
            }
        },
        Some(other) => {
            problems.push(format!(
                "{at}: \"type\" must be a string, found {}",
                json_type(other)
            ));
            None
        }
    };
    let mut environment = BTreeMap::new();
    match fields.get("environment") {
        None => problems.push(format!(
            "{at}: missing \"environment\" (an object of strings, may be {{}})"
        )),
        Some(Value::Object(map)) => {
            for (key, value) in map {
                if !is_env_name(key) {
                    problems.push(format!(
                        "{at}: environment key \"{}\" is not a valid environment variable name",
                        key.escape_debug()
                    ));
                } else if RESERVED_KEYS.contains(&key.as_str()) {
                    problems.push(format!(
                        "{at}: environment key \"{key}\" is set by the plugin for each job and may not be configured"
                    ));
                }
                match value {
                    // Never echo the value: it may be a secret.
                    Value::String(s) => {
                        environment.insert(key.clone(), s.clone());
                    }
                    other => problems.push(format!(
                        "{at}: environment \"{key}\" must be a string, found {}",
                        json_type(other)
                    )),
                }
            }
        }
        Some(other) => problems.push(format!(
            "{at}: \"environment\" must be an object of strings, found {}",
            json_type(other)
        )),
    }
    let is_dynamic = match fields.get("is_dynamic") {
        None => false,
        Some(Value::Bool(b)) => *b,
        Some(other) => {
            problems.push(format!(
                "{at}: \"is_dynamic\" must be true or false, found {}",
                json_type(other)
            ));
            false
        }
    };
    let status_check = match fields.get("status_check") {
        None => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(other) => {
            problems.push(format!(
                "{at}: \"status_check\" must be true or false, found {}",
                json_type(other)
            ));
            None
        }
    };
    let status_endpoint = match fields.get("status_endpoint") {
        None => None,
        Some(Value::String(s)) if is_http_url(s) => Some(s.clone()),
        Some(Value::String(s)) => {
            problems.push(format!(
                "{at}: \"status_endpoint\" \"{}\" is not an http:// or https:// URL",
                s.escape_debug()
            ));
            None
        }
        Some(other) => {
            problems.push(format!(
                "{at}: \"status_endpoint\" must be a URL string, found {}",
                json_type(other)
            ));
            None
        }
    };
    let mut user_keys = Vec::new();
    match fields.get("user_keys") {
        None => {}
        Some(Value::Array(list)) => {
            for key in list {
                match key {
                    Value::String(k) if is_env_name(k) => user_keys.push(k.clone()),
                    other => problems.push(format!(
                        "{at}: \"user_keys\" must list environment variable names, found {}",
                        json_type(other)
                    )),
                }
            }
        }
        Some(other) => problems.push(format!(
            "{at}: \"user_keys\" must be an array of key names, found {}",
            json_type(other)
        )),
    }
    for key in fields
        .keys()
        .filter(|k| !KNOWN_RESOURCE_FIELDS.contains(&k.as_str()))
    {
        warnings.push(format!("{at}: unknown field \"{key}\" ignored"));
    }
    let Some(name) = name else {
        return (None, None);
    };
    let Some(kind) = kind else {
        return (Some(name), None);
    };
    check_values(&at, kind, &environment, problems, warnings);
    let missing = missing_keys(kind, &environment);
    if !missing.is_empty() {
        warnings.push(format!(
            "{at}: type {kind} needs environment keys {} that the config does not set: a job using it must set them as {name}_<KEY>",
            missing.join(", ")
        ));
    }
    if status_endpoint.is_some() && kind != ResourceType::PasqalCloud {
        warnings.push(format!(
            "{at}: \"status_endpoint\" is used by pasqal-cloud only; ignored for {kind}"
        ));
    }
    if status_check == Some(true) && kind == ResourceType::AliceBobFelis {
        warnings.push(format!(
            "{at}: alice-bob-felis has no status check (always accessible); \"status_check\" ignored"
        ));
    }
    if problems.len() > before {
        return (Some(name), None);
    }
    let type_name = match kind {
        ResourceType::Other => fields
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        known => known.as_str().to_string(),
    };
    user_keys.extend(kind.default_user_keys());
    (
        Some(name.clone()),
        Some(Resource {
            name,
            kind,
            type_name,
            user_keys,
            from_job: Vec::new(),
            environment,
            is_dynamic,
            status_check: status_check.unwrap_or(kind.facts().default_status_check)
                && kind.facts().has_status_check,
            status_endpoint,
        }),
    )
}

/// Required keys that are missing or empty (pasqal-local: its URL under either name).
pub fn missing_keys(kind: ResourceType, env: &BTreeMap<String, String>) -> Vec<String> {
    let present = |k: &str| env.get(k).is_some_and(|v| !v.trim().is_empty());
    let mut missing: Vec<String> = kind
        .facts()
        .required_keys
        .iter()
        .filter(|k| !present(k))
        .map(|k| k.to_string())
        .collect();
    if kind == ResourceType::PasqalLocal && !present("QRMI_WARDEN_URL") && !present("QRMI_URL") {
        missing.push("QRMI_WARDEN_URL (or the deprecated QRMI_URL)".to_string());
    }
    missing
}

/// The problems [`check_values`] finds in a resource's (effective) environment.
pub fn value_problems(resource: &Resource) -> Vec<String> {
    let (mut problems, mut warnings) = (Vec::new(), Vec::new());
    check_values(
        &format!("QPU '{}'", resource.name),
        resource.kind,
        &resource.environment,
        &mut problems,
        &mut warnings,
    );
    problems
}

/// Checks the values present (URLs, session mode and TTL). Missing keys are not looked at:
/// they may come from the job ([`missing_keys`] at acquisition).
fn check_values(
    at: &str,
    kind: ResourceType,
    env: &BTreeMap<String, String>,
    problems: &mut Vec<String>,
    warnings: &mut Vec<String>,
) {
    let present = |k: &str| env.get(k).is_some_and(|v| !v.trim().is_empty());
    if kind == ResourceType::PasqalLocal && present("QRMI_URL") && !present("QRMI_WARDEN_URL") {
        warnings.push(format!("{at}: QRMI_URL is deprecated, use QRMI_WARDEN_URL"));
    }
    for key in kind.facts().recommended_keys {
        if !present(key) {
            warnings.push(format!(
                "{at}: environment key {key} is not set; jobs must provide it some other way"
            ));
        }
    }
    for key in kind.facts().url_keys {
        if let Some(value) = env.get(*key).filter(|v| !v.is_empty())
            && !is_http_url(value)
        {
            // A URL is not secret, but it might hold credentials (user:pass@): say what is wrong
            // without echoing it.
            let why =
                format!("{at}: environment {key} must be an http:// or https:// URL with a host");
            if kind.facts().job_only_url_keys.contains(key) {
                warnings.push(format!("{why} (only the job's QRMI uses it)"));
            } else {
                problems.push(why);
            }
        }
    }
    if let Some(prefix) = kind
        .ibm_prefix()
        .filter(|_| kind != ResourceType::IbmQuantumSystem)
    {
        let mode_key = format!("{prefix}SESSION_MODE");
        if let Some(mode) = env.get(&mode_key) {
            let lower = mode.to_ascii_lowercase();
            if lower != "dedicated" && lower != "batch" {
                problems.push(format!(
                    "{at}: environment {mode_key} is \"{}\": expected dedicated or batch",
                    mode.escape_debug()
                ));
            }
        }
        for suffix in ["SESSION_MAX_TTL", "TIMEOUT_SECONDS"] {
            let key = format!("{prefix}{suffix}");
            if let Some(value) = env.get(&key)
                && !value
                    .trim()
                    .parse::<u64>()
                    .is_ok_and(|n| n > 0 && n <= i32::MAX as u64)
            {
                problems.push(format!(
                    "{at}: environment {key} is \"{}\": expected a positive integer number of seconds (at most {})",
                    value.escape_debug(),
                    i32::MAX
                ));
            }
        }
    }
}
