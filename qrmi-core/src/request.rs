//! The user's `--qpu=NAME[,NAME...]` request: syntax only (names are checked against the
//! admin's config where it is readable). Pure.
use spank::{Error, OptionSpec, Result};

pub const SPECS: &[OptionSpec] = &[OptionSpec::with_arg(
    "qpu",
    "NAMES",
    "Comma separated list of QPU resources to use (names from the site's qrmi_config.json)",
)];

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct QpuRequest {
    pub names: Vec<String>,
}

/// Parses `ibm_torino,fresnel`: non-empty names of letters, digits, `_`, `-`, `.` (they become
/// parts of environment variable names), each once.
pub fn parse_qpu_list(value: &str) -> Result<Vec<String>> {
    let mut names: Vec<String> = Vec::new();
    for name in value.split(',') {
        let name = name.trim();
        if name.is_empty() {
            return Err(Error::new(format!(
                "'{}' has an empty QPU name: expected NAME[,NAME...]",
                value.escape_debug()
            )));
        }
        if !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        {
            return Err(Error::new(format!(
                // Escaped: the value reaches logs and terminals, control bytes included.
                "QPU name '{}' may only contain letters, digits, '_', '-' and '.'",
                name.escape_debug()
            )));
        }
        if names.iter().any(|n| n == name) {
            return Err(Error::new(format!("QPU '{name}' is requested twice")));
        }
        names.push(name.to_string());
    }
    Ok(names)
}

impl QpuRequest {
    pub fn set(&mut self, name: &str, value: Option<&str>) -> Result<()> {
        match name {
            "qpu" => {
                self.names = parse_qpu_list(value.unwrap_or(""))?;
                Ok(())
            }
            other => Err(Error::new(format!("unknown option --{other}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_bytes_in_refused_names_are_escaped_in_the_message() {
        let e = parse_qpu_list("ibm\u{1}\nx\u{1b}[2J")
            .unwrap_err()
            .to_string();
        assert!(e.contains(r"'ibm\u{1}\nx\u{1b}[2J'"), "{e}");
        assert!(!e.chars().any(|c| c.is_control()), "{e:?}");
    }

    #[test]
    fn parses_lists() {
        assert_eq!(parse_qpu_list("ibm_torino").unwrap(), vec!["ibm_torino"]);
        assert_eq!(parse_qpu_list("a, b").unwrap(), vec!["a", "b"]);
    }

    #[test]
    fn refuses_bad_lists() {
        assert!(parse_qpu_list("").unwrap_err().message().contains("empty"));
        assert!(parse_qpu_list("a,,b").is_err());
        assert!(
            parse_qpu_list("a,a")
                .unwrap_err()
                .message()
                .contains("twice")
        );
        assert!(
            parse_qpu_list("a=b")
                .unwrap_err()
                .message()
                .contains("'a=b'")
        );
        assert!(parse_qpu_list("x;rm -rf /").is_err());
    }
}
