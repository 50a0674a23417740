//! NEON 32-block kernels and activation quantizers, same items as [`scalar`](super::scalar).
//! Baseline NEON only (no `sdot`): the integer dots are widening `smull`/`smlal` (two products
//! per i16 lane, at most `2*128*127 = 32512`, given activations in `-127..=127`) and pairwise
//! widening adds, reduced to scalar's exact `sumi`, then scalar's combine in block order:
//! bit-exact with scalar. The f32 design dequantizes the same integers (`d*q`, Q4_1
//! `fma(q, d, m)`) and FMAs them into four accumulators per activation row. The quantizers
//! round with `fcvtas` (to nearest, ties away from zero: `f32::round`).

use super::{block32_entries, q8_scales, simd_isa, Block32, F32Isa, IntIsa, Unpack};
use crate::quant::{BlockQ4_0, BlockQ4_1, BlockQ5_0, BlockQ8_0, BlockQ8_1};
use crate::simd::aarch64::f16_to_f32;
use half::f16;
use std::arch::aarch64::*;

/// A 32-value weight block as the NEON kernels unpack it.
trait NeonBlock: Block32 {
    /// [`Block32::ints`] as two vectors of sixteen bytes (values 0..16, 16..32).
    ///
    /// # Safety
    /// The caller runs with NEON enabled.
    unsafe fn ints_neon(&self) -> [int8x16_t; 2];

    /// The min `m` (0 for formats without one).
    fn min_f32(&self) -> f32 {
        0.0
    }
}

/// The 32 nibbles of `qs` in value order.
///
/// # Safety
/// The caller runs with NEON enabled.
#[inline(always)]
unsafe fn nibbles(qs: &[u8; 16]) -> [uint8x16_t; 2] {
    // SAFETY: a 16-byte load of a 16-byte array; NEON per the caller's contract.
    unsafe {
        let bytes = vld1q_u8(qs.as_ptr());
        [vandq_u8(bytes, vdupq_n_u8(0xF)), vshrq_n_u8::<4>(bytes)]
    }
}

/// Bit `l` of `qh` as `0x10` in byte `l`.
///
/// # Safety
/// The caller runs with NEON enabled.
#[inline(always)]
unsafe fn high_bits(qh: u32) -> [uint8x16_t; 2] {
    const SPREAD: [[u8; 16]; 2] = [
        [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1],
        [2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3],
    ];
    const BIT: [u8; 16] = [1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128];
    // SAFETY: loads of 16-byte constants; NEON per the caller's contract.
    unsafe {
        let bytes = vreinterpretq_u8_u32(vdupq_n_u32(qh));
        let bit = vld1q_u8(BIT.as_ptr());
        let mut out = [vdupq_n_u8(0); 2];
        for (o, spread) in out.iter_mut().zip(&SPREAD) {
            let sel = vqtbl1q_u8(bytes, vld1q_u8(spread.as_ptr()));
            *o = vandq_u8(vtstq_u8(sel, bit), vdupq_n_u8(0x10));
        }
        out
    }
}

impl NeonBlock for BlockQ8_0 {
    #[inline(always)]
    unsafe fn ints_neon(&self) -> [int8x16_t; 2] {
        // SAFETY: two 16-byte loads of the 32-byte `qs`.
        unsafe {
            [
                vld1q_s8(self.qs.as_ptr()),
                vld1q_s8(self.qs.as_ptr().add(16)),
            ]
        }
    }
}

impl NeonBlock for BlockQ4_0 {
    #[inline(always)]
    unsafe fn ints_neon(&self) -> [int8x16_t; 2] {
        // SAFETY: NEON per the caller's contract.
        unsafe {
            let q = nibbles(&self.qs);
            let eight = vdupq_n_s8(8);
            [
                vsubq_s8(vreinterpretq_s8_u8(q[0]), eight),
                vsubq_s8(vreinterpretq_s8_u8(q[1]), eight),
            ]
        }
    }
}

impl NeonBlock for BlockQ5_0 {
    #[inline(always)]
    unsafe fn ints_neon(&self) -> [int8x16_t; 2] {
        // SAFETY: NEON per the caller's contract.
        unsafe {
            let q = nibbles(&self.qs);
            let h = high_bits(u32::from_le_bytes(self.qh));
            let sixteen = vdupq_n_s8(16);
            [
                vsubq_s8(vreinterpretq_s8_u8(vorrq_u8(q[0], h[0])), sixteen),
                vsubq_s8(vreinterpretq_s8_u8(vorrq_u8(q[1], h[1])), sixteen),
            ]
        }
    }
}

