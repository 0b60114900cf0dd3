//! Submissions on disk: one JSON file per submission under `.frames/submissions/`, written
//! once and updated atomically with its outcome.
use std::io;
use std::path::PathBuf;

use super::Submission;
use crate::Problem;
use crate::layout::Layout;

/// The file of the submission with this id.
pub fn path_of(layout: &Layout, id: &str) -> PathBuf {
    layout.submissions_dir().join(format!("{id}.json"))
}

/// Stores a new submission as `submissions/<id>.json`, never replacing another one. The id
/// is `<time>-<host>-<pid>` (a suffix `-N` when taken), set in `submission.id`.
pub fn write(layout: &Layout, submission: &mut Submission, host: &str) -> io::Result<PathBuf> {
    let host = crate::layout::file_name_part(host);
    let base = format!("{:.6}-{host}-{}", submission.time, std::process::id());
    for n in 0..1000u32 {
        submission.id = if n == 0 {
            base.clone()
        } else {
            format!("{base}-{n}")
        };
        let bytes = serde_json::to_vec_pretty(submission).map_err(io::Error::other)?;
        let path = path_of(layout, &submission.id);
        match host_io::write_new(&path, &bytes) {
            Ok(()) => return Ok(path),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AlreadyExists,
        format!(
            "{}: 1000 submissions named {base}*: cannot store another",
            layout.submissions_dir().display()
        ),
    ))
}

/// Rewrites a submission written by [`write`] with its outcome (state, job id, reason),
/// atomically (readers see the old or the new file, never a mix).
pub fn update(layout: &Layout, submission: &Submission) -> io::Result<PathBuf> {
    let mut bytes = serde_json::to_vec_pretty(submission).map_err(io::Error::other)?;
    bytes.push(b'\n');
    let path = path_of(layout, &submission.id);
    host_io::write_atomic(&path, &bytes)?;
    Ok(path)
}

/// Largest submission file read (a command line and environment summary); bigger is a problem.
const MAX_SUBMISSION_BYTES: usize = 16 << 20;

/// All stored submissions, oldest first, and the files that could not be read. A missing
/// submissions directory means no submission.
pub fn read_all(layout: &Layout) -> io::Result<(Vec<Submission>, Vec<Problem>)> {
    let (found, problems) = read_all_owned(layout)?;
    Ok((found.into_iter().map(|(_, _, s)| s).collect(), problems))
}

/// A submission file's name, its owner's uid, and its content.
pub type OwnedFile = (String, u32, Submission);

/// [`read_all`], with each submission's file name and owner uid (the reader decides whom to
/// trust), oldest first.
pub fn read_all_owned(layout: &Layout) -> io::Result<(Vec<OwnedFile>, Vec<Problem>)> {
    let dir = layout.submissions_dir();
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok((Vec::new(), Vec::new())),
        Err(e) => {
            return Err(io::Error::new(
                e.kind(),
                format!("cannot read {}: {e}", dir.display()),
            ));
        }
    };
    let mut found = Vec::new();
    let mut problems = Vec::new();
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.starts_with('.') || !name.ends_with(".json") {
            continue;
        }
        let path = entry.path();
        match host_io::read_regular_nofollow_owned(&path, MAX_SUBMISSION_BYTES) {
            Ok((bytes, uid)) => match serde_json::from_slice::<Submission>(&bytes) {
                Ok(s) => found.push((name.to_owned(), uid, s)),
                Err(e) => problems.push(Problem::new(&path, format!("not a submission: {e}"))),
            },
            Err(e) => problems.push(Problem::new(&path, format!("cannot read: {e}"))),
        }
    }
    found.sort_by(|a, b| a.2.time.total_cmp(&b.2.time).then_with(|| a.0.cmp(&b.0)));
    problems.sort();
    Ok((found, problems))
}
