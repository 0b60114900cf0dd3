//! spank_frames.so through the C host, including whole tasks run the way slurmstepd runs
//! them (fork, task_init in the child, exec, task_exit with the real wait status).
use frames_core::test_util::TempDir;
use std::path::Path;

use spank_test_host::{Host, Outcome, plugin_path};

fn host() -> Host {
    Host::new(plugin_path("spank-frames"))
}

/// A fresh directory for one test, removed with its contents when the guard drops.
fn temp_dir(name: &str) -> TempDir {
    TempDir::new(&format!("spank-frames-host-{name}"))
}

fn ids() -> (u32, u32) {
    // SAFETY: trivial getters.
    unsafe { (libc::getuid(), libc::getgid()) }
}

/// One array element (array job 500, task `index`) whose task runs `command`.
fn array_task(dir: &Path, index: u32, command: &str) -> Outcome {
    array_task_with(dir, index, command, &[])
}

/// [`array_task`] with more option flags (e.g. "frame-sha256").
fn array_task_with(dir: &Path, index: u32, command: &str, flags: &[&str]) -> Outcome {
    let (uid, gid) = ids();
    let mut host = host()
        .context("remote")
        .item("job_id", 500 + index)
        .item("step_id", 0xffff_fffbu32)
        .item("array_job_id", 500)
        .item("array_task_id", index)
        .item("task_id", 0)
        .item("task_global_id", 0)
        .item("total_task_count", 1)
        .item("restart_count", 0)
        .item("uid", uid)
        .item("gid", gid)
        .env("PATH", "/usr/bin:/bin")
        .call("init")
        .option("frame-dir", Some(dir.to_str().unwrap()))
        .option("frame-t0", Some("10"))
        .option("frame-dt", Some("0.5"));
    for flag in flags {
        host = host.option(flag, None);
    }
    host.call("init_post_opt").task(command).call("exit").run()
}

/// Every record (segment lines and record files), by key.
fn records(dir: &Path) -> Vec<serde_json::Value> {
    frames_core::store::read_all(&frames_core::Layout::new(dir))
        .unwrap_or_default()
        .into_iter()
        .map(|(_, _, json)| serde_json::from_slice(&json).unwrap())
        .collect()
}

#[test]
fn registers_all_options_everywhere_options_are_parsed() {
    for context in ["local", "allocator", "remote", "job_script"] {
        let out = host().context(context).call("init").run();
        assert_eq!(out.rc("init"), Some(0), "{}", out.transcript());
        assert_eq!(
            out.registered(),
            vec![
                "frame-dir",
                "frame-pattern",
                "frame-t0",
                "frame-dt",
                "result-prefix",
                "frame-sha256",
                "frame-local"
            ],
            "{context}"
        );
    }
}

#[test]
fn exports_no_prolog_or_epilog() {
    let out = host().describe().run();
    let exported = out.exported();
    assert!(
        !exported.contains(&"job_prolog") && !exported.contains(&"job_epilog"),
        "{exported:?}"
    );
    // The result capture starts there; the export list names it (the layer adds no hook).
    assert!(exported.contains(&"task_init"), "{exported:?}");
}

#[test]
fn bad_values_are_refused_at_submission() {
    for (option, value, needle) in [
        ("frame-dir", "frames", "'frames' is a relative path"),
        ("frame-t0", "soon", "soon"),
        ("frame-dt", "inf", "inf"),
        ("frame-pattern", "frame.png", "frame.png"),
    ] {
        let out = host()
            .context("allocator")
            .call("init")
            .option(option, Some(value))
            .run();
        assert_eq!(
            out.rc(&format!("option:{option}")),
            Some(-1),
            "{option}={value}"
        );
        let errors = out.logs("error").join("\n");
        assert!(
            errors.contains(&format!("spank_frames: --{option}: ")),
            "{errors}"
        );
        assert!(errors.contains(needle), "{option}={value}: {errors}");
    }
}

