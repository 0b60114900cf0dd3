//! Privilege and tampering attacks on the real cluster, made by the unprivileged test users:
//! symlink swaps raced against task endings, FIFOs and hard links planted where the plugins
//! read or write, a second user aiming at the first user's frame directory or the QPU state,
//! hostile option values and hostile result output. What must hold: no root write into a
//! user-controlled path, no crossing between users, a clear error, nothing hung.
//! (frames.rs already covers a planted `.frames` symlink at submission and a one-shot swap of
//! the records directory inside the job; this file races and widens them.)
use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use integration_tests::qpu_site::{self, state_dir};
use integration_tests::{Cluster, Run};
use reliability::report;
use spank_test_support::reliability;

/// Every record the merge would read (segments and record files; a planted FIFO or symlink
/// is refused by the reader, never blocks it).
fn records(dir: &Path) -> Vec<serde_json::Value> {
    integration_tests::record_texts(dir)
        .into_iter()
        .filter_map(|(_, bytes)| serde_json::from_slice(&bytes).ok())
        .collect()
}

fn by_index(records: &[serde_json::Value], i: u64) -> Option<&serde_json::Value> {
    records.iter().find(|r| r["index"] == i)
}

/// Everything below `dir` (names), to prove nothing was written there.
fn tree(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            out.push(p.display().to_string());
            if p.is_dir() && !p.is_symlink() {
                stack.push(p);
            }
        }
    }
    out.sort();
    out
}

/// A process of ours running as a test user, killed (by PID) and reaped when dropped.
struct UserLoop(Child);

impl UserLoop {
    fn start(user: &str, script: &str) -> UserLoop {
        let child = Command::new("runuser")
            .args(["-u", user, "--", "sh", "-c", script])
            .spawn()
            .expect("runuser");
        UserLoop(child)
    }
}

impl Drop for UserLoop {
    fn drop(&mut self) {
        // runuser forwards SIGTERM to its child shell.
        // SAFETY: signalling our own child by PID.
        unsafe { libc_kill(self.0.id() as i32, 15) };
        let _ = self.0.wait();
    }
}

unsafe extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, sig: i32) -> i32;
}

fn first_error(run: &Run) -> String {
    run.stderr
        .lines()
        .find(|l| l.contains("error"))
        .unwrap_or("")
        .to_string()
}

