//! The 32-value block formats (Q8_0, Q4_0, Q5_0, Q4_1) and F16 weights: `Y[n x rows] =
//! X[n x k] * W[rows x k]^T` with `k` a multiple of 32, on the shared tile driver, plus the
//! activation quantizers (Q8_0, Q8_1) of their integer designs.
//!
//! Designs (each in [`scalar`], `avx2`, `avx512`, `neon`, every ISA file exporting the same
//! functions; the formats differ only in how a block is unpacked, [`Block32`]):
//! - `q8_0` (Q8_0, Q4_0, Q5_0 weights) and `q8_1` (Q4_1): activations quantized once per matmul
//!   input; per 32-block an exact integer dot `sumi = sum q_w q_x` of the signed weight integers
//!   ([`Block32::ints`]) with the activation bytes, then the one f32 combine of [`scalar`]:
//!   `acc + (d_w*d_x) * f32(sumi)` (Q4_1: `acc + ((d_w*d_x) * f32(sumi) + m_w * s_x)`), per
//!   block in block order. Every ISA computes the same integers and the same f32 expression in
//!   the same order: bit-exact with scalar. Precondition: activation bytes in `-127..=127`, as
//!   the quantizers make them (the x86 variants take `|q_w|` times `q_x` with the sign of `q_w`,
//!   which cannot represent `-(-128)`).
//! - `f32`: each weight block dequantized in registers to exactly [`Block32::values`] (one
//!   rounding at most: `d*q` is exact, Q4_1's `d*q + m` rounds once, an FMA gives the same
//!   bits), FMA with the f32 activations; only the summation order differs between ISAs.
//! - F16 weights: widened exactly (F16C, `fcvtl`), FMA with f32 activations.
//!
//! The activation quantizers follow ggml's reference `quantize_row_q8_0` / `q8_1` (checked in
//! ggml-quants.c): per block `amax = max|x|`, `d = amax / 127` in f32, `id = 1/d` (from the
//! unrounded `d`), `q = round(x * id)` with **ties away from zero** (C `roundf`), stored
//! `d` = f16(d) (round to nearest even); Q8_1 also `s` = f16(f32(sum q) * d) with the f32 `d`.
//! Two choices ggml leaves undefined are fixed here: when `1/d` is not finite (an all-zero block,
//! or `amax < 127 * 2^-128` whose reciprocal overflows) `id = 0` and every `q` is 0 (the stored
//! `d` is then 0 too: such a `d` is far below the smallest f16); and `q` is clamped to
//! `-127..=127` (it never needs it: `|x*id| <= 127 (1 + 3u)`); and the stored `d` and `s`
//! saturate at +-65504 instead of becoming infinite (ggml's, for activations beyond
//! `65504 * 127`). Every ISA computes `amax`, `d`, `id` and
//! the f16 conversions with the same scalar code and the per-value `x*id` with one f32
//! multiply and the same rounding rule: the blocks are bit-identical in every ISA.

pub mod scalar;

#[cfg(target_arch = "x86_64")]
pub mod avx2;
#[cfg(target_arch = "x86_64")]
pub mod avx512;
#[cfg(target_arch = "aarch64")]
pub mod neon;
#[cfg(target_arch = "x86_64")]
mod x86;

use super::driver::RowDots;
use super::MatmulDims;
use crate::isa::dispatch;
use crate::quant::{BlockQ4_0, BlockQ4_1, BlockQ5_0, BlockQ8_0, BlockQ8_1, QuantBlock};
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
use crate::simd::lanes::F32Lanes;
use crate::Isa;
use half::f16;
use std::marker::PhantomData;

/// A 32-value weight block: what every ISA's unpacking must reproduce.
pub trait Block32: QuantBlock {
    /// Whether values carry an added min (`d*q + m`, Q4_1).
    const HAS_MIN: bool = false;
    /// The signed integers of the integer design: Q8_0 `q`, Q4_0 `q - 8`, Q5_0 `q - 16`,
    /// Q4_1 `q` (its offset is the min, applied through the activations' sum).
    fn ints(&self) -> [i8; 32];
    /// The block scale `d`.
    fn d(&self) -> f16;
    /// The block min `m` (Q4_1), 0 for the formats without one.
    fn min_value(&self) -> f32 {
        0.0
    }
    /// The dequantized values, exactly as `QuantBlock::dequantize_row` gives them.
    fn values(&self) -> [f32; 32] {
        let mut out = [0f32; 32];
        Self::dequantize_row(std::slice::from_ref(self), &mut out);
        out
    }
}

