//! Q6_K weights: the dispatch point for both designs. Every ISA file exports the same two
//! functions, `matmul_f32` and `matmul_q8k`, with the signatures of [`scalar`].

pub mod scalar;

#[cfg(target_arch = "x86_64")]
pub mod avx2;
#[cfg(target_arch = "x86_64")]
pub mod avx512;
#[cfg(target_arch = "aarch64")]
pub mod neon;

use super::MatmulDims;
use crate::quant::{BlockQ6K, BlockQ8K};
use crate::Isa;

/// `y = x * w^T` with f32 activations `x` (`n * k` values). See [`MatmulDims`].
///
/// # Panics
/// If `isa` cannot run on this CPU, or the slices do not match `dims`.
pub fn matmul_q6k_f32(isa: Isa, x: &[f32], w: &[BlockQ6K], y: &mut [f32], dims: MatmulDims) {
    dims.check(x.len(), dims.k, w.len(), y.len());
    isa.assert_available();
    match isa {
        Isa::Scalar => scalar::matmul_f32(x, w, y, dims),
        // SAFETY: `assert_available` checked that the CPU has the target features.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => unsafe { avx2::matmul_f32(x, w, y, dims) },
        // SAFETY: as above.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => unsafe { avx512::matmul_f32(x, w, y, dims) },
        // SAFETY: as above.
        #[cfg(target_arch = "aarch64")]
        Isa::Neon => unsafe { neon::matmul_f32(x, w, y, dims) },
        #[allow(unreachable_patterns)]
        _ => unreachable!("assert_available admits no ISA of another architecture"),
    }
}

/// `y = x * w^T` with activations already quantized to Q8_K (`n * k/256` blocks).
///
/// # Panics
/// If `isa` cannot run on this CPU, or the slices do not match `dims`.
pub fn matmul_q6k_q8k(isa: Isa, xq: &[BlockQ8K], w: &[BlockQ6K], y: &mut [f32], dims: MatmulDims) {
    dims.check(xq.len(), dims.blocks_per_row(), w.len(), y.len());
    isa.assert_available();
    match isa {
        Isa::Scalar => scalar::matmul_q8k(xq, w, y, dims),
        // SAFETY: `assert_available` checked that the CPU has the target features.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => unsafe { avx2::matmul_q8k(xq, w, y, dims) },
        // SAFETY: as above.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => unsafe { avx512::matmul_q8k(xq, w, y, dims) },
        // SAFETY: as above.
        #[cfg(target_arch = "aarch64")]
        Isa::Neon => unsafe { neon::matmul_q8k(xq, w, y, dims) },
        #[allow(unreachable_patterns)]
        _ => unreachable!("assert_available admits no ISA of another architecture"),
    }
}
