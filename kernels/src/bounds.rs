//! The floating-point error bounds the kernels are held to, in one place: the gate
//! (`harness verify`) and the kernels' own tests both take them from here, so a bound is
//! derived once, beside its derivation. Pure f64 arithmetic on shapes; no kernel code.

/// The unit roundoff of f32, `u = 2^-24`.
pub const U: f64 = 1.0 / (1u64 << 24) as f64;

/// `gamma(m) = m u / (1 - m u)`: the bound on the relative error of any f32 chain of `m`
/// rounded operations (Higham, *Accuracy and Stability of Numerical Algorithms*, 3.1).
///
/// # Panics
/// If `m u >= 1/2`, where the bound means nothing.
pub fn gamma(m: usize) -> f64 {
    let mu = m as f64 * U;
    assert!(mu < 0.5, "gamma bound meaningless for m = {m}");
    mu / (1.0 - mu)
}

/// The relative error bound of RMSNorm over a row of `n` values, as every ISA computes it
/// (`scale = 1 / sqrt(sum(x^2)/n + eps)`, then `x * scale * w`): the squares, their sum (any
/// order: each term passes at most `n - 1` additions), the mean and `+ eps` carry `gamma(n+2)`
/// (relative: all terms are non-negative); `sqrt` of that is off by `sqrt(1 - gamma)` at worst;
/// the sqrt, the reciprocal and the two products add one rounding each, the sqrt's in the
/// denominator: `(1+u)^3 / ((1-u) sqrt(1 - gamma(n+2))) - 1`. (An earlier reading,
/// `(1+u)^4 / sqrt(1 - gamma) - 1`, put the sqrt's rounding in the numerator, which is smaller by
/// about `u^2`: this is the one that holds.)
pub fn rmsnorm_rel_error(n: usize) -> f64 {
    (1.0 + U).powi(3) / ((1.0 - U) * (1.0 - gamma(n + 2)).sqrt()) - 1.0
}

/// The f32 matmul designs (weights dequantized with at most one rounding each, then any order
/// of `k` products and `k - 1` additions): `|y - y_exact| <= gamma(k + 2) * sum |w_i x_i|`.
pub fn matmul_f32_rel(k: usize) -> f64 {
    gamma(k + 2)
}

/// The integer matmul designs of the 32-value formats, against the reference on the quantized
/// activations: per block the integer dot is exact; `(d_w * d_x) * f32(sumi)` takes 2 roundings,
/// Q4_1's `+ m_w * s_x` 2 more, and the accumulation over `nb` blocks `nb`: so
/// `|y - y^| <= gamma(nb + 4) * sum_i (|d_w q_i| + |m_w|) |x^_i|`, with `sum |m_w| |x^|` replaced
/// by `|m_w| |s_x|`-free terms... bounded through `|m_w s_x| <= |m_w| sum |x^_i| (1 + u)` once
/// `s` is exact to its f16 rounding (the gate adds that rounding separately).
pub fn matmul_block32_rel(blocks: usize) -> f64 {
    gamma(blocks + 4)
}
