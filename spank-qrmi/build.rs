//! A release spank_qrmi.so is linked without its static symbol table, as the packages install
//! it (their `strip --strip-unneeded`): ~150 KiB of names nothing reads at run time. The exported
//! `slurm_spank_*` and `plugin_*` symbols (.dynsym) stay. Debug builds keep it for debuggers.
fn main() {
    println!("cargo:rerun-if-env-changed=PROFILE");
    if std::env::var("PROFILE").as_deref() == Ok("release") {
        println!("cargo:rustc-cdylib-link-arg=-Wl,--strip-all");
    }
}
