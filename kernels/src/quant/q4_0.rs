//! Q4_0: 32 values, one f16 scale, 4-bit values offset by 8.

use super::{check_row, f16_saturating, round_i32, GgmlType, QuantBlock};
use bytemuck::{Pod, Zeroable};
use half::f16;

/// One Q4_0 block (18 bytes): low nibbles are values 0..16, high nibbles 16..32; value = `d*(q-8)`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Pod, Zeroable)]
pub struct BlockQ4_0 {
    pub d: f16,
    pub qs: [u8; 16],
}

const _: () = assert!(std::mem::size_of::<BlockQ4_0>() == 18);

impl QuantBlock for BlockQ4_0 {
    const NAME: &'static str = "q4_0";
    const TYPE: GgmlType = GgmlType::Q4_0;
    const VALUES: usize = 32;

    /// The value of largest magnitude (sign kept) maps to -8, so the full range -8..=7 is used
    /// on the side where it matters.
    fn quantize_row(src: &[f32], dst: &mut [Self]) {
        check_row::<Self>(src.len(), dst.len());
        for (x, block) in src.chunks_exact(32).zip(dst.iter_mut()) {
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
    }

    fn dequantize_row(src: &[Self], dst: &mut [f32]) {
        check_row::<Self>(dst.len(), src.len());
        for (block, out) in src.iter().zip(dst.chunks_exact_mut(32)) {
            let d = block.d.to_f32();
            for l in 0..16 {
                out[l] = d * ((block.qs[l] & 0xF) as i32 - 8) as f32;
                out[l + 16] = d * ((block.qs[l] >> 4) as i32 - 8) as f32;
            }
        }
    }
}
