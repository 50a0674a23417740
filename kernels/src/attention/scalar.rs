//! Portable flash attention: the oracle every SIMD variant is compared with. Plain loops,
//! `f32::exp`, the same tiling and online-softmax order as the SIMD files.

use std::ops::Range;

use super::{AttentionDims, KvElem, TILE};

/// Causal GQA attention over the query heads `heads`. See the [module doc](super) for layouts.
///
/// # Panics
/// If the slices do not match `dims` (see [`AttentionDims::check`]).
pub fn flash_attention<KV: KvElem>(
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
    let scores = &mut scratch[..TILE];

    for t in 0..dims.n_q {
        let kv_end = dims.pos0 + t + 1;
        for h in heads.clone() {
            let kv_head = h / group;
            let row = (t * dims.n_head + h) * head_dim;
            let q_row = &q[row..row + head_dim];
            let acc = &mut out[row..row + head_dim];
            acc.fill(0.0);
            let mut running_max = f32::NEG_INFINITY;
            let mut running_sum = 0.0f32;

            for tile_start in (0..kv_end).step_by(TILE) {
                let tile_len = TILE.min(kv_end - tile_start);
                let mut tile_max = f32::NEG_INFINITY;
                for (j, score) in scores[..tile_len].iter_mut().enumerate() {
                    let at = (tile_start + j) * kv_stride + kv_head * head_dim;
                    let k_row = &k[at..at + head_dim];
                    let dot: f32 = q_row.iter().zip(k_row).map(|(a, b)| a * b.to_f32()).sum();
                    *score = dot * scale;
                    tile_max = tile_max.max(*score);
                }
                // Rescale what was accumulated under the old max, so every weight stays <= 1
                // and nothing overflows however large the logits.
                if tile_max > running_max {
                    let alpha = (running_max - tile_max).exp();
                    acc.iter_mut().for_each(|a| *a *= alpha);
                    running_sum *= alpha;
                    running_max = tile_max;
                }
                for (j, &score) in scores[..tile_len].iter().enumerate() {
                    let p = (score - running_max).exp();
                    running_sum += p;
                    let at = (tile_start + j) * kv_stride + kv_head * head_dim;
                    let v_row = &v[at..at + head_dim];
                    for (a, x) in acc.iter_mut().zip(v_row) {
                        *a += p * x.to_f32();
                    }
                }
            }
            let inv_sum = 1.0 / running_sum;
            acc.iter_mut().for_each(|a| *a *= inv_sum);
        }
    }
}
