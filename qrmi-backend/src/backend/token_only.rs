//! Types without a session at the backend: the acquisition token is ours (a fresh UUID v4 per job
//! and QPU, as upstream mints), release does nothing. The status check runs only when the
//! resource's `status_check` is true:
//! - ibm-quantum-system: IAM token, `GET {QRMI_IBM_QS_ENDPOINT}/v1/backends/{name}` (Bearer,
//!   Service-CRN) → `status == "online"`.
//! - pasqal-cloud: `GET {status_endpoint}/core-fast/api/v1/devices?device_type={name}` (no auth)
//!   → `data[0].availability == "ACTIVE"`.
//! - iqm-server: `GET {QRMI_IQM_ISA_ENDPOINT}/api/v1/quantum-computers/{qc}/health` (Bearer
//!   `QRMI_IQM_ISA_TOKEN`) → `healthy == true`; `{qc}` is the name with its last `_` made `:`
//!   (upstream's mapping, `garnet_mock` → `garnet:mock`).
//! - alice-bob-felis: always accessible.
use serde_json::Value;

use super::ibm::Iam;
use super::{AcquireContext, Backend, Common, Operation, Result, mint_token};
use crate::http::{Body, HttpConfig, encode_component};
use qrmi_core::config::{PASQAL_CLOUD_DEFAULT_ENDPOINT, Resource, ResourceType};

enum Check {
    None,
    IbmSystem {
        endpoint: String,
        crn: String,
        iam: Iam,
    },
    PasqalCloud {
        endpoint: String,
    },
    Iqm {
        endpoint: String,
        token: String,
    },
}

pub struct TokenOnly {
    common: Common,
    check: Check,
}

impl TokenOnly {
    pub fn new(resource: &Resource, http: &HttpConfig) -> Result<Self> {
        let common = Common::new(resource, http)?;
        let key = |k: &str| -> Result<String> {
            resource
                .get(k)
                .map(|v| v.trim_end_matches('/').to_string())
                .ok_or_else(|| {
                    common.error(
                        Operation::StatusCheck,
                        format!("environment key {k} is missing in the config"),
                        false,
                    )
                })
        };
        let check = if !resource.status_check {
            Check::None
        } else {
            match resource.kind {
                ResourceType::IbmQuantumSystem => Check::IbmSystem {
                    endpoint: key("QRMI_IBM_QS_ENDPOINT")?,
                    crn: key("QRMI_IBM_QS_SERVICE_CRN")?,
                    iam: Iam::new(
                        &key("QRMI_IBM_QS_IAM_ENDPOINT")?,
                        &key("QRMI_IBM_QS_IAM_APIKEY")?,
                    ),
                },
                ResourceType::PasqalCloud => Check::PasqalCloud {
                    endpoint: resource
                        .status_endpoint
                        .as_deref()
                        .or_else(|| resource.get("QRMI_PASQAL_CLOUD_BASE_URL"))
                        .unwrap_or(PASQAL_CLOUD_DEFAULT_ENDPOINT)
                        .trim_end_matches('/')
                        .to_string(),
                },
                ResourceType::IqmServer => Check::Iqm {
                    endpoint: key("QRMI_IQM_ISA_ENDPOINT")?,
                    token: key("QRMI_IQM_ISA_TOKEN")?,
                },
                _ => Check::None,
            }
        };
        Ok(TokenOnly { common, check })
    }
}

/// upstream's IQM quantum computer name: the last `_` becomes `:`.
pub fn iqm_qc_name(name: &str) -> String {
    match name.rfind('_') {
        Some(pos) => format!("{}:{}", &name[..pos], &name[pos + 1..]),
        None => name.to_string(),
    }
}

impl Backend for TokenOnly {
    fn check_accessible(&self) -> Result<bool> {
        let op = Operation::StatusCheck;
        let c = &self.common;
        match &self.check {
            Check::None => Ok(true),
            Check::IbmSystem { endpoint, crn, iam } => {
                let auth = format!("Bearer {}", iam.token(c, op)?);
                let url = format!("{endpoint}/v1/backends/{}", encode_component(&c.qpu));
                let answer = c
                    .http
                    .send_json(
                        "GET",
                        &url,
                        &[
                            ("Authorization", &auth),
                            ("Service-CRN", crn),
                            ("Accept", "application/json"),
                        ],
                        Body::Empty,
                    )
                    .map_err(|e| c.http_error(op, &e, None))?;
                let status = answer
                    .get("status")
                    .and_then(Value::as_str)
                    .ok_or_else(|| c.bad_answer(op, "no \"status\" string"))?;
                Ok(status.eq_ignore_ascii_case("online"))
            }
            Check::PasqalCloud { endpoint } => {
                let url = format!(
                    "{endpoint}/core-fast/api/v1/devices?device_type={}",
                    encode_component(&c.qpu)
                );
                let answer = c
                    .http
                    .send_json("GET", &url, &[("Accept", "application/json")], Body::Empty)
                    .map_err(|e| c.http_error(op, &e, None))?;
                let device = answer
                    .get("data")
                    .and_then(Value::as_array)
                    .and_then(|d| d.first())
                    .ok_or_else(|| c.bad_answer(op, "no device in \"data\""))?;
                Ok(device.get("availability").and_then(Value::as_str) == Some("ACTIVE"))
            }
            Check::Iqm { endpoint, token } => {
                let auth = format!("Bearer {token}");
                let url = format!(
                    "{endpoint}/api/v1/quantum-computers/{}/health",
                    encode_component(&iqm_qc_name(&c.qpu))
                );
                let answer = c
                    .http
                    .send_json(
                        "GET",
                        &url,
                        &[("Authorization", &auth), ("Accept", "application/json")],
                        Body::Empty,
                    )
                    .map_err(|e| c.http_error(op, &e, None))?;
                answer
                    .get("healthy")
                    .and_then(Value::as_bool)
                    .ok_or_else(|| c.bad_answer(op, "no \"healthy\" boolean"))
            }
        }
    }

    fn acquire(&self, _ctx: &AcquireContext) -> Result<String> {
        mint_token().map_err(|e| {
            self.common.error(
                Operation::Acquire,
                format!("cannot read /dev/urandom for a token: {e}"),
                true,
            )
        })
    }

    fn release(&self, _token: &str) -> Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iqm_names() {
        assert_eq!(iqm_qc_name("garnet_mock"), "garnet:mock");
        assert_eq!(iqm_qc_name("a_b_c"), "a_b:c");
        assert_eq!(iqm_qc_name("garnet"), "garnet");
    }
}
