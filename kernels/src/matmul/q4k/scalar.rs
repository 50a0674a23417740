//! Portable Q4_K kernels: the oracle every SIMD variant is compared with.

use crate::matmul::kquant::{k_scalar_entries, ScalarK};
use crate::quant::{q4k_unpack_scales_mins, BlockQ4K, BlockQ8K, QK_K};

impl ScalarK for BlockQ4K {
    #[inline(always)]
    fn dequantize_values(&self, out: &mut [f32; QK_K]) {
        self.dequantize(out)
    }

    #[inline(always)]
    fn q8k_accumulate(acc: f32, w: &BlockQ4K, x: &BlockQ8K) -> f32 {
        let (sumi, summ) = block_sums(w, x);
        combine(acc, w, x.d, sumi, summ)
    }
}

k_scalar_entries!(BlockQ4K);

/// The exact integer parts of one block product: `(sum_j sc_j * dot_j, sum_j m_j * bsum_j)`.
#[inline(always)]
pub fn block_sums(w: &BlockQ4K, x: &BlockQ8K) -> (i32, i32) {
    let mut sumi = 0i32;
    let mut summ = 0i32;
    let (scales, mins) = q4k_unpack_scales_mins(&w.scales);
    for (j, (&sc, &m)) in scales.iter().zip(&mins).enumerate() {
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
