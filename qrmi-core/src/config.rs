//! `qrmi_config.json`: the admin's list of QPUs. The upstream schema is accepted unchanged:
//!
//! ```json
//! {"resources": [
//!   {"name": "ibm_torino", "type": "ibm-quantum-compute-service", "is_dynamic": false,
//!    "environment": {"QRMI_IBM_QCS_ENDPOINT": "https://...", "QRMI_IBM_QCS_IAM_ENDPOINT": "https://...",
//!                    "QRMI_IBM_QCS_IAM_APIKEY": "...", "QRMI_IBM_QCS_SERVICE_CRN": "crn:v1:..."}}
//! ]}
//! ```
//!
//! Optional resource fields of ours (upstream ignores unknown fields, so a config using them still
//! works with the upstream plugin):
//! - `"status_check": true|false` — ask the backend whether the QPU is accessible before acquiring
//!   it. Default `true` for the session types (`ibm-quantum-compute-service`,
//!   `qiskit-runtime-service`, `pasqal-local`), `false` for the token-only types
//!   (`ibm-quantum-system`, `pasqal-cloud`, `iqm-server`); `alice-bob-felis` has no status check
//!   (always accessible) and ignores it with a warning.
//! - `"status_endpoint": "https://..."` — `pasqal-cloud` only: base URL of the device status call
//!   (default `https://apis.pasqal.cloud`, upstream's hard-wired value).
//!
//! Unknown top-level and resource fields are accepted and returned as warnings. Everything else
//! that is wrong is an error naming the file (and line/column for JSON syntax errors). See
//! `CONFIG.md` for the per-type keys. Pure except for [`Config::load`], which reads and stats the
//! file.
use std::collections::BTreeMap;
use std::fmt;
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde_json::Value;

/// Largest config file we read.
const MAX_CONFIG_BYTES: u64 = 4 * 1024 * 1024;
/// Longest resource name (it becomes a prefix of environment variable names and a file name).
pub const MAX_NAME_LEN: usize = 128;
/// Default base URL of Pasqal Cloud (upstream's value).
pub const PASQAL_CLOUD_DEFAULT_ENDPOINT: &str = "https://apis.pasqal.cloud";

/// The type strings QRMI 0.26 knows, and `Other` for any other string: QRMI skips a type it
/// does not know (with a warning) and its default acquisition is a random token, so we pass
/// such a resource through the same way (the string itself is in [`Resource::type_name`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ResourceType {
    IbmQuantumSystem,
    IbmQuantumComputeService,
    QiskitRuntimeService,
    PasqalCloud,
    PasqalLocal,
    IqmServer,
    AliceBobFelis,
    Oqtopus,
    Other,
}

