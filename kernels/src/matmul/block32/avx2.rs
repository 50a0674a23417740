//! AVX2 + FMA + F16C 32-block kernels and activation quantizers, same items as [`scalar`].
//!
//! - `q8_0` / `q8_1`: the weight integers ([`X86Block::ints_x86`]) times the activation bytes
//!   by `maddubs(|w|, sign(x, w))` (u8 x i8 pairs, at most `2*128*127 = 32512`: no i16
//!   saturation, given activations in `-127..=127`), `madd` with ones to eight i32 lanes, one
//!   horizontal sum: the exact `sumi` of scalar's `block_dot`; then scalar's combine, with the
//!   same operations in block order. Bit-exact with scalar.
//! - `f32`: weights dequantized from the same integers (`d*q`, Q4_1 `fma(q, d, m)`, both the
//!   value scalar computes), FMA with the activations.
//! - Quantizers: vector `max|x|`, the shared scalar scales, `x*id` rounded half away from zero
//!   (`trunc` plus the exact fraction), packed to bytes.

use super::x86::widen8;
use super::{block32_entries, q8_scales, simd_isa, F32Isa, IntIsa};
use crate::quant::{BlockQ4_0, BlockQ4_1, BlockQ5_0, BlockQ8_0, BlockQ8_1};
use crate::simd::x86::{f16_to_f32, hsum_epi32};
use half::f16;
use std::arch::x86_64::*;

/// The exact `sum w_l x_l` of 32 signed bytes each (`x` in `-127..=127`).
///
/// # Safety
/// The caller runs with AVX2 enabled.
#[inline(always)]
unsafe fn dot(w: __m256i, x: &[i8; 32]) -> i32 {
    // SAFETY: the load reads the 32-byte `x`; AVX2 per the caller's contract.
    unsafe {
        let x = _mm256_loadu_si256(x.as_ptr().cast());
        let pairs = _mm256_maddubs_epi16(_mm256_sign_epi8(w, w), _mm256_sign_epi8(x, w));
        hsum_epi32(_mm256_madd_epi16(pairs, _mm256_set1_epi16(1)))
    }
}

// Two chains per row (eight with four rows): no spills.
simd_isa! {
    Avx2: ints __m256i, lanes crate::simd::lanes::Avx2, regs [__m256; 4],
    multi_row_chains 2, pairwise_sum false
}

/// The 32 integers, exactly, as f32 vectors ([`F32Isa::int_values`]).
///
/// # Safety
/// The ISA's target features are enabled.
#[inline(always)]
unsafe fn int_values(ints: __m256i) -> [__m256; 4] {
    // SAFETY: register-only; the features per the caller's contract.
    unsafe {
        let mut out = [_mm256_setzero_ps(); 4];
        for (v, o) in out.iter_mut().enumerate() {
            *o = _mm256_cvtepi32_ps(widen8(ints, v));
        }
        out
    }
}

block32_entries!("avx2,fma,f16c", Avx2, IsaF32Dots);

/// `round(v)` with ties away from zero, as `f32::round`: `trunc(v)` plus one step of `v`'s sign
/// where the fraction `v - trunc(v)` (exact) is at least one half.
///
/// # Safety
/// The caller runs with AVX enabled.
#[inline(always)]
unsafe fn round_half_away(v: __m256) -> __m256 {
    // SAFETY: register-only intrinsics; AVX per the caller's contract.
    unsafe {
        let t = _mm256_round_ps::<{ _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC }>(v);
        let abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFF_FFFF));
        let frac = _mm256_and_ps(_mm256_sub_ps(v, t), abs_mask);
        let up = _mm256_cmp_ps::<_CMP_GE_OQ>(frac, _mm256_set1_ps(0.5));
        let step = _mm256_or_ps(_mm256_andnot_ps(abs_mask, v), _mm256_set1_ps(1.0));
        _mm256_add_ps(t, _mm256_and_ps(up, step))
    }
}

/// One block: `qs` from the 32 values at `x`, returning `(d, sum of qs)`.
///
/// # Safety
/// AVX2 + FMA + F16C enabled.
#[inline(always)]
unsafe fn quantize_block(x: &[f32], qs: &mut [i8; 32]) -> (f32, i32) {
    debug_assert!(x.len() == 32);
    // SAFETY: four 8-value loads inside the 32 values, one 32-byte store into `qs`.
    unsafe {
        let abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFF_FFFF));
        let mut v = [_mm256_setzero_ps(); 4];
        for (j, vj) in v.iter_mut().enumerate() {
            *vj = _mm256_loadu_ps(x.as_ptr().add(8 * j));
        }
        let mut m = _mm256_and_ps(v[0], abs_mask);
        for &vj in &v[1..] {
            m = _mm256_max_ps(m, _mm256_and_ps(vj, abs_mask));
        }
        let m4 = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps::<1>(m));
        let m2 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
        let amax = _mm_cvtss_f32(_mm_max_ss(m2, _mm_movehdup_ps(m2)));
        let (d, id) = q8_scales(amax);
        let idv = _mm256_set1_ps(id);
        let mut q = [_mm256_setzero_si256(); 4];
        for (qj, &vj) in q.iter_mut().zip(&v) {
            let r = _mm256_cvtps_epi32(round_half_away(_mm256_mul_ps(vj, idv)));
            *qj = _mm256_max_epi32(
                _mm256_min_epi32(r, _mm256_set1_epi32(127)),
                _mm256_set1_epi32(-127),
            );
        }
        let sum = hsum_epi32(_mm256_add_epi32(
            _mm256_add_epi32(q[0], q[1]),
            _mm256_add_epi32(q[2], q[3]),
        ));
        // The packs interleave 32-bit groups per 128-bit lane; the permute puts them in order.
        let bytes = _mm256_packs_epi16(
            _mm256_packs_epi32(q[0], q[1]),
            _mm256_packs_epi32(q[2], q[3]),
        );
        let ordered = _mm256_permutevar8x32_epi32(bytes, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
        _mm256_storeu_si256(qs.as_mut_ptr().cast(), ordered);
        (d, sum)
    }
}
