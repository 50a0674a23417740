//! The AMX kernels on the 16-row panels of [`super`]: tile products for the integer dots,
//! AVX-512 for the scales, mins and the f32 combine.
//!
//! Tile registers: `tmm0..tmm3` hold products (`C`, up to 16 tokens x 16 rows of i32), `tmm4`,
//! `tmm5` activations (`A`, tokens x 32 or 16 bytes, read in place from the Q8_K blocks), `tmm6`,
//! `tmm7` weights (`B`). Consecutive sub-blocks alternate registers, so a product can run while
//! the previous one is stored. Every product is stored to a small L1 buffer (`C` rows of 64
//! bytes), from which the vector epilogue multiplies each by its per-row scale in i32 (exact:
//! the bounds are written beside each step), adds the mins (or the Q6_K offset) and runs
//! scalar's f32 combine, block by block in scalar's order.
//!
//! Loop nest: activation rows in chunks that fit in L2, then 16-row weight panels, then tiles
//! of 16 tokens and, when a chunk is not a whole number of them, one shorter tile (with its own
//! tile configuration, loaded only when the number of tokens changes).
//!
//! Stable Rust has no AMX intrinsics, hence inline assembly; its operands are plain pointers
//! and strides, and each instruction's memory reach is stated where it is used.

use super::{BlockQ4Kx16, BlockQ6Kx16, ROWS};
use crate::matmul::MatmulDims;
use crate::quant::{BlockQ8K, QK_K};
use std::arch::asm;
use std::arch::x86_64::*;
use std::cell::RefCell;

/// Bytes of activations one chunk may take: a quarter of a 2 MiB L2 (Sapphire Rapids).
const CHUNK_BYTES: usize = 512 * 1024;

/// Tokens per tile: the 16 rows of an AMX tile.
const TILE_M: usize = 16;

/// Activation rows per chunk for `nb` blocks per row: a multiple of 16, at least 16.
fn chunk_rows(nb: usize) -> usize {
    let rows = CHUNK_BYTES / (nb * std::mem::size_of::<BlockQ8K>()).max(1);
    (rows / TILE_M * TILE_M).max(TILE_M)
}

/// The 64-byte operand of `ldtilecfg`: palette 1, then per tile its bytes per row (`colsb`) and
/// its rows.
#[repr(C, align(64))]
struct TileConfig([u8; 64]);

impl TileConfig {
    /// `C` tiles `m x 64` bytes, `A` tiles `m x a_bytes`, `B` tiles `a_bytes / 4 x 64`.
    fn new(m: usize, a_bytes: usize) -> TileConfig {
        let mut c = [0u8; 64];
        c[0] = 1;
        let mut set = |t: usize, rows: usize, colsb: usize| {
            c[16 + 2 * t..18 + 2 * t].copy_from_slice(&(colsb as u16).to_le_bytes());
            c[48 + t] = rows as u8;
        };
        for t in 0..4 {
            set(t, m, 64);
        }
        set(4, m, a_bytes);
        set(5, m, a_bytes);
        set(6, a_bytes / 4, 64);
        set(7, a_bytes / 4, 64);
        TileConfig(c)
    }

    /// Loads the configuration (zeroing every tile).
    ///
    /// # Safety
    /// AMX available and granted to the process ([`super::available`]).
    unsafe fn load(&self) {
        // SAFETY: reads the 64 bytes of `self`; the caller's contract.
        unsafe { asm!("ldtilecfg [{}]", in(reg) self.0.as_ptr(), options(nostack, readonly)) }
    }
}

/// Releases the tile state (so the OS need not save it on a context switch).
///
/// # Safety
/// AMX available.
unsafe fn tile_release() {
    // SAFETY: the caller's contract.
    unsafe { asm!("tilerelease", options(nostack, nomem)) }
}

/// One tile product `C(c) = A(a) . B(b)`: loads `A` (configured rows of the configured bytes at
/// `pa`, stride `sa`) and `B` (rows of 64 bytes at `pb`), and stores the i32 product rows (64
/// bytes each) at `pc`, stride 64.
macro_rules! product {
    ($c:literal, $a:literal, $b:literal, $pa:expr, $sa:expr, $pb:expr, $pc:expr) => {
        asm!(
            concat!("tileloadd tmm", $a, ", [{pa} + {sa} * 1]"),
            concat!("tileloadd tmm", $b, ", [{pb} + {s64} * 1]"),
            concat!("tilezero tmm", $c),
            concat!("tdpbsud tmm", $c, ", tmm", $a, ", tmm", $b),
            concat!("tilestored [{pc} + {s64} * 1], tmm", $c),
            pa = in(reg) $pa,
            sa = in(reg) $sa,
            pb = in(reg) $pb,
            pc = in(reg) $pc,
            s64 = in(reg) 64usize,
            options(nostack)
        )
    };
}

