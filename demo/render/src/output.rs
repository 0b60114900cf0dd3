//! PNG encoding and atomic file replacement.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// Encodes tightly packed 8-bit RGB as a PNG.
pub fn encode_png(rgb: &[u8], width: u32, height: u32) -> Result<Vec<u8>, png::EncodingError> {
    let mut out = Vec::with_capacity(rgb.len() / 2 + 1024);
    let mut enc = png::Encoder::new(&mut out, width, height);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    enc.set_compression(png::Compression::Fast);
    let mut writer = enc.write_header()?;
    writer.write_image_data(rgb)?;
    writer.finish()?;
    Ok(out)
}

#[derive(Debug)]
pub struct WriteError {
    pub path: PathBuf,
    pub source: io::Error,
}

impl fmt::Display for WriteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot write '{}': {}", self.path.display(), self.source)
    }
}

impl std::error::Error for WriteError {}

/// Writes `bytes` to `path` atomically (host_io's crash-safe write): readers see either the
/// old file or the complete new one, never a partial frame (a watcher or `frames video` may be
/// reading the directory).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), WriteError> {
    host_io::write_atomic(path, bytes).map_err(|source| WriteError {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("bh-render-test-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn png_round_trip_has_dimensions() {
        let (w, h) = (5u32, 3u32);
        let rgb: Vec<u8> = (0..w * h * 3).map(|i| i as u8).collect();
        let bytes = encode_png(&rgb, w, h).unwrap();
        let dec = png::Decoder::new(bytes.as_slice());
        let mut reader = dec.read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size()];
        let info = reader.next_frame(&mut buf).unwrap();
        assert_eq!((info.width, info.height), (w, h));
        assert_eq!(info.color_type, png::ColorType::Rgb);
        assert_eq!(info.bit_depth, png::BitDepth::Eight);
        assert_eq!(&buf[..info.buffer_size()], rgb.as_slice());
    }

    #[test]
    fn atomic_write_replaces_and_leaves_no_temp() {
        let dir = scratch("atomic");
        let path = dir.join("frame_0001.png");
        fs::write(&path, b"old").unwrap();
        write_atomic(&path, b"new contents").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"new contents");
        let names: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("frame_0001.png")]);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn write_error_names_the_path() {
        let dir = scratch("missing");
        let path = dir.join("no-such-dir").join("f.png");
        let e = write_atomic(&path, b"x").unwrap_err().to_string();
        assert!(e.contains(&path.display().to_string()), "{e}");
        fs::remove_dir_all(&dir).unwrap();
    }
}
