//! The plugin's options and their validation. Pure: no FFI.
use std::path::PathBuf;

use spank::{Error, OptionSpec, Result};

pub const SPECS: &[OptionSpec] = &[OptionSpec::with_arg(
    "frame-dir",
    "DIR",
    "Route each task's frame output and result record to DIR (absolute path); enables spank_frames for the job",
)];

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct FrameOptions {
    pub frame_dir: Option<PathBuf>,
}

impl FrameOptions {
    pub fn enabled(&self) -> bool {
        self.frame_dir.is_some()
    }

    /// Records one option value, refusing bad ones with a message naming the value and what
    /// is expected (the layer prefixes the option name).
    pub fn set(&mut self, name: &str, value: Option<&str>) -> Result<()> {
        match name {
            "frame-dir" => {
                self.frame_dir = Some(parse_frame_dir(value)?);
                Ok(())
            }
            other => Err(Error::new(format!("unknown option --{other}"))),
        }
    }
}

pub fn parse_frame_dir(value: Option<&str>) -> Result<PathBuf> {
    let value = value.unwrap_or("");
    if value.is_empty() {
        return Err(Error::new(
            "expected an absolute directory path, got nothing",
        ));
    }
    let path = PathBuf::from(value);
    if !path.is_absolute() {
        return Err(Error::new(format!(
            "'{value}' is a relative path: expected an absolute directory path (tasks run in other working directories)"
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
            parse_frame_dir(Some("/shared/f")).unwrap(),
            PathBuf::from("/shared/f")
        );
        let err = parse_frame_dir(Some("frames")).unwrap_err();
        assert!(err.message().contains("'frames'") && err.message().contains("absolute"));
        assert!(parse_frame_dir(None).is_err());
        assert!(parse_frame_dir(Some("")).is_err());
    }

    #[test]
    fn set_enables() {
        let mut options = FrameOptions::default();
        assert!(!options.enabled());
        options.set("frame-dir", Some("/x")).unwrap();
        assert!(options.enabled());
        assert!(options.set("nope", None).is_err());
    }
}
