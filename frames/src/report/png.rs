//! `frames report --png`: the contact sheet and the timeline as PNG images (for a chat message
//! or a paper), readable on their own: a title and legend on each, frame numbers and failure
//! reasons under the thumbnails, node names and figures beside the timeline's rows and a time
//! axis above them. Drawn with the image crate (thumbnails copied into a canvas, bars as
//! rectangles) and text.rs's labels.
use std::path::Path;

use image::{Rgb, RgbImage};

use super::html::{seconds, slow_nodes, tick_step};
use super::model::{Outcome, Report, TileState};
use super::text::{self, LARGE, LARGE_BOLD, SMALL, SMALL_BOLD};
use super::thumbs::Thumb;

pub const BG: Rgb<u8> = Rgb([250, 250, 250]);
pub const INK: Rgb<u8> = Rgb([34, 34, 34]);
pub const GREY_INK: Rgb<u8> = Rgb([97, 97, 97]);
const DONE: Rgb<u8> = Rgb([67, 160, 71]);
pub const FAILED: Rgb<u8> = Rgb([211, 47, 47]);
pub const FAILED_INK: Rgb<u8> = Rgb([183, 28, 28]);
const SUPERSEDED: Rgb<u8> = Rgb([158, 158, 158]);
const MISSING: Rgb<u8> = Rgb([221, 221, 221]);
const MISSING_X: Rgb<u8> = Rgb([150, 150, 150]);
const SEPARATOR: Rgb<u8> = Rgb([189, 189, 189]);
const GRID: Rgb<u8> = Rgb([230, 230, 230]);
pub const RERUN: Rgb<u8> = Rgb([21, 101, 192]);
pub const SLOW: Rgb<u8> = Rgb([230, 81, 0]);

/// The widest a contact sheet PNG gets; cells shrink to fit (10,000 frames: ~54 px cells).
const MAX_SHEET_W: u32 = 4096;
/// The narrowest: room for the title and legend.
const MIN_SHEET_W: u32 = 720;
/// Height of a caption line under a thumbnail.
pub const CAPTION_LINE: u32 = 17;
/// Height of a title or legend line.
pub const HEAD_LINE: u32 = 24;
pub const MARGIN: u32 = 10;

fn fill(img: &mut RgbImage, x: u32, y: u32, w: u32, h: u32, c: Rgb<u8>) {
    for yy in y..(y + h).min(img.height()) {
        for xx in x..(x + w).min(img.width()) {
            img.put_pixel(xx, yy, c);
        }
    }
}

fn frame_rect(img: &mut RgbImage, x: u32, y: u32, w: u32, h: u32, t: u32, c: Rgb<u8>) {
    fill(img, x, y, w, t, c);
    fill(img, x, (y + h).saturating_sub(t), w, t, c);
    fill(img, x, y, t, h, c);
    fill(img, (x + w).saturating_sub(t), y, t, h, c);
}

/// The grey box with a cross that stands for a frame without an image.
fn placeholder(img: &mut RgbImage, x: u32, y: u32, w: u32, h: u32) {
    fill(img, x, y, w, h, MISSING);
    for k in 0..w {
        let d = k * h / w.max(1);
        fill(img, x + k, y + d, 1, 1, MISSING_X);
        fill(img, x + k, y + h.saturating_sub(1 + d), 1, 1, MISSING_X);
    }
}

/// A legend entry: a swatch drawn by `swatch` at (x, y) in a `size` box, then its label;
/// returns the x after it.
fn legend(
    img: &mut RgbImage,
    x: u32,
    y: u32,
    label: &str,
    swatch: impl FnOnce(&mut RgbImage, u32, u32, u32),
) -> u32 {
    let size = 14;
    swatch(img, x, y + 3, size);
    text::draw(img, x + size + 5, y, label, LARGE, INK) + 18
}

fn save(img: &RgbImage, out: &Path) -> Result<(), String> {
    img.save_with_format(out, image::ImageFormat::Png)
        .map_err(|e| format!("{}: {e}", out.display()))
}

/// Columns and cell size of the sheet: about as wide as tall in pixels, at most
/// MAX_SHEET_W wide, cells no larger than a thumbnail.
pub fn sheet_grid(n: usize, thumb: (u32, u32)) -> (u32, u32, u32) {
    let (tw, th) = (thumb.0.max(1), thumb.1.max(1));
    let n = n.max(1) as f64;
    let cols = ((n * f64::from(th) / f64::from(tw)).sqrt().ceil() as u32).clamp(1, 400);
    let pad = 4;
    let cell_w = (MAX_SHEET_W / cols).min(tw + pad).max(8);
    let cell_h = ((cell_w - pad) * th / tw + pad).max(6);
    (cols, cell_w, cell_h)
}

