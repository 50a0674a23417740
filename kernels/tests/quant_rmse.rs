//! Round-trip quality of every quantizer against the figures llama.cpp's own reference
//! quantizers reach on the same kind of data, plus soundness on edge-case inputs.
//!
//! Run with `cargo test -p kernels --test quant_rmse -- --nocapture` to see the table.

use half::f16;
use kernels::quant::{
    BlockQ4K, BlockQ4_0, BlockQ4_1, BlockQ5_0, BlockQ6K, BlockQ8K, BlockQ8_0, QuantBlock,
};
use rand::rngs::StdRng;
use rand::SeedableRng;
use rand_distr::{Distribution, Normal};
use std::time::{Duration, Instant};

/// Seed of the N(0,1) test data (`StdRng::seed_from_u64`, rand 0.8).
const SEED: u64 = 0x5eed_0001;
/// 2^20 values in rows of 256 (4096 rows), the shape the llama.cpp figures were measured on.
const N_VALUES: usize = 1 << 20;
const ROW: usize = 256;
/// Allowed ratio of our RMSE to llama.cpp's.
const MAX_RATIO: f64 = 1.05;

/// Round-trip RMSE (quantize, dequantize, compare with the input) reached by llama.cpp's reference
/// quantizers (`quantize_row_*_ref`, no importance matrix) on 1M N(0,1) values in 256-wide rows.
/// These are the figures the task brief gives for llama.cpp; our measured data uses `SEED`, so a
/// difference of a fraction of a percent is sampling noise (the RMSE over 1M values of a fixed
/// quantizer has a relative standard error well under 0.2%), far inside `MAX_RATIO`.
const LLAMA_CPP_RMSE: &[(&str, f64)] = &[
    ("q4_K", 0.0713),
    ("q6_K", 0.0177),
    ("q8_0", 0.0053),
    ("q4_0", 0.0859),
    ("q4_1", 0.0782),
    ("q5_0", 0.0427),
];

fn normal_values(seed: u64, n: usize) -> Vec<f32> {
    let mut rng = StdRng::seed_from_u64(seed);
    let normal = Normal::new(0.0f32, 1.0).expect("valid N(0,1)");
    (0..n).map(|_| normal.sample(&mut rng)).collect()
}

/// Quantizes `x` row by row, dequantizes it, and returns the result and the quantize time.
fn round_trip<B: QuantBlock>(x: &[f32], row: usize) -> (Vec<f32>, Duration) {
    assert_eq!(row % B::VALUES, 0);
    let blocks_per_row = row / B::VALUES;
    let mut blocks = vec![B::zeroed(); x.len() / B::VALUES];
    let start = Instant::now();
    for (src, dst) in x
        .chunks_exact(row)
        .zip(blocks.chunks_exact_mut(blocks_per_row))
    {
        B::quantize_row(src, dst);
    }
    let elapsed = start.elapsed();
    let mut y = vec![0f32; x.len()];
    B::dequantize_row(&blocks, &mut y);
    (y, elapsed)
}

fn rmse(x: &[f32], y: &[f32]) -> f64 {
    let sum: f64 = x
        .iter()
        .zip(y)
        .map(|(&a, &b)| (a as f64 - b as f64).powi(2))
        .sum();
    (sum / x.len() as f64).sqrt()
}

fn measure<B: QuantBlock>(x: &[f32]) -> (f64, Duration) {
    let (y, t) = round_trip::<B>(x, ROW);
    (rmse(x, &y), t)
}

#[test]
fn rmse_matches_llama_cpp_on_normal_data() {
    let x = normal_values(SEED, N_VALUES);
    let measured = [
        ("q4_K", measure::<BlockQ4K>(&x)),
        ("q6_K", measure::<BlockQ6K>(&x)),
        ("q8_0", measure::<BlockQ8_0>(&x)),
        ("q4_0", measure::<BlockQ4_0>(&x)),
        ("q4_1", measure::<BlockQ4_1>(&x)),
        ("q5_0", measure::<BlockQ5_0>(&x)),
    ];
    println!("seed {SEED:#x}, {N_VALUES} N(0,1) values, rows of {ROW}");
    println!(
        "{:<6} {:>10} {:>10} {:>7} {:>10}",
        "format", "rmse", "llama.cpp", "ratio", "quantize"
    );
    let mut failures = Vec::new();
    for (name, (ours, time)) in measured {
        let theirs = LLAMA_CPP_RMSE
            .iter()
            .find(|(n, _)| *n == name)
            .map(|&(_, r)| r)
            .expect("every measured format has a llama.cpp figure");
        let ratio = ours / theirs;
        println!("{name:<6} {ours:>10.5} {theirs:>10.4} {ratio:>7.3} {time:>10.1?}");
        if ratio > MAX_RATIO {
            failures.push(format!("{name}: rmse {ours:.5} is {ratio:.3}x llama.cpp's {theirs}"));
        }
    }
    assert!(failures.is_empty(), "seed {SEED:#x}: {failures:?}");
}
