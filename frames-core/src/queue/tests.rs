//! Unit tests of the queue view: recorded squeue/sacct output, links, live state.
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use super::parse::parse_utc;
use super::*;
use crate::merge::{self, Collection};
use crate::submission::SubmissionState;

/// A submission as collect() hands it over: trusted, owned by its uid.
fn owned(submission: crate::submission::Submission) -> merge::OwnedSubmission {
    merge::OwnedSubmission {
        name: format!("{}.json", submission.id),
        uid: submission.uid.unwrap_or(6001),
        submission,
    }
}

// Recorded on the 22.05.8 test cluster with TZ=UTC: `squeue --noheader --array
// --states=all --format=SQUEUE_FORMAT` with a throttled array 94 (0-9%3) and a held job
// 95, then the same without --array (the pending rest compressed), cut to a few lines.
const SQUEUE_2205: &str = "\
94|94|3|PENDING||JobArrayTaskLimit|6001|2026-12-02T06:45:03|/tmp/spank-cluster-3/shared
94|94|4|PENDING||JobArrayTaskLimit|6001|2026-12-02T06:45:03|/tmp/spank-cluster-3/shared
95|95|N/A|PENDING||JobHeldUser|6001|2026-12-02T06:45:03|/tmp/spank-cluster-3/shared
96|94|0|RUNNING|c1|None|6001|2026-12-02T06:45:03|/tmp/spank-cluster-3/shared
97|94|1|RUNNING|c1|None|6001|2026-12-02T06:45:03|/tmp/spank-cluster-3/shared
9|9|N/A|COMPLETED|c2|None|6001|2026-12-02T06:30:01|/tmp/spank-cluster-3/shared
";
const SQUEUE_2205_COMPRESSED: &str =
    "94|94|3-9%3|PENDING||JobArrayTaskLimit|6001|2026-12-02T06:45:03|/tmp/spank-cluster-3/shared\n";

#[test]
fn squeue_rows_become_jobs_and_array_tasks() {
    let e = parse_squeue(SQUEUE_2205).unwrap();
    assert_eq!(e.len(), 6);
    assert_eq!((e[0].name(), e[0].job_id), ("94_3".to_string(), 94));
    assert_eq!(e[0].state, State::Pending);
    assert_eq!(e[0].reason, "JobArrayTaskLimit");
    assert_eq!(e[2].array_task, None);
    assert_eq!(e[2].reason, "JobHeldUser");
    assert!(never_starts_by_itself(&e[2].reason));
    assert_eq!((e[3].job_id, e[3].name()), (96, "94_0".to_string()));
    assert_eq!(e[3].state, State::Running);
    assert_eq!(e[3].nodes, "c1");
    assert_eq!(e[5].state, State::Completed);
    assert_eq!(e[5].uid, Some(6001));
    assert_eq!(e[5].submit_time, parse_utc("2026-12-02T06:30:01"));
    assert_eq!(e[5].work_dir, "/tmp/spank-cluster-3/shared");
}

#[test]
fn squeue_compressed_pending_rest_expands_to_each_task() {
    let e = parse_squeue(SQUEUE_2205_COMPRESSED).unwrap();
    assert_eq!(e.len(), 7);
    assert_eq!(e[0].array_task, Some(3));
    assert_eq!(e[6].array_task, Some(9));
    assert!(e.iter().all(|x| x.state == State::Pending));
}

#[test]
fn squeue_bad_lines_are_named() {
    let err = parse_squeue("12|12|N/A|RUNNING\n").unwrap_err();
    assert!(
        err.contains("'12|12|N/A|RUNNING'") && err.contains("expected 10"),
        "{err}"
    );
    let err = parse_squeue("x|1|2|RUNNING|c1|None\n").unwrap_err();
    assert!(err.contains("'x' is not a job id"), "{err}");
    let err = parse_squeue("3|1|2-a|RUNNING|c1|None\n").unwrap_err();
    assert!(err.contains("squeue"), "{err}");
}

