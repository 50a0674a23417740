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

/// `(matmul(x, w, ..), matmul_abs(x, w, ..))` in one pass, with identical results: each term's
/// `|x| * |w|` is `|x * w|` exactly (a product's rounded magnitude does not depend on the signs),
/// so one multiplication serves both sums, which are accumulated in the same order as there.
pub fn matmul_and_abs(
    x: &[f64],
    w: &[f64],
    n: usize,
    k: usize,
    rows: usize,
) -> (Vec<f64>, Vec<f64>) {
    check_shapes(x, w, n, k, rows);
    let mut y = vec![0.0; n * rows];
    let mut y_abs = vec![0.0; n * rows];
    for i in 0..n {
        let x_row = &x[i * k..(i + 1) * k];
        for r in 0..rows {
            let w_row = &w[r * k..(r + 1) * k];
            let (mut sum, mut sum_abs) = (0.0, 0.0);
            for kk in 0..k {
                let p = x_row[kk] * w_row[kk];
                sum += p;
                sum_abs += p.abs();
            }
            y[i * rows + r] = sum;
            y_abs[i * rows + r] = sum_abs;
        }
    }
    (y, y_abs)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fused_pass_equals_the_two_passes_bit_for_bit() {
        // Mixed signs, signed zeros, tiny and huge magnitudes (an LCG: no dependencies here).
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let mantissa = (state >> 11) as f64 / (1u64 << 53) as f64 - 0.5;
            match state % 7 {
                0 => -0.0,
                1 => 0.0,
                2 => mantissa * 1e-300,
                3 => mantissa * 1e300,
                _ => mantissa * 3.0,
            }
        };
        let (n, k, rows) = (3, 37, 5);
        let x: Vec<f64> = (0..n * k).map(|_| next()).collect();
        let w: Vec<f64> = (0..rows * k).map(|_| next()).collect();
        let (y, y_abs) = matmul_and_abs(&x, &w, n, k, rows);
        let bits = |v: &[f64]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&y), bits(&matmul(&x, &w, n, k, rows)));
        assert_eq!(bits(&y_abs), bits(&matmul_abs(&x, &w, n, k, rows)));
    }
}
