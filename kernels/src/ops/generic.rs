//! RMSNorm, RoPE, SwiGLU, softmax, the residual add and `exp` written once over the lanes of
//! [`crate::simd::lanes`]; each SIMD ISA file instantiates them with [`simd_ops_entries`], which
//! adds the `#[target_feature]` entry functions these inline into. The full vectors of a row go
//! through the lanes; its last partial vector through masked loads and stores where the ISA has
//! them ([`F32Math::MASKED_TAIL`]), otherwise through the scalar code, as each ISA file did
//! before. Of adjacent-pair RoPE only the pair shuffles are the ISA file's own
//! ([`RopeAdjacentLanes`]).

use super::exp::exp_lanes;
use super::scalar;
use crate::simd::lanes::F32Math;

/// See [`super::rmsnorm`].
///
/// # Safety
/// The caller runs with `L`'s target features enabled.
#[inline(always)]
pub(crate) unsafe fn rmsnorm<L: F32Math>(x: &[f32], weight: &[f32], eps: f32, out: &mut [f32]) {
    let lanes = L::LANES;
    let n = x.len().min(weight.len()).min(out.len());
    if n == 0 {
        return;
    }
    let (xp, wp, op) = (x.as_ptr(), weight.as_ptr(), out.as_mut_ptr());
    // SAFETY: every access below is to indices below `n`, at most each slice's length (full
    // vectors while `i + lanes <= n`, the masked rest `n - i < lanes`); the caller enables
    // `L`'s target features.
    unsafe {
        // Four accumulators hide the FMA latency.
        let mut acc = [L::zero(); 4];
        let mut i = 0;
        while i + 4 * lanes <= n {
            for (k, a) in acc.iter_mut().enumerate() {
                let v = L::load(xp.add(i + k * lanes));
                *a = L::fma(v, v, *a);
            }
            i += 4 * lanes;
        }
        while i + lanes <= n {
            let v = L::load(xp.add(i));
            acc[0] = L::fma(v, v, acc[0]);
            i += lanes;
        }
        if L::MASKED_TAIL && i < n {
            let v = L::load_partial(xp.add(i), n - i, L::zero());
            acc[0] = L::fma(v, v, acc[0]);
            i = n;
        }
        let acc = L::add(L::add(acc[0], acc[1]), L::add(acc[2], acc[3]));
        let mut sum_sq = L::hsum(acc);
        for &v in &x[i..n] {
            sum_sq += v * v;
        }
        let scale = 1.0 / (sum_sq / n as f32 + eps).sqrt();
        let scale_v = L::splat(scale);
        let mut i = 0;
        while i + lanes <= n {
            let v = L::mul(L::load(xp.add(i)), scale_v);
            L::store(op.add(i), L::mul(v, L::load(wp.add(i))));
            i += lanes;
        }
        if L::MASKED_TAIL && i < n {
            let v = L::mul(L::load_partial(xp.add(i), n - i, L::zero()), scale_v);
            let w = L::load_partial(wp.add(i), n - i, L::zero());
            L::store_partial(op.add(i), n - i, L::mul(v, w));
            i = n;
        }
        for ((o, &v), &w) in out[i..n].iter_mut().zip(&x[i..n]).zip(&weight[i..n]) {
            *o = v * scale * w;
        }
    }
}

/// The part of adjacent-pair RoPE each ISA writes itself: its pair shuffles differ.
pub(crate) trait RopeAdjacentLanes: F32Math {
    /// Rotates pairs `0..done` of the `n` of one head by whole vectors (AVX-512: all `n`, the
    /// last vector masked) and returns `done`; the scalar code rotates the rest.
    ///
    /// # Safety
    /// The caller runs with the ISA's target features; `head` covers `2 * n` values, `cos` and
    /// `sin` `n` each.
    unsafe fn rotate_pairs(head: *mut f32, n: usize, cos: *const f32, sin: *const f32) -> usize;
}

/// See [`super::rope_adjacent`].
///
/// # Safety
/// The caller runs with `L`'s target features enabled.
#[inline(always)]
pub(crate) unsafe fn rope_adjacent<L: RopeAdjacentLanes>(
    x: &mut [f32],
    head_dim: usize,
    cos: &[f32],
    sin: &[f32],
) {
    let pairs = (head_dim / 2).min(cos.len()).min(sin.len());
    for head in x.chunks_exact_mut(head_dim) {
        // SAFETY: `2 * pairs <= head_dim` values of the head, `pairs` of `cos` and `sin`; the
        // caller enables `L`'s target features.
        let p = unsafe { L::rotate_pairs(head.as_mut_ptr(), pairs, cos.as_ptr(), sin.as_ptr()) };
        if 2 * p < head_dim {
            rope_adjacent_tail(&mut head[2 * p..], head_dim - 2 * p, &cos[p..], &sin[p..]);
        }
    }
}

