//! Unit tests of the merge: the job model, choice rules, trust, outputs, finisher election.
use super::*;
use crate::layout::{StepId, TaskKey};
use crate::record::Status;
use crate::record::tests::sample;
use crate::submission::{self, Submission};
use crate::test_util::TempDir;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

fn key(r: &TaskRecord) -> TaskKey {
    TaskKey {
        index: r.index,
        attempt: r.attempt,
        job_id: r.job_id,
        step: r.step.parse().unwrap_or(StepId::Batch),
        task_id: r.task_id,
    }
}

/// Writes a record as the current user's job (the uid it names is the file's owner).
fn put(layout: &Layout, r: &TaskRecord) {
    let mut r = r.clone();
    // SAFETY: geteuid(2) has no preconditions.
    r.uid = Some(unsafe { libc::geteuid() });
    host_io::write_new(
        &layout.record_path(&key(&r)),
        &serde_json::to_vec(&r).unwrap(),
    )
    .unwrap();
}

fn submit(layout: &Layout, cmd: &str, time: f64) {
    let argv: Vec<String> = cmd.split(' ').map(str::to_owned).collect();
    let mut s = Submission::from_argv(&argv, "/home/u/proj", time);
    s.state = submission::SubmissionState::Accepted;
    submission::write(layout, &mut s, "login1").unwrap();
}

fn failed(index: u64, attempt: u32, node: &str, end: f64) -> TaskRecord {
    let mut r = sample(index);
    r.attempt = attempt;
    r.node = node.into();
    r.end_time = end;
    r.exit_code = Some(1);
    r.decide(true);
    r
}

/// A task record of a non-array job: `job`, step, task rank of `count`, node, exit code.
fn task(job: u32, step: &str, task_id: u32, count: u32, node: &str, code: i32) -> TaskRecord {
    let mut r = sample(u64::from(task_id));
    r.job_id = job;
    r.array_job_id = None;
    r.array_task_id = None;
    r.step = step.into();
    r.task_id = task_id;
    r.task_count = count;
    r.node = node.into();
    r.exit_code = Some(code);
    r.frame_path = None;
    r.decide(false);
    r
}

fn dir(tag: &str) -> (TempDir, Layout) {
    let t = TempDir::new(tag);
    let l = Layout::new(t.path());
    l.create_dirs().unwrap();
    (t, l)
}

#[test]
fn a_resubmission_beats_a_requeued_failure_of_the_original_job() {
    let (_t, l) = dir("merge-resubmit-choice");
    submit(&l, "sbatch --array=0 --frame-dir=/f r.sh", 1.0);
    let mut requeued = failed(0, 1, "c2", 50.0);
    requeued.job_id = 10;
    put(&l, &requeued);
    let mut resubmitted = sample(0);
    resubmitted.job_id = 20;
    resubmitted.attempt = 0;
    put(&l, &resubmitted);
    let c = collect(&l).unwrap();
    let s = summarize(&c);
    let chosen = &c.records[s.units[0].chosen.unwrap()];
    assert_eq!((chosen.job_id, chosen.status), (20, Status::Done));
}

