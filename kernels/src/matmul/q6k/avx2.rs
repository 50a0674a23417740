//! AVX2 + FMA + F16C Q6_K kernels.
//!
//! Both designs walk the weight matrix once per group of up to [`ACT_TILE`] activation rows:
//! a weight block is unpacked (6-bit values, scales) once and applied to every activation row of
//! the group, so prefill does not redo the unpacking per token.
//!
//! - `f32`: each weight is `fmadd(d*sc, q, -32*d*sc)`. `d*sc` (11+8 bits), `-32*d*sc` and the
//!   value `d*sc*(q-32)` (at most 24 bits) are all exact in f32, so the weights equal scalar's
//!   exactly; only the summation order differs.
//! - `q8k`: `maddubs` of the unsigned values `q` (0..63) with the i8 activations, `madd` with the
//!   signed group scale, minus `32 * sum_g sc_g * bsums_g` (group `g` of the scales is exactly
//!   the 16 values of `bsums[g]`). That is scalar's [`block_sum`](scalar::block_sum) as an exact
//!   integer (no step overflows, see [`block_sums`]); it goes through scalar's
//!   [`combine`](scalar::combine) in block order: bit-exact with scalar.

use super::scalar;
use crate::matmul::driver::{matmul_entries, row_dots};
use crate::matmul::kquant::avx2::{row_tile_f32, Avx2BlockF32};
use crate::quant::{BlockQ6K, BlockQ8K, QK_K};
use crate::simd::x86::{f16_to_f32, hsum_epi32, prefetch_ahead};
use std::arch::x86_64::*;

matmul_entries! {
    "avx2,fma,f16c";
    matmul_f32(f32, BlockQ6K) => F32Dots;
    matmul_q8k(BlockQ8K, BlockQ6K) => Q8kDots;
}

row_dots!(F32Dots: BlockQ6K, f32, QK_K, 1, <R> |w_row, x_rows| match R {
    // Enough independent FMA chains to cover the latency, few enough not to spill the 16
    // ymm registers (8 chains for one row measured slower).
    1 | 2 => row_tile_f32::<_, R, 4>(x_rows, w_row),
    _ => row_tile_f32::<_, R, 2>(x_rows, w_row),
});
row_dots!(Q8kDots: BlockQ6K, BlockQ8K, QK_K, QK_K, <R> |w_row, x_rows| row_tile_q8k::<R>(x_rows, w_row));

