//! Per-job QPU leases in a root-only, node-local state directory (default
//! [`DEFAULT_STATE_DIR`], plugstack `state_dir=`): one file `lease-<job>-<qpu>.json` per QPU a
//! job acquired on this node, so later steps of the job reuse the acquisition and the job epilog
//! knows what to release.
//!
//! - [`LeaseStore::open`] creates the directory 0700 if missing and refuses it if it is a
//!   symlink, not a directory, not owned by the effective uid, or accessible by group/others.
//! - Files are written atomically (host_io: temp file `O_EXCL|O_NOFOLLOW`, fsync, rename, fsync of the
//!   directory) with mode 0600, and read with `O_NOFOLLOW`.
//! - A release that fails is recorded (`ReleaseFailed`, attempts, last error) and kept for a
//!   retry, never dropped. A lease released at the job's end is removed (a second release finds
//!   nothing to do); one released by a rolled-back acquisition stays (`Released`) until
//!   [`LeaseStore::remove_job`].
//! - QPU names are checked (`[A-Za-z_][A-Za-z0-9_]*`, like config names) so none can escape the
//!   directory.
//! - [`LeaseStore::lock_job`] serialises steps of one job on this node (flock).
//! - Who uses a job's leases is recorded too ([`Role`]): each step's slurmstepd while it runs,
//!   and the job's keeper process (see `keeper.rs`), as empty files
//!   `<role>-<job>-<pid>-<start>`; a process that died, even by SIGKILL, no longer counts.
use std::collections::BTreeMap;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use spank::host::ProcessId;

use crate::config::{Redacted, RedactedMap, is_qpu_name};
use crate::os::Flock;
use spank::host::unix_secs;

/// The base of the default state directory; each host uses `<base>/<cluster>/<host>`, so two
/// clusters on one host never see (and never release) each other's leases: job ids repeat
/// across clusters, not within one.
pub const DEFAULT_STATE_DIR: &str = "/var/spool/slurm/spank_qrmi";

/// True for a name usable as one path component: letters, digits, `.`, `_`, `-`, not `.`/`..`.
pub fn is_safe_component(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && name != "."
        && name != ".."
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// The state directory of one slurmd. `configured` (plugstack `state_dir=`) may hold `%n`
/// (node name) and `%c` (cluster name), as SlurmdSpoolDir's `%n`; unset, the default is
/// `DEFAULT_STATE_DIR/<cluster>/<node>`. Names that are not safe path components are replaced
/// by `_` so no name can climb out of the directory.
pub fn state_dir_for(configured: Option<&Path>, cluster: &str, node: &str) -> PathBuf {
    let safe = |n: &str| {
        if is_safe_component(n) {
            n.to_string()
        } else {
            "_".to_string()
        }
    };
    let (cluster, node) = (safe(cluster), safe(node));
    match configured {
        Some(dir) => PathBuf::from(
            dir.to_string_lossy()
                .replace("%n", &node)
                .replace("%c", &cluster),
        ),
        None => Path::new(DEFAULT_STATE_DIR).join(cluster).join(node),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LeaseState {
    Held,
    Released,
    ReleaseFailed,
}

/// One QPU acquired for one job. The token is a secret: Debug redacts it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    pub job_id: u32,
    pub qpu: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub token: String,
    pub uid: u32,
    pub acquired_at: u64,
    pub state: LeaseState,
    pub released_at: Option<u64>,
    /// Release attempts so far.
    pub release_attempts: u32,
    /// Last release error (already scrubbed of secrets by the backend).
    pub last_error: Option<String>,
    /// Keys the job brought for this QPU (e.g. its own endpoint and API key), needed again to
    /// release it. Secret: never shown; the file is root's, mode 0600.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub job_environment: BTreeMap<String, String>,
}

impl fmt::Debug for Lease {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lease")
            .field("job_id", &self.job_id)
            .field("qpu", &self.qpu)
            .field("kind", &self.kind)
            .field("token", &Redacted)
            .field("uid", &self.uid)
            .field("acquired_at", &self.acquired_at)
            .field("state", &self.state)
            .field("released_at", &self.released_at)
            .field("release_attempts", &self.release_attempts)
            .field("last_error", &self.last_error)
            .field("job_environment", &RedactedMap(&self.job_environment))
            .finish()
    }
}

/// How a release went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReleaseOutcome {
    Released,
    Failed(String),
}

