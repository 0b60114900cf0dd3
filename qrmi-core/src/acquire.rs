//! Acquisition and release of a job's QPUs, all or nothing, with leases and accounting.
//! Generic over how a backend is made, so tests drive it with fakes or a loopback server.
use std::time::Duration;

use crate::accounting::{self, Event, Outcome, Record};
use crate::backend::{AcquireContext, Backend, BackendError};
use crate::config::{Config, Resource, ResourceType};
use crate::jobenv::AcquiredQpu;
use crate::lease::{Lease, LeaseState, LeaseStore, ReleaseOutcome};

/// Makes the backend of one resource.
pub type MakeBackend<'a> = &'a dyn Fn(&Resource) -> Result<Box<dyn Backend>, BackendError>;

/// Where this node keeps leases and the accounting log.
pub struct Node<'a> {
    pub name: &'a str,
    pub store: &'a LeaseStore,
}

/// How often and how patiently a release is retried before it is recorded as failed.
#[derive(Debug, Clone, Copy)]
pub struct Retry {
    pub attempts: u32,
    pub first_delay: Duration,
}

impl Default for Retry {
    fn default() -> Self {
        Retry {
            attempts: 3,
            first_delay: Duration::from_millis(500),
        }
    }
}

fn account(node: &Node<'_>, record: &Record) {
    let path = accounting::accounting_path(node.store.dir());
    if let Err(e) = accounting::append(&path, record) {
        tracing::error!("cannot append to {}: {e}", path.display());
    }
}

/// The accounting line of one acquisition (`error` None = it worked).
fn acquire_record(
    node: &Node<'_>,
    job: &AcquireContext,
    resource: &Resource,
    time: u64,
    error: Option<String>,
) -> Record {
    Record {
        event: Event::Acquire,
        job: job.job_id,
        uid: job.uid,
        node: node.name.to_string(),
        qpu: resource.name.clone(),
        kind: resource.type_name.clone(),
        time_acquired: time,
        time_released: None,
        outcome: if error.is_none() {
            Outcome::Ok
        } else {
            Outcome::Failed
        },
        error,
    }
}

fn unknown(config: &Config, name: &str) -> String {
    config.unusable_reason(name).unwrap_or_else(|| {
        format!(
            "unknown QPU '{name}': available QPUs are {} (from {})",
            config.names().join(", "),
            config.path.display()
        )
    })
}

/// Acquires every QPU in `names` for the job, reusing leases an earlier step of the same job
/// holds on this node. On any failure, releases what this call acquired and returns why.
pub fn acquire_all(
    config: &Config,
    node: &Node<'_>,
    job: &AcquireContext,
    names: &[String],
    make: MakeBackend<'_>,
    retry: Retry,
) -> Result<Vec<AcquiredQpu>, String> {
    let lock = node.store.lock_job(job.job_id).map_err(|e| e.to_string())?;
    let result = acquire_locked(config, node, job, names, make, retry);
    if result.is_err() {
        // Nothing is held: no release will find a lease, so none would remove the lock.
        node.store.forget_job_if_empty(&lock);
    }
    result
}

