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

/// Seconds since the epoch, as a float (0 if the clock is before 1970).
pub fn unix_time() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn hostname_and_time() {
        assert!(!super::hostname().is_empty());
        assert!(super::unix_time() > 1.7e9);
    }
}
