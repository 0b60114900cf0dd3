//! Link setup of spank_qrmi.so: the unused path's functions first in .text (see
//! spank/build/link_order.rs), and a release build without its static symbol table, as the
//! packages install it (their `strip --strip-unneeded`): ~150 KiB of names nothing reads at
//! run time. The exported `slurm_spank_*` and `plugin_*` symbols (.dynsym) stay. Debug builds,
//! and tests/hot-symbols.sh (SPANK_QRMI_KEEP_SYMBOLS=1, to name what it traces), keep it.
include!("../spank/build/link_order.rs");

fn main() {
    order_hot_symbols();
    println!("cargo:rerun-if-env-changed=PROFILE");
    println!("cargo:rerun-if-env-changed=SPANK_QRMI_KEEP_SYMBOLS");
    if std::env::var("PROFILE").as_deref() == Ok("release")
        && std::env::var_os("SPANK_QRMI_KEEP_SYMBOLS").is_none()
    {
        println!("cargo:rustc-cdylib-link-arg=-Wl,--strip-all");
    }
}
