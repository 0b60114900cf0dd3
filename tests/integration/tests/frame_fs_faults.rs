//! The frame directory's file system fails under a job: it is full, or it is read-only. A small
//! ext4 image (mkfs.ext4 -m 0: no blocks reserved for root, so root is refused as well) is
//! loop-mounted inside the cluster's shared directory. Each node has its own mount namespace
//! (and its own GlusterFS client for the shared directory), so the one loop device is mounted
//! there in the host's namespace and in every node's (one file system, one superblock: what a
//! task on a node sees is what the test sees). What must hold: the tasks fail, the reason is shown to the user
//! (srun's stderr, from slurmstepd) and in the node's log, the records written before are
//! byte-for-byte intact, nothing hangs and no node is drained.
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use integration_tests::{Cluster, Run};
use reliability::report;
use spank_test_support::reliability;

const TEST: &str = "frame_dir_file_system_full_or_read_only";

/// The loop-mounted file system; unmounted (lazily, in case a task still holds it) on drop.
struct LoopFs {
    image: PathBuf,
    device: String,
    mount: PathBuf,
    /// The nodes' mount namespaces (files under SPANK_NODE_NS_DIR) it is mounted in too.
    node_namespaces: Vec<PathBuf>,
}

/// `mount ARGS` in the host's mount namespace, then in every one of `namespaces`. A node sees
/// the mount point the host just made through its own GlusterFS client, whose lookups may lag
/// the host's by its cache timeouts: each node's mount is retried for up to 10 s.
fn mount_everywhere(cluster: &Cluster, namespaces: &[PathBuf], args: &[&str]) {
    let run = cluster.as_root("mount", args);
    assert!(run.ok(), "mount {args:?}: {run:?}");
    for ns in namespaces {
        let ns_arg = format!("--mount={}", ns.display());
        let mut nsenter = vec![ns_arg.as_str(), "mount"];
        nsenter.extend_from_slice(args);
        let start = Instant::now();
        let run = loop {
            let run = cluster.as_root("nsenter", &nsenter);
            if run.ok() || start.elapsed() > Duration::from_secs(10) {
                break run;
            }
            std::thread::sleep(Duration::from_millis(200));
        };
        assert!(
            run.ok(),
            "mount {args:?} in {} (retried for 10 s): {run:?}",
            ns.display()
        );
    }
}

impl LoopFs {
    fn new(cluster: &Cluster, name: &str, mib: u32) -> LoopFs {
        let base = cluster.scratch().join(format!("{name}.img"));
        let mount = cluster.shared_dir().join(name);
        let _ = cluster.as_root("umount", &["-l", mount.to_str().unwrap()]);
        let _ = std::fs::remove_file(&base);
        let run = cluster.as_root(
            "truncate",
            &["-s", &format!("{mib}M"), base.to_str().unwrap()],
        );
        assert!(run.ok(), "{run:?}");
        let run = cluster.as_root(
            "mkfs.ext4",
            &["-q", "-F", "-m", "0", base.to_str().unwrap()],
        );
        assert!(run.ok(), "mkfs.ext4: {run:?}");
        std::fs::create_dir_all(&mount).unwrap();
        // One loop device for every mount: two loop devices on one image would be two file
        // systems writing the same blocks.
        let run = cluster.as_root("losetup", &["-f", "--show", base.to_str().unwrap()]);
        assert!(run.ok(), "losetup: {run:?}");
        let device = run.stdout.trim().to_string();
        let node_namespaces: Vec<PathBuf> = cluster
            .var_opt("SPANK_NODE_NS_DIR")
            .map(|dir| {
                let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
                    .map(|d| d.flatten().map(|e| e.path()).collect())
                    .unwrap_or_default();
                // NODE (a namespace), not NODE.ready.
                files.retain(|p| p.extension().is_none());
                files.sort();
                files
            })
            .unwrap_or_default();
        let fs = LoopFs {
            image: base,
            device,
            mount,
            node_namespaces,
        };
        mount_everywhere(
            cluster,
            &fs.node_namespaces,
            &[&fs.device, fs.mount.to_str().unwrap()],
        );
        let owner = format!("{0}:{0}", cluster.user());
        let run = cluster.as_root("chown", &[&owner, fs.mount.to_str().unwrap()]);
        assert!(run.ok(), "{run:?}");
        let _ = std::fs::remove_dir_all(fs.mount.join("lost+found"));
        fs
    }

