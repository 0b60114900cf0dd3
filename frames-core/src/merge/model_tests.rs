//! Unit tests of the job model of issue 20: non-array jobs are units, steps and tasks are
//! aggregated, hosts are every node, and only the directory owner's files count.
use super::*;
use crate::layout::{StepId, TaskKey};
use crate::record::tests::sample;
use crate::submission::{self, Submission};
use crate::test_util::TempDir;
use std::os::unix::fs::PermissionsExt;

fn put(layout: &Layout, r: &TaskRecord) -> std::path::PathBuf {
    let key = TaskKey {
        index: r.index,
        attempt: r.attempt,
        job_id: r.job_id,
        step: r.step.parse().unwrap_or(StepId::Batch),
        task_id: r.task_id,
    };
    let path = layout.record_path(&key);
    let mut r = r.clone();
    // SAFETY: geteuid(2) has no preconditions.
    r.uid = Some(unsafe { libc::geteuid() });
    host_io::write_new(&path, &serde_json::to_vec(&r).unwrap()).unwrap();
    path
}

fn submit(layout: &Layout, cmd: &str) -> std::path::PathBuf {
    let argv: Vec<String> = cmd.split(' ').map(str::to_owned).collect();
    let mut s = Submission::from_argv(&argv, "/home/u/sweep", 1.0);
    s.state = submission::SubmissionState::Accepted;
    submission::write(layout, &mut s, "login1").unwrap()
}

/// A task of a non-array job.
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

/// A sweep of 4 sbatch jobs, one failing: 4 units, 3 done 1 failed, and the per-node table
/// adds up to the headline (issue 20 item 2).
#[test]
fn a_sweep_of_four_jobs_is_four_units() {
    let (_t, l) = dir("model-sweep");
    for (k, job) in [101u32, 102, 103, 104].into_iter().enumerate() {
        let node = format!("c{}", k + 1);
        put(&l, &task(job, "batch", 0, 1, &node, i32::from(job == 103)));
    }
    let s = merge(&l).unwrap();
    assert_eq!((s.expected, s.done, s.failed, s.missing), (4, 3, 1, 0));
    assert_eq!(s.jobs[&103], UnitState::Failed);
    assert_eq!(s.rerun_jobs, vec![103]);
    let (done, failed) = s
        .nodes
        .values()
        .fold((0, 0), |(d, f), n| (d + n.done, f + n.failed));
    assert_eq!((done, failed), (s.done, s.failed));
    assert_eq!(s.unique_hosts, 4);
    let failed_unit = s.units.iter().find(|u| u.key == UnitKey::Job(103)).unwrap();
    assert_eq!(
        failed_unit.reason.as_deref(),
        Some("batch step on c3: exit code 1")
    );
    // Every job is in the manifest, with its unit.
    let manifest = std::fs::read_to_string(l.manifest_path()).unwrap();
    assert_eq!(manifest.lines().count(), 4);
    assert!(manifest.contains("{\"unit\":{\"job\":103},"), "{manifest}");
}

/// sbatch -N2 -n4 --wrap "srun worker": batch step plus 4 tasks of step 0 on two nodes is
/// one done unit with two hosts; with 3 of the 4 tasks it is not done (item 1).
#[test]
fn a_two_node_job_with_srun_tasks_is_one_unit_on_two_hosts() {
    let (_t, l) = dir("model-multinode");
    put(&l, &task(200, "batch", 0, 1, "c1", 0));
    for t in 0..3 {
        put(
            &l,
            &task(200, "0", t, 4, if t < 2 { "c1" } else { "c2" }, 0),
        );
    }
    let s = summarize(&collect(&l).unwrap());
    assert_eq!((s.expected, s.done, s.missing), (1, 0, 1));
    assert_eq!(
        s.units[0].reason.as_deref(),
        Some("step 0: 3 of 4 tasks recorded")
    );
    put(&l, &task(200, "0", 3, 4, "c2", 0));
    assert!(
        try_finish(&l).unwrap().is_some(),
        "complete: the finisher merges"
    );
    let s = summarize(&collect(&l).unwrap());
    assert_eq!((s.expected, s.done, s.failed), (1, 1, 0));
    assert_eq!(s.hosts, vec!["c1", "c2"]);
    assert_eq!(s.units[0].records.len(), 5);
    assert_eq!(s.nodes["c2"], NodeCounts { done: 2, failed: 0 });
}

