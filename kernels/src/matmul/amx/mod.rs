//! Q4_K and Q6_K weights repacked at load into 16-row panels for Intel AMX (Advanced Matrix
//! Extensions: eight 1 KiB tile registers and `tdpbsud`, a 16 x 16 block of i32 dot products of
//! signed activation bytes with unsigned weight bytes in one instruction), the `q8k-amx` design.
//!
//! A panel block holds block `b` of weight rows `16p..16p+16`; the bytes are interleaved in
//! groups of 4 over the 16 rows ([`super::x8::interleave`] with 16 rows: byte `o` of row `r` at
//! `(o / 4) * 64 + 4r + o % 4`), which is the layout of an AMX `B` tile: tile row `kk` holds the
//! four bytes `4kk .. 4kk+4` of every weight row, one dword per output column. So the 32 values
//! of a Q4_K sub-block are 512 bytes, one `B` tile of 8 rows once the nibbles are split (the
//! kernel splits each panel block once into an L1 buffer and reuses it for every activation
//! row), and the 16 values of a Q6_K scale group (whole bytes `q + 32`) are a 4-row `B` tile
//! read straight from the repacked weights. The activations are the `A` tile, read in place
//! from the Q8_K blocks (16 tokens, 32 or 16 bytes each, stride one activation row).
//!
//! Each tile product gives, for up to 16 tokens and the 16 rows, exactly the integer dot of one
//! sub-block (or group) that scalar's `block_sums` forms; AVX-512 then applies the 6-bit scales
//! and the mins (or the Q6_K `-32` offset) in i32 and scalar's f32 combine per block, so the
//! results are bit-identical to `q4k::scalar::matmul_q8k` / `q6k::scalar::matmul_q8k` on the
//! original blocks (the `harness verify` rows check it).
//!
//! AMX is not an [`Isa`](crate::Isa) of its own: the design runs under `Isa::Avx512` on CPUs
//! that also have AMX-TILE and AMX-INT8 and whose OS grants the process the tile state
//! ([`available`]). Stable Rust has no AMX intrinsics or feature detection yet, so the tile
//! instructions are inline assembly ([`x86`]) and detection reads `cpuid` and asks Linux for the
//! state itself.

#[cfg(target_arch = "x86_64")]
pub mod x86;

use super::x8::{alloc, check_shape, deinterleave, for_panels, interleave, q6k_values};
use super::x8::{q6k_pack_values, RepackError};
use super::MatmulDims;
use crate::mem::PageBuf;
use crate::quant::{q4k_unpack_scales_mins, BlockQ4K, BlockQ6K, BlockQ8K, QK_K};
use bytemuck::{Pod, Zeroable};
use half::f16;

/// Weight rows per panel: the 16 i32 columns of an AMX tile (and lanes of a 512-bit vector).
pub const ROWS: usize = 16;

/// Block `b` of 16 consecutive Q4_K weight rows (2368 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
pub struct BlockQ4Kx16 {
    /// The 16 rows' `d`.
    pub d: [f16; ROWS],
    /// The 16 rows' `dmin`.
    pub dmin: [f16; ROWS],
    /// 6-bit scale of sub-block `j` of row `r` at `16 * j + r`.
    pub scales: [u8; 128],
    /// 6-bit min of sub-block `j` of row `r` at `16 * j + r`.
    pub mins: [u8; 128],
    /// The rows' `qs`, interleaved in groups of 4 bytes: bytes `512c .. 512c + 512` are, as low
    /// nibbles, the `B` tile of sub-block `2c` and, as high nibbles, that of `2c + 1`.
    pub qs: [u8; 2048],
}

const _: () = assert!(std::mem::size_of::<BlockQ4Kx16>() == 2368);

/// Block `b` of 16 consecutive Q6_K weight rows, values widened to whole bytes `q + 32` (4384
/// bytes): group `g` (16 values) of the 16 rows is the 256-byte `B` tile at `256 g`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
pub struct BlockQ6Kx16 {
    /// The rows' values `q + 32` in position order, interleaved in groups of 4 bytes.
    pub q: [u8; 4096],
    /// Scale of group `g` of row `r` at `16 * g + r`.
    pub scales: [i8; 256],
    /// The 16 rows' `d`.
    pub d: [f16; ROWS],
}

const _: () = assert!(std::mem::size_of::<BlockQ6Kx16>() == 4384);

/// Whether this CPU and OS run the AMX kernels: AVX-512 F/BW/VL/VNNI (the epilogue),
/// AMX-TILE + AMX-INT8, and Linux granting the process the tile data state. Asked once.
pub fn available() -> bool {
    unavailable_reason().is_none()
}

