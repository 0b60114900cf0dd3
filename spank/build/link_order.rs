// Included by each plugin's build.rs (one copy of the link setup both plugins share).
//
// Places the functions a plugin runs when a job does not use it first and together in the
// code, before the rest of .text (issue 17: slurmstepd's resident memory). Every Slurm process
// that loads the plugin maps its code, and the kernel makes 64 KiB resident around each page a
// call touches, so the same few dozen functions cost one or two 64 KiB windows instead of
// ~0.5 MiB scattered over .text. The list is the plugin's hot-symbols.txt, traced by
// tests/hot-symbols.sh. Symbol names carry a hash that changes with the set of packages built
// together (features unify differently), the toolchain and the target, so the list becomes a
// linker script that matches each function's section by its name with the hash as a wildcard
// (`.text._ZN...17h*E`), inserted before .text: the same list works for every build. Applied
// where a probe link with the same rustc, target and flags accepts it (rust-lld and GNU ld do);
// elsewhere the plugin links as before. A stale list only places fewer functions first; it
// never changes what the code does.
fn order_hot_symbols() {
    println!("cargo:rerun-if-changed=hot-symbols.txt");
    println!("cargo:rerun-if-env-changed=CARGO_ENCODED_RUSTFLAGS");
    println!("cargo:rerun-if-env-changed=SPANK_NO_LINK_ORDER");
    // Release builds only: what Slurm loads is a release. SPANK_NO_LINK_ORDER: the build that
    // tests/hot-symbols.sh traces (valgrind names only the functions in .text itself).
    if std::env::var("PROFILE").as_deref() != Ok("release")
        || std::env::var_os("SPANK_NO_LINK_ORDER").is_some()
    {
        return;
    }
    let (Ok(dir), Some(out)) = (
        std::env::var("CARGO_MANIFEST_DIR"),
        std::env::var_os("OUT_DIR"),
    ) else {
        return;
    };
    let Ok(list) = std::fs::read_to_string(std::path::Path::new(&dir).join("hot-symbols.txt"))
    else {
        return;
    };
    let script = std::path::PathBuf::from(out).join("hot-symbols.ld");
    if std::fs::write(&script, hot_text_script(&list)).is_err() {
        return;
    }
    let arg = format!("-Wl,-T,{}", script.display());
    if linker_takes(&arg) {
        println!("cargo:rustc-cdylib-link-arg={arg}");
    } else {
        println!("cargo:warning=the linker refused the hot-symbols.txt script: linked without it");
    }
}

/// A linker script that gathers the listed functions' sections, in the list's order, into an
/// output section placed before .text.
fn hot_text_script(list: &str) -> String {
    let mut script = String::from("SECTIONS\n{\n  .text.spank_hot :\n  {\n");
    for name in list
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        // Only names a script pattern can hold as they are (mangled names always can; `*` is
        // the hash's wildcard). Callgrind's `name'2` (a recursion) is listed plainly too.
        .filter(|l| {
            l.chars()
                .all(|c| c.is_ascii_alphanumeric() || "_$.*".contains(c))
        })
    {
        // Functions Rust marks cold are in .text.unlikely.NAME.
        let name = without_hash(name);
        script.push_str(&format!("    *(.text.{name} .text.unlikely.{name})\n"));
    }
    script.push_str("  }\n}\nINSERT BEFORE .text;\n");
    script
}

/// A legacy-mangled name's trailing hash (`17h` + 16 hex digits + `E`) as a wildcard.
fn without_hash(name: &str) -> String {
    let hash = name.len().checked_sub(20).and_then(|at| name.get(at..));
    match hash {
        Some(h)
            if h.starts_with("17h")
                && h.ends_with('E')
                && h[3..19].chars().all(|c| c.is_ascii_hexdigit()) =>
        {
            format!("{}17h*E", &name[..name.len() - 20])
        }
        _ => name.to_owned(),
    }
}

/// Links an empty cdylib with this build's rustc, target and RUSTFLAGS plus `arg`.
fn linker_takes(arg: &str) -> bool {
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
        .arg("-C")
        .arg(format!("link-arg={arg}"))
        .arg("-o")
        .arg(out.join("liblink_probe.so"))
        .arg(&source)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    probe.status().is_ok_and(|s| s.success())
}