/// salloc -N2 -n4 bash -c "srun w; srun -n2 w; srun -n1 false": the third step fails the
/// unit, and the reason names it (item 3).
#[test]
fn a_failing_step_fails_the_job_and_is_named() {
    let (_t, l) = dir("model-steps");
    for t in 0..4 {
        put(
            &l,
            &task(300, "0", t, 4, if t < 2 { "c1" } else { "c2" }, 0),
        );
    }
    for t in 0..2 {
        put(&l, &task(300, "1", t, 2, "c1", 0));
    }
    put(&l, &task(300, "2", 0, 1, "c2", 1));
    let c = collect(&l).unwrap();
    let s = summarize(&c);
    assert_eq!((s.expected, s.done, s.failed), (1, 0, 1));
    assert_eq!(
        s.units[0].reason.as_deref(),
        Some("step 2 task 0 on c2: exit code 1")
    );
    let steps: Vec<&str> = s.units[0]
        .records
        .iter()
        .map(|&i| c.records[i].step.as_str())
        .collect();
    assert_eq!(steps, ["0", "0", "0", "0", "1", "1", "2"]);
}

/// An array element whose batch script runs srun: the index aggregates both steps; a
/// resubmission (a newer job) of the index stands for it whole.
#[test]
fn an_array_index_aggregates_its_steps_and_the_newest_job_stands() {
    let (_t, l) = dir("model-array-steps");
    submit(&l, "sbatch --array=0-1 r.sh");
    for index in 0..2u64 {
        let mut b = sample(index);
        put(&l, &b);
        b.step = "0".into();
        b.task_count = 2;
        for t in 0..2 {
            b.task_id = t;
            b.node = format!("c{}", t + 1);
            if index == 1 && t == 1 {
                b.exit_code = Some(3);
            }
            b.decide(true);
            put(&l, &b);
        }
    }
    let s = summarize(&collect(&l).unwrap());
    assert_eq!((s.expected, s.done, s.failed), (2, 1, 1));
    assert_eq!(s.failed_ranges, "1");
    assert_eq!(
        s.units[1].reason.as_deref(),
        Some("step 0 task 1 on c2: exit code 3")
    );
    assert_eq!(s.resubmit[0].argv.join(" "), "sbatch --array=1 r.sh");
    // The rerun of index 1 (job 2001) ran only the batch step: it stands alone.
    let mut rerun = sample(1);
    rerun.job_id = 2001;
    put(&l, &rerun);
    let s = summarize(&collect(&l).unwrap());
    assert_eq!((s.done, s.failed), (2, 0));
    assert_eq!(s.units[1].replaced_jobs, vec![1001]);
}

/// A failed non-array job is resubmitted as the job it was (no --array), from its submission.
#[test]
fn resubmit_of_a_non_array_job_is_that_job() {
    let (_t, l) = dir("model-resubmit-job");
    submit(&l, "sbatch -N2 -n4 --frame-dir=/f --wrap=srun_w");
    put(&l, &task(400, "batch", 0, 1, "c1", 1));
    let s = summarize(&collect(&l).unwrap());
    assert_eq!(s.resubmit.len(), 1);
    assert_eq!(s.resubmit[0].job, Some(400));
    assert_eq!(
        s.resubmit[0].argv.join(" "),
        "sbatch -N2 -n4 --frame-dir=/f --wrap=srun_w"
    );
    assert_eq!(s.rerun_ranges, "");
    // With two non-array submissions, which one made job 400 is not known: not guessed.
    submit(&l, "sbatch --frame-dir=/f other.sh");
    let s = summarize(&collect(&l).unwrap());
    assert!(s.resubmit.is_empty());
    assert_eq!(s.not_resubmittable_jobs, vec![400]);
}

fn chown(path: &std::path::Path, uid: u32) {
    std::os::unix::fs::chown(path, Some(uid), None).unwrap();
}

