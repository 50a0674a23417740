//! The small per-layer ops of a Llama layer: RMSNorm, RoPE (adjacent-pair and NeoX half-split),
//! SwiGLU, softmax and the residual add, plus the vectorized `exp` softmax and SwiGLU share.
//!
//! Every ISA file ([`scalar`], `avx2`, `avx512`, `neon`) exports the same functions with the
//! signatures of [`scalar`]; this file holds the one `match isa` per op. The SIMD files share one
//! implementation of every op but RoPE (`generic`, over the lanes of each ISA). All ops work on slices,
//! one row (or one token's heads) per call, and never allocate. The RoPE angles are not computed
//! here but in [`rope_table`], once per position, in f64.
//!
//! Accuracy (relative to exact arithmetic on the f32 inputs, `u = 2^-24`; the tests in
//! `tests/ops.rs` check each bound):
//! - `exp`: relative error `<= EXP_MAX_REL_ERROR = 2.5u` (derivation in [`exp`](self::exp)).
//! - RMSNorm: relative error `<= (1+u)^3 / ((1-u) sqrt(1 - gamma(n+2))) - 1`, with
//!   `gamma(k) = k u / (1 - k u)`: the squares, their sum (any order: every term passes at most
//!   `n-1` additions), the mean and `+ eps` carry `gamma(n+2)`, then the sqrt, the reciprocal and
//!   the two products one rounding each.
//! - SwiGLU: relative error `<= (1+u)^2 / ((1 - EXP_MAX_REL_ERROR)(1 - u)) - 1` (about `4.5u`),
//!   plus an absolute `|gate * up| * 2^-126` where `exp(-gate)` overflows (`gate < -88.37`).
//! - softmax: per element, see the test; dominated by `EXP_MAX_REL_ERROR + (max - x_i) u`.
//! - RoPE: `|error| <= (|x_a| + |x_b|) (2^-25 (1 + gamma(2)) + gamma(2))` per output of the pair
//!   `(x_a, x_b)`: the table rounding plus two products and a sum, independent of the position.
//! - residual add: one rounding, identical in every ISA.

pub mod exp;
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
mod generic;
pub mod rope_table;
pub mod scalar;

#[cfg(target_arch = "x86_64")]
pub mod avx2;
#[cfg(target_arch = "x86_64")]
pub mod avx512;
#[cfg(target_arch = "aarch64")]
pub mod neon;

pub use exp::{EXP_MAX_REL_ERROR, EXP_OVERFLOW_ABOVE, EXP_UNDERFLOW_BELOW, F32_UNIT_ROUNDOFF};
pub use rope_table::{rope_cos_sin, RopeTable};

use crate::isa::dispatch;
use crate::Isa;

/// `out[i] = x[i] / sqrt(mean(x^2) + eps) * weight[i]` for one row. An empty row is a no-op.
///
/// # Panics
/// If `isa` cannot run here or the slices differ in length.
pub fn rmsnorm(isa: Isa, x: &[f32], weight: &[f32], eps: f32, out: &mut [f32]) {
    assert_eq!(weight.len(), x.len(), "weight length");
    assert_eq!(out.len(), x.len(), "output length");
    dispatch!(isa, rmsnorm(x, weight, eps, out))
}

/// Rotates, in place, each adjacent pair `(x[2i], x[2i+1])` of every head by the angle whose
/// `cos`/`sin` are `cos[i]`/`sin[i]` (from [`RopeTable::cos_sin`] or [`rope_cos_sin`]). This is
/// the form Llama GGUF files need (their Q/K weights are permuted for it). `x` is one token's
/// heads, `[n_heads][head_dim]`.
///
/// # Panics
/// If `isa` cannot run here, `head_dim` is odd or zero, `x.len()` is not a multiple of
/// `head_dim`, or `cos`/`sin` do not hold `head_dim / 2` values.
pub fn rope_adjacent(isa: Isa, x: &mut [f32], head_dim: usize, cos: &[f32], sin: &[f32]) {
    check_rope_shapes(x.len(), head_dim, cos.len(), sin.len());
    dispatch!(isa, rope_adjacent(x, head_dim, cos, sin))
}

/// As [`rope_adjacent`], but rotating the pairs `(x[i], x[i + head_dim/2])` (GPT-NeoX layout,
/// used by Hugging Face Llama checkpoints).
///
/// # Panics
/// As [`rope_adjacent`].
pub fn rope_neox(isa: Isa, x: &mut [f32], head_dim: usize, cos: &[f32], sin: &[f32]) {
    check_rope_shapes(x.len(), head_dim, cos.len(), sin.len());
    dispatch!(isa, rope_neox(x, head_dim, cos, sin))
}

/// Which elements of a head RoPE rotates together.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RopeStyle {
    /// `(x[2i], x[2i+1])`: [`rope_adjacent`].
    AdjacentPairs,
    /// `(x[i], x[i + head_dim/2])`: [`rope_neox`].
    NeoxHalves,
}

