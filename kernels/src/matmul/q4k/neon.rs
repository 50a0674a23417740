//! NEON (aarch64 Advanced SIMD) variants of the Q4_K kernels.
//!
//! Baseline NEON only: integer products use widening `smull`/`smlal` and pairwise adds, not the
//! `dotprod` extension (`sdot`), which not every aarch64 CPU has.
//!
//! Both designs walk one weight row against a tile of up to `ACT_TILE` (4) activation rows (the shared driver), so each
//! 32-byte chunk of nibbles is unpacked (and, for `f32`, dequantized) once and reused by every
//! activation row of the tile.
//!
//! - `f32`: the weights are dequantized with the same f32 arithmetic as scalar (so the weight
//!   values are identical) and FMA'd into four independent vector accumulators per activation
//!   row that run the whole row; only the summation order differs from scalar.
//! - `q8k`: each block's two integer sums are computed exactly in vector lanes, reduced to the
//!   same `i32`s as [`scalar::block_sums`], and folded with [`scalar::combine`] in block order,
//!   which makes the result bit-identical to scalar.
#![deny(unsafe_op_in_unsafe_fn)]

use super::scalar;
use crate::matmul::driver::{matmul_tiled, RowDots};
use crate::matmul::MatmulDims;
use crate::quant::{q4k_unpack_scales_mins, BlockQ4K, BlockQ8K, QK_K};
use crate::simd::aarch64::f16_to_f32;
use std::arch::aarch64::*;

/// # Safety
/// The CPU must support the enabled target features.
#[target_feature(enable = "neon")]
pub unsafe fn matmul_f32(x: &[f32], w: &[BlockQ4K], y: &mut [f32], dims: MatmulDims) {
    // SAFETY: this function's contract is that the CPU has NEON; the driver checks the shapes.
    unsafe { matmul_tiled::<F32Dots>(x, w, y, dims) }
}

/// # Safety
/// The CPU must support the enabled target features.
#[target_feature(enable = "neon")]
pub unsafe fn matmul_q8k(xq: &[BlockQ8K], w: &[BlockQ4K], y: &mut [f32], dims: MatmulDims) {
    // SAFETY: as in `matmul_f32`.
    unsafe { matmul_tiled::<Q8kDots>(xq, w, y, dims) }
}

struct F32Dots;

impl RowDots for F32Dots {
    type W = BlockQ4K;
    type X = f32;
    const W_VALUES: usize = QK_K;
    const X_VALUES: usize = 1;

    #[inline(always)]
    unsafe fn row_dots<const R: usize>(w_row: &[BlockQ4K], x_rows: &[f32]) -> [f32; R] {
        // SAFETY: the trait's contract (NEON enabled).
        unsafe { f32_tile::<R>(x_rows, w_row) }
    }
}

struct Q8kDots;

impl RowDots for Q8kDots {
    type W = BlockQ4K;
    type X = BlockQ8K;
    const W_VALUES: usize = QK_K;
    const X_VALUES: usize = QK_K;

    #[inline(always)]
    unsafe fn row_dots<const R: usize>(w_row: &[BlockQ4K], x_rows: &[BlockQ8K]) -> [f32; R] {
        // SAFETY: the trait's contract (NEON enabled).
        unsafe { q8k_tile::<R>(x_rows, w_row) }
    }
}

/// One 32-byte chunk of nibbles split into its two sub-blocks: `[low nibbles of bytes 0..16,
/// 16..32]` (sub-block 2c) and the same for the high nibbles (sub-block 2c+1).
///
/// # Safety
/// The CPU must support NEON.
#[inline(always)]
unsafe fn split_nibbles(chunk: &[u8; 32]) -> ([uint8x16_t; 2], [uint8x16_t; 2]) {
    // SAFETY: NEON per this fn's contract; the 32-byte load reads exactly `chunk`.
    unsafe {
        let bytes = vld1q_u8_x2(chunk.as_ptr());
        let low_mask = vdupq_n_u8(0x0F);
        (
            [vandq_u8(bytes.0, low_mask), vandq_u8(bytes.1, low_mask)],
            [vshrq_n_u8::<4>(bytes.0), vshrq_n_u8::<4>(bytes.1)],
        )
    }
}

