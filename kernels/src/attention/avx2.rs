//! AVX2 + FMA + F16C flash attention: the shared driver on 8-lane vectors. Four K rows share
//! each `q` load in the dot products (reduced together with `vhaddps`); the tile's exponentials
//! are computed eight at a time; `p*V` keeps 32 output values in registers across the whole
//! tile. f16 caches are widened with `vcvtph2ps` straight from memory.

use std::arch::x86_64::*;

use super::driver::{flash_attention_entry, AttentionLanes};
use crate::simd::lanes::Avx2;

impl AttentionLanes for Avx2 {
    type Dot = Avx2;
    type Acc = Avx2;
    const ROW_DOT_PAIR: bool = true;

    #[inline(always)]
    unsafe fn scores4(a: [__m256; 4], scale: f32, scores: *mut f32) {
        // SAFETY: register-only intrinsics but the store, to the 4 values the caller guarantees
        // at `scores`; the caller enables AVX.
        unsafe {
            // Lane r of the result is the full sum of a[r].
            let h01 = _mm256_hadd_ps(a[0], a[1]);
            let h23 = _mm256_hadd_ps(a[2], a[3]);
            let h = _mm256_hadd_ps(h01, h23);
            let dots = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps::<1>(h));
            _mm_storeu_ps(scores, _mm_mul_ps(dots, _mm_set1_ps(scale)));
        }
    }
}

flash_attention_entry!("avx2,fma,f16c", Avx2, "AVX2, FMA and F16C");
