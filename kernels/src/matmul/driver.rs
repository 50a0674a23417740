//! The tile loops of every matmul, written once: activation rows in tiles of up to
//! [`ACT_TILE`], each tile walked against every weight row, one [`RowDots`] call per
//! (weight row, tile). A format and ISA supply only that call (the loop over the blocks of one
//! row, with its unpacking and accumulators) through a small [`RowDots`] implementation and a
//! `#[target_feature]` entry function that calls [`matmul_tiled`], into which it all inlines.
//!
//! The loop order is the same for every family and ISA: tiles outer, weight rows inner, so a
//! tile's activations stay in L1 while the weights stream past once per tile. Which output a
//! call computes never changes the arithmetic of that output: each variant's result for
//! `(i, r)` depends only on row `r` of `W`, row `i` of `X` and the tile size.

use super::MatmulDims;

/// Activation rows served by one pass over a weight row: each weight block is unpacked once
/// and applied to every row of the tile (prefill does not redo the unpacking per token).
pub const ACT_TILE: usize = 4;

/// One weight row against a tile of `R` activation rows.
///
/// # Safety (for the method)
/// The caller runs with the implementing ISA's target features enabled; `w_row` holds one
/// weight row (`k / W_VALUES` elements), `x_rows` exactly `R` activation rows of
/// `k / X_VALUES` elements each, row-major. Implementations may index both with unchecked loads
/// inside those lengths.
pub(crate) trait RowDots {
    /// The weight element: a block, or one `f16`.
    type W;
    /// The activation element: one `f32`, or a block of quantized activations.
    type X;
    /// Values one weight element holds.
    const W_VALUES: usize;
    /// Values one activation element holds.
    const X_VALUES: usize;
    /// `k` must be a multiple of this: the values `row_dots` consumes per step. At least both
    /// element sizes; more where an element is smaller than a step (F16 weights are read 32 at
    /// a time).
    const K_MULTIPLE: usize = if Self::W_VALUES > Self::X_VALUES {
        Self::W_VALUES
    } else {
        Self::X_VALUES
    };

    /// `[dot(w_row, x_rows[i]) for i in 0..R]`, `1 <= R <= ACT_TILE`.
    unsafe fn row_dots<const R: usize>(w_row: &[Self::W], x_rows: &[Self::X]) -> [f32; R];
}

/// `y = x * w^T` with the row dots of `K`, after checking every slice against `dims`.
///
/// # Safety
/// The caller runs with the target features `K`'s `row_dots` needs (it is the
/// `#[target_feature]` entry of `K`'s ISA, into which this inlines; for the scalar
/// implementations there are none).
///
/// # Panics
/// If the slices do not match `dims` or `k` is not a multiple of `K::K_MULTIPLE`.
#[inline(always)]
pub(crate) unsafe fn matmul_tiled<K: RowDots>(
    x: &[K::X],
    w: &[K::W],
    y: &mut [f32],
    dims: MatmulDims,
) {
    let x_row = dims.k / K::X_VALUES;
    let w_row = dims.k / K::W_VALUES;
    dims.check_elements(K::K_MULTIPLE, x.len(), x_row, w.len(), w_row, y.len());
    let mut i0 = 0;
    while i0 < dims.n {
        let tile = (dims.n - i0).min(ACT_TILE);
        let xt = &x[i0 * x_row..(i0 + tile) * x_row];
        for r in 0..dims.rows {
            let wr = &w[r * w_row..(r + 1) * w_row];
            // SAFETY: `wr` is one weight row and `xt` `tile` activation rows, as `row_dots`
            // asks; our caller guarantees the target features.
            unsafe {
                match tile {
                    4 => store(y, dims, i0, r, K::row_dots::<4>(wr, xt)),
                    3 => store(y, dims, i0, r, K::row_dots::<3>(wr, xt)),
                    2 => store(y, dims, i0, r, K::row_dots::<2>(wr, xt)),
                    _ => store(y, dims, i0, r, K::row_dots::<1>(wr, xt)),
                }
            }
        }
        i0 += tile;
    }
}

#[inline(always)]
fn store<const R: usize>(y: &mut [f32], dims: MatmulDims, i0: usize, r: usize, dots: [f32; R]) {
    for (i, dot) in dots.into_iter().enumerate() {
        y[(i0 + i) * dims.y_stride + r] = dot;
    }
}

/// Declares a [`RowDots`] implementation: `row_dots!(Name: W, X, W_VALUES, X_VALUES,
/// <R> |w_row, x_rows| body)`, `body` an expression of type `[f32; R]` (evaluated inside an
/// `unsafe` block: the trait's contract is the caller's).
macro_rules! row_dots {
    ($dots:ident: $w:ty, $x:ty, $wv:expr, $xv:expr, <$r:ident> |$wr:ident, $xr:ident| $body:expr) => {
        struct $dots;

        impl $crate::matmul::driver::RowDots for $dots {
            type W = $w;
            type X = $x;
            const W_VALUES: usize = $wv;
            const X_VALUES: usize = $xv;

            #[inline(always)]
            unsafe fn row_dots<const $r: usize>($wr: &[$w], $xr: &[$x]) -> [f32; $r] {
                // SAFETY: the trait's contract (features enabled, whole rows) is the caller's.
                #[allow(unused_unsafe)]
                unsafe {
                    $body
                }
            }
        }
    };
}
pub(crate) use row_dots;

/// Declares the entry functions of one ISA file: `matmul_entries!("features"; name(X, W) =>
/// Dots; ..)` defines `pub unsafe fn name(x: &[X], w: &[W], y, dims)` with those target
/// features, running [`matmul_tiled`] with `Dots`; `matmul_entries!(scalar; ..)` the safe
/// portable ones.
macro_rules! matmul_entries {
    (scalar; $($name:ident($x:ty, $w:ty) => $dots:ty;)*) => {$(
        /// `y = x * w^T`: the portable oracle of the dispatch function of the same name.
        pub fn $name(x: &[$x], w: &[$w], y: &mut [f32], dims: $crate::matmul::MatmulDims) {
            // SAFETY: the scalar row dots need no target feature.
            unsafe { $crate::matmul::driver::matmul_tiled::<$dots>(x, w, y, dims) }
        }
    )*};
    ($features:literal; $($name:ident($x:ty, $w:ty) => $dots:ty;)*) => {$(
        /// # Safety
        /// The CPU must support the target features this function enables.
        #[target_feature(enable = $features)]
        pub unsafe fn $name(x: &[$x], w: &[$w], y: &mut [f32], dims: $crate::matmul::MatmulDims) {
            // SAFETY: this function enables the features the row dots need; the driver checks
            // the shapes their unchecked loads rely on.
            unsafe { $crate::matmul::driver::matmul_tiled::<$dots>(x, w, y, dims) }
        }
    )*};
}
pub(crate) use matmul_entries;
