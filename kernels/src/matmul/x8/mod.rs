//! Q4_K and Q6_K weights repacked at load into 8-row interleaved blocks, for the x86 `q8k`
//! kernels in [`x86`] (AVX2, and AVX-512 VNNI): one 32-byte load holds the same four byte
//! positions of eight consecutive weight rows (on AVX-512, one 64-byte load eight positions of
//! Q4_K), so the eight rows are the i32 lanes of every vector, the activations are broadcast,
//! and no per-block horizontal reduction is left.
//!
//! Block `b` of panel `p` holds block `b` of weight rows `8p..8p+8`; a matrix of `rows` rows
//! (a multiple of 8: matrices with a tail keep the original layout and kernels) and `nb` blocks
//! per row is `rows / 8 * nb` repacked blocks, panel-major. Every byte array of a block is
//! interleaved the same way ([`interleave`]) in groups of `G` bytes: byte `o` of row `r` lands
//! at `(o / G) * 8G + G * r + o % G`. `G` is 4 (one 32-byte AVX2 vector holds four positions of
//! the eight rows) except for the Q4_K `qs` on AVX-512, where it is 8 ([`Interleave::q4k`]: one
//! 64-byte vector holds eight positions, and one 8-byte broadcast of activations feeds it).
//! Scales (and Q4_K mins) are stored unpacked as `[sub-block][row]` bytes.
//!
//! The kernels compute exactly the integers of the scalar oracle's `block_sums` / `block_sum`
//! and combine them with the same f32 operations in the same block order, so their outputs are
//! bit-identical to `q4k::scalar::matmul_q8k` / `q6k::scalar::matmul_q8k` on the original
//! blocks (the `harness verify` rows check it).

#[cfg(target_arch = "x86_64")]
pub mod x86;

use super::MatmulDims;
use crate::mem::PageBuf;
use crate::quant::{q4k_unpack_scales_mins, BlockQ4K, BlockQ6K, BlockQ8K, QK_K};
use crate::Isa;
use bytemuck::{Pod, Zeroable};
use half::f16;

/// Weight rows per repacked block: the eight i32 lanes of an AVX2 vector.
pub const ROWS: usize = 8;

/// Block `b` of 8 consecutive Q4_K weight rows (1184 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
pub struct BlockQ4Kx8 {
    /// The 8 rows' `d`.
    pub d: [f16; ROWS],
    /// The 8 rows' `dmin`.
    pub dmin: [f16; ROWS],
    /// 6-bit scale of sub-block `j` of row `r` at `8 * j + r`.
    pub scales: [u8; 64],
    /// 6-bit min of sub-block `j` of row `r` at `8 * j + r`.
    pub mins: [u8; 64],
    /// The rows' `qs`, interleaved by [`interleave`] in groups of [`Interleave::q4k`] bytes.
    pub qs: [u8; 1024],
}

const _: () = assert!(std::mem::size_of::<BlockQ4Kx8>() == 1184);

/// Block `b` of 8 consecutive Q6_K weight rows, its 6-bit values widened to whole bytes (2192
/// bytes, 30% more than the eight rows' 1680): the kernels do no bit unpacking, which is most of
/// a Q6_K kernel's vector work, and their decode is bound by that work rather than by memory on
/// the machines measured here.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
pub struct BlockQ6Kx8 {
    /// The rows' unsigned values `q + 32` (0..64) in position order ([`q6k_values`]),
    /// interleaved by [`interleave`] in groups of 4.
    pub q: [u8; 2048],
    /// Scale of group `g` (16 values) of row `r` at `8 * g + r`.
    pub scales: [i8; 128],
    /// The 8 rows' `d`.
    pub d: [f16; ROWS],
}

const _: () = assert!(std::mem::size_of::<BlockQ6Kx8>() == 2192);

/// The 256 unsigned 6-bit values of a Q6_K block (`q + 32`, 0..64) in position order, decoded
/// by [`BlockQ6K::signed_quad`] (positions `128h + 32part + l`).
pub fn q6k_values(w: &BlockQ6K) -> [u8; QK_K] {
    let mut v = [0u8; QK_K];
    for h in 0..2 {
        for l in 0..32 {
            for (part, q) in w.signed_quad(h, l).into_iter().enumerate() {
                v[128 * h + 32 * part + l] = (q + 32) as u8;
            }
        }
    }
    v
}

