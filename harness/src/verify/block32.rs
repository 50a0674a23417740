//! The 32-value block formats (Q8_0, Q4_0, Q5_0, Q4_1), F16 weights and the Q8_0 / Q8_1
//! activation quantizers, against scalar and against `reference`.
//!
//! Error bounds (u = 2^-24, gamma(m) = m u / (1 - m u), from [`super::bounds`]):
//! - **f32 design** (and F16): every weight is formed with at most one rounding (`d*q` is exact:
//!   11-bit `d` times an integer of at most 8 bits; Q4_1's `d*q + m` rounds once; f16 -> f32 is
//!   exact), then any order of `k` products and `k - 1` additions:
//!   `|y - y_exact| <= gamma(k+2) * sum_i |w_i x_i|`. Two variants within it differ by at most
//!   twice that.
//! - **q8_0 / q8_1 designs**, against the reference on the quantized activations `x^ = d_x q_x`
//!   (exact in f64): per block the integer dot is exact (`|sumi| <= 32*128*127 < 2^24`, so
//!   `f32(sumi)` is exact too); `(d_w*d_x)*f32(sumi)` rounds twice, Q4_1's `+ m_w*s_x` twice more,
//!   the accumulation over `nb` blocks `nb` times: `|y - y~| <= gamma(nb+4) * T`, where `y~` is
//!   the exact value of what the kernel combines and
//!   `T = sum_i (|d_w q_i| + |m_w|) |x^_i| + sum_blocks |m_w| |s_x - d_x S|` bounds the magnitudes
//!   of its terms (`S` the block's sum of quants). For Q4_1, `y~` differs from the reference's
//!   `sum (d_w q + m_w) x^` by exactly `sum_blocks m_w (s_x - d_x S)`: `s_x` is `f16(d S)` with
//!   the unrounded `d`, not `d_x S` (the format's own rounding, computed here from the blocks, not
//!   a tolerance). So the bound is `gamma(nb+4) T + sum_blocks |m_w| |s_x - d_x S|`.
//!   SIMD variants must equal scalar bit for bit.
//!   Reported figures are against the f32 activations, quantization included:
//!   `|y - y_f32| <= that bound + sum_i |w_i| |x^_i - x_i|` (triangle inequality; the per-value
//!   quantization errors are the quantizer's, checked on their own rows).
//! - **Quantizers**: every ISA must produce, byte for byte, the blocks of the specification
//!   (`reference::quant::quantize_q8_0` / `_q8_1`); and each value must meet the
//!   specification's own error bound: with `d = amax/127` (f32) and `d_x = f16(d)`,
//!   `|q - x*id| <= 1/2` and `|x*id - x/d| <= 2.01u |x/d| <= 256u` give
//!   `|d_x q - x| <= |q| |d_x - d| + |d| (1/2 + 256u)` (and `|x|` itself where `id = 0`).

use super::bounds::{gamma_f32, U};
pub use super::oracle::F32Kernel;
use super::oracle::{self, ref_err, F32Prepared, Oracle};
use super::{qemu, row_with_note, run_property, Memo, Metrics, PropertyOutcome, Row, VerifyConfig};
use crate::registry::{Design, Kernel};
use anyhow::Result;
use half::f16;
use kernels::matmul::{self, MatmulDims};
use kernels::quant::{BlockQ4_0, BlockQ4_1, BlockQ5_0, BlockQ8_0, BlockQ8_1, QuantBlock};
use kernels::Isa;
use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, StandardNormal};
use reference::quant::Format;
use std::fmt::Debug;
use std::sync::Arc;

/// How the weights of a case are filled.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WeightStyle {
    /// Gaussian rows through the crate's quantizer (F16: Gaussian values).
    Quantized,
    /// Random bytes with moderate finite f16 scales (F16: random finite halves).
    RandomBits,
    /// f16 `d` (and `m`) at the extremes: +/-65504, smallest normal, subnormals, zero, negative.
    /// F16 weights: those values themselves, and -0.
    ExtremeScales,
    /// Q4_1: mins negative and large (down to -65504). Others: as `RandomBits`.
    NegativeLargeMins,
    /// Q5_0: exactly one high bit set per block, at a random position. Others: `RandomBits`.
    HighBitOne,
    /// Q5_0: all 32 high bits set. Others: `RandomBits`.
    HighBitsAll,
    /// Q8_0: every value -128 or 127; nibble formats all 0 or all 15 per block.
    ExtremeQuants,
}

