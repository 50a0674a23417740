//! Q4_K / Q6_K matmul variants against scalar and against `reference`.
//!
//! Error bounds (u = 2^-24, gamma(m) = m u / (1 - m u)):
//! - **f32 design.** Every dequantized weight is formed from exact products (f16 d has 11
//!   significant bits, scales <= 8 bits, quants <= 6 bits: at most 25 bits for Q6_K's
//!   d*sc*(q-32) whose integer part is < 2^24, and d*sc*q, dmin*m for Q4_K) and at most one
//!   rounding (the subtraction in Q4_K), so w~ = w(1+d0), |d0| <= u. Any order of the k products
//!   and k-1 additions then gives |y - y_exact| <= gamma(k+2) * sum_i |w_i x_i|.
//!   Two variants each within that bound differ by at most twice it.
//! - **q8k design.** Against the reference on the *quantized* activations x^ (exact f64 of
//!   d*q): per block the integer sums are exact; forming `(d*xd)*f32(sumi) - (dmin*xd)*f32(summ)`
//!   takes at most 4 roundings and the block accumulation nb more, so
//!   |y - y^| <= gamma(nb+4) * sum_i (|d sc q_i| + |dmin m_i|) |x^_i|. The activation
//!   quantization itself is checked separately: q = round(s*x) with s = fl(-127/max) gives
//!   |q - s x| <= 1/2 + 2^7 u, and d = fl(1/s), so |x^ - x| <= |d| (1/2 + 2^-16) + 4u|x|;
//!   the total error against the f32 activations is bounded by the sum of the two.
//! - SIMD `q8k` variants must equal `scalar` bit for bit (same integer sums, same f32 combine).
//! - `q8k-x8` (weights repacked into 8-row interleaved blocks, `kernels::matmul::x8`): the
//!   same two checks as `q8k` (the reference within the q8k bound, and bit for bit against
//!   scalar `q8k` on the original blocks), on the same cases with the rows rounded up to whole
//!   8-row panels.
//! - `q8k-amx` (weights repacked into 16-row panels for AMX tile products,
//!   `kernels::matmul::amx`, under avx512 where AMX runs): the same two checks, rows rounded up
//!   to whole 16-row panels.

pub use super::oracle::F32Kernel;
use super::oracle::{ref_err, F32Prepared, IntKernel, IntPrepared, Oracle};
use super::{gamma_f32, qemu, run_property, Memo, Metrics, Row, VerifyConfig};
use crate::registry::{Design as RDesign, Kernel};
use anyhow::Result;
use half::f16;
use kernels::matmul::{self, amx, x8, Design, MatmulDims};
use kernels::quant::{BlockQ4K, BlockQ6K, BlockQ8K, QuantBlock, QK_K};
use kernels::Isa;
use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, StandardNormal};
use reference::quant::Format;
use std::sync::Arc;

/// How the weight blocks of a case are filled.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WeightStyle {
    /// Gaussian rows through the crate's quantizer: what real files hold.
    Quantized,
    /// Random bytes everywhere (finite f16 scales).
    RandomBits,
    /// Every sub-block scale and min distinct, 63 and the high bits of sub-blocks 4..7 used
    /// (Q6_K: distinct signed scales including -128 and 127).
    DistinctScales,
    /// All scales and mins at their maximum (Q6_K: +/-128/127 alternating).
    MaxScales,
    /// Every quant at its minimum (nibbles all 0; Q6_K q = 0, i.e. -32).
    QuantsMin,
    /// Every quant at its maximum (nibbles all 15; Q6_K q = 63).
    QuantsMax,
    /// f16 d / dmin at the extremes: 65504, smallest normal and subnormal, zero, negative.
    ExtremeD,
}

/// How the activations of a case are filled.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ActStyle {
    Gaussian,
    /// N(0,1) scaled per value by 10^U(-4,4).
    WideRange,
    /// Q8 values at +/-127 with block sums at their extremes (+/-2032 per 16).
    Q8Extreme,
    /// Mostly zero, a few large spikes, whole zero blocks.
    Sparse,
}

