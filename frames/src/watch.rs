//! `frames watch`: refreshes the status until every expected frame is done or failed.
//! Each refresh reads the directory afresh, so memory stays bounded by one summary.
use std::io::IsTerminal;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use frames_core::Layout;
use frames_core::merge;

use crate::{Fail, exit};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_sigint(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

fn install_sigint() {
    let handler: extern "C" fn(libc::c_int) = on_sigint;
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe {
        libc::signal(libc::SIGINT, handler as libc::sighandler_t);
    }
}

/// Sleeps up to `d`, waking early on Ctrl-C; returns true when interrupted.
fn sleep_interruptible(d: Duration) -> bool {
    let end = Instant::now() + d;
    while Instant::now() < end {
        if INTERRUPTED.load(Ordering::SeqCst) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50).min(end - Instant::now()));
    }
    INTERRUPTED.load(Ordering::SeqCst)
}

pub fn run(dir: &Path, interval: f64) -> Result<u8, Fail> {
    let layout = crate::layout(dir)?;
    install_sigint();
    let tty = std::io::stderr().is_terminal();
    let bar = indicatif::ProgressBar::with_draw_target(
        None,
        if tty {
            indicatif::ProgressDrawTarget::stderr()
        } else {
            indicatif::ProgressDrawTarget::hidden()
        },
    );
    if let Ok(style) =
        indicatif::ProgressStyle::with_template("{bar:40.green/red} {pos}/{len} {msg}")
    {
        bar.set_style(style);
    }
    let mut last_line = String::new();
    loop {
        let line = match merge::collect(&layout) {
            Ok(c) => {
                let s = merge::summarize(&c);
                bar.set_length(s.expected);
                bar.set_position(s.done);
                let line = format!(
                    "{} done, {} failed, {} missing of {}",
                    s.done, s.failed, s.missing, s.expected
                );
                if s.is_settled() {
                    bar.finish_with_message(line.clone());
                    if !tty {
                        println!("{line}");
                    }
                    println!("all {} expected frames are done or failed", s.expected);
                    if !s.failed_ranges.is_empty() {
                        println!("failed: {}", s.failed_ranges);
                    }
                    return Ok(exit::OK);
                }
                line
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                format!("waiting for {}", Layout::new(dir).state_dir().display())
            }
            Err(e) => return Err(e.into()),
        };
        if line != last_line {
            if tty {
                bar.set_message(line.clone());
            } else {
                println!("{line}");
            }
            last_line = line;
        }
        if sleep_interruptible(Duration::from_secs_f64(interval)) {
            bar.abandon();
            eprintln!("frames: interrupted");
            return Ok(exit::INTERRUPTED);
        }
    }
}
