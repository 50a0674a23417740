//! Q6_K weights: the dispatch point for both designs. Every ISA file exports the same two
//! functions, `matmul_f32` and `matmul_q8k`, with the signatures of [`scalar`].

pub mod scalar;

#[cfg(target_arch = "x86_64")]
pub mod avx2;
#[cfg(target_arch = "x86_64")]
pub mod avx512;
#[cfg(target_arch = "aarch64")]
pub mod neon;

use crate::quant::BlockQ6K;

super::kquant::k_dispatch!(BlockQ6K, matmul_q6k_f32, matmul_q6k_q8k);