/// One property case: the shapes and a seed for the contents.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct MatmulCase {
    pub k_blocks: usize,
    pub rows: usize,
    pub n: usize,
    /// y_stride = rows + y_pad.
    pub y_pad: usize,
    pub weights: WeightStyle,
    pub acts: ActStyle,
    pub seed: u64,
}

impl MatmulCase {
    pub fn dims(&self) -> MatmulDims {
        MatmulDims {
            n: self.n,
            k: self.k_blocks * QK_K,
            rows: self.rows,
            y_stride: self.rows + self.y_pad,
        }
    }
}

/// Most multiply-adds (`k * rows * n`) one generated case may have: each boundary the shapes
/// exercise (long k for the accumulators, rows past 64 for the thread and tile splits, n past 32
/// for the activation tiles) is reached on its own, but not all three at once, whose product
/// (24M multiply-adds, computed six times in f64 by the reference) made a few cases most of the
/// gate's time, under qemu above all. The real model shapes are the model-level gate's.
const MAX_CASE_MACS: usize = 1 << 21;

/// Shapes with k from one block to many, rows 1, odd and not a multiple of any tile, n = 1, 2,
/// odd and large, at most [`MAX_CASE_MACS`] multiply-adds.
pub fn case_strategy() -> impl Strategy<Value = MatmulCase> {
    // 22 and 43 blocks: TinyLlama's ffn_down (k = 5632) and a longer odd count.
    let k_blocks = prop_oneof![
        4 => Just(1usize),
        6 => 2usize..=4,
        6 => 5usize..=12,
        1 => Just(22usize),
        1 => Just(43usize),
    ];
    let rows = prop_oneof![
        Just(1usize),
        2usize..=19,
        29usize..=37,
        Just(64usize),
        65usize..=67
    ];
    let n = prop_oneof![
        Just(1usize),
        Just(2usize),
        3usize..=9,
        15usize..=17,
        31usize..=33
    ];
    let weights = prop_oneof![
        3 => Just(WeightStyle::Quantized),
        3 => Just(WeightStyle::RandomBits),
        2 => Just(WeightStyle::DistinctScales),
        1 => Just(WeightStyle::MaxScales),
        1 => Just(WeightStyle::QuantsMin),
        1 => Just(WeightStyle::QuantsMax),
        2 => Just(WeightStyle::ExtremeD),
    ];
    let acts = prop_oneof![
        3 => Just(ActStyle::Gaussian),
        2 => Just(ActStyle::WideRange),
        1 => Just(ActStyle::Q8Extreme),
        1 => Just(ActStyle::Sparse),
    ];
    (k_blocks, rows, n, 0usize..=2, weights, acts, any::<u64>())
        .prop_map(
            |(k_blocks, rows, n, y_pad, weights, acts, seed)| MatmulCase {
                k_blocks,
                rows,
                n,
                y_pad,
                weights,
                acts,
                seed,
            },
        )
        .prop_filter("at most MAX_CASE_MACS multiply-adds", |c| {
            c.k_blocks * QK_K * c.rows * c.n <= MAX_CASE_MACS
        })
}

/// A weight format the gate checks.
pub trait WeightFormat: QuantBlock + Send + Sync {
    const FAMILY: &'static str;
    const KERNEL: Kernel;
    const REF: Format;
    fn generate(style: WeightStyle, rng: &mut StdRng, rows: usize, k_blocks: usize) -> Vec<Self>;
    fn f32_kernel(isa: Isa, x: &[f32], w: &[Self], y: &mut [f32], dims: MatmulDims);
    fn q8k_kernel(isa: Isa, xq: &[BlockQ8K], w: &[Self], y: &mut [f32], dims: MatmulDims);
    /// Repacks `w` into the x8 layout, then runs the x8 kernel (`dims.rows % 8 == 0`).
    fn x8_kernel(isa: Isa, xq: &[BlockQ8K], w: &[Self], y: &mut [f32], dims: MatmulDims);
    /// Repacks `w` into the AMX layout, then runs the AMX kernel (`dims.rows % 16 == 0`).
    fn amx_kernel(xq: &[BlockQ8K], w: &[Self], y: &mut [f32], dims: MatmulDims);
}

