//! Q4_K: 256 values in 8 sub-blocks of 32, 4-bit values with a 6-bit scale and min per sub-block.

use super::{
    f16_saturating, k_format, lane_sum, normalized_block, round_nonneg_i32, round_small,
    scale_up_pow2, QK_K,
};
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

/// All eight (scale, min) pairs at once, as bytes (`sc[j]`, `m[j]` for sub-block `j`): the values
/// [`q4k_scale_min`] gives, unpacked with word-wide masks instead of sixteen byte extractions.
/// The one copy every ISA's kernels use (the vector code loads the bytes from here).
#[inline(always)]
pub fn q4k_unpack_scales_mins(packed: &[u8; 12]) -> ([u8; 8], [u8; 8]) {
    const LOW6: u32 = 0x3f3f_3f3f;
    const LOW4: u32 = 0x0f0f_0f0f;
    const LOW2: u32 = 0x0303_0303;
    let word = |i: usize| {
        u32::from_le_bytes([
            packed[4 * i],
            packed[4 * i + 1],
            packed[4 * i + 2],
            packed[4 * i + 3],
        ])
    };
    let (w0, w1, w2) = (word(0), word(1), word(2));
    // j < 4: sc = scales[j] & 63, m = scales[j+4] & 63.
    let sc_lo = w0 & LOW6;
    let m_lo = w1 & LOW6;
    // j >= 4: the low 4 bits come from scales[j+4] (sc: low nibble, m: high nibble), the top 2
    // bits from the spare top bits of scales[j-4] (sc) and scales[j] (m).
    let sc_hi = (w2 & LOW4) | (((w0 >> 6) & LOW2) << 4);
    let m_hi = ((w2 >> 4) & LOW4) | (((w1 >> 6) & LOW2) << 4);
    let join = |lo: u32, hi: u32| (lo as u64 | (hi as u64) << 32).to_le_bytes();
    (join(sc_lo, sc_hi), join(m_lo, m_hi))
}

