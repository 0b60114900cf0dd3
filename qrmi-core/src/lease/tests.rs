//! Unit tests of `lease.rs`.
use super::*;
use crate::accounting::tests::temp_dir;
use std::os::unix::fs::PermissionsExt;

#[test]
fn registered_processes_count_while_they_live() {
    let (store, base) = store();
    let me = ProcessId::current().unwrap();
    store.register(7, Role::Step, me).unwrap();
    store.register(7, Role::Step, me).unwrap();
    let gone = ProcessId {
        pid: me.pid,
        start_ticks: me.start_ticks + 1,
    };
    store.register(7, Role::Step, gone).unwrap();
    store.register(8, Role::Keeper, gone).unwrap();
    assert_eq!(store.live(7, Role::Step), vec![me]);
    assert!(store.live(7, Role::Keeper).is_empty());
    assert!(store.live(8, Role::Keeper).is_empty());
    // The dead ones' files are gone, the living one's stays until it unregisters.
    let names = || -> Vec<String> {
        fs::read_dir(store.dir())
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect()
    };
    assert_eq!(
        names(),
        vec![format!("step-7-{}-{}", me.pid, me.start_ticks)]
    );
    store.unregister(7, Role::Step, me);
    assert!(names().is_empty());
    fs::remove_dir_all(base).unwrap();
}

#[test]
fn jobs_holding_lists_unreleased_leases_once_per_job() {
    let (store, base) = store();
    store
        .record_acquired(5, "a", "direct-access", "t", 1)
        .unwrap();
    store
        .record_acquired(5, "b", "direct-access", "t", 1)
        .unwrap();
    store
        .record_acquired(6, "a", "direct-access", "t", 1)
        .unwrap();
    store
        .mark_released(6, "a", &ReleaseOutcome::Released)
        .unwrap();
    assert_eq!(store.jobs_holding().unwrap(), vec![5]);
    fs::remove_dir_all(base).unwrap();
}

fn store() -> (LeaseStore, PathBuf) {
    let base = temp_dir("lease");
    let dir = base.join("state");
    (LeaseStore::open(&dir).unwrap(), base)
}

// Issue 15 item 9: two clusters (or two slurmd of one cluster) on one host get different
// default directories, so job 7 of one never releases job 7 of the other.
#[test]
fn default_state_dir_is_keyed_by_cluster_and_node() {
    let a = state_dir_for(None, "pi", "c1");
    assert_eq!(a, Path::new("/var/spool/slurm/spank_qrmi/pi/c1"));
    assert_ne!(a, state_dir_for(None, "pi", "q1"));
    assert_ne!(a, state_dir_for(None, "other", "c1"));
    assert_eq!(
        state_dir_for(Some(Path::new("/s/%c/%n")), "pi", "q1"),
        Path::new("/s/pi/q1")
    );
    assert_eq!(
        state_dir_for(None, "..", "a/b"),
        Path::new("/var/spool/slurm/spank_qrmi/_/_")
    );
}

#[test]
fn a_lock_removed_by_its_holder_is_not_shared_afterwards() {
    let (store, base) = store();
    let first = store.lock_job(9).unwrap();
    store.forget_job_if_empty(&first);
    assert!(!store.dir().join("lock-9").exists());
    drop(first);
    let second = store.lock_job(9).unwrap();
    assert!(store.dir().join("lock-9").exists());
    drop(second);
    fs::remove_dir_all(base).unwrap();
}

#[test]
fn creates_the_directory_0700() {
    let (store, base) = store();
    let mode = fs::metadata(store.dir()).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o700);
    // Opening again is fine.
    LeaseStore::open(store.dir()).unwrap();
    fs::remove_dir_all(base).unwrap();
}

