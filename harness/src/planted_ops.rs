//! Test-only copies of the per-layer op helpers and the activation quantizer, each with one
//! planted bug, for the gate's self-test: `harness verify` must reject every one of them. The
//! correct code is in `kernels::ops` and `kernels::quant`.

use kernels::ops::RopeTable;
use kernels::quant::{BlockQ8K, QK_K};

/// `exp` by the kernels' algorithm (n = round(x log2 e), r = x - n ln2, a degree-5 polynomial),
/// but with `ln 2` as a single f32 constant instead of the exact high/low split: `n * LN2` is
/// rounded (half an ulp of a value up to 88, ~4e-6 absolute in `r`, so ~60u relative at the ends
/// of the domain) and the constant itself is off by 1.9e-9 (`|n|` times that: ~4u), while near
/// 0 (`n = 0`) the result is exact: only a check across the whole range sees it.
pub fn planted_exp_unsplit_ln2(x: &mut [f32]) {
    const LN2: f32 = std::f32::consts::LN_2;
    const P: [f32; 6] = [
        1.987_569_1e-4,
        1.398_199_9e-3,
        8.333_452e-3,
        4.166_579_6e-2,
        1.666_666_5e-1,
        0.5,
    ];
    for v in x.iter_mut() {
        let a = *v;
        *v = if a.is_nan() {
            a
        } else if a < kernels::ops::EXP_UNDERFLOW_BELOW {
            0.0
        } else if a > kernels::ops::EXP_OVERFLOW_ABOVE {
            f32::INFINITY
        } else {
            let n = (a * std::f32::consts::LOG2_E).round_ties_even();
            let r = a - n * LN2;
            let q = P.iter().fold(0.0f32, |acc, &c| acc * r + c);
            let e = (r * r * q + r) + 1.0;
            e * f32::from_bits(((n as i32 + 127) as u32) << 23)
        };
    }
}

/// A RoPE table that ignores the model's base and always uses 10000 (Llama 2's): right for
/// TinyLlama, wrong for SmolLM2 (100000) and Llama 3 (500000).
pub fn planted_rope_table_base_ignored(head_dim: usize, _base: f64, max_pos: usize) -> RopeTable {
    RopeTable::new(head_dim, 10_000.0, max_pos)
}

/// Q8_K bug classes: what the quantizer gets wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Q8kBug {
    /// `f32::round` (ties away from zero) instead of ties to even.
    TiesAwayFromZero,
    /// A block whose largest magnitude is subnormal treated as all zeros.
    SubnormalMaxFlushed,
    /// Of two values of equal largest magnitude, the last (not the first) sets the sign.
    LastMaxWins,
}

impl Q8kBug {
    pub const ALL: [Q8kBug; 3] = [
        Q8kBug::TiesAwayFromZero,
        Q8kBug::SubnormalMaxFlushed,
        Q8kBug::LastMaxWins,
    ];
}

/// A Q8_K quantizer with `bug` planted (otherwise the spec, computed in f64 where f32 overflows).
pub fn planted_quantize_q8k(bug: Q8kBug, src: &[f32], dst: &mut [BlockQ8K]) {
    for (x, block) in src.chunks_exact(QK_K).zip(dst.iter_mut()) {
        let mut max = 0f32;
        for &v in x {
            let wins = if bug == Q8kBug::LastMaxWins {
                v.abs() >= max.abs()
            } else {
                v.abs() > max.abs()
            };
            if wins {
                max = v;
            }
        }
        let flushed = bug == Q8kBug::SubnormalMaxFlushed && max.abs() < f32::MIN_POSITIVE;
        *block = BlockQ8K::default();
        if max == 0.0 || flushed {
            continue;
        }
        let round = |p: f64| {
            if bug == Q8kBug::TiesAwayFromZero {
                p.round()
            } else {
                p.round_ties_even()
            }
        };
        let iscale32 = -127.0f32 / max;
        if iscale32.is_finite() {
            for (q, &v) in block.qs.iter_mut().zip(x) {
                *q = round(f64::from(iscale32 * v)).min(127.0) as i8;
            }
            block.d = 1.0 / iscale32;
        } else {
            let iscale = -127.0 / f64::from(max);
            for (q, &v) in block.qs.iter_mut().zip(x) {
                *q = round(iscale * f64::from(v)).min(127.0) as i8;
            }
            block.d = (1.0 / iscale) as f32;
        }
        block.d = block.d.clamp(-f32::MAX / 128.0, f32::MAX / 128.0);
        block.fill_bsums();
    }
}
