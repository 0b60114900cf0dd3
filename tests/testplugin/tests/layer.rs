//! The spank layer, driven through the C host: exports, options, items, environment, the
//! failure policy per context, and panic containment.
use spank_test_host::{Host, plugin_path};

fn host() -> Host {
    Host::new(plugin_path("spank-testplugin"))
}

#[test]
fn exports_plugin_symbols_and_only_listed_hooks() {
    let out = host().describe().run();
    let (name, kind, version) = out
        .describe()
        .unwrap_or_else(|| panic!("{}", out.transcript()));
    assert_eq!(name, "spank_testplugin");
    assert_eq!(kind, "spank");
    assert_eq!(version, spank::sys::SLURM_VERSION_NUMBER);
    let exported = out.exported();
    assert!(exported.contains(&"init") && exported.contains(&"task_init"));
    assert!(exported.contains(&"job_epilog"));
    // Not listed in spank_plugin!: exporting it would make slurmd run a prolog for every job.
    assert!(!exported.contains(&"job_prolog"), "{exported:?}");
    assert!(!exported.contains(&"slurmd_exit"), "{exported:?}");
}

#[test]
fn registers_options_where_they_are_parsed_and_not_in_slurmd() {
    for context in ["local", "remote", "allocator", "job_script"] {
        let out = host().context(context).call("init").run();
        assert_eq!(out.rc("init"), Some(0), "{}", out.transcript());
        assert_eq!(
            out.registered(),
            vec!["test-value", "test-flag"],
            "{context}"
        );
    }
    let out = host().context("slurmd").call("init").run();
    assert_eq!(out.rc("init"), Some(0));
    assert!(out.registered().is_empty());
}

#[test]
fn option_values_reach_the_plugin() {
    let out = host()
        .context("local")
        .call("init")
        .option("test-value", Some("v1"))
        .option("test-flag", None)
        .call("init_post_opt")
        .run();
    assert_eq!(out.rc("option:test-value"), Some(0));
    assert_eq!(out.rc("option:test-flag"), Some(0));
    let line = out
        .logs("info")
        .into_iter()
        .find(|l| l.contains("hook=init_post_opt"))
        .unwrap();
    assert!(line.contains("value=Some(\"v1\") flag=true"), "{line}");
}

#[test]
fn refused_option_fails_the_submission_with_its_name() {
    let out = host()
        .context("allocator")
        .call("init")
        .option("test-value", Some("bad"))
        .run();
    assert_eq!(out.rc("option:test-value"), Some(-1));
    let errors = out.logs("error");
    assert!(
        errors
            .iter()
            .any(|e| e.contains("spank_testplugin: --test-value: 'bad' is refused")),
        "{errors:?}"
    );
}

#[test]
fn typed_items_in_remote_context() {
    let out = host()
        .context("remote")
        .item("job_id", 4242)
        .item("step_id", 3)
        .item("array_job_id", 4200)
        .item("array_task_id", 42)
        .item("task_id", 1)
        .item("task_global_id", 7)
        .item("task_exit_status", 9) // killed by SIGKILL
        .item("uid", 6001)
        .item("gid", 6001)
        .item("restart_count", 2)
        .item("argv", "render,--frame,7")
        .item("slurm_version", "22.05.8")
        .call("init")
        .call("task_exit")
        .run();
    let line = out
        .logs("info")
        .into_iter()
        .find(|l| l.contains("hook=task_exit"))
        .unwrap();
    for expected in [
        "job=4242",
        "step=3",
        "array=Some((4200, 42))",
        "task=1",
        "global=7",
        "exit=Signaled { signal: 9, core_dumped: false }",
        "uid=6001",
        "restart=2",
        "argv=[\"render\", \"--frame\", \"7\"]",
        "version=\"22.05.8\"",
    ] {
        assert!(line.contains(expected), "missing {expected} in {line}");
    }
}

#[test]
fn non_array_job_and_exit_code() {
    let out = host()
        .context("remote")
        .item("array_job_id", 0)
        .item("array_task_id", 4294967294u32)
        .item("task_exit_status", 3 << 8)
        .call("init")
        .call("task_exit")
        .run();
    let line = out
        .logs("info")
        .into_iter()
        .find(|l| l.contains("hook=task_exit"))
        .unwrap();
    assert!(
        line.contains("array=None") && line.contains("exit=Exited(3)"),
        "{line}"
    );
}

