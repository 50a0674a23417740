//! NEON (aarch64 Advanced SIMD) variants of the Q6_K kernels.
//!
//! Baseline NEON only: integer products use widening `smull`/`smlal` and pairwise adds, not the
//! `dotprod` extension (`sdot`), which not every aarch64 CPU has.
//!
//! Both designs walk one weight row against a tile of up to `ACT_TILE` (4) activation rows (the shared driver), so each
//! half-block (128 values) is unpacked once and reused by every activation row of the tile.
//! Unpacking yields one 16-byte vector per scale group, in scale-index order: vector `g` of half
//! `h` holds values `128h + 16g ..+16`, which all use `scales[8h + g]`.
//!
//! - `f32`: the weights are dequantized with the same f32 arithmetic as scalar (so the weight
//!   values are identical) and FMA'd into four independent vector accumulators per activation
//!   row that run the whole row; only the summation order differs from scalar.
//! - `q8k`: each block's integer sum is computed exactly in vector lanes, reduced to the same
//!   `i32` as [`scalar::block_sum`], and folded with [`scalar::combine`] in block order, which
//!   makes the result bit-identical to scalar.
#![deny(unsafe_op_in_unsafe_fn)]

use super::scalar;
use crate::matmul::driver::{matmul_tiled, RowDots};
use crate::matmul::MatmulDims;
use crate::quant::{BlockQ6K, BlockQ8K, QK_K};
use crate::simd::aarch64::f16_to_f32;
use std::arch::aarch64::*;

/// # Safety
/// The CPU must support the enabled target features.
#[target_feature(enable = "neon")]
pub unsafe fn matmul_f32(x: &[f32], w: &[BlockQ6K], y: &mut [f32], dims: MatmulDims) {
    // SAFETY: this function's contract is that the CPU has NEON; the driver checks the shapes.
    unsafe { matmul_tiled::<F32Dots>(x, w, y, dims) }
}

/// # Safety
/// The CPU must support the enabled target features.
#[target_feature(enable = "neon")]
pub unsafe fn matmul_q8k(xq: &[BlockQ8K], w: &[BlockQ6K], y: &mut [f32], dims: MatmulDims) {
    // SAFETY: as in `matmul_f32`.
    unsafe { matmul_tiled::<Q8kDots>(xq, w, y, dims) }
}

struct F32Dots;

impl RowDots for F32Dots {
    type W = BlockQ6K;
    type X = f32;
    const W_VALUES: usize = QK_K;
    const X_VALUES: usize = 1;

    #[inline(always)]
    unsafe fn row_dots<const R: usize>(w_row: &[BlockQ6K], x_rows: &[f32]) -> [f32; R] {
        // SAFETY: the trait's contract (NEON enabled).
        unsafe { f32_tile::<R>(x_rows, w_row) }
    }
}

struct Q8kDots;

impl RowDots for Q8kDots {
    type W = BlockQ6K;
    type X = BlockQ8K;
    const W_VALUES: usize = QK_K;
    const X_VALUES: usize = QK_K;

    #[inline(always)]
    unsafe fn row_dots<const R: usize>(w_row: &[BlockQ6K], x_rows: &[BlockQ8K]) -> [f32; R] {
        // SAFETY: the trait's contract (NEON enabled).
        unsafe { q8k_tile::<R>(x_rows, w_row) }
    }
}