/// Where the contact sheet puts things (shared with the tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SheetLayout {
    pub cols: u32,
    pub width: u32,
    /// Height of the title and legend above the cells.
    pub head_h: u32,
    pub cell_w: u32,
    /// Height of a cell: the thumbnail's box and its caption lines.
    pub cell_h: u32,
    pub pic_h: u32,
    /// Caption lines under each thumbnail: the frame number (and FAILED, missing, rerun),
    /// then its reason and node when cells are wide enough to say them.
    pub caption_lines: u32,
}

impl SheetLayout {
    /// Top left of tile `i`'s thumbnail box (its caption starts `pic_h - 2` below).
    pub fn tile(&self, i: usize) -> (u32, u32) {
        let i = i as u32;
        (
            (i % self.cols) * self.cell_w + 2,
            self.head_h + (i / self.cols) * self.cell_h + 2,
        )
    }
}

/// Title and legend lines above the cells.
const SHEET_HEAD_LINES: u32 = 4;

pub fn sheet_layout(r: &Report, thumb: (u32, u32)) -> SheetLayout {
    let (cols, cell_w, pic_h) = sheet_grid(r.tiles.len(), thumb);
    // A short run fills the title's width rather than leaving it to two thin columns.
    let cols = cols.max((MIN_SHEET_W / cell_w).min(r.tiles.len() as u32));
    let says_why = r
        .tiles
        .iter()
        .any(|t| t.reason.is_some() || t.rerun.is_some());
    let caption_lines = if says_why && cell_w >= 14 * SMALL.char_w() {
        2
    } else {
        1
    };
    SheetLayout {
        cols,
        width: (cols * cell_w).max(MIN_SHEET_W),
        head_h: MARGIN + SHEET_HEAD_LINES * HEAD_LINE,
        cell_w,
        cell_h: pic_h + caption_lines * CAPTION_LINE + 2,
        pic_h,
        caption_lines,
    }
}

/// The contact sheet: a title, the counts, a legend and the failed and missing ranges, then
/// the thumbnails in index order, each with its frame number below; failed ones framed red
/// with FAILED and the reason, missing ones a grey box with a cross, reruns underlined blue.
pub fn contact_sheet(
    r: &Report,
    thumbs: &[Thumb],
    assets: &Path,
    thumb_box: (u32, u32),
    out: &Path,
) -> Result<(), String> {
    let l = sheet_layout(r, thumb_box);
    let rows = (r.tiles.len() as u32).div_ceil(l.cols).max(1);
    let mut img = RgbImage::from_pixel(l.width, l.head_h + rows * l.cell_h + MARGIN, BG);
    let text_w = l.width - 2 * MARGIN;
    let mut y = MARGIN;
    text::draw(
        &mut img,
        MARGIN,
        y,
        &LARGE_BOLD.clip(&format!("Contact sheet of {}", r.dir), text_w),
        LARGE_BOLD,
        INK,
    );
    y += HEAD_LINE;
    text::draw(
        &mut img,
        MARGIN,
        y,
        &LARGE.clip(
            &format!(
                "{} frames in index order (row by row): {} done, {} failed, {} missing",
                r.tiles.len(),
                r.done,
                r.failed,
                r.missing
            ),
            text_w,
        ),
        LARGE,
        INK,
    );
    y += HEAD_LINE;
    let mut x = MARGIN;
    x = legend(&mut img, x, y, "failed", |img, x, y, s| {
        fill(img, x, y, s, s, MISSING);
        frame_rect(img, x, y, s, s, 3, FAILED);
    });
    x = legend(&mut img, x, y, "missing (no frame)", |img, x, y, s| {
        placeholder(img, x, y, s, s)
    });
    legend(&mut img, x, y, "rerun by a resubmission", |img, x, y, s| {
        fill(img, x, y, s, s, MISSING);
        fill(img, x, y + s - 3, s, 3, RERUN);
    });
    y += HEAD_LINE;
    let none = |s: &str| {
        if s.is_empty() {
            "none".to_owned()
        } else {
            s.to_owned()
        }
    };
    text::draw(
        &mut img,
        MARGIN,
        y,
        &LARGE.clip(
            &format!(
                "failed: {}   missing: {}",
                none(&r.failed_ranges),
                none(&r.missing_ranges)
            ),
            text_w,
        ),
        LARGE,
        if r.failed > 0 { FAILED_INK } else { INK },
    );

    let (iw, ih) = (l.cell_w - 4, l.pic_h - 4);
    for (i, t) in r.tiles.iter().enumerate() {
        let (x, y) = l.tile(i);
        let pic = match thumbs.get(i) {
            Some(Thumb::Made { file, .. }) => image::open(assets.join(file)).ok(),
            _ => None,
        };
        match pic {
            Some(p) => {
                let small = p
                    .resize(iw, ih, image::imageops::FilterType::Triangle)
                    .to_rgb8();
                let (ox, oy) = ((iw - small.width()) / 2, (ih - small.height()) / 2);
                image::imageops::replace(&mut img, &small, i64::from(x + ox), i64::from(y + oy));
            }
            None => placeholder(&mut img, x, y, iw, ih),
        }
        let border = (iw / 40).max(2);
        if t.state == TileState::Failed {
            frame_rect(&mut img, x, y, iw, ih, border, FAILED);
        }
        if t.rerun.is_some() && t.state != TileState::Failed {
            fill(&mut img, x, y + ih - border, iw, border, RERUN);
        }
        caption(&mut img, &l, x, y + l.pic_h - 2, t);
    }
    save(&img, out)
}

