//! Frame file name patterns (`--frame-pattern`): where under DIR each task's frame goes.
//!
//! Syntax: literal text with exactly one printf-style index field (`%d`, `%i`, with optional
//! flag `0` and a width: `%04d`, `%5d`), `%%` for a literal `%`, and Slurm's `%A` (array job
//! id), `%a` (array task id) and `%j` (job id), which take an optional zero-padding width as in
//! Slurm's own file name patterns (`%3a`). Relative sub-paths are allowed
//! (`shot1/frame_%04d.png`); absolute paths, `..` components, a trailing `/`, paths into
//! `.frames/`, NUL and newlines are refused. The special value `none` means the job writes no
//! frame files (ML sweeps, load tests): only results are collected.
//!
//! For a job that is not an array, `%A` expands to the job id (as Slurm does) and `%a` to `0`
//! (Slurm would write 4294967294, its NO_VAL marker, which is never a useful file name).
use std::fmt::Write as _;

/// The pattern used when `--frame-pattern` is not given (a macro too, so the option's help
/// text can name it without a second copy).
macro_rules! default_pattern {
    () => {
        "frame_%04d.png"
    };
}
pub(crate) use default_pattern;
pub const DEFAULT_PATTERN: &str = default_pattern!();

/// Widths above this are refused (a 20-digit field already holds any u64).
const MAX_WIDTH: usize = 64;
/// Longest file name (one path component) Linux filesystems accept (NAME_MAX).
const MAX_NAME: usize = 255;

/// The ids a pattern may refer to, from the task's environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobIds {
    pub job_id: u32,
    pub array_job_id: Option<u32>,
    pub array_task_id: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Literal(String),
    Index { zero: bool, width: usize },
    ArrayJobId { width: usize },
    ArrayTaskId { width: usize },
    JobId { width: usize },
}

/// A parsed, validated `--frame-pattern`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FramePattern {
    source: String,
    /// Empty for `none`.
    pieces: Vec<Piece>,
}

impl Default for FramePattern {
    fn default() -> FramePattern {
        // The default pattern is valid; this cannot fail.
        FramePattern::parse(DEFAULT_PATTERN).unwrap_or(FramePattern {
            source: String::new(),
            pieces: Vec::new(),
        })
    }
}

impl FramePattern {
    /// Parses and validates a pattern, with a message naming the value and what is expected.
    pub fn parse(s: &str) -> Result<FramePattern, String> {
        if s == "none" {
            return Ok(FramePattern {
                source: s.to_owned(),
                pieces: Vec::new(),
            });
        }
        let bad = |why: &str| Err(format!("frame pattern '{}': {why}", s.escape_debug()));
        if s.is_empty() {
            return bad(
                "empty: expected a relative file name with one index field, e.g. frame_%04d.png (or 'none')",
            );
        }
        if s.contains('\0') || s.contains('\n') || s.contains('\r') {
            return bad("contains a NUL or newline character");
        }
        if s.starts_with('/') {
            return bad("is an absolute path: expected a path relative to --frame-dir");
        }
        if s.ends_with('/') {
            return bad("ends with '/': expected a file name, not a directory");
        }
        for component in s.split('/') {
            if component == ".." {
                return bad("contains a '..' component: frames must stay inside --frame-dir");
            }
            // Caught here, not as a "frame file missing" for every task later (ENAMETOOLONG).
            if component.len() > MAX_NAME {
                return bad(&format!(
                    "has a path component of {} bytes: file names are limited to {MAX_NAME} bytes",
                    component.len()
                ));
            }
        }
        if s.split('/').find(|c| !c.is_empty() && *c != ".") == Some(".frames") {
            return bad("points into .frames/, which holds spank-frames' own state");
        }

        let mut pieces = Vec::new();
        let mut literal = String::new();
        let mut index_fields = 0;
        let mut chars = s.char_indices().peekable();
        while let Some((start, c)) = chars.next() {
            if c != '%' {
                literal.push(c);
                continue;
            }
            if chars.peek().map(|&(_, c)| c) == Some('%') {
                chars.next();
                literal.push('%');
                continue;
            }
            let mut zero = false;
            if chars.peek().map(|&(_, c)| c) == Some('0') {
                zero = true;
                chars.next();
            }
            let mut width_digits = String::new();
            while let Some(&(_, d)) = chars.peek() {
                if !d.is_ascii_digit() {
                    break;
                }
                width_digits.push(d);
                chars.next();
            }
            let width = if width_digits.is_empty() {
                0
            } else {
                match width_digits.parse::<usize>() {
                    Ok(w) if w <= MAX_WIDTH => w,
                    _ => return bad(&format!("field width {width_digits} is above {MAX_WIDTH}")),
                }
            };
            let Some((end, conv)) = chars.next() else {
                return bad("ends inside a '%' field: expected %d, %04d, %A, %a, %j or %%");
            };
            let field = &s[start..end + conv.len_utf8()];
            let piece = match conv {
                'd' | 'i' => {
                    index_fields += 1;
                    Piece::Index { zero, width }
                }
                // Slurm pads its ids with zeros whatever the flag.
                'A' => Piece::ArrayJobId { width },
                'a' => Piece::ArrayTaskId { width },
                'j' => Piece::JobId { width },
                _ => {
                    return bad(&format!(
                        "unsupported field '{field}': expected %d or %i (flag 0 and a width allowed), %A, %a, %j or %%"
                    ));
                }
            };
            if !literal.is_empty() {
                pieces.push(Piece::Literal(std::mem::take(&mut literal)));
            }
            pieces.push(piece);
        }
        if !literal.is_empty() {
            pieces.push(Piece::Literal(literal));
        }
        match index_fields {
            1 => {}
            0 => {
                return bad(
                    "has no index field: expected exactly one %d (e.g. frame_%04d.png), or 'none' for no frame files",
                );
            }
            n => return bad(&format!("has {n} index fields: expected exactly one %d")),
        }
        Ok(FramePattern {
            source: s.to_owned(),
            pieces,
        })
    }