/// Value `l` of a 16-byte nibble array: low nibbles are values 0..16, high nibbles 16..32.
#[inline(always)]
fn nibble(qs: &[u8; 16], l: usize) -> u8 {
    if l < 16 {
        qs[l] & 0xF
    } else {
        qs[l - 16] >> 4
    }
}

impl Block32 for BlockQ8_0 {
    fn ints(&self) -> [i8; 32] {
        self.qs
    }
    fn d(&self) -> f16 {
        self.d
    }
}

impl Block32 for BlockQ4_0 {
    fn ints(&self) -> [i8; 32] {
        std::array::from_fn(|l| nibble(&self.qs, l) as i8 - 8)
    }
    fn d(&self) -> f16 {
        self.d
    }
}

impl Block32 for BlockQ5_0 {
    fn ints(&self) -> [i8; 32] {
        let qh = u32::from_le_bytes(self.qh);
        std::array::from_fn(|l| (nibble(&self.qs, l) | (((qh >> l) & 1) << 4) as u8) as i8 - 16)
    }
    fn d(&self) -> f16 {
        self.d
    }
}

impl Block32 for BlockQ4_1 {
    const HAS_MIN: bool = true;
    fn ints(&self) -> [i8; 32] {
        std::array::from_fn(|l| nibble(&self.qs, l) as i8)
    }
    fn d(&self) -> f16 {
        self.d
    }
    fn min_value(&self) -> f32 {
        self.m.to_f32()
    }
}

/// The per-block scales of the activation quantizers: `(d, id)` for a block whose largest
/// magnitude is `amax` (module docs). The one copy every ISA uses.
#[inline(always)]
pub(crate) fn q8_scales(amax: f32) -> (f32, f32) {
    let d = amax / 127.0;
    let id = 1.0 / d;
    if d > 0.0 && id.is_finite() {
        (d, id)
    } else {
        (d, 0.0)
    }
}

/// The stored f16 `d` of an activation block: the nearest f16, saturated at +-65504 (where
/// ggml's would be infinite and every value of the block NaN or infinite).
#[inline(always)]
pub(crate) fn q8_d_f16(d: f32) -> f16 {
    crate::quant::f16_saturating(d)
}

/// The scaled sum `s` of a Q8_1 block with f32 scale `d` and quants summing to `sum`
/// (saturated like `d`).
#[inline(always)]
pub(crate) fn q8_1_sum(d: f32, sum: i32) -> f16 {
    crate::quant::f16_saturating(sum as f32 * d)
}

/// The per-ISA primitives of the integer designs and the quantizers. The loops over blocks and
/// rows ([`IntDots`], [`quantize_with`]) are written once, here, for every ISA: the combine is
/// then the same expression in every variant, which is what makes them bit-exact.
pub(crate) trait IntIsa {
    /// A weight block's integers, unpacked.
    type Ints: Copy;

    /// `sum_l w_l x_l`, exactly (`x` in `-127..=127`).
    ///
    /// # Safety
    /// The ISA's target features are enabled.
    unsafe fn dot(w: Self::Ints, x: &[i8; 32]) -> i32;

    /// `h` as f32 (exact).
    ///
    /// # Safety
    /// The ISA's target features are enabled.
    unsafe fn to_f32(h: f16) -> f32;

    /// Quantizes 32 values into `qs` by the module's rule, returning `(d, sum of qs)`: `d` the
    /// f32 scale (before its f16 rounding).
    ///
    /// # Safety
    /// The ISA's target features are enabled; `x.len() == 32`.
    unsafe fn quantize_block(x: &[f32], qs: &mut [i8; 32]) -> (f32, i32);
}

