//! The statistics of the benchmark report, with the definitions the report states: median of
//! repeated runs (mean of the two middle values for an even count), nearest-rank percentiles
//! (the value at rank ⌈p·n⌉ of the sorted samples), means. Values that the report quotes and then
//! reuses are rounded the way they are printed, so every derived figure is computed from the
//! number a reader sees.

/// `x` rounded to 6 decimals: the precision the raw files and the medians are kept in.
pub fn round6(x: f64) -> f64 {
    format!("{x:.6}").parse().unwrap_or(x)
}

/// `x` rounded to 6 significant digits (`%.6g`): the precision of a mean kept as an
/// intermediate value (the memory baseline).
pub fn round_sig6(x: f64) -> f64 {
    format!("{x:.5e}").parse().unwrap_or(x)
}

/// Repeated wall-clock runs of one workload, in seconds (one sample per line in its raw file).
#[derive(Debug, Clone, PartialEq)]
pub struct Runs {
    sorted: Vec<f64>,
}

impl Runs {
    /// None without a sample (the workload did not run).
    pub fn new(mut samples: Vec<f64>) -> Option<Runs> {
        if samples.is_empty() {
            return None;
        }
        samples.sort_by(f64::total_cmp);
        Some(Runs { sorted: samples })
    }

    /// The median, rounded to 6 decimals.
    pub fn median(&self) -> f64 {
        let v = &self.sorted;
        let n = v.len();
        let m = if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        };
        round6(m)
    }

    pub fn min(&self) -> f64 {
        round6(self.sorted[0])
    }

    pub fn max(&self) -> f64 {
        round6(self.sorted[self.sorted.len() - 1])
    }

    pub fn count(&self) -> usize {
        self.sorted.len()
    }

    /// "median unit (min a, max b; n runs)" with every value multiplied by `scale`.
    pub fn describe(&self, scale: f64, unit: &str) -> String {
        format!(
            "{:.3} {unit} (min {:.3}, max {:.3}; {} runs)",
            self.median() * scale,
            self.min() * scale,
            self.max() * scale,
            self.count()
        )
    }
}

/// Nearest-rank percentiles of integer samples (hook times in µs, epilog spans in ms).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ranked {
    pub count: usize,
    pub p50: u64,
    pub p99: u64,
    pub max: u64,
}

/// The 1-based nearest rank ⌈p·n⌉ of percentile `p` (0 < p ≤ 1) among `n` samples.
fn nearest_rank(p: f64, n: usize) -> usize {
    ((p * n as f64).ceil() as usize).clamp(1, n)
}

impl Ranked {
    /// None without a sample.
    pub fn new(mut samples: Vec<u64>) -> Option<Ranked> {
        if samples.is_empty() {
            return None;
        }
        samples.sort_unstable();
        let n = samples.len();
        Some(Ranked {
            count: n,
            p50: samples[nearest_rank(0.5, n) - 1],
            p99: samples[nearest_rank(0.99, n) - 1],
            max: samples[n - 1],
        })
    }
}

/// The arithmetic mean; None without a value.
pub fn mean(values: &[f64]) -> Option<f64> {
    (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        let odd = Runs::new(vec![0.3, 0.1, 0.2]).unwrap();
        assert_eq!(
            (odd.median(), odd.min(), odd.max(), odd.count()),
            (0.2, 0.1, 0.3, 3)
        );
        // Even count: the mean of the two middle values, rounded to 6 decimals.
        let even = Runs::new(vec![1.0, 0.000001, 0.000002, 2.0]).unwrap();
        assert_eq!(even.median(), 0.500001);
        let even = Runs::new(vec![4.0, 1.0, 3.0, 2.0]).unwrap();
        assert_eq!(even.median(), 2.5);
        assert_eq!(Runs::new(Vec::new()), None);
    }

    #[test]
    fn describe_scales_every_value() {
        let runs = Runs::new(vec![0.002085, 0.001649, 0.013228]).unwrap();
        assert_eq!(
            runs.describe(1000.0, "ms"),
            "2.085 ms (min 1.649, max 13.228; 3 runs)"
        );
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        // Rank ⌈0.5·n⌉ and ⌈0.99·n⌉, 1-based: no interpolation between samples.
        let r = Ranked::new((1..=100).rev().collect()).unwrap();
        assert_eq!((r.count, r.p50, r.p99, r.max), (100, 50, 99, 100));
        let r = Ranked::new(vec![7, 1, 3, 5]).unwrap();
        assert_eq!((r.p50, r.p99, r.max), (3, 7, 7));
        let r = Ranked::new((1..=300).collect()).unwrap();
        assert_eq!((r.p50, r.p99), (150, 297));
        let r = Ranked::new(vec![42]).unwrap();
        assert_eq!((r.p50, r.p99, r.max), (42, 42, 42));
        assert_eq!(Ranked::new(Vec::new()), None);
    }

    #[test]
    fn rounding_matches_the_printed_precision() {
        assert_eq!(round6(0.1234564999), 0.123456);
        assert_eq!(round6(2.0000005), 2.000001);
        assert_eq!(round_sig6(5888.5), 5888.5);
        assert_eq!(round_sig6(123456.7), 123457.0);
        assert_eq!(mean(&[1.0, 2.0]), Some(1.5));
        assert_eq!(mean(&[]), None);
    }
}
