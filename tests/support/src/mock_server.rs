//! Loopback mock of the backends' HTTP APIs (IBM IAM + Quantum Compute Service, IBM Quantum
//! System status, Pasqal warden, Pasqal Cloud devices, IQM health), for tests. Records every
//! request; can be told to fail (HTTP 500), answer garbage, close mid-response, send a huge
//! body, or hang. Keeps connections open between requests (HTTP/1.1 keep-alive) like the real
//! backends, except after a failure mode.
//!
//! Paths: IAM at `/identity/token`; IBM QCS/QRS endpoint `{base}/api`; IBM QS endpoint
//! `{base}/qs`; warden `{base}/warden`; Pasqal Cloud `{base}` (`/core-fast/...`); IQM `{base}/iqm`.
//!
//! For the real QRMI SDK in jobs (observed from qrmi 0.26.4's requests, not copied from its
//! code), the QCS/QRS endpoint also answers the job side: `GET /backends` (the device list
//! QRMIService() discovers), `POST /jobs` (task_start: refused unless its `session_id` is a
//! session the plugin opened and has not closed), `GET /jobs/{id}` (Completed) and
//! `GET /jobs/{id}/results` (a JSON document sent as a JSON string, as the SDK reads it); the
//! warden answers `POST /jobs` (401 without `x-munge-cred`, 403 unless `X-Warden-Session` is an
//! open session) and `GET /jobs/{id}` (DONE, with results).
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

pub const IAM_TOKEN: &str = "IAM-ACCESS-TOKEN-5f2b9c";
/// The bearer token the IQM stand-in accepts (a site's QRMI_IQM_ISA_TOKEN).
pub const IQM_TOKEN: &str = "IQM-SITE-TOKEN-7c1d";

#[derive(Debug, Clone, PartialEq)]
pub struct Recorded {
    pub method: String,
    /// Path and query.
    pub target: String,
    /// Lower-case names.
    pub headers: Vec<(String, String)>,
    pub body: String,
    /// Which TCP connection carried it (numbered from 1 in accept order): shows keep-alive.
    pub connection: u64,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).expect("request body is JSON")
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Mode {
    Normal,
    /// HTTP 500 with a JSON error body.
    Fail,
    /// HTTP 200 with a body that is not JSON.
    Garbage,
    /// Headers promise 100 bytes; a few are sent, then the connection closes.
    CloseMid,
    /// Reads the request and never answers (until the test ends).
    Hang,
    /// HTTP 200 with a 2 MiB JSON body.
    Huge,
}

#[derive(Debug)]
pub struct State {
    pub requests: Vec<Recorded>,
    /// (method, path prefix, mode): first match wins; else `default_mode`.
    pub rules: Vec<(String, String, Mode)>,
    pub default_mode: Mode,
    pub backend_status: String,
    pub accessible: bool,
    pub pending_jobs: bool,
    pub open_sessions: BTreeSet<String>,
    pub next_session: u32,
    /// The session id of every job the SDK started (`POST /api/jobs`), accepted or not.
    pub job_sessions: Vec<String>,
    /// Every session id handed out, in order (open_sessions loses them when released).
    pub opened: Vec<String>,
    /// The quantum computer of every IQM job accepted (IQM has no sessions: the site's
    /// bearer token is what the job must carry).
    pub iqm_jobs: Vec<String>,
}

pub struct MockServer {
    pub base: String,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
}

impl MockServer {
    pub fn start() -> MockServer {
        MockServer::start_on("127.0.0.1")
    }

