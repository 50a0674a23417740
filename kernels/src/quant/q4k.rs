//! Q4_K: 256 values in 8 sub-blocks of 32, 4-bit values with a 6-bit scale and min per sub-block.

use super::{check_row, round_i32, GgmlType, QuantBlock, QK_K};
use bytemuck::{Pod, Zeroable};
use half::f16;

/// One Q4_K super-block (144 bytes). Value `i` of sub-block `j` is `d*sc[j]*q - dmin*m[j]`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
pub struct BlockQ4K {
    /// Super-block scale for the sub-block scales.
    pub d: f16,
    /// Super-block scale for the sub-block mins.
    pub dmin: f16,
    /// Eight 6-bit scales and eight 6-bit mins, packed (see [`q4k_scale_min`]).
    pub scales: [u8; 12],
    /// 4 chunks of 32 bytes: chunk c holds sub-block 2c in the low nibbles, 2c+1 in the high.
    pub qs: [u8; 128],
}

const _: () = assert!(std::mem::size_of::<BlockQ4K>() == 144);

impl Default for BlockQ4K {
    fn default() -> Self {
        Self::zeroed()
    }
}

/// The 6-bit (scale, min) of sub-block `j` (0..8) from the packed `scales` bytes.
#[inline(always)]
pub fn q4k_scale_min(j: usize, scales: &[u8; 12]) -> (u8, u8) {
    if j < 4 {
        (scales[j] & 63, scales[j + 4] & 63)
    } else {
        (
            (scales[j + 4] & 0xF) | ((scales[j - 4] >> 6) << 4),
            (scales[j + 4] >> 4) | ((scales[j] >> 6) << 4),
        )
    }
}

/// Packs eight 6-bit scales and mins; the inverse of [`q4k_scale_min`].
pub(crate) fn pack_scale_min(sc: &[u8; 8], m: &[u8; 8]) -> [u8; 12] {
    let mut out = [0u8; 12];
    for j in 0..8 {
        debug_assert!(sc[j] < 64 && m[j] < 64);
        if j < 4 {
            out[j] = sc[j];
            out[j + 4] = m[j];
        } else {
            out[j + 4] = (sc[j] & 0xF) | ((m[j] & 0xF) << 4);
            out[j - 4] |= (sc[j] >> 4) << 6;
            out[j] |= (m[j] >> 4) << 6;
        }
    }
    out
}

impl QuantBlock for BlockQ4K {
    const NAME: &'static str = "q4_K";
    const TYPE: GgmlType = GgmlType::Q4K;
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
            let dmin = block.dmin.to_f32();
            for c in 0..4 {
                let (sc_lo, m_lo) = q4k_scale_min(2 * c, &block.scales);
                let (sc_hi, m_hi) = q4k_scale_min(2 * c + 1, &block.scales);
                let (d_lo, min_lo) = (d * sc_lo as f32, dmin * m_lo as f32);
                let (d_hi, min_hi) = (d * sc_hi as f32, dmin * m_hi as f32);
                for l in 0..32 {
                    let q = block.qs[32 * c + l];
                    out[64 * c + l] = d_lo * (q & 0xF) as f32 - min_lo;
                    out[64 * c + 32 + l] = d_hi * (q >> 4) as f32 - min_hi;
                }
            }
        }
    }
}

/// Quantizes one super-block: per sub-block an affine fit `x ~ s*q - m` (q in 0..=15), then the
/// eight scales and mins are themselves quantized to 6 bits against the super-block `d`/`dmin`.
fn quantize_block(x: &[f32; QK_K]) -> BlockQ4K {
    let mut scales = [0f32; 8];
    let mut mins = [0f32; 8];
    for j in 0..8 {
        let sub = &x[32 * j..32 * j + 32];
        let (s, m) = fit_sub_block(sub);
        scales[j] = s;
        mins[j] = m;
    }
    let max_scale = scales.iter().cloned().fold(0f32, f32::max);
    let max_min = mins.iter().cloned().fold(0f32, f32::max);
    let inv_scale = if max_scale > 0.0 {
        63.0 / max_scale
    } else {
        0.0
    };
    let inv_min = if max_min > 0.0 { 63.0 / max_min } else { 0.0 };
    let mut sc = [0u8; 8];
    let mut m = [0u8; 8];
    for j in 0..8 {
        sc[j] = round_i32(inv_scale * scales[j]).clamp(0, 63) as u8;
        m[j] = round_i32(inv_min * mins[j]).clamp(0, 63) as u8;
    }
    let d = f16::from_f32(max_scale / 63.0);
    let dmin = f16::from_f32(max_min / 63.0);
    let mut block = BlockQ4K {
        d,
        dmin,
        scales: pack_scale_min(&sc, &m),
        qs: [0; 128],
    };
    let (d, dmin) = (d.to_f32(), dmin.to_f32());
    let mut q = [0u8; QK_K];
    for j in 0..8 {
        let step = d * sc[j] as f32;
        let offset = dmin * m[j] as f32;
        for l in 0..32 {
            let v = if step > 0.0 {
                round_i32((x[32 * j + l] + offset) / step).clamp(0, 15)
            } else {
                0
            };
            q[32 * j + l] = v as u8;
        }
    }
    for c in 0..4 {
        for l in 0..32 {
            block.qs[32 * c + l] = q[64 * c + l] | (q[64 * c + 32 + l] << 4);
        }
    }
    block
}

/// Least-squares affine fit of one 32-value sub-block: returns (scale, min) with `x ~ scale*q - min`,
/// `scale >= 0`, `min >= 0` (the format stores the min as a non-negative offset).
fn fit_sub_block(x: &[f32]) -> (f32, f32) {
    let lo = x.iter().cloned().fold(f32::INFINITY, f32::min).min(0.0);
    let hi = x.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
    if hi <= lo {
        return (0.0, -lo);
    }
    ((hi - lo) / 15.0, -lo)
}
