//! AVX-512 flash attention: the AVX2 design at 16 lanes. Four K rows share each `q` load in the
//! dot products; the tile's exponentials are computed sixteen at a time under a lane mask;
//! `p*V` keeps 64 output values in registers across the whole tile. f16 caches are widened
//! with `vcvtph2ps` straight from memory.

use std::arch::x86_64::*;
use std::ops::Range;

use super::driver::{flash_attention_tiled, TileOps};
use super::{AttentionDims, KvElem, KvFormat};
use crate::ops::avx512::exp_nonpositive_ps;

/// Causal GQA attention over the query heads `heads`; same contract as
/// [`scalar::flash_attention`](super::scalar::flash_attention).
///
/// # Safety
/// The CPU must support AVX-512 F (and the AVX2/FMA/F16C set [`crate::Isa::Avx512`] implies).
///
/// # Panics
/// If the slices do not match `dims` (see [`AttentionDims::check`]).
#[target_feature(enable = "avx512f,avx2,fma,f16c")]
pub unsafe fn flash_attention<KV: KvElem>(
    q: &[f32],
    k: &[KV],
    v: &[KV],
    out: &mut [f32],
    scratch: &mut [f32],
    dims: AttentionDims,
    heads: Range<usize>,
) {
    // SAFETY: this function enables the target features `Avx512TileOps` needs.
    unsafe { flash_attention_tiled::<Avx512TileOps, KV>(q, k, v, out, scratch, dims, heads) }
}

/// The AVX-512 F primitives of the shared flash-attention driver.
pub(crate) struct Avx512TileOps;

impl TileOps for Avx512TileOps {
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
                let mut a = [_mm512_setzero_ps(); 4];
                for i in (0..head_dim).step_by(16) {
                    let qv = _mm512_loadu_ps(q.add(i));
                    for r in 0..4 {
                        a[r] = _mm512_fmadd_ps(qv, load16(rows[r].add(i)), a[r]);
                    }
                }
                for (r, ar) in a.iter().enumerate() {
                    let s = _mm512_reduce_add_ps(*ar) * scale;
                    *scores.add(j + r) = s;
                    max = max.max(s);
                }
                j += 4;
            }
            while j < tile_len {
                let row = k_tile.add(j * kv_stride);
                let mut a = _mm512_setzero_ps();
                for i in (0..head_dim).step_by(16) {
                    a = _mm512_fmadd_ps(_mm512_loadu_ps(q.add(i)), load16(row.add(i)), a);
                }
                let s = _mm512_reduce_add_ps(a) * scale;
                *scores.add(j) = s;
                max = max.max(s);
                j += 1;
            }
            max
        }
    }

    #[inline(always)]
    unsafe fn exp_tile(scores: *mut f32, tile_len: usize, max: f32) -> f32 {
        // SAFETY: the masked load and store touch only `scores[..tile_len]`. The caller enables
        // the target features the shared `exp` needs.
        unsafe {
            // Live lanes hold `score - max <= 0` (`max` is the running max, at least every score
            // of the tile) or NaN, the overflow-free exp's domain; other lanes are masked out.
            let max_v = _mm512_set1_ps(max);
            let mut sum = _mm512_setzero_ps();
            for base in (0..tile_len).step_by(16) {
                let live_lanes = (tile_len - base).min(16);
                let live: __mmask16 = (((1u32 << live_lanes) - 1) & 0xFFFF) as __mmask16;
                let x = _mm512_sub_ps(_mm512_maskz_loadu_ps(live, scores.add(base)), max_v);
                let p = _mm512_maskz_mov_ps(live, exp_nonpositive_ps(x));
                _mm512_mask_storeu_ps(scores.add(base), live, p);
                sum = _mm512_add_ps(sum, p);
            }
            _mm512_reduce_add_ps(sum)
        }
    }

    #[inline(always)]
    unsafe fn scale_row(acc: *mut f32, head_dim: usize, factor: f32) {
        // SAFETY: the caller guarantees `head_dim` (a multiple of 16) values at `acc`.
        unsafe {
            let f = _mm512_set1_ps(factor);
            for i in (0..head_dim).step_by(16) {
                _mm512_storeu_ps(acc.add(i), _mm512_mul_ps(_mm512_loadu_ps(acc.add(i)), f));
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
        // SAFETY: `head_dim` is a multiple of 16: 64-wide chunks, then 16-wide ones, cover it
        // exactly.
        unsafe {
            let mut d = 0;
            while d + 64 <= head_dim {
                accumulate_pv_chunk::<KV, 4>(acc.add(d), p, v_tile.add(d), kv_stride, tile_len);
                d += 64;
            }
            while d < head_dim {
                accumulate_pv_chunk::<KV, 1>(acc.add(d), p, v_tile.add(d), kv_stride, tile_len);
                d += 16;
            }
        }
    }
}

#[inline(always)]
unsafe fn load16<KV: KvElem>(p: *const KV) -> __m512 {
    // SAFETY: the caller guarantees 16 elements at `p`; `KvFormat` names the element's layout.
    unsafe {
        match KV::FORMAT {
            KvFormat::F32 => _mm512_loadu_ps(p.cast()),
            KvFormat::F16 => _mm512_cvtph_ps(_mm256_loadu_si256(p.cast())),
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
    // SAFETY: the caller guarantees `16 * N` values at `acc` and at each of the `tile_len` V rows.
    unsafe {
        let mut a = [_mm512_setzero_ps(); N];
        for (r, ar) in a.iter_mut().enumerate() {
            *ar = _mm512_loadu_ps(acc.add(16 * r));
        }
        for j in 0..tile_len {
            let pj = _mm512_set1_ps(*p.add(j));
            let row = v_tile.add(j * kv_stride);
            for (r, ar) in a.iter_mut().enumerate() {
                *ar = _mm512_fmadd_ps(pj, load16(row.add(16 * r)), *ar);
            }
        }
        for (r, ar) in a.iter().enumerate() {
            _mm512_storeu_ps(acc.add(16 * r), *ar);
        }
    }
}
