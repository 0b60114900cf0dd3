//! The [`Backend`] the plugin uses: each QPU protocol runs in the `spank-qrmi-backend`
//! executable (crate qrmi-backend), so spank_qrmi.so carries no HTTP or TLS code (it is mapped
//! into every srun, sbatch and slurmstepd) and a fault of the TLS stack or of a response parser
//! ends that process, not slurmstepd. One helper process per QPU and operation (acquire: status
//! check and session; release: every retry), started only when the type makes a network call;
//! a token of ours is made here without one.
//!
//! Protocol, JSON lines over the helper's stdin and stdout: first an [`Open`] line (the resource
//! with its secrets, HTTP settings, munge: secrets go through the pipe, never argv or the
//! environment), then one [`Request`] per line, each answered by one [`Reply`] line; EOF on
//! stdin ends the helper. The helper gets an empty environment but PATH (for `munge -n`).
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::{AcquireContext, Backend, BackendError, Operation, Result, Scrubber, mint_token};
use crate::config::Resource;
use crate::http::HttpConfig;

/// The helper's file name (next to spank_qrmi.so unless packaging or plugstack.conf say otherwise).
pub const HELPER_NAME: &str = "spank-qrmi-backend";

/// Bumped whenever [`Open`], [`Request`] or [`Reply`] change, so a plugin and a helper of
/// different releases refuse each other with a clear message instead of misreading.
pub const PROTOCOL: u32 = 1;

/// First line to the helper.
#[derive(Serialize, Deserialize)]
pub struct Open {
    pub protocol: u32,
    pub resource: Resource,
    pub http: HttpConfig,
    /// Send `x-munge-cred` (pasqal-local): the helper runs `munge -n` itself.
    pub munge: bool,
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    CheckAccessible,
    Acquire { job: AcquireContext },
    Release { token: String },
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum Reply {
    Accessible(bool),
    Token(String),
    Released,
    Failed(BackendError),
}

/// Where the helper is: `configured` (plugstack `backend_helper=`) as given; else the first
/// that exists of `packaged` (a path baked in at build time) and [`HELPER_NAME`] in
/// `plugin_dirs` (the loaded plugin's directory, then that of the file it is a symlink to).
/// Err says where it looked.
pub fn locate(
    configured: Option<&Path>,
    packaged: Option<&str>,
    plugin_dirs: &[PathBuf],
    exists: impl Fn(&Path) -> bool,
) -> std::result::Result<PathBuf, String> {
    if let Some(path) = configured {
        return Ok(path.to_path_buf());
    }
    let candidates: Vec<PathBuf> = packaged
        .filter(|p| p.starts_with('/'))
        .map(PathBuf::from)
        .into_iter()
        .chain(plugin_dirs.iter().map(|dir| dir.join(HELPER_NAME)))
        .collect();
    candidates
        .iter()
        .find(|p| exists(p))
        .cloned()
        .ok_or_else(|| {
            let tried: Vec<String> = candidates.iter().map(|p| p.display().to_string()).collect();
            format!(
                "the QPU backend helper {HELPER_NAME} is not installed on this node (looked for {}); install it with the plugin or name it with backend_helper=/path in plugstack.conf",
                if tried.is_empty() {
                    "it nowhere: the plugin's own directory is unknown".to_string()
                } else {
                    tried.join(" and ")
                }
            )
        })
}

/// How the plugin reaches the helper.
#[derive(Debug, Clone)]
pub struct HelperSettings {
    /// Where the helper is, or why it cannot be found (said only when one is needed).
    pub program: std::result::Result<PathBuf, String>,
    pub http: HttpConfig,
    pub munge: bool,
}

/// The backend of `resource`: a token of ours where the type makes no call, else the helper.
pub fn backend_for(resource: &Resource, settings: &HelperSettings) -> Box<dyn Backend> {
    if resource.kind.calls_backend(resource.status_check) {
        Box::new(HelperBackend::new(resource, settings))
    } else {
        Box::new(OwnToken {
            qpu: resource.name.clone(),
            kind: resource.kind,
        })
    }
}

/// Types without a session and without a status call: always accessible, the token is ours
/// (a fresh UUID v4, as upstream mints), nothing to release.
struct OwnToken {
    qpu: String,
    kind: crate::config::ResourceType,
}

impl Backend for OwnToken {
    fn check_accessible(&self) -> Result<bool> {
        Ok(true)
    }

    fn acquire(&self, _: &AcquireContext) -> Result<String> {
        mint_token().map_err(|e| BackendError {
            qpu: self.qpu.clone(),
            kind: self.kind,
            operation: Operation::Acquire,
            message: format!("cannot read /dev/urandom for a token: {e}"),
            transient: true,
        })
    }

