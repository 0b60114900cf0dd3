//! Helpers for tests against the running test cluster (`tests/cluster/cluster.sh up`).
//!
//! The cluster's `cluster.env` is found through `SPANK_CLUSTER_ENV` (set by tests/run-all.sh)
//! or at the default scratch path. Jobs run as the unprivileged test user, never as root.
//!
//! A cluster of another Slurm release (`cluster.sh up --release 24.11|26.05`) runs from a
//! debootstrapped root filesystem (`SPANK_ROOT` in cluster.env): its clients are that
//! release's own, so every Slurm command runs chrooted there (the scratch dir is bound at the
//! same path inside, so paths need no translation).
pub mod controllers;
pub mod qpu_site;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct Cluster {
    vars: BTreeMap<String, String>,
}

/// What a Slurm command printed and how it ended.
#[derive(Debug)]
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    fn from(output: Output) -> Run {
        Run {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    pub fn ok(&self) -> bool {
        self.code == Some(0)
    }

    /// Panics with everything the command printed unless it succeeded.
    pub fn expect_ok(self, what: &str) -> Run {
        assert!(self.ok(), "{what} failed: {self:?}");
        self
    }

    pub fn lines(&self) -> Vec<&str> {
        self.stdout.lines().collect()
    }
}

impl Cluster {
    /// Reads cluster.env; panics with instructions when no cluster is up.
    pub fn connect() -> Cluster {
        let path = std::env::var_os("SPANK_CLUSTER_ENV")
            .map(PathBuf::from)
            .unwrap_or_else(|| match std::env::var("SPANK_CLUSTER_ID") {
                Ok(id) if id != "0" => {
                    PathBuf::from(format!("/tmp/spank-cluster-{id}/cluster.env"))
                }
                _ => PathBuf::from("/tmp/spank-cluster/cluster.env"),
            });
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!(
                "no test cluster ({}: {e}); start one with tests/cluster/cluster.sh up, or run tests/run-all.sh",
                path.display()
            )
        });
        let mut vars = BTreeMap::new();
        for line in text.lines() {
            let line = line.trim().trim_start_matches("export ");
            if let Some((k, v)) = line.split_once('=') {
                vars.insert(
                    k.to_string(),
                    v.trim_matches(|c| c == '"' || c == '\'').to_string(),
                );
            }
        }
        Cluster { vars }
    }

    pub fn var(&self, name: &str) -> &str {
        self.vars
            .get(name)
            .map(String::as_str)
            .unwrap_or_else(|| panic!("cluster.env has no {name}"))
    }

    /// A cluster.env variable that only some clusters set.
    pub fn var_opt(&self, name: &str) -> Option<&str> {
        self.vars.get(name).map(String::as_str)
    }

    pub fn user(&self) -> &str {
        self.var("SPANK_TEST_USER")
    }

    pub fn shared_dir(&self) -> PathBuf {
        PathBuf::from(self.var("SPANK_SHARED_DIR"))
    }

    pub fn log_dir(&self) -> PathBuf {
        PathBuf::from(self.var("SPANK_LOG_DIR"))
    }

    pub fn scratch(&self) -> PathBuf {
        PathBuf::from(self.var("SPANK_CLUSTER_DIR"))
    }

    /// The Slurm release the cluster runs ("22.05", "24.11", "26.05").
    pub fn release(&self) -> &str {
        self.vars
            .get("SPANK_SLURM_RELEASE")
            .map(String::as_str)
            .unwrap_or("22.05")
    }

    /// Whether the cluster keeps Slurm accounting (slurmdbd over MariaDB; `up --no-accounting`
    /// leaves it out).
    pub fn accounting(&self) -> bool {
        self.vars.get("SPANK_ACCOUNTING").is_some_and(|v| v == "1")
    }

    /// The root filesystem the cluster's Slurm runs in, if not the host's.
    pub fn root(&self) -> Option<&str> {
        self.vars
            .get("SPANK_ROOT")
            .map(String::as_str)
            .filter(|r| !r.is_empty())
    }

    /// A command that runs `program` on the cluster's Slurm: on the host, or chrooted
    /// into the release's root filesystem.
    fn command(&self, program: &str) -> Command {
        match self.root() {
            Some(root) => {
                let mut cmd = Command::new("chroot");
                cmd.arg(root).arg(program);
                cmd
            }
            None => Command::new(program),
        }
    }

    /// Runs a Slurm client command as the test user, in the shared directory.
    pub fn as_user(&self, program: &str, args: &[&str]) -> Run {
        self.as_named_user(self.user(), program, args)
    }

    pub fn as_named_user(&self, user: &str, program: &str, args: &[&str]) -> Run {
        let output = self
            .user_command(user, program)
            .args(args)
            .output()
            .expect("cannot run runuser");
        Run::from(output)
    }

    /// `program` as `user` with the cluster's Slurm (chrooted into the release's root
    /// filesystem, if any), its SLURM_CONF, in the shared directory: add the arguments, then
    /// run or spawn it (a test that must stop a long-running client spawns it).
    pub fn user_command(&self, user: &str, program: &str) -> Command {
        // chroot changes to its new root: the shell changes to the shared directory again.
        let shared = self.shared_dir();
        let mut cmd = self.command("runuser");
        cmd.args([
            "-u",
            user,
            "--",
            "env",
            &format!("SLURM_CONF={}", self.var("SLURM_CONF")),
            "sh",
            "-c",
            r#"cd "$0" && exec "$@""#,
        ])
        .arg(&shared)
        .arg(program)
        .current_dir(&shared);
        cmd
    }

    /// Runs an admin command as root: Slurm's own (scontrol, sinfo, squeue, scancel...) with
    /// the cluster's release, anything else on the host.
    pub fn as_root(&self, program: &str, args: &[&str]) -> Run {
        let slurm_client = [
            "scontrol", "sinfo", "squeue", "scancel", "sbatch", "srun", "salloc", "sacct",
            "sattach", "sprio", "sshare", "sstat", "sreport", "sacctmgr", "sdiag",
        ]
        .contains(&program);
        let mut cmd = if slurm_client {
            self.command(program)
        } else {
            Command::new(program)
        };
        let output = cmd
            .args(args)
            .env("SLURM_CONF", self.var("SLURM_CONF"))
            .output()
            .expect("cannot run Slurm command");
        Run::from(output)
    }

    /// Nodes whose state is drained, draining, down or failing.
    pub fn unhealthy_nodes(&self) -> Vec<String> {
        let run = self
            .as_root("sinfo", &["-h", "-N", "-o", "%N %T"])
            .expect_ok("sinfo");
        run.lines()
            .into_iter()
            .filter(|l| {
                let state = l.split_whitespace().nth(1).unwrap_or("");
                ["drain", "down", "fail", "not_responding", "unknown"]
                    .iter()
                    .any(|bad| state.to_lowercase().contains(bad))
            })
            .map(str::to_string)
            .collect()
    }

    pub fn assert_no_unhealthy_nodes(&self) {
        let bad = self.unhealthy_nodes();
        assert!(bad.is_empty(), "nodes not healthy: {bad:?}");
    }

    /// Concatenated slurmd/slurmstepd log of one node.
    pub fn node_log(&self, node: &str) -> String {
        std::fs::read_to_string(self.log_dir().join(format!("slurmd-{node}.log")))
            .unwrap_or_default()
    }

    /// A fresh directory owned by the test user under the shared directory.
    pub fn user_dir(&self, name: &str) -> PathBuf {
        let dir = self.shared_dir().join(name);
        let run = self.as_user(
            "sh",
            &[
                "-c",
                &format!("rm -rf '{0}' && mkdir -p '{0}'", dir.display()),
            ],
        );
        assert!(run.ok(), "cannot create {}: {run:?}", dir.display());
        dir
    }

    /// Replaces plugstack.conf (root-owned file in the scratch dir); returns the old text.
    pub fn set_plugstack(&self, text: &str) -> String {
        let path = self.scratch().join("plugstack.conf");
        let old = std::fs::read_to_string(&path).expect("read plugstack.conf");
        std::fs::write(&path, text).expect("write plugstack.conf");
        old
    }
}

