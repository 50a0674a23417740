//! The NEON Q4_K / Q6_K matmul kernels against the scalar oracle on identical inputs.
//!
//! - `q8k` design: integer block products and the same f32 combine in the same order, so the
//!   NEON result must equal scalar bit for bit.
//! - `f32` design: same dequantized weights, different summation order, so the results agree to
//!   the error bound derived at [`f32_tolerance`].
//!
//! Inputs mix random blocks with adversarial ones (saturated 6-bit scales and mins, the packed
//! high bits of sub-blocks 4..7, all-0 / all-15 nibbles, subnormal and extreme f16 scales, Q8
//! values at +/-127, Q6 scales at -128 / 127). Every failure names the seed and the case; set
//! `KERNELS_TEST_SEED` to rerun with another seed. Cases run from the smallest shape up and stop
//! at the first failure, so the one reported is the smallest failing case of its kind.
#![cfg(target_arch = "aarch64")]

use half::f16;
use kernels::matmul::{matmul_q4k_f32, matmul_q4k_q8k, matmul_q6k_f32, matmul_q6k_q8k, MatmulDims};
use kernels::quant::{q4k_scale_min, BlockQ4K, BlockQ6K, BlockQ8K, QuantBlock, QK_K};
use kernels::Isa;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, StandardNormal};

const DEFAULT_SEED: u64 = 0x4E45_4F4E_5136_4B00;

const KS: [usize; 3] = [QK_K, 2 * QK_K, 2048 + QK_K];
const ROWS: [usize; 3] = [1, 3, 17];
const NS: [usize; 4] = [1, 2, 3, 5];
/// Extra output columns between activation rows; they must be left untouched.
const Y_GAP: usize = 2;
/// Fills `y` before each call; any gap slot that changes was written out of bounds.
const SENTINEL_BITS: u32 = 0x7FC0_5EED;

fn seed() -> u64 {
    match std::env::var("KERNELS_TEST_SEED") {
        Ok(s) => s
            .parse()
            .unwrap_or_else(|_| panic!("KERNELS_TEST_SEED={s:?} is not a u64")),
        Err(_) => DEFAULT_SEED,
    }
}

fn neon_available() -> bool {
    // On aarch64 NEON is baseline; a build where it is missing is worth a loud failure.
    assert!(
        Isa::Neon.is_available(),
        "NEON unavailable on an aarch64 build: {:?}",
        Isa::Neon.unavailable_reason()
    );
    true
}

/// How the weight blocks of a case are drawn.
#[derive(Clone, Copy, Debug, PartialEq)]
enum WeightKind {
    /// Uniformly random bytes everywhere, moderate f16 scales.
    Random,
    /// Q4_K: every scale and min 63. Q6_K: every scale -128.
    MaxScales,
    /// Q4_K: the 2 packed high bits of every scale and min of sub-blocks 4..7 set.
    /// Q6_K: every scale 127.
    HighBits,
    /// Every quantized value at its minimum (nibble 0, Q6 q = 0 i.e. -32).
    ValuesMin,
    /// Every quantized value at its maximum (nibble 15, Q6 q = 63 i.e. +31).
    ValuesMax,
    /// f16 scales at the subnormal end (smallest subnormal, largest subnormal, zero).
    SubnormalD,
    /// f16 scales at +/-65504.
    ExtremeD,
    /// Each block drawn from one of the kinds above.
    Mixed,
}

const WEIGHT_KINDS: [WeightKind; 8] = [
    WeightKind::Random,
    WeightKind::MaxScales,
    WeightKind::HighBits,
    WeightKind::ValuesMin,
    WeightKind::ValuesMax,
    WeightKind::SubnormalD,
    WeightKind::ExtremeD,
    WeightKind::Mixed,
];

/// How the activations of a case are drawn.
#[derive(Clone, Copy, Debug, PartialEq)]
enum ActKind {
    /// Q8: random in -127..=127. f32: standard normal.
    Random,
    /// Q8: every value +127. f32: every value large positive.
    AllPositive,
    /// Q8: every value -127. f32: every value large negative.
    AllNegative,
    /// Q8: alternating +127 / -128 (the i8 extremes). f32: alternating-sign, wide magnitudes.
    Alternating,
    /// Each block drawn from one of the kinds above.
    Mixed,
}

const ACT_KINDS: [ActKind; 5] = [
    ActKind::Random,
    ActKind::AllPositive,
    ActKind::AllNegative,
    ActKind::Alternating,
    ActKind::Mixed,
];

