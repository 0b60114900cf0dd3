//! Every backend protocol against the loopback mock server: request shapes, responses, failure
//! modes, timeouts, idempotent release, and no secret in any error.
use std::path::Path;
use std::time::{Duration, Instant};

use qrmi_backend::backend::{AcquireContext, Backend, BackendError, Operation, backend_for};
use qrmi_backend::http::HttpConfig;
use qrmi_core::config::{Config, Resource};
use spank_test_support::mock_server::{IAM_TOKEN, MockServer, Mode};

const APIKEY: &str = "APIKEY-sk-0a1b2c3d4e5f";
const CRN: &str = "crn:v1:bluemix:public:quantum-computing:us-east:a/secretacct::";
const IQM_TOKEN: &str = "IQM-TOKEN-77aa88bb";
const MUNGE: &str = "MUNGE:AwQDAAC-credential-zz==:";
const TIMEOUT: Duration = Duration::from_millis(300);

fn http() -> HttpConfig {
    HttpConfig {
        connect_timeout: TIMEOUT,
        timeout: TIMEOUT,
        ..HttpConfig::default()
    }
}

fn ctx() -> AcquireContext {
    AcquireContext {
        job_id: 42,
        uid: 1000,
        time_limit_secs: Some(600),
    }
}

fn resource(json: &str) -> Resource {
    let config = Config::parse(
        Path::new("/test/qrmi_config.json"),
        &format!(r#"{{"resources": [{json}]}}"#),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    config.resources.into_iter().next().unwrap()
}

fn qcs(server: &MockServer, kind: &str, prefix: &str, extra: &str) -> Resource {
    let base = &server.base;
    resource(&format!(
        r#"{{"name": "ibm_torino", "type": "{kind}", "environment": {{
            "{prefix}ENDPOINT": "{base}/api", "{prefix}IAM_ENDPOINT": "{base}",
            "{prefix}IAM_APIKEY": "{APIKEY}", "{prefix}SERVICE_CRN": "{CRN}"{extra}}}}}"#
    ))
}

fn pasqal_local(server: &MockServer) -> Resource {
    resource(&format!(
        r#"{{"name": "FRESNEL", "type": "pasqal-local", "environment": {{"QRMI_WARDEN_URL": "{}/warden"}}}}"#,
        server.base
    ))
}

fn munge() -> Option<qrmi_backend::backend::MungeFn> {
    Some(Box::new(|| Ok(MUNGE.to_string())))
}

/// Every string that must never appear in an error.
fn secrets(server: &MockServer) -> Vec<String> {
    vec![
        APIKEY.into(),
        CRN.into(),
        IAM_TOKEN.into(),
        IQM_TOKEN.into(),
        MUNGE.into(),
        server.base.clone(),
        "sess-".into(),
        "w-1".into(),
    ]
}

fn assert_clean(server: &MockServer, e: &BackendError) {
    let shown = format!("{e} {e:?}");
    for s in secrets(server) {
        assert!(!shown.contains(&s), "secret {s:?} in error: {shown}");
    }
}

/// Issue 17: one operation's requests share one kept-alive connection and one IAM token; the
/// next operation (in slurmstepd or the keeper, another process) opens its own.
#[test]
fn ibm_qcs_one_connection_and_one_iam_token_per_operation() {
    let server = MockServer::start();
    let (r, acquire, token) = qcs_acquired(&server);
    drop(acquire);
    backend_for(&r, &http(), None)
        .unwrap()
        .release(&token)
        .unwrap();
    let reqs = server.requests();
    let summary: Vec<(u64, &str)> = reqs
        .iter()
        .map(|r| (r.connection, r.target.split('?').next().unwrap_or("")))
        .collect();
    let (a, b) = (reqs[0].connection, reqs[3].connection);
    assert_ne!(a, b);
    assert_eq!(
        summary,
        [
            (a, "/identity/token"),
            (a, "/api/backends/ibm_torino/status"),
            (a, "/api/sessions"),
            (b, "/identity/token"),
            (b, "/api/jobs"),
            (b, "/api/sessions/sess-1"),
        ]
    );
}

