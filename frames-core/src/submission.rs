//! The sbatch command line of each submission into a frame directory, kept so `frames resubmit`
//! can rerun exactly the missing and failed indices with the original options.
//!
//! sbatch parses its own options up to the first non-option argument, the batch script (its
//! getopt string starts with `+`); everything after the script belongs to the script. The option
//! tables below come from sbatch(1) (Slurm 22.05 to 26.05): short options that take a value,
//! long options that take none or only an attached (`--opt=value`) one. Long options not in the
//! tables (site SPANK plugins' options) are taken to require a value, as SPANK options almost
//! always do; getopt's unique-prefix abbreviations (`--arr=0-9`) are recognized.
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::layout::Layout;
use crate::options::FrameOptions;
use crate::{Problem, atomic, ranges};

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

/// sbatch short options that take a value (`-a 0-9` or `-a0-9`).
const SHORT_WITH_VALUE: &str = "aAbBcCdDeFGiJLmMnNopqStwx";
/// sbatch short options whose value may only be attached (`-k`, `-koff`).
const SHORT_OPTIONAL_VALUE: &str = "k";

/// sbatch long options that take no value.
const LONG_FLAGS: &[&str] = &[
    "contiguous",
    "frame-sha256",
    "help",
    "hold",
    "ignore-pbs",
    "immediate",
    "no-requeue",
    "overcommit",
    "oversubscribe",
    "parsable",
    "quiet",
    "reboot",
    "requeue",
    "spread-job",
    "test-only",
    "usage",
    "use-min-nodes",
    "verbose",
    "version",
    "wait",
];

/// sbatch long options whose value may only be attached (`--exclusive`, `--exclusive=user`).
const LONG_OPTIONAL_VALUE: &[&str] = &[
    "exclusive",
    "get-user-env",
    "nice",
    "no-kill",
    "oom-kill-step",
    "propagate",
];

/// sbatch long options that take a value (listed for getopt's prefix matching).
const LONG_WITH_VALUE: &[&str] = &[
    "account",
    "acctg-freq",
    "array",
    "batch",
    "bb",
    "bbf",
    "begin",
    "chdir",
    "cluster-constraint",
    "clusters",
    "comment",
    "constraint",
    "container",
    "container-id",
    "core-spec",
    "cores-per-socket",
    "cpu-freq",
    "cpus-per-gpu",
    "cpus-per-task",
    "deadline",
    "delay-boot",
    "dependency",
    "distribution",
    "error",
    "exclude",
    "export",
    "export-file",
    "extra-node-info",
    "gid",
    "gpu-bind",
    "gpu-freq",
    "gpus",
    "gpus-per-node",
    "gpus-per-socket",
    "gpus-per-task",
    "gres",
    "gres-flags",
    "hint",
    "input",
    "job-name",
    "kill-on-invalid-dep",
    "licenses",
    "mail-type",
    "mail-user",
    "mcs-label",
    "mem",
    "mem-bind",
    "mem-per-cpu",
    "mem-per-gpu",
    "mincpus",
    "network",
    "nodefile",
    "nodelist",
    "nodes",
    "ntasks",
    "ntasks-per-core",
    "ntasks-per-gpu",
    "ntasks-per-node",
    "ntasks-per-socket",
    "open-mode",
    "output",
    "partition",
    "power",
    "prefer",
    "priority",
    "profile",
    "qos",
    "reservation",
    "segment",
    "signal",
    "sockets-per-node",
    "switches",
    "thread-spec",
    "threads-per-core",
    "time",
    "time-min",
    "tmp",
    "tres-bind",
    "tres-per-task",
    "uid",
    "wait-all-nodes",
    "wckey",
    "wrap",
    // This plugin's own options.
    "frame-dir",
    "frame-pattern",
    "frame-t0",
    "frame-dt",
    "frame-result-prefix",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Arity {
    None,
    Optional,
    Required,
}

/// Resolves a long option name as getopt_long does: exact match, else a unique prefix.
/// Unknown names (SPANK options of other plugins) are assumed to take a value.
fn long_option(name: &str) -> (String, Arity) {
    let tables = [
        (LONG_FLAGS, Arity::None),
        (LONG_OPTIONAL_VALUE, Arity::Optional),
        (LONG_WITH_VALUE, Arity::Required),
    ];
    for (table, arity) in tables {
        if table.contains(&name) {
            return (name.to_owned(), arity);
        }
    }
    let mut found: Option<(&str, Arity)> = None;
    for (table, arity) in tables {
        for &candidate in table {
            if candidate.starts_with(name) {
                if found.is_some() {
                    return (name.to_owned(), Arity::Required); // ambiguous: sbatch refuses it
                }
                found = Some((candidate, arity));
            }
        }
    }
    match found {
        Some((c, a)) if !name.is_empty() => (c.to_owned(), a),
        _ => (name.to_owned(), Arity::Required),
    }
}

/// Where an option's value sits in argv: `argv[arg][offset..]`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Hit {
    arg: usize,
    offset: usize,
    value: String,
}