/// The inverse of [`q6k_values`]: `ql` and `qh` (every bit of both is a value bit, so any
/// block round-trips).
pub(crate) fn q6k_pack_values(v: &[u8; QK_K]) -> ([u8; 128], [u8; 64]) {
    let (mut ql, mut qh) = ([0u8; 128], [0u8; 64]);
    for h in 0..2 {
        for l in 0..32 {
            let q: [u8; 4] = std::array::from_fn(|part| v[128 * h + 32 * part + l]);
            ql[64 * h + l] = (q[0] & 0xF) | ((q[2] & 0xF) << 4);
            ql[64 * h + l + 32] = (q[1] & 0xF) | ((q[3] & 0xF) << 4);
            qh[32 * h + l] =
                (q[0] >> 4) | ((q[1] >> 4) << 2) | ((q[2] >> 4) << 4) | ((q[3] >> 4) << 6);
        }
    }
    (ql, qh)
}

/// The byte group of the Q4_K `qs` interleave: what one vector of the ISA's x8 kernel holds of
/// each of the eight rows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Interleave {
    /// 4 bytes: a 256-bit vector of eight rows (AVX2).
    Four,
    /// 8 bytes: a 512-bit vector of eight rows (AVX-512 VNNI).
    Eight,
}

impl Interleave {
    /// The Q4_K `qs` interleave of `isa`'s x8 kernel. Weights repacked for one ISA run on another
    /// only if the two agree here.
    pub fn q4k(isa: Isa) -> Interleave {
        match isa {
            Isa::Avx512 => Interleave::Eight,
            _ => Interleave::Four,
        }
    }

    /// Bytes per group.
    pub fn bytes(self) -> usize {
        match self {
            Interleave::Four => 4,
            Interleave::Eight => 8,
        }
    }
}

/// Writes byte `o` of `rows[r]` to `out[(o / G) * R G + G * r + o % G]` (`R` = 8 here, 16 for
/// the AMX panels of [`super::amx`]).
pub(crate) fn interleave<const G: usize, const L: usize, const R: usize>(
    rows: [&[u8; L]; R],
    out: &mut [u8],
) {
    debug_assert_eq!(out.len(), R * L);
    for (group, dst) in out.chunks_exact_mut(G * R).enumerate() {
        for (r, row) in rows.iter().enumerate() {
            dst[G * r..G * r + G].copy_from_slice(&row[G * group..G * group + G]);
        }
    }
}

/// The inverse of [`interleave`] for row `r` of `rows`, groups of `g` bytes.
pub(crate) fn deinterleave<const L: usize>(src: &[u8], r: usize, g: usize, rows: usize) -> [u8; L] {
    std::array::from_fn(|o| src[(o / g) * g * rows + g * r + o % g])
}

/// Why a matrix cannot be repacked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RepackError {
    #[error("{rows} weight rows is not a multiple of {panel}")]
    Rows { rows: usize, panel: usize },
    #[error("{blocks} blocks do not make {rows} rows of whole blocks")]
    Blocks { blocks: usize, rows: usize },
    #[error("cannot map memory for the repacked blocks: {0}")]
    Alloc(String),
}

/// `blocks / rows` (blocks per row) when `rows` is a multiple of `panel` and the blocks fill it.
pub(crate) fn check_shape(blocks: usize, rows: usize, panel: usize) -> Result<usize, RepackError> {
    if !rows.is_multiple_of(panel) {
        return Err(RepackError::Rows { rows, panel });
    }
    if rows == 0 || !blocks.is_multiple_of(rows) {
        return Err(RepackError::Blocks { blocks, rows });
    }
    Ok(blocks / rows)
}

pub(crate) fn alloc<T: Pod>(len: usize) -> Result<PageBuf<T>, RepackError> {
    PageBuf::zeroed(len).map_err(|e| RepackError::Alloc(e.to_string()))
}

/// Repacks one panel (`ROWS * nb` row-major blocks) into `out` (`nb` blocks).
fn repack_q4k_panel(src: &[BlockQ4K], out: &mut [BlockQ4Kx8], il: Interleave) {
    let nb = out.len();
    for (b, o) in out.iter_mut().enumerate() {
        let rows: [&BlockQ4K; ROWS] = std::array::from_fn(|r| &src[r * nb + b]);
        for (r, w) in rows.iter().enumerate() {
            o.d[r] = w.d;
            o.dmin[r] = w.dmin;
            let (sc, m) = q4k_unpack_scales_mins(&w.scales);
            for j in 0..8 {
                o.scales[8 * j + r] = sc[j];
                o.mins[8 * j + r] = m[j];
            }
        }
        match il {
            Interleave::Four => interleave::<4, 128, ROWS>(rows.map(|w| &w.qs), &mut o.qs),
            Interleave::Eight => interleave::<8, 128, ROWS>(rows.map(|w| &w.qs), &mut o.qs),
        }
    }
}

