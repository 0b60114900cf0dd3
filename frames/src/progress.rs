//! Progress of long CLI work (report thumbnails, video encoding): a bar on a terminal, one
//! line per step otherwise (a batch log or a pipe gets lines, not bar redraws). On stderr, so
//! stdout stays the command's result.
use std::io::IsTerminal;
use std::time::Instant;

pub struct Progress {
    /// The command's name, starting each line ("frames report").
    command: &'static str,
    tty: bool,
    started: Instant,
}

impl Progress {
    pub fn new(command: &'static str) -> Progress {
        Progress {
            command,
            tty: std::io::stderr().is_terminal(),
            started: Instant::now(),
        }
    }

    /// Says that a step starts; off a terminal, with the seconds since the command started.
    pub fn step(&self, what: &str) {
        if self.tty {
            eprintln!("{}: {what}", self.command);
        } else {
            eprintln!(
                "{}: [{:.1} s] {what}",
                self.command,
                self.started.elapsed().as_secs_f64()
            );
        }
    }

    /// A bar of `len` units on a terminal; hidden otherwise (the step line said it).
    pub fn bar(&self, len: usize, what: &str) -> indicatif::ProgressBar {
        if !self.tty {
            return indicatif::ProgressBar::hidden();
        }
        let bar = indicatif::ProgressBar::with_draw_target(
            Some(len as u64),
            indicatif::ProgressDrawTarget::stderr(),
        );
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "{prefix} {bar:40.green/white} {pos}/{len} ({per_sec}, {eta} left)",
        ) {
            bar.set_style(style);
        }
        bar.set_prefix(what.to_owned());
        bar
    }
}
