//! Re-emits slurm-sys's release cfgs (`slurm_ge_MAJOR_MINOR`) for this crate, so `slurm.rs` can
//! use a Slurm function's signature of the release it is built for (e.g. slurm_load_job in 26.05).
fn main() {
    for cfg in std::env::var("DEP_SLURM_KNOWN_CFGS")
        .unwrap_or_default()
        .split(',')
    {
        if !cfg.is_empty() {
            println!("cargo::rustc-check-cfg=cfg({cfg})");
        }
    }
    for cfg in std::env::var("DEP_SLURM_CFGS")
        .unwrap_or_default()
        .split(',')
    {
        if !cfg.is_empty() {
            println!("cargo::rustc-cfg={cfg}");
        }
    }
}