impl Avx2BlockF32 for BlockQ6K {
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
///
/// Half `h` holds values `128h..128h+128` as four parts `p` of 32; value `l` of part `p` takes
/// its low 4 bits from `ql[64h + 32(p%2) + l]` (low nibble for p < 2, high for p >= 2), its high
/// 2 bits from bits `2p..2p+2` of `qh[32h + l]`, and its scale from `scales[8h + 2p + l/16]`.
#[inline(always)]
unsafe fn block_f32<const R: usize, const P: usize>(
    block: &BlockQ6K,
    xs: &[*const f32; R],
    acc: &mut [[__m256; P]; R],
) {
    // SAFETY: this fn's contract: the caller runs with the target features enabled,
    // and every pointer below stays inside the blocks and rows it was given.
    unsafe {
        let d = _mm256_set1_ps(f16_to_f32(block.d));
        let minus32 = _mm256_set1_ps(-32.0);
        let low4 = _mm256_set1_epi32(0xF);
        let bits45 = _mm256_set1_epi32(0x30);
        let mut chain = 0;
        for h in 0..2 {
            // SAFETY: `8h + 8 <= 16 == scales.len()`.
            let sc = _mm256_cvtepi8_epi32(_mm_loadl_epi64(block.scales.as_ptr().add(8 * h).cast()));
            let d_sc = _mm256_mul_ps(d, _mm256_cvtepi32_ps(sc));
            let ql = block.ql.as_ptr().add(64 * h);
            let qh = block.qh.as_ptr().add(32 * h);
            for v in 0..4 {
                // SAFETY: `64h + 32 + 8v + 8 <= 128 == ql.len()`, `32h + 8v + 8 <= 64 == qh.len()`.
                let ql_a = _mm256_cvtepu8_epi32(_mm_loadl_epi64(ql.add(8 * v).cast()));
                let ql_b = _mm256_cvtepu8_epi32(_mm_loadl_epi64(ql.add(32 + 8 * v).cast()));
                let hi = _mm256_cvtepu8_epi32(_mm_loadl_epi64(qh.add(8 * v).cast()));
                let q = [
                    _mm256_or_si256(
                        _mm256_and_si256(ql_a, low4),
                        _mm256_and_si256(_mm256_slli_epi32::<4>(hi), bits45),
                    ),
                    _mm256_or_si256(
                        _mm256_and_si256(ql_b, low4),
                        _mm256_and_si256(_mm256_slli_epi32::<2>(hi), bits45),
                    ),
                    _mm256_or_si256(_mm256_srli_epi32::<4>(ql_a), _mm256_and_si256(hi, bits45)),
                    _mm256_or_si256(
                        _mm256_srli_epi32::<4>(ql_b),
                        _mm256_and_si256(_mm256_srli_epi32::<2>(hi), bits45),
                    ),
                ];
                for (p, &qp) in q.iter().enumerate() {
                    let scale =
                        _mm256_permutevar8x32_ps(d_sc, _mm256_set1_epi32((2 * p + v / 2) as i32));
                    let w = _mm256_fmadd_ps(
                        scale,
                        _mm256_cvtepi32_ps(qp),
                        _mm256_mul_ps(scale, minus32),
                    );
                    let a = chain % P;
                    chain += 1;
                    for i in 0..R {
                        // SAFETY: `128h + 32p + 8v + 8 <= 256`, inside the activation block.
                        let xv = _mm256_loadu_ps(xs[i].add(128 * h + 32 * p + 8 * v));
                        acc[i][a] = _mm256_fmadd_ps(w, xv, acc[i][a]);
                    }
                }
            }
        }
    }
}

/// Weight row `wr` times the `R` Q8_K activation rows `x_rows`.
#[inline(always)]
unsafe fn row_tile_q8k<const R: usize>(x_rows: &[BlockQ8K], wr: &[BlockQ6K]) -> [f32; R] {
    // SAFETY: this fn's contract: the caller runs with the target features enabled,
    // and every pointer below stays inside the blocks and rows it was given.
    unsafe {
        let nb = wr.len();
        let mut acc = [0f32; R];
        for (b, wb) in wr.iter().enumerate() {
            if R == 1 {
                prefetch_ahead((wb as *const BlockQ6K).cast(), size_of::<BlockQ6K>());
            }
            let xs: [&BlockQ8K; R] = std::array::from_fn(|i| &x_rows[i * nb + b]);
            let sums = block_sums::<R>(wb, &xs);
            // The scale by F16C (exact, as `f16::to_f32`, which checks the CPU at run time on
            // every call), then `scalar::combine`'s expression.
            let d = _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(i32::from(wb.d.to_bits()))));
            for i in 0..R {
                acc[i] = scalar::combine_f32(acc[i], d, xs[i].d, sums[i]);
            }
        }
        acc
    }
}

