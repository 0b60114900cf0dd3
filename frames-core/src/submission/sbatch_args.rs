//! sbatch's own options in a command line: where `--array`, `--exclude`, `--partition`,
//! `--output` and `--chdir` sit, so a submission can be replayed with some of them replaced.
//!
//! sbatch parses its own options up to the first non-option argument, the batch script (its
//! getopt string starts with `+`); everything after the script belongs to the script. The option
//! tables below come from sbatch(1) (Slurm 22.05 to 26.05): short options that take a value,
//! long options that take none or only an attached (`--opt=value`) one. Long options not in the
//! tables (site SPANK plugins' options) are taken to require a value, as SPANK options almost
//! always do; getopt's unique-prefix abbreviations (`--arr=0-9`) are recognized.
use crate::options::OPTIONS;

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
    // sbatch's getopt table holds the plugins' options too: this plugin's from its own table.
    let plugin = OPTIONS.iter().map(|o| {
        let arity = if o.arg.is_some() {
            Arity::Required
        } else {
            Arity::None
        };
        (o.name, arity)
    });
    let known = || {
        tables
            .into_iter()
            .flat_map(|(table, arity)| table.iter().map(move |&n| (n, arity)))
            .chain(plugin.clone())
    };
    if let Some((_, arity)) = known().find(|&(n, _)| n == name) {
        return (name.to_owned(), arity);
    }
    let mut found: Option<(&str, Arity)> = None;
    for (candidate, arity) in known() {
        if candidate.starts_with(name) {
            if found.is_some() {
                return (name.to_owned(), Arity::Required); // ambiguous: sbatch refuses it
            }
            found = Some((candidate, arity));
        }
    }
    match found {
        Some((c, a)) if !name.is_empty() => (c.to_owned(), a),
        _ => (name.to_owned(), Arity::Required),
    }
}

/// Where an option's value sits in argv: `argv[arg][offset..]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Hit {
    pub(super) arg: usize,
    pub(super) offset: usize,
    pub(super) value: String,
}

/// What matters to us in an sbatch command line.
#[derive(Debug, Default)]
pub(super) struct Parsed {
    /// Last `--array`/`-a` (getopt: the last one wins).
    pub(super) array: Option<Hit>,
    /// Last `--exclude`/`-x`.
    pub(super) exclude: Option<Hit>,
    /// Last `--partition`/`-p`.
    pub(super) partition: Option<String>,
    /// Last `--output`/`-o` and `--chdir`/`-D`.
    pub(super) output: Option<String>,
    pub(super) chdir: Option<String>,
    /// Index of the batch script, when there is one.
    pub(super) script: Option<usize>,
}

/// Parses sbatch's own options in `args[first..]`.
pub(super) fn parse_sbatch(args: &[String], first: usize) -> Parsed {
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

pub(super) fn replace_value(argv: &mut [String], hit: &Hit, value: &str) {
    let arg = &mut argv[hit.arg];
    arg.truncate(hit.offset);
    arg.push_str(value);
}

/// Splits a Slurm host list on the commas that are not inside brackets: "c[1,3],q1" →
/// ["c[1,3]", "q1"].
pub(super) fn split_hostlist(list: &str) -> Vec<String> {
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
pub(super) fn split_directive(text: &str) -> Vec<String> {
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
