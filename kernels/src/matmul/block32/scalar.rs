//! Portable 32-block kernels and activation quantizers: the oracle every SIMD variant is
//! compared with. The integer dots and the f32 combines here are the bit-exactness contract.

use super::{block32_entries, q8_scales, Block32, IntIsa, Unpack};
use crate::matmul::driver::RowDots;
use crate::quant::{BlockQ4_0, BlockQ4_1, BlockQ5_0, BlockQ8_0, BlockQ8_1};
use half::f16;
use std::marker::PhantomData;

/// The portable primitives: the contract every ISA's must reproduce bit for bit.
pub(crate) struct Scalar;

impl IntIsa for Scalar {
    type Ints = [i8; 32];

    #[inline(always)]
    unsafe fn dot(w: [i8; 32], x: &[i8; 32]) -> i32 {
        w.iter().zip(x).map(|(&a, &b)| a as i32 * b as i32).sum()
    }

    #[inline(always)]
    unsafe fn to_f32(h: f16) -> f32 {
        h.to_f32()
    }

    #[inline(always)]
    unsafe fn quantize_block(x: &[f32], qs: &mut [i8; 32]) -> (f32, i32) {
        let (d, id) = q8_scales(x.iter().fold(0f32, |a, v| a.max(v.abs())));
        let mut sum = 0;
        for (q, &v) in qs.iter_mut().zip(x) {
            *q = quantize_value(v, id);
            sum += *q as i32;
        }
        (d, sum)
    }
}

impl<W: Block32> Unpack<Scalar> for W {
    #[inline(always)]
    unsafe fn unpack(&self) -> [i8; 32] {
        self.ints()
    }

    #[inline(always)]
    unsafe fn min(&self) -> f32 {
        self.min_value()
    }
}

/// Thirty-two weights as f32: a block, or 32 f16 values.
trait Values32: Sized {
    const W_VALUES: usize;
    /// Weights `32c..32c+32` of the row `w`.
    fn values(w: &[Self], c: usize) -> [f32; 32];
}

impl<W: Block32> Values32 for W {
    const W_VALUES: usize = 32;
    fn values(w: &[W], c: usize) -> [f32; 32] {
        w[c].values()
    }
}

impl Values32 for f16 {
    const W_VALUES: usize = 1;
    fn values(w: &[f16], c: usize) -> [f32; 32] {
        std::array::from_fn(|l| w[32 * c + l].to_f32())
    }
}

struct F32Dots<W>(PhantomData<W>);

impl<W: Values32> RowDots for F32Dots<W> {
    type W = W;
    type X = f32;
    const W_VALUES: usize = <W as Values32>::W_VALUES;
    const X_VALUES: usize = 1;
    // Every design step reads 32 values, also of F16 weights (one element each).
    const K_MULTIPLE: usize = 32;

    #[inline(always)]
    unsafe fn row_dots<const R: usize>(w_row: &[W], x_rows: &[f32]) -> [f32; R] {
        let k = w_row.len() * <W as Values32>::W_VALUES;
        let mut acc = [0f32; R];
        for c in 0..k / 32 {
            let wf = W::values(w_row, c);
            for (i, acc) in acc.iter_mut().enumerate() {
                let xb = &x_rows[i * k + 32 * c..][..32];
                let dot: f32 = wf.iter().zip(xb).map(|(a, b)| a * b).sum();
                *acc += dot;
            }
        }
        acc
    }
}

block32_entries!(scalar, Scalar, F32Dots);

/// `round(x * id)`, ties away from zero, clamped to `-127..=127`.
#[inline(always)]
pub fn quantize_value(x: f32, id: f32) -> i8 {
    (x * id).round().clamp(-127.0, 127.0) as i8
}