    /// The pattern as given.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// `true` for `none`: the job writes no frame files.
    pub fn is_none(&self) -> bool {
        self.pieces.is_empty()
    }

    /// The frame's path relative to DIR for this index, or `None` for `none`.
    pub fn expand(&self, index: u64, ids: &JobIds) -> Option<String> {
        if self.is_none() {
            return None;
        }
        let mut out = String::new();
        for piece in &self.pieces {
            // Writing into a String cannot fail.
            let _ = match *piece {
                Piece::Literal(ref s) => {
                    out.push_str(s);
                    Ok(())
                }
                Piece::Index { zero: true, width } => write!(out, "{index:0width$}"),
                Piece::Index { zero: false, width } => write!(out, "{index:width$}"),
                Piece::ArrayJobId { width } => {
                    write!(out, "{:0width$}", ids.array_job_id.unwrap_or(ids.job_id))
                }
                Piece::ArrayTaskId { width } => {
                    write!(out, "{:0width$}", ids.array_task_id.unwrap_or(0))
                }
                Piece::JobId { width } => write!(out, "{:0width$}", ids.job_id),
            };
        }
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ARRAY: JobIds = JobIds {
        job_id: 1007,
        array_job_id: Some(1000),
        array_task_id: Some(7),
    };
    const PLAIN: JobIds = JobIds {
        job_id: 55,
        array_job_id: None,
        array_task_id: None,
    };

    fn exp(p: &str, index: u64, ids: &JobIds) -> String {
        FramePattern::parse(p).unwrap().expand(index, ids).unwrap()
    }

    #[test]
    fn refuses_file_names_longer_than_the_filesystem_allows() {
        let long = format!("{}%d.png", "a".repeat(5000));
        let e = FramePattern::parse(&long).unwrap_err();
        assert!(e.contains("path component of 5006 bytes"), "{e}");
        assert!(FramePattern::parse(&format!("{}/f%d", "d".repeat(255))).is_ok());
    }

    #[test]
    fn index_fields() {
        assert_eq!(exp("frame_%04d.png", 7, &ARRAY), "frame_0007.png");
        assert_eq!(exp("frame_%04d.png", 123456, &ARRAY), "frame_123456.png");
        assert_eq!(exp("f%d.exr", 12, &ARRAY), "f12.exr");
        assert_eq!(exp("f%i.exr", 12, &ARRAY), "f12.exr");
        assert_eq!(exp("f%5d.exr", 12, &ARRAY), "f   12.exr");
        assert_eq!(exp("%08i", 3, &ARRAY), "00000003");
        assert_eq!(exp("100%%_%d.png", 3, &ARRAY), "100%_3.png");
        assert_eq!(
            exp("shot1/frame_%04d.png", 3, &ARRAY),
            "shot1/frame_0003.png"
        );
        assert_eq!(exp("ünï/%d", 3, &ARRAY), "ünï/3");
        assert_eq!(
            exp(&FramePattern::default().source, 1, &ARRAY),
            "frame_0001.png"
        );
    }

    #[test]
    fn slurm_fields() {
        assert_eq!(exp("%A_%a/%d.png", 7, &ARRAY), "1000_7/7.png");
        assert_eq!(exp("%j-%d", 7, &ARRAY), "1007-7");
        assert_eq!(exp("%6A_%3a_%d", 7, &ARRAY), "001000_007_7");
        // Not an array: %A is the job id, %a is 0.
        assert_eq!(exp("%A_%a_%j_%d", 2, &PLAIN), "55_0_55_2");
    }

    #[test]
    fn none_pattern() {
        let p = FramePattern::parse("none").unwrap();
        assert!(p.is_none());
        assert_eq!(p.expand(3, &ARRAY), None);
        assert!(!FramePattern::default().is_none());
    }

    #[test]
    fn refusals_name_the_value_and_expectation() {
        for (bad, want) in [
            ("", "empty"),
            ("frame.png", "no index field"),
            ("%d_%d", "2 index fields"),
            ("/abs/%d.png", "absolute"),
            ("../%d.png", ".."),
            ("a/../%d.png", ".."),
            ("a/%d/", "ends with '/'"),
            ("%d\n", "newline"),
            ("a\0%d", "NUL"),
            ("%s.png", "unsupported field '%s'"),
            ("%-4d.png", "unsupported field '%-'"),
            ("%x", "unsupported"),
            ("frame%", "ends inside"),
            ("frame%04", "ends inside"),
            ("%999d", "width 999"),
            (".frames/%d", ".frames"),
            ("./.frames/%d", ".frames"),
        ] {
            let err = FramePattern::parse(bad).unwrap_err();
            assert!(err.contains(want), "{bad:?}: {err}");
            assert!(err.starts_with("frame pattern '"), "{err}");
        }
        // Names that merely contain dots are fine.
        assert!(FramePattern::parse("..a/%d").is_ok());
        assert!(FramePattern::parse("a../%d").is_ok());
        assert!(FramePattern::parse("x.frames/%d").is_ok());
    }
}
