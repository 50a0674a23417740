//! The x86 unpacking of the 32-value blocks that AVX2 and AVX-512 share: every format's
//! [`Block32::ints`] as one 256-bit vector of 32 signed bytes (byte `l` = value `l`). Callers
//! run with AVX2 + F16C enabled; everything is `#[inline(always)]`.

use super::avx2::Avx2;
use super::avx512::Avx512;
use super::{Block32, Unpack};
use crate::quant::{BlockQ4_0, BlockQ4_1, BlockQ5_0, BlockQ8_0};
use crate::simd::x86::f16_to_f32;
use std::arch::x86_64::*;

/// A 32-value weight block as the x86 kernels unpack it.
pub(super) trait X86Block: Block32 {
    /// [`Block32::ints`] as 32 bytes.
    ///
    /// # Safety
    /// The caller runs with AVX2 enabled.
    unsafe fn ints_x86(&self) -> __m256i;

    /// The min `m` (0 for formats without one).
    ///
    /// # Safety
    /// The caller runs with F16C enabled.
    #[inline(always)]
    unsafe fn min_f32(&self) -> f32 {
        0.0
    }
}

/// The 32 nibbles of `qs` in value order: low nibbles (values 0..16) in the low 128 bits, high
/// nibbles (16..32) in the high 128 bits.
///
/// # Safety
/// The caller runs with AVX2 enabled.
#[inline(always)]
unsafe fn nibbles(qs: &[u8; 16]) -> __m256i {
    // SAFETY: a 16-byte load of a 16-byte array; AVX2 per the caller's contract.
    unsafe {
        let bytes = _mm_loadu_si128(qs.as_ptr().cast());
        let low4 = _mm_set1_epi8(0xF);
        let lo = _mm_and_si128(bytes, low4);
        let hi = _mm_and_si128(_mm_srli_epi16::<4>(bytes), low4);
        _mm256_set_m128i(hi, lo)
    }
}

/// Bit `l` of `qh` as `0x10` in byte `l` (0 where the bit is clear).
///
/// # Safety
/// The caller runs with AVX2 enabled.
#[inline(always)]
unsafe fn high_bits(qh: u32) -> __m256i {
    // SAFETY: register-only intrinsics; AVX2 per the caller's contract.
    unsafe {
        // Byte l gets byte l/8 of `qh` (`pshufb` works within 128-bit lanes; the broadcast puts
        // all four bytes in both), then its bit l%8 is tested.
        let spread = _mm256_shuffle_epi8(
            _mm256_set1_epi32(qh as i32),
            _mm256_setr_epi64x(
                0,
                0x0101_0101_0101_0101,
                0x0202_0202_0202_0202,
                0x0303_0303_0303_0303,
            ),
        );
        let bit = _mm256_set1_epi64x(0x8040_2010_0804_0201u64 as i64);
        let set = _mm256_cmpeq_epi8(_mm256_and_si256(spread, bit), bit);
        _mm256_and_si256(set, _mm256_set1_epi8(0x10))
    }
}

impl X86Block for BlockQ8_0 {
    #[inline(always)]
    unsafe fn ints_x86(&self) -> __m256i {
        // SAFETY: a 32-byte load of the 32-byte `qs`.
        unsafe { _mm256_loadu_si256(self.qs.as_ptr().cast()) }
    }
}

impl X86Block for BlockQ4_0 {
    #[inline(always)]
    unsafe fn ints_x86(&self) -> __m256i {
        // SAFETY: AVX2 per the caller's contract.
        unsafe { _mm256_sub_epi8(nibbles(&self.qs), _mm256_set1_epi8(8)) }
    }
}

impl X86Block for BlockQ5_0 {
    #[inline(always)]
    unsafe fn ints_x86(&self) -> __m256i {
        // SAFETY: AVX2 per the caller's contract.
        unsafe {
            let q = _mm256_or_si256(nibbles(&self.qs), high_bits(u32::from_le_bytes(self.qh)));
            _mm256_sub_epi8(q, _mm256_set1_epi8(16))
        }
    }
}

impl X86Block for BlockQ4_1 {
    #[inline(always)]
    unsafe fn ints_x86(&self) -> __m256i {
        // SAFETY: AVX2 per the caller's contract.
        unsafe { nibbles(&self.qs) }
    }

    #[inline(always)]
    unsafe fn min_f32(&self) -> f32 {
        // SAFETY: F16C per the caller's contract.
        unsafe { f16_to_f32(self.m) }
    }
}

/// The x86 unpacking, for both x86 ISAs.
macro_rules! x86_unpack {
    ($($isa:ty),*) => {$(
        impl<W: X86Block> Unpack<$isa> for W {
            #[inline(always)]
            unsafe fn unpack(&self) -> __m256i {
                // SAFETY: the trait's contract.
                unsafe { self.ints_x86() }
            }

            #[inline(always)]
            unsafe fn min(&self) -> f32 {
                // SAFETY: the trait's contract.
                unsafe { self.min_f32() }
            }
        }
    )*};
}

x86_unpack!(Avx2, Avx512);

/// Bytes `8v..8v+8` of `ints` (v in 0..4) widened to eight i32 lanes.
///
/// # Safety
/// The caller runs with AVX2 enabled.
#[inline(always)]
pub(super) unsafe fn widen8(ints: __m256i, v: usize) -> __m256i {
    // SAFETY: register-only intrinsics; AVX2 per the caller's contract.
    unsafe {
        let half = if v < 2 {
            _mm256_castsi256_si128(ints)
        } else {
            _mm256_extracti128_si256::<1>(ints)
        };
        let part = if v.is_multiple_of(2) {
            half
        } else {
            _mm_srli_si128::<8>(half)
        };
        _mm256_cvtepi8_epi32(part)
    }
}
