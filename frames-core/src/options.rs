//! The plugin's options (--frame-dir, --frame-pattern, --frame-t0, --frame-dt,
//! --result-prefix, --frame-sha256, --frame-local): their table, defaults and parsers, written once here for
//! the plugin, the submission it records and the fuzz targets; and frame times (FRAME_TIME).
//!
//! Values are checked as they are parsed, so srun/sbatch/salloc refuse a bad one before the job
//! is queued. Each parser returns `Err` with a message naming the value and what is expected;
//! the SPANK layer prefixes the option name.
use std::path::PathBuf;

use crate::pattern::{DEFAULT_PATTERN, FramePattern, default_pattern};

/// The prefix of captured result lines when `--result-prefix` is not given (a macro too, so
/// the option's help text names it without a second copy).
macro_rules! default_result_prefix {
    () => {
        "RESULT:"
    };
}
pub const DEFAULT_RESULT_PREFIX: &str = default_result_prefix!();
/// --frame-t0 and --frame-dt when not given.
pub const DEFAULT_T0: f64 = 0.0;
pub const DEFAULT_DT: f64 = 1.0;

/// One option as the plugin registers it with Slurm.
#[derive(Debug, Clone, Copy)]
pub struct OptionInfo {
    /// Long name without dashes.
    pub name: &'static str,
    /// One word describing the value; `None` for a flag.
    pub arg: Option<&'static str>,
    /// The --help text.
    pub usage: &'static str,
}

/// The options, in the order `--help` lists them.
pub const OPTIONS: &[OptionInfo] = &[
    OptionInfo {
        name: "frame-dir",
        arg: Some("DIR"),
        usage: "Route each task's frame and result record to DIR (absolute path); enables spank_frames for the job",
    },
    OptionInfo {
        name: "frame-pattern",
        arg: Some("PATTERN"),
        usage: concat!(
            "Frame file name in DIR, printf-style index plus %A %a %j (default ",
            default_pattern!(),
            "; 'none' if tasks write no frame)"
        ),
    },
    OptionInfo {
        name: "frame-t0",
        arg: Some("SECONDS"),
        usage: "Time of frame 0; FRAME_TIME = t0 + index * dt (default 0)",
    },
    OptionInfo {
        name: "frame-dt",
        arg: Some("SECONDS"),
        usage: "Time between frames (default 1)",
    },
    OptionInfo {
        name: "result-prefix",
        arg: Some("PREFIX"),
        usage: concat!(
            "Stdout lines starting with PREFIX are recorded as JSON results (default ",
            default_result_prefix!(),
            ")"
        ),
    },
    OptionInfo {
        name: "frame-sha256",
        arg: None,
        usage: "Also record a SHA-256 of each frame (every record has its BLAKE3)",
    },
    OptionInfo {
        name: "frame-local",
        arg: None,
        usage: "DIR is on each node's own disk (not shared): tasks only write there; run 'frames gather DIR' on the submit host",
    },
];

/// The options of one srun/sbatch/salloc call, as Slurm handed them to the plugin.
#[derive(Debug, Clone)]
pub struct FrameOptions {
    pub frame_dir: Option<PathBuf>,
    pub pattern: FramePattern,
    pub pattern_text: String,
    pub t0: f64,
    pub dt: f64,
    pub result_prefix: String,
    /// --frame-sha256 was given.
    pub sha256: bool,
    /// --frame-local was given: DIR is node-local, gathered with `frames gather`.
    pub local: bool,
    /// The options other than --frame-dir that were given, in order (each name once).
    pub given: Vec<&'static str>,
}

impl Default for FrameOptions {
    fn default() -> Self {
        FrameOptions {
            frame_dir: None,
            pattern: FramePattern::default(),
            pattern_text: DEFAULT_PATTERN.to_string(),
            t0: DEFAULT_T0,
            dt: DEFAULT_DT,
            result_prefix: DEFAULT_RESULT_PREFIX.to_string(),
            sha256: false,
            local: false,
            given: Vec::new(),
        }
    }
}

impl FrameOptions {
    pub fn enabled(&self) -> bool {
        self.frame_dir.is_some()
    }

    /// Refuses frame options given without --frame-dir: they would be silently ignored
    /// (the job would run without frames while the user believes it routes them).
    pub fn check_complete(&self) -> Result<(), String> {
        if self.enabled() || self.given.is_empty() {
            return Ok(());
        }
        let list = self
            .given
            .iter()
            .map(|n| format!("--{n}"))
            .collect::<Vec<_>>()
            .join(", ");
        let (verb, pronoun) = if self.given.len() == 1 {
            ("has", "it")
        } else {
            ("have", "them")
        };
        Err(format!(
            "{list} {verb} no effect without --frame-dir=DIR: add --frame-dir (an absolute directory) or drop {pronoun}"
        ))
    }