#[derive(Debug)]
pub struct LeaseError(String);

impl fmt::Display for LeaseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for LeaseError {}

pub type Result<T> = std::result::Result<T, LeaseError>;

#[derive(Debug, Clone)]
pub struct LeaseStore {
    dir: PathBuf,
}

/// An exclusive per-job lock; released on drop (closing the descriptor releases the flock).
pub struct JobLock {
    _file: File,
    path: PathBuf,
    job_id: u32,
}

/// What a process registered with a job's leases does with them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A step's slurmstepd using the leases while it runs.
    Step,
    /// The process that releases them once the job has ended.
    Keeper,
}

impl Role {
    fn prefix(self) -> &'static str {
        match self {
            Role::Step => "step",
            Role::Keeper => "keeper",
        }
    }
}

fn check_qpu_name(name: &str) -> Result<()> {
    if is_qpu_name(name) {
        Ok(())
    } else {
        Err(LeaseError(format!(
            "QPU name \"{}\" is not valid for a lease file: expected letters, digits, '_', '-' and '.'",
            name.escape_debug()
        )))
    }
}

impl LeaseStore {
    /// Opens (creating 0700 if missing) and checks the state directory.
    pub fn open(dir: &Path) -> Result<LeaseStore> {
        let shown = dir.display();
        if !dir.is_absolute() {
            return Err(LeaseError(format!(
                "state directory {shown}: must be an absolute path"
            )));
        }
        match fs::symlink_metadata(dir) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if let Some(parent) = dir.parent() {
                    fs::create_dir_all(parent).map_err(|e| {
                        LeaseError(format!(
                            "state directory {shown}: cannot create its parent: {e}"
                        ))
                    })?;
                }
                match fs::DirBuilder::new().mode(0o700).create(dir) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                    Err(e) => {
                        return Err(LeaseError(format!(
                            "state directory {shown}: cannot create: {e}"
                        )));
                    }
                }
            }
            Err(e) => {
                return Err(LeaseError(format!("state directory {shown}: {e}")));
            }
            Ok(_) => {}
        }
        let meta = fs::symlink_metadata(dir)
            .map_err(|e| LeaseError(format!("state directory {shown}: {e}")))?;
        let euid = host_io::effective_uid();
        if meta.file_type().is_symlink() {
            return Err(LeaseError(format!(
                "state directory {shown} is a symbolic link: refusing it (use a real directory)"
            )));
        }
        if !meta.is_dir() {
            return Err(LeaseError(format!(
                "state directory {shown} is not a directory"
            )));
        }
        if meta.uid() != euid {
            return Err(LeaseError(format!(
                "state directory {shown} is owned by uid {}, expected uid {euid}: run chown {euid} {shown}",
                meta.uid()
            )));
        }
        if meta.mode() & 0o077 != 0 {
            return Err(LeaseError(format!(
                "state directory {shown} has mode {:04o}, expected no access for group and others: run chmod 700 {shown}",
                meta.mode() & 0o7777
            )));
        }
        Ok(LeaseStore {
            dir: dir.to_path_buf(),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn file_name(job_id: u32, qpu: &str) -> String {
        format!("lease-{job_id}-{qpu}.json")
    }

    fn path(&self, job_id: u32, qpu: &str) -> Result<PathBuf> {
        check_qpu_name(qpu)?;
        Ok(self.dir.join(Self::file_name(job_id, qpu)))
    }

    /// Serialises work on one job's leases on this node until the lock is dropped.
    pub fn lock_job(&self, job_id: u32) -> Result<JobLock> {
        let path = self.dir.join(format!("lock-{job_id}"));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&path)
            .map_err(|e| LeaseError(format!("{}: cannot open: {e}", path.display())))?;
        let lock = Flock::exclusive(&file)
            .map_err(|e| LeaseError(format!("{}: cannot lock: {e}", path.display())))?;
        // Keep the lock past this borrow: the descriptor holds it until closed.
        std::mem::forget(lock);
        // The holder before us may have removed the file (its job had nothing left): then
        // this lock is on an unlinked file and guards nothing; lock the current one instead.
        let same = match (file.metadata(), fs::symlink_metadata(&path)) {
            (Ok(held), Ok(now)) => held.ino() == now.ino() && held.dev() == now.dev(),
            _ => false,
        };
        if !same {
            drop(file);
            return self.lock_job(job_id);
        }
        Ok(JobLock {
            _file: file,
            path,
            job_id,
        })
    }

    /// Removes the job's lock file when the job holds no lease here (an acquisition that
    /// failed, or everything released), so no file is left behind for ever. Call with the lock
    /// held.
    pub fn forget_job_if_empty(&self, lock: &JobLock) {
        if self.leases(lock.job_id).is_ok_and(|l| l.is_empty()) {
            let _ = fs::remove_file(&lock.path);
        }
    }

    /// Records a fresh acquisition (replaces an earlier record of the same job and QPU).
    pub fn record_acquired(
        &self,
        job_id: u32,
        qpu: &str,
        kind: &str,
        token: &str,
        uid: u32,
    ) -> Result<Lease> {
        self.record_acquired_with(job_id, qpu, kind, token, uid, BTreeMap::new())
    }

    /// [`Self::record_acquired`], keeping the keys the job brought (for the release).
    pub fn record_acquired_with(
        &self,
        job_id: u32,
        qpu: &str,
        kind: &str,
        token: &str,
        uid: u32,
        job_environment: BTreeMap<String, String>,
    ) -> Result<Lease> {
        let lease = Lease {
            job_id,
            qpu: qpu.to_string(),
            kind: kind.to_string(),
            token: token.to_string(),
            uid,
            acquired_at: unix_secs(),
            state: LeaseState::Held,
            released_at: None,
            release_attempts: 0,
            last_error: None,
            job_environment,
        };
        self.write(&lease)?;
        Ok(lease)
    }

    /// One lease, if recorded.
    pub fn get(&self, job_id: u32, qpu: &str) -> Result<Option<Lease>> {
        let path = self.path(job_id, qpu)?;
        read_lease(&path)
    }

    /// The job's leases on this node, by QPU name.
    pub fn leases(&self, job_id: u32) -> Result<Vec<Lease>> {
        let prefix = format!("lease-{job_id}-");
        self.scan(|name| name.starts_with(&prefix))
    }

    /// Every lease on this node (e.g. to retry failed releases).
    pub fn all_leases(&self) -> Result<Vec<Lease>> {
        self.scan(|name| name.starts_with("lease-"))
    }

    fn scan(&self, wanted: impl Fn(&str) -> bool) -> Result<Vec<Lease>> {
        let entries = fs::read_dir(&self.dir)
            .map_err(|e| LeaseError(format!("{}: cannot list: {e}", self.dir.display())))?;
        let mut leases = Vec::new();
        for entry in entries {
            let entry = entry
                .map_err(|e| LeaseError(format!("{}: cannot list: {e}", self.dir.display())))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if !wanted(name) || !name.ends_with(".json") {
                continue;
            }
            if let Some(lease) = read_lease(&entry.path())? {
                leases.push(lease);
            }
        }
        leases.sort_by(|a, b| (a.job_id, &a.qpu).cmp(&(b.job_id, &b.qpu)));
        Ok(leases)
    }

    /// Records a release attempt. A failure keeps the lease (`ReleaseFailed`) for a retry.
    pub fn mark_released(&self, job_id: u32, qpu: &str, outcome: &ReleaseOutcome) -> Result<Lease> {
        let path = self.path(job_id, qpu)?;
        let mut lease = read_lease(&path)?.ok_or_else(|| {
            LeaseError(format!(
                "no lease of QPU {qpu} for job {job_id} in {}",
                self.dir.display()
            ))
        })?;
        lease.release_attempts = lease.release_attempts.saturating_add(1);
        match outcome {
            ReleaseOutcome::Released => {
                lease.state = LeaseState::Released;
                lease.released_at = Some(unix_secs());
                lease.last_error = None;
            }
            ReleaseOutcome::Failed(why) => {
                lease.state = LeaseState::ReleaseFailed;
                lease.last_error = Some(why.clone());
            }
        }
        self.write(&lease)?;
        Ok(lease)
    }

    fn role_file(&self, job_id: u32, role: Role, who: ProcessId) -> PathBuf {
        self.dir.join(format!(
            "{}-{job_id}-{}-{}",
            role.prefix(),
            who.pid,
            who.start_ticks
        ))
    }

    /// Records that `who` uses the job's leases in `role` (until [`Self::unregister`] or its
    /// death). Not fsynced: after a crash of the node no registered process is alive anyway.
    pub fn register(&self, job_id: u32, role: Role, who: ProcessId) -> Result<()> {
        let path = self.role_file(job_id, role, who);
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&path)
        {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
            Err(e) => Err(LeaseError(format!(
                "{}: cannot create: {e}",
                path.display()
            ))),
        }
    }

    pub fn unregister(&self, job_id: u32, role: Role, who: ProcessId) {
        let _ = fs::remove_file(self.role_file(job_id, role, who));
    }

    /// The registered processes of the job in `role` that still run; the files of those that
    /// died are removed on the way.
    pub fn live(&self, job_id: u32, role: Role) -> Vec<ProcessId> {
        let prefix = format!("{}-{job_id}-", role.prefix());
        let Ok(entries) = fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut alive = Vec::new();
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(&prefix)) else {
                continue;
            };
            let who = rest.split_once('-').and_then(|(pid, start)| {
                Some(ProcessId {
                    pid: pid.parse().ok()?,
                    start_ticks: start.parse().ok()?,
                })
            });
            match who {
                Some(who) if who.is_alive() => alive.push(who),
                _ => {
                    let _ = fs::remove_file(entry.path());
                }
            }
        }
        alive
    }

    /// Jobs with a lease on this node that is not released yet (held or release_failed).
    pub fn jobs_holding(&self) -> Result<Vec<u32>> {
        let mut jobs: Vec<u32> = self
            .all_leases()?
            .into_iter()
            .filter(|l| l.state != LeaseState::Released)
            .map(|l| l.job_id)
            .collect();
        jobs.dedup();
        Ok(jobs)
    }

    /// Removes one lease file (its QPU given back). Not made durable: see
    /// `acquire::forget_released` for why a lost removal is safe. Absent is success.
    pub fn remove(&self, job_id: u32, qpu: &str) -> Result<()> {
        let path = self.path(job_id, qpu)?;
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(LeaseError(format!(
                "{}: cannot remove: {e}",
                path.display()
            ))),
        }
    }

    /// Removes the job's lease files (after every one is released).
    pub fn remove_job(&self, job_id: u32) -> Result<()> {
        for lease in self.leases(job_id)? {
            self.remove(job_id, &lease.qpu)?;
        }
        let _ = fs::remove_file(self.dir.join(format!("lock-{job_id}")));
        Ok(())
    }

    /// Crash-safe (host_io: temp file `O_EXCL|O_NOFOLLOW` created 0600, fsync, rename, fsync
    /// of the directory): a lease is the only record of a QPU to give back.
    fn write(&self, lease: &Lease) -> Result<()> {
        let path = self.path(lease.job_id, &lease.qpu)?;
        let data = serde_json::to_vec_pretty(lease)
            .map_err(|e| LeaseError(format!("{}: cannot encode: {e}", path.display())))?;
        host_io::write_atomic_mode(&path, &data, 0o600)
            .map_err(|e| LeaseError(format!("{}: cannot write: {e}", path.display())))
    }
}

/// A lease file (at most 1 MiB, a regular file, a final symlink not followed); None if absent.
fn read_lease(path: &Path) -> Result<Option<Lease>> {
    let bytes = match host_io::read_regular_nofollow(path, 1024 * 1024) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(LeaseError(e.to_string())),
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| LeaseError(format!("{}: corrupt lease record: {e}", path.display())))
}

#[cfg(test)]
mod tests;