fn acquire_locked(
    config: &Config,
    node: &Node<'_>,
    job: &AcquireContext,
    names: &[String],
    make: MakeBackend<'_>,
    retry: Retry,
) -> Result<Vec<AcquiredQpu>, String> {
    let mut acquired = Vec::new();
    let mut fresh: Vec<(&Resource, String)> = Vec::new();
    for name in names {
        let Some(resource) = config.get(name) else {
            rollback(node, job, &fresh, make, retry);
            return Err(unknown(config, name));
        };
        if let Ok(Some(lease)) = node.store.get(job.job_id, name)
            && lease.state == LeaseState::Held
        {
            acquired.push(AcquiredQpu {
                name: name.clone(),
                kind: resource.kind,
                type_name: resource.type_name.clone(),
                environment: resource.environment.clone(),
                token: lease.token,
            });
            continue;
        }
        // Kept until the lease is recorded: a helper process exits meanwhile (finish), and
        // gives the session back if the lease cannot be written.
        let backend = make(resource);
        let attempt = backend.as_ref().map_err(Clone::clone).and_then(|backend| {
            if !backend.check_accessible()? {
                return Err(BackendError {
                    qpu: resource.name.clone(),
                    kind: resource.kind,
                    operation: crate::backend::Operation::StatusCheck,
                    message: "the QPU is not accessible now".into(),
                    transient: true,
                });
            }
            let token = backend.acquire(job);
            if token.is_ok() && !resource.kind.has_session() {
                backend.finish();
            }
            token
        });
        let now = spank::host::unix_secs();
        let token = match attempt {
            Ok(token) => token,
            Err(e) => {
                account(
                    node,
                    &acquire_record(node, job, resource, now, Some(e.to_string())),
                );
                rollback(node, job, &fresh, make, retry);
                return Err(e.to_string());
            }
        };
        if let Err(e) = node.store.record_acquired_with(
            job.job_id,
            name,
            &resource.type_name,
            &token,
            job.uid,
            brought_by_job(resource),
        ) {
            // Without a lease no later release could find it: give it back now.
            let _ = release_with_retry(&backend, &token, retry);
            rollback(node, job, &fresh, make, retry);
            return Err(format!("QPU {name}: cannot record the lease: {e}"));
        }
        if let Ok(backend) = &backend {
            backend.finish();
        }
        account(node, &acquire_record(node, job, resource, now, None));
        drop(backend);
        fresh.push((resource, token.clone()));
        acquired.push(AcquiredQpu {
            name: name.clone(),
            kind: resource.kind,
            type_name: resource.type_name.clone(),
            environment: resource.environment.clone(),
            token,
        });
    }
    Ok(acquired)
}

/// The values of the keys the job brought for `resource` (to be able to release it later).
fn brought_by_job(resource: &Resource) -> std::collections::BTreeMap<String, String> {
    resource
        .from_job
        .iter()
        .filter_map(|k| resource.environment.get(k).map(|v| (k.clone(), v.clone())))
        .collect()
}

/// Releases `token` with `backend`, retrying transient failures. One backend for every
/// attempt: its keep-alive connections and IAM token (while valid) serve them all. It cannot
/// be made only for a reason a retry would not cure (config).
fn release_with_retry(
    backend: &Result<Box<dyn Backend>, BackendError>,
    token: &str,
    retry: Retry,
) -> Result<(), String> {
    let backend = backend.as_ref().map_err(|e| format!("{e} (1 attempt)"))?;
    let mut delay = retry.first_delay;
    let mut last = String::new();
    let mut tried = 0;
    for attempt in 1..=retry.attempts.max(1) {
        tried = attempt;
        match backend.release(token) {
            Ok(()) => return Ok(()),
            Err(e) => {
                last = e.to_string();
                if !e.transient || attempt == retry.attempts.max(1) {
                    break;
                }
                std::thread::sleep(delay);
                delay = delay.saturating_mul(2);
            }
        }
    }
    // The lease and the accounting line keep this text: say how often it was tried, so a
    // retried failure can be told from one that was not worth retrying.
    Err(format!(
        "{last} ({tried} attempt{})",
        if tried == 1 { "" } else { "s" }
    ))
}

fn rollback(
    node: &Node<'_>,
    job: &AcquireContext,
    fresh: &[(&Resource, String)],
    make: MakeBackend<'_>,
    retry: Retry,
) {
    for (resource, _) in fresh {
        release_lease(node, job.job_id, resource, make, retry, Released::Record);
    }
}

/// What becomes of a lease once its QPU is given back.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Released {
    /// Rewritten as released (an acquisition rolled back: the job's later steps and its end
    /// see that nothing is held).
    Record,
    /// Removed (the job's end).
    Remove,
}

/// A released lease at the job's end: its file is unlinked, neither rewritten nor the
/// directory fsynced. Why that is crash-safe: if a crash loses the unlink, the lease comes
/// back as it was last written (held, fsynced at acquisition) and is released once more;
/// every backend's release is idempotent (a session already gone counts as released), so the
/// worst case is one extra request. Rewriting it first (two fsyncs) protected nothing more.
/// If it cannot be removed, it is recorded as released instead.
fn forget_released(node: &Node<'_>, job_id: u32, qpu: &str) {
    if node.store.remove(job_id, qpu).is_err()
        && let Err(e) = node
            .store
            .mark_released(job_id, qpu, &ReleaseOutcome::Released)
    {
        tracing::error!("job {job_id}: {e}");
    }
}