/// [`case_strategy`] with the rows rounded up to a multiple of 8 (the x8 panels): 8 to 72
/// rows, one to nine panels.
pub fn x8_case_strategy() -> impl Strategy<Value = MatmulCase> {
    panel_case_strategy(x8::ROWS)
}

/// [`case_strategy`] with the rows rounded up to a multiple of `panel`.
pub fn panel_case_strategy(panel: usize) -> impl Strategy<Value = MatmulCase> {
    case_strategy().prop_map(move |mut case| {
        case.rows = case.rows.next_multiple_of(panel);
        case
    })
}

fn gaussian(rng: &mut StdRng) -> f32 {
    StandardNormal.sample(rng)
}

/// A finite f16 of moderate size, either sign.
fn moderate_f16(rng: &mut StdRng) -> f16 {
    let mag = 10f32.powf(rng.gen_range(-4.0..-1.0));
    f16::from_f32(if rng.gen() { mag } else { -mag })
}

fn extreme_f16(rng: &mut StdRng) -> f16 {
    const CHOICES: [f32; 7] = [
        65504.0,
        -65504.0,
        6.103_515_6e-5,       // smallest normal
        5.960_464_5e-8,       // smallest subnormal
        3.0 * 5.960_464_5e-8, // another subnormal
        0.0,
        -1.0e-3,
    ];
    if rng.gen_bool(0.2) {
        moderate_f16(rng)
    } else {
        f16::from_f32(CHOICES[rng.gen_range(0..CHOICES.len())])
    }
}

/// 16 distinct values from 0..64 including 63 and, among the last eight, values >= 16 so the
/// high bits of the packed scales of sub-blocks 4..7 are exercised.
fn distinct_six_bit(rng: &mut StdRng) -> ([u8; 8], [u8; 8]) {
    let mut pool: Vec<u8> = (0..64).collect();
    for i in (1..pool.len()).rev() {
        pool.swap(i, rng.gen_range(0..=i));
    }
    let mut picked: Vec<u8> = pool.into_iter().filter(|&v| v != 63).take(15).collect();
    picked.push(63);
    for i in (1..picked.len()).rev() {
        picked.swap(i, rng.gen_range(0..=i));
    }
    let mut sc = [0u8; 8];
    let mut m = [0u8; 8];
    sc.copy_from_slice(&picked[..8]);
    m.copy_from_slice(&picked[8..]);
    // Make sure at least one high-half sub-block uses its high bits in both scale and min.
    sc[4 + rng.gen_range(0..4)] |= 0x30;
    m[4 + rng.gen_range(0..4)] |= 0x20;
    (sc, m)
}

/// Packs 6-bit scales and mins the way docs/FORMATS.md describes Q4_K (written here, independently
/// of the kernels crate's packer, so the generator cannot share its bugs).
fn pack_q4k_scales(sc: &[u8; 8], m: &[u8; 8]) -> [u8; 12] {
    let mut s = [0u8; 12];
    for j in 0..4 {
        s[j] = (sc[j] & 63) | ((sc[j + 4] >> 4) << 6);
        s[j + 4] = (m[j] & 63) | ((m[j + 4] >> 4) << 6);
        s[j + 8] = (sc[j + 4] & 0xF) | ((m[j + 4] & 0xF) << 4);
    }
    s
}

impl WeightFormat for BlockQ4K {
    const FAMILY: &'static str = "matmul_q4k";
    const KERNEL: Kernel = Kernel::MatmulQ4K;
    const REF: Format = Format::Q4K;

