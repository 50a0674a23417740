//! Q8_K: the activation format of the integer (`q8k`) matmul design. Never stored in files.

use super::{check_row, GgmlType, QuantBlock, QK_K};
use bytemuck::{Pod, Zeroable};

/// One Q8_K block (292 bytes): value = `d * qs[i]`; `bsums[g]` = sum of `qs[16g..16g+16]`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
pub struct BlockQ8K {
    pub d: f32,
    pub qs: [i8; QK_K],
    pub bsums: [i16; 16],
}

const _: () = assert!(std::mem::size_of::<BlockQ8K>() == 292);

impl Default for BlockQ8K {
    fn default() -> Self {
        Self::zeroed()
    }
}

impl BlockQ8K {
    /// Recomputes `bsums` from `qs`.
    pub fn fill_bsums(&mut self) {
        for (g, s) in self.bsums.iter_mut().enumerate() {
            *s = self.qs[16 * g..16 * g + 16].iter().map(|&q| q as i16).sum();
        }
    }
}

impl QuantBlock for BlockQ8K {
    const NAME: &'static str = "q8_K";
    const TYPE: GgmlType = GgmlType::Q8K;
    const VALUES: usize = QK_K;

    /// The value with the largest magnitude (sign kept) maps to -127: `scale = -127/max`,
    /// `q = min(127, round(scale*x))` with ties to even as ggml rounds, `d = 1/scale`. An all-zero
    /// block gets `d = 0`.
    fn quantize_row(src: &[f32], dst: &mut [Self]) {
        check_row::<Self>(src.len(), dst.len());
        for (x, block) in src.chunks_exact(QK_K).zip(dst.iter_mut()) {
            let mut max = 0f32;
            for &v in x {
                if v.abs() > max.abs() {
                    max = v;
                }
            }
            if max == 0.0 {
                *block = BlockQ8K::zeroed();
                continue;
            }
            let iscale = -127.0 / max;
            if iscale.is_finite() {
                for (q, &v) in block.qs.iter_mut().zip(x) {
                    *q = (iscale * v).round_ties_even().min(127.0) as i8;
                }
                block.d = 1.0 / iscale;
            } else {
                // A subnormal max: 127/max overflows f32 (and inf*0 would be NaN), but f64 holds
                // it, and d = max/-127 is still a (subnormal) f32.
                let iscale = -127.0 / max as f64;
                for (q, &v) in block.qs.iter_mut().zip(x) {
                    *q = (iscale * v as f64).round_ties_even().min(127.0) as i8;
                }
                block.d = (1.0 / iscale) as f32;
            }
            // At the very top of the f32 range, d*127 can round past f32::MAX (so can MAX/127
            // times 127); MAX/128 is exact and keeps every d*q finite, for |max| > MAX*127/128 only.
            let d_max = f32::MAX / 128.0;
            block.d = block.d.clamp(-d_max, d_max);
            block.fill_bsums();
        }
    }

    fn dequantize_row(src: &[Self], dst: &mut [f32]) {
        check_row::<Self>(dst.len(), src.len());
        for (block, out) in src.iter().zip(dst.chunks_exact_mut(QK_K)) {
            for (o, &q) in out.iter_mut().zip(&block.qs) {
                *o = block.d * q as f32;
            }
        }
    }
}