impl ResourceType {
    /// The known types (not `Other`).
    pub const ALL: [ResourceType; 8] = [
        ResourceType::IbmQuantumSystem,
        ResourceType::IbmQuantumComputeService,
        ResourceType::QiskitRuntimeService,
        ResourceType::PasqalCloud,
        ResourceType::PasqalLocal,
        ResourceType::IqmServer,
        ResourceType::AliceBobFelis,
        ResourceType::Oqtopus,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ResourceType::IbmQuantumSystem => "ibm-quantum-system",
            ResourceType::IbmQuantumComputeService => "ibm-quantum-compute-service",
            ResourceType::QiskitRuntimeService => "qiskit-runtime-service",
            ResourceType::PasqalCloud => "pasqal-cloud",
            ResourceType::PasqalLocal => "pasqal-local",
            ResourceType::IqmServer => "iqm-server",
            ResourceType::AliceBobFelis => "alice-bob-felis",
            ResourceType::Oqtopus => "oqtopus",
            ResourceType::Other => "(other)",
        }
    }

    pub fn parse(s: &str) -> Option<ResourceType> {
        ResourceType::ALL.into_iter().find(|t| t.as_str() == s)
    }

    /// Types whose acquisition creates a session at the backend (released at job end).
    pub fn has_session(self) -> bool {
        matches!(
            self,
            ResourceType::IbmQuantumComputeService
                | ResourceType::QiskitRuntimeService
                | ResourceType::PasqalLocal
        )
    }

    /// Key prefix of the IBM session types (`QRMI_IBM_QCS_` / `QRMI_IBM_QRS_`).
    pub fn ibm_prefix(self) -> Option<&'static str> {
        match self {
            ResourceType::IbmQuantumComputeService => Some("QRMI_IBM_QCS_"),
            ResourceType::QiskitRuntimeService => Some("QRMI_IBM_QRS_"),
            ResourceType::IbmQuantumSystem => Some("QRMI_IBM_QS_"),
            _ => None,
        }
    }

    /// Upstream checks every type's status before acquiring: so do we by default (an offline
    /// backend fails the job), except where there is no check to make.
    fn default_status_check(self) -> bool {
        !matches!(
            self,
            ResourceType::AliceBobFelis | ResourceType::Oqtopus | ResourceType::Other
        )
    }

    /// Keys that must be present and non-empty.
    fn required_keys(self) -> Vec<String> {
        let ibm = |p: &str| {
            ["ENDPOINT", "IAM_ENDPOINT", "IAM_APIKEY", "SERVICE_CRN"]
                .iter()
                .map(|k| format!("{p}{k}"))
                .collect()
        };
        match self {
            ResourceType::IbmQuantumSystem => ibm("QRMI_IBM_QS_"),
            ResourceType::IbmQuantumComputeService => ibm("QRMI_IBM_QCS_"),
            ResourceType::QiskitRuntimeService => ibm("QRMI_IBM_QRS_"),
            ResourceType::IqmServer => vec![
                "QRMI_IQM_ISA_ENDPOINT".to_string(),
                "QRMI_IQM_ISA_TOKEN".to_string(),
            ],
            ResourceType::Oqtopus => vec![
                "QRMI_OQTOPUS_URL".to_string(),
                "QRMI_OQTOPUS_API_TOKEN".to_string(),
            ],
            // pasqal-local: one of two keys, checked separately. pasqal-cloud and
            // alice-bob-felis: upstream can take the values from elsewhere (the user's
            // ~/.pasqal/config; unprefixed variables), so missing keys are warnings.
            ResourceType::PasqalLocal
            | ResourceType::PasqalCloud
            | ResourceType::AliceBobFelis
            | ResourceType::Other => Vec::new(),
        }
    }

    /// Keys that upstream reads for this type but can also find elsewhere: a warning if absent.
    fn recommended_keys(self) -> &'static [&'static str] {
        match self {
            ResourceType::PasqalCloud => &["QRMI_PASQAL_CLOUD_PROJECT_ID"],
            ResourceType::AliceBobFelis => {
                &["QRMI_AB_FELIS_API_KEY", "QRMI_AB_FELIS_BASE_ENDPOINT"]
            }
            _ => &[],
        }
    }

    /// Keys whose value must be an http(s) URL when present.
    fn url_keys(self) -> &'static [&'static str] {
        match self {
            ResourceType::IbmQuantumSystem => &[
                "QRMI_IBM_QS_ENDPOINT",
                "QRMI_IBM_QS_IAM_ENDPOINT",
                "QRMI_IBM_QS_S3_ENDPOINT",
                "QRMI_IBM_QS_S3_ENDPOINT_FOR_QSAPI",
            ],
            ResourceType::IbmQuantumComputeService => {
                &["QRMI_IBM_QCS_ENDPOINT", "QRMI_IBM_QCS_IAM_ENDPOINT"]
            }
            ResourceType::QiskitRuntimeService => {
                &["QRMI_IBM_QRS_ENDPOINT", "QRMI_IBM_QRS_IAM_ENDPOINT"]
            }
            ResourceType::PasqalCloud => &[
                "QRMI_PASQAL_CLOUD_AUTH_ENDPOINT",
                "QRMI_PASQAL_CLOUD_BASE_URL",
            ],
            ResourceType::PasqalLocal => &["QRMI_WARDEN_URL", "QRMI_URL"],
            ResourceType::IqmServer => &["QRMI_IQM_ISA_ENDPOINT"],
            ResourceType::AliceBobFelis => &["QRMI_AB_FELIS_BASE_ENDPOINT"],
            ResourceType::Oqtopus => &["QRMI_OQTOPUS_URL"],
            ResourceType::Other => &[],
        }
    }

    /// URL keys only the job's QRMI calls: a bad value there is QRMI's to report (a warning
    /// here), as upstream's example config has placeholders in them.
    fn job_only_url_keys(self) -> &'static [&'static str] {
        match self {
            ResourceType::IbmQuantumSystem => &[
                "QRMI_IBM_QS_S3_ENDPOINT",
                "QRMI_IBM_QS_S3_ENDPOINT_FOR_QSAPI",
            ],
            ResourceType::PasqalCloud => &["QRMI_PASQAL_CLOUD_AUTH_ENDPOINT"],
            ResourceType::AliceBobFelis => &["QRMI_AB_FELIS_BASE_ENDPOINT"],
            ResourceType::Oqtopus => &["QRMI_OQTOPUS_URL"],
            _ => &[],
        }
    }

    /// URL keys the plugin itself calls (status check, session open and close), with the
    /// site's credential where the config holds one. The others are only the job's QRMI's.
    pub fn plugin_url_keys(self) -> Vec<&'static str> {
        self.url_keys()
            .iter()
            .copied()
            .filter(|k| !self.job_only_url_keys().contains(k))
            .collect()
    }

    /// Keys a job may set for itself even when the site's config sets them (by default; a
    /// resource's `user_keys` adds more).
    pub fn default_user_keys(self) -> Vec<String> {
        match self.ibm_prefix() {
            Some(p) if self != ResourceType::IbmQuantumSystem => {
                vec![format!("{p}SESSION_MODE"), format!("{p}SESSION_MAX_TTL")]
            }
            _ => Vec::new(),
        }
    }
}

impl fmt::Display for ResourceType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// IBM session mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionMode {
    Dedicated,
    Batch,
}

impl SessionMode {
    pub fn as_str(self) -> &'static str {
        match self {
            SessionMode::Dedicated => "dedicated",
            SessionMode::Batch => "batch",
        }
    }
}

/// Upstream's default session max TTL (seconds).
pub const DEFAULT_SESSION_MAX_TTL: u64 = 28800;

/// One QPU of the config. `environment` values are secrets: [`fmt::Debug`] redacts them.
#[derive(Clone, PartialEq)]
pub struct Resource {
    pub name: String,
    pub kind: ResourceType,
    /// The `type` string as written (what the job's QRMI gets in `QRMI_JOB_QPU_TYPES`).
    pub type_name: String,
    /// Keys the job's own `<name>_<KEY>` may set although the site sets them.
    pub user_keys: Vec<String>,
    /// Keys of `environment` whose value this job brought (see `usersupplied`; empty as loaded).
    pub from_job: Vec<String>,
    pub environment: BTreeMap<String, String>,
    pub is_dynamic: bool,
    /// `status_check` (ours), defaulted per type.
    pub status_check: bool,
    /// `status_endpoint` (ours, pasqal-cloud).
    pub status_endpoint: Option<String>,
}

impl fmt::Debug for Resource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Resource")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("type_name", &self.type_name)
            .field("user_keys", &self.user_keys)
            .field("environment", &RedactedMap(&self.environment))
            .field("is_dynamic", &self.is_dynamic)
            .field("status_check", &self.status_check)
            .field("status_endpoint", &self.status_endpoint)
            .finish()
    }
}

/// Shows the keys of a map, never its values.
pub struct RedactedMap<'a>(pub &'a BTreeMap<String, String>);

impl fmt::Debug for RedactedMap<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.0.keys().map(|k| (k, Redacted)))
            .finish()
    }
}

/// Stands for a secret value in Debug/Display output.
#[derive(Clone, Copy)]
pub struct Redacted;

impl fmt::Debug for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl Resource {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.environment
            .get(key)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// IBM session types: `<prefix>SESSION_MODE` (validated at load; default dedicated).
    pub fn session_mode(&self) -> SessionMode {
        let key = format!("{}SESSION_MODE", self.kind.ibm_prefix().unwrap_or(""));
        match self.get(&key).map(str::to_ascii_lowercase).as_deref() {
            Some("batch") => SessionMode::Batch,
            _ => SessionMode::Dedicated,
        }
    }

