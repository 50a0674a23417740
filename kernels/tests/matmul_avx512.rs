//! The AVX-512 Q4_K / Q6_K matmul kernels against the scalar oracle on identical inputs.
//!
//! - q8k design: bit-exact with scalar (compared with `to_bits`, including the untouched gaps of
//!   `y` when `y_stride > rows`).
//! - f32 design: within a float-reassociation bound (derivation at [`f32_bound`]).
//!
//! Every test prints a skip note and returns when the CPU lacks AVX-512 F/BW/VL/VNNI.
#![cfg(target_arch = "x86_64")]

use half::f16;
use kernels::matmul::{matmul_q4k_f32, matmul_q4k_q8k, matmul_q6k_f32, matmul_q6k_q8k, MatmulDims};
use kernels::quant::{BlockQ4K, BlockQ6K, BlockQ8K, QuantBlock, QK_K};
use kernels::Isa;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Normal};

const SEEDS: [u64; 3] = [0x5eed_0001, 0xdead_beef, 42];
const KS: [usize; 3] = [256, 512, 2048 + 256];
const ROWS: [usize; 3] = [1, 3, 17];
const NS: [usize; 5] = [1, 2, 3, 5, 8];
/// Written into `y` before each call: gaps between output rows must keep it.
const SENTINEL: f32 = -1234.5;

fn skip_unless_avx512(test: &str) -> bool {
    if let Some(reason) = Isa::Avx512.unavailable_reason() {
        println!("SKIPPED {test}: {reason}");
        return true;
    }
    false
}

/// How weight and activation blocks are drawn; each mode aims at one way a kernel can go wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// Uniform random bytes everywhere, moderate scales.
    Random,
    /// Every packed scale/min byte 0xFF (all scales and mins 63, sub-blocks 4..7 high bits
    /// set; Q6 scales alternate -128/127), nibbles / Q6 values at their maximum, Q8 at +127.
    AllMax,
    /// Nibbles / Q6 values all 0 (Q6: value 0 is the -32 extreme), Q8 at -127 and -128.
    AllMin,
    /// Per block a random pick of the extremes above, with f16 `d` subnormal, huge or negative.
    Extreme,
}

const MODES: [Mode; 4] = [Mode::Random, Mode::AllMax, Mode::AllMin, Mode::Extreme];

fn random_f16_scale(rng: &mut StdRng, mode: Mode) -> f16 {
    match mode {
        Mode::Random => f16::from_f32(rng.gen_range(1e-4f32..2e-2)),
        Mode::AllMax | Mode::AllMin => f16::from_f32(3e-3),
        Mode::Extreme => match rng.gen_range(0..6) {
            0 => f16::from_bits(0x0001), // smallest subnormal, 2^-24
            1 => f16::from_bits(0x03ff), // largest subnormal
            2 => f16::MAX,               // 65504
            3 => f16::from_f32(-rng.gen_range(1e-4f32..1.0)),
            4 => f16::ZERO,
            _ => f16::from_f32(rng.gen_range(1e-4f32..1.0)),
        },
    }
}

fn pick_byte(rng: &mut StdRng, mode: Mode, max: u8) -> u8 {
    match mode {
        Mode::Random => rng.gen(),
        Mode::AllMax => max,
        Mode::AllMin => 0,
        Mode::Extreme => [0, max, rng.gen()][rng.gen_range(0..3)],
    }
}

fn random_q4k(rng: &mut StdRng, mode: Mode) -> BlockQ4K {
    let mut b = BlockQ4K {
        d: random_f16_scale(rng, mode),
        dmin: random_f16_scale(rng, mode),
        ..Default::default()
    };
    let all_scales = pick_byte(rng, mode, 0xFF);
    for s in b.scales.iter_mut() {
        *s = if mode == Mode::Extreme && rng.gen_bool(0.5) {
            all_scales
        } else {
            pick_byte(rng, mode, 0xFF)
        };
    }
    let fill = pick_byte(rng, mode, 0xFF);
    for q in b.qs.iter_mut() {
        *q = if mode == Mode::Extreme && rng.gen_bool(0.7) {
            fill
        } else {
            pick_byte(rng, mode, 0xFF)
        };
    }
    b
}

