//! The fast code: quantized block formats, fused dequantize-matmul kernels, attention and the
//! per-layer ops of a Llama forward pass, each in scalar, AVX2, AVX-512 and NEON variants.
//!
//! Every variant is a plain function callable directly (`matmul::q4k::scalar::matmul_f32`, ...);
//! each family also has one dispatch function taking an [`Isa`] (`matmul::matmul_q4k_f32(isa, ..)`).
//! Kernels take slices in and write slices out; they never allocate.
//!
//! The naive versions these are checked against live in the separate `reference` crate, which
//! shares no numeric code with this one.

// Kernel code indexes several arrays with one loop variable (block layouts are defined that
// way in docs/FORMATS.md); iterator chains would obscure the layout they implement.
#![allow(clippy::needless_range_loop)]

pub mod attention;
pub mod bounds;
pub mod gguf;
pub mod isa;
pub mod matmul;
pub mod mem;
pub mod model;
pub mod ops;
pub mod quant;
mod simd;
pub mod tokenizer;

pub use isa::Isa;
