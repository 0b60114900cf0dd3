//! Facts about the machine a callback runs on, shared by the plugins.

/// The host name (slurmd's NodeName on nearly every cluster). Read from the kernel, not from
/// the job's environment, which the user controls.
pub fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most buf.len() bytes.
    if unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } == 0 {
        let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
        return String::from_utf8_lossy(&buf[..end]).into_owned();
    }
    "unknown".to_string()
}

/// The file this code was loaded from: the plugin's .so inside a Slurm process (dladdr of one
/// of its own functions), the executable otherwise. None when the loader cannot say.
pub fn loaded_from() -> Option<std::path::PathBuf> {
    use std::os::unix::ffi::OsStrExt;
    // SAFETY: Dl_info is plain data that dladdr fills; the address is a function of this crate.
    let mut info: libc::Dl_info = unsafe { std::mem::zeroed() };
    let address = loaded_from as *const libc::c_void;
    if unsafe { libc::dladdr(address, &mut info) } == 0 || info.dli_fname.is_null() {
        return None;
    }
    // SAFETY: dladdr set dli_fname to a NUL-terminated string owned by the loader.
    let name = unsafe { std::ffi::CStr::from_ptr(info.dli_fname) };
    let path = std::path::PathBuf::from(std::ffi::OsStr::from_bytes(name.to_bytes()));
    path.is_absolute().then_some(path)
}

/// Seconds since the epoch, as a float (0 if the clock is before 1970).
pub fn unix_time() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Whole seconds since the epoch (0 if the clock is before 1970), for timestamps in files.
pub fn unix_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// One process, told apart from a later one that reuses its pid by its start time (clock
/// ticks since boot, field 22 of /proc/PID/stat).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcessId {
    pub pid: i32,
    pub start_ticks: u64,
}

impl ProcessId {
    /// The calling process.
    pub fn current() -> Option<ProcessId> {
        let pid = std::process::id() as i32;
        Some(ProcessId {
            pid,
            start_ticks: process_start_ticks(pid)?,
        })
    }

    /// True while this very process runs (not a zombie, not a later process with its pid).
    pub fn is_alive(&self) -> bool {
        match std::fs::read_to_string(format!("/proc/{}/stat", self.pid)) {
            Ok(stat) => parse_stat(&stat).is_some_and(|(state, start)| {
                start == self.start_ticks && state != 'Z' && state != 'X'
            }),
            Err(_) => false,
        }
    }
}

fn process_start_ticks(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&stat).map(|(_, start)| start)
}

/// (state, start time) from a /proc/PID/stat line. The command name (field 2) may hold
/// spaces and parentheses, so fields are counted after its last ')'.
fn parse_stat(stat: &str) -> Option<(char, u64)> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_ascii_whitespace();
    let state = fields.next()?.chars().next()?;
    // After the state (field 3), the start time is field 22: 18 fields further.
    let start = fields.nth(18)?.parse().ok()?;
    Some((state, start))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_knows_the_file_it_was_loaded_from() {
        let path = loaded_from().expect("dladdr");
        assert!(path.is_file(), "{}", path.display());
    }

    #[test]
    fn hostname_and_time() {
        assert!(!hostname().is_empty());
        assert!(unix_time() > 1.7e9);
        assert!(unix_secs() > 1_700_000_000);
    }

    #[test]
    fn this_process_is_alive_and_a_changed_start_time_is_not() {
        let me = ProcessId::current().expect("/proc/self/stat");
        assert!(me.is_alive());
        let reused = ProcessId {
            start_ticks: me.start_ticks + 1,
            ..me
        };
        assert!(!reused.is_alive());
        assert!(
            !ProcessId {
                pid: i32::MAX,
                start_ticks: 1
            }
            .is_alive()
        );
    }

    #[test]
    fn stat_lines_with_odd_command_names() {
        let line = "42 (a) b (c)) S 1 42 42 0 -1 4194560 100 0 0 0 0 0 0 0 20 0 1 0 987654 1000 10";
        assert_eq!(parse_stat(line), Some(('S', 987654)));
        assert_eq!(parse_stat("42 (x) S 1"), None);
        assert_eq!(parse_stat("garbage"), None);
    }
}
