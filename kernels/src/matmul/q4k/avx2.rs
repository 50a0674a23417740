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

use crate::matmul::MatmulDims;
use crate::quant::{BlockQ4K, BlockQ8K, QK_K};
use crate::simd::x86::{f16_to_f32, hsum_ps};
use std::arch::x86_64::*;

/// Activation rows served by one pass over a weight row.
const ACT_TILE: usize = 4;

/// # Safety
/// The CPU must support the enabled target features.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn matmul_f32(x: &[f32], w: &[BlockQ4K], y: &mut [f32], dims: MatmulDims) {
    // The loads below use raw pointers; this check is what keeps them inside `x`.
    dims.check(x.len(), dims.k, w.len(), y.len());
    let nb = dims.blocks_per_row();
    for r in 0..dims.rows {
        let wr = &w[r * nb..][..nb];
        let mut i0 = 0;
        while i0 < dims.n {
            let tile = (dims.n - i0).min(ACT_TILE);
            // Accumulators per activation row: enough independent FMA chains to cover the
            // latency (2 ports x 4 cycles; a single row also has the independent dequantizing
            // FMAs), few enough not to spill the 16 ymm registers. 8 for one row measured slower.
            match tile {
                1 => row_tile_f32::<1, 4>(x, wr, y, dims, r, i0),
                2 => row_tile_f32::<2, 4>(x, wr, y, dims, r, i0),
                3 => row_tile_f32::<3, 2>(x, wr, y, dims, r, i0),
                _ => row_tile_f32::<4, 2>(x, wr, y, dims, r, i0),
            }
            i0 += tile;
        }
    }
}

/// # Safety
/// The CPU must support the enabled target features.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn matmul_q8k(xq: &[BlockQ8K], w: &[BlockQ4K], y: &mut [f32], dims: MatmulDims) {
    dims.check(xq.len(), dims.blocks_per_row(), w.len(), y.len());
    let nb = dims.blocks_per_row();
    for r in 0..dims.rows {
        let wr = &w[r * nb..][..nb];
        let mut i0 = 0;
        while i0 < dims.n {
            let tile = (dims.n - i0).min(ACT_TILE);
            // `B = SLOTS / R` blocks share one reduction.
            match tile {
                1 => row_tile_q8k::<1, 4>(xq, wr, y, dims, r, i0),
                2 => row_tile_q8k::<2, 2>(xq, wr, y, dims, r, i0),
                3 => row_tile_q8k::<3, 1>(xq, wr, y, dims, r, i0),
                _ => row_tile_q8k::<4, 1>(xq, wr, y, dims, r, i0),
            }
            i0 += tile;
        }
    }
}

/// Weight row `wr` (row `r`) times activation rows `i0..i0+R`, written to `y`.
#[inline(always)]
unsafe fn row_tile_f32<const R: usize, const P: usize>(
    x: &[f32],
    wr: &[BlockQ4K],
    y: &mut [f32],
    dims: MatmulDims,
    r: usize,
    i0: usize,
) {
    debug_assert!(i0 + R <= dims.n && x.len() == dims.n * dims.k);
    let mut acc = [[_mm256_setzero_ps(); P]; R];
    for (b, block) in wr.iter().enumerate() {
        // SAFETY: `(i0 + i) * k + b * QK_K + QK_K <= n * k == x.len()` because `i0 + i < n` and
        // `b < k / QK_K`, so every pointer starts a full block of activations inside `x`.
        let xs: [*const f32; R] =
            std::array::from_fn(|i| unsafe { x.as_ptr().add((i0 + i) * dims.k + b * QK_K) });
        block_f32::<R, P>(block, &xs, &mut acc);
    }
    for (i, acc_row) in acc.iter().enumerate() {
        let mut sum = acc_row[0];
        for &a in &acc_row[1..] {
            sum = _mm256_add_ps(sum, a);
        }
        y[(i0 + i) * dims.y_stride + r] = hsum_ps(sum);
    }
}

