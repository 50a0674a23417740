//! AVX2 + FMA + F16C flash attention. Four K rows share each `q` load in the dot products; the
//! tile's exponentials are computed eight at a time; `p*V` keeps 32 output values in registers
//! across the whole tile. f16 caches are widened with `vcvtph2ps` straight from memory.

use std::arch::x86_64::*;
use std::ops::Range;

use super::exp_consts as c;
use super::{AttentionDims, KvElem, KvFormat, TILE};

/// Causal GQA attention over the query heads `heads`; same contract as
/// [`scalar::flash_attention`](super::scalar::flash_attention).
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C.
///
/// # Panics
/// If the slices do not match `dims` (see [`AttentionDims::check`]).
#[target_feature(enable = "avx2,fma,f16c")]
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
unsafe fn load8<KV: KvElem>(p: *const KV) -> __m256 {
    // SAFETY: the caller guarantees 8 elements at `p`; `KvFormat` names the element's layout.
    unsafe {
        match KV::FORMAT {
            KvFormat::F32 => _mm256_loadu_ps(p.cast()),
            KvFormat::F16 => _mm256_cvtph_ps(_mm_loadu_si128(p.cast())),
        }
    }
}

#[inline(always)]
unsafe fn hsum(x: __m256) -> f32 {
    // SAFETY: register-only arithmetic.
    unsafe {
        let s = _mm_add_ps(_mm256_castps256_ps128(x), _mm256_extractf128_ps::<1>(x));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)))
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
        let scale_v = _mm_set1_ps(scale);
        let mut max_v = _mm_set1_ps(f32::NEG_INFINITY);
        let mut j = 0;
        while j + 4 <= tile_len {
            let rows = [0, 1, 2, 3].map(|r| k_tile.add((j + r) * kv_stride));
            let mut a = [_mm256_setzero_ps(); 4];
            for i in (0..head_dim).step_by(8) {
                let qv = _mm256_loadu_ps(q.add(i));
                for r in 0..4 {
                    a[r] = _mm256_fmadd_ps(qv, load8(rows[r].add(i)), a[r]);
                }
            }
            // Lane r of the result is the full sum of a[r].
            let h01 = _mm256_hadd_ps(a[0], a[1]);
            let h23 = _mm256_hadd_ps(a[2], a[3]);
            let h = _mm256_hadd_ps(h01, h23);
            let dots = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps::<1>(h));
            let s = _mm_mul_ps(dots, scale_v);
            _mm_storeu_ps(scores.add(j), s);
            max_v = _mm_max_ps(max_v, s);
            j += 4;
        }
        let mut max = {
            let m = _mm_max_ps(max_v, _mm_movehl_ps(max_v, max_v));
            _mm_cvtss_f32(_mm_max_ss(m, _mm_movehdup_ps(m)))
        };
        while j < tile_len {
            let row = k_tile.add(j * kv_stride);
            let mut a0 = _mm256_setzero_ps();
            let mut a1 = _mm256_setzero_ps();
            for i in (0..head_dim).step_by(16) {
                a0 = _mm256_fmadd_ps(_mm256_loadu_ps(q.add(i)), load8(row.add(i)), a0);
                a1 = _mm256_fmadd_ps(_mm256_loadu_ps(q.add(i + 8)), load8(row.add(i + 8)), a1);
            }
            let s = hsum(_mm256_add_ps(a0, a1)) * scale;
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
unsafe fn exp_ps(x: __m256) -> __m256 {
    // SAFETY: register-only arithmetic.
    unsafe {
        let x = _mm256_min_ps(
            _mm256_max_ps(x, _mm256_set1_ps(c::MIN_ARG)),
            _mm256_set1_ps(c::MAX_ARG),
        );
        let n = _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(
            _mm256_mul_ps(x, _mm256_set1_ps(c::LOG2_E)),
        );
        let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(c::LN2_HI), x);
        let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(c::LN2_LO), r);
        let mut p = _mm256_set1_ps(c::P[0]);
        for &coef in &c::P[1..] {
            p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(coef));
        }
        let y = _mm256_fmadd_ps(
            p,
            _mm256_mul_ps(r, r),
            _mm256_add_ps(r, _mm256_set1_ps(1.0)),
        );
        let biased = _mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127));
        _mm256_mul_ps(y, _mm256_castsi256_ps(_mm256_slli_epi32::<23>(biased)))
    }
}

