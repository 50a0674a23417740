//! AVX-512 (F/BW/VL/VNNI) Q6_K kernels, same signatures as [`scalar`].
//!
//! Both designs first rebuild the 6-bit values of a half block (128 values) as bytes, 64 per zmm
//! in value order, with two shifts and masks per zmm (`ql` nibbles, `qh` bit pairs).
//! - `matmul_f32`: bytes minus 32 are widened to f32 and multiplied by `d*sc`; both products are
//!   exact (as in scalar), so the weights are bit-identical to scalar's and only the summation
//!   order differs. Each dequantized 16-value group is reused for up to four activation rows.
//! - `matmul_q8k`: the unsigned values 0..63 are multiplied with the Q8_K bytes by `maddubs`
//!   (u8 x i8 -> i16 pairs, at most 2*63*128 = 16128, so never saturating), scaled and summed to
//!   i32 by VNNI `dpwssd`; the `-32` offset is subtracted exactly as `32 * sum_g sc_g * bsum_g`.
//!   Each block's sum is reduced to one i32 and passed to scalar's `combine` in block order, so the
//!   result is bit-identical to scalar. The offset path reads `bsums`, so it relies on them
//!   matching `qs`, as `BlockQ8K` documents.

use super::scalar;
use crate::matmul::driver::{matmul_entries, row_dots};
use crate::quant::{BlockQ6K, BlockQ8K, QK_K};
use crate::simd::x86::prefetch_ahead;
use std::arch::x86_64::*;

matmul_entries! {
    "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni";
    matmul_f32(f32, BlockQ6K) => F32Dots;
    matmul_q8k(BlockQ8K, BlockQ6K) => Q8kDots;
}

row_dots!(F32Dots: BlockQ6K, f32, QK_K, 1, <R> |w_row, x_rows| f32_row_dots::<R>(w_row, x_rows, w_row.len() * QK_K));
row_dots!(Q8kDots: BlockQ6K, BlockQ8K, QK_K, QK_K, <R> |w_row, x_rows| if R == 1 {
    let mut one = [0f32; R];
    one[0] = q8k_single_row(x_rows, w_row);
    one
} else {
    q8k_row_group::<R>(x_rows, w_row)
});

/// `vpermw` selectors: i16 lane `j` of zmm `m` (values `64m+2j`, `64m+2j+1`) takes the scale of
/// group `4m + j/8` from the 16 widened scales.
static SCALE_WORDS: [[u16; 32]; 4] = {
    let mut idx = [[0u16; 32]; 4];
    let mut m = 0;
    while m < 4 {
        let mut j = 0;
        while j < 32 {
            idx[m][j] = (4 * m + j / 8) as u16;
            j += 1;
        }
        m += 1;
    }
    idx
};

/// The 256 values of a block as bytes 0..63: zmm `m` holds values `64m..64m+64`.
///
/// In half `h`, byte `l` of `ql` gives value `l` (low nibble) and `l+64` (high nibble), for
/// `l < 64`; their two high bits sit in `qh[l % 32]` at bit `2*(l/32)` and `4 + 2*(l/32)`.
/// Broadcasting `qh` to both 256-bit halves and shifting the upper copy right by 2 puts every
/// bit pair at bit 0 (low nibble's) or bit 4 (high nibble's) of the matching byte.
#[inline(always)]
unsafe fn unpack_values(block: &BlockQ6K) -> [__m512i; 4] {
    // SAFETY: this fn's contract: the caller runs with the target features enabled,
    // and every pointer below stays inside the blocks and rows it was given.
    unsafe {
        let low4 = _mm512_set1_epi8(0x0F);
        let bits45 = _mm512_set1_epi8(0x30);
        let qh_shift = _mm512_inserti64x4::<1>(_mm512_setzero_si512(), _mm256_set1_epi16(2));
        let mut values = [_mm512_setzero_si512(); 4];
        for h in 0..2 {
            let ql = _mm512_loadu_si512(block.ql.as_ptr().add(64 * h).cast());
            let qh =
                _mm512_broadcast_i64x4(_mm256_loadu_si256(block.qh.as_ptr().add(32 * h).cast()));
            let qh = _mm512_srlv_epi16(qh, qh_shift);
            let high_lo = _mm512_and_si512(_mm512_slli_epi16::<4>(qh), bits45);
            let high_hi = _mm512_and_si512(qh, bits45);
            // 0xEA: (a & b) | c, with a = ql (shifted), b = 0x0F, c = high bits.
            values[2 * h] = _mm512_ternarylogic_epi32::<0xEA>(ql, low4, high_lo);
            values[2 * h + 1] =
                _mm512_ternarylogic_epi32::<0xEA>(_mm512_srli_epi16::<4>(ql), low4, high_hi);
        }
        values
    }
}