/// One 64-byte line, the unit of the scratch buffers.
#[repr(C, align(64))]
#[derive(Clone, Copy)]
struct Line([u8; 64]);

/// Products of one block: `G` sub-blocks (or groups) x 16 tokens x 16 rows of i32.
#[repr(C, align(64))]
struct Products<const G: usize>([[[i32; ROWS]; TILE_M]; G]);

thread_local! {
    /// The split nibbles of one Q4_K panel (4096 bytes a block), kept per thread: allocated on
    /// a thread's first call and grown only for wider matrices.
    static NIBBLES: RefCell<Vec<Line>> = const { RefCell::new(Vec::new()) };
}

/// Writes the eight `B` tiles of a Q4_K panel block (512 bytes each, sub-block order) to `out`.
///
/// # Safety
/// AVX-512 F/BW enabled; `out .. out+4096` writable.
#[inline(always)]
unsafe fn split_nibbles(w: &BlockQ4Kx16, out: *mut u8) {
    // SAFETY: 32 loads inside `w.qs` (2048 bytes), 64 stores inside `out`'s 4096.
    unsafe {
        let low4 = _mm512_set1_epi8(0xF);
        for c in 0..4 {
            for kk in 0..8 {
                let v = _mm512_loadu_si512(w.qs.as_ptr().add(512 * c + 64 * kk).cast());
                let lo = _mm512_and_si512(v, low4);
                let hi = _mm512_and_si512(_mm512_srli_epi16::<4>(v), low4);
                _mm512_store_si512(out.add(1024 * c + 64 * kk).cast(), lo);
                _mm512_store_si512(out.add(1024 * c + 512 + 64 * kk).cast(), hi);
            }
        }
    }
}

/// Sixteen u8 as sixteen i32 lanes.
///
/// # Safety
/// AVX-512 F enabled; `p .. p+16` readable.
#[inline(always)]
unsafe fn u8x16(p: *const u8) -> __m512i {
    // SAFETY: the caller's contract.
    unsafe { _mm512_cvtepu8_epi32(_mm_loadu_si128(p.cast())) }
}

/// Sixteen f16 as sixteen f32 (exact).
///
/// # Safety
/// AVX-512 F enabled.
#[inline(always)]
unsafe fn f16x16(v: &[half::f16; ROWS]) -> __m512 {
    // SAFETY: 16 f16 = 32 readable bytes.
    unsafe { _mm512_cvtph_ps(_mm256_loadu_si256(v.as_ptr().cast())) }
}

/// Two adjacent i16 of `p` as one i32, broadcast: the `dpwssd` operand of a pair of bsums.
///
/// # Safety
/// AVX-512 F enabled; `p .. p+2` readable.
#[inline(always)]
unsafe fn bcast_pair(p: *const i16) -> __m512i {
    // SAFETY: the caller's contract.
    unsafe { _mm512_set1_epi32(std::ptr::read_unaligned(p.cast::<i32>())) }
}