#[test]
fn unwritable_frame_dir_is_refused_at_submission() {
    let out = host()
        .context("allocator")
        .call("init")
        .option("frame-dir", Some("/proc/no-such-dir/frames"))
        .call("init_post_opt")
        .run();
    assert_eq!(out.rc("init_post_opt"), Some(-1), "{}", out.transcript());
    assert!(
        out.logs("error")
            .join("\n")
            .contains("cannot create '/proc/no-such-dir/frames'")
    );
}

#[test]
fn unused_plugin_changes_nothing_in_a_job() {
    let out = host()
        .context("remote")
        .item("job_id", 10)
        .item("task_global_id", 0)
        .item("task_id", 0)
        .env("PATH", "/usr/bin:/bin")
        .call("init")
        .call("init_post_opt")
        .task("echo plain output")
        .call("exit")
        .run();
    for hook in ["init", "init_post_opt", "task_init", "task_exit"] {
        assert_eq!(out.rc(hook), Some(0), "{hook}: {}", out.transcript());
    }
    assert!(out.setenvs().is_empty(), "{}", out.transcript());
    assert!(out.all_logs().is_empty(), "{}", out.transcript());
    assert!(out.task_output.contains("plain output\n"));
}

#[test]
fn frame_sha256_adds_a_sha256_beside_the_blake3() {
    let tmp = temp_dir("sha256");
    let dir = tmp.path().to_path_buf();
    let out = array_task_with(&dir, 3, "printf 'png' > \"$FRAME_PATH\"", &["frame-sha256"]);
    assert_eq!(out.rc("task_exit"), Some(0), "{}", out.transcript());
    let records = records(&dir);
    assert_eq!(records.len(), 1, "{records:?}");
    // SHA-256 of "png", as sha256sum prints it.
    assert_eq!(
        records[0]["frame_sha256"],
        "8f8cbb7dcf46e0bc7d53265749a6c17d116093a6ba95e442764060c76fd4a86c"
    );
    assert_eq!(
        records[0]["frame_blake3"].as_str(),
        Some(blake3::hash(b"png").to_hex().as_str())
    );
}

#[test]
fn task_gets_its_frame_variables_and_a_record_is_written() {
    let tmp = temp_dir("vars");
    let dir = tmp.path().to_path_buf();
    let out = array_task(
        &dir,
        7,
        "echo \"I=$FRAME_INDEX T=$FRAME_TIME P=$FRAME_PATH A=$FRAME_ATTEMPT D=$FRAME_DIR\"; \
         printf 'png' > \"$FRAME_PATH\"; echo 'RESULT:{\"loss\":0.25}'; echo 'RESULT:{broken'",
    );
    assert_eq!(out.rc("task_init"), Some(0), "{}", out.transcript());
    assert_eq!(out.rc("task_exit"), Some(0), "{}", out.transcript());
    let expected = format!("I=7 T=13.5 P={0}/frame_0007.png A=0 D={0}", dir.display());
    assert!(out.task_output.contains(&expected), "{}", out.transcript());
    // Output passes through unchanged, result lines included.
    assert!(
        out.task_output
            .contains("RESULT:{\"loss\":0.25}\nRESULT:{broken\n"),
        "{}",
        out.transcript()
    );
    let records = records(&dir);
    assert_eq!(records.len(), 1, "{records:?}");
    let record = &records[0];
    assert_eq!(record["index"], 7);
    assert_eq!(record["status"], "done", "{record}");
    assert_eq!(record["exit_code"], 0);
    assert_eq!(record["frame_size"], 3);
    assert_eq!(
        record["frame_blake3"].as_str(),
        Some(blake3::hash(b"png").to_hex().as_str())
    );
    assert!(record["frame_sha256"].is_null(), "only with --frame-sha256");
    assert_eq!(record["results"], serde_json::json!([{"loss": 0.25}]));
    assert_eq!(
        record["result_errors"].as_array().map(Vec::len),
        Some(1),
        "{record}"
    );
    assert_eq!(record["result_errors"][0]["line"], "RESULT:{broken");
    assert!(record["start_time"].as_f64().unwrap() <= record["end_time"].as_f64().unwrap());
}

