//! Small blocking HTTP client (ureq 2, rustls): connect and total timeouts, no redirects, a cap
//! on the response size, and errors that name the method, URL and reason without credentials:
//! no headers, no bodies we sent, URL query strings and user-info replaced. Starts no threads
//! (ureq resolves names with getaddrinfo on the calling thread and keeps idle connections in a
//! pool without a reaper).
//!
//! Backends scrub their own secret values (environment values, tokens) from these messages as
//! well, since tokens also appear in URL paths; see `backend::Scrubber`.
use std::fmt;
use std::io::Read;

use serde_json::Value;

pub use qrmi_core::http::{DEFAULT_MAX_BODY, HttpConfig, encode_component};

/// Why a request failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpErrorKind {
    /// Connect or total timeout reached.
    Timeout,
    /// Nothing listens at the address.
    Refused,
    /// The host name does not resolve.
    Dns,
    /// Other connection problem (TLS, reset, proxy...).
    Connection(String),
    /// A non-2xx answer; `detail` is the start of the body (printable characters only).
    Status { code: u16, detail: String },
    /// The body is larger than the cap.
    TooLarge { limit: usize },
    /// The body is not the JSON expected.
    BadJson(String),
    /// The connection broke while reading the answer.
    Io(String),
    /// The URL is malformed.
    BadUrl,
    /// The answer is not valid HTTP (the client could not parse it).
    Malformed(String),
}

impl HttpErrorKind {
    /// Worth retrying later (the backend or the network may recover).
    pub fn is_transient(&self) -> bool {
        match self {
            HttpErrorKind::Timeout
            | HttpErrorKind::Refused
            | HttpErrorKind::Dns
            | HttpErrorKind::Connection(_)
            | HttpErrorKind::Io(_) => true,
            HttpErrorKind::Status { code, .. } => *code >= 500 || *code == 429 || *code == 408,
            HttpErrorKind::TooLarge { .. }
            | HttpErrorKind::BadJson(_)
            | HttpErrorKind::BadUrl
            | HttpErrorKind::Malformed(_) => false,
        }
    }
}

impl fmt::Display for HttpErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HttpErrorKind::Timeout => f.write_str("timed out"),
            HttpErrorKind::Refused => f.write_str("connection refused"),
            HttpErrorKind::Dns => f.write_str("host name does not resolve"),
            HttpErrorKind::Connection(why) => write!(f, "connection failed: {why}"),
            HttpErrorKind::Status { code, detail } if detail.is_empty() => {
                write!(f, "HTTP {code}")
            }
            HttpErrorKind::Status { code, detail } => write!(f, "HTTP {code}: {detail}"),
            HttpErrorKind::TooLarge { limit } => {
                write!(f, "response larger than {limit} bytes")
            }
            HttpErrorKind::BadJson(why) => write!(f, "unexpected response: {why}"),
            HttpErrorKind::Io(why) => write!(f, "connection broken while reading: {why}"),
            HttpErrorKind::BadUrl => f.write_str("malformed URL"),
            HttpErrorKind::Malformed(why) => write!(f, "malformed HTTP answer: {why}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpError {
    pub method: &'static str,
    /// Without query string and user-info.
    pub url: String,
    pub kind: HttpErrorKind,
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.method, self.url, self.kind)
    }
}

impl std::error::Error for HttpError {}

/// `url` without user-info and with the query string replaced.
pub fn redact_url(url: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, _)) => (base, "?<query>"),
        None => (url, ""),
    };
    let base = base.split('#').next().unwrap_or(base);
    let base = match base.split_once("://") {
        Some((scheme, rest)) => {
            let (authority, path) = match rest.find('/') {
                Some(i) => rest.split_at(i),
                None => (rest, ""),
            };
            let host = authority.rsplit('@').next().unwrap_or(authority);
            format!("{scheme}://{host}{path}")
        }
        None => base.to_string(),
    };
    format!("{base}{query}")
}

