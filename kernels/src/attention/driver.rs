//! The flash-attention loop every SIMD variant runs: query rows, GQA groups, KV tiles, the running
//! max and sum, the final normalisation. It owns the memory-safety argument for the whole call;
//! the per-ISA files supply only their lanes ([`AttentionLanes`], over [`crate::simd::lanes`])
//! and, through [`flash_attention_entry`], a `#[target_feature]` entry function that calls
//! [`flash_attention_tiled`], into which everything inlines.

use std::ops::Range;

use super::{AttentionDims, KvElem, KvFormat, TILE};
use crate::ops::exp::exp_lanes;
use crate::simd::lanes::{F32Lanes, F32Math};

/// The lanes one ISA's attention runs on. The loop, the dot products, the exponentials, the
/// rescaling and `p*V` are written once below over these; an ISA supplies its lane types and,
/// where its reduction differs, the four-row score reduction.
pub(crate) trait AttentionLanes {
    /// The lanes of the `q.k` dot products.
    type Dot: F32Lanes;
    /// The lanes of the exponentials, the rescaling and `p*V`.
    type Acc: F32Math;
    /// Whether a one-row dot product (the `tile_len % 4` rows after the four-row blocks) keeps
    /// two accumulators, `Dot::LANES` values apart, instead of one.
    const ROW_DOT_PAIR: bool;

    /// `scores[r] = scale * sum(a[r])` for `r < 4`; by default each row reduced by itself.
    ///
    /// # Safety
    /// The caller runs with this ISA's target features; `scores` covers 4 values.
    #[inline(always)]
    unsafe fn scores4(a: [<Self::Dot as F32Lanes>::V; 4], scale: f32, scores: *mut f32) {
        for (r, ar) in a.iter().enumerate() {
            // SAFETY: the caller's contract above.
            unsafe { *scores.add(r) = Self::Dot::hsum(*ar) * scale };
        }
    }
}

/// The entry function of one SIMD ISA: `flash_attention` with the `#[target_feature]`s its
/// lanes need, running [`flash_attention_tiled`] (into which everything inlines).
macro_rules! flash_attention_entry {
    ($features:literal, $lanes:ty, $cpu:literal) => {
        /// Causal GQA attention over the query heads `heads`; same contract as
        /// [`scalar::flash_attention`](super::scalar::flash_attention).
        ///
        /// # Safety
        #[doc = concat!("The CPU must support ", $cpu, ".")]
        ///
        /// # Panics
        /// If the slices do not match `dims` (see
        /// [`AttentionDims::check`](super::AttentionDims::check)).
        #[target_feature(enable = $features)]
        pub unsafe fn flash_attention<KV: $crate::attention::KvElem>(
            q: &[f32],
            k: &[KV],
            v: &[KV],
            out: &mut [f32],
            scratch: &mut [f32],
            dims: $crate::attention::AttentionDims,
            heads: std::ops::Range<usize>,
        ) {
            // SAFETY: this function enables the target features the lanes need.
            unsafe {
                super::driver::flash_attention_tiled::<$lanes, KV>(
                    q, k, v, out, scratch, dims, heads,
                )
            }
        }
    };
}
pub(crate) use flash_attention_entry;

/// `Dot::LANES` (or `Acc::LANES`) elements at `p` widened to f32 as `KvFormat` says.
///
/// # Safety
/// The caller runs with `L`'s target features; `p` covers `L::LANES` elements.
#[inline(always)]
unsafe fn load_kv<L: F32Lanes, KV: KvElem>(p: *const KV) -> L::V {
    // SAFETY: the caller's contract; `KvFormat` names the element's layout.
    unsafe {
        match KV::FORMAT {
            KvFormat::F32 => L::load(p.cast()),
            KvFormat::F16 => L::load_f16(p.cast()),
        }
    }
}