#[test]
#[ignore = "needs the test cluster: tests/run-all.sh"]
fn symlink_swaps_raced_in_a_loop_never_lead_writes_elsewhere() {
    const TEST: &str = "symlink_swaps_raced_in_a_loop_never_lead_writes_elsewhere";
    reliability::start(TEST);
    let cluster = Cluster::connect();
    let user2 = cluster.var("SPANK_TEST_USER2").to_string();
    let work = cluster.user_dir("attack-race");
    // Two places the attacker must never reach: a root-owned directory and one of user 2.
    let root_target = cluster.scratch().join("attack-root-target");
    let _ = std::fs::remove_dir_all(&root_target);
    std::fs::create_dir_all(&root_target).unwrap();
    let other_target = cluster.shared_dir().join("attack-user2-target");
    let _ = cluster.as_named_user(&user2, "rm", &["-rf", other_target.to_str().unwrap()]);
    assert!(
        cluster
            .as_named_user(
                &user2,
                "mkdir",
                &["-m", "0755", other_target.to_str().unwrap()]
            )
            .ok()
    );
    let script = cluster.user_script(
        &work,
        "task.sh",
        "#!/bin/sh\nsleep 0.$((FRAME_INDEX % 10))\nprintf x > \"$FRAME_PATH\"\necho \"RESULT:{\\\"i\\\":$FRAME_INDEX}\"\n",
    );
    let dir = work.join("frames");
    // The racer (the test user, outside the job) swaps three things for symlinks and back,
    // in a loop: the records directory, the results directory, and the frame directory itself.
    // A task that meets a swap fails or loses its record (the user sabotages their own
    // directory; the record is written as the user, so a symlink leads nowhere root could
    // write); what must never happen is a write outside the user's directory.
    let racer = format!(
        r#"cd '{work}' || exit 1
while :; do
  for t in '{root}' '{other}'; do
    if [ -d frames/.frames/records ]; then
      mv frames/.frames/records frames/.frames/records.real 2>/dev/null && ln -sfn "$t" frames/.frames/records
      mv frames/.frames/results frames/.frames/results.real 2>/dev/null && ln -sfn "$t" frames/.frames/results
      sleep 0.01
      rm -f frames/.frames/records frames/.frames/results
      mv frames/.frames/records.real frames/.frames/records 2>/dev/null
      mv frames/.frames/results.real frames/.frames/results 2>/dev/null
      sleep 0.05
      mv frames frames.real 2>/dev/null && ln -sfn "$t" frames
      sleep 0.01
      rm -f frames; mv frames.real frames 2>/dev/null
    fi
    # Mostly real, briefly swapped: most tasks get through, and the swaps land at random
    # points of their start and end (check then use).
    sleep 0.05
  done
done"#,
        work = work.display(),
        root = root_target.display(),
        other = other_target.display()
    );
    let started = Instant::now();
    let run = {
        let _racer = UserLoop::start(cluster.user(), &racer);
        cluster.as_user(
            "sbatch",
            &[
                "--wait",
                "-p",
                "normal",
                "--array=0-39",
                "-o",
                "/dev/null",
                &format!("--frame-dir={}", dir.display()),
                script.to_str().unwrap(),
            ],
        )
    };
    let took = started.elapsed();
    // The racer was stopped anywhere in its loop: put the real directories back.
    let restore = format!(
        r#"cd '{work}' || exit 1
if [ -e frames.real ]; then rm -f frames; mv frames.real frames; fi
for d in records results; do
  if [ -e frames/.frames/$d.real ]; then rm -f frames/.frames/$d; mv frames/.frames/$d.real frames/.frames/$d; fi
done"#,
        work = work.display()
    );
    let restored = cluster.as_user("sh", &["-c", &restore]);
    assert!(restored.ok(), "{restored:?}");
    let leaked_root = tree(&root_target);
    let leaked_other = tree(&other_target);
    let uid = user_uid(&cluster, cluster.user());
    let foreign = not_owned_by(&work, uid);
    let recs = records(&dir);
    report(
        "attack: symlink race",
        "user loops swapping .frames/records, .frames/results and the frame dir itself for symlinks to a root-owned dir and to user 2's dir, while 40 array tasks end",
        &format!(
            "sbatch --wait returned {:?} after {:.0} s; {}",
            run.code,
            took.as_secs_f64(),
            first_error(&run)
        ),
        &format!(
            "{} of 40 records in the real dir ({} done; a task that met a symlink fails); files in root-owned target: {}, in user 2's dir: {}; files in the user's dir not owned by the user: {}",
            recs.len(),
            recs.iter().filter(|r| r["status"] == "done").count(),
            leaked_root.len(),
            leaked_other.len(),
            foreign.len()
        ),
        TEST,
    );
    assert!(leaked_root.is_empty(), "written as root: {leaked_root:?}");
    assert!(foreign.is_empty(), "created as another user: {foreign:?}");
    assert!(leaked_other.is_empty(), "crossed users: {leaked_other:?}");
    assert!(took < Duration::from_secs(240), "took {took:?}");
    let _ = std::fs::remove_dir_all(&root_target);
    cluster.assert_no_unhealthy_nodes();
}

#[test]
#[ignore = "needs the test cluster: tests/run-all.sh"]
fn planted_fifos_and_hard_links_neither_hang_nor_write_through() {
    const TEST: &str = "planted_fifos_and_hard_links_neither_hang_nor_write_through";
    reliability::start(TEST);
    let cluster = Cluster::connect();
    let work = cluster.user_dir("attack-plant");
    let victim = work.join("victim");
    assert!(
        cluster
            .as_user(
                "sh",
                &["-c", &format!("echo precious > '{}'", victim.display())]
            )
            .ok()
    );
    // Record names: INDEX.a0.jJOB.sbatch.t0.json (the job id of the element or the array).
    let script = cluster.user_script(
        &work,
        "task.sh",
        &format!(
            r#"#!/bin/sh
rec() {{ for j in "$SLURM_JOB_ID" "$SLURM_ARRAY_JOB_ID"; do echo "$FRAME_DIR/.frames/records/$(printf %08d "$FRAME_INDEX").a0.j$j.sbatch.t0.json"; done; }}
case "$FRAME_INDEX" in
  0) mkfifo "$FRAME_PATH" ;;
  1) printf x > "$FRAME_PATH"; rm -f "$FRAME_RESULT"; mkfifo "$FRAME_RESULT" ;;
  2) printf x > "$FRAME_PATH"; for r in $(rec); do mkfifo "$r"; done ;;
  3) printf x > "$FRAME_PATH"; for r in $(rec); do ln '{victim}' "$r"; done ;;
  4) ln '{victim}' "$FRAME_PATH" ;;
  5) printf x > "$FRAME_PATH"; rm -f "$FRAME_RESULT"; ln '{victim}' "$FRAME_RESULT" ;;
