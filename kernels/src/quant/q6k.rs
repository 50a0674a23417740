//! Q6_K: 256 values in 16 groups of 16, 6-bit values with a signed 8-bit scale per group.

use super::{
    f16_saturating, k_format, lane_sum, normalized_block, round_i32, round_small, scale_up_pow2,
    QK_K,
};
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

impl BlockQ6K {
    /// Values `128h + 32p + l` (`p` = 0..4, `l` < 32) minus 32: the four values whose high bits
    /// share `qh[32h + l]`, the unit the scalar kernels walk the layout in.
    #[inline(always)]
    pub fn signed_quad(&self, h: usize, l: usize) -> [i32; 4] {
        let ql = &self.ql[64 * h..];
        let qh = self.qh[32 * h + l];
        [
            ((ql[l] & 0xF) | ((qh & 3) << 4)) as i32 - 32,
            ((ql[l + 32] & 0xF) | (((qh >> 2) & 3) << 4)) as i32 - 32,
            ((ql[l] >> 4) | (((qh >> 4) & 3) << 4)) as i32 - 32,
            ((ql[l + 32] >> 4) | (((qh >> 6) & 3) << 4)) as i32 - 32,
        ]
    }

    /// The 256 values, `(d*sc)*(q-32)` (exact in f32: 11+8+6 significant bits), the layout of
    /// [`q`](Self::q) and [`scale_index`](Self::scale_index) unrolled. The one dequantization
    /// the row dequantizer and the scalar matmul share.
    #[inline(always)]
    pub fn dequantize(&self, out: &mut [f32; QK_K]) {
        let d = self.d.to_f32();
        for h in 0..2 {
            let sc = &self.scales[8 * h..];
            let o = &mut out[128 * h..];
            for l in 0..32 {
                let is = l / 16;
                let [q1, q2, q3, q4] = self.signed_quad(h, l);
                o[l] = (d * sc[is] as f32) * q1 as f32;
                o[l + 32] = (d * sc[is + 2] as f32) * q2 as f32;
                o[l + 64] = (d * sc[is + 4] as f32) * q3 as f32;
                o[l + 96] = (d * sc[is + 6] as f32) * q4 as f32;
            }
        }
    }
}

k_format!(BlockQ6K, "q6_K", Q6K, quantize_block);

/// Quantizes one super-block: per group of 16 values a signed scale from a weighted search (see
/// [`fit_group`]), the sixteen scales quantized to i8 against `d = -(largest-magnitude scale)/128`,
/// then the 6-bit values chosen again against the scales as stored.
///
/// Group `g` is values `16g..16g+16` (`scale_index(i) == i / 16`, checked by the layout tests).
/// The search runs on a power-of-two rescaled copy of the block (see [`normalized_block`]):
/// its weights are squares and its comparisons products of squared sums, which would overflow
/// or underflow f32 for inputs far from 1. `d` saturates at the largest finite f16.
#[inline(always)]
fn quantize_block(x: &[f32; QK_K]) -> BlockQ6K {
    let mut block = BlockQ6K::zeroed();
    let Some((xn, exp)) = normalized_block(x) else {
        // All zero: q = 32 is the value 0 whatever d and the scales are.
        for i in 0..QK_K {
            block.set_q(i, 32);
        }
        return block;
    };
    let mut group_scale = [0f32; 16];
    for (g, s) in group_scale.iter_mut().enumerate() {
        *s = fit_group(xn[16 * g..16 * g + 16].try_into().expect("16 values"));
    }
    let max_scale = group_scale
        .iter()
        .fold(0f32, |a, &s| if s.abs() > a.abs() { s } else { a });
    if max_scale != 0.0 {
        // The largest-magnitude scale maps to -128, using the whole i8 range on its side.
        let inv = -128.0 / max_scale;
        for (sc, &s) in block.scales.iter_mut().zip(&group_scale) {
            *sc = round_i32(inv * s).clamp(-128, 127) as i8;
        }
        block.d = f16_saturating(scale_up_pow2(max_scale / -128.0, exp));
    }
    // The stored d on the normalized scale: exact, a power-of-two factor.
    let d = scale_up_pow2(block.d.to_f32(), -exp);
    for g in 0..16 {
        let group: &[f32; 16] = xn[16 * g..16 * g + 16].try_into().expect("16 values");
        let (scale, q) = refine_group_scale(group, d, block.scales[g]);
        block.scales[g] = scale;
        for (l, &ql) in q.iter().enumerate() {
            block.set_q(16 * g + l, ql);
        }
    }
    block
}

/// How far [`refine_group_scale`] looks around the rounded i8 scale.
const REFINE_RADIUS: i32 = 2;

