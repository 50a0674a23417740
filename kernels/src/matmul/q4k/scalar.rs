//! Portable Q4_K kernels: the oracle every SIMD variant is compared with.

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

/// f32 design: each weight block is dequantized once and used for all `n` activation rows.
pub fn matmul_f32(x: &[f32], w: &[BlockQ4K], y: &mut [f32], dims: MatmulDims) {
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
    dims.check(xq.len(), dims.blocks_per_row(), w.len(), y.len());
    let nb = dims.blocks_per_row();
    for r in 0..dims.rows {
        let wr = &w[r * nb..][..nb];
        for i in 0..dims.n {
            let xr = &xq[i * nb..][..nb];
            let mut acc = 0f32;
            for (wb, xb) in wr.iter().zip(xr) {
                let (sumi, summ) = block_sums(wb, xb);
                acc = combine(acc, wb, xb.d, sumi, summ);
            }
            y[i * dims.y_stride + r] = acc;
        }
    }
}