#[test]
fn choice_rules() {
    let (_t, l) = dir("merge-choice");
    submit(&l, "sbatch --array=0-5 --frame-dir=/f r.sh", 1.0);
    // 0: failed attempt 0, done attempt 1 → done.
    put(&l, &failed(0, 0, "c1", 10.0));
    let mut r = sample(0);
    r.attempt = 1;
    put(&l, &r);
    // 1: done attempt 0, failed attempt 1 → latest attempt wins: failed.
    put(&l, &sample(1));
    put(&l, &failed(1, 1, "c2", 5.0));
    // 2: same attempt, done and failed → done, even if failed ended later.
    let mut d = sample(2);
    d.end_time = 1.0;
    put(&l, &d);
    let mut f = failed(2, 0, "c2", 99.0);
    f.job_id = 5;
    put(&l, &f);
    // 3: two failed same attempt → later end time.
    let mut a = failed(3, 0, "c1", 50.0);
    a.job_id = 7;
    a.exit_code = Some(7);
    a.decide(true);
    put(&l, &a);
    let mut b = failed(3, 0, "c2", 60.0);
    b.job_id = 8;
    b.exit_code = Some(8);
    b.decide(true);
    put(&l, &b);
    // 4 missing, 5 done.
    put(&l, &sample(5));

    let c = collect(&l).unwrap();
    let s = summarize(&c);
    let chosen = |i: u64| &c.records[s.units[i as usize].chosen.unwrap()];
    assert_eq!(chosen(0).attempt, 1);
    assert_eq!(chosen(0).status, Status::Done);
    assert_eq!(chosen(1).status, Status::Failed);
    assert_eq!(chosen(2).status, Status::Done);
    assert_eq!(chosen(3).reason.as_deref(), Some("exit code 8"));
    assert_eq!(s.units[4].chosen, None);
    assert_eq!((s.expected, s.done, s.failed, s.missing), (6, 3, 2, 1));
    assert_eq!(s.failed_ranges, "1,3");
    assert_eq!(s.missing_ranges, "4");
    assert_eq!(s.rerun_ranges, "1,3-4");
    assert_eq!(s.expected_from, "submissions");
    assert_eq!(s.attempts, 9);
    // The table counts the standing records (what the headline counts); failing_nodes counts
    // every attempt.
    assert_eq!(s.nodes["c2"], NodeCounts { done: 0, failed: 2 });
    assert_eq!(s.nodes["c1"], NodeCounts { done: 3, failed: 0 });
    assert_eq!(s.hosts, vec!["c1", "c2"]);
    assert_eq!(s.failing_nodes, vec!["c2"]);
    assert_eq!(s.resubmit.len(), 1);
    assert_eq!(
        s.resubmit[0].argv,
        vec![
            "sbatch",
            "--exclude=c2",
            "--array=1,3-4",
            "--frame-dir=/f",
            "r.sh"
        ]
    );
    assert_eq!(
        s.resubmit[0].command,
        "cd /home/u/proj && sbatch --exclude=c2 --array=1,3-4 --frame-dir=/f r.sh"
    );
    assert!(!s.is_settled());
}

#[test]
fn segments_and_old_record_files_are_read_together_and_torn_lines_hide_nothing() {
    let (_t, l) = dir("merge-segments");
    submit(&l, "sbatch --array=0-4 r.sh", 1.0);
    // Index 0 as an older plugin wrote it (one file), 1-3 appended to segments of two nodes.
    put(&l, &sample(0));
    let me = host_io::effective_uid();
    for (i, node) in [(1, "c1"), (2, "c2"), (3, "c1")] {
        let mut r = sample(i);
        r.uid = Some(me);
        r.node = node.into();
        crate::store::append(&l, &key(&r), &r).unwrap();
    }
    // A crash cut index 4's line in c2's segment.
    let mut r = sample(4);
    r.uid = Some(me);
    r.node = "c2".into();
    let line = crate::store::encode_line(&key(&r), &serde_json::to_vec(&r).unwrap());
    let seg = l.records_dir().join(crate::store::segment_name(1000, "c2"));
    let mut f = std::fs::OpenOptions::new().append(true).open(&seg).unwrap();
    std::io::Write::write_all(&mut f, &line[..line.len() / 2]).unwrap();
    let s = merge(&l).unwrap();
    assert_eq!((s.done, s.missing), (4, 1), "{:?}", s.problems);
    assert_eq!(s.rerun_ranges, "4");
    assert_eq!(s.problems.len(), 1, "{:?}", s.problems);
    assert!(
        s.problems[0].error.contains("incomplete last record"),
        "{:?}",
        s.problems
    );
    assert!(
        s.problems[0].path.ends_with("1000.c2.seg"),
        "{:?}",
        s.problems
    );
    // The rerun appends after the torn piece: the record counts, the piece stays a problem.
    crate::store::append(&l, &key(&r), &r).unwrap();
    let s = merge(&l).unwrap();
    assert_eq!((s.done, s.missing), (5, 0), "{:?}", s.problems);
    assert_eq!(s.problems.len(), 1, "{:?}", s.problems);
    assert!(
        s.problems[0].error.contains("where its length says"),
        "{:?}",
        s.problems
    );
    let c = collect(&l).unwrap();
    assert_eq!(c.records.len(), 5);
    assert_eq!(
        c.records.iter().map(|r| r.index).collect::<Vec<_>>(),
        vec![0, 1, 2, 3, 4]
    );
}

