//! IBM Quantum Compute Service / Qiskit Runtime Service (deprecated name, prefix `QRMI_IBM_QRS_`).
//!
//! - IAM: `POST {IAM}/identity/token` form `grant_type=urn:ibm:params:oauth:grant-type:apikey`,
//!   `apikey=...` → `access_token`, kept in memory only, for the life of this value (one acquire
//!   or one release, with its retries) and while valid: `expires_in` (else `expiration`) less a
//!   margin. Never written to disk or logs; acquire and release run in different processes, so
//!   sharing one token between them would need a file: each fetches its own.
//! - Calls carry `Authorization: Bearer <token>`, `Service-CRN: <crn>`, `Accept: application/json`.
//! - Status: `GET {EP}/backends/{name}/status` → `status` in {active, online} (any case).
//! - Acquire: `POST {EP}/sessions` `{"max_ttl", "mode", "backend", "backend_name"}` → `id`;
//!   `max_ttl` = min(config TTL, job time limit).
//! - Release: `GET {EP}/jobs?pending=true&session_id={id}` → `jobs`; pending jobs →
//!   `DELETE {EP}/sessions/{id}/close`, else `PATCH {EP}/sessions/{id}` `{"accepting_jobs":false}`.
//!   404/410 (and 409 on PATCH: already closed) count as released.
use std::cell::RefCell;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::{AcquireContext, Backend, Common, Operation, Result, is_gone};
use crate::http::{Body, HttpConfig, HttpErrorKind, encode_component};
use qrmi_core::config::{Resource, SessionMode};

pub(crate) struct Iam {
    endpoint: String,
    apikey: String,
    /// The token and when to stop using it (None: the answer named no lifetime).
    token: RefCell<Option<(String, Option<Instant>)>>,
}

/// Stop using a token this long before IAM says it expires (a request sent just before the
/// end could arrive after it); at most half its lifetime, for short-lived tokens.
const EXPIRY_MARGIN: Duration = Duration::from_secs(60);

/// How long a token fetched at `now_unix` stays usable, from IAM's answer: `expires_in`
/// (seconds from now; not subject to clock skew) or else `expiration` (Unix time), less the
/// margin. None when the answer gives neither.
fn usable_for(answer: &Value, now_unix: u64) -> Option<Duration> {
    let lifetime = match answer.get("expires_in").and_then(Value::as_u64) {
        Some(secs) => secs,
        None => answer
            .get("expiration")
            .and_then(Value::as_u64)?
            .saturating_sub(now_unix),
    };
    let lifetime = Duration::from_secs(lifetime);
    Some(lifetime.saturating_sub(EXPIRY_MARGIN.min(lifetime / 2)))
}

impl Iam {
    pub(crate) fn new(endpoint: &str, apikey: &str) -> Iam {
        Iam {
            endpoint: endpoint.trim_end_matches('/').to_string(),
            apikey: apikey.to_string(),
            token: RefCell::new(None),
        }
    }

    /// The bearer token: exchanged once, again only when the one held is no longer valid.
    pub(crate) fn token(&self, common: &Common, operation: Operation) -> Result<String> {
        if let Some((token, until)) = self.token.borrow().as_ref()
            && until.is_none_or(|until| Instant::now() < until)
        {
            return Ok(token.clone());
        }
        let fetched = Instant::now();
        let url = format!("{}/identity/token", self.endpoint);
        let answer = common
            .http
            .send_json(
                "POST",
                &url,
                &[("Accept", "application/json")],
                Body::Form(&[
                    ("grant_type", "urn:ibm:params:oauth:grant-type:apikey"),
                    ("apikey", &self.apikey),
                ]),
            )
            .map_err(|e| {
                let mut err = common.http_error(operation, &e, None);
                err.message = format!("IAM token exchange: {}", err.message);
                err
            })?;
        let token = answer
            .get("access_token")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                common.bad_answer(operation, "IAM token exchange: no \"access_token\" string")
            })?
            .to_string();
        let until = usable_for(&answer, unix_secs()).and_then(|usable| fetched.checked_add(usable));
        *self.token.borrow_mut() = Some((token.clone(), until));
        Ok(token)
    }
}

