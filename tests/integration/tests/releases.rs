//! A plugin built against one Slurm release's headers, loaded by another release, is refused
//! by Slurm's own plugin loader with its version message: listed `optional`, jobs run without
//! it; listed `required`, srun and sbatch refuse the job. Either way no node is drained (as
//! long as no job's epilog meets the `required` line: that drains the node, see below).
//!
//! Needs the test cluster of one release (e.g. `cluster.sh up --release 24.11`) and, in
//! SPANK_OTHER_RELEASE_PLUGIN, the path of one of our plugin .so files built for a different
//! release (e.g. the 22.05 build from tests/versions/build-all.sh:
//! target/slurm-bookworm/release/libspank_frames.so). Without it, or when the plugin's release
//! is the cluster's, the test prints a note and passes without checking anything.
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use integration_tests::Cluster;

const PLUGIN_ENV: &str = "SPANK_OTHER_RELEASE_PLUGIN";

/// plugin_version of a plugin .so, read by tests/versions/plugin-info.sh (never loaded here).
fn plugin_version(so: &Path) -> u32 {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../versions/plugin-info.sh");
    let out = Command::new("bash")
        .arg(script)
        .arg(so)
        .output()
        .expect("cannot run plugin-info.sh");
    let text = String::from_utf8_lossy(&out.stdout);
    let hex = text
        .lines()
        .find_map(|l| l.strip_prefix("plugin_version=0x"))
        .unwrap_or_else(|| {
            panic!(
                "plugin-info.sh {} printed no plugin_version: {text}{}",
                so.display(),
                String::from_utf8_lossy(&out.stderr)
            )
        });
    u32::from_str_radix(hex.trim(), 16).expect("plugin_version is hex")
}

/// "MAJOR.MINOR" of a SLURM_VERSION_NUMBER.
fn release_of(version: u32) -> String {
    format!("{}.{:02}", version >> 16, (version >> 8) & 0xff)
}

/// Puts plugstack.conf back however the test ends (it is read by every job).
struct PlugstackGuard<'a> {
    cluster: &'a Cluster,
    old: Option<String>,
}

impl Drop for PlugstackGuard<'_> {
    fn drop(&mut self) {
        if let Some(old) = self.old.take() {
            self.cluster.set_plugstack(&old);
        }
    }
}

#[test]
#[ignore = "needs the test cluster: tests/run-all.sh"]
fn plugin_of_another_release_is_refused_with_slurms_version_message() {
    let Some(so) = std::env::var_os(PLUGIN_ENV).map(PathBuf::from) else {
        eprintln!("releases: {PLUGIN_ENV} not set: nothing to check (see this file's header)");
        return;
    };
    let cluster = Cluster::connect();
    let version = plugin_version(&so);
    let plugin_release = release_of(version);
    let micro = version & 0xff;
    if plugin_release == cluster.release() {
        eprintln!(
            "releases: {} is built for {plugin_release}, the cluster's own release: nothing to check",
            so.display()
        );
        return;
    }

    // A new name in the cluster's plugin dir (bound at the same path inside a release's rootfs).
    let target = Path::new(cluster.var("SPANK_PLUGIN_DIR")).join(format!(
        "other_release_{}",
        so.file_name()
            .unwrap_or_else(|| panic!("{PLUGIN_ENV}={} names no file", so.display()))
            .display()
    ));
    std::fs::copy(&so, &target)
        .unwrap_or_else(|e| panic!("copy {} to {}: {e}", so.display(), target.display()));
    let run = cluster.as_root("chmod", &["0755", &target.display().to_string()]);
    assert!(run.ok(), "chmod {}: {run:?}", target.display());

    // What Slurm's loader says, in every release we run: it names the release the plugin was
    // built for. (24.11 adds the error line "spank: PATH: Incompatible plugin version"; 26.05
    // prints that one only at higher verbosity, so it is not required here.)
    let message = format!(
        "Incompatible Slurm plugin {} version ({plugin_release}.{micro})",
        target.display()
    );

    let guard = PlugstackGuard {
        cluster: &cluster,
        old: Some(cluster.set_plugstack(&format!("optional {}\n", target.display()))),
    };

    // optional: refused, and the job runs anyway, on a node that logs the same refusal.
    let log_before = cluster.node_log("c1").len();
    let run = cluster.as_user("srun", &["-p", "normal", "-w", "c1", "-N1", "hostname"]);
    assert!(
        run.ok(),
        "srun with an optional plugin of release {plugin_release} failed: {run:?}"
    );
    assert_eq!(run.stdout.trim(), "c1", "{run:?}");
    assert!(
        run.stderr.contains(&message),
        "srun did not print Slurm's version message [{message}]: {run:?}"
    );
    let log = cluster.node_log("c1");
    let new_log = log.get(log_before..).unwrap_or(&log);
    assert!(
        new_log.contains(&message),
        "slurmd/slurmstepd log of c1 lacks [{message}]:\n{new_log}"
    );

    // Only once that job is gone: its epilog (slurmd runs it after srun returned) reads
    // plugstack.conf again, and an epilog whose `required` plugin fails drains the node.
    cluster.wait_queue_empty(Duration::from_secs(120));

    // required: srun refuses to start the job at all.
    cluster.set_plugstack(&format!("required {}\n", target.display()));
    let run = cluster.as_user("srun", &["-p", "normal", "-N1", "hostname"]);
    assert!(
        !run.ok(),
        "srun ran a job with a required plugin of release {plugin_release}: {run:?}"
    );
    assert!(
        run.stderr.contains(&message),
        "srun did not print Slurm's version message [{message}]: {run:?}"
    );
    assert!(run.stdout.trim().is_empty(), "a job ran: {run:?}");
    // sbatch (allocator context) refuses the submission the same way: no job is queued.
    let run = cluster.as_user(
        "sbatch",
        &[
            "--parsable",
            "-p",
            "normal",
            "-o",
            "/dev/null",
            "--wrap",
            "true",
        ],
    );
    assert!(
        !run.ok() && run.stdout.trim().is_empty(),
        "sbatch queued a job with a required plugin of release {plugin_release}: {run:?}"
    );
    assert!(
        run.stderr.contains(&message),
        "sbatch did not print Slurm's version message [{message}]: {run:?}"
    );

    drop(guard);
    let _ = std::fs::remove_file(&target);
    cluster.assert_no_unhealthy_nodes();
}
