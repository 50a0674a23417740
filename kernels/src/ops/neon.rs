//! NEON variants, 4 lanes; tails shorter than a vector go through the scalar code.

use std::arch::aarch64::*;

use super::exp::{
    EXP_OVERFLOW_ABOVE, EXP_UNDERFLOW_BELOW, LN2_HI, LN2_LO, LOG2_E, P0, P1, P2, P3, P4, P5,
};
use super::scalar;

const LANES: usize = 4;

/// `exp` of 4 lanes: the steps of [`scalar::exp_f32`] with FMA.
///
/// Softmax, SwiGLU and, through [`exp_nonpositive_f32x4`], the attention variants ([`crate::attention`])
/// all use it, so every SIMD `exp` meets the one bound [`super::EXP_MAX_REL_ERROR`].
///
/// # Safety
/// The caller runs with NEON enabled.
#[inline(always)]
pub(crate) unsafe fn exp_f32x4(x: float32x4_t) -> float32x4_t {
    // SAFETY: the caller guarantees NEON.
    unsafe { exp_f32x4_body::<true>(x) }
}

/// [`exp_f32x4`] for lanes that never exceed [`EXP_OVERFLOW_ABOVE`], such as softmax's `x - max <= 0`:
/// on them it returns exactly what [`exp_f32x4`] does (NaN, and 0 below [`EXP_UNDERFLOW_BELOW`],
/// included) without the overflow clamp and test: three instructions per vector saved in
/// attention's inner loop.
/// A lane above the bound gives an unspecified value.
///
/// # Safety
/// The caller runs with NEON enabled.
#[inline(always)]
pub(crate) unsafe fn exp_nonpositive_f32x4(x: float32x4_t) -> float32x4_t {
    // SAFETY: the caller guarantees NEON.
    unsafe { exp_f32x4_body::<false>(x) }
}

/// The steps of [`exp_f32x4`]; `MAY_OVERFLOW = false` leaves out the handling of lanes above
/// [`EXP_OVERFLOW_ABOVE`].
///
/// # Safety
/// The caller runs with NEON enabled.
#[inline(always)]
unsafe fn exp_f32x4_body<const MAY_OVERFLOW: bool>(x: float32x4_t) -> float32x4_t {
    // SAFETY: register-only intrinsics; the caller guarantees NEON.
    unsafe {
        let lo = vdupq_n_f32(EXP_UNDERFLOW_BELOW);
        let hi = vdupq_n_f32(EXP_OVERFLOW_ABOVE);
        // FMAX/FMIN return NaN when either operand is: NaN lanes stay NaN.
        let xc = vmaxq_f32(lo, x);
        let xc = if MAY_OVERFLOW { vminq_f32(hi, xc) } else { xc };
        let n = vrndnq_f32(vmulq_f32(xc, vdupq_n_f32(LOG2_E)));
        let r = vfmsq_f32(xc, n, vdupq_n_f32(LN2_HI));
        let r = vfmsq_f32(r, n, vdupq_n_f32(LN2_LO));
        let mut q = vdupq_n_f32(P0);
        q = vfmaq_f32(vdupq_n_f32(P1), q, r);
        q = vfmaq_f32(vdupq_n_f32(P2), q, r);
        q = vfmaq_f32(vdupq_n_f32(P3), q, r);
        q = vfmaq_f32(vdupq_n_f32(P4), q, r);
        q = vfmaq_f32(vdupq_n_f32(P5), q, r);
        let exp_r = vaddq_f32(vfmaq_f32(r, vmulq_f32(r, r), q), vdupq_n_f32(1.0));
        // `n` is in [-126, 127] after the clamp (for `MAY_OVERFLOW = false`,
        // the caller keeps `x <= EXP_OVERFLOW_ABOVE`): a valid biased exponent.
        let two_to_n = vreinterpretq_f32_s32(vshlq_n_s32::<23>(vaddq_s32(
            vcvtq_s32_f32(n),
            vdupq_n_s32(127),
        )));
        let e = vmulq_f32(exp_r, two_to_n);
        let e = vbslq_f32(vcltq_f32(x, lo), vdupq_n_f32(0.0), e);
        if MAY_OVERFLOW {
            vbslq_f32(vcgtq_f32(x, hi), vdupq_n_f32(f32::INFINITY), e)
        } else {
            e
        }
    }
}

