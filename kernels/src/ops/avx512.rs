//! AVX-512 variants, 16 lanes; tails use masked loads and stores (masked-off lanes are neither
//! read nor written, so they cannot fault).

use std::arch::x86_64::*;

use super::exp::{
    EXP_OVERFLOW_ABOVE, EXP_UNDERFLOW_BELOW, LN2_HI, LN2_LO, LOG2_E, P0, P1, P2, P3, P4, P5,
};

const LANES: usize = 16;

/// The first `len` lanes (`len <= 16`).
#[inline(always)]
fn tail_mask(len: usize) -> __mmask16 {
    debug_assert!(len <= LANES);
    ((1u32 << len) - 1) as __mmask16
}

/// `exp` of 16 lanes: the steps of [`super::scalar::exp_f32`] with FMA.
///
/// Softmax, SwiGLU and, through [`exp_nonpositive_ps`], the attention variants ([`crate::attention`])
/// all use it, so every SIMD `exp` meets the one bound [`super::EXP_MAX_REL_ERROR`].
///
/// # Safety
/// The caller runs with AVX-512 F enabled.
#[inline(always)]
pub(crate) unsafe fn exp_ps(x: __m512) -> __m512 {
    // SAFETY: the caller guarantees AVX-512 F.
    unsafe { exp_ps_body::<true>(x) }
}

/// [`exp_ps`] for lanes that never exceed [`EXP_OVERFLOW_ABOVE`], such as softmax's `x - max <= 0`:
/// on them it returns exactly what [`exp_ps`] does (NaN, and 0 below [`EXP_UNDERFLOW_BELOW`],
/// included) without the overflow clamp and test: three instructions per vector saved in
/// attention's inner loop.
/// A lane above the bound gives an unspecified value.
///
/// # Safety
/// The caller runs with AVX-512 F enabled.
#[inline(always)]
pub(crate) unsafe fn exp_nonpositive_ps(x: __m512) -> __m512 {
    // SAFETY: the caller guarantees AVX-512 F.
    unsafe { exp_ps_body::<false>(x) }
}

/// The steps of [`exp_ps`]; `MAY_OVERFLOW = false` leaves out the handling of lanes above
/// [`EXP_OVERFLOW_ABOVE`].
///
/// # Safety
/// The caller runs with AVX-512 F enabled.
#[inline(always)]
unsafe fn exp_ps_body<const MAY_OVERFLOW: bool>(x: __m512) -> __m512 {
    // SAFETY: register-only intrinsics; the caller guarantees AVX-512 F.
    unsafe {
        let lo = _mm512_set1_ps(EXP_UNDERFLOW_BELOW);
        let hi = _mm512_set1_ps(EXP_OVERFLOW_ABOVE);
        // With `x` as the second operand, NaN lanes stay NaN through the clamp.
        let xc = _mm512_max_ps(lo, x);
        let xc = if MAY_OVERFLOW {
            _mm512_min_ps(hi, xc)
        } else {
            xc
        };
        let n = _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(
            _mm512_mul_ps(xc, _mm512_set1_ps(LOG2_E)),
        );
        let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(LN2_HI), xc);
        let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(LN2_LO), r);
        let mut q = _mm512_set1_ps(P0);
        q = _mm512_fmadd_ps(q, r, _mm512_set1_ps(P1));
        q = _mm512_fmadd_ps(q, r, _mm512_set1_ps(P2));
        q = _mm512_fmadd_ps(q, r, _mm512_set1_ps(P3));
        q = _mm512_fmadd_ps(q, r, _mm512_set1_ps(P4));
        q = _mm512_fmadd_ps(q, r, _mm512_set1_ps(P5));
        let exp_r = _mm512_add_ps(
            _mm512_fmadd_ps(_mm512_mul_ps(r, r), q, r),
            _mm512_set1_ps(1.0),
        );
        // `n` is in [-126, 127] after the clamp (for `MAY_OVERFLOW = false`,
        // the caller keeps `x <= EXP_OVERFLOW_ABOVE`): a valid biased exponent.
        let two_to_n = _mm512_castsi512_ps(_mm512_slli_epi32::<23>(_mm512_add_epi32(
            _mm512_cvtps_epi32(n),
            _mm512_set1_epi32(127),
        )));
        let e = _mm512_mul_ps(exp_r, two_to_n);
        let under = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(x, lo);
        let e = _mm512_mask_blend_ps(under, e, _mm512_setzero_ps());
        if MAY_OVERFLOW {
            let over = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(x, hi);
            _mm512_mask_blend_ps(over, e, _mm512_set1_ps(f32::INFINITY))
        } else {
            e
        }
    }
}

