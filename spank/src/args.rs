//! plugstack.conf arguments: `key=value` words after the plugin path. Pure logic.
use crate::error::{Error, Result};
use std::collections::BTreeMap;

/// Parsed `key=value` arguments; every key is one the plugin declared.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PluginArgs {
    values: BTreeMap<String, String>,
}

/// The keys an admin may write: the plugin's and the layer's `log_level`.
fn known_keys(known: &[&str]) -> String {
    let mut keys: Vec<&str> = known.to_vec();
    if !keys.contains(&"log_level") {
        keys.push("log_level");
    }
    keys.join(", ")
}

impl PluginArgs {
    /// Parses `args`, refusing words without `=`, unknown keys and keys given twice. Errors
    /// name the plugin and the offending word so an admin can find the plugstack.conf line.
    pub fn parse<S: AsRef<str>>(plugin: &str, args: &[S], known: &[&str]) -> Result<Self> {
        let mut values = BTreeMap::new();
        for word in args {
            let word = word.as_ref();
            let Some((key, value)) = word.split_once('=') else {
                return Err(Error::new(format!(
                    "{plugin}: plugstack.conf argument '{word}' is not key=value (known keys: {})",
                    known_keys(known)
                )));
            };
            if !known.contains(&key) {
                return Err(Error::new(format!(
                    "{plugin}: unknown plugstack.conf argument '{key}' in '{word}' (known keys: {})",
                    known_keys(known)
                )));
            }
            if values.insert(key.to_string(), value.to_string()).is_some() {
                return Err(Error::new(format!(
                    "{plugin}: plugstack.conf argument '{key}' is given more than once"
                )));
            }
        }
        Ok(PluginArgs { values })
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.values.get(key).map(String::as_str)
    }

    /// Parses a value with `parse`, naming the key and the expectation on failure.
    pub fn get_parsed<T>(
        &self,
        plugin: &str,
        key: &str,
        expected: &str,
        parse: impl Fn(&str) -> Option<T>,
    ) -> Result<Option<T>> {
        match self.get(key) {
            None => Ok(None),
            Some(raw) => parse(raw).map(Some).ok_or_else(|| {
                Error::new(format!(
                    "{plugin}: plugstack.conf argument {key}='{raw}' is invalid: expected {expected}"
                ))
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KNOWN: &[&str] = &["log_level", "state_dir"];

    #[test]
    fn parses_known_keys() {
        let args = PluginArgs::parse("p", &["log_level=debug", "state_dir=/a=b"], KNOWN).unwrap();
        assert_eq!(args.get("log_level"), Some("debug"));
        assert_eq!(args.get("state_dir"), Some("/a=b"));
        assert_eq!(args.get("other"), None);
    }

    #[test]
    fn rejects_unknown_key_naming_plugin_and_key() {
        let err = PluginArgs::parse("spank_x", &["colour=red"], KNOWN).unwrap_err();
        assert!(err.message().contains("spank_x"), "{err}");
        assert!(err.message().contains("'colour'"), "{err}");
        assert!(err.message().contains("log_level, state_dir"), "{err}");
        // A plugin with no keys of its own: the admin is told the layer's log_level.
        let err = PluginArgs::parse("spank_x", &["colour=red"], &[]).unwrap_err();
        assert!(err.message().ends_with("(known keys: log_level)"), "{err}");
    }

    #[test]
    fn rejects_bare_word_and_duplicates() {
        assert!(PluginArgs::parse("p", &["debug"], KNOWN).is_err());
        let err = PluginArgs::parse("p", &["log_level=a", "log_level=b"], KNOWN).unwrap_err();
        assert!(err.message().contains("more than once"));
    }

    #[test]
    fn parsed_values_name_the_key() {
        let args = PluginArgs::parse("p", &["state_dir=x"], KNOWN).unwrap();
        let err = args
            .get_parsed("p", "state_dir", "a number", |v| v.parse::<u32>().ok())
            .unwrap_err();
        assert!(err.message().contains("state_dir='x'") && err.message().contains("a number"));
        assert_eq!(
            args.get_parsed("p", "log_level", "x", |v| v.parse::<u32>().ok()),
            Ok(None)
        );
    }
}