/// # Safety
/// The CPU must support NEON.
#[target_feature(enable = "neon")]
pub unsafe fn rmsnorm(x: &[f32], weight: &[f32], eps: f32, out: &mut [f32]) {
    let n = x.len().min(weight.len()).min(out.len());
    if n == 0 {
        return;
    }
    let (xp, wp, op) = (x.as_ptr(), weight.as_ptr(), out.as_mut_ptr());
    // Four accumulators hide the FMA latency.
    let mut acc = [vdupq_n_f32(0.0); 4];
    let mut i = 0;
    while i + 4 * LANES <= n {
        for (k, a) in acc.iter_mut().enumerate() {
            // SAFETY: `i + 4 * LANES <= n <= x.len()`.
            let v = unsafe { vld1q_f32(xp.add(i + k * LANES)) };
            *a = vfmaq_f32(*a, v, v);
        }
        i += 4 * LANES;
    }
    while i + LANES <= n {
        // SAFETY: `i + LANES <= n <= x.len()`.
        let v = unsafe { vld1q_f32(xp.add(i)) };
        acc[0] = vfmaq_f32(acc[0], v, v);
        i += LANES;
    }
    let acc = vaddq_f32(vaddq_f32(acc[0], acc[1]), vaddq_f32(acc[2], acc[3]));
    let mut sum_sq = vaddvq_f32(acc);
    for &v in &x[i..n] {
        sum_sq += v * v;
    }
    let scale = 1.0 / (sum_sq / n as f32 + eps).sqrt();
    let scale_v = vdupq_n_f32(scale);
    let mut i = 0;
    while i + LANES <= n {
        // SAFETY: `i + LANES <= n`, and `n` is at most each slice's length.
        unsafe {
            let v = vmulq_f32(vld1q_f32(xp.add(i)), scale_v);
            vst1q_f32(op.add(i), vmulq_f32(v, vld1q_f32(wp.add(i))));
        }
        i += LANES;
    }
    for ((o, &v), &w) in out[i..n].iter_mut().zip(&x[i..n]).zip(&weight[i..n]) {
        *o = v * scale * w;
    }
}

/// # Safety
/// The CPU must support NEON.
#[target_feature(enable = "neon")]
pub unsafe fn rope_adjacent(x: &mut [f32], head_dim: usize, cos: &[f32], sin: &[f32]) {
    let pairs = (head_dim / 2).min(cos.len()).min(sin.len());
    for head in x.chunks_exact_mut(head_dim) {
        let hp = head.as_mut_ptr();
        let mut p = 0;
        while p + LANES <= pairs {
            // SAFETY: pairs `p..p + 4` exist in `cos`, `sin` and (as floats `2p..2p + 8`) in
            // `head`, since `p + 4 <= pairs <= head_dim / 2`.
            unsafe {
                let c = vld1q_f32(cos.as_ptr().add(p));
                let s = vld1q_f32(sin.as_ptr().add(p));
                // De-interleave: `.0` holds the first of each pair, `.1` the second.
                let v = vld2q_f32(hp.add(2 * p));
                let a = vfmsq_f32(vmulq_f32(v.0, c), v.1, s);
                let b = vfmaq_f32(vmulq_f32(v.1, c), v.0, s);
                vst2q_f32(hp.add(2 * p), float32x4x2_t(a, b));
            }
            p += LANES;
        }
        if 2 * p < head_dim {
            scalar::rope_adjacent(&mut head[2 * p..], head_dim - 2 * p, &cos[p..], &sin[p..]);
        }
    }
}

