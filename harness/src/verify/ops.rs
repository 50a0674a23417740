//! Per-layer ops (RMSNorm, RoPE in both layouts, SwiGLU, softmax, residual add) against scalar
//! and against `reference::ops` (f64). u = 2^-24, gamma(m) = m u / (1 - m u), E = the
//! vectorised exp's relative error bound (`kernels::ops::EXP_MAX_REL_ERROR`, >= `f32::exp`'s).
//! Bounds, per output:
//! - RMSNorm: the sum of n squares, the division by n and the `+ eps` carry gamma(n+2) relative;
//!   the square root halves it; reciprocal/division and the two products add at most 4 roundings:
//!   rel <= (1+u)^4 / sqrt(1 - gamma(n+2)) - 1.
//! - RoPE: cos/sin come from an f64 table rounded to f32 (abs error <= 2^-25 each); the rotation
//!   is two products and a sum: |err| <= (|x_a| + |x_b|) (2^-25 (1 + gamma(2)) + gamma(2)), plus
//!   1e-12 (|x_a| + |x_b|) for the two f64 angle formulas (kernel table vs reference) differing.
//! - SwiGLU: exp(-g) within E, 1 + e, the division (or reciprocal and product) and the product
//!   with `up`: rel <= (1+u)^3 / ((1-E)(1-u)) - 1; where exp(-g) overflows (g < -88.37) the result
//!   is +-0 against an exact |g up| e^g < 2^-126 |g up|; subnormal results add 2^-149.
//! - softmax: each numerator exp(x_i - m) carries e^{u|x_i - m|}(1+E), the sum gamma(n) more and
//!   the division one rounding: rel_i <= exp(u|x_i - m| + u max_j|x_j - m| + 2E + gamma(n+1)) - 1;
//!   entries more than 87.3 below the max flush to 0 against a true value < 2^-126.
//! - residual add: one rounding, |err| <= u |x + y|; every ISA must agree bit for bit.
//!
//! SIMD variants must be within twice the bound of scalar (bit-exact for the residual add).

use super::{gamma_f32, row, run_property, Metrics, Row, VerifyConfig};
use crate::registry::{Design, Kernel};
use anyhow::Result;
use kernels::ops::{self, RopeStyle, EXP_MAX_REL_ERROR};
use kernels::Isa;
use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::SeedableRng;
use rand_distr::{Distribution, StandardNormal};

/// The ops this module checks, as `--kernel` names.
pub const OPS: [&str; 6] = [
    "rmsnorm",
    "rope_adjacent",
    "rope_neox",
    "swiglu",
    "softmax",
    "residual_add",
];

/// One property case for an elementwise or row op.
#[derive(Clone, Debug)]
pub struct OpCase {
    /// Row length (for RoPE: heads x head_dim, see `head_dim`).
    pub len: usize,
    /// RoPE head size.
    pub head_dim: usize,
    /// RoPE position.
    pub pos: usize,
    /// RoPE: heads in the row.
    pub heads: usize,
    /// Values of large magnitude (softmax logits to +/-1000, SwiGLU gates to +/-100).
    pub large: bool,
    /// RMSNorm: inputs around 1e-3 so that `eps` matters, with eps from {1e-5, 1e-6, 1e-2}.
    pub tiny: bool,
    pub seed: u64,
}

pub fn case_strategy() -> impl Strategy<Value = OpCase> {
    let len = prop_oneof![
        Just(1usize),
        Just(7usize),
        Just(8usize),
        15usize..=17,
        Just(64usize),
        31usize..=200,
        Just(2048usize),
        Just(5632usize),
    ];
    let pos = prop_oneof![
        Just(0usize),
        Just(1usize),
        2usize..=100,
        4000usize..=4095,
        Just(32767usize)
    ];
    (
        len,
        // 64 and 128 are the models'; the small and odd-multiple sizes reach the SIMD tails.
        prop_oneof![
            3 => Just(64usize),
            2 => Just(128usize),
            1 => Just(2usize),
            1 => Just(6usize),
            1 => Just(18usize),
            1 => Just(34usize),
            1 => Just(80usize),
        ],
        1usize..=8,
        pos,
        prop::bool::weighted(0.3),
        prop::bool::weighted(0.2),
        any::<u64>(),
    )
        .prop_map(|(len, head_dim, heads, pos, large, tiny, seed)| OpCase {
            len,
            head_dim,
            heads,
            pos,
            large,
            tiny,
            seed,
        })
}

fn gaussian(rng: &mut StdRng) -> f32 {
    StandardNormal.sample(rng)
}

fn values(rng: &mut StdRng, n: usize, scale: f32) -> Vec<f32> {
    (0..n).map(|_| scale * gaussian(rng)).collect()
}

const U: f64 = 1.0 / 16_777_216.0;

/// Runs `op` through `kernel` (an ISA) and checks it; `scalar` is the SIMD oracle.
pub fn check_case(
    op: &str,
    case: &OpCase,
    isa: Isa,
    scalar: Option<Isa>,
) -> Result<Metrics, String> {
    check_case_with(op, case, isa, scalar, None)
}