fn random_q6k(rng: &mut StdRng, mode: Mode) -> BlockQ6K {
    let mut b = BlockQ6K {
        d: random_f16_scale(rng, mode),
        ..Default::default()
    };
    let fill = pick_byte(rng, mode, 0xFF);
    for q in b.ql.iter_mut().chain(b.qh.iter_mut()) {
        *q = if mode == Mode::Extreme && rng.gen_bool(0.7) {
            fill
        } else {
            pick_byte(rng, mode, 0xFF)
        };
    }
    for (g, s) in b.scales.iter_mut().enumerate() {
        *s = match mode {
            Mode::Random => rng.gen(),
            Mode::AllMax | Mode::AllMin => [-128, 127][g % 2],
            Mode::Extreme => [-128, 127, rng.gen()][rng.gen_range(0..3)],
        };
    }
    b
}

fn random_q8k(rng: &mut StdRng, mode: Mode) -> BlockQ8K {
    let mut b = BlockQ8K {
        d: match mode {
            Mode::Extreme => [1e-30, -3.5e3, rng.gen_range(-1.0..1.0)][rng.gen_range(0..3)],
            _ => rng.gen_range(-0.05f32..0.05),
        },
        ..Default::default()
    };
    for q in b.qs.iter_mut() {
        *q = match mode {
            Mode::Random => rng.gen_range(-127..=127),
            Mode::AllMax => 127,
            Mode::AllMin => [-127, -128][rng.gen_range(0..2)],
            Mode::Extreme => [127, -127, -128, rng.gen()][rng.gen_range(0..4)],
        };
    }
    b.fill_bsums();
    b
}

fn random_activations(rng: &mut StdRng, mode: Mode, len: usize) -> Vec<f32> {
    let normal = Normal::new(0.0f32, 1.0).expect("valid normal");
    (0..len)
        .map(|_| match mode {
            Mode::Random => normal.sample(rng),
            Mode::AllMax => 1.5,
            Mode::AllMin => -0.75,
            // Large, small and mixed-sign magnitudes, none so small that products underflow.
            Mode::Extreme => normal.sample(rng) * [1e-3, 1.0, 1e3][rng.gen_range(0..3)],
        })
        .collect()
}

/// Every shape of the brief, with dense and strided outputs.
fn shapes() -> Vec<MatmulDims> {
    let mut out = Vec::new();
    for &k in &KS {
        for &rows in &ROWS {
            for &n in &NS {
                for extra in [0, 3] {
                    out.push(MatmulDims {
                        n,
                        k,
                        rows,
                        y_stride: rows + extra,
                    });
                }
            }
        }
    }
    out
}

fn output_len(dims: MatmulDims) -> usize {
    (dims.n - 1) * dims.y_stride + dims.rows
}

/// Runs one q8k case and demands identical bits everywhere in `y` (gaps included).
fn check_q8k_exact<W: Copy>(
    name: &str,
    seed: u64,
    mode: Mode,
    dims: MatmulDims,
    w: &[W],
    xq: &[BlockQ8K],
    run: impl Fn(Isa, &[BlockQ8K], &[W], &mut [f32], MatmulDims),
) {
    let mut y_scalar = vec![SENTINEL; output_len(dims)];
    let mut y_simd = vec![SENTINEL; output_len(dims)];
    run(Isa::Scalar, xq, w, &mut y_scalar, dims);
    run(Isa::Avx512, xq, w, &mut y_simd, dims);
    for (idx, (a, b)) in y_scalar.iter().zip(&y_simd).enumerate() {
        assert_eq!(
            a.to_bits(),
            b.to_bits(),
            "{name}: seed {seed:#x}, mode {mode:?}, {dims:?}: y[{idx}] scalar {a:e} ({:#010x}) \
             avx512 {b:e} ({:#010x})",
            a.to_bits(),
            b.to_bits()
        );
    }
}

/// `gamma(m) = m*u / (1 - m*u)` (Higham, Accuracy and Stability, Lemma 3.1).
use kernels::bounds::gamma;