/// Files owned by someone other than the owner of .frames are problems, not counted: a
/// planted record does not make a frame done, a planted submission neither adds expected
/// frames nor becomes a resubmit command (item 13). Needs root (to chown); skipped otherwise.
#[test]
fn foreign_records_and_submissions_are_problems() {
    // SAFETY: geteuid(2) has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: needs root to give files another owner");
        return;
    }
    let (_t, l) = dir("model-trust");
    submit(&l, "sbatch --array=0-1 r.sh");
    put(&l, &sample(0));
    let planted = put(&l, &sample(1));
    chown(&planted, 4242);
    let planted_sub = submit(&l, "sbatch --array=0-3 --wrap=touch_pwned");
    chown(&planted_sub, 4242);
    let s = summarize(&collect(&l).unwrap());
    assert_eq!((s.expected, s.done, s.missing), (2, 1, 1));
    let all = format!("{:?}", s.problems);
    assert!(
        all.contains("owned by uid 4242, not by uid 0 who owns .frames"),
        "{all}"
    );
    assert!(all.contains("touch_pwned"), "{all}");
    assert_eq!(s.resubmit.len(), 1);
    assert_eq!(s.resubmit[0].argv.join(" "), "sbatch --array=1 r.sh");
    assert_eq!(s.resubmit[0].uid, 0);
}