/// The host of a URL (no port, no user info, brackets of IPv6 removed).
fn url_host(url: &str) -> &str {
    let rest = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = authority.rsplit('@').next().unwrap_or(authority);
    if let Some(v6) = host.strip_prefix('[') {
        v6.split(']').next().unwrap_or("")
    } else {
        host.split(':').next().unwrap_or("")
    }
}

/// Which proxy a request to `url` goes through: `https_proxy` for https://, `http_proxy` for
/// http://, none for loopback hosts and hosts `no_proxy` names (curl's rules).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Direct,
    Https,
    Http,
}

pub fn route(config: &HttpConfig, url: &str) -> Route {
    let host = url_host(url).to_ascii_lowercase();
    let excluded = config.no_proxy.iter().any(|entry| {
        let entry = entry.trim().trim_start_matches('.').to_ascii_lowercase();
        entry == "*"
            || (!entry.is_empty() && (host == entry || host.ends_with(&format!(".{entry}"))))
    });
    let set = |p: &Option<String>| p.as_deref().is_some_and(|p| !p.is_empty());
    if is_loopback(url) || excluded {
        Route::Direct
    } else if url.starts_with("https://") && set(&config.https_proxy) {
        Route::Https
    } else if url.starts_with("http://") && set(&config.http_proxy) {
        Route::Http
    } else {
        Route::Direct
    }
}

fn is_loopback(url: &str) -> bool {
    let host = url_host(url);
    host.eq_ignore_ascii_case("localhost")
        || host.starts_with("127.")
        || host == "::1"
        || host.to_ascii_lowercase().ends_with(".localhost")
}

/// A request body.
pub enum Body<'a> {
    Empty,
    Json(&'a Value),
    Form(&'a [(&'a str, &'a str)]),
}

/// A 2xx answer.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
}

pub struct Http {
    config: HttpConfig,
    direct: ureq::Agent,
    via_https_proxy: Option<ureq::Agent>,
    via_http_proxy: Option<ureq::Agent>,
    max_body: usize,
}

impl Http {
    /// Fails only for a malformed proxy URL (named without credentials).
    pub fn new(config: &HttpConfig) -> Result<Http, String> {
        let builder = || {
            ureq::AgentBuilder::new()
                .timeout_connect(config.connect_timeout)
                .timeout(config.timeout)
                .redirects(0)
                .user_agent(&config.user_agent)
                .max_idle_connections_per_host(2)
        };
        let agent_via = |proxy: &Option<String>| -> Result<Option<ureq::Agent>, String> {
            match proxy {
                Some(proxy) if !proxy.is_empty() => {
                    let parsed = ureq::Proxy::new(proxy).map_err(|_| {
                        format!(
                            "proxy '{}' is not a valid proxy URL (expected http://host:port)",
                            redact_url(proxy)
                        )
                    })?;
                    Ok(Some(builder().proxy(parsed).build()))
                }
                _ => Ok(None),
            }
        };
        Ok(Http {
            config: config.clone(),
            direct: builder().build(),
            via_https_proxy: agent_via(&config.https_proxy)?,
            via_http_proxy: agent_via(&config.http_proxy)?,
            max_body: config.max_body,
        })
    }