/// A tile's caption: "47 FAILED" (or missing, rerun) and, on a second line when there is
/// one, "exit code 3, node c2".
fn caption(img: &mut RgbImage, l: &SheetLayout, x: u32, y: u32, t: &super::model::Tile) {
    let w = l.cell_w - 4;
    let mut cx = text::draw(
        img,
        x,
        y,
        &SMALL_BOLD.clip(&t.index.to_string(), w),
        SMALL_BOLD,
        INK,
    );
    let tag = match t.state {
        TileState::Failed => Some((" FAILED", FAILED_INK)),
        TileState::Missing => Some((" missing", GREY_INK)),
        _ if t.rerun.is_some() => Some((" rerun", RERUN)),
        _ => None,
    };
    if let Some((tag, c)) = tag
        && cx + SMALL_BOLD.width(tag) <= x + w
    {
        cx = text::draw(img, cx, y, tag, SMALL_BOLD, c);
    }
    let _ = cx;
    if l.caption_lines < 2 {
        return;
    }
    let why = match (&t.reason, &t.node, &t.rerun) {
        (Some(r), Some(n), _) if !r.contains(n.as_str()) => format!("{r}, node {n}"),
        (Some(r), _, _) => r.clone(),
        (None, _, Some(rerun)) => rerun.clone(),
        _ => return,
    };
    let colour = if t.state == TileState::Failed {
        FAILED_INK
    } else {
        GREY_INK
    };
    text::draw(
        img,
        x,
        y + CAPTION_LINE,
        &SMALL.clip(&why, w),
        SMALL,
        colour,
    );
}

/// Where the timeline puts things (shared with the tests).
#[derive(Debug, Clone, PartialEq)]
pub struct TimelineLayout {
    pub width: u32,
    pub height: u32,
    /// Left edge of the plot (the node labels are left of it).
    pub plot_x: u32,
    pub plot_w: u32,
    /// Baseline row of the time axis' labels.
    pub axis_y: u32,
    /// Top and height of each node's row, in the report's node order.
    pub rows: Vec<(u32, u32)>,
}

const LABEL_W: u32 = 260;
const TL_PLOT_W: u32 = 1300;
const TL_LANE_H: u32 = 14;
const TL_LANE_GAP: u32 = 3;
pub const TL_ROW_PAD: u32 = 6;
/// Node name, its counts, its median: three lines of label per row.
const LABEL_LINES: u32 = 3;

pub fn timeline_layout(r: &Report) -> TimelineLayout {
    let axis_y = MARGIN + 2 * HEAD_LINE + 6;
    let mut y = axis_y + HEAD_LINE;
    let rows = r
        .nodes
        .iter()
        .map(|n| {
            let lanes = n.lanes.max(1) as u32 * (TL_LANE_H + TL_LANE_GAP);
            let h = lanes.max(LABEL_LINES * (SMALL.size + 2) + 2) + 2 * TL_ROW_PAD;
            let row = (y, h);
            y += h;
            row
        })
        .collect();
    TimelineLayout {
        width: LABEL_W + TL_PLOT_W + 50,
        height: y + MARGIN,
        plot_x: LABEL_W,
        plot_w: TL_PLOT_W,
        axis_y,
        rows,
    }
}

