//! Unit tests of `config.rs`.
use super::*;
use std::os::unix::fs::PermissionsExt;

const SECRET: &str = "sk-VERY-SECRET-0123456789";

fn qcs(name: &str) -> String {
    format!(
        r#"{{"name": "{name}", "type": "ibm-quantum-compute-service",
           "environment": {{"QRMI_IBM_QCS_ENDPOINT": "https://q.example/api",
                            "QRMI_IBM_QCS_IAM_ENDPOINT": "https://iam.example",
                            "QRMI_IBM_QCS_IAM_APIKEY": "{SECRET}",
                            "QRMI_IBM_QCS_SERVICE_CRN": "crn:v1:x"}}}}"#
    )
}

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(Path::new("/etc/slurm/qrmi_config.json"), text)
}

/// What the admin is told about `text`: the error refusing the file, or else every
/// warning and unusable resource (a problem in one resource no longer refuses the file).
fn err(text: &str) -> String {
    let s = match parse(text) {
        Err(e) => e.to_string(),
        Ok(config) => config.admin_messages().join("\n"),
    };
    assert!(!s.is_empty(), "no diagnostic for {text}");
    assert!(s.contains("/etc/slurm/qrmi_config.json"), "{s}");
    assert!(!s.contains(SECRET), "{s}");
    s
}

#[test]
fn accepts_the_upstream_example_with_all_seven_types() {
    let text = format!(
        r#"{{"resources": [
          {},
          {{"name": "ibm_fez", "type": "qiskit-runtime-service", "environment": {{
             "QRMI_IBM_QRS_ENDPOINT": "https://q/api/v1", "QRMI_IBM_QRS_IAM_ENDPOINT": "https://iam",
             "QRMI_IBM_QRS_IAM_APIKEY": "k", "QRMI_IBM_QRS_SERVICE_CRN": "crn:v1:y",
             "QRMI_IBM_QRS_SESSION_MODE": "Batch", "QRMI_IBM_QRS_SESSION_MAX_TTL": "600"}}}},
          {{"name": "qs", "type": "ibm-quantum-system", "environment": {{
             "QRMI_IBM_QS_ENDPOINT": "https://da", "QRMI_IBM_QS_IAM_ENDPOINT": "https://iam",
             "QRMI_IBM_QS_IAM_APIKEY": "k", "QRMI_IBM_QS_SERVICE_CRN": "crn:v1:z"}}}},
          {{"name": "FRESNEL", "type": "pasqal-local", "environment": {{"QRMI_WARDEN_URL": "http://localhost:8006"}}}},
          {{"name": "EMU_FREE", "type": "pasqal-cloud", "environment": {{"QRMI_PASQAL_CLOUD_PROJECT_ID": "p"}}}},
          {{"name": "garnet_mock", "type": "iqm-server", "is_dynamic": false, "environment": {{
             "QRMI_IQM_ISA_ENDPOINT": "https://iqm", "QRMI_IQM_ISA_TOKEN": "t"}}}},
          {{"name": "ab_emu", "type": "alice-bob-felis", "environment": {{
             "QRMI_AB_FELIS_API_KEY": "a", "QRMI_AB_FELIS_BASE_ENDPOINT": "https://ab"}}}}
        ]}}"#,
        qcs("ibm_torino")
    );
    let config = parse(&text).unwrap();
    assert_eq!(
        config.names(),
        [
            "ibm_torino",
            "ibm_fez",
            "qs",
            "FRESNEL",
            "EMU_FREE",
            "garnet_mock",
            "ab_emu"
        ]
    );
    let kinds: Vec<_> = config.resources.iter().map(|r| r.kind).collect();
    for t in ResourceType::ALL
        .into_iter()
        .filter(|t| *t != ResourceType::Oqtopus)
    {
        assert!(kinds.contains(&t), "{t}");
    }
    assert!(config.warnings.is_empty(), "{:?}", config.warnings);
    let fez = config.get("ibm_fez").unwrap();
    assert_eq!(fez.session_mode(), SessionMode::Batch);
    assert_eq!(fez.session_max_ttl(), 600);
    let torino = config.get("ibm_torino").unwrap();
    assert_eq!(torino.session_mode(), SessionMode::Dedicated);
    assert_eq!(torino.session_max_ttl(), 28800);
    assert!(torino.status_check);
    // Issue 15 item 8: on by default for the token-only types too, as upstream checks.
    assert!(config.get("garnet_mock").unwrap().status_check);
    assert!(config.get("qs").unwrap().status_check);
    assert!(config.get("EMU_FREE").unwrap().status_check);
    assert!(!config.get("ab_emu").unwrap().status_check);
    assert_eq!(
        config.get("FRESNEL").unwrap().warden_url(),
        Some("http://localhost:8006")
    );
}

