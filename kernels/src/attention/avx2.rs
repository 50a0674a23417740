//! AVX2 + FMA + F16C flash attention. Four K rows share each `q` load in the dot products; the
//! tile's exponentials are computed eight at a time; `p*V` keeps 32 output values in registers
//! across the whole tile. f16 caches are widened with `vcvtph2ps` straight from memory.

use crate::simd::x86::hsum_ps;
use std::arch::x86_64::*;
use std::ops::Range;

use super::driver::{flash_attention_tiled, TileOps};
use super::{AttentionDims, KvElem, KvFormat};
use crate::ops::avx2::exp_nonpositive_ps;

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
    // SAFETY: this function enables the target features `Avx2TileOps` needs.
    unsafe { flash_attention_tiled::<Avx2TileOps, KV>(q, k, v, out, scratch, dims, heads) }
}

/// The AVX2, FMA and F16C primitives of the shared flash-attention driver.
pub(crate) struct Avx2TileOps;

impl TileOps for Avx2TileOps {
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
                let s = hsum_ps(_mm256_add_ps(a0, a1)) * scale;
                *scores.add(j) = s;
                max = max.max(s);
                j += 1;
            }
            max
        }
    }

    #[inline(always)]
    unsafe fn exp_tile(scores: *mut f32, tile_len: usize, max: f32) -> f32 {
        // SAFETY: `scores` holds `TILE` values, a multiple of 8, so each 8-wide access is in
        // bounds; lanes past `tile_len` are zeroed, never summed. The caller enables the target
        // features the shared `exp` needs.
        unsafe {
            // Live lanes hold `score - max <= 0` (`max` is the running max, at least every score
            // of the tile) or NaN, the overflow-free exp's domain; other lanes are masked out.
            let max_v = _mm256_set1_ps(max);
            let lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
            let mut sum = _mm256_setzero_ps();
            for base in (0..tile_len).step_by(8) {
                let live = _mm256_cmpgt_epi32(_mm256_set1_epi32((tile_len - base) as i32), lane);
                let x = _mm256_sub_ps(_mm256_loadu_ps(scores.add(base)), max_v);
                let p = _mm256_and_ps(exp_nonpositive_ps(x), _mm256_castsi256_ps(live));
                _mm256_storeu_ps(scores.add(base), p);
                sum = _mm256_add_ps(sum, p);
            }
            hsum_ps(sum)
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
