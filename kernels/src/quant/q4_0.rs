//! Q4_0: 32 values, one f16 scale, 4-bit values offset by 8.

use super::{block_format, f16_saturating, round_i32};
use half::f16;

block_format! {
    /// One Q4_0 block (18 bytes): low nibbles are values 0..16, high nibbles 16..32; value = `d*(q-8)`.
    pub struct BlockQ4_0 {
        pub d: f16,
        pub qs: [u8; 16],
    }
    name = "q4_0", type = Q4_0;

    /// The value of largest magnitude (sign kept) maps to -8, so the full range -8..=7 is used
    /// on the side where it matters.
    quantize |x, block| {
        let max = x
            .iter()
            .fold(0f32, |a, &v| if v.abs() > a.abs() { v } else { a });
        // Quantize against d as stored, so its f16 rounding is partly absorbed by the integers.
        block.d = f16_saturating(max / -8.0);
        let d = block.d.to_f32();
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        // Clamp before offsetting: with a saturated d, v*id can be far outside i32.
        let q = |v: f32| (round_i32(v * id).clamp(-8, 7) + 8) as u8;
        for l in 0..16 {
            block.qs[l] = q(x[l]) | (q(x[l + 16]) << 4);
        }
    }

    dequantize |block, out| {
        let d = block.d.to_f32();
        for l in 0..16 {
            out[l] = d * ((block.qs[l] & 0xF) as i32 - 8) as f32;
            out[l + 16] = d * ((block.qs[l] >> 4) as i32 - 8) as f32;
        }
    }
}
