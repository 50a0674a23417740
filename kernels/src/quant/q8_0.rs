//! Q8_0: 32 values, one f16 scale, signed 8-bit values.

use super::{check_row, f16_saturating, round_i32, GgmlType, QuantBlock};
use bytemuck::{Pod, Zeroable};
use half::f16;

/// One Q8_0 block (34 bytes): value = `d * qs[i]`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Pod, Zeroable)]
pub struct BlockQ8_0 {
    pub d: f16,
    pub qs: [i8; 32],
}

const _: () = assert!(std::mem::size_of::<BlockQ8_0>() == 34);

impl QuantBlock for BlockQ8_0 {
    const NAME: &'static str = "q8_0";
    const TYPE: GgmlType = GgmlType::Q8_0;
    const VALUES: usize = 32;

    /// Symmetric: `d = max|x| / 127`, `q = round(x / d)` against `d` as stored (f16), so the
    /// rounding of `d` is partly absorbed by the integers instead of scaling every value.
    fn quantize_row(src: &[f32], dst: &mut [Self]) {
        check_row::<Self>(src.len(), dst.len());
        for (x, block) in src.chunks_exact(32).zip(dst.iter_mut()) {
            let amax = x.iter().fold(0f32, |a, v| a.max(v.abs()));
            block.d = f16_saturating(amax / 127.0);
            let d = block.d.to_f32();
            let id = if d > 0.0 { 1.0 / d } else { 0.0 };
            for (q, &v) in block.qs.iter_mut().zip(x) {
                *q = round_i32(v * id).clamp(-127, 127) as i8;
            }
        }
    }

    fn dequantize_row(src: &[Self], dst: &mut [f32]) {
        check_row::<Self>(dst.len(), src.len());
        for (block, out) in src.iter().zip(dst.chunks_exact_mut(32)) {
            let d = block.d.to_f32();
            for (o, &q) in out.iter_mut().zip(&block.qs) {
                *o = d * q as f32;
            }
        }
    }
}
