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
use crate::isa::dispatch;
use crate::quant::{BlockQ6K, BlockQ8K};
use crate::Isa;

/// `y = x * w^T` with f32 activations `x` (`n * k` values). See [`MatmulDims`].
///
/// # Panics
/// If `isa` cannot run on this CPU, or the slices do not match `dims`.
pub fn matmul_q6k_f32(isa: Isa, x: &[f32], w: &[BlockQ6K], y: &mut [f32], dims: MatmulDims) {
    dispatch!(isa, matmul_f32(x, w, y, dims))
}

/// `y = x * w^T` with activations already quantized to Q8_K (`n * k/256` blocks).
///
/// # Panics
/// If `isa` cannot run on this CPU, or the slices do not match `dims`.
pub fn matmul_q6k_q8k(isa: Isa, xq: &[BlockQ8K], w: &[BlockQ6K], y: &mut [f32], dims: MatmulDims) {
    dispatch!(isa, matmul_q8k(xq, w, y, dims))
}
