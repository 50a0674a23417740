//! Q6_K: 256 values in 16 groups of 16, 6-bit values with a signed 8-bit scale per group.

use super::{check_row, round_i32, GgmlType, QuantBlock, QK_K};
use bytemuck::{Pod, Zeroable};
use half::f16;

/// One Q6_K super-block (210 bytes). Value = `d * scales[g] * (q - 32)`, q in 0..64.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
pub struct BlockQ6K {
    /// Low 4 bits of the values.
    pub ql: [u8; 128],
    /// High 2 bits of the values.
    pub qh: [u8; 64],
    /// Signed scale of each group of 16 values.
    pub scales: [i8; 16],
    /// Super-block scale.
    pub d: f16,
}

const _: () = assert!(std::mem::size_of::<BlockQ6K>() == 210);

impl Default for BlockQ6K {
    fn default() -> Self {
        Self::zeroed()
    }
}

impl BlockQ6K {
    /// The 6-bit value (0..64) at position `i` (0..256) of the block; the layout in one place.
    #[inline(always)]
    pub fn q(&self, i: usize) -> u8 {
        let (h, r) = (i / 128, i % 128);
        let (part, l) = (r / 32, r % 32);
        let ql = &self.ql[64 * h..];
        let qh = self.qh[32 * h + l];
        let low = match part {
            0 => ql[l] & 0xF,
            1 => ql[l + 32] & 0xF,
            2 => ql[l] >> 4,
            _ => ql[l + 32] >> 4,
        };
        low | (((qh >> (2 * part)) & 3) << 4)
    }

    /// Index of the scale that applies to value `i`.
    #[inline(always)]
    pub fn scale_index(i: usize) -> usize {
        let (h, r) = (i / 128, i % 128);
        let (part, l) = (r / 32, r % 32);
        8 * h + l / 16 + 2 * part
    }

    fn set_q(&mut self, i: usize, q: u8) {
        let (h, r) = (i / 128, i % 128);
        let (part, l) = (r / 32, r % 32);
        let ql = &mut self.ql[64 * h..];
        match part {
            0 => ql[l] = (ql[l] & 0xF0) | (q & 0xF),
            1 => ql[l + 32] = (ql[l + 32] & 0xF0) | (q & 0xF),
            2 => ql[l] = (ql[l] & 0x0F) | ((q & 0xF) << 4),
            _ => ql[l + 32] = (ql[l + 32] & 0x0F) | ((q & 0xF) << 4),
        }
        let qh = &mut self.qh[32 * h + l];
        *qh = (*qh & !(3 << (2 * part))) | (((q >> 4) & 3) << (2 * part));
    }
}

impl QuantBlock for BlockQ6K {
    const NAME: &'static str = "q6_K";
    const TYPE: GgmlType = GgmlType::Q6K;
    const VALUES: usize = QK_K;

    fn quantize_row(src: &[f32], dst: &mut [Self]) {
        check_row::<Self>(src.len(), dst.len());
        for (x, block) in src.chunks_exact(QK_K).zip(dst.iter_mut()) {
            *block = quantize_block(x.try_into().expect("chunk of QK_K"));
        }
    }

    fn dequantize_row(src: &[Self], dst: &mut [f32]) {
        check_row::<Self>(dst.len(), src.len());
        for (block, out) in src.iter().zip(dst.chunks_exact_mut(QK_K)) {
            let d = block.d.to_f32();
            for (i, o) in out.iter_mut().enumerate() {
                let sc = block.scales[BlockQ6K::scale_index(i)] as f32;
                *o = d * sc * (block.q(i) as i32 - 32) as f32;
            }
        }
    }
}

/// Value index `i` belongs to group `scale_index(i)`; groups are 16 values each.
fn quantize_block(x: &[f32; QK_K]) -> BlockQ6K {
    // Per-group signed max-magnitude scale: the extreme value maps to -32.
    let mut group_scale = [0f32; 16];
    for (i, &v) in x.iter().enumerate() {
        let g = BlockQ6K::scale_index(i);
        if v.abs() > group_scale[g].abs() {
            group_scale[g] = v;
        }
    }
    for s in group_scale.iter_mut() {
        *s /= -32.0;
    }
    let max_scale = group_scale
        .iter()
        .cloned()
        .fold(0f32, |a, s| if s.abs() > a.abs() { s } else { a });
    let mut block = BlockQ6K::zeroed();
    if max_scale == 0.0 {
        block.ql.fill(0);
        for i in 0..QK_K {
            block.set_q(i, 32);
        }
        return block;
    }
    let iscale = -128.0 / max_scale;
    block.d = f16::from_f32(1.0 / iscale);
    for g in 0..16 {
        block.scales[g] = round_i32(iscale * group_scale[g]).clamp(-128, 127) as i8;
    }
    let d = block.d.to_f32();
    for (i, &v) in x.iter().enumerate() {
        let step = d * block.scales[BlockQ6K::scale_index(i)] as f32;
        let q = if step != 0.0 {
            round_i32(v / step).clamp(-32, 31)
        } else {
            0
        };
        block.set_q(i, (q + 32) as u8);
    }
    block
}
