//! NEON flash attention: the AVX2 design at 4 lanes. Four K rows share each `q` load in the dot
//! products; the tile's exponentials are computed four at a time; `p*V` keeps 32 output values
//! in registers across the whole tile. f16 caches are widened with `fcvtl` (inline `fcvtl`: the intrinsic postdates the MSRV).

use std::arch::aarch64::*;
use std::ops::Range;

use super::exp_consts as c;
use super::{AttentionDims, KvElem, KvFormat, TILE};

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
    dims.check(q.len(), k.len(), v.len(), out.len(), scratch.len(), &heads);
    let head_dim = dims.head_dim;
    let group = dims.group();
    let scale = dims.scale();
    let kv_stride = dims.kv_stride();
    let (scores, state) = scratch.split_at_mut(TILE);
    let scores = scores.as_mut_ptr();

    for t in 0..dims.n_q {
        let kv_end = dims.pos0 + t + 1;
        // The query heads sharing a KV head walk the cache together, tile by tile, so each K/V
        // tile comes from memory once and is reused from L1 by the whole group. Each head keeps
        // its running max and sum in `state`, its accumulator in its own `out` row.
        let mut first = heads.start;
        while first < heads.end {
            let kv_head = first / group;
            let last = heads.end.min((kv_head + 1) * group);
            let rows_start = (t * dims.n_head + first) * head_dim;
            out[rows_start..rows_start + (last - first) * head_dim].fill(0.0);
            let state = &mut state[..2 * (last - first)];
            for max_and_sum in state.chunks_exact_mut(2) {
                max_and_sum.copy_from_slice(&[f32::NEG_INFINITY, 0.0]);
            }
            // SAFETY: `check` guarantees `q` and `out` hold `head_dim` values at every row
            // below (heads `first..last` of row `t`), the cache holds `kv_end <= kv_len`
            // positions of `kv_stride` values and `kv_head * head_dim + head_dim <= kv_stride`,
            // and `scratch` holds `TILE` scores before `state`; every pointer below stays inside
            // those ranges (vector loads never cross `head_dim`, a multiple of 16, and score
            // accesses never cross `TILE`, a multiple of 16).
            unsafe {
                for tile_start in (0..kv_end).step_by(TILE) {
                    let tile_len = TILE.min(kv_end - tile_start);
                    let at = tile_start * kv_stride + kv_head * head_dim;
                    let (k_tile, v_tile) = (k.as_ptr().add(at), v.as_ptr().add(at));
                    for (i, max_and_sum) in state.chunks_exact_mut(2).enumerate() {
                        let row = rows_start + i * head_dim;
                        let (q_row, acc) = (q.as_ptr().add(row), out.as_mut_ptr().add(row));
                        let tile_max = tile_scores(
                            q_row, k_tile, kv_stride, head_dim, tile_len, scale, scores,
                        );
                        let [running_max, running_sum] = max_and_sum else {
                            unreachable!("chunks of two")
                        };
                        if tile_max > *running_max {
                            let alpha = (*running_max - tile_max).exp();
                            scale_row(acc, head_dim, alpha);
                            *running_sum *= alpha;
                            *running_max = tile_max;
                        }
                        *running_sum += exp_tile(scores, tile_len, *running_max);
                        accumulate_pv(acc, scores, v_tile, kv_stride, head_dim, tile_len);
                    }
                }
                for (i, max_and_sum) in state.chunks_exact(2).enumerate() {
                    let acc = out.as_mut_ptr().add(rows_start + i * head_dim);
                    scale_row(acc, head_dim, 1.0 / max_and_sum[1]);
                }
            }
            first = last;
        }
    }
}

#[inline(always)]
unsafe fn load4<KV: KvElem>(p: *const KV) -> float32x4_t {
    // SAFETY: the caller guarantees 4 elements at `p`; `KvFormat` names the element's layout.
    unsafe {
        match KV::FORMAT {
            KvFormat::F32 => vld1q_f32(p.cast()),
            KvFormat::F16 => {
                // `vcvt_f32_f16` is only stable since Rust 1.94, past the workspace MSRV (1.89);
                // this is the one instruction it compiles to.
                let halves = vld1_u16(p.cast());
                let wide: float32x4_t;
                std::arch::asm!(
                    "fcvtl {wide:v}.4s, {halves:v}.4h",
                    wide = out(vreg) wide,
                    halves = in(vreg) halves,
                    options(pure, nomem, nostack, preserves_flags),
                );
                wide
            }
        }
    }
}