/// # Safety
/// The CPU must support NEON.
#[target_feature(enable = "neon")]
pub unsafe fn rope_neox(x: &mut [f32], head_dim: usize, cos: &[f32], sin: &[f32]) {
    let half = head_dim / 2;
    let pairs = half.min(cos.len()).min(sin.len());
    for head in x.chunks_exact_mut(head_dim) {
        let (lo, hi) = head.split_at_mut(half);
        let (lp, hp) = (lo.as_mut_ptr(), hi.as_mut_ptr());
        let mut i = 0;
        while i + LANES <= pairs {
            // SAFETY: `i + LANES <= pairs`, which bounds `cos`, `sin`, `lo` and `hi`.
            unsafe {
                let c = vld1q_f32(cos.as_ptr().add(i));
                let s = vld1q_f32(sin.as_ptr().add(i));
                let a = vld1q_f32(lp.add(i));
                let b = vld1q_f32(hp.add(i));
                vst1q_f32(lp.add(i), vfmsq_f32(vmulq_f32(a, c), b, s));
                vst1q_f32(hp.add(i), vfmaq_f32(vmulq_f32(b, c), a, s));
            }
            i += LANES;
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

/// # Safety
/// The CPU must support NEON.
#[target_feature(enable = "neon")]
pub unsafe fn swiglu(gate: &[f32], up: &[f32], out: &mut [f32]) {
    let n = gate.len().min(up.len()).min(out.len());
    let (gp, upp, op) = (gate.as_ptr(), up.as_ptr(), out.as_mut_ptr());
    let one = vdupq_n_f32(1.0);
    let mut i = 0;
    while i + LANES <= n {
        // SAFETY: `i + LANES <= n`, at most each slice's length; `exp_f32x4` needs NEON,
        // enabled here.
        unsafe {
            let g = vld1q_f32(gp.add(i));
            let silu = vdivq_f32(g, vaddq_f32(one, exp_f32x4(vnegq_f32(g))));
            vst1q_f32(op.add(i), vmulq_f32(silu, vld1q_f32(upp.add(i))));
        }
        i += LANES;
    }
    scalar::swiglu(&gate[i..n], &up[i..n], &mut out[i..n]);
}

/// # Safety
/// The CPU must support NEON.
#[target_feature(enable = "neon")]
pub unsafe fn softmax(x: &mut [f32]) {
    let n = x.len();
    if n == 0 {
        return;
    }
    let xp = x.as_mut_ptr();
    let mut max_v = vdupq_n_f32(f32::NEG_INFINITY);
    let mut i = 0;
    while i + LANES <= n {
        // SAFETY: `i + LANES <= n`.
        max_v = vmaxq_f32(max_v, unsafe { vld1q_f32(xp.add(i)) });
        i += LANES;
    }
    let max = x[i..].iter().copied().fold(vmaxvq_f32(max_v), f32::max);

    let max_b = vdupq_n_f32(max);
    let xp = x.as_mut_ptr();
    let mut sum_v = vdupq_n_f32(0.0);
    let mut i = 0;
    while i + LANES <= n {
        // SAFETY: `i + LANES <= n`; `exp_f32x4` needs NEON, enabled here.
        unsafe {
            let e = exp_f32x4(vsubq_f32(vld1q_f32(xp.add(i)), max_b));
            vst1q_f32(xp.add(i), e);
            sum_v = vaddq_f32(sum_v, e);
        }
        i += LANES;
    }
    let mut sum = vaddvq_f32(sum_v);
    for v in x[i..].iter_mut() {
        *v = scalar::exp_f32(*v - max);
        sum += *v;
    }

    let inv_sum = 1.0 / sum;
    let inv_b = vdupq_n_f32(inv_sum);
    let xp = x.as_mut_ptr();
    let mut i = 0;
    while i + LANES <= n {
        // SAFETY: `i + LANES <= n`.
        unsafe { vst1q_f32(xp.add(i), vmulq_f32(vld1q_f32(xp.add(i)), inv_b)) };
        i += LANES;
    }
    for v in x[i..].iter_mut() {
        *v *= inv_sum;
    }
}

/// # Safety
/// The CPU must support NEON.
#[target_feature(enable = "neon")]
pub unsafe fn residual_add(y: &mut [f32], x: &[f32]) {
    let n = y.len().min(x.len());
    let (yp, xp) = (y.as_mut_ptr(), x.as_ptr());
    let mut i = 0;
    while i + LANES <= n {
        // SAFETY: `i + LANES <= n`, at most both lengths.
        unsafe {
            vst1q_f32(
                yp.add(i),
                vaddq_f32(vld1q_f32(yp.add(i)), vld1q_f32(xp.add(i))),
            )
        };
        i += LANES;
    }
    scalar::residual_add(&mut y[i..n], &x[i..n]);
}

/// # Safety
/// The CPU must support NEON.
#[target_feature(enable = "neon")]
pub unsafe fn exp_in_place(x: &mut [f32]) {
    let n = x.len();
    let xp = x.as_mut_ptr();
    let mut i = 0;
    while i + LANES <= n {
        // SAFETY: `i + LANES <= n`; `exp_f32x4` needs NEON, enabled here.
        unsafe { vst1q_f32(xp.add(i), exp_f32x4(vld1q_f32(xp.add(i)))) };
        i += LANES;
    }
    scalar::exp_in_place(&mut x[i..]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::exp_nonpositive_check::{args, check};

    #[target_feature(enable = "neon")]
    fn eval(x: &[f32], full: &mut [f32], nonpositive: &mut [f32]) {
        let chunks = x.chunks_exact(LANES).zip(full.chunks_exact_mut(LANES));
        for ((x, f), n) in chunks.zip(nonpositive.chunks_exact_mut(LANES)) {
            // SAFETY: this function enables NEON; each chunk holds `LANES` values.
            unsafe {
                let v = vld1q_f32(x.as_ptr());
                vst1q_f32(f.as_mut_ptr(), exp_f32x4(v));
                vst1q_f32(n.as_mut_ptr(), exp_nonpositive_f32x4(v));
            }
        }
    }

    #[test]
    fn overflow_free_exp_matches_exp_on_nonpositive_args() {
        if !crate::isa::runs_here(
            crate::Isa::Neon,
            "overflow_free_exp_matches_exp_on_nonpositive_args",
        ) {
            return;
        }
        let x = args();
        let (mut full, mut nonpositive) = (vec![0.0; x.len()], vec![0.0; x.len()]);
        // SAFETY: availability checked above.
        unsafe { eval(&x, &mut full, &mut nonpositive) };
        check("neon", &x, &full, &nonpositive);
    }
}