/// `scores[j] = scale * q . k_j` for `j < tile_len`; returns their max. `q` holds `head_dim`
/// values, `k_tile` `tile_len` rows of `head_dim` values `kv_stride` apart, `scores` `TILE`
/// values (`tile_len <= TILE`). Four K rows share each `q` load.
///
/// # Safety
/// The caller runs with `T`'s target features and the pointers cover what is named above.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
unsafe fn tile_scores<T: AttentionLanes, KV: KvElem>(
    q: *const f32,
    k_tile: *const KV,
    kv_stride: usize,
    head_dim: usize,
    tile_len: usize,
    scale: f32,
    scores: *mut f32,
) -> f32 {
    let lanes = T::Dot::LANES;
    // SAFETY: the caller guarantees `tile_len` rows of `head_dim` values `kv_stride` apart,
    // `head_dim` values at `q` (a multiple of 16, so of every `Dot::LANES` step below) and
    // `tile_len <= TILE` scores.
    unsafe {
        // The max is exact whatever the order it is taken in.
        let mut max = f32::NEG_INFINITY;
        let mut j = 0;
        while j + 4 <= tile_len {
            let rows = [0, 1, 2, 3].map(|r| k_tile.add((j + r) * kv_stride));
            let mut a = [T::Dot::zero(); 4];
            for i in (0..head_dim).step_by(lanes) {
                let qv = T::Dot::load(q.add(i));
                for r in 0..4 {
                    a[r] = T::Dot::fma(qv, load_kv::<T::Dot, KV>(rows[r].add(i)), a[r]);
                }
            }
            T::scores4(a, scale, scores.add(j));
            for r in 0..4 {
                max = max.max(*scores.add(j + r));
            }
            j += 4;
        }
        while j < tile_len {
            let row = k_tile.add(j * kv_stride);
            let dot = if T::ROW_DOT_PAIR {
                let (mut a0, mut a1) = (T::Dot::zero(), T::Dot::zero());
                for i in (0..head_dim).step_by(2 * lanes) {
                    a0 = T::Dot::fma(
                        T::Dot::load(q.add(i)),
                        load_kv::<T::Dot, KV>(row.add(i)),
                        a0,
                    );
                    let (qi, ki) = (q.add(i + lanes), row.add(i + lanes));
                    a1 = T::Dot::fma(T::Dot::load(qi), load_kv::<T::Dot, KV>(ki), a1);
                }
                T::Dot::hsum(T::Dot::add(a0, a1))
            } else {
                let mut a = T::Dot::zero();
                for i in (0..head_dim).step_by(lanes) {
                    a = T::Dot::fma(T::Dot::load(q.add(i)), load_kv::<T::Dot, KV>(row.add(i)), a);
                }
                T::Dot::hsum(a)
            };
            let s = dot * scale;
            *scores.add(j) = s;
            max = max.max(s);
            j += 1;
        }
        max
    }
}

/// Replaces `scores[..tile_len]` by `exp(score - max)` and returns their sum. `scores` holds
/// `TILE` values (a multiple of every vector width), of which only the first `tile_len <= TILE`
/// are summed; the lanes past `tile_len` are zeroed.
///
/// # Safety
/// The caller runs with `A`'s target features; `scores` covers `TILE` values.
#[inline(always)]
unsafe fn exp_tile<A: F32Math>(scores: *mut f32, tile_len: usize, max: f32) -> f32 {
    // SAFETY: `scores` holds `TILE` values, a multiple of `A::LANES`, so each vector access is
    // in bounds; lanes past `tile_len` are zeroed, never summed.
    unsafe {
        // Live lanes hold `score - max <= 0` (`max` is the running max, at least every score of
        // the tile) or NaN, the overflow-free exp's domain; other lanes are masked out.
        let max_v = A::splat(max);
        let mut sum = A::zero();
        for base in (0..tile_len).step_by(A::LANES) {
            let x = A::sub(A::load(scores.add(base)), max_v);
            let p = A::keep_first(exp_lanes::<A, false>(x), tile_len - base);
            A::store(scores.add(base), p);
            sum = A::add(sum, p);
        }
        A::hsum(sum)
    }
}

/// `acc[..head_dim] *= factor`.
///
/// # Safety
/// The caller runs with `A`'s target features; `acc` covers `head_dim` (a multiple of 16).
#[inline(always)]
unsafe fn scale_row<A: F32Lanes>(acc: *mut f32, head_dim: usize, factor: f32) {
    // SAFETY: the caller's contract; 16 is a multiple of `A::LANES`.
    unsafe {
        let f = A::splat(factor);
        for i in (0..head_dim).step_by(A::LANES) {
            A::store(acc.add(i), A::mul(A::load(acc.add(i)), f));
        }
    }
}