// `sacct --noheader --parsable2 --allocations --format=JobIDRaw,JobID,State,NodeList,
// ExitCode` in the layout sacct(1) documents for 22.05, 24.11 and 26.05 alike. Written by
// hand, not recorded: the test cluster has no accounting yet (issue 13).
const SACCT: &str = "\
20|20_0|COMPLETED|c1|0:0
21|20_1|NODE_FAIL|c2|0:0
22|20_2|CANCELLED by 6001|c1|0:15
20|20_[3-5]|PENDING|None assigned|0:0
30|30|TIMEOUT|c2|0:0
31|31|REQUEUED|c2|0:0
31.batch|31.batch|CANCELLED|c2|0:15
";

#[test]
fn sacct_rows_become_states_with_nodes() {
    let e = parse_sacct(SACCT).unwrap();
    assert_eq!(e.len(), 8, "{e:?}");
    assert_eq!(e[1].state, State::Lost);
    assert_eq!(e[1].nodes, "c2");
    assert_eq!(e[1].name(), "20_1");
    assert_eq!(e[2].state, State::Cancelled);
    assert_eq!(e[2].raw_state, "CANCELLED by 6001");
    assert_eq!(
        e[3..6].iter().map(|x| x.array_task).collect::<Vec<_>>(),
        [Some(3), Some(4), Some(5)]
    );
    assert_eq!(e[6].state, State::Timeout);
    assert_eq!(e[7].state, State::Requeued);
    assert!(e[7].state.is_active());
}

#[test]
fn states_cover_slurms_names() {
    for (raw, want) in [
        ("COMPLETING", State::Running),
        ("SUSPENDED", State::Running),
        ("REQUEUE_HOLD", State::Requeued),
        ("OUT_OF_MEMORY", State::Failed),
        ("PREEMPTED", State::Cancelled),
        ("BOOT_FAIL", State::Lost),
        ("RUNNING+", State::Running),
    ] {
        assert_eq!(State::parse(raw), want, "{raw}");
    }
    assert_eq!(State::parse("WEIRD"), State::Other("WEIRD".into()));
    assert!(State::parse("WEIRD").is_active());
    assert!(!State::Lost.is_active() && !State::Completed.is_active());
}

#[test]
fn squeue_wins_over_sacct_and_unknown_jobs_get_a_verdict() {
    let mut entries = parse_squeue("21|20|1|PENDING||BeginTime\n").unwrap();
    entries.extend(parse_sacct(SACCT).unwrap());
    let v = QueueView::from_entries(Answer::Answered, Answer::Answered, entries);
    let t = v.task(20, 1).unwrap();
    assert_eq!(
        (t.state.clone(), t.source),
        (State::Pending, Source::Squeue)
    );
    assert_eq!(v.task(20, 0).unwrap().source, Source::Sacct);
    assert!(v.knows(20) && v.knows(30) && !v.knows(99));
    assert_eq!(v.tasks_of(20).count(), 6);
    let none = QueueView::from_entries(
        Answer::Answered,
        Answer::Unavailable("accounting storage is disabled".into()),
        Vec::new(),
    );
    assert_eq!(
        none.unknown_verdict(123),
        "job 123: unknown to Slurm (ended more than MinJobAge ago, no accounting): judged by its records"
    );
    assert_eq!(
        none.sources(),
        "squeue answered; sacct: accounting storage is disabled"
    );
}

#[test]
fn bounded_run_kills_a_command_that_hangs() {
    let t0 = Instant::now();
    let r = run_bounded("sleep", &["30".to_string()], Duration::from_millis(300));
    assert!(matches!(r, Err(RunError::TimedOut(_))), "{r:?}");
    assert!(t0.elapsed() < Duration::from_secs(5));
    assert!(matches!(
        run_bounded("frames-no-such-program", &[], Duration::from_secs(1)),
        Err(RunError::NotFound(_))
    ));
    let r = run_bounded(
        "sh",
        &[
            "-c".into(),
            "echo 'slurm_load_jobs error: Invalid job id specified' >&2; exit 1".into(),
        ],
        Duration::from_secs(5),
    );
    assert!(
        matches!(&r, Err(RunError::Exit(m)) if m.contains("Invalid job id")),
        "{r:?}"
    );
    assert_eq!(
        run_bounded(
            "sh",
            &["-c".into(), "echo hi".into()],
            Duration::from_secs(5)
        ),
        Ok("hi\n".to_string())
    );
    // Output closed, still running: killed at the limit all the same.
    let t0 = Instant::now();
    let r = run_bounded(
        "sh",
        &["-c".into(), "exec >&- 2>&-; sleep 30".into()],
        Duration::from_millis(300),
    );
    assert!(matches!(r, Err(RunError::TimedOut(_))), "{r:?}");
    assert!(t0.elapsed() < Duration::from_secs(5));
}

