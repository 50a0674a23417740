//! Planted bugs in test-only copies of the 32-block kernels and quantizers, for
//! `verify --self-test`: each is the kind of mistake a SIMD port makes, written here in plain
//! Rust (the real kernels are never touched) and run through exactly the checks of
//! [`super::block32`].

use super::block32::{
    case_strategy, check_f32_case, check_int_case, check_quant_case, quant_strategy, ActBlocks,
    Weight32,
};
use super::{run_property, PropertyOutcome};
use crate::registry::Design;
use half::f16;
use kernels::matmul::block32::Block32;
use kernels::matmul::MatmulDims;
use kernels::quant::{BlockQ4_0, BlockQ4_1, BlockQ5_0, BlockQ8_0, BlockQ8_1};

/// The bugs, one or more per new family.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bug32 {
    /// Q8_0 weights: -128 saturated to -127 (a saturating `abs`).
    Q8_0MinusOneTwentyEightSaturated,
    /// Q4_0: the nibble halves swapped (values 0..16 read from the high nibbles).
    Q4_0NibbleHalvesSwapped,
    /// Q5_0: the high bit of value `l` taken from bit `l + 1`.
    Q5_0HighBitWrongValue,
    /// Q4_1, f32 design: the min `m` ignored.
    Q4_1MinIgnored,
    /// Q4_1 x Q8_1: the `m * s` term dropped.
    Q8_1SumTermDropped,
    /// F16 weights: the conversion truncates the two low mantissa bits.
    F16ConversionTruncating,
    /// Q8_0 quantizer: ties rounded to even instead of away from zero.
    Q8_0QuantizerTiesToEven,
    /// Q8_1 quantizer: `s` from the f16-rounded `d` instead of the f32 one.
    Q8_1SumFromRoundedD,
}

impl Bug32 {
    pub const ALL: [Bug32; 8] = [
        Bug32::Q8_0MinusOneTwentyEightSaturated,
        Bug32::Q4_0NibbleHalvesSwapped,
        Bug32::Q5_0HighBitWrongValue,
        Bug32::Q4_1MinIgnored,
        Bug32::Q8_1SumTermDropped,
        Bug32::F16ConversionTruncating,
        Bug32::Q8_0QuantizerTiesToEven,
        Bug32::Q8_1SumFromRoundedD,
    ];

    /// `family/design` as the report names it.
    pub fn family(self) -> &'static str {
        match self {
            Bug32::Q8_0MinusOneTwentyEightSaturated => "matmul_q8_0/q8_0",
            Bug32::Q4_0NibbleHalvesSwapped => "matmul_q4_0/q8_0",
            Bug32::Q5_0HighBitWrongValue => "matmul_q5_0/q8_0",
            Bug32::Q4_1MinIgnored => "matmul_q4_1/f32",
            Bug32::Q8_1SumTermDropped => "matmul_q4_1/q8_1",
            Bug32::F16ConversionTruncating => "matmul_f16/f32",
            Bug32::Q8_0QuantizerTiesToEven => "quantize_q8_0/q8_0",
            Bug32::Q8_1SumFromRoundedD => "quantize_q8_1/q8_1",
        }
    }
}

/// A buggy integer-design matmul: `ints` replaces the weight integers; `with_sum` keeps Q4_1's
/// `m * s` term.
fn int_matmul<W: Weight32 + Block32>(
    xq: &ActBlocks,
    w: &[W],
    y: &mut [f32],
    dims: MatmulDims,
    ints: &dyn Fn(&W) -> [i8; 32],
    with_sum: bool,
) {
    let nb = dims.k / 32;
    for i in 0..dims.n {
        for r in 0..dims.rows {
            let mut acc = 0f32;
            for b in 0..nb {
                let wb = &w[r * nb + b];
                let (qs, d, s) = match xq {
                    ActBlocks::Q8_0(x) => (x[i * nb + b].qs, x[i * nb + b].d, f16::ZERO),
                    ActBlocks::Q8_1(x) => (x[i * nb + b].qs, x[i * nb + b].d, x[i * nb + b].s),
                };
                let sumi: i32 = ints(wb)
                    .iter()
                    .zip(&qs)
                    .map(|(&a, &b)| a as i32 * b as i32)
                    .sum();
                let min = if with_sum {
                    W::block_min(w, r * nb + b) as f32 * s.to_f32()
                } else {
                    0.0
                };
                acc += (wb.d().to_f32() * d.to_f32()) * sumi as f32 + min;
            }
            y[i * dims.y_stride + r] = acc;
        }
    }
}

/// A buggy f32-design matmul: `values(w, c)` gives weights `32c..32c+32` of row `w`.
fn f32_matmul<W>(
    x: &[f32],
    w: &[W],
    y: &mut [f32],
    dims: MatmulDims,
    values: &dyn Fn(&[W], usize) -> [f32; 32],
) {
    let per_row = w.len() / dims.rows.max(1);
    for i in 0..dims.n {
        for r in 0..dims.rows {
            let row = &w[r * per_row..(r + 1) * per_row];
            let mut acc = 0f32;
            for c in 0..dims.k / 32 {
                let wv = values(row, c);
                for l in 0..32 {
                    acc += wv[l] * x[i * dims.k + 32 * c + l];
                }
            }
            y[i * dims.y_stride + r] = acc;
        }
    }
}

