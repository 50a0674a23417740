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

use super::{gamma_f32, row, Metrics, Row, VerifyConfig};
use crate::registry::{Design, Kernel};
use anyhow::Result;
use kernels::ops::{self, RopeStyle, EXP_MAX_REL_ERROR, EXP_OVERFLOW_ABOVE, EXP_UNDERFLOW_BELOW};
use kernels::Isa;
use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::SeedableRng;
use rand_distr::{Distribution, StandardNormal};

/// The ops this module checks, as `--kernel` names.
pub const OPS: [&str; 7] = [
    "rmsnorm",
    "rope_adjacent",
    "rope_neox",
    "swiglu",
    "softmax",
    "residual_add",
    "exp",
];

/// The RoPE table a forward pass builds once per model ([`kernels::ops::RopeTable`]), checked
/// entry by entry against the reference's own angles: a `--kernel` name of its own.
pub const ROPE_TABLE: &str = "rope_table";

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
    /// RoPE frequency base: Llama 2 / TinyLlama 10000, SmolLM2 100000, Llama 3 500000, 1e6.
    pub base: f64,
    /// RoPE: cos/sin from the row of a [`RopeTable`] (what a forward pass uses) rather than
    /// from [`ops::rope_cos_sin`].
    pub table: bool,
    /// exp: a dense sweep of its whole domain and both edges instead of `len` random values.
    pub sweep: bool,
    pub seed: u64,
}

impl OpCase {
    /// A case with the given shape and defaults for everything else (a fixed case's start).
    fn model(len: usize, head_dim: usize, heads: usize, pos: usize, base: f64) -> OpCase {
        OpCase {
            len,
            head_dim,
            pos,
            heads,
            large: false,
            tiny: false,
            base,
            table: false,
            sweep: false,
            // `seed % 3 == 0` selects eps = 1e-5 for RMSNorm, both models' value.
            seed: 3 * (len * 7919 + pos) as u64,
        }
    }
}

/// TinyLlama (32 heads over 4, head size 64, base 10000, width 2048, ffn 5632, eps 1e-5),
/// SmolLM2-135M (9 heads over 3, head size 64, base 100000, width 576, ffn 1536, eps 1e-5) and
/// Llama 3 (head size 128, base 500000): every op runs these on every `verify`.
pub fn model_cases(op: &str) -> Vec<OpCase> {
    let mut cases = Vec::new();
    match op {
        "rope_adjacent" | "rope_neox" => {
            for (heads, head_dim, base, ctx) in [
                (32, 64, 10_000.0, 2048),
                (4, 64, 10_000.0, 2048),
                (9, 64, 100_000.0, 8192),
                (3, 64, 100_000.0, 8192),
                (32, 128, 500_000.0, 8192),
            ] {
                for pos in [0, 1, 17, ctx / 2 + 3, ctx - 1] {
                    for table in [false, true] {
                        let mut c = OpCase::model(heads * head_dim, head_dim, heads, pos, base);
                        c.table = table;
                        cases.push(c);
                    }
                }
            }
        }
        "exp" => {
            let mut c = OpCase::model(0, 64, 1, 0, 10_000.0);
            c.sweep = true;
            cases.push(c);
        }
        _ => {
            for len in [576, 1536, 2048, 5632] {
                cases.push(OpCase::model(len, 64, 1, 0, 10_000.0));
            }
        }
    }
    cases
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
        prop_oneof![
            3 => Just(10_000.0f64),
            2 => Just(100_000.0f64),
            1 => Just(500_000.0f64),
            1 => Just(1_000_000.0f64),
            1 => 2.0f64..1e7,
        ],
        prop::bool::weighted(0.25),
        any::<u64>(),
    )
        .prop_map(
            |(len, head_dim, heads, pos, large, tiny, base, table, seed)| OpCase {
                len,
                head_dim,
                heads,
                // A table is built for positions 0..=pos; keep that cheap.
                pos: if table { pos.min(4095) } else { pos },
                large,
                tiny,
                base,
                table,
                sweep: false,
                seed,
            },
        )
}

fn gaussian(rng: &mut StdRng) -> f32 {
    StandardNormal.sample(rng)
}

fn values(rng: &mut StdRng, n: usize, scale: f32) -> Vec<f32> {
    (0..n).map(|_| scale * gaussian(rng)).collect()
}

const U: f64 = 1.0 / 16_777_216.0;