// ---------------------------------------------------------------------------------------------
// f32 design
// ---------------------------------------------------------------------------------------------

/// `d*sc[g]` for the 16 groups; exact in f32 (11-bit times 8-bit significands).
#[inline(always)]
unsafe fn f32_group_scales(block: &BlockQ6K) -> [f32; 16] {
    // SAFETY: this fn's contract: the caller runs with the target features enabled,
    // and every pointer below stays inside the blocks and rows it was given.
    unsafe {
        let sc = _mm_loadu_si128(block.scales.as_ptr().cast());
        let d = _mm512_set1_ps(block.d.to_f32());
        let scales = _mm512_mul_ps(d, _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(sc)));
        let mut out = [0f32; 16];
        _mm512_storeu_ps(out.as_mut_ptr(), scales);
        out
    }
}

/// Group `4m + lane` of `signed` (values minus 32, as i8) as f32, times its scale: exact, as
/// scalar's `(d*sc)*(q-32)` (at most 24 significant bits).
#[inline(always)]
unsafe fn f32_dequantize_group<const LANE: i32>(signed: __m512i, scale: f32) -> __m512 {
    // SAFETY: this fn's contract: the caller runs with the target features enabled,
    // and every pointer below stays inside the blocks and rows it was given.
    unsafe {
        let bytes = _mm512_extracti32x4_epi32::<LANE>(signed);
        let q = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(bytes));
        _mm512_mul_ps(_mm512_set1_ps(scale), q)
    }
}

/// Dot products of one weight row with `R` activation rows starting at `x_rows`
/// (`R * k` values, row-major). Four accumulators per activation row hide the FMA latency.
#[inline(always)]
unsafe fn f32_row_dots<const R: usize>(w_row: &[BlockQ6K], x_rows: &[f32], k: usize) -> [f32; R] {
    // SAFETY: this fn's contract: the caller runs with the target features enabled,
    // and every pointer below stays inside the blocks and rows it was given.
    unsafe {
        debug_assert!(x_rows.len() >= R * k && w_row.len() * QK_K == k);
        let offset = _mm512_set1_epi8(32);
        let mut acc = [[_mm512_setzero_ps(); 4]; R];
        for (b, block) in w_row.iter().enumerate() {
            let scales = f32_group_scales(block);
            let values = unpack_values(block);
            for (m, &v) in values.iter().enumerate() {
                let signed = _mm512_sub_epi8(v, offset);
                let wv = [
                    f32_dequantize_group::<0>(signed, scales[4 * m]),
                    f32_dequantize_group::<1>(signed, scales[4 * m + 1]),
                    f32_dequantize_group::<2>(signed, scales[4 * m + 2]),
                    f32_dequantize_group::<3>(signed, scales[4 * m + 3]),
                ];
                for (i, acc_i) in acc.iter_mut().enumerate() {
                    let xp = x_rows.as_ptr().add(i * k + b * QK_K + 64 * m);
                    for t in 0..4 {
                        acc_i[t] =
                            _mm512_fmadd_ps(wv[t], _mm512_loadu_ps(xp.add(16 * t)), acc_i[t]);
                    }
                }
            }
        }
        let mut dots = [0f32; R];
        for (dot, a) in dots.iter_mut().zip(&acc) {
            let sum = _mm512_add_ps(_mm512_add_ps(a[0], a[1]), _mm512_add_ps(a[2], a[3]));
            *dot = _mm512_reduce_add_ps(sum);
        }
        dots
    }
}

