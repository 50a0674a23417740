//! Ground truth for the kernels. Plain loops in f64, written from the format descriptions in
//! `shared/FORMATS.md`, sharing no numeric code with `kernels`: blocks are decoded from raw
//! little-endian bytes here, so a layout bug in `kernels` cannot hide in both.
#![forbid(unsafe_code)]

pub mod attention;
pub mod gguf;
pub mod matmul;
pub mod model;
pub mod ops;
pub mod quant;

pub use matmul::{matmul, matmul_abs};
pub use quant::{dequantize, quantize_q8k, term_magnitudes, Format, RefError};
