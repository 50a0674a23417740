//! Choosing the next token from the logits: greedy, or llama.cpp's default chain — repetition
//! penalty, top-k, top-p, min-p, temperature, then a draw from the softmax with a seeded
//! ChaCha20 generator (`rand_chacha`: its output is fixed by the algorithm, so the same seed
//! gives the same text on every platform and `rand` version). Buffers are allocated once; a
//! draw does not allocate.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SamplerOptions {
    /// 0 (or below) is greedy: the highest logit, the lowest id on ties.
    pub temperature: f32,
    /// Keep the `top_k` most likely tokens; 0 keeps all.
    pub top_k: usize,
    /// Keep the smallest set whose probability reaches `top_p`; 1 keeps all.
    pub top_p: f32,
    /// Drop tokens less likely than `min_p` times the most likely one; 0 keeps all.
    pub min_p: f32,
    /// Logits of tokens among the last `repeat_last_n` are divided (if positive) or multiplied
    /// (if negative) by this; 1 is off.
    pub repeat_penalty: f32,
    pub repeat_last_n: usize,
    pub seed: u64,
}

impl Default for SamplerOptions {
    /// llama.cpp's defaults, with a fixed seed.
    fn default() -> Self {
        SamplerOptions {
            temperature: 0.8,
            top_k: 40,
            top_p: 0.95,
            min_p: 0.05,
            repeat_penalty: 1.0,
            repeat_last_n: 64,
            seed: 0,
        }
    }
}

impl SamplerOptions {
    pub fn greedy() -> Self {
        SamplerOptions {
            temperature: 0.0,
            ..Default::default()
        }
    }

    /// A one-line reason the options are out of range.
    pub fn check(&self) -> Result<(), String> {
        if !self.temperature.is_finite() {
            return Err(format!("temperature {} is not finite", self.temperature));
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return Err(format!("top-p {} is not in (0, 1]", self.top_p));
        }
        if !(0.0..=1.0).contains(&self.min_p) {
            return Err(format!("min-p {} is not in [0, 1]", self.min_p));
        }
        if !(self.repeat_penalty.is_finite() && self.repeat_penalty > 0.0) {
            return Err(format!(
                "repeat penalty {} is not positive",
                self.repeat_penalty
            ));
        }
        Ok(())
    }
}

/// A sampler for a vocabulary of fixed size.
pub struct Sampler {
    opts: SamplerOptions,
    rng: ChaCha20Rng,
    /// (logit, id) candidates of the current draw.
    cand: Vec<(f32, u32)>,
    /// Penalised logits of the current draw.
    logits: Vec<f32>,
    /// The last `repeat_last_n` tokens, a ring.
    recent: Vec<u32>,
    recent_next: usize,
    /// Marks tokens already penalised in this draw.
    seen: Vec<bool>,
}

impl Sampler {
    pub fn new(opts: SamplerOptions, n_vocab: usize) -> Sampler {
        Sampler {
            opts,
            rng: ChaCha20Rng::seed_from_u64(opts.seed),
            cand: Vec::with_capacity(n_vocab),
            logits: vec![0.0; n_vocab],
            recent: Vec::with_capacity(opts.repeat_last_n),
            recent_next: 0,
            seen: vec![false; n_vocab],
        }
    }

    /// Records a token as generated (or given in the prompt) for the repetition penalty.
    pub fn accept(&mut self, token: u32) {
        let n = self.opts.repeat_last_n;
        if n == 0 {
            return;
        }
        if self.recent.len() < n {
            self.recent.push(token);
        } else {
            self.recent[self.recent_next] = token;
            self.recent_next = (self.recent_next + 1) % n;
        }
    }