#[test]
fn null_from_slurm_is_an_error_not_a_panic() {
    let out = host()
        .context("remote")
        .null_item("slurm_version")
        .null_item("argv")
        .call("init")
        .call("exit")
        .run();
    assert_eq!(out.rc("init"), Some(0), "{}", out.transcript());
    assert_eq!(out.rc("exit"), Some(0));
    let line = out
        .logs("info")
        .into_iter()
        .find(|l| l.contains("hook=exit"))
        .unwrap();
    assert!(
        line.contains("version=err(Slurm version: Slurm returned NULL)"),
        "{line}"
    );
    assert!(line.contains("argv=[]"), "{line}");
}

#[test]
fn environment_get_and_set_in_remote_context() {
    let out = host()
        .context("remote")
        .env("TESTPLUGIN_INPUT", "from-user")
        .env("TESTPLUGIN_KEEP", "user-value")
        .call("init")
        .option("test-value", Some("x"))
        .call("task_init")
        .run();
    assert_eq!(out.rc("task_init"), Some(0), "{}", out.transcript());
    assert_eq!(out.env("TESTPLUGIN_SEEN"), Some("from-user+Some(\"x\")"));
    // overwrite=false leaves an existing value alone and is not an error.
    assert_eq!(out.env("TESTPLUGIN_KEEP"), Some("user-value"));
}

#[test]
fn unknown_plugstack_argument_is_refused_by_name() {
    let out = host()
        .context("allocator")
        .arg("colour=red")
        .call("init")
        .run();
    assert_eq!(out.rc("init"), Some(-1));
    let errors = out.logs("error").join("\n");
    assert!(
        errors.contains("spank_testplugin") && errors.contains("'colour'"),
        "{errors}"
    );
}

#[test]
fn log_level_argument_controls_debug_lines() {
    let quiet = host().context("allocator").call("init").run();
    assert!(quiet.logs("debug").is_empty());
    let loud = host()
        .context("allocator")
        .arg("log_level=debug")
        .call("init")
        .run();
    let debug = loud.logs("debug");
    assert!(debug.contains(&"spank_testplugin: debug line"), "{debug:?}");
    assert!(
        debug.contains(&"spank_testplugin: loaded in allocator context"),
        "{debug:?}"
    );
    let off = host()
        .context("allocator")
        .arg("log_level=off")
        .call("init")
        .run();
    assert!(off.all_logs().is_empty(), "{}", off.transcript());
}

#[test]
fn a_bad_log_level_never_fails_a_plugin_and_slurmd_names_it() {
    // In every context the plugin loads (a log setting must not fail jobs), at the default
    // level; only slurmd's start (where admins read) says what is wrong, once.
    for context in ["local", "allocator", "remote", "slurmd", "job_script"] {
        for (word, named) in [
            ("log_level=loud", "log_level='loud'"),
            (
                "log_level=debug log_level=off",
                "log_level=debug log_level=off",
            ),
        ] {
            let mut run = host().context(context);
            for w in word.split(' ') {
                run = run.arg(w);
            }
            let out = run.call("init").run();
            assert_eq!(
                out.rc("init"),
                Some(0),
                "{context} {word}: {}",
                out.transcript()
            );
            assert!(
                out.logs("debug").is_empty(),
                "{context}: default level kept"
            );
            let errors = out.logs("error").join("\n");
            if context == "slurmd" {
                assert!(
                    errors.contains("plugstack.conf") && errors.contains(named),
                    "{word}: {errors}"
                );
            } else {
                assert!(errors.is_empty(), "{context} {word}: {errors}");
            }
        }
    }
}

#[test]
fn each_callback_logs_its_own_duration_at_debug_level() {
    let loud = host()
        .context("remote")
        .arg("log_level=debug")
        .call("init")
        .call("task_exit")
        .run();
    let debug = loud.logs("debug");
    for hook in ["init", "task_exit"] {
        let prefix = format!("spank_testplugin: hook {hook} in remote context took ");
        let line = debug
            .iter()
            .find(|l| l.starts_with(&prefix))
            .unwrap_or_else(|| panic!("no timing line for {hook}: {debug:?}"));
        let micros = line[prefix.len()..].trim_end_matches(" us");
        assert!(micros.parse::<u64>().is_ok(), "{line}");
    }
    let quiet = host()
        .context("remote")
        .call("init")
        .call("task_exit")
        .run();
    assert!(quiet.logs("debug").is_empty(), "{}", quiet.transcript());
}