/// The arguments of an `exp` case. A sweep covers the whole domain
/// [`EXP_UNDERFLOW_BELOW`, `EXP_OVERFLOW_ABOVE`] at 2^20 evenly spaced points (so a range
/// reduction that is wrong for large `|n|` shows at the ends, where the bound is tightest
/// relative to its effect), 256 ulps either side of each edge, and the specials; a random case
/// draws `len` values uniformly from just beyond the domain on both sides.
fn exp_arguments(case: &OpCase, rng: &mut StdRng) -> Vec<f32> {
    use rand::Rng;
    let (lo, hi) = (EXP_UNDERFLOW_BELOW, EXP_OVERFLOW_ABOVE);
    if !case.sweep {
        return (0..case.len)
            .map(|_| rng.gen_range(lo - 4.0..hi + 4.0))
            .collect();
    }
    let steps = 1 << 20;
    let mut x: Vec<f32> = (0..=steps)
        .map(|i| lo + (hi - lo) * (i as f32 / steps as f32))
        .collect();
    for edge in [lo, hi] {
        let bits = edge.to_bits() as i64;
        x.extend((-256..=256).map(|d| f32::from_bits((bits + d) as u32)));
    }
    x.extend([
        0.0,
        -0.0,
        1e-30,
        -1e-45,
        1.0,
        -1.0,
        f32::MIN,
        f32::MAX,
        f32::NEG_INFINITY,
        f32::INFINITY,
        f32::NAN,
    ]);
    x
}

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

