//! Plugin options (`--qpu`, `--frame-dir`, ...): declaration, registration with Slurm in
//! every context that parses them, and the callback that hands values to the plugin.
use std::ffi::{CString, c_char, c_int};
use std::sync::Mutex;

use slurm_sys as sys;

use crate::error::{Error, Result};

/// One option as a plugin declares it.
#[derive(Debug, Clone, Copy)]
pub struct OptionSpec {
    /// Long name without dashes, at most SPANK_OPTION_MAXLEN characters.
    pub name: &'static str,
    /// One word describing the argument (e.g. "DIR"); None for a flag.
    pub arginfo: Option<&'static str>,
    /// The --help text; Slurm refuses an option without one.
    pub usage: &'static str,
}

impl OptionSpec {
    pub const fn with_arg(name: &'static str, arginfo: &'static str, usage: &'static str) -> Self {
        OptionSpec {
            name,
            arginfo: Some(arginfo),
            usage,
        }
    }

    pub const fn flag(name: &'static str, usage: &'static str) -> Self {
        OptionSpec {
            name,
            arginfo: None,
            usage,
        }
    }
}

/// A raw option struct whose strings are leaked on purpose: Slurm may keep pointers to them
/// for the life of the process, and there are only a handful per process.
#[derive(Clone, Copy)]
struct Registered {
    name: &'static str,
    raw: sys::spank_option,
}

// SAFETY: the raw pointers point to leaked, immutable C strings.
unsafe impl Send for Registered {}

static REGISTERED: Mutex<Vec<Registered>> = Mutex::new(Vec::new());

fn leak(what: &str, text: &str) -> Result<*mut c_char> {
    let c = CString::new(text).map_err(|_| Error::new(format!("{what} contains a NUL byte")))?;
    Ok(c.into_raw())
}

/// Checks a declaration against Slurm's rules (length, non-empty usage).
pub fn validate(spec: &OptionSpec) -> Result<()> {
    let max = sys::SPANK_OPTION_MAXLEN as usize;
    if spec.name.is_empty() || spec.name.len() > max {
        return Err(Error::new(format!(
            "option name '{}' must have 1 to {max} characters",
            spec.name
        )));
    }
    if spec.usage.is_empty() {
        return Err(Error::new(format!(
            "option --{} has no usage text",
            spec.name
        )));
    }
    Ok(())
}

/// Registers `specs` with Slurm; `callback` receives the index into `specs` as `val`.
///
/// # Safety
/// `raw` must be the handle of the running `slurm_spank_init` callback.
pub unsafe fn register(
    raw: sys::spank_t,
    specs: &[OptionSpec],
    callback: unsafe extern "C" fn(c_int, *const c_char, c_int) -> c_int,
) -> Result<()> {
    let mut registered = REGISTERED.lock().unwrap_or_else(|p| p.into_inner());
    for (index, spec) in specs.iter().enumerate() {
        validate(spec)?;
        let existing = registered.iter().find(|r| r.name == spec.name).copied();
        let mut option = match existing {
            Some(r) => r.raw,
            None => {
                let option = sys::spank_option {
                    name: leak("option name", spec.name)?,
                    arginfo: match spec.arginfo {
                        Some(a) => leak("option arginfo", a)?,
                        None => std::ptr::null_mut(),
                    },
                    usage: leak("option usage", spec.usage)?,
                    has_arg: c_int::from(spec.arginfo.is_some()),
                    val: c_int::try_from(index).unwrap_or(c_int::MAX),
                    cb: Some(callback),
                };
                registered.push(Registered {
                    name: spec.name,
                    raw: option,
                });
                option
            }
        };
        // SAFETY: `option` holds valid, never-freed C strings and a valid callback.
        let rc = unsafe { sys::spank_option_register(raw, &mut option) };
        if rc != sys::ESPANK_SUCCESS {
            return Err(Error::new(format!(
                "cannot register option --{} (spank error {rc})",
                spec.name
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validates_declarations() {
        assert!(validate(&OptionSpec::with_arg("qpu", "NAMES", "QPUs")).is_ok());
        assert!(validate(&OptionSpec::flag("x", "")).is_err());
        let long: &'static str = Box::leak("a".repeat(76).into_boxed_str());
        assert!(validate(&OptionSpec::flag(long, "u")).is_err());
    }
}