/// Error bound for the f32 design, per output: `2 * gamma(k+2) * sum_i |w_i x_i|`.
///
/// Derivation. Both kernels dequantize each weight to the same f32 `w_i`: scalar computes
/// `fl(fl(d*sc)*q - fl(dmin*m))` for Q4_K and `fl(d*sc)*(q-32)` for Q6_K, where `d*sc`, `dmin*m`
/// and `(d*sc)*q` are exact (<= 24 significant bits), so `w_i` is one correctly rounded value
/// that the SIMD kernel reproduces bit for bit with a single-rounding `fmsub` / `mul`. What
/// differs is only how the k products `w_i x_i` are summed. Any evaluation of a sum of k products
/// in which each product passes through at most m roundings (its own multiply, or none inside an
/// FMA, plus every addition on its path to the result) satisfies
/// `|fl(s) - s| <= gamma(m) * sum_i |w_i x_i|` (Higham (3.4)-(3.5)). Scalar: 1 multiply, at most
/// 255 additions inside a block, at most k/256 additions into `y` -> m <= 256 + k/256 <= k + 2.
/// AVX-512: k/64 FMAs per lane (4 accumulators x 16 lanes), 2 accumulator adds, 4 lane-reduction
/// adds -> m <= k/64 + 6 <= k + 2. Both are within `gamma(k+2) * S` of the exact sum of the same
/// products, so they are within `2 * gamma(k+2) * S` of each other. The bound needs no underflow
/// and no overflow; the generated data keeps `|w_i x_i|` well inside the normal f32 range.
/// `S` is computed in f64 from the same dequantized weights (f64 keeps it far more accurate
/// than the slack this needs).
fn f32_bound(k: usize, abs_dot: f64) -> f64 {
    2.0 * gamma(k + 2) * abs_dot
}

/// Runs one f32 case; `dequantize` gives the weights exactly as both kernels see them.
#[allow(clippy::too_many_arguments)]
fn check_f32_bound<W: Copy>(
    name: &str,
    seed: u64,
    mode: Mode,
    dims: MatmulDims,
    w: &[W],
    x: &[f32],
    dequantize: impl Fn(&[W], &mut [f32]),
    run: impl Fn(Isa, &[f32], &[W], &mut [f32], MatmulDims),
) {
    let mut y_scalar = vec![SENTINEL; output_len(dims)];
    let mut y_simd = vec![SENTINEL; output_len(dims)];
    run(Isa::Scalar, x, w, &mut y_scalar, dims);
    run(Isa::Avx512, x, w, &mut y_simd, dims);
    let nb = dims.blocks_per_row();
    let mut w_row = vec![0f32; dims.k];
    for r in 0..dims.rows {
        dequantize(&w[r * nb..(r + 1) * nb], &mut w_row);
        for i in 0..dims.n {
            let xr = &x[i * dims.k..(i + 1) * dims.k];
            let abs_dot: f64 = w_row
                .iter()
                .zip(xr)
                .map(|(&a, &b)| (a as f64 * b as f64).abs())
                .sum();
            let idx = i * dims.y_stride + r;
            let (a, b) = (y_scalar[idx], y_simd[idx]);
            let bound = f32_bound(dims.k, abs_dot);
            assert!(
                a.is_finite() && b.is_finite() && (a as f64 - b as f64).abs() <= bound,
                "{name}: seed {seed:#x}, mode {mode:?}, {dims:?}, row {r}, token {i}: \
                 scalar {a:e} avx512 {b:e} differ by {:e} > bound {bound:e}",
                (a as f64 - b as f64).abs()
            );
        }
    }
    for (idx, (a, b)) in y_scalar.iter().zip(&y_simd).enumerate() {
        if idx % dims.y_stride >= dims.rows {
            assert_eq!(
                (a.to_bits(), b.to_bits()),
                (SENTINEL.to_bits(), SENTINEL.to_bits()),
                "{name}: seed {seed:#x}, {dims:?}: gap y[{idx}] was written"
            );
        }
    }
}

