//! HTTP settings of the QPU backends (timeouts, limits, proxies), decided by the plugin from
//! plugstack.conf and handed to the backend helper (`spank-qrmi-backend`, crate qrmi-backend),
//! which holds the HTTP client itself; and the percent-encoding both sides use. No client here:
//! spank_qrmi.so links no HTTP or TLS code.
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Timeouts and limits of the HTTP calls of one backend.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HttpConfig {
    /// TCP (and proxy) connect timeout.
    pub connect_timeout: Duration,
    /// Whole request: connect, send, response headers and body.
    pub timeout: Duration,
    /// Largest response body accepted.
    pub max_body: usize,
    /// Proxy for https:// URLs (plugstack `--env:https_proxy=`, as upstream uses it).
    pub https_proxy: Option<String>,
    /// Proxy for http:// URLs (`--env:http_proxy=`).
    pub http_proxy: Option<String>,
    /// Hosts that go direct (`--env:no_proxy=`, comma separated: `host`, `.domain` or
    /// `domain` for it and its subdomains, `*` for all). Loopback always goes direct.
    pub no_proxy: Vec<String>,
    /// Sent as User-Agent.
    pub user_agent: String,
}

pub const DEFAULT_MAX_BODY: usize = 1024 * 1024;

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            connect_timeout: Duration::from_secs(5),
            timeout: Duration::from_secs(20),
            max_body: DEFAULT_MAX_BODY,
            https_proxy: None,
            http_proxy: None,
            no_proxy: Vec::new(),
            user_agent: concat!("spank_qrmi/", env!("CARGO_PKG_VERSION")).to_string(),
        }
    }
}

/// Percent-encodes one path segment or query value.
pub fn encode_component(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_components() {
        assert_eq!(encode_component("a b/c~"), "a%20b%2Fc~");
    }
}