/// The 128 values of half `h` (0 or 1) as `q - 32` (in -32..=31), one vector per scale group.
///
/// # Safety
/// The CPU must support NEON.
#[inline(always)]
unsafe fn unpack_half(block: &BlockQ6K, h: usize) -> [int8x16_t; 8] {
    // SAFETY: NEON per this fn's contract. `h < 2` (the slicing below panics otherwise), so the
    // loads read ql[64h..64h+64] and qh[32h..32h+32], inside the 128- and 64-byte arrays.
    unsafe {
        let ql = vld1q_u8_x4(block.ql[64 * h..][..64].as_ptr());
        let qh = vld1q_u8_x2(block.qh[32 * h..][..32].as_ptr());
        let (ql_lo, ql_hi) = ([ql.0, ql.1], [ql.2, ql.3]);
        let qh = [qh.0, qh.1];
        let low6 = vdupq_n_u8(0x3F);
        let offset = vdupq_n_s8(32);
        let to_signed = |q: uint8x16_t| vsubq_s8(vreinterpretq_s8_u8(vandq_u8(q, low6)), offset);
        let mut out = [vdupq_n_s8(0); 8];
        for l in 0..2 {
            let qh_shr2 = vshrq_n_u8::<2>(qh[l]);
            // Shift-and-insert puts the 4 low bits and the 2 high bits side by side in one
            // instruction; the `& 63` in `to_signed` then drops the neighbouring qh bits.
            // Part 0: ql[l] & 0xF | (qh bits 0-1) << 4.
            out[l] = to_signed(vsliq_n_u8::<4>(ql_lo[l], qh[l]));
            // Part 1: ql[l+32] & 0xF | (qh bits 2-3) << 4.
            out[2 + l] = to_signed(vsliq_n_u8::<4>(ql_hi[l], qh_shr2));
            // Part 2: ql[l] >> 4 | (qh bits 4-5) << 4, i.e. qh & 0x30 kept in place.
            out[4 + l] = to_signed(vsriq_n_u8::<4>(qh[l], ql_lo[l]));
            // Part 3: ql[l+32] >> 4 | (qh bits 6-7) << 4.
            out[6 + l] = to_signed(vsriq_n_u8::<4>(qh_shr2, ql_hi[l]));
        }
        out
    }
}

/// The 16 signed scales of a block, widened to i32 in groups of four.
///
/// # Safety
/// The CPU must support NEON.
#[inline(always)]
unsafe fn widen_scales(scales: &[i8; 16]) -> [int32x4_t; 4] {
    // SAFETY: NEON per this fn's contract; the 16-byte load reads exactly `scales`.
    unsafe {
        let sc8 = vld1q_s8(scales.as_ptr());
        let lo = vmovl_s8(vget_low_s8(sc8));
        let hi = vmovl_high_s8(sc8);
        [
            vmovl_s16(vget_low_s16(lo)),
            vmovl_high_s16(lo),
            vmovl_s16(vget_low_s16(hi)),
            vmovl_high_s16(hi),
        ]
    }
}

