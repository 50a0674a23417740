//! `harness verify --self-test`: the gate must be able to fail.
//!
//! Each planted bug lives in a test-only copy of a kernel written here (the real kernels are
//! never modified). The copy is run through exactly the checks `verify` applies to a real
//! variant; the self-test passes only if every planted bug is caught.

use super::matmul::{
    case_strategy, check_f32_case, check_q8k_case, panel_case_strategy, x8_case_strategy,
    F32Kernel, Q8kKernel,
};
use super::ops::{self, PlantedOp};
use super::{quantizers, run_property, PropertyOutcome};
use crate::planted_attention::{flash_attention_planted, AttentionBug};
use crate::planted_ops::{
    planted_exp_unsplit_ln2, planted_quantize_q8k, planted_rope_table_base_ignored, Q8kBug,
};
use kernels::attention::AttentionDims;
use kernels::matmul::{amx, x8, MatmulDims};
use kernels::quant::{q4k_scale_min, BlockQ4K, BlockQ6K, BlockQ8K, QK_K};
use kernels::Isa;
use std::io::Write;
use std::ops::Range;

/// Bugs planted into copies of the Q4_K matmul.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MatmulBug {
    /// Sub-blocks 4..7 read their scale/min from the low 4 bits only (high bits dropped).
    HighScalesWrong,
    /// Sub-block 2c read from the high nibbles and 2c+1 from the low ones.
    NibbleHalvesSwapped,
    /// The `dmin * m` term left out.
    MinsIgnored,
    /// The last block of every row skipped.
    LastBlockDropped,
    /// An 8-lane integer reduction that adds lane 6 twice instead of lanes 6 and 7.
    WrongLane,
}

impl MatmulBug {
    pub const ALL: [MatmulBug; 5] = [
        MatmulBug::HighScalesWrong,
        MatmulBug::NibbleHalvesSwapped,
        MatmulBug::MinsIgnored,
        MatmulBug::LastBlockDropped,
        MatmulBug::WrongLane,
    ];
}

fn scale_min(bug: MatmulBug, j: usize, scales: &[u8; 12]) -> (u8, u8) {
    if bug == MatmulBug::HighScalesWrong && j >= 4 {
        (scales[j + 4] & 0xF, scales[j + 4] >> 4)
    } else {
        q4k_scale_min(j, scales)
    }
}

fn nibble(bug: MatmulBug, qs: &[u8; 128], j: usize, l: usize) -> u8 {
    let high = (j % 2 == 1) != (bug == MatmulBug::NibbleHalvesSwapped);
    let byte = qs[32 * (j / 2) + l];
    if high {
        byte >> 4
    } else {
        byte & 0xF
    }
}

fn blocks_used(bug: MatmulBug, nb: usize) -> usize {
    if bug == MatmulBug::LastBlockDropped {
        nb - 1
    } else {
        nb
    }
}

/// Buggy copy of the f32-design Q4_K matmul.
pub fn planted_q4k_f32(bug: MatmulBug, x: &[f32], w: &[BlockQ4K], y: &mut [f32], dims: MatmulDims) {
    let nb = dims.blocks_per_row();
    for r in 0..dims.rows {
        for i in 0..dims.n {
            let mut acc = 0f32;
            for b in 0..blocks_used(bug, nb) {
                let block = &w[r * nb + b];
                let (d, dmin) = (block.d.to_f32(), block.dmin.to_f32());
                for j in 0..8 {
                    let (sc, m) = scale_min(bug, j, &block.scales);
                    let min = if bug == MatmulBug::MinsIgnored {
                        0.0
                    } else {
                        dmin * m as f32
                    };
                    for l in 0..32 {
                        let q = nibble(bug, &block.qs, j, l) as f32;
                        acc += (d * sc as f32 * q - min) * x[i * dims.k + b * QK_K + 32 * j + l];
                    }
                }
            }
            y[i * dims.y_stride + r] = acc;
        }
    }
}

/// Buggy copy of the q8k-design Q4_K matmul, its integer dot done in 8 emulated lanes.
pub fn planted_q4k_q8k(
    bug: MatmulBug,
    xq: &[BlockQ8K],
    w: &[BlockQ4K],
    y: &mut [f32],
    dims: MatmulDims,
) {
    let nb = dims.blocks_per_row();
    for r in 0..dims.rows {
        for i in 0..dims.n {
            let mut acc = 0f32;
            for b in 0..blocks_used(bug, nb) {
                let (wb, xb) = (&w[r * nb + b], &xq[i * nb + b]);
                let (mut sumi, mut summ) = (0i32, 0i32);
                for j in 0..8 {
                    let (sc, m) = scale_min(bug, j, &wb.scales);
                    let mut lanes = [0i32; 8];
                    for l in 0..32 {
                        let q = nibble(bug, &wb.qs, j, l) as i32;
                        lanes[l % 8] += q * xb.qs[32 * j + l] as i32;
                    }
                    if bug == MatmulBug::WrongLane {
                        lanes[7] = lanes[6];
                    }
                    sumi += sc as i32 * lanes.iter().sum::<i32>();
                    if bug != MatmulBug::MinsIgnored {
                        summ += m as i32 * (xb.bsums[2 * j] as i32 + xb.bsums[2 * j + 1] as i32);
                    }
                }
                let d = wb.d.to_f32() * xb.d;
                let dmin = wb.dmin.to_f32() * xb.d;
                acc += d * sumi as f32 - dmin * summ as f32;
            }
            y[i * dims.y_stride + r] = acc;
        }
    }
}

