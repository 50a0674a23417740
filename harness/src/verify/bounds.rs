//! The gate's error bounds: re-exported from [`kernels::bounds`], where each is derived once
//! (the kernels' own tests use the same functions), so the gate and the tests cannot drift.

pub use kernels::bounds::{gamma as gamma_f32, matmul_f32_rel, rmsnorm_rel_error, U};
