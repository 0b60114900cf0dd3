//! Capture of result lines from a task's stdout (`RESULT:{"loss":0.1}`) and the capture file.
//!
//! [`ResultScanner`] is fed the raw output in whatever chunks arrive and yields one
//! [`CapturedLine`] per line that starts with the prefix. Memory is bounded: a line that does
//! not start with the prefix is skipped as it streams by, and a result line longer than
//! [`MAX_LINE`] keeps its first MAX_LINE bytes and is reported as invalid (never dropped).
//!
//! The plugin appends each captured line to the capture file as one JSON line
//! ([`CapturedLine::to_json_line`]); [`read_capture_file`] reads it back, tolerating a torn last
//! line and capping the number of entries.
use std::io::{self, BufRead, Read};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::record::RawJson;

/// Longest result line kept, in bytes (the prefix included).
pub const MAX_LINE: usize = 1 << 20;

/// Most entries [`read_capture_file`] returns (plus one entry saying how many more there were).
pub const MAX_ENTRIES: usize = 100_000;

/// One result line: the JSON value after the prefix, exactly as printed, or why it is not one.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "lowercase")]
pub enum CapturedLine {
    Result(RawJson),
    Invalid { line: String, error: String },
}

impl CapturedLine {
    /// The line as written to the capture file: one JSON object and a newline.
    pub fn to_json_line(&self) -> String {
        // Serializing a Value or strings cannot fail.
        let mut s = serde_json::to_string(self).unwrap_or_else(|e| {
            format!("{{\"invalid\":{{\"line\":\"\",\"error\":\"cannot serialize: {e}\"}}}}")
        });
        s.push('\n');
        s
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Collecting the current line (it starts with the prefix so far).
    Collecting,
    /// The current line does not start with the prefix: ignore bytes until the newline.
    Skipping,
}

/// Splits a byte stream into lines and parses those starting with the prefix.
#[derive(Debug)]
pub struct ResultScanner {
    prefix: Vec<u8>,
    state: State,
    line: Vec<u8>,
    /// Bytes of the current line beyond MAX_LINE that were not kept.
    overflow: u64,
}

impl ResultScanner {
    pub fn new(prefix: &str) -> ResultScanner {
        ResultScanner {
            prefix: prefix.as_bytes().to_vec(),
            state: State::Collecting,
            line: Vec::new(),
            overflow: 0,
        }
    }

    /// Scans the next chunk of output; returns the result lines completed by it.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<CapturedLine> {
        let mut out = Vec::new();
        let mut rest = bytes;
        while !rest.is_empty() {
            let (chunk, ended) = match rest.iter().position(|&b| b == b'\n') {
                Some(i) => (&rest[..i], Some(i + 1)),
                None => (rest, None),
            };
            self.take(chunk);
            match ended {
                Some(n) => {
                    if let Some(c) = self.end_line() {
                        out.push(c);
                    }
                    rest = &rest[n..];
                }
                None => break,
            }
        }
        out
    }

    /// Ends the stream: a last line without a newline still counts.
    pub fn finish(&mut self) -> Vec<CapturedLine> {
        if self.line.is_empty() && self.state == State::Collecting {
            return Vec::new();
        }
        self.end_line().into_iter().collect()
    }

    fn take(&mut self, chunk: &[u8]) {
        if self.state == State::Skipping {
            return;
        }
        let room = MAX_LINE - self.line.len();
        let kept = chunk.len().min(room);
        self.line.extend_from_slice(&chunk[..kept]);
        self.overflow += (chunk.len() - kept) as u64;
        // Decide as soon as the prefix can be compared.
        let n = self.line.len().min(self.prefix.len());
        if self.line[..n] != self.prefix[..n] {
            self.state = State::Skipping;
            self.line.clear();
            self.overflow = 0;
        }
    }

    fn end_line(&mut self) -> Option<CapturedLine> {
        let state = std::mem::replace(&mut self.state, State::Collecting);
        let mut line = std::mem::take(&mut self.line);
        let overflow = std::mem::replace(&mut self.overflow, 0);
        if state == State::Skipping || line.len() < self.prefix.len() {
            return None;
        }
        if overflow == 0 && line.last() == Some(&b'\r') {
            line.pop();
        }
        Some(parse_line(&line, self.prefix.len(), overflow))
    }
}