esac
true
"#,
            victim = victim.display()
        ),
    );
    let dir = work.join("frames");
    let started = Instant::now();
    let run = cluster.as_user(
        "sbatch",
        &[
            "--wait",
            "-p",
            "normal",
            "--array=0-5",
            "-o",
            "/dev/null",
            &format!("--frame-dir={}", dir.display()),
            script.to_str().unwrap(),
        ],
    );
    let took = started.elapsed();
    let recs = records(&dir);
    let victim_after = std::fs::read_to_string(&victim).unwrap_or_default();
    let what = [
        "FIFO at FRAME_PATH",
        "FIFO at FRAME_RESULT",
        "FIFO at the task's own record path",
        "hard link to a user file at the task's own record path",
        "hard link to a user file as the frame",
        "hard link to a user file as FRAME_RESULT",
    ];
    for (i, tried) in what.iter().enumerate() {
        let rec = by_index(&recs, i as u64);
        report(
            "attack: planted file",
            tried,
            &format!(
                "job ended in {:.0} s (sbatch rc {:?}); linked file still '{}'",
                took.as_secs_f64(),
                run.code,
                victim_after.trim()
            ),
            &match rec {
                Some(r) => format!(
                    "record: status {}, reason {}, result_errors {}",
                    r["status"], r["reason"], r["result_errors"]
                ),
                None => "no record".to_string(),
            },
            TEST,
        );
    }
    assert!(took < Duration::from_secs(120), "hung? took {took:?}");
    assert_eq!(victim_after, "precious\n", "written through a hard link");
    // Every task has a record (a planted file at the record path does not lose it).
    for i in 0..6 {
        assert!(by_index(&recs, i).is_some(), "no record for {i}: {recs:?}");
    }
    assert_eq!(by_index(&recs, 0).unwrap()["status"], "failed");
    cluster.assert_no_unhealthy_nodes();
}

#[test]
#[ignore = "needs the test cluster: tests/run-all.sh"]
fn a_second_user_cannot_use_the_first_users_frame_dir() {
    const TEST: &str = "a_second_user_cannot_use_the_first_users_frame_dir";
    reliability::start(TEST);
    let cluster = Cluster::connect();
    let user2 = cluster.var("SPANK_TEST_USER2").to_string();
    let work = cluster.user_dir("attack-user2");
    let dir = work.join("frames");
    cluster
        .as_user(
            "srun",
            &[
                "-p",
                "normal",
                &format!("--frame-dir={}", dir.display()),
                "--frame-pattern=none",
                "true",
            ],
        )
        .expect_ok("first user's run");
    let before = tree(&dir);
    // 0755 (the usual) and 0777 without sticky bit (careless) frame directories.
    for mode in ["0755", "0777"] {
        assert!(
            cluster
                .as_user("chmod", &[mode, dir.to_str().unwrap()])
                .ok()
        );
        for cmd in ["sbatch", "srun"] {
            let mut args = vec![
                "-p".to_string(),
                "normal".to_string(),
                format!("--frame-dir={}", dir.display()),
            ];
            if cmd == "sbatch" {
                args.extend([
                    "--wait".into(),
                    "-o".into(),
                    "/dev/null".into(),
                    "--wrap".into(),
                    "true".into(),
                ]);
            } else {
                args.push("true".into());
            }
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let run = cluster.as_named_user(&user2, cmd, &args);
            report(
                "attack: other user",
                &format!(
                    "user 2 {cmd} --frame-dir=<user 1's frame dir, mode {mode}, holding user 1's .frames>"
                ),
                &format!("rc {:?}: {}", run.code, first_error(&run)),
                &format!("user 1's frame dir unchanged: {}", tree(&dir) == before),
                TEST,
            );
            assert!(!run.ok(), "user 2 was let in ({mode}, {cmd}): {run:?}");
            assert!(run.stderr.contains("--frame-dir"), "{run:?}");
        }
    }
    assert_eq!(tree(&dir), before, "user 2 changed user 1's frame dir");
}