#[test]
fn refuses_unsafe_directories() {
    let base = temp_dir("lease-bad");
    let open = fs::create_dir(base.join("open"))
        .and_then(|_| fs::set_permissions(base.join("open"), fs::Permissions::from_mode(0o755)));
    open.unwrap();
    let e = LeaseStore::open(&base.join("open"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("mode 0755") && e.contains("chmod 700"), "{e}");
    fs::create_dir(base.join("real")).unwrap();
    fs::set_permissions(base.join("real"), fs::Permissions::from_mode(0o700)).unwrap();
    std::os::unix::fs::symlink(base.join("real"), base.join("link")).unwrap();
    let e = LeaseStore::open(&base.join("link"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("symbolic link"), "{e}");
    fs::write(base.join("file"), "").unwrap();
    let e = LeaseStore::open(&base.join("file"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("not a directory"), "{e}");
    let e = LeaseStore::open(Path::new("relative/dir"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("absolute"), "{e}");
    // Owned by someone else: only testable as root (chown); the check itself is the uid
    // comparison above.
    // SAFETY: geteuid has no preconditions.
    if host_io::effective_uid() == 0 {
        let other = base.join("other");
        fs::create_dir(&other).unwrap();
        fs::set_permissions(&other, fs::Permissions::from_mode(0o700)).unwrap();
        std::os::unix::fs::chown(&other, Some(65534), None).unwrap();
        let e = LeaseStore::open(&other).unwrap_err().to_string();
        assert!(e.contains("owned by uid 65534"), "{e}");
    }
    fs::remove_dir_all(base).unwrap();
}

#[test]
fn record_list_release_and_remove() {
    let (store, base) = store();
    store
        .record_acquired(
            42,
            "ibm_torino",
            "ibm-quantum-compute-service",
            "sess-1",
            1000,
        )
        .unwrap();
    store
        .record_acquired(42, "FRESNEL", "pasqal-local", "w-2", 1000)
        .unwrap();
    store
        .record_acquired(420, "FRESNEL", "pasqal-local", "w-3", 1001)
        .unwrap();
    let leases = store.leases(42).unwrap();
    assert_eq!(
        leases.iter().map(|l| l.qpu.as_str()).collect::<Vec<_>>(),
        ["FRESNEL", "ibm_torino"]
    );
    assert!(
        leases
            .iter()
            .all(|l| l.state == LeaseState::Held && l.uid == 1000)
    );
    assert_eq!(leases[1].token, "sess-1");
    let mode = fs::metadata(store.dir().join("lease-42-FRESNEL.json"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);

    // A failed release is kept, with the reason, for a retry.
    let l = store
        .mark_released(42, "ibm_torino", &ReleaseOutcome::Failed("HTTP 503".into()))
        .unwrap();
    assert_eq!(
        (l.state, l.release_attempts),
        (LeaseState::ReleaseFailed, 1)
    );
    let again = store.get(42, "ibm_torino").unwrap().unwrap();
    assert_eq!(again.last_error.as_deref(), Some("HTTP 503"));
    let l = store
        .mark_released(42, "ibm_torino", &ReleaseOutcome::Released)
        .unwrap();
    assert_eq!((l.state, l.release_attempts), (LeaseState::Released, 2));
    assert!(l.released_at.is_some() && l.last_error.is_none());
    assert!(
        store
            .mark_released(7, "ibm_torino", &ReleaseOutcome::Released)
            .is_err()
    );

    assert_eq!(store.all_leases().unwrap().len(), 3);
    store.remove_job(42).unwrap();
    assert!(store.leases(42).unwrap().is_empty());
    assert_eq!(store.leases(420).unwrap().len(), 1);
    // No temporary files left behind.
    let names: Vec<_> = fs::read_dir(store.dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(names.iter().all(|n| !n.contains(".tmp")), "{names:?}");
    fs::remove_dir_all(base).unwrap();
}

#[test]
fn names_cannot_escape_the_directory() {
    let (store, base) = store();
    for bad in ["../x", "a/b", "", ".", "..", ".x", "a b"] {
        let e = store
            .record_acquired(1, bad, "pasqal-local", "t", 0)
            .unwrap_err()
            .to_string();
        assert!(e.contains("not valid for a lease file"), "{bad}: {e}");
        assert!(store.get(1, bad).is_err());
    }
    assert!(!base.join("x").exists());
    fs::remove_dir_all(base).unwrap();
}

#[test]
fn does_not_follow_a_planted_symlink() {
    let (store, base) = store();
    let target = base.join("victim");
    fs::write(&target, "keep").unwrap();
    std::os::unix::fs::symlink(&target, store.dir().join("lease-5-q.json")).unwrap();
    assert!(store.get(5, "q").is_err());
    // Writing replaces the link itself (rename), never writes through it.
    store
        .record_acquired(5, "q", "pasqal-local", "t", 0)
        .unwrap();
    assert_eq!(fs::read_to_string(&target).unwrap(), "keep");
    assert_eq!(store.get(5, "q").unwrap().unwrap().token, "t");
    fs::remove_dir_all(base).unwrap();
}

#[test]
fn job_lock_excludes_other_holders() {
    let (store, base) = store();
    let lock = store.lock_job(9).unwrap();
    let dir = store.dir().to_path_buf();
    let (tx, rx) = std::sync::mpsc::channel();
    let t = std::thread::spawn(move || {
        let store = LeaseStore::open(&dir).unwrap();
        let _l = store.lock_job(9).unwrap();
        tx.send(()).unwrap();
    });
    assert!(
        rx.recv_timeout(std::time::Duration::from_millis(200))
            .is_err()
    );
    drop(lock);
    rx.recv_timeout(std::time::Duration::from_secs(5)).unwrap();
    t.join().unwrap();
    fs::remove_dir_all(base).unwrap();
}

#[test]
fn debug_redacts_the_token() {
    let (store, base) = store();
    let l = store
        .record_acquired(1, "q", "pasqal-local", "TOKEN-SECRET", 0)
        .unwrap();
    assert!(!format!("{l:?}").contains("TOKEN-SECRET"));
    fs::remove_dir_all(base).unwrap();
}