fn dir_of_array_1000() -> Collection {
    use crate::record::tests::sample;
    use crate::submission::Submission;
    let mut records: Vec<_> = (0..4).map(sample).collect();
    let mut failed = sample(4);
    failed.node = "c2".into();
    failed.exit_code = Some(1);
    failed.decide(true);
    records.push(failed);
    let argv: Vec<String> = "sbatch --array=0-9 --frame-dir=/f r.sh"
        .split(' ')
        .map(str::to_owned)
        .collect();
    Collection {
        root: "/f".into(),
        records,
        submissions: vec![owned(Submission::from_argv(&argv, "/home/u", 1.0))],
        problems: vec![],
        owner_uid: None,
        warnings: vec![],
    }
}

#[test]
fn running_pending_and_requeued_indices_are_never_proposed_lost_ones_are() {
    let c = dir_of_array_1000();
    let view = QueueView::from_entries(
        Answer::Answered,
        Answer::Unavailable("accounting storage is disabled".into()),
        parse_squeue(
            "1005|1000|5|RUNNING|c1|None\n1006|1000|6|COMPLETING|c1|None\n\
             1007|1000|7|NODE_FAIL|c2|NodeDown\n1000|1000|8-9|PENDING||Resources\n\
             1003|1000|3|COMPLETED|c1|None\n",
        )
        .unwrap(),
    );
    let jobs = dir_jobs(&c);
    assert_eq!(jobs.ids(), BTreeSet::from([1000]));
    let live = live(&c, &jobs, &view);
    assert_eq!(live.active, BTreeSet::from([5, 6, 8, 9]));
    assert_eq!(
        live.lost_lines(),
        ["lost with node c2: 1000_7 (NODE_FAIL, not requeued)"]
    );
    assert_eq!(
        live.state_line(),
        "1 completed, 1 lost, 2 pending, 2 running"
    );
    assert!(!live.is_idle() && live.unknown.is_empty() && live.stuck.is_empty());
    let mut s = merge::summarize(&c);
    assert_eq!(s.rerun_ranges, "4-9");
    exclude_active(&mut s, &c, &live);
    assert_eq!(s.rerun_ranges, "4,7");
    assert_eq!(s.resubmit.len(), 1);
    assert!(
        s.resubmit[0].command.contains("--array=4,7"),
        "{}",
        s.resubmit[0].command
    );
}

/// Several arrays sent from one directory in the same second (a script submitting to
/// several frame dirs): squeue cannot tell which job is this dir's. While any of them
/// runs the submission's indices, none is proposed and watch goes on.
#[test]
fn an_unlinked_submission_holds_back_what_its_candidate_jobs_still_run() {
    use crate::submission::Submission;
    let argv: Vec<String> = "sbatch --array=0-7%2 --frame-dir=/f r.sh"
        .split(' ')
        .map(str::to_owned)
        .collect();
    let mut sub = Submission::from_argv(&argv, "/home/u", 1.0);
    sub.id = "x".into();
    let c = Collection {
        root: "/f".into(),
        submissions: vec![owned(sub)],
        ..Collection::default()
    };
    let mut jobs = dir_jobs(&c);
    jobs.ambiguous.push(("x".into(), vec![12, 13]));
    assert_eq!(jobs.ids_to_ask(), BTreeSet::from([12, 13]));
    let view = QueueView::from_entries(
        Answer::Answered,
        Answer::Unavailable("accounting storage is disabled".into()),
        parse_squeue(
            "1301|13|0|RUNNING|c1|None\n1302|13|1|RUNNING|c2|None\n\
             13|13|2-7|PENDING||JobArrayTaskLimit\n1201|12|0-3|COMPLETED|c1|None\n",
        )
        .unwrap(),
    );
    let live = live(&c, &jobs, &view);
    assert_eq!(live.active, (0..8).collect::<BTreeSet<u64>>());
    assert!(!live.is_idle());
    let mut s = merge::summarize(&c);
    assert_eq!(s.rerun_ranges, "0-7");
    exclude_active(&mut s, &c, &live);
    assert_eq!(s.rerun_ranges, "");
    assert!(s.resubmit.is_empty(), "{:?}", s.resubmit);
}

