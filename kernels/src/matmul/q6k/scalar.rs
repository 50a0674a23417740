//! Portable Q6_K kernels: the oracle every SIMD variant is compared with.

use crate::matmul::driver::{matmul_tiled, RowDots};
use crate::matmul::MatmulDims;
use crate::quant::{BlockQ6K, BlockQ8K, QK_K};

/// Dequantizes one block: `(d*sc)*(q-32)`, exact in f32 (11+8+6 significant bits).
#[inline(always)]
fn dequantize_block(block: &BlockQ6K, out: &mut [f32; QK_K]) {
    let d = block.d.to_f32();
    for h in 0..2 {
        let ql = &block.ql[64 * h..];
        let qh = &block.qh[32 * h..];
        let sc = &block.scales[8 * h..];
        let o = &mut out[128 * h..];
        for l in 0..32 {
            let is = l / 16;
            let q1 = ((ql[l] & 0xF) | ((qh[l] & 3) << 4)) as i32 - 32;
            let q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) as i32 - 32;
            let q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) as i32 - 32;
            let q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) as i32 - 32;
            o[l] = (d * sc[is] as f32) * q1 as f32;
            o[l + 32] = (d * sc[is + 2] as f32) * q2 as f32;
            o[l + 64] = (d * sc[is + 4] as f32) * q3 as f32;
            o[l + 96] = (d * sc[is + 6] as f32) * q4 as f32;
        }
    }
}

/// f32 design: each weight block is dequantized once and used for every activation row of the
/// tile.
pub fn matmul_f32(x: &[f32], w: &[BlockQ6K], y: &mut [f32], dims: MatmulDims) {
    // SAFETY: the scalar row dots need no target feature.
    unsafe { matmul_tiled::<F32Dots>(x, w, y, dims) }
}

struct F32Dots;

impl RowDots for F32Dots {
    type W = BlockQ6K;
    type X = f32;
    const W_VALUES: usize = QK_K;
    const X_VALUES: usize = 1;

    #[inline(always)]
    unsafe fn row_dots<const R: usize>(w_row: &[BlockQ6K], x_rows: &[f32]) -> [f32; R] {
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

/// The exact integer part of one block product: `sum_g sc_g * sum_{l in g} (q_l - 32) * x_l`.
#[inline(always)]
pub fn block_sum(w: &BlockQ6K, x: &BlockQ8K) -> i32 {
    let mut sumi = 0i32;
    for h in 0..2 {
        let ql = &w.ql[64 * h..];
        let qh = &w.qh[32 * h..];
        let sc = &w.scales[8 * h..];
        let xs = &x.qs[128 * h..];
        let mut dots = [0i32; 8];
        for l in 0..32 {
            let is = l / 16;
            let q1 = ((ql[l] & 0xF) | ((qh[l] & 3) << 4)) as i32 - 32;
            let q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) as i32 - 32;
            let q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) as i32 - 32;
            let q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) as i32 - 32;
            dots[is] += q1 * xs[l] as i32;
            dots[is + 2] += q2 * xs[l + 32] as i32;
            dots[is + 4] += q3 * xs[l + 64] as i32;
            dots[is + 6] += q4 * xs[l + 96] as i32;
        }
        for g in 0..8 {
            sumi += sc[g] as i32 * dots[g];
        }
    }
    sumi
}

/// The f32 combine of one block's integer sum. Every ISA must use exactly this expression, in
/// block order, so that all `q8k` variants produce identical bits.
#[inline(always)]
pub fn combine(acc: f32, w: &BlockQ6K, xd: f32, sumi: i32) -> f32 {
    acc + (w.d.to_f32() * xd) * sumi as f32
}

/// q8k design.
pub fn matmul_q8k(xq: &[BlockQ8K], w: &[BlockQ6K], y: &mut [f32], dims: MatmulDims) {
    // SAFETY: the scalar row dots need no target feature.
    unsafe { matmul_tiled::<Q8kDots>(xq, w, y, dims) }
}

struct Q8kDots;

impl RowDots for Q8kDots {
    type W = BlockQ6K;
    type X = BlockQ8K;
    const W_VALUES: usize = QK_K;
    const X_VALUES: usize = QK_K;

    #[inline(always)]
    unsafe fn row_dots<const R: usize>(w_row: &[BlockQ6K], x_rows: &[BlockQ8K]) -> [f32; R] {
        let nb = w_row.len();
        let mut acc = [0f32; R];
        for (i, acc) in acc.iter_mut().enumerate() {
            for (wb, xb) in w_row.iter().zip(&x_rows[i * nb..][..nb]) {
                *acc = combine(*acc, wb, xb.d, block_sum(wb, xb));
            }
        }
        acc
    }
}
