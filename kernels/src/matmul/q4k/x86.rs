//! The x86 pieces of the Q4_K kernels that AVX2 and AVX-512 share: the scale/min bytes as
//! words, and the q8k tail (one horizontal reduction for four (block, row) slots, the F16C
//! combine terms with exactly scalar's operations). Callers run with AVX2 + FMA + F16C enabled;
//! every function is `#[inline(always)]`, so it compiles inside the caller's entry function.

use crate::quant::{q4k_unpack_scales_mins, BlockQ4K};
use std::arch::x86_64::*;

/// Slots per horizontal reduction: four `(sumi, summ)` pairs fill the eight lanes of one
/// [`reduce8`].
pub(super) const SLOTS: usize = 4;

/// The scales and mins of [`q4k_unpack_scales_mins`] as two `u64`s (sub-block `j` in byte `j`).
#[inline(always)]
pub(super) fn scales_mins_u64(packed: &[u8; 12]) -> (u64, u64) {
    let (sc, m) = q4k_unpack_scales_mins(packed);
    (u64::from_le_bytes(sc), u64::from_le_bytes(m))
}

/// Horizontal sums of eight 8-lane vectors at once: lane `j` of the result is the sum of `v[j]`
/// (wrapping adds; exact because the true sums fit in i32).
///
/// # Safety
/// The caller runs with AVX2 enabled.
#[inline(always)]
pub(super) unsafe fn reduce8(v: [__m256i; 8]) -> __m256i {
    // Plain functions, not closures: a closure would not inherit the entry's target features.
    #[inline(always)]
    unsafe fn pair(a: __m256i, b: __m256i) -> __m256i {
        // SAFETY: register-only AVX2 intrinsics, per the caller's contract.
        unsafe { _mm256_add_epi32(_mm256_unpacklo_epi32(a, b), _mm256_unpackhi_epi32(a, b)) }
    }
    #[inline(always)]
    unsafe fn quad(a: __m256i, b: __m256i) -> __m256i {
        // SAFETY: as above.
        unsafe { _mm256_add_epi32(_mm256_unpacklo_epi64(a, b), _mm256_unpackhi_epi64(a, b)) }
    }
    // SAFETY: as above.
    unsafe {
        let q0 = quad(pair(v[0], v[1]), pair(v[2], v[3]));
        let q1 = quad(pair(v[4], v[5]), pair(v[6], v[7]));
        _mm256_add_epi32(
            _mm256_permute2x128_si256::<0x20>(q0, q1),
            _mm256_permute2x128_si256::<0x31>(q0, q1),
        )
    }
}

/// A block's `d` and `dmin` as f16 bits, `d` in the low half (the order `vcvtph2ps` expects).
#[inline(always)]
pub(super) fn d_dmin_bits(w: &BlockQ4K) -> i32 {
    (w.d.to_bits() as u32 | (w.dmin.to_bits() as u32) << 16) as i32
}

/// The four slots' terms `d*sumi - dmin*summ` of scalar's [`combine`](super::scalar::combine), from
/// `sums = [sumi0, summ0, sumi1, summ1, ..]`, computed with exactly its operations: `f16 -> f32`
/// (exact in F16C as in `half`), `* xd`, `i32 as f32` (`vcvtdq2ps` rounds to nearest like `as`),
/// the two products and their difference, each rounded once (intrinsics are never contracted to
/// FMA). The caller adds each term to its accumulator in block order, the remaining
/// `acc + term` of `combine`.
///
/// # Safety
/// The caller runs with AVX2 and F16C enabled.
#[inline(always)]
pub(super) unsafe fn combine_terms(
    d_dmin: [i32; SLOTS],
    xd: [f32; SLOTS],
    sums: __m256i,
) -> [f32; SLOTS] {
    // SAFETY: register-only intrinsics and a store into a local array; AVX2 + F16C per the
    // caller's contract.
    unsafe {
        let d_dmin = _mm256_cvtph_ps(_mm_setr_epi32(d_dmin[0], d_dmin[1], d_dmin[2], d_dmin[3]));
        let xd = _mm_setr_ps(xd[0], xd[1], xd[2], xd[3]);
        let xd_pairs = _mm256_set_m128(_mm_unpackhi_ps(xd, xd), _mm_unpacklo_ps(xd, xd));
        let products = _mm256_mul_ps(_mm256_mul_ps(d_dmin, xd_pairs), _mm256_cvtepi32_ps(sums));
        let terms = _mm256_sub_ps(products, _mm256_movehdup_ps(products));
        let mut lanes = [0f32; 8];
        _mm256_storeu_ps(lanes.as_mut_ptr(), terms);
        [lanes[0], lanes[2], lanes[4], lanes[6]]
    }
}