/// # Safety
/// The CPU must support AVX2, FMA, F16C and AVX-512 F/BW/VL/VNNI.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
pub unsafe fn rmsnorm(x: &[f32], weight: &[f32], eps: f32, out: &mut [f32]) {
    let n = x.len().min(weight.len()).min(out.len());
    if n == 0 {
        return;
    }
    let (xp, wp, op) = (x.as_ptr(), weight.as_ptr(), out.as_mut_ptr());
    // Four accumulators hide the FMA latency.
    let mut acc = [_mm512_setzero_ps(); 4];
    let mut i = 0;
    while i + 4 * LANES <= n {
        for (k, a) in acc.iter_mut().enumerate() {
            // SAFETY: `i + 4 * LANES <= n <= x.len()`.
            let v = unsafe { _mm512_loadu_ps(xp.add(i + k * LANES)) };
            *a = _mm512_fmadd_ps(v, v, *a);
        }
        i += 4 * LANES;
    }
    while i < n {
        let mask = tail_mask((n - i).min(LANES));
        // SAFETY: the mask covers only indices below `n <= x.len()`.
        let v = unsafe { _mm512_maskz_loadu_ps(mask, xp.add(i)) };
        acc[0] = _mm512_fmadd_ps(v, v, acc[0]);
        i += LANES;
    }
    let acc = _mm512_add_ps(_mm512_add_ps(acc[0], acc[1]), _mm512_add_ps(acc[2], acc[3]));
    let sum_sq = _mm512_reduce_add_ps(acc);
    let scale = _mm512_set1_ps(1.0 / (sum_sq / n as f32 + eps).sqrt());
    let mut i = 0;
    while i < n {
        let mask = tail_mask((n - i).min(LANES));
        // SAFETY: the mask covers only indices below `n`, at most each slice's length.
        unsafe {
            let v = _mm512_mul_ps(_mm512_maskz_loadu_ps(mask, xp.add(i)), scale);
            let w = _mm512_maskz_loadu_ps(mask, wp.add(i));
            _mm512_mask_storeu_ps(op.add(i), mask, _mm512_mul_ps(v, w));
        }
        i += LANES;
    }
}

/// # Safety
/// The CPU must support AVX2, FMA, F16C and AVX-512 F/BW/VL/VNNI.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
pub unsafe fn rope_adjacent(x: &mut [f32], head_dim: usize, cos: &[f32], sin: &[f32]) {
    let pairs = (head_dim / 2).min(cos.len()).min(sin.len());
    // Lane j of a vector of 8 pairs takes frequency j / 2.
    let spread = _mm512_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7);
    for head in x.chunks_exact_mut(head_dim) {
        let hp = head.as_mut_ptr();
        let mut p = 0;
        while p < pairs {
            let n_pairs = (pairs - p).min(LANES / 2);
            let pair_mask = tail_mask(n_pairs) as __mmask8;
            let mask = tail_mask(2 * n_pairs);
            // SAFETY: the masks cover pairs `p..p + n_pairs` (floats `2p..2(p + n_pairs)`), all
            // within `cos`, `sin` and `head` since `p + n_pairs <= pairs <= head_dim / 2`.
            unsafe {
                let c = _mm512_permutexvar_ps(
                    spread,
                    _mm512_castps256_ps512(_mm256_maskz_loadu_ps(pair_mask, cos.as_ptr().add(p))),
                );
                let s = _mm512_permutexvar_ps(
                    spread,
                    _mm512_castps256_ps512(_mm256_maskz_loadu_ps(pair_mask, sin.as_ptr().add(p))),
                );
                let v = _mm512_maskz_loadu_ps(mask, hp.add(2 * p));
                let swapped = _mm512_permute_ps::<0b1011_0001>(v);
                // Even lanes: a*c - b*s; odd lanes: b*c + a*s.
                let rotated = _mm512_fmaddsub_ps(v, c, _mm512_mul_ps(swapped, s));
                _mm512_mask_storeu_ps(hp.add(2 * p), mask, rotated);
            }
            p += n_pairs;
        }
    }
}

