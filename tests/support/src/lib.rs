//! Test code shared by spank-qrmi's tests and example and by tests/integration: the loopback
//! mock of the backends' HTTP APIs ([`mock_server`]) and the outcome lines of the hardening
//! tests ([`reliability`], turned into docs/RELIABILITY.md by tests/reliability-report.sh).
pub mod mock_server;
pub mod reliability;