// ---------------------------------------------------------------------------------------------
// q8k design
// ---------------------------------------------------------------------------------------------

/// One weight block unpacked for the integer dot: `values[m]` holds values `64m..64m+64` as
/// bytes 0..63, `scales[m]` the matching group scales as i16 (8 lanes per group), `scales16` the
/// 16 scales as i16 for the bsum offset.
#[derive(Clone, Copy)]
struct UnpackedQ6K {
    values: [__m512i; 4],
    scales: [__m512i; 4],
    scales16: __m256i,
}

#[inline(always)]
unsafe fn q8k_unpack(block: &BlockQ6K) -> UnpackedQ6K {
    // SAFETY: this fn's contract: the caller runs with the target features enabled,
    // and every pointer below stays inside the blocks and rows it was given.
    unsafe {
        let scales16 = _mm256_cvtepi8_epi16(_mm_loadu_si128(block.scales.as_ptr().cast()));
        let wide = _mm512_castsi256_si512(scales16);
        let mut scales = [_mm512_setzero_si512(); 4];
        for (scale, select) in scales.iter_mut().zip(&SCALE_WORDS) {
            *scale = _mm512_permutexvar_epi16(_mm512_loadu_si512(select.as_ptr().cast()), wide);
        }
        UnpackedQ6K {
            values: unpack_values(block),
            scales,
            scales16,
        }
    }
}

/// `sum_g sc_g * sum_{l in g} (q_l - 32) * x_l`, spread over 16 i32 lanes. Exact: lanes and the
/// true block sum stay far inside i32 (|sum| <= 256*63*128*128 < 2^31), so wrapping adds are exact.
#[inline(always)]
unsafe fn q8k_block_dot(wt: &UnpackedQ6K, xb: &BlockQ8K) -> __m512i {
    // SAFETY: this fn's contract: the caller runs with the target features enabled,
    // and every pointer below stays inside the blocks and rows it was given.
    unsafe {
        let xp = xb.qs.as_ptr();
        let mut acc = [_mm512_setzero_si512(); 2];
        for m in 0..4 {
            let xv = _mm512_loadu_si512(xp.add(64 * m).cast());
            let pairs = _mm512_maddubs_epi16(wt.values[m], xv);
            acc[m % 2] = _mm512_dpwssd_epi32(acc[m % 2], pairs, wt.scales[m]);
        }
        let bsums = _mm256_loadu_si256(xb.bsums.as_ptr().cast());
        let offset = _mm256_slli_epi32::<5>(_mm256_madd_epi16(bsums, wt.scales16));
        _mm512_sub_epi32(
            _mm512_add_epi32(acc[0], acc[1]),
            _mm512_castsi256_si512(offset),
        )
    }
}

/// Per 128-bit lane `[a0+a2, b0+b2, a1+a3, b1+b3]`.
#[inline(always)]
unsafe fn add_pairs(a: __m512i, b: __m512i) -> __m512i {
    // SAFETY: this fn's contract: the caller runs with the target features enabled,
    // and every pointer below stays inside the blocks and rows it was given.
    unsafe { _mm512_add_epi32(_mm512_unpacklo_epi32(a, b), _mm512_unpackhi_epi32(a, b)) }
}