    fn release(&self, _: &str) -> Result<()> {
        Ok(())
    }
}

/// One QPU's protocol in a helper process, started at the first call and ended when dropped.
pub struct HelperBackend {
    resource: Resource,
    settings: HelperSettings,
    running: std::cell::RefCell<Option<Running>>,
}

struct Running {
    child: Child,
    /// None once closed: the helper exits at EOF.
    stdin: Option<ChildStdin>,
    stdout: ChildStdout,
    pending: Vec<u8>,
}

/// A reply longer than this is refused (a helper gone wrong must not fill slurmstepd's memory).
const MAX_REPLY: usize = 1024 * 1024;

impl HelperBackend {
    pub fn new(resource: &Resource, settings: &HelperSettings) -> Self {
        HelperBackend {
            resource: resource.clone(),
            settings: settings.clone(),
            running: std::cell::RefCell::new(None),
        }
    }

    fn error(&self, operation: Operation, message: String, transient: bool) -> BackendError {
        BackendError {
            qpu: self.resource.name.clone(),
            kind: self.resource.kind,
            operation,
            message: Scrubber::for_resource(&self.resource).scrub(&message),
            transient,
        }
    }

    /// How long one operation may take in the helper: each makes at most three requests
    /// (IAM token, and two for an IBM release), each bounded by the HTTP timeouts, and munge -n
    /// takes at most 5 s. Past it the helper is killed.
    fn deadline(&self) -> Duration {
        let http = &self.settings.http;
        (http.connect_timeout + http.timeout) * 3 + Duration::from_secs(10)
    }

    fn program(&self, operation: Operation) -> Result<&Path> {
        self.settings
            .program
            .as_deref()
            .map_err(|why| self.error(operation, why.clone(), false))
    }

    fn start(&self, operation: Operation) -> Result<Running> {
        let program = self.program(operation)?;
        let mut child = Command::new(program)
            .env_clear()
            .env(
                "PATH",
                std::env::var_os("PATH").unwrap_or_else(|| "/usr/sbin:/usr/bin:/sbin:/bin".into()),
            )
            .current_dir("/")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| {
                self.error(
                    operation,
                    format!(
                        "cannot run the QPU backend helper {}: {e}",
                        program.display()
                    ),
                    false,
                )
            })?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(self.error(operation, "no pipe to the backend helper".into(), false));
        };
        let mut running = Running {
            child,
            stdin: Some(stdin),
            stdout,
            pending: Vec::new(),
        };
        let open = Open {
            protocol: PROTOCOL,
            resource: self.resource.clone(),
            http: self.settings.http.clone(),
            munge: self.settings.munge,
        };
        let line = serde_json::to_vec(&open)
            .map_err(|e| self.error(operation, format!("cannot encode the request: {e}"), false))?;
        if let Err(e) = running.send(line) {
            return Err(self.ended(running, operation, &e));
        }
        Ok(running)
    }

    /// One request and its reply, starting the helper if needed.
    fn call(&self, request: &Request, operation: Operation) -> Result<Reply> {
        let mut slot = self.running.borrow_mut();
        let mut running = match slot.take() {
            Some(running) => running,
            None => self.start(operation)?,
        };
        let line = serde_json::to_vec(request)
            .map_err(|e| self.error(operation, format!("cannot encode the request: {e}"), false))?;
        let answer = running
            .send(line)
            .and_then(|()| running.receive(Instant::now() + self.deadline()));
        match answer {
            Ok(text) => match serde_json::from_slice::<Reply>(&text) {
                Ok(reply) => {
                    *slot = Some(running);
                    Ok(reply)
                }
                Err(e) => {
                    running.stop();
                    Err(self.error(
                        operation,
                        format!("the QPU backend helper answered something unexpected: {e}"),
                        false,
                    ))
                }
            },
            Err(why) => Err(self.ended(running, operation, &why)),
        }
    }

    /// The helper gave no answer: stop it and say why (its exit status, the end of its stderr).
    fn ended(&self, mut running: Running, operation: Operation, why: &Failure) -> BackendError {
        let timed_out = matches!(why, Failure::Timeout);
        if timed_out {
            let _ = running.child.kill();
        }
        running.stdin = None;
        let status = running.child.wait();
        let mut stderr = String::new();
        if let Some(mut err) = running.child.stderr.take() {
            let _ = err.by_ref().take(64 * 1024).read_to_string(&mut stderr);
        }
        let last = stderr
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("");
        let program = self.program(operation).map(Path::display);
        let name = program
            .map(|p| p.to_string())
            .unwrap_or_else(|_| HELPER_NAME.to_string());
        let message = match why {
            Failure::Timeout => format!(
                "the QPU backend helper {name} gave no answer within {} s and was stopped",
                self.deadline().as_secs()
            ),
            Failure::Io(e) => {
                let status = match status {
                    Ok(s) => s.to_string(),
                    Err(_) => "unknown status".to_string(),
                };
                let said = if last.is_empty() {
                    String::new()
                } else {
                    format!(": {}", last.chars().take(300).collect::<String>())
                };
                format!(
                    "the QPU backend helper {name} ended without answering ({e}; {status}){said}"
                )
            }
        };
        // A helper that stopped answering in time may do better later; one that crashed will not.
        self.error(operation, message, timed_out)
    }

    fn unexpected(&self, operation: Operation, reply: Reply) -> BackendError {
        self.error(
            operation,
            format!("the QPU backend helper gave a reply that does not fit: {reply:?}"),
            false,
        )
    }
}