/// # Safety
/// The CPU must support AVX2, FMA, F16C and AVX-512 F/BW/VL/VNNI.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
pub unsafe fn rope_neox(x: &mut [f32], head_dim: usize, cos: &[f32], sin: &[f32]) {
    let half = head_dim / 2;
    let pairs = half.min(cos.len()).min(sin.len());
    for head in x.chunks_exact_mut(head_dim) {
        let (lo, hi) = head.split_at_mut(half);
        let (lp, hp) = (lo.as_mut_ptr(), hi.as_mut_ptr());
        let mut i = 0;
        while i < pairs {
            let mask = tail_mask((pairs - i).min(LANES));
            // SAFETY: the mask covers indices below `pairs`, which bounds `cos`, `sin`, `lo`
            // and `hi`.
            unsafe {
                let c = _mm512_maskz_loadu_ps(mask, cos.as_ptr().add(i));
                let s = _mm512_maskz_loadu_ps(mask, sin.as_ptr().add(i));
                let a = _mm512_maskz_loadu_ps(mask, lp.add(i));
                let b = _mm512_maskz_loadu_ps(mask, hp.add(i));
                let a_rot = _mm512_fmsub_ps(a, c, _mm512_mul_ps(b, s));
                let b_rot = _mm512_fmadd_ps(a, s, _mm512_mul_ps(b, c));
                _mm512_mask_storeu_ps(lp.add(i), mask, a_rot);
                _mm512_mask_storeu_ps(hp.add(i), mask, b_rot);
            }
            i += LANES;
        }
    }
}

/// # Safety
/// The CPU must support AVX2, FMA, F16C and AVX-512 F/BW/VL/VNNI.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
pub unsafe fn swiglu(gate: &[f32], up: &[f32], out: &mut [f32]) {
    let n = gate.len().min(up.len()).min(out.len());
    let (gp, upp, op) = (gate.as_ptr(), up.as_ptr(), out.as_mut_ptr());
    let one = _mm512_set1_ps(1.0);
    let sign = _mm512_set1_epi32(i32::MIN);
    let mut i = 0;
    while i < n {
        let mask = tail_mask((n - i).min(LANES));
        // SAFETY: the mask covers indices below `n`, at most each slice's length; `exp_ps`
        // needs AVX-512 F, enabled here. Masked-off lanes hold 0 and give silu(0) * 0 = 0,
        // which is not stored.
        unsafe {
            let g = _mm512_maskz_loadu_ps(mask, gp.add(i));
            let minus_g = _mm512_castsi512_ps(_mm512_xor_si512(_mm512_castps_si512(g), sign));
            let silu = _mm512_div_ps(g, _mm512_add_ps(one, exp_ps(minus_g)));
            let u = _mm512_maskz_loadu_ps(mask, upp.add(i));
            _mm512_mask_storeu_ps(op.add(i), mask, _mm512_mul_ps(silu, u));
        }
        i += LANES;
    }
}