/// The dots of weight row `w_row` with the `T` activation rows of `x` (f32 design).
///
/// # Safety
/// The CPU must support NEON.
#[inline(always)]
unsafe fn f32_tile<const T: usize>(x: &[f32], w_row: &[BlockQ6K]) -> [f32; T] {
    let k = w_row.len() * QK_K;
    let x_rows: [&[f32]; T] = std::array::from_fn(|t| &x[t * k..][..k]);
    // SAFETY: NEON per this fn's contract. The loads are `unpack_half` (h < 2) and
    // `vld1q_f32_x4` of a 16-element slice.
    unsafe {
        let mut acc = [[vdupq_n_f32(0.0); 4]; T];
        for (b, block) in w_row.iter().enumerate() {
            let x_block: [&[f32]; T] = std::array::from_fn(|t| &x_rows[t][b * QK_K..][..QK_K]);
            let d = f16_to_f32(block.d);
            for h in 0..2 {
                let groups = unpack_half(block, h);
                for (g, q) in groups.into_iter().enumerate() {
                    // Scalar computes `(d*sc)*(q-32)`: both products exact, so identical bits.
                    let step = vdupq_n_f32(d * block.scales[8 * h + g] as f32);
                    let wv = dequantize16(q, step);
                    let offset = 128 * h + 16 * g;
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
        let mut dots = [0f32; T];
        for (dot, a) in dots.iter_mut().zip(&acc) {
            let sum = vaddq_f32(vaddq_f32(a[0], a[1]), vaddq_f32(a[2], a[3]));
            *dot = vaddvq_f32(sum);
        }
        dots
    }
}

/// Sixteen signed 6-bit values as sixteen weights `step*q`.
///
/// # Safety
/// The CPU must support NEON.
#[inline(always)]
unsafe fn dequantize16(q: int8x16_t, step: float32x4_t) -> [float32x4_t; 4] {
    // SAFETY: NEON per this fn's contract; register-only operations.
    unsafe {
        let lo16 = vmovl_s8(vget_low_s8(q));
        let hi16 = vmovl_high_s8(q);
        let qf = [
            vcvtq_f32_s32(vmovl_s16(vget_low_s16(lo16))),
            vcvtq_f32_s32(vmovl_high_s16(lo16)),
            vcvtq_f32_s32(vmovl_s16(vget_low_s16(hi16))),
            vcvtq_f32_s32(vmovl_high_s16(hi16)),
        ];
        qf.map(|v| vmulq_f32(v, step))
    }
}

/// Products of 16 weights (-32..=31) with 16 activations (i8), summed in pairs of lanes:
/// `|lane| <= 2*32*128 = 8192`.
///
/// # Safety
/// The CPU must support NEON.
#[inline(always)]
unsafe fn dot16_i16(q: int8x16_t, xs: int8x16_t) -> int16x8_t {
    // SAFETY: NEON per this fn's contract; register-only operations.
    unsafe { vmlal_high_s8(vmull_s8(vget_low_s8(q), vget_low_s8(xs)), q, xs) }
}

/// The full sums of four `dot16_i16` results, as `[sum a, sum b, sum c, sum d]` in i32.
///
/// # Safety
/// The CPU must support NEON.
#[inline(always)]
unsafe fn group_sums4(a: int16x8_t, b: int16x8_t, c: int16x8_t, d: int16x8_t) -> int32x4_t {
    // SAFETY: NEON per this fn's contract; register-only operations.
    unsafe {
        // One non-widening pairwise add is exact (|lane| <= 2*8192 = 16384 < 2^15); the next
        // would not be (32768 when every q-32 = -32 meets x = -128), so widen from there on.
        let ab = vpaddlq_s16(vpaddq_s16(a, b));
        let cd = vpaddlq_s16(vpaddq_s16(c, d));
        vpaddq_s32(ab, cd)
    }
}

/// The dots of weight row `w_row` with the `T` activation rows of `x` (q8k design).
///
/// # Safety
/// The CPU must support NEON.
#[inline(always)]
unsafe fn q8k_tile<const T: usize>(xq: &[BlockQ8K], w_row: &[BlockQ6K]) -> [f32; T] {
    let nb = w_row.len();
    let x_rows: [&[BlockQ8K]; T] = std::array::from_fn(|t| &xq[t * nb..][..nb]);
    let mut acc = [0f32; T];
    // SAFETY: NEON per this fn's contract. Loads: `unpack_half` (h < 2), `widen_scales` and two
    // 64-byte loads at 128h and 128h+64 of a 256-byte `qs`.
    unsafe {
        for (b, block) in w_row.iter().enumerate() {
            let scales = widen_scales(&block.scales);
            let mut sumi = [vdupq_n_s32(0); T];
            for h in 0..2 {
                let q = unpack_half(block, h);
                for t in 0..T {
                    let xs = &x_rows[t][b].qs[128 * h..][..128];
                    let x0 = vld1q_s8_x4(xs.as_ptr());
                    let x1 = vld1q_s8_x4(xs[64..].as_ptr());
                    let groups_lo = group_sums4(
                        dot16_i16(q[0], x0.0),
                        dot16_i16(q[1], x0.1),
                        dot16_i16(q[2], x0.2),
                        dot16_i16(q[3], x0.3),
                    );
                    let groups_hi = group_sums4(
                        dot16_i16(q[4], x1.0),
                        dot16_i16(q[5], x1.1),
                        dot16_i16(q[6], x1.2),
                        dot16_i16(q[7], x1.3),
                    );
                    // |sc * group dot| <= 128 * 16*32*128: exact in i32, as are the sums.
                    sumi[t] = vmlaq_s32(sumi[t], groups_lo, scales[2 * h]);
                    sumi[t] = vmlaq_s32(sumi[t], groups_hi, scales[2 * h + 1]);
                }
            }
            // All vector reductions first, so no vector register is live across the calls
            // `combine` makes (its f16 conversion is out of line).
            let sums: [i32; T] = std::array::from_fn(|t| vaddvq_s32(sumi[t]));
            for (t, sum) in sums.into_iter().enumerate() {
                acc[t] = scalar::combine(acc[t], block, x_rows[t][b].d, sum);
            }
        }
    }
    acc
}