fn for_each_case(mut case: impl FnMut(u64, Mode, MatmulDims, &mut StdRng)) {
    for &seed in &SEEDS {
        for mode in MODES {
            let mut rng = StdRng::seed_from_u64(seed ^ mode as u64);
            for dims in shapes() {
                case(seed, mode, dims, &mut rng);
            }
        }
    }
}

#[test]
fn q4k_q8k_bit_exact_with_scalar() {
    if skip_unless_avx512("q4k_q8k_bit_exact_with_scalar") {
        return;
    }
    for_each_case(|seed, mode, dims, rng| {
        let nb = dims.blocks_per_row();
        let w: Vec<BlockQ4K> = (0..dims.rows * nb).map(|_| random_q4k(rng, mode)).collect();
        let xq: Vec<BlockQ8K> = (0..dims.n * nb).map(|_| random_q8k(rng, mode)).collect();
        check_q8k_exact("q4k_q8k", seed, mode, dims, &w, &xq, matmul_q4k_q8k);
    });
}

#[test]
fn q6k_q8k_bit_exact_with_scalar() {
    if skip_unless_avx512("q6k_q8k_bit_exact_with_scalar") {
        return;
    }
    for_each_case(|seed, mode, dims, rng| {
        let nb = dims.blocks_per_row();
        let w: Vec<BlockQ6K> = (0..dims.rows * nb).map(|_| random_q6k(rng, mode)).collect();
        let xq: Vec<BlockQ8K> = (0..dims.n * nb).map(|_| random_q8k(rng, mode)).collect();
        check_q8k_exact("q6k_q8k", seed, mode, dims, &w, &xq, matmul_q6k_q8k);
    });
}

#[test]
fn q4k_f32_within_reassociation_bound() {
    if skip_unless_avx512("q4k_f32_within_reassociation_bound") {
        return;
    }
    for_each_case(|seed, mode, dims, rng| {
        let nb = dims.blocks_per_row();
        let w: Vec<BlockQ4K> = (0..dims.rows * nb).map(|_| random_q4k(rng, mode)).collect();
        let x = random_activations(rng, mode, dims.n * dims.k);
        check_f32_bound(
            "q4k_f32",
            seed,
            mode,
            dims,
            &w,
            &x,
            BlockQ4K::dequantize_row,
            matmul_q4k_f32,
        );
    });
}

#[test]
fn q6k_f32_within_reassociation_bound() {
    if skip_unless_avx512("q6k_f32_within_reassociation_bound") {
        return;
    }
    for_each_case(|seed, mode, dims, rng| {
        let nb = dims.blocks_per_row();
        let w: Vec<BlockQ6K> = (0..dims.rows * nb).map(|_| random_q6k(rng, mode)).collect();
        let x = random_activations(rng, mode, dims.n * dims.k);
        check_f32_bound(
            "q6k_f32",
            seed,
            mode,
            dims,
            &w,
            &x,
            BlockQ6K::dequantize_row,
            matmul_q6k_f32,
        );
    });
}

/// The dequantize helper the bound relies on must see the same weights the kernels see: a
/// weight row quantized from real data, multiplied by scalar, matches the f64 dot of the
/// dequantized row to within the bound (guards the bound's premise, not the SIMD code).
#[test]
fn f32_bound_premise_holds_for_scalar() {
    let mut rng = StdRng::seed_from_u64(7);
    let k = 2048;
    let src = random_activations(&mut rng, Mode::Random, k);
    let x = random_activations(&mut rng, Mode::Random, k);
    let mut w = vec![BlockQ4K::default(); k / QK_K];
    BlockQ4K::quantize_row(&src, &mut w);
    let mut wf = vec![0f32; k];
    BlockQ4K::dequantize_row(&w, &mut wf);
    let exact: f64 = wf.iter().zip(&x).map(|(&a, &b)| a as f64 * b as f64).sum();
    let abs: f64 = wf
        .iter()
        .zip(&x)
        .map(|(&a, &b)| (a as f64 * b as f64).abs())
        .sum();
    let mut y = [0f32];
    matmul_q4k_f32(Isa::Scalar, &x, &w, &mut y, MatmulDims::new(1, k, 1));
    assert!((y[0] as f64 - exact).abs() <= gamma(k + 2) * abs, "seed 7");
}

