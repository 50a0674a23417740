//! Summary statistics of timing samples: median, min, mean, standard deviation, a bootstrap
//! confidence interval of the median, Tukey outlier fences, and the two-sample bootstrap that
//! `compare` uses for a speedup's interval and p-value.
//!
//! Timings are skewed (a floor set by the hardware, a long tail from interrupts and other
//! processes), so the median is the headline figure and every interval comes from resampling the
//! raw samples rather than from a normal approximation. Resampling is seeded: the same samples
//! give the same interval.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Bootstrap resamples for every interval: enough that the 2.5% and 97.5% quantiles of the
/// resampled statistic move by well under 1% between seeds for the sample sizes benches take.
pub const BOOTSTRAP_RESAMPLES: usize = 2000;

/// The statistics of one set of samples (nanoseconds per call).
#[derive(Clone, Debug, PartialEq)]
pub struct Summary {
    pub median: f64,
    pub min: f64,
    pub mean: f64,
    /// Sample standard deviation (n - 1 in the denominator); 0 for a single sample.
    pub stddev: f64,
    /// 95% bootstrap percentile interval of the median.
    pub ci95_lo: f64,
    pub ci95_hi: f64,
    /// Samples outside the Tukey fences `[Q1 - 1.5 IQR, Q3 + 1.5 IQR]`. Flagged, never dropped.
    pub outliers: usize,
}