    /// Sends one request; any answer other than 2xx is an error.
    pub fn send(
        &self,
        method: &'static str,
        url: &str,
        headers: &[(&str, &str)],
        body: Body<'_>,
    ) -> Result<Response, HttpError> {
        let error = |kind| HttpError {
            method,
            url: redact_url(url),
            kind,
        };
        let agent = match (
            route(&self.config, url),
            &self.via_https_proxy,
            &self.via_http_proxy,
        ) {
            (Route::Https, Some(agent), _) | (Route::Http, _, Some(agent)) => agent,
            _ => &self.direct,
        };
        // ureq 2.12 panics on some malformed answers (a header line without ':' slices past
        // its end; found by fuzz/backend_http): contain it as an error about the answer.
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.send_unguarded(agent, method, url, headers, body)
                .map_err(error)
        }))
        .unwrap_or_else(|_| {
            Err(error(HttpErrorKind::Malformed(
                "the HTTP client could not parse the answer".to_string(),
            )))
        })
    }

    fn send_unguarded(
        &self,
        agent: &ureq::Agent,
        method: &'static str,
        url: &str,
        headers: &[(&str, &str)],
        body: Body<'_>,
    ) -> Result<Response, HttpErrorKind> {
        let mut request = agent.request(method, url);
        for (name, value) in headers {
            request = request.set(name, value);
        }
        let result = match body {
            Body::Empty => request.call(),
            Body::Json(value) => request.send_json(value),
            Body::Form(pairs) => request.send_form(pairs),
        };
        match result {
            Ok(response) => {
                let status = response.status();
                let body = self.read_body(response)?;
                Ok(Response { status, body })
            }
            Err(ureq::Error::Status(code, response)) => {
                let detail = self
                    .read_body(response)
                    .map(|b| printable_start(&b))
                    .unwrap_or_default();
                Err(HttpErrorKind::Status { code, detail })
            }
            Err(ureq::Error::Transport(transport)) => Err(transport_kind(&transport)),
        }
    }

    /// Sends and parses the 2xx answer as JSON.
    pub fn send_json(
        &self,
        method: &'static str,
        url: &str,
        headers: &[(&str, &str)],
        body: Body<'_>,
    ) -> Result<Value, HttpError> {
        let response = self.send(method, url, headers, body)?;
        serde_json::from_slice(&response.body).map_err(|e| HttpError {
            method,
            url: redact_url(url),
            kind: HttpErrorKind::BadJson(format!(
                "not JSON ({}) in a {}-byte body",
                json_reason(&e),
                response.body.len()
            )),
        })
    }

    fn read_body(&self, response: ureq::Response) -> Result<Vec<u8>, HttpErrorKind> {
        let mut body = Vec::new();
        let limit = self.max_body;
        response
            .into_reader()
            .take(limit as u64 + 1)
            .read_to_end(&mut body)
            .map_err(|e| io_kind(&e))?;
        if body.len() > limit {
            return Err(HttpErrorKind::TooLarge { limit });
        }
        Ok(body)
    }
}

fn json_reason(e: &serde_json::Error) -> String {
    format!(
        "{} at line {} column {}",
        e.classify_name(),
        e.line(),
        e.column()
    )
}

trait ClassifyName {
    fn classify_name(&self) -> &'static str;
}

impl ClassifyName for serde_json::Error {
    fn classify_name(&self) -> &'static str {
        match self.classify() {
            serde_json::error::Category::Io => "I/O error",
            serde_json::error::Category::Syntax => "syntax error",
            serde_json::error::Category::Data => "wrong data",
            serde_json::error::Category::Eof => "truncated",
        }
    }
}

/// The first 200 printable characters of a body (for error messages).
fn printable_start(body: &[u8]) -> String {
    String::from_utf8_lossy(body)
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(200)
        .collect::<String>()
        .trim()
        .to_string()
}

fn io_kind(e: &std::io::Error) -> HttpErrorKind {
    use std::io::ErrorKind as K;
    match e.kind() {
        K::TimedOut | K::WouldBlock => HttpErrorKind::Timeout,
        K::ConnectionRefused => HttpErrorKind::Refused,
        _ => HttpErrorKind::Io(e.kind().to_string()),
    }
}