/// A directory others can write is warned about (item 13); "permission denied" for another
/// user's unreadable directory needs a second user: tests/integration frames_model.rs.
#[test]
fn a_dir_writable_by_others_is_warned_about() {
    let (t, l) = dir("model-dirmode");
    std::fs::set_permissions(t.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let c = collect(&l).unwrap();
    assert!(
        c.warnings
            .iter()
            .any(|w| w.contains("writable by other users (mode 0777)")),
        "{:?}",
        c.warnings
    );
    std::fs::set_permissions(t.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    assert!(collect(&l).unwrap().warnings.is_empty());
}

/// A copy of someone's record (it names their uid, the file is another's) is a problem; a
/// rejected submission is neither expected work nor resubmitted; a record that names its
/// submission is resubmitted from exactly that one, even among several (items 4, 13).
#[test]
fn impostor_records_rejected_submissions_and_named_submissions() {
    let (_t, l) = dir("model-links");
    // SAFETY: geteuid(2) has no preconditions.
    let me = unsafe { libc::geteuid() };
    let argv = |cmd: &str| -> Vec<String> { cmd.split(' ').map(str::to_owned).collect() };
    let mut rejected = Submission::from_argv(&argv("sbatch -p typo --array=0-19 r.sh"), "/w", 1.0);
    rejected.state = submission::SubmissionState::Rejected;
    submission::write(&l, &mut rejected, "login1").unwrap();
    let mut a = Submission::from_argv(&argv("sbatch --wrap=a"), "/w", 2.0);
    a.state = submission::SubmissionState::Accepted;
    submission::write(&l, &mut a, "login1").unwrap();
    let mut b = Submission::from_argv(&argv("sbatch --wrap=b"), "/w", 3.0);
    b.state = submission::SubmissionState::Accepted;
    submission::write(&l, &mut b, "login1").unwrap();
    let mut r = task(500, "batch", 0, 1, "c1", 1);
    r.submission = Some(a.id.clone());
    put(&l, &r);
    // A copy of a record naming another uid: put() sets ours, so write it by hand.
    let mut copy = task(501, "batch", 0, 1, "c2", 0);
    copy.uid = Some(me + 1);
    let name = l.record_path(&TaskKey {
        index: 0,
        attempt: 0,
        job_id: 501,
        step: StepId::Batch,
        task_id: 0,
    });
    std::fs::write(&name, serde_json::to_vec(&copy).unwrap()).unwrap();
    let s = summarize(&collect(&l).unwrap());
    assert_eq!((s.expected, s.failed), (1, 1), "{:?}", s.problems);
    assert_eq!(
        s.expected_from, "records",
        "the rejected array is not expected"
    );
    assert!(
        format!("{:?}", s.problems).contains(&format!(
            "says uid {} but the file is owned by uid {me}",
            me + 1
        )),
        "{:?}",
        s.problems
    );
    assert_eq!(s.resubmit.len(), 1);
    assert_eq!(s.resubmit[0].argv.join(" "), "sbatch --wrap=a");
    let c = collect(&l).unwrap();
    assert_eq!(
        Submissions::new(&c).output_file(&c.records[0]).as_deref(),
        Some("/w/slurm-500.out")
    );
}

/// An sbatch submission of a non-array job as the plugin writes it: provisional, the user's
/// uid, `reruns_job` set when `frames resubmit` ran it. Returns its id.
fn sbatch_sub(layout: &Layout, cmd: &str, time: f64, reruns_job: Option<u32>) -> String {
    let argv: Vec<String> = cmd.split(' ').map(str::to_owned).collect();
    let mut s = Submission::from_argv(&argv, "/home/u/sweep", time);
    // SAFETY: geteuid(2) has no preconditions.
    s.uid = Some(unsafe { libc::geteuid() });
    s.reruns_job = reruns_job;
    submission::write(layout, &mut s, "login1").unwrap();
    s.id
}

/// A batch task of a non-array job that names its submission.
fn batch_of(job: u32, sub: &str, code: i32) -> TaskRecord {
    let mut r = task(job, "batch", 0, 1, "c1", code);
    r.submission = Some(sub.to_owned());
    r
}

/// A sweep point that failed and was rerun by `frames resubmit` is one unit: the rerun
/// stands for it. Done, it is done and nothing is proposed; failed again, it is proposed
/// once (never the old job and its rerun side by side, the same command twice).
#[test]
fn a_rerun_sweep_job_stands_for_the_job_it_reruns() {
    let (_t, l) = dir("model-rerun");
    let a = sbatch_sub(&l, "sbatch --wrap=p1", 1.0, None);
    let b = sbatch_sub(&l, "sbatch --wrap=p2", 2.0, None);
    put(&l, &batch_of(101, &a, 0));
    put(&l, &batch_of(102, &b, 3));
    let rerun = sbatch_sub(&l, "sbatch --wrap=p2", 3.0, Some(102));
    put(&l, &batch_of(103, &rerun, 3));
    let s = summarize(&collect(&l).unwrap());
    assert_eq!((s.expected, s.done, s.failed, s.missing), (2, 1, 1, 0));
    assert_eq!(s.rerun_jobs, vec![103]);
    assert_eq!(s.resubmit.len(), 1, "{:?}", s.resubmit);
    assert_eq!(s.resubmit[0].job, Some(103));
    assert_eq!(s.resubmit[0].argv.join(" "), "sbatch --wrap=p2");
    let unit = s.units.iter().find(|u| u.key == UnitKey::Job(103)).unwrap();
    assert_eq!(unit.replaced_jobs, vec![102]);

    // The second rerun (of 103) works: every point is done, nothing to propose.
    let again = sbatch_sub(&l, "sbatch --wrap=p2", 4.0, Some(103));
    put(&l, &batch_of(104, &again, 0));
    let s = merge(&l).unwrap();
    assert_eq!((s.expected, s.done, s.failed, s.missing), (2, 2, 0, 0));
    assert!(s.rerun_jobs.is_empty() && s.resubmit.is_empty(), "{s:?}");
    assert_eq!(s.jobs.keys().copied().collect::<Vec<_>>(), vec![101, 104]);
    let unit = s.units.iter().find(|u| u.key == UnitKey::Job(104)).unwrap();
    assert_eq!(unit.replaced_jobs, vec![102, 103]);
}

/// A rerun whose job is known (linked by squeue) but has no record yet is no unit of its own:
/// the old job's unit stays what its records say, and the queue's view of the rerun job
/// (pending or running) keeps it out of what is proposed.
#[test]
fn a_pending_rerun_is_no_unit_of_its_own_and_holds_back_the_old_job() {
    let (_t, l) = dir("model-rerun-pending");
    let a = sbatch_sub(&l, "sbatch --wrap=p1", 1.0, None);
    put(&l, &batch_of(102, &a, 3));
    sbatch_sub(&l, "sbatch --wrap=p1", 2.0, Some(102));
    let mut c = collect(&l).unwrap();
    // squeue linked the rerun's submission to job 110.
    let sub = c
        .submissions
        .iter_mut()
        .find(|s| s.submission.reruns_job.is_some())
        .unwrap();
    sub.submission.job_id = Some(110);
    sub.submission.state = submission::SubmissionState::Accepted;
    let s = summarize(&c);
    assert_eq!((s.expected, s.failed, s.missing), (1, 1, 0), "{s:?}");
    assert_eq!(job_units(&c).get(&110), Some(&102));
    assert_eq!(s.rerun_jobs, vec![102]);
}
