//! The activation quantizers against their specification, value by value.
//!
//! The integer matmul designs quantize every activation row once; a quantizer that rounds ties
//! the wrong way, picks the wrong sign for the scale or mishandles a block whose largest value is
//! tiny or subnormal changes every product by an amount the matmul bound (which is stated
//! against the quantized activations) cannot see. So the quantized bytes must equal, bit for bit,
//! those of `reference::quant`'s reading of the spec, on blocks built to hit each rule:
//! ties at every half-integer, the largest magnitude at either sign and twice with opposite
//! signs (the first one wins), tiny, subnormal and near-`f32::MAX` maxima, and zero blocks.
//!
//! The dequantized values are also recorded against the f32 inputs, with the bound per value
//! `|d| (1/2 + 2^-16) + 4u |x| + 2^-143 + gap`: half a quantization step (the `2^-16` is `d`'s own
//! rounding, relative, times `|q| <= 127`, over the step), the rounding of `scale*x` and of
//! `d*q`, the subnormal granularity of `d` (`2^-150` times `|q| <= 127`), and `gap`, the
//! part of `|max|` beyond `127 |d|` when `d` is limited to keep `d*127` finite.

use super::{Metrics, Row, VerifyConfig};
use anyhow::Result;
use kernels::quant::{quantize_q8k, BlockQ8K, QK_K};
use kernels::Isa;
use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, StandardNormal};

/// The `--kernel` name of the Q8_K quantizer row.
pub const QUANTIZE_Q8K: &str = "quantize_q8k";

/// What one block of activations looks like.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockStyle {
    /// N(0, 1).
    Gaussian,
    /// max = +-127 * 2^e, the rest odd multiples of 2^(e-1): every `scale * x` is a tie.
    Ties,
    /// The largest magnitude appears twice, with opposite signs: the first sets the sign.
    OppositeMaxima,
    /// Values around 1e-30 .. 1e-37: normal, but 127/max is large.
    Tiny,
    /// Values below 2^-126, the largest among them: -127/max overflows f32.
    Subnormal,
    /// Values near f32::MAX: d*127 would round past it.
    Huge,
    /// All zeros, some of them -0.0.
    Zero,
    /// Mostly zeros with a few values of any magnitude.
    Sparse,
}

impl BlockStyle {
    pub const ALL: [BlockStyle; 8] = [
        BlockStyle::Gaussian,
        BlockStyle::Ties,
        BlockStyle::OppositeMaxima,
        BlockStyle::Tiny,
        BlockStyle::Subnormal,
        BlockStyle::Huge,
        BlockStyle::Zero,
        BlockStyle::Sparse,
    ];
}

/// One property case: `styles.len()` blocks of `block_len` values.
#[derive(Clone, Debug)]
pub struct QuantizerCase {
    pub styles: Vec<BlockStyle>,
    pub seed: u64,
}

pub fn case_strategy() -> impl Strategy<Value = QuantizerCase> {
    (
        prop::collection::vec(prop::sample::select(BlockStyle::ALL.to_vec()), 1..=4),
        any::<u64>(),
    )
        .prop_map(|(styles, seed)| QuantizerCase { styles, seed })
}

/// Every style once, one block each: always among the cases.
pub fn fixed_cases() -> Vec<QuantizerCase> {
    BlockStyle::ALL
        .iter()
        .enumerate()
        .map(|(i, &style)| QuantizerCase {
            styles: vec![style],
            seed: i as u64,
        })
        .collect()
}

fn gaussian(rng: &mut StdRng) -> f32 {
    StandardNormal.sample(rng)
}

/// `n` values of one block in `style`.
pub fn block_values(style: BlockStyle, n: usize, rng: &mut StdRng) -> Vec<f32> {
    let sign = |rng: &mut StdRng| if rng.gen() { 1.0f32 } else { -1.0 };
    let mut x: Vec<f32> = match style {
        BlockStyle::Gaussian => (0..n).map(|_| gaussian(rng)).collect(),
        BlockStyle::Ties => {
            let step = 2f32.powi(rng.gen_range(-12..=12));
            let mut x: Vec<f32> = (0..n)
                .map(|_| (rng.gen_range(-127i32..127) as f32 + 0.5) * step)
                .collect();
            let at = rng.gen_range(0..n);
            x[at] = sign(rng) * 127.0 * step;
            x
        }
        BlockStyle::OppositeMaxima => {
            let mut x: Vec<f32> = (0..n).map(|_| gaussian(rng)).collect();
            let top = x.iter().fold(0f32, |m, v| m.max(v.abs())) * 1.5;
            let a = rng.gen_range(0..n);
            let b = (a + 1 + rng.gen_range(0..n - 1)) % n;
            let s = sign(rng);
            x[a] = s * top;
            x[b] = -s * top;
            x
        }
        BlockStyle::Tiny => {
            let scale = 10f32.powi(-rng.gen_range(30..=37));
            (0..n).map(|_| scale * gaussian(rng)).collect()
        }
        BlockStyle::Subnormal => (0..n)
            .map(|_| sign(rng) * f32::from_bits(rng.gen_range(0..0x0080_0000)))
            .collect(),
        BlockStyle::Huge => {
            let mut x: Vec<f32> = (0..n)
                .map(|_| sign(rng) * rng.gen_range(0.0..f32::MAX))
                .collect();
            let at = rng.gen_range(0..n);
            x[at] = sign(rng) * f32::MAX * rng.gen_range(0.99..=1.0);
            x
        }
        BlockStyle::Zero => (0..n).map(|_| if rng.gen() { 0.0 } else { -0.0 }).collect(),
        BlockStyle::Sparse => (0..n)
            .map(|_| {
                if rng.gen_bool(0.05) {
                    sign(rng) * 10f32.powi(rng.gen_range(-40..=38))
                } else {
                    0.0
                }
            })
            .collect(),
    };
    // Sprinkle signed zeros into the non-zero styles too.
    if style != BlockStyle::Zero {
        for v in x.iter_mut() {
            if rng.gen_bool(0.02) {
                *v = if rng.gen() { 0.0 } else { -0.0 };
            }
        }
    }
    x
}

