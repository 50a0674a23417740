//! NEON flash attention: the AVX2 design at 4 lanes. Four K rows share each `q` load in the dot
//! products; the tile's exponentials are computed four at a time; `p*V` keeps 32 output values
//! in registers across the whole tile. f16 caches are widened with `fcvtl` (inline `fcvtl`: the intrinsic postdates the MSRV).

use std::arch::aarch64::*;
use std::ops::Range;

use super::driver::{flash_attention_tiled, TileOps};
use super::{AttentionDims, KvElem, KvFormat};
use crate::ops::neon::exp_nonpositive_f32x4;

/// Causal GQA attention over the query heads `heads`; same contract as
/// [`scalar::flash_attention`](super::scalar::flash_attention).
///
/// # Safety
/// The CPU must support NEON.
///
/// # Panics
/// If the slices do not match `dims` (see [`AttentionDims::check`]).
#[target_feature(enable = "neon")]
pub unsafe fn flash_attention<KV: KvElem>(
    q: &[f32],
    k: &[KV],
    v: &[KV],
    out: &mut [f32],
    scratch: &mut [f32],
    dims: AttentionDims,
    heads: Range<usize>,
) {
    // SAFETY: this function enables the target features `NeonTileOps` needs.
    unsafe { flash_attention_tiled::<NeonTileOps, KV>(q, k, v, out, scratch, dims, heads) }
}

/// The NEON primitives of the shared flash-attention driver.
pub(crate) struct NeonTileOps;

impl TileOps for NeonTileOps {
    #[inline(always)]
    unsafe fn tile_scores<KV: KvElem>(
        q: *const f32,
        k_tile: *const KV,
        kv_stride: usize,
        head_dim: usize,
        tile_len: usize,
        scale: f32,
        scores: *mut f32,
    ) -> f32 {
        // SAFETY: the caller guarantees `tile_len` rows of `head_dim` values at `kv_stride` apart
        // and `tile_len <= TILE` scores.
        unsafe {
            let mut max = f32::NEG_INFINITY;
            let mut j = 0;
            while j + 4 <= tile_len {
                let rows = [0, 1, 2, 3].map(|r| k_tile.add((j + r) * kv_stride));
                let mut a = [vdupq_n_f32(0.0); 8];
                for i in (0..head_dim).step_by(8) {
                    let q0 = vld1q_f32(q.add(i));
                    let q1 = vld1q_f32(q.add(i + 4));
                    for r in 0..4 {
                        a[2 * r] = vfmaq_f32(a[2 * r], q0, load4(rows[r].add(i)));
                        a[2 * r + 1] = vfmaq_f32(a[2 * r + 1], q1, load4(rows[r].add(i + 4)));
                    }
                }
                for r in 0..4 {
                    let s = vaddvq_f32(vaddq_f32(a[2 * r], a[2 * r + 1])) * scale;
                    *scores.add(j + r) = s;
                    max = max.max(s);
                }
                j += 4;
            }
            while j < tile_len {
                let row = k_tile.add(j * kv_stride);
                let mut a0 = vdupq_n_f32(0.0);
                let mut a1 = vdupq_n_f32(0.0);
                for i in (0..head_dim).step_by(8) {
                    a0 = vfmaq_f32(a0, vld1q_f32(q.add(i)), load4(row.add(i)));
                    a1 = vfmaq_f32(a1, vld1q_f32(q.add(i + 4)), load4(row.add(i + 4)));
                }
                let s = vaddvq_f32(vaddq_f32(a0, a1)) * scale;
                *scores.add(j) = s;
                max = max.max(s);
                j += 1;
            }
            max
        }
    }

    #[inline(always)]
    unsafe fn exp_tile(scores: *mut f32, tile_len: usize, max: f32) -> f32 {
        // SAFETY: `scores` holds `TILE` values, a multiple of 4, so each 4-wide access is in
        // bounds; lanes past `tile_len` are zeroed, never summed. The caller enables the target
        // features the shared `exp` needs.
        unsafe {
            // Live lanes hold `score - max <= 0` (`max` is the running max, at least every score
            // of the tile) or NaN, the overflow-free exp's domain; other lanes are masked out.
            let max_v = vdupq_n_f32(max);
            let lane_ids: [u32; 4] = [0, 1, 2, 3];
            let lane = vld1q_u32(lane_ids.as_ptr());
            let mut sum = vdupq_n_f32(0.0);
            for base in (0..tile_len).step_by(4) {
                let live = vcltq_u32(lane, vdupq_n_u32((tile_len - base) as u32));
                let x = vsubq_f32(vld1q_f32(scores.add(base)), max_v);
                let p = vreinterpretq_f32_u32(vandq_u32(
                    vreinterpretq_u32_f32(exp_nonpositive_f32x4(x)),
                    live,
                ));
                vst1q_f32(scores.add(base), p);
                sum = vaddq_f32(sum, p);
            }
            vaddvq_f32(sum)
        }
    }

    #[inline(always)]
    unsafe fn scale_row(acc: *mut f32, head_dim: usize, factor: f32) {
        // SAFETY: the caller guarantees `head_dim` (a multiple of 4) values at `acc`.
        unsafe {
            let f = vdupq_n_f32(factor);
            for i in (0..head_dim).step_by(4) {
                vst1q_f32(acc.add(i), vmulq_f32(vld1q_f32(acc.add(i)), f));
            }
        }
    }

    #[inline(always)]
    unsafe fn accumulate_pv<KV: KvElem>(
        acc: *mut f32,
        p: *const f32,
        v_tile: *const KV,
        kv_stride: usize,
        head_dim: usize,
        tile_len: usize,
    ) {
        // SAFETY: `head_dim` is a multiple of 16, so 32-wide chunks leave at most one 16-wide one.
        unsafe {
            let mut d = 0;
            while d + 32 <= head_dim {
                accumulate_pv_chunk::<KV, 8>(acc.add(d), p, v_tile.add(d), kv_stride, tile_len);
                d += 32;
            }
            if d < head_dim {
                accumulate_pv_chunk::<KV, 4>(acc.add(d), p, v_tile.add(d), kv_stride, tile_len);
            }
        }
    }
}

#[inline(always)]
unsafe fn load4<KV: KvElem>(p: *const KV) -> float32x4_t {
    // SAFETY: the caller guarantees 4 elements at `p`; `KvFormat` names the element's layout.
    unsafe {
        match KV::FORMAT {
            KvFormat::F32 => vld1q_f32(p.cast()),
            KvFormat::F16 => vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(p.cast()))),
        }
    }
}

/// `acc += sum_j p_j * v_j` over the tile, `N` vectors of `acc` at a time held in registers.
#[inline(always)]
unsafe fn accumulate_pv_chunk<KV: KvElem, const N: usize>(
    acc: *mut f32,
    p: *const f32,
    v_tile: *const KV,
    kv_stride: usize,
    tile_len: usize,
) {
    // SAFETY: the caller guarantees `4 * N` values at `acc` and at each of the `tile_len` V rows.
    unsafe {
        let mut a = [vdupq_n_f32(0.0); N];
        for (r, ar) in a.iter_mut().enumerate() {
            *ar = vld1q_f32(acc.add(4 * r));
        }
        for j in 0..tile_len {
            let pj = vdupq_n_f32(*p.add(j));
            let row = v_tile.add(j * kv_stride);
            for (r, ar) in a.iter_mut().enumerate() {
                *ar = vfmaq_f32(*ar, pj, load4(row.add(4 * r)));
            }
        }
        for (r, ar) in a.iter().enumerate() {
            vst1q_f32(acc.add(4 * r), *ar);
        }
    }
}