/// `frames resubmit` reran failed job 102 as job 110 (linked by squeue, no record yet):
/// while 110 runs, 102 is not proposed again.
#[test]
fn a_running_rerun_holds_back_the_job_it_reruns() {
    use crate::record::tests::sample;
    use crate::submission::Submission;
    let argv: Vec<String> = "sbatch --frame-dir=/f r.sh"
        .split(' ')
        .map(str::to_owned)
        .collect();
    let mut first = Submission::from_argv(&argv, "/home/u", 1.0);
    first.id = "a".into();
    let mut rerun = Submission::from_argv(&argv, "/home/u", 2.0);
    rerun.id = "b".into();
    rerun.reruns_job = Some(102);
    let mut r = sample(0);
    r.job_id = 102;
    r.array_job_id = None;
    r.array_task_id = None;
    r.step = "batch".into();
    r.exit_code = Some(3);
    r.submission = Some("a".into());
    r.decide(false);
    let mut c = Collection {
        root: "/f".into(),
        records: vec![r],
        submissions: vec![owned(first), owned(rerun)],
        ..Collection::default()
    };
    let mut jobs = dir_jobs(&c);
    jobs.linked.push(("b".into(), 110));
    jobs.singles.insert(110);
    settle_submissions(&mut c, &jobs, true, 10.0);
    let view = QueueView::from_entries(
        Answer::Answered,
        Answer::Unavailable("accounting storage is disabled".into()),
        parse_squeue("110|110|N/A|RUNNING|c1|None\n102|102|N/A|FAILED|c1|None\n").unwrap(),
    );
    let live = live(&c, &jobs, &view);
    let mut s = merge::summarize(&c);
    assert_eq!((s.expected, s.failed), (1, 1));
    assert_eq!(s.rerun_jobs, vec![102]);
    exclude_active(&mut s, &c, &live);
    assert!(s.rerun_jobs.is_empty(), "{:?}", s.rerun_jobs);
    assert!(s.resubmit.is_empty(), "{:?}", s.resubmit);
}

#[test]
fn a_dir_whose_jobs_slurm_forgot_is_idle_and_judged_by_its_records() {
    let c = dir_of_array_1000();
    let view = QueueView::from_entries(
        Answer::Answered,
        Answer::Unavailable("accounting storage is disabled".into()),
        Vec::new(),
    );
    let live = live(&c, &dir_jobs(&c), &view);
    assert!(live.is_idle());
    assert_eq!(live.unknown, [1000]);
    let mut s = merge::summarize(&c);
    exclude_active(&mut s, &c, &live);
    assert_eq!(s.rerun_ranges, "4-9");
    let held = QueueView::from_entries(
        Answer::Answered,
        Answer::NotAsked,
        parse_squeue("1000|1000|5-9|PENDING||JobHeldUser\n").unwrap(),
    );
    let live = super::live(&c, &dir_jobs(&c), &held);
    assert_eq!(live.stuck.len(), 5);
    assert!(live.all_stuck());
    assert_eq!(live.stuck[0].reason, "JobHeldUser");
}

#[test]
fn squeue_times_are_utc_seconds() {
    assert_eq!(parse_utc("1970-01-01T00:00:00"), Some(0.0));
    assert_eq!(parse_utc("2026-12-02T06:40:01"), Some(1_796_193_601.0));
    assert_eq!(parse_utc("2024-02-29T12:00:00"), Some(1_709_208_000.0));
    assert_eq!(parse_utc("N/A"), None);
    assert_eq!(parse_utc("2026-13-02T06:40:01"), None);
}