#[test]
#[ignore = "needs the test cluster: tests/run-all.sh"]
fn hostile_option_values_get_a_clear_error_and_run_nothing() {
    const TEST: &str = "hostile_option_values_get_a_clear_error_and_run_nothing";
    reliability::start(TEST);
    // The QPU names must reach the plugin's own checks, which need a readable config.
    let site = qpu_site::site();
    let cluster = &site.cluster;
    let work = cluster.user_dir("attack-options");
    let long = "a".repeat(5000);
    let pwn = work.join("pwned");
    let shell = format!("$(touch {0});touch {0}`touch {0}`", pwn.display());
    let frame_dir = format!("--frame-dir={}", work.join("f").display());
    // (option, value, expected to be refused at submission)
    let cases: Vec<(&str, String, bool)> = vec![
        ("--qpu", "ibm_torino=fresnel".into(), true),
        ("--qpu", "ibm_torino,,fresnel".into(), true),
        ("--qpu", "ibm\ntorino".into(), true),
        ("--qpu", "ibm\u{1}\u{1b}[2J".into(), true),
        ("--qpu", shell.clone(), true),
        ("--qpu", long.clone(), true),
        ("--frame-dir", format!("{}/a\nb", work.display()), true),
        (
            "--frame-dir",
            format!("{}/{}", work.display(), shell),
            false,
        ),
        ("--frame-dir", format!("{}/x,y=z", work.display()), false),
        ("--frame-dir", format!("{}/{}", work.display(), long), true),
        ("--frame-pattern", format!("{long}%d"), true),
        ("--frame-pattern", "f%d\u{1}\n".into(), true),
        ("--frame-pattern", "f%d%s%n%x".into(), true),
        // Legal: '/' makes subdirectories under --frame-dir and the pattern never meets a
        // shell; what matters is that nothing is executed.
        ("--frame-pattern", format!("{shell}%d"), false),
        ("--frame-t0", "1e309".into(), true),
        ("--frame-t0", long.replace('a', "1"), true),
        ("--frame-dt", "nan".into(), true),
        ("--frame-dt", "0,5".into(), true),
        // A NUL cannot travel in argv (execve ends the string there): a carriage return is
        // the nearest byte that reaches the plugin.
        ("--result-prefix", "R\r".into(), true),
        ("--result-prefix", "R\u{1b}\n".into(), true),
        ("--result-prefix", long.clone(), true),
    ];
    for (option, value, refused) in cases {
        let opt = format!("{option}={value}");
        let mut args = vec!["-p", "quantum", "-t", "1"];
        if option != "--frame-dir" && option != "--qpu" {
            args.push(&frame_dir);
        }
        args.extend([opt.as_str(), "true"]);
        let started = Instant::now();
        let run = cluster.as_user("srun", &args);
        let took = started.elapsed();
        let shown: String = if value.len() > 60 {
            format!("{}… ({} bytes)", &value[..40], value.len())
        } else {
            value.clone()
        };
        let err = run
            .stderr
            .lines()
            .find(|l| l.contains(option) || l.contains("spank_"))
            .unwrap_or("")
            .to_string();
        report(
            "attack: option value",
            &format!("srun {option}={}", shown.escape_debug()),
            &format!(
                "rc {:?} in {:.1} s: {}",
                run.code,
                took.as_secs_f64(),
                if err.len() > 200 {
                    format!("{}…", &err[..200])
                } else {
                    err.clone()
                }
            ),
            &format!("shell metacharacters executed: {}", pwn.exists()),
            TEST,
        );
        assert!(took < Duration::from_secs(60), "{opt:?}: took {took:?}");
        if refused {
            assert!(!run.ok(), "{opt:?} was accepted: {run:?}");
            assert!(
                run.stderr.contains(option) || run.stderr.contains("unknown QPU"),
                "{opt:?}: the error does not name the option: {run:?}"
            );
        }
        assert!(!pwn.exists(), "{opt:?} ran a shell command");
    }
    cluster.assert_no_unhealthy_nodes();
}

