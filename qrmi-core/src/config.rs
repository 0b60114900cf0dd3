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
//! file. `types` holds the one table of per-type facts, `entry` the checks of one resource entry.
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

mod entry;
mod types;

use entry::parse_resource;
pub use entry::{missing_keys, value_problems};
pub use types::ResourceType;

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
/// Serialized only to hand it to the backend helper through its stdin pipe.
#[derive(Clone, PartialEq, serde::Serialize, serde::Deserialize)]
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
        let euid = host_io::effective_uid();
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
mod tests;
