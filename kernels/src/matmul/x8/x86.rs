//! x86 kernels on the 8-row interleaved layout: lanes are weight rows, the activation bytes are
//! broadcast, and each (8 rows, block) ends in eight i32 sums, one per row, that are exactly
//! the scalar oracle's integers; the f32 combine then runs on all eight rows at once with
//! scalar's operations in scalar's order.
//!
//! Q4_K: [`q4k_tile`] on AVX2 and [`q4k_tile_zmm`] on AVX-512 VNNI (512-bit vectors, `qs`
//! interleaved in 8-byte groups). Q6_K: one 256-bit tile written over [`ByteDots`], the step that
//! multiplies four weight bytes by four activation bytes per lane: [`Maddubs`] (AVX2: `maddubs`
//! into i16, then `madd` with the scale) and [`Vnni`] (`dpbusd` straight into i32, then one
//! `mullo` with the scale). All give the same integers, so the same bits.
//!
//! Loop nest: activation rows in chunks that fit in L2 ([`chunk_rows`]), then 8-row weight
//! panels (one panel of blocks stays in L1 across the chunk), then register tiles of a few
//! activation rows that share every weight load. `n = 1` (decode) is a single stream over the
//! weights.

use super::{BlockQ4Kx8, BlockQ6Kx8, ROWS};
use crate::matmul::MatmulDims;
use crate::quant::{BlockQ8K, QK_K};
use crate::simd::x86::prefetch_ahead;
use std::arch::x86_64::*;

// Activation rows per register tile, the first of each driver's `tiles` list: 4 for the 256-bit
// tiles (AVX2's 16 registers hold the Q4_K tile's 4 accumulators per row and the shared
// operands; 6-row VNNI tiles measured no faster on Zen 4), 6 for the 512-bit Q4_K tile (AVX-512's
// 32 registers; best of 4, 6 and 8 in `harness bench --design q8k-x8 --isa avx512`, 3
// alternated rounds: 2-5% over 4, 8 slower).

/// Bytes of activations one chunk may take: half of Zen 3's 512 KiB L2.
const CHUNK_BYTES: usize = 256 * 1024;

/// Activation rows per chunk for `nb` blocks per row: a multiple of the tile's `tile` rows, at
/// least one tile.
fn chunk_rows(nb: usize, tile: usize) -> usize {
    let rows = CHUNK_BYTES / (nb * std::mem::size_of::<BlockQ8K>()).max(1);
    (rows / tile * tile).max(tile)
}

/// Four activation bytes as one i32, broadcast to all eight lanes.
///
/// # Safety
/// AVX2 enabled; `p .. p+4` readable.
#[inline(always)]
unsafe fn bcast4(p: *const i8) -> __m256i {
    // SAFETY: the caller's contract.
    unsafe { _mm256_set1_epi32(std::ptr::read_unaligned(p.cast::<i32>())) }
}

/// Eight u8 (one per row) as eight i32 lanes of two equal i16 halves: the `madd` operand that
/// multiplies both i16 sums of a lane by its row's value.
///
/// # Safety
/// AVX2 enabled; `p .. p+8` readable.
#[inline(always)]
unsafe fn dup_u8(p: *const u8) -> __m256i {
    // SAFETY: the caller's contract.
    unsafe {
        let v = _mm_loadl_epi64(p.cast());
        _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(v, v))
    }
}

/// [`dup_u8`] for signed bytes.
///
/// # Safety
/// AVX2 enabled; `p .. p+8` readable.
#[inline(always)]
unsafe fn dup_i8(p: *const i8) -> __m256i {
    // SAFETY: the caller's contract.
    unsafe {
        let v = _mm_loadl_epi64(p.cast());
        _mm256_cvtepi8_epi16(_mm_unpacklo_epi8(v, v))
    }
}

/// Lane `r` = the i16 pair `(a[r], b[r])` of two rows of eight signed bytes.
///
/// # Safety
/// AVX2 enabled; `a .. a+8` and `b .. b+8` readable.
#[inline(always)]
unsafe fn pair_i8(a: *const i8, b: *const i8) -> __m256i {
    // SAFETY: the caller's contract.
    unsafe {
        let (a, b) = (_mm_loadl_epi64(a.cast()), _mm_loadl_epi64(b.cast()));
        _mm256_cvtepi8_epi16(_mm_unpacklo_epi8(a, b))
    }
}