/// Why the AMX kernels cannot run here, or `None` when they can. Asked once per process (the
/// first call also requests the tile state from Linux, which then holds for every thread).
pub fn unavailable_reason() -> Option<&'static str> {
    static REASON: std::sync::OnceLock<Option<&'static str>> = std::sync::OnceLock::new();
    *REASON.get_or_init(detect)
}

#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
fn detect() -> Option<&'static str> {
    if !crate::Isa::Avx512.is_available() {
        return Some("the CPU lacks AVX-512 F/BW/VL/VNNI");
    }
    // Leaf 7 exists where AVX-512 does.
    let leaf7 = std::arch::x86_64::__cpuid_count(7, 0);
    if leaf7.edx & (1 << 24) == 0 || leaf7.edx & (1 << 25) == 0 {
        return Some("the CPU lacks AMX-TILE / AMX-INT8");
    }
    // Linux hands out the 8 KiB of tile data only to processes that ask (arch_prctl
    // ARCH_REQ_XCOMP_PERM for XFEATURE_XTILEDATA, Linux 5.16 and later); without it the first
    // tile instruction faults.
    const ARCH_REQ_XCOMP_PERM: libc::c_long = 0x1023;
    const XFEATURE_XTILEDATA: libc::c_long = 18;
    // SAFETY: a plain system call with integer arguments; it changes no memory of ours.
    let granted = unsafe {
        libc::syscall(
            libc::SYS_arch_prctl,
            ARCH_REQ_XCOMP_PERM,
            XFEATURE_XTILEDATA,
        )
    };
    if granted != 0 {
        return Some("the OS does not grant the AMX tile state (arch_prctl refused)");
    }
    None
}

#[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
fn detect() -> Option<&'static str> {
    Some("AMX runs on x86_64 Linux only")
}

/// Asserts [`available`].
#[track_caller]
fn assert_available() {
    if let Some(why) = unavailable_reason() {
        panic!("the AMX kernels cannot run here: {why}");
    }
}

fn repack_q4k_panel(src: &[BlockQ4K], out: &mut [BlockQ4Kx16]) {
    let nb = out.len();
    for (b, o) in out.iter_mut().enumerate() {
        let rows: [&BlockQ4K; ROWS] = std::array::from_fn(|r| &src[r * nb + b]);
        for (r, w) in rows.iter().enumerate() {
            o.d[r] = w.d;
            o.dmin[r] = w.dmin;
            let (sc, m) = q4k_unpack_scales_mins(&w.scales);
            for j in 0..8 {
                o.scales[ROWS * j + r] = sc[j];
                o.mins[ROWS * j + r] = m[j];
            }
        }
        interleave::<4, 128, ROWS>(rows.map(|w| &w.qs), &mut o.qs);
    }
}

fn repack_q6k_panel(src: &[BlockQ6K], out: &mut [BlockQ6Kx16]) {
    let nb = out.len();
    for (b, o) in out.iter_mut().enumerate() {
        let rows: [&BlockQ6K; ROWS] = std::array::from_fn(|r| &src[r * nb + b]);
        for (r, w) in rows.iter().enumerate() {
            o.d[r] = w.d;
            for g in 0..16 {
                o.scales[ROWS * g + r] = w.scales[g];
            }
        }
        let values = rows.map(q6k_values);
        interleave::<4, QK_K, ROWS>(std::array::from_fn(|r| &values[r]), &mut o.q);
    }
}

/// Repacks a row-major Q4_K matrix of `rows` rows (a multiple of 16) using up to `threads`
/// threads.
pub fn repack_q4k(
    src: &[BlockQ4K],
    rows: usize,
    threads: usize,
) -> Result<PageBuf<BlockQ4Kx16>, RepackError> {
    let nb = check_shape(src.len(), rows, ROWS)?;
    let mut out = alloc::<BlockQ4Kx16>(src.len() / ROWS)?;
    for_panels(src, &mut out, (nb, ROWS), threads, repack_q4k_panel);
    Ok(out)
}

/// Repacks a row-major Q6_K matrix of `rows` rows (a multiple of 16) using up to `threads`
/// threads.
pub fn repack_q6k(
    src: &[BlockQ6K],
    rows: usize,
    threads: usize,
) -> Result<PageBuf<BlockQ6Kx16>, RepackError> {
    let nb = check_shape(src.len(), rows, ROWS)?;
    let mut out = alloc::<BlockQ6Kx16>(src.len() / ROWS)?;
    for_panels(src, &mut out, (nb, ROWS), threads, repack_q6k_panel);
    Ok(out)
}