    /// IBM session types: `<prefix>SESSION_MAX_TTL` (validated at load; default 28800).
    pub fn session_max_ttl(&self) -> u64 {
        let key = format!("{}SESSION_MAX_TTL", self.kind.ibm_prefix().unwrap_or(""));
        self.get(&key)
            .and_then(|v| v.trim().parse::<u64>().ok())
            .filter(|v| *v > 0)
            .unwrap_or(DEFAULT_SESSION_MAX_TTL)
    }

    /// pasqal-local: `QRMI_WARDEN_URL`, else the deprecated `QRMI_URL`.
    pub fn warden_url(&self) -> Option<&str> {
        self.get("QRMI_WARDEN_URL").or_else(|| self.get("QRMI_URL"))
    }

    /// Every non-empty environment value: what must never appear in a message.
    pub fn secret_values(&self) -> Vec<String> {
        self.environment
            .values()
            .filter(|v| !v.is_empty())
            .cloned()
            .collect()
    }
}

/// The parsed, validated config.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub path: PathBuf,
    pub resources: Vec<Resource>,
    /// Resources the file names but that cannot be acquired, with why (a job asking for one
    /// fails with this; the others are not affected).
    pub unusable: BTreeMap<String, Vec<String>>,
    /// Unknown fields, deprecated keys, keys upstream could find elsewhere: for the admin's log.
    pub warnings: Vec<String>,
}

/// What went wrong, so the caller can decide (e.g. a user on a login node who may not read a
/// root-only config skips the submit-time check).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigErrorKind {
    /// Could not open/read the file.
    Unreadable { permission_denied: bool },
    /// Not JSON (line and column in the message).
    Syntax,
    /// JSON, but not a valid config.
    Invalid,
    /// Holds secrets others can read, or is writable by others.
    Insecure,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub path: PathBuf,
    pub kind: ConfigErrorKind,
    /// Each problem found (all of them, not only the first).
    pub problems: Vec<String>,
}

impl ConfigError {
    fn new(path: &Path, kind: ConfigErrorKind, problem: impl Into<String>) -> Self {
        ConfigError {
            path: path.to_path_buf(),
            kind,
            problems: vec![problem.into()],
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "QPU config {}: {}",
            self.path.display(),
            self.problems.join("; ")
        )
    }
}

impl std::error::Error for ConfigError {}

/// A QPU name as this plugin takes it: it prefixes the job's variable names (`NAME_QRMI_...`,
/// which setenv and QRMI take with any character but '='), names a lease file and is an item
/// of comma lists. Upstream (QRMI) takes any string, so we take every name that is safe there:
/// letters, digits, '_', '-' and '.', not starting with '-' or '.', at most [`MAX_NAME_LEN`].
pub fn is_qpu_name(name: &str) -> bool {
    name.len() <= MAX_NAME_LEN
        && !name.starts_with(['-', '.'])
        && !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

/// True for names usable as an environment variable prefix: `[A-Za-z_][A-Za-z0-9_]*`.
pub fn is_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Key names whose values are credentials (for the file permission check). All environment
/// values are treated as secret in messages regardless.
pub fn is_secret_key(key: &str) -> bool {
    let key = key.to_ascii_uppercase();
    ["APIKEY", "API_KEY", "TOKEN", "SECRET", "PASSWORD"]
        .iter()
        .any(|p| key.contains(p))
}

/// `http://` or `https://` followed by a host, no whitespace.
pub fn is_http_url(value: &str) -> bool {
    let rest = value
        .strip_prefix("https://")
        .or_else(|| value.strip_prefix("http://"));
    match rest {
        Some(rest) => {
            let host = rest.split(['/', '?', '#']).next().unwrap_or("");
            !host.is_empty() && !value.chars().any(|c| c.is_whitespace() || c.is_control())
        }
        None => false,
    }
}

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

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

impl Config {
    /// Reads, checks the file's ownership and mode, parses and validates.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let unreadable = |e: std::io::Error| {
            ConfigError::new(
                path,
                ConfigErrorKind::Unreadable {
                    permission_denied: e.kind() == std::io::ErrorKind::PermissionDenied,
                },
                format!("cannot read: {e}"),
            )
        };
        let file = File::open(path).map_err(unreadable)?;
        let meta = file.metadata().map_err(unreadable)?;
        if !meta.is_file() {
            return Err(ConfigError::new(
                path,
                ConfigErrorKind::Unreadable {
                    permission_denied: false,
                },
                "is not a regular file",
            ));
        }
        if meta.len() > MAX_CONFIG_BYTES {
            return Err(ConfigError::new(
                path,
                ConfigErrorKind::Invalid,
                format!(
                    "is {} bytes, more than the {MAX_CONFIG_BYTES} bytes allowed",
                    meta.len()
                ),
            ));
        }
        let mut text = String::new();
        file.take(MAX_CONFIG_BYTES + 1)
            .read_to_string(&mut text)
            .map_err(unreadable)?;
        let mut config = Config::parse(path, &text)?;
        let euid = crate::os::effective_uid();
        let warnings = check_permissions(path, meta.mode(), meta.uid(), euid, &config)?;
        config.warnings.extend(warnings);
        Ok(config)
    }

    /// Parses and validates `text`; `path` is only used in messages. No permission check.
    pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
        let root: Value = serde_json::from_str(text).map_err(|e| {
            ConfigError::new(
                path,
                ConfigErrorKind::Syntax,
                format!(
                    "invalid JSON at line {} column {}: {}",
                    e.line(),
                    e.column(),
                    json_error_reason(&e)
                ),
            )
        })?;
        let mut warnings = Vec::new();
        let Value::Object(top) = root else {
            return Err(ConfigError::new(
                path,
                ConfigErrorKind::Invalid,
                format!(
                    "expected an object {{\"resources\": [...]}}, found {}",
                    json_type(&root)
                ),
            ));
        };
        for key in top.keys().filter(|k| *k != "resources") {
            warnings.push(format!("unknown top-level field \"{key}\" ignored"));
        }
        let list = match top.get("resources") {
            Some(Value::Array(list)) => list.as_slice(),
            Some(other) => {
                return Err(ConfigError::new(
                    path,
                    ConfigErrorKind::Invalid,
                    format!("\"resources\" must be an array, found {}", json_type(other)),
                ));
            }
            None => {
                return Err(ConfigError::new(
                    path,
                    ConfigErrorKind::Invalid,
                    "missing \"resources\" (expected {\"resources\": [...]})",
                ));
            }
        };
        // A problem in one resource makes that resource unusable, not the file: upstream
        // acquires whatever it can, and a job that asks for another QPU must still run.
        let mut resources: Vec<Resource> = Vec::new();
        let mut unusable: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (index, entry) in list.iter().enumerate() {
            let mut problems = Vec::new();
            let (name, resource) = parse_resource(index, entry, &mut problems, &mut warnings);
            let Some(name) = name else {
                warnings.extend(problems.into_iter().map(|p| format!("{p}: entry ignored")));
                continue;
            };
            // Upstream keeps the last entry of a name; so do we, saying so.
            if resources.iter().any(|r| r.name == name) || unusable.contains_key(&name) {
                warnings.push(format!(
                    "resources[{index}]: duplicate name \"{name}\": this entry replaces the earlier one"
                ));
                resources.retain(|r| r.name != name);
                unusable.remove(&name);
            }
            match resource {
                Some(resource) if problems.is_empty() => resources.push(resource),
                _ => {
                    unusable.insert(name, problems);
                }
            }
        }
        Ok(Config {
            path: path.to_path_buf(),
            resources,
            unusable,
            warnings,
        })
    }

    pub fn get(&self, name: &str) -> Option<&Resource> {
        self.resources.iter().find(|r| r.name == name)
    }

    pub fn names(&self) -> Vec<&str> {
        self.resources.iter().map(|r| r.name.as_str()).collect()
    }

    /// Why a QPU the file names cannot be used (None: usable, or not in the file).
    pub fn unusable_reason(&self, name: &str) -> Option<String> {
        self.unusable.get(name).map(|problems| {
            format!(
                "QPU '{name}' is in {} but cannot be used: {}",
                self.path.display(),
                problems.join("; ")
            )
        })
    }

    /// Everything the admin should read once: warnings, then unusable resources.
    pub fn admin_messages(&self) -> Vec<String> {
        let shown = self.path.display();
        self.warnings
            .iter()
            .map(|w| format!("QPU config {shown}: {w}"))
            .chain(self.unusable.keys().filter_map(|n| self.unusable_reason(n)))
            .collect()
    }
}