/// Eight f16 as eight f32 (exact, as `half` converts).
///
/// # Safety
/// AVX2 + F16C enabled.
#[inline(always)]
unsafe fn f16x8(v: &[half::f16; ROWS]) -> __m256 {
    // SAFETY: 8 f16 = 16 readable bytes.
    unsafe { _mm256_cvtph_ps(_mm_loadu_si128(v.as_ptr().cast())) }
}

/// The byte dot-product step of the 256-bit tiles, per lane (one weight row): `dot` adds the
/// four products of unsigned weight bytes `u` and signed activation bytes `s` to a partial sum,
/// and `apply` multiplies a partial sum by the row's scale (loaded by `scales_i8`) into i32
/// lanes. The Q4_K tile runs `Maddubs` only (AVX-512 has its own 512-bit tile).
///
/// # Safety
/// Every method needs the CPU features of its implementation, enabled in the caller.
trait ByteDots {
    /// Q6_K `dot` steps one partial sum takes without overflow (see `q6k_tile`).
    const Q6_DOTS: usize;
    unsafe fn dot(acc: __m256i, u: __m256i, s: __m256i) -> __m256i;
    /// Eight i8 scales at `p .. p+8`, one per row.
    unsafe fn scales_i8(p: *const i8) -> __m256i;
    unsafe fn apply(acc: __m256i, scales: __m256i) -> __m256i;
}

/// AVX2: `maddubs` into two i16 partial sums per lane (exact while their magnitude stays below
/// 32768, which the tiles' bounds show), `madd` with the scale duplicated into both halves.
struct Maddubs;

impl ByteDots for Maddubs {
    const Q6_DOTS: usize = 2;
    #[inline(always)]
    unsafe fn dot(acc: __m256i, u: __m256i, s: __m256i) -> __m256i {
        // SAFETY: AVX2, as the trait requires.
        unsafe { _mm256_add_epi16(acc, _mm256_maddubs_epi16(u, s)) }
    }
    #[inline(always)]
    unsafe fn scales_i8(p: *const i8) -> __m256i {
        // SAFETY: the trait's contract.
        unsafe { dup_i8(p) }
    }
    #[inline(always)]
    unsafe fn apply(acc: __m256i, scales: __m256i) -> __m256i {
        // SAFETY: AVX2.
        unsafe { _mm256_madd_epi16(acc, scales) }
    }
}

/// AVX-512 VNNI + VL: `dpbusd` adds the four products straight into an i32 lane, exactly (no
/// i16 step, no saturation), so a partial sum takes all four Q6_K steps; `mullo` applies the
/// scale.
struct Vnni;

impl ByteDots for Vnni {
    const Q6_DOTS: usize = 4;
    #[inline(always)]
    unsafe fn dot(acc: __m256i, u: __m256i, s: __m256i) -> __m256i {
        // SAFETY: AVX-512 VNNI + VL, as the trait requires.
        unsafe { _mm256_dpbusd_epi32(acc, u, s) }
    }
    #[inline(always)]
    unsafe fn scales_i8(p: *const i8) -> __m256i {
        // SAFETY: the trait's contract: 8 readable bytes.
        unsafe { _mm256_cvtepi8_epi32(_mm_loadl_epi64(p.cast())) }
    }
    #[inline(always)]
    unsafe fn apply(acc: __m256i, scales: __m256i) -> __m256i {
        // SAFETY: AVX2.
        unsafe { _mm256_mullo_epi32(acc, scales) }
    }
}