/// The inverse of [`repack_q4k`] for a matrix of `nb` blocks per row.
pub fn unpack_q4k(x16: &[BlockQ4Kx16], nb: usize) -> Vec<BlockQ4K> {
    let mut out = vec![BlockQ4K::zeroed(); x16.len() * ROWS];
    for (p, panel) in x16.chunks(nb).enumerate() {
        for (b, o) in panel.iter().enumerate() {
            for r in 0..ROWS {
                let w = &mut out[(p * ROWS + r) * nb + b];
                w.d = o.d[r];
                w.dmin = o.dmin[r];
                let sc: [u8; 8] = std::array::from_fn(|j| o.scales[ROWS * j + r]);
                let m: [u8; 8] = std::array::from_fn(|j| o.mins[ROWS * j + r]);
                w.scales = crate::quant::q4k_pack_scales_mins(&sc, &m);
                w.qs = deinterleave(&o.qs, r, 4, ROWS);
            }
        }
    }
    out
}

/// The inverse of [`repack_q6k`].
pub fn unpack_q6k(x16: &[BlockQ6Kx16], nb: usize) -> Vec<BlockQ6K> {
    let mut out = vec![BlockQ6K::zeroed(); x16.len() * ROWS];
    for (p, panel) in x16.chunks(nb).enumerate() {
        for (b, o) in panel.iter().enumerate() {
            for r in 0..ROWS {
                let w = &mut out[(p * ROWS + r) * nb + b];
                w.d = o.d[r];
                w.scales = std::array::from_fn(|g| o.scales[ROWS * g + r]);
                (w.ql, w.qh) = q6k_pack_values(&deinterleave(&o.q, r, 4, ROWS));
            }
        }
    }
    out
}

#[cfg(target_arch = "x86_64")]
/// Checks the shapes of a call: `rows` a multiple of 16 and `w` `rows / 16 * k/256` blocks.
#[track_caller]
fn check(dims: &MatmulDims, x_len: usize, w_len: usize, y_len: usize) {
    assert!(
        dims.rows.is_multiple_of(ROWS),
        "AMX rows = {} is not a multiple of 16",
        dims.rows
    );
    let nb = dims.k / QK_K;
    let w_rows_blocks = w_len
        .checked_mul(ROWS)
        .expect("AMX weight length overflows");
    dims.check_elements(QK_K, x_len, nb, w_rows_blocks, nb, y_len);
}

/// `y = xq * w^T` for a Q4_K matrix repacked by [`repack_q4k`], bit-identical to
/// [`matmul_q4k_q8k`](super::matmul_q4k_q8k) on the original blocks.
///
/// # Panics
/// If AMX is not [`available`], or the slices do not match `dims`.
pub fn matmul_q4kx16_q8k(xq: &[BlockQ8K], w: &[BlockQ4Kx16], y: &mut [f32], dims: MatmulDims) {
    #[cfg(target_arch = "x86_64")]
    run(xq, w, y, dims, x86::matmul_q4kx16_q8k);
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (xq, w, y, dims);
        assert_available();
    }
}

/// `y = xq * w^T` for a Q6_K matrix repacked by [`repack_q6k`], bit-identical to
/// [`matmul_q6k_q8k`](super::matmul_q6k_q8k) on the original blocks.
///
/// # Panics
/// As [`matmul_q4kx16_q8k`].
pub fn matmul_q6kx16_q8k(xq: &[BlockQ8K], w: &[BlockQ6Kx16], y: &mut [f32], dims: MatmulDims) {
    #[cfg(target_arch = "x86_64")]
    run(xq, w, y, dims, x86::matmul_q6kx16_q8k);
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (xq, w, y, dims);
        assert_available();
    }
}

/// The checks of both entry points, then `kernel`.
#[cfg(target_arch = "x86_64")]
#[track_caller]
fn run<W>(
    xq: &[BlockQ8K],
    w: &[W],
    y: &mut [f32],
    dims: MatmulDims,
    kernel: unsafe fn(&[BlockQ8K], &[W], &mut [f32], MatmulDims),
) {
    assert_available();
    check(&dims, xq.len(), w.len(), y.len());
    if dims.n == 0 || dims.rows == 0 {
        return;
    }
    // SAFETY: `assert_available` checked AVX-512 and AMX and obtained the tile state; `check`
    // the shapes the kernel's unchecked loads and tile loads rely on.
    unsafe { kernel(xq, w, y, dims) }
}

// The tests need the kernels, which are x86_64 only (elsewhere every call panics).
#[cfg(all(test, target_arch = "x86_64"))]
mod tests;
