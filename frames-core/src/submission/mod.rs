//! The command line of each submission into a frame directory (sbatch, salloc or srun), kept
//! so `frames resubmit` can rerun exactly the missing and failed indices with the original
//! options: the [`Submission`] record and its state here, sbatch's own options read from the
//! command line in `sbatch_args`, its output file names in `output`, the files under
//! `.frames/submissions/` in `store`.
mod output;
mod sbatch_args;
mod store;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::options::FrameOptions;
use crate::ranges;

pub use output::OutputTemplate;
pub use sbatch_args::{shell_join, shell_quote};
pub use store::{OwnedFile, path_of, read_all, read_all_owned, update, write};

use sbatch_args::{parse_sbatch, replace_value, split_directive, split_hostlist};

/// Version of the submission format written by this crate. Version 1 had no `id`, `uid`,
/// `job_id` or `state`: such files are read as `Accepted` with an empty id (the plugin that
/// wrote them could not tell, and they counted before).
pub const SUBMISSION_VERSION: u32 = 2;

/// Environment variable that carries the submission id into the job. It is set with
/// `spank_job_control_setenv`, which sbatch/salloc/srun pass to the job as `SLURM_SPANK_<name>`
/// even with `--export=NONE`; the records of the job's tasks copy it into `submission`.
pub const SUBMISSION_ENV: &str = "FRAMES_SUBMISSION";

/// Environment variable `frames resubmit` sets when it reruns a non-array job: the job id it
/// reruns. The plugin records it in the sbatch submission (`reruns_job`), so the new job
/// stands for the old one instead of being one more unit beside it (which `resubmit` would
/// propose again, also while the rerun still runs).
/// The value is `JOB:PID`, PID being the `frames` process that runs sbatch: the plugin takes
/// it only from its parent, so a rerun job that inherited it and calls sbatch itself (a
/// pipeline's next stage) is not taken for another rerun.
pub const RERUN_ENV: &str = "FRAMES_RERUN_OF";

/// [`RERUN_ENV`]'s value for `frames` (process `pid`) rerunning `job`.
pub fn rerun_value(job: u32, pid: u32) -> String {
    format!("{job}:{pid}")
}

/// The job a [`RERUN_ENV`] value names, when it was set by one of `ancestors` (sbatch's
/// parent, or the one above it when sbatch is a site's wrapper script); `None` otherwise.
pub fn rerun_of(value: &str, ancestors: &[u32]) -> Option<u32> {
    let (job, pid) = value.trim().split_once(':')?;
    let pid: u32 = pid.parse().ok()?;
    ancestors.contains(&pid).then(|| job.parse().ok()).flatten()
}

/// The parent of process `pid`, from /proc (`None` when it cannot be read).
pub fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "PID (COMM) STATE PPID ...": COMM may hold spaces and parentheses, so after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// How far a submission got, as the submitting process knows it.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SubmissionState {
    /// Written before the job request was sent. sbatch does not tell plugins its job id, so
    /// an sbatch submission stays provisional until the reader links it to a job: by a record
    /// whose `submission` is this id, or by Slurm's queue/accounting. Past a short grace
    /// period, a provisional submission that neither links is a rejected one.
    Provisional,
    /// Slurm accepted it: `job_id` is the job (srun and salloc know it when they end).
    Accepted,
    /// The submitting process ended without a job (slurmctld refused it, or the user
    /// interrupted it): never expected work, never resubmitted.
    Rejected,
}

fn legacy_state() -> SubmissionState {
    SubmissionState::Accepted
}