/// `acc[s] += sum_j p[s][j] * v_j` over the tile for `S` heads of one query row that read the
/// same V tile: each V vector is loaded (and, for f16, widened) once and feeds all `S`. Each
/// `acc[s]` holds `head_dim` (a multiple of 16) values, `p[s]` `tile_len` weights, `v_tile`
/// `tile_len` rows of `head_dim` values `kv_stride` apart. Chunks of every `acc[s]` stay in
/// registers across the whole tile: 32 values (64 with 16 lanes, where there are 32 registers),
/// then 16 at a time. Each head gets the FMAs it would get alone, in the same order.
///
/// # Safety
/// The caller runs with `A`'s target features and the pointers cover what is named above.
#[inline(always)]
unsafe fn accumulate_pv<A: F32Lanes, KV: KvElem, const S: usize>(
    acc: [*mut f32; S],
    p: [*const f32; S],
    v_tile: *const KV,
    kv_stride: usize,
    head_dim: usize,
    tile_len: usize,
) {
    let wide = if A::LANES == 16 { 64 } else { 32 };
    let mut d = 0;
    // SAFETY: `head_dim` is a multiple of 16: wide chunks, then 16-wide ones, cover it exactly,
    // each inside every `acc[s]` and every V row. The chunk lengths are `N * A::LANES`
    // (`A::LANES` is a constant: one arm of each `match` remains).
    unsafe {
        while d + wide <= head_dim {
            let (at, v) = (acc.map(|a| a.wrapping_add(d)), v_tile.add(d));
            match A::LANES {
                4 => accumulate_pv_chunk::<A, KV, 8, S>(at, p, v, kv_stride, tile_len),
                _ => accumulate_pv_chunk::<A, KV, 4, S>(at, p, v, kv_stride, tile_len),
            }
            d += wide;
        }
        while d < head_dim {
            let (at, v) = (acc.map(|a| a.wrapping_add(d)), v_tile.add(d));
            match A::LANES {
                4 => accumulate_pv_chunk::<A, KV, 4, S>(at, p, v, kv_stride, tile_len),
                8 => accumulate_pv_chunk::<A, KV, 2, S>(at, p, v, kv_stride, tile_len),
                _ => accumulate_pv_chunk::<A, KV, 1, S>(at, p, v, kv_stride, tile_len),
            }
            d += 16;
        }
    }
}

/// `acc[s] += sum_j p[s][j] * v_j` over the tile, `N` vectors of each of the `S` accumulators
/// held in registers, each V vector loaded once for all `S`.
///
/// # Safety
/// The caller runs with `A`'s target features; every `acc[s]` and each of the `tile_len` V rows
/// cover `N * A::LANES` values, every `p[s]` `tile_len`.
#[inline(always)]
unsafe fn accumulate_pv_chunk<A: F32Lanes, KV: KvElem, const N: usize, const S: usize>(
    acc: [*mut f32; S],
    p: [*const f32; S],
    v_tile: *const KV,
    kv_stride: usize,
    tile_len: usize,
) {
    // SAFETY: the caller's contract above.
    unsafe {
        let mut a = [[A::zero(); N]; S];
        for (a_s, &acc_s) in a.iter_mut().zip(&acc) {
            for (r, ar) in a_s.iter_mut().enumerate() {
                *ar = A::load(acc_s.add(A::LANES * r));
            }
        }
        for j in 0..tile_len {
            let row = v_tile.add(j * kv_stride);
            let mut v = [A::zero(); N];
            for (r, vr) in v.iter_mut().enumerate() {
                *vr = load_kv::<A, KV>(row.add(A::LANES * r));
            }
            for (a_s, &p_s) in a.iter_mut().zip(&p) {
                let pj = A::splat(*p_s.add(j));
                for (ar, &vr) in a_s.iter_mut().zip(&v) {
                    *ar = A::fma(pj, vr, *ar);
                }
            }
        }
        for (a_s, &acc_s) in a.iter().zip(&acc) {
            for (r, ar) in a_s.iter().enumerate() {
                A::store(acc_s.add(A::LANES * r), *ar);
            }
        }
    }
}

