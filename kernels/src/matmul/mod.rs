//! Fused dequantize-matmul kernels: `Y[n x rows] = X[n x k] * W[rows x k]^T` with `W` quantized.
//!
//! Two designs per weight format, each in every [`Isa`](crate::Isa):
//! - `f32`: weights are dequantized in registers and multiplied with f32 activations (FMA).
//! - `q8k`: activations are quantized once to [`BlockQ8K`](crate::quant::BlockQ8K); each block
//!   product is an exact integer dot product, combined in f32 with the block scales. Every ISA
//!   combines the per-block integer sums with the same f32 expression in the same order, so the
//!   `q8k` variants agree with `scalar` bit for bit.
//!
//! `n = 1` is decode (matrix-vector), `n > 1` prefill. `W` is row-major in blocks: row `r` is
//! `w[r * k/256 .. (r+1) * k/256]`, so a caller splits the work across threads by giving each a
//! contiguous range of rows (a sub-slice of `w` and the matching columns of `y`).

pub mod q4k;
pub mod q6k;

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
    #[track_caller]
    pub fn check(&self, x_len: usize, x_per_row: usize, w_len: usize, y_len: usize) {
        assert!(
            self.k.is_multiple_of(QK_K) && self.k > 0,
            "k = {} is not a positive multiple of {QK_K}",
            self.k
        );
        assert!(self.y_stride >= self.rows, "y_stride < rows");
        assert_eq!(x_len, self.n * x_per_row, "activation length");
        assert_eq!(w_len, self.rows * self.blocks_per_row(), "weight blocks");
        let need = if self.n == 0 || self.rows == 0 {
            0
        } else {
            (self.n - 1) * self.y_stride + self.rows
        };
        assert!(y_len >= need, "output holds {y_len} values, needs {need}");
    }
}

/// The two kernel designs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Design {
    /// Dequantize in registers, FMA with f32 activations.
    F32,
    /// Activations in Q8_K, integer dot products per block.
    Q8K,
}

impl Design {
    pub const ALL: [Design; 2] = [Design::F32, Design::Q8K];

    pub fn name(self) -> &'static str {
        match self {
            Design::F32 => "f32",
            Design::Q8K => "q8k",
        }
    }

    pub fn from_name(name: &str) -> Option<Design> {
        Design::ALL.into_iter().find(|d| d.name() == name)
    }
}
