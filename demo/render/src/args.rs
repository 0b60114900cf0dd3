//! Command-line parsing (std only).
//!
//! Every error names the option, the offending value (if any) and what is expected; `main`
//! prints it with the usage line and exits with status 2.

use std::ffi::OsString;
use std::fmt;
use std::path::PathBuf;

pub const DEFAULT_WIDTH: u32 = 320;
pub const DEFAULT_HEIGHT: u32 = 180;
/// Upper bound for `--width` and `--height` (keeps the frame buffer below ~200 MB).
pub const MAX_DIM: u32 = 8192;

pub const USAGE: &str =
    "usage: blackhole-render --time T --out PATH [--width W] [--height H] [--result]";

const EXPECT_TIME: &str = "a finite number (the frame time, e.g. 0, 12.5 or -3)";
const EXPECT_OUT: &str = "a non-empty file path for the PNG";
const EXPECT_DIM: &str = "an integer from 1 to 8192";

#[derive(Debug, Clone, PartialEq)]
pub struct Args {
    pub time: f64,
    pub out: PathBuf,
    pub width: u32,
    pub height: u32,
    pub result: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    Render(Args),
    Help,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArgError {
    /// An option that takes a value came last, e.g. `--time` with nothing after it.
    MissingValue {
        option: &'static str,
        expected: &'static str,
    },
    /// The value could not be used.
    InvalidValue {
        option: &'static str,
        value: String,
        expected: &'static str,
    },
    /// A required option was not given.
    MissingOption {
        option: &'static str,
        expected: &'static str,
    },
    /// An option given more than once.
    Repeated { option: &'static str },
    /// A flag given a value, e.g. `--result=yes`.
    UnexpectedValue { option: &'static str, value: String },
    /// Anything that is not one of our options.
    Unknown { arg: String },
}

impl fmt::Display for ArgError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ArgError::MissingValue { option, expected } => {
                write!(f, "option {option} needs a value: expected {expected}")
            }
            ArgError::InvalidValue {
                option,
                value,
                expected,
            } => {
                write!(
                    f,
                    "invalid value '{value}' for {option}: expected {expected}"
                )
            }
            ArgError::MissingOption { option, expected } => {
                write!(f, "missing required option {option}: expected {expected}")
            }
            ArgError::Repeated { option } => write!(f, "option {option} given more than once"),
            ArgError::UnexpectedValue { option, value } => {
                write!(
                    f,
                    "option {option} is a flag and takes no value (got '{value}')"
                )
            }
            ArgError::Unknown { arg } => write!(
                f,
                "unknown argument '{arg}': expected one of --time, --out, --width, --height, --result, --help"
            ),
        }
    }
}

impl std::error::Error for ArgError {}

fn parse_time(value: &str) -> Result<f64, ArgError> {
    match value.trim().parse::<f64>() {
        Ok(t) if t.is_finite() => Ok(t),
        _ => Err(ArgError::InvalidValue {
            option: "--time",
            value: value.to_string(),
            expected: EXPECT_TIME,
        }),
    }
}

fn parse_dim(option: &'static str, value: &str) -> Result<u32, ArgError> {
    match value.trim().parse::<u32>() {
        Ok(n) if (1..=MAX_DIM).contains(&n) => Ok(n),
        _ => Err(ArgError::InvalidValue {
            option,
            value: value.to_string(),
            expected: EXPECT_DIM,
        }),
    }
}

fn set_once<T>(slot: &mut Option<T>, option: &'static str, value: T) -> Result<(), ArgError> {
    if slot.is_some() {
        return Err(ArgError::Repeated { option });
    }
    *slot = Some(value);
    Ok(())
}

