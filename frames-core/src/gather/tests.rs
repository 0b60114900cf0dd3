//! Unit tests of the gather stream: a node's part arrives verified, a changed frame is refused,
//! a second gather sends nothing, a cut stream is incomplete, the status notes.
use super::*;
use crate::record::frame_checksum;
use crate::record::tests::sample;
use crate::test_util::TempDir;

fn node_dir(t: &TempDir, indices: &[u64]) -> Layout {
    let l = Layout::new(t.path().join("dir"));
    l.create_dirs().unwrap();
    for &i in indices {
        let frame = l.root().join(format!("frame_{i:04}.png"));
        std::fs::write(&frame, format!("pixels of {i}").repeat(100)).unwrap();
        let d = frame_checksum(&frame, false).unwrap();
        let mut r = sample(i);
        // SAFETY: geteuid(2) has no preconditions.
        r.uid = Some(unsafe { libc::geteuid() });
        r.frame_path = Some(frame.display().to_string());
        r.frame_size = Some(d.size);
        r.frame_blake3 = Some(d.blake3);
        r.frame_sha256 = None;
        r.decide(true);
        let key = key_of(&r).unwrap();
        host_io::write_new(&l.record_path(&key), &serde_json::to_vec(&r).unwrap()).unwrap();
    }
    l
}

fn transfer(src: &Layout, dest: &Layout) -> Received {
    let mut stream = Vec::new();
    serve(src, &have(dest).unwrap(), &mut stream).unwrap();
    receive(dest, src.root(), "c1", &mut &stream[..], |_| {}).unwrap()
}

#[test]
fn frames_arrive_verified_and_a_second_gather_sends_nothing() {
    let (tn, th) = (TempDir::new("gn"), TempDir::new("gh"));
    let node = node_dir(&tn, &[0, 1, 2]);
    let host = Layout::new(th.path().join("local"));
    let got = transfer(&node, &host);
    assert!(got.complete);
    assert_eq!((got.records, got.frames), (3, 3));
    assert!(got.corrupt.is_empty() && got.problems.is_empty(), "{got:?}");
    assert_eq!(
        std::fs::read(host.root().join("frame_0001.png")).unwrap(),
        std::fs::read(node.root().join("frame_0001.png")).unwrap()
    );
    let s = crate::merge::merge(&host).unwrap();
    assert_eq!(s.done, 3);
    let again = transfer(&node, &host);
    assert!(again.complete);
    assert_eq!((again.records, again.bytes), (0, 0));
}

#[test]
fn a_frame_changed_on_the_node_is_reported_and_not_kept() {
    let (tn, th) = (TempDir::new("gn"), TempDir::new("gh"));
    let node = node_dir(&tn, &[0, 1]);
    std::fs::write(node.root().join("frame_0001.png"), "x".repeat(1300)).unwrap();
    let host = Layout::new(th.path().join("local"));
    let got = transfer(&node, &host);
    assert_eq!(got.records, 1);
    assert_eq!(got.corrupt.len(), 1, "{got:?}");
    assert!(got.corrupt[0].contains("index 1") && got.corrupt[0].contains("on c1"));
    assert!(!host.root().join("frame_0001.png").exists());
    // Asked for again next time (and refused again while it differs).
    assert_eq!(transfer(&node, &host).corrupt.len(), 1);
}

#[test]
fn a_cut_stream_is_incomplete_and_keeps_what_arrived_whole() {
    let (tn, th) = (TempDir::new("gn"), TempDir::new("gh"));
    let node = node_dir(&tn, &[0, 1]);
    let host = Layout::new(th.path().join("local"));
    let mut stream = Vec::new();
    serve(&node, &BTreeSet::new(), &mut stream).unwrap();
    stream.truncate(stream.len() - 40);
    let got = receive(&host, node.root(), "c1", &mut &stream[..], |_| {}).unwrap();
    assert!(!got.complete);
    assert_eq!(got.records, 1);
}

#[test]
fn status_refuses_to_guess_on_a_node_part_or_an_ungathered_local_dir() {
    let t = TempDir::new("gs");
    let l = node_dir(&t, &[0]);
    assert_eq!(status_note(&l, &[], 1), Ok(None));
    mark(
        &l,
        &NodeMark {
            node: "c2".into(),
            declared: false,
            submission: None,
        },
    )
    .unwrap();
    let e = status_note(&l, &[], 1).unwrap_err();
    assert!(
        e.contains("node c2's own part") && e.contains("not shared"),
        "{e}"
    );
    let mut sub = crate::submission::Submission::from_argv(&["sbatch".into()], "/", 0.0);
    sub.frame_local = true;
    let e = status_note(&l, std::slice::from_ref(&sub), 0).unwrap_err();
    assert!(e.contains("not gathered yet"), "{e}");
    let mut g = Gathered::default();
    g.nodes.insert("c1".into(), NodeGather::default());
    g.nodes.insert(
        "c2".into(),
        NodeGather {
            error: Some("node state DOWN".into()),
            ..Default::default()
        },
    );
    g.write(&l).unwrap();
    let note = status_note(&l, &[sub], 1).unwrap().unwrap();
    assert!(
        note.contains("unreachable on c2 (node state DOWN)"),
        "{note}"
    );
}
