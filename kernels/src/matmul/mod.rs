//! Fused dequantize-matmul kernels: `Y[n x rows] = X[n x k] * W[rows x k]^T` with `W` quantized.
//!
//! Two designs per weight format, each in every [`Isa`](crate::Isa):
//! - `f32`: weights are dequantized in registers and multiplied with f32 activations (FMA).
//! - `q8k`: activations are quantized once to [`BlockQ8K`](crate::quant::BlockQ8K); each block
//!   product is an exact integer dot product, combined in f32 with the block scales. Every ISA
//!   combines the per-block integer sums with the same f32 expression in the same order, so the
//!   `q8k` variants agree with `scalar` bit for bit. Precondition: every activation block's
//!   `bsums` match its `qs` (as `QuantBlock::quantize_row` and `BlockQ8K::fill_bsums` make
//!   them). Variants are free to take the Q4_K min term and the Q6_K `-32` offset from `bsums`
//!   or from `qs`, so with inconsistent sums their results are unspecified (and may differ),
//!   though never unsafe.
//!
//! `n = 1` is decode (matrix-vector), `n > 1` prefill. `W` is row-major in blocks: row `r` is
//! `w[r * k/256 .. (r+1) * k/256]`, so work splits across threads by weight rows: each thread
//! takes a sub-slice of `w`. For `n = 1` its outputs are a contiguous piece of `y`
//! (`y.chunks_mut`). For `n > 1` the column ranges of different threads interleave in `y`, so
//! safe code cannot hand each thread a disjoint `&mut`: give each thread its own `[n x rows_t]`
//! output (`y_stride = rows_t`), or split by activation rows instead (disjoint row bands of `y`).

pub mod amx;
pub mod block32;
pub(crate) mod driver;
mod kquant;
pub mod q4k;
pub mod q6k;
pub mod x8;

pub use block32::{
    matmul_f16_f32, matmul_q4_0_f32, matmul_q4_0_q8_0, matmul_q4_1_f32, matmul_q4_1_q8_1,
    matmul_q5_0_f32, matmul_q5_0_q8_0, matmul_q8_0_f32, matmul_q8_0_q8_0, quantize_q8_0,
    quantize_q8_1,
};
pub use q4k::{matmul_q4k_f32, matmul_q4k_q8k};
pub use q6k::{matmul_q6k_f32, matmul_q6k_q8k};

use crate::quant::QK_K;

/// Shapes of one matmul call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MatmulDims {
    /// Activation rows (tokens): 1 for decode.
    pub n: usize,
    /// Inner dimension; a multiple of 256.
    pub k: usize,
    /// Weight rows (output features) this call computes.
    pub rows: usize,
    /// Distance in `y` between the outputs of consecutive activation rows (`>= rows`).
    pub y_stride: usize,
}

impl MatmulDims {
    /// Dense output: `y_stride == rows`.
    pub fn new(n: usize, k: usize, rows: usize) -> Self {
        MatmulDims {
            n,
            k,
            rows,
            y_stride: rows,
        }
    }

    /// Blocks per weight row.
    pub fn blocks_per_row(&self) -> usize {
        self.k / QK_K
    }

    /// Panics (a caller bug, never an input-data condition) unless the slices fit the shapes.
    /// Every variant calls this first; the SIMD variants' unchecked loads rely on it, so the
    /// arithmetic is checked: shapes whose sizes overflow `usize` are refused, not wrapped.
    #[track_caller]
    pub fn check(&self, x_len: usize, x_per_row: usize, w_len: usize, y_len: usize) {
        self.check_elements(QK_K, x_len, x_per_row, w_len, self.k / QK_K, y_len);
    }

    /// [`check`](Self::check) for any block size: `k` must be a positive multiple of `block`,
    /// `x` hold `n * x_per_row` elements, `w` `rows * w_per_row`.
    #[track_caller]
    pub fn check_elements(
        &self,
        block: usize,
        x_len: usize,
        x_per_row: usize,
        w_len: usize,
        w_per_row: usize,
        y_len: usize,
    ) {
        assert!(
            self.k.is_multiple_of(block) && self.k > 0,
            "k = {} is not a positive multiple of {block}",
            self.k
        );
        assert!(self.y_stride >= self.rows, "y_stride < rows");
        let overflow = || panic!("matmul shape {self:?} overflows usize");
        let x_need = self.n.checked_mul(x_per_row).unwrap_or_else(overflow);
        assert_eq!(x_len, x_need, "activation length");
        let w_need = self.rows.checked_mul(w_per_row).unwrap_or_else(overflow);
        assert_eq!(w_len, w_need, "weight blocks");
        let need = if self.n == 0 || self.rows == 0 {
            0
        } else {
            (self.n - 1)
                .checked_mul(self.y_stride)
                .and_then(|v| v.checked_add(self.rows))
                .unwrap_or_else(overflow)
        };
        assert!(y_len >= need, "output holds {y_len} values, needs {need}");
    }
}

/// The matmul designs: what the activations are.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Design {
    /// Dequantize in registers, FMA with f32 activations.
    F32,
    /// Activations in Q8_K, integer dot products per 256-value block (Q4_K, Q6_K).
    Q8K,
    /// Activations in Q8_0, integer dot products per 32-value block (Q8_0, Q4_0, Q5_0).
    Q8_0,
    /// Activations in Q8_1, integer dot products per 32-value block, the weight min applied
    /// through the block's scaled sum (Q4_1).
    Q8_1,
}

impl Design {
    pub const ALL: [Design; 4] = [Design::F32, Design::Q8K, Design::Q8_0, Design::Q8_1];

    pub fn name(self) -> &'static str {
        match self {
            Design::F32 => "f32",
            Design::Q8K => "q8k",
            Design::Q8_0 => "q8_0",
            Design::Q8_1 => "q8_1",
        }
    }

    pub fn from_name(name: &str) -> Option<Design> {
        Design::ALL.into_iter().find(|d| d.name() == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[should_panic(expected = "overflows usize")]
    fn shapes_whose_sizes_wrap_are_refused() {
        // (n - 1) * y_stride + rows wraps to 2 and n * k to 0 in unchecked arithmetic: a check
        // that wrapped would admit an empty `x` and let SIMD loads run off its end.
        let dims = MatmulDims {
            n: 1 << 55,
            k: 512,
            rows: 1,
            y_stride: 18_410_715_276_690_587_647,
        };
        dims.check(0, 512, 2, 2);
    }

    #[test]
    #[should_panic(expected = "not a positive multiple")]
    fn k_must_be_whole_blocks() {
        MatmulDims::new(1, 300, 1).check(300, 300, 1, 1);
    }
}
