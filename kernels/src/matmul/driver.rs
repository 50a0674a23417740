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
/// If the slices do not match `dims` or `k` is not a whole number of both element sizes.
#[inline(always)]
pub(crate) unsafe fn matmul_tiled<K: RowDots>(
    x: &[K::X],
    w: &[K::W],
    y: &mut [f32],
    dims: MatmulDims,
) {
    let x_row = dims.k / K::X_VALUES;
    let w_row = dims.k / K::W_VALUES;
    dims.check_elements(
        K::W_VALUES.max(K::X_VALUES),
        x.len(),
        x_row,
        w.len(),
        w_row,
        y.len(),
    );
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
