//! AVX-512 (F/BW/VL/VNNI) 32-block kernels and activation quantizers, same items as
//! [`scalar`](super::scalar) and written in parallel with `avx2` (same structure, same
//! operation order), so the two can be read side by side:
//!
//! - `q8_0` / `q8_1`: VNNI `vpdpbusd` of `|w|` with `sign(x, w)` (u8 x i8, four products per
//!   i32 lane, no saturation) gives eight i32 lanes whose sum is scalar's exact `sumi`; the
//!   combine is scalar's, in block order: bit-exact with scalar.
//! - `f32`: each block as two zmm of sixteen weights (`d*q`, Q4_1 `fma(q, d, m)`), FMA with
//!   the activations; F16 weights widened with `vcvtph2ps` (AVX-512 F).
//! - Quantizers: as `avx2`, sixteen values per register; `vroundps` becomes `vrndscaleps`,
//!   the bytes come from `vpmovdb`.
//!
//! Only AVX-512 F/BW/VL/VNNI intrinsics (no DQ-only ones: no `_mm512_or_ps`, the sign is
//! taken with integer ops).

use super::{block32_entries, q8_scales, simd_isa, F32Isa, IntIsa};
use crate::quant::{BlockQ4_0, BlockQ4_1, BlockQ5_0, BlockQ8_0, BlockQ8_1};
use crate::simd::x86::{f16_to_f32, hsum_epi32};
use half::f16;
use std::arch::x86_64::*;

/// The exact `sum w_l x_l` of 32 signed bytes each (`x` in `-127..=127`).
///
/// # Safety
/// The caller runs with AVX2 and AVX-512 VL + VNNI enabled.
#[inline(always)]
unsafe fn dot(w: __m256i, x: &[i8; 32]) -> i32 {
    // SAFETY: the load reads the 32-byte `x`; the features per the caller's contract.
    unsafe {
        let x = _mm256_loadu_si256(x.as_ptr().cast());
        hsum_epi32(_mm256_dpbusd_epi32(
            _mm256_setzero_si256(),
            _mm256_sign_epi8(w, w),
            _mm256_sign_epi8(x, w),
        ))
    }
}

simd_isa! {
    Avx512: ints __m256i, lanes crate::simd::lanes::Avx512, regs [__m512; 2],
    multi_row_chains 2, pairwise_sum false
}

/// The 32 integers, exactly, as f32 vectors ([`F32Isa::int_values`]).
///
/// # Safety
/// The ISA's target features are enabled.
#[inline(always)]
unsafe fn int_values(ints: __m256i) -> [__m512; 2] {
    // SAFETY: register-only; the features per the caller's contract.
    unsafe {
        let halves = [
            _mm256_castsi256_si128(ints),
            _mm256_extracti128_si256::<1>(ints),
        ];
        let mut out = [_mm512_setzero_ps(); 2];
        for (o, half) in out.iter_mut().zip(halves) {
            *o = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(half));
        }
        out
    }
}

block32_entries!(
    "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni",
    Avx512,
    IsaF32Dots
);

/// `round(v)` with ties away from zero, as `f32::round` (see `avx2`'s `round_half_away`).
///
/// # Safety
/// The caller runs with AVX-512 F enabled.
#[inline(always)]
unsafe fn round_half_away(v: __m512) -> __m512 {
    // SAFETY: register-only AVX-512 F intrinsics, per the caller's contract.
    unsafe {
        let t = _mm512_roundscale_ps::<{ _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC }>(v);
        let frac = _mm512_abs_ps(_mm512_sub_ps(v, t));
        let up = _mm512_cmp_ps_mask::<_CMP_GE_OQ>(frac, _mm512_set1_ps(0.5));
        let sign = _mm512_and_si512(_mm512_castps_si512(v), _mm512_set1_epi32(i32::MIN));
        let step = _mm512_castsi512_ps(_mm512_or_si512(
            sign,
            _mm512_castps_si512(_mm512_set1_ps(1.0)),
        ));
        _mm512_mask_add_ps(t, up, t, step)
    }
}

/// One block: `qs` from the 32 values at `x`, returning `(d, sum of qs)`.
///
/// # Safety
/// AVX-512 F enabled.
#[inline(always)]
unsafe fn quantize_block(x: &[f32], qs: &mut [i8; 32]) -> (f32, i32) {
    debug_assert!(x.len() == 32);
    // SAFETY: two 16-value loads inside the 32 values, two 16-byte stores into `qs`.
    unsafe {
        let v = [
            _mm512_loadu_ps(x.as_ptr()),
            _mm512_loadu_ps(x.as_ptr().add(16)),
        ];
        let amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(v[0]), _mm512_abs_ps(v[1])));
        let (d, id) = q8_scales(amax);
        let idv = _mm512_set1_ps(id);
        let mut q = [_mm512_setzero_si512(); 2];
        for (qj, &vj) in q.iter_mut().zip(&v) {
            let r = _mm512_cvtps_epi32(round_half_away(_mm512_mul_ps(vj, idv)));
            *qj = _mm512_max_epi32(
                _mm512_min_epi32(r, _mm512_set1_epi32(127)),
                _mm512_set1_epi32(-127),
            );
        }
        let sum = _mm512_reduce_add_epi32(_mm512_add_epi32(q[0], q[1]));
        _mm_storeu_si128(qs.as_mut_ptr().cast(), _mm512_cvtepi32_epi8(q[0]));
        _mm_storeu_si128(qs.as_mut_ptr().add(16).cast(), _mm512_cvtepi32_epi8(q[1]));
        (d, sum)
    }
}