/// The tile of `m` tokens whose first Q8_K row starts at `xa` (rows `xs` bytes apart) times one
/// Q4_K panel `wp`, whose nibbles `split_nibbles` wrote to `bbuf`: row `t` of the result is
/// token `t`'s 16 outputs, accumulated exactly like scalar's row dot.
///
/// # Safety
/// AVX-512 F/BW/VL/VNNI enabled, AMX configured with `TileConfig::new(m, 32)`; `m` rows of
/// `wp.len()` blocks readable from `xa`; `bbuf` holds `wp.len()` split blocks.
#[inline(always)]
unsafe fn q4k_tile(
    wp: &[BlockQ4Kx16],
    xa: *const u8,
    xs: usize,
    m: usize,
    bbuf: *const u8,
    prod: &mut Products<8>,
) -> [__m512; TILE_M] {
    const XB: usize = std::mem::size_of::<BlockQ8K>();
    // SAFETY: tile loads read `m` rows of 32 bytes at `qs + 32j` (inside block `b` of each
    // token's row) and 8 rows of 64 bytes inside the split block; stores write `m` rows of 64
    // bytes inside `prod`. Vector loads stay inside `w`, `prod` and the tokens' blocks.
    unsafe {
        let mut acc = [_mm512_setzero_ps(); TILE_M];
        let pc = prod.0.as_mut_ptr().cast::<u8>();
        for (b, w) in wp.iter().enumerate() {
            let a = xa.add(b * XB + 4);
            let bb = bbuf.add(b * 4096);
            // Sub-block j: A = tokens' bytes 32j .. 32j+32, B = its 512-byte tile. Each i32 of
            // the product is a dot of 32 nibbles (<= 15) with 32 activations (>= -128):
            // |dot| <= 32 * 15 * 128 = 61440.
            product!(0, 4, 6, a, xs, bb, pc);
            product!(1, 5, 7, a.add(32), xs, bb.add(512), pc.add(1024));
            product!(2, 4, 6, a.add(64), xs, bb.add(1024), pc.add(2048));
            product!(3, 5, 7, a.add(96), xs, bb.add(1536), pc.add(3072));
            product!(0, 4, 6, a.add(128), xs, bb.add(2048), pc.add(4096));
            product!(1, 5, 7, a.add(160), xs, bb.add(2560), pc.add(5120));
            product!(2, 4, 6, a.add(192), xs, bb.add(3072), pc.add(6144));
            product!(3, 5, 7, a.add(224), xs, bb.add(3584), pc.add(7168));
            // The 6-bit scales as f32, and the mins as word pairs (m_2i, m_2i+1) per row for
            // `dpwssd` with the activations' 32-value sums (bs_2i, bs_2i+1).
            let sc: [__m512; 8] =
                std::array::from_fn(|j| _mm512_cvtepi32_ps(u8x16(w.scales.as_ptr().add(16 * j))));
            let mn: [__m512i; 4] = std::array::from_fn(|i| {
                let lo = u8x16(w.mins.as_ptr().add(32 * i));
                let hi = u8x16(w.mins.as_ptr().add(32 * i + 16));
                _mm512_or_si512(lo, _mm512_slli_epi32::<16>(hi))
            });
            let d = f16x16(&w.d);
            let dmin = f16x16(&w.dmin);
            for (t, acc) in acc.iter_mut().enumerate().take(m) {
                let xb = &*xa.add(t * xs + b * XB).cast::<BlockQ8K>();
                // Times the 6-bit scale in f32, exactly: each dot converts exactly (< 2^16),
                // each product is an integer below 63 * 61440 < 2^22, and each of the two
                // chains sums four of them, below 2^24 at every step, so every FMA is exact.
                // Their sum is then rounded once, as scalar's `sumi as f32` is.
                let (mut s0, mut s1) = (_mm512_setzero_ps(), _mm512_setzero_ps());
                for j in (0..8).step_by(2) {
                    let p0 = _mm512_load_si512(prod.0[j][t].as_ptr().cast());
                    let p1 = _mm512_load_si512(prod.0[j + 1][t].as_ptr().cast());
                    s0 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(p0), sc[j], s0);
                    s1 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(p1), sc[j + 1], s1);
                }
                let sumi = _mm512_add_ps(s0, s1);
                // Mins: sum_j m_j * bs_j with bs_j = bsums[2j] + bsums[2j+1] (|bs_j| <= 4096,
                // an i16; each product <= 63 * 4096, exact in i32).
                let bs = _mm256_madd_epi16(
                    _mm256_loadu_si256(xb.bsums.as_ptr().cast()),
                    _mm256_set1_epi16(1),
                );
                let mut pairs = [0i16; 16];
                _mm256_storeu_si256(pairs.as_mut_ptr().cast(), _mm256_packs_epi32(bs, bs));
                // `packs` works per 128-bit lane: bs_0..3 at words 0..3, bs_4..7 at 8..11.
                let mut summ = _mm512_setzero_si512();
                for (i, &mn) in mn.iter().enumerate() {
                    let at = 2 * (i % 2) + 8 * (i / 2);
                    summ = _mm512_dpwssd_epi32(summ, mn, bcast_pair(pairs.as_ptr().add(at)));
                }
                // Scalar's combine: `acc + ((d*xd)*sumi - (dmin*xd)*summ)`, each operation
                // rounded once (intrinsics are never contracted to FMA).
                let xd = _mm512_set1_ps(xb.d);
                let t = _mm512_sub_ps(
                    _mm512_mul_ps(_mm512_mul_ps(d, xd), sumi),
                    _mm512_mul_ps(_mm512_mul_ps(dmin, xd), _mm512_cvtepi32_ps(summ)),
                );
                *acc = _mm512_add_ps(*acc, t);
            }
        }
        acc
    }
}

