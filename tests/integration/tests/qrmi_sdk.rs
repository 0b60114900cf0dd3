//! The real QRMI SDK (`qrmi` 0.26.4 from PyPI, installed by tests/install-qrmi-sdk.sh) in user
//! jobs on the cluster, through spank_qrmi's environment: QRMIService() discovery, status,
//! target, task_start, polling and result, via sbatch, srun and salloc, for the IBM session
//! types, pasqal-local (with munge) and iqm-server. (oqtopus: QRMI 0.26.4's wheel loads a
//! liboqtopus_py_bridge.so it does not ship, so the PyPI SDK cannot run an oqtopus task.) The stand-in (mock_server) refuses a task whose session is not one the plugin opened
//! and still holds, and the test checks that every session the SDK used was released after the
//! job, also when the job failed.
use std::path::PathBuf;
use std::time::Duration;

use integration_tests::qpu_site::{self, Site, is_release, site, wait_for};
use spank_test_support::mock_server;

/// The venv's python as the jobs see it (QRMI_SDK_PYTHON, else install-qrmi-sdk.sh's default
/// place); on a rootfs release it must be inside the rootfs (`install-qrmi-sdk.sh --root`).
fn sdk_python(cluster: &integration_tests::Cluster) -> String {
    let python = std::env::var("QRMI_SDK_PYTHON")
        .unwrap_or_else(|_| "/var/cache/spank-qrmi-sdk/qrmi-0.26.4/bin/python".to_string());
    let seen = PathBuf::from(format!("{}{python}", cluster.root().unwrap_or("")));
    assert!(
        seen.exists(),
        "{} missing: run tests/install-qrmi-sdk.sh{} (or set QRMI_SDK_PYTHON)",
        seen.display(),
        cluster
            .root()
            .map(|r| format!(" --root {r}"))
            .unwrap_or_default()
    );
    python
}

/// What a user's job does with the SDK: every QPU the job holds, start to result.
const JOB: &str = r#"
import json, sys, time
import qrmi
service = qrmi.QRMIService()
names = sorted(r.resource_id() for r in service.resources())
print("SDK-RESOURCES", ",".join(names), flush=True)
for name in names:
    r = service.resource(name)
    assert r.is_accessible(), name
    r.target()
    if name == "fresnel":
        payload = qrmi.Payload.PasqalCloud(sequence=json.dumps({"register": []}), job_runs=10)
    elif name == "garnet":
        payload = qrmi.Payload.IQMServer(iqmjson=json.dumps({"circuits": []}), job_type="circuit",
                                         use_timeslot=False, tag=None)
    else:
        payload = qrmi.Payload.QiskitPrimitive(
            input=json.dumps({"pubs": [["OPENQASM 3.0; qubit[1] q;", None, 16]], "version": 2}),
            program_id="sampler")
    task = r.task_start(payload)
    for _ in range(100):
        status = r.task_status(task)
        if status in (qrmi.TaskStatus.Completed, qrmi.TaskStatus.Failed, qrmi.TaskStatus.Cancelled):
            break
        time.sleep(0.1)
    assert status == qrmi.TaskStatus.Completed, status
    result = json.loads(r.task_result(task).value)
    if name == "fresnel":
        job = result["job"]
    elif name == "garnet":
        job = result["measurement_counts"]["job"]
    else:
        job = result["metadata"]["job"]
    print("SDK-OK", name, task, job, flush=True)
sys.exit(int(sys.argv[1]) if len(sys.argv) > 1 else 0)
"#;

fn write_config(site: &Site) {
    let base = &site.server.base;
    let crn = "crn:v1:bluemix:public:quantum-computing:us-east:a/test::";
    let config = serde_json::json!({"resources": [
        {"name": "ibm_torino", "type": "ibm-quantum-compute-service", "environment": {
            "QRMI_IBM_QCS_ENDPOINT": format!("{base}/api"), "QRMI_IBM_QCS_IAM_ENDPOINT": base,
            "QRMI_IBM_QCS_IAM_APIKEY": "sdk-apikey", "QRMI_IBM_QCS_SERVICE_CRN": crn}},
        {"name": "ibm_fez", "type": "qiskit-runtime-service", "environment": {
            "QRMI_IBM_QRS_ENDPOINT": format!("{base}/api"), "QRMI_IBM_QRS_IAM_ENDPOINT": base,
            "QRMI_IBM_QRS_IAM_APIKEY": "sdk-apikey", "QRMI_IBM_QRS_SERVICE_CRN": crn}},
        {"name": "fresnel", "type": "pasqal-local", "environment": {
            "QRMI_WARDEN_URL": format!("{base}/warden")}},
        {"name": "garnet", "type": "iqm-server", "environment": {
            "QRMI_IQM_ISA_ENDPOINT": format!("{base}/iqm"),
            "QRMI_IQM_ISA_TOKEN": mock_server::IQM_TOKEN}}
    ]});
    qpu_site::write_config(site, &config, "0600");
}