pub struct IbmSession {
    common: Common,
    endpoint: String,
    crn: String,
    iam: Iam,
    backend_name: String,
    mode: SessionMode,
    max_ttl: u64,
    status_check: bool,
}

impl IbmSession {
    pub fn new(resource: &Resource, http: &HttpConfig) -> Result<IbmSession> {
        let common = Common::new(resource, http)?;
        let prefix = resource.kind.ibm_prefix().unwrap_or("QRMI_IBM_QCS_");
        let key = |k: &str| -> Result<String> {
            let name = format!("{prefix}{k}");
            resource.get(&name).map(str::to_string).ok_or_else(|| {
                common.error(
                    Operation::StatusCheck,
                    format!("environment key {name} is missing in the config"),
                    false,
                )
            })
        };
        let endpoint = key("ENDPOINT")?.trim_end_matches('/').to_string();
        let crn = key("SERVICE_CRN")?;
        let iam = Iam::new(&key("IAM_ENDPOINT")?, &key("IAM_APIKEY")?);
        Ok(IbmSession {
            endpoint,
            crn,
            iam,
            backend_name: resource.name.clone(),
            mode: resource.session_mode(),
            max_ttl: resource.session_max_ttl(),
            status_check: resource.status_check,
            common,
        })
    }

    fn call(
        &self,
        operation: Operation,
        method: &'static str,
        path: &str,
        body: Body<'_>,
        token: Option<&str>,
    ) -> std::result::Result<Value, (Option<HttpErrorKind>, super::BackendError)> {
        let bearer = self
            .iam
            .token(&self.common, operation)
            .map_err(|e| (None, e))?;
        let auth = format!("Bearer {bearer}");
        let url = format!("{}{path}", self.endpoint);
        let headers = [
            ("Authorization", auth.as_str()),
            ("Service-CRN", self.crn.as_str()),
            ("Accept", "application/json"),
        ];
        // PATCH and DELETE answers may have no body (204): only GET and POST must be JSON.
        let result = if method == "GET" || method == "POST" {
            self.common.http.send_json(method, &url, &headers, body)
        } else {
            self.common
                .http
                .send(method, &url, &headers, body)
                .map(|_| Value::Null)
        };
        result.map_err(|e| {
            let err = self.common.http_error(operation, &e, token);
            (Some(e.kind), err)
        })
    }

    /// `max_ttl` for a job: the config's, never longer than the job's time limit (at least 1 s).
    pub fn session_ttl(&self, time_limit_secs: Option<u64>) -> u64 {
        match time_limit_secs {
            Some(limit) => self.max_ttl.min(limit).max(1),
            None => self.max_ttl,
        }
    }
}