/// [`q4k_tile`] for a Q6_K panel: sixteen 16-value groups a block, `B` tiles read in place.
///
/// # Safety
/// As [`q4k_tile`], with AMX configured with `TileConfig::new(m, 16)`.
#[inline(always)]
unsafe fn q6k_tile(
    wp: &[BlockQ6Kx16],
    xa: *const u8,
    xs: usize,
    m: usize,
    prod: &mut Products<16>,
) -> [__m512; TILE_M] {
    const XB: usize = std::mem::size_of::<BlockQ8K>();
    // SAFETY: as in `q4k_tile`: `A` rows of 16 bytes at `qs + 16g`, `B` 4 rows of 64 bytes at
    // `q + 256g` (inside 4096), products inside `prod`'s 16 KiB.
    unsafe {
        let mut acc = [_mm512_setzero_ps(); TILE_M];
        let pc = prod.0.as_mut_ptr().cast::<u8>();
        for (b, w) in wp.iter().enumerate() {
            let a = xa.add(b * XB + 4);
            let q = w.q.as_ptr();
            // Group g: each i32 is a dot of 16 values `q + 32` (<= 63) with 16 activations:
            // |dot| <= 16 * 63 * 128 = 129024.
            macro_rules! groups {
                ($($g:literal $c:literal $a:literal $b:literal),*) => {
                    $(product!($c, $a, $b, a.add(16 * $g), xs, q.add(256 * $g), pc.add(1024 * $g));)*
                };
            }
            groups!(0 0 4 6, 1 1 5 7, 2 2 4 6, 3 3 5 7, 4 0 4 6, 5 1 5 7, 6 2 4 6, 7 3 5 7);
            groups!(8 0 4 6, 9 1 5 7, 10 2 4 6, 11 3 5 7, 12 0 4 6, 13 1 5 7, 14 2 4 6, 15 3 5 7);
            let sc: [__m512i; 16] = std::array::from_fn(|g| {
                _mm512_cvtepi8_epi32(_mm_loadu_si128(w.scales.as_ptr().add(16 * g).cast()))
            });
            // Word pairs (sc_2p, sc_2p+1) per row, for `dpwssd` with (bsums[2p], bsums[2p+1]).
            let sp: [__m512i; 8] = std::array::from_fn(|p| {
                let lo = _mm512_and_si512(sc[2 * p], _mm512_set1_epi32(0xFFFF));
                _mm512_or_si512(lo, _mm512_slli_epi32::<16>(sc[2 * p + 1]))
            });
            let d = f16x16(&w.d);
            for (t, acc) in acc.iter_mut().enumerate().take(m) {
                let xb = &*xa.add(t * xs + b * XB).cast::<BlockQ8K>();
                // |sc * dot| <= 128 * 129024, sixteen of them < 2^29.
                let mut sumi = _mm512_setzero_si512();
                for (g, &sc) in sc.iter().enumerate() {
                    let p = _mm512_load_si512(prod.0[g][t].as_ptr().cast());
                    sumi = _mm512_add_epi32(sumi, _mm512_mullo_epi32(p, sc));
                }
                // The `q + 32` offset: sum_g sc_g * bsum_g (each product <= 128 * 2048, 16 of
                // them, times 32 < 2^28), subtracted from a sum < 2^29: exact in i32.
                let mut off = _mm512_setzero_si512();
                for (p, &sp) in sp.iter().enumerate() {
                    off = _mm512_dpwssd_epi32(off, sp, bcast_pair(xb.bsums.as_ptr().add(2 * p)));
                }
                let s = _mm512_sub_epi32(sumi, _mm512_slli_epi32::<5>(off));
                // Scalar's combine `acc + (d*xd) * sumi`.
                let xd = _mm512_set1_ps(xb.d);
                let t = _mm512_mul_ps(_mm512_mul_ps(d, xd), _mm512_cvtepi32_ps(s));
                *acc = _mm512_add_ps(*acc, t);
            }
        }
        acc
    }
}

