//! Test-only copies of the scalar flash-attention kernel, each with one planted bug, for the
//! gate's self-test: `harness verify` must reject every one of them. Built only from the public
//! API of `kernels::attention`; the correct kernel is `kernels::attention::scalar::flash_attention`.
#![allow(dead_code)] // Used by the gate's self-test only.

use std::ops::Range;

use kernels::attention::{AttentionDims, KvElem, TILE};

/// The bug planted in [`flash_attention_planted`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AttentionBug {
    /// Query row `t` also attends position `pos0 + t + 1` (the next token) whenever the cache
    /// holds it. Invisible on the last row when the cache ends at `pos0 + n_q`, so a gate only
    /// catches it with `n_q > 1` or a cache longer than needed.
    CausalOffByOne,
    /// When the running max grows, the accumulator is rescaled but the running sum is not.
    /// Invisible unless a later tile raises the max, i.e. needs `kv_len > TILE`.
    NoRescaleOfRunningSum,
    /// Query head `h` reads KV head `h % n_head_kv` instead of `h / (n_head / n_head_kv)`.
    /// Invisible when `n_head_kv == 1` or `n_head_kv == n_head`.
    WrongKvHead,
    /// The tile max skips lane 7 of every 8 (a horizontal max that drops a lane). The online
    /// softmax stays right until a skipped score exceeds the max by more than exp's range (~88),
    /// so only a dominant key in that lane shows it.
    TileMaxDropsLane,
    /// The running max starts at 0 instead of -inf. Harmless while some score of the row is
    /// above about -87; when every score is far below zero every weight underflows to 0.
    RunningMaxStartsAtZero,
    /// The KV head found by shifting by floor(log2(group)) instead of dividing by the group:
    /// right for every power-of-two ratio, wrong for SmolLM2's 9 heads over 3.
    KvHeadByShift,
}

impl AttentionBug {
    pub const ALL: [AttentionBug; 6] = [
        AttentionBug::CausalOffByOne,
        AttentionBug::NoRescaleOfRunningSum,
        AttentionBug::WrongKvHead,
        AttentionBug::TileMaxDropsLane,
        AttentionBug::RunningMaxStartsAtZero,
        AttentionBug::KvHeadByShift,
    ];
}

/// `kernels::attention::scalar::flash_attention` with `bug` planted.
///
/// # Panics
/// If the slices do not match `dims` (see [`AttentionDims::check`]).
#[allow(clippy::too_many_arguments)]
pub fn flash_attention_planted<KV: KvElem>(
    q: &[f32],
    k: &[KV],
    v: &[KV],
    out: &mut [f32],
    scratch: &mut [f32],
    dims: AttentionDims,
    heads: Range<usize>,
    bug: AttentionBug,
) {
    dims.check(q.len(), k.len(), v.len(), out.len(), scratch.len(), &heads);
    let head_dim = dims.head_dim;
    let group = dims.group();
    let scale = dims.scale();
    let kv_stride = dims.kv_stride();
    let kv_len = k.len() / kv_stride;
    let scores = &mut scratch[..TILE];

    for t in 0..dims.n_q {
        let kv_end = match bug {
            AttentionBug::CausalOffByOne => (dims.pos0 + t + 2).min(kv_len),
            _ => dims.pos0 + t + 1,
        };
        for h in heads.clone() {
            let kv_head = match bug {
                AttentionBug::WrongKvHead => h % dims.n_head_kv,
                AttentionBug::KvHeadByShift => (h >> group.ilog2()).min(dims.n_head_kv - 1),
                _ => h / group,
            };
            let row = (t * dims.n_head + h) * head_dim;
            let q_row = &q[row..row + head_dim];
            let acc = &mut out[row..row + head_dim];
            acc.fill(0.0);
            let mut running_max = if bug == AttentionBug::RunningMaxStartsAtZero {
                0.0
            } else {
                f32::NEG_INFINITY
            };
            let mut running_sum = 0.0f32;

            for tile_start in (0..kv_end).step_by(TILE) {
                let tile_len = TILE.min(kv_end - tile_start);
                let mut tile_max = f32::NEG_INFINITY;
                for (j, score) in scores[..tile_len].iter_mut().enumerate() {
                    let at = (tile_start + j) * kv_stride + kv_head * head_dim;
                    let k_row = &k[at..at + head_dim];
                    let dot: f32 = q_row.iter().zip(k_row).map(|(a, b)| a * b.to_f32()).sum();
                    *score = dot * scale;
                    if bug != AttentionBug::TileMaxDropsLane || j % 8 != 7 {
                        tile_max = tile_max.max(*score);
                    }
                }
                if tile_max > running_max {
                    let alpha = (running_max - tile_max).exp();
                    acc.iter_mut().for_each(|a| *a *= alpha);
                    if bug != AttentionBug::NoRescaleOfRunningSum {
                        running_sum *= alpha;
                    }
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