/// The timeline: a title and legend, a time axis (seconds since the first start), then one
/// row per node (page order) labelled with its name, task and failure counts and median task
/// time (SLOW when half again the typical one), with a bar per task attempt.
pub fn timeline(r: &Report, out: &Path) -> Result<(), String> {
    let l = timeline_layout(r);
    let mut img = RgbImage::from_pixel(l.width, l.height, BG);
    let tasks: usize = r.nodes.iter().map(|n| n.tasks).sum();
    let mut title = format!(
        "Timeline of {}: {tasks} task attempts on {} node(s)",
        r.dir,
        r.nodes.len()
    );
    if let Some((a, b)) = r.span {
        title.push_str(&format!(
            ", {} from first start to last end",
            seconds(b - a)
        ));
    }
    let text_w = l.width - 2 * MARGIN;
    // The path is what gets cut when the title is too long.
    let title = if LARGE_BOLD.width(&title) > text_w {
        let rest = title.split_once(": ").map_or("", |x| x.1);
        let dir_w = text_w.saturating_sub(LARGE_BOLD.width(&format!("Timeline of : {rest}")));
        format!("Timeline of {}: {rest}", LARGE_BOLD.clip(&r.dir, dir_w))
    } else {
        title
    };
    text::draw(
        &mut img,
        MARGIN,
        MARGIN,
        &LARGE_BOLD.clip(&title, text_w),
        LARGE_BOLD,
        INK,
    );
    let y = MARGIN + HEAD_LINE;
    let mut x = MARGIN;
    x = text::draw(&mut img, x, y, "One bar per task attempt:", LARGE, INK) + 12;
    x = legend(&mut img, x, y, "done", |img, x, y, s| {
        fill(img, x, y, s, s, DONE)
    });
    x = legend(&mut img, x, y, "failed", |img, x, y, s| {
        fill(img, x, y, s, s, FAILED)
    });
    legend(
        &mut img,
        x,
        y,
        "superseded (requeued, or rerun by a later job)",
        |img, x, y, s| fill(img, x, y, s, s, SUPERSEDED),
    );
    let Some((t0, t1)) = r.span else {
        text::draw(
            &mut img,
            MARGIN,
            l.axis_y,
            "No task recorded a start and end time yet.",
            LARGE,
            INK,
        );
        return save(&img, out);
    };
    let span = (t1 - t0).max(1e-3);
    let px = |t: f64| l.plot_x + ((t - t0) / span * f64::from(l.plot_w)) as u32;
    let top = l.axis_y + HEAD_LINE - 4;
    text::draw(
        &mut img,
        MARGIN,
        l.axis_y,
        "time since first start",
        SMALL,
        GREY_INK,
    );
    let step = tick_step(span, 8.0);
    let mut t = 0.0;
    while t <= span + 1e-9 {
        let xt = px(t0 + t);
        fill(&mut img, xt, top, 1, l.height - MARGIN - top, GRID);
        let label = seconds(t);
        let lw = SMALL.width(&label);
        text::draw(
            &mut img,
            xt.saturating_sub(lw / 2),
            l.axis_y,
            &label,
            SMALL,
            INK,
        );
        t += step;
    }
    let slow = slow_nodes(r);
    for ((n, &(y, h)), &slow) in r.nodes.iter().zip(&l.rows).zip(&slow) {
        fill(&mut img, 0, y, l.width, 1, SEPARATOR);
        node_label(&mut img, n, slow, MARGIN, y + TL_ROW_PAD);
        let lanes_h = n.lanes.max(1) as u32 * (TL_LANE_H + TL_LANE_GAP);
        let lane_top = y + (h - lanes_h) / 2;
        for b in &n.bars {
            let x0 = px(b.start);
            // At least 3 px: a task that ended at once (a failed start) stays visible.
            let x1 = px(b.end).max(x0 + 3);
            let by = lane_top + b.lane as u32 * (TL_LANE_H + TL_LANE_GAP);
            let colour = match b.outcome {
                Outcome::Done => DONE,
                Outcome::Failed => FAILED,
                Outcome::Superseded => SUPERSEDED,
            };
            fill(&mut img, x0, by, x1 - x0, TL_LANE_H, colour);
        }
    }
    if let Some(&(y, h)) = l.rows.last() {
        fill(&mut img, 0, y + h, l.width, 1, SEPARATOR);
    }
    save(&img, out)
}

/// The three lines left of a node's row.
fn node_label(img: &mut RgbImage, n: &super::model::NodeRow, slow: bool, x: u32, y: u32) {
    let w = LABEL_W - x - 8;
    let line = SMALL.size + 2;
    text::draw(img, x, y, &SMALL_BOLD.clip(&n.node, w), SMALL_BOLD, INK);
    let counts = format!(
        "{} tasks, {} failed{}",
        n.tasks,
        n.failures,
        super::html::lost_note(n)
    );
    let colour = if n.failures + n.lost > 0 {
        FAILED_INK
    } else {
        INK
    };
    text::draw(img, x, y + line, &SMALL.clip(&counts, w), SMALL, colour);
    if let Some(m) = n.median {
        let cx = text::draw(
            img,
            x,
            y + 2 * line,
            &format!("median {}", seconds(m)),
            SMALL,
            INK,
        );
        if slow {
            text::draw(img, cx, y + 2 * line, " SLOW", SMALL_BOLD, SLOW);
        }
    }
}

/// A font's pixels for a label, for the tests: `s` drawn on the background.
#[cfg(test)]
pub fn rendered(s: &str, font: text::Font, colour: Rgb<u8>) -> RgbImage {
    let mut img = RgbImage::from_pixel(font.width(s), font.size, BG);
    text::draw(&mut img, 0, 0, s, font, colour);
    img
}