#[test]
#[ignore = "needs the test cluster: tests/run-all.sh"]
fn huge_binary_and_numerous_result_lines_are_bounded_and_output_intact() {
    const TEST: &str = "huge_binary_and_numerous_result_lines_are_bounded_and_output_intact";
    reliability::start(TEST);
    let cluster = Cluster::connect();
    let work = cluster.user_dir("attack-results");
    // Each task writes its output to a side file first, then prints it: the job's output must
    // equal that file byte for byte.
    let script = cluster.user_script(
        &work,
        "task.sh",
        &format!(
            r#"#!/bin/bash
data='{work}/data.'$FRAME_INDEX
case "$FRAME_INDEX" in
  0) {{ printf 'RESULT:{{"big":"'; head -c 3000000 /dev/zero | tr '\0' x; printf '"}}\n'; echo 'RESULT:{{"after":1}}'; }} > "$data" ;;
  1) {{ head -c 1000000 /dev/urandom; printf '\nRESULT:{{"ok":1}}\nRESULT:\377\376\0garbage\n'; head -c 100000 /dev/urandom; }} > "$data" ;;
  2) for i in $(seq 1 5000); do printf 'RESULT:{{"n":%d}}\n' "$i"; done > "$data" ;;
esac
cat "$data"
printf x > "$FRAME_PATH"
"#,
            work = work.display()
        ),
    );
    let dir = work.join("frames");
    let started = Instant::now();
    let run = cluster.as_user(
        "sbatch",
        &[
            "--wait",
            "-p",
            "normal",
            "--array=0-2",
            "-o",
            &format!("{}/out.%a", work.display()),
            &format!("--frame-dir={}", dir.display()),
            script.to_str().unwrap(),
        ],
    );
    let took = started.elapsed();
    assert!(run.ok(), "{run:?}");
    let recs = records(&dir);
    let what = [
        "a 3 MB RESULT line followed by a normal one",
        "1 MB of random bytes, a valid and a binary RESULT line, 100 kB more random bytes",
        "5000 RESULT lines",
    ];
    for (i, tried) in what.iter().enumerate() {
        let data = std::fs::read(work.join(format!("data.{i}"))).unwrap();
        let out = std::fs::read(work.join(format!("out.{i}"))).unwrap_or_default();
        let rec = by_index(&recs, i as u64).unwrap_or_else(|| panic!("no record {i}"));
        let results = rec["results"].as_array().map(Vec::len).unwrap_or(0);
        let errors = rec["result_errors"].as_array().cloned().unwrap_or_default();
        let first_error = errors
            .first()
            .and_then(|e| e["error"].as_str())
            .unwrap_or("")
            .to_string();
        let record_size = integration_tests::record_texts(&dir)
            .iter()
            .filter(|(name, _)| name.starts_with(&format!("{i:08}.")))
            .map(|(_, bytes)| bytes.len() as u64)
            .sum::<u64>();
        report(
            "attack: result output",
            tried,
            &format!(
                "job output {} bytes, identical to what the task printed: {}; job ended in {:.0} s",
                out.len(),
                out == data,
                took.as_secs_f64()
            ),
            &format!(
                "record ({record_size} bytes): status {}, {results} results, {} result errors{}",
                rec["status"],
                errors.len(),
                if first_error.is_empty() {
                    String::new()
                } else {
                    format!(" (first: {})", first_error)
                }
            ),
            TEST,
        );
        assert!(out == data, "output of task {i} changed");
        assert_eq!(rec["status"], "done", "{i}");
        match i {
            0 => {
                assert_eq!(results, 1, "the normal line after the huge one");
                assert!(first_error.contains("limit"), "{first_error}");
            }
            1 => {
                assert_eq!(results, 1);
                assert!(!errors.is_empty());
            }
            _ => assert_eq!(results, 5000),
        }
    }
    assert!(took < Duration::from_secs(120), "took {took:?}");
}

/// The numeric uid of `user`.
fn user_uid(cluster: &Cluster, user: &str) -> u32 {
    let run = cluster.as_named_user(user, "id", &["-u"]);
    run.stdout
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("id -u: {run:?}"))
}

/// Every entry under `dir` (symlinks not followed) whose owner is not `uid`.
fn not_owned_by(dir: &Path, uid: u32) -> Vec<String> {
    use std::os::unix::fs::MetadataExt;
    let mut found = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let Ok(meta) = std::fs::symlink_metadata(e.path()) else {
                continue;
            };
            if meta.uid() != uid {
                found.push(format!("{} (uid {})", e.path().display(), meta.uid()));
            }
            if meta.is_dir() {
                todo.push(e.path());
            }
        }
    }
    found
}

/// A plugstack line loading `so` (the snippets' comments mention the file name too).
fn is_plugin_line(line: &str, so: &str) -> bool {
    let mut words = line.split_whitespace();
    matches!(words.next(), Some("required" | "optional")) && words.next() == Some(so)
}