#[test]
fn corrupt_and_strange_files_are_problems_not_fatal() {
    let (_t, l) = dir("merge-corrupt");
    submit(&l, "sbatch --array=0-2 r.sh", 1.0);
    put(&l, &sample(0));
    std::fs::write(
        l.records_dir().join("00000001.a0.j1.sbatch.t0.json"),
        b"{\"index\":",
    )
    .unwrap();
    std::fs::write(l.records_dir().join("README"), b"hi").unwrap();
    std::fs::write(
        l.records_dir()
            .join(".00000002.a0.j1.sbatch.t0.json.tmp.1.2.3"),
        b"",
    )
    .unwrap();
    // Name and content disagree.
    let mut r = sample(7);
    // SAFETY: geteuid(2) has no preconditions.
    r.uid = Some(unsafe { libc::geteuid() });
    std::fs::write(
        l.records_dir().join("00000002.a0.j9.sbatch.t0.json"),
        serde_json::to_vec(&r).unwrap(),
    )
    .unwrap();
    let s = merge(&l).unwrap();
    assert_eq!((s.done, s.missing), (1, 2));
    assert_eq!(s.problems.len(), 3, "{:?}", s.problems);
    let all = format!("{:?}", s.problems);
    assert!(all.contains("corrupt record"), "{all}");
    assert!(all.contains("unexpected file name"), "{all}");
    assert!(all.contains("says index 2 but the record says 7"), "{all}");
    assert!(!all.contains(".tmp."), "{all}");
    let manifest = std::fs::read_to_string(l.manifest_path()).unwrap();
    let lines: Vec<&str> = manifest.lines().collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[1], "{\"index\":1,\"status\":\"missing\"}");
    let first: TaskRecord = serde_json::from_str(lines[0]).unwrap();
    // SAFETY: geteuid(2) has no preconditions.
    assert_eq!(first.uid, Some(unsafe { libc::geteuid() }));
    assert_eq!(
        first,
        TaskRecord {
            uid: first.uid,
            ..sample(0)
        }
    );
}

fn mkfifo(p: &Path) {
    let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
}

/// A FIFO or symlink planted under a record's (or submission's) name: a named problem, the
/// other records merged, and no hang (a blocking open of the FIFO would never return).
#[test]
fn fifo_and_symlink_records_are_skipped_with_a_named_problem() {
    let (t, l) = dir("merge-fifo");
    submit(&l, "sbatch --array=0-3 r.sh", 1.0);
    put(&l, &sample(0));
    put(&l, &sample(2));
    mkfifo(&l.record_path(&key(&sample(1))));
    let elsewhere = t.path().join("outside.json");
    std::fs::write(&elsewhere, serde_json::to_vec(&sample(3)).unwrap()).unwrap();
    std::os::unix::fs::symlink(&elsewhere, l.record_path(&key(&sample(3)))).unwrap();
    mkfifo(&l.submissions_dir().join("zz-planted.json"));
    let s = merge(&l).unwrap();
    assert_eq!((s.done, s.missing), (2, 2), "{:?}", s.problems);
    let all = format!("{:?}", s.problems);
    assert!(all.contains("not a regular file"), "{all}");
    assert!(all.contains("symbolic link"), "{all}");
    let c = collect(&l).unwrap();
    assert!(
        c.problems
            .iter()
            .any(|p| p.path.contains("zz-planted.json")),
        "{:?}",
        c.problems
    );
    // The finisher judges completeness by names (all four are there): it merges, without
    // blocking on the FIFO, and reports the same two problems.
    let f = try_finish(&l).unwrap().expect("complete by names");
    assert_eq!((f.done, f.missing), (2, 2));
}

