//! AVX2 + FMA + F16C Q4_K kernels.
//!
//! Both designs walk the weight matrix once per group of up to [`ACT_TILE`] activation rows:
//! a weight block is unpacked (scales, mins, nibbles) once and applied to every activation row
//! of the group, so prefill does not redo the unpacking per token.
//!
//! - `f32`: each weight is `fmsub(d*sc, q, dmin*m)`, the same single rounding of the same exact
//!   operands as scalar's `d*sc*q - dmin*m`, so the dequantized weights match scalar exactly;
//!   only the summation order differs.
//! - `q8k`: `maddubs` (nibble x i8) then `madd` with the 6-bit scale gives each block's
//!   `sum_j sc_j * dot_j`; the mins term comes from `bsums`. Both reduce to the i32 values of
//!   scalar's [`block_sums`](super::scalar::block_sums) (integer math is exact and no step
//!   overflows). Four (block, row) pairs share one horizontal reduction, and their f32 terms are
//!   computed together with F16C with the same operations as scalar's
//!   [`combine`](super::scalar::combine), then added in block order: bit-exact with scalar.

use super::x86::{combine_terms, d_dmin_bits, reduce8, scales_mins_u64, SLOTS};
use crate::matmul::driver::{matmul_entries, row_dots};
use crate::matmul::kquant::avx2::{row_tile_f32, Avx2BlockF32};
use crate::quant::{BlockQ4K, BlockQ8K, QK_K};
use crate::simd::x86::f16_to_f32;
use std::arch::x86_64::*;

matmul_entries! {
    "avx2,fma,f16c";
    matmul_f32(f32, BlockQ4K) => F32Dots;
    matmul_q8k(BlockQ8K, BlockQ4K) => Q8kDots;
}

row_dots!(F32Dots: BlockQ4K, f32, QK_K, 1, <R> |w_row, x_rows| match R {
    // Enough independent FMA chains to cover the latency, few enough not to spill the 16
    // ymm registers (8 chains for one row measured slower).
    1 | 2 => row_tile_f32::<_, R, 4>(x_rows, w_row),
    _ => row_tile_f32::<_, R, 2>(x_rows, w_row),
});
row_dots!(Q8kDots: BlockQ4K, BlockQ8K, QK_K, QK_K, <R> |w_row, x_rows| match R {
    // `B = SLOTS / R` blocks share one reduction.
    1 => row_tile_q8k::<R, 4>(x_rows, w_row),
    2 => row_tile_q8k::<R, 2>(x_rows, w_row),
    _ => row_tile_q8k::<R, 1>(x_rows, w_row),
});

impl Avx2BlockF32 for BlockQ4K {
    #[inline(always)]
    unsafe fn block_f32<const R: usize, const P: usize>(
        &self,
        xs: &[*const f32; R],
        acc: &mut [[__m256; P]; R],
    ) {
        // SAFETY: the trait's contract.
        unsafe { block_f32::<R, P>(self, xs, acc) }
    }
}

