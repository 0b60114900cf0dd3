//! Crash-safe file writes and bounded regular-file reads, on local file systems and NFS.
//!
//! Both writers write a temporary file in the destination's directory (created with
//! `O_CREAT|O_EXCL|O_NOFOLLOW`, so a planted symlink is never followed), fsync it, then publish it:
//! [`write_atomic`] by `rename` (replaces), [`write_new`] by `link` (never replaces:
//! `link(2)` fails with EEXIST atomically, also on NFS, where `renameat2(RENAME_NOREPLACE)` is
//! not supported). Readers thus see the old content or the whole new one, never a torn file.
//! Also the few process facts every crate asks libc for (uids), so `unsafe` for them is here
//! once.
use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Writes `bytes` to `path`, replacing any existing file atomically.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_atomic_mode(path, bytes, 0o666)
}

/// [`write_atomic`] creating the file with `mode` (before the umask): 0o600 for state that
/// holds secrets, which must never be readable by others, not even while being written.
pub fn write_atomic_mode(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    let tmp = write_temp(path, mode, |f| f.write_all(bytes))?;
    rename_into(&tmp, path)
}

/// [`write_atomic_mode`] with the content written by `fill` through a buffered writer: a large
/// file (a manifest of 100,000 records) is never held in memory whole.
pub fn write_atomic_from(
    path: &Path,
    mode: u32,
    fill: impl FnOnce(&mut dyn Write) -> io::Result<()>,
) -> io::Result<()> {
    let tmp = write_temp(path, mode, |f| {
        let mut out = io::BufWriter::with_capacity(1 << 20, f);
        fill(&mut out)?;
        out.flush()
    })?;
    rename_into(&tmp, path)
}

/// Renames the written temp file `tmp` over `path`, then syncs the directory.
fn rename_into(tmp: &Path, path: &Path) -> io::Result<()> {
    if let Err(e) = std::fs::rename(tmp, path) {
        let _ = std::fs::remove_file(tmp);
        return Err(annotate(e, "cannot rename into", path));
    }
    sync_dir(path)
}

/// Writes `bytes` to `path` only if nothing exists there: `ErrorKind::AlreadyExists` otherwise,
/// leaving the existing file untouched.
pub fn write_new(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = write_temp(path, 0o666, |f| f.write_all(bytes))?;
    let linked = std::fs::hard_link(&tmp, path);
    let result = match linked {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            // On NFS a retransmitted LINK whose first reply was lost reports EEXIST although it
            // succeeded: then the temp file has two links.
            if link_count(&tmp) == Some(2) {
                Ok(())
            } else {
                Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!("{} already exists: not replaced", path.display()),
                ))
            }
        }
        Err(e) => {
            if link_count(&tmp) == Some(2) {
                Ok(())
            } else {
                Err(annotate(e, "cannot create", path))
            }
        }
    };
    let _ = std::fs::remove_file(&tmp);
    result?;
    sync_dir(path)
}

fn link_count(path: &Path) -> Option<u64> {
    std::fs::symlink_metadata(path).ok().map(|m| m.nlink())
}

fn annotate(e: io::Error, what: &str, path: &Path) -> io::Error {
    io::Error::new(e.kind(), format!("{what} {}: {e}", path.display()))
}

/// A temp name beside `path`, unique per process, call and time: `.NAME.tmp.PID.N.NANOS`.
fn temp_path(path: &Path) -> io::Result<PathBuf> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let name = path.file_name().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{}: expected a file path", path.display()),
        )
    })?;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let mut tmp = OsString::from(".");
    tmp.push(name);
    tmp.push(format!(
        ".tmp.{}.{}.{nanos}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    Ok(path.with_file_name(tmp))
}

fn write_temp(
    path: &Path,
    mode: u32,
    fill: impl FnOnce(&mut File) -> io::Result<()>,
) -> io::Result<PathBuf> {
    let tmp = temp_path(path)?;
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&tmp)
        .map_err(|e| annotate(e, "cannot create", &tmp))?;
    let written = fill(&mut file).and_then(|()| file.sync_all());
    if let Err(e) = written {
        drop(file);
        let _ = std::fs::remove_file(&tmp);
        return Err(annotate(e, "cannot write", &tmp));
    }
    Ok(tmp)
}

/// fsyncs the directory holding `path` so the new name survives a crash. File systems that
/// cannot fsync a directory (EINVAL) are accepted.
fn sync_dir(path: &Path) -> io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let file = File::open(dir).map_err(|e| annotate(e, "cannot open directory", dir))?;
    match file.sync_all() {
        Ok(()) => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => Ok(()),
        Err(e) => Err(annotate(e, "cannot fsync directory", dir)),
    }
}