/// Declares a SIMD ISA file's primitives type `$isa`: its [`IntIsa`] (integers `$ints`; the
/// file's `dot`, `quantize_block` and `f16_to_f32`) and its [`F32Isa`] (`$lanes`, 32 values in
/// `$regs`; the file's `int_values`).
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
macro_rules! simd_isa {
    (
        $isa:ident: ints $ints:ty, lanes $lanes:ty, regs [$v:ty; $n:literal],
        multi_row_chains $chains:literal, pairwise_sum $pairwise:literal
    ) => {
        /// The primitives of the shared integer loops, f32 loops and quantizers on this ISA.
        pub(crate) struct $isa;

        // The f32 loops load a block's 32 values into these registers through raw pointers.
        const _: () = assert!(
            $n * <$lanes as crate::simd::lanes::F32Lanes>::LANES == 32,
            "regs must hold exactly one 32-value block"
        );

        impl IntIsa for $isa {
            type Ints = $ints;

            #[inline(always)]
            unsafe fn dot(w: $ints, x: &[i8; 32]) -> i32 {
                // SAFETY: the trait's contract.
                unsafe { dot(w, x) }
            }

            #[inline(always)]
            unsafe fn to_f32(h: f16) -> f32 {
                // SAFETY: the trait's contract.
                #[allow(unused_unsafe)]
                unsafe {
                    f16_to_f32(h)
                }
            }

            #[inline(always)]
            unsafe fn quantize_block(x: &[f32], qs: &mut [i8; 32]) -> (f32, i32) {
                // SAFETY: the trait's contract.
                unsafe { quantize_block(x, qs) }
            }
        }

        impl F32Isa for $isa {
            type L = $lanes;
            type Regs = [$v; $n];
            const MULTI_ROW_CHAINS: usize = $chains;
            const PAIRWISE_SUM: bool = $pairwise;

            #[inline(always)]
            unsafe fn zero_regs() -> [$v; $n] {
                // SAFETY: the trait's contract.
                unsafe { [<$lanes as $crate::simd::lanes::F32Lanes>::zero(); $n] }
            }

            #[inline(always)]
            unsafe fn int_values(ints: $ints) -> [$v; $n] {
                // SAFETY: the trait's contract.
                unsafe { int_values(ints) }
            }
        }

        /// The f32 design's row dots on this ISA.
        type IsaF32Dots<W> = $crate::matmul::block32::F32Dots<$isa, W>;
    };
}
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
pub(crate) use simd_isa;

/// A weight block's unpacking for ISA `I`.
pub(crate) trait Unpack<I: IntIsa>: Block32 {
    /// [`Block32::ints`], unpacked for `I`.
    ///
    /// # Safety
    /// The ISA's target features are enabled.
    unsafe fn unpack(&self) -> I::Ints;

    /// The block's min `m` (Q4_1), 0 for the others.
    ///
    /// # Safety
    /// The ISA's target features are enabled.
    unsafe fn min(&self) -> f32 {
        0.0
    }
}

/// An activation block of the integer designs: Q8_0 (for Q8_0, Q4_0 and Q5_0 weights) or Q8_1
/// (for Q4_1).
pub(crate) trait IntActs: QuantBlock {
    /// The quantized values.
    fn qs(&self) -> &[i8; 32];
    /// The quantized values, to fill.
    fn qs_mut(&mut self) -> &mut [i8; 32];
    /// Stores the block's f16 fields from the f32 scale `d` and the sum of its values.
    fn set_scales(&mut self, d: f32, sum: i32);
    /// `acc` plus one block product from its exact integer dot `sumi`, the weight block's `dw`
    /// and min `mw`: scalar's combine (`acc + (d_w d_x) sumi`; with Q8_1
    /// `acc + ((d_w d_x) sumi + m_w s_x)`), the one expression of every ISA.
    ///
    /// # Safety
    /// `I`'s target features are enabled.
    unsafe fn combine<I: IntIsa>(acc: f32, dw: f32, mw: f32, x: &Self, sumi: i32) -> f32;
}

/// [`IntActs::qs`] and [`IntActs::qs_mut`]: both activation formats keep their values in `qs`.
macro_rules! acts_qs {
    () => {
        #[inline(always)]
        fn qs(&self) -> &[i8; 32] {
            &self.qs
        }
        #[inline(always)]
        fn qs_mut(&mut self) -> &mut [i8; 32] {
            &mut self.qs
        }
    };
}

