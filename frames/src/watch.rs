//! `frames watch` and what every command learns from Slurm's queue. `watch` refreshes frame
//! progress, the dir's jobs in squeue/sacct and the nodes (sinfo) every N seconds: a redrawn
//! dashboard on a terminal, one line per change otherwise. It ends by itself when every frame
//! is settled and Slurm runs nothing of the dir, when Slurm runs nothing of the dir while
//! frames are still missing (a node crash, a cancelled job), when all that is left waits for a
//! person (a hold, a never-met dependency), at --timeout, or at once when DIR is unreadable.
//! `consult` is the queue step that status, missing and resubmit share.
use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use frames_core::Layout;
use frames_core::merge::{self, Collection, Summary, Tracker};
use frames_core::queue::{self, Answer, Live, QueueView};

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

/// What Slurm said about a dir's jobs, already applied to the summary.
pub struct Consulted {
    pub view: QueueView,
    pub live: Live,
    pub asked: usize,
    pub jobs: queue::DirJobs,
    /// Why squeue could not link the submissions that no record names yet.
    pub link_error: Option<String>,
    /// Submissions judged never to have become a job (queue::settle_submissions).
    pub settled: Vec<String>,
}

impl Consulted {
    /// Lines for people: which source answered, the jobs' states, what is not proposed
    /// because Slurm still runs it, what was lost with a node, what neither source knows.
    pub fn lines(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (sub, job) in &self.jobs.linked {
            out.push(format!(
                "submission {sub}: job {job} (linked by squeue: same user, working directory and submit time)"
            ));
        }
        for (sub, jobs) in &self.jobs.ambiguous {
            let list: Vec<String> = jobs.iter().map(u32::to_string).collect();
            out.push(format!(
                "submission {sub}: not linked: jobs {} all match it (same user and directory, submitted within a minute of it); its records will tell",
                list.join(",")
            ));
        }
        if let Some(e) = &self.link_error {
            out.push(format!("queue: cannot link submissions to jobs: {e}"));
        }
        out.extend(self.settled.iter().cloned());
        if self.asked == 0 {
            out.push("queue: no job of this dir is known yet (no record names a job id)".into());
            return out;
        }
        out.push(format!("queue: {}", self.view.sources()));
        let states = self.live.state_line();
        if !states.is_empty() {
            out.push(format!("slurm: {states}"));
        }
        if !self.live.active.is_empty() {
            out.push(format!(
                "still in Slurm (pending/running/requeued, not proposed): {}",
                frames_core::ranges::compress(
                    &self.live.active.iter().copied().collect::<Vec<_>>()
                )
            ));
        }
        for e in &self.live.active_jobs {
            out.push(format!(
                "job {} {}{}",
                e.name(),
                e.state.as_str(),
                reason_suffix(&e.reason)
            ));
        }
        if !self.live.active_reruns.is_empty() {
            let list: Vec<String> = self.live.active_reruns.iter().map(u32::to_string).collect();
            out.push(format!(
                "jobs {}: a rerun may be pending or running (not linked yet): not proposed",
                list.join(",")
            ));
        }
        out.extend(self.live.lost_lines());
        out.extend(self.live.cancelled_lines());
        for e in &self.live.stuck {
            out.push(format!(
                "{} pending ({}): it will not start by itself",
                e.name(),
                e.reason
            ));
        }
        for &id in &self.live.unknown {
            out.push(self.view.unknown_verdict(id));
        }
        out
    }

    /// squeue answered, so "nothing active" can be believed.
    fn queue_answered(&self) -> bool {
        self.view.squeue == Answer::Answered
    }
}

fn reason_suffix(reason: &str) -> String {
    if reason.is_empty() || reason == "None" {
        String::new()
    } else {
        format!(" ({reason})")
    }
}

