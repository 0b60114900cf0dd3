//! The report sections of the cluster's hook pass (plugins and slurmd at debug level): each
//! callback's own time from the plugins' "hook ... took N us" lines (3) and the SPANK epilog
//! runs counted in the slurmd logs (4b).

use std::fmt::Write;

use crate::Run;
use crate::results::{HookStats, Results};

/// Table order of contexts and callbacks (Slurm's calling order); others sort first.
const CONTEXTS: [&str; 4] = ["allocator", "remote", "job_script", "slurmd"];
const HOOKS: [&str; 10] = [
    "init",
    "init_post_opt",
    "user_init",
    "task_init_privileged",
    "task_post_fork",
    "task_init",
    "task_exit",
    "exit",
    "job_prolog",
    "job_epilog",
];

fn position(list: &[&str], name: &str) -> usize {
    list.iter().position(|n| *n == name).map_or(0, |i| i + 1)
}

/// The hook statistics of one configuration (`unused` or `used`): steps, array and submissions.
fn config_stats(r: &Results, label: &str) -> Vec<HookStats> {
    r.hook_stats(&[&format!("hooks-{label}-")])
}

/// Sum of the remote-context medians of both plugins (µs): what one node's slurmstepd spends in
/// our callbacks for a step with one task on the node.
pub fn remote_median_sum(r: &Results, label: &str) -> u64 {
    config_stats(r, label)
        .iter()
        .filter(|h| h.context == "remote")
        .map(|h| h.stats.p50)
        .sum()
}

