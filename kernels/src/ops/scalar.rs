//! Portable variants: plain f32 loops, no intrinsics, no FMA. The oracle the SIMD variants are
//! compared with; shape checks are the dispatcher's (these only require equal lengths and whole
//! heads, and compute over the common prefix otherwise).

use super::exp::{
    EXP_OVERFLOW_ABOVE, EXP_UNDERFLOW_BELOW, LN2_HI, LN2_LO, LOG2_E, P0, P1, P2, P3, P4, P5,
};

/// `exp(x)`: see [`super::exp`] for the algorithm, domain and error bound. The SIMD files
/// evaluate the same steps, lane by lane.
#[inline(always)]
pub fn exp_f32(x: f32) -> f32 {
    if x < EXP_UNDERFLOW_BELOW {
        return 0.0;
    }
    if x > EXP_OVERFLOW_ABOVE {
        return f32::INFINITY;
    }
    if x.is_nan() {
        return x;
    }
    let n = (x * LOG2_E).round_ties_even();
    let r = x - n * LN2_HI;
    let r = r - n * LN2_LO;
    let q = ((((P0 * r + P1) * r + P2) * r + P3) * r + P4) * r + P5;
    let exp_r = (r * r * q + r) + 1.0;
    // `n` is in [-126, 127] by the two checks above, so `n + 127` is a valid biased exponent.
    let two_to_n = f32::from_bits(((n as i32 + 127) as u32) << 23);
    exp_r * two_to_n
}

/// `silu(g) = g / (1 + exp(-g))`. The denominator is `+inf` (giving `-0`) for `g < -88.37` and
/// exactly 1 for `g > 87.3`, so a finite `g` never gives NaN.
#[inline(always)]
pub fn silu_f32(g: f32) -> f32 {
    g / (1.0 + exp_f32(-g))
}

pub fn rmsnorm(x: &[f32], weight: &[f32], eps: f32, out: &mut [f32]) {
    if x.is_empty() {
        return;
    }
    let sum_sq: f32 = x.iter().map(|&v| v * v).sum();
    let scale = 1.0 / (sum_sq / x.len() as f32 + eps).sqrt();
    for ((o, &v), &w) in out.iter_mut().zip(x).zip(weight) {
        *o = v * scale * w;
    }
}

pub fn rope_adjacent(x: &mut [f32], head_dim: usize, cos: &[f32], sin: &[f32]) {
    for head in x.chunks_exact_mut(head_dim) {
        for (pair, (&c, &s)) in head.chunks_exact_mut(2).zip(cos.iter().zip(sin)) {
            let (a, b) = (pair[0], pair[1]);
            pair[0] = a * c - b * s;
            pair[1] = a * s + b * c;
        }
    }
}

pub fn rope_neox(x: &mut [f32], head_dim: usize, cos: &[f32], sin: &[f32]) {
    let half = head_dim / 2;
    for head in x.chunks_exact_mut(head_dim) {
        let (lo, hi) = head.split_at_mut(half);
        for ((a, b), (&c, &s)) in lo.iter_mut().zip(hi.iter_mut()).zip(cos.iter().zip(sin)) {
            let (va, vb) = (*a, *b);
            *a = va * c - vb * s;
            *b = va * s + vb * c;
        }
    }
}

pub fn swiglu(gate: &[f32], up: &[f32], out: &mut [f32]) {
    for ((o, &g), &u) in out.iter_mut().zip(gate).zip(up) {
        *o = silu_f32(g) * u;
    }
}

pub fn softmax(x: &mut [f32]) {
    if x.is_empty() {
        return;
    }
    let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0f32;
    for v in x.iter_mut() {
        *v = exp_f32(*v - max);
        sum += *v;
    }
    let inv_sum = 1.0 / sum;
    for v in x.iter_mut() {
        *v *= inv_sum;
    }
}

pub fn residual_add(y: &mut [f32], x: &[f32]) {
    for (a, &b) in y.iter_mut().zip(x) {
        *a += b;
    }
}

pub fn exp_in_place(x: &mut [f32]) {
    for v in x.iter_mut() {
        *v = exp_f32(*v);
    }
}
