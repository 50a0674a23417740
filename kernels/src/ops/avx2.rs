//! AVX2 + FMA variants, 8 lanes; tails shorter than a vector go through the scalar code.

use crate::simd::x86::hsum_ps;
use std::arch::x86_64::*;

use super::exp::{
    EXP_OVERFLOW_ABOVE, EXP_UNDERFLOW_BELOW, LN2_HI, LN2_LO, LOG2_E, P0, P1, P2, P3, P4, P5,
};
use super::scalar;

const LANES: usize = 8;

/// `exp` of 8 lanes: the steps of [`scalar::exp_f32`] with FMA.
///
/// Softmax, SwiGLU and, through [`exp_nonpositive_ps`], the attention variants ([`crate::attention`])
/// all use it, so every SIMD `exp` meets the one bound [`super::EXP_MAX_REL_ERROR`].
///
/// # Safety
/// The caller runs with AVX2 and FMA enabled.
#[inline(always)]
pub(crate) unsafe fn exp_ps(x: __m256) -> __m256 {
    // SAFETY: the caller guarantees AVX2 and FMA.
    unsafe { exp_ps_body::<true>(x) }
}

/// [`exp_ps`] for lanes that never exceed [`EXP_OVERFLOW_ABOVE`], such as softmax's `x - max <= 0`:
/// on them it returns exactly what [`exp_ps`] does (NaN, and 0 below [`EXP_UNDERFLOW_BELOW`],
/// included) without the overflow clamp and test: three instructions per vector saved in
/// attention's inner loop.
/// A lane above the bound gives an unspecified value.
///
/// # Safety
/// The caller runs with AVX2 and FMA enabled.
#[inline(always)]
pub(crate) unsafe fn exp_nonpositive_ps(x: __m256) -> __m256 {
    // SAFETY: the caller guarantees AVX2 and FMA.
    unsafe { exp_ps_body::<false>(x) }
}

/// The steps of [`exp_ps`]; `MAY_OVERFLOW = false` leaves out the handling of lanes above
/// [`EXP_OVERFLOW_ABOVE`].
///
/// # Safety
/// The caller runs with AVX2 and FMA enabled.
#[inline(always)]
unsafe fn exp_ps_body<const MAY_OVERFLOW: bool>(x: __m256) -> __m256 {
    // SAFETY: register-only intrinsics; the caller guarantees AVX2 and FMA.
    unsafe {
        let lo = _mm256_set1_ps(EXP_UNDERFLOW_BELOW);
        let hi = _mm256_set1_ps(EXP_OVERFLOW_ABOVE);
        // `max`/`min` return their second operand when either is NaN: with `x` second, NaN
        // propagates into `n` and `r` and from there to the result.
        let xc = _mm256_max_ps(lo, x);
        let xc = if MAY_OVERFLOW {
            _mm256_min_ps(hi, xc)
        } else {
            xc
        };
        let n = _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(
            _mm256_mul_ps(xc, _mm256_set1_ps(LOG2_E)),
        );
        let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(LN2_HI), xc);
        let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(LN2_LO), r);
        let mut q = _mm256_set1_ps(P0);
        q = _mm256_fmadd_ps(q, r, _mm256_set1_ps(P1));
        q = _mm256_fmadd_ps(q, r, _mm256_set1_ps(P2));
        q = _mm256_fmadd_ps(q, r, _mm256_set1_ps(P3));
        q = _mm256_fmadd_ps(q, r, _mm256_set1_ps(P4));
        q = _mm256_fmadd_ps(q, r, _mm256_set1_ps(P5));
        let exp_r = _mm256_add_ps(
            _mm256_fmadd_ps(_mm256_mul_ps(r, r), q, r),
            _mm256_set1_ps(1.0),
        );
        // `n` is in [-126, 127] after the clamp (for `MAY_OVERFLOW = false`,
        // the caller keeps `x <= EXP_OVERFLOW_ABOVE`): a valid biased exponent.
        let two_to_n = _mm256_castsi256_ps(_mm256_slli_epi32::<23>(_mm256_add_epi32(
            _mm256_cvtps_epi32(n),
            _mm256_set1_epi32(127),
        )));
        let e = _mm256_mul_ps(exp_r, two_to_n);
        let e = _mm256_andnot_ps(_mm256_cmp_ps::<_CMP_LT_OQ>(x, lo), e);
        if MAY_OVERFLOW {
            let over = _mm256_cmp_ps::<_CMP_GT_OQ>(x, hi);
            _mm256_blendv_ps(e, _mm256_set1_ps(f32::INFINITY), over)
        } else {
            e
        }
    }
}

/// Safety: the caller runs with AVX2 enabled.
#[inline(always)]
unsafe fn hmax_ps(v: __m256) -> f32 {
    // SAFETY: register-only intrinsics; the caller guarantees AVX2.
    unsafe {
        let m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
        let m = _mm_max_ps(m, _mm_movehl_ps(m, m));
        let m = _mm_max_ss(m, _mm_movehdup_ps(m));
        _mm_cvtss_f32(m)
    }
}