#[test]
fn try_finish_non_array_skips_a_fifo_record() {
    let (_t, l) = dir("finish-nonarray-fifo");
    let mut recs = Vec::new();
    for i in 0..3u64 {
        let mut r = sample(i);
        r.array_job_id = None;
        r.array_task_id = None;
        r.job_id = 78;
        r.step = "0".into();
        r.task_id = i as u32;
        r.task_count = 3;
        recs.push(r);
    }
    // Task 0's name is taken by a FIFO; tasks 1 and 2 carry the task count.
    mkfifo(&l.record_path(&key(&recs[0])));
    put(&l, &recs[1]);
    put(&l, &recs[2]);
    let s = try_finish(&l).unwrap().expect("all names present: merged");
    // The job's task 0 is unreadable: the job is not done, and says why.
    assert_eq!((s.expected, s.done, s.missing), (1, 0, 1));
    assert_eq!(
        s.units[0].reason.as_deref(),
        Some("step 0: 2 of 3 tasks recorded")
    );
    assert!(format!("{:?}", s.problems).contains("not a regular file"));
}

#[test]
fn outputs_are_idempotent_and_complete() {
    let (_t, l) = dir("merge-idem");
    submit(&l, "sbatch --array=0-3 r.sh", 1.0);
    for i in 0..4 {
        let mut r = sample(i);
        r.node = format!("n,{}\"q", i % 2);
        if i == 2 {
            r.frame_size = Some(0);
            r.decide(true);
        }
        put(&l, &r);
    }
    let s1 = merge(&l).unwrap();
    let read = |p: &Path| std::fs::read(p).unwrap();
    let (m1, j1, c1) = (
        read(&l.manifest_path()),
        read(&l.summary_json_path()),
        read(&l.summary_csv_path()),
    );
    let s2 = merge(&l).unwrap();
    assert_eq!(s1, s2);
    assert_eq!(read(&l.manifest_path()), m1);
    assert_eq!(read(&l.summary_json_path()), j1);
    assert_eq!(read(&l.summary_csv_path()), c1);
    assert!(s1.is_settled());
    let csv = String::from_utf8(c1).unwrap();
    let rows: Vec<&str> = csv.lines().collect();
    assert_eq!(rows.len(), 5);
    assert_eq!(
        rows[3],
        format!(
            "2,2,failed,0,1002,1000,2,batch,0,\"n,0\"\"q\",0,,10.5,2,0,,{},/f/frame_0002.png,\
             /home/u/proj/slurm-1000_2.out,frame file empty: /f/frame_0002.png",
            "00".repeat(32)
        )
    );
    let summary: Summary = serde_json::from_slice(&j1).unwrap();
    assert_eq!(summary.failed_ranges, "2");
    assert!(summary.units.is_empty());
}

