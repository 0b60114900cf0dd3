//! QPU accounting: one JSON line per acquire and per release, appended to
//! `<state_dir>/accounting.jsonl` (node-local; the `qrmi-usage` command reads one or more of
//! these files and reports usage per user and per QPU over a time range).
//!
//! Line format (times are Unix seconds, UTC):
//! `{"event":"acquire"|"release","job":42,"uid":1000,"node":"q1","qpu":"ibm_torino",
//!   "type":"ibm-quantum-compute-service","time_acquired":1767000000,"time_released":null,
//!   "outcome":"ok"|"failed","error":null}`
//!
//! Appends are safe with many writers: the file is opened `O_APPEND|O_CREAT|O_NOFOLLOW`, mode
//! 0600, and each line is written with one `write_all` under an exclusive `flock` (a line may be
//! longer than PIPE_BUF, so O_APPEND alone would not keep lines whole on every filesystem).
//! `error` must already be free of secrets (backend errors are scrubbed).
use crate::os::Flock;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub const ACCOUNTING_FILE: &str = "accounting.jsonl";

pub fn accounting_path(state_dir: &Path) -> PathBuf {
    state_dir.join(ACCOUNTING_FILE)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Event {
    Acquire,
    Release,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Ok,
    Failed,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub event: Event,
    pub job: u32,
    pub uid: u32,
    pub node: String,
    pub qpu: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub time_acquired: u64,
    pub time_released: Option<u64>,
    pub outcome: Outcome,
    pub error: Option<String>,
}

/// Appends one record as one line. Creates the file (0600) if needed; refuses a symlink.
pub fn append(path: &Path, record: &Record) -> std::io::Result<()> {
    let mut line = serde_json::to_string(record).map_err(std::io::Error::other)?;
    line.push('\n');
    let file = OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)?;
    let _lock = Flock::exclusive(&file)?;
    (&file).write_all(line.as_bytes())?;
    Ok(())
}

/// Reads records; lines that do not parse are counted, not fatal (a crashed writer can leave
/// at most a partial last line).
pub fn read(path: &Path) -> std::io::Result<(Vec<Record>, usize)> {
    let file = File::open(path)?;
    let mut records = Vec::new();
    let mut bad = 0;
    for line in BufReader::new(file).lines() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Record>(&line) {
            Ok(r) => records.push(r),
            Err(_) => bad += 1,
        }
    }
    Ok((records, bad))
}

/// Usage of one user or one QPU.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Usage {
    /// Acquisitions overlapping the range.
    pub count: u64,
    /// Seconds held inside the range.
    pub held_seconds: u64,
    /// Failed acquisitions in the range.
    pub failed_acquires: u64,
    /// Failed releases in the range (sessions that may have stayed open).
    pub failed_releases: u64,
    /// Acquisitions with no release recorded (counted as held until the end of the range).
    pub open: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    pub from: u64,
    pub to: u64,
    /// Keyed by uid.
    pub per_user: BTreeMap<u32, Usage>,
    /// Keyed by QPU name.
    pub per_qpu: BTreeMap<String, Usage>,
}

/// Usage in `[from, to)`. Each successful acquisition is one hold, from its `time_acquired` to
/// the `time_released` of the first successful release of the same job, node and QPU (or `to`
/// when there is none yet: still held, or the release failed and the session may be open). Held
/// time is clipped to the range.
pub fn usage_report(records: &[Record], from: u64, to: u64) -> Report {
    let mut report = Report {
        from,
        to,
        per_user: BTreeMap::new(),
        per_qpu: BTreeMap::new(),
    };
    let key = |r: &Record| (r.job, r.node.clone(), r.qpu.clone());
    let mut releases: BTreeMap<(u32, String, String), u64> = BTreeMap::new();
    for r in records
        .iter()
        .filter(|r| r.event == Event::Release && r.outcome == Outcome::Ok)
    {
        if let Some(t) = r.time_released {
            releases
                .entry(key(r))
                .and_modify(|old| *old = (*old).min(t))
                .or_insert(t);
        }
    }
    let mut add = |r: &Record, f: &dyn Fn(&mut Usage)| {
        f(report.per_user.entry(r.uid).or_default());
        f(report.per_qpu.entry(r.qpu.clone()).or_default());
    };
    for r in records {
        match (r.event, r.outcome) {
            (Event::Acquire, Outcome::Ok) => {
                let released = releases.get(&key(r)).copied();
                let end = released.unwrap_or(to).max(r.time_acquired);
                let start = r.time_acquired.max(from);
                let stop = end.min(to);
                // Overlaps [from, to); a zero-length hold counts where it starts.
                if r.time_acquired < to && (end > from || r.time_acquired >= from) {
                    let held = stop.saturating_sub(start);
                    add(r, &|u| {
                        u.count += 1;
                        u.held_seconds += held;
                        if released.is_none() {
                            u.open += 1;
                        }
                    });
                }
            }
            (Event::Acquire, Outcome::Failed) => {
                if (from..to).contains(&r.time_acquired) {
                    add(r, &|u| u.failed_acquires += 1);
                }
            }
            (Event::Release, Outcome::Failed) => {
                if r.time_released.is_some_and(|t| (from..to).contains(&t)) {
                    add(r, &|u| u.failed_releases += 1);
                }
            }
            (Event::Release, Outcome::Ok) => {}
        }
    }
    report
}

