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

/// The AVX2 f32 design's row tile, shared by the Q4_K and Q6_K kernels: each weight block is
/// unpacked once ([`Avx2BlockF32::block_f32`]) for all `R` activation rows of the tile.
#[cfg(target_arch = "x86_64")]
pub(crate) mod avx2 {
    use crate::quant::QK_K;
    use crate::simd::x86::hsum_ps;
    use std::arch::x86_64::*;

    /// A K-quant weight block as the AVX2 f32 design applies it.
    pub(crate) trait Avx2BlockF32 {
        /// Adds this block times `R` activation blocks (`xs`, 256 values each) into `acc`,
        /// chain `a % P` of row `i` in `acc[i][a % P]`.
        ///
        /// # Safety
        /// AVX2 + FMA + F16C enabled; every `xs[i]` starts 256 readable values.
        unsafe fn block_f32<const R: usize, const P: usize>(
            &self,
            xs: &[*const f32; R],
            acc: &mut [[__m256; P]; R],
        );
    }

    /// Weight row `wr` times the `R` activation rows `x_rows`, `P` FMA chains per row.
    ///
    /// # Safety
    /// AVX2 + FMA + F16C enabled; `x_rows` holds `R` rows of `wr.len() * QK_K` values.
    #[inline(always)]
    pub(crate) unsafe fn row_tile_f32<W: Avx2BlockF32, const R: usize, const P: usize>(
        x_rows: &[f32],
        wr: &[W],
    ) -> [f32; R] {
        // SAFETY: this fn's contract: the caller runs with the target features enabled,
        // and every pointer below stays inside the blocks and rows it was given.
        unsafe {
            let k = wr.len() * QK_K;
            debug_assert!(x_rows.len() == R * k);
            let mut acc = [[_mm256_setzero_ps(); P]; R];
            for (b, block) in wr.iter().enumerate() {
                // SAFETY: `i * k + b * QK_K + QK_K <= R * k == x_rows.len()` because `i < R` and
                // `b < k / QK_K`, so every pointer starts a full block of activations inside
                // `x_rows`.
                let xs: [*const f32; R] =
                    std::array::from_fn(|i| x_rows.as_ptr().add(i * k + b * QK_K));
                block.block_f32::<R, P>(&xs, &mut acc);
            }
            let mut dots = [0f32; R];
            for (dot, acc_row) in dots.iter_mut().zip(&acc) {
                let mut sum = acc_row[0];
                for &a in &acc_row[1..] {
                    sum = _mm256_add_ps(sum, a);
                }
                *dot = hsum_ps(sum);
            }
            dots
        }
    }
}
