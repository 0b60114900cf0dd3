//! Text in the `--png` images: labels drawn from the pre-rasterised Noto Sans Mono glyphs of
//! the noto-sans-mono-bitmap crate (anti-aliased, one width per size), blended onto whatever
//! is under them. Only printable ASCII has glyphs here; other characters are drawn as '?'.
use image::{Rgb, RgbImage};
use noto_sans_mono_bitmap::{FontWeight, RasterHeight, get_raster, get_raster_width};

/// A size and weight of the font.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Font {
    pub bold: bool,
    /// Line height in pixels: 16 (captions) or 20 (titles, node names).
    pub size: u32,
}

pub const SMALL: Font = Font {
    bold: false,
    size: 16,
};
pub const SMALL_BOLD: Font = Font {
    bold: true,
    size: 16,
};
pub const LARGE: Font = Font {
    bold: false,
    size: 20,
};
pub const LARGE_BOLD: Font = Font {
    bold: true,
    size: 20,
};

impl Font {
    fn raster(self) -> (FontWeight, RasterHeight) {
        (
            if self.bold {
                FontWeight::Bold
            } else {
                FontWeight::Regular
            },
            if self.size >= 20 {
                RasterHeight::Size20
            } else {
                RasterHeight::Size16
            },
        )
    }

    /// Advance of one character.
    pub fn char_w(self) -> u32 {
        let (w, h) = self.raster();
        get_raster_width(w, h) as u32
    }

    pub fn width(self, s: &str) -> u32 {
        s.chars().count() as u32 * self.char_w()
    }

    /// `s` cut to at most `max_w` pixels, ending in ".." when cut.
    pub fn clip(self, s: &str, max_w: u32) -> String {
        let fits = (max_w / self.char_w()) as usize;
        if s.chars().count() <= fits {
            return s.to_owned();
        }
        let mut out: String = s.chars().take(fits.saturating_sub(2)).collect();
        if fits >= 2 {
            out.push_str("..");
        }
        out
    }
}

/// Draws `s` with its top left at (x, y), clipped to the image; returns the x after it.
pub fn draw(img: &mut RgbImage, x: u32, y: u32, s: &str, font: Font, colour: Rgb<u8>) -> u32 {
    let (weight, height) = font.raster();
    let cw = font.char_w();
    let mut cx = x;
    for c in s.chars() {
        let c = if c.is_ascii_graphic() || c == ' ' {
            c
        } else {
            '?'
        };
        if let Some(g) = get_raster(c, weight, height).or_else(|| get_raster('?', weight, height)) {
            for (gy, row) in g.rows().enumerate() {
                for (gx, &a) in row.iter().enumerate() {
                    let (px, py) = (cx + gx as u32, y + gy as u32);
                    if a == 0 || px >= img.width() || py >= img.height() {
                        continue;
                    }
                    let under = img.get_pixel(px, py).0;
                    let mut out = [0u8; 3];
                    for k in 0..3 {
                        let (b, f) = (u32::from(under[k]), u32::from(colour.0[k]));
                        out[k] = ((b * (255 - u32::from(a)) + f * u32::from(a)) / 255) as u8;
                    }
                    img.put_pixel(px, py, Rgb(out));
                }
            }
        }
        cx += cw;
    }
    cx
}