    fn generate(style: WeightStyle, rng: &mut StdRng, rows: usize, k_blocks: usize) -> Vec<Self> {
        let count = rows * k_blocks;
        if style == WeightStyle::Quantized {
            let x: Vec<f32> = (0..count * QK_K).map(|_| gaussian(rng)).collect();
            let mut w = vec![BlockQ4K::default(); count];
            BlockQ4K::quantize_row(&x, &mut w);
            return w;
        }
        (0..count)
            .map(|_| {
                let mut b = BlockQ4K {
                    d: moderate_f16(rng),
                    dmin: moderate_f16(rng),
                    scales: [0; 12],
                    qs: [0; 128],
                };
                rng.fill(&mut b.scales[..]);
                rng.fill(&mut b.qs[..]);
                match style {
                    WeightStyle::Quantized | WeightStyle::RandomBits => {}
                    WeightStyle::DistinctScales => {
                        let (sc, m) = distinct_six_bit(rng);
                        b.scales = pack_q4k_scales(&sc, &m);
                    }
                    WeightStyle::MaxScales => b.scales = pack_q4k_scales(&[63; 8], &[63; 8]),
                    WeightStyle::QuantsMin => b.qs = [0; 128],
                    WeightStyle::QuantsMax => b.qs = [0xFF; 128],
                    WeightStyle::ExtremeD => {
                        b.d = extreme_f16(rng);
                        b.dmin = extreme_f16(rng);
                    }
                }
                b
            })
            .collect()
    }

    fn f32_kernel(isa: Isa, x: &[f32], w: &[Self], y: &mut [f32], dims: MatmulDims) {
        qemu::matmul(
            matmul::matmul_q4k_f32,
            Self::KERNEL,
            RDesign::F32,
            isa,
            x,
            w,
            y,
            dims,
        )
    }

    fn q8k_kernel(isa: Isa, xq: &[BlockQ8K], w: &[Self], y: &mut [f32], dims: MatmulDims) {
        qemu::matmul(
            matmul::matmul_q4k_q8k,
            Self::KERNEL,
            RDesign::Q8K,
            isa,
            xq,
            w,
            y,
            dims,
        )
    }

    fn x8_kernel(isa: Isa, xq: &[BlockQ8K], w: &[Self], y: &mut [f32], dims: MatmulDims) {
        let packed = x8::repack_q4k(w, dims.rows, 1, isa).expect("x8 cases have whole panels");
        x8::matmul_q4kx8_q8k(isa, xq, &packed, y, dims)
    }

    fn amx_kernel(xq: &[BlockQ8K], w: &[Self], y: &mut [f32], dims: MatmulDims) {
        let packed = amx::repack_q4k(w, dims.rows, 1).expect("AMX cases have whole panels");
        amx::matmul_q4kx16_q8k(xq, &packed, y, dims)
    }
}

impl WeightFormat for BlockQ6K {
    const FAMILY: &'static str = "matmul_q6k";
    const KERNEL: Kernel = Kernel::MatmulQ6K;
    const REF: Format = Format::Q6K;

    fn generate(style: WeightStyle, rng: &mut StdRng, rows: usize, k_blocks: usize) -> Vec<Self> {
        let count = rows * k_blocks;
        if style == WeightStyle::Quantized {
            let x: Vec<f32> = (0..count * QK_K).map(|_| gaussian(rng)).collect();
            let mut w = vec![BlockQ6K::default(); count];
            BlockQ6K::quantize_row(&x, &mut w);
            return w;
        }
        (0..count)
            .map(|_| {
                let mut b = BlockQ6K::default();
                rng.fill(&mut b.ql[..]);
                rng.fill(&mut b.qh[..]);
                for s in b.scales.iter_mut() {
                    *s = rng.gen();
                }
                b.d = moderate_f16(rng);
                match style {
                    WeightStyle::Quantized | WeightStyle::RandomBits => {}
                    WeightStyle::DistinctScales => {
                        let mut pool: Vec<i8> = (-128..=127).collect();
                        for i in (1..pool.len()).rev() {
                            pool.swap(i, rng.gen_range(0..=i));
                        }
                        b.scales.copy_from_slice(&pool[..16]);
                        b.scales[rng.gen_range(0..16)] = -128;
                        let mut other = rng.gen_range(0..16);
                        while b.scales[other] == -128 {
                            other = rng.gen_range(0..16);
                        }
                        b.scales[other] = 127;
                    }
                    WeightStyle::MaxScales => {
                        for (i, s) in b.scales.iter_mut().enumerate() {
                            *s = if i % 2 == 0 { -128 } else { 127 };
                        }
                    }
                    WeightStyle::QuantsMin => {
                        b.ql = [0; 128];
                        b.qh = [0; 64];
                    }
                    WeightStyle::QuantsMax => {
                        b.ql = [0xFF; 128];
                        b.qh = [0xFF; 64];
                    }
                    WeightStyle::ExtremeD => b.d = extreme_f16(rng),
                }
                b
            })
            .collect()
    }

