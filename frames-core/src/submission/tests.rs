//! Unit tests of submissions: command-line reading, resubmit commands, storage.
use super::*;
use crate::layout::Layout;
use crate::options::DEFAULT_RESULT_PREFIX;
use crate::pattern::DEFAULT_PATTERN;

fn argv(s: &str) -> Vec<String> {
    s.split(' ').map(str::to_owned).collect()
}

fn sub(s: &str) -> Submission {
    Submission::from_argv(&argv(s), "/home/u", 1.5)
}

#[test]
fn finds_the_array_spec_in_every_form() {
    for cmd in [
        "sbatch --array=0-119 render.sbatch",
        "sbatch --array 0-119 render.sbatch",
        "sbatch -a 0-119 render.sbatch",
        "sbatch -a0-119 render.sbatch",
        "sbatch -Ha0-119 render.sbatch",
        "sbatch --arr=0-119 render.sbatch",
        "sbatch -p all -N 1 --array=5 --array=0-119 render.sbatch",
        "sbatch --hold --array=0-119 -- render.sbatch",
        "sbatch -k --array=0-119 render.sbatch",
        "sbatch --exclusive --array=0-119 render.sbatch",
    ] {
        let s = sub(cmd);
        assert_eq!(s.array.as_deref(), Some("0-119"), "{cmd}");
        assert_eq!(s.script_path(), Some("render.sbatch"), "{cmd}");
    }
}

#[test]
fn options_after_the_script_belong_to_the_script() {
    let s = sub("sbatch -p all render.sbatch --array=0-9 -a 3");
    assert_eq!(s.array, None);
    assert_eq!(s.script_path(), Some("render.sbatch"));
    // A value that looks like a script is the option's value.
    let s = sub("sbatch -J render.sbatch --qpu ibm --array=1-3 job.sh");
    assert_eq!(s.array.as_deref(), Some("1-3"));
    assert_eq!(s.script_path(), Some("job.sh"));
    let s = sub("sbatch --wrap=hostname --array=0-3");
    assert_eq!(s.array.as_deref(), Some("0-3"));
    assert_eq!(s.script_path(), None);
    let s = sub("sbatch --wrap hostname -a 0-3");
    assert_eq!(s.array.as_deref(), Some("0-3"));
}

#[test]
fn plugin_options_are_taken_as_parsed() {
    let mut options = FrameOptions::default();
    for (name, value) in [
        ("frame-dir", "/shared/f"),
        ("frame-t0", "1.5"),
        ("frame-dt", "0.5"),
        ("frame-pattern", "s/%d.exr"),
        ("result-prefix", "R:"),
    ] {
        options.set(name, Some(value)).unwrap();
    }
    let line = argv(
        "sbatch --frame-dir=/shared/f --frame-t0 1.5 --frame-dt=0.5 --frame-pattern=s/%d.exr --result-prefix=R: x.sh",
    );
    let s = Submission::new(&line, "/home/u", 1.5, &options);
    assert_eq!(s.frame_dir, "/shared/f");
    assert_eq!((s.t0, s.dt), (1.5, 0.5));
    assert_eq!(s.frame_pattern, "s/%d.exr");
    assert_eq!(s.result_prefix, "R:");
    // The command line is kept as given (resubmit replays it); the options' values are
    // not taken for the script.
    assert_eq!(s.argv, line);
    assert_eq!(s.script_path(), Some("x.sh"));
    let d = sub("sbatch x.sh");
    assert_eq!(d.frame_pattern, DEFAULT_PATTERN);
    assert_eq!(d.result_prefix, DEFAULT_RESULT_PREFIX);
    assert_eq!((d.t0, d.dt), (0.0, 1.0));
}

#[test]
fn resubmit_replaces_array_in_place() {
    let s = sub("sbatch -p all --array=0-119 --frame-dir=/f render.sbatch --array=x arg");
    assert_eq!(
        s.resubmit_argv(&[3, 4, 5, 77], &[]),
        argv("sbatch -p all --array=3-5,77 --frame-dir=/f render.sbatch --array=x arg")
    );
    let s = sub("sbatch -a 0-9 r.sh");
    assert_eq!(s.resubmit_argv(&[1], &[]), argv("sbatch -a 1 r.sh"));
    let s = sub("sbatch -Ha0-9 r.sh");
    assert_eq!(s.resubmit_argv(&[1, 2], &[]), argv("sbatch -Ha1-2 r.sh"));
    let s = sub("sbatch --array 0-15%4 r.sh");
    assert_eq!(
        s.resubmit_argv(&[2, 9], &[]),
        argv("sbatch --array 2,9%4 r.sh")
    );
    let s = sub("sbatch --arr=0-9 r.sh");
    assert_eq!(s.resubmit_argv(&[2], &[]), argv("sbatch --arr=2 r.sh"));
}

