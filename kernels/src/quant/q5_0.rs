//! Q5_0: 32 values, one f16 scale, 5-bit values offset by 16 (high bits packed in `qh`).

use super::{block_format, f16_saturating, round_i32};
use half::f16;

block_format! {
    /// One Q5_0 block (22 bytes): bit i of `qh` is the high bit of value i; value = `d*((q|h<<4)-16)`.
    pub struct BlockQ5_0 {
        pub d: f16,
        pub qh: [u8; 4],
        pub qs: [u8; 16],
    }
    name = "q5_0", type = Q5_0;

    /// The value of largest magnitude (sign kept) maps to -16.
    quantize |x, block| {
        let max = x
            .iter()
            .fold(0f32, |a, &v| if v.abs() > a.abs() { v } else { a });
        // Quantize against d as stored, so its f16 rounding is partly absorbed by the integers.
        block.d = f16_saturating(max / -16.0);
        let d = block.d.to_f32();
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        let mut qh = 0u32;
        for l in 0..16 {
            // Clamp before offsetting: with a saturated d, x*id can be far outside i32.
            let q0 = (round_i32(x[l] * id).clamp(-16, 15) + 16) as u32;
            let q1 = (round_i32(x[l + 16] * id).clamp(-16, 15) + 16) as u32;
            block.qs[l] = ((q0 & 0xF) | ((q1 & 0xF) << 4)) as u8;
            qh |= ((q0 >> 4) << l) | ((q1 >> 4) << (l + 16));
        }
        block.qh = qh.to_le_bytes();
    }

    dequantize |block, out| {
        let d = block.d.to_f32();
        let qh = u32::from_le_bytes(block.qh);
        for l in 0..16 {
            let h0 = ((qh >> l) & 1) << 4;
            let h1 = ((qh >> (l + 16)) & 1) << 4;
            out[l] = d * (((block.qs[l] & 0xF) as u32 | h0) as i32 - 16) as f32;
            out[l + 16] = d * (((block.qs[l] >> 4) as u32 | h1) as i32 - 16) as f32;
        }
    }
}
