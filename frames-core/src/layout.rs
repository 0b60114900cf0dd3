//! Where everything lives under a frame directory, and the task key that names per-attempt files.
//!
//! Record and result file names encode the task key, so `merge::try_finish` can decide whether a
//! job is complete from one directory listing without opening any file:
//! `{index:08}.a{attempt}.j{job_id}.s{step}.t{task_id}.json`.
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// `name` as one file-name component: characters other than ASCII letters, digits, '-' and '_'
/// (a node or host name's dots, a '/') become '_'.
pub fn file_name_part(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The step a task ran in: the batch script (`batch`) or an srun step (its number).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum StepId {
    Batch,
    Step(u32),
}

impl fmt::Display for StepId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StepId::Batch => f.write_str("batch"),
            StepId::Step(n) => write!(f, "{n}"),
        }
    }
}

impl FromStr for StepId {
    type Err = String;

    fn from_str(s: &str) -> Result<StepId, String> {
        if s == "batch" {
            return Ok(StepId::Batch);
        }
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("step '{s}': expected \"batch\" or a step number"));
        }
        s.parse::<u32>()
            .map(StepId::Step)
            .map_err(|_| format!("step '{s}': expected \"batch\" or a step number below 2^32"))
    }
}

/// Identifies one attempt of one task: the frame index it rendered and where it ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TaskKey {
    pub index: u64,
    pub attempt: u32,
    pub job_id: u32,
    pub step: StepId,
    pub task_id: u32,
}

impl TaskKey {
    /// The file stem shared by this attempt's record, result and capture files.
    pub fn stem(&self) -> String {
        format!(
            "{:08}.a{}.j{}.s{}.t{}",
            self.index, self.attempt, self.job_id, self.step, self.task_id
        )
    }

    /// Parses a stem made by [`TaskKey::stem`]; `None` for anything else.
    pub fn parse_stem(stem: &str) -> Option<TaskKey> {
        let mut parts = stem.split('.');
        let index = parts.next()?;
        let attempt = parts.next()?.strip_prefix('a')?;
        let job_id = parts.next()?.strip_prefix('j')?;
        let step = parts.next()?.strip_prefix('s')?;
        let task_id = parts.next()?.strip_prefix('t')?;
        if parts.next().is_some() {
            return None;
        }
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if index.len() < 8 || ![index, attempt, job_id, task_id].iter().all(|s| digits(s)) {
            return None;
        }
        Some(TaskKey {
            index: index.parse().ok()?,
            attempt: attempt.parse().ok()?,
            job_id: job_id.parse().ok()?,
            step: step.parse().ok()?,
            task_id: task_id.parse().ok()?,
        })
    }

    /// Parses a record file name (`<stem>.json`); `None` for anything else (temp files included).
    pub fn parse_record_name(name: &str) -> Option<TaskKey> {
        TaskKey::parse_stem(name.strip_suffix(".json")?)
    }
}

/// The paths of one frame directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    root: PathBuf,
}

impl Layout {
    pub fn new(root: impl Into<PathBuf>) -> Layout {
        Layout { root: root.into() }
    }

    /// DIR, as given to `--frame-dir`.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// DIR/.frames
    pub fn state_dir(&self) -> PathBuf {
        self.root.join(".frames")
    }

    /// DIR/.frames/records
    pub fn records_dir(&self) -> PathBuf {
        self.state_dir().join("records")
    }

    /// DIR/.frames/results
    pub fn results_dir(&self) -> PathBuf {
        self.state_dir().join("results")
    }

    /// DIR/.frames/submissions
    pub fn submissions_dir(&self) -> PathBuf {
        self.state_dir().join("submissions")
    }

    /// DIR/.frames/records/<stem>.json: the attempt's TaskRecord.
    pub fn record_path(&self, key: &TaskKey) -> PathBuf {
        self.records_dir().join(format!("{}.json", key.stem()))
    }