/// Replaces `scores[..tile_len]` by `exp(score - max)` and returns their sum.
#[inline(always)]
unsafe fn exp_tile(scores: *mut f32, tile_len: usize, max: f32) -> f32 {
    // SAFETY: `scores` holds `TILE` values, a multiple of 8, so each 8-wide access is in bounds;
    // lanes past `tile_len` are zeroed, never summed.
    unsafe {
        let max_v = _mm256_set1_ps(max);
        let lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        let mut sum = _mm256_setzero_ps();
        for base in (0..tile_len).step_by(8) {
            let live = _mm256_cmpgt_epi32(_mm256_set1_epi32((tile_len - base) as i32), lane);
            let x = _mm256_sub_ps(_mm256_loadu_ps(scores.add(base)), max_v);
            let p = _mm256_and_ps(exp_ps(x), _mm256_castsi256_ps(live));
            _mm256_storeu_ps(scores.add(base), p);
            sum = _mm256_add_ps(sum, p);
        }
        hsum(sum)
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
    // SAFETY: the caller guarantees `8 * N` values at `acc` and at each of the `tile_len` V rows.
    unsafe {
        let mut a = [_mm256_setzero_ps(); N];
        for (r, ar) in a.iter_mut().enumerate() {
            *ar = _mm256_loadu_ps(acc.add(8 * r));
        }
        for j in 0..tile_len {
            let pj = _mm256_broadcast_ss(&*p.add(j));
            let row = v_tile.add(j * kv_stride);
            for (r, ar) in a.iter_mut().enumerate() {
                *ar = _mm256_fmadd_ps(pj, load8(row.add(8 * r)), *ar);
            }
        }
        for (r, ar) in a.iter().enumerate() {
            _mm256_storeu_ps(acc.add(8 * r), *ar);
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
            accumulate_pv_chunk::<KV, 4>(acc.add(d), p, v_tile.add(d), kv_stride, tile_len);
            d += 32;
        }
        if d < head_dim {
            accumulate_pv_chunk::<KV, 2>(acc.add(d), p, v_tile.add(d), kv_stride, tile_len);
        }
    }
}

#[inline(always)]
unsafe fn scale_row(acc: *mut f32, head_dim: usize, factor: f32) {
    // SAFETY: the caller guarantees `head_dim` (a multiple of 8) values at `acc`.
    unsafe {
        let f = _mm256_set1_ps(factor);
        for i in (0..head_dim).step_by(8) {
            _mm256_storeu_ps(acc.add(i), _mm256_mul_ps(_mm256_loadu_ps(acc.add(i)), f));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attention::SIMD_EXP_MAX_REL_ERROR;

    #[target_feature(enable = "avx2,fma,f16c")]
    fn max_exp_rel_error(from: f32, to: f32, steps: usize) -> f64 {
        let mut worst = 0.0f64;
        let mut lanes = [0f32; 8];
        for i in (0..steps).step_by(8) {
            for (l, x) in lanes.iter_mut().enumerate() {
                *x = from + (to - from) * ((i + l) as f32 / steps as f32);
            }
            let mut y = [0f32; 8];
            // SAFETY: this function's target features cover `exp_ps`; both arrays hold 8 values.
            unsafe { _mm256_storeu_ps(y.as_mut_ptr(), exp_ps(_mm256_loadu_ps(lanes.as_ptr()))) };
            for (x, y) in lanes.iter().zip(y) {
                let exact = (*x as f64).exp();
                worst = worst.max(((y as f64 - exact) / exact).abs());
            }
        }
        worst
    }

    #[test]
    fn exp_meets_its_bound() {
        if let Some(why) = crate::Isa::Avx2.unavailable_reason() {
            eprintln!("skipped: {why}");
            return;
        }
        // SAFETY: availability checked above.
        let worst = unsafe { max_exp_rel_error(-87.3, 88.3, 4_000_000) };
        eprintln!("avx2 exp: max relative error {worst:.3e}");
        assert!(worst <= SIMD_EXP_MAX_REL_ERROR as f64, "{worst:e}");
    }
}