/// The scalar tail of [`rope_adjacent`], kept out of line: inlined, it made the compiler carry
/// its pointers through the vector loop and reload `cos`/`sin` from the stack (AVX2 loop 13 ->
/// 27 instructions, ~20% slower).
#[cold]
#[inline(never)]
fn rope_adjacent_tail(x: &mut [f32], head_dim: usize, cos: &[f32], sin: &[f32]) {
    scalar::rope_adjacent(x, head_dim, cos, sin);
}

/// `(a c - b s, a s + b c)`, each with the ISA's fused forms.
///
/// # Safety
/// The caller runs with `L`'s target features enabled.
#[inline(always)]
unsafe fn rotate_neox<L: F32Math>(a: L::V, b: L::V, c: L::V, s: L::V) -> (L::V, L::V) {
    // SAFETY: register-only lane operations under the caller's target features.
    unsafe { (L::fms_products(a, c, b, s), L::fma(a, s, L::mul(b, c))) }
}

/// See [`super::rope_neox`].
///
/// # Safety
/// The caller runs with `L`'s target features enabled.
#[inline(always)]
pub(crate) unsafe fn rope_neox<L: F32Math>(
    x: &mut [f32],
    head_dim: usize,
    cos: &[f32],
    sin: &[f32],
) {
    let half = head_dim / 2;
    let pairs = half.min(cos.len()).min(sin.len());
    let (cp, sp) = (cos.as_ptr(), sin.as_ptr());
    for head in x.chunks_exact_mut(head_dim) {
        let (lo, hi) = head.split_at_mut(half);
        let (lp, hp) = (lo.as_mut_ptr(), hi.as_mut_ptr());
        let mut i = 0;
        // SAFETY: accesses stay below `pairs`, which bounds `cos`, `sin`, `lo` and `hi` (full
        // vectors, then at most one partial one); the caller enables `L`'s target features.
        unsafe {
            while i + L::LANES <= pairs {
                let (c, s) = (L::load(cp.add(i)), L::load(sp.add(i)));
                let (a, b) = rotate_neox::<L>(L::load(lp.add(i)), L::load(hp.add(i)), c, s);
                L::store(lp.add(i), a);
                L::store(hp.add(i), b);
                i += L::LANES;
            }
            if L::MASKED_TAIL && i < pairs {
                let len = pairs - i;
                let z = L::zero();
                let (c, s) = (
                    L::load_partial(cp.add(i), len, z),
                    L::load_partial(sp.add(i), len, z),
                );
                let (a, b) = (
                    L::load_partial(lp.add(i), len, z),
                    L::load_partial(hp.add(i), len, z),
                );
                let (a, b) = rotate_neox::<L>(a, b, c, s);
                L::store_partial(lp.add(i), len, a);
                L::store_partial(hp.add(i), len, b);
                i = pairs;
            }
        }
        for ((a, b), (&c, &s)) in lo[i..pairs]
            .iter_mut()
            .zip(hi[i..pairs].iter_mut())
            .zip(cos[i..pairs].iter().zip(&sin[i..pairs]))
        {
            let (va, vb) = (*a, *b);
            *a = va * c - vb * s;
            *b = va * s + vb * c;
        }
    }
}

/// See [`super::swiglu`].
///
/// # Safety
/// The caller runs with `L`'s target features enabled.
#[inline(always)]
pub(crate) unsafe fn swiglu<L: F32Math>(gate: &[f32], up: &[f32], out: &mut [f32]) {
    let n = gate.len().min(up.len()).min(out.len());
    let (gp, upp, op) = (gate.as_ptr(), up.as_ptr(), out.as_mut_ptr());
    // SAFETY: accesses stay below `n`, at most each slice's length (full vectors, then at most
    // one partial one of `n - i` values); the caller enables `L`'s target features.
    unsafe {
        let mut i = 0;
        while i + L::LANES <= n {
            let y = silu_times_up::<L>(L::load(gp.add(i)), L::load(upp.add(i)));
            L::store(op.add(i), y);
            i += L::LANES;
        }
        if L::MASKED_TAIL && i < n {
            let len = n - i;
            let g = L::load_partial(gp.add(i), len, L::zero());
            let u = L::load_partial(upp.add(i), len, L::zero());
            L::store_partial(op.add(i), len, silu_times_up::<L>(g, u));
            i = n;
        }
        scalar::swiglu(&gate[i..n], &up[i..n], &mut out[i..n]);
    }
}

/// `silu(g) * u`.
///
/// # Safety
/// The caller runs with `L`'s target features enabled.
#[inline(always)]
unsafe fn silu_times_up<L: F32Math>(g: L::V, u: L::V) -> L::V {
    // SAFETY: register-only lane operations under the caller's target features.
    unsafe {
        let silu = L::div(g, L::add(L::splat(1.0), exp_lanes::<L, true>(L::neg(g))));
        L::mul(silu, u)
    }
}

