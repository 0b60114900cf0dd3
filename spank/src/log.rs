//! Routes `tracing` events to Slurm's log functions (slurm_error, slurm_info, slurm_debug*),
//! always through a "%s" format so no message is ever read as a printf format.
//!
//! Mapping: ERROR → slurm_error, WARN → slurm_info ("warning: " prefix), INFO → slurm_info,
//! DEBUG → slurm_debug, TRACE → slurm_debug2. Every line starts with the plugin name. The
//! plugin's own threshold comes from its plugstack.conf `log_level=` argument; Slurm's own
//! level for the process still applies on top of it.
use std::ffi::CString;
use std::fmt::Write as _;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU8, Ordering};

use slurm_sys as sys;
use tracing_core::field::{Field, Visit};
use tracing_core::span::{Attributes, Id, Record};
use tracing_core::{Event, Interest, Level, Metadata, Subscriber};

use crate::error::{Error, Result};

static PLUGIN_NAME: OnceLock<&'static str> = OnceLock::new();
/// 1 = error … 5 = trace; 0 = off.
static MAX_LEVEL: AtomicU8 = AtomicU8::new(3);

fn level_rank(level: &Level) -> u8 {
    match *level {
        Level::ERROR => 1,
        Level::WARN => 2,
        Level::INFO => 3,
        Level::DEBUG => 4,
        _ => 5,
    }
}

/// Parses a `log_level=` value.
pub fn parse_level(value: &str) -> Result<u8> {
    match value.to_ascii_lowercase().as_str() {
        "off" | "quiet" => Ok(0),
        "error" => Ok(1),
        "warn" | "warning" => Ok(2),
        "info" => Ok(3),
        "debug" => Ok(4),
        "trace" => Ok(5),
        _ => Err(Error::new(format!(
            "log_level='{value}' is invalid: expected one of off, error, warn, info, debug, trace"
        ))),
    }
}

/// The plugstack.conf `log_level=` word, handled here for every plugin: it is removed from
/// `args` (the plugin never sees it) and its level applied. A bad or repeated value never fails
/// the plugin (a log setting must not fail jobs): the default level stays, and the returned
/// problem names the word and what is expected.
pub fn take_level_argument(args: &mut Vec<String>) -> Option<Error> {
    let words: Vec<String> = args
        .iter()
        .filter(|word| word.starts_with("log_level="))
        .cloned()
        .collect();
    args.retain(|word| !word.starts_with("log_level="));
    match words.as_slice() {
        [] => None,
        [word] => match parse_level(&word["log_level=".len()..]) {
            Ok(rank) => {
                set_max_level(rank);
                None
            }
            Err(e) => Some(e),
        },
        _ => Some(Error::new(format!(
            "log_level is given {} times ({}): expected it once",
            words.len(),
            words.join(" ")
        ))),
    }
}

pub fn set_max_level(rank: u8) {
    MAX_LEVEL.store(rank.min(5), Ordering::Relaxed);
}

/// Installs the bridge once per process (each plugin .so has its own copy of `tracing`).
pub fn install(plugin: &'static str) {
    let _ = PLUGIN_NAME.set(plugin);
    let _ =
        tracing_core::dispatcher::set_global_default(tracing_core::Dispatch::new(SlurmSubscriber));
}

pub fn plugin_name() -> &'static str {
    PLUGIN_NAME.get().copied().unwrap_or("spank")
}

/// Writes one line to Slurm's log at the given level, prefixed with the plugin name.
pub fn emit(level: &Level, message: &str) {
    let prefix = if *level == Level::WARN {
        "warning: "
    } else {
        ""
    };
    let line = format!("{}: {prefix}{message}", plugin_name());
    // Interior NULs cannot cross into C; show them instead of truncating the message.
    let line = CString::new(line.replace('\0', "\\0")).unwrap_or_default();
    let fmt = c"%s";
    // SAFETY: a constant "%s" format with one valid C string argument.
    unsafe {
        match *level {
            Level::ERROR => sys::slurm_error(fmt.as_ptr(), line.as_ptr()),
            Level::WARN | Level::INFO => sys::slurm_info(fmt.as_ptr(), line.as_ptr()),
            Level::DEBUG => sys::slurm_debug(fmt.as_ptr(), line.as_ptr()),
            _ => sys::slurm_debug2(fmt.as_ptr(), line.as_ptr()),
        }
    }
}

struct SlurmSubscriber;

struct MessageVisitor(String);

impl Visit for MessageVisitor {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.0, "{value:?}");
        } else {
            let _ = write!(self.0, " {}={value:?}", field.name());
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.0.push_str(value);
        } else {
            let _ = write!(self.0, " {}={value}", field.name());
        }
    }
}

impl Subscriber for SlurmSubscriber {
    fn register_callsite(&self, _: &'static Metadata<'static>) -> Interest {
        // The threshold can change at run time (log_level is read in init).
        Interest::sometimes()
    }

    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        level_rank(metadata.level()) <= MAX_LEVEL.load(Ordering::Relaxed)
    }

    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }

    fn record(&self, _: &Id, _: &Record<'_>) {}

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, event: &Event<'_>) {
        let mut visitor = MessageVisitor(String::new());
        event.record(&mut visitor);
        emit(event.metadata().level(), &visitor.0);
    }

    fn enter(&self, _: &Id) {}

    fn exit(&self, _: &Id) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_levels() {
        assert_eq!(parse_level("DEBUG"), Ok(4));
        assert_eq!(parse_level("off"), Ok(0));
        let err = parse_level("loud").unwrap_err();
        assert!(err.message().contains("'loud'") && err.message().contains("trace"));
    }

    #[test]
    fn level_argument_is_taken_out_of_the_plugin_arguments() {
        let mut args: Vec<String> = ["config=/a", "log_level=trace", "b=c"]
            .map(String::from)
            .to_vec();
        assert_eq!(take_level_argument(&mut args), None);
        assert_eq!(args, ["config=/a", "b=c"]);
        assert_eq!(MAX_LEVEL.load(Ordering::Relaxed), 5);
        set_max_level(3);

        let mut bad: Vec<String> = ["log_level=loud", "x=1"].map(String::from).to_vec();
        let problem = take_level_argument(&mut bad).expect("a bad level is a problem");
        assert!(problem.message().contains("log_level='loud'"), "{problem}");
        assert_eq!(bad, ["x=1"]);
        assert_eq!(
            MAX_LEVEL.load(Ordering::Relaxed),
            3,
            "the default level stays"
        );

        let mut twice: Vec<String> = ["log_level=debug", "log_level=off"]
            .map(String::from)
            .to_vec();
        let problem = take_level_argument(&mut twice).expect("twice is a problem");
        assert!(
            problem.message().contains("log_level=debug log_level=off"),
            "{problem}"
        );
        assert!(twice.is_empty());
        assert_eq!(MAX_LEVEL.load(Ordering::Relaxed), 3);

        let mut none: Vec<String> = vec!["log_levels=1".into()];
        assert_eq!(take_level_argument(&mut none), None);
        assert_eq!(none, ["log_levels=1"], "only the exact key is taken");
    }
}