impl IntActs for BlockQ8_0 {
    acts_qs!();
    #[inline(always)]
    fn set_scales(&mut self, d: f32, _sum: i32) {
        self.d = q8_d_f16(d);
    }
    #[inline(always)]
    unsafe fn combine<I: IntIsa>(acc: f32, dw: f32, _mw: f32, x: &Self, sumi: i32) -> f32 {
        // SAFETY: the trait's contract.
        acc + (dw * unsafe { I::to_f32(x.d) }) * sumi as f32
    }
}

impl IntActs for BlockQ8_1 {
    acts_qs!();
    #[inline(always)]
    fn set_scales(&mut self, d: f32, sum: i32) {
        self.d = q8_d_f16(d);
        self.s = q8_1_sum(d, sum);
    }
    #[inline(always)]
    unsafe fn combine<I: IntIsa>(acc: f32, dw: f32, mw: f32, x: &Self, sumi: i32) -> f32 {
        // SAFETY: the trait's contract.
        let (dx, sx) = unsafe { (I::to_f32(x.d), I::to_f32(x.s)) };
        acc + ((dw * dx) * sumi as f32 + mw * sx)
    }
}

/// Integer-design row dots (weights `W`, activations `X`), for every ISA.
pub(crate) struct IntDots<I, W, X>(PhantomData<(I, W, X)>);

impl<I: IntIsa, W: Unpack<I>, X: IntActs> RowDots for IntDots<I, W, X> {
    type W = W;
    type X = X;
    const W_VALUES: usize = 32;
    const X_VALUES: usize = 32;

    #[inline(always)]
    unsafe fn row_dots<const R: usize>(w_row: &[W], x_rows: &[X]) -> [f32; R] {
        let nb = w_row.len();
        let mut acc = [0f32; R];
        // SAFETY: the trait's contract (the ISA's features are enabled).
        unsafe {
            for (b, wb) in w_row.iter().enumerate() {
                let wi = wb.unpack();
                let (dw, mw) = (I::to_f32(wb.d()), wb.min());
                for (i, acc) in acc.iter_mut().enumerate() {
                    let xb = &x_rows[i * nb + b];
                    let sumi = I::dot(wi, xb.qs());
                    *acc = X::combine::<I>(*acc, dw, mw, xb, sumi);
                }
            }
        }
        acc
    }
}

/// The activation quantizer loop (Q8_0 or Q8_1) of every ISA.
///
/// # Safety
/// The ISA's target features are enabled.
#[inline(always)]
pub(crate) unsafe fn quantize_with<I: IntIsa, X: IntActs>(x: &[f32], out: &mut [X]) {
    assert_eq!(x.len(), 32 * out.len(), "quantize_{}: lengths", X::NAME);
    for (x, block) in x.chunks_exact(32).zip(out.iter_mut()) {
        // SAFETY: per this fn's contract; `x` is one block of values.
        let (d, sum) = unsafe { I::quantize_block(x, block.qs_mut()) };
        block.set_scales(d, sum);
    }
}

/// The per-ISA part of the SIMD f32 design: its f32 lanes and how a block's unpacked integers
/// become f32 vectors. The loops ([`F32Dots`]) are written once, for every SIMD ISA.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
pub(crate) trait F32Isa: IntIsa {
    /// The f32 vector operations.
    type L: F32Lanes;
    /// Thirty-two f32 values as `32 / LANES` vectors.
    type Regs: Copy + AsRef<[Lane<Self>]> + AsMut<[Lane<Self>]>;
    /// FMA chains per activation row when a weight block serves several rows (a single row
    /// always has four): as many as fit in the registers without spills.
    const MULTI_ROW_CHAINS: usize;
    /// Whether four chains are added pairwise, `(a0 + a1) + (a2 + a3)`, rather than in order.
    const PAIRWISE_SUM: bool;

    /// All-zero vectors.
    ///
    /// # Safety
    /// The ISA's target features are enabled.
    unsafe fn zero_regs() -> Self::Regs;

    /// The 32 integers, exactly, as f32 (value `l` in lane `l % LANES` of vector `l / LANES`).
    ///
    /// # Safety
    /// The ISA's target features are enabled.
    unsafe fn int_values(ints: Self::Ints) -> Self::Regs;
}

