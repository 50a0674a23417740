//! The per-layer ops of a Llama layer, naively, in f64: RMSNorm, RoPE in both pair layouts,
//! SiLU/SwiGLU, softmax and the residual add. Written from the definitions, with `std`'s f64
//! `exp`/`sin`/`cos`; nothing here is shared with (or imported from) `kernels`.

/// `out[i] = x[i] / sqrt(mean(x^2) + eps) * weight[i]`.
///
/// # Panics
/// If the slices differ in length.
pub fn rmsnorm(x: &[f64], weight: &[f64], eps: f64, out: &mut [f64]) {
    assert_eq!(weight.len(), x.len(), "weight length");
    assert_eq!(out.len(), x.len(), "output length");
    if x.is_empty() {
        return;
    }
    let mut sum_sq = 0.0;
    for &v in x {
        sum_sq += v * v;
    }
    let rms = (sum_sq / x.len() as f64 + eps).sqrt();
    for i in 0..x.len() {
        out[i] = x[i] / rms * weight[i];
    }
}

/// The RoPE angle of frequency `i` (`0 <= i < head_dim / 2`) at position `pos`:
/// `pos * base^(-2i / head_dim)`.
pub fn rope_angle(pos: usize, i: usize, head_dim: usize, base: f64) -> f64 {
    pos as f64 * base.powf(-((2 * i) as f64) / head_dim as f64)
}

/// Rotates, in place, the adjacent pairs `(x[2i], x[2i+1])` of every head of `x`
/// (`[n_heads][head_dim]`) by [`rope_angle`]`(pos, i, ..)`: the layout of Llama GGUF files.
///
/// # Panics
/// If `head_dim` is odd or zero, or `x` is not whole heads.
pub fn rope_adjacent(x: &mut [f64], head_dim: usize, pos: usize, base: f64) {
    check_heads(x.len(), head_dim);
    for head in x.chunks_exact_mut(head_dim) {
        for i in 0..head_dim / 2 {
            rotate(head, 2 * i, 2 * i + 1, rope_angle(pos, i, head_dim, base));
        }
    }
}

/// Rotates, in place, the pairs `(x[i], x[i + head_dim/2])` of every head (GPT-NeoX layout).
///
/// # Panics
/// As [`rope_adjacent`].
pub fn rope_neox(x: &mut [f64], head_dim: usize, pos: usize, base: f64) {
    check_heads(x.len(), head_dim);
    let half = head_dim / 2;
    for head in x.chunks_exact_mut(head_dim) {
        for i in 0..half {
            rotate(head, i, i + half, rope_angle(pos, i, head_dim, base));
        }
    }
}

/// `(v[a], v[b]) <- (v[a] cos t - v[b] sin t, v[a] sin t + v[b] cos t)`.
fn rotate(v: &mut [f64], a: usize, b: usize, angle: f64) {
    let (c, s) = (angle.cos(), angle.sin());
    let (va, vb) = (v[a], v[b]);
    v[a] = va * c - vb * s;
    v[b] = va * s + vb * c;
}

fn check_heads(len: usize, head_dim: usize) {
    assert!(
        head_dim > 0 && head_dim.is_multiple_of(2),
        "head_dim {head_dim} must be even and positive"
    );
    assert!(
        len.is_multiple_of(head_dim),
        "{len} values are not whole heads of {head_dim}"
    );
}

/// `silu(g) = g * sigmoid(g)`, written so neither branch overflows: for `g < 0`,
/// `sigmoid(g) = e^g / (1 + e^g)`.
pub fn silu(g: f64) -> f64 {
    if g >= 0.0 {
        g / (1.0 + (-g).exp())
    } else {
        let e = g.exp();
        g * e / (1.0 + e)
    }
}

/// `out[i] = silu(gate[i]) * up[i]`.
///
/// # Panics
/// If the slices differ in length.
pub fn swiglu(gate: &[f64], up: &[f64], out: &mut [f64]) {
    assert_eq!(up.len(), gate.len(), "up length");
    assert_eq!(out.len(), gate.len(), "output length");
    for i in 0..gate.len() {
        out[i] = silu(gate[i]) * up[i];
    }
}

/// In place: `x[i] = exp(x[i] - max) / sum_j exp(x[j] - max)`.
pub fn softmax(x: &mut [f64]) {
    if x.is_empty() {
        return;
    }
    let max = x.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let mut sum = 0.0;
    for v in x.iter_mut() {
        *v = (*v - max).exp();
        sum += *v;
    }
    for v in x.iter_mut() {
        *v /= sum;
    }
}

/// `y[i] += x[i]`.
///
/// # Panics
/// If the slices differ in length.
pub fn residual_add(y: &mut [f64], x: &[f64]) {
    assert_eq!(x.len(), y.len(), "residual length");
    for i in 0..y.len() {
        y[i] += x[i];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rmsnorm_of_constant_row_is_weight() {
        let x = [3.0; 4];
        let w = [1.0, 2.0, -1.0, 0.5];
        let mut out = [0.0; 4];
        rmsnorm(&x, &w, 0.0, &mut out);
        assert_eq!(out, w);
    }

    #[test]
    fn rope_quarter_turn_and_layouts() {
        // head_dim 2: one frequency, base^0 = 1, so the angle is `pos` radians.
        let pos = 1;
        let mut adj = [1.0, 0.0];
        rope_adjacent(&mut adj, 2, pos, 10000.0);
        assert!((adj[0] - 1f64.cos()).abs() < 1e-15 && (adj[1] - 1f64.sin()).abs() < 1e-15);
        // head_dim 4: adjacent rotates (0,1) and (2,3); NeoX rotates (0,2) and (1,3).
        let (mut a, mut b) = ([1.0, 2.0, 3.0, 4.0], [1.0, 3.0, 2.0, 4.0]);
        rope_adjacent(&mut a, 4, 7, 100.0);
        rope_neox(&mut b, 4, 7, 100.0);
        assert_eq!([a[0], a[1], a[2], a[3]], [b[0], b[2], b[1], b[3]]);
        // Position 0 is the identity.
        let mut z = [1.0, 2.0, 3.0, 4.0];
        rope_adjacent(&mut z, 4, 0, 10000.0);
        assert_eq!(z, [1.0, 2.0, 3.0, 4.0]);
    }

    #[test]
    fn silu_is_finite_far_out() {
        assert_eq!(silu(0.0), 0.0);
        assert!((silu(1000.0) - 1000.0).abs() < 1e-9);
        let s = silu(-1000.0);
        assert!(s <= 0.0 && s.is_finite());
        assert!((silu(-1.0) - (-1.0 / (1.0 + 1f64.exp()))).abs() < 1e-15);
    }

    #[test]
    fn softmax_sums_to_one_with_huge_logits() {
        let mut x = [1000.0, -1000.0, 999.0];
        softmax(&mut x);
        assert!((x.iter().sum::<f64>() - 1.0).abs() < 1e-15);
        assert!((x[0] / x[2] - 1f64.exp()).abs() < 1e-12);
        assert_eq!(x[1], 0.0);
    }

    #[test]
    fn residual_add_adds() {
        let mut y = [1.0, 2.0];
        residual_add(&mut y, &[0.5, -2.0]);
        assert_eq!(y, [1.5, 0.0]);
    }
}
