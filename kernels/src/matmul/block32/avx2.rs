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

use super::x86::{widen8, X86Block};
use super::{
    block32_entries, q8_scales, quantize_q8_0_with, quantize_q8_1_with, IntDots, IntIsa, Q4_1Dots,
    Unpack,
};
use crate::matmul::driver::RowDots;
use crate::quant::{BlockQ4_0, BlockQ4_1, BlockQ5_0, BlockQ8_0, BlockQ8_1};
use crate::simd::x86::{f16_to_f32, hsum_epi32, hsum_ps};
use half::f16;
use std::arch::x86_64::*;
use std::marker::PhantomData;

/// The exact `sum w_l x_l` of 32 signed bytes each (`x` in `-127..=127`), in eight i32 lanes.
///
/// # Safety
/// The caller runs with AVX2 enabled.
#[inline(always)]
unsafe fn dot_i8(w: __m256i, x: __m256i) -> __m256i {
    // SAFETY: register-only intrinsics; AVX2 per the caller's contract.
    unsafe {
        let pairs = _mm256_maddubs_epi16(_mm256_sign_epi8(w, w), _mm256_sign_epi8(x, w));
        _mm256_madd_epi16(pairs, _mm256_set1_epi16(1))
    }
}

/// The Avx2 primitives of the shared integer loops and quantizers.
pub(crate) struct Avx2;

impl IntIsa for Avx2 {
    type Ints = __m256i;

    #[inline(always)]
    unsafe fn dot(w: __m256i, x: &[i8; 32]) -> i32 {
        // SAFETY: the trait's contract; the load reads the 32-byte `x`.
        unsafe { hsum_epi32(dot_i8(w, _mm256_loadu_si256(x.as_ptr().cast()))) }
    }

    #[inline(always)]
    unsafe fn to_f32(h: f16) -> f32 {
        // SAFETY: the trait's contract.
        #[allow(unused_unsafe)]
        unsafe {
            f16_to_f32(h)
        }
    }

    #[inline(always)]
    unsafe fn quantize_block(x: &[f32], qs: &mut [i8; 32]) -> (f32, i32) {
        // SAFETY: the trait's contract.
        unsafe { quantize_block(x, qs) }
    }
}

impl<W: X86Block> Unpack<Avx2> for W {
    #[inline(always)]
    unsafe fn unpack(&self) -> __m256i {
        // SAFETY: the trait's contract.
        unsafe { self.ints_x86() }
    }

    #[inline(always)]
    unsafe fn min(&self) -> f32 {
        // SAFETY: the trait's contract.
        #[allow(unused_unsafe)]
        unsafe {
            X86Block::min_f32(self)
        }
    }
}

/// Thirty-two weights dequantized into four vectors of eight.
trait Values8x4: Sized {
    /// Values per element (32 for a block, 1 for an f16).
    const W_VALUES: usize;
    /// Weights `32c..32c+32` of the row `w`.
    ///
    /// # Safety
    /// AVX2 + FMA + F16C enabled; `w` holds at least `32(c+1)` values.
    unsafe fn values(w: &[Self], c: usize) -> [__m256; 4];
}

impl<W: X86Block> Values8x4 for W {
    const W_VALUES: usize = 32;

    #[inline(always)]
    unsafe fn values(w: &[W], c: usize) -> [__m256; 4] {
        let block = &w[c];
        // SAFETY: AVX2 + FMA + F16C per the contract; register-only after `ints_x86`.
        unsafe {
            let ints = block.ints_x86();
            let d = _mm256_set1_ps(f16_to_f32(block.d()));
            let m = _mm256_set1_ps(block.min_f32());
            let mut out = [_mm256_setzero_ps(); 4];
            for (v, o) in out.iter_mut().enumerate() {
                let q = _mm256_cvtepi32_ps(widen8(ints, v));
                // `d*q` is exact, so the FMA rounds once, like scalar's `d*q + m`.
                *o = if W::HAS_MIN {
                    _mm256_fmadd_ps(q, d, m)
                } else {
                    _mm256_mul_ps(q, d)
                };
            }
            out
        }
    }
}

impl Values8x4 for f16 {
    const W_VALUES: usize = 1;

    #[inline(always)]
    unsafe fn values(w: &[f16], c: usize) -> [__m256; 4] {
        let chunk = &w[32 * c..32 * c + 32];
        // SAFETY: register-only; the features per this fn's contract.
        let mut out = [unsafe { _mm256_setzero_ps() }; 4];
        for (v, o) in out.iter_mut().enumerate() {
            // SAFETY: 8 f16 = 16 bytes at 8v inside the 32-value chunk; F16C per the contract.
            *o = unsafe { _mm256_cvtph_ps(_mm_loadu_si128(chunk.as_ptr().add(8 * v).cast())) };
        }
        out
    }
}

struct F32Dots<W>(PhantomData<W>);

impl<W: Values8x4> RowDots for F32Dots<W> {
    type W = W;
    type X = f32;
    const W_VALUES: usize = <W as Values8x4>::W_VALUES;
    const X_VALUES: usize = 1;
    // Every design step reads 32 values, also of F16 weights (one element each).
    const K_MULTIPLE: usize = 32;

    #[inline(always)]
    unsafe fn row_dots<const R: usize>(w_row: &[W], x_rows: &[f32]) -> [f32; R] {
        // A single row has four FMA chains, more rows two each (eight chains, no spills).
        // SAFETY: the trait's contract.
        unsafe {
            if R == 1 {
                f32_row::<W, R, 4>(w_row, x_rows)
            } else {
                f32_row::<W, R, 2>(w_row, x_rows)
            }
        }
    }
}

/// # Safety
/// As [`RowDots::row_dots`].
#[inline(always)]
unsafe fn f32_row<W: Values8x4, const R: usize, const P: usize>(
    w_row: &[W],
    x_rows: &[f32],
) -> [f32; R] {
    let k = w_row.len() * W::W_VALUES;
    debug_assert!(x_rows.len() == R * k);
    // SAFETY: every activation load reads 8 values at `i*k + 32c + 8v + 8 <= R*k`.
    unsafe {
        let mut acc = [[_mm256_setzero_ps(); P]; R];
        for c in 0..k / 32 {
            let wv = W::values(w_row, c);
            for (i, acc) in acc.iter_mut().enumerate() {
                let xp = x_rows.as_ptr().add(i * k + 32 * c);
                for (v, &w) in wv.iter().enumerate() {
                    acc[v % P] = _mm256_fmadd_ps(w, _mm256_loadu_ps(xp.add(8 * v)), acc[v % P]);
                }
            }
        }
        let mut dots = [0f32; R];
        for (dot, acc) in dots.iter_mut().zip(&acc) {
            let mut sum = acc[0];
            for &a in &acc[1..] {
                sum = _mm256_add_ps(sum, a);
            }
            *dot = hsum_ps(sum);
        }
        dots
    }
}

block32_entries!("avx2,fma,f16c", Avx2, F32Dots);

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