/// Releases one recorded lease and records the outcome (lease state and accounting).
fn release_lease(
    node: &Node<'_>,
    job_id: u32,
    resource: &Resource,
    make: MakeBackend<'_>,
    retry: Retry,
    released: Released,
) -> bool {
    let Ok(Some(lease)) = node.store.get(job_id, &resource.name) else {
        return true;
    };
    if lease.state == LeaseState::Released {
        return true;
    }
    let backend = make(resource);
    let outcome = release_with_retry(&backend, &lease.token, retry);
    // Its helper process exits while the outcome is recorded; reaped at the end.
    if let Ok(backend) = &backend {
        backend.finish();
    }
    let result = match &outcome {
        Ok(()) => ReleaseOutcome::Released,
        Err(why) => ReleaseOutcome::Failed(why.clone()),
    };
    if result == ReleaseOutcome::Released && released == Released::Remove {
        forget_released(node, job_id, &resource.name);
    } else if let Err(e) = node.store.mark_released(job_id, &resource.name, &result) {
        tracing::error!("job {job_id}: {e}");
    }
    account_release(node, &lease, &resource.type_name, outcome.err());
    matches!(result, ReleaseOutcome::Released)
}

/// The accounting line of a release: `error` None when it worked.
fn account_release(node: &Node<'_>, lease: &Lease, kind: &str, error: Option<String>) {
    account(
        node,
        &Record {
            event: Event::Release,
            job: lease.job_id,
            uid: lease.uid,
            node: node.name.to_string(),
            qpu: lease.qpu.clone(),
            kind: kind.to_owned(),
            time_acquired: lease.acquired_at,
            time_released: Some(spank::host::unix_secs()),
            outcome: if error.is_none() {
                Outcome::Ok
            } else {
                Outcome::Failed
            },
            error,
        },
    );
}