#[test]
fn a_provisional_submission_no_job_came_of_is_rejected_only_once_squeue_answered() {
    use crate::submission::Submission;
    let sub = |id: &str, spec: &str, time: f64| {
        let argv: Vec<String> = vec!["sbatch".into(), format!("--array={spec}"), "r.sh".into()];
        let mut s = Submission::from_argv(&argv, "/home/u/proj", time);
        s.id = id.into();
        s.uid = Some(6001);
        s.state = SubmissionState::Provisional;
        owned(s)
    };
    let collection = || Collection {
        root: "/f".into(),
        records: vec![],
        // `sbatch -p typo --array=0-19` (refused, long ago) and a fresh one still being sent.
        submissions: vec![sub("typo", "0-19", 1000.0), sub("fresh", "0-3", 1990.0)],
        problems: vec![],
        owner_uid: Some(6001),
        warnings: vec![],
    };
    let jobs = DirJobs::default();
    // squeue did not answer: nothing is concluded, indices 0-19 stay expected.
    let mut c = collection();
    assert!(settle_submissions(&mut c, &jobs, false, 2000.0).is_empty());
    assert_eq!(merge::summarize(&c).expected, 20);
    // squeue answered and knows neither: the old one never became a job.
    let mut c = collection();
    let lines = settle_submissions(&mut c, &jobs, true, 2000.0);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].starts_with("submission typo: no job came of it"),
        "{}",
        lines[0]
    );
    assert!(lines[0].contains("--array=0-19"), "{}", lines[0]);
    let s = merge::summarize(&c);
    assert_eq!(s.expected, 4);
    assert!(s.resubmit.iter().all(|cmd| !cmd.command.contains("0-19")));
    // Linked by squeue: the job it became, accepted.
    let mut c = collection();
    let linked = DirJobs {
        linked: vec![("typo".into(), 77)],
        ..DirJobs::default()
    };
    assert!(settle_submissions(&mut c, &linked, true, 2000.0).is_empty());
    assert_eq!(c.submissions[0].submission.job_id, Some(77));
    assert_eq!(c.submissions[0].submission.state, SubmissionState::Accepted);
    assert_eq!(merge::summarize(&c).expected, 20);
}

#[test]
fn unlinked_sbatch_submissions_link_to_the_users_job_of_that_dir_and_time() {
    use crate::submission::Submission;
    let sub = |id: &str, array: bool, time: f64| {
        let argv: Vec<String> = if array {
            vec!["sbatch".into(), "--array=0-3".into(), "r.sh".into()]
        } else {
            vec!["sbatch".into(), "r.sh".into()]
        };
        let mut s = Submission::from_argv(&argv, "/home/u/proj", time);
        s.id = id.into();
        s.uid = Some(6001);
        s
    };
    let c = Collection {
        root: "/f".into(),
        records: vec![],
        // A sweep of two jobs one second apart, and an array.
        submissions: vec![
            owned(sub("s1", false, 1_796_193_600.2)),
            owned(sub("s2", false, 1_796_193_601.5)),
            owned(sub("s3", true, 1_796_193_601.7)),
        ],
        problems: vec![],
        owner_uid: Some(6001),
        warnings: vec![],
    };
    // squeue --user: another user's job, a job of another dir, a job from before, then
    // the three jobs.
    let entries = parse_squeue(
        "40|40|N/A|RUNNING|c1|None|6002|2026-12-02T06:40:00|/home/u/proj\n\
         41|41|N/A|RUNNING|c1|None|6001|2026-12-02T06:40:00|/home/u/other\n\
         39|39|N/A|COMPLETED|c1|None|6001|2026-12-02T06:30:00|/home/u/proj\n\
         42|42|N/A|PENDING||BeginTime|6001|2026-12-02T06:40:00|/home/u/proj\n\
         43|43|N/A|PENDING||Priority|6001|2026-12-02T06:40:02|/home/u/proj\n\
         44|44|0-3|PENDING||Priority|6001|2026-12-02T06:40:02|/home/u/proj\n",
    )
    .unwrap();
    assert_eq!(entries[0].work_dir, "/home/u/proj");
    let mut jobs = dir_jobs(&c);
    assert!(jobs.is_empty());
    link(&c, &mut jobs, &entries);
    assert_eq!(
        jobs.linked,
        [
            ("s1".to_string(), 42),
            ("s2".to_string(), 43),
            ("s3".to_string(), 44)
        ]
    );
    assert_eq!(jobs.singles, BTreeSet::from([42, 43]));
    assert!(jobs.ambiguous.is_empty());
    // A job of another dir sent from the same directory in the same second: the sweep
    // can no longer be told apart, so nothing of it is linked (records will link it).
    let mut crowded = entries.clone();
    crowded.extend(
        parse_squeue("45|45|N/A|PENDING||Priority|6001|2026-12-02T06:40:01|/home/u/proj\n")
            .unwrap(),
    );
    let mut guess = dir_jobs(&c);
    link(&c, &mut guess, &crowded);
    assert_eq!(guess.linked, [("s3".to_string(), 44)]);
    assert_eq!(guess.ambiguous.len(), 2, "{guess:?}");
    assert_eq!(jobs.arrays, BTreeSet::from([44]));
    let view = QueueView::from_entries(Answer::Answered, Answer::NotAsked, entries);
    let live = live(&c, &jobs, &view);
    assert_eq!(live.active_jobs.len(), 2);
    assert_eq!(live.active, BTreeSet::from([0, 1, 2, 3]));
}

