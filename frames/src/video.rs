//! `frames video`: encodes the done frames in index order with ffmpeg, through an ffconcat list
//! in a private temp directory (paths are quoted for ffconcat, never passed through a shell).
use std::io::{BufRead, BufReader, ErrorKind};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use frames_core::merge::{Collection, Summary, UnitKey, UnitState};
use frames_core::ranges;
use frames_core::record::verify_frame;

use crate::progress::Progress;
use crate::{Fail, exit};

/// The frame file of each array index, or `None` for a gap (missing, failed, its file gone,
/// or changed since its task recorded its checksum: those are also returned, with why).
/// Non-array jobs are not frames of a sequence: left out.
fn frame_files(
    dir: &Path,
    c: &Collection,
    s: &Summary,
    checked: &indicatif::ProgressBar,
) -> (Vec<(u64, Option<PathBuf>)>, Vec<String>) {
    let mut changed = Vec::new();
    let files = s
        .units
        .iter()
        .filter_map(|u| match u.key {
            UnitKey::Index(index) => Some((index, u)),
            UnitKey::Job(_) => None,
        })
        .map(|(index, u)| {
            checked.inc(1);
            let record = u
                .chosen
                .filter(|_| u.state == UnitState::Done)
                .and_then(|i| c.records.get(i));
            let file = record
                .and_then(|r| Some((r, r.frame_path.as_deref()?)))
                .map(|(r, p)| (r, dir.join(p))) // join keeps an absolute path as is
                .filter(|(_, p)| p.is_file())
                .and_then(|(r, p)| match verify_frame(&p, r) {
                    Ok(()) => Some(p),
                    Err(why) => {
                        changed.push(format!("index {index}: {why}"));
                        None
                    }
                });
            (index, file)
        })
        .collect();
    (files, changed)
}

/// The frame count of one line of ffmpeg's `-progress` output (`frame=42`).
fn encoded_frames(line: &str) -> Option<u64> {
    line.strip_prefix("frame=")?.trim().parse().ok()
}

/// Quotes a path for an ffconcat `file` line.
fn ffconcat_quote(path: &str) -> String {
    format!("'{}'", path.replace('\'', "'\\''"))
}

