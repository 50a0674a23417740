//! Portable Q4_K kernels: the oracle every SIMD variant is compared with.

use crate::matmul::driver::{matmul_tiled, RowDots};
use crate::matmul::MatmulDims;
use crate::quant::{q4k_scale_min, BlockQ4K, BlockQ8K, QK_K};

/// Dequantizes one block into `out`; the same arithmetic as `BlockQ4K::dequantize_row`:
/// each value is `(d*sc)*q - dmin*m`, where both products are exact in f32.
#[inline(always)]
fn dequantize_block(block: &BlockQ4K, out: &mut [f32; QK_K]) {
    let d = block.d.to_f32();
    let dmin = block.dmin.to_f32();
    for c in 0..4 {
        let (sc_lo, m_lo) = q4k_scale_min(2 * c, &block.scales);
        let (sc_hi, m_hi) = q4k_scale_min(2 * c + 1, &block.scales);
        let (d_lo, min_lo) = (d * sc_lo as f32, dmin * m_lo as f32);
        let (d_hi, min_hi) = (d * sc_hi as f32, dmin * m_hi as f32);
        for l in 0..32 {
            let q = block.qs[32 * c + l];
            out[64 * c + l] = d_lo * (q & 0xF) as f32 - min_lo;
            out[64 * c + 32 + l] = d_hi * (q >> 4) as f32 - min_hi;
        }
    }
}

/// f32 design: each weight block is dequantized once and used for every activation row of the
/// tile.
pub fn matmul_f32(x: &[f32], w: &[BlockQ4K], y: &mut [f32], dims: MatmulDims) {
    // SAFETY: the scalar row dots need no target feature.
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
        let k = w_row.len() * QK_K;
        let mut acc = [0f32; R];
        let mut wf = [0f32; QK_K];
        for (b, block) in w_row.iter().enumerate() {
            dequantize_block(block, &mut wf);
            for (i, acc) in acc.iter_mut().enumerate() {
                let xb = &x_rows[i * k + b * QK_K..][..QK_K];
                let dot: f32 = wf.iter().zip(xb).map(|(a, b)| a * b).sum();
                *acc += dot;
            }
        }
        acc
    }
}

/// The exact integer parts of one block product: `(sum_j sc_j * dot_j, sum_j m_j * bsum_j)`.
#[inline(always)]
pub fn block_sums(w: &BlockQ4K, x: &BlockQ8K) -> (i32, i32) {
    let mut sumi = 0i32;
    let mut summ = 0i32;
    for j in 0..8 {
        let (sc, m) = q4k_scale_min(j, &w.scales);
        let (c, shift) = (j / 2, 4 * (j % 2));
        let mut dot = 0i32;
        for l in 0..32 {
            let q = ((w.qs[32 * c + l] >> shift) & 0xF) as i32;
            dot += q * x.qs[32 * j + l] as i32;
        }
        sumi += sc as i32 * dot;
        summ += m as i32 * (x.bsums[2 * j] as i32 + x.bsums[2 * j + 1] as i32);
    }
    (sumi, summ)
}

/// The f32 combine of one block's integer sums. Every ISA must use exactly this expression, in
/// block order, so that all `q8k` variants produce identical bits.
#[inline(always)]
pub fn combine(acc: f32, w: &BlockQ4K, xd: f32, sumi: i32, summ: i32) -> f32 {
    let d = w.d.to_f32() * xd;
    let dmin = w.dmin.to_f32() * xd;
    acc + (d * sumi as f32 - dmin * summ as f32)
}

/// q8k design.
pub fn matmul_q8k(xq: &[BlockQ8K], w: &[BlockQ4K], y: &mut [f32], dims: MatmulDims) {
    // SAFETY: the scalar row dots need no target feature.
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
        let nb = w_row.len();
        let mut acc = [0f32; R];
        for (i, acc) in acc.iter_mut().enumerate() {
            for (wb, xb) in w_row.iter().zip(&x_rows[i * nb..][..nb]) {
                let (sumi, summ) = block_sums(wb, xb);
                *acc = combine(*acc, wb, xb.d, sumi, summ);
            }
        }
        acc
    }
}
