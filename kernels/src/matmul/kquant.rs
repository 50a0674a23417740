//! What the Q4_K and Q6_K kernels share: the scalar oracle's row dots, generic over the
//! super-block type, and the entry points of the scalar files and of the dispatch modules.

use crate::matmul::driver::RowDots;
use crate::quant::{BlockQ8K, QuantBlock, QK_K};
use std::marker::PhantomData;

/// A K-quant weight super-block as the scalar kernels use it.
pub(crate) trait ScalarK: QuantBlock {
    /// The block's 256 values (the type's one dequantization).
    fn dequantize_values(&self, out: &mut [f32; QK_K]);

    /// `acc` plus the block's product with `x`: the exact integer sums and the f32 combine
    /// every ISA's `q8k` design must reproduce, in block order.
    fn q8k_accumulate(acc: f32, w: &Self, x: &BlockQ8K) -> f32;
}

/// f32 design: each weight block is dequantized once and used for every activation row of the
/// tile.
pub(crate) struct F32Dots<W>(PhantomData<W>);

impl<W: ScalarK> RowDots for F32Dots<W> {
    type W = W;
    type X = f32;
    const W_VALUES: usize = QK_K;
    const X_VALUES: usize = 1;

    #[inline(always)]
    unsafe fn row_dots<const R: usize>(w_row: &[W], x_rows: &[f32]) -> [f32; R] {
        let k = w_row.len() * QK_K;
        let mut acc = [0f32; R];
        let mut wf = [0f32; QK_K];
        for (b, block) in w_row.iter().enumerate() {
            block.dequantize_values(&mut wf);
            for (i, acc) in acc.iter_mut().enumerate() {
                let xb = &x_rows[i * k + b * QK_K..][..QK_K];
                let dot: f32 = wf.iter().zip(xb).map(|(a, b)| a * b).sum();
                *acc += dot;
            }
        }
        acc
    }
}

/// q8k design: per activation row, the blocks in order through [`ScalarK::q8k_accumulate`].
pub(crate) struct Q8kDots<W>(PhantomData<W>);

impl<W: ScalarK> RowDots for Q8kDots<W> {
    type W = W;
    type X = BlockQ8K;
    const W_VALUES: usize = QK_K;
    const X_VALUES: usize = QK_K;

    #[inline(always)]
    unsafe fn row_dots<const R: usize>(w_row: &[W], x_rows: &[BlockQ8K]) -> [f32; R] {
        let nb = w_row.len();
        let mut acc = [0f32; R];
        for (i, acc) in acc.iter_mut().enumerate() {
            for (wb, xb) in w_row.iter().zip(&x_rows[i * nb..][..nb]) {
                *acc = W::q8k_accumulate(*acc, wb, xb);
            }
        }
        acc
    }
}

/// The two entry functions of a scalar K-quant file, for weight type `$w`.
macro_rules! k_scalar_entries {
    ($w:ty) => {
        /// f32 design: each weight block is dequantized once and used for every activation row
        /// of the tile.
        pub fn matmul_f32(x: &[f32], w: &[$w], y: &mut [f32], dims: $crate::matmul::MatmulDims) {
            // SAFETY: the scalar row dots need no target feature.
            unsafe {
                $crate::matmul::driver::matmul_tiled::<$crate::matmul::kquant::F32Dots<$w>>(
                    x, w, y, dims,
                )
            }
        }

        /// q8k design.
        pub fn matmul_q8k(
            xq: &[$crate::quant::BlockQ8K],
            w: &[$w],
            y: &mut [f32],
            dims: $crate::matmul::MatmulDims,
        ) {
            // SAFETY: the scalar row dots need no target feature.
            unsafe {
                $crate::matmul::driver::matmul_tiled::<$crate::matmul::kquant::Q8kDots<$w>>(
                    xq, w, y, dims,
                )
            }
        }
    };
}
pub(crate) use k_scalar_entries;

/// The two dispatch functions of a K-quant weight type `$w`: `$f32` (f32 activations) and
/// `$q8k` (activations in Q8_K), each calling the ISA file's `matmul_f32` / `matmul_q8k`.
macro_rules! k_dispatch {
    ($w:ty, $f32:ident, $q8k:ident) => {
        /// `y = x * w^T` with f32 activations `x` (`n * k` values). See
        /// [`MatmulDims`](crate::matmul::MatmulDims).
        ///
        /// # Panics
        /// If `isa` cannot run on this CPU, or the slices do not match `dims`.
        pub fn $f32(
            isa: $crate::Isa,
            x: &[f32],
            w: &[$w],
            y: &mut [f32],
            dims: $crate::matmul::MatmulDims,
        ) {
            $crate::isa::dispatch!(isa, matmul_f32(x, w, y, dims))
        }

        /// `y = x * w^T` with activations already quantized to Q8_K (`n * k/256` blocks).
        ///
        /// # Panics
        /// If `isa` cannot run on this CPU, or the slices do not match `dims`.
        pub fn $q8k(
            isa: $crate::Isa,
            xq: &[$crate::quant::BlockQ8K],
            w: &[$w],
            y: &mut [f32],
            dims: $crate::matmul::MatmulDims,
        ) {
            $crate::isa::dispatch!(isa, matmul_q8k(xq, w, y, dims))
        }
    };
}
pub(crate) use k_dispatch;