fn nibble(qs: &[u8; 16], l: usize) -> u8 {
    if l < 16 {
        qs[l] & 0xF
    } else {
        qs[l - 16] >> 4
    }
}

/// A buggy quantizer of `design`.
fn planted_quantize(bug: Bug32, x: &[f32]) -> ActBlocks {
    let blocks: Vec<(f16, f16, [i8; 32])> = x
        .chunks_exact(32)
        .map(|v| {
            let amax = v.iter().fold(0f32, |a, v| a.max(v.abs()));
            let d = amax / 127.0;
            let id = if d > 0.0 && (1.0 / d).is_finite() {
                1.0 / d
            } else {
                0.0
            };
            let qs: [i8; 32] = std::array::from_fn(|l| {
                let t = v[l] * id;
                let r = if bug == Bug32::Q8_0QuantizerTiesToEven {
                    t.round_ties_even()
                } else {
                    t.round()
                };
                r.clamp(-127.0, 127.0) as i8
            });
            let dh = kernels::quant::f16_saturating(d);
            let sum: i32 = qs.iter().map(|&q| q as i32).sum();
            let s = kernels::quant::f16_saturating(sum as f32 * dh.to_f32());
            (dh, s, qs)
        })
        .collect();
    if bug == Bug32::Q8_1SumFromRoundedD {
        ActBlocks::Q8_1(
            blocks
                .into_iter()
                .map(|(d, s, qs)| BlockQ8_1 { d, s, qs })
                .collect(),
        )
    } else {
        ActBlocks::Q8_0(
            blocks
                .into_iter()
                .map(|(d, _, qs)| BlockQ8_0 { d, qs })
                .collect(),
        )
    }
}

/// Runs one planted bug through the gate's checks for its family.
pub fn run_bug(bug: Bug32, cases: u32, seed: u64) -> PropertyOutcome {
    match bug {
        Bug32::Q8_0MinusOneTwentyEightSaturated => {
            let planted = |x: &ActBlocks, w: &[BlockQ8_0], y: &mut [f32], d| {
                int_matmul(x, w, y, d, &|b| b.qs.map(|q| q.max(-127)), false)
            };
            run_property(case_strategy(), cases, seed, |case| {
                check_int_case::<BlockQ8_0>(case, &planted, None)
            })
        }
        Bug32::Q4_0NibbleHalvesSwapped => {
            let planted = |x: &ActBlocks, w: &[BlockQ4_0], y: &mut [f32], d| {
                let ints =
                    |b: &BlockQ4_0| std::array::from_fn(|l| nibble(&b.qs, (l + 16) % 32) as i8 - 8);
                int_matmul(x, w, y, d, &ints, false)
            };
            run_property(case_strategy(), cases, seed, |case| {
                check_int_case::<BlockQ4_0>(case, &planted, None)
            })
        }
        Bug32::Q5_0HighBitWrongValue => {
            let planted = |x: &ActBlocks, w: &[BlockQ5_0], y: &mut [f32], d| {
                let ints = |b: &BlockQ5_0| {
                    let qh = u32::from_le_bytes(b.qh);
                    std::array::from_fn(|l| {
                        let h = ((qh >> ((l + 1) % 32)) & 1) as u8;
                        (nibble(&b.qs, l) | (h << 4)) as i8 - 16
                    })
                };
                int_matmul(x, w, y, d, &ints, false)
            };
            run_property(case_strategy(), cases, seed, |case| {
                check_int_case::<BlockQ5_0>(case, &planted, None)
            })
        }
        Bug32::Q4_1MinIgnored => {
            let planted = |x: &[f32], w: &[BlockQ4_1], y: &mut [f32], d| {
                let values = |row: &[BlockQ4_1], c: usize| {
                    let b = &row[c];
                    std::array::from_fn(|l| b.d.to_f32() * nibble(&b.qs, l) as f32)
                };
                f32_matmul(x, w, y, d, &values)
            };
            run_property(case_strategy(), cases, seed, |case| {
                check_f32_case::<BlockQ4_1>(case, &planted, None)
            })
        }
        Bug32::Q8_1SumTermDropped => {
            let planted = |x: &ActBlocks, w: &[BlockQ4_1], y: &mut [f32], d| {
                int_matmul(x, w, y, d, &|b: &BlockQ4_1| b.ints(), false)
            };
            run_property(case_strategy(), cases, seed, |case| {
                check_int_case::<BlockQ4_1>(case, &planted, None)
            })
        }
        Bug32::F16ConversionTruncating => {
            let planted = |x: &[f32], w: &[f16], y: &mut [f32], d| {
                let values = |row: &[f16], c: usize| {
                    std::array::from_fn(|l| f16::from_bits(row[32 * c + l].to_bits() & !3).to_f32())
                };
                f32_matmul(x, w, y, d, &values)
            };
            run_property(case_strategy(), cases, seed, |case| {
                check_f32_case::<f16>(case, &planted, None)
            })
        }
        Bug32::Q8_0QuantizerTiesToEven | Bug32::Q8_1SumFromRoundedD => {
            let design = if bug == Bug32::Q8_1SumFromRoundedD {
                Design::Q8_1
            } else {
                Design::Q8_0
            };
            let planted = |x: &[f32]| planted_quantize(bug, x);
            run_property(quant_strategy(), cases, seed, |case| {
                check_quant_case(case, design, &planted)
            })
        }
    }
}