#[test]
fn empty_environment_is_allowed_where_nothing_is_required() {
    let config =
        parse(r#"{"resources": [{"name": "ab", "type": "alice-bob-felis", "environment": {}}]}"#)
            .unwrap();
    assert_eq!(config.warnings.len(), 2, "{:?}", config.warnings);
    assert!(config.warnings[0].contains("QRMI_AB_FELIS_API_KEY"));
}

#[test]
fn bad_json_names_line_and_column() {
    let s = err("{\"resources\": [\n  {\"name\": \"a\",\n   \"type\" \"x\"}\n]}");
    assert!(s.contains("invalid JSON at line 3 column 11"), "{s}");
    let s = err("");
    assert!(s.contains("line 1 column 0"), "{s}");
}

#[test]
fn structure_errors() {
    for (text, needle) in [
        ("[]", "expected an object"),
        ("{}", "missing \"resources\""),
        (r#"{"resources": {}}"#, "\"resources\" must be an array"),
        (r#"{"resources": [5]}"#, "resources[0]: expected an object"),
        (
            r#"{"resources": [{"type": "pasqal-cloud", "environment": {}}]}"#,
            "resources[0]: missing \"name\"",
        ),
        (
            r#"{"resources": [{"name": "a", "environment": {}}]}"#,
            "resources[0] \"a\": missing \"type\" (one of: ibm-quantum-system",
        ),
        (
            r#"{"resources": [{"name": "a", "type": "pasqal-cloud"}]}"#,
            "missing \"environment\"",
        ),
        (
            r#"{"resources": [{"name": 7, "type": "pasqal-cloud", "environment": {}}]}"#,
            "\"name\" must be a string, found a number",
        ),
        (
            r#"{"resources": [{"name": "a", "type": ["x"], "environment": {}}]}"#,
            "\"type\" must be a string, found an array",
        ),
        (
            r#"{"resources": [{"name": "a", "type": "pasqal-cloud", "environment": []}]}"#,
            "\"environment\" must be an object of strings, found an array",
        ),
        (
            r#"{"resources": [{"name": "a", "type": "pasqal-cloud", "environment": {"K": 5}}]}"#,
            "environment \"K\" must be a string, found a number",
        ),
        (
            r#"{"resources": [{"name": "a", "type": "pasqal-cloud", "environment": {}, "is_dynamic": "yes"}]}"#,
            "\"is_dynamic\" must be true or false, found a string",
        ),
        (
            r#"{"resources": [{"name": "a", "type": "pasqal-cloud", "environment": {}, "status_check": 1}]}"#,
            "\"status_check\" must be true or false",
        ),
        (
            r#"{"resources": [{"name": "a", "type": "pasqal-cloud", "environment": {}, "status_endpoint": "ftp://x"}]}"#,
            "\"status_endpoint\" \"ftp://x\" is not an http:// or https:// URL",
        ),
        (
            r#"{"resources": [{"name": "a", "type": "direct-access", "environment": {}}]}"#,
            "type \"direct-access\" is not one this plugin knows (ibm-quantum-system, ibm-quantum-compute-service, qiskit-runtime-service, pasqal-cloud, pasqal-local, iqm-server, alice-bob-felis, oqtopus): passed to the job as QRMI does",
        ),
    ] {
        let s = err(text);
        assert!(s.contains(needle), "{text}\n=> {s}");
    }
}

#[test]
fn names_must_be_usable_as_prefixes_and_a_duplicate_replaces() {
    // Upstream keeps the last entry of a name: so do we, with a warning.
    let text = format!(
        r#"{{"resources": [{}, {}]}}"#,
        qcs("ibm_torino"),
        qcs("ibm_torino").replace("crn:v1:x", "crn:v1:second")
    );
    let s = err(&text);
    assert!(
        s.contains(
            "resources[1]: duplicate name \"ibm_torino\": this entry replaces the earlier one"
        ),
        "{s}"
    );
    let config = parse(&text).unwrap();
    assert_eq!(config.names(), ["ibm_torino"]);
    assert_eq!(
        config
            .get("ibm_torino")
            .unwrap()
            .get("QRMI_IBM_QCS_SERVICE_CRN"),
        Some("crn:v1:second")
    );
    for bad in ["", "a b", "../x", "a/b", "a,b", "a=b", "a:b", ".x", "-x"] {
        let s = err(&format!(
            r#"{{"resources": [{{"name": "{bad}", "type": "alice-bob-felis", "environment": {{}}}}]}}"#
        ));
        assert!(s.contains("not usable as a QPU name"), "{bad}: {s}");
    }
    // Upstream takes any name: those that are safe as a prefix, a file name and a list
    // item are QPUs here too (issue 15 rule; they were refused, failing their jobs).
    for good in ["ibm-torino", "1abc", "garnet.mock", "FRESNEL_1"] {
        let config = parse(&format!(
            r#"{{"resources": [{{"name": "{good}", "type": "alice-bob-felis", "environment": {{}}}}]}}"#
        ))
        .unwrap();
        assert_eq!(config.names(), [good]);
    }
    let long = "a".repeat(MAX_NAME_LEN + 1);
    let s = err(&format!(
        r#"{{"resources": [{{"name": "{long}", "type": "alice-bob-felis", "environment": {{}}}}]}}"#
    ));
    assert!(s.contains("at most 128"), "{s}");
}

#[test]
fn required_keys_per_type() {
    for (kind, needle) in [
        (
            "ibm-quantum-compute-service",
            "needs environment keys QRMI_IBM_QCS_ENDPOINT, QRMI_IBM_QCS_IAM_ENDPOINT, QRMI_IBM_QCS_IAM_APIKEY, QRMI_IBM_QCS_SERVICE_CRN",
        ),
        (
            "qiskit-runtime-service",
            "QRMI_IBM_QRS_ENDPOINT, QRMI_IBM_QRS_IAM_ENDPOINT, QRMI_IBM_QRS_IAM_APIKEY, QRMI_IBM_QRS_SERVICE_CRN",
        ),
        (
            "ibm-quantum-system",
            "QRMI_IBM_QS_ENDPOINT, QRMI_IBM_QS_IAM_ENDPOINT, QRMI_IBM_QS_IAM_APIKEY, QRMI_IBM_QS_SERVICE_CRN",
        ),
        ("iqm-server", "QRMI_IQM_ISA_ENDPOINT, QRMI_IQM_ISA_TOKEN"),
        (
            "pasqal-local",
            "QRMI_WARDEN_URL (or the deprecated QRMI_URL)",
        ),
    ] {
        let s = err(&format!(
            r#"{{"resources": [{{"name": "q", "type": "{kind}", "environment": {{}}}}]}}"#
        ));
        assert!(s.contains(needle), "{kind}: {s}");
    }
    // Only the missing one is named; an empty value counts as missing. Missing keys do not
    // make the resource unusable: the job may bring them (upstream's README allows it).
    let text = r#"{"resources": [{"name": "q", "type": "iqm-server", "environment": {"QRMI_IQM_ISA_ENDPOINT": "https://x", "QRMI_IQM_ISA_TOKEN": ""}}]}"#;
    let s = err(text);
    assert!(
        s.contains("needs environment keys QRMI_IQM_ISA_TOKEN that the config does not set: a job using it must set them as q_<KEY>"),
        "{s}"
    );
    assert_eq!(parse(text).unwrap().names(), ["q"]);
    // The deprecated pasqal-local key works, with a warning.
    let config = parse(
        r#"{"resources": [{"name": "F", "type": "pasqal-local", "environment": {"QRMI_URL": "http://w:1"}}]}"#,
    )
    .unwrap();
    assert_eq!(config.get("F").unwrap().warden_url(), Some("http://w:1"));
    assert!(
        config.warnings[0].contains("deprecated"),
        "{:?}",
        config.warnings
    );
}

#[test]
fn invalid_values() {
    let with = |key: &str, value: &str| {
        let text = qcs("q").replace(
            "\"QRMI_IBM_QCS_SERVICE_CRN\"",
            &format!("\"{key}\": \"{value}\", \"QRMI_IBM_QCS_SERVICE_CRN\""),
        );
        err(&format!(r#"{{"resources": [{text}]}}"#))
    };
    let s = with("QRMI_IBM_QCS_SESSION_MODE", "shared");
    assert!(
        s.contains("QRMI_IBM_QCS_SESSION_MODE is \"shared\": expected dedicated or batch"),
        "{s}"
    );
    for ttl in ["0", "-5", "abc", "1.5", "99999999999"] {
        let s = with("QRMI_IBM_QCS_SESSION_MAX_TTL", ttl);
        assert!(
            s.contains("expected a positive integer number of seconds"),
            "{ttl}: {s}"
        );
    }
    let text = qcs("q").replace(
        "\"QRMI_IBM_QCS_SERVICE_CRN\"",
        "\"QRMI_IBM_QCS_SESSION_MAX_TTL\": \"3600\", \"QRMI_IBM_QCS_SERVICE_CRN\"",
    );
    assert!(
        parse(&format!(r#"{{"resources": [{text}]}}"#))
            .unwrap()
            .unusable
            .is_empty()
    );
    let text = qcs("q").replace("https://q.example/api", "q.example/api");
    let s = err(&format!(r#"{{"resources": [{text}]}}"#));
    assert!(
        s.contains("QRMI_IBM_QCS_ENDPOINT must be an http:// or https:// URL"),
        "{s}"
    );
    let s = err(
        r#"{"resources": [{"name": "F", "type": "pasqal-local", "environment": {"QRMI_WARDEN_URL": "localhost:8006"}}]}"#,
    );
    assert!(s.contains("QRMI_WARDEN_URL must be an http"), "{s}");
    let s = err(
        r#"{"resources": [{"name": "F", "type": "pasqal-cloud", "environment": {"QRMI_JOB_ACQUISITION_TOKEN": "x"}}]}"#,
    );
    assert!(s.contains("set by the plugin for each job"), "{s}");
    let s = err(
        r#"{"resources": [{"name": "F", "type": "pasqal-cloud", "environment": {"BAD-KEY": "x"}}]}"#,
    );
    assert!(
        s.contains("\"BAD-KEY\" is not a valid environment variable name"),
        "{s}"
    );
}

#[test]
fn reports_every_problem_at_once() {
    let s = err(
        r#"{"resources": [{"name": "a", "type": "nope", "environment": {}}, {"name": "b-c", "type": "pasqal-cloud", "environment": {}}]}"#,
    );
    assert!(
        s.contains("type \"nope\" is not one this plugin knows") && s.contains("\"b-c\""),
        "{s}"
    );
}

// Issue 15 item 2: QRMI 0.26's oqtopus, and a type we do not know, no longer refuse the
// file: a job asking only for ibm_torino must run.
#[test]
fn oqtopus_and_unknown_types_pass_through() {
    let text = format!(
        r#"{{"resources": [{},
          {{"name": "oq", "type": "oqtopus", "environment": {{
             "QRMI_OQTOPUS_URL": "https://oqtopus.example", "QRMI_OQTOPUS_API_TOKEN": "t",
             "QRMI_OQTOPUS_TIMEOUT": "30", "QRMI_OQTOPUS_RETRY_MAX": "3"}}}},
          {{"name": "future", "type": "quantum-2030", "environment": {{"QRMI_X": "y"}}}}]}}"#,
        qcs("ibm_torino")
    );
    let config = parse(&text).unwrap();
    assert_eq!(config.names(), ["ibm_torino", "oq", "future"]);
    assert!(config.unusable.is_empty(), "{:?}", config.unusable);
    let oq = config.get("oq").unwrap();
    assert_eq!(oq.kind, ResourceType::Oqtopus);
    assert_eq!(oq.type_name, "oqtopus");
    let future = config.get("future").unwrap();
    assert_eq!(future.kind, ResourceType::Other);
    assert_eq!(future.type_name, "quantum-2030");
    assert!(!future.status_check);
    assert_eq!(config.warnings.len(), 1, "{:?}", config.warnings);
    assert!(config.warnings[0].contains("\"quantum-2030\""));
    let s = err(r#"{"resources": [{"name": "oq", "type": "oqtopus", "environment": {}}]}"#);
    assert!(
        s.contains("QRMI_OQTOPUS_URL, QRMI_OQTOPUS_API_TOKEN"),
        "{s}"
    );
}

// Issue 15 item 4: upstream's own example (qrmi_config.json.example) has "http://" and
// placeholders in its endpoints; a bad resource is unusable, the others work.
#[test]
fn upstream_example_config_is_accepted() {
    let qs = |name: &str| {
        format!(
            r#"{{"name": "{name}", "type": "ibm-quantum-system", "environment": {{
              "QRMI_IBM_QS_ENDPOINT": "http://", "QRMI_IBM_QS_IAM_ENDPOINT": "https://",
              "QRMI_IBM_QS_IAM_APIKEY": "<YOUR IAM APIKEY FOR THIS BACKEND>",
              "QRMI_IBM_QS_SERVICE_CRN": "<YOUR DIRECT ACCESS INSTANCE CRN>",
              "QRMI_IBM_QS_AWS_ACCESS_KEY_ID": "<YOUR AWS ACCESS KEY TO ACCESS S3 BUCKET>",
              "QRMI_IBM_QS_AWS_SECRET_ACCESS_KEY": "<YOUR AWS SECRET ACCESS KEY TO ACCESS S3 BUCKET>",
              "QRMI_IBM_QS_S3_ENDPOINT": "<YOUR S3 ENDPOINT>",
              "QRMI_IBM_QS_S3_BUCKET": "<YOUR S3 BUCKET NAME>",
              "QRMI_IBM_QS_S3_REGION": "<YOUR S3 BUCKET REGION>"}}}}"#
        )
    };
    let text = format!(
        r#"{{"resources": [{}, {},
          {{"name": "alt_marrakesh", "type": "ibm-quantum-compute-service", "environment": {{
             "QRMI_IBM_QCS_ENDPOINT": "https://quantum.cloud.ibm.com/api/v1",
             "QRMI_IBM_QCS_IAM_ENDPOINT": "https://iam.cloud.ibm.com",
             "QRMI_IBM_QCS_IAM_APIKEY": "<YOUR IAM APIKEY FOR THIS BACKEND>",
             "QRMI_IBM_QCS_SERVICE_CRN": "<YOUR IQP INSTANCE CRN>"}}}},
          {{"name": "FRESNEL", "type": "pasqal-cloud", "environment": {{
             "QRMI_PASQAL_CLOUD_PROJECT_ID": "", "QRMI_PASQAL_CLOUD_AUTH_TOKEN": ""}}}}]}}"#,
        qs("test_heron"),
        qs("test_eagle")
    );
    let config = parse(&text).unwrap();
    assert_eq!(config.names(), ["alt_marrakesh", "FRESNEL"]);
    let why = config.unusable_reason("test_heron").unwrap();
    assert!(
        why.contains("QRMI_IBM_QS_ENDPOINT must be an http"),
        "{why}"
    );
    assert!(!why.contains("S3_ENDPOINT"), "{why}");
    assert!(
        config
            .warnings
            .iter()
            .any(|w| w.contains("QRMI_IBM_QS_S3_ENDPOINT must be"))
    );
}

