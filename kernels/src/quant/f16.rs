//! The unquantized formats: F32 (identity) and IEEE half precision.

use super::{check_row, GgmlType, QuantBlock};
use half::f16;

impl QuantBlock for f32 {
    const NAME: &'static str = "f32";
    const TYPE: GgmlType = GgmlType::F32;
    const VALUES: usize = 1;

    fn quantize_row(src: &[f32], dst: &mut [f32]) {
        check_row::<f32>(src.len(), dst.len());
        dst.copy_from_slice(src);
    }

    fn dequantize_row(src: &[f32], dst: &mut [f32]) {
        check_row::<f32>(dst.len(), src.len());
        dst.copy_from_slice(src);
    }
}

impl QuantBlock for f16 {
    const NAME: &'static str = "f16";
    const TYPE: GgmlType = GgmlType::F16;
    const VALUES: usize = 1;

    fn quantize_row(src: &[f32], dst: &mut [f16]) {
        check_row::<f16>(src.len(), dst.len());
        for (d, &s) in dst.iter_mut().zip(src) {
            *d = f16::from_f32(s);
        }
    }

    fn dequantize_row(src: &[f16], dst: &mut [f32]) {
        check_row::<f16>(dst.len(), src.len());
        for (d, s) in dst.iter_mut().zip(src) {
            *d = s.to_f32();
        }
    }
}
