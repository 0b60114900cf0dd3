//! The raw results of one benchmark run, as tests/bench/run.sh leaves them in its results
//! directory: plain text, one file per measurement. Timings hold one duration in seconds per
//! line; `params` the run's sizes (`key=value` words); `machine` the facts of the header
//! (`key=value` lines); hook files `plugin context hook µs` lines; sdiag snapshots
//! `MESSAGE_TYPE count` lines; rss files `KiB command line` lines; `qpu.txt` the qpu_bench
//! example's summary lines; `load` `part|time|load` lines. A missing file is a measurement not
//! taken.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use crate::stats::{Ranked, Runs};

pub struct Results {
    dir: PathBuf,
}

impl Results {
    pub fn open(dir: &Path) -> Results {
        Results {
            dir: dir.to_path_buf(),
        }
    }

    pub fn exists(&self, name: &str) -> bool {
        self.dir.join(name).exists()
    }

    /// The file's text; None when it is missing or unreadable.
    pub fn text(&self, name: &str) -> Option<String> {
        fs::read_to_string(self.dir.join(name)).ok()
    }

    /// The non-empty lines of a file (none when it is missing).
    pub fn lines(&self, name: &str) -> Vec<String> {
        self.text(name)
            .unwrap_or_default()
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(str::to_string)
            .collect()
    }

    /// The names of the files starting with `prefix`, sorted.
    pub fn names_with_prefix(&self, prefix: &str) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(&self.dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| n.starts_with(prefix))
            .collect();
        names.sort();
        names
    }

    /// The repeated runs timed into the file `name`; None when none was.
    pub fn runs(&self, name: &str) -> Option<Runs> {
        Runs::new(first_numbers(&self.lines(name)))
    }

    /// The median of the runs of `name`, rounded as printed.
    pub fn median(&self, name: &str) -> Option<f64> {
        self.runs(name).map(|r| r.median())
    }

    /// "median (min, max; n runs)" of `name` scaled to `unit`, or "not measured".
    pub fn describe(&self, name: &str, scale: f64, unit: &str) -> String {
        self.runs(name)
            .map_or_else(|| "not measured".to_string(), |r| r.describe(scale, unit))
    }

    /// `key=value` words of every line of a file (`params`, `machine`).
    pub fn settings(&self, name: &str) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        for line in self.lines(name) {
            // `machine` holds one setting per line (values with spaces); `params` several.
            let words: Vec<&str> = if line.matches('=').count() > 1 {
                line.split_whitespace().collect()
            } else {
                vec![line.as_str()]
            };
            for w in words {
                if let Some((k, v)) = w.split_once('=') {
                    out.insert(k.trim().to_string(), v.trim().to_string());
                }
            }
        }
        out
    }

    /// The hook-time samples of the files starting with each prefix, grouped by
    /// (plugin, context, callback), with their nearest-rank statistics; sorted by that key.
    pub fn hook_stats(&self, prefixes: &[&str]) -> Vec<HookStats> {
        let mut samples: BTreeMap<(String, String, String), Vec<u64>> = BTreeMap::new();
        for prefix in prefixes {
            for name in self.names_with_prefix(prefix) {
                for line in self.lines(&name) {
                    let f: Vec<&str> = line.split_whitespace().collect();
                    if let [plugin, context, hook, us, ..] = f[..]
                        && let Ok(us) = us.parse()
                    {
                        samples
                            .entry((plugin.into(), context.into(), hook.into()))
                            .or_default()
                            .push(us);
                    }
                }
            }
        }
        samples
            .into_iter()
            .filter_map(|((plugin, context, hook), v)| {
                Ranked::new(v).map(|stats| HookStats {
                    plugin,
                    context,
                    hook,
                    stats,
                })
            })
            .collect()
    }

    /// Lines containing `needle` in the files starting with `prefix`; None without such a file.
    pub fn count_lines_containing(&self, prefix: &str, needle: &str) -> Option<usize> {
        let names = self.names_with_prefix(prefix);
        (!names.is_empty()).then(|| {
            names
                .iter()
                .map(|n| self.lines(n).iter().filter(|l| l.contains(needle)).count())
                .sum()
        })
    }
}

/// The first number of each line (the sample; anything after it is a note).
pub fn first_numbers(lines: &[String]) -> Vec<f64> {
    lines
        .iter()
        .filter_map(|l| l.split_whitespace().next()?.parse().ok())
        .collect()
}

/// One callback's samples: "plugin context hook" and its statistics in µs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookStats {
    pub plugin: String,
    pub context: String,
    pub hook: String,
    pub stats: Ranked,
}

#[cfg(test)]
pub mod testdir {
    //! A results directory written by a test, removed when dropped.
    use std::path::PathBuf;

    pub struct TestDir(pub PathBuf);

    impl TestDir {
        pub fn new(tag: &str) -> TestDir {
            let dir = std::env::temp_dir().join(format!(
                "bench-report-{tag}-{}-{:?}",
                std::process::id(),
                std::thread::current().id()
            ));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            TestDir(dir)
        }

        pub fn write(&self, name: &str, text: &str) -> &TestDir {
            std::fs::write(self.0.join(name), text).unwrap();
            self
        }
    }

    impl Drop for TestDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testdir::TestDir;
    use super::*;

    #[test]
    fn reads_runs_settings_and_hook_samples() {
        let d = TestDir::new("results");
        d.write("merge-10000", "0.139000\n0.132000\n0.236000\n")
            .write("params", "quick=1 smoke=0 reps=3\n")
            .write("machine", "cpu=AMD EPYC 7B13\ncpus=2\n")
            .write(
                "hooks-used-steps",
                "spank_qrmi remote exit 5\nspank_qrmi remote exit 7\n",
            )
            .write("hooks-used-array", "spank_qrmi remote exit 9\nnoise\n")
            .write(
                "slurmdlog-unused-array-c1",
                "a\nRunning spank/epilog for jobid [4]\n",
            );
        let r = Results::open(&d.0);
        assert_eq!(r.median("merge-10000"), Some(0.139));
        assert_eq!(r.describe("absent", 1.0, "s"), "not measured");
        assert_eq!(r.settings("params")["reps"], "3");
        assert_eq!(r.settings("machine")["cpu"], "AMD EPYC 7B13");
        let hooks = r.hook_stats(&["hooks-used-"]);
        assert_eq!(hooks.len(), 1);
        assert_eq!((hooks[0].stats.count, hooks[0].stats.p50), (3, 7));
        assert_eq!(
            r.count_lines_containing("slurmdlog-unused-array-", "Running spank/epilog"),
            Some(1)
        );
        assert_eq!(r.count_lines_containing("slurmdlog-used-array-", "x"), None);
    }
}
