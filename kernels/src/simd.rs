//! Small lane helpers several kernel families share, one copy per architecture. Each is
//! `#[inline(always)]` so it compiles inside the caller's `#[target_feature]` entry function.
//! [`lanes`] holds the f32 vector trait the ops and attention are written once over.

#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
pub(crate) mod lanes;

/// x86-64 helpers. Callers run with AVX2 + F16C enabled (the `avx2` and `avx512` levels).
#[cfg(target_arch = "x86_64")]
pub(crate) mod x86 {
    use std::arch::x86_64::*;

    /// Exact f16 -> f32 with F16C (subnormal halves become normal floats).
    ///
    /// # Safety
    /// The caller runs with F16C enabled.
    #[inline(always)]
    pub(crate) unsafe fn f16_to_f32(h: half::f16) -> f32 {
        // SAFETY: register-only intrinsics; F16C per this fn's contract.
        unsafe { _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(h.to_bits() as i32))) }
    }

    /// The sum of the eight lanes, as ((0+4)+(2+6)) + ((1+5)+(3+7)).
    ///
    /// # Safety
    /// The caller runs with AVX enabled.
    #[inline(always)]
    pub(crate) unsafe fn hsum_ps(v: __m256) -> f32 {
        // SAFETY: register-only intrinsics; AVX per this fn's contract.
        unsafe {
            let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
            let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
            let s = _mm_add_ss(s, _mm_movehdup_ps(s));
            _mm_cvtss_f32(s)
        }
    }

    /// The wrapping sum of the eight lanes (callers keep the sum in range).
    ///
    /// # Safety
    /// The caller runs with AVX2 enabled.
    #[inline(always)]
    pub(crate) unsafe fn hsum_epi32(v: __m256i) -> i32 {
        // SAFETY: register-only intrinsics; AVX2 per this fn's contract.
        unsafe {
            let s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256::<1>(v));
            let s = _mm_add_epi32(s, _mm_unpackhi_epi64(s, s));
            let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b01>(s));
            _mm_cvtsi128_si32(s)
        }
    }

    /// Asks the cache for the lines of the `len` bytes that start [`crate::mem::decode_prefetch`]
    /// bytes after `p` (`prefetcht0`; none when that is 0), for a kernel that streams its
    /// weights at `n = 1`. Called once per `len` bytes of a contiguous stream, it covers every
    /// line of the stream: a line this call's stride skips at the end holds the next call's
    /// first byte.
    #[inline(always)]
    pub(crate) fn prefetch_ahead(p: *const u8, len: usize) {
        let dist = crate::mem::decode_prefetch();
        if dist == 0 {
            return;
        }
        let p = p.wrapping_add(dist).cast::<i8>();
        let mut off = 0;
        while off < len {
            // SAFETY: a prefetch never faults, whatever the address (`wrapping_add` keeps the
            // pointer arithmetic defined); SSE is part of x86_64.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(off)) };
            off += 64;
        }
    }
}

/// aarch64 helpers.
#[cfg(target_arch = "aarch64")]
pub(crate) mod aarch64 {
    use half::f16;

    /// `value.to_f32()` without a call: `half` picks its conversion at run time through an
    /// out-of-line function, and a call in a block loop would force every vector accumulator to
    /// be spilled around it (AAPCS64 preserves no full q register). The conversion is exact, so
    /// this returns the same value as `half`.
    #[inline(always)]
    pub(crate) fn f16_to_f32(value: f16) -> f32 {
        let bits = value.to_bits() as u32;
        let sign = (bits & 0x8000) << 16;
        let magnitude = (bits & 0x7FFF) << 13;
        if magnitude >= 0x7C00 << 13 {
            // Infinity or NaN: saturate the exponent, keep the payload.
            return f32::from_bits(sign | 0x7F80_0000 | magnitude);
        }
        // Moving the 5-bit exponent and 10-bit mantissa into f32's fields divides the value by
        // 2^(127-15); an exact multiplication by 2^112 restores it, subnormal halves included
        // (they land on f32 subnormals with the same mantissa bits).
        let rebased = f32::from_bits(magnitude) * f32::from_bits((127 + 112) << 23);
        f32::from_bits(sign | rebased.to_bits())
    }

    #[cfg(test)]
    mod tests {
        use super::f16_to_f32;
        use half::f16;

        #[test]
        fn f16_conversion_matches_half_for_every_value() {
            for bits in 0..=u16::MAX {
                let (ours, theirs) = (
                    f16_to_f32(f16::from_bits(bits)),
                    f16::from_bits(bits).to_f32(),
                );
                if theirs.is_nan() {
                    assert!(ours.is_nan(), "{bits:#06x}");
                } else {
                    assert_eq!(ours.to_bits(), theirs.to_bits(), "{bits:#06x}");
                }
            }
        }
    }
}