/// A script sends `sbatch -p normal --array=0-9 --frame-dir=A` and, in the same second,
/// `sbatch -p typo --array=0-9 --frame-dir=B` from one directory: B's refused submission is
/// never linked to A's job (squeue's %P says normal), so resubmit in B never replays the
/// typo as accepted work; a submission naming the job's partition still links.
#[test]
fn a_submission_naming_partitions_links_only_to_a_job_in_one_of_them() {
    use crate::submission::Submission;
    let collection = |argv: &str| {
        let argv: Vec<String> = argv.split(' ').map(str::to_owned).collect();
        let mut s = Submission::from_argv(&argv, "/home/u/proj", 1_796_193_600.4);
        s.id = "b".into();
        s.uid = Some(6001);
        Collection {
            root: "/f/B".into(),
            submissions: vec![owned(s)],
            owner_uid: Some(6001),
            ..Collection::default()
        }
    };
    let a_job =
        parse_squeue("50|50|0-9|PENDING||Priority|6001|2026-12-02T06:40:00|normal|/home/u/proj\n")
            .unwrap();
    assert_eq!(a_job[0].partition, "normal");
    for (argv, linked) in [
        ("sbatch -p typo --array=0-9 r.sh", false),
        ("sbatch --partition=typo,nope --array=0-9 r.sh", false),
        ("sbatch -ptypo --array=0-9 r.sh", false),
        ("sbatch -p normal --array=0-9 r.sh", true),
        ("sbatch --partition all,normal --array=0-9 r.sh", true),
        // No partition named: the script or the default decides, so no filter.
        ("sbatch --array=0-9 r.sh", true),
    ] {
        let c = collection(argv);
        let mut jobs = dir_jobs(&c);
        link(&c, &mut jobs, &a_job);
        assert_eq!(!jobs.linked.is_empty(), linked, "{argv}: {jobs:?}");
    }
    // A squeue line from before the partition was asked (9 fields) links as before.
    let legacy =
        parse_squeue("50|50|0-9|PENDING||Priority|6001|2026-12-02T06:40:00|/home/u/proj\n")
            .unwrap();
    assert_eq!(
        (legacy[0].partition.as_str(), legacy[0].work_dir.as_str()),
        ("", "/home/u/proj")
    );
    let c = collection("sbatch -p typo --array=0-9 r.sh");
    let mut jobs = dir_jobs(&c);
    link(&c, &mut jobs, &legacy);
    assert_eq!(jobs.linked.len(), 1);
}