impl Drop for HelperBackend {
    fn drop(&mut self) {
        if let Some(running) = self.running.get_mut().take() {
            running.stop();
        }
    }
}

impl Backend for HelperBackend {
    fn finish(&self) {
        if let Some(running) = self.running.borrow_mut().as_mut() {
            running.stdin = None;
        }
    }

    fn check_accessible(&self) -> Result<bool> {
        let op = Operation::StatusCheck;
        match self.call(&Request::CheckAccessible, op)? {
            Reply::Accessible(yes) => Ok(yes),
            Reply::Failed(e) => Err(e),
            other => Err(self.unexpected(op, other)),
        }
    }

    fn acquire(&self, job: &AcquireContext) -> Result<String> {
        let op = Operation::Acquire;
        match self.call(&Request::Acquire { job: *job }, op)? {
            Reply::Token(token) => Ok(token),
            Reply::Failed(e) => Err(e),
            other => Err(self.unexpected(op, other)),
        }
    }

    fn release(&self, token: &str) -> Result<()> {
        // A token of ours (a status check made it call at acquisition): nothing to give back.
        if !self.resource.kind.has_session() {
            return Ok(());
        }
        let op = Operation::Release;
        let request = Request::Release {
            token: token.to_string(),
        };
        match self.call(&request, op)? {
            Reply::Released => Ok(()),
            Reply::Failed(e) => Err(e),
            other => Err(self.unexpected(op, other)),
        }
    }
}

enum Failure {
    Timeout,
    Io(String),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Timeout => f.write_str("timed out"),
            Failure::Io(e) => f.write_str(e),
        }
    }
}

impl Running {
    /// Writes one line. A helper that died makes this EPIPE, never a SIGPIPE in slurmstepd.
    fn send(&mut self, mut line: Vec<u8>) -> std::result::Result<(), Failure> {
        line.push(b'\n');
        let stdin = self
            .stdin
            .as_mut()
            .ok_or_else(|| Failure::Io("its input is closed".into()))?;
        crate::os::without_sigpipe(|| stdin.write_all(&line))
            .map_err(|e| Failure::Io(format!("cannot write to it: {e}")))
    }

    /// Reads one line by `deadline`.
    fn receive(&mut self, deadline: Instant) -> std::result::Result<Vec<u8>, Failure> {
        let mut chunk = [0u8; 8192];
        loop {
            if let Some(end) = self.pending.iter().position(|&b| b == b'\n') {
                let rest = self.pending.split_off(end + 1);
                let mut line = std::mem::replace(&mut self.pending, rest);
                line.pop();
                return Ok(line);
            }
            if self.pending.len() > MAX_REPLY {
                return Err(Failure::Io(format!(
                    "a reply longer than {MAX_REPLY} bytes"
                )));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match crate::os::wait_readable(&self.stdout, left) {
                Ok(true) => {}
                Ok(false) => return Err(Failure::Timeout),
                Err(e) => return Err(Failure::Io(e.to_string())),
            }
            match self.stdout.read(&mut chunk) {
                Ok(0) => return Err(Failure::Io("end of its output".into())),
                Ok(n) => self.pending.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Failure::Io(e.to_string())),
            }
        }
    }