fn parse_line(line: &[u8], prefix_len: usize, overflow: u64) -> CapturedLine {
    let lossy = || String::from_utf8_lossy(line).into_owned();
    if overflow > 0 {
        return CapturedLine::Invalid {
            line: lossy(),
            error: format!(
                "line is {} bytes long, over the {MAX_LINE}-byte limit: truncated, not parsed",
                line.len() as u64 + overflow
            ),
        };
    }
    let Ok(text) = std::str::from_utf8(&line[prefix_len..]) else {
        return CapturedLine::Invalid {
            line: lossy(),
            error: "not valid UTF-8: expected a JSON value after the prefix".to_owned(),
        };
    };
    let json = text.trim_matches([' ', '\t']);
    if json.is_empty() {
        return CapturedLine::Invalid {
            line: lossy(),
            error: "nothing after the prefix: expected a JSON value".to_owned(),
        };
    }
    match RawJson::parse(json) {
        Ok(v) => CapturedLine::Result(v),
        Err(e) => CapturedLine::Invalid {
            line: lossy(),
            error: format!("not valid JSON after the prefix: {e}"),
        },
    }
}

/// The file a capture writes while the task runs; renamed to `capture` when its output ended,
/// so a reader can tell "still running" (this present) from "complete" (`capture` present).
pub fn partial_path(capture: &Path) -> std::path::PathBuf {
    let mut name = capture.as_os_str().to_owned();
    name.push(".partial");
    std::path::PathBuf::from(name)
}

/// The capture itself (run by the capture helper): copies `input` to `output` byte for byte and
/// appends each result line to `file` as one JSON line. The output comes first: a failing
/// output stops only the copy, a failing capture file only the capture (never the output).
/// Returns whether every result line reached `file`.
pub fn tee(
    mut input: impl Read,
    mut output: impl io::Write,
    file: impl io::Write,
    prefix: &str,
) -> bool {
    let mut file = Some(file);
    let mut scanner = ResultScanner::new(prefix);
    let mut passthrough = true;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        };
        let chunk = &buf[..n];
        if passthrough {
            passthrough = output.write_all(chunk).is_ok();
        }
        append(&mut file, scanner.feed(chunk));
    }
    append(&mut file, scanner.finish());
    file.is_some()
}

/// Appends `lines`; on a write error gives the file up (`None`).
fn append(file: &mut Option<impl io::Write>, lines: Vec<CapturedLine>) {
    let Some(out) = file else { return };
    for line in lines {
        if out.write_all(line.to_json_line().as_bytes()).is_err() {
            *file = None;
            return;
        }
    }
}

/// Longest capture-file line read (a MAX_LINE line escaped as JSON may grow up to 6-fold).
const MAX_FILE_LINE: usize = 6 * MAX_LINE + 4096;