/// `sbatch -p typo --array=0-9` a few seconds ago: no job came of it, but squeue has not
/// had its minute yet. Status counts it as expected; resubmit does not replay it.
#[test]
fn a_fresh_unlinked_submission_is_not_replayed() {
    use crate::submission::Submission;
    let argv: Vec<String> = "sbatch -p typo --array=0-9 --frame-dir=/f --wrap true"
        .split(' ')
        .map(str::to_owned)
        .collect();
    let mut sub = Submission::from_argv(&argv, "/home/u", 1000.0);
    sub.id = "typo".into();
    let mut c = Collection {
        root: "/f".into(),
        submissions: vec![owned(sub)],
        ..Collection::default()
    };
    let jobs = dir_jobs(&c);
    assert!(settle_submissions(&mut c, &jobs, true, 1010.0).is_empty());
    let mut s = merge::summarize(&c);
    assert_eq!(s.rerun_ranges, "0-9");
    assert_eq!(s.resubmit.len(), 1);
    let uid = s.resubmit[0].uid;
    // Someone else's command is not held here: it is shown as theirs, never run.
    let mut other = s.clone();
    assert!(hold_undecided(&mut other, &c, uid + 1).is_empty());
    let held = hold_undecided(&mut s, &c, uid);
    assert!(s.resubmit.is_empty(), "{:?}", s.resubmit);
    assert_eq!(held.len(), 1);
    assert!(held[0].contains("-p typo"), "{held:?}");
    // A record names it: decided, replayed.
    let mut r = crate::record::tests::sample(3);
    r.exit_code = Some(1);
    r.submission = Some("typo".into());
    r.decide(false);
    c.records.push(r);
    let mut s = merge::summarize(&c);
    assert!(hold_undecided(&mut s, &c, uid).is_empty());
    assert_eq!(s.resubmit.len(), 1);
}

#[test]
fn holds_and_impossible_requests_never_start_by_themselves() {
    assert!(never_starts_by_itself("JobHeldUser"));
    assert!(never_starts_by_itself("DependencyNeverSatisfied"));
    assert!(!never_starts_by_itself("BeginTime"));
    assert!(!never_starts_by_itself("Resources"));
}

/// After MinJobAge squeue has forgotten the array; accounting (sacct) still tells which task
/// was lost with its node and which was cancelled, and every task of the dir is listed once.
#[test]
fn sacct_alone_names_lost_and_cancelled_tasks_after_squeue_forgot_them() {
    let c = dir_of_array_1000();
    let view = QueueView::from_entries(
        Answer::Answered,
        Answer::Answered,
        parse_sacct(
            "1003|1000_3|COMPLETED|c1|0:0\n1004|1000_4|FAILED|c2|1:0\n\
             1005|1000_5|NODE_FAIL|c2|0:0\n1006|1000_6|CANCELLED by 6001|c1|0:15\n\
             1000|1000_[7-9]|CANCELLED by 6001|None assigned|0:0\n",
        )
        .unwrap(),
    );
    let jobs = dir_jobs(&c);
    let live = live(&c, &jobs, &view);
    assert!(live.is_idle() && live.unknown.is_empty());
    assert_eq!(
        live.lost_lines(),
        ["lost with node c2: 1000_5 (NODE_FAIL, not requeued)"]
    );
    assert_eq!(
        live.cancelled_lines(),
        ["cancelled: 1000_6,1000_7,1000_8,1000_9 (CANCELLED by 6001)".to_string()]
    );
    assert_eq!(
        live.state_line(),
        "4 cancelled, 1 completed, 1 failed, 1 lost"
    );
    let names: Vec<String> = live.entries.iter().map(Entry::name).collect();
    assert_eq!(
        names,
        [
            "1000_3", "1000_4", "1000_5", "1000_6", "1000_7", "1000_8", "1000_9"
        ]
    );
    assert!(live.entries.iter().all(|e| e.source == Source::Sacct));
}

