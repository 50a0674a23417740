//! Round-trip quality of every quantizer against the figures llama.cpp's own reference
//! quantizers reach on the same kind of data, plus soundness on edge-case inputs.
//!
//! Run with `cargo test -p kernels --test quant_rmse -- --nocapture` to see the table.

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
/// quantizer has a relative standard error well under 0.2%), far inside `MAX_RATIO`. The figures
/// themselves are rounded to 3 significant digits (Q8_0's to 2, i.e. +-1%), which is why a ratio
/// within about 1% of 1.000 means "the same as llama.cpp".
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
            failures.push(format!(
                "{name}: rmse {ours:.5} is {ratio:.3}x llama.cpp's {theirs}"
            ));
        }
    }
    assert!(failures.is_empty(), "seed {SEED:#x}: {failures:?}");
}

/// Quantize then dequantize `x` (a whole number of blocks) as one row.
fn round_trip_row<B: QuantBlock>(x: &[f32]) -> Vec<f32> {
    let mut blocks = vec![B::zeroed(); x.len() / B::VALUES];
    B::quantize_row(x, &mut blocks);
    let mut y = vec![0f32; x.len()];
    B::dequantize_row(&blocks, &mut y);
    y
}

/// Scaling the input by a power of two scales the result by exactly the same power, as long as
/// every f16 scale stays in the normal f16 range: all the arithmetic (the fits run on a
/// power-of-two normalized copy) is then exact under the scaling, f16/f32 rounding included.
/// On N(0,1) rows the smallest stored scale is Q6_K's `d` (about 7e-4) and the largest Q4_1's
/// `m` (about 4), so 2^-3..=2^12 keeps them all within [6.1e-5, 65504].
fn check_power_of_two_equivariance<B: QuantBlock>(x: &[f32]) {
    let base = round_trip_row::<B>(x);
    for k in [-3, -1, 1, 5, 12] {
        let s = 2f32.powi(k);
        let xs: Vec<f32> = x.iter().map(|v| v * s).collect();
        let ys = round_trip_row::<B>(&xs);
        for (i, (&a, &b)) in base.iter().zip(&ys).enumerate() {
            assert_eq!(
                a * s,
                b,
                "{} scale 2^{k}: value {i} (x = {})",
                B::NAME,
                x[i]
            );
        }
    }
}

/// Constant blocks come back as the constant up to the f16 rounding of the stored scale
/// (relative 2^-11) and the f32 products of dequantization (a few 2^-24): within 2^-10.
/// The constants keep every stored scale a normal f16 (Q6_K's d = c/4096 >= 6.1e-5 needs
/// |c| >= 0.25; Q4_K's d = c/945 needs |c| >= 0.06).
fn check_constant_blocks<B: QuantBlock>() {
    for c in [0.37f32, -0.37, 3.0, -3.0, 1000.0, -1000.0] {
        let y = round_trip_row::<B>(&[c; 256]);
        for (i, &v) in y.iter().enumerate() {
            assert!(
                (v - c).abs() <= c.abs() / 1024.0,
                "{} constant {c}: value {i} came back as {v}",
                B::NAME
            );
        }
    }
    let zero = round_trip_row::<B>(&[0.0; 256]);
    assert!(
        zero.iter().all(|&v| v == 0.0),
        "{}: zeros came back as {zero:?}",
        B::NAME
    );
}

/// Blocks of any finite magnitude, from subnormal to f32::MAX, give finite output, and no value
/// comes back larger than `4*amax + 1e-3` (amax: the block's largest magnitude).
///
/// Why that bound: every format stores a grid that spans at most the block's range plus one
/// step (Q4_K: the offset is at most |min| plus two 6-bit steps of dmin, the top at most the
/// range; the others: the extreme value maps to the end of the grid), and each value goes to
/// its nearest grid point, so |y| <= 3.04*amax; scales that saturate at the largest f16 only
/// shrink the grid. When the stored f16 scales are subnormal, rounding can add at most half the
/// f16 spacing 2^-24 per scale, times the largest integer products (Q4_K: 63*15 + 63; Q6_K:
/// 128*32), i.e. < 1.3e-4 < 1e-3.
fn check_extreme_magnitudes<B: QuantBlock>(normal_row: &[f32]) {
    let unit_max = normal_row.iter().fold(0f32, |a, v| a.max(v.abs()));
    let magnitudes = [
        f32::from_bits(1), // smallest subnormal
        1e-40,
        1e-30,
        1e-8,
        3e-5,
        7e4,
        1e20,
        1e38,
        f32::MAX,
    ];
    for &mag in &magnitudes {
        let patterns: [(&str, Vec<f32>); 4] = [
            (
                "normal",
                normal_row.iter().map(|v| v / unit_max * mag).collect(),
            ),
            ("constant", vec![mag; 256]),
            (
                "spike",
                (0..256).map(|i| if i == 77 { -mag } else { 0.0 }).collect(),
            ),
            (
                // Each value's magnitude spans from `mag` down to 2^-149 across the row.
                "mixed exponents",
                (0..256)
                    .map(|i| {
                        let sign = if i % 3 == 0 { -1.0 } else { 1.0 };
                        sign * (mag as f64 * 2f64.powi(-(i * 7 % 300))) as f32
                    })
                    .collect(),
            ),
        ];
        for (name, x) in &patterns {
            assert!(x.iter().all(|v| v.is_finite()));
            let y = round_trip_row::<B>(x);
            for (block_x, block_y) in x.chunks(B::VALUES.max(32)).zip(y.chunks(B::VALUES.max(32))) {
                let amax = block_x.iter().fold(0f32, |a, v| a.max(v.abs()));
                let bound = 4.0 * amax as f64 + 1e-3;
                for (&xi, &yi) in block_x.iter().zip(block_y) {
                    assert!(
                        yi.is_finite() && (yi.abs() as f64) <= bound,
                        "{} {name} magnitude {mag:e}: {xi:e} came back as {yi:e}",
                        B::NAME
                    );
                }
            }
        }
    }
}

fn check_edge_cases<B: QuantBlock>() {
    let x = normal_values(SEED ^ 0xed9e, 64 * 256);
    check_power_of_two_equivariance::<B>(&x);
    check_constant_blocks::<B>();
    check_extreme_magnitudes::<B>(&x[..256]);
}

#[test]
fn edge_cases_q4k() {
    check_edge_cases::<BlockQ4K>();
}

#[test]
fn edge_cases_q6k() {
    check_edge_cases::<BlockQ6K>();
}

#[test]
fn edge_cases_q8_0() {
    check_edge_cases::<BlockQ8_0>();
}

#[test]
fn edge_cases_q4_0() {
    check_edge_cases::<BlockQ4_0>();
}

#[test]
fn edge_cases_q4_1() {
    check_edge_cases::<BlockQ4_1>();
}

#[test]
fn edge_cases_q5_0() {
    check_edge_cases::<BlockQ5_0>();
}

#[test]
fn edge_cases_q8k() {
    check_edge_cases::<BlockQ8K>();
}
