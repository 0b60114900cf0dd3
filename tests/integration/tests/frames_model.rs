//! The `frames` CLI's job model (issue 20) on the real cluster, as users run it: a sweep of
//! separate sbatch jobs in one frame dir, a multi-node job whose work runs in srun steps,
//! several steps in one salloc, and the reading side of trust and errors: another user's
//! unreadable dir, resubmit from a read-only dir and from a copy, and the planted-submission
//! attack in a team share (two real users).
use std::path::Path;
use std::time::Duration;

use integration_tests::{Cluster, Run, read_json};

fn frames(cluster: &Cluster, user: &str, args: &[&str]) -> Run {
    cluster.as_named_user(user, &cluster.tool("frames"), args)
}

fn status_json(cluster: &Cluster, dir: &Path) -> serde_json::Value {
    let run = frames(
        cluster,
        cluster.user(),
        &["status", "--json", dir.to_str().unwrap()],
    );
    assert!(run.code.is_some(), "{run:?}");
    serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("status --json: {e}: {run:?}"))
}

fn sbatch(cluster: &Cluster, args: &[&str]) -> u32 {
    let mut all = vec!["--parsable", "-o", "/dev/null"];
    all.extend_from_slice(args);
    let run = cluster.as_user("sbatch", &all).expect_ok("sbatch");
    run.stdout
        .trim()
        .split(';')
        .next()
        .and_then(|id| id.parse().ok())
        .unwrap_or_else(|| panic!("sbatch printed no job id: {run:?}"))
}

/// A sweep of 4 plain sbatch jobs into one frame dir, the third failing: 4 units, 3 done and
/// 1 failed, the failed job named with its reason, and the per-node table adding up to the
/// headline (issue 20 item 2).
#[test]
#[ignore = "needs the test cluster: tests/run-all.sh"]
fn a_sweep_of_four_sbatch_jobs_is_four_units() {
    let cluster = Cluster::connect();
    let work = cluster.user_dir("model-sweep");
    let dir = work.join("frames");
    let frame_dir = format!("--frame-dir={}", dir.display());
    let mut jobs = Vec::new();
    for k in 0..4 {
        let wrap = if k == 2 {
            "echo RESULT:{\\\"lr\\\":2}; exit 7".to_owned()
        } else {
            format!("echo RESULT:{{\\\"lr\\\":{k}}}")
        };
        jobs.push(sbatch(
            &cluster,
            &[
                "-p",
                "normal",
                &frame_dir,
                "--frame-pattern=none",
                "--wrap",
                &wrap,
            ],
        ));
    }
    cluster.wait_queue_empty(Duration::from_secs(60));
    let s = status_json(&cluster, &dir);
    assert_eq!(
        (&s["expected"], &s["done"], &s["failed"], &s["missing"]),
        (
            &serde_json::json!(4),
            &serde_json::json!(3),
            &serde_json::json!(1),
            &serde_json::json!(0)
        ),
        "{s:#}"
    );
    assert_eq!(s["jobs"][jobs[2].to_string()], "failed", "{s:#}");
    let (mut done, mut failed) = (0, 0);
    for n in s["nodes"].as_object().unwrap().values() {
        done += n["done"].as_u64().unwrap();
        failed += n["failed"].as_u64().unwrap();
    }
    assert_eq!((done, failed), (3, 1), "the node table adds up: {s:#}");
    let units = s["units"].as_array().unwrap();
    let bad = units
        .iter()
        .find(|u| u["job"] == jobs[2])
        .expect("job unit");
    assert_eq!(bad["exit_code"], 7);
    assert!(
        bad["reason"]
            .as_str()
            .is_some_and(|r| r.starts_with("batch step on c") && r.ends_with("exit code 7")),
        "{bad}"
    );
    for (k, job) in jobs.iter().enumerate() {
        let u = units.iter().find(|u| u["job"] == *job).expect("each job");
        assert_eq!(u["results"][0]["lr"], k, "{u}");
    }
    // The text status names the failed job; --check gates on it.
    let run = frames(
        &cluster,
        cluster.user(),
        &["status", "--check", dir.to_str().unwrap()],
    );
    assert_eq!(run.code, Some(4), "{run:?}");
    assert!(
        run.stdout
            .contains(&format!("job {} failed: batch step on", jobs[2])),
        "{run:?}"
    );
    // Resubmit reruns the failed job as it was (its own command, no --array), only it.
    let run = frames(
        &cluster,
        cluster.user(),
        &["resubmit", "--dry-run", dir.to_str().unwrap()],
    );
    assert_eq!(run.code, Some(0), "{run:?}");
    assert_eq!(run.lines().len(), 1, "{run:?}");
    assert!(
        run.stdout.contains("exit 7") && !run.stdout.contains("--array"),
        "{run:?}"
    );
    // The finisher's merge and the CLI's agree.
    let summary = read_json(&dir.join("summary.json"));
    assert_eq!(summary["expected"], 4, "{summary:#}");
    cluster.assert_no_unhealthy_nodes();
}

