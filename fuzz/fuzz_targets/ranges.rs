//! Array specs (users: `--array`, SBATCH_ARRAY_INX, #SBATCH lines) and our compressed range
//! lists (read back from summaries): sorted unique output, compress/parse round trip.
#![no_main]
use frames_core::ranges::{MAX_INDICES, compress, parse_array_spec, parse_ranges};
use libfuzzer_sys::fuzz_target;

fn check(v: &[u64]) {
    assert!(v.len() <= MAX_INDICES);
    assert!(v.windows(2).all(|w| w[0] < w[1]), "not sorted and unique");
    let text = compress(v);
    assert_eq!(
        parse_ranges(&text).as_deref(),
        Ok(v),
        "compress/parse round trip: {text}"
    );
}

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        // Raw u64s: compress must round-trip any set.
        let mut v: Vec<u64> = data
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().unwrap()))
            .collect();
        v.sort_unstable();
        v.dedup();
        check(&v);
        return;
    };
    if let Ok(v) = parse_array_spec(s) {
        check(&v);
    }
    if let Ok(v) = parse_ranges(s) {
        check(&v);
    }
});