/// Picks the group's stored scale among the rounded one and its neighbours, with the 6-bit
/// values re-fitted to each, by the unweighted squared error against the stored `d`; returns
/// the scale and the values (offset by 32, as stored).
///
/// The search in [`fit_group`] weights errors by `x^2`; this last step only moves the scale by
/// a step or two of its i8 grid, so it keeps that choice while taking the rounding of `d` and
/// of the scale itself into account. It runs on the normalized block, so the f32 error sums
/// cannot overflow.
#[inline(always)]
fn refine_group_scale(x: &[f32; 16], d: f32, scale: i8) -> (i8, [u8; 16]) {
    let mut best: Option<(f32, i8, [f32; 16])> = None;
    let lo = (scale as i32 - REFINE_RADIUS).max(-128);
    let hi = (scale as i32 + REFINE_RADIUS).min(127);
    for try_scale in lo..=hi {
        // Never flip the sign of a scale or zero a non-zero one: the neighbourhood is a
        // refinement of the fitted scale, not a different fit.
        if try_scale != scale as i32 && (try_scale == 0 || (try_scale < 0) != (scale < 0)) {
            continue;
        }
        let step = d * try_scale as f32;
        // Signed levels -32..=31; the shift by 64 keeps `round_small`'s argument non-negative
        // (NaN-free: `x` is normalized and finite, `step` non-zero).
        let q: [f32; 16] = if step != 0.0 {
            let inv_step = 1.0 / step;
            std::array::from_fn(|i| {
                (round_small((x[i] * inv_step).clamp(-64.0, 64.0) + 64.0) - 64.0).clamp(-32.0, 31.0)
            })
        } else {
            [0.0; 16]
        };
        let error = lane_sum::<16>(|i| {
            let diff = step * q[i] - x[i];
            diff * diff
        });
        if best.as_ref().is_none_or(|(e, _, _)| error < *e) {
            best = Some((error, try_scale as i8, q));
        }
    }
    best.map_or((scale, [32; 16]), |(_, s, q)| {
        (s, q.map(|l| (l + 32.0) as u8))
    })
}

/// Candidate grids [`fit_group`] tries: the largest-magnitude value maps to `-(32 + STEP*k)` for
/// k in -RANGE..=RANGE, i.e. from -31.1 to -32.9.
const FIT_RANGE: i32 = 9;
/// Largest magnitude below which [`fit_group`] gives a normalized group the scale 0.
const GROUP_NEGLIGIBLE: f32 = 1e-15;
const FIT_STEP: f32 = 0.1;

/// The signed scale of one 16-value group, `x ~ scale*q` with q in -32..=31, chosen to minimise
/// the squared error weighted by `x^2` (large values dominate both the RMSE and the dot products).
///
/// For a fixed assignment `q`, the best scale is `sum(w*x*q)/sum(w*q^2)` and the error it leaves
/// is `sum(w*x^2) - sum(w*x*q)^2/sum(w*q^2)`; so each candidate grid assigns the integers, and the
/// one with the largest `sum(w*x*q)^2/sum(w*q^2)` wins. (The method of llama.cpp's
/// `make_qx_quants` with its squared-value weights.) Expects `|x| <= 2` or so (normalized input).
#[inline(always)]
fn fit_group(x: &[f32; 16]) -> f32 {
    let extreme = x
        .iter()
        .fold(0f32, |a, &v| if v.abs() > a.abs() { v } else { a });
    // A group this far below the block's maximum (about 1 after normalization) rounds to the
    // i8 scale 0 anyway (anything under 2^-9 does), and -32/extreme could overflow.
    if extreme.abs() < GROUP_NEGLIGIBLE {
        return 0.0;
    }
    let mut best: Option<(f32, f32)> = None; // (sum_xq^2 / sum_q2, scale)
    for k in -FIT_RANGE..=FIT_RANGE {
        let inv = -(32.0 + FIT_STEP * k as f32) / extreme;
        // inv*v lies within +-32.9, so the shift keeps round_nonneg's argument non-negative.
        let q: [f32; 16] =
            std::array::from_fn(|i| (round_small(inv * x[i] + 64.0) - 64.0).clamp(-32.0, 31.0));
        // Weights x^2.
        let sum_xq = lane_sum::<16>(|i| x[i] * x[i] * x[i] * q[i]);
        let sum_q2 = lane_sum::<16>(|i| x[i] * x[i] * q[i] * q[i]);
        if sum_q2 <= 0.0 {
            continue;
        }
        let gain = sum_xq * sum_xq / sum_q2;
        if best.is_none_or(|(g, _)| gain > g) {
            best = Some((gain, sum_xq / sum_q2));
        }
    }
    best.map_or(0.0, |(_, scale)| scale)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `set_q` writes exactly the value `q` reads back, and leaves every other position alone,
    /// starting from blocks full of arbitrary bits.
    #[test]
    fn set_q_writes_only_its_own_value() {
        let mut state = 0x9e37_79b9_7f4a_7c15u64; // seed of a xorshift64 byte stream
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for case in 0..64 {
            let mut block = BlockQ6K::zeroed();
            for b in block.ql.iter_mut().chain(block.qh.iter_mut()) {
                *b = next() as u8;
            }
            for i in 0..QK_K {
                let before: Vec<u8> = (0..QK_K).map(|k| block.q(k)).collect();
                let value = (next() % 64) as u8;
                block.set_q(i, value);
                for (k, &old) in before.iter().enumerate() {
                    let expected = if k == i { value } else { old };
                    assert_eq!(
                        block.q(k),
                        expected,
                        "case {case}: set_q({i}, {value}), read {k}"
                    );
                }
            }
        }
    }
}
