//! The flash-attention loop every SIMD variant runs: query rows, GQA groups, KV tiles, the running
//! max and sum, the final normalisation. It owns the memory-safety argument for the whole call;
//! the per-ISA files supply only the vector primitives of [`TileOps`] and a `#[target_feature]`
//! entry function that calls [`flash_attention_tiled`], into which everything inlines.

use std::ops::Range;

use super::{AttentionDims, KvElem, TILE};

/// The vector primitives of one ISA. Every method is `#[inline(always)]` in its implementation,
/// so it compiles inside the `#[target_feature]` entry function that calls the driver.
///
/// # Safety (for every method)
/// The caller runs with the implementing ISA's target features enabled, and every pointer
/// covers what the method's doc names.
pub(crate) trait TileOps {
    /// `scores[j] = scale * q . k_j` for `j < tile_len`; returns their max. `q` holds
    /// `head_dim` values, `k_tile` `tile_len` rows of `head_dim` values `kv_stride` apart,
    /// `scores` `TILE` values (`tile_len <= TILE`).
    #[allow(clippy::too_many_arguments)]
    unsafe fn tile_scores<KV: KvElem>(
        q: *const f32,
        k_tile: *const KV,
        kv_stride: usize,
        head_dim: usize,
        tile_len: usize,
        scale: f32,
        scores: *mut f32,
    ) -> f32;

    /// Replaces `scores[..tile_len]` by `exp(score - max)` and returns their sum. `scores`
    /// holds `TILE` values (a multiple of every vector width), of which only the first
    /// `tile_len <= TILE` are summed.
    unsafe fn exp_tile(scores: *mut f32, tile_len: usize, max: f32) -> f32;

    /// `acc[..head_dim] *= factor`. `acc` holds `head_dim` (a multiple of 16) values.
    unsafe fn scale_row(acc: *mut f32, head_dim: usize, factor: f32);

    /// `acc += sum_j p_j * v_j` over the tile. `acc` holds `head_dim` (a multiple of 16) values,
    /// `p` `tile_len` weights, `v_tile` `tile_len` rows of `head_dim` values `kv_stride` apart.
    unsafe fn accumulate_pv<KV: KvElem>(
        acc: *mut f32,
        p: *const f32,
        v_tile: *const KV,
        kv_stride: usize,
        head_dim: usize,
        tile_len: usize,
    );
}

/// Causal GQA attention over the query heads `heads` with the primitives of `T`; the contract of
/// [`scalar::flash_attention`](super::scalar::flash_attention).
///
/// # Safety
/// The caller runs with the target features `T`'s primitives need enabled (it is the
/// `#[target_feature]` entry function of `T`'s ISA, into which this inlines).
///
/// # Panics
/// If the slices do not match `dims` (see [`AttentionDims::check`]).
#[inline(always)]
pub(crate) unsafe fn flash_attention_tiled<T: TileOps, KV: KvElem>(
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
            // those ranges, which is what each `TileOps` method asks of its pointers
            // (`tile_len <= TILE`, `head_dim` a multiple of 16). Our caller guarantees the
            // target features `T` needs.
            unsafe {
                for tile_start in (0..kv_end).step_by(TILE) {
                    let tile_len = TILE.min(kv_end - tile_start);
                    let at = tile_start * kv_stride + kv_head * head_dim;
                    let (k_tile, v_tile) = (k.as_ptr().add(at), v.as_ptr().add(at));
                    for (i, max_and_sum) in state.chunks_exact_mut(2).enumerate() {
                        let row = rows_start + i * head_dim;
                        let (q_row, acc) = (q.as_ptr().add(row), out.as_mut_ptr().add(row));
                        let tile_max = T::tile_scores(
                            q_row, k_tile, kv_stride, head_dim, tile_len, scale, scores,
                        );
                        let [running_max, running_sum] = max_and_sum else {
                            unreachable!("chunks of two")
                        };
                        if tile_max > *running_max {
                            let alpha = (*running_max - tile_max).exp();
                            T::scale_row(acc, head_dim, alpha);
                            *running_sum *= alpha;
                            *running_max = tile_max;
                        }
                        *running_sum += T::exp_tile(scores, tile_len, *running_max);
                        T::accumulate_pv(acc, scores, v_tile, kv_stride, head_dim, tile_len);
                    }
                }
                for (i, max_and_sum) in state.chunks_exact(2).enumerate() {
                    let acc = out.as_mut_ptr().add(rows_start + i * head_dim);
                    T::scale_row(acc, head_dim, 1.0 / max_and_sum[1]);
                }
            }
            first = last;
        }
    }
}
