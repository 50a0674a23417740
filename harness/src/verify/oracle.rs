//! What every matmul family of the gate (the 256-value formats in [`super::matmul`], the
//! 32-value ones in [`super::block32`]) checks a kernel's output with: the f64 oracle of a case,
//! the comparison against it (and that the stride padding of `y` was not written), the
//! comparison with the scalar variant, and the whole f32-design check.

use super::bounds::matmul_f32_rel;
use super::Metrics;
use kernels::matmul::MatmulDims;
use reference::quant::Format;

/// The f64 oracle results for one case.
pub struct Oracle {
    /// Reference result.
    pub want: Vec<f64>,
    /// Per output, the error bound.
    pub bound: Vec<f64>,
    /// Per output, the condition scale sum |w x| (for the relative error).
    pub scale: Vec<f64>,
}

/// An output matrix of NaN, so a value the kernel did not write cannot pass.
pub fn sentinel_y(dims: &MatmulDims) -> Vec<f32> {
    vec![f32::NAN; dims.n * dims.y_stride]
}

/// Checks one output matrix against the oracle, and that the stride padding was not written.
pub fn compare(got: &[f32], oracle: &Oracle, dims: &MatmulDims) -> Result<Metrics, String> {
    let mut m = Metrics::default();
    for i in 0..dims.n {
        for r in 0..dims.rows {
            let o = i * dims.rows + r;
            m.record(
                got[i * dims.y_stride + r] as f64,
                oracle.want[o],
                oracle.scale[o],
                oracle.bound[o],
            )
            .map_err(|e| format!("output (n={i}, row={r}): {e}"))?;
        }
        for p in dims.rows..dims.y_stride {
            if !got[i * dims.y_stride + p].is_nan() {
                return Err(format!("wrote y padding at (n={i}, col={p})"));
            }
        }
    }
    Ok(m)
}

/// Compares a SIMD variant with scalar: exact bits (`bound` None), or within twice `bound`
/// per output (each is within `bound` of the reference).
pub fn compare_with_scalar(
    got: &[f32],
    scalar: &[f32],
    bound: Option<&[f64]>,
    dims: &MatmulDims,
) -> Result<(), String> {
    for i in 0..dims.n {
        for r in 0..dims.rows {
            let (a, b) = (got[i * dims.y_stride + r], scalar[i * dims.y_stride + r]);
            let ok = match bound {
                None => a.to_bits() == b.to_bits(),
                Some(bound) => ((a - b) as f64).abs() <= 2.0 * bound[i * dims.rows + r],
            };
            if !ok {
                return Err(format!(
                    "differs from scalar at (n={i}, row={r}): {a:e} vs scalar {b:e}{}",
                    if bound.is_none() {
                        " (must be bit-exact)"
                    } else {
                        ""
                    }
                ));
            }
        }
    }
    Ok(())
}

/// The reference's refusal of an input, as a check failure.
pub fn ref_err(e: reference::quant::RefError) -> String {
    format!("reference rejected the input: {e}")
}

/// A kernel under test with the f32 design's signature.
pub type F32Kernel<'a, W> = &'a dyn Fn(&[f32], &[W], &mut [f32], MatmulDims);

/// A case of the f32 design, generated, with its oracle.
pub struct F32Prepared<W> {
    pub w: Vec<W>,
    pub x: Vec<f32>,
    pub oracle: Oracle,
}

impl<W: bytemuck::Pod> F32Prepared<W> {
    /// The oracle of weights `w` (`dims.rows` rows in format `format`) times f32 activations
    /// `x`: the f64 product of the dequantized weights, within `gamma(k + 2) sum |w x|`
    /// ([`matmul_f32_rel`]: one rounding per product and sum, plus the dequantization's).
    pub fn new(w: Vec<W>, x: Vec<f32>, format: Format, dims: &MatmulDims) -> Result<Self, String> {
        let wf = reference::quant::dequantize(format, bytemuck::cast_slice(&w)).map_err(ref_err)?;
        let xf: Vec<f64> = x.iter().map(|&v| v as f64).collect();
        let (want, scale) = reference::matmul::matmul_and_abs(&xf, &wf, dims.n, dims.k, dims.rows);
        let g = matmul_f32_rel(dims.k);
        let bound: Vec<f64> = scale.iter().map(|s| g * s).collect();
        let oracle = Oracle { want, bound, scale };
        Ok(F32Prepared { w, x, oracle })
    }

    /// f32 design: `kernel` against the reference and, when given, against `scalar`.
    pub fn check(
        &self,
        dims: MatmulDims,
        kernel: F32Kernel<W>,
        scalar: Option<F32Kernel<W>>,
    ) -> Result<Metrics, String> {
        let mut y = sentinel_y(&dims);
        kernel(&self.x, &self.w, &mut y, dims);
        let metrics = compare(&y, &self.oracle, &dims)?;
        if let Some(scalar) = scalar {
            let mut ys = sentinel_y(&dims);
            scalar(&self.x, &self.w, &mut ys, dims);
            compare_with_scalar(&y, &ys, Some(&self.oracle.bound), &dims)?;
        }
        Ok(metrics)
    }
}

/// A kernel under test on quantized activations `A` (Q8_K blocks, or a 32-value family's Q8_0 /
/// Q8_1 blocks).
pub type IntKernel<'a, A, W> = &'a dyn Fn(&A, &[W], &mut [f32], MatmulDims);

/// A case of an integer design, generated, with its two oracles: `tight`, the reference on the
/// quantized activations (the kernel's own bound), and `total`, the reference on the f32
/// activations they were quantized from (the reported figures, quantization included; `None`
/// when the blocks were built directly, so there is no quantization error to account for).
pub struct IntPrepared<A, W> {
    pub w: Vec<W>,
    pub xq: A,
    pub tight: Oracle,
    pub total: Option<Oracle>,
}

impl<A, W> IntPrepared<A, W> {
    /// `kernel` against the tight oracle, reported against the total one (`bound_use` stays
    /// the kernel's own, against the tight bound); when given, bit-exact against `scalar`.
    pub fn check(
        &self,
        dims: MatmulDims,
        kernel: IntKernel<A, W>,
        scalar: Option<IntKernel<A, W>>,
    ) -> Result<Metrics, String> {
        let mut y = sentinel_y(&dims);
        kernel(&self.xq, &self.w, &mut y, dims);
        let mut metrics = compare(&y, &self.tight, &dims)?;
        if let Some(total) = &self.total {
            let own_bound_use = metrics.max_bound_use;
            metrics = compare(&y, total, &dims)?;
            metrics.max_bound_use = own_bound_use;
        }
        if let Some(scalar) = scalar {
            let mut ys = sentinel_y(&dims);
            scalar(&self.xq, &self.w, &mut ys, dims);
            compare_with_scalar(&y, &ys, None, &dims)?;
        }
        Ok(metrics)
    }
}