/// [`accumulate_pv`] for the `n_heads` heads of one query row: `acc(i)` and `p(i)` give head
/// `i`'s accumulator and weights. Heads go four at a time with 16 lanes (32 registers: 16
/// accumulators, 4 V vectors), two otherwise, then one.
///
/// # Safety
/// As [`accumulate_pv`], for every head `i < n_heads`.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
unsafe fn accumulate_pv_heads<A: F32Lanes, KV: KvElem>(
    acc: impl Fn(usize) -> *mut f32,
    p: impl Fn(usize) -> *const f32,
    n_heads: usize,
    v_tile: *const KV,
    kv_stride: usize,
    head_dim: usize,
    tile_len: usize,
) {
    let mut i = 0;
    // SAFETY: the caller's contract, head by head.
    unsafe {
        if A::LANES == 16 {
            while i + 4 <= n_heads {
                let (a, w) = (
                    [acc(i), acc(i + 1), acc(i + 2), acc(i + 3)],
                    [p(i), p(i + 1), p(i + 2), p(i + 3)],
                );
                accumulate_pv::<A, KV, 4>(a, w, v_tile, kv_stride, head_dim, tile_len);
                i += 4;
            }
        }
        while i + 2 <= n_heads {
            let (a, w) = ([acc(i), acc(i + 1)], [p(i), p(i + 1)]);
            accumulate_pv::<A, KV, 2>(a, w, v_tile, kv_stride, head_dim, tile_len);
            i += 2;
        }
        if i < n_heads {
            accumulate_pv::<A, KV, 1>([acc(i)], [p(i)], v_tile, kv_stride, head_dim, tile_len);
        }
    }
}

/// Writes the `tile_len` rows of `head_dim` values at `src` (`kv_stride` apart) as f32 rows
/// packed `head_dim` apart at `dst`.
///
/// # Safety
/// The caller runs with `A`'s target features; `src` covers `tile_len` rows of `head_dim` (a
/// multiple of 16) values `kv_stride` apart, `dst` `tile_len * head_dim` values.
#[inline(always)]
unsafe fn widen_tile<A: F32Lanes, KV: KvElem>(
    src: *const KV,
    kv_stride: usize,
    head_dim: usize,
    tile_len: usize,
    dst: *mut f32,
) {
    // SAFETY: the caller's contract; 16 is a multiple of `A::LANES`.
    unsafe {
        for j in 0..tile_len {
            let (row, out) = (src.add(j * kv_stride), dst.add(j * head_dim));
            for i in (0..head_dim).step_by(A::LANES) {
                A::store(out.add(i), load_kv::<A, KV>(row.add(i)));
            }
        }
    }
}

/// Query rows that walk the cache together: each K/V tile is widened once and read from L1 by
/// all of them (and every head of their GQA group).
pub const QUERY_BLOCK: usize = 4;

