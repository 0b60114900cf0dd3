//! spank_frames' option table as Slurm hands it values (--frame-dir, --frame-pattern,
//! --frame-t0, --frame-dt, --result-prefix, and an unknown name), parsed by frames-core.
#![no_main]
use frames_core::options::{FrameOptions, parse_frame_dir};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    let Ok(s) = std::str::from_utf8(rest) else {
        return;
    };
    let name = [
        "frame-dir",
        "frame-pattern",
        "frame-t0",
        "frame-dt",
        "result-prefix",
        "frame-x",
    ][which as usize % 6];
    let mut o = FrameOptions::default();
    let value = if which & 0x80 != 0 { None } else { Some(s) };
    if o.set(name, value).is_ok() {
        match name {
            "frame-dir" => {
                let dir = o.frame_dir.as_ref().expect("frame-dir set");
                assert!(dir.is_absolute() && !s.contains('\n'), "{dir:?}");
                assert!(o.enabled());
            }
            "frame-pattern" => assert_eq!(o.pattern_text, s),
            "frame-t0" => assert!(o.t0.is_finite()),
            "frame-dt" => assert!(o.dt.is_finite()),
            "result-prefix" => assert!(!o.result_prefix.is_empty()),
            other => panic!("unknown option {other} accepted"),
        }
    }
    if let Ok(dir) = parse_frame_dir(s) {
        assert!(dir.is_absolute());
    }
});