    fn remount(&self, cluster: &Cluster, how: &str) {
        let how = format!("remount,{how}");
        mount_everywhere(
            cluster,
            &self.node_namespaces,
            &["-o", &how, self.mount.to_str().unwrap()],
        );
    }
}

impl Drop for LoopFs {
    fn drop(&mut self) {
        for ns in &self.node_namespaces {
            let _ = std::process::Command::new("nsenter")
                .arg(format!("--mount={}", ns.display()))
                .args(["umount", "-l"])
                .arg(&self.mount)
                .status();
        }
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.mount)
            .status();
        let _ = std::process::Command::new("losetup")
            .args(["-d", &self.device])
            .status();
        let _ = std::fs::remove_dir(&self.mount);
        let _ = std::fs::remove_file(&self.image);
    }
}

/// Every record of DIR with its bytes, by name (segment lines named by their stem).
fn record_bytes(dir: &Path) -> Vec<(String, Vec<u8>)> {
    integration_tests::record_texts(dir)
}

fn srun(cluster: &Cluster, dir: &Path, script: &Path, tasks: u32) -> (Run, Duration) {
    srun_with(cluster, dir, script, tasks, &[])
}

fn srun_with(
    cluster: &Cluster,
    dir: &Path,
    script: &Path,
    tasks: u32,
    extra: &[&str],
) -> (Run, Duration) {
    let started = Instant::now();
    let frame_dir = format!("--frame-dir={}", dir.display());
    let tasks = tasks.to_string();
    let mut args = vec![
        "-p", "normal", "-N", "1", "-n", &tasks, "-t", "2", &frame_dir,
    ];
    args.extend_from_slice(extra);
    args.push(script.to_str().unwrap());
    let run = cluster.as_user("srun", &args);
    (run, started.elapsed())
}

/// The error lines srun showed (slurmstepd's and the tasks'), shortened for the table.
fn errors(run: &Run) -> String {
    let lines: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.contains("error") || l.contains("No space") || l.contains("Read-only"))
        .take(3)
        .collect();
    lines.join(" / ")
}