/// The loop nest shared by both kernels: `tile(panel blocks, first token row, panel index)`
/// computes one tile of `m` tokens; `prepare(panel blocks)` runs once per panel and chunk.
///
/// # Safety
/// AVX-512 F/BW/VL/VNNI and AMX available; `dims` match the slices (checked by the wrappers).
#[inline(always)]
unsafe fn drive<W, const A_BYTES: usize>(
    xq: &[BlockQ8K],
    w: &[W],
    y: &mut [f32],
    dims: MatmulDims,
    mut prepare: impl FnMut(&[W]),
    mut tile: impl FnMut(&[W], *const u8, usize, usize) -> [__m512; TILE_M],
) {
    let nb = dims.k / QK_K;
    let (n, panels) = (dims.n, dims.rows / ROWS);
    let xs = nb * std::mem::size_of::<BlockQ8K>();
    let chunk = chunk_rows(nb);
    let x0 = xq.as_ptr().cast::<u8>();
    let yp = y.as_mut_ptr();
    let full = TileConfig::new(TILE_M, A_BYTES);
    // SAFETY: the caller's contract; every tile covers tokens `s .. s+m` with `s + m <= n`, so
    // its `A` rows and output rows exist; outputs `(s+t) * y_stride + 16p .. +16` lie inside
    // `y` as `check` verified. Each tile runs under the configuration of its `m`.
    unsafe {
        let mut loaded = 0;
        let mut run = |m: usize, s: usize, wp: &[W], p: usize| {
            if loaded != m {
                if m == TILE_M {
                    full.load();
                } else {
                    TileConfig::new(m, A_BYTES).load();
                }
                loaded = m;
            }
            let acc = tile(wp, x0.add(s * xs), xs, m);
            for (t, a) in acc.iter().enumerate().take(m) {
                _mm512_storeu_ps(yp.add((s + t) * dims.y_stride + ROWS * p), *a);
            }
        };
        let mut i0 = 0;
        while i0 < n {
            let i_end = (i0 + chunk).min(n);
            let tail = (i_end - i0) % TILE_M;
            for p in 0..panels {
                let wp = &w[p * nb..(p + 1) * nb];
                prepare(wp);
                // Whole tiles first, then the short one (a configuration load each way, a
                // few hundred cycles against a panel's thousands).
                for s in (i0..i_end - tail).step_by(TILE_M) {
                    run(TILE_M, s, wp, p);
                }
                if tail > 0 {
                    run(tail, i_end - tail, wp, p);
                }
            }
            i0 = i_end;
        }
        tile_release();
    }
}

/// # Safety
/// AMX available ([`super::available`]); the slices match `dims`: `rows % 16 == 0`, `w` holds
/// `rows / 16 * k/256` blocks, `xq` `n * k/256`, `y` at least `(n-1) * y_stride + rows` values,
/// `n > 0`.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
pub unsafe fn matmul_q4kx16_q8k(
    xq: &[BlockQ8K],
    w: &[BlockQ4Kx16],
    y: &mut [f32],
    dims: MatmulDims,
) {
    let nb = dims.k / QK_K;
    NIBBLES.with_borrow_mut(|buf| {
        if buf.len() < nb * 64 {
            buf.resize(nb * 64, Line([0; 64]));
        }
        let bbuf = buf.as_mut_ptr().cast::<u8>();
        let mut prod = Products::<8>([[[0; ROWS]; TILE_M]; 8]);
        // SAFETY: the caller's contract; `bbuf` holds `nb` split blocks of 4096 bytes.
        unsafe {
            drive::<_, 32>(
                xq,
                w,
                y,
                dims,
                |wp| {
                    for (b, wb) in wp.iter().enumerate() {
                        split_nibbles(wb, bbuf.add(4096 * b));
                    }
                },
                |wp, xa, xs, m| q4k_tile(wp, xa, xs, m, bbuf, &mut prod),
            )
        }
    })
}

/// # Safety
/// As [`matmul_q4kx16_q8k`].
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
pub unsafe fn matmul_q6kx16_q8k(
    xq: &[BlockQ8K],
    w: &[BlockQ6Kx16],
    y: &mut [f32],
    dims: MatmulDims,
) {
    let mut prod = Products::<16>([[[0; ROWS]; TILE_M]; 16]);
    // SAFETY: the caller's contract.
    unsafe {
        drive::<_, 16>(
            xq,
            w,
            y,
            dims,
            |_| {},
            |wp, xa, xs, m| q6k_tile(wp, xa, xs, m, &mut prod),
        )
    }
}
