//! What Slurm still does with a frame directory's jobs: parses the machine-readable output of
//! `squeue` and `sacct` into one state per job or array task (pending, running, requeued,
//! completed, failed, cancelled, timeout, lost with its node), and runs those commands with a
//! bounded time so `frames` never hangs on a slow or dead controller.
//!
//! Formats: `squeue --format` (`-o`) `%` fields and `sacct --parsable2 --format=` field names
//! are the same on Slurm 22.05, 24.11 and 26.05, while `--json` output changed its schema
//! between them (data_parser v0.0.38 → v0.0.40+) and needs a data_parser plugin installed, so
//! the text formats are used. squeue knows jobs until MinJobAge after they end; sacct knows
//! them as long as accounting keeps them, and says "accounting storage is disabled" without it.
//!
//! Modules: `parse` (the commands' output), `ask` (running them, bounded), `link` (which job
//! each sbatch submission became), `live` (what is still active, lost or stuck, in the dir's
//! terms).
mod ask;
mod link;
mod live;
mod parse;
#[cfg(test)]
mod tests;

use std::time::Duration;

pub use ask::*;
pub use link::*;
pub use live::*;
pub use parse::*;

/// squeue's fields, `|`-separated: job id, array job id, array task id (or range while the
/// array's rest is pending, "N/A" for non-array jobs), state, nodes, reason, then (to link a
/// submission to its job) uid, submit time (printed in UTC: the runner sets TZ=UTC) and the
/// working directory, last because a path may hold a `|`.
/// The partition (%P) lets a submission that names partitions be linked only to a job in one of
/// them; the working directory (%Z) comes last, as the one field that may hold a '|'.
pub const SQUEUE_FORMAT: &str = "%A|%F|%K|%T|%N|%r|%U|%V|%P|%Z";
/// sacct's fields (`--parsable2` separates them with `|`).
pub const SACCT_FORMAT: &str = "JobIDRaw,JobID,State,NodeList,ExitCode";
/// sacct's fields to link a submission to its job once squeue has forgotten it (MinJobAge):
/// SACCT_FORMAT's, then uid, submit time, partition and the working directory (last: a path
/// may hold a '|').
pub const SACCT_LINK_FORMAT: &str =
    "JobIDRaw,JobID,State,NodeList,ExitCode,UID,Submit,Partition,WorkDir";
/// The programs, overridable (FRAMES_SQUEUE, FRAMES_SACCT, FRAMES_SINFO) so tests can stand
/// in recorded answers and sites can point at a wrapper.
pub fn program(name: &str) -> String {
    let var = format!("FRAMES_{}", name.to_ascii_uppercase());
    std::env::var(var)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| name.to_owned())
}

/// How long one squeue or sacct call may take before it is abandoned (killed).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(15);