#[test]
#[ignore = "needs the test cluster: tests/run-all.sh"]
fn frame_dir_file_system_full_or_read_only() {
    // A container without loop devices cannot run this test: say so instead of failing.
    let loop_free = std::process::Command::new("losetup").arg("-f").output();
    if !loop_free.as_ref().is_ok_and(|o| o.status.success()) {
        eprintln!("skipped: no free loop device (losetup -f: {loop_free:?})");
        return;
    }
    reliability::start(TEST);
    let cluster = Cluster::connect();
    let work = cluster.user_dir("fsfault");
    let script = cluster.user_script(
        &work,
        "task.sh",
        // A 64 KiB frame, like a small image: it does not fit on the full file system.
        "#!/bin/sh\nhead -c 65536 /dev/urandom > \"$FRAME_PATH\" || exit 3\necho \"RESULT:{\\\"i\\\":$FRAME_INDEX}\"\n",
    );
    let fs = LoopFs::new(&cluster, "fsfault-mnt", 16);
    let dir = fs.mount.join("frames");

    // Before the fault: one step of 4 tasks, 4 records, merged.
    let (run, _) = srun(&cluster, &dir, &script, 4);
    assert!(run.ok(), "healthy step: {run:?}");
    let before = record_bytes(&dir);
    assert_eq!(before.len(), 4, "{before:?}");
    let manifest_before = std::fs::read(dir.join("manifest.jsonl")).expect("manifest");

    // Full: the user fills every block (dd ends with ENOSPC), then a second step runs.
    let filler = fs.mount.join("filler");
    let _ = cluster.as_user(
        "dd",
        &["if=/dev/zero", &format!("of={}", filler.display()), "bs=1k"],
    );
    // Again after a sync, for blocks ext4 released once the first fill was written back.
    let _ = cluster.as_root("sync", &[]);
    let _ = cluster.as_user(
        "dd",
        &[
            "if=/dev/zero",
            &format!("of={}", filler.display()),
            "bs=1k",
            "oflag=append",
            "conv=notrunc",
        ],
    );
    let df = cluster.as_root("df", &["--output=avail", "-B1", fs.mount.to_str().unwrap()]);
    let mut before = before;
    // Two ways a full file system meets a task: its frame is a new file (does not fit), or
    // it rewrites an existing frame in place (fits in the blocks it frees; the record is then
    // the first thing that does not fit).
    for (case, extra) in [
        ("new frame files", &["--frame-pattern=new_%04d.bin"][..]),
        ("frames rewritten in place", &[][..]),
    ] {
        let (run, took) = srun_with(&cluster, &dir, &script, 2, extra);
        let after = record_bytes(&dir);
        let kept = before.iter().all(|b| after.contains(b));
        // Records that did get written say what happened.
        let new_records: Vec<String> = after
            .iter()
            .filter(|a| !before.contains(a))
            .map(|(_, bytes)| {
                let r: serde_json::Value = serde_json::from_slice(bytes).expect("torn record");
                format!(
                    "{} ({}, frame {} bytes)",
                    r["status"], r["reason"], r["frame_size"]
                )
            })
            .collect();
        let manifest = std::fs::read_to_string(dir.join("manifest.jsonl")).unwrap_or_default();
        let manifest_whole = manifest
            .lines()
            .all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok());
        report(
            "fault: frame dir file system",
            &format!(
                "frame dir on a full file system (16 MiB ext4, no root reserve), {case}: a step of 2 tasks writing 64 KiB frames after a step of 4 that finished"
            ),
            &format!(
                "srun rc {:?} after {:.1} s: {}",
                run.code,
                took.as_secs_f64(),
                errors(&run)
            ),
            &format!(
                "earlier records byte-identical: {kept}; new records: {}; manifest unchanged: {}, every line whole: {manifest_whole} (free bytes before: {})",
                if new_records.is_empty() {
                    "none (the error names the record path)".to_string()
                } else {
                    new_records.join(", ")
                },
                manifest.as_bytes() == manifest_before.as_slice(),
                df.stdout.lines().last().unwrap_or("?").trim()
            ),
            TEST,
        );
        if extra.is_empty() {
            // The task itself succeeded: Slurm's exit code is the task's; the lost record
            // is reported on srun's stderr and in the node log.
        } else {
            assert!(
                !run.ok(),
                "{case}: tasks succeeded on a full file system: {run:?}"
            );
        }
        assert!(
            run.stderr.contains("No space left on device"),
            "{case}: the reason is not shown: {run:?}"
        );
        assert!(
            kept,
            "{case}: earlier records changed: {before:?} vs {after:?}"
        );
        assert!(manifest_whole, "{case}: torn manifest: {manifest}");
        // No record claims a frame that is not whole.
        assert!(
            new_records
                .iter()
                .all(|r| r.starts_with("\"failed\"") || r.ends_with("frame 65536 bytes)")),
            "{case}: {new_records:?}"
        );
        assert!(took < Duration::from_secs(120), "{case}: took {took:?}");
        before = after;
    }

    // Space back: the frame dir works again and the merge still has the first step's frames.
    std::fs::remove_file(&filler).unwrap();
    let (run, _) = srun(&cluster, &dir, &script, 4);
    assert!(run.ok(), "after freeing space: {run:?}");

    // Read-only: the same directory, remounted read-only.
    let before = record_bytes(&dir);
    fs.remount(&cluster, "ro");
    let (run, took) = srun(&cluster, &dir, &script, 2);
    let after = record_bytes(&dir);
    fs.remount(&cluster, "rw");
    let kept = before == after;
    report(
        "fault: frame dir file system",
        "frame dir on a file system remounted read-only: a step of 2 tasks",
        &format!(
            "srun rc {:?} after {:.1} s: {}",
            run.code,
            took.as_secs_f64(),
            errors(&run)
        ),
        &format!(
            "records before and after identical: {kept} ({} records); nothing written",
            after.len()
        ),
        TEST,
    );
    assert!(
        !run.ok(),
        "tasks succeeded on a read-only file system: {run:?}"
    );
    assert!(
        run.stderr.contains("Read-only file system"),
        "the reason is not shown: {run:?}"
    );
    assert!(kept);
    assert!(took < Duration::from_secs(120), "took {took:?}");
    let log: String = ["c1", "c2"].iter().map(|n| cluster.node_log(n)).collect();
    assert!(
        log.contains("No space left on device") || log.contains("Read-only file system"),
        "the nodes' logs do not show the reason"
    );
    drop(fs);
    cluster.assert_no_unhealthy_nodes();
}