/// One f32 vector of ISA `I`.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
pub(crate) type Lane<I> = <<I as F32Isa>::L as F32Lanes>::V;

/// Thirty-two weights dequantized into f32 vectors: a block, or 32 f16 values.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
pub(crate) trait Values<I: F32Isa>: Sized {
    /// Values per element (32 for a block, 1 for an f16).
    const W_VALUES: usize;
    /// Weights `32c..32c+32` of the row `w`.
    ///
    /// # Safety
    /// The ISA's target features are enabled; `w` holds at least `32(c+1)` values.
    unsafe fn values(w: &[Self], c: usize) -> I::Regs;
}

#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
impl<I: F32Isa, W: Unpack<I>> Values<I> for W {
    const W_VALUES: usize = 32;

    #[inline(always)]
    unsafe fn values(w: &[W], c: usize) -> I::Regs {
        let block = &w[c];
        // SAFETY: the ISA's features per the contract; register-only after the unpacking.
        unsafe {
            let mut out = I::int_values(block.unpack());
            let d = I::L::splat(I::to_f32(block.d()));
            let m = I::L::splat(block.min());
            for o in out.as_mut() {
                // `d*q` is exact, so the FMA rounds once, like scalar's `d*q + m`.
                *o = if W::HAS_MIN {
                    I::L::fma(*o, d, m)
                } else {
                    I::L::mul(*o, d)
                };
            }
            out
        }
    }
}

#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
impl<I: F32Isa> Values<I> for f16 {
    const W_VALUES: usize = 1;

    #[inline(always)]
    unsafe fn values(w: &[f16], c: usize) -> I::Regs {
        let chunk = &w[32 * c..32 * c + 32];
        // SAFETY: `LANES` f16 at `LANES*v` inside the 32-value chunk; the features per the
        // contract.
        unsafe {
            let mut out = I::zero_regs();
            for (v, o) in out.as_mut().iter_mut().enumerate() {
                *o = I::L::load_f16(chunk.as_ptr().add(I::L::LANES * v));
            }
            out
        }
    }
}

/// The f32 design's row dots, for every SIMD ISA.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
pub(crate) struct F32Dots<I, W>(PhantomData<(I, W)>);

#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
impl<I: F32Isa, W: Values<I>> RowDots for F32Dots<I, W> {
    type W = W;
    type X = f32;
    const W_VALUES: usize = <W as Values<I>>::W_VALUES;
    const X_VALUES: usize = 1;
    // Every design step reads 32 values, also of F16 weights (one element each).
    const K_MULTIPLE: usize = 32;

    #[inline(always)]
    unsafe fn row_dots<const R: usize>(w_row: &[W], x_rows: &[f32]) -> [f32; R] {
        // SAFETY: the trait's contract.
        unsafe {
            if R == 1 || I::MULTI_ROW_CHAINS == 4 {
                f32_row::<I, W, R, 4>(w_row, x_rows)
            } else {
                f32_row::<I, W, R, 2>(w_row, x_rows)
            }
        }
    }
}

/// [`F32Dots`] with `P` FMA chains per activation row: vector `v` of block `c` goes to chain
/// `(c * vectors per block + v) % P`.
///
/// # Safety
/// As [`RowDots::row_dots`].
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
#[inline(always)]
unsafe fn f32_row<I: F32Isa, W: Values<I>, const R: usize, const P: usize>(
    w_row: &[W],
    x_rows: &[f32],
) -> [f32; R] {
    let k = w_row.len() * W::W_VALUES;
    debug_assert!(x_rows.len() == R * k);
    let lanes = I::L::LANES;
    let vectors = 32 / lanes;
    // SAFETY: every activation load reads `LANES` values at `i*k + 32c + LANES*v + LANES <= R*k`.
    unsafe {
        let mut acc = [[I::L::zero(); P]; R];
        for c in 0..k / 32 {
            let wv = W::values(w_row, c);
            for (i, acc) in acc.iter_mut().enumerate() {
                let xp = x_rows.as_ptr().add(i * k + 32 * c);
                for (v, &w) in wv.as_ref().iter().enumerate() {
                    // A constant chain per `v` when the vectors of a block fill whole rounds.
                    let a = if vectors % P == 0 {
                        v % P
                    } else {
                        (vectors * c + v) % P
                    };
                    acc[a] = I::L::fma(w, I::L::load(xp.add(lanes * v)), acc[a]);
                }
            }
        }
        let mut dots = [0f32; R];
        for (dot, acc) in dots.iter_mut().zip(&acc) {
            let sum = if I::PAIRWISE_SUM && P == 4 {
                I::L::add(I::L::add(acc[0], acc[1]), I::L::add(acc[2], acc[3]))
            } else {
                let mut sum = acc[0];
                for &a in &acc[1..] {
                    sum = I::L::add(sum, a);
                }
                sum
            };
            *dot = I::L::hsum(sum);
        }
        dots
    }
}