    /// DIR/.frames/results/<stem>.json: FRAME_RESULT, where the task may write one JSON document.
    pub fn result_path(&self, key: &TaskKey) -> PathBuf {
        self.results_dir().join(format!("{}.json", key.stem()))
    }

    /// DIR/.frames/results/<stem>.captured.jsonl: the results the plugin captured from stdout.
    pub fn capture_path(&self, key: &TaskKey) -> PathBuf {
        self.results_dir()
            .join(format!("{}.captured.jsonl", key.stem()))
    }

    /// DIR/.frames/finish.N: the finisher election token for a directory holding N records.
    pub fn finish_token_path(&self, record_count: usize) -> PathBuf {
        self.state_dir().join(format!("finish.{record_count}"))
    }

    /// DIR/manifest.jsonl
    pub fn manifest_path(&self) -> PathBuf {
        self.root.join("manifest.jsonl")
    }

    /// DIR/summary.json
    pub fn summary_json_path(&self) -> PathBuf {
        self.root.join("summary.json")
    }

    /// DIR/summary.csv
    pub fn summary_csv_path(&self) -> PathBuf {
        self.root.join("summary.csv")
    }

    /// `mkdir -p` of DIR and the state directories, with the caller's umask. DIR itself may be
    /// (or lie under) a symlink, as site paths often do; `.frames` and its subdirectories must
    /// be real directories: a symlink there is refused, never followed, so nobody can redirect
    /// the records of other users' tasks.
    pub fn create_dirs(&self) -> io::Result<()> {
        std::fs::create_dir_all(&self.root).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cannot create {}: {e}", self.root.display()),
            )
        })?;
        for dir in [
            self.state_dir(),
            self.records_dir(),
            self.results_dir(),
            self.submissions_dir(),
        ] {
            make_real_dir(&dir)?;
        }
        Ok(())
    }
}

impl Layout {
    /// What the plugin runs as the job's user, at submission and in each task: [`create_dirs`]
    /// and then `.frames` and its subdirectories made private to `uid`: created with mode
    /// 0700, an existing one of `uid`'s narrowed to 0700, one that another uid owns refused
    /// (someone else's state in a shared DIR must not be mixed with this user's, nor this
    /// user's records written where another user can replace them).
    ///
    /// [`create_dirs`]: Layout::create_dirs
    pub fn create_private_dirs(&self, uid: u32) -> io::Result<()> {
        use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
        std::fs::create_dir_all(&self.root).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cannot create {}: {e}", self.root.display()),
            )
        })?;
        for dir in [
            self.state_dir(),
            self.records_dir(),
            self.results_dir(),
            self.submissions_dir(),
        ] {
            // One mkdir and, when it existed, one lstat per directory: every task of a job
            // runs this, and on a network file system each call is a round trip.
            match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
                Ok(()) => continue,
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => {
                    return Err(io::Error::new(
                        e.kind(),
                        format!("cannot create {}: {e}", dir.display()),
                    ));
                }
            }
            let meta = real_dir_metadata(&dir)?;
            if meta.uid() != uid {
                return Err(io::Error::new(
                    io::ErrorKind::PermissionDenied,
                    format!(
                        "{} is owned by uid {}, not by you (uid {uid}): refusing frame state \
                         another user controls; use a frame directory of your own",
                        dir.display(),
                        meta.uid()
                    ),
                ));
            }
            if meta.mode() & 0o077 != 0 {
                std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).map_err(
                    |e| {
                        io::Error::new(
                            e.kind(),
                            format!("cannot make {} private (mode 0700): {e}", dir.display()),
                        )
                    },
                )?;
            }
        }
        Ok(())
    }
}

/// mkdir that accepts an existing real directory and refuses a symlink or any other file type.
fn make_real_dir(dir: &Path) -> io::Result<()> {
    match std::fs::create_dir(dir) {
        Ok(()) => return Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => {
            return Err(io::Error::new(
                e.kind(),
                format!("cannot create {}: {e}", dir.display()),
            ));
        }
    }
    real_dir_metadata(dir).map(drop)
}