/// What matters to us in an sbatch command line.
#[derive(Debug, Default)]
struct Parsed {
    /// Last `--array`/`-a` (getopt: the last one wins).
    array: Option<Hit>,
    /// Last `--exclude`/`-x`.
    exclude: Option<Hit>,
    /// Last `--partition`/`-p`.
    partition: Option<String>,
    /// Last `--output`/`-o` and `--chdir`/`-D`.
    output: Option<String>,
    chdir: Option<String>,
    /// Index of the batch script, when there is one.
    script: Option<usize>,
}

/// Parses sbatch's own options in `args[first..]`.
fn parse_sbatch(args: &[String], first: usize) -> Parsed {
    let mut p = Parsed::default();
    let mut i = first;
    while i < args.len() {
        let a = &args[i];
        if a == "--" {
            if i + 1 < args.len() {
                p.script = Some(i + 1);
            }
            break;
        }
        if let Some(body) = a.strip_prefix("--") {
            let (name, inline) = match body.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (body, None),
            };
            let (canonical, arity) = long_option(name);
            let hit = match (inline, arity) {
                (Some(v), _) => {
                    i += 1;
                    Some(Hit {
                        arg: i - 1,
                        offset: 2 + name.len() + 1,
                        value: v.to_owned(),
                    })
                }
                (None, Arity::Required) => {
                    let hit = args.get(i + 1).map(|v| Hit {
                        arg: i + 1,
                        offset: 0,
                        value: v.clone(),
                    });
                    i += 2;
                    hit
                }
                (None, _) => {
                    i += 1;
                    None
                }
            };
            if let Some(hit) = hit {
                p.note(&canonical, hit);
            }
            continue;
        }
        if a.len() > 1 && a.starts_with('-') {
            let mut consumed = 1;
            for (pos, c) in a.char_indices().skip(1) {
                let rest = pos + c.len_utf8();
                if SHORT_WITH_VALUE.contains(c) {
                    let hit = if rest < a.len() {
                        Some(Hit {
                            arg: i,
                            offset: rest,
                            value: a[rest..].to_owned(),
                        })
                    } else {
                        consumed = 2;
                        args.get(i + 1).map(|v| Hit {
                            arg: i + 1,
                            offset: 0,
                            value: v.clone(),
                        })
                    };
                    if let Some(hit) = hit {
                        match c {
                            'a' => p.note("array", hit),
                            'x' => p.note("exclude", hit),
                            'o' => p.note("output", hit),
                            'p' => p.note("partition", hit),
                            'D' => p.note("chdir", hit),
                            _ => {}
                        }
                    }
                    break;
                }
                if SHORT_OPTIONAL_VALUE.contains(c) {
                    break;
                }
            }
            i += consumed;
            continue;
        }
        p.script = Some(i);
        break;
    }
    p
}

