//! Q4_1: 32 values, f16 scale and f16 min, 4-bit values.

use super::{block_format, f16_saturating, round_i32};
use half::f16;

block_format! {
    /// One Q4_1 block (20 bytes): same nibble order as Q4_0; value = `d*q + m`.
    pub struct BlockQ4_1 {
        pub d: f16,
        pub m: f16,
        pub qs: [u8; 16],
    }
    name = "q4_1", type = Q4_1;

    /// Affine over the block's range: `m = min`, `d = (max - min) / 15`.
    quantize |x, block| {
        let lo = x.iter().cloned().fold(f32::INFINITY, f32::min);
        let hi = x.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
        // hi/15 - lo/15 rather than (hi - lo)/15: the range of finite values can overflow.
        block.d = f16_saturating(hi / 15.0 - lo / 15.0);
        block.m = f16_saturating(lo);
        // Quantize against d and m as stored: their f16 rounding is then partly absorbed
        // by the integers instead of shifting every value.
        let (d, m) = (block.d.to_f32(), block.m.to_f32());
        let id = if d > 0.0 { 1.0 / d } else { 0.0 };
        let q = |v: f32| round_i32((v - m) * id).clamp(0, 15) as u8;
        for l in 0..16 {
            block.qs[l] = q(x[l]) | (q(x[l + 16]) << 4);
        }
    }

    dequantize |block, out| {
        let (d, m) = (block.d.to_f32(), block.m.to_f32());
        for l in 0..16 {
            out[l] = d * (block.qs[l] & 0xF) as f32 + m;
            out[l + 16] = d * (block.qs[l] >> 4) as f32 + m;
        }
    }
}