/// Opens a file for reading only if it is a regular file, without blocking: a FIFO or device
/// planted where a frame, result or capture file is expected would otherwise block the reader
/// (the record writer at task end) until it is killed.
pub fn open_regular(path: &Path) -> io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)?;
    let meta = file.metadata()?;
    if !meta.file_type().is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} is not a regular file", path.display()),
        ));
    }
    Ok(file)
}

/// The first `limit` bytes of a regular file (see [`open_regular`]; a final symlink is
/// followed). For files whose tail may be dropped, unlike [`read_regular_nofollow`].
pub fn read_regular_prefix(path: &Path, limit: u64) -> io::Result<Vec<u8>> {
    use std::io::Read;
    let mut bytes = Vec::new();
    open_regular(path)?.take(limit).read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// Reads a whole file of at most `cap` bytes that must be a regular file: a final symlink is
/// not followed (O_NOFOLLOW) and a FIFO does not block (O_NONBLOCK, then fstat refuses it), so
/// a user planting one where a record or submission is expected gets a named error instead
/// of hanging the merge.
pub fn read_regular_nofollow(path: &Path, cap: usize) -> io::Result<Vec<u8>> {
    read_regular_nofollow_owned(path, cap).map(|(bytes, _)| bytes)
}

/// [`read_regular_nofollow`], also returning the uid that owns the file (from the same open
/// file, so a file swapped in between cannot lend another's owner).
pub fn read_regular_nofollow_owned(path: &Path, cap: usize) -> io::Result<(Vec<u8>, u32)> {
    use std::io::Read;
    use std::os::unix::fs::MetadataExt;
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) => io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} is a symbolic link, not a regular file", path.display()),
            ),
            _ => annotate(e, "cannot open", path),
        })?;
    let meta = file.metadata()?;
    if !meta.file_type().is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} is not a regular file", path.display()),
        ));
    }
    let mut bytes = Vec::with_capacity((meta.len() as usize).min(cap));
    file.take(cap as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| annotate(e, "cannot read", path))?;
    if bytes.len() > cap {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{} is larger than {cap} bytes", path.display()),
        ));
    }
    Ok((bytes, meta.uid()))
}

/// The real uid: who runs this command (whose submissions `frames resubmit` may replay).
pub fn real_uid() -> u32 {
    // SAFETY: getuid(2) has no preconditions and cannot fail.
    unsafe { libc::getuid() }
}

/// The effective uid: whose rights this process has (root in slurmstepd, until it drops them).
pub fn effective_uid() -> u32 {
    // SAFETY: geteuid(2) has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// Opens `name` in the open directory `dir` for reading if it is a regular file, with one
/// `openat` (no path walk per file: a merge opens 100,000 of them). As
/// [`read_regular_nofollow`]: a final symlink is refused (O_NOFOLLOW) and a FIFO cannot block
/// (O_NONBLOCK, then fstat refuses it). Returns the file and its metadata (from the open
/// file, so a file swapped in between cannot lend another's owner).
pub fn open_regular_in(dir: &File, name: &str) -> io::Result<(File, std::fs::Metadata)> {
    use std::os::fd::{AsRawFd, FromRawFd};
    let cname = std::ffi::CString::new(name).map_err(io::Error::other)?;
    // SAFETY: a valid directory fd and a NUL-terminated name; the returned fd is owned below.
    let fd = unsafe {
        libc::openat(
            dir.as_raw_fd(),
            cname.as_ptr(),
            libc::O_RDONLY | libc::O_CLOEXEC | libc::O_NOFOLLOW | libc::O_NONBLOCK,
        )
    };
    if fd < 0 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::ELOOP) {
            return Err(io::Error::other("a symbolic link, not a regular file"));
        }
        return Err(e);
    }
    // SAFETY: fd was just opened and is owned by nobody else.
    let file = unsafe { File::from_raw_fd(fd) };
    let meta = file.metadata()?;
    if !meta.file_type().is_file() {
        return Err(io::Error::other("not a regular file"));
    }
    Ok((file, meta))
}