/// Reads a capture file written with [`CapturedLine::to_json_line`]. A torn last line (the
/// writer was killed) or a corrupt line becomes an `Invalid` entry; past [`MAX_ENTRIES`]
/// entries the rest is counted, not kept, and one last `Invalid` entry says how many there were.
pub fn read_capture_file(path: &Path) -> io::Result<Vec<CapturedLine>> {
    let file = host_io::open_regular(path)?;
    let mut reader = io::BufReader::new(file);
    let mut out = Vec::new();
    let mut beyond: u64 = 0;
    let mut buf = Vec::new();
    loop {
        buf.clear();
        let n = (&mut reader)
            .take(MAX_FILE_LINE as u64 + 1)
            .read_until(b'\n', &mut buf)?;
        if n == 0 {
            break;
        }
        let complete = buf.last() == Some(&b'\n');
        if !complete && buf.len() > MAX_FILE_LINE {
            // Skip the rest of an overlong line.
            let mut skip = Vec::new();
            loop {
                skip.clear();
                let m = (&mut reader)
                    .take(MAX_FILE_LINE as u64)
                    .read_until(b'\n', &mut skip)?;
                if m == 0 || skip.last() == Some(&b'\n') {
                    break;
                }
            }
        }
        if out.len() >= MAX_ENTRIES {
            beyond += 1;
            continue;
        }
        let text = if complete {
            &buf[..buf.len() - 1]
        } else {
            &buf[..]
        };
        let entry = match serde_json::from_slice::<CapturedLine>(text) {
            // A last line without its newline but with whole JSON is fine too.
            Ok(entry) => entry,
            Err(e) => {
                let shown = &text[..text.len().min(4096)];
                let error = if !complete && buf.len() <= MAX_FILE_LINE {
                    format!(
                        "torn last line in {} (the writer was interrupted): {e}",
                        path.display()
                    )
                } else if buf.len() > MAX_FILE_LINE {
                    format!(
                        "line over {MAX_FILE_LINE} bytes in {}: skipped",
                        path.display()
                    )
                } else {
                    format!("corrupt line in {}: {e}", path.display())
                };
                CapturedLine::Invalid {
                    line: String::from_utf8_lossy(shown).into_owned(),
                    error,
                }
            }
        };
        out.push(entry);
    }
    if beyond > 0 {
        out.push(CapturedLine::Invalid {
            line: String::new(),
            error: format!(
                "truncated after {MAX_ENTRIES} entries: {beyond} more entries in {} were not read",
                path.display()
            ),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tee_passes_everything_through_and_captures_result_lines() {
        let input: Vec<u8> =
            b"hello\nRESULT:{\"a\":1}\r\n\x00\xff binary\nRESULT: oops\nRESULT:2".to_vec();
        let (mut out, mut file) = (Vec::new(), Vec::new());
        assert!(tee(&input[..], &mut out, &mut file, "RESULT:"));
        assert_eq!(out, input);
        let text = String::from_utf8(file).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert_eq!(lines[0], res("{\"a\":1}").to_json_line().trim_end());
        assert!(lines[1].contains("invalid"), "{text}");
        assert_eq!(lines[2], res("2").to_json_line().trim_end());
    }

    struct Failing;
    impl io::Write for Failing {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::Error::other("full"))
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn tee_keeps_capturing_when_the_output_fails_and_copying_when_the_file_fails() {
        let input = b"RESULT:1\nRESULT:2\n";
        let mut file = Vec::new();
        assert!(tee(&input[..], Failing, &mut file, "RESULT:"));
        assert_eq!(String::from_utf8(file).unwrap().lines().count(), 2);
        let mut out = Vec::new();
        assert!(!tee(&input[..], &mut out, Failing, "RESULT:"));
        assert_eq!(out, input);
    }

    #[test]
    fn partial_path_appends_a_suffix() {
        assert_eq!(
            partial_path(Path::new("/d/t.captured.jsonl")),
            Path::new("/d/t.captured.jsonl.partial")
        );
    }

    fn res(text: &str) -> CapturedLine {
        CapturedLine::Result(RawJson::parse(text).unwrap())
    }

    fn scan_all(prefix: &str, chunks: &[&[u8]]) -> Vec<CapturedLine> {
        let mut s = ResultScanner::new(prefix);
        let mut out = Vec::new();
        for c in chunks {
            out.extend(s.feed(c));
        }
        out.extend(s.finish());
        out
    }

    fn results(lines: &[CapturedLine]) -> Vec<String> {
        lines
            .iter()
            .filter_map(|l| match l {
                CapturedLine::Result(v) => Some(v.as_str().to_owned()),
                CapturedLine::Invalid { .. } => None,
            })
            .collect()
    }

    #[test]
    fn basic_lines() {
        let out = scan_all(
            "RESULT:",
            &[b"hello\nRESULT:{\"loss\":0.5}\nnoise RESULT:{}\nRESULT: 42 \nRESULT:\"s\"\n"],
        );
        assert_eq!(results(&out), vec![r#"{"loss":0.5}"#, "42", r#""s""#]);
        assert_eq!(out.len(), 3);
    }

    #[test]
    fn split_across_feeds_byte_by_byte() {
        let text = b"x\r\nRESULT:{\"a\":[1,2,3]}\r\nRESU\nRESULT:{\"b\":true}";
        let chunks: Vec<&[u8]> = text.chunks(1).collect();
        let out = scan_all("RESULT:", &chunks);
        assert_eq!(results(&out), vec![r#"{"a":[1,2,3]}"#, r#"{"b":true}"#]);
        assert_eq!(out.len(), 2);
    }

    #[test]
    fn no_trailing_newline_and_empty_finish() {
        assert_eq!(results(&scan_all("R:", &[b"R:1"])), vec!["1"]);
        assert!(scan_all("R:", &[b""]).is_empty());
        assert!(scan_all("R:", &[b"R"]).is_empty());
        let mut s = ResultScanner::new("R:");
        assert!(s.finish().is_empty());
        assert_eq!(s.feed(b"R:2\n"), vec![res("2")]);
    }

    #[test]
    fn invalid_lines_are_kept() {
        let out = scan_all("RESULT:", &[b"RESULT:{oops\nRESULT:\nRESULT:   \n"]);
        assert_eq!(out.len(), 3);
        for l in &out {
            match l {
                CapturedLine::Invalid { line, error } => {
                    assert!(line.starts_with("RESULT:"), "{line}");
                    assert!(error.contains("JSON"), "{error}");
                }
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn binary_garbage_is_invalid_lossy() {
        let out = scan_all("RESULT:", &[b"\xff\xfe\nRESULT:\xff{}\n"]);
        assert_eq!(out.len(), 1);
        match &out[0] {
            CapturedLine::Invalid { line, error } => {
                assert!(line.starts_with("RESULT:\u{fffd}"), "{line}");
                assert!(error.contains("UTF-8"), "{error}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn overlong_line_truncated_not_dropped() {
        let mut s = ResultScanner::new("RESULT:");
        let mut out = s.feed(b"RESULT:\"");
        let big = vec![b'a'; 300_000];
        for _ in 0..4 {
            out.extend(s.feed(&big));
        }
        out.extend(s.feed(b"\"\nRESULT:7\n"));
        assert_eq!(out.len(), 2);
        match &out[0] {
            CapturedLine::Invalid { line, error } => {
                assert_eq!(line.len(), MAX_LINE);
                assert!(
                    error.contains(&format!("{} bytes", 7 + 1 + 1_200_000 + 1)),
                    "{error}"
                );
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(out[1], res("7"));
        // A long line that is not a result line is skipped without being held.
        let mut s = ResultScanner::new("RESULT:");
        for _ in 0..10 {
            assert!(s.feed(&big).is_empty());
        }
        assert!(s.line.is_empty());
        assert_eq!(s.feed(b"\nRESULT:1"), vec![]);
        assert_eq!(s.finish(), vec![res("1")]);
    }

    #[test]
    fn serialized_form_is_one_json_line() {
        let r = res(r#"{"a":"x\ny"}"#);
        assert_eq!(r.to_json_line(), "{\"result\":{\"a\":\"x\\ny\"}}\n");
        let i = CapturedLine::Invalid {
            line: "RESULT:{".into(),
            error: "bad".into(),
        };
        assert_eq!(
            i.to_json_line(),
            "{\"invalid\":{\"line\":\"RESULT:{\",\"error\":\"bad\"}}\n"
        );
    }

    #[test]
    fn capture_file_torn_and_corrupt_lines() {
        let tmp = crate::test_util::TempDir::new("capture");
        let p = tmp.path().join("c.jsonl");
        let mut text = String::new();
        text += &res("1").to_json_line();
        text += "garbage\n";
        text += &res("2").to_json_line();
        text += "{\"result\":{\"a\":";
        std::fs::write(&p, &text).unwrap();
        let out = read_capture_file(&p).unwrap();
        assert_eq!(out.len(), 4);
        assert_eq!(out[0], res("1"));
        assert!(
            matches!(&out[1], CapturedLine::Invalid { error, .. } if error.contains("corrupt line"))
        );
        assert_eq!(out[2], res("2"));
        assert!(
            matches!(&out[3], CapturedLine::Invalid { error, line } if error.contains("torn last line") && line.starts_with("{\"result\""))
        );
        // Whole JSON without the final newline is fine.
        std::fs::write(&p, "{\"result\":3}").unwrap();
        assert_eq!(read_capture_file(&p).unwrap(), vec![res("3")]);
        assert!(read_capture_file(&tmp.path().join("nope")).is_err());
    }

    #[test]
    fn capture_file_entry_cap() {
        let tmp = crate::test_util::TempDir::new("capture-cap");
        let p = tmp.path().join("c.jsonl");
        let line = res("0").to_json_line();
        std::fs::write(&p, line.repeat(MAX_ENTRIES + 5)).unwrap();
        let out = read_capture_file(&p).unwrap();
        assert_eq!(out.len(), MAX_ENTRIES + 1);
        match out.last() {
            Some(CapturedLine::Invalid { error, .. }) => {
                assert!(
                    error.contains("truncated after 100000 entries: 5 more"),
                    "{error}"
                )
            }
            other => panic!("{other:?}"),
        }
    }
}