/// One sbatch (or srun/salloc) call that used `--frame-dir`, stored in `.frames/submissions/`.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Submission {
    pub version: u32,
    /// Unique id, also the file's name without `.json` (`<time>-<host>-<pid>`); exported to the
    /// job as [`SUBMISSION_ENV`] so its records name it. Empty in version 1.
    #[serde(default)]
    pub id: String,
    /// The submitting user; `None` in version 1.
    #[serde(default)]
    pub uid: Option<u32>,
    /// The job Slurm created, when the submitting process learned it (srun, salloc).
    #[serde(default)]
    pub job_id: Option<u32>,
    #[serde(default = "legacy_state")]
    pub state: SubmissionState,
    /// Why a rejected submission was judged so.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Unix seconds.
    pub time: f64,
    /// Working directory of the submission (relative script paths are relative to it).
    pub cwd: String,
    /// The full command line, argv[0] included.
    pub argv: Vec<String>,
    /// The effective `--array` spec (command line, else SBATCH_ARRAY_INX, else `#SBATCH`).
    pub array: Option<String>,
    pub frame_dir: String,
    pub frame_pattern: String,
    pub t0: f64,
    pub dt: f64,
    pub result_prefix: String,
    /// `--exclude` given in the script's `#SBATCH` lines: a command-line `--exclude` overrides
    /// it, so resubmit merges it in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub script_exclude: Option<String>,
    /// The non-array job this submission reruns (`frames resubmit`, through [`RERUN_ENV`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reruns_job: Option<u32>,
    /// Submitted with `--frame-local`: the frame dir is on each node's own disk, and this
    /// host sees the records only after `frames gather`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub frame_local: bool,
}

impl Submission {
    /// The submission of a call made with `argv` (the submitting program's own command line,
    /// replayed by `frames resubmit`) and the frame options Slurm gave the plugin: the array
    /// spec is read from sbatch's options (before the script); the frame options are taken as
    /// parsed, never read from argv again.
    pub fn new(argv: &[String], cwd: &str, time: f64, options: &FrameOptions) -> Submission {
        let p = parse_sbatch(argv, 1);
        Submission {
            version: SUBMISSION_VERSION,
            id: String::new(),
            uid: None,
            job_id: None,
            state: SubmissionState::Provisional,
            reason: None,
            time,
            cwd: cwd.to_owned(),
            argv: argv.to_vec(),
            array: p.array.map(|h| h.value),
            frame_dir: options
                .frame_dir
                .as_ref()
                .map(|d| d.display().to_string())
                .unwrap_or_default(),
            frame_pattern: options.pattern_text.clone(),
            t0: options.t0,
            dt: options.dt,
            result_prefix: options.result_prefix.clone(),
            script_exclude: None,
            reruns_job: None,
            frame_local: options.local,
        }
    }

    /// [`Submission::new`] with the default frame options and no frame dir: a command line
    /// alone (tests, benchmarks, fuzzing).
    pub fn from_argv(argv: &[String], cwd: &str, time: f64) -> Submission {
        Submission::new(argv, cwd, time, &FrameOptions::default())
    }

    /// The batch script argument, if any (none with `--wrap` or a script on stdin).
    pub fn script_path(&self) -> Option<&str> {
        parse_sbatch(&self.argv, 1)
            .script
            .map(|i| self.argv[i].as_str())
    }

    /// Takes the array spec from `SBATCH_ARRAY_INX` when the command line has none (sbatch's
    /// precedence: command line, environment, script).
    pub fn fill_from_env(&mut self, sbatch_array_inx: Option<&str>) {
        if self.array.is_none()
            && let Some(v) = sbatch_array_inx.filter(|v| !v.is_empty())
        {
            self.array = Some(v.to_owned());
        }
    }

    /// Reads the script's `#SBATCH` directives (up to the first command, as sbatch does): the
    /// array spec when none was set yet, and `--exclude` (kept in `script_exclude`).
    pub fn fill_from_script(&mut self, script: &str) {
        let mut tokens = vec![String::new()];
        for (n, line) in script.lines().enumerate() {
            let line = line.trim_start();
            if n == 0 && line.starts_with("#!") {
                continue;
            }
            if line.is_empty() {
                continue;
            }
            if !line.starts_with('#') {
                break;
            }
            if let Some(rest) = line.strip_prefix("#SBATCH") {
                // The directive ends at the next '#' outside quotes, as in sbatch.
                tokens.extend(split_directive(rest));
            }
        }
        let p = parse_sbatch(&tokens, 1);
        if self.array.is_none() {
            self.array = p.array.map(|h| h.value);
        }
        self.script_exclude = p.exclude.map(|h| h.value);
    }