fn repack_q6k_panel(src: &[BlockQ6K], out: &mut [BlockQ6Kx8]) {
    let nb = out.len();
    for (b, o) in out.iter_mut().enumerate() {
        let rows: [&BlockQ6K; ROWS] = std::array::from_fn(|r| &src[r * nb + b]);
        for (r, w) in rows.iter().enumerate() {
            o.d[r] = w.d;
            for g in 0..16 {
                o.scales[8 * g + r] = w.scales[g];
            }
        }
        let values = rows.map(q6k_values);
        interleave::<4, QK_K, ROWS>(std::array::from_fn(|r| &values[r]), &mut o.q);
    }
}

/// Runs `f(src panel, out panel)` over the panels of `rows` weight rows (`rows * nb` source
/// blocks, `nb` packed ones), split over up to `threads` scoped threads.
pub(crate) fn for_panels<S: Sync, D: Send>(
    src: &[S],
    out: &mut [D],
    (nb, rows): (usize, usize),
    threads: usize,
    f: impl Fn(&[S], &mut [D]) + Sync,
) {
    let panels = out.len() / nb;
    let per = panels.div_ceil(threads.max(1)).max(1);
    std::thread::scope(|s| {
        for (src, out) in src.chunks(per * nb * rows).zip(out.chunks_mut(per * nb)) {
            let f = &f;
            s.spawn(move || {
                for (src, out) in src.chunks(nb * rows).zip(out.chunks_mut(nb)) {
                    f(src, out);
                }
            });
        }
    });
}

/// Repacks a row-major Q4_K matrix of `rows` rows (a multiple of 8) for the x8 kernel of
/// `isa` ([`Interleave::q4k`]) using up to `threads` threads.
pub fn repack_q4k(
    src: &[BlockQ4K],
    rows: usize,
    threads: usize,
    isa: Isa,
) -> Result<PageBuf<BlockQ4Kx8>, RepackError> {
    let nb = check_shape(src.len(), rows, ROWS)?;
    // Fresh zero pages of a huge-page-advised mapping: no zeroing pass before the repack
    // writes them, and decode streams them with fewer TLB misses.
    let mut out = alloc::<BlockQ4Kx8>(src.len() / ROWS)?;
    let il = Interleave::q4k(isa);
    for_panels(src, &mut out, (nb, ROWS), threads, |s, o| {
        repack_q4k_panel(s, o, il)
    });
    Ok(out)
}

/// Repacks a row-major Q6_K matrix of `rows` rows (a multiple of 8) using up to `threads`
/// threads.
pub fn repack_q6k(
    src: &[BlockQ6K],
    rows: usize,
    threads: usize,
) -> Result<PageBuf<BlockQ6Kx8>, RepackError> {
    let nb = check_shape(src.len(), rows, ROWS)?;
    let mut out = alloc::<BlockQ6Kx8>(src.len() / ROWS)?;
    for_panels(src, &mut out, (nb, ROWS), threads, repack_q6k_panel);
    Ok(out)
}

/// The original row-major blocks of a matrix with `nb` blocks per row repacked for `isa` (the
/// inverse of [`repack_q4k`]; the scales are packed again the one way `quant` packs them).
pub fn unpack_q4k(x8: &[BlockQ4Kx8], nb: usize, isa: Isa) -> Vec<BlockQ4K> {
    let g = Interleave::q4k(isa).bytes();
    let mut out = vec![BlockQ4K::zeroed(); x8.len() * ROWS];
    for (p, panel) in x8.chunks(nb).enumerate() {
        for (b, o) in panel.iter().enumerate() {
            for r in 0..ROWS {
                let w = &mut out[(p * ROWS + r) * nb + b];
                w.d = o.d[r];
                w.dmin = o.dmin[r];
                let sc: [u8; 8] = std::array::from_fn(|j| o.scales[8 * j + r]);
                let m: [u8; 8] = std::array::from_fn(|j| o.mins[8 * j + r]);
                w.scales = crate::quant::q4k_pack_scales_mins(&sc, &m);
                w.qs = deinterleave(&o.qs, r, g, ROWS);
            }
        }
    }
    out
}

