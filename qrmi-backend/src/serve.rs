//! The helper's side of the protocol of qrmi_core::backend::helper: an `Open` line, then one
//! reply line per request line until EOF. The backend is made once, so its keep-alive
//! connections and IAM token serve every request of this process; a backend that cannot be
//! made answers each request with why.
use std::io::{BufRead, Write};

use qrmi_core::backend::helper::{Open, PROTOCOL, Reply, Request};
use qrmi_core::backend::{Backend, BackendError, MungeFn, Operation};

/// Serves one plugin's requests. Err only for a broken pipe or a line that is not ours (then
/// the plugin reports the helper ended without an answer).
pub fn serve(input: impl BufRead, mut output: impl Write) -> Result<(), String> {
    let mut lines = input.lines();
    let first = match lines.next() {
        Some(line) => line.map_err(|e| format!("reading the request: {e}"))?,
        None => return Ok(()),
    };
    let open: Open = serde_json::from_str(&first)
        .map_err(|e| format!("the first line is not a request of spank_qrmi ({e})"))?;
    let backend = make(&open);
    for line in lines {
        let line = line.map_err(|e| format!("reading the request: {e}"))?;
        let request: Request = serde_json::from_str(&line)
            .map_err(|e| format!("a request line is not of spank_qrmi ({e})"))?;
        let reply = match &backend {
            Err(e) => Reply::Failed(e.clone()),
            Ok(backend) => answer(backend.as_ref(), request),
        };
        let mut text = serde_json::to_vec(&reply).map_err(|e| format!("encoding: {e}"))?;
        text.push(b'\n');
        output
            .write_all(&text)
            .and_then(|()| output.flush())
            .map_err(|e| format!("writing the reply: {e}"))?;
    }
    Ok(())
}

fn make(open: &Open) -> Result<Box<dyn Backend>, BackendError> {
    if open.protocol != PROTOCOL {
        return Err(BackendError {
            qpu: open.resource.name.clone(),
            kind: open.resource.kind,
            operation: Operation::StatusCheck,
            message: format!(
                "spank-qrmi-backend speaks protocol {PROTOCOL}, spank_qrmi.so {}: install the helper of the plugin's release",
                open.protocol
            ),
            transient: false,
        });
    }
    let munge = open
        .munge
        .then(|| Box::new(qrmi_core::munge::credential) as MungeFn);
    crate::backend::backend_for(&open.resource, &open.http, munge)
}

fn answer(backend: &dyn Backend, request: Request) -> Reply {
    let result = match request {
        Request::CheckAccessible => backend.check_accessible().map(Reply::Accessible),
        Request::Acquire { job } => backend.acquire(&job).map(Reply::Token),
        Request::Release { token } => backend.release(&token).map(|()| Reply::Released),
    };
    result.unwrap_or_else(Reply::Failed)
}