/// A test-only copy of an op (the self-test's planted bugs) that replaces the `isa` variant.
#[derive(Clone, Copy)]
pub enum PlantedOp<'a> {
    /// For `rope_adjacent` / `rope_neox`.
    Rope(RopeKernel<'a>),
    /// For `exp`: `x[i] = exp(x[i])` in place.
    Exp(&'a dyn Fn(&mut [f32])),
}

/// As [`check_case`]; `planted` (a test-only copy) replaces the `isa` variant as the kernel
/// under test.
pub fn check_case_with(
    op: &str,
    case: &OpCase,
    isa: Isa,
    scalar: Option<Isa>,
    planted: Option<PlantedOp>,
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
                super::qemu::rmsnorm(isa, &x, &w, eps, &mut out);
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
            let base = case.base;
            let (cos, sin) = if case.table {
                let table = ops::RopeTable::new(hd, base, case.pos + 1);
                let (c, s) = table.cos_sin(case.pos);
                (c.to_vec(), s.to_vec())
            } else {
                let mut cos = vec![0f32; hd / 2];
                let mut sin = vec![0f32; hd / 2];
                ops::rope_cos_sin(case.pos, hd, base, &mut cos, &mut sin);
                (cos, sin)
            };
            let style = if op == "rope_adjacent" {
                RopeStyle::AdjacentPairs
            } else {
                RopeStyle::NeoxHalves
            };
            let run = |isa: Isa| {
                let mut y = x.clone();
                super::qemu::rope(isa, style, &mut y, hd, &cos, &sin);
                y
            };
            let got = match planted {
                Some(PlantedOp::Rope(kernel)) => {
                    let mut y = x.clone();
                    kernel(&mut y, hd, &cos, &sin);
                    y
                }
                _ => run(isa),
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
                super::qemu::swiglu(isa, &gate, &up, &mut out);
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
                super::qemu::softmax(isa, &mut y);
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
                super::qemu::residual_add(isa, &mut y, &x);
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
        "exp" => {
            let x = exp_arguments(case, &mut rng);
            let run = |isa: Isa| {
                let mut y = x.clone();
                super::qemu::exp_in_place(isa, &mut y);
                y
            };
            let got = match planted {
                Some(PlantedOp::Exp(kernel)) => {
                    let mut y = x.clone();
                    kernel(&mut y);
                    y
                }
                _ => run(isa),
            };
            let ys = scalar.map(run);
            for (i, &xi) in x.iter().enumerate() {
                let exact = (xi as f64).exp();
                if xi.is_nan() || xi > EXP_OVERFLOW_ABOVE {
                    // NaN stays NaN; above the domain the result is +inf (the module's contract).
                    let want = if xi.is_nan() { f32::NAN } else { f32::INFINITY };
                    let same =
                        |y: f32| y.to_bits() == want.to_bits() || (y.is_nan() && xi.is_nan());
                    if !same(got[i]) || ys.as_ref().is_some_and(|ys| !same(ys[i])) {
                        return Err(format!("exp({xi:e}) = {:e}, want {want:e}", got[i]));
                    }
                    continue;
                }
                if xi < EXP_UNDERFLOW_BELOW {
                    // Flushed to +0 (the contract) against a true value below 2^-126.
                    let flushed = |y: f32| y.to_bits() == 0;
                    if !flushed(got[i]) || ys.as_ref().is_some_and(|ys| !flushed(ys[i])) {
                        return Err(format!(
                            "exp({xi:e}) = {:e}, want +0 below the domain",
                            got[i]
                        ));
                    }
                    continue;
                }
                // Recorded relative to the exact value: the bound is relative on the whole
                // domain, so max_abs reads as the largest relative error.
                let rel = |y: f32| y as f64 / exact;
                outputs.push((rel(got[i]), 1.0, 1.0, EXP_MAX_REL_ERROR));
                if let Some(ys) = &ys {
                    let diff = (rel(got[i]) - rel(ys[i])).abs();
                    if diff.is_nan() || diff > 2.0 * EXP_MAX_REL_ERROR {
                        return Err(format!(
                            "exp({xi:e}): {} vs scalar {}: relative difference {diff:e} > {:e}",
                            got[i],
                            ys[i],
                            2.0 * EXP_MAX_REL_ERROR
                        ));
                    }
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

/// Every check `verify` applies to `op` in `isa`: the model cases, then `cases` property cases.
pub fn run_checks(
    op: &str,
    isa: Isa,
    cases: u32,
    seed: u64,
    planted: Option<PlantedOp>,
) -> super::PropertyOutcome {
    let oracle = (isa != Isa::Scalar && planted.is_none()).then_some(Isa::Scalar);
    super::run_fixed_then_property(&model_cases(op), case_strategy(), cases, seed, |case| {
        check_case_with(op, case, isa, oracle, planted)
    })
}

/// One RoPE-table case: a table of `max_pos` positions.
#[derive(Clone, Debug)]
pub struct RopeTableCase {
    pub head_dim: usize,
    pub base: f64,
    pub max_pos: usize,
}

/// TinyLlama's, SmolLM2's and Llama 3's tables over their whole context.
pub fn rope_table_model_cases() -> Vec<RopeTableCase> {
    [
        (64, 10_000.0, 2048),
        (64, 100_000.0, 8192),
        (128, 500_000.0, 8192),
    ]
    .into_iter()
    .map(|(head_dim, base, max_pos)| RopeTableCase {
        head_dim,
        base,
        max_pos,
    })
    .collect()
}

pub fn rope_table_strategy() -> impl Strategy<Value = RopeTableCase> {
    (
        prop_oneof![Just(2usize), Just(6), Just(64), Just(80), Just(128)],
        prop_oneof![
            Just(10_000.0f64),
            Just(100_000.0),
            Just(500_000.0),
            2.0f64..1e7
        ],
        1usize..=600,
    )
        .prop_map(|(head_dim, base, max_pos)| RopeTableCase {
            head_dim,
            base,
            max_pos,
        })
}

/// Checks every entry of a [`RopeTable`] against `cos`/`sin` of the reference's own angle
/// ([`reference::ops::rope_angle`]). Bound per entry: the table rounds an f64 cos/sin to f32
/// (`<= 2^-25`, as `|cos|, |sin| <= 1`), and its f64 angle may differ from the reference's by a
/// few f64 roundings of a value `<= max_pos` (`4 * 2^-53 * angle`), which moves cos/sin by as
/// much, plus the f64 `sin`/`cos` errors (`2 * 2^-53`).
pub fn check_rope_table(
    case: &RopeTableCase,
    build: &dyn Fn(usize, f64, usize) -> ops::RopeTable,
) -> Result<Metrics, String> {
    let table = build(case.head_dim, case.base, case.max_pos);
    let half = case.head_dim / 2;
    let mut m = Metrics::default();
    let eps53 = 2f64.powi(-53);
    for pos in 0..case.max_pos {
        let (cos, sin) = table.cos_sin(pos);
        for i in 0..half {
            let angle = reference::ops::rope_angle(pos, i, case.head_dim, case.base);
            let bound = 2f64.powi(-25) + 4.0 * eps53 * angle + 2.0 * eps53;
            let (want_sin, want_cos) = angle.sin_cos();
            m.record(cos[i] as f64, want_cos, 1.0, bound)
                .map_err(|e| format!("cos at pos {pos}, frequency {i}: {e}"))?;
            m.record(sin[i] as f64, want_sin, 1.0, bound)
                .map_err(|e| format!("sin at pos {pos}, frequency {i}: {e}"))?;
        }
    }
    Ok(m)
}

/// Every check `verify` applies to a RoPE table builder.
pub fn run_rope_table_checks(
    cases: u32,
    seed: u64,
    build: &dyn Fn(usize, f64, usize) -> ops::RopeTable,
) -> super::PropertyOutcome {
    super::run_fixed_then_property(
        &rope_table_model_cases(),
        rope_table_strategy(),
        cases,
        seed,
        |case| check_rope_table(case, build),
    )
}

/// This module's rows, as deferred jobs.
pub fn families(config: &VerifyConfig) -> Vec<super::Job> {
    let mut jobs: Vec<super::Job> = Vec::new();
    let (cases, seed) = (config.cases, config.seed);
    for op in OPS {
        if !config.wants_kernel(op) {
            continue;
        }
        for isa in Isa::ALL.into_iter().filter(|&i| config.wants_isa(i)) {
            jobs.push(super::Job::new(isa, move || {
                if let Some(reason) = super::qemu::unavailable_reason(isa) {
                    return Ok(Row::skipped(kernel(op), design(op), isa, reason));
                }
                let outcome = run_checks(op, isa, cases, seed, None);
                Ok(row(kernel(op), design(op), isa, cases, outcome))
            }));
        }
    }
    // The table is ISA-independent (f64 angles, computed once per model): one scalar row.
    if config.wants_kernel(ROPE_TABLE) && config.wants_isa(Isa::Scalar) {
        jobs.push(super::Job::new(Isa::Scalar, move || {
            let outcome = run_rope_table_checks(cases, seed, &ops::RopeTable::new);
            Ok(row(
                Kernel::RopeTable,
                Design::F64Angles,
                Isa::Scalar,
                cases,
                outcome,
            ))
        }));
    }
    jobs
}
