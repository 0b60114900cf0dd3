//! Drives a SPANK plugin through the C host (`c/spank_host.c`) and parses what it did.
//!
//! ```ignore
//! let out = Host::new(plugin_path("spank-frames"))
//!     .context("allocator").call("init").option("frame-dir", Some("/x")).run();
//! assert_eq!(out.rc("init"), Some(0));
//! ```
use std::io::Read;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

/// The descriptor the host gives its tasks as stdout (`SPANK_HOST_TASK_FD`).
const TASK_FD: i32 = 9;

/// The compiled host executable.
pub fn host_binary() -> &'static str {
    env!("SPANK_HOST_BIN")
}

/// Path of a plugin of this workspace, built first (with its helper executables) so tests never
/// run a stale .so (`cargo test` builds a cdylib crate's test harness, not its .so; spank-qrmi's
/// backend helper is built with it). `package` is the Cargo package
/// name, e.g. "spank-frames" → target/debug/libspank_frames.so.
pub fn plugin_path(package: &str) -> PathBuf {
    static BUILT: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace.join("target"));
    let release = !cfg!(debug_assertions);
    let mut built = BUILT.lock().unwrap_or_else(|p| p.into_inner());
    if !built.iter().any(|p| p == package) {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
        let mut command = Command::new(cargo);
        command
            .current_dir(&workspace)
            // The package's executables too: spank_frames.so runs its capture helper.
            .args(["build", "--quiet", "--lib", "--bins", "-p", package]);
        // spank_qrmi runs its QPU backends in a helper executable it finds next to its .so.
        if package == "spank-qrmi" {
            command.args(["-p", "qrmi-backend"]);
        }
        // The variables cargo sets for a test process would make build scripts that watch them
        // (ring's watches CARGO_MANIFEST_DIR) rebuild everything on every test run.
        for (name, _) in std::env::vars_os() {
            let name = name.to_string_lossy();
            if (name.starts_with("CARGO_") && name != "CARGO_HOME" && name != "CARGO_TARGET_DIR")
                || name == "OUT_DIR"
            {
                command.env_remove(name.as_ref());
            }
        }
        if release {
            command.arg("--release");
        }
        let status = command
            .status()
            .expect("cannot run cargo build for the plugin");
        assert!(status.success(), "cargo build -p {package} failed");
        built.push(package.to_string());
    }
    let profile = if release { "release" } else { "debug" };
    let path = target
        .join(profile)
        .join(format!("lib{}.so", package.replace('-', "_")));
    assert!(
        path.is_file(),
        "{} not found after building {package}",
        path.display()
    );
    path
}

#[derive(Debug, Clone)]
pub struct Host {
    plugin: PathBuf,
    args: Vec<String>,
    envs: Vec<(String, String)>,
}

/// One event the host printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Register {
        name: String,
        has_arg: bool,
        arginfo: Option<String>,
        usage: String,
    },
    Rc {
        hook: String,
        rc: Option<i32>,
    },
    Missing(String),
    Log {
        level: String,
        message: String,
    },
    Setenv {
        name: String,
        value: String,
    },
    Unsetenv(String),
    ControlSetenv {
        name: String,
        value: String,
    },
    Env {
        name: String,
        value: String,
    },
    Describe {
        name: String,
        kind: String,
        version: u32,
    },
    Exported(String),
    Rpc(String),
    TaskStatus(i32),
    Other(String),
}

#[derive(Debug)]
pub struct Outcome {
    pub exit_code: Option<i32>,
    /// The host's own lines (parsed into `events`).
    pub stdout: String,
    /// What the tasks wrote to their stdout, exactly.
    pub task_output: String,
    pub stderr: String,
    pub events: Vec<Event>,
}

fn unescape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('n') => out.push('\n'),
                Some(other) => out.push(other),
                None => out.push('\\'),
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn split_pair(text: &str) -> (String, String) {
    let text = unescape(text);
    match text.split_once('=') {
        Some((a, b)) => (a.to_string(), b.to_string()),
        None => (text, String::new()),
    }
}

