//! One f32 vector type per ISA behind one trait, so that an algorithm (the ops, attention's
//! tile loop, the vector `exp`) is written once and each ISA supplies only its instructions, as
//! pulp does. Every method is `#[inline(always)]`: it compiles inside the `#[target_feature]`
//! entry function that calls the generic code, so the generated code is what a hand-written
//! per-ISA loop gives. Each method maps to the instruction (and operand order) the per-ISA code
//! used before, so every variant computes the same values in the same order.
//!
//! # Safety (for every method of both traits)
//! The caller runs with the implementing ISA's target features enabled, and every pointer
//! covers the values the method names (`LANES` unless the method says otherwise).

/// The f32 vector operations every ISA has.
pub(crate) trait F32Lanes {
    /// One vector of `LANES` f32.
    type V: Copy;
    /// f32 values per vector.
    const LANES: usize;

    unsafe fn zero() -> Self::V;
    unsafe fn splat(x: f32) -> Self::V;
    unsafe fn load(p: *const f32) -> Self::V;
    /// `LANES` f16 values widened exactly to f32.
    unsafe fn load_f16(p: *const half::f16) -> Self::V;
    unsafe fn store(p: *mut f32, v: Self::V);
    unsafe fn add(a: Self::V, b: Self::V) -> Self::V;
    unsafe fn mul(a: Self::V, b: Self::V) -> Self::V;
    /// `a * b + c`, rounded once.
    unsafe fn fma(a: Self::V, b: Self::V, c: Self::V) -> Self::V;
    /// The sum of the lanes, in the ISA's fixed reduction order.
    unsafe fn hsum(v: Self::V) -> f32;
}

/// What the ops and the vector `exp` need beyond [`F32Lanes`].
pub(crate) trait F32Math: F32Lanes {
    /// Whether a row's last, partial vector goes through masked loads and stores (AVX-512);
    /// otherwise through the scalar code.
    const MASKED_TAIL: bool;

    unsafe fn sub(a: Self::V, b: Self::V) -> Self::V;
    unsafe fn div(a: Self::V, b: Self::V) -> Self::V;
    /// The ISA's `max(a, b)`, with its own NaN rule (the `exp` relies on each one's).
    unsafe fn max(a: Self::V, b: Self::V) -> Self::V;
    unsafe fn min(a: Self::V, b: Self::V) -> Self::V;
    /// `c - a * b`, rounded once.
    unsafe fn fnma(a: Self::V, b: Self::V, c: Self::V) -> Self::V;
    /// `a * b - c * d` in the ISA's multiply-subtract form: x86 rounds `c * d` and fuses
    /// `a * b` (`vfmsub`), NEON rounds `a * b` and fuses `c * d` (`fmls`).
    unsafe fn fms_products(a: Self::V, b: Self::V, c: Self::V, d: Self::V) -> Self::V;
    /// The sign flipped.
    unsafe fn neg(a: Self::V) -> Self::V;
    /// Rounded to the nearest integer, ties to even.
    unsafe fn round_even(a: Self::V) -> Self::V;
    /// `2^n` for lanes holding integers `n` in `[-126, 127]`.
    unsafe fn pow2(n: Self::V) -> Self::V;
    /// `e`, with `+0` in the lanes where `x < lo` (false for NaN).
    unsafe fn zero_where_lt(x: Self::V, lo: Self::V, e: Self::V) -> Self::V;
    /// `e`, with `+inf` in the lanes where `x > hi` (false for NaN).
    unsafe fn inf_where_gt(x: Self::V, hi: Self::V, e: Self::V) -> Self::V;
    /// The largest lane, in the ISA's reduction order and NaN rule.
    unsafe fn hmax(v: Self::V) -> f32;
    /// `v` with the lanes from `live` on (`live` may exceed `LANES`) set to `+0`.
    unsafe fn keep_first(v: Self::V, live: usize) -> Self::V;
    /// `len < LANES` values from `p`, `fill` in the other lanes; only `len` values are read.
    unsafe fn load_partial(p: *const f32, len: usize, fill: Self::V) -> Self::V;
    /// The first `len < LANES` lanes of `v` to `p`; only `len` values are written.
    unsafe fn store_partial(p: *mut f32, len: usize, v: Self::V);
}

