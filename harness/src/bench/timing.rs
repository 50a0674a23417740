//! The timing engine: every variant of a group (one kernel family on one shape, thread count
//! and cache mode) is warmed up, then the variants are sampled in alternation, one sample each
//! per repetition with the order rotated every repetition, so a slow drift of the machine (another
//! process starting, the clock changing) spreads over all variants instead of landing on the
//! one that happened to run last.
//!
//! A sample is the mean time of a batch of back-to-back calls, the batch sized in the warm-up so
//! that a sample lasts at least `min_time` (timer resolution and call overhead vanish for
//! microsecond kernels). A variant whose calls are slow takes fewer samples, never fewer than
//! [`MIN_REPS`], so that `max_time` bounds a run of big shapes on slow variants.

use std::time::{Duration, Instant};

/// Fewest samples a variant takes, whatever `max_time` says: medians and intervals of fewer mean
/// nothing.
pub const MIN_REPS: usize = 3;

/// How long to measure.
#[derive(Clone, Copy, Debug)]
pub struct TimingConfig {
    /// Samples per variant (fewer for slow variants, see `max_time`).
    pub reps: usize,
    /// Least duration of one sample; calls are batched to reach it.
    pub min_time: Duration,
    /// Warm-up per variant before sampling: at least one call and at least this long.
    pub warmup: Duration,
    /// Budget per variant for its samples; slower variants take fewer (at least [`MIN_REPS`]).
    pub max_time: Duration,
}

/// One call of a variant, with whatever rotation of inputs it does inside.
pub type Call<'a> = Box<dyn FnMut() + 'a>;

/// What the engine measured for one variant.
#[derive(Clone, Debug)]
pub struct Measured {
    /// Nanoseconds per call, one per sample, in the order taken.
    pub samples_ns: Vec<f64>,
    /// Calls per sample.
    pub batch: usize,
}

/// Warms up and samples every call of the group in alternation.
pub fn measure_group(calls: &mut [Call<'_>], cfg: &TimingConfig) -> Vec<Measured> {
    let reps = cfg.reps.max(1);
    let mut plan = Vec::with_capacity(calls.len());
    for call in calls.iter_mut() {
        let started = Instant::now();
        let mut n = 0u32;
        loop {
            call();
            n += 1;
            if started.elapsed() >= cfg.warmup {
                break;
            }
        }
        let per_call = started.elapsed().as_secs_f64() / f64::from(n);
        let batch = ((cfg.min_time.as_secs_f64() / per_call).ceil() as usize).max(1);
        let affordable = (cfg.max_time.as_secs_f64() / (per_call * batch as f64)).floor() as usize;
        plan.push((batch, reps.min(affordable.max(MIN_REPS.min(reps)))));
    }
    let mut samples: Vec<Vec<f64>> = plan.iter().map(|&(_, r)| Vec::with_capacity(r)).collect();
    let rounds = plan.iter().map(|&(_, r)| r).max().unwrap_or(0);
    let n = calls.len();
    for round in 0..rounds {
        for j in 0..n {
            let v = (j + round) % n;
            let (batch, want) = plan[v];
            if samples[v].len() >= want {
                continue;
            }
            let call = &mut calls[v];
            let t = Instant::now();
            for _ in 0..batch {
                call();
            }
            samples[v].push(t.elapsed().as_nanos() as f64 / batch as f64);
        }
    }
    samples
        .into_iter()
        .zip(plan)
        .map(|(samples_ns, (batch, _))| Measured { samples_ns, batch })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    #[test]
    fn alternates_and_batches() {
        let order = RefCell::new(Vec::new());
        let mut calls: Vec<Call> = (0..3)
            .map(|i| {
                let order = &order;
                Box::new(move || order.borrow_mut().push(i)) as Call
            })
            .collect();
        let cfg = TimingConfig {
            reps: 4,
            min_time: Duration::ZERO,
            warmup: Duration::ZERO,
            max_time: Duration::from_secs(10),
        };
        let m = measure_group(&mut calls, &cfg);
        assert!(m.iter().all(|m| m.samples_ns.len() == 4 && m.batch == 1));
        // Warm-up 0,1,2 then rounds rotated: 0 1 2 | 1 2 0 | 2 0 1 | 0 1 2.
        assert_eq!(
            order.borrow()[3..],
            [0, 1, 2, 1, 2, 0, 2, 0, 1, 0, 1, 2][..]
        );
    }

    #[test]
    fn slow_variants_take_fewer_samples_but_at_least_the_minimum() {
        let mut calls: Vec<Call> = vec![
            Box::new(|| std::thread::sleep(Duration::from_millis(5))),
            Box::new(|| {}),
        ];
        let cfg = TimingConfig {
            reps: 20,
            min_time: Duration::ZERO,
            warmup: Duration::ZERO,
            max_time: Duration::from_millis(1),
        };
        let m = measure_group(&mut calls, &cfg);
        assert_eq!(m[0].samples_ns.len(), MIN_REPS);
        assert!(m[0].samples_ns.iter().all(|&s| s >= 5e6));
    }
}