fn parse_line(line: &str) -> Event {
    let (kind, rest) = line.split_once(' ').unwrap_or((line, ""));
    match kind {
        "register" => {
            let (name, rest) = rest.split_once(' ').unwrap_or((rest, ""));
            let has_arg = rest.starts_with("has_arg=1");
            let arginfo = rest
                .split_once("arginfo=")
                .and_then(|(_, r)| r.split_once(" usage="))
                .map(|(a, _)| a.to_string())
                .filter(|a| a != "(null)");
            let usage = rest
                .split_once(" usage=")
                .map(|(_, u)| unescape(u))
                .unwrap_or_default();
            Event::Register {
                name: name.to_string(),
                has_arg,
                arginfo,
                usage,
            }
        }
        "rc" => {
            let (hook, rc) = rest.split_once(' ').unwrap_or((rest, ""));
            Event::Rc {
                hook: hook.to_string(),
                rc: rc.parse().ok(),
            }
        }
        "missing" => Event::Missing(rest.to_string()),
        "log" => {
            let (level, message) = rest.split_once(' ').unwrap_or((rest, ""));
            Event::Log {
                level: level.to_string(),
                message: unescape(message),
            }
        }
        "setenv" => {
            let (name, value) = split_pair(rest);
            Event::Setenv { name, value }
        }
        "unsetenv" => Event::Unsetenv(rest.to_string()),
        "control_setenv" => {
            let (name, value) = split_pair(rest);
            Event::ControlSetenv { name, value }
        }
        "env" => {
            let (name, value) = split_pair(rest);
            Event::Env { name, value }
        }
        "describe" => {
            let field = |key: &str| {
                rest.split(' ')
                    .find_map(|w| w.strip_prefix(key))
                    .unwrap_or("")
                    .to_string()
            };
            let version = field("version=0x");
            Event::Describe {
                name: field("name="),
                kind: field("type="),
                version: u32::from_str_radix(&version, 16).unwrap_or(0),
            }
        }
        "exported" => Event::Exported(rest.to_string()),
        "rpc" => Event::Rpc(rest.to_string()),
        "task_status" => match rest.parse() {
            Ok(status) => Event::TaskStatus(status),
            Err(_) => Event::Other(line.to_string()),
        },
        _ => Event::Other(line.to_string()),
    }
}

impl Host {
    pub fn new(plugin: impl Into<PathBuf>) -> Host {
        Host {
            plugin: plugin.into(),
            args: Vec::new(),
            envs: Vec::new(),
        }
    }

    fn push(mut self, flag: &str, value: impl Into<String>) -> Host {
        self.args.push(flag.to_string());
        self.args.push(value.into());
        self
    }

    /// local, remote, allocator, slurmd or job_script.
    pub fn context(self, context: &str) -> Host {
        self.push("--context", context)
    }

    /// A plugstack.conf argument.
    pub fn arg(self, word: &str) -> Host {
        self.push("--arg", word)
    }

    /// A spank item: uid, gid, job_id, step_id, array_job_id, array_task_id, task_id,
    /// task_global_id, task_exit_status, restart_count, argv (comma list), slurm_version, ...
    pub fn item(self, name: &str, value: impl ToString) -> Host {
        self.push("--item", format!("{name}={}", value.to_string()))
    }

    /// Makes a pointer item come back as NULL.
    pub fn null_item(self, name: &str) -> Host {
        self.push("--null-item", name)
    }

    /// A variable of the job's environment (what spank_getenv sees).
    pub fn env(self, name: &str, value: &str) -> Host {
        self.push("--env", format!("{name}={value}"))
    }

    /// What the fake slurm_load_job returns: time_limit (minutes or "infinite"),
    /// tres_per_node, nodes, gres_detail, fail=1.
    pub fn job(self, field: &str, value: &str) -> Host {
        self.push("--job", format!("{field}={value}"))
    }

    /// A variable of the host process's own environment.
    pub fn process_env(mut self, name: &str, value: &str) -> Host {
        self.envs.push((name.to_string(), value.to_string()));
        self
    }

    /// Calls `slurm_spank_<hook>`.
    pub fn call(self, hook: &str) -> Host {
        self.push("--call", hook)
    }

    /// Runs a registered option's callback, as Slurm does when the user gives it.
    pub fn option(self, name: &str, value: Option<&str>) -> Host {
        match value {
            Some(v) => self.push("--option", format!("{name}={v}")),
            None => self.push("--option", name),
        }
    }

    /// Runs one task as slurmstepd does: fork, task_init in the child then exec
    /// `sh -c command` with the job environment; task_post_fork, wait and task_exit (with the
    /// real wait status) in the parent.
    pub fn task(self, command: &str) -> Host {
        self.push("--task", command)
    }

    pub fn describe(mut self) -> Host {
        self.args.push("--describe".to_string());
        self
    }

