//! Task stdout scanned for result lines (bytes from user tasks): the scanner must give the
//! same lines however the stream is chunked, and every captured line must round-trip through
//! the capture file format.
#![no_main]
use frames_core::capture::{CapturedLine, ResultScanner};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&ctl, rest)) = data.split_first() else {
        return;
    };
    let prefix = ["RESULT:", "R", "##", "RESULT:RESULT:"][(ctl & 3) as usize];
    let chunk = 1 + (ctl >> 2) as usize;

    let mut whole = ResultScanner::new(prefix);
    let mut a = whole.feed(rest);
    a.extend(whole.finish());

    let mut pieces = ResultScanner::new(prefix);
    let mut b = Vec::new();
    for c in rest.chunks(chunk) {
        b.extend(pieces.feed(c));
    }
    b.extend(pieces.finish());
    assert_eq!(
        a.len(),
        b.len(),
        "chunking changed the number of result lines"
    );

    // Results are kept as printed (raw JSON text: 1e400 or duplicate keys stay as they are),
    // so lines compare as their serialized text, not as parsed values (which 1e400 has none of).
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(
            serde_json::to_string(x).expect("a captured line serializes"),
            serde_json::to_string(y).expect("a captured line serializes"),
            "chunking changed a line"
        );
    }
    for line in &a {
        let text = line.to_json_line();
        assert!(
            text.ends_with('\n') && text.matches('\n').count() == 1,
            "{text:?}"
        );
        let back: CapturedLine = serde_json::from_str(&text).expect("capture line parses back");
        assert_eq!(
            serde_json::to_string(line).expect("a captured line serializes"),
            serde_json::to_string(&back).expect("a captured line serializes"),
            "capture line round trip"
        );
    }
});
