//! AVX-512 (F/BW/VL/VNNI) Q4_K kernels, same signatures as [`scalar`].
//!
//! - `matmul_f32`: each 64-value chunk of a weight block is dequantized into four zmm registers
//!   with `fmsub(d*sc, q, dmin*m)`, which rounds once, exactly like scalar's `d_sc*q - min`
//!   (`d_sc*q` is exact), so the dequantized weights are bit-identical to scalar's; only the
//!   summation order differs. The chunk is reused for up to four activation rows.
//! - `matmul_q8k`: nibbles are regrouped so that one zmm holds 64 consecutive values (two
//!   sub-blocks), multiplied with the Q8_K bytes by `maddubs` (u8 x i8 -> i16 pairs, at most
//!   2*15*128 so it never saturates) and scaled and summed to i32 by VNNI `dpwssd`. Mins come from
//!   `bsums`. Four (block, row) pairs share one horizontal reduction to the exact `(sumi, summ)`,
//!   their f32 terms are computed together with the operations of scalar's `combine`, and added
//!   in block order, so the result is bit-identical to scalar.

use super::x86::{combine_terms, d_dmin_bits, reduce8, scales_mins_u64, SLOTS};
use crate::matmul::driver::{matmul_tiled, RowDots};
use crate::matmul::MatmulDims;
use crate::quant::{BlockQ4K, BlockQ8K, QK_K};
use std::arch::x86_64::*;

/// `vpshufb` selectors (the same in every 128-bit lane): zmm `p` holds sub-blocks `2p` (low 256
/// bits) and `2p+1` (high 256 bits); each i16 lane gets that sub-block's scale byte, zero-extended
/// (selector 0x80 writes a zero byte).
static SCALE_BYTES: [[u8; 64]; 4] = {
    let mut idx = [[0x80u8; 64]; 4];
    let mut p = 0;
    while p < 4 {
        let mut t = 0;
        while t < 32 {
            idx[p][2 * t] = (2 * p + t / 16) as u8;
            t += 1;
        }
        p += 1;
    }
    idx
};

/// `vpshufb` selector: each min byte (bytes 8..16) twice, one per 16-value bsum group.
static MIN_PAIR_BYTES: [u8; 16] = [8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13, 14, 14, 15, 15];

// ---------------------------------------------------------------------------------------------
// f32 design
// ---------------------------------------------------------------------------------------------

/// Per-block constants of the f32 design: `d*sc[j]` in lanes 0..8 and `dmin*m[j]` in 8..16.
/// Both products are exact in f32 (11-bit times 6-bit significands).
#[inline(always)]
unsafe fn f32_block_factors(block: &BlockQ4K) -> [f32; 16] {
    let (sc, m) = scales_mins_u64(&block.scales);
    let bytes = _mm_set_epi64x(m as i64, sc as i64);
    let ints = _mm512_cvtepu8_epi32(bytes);
    let d = _mm256_set1_ps(block.d.to_f32());
    let dmin = _mm256_set1_ps(block.dmin.to_f32());
    // `vinsertf64x4` (AVX-512 F) rather than `vinsertf32x8`, which would need AVX-512 DQ.
    let mult = _mm512_castpd_ps(_mm512_insertf64x4::<1>(
        _mm512_castps_pd(_mm512_castps256_ps512(d)),
        _mm256_castps_pd(dmin),
    ));
    let factors = _mm512_mul_ps(_mm512_cvtepi32_ps(ints), mult);
    let mut out = [0f32; 16];
    _mm512_storeu_ps(out.as_mut_ptr(), factors);
    out
}

/// Dequantizes chunk `c` (values `64c..64c+64`) of a block into four zmm registers.
#[inline(always)]
unsafe fn f32_dequantize_chunk(block: &BlockQ4K, factors: &[f32; 16], c: usize) -> [__m512; 4] {
    let qs = block.qs.as_ptr().add(32 * c);
    let q0 = _mm512_cvtepu8_epi32(_mm_loadu_si128(qs.cast()));
    let q1 = _mm512_cvtepu8_epi32(_mm_loadu_si128(qs.add(16).cast()));
    let low = _mm512_set1_epi32(0xF);
    let d_lo = _mm512_set1_ps(factors[2 * c]);
    let d_hi = _mm512_set1_ps(factors[2 * c + 1]);
    let m_lo = _mm512_set1_ps(factors[8 + 2 * c]);
    let m_hi = _mm512_set1_ps(factors[8 + 2 * c + 1]);
    [
        dequant(_mm512_and_si512(q0, low), d_lo, m_lo),
        dequant(_mm512_and_si512(q1, low), d_lo, m_lo),
        dequant(_mm512_srli_epi32::<4>(q0), d_hi, m_hi),
        dequant(_mm512_srli_epi32::<4>(q1), d_hi, m_hi),
    ]
}