impl Parsed {
    fn note(&mut self, option: &str, hit: Hit) {
        match option {
            "array" => self.array = Some(hit),
            "exclude" => self.exclude = Some(hit),
            "output" => self.output = Some(hit.value),
            "partition" => self.partition = Some(hit.value),
            "chdir" => self.chdir = Some(hit.value),
            _ => {}
        }
    }
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

/// Where a submission's jobs write their standard output (see
/// [`Submission::output_template`]); parsed once, filled per job.
#[derive(Debug, Clone, PartialEq)]
pub struct OutputTemplate {
    /// `--output` as given; `None`: sbatch's default.
    pattern: Option<String>,
    base: PathBuf,
}

impl OutputTemplate {
    /// The file of one job (`array`: the array job id and task id of an array element), with
    /// sbatch's `%` patterns that a record can fill expanded.
    pub fn file(&self, job_id: u32, array: Option<(u32, u32)>, node: &str) -> String {
        let default = if array.is_some() {
            "slurm-%A_%a.out"
        } else {
            "slurm-%j.out"
        };
        let pattern = self.pattern.as_deref().unwrap_or(default);
        let name = expand_output_pattern(pattern, job_id, array, node);
        self.base.join(name).display().to_string()
    }
}

/// Expands sbatch's filename patterns (sbatch(1) "filename pattern"): `%%`, `%A`, `%a`, `%j`,
/// `%J`, `%N`, `%n` (0), `%s` (batch), each with an optional zero-padding width (`%4a`);
/// others (`%u`, `%x`, ...) are kept as written.
fn expand_output_pattern(
    pattern: &str,
    job_id: u32,
    array: Option<(u32, u32)>,
    node: &str,
) -> String {
    let mut out = String::with_capacity(pattern.len() + 16);
    let mut chars = pattern.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut width = String::new();
        while let Some(d) = chars.peek().copied().filter(char::is_ascii_digit) {
            width.push(d);
            chars.next();
        }
        let pad = width.parse::<usize>().unwrap_or(0).min(10);
        let num = |n: u32| format!("{n:0pad$}");
        match chars.next() {
            Some('%') => out.push('%'),
            Some('A') => out.push_str(&num(array.map_or(job_id, |a| a.0))),
            Some('a') => out.push_str(&array.map_or_else(|| "4294967294".to_owned(), |a| num(a.1))),
            Some('j') | Some('J') => out.push_str(&num(job_id)),
            Some('N') => out.push_str(node),
            Some('n') => out.push_str(&num(0)),
            Some('s') => out.push_str("batch"),
            Some(other) => {
                out.push('%');
                out.push_str(&width);
                out.push(other);
            }
            None => {
                out.push('%');
                out.push_str(&width);
            }
        }
    }
    out
}

fn replace_value(argv: &mut [String], hit: &Hit, value: &str) {
    let arg = &mut argv[hit.arg];
    arg.truncate(hit.offset);
    arg.push_str(value);
}

/// Splits a Slurm host list on the commas that are not inside brackets: "c[1,3],q1" →
/// ["c[1,3]", "q1"].
fn split_hostlist(list: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut depth = 0u32;
    let mut cur = String::new();
    for c in list.chars() {
        match c {
            '[' => depth += 1,
            ']' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                out.push(std::mem::take(&mut cur));
                continue;
            }
            _ => {}
        }
        cur.push(c);
    }
    out.push(cur);
    out
}

/// Splits an `#SBATCH` directive's text into words: whitespace separates, single and double
/// quotes group, an unquoted `#` starts a comment.
fn split_directive(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    for c in text.chars() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => cur.push(c),
            None => match c {
                '\'' | '"' => {
                    quote = Some(c);
                    in_word = true;
                }
                '#' => break,
                c if c.is_whitespace() => {
                    if in_word {
                        out.push(std::mem::take(&mut cur));
                        in_word = false;
                    }
                }
                c => {
                    cur.push(c);
                    in_word = true;
                }
            },
        }
    }
    if in_word {
        out.push(cur);
    }
    out
}