/// Checks what the SDK printed (`steps` runs of the job script) and that each session it used
/// was one the plugin opened, and is released after the job.
fn check_job(site: &Site, output: &str, expected: &[&str], sessions_before: usize, steps: usize) {
    assert!(
        output.contains(&format!("SDK-RESOURCES {}", expected.join(","))),
        "{output}"
    );
    for name in expected {
        assert_eq!(
            output.matches(&format!("SDK-OK {name} ")).count(),
            steps,
            "{name}: {output}"
        );
    }
    let used: Vec<String> = site.server.state().job_sessions[sessions_before..].to_vec();
    assert_eq!(used.len(), expected.len() * steps, "{used:?}");
    let opened = site.server.state().opened.clone();
    for session in &used {
        assert!(
            opened.contains(session),
            "{session} not opened by the plugin: {opened:?}"
        );
        assert!(
            wait_for(Duration::from_secs(30), || site
                .server
                .requests()
                .iter()
                .any(|r| is_release(r) && r.target.contains(session.as_str()))),
            "session {session} the SDK used was not released"
        );
    }
}

#[test]
#[ignore = "needs the test cluster and tests/install-qrmi-sdk.sh"]
fn the_real_sdk_runs_in_sbatch_srun_and_salloc_jobs() {
    let site = site();
    let python = sdk_python(&site.cluster);
    write_config(&site);
    let cluster = &site.cluster;
    let dir = cluster.user_dir("qrmi-sdk");
    let script = cluster.user_script(&dir, "job.py", JOB);
    let script = script.to_str().unwrap();
    let both = ["ibm_fez", "ibm_torino"];

    // srun
    let before = site.server.state().job_sessions.len();
    let run = cluster
        .as_user(
            "srun",
            &[
                "-p",
                "quantum",
                "-w",
                "q1",
                "--qpu=ibm_torino,ibm_fez",
                &python,
                script,
            ],
        )
        .expect_ok("srun with the SDK");
    check_job(&site, &run.stdout, &both, before, 1);

    // pasqal-local with munge (the SDK sends x-munge-cred; the warden checks it).
    let before = site.server.state().job_sessions.len();
    let run = cluster
        .as_user(
            "srun",
            &[
                "-p",
                "quantum",
                "-w",
                "q2",
                "--qpu=fresnel",
                &python,
                script,
            ],
        )
        .expect_ok("srun with the SDK on pasqal-local");
    check_job(&site, &run.stdout, &["fresnel"], before, 1);

    // sbatch, and a batch job that fails after using the QPU: released all the same.
    for (code, name) in [("0", "ok"), ("3", "fails")] {
        let out = dir.join(format!("sbatch-{name}.out"));
        let before = site.server.state().job_sessions.len();
        let run = cluster.as_user(
            "sbatch",
            &[
                "--wait",
                "-p",
                "quantum",
                "-w",
                "q1",
                "--qpu=ibm_torino",
                "-o",
                out.to_str().unwrap(),
                "--wrap",
                &format!("{python} {script} {code}"),
            ],
        );
        assert_eq!(run.ok(), code == "0", "{run:?}");
        let output = std::fs::read_to_string(&out).unwrap_or_default();
        check_job(&site, &output, &["ibm_torino"], before, 1);
    }

    // salloc, with two steps in the allocation: both use the one session.
    let before = site.server.state().job_sessions.len();
    let run = cluster
        .as_user(
            "salloc",
            &[
                "-p",
                "quantum",
                "-w",
                "q1",
                "--qpu=ibm_fez",
                "sh",
                "-c",
                &format!("srun {python} {script} && srun {python} {script}"),
            ],
        )
        .expect_ok("salloc with the SDK");
    let used = site.server.state().job_sessions[before..].to_vec();
    assert!(
        used.len() == 2 && used[0] == used[1],
        "two steps, one session: {used:?}"
    );
    check_job(&site, &run.stdout, &["ibm_fez"], before, 2);
    cluster.assert_no_unhealthy_nodes();
}

