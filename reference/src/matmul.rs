//! Matrix multiplication in f64, in the layout the kernels use: `n` activation rows of length
//! `k` times `rows` weight rows of length `k` (the weight is stored row-major, one output
//! feature per row, as GGUF stores it), giving `n` output rows of length `rows`.
//!
//! Error model the harness relies on: each sum here has `k` f64 terms, so it differs from the
//! exact sum by at most about k * 2^-53 * sum|x||w| — negligible beside f32 kernels, which is
//! why f64 results can stand as ground truth. `matmul_abs` gives that sum|x||w| per output.

/// y[i*rows + r] = sum_k x[i*k + kk] * w[r*k + kk], accumulated in f64.
pub fn matmul(x: &[f64], w: &[f64], n: usize, k: usize, rows: usize) -> Vec<f64> {
    check_shapes(x, w, n, k, rows);
    let mut y = vec![0.0; n * rows];
    for i in 0..n {
        let x_row = &x[i * k..(i + 1) * k];
        for r in 0..rows {
            let w_row = &w[r * k..(r + 1) * k];
            let mut sum = 0.0;
            for kk in 0..k {
                sum += x_row[kk] * w_row[kk];
            }
            y[i * rows + r] = sum;
        }
    }
    y
}

/// Same shape as `matmul`, sum of |x|*|w|: the condition scale of each output, which error
/// bounds multiply by a unit roundoff.
pub fn matmul_abs(x: &[f64], w: &[f64], n: usize, k: usize, rows: usize) -> Vec<f64> {
    check_shapes(x, w, n, k, rows);
    let mut y = vec![0.0; n * rows];
    for i in 0..n {
        let x_row = &x[i * k..(i + 1) * k];
        for r in 0..rows {
            let w_row = &w[r * k..(r + 1) * k];
            let mut sum = 0.0;
            for kk in 0..k {
                sum += x_row[kk].abs() * w_row[kk].abs();
            }
            y[i * rows + r] = sum;
        }
    }
    y
}

/// Shapes come from the caller's own arithmetic, not from input data, so a mismatch is a bug
/// in the caller and panics with the numbers involved.
fn check_shapes(x: &[f64], w: &[f64], n: usize, k: usize, rows: usize) {
    assert_eq!(
        x.len(),
        n * k,
        "matmul: x has {} values, expected n*k = {n}*{k}",
        x.len()
    );
    assert_eq!(
        w.len(),
        rows * k,
        "matmul: w has {} values, expected rows*k = {rows}*{k}",
        w.len()
    );
}