/// The dots of weight row `w_row` with the `T` activation rows of `x` (f32 design).
///
/// # Safety
/// The CPU must support NEON.
#[inline(always)]
unsafe fn f32_tile<const T: usize>(x: &[f32], w_row: &[BlockQ4K]) -> [f32; T] {
    let k = w_row.len() * QK_K;
    let x_rows: [&[f32]; T] = std::array::from_fn(|t| &x[t * k..][..k]);
    // SAFETY: NEON per this fn's contract. The only loads are `split_nibbles` on a 32-byte
    // array and `vld1q_f32_x4` at `offset + 16 <= QK_K` inside a `QK_K`-long slice.
    unsafe {
        let mut acc = [[vdupq_n_f32(0.0); 4]; T];
        for (b, block) in w_row.iter().enumerate() {
            let x_block: [&[f32]; T] = std::array::from_fn(|t| &x_rows[t][b * QK_K..][..QK_K]);
            let d = f16_to_f32(block.d);
            let dmin = f16_to_f32(block.dmin);
            let (sc, m) = q4k_unpack_scales_mins(&block.scales);
            for (c, chunk) in block.qs.as_chunks::<32>().0.iter().enumerate() {
                let (low, high) = split_nibbles(chunk);
                for (j, halves) in [(2 * c, low), (2 * c + 1, high)] {
                    // Scalar computes `(d*sc)*q - dmin*m`; the product is exact (11+6+4 bits),
                    // so the single rounding of an FMA gives the same weight bits.
                    let step = vdupq_n_f32(d * sc[j] as f32);
                    let neg_min = vdupq_n_f32(-(dmin * m[j] as f32));
                    for (half, nibbles) in halves.into_iter().enumerate() {
                        let wv = dequantize16(nibbles, step, neg_min);
                        let offset = 32 * j + 16 * half;
                        for t in 0..T {
                            let xv = vld1q_f32_x4(x_block[t][offset..][..16].as_ptr());
                            acc[t][0] = vfmaq_f32(acc[t][0], wv[0], xv.0);
                            acc[t][1] = vfmaq_f32(acc[t][1], wv[1], xv.1);
                            acc[t][2] = vfmaq_f32(acc[t][2], wv[2], xv.2);
                            acc[t][3] = vfmaq_f32(acc[t][3], wv[3], xv.3);
                        }
                    }
                }
            }
        }
        let mut dots = [0f32; T];
        for (dot, a) in dots.iter_mut().zip(&acc) {
            let sum = vaddq_f32(vaddq_f32(a[0], a[1]), vaddq_f32(a[2], a[3]));
            *dot = vaddvq_f32(sum);
        }
        dots
    }
}

/// Sixteen nibbles as sixteen weights `step*q + neg_min`.
///
/// # Safety
/// The CPU must support NEON.
#[inline(always)]
unsafe fn dequantize16(
    nibbles: uint8x16_t,
    step: float32x4_t,
    neg_min: float32x4_t,
) -> [float32x4_t; 4] {
    // SAFETY: NEON per this fn's contract; register-only operations.
    unsafe {
        let lo16 = vmovl_u8(vget_low_u8(nibbles));
        let hi16 = vmovl_high_u8(nibbles);
        let q = [
            vcvtq_f32_u32(vmovl_u16(vget_low_u16(lo16))),
            vcvtq_f32_u32(vmovl_high_u16(lo16)),
            vcvtq_f32_u32(vmovl_u16(vget_low_u16(hi16))),
            vcvtq_f32_u32(vmovl_high_u16(hi16)),
        ];
        q.map(|qf| vfmaq_f32(neg_min, qf, step))
    }
}

/// Products of 32 weights (two vectors, 0..=15) with 32 activations (i8), summed in pairs of
/// lanes: lane l holds 4 products, so `|lane| <= 4*15*128 = 7680`, far inside i16.
///
/// # Safety
/// The CPU must support NEON.
#[inline(always)]
unsafe fn dot32_i16(wq: [uint8x16_t; 2], xs0: int8x16_t, xs1: int8x16_t) -> int16x8_t {
    // SAFETY: NEON per this fn's contract; register-only operations.
    unsafe {
        let w0 = vreinterpretq_s8_u8(wq[0]);
        let w1 = vreinterpretq_s8_u8(wq[1]);
        let p0 = vmlal_high_s8(vmull_s8(vget_low_s8(w0), vget_low_s8(xs0)), w0, xs0);
        let p1 = vmlal_high_s8(vmull_s8(vget_low_s8(w1), vget_low_s8(xs1)), w1, xs1);
        // Two independent chains joined at the end: a shorter dependency path than four
        // chained `smlal`s.
        vaddq_s16(p0, p1)
    }
}