/// Adds one weight block times `R` activation blocks (`xs`, 256 values each) into `acc`.
#[inline(always)]
unsafe fn block_f32<const R: usize, const P: usize>(
    block: &BlockQ4K,
    xs: &[*const f32; R],
    acc: &mut [[__m256; P]; R],
) {
    let (sc8, m8) = unpack_scales_mins(&block.scales);
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

/// Slots per horizontal reduction: four `(sumi, summ)` pairs fill the eight lanes of one `reduce8`.
const SLOTS: usize = 4;

/// Weight row `wr` (row `r`) times Q8_K activation rows `i0..i0+R`, written to `y`; `B` blocks
/// (`B * R <= SLOTS`) share one reduction.
#[inline(always)]
unsafe fn row_tile_q8k<const R: usize, const B: usize>(
    xq: &[BlockQ8K],
    wr: &[BlockQ4K],
    y: &mut [f32],
    dims: MatmulDims,
    r: usize,
    i0: usize,
) {
    let nb = wr.len();
    let x_rows = &xq[i0 * nb..(i0 + R) * nb];
    let mut acc = [0f32; R];
    let mut b = 0;
    while b + B <= nb {
        accumulate_q8k::<R>(&mut acc, &wr[b..b + B], x_rows, nb, b);
        b += B;
    }
    if b < nb {
        accumulate_q8k::<R>(&mut acc, &wr[b..], x_rows, nb, b);
    }
    for (i, &a) in acc.iter().enumerate() {
        y[(i0 + i) * dims.y_stride + r] = a;
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

/// `(sum_j sc_j * dot_j, sum_j m_j * bsum_j)` of one weight block with each of `R` Q8_K blocks,
/// spread over eight i32 lanes each: their lane sums are the integers of scalar's `block_sums`.
/// Bounds: `maddubs` pairs are at most `2*15*128 = 3840` (no i16 saturation), `madd` with a
/// 6-bit scale at most `2*63*3840`, so no lane or lane sum leaves i32.
#[inline(always)]
unsafe fn block_sums<const R: usize>(w: &BlockQ4K, xs: &[&BlockQ8K; R]) -> [(__m256i, __m256i); R] {
    let (sc8, m8) = unpack_scales_mins(&w.scales);
    let sc16 = _mm256_broadcastsi128_si256(_mm_cvtepu8_epi16(_mm_cvtsi64_si128(sc8 as i64)));
    let m16 = _mm_cvtepu8_epi16(_mm_cvtsi64_si128(m8 as i64));
    // Each min twice, to meet the two bsums (16 values each) of its 32-value sub-block.
    let m16_pairs = _mm256_set_m128i(_mm_unpackhi_epi16(m16, m16), _mm_unpacklo_epi16(m16, m16));
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

/// Horizontal sums of eight 8-lane vectors at once: lane `j` of the result is the sum of `v[j]`
/// (wrapping adds; exact because the true sums fit in i32).
#[inline(always)]
unsafe fn reduce8(v: [__m256i; 8]) -> __m256i {
    // Plain functions, not closures: a closure would not inherit the entry's target features.
    #[inline(always)]
    unsafe fn pair(a: __m256i, b: __m256i) -> __m256i {
        _mm256_add_epi32(_mm256_unpacklo_epi32(a, b), _mm256_unpackhi_epi32(a, b))
    }
    #[inline(always)]
    unsafe fn quad(a: __m256i, b: __m256i) -> __m256i {
        _mm256_add_epi32(_mm256_unpacklo_epi64(a, b), _mm256_unpackhi_epi64(a, b))
    }
    let q0 = quad(pair(v[0], v[1]), pair(v[2], v[3]));
    let q1 = quad(pair(v[4], v[5]), pair(v[6], v[7]));
    _mm256_add_epi32(
        _mm256_permute2x128_si256::<0x20>(q0, q1),
        _mm256_permute2x128_si256::<0x31>(q0, q1),
    )
}

/// A block's `d` and `dmin` as f16 bits, `d` in the low half (the order `vcvtph2ps` expects).
#[inline(always)]
fn d_dmin_bits(w: &BlockQ4K) -> i32 {
    (w.d.to_bits() as u32 | (w.dmin.to_bits() as u32) << 16) as i32
}

/// The four slots' terms `d*sumi - dmin*summ` of scalar's [`combine`](super::scalar::combine), from
/// `sums = [sumi0, summ0, sumi1, summ1, ..]`, computed with exactly its operations: `f16 -> f32`
/// (exact in F16C as in `half`), `* xd`, `i32 as f32` (`vcvtdq2ps` rounds to nearest like `as`),
/// the two products and their difference, each rounded once (intrinsics are never contracted to
/// FMA). The caller adds each term to its accumulator in block order, the remaining
/// `acc + term` of `combine`.
#[inline(always)]
unsafe fn combine_terms(d_dmin: [i32; SLOTS], xd: [f32; SLOTS], sums: __m256i) -> [f32; SLOTS] {
    let d_dmin = _mm256_cvtph_ps(_mm_setr_epi32(d_dmin[0], d_dmin[1], d_dmin[2], d_dmin[3]));
    let xd = _mm_setr_ps(xd[0], xd[1], xd[2], xd[3]);
    let xd_pairs = _mm256_set_m128(_mm_unpackhi_ps(xd, xd), _mm_unpacklo_ps(xd, xd));
    let products = _mm256_mul_ps(_mm256_mul_ps(d_dmin, xd_pairs), _mm256_cvtepi32_ps(sums));
    let terms = _mm256_sub_ps(products, _mm256_movehdup_ps(products));
    let mut lanes = [0f32; 8];
    _mm256_storeu_ps(lanes.as_mut_ptr(), terms);
    [lanes[0], lanes[2], lanes[4], lanes[6]]
}

/// The llama.cpp unpacking of the 12 packed bytes: returns the eight 6-bit scales and the eight
/// 6-bit mins, one per byte (sub-block `j` in byte `j`), as [`q4k_scale_min`](crate::quant::q4k_scale_min) defines them.
#[inline(always)]
fn unpack_scales_mins(s: &[u8; 12]) -> (u64, u64) {
    const LOW6: u32 = 0x3f3f_3f3f;
    const LOW4: u32 = 0x0f0f_0f0f;
    const LOW2: u32 = 0x0303_0303;
    let u0 = u32::from_le_bytes([s[0], s[1], s[2], s[3]]);
    let u1 = u32::from_le_bytes([s[4], s[5], s[6], s[7]]);
    let u2 = u32::from_le_bytes([s[8], s[9], s[10], s[11]]);
    let sc_0_3 = u0 & LOW6;
    let m_0_3 = u1 & LOW6;
    let sc_4_7 = (u2 & LOW4) | (((u0 >> 6) & LOW2) << 4);
    let m_4_7 = ((u2 >> 4) & LOW4) | (((u1 >> 6) & LOW2) << 4);
    (
        sc_0_3 as u64 | ((sc_4_7 as u64) << 32),
        m_0_3 as u64 | ((m_4_7 as u64) << 32),
    )
}

/// The eight bytes of `v` as eight f32 lanes.
#[inline(always)]
unsafe fn u8x8_to_ps(v: u64) -> __m256 {
    _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_cvtsi64_si128(v as i64)))
}

/// A `pshufb` mask that copies i16 lane `j` (0..8) of each 128-bit half to all its lanes.
#[inline(always)]
unsafe fn i16_broadcast_mask(j: usize) -> __m256i {
    let lo = 2 * j as i16;
    _mm256_set1_epi16(((lo + 1) << 8) | lo)
}