/// The quantizer under test.
pub type Q8kQuantizer<'a> = &'a dyn Fn(&[f32], &mut [BlockQ8K]);

/// Quantizes the case's values with `quantize` and compares every byte with the spec.
pub fn check_q8k_case(case: &QuantizerCase, quantize: Q8kQuantizer) -> Result<Metrics, String> {
    let mut rng = StdRng::seed_from_u64(case.seed);
    let x: Vec<f32> = case
        .styles
        .iter()
        .flat_map(|&s| block_values(s, QK_K, &mut rng))
        .collect();
    let mut blocks = vec![BlockQ8K::default(); case.styles.len()];
    quantize(&x, &mut blocks);
    let got: &[u8] = bytemuck::cast_slice(&blocks);
    let want = reference::quant::quantize_q8k(&x).map_err(|e| format!("reference: {e}"))?;
    const BYTES: usize = 292;
    if let Some(at) = (0..want.len()).find(|&i| got[i] != want[i]) {
        let (b, off) = (at / BYTES, at % BYTES);
        let what = match off {
            0..=3 => format!(
                "d = {:e}, spec {:e}",
                blocks[b].d,
                f32::from_le_bytes(want[b * BYTES..b * BYTES + 4].try_into().unwrap())
            ),
            4..=259 => {
                let i = off - 4;
                format!(
                    "value {i} (x = {:e}, block max chosen by spec gives d = {:e}): q = {}, spec {}",
                    x[b * QK_K + i],
                    f32::from_le_bytes(want[b * BYTES..b * BYTES + 4].try_into().unwrap()),
                    blocks[b].qs[i],
                    want[at] as i8
                )
            }
            _ => format!("bsums[{}] differs", (off - 260) / 2),
        };
        return Err(format!("block {b} ({:?}): {what}", case.styles[b]));
    }
    let mut m = Metrics::default();
    let u = f64::powi(2.0, -24);
    for (b, block) in blocks.iter().enumerate() {
        let d = block.d as f64;
        let xs = &x[b * QK_K..(b + 1) * QK_K];
        let max = xs.iter().fold(0f64, |m, &v| m.max((v as f64).abs()));
        let gap = (max - 127.0 * d.abs()).max(0.0);
        for (&q, &xi) in block.qs.iter().zip(xs) {
            let xi = xi as f64;
            let bound =
                d.abs() * (0.5 + 2f64.powi(-16)) + 4.0 * u * xi.abs() + 2f64.powi(-143) + gap;
            m.record(d * q as f64, xi, xi.abs(), bound)?;
        }
    }
    Ok(m)
}

/// Every check `verify` applies to a Q8_K quantizer.
pub fn run_q8k_checks(cases: u32, seed: u64, quantize: Q8kQuantizer) -> super::PropertyOutcome {
    let fixed = fixed_cases();
    super::run_fixed_then_property(&fixed, case_strategy(), cases, seed, |case| {
        check_q8k_case(case, quantize)
    })
}

/// This module's rows, as deferred jobs: the Q8_K quantizer's scalar rule and its AVX2 path
/// (which AVX-512 CPUs run too; NEON runs the scalar rule).
pub fn families(config: &VerifyConfig) -> Vec<super::Job> {
    let mut jobs: Vec<super::Job> = Vec::new();
    let (cases, seed) = (config.cases, config.seed);
    for isa in [Isa::Scalar, Isa::Avx2] {
        if config.wants_kernel(QUANTIZE_Q8K) && config.wants_isa(isa) {
            jobs.push(super::Job::new(isa, move || {
                if let Some(reason) = super::qemu::unavailable_reason(isa) {
                    let kernel = crate::registry::Kernel::QuantizeQ8K;
                    return Ok(Row::skipped(kernel, kernel.designs()[0], isa, reason));
                }
                let quantize = move |x: &[f32], b: &mut [BlockQ8K]| quantize_q8k(isa, x, b);
                let outcome = run_q8k_checks(cases, seed, &quantize);
                Ok(row_spec(QUANTIZE_Q8K, isa, cases, outcome))
            }));
        }
    }
    jobs
}

fn row_spec(kernel: &str, isa: Isa, cases: u32, outcome: super::PropertyOutcome) -> Row {
    let kernel = crate::registry::Kernel::from_name(kernel).expect("a registry kernel name");
    super::row_with_note(kernel, kernel.designs()[0], isa, cases, outcome, |_| {
        "bit-exact vs the reference spec"
    })
}