/// # Safety
/// The CPU must support AVX2, FMA, F16C and AVX-512 F/BW/VL/VNNI.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
pub unsafe fn softmax(x: &mut [f32]) {
    let n = x.len();
    if n == 0 {
        return;
    }
    let xp = x.as_mut_ptr();
    let neg_inf = _mm512_set1_ps(f32::NEG_INFINITY);
    let mut max_v = neg_inf;
    let mut i = 0;
    while i < n {
        let mask = tail_mask((n - i).min(LANES));
        // SAFETY: the mask covers indices below `n`. Masked-off lanes read as -inf, which
        // leaves the maximum unchanged.
        let v = unsafe { _mm512_mask_loadu_ps(neg_inf, mask, xp.add(i)) };
        max_v = _mm512_max_ps(max_v, v);
        i += LANES;
    }
    let max = _mm512_set1_ps(_mm512_reduce_max_ps(max_v));

    let mut sum_v = _mm512_setzero_ps();
    let mut i = 0;
    while i < n {
        let mask = tail_mask((n - i).min(LANES));
        // SAFETY: the mask covers indices below `n`; `exp_ps` needs AVX-512 F, enabled here.
        unsafe {
            let e = exp_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(mask, xp.add(i)), max));
            _mm512_mask_storeu_ps(xp.add(i), mask, e);
            // Only the row's lanes enter the sum.
            sum_v = _mm512_mask_add_ps(sum_v, mask, sum_v, e);
        }
        i += LANES;
    }
    let inv_sum = _mm512_set1_ps(1.0 / _mm512_reduce_add_ps(sum_v));
    let mut i = 0;
    while i < n {
        let mask = tail_mask((n - i).min(LANES));
        // SAFETY: the mask covers indices below `n`.
        unsafe {
            let v = _mm512_mul_ps(_mm512_maskz_loadu_ps(mask, xp.add(i)), inv_sum);
            _mm512_mask_storeu_ps(xp.add(i), mask, v);
        }
        i += LANES;
    }
}

/// # Safety
/// The CPU must support AVX2, FMA, F16C and AVX-512 F/BW/VL/VNNI.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
pub unsafe fn residual_add(y: &mut [f32], x: &[f32]) {
    let n = y.len().min(x.len());
    let (yp, xp) = (y.as_mut_ptr(), x.as_ptr());
    let mut i = 0;
    while i < n {
        let mask = tail_mask((n - i).min(LANES));
        // SAFETY: the mask covers indices below `n`, at most both lengths.
        unsafe {
            let sum = _mm512_add_ps(
                _mm512_maskz_loadu_ps(mask, yp.add(i)),
                _mm512_maskz_loadu_ps(mask, xp.add(i)),
            );
            _mm512_mask_storeu_ps(yp.add(i), mask, sum);
        }
        i += LANES;
    }
}

/// # Safety
/// The CPU must support AVX2, FMA, F16C and AVX-512 F/BW/VL/VNNI.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
pub unsafe fn exp_in_place(x: &mut [f32]) {
    let n = x.len();
    let xp = x.as_mut_ptr();
    let mut i = 0;
    while i < n {
        let mask = tail_mask((n - i).min(LANES));
        // SAFETY: the mask covers indices below `n`; `exp_ps` needs AVX-512 F, enabled here.
        unsafe {
            let e = exp_ps(_mm512_maskz_loadu_ps(mask, xp.add(i)));
            _mm512_mask_storeu_ps(xp.add(i), mask, e);
        }
        i += LANES;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::exp_nonpositive_check::{args, check};

    #[target_feature(enable = "avx512f")]
    fn eval(x: &[f32], full: &mut [f32], nonpositive: &mut [f32]) {
        let chunks = x.chunks_exact(LANES).zip(full.chunks_exact_mut(LANES));
        for ((x, f), n) in chunks.zip(nonpositive.chunks_exact_mut(LANES)) {
            // SAFETY: this function enables AVX-512 F; each chunk holds `LANES` values.
            unsafe {
                let v = _mm512_loadu_ps(x.as_ptr());
                _mm512_storeu_ps(f.as_mut_ptr(), exp_ps(v));
                _mm512_storeu_ps(n.as_mut_ptr(), exp_nonpositive_ps(v));
            }
        }
    }

    #[test]
    fn overflow_free_exp_matches_exp_on_nonpositive_args() {
        if !crate::isa::runs_here(
            crate::Isa::Avx512,
            "overflow_free_exp_matches_exp_on_nonpositive_args",
        ) {
            return;
        }
        let x = args();
        let (mut full, mut nonpositive) = (vec![0.0; x.len()], vec![0.0; x.len()]);
        // SAFETY: availability checked above.
        unsafe { eval(&x, &mut full, &mut nonpositive) };
        check("avx512", &x, &full, &nonpositive);
    }
}