/// How the activations of a case are filled.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ActStyle {
    Gaussian,
    /// N(0,1) scaled per value by 10^U(-4,4).
    WideRange,
    /// Equal magnitudes: every value quantizes to +/-127.
    Q8Extreme,
    /// Mostly zero, a few large spikes, whole zero blocks.
    Sparse,
    /// Tiny and subnormal magnitudes (blocks whose scale reciprocal overflows, `id = 0`).
    Tiny,
    /// Each block's largest magnitude is negative, and ties `x*id = n + 1/2` are planted.
    NegativeMaxAndTies,
}

/// One property case.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Case32 {
    pub k_blocks: usize,
    pub rows: usize,
    pub n: usize,
    pub y_pad: usize,
    pub weights: WeightStyle,
    pub acts: ActStyle,
    pub seed: u64,
}

impl Case32 {
    pub fn dims(&self) -> MatmulDims {
        MatmulDims {
            n: self.n,
            k: 32 * self.k_blocks,
            rows: self.rows,
            y_stride: self.rows + self.y_pad,
        }
    }
}

/// k from one block (k = 32) up; 18 and 48 blocks are SmolLM2's k = 576 and 1536 (not multiples
/// of 256).
pub fn case_strategy() -> impl Strategy<Value = Case32> {
    let k_blocks = prop_oneof![
        3 => Just(1usize),
        4 => 2usize..=9,
        2 => 10usize..=17,
        1 => Just(18usize),
        1 => Just(48usize),
    ];
    let rows = prop_oneof![Just(1usize), 2usize..=9, 15usize..=17, 31usize..=33];
    let n = prop_oneof![Just(1usize), Just(2usize), 3usize..=9, 15usize..=17];
    let weights = prop_oneof![
        3 => Just(WeightStyle::Quantized),
        3 => Just(WeightStyle::RandomBits),
        2 => Just(WeightStyle::ExtremeScales),
        1 => Just(WeightStyle::NegativeLargeMins),
        1 => Just(WeightStyle::HighBitOne),
        1 => Just(WeightStyle::HighBitsAll),
        2 => Just(WeightStyle::ExtremeQuants),
    ];
    let acts = prop_oneof![
        3 => Just(ActStyle::Gaussian),
        2 => Just(ActStyle::WideRange),
        1 => Just(ActStyle::Q8Extreme),
        1 => Just(ActStyle::Sparse),
        1 => Just(ActStyle::Tiny),
        1 => Just(ActStyle::NegativeMaxAndTies),
    ];
    (k_blocks, rows, n, 0usize..=2, weights, acts, any::<u64>()).prop_map(
        |(k_blocks, rows, n, y_pad, weights, acts, seed)| Case32 {
            k_blocks,
            rows,
            n,
            y_pad,
            weights,
            acts,
            seed,
        },
    )
}

/// The activation blocks of an integer design.
#[derive(Clone, Debug)]
pub enum ActBlocks {
    Q8_0(Vec<BlockQ8_0>),
    Q8_1(Vec<BlockQ8_1>),
}

impl ActBlocks {
    fn bytes(&self) -> &[u8] {
        match self {
            ActBlocks::Q8_0(b) => bytemuck::cast_slice(b),
            ActBlocks::Q8_1(b) => bytemuck::cast_slice(b),
        }
    }

    fn format(&self) -> Format {
        match self {
            ActBlocks::Q8_0(_) => Format::Q8_0,
            ActBlocks::Q8_1(_) => Format::Q8_1,
        }
    }
}

/// The quantizer of an integer design, by ISA.
pub fn quantize(design: Design, isa: Isa, x: &[f32]) -> ActBlocks {
    let blocks = x.len() / 32;
    match design {
        Design::Q8_1 => {
            let mut out = vec![BlockQ8_1::default(); blocks];
            qemu::quantize(Design::Q8_1, isa, x, &mut out, matmul::quantize_q8_1);
            ActBlocks::Q8_1(out)
        }
        _ => {
            let mut out = vec![BlockQ8_0::default(); blocks];
            qemu::quantize(Design::Q8_0, isa, x, &mut out, matmul::quantize_q8_0);
            ActBlocks::Q8_0(out)
        }
    }
}