impl Summary {
    /// Summarises `samples`; `None` when there are none or any is not finite.
    pub fn of(samples: &[f64]) -> Option<Summary> {
        if samples.is_empty() || samples.iter().any(|s| !s.is_finite()) {
            return None;
        }
        let mut sorted = samples.to_vec();
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len() as f64;
        let mean = sorted.iter().sum::<f64>() / n;
        let stddev = if sorted.len() > 1 {
            (sorted.iter().map(|s| (s - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt()
        } else {
            0.0
        };
        let (lo, hi) = bootstrap_ci(samples, median_of, 0.95, seed_of(samples));
        let (fence_lo, fence_hi) = tukey_fences(&sorted);
        Some(Summary {
            median: quantile_sorted(&sorted, 0.5),
            min: sorted[0],
            mean,
            stddev,
            ci95_lo: lo,
            ci95_hi: hi,
            outliers: sorted
                .iter()
                .filter(|&&s| s < fence_lo || s > fence_hi)
                .count(),
        })
    }
}

/// The `q`-quantile of sorted data, linear interpolation between order statistics (the
/// "type 7" definition most tools use).
pub fn quantile_sorted(sorted: &[f64], q: f64) -> f64 {
    assert!(!sorted.is_empty(), "quantile of no data");
    let pos = q.clamp(0.0, 1.0) * (sorted.len() - 1) as f64;
    let i = pos.floor() as usize;
    let frac = pos - i as f64;
    match sorted.get(i + 1) {
        Some(next) => sorted[i] + frac * (next - sorted[i]),
        None => sorted[i],
    }
}

/// The median of unsorted data.
pub fn median_of(samples: &[f64]) -> f64 {
    let mut s = samples.to_vec();
    s.sort_by(f64::total_cmp);
    quantile_sorted(&s, 0.5)
}

/// Tukey's fences `(Q1 - 1.5 IQR, Q3 + 1.5 IQR)` of sorted data.
pub fn tukey_fences(sorted: &[f64]) -> (f64, f64) {
    let q1 = quantile_sorted(sorted, 0.25);
    let q3 = quantile_sorted(sorted, 0.75);
    let iqr = q3 - q1;
    (q1 - 1.5 * iqr, q3 + 1.5 * iqr)
}

/// Whether each sample lies outside the Tukey fences of the set, in the samples' order.
pub fn tukey_flags(samples: &[f64]) -> Vec<bool> {
    if samples.is_empty() {
        return Vec::new();
    }
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    let (lo, hi) = tukey_fences(&sorted);
    samples.iter().map(|&s| s < lo || s > hi).collect()
}

/// A deterministic seed from the data, so an interval is reproducible from the samples alone.
fn seed_of(samples: &[f64]) -> u64 {
    samples.iter().fold(0x9e37_79b9_7f4a_7c15u64, |h, s| {
        (h ^ s.to_bits()).wrapping_mul(0x100_0000_01b3)
    })
}

/// Percentile bootstrap interval at `level` of `stat` over `samples`.
pub fn bootstrap_ci(
    samples: &[f64],
    stat: impl Fn(&[f64]) -> f64,
    level: f64,
    seed: u64,
) -> (f64, f64) {
    if samples.len() < 2 {
        let v = stat(samples);
        return (v, v);
    }
    let mut rng = StdRng::seed_from_u64(seed);
    let mut buf = vec![0.0; samples.len()];
    let mut stats: Vec<f64> = (0..BOOTSTRAP_RESAMPLES)
        .map(|_| {
            for b in buf.iter_mut() {
                *b = samples[rng.gen_range(0..samples.len())];
            }
            stat(&buf)
        })
        .collect();
    stats.sort_by(f64::total_cmp);
    let tail = (1.0 - level) / 2.0;
    (
        quantile_sorted(&stats, tail),
        quantile_sorted(&stats, 1.0 - tail),
    )
}

/// The speedup of `new` over `base` (`median(base) / median(new)`: above 1 is faster) with a
/// two-sample bootstrap interval and a two-sided p-value.
#[derive(Clone, Debug, PartialEq)]
pub struct SpeedupEstimate {
    pub speedup: f64,
    pub ci_lo: f64,
    pub ci_hi: f64,
    /// Two-sided bootstrap p-value of "no change" (speedup 1): twice the smaller fraction of
    /// resampled speedups on either side of 1, floored at one resample's weight.
    pub p_value: f64,
}

/// Resamples `base` and `new` independently `BOOTSTRAP_RESAMPLES` times and takes the ratio of
/// medians each time. With one sample on a side (llama-bench rows carry their samples; a file
/// that lost them has one value) that side contributes no spread.
pub fn speedup_bootstrap(base: &[f64], new: &[f64], level: f64, seed: u64) -> SpeedupEstimate {
    assert!(!base.is_empty() && !new.is_empty(), "speedup of no samples");
    let speedup = median_of(base) / median_of(new);
    let mut rng = StdRng::seed_from_u64(seed);
    let mut bb = vec![0.0; base.len()];
    let mut nb = vec![0.0; new.len()];
    let mut ratios: Vec<f64> = (0..BOOTSTRAP_RESAMPLES)
        .map(|_| {
            for b in bb.iter_mut() {
                *b = base[rng.gen_range(0..base.len())];
            }
            for b in nb.iter_mut() {
                *b = new[rng.gen_range(0..new.len())];
            }
            median_of(&bb) / median_of(&nb)
        })
        .collect();
    ratios.sort_by(f64::total_cmp);
    let tail = (1.0 - level) / 2.0;
    let r = ratios.len() as f64;
    let below = ratios.iter().filter(|&&x| x <= 1.0).count() as f64 / r;
    let above = ratios.iter().filter(|&&x| x >= 1.0).count() as f64 / r;
    let p_value = (2.0 * below.min(above)).clamp(1.0 / r, 1.0);
    SpeedupEstimate {
        speedup,
        ci_lo: quantile_sorted(&ratios, tail),
        ci_hi: quantile_sorted(&ratios, 1.0 - tail),
        p_value,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_of_known_data() {
        let s = Summary::of(&[4.0, 1.0, 3.0, 2.0, 100.0]).unwrap();
        assert_eq!(s.median, 3.0);
        assert_eq!(s.min, 1.0);
        assert_eq!(s.mean, 22.0);
        // Q1 = 2, Q3 = 4, IQR = 2: fences (-1, 7); 100 is the one outlier.
        assert_eq!(s.outliers, 1);
        assert!(s.ci95_lo <= s.median && s.median <= s.ci95_hi);
        let sd = ((18f64.powi(2) + 21f64.powi(2) + 19f64.powi(2) + 20f64.powi(2) + 78f64.powi(2))
            / 4.0)
            .sqrt();
        assert!((s.stddev - sd).abs() < 1e-12);
        assert!(tukey_flags(&[4.0, 1.0, 3.0, 2.0, 100.0])[4]);
    }

    #[test]
    fn no_samples_or_nan_give_none() {
        assert!(Summary::of(&[]).is_none());
        assert!(Summary::of(&[1.0, f64::NAN]).is_none());
    }

    #[test]
    fn quantiles_interpolate() {
        let d = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(quantile_sorted(&d, 0.5), 2.5);
        assert_eq!(quantile_sorted(&d, 0.0), 1.0);
        assert_eq!(quantile_sorted(&d, 1.0), 4.0);
    }

    /// A 25% shift between two tight samples is significant with an interval around it; the
    /// same distribution on both sides is not.
    #[test]
    fn speedup_detects_a_shift_and_not_noise() {
        let mut rng = StdRng::seed_from_u64(7);
        let noisy = |rng: &mut StdRng, centre: f64| -> Vec<f64> {
            (0..20)
                .map(|_| centre * (1.0 + 0.02 * rng.gen_range(-1.0..1.0)))
                .collect()
        };
        let base = noisy(&mut rng, 100.0);
        let slow = noisy(&mut rng, 125.0);
        let e = speedup_bootstrap(&base, &slow, 0.95, 1);
        assert!((e.speedup - 0.8).abs() < 0.03, "{e:?}");
        assert!(e.ci_hi < 1.0 && e.p_value < 0.01, "{e:?}");
        let same = noisy(&mut rng, 100.0);
        let e = speedup_bootstrap(&base, &same, 0.95, 1);
        assert!(e.ci_lo < 1.0 && e.ci_hi > 1.0, "{e:?}");
    }
}