fn transport_kind(t: &ureq::Transport) -> HttpErrorKind {
    use std::error::Error as _;
    let io = t
        .source()
        .and_then(|s| s.downcast_ref::<std::io::Error>())
        .map(io_kind);
    match t.kind() {
        ureq::ErrorKind::Dns => HttpErrorKind::Dns,
        ureq::ErrorKind::InvalidUrl | ureq::ErrorKind::UnknownScheme => HttpErrorKind::BadUrl,
        ureq::ErrorKind::ConnectionFailed | ureq::ErrorKind::ProxyConnect => match io {
            Some(HttpErrorKind::Io(why)) => HttpErrorKind::Connection(why),
            Some(kind) => kind,
            None => HttpErrorKind::Connection(
                // ureq's messages name no URL or header; its Display would (the URL).
                t.message().unwrap_or("no detail").to_string(),
            ),
        },
        ureq::ErrorKind::Io => {
            io.unwrap_or_else(|| HttpErrorKind::Io(t.message().unwrap_or("no detail").to_string()))
        }
        other => HttpErrorKind::Connection(format!(
            "{other}{}",
            t.message().map(|m| format!(": {m}")).unwrap_or_default()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Issue 15 item 6: the site's --env:http_proxy / https_proxy / no_proxy for our own calls.
    #[test]
    fn routes_follow_the_sites_proxy_variables() {
        let config = HttpConfig {
            https_proxy: Some("http://sp:3128".into()),
            http_proxy: Some("http://hp:3128".into()),
            no_proxy: vec!["internal.example".into(), ".corp".into(), "10.0.0.5".into()],
            ..HttpConfig::default()
        };
        assert_eq!(route(&config, "https://iam.cloud.ibm.com/x"), Route::Https);
        assert_eq!(route(&config, "http://warden.example:8006/s"), Route::Http);
        assert_eq!(route(&config, "https://internal.example/a"), Route::Direct);
        assert_eq!(
            route(&config, "https://q.internal.example/a"),
            Route::Direct
        );
        assert_eq!(route(&config, "http://w.corp:1/"), Route::Direct);
        assert_eq!(route(&config, "http://10.0.0.5:8006/"), Route::Direct);
        assert_eq!(route(&config, "http://localhost:8006/"), Route::Direct);
        assert_eq!(route(&config, "https://notinternal.example/"), Route::Https);
        let all = HttpConfig {
            no_proxy: vec!["*".into()],
            ..config.clone()
        };
        assert_eq!(route(&all, "https://iam.cloud.ibm.com/"), Route::Direct);
        let none = HttpConfig::default();
        assert_eq!(route(&none, "https://iam.cloud.ibm.com/"), Route::Direct);
    }

    #[test]
    fn redacts_queries_and_userinfo() {
        assert_eq!(
            redact_url("https://user:pw@h:1/a/b?session_id=SECRET&x=1"),
            "https://h:1/a/b?<query>"
        );
        assert_eq!(redact_url("http://h/p#frag"), "http://h/p");
        assert_eq!(redact_url("http://h"), "http://h");
    }

    #[test]
    fn loopback_detection() {
        assert!(is_loopback("http://localhost:8006/x"));
        assert!(is_loopback("https://127.0.0.1:1"));
        assert!(is_loopback("https://[::1]:1/"));
        assert!(!is_loopback("https://iam.cloud.ibm.com"));
    }

    /// fuzz/backend_http found this answer (a header line without ':') panicking inside ureq.
    #[test]
    fn header_line_without_colon_is_an_error_not_a_panic() {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/x", listener.local_addr().unwrap());
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let _ = s.write_all(
                b"HTTP/1.1 200 OK-\nTransf0 OK\r\nTransfer-Encoding\r\n4\r\n{\x13id\"\r\n9\r\n:\r\n\r\n",
            );
        });
        let http = Http::new(&HttpConfig::default()).unwrap();
        let e = http.send_json("GET", &url, &[], Body::Empty).unwrap_err();
        server.join().unwrap();
        assert!(matches!(e.kind, HttpErrorKind::Malformed(_)), "{e}");
        assert!(e.to_string().contains("malformed HTTP answer"), "{e}");
        assert!(!e.kind.is_transient());
    }

    #[test]
    fn bad_proxy_is_named_without_credentials() {
        let e = Http::new(&HttpConfig {
            https_proxy: Some("ftp://u:SECRET@proxy:1".into()),
            ..HttpConfig::default()
        })
        .err()
        .unwrap();
        assert!(!e.contains("SECRET"), "{e}");
        assert!(e.contains("ftp://proxy:1"), "{e}");
    }
}