/// The metadata of `dir` itself (lstat), refusing a symlink or any other file type.
fn real_dir_metadata(dir: &Path) -> io::Result<std::fs::Metadata> {
    let meta = std::fs::symlink_metadata(dir)
        .map_err(|e| io::Error::new(e.kind(), format!("cannot stat {}: {e}", dir.display())))?;
    if meta.file_type().is_symlink() {
        return Err(io::Error::other(format!(
            "{} is a symlink: refusing to follow it (expected a directory)",
            dir.display()
        )));
    }
    if !meta.is_dir() {
        return Err(io::Error::other(format!(
            "{} exists but is not a directory",
            dir.display()
        )));
    }
    Ok(meta)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> TaskKey {
        TaskKey {
            index: 42,
            attempt: 1,
            job_id: 1234,
            step: StepId::Batch,
            task_id: 0,
        }
    }

    #[test]
    fn paths() {
        let l = Layout::new("/shared/frames/bh");
        assert_eq!(l.state_dir(), Path::new("/shared/frames/bh/.frames"));
        assert_eq!(
            l.record_path(&key()),
            Path::new("/shared/frames/bh/.frames/records/00000042.a1.j1234.sbatch.t0.json")
        );
        assert_eq!(
            l.result_path(&key()),
            Path::new("/shared/frames/bh/.frames/results/00000042.a1.j1234.sbatch.t0.json")
        );
        assert_eq!(
            l.capture_path(&key()),
            Path::new(
                "/shared/frames/bh/.frames/results/00000042.a1.j1234.sbatch.t0.captured.jsonl"
            )
        );
        assert_eq!(
            l.manifest_path(),
            Path::new("/shared/frames/bh/manifest.jsonl")
        );
        assert_eq!(
            l.summary_csv_path(),
            Path::new("/shared/frames/bh/summary.csv")
        );
        assert_eq!(
            l.submissions_dir(),
            Path::new("/shared/frames/bh/.frames/submissions")
        );
    }

    #[test]
    fn stems_round_trip() {
        let mut k = key();
        assert_eq!(TaskKey::parse_stem(&k.stem()), Some(k));
        k.step = StepId::Step(7);
        k.index = 123_456_789_012;
        assert_eq!(k.stem(), "123456789012.a1.j1234.s7.t0");
        assert_eq!(TaskKey::parse_stem(&k.stem()), Some(k));
        assert_eq!(
            TaskKey::parse_record_name(&format!("{}.json", k.stem())),
            Some(k)
        );
        for bad in [
            "",
            "00000001",
            "00000001.a1.j2.s3",
            "1.a1.j2.s3.t4",
            "00000001.a1.j2.s3.t4.x",
            "00000001.b1.j2.s3.t4",
            "00000001.a.j2.s3.t4",
            "00000001.a1.j2.sfoo.t4",
            "00000001.a-1.j2.s3.t4",
            "00000001.a1.j99999999999.s3.t4",
        ] {
            assert_eq!(TaskKey::parse_stem(bad), None, "{bad}");
        }
        assert_eq!(
            TaskKey::parse_record_name(".00000001.a1.j2.s3.t4.json.tmp.1"),
            None
        );
    }

    #[test]
    fn step_display_parse() {
        assert_eq!(StepId::Batch.to_string(), "batch");
        assert_eq!(StepId::Step(3).to_string(), "3");
        assert_eq!("batch".parse::<StepId>(), Ok(StepId::Batch));
        assert_eq!("12".parse::<StepId>(), Ok(StepId::Step(12)));
        assert!("".parse::<StepId>().is_err());
        assert!("+1".parse::<StepId>().is_err());
        assert!("Batch".parse::<StepId>().is_err());
    }

    #[test]
    fn create_dirs_makes_state_dirs_and_is_repeatable() {
        let tmp = crate::test_util::TempDir::new("layout");
        let l = Layout::new(tmp.path().join("a/b"));
        l.create_dirs().unwrap();
        l.create_dirs().unwrap();
        assert!(l.records_dir().is_dir());
        assert!(l.results_dir().is_dir());
        assert!(l.submissions_dir().is_dir());
    }

    #[test]
    fn create_dirs_refuses_symlinks() {
        let tmp = crate::test_util::TempDir::new("layout-symlink");
        let elsewhere = tmp.path().join("elsewhere");
        std::fs::create_dir(&elsewhere).unwrap();
        let l = Layout::new(tmp.path().join("dir"));
        std::fs::create_dir(l.root()).unwrap();
        std::os::unix::fs::symlink(&elsewhere, l.state_dir()).unwrap();
        let err = l.create_dirs().unwrap_err().to_string();
        assert!(err.contains("symlink") && err.contains(".frames"), "{err}");
        assert!(!elsewhere.join("records").exists());

        // A symlinked subdirectory is refused as well.
        std::fs::remove_file(l.state_dir()).unwrap();
        std::fs::create_dir(l.state_dir()).unwrap();
        std::os::unix::fs::symlink(&elsewhere, l.records_dir()).unwrap();
        let err = l.create_dirs().unwrap_err().to_string();
        assert!(err.contains("records") && err.contains("symlink"), "{err}");

        // A symlinked root is fine (site paths often are).
        let l2 = Layout::new(tmp.path().join("linkroot"));
        std::os::unix::fs::symlink(&elsewhere, l2.root()).unwrap();
        l2.create_dirs().unwrap();
        assert!(elsewhere.join(".frames/records").is_dir());
    }

    #[test]
    fn private_dirs_are_0700_and_only_the_owners() {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let tmp = crate::test_util::TempDir::new("layout-private");
        let l = Layout::new(tmp.path().join("shared"));
        let me = host_io::effective_uid();
        l.create_private_dirs(me).unwrap();
        for d in [l.state_dir(), l.records_dir(), l.submissions_dir()] {
            let m = std::fs::metadata(&d).unwrap();
            assert_eq!(m.mode() & 0o777, 0o700, "{}", d.display());
        }
        // An existing open one (version 1 made them with the umask) is narrowed.
        std::fs::set_permissions(l.state_dir(), std::fs::Permissions::from_mode(0o777)).unwrap();
        l.create_private_dirs(me).unwrap();
        let m = std::fs::metadata(l.state_dir()).unwrap();
        assert_eq!(m.mode() & 0o777, 0o700);
        // Owned by someone else: refused, naming the dir and both uids.
        let err = l.create_private_dirs(me + 1).unwrap_err().to_string();
        assert!(
            err.contains(".frames is owned by uid")
                && err.contains(&format!("not by you (uid {})", me + 1)),
            "{err}"
        );
        // A planted symlink is refused, never followed.
        let elsewhere = tmp.path().join("elsewhere");
        std::fs::create_dir(&elsewhere).unwrap();
        let l2 = Layout::new(tmp.path().join("planted"));
        std::fs::create_dir(l2.root()).unwrap();
        std::os::unix::fs::symlink(&elsewhere, l2.state_dir()).unwrap();
        let err = l2.create_private_dirs(me).unwrap_err().to_string();
        assert!(err.contains("symlink"), "{err}");
        assert!(!elsewhere.join("records").exists());
    }

    #[test]
    fn create_dirs_refuses_a_file() {
        let tmp = crate::test_util::TempDir::new("layout-file");
        let l = Layout::new(tmp.path());
        std::fs::write(l.state_dir(), b"x").unwrap();
        let err = l.create_dirs().unwrap_err().to_string();
        assert!(err.contains("not a directory"), "{err}");
    }
}
