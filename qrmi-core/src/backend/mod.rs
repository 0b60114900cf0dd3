//! Backend protocols: one implementation per family, all blocking, behind [`Backend`].
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
mod ibm;
mod pasqal_local;
mod token_only;

use std::fmt;
use std::io::Read;

use crate::config::{Resource, ResourceType};
use crate::http::{Http, HttpConfig, HttpError, HttpErrorKind};

pub use ibm::IbmSession;
pub use pasqal_local::PasqalLocal;
pub use token_only::TokenOnly;

/// What acquisition needs to know about the job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
}

/// Which step failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
#[derive(Debug, Clone, PartialEq, Eq)]
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

/// Shared by the implementations: identity and error construction.
pub(crate) struct Common {
    pub qpu: String,
    pub kind: ResourceType,
    pub scrubber: Scrubber,
    pub http: Http,
}

impl Common {
    fn new(resource: &Resource, http: &HttpConfig) -> Result<Common> {
        let scrubber = Scrubber::for_resource(resource);
        let http = Http::new(http).map_err(|message| BackendError {
            qpu: resource.name.clone(),
            kind: resource.kind,
            operation: Operation::StatusCheck,
            message: scrubber.scrub(&message),
            transient: false,
        })?;
        Ok(Common {
            qpu: resource.name.clone(),
            kind: resource.kind,
            scrubber,
            http,
        })
    }

    pub fn error(
        &self,
        operation: Operation,
        message: impl fmt::Display,
        transient: bool,
    ) -> BackendError {
        self.error_with(operation, message, transient, None)
    }

    /// Scrubs with this backend's secrets plus `token`.
    pub fn error_with(
        &self,
        operation: Operation,
        message: impl fmt::Display,
        transient: bool,
        token: Option<&str>,
    ) -> BackendError {
        let mut scrubber = self.scrubber.clone();
        if let Some(token) = token {
            scrubber.add_token(token);
        }
        BackendError {
            qpu: self.qpu.clone(),
            kind: self.kind,
            operation,
            message: scrubber.scrub(&message.to_string()),
            transient,
        }
    }

    pub fn http_error(
        &self,
        operation: Operation,
        e: &HttpError,
        token: Option<&str>,
    ) -> BackendError {
        self.error_with(operation, e, e.kind.is_transient(), token)
    }

    pub fn bad_answer(&self, operation: Operation, what: &str) -> BackendError {
        self.error(operation, format!("unexpected response: {what}"), false)
    }
}

/// True for an HTTP error that means "already gone" on release.
pub(crate) fn is_gone(kind: &HttpErrorKind) -> bool {
    matches!(
        kind,
        HttpErrorKind::Status {
            code: 404 | 410,
            ..
        }
    )
}

/// The backend for `resource`. `munge` is used by pasqal-local only (None: no header).
pub fn backend_for(
    resource: &Resource,
    http: &HttpConfig,
    munge: Option<MungeFn>,
) -> Result<Box<dyn Backend>> {
    Ok(match resource.kind {
        ResourceType::IbmQuantumComputeService | ResourceType::QiskitRuntimeService => {
            Box::new(IbmSession::new(resource, http)?)
        }
        ResourceType::PasqalLocal => Box::new(PasqalLocal::new(resource, http, munge)?),
        ResourceType::IbmQuantumSystem
        | ResourceType::PasqalCloud
        | ResourceType::IqmServer
        | ResourceType::AliceBobFelis
        | ResourceType::Oqtopus
        | ResourceType::Other => Box::new(TokenOnly::new(resource, http)?),
    })
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
