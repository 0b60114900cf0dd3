//! What the plugin knows of QPU backends: the [`Backend`] trait, its errors (scrubbed of
//! secrets), our own tokens, and `helper` — the [`Backend`] the plugin uses, which runs each
//! protocol in the `spank-qrmi-backend` executable (crate qrmi-backend, the only one with HTTP
//! and TLS). The protocols themselves, one per family, all blocking:
//!
//! | type | check_accessible | acquire | release |
//! |---|---|---|---|
//! | ibm-quantum-compute-service, qiskit-runtime-service | IAM token, `GET {EP}/backends/{name}/status` | `POST {EP}/sessions` | pending jobs? `DELETE .../close` : `PATCH accepting_jobs=false` |
//! | pasqal-local | `GET {URL}/accessible` | `POST {URL}/sessions` | `DELETE {URL}/sessions/{id}` |
//! | ibm-quantum-system, pasqal-cloud, iqm-server | status call when `status_check` | our token | nothing |
//! | alice-bob-felis | always accessible | our token | nothing |
//!
//! Every error names the QPU, its type and the operation, and passes through a [`Scrubber`] that
//! replaces each environment value of the resource by `{KEY}` and each token by `<token>`, so no
//! secret reaches a message even where it is part of a URL.
pub mod helper;

use std::fmt;
use std::io::Read;

use crate::config::{Resource, ResourceType};
use serde::{Deserialize, Serialize};

/// What acquisition needs to know about the job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AcquireContext {
    pub job_id: u32,
    pub uid: u32,
    /// Seconds; None = unlimited.
    pub time_limit_secs: Option<u64>,
}

/// Produces a munge credential for the `x-munge-cred` header (pasqal-local). The caller supplies
/// it (the plugin encodes with libmunge; tests return a fixed string).
pub type MungeFn = Box<dyn Fn() -> std::result::Result<String, String>>;

pub type Result<T> = std::result::Result<T, BackendError>;

/// One QPU's protocol.
pub trait Backend {
    /// Whether the QPU can be acquired now. `Ok(true)` without a call when the status check is
    /// disabled for the resource.
    fn check_accessible(&self) -> Result<bool>;
    /// Acquires the QPU for the job; returns the acquisition token (session id or our own).
    fn acquire(&self, ctx: &AcquireContext) -> Result<String>;
    /// Releases what `acquire` returned. Idempotent: a session already gone is success.
    fn release(&self, token: &str) -> Result<()>;
    /// No more calls will come: a backend in a helper process lets it exit now, while the
    /// caller records the outcome (it is reaped when the backend is dropped).
    fn finish(&self) {}
}

/// Which step failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Operation {
    StatusCheck,
    Acquire,
    Release,
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Operation::StatusCheck => "status check",
            Operation::Acquire => "acquire",
            Operation::Release => "release",
        })
    }
}

/// A failed backend operation. The message holds no secret (scrubbed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackendError {
    pub qpu: String,
    pub kind: ResourceType,
    pub operation: Operation,
    pub message: String,
    /// Worth retrying (timeouts, connection errors, HTTP 5xx/429).
    pub transient: bool,
}

impl fmt::Display for BackendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "QPU {} ({}): {} failed: {}",
            self.qpu, self.kind, self.operation, self.message
        )
    }
}

impl std::error::Error for BackendError {}

/// Replaces secrets in messages: each environment value (by `{KEY}`, longest first) and each
/// token (by `<token>`). Environment values shorter than 4 characters are left alone (they would
/// garble messages and are not credentials); tokens are always replaced.
#[derive(Clone, Default)]
pub struct Scrubber {
    replacements: Vec<(String, String)>,
}

impl fmt::Debug for Scrubber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Scrubber({} values)", self.replacements.len())
    }
}

impl Scrubber {
    pub fn for_resource(resource: &Resource) -> Self {
        let mut s = Scrubber::default();
        for (key, value) in &resource.environment {
            s.add(value, &format!("{{{key}}}"));
        }
        s
    }

    pub fn add(&mut self, secret: &str, replacement: &str) {
        if secret.len() >= 4 {
            self.add_any_length(secret, replacement);
        }
    }

    fn add_any_length(&mut self, secret: &str, replacement: &str) {
        if !secret.is_empty() && !self.replacements.iter().any(|(s, _)| s == secret) {
            self.replacements
                .push((secret.to_string(), replacement.to_string()));
            self.replacements
                .sort_by_key(|r| std::cmp::Reverse(r.0.len()));
        }
    }

    /// Tokens are scrubbed whatever their length, also in percent-encoded form (they appear
    /// encoded in URLs).
    pub fn add_token(&mut self, token: &str) {
        self.add_any_length(token, "<token>");
        self.add_any_length(&crate::http::encode_component(token), "<token>");
    }

    pub fn scrub(&self, text: &str) -> String {
        let mut out = text.to_string();
        for (secret, replacement) in &self.replacements {
            if out.contains(secret.as_str()) {
                out = out.replace(secret.as_str(), replacement);
            }
        }
        out
    }
}

/// A fresh random token in UUID v4 form (upstream mints UUIDs for these types, so the job side
/// sees the same shape). 122 random bits from /dev/urandom: unique per job and QPU.
pub fn mint_token() -> std::io::Result<String> {
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    Ok(format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_uuid_v4_and_unique() {
        let a = mint_token().unwrap();
        let b = mint_token().unwrap();
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "4");
        assert!(matches!(&a[19..20], "8" | "9" | "a" | "b"), "{a}");
        assert_eq!(a.matches('-').count(), 4);
    }

    #[test]
    fn scrubber_replaces_longest_first_and_encoded_tokens() {
        let mut s = Scrubber::default();
        s.add("https://q.example", "{EP}");
        s.add("https://q.example/api", "{EP2}");
        s.add("abc", "{SHORT}");
        s.add_token("tok/en 1");
        assert_eq!(
            s.scrub("GET https://q.example/api/sessions/tok%2Fen%201 abc tok/en 1"),
            "GET {EP2}/sessions/<token> abc <token>"
        );
    }
}
