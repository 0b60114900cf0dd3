//! Finds the Slurm headers of the build machine, generates bindings with bindgen and tells
//! cargo (and dependent build scripts, through `links = "slurm"`) which Slurm they describe.
//!
//! Header lookup: `SLURM_INCLUDE_DIR` (a directory containing `slurm/spank.h`), else
//! `pkg-config --cflags slurm`, else `/usr/include`.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Releases whose API differences our code may need to gate on. Each becomes a cfg
/// `slurm_ge_MAJOR_MINOR` when the headers are at least that release.
const KNOWN_RELEASES: &[(u32, u32)] = &[
    (23, 2),
    (23, 11),
    (24, 5),
    (24, 11),
    (25, 5),
    (25, 11),
    (26, 5),
];

fn main() {
    println!("cargo::rerun-if-env-changed=SLURM_INCLUDE_DIR");
    println!("cargo::rerun-if-changed=wrapper.h");
    for (major, minor) in KNOWN_RELEASES {
        println!("cargo::rustc-check-cfg=cfg({})", cfg_name(*major, *minor));
    }

    let include_dir = find_include_dir();
    let version_header = include_dir.join("slurm/slurm_version.h");
    for header in ["spank.h", "slurm.h", "slurm_errno.h", "slurm_version.h"] {
        println!(
            "cargo::rerun-if-changed={}",
            include_dir.join("slurm").join(header).display()
        );
    }
    let version = read_version_number(&version_header);
    let (major, minor, micro) = (version >> 16, (version >> 8) & 0xff, version & 0xff);

    let mut enabled = Vec::new();
    for (rel_major, rel_minor) in KNOWN_RELEASES {
        if (major, minor) >= (*rel_major, *rel_minor) {
            println!("cargo::rustc-cfg={}", cfg_name(*rel_major, *rel_minor));
            enabled.push(cfg_name(*rel_major, *rel_minor));
        }
    }
    // For dependents' build scripts (DEP_SLURM_CFGS / DEP_SLURM_KNOWN_CFGS): they emit the same
    // cfgs, so plugin code can gate on the release too.
    println!("cargo::metadata=cfgs={}", enabled.join(","));
    let known: Vec<String> = KNOWN_RELEASES
        .iter()
        .map(|(a, b)| cfg_name(*a, *b))
        .collect();
    println!("cargo::metadata=known_cfgs={}", known.join(","));
    println!("cargo::metadata=version_number={version}");
    println!("cargo::metadata=include_dir={}", include_dir.display());
    println!("cargo::rustc-env=SLURM_SYS_VERSION={major}.{minor:02}.{micro}");
    println!(
        "cargo::rustc-env=SLURM_SYS_INCLUDE_DIR={}",
        include_dir.display()
    );

    let bindings = bindgen::Builder::default()
        .header("wrapper.h")
        .clang_arg(format!("-I{}", include_dir.display()))
        .allowlist_function("spank_.*")
        .allowlist_function("slurm_(info|error|verbose|debug|debug2|debug3|spank_log)")
        .allowlist_function("slurm_(load_job|free_job_info_msg|get_errno|strerror)")
        .allowlist_function("slurm_hostlist_(create|find|destroy)")
        .allowlist_type("spank_.*")
        .allowlist_type("job_info_msg_t|slurm_job_info_t")
        .allowlist_var("SLURM_VERSION_NUMBER|SPANK_OPTION_MAXLEN|ESPANK_.*|SLURM_SUCCESS")
        .allowlist_var("S_CTX_.*|S_JOB_.*|S_TASK_.*|S_SLURM_.*|S_STEP_.*")
        .allowlist_var("NO_VAL|NO_VAL64|INFINITE|INFINITE64|SHOW_.*|SLURM_BATCH_SCRIPT")
        // C enums stay plain integers: a newer Slurm may return a value we do not know,
        // and turning that into a Rust enum would be undefined behaviour.
        .default_enum_style(bindgen::EnumVariation::Consts)
        .prepend_enum_name(false)
        .wrap_unsafe_ops(true)
        .layout_tests(false)
        .derive_default(true)
        .generate_comments(false)
        .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()))
        .generate()
        .unwrap_or_else(|e| {
            panic!(
                "bindgen failed on the Slurm headers in {}: {e}",
                include_dir.display()
            )
        });
    let out = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    bindings
        .write_to_file(out.join("bindings.rs"))
        .expect("cannot write bindings.rs into OUT_DIR");
}

fn cfg_name(major: u32, minor: u32) -> String {
    format!("slurm_ge_{major}_{minor:02}")
}

fn has_spank_header(dir: &Path) -> bool {
    dir.join("slurm/spank.h").is_file()
}

fn find_include_dir() -> PathBuf {
    if let Some(dir) = env::var_os("SLURM_INCLUDE_DIR") {
        let dir = PathBuf::from(dir);
        if !has_spank_header(&dir) {
            panic!(
                "SLURM_INCLUDE_DIR={} does not contain slurm/spank.h; point it at the directory \
                 that holds the slurm/ header folder (e.g. /usr/include)",
                dir.display()
            );
        }
        return dir;
    }
    if let Ok(out) = Command::new("pkg-config")
        .args(["--cflags-only-I", "slurm"])
        .output()
        && out.status.success()
    {
        let flags = String::from_utf8_lossy(&out.stdout);
        for flag in flags.split_whitespace() {
            if let Some(dir) = flag.strip_prefix("-I") {
                let dir = PathBuf::from(dir);
                if has_spank_header(&dir) {
                    return dir;
                }
                // Some slurm.pc files point at .../include/slurm itself.
                if let Some(parent) = dir.parent()
                    && has_spank_header(parent)
                {
                    return parent.to_path_buf();
                }
            }
        }
    }
    let default = PathBuf::from("/usr/include");
    if has_spank_header(&default) {
        return default;
    }
    panic!(
        "Slurm headers not found: set SLURM_INCLUDE_DIR to the directory containing \
         slurm/spank.h, or install them (Debian: apt-get install libslurm-dev)"
    );
}

/// Reads `#define SLURM_VERSION_NUMBER 0x160508` from slurm_version.h.
fn read_version_number(path: &Path) -> u32 {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    for line in text.lines() {
        let mut words = line.split_whitespace();
        if words.next() == Some("#define") && words.next() == Some("SLURM_VERSION_NUMBER") {
            let value = words.next().unwrap_or("");
            let parsed = match value
                .strip_prefix("0x")
                .or_else(|| value.strip_prefix("0X"))
            {
                Some(hex) => u32::from_str_radix(hex, 16),
                None => value.parse(),
            };
            return parsed.unwrap_or_else(|_| {
                panic!(
                    "{}: SLURM_VERSION_NUMBER '{value}' is not a number",
                    path.display()
                )
            });
        }
    }
    panic!("{}: no SLURM_VERSION_NUMBER define", path.display());
}
