//! The safe SPANK layer both plugins stand on.
//!
//! A plugin implements [`Plugin`] (one default method per SPANK callback) and exports itself
//! with [`spank_plugin!`], naming exactly the hooks Slurm should call (the implemented ones,
//! plus `task_init` when errors deferred from slurmstepd must fail the tasks). The layer then:
//! - registers the plugin's options in every context that parses them;
//! - runs each callback inside `catch_unwind`, so no panic reaches Slurm, and keeps no
//!   poisoned state: the next callback works;
//! - applies the failure policy of [`policy`]: errors fail the user's command in srun/sbatch,
//!   fail the task (never the node) in slurmstepd, and are only logged in slurmd and in
//!   prolog/epilog, where a failing plugin would drain the node;
//! - routes `tracing` events to Slurm's log functions.
//!
//! [`slurm`] holds the only libslurm calls outside the SPANK API (job lookup, hostlists), so
//! no plugin or core crate names `slurm_sys`.

pub mod args;
pub mod context;
pub mod error;
#[doc(hidden)]
pub mod export;
pub mod handle;
pub mod host;
pub mod log;
pub mod options;
pub mod plugin;
pub mod policy;
pub mod slurm;

pub use context::Context;
pub use error::{Error, Result};
pub use handle::{Spank, TaskExit};
pub use options::OptionSpec;
pub use plugin::Plugin;
pub use policy::Hook;

/// Raw bindings, for the export macro and for the few places a plugin needs them.
pub use slurm_sys as sys;