/// `HhMMmSSs`-style duration.
pub fn format_duration(secs: u64) -> String {
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    format!("{h}:{m:02}:{s:02}")
}

impl Report {
    /// Plain-text tables. `user_name` maps a uid to a name (or None).
    pub fn table(&self, user_name: &dyn Fn(u32) -> Option<String>) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "QPU usage from {} to {} (UTC)\n",
            format_time(self.from),
            format_time(self.to)
        );
        let rows = |title: &str, rows: Vec<(String, &Usage)>, out: &mut String| {
            let width = rows
                .iter()
                .map(|(k, _)| k.len())
                .chain([title.len()])
                .max()
                .unwrap_or(0);
            let _ = writeln!(
                out,
                "{title:<width$}  {:>6}  {:>12}  {:>6}  {:>10}  {:>10}",
                "HOLDS", "HELD", "OPEN", "ACQ_FAILED", "REL_FAILED"
            );
            if rows.is_empty() {
                let _ = writeln!(out, "(none)");
            }
            for (k, u) in rows {
                let _ = writeln!(
                    out,
                    "{k:<width$}  {:>6}  {:>12}  {:>6}  {:>10}  {:>10}",
                    u.count,
                    format_duration(u.held_seconds),
                    u.open,
                    u.failed_acquires,
                    u.failed_releases
                );
            }
        };
        rows(
            "USER",
            self.per_user
                .iter()
                .map(|(uid, u)| {
                    let name = user_name(*uid)
                        .map(|n| format!("{n} ({uid})"))
                        .unwrap_or_else(|| uid.to_string());
                    (name, u)
                })
                .collect(),
            &mut out,
        );
        out.push('\n');
        rows(
            "QPU",
            self.per_qpu.iter().map(|(q, u)| (q.clone(), u)).collect(),
            &mut out,
        );
        out
    }

    pub fn json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|_| "{}".to_string())
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// `YYYY-MM-DDTHH:MM:SSZ`.
pub fn format_time(t: u64) -> String {
    let days = (t / 86400) as i64;
    let rem = t % 86400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// Parses Unix seconds, `YYYY-MM-DD`, `YYYY-MM-DDTHH:MM[:SS]` or `YYYY-MM-DD HH:MM[:SS]`
/// (UTC; a trailing `Z` is allowed).
pub fn parse_time(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let expected = "expected Unix seconds, YYYY-MM-DD or YYYY-MM-DDTHH:MM[:SS] (UTC)";
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return s.parse().map_err(|_| format!("time '{s}': {expected}"));
    }
    let bad = || format!("time '{s}': {expected}");
    let s2 = s.strip_suffix('Z').unwrap_or(s);
    let (date, time) = match s2.split_once(['T', ' ']) {
        Some((d, t)) => (d, Some(t)),
        None => (s2, None),
    };
    let mut parts = date.split('-');
    let (Some(y), Some(m), Some(d), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad());
    };
    let y: i64 = y.parse().map_err(|_| bad())?;
    let m: u32 = m.parse().map_err(|_| bad())?;
    let d: u32 = d.parse().map_err(|_| bad())?;
    if !(1970..=9999).contains(&y) || !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return Err(bad());
    }
    let mut secs = 0u64;
    if let Some(time) = time {
        let fields: Vec<&str> = time.split(':').collect();
        if !(2..=3).contains(&fields.len()) {
            return Err(bad());
        }
        let mut values = [0u64; 3];
        for (i, f) in fields.iter().enumerate() {
            values[i] = f.parse().map_err(|_| bad())?;
        }
        if values[0] > 23 || values[1] > 59 || values[2] > 60 {
            return Err(bad());
        }
        secs = values[0] * 3600 + values[1] * 60 + values[2];
    }
    let days = days_from_civil(y, m, d);
    Ok(days as u64 * 86400 + secs)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn temp_dir(tag: &str) -> PathBuf {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "spank-qrmi-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn rec(
        event: Event,
        job: u32,
        uid: u32,
        qpu: &str,
        acq: u64,
        rel: Option<u64>,
        outcome: Outcome,
    ) -> Record {
        Record {
            event,
            job,
            uid,
            node: "q1".into(),
            qpu: qpu.into(),
            kind: "pasqal-local".into(),
            time_acquired: acq,
            time_released: rel,
            outcome,
            error: (outcome == Outcome::Failed).then(|| "HTTP 500".to_string()),
        }
    }

    #[test]
    fn concurrent_appends_keep_every_line_whole() {
        let dir = temp_dir("acct");
        let path = accounting_path(&dir);
        let threads = 8;
        let per = 50;
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let path = path.clone();
                std::thread::spawn(move || {
                    for i in 0..per {
                        let mut r = rec(
                            Event::Release,
                            t * 1000 + i,
                            t,
                            "FRESNEL",
                            1,
                            Some(2),
                            Outcome::Failed,
                        );
                        // Longer than PIPE_BUF (4096) so O_APPEND alone would not suffice.
                        r.error = Some(format!("{t}:{i}:{}", "x".repeat(6000)));
                        append(&path, &r).unwrap();
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        let (records, bad) = read(&path).unwrap();
        assert_eq!(bad, 0);
        assert_eq!(records.len(), (threads * per) as usize);
        let mut jobs: Vec<u32> = records.iter().map(|r| r.job).collect();
        jobs.sort();
        jobs.dedup();
        assert_eq!(jobs.len(), (threads * per) as usize);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn append_refuses_a_symlink() {
        let dir = temp_dir("acct-link");
        let target = dir.join("elsewhere");
        std::fs::write(&target, "").unwrap();
        let path = accounting_path(&dir);
        std::os::unix::fs::symlink(&target, &path).unwrap();
        let r = rec(Event::Acquire, 1, 1, "q", 1, None, Outcome::Ok);
        assert!(append(&path, &r).is_err());
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn line_format() {
        let r = rec(
            Event::Acquire,
            42,
            1000,
            "ibm_torino",
            100,
            None,
            Outcome::Ok,
        );
        let line = serde_json::to_string(&r).unwrap();
        assert_eq!(
            line,
            r#"{"event":"acquire","job":42,"uid":1000,"node":"q1","qpu":"ibm_torino","type":"pasqal-local","time_acquired":100,"time_released":null,"outcome":"ok","error":null}"#
        );
    }

    #[test]
    fn report_per_user_and_qpu_clipped_to_the_range() {
        use Event::*;
        use Outcome::*;
        let records = vec![
            // user 1000: job 1 on A, 100..400 (300 s)
            rec(Acquire, 1, 1000, "A", 100, None, Ok),
            rec(Release, 1, 1000, "A", 100, Some(400), Ok),
            // user 1000: job 2 on B, 350..1000, clipped to the range end 600 → 250 s
            rec(Acquire, 2, 1000, "B", 350, None, Ok),
            rec(Release, 2, 1000, "B", 350, Some(1000), Ok),
            // user 2000: job 3 on A, 0..250 (the failed release at 200 does not end it), clipped
            // to 50..250 → 200 s
            rec(Acquire, 3, 2000, "A", 0, None, Ok),
            rec(Release, 3, 2000, "A", 0, Some(200), Failed),
            rec(Release, 3, 2000, "A", 0, Some(250), Ok),
            // user 2000: job 4 on B still held: 500..600 → 100 s, open
            rec(Acquire, 4, 2000, "B", 500, None, Ok),
            // failed acquisition in range; one outside the range
            rec(Acquire, 5, 2000, "A", 300, None, Failed),
            rec(Acquire, 6, 2000, "A", 900, None, Failed),
            // entirely outside the range
            rec(Acquire, 7, 3000, "A", 700, None, Ok),
            rec(Release, 7, 3000, "A", 700, Some(800), Ok),
        ];
        let report = usage_report(&records, 50, 600);
        let u1000 = &report.per_user[&1000];
        assert_eq!((u1000.count, u1000.held_seconds, u1000.open), (2, 550, 0));
        let u2000 = &report.per_user[&2000];
        assert_eq!(
            (
                u2000.count,
                u2000.held_seconds,
                u2000.open,
                u2000.failed_acquires,
                u2000.failed_releases
            ),
            (2, 300, 1, 1, 1)
        );
        assert!(!report.per_user.contains_key(&3000) || report.per_user[&3000].count == 0);
        let a = &report.per_qpu["A"];
        assert_eq!((a.count, a.held_seconds, a.failed_acquires), (2, 500, 1));
        let b = &report.per_qpu["B"];
        assert_eq!((b.count, b.held_seconds, b.open), (2, 350, 1));
        let table = report.table(&|uid| (uid == 1000).then(|| "alice".to_string()));
        assert!(table.contains("alice (1000)"), "{table}");
        assert!(table.contains("0:09:10"), "{table}");
        let json: serde_json::Value = serde_json::from_str(&report.json()).unwrap();
        assert_eq!(json["per_qpu"]["A"]["held_seconds"], 500);
        assert_eq!(json["per_user"]["2000"]["open"], 1);
    }

    #[test]
    fn times() {
        assert_eq!(parse_time("0").unwrap(), 0);
        assert_eq!(parse_time("1970-01-02").unwrap(), 86400);
        assert_eq!(parse_time("2026-01-01T00:00:00Z").unwrap(), 1767225600);
        assert_eq!(parse_time("2026-01-01 01:02").unwrap(), 1767225600 + 3720);
        assert_eq!(format_time(1767225600 + 3723), "2026-01-01T01:02:03Z");
        assert_eq!(format_time(951782400), "2000-02-29T00:00:00Z");
        for bad in [
            "",
            "yesterday",
            "2026-13-01",
            "2026-01-01T25:00",
            "2026-01",
            "-5",
        ] {
            let e = parse_time(bad).unwrap_err();
            assert!(e.contains("expected Unix seconds"), "{bad}: {e}");
        }
    }
}