// A job scancelled while the SDK runs (between two tasks, in the session): the session the
// SDK used is released all the same, and the SDK never ran its second task.
#[test]
#[ignore = "needs the test cluster and tests/install-qrmi-sdk.sh"]
fn a_job_scancelled_while_the_sdk_runs_releases_its_session() {
    let site = site();
    let python = sdk_python(&site.cluster);
    write_config(&site);
    let cluster = &site.cluster;
    let dir = cluster.user_dir("qrmi-sdk-scancel");
    let script = cluster.user_script(&dir, "job.py", JOB);
    // The SDK's task, then a long wait in the same session (a job between tasks).
    let out = dir.join("cancelled.out");
    let before = site.server.state().job_sessions.len();
    let run = cluster
        .as_user(
            "sbatch",
            &[
                "--parsable",
                "-p",
                "quantum",
                "-w",
                "q1",
                "--qpu=ibm_torino",
                "-o",
                out.to_str().unwrap(),
                "--wrap",
                &format!(
                    "{python} {s} && sleep 300 && {python} {s}",
                    s = script.to_str().unwrap()
                ),
            ],
        )
        .expect_ok("sbatch the SDK job");
    let job = run
        .stdout
        .trim()
        .split(';')
        .next()
        .unwrap_or("")
        .to_string();
    assert!(
        wait_for(Duration::from_secs(60), || std::fs::read_to_string(&out)
            .is_ok_and(|o| o.contains("SDK-OK ibm_torino"))),
        "the SDK's first task did not finish: {}",
        std::fs::read_to_string(&out).unwrap_or_default()
    );
    let session = site.server.state().job_sessions[before..].to_vec();
    assert_eq!(session.len(), 1, "{session:?}");
    assert!(
        site.server.state().open_sessions.contains(&session[0]),
        "the session closed before the job ended: {session:?}"
    );
    cluster.as_user("scancel", &[&job]).expect_ok("scancel");
    let output = std::fs::read_to_string(&out).unwrap_or_default();
    check_job(&site, &output, &["ibm_torino"], before, 1);
    assert!(
        !site.server.state().open_sessions.contains(&session[0]),
        "session {} still open after scancel",
        session[0]
    );
    cluster.assert_no_unhealthy_nodes();
}

// iqm-server has no sessions (QRMI's acquire is a local UUID): what the job must get from the
// plugin is the site's endpoint and bearer token, which the stand-in checks on every call.
#[test]
#[ignore = "needs the test cluster and tests/install-qrmi-sdk.sh"]
fn the_real_sdk_runs_on_iqm_server_in_sbatch_srun_and_salloc_jobs() {
    let site = site();
    let python = sdk_python(&site.cluster);
    write_config(&site);
    let cluster = &site.cluster;
    let dir = cluster.user_dir("qrmi-sdk-iqm");
    let script = cluster.user_script(&dir, "job.py", JOB);
    let script = script.to_str().unwrap();
    let ran = |output: &str, jobs_before: usize, what: &str| {
        assert!(output.contains("SDK-RESOURCES garnet"), "{what}: {output}");
        assert_eq!(
            output.matches("SDK-OK garnet ").count(),
            1,
            "{what}: {output}"
        );
        let jobs = site.server.state().iqm_jobs[jobs_before..].to_vec();
        assert_eq!(jobs, ["garnet"], "{what}");
    };
    let before = site.server.state().iqm_jobs.len();
    let run = cluster
        .as_user(
            "srun",
            &["-p", "quantum", "-w", "q1", "--qpu=garnet", &python, script],
        )
        .expect_ok("srun with the SDK on iqm-server");
    ran(&run.stdout, before, "srun");

    let before = site.server.state().iqm_jobs.len();
    let out = dir.join("sbatch.out");
    cluster
        .as_user(
            "sbatch",
            &[
                "--wait",
                "-p",
                "quantum",
                "-w",
                "q2",
                "--qpu=garnet",
                "-o",
                out.to_str().unwrap(),
                "--wrap",
                &format!("{python} {script}"),
            ],
        )
        .expect_ok("sbatch with the SDK on iqm-server");
    ran(
        &std::fs::read_to_string(&out).unwrap_or_default(),
        before,
        "sbatch",
    );

    let before = site.server.state().iqm_jobs.len();
    let run = cluster
        .as_user(
            "salloc",
            &[
                "-p",
                "quantum",
                "-w",
                "q1",
                "--qpu=garnet",
                "srun",
                &python,
                script,
            ],
        )
        .expect_ok("salloc with the SDK on iqm-server");
    ran(&run.stdout, before, "salloc");

    // The status check fails the job up front when the computer is not healthy (item 8), and
    // the SDK's own check agrees: no task reaches the stand-in.
    site.server.state().accessible = false;
    let before = site.server.state().iqm_jobs.len();
    let run = cluster.as_user(
        "srun",
        &["-p", "quantum", "-w", "q1", "--qpu=garnet", &python, script],
    );
    site.server.state().accessible = true;
    assert!(
        !run.ok() && run.stderr.contains("garnet"),
        "an unhealthy IQM computer must fail the job, naming it: {run:?}"
    );
    assert_eq!(site.server.state().iqm_jobs.len(), before);
    cluster.assert_no_unhealthy_nodes();
}