/// An IBM QCS resource on `server`, its backend, and a session it acquired after a status check.
fn qcs_acquired(server: &MockServer) -> (Resource, Box<dyn Backend>, String) {
    let r = qcs(server, "ibm-quantum-compute-service", "QRMI_IBM_QCS_", "");
    let b = backend_for(&r, &http(), None).unwrap();
    assert!(b.check_accessible().unwrap());
    let token = b.acquire(&ctx()).unwrap();
    (r, b, token)
}

#[test]
fn ibm_qcs_status_acquire_release() {
    let server = MockServer::start();
    let (_, b, token) = qcs_acquired(&server);
    assert_eq!(token, "sess-1");
    let reqs = server.requests();
    // The IAM token is exchanged once and reused.
    assert_eq!(
        reqs.iter()
            .filter(|r| r.target == "/identity/token")
            .count(),
        1
    );
    let iam = &reqs[0];
    assert_eq!(
        (iam.method.as_str(), iam.target.as_str()),
        ("POST", "/identity/token")
    );
    assert_eq!(
        iam.header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(
        iam.body,
        format!("grant_type=urn%3Aibm%3Aparams%3Aoauth%3Agrant-type%3Aapikey&apikey={APIKEY}")
    );
    let status = &reqs[1];
    assert_eq!(
        (status.method.as_str(), status.target.as_str()),
        ("GET", "/api/backends/ibm_torino/status")
    );
    let bearer = format!("Bearer {IAM_TOKEN}");
    assert_eq!(status.header("authorization"), Some(bearer.as_str()));
    assert_eq!(status.header("service-crn"), Some(CRN));
    assert_eq!(status.header("accept"), Some("application/json"));
    let create = &reqs[2];
    assert_eq!(
        (create.method.as_str(), create.target.as_str()),
        ("POST", "/api/sessions")
    );
    assert_eq!(create.header("authorization"), Some(bearer.as_str()));
    assert_eq!(create.header("service-crn"), Some(CRN));
    // TTL: min(config default 28800, job time limit 600).
    assert_eq!(
        create.json(),
        serde_json::json!({"max_ttl": 600, "mode": "dedicated", "backend": "ibm_torino", "backend_name": "ibm_torino"})
    );

    // No pending jobs: PATCH accepting_jobs=false.
    b.release(&token).unwrap();
    let reqs = server.requests();
    let n = reqs.len();
    assert_eq!(reqs[n - 2].method, "GET");
    assert_eq!(
        reqs[n - 2].target,
        "/api/jobs?pending=true&session_id=sess-1"
    );
    assert_eq!(reqs[n - 1].method, "PATCH");
    assert_eq!(reqs[n - 1].target, "/api/sessions/sess-1");
    assert_eq!(
        reqs[n - 1].json(),
        serde_json::json!({"accepting_jobs": false})
    );
    assert_eq!(reqs[n - 1].header("service-crn"), Some(CRN));
    // Idempotent: the session is gone (404), still success.
    b.release(&token).unwrap();
    assert_eq!(server.requests().len(), n + 2);
}

#[test]
fn ibm_release_with_pending_jobs_closes_and_honours_config() {
    let server = MockServer::start();
    let r = qcs(
        &server,
        "qiskit-runtime-service",
        "QRMI_IBM_QRS_",
        r#", "QRMI_IBM_QRS_SESSION_MODE": "batch", "QRMI_IBM_QRS_SESSION_MAX_TTL": "300""#,
    );
    let b = backend_for(&r, &http(), None).unwrap();
    let token = b
        .acquire(&AcquireContext {
            time_limit_secs: None,
            ..ctx()
        })
        .unwrap();
    let create = server
        .requests()
        .into_iter()
        .find(|r| r.target == "/api/sessions")
        .unwrap();
    assert_eq!(create.json()["mode"], "batch");
    assert_eq!(create.json()["max_ttl"], 300);
    server.state().pending_jobs = true;
    b.release(&token).unwrap();
    let last = server.requests().pop().unwrap();
    assert_eq!(
        (last.method.as_str(), last.target.as_str()),
        ("DELETE", "/api/sessions/sess-1/close")
    );
    b.release(&token).unwrap();
}

#[test]
fn ibm_status_offline_and_disabled_check() {
    let server = MockServer::start();
    server.state().backend_status = "Offline".into();
    let r = qcs(&server, "ibm-quantum-compute-service", "QRMI_IBM_QCS_", "");
    assert!(
        !backend_for(&r, &http(), None)
            .unwrap()
            .check_accessible()
            .unwrap()
    );
    server.state().backend_status = "Online".into();
    assert!(
        backend_for(&r, &http(), None)
            .unwrap()
            .check_accessible()
            .unwrap()
    );
    let before = server.requests().len();
    let mut r = r;
    r.status_check = false;
    assert!(
        backend_for(&r, &http(), None)
            .unwrap()
            .check_accessible()
            .unwrap()
    );
    assert_eq!(server.requests().len(), before);
}

#[test]
fn pasqal_local_cycle_with_munge() {
    let server = MockServer::start();
    let b = backend_for(&pasqal_local(&server), &http(), munge()).unwrap();
    assert!(b.check_accessible().unwrap());
    let token = b.acquire(&ctx()).unwrap();
    assert_eq!(token, "w-1");
    b.release(&token).unwrap();
    b.release(&token).unwrap(); // 404: already gone
    let reqs = server.requests();
    assert_eq!(reqs.len(), 4);
    assert_eq!(
        (reqs[0].method.as_str(), reqs[0].target.as_str()),
        ("GET", "/warden/accessible")
    );
    assert_eq!(reqs[0].header("x-munge-cred"), None);
    assert_eq!(
        (reqs[1].method.as_str(), reqs[1].target.as_str()),
        ("POST", "/warden/sessions")
    );
    assert_eq!(
        reqs[1].json(),
        serde_json::json!({"user_id": "1000", "slurm_job_id": "42"})
    );
    assert_eq!(reqs[1].header("x-munge-cred"), Some(MUNGE));
    assert_eq!(
        (reqs[2].method.as_str(), reqs[2].target.as_str()),
        ("DELETE", "/warden/sessions/w-1")
    );
    assert_eq!(reqs[2].header("x-munge-cred"), Some(MUNGE));
    server.state().accessible = false;
    assert!(!b.check_accessible().unwrap());
}

#[test]
fn pasqal_local_without_munge_and_with_a_failing_munge() {
    let server = MockServer::start();
    let b = backend_for(&pasqal_local(&server), &http(), None).unwrap();
    b.acquire(&ctx()).unwrap();
    assert_eq!(server.requests()[0].header("x-munge-cred"), None);
    let failing: qrmi_backend::backend::MungeFn = Box::new(|| Err("munged is not running".into()));
    let b = backend_for(&pasqal_local(&server), &http(), Some(failing)).unwrap();
    let e = b.acquire(&ctx()).unwrap_err();
    assert!(
        e.to_string()
            .contains("munge credential: munged is not running"),
        "{e}"
    );
    assert_eq!(server.requests().len(), 1);
}

/// Runs `op` against a server in `mode` and returns the error and how long it took.
fn fail_with(
    mode: Mode,
    op: &dyn Fn(&MockServer) -> Result<(), BackendError>,
) -> (BackendError, Duration) {
    let server = MockServer::start();
    server.set_mode(mode);
    let start = Instant::now();
    let e = op(&server).expect_err("must fail");
    let took = start.elapsed();
    assert_clean(&server, &e);
    (e, took)
}

fn ibm_acquire(server: &MockServer) -> Result<(), BackendError> {
    let r = qcs(server, "ibm-quantum-compute-service", "QRMI_IBM_QCS_", "");
    backend_for(&r, &http(), None)?.acquire(&ctx()).map(|_| ())
}

fn ibm_acquire_after_iam(server: &MockServer, mode: Mode) -> Result<(), BackendError> {
    server.set_mode(Mode::Normal);
    server.set_mode_for("POST", "/api/sessions", mode);
    ibm_acquire(server)
}

fn pasqal_acquire(server: &MockServer) -> Result<(), BackendError> {
    backend_for(&pasqal_local(server), &http(), munge())?
        .acquire(&ctx())
        .map(|_| ())
}

fn pasqal_release(server: &MockServer) -> Result<(), BackendError> {
    backend_for(&pasqal_local(server), &http(), munge())?.release("w-1")
}

fn ibm_release(server: &MockServer) -> Result<(), BackendError> {
    let r = qcs(server, "ibm-quantum-compute-service", "QRMI_IBM_QCS_", "");
    server.set_mode(Mode::Normal);
    server.state().open_sessions.insert("sess-9".into());
    server.set_mode_for("PATCH", "/api/sessions", Mode::Fail);
    backend_for(&r, &http(), None)?.release("sess-9")
}

#[test]
fn http_500_names_qpu_operation_and_url_without_secrets() {
    let (e, _) = fail_with(Mode::Fail, &|s| ibm_acquire_after_iam(s, Mode::Fail));
    assert_eq!(e.operation, Operation::Acquire);
    assert!(e.transient);
    let msg = e.to_string();
    assert!(
        msg.starts_with("QPU ibm_torino (ibm-quantum-compute-service): acquire failed: "),
        "{msg}"
    );
    assert!(
        msg.contains("POST {QRMI_IBM_QCS_ENDPOINT}/sessions: HTTP 500: "),
        "{msg}"
    );
    assert!(msg.contains("backend exploded"), "{msg}");

    // IAM failing is named as such.
    let (e, _) = fail_with(Mode::Fail, &ibm_acquire);
    assert!(
        e.to_string().contains(
            "IAM token exchange: POST {QRMI_IBM_QCS_IAM_ENDPOINT}/identity/token: HTTP 500"
        ),
        "{e}"
    );

    let (e, _) = fail_with(Mode::Fail, &pasqal_acquire);
    assert!(
        e.to_string().contains(
            "QPU FRESNEL (pasqal-local): acquire failed: POST {QRMI_WARDEN_URL}/sessions: HTTP 500"
        ),
        "{e}"
    );

    // The session id in a failing release URL is replaced too.
    let (e, _) = fail_with(Mode::Fail, &pasqal_release);
    assert!(
        e.to_string()
            .contains("DELETE {QRMI_WARDEN_URL}/sessions/<token>: HTTP 500"),
        "{e}"
    );
    let (e, _) = fail_with(Mode::Normal, &ibm_release);
    assert_eq!(e.operation, Operation::Release);
    assert!(
        e.to_string()
            .contains("PATCH {QRMI_IBM_QCS_ENDPOINT}/sessions/<token>: HTTP 500"),
        "{e}"
    );
}

#[test]
fn garbage_json_is_an_unexpected_response() {
    let (e, _) = fail_with(Mode::Garbage, &|s| ibm_acquire_after_iam(s, Mode::Garbage));
    assert!(
        e.to_string().contains("unexpected response: not JSON"),
        "{e}"
    );
    assert!(!e.transient);
    let (e, _) = fail_with(Mode::Garbage, &pasqal_acquire);
    assert!(e.to_string().contains("unexpected response"), "{e}");
}

#[test]
fn connection_closed_mid_response() {
    let (e, _) = fail_with(Mode::CloseMid, &pasqal_acquire);
    assert!(
        e.to_string().contains("connection broken while reading"),
        "{e}"
    );
    assert!(e.transient);
    let (e, _) = fail_with(Mode::CloseMid, &|s| {
        ibm_acquire_after_iam(s, Mode::CloseMid)
    });
    assert!(
        e.to_string()
            .contains("POST {QRMI_IBM_QCS_ENDPOINT}/sessions: connection broken"),
        "{e}"
    );
}

#[test]
fn huge_responses_are_refused() {
    let (e, _) = fail_with(Mode::Huge, &pasqal_acquire);
    assert!(
        e.to_string().contains("response larger than 1048576 bytes"),
        "{e}"
    );
}

#[test]
fn hanging_backends_time_out_quickly() {
    let margin = Duration::from_millis(700);
    for (name, op) in [
        (
            "pasqal acquire",
            &pasqal_acquire as &dyn Fn(&MockServer) -> Result<(), BackendError>,
        ),
        ("pasqal release", &pasqal_release),
        ("ibm iam", &ibm_acquire),
    ] {
        let (e, took) = fail_with(Mode::Hang, op);
        assert!(e.to_string().contains("timed out"), "{name}: {e}");
        assert!(e.transient, "{name}");
        assert!(took < TIMEOUT + margin, "{name}: took {took:?}");
        assert!(
            took >= TIMEOUT - Duration::from_millis(50),
            "{name}: took {took:?}"
        );
    }
    // Hang after a good IAM exchange: the session call itself times out.
    let (e, took) = fail_with(Mode::Normal, &|s| ibm_acquire_after_iam(s, Mode::Hang));
    assert!(
        e.to_string()
            .contains("POST {QRMI_IBM_QCS_ENDPOINT}/sessions: timed out"),
        "{e}"
    );
    assert!(took < 2 * TIMEOUT + margin, "took {took:?}");
}

#[test]
fn refused_connection() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let r = resource(&format!(
        r#"{{"name": "FRESNEL", "type": "pasqal-local", "environment": {{"QRMI_WARDEN_URL": "http://127.0.0.1:{port}"}}}}"#
    ));
    let e = backend_for(&r, &http(), None)
        .unwrap()
        .check_accessible()
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("status check failed: GET {QRMI_WARDEN_URL}/accessible: connection refused"),
        "{e}"
    );
    assert!(e.transient);
}