/// On two [`add_pairs`] results: per 128-bit lane the four partial sums of `a, b, c, d`.
#[inline(always)]
unsafe fn add_quads(ab: __m512i, cd: __m512i) -> __m512i {
    // SAFETY: this fn's contract: the caller runs with the target features enabled,
    // and every pointer below stays inside the blocks and rows it was given.
    unsafe { _mm512_add_epi32(_mm512_unpacklo_epi64(ab, cd), _mm512_unpackhi_epi64(ab, cd)) }
}

/// Horizontal sums of four 16-lane vectors at once (unused slots are zero vectors).
#[inline(always)]
unsafe fn reduce4(v: [__m512i; 4]) -> [i32; 4] {
    // SAFETY: this fn's contract: the caller runs with the target features enabled,
    // and every pointer below stays inside the blocks and rows it was given.
    unsafe {
        let q = add_quads(add_pairs(v[0], v[1]), add_pairs(v[2], v[3]));
        let half = _mm256_add_epi32(_mm512_castsi512_si256(q), _mm512_extracti64x4_epi64::<1>(q));
        let quarter = _mm_add_epi32(
            _mm256_castsi256_si128(half),
            _mm256_extracti128_si256::<1>(half),
        );
        let mut out = [0i32; 4];
        _mm_storeu_si128(out.as_mut_ptr().cast(), quarter);
        out
    }
}

/// One activation row: blocks are taken four at a time so their reductions share shuffles.
#[inline(always)]
unsafe fn q8k_single_row(xr: &[BlockQ8K], wr: &[BlockQ6K]) -> f32 {
    // SAFETY: this fn's contract: the caller runs with the target features enabled,
    // and every pointer below stays inside the blocks and rows it was given.
    unsafe {
        let mut acc = 0f32;
        let mut b = 0;
        while b < wr.len() {
            let count = (wr.len() - b).min(4);
            prefetch_ahead(wr[b..].as_ptr().cast(), count * size_of::<BlockQ6K>());
            let mut sums = [_mm512_setzero_si512(); 4];
            for (s, sum) in sums.iter_mut().enumerate().take(count) {
                *sum = q8k_block_dot(&q8k_unpack(&wr[b + s]), &xr[b + s]);
            }
            let reduced = reduce4(sums);
            // The four scales in one F16C conversion (exact, as `f16::to_f32`, which checks
            // the CPU at run time on every call), then `scalar::combine`'s expression.
            let mut bits = [0u16; 4];
            for (s, h) in bits.iter_mut().enumerate().take(count) {
                *h = wr[b + s].d.to_bits();
            }
            let mut d = [0f32; 4];
            _mm_storeu_ps(
                d.as_mut_ptr(),
                _mm_cvtph_ps(_mm_loadl_epi64(bits.as_ptr().cast())),
            );
            for (s, &sumi) in reduced.iter().enumerate().take(count) {
                acc = scalar::combine_f32(acc, d[s], xr[b + s].d, sumi);
            }
            b += count;
        }
        acc
    }
}

/// `G` (2..=4) activation rows share each unpacked weight block.
#[inline(always)]
unsafe fn q8k_row_group<const G: usize>(x_rows: &[BlockQ8K], wr: &[BlockQ6K]) -> [f32; G] {
    // SAFETY: this fn's contract: the caller runs with the target features enabled,
    // and every pointer below stays inside the blocks and rows it was given.
    unsafe {
        let nb = wr.len();
        let mut acc = [0f32; G];
        for (b, wb) in wr.iter().enumerate() {
            let wt = q8k_unpack(wb);
            let mut sums = [_mm512_setzero_si512(); 4];
            for (g, sum) in sums.iter_mut().enumerate().take(G) {
                *sum = q8k_block_dot(&wt, &x_rows[g * nb + b]);
            }
            let reduced = reduce4(sums);
            for (g, acc_g) in acc.iter_mut().enumerate() {
                *acc_g = scalar::combine(*acc_g, wb, x_rows[g * nb + b].d, reduced[g]);
            }
        }
        acc
    }
}