/// Asks squeue/sacct about the dir's jobs and takes what Slurm still runs out of the
/// summary's rerun list and resubmit commands. The records were read before Slurm was asked,
/// so a task that ended in between (gone from the queue, its record just written) would look
/// missing: when anything is left to propose, what was written since is read (the tracker
/// reads only that) and judged against the same answer.
pub fn consult(layout: &Layout, t: &mut Tracker, s: &mut Summary) -> Consulted {
    let (jobs, link_error, settled) = link_and_settle(t.collection_mut());
    if !jobs.linked.is_empty() || !settled.is_empty() {
        *s = merge::summarize(t.collection());
    }
    let view = queue::ask(&jobs.ids_to_ask(), queue::DEFAULT_TIMEOUT);
    let mut live = queue::live(t.collection(), &jobs, &view);
    queue::exclude_active(s, t.collection(), &live);
    if !s.rerun_ranges.is_empty() && t.refresh(layout).is_ok() {
        let c = t.collection_mut();
        queue::settle_submissions(c, &jobs, link_error.is_none(), unix_now());
        *s = merge::summarize(c);
        live = queue::live(c, &jobs, &view);
        queue::exclude_active(s, c, &live);
    }
    Consulted {
        settled,
        view,
        live,
        asked: jobs.ids_to_ask().len(),
        jobs,
        link_error,
    }
}

/// The dir's jobs, linked by squeue where no record names them yet, and the submissions
/// settled by that answer (with why linking failed, if it did).
fn link_and_settle(c: &mut Collection) -> (queue::DirJobs, Option<String>, Vec<String>) {
    let mut jobs = queue::dir_jobs(c);
    let link_error = queue::link_by_squeue(c, &mut jobs, queue::DEFAULT_TIMEOUT);
    let settled = queue::settle_submissions(c, &jobs, link_error.is_none(), unix_now());
    (jobs, link_error, settled)
}

/// Node states from sinfo, one clause per state: "idle c1,q1,q2; down* c2".
fn node_states() -> String {
    let args: Vec<String> = ["--noheader", "--Node", "--format=%N|%T"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    match queue::run_bounded(&queue::program("sinfo"), &args, queue::DEFAULT_TIMEOUT) {
        Ok(text) => {
            let mut by_node: BTreeMap<&str, &str> = BTreeMap::new();
            for line in text.lines() {
                if let Some((node, state)) = line.split_once('|') {
                    by_node.insert(node.trim(), state.trim());
                }
            }
            let mut by_state: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
            for (node, state) in by_node {
                by_state.entry(state).or_default().push(node);
            }
            by_state
                .into_iter()
                .map(|(state, nodes)| {
                    if nodes.len() <= 8 {
                        format!("{state} {}", nodes.join(","))
                    } else {
                        format!("{state} {} nodes", nodes.len())
                    }
                })
                .collect::<Vec<_>>()
                .join("; ")
        }
        Err(e) => format!("sinfo: {e}"),
    }
}

fn bar(done: u64, failed: u64, expected: u64, width: u64) -> String {
    if expected == 0 {
        return String::new();
    }
    let d = (done * width / expected).min(width);
    let f = (failed * width / expected).min(width - d);
    format!(
        "[{}{}{}]",
        "#".repeat(d as usize),
        "x".repeat(f as usize),
        ".".repeat((width - d - f) as usize)
    )
}

/// How a watch ended, when it did.
enum End {
    Settled,
    NothingLeft,
    Stuck,
}

/// Why `watch DIR` cannot read DIR, said plainly (another user's 0700 dir is "permission
/// denied", not "waiting").
fn check_readable(dir: &Path) -> Result<(), Fail> {
    let state = Layout::new(dir).state_dir();
    match std::fs::read_dir(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            return Err(Fail::error(format!(
                "{}: permission denied: cannot watch a frame dir you may not read",
                dir.display()
            )));
        }
        Err(e) => return Err(Fail::error(format!("{}: {e}", dir.display()))),
        Ok(_) => {}
    }
    match std::fs::metadata(&state) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(Fail::error(format!(
            "{}: not found: no job was submitted with --frame-dir={} (nothing to watch)",
            state.display(),
            dir.display()
        ))),
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => Err(Fail::error(format!(
            "{}: permission denied: cannot watch a frame dir you may not read",
            state.display()
        ))),
        Err(e) => Err(Fail::error(format!("{}: {e}", state.display()))),
    }
}