    fn f32_kernel(isa: Isa, x: &[f32], w: &[Self], y: &mut [f32], dims: MatmulDims) {
        qemu::matmul(
            matmul::matmul_q6k_f32,
            Self::KERNEL,
            RDesign::F32,
            isa,
            x,
            w,
            y,
            dims,
        )
    }

    fn q8k_kernel(isa: Isa, xq: &[BlockQ8K], w: &[Self], y: &mut [f32], dims: MatmulDims) {
        qemu::matmul(
            matmul::matmul_q6k_q8k,
            Self::KERNEL,
            RDesign::Q8K,
            isa,
            xq,
            w,
            y,
            dims,
        )
    }

    fn x8_kernel(isa: Isa, xq: &[BlockQ8K], w: &[Self], y: &mut [f32], dims: MatmulDims) {
        let packed = x8::repack_q6k(w, dims.rows, 1).expect("x8 cases have whole panels");
        x8::matmul_q6kx8_q8k(isa, xq, &packed, y, dims)
    }

    fn amx_kernel(xq: &[BlockQ8K], w: &[Self], y: &mut [f32], dims: MatmulDims) {
        let packed = amx::repack_q6k(w, dims.rows, 1).expect("AMX cases have whole panels");
        amx::matmul_q6kx16_q8k(xq, &packed, y, dims)
    }
}

/// f32 activations for a case.
pub fn generate_activations(style: ActStyle, rng: &mut StdRng, len: usize) -> Vec<f32> {
    match style {
        ActStyle::Gaussian => (0..len).map(|_| gaussian(rng)).collect(),
        ActStyle::WideRange => (0..len)
            .map(|_| gaussian(rng) * 10f32.powf(rng.gen_range(-4.0..4.0)))
            .collect(),
        ActStyle::Q8Extreme => {
            // Values of equal magnitude quantize to +/-127 everywhere; signs per group of 16
            // either all equal (block sums at +/-2032) or alternating.
            let mag = 10f32.powf(rng.gen_range(-2.0..2.0));
            let mut x = Vec::with_capacity(len);
            for g in 0..len / 16 {
                let pattern = rng.gen_range(0..3);
                for l in 0..16 {
                    let positive = match pattern {
                        0 => true,
                        1 => false,
                        _ => (l + g) % 2 == 0,
                    };
                    x.push(if positive { mag } else { -mag });
                }
            }
            x
        }
        ActStyle::Sparse => {
            let mut x = vec![0f32; len];
            for v in x.iter_mut() {
                if rng.gen_bool(0.03) {
                    *v = gaussian(rng) * 1000.0;
                }
            }
            x
        }
    }
}

fn as_bytes<T: bytemuck::Pod>(v: &[T]) -> &[u8] {
    bytemuck::cast_slice(v)
}

/// A kernel under test with the q8k design's signature.
pub type Q8kKernel<'a, B> = &'a dyn Fn(&[BlockQ8K], &[B], &mut [f32], MatmulDims);

/// Generates the inputs of an f32-design case and computes its reference.
fn prepare_f32<B: WeightFormat>(case: &MatmulCase) -> Result<F32Prepared<B>, String> {
    let dims = case.dims();
    let mut rng = StdRng::seed_from_u64(case.seed);
    let w = B::generate(case.weights, &mut rng, case.rows, case.k_blocks);
    let x = generate_activations(case.acts, &mut rng, case.n * dims.k);
    F32Prepared::new(w, x, B::REF, &dims)
}

/// f32 design: `kernel` against the reference and, when given, against `scalar`.
pub fn check_f32_case<B: WeightFormat>(
    case: &MatmulCase,
    kernel: F32Kernel<B>,
    scalar: Option<F32Kernel<B>>,
) -> Result<Metrics, String> {
    prepare_f32(case)?.check(case.dims(), kernel, scalar)
}