/// Rows `x_rows` (`R` rows of `nb` blocks, row `i` at `xs[i]`) times one Q4_K panel `wp`:
/// lane `r` of result `i` is `dot(x_i, w_r)` accumulated exactly like scalar's row dot.
///
/// # Safety
/// AVX2 + FMA + F16C enabled; every `xs[i]` points at `wp.len()` readable blocks.
#[inline(always)]
unsafe fn q4k_tile<const R: usize>(wp: &[BlockQ4Kx8], xs: [*const BlockQ8K; R]) -> [__m256; R] {
    // SAFETY: every pointer below stays inside a block of `wp` or of an activation row, whose
    // lengths the caller guarantees; the intrinsics need the features the caller enables.
    unsafe {
        let low4 = _mm256_set1_epi8(0xF);
        let mut acc = [_mm256_setzero_ps(); R];
        for (b, w) in wp.iter().enumerate() {
            if R == 1 {
                prefetch_ahead((w as *const BlockQ4Kx8).cast(), size_of::<BlockQ4Kx8>());
            }
            let xb: [&BlockQ8K; R] = std::array::from_fn(|i| &*xs[i].add(b));
            let mut sumi = [_mm256_setzero_si256(); R];
            for c in 0..4 {
                // Sub-blocks 2c (low nibbles) and 2c+1 (high nibbles): per lane two i16 partial
                // dots, each the sum of 8 `maddubs` pairs of at most 2*15*128 = 3840 in
                // magnitude: |sum| <= 8*3840 = 30720 < 32768, so i16 adds never wrap.
                let mut s_lo = [_mm256_setzero_si256(); R];
                let mut s_hi = [_mm256_setzero_si256(); R];
                for g in 0..8 {
                    let v = _mm256_loadu_si256(w.qs.as_ptr().add((8 * c + g) * 32).cast());
                    let lo = _mm256_and_si256(v, low4);
                    let hi = _mm256_and_si256(_mm256_srli_epi16::<4>(v), low4);
                    for i in 0..R {
                        let xq = xb[i].qs.as_ptr().add(64 * c + 4 * g);
                        s_lo[i] = Maddubs::dot(s_lo[i], lo, bcast4(xq));
                        s_hi[i] = Maddubs::dot(s_hi[i], hi, bcast4(xq.add(32)));
                    }
                }
                // Times the 6-bit scale: at most 63*30720 per lane and sub-block; the block's
                // sum of eight such stays far inside i32.
                let sc_lo = dup_u8(w.scales.as_ptr().add(8 * (2 * c)));
                let sc_hi = dup_u8(w.scales.as_ptr().add(8 * (2 * c + 1)));
                for i in 0..R {
                    let t = _mm256_add_epi32(
                        Maddubs::apply(s_lo[i], sc_lo),
                        Maddubs::apply(s_hi[i], sc_hi),
                    );
                    sumi[i] = _mm256_add_epi32(sumi[i], t);
                }
            }
            // Mins: sum_j m_j * (bsums[2j] + bsums[2j+1]) as `madd` of (m_j, m_j) with the
            // pair of bsums (each at most 16*128 = 2048 in magnitude): exact in i32.
            let mut summ = [_mm256_setzero_si256(); R];
            for j in 0..8 {
                let m = dup_u8(w.mins.as_ptr().add(8 * j));
                for i in 0..R {
                    let bs = _mm256_set1_epi32(std::ptr::read_unaligned(
                        xb[i].bsums.as_ptr().add(2 * j).cast::<i32>(),
                    ));
                    summ[i] = _mm256_add_epi32(summ[i], _mm256_madd_epi16(m, bs));
                }
            }
            // Scalar's `combine`, lane-wise: `acc + ((d*xd)*sumi - (dmin*xd)*summ)`, each
            // operation rounded once (intrinsics are never contracted to FMA).
            let d = f16x8(&w.d);
            let dmin = f16x8(&w.dmin);
            for i in 0..R {
                let xd = _mm256_set1_ps(xb[i].d);
                let t = _mm256_sub_ps(
                    _mm256_mul_ps(_mm256_mul_ps(d, xd), _mm256_cvtepi32_ps(sumi[i])),
                    _mm256_mul_ps(_mm256_mul_ps(dmin, xd), _mm256_cvtepi32_ps(summ[i])),
                );
                acc[i] = _mm256_add_ps(acc[i], t);
            }
        }
        acc
    }
}