/// Adds one weight block times `R` activation blocks (`xs`, 256 values each) into `acc`.
#[inline(always)]
unsafe fn block_f32<const R: usize, const P: usize>(
    block: &BlockQ4K,
    xs: &[*const f32; R],
    acc: &mut [[__m256; P]; R],
) {
    // SAFETY: this fn's contract: the caller runs with the target features enabled,
    // and every pointer below stays inside the blocks and rows it was given.
    unsafe {
        let (sc8, m8) = scales_mins_u64(&block.scales);
        // d*sc and dmin*m are exact in f32 (11-bit times 6-bit significands).
        let d_sc = _mm256_mul_ps(_mm256_set1_ps(f16_to_f32(block.d)), u8x8_to_ps(sc8));
        let dmin_m = _mm256_mul_ps(_mm256_set1_ps(f16_to_f32(block.dmin)), u8x8_to_ps(m8));
        let low4 = _mm256_set1_epi32(0xF);
        let qs = block.qs.as_ptr();
        for c in 0..4 {
            let j_lo = _mm256_set1_epi32(2 * c as i32);
            let j_hi = _mm256_set1_epi32(2 * c as i32 + 1);
            let scale_lo = _mm256_permutevar8x32_ps(d_sc, j_lo);
            let scale_hi = _mm256_permutevar8x32_ps(d_sc, j_hi);
            let min_lo = _mm256_permutevar8x32_ps(dmin_m, j_lo);
            let min_hi = _mm256_permutevar8x32_ps(dmin_m, j_hi);
            for v in 0..4 {
                // SAFETY: `32 * c + 8 * v + 8 <= 128 == qs.len()`.
                let bytes = _mm256_cvtepu8_epi32(_mm_loadl_epi64(qs.add(32 * c + 8 * v).cast()));
                let q_lo = _mm256_cvtepi32_ps(_mm256_and_si256(bytes, low4));
                let q_hi = _mm256_cvtepi32_ps(_mm256_srli_epi32::<4>(bytes));
                let w_lo = _mm256_fmsub_ps(scale_lo, q_lo, min_lo);
                let w_hi = _mm256_fmsub_ps(scale_hi, q_hi, min_hi);
                for i in 0..R {
                    // SAFETY: `64 * c + 32 + 8 * v + 8 <= 256`, inside the activation block.
                    let x_lo = _mm256_loadu_ps(xs[i].add(64 * c + 8 * v));
                    let x_hi = _mm256_loadu_ps(xs[i].add(64 * c + 32 + 8 * v));
                    let (a_lo, a_hi) = ((2 * v) % P, (2 * v + 1) % P);
                    acc[i][a_lo] = _mm256_fmadd_ps(w_lo, x_lo, acc[i][a_lo]);
                    acc[i][a_hi] = _mm256_fmadd_ps(w_hi, x_hi, acc[i][a_hi]);
                }
            }
        }
    }
}

/// Weight row `wr` times the `R` Q8_K activation rows `x_rows`; `B` blocks
/// (`B * R <= SLOTS`) share one reduction.
#[inline(always)]
unsafe fn row_tile_q8k<const R: usize, const B: usize>(
    x_rows: &[BlockQ8K],
    wr: &[BlockQ4K],
) -> [f32; R] {
    // SAFETY: this fn's contract: the caller runs with the target features enabled,
    // and every pointer below stays inside the blocks and rows it was given.
    unsafe {
        let nb = wr.len();
        let mut acc = [0f32; R];
        let mut b = 0;
        while b + B <= nb {
            accumulate_q8k::<R>(&mut acc, &wr[b..b + B], x_rows, nb, b);
            b += B;
        }
        if b < nb {
            accumulate_q8k::<R>(&mut acc, &wr[b..], x_rows, nb, b);
        }
        acc
    }
}

/// Adds weight blocks `wbs` (blocks `b0..` of one row) times the matching blocks of `R`
/// activation rows to `acc`. Slot `bi * R + i` holds block `bi` with activation row `i`, so
/// `wbs.len() * R <= SLOTS`, and every row's terms are added in block order.
#[inline(always)]
unsafe fn accumulate_q8k<const R: usize>(
    acc: &mut [f32; R],
    wbs: &[BlockQ4K],
    x_rows: &[BlockQ8K],
    nb: usize,
    b0: usize,
) {
    // SAFETY: this fn's contract: the caller runs with the target features enabled,
    // and every pointer below stays inside the blocks and rows it was given.
    unsafe {
        debug_assert!(wbs.len() * R <= SLOTS);
        let mut sums = [_mm256_setzero_si256(); 2 * SLOTS];
        let mut d_dmin = [0i32; SLOTS];
        let mut xd = [0f32; SLOTS];
        for (bi, wb) in wbs.iter().enumerate() {
            let xs: [&BlockQ8K; R] = std::array::from_fn(|i| &x_rows[i * nb + b0 + bi]);
            let block = block_sums::<R>(wb, &xs);
            for i in 0..R {
                let s = bi * R + i;
                (sums[2 * s], sums[2 * s + 1]) = block[i];
                d_dmin[s] = d_dmin_bits(wb);
                xd[s] = xs[i].d;
            }
        }
        let terms = combine_terms(d_dmin, xd, reduce8(sums));
        for bi in 0..wbs.len() {
            for (i, a) in acc.iter_mut().enumerate() {
                *a += terms[bi * R + i];
            }
        }
    }
}