/// Quotes one word for a POSIX shell (unchanged when it needs no quoting).
pub fn shell_quote(word: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "_@%+=:,./-".contains(c);
    if !word.is_empty() && word.chars().all(safe) {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}

/// A command line as one shell-quoted string.
pub fn shell_join(argv: &[String]) -> String {
    argv.iter()
        .map(|a| shell_quote(a))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The file of the submission with this id.
pub fn path_of(layout: &Layout, id: &str) -> PathBuf {
    layout.submissions_dir().join(format!("{id}.json"))
}

/// Stores a new submission as `submissions/<id>.json`, never replacing another one. The id
/// is `<time>-<host>-<pid>` (a suffix `-N` when taken), set in `submission.id`.
pub fn write(layout: &Layout, submission: &mut Submission, host: &str) -> io::Result<PathBuf> {
    let host: String = host
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let base = format!("{:.6}-{host}-{}", submission.time, std::process::id());
    for n in 0..1000u32 {
        submission.id = if n == 0 {
            base.clone()
        } else {
            format!("{base}-{n}")
        };
        let bytes = serde_json::to_vec_pretty(submission).map_err(io::Error::other)?;
        let path = path_of(layout, &submission.id);
        match atomic::write_new(&path, &bytes) {
            Ok(()) => return Ok(path),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AlreadyExists,
        format!(
            "{}: 1000 submissions named {base}*: cannot store another",
            layout.submissions_dir().display()
        ),
    ))
}

/// Rewrites a submission written by [`write`] with its outcome (state, job id, reason),
/// atomically (readers see the old or the new file, never a mix).
pub fn update(layout: &Layout, submission: &Submission) -> io::Result<PathBuf> {
    let mut bytes = serde_json::to_vec_pretty(submission).map_err(io::Error::other)?;
    bytes.push(b'\n');
    let path = path_of(layout, &submission.id);
    atomic::write_atomic(&path, &bytes)?;
    Ok(path)
}

/// Largest submission file read (a command line and environment summary); bigger is a problem.
const MAX_SUBMISSION_BYTES: usize = 16 << 20;

/// All stored submissions, oldest first, and the files that could not be read. A missing
/// submissions directory means no submission.
pub fn read_all(layout: &Layout) -> io::Result<(Vec<Submission>, Vec<Problem>)> {
    let (found, problems) = read_all_owned(layout)?;
    Ok((found.into_iter().map(|(_, _, s)| s).collect(), problems))
}

/// A submission file's name, its owner's uid, and its content.
pub type OwnedFile = (String, u32, Submission);

/// [`read_all`], with each submission's file name and owner uid (the reader decides whom to
/// trust), oldest first.
pub fn read_all_owned(layout: &Layout) -> io::Result<(Vec<OwnedFile>, Vec<Problem>)> {
    let dir = layout.submissions_dir();
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok((Vec::new(), Vec::new())),
        Err(e) => {
            return Err(io::Error::new(
                e.kind(),
                format!("cannot read {}: {e}", dir.display()),
            ));
        }
    };
    let mut found = Vec::new();
    let mut problems = Vec::new();
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.starts_with('.') || !name.ends_with(".json") {
            continue;
        }
        let path = entry.path();
        match crate::atomic::read_regular_nofollow_owned(&path, MAX_SUBMISSION_BYTES) {
            Ok((bytes, uid)) => match serde_json::from_slice::<Submission>(&bytes) {
                Ok(s) => found.push((name.to_owned(), uid, s)),
                Err(e) => problems.push(Problem::new(&path, format!("not a submission: {e}"))),
            },
            Err(e) => problems.push(Problem::new(&path, format!("cannot read: {e}"))),
        }
    }
    found.sort_by(|a, b| a.2.time.total_cmp(&b.2.time).then_with(|| a.0.cmp(&b.0)));
    problems.sort();
    Ok((found, problems))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::options::DEFAULT_RESULT_PREFIX;
    use crate::pattern::DEFAULT_PATTERN;

    fn argv(s: &str) -> Vec<String> {
        s.split(' ').map(str::to_owned).collect()
    }

    fn sub(s: &str) -> Submission {
        Submission::from_argv(&argv(s), "/home/u", 1.5)
    }

    #[test]
    fn finds_the_array_spec_in_every_form() {
        for cmd in [
            "sbatch --array=0-119 render.sbatch",
            "sbatch --array 0-119 render.sbatch",
            "sbatch -a 0-119 render.sbatch",
            "sbatch -a0-119 render.sbatch",
            "sbatch -Ha0-119 render.sbatch",
            "sbatch --arr=0-119 render.sbatch",
            "sbatch -p all -N 1 --array=5 --array=0-119 render.sbatch",
            "sbatch --hold --array=0-119 -- render.sbatch",
            "sbatch -k --array=0-119 render.sbatch",
            "sbatch --exclusive --array=0-119 render.sbatch",
        ] {
            let s = sub(cmd);
            assert_eq!(s.array.as_deref(), Some("0-119"), "{cmd}");
            assert_eq!(s.script_path(), Some("render.sbatch"), "{cmd}");
        }
    }

    #[test]
    fn options_after_the_script_belong_to_the_script() {
        let s = sub("sbatch -p all render.sbatch --array=0-9 -a 3");
        assert_eq!(s.array, None);
        assert_eq!(s.script_path(), Some("render.sbatch"));
        // A value that looks like a script is the option's value.
        let s = sub("sbatch -J render.sbatch --qpu ibm --array=1-3 job.sh");
        assert_eq!(s.array.as_deref(), Some("1-3"));
        assert_eq!(s.script_path(), Some("job.sh"));
        let s = sub("sbatch --wrap=hostname --array=0-3");
        assert_eq!(s.array.as_deref(), Some("0-3"));
        assert_eq!(s.script_path(), None);
        let s = sub("sbatch --wrap hostname -a 0-3");
        assert_eq!(s.array.as_deref(), Some("0-3"));
    }

    #[test]
    fn plugin_options_are_taken_as_parsed() {
        let mut options = FrameOptions::default();
        for (name, value) in [
            ("frame-dir", "/shared/f"),
            ("frame-t0", "1.5"),
            ("frame-dt", "0.5"),
            ("frame-pattern", "s/%d.exr"),
            ("result-prefix", "R:"),
        ] {
            options.set(name, Some(value)).unwrap();
        }
        let line = argv(
            "sbatch --frame-dir=/shared/f --frame-t0 1.5 --frame-dt=0.5 --frame-pattern=s/%d.exr --result-prefix=R: x.sh",
        );
        let s = Submission::new(&line, "/home/u", 1.5, &options);
        assert_eq!(s.frame_dir, "/shared/f");
        assert_eq!((s.t0, s.dt), (1.5, 0.5));
        assert_eq!(s.frame_pattern, "s/%d.exr");
        assert_eq!(s.result_prefix, "R:");
        // The command line is kept as given (resubmit replays it); the options' values are
        // not taken for the script.
        assert_eq!(s.argv, line);
        assert_eq!(s.script_path(), Some("x.sh"));
        let d = sub("sbatch x.sh");
        assert_eq!(d.frame_pattern, DEFAULT_PATTERN);
        assert_eq!(d.result_prefix, DEFAULT_RESULT_PREFIX);
        assert_eq!((d.t0, d.dt), (0.0, 1.0));
    }

    #[test]
    fn resubmit_replaces_array_in_place() {
        let s = sub("sbatch -p all --array=0-119 --frame-dir=/f render.sbatch --array=x arg");
        assert_eq!(
            s.resubmit_argv(&[3, 4, 5, 77], &[]),
            argv("sbatch -p all --array=3-5,77 --frame-dir=/f render.sbatch --array=x arg")
        );
        let s = sub("sbatch -a 0-9 r.sh");
        assert_eq!(s.resubmit_argv(&[1], &[]), argv("sbatch -a 1 r.sh"));
        let s = sub("sbatch -Ha0-9 r.sh");
        assert_eq!(s.resubmit_argv(&[1, 2], &[]), argv("sbatch -Ha1-2 r.sh"));
        let s = sub("sbatch --array 0-15%4 r.sh");
        assert_eq!(
            s.resubmit_argv(&[2, 9], &[]),
            argv("sbatch --array 2,9%4 r.sh")
        );
        let s = sub("sbatch --arr=0-9 r.sh");
        assert_eq!(s.resubmit_argv(&[2], &[]), argv("sbatch --arr=2 r.sh"));
    }

    #[test]
    fn resubmit_adds_missing_array_and_excludes() {
        let s = sub("/usr/bin/sbatch -p all r.sh a b");
        assert_eq!(
            s.resubmit_argv(&[0], &["c2".into()]),
            argv("/usr/bin/sbatch --array=0 --exclude=c2 -p all r.sh a b")
        );
        let s = sub("sbatch -x c[1,3] --array=0-9 r.sh");
        assert_eq!(
            s.resubmit_argv(&[4], &["c2".into(), "c1".into(), "c[1,3]".into()]),
            argv("sbatch -x c[1,3],c2,c1 --array=4 r.sh")
        );
        let s = sub("sbatch --exclude=q1 --array=0-9 r.sh");
        assert_eq!(
            s.resubmit_argv(&[4], &["c2".into()]),
            argv("sbatch --exclude=q1,c2 --array=4 r.sh")
        );
        let s = sub("sbatch -xq1 --array=0-9 r.sh");
        assert_eq!(
            s.resubmit_argv(&[4], &["c2".into()]),
            argv("sbatch -xq1,c2 --array=4 r.sh")
        );
        // An exclude from #SBATCH lines is merged, since the command line overrides it.
        let mut s = sub("sbatch --array=0-9 r.sh");
        s.fill_from_script(
            "#!/bin/bash\n#SBATCH --exclude=bad1 # broken\n#SBATCH -p all\necho\n#SBATCH -x late\n",
        );
        assert_eq!(s.script_exclude.as_deref(), Some("bad1"));
        assert_eq!(
            s.resubmit_argv(&[4], &["c2".into()]),
            argv("sbatch --exclude=bad1,c2 --array=4 r.sh")
        );
        // No new nodes: the exclude is left alone.
        assert_eq!(s.resubmit_argv(&[4], &[]), argv("sbatch --array=4 r.sh"));
    }

    #[test]
    fn array_from_script_or_env() {
        let mut s = sub("sbatch r.sh");
        s.fill_from_script(
            "#!/bin/sh\n\n# comment\n#SBATCH --job-name='a b'\n#SBATCH --array=0-119%10\nrender\n",
        );
        assert_eq!(s.array.as_deref(), Some("0-119%10"));
        let mut s = sub("sbatch r.sh");
        s.fill_from_env(Some("0-3"));
        s.fill_from_script("#SBATCH -a 0-9\n");
        assert_eq!(s.array.as_deref(), Some("0-3"));
        let mut s = sub("sbatch --array=1 r.sh");
        s.fill_from_env(Some("0-3"));
        assert_eq!(s.array.as_deref(), Some("1"));
        // Directives after the first command are ignored, as sbatch does.
        let mut s = sub("sbatch r.sh");
        s.fill_from_script("#!/bin/sh\necho hi\n#SBATCH --array=0-3\n");
        assert_eq!(s.array, None);
        // The added --array overrides the script's.
        assert_eq!(s.resubmit_argv(&[1], &[]), argv("sbatch --array=1 r.sh"));
    }

    #[test]
    fn quoting() {
        assert_eq!(shell_quote("abc-1_2/x.y"), "abc-1_2/x.y");
        assert_eq!(shell_quote(""), "''");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
        assert_eq!(shell_quote("$HOME"), "'$HOME'");
        assert_eq!(
            shell_join(&["sbatch".into(), "--wrap=echo hi".into()]),
            "sbatch '--wrap=echo hi'"
        );
    }

    #[test]
    fn write_and_read_back() {
        let tmp = crate::test_util::TempDir::new("submission");
        let layout = Layout::new(tmp.path());
        assert!(read_all(&layout).unwrap().0.is_empty());
        layout.create_dirs().unwrap();
        let mut a = sub("sbatch --array=0-3 r.sh");
        let mut b = a.clone();
        b.time = 0.5;
        let pa = write(&layout, &mut a, "c1.local").unwrap();
        let first_id = a.id.clone();
        assert_eq!(
            first_id,
            format!("1.500000-c1_local-{}", std::process::id())
        );
        assert_eq!(pa, path_of(&layout, &first_id));
        let mut a2 = a.clone();
        let pa2 = write(&layout, &mut a2, "c1.local").unwrap();
        assert_ne!(pa, pa2);
        assert_eq!(a2.id, format!("{first_id}-1"));
        write(&layout, &mut b, "c1.local").unwrap();
        std::fs::write(layout.submissions_dir().join("junk.json"), "{").unwrap();
        // The outcome replaces the provisional file.
        a.state = SubmissionState::Accepted;
        a.job_id = Some(42);
        update(&layout, &a).unwrap();
        let (subs, problems) = read_all(&layout).unwrap();
        assert_eq!(subs, vec![b, a2, a]);
        assert_eq!(problems.len(), 1);
        assert!(problems[0].path.ends_with("junk.json"));
        assert!(problems[0].error.contains("not a submission"));
    }

    #[test]
    fn version_1_submissions_are_read_as_accepted() {
        let v1 = r#"{"version":1,"time":1.5,"cwd":"/h","argv":["sbatch","--array=0-3","r.sh"],
            "array":"0-3","frame_dir":"/f","frame_pattern":"frame_%04d.png","t0":0.0,"dt":1.0,
            "result_prefix":"RESULT:"}"#;
        let s: Submission = serde_json::from_str(v1).unwrap();
        assert_eq!(s.state, SubmissionState::Accepted);
        assert_eq!((s.id.as_str(), s.uid, s.job_id), ("", None, None));
        // A new one starts provisional and says so in its file.
        let n = sub("sbatch r.sh");
        assert_eq!(n.state, SubmissionState::Provisional);
        let text = serde_json::to_string(&n).unwrap();
        assert!(text.contains(r#""state":"provisional""#), "{text}");
        assert_eq!(n.command(), "sbatch");
        assert_eq!(sub("/usr/bin/salloc -N2").command(), "salloc");
    }

    #[test]
    fn a_rerun_is_taken_only_from_the_frames_process_that_runs_sbatch() {
        assert_eq!(rerun_of(&rerun_value(102, 4242), &[4242]), Some(102));
        assert_eq!(rerun_of(&rerun_value(102, 4242), &[99, 4242]), Some(102));
        // Inherited by a job whose script runs sbatch: other ancestors.
        assert_eq!(rerun_of(&rerun_value(102, 4242), &[777, 1]), None);
        for bad in ["", "102", "102:", ":4242", "x:4242", "102:x"] {
            assert_eq!(rerun_of(bad, &[4242]), None, "{bad}");
        }
        let me = std::process::id();
        // SAFETY: getppid(2) has no preconditions.
        let parent = u32::try_from(unsafe { libc::getppid() }).unwrap();
        assert_eq!(parent_of(me), Some(parent));
    }

    #[test]
    fn is_sbatch() {
        assert!(sub("/opt/slurm/bin/sbatch x").is_sbatch());
        assert!(!sub("srun x").is_sbatch());
    }

    #[test]
    fn output_file_follows_sbatchs_patterns() {
        let s = sub("sbatch -D run -o logs/%x-%A_%4a.%N.%%.out --array=0-3 r.sh");
        let t = s.output_template().expect("sbatch");
        assert_eq!(
            t.file(1005, Some((1000, 5)), "c2"),
            "/home/u/run/logs/%x-1000_0005.c2.%.out"
        );
        let plain = sub("sbatch --wrap=true");
        let t = plain.output_template().expect("sbatch");
        assert_eq!(t.file(42, None, "c1"), "/home/u/slurm-42.out");
        assert_eq!(t.file(43, Some((40, 3)), "c1"), "/home/u/slurm-40_3.out");
        let abs = sub("sbatch --output=/abs/%j.log r.sh");
        assert_eq!(
            abs.output_template().unwrap().file(7, None, "c1"),
            "/abs/7.log"
        );
        assert_eq!(sub("srun -n2 w").output_template(), None);
    }
}