#[test]
fn expected_without_submissions() {
    // Non-array job of 4 tasks, 2 recorded: one unit, not done yet.
    let (_t, l) = dir("merge-nonarray");
    for i in [0u64, 2] {
        put(&l, &task(77, "0", i as u32, 4, "c1", 0));
    }
    let s = summarize(&collect(&l).unwrap());
    assert_eq!(s.expected_from, "records");
    assert_eq!((s.expected, s.done, s.missing), (1, 0, 1));
    assert_eq!(s.missing_ranges, "");
    assert_eq!(s.jobs[&77], UnitState::Missing);
    assert_eq!(
        s.units[0].reason.as_deref(),
        Some("step 0: 2 of 4 tasks recorded")
    );
    assert!(s.resubmit.is_empty());
    assert_eq!(s.not_resubmittable_jobs, vec![77]);

    // Array records, no submission: the indices seen.
    let (_t2, l2) = dir("merge-seen");
    put(&l2, &sample(3));
    put(&l2, &sample(9));
    let s = summarize(&collect(&l2).unwrap());
    assert_eq!(s.expected_from, "records");
    assert_eq!((s.expected, s.done, s.missing), (2, 2, 0));
    assert_eq!(s.unexpected_ranges, "");
}

#[test]
fn unexpected_indices_are_kept_and_submissions_split_resubmits() {
    let (_t, l) = dir("merge-multi");
    submit(&l, "sbatch --array=0-3 a.sh", 1.0);
    submit(&l, "sbatch --array=10-11 b.sh", 2.0);
    put(&l, &sample(0));
    put(&l, &sample(20));
    let s = summarize(&collect(&l).unwrap());
    assert_eq!(s.expected, 7);
    assert_eq!(s.unexpected_ranges, "20");
    assert_eq!(s.missing_ranges, "1-3,10-11");
    let cmds: Vec<String> = s.resubmit.iter().map(|c| c.argv.join(" ")).collect();
    assert_eq!(
        cmds,
        vec!["sbatch --array=1-3 a.sh", "sbatch --array=10-11 b.sh"]
    );
}

#[test]
fn failing_nodes_not_everything() {
    let (_t, l) = dir("merge-allfail");
    submit(&l, "sbatch --array=0-3 r.sh", 1.0);
    for i in 0..4 {
        put(&l, &failed(i, 0, if i % 2 == 0 { "c1" } else { "c2" }, 1.0));
    }
    let s = summarize(&collect(&l).unwrap());
    assert!(s.failing_nodes.is_empty(), "{:?}", s.failing_nodes);
    assert_eq!(s.resubmit[0].argv.join(" "), "sbatch --array=0-3 r.sh");
}

/// A shell reports its command's SIGTERM as exit code 143 (it can exit before its own
/// SIGTERM arrives): a cancel, not a node fault. Exit code 1 on the same node is one.
#[test]
fn a_shell_reporting_sigterm_does_not_make_its_node_failing() {
    let (_t, l) = dir("merge-143");
    submit(&l, "sbatch --array=0-5 r.sh", 1.0);
    for i in 0..2 {
        put(&l, &sample(i));
    }
    for i in 2..5 {
        let mut r = failed(i, 0, "c2", 1.0);
        r.exit_code = Some(143);
        r.decide(true);
        put(&l, &r);
    }
    let s = summarize(&collect(&l).unwrap());
    assert!(s.failing_nodes.is_empty(), "{:?}", s.failing_nodes);
    put(&l, &failed(5, 0, "c2", 1.0));
    put(&l, &failed(4, 1, "c2", 2.0));
    let s = summarize(&collect(&l).unwrap());
    assert_eq!(s.failing_nodes, ["c2"]);
}

#[test]
fn not_a_frame_dir() {
    let t = TempDir::new("merge-none");
    let err = collect(&Layout::new(t.path())).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::NotFound);
    assert!(err.to_string().contains("no .frames directory"), "{err}");
}

