//! Per-task records, submissions and record file names (all in the user-writable
//! DIR/.frames/), and the merge outputs built from them: parse, round trip, summarize, write
//! the manifest and CSV. Input: up to 4 NUL-separated parts; each JSON part is tried as a
//! record and as a submission, the last part is also an sbatch command line and a script.
#![no_main]
use frames_core::TaskKey;
use frames_core::merge::{
    Collection, OwnedSubmission, Submissions, Summary, csv_bytes, manifest_bytes, summarize,
};
use frames_core::record::TaskRecord;
use frames_core::submission::Submission;
use libfuzzer_sys::fuzz_target;
use spank_fuzz::assert_round_trip;

fuzz_target!(|data: &[u8]| {
    let parts = spank_fuzz::split_strings(data, 4);
    let mut records = Vec::new();
    let mut submissions = Vec::new();
    for p in &parts {
        if let Some(k) = TaskKey::parse_record_name(p) {
            assert_eq!(TaskKey::parse_stem(&k.stem()), Some(k));
        }
        if let Ok(r) = serde_json::from_str::<TaskRecord>(p) {
            assert_round_trip(&r);
            let _ = r.duration();
            records.push(r);
        }
        if let Ok(s) = serde_json::from_str::<Submission>(p) {
            assert_round_trip(&s);
            submissions.push(s);
        }
    }
    if let Some(last) = parts.last() {
        let argv: Vec<String> = last.split('\n').map(str::to_owned).collect();
        let mut s = Submission::from_argv(&argv, "/home/u", 1.0);
        s.fill_from_env(argv.get(1).map(String::as_str));
        s.fill_from_script(last);
        let _ = s.script_path();
        let again = s.resubmit_argv(&[1, 2, 3, 7], &["n1".to_owned()]);
        assert!(!again.is_empty());
        let _ = frames_core::submission::shell_join(&again);
        assert_round_trip(&s);
        submissions.push(s);
    }
    records.sort_by_key(|r| (r.index, r.attempt, r.job_id, r.step.clone(), r.task_id));
    let c = Collection {
        root: "/scratch/u/run".to_owned(),
        records,
        submissions: submissions
            .into_iter()
            .enumerate()
            .map(|(k, submission)| OwnedSubmission {
                name: format!("{k}.json"),
                uid: 1000,
                submission,
            })
            .collect(),
        owner_uid: Some(1000),
        ..Collection::default()
    };
    let summary: Summary = summarize(&c);
    assert_round_trip(&summary);
    let manifest = manifest_bytes(&c, &summary);
    for line in manifest.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        serde_json::from_slice::<serde_json::Value>(line).expect("manifest line is JSON");
    }
    let csv = csv_bytes(&c, &summary);
    let rows: usize = summary.units.iter().map(|u| u.records.len().max(1)).sum();
    assert_eq!(
        csv.iter().filter(|&&b| b == b'\n').count(),
        rows + 1 + csv_newlines_in_fields(&c, &summary),
        "one CSV row per standing task record, one per missing unit"
    );
    let _ = frames_core::merge::unit_views(&c, &summary);
});

/// Newlines inside quoted fields of the standing records (rows are otherwise one line each).
fn csv_newlines_in_fields(c: &Collection, s: &Summary) -> usize {
    let subs = Submissions::new(c);
    let lines = |t: &str| t.matches('\n').count();
    s.units
        .iter()
        .flat_map(|u| u.records.iter().filter_map(|&i| c.records.get(i)))
        .map(|r| {
            lines(&r.node)
                + lines(&r.step)
                + lines(r.reason.as_deref().unwrap_or(""))
                + lines(r.frame_path.as_deref().unwrap_or(""))
                + lines(&subs.output_file(r).unwrap_or_default())
        })
        .sum()
}
