//! Portable 32-block kernels and activation quantizers: the oracle every SIMD variant is
//! compared with. The integer dots and the f32 combines here are the bit-exactness contract.

use super::{q8_1_sum, q8_d_f16, q8_scales, Block32};
use crate::matmul::driver::{matmul_tiled, RowDots};
use crate::matmul::MatmulDims;
use crate::quant::{BlockQ4_0, BlockQ4_1, BlockQ5_0, BlockQ8_0, BlockQ8_1};
use half::f16;
use std::marker::PhantomData;

/// The exact integer dot of one weight block with one activation block.
#[inline(always)]
pub fn block_dot<W: Block32>(w: &W, xq: &[i8; 32]) -> i32 {
    w.ints()
        .iter()
        .zip(xq)
        .map(|(&a, &b)| a as i32 * b as i32)
        .sum()
}

/// The f32 combine of one `q8_0`-design block (every ISA: exactly this, in block order).
#[inline(always)]
pub fn combine_q8_0(acc: f32, d_w: f16, d_x: f16, sumi: i32) -> f32 {
    acc + (d_w.to_f32() * d_x.to_f32()) * sumi as f32
}

/// The f32 combine of one Q4_1 x Q8_1 block: `d_w d_x sumi + m_w s_x`.
#[inline(always)]
pub fn combine_q8_1(acc: f32, w: &BlockQ4_1, x: &BlockQ8_1, sumi: i32) -> f32 {
    acc + ((w.d.to_f32() * x.d.to_f32()) * sumi as f32 + w.m.to_f32() * x.s.to_f32())
}

struct IntDots<W>(PhantomData<W>);

impl<W: Block32> RowDots for IntDots<W> {
    type W = W;
    type X = BlockQ8_0;
    const W_VALUES: usize = 32;
    const X_VALUES: usize = 32;

    #[inline(always)]
    unsafe fn row_dots<const R: usize>(w_row: &[W], x_rows: &[BlockQ8_0]) -> [f32; R] {
        let nb = w_row.len();
        let mut acc = [0f32; R];
        for (i, acc) in acc.iter_mut().enumerate() {
            for (wb, xb) in w_row.iter().zip(&x_rows[i * nb..][..nb]) {
                *acc = combine_q8_0(*acc, wb.d(), xb.d, block_dot(wb, &xb.qs));
            }
        }
        acc
    }
}

struct Q4_1Dots;

impl RowDots for Q4_1Dots {
    type W = BlockQ4_1;
    type X = BlockQ8_1;
    const W_VALUES: usize = 32;
    const X_VALUES: usize = 32;

    #[inline(always)]
    unsafe fn row_dots<const R: usize>(w_row: &[BlockQ4_1], x_rows: &[BlockQ8_1]) -> [f32; R] {
        let nb = w_row.len();
        let mut acc = [0f32; R];
        for (i, acc) in acc.iter_mut().enumerate() {
            for (wb, xb) in w_row.iter().zip(&x_rows[i * nb..][..nb]) {
                *acc = combine_q8_1(*acc, wb, xb, block_dot(wb, &xb.qs));
            }
        }
        acc
    }
}

struct F32Dots<W>(PhantomData<W>);

impl<W: Block32> RowDots for F32Dots<W> {
    type W = W;
    type X = f32;
    const W_VALUES: usize = 32;
    const X_VALUES: usize = 1;

    #[inline(always)]
    unsafe fn row_dots<const R: usize>(w_row: &[W], x_rows: &[f32]) -> [f32; R] {
        let k = w_row.len() * 32;
        let mut acc = [0f32; R];
        for (b, block) in w_row.iter().enumerate() {
            let wf = block.values();
            for (i, acc) in acc.iter_mut().enumerate() {
                let xb = &x_rows[i * k + 32 * b..][..32];
                let dot: f32 = wf.iter().zip(xb).map(|(a, b)| a * b).sum();
                *acc += dot;
            }
        }
        acc
    }
}