    /// Listens on `address` (the test cluster's bridge address, so node namespaces reach it).
    pub fn start_on(address: &str) -> MockServer {
        let listener = TcpListener::bind((address, 0)).expect("bind the mock server");
        let base = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(Mutex::new(State {
            requests: Vec::new(),
            rules: Vec::new(),
            default_mode: Mode::Normal,
            backend_status: "active".into(),
            accessible: true,
            pending_jobs: false,
            open_sessions: BTreeSet::new(),
            next_session: 1,
            job_sessions: Vec::new(),
            opened: Vec::new(),
            iqm_jobs: Vec::new(),
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let (s, st) = (state.clone(), stop.clone());
        thread::spawn(move || {
            let mut accepted = 0;
            for conn in listener.incoming() {
                if st.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                accepted += 1;
                let (s, st) = (s.clone(), st.clone());
                thread::spawn(move || handle(conn, accepted, &s, &st));
            }
        });
        MockServer { base, state, stop }
    }

    pub fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap()
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.state().requests.clone()
    }

    pub fn set_mode(&self, mode: Mode) {
        self.state().default_mode = mode;
    }

    /// Applies `mode` to requests with this method whose path starts with `prefix`.
    pub fn set_mode_for(&self, method: &str, prefix: &str, mode: Mode) {
        self.state()
            .rules
            .push((method.to_string(), prefix.to_string(), mode));
    }
}

impl Drop for MockServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop.
        let _ = TcpStream::connect(self.base.trim_start_matches("http://"));
    }
}

/// One request from the connection's reader; None at end of stream or on garbage.
fn read_request(reader: &mut BufReader<TcpStream>, connection: u64) -> Option<Recorded> {
    let mut line = String::new();
    if reader.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let target = parts.next()?.to_string();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        reader.read_line(&mut h).ok()?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (n, v) = h.split_once(':')?;
        headers.push((n.trim().to_ascii_lowercase(), v.trim().to_string()));
    }
    let len: usize = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; len];
    reader.read_exact(&mut body).ok()?;
    Some(Recorded {
        method,
        target,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
        connection,
    })
}

/// IQM job ids are UUIDs.
fn iqm_job_id(n: usize) -> String {
    format!("00000000-0000-4000-8000-{n:012}")
}

fn iqm_job(id: &str, status: &str, kind: &str) -> String {
    format!(
        r#"{{"artifacts":[],"id":"{id}","messages":[],"qc":{{"id":"7f6e2b9a-0000-4000-8000-000000000001"}},"status":"{status}","timeline":[],"type":"{kind}"}}"#
    )
}

/// `keep`: the connection stays open for the client's next request (HTTP/1.1 keep-alive, as
/// the real backends behave); otherwise `Connection: close`.
fn respond(conn: &mut TcpStream, status: u16, body: &str, keep: bool) {
    let reason = match status {
        200 => "OK",
        204 => "No Content",
        404 => "Not Found",
        500 => "Internal Server Error",
        _ => "Other",
    };
    // One write, as a real server's buffered writer does: several small writes on a kept-alive
    // connection would wait on Nagle's algorithm for the client's delayed ACK (40 ms each).
    let answer = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: {}\r\n\r\n{body}",
        body.len(),
        if keep { "keep-alive" } else { "close" }
    );
    let _ = conn.write_all(answer.as_bytes());
    let _ = conn.flush();
}

/// Serves requests on one connection until the client closes it, asks to close
/// (`Connection: close`), or a failure mode ends it. One reader per connection, so nothing
/// read ahead is lost between requests.
fn handle(conn: TcpStream, connection: u64, state: &Mutex<State>, stop: &AtomicBool) {
    let Ok(read_half) = conn.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(read_half);
    let mut conn = conn;
    while let Some(req) = read_request(&mut reader, connection) {
        let close = req
            .header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"));
        if !answer(&mut conn, req, !close, state, stop) || close {
            return;
        }
    }
}