/// A copy of the scalar adjacent-pair RoPE with its pairs swapped: it rotates (x[2i+1], x[2i]).
pub fn planted_rope_pairs_swapped(x: &mut [f32], head_dim: usize, cos: &[f32], sin: &[f32]) {
    for head in x.chunks_exact_mut(head_dim) {
        for i in 0..head_dim / 2 {
            let (a, b) = (head[2 * i + 1], head[2 * i]);
            head[2 * i + 1] = a * cos[i] - b * sin[i];
            head[2 * i] = a * sin[i] + b * cos[i];
        }
    }
}

fn outcome_to_result(
    name: String,
    failure: Option<String>,
    cases: u32,
    seed: u64,
) -> SelfTestResult {
    match failure {
        Some(detail) => SelfTestResult {
            name,
            caught: true,
            detail,
        },
        None => SelfTestResult {
            name,
            caught: false,
            detail: format!("passed {cases} cases (seed {seed})"),
        },
    }
}

/// A copy of the f32-design Q6_K matmul whose fourth part of each half (values 96..128) takes
/// the scales of the third (`is + 4` instead of `is + 6`).
pub fn planted_q6k_wrong_scale_pair(x: &[f32], w: &[BlockQ6K], y: &mut [f32], dims: MatmulDims) {
    let nb = dims.blocks_per_row();
    for r in 0..dims.rows {
        for i in 0..dims.n {
            let mut acc = 0f32;
            for b in 0..nb {
                let block = &w[r * nb + b];
                let d = block.d.to_f32();
                for v in 0..QK_K {
                    let mut scale = BlockQ6K::scale_index(v);
                    if v % 128 >= 96 {
                        scale -= 2;
                    }
                    let q = block.q(v) as i32 - 32;
                    acc += d * block.scales[scale] as f32 * q as f32 * x[i * dims.k + b * QK_K + v];
                }
            }
            y[i * dims.y_stride + r] = acc;
        }
    }
}

/// Bugs planted into a test-only copy of the x8 repacking, run through the real x8 kernels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum X8Bug {
    /// Q4_K: each row's mins taken from the next row of the panel (the min term of the wrong
    /// row).
    Q4kMinsFromNextRow,
    /// Q6_K: each scale applied to the neighbouring 16 values (groups 2i and 2i+1 swapped).
    Q6kScalesOnWrongGroup,
}

/// The planted x8 Q4_K call: correct repack, then the bug, then the real kernel.
fn planted_q4k_x8(xq: &[BlockQ8K], w: &[BlockQ4K], y: &mut [f32], dims: MatmulDims) {
    let mut packed =
        x8::repack_q4k(w, dims.rows, 1, Isa::Avx2).expect("x8 cases have whole panels");
    for b in packed.iter_mut() {
        for j in 0..8 {
            b.mins[8 * j..8 * j + 8].rotate_left(1);
        }
    }
    x8::matmul_q4kx8_q8k(Isa::Avx2, xq, &packed, y, dims)
}

fn planted_q6k_x8(xq: &[BlockQ8K], w: &[BlockQ6K], y: &mut [f32], dims: MatmulDims) {
    let mut packed = x8::repack_q6k(w, dims.rows, 1).expect("x8 cases have whole panels");
    for b in packed.iter_mut() {
        for g in (0..16).step_by(2) {
            let (lo, hi) = b.scales.split_at_mut(8 * (g + 1));
            lo[8 * g..].swap_with_slice(&mut hi[..8]);
        }
    }
    x8::matmul_q6kx8_q8k(Isa::Avx2, xq, &packed, y, dims)
}

/// Bugs planted into a test-only copy of the AMX repacking, run through the real AMX kernels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AmxBug {
    /// Q4_K: each row's mins taken from the next row of the 16-row panel.
    Q4kMinsFromNextRow,
    /// Q6_K: within every 4-byte group of a `B` tile, the first two weights swapped (each
    /// multiplies the other's activation).
    Q6kTileBytesSwapped,
}

