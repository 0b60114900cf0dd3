//! Option values users type on srun/sbatch/salloc: --qpu lists, --frame-pattern, --frame-t0,
//! --frame-dt, --result-prefix. The first byte picks the parser.
#![no_main]
use frames_core::options::{format_frame_time, frame_time, parse_result_prefix, parse_time_value};
use frames_core::pattern::{FramePattern, JobIds};
use libfuzzer_sys::fuzz_target;
use qrmi_core::request::parse_qpu_list;

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    let Ok(s) = std::str::from_utf8(rest) else {
        return;
    };
    match which % 6 {
        0 => {
            if let Ok(names) = parse_qpu_list(s) {
                assert!(!names.is_empty());
                for n in &names {
                    assert!(!n.is_empty());
                    assert!(
                        n.chars()
                            .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
                    );
                }
                // The canonical form parses back to the same list.
                assert_eq!(parse_qpu_list(&names.join(",")).ok(), Some(names));
            }
        }
        1 => {
            if let Ok(p) = FramePattern::parse(s) {
                assert_eq!(p.as_str(), s);
                let ids = JobIds {
                    job_id: 1007,
                    array_job_id: Some(1000),
                    array_task_id: Some(7),
                };
                for index in [0, 7, u64::MAX] {
                    match p.expand(index, &ids) {
                        None => assert!(p.is_none()),
                        Some(path) => {
                            // Never escapes DIR, never reaches our own state.
                            assert!(!path.is_empty() && !path.starts_with('/'), "{path:?}");
                            assert!(!path.ends_with('/'), "{path:?}");
                            assert!(!path.contains('\0') && !path.contains('\n'), "{path:?}");
                            let mut parts = path.split('/').filter(|c| !c.is_empty() && *c != ".");
                            assert_ne!(parts.next(), Some(".frames"), "{path:?}");
                            assert!(!path.split('/').any(|c| c == ".."), "{path:?}");
                        }
                    }
                }
            }
        }
        2 => {
            if let Ok(v) = parse_time_value(s) {
                assert!(v.is_finite());
                let text = format_frame_time(v);
                assert_eq!(parse_time_value(&text), Ok(v), "{s:?} -> {text:?}");
                for index in [0, 1, 1000, u32::MAX as u64] {
                    let t = frame_time(v, v, index);
                    if t.is_finite() {
                        let _ = parse_time_value(&format_frame_time(t));
                    }
                }
            }
        }
        3 => {
            if let Ok(p) = parse_result_prefix(s) {
                assert!(!p.is_empty() && p.len() <= 64 && !p.contains(['\n', '\r', '\0']));
            }
        }
        _ => {
            // t0/dt/prefix as the plugin's option table reads them (frame_options covers the
            // plugin's own table; it cannot link in the same binary as spank_qrmi).
            let _ = (parse_time_value(s.trim()), parse_result_prefix(s.trim()));
        }
    }
});
