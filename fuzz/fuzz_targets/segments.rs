//! Record segments (DIR/.frames/records/*.seg, user-writable): whatever the bytes (torn by a
//! crash, altered, appended to concurrently), the reader never panics, every record it returns
//! lies inside the input, is whole-line framed, and re-encoding it gives back its line.
#![no_main]
use frames_core::store::{Line, encode_line, parse_segment};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut last_end = 0;
    for line in parse_segment(data) {
        match line {
            Line::Record(key, range) => {
                assert!(range.start >= last_end && range.end < data.len());
                assert_eq!(data[range.end], b'\n');
                let json = &data[range.clone()];
                // Its framing (length, check, JSON) is what the writer would append; the stem
                // before it names the same key (leading zeros in a number are accepted).
                let line = encode_line(&key, json);
                let stem_len = line.iter().position(|&b| b == b' ').unwrap_or(0);
                let framing = &line[stem_len..];
                let start = range.end + 1 - framing.len();
                assert_eq!(&data[start..=range.end], framing, "a record is its framed line");
                let line_start = data[..start].iter().rposition(|&b| b == b'\n').map_or(0, |p| p + 1);
                let stem = std::str::from_utf8(&data[line_start..start]).expect("stem is text");
                assert_eq!(frames_core::TaskKey::parse_stem(stem), Some(key));
                last_end = range.end + 1;
            }
            Line::Bad { offset, .. } => {
                assert!(offset < data.len());
            }
        }
    }
    // Appending a record after any bytes (a torn tail, then the writer's separator) always
    // yields that record last.
    let key = frames_core::TaskKey {
        index: 1,
        attempt: 0,
        job_id: 2,
        step: frames_core::StepId::Batch,
        task_id: 0,
    };
    let mut more = data.to_vec();
    if more.last().is_some_and(|&b| b != b'\n') {
        more.push(b'\n');
    }
    more.extend(encode_line(&key, br#"{"a":1}"#));
    assert!(matches!(parse_segment(&more).last(), Some(Line::Record(k, _)) if *k == key));
});
