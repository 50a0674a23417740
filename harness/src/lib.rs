//! The harness library: the verification gate (and, later, benchmarks and reports).
//! `src/main.rs` is a thin clap front end over it; the integration tests call it directly.

pub mod inspect;
pub mod perplexity;
pub mod planted_attention;
pub mod planted_ops;
pub mod run;
pub mod synth;
pub mod tokenize;
pub mod verify;