/// # Safety
/// The CPU must support AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn rmsnorm(x: &[f32], weight: &[f32], eps: f32, out: &mut [f32]) {
    let n = x.len().min(weight.len()).min(out.len());
    if n == 0 {
        return;
    }
    let (xp, wp, op) = (x.as_ptr(), weight.as_ptr(), out.as_mut_ptr());
    // Four accumulators hide the FMA latency.
    let mut acc = [_mm256_setzero_ps(); 4];
    let mut i = 0;
    while i + 4 * LANES <= n {
        for (k, a) in acc.iter_mut().enumerate() {
            // SAFETY: `i + 4 * LANES <= n <= x.len()`.
            let v = unsafe { _mm256_loadu_ps(xp.add(i + k * LANES)) };
            *a = _mm256_fmadd_ps(v, v, *a);
        }
        i += 4 * LANES;
    }
    while i + LANES <= n {
        // SAFETY: `i + LANES <= n <= x.len()`.
        let v = unsafe { _mm256_loadu_ps(xp.add(i)) };
        acc[0] = _mm256_fmadd_ps(v, v, acc[0]);
        i += LANES;
    }
    let acc = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
    // SAFETY: AVX2 is enabled in this function.
    let mut sum_sq = unsafe { hsum_ps(acc) };
    for &v in &x[i..n] {
        sum_sq += v * v;
    }
    let scale = 1.0 / (sum_sq / n as f32 + eps).sqrt();
    let scale_v = _mm256_set1_ps(scale);
    let mut i = 0;
    while i + LANES <= n {
        // SAFETY: `i + LANES <= n`, and `n` is at most each slice's length.
        unsafe {
            let v = _mm256_mul_ps(_mm256_loadu_ps(xp.add(i)), scale_v);
            _mm256_storeu_ps(op.add(i), _mm256_mul_ps(v, _mm256_loadu_ps(wp.add(i))));
        }
        i += LANES;
    }
    for ((o, &v), &w) in out[i..n].iter_mut().zip(&x[i..n]).zip(&weight[i..n]) {
        *o = v * scale * w;
    }
}

/// # Safety
/// The CPU must support AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn rope_adjacent(x: &mut [f32], head_dim: usize, cos: &[f32], sin: &[f32]) {
    let pairs = (head_dim / 2).min(cos.len()).min(sin.len());
    // Lane j of a vector of 4 pairs takes frequency j / 2.
    let spread = _mm256_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3);
    for head in x.chunks_exact_mut(head_dim) {
        let hp = head.as_mut_ptr();
        let mut p = 0;
        while p + LANES / 2 <= pairs {
            // SAFETY: pairs `p..p + 4` exist in `cos`, `sin` and (as floats `2p..2p + 8`) in
            // `head`, since `p + 4 <= pairs <= head_dim / 2`.
            unsafe {
                let c = _mm256_permutevar8x32_ps(
                    _mm256_castps128_ps256(_mm_loadu_ps(cos.as_ptr().add(p))),
                    spread,
                );
                let s = _mm256_permutevar8x32_ps(
                    _mm256_castps128_ps256(_mm_loadu_ps(sin.as_ptr().add(p))),
                    spread,
                );
                let v = _mm256_loadu_ps(hp.add(2 * p));
                let swapped = _mm256_permute_ps::<0b1011_0001>(v);
                // Even lanes: a*c - b*s; odd lanes: b*c + a*s.
                let rotated = _mm256_fmaddsub_ps(v, c, _mm256_mul_ps(swapped, s));
                _mm256_storeu_ps(hp.add(2 * p), rotated);
            }
            p += LANES / 2;
        }
        if 2 * p < head_dim {
            scalar::rope_adjacent(&mut head[2 * p..], head_dim - 2 * p, &cos[p..], &sin[p..]);
        }
    }
}

/// # Safety
/// The CPU must support AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
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
                let c = _mm256_loadu_ps(cos.as_ptr().add(i));
                let s = _mm256_loadu_ps(sin.as_ptr().add(i));
                let a = _mm256_loadu_ps(lp.add(i));
                let b = _mm256_loadu_ps(hp.add(i));
                _mm256_storeu_ps(lp.add(i), _mm256_fmsub_ps(a, c, _mm256_mul_ps(b, s)));
                _mm256_storeu_ps(hp.add(i), _mm256_fmadd_ps(a, s, _mm256_mul_ps(b, c)));
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
/// The CPU must support AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn swiglu(gate: &[f32], up: &[f32], out: &mut [f32]) {
    let n = gate.len().min(up.len()).min(out.len());
    let (gp, upp, op) = (gate.as_ptr(), up.as_ptr(), out.as_mut_ptr());
    let one = _mm256_set1_ps(1.0);
    let sign = _mm256_set1_ps(-0.0);
    let mut i = 0;
    while i + LANES <= n {
        // SAFETY: `i + LANES <= n`, at most each slice's length; `exp_ps` needs AVX2 + FMA,
        // enabled here.
        unsafe {
            let g = _mm256_loadu_ps(gp.add(i));
            let e = exp_ps(_mm256_xor_ps(g, sign));
            let silu = _mm256_div_ps(g, _mm256_add_ps(one, e));
            _mm256_storeu_ps(op.add(i), _mm256_mul_ps(silu, _mm256_loadu_ps(upp.add(i))));
        }
        i += LANES;
    }
    scalar::swiglu(&gate[i..n], &up[i..n], &mut out[i..n]);
}

