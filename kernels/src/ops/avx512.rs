//! AVX-512 variants, 16 lanes; tails use masked loads and stores (masked-off lanes are neither
//! read nor written, so they cannot fault). The ops are the shared ones of [`super::generic`];
//! this file adds the adjacent-pair RoPE shuffle.

use std::arch::x86_64::*;

use super::generic::{simd_ops_entries, RopeAdjacentLanes};
use crate::simd::lanes::Avx512;

/// The first `len` lanes (`len <= 16`).
#[inline(always)]
fn tail_mask(len: usize) -> __mmask16 {
    debug_assert!(len <= 16);
    ((1u32 << len) - 1) as __mmask16
}

impl RopeAdjacentLanes for Avx512 {
    #[inline(always)]
    unsafe fn rotate_pairs(head: *mut f32, n: usize, cos: *const f32, sin: *const f32) -> usize {
        // Lane j of a vector of 8 pairs takes frequency j / 2.
        // SAFETY: register-only; the caller enables AVX-512 F.
        let spread = unsafe { _mm512_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7) };
        let mut p = 0;
        while p < n {
            let n_pairs = (n - p).min(8);
            let pair_mask = tail_mask(n_pairs) as __mmask8;
            let mask = tail_mask(2 * n_pairs);
            // SAFETY: the masks cover pairs `p..p + n_pairs` (floats `2p..2(p + n_pairs)`), all
            // within `cos`, `sin` and `head` since `p + n_pairs <= n`; the caller enables
            // AVX-512 F/VL.
            unsafe {
                let c = _mm512_permutexvar_ps(
                    spread,
                    _mm512_castps256_ps512(_mm256_maskz_loadu_ps(pair_mask, cos.add(p))),
                );
                let s = _mm512_permutexvar_ps(
                    spread,
                    _mm512_castps256_ps512(_mm256_maskz_loadu_ps(pair_mask, sin.add(p))),
                );
                let v = _mm512_maskz_loadu_ps(mask, head.add(2 * p));
                let swapped = _mm512_permute_ps::<0b1011_0001>(v);
                // Even lanes: a*c - b*s; odd lanes: b*c + a*s.
                let rotated = _mm512_fmaddsub_ps(v, c, _mm512_mul_ps(swapped, s));
                _mm512_mask_storeu_ps(head.add(2 * p), mask, rotated);
            }
            p += n_pairs;
        }
        p
    }
}

simd_ops_entries!(
    "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni",
    Avx512,
    "AVX2, FMA, F16C and AVX-512 F/BW/VL/VNNI"
);
