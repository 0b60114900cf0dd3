//! The QPU protocols, one module per family, all blocking, behind qrmi-core's [`Backend`]
//! (see qrmi_core::backend for the table of what each type calls). Runs in the helper process
//! only; errors pass through qrmi-core's [`Scrubber`].
mod ibm;
mod pasqal_local;
mod token_only;

use std::fmt;

pub use qrmi_core::backend::{
    AcquireContext, Backend, BackendError, MungeFn, Operation, Result, Scrubber, mint_token,
};
use qrmi_core::config::{Resource, ResourceType};

use crate::http::{Http, HttpConfig, HttpError, HttpErrorKind};

pub use ibm::IbmSession;
pub use pasqal_local::PasqalLocal;
pub use token_only::TokenOnly;

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
