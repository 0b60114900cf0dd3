//! Parsing and validation of the plugin's option values, and frame times (FRAME_TIME).
//!
//! Each parser returns `Err` with a message naming the value and what is expected; the caller
//! prefixes the option name.

/// The prefix of captured result lines when `--frame-result-prefix` is not given.
pub const DEFAULT_RESULT_PREFIX: &str = "RESULT:";

/// Longest result prefix accepted, in bytes.
pub const MAX_RESULT_PREFIX: usize = 64;

/// Parses a --frame-t0 / --frame-dt value: a finite decimal number (`0`, `-1.5`, `.25`, `2e3`).
/// Refuses `nan`, `inf`, empty values, spaces and numbers that overflow (`1e400`).
pub fn parse_time_value(s: &str) -> Result<f64, String> {
    let expected = "expected a finite decimal number such as 0, 0.5 or -12.25";
    if s.is_empty() {
        return Err(format!("empty value: {expected}"));
    }
    let is_number_char = |c: char| c.is_ascii_digit() || matches!(c, '.' | '-' | '+' | 'e' | 'E');
    if !s.chars().all(is_number_char) || !s.chars().any(|c| c.is_ascii_digit()) {
        return Err(format!("'{}': {expected}", s.escape_debug()));
    }
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() => Ok(if v == 0.0 { 0.0 } else { v }),
        Ok(_) => Err(format!("'{s}' is out of range: {expected}")),
        Err(_) => Err(format!("'{s}': {expected}")),
    }
}

/// Parses --frame-result-prefix: non-empty, at most 64 bytes, no newline, carriage return or NUL.
pub fn parse_result_prefix(s: &str) -> Result<String, String> {
    if s.is_empty() {
        return Err(format!(
            "empty prefix: expected the text that starts result lines, e.g. {DEFAULT_RESULT_PREFIX}"
        ));
    }
    if s.contains(['\n', '\r', '\0']) {
        return Err(format!(
            "'{}' contains a newline, carriage return or NUL: expected text on one line",
            s.escape_debug()
        ));
    }
    if s.len() > MAX_RESULT_PREFIX {
        return Err(format!(
            "'{s}' is {} bytes long: expected at most {MAX_RESULT_PREFIX}",
            s.len()
        ));
    }
    Ok(s.to_owned())
}

/// The time of frame `index`: `t0 + dt * index`, snapped to the shortest decimal within a few
/// ulps so binary rounding does not show (`0.1 * 3` gives 0.3, not 0.30000000000000004).
pub fn frame_time(t0: f64, dt: f64, index: u64) -> f64 {
    let step = dt * index as f64;
    let exact = t0 + step;
    if !exact.is_finite() {
        return exact;
    }
    let tolerance = 8.0 * f64::EPSILON * (t0.abs() + step.abs());
    for decimals in 0..=17 {
        let text = format!("{exact:.decimals$}");
        if let Ok(snapped) = text.parse::<f64>()
            && (snapped - exact).abs() <= tolerance
        {
            return if snapped == 0.0 { 0.0 } else { snapped };
        }
    }
    exact
}

/// Formats a frame time: the shortest decimal that parses back to the same f64, without
/// exponent notation ("0", "0.5", "59.5", "-2", "0.0001"); "-0" becomes "0".
pub fn format_frame_time(t: f64) -> String {
    if t == 0.0 {
        return "0".to_owned();
    }
    // Rust's Display for f64 is the shortest round-tripping decimal and never uses exponents.
    format!("{t}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_values() {
        assert_eq!(parse_time_value("0"), Ok(0.0));
        assert_eq!(parse_time_value("0.5"), Ok(0.5));
        assert_eq!(parse_time_value("-12.25"), Ok(-12.25));
        assert_eq!(parse_time_value(".25"), Ok(0.25));
        assert_eq!(parse_time_value("+3"), Ok(3.0));
        assert_eq!(parse_time_value("2e3"), Ok(2000.0));
        assert_eq!(
            parse_time_value("-0").map(|v| v.is_sign_negative()),
            Ok(false)
        );
        for bad in [
            "", "nan", "NaN", "inf", "-inf", "infinity", "1e400", "-1e400", " 1", "1 ", "0x10",
            "1,5", "e", ".", "-", "1.2.3", "1e", "½",
        ] {
            let err = parse_time_value(bad).unwrap_err();
            assert!(err.contains("finite decimal number"), "{bad:?}: {err}");
        }
        assert!(parse_time_value("1e400").unwrap_err().contains("'1e400'"));
    }

    #[test]
    fn result_prefixes() {
        assert_eq!(parse_result_prefix("RESULT:"), Ok("RESULT:".to_owned()));
        assert_eq!(parse_result_prefix("@@ "), Ok("@@ ".to_owned()));
        assert!(parse_result_prefix("").unwrap_err().contains("empty"));
        assert!(parse_result_prefix("a\nb").unwrap_err().contains("newline"));
        assert!(parse_result_prefix("a\rb").unwrap_err().contains("newline"));
        let long = "x".repeat(65);
        let err = parse_result_prefix(&long).unwrap_err();
        assert!(err.contains("65 bytes") && err.contains("64"), "{err}");
        assert!(parse_result_prefix(&"x".repeat(64)).is_ok());
    }

    #[test]
    fn frame_times() {
        assert_eq!(format_frame_time(frame_time(0.0, 0.5, 0)), "0");
        assert_eq!(format_frame_time(frame_time(0.0, 0.5, 1)), "0.5");
        assert_eq!(format_frame_time(frame_time(0.0, 0.5, 119)), "59.5");
        assert_eq!(format_frame_time(frame_time(0.0, 0.1, 3)), "0.3");
        assert_eq!(format_frame_time(frame_time(1.1, 0.2, 7)), "2.5");
        assert_eq!(format_frame_time(frame_time(-1.0, 0.25, 2)), "-0.5");
        assert_eq!(format_frame_time(frame_time(-1.0, 0.5, 2)), "0");
        // 1/24 is not a short decimal: it is kept to 16 significant digits.
        assert_eq!(
            format_frame_time(frame_time(0.0, 1.0 / 24.0, 1)),
            "0.0416666666666667"
        );
        assert_eq!(
            format_frame_time(frame_time(1e6, 1e-3, 999_999)),
            "1000999.999"
        );
        assert_eq!(format_frame_time(1e-4), "0.0001");
        assert_eq!(format_frame_time(1e15), "1000000000000000");
        assert_eq!(format_frame_time(-0.0), "0");
        // Round trip of the formatted value.
        for i in 0..1000u64 {
            let t = frame_time(0.3, 1.0 / 3.0, i);
            assert_eq!(format_frame_time(t).parse::<f64>().unwrap(), t);
        }
    }
}
