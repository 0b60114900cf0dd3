//! Section 10 (issue 14): `frames gather` of node-local frames from 2 nodes through Slurm,
//! against the floor (`cp -r` of the same files), as a ratio measured in one run.

use crate::results::Results;

/// Section 10 from `gather-params` and the `gather-full`, `gather-again`, `gather-cp` samples.
pub fn gather(r: &Results) -> Option<String> {
    let full = r.median("gather-full")?;
    let params = r.settings("gather-params");
    let get = |k: &str| params.get(k).cloned().unwrap_or_else(|| "?".into());
    let floor = r.median("gather-cp");
    let ratio = floor.map_or_else(|| "n/a".into(), |f| format!("{:.1}", full / f));
    let rate = get("frames")
        .parse::<f64>()
        .ok()
        .zip(get("kib").parse::<f64>().ok())
        .map_or_else(
            || "?".into(),
            |(n, kib)| format!("{:.0}", n * kib / 1024.0 / full),
        );
    Some(format!(
        r#"## 10. frames gather of {frames} frames of {kib} KiB from {nodes} nodes (cluster)

Method: an array with `--frame-local` writes {frames} frames of {kib} KiB (random bytes) into
each node's own directory (`cluster.sh up --private-dir`; c1 holds {c1}, c2 {c2}), untimed.
Timed, wall clock: `frames gather DIR --to NEW --nodes c1,c2` as the user (one
`srun -N1 -w NODE frames serve-node` step per node in parallel, each streaming its records and
frames over srun's stdout; every frame checked against its record's BLAKE3, then the merge);
the same gather again (nothing new to fetch); and the floor: `cp -r` of both nodes' parts,
read from the host's view of them, into a new dir, both copies in parallel. Page cache warm for
all three.

| run | wall time |
|---|---|
| `frames gather`, everything new | {} |
| `frames gather` again, nothing new | {} |
| `cp -r` of the same files (floor) | {} |

Gather takes {ratio}× the floor ({rate} MiB/s of frames through two srun steps).
"#,
        r.describe("gather-full", 1.0, "s"),
        r.describe("gather-again", 1.0, "s"),
        r.describe("gather-cp", 1.0, "s"),
        frames = get("frames"),
        kib = get("kib"),
        nodes = get("nodes"),
        c1 = get("c1"),
        c2 = get("c2"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::testdir::TestDir;

    #[test]
    fn gather_section_from_its_samples() {
        let dir = TestDir::new("gather-section");
        assert!(gather(&Results::open(&dir.0)).is_none());
        dir.write(
            "gather-params",
            "frames=1000 kib=100 nodes=2 c1=500 c2=500\n",
        )
        .write("gather-full", "2.0\n2.2\n1.8\n")
        .write("gather-again", "0.5\n")
        .write("gather-cp", "0.4\n");
        let text = gather(&Results::open(&dir.0)).unwrap();
        assert!(text.starts_with("## 10. frames gather of 1000 frames of 100 KiB from 2 nodes"));
        assert!(
            text.contains("Gather takes 5.0× the floor (49 MiB/s"),
            "{text}"
        );
        assert!(text.contains("c1 holds 500, c2 500"), "{text}");
    }
}