/// Implements trait methods whose bodies are a few intrinsic calls: each body is wrapped in one
/// `unsafe` block under the traits' safety contract (module doc).
macro_rules! lane_methods {
    ($(fn $name:ident($($arg:ident: $ty:ty),*) $(-> $ret:ty)? { $($body:tt)* })*) => {$(
        #[inline(always)]
        unsafe fn $name($($arg: $ty),*) $(-> $ret)? {
            // SAFETY: the traits' contract: the caller enables this ISA's target features and
            // every pointer covers the values the method names.
            unsafe { $($body)* }
        }
    )*};
}

/// Values of a partial vector copied through a stack buffer: for ISAs whose row tails go
/// through the scalar code (`MASKED_TAIL = false`) this is never on a hot path.
///
/// # Safety
/// `src` and `dst` each cover `len` values and do not overlap.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
#[inline(always)]
unsafe fn copy_partial(src: *const f32, dst: *mut f32, len: usize) {
    // SAFETY: the caller guarantees `len` values at both pointers.
    unsafe { std::ptr::copy_nonoverlapping(src, dst, len) }
}

#[cfg(target_arch = "x86_64")]
pub(crate) use x86::{Avx2, Avx512};

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{copy_partial, F32Lanes, F32Math};
    use crate::simd::x86::hsum_ps;
    use std::arch::x86_64::*;

    /// AVX2 + FMA (+ F16C for [`F32Lanes::load_f16`]), 8 lanes.
    pub(crate) struct Avx2;

    impl F32Lanes for Avx2 {
        type V = __m256;
        const LANES: usize = 8;
        lane_methods! {
            fn zero() -> __m256 { _mm256_setzero_ps() }
            fn splat(x: f32) -> __m256 { _mm256_set1_ps(x) }
            fn load(p: *const f32) -> __m256 { _mm256_loadu_ps(p) }
            fn load_f16(p: *const half::f16) -> __m256 {
                _mm256_cvtph_ps(_mm_loadu_si128(p.cast()))
            }
            fn store(p: *mut f32, v: __m256) { _mm256_storeu_ps(p, v) }
            fn add(a: __m256, b: __m256) -> __m256 { _mm256_add_ps(a, b) }
            fn mul(a: __m256, b: __m256) -> __m256 { _mm256_mul_ps(a, b) }
            fn fma(a: __m256, b: __m256, c: __m256) -> __m256 { _mm256_fmadd_ps(a, b, c) }
            fn hsum(v: __m256) -> f32 { hsum_ps(v) }
        }
    }

    impl F32Math for Avx2 {
        const MASKED_TAIL: bool = false;
        lane_methods! {
            fn sub(a: __m256, b: __m256) -> __m256 { _mm256_sub_ps(a, b) }
            fn div(a: __m256, b: __m256) -> __m256 { _mm256_div_ps(a, b) }
            // `max`/`min` return their second operand when either is NaN.
            fn max(a: __m256, b: __m256) -> __m256 { _mm256_max_ps(a, b) }
            fn min(a: __m256, b: __m256) -> __m256 { _mm256_min_ps(a, b) }
            fn fnma(a: __m256, b: __m256, c: __m256) -> __m256 { _mm256_fnmadd_ps(a, b, c) }
            fn fms_products(a: __m256, b: __m256, c: __m256, d: __m256) -> __m256 {
                _mm256_fmsub_ps(a, b, _mm256_mul_ps(c, d))
            }
            fn neg(a: __m256) -> __m256 { _mm256_xor_ps(a, _mm256_set1_ps(-0.0)) }
            fn round_even(a: __m256) -> __m256 {
                _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(a)
            }
            fn pow2(n: __m256) -> __m256 {
                _mm256_castsi256_ps(_mm256_slli_epi32::<23>(_mm256_add_epi32(
                    _mm256_cvtps_epi32(n),
                    _mm256_set1_epi32(127),
                )))
            }
            fn zero_where_lt(x: __m256, lo: __m256, e: __m256) -> __m256 {
                _mm256_andnot_ps(_mm256_cmp_ps::<_CMP_LT_OQ>(x, lo), e)
            }
            fn inf_where_gt(x: __m256, hi: __m256, e: __m256) -> __m256 {
                let over = _mm256_cmp_ps::<_CMP_GT_OQ>(x, hi);
                _mm256_blendv_ps(e, _mm256_set1_ps(f32::INFINITY), over)
            }
            fn hmax(v: __m256) -> f32 {
                let m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
                let m = _mm_max_ps(m, _mm_movehl_ps(m, m));
                _mm_cvtss_f32(_mm_max_ss(m, _mm_movehdup_ps(m)))
            }
            fn keep_first(v: __m256, live: usize) -> __m256 {
                let lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
                let live = _mm256_cmpgt_epi32(_mm256_set1_epi32(live.min(8) as i32), lane);
                _mm256_and_ps(v, _mm256_castsi256_ps(live))
            }
            fn load_partial(p: *const f32, len: usize, fill: __m256) -> __m256 {
                let mut buf = [0f32; 8];
                _mm256_storeu_ps(buf.as_mut_ptr(), fill);
                copy_partial(p, buf.as_mut_ptr(), len);
                _mm256_loadu_ps(buf.as_ptr())
            }
            fn store_partial(p: *mut f32, len: usize, v: __m256) {
                let mut buf = [0f32; 8];
                _mm256_storeu_ps(buf.as_mut_ptr(), v);
                copy_partial(buf.as_ptr(), p, len)
            }
        }
    }

    /// AVX-512 F, 16 lanes; row tails through masked loads and stores (masked-off lanes are
    /// neither read nor written, so they cannot fault).
    pub(crate) struct Avx512;

    /// The first `len` lanes (`len <= 16`).
    #[inline(always)]
    fn tail_mask(len: usize) -> __mmask16 {
        debug_assert!(len <= 16);
        ((1u32 << len) - 1) as __mmask16
    }

    impl F32Lanes for Avx512 {
        type V = __m512;
        const LANES: usize = 16;
        lane_methods! {
            fn zero() -> __m512 { _mm512_setzero_ps() }
            fn splat(x: f32) -> __m512 { _mm512_set1_ps(x) }
            fn load(p: *const f32) -> __m512 { _mm512_loadu_ps(p) }
            fn load_f16(p: *const half::f16) -> __m512 {
                _mm512_cvtph_ps(_mm256_loadu_si256(p.cast()))
            }
            fn store(p: *mut f32, v: __m512) { _mm512_storeu_ps(p, v) }
            fn add(a: __m512, b: __m512) -> __m512 { _mm512_add_ps(a, b) }
            fn mul(a: __m512, b: __m512) -> __m512 { _mm512_mul_ps(a, b) }
            fn fma(a: __m512, b: __m512, c: __m512) -> __m512 { _mm512_fmadd_ps(a, b, c) }
            fn hsum(v: __m512) -> f32 { _mm512_reduce_add_ps(v) }
        }
    }

    impl F32Math for Avx512 {
        const MASKED_TAIL: bool = true;
        lane_methods! {
            fn sub(a: __m512, b: __m512) -> __m512 { _mm512_sub_ps(a, b) }
            fn div(a: __m512, b: __m512) -> __m512 { _mm512_div_ps(a, b) }
            // With `b` as the second operand, NaN lanes of `b` stay NaN.
            fn max(a: __m512, b: __m512) -> __m512 { _mm512_max_ps(a, b) }
            fn min(a: __m512, b: __m512) -> __m512 { _mm512_min_ps(a, b) }
            fn fnma(a: __m512, b: __m512, c: __m512) -> __m512 { _mm512_fnmadd_ps(a, b, c) }
            fn fms_products(a: __m512, b: __m512, c: __m512, d: __m512) -> __m512 {
                _mm512_fmsub_ps(a, b, _mm512_mul_ps(c, d))
            }
            fn neg(a: __m512) -> __m512 {
                let sign = _mm512_set1_epi32(i32::MIN);
                _mm512_castsi512_ps(_mm512_xor_si512(_mm512_castps_si512(a), sign))
            }
            fn round_even(a: __m512) -> __m512 {
                _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(a)
            }
            fn pow2(n: __m512) -> __m512 {
                _mm512_castsi512_ps(_mm512_slli_epi32::<23>(_mm512_add_epi32(
                    _mm512_cvtps_epi32(n),
                    _mm512_set1_epi32(127),
                )))
            }
            fn zero_where_lt(x: __m512, lo: __m512, e: __m512) -> __m512 {
                let under = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(x, lo);
                _mm512_mask_blend_ps(under, e, _mm512_setzero_ps())
            }
            fn inf_where_gt(x: __m512, hi: __m512, e: __m512) -> __m512 {
                _mm512_mask_blend_ps(
                    _mm512_cmp_ps_mask::<_CMP_GT_OQ>(x, hi),
                    e,
                    _mm512_set1_ps(f32::INFINITY),
                )
            }
            fn hmax(v: __m512) -> f32 { _mm512_reduce_max_ps(v) }
            fn keep_first(v: __m512, live: usize) -> __m512 {
                _mm512_maskz_mov_ps(tail_mask(live.min(16)), v)
            }
            fn load_partial(p: *const f32, len: usize, fill: __m512) -> __m512 {
                _mm512_mask_loadu_ps(fill, tail_mask(len), p)
            }
            fn store_partial(p: *mut f32, len: usize, v: __m512) {
                _mm512_mask_storeu_ps(p, tail_mask(len), v)
            }
        }
    }
}