pub fn run(dir: &Path, interval: f64, timeout: Option<f64>) -> Result<u8, Fail> {
    let layout = crate::layout(dir)?;
    check_readable(dir)?;
    install_sigint();
    let tty = std::io::stdout().is_terminal();
    let started = Instant::now();
    let mut last_line = String::new();
    // Each tick reads only what was written since the last one.
    let mut tracker = Tracker::new();
    loop {
        tracker.refresh(&layout).map_err(|e| {
            if e.kind() == std::io::ErrorKind::PermissionDenied {
                Fail::error(format!("{}: permission denied: {e}", dir.display()))
            } else {
                Fail::from(e)
            }
        })?;
        let mut s = merge::summarize(tracker.collection());
        let q = consult(&layout, &mut tracker, &mut s);
        let frames_line = format!(
            "{} done, {} failed, {} missing of {}",
            s.done, s.failed, s.missing, s.expected
        );
        let slurm_line = match q.live.state_line() {
            l if l.is_empty() => "slurm: nothing of this dir".to_string(),
            l => format!("slurm: {l}"),
        };
        let nodes = node_states();
        // Settled frames end the watch unless Slurm says something still runs (a resubmit);
        // "nothing left" and "stuck" are believed only when squeue answered.
        let end = if q.live.is_idle() && s.is_settled() {
            Some(End::Settled)
        } else if !q.queue_answered() {
            None
        } else if q.live.is_idle() && q.asked > 0 {
            Some(End::NothingLeft)
        } else if q.live.all_stuck() {
            Some(End::Stuck)
        } else {
            None
        };
        let mut out = std::io::stdout().lock();
        if tty {
            // A dashboard: the screen redrawn from the top.
            let _ = write!(out, "\x1b[H\x1b[2J");
            let _ = writeln!(
                out,
                "frames watch {}   (every {interval} s, Ctrl-C to stop)",
                dir.display()
            );
            let _ = writeln!(
                out,
                "frames: {} {frames_line}",
                bar(s.done, s.failed, s.expected, 40)
            );
            if !s.missing_ranges.is_empty() {
                let _ = writeln!(out, "missing: {}", s.missing_ranges);
            }
            if !s.failed_ranges.is_empty() {
                let _ = writeln!(out, "failed:  {}", s.failed_ranges);
            }
            let _ = writeln!(out, "nodes:  {nodes}");
            for l in q.lines() {
                let _ = writeln!(out, "{l}");
            }
        } else {
            let line = format!("{frames_line}; {slurm_line}; nodes: {nodes}");
            if line != last_line {
                let _ = writeln!(out, "{line}");
                last_line = line;
            }
        }
        if let Some(end) = end {
            if !tty {
                for l in q.lines() {
                    let _ = writeln!(out, "{l}");
                }
            }
            return Ok(match end {
                End::Settled => {
                    let _ = writeln!(out, "all {} expected frames are done or failed", s.expected);
                    if !s.failed_ranges.is_empty() {
                        let _ = writeln!(out, "failed: {}", s.failed_ranges);
                    }
                    exit::OK
                }
                End::NothingLeft => {
                    let _ = writeln!(
                        out,
                        "watch ended: nothing of {} is pending or running in Slurm; missing and failed: {}",
                        dir.display(),
                        s.rerun_ranges
                    );
                    exit::INCOMPLETE
                }
                End::Stuck => {
                    let _ = writeln!(
                        out,
                        "watch ended: what is left of {} is pending and will not start by itself",
                        dir.display()
                    );
                    exit::INCOMPLETE
                }
            });
        }
        if let Some(t) = timeout
            && started.elapsed().as_secs_f64() >= t
        {
            for l in q.lines() {
                let _ = writeln!(out, "{l}");
            }
            let _ = writeln!(out, "watch ended: --timeout {t} s reached, {slurm_line}");
            return Ok(exit::TIMEOUT);
        }
        drop(out);
        if sleep_interruptible(Duration::from_secs_f64(interval)) {
            eprintln!("frames: interrupted");
            return Ok(exit::INTERRUPTED);
        }
    }
}

/// Seconds since the Unix epoch (0 if the clock is before it).
fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bar_shows_done_and_failed_shares() {
        assert_eq!(bar(5, 0, 10, 10), "[#####.....]");
        assert_eq!(bar(5, 5, 10, 10), "[#####xxxxx]");
        assert_eq!(bar(0, 0, 0, 10), "");
    }
}
