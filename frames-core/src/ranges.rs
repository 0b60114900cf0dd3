//! Index ranges: compression for display ("5,12,40-47"), Slurm's `--array` syntax, and parsing
//! our own compressed output back.

/// Most indices one spec may expand to (Slurm's MaxArraySize tops out at 4,000,001).
pub const MAX_INDICES: usize = 1_000_000;

/// Compresses indices into "5,12,40-47" (runs of two or more become `a-b`). The input need not
/// be sorted or unique; an empty input gives "".
pub fn compress(indices: &[u64]) -> String {
    let mut sorted = indices.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut out = String::new();
    let mut i = 0;
    while i < sorted.len() {
        let start = sorted[i];
        let mut end = start;
        while i + 1 < sorted.len() && sorted[i + 1] == end + 1 {
            i += 1;
            end = sorted[i];
        }
        if !out.is_empty() {
            out.push(',');
        }
        if start == end {
            out.push_str(&start.to_string());
        } else {
            out.push_str(&format!("{start}-{end}"));
        }
        i += 1;
    }
    out
}

/// Expands a Slurm `--array` spec: comma-separated `N`, `A-B` and `A-B:STEP` items, with an
/// optional `%MAX` throttle suffix (ignored here). Returns the sorted unique indices.
pub fn parse_array_spec(spec: &str) -> Result<Vec<u64>, String> {
    let (body, throttle) = split_throttle(spec);
    if let Some(t) = throttle
        && (t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(format!(
            "array spec '{spec}': throttle '%{t}' is not a number: expected e.g. 0-15%4"
        ));
    }
    parse_items(spec, body, true)
}

/// Parses our own compressed ranges ("5,12,40-47"; "" is the empty set).
pub fn parse_ranges(s: &str) -> Result<Vec<u64>, String> {
    if s.is_empty() {
        return Ok(Vec::new());
    }
    parse_items(s, s, false)
}

/// Splits "0-15%4" into ("0-15", Some("4")).
pub fn split_throttle(spec: &str) -> (&str, Option<&str>) {
    match spec.split_once('%') {
        Some((body, t)) => (body, Some(t)),
        None => (spec, None),
    }
}