/// [`q4k_tile`] on AVX-512 VNNI with 512-bit vectors, for `qs` interleaved in 8-byte groups
/// ([`super::Interleave::Eight`]): one 64-byte load holds eight positions of the eight rows
/// (dword `2r + h` = row `r`, positions `4h .. 4h+4` of the group), so one 8-byte broadcast of
/// activations (dwords alternating the two halves) feeds a whole `dpbusd`, half the
/// broadcasts per product of the 256-bit tiles. The two 16-bit-sized partial sums of a
/// sub-block pair are packed to i16 and scaled by one `dpwssd`; the halves are added at the end
/// of the block. Same integers as scalar, so the same bits.
///
/// # Safety
/// AVX2 + FMA + F16C + AVX-512 F/BW/VL/VNNI enabled; as [`q4k_tile`].
#[inline(always)]
unsafe fn q4k_tile_zmm<const R: usize>(wp: &[BlockQ4Kx8], xs: [*const BlockQ8K; R]) -> [__m256; R] {
    // SAFETY: as in `q4k_tile`: `(4c + t) * 64 + 64 <= 1024` weight bytes, `64c + 8t + 32 + 8
    // <= 256` activation bytes, `16c + 16 <= 64` scale bytes.
    unsafe {
        let low4 = _mm512_set1_epi8(0xF);
        // Scale bytes `[lo rows 0-7, hi rows 0-7]` of a sub-block pair to the i16 pairs of the
        // packed sums: 128-bit lane `L` is (lo 2L, lo 2L+1, hi 2L, hi 2L+1), each twice.
        let spread = _mm256_setr_epi8(
            0, 0, 1, 1, 8, 8, 9, 9, 2, 2, 3, 3, 10, 10, 11, 11, //
            4, 4, 5, 5, 12, 12, 13, 13, 6, 6, 7, 7, 14, 14, 15, 15,
        );
        // Dwords 0, 1 of every 128-bit lane: rows 0-7 in order.
        let rows = _mm512_setr_epi32(0, 1, 4, 5, 8, 9, 12, 13, 0, 1, 4, 5, 8, 9, 12, 13);
        let mut acc = [_mm256_setzero_ps(); R];
        for (b, w) in wp.iter().enumerate() {
            if R == 1 {
                prefetch_ahead((w as *const BlockQ4Kx8).cast(), size_of::<BlockQ4Kx8>());
            }
            let xb: [&BlockQ8K; R] = std::array::from_fn(|i| &*xs[i].add(b));
            let mut sumi = [_mm512_setzero_si512(); R];
            for c in 0..4 {
                // Per dword: 4 steps of 4 products of at most 15*128: |sum| <= 30720, so the
                // pack to i16 below is exact.
                let mut s_lo = [_mm512_setzero_si512(); R];
                let mut s_hi = [_mm512_setzero_si512(); R];
                for t in 0..4 {
                    let v = _mm512_loadu_si512(w.qs.as_ptr().add((4 * c + t) * 64).cast());
                    let lo = _mm512_and_si512(v, low4);
                    let hi = _mm512_and_si512(_mm512_srli_epi16::<4>(v), low4);
                    for i in 0..R {
                        let xq = xb[i].qs.as_ptr().add(64 * c + 8 * t);
                        let x_lo = _mm512_set1_epi64(std::ptr::read_unaligned(xq.cast::<i64>()));
                        let x_hi =
                            _mm512_set1_epi64(std::ptr::read_unaligned(xq.add(32).cast::<i64>()));
                        s_lo[i] = _mm512_dpbusd_epi32(s_lo[i], lo, x_lo);
                        s_hi[i] = _mm512_dpbusd_epi32(s_hi[i], hi, x_hi);
                    }
                }
                // Packed lane `L`: (lo 2L, lo 2L+1, hi 2L, hi 2L+1) as i16 halves pairs; one
                // `dpwssd` with the 6-bit scales gives four row sums of at most
                // 2*63*30720 per dword, the block's eight sub-blocks far inside i32.
                let sc = _mm256_broadcastsi128_si256(_mm_loadu_si128(
                    w.scales.as_ptr().add(16 * c).cast(),
                ));
                let sc = _mm512_cvtepu8_epi16(_mm256_shuffle_epi8(sc, spread));
                for i in 0..R {
                    let packed = _mm512_packs_epi32(s_lo[i], s_hi[i]);
                    sumi[i] = _mm512_dpwssd_epi32(sumi[i], packed, sc);
                }
            }
            // Mins: sum_j m_j * (bsums[2j] + bsums[2j+1]) in four `dpwssd` steps `q` over
            // 16 dwords `2r + p`, each the word pair (m_{2q+p}, m_{2q+p}) of row `r` times
            // (bsums[4q+2p], bsums[4q+2p+1]), which one 8-byte broadcast of bsums lays out.
            // Each product is at most 63*2048 in magnitude: exact in i32.
            let mut summ = [_mm512_setzero_si512(); R];
            for q in 0..4 {
                // Bytes 16q .. 16q+16 are m_{2q} then m_{2q+1} of rows 0-7; interleaved, they
                // are the 16 dwords' mins, widened to both words of each.
                let m = _mm_loadu_si128(w.mins.as_ptr().add(16 * q).cast());
                let m = _mm512_cvtepu8_epi32(_mm_unpacklo_epi8(m, _mm_srli_si128::<8>(m)));
                let m = _mm512_or_si512(m, _mm512_slli_epi32::<16>(m));
                for i in 0..R {
                    let bs = _mm512_set1_epi64(std::ptr::read_unaligned(
                        xb[i].bsums.as_ptr().add(4 * q).cast::<i64>(),
                    ));
                    summ[i] = _mm512_dpwssd_epi32(summ[i], m, bs);
                }
            }
            let d = f16x8(&w.d);
            let dmin = f16x8(&w.dmin);
            for i in 0..R {
                // Row r = its lo dword + its hi dword (exact in i32).
                let s = _mm512_add_epi32(sumi[i], _mm512_shuffle_epi32::<0x4E>(sumi[i]));
                let s = _mm512_castsi512_si256(_mm512_permutexvar_epi32(rows, s));
                // Row r's mins = dwords 2r + 2r+1: add the neighbour, keep each qword's low.
                let m = _mm512_add_epi32(summ[i], _mm512_shuffle_epi32::<0xB1>(summ[i]));
                let m = _mm512_cvtepi64_epi32(m);
                let xd = _mm256_set1_ps(xb[i].d);
                let t = _mm256_sub_ps(
                    _mm256_mul_ps(_mm256_mul_ps(d, xd), _mm256_cvtepi32_ps(s)),
                    _mm256_mul_ps(_mm256_mul_ps(dmin, xd), _mm256_cvtepi32_ps(m)),
                );
                acc[i] = _mm256_add_ps(acc[i], t);
            }
        }
        acc
    }
}