/// An array lost whole with its node leaves no record, and MinJobAge later squeue has
/// forgotten it: sacct's rows (uid, submit time, partition, working directory) link its
/// submission, so its frames stay expected and its tasks are named lost.
#[test]
fn sacct_links_a_submission_squeue_forgot() {
    use crate::submission::Submission;
    let argv: Vec<String> = "sbatch -p normal --array=3-4 r.sh"
        .split(' ')
        .map(str::to_owned)
        .collect();
    let mut s = Submission::from_argv(&argv, "/home/u/proj", 1_796_193_600.2);
    s.id = "s1".into();
    s.uid = Some(6001);
    let c = Collection {
        root: "/f".into(),
        records: vec![],
        submissions: vec![owned(s)],
        problems: vec![],
        owner_uid: Some(6001),
        warnings: vec![],
    };
    // Recorded shape of `sacct --allocations --format=SACCT_LINK_FORMAT` on 22.05 (TZ=UTC).
    let entries = parse_sacct(
        "14|13_3|NODE_FAIL|c2|0:0|6001|2026-12-02T06:40:01|normal|/home/u/proj\n\
         15|13_4|NODE_FAIL|c2|0:0|6001|2026-12-02T06:40:01|normal|/home/u/proj\n\
         12|12|COMPLETED|c1|0:0|6001|2026-12-02T06:40:01|normal|/home/u/other\n",
    )
    .unwrap();
    assert_eq!(
        (entries[0].uid, entries[0].partition.as_str()),
        (Some(6001), "normal")
    );
    let mut jobs = dir_jobs(&c);
    link(&c, &mut jobs, &entries);
    assert_eq!(jobs.linked, [("s1".to_string(), 13)]);
    let view = QueueView::from_entries(Answer::Answered, Answer::Answered, entries);
    let live = live(&c, &jobs, &view);
    assert_eq!(
        live.lost_lines(),
        ["lost with node c2: 13_3,13_4 (NODE_FAIL, not requeued)"]
    );
    assert_eq!(sacct_since(1000.0, 1100.0), "now-161");
    assert_eq!(sacct_since(f64::INFINITY, 1100.0), "now-86400");
}

/// `scancel 1000_[5-7]` of a script that exits 1 on SIGTERM (its records only say "failed"
/// on c2, twice): the tasks sacct says Slurm cancelled do not count against the node, so
/// the rerun is not kept off c2. Seen on CI: a shell whose `sleep` died first exited 143.
#[test]
fn tasks_slurm_cancelled_do_not_exclude_their_node() {
    let mut c = dir_of_array_1000();
    for i in 5..8 {
        let mut r = crate::record::tests::sample(i);
        r.node = "c2".into();
        r.exit_code = Some(1);
        r.decide(true);
        c.records.push(r);
    }
    let mut s = merge::summarize(&c);
    assert_eq!(s.failing_nodes, ["c2"], "records alone: the node failed");
    let view = QueueView::from_entries(
        Answer::Answered,
        Answer::Answered,
        parse_sacct(
            "1004|1000_4|FAILED|c2|1:0\n1005|1000_5|CANCELLED by 6001|c2|0:15\n\
             1006|1000_6|CANCELLED by 6001|c2|0:15\n1007|1000_7|CANCELLED by 6001|c2|0:15\n\
             1008|1000_8|RUNNING|c1|0:0\n1009|1000_9|RUNNING|c2|0:0\n",
        )
        .unwrap(),
    );
    let jobs = dir_jobs(&c);
    let live = live(&c, &jobs, &view);
    exclude_active(&mut s, &c, &live);
    assert!(s.failing_nodes.is_empty(), "{:?}", s.failing_nodes);
    assert_eq!(s.rerun_ranges, "4-7");
    assert_eq!(s.resubmit.len(), 1);
    assert!(
        !s.resubmit[0].command.contains("--exclude"),
        "{}",
        s.resubmit[0].command
    );
    // The same tasks failing on their own (sacct: FAILED) still exclude c2.
    let view = QueueView::from_entries(
        Answer::Answered,
        Answer::Answered,
        parse_sacct(
            "1004|1000_4|FAILED|c2|1:0\n1005|1000_5|FAILED|c2|1:0\n\
             1006|1000_6|FAILED|c2|1:0\n1007|1000_7|FAILED|c2|1:0\n",
        )
        .unwrap(),
    );
    let live = super::live(&c, &jobs, &view);
    let mut s = merge::summarize(&c);
    exclude_active(&mut s, &c, &live);
    assert_eq!(s.failing_nodes, ["c2"]);
    assert!(
        s.resubmit[0].command.contains("--exclude=c2"),
        "{}",
        s.resubmit[0].command
    );
}
