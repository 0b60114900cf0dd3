// Included by each plugin's build.rs (one copy of the link setup both plugins share).
//
// Places the functions a plugin runs when a job does not use it first and together in .text
// (lld's --symbol-ordering-file with the plugin's hot-symbols.txt, written by
// tests/hot-symbols.sh). Every Slurm process that loads the plugin maps its code and the kernel
// makes 64 KiB resident around each page a call touches, so the same few dozen functions cost
// one or two 64 KiB windows instead of ~0.5 MiB scattered over .text (issue 17: slurmstepd's
// resident memory). Only where the linker takes the option: rustc's own rust-lld does (the
// default on x86_64-unknown-linux-gnu since Rust 1.90); ld.bfd (aarch64, older or distribution
// toolchains) does not, so a one-line probe link with the same rustc, target and flags decides,
// and such builds link as before. A stale list only places fewer functions first; it never
// changes what the code does.
fn order_hot_symbols() {
    println!("cargo:rerun-if-changed=hot-symbols.txt");
    println!("cargo:rerun-if-env-changed=CARGO_ENCODED_RUSTFLAGS");
    // Release builds only: the list names release symbols, and what Slurm loads is a release.
    if std::env::var("PROFILE").as_deref() != Ok("release") {
        return;
    }
    let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default();
    let list = std::path::Path::new(&dir).join("hot-symbols.txt");
    if !list.is_file() {
        return;
    }
    let args = [
        format!("-Wl,--symbol-ordering-file={}", list.display()),
        // Names missing from this build are expected after a change; tests/hot-symbols.sh
        // --check says when the list needs regenerating.
        "-Wl,--no-warn-symbol-ordering".to_owned(),
    ];
    if linker_takes(&args) {
        for arg in args {
            println!("cargo:rustc-cdylib-link-arg={arg}");
        }
    } else {
        println!(
            "cargo:warning=the linker has no --symbol-ordering-file: hot-symbols.txt not applied"
        );
    }
}

/// Links an empty cdylib with this build's rustc, target and RUSTFLAGS plus `args`.
fn linker_takes(args: &[String]) -> bool {
    let (Some(rustc), Some(out), Some(target)) = (
        std::env::var_os("RUSTC"),
        std::env::var_os("OUT_DIR"),
        std::env::var_os("TARGET"),
    ) else {
        return false;
    };
    let out = std::path::PathBuf::from(out);
    let source = out.join("link_probe.rs");
    if std::fs::write(&source, "").is_err() {
        return false;
    }
    let rustflags = std::env::var("CARGO_ENCODED_RUSTFLAGS").unwrap_or_default();
    let mut probe = std::process::Command::new(rustc);
    probe
        .args([
            "--crate-type",
            "cdylib",
            "--crate-name",
            "link_probe",
            "--target",
        ])
        .arg(target)
        .args(rustflags.split('\x1f').filter(|f| !f.is_empty()))
        .args(
            args.iter()
                .flat_map(|a| ["-C".to_owned(), format!("link-arg={a}")]),
        )
        .arg("-o")
        .arg(out.join("liblink_probe.so"))
        .arg(&source)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    probe.status().is_ok_and(|s| s.success())
}