/// `sbatch -N2 -n4 --wrap "srun worker"`: every task of the srun step is recorded on the node
/// where it ran, the job is one done unit, hosts are both nodes, and `--require-hosts 2`
/// passes (items 1, 9).
#[test]
#[ignore = "needs the test cluster: tests/run-all.sh"]
fn a_two_node_job_with_an_srun_step_counts_every_task_and_both_hosts() {
    let cluster = Cluster::connect();
    let work = cluster.user_dir("model-multinode");
    let dir = work.join("frames");
    sbatch(
        &cluster,
        &[
            "--wait",
            "-p",
            "normal",
            "-N2",
            "-n4",
            &format!("--frame-dir={}", dir.display()),
            "--frame-pattern=none",
            "--wrap",
            "srun sh -c 'echo RESULT:{\\\"host\\\":\\\"'$(hostname)'\\\"}'",
        ],
    );
    let s = status_json(&cluster, &dir);
    assert_eq!(
        (&s["expected"], &s["done"]),
        (&serde_json::json!(1), &serde_json::json!(1)),
        "{s:#}"
    );
    assert_eq!(s["hosts"], serde_json::json!(["c1", "c2"]), "{s:#}");
    assert_eq!(s["unique_hosts"], 2);
    let unit = &s["units"][0];
    let step_tasks = unit["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["step"] == "0")
        .count();
    assert_eq!(step_tasks, 4, "{unit:#}");
    // Done: nothing to resubmit (it used to propose --array=1-3 of the whole job).
    let run = frames(
        &cluster,
        cluster.user(),
        &["resubmit", "--dry-run", dir.to_str().unwrap()],
    );
    assert_eq!(run.code, Some(3), "{run:?}");
    assert!(run.stderr.contains("nothing to resubmit"), "{run:?}");
    let run = frames(
        &cluster,
        cluster.user(),
        &["status", "--require-hosts", "2", dir.to_str().unwrap()],
    );
    assert_eq!(run.code, Some(0), "{run:?}");
    let run = frames(
        &cluster,
        cluster.user(),
        &["status", "--require-hosts", "3", dir.to_str().unwrap()],
    );
    assert_eq!(run.code, Some(6), "{run:?}");
}

/// `salloc -N2 -n4 bash -c "srun w; srun -n2 w; srun -n1 false"`: the failing third step
/// fails the job, the reason names it, and the manifest says which step each record came
/// from (item 3).
#[test]
#[ignore = "needs the test cluster: tests/run-all.sh"]
fn a_failing_step_in_salloc_fails_the_job_and_is_named() {
    let cluster = Cluster::connect();
    let work = cluster.user_dir("model-salloc");
    let dir = work.join("frames");
    let _ = cluster.as_user(
        "salloc",
        &[
            "-p",
            "normal",
            "-N2",
            "-n4",
            &format!("--frame-dir={}", dir.display()),
            "--frame-pattern=none",
            "sh",
            "-c",
            "srun true; srun -n2 true; srun -n1 false",
        ],
    );
    let s = status_json(&cluster, &dir);
    assert_eq!(
        (&s["expected"], &s["failed"]),
        (&serde_json::json!(1), &serde_json::json!(1)),
        "{s:#}"
    );
    let reason = s["units"][0]["reason"].as_str().unwrap_or("");
    assert!(
        reason.starts_with("step 2 task 0 on c") && reason.ends_with("exit code 1"),
        "{s:#}"
    );
    frames(
        &cluster,
        cluster.user(),
        &["collect", dir.to_str().unwrap()],
    );
    let manifest = std::fs::read_to_string(dir.join("manifest.jsonl")).expect("manifest");
    let steps: Vec<String> = manifest
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["step"].to_string())
        .collect();
    assert_eq!(steps.len(), 7, "{manifest}");
    for (step, n) in [("\"0\"", 4), ("\"1\"", 2), ("\"2\"", 1)] {
        assert_eq!(steps.iter().filter(|s| *s == step).count(), n, "{manifest}");
    }
}