/// F16 weights: chunks of 32 values, each converted exactly.
struct F16Values;

impl RowDots for F16Values {
    type W = f16;
    type X = f32;
    const W_VALUES: usize = 1;
    const X_VALUES: usize = 1;

    #[inline(always)]
    unsafe fn row_dots<const R: usize>(w_row: &[f16], x_rows: &[f32]) -> [f32; R] {
        let k = w_row.len();
        let mut acc = [0f32; R];
        for (b, chunk) in w_row.chunks_exact(32).enumerate() {
            let wf: [f32; 32] = std::array::from_fn(|l| chunk[l].to_f32());
            for (i, acc) in acc.iter_mut().enumerate() {
                let xb = &x_rows[i * k + 32 * b..][..32];
                let dot: f32 = wf.iter().zip(xb).map(|(a, b)| a * b).sum();
                *acc += dot;
            }
        }
        acc
    }
}

macro_rules! entries {
    ($($name:ident($x:ty, $w:ty) => $dots:ty;)*) => {$(
        /// See the dispatch function of the same name in [`block32`](super).
        pub fn $name(x: &[$x], w: &[$w], y: &mut [f32], dims: MatmulDims) {
            // SAFETY: the scalar row dots need no target feature.
            unsafe { matmul_tiled::<$dots>(x, w, y, dims) }
        }
    )*};
}

entries! {
    matmul_q8_0_f32(f32, BlockQ8_0) => F32Dots<BlockQ8_0>;
    matmul_q8_0_q8_0(BlockQ8_0, BlockQ8_0) => IntDots<BlockQ8_0>;
    matmul_q4_0_f32(f32, BlockQ4_0) => F32Dots<BlockQ4_0>;
    matmul_q4_0_q8_0(BlockQ8_0, BlockQ4_0) => IntDots<BlockQ4_0>;
    matmul_q5_0_f32(f32, BlockQ5_0) => F32Dots<BlockQ5_0>;
    matmul_q5_0_q8_0(BlockQ8_0, BlockQ5_0) => IntDots<BlockQ5_0>;
    matmul_q4_1_f32(f32, BlockQ4_1) => F32Dots<BlockQ4_1>;
    matmul_q4_1_q8_1(BlockQ8_1, BlockQ4_1) => Q4_1Dots;
    matmul_f16_f32(f32, f16) => F16Values;
}

/// `round(x * id)`, ties away from zero, clamped to `-127..=127`.
#[inline(always)]
pub fn quantize_value(x: f32, id: f32) -> i8 {
    (x * id).round().clamp(-127.0, 127.0) as i8
}

/// One block's `(d, id)` from its 32 values.
#[inline(always)]
fn block_scales(x: &[f32]) -> (f32, f32) {
    q8_scales(x.iter().fold(0f32, |a, v| a.max(v.abs())))
}

/// Activations to Q8_0 (see [`block32`](super) for the rule).
pub fn quantize_q8_0(x: &[f32], out: &mut [BlockQ8_0]) {
    assert_eq!(x.len(), 32 * out.len(), "quantize_q8_0: lengths");
    for (x, block) in x.chunks_exact(32).zip(out.iter_mut()) {
        let (d, id) = block_scales(x);
        block.d = q8_d_f16(d);
        for (q, &v) in block.qs.iter_mut().zip(x) {
            *q = quantize_value(v, id);
        }
    }
}

/// Activations to Q8_1 (see [`block32`](super) for the rule).
pub fn quantize_q8_1(x: &[f32], out: &mut [BlockQ8_1]) {
    assert_eq!(x.len(), 32 * out.len(), "quantize_q8_1: lengths");
    for (x, block) in x.chunks_exact(32).zip(out.iter_mut()) {
        let (d, id) = block_scales(x);
        block.d = q8_d_f16(d);
        let mut sum = 0i32;
        for (q, &v) in block.qs.iter_mut().zip(x) {
            *q = quantize_value(v, id);
            sum += *q as i32;
        }
        block.s = q8_1_sum(d, sum);
    }
}
