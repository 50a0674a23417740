//! Portable Q6_K kernels: the oracle every SIMD variant is compared with.

use crate::matmul::kquant::{k_scalar_entries, ScalarK};
use crate::quant::{BlockQ6K, BlockQ8K, QK_K};

impl ScalarK for BlockQ6K {
    #[inline(always)]
    fn dequantize_values(&self, out: &mut [f32; QK_K]) {
        self.dequantize(out)
    }

    #[inline(always)]
    fn q8k_accumulate(acc: f32, w: &BlockQ6K, x: &BlockQ8K) -> f32 {
        combine(acc, w, x.d, block_sum(w, x))
    }
}

k_scalar_entries!(BlockQ6K);

/// The exact integer part of one block product: `sum_g sc_g * sum_{l in g} (q_l - 32) * x_l`.
#[inline(always)]
pub fn block_sum(w: &BlockQ6K, x: &BlockQ8K) -> i32 {
    let mut sumi = 0i32;
    for h in 0..2 {
        let sc = &w.scales[8 * h..];
        let xs = &x.qs[128 * h..];
        let mut dots = [0i32; 8];
        for l in 0..32 {
            let is = l / 16;
            let [q1, q2, q3, q4] = w.signed_quad(h, l);
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
    combine_f32(acc, w.d.to_f32(), xd, sumi)
}

/// [`combine`] with the block's scale already in f32 (a SIMD variant converts several at once).
#[inline(always)]
pub fn combine_f32(acc: f32, d: f32, xd: f32, sumi: i32) -> f32 {
    acc + (d * xd) * sumi as f32
}