/// Releases every lease the job holds on this node (at the job's end). Failed releases stay
/// recorded (state release_failed, accounting line) for the admin or a later retry; released
/// ones are removed. Returns (released, failed) counts.
pub fn release_job(
    config: Option<&Config>,
    node: &Node<'_>,
    job_id: u32,
    make: MakeBackend<'_>,
    retry: Retry,
) -> (usize, usize) {
    if node.store.leases(job_id).is_ok_and(|l| l.is_empty()) {
        return (0, 0);
    }
    // Read under the lock: a batch step's exit and the job's keeper may both get here, and
    // the second must see what the first released.
    let _lock = node.store.lock_job(job_id);
    let Ok(leases) = node.store.leases(job_id) else {
        return (0, 0);
    };
    let (mut released, mut failed) = (0, 0);
    for lease in leases.iter().filter(|l| l.state != LeaseState::Released) {
        match config.and_then(|c| c.get(&lease.qpu)) {
            Some(resource) => {
                // The keys the job brought at acquisition, for a QPU the site left them to.
                let mut resource = resource.clone();
                for (key, value) in &lease.job_environment {
                    if resource.get(key).is_none() || resource.user_keys.contains(key) {
                        resource.environment.insert(key.clone(), value.clone());
                    }
                }
                if release_lease(node, job_id, &resource, make, retry, Released::Remove) {
                    released += 1;
                } else {
                    failed += 1;
                }
            }
            // A token of ours (every type but the session ones, unknown types included):
            // nothing to give back at the backend, so nothing can fail, whatever the config
            // says now (the admin removed or renamed the QPU, or the file is unreadable).
            None if !ResourceType::parse(&lease.kind).is_some_and(ResourceType::has_session) => {
                forget_released(node, job_id, &lease.qpu);
                account_release(node, lease, &lease.kind, None);
                released += 1;
            }
            None => {
                let why = format!(
                    "QPU {} is no longer in the configuration: cannot release it",
                    lease.qpu
                );
                let _ = node.store.mark_released(
                    job_id,
                    &lease.qpu,
                    &ReleaseOutcome::Failed(why.clone()),
                );
                tracing::error!("job {job_id}: {why}");
                failed += 1;
            }
        }
    }
    if failed == 0 {
        let _ = node.store.remove_job(job_id);
    }
    (released, failed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::{Operation, Result};
    use std::cell::Cell;
    use std::path::Path;
    use std::rc::Rc;

    struct Flaky {
        calls: Rc<Cell<u32>>,
        transient: bool,
    }

    impl Backend for Flaky {
        fn check_accessible(&self) -> Result<bool> {
            Ok(true)
        }
        fn acquire(&self, _: &AcquireContext) -> Result<String> {
            Ok("t".into())
        }
        fn release(&self, _: &str) -> Result<()> {
            self.calls.set(self.calls.get() + 1);
            Err(BackendError {
                qpu: "q".into(),
                kind: ResourceType::PasqalLocal,
                operation: Operation::Release,
                message: "connection refused".into(),
                transient: self.transient,
            })
        }
    }

    fn release(transient: bool) -> (u32, String) {
        let calls = Rc::new(Cell::new(0));
        let resource = Resource {
            name: "q".into(),
            kind: ResourceType::PasqalLocal,
            type_name: "pasqal-local".into(),
            user_keys: Vec::new(),
            from_job: Vec::new(),
            environment: Default::default(),
            is_dynamic: false,
            status_check: false,
            status_endpoint: None,
        };
        let make = |_: &Resource| -> Result<Box<dyn Backend>> {
            Ok(Box::new(Flaky {
                calls: Rc::clone(&calls),
                transient,
            }))
        };
        let retry = Retry {
            attempts: 3,
            first_delay: Duration::from_millis(1),
        };
        let e = release_with_retry(&make(&resource), "t", retry).unwrap_err();
        (calls.get(), e)
    }

    struct Offline;

    impl Backend for Offline {
        fn check_accessible(&self) -> Result<bool> {
            Ok(false)
        }
        fn acquire(&self, _: &AcquireContext) -> Result<String> {
            Ok("t".into())
        }
        fn release(&self, _: &str) -> Result<()> {
            Ok(())
        }
    }

    // Issue 15 item 9: a job whose acquisition failed left an empty lock-<job> for ever (the
    // epilog finds no lease and returns at once).
    #[test]
    fn a_failed_acquisition_leaves_no_file_behind() {
        let dir = std::env::temp_dir().join(format!("qrmi-acq-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = LeaseStore::open(&dir).unwrap();
        let config = Config::parse(
            Path::new("/q.json"),
            r#"{"resources": [{"name": "w", "type": "pasqal-local",
                "environment": {"QRMI_WARDEN_URL": "http://127.0.0.1:1"}}]}"#,
        )
        .unwrap();
        let make = |_: &Resource| -> Result<Box<dyn Backend>> { Ok(Box::new(Offline)) };
        let job = AcquireContext {
            job_id: 41,
            uid: 1000,
            time_limit_secs: None,
        };
        let node = Node {
            name: "q1",
            store: &store,
        };
        let e =
            acquire_all(&config, &node, &job, &["w".into()], &make, Retry::default()).unwrap_err();
        assert!(e.contains("not accessible"), "{e}");
        let left: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n != "accounting.jsonl")
            .collect();
        assert!(left.is_empty(), "{left:?}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    // A token-only QPU the admin removed from the config (or renamed) while a job held it:
    // there is nothing to give back, so its release cannot fail. Before: release_failed for
    // ever, the lease and lock files kept, an error in slurmd's log at every job end.
    #[test]
    fn a_token_only_qpu_gone_from_the_config_is_released_a_session_is_not() {
        let dir = std::env::temp_dir().join(format!("qrmi-gone-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = LeaseStore::open(&dir).unwrap();
        store
            .record_acquired(7, "oq", "oqtopus", "t1", 1000)
            .unwrap();
        store
            .record_acquired(7, "future", "quantum-2030", "t2", 1000)
            .unwrap();
        let node = Node {
            name: "q1",
            store: &store,
        };
        let make = |_: &Resource| -> Result<Box<dyn Backend>> { Ok(Box::new(Offline)) };
        let empty = Config::parse(Path::new("/q.json"), r#"{"resources": []}"#).unwrap();
        assert_eq!(
            release_job(Some(&empty), &node, 7, &make, Retry::default()),
            (2, 0)
        );
        assert!(store.leases(7).unwrap().is_empty());
        assert!(!dir.join("lock-7").exists());
        // A session still open at the backend cannot be released without its config.
        store
            .record_acquired(8, "w", "pasqal-local", "s", 1000)
            .unwrap();
        assert_eq!(release_job(None, &node, 8, &make, Retry::default()), (0, 1));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_failed_release_records_how_often_it_was_tried() {
        let (calls, e) = release(true);
        assert_eq!(calls, 3);
        assert!(e.ends_with("connection refused (3 attempts)"), "{e}");
        let (calls, e) = release(false);
        assert_eq!(calls, 1);
        assert!(e.ends_with("(1 attempt)"), "{e}");
    }
}
