//! The constants of the f32 `exp` every ISA variant of softmax and SwiGLU evaluates, and its
//! error bound. The scalar evaluation lives in [`super::scalar`], the SIMD one, written once over
//! the lanes of [`crate::simd::lanes`], in [`exp_lanes`]; all follow the same steps so their
//! results differ only by FMA contraction.
//!
//! # Algorithm
//! `exp(x) = 2^n * exp(r)` with `n = round_ties_even(x * log2(e))` and
//! `r = x - n*ln2` (Cody–Waite: `n * LN2_HI` is exact because `LN2_HI` has 9 significant bits and
//! `|n| <= 127` has 7), so `|r| <= ln(2)/2 + tiny`. `exp(r) ≈ 1 + r + r^2 * q(r)` with `q` the
//! degree-5 Cephes `expf` minimax polynomial, evaluated by Horner. `2^n` is built from its
//! exponent bits, which is exact because the input is clamped so `n` lies in `[-126, 127]`.
//!
//! # Domain
//! - `x < EXP_UNDERFLOW_BELOW` (`exp(x) < 2^-126`, the smallest normal f32): returns `+0.0` instead
//!   of a subnormal, an absolute error below `2^-126`. This also makes `exp(-inf) = 0`.
//! - `x > EXP_OVERFLOW_ABOVE` (≈ `127.5 * ln 2`): returns `+inf`. The true value there is at least
//!   `2.4e38`, within a factor 1.42 of `f32::MAX`; no caller (softmax arguments are `<= 0`, SiLU
//!   divides by it) can use such a value.
//! - NaN in, NaN out.
//!
//! # Error bound (relative to the exact `exp` of the f32 input, `u = 2^-24`)
//! - polynomial: `max |1 + r + r^2 q(r) - e^r| / e^r = 2.7e-9 = 0.05u` on `|r| <= ln2/2` (evaluated
//!   in f64 with the f32-rounded coefficients over 200 001 points);
//! - `ln 2` split: `|LN2_HI + LN2_LO - ln 2| = 1.6e-12`, times `|n| <= 127`: `2e-10`, `< 0.01u`;
//! - reduction `r`: two roundings of a value of magnitude `<= 0.35`: relative to `e^r`, `<= 0.7u`;
//! - Horner for `q` and `r^2 * q`: `r^2 q <= 0.07`, `<= 5` roundings of it: `<= 0.4u`;
//! - the final `(r^2 q + r) + 1`: one rounding of a value `<= 0.41` (`<= 2^-26` absolute) plus one
//!   of the result (half an ulp, `<= 2^-24` absolute for results in `[1, 1.42)`, `2^-25` in
//!   `[0.70, 1)`): `<= 1.25u` relative;
//! - scaling by `2^n`: exact (results are normal: `n = -126` only occurs with `r >= 0`).
//!
//! Sum: `<= 2.41u`; [`EXP_MAX_REL_ERROR`] states `2.5u = 1.49e-7`. Measured by an exhaustive sweep
//! over every f32 in the domain (`tests/ops.rs`, `exp_exhaustive`, ignored by default): see the
//! figures recorded there.

#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
use crate::simd::lanes::F32Math;

/// `u`: the unit roundoff of f32.
pub const F32_UNIT_ROUNDOFF: f64 = 1.0 / (1u64 << 24) as f64;

/// Bound on `|exp_hat(x) - exp(x)| / exp(x)` for `x` in
/// `[EXP_UNDERFLOW_BELOW, EXP_OVERFLOW_ABOVE]` (derivation in the module docs).
pub const EXP_MAX_REL_ERROR: f64 = 2.5 * F32_UNIT_ROUNDOFF;

/// Below this the result is flushed to `+0.0`: the smallest f32 `>= ln(2^-126)`.
pub const EXP_UNDERFLOW_BELOW: f32 = -87.336_54;

/// Above this the result is `+inf`. Chosen below `127.5 * ln 2` with margin for the rounding of
/// `x * log2(e)`, so `n <= 127` and `2^n` stays a normal f32 (`x * log2e = 127.4999`).
pub const EXP_OVERFLOW_ABOVE: f32 = 88.376_2;