impl NeonBlock for BlockQ4_1 {
    #[inline(always)]
    unsafe fn ints_neon(&self) -> [int8x16_t; 2] {
        // SAFETY: NEON per the caller's contract.
        unsafe {
            let q = nibbles(&self.qs);
            [vreinterpretq_s8_u8(q[0]), vreinterpretq_s8_u8(q[1])]
        }
    }

    #[inline(always)]
    fn min_f32(&self) -> f32 {
        f16_to_f32(self.m)
    }
}

/// The exact `sum w_l x_l` of 32 signed bytes each (`x` in `-127..=127`).
///
/// # Safety
/// The caller runs with NEON enabled.
#[inline(always)]
unsafe fn dot(w: [int8x16_t; 2], x: &[i8; 32]) -> i32 {
    // SAFETY: two 16-byte loads of the 32-byte `x`; NEON per the caller's contract.
    unsafe {
        let x0 = vld1q_s8(x.as_ptr());
        let x1 = vld1q_s8(x.as_ptr().add(16));
        let p0 = vmlal_high_s8(vmull_s8(vget_low_s8(w[0]), vget_low_s8(x0)), w[0], x0);
        let p1 = vmlal_high_s8(vmull_s8(vget_low_s8(w[1]), vget_low_s8(x1)), w[1], x1);
        vaddvq_s32(vaddq_s32(vpaddlq_s16(p0), vpaddlq_s16(p1)))
    }
}

impl<W: NeonBlock> Unpack<Neon> for W {
    #[inline(always)]
    unsafe fn unpack(&self) -> [int8x16_t; 2] {
        // SAFETY: the trait's contract.
        unsafe { self.ints_neon() }
    }

    #[inline(always)]
    unsafe fn min(&self) -> f32 {
        // SAFETY: the trait's contract.
        #[allow(unused_unsafe)]
        unsafe {
            NeonBlock::min_f32(self)
        }
    }
}

simd_isa! {
    Neon: ints [int8x16_t; 2], lanes crate::simd::lanes::Neon, regs [float32x4_t; 8],
    multi_row_chains 4, pairwise_sum true
}

/// The 32 integers, exactly, as f32 vectors ([`F32Isa::int_values`]).
///
/// # Safety
/// The ISA's target features are enabled.
#[inline(always)]
unsafe fn int_values(ints: [int8x16_t; 2]) -> [float32x4_t; 8] {
    // SAFETY: register-only; the features per the caller's contract.
    unsafe {
        let mut out = [vdupq_n_f32(0.0); 8];
        for (h, &q8) in ints.iter().enumerate() {
            let q16 = [vmovl_s8(vget_low_s8(q8)), vmovl_high_s8(q8)];
            for (j, &q) in q16.iter().enumerate() {
                let q32 = [vmovl_s16(vget_low_s16(q)), vmovl_high_s16(q)];
                for (t, &qi) in q32.iter().enumerate() {
                    out[4 * h + 2 * j + t] = vcvtq_f32_s32(qi);
                }
            }
        }
        out
    }
}

block32_entries!("neon", Neon, IsaF32Dots);

/// One block: `qs` from the 32 values at `x`, returning `(d, sum of qs)`.
///
/// # Safety
/// NEON enabled.
#[inline(always)]
unsafe fn quantize_block(x: &[f32], qs: &mut [i8; 32]) -> (f32, i32) {
    debug_assert!(x.len() == 32);
    // SAFETY: eight 4-value loads inside the 32 values, four 8-byte stores into `qs`.
    unsafe {
        let mut v = [vdupq_n_f32(0.0); 8];
        for (j, vj) in v.iter_mut().enumerate() {
            *vj = vld1q_f32(x.as_ptr().add(4 * j));
        }
        let mut m = vabsq_f32(v[0]);
        for &vj in &v[1..] {
            m = vmaxq_f32(m, vabsq_f32(vj));
        }
        let (d, id) = q8_scales(vmaxvq_f32(m));
        let (lo, hi) = (vdupq_n_s32(-127), vdupq_n_s32(127));
        let mut sum = vdupq_n_s32(0);
        for j in 0..4 {
            let q0 = vmaxq_s32(vminq_s32(vcvtaq_s32_f32(vmulq_n_f32(v[2 * j], id)), hi), lo);
            let q1 = vmaxq_s32(
                vminq_s32(vcvtaq_s32_f32(vmulq_n_f32(v[2 * j + 1], id)), hi),
                lo,
            );
            sum = vaddq_s32(sum, vaddq_s32(q0, q1));
            let q16 = vcombine_s16(vqmovn_s32(q0), vqmovn_s32(q1));
            vst1_s8(qs.as_mut_ptr().add(8 * j), vqmovn_s16(q16));
        }
        (d, vaddvq_s32(sum))
    }
}