/// Activations for the q8k design: Q8_K blocks, and the f32 values they stand for (None when
/// the blocks were built directly, so there is no quantization error to account for).
fn q8k_activations(
    case: &MatmulCase,
    rng: &mut StdRng,
    len: usize,
) -> (Vec<BlockQ8K>, Option<Vec<f32>>) {
    let blocks = len / QK_K;
    if case.acts == ActStyle::Q8Extreme {
        let mut xq = vec![BlockQ8K::default(); blocks];
        for b in xq.iter_mut() {
            b.d = 10f32.powf(rng.gen_range(-4.0..0.0));
            let pattern = rng.gen_range(0..3);
            for (i, q) in b.qs.iter_mut().enumerate() {
                *q = match pattern {
                    0 => 127,
                    1 => -127,
                    _ if (i / 16) % 2 == 0 => 127,
                    _ => -127,
                };
            }
            b.fill_bsums();
        }
        return (xq, None);
    }
    let x = generate_activations(case.acts, rng, len);
    let mut xq = vec![BlockQ8K::default(); blocks];
    BlockQ8K::quantize_row(&x, &mut xq);
    (xq, Some(x))
}

/// A case of the q8k design, generated, with its oracles.
pub type Q8kPrepared<B> = IntPrepared<Vec<BlockQ8K>, B>;

/// Generates the inputs of a q8k-design case, checks their quantization against its bound and
/// computes the oracles.
fn prepare_q8k<B: WeightFormat>(case: &MatmulCase) -> Result<Q8kPrepared<B>, String> {
    let (n, k, rows) = (case.n, case.dims().k, case.rows);
    let mut rng = StdRng::seed_from_u64(case.seed);
    let w = B::generate(case.weights, &mut rng, rows, case.k_blocks);
    let (xq, x) = q8k_activations(case, &mut rng, n * k);

    let wf = reference::quant::dequantize(B::REF, as_bytes(&w)).map_err(ref_err)?;
    let wmag = reference::quant::term_magnitudes(B::REF, as_bytes(&w)).map_err(ref_err)?;
    let xhat = reference::quant::dequantize(Format::Q8K, as_bytes(&xq)).map_err(ref_err)?;

    // Activation quantization error per value.
    let u = f64::powi(2.0, -24);
    let mut xerr = vec![0f64; n * k];
    if let Some(x) = &x {
        for (i, ((&xv, &xh), e)) in x.iter().zip(&xhat).zip(xerr.iter_mut()).enumerate() {
            let d = xq[i / QK_K].d.abs() as f64;
            let allowed = d * (0.5 + f64::powi(2.0, -16)) + 4.0 * u * (xv as f64).abs();
            let err = (xh - xv as f64).abs();
            if err > allowed {
                return Err(format!(
                    "Q8_K quantization of activation {i}: {xv:e} -> {xh:e}, |err| {err:e} > {allowed:e}"
                ));
            }
            *e = allowed;
        }
    }
    let xabs: Vec<f64> = xhat.iter().map(|v| v.abs()).collect();
    let wabs: Vec<f64> = wf.iter().map(|v| v.abs()).collect();
    let (want_hat, hat_scale) = reference::matmul::matmul_and_abs(&xhat, &wf, n, k, rows);
    let float_scale = reference::matmul::matmul(&xabs, &wmag, n, k, rows);
    let g = gamma_f32(case.k_blocks + 4);
    let tight = Oracle {
        want: want_hat,
        bound: float_scale.iter().map(|s| g * s).collect(),
        scale: hat_scale,
    };
    let total = x.map(|x| {
        let xf: Vec<f64> = x.iter().map(|&v| v as f64).collect();
        let quant_bound = reference::matmul::matmul(&xerr, &wabs, n, k, rows);
        let (want, scale) = reference::matmul::matmul_and_abs(&xf, &wf, n, k, rows);
        Oracle {
            want,
            bound: quant_bound
                .iter()
                .zip(&tight.bound)
                .map(|(q, f)| q + f)
                .collect(),
            scale,
        }
    });
    Ok(Q8kPrepared {
        w,
        xq,
        tight,
        total,
    })
}