/// Appends `line` (one whole line, ending in '\n') to the append-only log `path` with one
/// `write(2)` on an `O_APPEND` descriptor, then `fdatasync`s it: when this returns Ok the line
/// survives a crash of this machine, and on NFS a crash of the server (fdatasync sends COMMIT).
/// Writers on one kernel never interleave (the kernel appends a regular file's `write` whole);
/// an NFS client emulates `O_APPEND`, so a log is written by one machine only.
///
/// - Created with `O_CREAT|O_EXCL|O_NOFOLLOW` (mode 0600) if absent; the creator fsyncs the
///   directory once (the name survives a crash), then appends `header`. A writer that finds
///   the log empty (just created, directory maybe not synced yet) syncs the directory itself:
///   every byte of a log is written after one directory sync completed, so no caller returns
///   before the log's name is durable, and the directory is synced once per log.
/// - An existing log is opened with `O_NOFOLLOW|O_NONBLOCK` and must be a regular file with
///   one link, owned by the caller (a symlink, FIFO, hard link or someone else's file planted
///   at the name is refused, without blocking).
/// - A log whose last byte is not '\n' (a write torn by a crash, or another writer's in
///   progress) gets a '\n' before the line, so the torn piece never runs into this line.
/// - A short write (disk full) is an error; the piece written is a torn line readers skip.
pub fn append_line(path: &Path, header: &[u8], line: &[u8]) -> io::Result<()> {
    use std::os::unix::fs::FileExt;
    let open = |create: bool| {
        let mut o = OpenOptions::new();
        o.read(true)
            .append(true)
            // O_NONBLOCK: a FIFO planted at the name cannot block the open (fstat refuses it).
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK);
        if create {
            o.create_new(true).mode(0o600);
        }
        o.open(path)
    };
    let (file, created) = match open(true) {
        Ok(f) => (f, true),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => (
            open(false).map_err(|e| annotate(e, "cannot open", path))?,
            false,
        ),
        Err(e) => return Err(annotate(e, "cannot create", path)),
    };
    let meta = file
        .metadata()
        .map_err(|e| annotate(e, "cannot stat", path))?;
    if !meta.file_type().is_file() {
        return Err(io::Error::other(format!(
            "{}: not a regular file",
            path.display()
        )));
    }
    if meta.nlink() != 1 {
        // A hard link planted at the name would make this append land in another file.
        return Err(io::Error::other(format!(
            "{}: has {} links (a log has one): not appended to",
            path.display(),
            meta.nlink()
        )));
    }
    if meta.uid() != effective_uid() {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "{}: owned by uid {}, not by uid {}: not appended to",
                path.display(),
                meta.uid(),
                effective_uid()
            ),
        ));
    }
    if created {
        sync_dir(path)?;
        if !header.is_empty() {
            (&file)
                .write_all(header)
                .map_err(|e| annotate(e, "cannot write", path))?;
        }
    }
    let size = file
        .metadata()
        .map_err(|e| annotate(e, "cannot stat", path))?
        .len();
    if !created && size == 0 {
        // Created by another writer that may not have synced the directory yet. Every writer
        // syncs it before its first byte goes in, so a non-empty log's name is durable.
        sync_dir(path)?;
    }
    let mut bytes = Vec::with_capacity(line.len() + 1);
    if size > 0 {
        // A torn last line (a writer's crash) gets a separator. On a network file system the
        // size can already hold another appender's write that a read does not return yet
        // (GlusterFS write-behind: the read hit EOF and the record was lost): when the last byte
        // cannot be read, the separator is added too (an empty line, which readers skip).
        let mut last = [0u8; 1];
        let ends_whole = matches!(file.read_at(&mut last, size - 1), Ok(1) if last[0] == b'\n');
        if !ends_whole {
            bytes.push(b'\n');
        }
    }
    bytes.extend_from_slice(line);
    let written = loop {
        match (&file).write(&bytes) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => break other,
        }
    };
    match written {
        Ok(n) if n == bytes.len() => {}
        Ok(n) => {
            return Err(io::Error::other(format!(
                "{}: only {n} of {} bytes appended (disk full?)",
                path.display(),
                bytes.len()
            )));
        }
        Err(e) => return Err(annotate(e, "cannot append to", path)),
    }
    file.sync_data()
        .map_err(|e| annotate(e, "cannot fdatasync", path))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// A fresh directory under the system temp dir, removed with its contents on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(tag: &str) -> TempDir {
            static COUNTER: AtomicU64 = AtomicU64::new(0);
            let path = std::env::temp_dir().join(format!(
                "host-io-test-{tag}-{}-{}",
                std::process::id(),
                COUNTER.fetch_add(1, Ordering::Relaxed)
            ));
            std::fs::create_dir_all(&path).expect("create test temp dir");
            TempDir(path)
        }

        fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn open_regular_in_takes_only_regular_files_in_the_dir() {
        use std::os::unix::ffi::OsStrExt;
        let t = TempDir::new("open-in");
        std::fs::write(t.path().join("rec.json"), b"{}").unwrap();
        std::os::unix::fs::symlink(t.path().join("rec.json"), t.path().join("link.json")).unwrap();
        let fifo =
            std::ffi::CString::new(t.path().join("fifo.json").as_os_str().as_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
        let dir = File::open(t.path()).unwrap();
        let (_, meta) = open_regular_in(&dir, "rec.json").unwrap();
        assert_eq!((meta.len(), meta.uid()), (2, effective_uid()));
        let link = open_regular_in(&dir, "link.json").unwrap_err();
        assert!(link.to_string().contains("symbolic link"), "{link}");
        let fifo = open_regular_in(&dir, "fifo.json").unwrap_err();
        assert!(fifo.to_string().contains("not a regular file"), "{fifo}");
        assert_eq!(
            open_regular_in(&dir, "absent.json").unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
    }

    fn leftovers(dir: &Path) -> Vec<String> {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains(".tmp."))
            .collect()
    }

    #[test]
    fn atomic_replaces() {
        let tmp = TempDir::new("atomic");
        let p = tmp.path().join("a.json");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        assert!(leftovers(tmp.path()).is_empty());
    }

    #[test]
    fn atomic_mode_is_applied_from_creation() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = TempDir::new("atomic-mode");
        let p = tmp.path().join("secret.json");
        write_atomic_mode(&p, b"key", 0o600).unwrap();
        let mode = std::fs::metadata(&p).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(std::fs::read(&p).unwrap(), b"key");
        assert!(leftovers(tmp.path()).is_empty());
    }

    #[test]
    fn new_never_replaces() {
        let tmp = TempDir::new("new");
        let p = tmp.path().join("r.json");
        write_new(&p, b"first").unwrap();
        let err = write_new(&p, b"second").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        assert!(err.to_string().contains("r.json"), "{err}");
        assert_eq!(std::fs::read(&p).unwrap(), b"first");
        assert!(leftovers(tmp.path()).is_empty());
    }

    #[test]
    fn new_refuses_existing_symlink_and_leaves_target_alone() {
        let tmp = TempDir::new("new-symlink");
        let target = tmp.path().join("target");
        std::fs::write(&target, b"keep").unwrap();
        let p = tmp.path().join("link");
        std::os::unix::fs::symlink(&target, &p).unwrap();
        assert_eq!(
            write_new(&p, b"x").unwrap_err().kind(),
            io::ErrorKind::AlreadyExists
        );
        assert_eq!(std::fs::read(&target).unwrap(), b"keep");
        // write_atomic replaces the link itself, not its target.
        write_atomic(&p, b"new").unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"keep");
        assert!(
            !std::fs::symlink_metadata(&p)
                .unwrap()
                .file_type()
                .is_symlink()
        );
    }

    #[test]
    fn new_races_have_one_winner() {
        let tmp = Arc::new(TempDir::new("new-race"));
        let p = tmp.path().join("once");
        let handles: Vec<_> = (0..16)
            .map(|i| {
                let p = p.clone();
                std::thread::spawn(move || write_new(&p, format!("{i}").as_bytes()).is_ok())
            })
            .collect();
        let wins = handles
            .into_iter()
            .map(|h| h.join().unwrap())
            .filter(|&w| w)
            .count();
        assert_eq!(wins, 1);
        let content = std::fs::read_to_string(&p).unwrap();
        assert!(content.parse::<u32>().unwrap() < 16);
        assert!(leftovers(tmp.path()).is_empty());
    }

    #[test]
    fn errors_name_the_path() {
        let tmp = TempDir::new("atomic-err");
        let p = tmp.path().join("missing-dir/x");
        let err = write_atomic(&p, b"x").unwrap_err();
        assert!(err.to_string().contains("missing-dir"), "{err}");
        assert!(write_new(Path::new("/"), b"x").is_err());
    }

    fn mkfifo(p: &Path) {
        let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    }

    #[test]
    fn read_regular_refuses_fifo_symlink_and_oversize() {
        let tmp = TempDir::new("read-regular");
        let ok = tmp.path().join("ok");
        std::fs::write(&ok, b"data").unwrap();
        assert_eq!(read_regular_nofollow(&ok, 4).unwrap(), b"data");
        let big = read_regular_nofollow(&ok, 3).unwrap_err();
        assert!(big.to_string().contains("larger than 3"), "{big}");
        let fifo = tmp.path().join("fifo");
        mkfifo(&fifo);
        // Would block forever without O_NONBLOCK; the test harness would time out.
        let e = read_regular_nofollow(&fifo, 10).unwrap_err();
        assert!(e.to_string().contains("not a regular file"), "{e}");
        let link = tmp.path().join("link");
        std::os::unix::fs::symlink(&ok, &link).unwrap();
        let e = read_regular_nofollow(&link, 10).unwrap_err();
        assert!(e.to_string().contains("symbolic link"), "{e}");
    }
}
