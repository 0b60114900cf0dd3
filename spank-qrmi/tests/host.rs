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
    // A word upstream ignores fails nothing (issue 15 item 1); slurmd says so once, naming it.
    for context in ["allocator", "local", "remote", "slurmd"] {
        let out = host()
            .context(context)
            .arg("/etc/slurm/qrmi_config.json")
            .arg("--verbose")
            .call("init")
            .run();
        assert_eq!(out.rc("init"), Some(0), "{context}: {}", out.transcript());
        let named = out
            .all_logs()
            .join("\n")
            .contains("'--verbose' is not known and is ignored");
        assert_eq!(
            named,
            context == "slurmd",
            "{context}: {}",
            out.transcript()
        );
    }
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

// Issue 15 rule: the submitting host's line and file say nothing about the compute node's,
// and upstream does nothing at submission. Before: a login-node line whose first word is not
// an absolute path (`verbose`, a relative path), a malformed `--env:`, a copy of the file that
// is not JSON or is world-writable, or a placeholder URL in the copy refused every --qpu
// submission that upstream queues and the compute node runs. Unknown names stay refused.
#[test]
fn only_unknown_names_are_refused_at_submission() {
    let dir = std::env::temp_dir().join(format!("qrmi-host-submit-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let write = |name: &str, text: &str, mode: u32| {
        use std::os::unix::fs::PermissionsExt;
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path.to_str().unwrap().to_string()
    };
    let good = r#"{"resources": [
        {"name": "felis", "type": "alice-bob-felis", "environment": {}},
        {"name": "heron", "type": "ibm-quantum-system", "environment": {
            "QRMI_IBM_QS_ENDPOINT": "<REDACTED ON LOGIN NODES>"}}]}"#;
    let readable = write("good.json", good, 0o644);
    let cases: Vec<(Vec<String>, &str)> = vec![
        (vec!["verbose".into()], "felis"),
        (vec!["etc/qrmi_config.json".into()], "felis"),
        (vec![readable.clone(), "--env:NOVALUE".into()], "felis"),
        (vec![write("bad.json", "{\"resources\": [", 0o644)], "felis"),
        (vec![write("open.json", good, 0o666)], "felis"),
        (vec![readable.clone()], "felis,heron"),
    ];
    for context in ["local", "allocator"] {
        for (args, qpus) in &cases {
            let mut host = host().context(context);
            for arg in args {
                host = host.arg(arg);
            }
            let out = host
                .call("init")
                .option("qpu", Some(qpus))
                .call("init_post_opt")
                .run();
            assert_eq!(
                out.rc("init_post_opt"),
                Some(0),
                "{context} {args:?} --qpu={qpus}: {}",
                out.transcript()
            );
        }
        let out = host()
            .context(context)
            .arg(&readable)
            .call("init")
            .option("qpu", Some("felis,nosuch"))
            .call("init_post_opt")
            .run();
        assert_eq!(out.rc("init_post_opt"), Some(-1), "{}", out.transcript());
        assert!(
            out.logs("error")
                .join("\n")
                .contains("unknown QPU 'nosuch': available QPUs are felis"),
            "{}",
            out.transcript()
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// slurmd runs a SPANK prolog/epilog for every job once any plugin exports one.
#[test]
fn exports_no_job_prolog_or_epilog_but_an_exit_hook() {
    let exported = host().describe().run();
    let exported = exported.exported();
    assert!(exported.contains(&"exit"), "{exported:?}");
    // Listed only so errors deferred from slurmstepd's init_post_opt fail the tasks.
    assert!(exported.contains(&"task_init"), "{exported:?}");
    assert!(
        !exported.contains(&"job_prolog") && !exported.contains(&"job_epilog"),
        "{exported:?}"
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

mod lifecycle {
    //! Acquire in slurmstepd, release at the batch step's exit or by the job's keeper once
    //! "squeue" (a stand-in on the keeper's PATH, answering from a file) says the job ended,
    //! through the C host with a fake controller answer and the loopback mock backends.
    use spank_test_host::{Host, Outcome, plugin_path};
    use spank_test_support::mock_server::{MockServer, Mode};
    use std::os::unix::fs::PermissionsExt;
    use std::path::{Path, PathBuf};

    struct Site {
        dir: PathBuf,
        /// Holds the stand-in `squeue`; `job_state` there is what it answers.
        bin: PathBuf,
        /// A slurm.conf giving this host a QPU GRES (what slurmstepd finds in SLURM_CONF).
        slurm_conf: PathBuf,
        config: PathBuf,
        state: PathBuf,
        server: MockServer,
    }

    fn site(tag: &str) -> Site {
        let dir = std::env::temp_dir().join(format!("qrmi-host-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let server = MockServer::start();
        let config = dir.join("qrmi_config.json");
        let text = serde_json::json!({"resources": [
            {"name": "ibm_torino", "type": "ibm-quantum-compute-service", "environment": {
                "QRMI_IBM_QCS_ENDPOINT": format!("{}/api", server.base),
                "QRMI_IBM_QCS_IAM_ENDPOINT": server.base.clone(),
                "QRMI_IBM_QCS_IAM_APIKEY": "sekret-api-key-123",
                "QRMI_IBM_QCS_SERVICE_CRN": "crn:v1:test",
                "QRMI_IBM_QCS_SESSION_MODE": "batch"}},
            {"name": "fresnel", "type": "pasqal-local", "environment": {"QRMI_WARDEN_URL": format!("{}/warden", server.base)}},
            {"name": "felis", "type": "alice-bob-felis", "environment": {}}
        ]});
        std::fs::write(&config, text.to_string()).unwrap();
        std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o600)).unwrap();
        let state = dir.join("state");
        let slurm_conf = dir.join("slurm.conf");
        std::fs::write(
            &slurm_conf,
            format!("NodeName={} CPUs=4 Gres=qpu:ibm_torino:1\n", hostname()),
        )
        .unwrap();
        let bin = dir.join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        let squeue = bin.join("squeue");
        std::fs::write(
            &squeue,
            "#!/bin/sh\ncat \"$(dirname \"$0\")/job_state\" 2>/dev/null || echo RUNNING\n",
        )
        .unwrap();
        std::fs::set_permissions(&squeue, std::fs::Permissions::from_mode(0o755)).unwrap();
        Site {
            dir,
            bin,
            slurm_conf,
            config,
            state,
            server,
        }
    }

    impl Drop for Site {
        /// A keeper still waiting for its job sees the state directory gone and exits.
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    /// What the stand-in squeue says of job 77 from now on.
    fn set_job_state(site: &Site, state: &str) {
        std::fs::write(site.bin.join("job_state"), format!("{state}\n")).unwrap();
    }

    /// The job ends: its keeper releases everything within a few seconds.
    fn end_job(site: &Site) {
        set_job_state(site, "COMPLETED");
        let started = std::time::Instant::now();
        while !leases(&site.state).is_empty() || !keepers(&site.state).is_empty() {
            assert!(
                started.elapsed() < std::time::Duration::from_secs(30),
                "the keeper released nothing 30 s after the job ended: {:?}",
                leases(&site.state)
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }

    /// Registered keeper processes that still run.
    fn keepers(state: &Path) -> Vec<String> {
        std::fs::read_dir(state)
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.starts_with("keeper-"))
                    .filter(|n| {
                        let pid = n.split('-').nth(2).unwrap_or("0");
                        Path::new(&format!("/proc/{pid}")).exists()
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    fn hostname() -> String {
        let mut buf = [0u8; 256];
        // SAFETY: gethostname writes at most buf.len() bytes.
        unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
        let end = buf.iter().position(|&b| b == 0).unwrap_or(0);
        String::from_utf8_lossy(&buf[..end]).into_owned()
    }

    fn host(site: &Site) -> Host {
        Host::new(plugin_path("spank-qrmi"))
            .process_env("PATH", &format!("{}:/usr/bin:/bin", site.bin.display()))
            .arg(site.config.to_str().unwrap())
            .arg(&format!("state_dir={}", site.state.display()))
            .arg("http_timeout=2")
            // The mock warden asks for no munge credential, and the build machine need not run
            // munged; the default (a credential whenever munge is installed) is tested on the
            // cluster (qrmi_compat: pasqal_local_gets_a_munge_credential_by_default).
            .arg("warden_munge=no")
    }

    fn step(site: &Site, qpu: Option<&str>, job: &[(&str, &str)]) -> Outcome {
        let mut h = host(site)
            .context("remote")
            .item("job_id", 77)
            .item("uid", 6001)
            .item("gid", 6001)
            .item("task_global_id", 0)
            .env("PATH", "/bin");
        for (field, value) in job {
            h = h.job(field, value);
        }
        h = h.call("init");
        if let Some(q) = qpu {
            h = h.option("qpu", Some(q));
        }
        h.call("init_post_opt").call("task_init").run()
    }

    /// The batch step of job 77 asking for `qpu`, from its start to its exit.
    fn batch_step(site: &Site, qpu: &str) -> Outcome {
        host(site)
            .context("remote")
            .item("job_id", 77)
            .item("step_id", 0xfffffffbu32)
            .item("uid", 6001)
            .item("gid", 6001)
            .job("nodes", "q2")
            .call("init")
            .option("qpu", Some(qpu))
            .call("init_post_opt")
            .call("task_init")
            .call("exit")
            .run()
    }

    fn leases(state: &Path) -> Vec<String> {
        std::fs::read_dir(state)
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.starts_with("lease-"))
                    .collect()
            })
            .unwrap_or_default()
    }

    #[test]
    fn qpu_option_acquires_once_and_the_keeper_releases_when_the_job_ends() {
        let site = site("option");
        let out = step(
            &site,
            Some("fresnel,felis"),
            &[("time_limit", "10"), ("nodes", "q2")],
        );
        assert_eq!(out.rc("init_post_opt"), Some(0), "{}", out.transcript());
        assert_eq!(out.rc("task_init"), Some(0), "{}", out.transcript());
        assert_eq!(out.rpcs(), 1, "one controller call per step");
        assert_eq!(out.env("QRMI_JOB_QPU_RESOURCES"), Some("fresnel,felis"));
        assert_eq!(
            out.env("SLURM_JOB_QPU_TYPES"),
            Some("pasqal-local,alice-bob-felis")
        );
        assert_eq!(out.env("fresnel_QRMI_JOB_TIMEOUT_SECONDS"), Some("600"));
        let token = out
            .env("fresnel_QRMI_JOB_ACQUISITION_TOKEN")
            .expect("token")
            .to_string();
        assert!(
            site.server
                .requests()
                .iter()
                .any(|r| r.method == "POST" && r.target == "/warden/sessions")
        );
        assert_eq!(leases(&site.state).len(), 2);
        // A later step of the same job reuses the leases: no new session.
        let again = step(
            &site,
            Some("fresnel,felis"),
            &[("time_limit", "10"), ("nodes", "q2")],
        );
        assert_eq!(
            again.env("fresnel_QRMI_JOB_ACQUISITION_TOKEN"),
            Some(token.as_str())
        );
        let posts = site
            .server
            .requests()
            .iter()
            .filter(|r| r.method == "POST" && r.target == "/warden/sessions")
            .count();
        assert_eq!(posts, 1);
        // Both steps have ended, the job runs on (salloc between steps): nothing is released,
        // one keeper waits.
        let deletes = |s: &MockServer| s.requests().iter().filter(|r| r.method == "DELETE").count();
        std::thread::sleep(std::time::Duration::from_secs(3));
        assert_eq!(deletes(&site.server), 0);
        assert_eq!(leases(&site.state).len(), 2);
        assert_eq!(keepers(&site.state).len(), 1, "one keeper for the job");
        // Once Slurm says the job ended, the keeper releases exactly once and leaves.
        end_job(&site);
        assert_eq!(deletes(&site.server), 1);
        let accounting = std::fs::read_to_string(site.state.join("accounting.jsonl")).unwrap();
        assert_eq!(accounting.lines().count(), 4, "{accounting}");
        assert!(!accounting.contains(&token), "token in the accounting log");
    }

    #[test]
    fn the_batch_steps_exit_releases_at_once_and_other_steps_exits_do_not() {
        let site = site("batch");
        // An srun step of the job starts first and ends: the job runs on, nothing released.
        let out = step(&site, Some("fresnel"), &[("nodes", "q2")]);
        assert_eq!(out.rc("task_init"), Some(0), "{}", out.transcript());
        let out = host(&site)
            .context("remote")
            .item("job_id", 77)
            .item("step_id", 0)
            .call("init")
            .option("qpu", Some("fresnel"))
            .job("nodes", "q2")
            .call("init_post_opt")
            .call("exit")
            .run();
        assert_eq!(out.rc("exit"), Some(0), "{}", out.transcript());
        let deletes = |s: &MockServer| s.requests().iter().filter(|r| r.method == "DELETE").count();
        assert_eq!(deletes(&site.server), 0);
        assert_eq!(leases(&site.state).len(), 1);
        // The batch script's step ends: the job ends with it, release now (as upstream).
        let out = batch_step(&site, "fresnel");
        assert_eq!(out.rc("exit"), Some(0), "{}", out.transcript());
        assert_eq!(deletes(&site.server), 1);
        assert!(leases(&site.state).is_empty());
        assert!(
            out.all_logs()
                .iter()
                .any(|l| l.contains("job 77: released 1 QPU(s)")),
            "{}",
            out.transcript()
        );
        // The keeper started by the first step finds nothing left and leaves.
        let started = std::time::Instant::now();
        while !keepers(&site.state).is_empty() {
            assert!(started.elapsed() < std::time::Duration::from_secs(30));
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        assert_eq!(deletes(&site.server), 1);
    }

    #[test]
    fn typed_gres_alone_selects_the_qpu() {
        let site = site("gres");
        let out = host(&site)
            .context("remote")
            .item("job_id", 77)
            .item("uid", 6001)
            .item("gid", 6001)
            .item("task_global_id", 0)
            .process_env("SLURM_CONF", site.slurm_conf.to_str().unwrap())
            .job("time_limit", "infinite")
            .job("tres_per_node", "gres:qpu:ibm_torino:1")
            .job("nodes", &hostname())
            .call("init")
            .call("init_post_opt")
            .call("task_init")
            .run();
        assert_eq!(out.rc("task_init"), Some(0), "{}", out.transcript());
        assert_eq!(out.env("QRMI_JOB_QPU_RESOURCES"), Some("ibm_torino"));
        assert_eq!(
            out.env("ibm_torino_QRMI_JOB_TIMEOUT_SECONDS"),
            Some("4294967295")
        );
        assert!(
            site.server
                .requests()
                .iter()
                .any(|r| r.target.ends_with("/sessions") && r.method == "POST")
        );
        // Secrets reach the job's environment, never a log line.
        assert_eq!(
            out.env("ibm_torino_QRMI_IBM_QCS_IAM_APIKEY"),
            Some("sekret-api-key-123")
        );
        for line in out.all_logs() {
            assert!(!line.contains("sekret-api-key-123"), "{line}");
        }
        end_job(&site);
        assert!(leases(&site.state).is_empty());
    }

    #[test]
    fn untyped_gres_means_the_qpu_allocated_on_this_node() {
        let site = site("untyped");
        let out = host(&site)
            .context("remote")
            .item("job_id", 77)
            .item("uid", 6001)
            .item("gid", 6001)
            .process_env("SLURM_CONF", site.slurm_conf.to_str().unwrap())
            .job("tres_per_node", "gres:qpu:1")
            .job("nodes", &hostname())
            .job("gres_detail", "qpu:felis:1(IDX:0)")
            .call("init")
            .call("init_post_opt")
            .call("task_init")
            .run();
        assert_eq!(out.rc("task_init"), Some(0), "{}", out.transcript());
        assert_eq!(out.env("QRMI_JOB_QPU_RESOURCES"), Some("felis"));
        end_job(&site);
    }

    #[test]
    fn untyped_gres_without_detail_means_the_nodes_configured_qpu() {
        let site = site("untyped-conf");
        let out = host(&site)
            .context("remote")
            .item("job_id", 77)
            .item("uid", 6001)
            .item("gid", 6001)
            .process_env("SLURM_CONF", site.slurm_conf.to_str().unwrap())
            .job("tres_per_node", "gres:qpu:1")
            .job("nodes", &hostname())
            .job("gres_detail", "qpu:1")
            .call("init")
            .call("init_post_opt")
            .call("task_init")
            .run();
        assert_eq!(out.rc("task_init"), Some(0), "{}", out.transcript());
        assert_eq!(out.env("QRMI_JOB_QPU_RESOURCES"), Some("ibm_torino"));
        end_job(&site);
    }

    #[test]
    fn jobs_on_nodes_without_qpu_gres_make_no_controller_call() {
        let site = site("noqpu");
        std::fs::write(&site.slurm_conf, "NodeName=elsewhere Gres=qpu:x:1\n").unwrap();
        let out = host(&site)
            .context("remote")
            .item("job_id", 77)
            .process_env("SLURM_CONF", site.slurm_conf.to_str().unwrap())
            .call("init")
            .call("init_post_opt")
            .call("task_init")
            .run();
        assert_eq!(out.rc("task_init"), Some(0), "{}", out.transcript());
        assert_eq!(out.rpcs(), 0);
        assert!(out.setenvs().is_empty());
        // And such a job leaves nothing behind: no lease, no keeper.
        assert!(leases(&site.state).is_empty() && keepers(&site.state).is_empty());
    }

    #[test]
    fn contradicting_request_fails_the_tasks_with_the_reason() {
        let site = site("contradict");
        let out = host(&site)
            .context("remote")
            .item("job_id", 77)
            .item("uid", 6001)
            .item("gid", 6001)
            .process_env("SLURM_CONF", site.slurm_conf.to_str().unwrap())
            .job("tres_per_node", "gres:qpu:ibm_torino:1")
            .job("nodes", &hostname())
            .call("init")
            .option("qpu", Some("fresnel"))
            .call("init_post_opt")
            .call("task_init")
            .run();
        assert_eq!(
            out.rc("init_post_opt"),
            Some(0),
            "never fail before the tasks: {}",
            out.transcript()
        );
        assert_eq!(out.rc("task_init"), Some(-1));
        assert!(
            out.stderr
                .contains("--qpu=fresnel contradicts --gres=qpu:ibm_torino"),
            "{}",
            out.transcript()
        );
        assert!(leases(&site.state).is_empty());
    }

    #[test]
    fn failing_backend_releases_what_was_acquired_and_fails_the_tasks() {
        let site = site("allornothing");
        site.server
            .set_mode_for("POST", "/api/sessions", Mode::Fail);
        let out = step(
            &site,
            Some("fresnel,ibm_torino"),
            &[("time_limit", "5"), ("nodes", "q1")],
        );
        assert_eq!(out.rc("task_init"), Some(-1), "{}", out.transcript());
        assert!(out.stderr.contains("ibm_torino"), "{}", out.transcript());
        // fresnel was acquired first, then given back.
        let requests = site.server.requests();
        assert!(
            requests
                .iter()
                .any(|r| r.method == "POST" && r.target == "/warden/sessions")
        );
        assert!(
            requests
                .iter()
                .any(|r| r.method == "DELETE" && r.target.starts_with("/warden/sessions/"))
        );
        // Its lease is kept as a record, released: nothing is held.
        for name in leases(&site.state) {
            let lease: serde_json::Value =
                serde_json::from_slice(&std::fs::read(site.state.join(&name)).unwrap()).unwrap();
            assert_eq!(lease["state"], "released", "{name}: {lease}");
        }
        assert!(!out.stderr.contains("sekret-api-key-123"));
    }

    #[test]
    fn unknown_qpu_fails_the_tasks_listing_the_available_ones() {
        let site = site("unknown");
        let out = step(&site, Some("nosuch"), &[("nodes", "q1")]);
        assert_eq!(out.rc("task_init"), Some(-1));
        assert!(
            out.stderr
                .contains("unknown QPU 'nosuch': available QPUs are ibm_torino, fresnel, felis"),
            "{}",
            out.transcript()
        );
    }

    #[test]
    fn unknown_qpu_is_refused_at_submission_where_the_config_is_readable() {
        let site = site("submit");
        let out = host(&site)
            .context("allocator")
            .call("init")
            .option("qpu", Some("nosuch"))
            .call("init_post_opt")
            .run();
        assert_eq!(out.rc("init_post_opt"), Some(-1), "{}", out.transcript());
        assert!(
            out.logs("error")
                .join("\n")
                .contains("unknown QPU 'nosuch': available QPUs are ibm_torino, fresnel, felis")
        );
        let out = host(&site)
            .context("allocator")
            .call("init")
            .option("qpu", Some("felis"))
            .call("init_post_opt")
            .run();
        assert_eq!(out.rc("init_post_opt"), Some(0), "{}", out.transcript());
    }

    #[test]
    fn hanging_backend_is_bounded_by_the_timeout() {
        let site = site("hang");
        site.server
            .set_mode_for("POST", "/warden/sessions", Mode::Hang);
        let started = std::time::Instant::now();
        let out = step(&site, Some("fresnel"), &[("nodes", "q2")]);
        assert_eq!(out.rc("task_init"), Some(-1), "{}", out.transcript());
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "{:?}",
            started.elapsed()
        );
        let _ = &site.dir;
    }
}