    /// The next token for `logits` (one per vocabulary entry).
    pub fn sample(&mut self, logits: &[f32]) -> u32 {
        let o = self.opts;
        let logits = if o.repeat_penalty != 1.0 && !self.recent.is_empty() {
            self.logits[..logits.len()].copy_from_slice(logits);
            for &t in &self.recent {
                let t = t as usize;
                if t < logits.len() && !self.seen[t] {
                    self.seen[t] = true;
                    let l = &mut self.logits[t];
                    *l = if *l > 0.0 {
                        *l / o.repeat_penalty
                    } else {
                        *l * o.repeat_penalty
                    };
                }
            }
            for &t in &self.recent {
                if let Some(s) = self.seen.get_mut(t as usize) {
                    *s = false;
                }
            }
            &self.logits[..logits.len()]
        } else {
            logits
        };
        if o.temperature <= 0.0 {
            return argmax(logits);
        }
        self.cand.clear();
        self.cand
            .extend(logits.iter().enumerate().map(|(i, &l)| (l, i as u32)));
        // Highest logit first, lower id first on ties: a total order, so the draw is
        // reproducible.
        let by_logit = |a: &(f32, u32), b: &(f32, u32)| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1));
        if o.top_k > 0 && o.top_k < self.cand.len() {
            self.cand.select_nth_unstable_by(o.top_k - 1, by_logit);
            self.cand.truncate(o.top_k);
        }
        self.cand.sort_unstable_by(by_logit);
        // Softmax at temperature 1 for top-p and min-p, as llama.cpp's chain applies them before
        // the temperature.
        let max = self.cand[0].0;
        let total: f32 = self.cand.iter().map(|c| (c.0 - max).exp()).sum();
        if o.top_p < 1.0 {
            let mut acc = 0.0;
            let mut keep = self.cand.len();
            for (i, c) in self.cand.iter().enumerate() {
                acc += (c.0 - max).exp() / total;
                if acc >= o.top_p {
                    keep = i + 1;
                    break;
                }
            }
            self.cand.truncate(keep.max(1));
        }
        if o.min_p > 0.0 {
            // p_i >= min_p * p_max  <=>  l_i - max >= ln(min_p)
            let cut = o.min_p.ln();
            let keep = self.cand.iter().take_while(|c| c.0 - max >= cut).count();
            self.cand.truncate(keep.max(1));
        }
        let inv_t = 1.0 / o.temperature;
        let total: f32 = self.cand.iter().map(|c| ((c.0 - max) * inv_t).exp()).sum();
        let r: f32 = self.rng.gen::<f32>() * total;
        let mut acc = 0.0;
        for c in &self.cand {
            acc += ((c.0 - max) * inv_t).exp();
            if r < acc {
                return c.1;
            }
        }
        self.cand[self.cand.len() - 1].1
    }
}

/// The index of the largest value, the first on ties; NaN never wins.
pub fn argmax(x: &[f32]) -> u32 {
    let mut best = 0;
    let mut best_v = f32::NEG_INFINITY;
    for (i, &v) in x.iter().enumerate() {
        if v > best_v {
            best_v = v;
            best = i;
        }
    }
    best as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn logits() -> Vec<f32> {
        (0..100).map(|i| ((i * 37) % 100) as f32 / 10.0).collect()
    }

    #[test]
    fn greedy_is_argmax_first_on_ties() {
        let mut s = Sampler::new(SamplerOptions::greedy(), 4);
        assert_eq!(s.sample(&[1.0, 3.0, 3.0, -1.0]), 1);
        assert_eq!(argmax(&[f32::NAN, 0.5]), 1);
    }

    #[test]
    fn same_seed_same_draws_other_seed_other_draws() {
        let draw = |seed| {
            let mut s = Sampler::new(
                SamplerOptions {
                    temperature: 1.5,
                    top_k: 0,
                    top_p: 1.0,
                    min_p: 0.0,
                    seed,
                    ..Default::default()
                },
                100,
            );
            (0..50).map(|_| s.sample(&logits())).collect::<Vec<_>>()
        };
        assert_eq!(draw(7), draw(7));
        assert_ne!(draw(7), draw(8));
    }

    #[test]
    fn top_k_1_and_tiny_top_p_and_min_p_1_are_greedy() {
        let l = logits();
        let best = argmax(&l);
        for opts in [
            SamplerOptions {
                top_k: 1,
                ..Default::default()
            },
            SamplerOptions {
                top_p: 1e-6,
                top_k: 0,
                ..Default::default()
            },
            SamplerOptions {
                min_p: 1.0,
                top_k: 0,
                ..Default::default()
            },
        ] {
            let mut s = Sampler::new(opts, 100);
            for _ in 0..20 {
                assert_eq!(s.sample(&l), best, "{opts:?}");
            }
        }
    }

    #[test]
    fn top_k_keeps_only_the_k_best() {
        let l = logits();
        let mut sorted: Vec<u32> = (0..100).collect();
        sorted.sort_by(|&a, &b| l[b as usize].total_cmp(&l[a as usize]));
        let mut s = Sampler::new(
            SamplerOptions {
                temperature: 5.0,
                top_k: 3,
                top_p: 1.0,
                min_p: 0.0,
                ..Default::default()
            },
            100,
        );
        for _ in 0..200 {
            assert!(sorted[..3].contains(&s.sample(&l)));
        }
    }

    #[test]
    fn repetition_penalty_moves_greedy_off_a_recent_token() {
        let mut s = Sampler::new(
            SamplerOptions {
                repeat_penalty: 2.0,
                ..SamplerOptions::greedy()
            },
            3,
        );
        assert_eq!(s.sample(&[2.0, 1.5, 0.0]), 0);
        s.accept(0);
        assert_eq!(s.sample(&[2.0, 1.5, 0.0]), 1);
    }
}