/// Parses the arguments after the program name. Accepts `--opt VALUE` and `--opt=VALUE`;
/// the token after an option is always its value, so `--time -3` works.
pub fn parse<I, S>(args: I) -> Result<Command, ArgError>
where
    I: IntoIterator<Item = S>,
    S: Into<OsString>,
{
    let mut time = None;
    let mut out: Option<PathBuf> = None;
    let mut width = None;
    let mut height = None;
    let mut result = false;

    let mut it = args.into_iter().map(Into::into);
    while let Some(raw) = it.next() {
        let arg = raw.to_string_lossy().into_owned();
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n.to_string(), Some(v.to_string())),
            _ => (arg.clone(), None),
        };
        let (option, expected): (&'static str, &'static str) = match name.as_str() {
            "--help" | "-h" => return Ok(Command::Help),
            "--result" => {
                if let Some(value) = inline {
                    return Err(ArgError::UnexpectedValue {
                        option: "--result",
                        value,
                    });
                }
                if result {
                    return Err(ArgError::Repeated { option: "--result" });
                }
                result = true;
                continue;
            }
            "--time" => ("--time", EXPECT_TIME),
            "--out" => ("--out", EXPECT_OUT),
            "--width" => ("--width", EXPECT_DIM),
            "--height" => ("--height", EXPECT_DIM),
            _ => return Err(ArgError::Unknown { arg }),
        };
        // `--out` keeps the raw OsString so non-UTF-8 paths survive.
        let value_os: OsString = match inline {
            Some(v) => OsString::from(v),
            None => it
                .next()
                .ok_or(ArgError::MissingValue { option, expected })?,
        };
        let value = value_os.to_string_lossy().into_owned();
        match option {
            "--time" => set_once(&mut time, option, parse_time(&value)?)?,
            "--width" => set_once(&mut width, option, parse_dim(option, &value)?)?,
            "--height" => set_once(&mut height, option, parse_dim(option, &value)?)?,
            _ => {
                if value_os.is_empty() || value.ends_with('/') {
                    return Err(ArgError::InvalidValue {
                        option,
                        value,
                        expected,
                    });
                }
                set_once(&mut out, option, PathBuf::from(value_os))?
            }
        }
    }

    Ok(Command::Render(Args {
        time: time.ok_or(ArgError::MissingOption {
            option: "--time",
            expected: EXPECT_TIME,
        })?,
        out: out.ok_or(ArgError::MissingOption {
            option: "--out",
            expected: EXPECT_OUT,
        })?,
        width: width.unwrap_or(DEFAULT_WIDTH),
        height: height.unwrap_or(DEFAULT_HEIGHT),
        result,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Result<Command, ArgError> {
        parse(args.iter().copied())
    }

    fn render(args: &[&str]) -> Args {
        match p(args) {
            Ok(Command::Render(a)) => a,
            other => panic!("expected Render, got {other:?}"),
        }
    }

    fn err(args: &[&str]) -> String {
        p(args).expect_err("expected an error").to_string()
    }

    #[test]
    fn defaults() {
        let a = render(&["--time", "1.5", "--out", "f.png"]);
        assert_eq!(
            a,
            Args {
                time: 1.5,
                out: "f.png".into(),
                width: 320,
                height: 180,
                result: false
            }
        );
    }

    #[test]
    fn all_options_both_forms() {
        let a = render(&[
            "--out=x/f.png",
            "--time=-3",
            "--width",
            "64",
            "--height=36",
            "--result",
        ]);
        assert_eq!(
            a,
            Args {
                time: -3.0,
                out: "x/f.png".into(),
                width: 64,
                height: 36,
                result: true
            }
        );
        // A value starting with '-' is still the value.
        assert_eq!(render(&["--time", "-0.5", "--out", "f"]).time, -0.5);
    }

    #[test]
    fn help() {
        assert_eq!(p(&["--help"]), Ok(Command::Help));
        assert_eq!(p(&["--time", "0", "-h"]), Ok(Command::Help));
    }

    #[test]
    fn bad_time_names_option_value_and_expectation() {
        for bad in ["abc", "nan", "inf", "-inf", "", "1e999"] {
            let e = err(&["--time", bad, "--out", "f.png"]);
            assert!(
                e.contains("--time")
                    && e.contains(&format!("'{bad}'"))
                    && e.contains("finite number"),
                "{e}"
            );
        }
    }

    #[test]
    fn bad_dimensions() {
        for (opt, bad) in [
            ("--width", "0"),
            ("--width", "-5"),
            ("--height", "8193"),
            ("--height", "1.5"),
            ("--width", "wide"),
        ] {
            let e = err(&["--time", "0", "--out", "f.png", opt, bad]);
            assert!(
                e.contains(opt) && e.contains(&format!("'{bad}'")) && e.contains("1 to 8192"),
                "{e}"
            );
        }
    }

    #[test]
    fn missing_and_unknown() {
        let e = err(&["--out", "f.png"]);
        assert!(e.contains("missing required option --time"), "{e}");
        let e = err(&["--time", "0"]);
        assert!(e.contains("missing required option --out"), "{e}");
        let e = err(&["--out", "f.png", "--time"]);
        assert!(
            e.contains("--time needs a value") && e.contains("finite number"),
            "{e}"
        );
        let e = err(&["--time", "0", "--out", "f.png", "--fps", "24"]);
        assert!(e.contains("unknown argument '--fps'"), "{e}");
        let e = err(&["--time", "0", "--out", "f.png", "extra"]);
        assert!(e.contains("unknown argument 'extra'"), "{e}");
        let e = err(&["--time", "0", "--out", "", "--result"]);
        assert!(e.contains("invalid value '' for --out"), "{e}");
        let e = err(&["--time", "0", "--out", "dir/"]);
        assert!(e.contains("invalid value 'dir/' for --out"), "{e}");
    }

    #[test]
    fn repeated_and_flag_values() {
        let e = err(&["--time", "0", "--time", "1", "--out", "f"]);
        assert!(e.contains("--time given more than once"), "{e}");
        let e = err(&["--time", "0", "--out", "f", "--result=yes"]);
        assert!(e.contains("--result") && e.contains("'yes'"), "{e}");
    }
}