/// An array with one failing index, owned by the test user, for the error and trust tests.
fn array_with_a_failure(cluster: &Cluster, name: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    // A previous run's files of user 2 would stop the test user's cleanup.
    let _ = cluster.as_root(
        "rm",
        &["-rf", cluster.shared_dir().join(name).to_str().unwrap()],
    );
    let work = cluster.user_dir(name);
    let dir = work.join("frames");
    // --wait exits 1 when a task failed: that is the point here.
    let run = cluster.as_user(
        "sbatch",
        &[
            "--wait",
            "-o",
            "/dev/null",
            "-p",
            "normal",
            "--array=0-3",
            &format!("--frame-dir={}", dir.display()),
            "--frame-pattern=none",
            "--wrap",
            "[ \"$FRAME_INDEX\" != 2 ]",
        ],
    );
    assert_eq!(run.code, Some(1), "one task fails: {run:?}");
    (work, dir)
}

/// Every file under `dir` (path, owner, content), to show a command wrote nothing.
fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push((
                    p.display().to_string(),
                    std::fs::read(&p).unwrap_or_default(),
                ));
            }
        }
    }
    out.sort();
    out
}

/// Item 11: another user's unreadable dir is "permission denied"; `resubmit --dry-run` writes
/// nothing; `resubmit` works on a dir the user may read but not write; a copied dir names the
/// dir the recorded jobs wrote to.
#[test]
#[ignore = "needs the test cluster: tests/run-all.sh"]
fn errors_say_what_happened_and_resubmit_only_reads() {
    let cluster = Cluster::connect();
    let user = cluster.user().to_string();
    let user2 = cluster.var("SPANK_TEST_USER2").to_string();
    let (work, dir) = array_with_a_failure(&cluster, "model-errors");
    let d = dir.to_str().unwrap();

    cluster.as_user("chmod", &["0700", d]).expect_ok("chmod");
    let run = frames(&cluster, &user2, &["status", d]);
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(run.stderr.contains("permission denied"), "{run:?}");
    assert!(!run.stderr.contains("no .frames directory"), "{run:?}");
    cluster.as_user("chmod", &["0755", d]).expect_ok("chmod");

    let before = snapshot(&dir);
    let run = frames(&cluster, &user, &["resubmit", "--dry-run", d]);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(run.stdout.contains("--array=2"), "{run:?}");
    assert_eq!(snapshot(&dir), before, "resubmit --dry-run wrote something");

    // Read-only DIR: resubmit reads only (it used to merge there first and fail with
    // "Permission denied" before showing or running anything). --dry-run shows the command;
    // a real resubmit gets to sbatch, where the plugin refuses a frame dir the user cannot
    // write (the jobs could not write their frames there either).
    cluster.as_user("chmod", &["0555", d]).expect_ok("chmod");
    let dry = frames(&cluster, &user, &["resubmit", "--dry-run", d]);
    let real = frames(&cluster, &user, &["resubmit", d]);
    cluster.as_user("chmod", &["0755", d]).expect_ok("chmod");
    assert_eq!(dry.code, Some(0), "{dry:?}");
    assert!(dry.stdout.contains("--array=2"), "{dry:?}");
    assert!(real.stderr.contains("resubmitting indices 2"), "{real:?}");
    assert!(
        real.stderr.contains("sbatch failed") && real.stderr.contains("not writable by you"),
        "{real:?}"
    );
    // Writable again: the resubmission runs and index 2 is rerun (and fails again, as written).
    let run = frames(&cluster, &user, &["resubmit", d]);
    assert!(run.stderr.contains("resubmitting indices 2"), "{run:?}");
    cluster.wait_queue_empty(Duration::from_secs(60));

    // A copy: resubmit refuses and names the original.
    let copy = work.join("copy");
    cluster
        .as_user("cp", &["-a", d, copy.to_str().unwrap()])
        .expect_ok("cp");
    let run = frames(&cluster, &user, &["resubmit", copy.to_str().unwrap()]);
    assert_eq!(run.code, Some(3), "{run:?}");
    assert!(
        run.stderr
            .contains(&format!("the recorded jobs wrote to {d}, not here")),
        "{run:?}"
    );
}