/// The inverse of [`repack_q6k`].
pub fn unpack_q6k(x8: &[BlockQ6Kx8], nb: usize) -> Vec<BlockQ6K> {
    let mut out = vec![BlockQ6K::zeroed(); x8.len() * ROWS];
    for (p, panel) in x8.chunks(nb).enumerate() {
        for (b, o) in panel.iter().enumerate() {
            for r in 0..ROWS {
                let w = &mut out[(p * ROWS + r) * nb + b];
                w.d = o.d[r];
                w.scales = std::array::from_fn(|g| o.scales[8 * g + r]);
                (w.ql, w.qh) = q6k_pack_values(&deinterleave(&o.q, r, 4, ROWS));
            }
        }
    }
    out
}

/// Whether the x8 kernels run for `isa`: AVX2, and AVX-512 (whose kernels are the same tiles
/// with VNNI's `dpbusd` for the byte dots; every AVX-512 CPU this project targets also has
/// AVX2 + FMA + F16C). Scalar and NEON keep the original layout.
pub fn runs_on(isa: Isa) -> bool {
    matches!(isa, Isa::Avx2 | Isa::Avx512)
}

/// Checks the shapes of an x8 call: `rows` a multiple of 8 and `w` `rows / 8 * k/256` blocks.
#[track_caller]
fn check(dims: &MatmulDims, x_len: usize, w_len: usize, y_len: usize) {
    assert!(
        dims.rows.is_multiple_of(ROWS),
        "x8 rows = {} is not a multiple of 8",
        dims.rows
    );
    let nb = dims.k / crate::quant::QK_K;
    let w_rows_blocks = w_len.checked_mul(ROWS).expect("x8 weight length overflows");
    dims.check_elements(crate::quant::QK_K, x_len, nb, w_rows_blocks, nb, y_len);
}

/// `y = xq * w^T` for a Q4_K matrix repacked for `isa` (or an ISA of the same
/// [`Interleave::q4k`]), bit-identical to [`matmul_q4k_q8k`](super::matmul_q4k_q8k) on the
/// original blocks.
///
/// # Panics
/// If `isa` is not one [`runs_on`] admits or the CPU lacks it, or the slices do not match
/// `dims`.
pub fn matmul_q4kx8_q8k(
    isa: Isa,
    xq: &[BlockQ8K],
    w: &[BlockQ4Kx8],
    y: &mut [f32],
    dims: MatmulDims,
) {
    assert!(runs_on(isa), "the x8 kernels do not run for ISA {isa}");
    isa.assert_available();
    check(&dims, xq.len(), w.len(), y.len());
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `assert_available` checked the ISA's features (AVX2 + FMA + F16C; AVX-512 F/BW/
    // VL/VNNI implies them); `check` the shapes the kernel's unchecked loads rely on.
    unsafe {
        match isa {
            Isa::Avx512 => x86::matmul_q4kx8_q8k_vnni512(xq, w, y, dims),
            _ => x86::matmul_q4kx8_q8k(xq, w, y, dims),
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    unreachable!("runs_on admits no ISA of this architecture")
}

/// `y = xq * w^T` for a repacked Q6_K matrix, bit-identical to
/// [`matmul_q6k_q8k`](super::matmul_q6k_q8k) on the original blocks.
///
/// # Panics
/// As [`matmul_q4kx8_q8k`].
pub fn matmul_q6kx8_q8k(
    isa: Isa,
    xq: &[BlockQ8K],
    w: &[BlockQ6Kx8],
    y: &mut [f32],
    dims: MatmulDims,
) {
    assert!(runs_on(isa), "the x8 kernels do not run for ISA {isa}");
    isa.assert_available();
    check(&dims, xq.len(), w.len(), y.len());
    #[cfg(target_arch = "x86_64")]
    // SAFETY: as in `matmul_q4kx8_q8k`.
    unsafe {
        match isa {
            Isa::Avx512 => x86::matmul_q6kx8_q8k_vnni(xq, w, y, dims),
            _ => x86::matmul_q6kx8_q8k(xq, w, y, dims),
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    unreachable!("runs_on admits no ISA of this architecture")
}

#[cfg(test)]
pub(crate) mod tests;