/// A weight format of this module.
pub trait Weight32: bytemuck::Pod + Debug + Send + Sync {
    const KERNEL: Kernel;
    const REF: Format;
    /// Values per element: 32 for blocks, 1 for F16.
    const VALUES: usize;
    /// The integer design (`q8_0` or `q8_1`), or `None` (F16).
    const INT_DESIGN: Option<Design>;
    /// `count` elements in `style`.
    fn generate(style: WeightStyle, rng: &mut StdRng, count: usize) -> Vec<Self>;
    fn f32_kernel(isa: Isa, x: &[f32], w: &[Self], y: &mut [f32], dims: MatmulDims);
    fn int_kernel(isa: Isa, xq: &ActBlocks, w: &[Self], y: &mut [f32], dims: MatmulDims);
    /// Per block (32 values): the min `m` (Q4_1), else 0.
    fn block_min(_w: &[Self], _block: usize) -> f64 {
        0.0
    }
}

fn gaussian(rng: &mut StdRng) -> f32 {
    StandardNormal.sample(rng)
}

fn moderate_f16(rng: &mut StdRng) -> f16 {
    let mag = 10f32.powf(rng.gen_range(-4.0..-1.0));
    f16::from_f32(if rng.gen() { mag } else { -mag })
}

fn extreme_f16(rng: &mut StdRng) -> f16 {
    const CHOICES: [f32; 8] = [
        65504.0,
        -65504.0,
        6.103_515_6e-5,       // smallest normal
        -6.103_515_6e-5,      // its negative
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

fn quantized<B: QuantBlock>(rng: &mut StdRng, count: usize) -> Vec<B> {
    let x: Vec<f32> = (0..count * 32).map(|_| gaussian(rng)).collect();
    let mut w = vec![B::zeroed(); count];
    B::quantize_row(&x, &mut w);
    w
}

/// Random bytes for the block, then `d` (at offset 0) per style.
fn random_block<B: bytemuck::Pod>(rng: &mut StdRng, style: WeightStyle) -> B {
    let mut b = B::zeroed();
    let bytes: &mut [u8] = bytemuck::bytes_of_mut(&mut b);
    rng.fill(bytes);
    let d = if style == WeightStyle::ExtremeScales {
        extreme_f16(rng)
    } else {
        moderate_f16(rng)
    };
    bytes[..2].copy_from_slice(&d.to_bits().to_le_bytes());
    b
}

/// Nibble arrays for `ExtremeQuants`: all 0 or all 15 per block.
fn extreme_nibbles(rng: &mut StdRng) -> [u8; 16] {
    if rng.gen() {
        [0; 16]
    } else {
        [0xFF; 16]
    }
}

impl Weight32 for BlockQ8_0 {
    const KERNEL: Kernel = Kernel::MatmulQ8_0;
    const REF: Format = Format::Q8_0;
    const VALUES: usize = 32;
    const INT_DESIGN: Option<Design> = Some(Design::Q8_0);

    fn generate(style: WeightStyle, rng: &mut StdRng, count: usize) -> Vec<Self> {
        if style == WeightStyle::Quantized {
            return quantized(rng, count);
        }
        (0..count)
            .map(|_| {
                let mut b: BlockQ8_0 = random_block(rng, style);
                if style == WeightStyle::ExtremeQuants {
                    for q in b.qs.iter_mut() {
                        *q = if rng.gen() { -128 } else { 127 };
                    }
                }
                b
            })
            .collect()
    }
    fn f32_kernel(isa: Isa, x: &[f32], w: &[Self], y: &mut [f32], dims: MatmulDims) {
        qemu::matmul(
            matmul::matmul_q8_0_f32,
            Self::KERNEL,
            Design::F32,
            isa,
            x,
            w,
            y,
            dims,
        )
    }
    fn int_kernel(isa: Isa, xq: &ActBlocks, w: &[Self], y: &mut [f32], dims: MatmulDims) {
        if let ActBlocks::Q8_0(xq) = xq {
            qemu::matmul(
                matmul::matmul_q8_0_q8_0,
                Self::KERNEL,
                Design::Q8_0,
                isa,
                xq,
                w,
                y,
                dims,
            )
        }
    }
}

impl Weight32 for BlockQ4_0 {
    const KERNEL: Kernel = Kernel::MatmulQ4_0;
    const REF: Format = Format::Q4_0;
    const VALUES: usize = 32;
    const INT_DESIGN: Option<Design> = Some(Design::Q8_0);

    fn generate(style: WeightStyle, rng: &mut StdRng, count: usize) -> Vec<Self> {
        if style == WeightStyle::Quantized {
            return quantized(rng, count);
        }
        (0..count)
            .map(|_| {
                let mut b: BlockQ4_0 = random_block(rng, style);
                if style == WeightStyle::ExtremeQuants {
                    b.qs = extreme_nibbles(rng);
                }
                b
            })
            .collect()
    }
    fn f32_kernel(isa: Isa, x: &[f32], w: &[Self], y: &mut [f32], dims: MatmulDims) {
        qemu::matmul(
            matmul::matmul_q4_0_f32,
            Self::KERNEL,
            Design::F32,
            isa,
            x,
            w,
            y,
            dims,
        )
    }
    fn int_kernel(isa: Isa, xq: &ActBlocks, w: &[Self], y: &mut [f32], dims: MatmulDims) {
        if let ActBlocks::Q8_0(xq) = xq {
            qemu::matmul(
                matmul::matmul_q4_0_q8_0,
                Self::KERNEL,
                Design::Q8_0,
                isa,
                xq,
                w,
                y,
                dims,
            )
        }
    }
}

impl Weight32 for BlockQ5_0 {
    const KERNEL: Kernel = Kernel::MatmulQ5_0;
    const REF: Format = Format::Q5_0;
    const VALUES: usize = 32;
    const INT_DESIGN: Option<Design> = Some(Design::Q8_0);

    fn generate(style: WeightStyle, rng: &mut StdRng, count: usize) -> Vec<Self> {
        if style == WeightStyle::Quantized {
            return quantized(rng, count);
        }
        (0..count)
            .map(|_| {
                let mut b: BlockQ5_0 = random_block(rng, style);
                match style {
                    WeightStyle::HighBitOne => {
                        b.qh = (1u32 << rng.gen_range(0..32)).to_le_bytes();
                    }
                    WeightStyle::HighBitsAll => b.qh = [0xFF; 4],
                    WeightStyle::ExtremeQuants => {
                        b.qs = extreme_nibbles(rng);
                        b.qh = if b.qs[0] == 0 { [0; 4] } else { [0xFF; 4] };
                    }
                    _ => {}
                }
                b
            })
            .collect()
    }
    fn f32_kernel(isa: Isa, x: &[f32], w: &[Self], y: &mut [f32], dims: MatmulDims) {
        qemu::matmul(
            matmul::matmul_q5_0_f32,
            Self::KERNEL,
            Design::F32,
            isa,
            x,
            w,
            y,
            dims,
        )
    }
    fn int_kernel(isa: Isa, xq: &ActBlocks, w: &[Self], y: &mut [f32], dims: MatmulDims) {
        if let ActBlocks::Q8_0(xq) = xq {
            qemu::matmul(
                matmul::matmul_q5_0_q8_0,
                Self::KERNEL,
                Design::Q8_0,
                isa,
                xq,
                w,
                y,
                dims,
            )
        }
    }
}

impl Weight32 for BlockQ4_1 {
    const KERNEL: Kernel = Kernel::MatmulQ4_1;
    const REF: Format = Format::Q4_1;
    const VALUES: usize = 32;
    const INT_DESIGN: Option<Design> = Some(Design::Q8_1);

    fn generate(style: WeightStyle, rng: &mut StdRng, count: usize) -> Vec<Self> {
        if style == WeightStyle::Quantized {
            return quantized(rng, count);
        }
        (0..count)
            .map(|_| {
                let mut b: BlockQ4_1 = random_block(rng, style);
                b.m = match style {
                    WeightStyle::ExtremeScales => extreme_f16(rng),
                    WeightStyle::NegativeLargeMins => {
                        f16::from_f32(-(10f32.powf(rng.gen_range(2.0..4.8163))))
                    }
                    _ => moderate_f16(rng),
                };
                if style == WeightStyle::ExtremeQuants {
                    b.qs = extreme_nibbles(rng);
                }
                b
            })
            .collect()
    }
    fn f32_kernel(isa: Isa, x: &[f32], w: &[Self], y: &mut [f32], dims: MatmulDims) {
        qemu::matmul(
            matmul::matmul_q4_1_f32,
            Self::KERNEL,
            Design::F32,
            isa,
            x,
            w,
            y,
            dims,
        )
    }
    fn int_kernel(isa: Isa, xq: &ActBlocks, w: &[Self], y: &mut [f32], dims: MatmulDims) {
        if let ActBlocks::Q8_1(xq) = xq {
            qemu::matmul(
                matmul::matmul_q4_1_q8_1,
                Self::KERNEL,
                Design::Q8_1,
                isa,
                xq,
                w,
                y,
                dims,
            )
        }
    }
    fn block_min(w: &[Self], block: usize) -> f64 {
        w[block].m.to_f64()
    }
}

impl Weight32 for f16 {
    const KERNEL: Kernel = Kernel::MatmulF16;
    const REF: Format = Format::F16;
    const VALUES: usize = 1;
    const INT_DESIGN: Option<Design> = None;

    fn generate(style: WeightStyle, rng: &mut StdRng, count: usize) -> Vec<Self> {
        (0..count)
            .map(|_| match style {
                WeightStyle::ExtremeScales => {
                    if rng.gen_bool(0.1) {
                        f16::from_f32(-0.0)
                    } else {
                        extreme_f16(rng)
                    }
                }
                WeightStyle::RandomBits => loop {
                    let h = f16::from_bits(rng.gen());
                    if h.is_finite() {
                        break h;
                    }
                },
                _ => f16::from_f32(gaussian(rng)),
            })
            .collect()
    }
    fn f32_kernel(isa: Isa, x: &[f32], w: &[Self], y: &mut [f32], dims: MatmulDims) {
        qemu::matmul(
            matmul::matmul_f16_f32,
            Self::KERNEL,
            Design::F32,
            isa,
            x,
            w,
            y,
            dims,
        )
    }
    fn int_kernel(_: Isa, _: &ActBlocks, _: &[Self], _: &mut [f32], _: MatmulDims) {
        unreachable!("F16 has no integer design")
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
            let mag = 10f32.powf(rng.gen_range(-2.0..2.0));
            (0..len)
                .map(|_| if rng.gen() { mag } else { -mag })
                .collect()
        }
        ActStyle::Sparse => {
            let mut x = vec![0f32; len];
            let zero_block = rng.gen_range(0..len / 32);
            for (i, v) in x.iter_mut().enumerate() {
                if i / 32 != zero_block && rng.gen_bool(0.05) {
                    *v = gaussian(rng) * 1000.0;
                }
            }
            x
        }
        ActStyle::Tiny => (0..len)
            .map(|_| {
                // Down to the smallest subnormal; some blocks have amax < 127 * 2^-128.
                gaussian(rng) * 10f32.powf(rng.gen_range(-45.0..-30.0))
            })
            .collect(),
        ActStyle::NegativeMaxAndTies => {
            let mut x = Vec::with_capacity(len);
            for _ in 0..len / 32 {
                // amax = 127 * 2^e exactly, so d = 2^e, id = 2^-e and x*id = m + 1/2 is exact; e = 16
                // saturates the stored d at 65504.
                let e = rng.gen_range(-20..=16);
                let d = 2f32.powi(e);
                let mut block: Vec<f32> = (0..32)
                    .map(|_| {
                        let m = rng.gen_range(-126i32..126);
                        let half = if rng.gen() { 0.5 } else { 0.0 };
                        (m as f32 + half) * d
                    })
                    .collect();
                block[rng.gen_range(0..32)] = -127.0 * d;
                x.extend(block);
            }
            x
        }
    }
}

/// A kernel under test with an integer design's signature.
pub type IntKernel<'a, W> = &'a dyn Fn(&ActBlocks, &[W], &mut [f32], MatmulDims);

fn weights_for<W: Weight32>(case: &Case32, rng: &mut StdRng) -> Vec<W> {
    W::generate(
        case.weights,
        rng,
        case.rows * case.k_blocks * 32 / W::VALUES,
    )
}

/// Generates the inputs of an f32-design case and computes its reference.
fn prepare_f32<W: Weight32>(case: &Case32) -> Result<F32Prepared<W>, String> {
    let dims = case.dims();
    let mut rng = StdRng::seed_from_u64(case.seed);
    let w = weights_for::<W>(case, &mut rng);
    let x = generate_activations(case.acts, &mut rng, case.n * dims.k);
    F32Prepared::new(w, x, W::REF, &dims)
}

/// f32 design: `kernel` against the reference and, when given, against `scalar`.
pub fn check_f32_case<W: Weight32>(
    case: &Case32,
    kernel: F32Kernel<W>,
    scalar: Option<F32Kernel<W>>,
) -> Result<Metrics, String> {
    prepare_f32(case)?.check(case.dims(), kernel, scalar)
}

/// A case of an integer design, generated, with its oracles (module docs give the bounds).
pub type IntPrepared<W> = oracle::IntPrepared<ActBlocks, W>;

/// Generates the inputs of an integer-design case (activations quantized by the scalar
/// quantizer) and computes its oracles.
fn prepare_int<W: Weight32>(case: &Case32) -> Result<IntPrepared<W>, String> {
    let design = W::INT_DESIGN.expect("an integer design");
    let dims = case.dims();
    let (n, k, rows, nb) = (case.n, dims.k, case.rows, case.k_blocks);
    let mut rng = StdRng::seed_from_u64(case.seed);
    let w = weights_for::<W>(case, &mut rng);
    let x = generate_activations(case.acts, &mut rng, n * k);
    let xq = quantize(design, Isa::Scalar, &x);

    let wbytes = bytemuck::cast_slice(&w);
    let wf = reference::quant::dequantize(W::REF, wbytes).map_err(ref_err)?;
    let wmag = reference::quant::term_magnitudes(W::REF, wbytes).map_err(ref_err)?;
    let xhat = reference::quant::dequantize(xq.format(), xq.bytes()).map_err(ref_err)?;
    let xabs: Vec<f64> = xhat.iter().map(|v| v.abs()).collect();

    // Per (activation row, weight row): sum over blocks of |m_w| |s_x - d_x S| (Q4_1 only).
    let mut s_gap = vec![0f64; n * rows];
    if let ActBlocks::Q8_1(blocks) = &xq {
        for i in 0..n {
            for r in 0..rows {
                s_gap[i * rows + r] = (0..nb)
                    .map(|b| {
                        let xb = &blocks[i * nb + b];
                        let sum: i32 = xb.qs.iter().map(|&q| q as i32).sum();
                        let gap = (xb.s.to_f64() - xb.d.to_f64() * sum as f64).abs();
                        W::block_min(&w, r * nb + b).abs() * gap
                    })
                    .sum();
            }
        }
    }
    let g = gamma_f32(nb + 4);
    let terms = reference::matmul::matmul(&xabs, &wmag, n, k, rows);
    let (want_hat, hat_scale) = reference::matmul::matmul_and_abs(&xhat, &wf, n, k, rows);
    let tight = Oracle {
        want: want_hat,
        bound: terms
            .iter()
            .zip(&s_gap)
            .map(|(t, gap)| g * (t + gap) + gap)
            .collect(),
        scale: hat_scale,
    };

    // The design's total error against the f32 activations (reported; bound_use stays the
    // kernel's own).
    let xf: Vec<f64> = x.iter().map(|&v| v as f64).collect();
    let xerr: Vec<f64> = xhat.iter().zip(&xf).map(|(a, b)| (a - b).abs()).collect();
    let wabs: Vec<f64> = wf.iter().map(|v| v.abs()).collect();
    let quant = reference::matmul::matmul(&xerr, &wabs, n, k, rows);
    let (want, scale) = reference::matmul::matmul_and_abs(&xf, &wf, n, k, rows);
    let total = Oracle {
        want,
        bound: quant
            .iter()
            .zip(&tight.bound)
            // The f64 sums themselves are within 1e-12 relative of exact.
            .map(|(q, b)| (q + b) * (1.0 + 1e-12))
            .collect(),
        scale,
    };
    Ok(IntPrepared {
        w,
        xq,
        tight,
        total: Some(total),
    })
}

/// Integer design: `kernel` on activations quantized by the scalar quantizer, against the
/// reference on the quantized activations (tight bound, module docs), and reported against the
/// f32 activations; when given, bit-exact against `scalar`.
pub fn check_int_case<W: Weight32>(
    case: &Case32,
    kernel: IntKernel<W>,
    scalar: Option<IntKernel<W>>,
) -> Result<Metrics, String> {
    prepare_int(case)?.check(case.dims(), kernel, scalar)
}

/// The prepared cases of one weight format, shared by its rows (see [`Memo`]).
pub struct FormatMemo<W> {
    f32: Memo<Case32, F32Prepared<W>>,
    int: Memo<Case32, IntPrepared<W>>,
}

impl<W> Default for FormatMemo<W> {
    fn default() -> Self {
        FormatMemo {
            f32: Memo::default(),
            int: Memo::default(),
        }
    }
}

/// SmolLM2-135M's real matrix shapes, one case each (k = 576 or 1536, not multiples of 256):
/// the Q8_0 tied embedding / output matrix (49152 x 576), the Q4_1 attention and FFN matrices
/// (576 x 576, 1536 x 576, 576 x 1536). Other formats get the 576-row shapes.
fn real_shapes<W: Weight32>() -> Vec<Case32> {
    let shape = |rows: usize, k: usize, n: usize, seed: u64| Case32 {
        k_blocks: k / 32,
        rows,
        n,
        y_pad: 0,
        weights: WeightStyle::Quantized,
        acts: ActStyle::Gaussian,
        seed,
    };
    match W::KERNEL {
        Kernel::MatmulQ8_0 => vec![shape(49152, 576, 1, 1), shape(576, 576, 3, 2)],
        Kernel::MatmulQ4_1 => vec![
            shape(576, 576, 1, 3),
            shape(1536, 576, 2, 4),
            shape(576, 1536, 1, 5),
        ],
        _ => vec![shape(576, 576, 1, 6), shape(576, 1536, 2, 7)],
    }
}

/// Runs `check` on the property cases and then on the real shapes, merging the outcomes.
fn run_cases(
    real: Vec<Case32>,
    cases: u32,
    seed: u64,
    check: impl Fn(&Case32) -> Result<Metrics, String>,
) -> PropertyOutcome {
    let mut outcome = run_property(case_strategy(), cases, seed, &check);
    for case in real {
        if outcome.failure.is_some() {
            break;
        }
        match check(&case) {
            Ok(m) => outcome.metrics.merge(&m),
            Err(e) => {
                outcome.failure = Some(format!("seed {seed}: real shape {case:?}: {e}"));
            }
        }
    }
    outcome
}

/// One matmul variant of format `W`.
pub fn verify_variant<W: Weight32>(
    design: Design,
    isa: Isa,
    cases: u32,
    seed: u64,
    memo: &FormatMemo<W>,
) -> Row {
    if let Some(reason) = qemu::unavailable_reason(isa) {
        return Row::skipped(W::KERNEL, design, isa, reason);
    }
    let real = real_shapes::<W>();
    let outcome = if design == Design::F32 {
        let kernel = |x: &[f32], w: &[W], y: &mut [f32], d| W::f32_kernel(isa, x, w, y, d);
        let scalar = |x: &[f32], w: &[W], y: &mut [f32], d| W::f32_kernel(Isa::Scalar, x, w, y, d);
        let oracle: Option<F32Kernel<W>> = (isa != Isa::Scalar).then_some(&scalar);
        run_cases(real, cases, seed, |case| {
            let p = memo.f32.get_or_try(case, || prepare_f32(case))?;
            p.check(case.dims(), &kernel, oracle)
        })
    } else {
        let kernel = |x: &ActBlocks, w: &[W], y: &mut [f32], d| W::int_kernel(isa, x, w, y, d);
        let scalar =
            |x: &ActBlocks, w: &[W], y: &mut [f32], d| W::int_kernel(Isa::Scalar, x, w, y, d);
        let oracle: Option<IntKernel<W>> = (isa != Isa::Scalar).then_some(&scalar);
        run_cases(real, cases, seed, |case| {
            let p = memo.int.get_or_try(case, || prepare_int(case))?;
            p.check(case.dims(), &kernel, oracle)
        })
    };
    row_with_note(W::KERNEL, design, isa, cases, outcome, |isa| {
        match (isa, design) {
            (Isa::Scalar, _) => "vs reference",
            (_, Design::F32) => "vs reference and scalar",
            (_, _) => "vs reference; bit-exact vs scalar",
        }
    })
}

/// One quantizer property case: blocks of activations in a style.
#[derive(Clone, Debug)]
pub struct QuantCase {
    pub blocks: usize,
    pub acts: ActStyle,
    pub seed: u64,
}

/// Quantizer cases: 1 to 48 blocks in every activation style.
pub fn quant_strategy() -> impl Strategy<Value = QuantCase> {
    let acts = prop_oneof![
        Just(ActStyle::Gaussian),
        Just(ActStyle::WideRange),
        Just(ActStyle::Q8Extreme),
        Just(ActStyle::Sparse),
        Just(ActStyle::Tiny),
        Just(ActStyle::NegativeMaxAndTies),
    ];
    (1usize..=48, acts, any::<u64>()).prop_map(|(blocks, acts, seed)| QuantCase {
        blocks,
        acts,
        seed,
    })
}

/// A quantizer under test.
pub type Quantizer<'a> = &'a dyn Fn(&[f32]) -> ActBlocks;

/// A quantizer against the specification, byte for byte, and each value within the
/// specification's error bound (module docs).
pub fn check_quant_case(
    case: &QuantCase,
    design: Design,
    quantizer: Quantizer,
) -> Result<Metrics, String> {
    let mut rng = StdRng::seed_from_u64(case.seed);
    let x = generate_activations(case.acts, &mut rng, 32 * case.blocks);
    let got = quantizer(&x);
    let want = match design {
        Design::Q8_1 => reference::quant::quantize_q8_1(&x),
        _ => reference::quant::quantize_q8_0(&x),
    }
    .map_err(ref_err)?;
    let bytes = got.bytes();
    let block_bytes = got.format().block_bytes();
    if let Some(i) = (0..bytes.len()).find(|&i| bytes[i] != want[i]) {
        let (b, off) = (i / block_bytes, i % block_bytes);
        return Err(format!(
            "block {b}, byte {off}: {:#04x}, the specification gives {:#04x} (values {:?})",
            bytes[i],
            want[i],
            &x[32 * b..32 * b + 32]
        ));
    }
    let xhat = reference::quant::dequantize(got.format(), bytes).map_err(ref_err)?;
    let mut m = Metrics::default();
    for (b, values) in x.chunks_exact(32).enumerate() {
        let amax = values.iter().fold(0f32, |a, v| a.max(v.abs()));
        let d = amax / 127.0;
        let dx = f16::from_f32(d).to_f64();
        let id_zero = !(d > 0.0 && (1.0 / d).is_finite());
        for (l, &v) in values.iter().enumerate() {
            let i = 32 * b + l;
            let q = (xhat[i] / dx).round();
            let allowed = if id_zero {
                (v as f64).abs()
            } else {
                q.abs() * (dx - d as f64).abs() + (d as f64) * (0.5 + 256.0 * U)
            };
            m.record(xhat[i], v as f64, amax as f64, allowed)
                .map_err(|e| format!("value {i} ({v:e}): {e}"))?;
        }
    }
    Ok(m)
}

fn quantizer_row(kernel: Kernel, design: Design, isa: Isa, cases: u32, seed: u64) -> Row {
    if let Some(reason) = qemu::unavailable_reason(isa) {
        return Row::skipped(kernel, design, isa, reason);
    }
    let quantizer = |x: &[f32]| quantize(design, isa, x);
    let outcome = run_property(quant_strategy(), cases, seed, |case| {
        check_quant_case(case, design, &quantizer)
    });
    row_with_note(kernel, design, isa, cases, outcome, |_| {
        "bit-exact vs the specification"
    })
}

/// The rows of this module, as deferred jobs.
pub fn families(config: &VerifyConfig) -> Vec<super::Job> {
    let mut jobs: Vec<super::Job> = Vec::new();
    let isas: Vec<Isa> = Isa::ALL
        .into_iter()
        .filter(|&i| config.wants_isa(i))
        .collect();
    for kernel in [
        Kernel::MatmulQ8_0,
        Kernel::MatmulQ4_0,
        Kernel::MatmulQ5_0,
        Kernel::MatmulQ4_1,
        Kernel::MatmulF16,
        Kernel::QuantizeQ8_0,
        Kernel::QuantizeQ8_1,
    ] {
        if !config.wants(kernel) {
            continue;
        }
        match kernel {
            Kernel::MatmulQ8_0 => format_jobs::<BlockQ8_0>(config, &isas, &mut jobs),
            Kernel::MatmulQ4_0 => format_jobs::<BlockQ4_0>(config, &isas, &mut jobs),
            Kernel::MatmulQ5_0 => format_jobs::<BlockQ5_0>(config, &isas, &mut jobs),
            Kernel::MatmulQ4_1 => format_jobs::<BlockQ4_1>(config, &isas, &mut jobs),
            Kernel::MatmulF16 => format_jobs::<f16>(config, &isas, &mut jobs),
            _ => {
                let (cases, seed) = (config.cases, config.seed);
                for &design in kernel.designs() {
                    for &isa in &isas {
                        jobs.push(super::Job::new(isa, move || {
                            Ok(quantizer_row(kernel, design, isa, cases, seed))
                        }));
                    }
                }
            }
        }
    }
    jobs
}

/// The matmul rows of format `W`, sharing one [`FormatMemo`] (freed with the last of them).
fn format_jobs<W: Weight32 + 'static>(
    config: &VerifyConfig,
    isas: &[Isa],
    jobs: &mut Vec<super::Job>,
) {
    let (cases, seed) = (config.cases, config.seed);
    let memo = Arc::new(FormatMemo::<W>::default());
    for &design in W::KERNEL.designs() {
        for &isa in isas {
            let memo = memo.clone();
            jobs.push(super::Job::new(isa, move || {
                Ok(verify_variant::<W>(design, isa, cases, seed, &memo))
            }));
        }
    }
}
