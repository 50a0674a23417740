//! The harness library: the verification gate, the benchmarks, their reports and comparisons.
//! `src/main.rs` is a thin clap front end over it; the integration tests call it directly.

pub mod bench;
pub mod compare;
pub mod e2e;
pub mod host;
pub mod inspect;
pub mod perplexity;
pub mod planted_attention;
pub mod planted_ops;
pub mod record;
pub mod registry;
pub mod report;
pub mod run;
pub mod stats;
pub mod synth;
pub mod tokenize;
pub mod verify;