/// Packs eight 6-bit scales and mins; the inverse of [`q4k_scale_min`].
pub fn pack_scale_min(sc: &[u8; 8], m: &[u8; 8]) -> [u8; 12] {
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

impl BlockQ4K {
    /// The 256 values: value `l` of sub-block `j` is `(d*sc[j])*q - dmin*m[j]`, both products
    /// exact in f32. The one dequantization the row dequantizer and the scalar matmul share.
    #[inline(always)]
    pub fn dequantize(&self, out: &mut [f32; QK_K]) {
        let d = self.d.to_f32();
        let dmin = self.dmin.to_f32();
        let (sc, m) = q4k_unpack_scales_mins(&self.scales);
        for c in 0..4 {
            let (d_lo, min_lo) = (d * sc[2 * c] as f32, dmin * m[2 * c] as f32);
            let (d_hi, min_hi) = (d * sc[2 * c + 1] as f32, dmin * m[2 * c + 1] as f32);
            for l in 0..32 {
                let q = self.qs[32 * c + l];
                out[64 * c + l] = d_lo * (q & 0xF) as f32 - min_lo;
                out[64 * c + 32 + l] = d_hi * (q >> 4) as f32 - min_hi;
            }
        }
    }
}

k_format!(BlockQ4K, "q4_K", Q4K, quantize_block);

/// Quantizes one super-block in three steps:
/// 1. per sub-block, a weighted least-squares affine fit `x ~ scale*q - offset`, q in 0..=15
///    (see [`fit_sub_block`]);
/// 2. the eight scales and eight offsets quantized to 6 bits against `d = max scale / 63` and
///    `dmin = max offset / 63`;
/// 3. the nibbles chosen again against the scales and offsets as stored, since those are what
///    the dequantizer will use, trying each sub-block's 6-bit pair and its neighbours (see
///    [`refine_scale_min`]; steps 1-2 and the re-fit are llama.cpp's method, the neighbour
///    search is ours and lowers the RMSE on N(0,1) data by about 2%).
///
/// The fits run on a power-of-two rescaled copy of the block (see [`normalized_block`]) so that
/// any finite input is safe; `d`/`dmin` saturate at the largest finite f16.
#[inline(always)]
fn quantize_block(x: &[f32; QK_K]) -> BlockQ4K {
    let Some((xn, exp)) = normalized_block(x) else {
        return BlockQ4K::zeroed();
    };
    let mut scales = [0f32; 8];
    let mut offsets = [0f32; 8];
    for j in 0..8 {
        let sub: &[f32; 32] = xn[32 * j..32 * j + 32].try_into().expect("32 values");
        (scales[j], offsets[j]) = fit_sub_block(sub, &sub_block_weights(sub));
    }
    let max_scale = scales.iter().fold(0f32, |a, &s| a.max(s));
    let max_offset = offsets.iter().fold(0f32, |a, &m| a.max(m));
    let to_6bit = |v: f32, max: f32| {
        if max > 0.0 {
            round_nonneg_i32(63.0 / max * v).min(63) as u8
        } else {
            0
        }
    };
    let mut sc = scales.map(|s| to_6bit(s, max_scale));
    let mut m = offsets.map(|o| to_6bit(o, max_offset));
    let d = f16_saturating(scale_up_pow2(max_scale / 63.0, exp));
    let dmin = f16_saturating(scale_up_pow2(max_offset / 63.0, exp));

    // The stored d and dmin on the normalized scale (exact: a power-of-two factor of f32 values
    // that stay normal, since the normalized maximum is about 1).
    let (d_f32, dmin_f32) = (
        scale_up_pow2(d.to_f32(), -exp),
        scale_up_pow2(dmin.to_f32(), -exp),
    );
    let mut q = [0u8; QK_K];
    for j in 0..8 {
        let sub: &[f32; 32] = xn[32 * j..32 * j + 32].try_into().expect("32 values");
        let out: &mut [u8; 32] = (&mut q[32 * j..32 * j + 32]).try_into().expect("32 values");
        (sc[j], m[j]) = refine_scale_min(sub, d_f32, dmin_f32, sc[j], m[j], out);
    }
    let mut block = BlockQ4K {
        d,
        dmin,
        scales: pack_scale_min(&sc, &m),
        qs: [0; 128],
    };
    for c in 0..4 {
        for l in 0..32 {
            block.qs[32 * c + l] = q[64 * c + l] | (q[64 * c + 32 + l] << 4);
        }
    }
    block
}

/// Picks the sub-block's 6-bit (scale, min) among the rounded values and their neighbours, with
/// the nibbles re-fitted to each pair, by the unweighted squared error against the stored `d` and
/// `dmin`; writes the winning nibbles to `q` and returns the pair.
///
/// Rounding the scale and min separately to 6 bits ignores that the two errors interact (a
/// slightly smaller step can be compensated by the offset, and vice versa); trying the
/// neighbours recovers part of that. `x`, `d` and `dmin` are on the block's normalized scale
/// (see [`normalized_block`]), so the f32 sums cannot overflow; the nibbles are the same as on
/// the original scale, which differs by a power of two.
#[inline(always)]
fn refine_scale_min(x: &[f32; 32], d: f32, dmin: f32, sc: u8, m: u8, q: &mut [u8; 32]) -> (u8, u8) {
    let mut best: Option<(f32, u8, u8, [f32; 32])> = None;
    for try_sc in sc.saturating_sub(1)..=(sc + 1).min(63) {
        for try_m in m.saturating_sub(1)..=(m + 1).min(63) {
            let step = d * try_sc as f32;
            let offset = dmin * try_m as f32;
            let candidate: [f32; 32] = if step > 0.0 {
                let inv_step = 1.0 / step;
                std::array::from_fn(|i| {
                    round_small(((x[i] + offset) * inv_step).max(0.0)).min(15.0)
                })
            } else {
                [0.0; 32]
            };
            let error = lane_sum::<32>(|i| {
                let diff = step * candidate[i] - offset - x[i];
                diff * diff
            });
            if best.is_none_or(|(e, ..)| error < e) {
                best = Some((error, try_sc, try_m, candidate));
            }
        }
    }
    match best {
        Some((_, s, mm, levels)) => {
            for (qi, l) in q.iter_mut().zip(levels) {
                *qi = l as u8;
            }
            (s, mm)
        }
        None => (sc, m),
    }
}

/// Weight of each value's squared error in the sub-block fit: the sub-block's RMS plus the
/// value's own magnitude (llama.cpp's weighting without an importance matrix). Large values get
/// more say, which keeps the fit from sacrificing the extremes that dominate the RMSE.
#[inline(always)]
fn sub_block_weights(x: &[f32; 32]) -> [f32; 32] {
    let rms = (lane_sum::<32>(|i| x[i] * x[i]) / 32.0).sqrt();
    x.map(|v| rms + v.abs())
}

/// How many candidate step counts [`fit_sub_block`] tries beyond the min/max fit, and where:
/// the range is divided into `15 + FIRST + DELTA*k` steps for k in 0..=STEPS, i.e. 14 to 16.
const FIT_STEPS: usize = 20;
const FIT_FIRST: f32 = -1.0;
const FIT_DELTA: f32 = 0.1;

/// Weighted least-squares affine fit of one 32-value sub-block: returns `(scale, offset)` with
/// `x ~ scale*q - offset`, q in 0..=15, `scale >= 0`, `offset >= 0` (the format stores the
/// offset as a non-negative 6-bit min, so a sub-block that is all positive still starts at 0).
///
/// Rounding to the min/max grid is rarely best: the extremes are single values, and moving the
/// grid so that more of the bulk lands near grid points pays off. So each candidate grid (range
/// divided into slightly fewer or more steps) assigns the integers, and for that assignment the
/// closed-form weighted least-squares scale and offset are computed; the candidate with the
/// smallest weighted squared error wins. (The method of llama.cpp's `make_qkx2_quants`.)
#[inline(always)]
fn fit_sub_block(x: &[f32; 32], w: &[f32; 32]) -> (f32, f32) {
    let lo = x.iter().fold(0f32, |a, &v| a.min(v));
    let hi = x.iter().fold(f32::NEG_INFINITY, |a, &v| a.max(v));
    if hi <= lo {
        // Every value equals lo <= 0: the offset alone represents them.
        return (0.0, -lo);
    }
    let range = hi - lo;
    let sum_w = lane_sum::<32>(|i| w[i]);
    let sum_wx = lane_sum::<32>(|i| w[i] * x[i]);
    let weighted_error = |scale: f32, min: f32, q: &[f32; 32]| -> f32 {
        lane_sum::<32>(|i| {
            let diff = scale * q[i] + min - x[i];
            w[i] * diff * diff
        })
    };
    // The levels as f32 (0..=15, exact): the sums below use them as such.
    let assign = |inv_step: f32, min: f32| -> [f32; 32] {
        std::array::from_fn(|i| round_small((inv_step * (x[i] - min)).max(0.0)).min(15.0))
    };
    let (mut best_scale, mut best_min) = (range / 15.0, lo);
    let mut best_error = weighted_error(best_scale, best_min, &assign(15.0 / range, lo));

    for k in 0..=FIT_STEPS {
        let inv_step = (15.0 + FIT_FIRST + FIT_DELTA * k as f32) / range;
        let q = assign(inv_step, lo);
        let sum_l = lane_sum::<32>(|i| w[i] * q[i]);
        let sum_l2 = lane_sum::<32>(|i| w[i] * q[i] * q[i]);
        let sum_xl = lane_sum::<32>(|i| w[i] * q[i] * x[i]);
        let det = sum_w * sum_l2 - sum_l * sum_l;
        // Also skips a NaN determinant.
        if det.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater) {
            continue;
        }
        let mut scale = (sum_w * sum_xl - sum_wx * sum_l) / det;
        let mut min = (sum_l2 * sum_wx - sum_l * sum_xl) / det;
        if min > 0.0 {
            // The format cannot add a positive constant: pin the min at 0 and refit the scale.
            min = 0.0;
            scale = sum_xl / sum_l2;
        }
        let error = weighted_error(scale, min, &q);
        if error < best_error {
            (best_scale, best_min, best_error) = (scale, min, error);
        }
    }
    (best_scale.max(0.0), -best_min)
}