/// [`q4k_tile`] for Q6_K, whose repacked values are whole bytes (`q + 32`, 0..64): no
/// unpacking, one load per four positions of the eight rows.
///
/// # Safety
/// As [`q4k_tile`].
#[inline(always)]
unsafe fn q6k_tile<D: ByteDots, const R: usize>(
    wp: &[BlockQ6Kx8],
    xs: [*const BlockQ8K; R],
) -> [__m256; R] {
    // SAFETY: as in `q4k_tile`: `16g + 12 + 4 <= 256` activation bytes, `(4g + 3) * 32 + 32
    // <= 2048` weight bytes, `8g + 8 <= 128` scale bytes.
    unsafe {
        let mut acc = [_mm256_setzero_ps(); R];
        for (b, w) in wp.iter().enumerate() {
            let xb: [&BlockQ8K; R] = std::array::from_fn(|i| &*xs[i].add(b));
            let mut sumi = [_mm256_setzero_si256(); R];
            for g in 0..16 {
                // Group `g`: positions 16g .. 16g+16, one scale per row.
                let sc = D::scales_i8(w.scales.as_ptr().add(8 * g));
                let v: [__m256i; 4] = std::array::from_fn(|u| {
                    _mm256_loadu_si256(w.q.as_ptr().add((4 * g + u) * 32).cast())
                });
                for i in 0..R {
                    let xq = xb[i].qs.as_ptr().add(16 * g);
                    // Each step adds 4 products of at most 63*128 per lane (two i16 sums of
                    // 2 of them with `Maddubs`): `Q6_DOTS` = 2 steps keep an i16 sum within
                    // 4*63*128 = 32256 < 32768; in i32 (`Vnni`) all four fit.
                    for u0 in (0..4).step_by(D::Q6_DOTS) {
                        let mut s = _mm256_setzero_si256();
                        for u in u0..u0 + D::Q6_DOTS {
                            s = D::dot(s, v[u], bcast4(xq.add(4 * u)));
                        }
                        sumi[i] = _mm256_add_epi32(sumi[i], D::apply(s, sc));
                    }
                }
            }
            q6k_finish(w, &xb, &mut sumi, &mut acc);
        }
        acc
    }
}