/// q8k design: `kernel` against the reference on the quantized activations (tight bound), the
/// quantization against its bound, and the whole against the f32-activation result (reported
/// metrics); when given, bit-exact against `scalar`.
pub fn check_q8k_case<B: WeightFormat>(
    case: &MatmulCase,
    kernel: Q8kKernel<B>,
    scalar: Option<Q8kKernel<B>>,
) -> Result<Metrics, String> {
    check_q8k_prepared(case, &prepare_q8k(case)?, kernel, scalar)
}

fn check_q8k_prepared<B: WeightFormat>(
    case: &MatmulCase,
    p: &Q8kPrepared<B>,
    kernel: Q8kKernel<B>,
    scalar: Option<Q8kKernel<B>>,
) -> Result<Metrics, String> {
    let kernel = |xq: &Vec<BlockQ8K>, w: &[B], y: &mut [f32], d| kernel(xq, w, y, d);
    let scalar =
        scalar.map(|s| move |xq: &Vec<BlockQ8K>, w: &[B], y: &mut [f32], d| s(xq, w, y, d));
    let scalar: Option<IntKernel<Vec<BlockQ8K>, B>> = scalar.as_ref().map(|s| s as _);
    p.check(case.dims(), &kernel, scalar)
}

/// The prepared cases of one weight format, shared by its rows (see [`Memo`]).
pub struct FormatMemo<B> {
    f32: Memo<MatmulCase, F32Prepared<B>>,
    q8k: Memo<MatmulCase, Q8kPrepared<B>>,
}

impl<B> Default for FormatMemo<B> {
    fn default() -> Self {
        FormatMemo {
            f32: Memo::default(),
            q8k: Memo::default(),
        }
    }
}

/// Runs one variant of format `B`.
pub fn verify_variant<B: WeightFormat>(
    design: Design,
    isa: Isa,
    cases: u32,
    seed: u64,
    memo: &FormatMemo<B>,
) -> Row {
    if let Some(reason) = qemu::unavailable_reason(isa) {
        return Row::skipped(B::KERNEL, design.into(), isa, reason);
    }
    let outcome = match design {
        Design::F32 => {
            let kernel = |x: &[f32], w: &[B], y: &mut [f32], d| B::f32_kernel(isa, x, w, y, d);
            let scalar =
                |x: &[f32], w: &[B], y: &mut [f32], d| B::f32_kernel(Isa::Scalar, x, w, y, d);
            let oracle: Option<F32Kernel<B>> = (isa != Isa::Scalar).then_some(&scalar);
            run_property(case_strategy(), cases, seed, |case| {
                let p = memo.f32.get_or_try(case, || prepare_f32(case))?;
                p.check(case.dims(), &kernel, oracle)
            })
        }
        Design::Q8K => {
            let kernel = |x: &[BlockQ8K], w: &[B], y: &mut [f32], d| B::q8k_kernel(isa, x, w, y, d);
            let scalar =
                |x: &[BlockQ8K], w: &[B], y: &mut [f32], d| B::q8k_kernel(Isa::Scalar, x, w, y, d);
            let oracle: Option<Q8kKernel<B>> = (isa != Isa::Scalar).then_some(&scalar);
            run_property(case_strategy(), cases, seed, |case| {
                let p = memo.q8k.get_or_try(case, || prepare_q8k(case))?;
                check_q8k_prepared(case, &p, &kernel, oracle)
            })
        }
        Design::Q8_0 | Design::Q8_1 => unreachable!("not a design of the 256-value formats"),
    };
    super::row_with_note(
        B::KERNEL,
        design.into(),
        isa,
        cases,
        outcome,
        |isa| match (isa, design) {
            (Isa::Scalar, _) => "vs reference",
            (_, Design::F32) => "vs reference and scalar",
            (_, _) => "vs reference; bit-exact vs scalar",
        },
    )
}

