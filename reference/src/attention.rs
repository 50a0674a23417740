//! Causal grouped-query self-attention, the textbook way: for each query row and head, the whole
//! score row is materialised, softmaxed (max-subtracted) and used to average V, all in f64.
//!
//! Layouts match `kernels::attention` (the harness widens f16 caches to f64 before calling):
//! - `q`, `out`: `[n_q][n_head][head_dim]`; query row `t` is at absolute position `pos0 + t`.
//! - `k`, `v`: `[pos][n_head_kv][head_dim]`, at least `pos0 + n_q` positions.
//!
//! Query row `t` attends positions `0..=pos0 + t`; query head `h` reads KV head
//! `h / (n_head / n_head_kv)`; scores are scaled by `1/sqrt(head_dim)`.

use std::ops::Range;

/// Shapes of one attention call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AttnDims {
    /// Query rows.
    pub n_q: usize,
    /// Query heads; a multiple of `n_head_kv`.
    pub n_head: usize,
    /// KV heads.
    pub n_head_kv: usize,
    /// Values per head.
    pub head_dim: usize,
    /// Absolute position of query row 0.
    pub pos0: usize,
}

/// Writes `out[t][h]` for every query row `t` and every `h in heads`; other heads are untouched.
///
/// # Panics
/// If the slices do not fit `dims` or `n_head_kv` does not divide `n_head`.
pub fn attention(
    q: &[f64],
    k: &[f64],
    v: &[f64],
    out: &mut [f64],
    dims: AttnDims,
    heads: Range<usize>,
) {
    let AttnDims {
        n_q,
        n_head,
        n_head_kv,
        head_dim,
        pos0,
    } = dims;
    assert!(n_head_kv > 0 && n_head % n_head_kv == 0, "bad head counts");
    assert!(heads.end <= n_head, "heads out of range");
    assert_eq!(q.len(), n_q * n_head * head_dim, "q length");
    assert_eq!(out.len(), n_q * n_head * head_dim, "out length");
    assert_eq!(k.len(), v.len(), "k and v lengths differ");
    let kv_stride = n_head_kv * head_dim;
    assert!(k.len() >= (pos0 + n_q) * kv_stride, "cache too short");

    let group = n_head / n_head_kv;
    let scale = 1.0 / (head_dim as f64).sqrt();
    let mut scores = Vec::with_capacity(pos0 + n_q);
    for t in 0..n_q {
        let visible = pos0 + t + 1;
        for h in heads.clone() {
            let kv_head = h / group;
            let q_row = &q[(t * n_head + h) * head_dim..][..head_dim];
            let k_row = |j: usize| &k[j * kv_stride + kv_head * head_dim..][..head_dim];
            let v_row = |j: usize| &v[j * kv_stride + kv_head * head_dim..][..head_dim];

            scores.clear();
            for j in 0..visible {
                let dot: f64 = q_row.iter().zip(k_row(j)).map(|(a, b)| a * b).sum();
                scores.push(dot * scale);
            }
            let max = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let mut sum = 0.0;
            for s in scores.iter_mut() {
                *s = (*s - max).exp();
                sum += *s;
            }

            let o = &mut out[(t * n_head + h) * head_dim..][..head_dim];
            o.fill(0.0);
            for (j, &p) in scores.iter().enumerate() {
                for (o, x) in o.iter_mut().zip(v_row(j)) {
                    *o += p / sum * x;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// With one visible position the output is that position's V row, whatever the scores.
    #[test]
    fn first_position_copies_v() {
        let dims = AttnDims {
            n_q: 1,
            n_head: 2,
            n_head_kv: 1,
            head_dim: 2,
            pos0: 0,
        };
        let q = [1.0, 2.0, -3.0, 4.0];
        let k = [5.0, 6.0];
        let v = [7.0, -8.0];
        let mut out = [0.0; 4];
        attention(&q, &k, &v, &mut out, dims, 0..2);
        assert_eq!(out, [7.0, -8.0, 7.0, -8.0]);
    }

    /// Equal keys give a uniform average of the visible V rows, and query row `t` sees `t + 1`.
    #[test]
    fn equal_scores_average_the_visible_rows() {
        let dims = AttnDims {
            n_q: 2,
            n_head: 1,
            n_head_kv: 1,
            head_dim: 1,
            pos0: 1,
        };
        let q = [1.0, 1.0];
        let k = [0.5, 0.5, 0.5];
        let v = [3.0, 6.0, 9.0];
        let mut out = [0.0; 2];
        attention(&q, &k, &v, &mut out, dims, 0..1);
        assert!(
            (out[0] - 4.5).abs() < 1e-12 && (out[1] - 6.0).abs() < 1e-12,
            "{out:?}"
        );
    }
}
