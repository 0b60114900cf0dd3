//! The controllers of a test cluster brought up with `cluster.sh up --backup-ctl`: what
//! `scontrol ping` says about each, and whether one of them is in control (answers RPCs).
//! Used by tests/failover.rs.
use std::time::{Duration, Instant};

use crate::{Cluster, cluster_script};

/// One line of `scontrol ping`: `Slurmctld(primary) at ctl is UP`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ping {
    /// "primary", "backup", "backup2", ...
    pub role: String,
    pub host: String,
    pub up: bool,
}

/// Parses `scontrol ping` output; lines of another shape are skipped.
pub fn parse_ping(text: &str) -> Vec<Ping> {
    text.lines()
        .filter_map(|line| {
            let rest = line.trim().strip_prefix("Slurmctld(")?;
            let (role, rest) = rest.split_once(")")?;
            let rest = rest.trim_start().strip_prefix("at ")?;
            let (host, state) = rest.split_once(" is ")?;
            let up = match state.split_whitespace().next()? {
                "UP" => true,
                "DOWN" => false,
                _ => return None,
            };
            Some(Ping {
                role: role.to_string(),
                host: host.trim().to_string(),
                up,
            })
        })
        .collect()
}

/// `scontrol ping` now (empty when it failed to run or printed nothing we know).
pub fn ping(cluster: &Cluster) -> Vec<Ping> {
    parse_ping(&cluster.as_root("scontrol", &["ping"]).stdout)
}

/// Whether the cluster has a backup controller (a second SlurmctldHost line).
pub fn has_backup(cluster: &Cluster) -> bool {
    ping(cluster).iter().any(|p| p.role.starts_with("backup"))
}

/// Whether an RPC that only the controller in control answers succeeds (a standby
/// controller refuses it; the client then waits and retries, so this can take seconds).
pub fn in_control_answers(cluster: &Cluster) -> bool {
    cluster.as_root("squeue", &["-h", "-o", "%i"]).ok()
}

/// The slurmctld log of the primary or of the backup (`ctl2`).
pub fn log(cluster: &Cluster, backup: bool) -> String {
    let name = if backup {
        "slurmctld-ctl2.log"
    } else {
        "slurmctld.log"
    };
    std::fs::read_to_string(cluster.log_dir().join(name)).unwrap_or_default()
}

/// Lines of the backup's log saying it took control.
pub fn takeovers(cluster: &Cluster) -> usize {
    log(cluster, true)
        .lines()
        .filter(|l| l.contains("taking over"))
        .count()
}

/// Lines of the backup's log saying it went back to standby (after the primary's return).
pub fn relinquished(cluster: &Cluster) -> usize {
    log(cluster, true)
        .lines()
        .filter(|l| l.contains("slurmctld running in background mode"))
        .count()
}

/// Polls `done` every 100 ms; panics naming `what` after `limit`. Returns the time it took.
pub fn wait_until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
    start.elapsed()
}

/// `cluster.sh stop-ctl` (SIGTERM to the primary slurmctld by its PID), or with `--kill`.
pub fn stop_primary(kill: bool) {
    let args: &[&str] = if kill {
        &["stop-ctl", "--kill"]
    } else {
        &["stop-ctl"]
    };
    cluster_script(args).expect_ok("cluster.sh stop-ctl");
}

/// `cluster.sh start-ctl`: the primary slurmctld again.
pub fn start_primary() {
    cluster_script(&["start-ctl"]).expect_ok("cluster.sh start-ctl");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_scontrol_ping() {
        let text = "Slurmctld(primary) at ctl is DOWN\nSlurmctld(backup) at ctl2 is UP\n";
        assert_eq!(
            parse_ping(text),
            vec![
                Ping {
                    role: "primary".into(),
                    host: "ctl".into(),
                    up: false
                },
                Ping {
                    role: "backup".into(),
                    host: "ctl2".into(),
                    up: true
                },
            ]
        );
    }

    #[test]
    fn skips_what_is_not_a_ping_line() {
        assert!(parse_ping("").is_empty());
        assert!(parse_ping("slurm_ping error\nSlurmctld(primary) at ctl is MAYBE").is_empty());
        assert_eq!(parse_ping("Slurmctld(primary) at ctl is UP").len(), 1);
    }
}
