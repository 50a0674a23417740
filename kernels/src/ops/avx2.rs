//! AVX2 + FMA variants, 8 lanes; tails shorter than a vector go through the scalar code. The
//! ops are the shared ones of [`super::generic`]; this file adds the adjacent-pair RoPE shuffle.

use std::arch::x86_64::*;

use super::generic::{simd_ops_entries, RopeAdjacentLanes};
use crate::simd::lanes::Avx2;

impl RopeAdjacentLanes for Avx2 {
    #[inline(always)]
    unsafe fn rotate_pairs(head: *mut f32, n: usize, cos: *const f32, sin: *const f32) -> usize {
        // Lane j of a vector of 4 pairs takes frequency j / 2.
        // SAFETY: register-only; the caller enables AVX2.
        let spread = unsafe { _mm256_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3) };
        let mut p = 0;
        while p + 4 <= n {
            // SAFETY: pairs `p..p + 4` exist in `cos`, `sin` and (as floats `2p..2p + 8`) in
            // `head`, since `p + 4 <= n`; the caller enables AVX2 and FMA.
            unsafe {
                let c = _mm256_permutevar8x32_ps(
                    _mm256_castps128_ps256(_mm_loadu_ps(cos.add(p))),
                    spread,
                );
                let s = _mm256_permutevar8x32_ps(
                    _mm256_castps128_ps256(_mm_loadu_ps(sin.add(p))),
                    spread,
                );
                let v = _mm256_loadu_ps(head.add(2 * p));
                let swapped = _mm256_permute_ps::<0b1011_0001>(v);
                // Even lanes: a*c - b*s; odd lanes: b*c + a*s.
                let rotated = _mm256_fmaddsub_ps(v, c, _mm256_mul_ps(swapped, s));
                _mm256_storeu_ps(head.add(2 * p), rotated);
            }
            p += 4;
        }
        p
    }
}

simd_ops_entries!("avx2,fma,f16c", Avx2, "AVX2, FMA and F16C");