/// Scalar's `block_sum` of one weight block with each of `R` Q8_K blocks, as
/// `sum_g sc_g * sum_l q_l x_l - 32 * sum_g sc_g * bsums_g`.
///
/// No step overflows: `maddubs` pairs are within `2*63*128 = 16128 < 2^15`, `madd` with an i8
/// scale within `2*128*16128`, each i32 lane sums 8 of those (`< 2^26`); the correction lanes are
/// within `32 * 2*128*2048 = 2^24`.
#[inline(always)]
unsafe fn block_sums<const R: usize>(w: &BlockQ6K, xs: &[&BlockQ8K; R]) -> [i32; R] {
    // SAFETY: this fn's contract: the caller runs with the target features enabled,
    // and every pointer below stays inside the blocks and rows it was given.
    unsafe {
        let low4 = _mm256_set1_epi8(0xF);
        let bits45 = _mm256_set1_epi8(0x30);
        // SAFETY: `scales` is 16 bytes.
        let scales = _mm_loadu_si128(w.scales.as_ptr().cast());
        let mut sumi = [_mm256_setzero_si256(); R];
        for h in 0..2 {
            // The 8 scales of half `h` as i16, in both 128-bit halves.
            let sc16 = _mm256_broadcastsi128_si256(_mm_cvtepi8_epi16(if h == 0 {
                scales
            } else {
                _mm_unpackhi_epi64(scales, scales)
            }));
            // SAFETY: `64h + 64 <= 128 == ql.len()`, `32h + 32 <= 64 == qh.len()`.
            let ql_a = _mm256_loadu_si256(w.ql.as_ptr().add(64 * h).cast());
            let ql_b = _mm256_loadu_si256(w.ql.as_ptr().add(64 * h + 32).cast());
            let hi = _mm256_loadu_si256(w.qh.as_ptr().add(32 * h).cast());
            // 16-bit shifts move bits across bytes, but the masks keep only bits that stayed.
            let q = [
                _mm256_or_si256(
                    _mm256_and_si256(ql_a, low4),
                    _mm256_and_si256(_mm256_slli_epi16::<4>(hi), bits45),
                ),
                _mm256_or_si256(
                    _mm256_and_si256(ql_b, low4),
                    _mm256_and_si256(_mm256_slli_epi16::<2>(hi), bits45),
                ),
                _mm256_or_si256(
                    _mm256_and_si256(_mm256_srli_epi16::<4>(ql_a), low4),
                    _mm256_and_si256(hi, bits45),
                ),
                _mm256_or_si256(
                    _mm256_and_si256(_mm256_srli_epi16::<4>(ql_b), low4),
                    _mm256_and_si256(_mm256_srli_epi16::<2>(hi), bits45),
                ),
            ];
            for (p, &qp) in q.iter().enumerate() {
                // Values 0..16 of part p (the low 128-bit half) use scale 2p, values 16..32 use 2p+1.
                let scale = _mm256_shuffle_epi8(sc16, scale_pair_mask(p));
                for i in 0..R {
                    // SAFETY: `128h + 32p + 32 <= 256 == qs.len()` of the Q8_K block.
                    let xv = _mm256_loadu_si256(xs[i].qs.as_ptr().add(128 * h + 32 * p).cast());
                    let prod = _mm256_madd_epi16(_mm256_maddubs_epi16(qp, xv), scale);
                    sumi[i] = _mm256_add_epi32(sumi[i], prod);
                }
            }
        }
        let scales16 = _mm256_cvtepi8_epi16(scales);
        let mut sums = [0; R];
        for i in 0..R {
            // SAFETY: `bsums` is 16 i16 = 32 bytes.
            let bsums = _mm256_loadu_si256(xs[i].bsums.as_ptr().cast());
            let offset = _mm256_slli_epi32::<5>(_mm256_madd_epi16(bsums, scales16));
            sums[i] = hsum_epi32(_mm256_sub_epi32(sumi[i], offset));
        }
        sums
    }
}

/// A `pshufb` mask that fills the low 128-bit half with i16 lane `2p` and the high half with
/// lane `2p + 1` (both halves of the source hold the same 8 scales).
#[inline(always)]
unsafe fn scale_pair_mask(p: usize) -> __m256i {
    // SAFETY: this fn's contract: the caller runs with the target features enabled,
    // and every pointer below stays inside the blocks and rows it was given.
    unsafe {
        let lo = 4 * p as i16;
        let hi = lo + 2;
        _mm256_set_m128i(
            _mm_set1_epi16(((hi + 1) << 8) | hi),
            _mm_set1_epi16(((lo + 1) << 8) | lo),
        )
    }
}
