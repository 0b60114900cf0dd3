//! `frames report DIR [-o report.html] [--png] [--jobs N]`: a run at a glance, as one HTML
//! page that opens in any browser without network access: the contact sheet (a thumbnail per
//! expected frame; failed ones marked with reason and node, missing ones as placeholders),
//! the timeline (a row per node, a bar per task attempt), and the results table with the
//! missing and failed ranges and the `frames resubmit` commands (computed as `frames
//! missing`/`resubmit` do, after asking Slurm what it still runs). Thumbnails and the PNGs go
//! to one folder beside the page (`report_files/` for `report.html`), which is also the
//! thumbnail cache (by BLAKE3 of the frame). Steps: model.rs (what is shown), thumbs.rs,
//! html.rs, png.rs (text.rs: its labels).
pub mod html;
pub mod model;
pub mod png;
pub mod text;
pub mod thumbs;

use std::path::{Component, Path, PathBuf};
use std::time::Instant;

use frames_core::Layout;

use crate::progress::Progress;
use crate::{Fail, exit};
use thumbs::Thumb;

/// Options of `frames report`.
#[derive(Debug, Clone)]
pub struct Options {
    pub output: PathBuf,
    pub png: bool,
    /// Threads for thumbnails (default: every core).
    pub jobs: Option<usize>,
    /// Do not ask squeue/sacct (the report then judges by the records alone).
    pub no_queue: bool,
}

/// `to` relative to the directory `from` ("../frames/bh/frame_0001.png"); `to` as is when
/// they share nothing but the root.
pub fn relative(from: &Path, to: &Path) -> String {
    let a: Vec<Component> = from.components().collect();
    let b: Vec<Component> = to.components().collect();
    let common = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    if common <= 1 {
        return to.display().to_string();
    }
    let mut out = PathBuf::new();
    for _ in common..a.len() {
        out.push("..");
    }
    for c in &b[common..] {
        out.push(c.as_os_str());
    }
    out.display().to_string()
}

/// The assets folder of a page: `report.html` → `report_files`.
pub fn assets_name(output: &Path) -> String {
    let stem = output
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "report".into());
    format!("{stem}_files")
}

/// The box every thumbnail is drawn in: the first thumbnail's size (frames of one run share
/// a size), else the demo's 16:9.
fn thumb_box(assets: &Path, thumbs: &[Thumb]) -> (u32, u32) {
    thumbs
        .iter()
        .find_map(|t| match t {
            Thumb::Made { file, .. } => image::image_dimensions(assets.join(file)).ok(),
            _ => None,
        })
        .unwrap_or((thumbs::THUMB_W, thumbs::THUMB_W * 9 / 16))
}

pub fn run(dir: &Path, opts: &Options) -> Result<u8, Fail> {
    let progress = Progress::new("frames report");
    let (mut t, mut s) = crate::summary_of(dir)?;
    let mut notes = Vec::new();
    let mut lost = model::Lost::new();
    let mut lost_per_node = std::collections::BTreeMap::new();
    if opts.no_queue {
        notes.push("Slurm was not asked (--no-queue): judged by the records alone".to_owned());
    } else {
        progress.step("asking Slurm what it still runs of the dir (squeue, sacct)");
        let q = crate::watch::consult(&Layout::new(dir), &mut t, &mut s);
        for e in &q.live.lost {
            if let Some(i) = e.array_task {
                let node = if e.nodes.is_empty() { "?" } else { &e.nodes };
                *lost_per_node.entry(node.to_owned()).or_insert(0) += 1;
                lost.insert(i, format!("lost with node {node} ({})", e.raw_state));
            }
        }
        notes.extend(q.lines());
    }
    let c = t.collection();
    let mut report = model::build(c, &s, &lost, notes);
    model::count_lost(&mut report, &lost_per_node);
    if let Ok(abs) = std::fs::canonicalize(dir) {
        report.dir = abs.display().to_string();
    }
    progress.step(&format!(
        "{}: {} expected, {} done, {} failed, {} missing; {} task records on {} node(s)",
        dir.display(),
        report.expected,
        report.done,
        report.failed,
        report.missing,
        c.records.len(),
        report.nodes.len()
    ));

    let out_dir = match opts.output.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let assets_rel = assets_name(&opts.output);
    let assets = out_dir.join(&assets_rel);
    std::fs::create_dir_all(&assets)
        .map_err(|e| Fail::error(format!("cannot create {}: {e}", assets.display())))?;
    let out_abs = std::fs::canonicalize(&out_dir).unwrap_or(out_dir.clone());

    let jobs = opts
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let thumbs: Vec<Thumb> = if report.has_frames {
        let started = Instant::now();
        progress.step(&format!(
            "thumbnails of {} frames on {jobs} thread(s), cached in {}",
            report.tiles.len(),
            assets.join("thumbs").display()
        ));
        let bar = progress.bar(report.tiles.len(), "thumbnails");
        let tick = || bar.inc(1);
        let (thumbs, made) =
            thumbs::make_all(&report.tiles, &assets, jobs, &tick).map_err(Fail::error)?;
        bar.finish_and_clear();
        progress.step(&format!(
            "thumbnails: {} new, {} cached, {} unreadable ({:.2} s)",
            made.new,
            made.cached,
            made.errors,
            started.elapsed().as_secs_f64()
        ));
        thumbs::prune(&assets, &thumbs);
        thumbs
    } else {
        Vec::new()
    };
    let links: Vec<Option<String>> = report
        .tiles
        .iter()
        .zip(&thumbs)
        .map(|(t, th)| match th {
            Thumb::Made { .. } => t.frame.as_deref().map(|f| {
                let f = std::fs::canonicalize(f).unwrap_or_else(|_| f.to_path_buf());
                relative(&out_abs, &f)
            }),
            _ => None,
        })
        .collect();
    let tbox = thumb_box(&assets, &thumbs);

    let mut pngs = Vec::new();
    if opts.png {
        progress.step("drawing the PNGs");
        if report.has_frames {
            let path = assets.join("contact-sheet.png");
            png::contact_sheet(&report, &thumbs, &assets, tbox, &path).map_err(Fail::error)?;
            pngs.push(format!("{assets_rel}/contact-sheet.png"));
        }
        png::timeline(&report, &assets.join("timeline.png")).map_err(Fail::error)?;
        pngs.push(format!("{assets_rel}/timeline.png"));
    }

    let page = html::page(&html::Page {
        report: &report,
        thumbs: &thumbs,
        links: &links,
        assets: &assets_rel,
        thumb_box: tbox,
        pngs: &pngs,
    });
    host_io::write_atomic(&opts.output, page.as_bytes())
        .map_err(|e| Fail::error(format!("cannot write {}: {e}", opts.output.display())))?;
    println!(
        "{}: report of {} ({} expected, {} done, {} failed, {} missing); images in {}",
        opts.output.display(),
        dir.display(),
        report.expected,
        report.done,
        report.failed,
        report.missing,
        assets.display()
    );
    for p in &pngs {
        println!("{}", out_dir.join(p).display());
    }
    Ok(exit::OK)
}

#[cfg(test)]
mod tests;
