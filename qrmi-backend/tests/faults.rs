//! Backend faults at the HTTP layer, against a local TcpListener that misbehaves on purpose:
//! one byte per second (in the headers and in the body), a connection closed mid-response,
//! invalid JSON, endless bodies with and without a length, endless headers, a refused
//! connection. Every call must end within the configured total timeout (plus a margin for a
//! loaded machine) with an error that says what happened. (tests/backends.rs covers the same
//! faults through each backend with the mock server; this file covers what the mock cannot
//! do: trickling, chunked and header floods.)
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use qrmi_backend::http::{Body, Http, HttpConfig, HttpErrorKind};
use spank_test_support::reliability;

const TIMEOUT: Duration = Duration::from_secs(2);
/// Scheduling slack on a loaded 2-core CI machine; the bound that matters is "not unbounded".
const MARGIN: Duration = Duration::from_secs(3);

fn http() -> Http {
    Http::new(&HttpConfig {
        connect_timeout: Duration::from_secs(1),
        timeout: TIMEOUT,
        max_body: 64 * 1024,
        ..HttpConfig::default()
    })
    .unwrap()
}

/// Serves every connection with `behave` (after reading the request head) on a thread.
fn serve(behave: fn(&mut TcpStream)) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            std::thread::spawn(move || {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    match stream.read(&mut byte) {
                        Ok(1) => head.push(byte[0]),
                        _ => return,
                    }
                }
                behave(&mut stream);
            });
        }
    });
    format!("http://{addr}/sessions")
}

fn trickle(stream: &mut TcpStream, bytes: &[u8]) {
    for b in bytes {
        if stream.write_all(&[*b]).is_err() {
            return;
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

fn check(test: &str, tried: &str, behave: fn(&mut TcpStream), expect: fn(&HttpErrorKind) -> bool) {
    reliability::start(test);
    let url = serve(behave);
    let started = Instant::now();
    let result = http().send_json("POST", &url, &[], Body::Empty);
    let took = started.elapsed();
    let error = result.expect_err("the faulty server must give an error");
    reliability::report(
        "fault: backend HTTP",
        tried,
        &format!("error after {:.1} s: {error}", took.as_secs_f64()),
        &format!(
            "error kind {:?}, transient (retried for release): {}",
            error.kind,
            error.kind.is_transient()
        ),
        test,
    );
    assert!(expect(&error.kind), "{tried}: {error:?}");
    assert!(took < TIMEOUT + MARGIN, "{tried}: took {took:?}");
    assert!(
        error.to_string().starts_with(&format!("POST {url}: ")),
        "the error names the call: {error}"
    );
}

#[test]
fn a_body_at_one_byte_per_second_times_out() {
    check(
        "a_body_at_one_byte_per_second_times_out",
        "200 with Content-Length 100, body sent 1 byte/s",
        |s| {
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n");
            trickle(s, &[b' '; 100]);
        },
        |k| matches!(k, HttpErrorKind::Timeout | HttpErrorKind::Io(_)),
    );
}

#[test]
fn headers_at_one_byte_per_second_time_out() {
    check(
        "headers_at_one_byte_per_second_time_out",
        "status line and headers sent 1 byte/s",
        |s| trickle(s, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}"),
        |k| *k == HttpErrorKind::Timeout,
    );
}

#[test]
fn a_connection_closed_mid_body_is_an_io_error() {
    check(
        "a_connection_closed_mid_body_is_an_io_error",
        "200 with Content-Length 100, 10 bytes sent, then the connection closed",
        |s| {
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"id\": \"12");
        },
        |k| matches!(k, HttpErrorKind::Io(_)),
    );
}

#[test]
fn a_connection_closed_before_any_answer_is_an_error() {
    check(
        "a_connection_closed_before_any_answer_is_an_error",
        "request read, connection closed without a byte of answer",
        |_| {},
        |k| matches!(k, HttpErrorKind::Io(_) | HttpErrorKind::Connection(_)),
    );
}

#[test]
fn invalid_json_is_named_as_such() {
    check(
        "invalid_json_is_named_as_such",
        "200 with an HTML body instead of JSON",
        |s| {
            let _ = s.write_all(
                b"HTTP/1.1 200 OK\r\nContent-Length: 24\r\n\r\n<html>502 bad gate</html>",
            );
        },
        |k| matches!(k, HttpErrorKind::BadJson(why) if why.contains("not JSON")),
    );
}

#[test]
fn an_endless_chunked_body_is_cut_at_the_cap() {
    check(
        "an_endless_chunked_body_is_cut_at_the_cap",
        "200, chunked, endless body at full speed",
        |s| {
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
            let chunk = format!("4000\r\n{}\r\n", " ".repeat(0x4000));
            while s.write_all(chunk.as_bytes()).is_ok() {}
        },
        |k| matches!(k, HttpErrorKind::TooLarge { limit } if *limit == 64 * 1024),
    );
}

#[test]
fn an_endless_body_without_length_is_cut_at_the_cap() {
    check(
        "an_endless_body_without_length_is_cut_at_the_cap",
        "200, no Content-Length, endless body until close",
        |s| {
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n");
            let block = [b'7'; 16384];
            while s.write_all(&block).is_ok() {}
        },
        |k| matches!(k, HttpErrorKind::TooLarge { .. }),
    );
}

#[test]
fn endless_headers_are_refused() {
    check(
        "endless_headers_are_refused",
        "200 followed by an endless stream of header lines",
        |s| {
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\n");
            let line = format!("X-Pad: {}\r\n", "p".repeat(1000));
            while s.write_all(line.as_bytes()).is_ok() {}
        },
        |k| matches!(k, HttpErrorKind::Connection(why) if why.contains("header")),
    );
}

#[test]
fn a_refused_connection_fails_at_once() {
    let test = "a_refused_connection_fails_at_once";
    reliability::start(test);
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}/sessions");
    let started = Instant::now();
    let error = http()
        .send_json("DELETE", &url, &[], Body::Empty)
        .unwrap_err();
    let took = started.elapsed();
    reliability::report(
        "fault: backend HTTP",
        "nothing listens on the backend's port",
        &format!("error after {:.1} s: {error}", took.as_secs_f64()),
        &format!(
            "error kind {:?}, transient (retried for release): {}",
            error.kind,
            error.kind.is_transient()
        ),
        test,
    );
    assert_eq!(error.kind, HttpErrorKind::Refused);
    assert!(error.kind.is_transient());
    assert!(took < Duration::from_secs(1) + MARGIN, "took {took:?}");
}
