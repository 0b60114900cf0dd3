//! pasqal-local (Pasqal's on-premises "warden" middleware), `QRMI_WARDEN_URL` (or `QRMI_URL`):
//! - Status: `GET {URL}/accessible` → `{"is_accessible": bool}`.
//! - Acquire: `POST {URL}/sessions` `{"user_id": "<uid>", "slurm_job_id": "<jobid>"}` (strings)
//!   → `{"id": ...}` (string or number).
//! - Release: `DELETE {URL}/sessions/{id}`; 404/410 = already gone = released.
//! - Session calls carry `x-munge-cred: <credential>` when the caller supplies a [`MungeFn`].
use serde_json::{Value, json};

use super::{AcquireContext, Backend, Common, MungeFn, Operation, Result, is_gone};
use crate::http::{Body, HttpConfig, encode_component};
use qrmi_core::config::Resource;

pub struct PasqalLocal {
    common: Common,
    url: String,
    munge: Option<MungeFn>,
    status_check: bool,
}

impl PasqalLocal {
    pub fn new(resource: &Resource, http: &HttpConfig, munge: Option<MungeFn>) -> Result<Self> {
        let common = Common::new(resource, http)?;
        let url = resource
            .warden_url()
            .ok_or_else(|| {
                common.error(
                    Operation::StatusCheck,
                    "environment key QRMI_WARDEN_URL is missing in the config",
                    false,
                )
            })?
            .trim_end_matches('/')
            .to_string();
        Ok(PasqalLocal {
            common,
            url,
            munge,
            status_check: resource.status_check,
        })
    }

    fn munge_header(&self, operation: Operation) -> Result<Option<String>> {
        match &self.munge {
            None => Ok(None),
            Some(f) => f().map(Some).map_err(|why| {
                self.common
                    .error(operation, format!("munge credential: {why}"), true)
            }),
        }
    }

    fn headers<'a>(&self, cred: &'a Option<String>) -> Vec<(&'static str, &'a str)> {
        let mut headers = vec![("Accept", "application/json")];
        if let Some(cred) = cred {
            headers.push(("x-munge-cred", cred.as_str()));
        }
        headers
    }
}

impl Backend for PasqalLocal {
    fn check_accessible(&self) -> Result<bool> {
        if !self.status_check {
            return Ok(true);
        }
        let op = Operation::StatusCheck;
        let answer = self
            .common
            .http
            .send_json(
                "GET",
                &format!("{}/accessible", self.url),
                &[("Accept", "application/json")],
                Body::Empty,
            )
            .map_err(|e| self.common.http_error(op, &e, None))?;
        answer
            .get("is_accessible")
            .and_then(Value::as_bool)
            .ok_or_else(|| self.common.bad_answer(op, "no \"is_accessible\" boolean"))
    }

    fn acquire(&self, ctx: &AcquireContext) -> Result<String> {
        let op = Operation::Acquire;
        let cred = self.munge_header(op)?;
        let body = json!({"user_id": ctx.uid.to_string(), "slurm_job_id": ctx.job_id.to_string()});
        let answer = self
            .common
            .http
            .send_json(
                "POST",
                &format!("{}/sessions", self.url),
                &self.headers(&cred),
                Body::Json(&body),
            )
            .map_err(|e| self.common.http_error(op, &e, cred.as_deref()))?;
        match answer.get("id") {
            Some(Value::String(id)) if !id.is_empty() => Ok(id.clone()),
            Some(Value::Number(n)) => Ok(n.to_string()),
            _ => Err(self.common.bad_answer(op, "no session \"id\"")),
        }
    }

    fn release(&self, token: &str) -> Result<()> {
        let op = Operation::Release;
        let cred = self.munge_header(op)?;
        let url = format!("{}/sessions/{}", self.url, encode_component(token));
        match self
            .common
            .http
            .send("DELETE", &url, &self.headers(&cred), Body::Empty)
        {
            Ok(_) => Ok(()),
            Err(e) if is_gone(&e.kind) => Ok(()),
            Err(e) => {
                let mut err = self.common.http_error(op, &e, Some(token));
                if let Some(cred) = &cred {
                    err.message = err.message.replace(cred.as_str(), "<munge>");
                }
                Err(err)
            }
        }
    }
}
