//! Pure logic of spank-frames, shared by the plugin (`spank_frames.so`) and the `frames` CLI.
//!
//! A frame directory DIR (`--frame-dir`) holds the users' frame files and, under `DIR/.frames/`,
//! the state this crate reads and writes:
//!
//! ```text
//! DIR/.frames/records/      task records: appended to one segment per job and node (store.rs);
//!                           older plugins wrote one file per task attempt (still read)
//! DIR/.frames/results/      FRAME_RESULT files and captured stdout results (capture.rs)
//! DIR/.frames/submissions/  one Submission per sbatch/salloc/srun that makes a job (submission/)
//! DIR/.frames/finish.N      finisher election tokens (merge::try_finish)
//! DIR/.frames/node-local.json, gathered.json   node-local dirs (gather)
//! DIR/manifest.jsonl, DIR/summary.json, DIR/summary.csv   merge outputs (merge/)
//! ```
//!
//! Modules: `layout` (paths), `pattern` (frame file name patterns), `options` (the plugin's
//! options: table, defaults, parsers), `ranges` (index ranges), `capture` (RESULT: lines),
//! `record` (the record and its assembly from a task's facts), `store` (segments and record
//! files: writing and listing records), `submission` (sbatch command lines), `merge` (collect,
//! summarize, finisher election), `gather` (node-local dirs: the node's marker, the stream
//! `frames gather` reads through srun), `queue` (what squeue/sacct say about
//! the dir's jobs). Crash-safe writes and bounded reads come from the `host_io` crate.
pub mod capture;
pub mod gather;
pub mod layout;
pub mod merge;
pub mod options;
pub mod pattern;
pub mod queue;
pub mod ranges;
pub mod record;
pub mod store;
pub mod submission;

pub use layout::{Layout, StepId, TaskKey};

use serde::{Deserialize, Serialize};

/// A file under `.frames/` that could not be used (unreadable, corrupt, unexpected name). Merges
/// report these instead of skipping them silently or aborting.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Problem {
    /// The file, as a path (absolute when the layout root is).
    pub path: String,
    /// What is wrong with it.
    pub error: String,
}

impl Problem {
    pub fn new(path: &std::path::Path, error: impl Into<String>) -> Problem {
        Problem {
            path: path.display().to_string(),
            error: error.into(),
        }
    }
}

#[doc(hidden)]
pub mod test_util;