pub(crate) const LOG2_E: f32 = std::f32::consts::LOG2_E;
/// `ln 2` split so that `n * LN2_HI` is exact: `LN2_HI = 355/512`.
pub(crate) const LN2_HI: f32 = 0.693_359_4;
pub(crate) const LN2_LO: f32 = -2.121_944_4e-4;

/// Cephes `expf` coefficients: `exp(r) ≈ 1 + r + r^2 (((((P0 r + P1) r + P2) r + P3) r + P4) r + P5)`.
pub(crate) const P0: f32 = 1.987_569_1e-4;
pub(crate) const P1: f32 = 1.398_199_9e-3;
pub(crate) const P2: f32 = 8.333_452e-3;
pub(crate) const P3: f32 = 4.166_579_6e-2;
pub(crate) const P4: f32 = 1.666_666_5e-1;
/// Cephes gives 5.0000001201e-1, which is 0.5 in f32.
pub(crate) const P5: f32 = 0.5;

/// `exp` of every lane: the steps of [`super::scalar::exp_f32`] with FMA. Softmax, SwiGLU and
/// attention all use it, so every SIMD `exp` meets the one bound [`EXP_MAX_REL_ERROR`].
///
/// `MAY_OVERFLOW = false` is for lanes that never exceed [`EXP_OVERFLOW_ABOVE`], such as
/// softmax's `x - max <= 0`: on them it returns exactly what `MAY_OVERFLOW = true` does (NaN, and
/// 0 below [`EXP_UNDERFLOW_BELOW`], included) without the overflow clamp and test, three
/// instructions per vector saved in attention's inner loop. A lane above the bound then gives an
/// unspecified value.
///
/// # Safety
/// The caller runs with `L`'s target features enabled.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
#[inline(always)]
pub(crate) unsafe fn exp_lanes<L: F32Math, const MAY_OVERFLOW: bool>(x: L::V) -> L::V {
    // SAFETY: register-only lane operations; the caller guarantees `L`'s target features.
    unsafe {
        let lo = L::splat(EXP_UNDERFLOW_BELOW);
        let hi = L::splat(EXP_OVERFLOW_ABOVE);
        // With `x` second, NaN propagates through every ISA's `max`/`min` into `n` and `r` and
        // from there to the result.
        let xc = L::max(lo, x);
        let xc = if MAY_OVERFLOW { L::min(hi, xc) } else { xc };
        let n = L::round_even(L::mul(xc, L::splat(LOG2_E)));
        let r = L::fnma(n, L::splat(LN2_HI), xc);
        let r = L::fnma(n, L::splat(LN2_LO), r);
        let mut q = L::splat(P0);
        q = L::fma(q, r, L::splat(P1));
        q = L::fma(q, r, L::splat(P2));
        q = L::fma(q, r, L::splat(P3));
        q = L::fma(q, r, L::splat(P4));
        q = L::fma(q, r, L::splat(P5));
        let exp_r = L::add(L::fma(L::mul(r, r), q, r), L::splat(1.0));
        // `n` is in [-126, 127] after the clamp (for `MAY_OVERFLOW = false`, the caller keeps
        // `x <= EXP_OVERFLOW_ABOVE`): a valid biased exponent.
        let e = L::zero_where_lt(x, lo, L::mul(exp_r, L::pow2(n)));
        if MAY_OVERFLOW {
            L::inf_where_gt(x, hi, e)
        } else {
            e
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ln2_split_is_exact_in_its_high_part() {
        assert_eq!(LN2_HI, 355.0 / 512.0);
        let split_error = (LN2_HI as f64 + LN2_LO as f64 - std::f64::consts::LN_2).abs();
        assert!(split_error < 2e-12, "ln2 split error {split_error:e}");
    }

    #[test]
    fn domain_edges_are_where_the_docs_say() {
        let ln_min_normal = -126.0 * std::f64::consts::LN_2;
        assert!(EXP_UNDERFLOW_BELOW as f64 >= ln_min_normal);
        let below = f32::from_bits(EXP_UNDERFLOW_BELOW.to_bits() + 1);
        assert!((below as f64) < ln_min_normal);
        assert!((EXP_OVERFLOW_ABOVE * LOG2_E).round_ties_even() <= 127.0);
    }
}
