//! `frames gather DIR`: brings a node-local frame dir back to the submit host through Slurm
//! itself: one `srun -N1 -w NODE frames serve-node DIR` per node, in parallel, each streaming
//! what this host lacks over srun's stdout (frames_core::gather has the stream and the checks);
//! then the usual merge. `serve-node` is the node side.
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;

use frames_core::Layout;
use frames_core::gather::{self, Gathered, NodeGather, Received};
use frames_core::merge;
use frames_core::queue;

use crate::{Fail, exit};

pub struct Options {
    pub to: Option<PathBuf>,
    pub nodes: Option<String>,
    pub frames_bin: Option<PathBuf>,
    /// srun --immediate: seconds to wait for the node's resources.
    pub immediate: u32,
}

/// `frames serve-node DIR`: reads the stems this host has (one a line) from stdin, writes the
/// stream of the rest to stdout.
pub fn serve_node(dir: &Path) -> Result<u8, Fail> {
    let mut have = BTreeSet::new();
    for line in std::io::stdin().lock().lines() {
        let line = line?;
        if !line.is_empty() {
            have.insert(line);
        }
    }
    let layout = Layout::new(dir);
    let mut out = std::io::BufWriter::with_capacity(1 << 20, std::io::stdout().lock());
    if !layout.records_dir().is_dir() {
        writeln!(out, "{{\"end\":0}}")?;
        out.flush()?;
        return Ok(exit::OK);
    }
    gather::serve(&layout, &have, &mut out)?;
    Ok(exit::OK)
}

fn run_text(program: &str, args: &[String]) -> Result<String, String> {
    queue::run_bounded(&queue::program(program), args, queue::DEFAULT_TIMEOUT)
        .map_err(|e| e.to_string())
}

/// Expands a Slurm hostlist ("c[1-2],q1") with scontrol.
fn hostnames(list: &str) -> Result<Vec<String>, String> {
    let text = run_text(
        "scontrol",
        &["show".into(), "hostnames".into(), list.into()],
    )?;
    Ok(text.split_whitespace().map(str::to_owned).collect())
}

/// Node → (state, first partition) from sinfo.
fn node_states() -> Result<BTreeMap<String, (String, String)>, String> {
    let text = run_text(
        "sinfo",
        &["--noheader".into(), "-N".into(), "--format=%N|%T|%P".into()],
    )?;
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let mut f = line.split('|');
        let (Some(n), Some(st), Some(p)) = (f.next(), f.next(), f.next()) else {
            continue;
        };
        out.entry(n.to_owned())
            .or_insert((st.to_owned(), p.trim_end_matches('*').to_owned()));
    }
    Ok(out)
}

/// The nodes that ran the dir's jobs: nodes of the records here, and the node lists Slurm
/// still has for the dir's jobs (squeue, sacct). Empty when nothing tells.
fn dir_nodes(src: &Layout, dest: &Layout) -> BTreeSet<String> {
    let mut nodes = BTreeSet::new();
    for layout in [src, dest] {
        let Ok(c) = merge::collect(layout) else {
            continue;
        };
        nodes.extend(c.records.iter().map(|r| r.node.clone()));
        let mut jobs = queue::dir_jobs(&c);
        queue::link_by_squeue(&c, &mut jobs, queue::DEFAULT_TIMEOUT);
        let ids = jobs.ids_to_ask();
        let view = queue::ask(&ids, queue::DEFAULT_TIMEOUT);
        let entries = ids
            .iter()
            .flat_map(|&id| view.job(id).into_iter().chain(view.tasks_of(id)));
        for e in entries {
            if !e.nodes.is_empty()
                && let Ok(list) = hostnames(&e.nodes)
            {
                nodes.extend(list);
            }
        }
    }
    nodes
}

fn unreachable_state(state: &str) -> bool {
    let s = state.to_ascii_lowercase();
    s.ends_with('*')
        || [
            "down", "drain", "fail", "maint", "power", "unknown", "future",
        ]
        .iter()
        .any(|w| s.contains(w))
}

