//! `frames report --png`: the contact sheet and the timeline as PNG images (for a chat message
//! or a paper). Drawn with the image crate: thumbnails copied into a canvas, bars as
//! rectangles. They carry no text (no font renderer is linked): frame order is row by row,
//! node rows are in the page's order; the page says what each is.
use std::path::Path;

use image::{Rgb, RgbImage};

use super::html::{LANE_GAP, LANE_H, ROW_PAD, row_height};
use super::model::{Outcome, Report, TileState};
use super::thumbs::Thumb;

const BG: Rgb<u8> = Rgb([250, 250, 250]);
const DONE: Rgb<u8> = Rgb([67, 160, 71]);
const FAILED: Rgb<u8> = Rgb([211, 47, 47]);
const SUPERSEDED: Rgb<u8> = Rgb([158, 158, 158]);
const MISSING: Rgb<u8> = Rgb([221, 221, 221]);
const MISSING_X: Rgb<u8> = Rgb([150, 150, 150]);
const SEPARATOR: Rgb<u8> = Rgb([189, 189, 189]);
const RERUN: Rgb<u8> = Rgb([21, 101, 192]);

/// The widest a contact sheet PNG gets; cells shrink to fit (10,000 frames: ~54 px cells).
const MAX_SHEET_W: u32 = 4096;

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

/// The contact sheet: thumbnails in index order; failed ones framed red, missing ones grey
/// with a cross, reruns underlined blue.
pub fn contact_sheet(
    r: &Report,
    thumbs: &[Thumb],
    assets: &Path,
    thumb_box: (u32, u32),
    out: &Path,
) -> Result<(), String> {
    let (cols, cw, ch) = sheet_grid(r.tiles.len(), thumb_box);
    let rows = (r.tiles.len() as u32).div_ceil(cols).max(1);
    let mut img = RgbImage::from_pixel(cols * cw, rows * ch, BG);
    let (iw, ih) = (cw - 4, ch - 4);
    for (i, t) in r.tiles.iter().enumerate() {
        let (x, y) = ((i as u32 % cols) * cw + 2, (i as u32 / cols) * ch + 2);
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
            None => {
                fill(&mut img, x, y, iw, ih, MISSING);
                for k in 0..iw {
                    let yy = y + k * ih / iw.max(1);
                    fill(&mut img, x + k, yy, 1, 1, MISSING_X);
                    fill(
                        &mut img,
                        x + k,
                        y + ih - 1 - (k * ih / iw.max(1)),
                        1,
                        1,
                        MISSING_X,
                    );
                }
            }
        }
        let border = (iw / 40).max(2);
        if t.state == TileState::Failed {
            frame_rect(&mut img, x, y, iw, ih, border, FAILED);
        }
        if t.rerun.is_some() && t.state != TileState::Failed {
            fill(&mut img, x, y + ih - border, iw, border, RERUN);
        }
    }
    img.save_with_format(out, image::ImageFormat::Png)
        .map_err(|e| format!("{}: {e}", out.display()))
}

/// The timeline: one band per node (page order), bars from start to end.
pub fn timeline(r: &Report, out: &Path) -> Result<(), String> {
    let (plot_w, left) = (1600.0, 8.0);
    let height: f64 = r.nodes.iter().map(row_height).sum::<f64>().max(20.0);
    let mut img = RgbImage::from_pixel((plot_w + 2.0 * left) as u32, height as u32 + 1, BG);
    let Some((t0, t1)) = r.span else {
        return img
            .save_with_format(out, image::ImageFormat::Png)
            .map_err(|e| format!("{}: {e}", out.display()));
    };
    let span = (t1 - t0).max(1e-3);
    let mut y = 0.0;
    for n in &r.nodes {
        let w = img.width();
        fill(&mut img, 0, y as u32, w, 1, SEPARATOR);
        for b in &n.bars {
            let x0 = left + (b.start - t0) / span * plot_w;
            let x1 = left + (b.end - t0) / span * plot_w;
            let by = y + ROW_PAD + b.lane as f64 * (LANE_H + LANE_GAP);
            let colour = match b.outcome {
                Outcome::Done => DONE,
                Outcome::Failed => FAILED,
                Outcome::Superseded => SUPERSEDED,
            };
            fill(
                &mut img,
                x0 as u32,
                by as u32,
                ((x1 - x0).max(1.0)) as u32,
                LANE_H as u32,
                colour,
            );
        }
        y += row_height(n);
    }
    img.save_with_format(out, image::ImageFormat::Png)
        .map_err(|e| format!("{}: {e}", out.display()))
}