/// A RoPE kernel with the signature of `kernels::ops::scalar::rope_adjacent`.
pub type RopeKernel<'a> = &'a dyn Fn(&mut [f32], usize, &[f32], &[f32]);

/// As [`check_case`]; for the RoPE ops, `rope_under_test` (a test-only copy) replaces the
/// `isa` variant as the kernel under test.
pub fn check_case_with(
    op: &str,
    case: &OpCase,
    isa: Isa,
    scalar: Option<Isa>,
    rope_under_test: Option<RopeKernel>,
) -> Result<Metrics, String> {
    let mut rng = StdRng::seed_from_u64(case.seed);
    let n = case.len;
    let mut m = Metrics::default();
    // (got, want, scale, bound) per output, computed per op below.
    let mut outputs: Vec<(f64, f64, f64, f64)> = Vec::new();
    let mut simd_vs_scalar: Option<(Vec<f32>, Vec<f32>, Vec<f64>)> = None;
    match op {
        "rmsnorm" => {
            let magnitude = match (case.large, case.tiny) {
                (_, true) => 1e-3,
                (true, false) => 1e3,
                (false, false) => 1.0,
            };
            let x = values(&mut rng, n, magnitude);
            let w = values(&mut rng, n, 1.0);
            // The model's eps: Llama 1e-5, Llama 2 1e-6, and one large enough to dominate.
            let eps = [1e-5f32, 1e-6, 1e-2][(case.seed % 3) as usize];
            let run = |isa: Isa| {
                let mut out = vec![f32::NAN; n];
                ops::rmsnorm(isa, &x, &w, eps, &mut out);
                out
            };
            let got = run(isa);
            let xf: Vec<f64> = x.iter().map(|&v| v as f64).collect();
            let wf: Vec<f64> = w.iter().map(|&v| v as f64).collect();
            let mut want = vec![0f64; n];
            reference::ops::rmsnorm(&xf, &wf, eps as f64, &mut want);
            let rel = super::bounds::rmsnorm_rel_error(n);
            let bounds: Vec<f64> = want.iter().map(|w| rel * w.abs() + 1e-45).collect();
            for i in 0..n {
                outputs.push((got[i] as f64, want[i], want[i].abs(), bounds[i]));
            }
            if let Some(s) = scalar {
                simd_vs_scalar = Some((got, run(s), bounds));
            }
        }
        "rope_adjacent" | "rope_neox" => {
            let hd = case.head_dim;
            let len = case.heads * hd;
            let x = values(&mut rng, len, if case.large { 100.0 } else { 1.0 });
            let base = 10000.0;
            let mut cos = vec![0f32; hd / 2];
            let mut sin = vec![0f32; hd / 2];
            ops::rope_cos_sin(case.pos, hd, base, &mut cos, &mut sin);
            let style = if op == "rope_adjacent" {
                RopeStyle::AdjacentPairs
            } else {
                RopeStyle::NeoxHalves
            };
            let run = |isa: Isa| {
                let mut y = x.clone();
                ops::rope(isa, style, &mut y, hd, &cos, &sin);
                y
            };
            let got = match rope_under_test {
                Some(kernel) => {
                    let mut y = x.clone();
                    kernel(&mut y, hd, &cos, &sin);
                    y
                }
                None => run(isa),
            };
            let mut want: Vec<f64> = x.iter().map(|&v| v as f64).collect();
            if style == RopeStyle::AdjacentPairs {
                reference::ops::rope_adjacent(&mut want, hd, case.pos, base);
            } else {
                reference::ops::rope_neox(&mut want, hd, case.pos, base);
            }
            let g2 = gamma_f32(2);
            let per = 2f64.powi(-25) * (1.0 + g2) + g2 + 1e-12;
            let mut bounds = vec![0f64; len];
            for h in 0..case.heads {
                for i in 0..hd / 2 {
                    let (a, b) = if style == RopeStyle::AdjacentPairs {
                        (h * hd + 2 * i, h * hd + 2 * i + 1)
                    } else {
                        (h * hd + i, h * hd + i + hd / 2)
                    };
                    let mag = (x[a] as f64).abs() + (x[b] as f64).abs();
                    bounds[a] = per * mag;
                    bounds[b] = per * mag;
                }
            }
            for i in 0..len {
                let scale = (x[i] as f64).abs().max(want[i].abs());
                outputs.push((got[i] as f64, want[i], scale, bounds[i]));
            }
            if let Some(s) = scalar {
                simd_vs_scalar = Some((got, run(s), bounds));
            }
        }
        "swiglu" => {
            let gate = values(&mut rng, n, if case.large { 40.0 } else { 2.0 });
            let up = values(&mut rng, n, 1.0);
            let run = |isa: Isa| {
                let mut out = vec![f32::NAN; n];
                ops::swiglu(isa, &gate, &up, &mut out);
                out
            };
            let got = run(isa);
            let gf: Vec<f64> = gate.iter().map(|&v| v as f64).collect();
            let uf: Vec<f64> = up.iter().map(|&v| v as f64).collect();
            let mut want = vec![0f64; n];
            reference::ops::swiglu(&gf, &uf, &mut want);
            let e = EXP_MAX_REL_ERROR;
            let rel = (1.0 + U).powi(3) / ((1.0 - e) * (1.0 - U)) - 1.0;
            let bounds: Vec<f64> = (0..n)
                .map(|i| {
                    rel * want[i].abs() + 2f64.powi(-126) * (gf[i] * uf[i]).abs() + 2f64.powi(-149)
                })
                .collect();
            for i in 0..n {
                // Relative to |g up|: silu(g) up vanishes for very negative g.
                outputs.push((got[i] as f64, want[i], (gf[i] * uf[i]).abs(), bounds[i]));
            }
            if let Some(s) = scalar {
                simd_vs_scalar = Some((got, run(s), bounds));
            }
        }
        "softmax" => {
            let x = values(&mut rng, n, if case.large { 400.0 } else { 3.0 });
            let run = |isa: Isa| {
                let mut y = x.clone();
                ops::softmax(isa, &mut y);
                y
            };
            let got = run(isa);
            let mut want: Vec<f64> = x.iter().map(|&v| v as f64).collect();
            reference::ops::softmax(&mut want);
            let mx = x.iter().cloned().fold(f32::NEG_INFINITY, f32::max) as f64;
            let spread = x.iter().map(|&v| mx - v as f64).fold(0f64, f64::max);
            let e = EXP_MAX_REL_ERROR;
            let bounds: Vec<f64> = (0..n)
                .map(|i| {
                    let a = U * (mx - x[i] as f64);
                    let rel = (a + U * spread + 2.0 * e + gamma_f32(n + 1)).exp_m1();
                    rel * want[i] + 2f64.powi(-126)
                })
                .collect();
            for i in 0..n {
                // Relative to the row's total probability, 1.
                outputs.push((got[i] as f64, want[i], 1.0, bounds[i]));
            }
            if let Some(s) = scalar {
                simd_vs_scalar = Some((got, run(s), bounds));
            }
        }
        "residual_add" => {
            let x = values(&mut rng, n, 1.0);
            let y0 = values(&mut rng, n, if case.large { 1e4 } else { 1.0 });
            let run = |isa: Isa| {
                let mut y = y0.clone();
                ops::residual_add(isa, &mut y, &x);
                y
            };
            let got = run(isa);
            let mut want: Vec<f64> = y0.iter().map(|&v| v as f64).collect();
            let xf: Vec<f64> = x.iter().map(|&v| v as f64).collect();
            reference::ops::residual_add(&mut want, &xf);
            for i in 0..n {
                outputs.push((got[i] as f64, want[i], want[i].abs(), U * want[i].abs()));
            }
            if let Some(s) = scalar {
                let ys = run(s);
                if let Some(i) = (0..n).find(|&i| got[i].to_bits() != ys[i].to_bits()) {
                    return Err(format!(
                        "element {i}: {} vs scalar {} (must be bit-exact)",
                        got[i], ys[i]
                    ));
                }
            }
        }
        other => return Err(format!("unknown op {other}")),
    }
    for (i, (got, want, scale, bound)) in outputs.into_iter().enumerate() {
        m.record(got, want, scale, bound)
            .map_err(|e| format!("element {i}: {e}"))?;
    }
    if let Some((got, ys, bounds)) = simd_vs_scalar {
        for i in 0..got.len() {
            let diff = (got[i] as f64 - ys[i] as f64).abs();
            if diff.is_nan() || diff > 2.0 * bounds[i] {
                return Err(format!(
                    "element {i}: {} vs scalar {}: differs by more than {:e}",
                    got[i],
                    ys[i],
                    2.0 * bounds[i]
                ));
            }
        }
    }
    Ok(m)
}

fn kernel(op: &str) -> Kernel {
    Kernel::from_name(op).expect("OPS holds kernel names")
}

fn design(op: &str) -> Design {
    kernel(op).designs()[0]
}

/// This module's rows, as deferred jobs.
pub fn families(config: &VerifyConfig) -> Vec<Box<dyn FnOnce() -> Result<Row>>> {
    let mut jobs: Vec<Box<dyn FnOnce() -> Result<Row>>> = Vec::new();
    let (cases, seed) = (config.cases, config.seed);
    for op in OPS {
        if !config.wants_kernel(op) {
            continue;
        }
        for isa in Isa::ALL.into_iter().filter(|&i| config.wants_isa(i)) {
            jobs.push(Box::new(move || {
                if let Some(reason) = isa.unavailable_reason() {
                    return Ok(Row::skipped(kernel(op), design(op), isa, reason));
                }
                let oracle = (isa != Isa::Scalar).then_some(Isa::Scalar);
                let outcome = run_property(case_strategy(), cases, seed, |case| {
                    check_case(op, case, isa, oracle)
                });
                Ok(row(kernel(op), design(op), isa, cases, outcome))
            }));
        }
    }
    jobs
}
