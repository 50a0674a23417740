//! AVX-512 flash attention: the shared driver on 16-lane vectors. Four K rows share each `q`
//! load in the dot products (their four sums reduced together: the 256-bit halves added, then
//! `vhaddps`); the tile's exponentials are computed sixteen at a time; `p*V`
//! keeps 64 output values in registers across the whole tile. f16 caches are widened with
//! `vcvtph2ps` straight from memory.

use std::arch::x86_64::*;

use super::driver::{flash_attention_entry, AttentionLanes};
use crate::simd::lanes::{Avx2, Avx512};

impl AttentionLanes for Avx512 {
    type Dot = Avx512;
    type Acc = Avx512;
    const ROW_DOT_PAIR: bool = false;

    #[inline(always)]
    unsafe fn scores4(a: [__m512; 4], scale: f32, scores: *mut f32) {
        // SAFETY: register-only intrinsics, then AVX2's `scores4`, whose store goes to the 4
        // values the caller guarantees at `scores`; the caller enables AVX-512 F and AVX2.
        unsafe {
            // Each sum folded to 8 lanes (the 256-bit halves added), then AVX2's reduction.
            // No closure and no `array::map` here: neither is `#[inline(always)]` nor inherits
            // the entry function's target features, so the intrinsics in them became calls
            // (a pp512 prompt took 1.6 times as long on Zen 4, in `_mm512_castps_pd` & co.).
            let mut halves = [_mm256_setzero_ps(); 4];
            for (h, &v) in halves.iter_mut().zip(&a) {
                let hi = _mm512_extractf64x4_pd::<1>(_mm512_castps_pd(v));
                *h = _mm256_add_ps(_mm512_castps512_ps256(v), _mm256_castpd_ps(hi));
            }
            <Avx2 as AttentionLanes>::scores4(halves, scale, scores);
        }
    }
}

flash_attention_entry!(
    "avx512f,avx2,fma,f16c",
    Avx512,
    "AVX-512 F (and the AVX2/FMA/F16C set [`crate::Isa::Avx512`] implies)"
);