#[test]
#[ignore = "needs the test cluster: tests/run-all.sh"]
fn users_cannot_reach_the_qpu_state_and_a_user_owned_state_dir_is_refused() {
    const TEST: &str = "users_cannot_reach_the_qpu_state_and_a_user_owned_state_dir_is_refused";
    reliability::start(TEST);
    let site = qpu_site::site();
    let cluster = &site.cluster;
    let user2 = cluster.var("SPANK_TEST_USER2").to_string();
    // The real state directory: root-only, created by a QPU job (this one, on the mock).
    let run = cluster.as_user(
        "srun",
        &["-p", "quantum", "-w", "q1", "--qpu=ibm_torino", "true"],
    );
    assert!(run.ok(), "a QPU job on the mock backend: {run:?}");
    let state = state_dir(cluster, "q1");
    assert!(
        state.exists(),
        "no state dir {} after a QPU job",
        state.display()
    );
    let meta = {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(&state).unwrap();
        format!(
            "state dir owner uid {}, mode {:o}",
            m.uid(),
            m.mode() & 0o7777
        )
    };
    {
        for (user, cmd) in [
            (
                cluster.user().to_string(),
                format!("ls '{}'", state.display()),
            ),
            (
                user2.clone(),
                format!("touch '{}/lease-1-ibm_torino.json'", state.display()),
            ),
            (user2.clone(), format!("cat '{}'/lease-*", state.display())),
        ] {
            let run = cluster.as_named_user(&user, "sh", &["-c", &cmd]);
            report(
                "attack: QPU state",
                &format!("{user}: {cmd}"),
                &format!("rc {:?}: {}", run.code, run.stderr.trim()),
                &meta,
                TEST,
            );
            assert!(!run.ok(), "{user} could {cmd}: {run:?}");
        }
    }
    // An admin who puts state_dir where users can write: a user pre-creates it (own dir, or a
    // symlink to a dir of theirs). The plugin must refuse it, not adopt it.
    let snippet_path = cluster.scratch().join("plugstack.conf.d/spank_qrmi.conf");
    let snippet = std::fs::read_to_string(&snippet_path).unwrap();
    let line = snippet
        .lines()
        .find(|l| is_plugin_line(l, "spank_qrmi.so"))
        .unwrap()
        .to_string();
    let shared = cluster.shared_dir().join("attack-state");
    let _ = std::fs::remove_dir_all(&shared);
    assert!(
        cluster
            .as_user("mkdir", &["-p", shared.join("mine").to_str().unwrap()])
            .ok()
    );
    assert!(
        cluster
            .as_user("chmod", &["0700", shared.join("mine").to_str().unwrap()])
            .ok()
    );
    assert!(
        cluster
            .as_user(
                "ln",
                &[
                    "-s",
                    shared.join("mine").to_str().unwrap(),
                    shared.join("link").to_str().unwrap()
                ]
            )
            .ok()
    );
    let frames_line =
        std::fs::read_to_string(cluster.scratch().join("plugstack.conf.d/spank_frames.conf"))
            .unwrap_or_default()
            .lines()
            .find(|l| is_plugin_line(l, "spank_frames.so"))
            .unwrap_or("")
            .to_string();
    for planted in ["mine", "link"] {
        let target = shared.join(planted);
        let state_arg = line
            .split_whitespace()
            .find(|w| w.starts_with("state_dir="))
            .unwrap()
            .to_string();
        let patched = line.replace(&state_arg, &format!("state_dir={}", target.display()));
        let old = cluster.set_plugstack(&format!("{patched}\n{frames_line}\n"));
        let run = cluster.as_user(
            "srun",
            &["-p", "quantum", "-w", "q1", "--gres=qpu:1", "true"],
        );
        cluster.set_plugstack(&old);
        let inside = tree(&shared.join("mine"));
        report(
            "attack: QPU state",
            &format!(
                "admin sets state_dir to a user-writable place; the user pre-creates it as {}",
                if planted == "mine" {
                    "their own 0700 dir"
                } else {
                    "a symlink to their dir"
                }
            ),
            &format!(
                "rc {:?}: {}",
                run.code,
                run.stderr
                    .lines()
                    .find(|l| l.contains("state directory"))
                    .unwrap_or("")
            ),
            &format!("files written into the user's dir: {}", inside.len()),
            TEST,
        );
        assert!(!run.ok(), "{run:?}");
        assert!(run.stderr.contains("state directory"), "{run:?}");
        assert!(
            inside.is_empty(),
            "root wrote into the user's dir: {inside:?}"
        );
    }
    cluster.assert_no_unhealthy_nodes();
}