    /// The partitions the command line asks for (`-p a,b`), None when it names none (then the
    /// script's `#SBATCH` lines or the default partition decide, which are not read here).
    pub fn partitions(&self) -> Option<std::collections::BTreeSet<String>> {
        let p = parse_sbatch(&self.argv, 1).partition?;
        let set: std::collections::BTreeSet<String> = p
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        (!set.is_empty()).then_some(set)
    }

    /// The command that reruns `indices`: the original command line with the array spec
    /// replaced by the compressed indices (added when absent; a `%N` throttle is kept), and
    /// `exclude_nodes` merged into `--exclude`. Everything else is unchanged. `indices` empty
    /// reruns a non-array job: its command as recorded, no `--array` added.
    pub fn resubmit_argv(&self, indices: &[u64], exclude_nodes: &[String]) -> Vec<String> {
        let mut argv = self.argv.clone();
        if argv.is_empty() {
            argv.push("sbatch".to_owned());
        }
        let p = parse_sbatch(&argv, 1);
        let throttle = self
            .array
            .as_deref()
            .and_then(|a| ranges::split_throttle(a).1)
            .map(|t| format!("%{t}"))
            .unwrap_or_default();
        let spec = format!("{}{throttle}", ranges::compress(indices));
        let mut inserts = Vec::new();
        match &p.array {
            _ if indices.is_empty() => {}
            Some(hit) => replace_value(&mut argv, hit, &spec),
            None => inserts.push(format!("--array={spec}")),
        }
        if !exclude_nodes.is_empty() {
            let mut nodes: Vec<String> = Vec::new();
            let base = match &p.exclude {
                Some(hit) => Some(hit.value.as_str()),
                None => self.script_exclude.as_deref(),
            };
            for n in base
                .into_iter()
                .flat_map(split_hostlist)
                .chain(exclude_nodes.iter().cloned())
            {
                if !n.is_empty() && !nodes.contains(&n) {
                    nodes.push(n);
                }
            }
            let merged = nodes.join(",");
            match &p.exclude {
                Some(hit) => replace_value(&mut argv, hit, &merged),
                None => inserts.push(format!("--exclude={merged}")),
            }
        }
        // Right after argv[0] is always among sbatch's own options.
        for (k, arg) in inserts.into_iter().enumerate() {
            argv.insert(1 + k, arg);
        }
        argv
    }

    /// The job's standard output file, as sbatch names it: `--output` of the command line
    /// (default `slurm-%j.out`, `slurm-%A_%a.out` for an array) relative to `--chdir` and the
    /// submission's directory; `None` for srun and salloc (their output is the terminal). An
    /// `#SBATCH --output` in the script is not seen (the script is not stored).
    pub fn output_template(&self) -> Option<OutputTemplate> {
        if !self.is_sbatch() {
            return None;
        }
        let p = parse_sbatch(&self.argv, 1);
        Some(OutputTemplate {
            pattern: p.output,
            base: match p.chdir {
                Some(d) => Path::new(&self.cwd).join(d),
                None => PathBuf::from(&self.cwd),
            },
        })
    }

    /// `true` when argv[0] is sbatch (only sbatch submissions can be resubmitted).
    pub fn is_sbatch(&self) -> bool {
        self.command() == "sbatch"
    }

    /// The program's name: "sbatch", "salloc", "srun" (argv[0]'s file name).
    pub fn command(&self) -> &str {
        self.argv
            .first()
            .and_then(|a| Path::new(a).file_name())
            .and_then(|n| n.to_str())
            .unwrap_or("")
    }
}