#[test]
fn exit_codes_signals_and_missing_frames_are_failures_with_reasons() {
    let tmp = temp_dir("fail");
    let dir = tmp.path().to_path_buf();
    array_task(&dir, 0, "printf x > \"$FRAME_PATH\"; exit 3");
    array_task(&dir, 1, "printf x > \"$FRAME_PATH\"; kill -9 $$");
    array_task(&dir, 2, "true");
    array_task(&dir, 3, ": > \"$FRAME_PATH\"");
    let records = records(&dir);
    let by_index = |i: u64| {
        records
            .iter()
            .find(|r| r["index"] == i)
            .unwrap_or_else(|| panic!("no record {i}: {records:?}"))
    };
    assert_eq!(by_index(0)["status"], "failed");
    assert_eq!(by_index(0)["exit_code"], 3);
    assert!(
        by_index(0)["reason"]
            .as_str()
            .unwrap()
            .contains("exit code 3")
    );
    assert_eq!(by_index(1)["signal"], 9);
    assert!(
        by_index(1)["reason"].as_str().unwrap().contains("signal 9"),
        "{}",
        by_index(1)
    );
    assert!(
        by_index(2)["reason"].as_str().unwrap().contains("missing"),
        "{}",
        by_index(2)
    );
    assert!(
        by_index(3)["reason"].as_str().unwrap().contains("empty"),
        "{}",
        by_index(3)
    );
}

#[test]
fn result_file_is_collected_and_bad_json_kept_as_an_error() {
    let tmp = temp_dir("resultfile");
    let dir = tmp.path().to_path_buf();
    array_task(
        &dir,
        0,
        "printf x > \"$FRAME_PATH\"; echo '{\"rps\": 1200}' > \"$FRAME_RESULT\"",
    );
    array_task(
        &dir,
        1,
        "printf x > \"$FRAME_PATH\"; echo 'not json' > \"$FRAME_RESULT\"",
    );
    let records = records(&dir);
    assert_eq!(records[0]["results"], serde_json::json!([{"rps": 1200}]));
    assert_eq!(records[1]["results"], serde_json::json!([]));
    assert_eq!(records[1]["result_errors"][0]["source"], "result_file");
}

#[test]
fn a_second_attempt_never_overwrites_the_first() {
    let tmp = temp_dir("attempts");
    let dir = tmp.path().to_path_buf();
    array_task(&dir, 4, "exit 1");
    assert_eq!(records(&dir).len(), 1);
    // The same job running the task again (a requeue Slurm's counter did not show): a new
    // attempt with its own record; the first is kept.
    let out = array_task(&dir, 4, "echo attempt=$FRAME_ATTEMPT; exit 1");
    assert!(
        out.task_output.contains("attempt=1"),
        "{}",
        out.transcript()
    );
    let mut attempts: Vec<i64> = records(&dir)
        .iter()
        .map(|r| r["attempt"].as_i64().unwrap())
        .collect();
    attempts.sort();
    assert_eq!(attempts, vec![0, 1]);
}

#[test]
fn output_reaches_slurm_byte_for_byte() {
    let tmp = temp_dir("bytes");
    let dir = tmp.path().to_path_buf();
    let out = array_task(
        &dir,
        0,
        "printf 'a\\000b\\r\\nno newline at end'; printf x > \"$FRAME_PATH\"",
    );
    assert_eq!(
        out.task_output,
        "a\0b\r\nno newline at end",
        "{}",
        out.transcript()
    );
}