// ---------------------------------------------------------------------------------------------
// Speed: `cargo test --release -p kernels --test matmul_avx512 -- --ignored --nocapture`
// ---------------------------------------------------------------------------------------------

/// CPU time this thread has run, in ns (Linux `schedstat`). Other processes share the 2 cores,
/// so wall-clock time would count the time this thread spends descheduled.
fn thread_cpu_ns() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    text.split_whitespace().next()?.parse().ok()
}

/// Fastest ns per call among timed batches of about 20 ms of CPU time each; the minimum is the
/// figure least disturbed by the other processes sharing the machine.
fn time_ns(mut call: impl FnMut()) -> f64 {
    use std::time::Instant;
    let wall = Instant::now();
    let now = || thread_cpu_ns().unwrap_or_else(|| wall.elapsed().as_nanos() as u64);
    call();
    let start = now();
    let mut reps = 0u64;
    while now() - start < 20_000_000 {
        call();
        reps += 1;
    }
    let per_batch = reps.max(1);
    (0..10)
        .map(|_| {
            let t = now();
            for _ in 0..per_batch {
                call();
            }
            (now() - t) as f64 / per_batch as f64
        })
        .fold(f64::INFINITY, f64::min)
}

#[test]
#[ignore = "benchmark; run with --ignored --nocapture (release build)"]
fn bench_avx512_vs_scalar() {
    if skip_unless_avx512("bench_avx512_vs_scalar") {
        return;
    }
    let (k, rows) = (2048, 2048);
    let nb = k / QK_K;
    let mut rng = StdRng::seed_from_u64(1);
    let w4: Vec<BlockQ4K> = (0..rows * nb)
        .map(|_| random_q4k(&mut rng, Mode::Random))
        .collect();
    let w6: Vec<BlockQ6K> = (0..rows * nb)
        .map(|_| random_q6k(&mut rng, Mode::Random))
        .collect();
    println!("k={k} rows={rows}; GB/s counts weight bytes once per call");
    println!(
        "{:<8} {:<7} {:>3} {:>14} {:>8} {:>14} {:>8} {:>7}",
        "format", "design", "n", "scalar ns", "GB/s", "avx512 ns", "GB/s", "speedup"
    );
    for n in [1, 16] {
        let dims = MatmulDims::new(n, k, rows);
        let x = random_activations(&mut rng, Mode::Random, n * k);
        let mut xq = vec![BlockQ8K::default(); n * nb];
        BlockQ8K::quantize_row(&x, &mut xq);
        let mut y = vec![0f32; n * rows];
        let report = |format: &str, design: &str, bytes: usize, ns: [f64; 2]| {
            println!(
                "{format:<8} {design:<7} {n:>3} {:>14.0} {:>8.2} {:>14.0} {:>8.2} {:>6.1}x",
                ns[0],
                bytes as f64 / ns[0],
                ns[1],
                bytes as f64 / ns[1],
                ns[0] / ns[1]
            );
        };
        let q4_bytes = std::mem::size_of_val(w4.as_slice());
        let q6_bytes = std::mem::size_of_val(w6.as_slice());
        let isas = [Isa::Scalar, Isa::Avx512];
        report(
            "q4_K",
            "f32",
            q4_bytes,
            isas.map(|isa| time_ns(|| matmul_q4k_f32(isa, &x, &w4, &mut y, dims))),
        );
        report(
            "q4_K",
            "q8k",
            q4_bytes,
            isas.map(|isa| time_ns(|| matmul_q4k_q8k(isa, &xq, &w4, &mut y, dims))),
        );
        report(
            "q6_K",
            "f32",
            q6_bytes,
            isas.map(|isa| time_ns(|| matmul_q6k_f32(isa, &x, &w6, &mut y, dims))),
        );
        report(
            "q6_K",
            "q8k",
            q6_bytes,
            isas.map(|isa| time_ns(|| matmul_q6k_q8k(isa, &xq, &w6, &mut y, dims))),
        );
    }
}