#[test]
fn try_finish_waits_for_completion_then_merges_once() {
    let (_t, l) = dir("finish-seq");
    submit(&l, "sbatch --array=0-2 r.sh", 1.0);
    put(&l, &sample(0));
    assert!(try_finish(&l).unwrap().is_none());
    put(&l, &sample(1));
    assert!(try_finish(&l).unwrap().is_none());
    assert!(!l.manifest_path().exists());
    put(&l, &failed(2, 0, "c1", 1.0));
    let s = try_finish(&l).unwrap().expect("complete: merges");
    assert_eq!((s.done, s.failed), (2, 1));
    assert!(l.manifest_path().exists());
    // Same state: already finished.
    assert!(try_finish(&l).unwrap().is_none());
    // A requeued attempt adds a record: merges again and the outputs include it.
    let mut r = sample(2);
    r.attempt = 1;
    put(&l, &r);
    let s = try_finish(&l).unwrap().expect("new record: merges again");
    assert_eq!((s.done, s.failed), (3, 0));
    let csv = std::fs::read_to_string(l.summary_csv_path()).unwrap();
    assert!(csv.contains("\n2,2,done,1,"), "{csv}");
}

#[test]
fn try_finish_non_array_uses_task_count() {
    let (_t, l) = dir("finish-nonarray");
    for i in 0..3u64 {
        let mut r = sample(i);
        r.array_job_id = None;
        r.array_task_id = None;
        r.job_id = 77;
        r.step = "0".into();
        r.task_id = i as u32;
        r.task_count = 3;
        put(&l, &r);
        let finished = try_finish(&l).unwrap();
        assert_eq!(finished.is_some(), i == 2, "after task {i}");
    }
}