#[test]
fn resubmit_adds_missing_array_and_excludes() {
    let s = sub("/usr/bin/sbatch -p all r.sh a b");
    assert_eq!(
        s.resubmit_argv(&[0], &["c2".into()]),
        argv("/usr/bin/sbatch --array=0 --exclude=c2 -p all r.sh a b")
    );
    let s = sub("sbatch -x c[1,3] --array=0-9 r.sh");
    assert_eq!(
        s.resubmit_argv(&[4], &["c2".into(), "c1".into(), "c[1,3]".into()]),
        argv("sbatch -x c[1,3],c2,c1 --array=4 r.sh")
    );
    let s = sub("sbatch --exclude=q1 --array=0-9 r.sh");
    assert_eq!(
        s.resubmit_argv(&[4], &["c2".into()]),
        argv("sbatch --exclude=q1,c2 --array=4 r.sh")
    );
    let s = sub("sbatch -xq1 --array=0-9 r.sh");
    assert_eq!(
        s.resubmit_argv(&[4], &["c2".into()]),
        argv("sbatch -xq1,c2 --array=4 r.sh")
    );
    // An exclude from #SBATCH lines is merged, since the command line overrides it.
    let mut s = sub("sbatch --array=0-9 r.sh");
    s.fill_from_script(
        "#!/bin/bash\n#SBATCH --exclude=bad1 # broken\n#SBATCH -p all\necho\n#SBATCH -x late\n",
    );
    assert_eq!(s.script_exclude.as_deref(), Some("bad1"));
    assert_eq!(
        s.resubmit_argv(&[4], &["c2".into()]),
        argv("sbatch --exclude=bad1,c2 --array=4 r.sh")
    );
    // No new nodes: the exclude is left alone.
    assert_eq!(s.resubmit_argv(&[4], &[]), argv("sbatch --array=4 r.sh"));
}

#[test]
fn array_from_script_or_env() {
    let mut s = sub("sbatch r.sh");
    s.fill_from_script(
        "#!/bin/sh\n\n# comment\n#SBATCH --job-name='a b'\n#SBATCH --array=0-119%10\nrender\n",
    );
    assert_eq!(s.array.as_deref(), Some("0-119%10"));
    let mut s = sub("sbatch r.sh");
    s.fill_from_env(Some("0-3"));
    s.fill_from_script("#SBATCH -a 0-9\n");
    assert_eq!(s.array.as_deref(), Some("0-3"));
    let mut s = sub("sbatch --array=1 r.sh");
    s.fill_from_env(Some("0-3"));
    assert_eq!(s.array.as_deref(), Some("1"));
    // Directives after the first command are ignored, as sbatch does.
    let mut s = sub("sbatch r.sh");
    s.fill_from_script("#!/bin/sh\necho hi\n#SBATCH --array=0-3\n");
    assert_eq!(s.array, None);
    // The added --array overrides the script's.
    assert_eq!(s.resubmit_argv(&[1], &[]), argv("sbatch --array=1 r.sh"));
}

#[test]
fn quoting() {
    assert_eq!(shell_quote("abc-1_2/x.y"), "abc-1_2/x.y");
    assert_eq!(shell_quote(""), "''");
    assert_eq!(shell_quote("a b"), "'a b'");
    assert_eq!(shell_quote("it's"), "'it'\\''s'");
    assert_eq!(shell_quote("$HOME"), "'$HOME'");
    assert_eq!(
        shell_join(&["sbatch".into(), "--wrap=echo hi".into()]),
        "sbatch '--wrap=echo hi'"
    );
}

#[test]
fn write_and_read_back() {
    let tmp = crate::test_util::TempDir::new("submission");
    let layout = Layout::new(tmp.path());
    assert!(read_all(&layout).unwrap().0.is_empty());
    layout.create_dirs().unwrap();
    let mut a = sub("sbatch --array=0-3 r.sh");
    let mut b = a.clone();
    b.time = 0.5;
    let pa = write(&layout, &mut a, "c1.local").unwrap();
    let first_id = a.id.clone();
    assert_eq!(
        first_id,
        format!("1.500000-c1_local-{}", std::process::id())
    );
    assert_eq!(pa, path_of(&layout, &first_id));
    let mut a2 = a.clone();
    let pa2 = write(&layout, &mut a2, "c1.local").unwrap();
    assert_ne!(pa, pa2);
    assert_eq!(a2.id, format!("{first_id}-1"));
    write(&layout, &mut b, "c1.local").unwrap();
    std::fs::write(layout.submissions_dir().join("junk.json"), "{").unwrap();
    // The outcome replaces the provisional file.
    a.state = SubmissionState::Accepted;
    a.job_id = Some(42);
    update(&layout, &a).unwrap();
    let (subs, problems) = read_all(&layout).unwrap();
    assert_eq!(subs, vec![b, a2, a]);
    assert_eq!(problems.len(), 1);
    assert!(problems[0].path.ends_with("junk.json"));
    assert!(problems[0].error.contains("not a submission"));
}

