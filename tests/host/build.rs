//! Compiles c/spank_host.c into an executable (not a library: each scenario runs in its own
//! process, as each Slurm context does). `-rdynamic` exports the fake spank_* functions to the
//! plugin it dlopens.
use std::env;
use std::path::PathBuf;

fn main() {
    println!("cargo::rerun-if-changed=c/spank_host.c");
    let include = env::var("DEP_SLURM_INCLUDE_DIR").unwrap_or_else(|_| "/usr/include".into());
    let out = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("spank_host");
    let compiler = cc::Build::new().get_compiler();
    let status = compiler
        .to_command()
        .args([
            "-std=gnu11",
            "-Wall",
            "-Wextra",
            "-Wno-missing-field-initializers",
            "-Werror",
            "-O1",
            "-g",
            "-rdynamic",
        ])
        .arg(format!("-I{include}"))
        .arg("c/spank_host.c")
        .arg("-o")
        .arg(&out)
        .arg("-ldl")
        .status()
        .expect("cannot run the C compiler");
    assert!(status.success(), "compiling c/spank_host.c failed");
    println!("cargo::rustc-env=SPANK_HOST_BIN={}", out.display());
}
