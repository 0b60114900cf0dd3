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

/// The plugins' link setup (build/link_order.rs, included by their build.rs), tested here.
#[cfg(test)]
#[allow(dead_code)]
mod link_order {
    include!("../build/link_order.rs");

    #[test]
    fn a_legacy_hash_becomes_a_wildcard_and_other_names_stay() {
        assert_eq!(
            without_hash("_ZN5spank6export10initialize17h9a6d1b9545f5109aE"),
            "_ZN5spank6export10initialize17h*E"
        );
        assert_eq!(
            without_hash("_ZN5spank6export10initialize17h*E"),
            "_ZN5spank6export10initialize17h*E"
        );
        // v0 names (std's, stable per toolchain) and C names are matched as they are.
        assert_eq!(
            without_hash("_RNvNtCsjrHSEGnQ3l9_3std9panicking8set_hook"),
            "_RNvNtCsjrHSEGnQ3l9_3std9panicking8set_hook"
        );
        assert_eq!(without_hash("slurm_spank_init"), "slurm_spank_init");
        assert_eq!(without_hash("17h"), "17h");
    }

    #[test]
    fn the_script_keeps_the_lists_order_and_skips_what_a_pattern_cannot_hold() {
        let script = hot_text_script(
            "# comment\nslurm_spank_init\n\n_ZN1a1b17h0123456789abcdefE\n_RNvNtCs1_4core5write'2\n",
        );
        assert_eq!(
            script,
            "SECTIONS\n{\n  .text.spank_hot :\n  {\n\
             \x20   *(.text.slurm_spank_init .text.unlikely.slurm_spank_init)\n\
             \x20   *(.text._ZN1a1b17h*E .text.unlikely._ZN1a1b17h*E)\n\
             \x20 }\n}\nINSERT BEFORE .text;\n"
        );
    }
}
