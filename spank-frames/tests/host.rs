//! spank_frames.so through the C host.
use spank_test_host::{Host, plugin_path};

fn host() -> Host {
    Host::new(plugin_path("spank-frames"))
}

#[test]
fn registers_frame_dir_everywhere_options_are_parsed() {
    for context in ["local", "allocator", "remote", "job_script"] {
        let out = host().context(context).call("init").run();
        assert_eq!(out.rc("init"), Some(0), "{}", out.transcript());
        assert_eq!(out.registered(), vec!["frame-dir"], "{context}");
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
}

#[test]
fn relative_frame_dir_is_refused_at_submission() {
    let out = host()
        .context("allocator")
        .call("init")
        .option("frame-dir", Some("frames"))
        .run();
    assert_eq!(out.rc("option:frame-dir"), Some(-1));
    let errors = out.logs("error").join("\n");
    assert!(
        errors.contains("spank_frames: --frame-dir: 'frames' is a relative path"),
        "{errors}"
    );
}

#[test]
fn unused_plugin_changes_nothing_in_a_job() {
    let out = host()
        .context("remote")
        .item("job_id", 10)
        .env("PATH", "/usr/bin")
        .call("init")
        .call("init_post_opt")
        .call("task_init")
        .call("exit")
        .run();
    for hook in ["init", "init_post_opt", "task_init"] {
        assert_eq!(out.rc(hook), Some(0), "{}", out.transcript());
    }
    assert!(out.setenvs().is_empty(), "{}", out.transcript());
    assert!(out.all_logs().is_empty(), "{}", out.transcript());
    assert_eq!(out.rpcs(), 0);
}

#[test]
fn unknown_plugstack_argument_names_plugin_and_key() {
    let out = host()
        .context("local")
        .arg("frame_root=/x")
        .call("init")
        .run();
    assert_eq!(out.rc("init"), Some(-1));
    assert!(
        out.logs("error")
            .join("\n")
            .contains("spank_frames: unknown plugstack.conf argument 'frame_root'")
    );
}