#[test]
fn token_only_types() {
    let server = MockServer::start();
    let base = &server.base;
    let felis = resource(
        r#"{"name": "ab_emu", "type": "alice-bob-felis", "environment": {"QRMI_AB_FELIS_API_KEY": "k", "QRMI_AB_FELIS_BASE_ENDPOINT": "http://127.0.0.1:9"}}"#,
    );
    let qs = resource(&format!(
        r#"{{"name": "ibm_kingston", "type": "ibm-quantum-system", "status_check": true, "environment": {{
            "QRMI_IBM_QS_ENDPOINT": "{base}/qs", "QRMI_IBM_QS_IAM_ENDPOINT": "{base}",
            "QRMI_IBM_QS_IAM_APIKEY": "{APIKEY}", "QRMI_IBM_QS_SERVICE_CRN": "{CRN}"}}}}"#
    ));
    let cloud = resource(&format!(
        r#"{{"name": "EMU_FREE", "type": "pasqal-cloud", "status_check": true, "status_endpoint": "{base}", "environment": {{}}}}"#
    ));
    let iqm = resource(&format!(
        r#"{{"name": "garnet_mock", "type": "iqm-server", "status_check": true, "environment": {{
            "QRMI_IQM_ISA_ENDPOINT": "{base}/iqm", "QRMI_IQM_ISA_TOKEN": "{IQM_TOKEN}"}}}}"#
    ));
    for r in [&felis, &qs, &cloud, &iqm] {
        let b = backend_for(r, &http(), None).unwrap();
        assert!(b.check_accessible().unwrap(), "{}", r.name);
        let t1 = b.acquire(&ctx()).unwrap();
        let t2 = b.acquire(&ctx()).unwrap();
        assert_ne!(t1, t2);
        assert_eq!(t1.len(), 36, "{t1}");
        b.release(&t1).unwrap();
    }
    let reqs = server.requests();
    let targets: Vec<(&str, &str)> = reqs
        .iter()
        .map(|r| (r.method.as_str(), r.target.as_str()))
        .collect();
    assert_eq!(
        targets,
        [
            ("POST", "/identity/token"),
            ("GET", "/qs/v1/backends/ibm_kingston"),
            ("GET", "/core-fast/api/v1/devices?device_type=EMU_FREE"),
            ("GET", "/iqm/api/v1/quantum-computers/garnet%3Amock/health"),
        ]
    );
    let bearer = format!("Bearer {IAM_TOKEN}");
    assert_eq!(reqs[1].header("authorization"), Some(bearer.as_str()));
    assert_eq!(reqs[1].header("service-crn"), Some(CRN));
    assert_eq!(reqs[2].header("authorization"), None);
    let iqm_bearer = format!("Bearer {IQM_TOKEN}");
    assert_eq!(reqs[3].header("authorization"), Some(iqm_bearer.as_str()));

    server.state().accessible = false;
    for r in [&qs, &cloud, &iqm] {
        assert!(
            !backend_for(r, &http(), None)
                .unwrap()
                .check_accessible()
                .unwrap(),
            "{}",
            r.name
        );
    }
    // Status checks are off by default for these types: no request at all.
    let mut quiet = iqm.clone();
    quiet.status_check = false;
    let before = server.requests().len();
    assert!(
        backend_for(&quiet, &http(), None)
            .unwrap()
            .check_accessible()
            .unwrap()
    );
    assert_eq!(server.requests().len(), before);
    let defaulted = resource(&format!(
        r#"{{"name": "garnet_mock", "type": "iqm-server", "environment": {{
            "QRMI_IQM_ISA_ENDPOINT": "{base}/iqm", "QRMI_IQM_ISA_TOKEN": "{IQM_TOKEN}"}}}}"#
    ));
    // Issue 15 item 8: upstream checks every type's status, so the default is on.
    assert!(defaulted.status_check);
}