#[cfg(target_arch = "aarch64")]
pub(crate) use aarch64::{Neon, NeonPair};

#[cfg(target_arch = "aarch64")]
mod aarch64 {
    use super::{copy_partial, F32Lanes, F32Math};
    use std::arch::aarch64::*;

    /// NEON, 4 lanes.
    pub(crate) struct Neon;

    impl F32Lanes for Neon {
        type V = float32x4_t;
        const LANES: usize = 4;
        lane_methods! {
            fn zero() -> float32x4_t { vdupq_n_f32(0.0) }
            fn splat(x: f32) -> float32x4_t { vdupq_n_f32(x) }
            fn load(p: *const f32) -> float32x4_t { vld1q_f32(p) }
            fn load_f16(p: *const half::f16) -> float32x4_t {
                vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(p.cast())))
            }
            fn store(p: *mut f32, v: float32x4_t) { vst1q_f32(p, v) }
            fn add(a: float32x4_t, b: float32x4_t) -> float32x4_t { vaddq_f32(a, b) }
            fn mul(a: float32x4_t, b: float32x4_t) -> float32x4_t { vmulq_f32(a, b) }
            fn fma(a: float32x4_t, b: float32x4_t, c: float32x4_t) -> float32x4_t {
                vfmaq_f32(c, a, b)
            }
            fn hsum(v: float32x4_t) -> f32 { vaddvq_f32(v) }
        }
    }

    impl F32Math for Neon {
        const MASKED_TAIL: bool = false;
        lane_methods! {
            fn sub(a: float32x4_t, b: float32x4_t) -> float32x4_t { vsubq_f32(a, b) }
            fn div(a: float32x4_t, b: float32x4_t) -> float32x4_t { vdivq_f32(a, b) }
            // FMAX/FMIN return NaN when either operand is.
            fn max(a: float32x4_t, b: float32x4_t) -> float32x4_t { vmaxq_f32(a, b) }
            fn min(a: float32x4_t, b: float32x4_t) -> float32x4_t { vminq_f32(a, b) }
            fn fnma(a: float32x4_t, b: float32x4_t, c: float32x4_t) -> float32x4_t {
                vfmsq_f32(c, a, b)
            }
            fn fms_products(a: Self::V, b: Self::V, c: Self::V, d: Self::V) -> Self::V {
                vfmsq_f32(vmulq_f32(a, b), c, d)
            }
            fn neg(a: float32x4_t) -> float32x4_t { vnegq_f32(a) }
            fn round_even(a: float32x4_t) -> float32x4_t { vrndnq_f32(a) }
            fn pow2(n: float32x4_t) -> float32x4_t {
                let biased = vaddq_s32(vcvtq_s32_f32(n), vdupq_n_s32(127));
                vreinterpretq_f32_s32(vshlq_n_s32::<23>(biased))
            }
            fn zero_where_lt(x: float32x4_t, lo: float32x4_t, e: float32x4_t) -> float32x4_t {
                vbslq_f32(vcltq_f32(x, lo), vdupq_n_f32(0.0), e)
            }
            fn inf_where_gt(x: float32x4_t, hi: float32x4_t, e: float32x4_t) -> float32x4_t {
                vbslq_f32(vcgtq_f32(x, hi), vdupq_n_f32(f32::INFINITY), e)
            }
            fn hmax(v: float32x4_t) -> f32 { vmaxvq_f32(v) }
            fn keep_first(v: float32x4_t, live: usize) -> float32x4_t {
                let lane_ids: [u32; 4] = [0, 1, 2, 3];
                let live_v = vdupq_n_u32(live.min(4) as u32);
                let live = vcltq_u32(vld1q_u32(lane_ids.as_ptr()), live_v);
                vreinterpretq_f32_u32(vandq_u32(vreinterpretq_u32_f32(v), live))
            }
            fn load_partial(p: *const f32, len: usize, fill: float32x4_t) -> float32x4_t {
                let mut buf = [0f32; 4];
                vst1q_f32(buf.as_mut_ptr(), fill);
                copy_partial(p, buf.as_mut_ptr(), len);
                vld1q_f32(buf.as_ptr())
            }
            fn store_partial(p: *mut f32, len: usize, v: float32x4_t) {
                let mut buf = [0f32; 4];
                vst1q_f32(buf.as_mut_ptr(), v);
                copy_partial(buf.as_ptr(), p, len)
            }
        }
    }

    /// Two NEON registers as one 8-lane vector: attention's dot products keep two
    /// accumulators per row, lanes `i..i+4` and `i+4..i+8`, summed as `(lo + hi)` at the end.
    pub(crate) struct NeonPair;

    impl F32Lanes for NeonPair {
        type V = (float32x4_t, float32x4_t);
        const LANES: usize = 8;
        lane_methods! {
            fn zero() -> Self::V { (vdupq_n_f32(0.0), vdupq_n_f32(0.0)) }
            fn splat(x: f32) -> Self::V { (vdupq_n_f32(x), vdupq_n_f32(x)) }
            fn load(p: *const f32) -> Self::V { (vld1q_f32(p), vld1q_f32(p.add(4))) }
            fn load_f16(p: *const half::f16) -> Self::V {
                (Neon::load_f16(p), Neon::load_f16(p.add(4)))
            }
            fn store(p: *mut f32, v: Self::V) { vst1q_f32(p, v.0); vst1q_f32(p.add(4), v.1) }
            fn add(a: Self::V, b: Self::V) -> Self::V { (vaddq_f32(a.0, b.0), vaddq_f32(a.1, b.1)) }
            fn mul(a: Self::V, b: Self::V) -> Self::V { (vmulq_f32(a.0, b.0), vmulq_f32(a.1, b.1)) }
            fn fma(a: Self::V, b: Self::V, c: Self::V) -> Self::V {
                (vfmaq_f32(c.0, a.0, b.0), vfmaq_f32(c.1, a.1, b.1))
            }
            fn hsum(v: Self::V) -> f32 { vaddvq_f32(vaddq_f32(v.0, v.1)) }
        }
    }
}