/// See [`super::softmax`].
///
/// # Safety
/// The caller runs with `L`'s target features enabled.
#[inline(always)]
pub(crate) unsafe fn softmax<L: F32Math>(x: &mut [f32]) {
    let lanes = L::LANES;
    let n = x.len();
    if n == 0 {
        return;
    }
    let xp = x.as_mut_ptr();
    // SAFETY: accesses stay below `n = x.len()` (full vectors, then at most one partial one of
    // `n - i` values); the caller enables `L`'s target features.
    let (max, tail) = unsafe {
        let neg_inf = L::splat(f32::NEG_INFINITY);
        let mut max_v = neg_inf;
        let mut i = 0;
        while i + lanes <= n {
            max_v = L::max(max_v, L::load(xp.add(i)));
            i += lanes;
        }
        if L::MASKED_TAIL && i < n {
            // The lanes past the row read as -inf, which leaves the maximum unchanged.
            max_v = L::max(max_v, L::load_partial(xp.add(i), n - i, neg_inf));
            i = n;
        }
        (L::hmax(max_v), i)
    };
    let max = x[tail..].iter().copied().fold(max, f32::max);

    // SAFETY: as above.
    let (sum, tail) = unsafe {
        let max_b = L::splat(max);
        let mut sum_v = L::zero();
        let mut i = 0;
        while i + lanes <= n {
            let e = exp_lanes::<L, true>(L::sub(L::load(xp.add(i)), max_b));
            L::store(xp.add(i), e);
            sum_v = L::add(sum_v, e);
            i += lanes;
        }
        if L::MASKED_TAIL && i < n {
            let len = n - i;
            let v = L::load_partial(xp.add(i), len, L::zero());
            let e = exp_lanes::<L, true>(L::sub(v, max_b));
            L::store_partial(xp.add(i), len, e);
            // Only the row's lanes enter the sum (the others add +0).
            sum_v = L::add(sum_v, L::keep_first(e, len));
            i = n;
        }
        (L::hsum(sum_v), i)
    };
    let mut sum = sum;
    for v in x[tail..].iter_mut() {
        *v = scalar::exp_f32(*v - max);
        sum += *v;
    }

    let inv_sum = 1.0 / sum;
    let xp = x.as_mut_ptr();
    // SAFETY: as above.
    let tail = unsafe {
        let inv_b = L::splat(inv_sum);
        let mut i = 0;
        while i + lanes <= n {
            L::store(xp.add(i), L::mul(L::load(xp.add(i)), inv_b));
            i += lanes;
        }
        if L::MASKED_TAIL && i < n {
            let v = L::load_partial(xp.add(i), n - i, L::zero());
            L::store_partial(xp.add(i), n - i, L::mul(v, inv_b));
            i = n;
        }
        i
    };
    for v in x[tail..].iter_mut() {
        *v *= inv_sum;
    }
}

/// See [`super::residual_add`].
///
/// # Safety
/// The caller runs with `L`'s target features enabled.
#[inline(always)]
pub(crate) unsafe fn residual_add<L: F32Math>(y: &mut [f32], x: &[f32]) {
    let n = y.len().min(x.len());
    let (yp, xp) = (y.as_mut_ptr(), x.as_ptr());
    let mut i = 0;
    // SAFETY: accesses stay below `n`, at most both lengths; the caller enables `L`'s target
    // features.
    unsafe {
        while i + L::LANES <= n {
            L::store(yp.add(i), L::add(L::load(yp.add(i)), L::load(xp.add(i))));
            i += L::LANES;
        }
        if L::MASKED_TAIL && i < n {
            let len = n - i;
            let sum = L::add(
                L::load_partial(yp.add(i), len, L::zero()),
                L::load_partial(xp.add(i), len, L::zero()),
            );
            L::store_partial(yp.add(i), len, sum);
            i = n;
        }
    }
    scalar::residual_add(&mut y[i..n], &x[i..n]);
}

/// See [`super::exp_in_place`].
///
/// # Safety
/// The caller runs with `L`'s target features enabled.
#[inline(always)]
pub(crate) unsafe fn exp_in_place<L: F32Math>(x: &mut [f32]) {
    let n = x.len();
    let xp = x.as_mut_ptr();
    let mut i = 0;
    // SAFETY: accesses stay below `n = x.len()`; the caller enables `L`'s target features.
    unsafe {
        while i + L::LANES <= n {
            L::store(xp.add(i), exp_lanes::<L, true>(L::load(xp.add(i))));
            i += L::LANES;
        }
        if L::MASKED_TAIL && i < n {
            let v = L::load_partial(xp.add(i), n - i, L::zero());
            L::store_partial(xp.add(i), n - i, exp_lanes::<L, true>(v));
            i = n;
        }
    }
    scalar::exp_in_place(&mut x[i..]);
}