/// The dots of weight row `w_row` with the `T` activation rows of `x` (q8k design).
///
/// # Safety
/// The CPU must support NEON.
#[inline(always)]
unsafe fn q8k_tile<const T: usize>(xq: &[BlockQ8K], w_row: &[BlockQ4K]) -> [f32; T] {
    let nb = w_row.len();
    let x_rows: [&[BlockQ8K]; T] = std::array::from_fn(|t| &xq[t * nb..][..nb]);
    let mut acc = [0f32; T];
    // SAFETY: NEON per this fn's contract. Loads read fixed-size arrays: 8 bytes of an
    // `[u8; 8]`, 32 bytes at 32c (c < 4) of a 128-byte `qs`, 64 bytes at 64c of a 256-byte `qs`,
    // all 16 `bsums`.
    unsafe {
        for (b, block) in w_row.iter().enumerate() {
            let (sc, m) = q4k_unpack_scales_mins(&block.scales);
            // Per chunk c, the scales lined up with the lanes `pair_dots` produces below:
            // [sc[2c], sc[2c], sc[2c+1], sc[2c+1]].
            let sc16 = vmovl_u8(vld1_u8(sc.as_ptr()));
            let sc_pairs_lo = vreinterpretq_s16_u16(vzip1q_u16(sc16, sc16));
            let sc_pairs_hi = vreinterpretq_s16_u16(vzip2q_u16(sc16, sc16));
            let chunk_scales = [
                vmovl_s16(vget_low_s16(sc_pairs_lo)),
                vmovl_high_s16(sc_pairs_lo),
                vmovl_s16(vget_low_s16(sc_pairs_hi)),
                vmovl_high_s16(sc_pairs_hi),
            ];
            let m16 = vreinterpretq_s16_u16(vmovl_u8(vld1_u8(m.as_ptr())));
            let mins = [vmovl_s16(vget_low_s16(m16)), vmovl_high_s16(m16)];

            let mut sumi = [vdupq_n_s32(0); T];
            let chunks = block.qs.as_chunks::<32>().0;
            for (c, (chunk, chunk_scale)) in chunks.iter().zip(chunk_scales).enumerate() {
                let (low, high) = split_nibbles(chunk);
                for t in 0..T {
                    let xs = vld1q_s8_x4(x_rows[t][b].qs[64 * c..].as_ptr());
                    let dot_low = dot32_i16(low, xs.0, xs.1);
                    let dot_high = dot32_i16(high, xs.2, xs.3);
                    // Pairwise add of lanes <= 7680 stays within i16 (<= 15360); the widening
                    // pairwise add then gives [low, low, high, high] partial dots in i32.
                    let pair_dots = vpaddlq_s16(vpaddq_s16(dot_low, dot_high));
                    sumi[t] = vmlaq_s32(sumi[t], pair_dots, chunk_scale);
                }
            }
            // All vector reductions first, so no vector register is live across the calls
            // `combine` makes (its f16 conversions are out of line).
            let sums: [(i32, i32); T] = std::array::from_fn(|t| {
                let bsums = vld1q_s16_x2(x_rows[t][b].bsums.as_ptr());
                // bsums[2j] + bsums[2j+1], j = 0..4 and 4..8, widened before adding.
                let sub_sums = [vpaddlq_s16(bsums.0), vpaddlq_s16(bsums.1)];
                let summ = vmlaq_s32(vmulq_s32(sub_sums[0], mins[0]), sub_sums[1], mins[1]);
                (vaddvq_s32(sumi[t]), vaddvq_s32(summ))
            });
            for (t, (int_sum, int_min_sum)) in sums.into_iter().enumerate() {
                acc[t] = scalar::combine(acc[t], block, x_rows[t][b].d, int_sum, int_min_sum);
            }
        }
    }
    acc
}