#[test]
fn last_task_merges_manifest_and_summaries() {
    let tmp = temp_dir("merge");
    let dir = tmp.path().to_path_buf();
    // What sbatch records at submission (the host's own command line is not sbatch's).
    let argv: Vec<String> = ["sbatch", "--array=0-2", "render.sh"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let layout = frames_core::layout::Layout::new(&dir);
    layout.create_dirs().unwrap();
    let mut submission = frames_core::submission::Submission::from_argv(&argv, "/", 1.0);
    submission.state = frames_core::submission::SubmissionState::Accepted;
    frames_core::submission::write(&layout, &mut submission, "login").unwrap();
    for index in 0..2 {
        array_task(&dir, index, "printf x > \"$FRAME_PATH\"");
    }
    assert!(
        !dir.join("manifest.jsonl").exists(),
        "merged before the last frame"
    );
    for index in 2..3 {
        array_task(&dir, index, "printf x > \"$FRAME_PATH\"");
    }
    let manifest = std::fs::read_to_string(dir.join("manifest.jsonl")).expect("manifest.jsonl");
    assert_eq!(manifest.lines().count(), 3, "{manifest}");
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("summary.json")).expect("summary.json"))
            .unwrap();
    assert_eq!(summary["done"], 3, "{summary}");
    assert!(dir.join("summary.csv").is_file());
    let finishers = std::fs::read_dir(dir.join(".frames"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("finish."))
        .count();
    assert_eq!(finishers, 1);
}

#[test]
fn a_requeued_job_counts_its_attempt_from_slurms_environment() {
    // Slurm 22.05 reports S_SLURM_RESTART_COUNT as 0 in a requeued batch job's slurmstepd, but
    // sets SLURM_RESTART_COUNT in its environment.
    let tmp = temp_dir("requeue");
    let dir = tmp.path().to_path_buf();
    let (uid, gid) = ids();
    let out = host()
        .context("remote")
        .item("job_id", 900)
        .item("step_id", 0xffff_fffbu32)
        .item("array_job_id", 0)
        .item("task_id", 0)
        .item("task_global_id", 0)
        .item("restart_count", 0)
        .item("uid", uid)
        .item("gid", gid)
        .env("PATH", "/usr/bin:/bin")
        .env("SLURM_RESTART_COUNT", "2")
        .call("init")
        .option("frame-dir", Some(dir.to_str().unwrap()))
        .option("frame-pattern", Some("none"))
        .call("init_post_opt")
        .task("echo attempt=$FRAME_ATTEMPT")
        .run();
    assert!(
        out.task_output.contains("attempt=2"),
        "{}",
        out.transcript()
    );
    assert_eq!(records(&dir)[0]["attempt"], 2);
}

