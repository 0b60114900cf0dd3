//! spank-qrmi-backend: the QPU backend protocols and their HTTP/TLS client, in a process of its
//! own that spank_qrmi.so starts only when a QPU is acquired or released (qrmi-core's
//! `backend::helper` is the other end). Keeps ~2 MiB of HTTP and TLS code out of every Slurm
//! process that maps the plugin, and a fault in them out of slurmstepd.
//!
//! - `http`: bounded blocking HTTP client (ureq, rustls);
//! - `backend`: one module per QPU API;
//! - `serve`: the helper's side of the JSON-lines protocol.
pub mod backend;
pub mod http;
pub mod serve;