/// Causal GQA attention over the query heads `heads` with the primitives of `T`; the contract of
/// [`scalar::flash_attention`](super::scalar::flash_attention).
///
/// Up to [`QUERY_BLOCK`] query rows and the query heads sharing a KV head walk the cache
/// together, tile by tile: the scores of every (row, head) for a tile first, then their `p*V`,
/// so each K/V tile comes from memory once and is reused from L1 by the whole block. An f16
/// tile shared by two (row, head) pairs or more is widened to f32 once (K for the scores, then
/// V into the same buffer): the widening takes the same vector ports as the FMAs it feeds. A row
/// stops at its own causal end (the block's last tile may be shorter for its earlier rows or
/// not theirs at all), and each (row, head) runs the operations it would run alone, in the same
/// order: the block changes the loop nest, not a result.
///
/// # Safety
/// The caller runs with the target features `T`'s primitives need enabled (it is the
/// `#[target_feature]` entry function of `T`'s ISA, into which this inlines).
///
/// # Panics
/// If the slices do not match `dims` (see [`AttentionDims::check`]).
#[inline(always)]
pub(crate) unsafe fn flash_attention_tiled<T: AttentionLanes, KV: KvElem>(
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
    // The layout `scratch_len` counts: a tile of scores per (row, head) of a block, a running
    // max and sum per (row, head), one widened tile. Slot `u * n_heads + i` is row `u` of the
    // block, head `i` of the group's share.
    let (scores, rest) = scratch.split_at_mut(QUERY_BLOCK * group * TILE);
    let (state, rest) = rest.split_at_mut(2 * QUERY_BLOCK * group);
    let widened = rest[..TILE * head_dim].as_mut_ptr();
    let scores = scores.as_mut_ptr();

    let mut t0 = 0;
    while t0 < dims.n_q {
        let rows = QUERY_BLOCK.min(dims.n_q - t0);
        // Row `u`'s causal end; the last row's is the block's.
        let kv_end = |u: usize| dims.pos0 + t0 + u + 1;
        let mut first = heads.start;
        while first < heads.end {
            let kv_head = first / group;
            let last = heads.end.min((kv_head + 1) * group);
            let n_heads = last - first;
            let slots = rows * n_heads;
            let widen = KV::FORMAT == KvFormat::F16 && slots >= 2;
            // Row `u`'s output for head `i` (`head_dim` values) starts here.
            let out_at = |u: usize, i: usize| ((t0 + u) * dims.n_head + first + i) * head_dim;
            for u in 0..rows {
                out[out_at(u, 0)..out_at(u, n_heads)].fill(0.0);
            }
            let state = &mut state[..2 * slots];
            for max_and_sum in state.chunks_exact_mut(2) {
                max_and_sum.copy_from_slice(&[f32::NEG_INFINITY, 0.0]);
            }
            // SAFETY: `check` guarantees `q` and `out` hold `head_dim` values at every row
            // below (heads `first..last` of rows `t0..t0+rows`), the cache holds `kv_end(u) <=
            // kv_len` positions of `kv_stride` values and `kv_head * head_dim + head_dim <=
            // kv_stride`, and `scratch` holds `slots <= QUERY_BLOCK * group` tiles of `TILE`
            // scores, `2 * slots` state values and a widened tile of `TILE * head_dim`; every
            // pointer below stays inside those ranges, which is what each helper above asks of
            // its pointers (`tile_len <= TILE`, `head_dim` a multiple of 16). Our caller
            // guarantees the target features `T` needs.
            unsafe {
                let block_end = kv_end(rows - 1);
                for tile_start in (0..block_end).step_by(TILE) {
                    let block_len = TILE.min(block_end - tile_start);
                    // Row `u`'s part of this tile: none past its causal end.
                    let tile_len = |u: usize| TILE.min(kv_end(u).saturating_sub(tile_start));
                    let at = tile_start * kv_stride + kv_head * head_dim;
                    let (k_tile, v_tile) = (k.as_ptr().add(at), v.as_ptr().add(at));
                    if widen {
                        widen_tile::<T::Acc, KV>(k_tile, kv_stride, head_dim, block_len, widened);
                    }
                    for u in 0..rows {
                        let tile_len = tile_len(u);
                        if tile_len == 0 {
                            continue;
                        }
                        for i in 0..n_heads {
                            let slot = u * n_heads + i;
                            let q_row = q.as_ptr().add(out_at(u, i));
                            let acc = out.as_mut_ptr().add(out_at(u, i));
                            let head_scores = scores.add(slot * TILE);
                            let tile_max = if widen {
                                tile_scores::<T, f32>(
                                    q_row,
                                    widened,
                                    head_dim,
                                    head_dim,
                                    tile_len,
                                    scale,
                                    head_scores,
                                )
                            } else {
                                tile_scores::<T, KV>(
                                    q_row,
                                    k_tile,
                                    kv_stride,
                                    head_dim,
                                    tile_len,
                                    scale,
                                    head_scores,
                                )
                            };
                            let [running_max, running_sum] = &mut state[2 * slot..2 * slot + 2]
                            else {
                                unreachable!("two values per slot")
                            };
                            if tile_max > *running_max {
                                let alpha = (*running_max - tile_max).exp();
                                scale_row::<T::Acc>(acc, head_dim, alpha);
                                *running_sum *= alpha;
                                *running_max = tile_max;
                            }
                            *running_sum += exp_tile::<T::Acc>(head_scores, tile_len, *running_max);
                        }
                    }
                    if widen {
                        widen_tile::<T::Acc, KV>(v_tile, kv_stride, head_dim, block_len, widened);
                    }
                    for u in 0..rows {
                        let tile_len = tile_len(u);
                        if tile_len == 0 {
                            continue;
                        }
                        let out_ptr = out.as_mut_ptr();
                        let acc = |i: usize| out_ptr.add(out_at(u, i));
                        let p = |i: usize| scores.add((u * n_heads + i) * TILE).cast_const();
                        if widen {
                            accumulate_pv_heads::<T::Acc, f32>(
                                acc, p, n_heads, widened, head_dim, head_dim, tile_len,
                            );
                        } else {
                            accumulate_pv_heads::<T::Acc, KV>(
                                acc, p, n_heads, v_tile, kv_stride, head_dim, tile_len,
                            );
                        }
                    }
                }
                for u in 0..rows {
                    for i in 0..n_heads {
                        let acc = out.as_mut_ptr().add(out_at(u, i));
                        let sum = state[2 * (u * n_heads + i) + 1];
                        scale_row::<T::Acc>(acc, head_dim, 1.0 / sum);
                    }
                }
            }
            first = last;
        }
        t0 += rows;
    }
}
