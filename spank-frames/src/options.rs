//! The plugin's options and their validation (values are checked as they are parsed, so a
//! bad one is refused by srun/sbatch/salloc before the job is queued). Pure: no FFI.
use std::path::PathBuf;

use frames_core::pattern::FramePattern;
use spank::{Error, OptionSpec, Result};

pub const SPECS: &[OptionSpec] = &[
    OptionSpec::with_arg(
        "frame-dir",
        "DIR",
        "Route each task's frame and result record to DIR (absolute path); enables spank_frames for the job",
    ),
    OptionSpec::with_arg(
        "frame-pattern",
        "PATTERN",
        "Frame file name in DIR, printf-style index plus %A %a %j (default frame_%04d.png; 'none' if tasks write no frame)",
    ),
    OptionSpec::with_arg(
        "frame-t0",
        "SECONDS",
        "Time of frame 0; FRAME_TIME = t0 + index * dt (default 0)",
    ),
    OptionSpec::with_arg("frame-dt", "SECONDS", "Time between frames (default 1)"),
    OptionSpec::with_arg(
        "result-prefix",
        "PREFIX",
        "Stdout lines starting with PREFIX are recorded as JSON results (default RESULT:)",
    ),
    OptionSpec::flag(
        "frame-sha256",
        "Also record a SHA-256 of each frame (every record has its BLAKE3)",
    ),
];

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
    /// The options other than --frame-dir that were given, in order (each name once).
    pub given: Vec<&'static str>,
}

impl Default for FrameOptions {
    fn default() -> Self {
        FrameOptions {
            frame_dir: None,
            pattern: FramePattern::parse(frames_core::pattern::DEFAULT_PATTERN)
                .unwrap_or_else(|_| unreachable!()),
            pattern_text: frames_core::pattern::DEFAULT_PATTERN.to_string(),
            t0: 0.0,
            dt: 1.0,
            result_prefix: frames_core::options::DEFAULT_RESULT_PREFIX.to_string(),
            sha256: false,
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
    pub fn check_complete(&self) -> Result<()> {
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
        Err(Error::new(format!(
            "{list} {verb} no effect without --frame-dir=DIR: add --frame-dir (an absolute directory) or drop {pronoun}"
        )))
    }

    /// Records one option value, refusing bad ones with a message naming the value and what
    /// is expected (the layer prefixes the option name).
    pub fn set(&mut self, name: &str, value: Option<&str>) -> Result<()> {
        let value = value.unwrap_or("");
        if let Some(spec) = SPECS.iter().find(|s| s.name == name)
            && name != "frame-dir"
            && !self.given.contains(&spec.name)
        {
            self.given.push(spec.name);
        }
        match name {
            "frame-dir" => self.frame_dir = Some(parse_frame_dir(value)?),
            "frame-pattern" => {
                self.pattern = FramePattern::parse(value).map_err(Error::new)?;
                self.pattern_text = value.to_string();
            }
            "frame-t0" => {
                self.t0 = frames_core::options::parse_time_value(value).map_err(Error::new)?
            }
            "frame-dt" => {
                self.dt = frames_core::options::parse_time_value(value).map_err(Error::new)?
            }
            "result-prefix" => {
                self.result_prefix =
                    frames_core::options::parse_result_prefix(value).map_err(Error::new)?
            }
            "frame-sha256" => self.sha256 = true,
            other => return Err(Error::new(format!("unknown option --{other}"))),
        }
        Ok(())
    }
}

pub fn parse_frame_dir(value: &str) -> Result<PathBuf> {
    if value.is_empty() {
        return Err(Error::new(
            "expected an absolute directory path, got nothing",
        ));
    }
    if value.contains('\n') {
        return Err(Error::new("the directory path contains a newline"));
    }
    let path = PathBuf::from(value);
    if !path.is_absolute() {
        return Err(Error::new(format!(
            "'{value}' is a relative path: expected an absolute directory path (tasks run in other working directories)"
        )));
    }
    if path
        .components()
        .any(|c| matches!(c, std::path::Component::ParentDir))
    {
        return Err(Error::new(format!(
            "'{value}' contains '..': give the directory's real path"
        )));
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_dir_must_be_absolute() {
        assert_eq!(
            parse_frame_dir("/shared/f").unwrap(),
            PathBuf::from("/shared/f")
        );
        let err = parse_frame_dir("frames").unwrap_err();
        assert!(err.message().contains("'frames'") && err.message().contains("absolute"));
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
            e.message(),
            "--frame-t0 has no effect without --frame-dir=DIR: add --frame-dir (an absolute directory) or drop it"
        );
        options.set("frame-pattern", Some("f_%d.exr")).unwrap();
        options.set("frame-t0", Some("2")).unwrap();
        let e = options.check_complete().unwrap_err();
        assert!(
            e.message()
                .starts_with("--frame-t0, --frame-pattern have no effect without --frame-dir"),
            "{}",
            e.message()
        );
        options.set("frame-dir", Some("/f")).unwrap();
        assert!(options.check_complete().is_ok());
    }
}
