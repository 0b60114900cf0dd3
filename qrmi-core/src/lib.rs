//! Everything spank_qrmi.so does that needs no Slurm FFI, so the plugin crate stays hooks only
//! and tests, fuzz targets and the benchmark use the same code as the plugin.
//!
//! - `plugstack` (the plugstack.conf line), `request` (`--qpu`), `config` (qrmi_config.json),
//!   `gres` (QPU GRES in slurm.conf and in a job), `usersupplied` (keys a job brings);
//! - `site`: this node's settings, built once per Slurm process from the plugstack line: state
//!   directory, HTTP settings, munge, the backend wiring, and releasing what a job holds here;
//! - `acquire` (acquire and release with retries), `lease` (per-job lease files: the one owner
//!   of their names), `accounting` (the usage log), `jobenv` (the job's environment);
//! - `backend` (one module per QPU API), `http` (bounded HTTP client), `munge`;
//! - `os`: the process primitive (flock), the crate's only `unsafe`.
pub mod accounting;
pub mod acquire;
pub mod backend;
pub mod config;
pub mod gres;
pub mod http;
pub mod jobenv;
pub mod lease;
pub mod munge;
mod os;
pub mod plugstack;
pub mod request;
pub mod site;
pub mod usersupplied;