#[derive(Clone, Copy, Debug)]
struct Case {
    index: usize,
    weights: WeightKind,
    acts: ActKind,
    dims: MatmulDims,
}

/// Every shape with every weight kind; activation kinds cycle so each weight kind meets each.
/// Ordered smallest work first.
fn cases() -> Vec<Case> {
    let mut shapes = Vec::new();
    for &k in &KS {
        for &rows in &ROWS {
            for &n in &NS {
                shapes.push(MatmulDims {
                    n,
                    k,
                    rows,
                    y_stride: rows + Y_GAP,
                });
            }
        }
    }
    shapes.sort_by_key(|d| d.n * d.k * d.rows);
    let mut out = Vec::new();
    for (s, dims) in shapes.into_iter().enumerate() {
        for (w, &weights) in WEIGHT_KINDS.iter().enumerate() {
            out.push(Case {
                index: out.len(),
                weights,
                acts: ACT_KINDS[(s + w) % ACT_KINDS.len()],
                dims,
            });
        }
    }
    out
}

fn case_rng(seed: u64, case: &Case) -> StdRng {
    StdRng::seed_from_u64(seed ^ (case.index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

fn moderate_f16(rng: &mut impl Rng) -> f16 {
    let magnitude = 2f32.powf(rng.gen_range(-14.0..-4.0));
    f16::from_f32(if rng.gen() { magnitude } else { -magnitude })
}

fn subnormal_f16(rng: &mut impl Rng) -> f16 {
    f16::from_bits([0x0001, 0x03FF, 0x8001, 0x0000, rng.gen_range(1..0x0400)][rng.gen_range(0..5)])
}

fn extreme_f16(rng: &mut impl Rng) -> f16 {
    if rng.gen() {
        f16::MAX
    } else {
        f16::MIN
    }
}

fn concrete(kind: WeightKind, rng: &mut impl Rng) -> WeightKind {
    if kind == WeightKind::Mixed {
        WEIGHT_KINDS[rng.gen_range(0..WEIGHT_KINDS.len() - 1)]
    } else {
        kind
    }
}

/// Packs eight 6-bit scales and mins as FORMATS.md lays them out (written here from the spec,
/// not shared with the crate, and checked against `q4k_scale_min`).
fn pack_q4k_scales(sc: [u8; 8], m: [u8; 8]) -> [u8; 12] {
    let mut out = [0u8; 12];
    for j in 0..4 {
        out[j] = (sc[j] & 63) | ((sc[j + 4] >> 4) << 6);
        out[j + 4] = (m[j] & 63) | ((m[j + 4] >> 4) << 6);
        out[j + 8] = (sc[j + 4] & 0xF) | ((m[j + 4] & 0xF) << 4);
    }
    for j in 0..8 {
        assert_eq!(
            q4k_scale_min(j, &out),
            (sc[j], m[j]),
            "test packer, j = {j}"
        );
    }
    out
}

fn q4k_block(kind: WeightKind, rng: &mut impl Rng) -> BlockQ4K {
    let mut block = BlockQ4K {
        d: moderate_f16(rng),
        dmin: moderate_f16(rng),
        scales: rng.gen(),
        qs: [0; 128],
    };
    rng.fill(&mut block.qs[..]);
    match concrete(kind, rng) {
        WeightKind::Random | WeightKind::Mixed => {}
        WeightKind::MaxScales => block.scales = pack_q4k_scales([63; 8], [63; 8]),
        WeightKind::HighBits => {
            let sc: [u8; 8] = std::array::from_fn(|j| {
                if j >= 4 {
                    48 | rng.gen_range(0..16)
                } else {
                    rng.gen_range(0..64)
                }
            });
            let m: [u8; 8] = std::array::from_fn(|j| {
                if j >= 4 {
                    48 | rng.gen_range(0..16)
                } else {
                    rng.gen_range(0..64)
                }
            });
            block.scales = pack_q4k_scales(sc, m);
        }
        WeightKind::ValuesMin => block.qs = [0x00; 128],
        WeightKind::ValuesMax => block.qs = [0xFF; 128],
        WeightKind::SubnormalD => {
            block.d = subnormal_f16(rng);
            block.dmin = subnormal_f16(rng);
        }
        WeightKind::ExtremeD => {
            block.d = extreme_f16(rng);
            block.dmin = extreme_f16(rng);
            block.scales = pack_q4k_scales([63; 8], [63; 8]);
        }
    }
    block
}

fn q6k_block(kind: WeightKind, rng: &mut impl Rng) -> BlockQ6K {
    let mut block = BlockQ6K {
        ql: [0; 128],
        qh: [0; 64],
        scales: rng.gen(),
        d: moderate_f16(rng),
    };
    rng.fill(&mut block.ql[..]);
    rng.fill(&mut block.qh[..]);
    match concrete(kind, rng) {
        WeightKind::Random | WeightKind::Mixed => {}
        WeightKind::MaxScales => block.scales = [-128; 16],
        WeightKind::HighBits => {
            block.scales = std::array::from_fn(|_| if rng.gen() { 127 } else { -128 })
        }
        WeightKind::ValuesMin => {
            block.ql = [0; 128];
            block.qh = [0; 64];
        }
        WeightKind::ValuesMax => {
            block.ql = [0xFF; 128];
            block.qh = [0xFF; 64];
        }
        WeightKind::SubnormalD => block.d = subnormal_f16(rng),
        WeightKind::ExtremeD => {
            block.d = extreme_f16(rng);
            block.scales = [127; 16];
        }
    }
    block
}

fn concrete_act(kind: ActKind, rng: &mut impl Rng) -> ActKind {
    if kind == ActKind::Mixed {
        ACT_KINDS[rng.gen_range(0..ACT_KINDS.len() - 1)]
    } else {
        kind
    }
}

fn q8k_block(kind: ActKind, rng: &mut impl Rng) -> BlockQ8K {
    let mut block = BlockQ8K {
        d: rng.gen_range(1e-4f32..1e-1) * if rng.gen() { 1.0 } else { -1.0 },
        qs: [0; QK_K],
        bsums: [0; 16],
    };
    match concrete_act(kind, rng) {
        ActKind::Random | ActKind::Mixed => {
            for q in block.qs.iter_mut() {
                *q = rng.gen_range(-127..=127);
            }
        }
        ActKind::AllPositive => block.qs = [127; QK_K],
        ActKind::AllNegative => block.qs = [-127; QK_K],
        ActKind::Alternating => {
            for (i, q) in block.qs.iter_mut().enumerate() {
                *q = if i % 2 == 0 { 127 } else { -128 };
            }
        }
    }
    block.fill_bsums();
    block
}

/// `k` activations. Magnitudes below 2^-20 are flushed to zero so that no nonzero product
/// `w*x` (|w| >= 2^-24 or 0 for both formats) comes near f32's subnormal range, where the
/// relative-error model behind [`f32_tolerance`] would not hold.
fn f32_row(kind: ActKind, k: usize, rng: &mut impl Rng) -> Vec<f32> {
    let mut out = Vec::with_capacity(k);
    for _ in 0..k / QK_K {
        let kind = concrete_act(kind, rng);
        for i in 0..QK_K {
            let normal: f32 = StandardNormal.sample(rng);
            let v = match kind {
                ActKind::Random | ActKind::Mixed => normal,
                ActKind::AllPositive => 100.0 + normal.abs() * 100.0,
                ActKind::AllNegative => -100.0 - normal.abs() * 100.0,
                ActKind::Alternating => {
                    let sign = if i % 2 == 0 { 1.0 } else { -1.0 };
                    sign * normal.abs() * 2f32.powi(rng.gen_range(-8..=10))
                }
            };
            out.push(if v.abs() < 2f32.powi(-20) { 0.0 } else { v });
        }
    }
    out
}

/// gamma(m) = m*u / (1 - m*u), u = 2^-24 (f32 unit roundoff), in f64.
use kernels::bounds::gamma;

/// Allowed |y_neon - y_scalar| for one output of the f32 design.
///
/// Derivation. Both variants first compute the same f32 weights w_i: Q4_K `fl(d*sc)*q -
/// fl(dmin*m)` (scalar: multiply then subtract; NEON: one FMA; the product has at most
/// 11+6+4 significant bits, so it is exact and both round only the subtraction, identically),
/// Q6_K `fl(d*sc)*(q-32)` (exact). They then evaluate S = sum_{i<k} w_i*x_i in f32 in different
/// orders. In the standard model fl(a op b) = (a op b)(1+delta), |delta| <= u, a sum of k
/// products in which each term w_i*x_i passes through at most m roundings satisfies
/// |fl(S) - S| <= gamma(m) * sum |w_i*x_i| (Higham, Accuracy and Stability of Numerical
/// Algorithms, 2nd ed., sec. 3.1), whatever the order.
/// - scalar: 1 rounding for the product, <= 256 for the sequential in-block sum, <= k/256 for
///   accumulating blocks into y: m <= 1 + 256 + k/256 <= k + 2 for k >= 256.
/// - NEON: each FMA rounds once; a term goes through <= k/16 FMAs of its accumulator lane, then
///   2 vector adds and <= 2 adds of the across-lane sum: m <= k/16 + 4 <= k + 2.
///
/// Both are within gamma(k+2) * sum|w_i x_i| of S, hence within twice that of each other.
/// The model needs no underflow and no overflow: nonzero |w_i| >= 2^-24 (d, dmin are multiples
/// of 2^-24, so is the exact w_i, and rounding keeps it >= 2^-24), |x_i| is 0 or >= 2^-20, and
/// |w_i| <= 65504*63*16, |x_i| < 10^4 keep every partial sum far below f32::MAX. `sum_abs` is computed in f64 from the f32 weights (the products are exact in f64;
/// the sum's own relative error, < k*2^-53, is ~2^-29 of the tolerance).
fn f32_tolerance(k: usize, sum_abs: f64) -> f64 {
    2.0 * gamma(k + 2) * sum_abs
}

fn output_index(dims: &MatmulDims, i: usize, r: usize) -> usize {
    i * dims.y_stride + r
}

fn fresh_output(dims: &MatmulDims) -> Vec<f32> {
    vec![f32::from_bits(SENTINEL_BITS); (dims.n - 1) * dims.y_stride + dims.rows + Y_GAP]
}

/// Panics (with the context) if a slot outside the output positions was written.
fn check_gaps(y: &[f32], dims: &MatmulDims, context: &str) {
    for (idx, v) in y.iter().enumerate() {
        let (i, r) = (idx / dims.y_stride, idx % dims.y_stride);
        let is_output = i < dims.n && r < dims.rows;
        assert!(
            is_output || v.to_bits() == SENTINEL_BITS,
            "{context}: wrote outside the output at index {idx} (row {i}, column {r})"
        );
    }
}

/// Exact (to_bits) equality of the q8k design with scalar over all cases.
fn check_q8k<W: Copy>(
    name: &str,
    make_block: impl Fn(WeightKind, &mut StdRng) -> W,
    matmul: impl Fn(Isa, &[BlockQ8K], &[W], &mut [f32], MatmulDims),
) {
    assert!(neon_available());
    let seed = seed();
    for case in cases() {
        let mut rng = case_rng(seed, &case);
        let dims = case.dims;
        let nb = dims.k / QK_K;
        let w: Vec<W> = (0..dims.rows * nb)
            .map(|_| make_block(case.weights, &mut rng))
            .collect();
        let xq: Vec<BlockQ8K> = (0..dims.n * nb)
            .map(|_| q8k_block(case.acts, &mut rng))
            .collect();
        let context = format!("{name} q8k: seed = {seed}, case = {case:?}");
        let mut y_scalar = fresh_output(&dims);
        let mut y_neon = fresh_output(&dims);
        matmul(Isa::Scalar, &xq, &w, &mut y_scalar, dims);
        matmul(Isa::Neon, &xq, &w, &mut y_neon, dims);
        check_gaps(&y_neon, &dims, &context);
        for i in 0..dims.n {
            for r in 0..dims.rows {
                let idx = output_index(&dims, i, r);
                assert_eq!(
                    y_neon[idx].to_bits(),
                    y_scalar[idx].to_bits(),
                    "{context}: y[{i}][{r}] neon {} != scalar {}",
                    y_neon[idx],
                    y_scalar[idx]
                );
            }
        }
    }
}

/// The f32 design against scalar within [`f32_tolerance`] over all cases.
fn check_f32<W: QuantBlock>(
    name: &str,
    make_block: impl Fn(WeightKind, &mut StdRng) -> W,
    matmul: impl Fn(Isa, &[f32], &[W], &mut [f32], MatmulDims),
) {
    assert!(neon_available());
    let seed = seed();
    for case in cases() {
        let mut rng = case_rng(seed, &case);
        let dims = case.dims;
        let nb = dims.k / QK_K;
        let w: Vec<W> = (0..dims.rows * nb)
            .map(|_| make_block(case.weights, &mut rng))
            .collect();
        let x: Vec<f32> = (0..dims.n)
            .flat_map(|_| f32_row(case.acts, dims.k, &mut rng))
            .collect();
        let mut w_values = vec![0f32; dims.rows * dims.k];
        W::dequantize_row(&w, &mut w_values);
        let context = format!("{name} f32: seed = {seed}, case = {case:?}");
        let mut y_scalar = fresh_output(&dims);
        let mut y_neon = fresh_output(&dims);
        matmul(Isa::Scalar, &x, &w, &mut y_scalar, dims);
        matmul(Isa::Neon, &x, &w, &mut y_neon, dims);
        check_gaps(&y_neon, &dims, &context);
        for i in 0..dims.n {
            let x_row = &x[i * dims.k..][..dims.k];
            for r in 0..dims.rows {
                let w_row = &w_values[r * dims.k..][..dims.k];
                let sum_abs: f64 = w_row
                    .iter()
                    .zip(x_row)
                    .map(|(&wv, &xv)| (wv as f64 * xv as f64).abs())
                    .sum();
                let idx = output_index(&dims, i, r);
                let (neon, scalar) = (y_neon[idx], y_scalar[idx]);
                let tolerance = f32_tolerance(dims.k, sum_abs);
                let error = (neon as f64 - scalar as f64).abs();
                assert!(
                    error <= tolerance,
                    "{context}: y[{i}][{r}] neon {neon} vs scalar {scalar}: \
                     |diff| {error:e} > tolerance {tolerance:e} (sum|w x| = {sum_abs:e})"
                );
            }
        }
    }
}

#[test]
fn q4k_q8k_neon_is_bit_exact_with_scalar() {
    check_q8k("q4_K", q4k_block, |isa, xq, w, y, dims| {
        matmul_q4k_q8k(isa, xq, w, y, dims)
    });
}

#[test]
fn q6k_q8k_neon_is_bit_exact_with_scalar() {
    check_q8k("q6_K", q6k_block, |isa, xq, w, y, dims| {
        matmul_q6k_q8k(isa, xq, w, y, dims)
    });
}

#[test]
fn q4k_f32_neon_is_within_the_reassociation_bound() {
    check_f32("q4_K", q4k_block, |isa, x, w, y, dims| {
        matmul_q4k_f32(isa, x, w, y, dims)
    });
}

#[test]
fn q6k_f32_neon_is_within_the_reassociation_bound() {
    check_f32("q6_K", q6k_block, |isa, x, w, y, dims| {
        matmul_q6k_f32(isa, x, w, y, dims)
    });
}

/// The comparisons are not vacuous: a weight off by 8 nibble steps at the largest activation
/// (the size of error a wrong nibble order or a wrong scale lane makes) lies far outside the f32
/// tolerance, and the q8k comparison sees any change at all.
#[test]
fn a_wrong_nibble_is_detected() {
    assert!(neon_available());
    let mut rng = StdRng::seed_from_u64(seed());
    let dims = MatmulDims::new(1, QK_K, 1);
    let mut block = q4k_block(WeightKind::Random, &mut rng);
    block.d = f16::from_f32(0.01);
    block.scales = pack_q4k_scales([63; 8], [0; 8]);
    let x = f32_row(ActKind::Random, dims.k, &mut rng);
    let (i_max, _) = x.iter().enumerate().fold((0, 0f32), |best, (i, v)| {
        if v.abs() > best.1 {
            (i, v.abs())
        } else {
            best
        }
    });
    let mut changed = block;
    // Value i lives in chunk i/64: the low nibble of byte l for l < 32, else the high nibble
    // of byte l-32 (FORMATS.md).
    let (chunk, l) = (i_max / 64, i_max % 64);
    changed.qs[32 * chunk + l % 32] ^= if l < 32 { 0x08 } else { 0x80 };

    let mut w_values = vec![0f32; dims.k];
    BlockQ4K::dequantize_row(&[block], &mut w_values);
    let sum_abs: f64 = w_values
        .iter()
        .zip(&x)
        .map(|(&a, &b)| (a as f64 * b as f64).abs())
        .sum();
    let (mut y, mut y_changed) = ([0f32; 1], [0f32; 1]);
    matmul_q4k_f32(Isa::Neon, &x, &[block], &mut y, dims);
    matmul_q4k_f32(Isa::Neon, &x, &[changed], &mut y_changed, dims);
    let shift = (y[0] as f64 - y_changed[0] as f64).abs();
    let tolerance = f32_tolerance(dims.k, sum_abs);
    assert!(
        shift > 10.0 * tolerance,
        "an 8-step nibble change ({shift:e}) is within 10x the f32 tolerance ({tolerance:e})"
    );

    let xq = [q8k_block(ActKind::Random, &mut rng)];
    matmul_q4k_q8k(Isa::Neon, &xq, &[block], &mut y, dims);
    matmul_q4k_q8k(Isa::Neon, &xq, &[changed], &mut y_changed, dims);
    assert_ne!(y[0].to_bits(), y_changed[0].to_bits());
}