/// Item 13, the attack of the issue: in a team share (mode 777), user 2 renames `.frames`
/// away, plants a `.frames` with copies of the records and a submission whose command
/// touches a file. The owner's `frames status` warns, `frames resubmit` runs nothing of it
/// and shows what it skipped; the file never appears.
#[test]
#[ignore = "needs the test cluster: tests/run-all.sh"]
fn a_planted_submission_in_a_shared_dir_is_never_run() {
    let cluster = Cluster::connect();
    let user = cluster.user().to_string();
    let user2 = cluster.var("SPANK_TEST_USER2").to_string();
    let (work, dir) = array_with_a_failure(&cluster, "model-planted");
    let d = dir.to_str().unwrap();
    cluster
        .as_user("chmod", &["0777", work.to_str().unwrap(), d])
        .expect_ok("chmod");
    let pwned = work.join("pwned");
    // The planted submission: the victim's own, with the command replaced.
    let subs = dir.join(".frames/submissions");
    let original = std::fs::read_dir(&subs)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "json"))
        .expect("a recorded submission");
    let mut planted = read_json(&original);
    planted["argv"] = serde_json::json!([
        "sbatch",
        "-p",
        "normal",
        "--array=0-3",
        "-o",
        "/dev/null",
        "--wrap",
        format!("touch {}", pwned.display())
    ]);
    planted["array"] = serde_json::json!("0-3");
    // Two plants: a copy that still names the victim's uid, and one in the attacker's name.
    let copy = cluster.shared_dir().join("planted-copy.json");
    std::fs::write(&copy, serde_json::to_vec(&planted).unwrap()).unwrap();
    let uid2: u32 = cluster
        .as_named_user(&user2, "id", &["-u"])
        .stdout
        .trim()
        .parse()
        .expect("uid of user 2");
    planted["uid"] = serde_json::json!(uid2);
    let own = cluster.shared_dir().join("planted-own.json");
    std::fs::write(&own, serde_json::to_vec(&planted).unwrap()).unwrap();
    for f in [&copy, &own] {
        cluster
            .as_root("chmod", &["0644", f.to_str().unwrap()])
            .expect_ok("chmod");
    }
    let attack = format!(
        "set -e; cd '{d}'; mv .frames .frames.old; mkdir -p .frames/records .frames/submissions; \
         cp .frames.old/records/* .frames/records/ 2>/dev/null || true; \
         cp '{}' .frames/submissions/0.000001-evil-1.json; \
         cp '{}' .frames/submissions/0.000002-evil-2.json",
        copy.display(),
        own.display()
    );
    let run = cluster.as_named_user(&user2, "sh", &["-c", &attack]);
    assert!(run.ok(), "the attack itself: {run:?}");

    let run = frames(&cluster, &user, &["status", d]);
    assert!(run.stdout.contains("is writable by other users"), "{run:?}");
    assert!(run.stdout.contains("not by you"), "{run:?}");
    assert!(
        run.stdout.contains("says uid"),
        "the copy is a problem: {run:?}"
    );

    for dry in [true, false] {
        let mut args = vec!["resubmit", d];
        if dry {
            args.insert(1, "--dry-run");
        }
        let run = frames(&cluster, &user, &args);
        assert_eq!(run.code, Some(3), "{run:?}");
        assert!(!run.stdout.contains("touch"), "{run:?}");
        // The attacker's own submission: shown as skipped, with its command.
        assert!(
            run.stderr
                .contains(&format!("skipped (submitted by uid {uid2}, not by you"))
                && run.stderr.contains(&format!("touch {}", pwned.display())),
            "{run:?}"
        );
        // The copy naming the victim: a problem, never run.
        assert!(run.stderr.contains("its command is never run"), "{run:?}");
    }
    std::thread::sleep(Duration::from_secs(2));
    cluster.wait_queue_empty(Duration::from_secs(30));
    assert!(!pwned.exists(), "the planted command ran");
}

