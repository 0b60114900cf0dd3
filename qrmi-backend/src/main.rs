//! spank-qrmi-backend: run by spank_qrmi.so (as root, in slurmstepd or the job's keeper) for one
//! QPU's acquisition or release; speaks JSON lines on stdin/stdout (see qrmi_core::backend::
//! helper). Not meant to be run by hand: it reads the resource, secrets included, from stdin.
use std::io::Write;

fn main() {
    close_inherited_descriptors();
    let stdin = std::io::stdin().lock();
    let stdout = std::io::stdout().lock();
    if let Err(e) = qrmi_backend::serve::serve(stdin, stdout) {
        // Never the request itself (it holds the resource's secrets): only what went wrong.
        let _ = writeln!(std::io::stderr(), "spank-qrmi-backend: {e}");
        std::process::exit(1);
    }
}

/// Descriptors the Slurm process had open without close-on-exec (sockets of the job's I/O,
/// slurmd's port) are not ours to hold: close all but stdin, stdout and stderr.
fn close_inherited_descriptors() {
    // SAFETY: close_range on descriptors this process owns and no Rust object holds yet.
    let rc = unsafe { libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32) };
    if rc == 0 {
        return;
    }
    // Kernels before 5.9: close what /proc/self/fd lists (the directory's own descriptor is
    // among them; closing it after the listing is harmless).
    let fds: Vec<i32> = std::fs::read_dir("/proc/self/fd")
        .map(|dir| {
            dir.flatten()
                .filter_map(|e| e.file_name().to_str()?.parse().ok())
                .filter(|&fd| fd > 2)
                .collect()
        })
        .unwrap_or_default();
    for fd in fds {
        // SAFETY: as above.
        unsafe { libc::close(fd) };
    }
}
