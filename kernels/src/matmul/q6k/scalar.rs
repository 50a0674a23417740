//! Portable Q6_K kernels: the oracle every SIMD variant is compared with.

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

/// f32 design: each weight block is dequantized once and used for all `n` activation rows.
pub fn matmul_f32(x: &[f32], w: &[BlockQ6K], y: &mut [f32], dims: MatmulDims) {
    dims.check(x.len(), dims.k, w.len(), y.len());
    let nb = dims.blocks_per_row();
    let mut wf = [0f32; QK_K];
    for r in 0..dims.rows {
        for i in 0..dims.n {
            y[i * dims.y_stride + r] = 0.0;
        }
        for b in 0..nb {
            dequantize_block(&w[r * nb + b], &mut wf);
            for i in 0..dims.n {
                let xb = &x[i * dims.k + b * QK_K..][..QK_K];
                let dot: f32 = wf.iter().zip(xb).map(|(a, b)| a * b).sum();
                y[i * dims.y_stride + r] += dot;
            }
        }
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
    dims.check(xq.len(), dims.blocks_per_row(), w.len(), y.len());
    let nb = dims.blocks_per_row();
    for r in 0..dims.rows {
        let wr = &w[r * nb..][..nb];
        for i in 0..dims.n {
            let xr = &xq[i * nb..][..nb];
            let mut acc = 0f32;
            for (wb, xb) in wr.iter().zip(xr) {
                acc = combine(acc, wb, xb.d, block_sum(wb, xb));
            }
            y[i * dims.y_stride + r] = acc;
        }
    }
}