/// Dot products of one weight row with `R` activation rows starting at `x_rows`
/// (`R * k` values, row-major). Four accumulators per activation row hide the FMA latency.
#[inline(always)]
unsafe fn f32_row_dots<const R: usize>(w_row: &[BlockQ4K], x_rows: &[f32], k: usize) -> [f32; R] {
    debug_assert!(x_rows.len() >= R * k && w_row.len() * QK_K == k);
    let mut acc = [[_mm512_setzero_ps(); 4]; R];
    for (b, block) in w_row.iter().enumerate() {
        let factors = f32_block_factors(block);
        for c in 0..4 {
            let wv = f32_dequantize_chunk(block, &factors, c);
            for (i, acc_i) in acc.iter_mut().enumerate() {
                let xp = x_rows.as_ptr().add(i * k + b * QK_K + 64 * c);
                for t in 0..4 {
                    acc_i[t] = _mm512_fmadd_ps(wv[t], _mm512_loadu_ps(xp.add(16 * t)), acc_i[t]);
                }
            }
        }
    }
    // A plain loop, not `acc.map(..)`: a closure does not inherit the entry's target features,
    // and the intrinsics inside it would be called out of line.
    let mut dots = [0f32; R];
    for (dot, a) in dots.iter_mut().zip(&acc) {
        let sum = _mm512_add_ps(_mm512_add_ps(a[0], a[1]), _mm512_add_ps(a[2], a[3]));
        *dot = _mm512_reduce_add_ps(sum);
    }
    dots
}

/// `d * q - m` for 16 quants: one rounding, like scalar's `(d*sc)*q - dmin*m` whose products
/// are exact.
#[inline(always)]
unsafe fn dequant(q: __m512i, d: __m512, m: __m512) -> __m512 {
    _mm512_fmsub_ps(d, _mm512_cvtepi32_ps(q), m)
}

/// # Safety
/// The CPU must support the enabled target features.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
pub unsafe fn matmul_f32(x: &[f32], w: &[BlockQ4K], y: &mut [f32], dims: MatmulDims) {
    // SAFETY: this function enables the features `F32Dots` needs; the driver checks the shapes
    // the raw-pointer loads rely on.
    unsafe { matmul_tiled::<F32Dots>(x, w, y, dims) }
}

struct F32Dots;

impl RowDots for F32Dots {
    type W = BlockQ4K;
    type X = f32;
    const W_VALUES: usize = QK_K;
    const X_VALUES: usize = 1;

    #[inline(always)]
    unsafe fn row_dots<const R: usize>(w_row: &[BlockQ4K], x_rows: &[f32]) -> [f32; R] {
        // SAFETY: the trait's contract.
        unsafe { f32_row_dots::<R>(w_row, x_rows, w_row.len() * QK_K) }
    }
}

// ---------------------------------------------------------------------------------------------
// q8k design
// ---------------------------------------------------------------------------------------------

/// One weight block unpacked for the integer dot: `nibbles[p]` holds values `64p..64p+64` as
/// bytes, `scales[p]` the matching sub-block scales as i16 pairs, `min_pairs` each min twice (one
/// per 16-value bsum).
#[derive(Clone, Copy)]
struct UnpackedQ4K {
    nibbles: [__m512i; 4],
    scales: [__m512i; 4],
    min_pairs: __m256i,
}

#[inline(always)]
unsafe fn q8k_unpack(block: &BlockQ4K) -> UnpackedQ4K {
    let (sc, m) = scales_mins_u64(&block.scales);
    let sc_m = _mm_set_epi64x(m as i64, sc as i64);
    let sc_m_lanes = _mm512_broadcast_i32x4(sc_m);
    let mut scales = [_mm512_setzero_si512(); 4];
    for (scale, select) in scales.iter_mut().zip(&SCALE_BYTES) {
        *scale = _mm512_shuffle_epi8(sc_m_lanes, _mm512_loadu_si512(select.as_ptr().cast()));
    }
    let min_pairs = _mm256_cvtepu8_epi16(_mm_shuffle_epi8(
        sc_m,
        _mm_loadu_si128(MIN_PAIR_BYTES.as_ptr().cast()),
    ));

    let low = _mm512_set1_epi8(0xF);
    let qs = block.qs.as_ptr();
    let mut nibbles = [_mm512_setzero_si512(); 4];
    for half in 0..2 {
        // Bytes 0..32 of this load are chunk 2*half, bytes 32..64 chunk 2*half+1.
        let q = _mm512_loadu_si512(qs.add(64 * half).cast());
        let lo = _mm512_and_si512(q, low); // [sub 4h   | sub 4h+2]
        let hi = _mm512_and_si512(_mm512_srli_epi16::<4>(q), low); // [sub 4h+1 | sub 4h+3]
        nibbles[2 * half] = _mm512_shuffle_i64x2::<0x44>(lo, hi); // [sub 4h   | sub 4h+1]
        nibbles[2 * half + 1] = _mm512_shuffle_i64x2::<0xEE>(lo, hi); // [sub 4h+2 | sub 4h+3]
    }
    UnpackedQ4K {
        nibbles,
        scales,
        min_pairs,
    }
}