#[test]
fn version_1_submissions_are_read_as_accepted() {
    let v1 = r#"{"version":1,"time":1.5,"cwd":"/h","argv":["sbatch","--array=0-3","r.sh"],
        "array":"0-3","frame_dir":"/f","frame_pattern":"frame_%04d.png","t0":0.0,"dt":1.0,
        "result_prefix":"RESULT:"}"#;
    let s: Submission = serde_json::from_str(v1).unwrap();
    assert_eq!(s.state, SubmissionState::Accepted);
    assert_eq!((s.id.as_str(), s.uid, s.job_id), ("", None, None));
    // A new one starts provisional and says so in its file.
    let n = sub("sbatch r.sh");
    assert_eq!(n.state, SubmissionState::Provisional);
    let text = serde_json::to_string(&n).unwrap();
    assert!(text.contains(r#""state":"provisional""#), "{text}");
    assert_eq!(n.command(), "sbatch");
    assert_eq!(sub("/usr/bin/salloc -N2").command(), "salloc");
}

#[test]
fn a_rerun_is_taken_only_from_the_frames_process_that_runs_sbatch() {
    assert_eq!(rerun_of(&rerun_value(102, 4242), &[4242]), Some(102));
    assert_eq!(rerun_of(&rerun_value(102, 4242), &[99, 4242]), Some(102));
    // Inherited by a job whose script runs sbatch: other ancestors.
    assert_eq!(rerun_of(&rerun_value(102, 4242), &[777, 1]), None);
    for bad in ["", "102", "102:", ":4242", "x:4242", "102:x"] {
        assert_eq!(rerun_of(bad, &[4242]), None, "{bad}");
    }
    let me = std::process::id();
    // SAFETY: getppid(2) has no preconditions.
    let parent = u32::try_from(unsafe { libc::getppid() }).unwrap();
    assert_eq!(parent_of(me), Some(parent));
}

#[test]
fn is_sbatch() {
    assert!(sub("/opt/slurm/bin/sbatch x").is_sbatch());
    assert!(!sub("srun x").is_sbatch());
}

#[test]
fn output_file_follows_sbatchs_patterns() {
    let s = sub("sbatch -D run -o logs/%x-%A_%4a.%N.%%.out --array=0-3 r.sh");
    let t = s.output_template().expect("sbatch");
    assert_eq!(
        t.file(1005, Some((1000, 5)), "c2"),
        "/home/u/run/logs/%x-1000_0005.c2.%.out"
    );
    let plain = sub("sbatch --wrap=true");
    let t = plain.output_template().expect("sbatch");
    assert_eq!(t.file(42, None, "c1"), "/home/u/slurm-42.out");
    assert_eq!(t.file(43, Some((40, 3)), "c1"), "/home/u/slurm-40_3.out");
    let abs = sub("sbatch --output=/abs/%j.log r.sh");
    assert_eq!(
        abs.output_template().unwrap().file(7, None, "c1"),
        "/abs/7.log"
    );
    assert_eq!(sub("srun -n2 w").output_template(), None);
}

#[test]
fn the_plugins_flag_takes_no_value() {
    // --frame-sha256 is a flag: the word after it is the script, whose #SBATCH lines count.
    let mut s = sub("sbatch --frame-dir=/f --frame-sha256 r.sh --array=x");
    assert_eq!(s.script_path(), Some("r.sh"));
    s.fill_from_script("#!/bin/sh\n#SBATCH --array=0-3\n");
    assert_eq!(s.array.as_deref(), Some("0-3"));
    assert_eq!(
        sub("sbatch --frame-dir=/f --frame-local r.sh").script_path(),
        Some("r.sh")
    );
    // --frame-local is recorded in the submission (status and gather read it).
    let mut o = crate::options::FrameOptions::default();
    o.set("frame-dir", Some("/f")).unwrap();
    o.set("frame-local", None).unwrap();
    let argv = argv("sbatch --frame-dir=/f --frame-local r.sh");
    assert!(Submission::new(&argv, "/", 0.0, &o).frame_local);
    assert!(!sub("sbatch --frame-dir=/f r.sh").frame_local);
    // The plugin's options with a value keep taking one (attached or not).
    let s = sub("sbatch --result-prefix R: --frame-t0 1 --frame-pattern f_%d.exr r.sh");
    assert_eq!(s.script_path(), Some("r.sh"));
}