/// The entry functions of one ISA file: the nine matmuls on the shared driver and the two
/// quantizers, `$features` enabled (`scalar` for the portable ones). `$isa` is the file's
/// [`IntIsa`], `$f32dots` its f32-design row dots (generic over the weight element).
macro_rules! block32_entries {
    ($features:tt, $isa:ty, $f32dots:ident) => {
        $crate::matmul::driver::matmul_entries! {
            $features;
            matmul_q8_0_f32(f32, BlockQ8_0) => $f32dots<BlockQ8_0>;
            matmul_q8_0_q8_0(BlockQ8_0, BlockQ8_0) => $crate::matmul::block32::IntDots<$isa, BlockQ8_0, BlockQ8_0>;
            matmul_q4_0_f32(f32, BlockQ4_0) => $f32dots<BlockQ4_0>;
            matmul_q4_0_q8_0(BlockQ8_0, BlockQ4_0) => $crate::matmul::block32::IntDots<$isa, BlockQ4_0, BlockQ8_0>;
            matmul_q5_0_f32(f32, BlockQ5_0) => $f32dots<BlockQ5_0>;
            matmul_q5_0_q8_0(BlockQ8_0, BlockQ5_0) => $crate::matmul::block32::IntDots<$isa, BlockQ5_0, BlockQ8_0>;
            matmul_q4_1_f32(f32, BlockQ4_1) => $f32dots<BlockQ4_1>;
            matmul_q4_1_q8_1(BlockQ8_1, BlockQ4_1) => $crate::matmul::block32::IntDots<$isa, BlockQ4_1, BlockQ8_1>;
            matmul_f16_f32(f32, f16) => $f32dots<f16>;
        }
        $crate::matmul::block32::quantizer_entries!($features, $isa);
    };
}
pub(crate) use block32_entries;

macro_rules! quantizer_entries {
    (scalar, $isa:ty) => {
        /// Activations to Q8_0 (see [`block32`](super) for the rule).
        pub fn quantize_q8_0(x: &[f32], out: &mut [BlockQ8_0]) {
            // SAFETY: the scalar primitives need no target feature.
            unsafe { $crate::matmul::block32::quantize_with::<$isa, BlockQ8_0>(x, out) }
        }

        /// Activations to Q8_1 (see [`block32`](super) for the rule).
        pub fn quantize_q8_1(x: &[f32], out: &mut [BlockQ8_1]) {
            // SAFETY: as above.
            unsafe { $crate::matmul::block32::quantize_with::<$isa, BlockQ8_1>(x, out) }
        }
    };
    ($features:literal, $isa:ty) => {
        /// # Safety
        /// The CPU must support the target features this function enables.
        #[target_feature(enable = $features)]
        pub unsafe fn quantize_q8_0(x: &[f32], out: &mut [BlockQ8_0]) {
            // SAFETY: this function enables the features `$isa` needs.
            unsafe { $crate::matmul::block32::quantize_with::<$isa, BlockQ8_0>(x, out) }
        }

        /// # Safety
        /// The CPU must support the target features this function enables.
        #[target_feature(enable = $features)]
        pub unsafe fn quantize_q8_1(x: &[f32], out: &mut [BlockQ8_1]) {
            // SAFETY: as above.
            unsafe { $crate::matmul::block32::quantize_with::<$isa, BlockQ8_1>(x, out) }
        }
    };
}
pub(crate) use quantizer_entries;

