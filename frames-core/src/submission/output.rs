//! The file sbatch writes a job's standard output to, from the submission's `--output`.
use std::path::PathBuf;

/// Where a submission's jobs write their standard output (see
/// [`Submission::output_template`]); parsed once, filled per job.
#[derive(Debug, Clone, PartialEq)]
pub struct OutputTemplate {
    /// `--output` as given; `None`: sbatch's default.
    pub(super) pattern: Option<String>,
    pub(super) base: PathBuf,
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