/// [`rope_adjacent`] or [`rope_neox`], as `style` says.
pub fn rope(isa: Isa, style: RopeStyle, x: &mut [f32], head_dim: usize, cos: &[f32], sin: &[f32]) {
    match style {
        RopeStyle::AdjacentPairs => rope_adjacent(isa, x, head_dim, cos, sin),
        RopeStyle::NeoxHalves => rope_neox(isa, x, head_dim, cos, sin),
    }
}

#[track_caller]
fn check_rope_shapes(x_len: usize, head_dim: usize, cos_len: usize, sin_len: usize) {
    assert!(
        head_dim > 0 && head_dim.is_multiple_of(2),
        "head_dim {head_dim} must be even and positive"
    );
    assert!(
        x_len.is_multiple_of(head_dim),
        "{x_len} values are not whole heads of {head_dim}"
    );
    assert_eq!(cos_len, head_dim / 2, "cos holds head_dim/2 values");
    assert_eq!(sin_len, head_dim / 2, "sin holds head_dim/2 values");
}

/// `out[i] = silu(gate[i]) * up[i]`, `silu(g) = g / (1 + exp(-g))`. Finite inputs give finite or
/// signed-zero outputs (no NaN) whatever their magnitude; `gate = -inf` gives NaN.
///
/// # Panics
/// If `isa` cannot run here or the slices differ in length.
pub fn swiglu(isa: Isa, gate: &[f32], up: &[f32], out: &mut [f32]) {
    assert_eq!(up.len(), gate.len(), "up length");
    assert_eq!(out.len(), gate.len(), "output length");
    dispatch!(isa, swiglu(gate, up, out))
}

/// In-place softmax of one row, `x[i] = exp(x[i] - max) / sum_j exp(x[j] - max)`. Entries more
/// than 87.3 below the maximum (including `-inf`) become exactly 0. The result is defined when the
/// row holds no NaN or `+inf` and at least one finite value; an empty row is a no-op.
///
/// # Panics
/// If `isa` cannot run here.
pub fn softmax(isa: Isa, x: &mut [f32]) {
    dispatch!(isa, softmax(x))
}

/// `y[i] += x[i]`.
///
/// # Panics
/// If `isa` cannot run here or the slices differ in length.
pub fn residual_add(isa: Isa, y: &mut [f32], x: &[f32]) {
    assert_eq!(x.len(), y.len(), "residual length");
    dispatch!(isa, residual_add(y, x))
}

/// `x[i] = exp(x[i])` with the `exp` softmax and SwiGLU use: relative error at most
/// [`EXP_MAX_REL_ERROR`] on `[EXP_UNDERFLOW_BELOW, EXP_OVERFLOW_ABOVE]`, `0` below, `+inf` above.
/// Exposed so the bound can be measured directly.
///
/// # Panics
/// If `isa` cannot run here.
pub fn exp_in_place(isa: Isa, x: &mut [f32]) {
    dispatch!(isa, exp_in_place(x))
}

/// Arguments and checks for the unit test, per SIMD ISA, of the overflow-free vector `exp`
/// (`exp_lanes::<_, false>`), which attention uses on `score - running_max`.
#[cfg(test)]
pub(crate) mod exp_nonpositive_check {
    use super::EXP_UNDERFLOW_BELOW;

    /// A dense sweep of `[-100, 0]`, 64 ulps either side of the underflow edge, and the
    /// specials attention can produce; the length is a multiple of every vector width.
    pub(crate) fn args() -> Vec<f32> {
        let mut x: Vec<f32> = (0..=400_000)
            .map(|i| -100.0 * i as f32 / 400_000.0)
            .collect();
        let edge = EXP_UNDERFLOW_BELOW.to_bits();
        x.extend((edge - 64..edge + 64).map(f32::from_bits));
        x.extend([-0.0, -1e-30, -1e-45, f32::MIN, f32::NEG_INFINITY, f32::NAN]);
        while !x.len().is_multiple_of(16) {
            x.push(-1.0);
        }
        x
    }

    /// Panics unless `nonpositive` is, bit for bit, what the full `exp` (checked against its
    /// bound in `tests/ops.rs`) gives, and `+0.0` below the underflow edge.
    pub(crate) fn check(isa: &str, x: &[f32], full: &[f32], nonpositive: &[f32]) {
        for ((&x, &f), &n) in x.iter().zip(full).zip(nonpositive) {
            let same = f.to_bits() == n.to_bits() || (f.is_nan() && n.is_nan());
            assert!(
                same,
                "{isa}: exp({x:e}) = {f:e}, overflow-free exp gives {n:e}"
            );
            if x < EXP_UNDERFLOW_BELOW {
                assert_eq!(n.to_bits(), 0, "{isa}: exp({x:e}) = {n:e}, not +0");
            }
        }
    }
}