#[test]
fn unknown_fields_are_warnings() {
    let config = parse(
        r#"{"version": 2, "resources": [{"name": "a", "type": "alice-bob-felis", "environment": {"QRMI_AB_FELIS_API_KEY": "x", "QRMI_AB_FELIS_BASE_ENDPOINT": "https://ab"}, "colour": "red", "status_check": true}]}"#,
    )
    .unwrap();
    let w = config.warnings.join("\n");
    assert!(w.contains("unknown top-level field \"version\""), "{w}");
    assert!(
        w.contains("resources[0] \"a\": unknown field \"colour\""),
        "{w}"
    );
    assert!(w.contains("no status check"), "{w}");
}

#[test]
fn debug_redacts_environment_values() {
    let config = parse(&format!(r#"{{"resources": [{}]}}"#, qcs("q"))).unwrap();
    let debug = format!("{config:?}");
    assert!(!debug.contains(SECRET), "{debug}");
    assert!(!debug.contains("https://iam.example"), "{debug}");
    assert!(debug.contains("QRMI_IBM_QCS_IAM_APIKEY"), "{debug}");
    assert!(debug.contains("<redacted>"), "{debug}");
}

#[test]
fn values_never_appear_in_errors() {
    // A secret-looking value in a wrongly typed key and a bad URL must not be echoed.
    let text = qcs("q").replace("https://iam.example", SECRET);
    let s = err(&format!(r#"{{"resources": [{text}]}}"#));
    assert!(s.contains("QRMI_IBM_QCS_IAM_ENDPOINT must be"), "{s}");
}

fn temp_file(contents: &str, mode: u32) -> PathBuf {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "spank-qrmi-config-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("qrmi_config.json");
    std::fs::write(&path, contents).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    path
}

#[test]
fn load_warns_of_readable_secrets_and_refuses_world_writable() {
    let text = format!(r#"{{"resources": [{}]}}"#, qcs("q"));
    // Issue 15 item 4: upstream uses a 0644 config holding secrets; we say so, once.
    let path = temp_file(&text, 0o644);
    let s = Config::load(&path).unwrap().admin_messages().join("\n");
    assert!(s.contains(&path.display().to_string()), "{s}");
    assert!(s.contains(&format!("chmod 600 {}", path.display())), "{s}");
    assert!(s.contains("readable by every user (mode 0644)"), "{s}");
    assert!(!s.contains(SECRET), "{s}");
    let path = temp_file(&text, 0o640);
    assert!(Config::load(&path).unwrap().warnings[0].contains("its group"));
    let path = temp_file(&text, 0o600);
    assert_eq!(Config::load(&path).unwrap().names(), ["q"]);
    // Without secrets a readable file is fine (login nodes), a world-writable one is not.
    let plain = r#"{"resources": [{"name": "F", "type": "pasqal-local", "environment": {"QRMI_WARDEN_URL": "http://w:1"}}]}"#;
    assert!(Config::load(&temp_file(plain, 0o644)).is_ok());
    let s = Config::load(&temp_file(plain, 0o646))
        .unwrap_err()
        .to_string();
    assert!(s.contains("writable by every user"), "{s}");
}

#[test]
fn root_warns_of_secrets_owned_by_someone_else() {
    let config = parse(&format!(r#"{{"resources": [{}]}}"#, qcs("q"))).unwrap();
    let path = Path::new("/etc/slurm/qrmi_config.json");
    let s = check_permissions(path, 0o100600, 1000, 0, &config)
        .unwrap()
        .join("\n");
    assert!(s.contains("owned by uid 1000, not root"), "{s}");
    assert!(s.contains("chmod 600 /etc/slurm/qrmi_config.json"), "{s}");
    assert!(
        check_permissions(path, 0o100600, 0, 0, &config)
            .unwrap()
            .is_empty()
    );
    // A user reading their own test config is not warned about the owner.
    assert!(
        check_permissions(path, 0o100600, 1000, 1000, &config)
            .unwrap()
            .is_empty()
    );
    // Writable by everyone: anyone could redirect the site's secrets. Refused.
    assert!(check_permissions(path, 0o100646, 0, 0, &config).is_err());
}

#[test]
fn load_reports_missing_and_syntax_errors_with_the_path() {
    let e = Config::load(Path::new("/nonexistent/qrmi.json")).unwrap_err();
    assert!(matches!(e.kind, ConfigErrorKind::Unreadable { .. }));
    assert!(
        e.to_string()
            .contains("/nonexistent/qrmi.json: cannot read"),
        "{e}"
    );
    let path = temp_file("{\"resources\": [,]}", 0o600);
    let e = Config::load(&path).unwrap_err();
    assert_eq!(e.kind, ConfigErrorKind::Syntax);
    assert!(e.to_string().contains("line 1 column 16"), "{e}");
}

#[test]
fn url_check() {
    assert!(is_http_url("http://localhost:8006"));
    assert!(is_http_url("https://q.example/api/v1"));
    assert!(!is_http_url("https://"));
    assert!(!is_http_url("https:///path"));
    assert!(!is_http_url("ftp://x"));
    assert!(!is_http_url("http://a b"));
}
