//! NEON variants, 4 lanes; tails shorter than a vector go through the scalar code. The ops are
//! the shared ones of [`super::generic`]; this file adds the adjacent-pair RoPE shuffle.

use std::arch::aarch64::*;

use super::generic::{simd_ops_entries, RopeAdjacentLanes};
use crate::simd::lanes::Neon;

impl RopeAdjacentLanes for Neon {
    #[inline(always)]
    unsafe fn rotate_pairs(head: *mut f32, n: usize, cos: *const f32, sin: *const f32) -> usize {
        let mut p = 0;
        while p + 4 <= n {
            // SAFETY: pairs `p..p + 4` exist in `cos`, `sin` and (as floats `2p..2p + 8`) in
            // `head`, since `p + 4 <= n`; the caller enables NEON.
            unsafe {
                let c = vld1q_f32(cos.add(p));
                let s = vld1q_f32(sin.add(p));
                // De-interleave: `.0` holds the first of each pair, `.1` the second.
                let v = vld2q_f32(head.add(2 * p));
                let a = vfmsq_f32(vmulq_f32(v.0, c), v.1, s);
                let b = vfmaq_f32(vmulq_f32(v.1, c), v.0, s);
                vst2q_f32(head.add(2 * p), float32x4x2_t(a, b));
            }
            p += 4;
        }
        p
    }
}

simd_ops_entries!("neon", Neon, "NEON");