macro_rules! matmul_fns {
    ($($(#[$doc:meta])* $name:ident($x:ty, $w:ty);)*) => {$(
        $(#[$doc])*
        ///
        /// # Panics
        /// If `isa` cannot run on this CPU, or the slices do not match `dims` (`k` a multiple
        /// of 32).
        pub fn $name(isa: Isa, x: &[$x], w: &[$w], y: &mut [f32], dims: MatmulDims) {
            dispatch!(isa, $name(x, w, y, dims))
        }
    )*};
}

matmul_fns! {
    /// Q8_0 weights, f32 activations (`n * k` values).
    matmul_q8_0_f32(f32, BlockQ8_0);
    /// Q8_0 weights, activations in Q8_0 (`n * k/32` blocks, from [`quantize_q8_0`]).
    matmul_q8_0_q8_0(BlockQ8_0, BlockQ8_0);
    /// Q4_0 weights, f32 activations.
    matmul_q4_0_f32(f32, BlockQ4_0);
    /// Q4_0 weights, activations in Q8_0.
    matmul_q4_0_q8_0(BlockQ8_0, BlockQ4_0);
    /// Q5_0 weights, f32 activations.
    matmul_q5_0_f32(f32, BlockQ5_0);
    /// Q5_0 weights, activations in Q8_0.
    matmul_q5_0_q8_0(BlockQ8_0, BlockQ5_0);
    /// Q4_1 weights, f32 activations.
    matmul_q4_1_f32(f32, BlockQ4_1);
    /// Q4_1 weights, activations in Q8_1 (from [`quantize_q8_1`]).
    matmul_q4_1_q8_1(BlockQ8_1, BlockQ4_1);
    /// F16 weights (row-major, `rows * k` values), f32 activations.
    matmul_f16_f32(f32, f16);
}

/// Activations to Q8_0 (module docs give the rule), `x.len() == 32 * out.len()`.
///
/// # Panics
/// If `isa` cannot run here or the lengths do not match.
pub fn quantize_q8_0(isa: Isa, x: &[f32], out: &mut [BlockQ8_0]) {
    assert_eq!(x.len(), 32 * out.len(), "quantize_q8_0: lengths");
    dispatch!(isa, quantize_q8_0(x, out))
}

/// Activations to Q8_1 (module docs give the rule), `x.len() == 32 * out.len()`.
///
/// # Panics
/// If `isa` cannot run here or the lengths do not match.
pub fn quantize_q8_1(isa: Isa, x: &[f32], out: &mut [BlockQ8_1]) {
    assert_eq!(x.len(), 32 * out.len(), "quantize_q8_1: lengths");
    dispatch!(isa, quantize_q8_1(x, out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ints_times_d_are_the_values() {
        let mut bytes = [0u8; 22];
        let mut state = 0x2545_F491_4F6C_DD1Du64;
        for _ in 0..256 {
            for b in bytes.iter_mut() {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                *b = state as u8;
            }
            bytes[0..2].copy_from_slice(&f16::from_f32(0.25).to_bits().to_le_bytes());
            let q5: BlockQ5_0 = bytemuck::pod_read_unaligned(&bytes);
            let q4: BlockQ4_0 = bytemuck::pod_read_unaligned(&bytes[..18]);
            for (ints, values) in [(q5.ints(), q5.values()), (q4.ints(), q4.values())] {
                for l in 0..32 {
                    assert_eq!(ints[l] as f32 * 0.25, values[l], "value {l}");
                }
            }
        }
    }

    /// F16 weights are single elements, but every design step reads 32 of them: a `k` that is
    /// not a multiple of 32 must be refused, not have its tail silently dropped.
    #[test]
    fn f16_refuses_k_not_a_multiple_of_32_in_every_isa() {
        use crate::matmul::MatmulDims;
        for isa in Isa::available() {
            let (n, k, rows) = (1, 40, 2);
            let x = vec![1.0f32; n * k];
            let w = vec![f16::ONE; rows * k];
            let mut y = vec![0.0f32; n * rows];
            let refused = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                crate::matmul::matmul_f16_f32(isa, &x, &w, &mut y, MatmulDims::new(n, k, rows))
            }))
            .is_err();
            assert!(refused, "{isa}: k = 40 accepted");
        }
    }
}