/// `(sum_j sc_j * dot_j, sum_j m_j * bsum_j)` of one weight block with each of `R` Q8_K blocks,
/// spread over eight i32 lanes each: their lane sums are the integers of scalar's `block_sums`.
/// Bounds: `maddubs` pairs are at most `2*15*128 = 3840` (no i16 saturation), `madd` with a
/// 6-bit scale at most `2*63*3840`, so no lane or lane sum leaves i32.
#[inline(always)]
unsafe fn block_sums<const R: usize>(w: &BlockQ4K, xs: &[&BlockQ8K; R]) -> [(__m256i, __m256i); R] {
    // SAFETY: this fn's contract: the caller runs with the target features enabled,
    // and every pointer below stays inside the blocks and rows it was given.
    unsafe {
        let (sc8, m8) = scales_mins_u64(&w.scales);
        let sc16 = _mm256_broadcastsi128_si256(_mm_cvtepu8_epi16(_mm_cvtsi64_si128(sc8 as i64)));
        let m16 = _mm_cvtepu8_epi16(_mm_cvtsi64_si128(m8 as i64));
        // Each min twice, to meet the two bsums (16 values each) of its 32-value sub-block.
        let m16_pairs =
            _mm256_set_m128i(_mm_unpackhi_epi16(m16, m16), _mm_unpacklo_epi16(m16, m16));
        let low4 = _mm256_set1_epi8(0xF);
        let qs = w.qs.as_ptr();
        let mut sumi = [_mm256_setzero_si256(); R];
        for c in 0..4 {
            // SAFETY: `32 * c + 32 <= 128 == qs.len()`.
            let q = _mm256_loadu_si256(qs.add(32 * c).cast());
            let q_lo = _mm256_and_si256(q, low4);
            let q_hi = _mm256_and_si256(_mm256_srli_epi16::<4>(q), low4);
            let scale_lo = _mm256_shuffle_epi8(sc16, i16_broadcast_mask(2 * c));
            let scale_hi = _mm256_shuffle_epi8(sc16, i16_broadcast_mask(2 * c + 1));
            for i in 0..R {
                let xqs = xs[i].qs.as_ptr();
                // SAFETY: `64 * c + 64 <= 256 == qs.len()` of the Q8_K block.
                let x_lo = _mm256_loadu_si256(xqs.add(64 * c).cast());
                let x_hi = _mm256_loadu_si256(xqs.add(64 * c + 32).cast());
                let p_lo = _mm256_madd_epi16(_mm256_maddubs_epi16(q_lo, x_lo), scale_lo);
                let p_hi = _mm256_madd_epi16(_mm256_maddubs_epi16(q_hi, x_hi), scale_hi);
                sumi[i] = _mm256_add_epi32(sumi[i], _mm256_add_epi32(p_lo, p_hi));
            }
        }
        // A loop, not `array::from_fn`: a closure would not be compiled with the entry's features.
        let mut sums = [(_mm256_setzero_si256(), _mm256_setzero_si256()); R];
        for i in 0..R {
            // SAFETY: `bsums` is 16 i16 = 32 bytes.
            let bsums = _mm256_loadu_si256(xs[i].bsums.as_ptr().cast());
            sums[i] = (sumi[i], _mm256_madd_epi16(bsums, m16_pairs));
        }
        sums
    }
}

/// The eight bytes of `v` as eight f32 lanes.
#[inline(always)]
unsafe fn u8x8_to_ps(v: u64) -> __m256 {
    // SAFETY: this fn's contract: the caller runs with the target features enabled,
    // and every pointer below stays inside the blocks and rows it was given.
    unsafe { _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_cvtsi64_si128(v as i64))) }
}

/// A `pshufb` mask that copies i16 lane `j` (0..8) of each 128-bit half to all its lanes.
#[inline(always)]
unsafe fn i16_broadcast_mask(j: usize) -> __m256i {
    // SAFETY: this fn's contract: the caller runs with the target features enabled,
    // and every pointer below stays inside the blocks and rows it was given.
    unsafe {
        let lo = 2 * j as i16;
        _mm256_set1_epi16(((lo + 1) << 8) | lo)
    }
}