#[cfg(test)]
mod tests {
    #[test]
    fn word_wide_unpack_matches_the_format_definition() {
        // A cheap deterministic generator covering every bit position of every byte.
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        for _ in 0..4096 {
            let mut packed = [0u8; 12];
            for byte in packed.iter_mut() {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                *byte = state as u8;
            }
            let (sc, m) = super::q4k_unpack_scales_mins(&packed);
            for j in 0..8 {
                assert_eq!((sc[j], m[j]), q4k_scale_min(j, &packed), "{packed:?} j={j}");
            }
        }
    }

    use super::*;
    use crate::quant::round_i32;

    /// Every (scale, min) pair at every sub-block position survives pack then unpack, with the
    /// other seven positions holding values that differ from it, so a bit leaking into or out
    /// of a neighbour's field shows up.
    #[test]
    fn pack_scale_min_round_trips_every_pair_at_every_position() {
        for j in 0..8 {
            for sc_j in 0..64u8 {
                for m_j in 0..64u8 {
                    let mut sc: [u8; 8] = std::array::from_fn(|k| (63 - sc_j + 7 * k as u8) & 63);
                    let mut m: [u8; 8] = std::array::from_fn(|k| (m_j ^ (9 * k as u8 + 1)) & 63);
                    (sc[j], m[j]) = (sc_j, m_j);
                    let packed = pack_scale_min(&sc, &m);
                    for k in 0..8 {
                        assert_eq!(
                            q4k_scale_min(k, &packed),
                            (sc[k], m[k]),
                            "position {j} holding ({sc_j}, {m_j}), read back at {k}"
                        );
                    }
                }
            }
        }
    }