/// `scores[j] = scale * q . k_j` for the tile's rows; returns their max.
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

/// `e^x` for each lane; relative error at most
/// [`SIMD_EXP_MAX_REL_ERROR`](super::SIMD_EXP_MAX_REL_ERROR) on `[MIN_ARG, MAX_ARG]`.
#[inline(always)]
unsafe fn exp_ps(x: float32x4_t) -> float32x4_t {
    // SAFETY: register-only arithmetic.
    unsafe {
        let x = vminq_f32(
            vmaxq_f32(x, vdupq_n_f32(c::MIN_ARG)),
            vdupq_n_f32(c::MAX_ARG),
        );
        let n = vrndnq_f32(vmulq_f32(x, vdupq_n_f32(c::LOG2_E)));
        let r = vfmsq_f32(x, n, vdupq_n_f32(c::LN2_HI));
        let r = vfmsq_f32(r, n, vdupq_n_f32(c::LN2_LO));
        let mut p = vdupq_n_f32(c::P[0]);
        for &coef in &c::P[1..] {
            p = vfmaq_f32(vdupq_n_f32(coef), p, r);
        }
        let y = vfmaq_f32(vaddq_f32(r, vdupq_n_f32(1.0)), p, vmulq_f32(r, r));
        let biased = vaddq_s32(vcvtq_s32_f32(n), vdupq_n_s32(127));
        vmulq_f32(y, vreinterpretq_f32_s32(vshlq_n_s32::<23>(biased)))
    }
}

/// Replaces `scores[..tile_len]` by `exp(score - max)` and returns their sum.
#[inline(always)]
unsafe fn exp_tile(scores: *mut f32, tile_len: usize, max: f32) -> f32 {
    // SAFETY: `scores` holds `TILE` values, a multiple of 4, so each 4-wide access is in bounds;
    // lanes past `tile_len` are zeroed, never summed.
    unsafe {
        let max_v = vdupq_n_f32(max);
        let lane_ids: [u32; 4] = [0, 1, 2, 3];
        let lane = vld1q_u32(lane_ids.as_ptr());
        let mut sum = vdupq_n_f32(0.0);
        for base in (0..tile_len).step_by(4) {
            let live = vcltq_u32(lane, vdupq_n_u32((tile_len - base) as u32));
            let x = vsubq_f32(vld1q_f32(scores.add(base)), max_v);
            let p = vreinterpretq_f32_u32(vandq_u32(vreinterpretq_u32_f32(exp_ps(x)), live));
            vst1q_f32(scores.add(base), p);
            sum = vaddq_f32(sum, p);
        }
        vaddvq_f32(sum)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attention::SIMD_EXP_MAX_REL_ERROR;

    #[target_feature(enable = "neon")]
    fn max_exp_rel_error(from: f32, to: f32, steps: usize) -> f64 {
        let mut worst = 0.0f64;
        let mut lanes = [0f32; 4];
        for i in (0..steps).step_by(4) {
            for (l, x) in lanes.iter_mut().enumerate() {
                *x = from + (to - from) * ((i + l) as f32 / steps as f32);
            }
            let mut y = [0f32; 4];
            // SAFETY: this function's target features cover `exp_ps`; both arrays hold 4 values.
            unsafe { vst1q_f32(y.as_mut_ptr(), exp_ps(vld1q_f32(lanes.as_ptr()))) };
            for (x, y) in lanes.iter().zip(y) {
                let exact = (*x as f64).exp();
                worst = worst.max(((y as f64 - exact) / exact).abs());
            }
        }
        worst
    }

    #[test]
    fn exp_meets_its_bound() {
        if let Some(why) = crate::Isa::Neon.unavailable_reason() {
            eprintln!("skipped: {why}");
            return;
        }
        // SAFETY: availability checked above.
        let worst = unsafe { max_exp_rel_error(-87.3, 88.3, 1_000_000) };
        eprintln!("neon exp: max relative error {worst:.3e}");
        assert!(worst <= SIMD_EXP_MAX_REL_ERROR as f64, "{worst:e}");
    }
}
