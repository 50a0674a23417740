//! Q8_1: the activation format of the Q4_1 integer matmul. 32 values, f16 scale and f16 scaled
//! sum, signed 8-bit values. Never stored in model files.

use super::block_format;
use half::f16;

block_format! {
    /// One Q8_1 block (36 bytes): value = `d * qs[i]`; `s = d * sum(qs)` (rounded to f16), so a
    /// weight format with a min (Q4_1: `d_w*q + m_w`) gets its min term as `m_w * s` without a pass
    /// over the values.
    pub struct BlockQ8_1 {
        pub d: f16,
        pub s: f16,
        pub qs: [i8; 32],
    }
    name = "q8_1", type = Q8_1;

    /// The activation quantizer of ggml's reference (see
    /// [`matmul::block32`](crate::matmul::block32) for the exact rule and its SIMD variants).
    quantize_row = crate::matmul::block32::scalar::quantize_q8_1;

    dequantize |block, out| {
        let d = block.d.to_f32();
        for (o, &q) in out.iter_mut().zip(&block.qs) {
            *o = d * q as f32;
        }
    }
}