#[test]
fn results_are_recorded_exactly_as_printed() {
    let tmp = temp_dir("as-printed");
    let dir = tmp.path().to_path_buf();
    let printed = r#"{"id":12345678901234567890123,"z":1,"a":2,"a":3,"f":1.50}"#;
    let document = "{\n  \"rps\": 1200.0,\n  \"big\": 98765432109876543210\n}\n";
    let out = array_task(
        &dir,
        0,
        &format!(
            "printf x > \"$FRAME_PATH\"; echo 'RESULT:{printed}'; printf '{}' > \"$FRAME_RESULT\"",
            document.replace('\n', "\\n")
        ),
    );
    assert_eq!(out.rc("task_exit"), Some(0), "{}", out.transcript());
    // The record as stored (a segment line holds the record's JSON text).
    let record_file = std::fs::read_dir(dir.join(".frames/records"))
        .unwrap()
        .flatten()
        .next()
        .unwrap()
        .path();
    let text = std::fs::read_to_string(&record_file).unwrap();
    assert!(text.contains(printed), "{text}");
    // The FRAME_RESULT document, joined into one line, digits and order kept.
    assert!(
        text.contains(r#"{"rps": 1200.0,"big": 98765432109876543210}"#),
        "{text}"
    );
    let captured = std::fs::read_dir(dir.join(".frames/results"))
        .unwrap()
        .flatten()
        .find(|e| e.file_name().to_string_lossy().ends_with(".captured.jsonl"))
        .unwrap();
    assert_eq!(
        std::fs::read_to_string(captured.path()).unwrap(),
        format!("{{\"result\":{printed}}}\n")
    );
    let layout = frames_core::layout::Layout::new(&dir);
    frames_core::merge::merge(&layout).unwrap();
    let manifest = std::fs::read_to_string(layout.manifest_path()).unwrap();
    assert_eq!(manifest.lines().count(), 1, "{manifest}");
    assert!(manifest.contains(printed), "{manifest}");
}

#[test]
fn dropped_result_data_is_a_warning_on_the_record() {
    let tmp = temp_dir("warnings");
    let dir = tmp.path().to_path_buf();
    array_task(
        &dir,
        0,
        "printf x > \"$FRAME_PATH\"; echo 'RESULT:{bad'; echo 'RESULT:1'; echo 'not json' > \"$FRAME_RESULT\"",
    );
    array_task(&dir, 1, "printf x > \"$FRAME_PATH\"; echo 'RESULT:2'");
    let records = records(&dir);
    let warnings = &records[0]["warnings"];
    assert_eq!(warnings.as_array().map(Vec::len), Some(2), "{}", records[0]);
    assert!(
        warnings[0]
            .as_str()
            .unwrap()
            .starts_with("result line not kept: not valid JSON after the prefix"),
        "{warnings}"
    );
    assert!(
        warnings[1]
            .as_str()
            .unwrap()
            .starts_with("FRAME_RESULT not kept: invalid JSON"),
        "{warnings}"
    );
    assert_eq!(records[0]["status"], "done", "a warning, not a failure");
    assert_eq!(records[1]["warnings"], serde_json::json!([]));
}

#[test]
fn frame_options_without_frame_dir_are_refused_only_at_submission() {
    for context in ["local", "allocator"] {
        let out = host()
            .context(context)
            .call("init")
            .option("frame-t0", Some("5"))
            .option("frame-pattern", Some("f_%04d.exr"))
            .call("init_post_opt")
            .run();
        assert_eq!(out.rc("init_post_opt"), Some(-1), "{}", out.transcript());
        let errors = out.logs("error").join("\n");
        assert!(
            errors.contains("--frame-t0, --frame-pattern have no effect without --frame-dir=DIR"),
            "{errors}"
        );
    }
    // In slurmstepd the job was already accepted: never refused there.
    let out = host()
        .context("remote")
        .item("job_id", 10)
        .call("init")
        .option("frame-t0", Some("5"))
        .call("init_post_opt")
        .run();
    assert_eq!(out.rc("init_post_opt"), Some(0), "{}", out.transcript());
}

#[test]
fn a_frame_state_dir_someone_else_owns_fails_the_task_and_gets_no_record() {
    // SAFETY: trivial getter.
    if unsafe { libc::geteuid() } != 0 {
        return; // needs a second identity (chown); CI runs as root
    }
    let tmp = temp_dir("foreign");
    let dir = tmp.path().to_path_buf();
    let state = dir.join(".frames");
    std::fs::create_dir(&state).unwrap();
    let c = std::ffi::CString::new(state.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: chown on a valid C string.
    assert_eq!(unsafe { libc::chown(c.as_ptr(), 65534, 65534) }, 0);
    let out = array_task(&dir, 0, "echo ran");
    assert_eq!(out.rc("task_init"), Some(-1), "{}", out.transcript());
    assert!(
        out.stderr
            .contains("is owned by uid 65534, not by you (uid 0)"),
        "{}",
        out.transcript()
    );
    assert!(!out.task_output.contains("ran"), "{}", out.transcript());
    assert!(!state.join("records").exists());
}

#[test]
fn output_still_written_after_the_task_ends_is_waited_for_and_recorded() {
    // A background child keeps the task's stdout open past the task's end: the record writer
    // waits for the capture to finish (blocking on its rename, at most 5 s) and records the
    // late line as complete output.
    let tmp = temp_dir("late");
    let dir = tmp.path().to_path_buf();
    let out = array_task(
        &dir,
        4,
        "(sleep 0.3; echo 'RESULT:{\"late\":1}') & printf 'png' > \"$FRAME_PATH\"",
    );
    assert_eq!(out.rc("task_exit"), Some(0), "{}", out.transcript());
    let records = records(&dir);
    assert_eq!(records.len(), 1, "{records:?}");
    let record = &records[0];
    assert_eq!(
        record["results"],
        serde_json::json!([{"late": 1}]),
        "{record}"
    );
    assert_eq!(record["result_errors"], serde_json::json!([]), "{record}");
    assert_eq!(record["status"], "done", "{record}");
}

#[test]
fn a_missing_capture_helper_fails_the_task_with_the_reason_and_only_with_frame_dir() {
    let (uid, gid) = ids();
    let tmp = temp_dir("no-helper");
    let dir = tmp.path().to_path_buf();
    let missing = dir.join("no-such-helper");
    let job = |frame_dir: bool| {
        let mut host = host()
            .arg(&format!("capture_helper={}", missing.display()))
            .context("remote")
            .item("job_id", 700)
            .item("step_id", 0xffff_fffbu32)
            .item("array_job_id", 700)
            .item("array_task_id", 0)
            .item("restart_count", 0)
            .item("task_id", 0)
            .item("task_global_id", 0)
            .item("total_task_count", 1)
            .item("uid", uid)
            .item("gid", gid)
            .env("PATH", "/usr/bin:/bin")
            .call("init");
        if frame_dir {
            host = host.option("frame-dir", Some(dir.to_str().unwrap()));
        }
        host.call("init_post_opt")
            .task("echo ran")
            .call("exit")
            .run()
    };
    let out = job(true);
    assert_eq!(out.rc("task_init"), Some(-1), "{}", out.transcript());
    assert!(
        out.stderr.contains(&format!(
            "cannot run the capture helper {}: No such file or directory",
            missing.display()
        )),
        "{}",
        out.transcript()
    );
    assert!(!out.task_output.contains("ran"), "{}", out.transcript());
    // No partial capture file left behind for task_exit to wait on.
    let results = dir.join(".frames/results");
    let left: Vec<_> = std::fs::read_dir(&results)
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(
        left.iter()
            .all(|n| !n.to_string_lossy().ends_with(".partial")),
        "{left:?}"
    );
    // The same plugstack line leaves a job without --frame-dir alone.
    let out = job(false);
    assert_eq!(out.rc("task_init"), Some(0), "{}", out.transcript());
    assert!(out.task_output.contains("ran"), "{}", out.transcript());
}

#[test]
fn a_relative_capture_helper_is_refused_naming_the_argument() {
    let out = host()
        .arg("capture_helper=bin/capture")
        .context("remote")
        .call("init")
        .run();
    // The layer reports a bad plugstack.conf line at init and fails the job's tasks.
    assert!(
        out.stdout
            .contains("capture_helper='bin/capture' is invalid: expected an absolute path"),
        "{}",
        out.transcript()
    );
}

#[test]
fn the_capture_helper_is_a_small_program_of_the_users_with_only_its_descriptors() {
    let tmp = temp_dir("helper-fds");
    let dir = tmp.path().to_path_buf();
    // The task finds its capture helper (argv names the frame dir) and prints what it is.
    let out = array_task(
        &dir,
        0,
        r#"for p in /proc/[0-9]*; do
             if [ "$(cat $p/comm 2>/dev/null)" = spank_frames-ca ] && tr '\0' ' ' <$p/cmdline | grep -qF "$FRAME_DIR/"; then
               echo "fds: $(ls $p/fd | sort -n | tr '\n' ' ')"
               echo "uid: $(awk '/^Uid/ {print $2, $3, $4}' $p/status)"
               [ "$(awk '/^PPid/ {print $2}' $p/status)" = $$ ] && echo "a child of the task"
             fi
           done"#,
    );
    assert_eq!(out.rc("task_init"), Some(0), "{}", out.transcript());
    let (uid, _) = ids();
    assert!(
        out.task_output.contains("fds: 0 1 2 3 4 5 \n"),
        "{}",
        out.transcript()
    );
    assert!(
        out.task_output
            .contains(&format!("uid: {uid} {uid} {uid}\n")),
        "{}",
        out.transcript()
    );
    // Not a child of the user's program: a shell's bare `wait` would wait for it forever.
    assert!(
        !out.task_output.contains("a child of the task"),
        "{}",
        out.transcript()
    );
}