/// Item 13, the other half: in a frame dir whose `.frames` is the owner's, a record or
/// submission that another user managed to add (a group-writable `.frames`) is a problem,
/// not counted, never run.
#[test]
#[ignore = "needs the test cluster: tests/run-all.sh"]
fn foreign_files_in_the_owners_frames_dir_are_problems() {
    let cluster = Cluster::connect();
    let user = cluster.user().to_string();
    let user2 = cluster.var("SPANK_TEST_USER2").to_string();
    let (_work, dir) = array_with_a_failure(&cluster, "model-foreign");
    let d = dir.to_str().unwrap();
    // The failed index 2, forged as done by user 2 in a .frames opened to everyone.
    // Planted as a record file (the format older plugins wrote, still read).
    let records = dir.join(".frames/records");
    let (failed_name, failed_bytes) = integration_tests::record_texts(&dir)
        .into_iter()
        .find(|(name, _)| name.starts_with("00000002."))
        .expect("record of index 2");
    let mut forged: serde_json::Value = serde_json::from_slice(&failed_bytes).unwrap();
    forged["status"] = serde_json::json!("done");
    forged["reason"] = serde_json::Value::Null;
    forged["exit_code"] = serde_json::json!(0);
    forged["job_id"] = serde_json::json!(forged["job_id"].as_u64().unwrap() + 100_000);
    let name = failed_name.replace(
        &format!(".j{}.", forged["job_id"].as_u64().unwrap() - 100_000),
        &format!(".j{}.", forged["job_id"]),
    );
    let staged = cluster.shared_dir().join("forged-record.json");
    std::fs::write(&staged, serde_json::to_vec(&forged).unwrap()).unwrap();
    cluster
        .as_root("chmod", &["0644", staged.to_str().unwrap()])
        .expect_ok("chmod");
    for sub in [".frames", ".frames/records"] {
        cluster
            .as_user("chmod", &["0777", dir.join(sub).to_str().unwrap()])
            .expect_ok("chmod");
    }
    cluster
        .as_named_user(
            &user2,
            "cp",
            &[
                staged.to_str().unwrap(),
                records.join(&name).to_str().unwrap(),
            ],
        )
        .expect_ok("plant");
    let run = frames(&cluster, &user, &["status", "--json", d]);
    let s: serde_json::Value = serde_json::from_str(&run.stdout).expect("json");
    assert_eq!(
        (&s["done"], &s["failed"]),
        (&serde_json::json!(3), &serde_json::json!(1)),
        "{s:#}"
    );
    let problems = s["problems"].to_string();
    assert!(
        problems.contains(&name) && problems.contains("not trusted"),
        "{problems}"
    );
}
