//! Q8_1: the activation format of the Q4_1 integer matmul. 32 values, f16 scale and f16 scaled
//! sum, signed 8-bit values. Never stored in model files.

use super::{check_row, GgmlType, QuantBlock};
use bytemuck::{Pod, Zeroable};
use half::f16;

/// One Q8_1 block (36 bytes): value = `d * qs[i]`; `s = d * sum(qs)` (rounded to f16), so a
/// weight format with a min (Q4_1: `d_w*q + m_w`) gets its min term as `m_w * s` without a pass
/// over the values.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Pod, Zeroable)]
pub struct BlockQ8_1 {
    pub d: f16,
    pub s: f16,
    pub qs: [i8; 32],
}

const _: () = assert!(std::mem::size_of::<BlockQ8_1>() == 36);

impl QuantBlock for BlockQ8_1 {
    const NAME: &'static str = "q8_1";
    const TYPE: GgmlType = GgmlType::Q8_1;
    const VALUES: usize = 32;

    /// The activation quantizer of ggml's reference (see
    /// [`matmul::block32`](crate::matmul::block32) for the exact rule and its SIMD variants).
    fn quantize_row(src: &[f32], dst: &mut [Self]) {
        crate::matmul::block32::scalar::quantize_q8_1(src, dst);
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