fn planted_q4k_amx(xq: &[BlockQ8K], w: &[BlockQ4K], y: &mut [f32], dims: MatmulDims) {
    let mut packed = amx::repack_q4k(w, dims.rows, 1).expect("AMX cases have whole panels");
    for b in packed.iter_mut() {
        for j in 0..8 {
            b.mins[16 * j..16 * j + 16].rotate_left(1);
        }
    }
    amx::matmul_q4kx16_q8k(xq, &packed, y, dims)
}

fn planted_q6k_amx(xq: &[BlockQ8K], w: &[BlockQ6K], y: &mut [f32], dims: MatmulDims) {
    let mut packed = amx::repack_q6k(w, dims.rows, 1).expect("AMX cases have whole panels");
    for b in packed.iter_mut() {
        for group in b.q.chunks_exact_mut(4) {
            group.swap(0, 1);
        }
    }
    amx::matmul_q6kx16_q8k(xq, &packed, y, dims)
}

/// One planted bug's outcome.
pub struct SelfTestResult {
    pub name: String,
    pub caught: bool,
    pub detail: String,
}

/// Runs every planted bug through the gate's checks. A bug is caught when the property fails.
pub fn run(cases: u32, seed: u64, out: &mut dyn Write) -> anyhow::Result<Vec<SelfTestResult>> {
    let mut results = Vec::new();
    let scalar_f32 = |x: &[f32], w: &[BlockQ4K], y: &mut [f32], d| {
        kernels::matmul::matmul_q4k_f32(Isa::Scalar, x, w, y, d)
    };
    let scalar_q8k = |x: &[BlockQ8K], w: &[BlockQ4K], y: &mut [f32], d| {
        kernels::matmul::matmul_q4k_q8k(Isa::Scalar, x, w, y, d)
    };
    for bug in MatmulBug::ALL {
        for design in ["f32", "q8k"] {
            // The lane bug is a SIMD-reduction bug: plant it where the integer lanes are.
            if bug == MatmulBug::WrongLane && design == "f32" {
                continue;
            }
            let outcome = if design == "f32" {
                let planted = move |x: &[f32], w: &[BlockQ4K], y: &mut [f32], d| {
                    planted_q4k_f32(bug, x, w, y, d)
                };
                let oracle: F32Kernel<BlockQ4K> = &scalar_f32;
                run_property(case_strategy(), cases, seed, |case| {
                    check_f32_case::<BlockQ4K>(case, &planted, Some(oracle))
                })
            } else {
                let planted = move |x: &[BlockQ8K], w: &[BlockQ4K], y: &mut [f32], d| {
                    planted_q4k_q8k(bug, x, w, y, d)
                };
                let oracle: Q8kKernel<BlockQ4K> = &scalar_q8k;
                run_property(case_strategy(), cases, seed, |case| {
                    check_q8k_case::<BlockQ4K>(case, &planted, Some(oracle))
                })
            };
            let result = outcome_to_result(
                format!("matmul_q4k/{design}: {bug:?}"),
                outcome.failure,
                cases,
                seed,
            );
            report(out, &result)?;
            results.push(result);
        }
    }
    let scalar_q6k = |x: &[f32], w: &[BlockQ6K], y: &mut [f32], d| {
        kernels::matmul::matmul_q6k_f32(Isa::Scalar, x, w, y, d)
    };
    let oracle: F32Kernel<BlockQ6K> = &scalar_q6k;
    let outcome = run_property(case_strategy(), cases, seed, |case| {
        check_f32_case::<BlockQ6K>(case, &planted_q6k_wrong_scale_pair, Some(oracle))
    });
    let result = outcome_to_result(
        "matmul_q6k/f32: WrongScalePair".into(),
        outcome.failure,
        cases,
        seed,
    );
    report(out, &result)?;
    results.push(result);
    // The x8 bugs need the x8 kernels, which need AVX2; without it they cannot be planted
    // (and the gate's x8 rows are SKIPPED).
    if Isa::Avx2.is_available() {
        let q4k_oracle = |x: &[BlockQ8K], w: &[BlockQ4K], y: &mut [f32], d| {
            kernels::matmul::matmul_q4k_q8k(Isa::Scalar, x, w, y, d)
        };
        let q6k_oracle = |x: &[BlockQ8K], w: &[BlockQ6K], y: &mut [f32], d| {
            kernels::matmul::matmul_q6k_q8k(Isa::Scalar, x, w, y, d)
        };
        let runs = [
            (
                X8Bug::Q4kMinsFromNextRow,
                run_property(x8_case_strategy(), cases, seed, |case| {
                    check_q8k_case::<BlockQ4K>(case, &planted_q4k_x8, Some(&q4k_oracle))
                }),
            ),
            (
                X8Bug::Q6kScalesOnWrongGroup,
                run_property(x8_case_strategy(), cases, seed, |case| {
                    check_q8k_case::<BlockQ6K>(case, &planted_q6k_x8, Some(&q6k_oracle))
                }),
            ),
        ];
        for (bug, outcome) in runs {
            let family = match bug {
                X8Bug::Q4kMinsFromNextRow => "matmul_q4k",
                X8Bug::Q6kScalesOnWrongGroup => "matmul_q6k",
            };
            let result = outcome_to_result(
                format!("{family}/q8k-x8: {bug:?}"),
                outcome.failure,
                cases,
                seed,
            );
            report(out, &result)?;
            results.push(result);
        }
    }
    // The AMX bugs need the AMX kernels; where AMX does not run they cannot be planted (and
    // the gate's q8k-amx rows are SKIPPED with the same reason).
    if let Some(why) = amx::unavailable_reason() {
        writeln!(out, "SKIPPED   q8k-amx planted bugs: {why}")?;
    } else {
        let q4k_oracle = |x: &[BlockQ8K], w: &[BlockQ4K], y: &mut [f32], d| {
            kernels::matmul::matmul_q4k_q8k(Isa::Scalar, x, w, y, d)
        };
        let q6k_oracle = |x: &[BlockQ8K], w: &[BlockQ6K], y: &mut [f32], d| {
            kernels::matmul::matmul_q6k_q8k(Isa::Scalar, x, w, y, d)
        };
        let runs = [
            (
                "matmul_q4k",
                AmxBug::Q4kMinsFromNextRow,
                run_property(panel_case_strategy(amx::ROWS), cases, seed, |case| {
                    check_q8k_case::<BlockQ4K>(case, &planted_q4k_amx, Some(&q4k_oracle))
                }),
            ),
            (
                "matmul_q6k",
                AmxBug::Q6kTileBytesSwapped,
                run_property(panel_case_strategy(amx::ROWS), cases, seed, |case| {
                    check_q8k_case::<BlockQ6K>(case, &planted_q6k_amx, Some(&q6k_oracle))
                }),
            ),
        ];
        for (family, bug, outcome) in runs {
            let result = outcome_to_result(
                format!("{family}/q8k-amx: {bug:?}"),
                outcome.failure,
                cases,
                seed,
            );
            report(out, &result)?;
            results.push(result);
        }
    }
    for bug in AttentionBug::ALL {
        let planted = move |q: &[f32],
                            k: &[f32],
                            v: &[f32],
                            o: &mut [f32],
                            s: &mut [f32],
                            d: AttentionDims,
                            h: Range<usize>| {
            flash_attention_planted(q, k, v, o, s, d, h, bug)
        };
        let outcome = super::attention::run_checks::<f32>(&planted, None, cases, seed);
        let result = outcome_to_result(
            format!("attention/flash: {bug:?}"),
            outcome.failure,
            cases,
            seed,
        );
        report(out, &result)?;
        results.push(result);
    }
    let mut planted_runs: Vec<(String, PropertyOutcome)> = vec![
        (
            "rope_adjacent: PairsSwapped".into(),
            ops::run_checks(
                "rope_adjacent",
                Isa::Scalar,
                cases,
                seed,
                Some(PlantedOp::Rope(&planted_rope_pairs_swapped)),
            ),
        ),
        (
            "exp: Ln2NotSplit".into(),
            ops::run_checks(
                "exp",
                Isa::Scalar,
                cases,
                seed,
                Some(PlantedOp::Exp(&planted_exp_unsplit_ln2)),
            ),
        ),
        (
            "rope_table: BaseIgnored".into(),
            ops::run_rope_table_checks(cases, seed, &planted_rope_table_base_ignored),
        ),
    ];
    for bug in Q8kBug::ALL {
        let planted = move |x: &[f32], b: &mut [BlockQ8K]| planted_quantize_q8k(bug, x, b);
        planted_runs.push((
            format!("quantize_q8k: {bug:?}"),
            quantizers::run_q8k_checks(cases, seed, &planted),
        ));
    }
    for (name, outcome) in planted_runs {
        let result = outcome_to_result(name, outcome.failure, cases, seed);
        report(out, &result)?;
        results.push(result);
    }
    for bug in super::planted32::Bug32::ALL {
        let outcome = super::planted32::run_bug(bug, cases, seed);
        let result = outcome_to_result(
            format!("{}: {bug:?}", bug.family()),
            outcome.failure,
            cases,
            seed,
        );
        report(out, &result)?;
        results.push(result);
    }
    Ok(results)
}

fn report(out: &mut dyn Write, result: &SelfTestResult) -> anyhow::Result<()> {
    writeln!(
        out,
        "{:<40} {:<7} {}",
        result.name,
        if result.caught { "CAUGHT" } else { "MISSED" },
        result.detail
    )?;
    Ok(())
}