#[test]
fn try_finish_elects_exactly_one_of_many_racing_tasks() {
    for round in 0..3 {
        let (t, l) = dir(&format!("finish-race-{round}"));
        submit(&l, "sbatch --array=0-49 r.sh", 1.0);
        let l = Arc::new(l);
        let merges = Arc::new(AtomicUsize::new(0));
        let barrier = Arc::new(std::sync::Barrier::new(50));
        let handles: Vec<_> = (0..50u64)
            .map(|i| {
                let (l, merges, barrier) = (l.clone(), merges.clone(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    put(&l, &sample(i));
                    if let Some(s) = try_finish(&l).unwrap() {
                        assert_eq!(s.done, 50);
                        merges.fetch_add(1, Ordering::SeqCst);
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        assert_eq!(merges.load(Ordering::SeqCst), 1, "round {round}");
        let manifest = std::fs::read_to_string(l.manifest_path()).unwrap();
        assert_eq!(manifest.lines().count(), 50);
        assert!(!manifest.contains("missing"));
        drop(t);
    }
}

/// Generates synthetic records and times collect + summarize + write. Run with
/// `cargo test --release -p frames-core -- --ignored --nocapture merge_benchmark`.
#[test]
#[ignore]
fn merge_benchmark() {
    for n in [10_000u64, 100_000] {
        let (_t, l) = dir(&format!("bench-{n}"));
        submit(&l, &format!("sbatch --array=0-{} r.sh", n - 1), 1.0);
        for i in 0..n {
            let mut r = sample(i);
            r.results.push(
                crate::record::RawJson::parse(&format!(r#"{{"loss": 0.5, "step": {i}}}"#)).unwrap(),
            );
            std::fs::write(l.record_path(&key(&r)), serde_json::to_vec(&r).unwrap()).unwrap();
        }
        // Let the writeback of the generated files finish: it would slow the reads down.
        // SAFETY: sync(2) has no preconditions.
        unsafe { libc::sync() };
        let one = std::time::Instant::now();
        let c1 = collect_with_threads(&l, Some(1)).unwrap();
        let one = one.elapsed();
        assert_eq!(c1.records.len() as u64, n);
        drop(c1);
        let t0 = std::time::Instant::now();
        let c = collect(&l).unwrap();
        let t1 = t0.elapsed();
        let s = summarize(&c);
        let t2 = t0.elapsed();
        write_outputs(&l, &c, &s).unwrap();
        let t3 = t0.elapsed();
        assert_eq!(s.done, n);
        println!(
            "collect of {n} records on one thread: {:.3}s",
            one.as_secs_f64()
        );
        println!(
            "merge of {n} records: collect {:.3}s, summarize {:.3}s, write {:.3}s, total {:.3}s",
            t1.as_secs_f64(),
            (t2 - t1).as_secs_f64(),
            (t3 - t2).as_secs_f64(),
            t3.as_secs_f64()
        );
    }
}

/// Tasks the user scancelled (SIGTERM from Slurm) say nothing about their node: a partly
/// cancelled array excludes no node on resubmit (two cancelled tasks on c2 made it "failing").
#[test]
fn cancelled_tasks_do_not_make_a_node_failing() {
    let (_t, l) = dir("merge-cancelled");
    submit(&l, "sbatch --array=0-9 r.sh", 1.0);
    let mut on_c1 = failed(3, 0, "c1", 1.0);
    on_c1.exit_code = None;
    on_c1.signal = Some(libc::SIGTERM);
    on_c1.decide(true);
    put(&l, &on_c1);
    for i in [4, 5] {
        let mut r = failed(i, 0, "c2", 1.0);
        r.exit_code = None;
        r.signal = Some(libc::SIGTERM);
        r.decide(true);
        put(&l, &r);
    }
    let s = summarize(&collect(&l).unwrap());
    assert_eq!(s.failed_ranges, "3-5");
    assert!(s.failing_nodes.is_empty(), "{:?}", s.failing_nodes);
    assert!(
        !s.resubmit[0].argv.join(" ").contains("--exclude"),
        "{:?}",
        s.resubmit
    );
    // Failures of its own (exit codes) still make a node failing.
    for i in [6, 7] {
        put(&l, &failed(i, 0, "c2", 1.0));
    }
    put(&l, &sample(8));
    let s = summarize(&collect(&l).unwrap());
    assert_eq!(s.failing_nodes, vec!["c2"]);
}

/// Appends sample record `index` as written on `node` by the current user.
fn append_on(l: &Layout, index: u64, node: &str) -> TaskRecord {
    let mut r = sample(index);
    r.uid = Some(host_io::effective_uid());
    r.node = node.into();
    crate::store::append(l, &key(&r), &r).unwrap();
    r
}

/// What a tracker holds is what a fresh collect reads: records (in order), problems.
fn assert_same_as_collect(t: &Tracker, l: &Layout) {
    let fresh = collect(l).unwrap();
    let c = t.collection();
    assert_eq!(c.records, fresh.records);
    assert_eq!(c.problems, fresh.problems);
    assert_eq!(c.submissions, fresh.submissions);
    assert_eq!(summarize(c), summarize(&fresh));
}

#[test]
fn a_tracker_reads_only_what_was_appended_and_stays_what_collect_reads() {
    let (_t, l) = dir("merge-tracker-append");
    submit(&l, "sbatch --array=0-99 r.sh", 1.0);
    for i in 0..60 {
        append_on(&l, i, if i % 2 == 0 { "c1" } else { "c2" });
    }
    put(&l, &sample(60)); // an older plugin's record file
    let mut t = Tracker::new();
    let first = t.refresh(&l).unwrap();
    assert!(first.whole);
    assert_eq!(first.records, 61);
    assert_same_as_collect(&t, &l);
    // Nothing new: nothing read.
    let idle = t.refresh(&l).unwrap();
    assert_eq!(idle, Refreshed::default());
    // Five appended (one of them before every old index: kept in key order), one more file.
    let before = std::fs::metadata(l.records_dir().join("1000.c1.seg"))
        .unwrap()
        .len();
    for i in 61..65 {
        append_on(&l, i, "c1");
    }
    let mut early = sample(0);
    early.attempt = 1;
    early.uid = Some(host_io::effective_uid());
    early.node = "c3".into();
    crate::store::append(&l, &key(&early), &early).unwrap();
    put(&l, &sample(70));
    let after = std::fs::metadata(l.records_dir().join("1000.c1.seg"))
        .unwrap()
        .len();
    let c3 = std::fs::metadata(l.records_dir().join("1000.c3.seg"))
        .unwrap()
        .len();
    let step = t.refresh(&l).unwrap();
    assert!(!step.whole);
    assert_eq!(step.records, 6);
    assert_eq!(
        step.bytes,
        after - before + c3,
        "only the appended bytes are read"
    );
    assert_same_as_collect(&t, &l);
    assert_eq!(summarize(t.collection()).done, 66); // 0-64 and 70
}

#[test]
fn a_tracker_counts_a_line_being_appended_once_it_is_whole() {
    let (_t, l) = dir("merge-tracker-torn");
    submit(&l, "sbatch --array=0-2 r.sh", 1.0);
    append_on(&l, 0, "c1");
    let mut r = sample(1);
    r.uid = Some(host_io::effective_uid());
    r.node = "c1".into();
    let line = crate::store::encode_line(&key(&r), &serde_json::to_vec(&r).unwrap());
    let seg = l.records_dir().join(crate::store::segment_name(1000, "c1"));
    let mut f = std::fs::OpenOptions::new().append(true).open(&seg).unwrap();
    let half = line.len() / 2;
    std::io::Write::write_all(&mut f, &line[..half]).unwrap();
    let mut t = Tracker::new();
    t.refresh(&l).unwrap();
    assert_eq!(t.collection().records.len(), 1);
    assert_eq!(t.collection().problems.len(), 1);
    assert!(
        t.collection().problems[0]
            .error
            .contains("incomplete last record")
    );
    assert_same_as_collect(&t, &l);
    // The writer finishes its line: counted, and the problem is gone.
    std::io::Write::write_all(&mut f, &line[half..]).unwrap();
    let step = t.refresh(&l).unwrap();
    assert_eq!((step.records, step.whole), (1, false));
    assert!(
        t.collection().problems.is_empty(),
        "{:?}",
        t.collection().problems
    );
    assert_same_as_collect(&t, &l);
    // A crash-cut piece followed by another writer's line: the piece is a lasting problem.
    std::io::Write::write_all(&mut f, &line[..half]).unwrap();
    t.refresh(&l).unwrap();
    append_on(&l, 2, "c1");
    let step = t.refresh(&l).unwrap();
    assert_eq!(step.records, 1);
    assert_eq!(
        t.collection().problems.len(),
        1,
        "{:?}",
        t.collection().problems
    );
    assert_same_as_collect(&t, &l);
    t.refresh(&l).unwrap();
    assert_same_as_collect(&t, &l);
}

#[test]
fn a_tracker_reads_everything_again_when_files_are_replaced_or_removed() {
    let (_t, l) = dir("merge-tracker-replace");
    submit(&l, "sbatch --array=0-9 r.sh", 1.0);
    for i in 0..6 {
        append_on(&l, i, "c1");
    }
    put(&l, &sample(8));
    let mut t = Tracker::new();
    t.refresh(&l).unwrap();
    // The segment replaced by a shorter one (another inode): read whole, nothing kept twice.
    let seg = l.records_dir().join(crate::store::segment_name(1000, "c1"));
    std::fs::remove_file(&seg).unwrap();
    for i in 0..3 {
        append_on(&l, i, "c1");
    }
    let step = t.refresh(&l).unwrap();
    assert!(step.whole);
    assert_eq!(t.collection().records.len(), 4);
    assert_same_as_collect(&t, &l);
    // A record file removed.
    std::fs::remove_file(l.record_path(&key(&sample(8)))).unwrap();
    let step = t.refresh(&l).unwrap();
    assert!(step.whole);
    assert_same_as_collect(&t, &l);
    // The records directory removed.
    std::fs::remove_dir_all(l.records_dir()).unwrap();
    let step = t.refresh(&l).unwrap();
    assert!(step.whole);
    assert!(t.collection().records.is_empty());
    assert_same_as_collect(&t, &l);
}