/// `(sum_j sc_j*dot_j spread over 16 i32 lanes, m_j*bsum pairs in 8 i32 lanes)`; exact, since
/// every lane stays far inside i32 (|lane| <= 63*8*2*15*128 and 63*2*2048).
#[inline(always)]
unsafe fn q8k_block_dot(wt: &UnpackedQ4K, xb: &BlockQ8K) -> (__m512i, __m256i) {
    let xp = xb.qs.as_ptr();
    let mut acc = [_mm512_setzero_si512(); 2];
    for p in 0..4 {
        let xv = _mm512_loadu_si512(xp.add(64 * p).cast());
        let pairs = _mm512_maddubs_epi16(wt.nibbles[p], xv);
        acc[p % 2] = _mm512_dpwssd_epi32(acc[p % 2], pairs, wt.scales[p]);
    }
    let bsums = _mm256_loadu_si256(xb.bsums.as_ptr().cast());
    (
        _mm512_add_epi32(acc[0], acc[1]),
        _mm256_madd_epi16(bsums, wt.min_pairs),
    )
}

/// Folds 16 i32 lanes to 8 (wrapping adds; exact because the true sums fit in i32).
#[inline(always)]
unsafe fn fold_to_256(v: __m512i) -> __m256i {
    _mm256_add_epi32(_mm512_castsi512_si256(v), _mm512_extracti64x4_epi64::<1>(v))
}

/// Reduces four slots at once to `[sumi0, summ0, sumi1, summ1, ..]`; unused slots are zero
/// vectors.
#[inline(always)]
unsafe fn reduce_sums(sums: &[(__m512i, __m256i); SLOTS]) -> __m256i {
    reduce8([
        fold_to_256(sums[0].0),
        sums[0].1,
        fold_to_256(sums[1].0),
        sums[1].1,
        fold_to_256(sums[2].0),
        sums[2].1,
        fold_to_256(sums[3].0),
        sums[3].1,
    ])
}

#[inline(always)]
unsafe fn zero_sums() -> (__m512i, __m256i) {
    (_mm512_setzero_si512(), _mm256_setzero_si256())
}

/// Adds weight blocks `wbs` (blocks `b0..` of one row) times the matching blocks of `R`
/// activation rows to `acc`. Slot `bi * R + i` holds block `bi` with activation row `i`, so
/// `wbs.len() * R <= SLOTS`, and every row's terms are added in block order.
#[inline(always)]
unsafe fn q8k_accumulate<const R: usize>(
    acc: &mut [f32; R],
    wbs: &[BlockQ4K],
    x_rows: &[BlockQ8K],
    nb: usize,
    b0: usize,
) {
    debug_assert!(wbs.len() * R <= SLOTS);
    let mut sums = [zero_sums(); SLOTS];
    let mut d_dmin = [0i32; SLOTS];
    let mut xd = [0f32; SLOTS];
    for (bi, wb) in wbs.iter().enumerate() {
        let wt = q8k_unpack(wb);
        for i in 0..R {
            let xb = &x_rows[i * nb + b0 + bi];
            sums[bi * R + i] = q8k_block_dot(&wt, xb);
            d_dmin[bi * R + i] = d_dmin_bits(wb);
            xd[bi * R + i] = xb.d;
        }
    }
    let terms = combine_terms(d_dmin, xd, reduce_sums(&sums));
    for bi in 0..wbs.len() {
        for (i, acc_i) in acc.iter_mut().enumerate() {
            *acc_i += terms[bi * R + i];
        }
    }
}

/// `R` (1..=4) activation rows share each unpacked weight block; `B = SLOTS / R` blocks share
/// one reduction.
#[inline(always)]
unsafe fn q8k_row_dots<const R: usize, const B: usize>(
    x_rows: &[BlockQ8K],
    wr: &[BlockQ4K],
) -> [f32; R] {
    let nb = wr.len();
    let mut acc = [0f32; R];
    let mut b = 0;
    while b + B <= nb {
        q8k_accumulate::<R>(&mut acc, &wr[b..b + B], x_rows, nb, b);
        b += B;
    }
    if b < nb {
        q8k_accumulate::<R>(&mut acc, &wr[b..], x_rows, nb, b);
    }
    acc
}

/// # Safety
/// The CPU must support the enabled target features.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
pub unsafe fn matmul_q8k(xq: &[BlockQ8K], w: &[BlockQ4K], y: &mut [f32], dims: MatmulDims) {
    // SAFETY: as in `matmul_f32`.
    unsafe { matmul_tiled::<Q8kDots>(xq, w, y, dims) }
}

struct Q8kDots;

impl RowDots for Q8kDots {
    type W = BlockQ4K;
    type X = BlockQ8K;
    const W_VALUES: usize = QK_K;
    const X_VALUES: usize = QK_K;

    #[inline(always)]
    unsafe fn row_dots<const R: usize>(w_row: &[BlockQ4K], x_rows: &[BlockQ8K]) -> [f32; R] {
        // SAFETY: the trait's contract.
        unsafe {
            match R {
                1 => q8k_row_dots::<R, 4>(x_rows, w_row),
                2 => q8k_row_dots::<R, 2>(x_rows, w_row),
                _ => q8k_row_dots::<R, 1>(x_rows, w_row),
            }
        }
    }
}