/// # Safety
/// The CPU must support AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn softmax(x: &mut [f32]) {
    let n = x.len();
    if n == 0 {
        return;
    }
    let xp = x.as_mut_ptr();
    let mut max_v = _mm256_set1_ps(f32::NEG_INFINITY);
    let mut i = 0;
    while i + LANES <= n {
        // SAFETY: `i + LANES <= n`.
        max_v = _mm256_max_ps(max_v, unsafe { _mm256_loadu_ps(xp.add(i)) });
        i += LANES;
    }
    // SAFETY: AVX2 is enabled in this function.
    let max = x[i..]
        .iter()
        .copied()
        .fold(unsafe { hmax_ps(max_v) }, f32::max);

    let max_b = _mm256_set1_ps(max);
    let xp = x.as_mut_ptr();
    let mut sum_v = _mm256_setzero_ps();
    let mut i = 0;
    while i + LANES <= n {
        // SAFETY: `i + LANES <= n`; `exp_ps` needs AVX2 + FMA, enabled here.
        unsafe {
            let e = exp_ps(_mm256_sub_ps(_mm256_loadu_ps(xp.add(i)), max_b));
            _mm256_storeu_ps(xp.add(i), e);
            sum_v = _mm256_add_ps(sum_v, e);
        }
        i += LANES;
    }
    // SAFETY: AVX2 is enabled in this function.
    let mut sum = unsafe { hsum_ps(sum_v) };
    for v in x[i..].iter_mut() {
        *v = scalar::exp_f32(*v - max);
        sum += *v;
    }

    let inv_sum = 1.0 / sum;
    let inv_b = _mm256_set1_ps(inv_sum);
    let xp = x.as_mut_ptr();
    let mut i = 0;
    while i + LANES <= n {
        // SAFETY: `i + LANES <= n`.
        unsafe { _mm256_storeu_ps(xp.add(i), _mm256_mul_ps(_mm256_loadu_ps(xp.add(i)), inv_b)) };
        i += LANES;
    }
    for v in x[i..].iter_mut() {
        *v *= inv_sum;
    }
}

/// # Safety
/// The CPU must support AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn residual_add(y: &mut [f32], x: &[f32]) {
    let n = y.len().min(x.len());
    let (yp, xp) = (y.as_mut_ptr(), x.as_ptr());
    let mut i = 0;
    while i + LANES <= n {
        // SAFETY: `i + LANES <= n`, at most both lengths.
        unsafe {
            let sum = _mm256_add_ps(_mm256_loadu_ps(yp.add(i)), _mm256_loadu_ps(xp.add(i)));
            _mm256_storeu_ps(yp.add(i), sum);
        }
        i += LANES;
    }
    scalar::residual_add(&mut y[i..n], &x[i..n]);
}

/// # Safety
/// The CPU must support AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn exp_in_place(x: &mut [f32]) {
    let n = x.len();
    let xp = x.as_mut_ptr();
    let mut i = 0;
    while i + LANES <= n {
        // SAFETY: `i + LANES <= n`; `exp_ps` needs AVX2 + FMA, enabled here.
        unsafe { _mm256_storeu_ps(xp.add(i), exp_ps(_mm256_loadu_ps(xp.add(i)))) };
        i += LANES;
    }
    scalar::exp_in_place(&mut x[i..]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::exp_nonpositive_check::{args, check};

    #[target_feature(enable = "avx2,fma")]
    fn eval(x: &[f32], full: &mut [f32], nonpositive: &mut [f32]) {
        let chunks = x.chunks_exact(LANES).zip(full.chunks_exact_mut(LANES));
        for ((x, f), n) in chunks.zip(nonpositive.chunks_exact_mut(LANES)) {
            // SAFETY: this function enables AVX2 and FMA; each chunk holds `LANES` values.
            unsafe {
                let v = _mm256_loadu_ps(x.as_ptr());
                _mm256_storeu_ps(f.as_mut_ptr(), exp_ps(v));
                _mm256_storeu_ps(n.as_mut_ptr(), exp_nonpositive_ps(v));
            }
        }
    }

    #[test]
    fn overflow_free_exp_matches_exp_on_nonpositive_args() {
        if !crate::isa::runs_here(
            crate::Isa::Avx2,
            "overflow_free_exp_matches_exp_on_nonpositive_args",
        ) {
            return;
        }
        let x = args();
        let (mut full, mut nonpositive) = (vec![0.0; x.len()], vec![0.0; x.len()]);
        // SAFETY: availability checked above.
        unsafe { eval(&x, &mut full, &mut nonpositive) };
        check("avx2", &x, &full, &nonpositive);
    }
}