#[test]
fn panic_becomes_an_error_and_the_next_callback_works() {
    let out = host()
        .context("local")
        .arg("panic_in=init_post_opt")
        .call("init")
        .option("test-value", Some("kept"))
        .call("init_post_opt")
        .call("local_user_init")
        .call("init_post_opt")
        .run();
    assert_eq!(
        out.exit_code,
        Some(0),
        "host must not abort: {}",
        out.transcript()
    );
    assert_eq!(out.rcs("init_post_opt"), vec![Some(-1), Some(-1)]);
    assert_eq!(out.rc("local_user_init"), Some(0));
    let errors = out.logs("error").join("\n");
    assert!(errors.contains("internal error (panic)"), "{errors}");
    assert!(
        errors.contains("requested panic in init_post_opt"),
        "{errors}"
    );
    // The state survived the panic: the option value and the call count are still there.
    let line = out
        .logs("info")
        .into_iter()
        .find(|l| l.contains("hook=local_user_init"))
        .unwrap();
    assert!(
        line.contains("calls=3") && line.contains("value=Some(\"kept\")"),
        "{line}"
    );
}

#[test]
fn panic_in_option_callback_is_contained() {
    let out = host()
        .context("allocator")
        .call("init")
        .option("test-value", Some("panic"))
        .option("test-value", Some("fine"))
        .call("init_post_opt")
        .run();
    assert_eq!(out.exit_code, Some(0), "{}", out.transcript());
    assert_eq!(out.rcs("option:test-value"), vec![Some(-1), Some(0)]);
}

#[test]
fn remote_errors_before_fork_fail_the_tasks_not_the_node() {
    for hook in ["init", "init_post_opt", "user_init"] {
        let out = host()
            .context("remote")
            .arg(&format!("fail_in={hook}"))
            .call("init")
            .call("init_post_opt")
            .call("user_init")
            .call("task_init")
            .call("exit")
            .run();
        // Returning an error here could leave the job pending and drain the node.
        assert_eq!(out.rc(hook), Some(0), "{hook}: {}", out.transcript());
        assert_eq!(
            out.rc("task_init"),
            Some(-1),
            "{hook}: {}",
            out.transcript()
        );
        assert!(
            out.stderr.contains(&format!("requested failure in {hook}")),
            "{hook}: {}",
            out.transcript()
        );
        assert_eq!(out.rc("exit"), Some(0));
    }
}

#[test]
fn remote_panic_in_init_is_deferred_to_task_init() {
    let out = host()
        .context("remote")
        .arg("panic_in=init")
        .call("init")
        .call("task_init")
        .run();
    assert_eq!(out.rc("init"), Some(0), "{}", out.transcript());
    assert_eq!(out.rc("task_init"), Some(-1));
    assert!(
        out.stderr.contains("requested panic in init"),
        "{}",
        out.transcript()
    );
}

#[test]
fn task_init_failure_fails_the_task() {
    let out = host()
        .context("remote")
        .arg("fail_in=task_init")
        .call("init")
        .call("task_init")
        .run();
    assert_eq!(out.rc("task_init"), Some(-1));
}

#[test]
fn slurmd_and_epilog_errors_are_only_logged() {
    let out = host()
        .context("slurmd")
        .arg("colour=red")
        .call("init")
        .run();
    assert_eq!(out.rc("init"), Some(0), "{}", out.transcript());
    assert!(out.logs("error").iter().any(|e| e.contains("'colour'")));
    let out = host()
        .context("job_script")
        .arg("panic_in=job_epilog")
        .call("init")
        .call("job_epilog")
        .run();
    assert_eq!(out.rc("job_epilog"), Some(0), "{}", out.transcript());
    assert!(
        out.logs("error")
            .iter()
            .any(|e| e.contains("requested panic in job_epilog"))
    );
}

#[test]
fn submission_errors_fail_the_command() {
    let out = host()
        .context("allocator")
        .arg("fail_in=init")
        .call("init")
        .run();
    assert_eq!(out.rc("init"), Some(-1));
    let out = host()
        .context("local")
        .arg("fail_in=local_user_init")
        .call("init")
        .call("local_user_init")
        .run();
    assert_eq!(out.rc("local_user_init"), Some(-1));
}

#[test]
fn epilog_without_slurm_spank_init_still_sees_the_plugstack_arguments() {
    // Slurm 22.05's `slurmstepd spank epilog` calls slurm_spank_job_epilog without init.
    let out = host()
        .context("job_script")
        .arg("log_level=debug")
        .arg("fail_in=job_epilog")
        .call("job_epilog")
        .run();
    assert_eq!(out.rc("job_epilog"), Some(0), "{}", out.transcript());
    let debug = out.logs("debug");
    assert!(
        debug.contains(&"spank_testplugin: loaded in job_script context"),
        "{}",
        out.transcript()
    );
    assert!(
        out.logs("error")
            .iter()
            .any(|e| e.contains("requested failure in job_epilog")),
        "{}",
        out.transcript()
    );
}
