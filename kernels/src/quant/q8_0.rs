//! Q8_0: 32 values, one f16 scale, signed 8-bit values.

use super::{block_format, f16_saturating, round_i32};
use half::f16;

block_format! {
    /// One Q8_0 block (34 bytes): value = `d * qs[i]`.
    pub struct BlockQ8_0 {
        pub d: f16,
        pub qs: [i8; 32],
    }
    name = "q8_0", type = Q8_0;

    /// Symmetric: `d = max|x| / 127`, `q = round(x / d)` against `d` as stored (f16), so the
    /// rounding of `d` is partly absorbed by the integers instead of scaling every value.
    quantize |x, block| {
        let amax = x.iter().fold(0f32, |a, v| a.max(v.abs()));
        block.d = f16_saturating(amax / 127.0);
        let d = block.d.to_f32();
        let id = if d > 0.0 { 1.0 / d } else { 0.0 };
        for (q, &v) in block.qs.iter_mut().zip(x) {
            *q = round_i32(v * id).clamp(-127, 127) as i8;
        }
    }

    dequantize |block, out| {
        let d = block.d.to_f32();
        for (o, &q) in out.iter_mut().zip(&block.qs) {
            *o = d * q as f32;
        }
    }
}