    /// The refinement may only pick a pair at least as good (unweighted) as the rounded one.
    #[test]
    fn refine_scale_min_never_worsens_the_rounded_pair() {
        let x: [f32; 32] = std::array::from_fn(|i| ((i * 37 % 32) as f32 - 11.3) * 0.07);
        let (d, dmin) = (0.0123f32, 0.0311f32);
        let error = |sc: u8, m: u8, q: &[u8; 32]| -> f64 {
            (0..32)
                .map(|i| {
                    let y = d as f64 * sc as f64 * q[i] as f64 - dmin as f64 * m as f64;
                    (y - x[i] as f64).powi(2)
                })
                .sum()
        };
        for (sc, m) in [(0u8, 0u8), (10, 25), (63, 63), (1, 0), (40, 27)] {
            let step = d * sc as f32;
            let rounded: [u8; 32] = std::array::from_fn(|i| {
                if step > 0.0 {
                    round_i32((x[i] + dmin * m as f32) / step).clamp(0, 15) as u8
                } else {
                    0
                }
            });
            let mut q = [0u8; 32];
            let (sc2, m2) = refine_scale_min(&x, d, dmin, sc, m, &mut q);
            assert!(sc2.abs_diff(sc) <= 1 && m2.abs_diff(m) <= 1 && sc2 < 64 && m2 < 64);
            assert!(
                error(sc2, m2, &q) <= error(sc, m, &rounded),
                "({sc}, {m}) -> ({sc2}, {m2})"
            );
        }
    }
}