    /// Records one option value, refusing bad ones with a message naming the value and what
    /// is expected (the layer prefixes the option name).
    pub fn set(&mut self, name: &str, value: Option<&str>) -> Result<(), String> {
        let value = value.unwrap_or("");
        if let Some(option) = OPTIONS.iter().find(|o| o.name == name)
            && name != "frame-dir"
            && !self.given.contains(&option.name)
        {
            self.given.push(option.name);
        }
        match name {
            "frame-dir" => self.frame_dir = Some(parse_frame_dir(value)?),
            "frame-pattern" => {
                self.pattern = FramePattern::parse(value)?;
                self.pattern_text = value.to_string();
            }
            "frame-t0" => self.t0 = parse_time_value(value)?,
            "frame-dt" => self.dt = parse_time_value(value)?,
            "result-prefix" => self.result_prefix = parse_result_prefix(value)?,
            "frame-sha256" => self.sha256 = true,
            "frame-local" => self.local = true,
            other => return Err(format!("unknown option --{other}")),
        }
        Ok(())
    }
}

/// Parses --frame-dir: an absolute path without `..` components or newlines.
pub fn parse_frame_dir(value: &str) -> Result<PathBuf, String> {
    if value.is_empty() {
        return Err("expected an absolute directory path, got nothing".to_owned());
    }
    if value.contains('\n') {
        return Err("the directory path contains a newline".to_owned());
    }
    let path = PathBuf::from(value);
    if !path.is_absolute() {
        return Err(format!(
            "'{value}' is a relative path: expected an absolute directory path (tasks run in other working directories)"
        ));
    }
    if path
        .components()
        .any(|c| matches!(c, std::path::Component::ParentDir))
    {
        return Err(format!(
            "'{value}' contains '..': give the directory's real path"
        ));
    }
    Ok(path)
}

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

/// Parses --result-prefix: non-empty, at most 64 bytes, no newline, carriage return or NUL.
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

    #[test]
    fn frame_dir_must_be_absolute() {
        assert_eq!(
            parse_frame_dir("/shared/f").unwrap(),
            PathBuf::from("/shared/f")
        );
        let err = parse_frame_dir("frames").unwrap_err();
        assert!(err.contains("'frames'") && err.contains("absolute"));
        assert!(parse_frame_dir("").is_err());
        assert!(parse_frame_dir("/a/../etc").is_err());
    }

    #[test]
    fn values_are_validated_as_they_are_set() {
        let mut options = FrameOptions::default();
        assert!(!options.enabled());
        options.set("frame-dir", Some("/x")).unwrap();
        assert!(options.enabled());
        options.set("frame-t0", Some("2.5")).unwrap();
        options.set("frame-dt", Some("0.5")).unwrap();
        assert_eq!((options.t0, options.dt), (2.5, 0.5));
        assert!(options.set("frame-t0", Some("soon")).is_err());
        assert!(options.set("frame-dt", Some("nan")).is_err());
        assert!(options.set("frame-pattern", Some("frame.png")).is_err());
        options.set("frame-pattern", Some("f_%05d.exr")).unwrap();
        assert_eq!(options.pattern_text, "f_%05d.exr");
        assert!(options.set("result-prefix", Some("")).is_err());
        assert!(options.set("nope", None).is_err());
    }

    #[test]
    fn frame_options_without_frame_dir_are_refused() {
        let mut options = FrameOptions::default();
        assert!(options.check_complete().is_ok());
        options.set("frame-t0", Some("1")).unwrap();
        let e = options.check_complete().unwrap_err();
        assert_eq!(
            e,
            "--frame-t0 has no effect without --frame-dir=DIR: add --frame-dir (an absolute directory) or drop it"
        );
        options.set("frame-pattern", Some("f_%d.exr")).unwrap();
        options.set("frame-t0", Some("2")).unwrap();
        let e = options.check_complete().unwrap_err();
        assert!(
            e.starts_with("--frame-t0, --frame-pattern have no effect without --frame-dir"),
            "{e}"
        );
        options.set("frame-dir", Some("/f")).unwrap();
        assert!(options.check_complete().is_ok());
    }

    #[test]
    fn help_texts_name_the_defaults() {
        let usage = |name: &str| OPTIONS.iter().find(|o| o.name == name).unwrap().usage;
        assert!(usage("frame-pattern").contains("(default frame_%04d.png;"));
        assert!(usage("result-prefix").ends_with("(default RESULT:)"));
    }
}