// Issue 15 item 8: QRMI_PASQAL_CLOUD_BASE_URL is where the device status is asked.
#[test]
fn pasqal_cloud_status_uses_its_base_url() {
    let server = MockServer::start();
    let base = &server.base;
    let r = resource(&format!(
        r#"{{"name": "FRESNEL", "type": "pasqal-cloud", "environment": {{
            "QRMI_PASQAL_CLOUD_PROJECT_ID": "p", "QRMI_PASQAL_CLOUD_BASE_URL": "{base}/pasqal"}}}}"#
    ));
    assert!(r.status_check);
    let _ = backend_for(&r, &http(), None).unwrap().check_accessible();
    assert!(
        server.requests().iter().any(|q| q
            .target
            .starts_with("/pasqal/core-fast/api/v1/devices?device_type=FRESNEL")),
        "{:?}",
        server.requests()
    );
}

#[test]
fn token_only_failures_are_clean() {
    let (e, _) = fail_with(Mode::Fail, &|s| {
        let r = resource(&format!(
            r#"{{"name": "garnet_mock", "type": "iqm-server", "status_check": true, "environment": {{
                "QRMI_IQM_ISA_ENDPOINT": "{}/iqm", "QRMI_IQM_ISA_TOKEN": "{IQM_TOKEN}"}}}}"#,
            s.base
        ));
        backend_for(&r, &http(), None)?
            .check_accessible()
            .map(|_| ())
    });
    assert!(
        e.to_string().contains(
            "GET {QRMI_IQM_ISA_ENDPOINT}/api/v1/quantum-computers/garnet%3Amock/health: HTTP 500"
        ),
        "{e}"
    );
}