/// Section 3, then section 4b.
pub fn hook_times(r: &Results, run: &Run) -> Option<String> {
    if !r.exists("up-plugins-debug.log") && r.names_with_prefix("hooks-").is_empty() {
        return None;
    }
    let (unused, used) = (config_stats(r, "unused"), config_stats(r, "used"));
    let hsteps = run.param("hsteps");
    let htasks = run.param("htasks");
    let last_task = htasks
        .parse::<i64>()
        .map_or("?".into(), |n| (n - 1).to_string());
    let mut s = format!(
        r#"## 3. Hook time per callback (cluster)

Method: each plugin times its own callbacks (spank/src/export.rs: a monotonic clock from the
callback's entry to its return, logged at debug level as `<plugin>: hook <hook> in <context>
context took <N> us`; Slurm's loading of the .so and its dispatch between plugins are not
included). A third bring-up of the cluster in this run loads both plugins with
`log_level=debug` and runs slurmd at debug level; it is not used for the timings of section 1
(debug logging costs time). Per configuration: `salloc -vv` with {hsteps} sequential
`srun -N2 -n2 true`, `sbatch -vv --array=0-{last_task}` of `true`, and {hsubmits} `sbatch -vv --test-only`
(allocator context only). Remote and job_script lines are read from the nodes' slurmd logs,
allocator lines from sbatch/salloc's stderr. Percentiles are nearest-rank over all samples of
a callback; values in µs. The times include the debug logging inside the callbacks and the
machine's load at that time (load table at the end); the same callbacks at the shipped log
level were not timed.

Not visible: srun's own (local context) callbacks. srun runs `init` and `init_post_opt`
before it applies `-v`, so their debug lines are dropped (tried with -vv to -vvvv). The same
code runs in allocator context (`init_post_opt` checks the options in both), so the allocator
rows stand for it. `init` in allocator context is not visible either (sbatch and salloc also
apply `-v` after it).

| plugin | context | callback | unused: n | p50 | p99 | max | used: n | p50 | p99 | max |
|---|---|---|---|---|---|---|---|---|---|---|
"#,
        hsubmits = run.param("hsubmits"),
    );
    s.push_str(&hook_table(&unused, &used));
    let _ = write!(
        s,
        "
Sum of the remote-context medians (both plugins, all their callbacks in slurmstepd, one task
per node): **{} µs** with options unused, **{} µs** with options used, per node and step.
",
        remote_median_sum(r, "unused"),
        remote_median_sum(r, "used")
    );
    let slurmd: Vec<String> = r
        .hook_stats(&["hooks-slurmd"])
        .iter()
        .map(|h| {
            format!(
                "{} init in slurmd context (once per slurmd start): n {}, p50 {} µs",
                h.plugin, h.stats.count, h.stats.p50
            )
        })
        .collect();
    if !slurmd.is_empty() {
        let _ = writeln!(s, "{}.", slurmd.join("; "));
    }
    if r.exists("hooks-unused-array") {
        let runs = r
            .lines("hooks-unused-array")
            .iter()
            .filter(|l| {
                l.split_whitespace().take(3).collect::<Vec<_>>()
                    == ["spank_qrmi", "job_script", "job_epilog"]
            })
            .count();
        let _ = writeln!(
            s,
            "\nThe SPANK epilog (spank_qrmi job_epilog, job_script context) ran {runs} times for the {htasks} tasks of the options-unused array (spank_qrmi exports no job_epilog: 0 is the target)."
        );
    }
    // Callbacks of 1 ms or more at p50: where the "options used" time goes.
    let slow: Vec<String> = used
        .iter()
        .filter(|h| h.stats.p50 >= 1000)
        .map(|h| {
            format!(
                "{} {} ({} context): p50 {:.1} ms, p99 {:.1} ms",
                h.plugin,
                h.hook,
                h.context,
                h.stats.p50 as f64 / 1000.0,
                h.stats.p99 as f64 / 1000.0
            )
        })
        .collect();
    if !slow.is_empty() {
        let _ = writeln!(
            s,
            "\nCallbacks with a median of 1 ms or more (options used): {}.",
            slow.join("; ")
        );
    }
    s.push_str(
        "
What these callbacks do with the options used: spank_frames `init_post_opt` in allocator
context records the submission in the frame directory (a file written and fsynced); spank_qrmi `init_post_opt` in remote context
looks the job up (`slurm_load_job`, one RPC) and takes the QPU lease (lock, lease file written
and fsynced, accounting line); spank_frames `task_init` prepares the task's record and starts
the result-capture process, and `task_exit` writes the task's record (temp file, fsync, link,
directory fsync) after checksumming the frame; spank_qrmi `exit` in the batch step releases the
job's leases (other steps leave that to the job's keeper process, outside every hook). With
the options unused each callback returns after reading its options.

",
    );
    s.push_str(&epilog_runs(r, &htasks));
    Some(s)
}

/// The rows of section 3's table: one per callback seen in either configuration, in
/// plugin, context, callback order (contexts and callbacks in Slurm's calling order).
fn hook_table(unused: &[HookStats], used: &[HookStats]) -> String {
    let cells = |stats: &[HookStats], h: &HookStats| {
        stats
            .iter()
            .find(|o| (&o.plugin, &o.context, &o.hook) == (&h.plugin, &h.context, &h.hook))
            .map_or_else(
                || "0 | | |".to_string(),
                |o| {
                    let st = &o.stats;
                    format!("{} | {} | {} | {}", st.count, st.p50, st.p99, st.max)
                },
            )
    };
    let mut rows: Vec<(String, usize, usize, String)> = Vec::new();
    for h in unused.iter().chain(used) {
        let row = format!(
            "| {} | {} | {} | {} | {} |",
            h.plugin,
            h.context,
            h.hook,
            cells(unused, h),
            cells(used, h)
        );
        let key = (
            h.plugin.clone(),
            position(&CONTEXTS, &h.context),
            position(&HOOKS, &h.hook),
            row,
        );
        if !rows.contains(&key) {
            rows.push(key);
        }
    }
    rows.sort();
    rows.into_iter().map(|(.., row)| row + "\n").collect()
}

/// Section 4b: SPANK epilog runs counted in the slurmd logs of the hook pass's array jobs.
fn epilog_runs(r: &Results, htasks: &str) -> String {
    const RUN_LINE: &str = "Running spank/epilog for jobid";
    let count =
        |label: &str| r.count_lines_containing(&format!("slurmdlog-{label}-array-"), RUN_LINE);
    let show = |n: Option<usize>| n.map_or_else(|| "not measured".to_string(), |n| n.to_string());
    let target = match count("unused") {
        Some(0) => "**met** (0 runs)".to_string(),
        n => format!("**missed** ({})", show(n)),
    };
    format!(
        r#"## 4b. SPANK epilog runs inside a live slurmd (cluster, hook pass of section 3)

Once any loaded plugin exports `slurm_spank_job_epilog`, slurmd 22.05 runs a SPANK epilog
for **every** job on the node (fork and exec of `slurmstepd spank epilog`, both .so loaded,
p50 21 ms in an earlier run when spank_qrmi had one) and reports it with a
MESSAGE_EPILOG_COMPLETE RPC (section 2). Neither of our plugins exports it now. Method: the
slurmd logs (debug level) of the array workloads of section 3, {htasks} single-node jobs per
configuration: SPANK epilog runs counted ("Running spank/epilog for jobid").

| configuration | SPANK epilog runs for the {htasks} jobs |
|---|---|
| options unused | {} |
| options used | {} |

Target: 0 extra epilog runs per job without QPU: {target}.
"#,
        show(count("unused")),
        show(count("used")),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::Ranked;

    fn stats(plugin: &str, context: &str, hook: &str, samples: Vec<u64>) -> HookStats {
        HookStats {
            plugin: plugin.into(),
            context: context.into(),
            hook: hook.into(),
            stats: Ranked::new(samples).unwrap(),
        }
    }

    #[test]
    fn table_rows_in_calling_order_with_absent_configurations() {
        let unused = vec![
            stats("spank_qrmi", "remote", "exit", vec![5, 8]),
            stats("spank_qrmi", "remote", "init", vec![36]),
        ];
        let used = vec![
            stats("spank_frames", "remote", "task_exit", vec![11450]),
            stats("spank_qrmi", "allocator", "init_post_opt", vec![18]),
            stats("spank_qrmi", "remote", "init", vec![40]),
        ];
        assert_eq!(
            hook_table(&unused, &used),
            "| spank_frames | remote | task_exit | 0 | | | | 1 | 11450 | 11450 | 11450 |\n\
             | spank_qrmi | allocator | init_post_opt | 0 | | | | 1 | 18 | 18 | 18 |\n\
             | spank_qrmi | remote | init | 1 | 36 | 36 | 36 | 1 | 40 | 40 | 40 |\n\
             | spank_qrmi | remote | exit | 2 | 5 | 8 | 8 | 0 | | | |\n"
        );
    }
}