impl Backend for IbmSession {
    fn check_accessible(&self) -> Result<bool> {
        if !self.status_check {
            return Ok(true);
        }
        let path = format!("/backends/{}/status", encode_component(&self.backend_name));
        let answer = self
            .call(Operation::StatusCheck, "GET", &path, Body::Empty, None)
            .map_err(|(_, e)| e)?;
        let status = answer
            .get("status")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                self.common
                    .bad_answer(Operation::StatusCheck, "no \"status\" string")
            })?
            .to_ascii_lowercase();
        Ok(status == "active" || status == "online")
    }

    fn acquire(&self, ctx: &AcquireContext) -> Result<String> {
        let body = json!({
            "max_ttl": self.session_ttl(ctx.time_limit_secs),
            "mode": self.mode.as_str(),
            "backend": self.backend_name,
            "backend_name": self.backend_name,
        });
        let answer = self
            .call(
                Operation::Acquire,
                "POST",
                "/sessions",
                Body::Json(&body),
                None,
            )
            .map_err(|(_, e)| e)?;
        match answer.get("id") {
            Some(Value::String(id)) if !id.is_empty() => Ok(id.clone()),
            _ => Err(self
                .common
                .bad_answer(Operation::Acquire, "no session \"id\" string")),
        }
    }

    fn release(&self, token: &str) -> Result<()> {
        let op = Operation::Release;
        let id = encode_component(token);
        let jobs = self
            .call(
                op,
                "GET",
                &format!("/jobs?pending=true&session_id={id}"),
                Body::Empty,
                Some(token),
            )
            .map_err(|(_, e)| e)?;
        let pending = match jobs.get("jobs") {
            Some(Value::Array(list)) => !list.is_empty(),
            None | Some(Value::Null) => false,
            Some(_) => {
                return Err(self.common.bad_answer(op, "\"jobs\" is not an array"));
            }
        };
        let result = if pending {
            self.call(
                op,
                "DELETE",
                &format!("/sessions/{id}/close"),
                Body::Empty,
                Some(token),
            )
        } else {
            let body = json!({"accepting_jobs": false});
            self.call(
                op,
                "PATCH",
                &format!("/sessions/{id}"),
                Body::Json(&body),
                Some(token),
            )
        };
        match result {
            Ok(_) => Ok(()),
            Err((Some(kind), _)) if is_gone(&kind) => Ok(()),
            Err((Some(HttpErrorKind::Status { code: 409, .. }), _)) if !pending => Ok(()),
            Err((_, e)) => Err(e),
        }
    }
}

/// Whole seconds since the epoch (0 before 1970): what IAM's `expiration` is compared with.
fn unix_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use qrmi_core::config::Config;
    use std::path::Path;

    fn session(ttl: Option<&str>) -> IbmSession {
        let ttl = ttl
            .map(|t| format!(r#", "QRMI_IBM_QCS_SESSION_MAX_TTL": "{t}""#))
            .unwrap_or_default();
        let config = Config::parse(
            Path::new("/x.json"),
            &format!(
                r#"{{"resources": [{{"name": "q", "type": "ibm-quantum-compute-service", "environment": {{
                "QRMI_IBM_QCS_ENDPOINT": "https://q/api/", "QRMI_IBM_QCS_IAM_ENDPOINT": "https://iam",
                "QRMI_IBM_QCS_IAM_APIKEY": "k", "QRMI_IBM_QCS_SERVICE_CRN": "crn"{ttl}}}}}]}}"#
            ),
        )
        .unwrap();
        IbmSession::new(&config.resources[0], &HttpConfig::default()).unwrap()
    }

    #[test]
    fn token_lifetime_from_iams_answer_less_a_margin() {
        let secs = |v: Value| usable_for(&v, 1_000).map(|d| d.as_secs());
        assert_eq!(secs(json!({"expires_in": 3600})), Some(3540));
        assert_eq!(
            secs(json!({"expires_in": 3600, "expiration": 1_000_000})),
            Some(3540)
        );
        assert_eq!(secs(json!({"expiration": 4_600})), Some(3540));
        assert_eq!(secs(json!({"expires_in": 60})), Some(30));
        assert_eq!(secs(json!({"expires_in": 0})), Some(0));
        assert_eq!(secs(json!({"expiration": 10})), Some(0));
        assert_eq!(secs(json!({})), None);
    }

    #[test]
    fn ttl_never_exceeds_the_time_limit() {
        let s = session(None);
        assert_eq!(s.session_ttl(None), 28800);
        assert_eq!(s.session_ttl(Some(600)), 600);
        assert_eq!(s.session_ttl(Some(100_000)), 28800);
        assert_eq!(s.session_ttl(Some(0)), 1);
        assert_eq!(session(Some("300")).session_ttl(Some(600)), 300);
        assert_eq!(s.endpoint, "https://q/api");
    }
}