/// Runs tests/cluster/cluster.sh (as root) with `args`.
pub fn cluster_script(args: &[&str]) -> Run {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../cluster/cluster.sh");
    let output = Command::new("bash")
        .arg(script)
        .args(args)
        .output()
        .expect("cannot run cluster.sh");
    Run::from(output)
}

impl Cluster {
    /// Writes an executable script owned by the test user.
    pub fn user_script(&self, dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).expect("write script");
        let run = self.as_root(
            "chown",
            &[
                &format!("{0}:{0}", self.user()),
                path.to_str().unwrap_or(""),
            ],
        );
        assert!(run.ok(), "chown {}: {run:?}", path.display());
        let run = self.as_root("chmod", &["0755", path.to_str().unwrap_or("")]);
        assert!(run.ok(), "chmod {}: {run:?}", path.display());
        path
    }

    /// A tool run-all staged into the scratch directory (frames, blackhole-render).
    pub fn tool(&self, name: &str) -> String {
        self.scratch().join("bin").join(name).display().to_string()
    }

    /// Cancels `job` when the returned guard drops, also when the test panics: a failed
    /// test leaves no job running into the next one.
    pub fn cancel_on_drop(&self, job: &str) -> CancelOnDrop<'_> {
        CancelOnDrop {
            cluster: self,
            job: job.to_owned(),
        }
    }

    /// Waits until no job of the test user is left in the queue, up to `limit`.
    pub fn wait_queue_empty(&self, limit: Duration) {
        let start = Instant::now();
        loop {
            let run = self.as_root("squeue", &["-h", "-u", self.user(), "-o", "%i %T %r %N"]);
            if run.ok() && run.stdout.trim().is_empty() {
                return;
            }
            assert!(
                start.elapsed() < limit,
                "jobs still queued after {limit:?}: {}",
                run.stdout
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

/// See [`Cluster::cancel_on_drop`].
pub struct CancelOnDrop<'a> {
    cluster: &'a Cluster,
    job: String,
}

impl Drop for CancelOnDrop<'_> {
    fn drop(&mut self) {
        self.cluster.as_user("scancel", &[&self.job]);
    }
}

/// Waits for a file to appear (sbatch output lands after the job ends), up to `limit`.
pub fn wait_for_file(path: &Path, limit: Duration) -> String {
    let start = Instant::now();
    loop {
        if let Ok(text) = std::fs::read_to_string(path)
            && !text.is_empty()
        {
            return text;
        }
        assert!(
            start.elapsed() < limit,
            "{} did not appear within {limit:?}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A JSON file the tests read (records, summaries); a missing or invalid one fails the test.
pub fn read_json(path: &Path) -> serde_json::Value {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every task record of the frame dir `dir` (segment lines and old record files), parsed.
pub fn record_files(dir: &Path) -> Vec<serde_json::Value> {
    record_texts(dir)
        .into_iter()
        .map(|(name, bytes)| {
            serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"))
        })
        .collect()
}

/// Every task record of `dir` as written: (`STEM.json`, its JSON bytes), by key. A record in
/// a segment is named by its stem as an old record file was, so tests match names either way.
pub fn record_texts(dir: &Path) -> Vec<(String, Vec<u8>)> {
    frames_core::store::read_all(&frames_core::Layout::new(dir))
        .unwrap_or_default()
        .into_iter()
        .map(|(key, _, json)| (format!("{}.json", key.stem()), json))
        .collect()
}
