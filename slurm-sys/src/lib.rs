//! Raw FFI to the Slurm headers found at build time. No logic lives here: the safe layer is
//! the `spank` crate. `SLURM_VERSION_NUMBER` is the version of those headers, which is what a
//! plugin must put in `plugin_version`; cfgs `slurm_ge_MAJOR_MINOR` gate release-specific items.
#![allow(
    non_upper_case_globals,
    non_camel_case_types,
    non_snake_case,
    dead_code
)]
#![allow(clippy::all)]

include!(concat!(env!("OUT_DIR"), "/bindings.rs"));

/// The Slurm release of the headers these bindings came from, as `MAJOR.MINOR.MICRO`.
pub const SLURM_VERSION_STRING: &str = env!("SLURM_SYS_VERSION");
/// Where those headers were found.
pub const SLURM_INCLUDE_DIR: &str = env!("SLURM_SYS_INCLUDE_DIR");