/// Answers one request; returns whether the connection may serve another. The failure modes
/// close it, as before keep-alive.
fn answer(
    conn: &mut TcpStream,
    req: Recorded,
    keep: bool,
    state: &Mutex<State>,
    stop: &AtomicBool,
) -> bool {
    let mode = {
        let mut s = state.lock().unwrap();
        s.requests.push(req.clone());
        s.rules
            .iter()
            .find(|(m, p, _)| *m == req.method && req.target.starts_with(p.as_str()))
            .map(|(_, _, mode)| *mode)
            .unwrap_or(s.default_mode)
    };
    match mode {
        Mode::Normal => {}
        Mode::Fail => {
            respond(
                conn,
                500,
                r#"{"errors":[{"message":"backend exploded"}]}"#,
                false,
            );
            return false;
        }
        Mode::Garbage => {
            respond(conn, 200, "<html>this is not json", false);
            return false;
        }
        Mode::CloseMid => {
            let _ = conn.write_all(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"id\": \"se",
            );
            let _ = conn.flush();
            return false;
        }
        Mode::Hang => {
            for _ in 0..100 {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                thread::sleep(Duration::from_millis(50));
            }
            return false;
        }
        Mode::Huge => {
            let body = format!("{{\"pad\": \"{}\"}}", "x".repeat(2 * 1024 * 1024));
            respond(conn, 200, &body, false);
            return false;
        }
    }
    let (path, query) = req.target.split_once('?').unwrap_or((&req.target, ""));
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let mut s = state.lock().unwrap();
    let (status, body) = match (req.method.as_str(), segs.as_slice()) {
        ("POST", ["identity", "token"]) => (
            200,
            format!(
                r#"{{"access_token":"{IAM_TOKEN}","expires_in":3600,"expiration":9999999999}}"#
            ),
        ),
        ("GET", ["api", "backends"]) => {
            let device = |name: &str| {
                format!(
                    r#"{{"name":"{name}","status":{{"name":"online","reason":"available"}},"is_simulator":false,"qubits":133,"queue_length":0,"clops":{{"type":"hardware","value":1000}},"processor_type":{{"family":"Heron","revision":"1"}},"wait_time_seconds":null,"performance_metrics":null}}"#
                )
            };
            let list: Vec<String> = ["ibm_torino", "ibm_fez", "ibm_user"]
                .iter()
                .map(|n| device(n))
                .collect();
            (200, format!(r#"{{"devices":[{}]}}"#, list.join(",")))
        }
        ("POST", ["api", "jobs"]) => {
            let body: serde_json::Value = serde_json::from_str(&req.body).unwrap_or_default();
            let session = body["session_id"].as_str().unwrap_or("").to_string();
            s.job_sessions.push(session.clone());
            if s.open_sessions.contains(&session) {
                let id = format!("job-{}", s.job_sessions.len());
                let backend = body["backend"].as_str().unwrap_or("");
                (200, format!(r#"{{"id":"{id}","backend":"{backend}"}}"#))
            } else {
                (
                    400,
                    r#"{"errors":[{"message":"session is not open","code":1217}]}"#.into(),
                )
            }
        }
        ("GET", ["api", "jobs", id]) => (
            200,
            format!(
                r#"{{"id":"{id}","backend":"ibm_torino","status":"Completed","state":{{"status":"Completed"}},"program":{{"id":"sampler"}},"created":"2026-12-02T06:00:00Z","cost":600}}"#
            ),
        ),
        ("GET", ["api", "jobs", id, "results"]) => {
            let doc = format!(r#"{{"results":[{{"data":{{}}}}],"metadata":{{"job":"{id}"}}}}"#);
            (200, serde_json::Value::String(doc).to_string())
        }
        ("GET", ["api", "backends", _name, "status"]) => (
            200,
            format!(
                r#"{{"state":true,"status":"{}","message":"","length_queue":0,"backend_version":"1"}}"#,
                s.backend_status
            ),
        ),
        ("POST", ["api", "sessions"]) | ("POST", ["warden", "sessions"]) => {
            let prefix = if segs[0] == "api" { "sess" } else { "w" };
            let id = format!("{prefix}-{}", s.next_session);
            s.next_session += 1;
            s.open_sessions.insert(id.clone());
            s.opened.push(id.clone());
            (200, format!(r#"{{"id":"{id}","mode":"dedicated"}}"#))
        }
        ("GET", ["api", "jobs"]) => {
            assert!(query.contains("pending=true"), "{query}");
            if s.pending_jobs {
                (
                    200,
                    r#"{"jobs":[{"id":"job-1","status":"Queued"}],"count":1,"limit":200,"offset":0}"#.into(),
                )
            } else {
                (
                    200,
                    r#"{"jobs":[],"count":0,"limit":200,"offset":0}"#.into(),
                )
            }
        }
        ("DELETE", ["api", "sessions", id, "close"])
        | ("PATCH", ["api", "sessions", id])
        | ("DELETE", ["warden", "sessions", id]) => {
            if s.open_sessions.remove(*id) {
                (204, String::new())
            } else {
                (
                    404,
                    r#"{"errors":[{"message":"session not found"}]}"#.into(),
                )
            }
        }
        ("GET", ["warden", "accessible"]) => (
            200,
            format!(r#"{{"is_accessible":{},"message":"ok"}}"#, s.accessible),
        ),
        // The SDK's pasqal-local tasks: authorised as Pasqal's warden does, by a munge
        // credential, and only in a session the plugin opened and still holds.
        ("POST", ["warden", "jobs"]) => {
            let session = req.header("x-warden-session").unwrap_or("").to_string();
            let munged = req
                .header("x-munge-cred")
                .is_some_and(|c| c.starts_with("MUNGE:"));
            s.job_sessions.push(session.clone());
            if !munged {
                (401, r#"{"detail":"no munge credential"}"#.into())
            } else if !s.open_sessions.contains(&session) {
                (403, r#"{"detail":"session is not open"}"#.into())
            } else {
                let id = s.job_sessions.len();
                (
                    200,
                    format!(r#"{{"id":{id},"user_id":"0","status":"PENDING"}}"#),
                )
            }
        }
        ("GET", ["warden", "qpu", "specs"]) => {
            (200, r#"{"specs":"{\"name\":\"FRESNEL\"}"}"#.into())
        }
        ("GET", ["warden", "jobs", id]) => {
            let results =
                serde_json::Value::String(format!(r#"{{"counter":{{"01":10}},"job":{id}}}"#));
            (
                200,
                format!(r#"{{"id":{id},"user_id":"0","status":"DONE","results":{results}}}"#),
            )
        }
        ("GET", ["qs", "v1", "backends", _name]) => (
            200,
            format!(
                r#"{{"name":"x","status":"{}"}}"#,
                if s.accessible { "online" } else { "offline" }
            ),
        ),
        ("GET", ["core-fast", "api", "v1", "devices"]) => (
            200,
            format!(
                r#"{{"data":[{{"status":"UP","availability":"{}"}}]}}"#,
                if s.accessible { "ACTIVE" } else { "RETIRED" }
            ),
        ),
        ("GET", ["iqm", "api", "v1", "quantum-computers", _qc, "health"]) => {
            (200, format!(r#"{{"healthy":{}}}"#, s.accessible))
        }
        // What QRMI 0.26.4's iqm-server client asks in a job (observed against this stand-in):
        // the computer's details (read in the older `status.health` shape), the calibration
        // set for target(), job submit / wait / artifacts, all with the site's bearer token.
        ("GET", ["iqm", "api", "v1", ..]) | ("POST", ["iqm", "api", "v1", ..])
            if req.header("authorization") != Some(&format!("Bearer {IQM_TOKEN}")) =>
        {
            (401, r#"{"detail":"bad token"}"#.into())
        }
        ("GET", ["iqm", "api", "v1", "quantum-computers", _qc]) => (
            200,
            format!(
                r#"{{"status":{{"health":{{"healthy":{},"updated_at":"2026-12-02T06:00:00Z"}}}}}}"#,
                s.accessible
            ),
        ),
        ("GET", ["iqm", "api", "v1", "calibration-sets", _qc, _set])
        | ("GET", ["iqm", "api", "v1", "calibration-sets", _qc, _set, _]) => {
            (200, r#"{"calibration_set_id":"default"}"#.into())
        }
        ("POST", ["iqm", "api", "v1", "jobs", qc, kind]) => {
            s.iqm_jobs.push(qc.to_string());
            let id = iqm_job_id(s.iqm_jobs.len());
            (200, iqm_job(&id, "waiting", kind))
        }
        ("GET", ["iqm", "api", "v1", "jobs", id]) => (200, iqm_job(id, "completed", "circuit")),
        ("GET", ["iqm", "api", "v1", "jobs", id, "artifacts", kind]) => (
            200,
            format!(r#"{{"artifact":"{kind}","job":"{id}","counts":{{"0":16}}}}"#),
        ),
        _ => (404, r#"{"errors":[{"message":"no such route"}]}"#.into()),
    };
    drop(s);
    respond(conn, status, &body, keep);
    keep
}