    /// Closes its stdin (it exits at EOF) and reaps it; one that lingers is killed.
    fn stop(mut self) {
        self.stdin = None;
        // Its stdout closes when it exits.
        let mut chunk = [0u8; 1024];
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match crate::os::wait_readable(&self.stdout, left) {
                Ok(true) => match self.stdout.read(&mut chunk) {
                    Ok(0) => break,
                    Ok(_) => continue,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(_) => break,
                },
                _ => {
                    let _ = self.child.kill();
                    break;
                }
            }
        }
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_helper_is_found_where_configured_packaged_or_next_to_the_plugin() {
        let dirs = [
            PathBuf::from("/etc/slurm/plugins"),
            PathBuf::from("/usr/lib64/slurm"),
        ];
        let next = dirs[0].join(HELPER_NAME);
        let real = dirs[1].join(HELPER_NAME);
        let configured = Path::new("/opt/q/helper");
        assert_eq!(
            locate(Some(configured), Some("/usr/libexec/x"), &dirs, |_| false),
            Ok(configured.to_path_buf())
        );
        let packaged = Path::new("/usr/libexec/x");
        assert_eq!(
            locate(None, Some("/usr/libexec/x"), &dirs, |p| p == packaged
                || p == next),
            Ok(packaged.to_path_buf())
        );
        assert_eq!(
            locate(None, Some("/usr/libexec/x"), &dirs, |p| p == next
                || p == real),
            Ok(next.clone())
        );
        assert_eq!(locate(None, None, &dirs, |p| p == real), Ok(real));
        let e = locate(None, Some("/usr/libexec/x"), &dirs[1..], |_| false).unwrap_err();
        assert!(
            e.contains("/usr/libexec/x and /usr/lib64/slurm/spank-qrmi-backend")
                && e.contains("backend_helper="),
            "{e}"
        );
        assert!(locate(None, None, &[], |_| true).is_err());
    }

    #[test]
    fn requests_and_replies_are_json_lines() {
        let job = AcquireContext {
            job_id: 7,
            uid: 1000,
            time_limit_secs: None,
        };
        let text = serde_json::to_string(&Request::Acquire { job }).unwrap();
        assert!(!text.contains('\n'));
        assert_eq!(
            serde_json::from_str::<Request>(&text).unwrap(),
            Request::Acquire { job }
        );
        let text = serde_json::to_string(&Reply::Token("a\nb".into())).unwrap();
        assert!(!text.contains('\n'));
        assert_eq!(
            serde_json::from_str::<Reply>(&text).unwrap(),
            Reply::Token("a\nb".into())
        );
    }

    fn resource(environment: &[(&str, &str)]) -> Resource {
        Resource {
            name: "w".into(),
            kind: crate::config::ResourceType::PasqalLocal,
            type_name: "pasqal-local".into(),
            user_keys: Vec::new(),
            from_job: Vec::new(),
            environment: environment
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            is_dynamic: false,
            status_check: true,
            status_endpoint: None,
        }
    }

    fn settings(program: std::result::Result<PathBuf, String>) -> HelperSettings {
        HelperSettings {
            program,
            http: HttpConfig::default(),
            munge: false,
        }
    }

    #[test]
    fn a_missing_helper_fails_the_operation_with_the_path() {
        let r = resource(&[("QRMI_WARDEN_URL", "http://127.0.0.1:1")]);
        let backend = backend_for(&r, &settings(Ok(PathBuf::from("/nonexistent/helper"))));
        let e = backend.check_accessible().unwrap_err();
        assert!(
            e.message
                .contains("cannot run the QPU backend helper /nonexistent/helper"),
            "{e}"
        );
        assert!(!e.transient);
        let backend = backend_for(&r, &settings(Err("not installed here".into())));
        assert_eq!(
            backend.release("t").unwrap_err().message,
            "not installed here"
        );
    }

    #[test]
    fn a_helper_that_dies_or_babbles_is_an_error_naming_it_without_secrets() {
        let r = resource(&[
            ("QRMI_WARDEN_URL", "http://127.0.0.1:1"),
            ("KEY", "s3cr3t-v"),
        ]);
        // Reads nothing, says a secret on stderr and dies: EPIPE or EOF, never SIGPIPE.
        let dir = std::env::temp_dir().join(format!("qrmi-helper-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let script = |name: &str, body: &str| {
            let path = dir.join(name);
            std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
            std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755))
                .unwrap();
            path
        };
        let dies = script("dies", "echo 'oops s3cr3t-v' >&2; exit 3");
        let e = backend_for(&r, &settings(Ok(dies)))
            .check_accessible()
            .unwrap_err();
        assert!(e.message.contains("ended without answering"), "{e}");
        assert!(e.message.contains("oops {KEY}"), "{e}");
        let babbles = script("babbles", "read a; read b; echo '{\"nonsense\": 1}'");
        let e = backend_for(&r, &settings(Ok(babbles)))
            .release("t")
            .unwrap_err();
        assert!(e.message.contains("something unexpected"), "{e}");
        let answers = script("answers", "read a; read b; echo '\"released\"'; read c");
        backend_for(&r, &settings(Ok(answers)))
            .release("t")
            .unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn types_without_a_call_start_no_helper() {
        let mut r = resource(&[]);
        r.kind = crate::config::ResourceType::AliceBobFelis;
        r.status_check = false;
        let backend = backend_for(&r, &settings(Err("no helper".into())));
        assert!(backend.check_accessible().unwrap());
        assert_eq!(
            backend
                .acquire(&AcquireContext {
                    job_id: 1,
                    uid: 2,
                    time_limit_secs: None
                })
                .unwrap()
                .len(),
            36
        );
        backend.release("t").unwrap();
    }
}