fn parse_items(whole: &str, body: &str, steps: bool) -> Result<Vec<u64>, String> {
    let expected = if steps {
        "expected e.g. 0-119, 1,3,5-7, 0-99:2 or 0-15%4"
    } else {
        "expected e.g. 5,12,40-47"
    };
    let bad = |why: String| Err(format!("'{}': {why}: {expected}", whole.escape_debug()));
    if body.is_empty() {
        return bad("empty".to_owned());
    }
    if body.chars().any(char::is_whitespace) {
        return bad("contains whitespace".to_owned());
    }
    let number = |s: &str| -> Result<u64, String> {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!(
                "'{}': '{}' is not a non-negative integer: {expected}",
                whole.escape_debug(),
                s.escape_debug()
            ));
        }
        s.parse::<u64>()
            .map_err(|_| format!("'{}': {s} is too large: {expected}", whole.escape_debug()))
    };
    let mut out = Vec::new();
    for item in body.split(',') {
        if item.is_empty() {
            return bad("has an empty item".to_owned());
        }
        let (range, step) = match item.split_once(':') {
            Some((r, s)) if steps => (r, Some(number(s)?)),
            Some(_) => return bad(format!("item '{item}' has a step")),
            None => (item, None),
        };
        let (start, end) = match range.split_once('-') {
            Some((a, b)) => (number(a)?, number(b)?),
            None if step.is_some() => {
                return bad(format!("item '{item}' has a step but no range"));
            }
            None => {
                let n = number(range)?;
                (n, n)
            }
        };
        if end < start {
            return bad(format!("range '{range}' ends before it starts"));
        }
        let step = step.unwrap_or(1);
        if step == 0 {
            return bad(format!("item '{item}' has step 0"));
        }
        // Saturating: 0-18446744073709551615 (u64::MAX) must be refused, not overflow (fuzzing).
        let count = ((end - start) / step).saturating_add(1);
        if count > (MAX_INDICES - out.len().min(MAX_INDICES)) as u64 {
            return bad(format!("more than {MAX_INDICES} indices"));
        }
        let mut i = start;
        loop {
            out.push(i);
            match i.checked_add(step) {
                Some(next) if next <= end => i = next,
                _ => break,
            }
        }
    }
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_range_up_to_u64_max_is_refused_not_overflowed() {
        // Found by the `ranges` fuzz target: the index count overflowed.
        for spec in ["0-18446744073709551615", "0-18446744073709551615:1"] {
            let err = parse_array_spec(spec).unwrap_err();
            assert!(err.contains("more than"), "{err}");
        }
        assert!(parse_ranges("0-18446744073709551615").is_err());
    }

    #[test]
    fn compress_runs() {
        assert_eq!(compress(&[]), "");
        assert_eq!(compress(&[5]), "5");
        assert_eq!(
            compress(&[5, 12, 40, 41, 42, 43, 44, 45, 46, 47]),
            "5,12,40-47"
        );
        assert_eq!(compress(&[3, 1, 2, 2, 9, 8]), "1-3,8-9");
        assert_eq!(
            compress(&[0, u64::MAX - 1, u64::MAX]),
            format!("0,{}-{}", u64::MAX - 1, u64::MAX)
        );
    }

    #[test]
    fn array_specs() {
        assert_eq!(parse_array_spec("0-3").unwrap(), vec![0, 1, 2, 3]);
        assert_eq!(parse_array_spec("0-119").unwrap().len(), 120);
        assert_eq!(parse_array_spec("1,3,5-7").unwrap(), vec![1, 3, 5, 6, 7]);
        assert_eq!(parse_array_spec("0-9:4").unwrap(), vec![0, 4, 8]);
        assert_eq!(parse_array_spec("0-99:2").unwrap().len(), 50);
        assert_eq!(parse_array_spec("0-15%4").unwrap().len(), 16);
        assert_eq!(parse_array_spec("7,3,3,5").unwrap(), vec![3, 5, 7]);
        assert_eq!(parse_array_spec("0-999999").unwrap().len(), 1_000_000);
        assert_eq!(
            parse_array_spec(&format!("{}-{}", u64::MAX - 1, u64::MAX)).unwrap(),
            vec![u64::MAX - 1, u64::MAX]
        );
    }

    #[test]
    fn array_spec_refusals() {
        for (bad, want) in [
            ("", "empty"),
            ("%4", "empty"),
            ("0-3 ", "whitespace"),
            ("0, 3", "whitespace"),
            ("1,,2", "empty item"),
            ("1,", "empty item"),
            ("a", "'a' is not"),
            ("-1", "'' is not"),
            ("5-3", "ends before"),
            ("0-9:0", "step 0"),
            ("5:2", "no range"),
            ("0-15%", "throttle"),
            ("0-15%x", "throttle"),
            ("0-1000000", "more than 1000000"),
            ("0-999999,2000000", "more than 1000000"),
            ("99999999999999999999", "too large"),
        ] {
            let err = parse_array_spec(bad).unwrap_err();
            assert!(err.contains(want), "{bad:?}: {err}");
            assert!(err.contains("expected"), "{err}");
        }
    }

    #[test]
    fn own_ranges_round_trip() {
        assert_eq!(parse_ranges("").unwrap(), Vec::<u64>::new());
        let v = vec![0, 1, 2, 5, 9, 10, 100];
        assert_eq!(parse_ranges(&compress(&v)).unwrap(), v);
        assert!(parse_ranges("0-9:2").is_err());
        assert!(parse_ranges("1%2").is_err());
        assert!(parse_ranges(" 1").is_err());
    }
}