/// The entry functions of one SIMD ISA for the ops written here:
/// each is `#[target_feature]` and runs the generic op on `$lanes`, into which it inlines. Also
/// the ISA's unit test of the overflow-free `exp` against the full one. `$lanes` (in scope where
/// this is invoked) names both the lanes type and the [`crate::Isa`] variant.
macro_rules! simd_ops_entries {
    ($features:literal, $lanes:ident, $cpu:literal) => {
        /// # Safety
        #[doc = concat!("The CPU must support ", $cpu, ".")]
        #[target_feature(enable = $features)]
        pub unsafe fn rmsnorm(x: &[f32], weight: &[f32], eps: f32, out: &mut [f32]) {
            // SAFETY: this function enables the target features of the lanes.
            unsafe { super::generic::rmsnorm::<$lanes>(x, weight, eps, out) }
        }

        /// # Safety
        #[doc = concat!("The CPU must support ", $cpu, ".")]
        #[target_feature(enable = $features)]
        pub unsafe fn rope_adjacent(x: &mut [f32], head_dim: usize, cos: &[f32], sin: &[f32]) {
            // SAFETY: as above.
            unsafe { super::generic::rope_adjacent::<$lanes>(x, head_dim, cos, sin) }
        }

        /// # Safety
        #[doc = concat!("The CPU must support ", $cpu, ".")]
        #[target_feature(enable = $features)]
        pub unsafe fn rope_neox(x: &mut [f32], head_dim: usize, cos: &[f32], sin: &[f32]) {
            // SAFETY: as above.
            unsafe { super::generic::rope_neox::<$lanes>(x, head_dim, cos, sin) }
        }

        /// # Safety
        #[doc = concat!("The CPU must support ", $cpu, ".")]
        #[target_feature(enable = $features)]
        pub unsafe fn swiglu(gate: &[f32], up: &[f32], out: &mut [f32]) {
            // SAFETY: as above.
            unsafe { super::generic::swiglu::<$lanes>(gate, up, out) }
        }

        /// # Safety
        #[doc = concat!("The CPU must support ", $cpu, ".")]
        #[target_feature(enable = $features)]
        pub unsafe fn softmax(x: &mut [f32]) {
            // SAFETY: as above.
            unsafe { super::generic::softmax::<$lanes>(x) }
        }

        /// # Safety
        #[doc = concat!("The CPU must support ", $cpu, ".")]
        #[target_feature(enable = $features)]
        pub unsafe fn residual_add(y: &mut [f32], x: &[f32]) {
            // SAFETY: as above.
            unsafe { super::generic::residual_add::<$lanes>(y, x) }
        }

        /// # Safety
        #[doc = concat!("The CPU must support ", $cpu, ".")]
        #[target_feature(enable = $features)]
        pub unsafe fn exp_in_place(x: &mut [f32]) {
            // SAFETY: as above.
            unsafe { super::generic::exp_in_place::<$lanes>(x) }
        }

        #[cfg(test)]
        mod exp_tests {
            use crate::ops::exp::exp_lanes;
            use crate::ops::exp_nonpositive_check::{args, check};
            use crate::simd::lanes::F32Lanes;

            type L = super::$lanes;
            const ISA: crate::Isa = crate::Isa::$lanes;

            #[target_feature(enable = $features)]
            fn eval(x: &[f32], full: &mut [f32], nonpositive: &mut [f32]) {
                let lanes = <L as F32Lanes>::LANES;
                let chunks = x.chunks_exact(lanes).zip(full.chunks_exact_mut(lanes));
                for ((x, f), n) in chunks.zip(nonpositive.chunks_exact_mut(lanes)) {
                    // SAFETY: this function enables the lanes' target features; each chunk
                    // holds `LANES` values.
                    unsafe {
                        let v = L::load(x.as_ptr());
                        L::store(f.as_mut_ptr(), exp_lanes::<L, true>(v));
                        L::store(n.as_mut_ptr(), exp_lanes::<L, false>(v));
                    }
                }
            }

            #[test]
            fn overflow_free_exp_matches_exp_on_nonpositive_args() {
                if !crate::isa::runs_here(ISA, "overflow_free_exp_matches_exp_on_nonpositive_args")
                {
                    return;
                }
                let x = args();
                let (mut full, mut nonpositive) = (vec![0.0; x.len()], vec![0.0; x.len()]);
                // SAFETY: availability checked above.
                unsafe { eval(&x, &mut full, &mut nonpositive) };
                check(ISA.name(), &x, &full, &nonpositive);
            }
        }
    };
}
pub(crate) use simd_ops_entries;
