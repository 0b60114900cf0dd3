//! Backend HTTP responses (the network): each backend talks to a loopback server that answers
//! with the fuzz input as the raw HTTP response (status line, headers, body), through the real
//! client (ureq, size cap, status handling) and the backend's answer parsing. The IAM token
//! exchange gets a fixed valid answer so the IBM calls after it see the fuzzed one.
//! Input: byte 0 picks backend and operation, the rest is the response.
//! Invariants: no panic, a bounded call, and no secret from the config in any error message.
#![no_main]
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::Path;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use qrmi_backend::backend::{AcquireContext, backend_for};
use qrmi_backend::http::HttpConfig;
use qrmi_core::config::Config;

const APIKEY: &str = "SECRET-apikey-7f3a9c1e55";
const TOKEN: &str = "SECRET-iqmtoken-0b8d2e44";
const IAM_ANSWER: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 44\r\nConnection: close\r\n\r\n{\"access_token\":\"SECRET-bearer-9a8b7c6d5e\"}\n";

static RESPONSE: Mutex<Vec<u8>> = Mutex::new(Vec::new());

/// Reads one request (headers and Content-Length body) so closing never resets the client.
fn read_request(s: &mut TcpStream) -> Vec<u8> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let len = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            if buf.len() >= end + 4 + len {
                return buf;
            }
        }
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => return buf,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

fn serve(listener: TcpListener) {
    for stream in listener.incoming() {
        let Ok(mut s) = stream else { continue };
        let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
        let request = read_request(&mut s);
        let answer = if request.windows(15).any(|w| w == b"/identity/token") {
            IAM_ANSWER.to_vec()
        } else {
            RESPONSE.lock().unwrap().clone()
        };
        let _ = s.write_all(&answer);
        let _ = s.shutdown(Shutdown::Write);
        // Let the client read everything before the socket goes away.
        let mut sink = [0u8; 1024];
        while matches!(s.read(&mut sink), Ok(n) if n > 0) {}
    }
}

fn config() -> &'static Config {
    static CONFIG: OnceLock<Config> = OnceLock::new();
    CONFIG.get_or_init(|| {
        std::panic::set_hook(Box::new(|info| eprintln!("{info}")));
        let listener = TcpListener::bind("127.0.0.1:0").expect("loopback listener");
        let url = format!("http://{}", listener.local_addr().unwrap());
        std::thread::spawn(move || serve(listener));
        let text = format!(
            r#"{{"resources": [
  {{"name": "ibm_q", "type": "ibm-quantum-compute-service", "environment": {{
    "QRMI_IBM_QCS_ENDPOINT": "{url}/api/", "QRMI_IBM_QCS_IAM_ENDPOINT": "{url}",
    "QRMI_IBM_QCS_IAM_APIKEY": "{APIKEY}", "QRMI_IBM_QCS_SERVICE_CRN": "crn:v1:x"}}}},
  {{"name": "pasqal_l", "type": "pasqal-local", "environment": {{"QRMI_WARDEN_URL": "{url}"}}}},
  {{"name": "ibm_s", "type": "ibm-quantum-system", "status_check": true, "environment": {{
    "QRMI_IBM_QS_ENDPOINT": "{url}", "QRMI_IBM_QS_IAM_ENDPOINT": "{url}",
    "QRMI_IBM_QS_IAM_APIKEY": "{APIKEY}", "QRMI_IBM_QS_SERVICE_CRN": "crn:v1:y"}}}},
  {{"name": "pasqal_c", "type": "pasqal-cloud", "status_check": true, "status_endpoint": "{url}", "environment": {{}}}},
  {{"name": "iqm_x_1", "type": "iqm-server", "status_check": true, "environment": {{
    "QRMI_IQM_ISA_ENDPOINT": "{url}", "QRMI_IQM_ISA_TOKEN": "{TOKEN}"}}}}
]}}"#
        );
        Config::parse(Path::new("/fuzz/qrmi_config.json"), &text).expect("fuzz config is valid")
    })
}

fuzz_target!(|data: &[u8]| {
    let config = config();
    // qrmi_backend::http contains panics of the HTTP client (ureq 2.12 panics on some malformed
    // headers) and turns them into errors; libfuzzer-sys's hook would abort on those caught
    // panics, so a panic counts as a crash only when it escapes our code.
    if std::panic::catch_unwind(|| one(config, data)).is_err() {
        std::process::abort();
    }
});

fn one(config: &Config, data: &[u8]) {
    let Some((&which, response)) = data.split_first() else {
        return;
    };
    *RESPONSE.lock().unwrap() = response.to_vec();
    let resource = &config.resources[(which as usize) % config.resources.len()];
    let http = HttpConfig {
        connect_timeout: Duration::from_secs(2),
        timeout: Duration::from_secs(5),
        max_body: 64 * 1024,
        ..HttpConfig::default()
    };
    let munge: Option<qrmi_backend::backend::MungeFn> =
        Some(Box::new(|| Ok("MUNGE-cred-secret".to_owned())));
    let backend = backend_for(resource, &http, munge).expect("backend for a valid resource");
    let ctx = AcquireContext {
        job_id: 42,
        uid: 1000,
        time_limit_secs: Some(600),
    };
    let message = match (which / 8) % 3 {
        0 => backend.check_accessible().err(),
        1 => backend.acquire(&ctx).err(),
        _ => backend.release("sess-123/../x y").err(),
    }
    .map(|e| e.to_string());
    if let Some(m) = message {
        for secret in [
            APIKEY,
            TOKEN,
            "SECRET-bearer-9a8b7c6d5e",
            "MUNGE-cred-secret",
        ] {
            assert!(!m.contains(secret), "secret in error message: {m}");
        }
    }
}
