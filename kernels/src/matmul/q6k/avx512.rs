//! avx512 variants. PLACEHOLDER: delegates to scalar until the SIMD kernel lands.

use super::scalar;
use crate::matmul::MatmulDims;
use crate::quant::{BlockQ6K, BlockQ8K};

/// # Safety
/// The CPU must support the enabled target features.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
pub unsafe fn matmul_f32(x: &[f32], w: &[BlockQ6K], y: &mut [f32], dims: MatmulDims) {
    scalar::matmul_f32(x, w, y, dims)
}

/// # Safety
/// The CPU must support the enabled target features.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
pub unsafe fn matmul_q8k(xq: &[BlockQ8K], w: &[BlockQ6K], y: &mut [f32], dims: MatmulDims) {
    scalar::matmul_q8k(xq, w, y, dims)
}