/// A private temporary directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> std::io::Result<TempDir> {
        use std::os::unix::fs::DirBuilderExt;
        let base = std::env::temp_dir();
        for n in 0..100u32 {
            let path = base.join(format!("frames-video-{}-{n}", std::process::id()));
            match std::fs::DirBuilder::new().mode(0o700).create(&path) {
                Ok(()) => return Ok(TempDir(path)),
                Err(e) if e.kind() == ErrorKind::AlreadyExists => continue,
                Err(e) => {
                    return Err(std::io::Error::new(
                        e.kind(),
                        format!("cannot create a temp directory in {}: {e}", base.display()),
                    ));
                }
            }
        }
        Err(std::io::Error::other(format!(
            "cannot create a temp directory in {}",
            base.display()
        )))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn run(
    dir: &Path,
    c: &Collection,
    s: &Summary,
    output: &Path,
    fps: u32,
    fill_gaps: bool,
) -> Result<u8, Fail> {
    let progress = Progress::new("frames video");
    progress.step(&format!(
        "checking the frames of {} against their records",
        dir.display()
    ));
    let checked = progress.bar(s.units.len(), "checking");
    let (files, changed) = frame_files(dir, c, s, &checked);
    checked.finish_and_clear();
    for why in &changed {
        eprintln!("frames video: {why}");
    }
    let gaps: Vec<u64> = files
        .iter()
        .filter(|(_, f)| f.is_none())
        .map(|(i, _)| *i)
        .collect();
    let Some(first_good) = files.iter().find_map(|(_, f)| f.clone()) else {
        return Err(Fail::refused(format!(
            "{}: no frame files to encode ({} expected, {} done{})",
            dir.display(),
            s.expected,
            s.done,
            if s.done > 0 {
                "; did the job run with --frame-pattern=none, or were the frames removed?"
            } else {
                ""
            }
        )));
    };
    if !gaps.is_empty() && !fill_gaps {
        return Err(Fail::refused(format!(
            "{}: {} of {} frames are missing, failed or changed: {} (use --fill-gaps to repeat the previous good frame)",
            dir.display(),
            gaps.len(),
            files.len(),
            ranges::compress(&gaps)
        )));
    }

    let duration = 1.0 / f64::from(fps);
    let mut list = String::from("ffconcat version 1.0\n");
    let mut previous = first_good;
    for (_, file) in &files {
        let path = file.clone().unwrap_or_else(|| previous.clone());
        let text = path
            .to_str()
            .ok_or_else(|| Fail::error(format!("{}: frame path is not UTF-8", path.display())))?;
        if text.contains(['\n', '\r']) {
            return Err(Fail::error(format!(
                "{}: frame path contains a newline: ffmpeg's concat list cannot hold it",
                text.escape_debug()
            )));
        }
        list.push_str(&format!(
            "file {}\nduration {duration}\n",
            ffconcat_quote(text)
        ));
        previous = path;
    }
    // The concat demuxer ignores the last entry's duration unless the file is listed again.
    if let Some(text) = previous.to_str() {
        list.push_str(&format!("file {}\n", ffconcat_quote(text)));
    }

    let tmp = TempDir::new()?;
    let list_path = tmp.0.join("frames.ffconcat");
    std::fs::write(&list_path, list)
        .map_err(|e| Fail::error(format!("cannot write {}: {e}", list_path.display())))?;

    progress.step(&format!(
        "encoding {} frames with ffmpeg into {}",
        files.len(),
        output.display()
    ));
    let child = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-nostdin", "-y"])
        // Machine-readable progress (`frame=N` lines) on stdout, which only we read.
        .args(["-nostats", "-progress", "pipe:1"])
        .args(["-f", "concat", "-safe", "0", "-i"])
        .arg(&list_path)
        .arg("-vf")
        .arg(format!(
            "fps={fps},pad=ceil(iw/2)*2:ceil(ih/2)*2,format=yuv420p"
        ))
        // Exactly one video frame per index: the fps filter may otherwise emit one more for
        // the repeated last entry.
        .arg("-frames:v")
        .arg(files.len().to_string())
        .arg(output)
        .stdout(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(child) => child,
        Err(e) if e.kind() == ErrorKind::NotFound => {
            return Err(Fail::error(
                "ffmpeg is not installed (not found on PATH): install it (e.g. apt-get install ffmpeg) to make videos",
            ));
        }
        Err(e) => return Err(Fail::error(format!("cannot run ffmpeg: {e}"))),
    };
    let encoded = progress.bar(files.len(), "encoding");
    if let Some(out) = child.stdout.take() {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if let Some(frame) = encoded_frames(&line) {
                encoded.set_position(frame);
            }
        }
    }
    encoded.finish_and_clear();
    let status = child
        .wait()
        .map_err(|e| Fail::error(format!("cannot wait for ffmpeg: {e}")))?;
    if !status.success() {
        return Err(Fail::error(format!(
            "ffmpeg failed ({status}) making {}",
            output.display()
        )));
    }
    if !gaps.is_empty() {
        eprintln!(
            "frames: filled {} missing or failed frame(s) with the previous good frame: {}",
            gaps.len(),
            ranges::compress(&gaps)
        );
    }
    println!(
        "{}: {} frames at {fps} fps from {}",
        output.display(),
        files.len(),
        dir.display()
    );
    Ok(exit::OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_lines_of_ffmpeg() {
        assert_eq!(encoded_frames("frame=42"), Some(42));
        assert_eq!(encoded_frames("frame= 7 "), Some(7));
        assert_eq!(encoded_frames("fps=25.0"), None);
        assert_eq!(encoded_frames("frame=N/A"), None);
    }

    #[test]
    fn quoting_for_ffconcat() {
        assert_eq!(ffconcat_quote("/a/b c.png"), "'/a/b c.png'");
        assert_eq!(ffconcat_quote("/a/it's.png"), "'/a/it'\\''s.png'");
    }
}
