//! spank_qrmi.so through the C host.
use spank_test_host::{Host, plugin_path};

fn host() -> Host {
    Host::new(plugin_path("spank-qrmi"))
}

#[test]
fn registers_qpu_everywhere_options_are_parsed() {
    for context in ["local", "allocator", "remote", "job_script"] {
        let out = host()
            .context(context)
            .arg("/etc/slurm/qrmi_config.json")
            .call("init")
            .run();
        assert_eq!(out.rc("init"), Some(0), "{}", out.transcript());
        assert_eq!(out.registered(), vec!["qpu"], "{context}");
    }
}

#[test]
fn upstream_plugstack_line_is_accepted_and_others_refused() {
    let out = host()
        .context("allocator")
        .arg("/etc/slurm/qrmi_config.json")
        .arg("--env:https_proxy=http://proxy:3128")
        .call("init")
        .run();
    assert_eq!(out.rc("init"), Some(0), "{}", out.transcript());
    let out = host()
        .context("allocator")
        .arg("/etc/slurm/qrmi_config.json")
        .arg("--verbose")
        .call("init")
        .run();
    assert_eq!(out.rc("init"), Some(-1));
    assert!(
        out.logs("error").join("\n").contains("'--verbose'"),
        "{}",
        out.transcript()
    );
}

#[test]
fn bad_qpu_list_is_refused_at_submission() {
    let out = host()
        .context("local")
        .call("init")
        .option("qpu", Some("a,,b"))
        .run();
    assert_eq!(out.rc("option:qpu"), Some(-1));
    assert!(
        out.logs("error")
            .join("\n")
            .contains("spank_qrmi: --qpu: 'a,,b' has an empty QPU name")
    );
}

#[test]
fn unused_plugin_changes_nothing_in_a_job() {
    let out = host()
        .context("remote")
        .item("job_id", 10)
        .call("init")
        .call("task_init")
        .call("exit")
        .run();
    assert_eq!(out.rc("task_init"), Some(0), "{}", out.transcript());
    assert!(
        out.setenvs().is_empty() && out.all_logs().is_empty(),
        "{}",
        out.transcript()
    );
    assert_eq!(out.rpcs(), 0);
    assert!(!out.stdout.contains("exported job_"));
}
