//! The harness library: the verification gate (and, later, benchmarks and reports).
//! `src/main.rs` is a thin clap front end over it; the integration tests call it directly.

pub mod planted_attention;
pub mod registry;
pub mod verify;