pub fn run(dir: &Path, o: &Options) -> Result<u8, Fail> {
    if !dir.is_absolute() {
        return Err(Fail::error(format!(
            "{}: expected the absolute --frame-dir path the jobs used",
            dir.display()
        )));
    }
    let src = Layout::new(dir);
    let dest = Layout::new(o.to.clone().unwrap_or_else(|| dir.to_path_buf()));
    let progress = crate::progress::Progress::new("frames gather");
    dest.create_dirs()?;
    if dest.root() != src.root() {
        copy_submissions(&src, &dest)?;
    }
    let states = node_states().map_err(|e| Fail::error(format!("sinfo: {e}")))?;
    let nodes: Vec<String> = match &o.nodes {
        Some(list) => hostnames(list).map_err(|e| Fail::error(format!("--nodes {list}: {e}")))?,
        None => {
            let found = dir_nodes(&src, &dest);
            if found.is_empty() {
                // Slurm forgot the jobs (no accounting, past MinJobAge): ask every node.
                states.keys().cloned().collect()
            } else {
                found.into_iter().collect()
            }
        }
    };
    let have = gather::have(&dest)?;
    let have_text: String = have.iter().map(|s| format!("{s}\n")).collect();
    let bin = match &o.frames_bin {
        Some(b) => b.clone(),
        None => std::env::current_exe()?,
    };
    progress.step(&format!(
        "{} node(s): {}; {} record(s) already here",
        nodes.len(),
        nodes.join(","),
        have.len()
    ));
    let bar = progress.bar(0, "records");
    let totals = Mutex::new(0u64);
    let mut results: BTreeMap<String, NodeGather> = BTreeMap::new();
    std::thread::scope(|scope| {
        let mut handles = Vec::new();
        for node in &nodes {
            let state = states.get(node);
            let why = match state {
                None => Some("not a node Slurm knows".to_owned()),
                Some((st, _)) if unreachable_state(st) => Some(format!("node state {st}")),
                _ => None,
            };
            if let Some(why) = why {
                results.insert(
                    node.clone(),
                    NodeGather {
                        error: Some(format!("unreachable: {why}")),
                        ..Default::default()
                    },
                );
                continue;
            }
            let partition = state.map(|s| s.1.clone()).unwrap_or_default();
            let (bin, have_text, src, dest, bar, totals) =
                (&bin, &have_text, &src, &dest, &bar, &totals);
            let imm = o.immediate;
            handles.push((
                node.clone(),
                scope.spawn(move || {
                    fetch(node, &partition, imm, bin, have_text, src, dest, |got| {
                        let mut t = totals.lock().unwrap_or_else(|e| e.into_inner());
                        *t += 1;
                        bar.set_position(*t);
                        let _ = got;
                    })
                }),
            ));
        }
        for (node, h) in handles {
            let r = h
                .join()
                .unwrap_or_else(|_| Err("gather thread panicked".into()));
            results.insert(
                node,
                r.unwrap_or_else(|e| NodeGather {
                    error: Some(e),
                    ..Default::default()
                }),
            );
        }
    });
    bar.finish_and_clear();
    let mut gathered = Gathered::read(&dest).unwrap_or_default();
    gathered.time = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    let mut code = exit::OK;
    let (mut records, mut bad) = (0, 0);
    for (node, g) in &results {
        records += g.received;
        match &g.error {
            Some(e) => {
                eprintln!("frames gather: unreachable on {node}: {e}");
                code = exit::INCOMPLETE;
            }
            None => progress.step(&format!("{node}: {} new record(s)", g.received)),
        }
        for c in &g.corrupt {
            eprintln!("frames gather: {c}");
            bad += 1;
            code = exit::INCOMPLETE;
        }
        gathered.nodes.insert(node.clone(), g.clone());
    }
    gathered.write(&dest)?;
    let s = merge::merge(&dest)?;
    println!(
        "{}: gathered {records} new record(s) from {} node(s){}; {} expected, {} done, {} failed, {} missing{}",
        dest.root().display(),
        results.values().filter(|g| g.error.is_none()).count(),
        if bad > 0 {
            format!(", {bad} frame(s) refused (checksum mismatch)")
        } else {
            String::new()
        },
        s.expected,
        s.done,
        s.failed,
        s.missing,
        match gathered.unreachable() {
            u if u.is_empty() => String::new(),
            u => format!(
                "; unreachable on {}",
                u.iter().map(|x| x.0.as_str()).collect::<Vec<_>>().join(",")
            ),
        }
    );
    Ok(code)
}

/// The submissions recorded in DIR on this host, into the --to dir (status and resubmit need them).
fn copy_submissions(src: &Layout, dest: &Layout) -> Result<(), Fail> {
    let Ok((subs, _)) = frames_core::submission::read_all(src) else {
        return Ok(());
    };
    for s in subs {
        frames_core::submission::update(dest, &s)?;
    }
    Ok(())
}

/// One node: srun the serve side, feed it the list, read its stream.
#[allow(clippy::too_many_arguments)]
fn fetch(
    node: &str,
    partition: &str,
    immediate: u32,
    bin: &Path,
    have: &str,
    src: &Layout,
    dest: &Layout,
    progress: impl FnMut(&Received),
) -> Result<NodeGather, String> {
    let mut cmd = Command::new(queue::program("srun"));
    cmd.args(["-N1", "-n1", "--quiet", "--job-name=frames-gather"])
        .arg(format!("--immediate={immediate}"))
        .arg(format!("--nodelist={node}"));
    if !partition.is_empty() {
        cmd.arg(format!("--partition={partition}"));
    }
    // A new allocation per node, also when gather runs inside a job.
    cmd.env_remove("SLURM_JOB_ID").env_remove("SLURM_JOBID");
    cmd.arg(bin)
        .arg("serve-node")
        .arg(src.root())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| format!("cannot run srun: {e}"))?;
    let mut stdin = child.stdin.take().ok_or("srun: no stdin")?;
    let stdout = child.stdout.take().ok_or("srun: no stdout")?;
    let mut stderr = child.stderr.take().ok_or("srun: no stderr")?;
    let have = have.to_owned();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(have.as_bytes());
    });
    let errs = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut stderr, &mut s);
        s
    });
    let mut input = std::io::BufReader::with_capacity(1 << 20, stdout);
    let got = gather::receive(dest, src.root(), node, &mut input, progress);
    drop(input);
    let _ = writer.join();
    let status = child.wait().map_err(|e| e.to_string())?;
    let errs = errs.join().unwrap_or_default();
    let got = got.map_err(|e| format!("writing here failed: {e}"))?;
    for p in &got.problems {
        eprintln!("frames gather: {p}");
    }
    let error = if got.complete {
        None
    } else {
        let last = errs
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("");
        Some(format!(
            "unreachable: srun {status}{}{}",
            if last.is_empty() { "" } else { ": " },
            last.trim()
        ))
    };
    Ok(NodeGather {
        error,
        received: got.records,
        corrupt: got.corrupt,
    })
}