    pub fn run(&self) -> Outcome {
        // SPANK_HOST_WRAPPER="valgrind --tool=memcheck ..." runs the host under a tool
        // (tests/valgrind-host.sh); words split on whitespace.
        let wrapper = std::env::var("SPANK_HOST_WRAPPER").unwrap_or_default();
        let mut words = wrapper.split_whitespace();
        let mut command = match words.next() {
            Some(tool) => {
                let mut c = Command::new(tool);
                c.args(words).arg(host_binary());
                c
            }
            None => Command::new(host_binary()),
        };
        // The tasks' stdout is a pipe of its own (read to its end: the plugin's output capture
        // may still be writing after the host exits), so the host's lines never interleave.
        let (mut task_reader, task_writer) = std::io::pipe().expect("pipe for the task output");
        let task_fd = task_writer.as_raw_fd();
        // SAFETY: dup2 between fork and exec moves the pipe's write end to a fixed number.
        unsafe {
            command.pre_exec(move || {
                // When the pipe already sits at TASK_FD, dup2 does nothing and the descriptor
                // keeps its close-on-exec flag: the host then found fd 9 closed and its task
                // exited 126 (a rare CI flake, whenever the pipe happened to get fd 9).
                let moved = if task_fd == TASK_FD {
                    libc::fcntl(TASK_FD, libc::F_SETFD, 0)
                } else {
                    libc::dup2(task_fd, TASK_FD)
                };
                if moved < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        command
            .arg(&self.plugin)
            .args(&self.args)
            .envs(self.envs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("SPANK_HOST_TASK_FD", TASK_FD.to_string());
        let reader = std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = task_reader.read_to_end(&mut bytes);
            bytes
        });
        let output = command.output().expect("cannot run spank_host");
        drop(command);
        drop(task_writer);
        let task_output = reader.join().unwrap_or_default();
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        let events = stdout.lines().map(parse_line).collect();
        Outcome {
            exit_code: output.status.code(),
            stdout,
            task_output: String::from_utf8_lossy(&task_output).into_owned(),
            stderr,
            events,
        }
    }
}

impl Outcome {
    /// The return code of the last call of `hook` (or "option:NAME").
    pub fn rc(&self, hook: &str) -> Option<i32> {
        self.events.iter().rev().find_map(|e| match e {
            Event::Rc { hook: h, rc } if h == hook => *rc,
            _ => None,
        })
    }

    /// All return codes of `hook`, in call order.
    pub fn rcs(&self, hook: &str) -> Vec<Option<i32>> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::Rc { hook: h, rc } if h == hook => Some(*rc),
                _ => None,
            })
            .collect()
    }

    pub fn logs(&self, level: &str) -> Vec<&str> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::Log { level: l, message } if l == level => Some(message.as_str()),
                _ => None,
            })
            .collect()
    }

    pub fn all_logs(&self) -> Vec<&str> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::Log { message, .. } => Some(message.as_str()),
                _ => None,
            })
            .collect()
    }

    /// The job environment after the last step.
    pub fn env(&self, name: &str) -> Option<&str> {
        self.events.iter().find_map(|e| match e {
            Event::Env { name: n, value } if n == name => Some(value.as_str()),
            _ => None,
        })
    }

    pub fn setenvs(&self) -> Vec<(&str, &str)> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::Setenv { name, value } => Some((name.as_str(), value.as_str())),
                _ => None,
            })
            .collect()
    }

    pub fn registered(&self) -> Vec<&str> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::Register { name, .. } => Some(name.as_str()),
                _ => None,
            })
            .collect()
    }

    pub fn exported(&self) -> Vec<&str> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::Exported(hook) => Some(hook.as_str()),
                _ => None,
            })
            .collect()
    }

    pub fn describe(&self) -> Option<(&str, &str, u32)> {
        self.events.iter().find_map(|e| match e {
            Event::Describe {
                name,
                kind,
                version,
            } => Some((name.as_str(), kind.as_str(), *version)),
            _ => None,
        })
    }

    pub fn rpcs(&self) -> usize {
        self.events
            .iter()
            .filter(|e| matches!(e, Event::Rpc(_)))
            .count()
    }

    /// Panics with the whole transcript: for assertion messages.
    pub fn transcript(&self) -> String {
        format!(
            "exit={:?}\n--- stdout\n{}--- task output\n{}--- stderr\n{}",
            self.exit_code, self.stdout, self.task_output, self.stderr
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_events() {
        assert_eq!(
            parse_line("register qpu has_arg=1 arginfo=NAMES usage=QPUs to use"),
            Event::Register {
                name: "qpu".into(),
                has_arg: true,
                arginfo: Some("NAMES".into()),
                usage: "QPUs to use".into()
            }
        );
        assert_eq!(
            parse_line("rc init -1"),
            Event::Rc {
                hook: "init".into(),
                rc: Some(-1)
            }
        );
        assert_eq!(
            parse_line("log error a\\nb"),
            Event::Log {
                level: "error".into(),
                message: "a\nb".into()
            }
        );
        assert_eq!(
            parse_line("env A=b=c"),
            Event::Env {
                name: "A".into(),
                value: "b=c".into()
            }
        );
        assert_eq!(
            parse_line("describe name=spank_x type=spank version=0x160508"),
            Event::Describe {
                name: "spank_x".into(),
                kind: "spank".into(),
                version: 0x160508
            }
        );
    }
}
