//! Q5_0: 32 values, one f16 scale, 5-bit values offset by 16 (high bits packed in `qh`).

use super::{check_row, f16_saturating, round_i32, GgmlType, QuantBlock};
use bytemuck::{Pod, Zeroable};
use half::f16;

/// One Q5_0 block (22 bytes): bit i of `qh` is the high bit of value i; value = `d*((q|h<<4)-16)`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Pod, Zeroable)]
pub struct BlockQ5_0 {
    pub d: f16,
    pub qh: [u8; 4],
    pub qs: [u8; 16],
}

const _: () = assert!(std::mem::size_of::<BlockQ5_0>() == 22);

impl QuantBlock for BlockQ5_0 {
    const NAME: &'static str = "q5_0";
    const TYPE: GgmlType = GgmlType::Q5_0;
    const VALUES: usize = 32;

    /// The value of largest magnitude (sign kept) maps to -16.
    fn quantize_row(src: &[f32], dst: &mut [Self]) {
        check_row::<Self>(src.len(), dst.len());
        for (x, block) in src.chunks_exact(32).zip(dst.iter_mut()) {
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
    }

    fn dequantize_row(src: &[Self], dst: &mut [f32]) {
        check_row::<Self>(dst.len(), src.len());
        for (block, out) in src.iter().zip(dst.chunks_exact_mut(32)) {
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
}