/// The `q8k-x8` row of format `B` on `isa`: repack, x8 kernel, then the `q8k` checks with
/// scalar `q8k` on the original blocks as the bit-exact oracle.
pub fn verify_x8_variant<B: WeightFormat>(
    isa: Isa,
    cases: u32,
    seed: u64,
    memo: &FormatMemo<B>,
) -> Row {
    let design = crate::registry::Design::Q8KX8;
    if !x8::runs_on(isa) {
        return Row::skipped(B::KERNEL, design, isa, crate::registry::X8_ONLY);
    }
    if let Some(reason) = qemu::unavailable_reason(isa) {
        return Row::skipped(B::KERNEL, design, isa, reason);
    }
    let kernel = |x: &[BlockQ8K], w: &[B], y: &mut [f32], d| B::x8_kernel(isa, x, w, y, d);
    let scalar = |x: &[BlockQ8K], w: &[B], y: &mut [f32], d| B::q8k_kernel(Isa::Scalar, x, w, y, d);
    let outcome = run_property(x8_case_strategy(), cases, seed, |case| {
        let p = memo.q8k.get_or_try(case, || prepare_q8k(case))?;
        check_q8k_prepared(case, &p, &kernel, Some(&scalar))
    });
    super::row_with_note(B::KERNEL, design, isa, cases, outcome, |_| {
        "vs reference; bit-exact vs scalar q8k on the original blocks"
    })
}

/// The `q8k-amx` row of format `B` on `isa`: as [`verify_x8_variant`] with the AMX layout and
/// kernel, SKIPPED where AMX does not run, absent on every ISA but avx512.
pub fn verify_amx_variant<B: WeightFormat>(
    isa: Isa,
    cases: u32,
    seed: u64,
    memo: &FormatMemo<B>,
) -> Row {
    let variant = crate::registry::Variant {
        kernel: B::KERNEL,
        design: crate::registry::Design::Q8KAmx,
        isa,
    };
    if let Some(reason) = variant.unavailable_reason() {
        return Row::skipped(B::KERNEL, variant.design, isa, &reason);
    }
    let kernel = |x: &[BlockQ8K], w: &[B], y: &mut [f32], d| B::amx_kernel(x, w, y, d);
    let scalar = |x: &[BlockQ8K], w: &[B], y: &mut [f32], d| B::q8k_kernel(Isa::Scalar, x, w, y, d);
    let outcome = run_property(panel_case_strategy(amx::ROWS), cases, seed, |case| {
        let p = memo.q8k.get_or_try(case, || prepare_q8k(case))?;
        check_q8k_prepared(case, &p, &kernel, Some(&scalar))
    });
    super::row_with_note(B::KERNEL, variant.design, isa, cases, outcome, |_| {
        "vs reference; bit-exact vs scalar q8k on the original blocks"
    })
}

/// The rows this family contributes, as deferred jobs so they can be printed as they finish.
pub fn families(config: &VerifyConfig) -> Vec<super::Job> {
    let mut jobs: Vec<super::Job> = Vec::new();
    if config.wants_kernel(BlockQ4K::FAMILY) {
        format_jobs::<BlockQ4K>(config, &mut jobs);
    }
    if config.wants_kernel(BlockQ6K::FAMILY) {
        format_jobs::<BlockQ6K>(config, &mut jobs);
    }
    jobs
}

/// The rows of format `B`, sharing one [`FormatMemo`] (freed with the last of them).
fn format_jobs<B: WeightFormat + 'static>(config: &VerifyConfig, jobs: &mut Vec<super::Job>) {
    let (cases, seed) = (config.cases, config.seed);
    let memo = Arc::new(FormatMemo::<B>::default());
    for design in [Design::F32, Design::Q8K] {
        for isa in Isa::ALL.into_iter().filter(|&i| config.wants_isa(i)) {
            let memo = memo.clone();
            jobs.push(super::Job::new(isa, move || {
                Ok(verify_variant::<B>(design, isa, cases, seed, &memo))
            }));
        }
    }
    for isa in Isa::ALL.into_iter().filter(|&i| config.wants_isa(i)) {
        let memo = memo.clone();
        jobs.push(super::Job::new(isa, move || {
            Ok(verify_x8_variant::<B>(isa, cases, seed, &memo))
        }));
    }
    for isa in Isa::ALL.into_iter().filter(|&i| config.wants_isa(i)) {
        let memo = memo.clone();
        jobs.push(super::Job::new(isa, move || {
            Ok(verify_amx_variant::<B>(isa, cases, seed, &memo))
        }));
    }
}