/// The end of a Q6_K block for every row of a tile: the `-32` offset from the bsums and
/// scalar's combine `acc + (d*xd) * sumi`, each operation rounded once.
///
/// # Safety
/// AVX2 + F16C enabled.
#[inline(always)]
unsafe fn q6k_finish<const R: usize>(
    w: &BlockQ6Kx8,
    xb: &[&BlockQ8K; R],
    sumi: &mut [__m256i; R],
    acc: &mut [__m256; R],
) {
    // SAFETY: every pointer stays inside `w.scales` (128 bytes) or a block's `bsums`.
    unsafe {
        // sum_g sc_g * bsum_g as (sc_2p, sc_2p+1) x (bsum_2p, bsum_2p+1) `madd`s (at most
        // 2*128*2048 each, 8 of them; times 32 still < 2^28).
        let mut off = [_mm256_setzero_si256(); R];
        for p in 0..8 {
            let sp = pair_i8(
                w.scales.as_ptr().add(8 * (2 * p)),
                w.scales.as_ptr().add(8 * (2 * p + 1)),
            );
            for i in 0..R {
                let bs = _mm256_set1_epi32(std::ptr::read_unaligned(
                    xb[i].bsums.as_ptr().add(2 * p).cast::<i32>(),
                ));
                off[i] = _mm256_add_epi32(off[i], _mm256_madd_epi16(sp, bs));
            }
        }
        let d = f16x8(&w.d);
        for i in 0..R {
            let s = _mm256_sub_epi32(sumi[i], _mm256_slli_epi32::<5>(off[i]));
            let xd = _mm256_set1_ps(xb[i].d);
            let t = _mm256_mul_ps(_mm256_mul_ps(d, xd), _mm256_cvtepi32_ps(s));
            acc[i] = _mm256_add_ps(acc[i], t);
        }
    }
}

/// The loop nest shared by every tile: `tile::<GENERICS.., R>(panel, rows)` computes one
/// register tile of `R` activation rows.
macro_rules! x8_driver {
    ($name:ident, $w:ty, $tile:ident, [$($gen:ty),*], tiles [$top:literal $(, $r_:literal)*], $features:literal) => {
        /// # Safety
        /// The CPU has the features this function enables, and the slices match `dims`
        /// (checked by the safe wrapper in `x8`): `rows % 8 == 0`, `w` holds `rows / 8 *
        /// k/256` blocks, `xq` `n * k/256`, `y` at least `(n-1) * y_stride + rows` values.
        #[target_feature(enable = $features)]
        pub unsafe fn $name(xq: &[BlockQ8K], w: &[$w], y: &mut [f32], dims: MatmulDims) {
            let nb = dims.k / QK_K;
            let panels = dims.rows / ROWS;
            let chunk = chunk_rows(nb, $top);
            let x = xq.as_ptr();
            let yp = y.as_mut_ptr();
            let mut i0 = 0;
            while i0 < dims.n {
                let i_end = (i0 + chunk).min(dims.n);
                for p in 0..panels {
                    let wp = &w[p * nb..(p + 1) * nb];
                    let mut i = i0;
                    while i < i_end {
                        let t = (i_end - i).min($top);
                        // SAFETY: rows `i .. i+t` are below `n`, so each row pointer has `nb`
                        // blocks of `xq` behind it; the stores write 8 values at
                        // `row * y_stride + 8p`, inside `(n-1) * y_stride + rows`.
                        unsafe {
                            let row = |j: usize| x.add((i + j) * nb);
                            let out = |j: usize| yp.add((i + j) * dims.y_stride + ROWS * p);
                            macro_rules! tile {
                                ($r:literal) => {{
                                    let a = $tile::<$($gen,)* $r>(wp, std::array::from_fn(row));
                                    for (j, a) in a.into_iter().enumerate() {
                                        _mm256_storeu_ps(out(j), a);
                                    }
                                }};
                            }
                            match t {
                                $top => tile!($top),
                                $($r_ => tile!($r_),)*
                                _ => unreachable!("tiles of 1 to {} rows", $top),
                            }
                        }
                        i += t;
                    }
                }
                i0 = i_end;
            }
        }
    };
}

x8_driver!(
    matmul_q4kx8_q8k,
    BlockQ4Kx8,
    q4k_tile,
    [],
    tiles [4, 3, 2, 1],
    "avx2,fma,f16c"
);
x8_driver!(
    matmul_q6kx8_q8k,
    BlockQ6Kx8,
    q6k_tile,
    [Maddubs],
    tiles [4, 3, 2, 1],
    "avx2,fma,f16c"
);
x8_driver!(
    matmul_q4kx8_q8k_vnni512,
    BlockQ4Kx8,
    q4k_tile_zmm,
    [],
    tiles [6, 5, 4, 3, 2, 1],
    "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni"
);
x8_driver!(
    matmul_q6kx8_q8k_vnni,
    BlockQ6Kx8,
    q6k_tile,
    [Vnni],
    tiles [4, 3, 2, 1],
    "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni"
);
