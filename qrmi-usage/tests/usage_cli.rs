//! The qrmi-usage command end to end on a written accounting log.
use std::process::Command;

use qrmi_core::accounting::{Event, Outcome, Record, append};

fn record(event: Event, job: u32, uid: u32, qpu: &str, acq: u64, rel: Option<u64>) -> Record {
    Record {
        event,
        job,
        uid,
        node: "q1".into(),
        qpu: qpu.into(),
        kind: "pasqal-local".into(),
        time_acquired: acq,
        time_released: rel,
        outcome: Outcome::Ok,
        error: None,
    }
}

#[test]
fn reports_table_and_json_for_a_range() {
    let dir = std::env::temp_dir().join(format!("qrmi-usage-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join("accounting.jsonl");
    // 2026-01-01T00:00:00Z = 1767225600
    let t0 = 1_767_225_600;
    for r in [
        record(Event::Acquire, 1, 0, "FRESNEL", t0 + 60, None),
        record(Event::Release, 1, 0, "FRESNEL", t0 + 60, Some(t0 + 3660)),
        record(Event::Acquire, 2, 65534, "ibm_torino", t0 + 100, None),
    ] {
        append(&log, &r).unwrap();
    }
    std::fs::write(dir.join("junk"), "").unwrap();
    let bin = env!("CARGO_BIN_EXE_qrmi-usage");
    let out = Command::new(bin)
        .args([
            "--state-dir",
            dir.to_str().unwrap(),
            "--from",
            "2026-01-01",
            "--to",
            "2026-01-01T02:00",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("2026-01-01T00:00:00Z to 2026-01-01T02:00:00Z"),
        "{stdout}"
    );
    // uid 0 is root everywhere; FRESNEL held 1 hour.
    assert!(stdout.contains("root (0)"), "{stdout}");
    let fresnel = stdout.lines().find(|l| l.starts_with("FRESNEL")).unwrap();
    assert!(fresnel.contains("1:00:00"), "{fresnel}");
    let torino = stdout
        .lines()
        .find(|l| l.starts_with("ibm_torino"))
        .unwrap();
    assert!(torino.contains("1:58:20"), "{torino}"); // still open: until --to

    let out = Command::new(bin)
        .args(["--json", "--from", "1767225600", "--to", "1767232800"])
        .arg(&log)
        .output()
        .unwrap();
    assert!(out.status.success());
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["per_qpu"]["FRESNEL"]["held_seconds"], 3600);
    assert_eq!(json["per_qpu"]["ibm_torino"]["open"], 1);
    assert_eq!(json["per_user"]["65534"]["count"], 1);

    let out = Command::new(bin)
        .args(["--from", "tomorrow"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("expected Unix seconds"));
    let out = Command::new(bin)
        .args(["--state-dir", "/nonexistent-qrmi"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent-qrmi/accounting.jsonl"));
    std::fs::remove_dir_all(dir).unwrap();
}

// The plugin's default state directory is <base>/<ClusterName>/<host> (issue 15 item 9):
// --state-dir <base> reads every host's log under it.
#[test]
fn reads_the_per_cluster_per_host_logs_under_the_state_dir() {
    let base = std::env::temp_dir().join(format!("qrmi-usage-keyed-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    let t0 = 1_767_225_600;
    for (host, job) in [("q1", 1), ("q2", 2)] {
        let dir = base.join("pi").join(host);
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join("accounting.jsonl");
        append(&log, &record(Event::Acquire, job, 0, host, t0, None)).unwrap();
        append(
            &log,
            &record(Event::Release, job, 0, host, t0, Some(t0 + 60)),
        )
        .unwrap();
    }
    let out = Command::new(env!("CARGO_BIN_EXE_qrmi-usage"))
        .args([
            "--state-dir",
            base.to_str().unwrap(),
            "--from",
            "2026-01-01",
        ])
        .args(["--to", "2026-01-02"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.lines().any(|l| l.starts_with("q1")), "{stdout}");
    assert!(stdout.lines().any(|l| l.starts_with("q2")), "{stdout}");
    std::fs::remove_dir_all(&base).unwrap();
}
