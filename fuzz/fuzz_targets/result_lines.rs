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

    for (x, y) in a.iter().zip(&b) {
        let (x, y) = (
            serde_json::to_value(x).unwrap(),
            serde_json::to_value(y).unwrap(),
        );
        assert!(
            spank_fuzz::same_json(&x, &y),
            "chunking changed a line:\n{x}\n{y}"
        );
    }
    for line in &a {
        let text = line.to_json_line();
        assert!(
            text.ends_with('\n') && text.matches('\n').count() == 1,
            "{text:?}"
        );
        let back: CapturedLine = serde_json::from_str(&text).expect("capture line parses back");
        let (x, y) = (
            serde_json::to_value(line).unwrap(),
            serde_json::to_value(&back).unwrap(),
        );
        assert!(
            spank_fuzz::same_json(&x, &y),
            "capture line round trip:\n{x}\n{y}"
        );
    }
});
