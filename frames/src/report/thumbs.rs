//! Thumbnails for `frames report`: each frame file is checksummed (BLAKE3, as the plugin
//! records it), and its thumbnail is kept as `ASSETS/thumbs/<blake3>.jpg`, so a second report
//! (after a resubmit) only decodes the frames it has not seen. Decoding and resizing run on
//! `jobs` threads; a frame that changed since its task ended is still shown, and said so.
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use frames_core::record::frame_checksum;

use super::model::Tile;

/// Thumbnails fit in this box (the demo's 320x180 frames become 160x90).
pub const THUMB_W: u32 = 160;
pub const THUMB_H: u32 = 120;

/// What became of one tile's frame.
#[derive(Debug, Clone, PartialEq)]
pub enum Thumb {
    /// The tile has no frame file to show (missing, or a run without images).
    None,
    /// The thumbnail, relative to the assets directory, and a note when the frame changed.
    Made {
        file: String,
        changed: Option<String>,
    },
    /// The frame file could not be read or decoded: why (names the file).
    Error(String),
}

/// Counts for the progress line.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Made {
    pub new: usize,
    pub cached: usize,
    pub errors: usize,
}

/// Whether the file differs from what its record says (size and strongest checksum).
fn changed_note(tile: &Tile, size: u64, blake3: &str, sha256: Option<&str>) -> Option<String> {
    let what = if tile.size.is_some_and(|s| s != size) {
        "size"
    } else if tile.blake3.as_deref().is_some_and(|b| b != blake3) {
        "BLAKE3"
    } else if tile.blake3.is_none() && tile.sha256.as_deref().is_some_and(|s| Some(s) != sha256) {
        "SHA-256"
    } else {
        return None;
    };
    Some(format!(
        "the file changed after its task ended ({what} differs from the record's)"
    ))
}

/// Decodes `frame` and writes its thumbnail to `out` (through a temp file: a reader never
/// sees half a thumbnail, and an interrupted report leaves no broken cache entry).
fn make(frame: &Path, out: &Path) -> Result<(), String> {
    let img = image::ImageReader::open(frame)
        .map_err(|e| format!("{}: {e}", frame.display()))?
        .with_guessed_format()
        .map_err(|e| format!("{}: {e}", frame.display()))?
        .decode()
        .map_err(|e| {
            format!(
                "{}: cannot decode ({e}); expected a PNG or JPEG image{}",
                frame.display(),
                if cfg!(feature = "exr") {
                    " or OpenEXR"
                } else {
                    ""
                }
            )
        })?;
    let thumb = image::DynamicImage::ImageRgb8(img.thumbnail(THUMB_W, THUMB_H).to_rgb8());
    let tmp = out.with_extension(format!("tmp{}", std::process::id()));
    thumb
        .save_with_format(&tmp, image::ImageFormat::Jpeg)
        .map_err(|e| format!("{}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, out).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        format!("{}: {e}", out.display())
    })
}

/// One tile: checksum, then the cached thumbnail or a new one. `true` when made anew.
fn one(tile: &Tile, thumbs: &Path) -> (Thumb, bool) {
    let Some(frame) = &tile.frame else {
        return (Thumb::None, false);
    };
    let want_sha = tile.blake3.is_none() && tile.sha256.is_some();
    let digest = match frame_checksum(frame, want_sha) {
        Ok(d) => d,
        // A failed task often left no file: that is its reason, not an error of the report.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return (Thumb::None, false),
        Err(e) => return (Thumb::Error(format!("{}: {e}", frame.display())), false),
    };
    let changed = changed_note(tile, digest.size, &digest.blake3, digest.sha256.as_deref());
    let file = format!("thumbs/{}.jpg", digest.blake3);
    let path = thumbs.join(format!("{}.jpg", digest.blake3));
    if path.is_file() {
        return (Thumb::Made { file, changed }, false);
    }
    match make(frame, &path) {
        Ok(()) => (Thumb::Made { file, changed }, true),
        Err(e) => (Thumb::Error(e), false),
    }
}

/// Thumbnails of every tile, in tile order, made on `jobs` threads; `tick` is called once per
/// tile (progress). `assets` is the report's folder; thumbnails go to `assets/thumbs/`.
pub fn make_all(
    tiles: &[Tile],
    assets: &Path,
    jobs: usize,
    tick: &(dyn Fn() + Sync),
) -> Result<(Vec<Thumb>, Made), String> {
    let thumbs: PathBuf = assets.join("thumbs");
    std::fs::create_dir_all(&thumbs)
        .map_err(|e| format!("cannot create {}: {e}", thumbs.display()))?;
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<(usize, Thumb, bool)>> = Mutex::new(Vec::with_capacity(tiles.len()));
    std::thread::scope(|scope| {
        for _ in 0..jobs.clamp(1, 256) {
            scope.spawn(|| {
                let mut mine = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(tile) = tiles.get(i) else { break };
                    let (thumb, new) = one(tile, &thumbs);
                    mine.push((i, thumb, new));
                    tick();
                }
                if let Ok(mut all) = results.lock() {
                    all.extend(mine);
                }
            });
        }
    });
    let mut all = results
        .into_inner()
        .map_err(|_| "a thumbnail thread panicked".to_owned())?;
    if all.len() != tiles.len() {
        return Err("a thumbnail thread panicked".to_owned());
    }
    all.sort_by_key(|(i, _, _)| *i);
    let mut made = Made::default();
    for (_, thumb, new) in &all {
        match thumb {
            Thumb::Made { .. } if *new => made.new += 1,
            Thumb::Made { .. } => made.cached += 1,
            Thumb::Error(_) => made.errors += 1,
            Thumb::None => {}
        }
    }
    Ok((all.into_iter().map(|(_, t, _)| t).collect(), made))
}

/// Removes thumbnails no tile uses any more (frames rerun with new content): the folder
/// holds what this report shows, and the cache does not grow without end.
pub fn prune(assets: &Path, used: &[Thumb]) {
    let keep: std::collections::HashSet<&str> = used
        .iter()
        .filter_map(|t| match t {
            Thumb::Made { file, .. } => file.strip_prefix("thumbs/"),
            _ => None,
        })
        .collect();
    let Ok(entries) = std::fs::read_dir(assets.join("thumbs")) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let name = name.to_string_lossy();
        if name.ends_with(".jpg") && !keep.contains(name.as_ref()) {
            let _ = std::fs::remove_file(e.path());
        }
    }
}