/// serde_json's message without its own " at line X column Y" suffix (we add ours).
fn json_error_reason(e: &serde_json::Error) -> String {
    let text = e.to_string();
    match text.rfind(" at line ") {
        Some(pos) => text[..pos].to_string(),
        None => text,
    }
}

/// One entry: its name (when it has a usable one) and the resource (when nothing is wrong).
fn parse_resource(
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
            status_check: status_check.unwrap_or(kind.default_status_check())
                && !matches!(kind, ResourceType::AliceBobFelis | ResourceType::Other),
            status_endpoint,
        }),
    )
}

/// Required keys that are missing or empty (pasqal-local: its URL under either name).
pub fn missing_keys(kind: ResourceType, env: &BTreeMap<String, String>) -> Vec<String> {
    let present = |k: &str| env.get(k).is_some_and(|v| !v.trim().is_empty());
    let mut missing: Vec<String> = kind
        .required_keys()
        .into_iter()
        .filter(|k| !present(k))
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
    for key in kind.recommended_keys() {
        if !present(key) {
            warnings.push(format!(
                "{at}: environment key {key} is not set; jobs must provide it some other way"
            ));
        }
    }
    for key in kind.url_keys() {
        if let Some(value) = env.get(*key).filter(|v| !v.is_empty())
            && !is_http_url(value)
        {
            // A URL is not secret, but it might hold credentials (user:pass@): say what is wrong
            // without echoing it.
            let why =
                format!("{at}: environment {key} must be an http:// or https:// URL with a host");
            if kind.job_only_url_keys().contains(key) {
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

/// A file others can write is refused: anyone could point the site's secrets at an endpoint of
/// their own. Secrets others can read, or (as root) a file of another owner holding secrets,
/// are warnings for the admin (upstream uses such files; refusing them would not hide the
/// secret again). Returns the warnings.
pub fn check_permissions(
    path: &Path,
    mode: u32,
    owner: u32,
    euid: u32,
    config: &Config,
) -> Result<Vec<String>, ConfigError> {
    let secret = config.resources.iter().find_map(|r| {
        r.environment
            .keys()
            .find(|k| is_secret_key(k))
            .map(|k| (r.name.as_str(), k.as_str()))
    });
    let shown = path.display();
    let mut warnings = Vec::new();
    if mode & 0o002 != 0 {
        return Err(ConfigError {
            path: path.to_path_buf(),
            kind: ConfigErrorKind::Insecure,
            problems: vec![format!(
                "is writable by every user (mode {:04o}): run chmod 600 {shown} (chmod 644 if it holds no secrets)",
                mode & 0o7777
            )],
        });
    }
    if let Some((name, key)) = secret {
        if mode & 0o044 != 0 {
            warnings.push(format!(
                "holds secrets (e.g. {key} of \"{name}\") but is readable by {} (mode {:04o}): run chmod 600 {shown}",
                if mode & 0o004 != 0 { "every user" } else { "its group" },
                mode & 0o7777
            ));
        }
        if euid == 0 && owner != 0 {
            warnings.push(format!(
                "holds secrets (e.g. {key} of \"{name}\") but is owned by uid {owner}, not root: run chown root:root {shown} && chmod 600 {shown}"
            ));
        }
    }
    Ok(warnings)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    const SECRET: &str = "sk-VERY-SECRET-0123456789";

    fn qcs(name: &str) -> String {
        format!(
            r#"{{"name": "{name}", "type": "ibm-quantum-compute-service",
               "environment": {{"QRMI_IBM_QCS_ENDPOINT": "https://q.example/api",
                                "QRMI_IBM_QCS_IAM_ENDPOINT": "https://iam.example",
                                "QRMI_IBM_QCS_IAM_APIKEY": "{SECRET}",
                                "QRMI_IBM_QCS_SERVICE_CRN": "crn:v1:x"}}}}"#
        )
    }

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(Path::new("/etc/slurm/qrmi_config.json"), text)
    }

    /// What the admin is told about `text`: the error refusing the file, or else every
    /// warning and unusable resource (a problem in one resource no longer refuses the file).
    fn err(text: &str) -> String {
        let s = match parse(text) {
            Err(e) => e.to_string(),
            Ok(config) => config.admin_messages().join("\n"),
        };
        assert!(!s.is_empty(), "no diagnostic for {text}");
        assert!(s.contains("/etc/slurm/qrmi_config.json"), "{s}");
        assert!(!s.contains(SECRET), "{s}");
        s
    }

    #[test]
    fn accepts_the_upstream_example_with_all_seven_types() {
        let text = format!(
            r#"{{"resources": [
              {},
              {{"name": "ibm_fez", "type": "qiskit-runtime-service", "environment": {{
                 "QRMI_IBM_QRS_ENDPOINT": "https://q/api/v1", "QRMI_IBM_QRS_IAM_ENDPOINT": "https://iam",
                 "QRMI_IBM_QRS_IAM_APIKEY": "k", "QRMI_IBM_QRS_SERVICE_CRN": "crn:v1:y",
                 "QRMI_IBM_QRS_SESSION_MODE": "Batch", "QRMI_IBM_QRS_SESSION_MAX_TTL": "600"}}}},
              {{"name": "qs", "type": "ibm-quantum-system", "environment": {{
                 "QRMI_IBM_QS_ENDPOINT": "https://da", "QRMI_IBM_QS_IAM_ENDPOINT": "https://iam",
                 "QRMI_IBM_QS_IAM_APIKEY": "k", "QRMI_IBM_QS_SERVICE_CRN": "crn:v1:z"}}}},
              {{"name": "FRESNEL", "type": "pasqal-local", "environment": {{"QRMI_WARDEN_URL": "http://localhost:8006"}}}},
              {{"name": "EMU_FREE", "type": "pasqal-cloud", "environment": {{"QRMI_PASQAL_CLOUD_PROJECT_ID": "p"}}}},
              {{"name": "garnet_mock", "type": "iqm-server", "is_dynamic": false, "environment": {{
                 "QRMI_IQM_ISA_ENDPOINT": "https://iqm", "QRMI_IQM_ISA_TOKEN": "t"}}}},
              {{"name": "ab_emu", "type": "alice-bob-felis", "environment": {{
                 "QRMI_AB_FELIS_API_KEY": "a", "QRMI_AB_FELIS_BASE_ENDPOINT": "https://ab"}}}}
            ]}}"#,
            qcs("ibm_torino")
        );
        let config = parse(&text).unwrap();
        assert_eq!(
            config.names(),
            [
                "ibm_torino",
                "ibm_fez",
                "qs",
                "FRESNEL",
                "EMU_FREE",
                "garnet_mock",
                "ab_emu"
            ]
        );
        let kinds: Vec<_> = config.resources.iter().map(|r| r.kind).collect();
        for t in ResourceType::ALL
            .into_iter()
            .filter(|t| *t != ResourceType::Oqtopus)
        {
            assert!(kinds.contains(&t), "{t}");
        }
        assert!(config.warnings.is_empty(), "{:?}", config.warnings);
        let fez = config.get("ibm_fez").unwrap();
        assert_eq!(fez.session_mode(), SessionMode::Batch);
        assert_eq!(fez.session_max_ttl(), 600);
        let torino = config.get("ibm_torino").unwrap();
        assert_eq!(torino.session_mode(), SessionMode::Dedicated);
        assert_eq!(torino.session_max_ttl(), 28800);
        assert!(torino.status_check);
        // Issue 15 item 8: on by default for the token-only types too, as upstream checks.
        assert!(config.get("garnet_mock").unwrap().status_check);
        assert!(config.get("qs").unwrap().status_check);
        assert!(config.get("EMU_FREE").unwrap().status_check);
        assert!(!config.get("ab_emu").unwrap().status_check);
        assert_eq!(
            config.get("FRESNEL").unwrap().warden_url(),
            Some("http://localhost:8006")
        );
    }

    #[test]
    fn empty_environment_is_allowed_where_nothing_is_required() {
        let config = parse(
            r#"{"resources": [{"name": "ab", "type": "alice-bob-felis", "environment": {}}]}"#,
        )
        .unwrap();
        assert_eq!(config.warnings.len(), 2, "{:?}", config.warnings);
        assert!(config.warnings[0].contains("QRMI_AB_FELIS_API_KEY"));
    }

    #[test]
    fn bad_json_names_line_and_column() {
        let s = err("{\"resources\": [\n  {\"name\": \"a\",\n   \"type\" \"x\"}\n]}");
        assert!(s.contains("invalid JSON at line 3 column 11"), "{s}");
        let s = err("");
        assert!(s.contains("line 1 column 0"), "{s}");
    }

    #[test]
    fn structure_errors() {
        for (text, needle) in [
            ("[]", "expected an object"),
            ("{}", "missing \"resources\""),
            (r#"{"resources": {}}"#, "\"resources\" must be an array"),
            (r#"{"resources": [5]}"#, "resources[0]: expected an object"),
            (
                r#"{"resources": [{"type": "pasqal-cloud", "environment": {}}]}"#,
                "resources[0]: missing \"name\"",
            ),
            (
                r#"{"resources": [{"name": "a", "environment": {}}]}"#,
                "resources[0] \"a\": missing \"type\" (one of: ibm-quantum-system",
            ),
            (
                r#"{"resources": [{"name": "a", "type": "pasqal-cloud"}]}"#,
                "missing \"environment\"",
            ),
            (
                r#"{"resources": [{"name": 7, "type": "pasqal-cloud", "environment": {}}]}"#,
                "\"name\" must be a string, found a number",
            ),
            (
                r#"{"resources": [{"name": "a", "type": ["x"], "environment": {}}]}"#,
                "\"type\" must be a string, found an array",
            ),
            (
                r#"{"resources": [{"name": "a", "type": "pasqal-cloud", "environment": []}]}"#,
                "\"environment\" must be an object of strings, found an array",
            ),
            (
                r#"{"resources": [{"name": "a", "type": "pasqal-cloud", "environment": {"K": 5}}]}"#,
                "environment \"K\" must be a string, found a number",
            ),
            (
                r#"{"resources": [{"name": "a", "type": "pasqal-cloud", "environment": {}, "is_dynamic": "yes"}]}"#,
                "\"is_dynamic\" must be true or false, found a string",
            ),
            (
                r#"{"resources": [{"name": "a", "type": "pasqal-cloud", "environment": {}, "status_check": 1}]}"#,
                "\"status_check\" must be true or false",
            ),
            (
                r#"{"resources": [{"name": "a", "type": "pasqal-cloud", "environment": {}, "status_endpoint": "ftp://x"}]}"#,
                "\"status_endpoint\" \"ftp://x\" is not an http:// or https:// URL",
            ),
            (
                r#"{"resources": [{"name": "a", "type": "direct-access", "environment": {}}]}"#,
                "type \"direct-access\" is not one this plugin knows (ibm-quantum-system, ibm-quantum-compute-service, qiskit-runtime-service, pasqal-cloud, pasqal-local, iqm-server, alice-bob-felis, oqtopus): passed to the job as QRMI does",
            ),
        ] {
            let s = err(text);
            assert!(s.contains(needle), "{text}\n=> {s}");
        }
    }

    #[test]
    fn names_must_be_usable_as_prefixes_and_a_duplicate_replaces() {
        // Upstream keeps the last entry of a name: so do we, with a warning.
        let text = format!(
            r#"{{"resources": [{}, {}]}}"#,
            qcs("ibm_torino"),
            qcs("ibm_torino").replace("crn:v1:x", "crn:v1:second")
        );
        let s = err(&text);
        assert!(
            s.contains(
                "resources[1]: duplicate name \"ibm_torino\": this entry replaces the earlier one"
            ),
            "{s}"
        );
        let config = parse(&text).unwrap();
        assert_eq!(config.names(), ["ibm_torino"]);
        assert_eq!(
            config
                .get("ibm_torino")
                .unwrap()
                .get("QRMI_IBM_QCS_SERVICE_CRN"),
            Some("crn:v1:second")
        );
        for bad in ["", "a b", "../x", "a/b", "a,b", "a=b", "a:b", ".x", "-x"] {
            let s = err(&format!(
                r#"{{"resources": [{{"name": "{bad}", "type": "alice-bob-felis", "environment": {{}}}}]}}"#
            ));
            assert!(s.contains("not usable as a QPU name"), "{bad}: {s}");
        }
        // Upstream takes any name: those that are safe as a prefix, a file name and a list
        // item are QPUs here too (issue 15 rule; they were refused, failing their jobs).
        for good in ["ibm-torino", "1abc", "garnet.mock", "FRESNEL_1"] {
            let config = parse(&format!(
                r#"{{"resources": [{{"name": "{good}", "type": "alice-bob-felis", "environment": {{}}}}]}}"#
            ))
            .unwrap();
            assert_eq!(config.names(), [good]);
        }
        let long = "a".repeat(MAX_NAME_LEN + 1);
        let s = err(&format!(
            r#"{{"resources": [{{"name": "{long}", "type": "alice-bob-felis", "environment": {{}}}}]}}"#
        ));
        assert!(s.contains("at most 128"), "{s}");
    }

    #[test]
    fn required_keys_per_type() {
        for (kind, needle) in [
            (
                "ibm-quantum-compute-service",
                "needs environment keys QRMI_IBM_QCS_ENDPOINT, QRMI_IBM_QCS_IAM_ENDPOINT, QRMI_IBM_QCS_IAM_APIKEY, QRMI_IBM_QCS_SERVICE_CRN",
            ),
            (
                "qiskit-runtime-service",
                "QRMI_IBM_QRS_ENDPOINT, QRMI_IBM_QRS_IAM_ENDPOINT, QRMI_IBM_QRS_IAM_APIKEY, QRMI_IBM_QRS_SERVICE_CRN",
            ),
            (
                "ibm-quantum-system",
                "QRMI_IBM_QS_ENDPOINT, QRMI_IBM_QS_IAM_ENDPOINT, QRMI_IBM_QS_IAM_APIKEY, QRMI_IBM_QS_SERVICE_CRN",
            ),
            ("iqm-server", "QRMI_IQM_ISA_ENDPOINT, QRMI_IQM_ISA_TOKEN"),
            (
                "pasqal-local",
                "QRMI_WARDEN_URL (or the deprecated QRMI_URL)",
            ),
        ] {
            let s = err(&format!(
                r#"{{"resources": [{{"name": "q", "type": "{kind}", "environment": {{}}}}]}}"#
            ));
            assert!(s.contains(needle), "{kind}: {s}");
        }
        // Only the missing one is named; an empty value counts as missing. Missing keys do not
        // make the resource unusable: the job may bring them (upstream's README allows it).
        let text = r#"{"resources": [{"name": "q", "type": "iqm-server", "environment": {"QRMI_IQM_ISA_ENDPOINT": "https://x", "QRMI_IQM_ISA_TOKEN": ""}}]}"#;
        let s = err(text);
        assert!(
            s.contains("needs environment keys QRMI_IQM_ISA_TOKEN that the config does not set: a job using it must set them as q_<KEY>"),
            "{s}"
        );
        assert_eq!(parse(text).unwrap().names(), ["q"]);
        // The deprecated pasqal-local key works, with a warning.
        let config = parse(
            r#"{"resources": [{"name": "F", "type": "pasqal-local", "environment": {"QRMI_URL": "http://w:1"}}]}"#,
        )
        .unwrap();
        assert_eq!(config.get("F").unwrap().warden_url(), Some("http://w:1"));
        assert!(
            config.warnings[0].contains("deprecated"),
            "{:?}",
            config.warnings
        );
    }

    #[test]
    fn invalid_values() {
        let with = |key: &str, value: &str| {
            let text = qcs("q").replace(
                "\"QRMI_IBM_QCS_SERVICE_CRN\"",
                &format!("\"{key}\": \"{value}\", \"QRMI_IBM_QCS_SERVICE_CRN\""),
            );
            err(&format!(r#"{{"resources": [{text}]}}"#))
        };
        let s = with("QRMI_IBM_QCS_SESSION_MODE", "shared");
        assert!(
            s.contains("QRMI_IBM_QCS_SESSION_MODE is \"shared\": expected dedicated or batch"),
            "{s}"
        );
        for ttl in ["0", "-5", "abc", "1.5", "99999999999"] {
            let s = with("QRMI_IBM_QCS_SESSION_MAX_TTL", ttl);
            assert!(
                s.contains("expected a positive integer number of seconds"),
                "{ttl}: {s}"
            );
        }
        let text = qcs("q").replace(
            "\"QRMI_IBM_QCS_SERVICE_CRN\"",
            "\"QRMI_IBM_QCS_SESSION_MAX_TTL\": \"3600\", \"QRMI_IBM_QCS_SERVICE_CRN\"",
        );
        assert!(
            parse(&format!(r#"{{"resources": [{text}]}}"#))
                .unwrap()
                .unusable
                .is_empty()
        );
        let text = qcs("q").replace("https://q.example/api", "q.example/api");
        let s = err(&format!(r#"{{"resources": [{text}]}}"#));
        assert!(
            s.contains("QRMI_IBM_QCS_ENDPOINT must be an http:// or https:// URL"),
            "{s}"
        );
        let s = err(
            r#"{"resources": [{"name": "F", "type": "pasqal-local", "environment": {"QRMI_WARDEN_URL": "localhost:8006"}}]}"#,
        );
        assert!(s.contains("QRMI_WARDEN_URL must be an http"), "{s}");
        let s = err(
            r#"{"resources": [{"name": "F", "type": "pasqal-cloud", "environment": {"QRMI_JOB_ACQUISITION_TOKEN": "x"}}]}"#,
        );
        assert!(s.contains("set by the plugin for each job"), "{s}");
        let s = err(
            r#"{"resources": [{"name": "F", "type": "pasqal-cloud", "environment": {"BAD-KEY": "x"}}]}"#,
        );
        assert!(
            s.contains("\"BAD-KEY\" is not a valid environment variable name"),
            "{s}"
        );
    }

    #[test]
    fn reports_every_problem_at_once() {
        let s = err(
            r#"{"resources": [{"name": "a", "type": "nope", "environment": {}}, {"name": "b-c", "type": "pasqal-cloud", "environment": {}}]}"#,
        );
        assert!(
            s.contains("type \"nope\" is not one this plugin knows") && s.contains("\"b-c\""),
            "{s}"
        );
    }

    // Issue 15 item 2: QRMI 0.26's oqtopus, and a type we do not know, no longer refuse the
    // file: a job asking only for ibm_torino must run.
    #[test]
    fn oqtopus_and_unknown_types_pass_through() {
        let text = format!(
            r#"{{"resources": [{},
              {{"name": "oq", "type": "oqtopus", "environment": {{
                 "QRMI_OQTOPUS_URL": "https://oqtopus.example", "QRMI_OQTOPUS_API_TOKEN": "t",
                 "QRMI_OQTOPUS_TIMEOUT": "30", "QRMI_OQTOPUS_RETRY_MAX": "3"}}}},
              {{"name": "future", "type": "quantum-2030", "environment": {{"QRMI_X": "y"}}}}]}}"#,
            qcs("ibm_torino")
        );
        let config = parse(&text).unwrap();
        assert_eq!(config.names(), ["ibm_torino", "oq", "future"]);
        assert!(config.unusable.is_empty(), "{:?}", config.unusable);
        let oq = config.get("oq").unwrap();
        assert_eq!(oq.kind, ResourceType::Oqtopus);
        assert_eq!(oq.type_name, "oqtopus");
        let future = config.get("future").unwrap();
        assert_eq!(future.kind, ResourceType::Other);
        assert_eq!(future.type_name, "quantum-2030");
        assert!(!future.status_check);
        assert_eq!(config.warnings.len(), 1, "{:?}", config.warnings);
        assert!(config.warnings[0].contains("\"quantum-2030\""));
        let s = err(r#"{"resources": [{"name": "oq", "type": "oqtopus", "environment": {}}]}"#);
        assert!(
            s.contains("QRMI_OQTOPUS_URL, QRMI_OQTOPUS_API_TOKEN"),
            "{s}"
        );
    }

    // Issue 15 item 4: upstream's own example (qrmi_config.json.example) has "http://" and
    // placeholders in its endpoints; a bad resource is unusable, the others work.
    #[test]
    fn upstream_example_config_is_accepted() {
        let qs = |name: &str| {
            format!(
                r#"{{"name": "{name}", "type": "ibm-quantum-system", "environment": {{
                  "QRMI_IBM_QS_ENDPOINT": "http://", "QRMI_IBM_QS_IAM_ENDPOINT": "https://",
                  "QRMI_IBM_QS_IAM_APIKEY": "<YOUR IAM APIKEY FOR THIS BACKEND>",
                  "QRMI_IBM_QS_SERVICE_CRN": "<YOUR DIRECT ACCESS INSTANCE CRN>",
                  "QRMI_IBM_QS_AWS_ACCESS_KEY_ID": "<YOUR AWS ACCESS KEY TO ACCESS S3 BUCKET>",
                  "QRMI_IBM_QS_AWS_SECRET_ACCESS_KEY": "<YOUR AWS SECRET ACCESS KEY TO ACCESS S3 BUCKET>",
                  "QRMI_IBM_QS_S3_ENDPOINT": "<YOUR S3 ENDPOINT>",
                  "QRMI_IBM_QS_S3_BUCKET": "<YOUR S3 BUCKET NAME>",
                  "QRMI_IBM_QS_S3_REGION": "<YOUR S3 BUCKET REGION>"}}}}"#
            )
        };
        let text = format!(
            r#"{{"resources": [{}, {},
              {{"name": "alt_marrakesh", "type": "ibm-quantum-compute-service", "environment": {{
                 "QRMI_IBM_QCS_ENDPOINT": "https://quantum.cloud.ibm.com/api/v1",
                 "QRMI_IBM_QCS_IAM_ENDPOINT": "https://iam.cloud.ibm.com",
                 "QRMI_IBM_QCS_IAM_APIKEY": "<YOUR IAM APIKEY FOR THIS BACKEND>",
                 "QRMI_IBM_QCS_SERVICE_CRN": "<YOUR IQP INSTANCE CRN>"}}}},
              {{"name": "FRESNEL", "type": "pasqal-cloud", "environment": {{
                 "QRMI_PASQAL_CLOUD_PROJECT_ID": "", "QRMI_PASQAL_CLOUD_AUTH_TOKEN": ""}}}}]}}"#,
            qs("test_heron"),
            qs("test_eagle")
        );
        let config = parse(&text).unwrap();
        assert_eq!(config.names(), ["alt_marrakesh", "FRESNEL"]);
        let why = config.unusable_reason("test_heron").unwrap();
        assert!(
            why.contains("QRMI_IBM_QS_ENDPOINT must be an http"),
            "{why}"
        );
        assert!(!why.contains("S3_ENDPOINT"), "{why}");
        assert!(
            config
                .warnings
                .iter()
                .any(|w| w.contains("QRMI_IBM_QS_S3_ENDPOINT must be"))
        );
    }

    #[test]
    fn unknown_fields_are_warnings() {
        let config = parse(
            r#"{"version": 2, "resources": [{"name": "a", "type": "alice-bob-felis", "environment": {"QRMI_AB_FELIS_API_KEY": "x", "QRMI_AB_FELIS_BASE_ENDPOINT": "https://ab"}, "colour": "red", "status_check": true}]}"#,
        )
        .unwrap();
        let w = config.warnings.join("\n");
        assert!(w.contains("unknown top-level field \"version\""), "{w}");
        assert!(
            w.contains("resources[0] \"a\": unknown field \"colour\""),
            "{w}"
        );
        assert!(w.contains("no status check"), "{w}");
    }

    #[test]
    fn debug_redacts_environment_values() {
        let config = parse(&format!(r#"{{"resources": [{}]}}"#, qcs("q"))).unwrap();
        let debug = format!("{config:?}");
        assert!(!debug.contains(SECRET), "{debug}");
        assert!(!debug.contains("https://iam.example"), "{debug}");
        assert!(debug.contains("QRMI_IBM_QCS_IAM_APIKEY"), "{debug}");
        assert!(debug.contains("<redacted>"), "{debug}");
    }

    #[test]
    fn values_never_appear_in_errors() {
        // A secret-looking value in a wrongly typed key and a bad URL must not be echoed.
        let text = qcs("q").replace("https://iam.example", SECRET);
        let s = err(&format!(r#"{{"resources": [{text}]}}"#));
        assert!(s.contains("QRMI_IBM_QCS_IAM_ENDPOINT must be"), "{s}");
    }

    fn temp_file(contents: &str, mode: u32) -> PathBuf {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "spank-qrmi-config-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("qrmi_config.json");
        std::fs::write(&path, contents).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path
    }

    #[test]
    fn load_warns_of_readable_secrets_and_refuses_world_writable() {
        let text = format!(r#"{{"resources": [{}]}}"#, qcs("q"));
        // Issue 15 item 4: upstream uses a 0644 config holding secrets; we say so, once.
        let path = temp_file(&text, 0o644);
        let s = Config::load(&path).unwrap().admin_messages().join("\n");
        assert!(s.contains(&path.display().to_string()), "{s}");
        assert!(s.contains(&format!("chmod 600 {}", path.display())), "{s}");
        assert!(s.contains("readable by every user (mode 0644)"), "{s}");
        assert!(!s.contains(SECRET), "{s}");
        let path = temp_file(&text, 0o640);
        assert!(Config::load(&path).unwrap().warnings[0].contains("its group"));
        let path = temp_file(&text, 0o600);
        assert_eq!(Config::load(&path).unwrap().names(), ["q"]);
        // Without secrets a readable file is fine (login nodes), a world-writable one is not.
        let plain = r#"{"resources": [{"name": "F", "type": "pasqal-local", "environment": {"QRMI_WARDEN_URL": "http://w:1"}}]}"#;
        assert!(Config::load(&temp_file(plain, 0o644)).is_ok());
        let s = Config::load(&temp_file(plain, 0o646))
            .unwrap_err()
            .to_string();
        assert!(s.contains("writable by every user"), "{s}");
    }

    #[test]
    fn root_warns_of_secrets_owned_by_someone_else() {
        let config = parse(&format!(r#"{{"resources": [{}]}}"#, qcs("q"))).unwrap();
        let path = Path::new("/etc/slurm/qrmi_config.json");
        let s = check_permissions(path, 0o100600, 1000, 0, &config)
            .unwrap()
            .join("\n");
        assert!(s.contains("owned by uid 1000, not root"), "{s}");
        assert!(s.contains("chmod 600 /etc/slurm/qrmi_config.json"), "{s}");
        assert!(
            check_permissions(path, 0o100600, 0, 0, &config)
                .unwrap()
                .is_empty()
        );
        // A user reading their own test config is not warned about the owner.
        assert!(
            check_permissions(path, 0o100600, 1000, 1000, &config)
                .unwrap()
                .is_empty()
        );
        // Writable by everyone: anyone could redirect the site's secrets. Refused.
        assert!(check_permissions(path, 0o100646, 0, 0, &config).is_err());
    }

    #[test]
    fn load_reports_missing_and_syntax_errors_with_the_path() {
        let e = Config::load(Path::new("/nonexistent/qrmi.json")).unwrap_err();
        assert!(matches!(e.kind, ConfigErrorKind::Unreadable { .. }));
        assert!(
            e.to_string()
                .contains("/nonexistent/qrmi.json: cannot read"),
            "{e}"
        );
        let path = temp_file("{\"resources\": [,]}", 0o600);
        let e = Config::load(&path).unwrap_err();
        assert_eq!(e.kind, ConfigErrorKind::Syntax);
        assert!(e.to_string().contains("line 1 column 16"), "{e}");
    }

    #[test]
    fn url_check() {
        assert!(is_http_url("http://localhost:8006"));
        assert!(is_http_url("https://q.example/api/v1"));
        assert!(!is_http_url("https://"));
        assert!(!is_http_url("https:///path"));
        assert!(!is_http_url("ftp://x"));
        assert!(!is_http_url("http://a b"));
    }
}
