//! The unquantized formats: F32 (identity) and IEEE half precision.

use super::{check_row, GgmlType, QuantBlock};
use half::f16;

/// The [`QuantBlock`] impl of a one-value element type `$t`, converted value by value.
macro_rules! element_format {
    ($t:ty, $name:literal, $ty:ident, from_f32: $from:expr, to_f32: $to:expr) => {
        impl QuantBlock for $t {
            const NAME: &'static str = $name;
            const TYPE: GgmlType = GgmlType::$ty;
            const VALUES: usize = 1;

            fn quantize_row(src: &[f32], dst: &mut [$t]) {
                check_row::<$t>(src.len(), dst.len());
                for (d, &s) in dst.iter_mut().zip(src) {
                    *d = $from(s);
                }
            }

            fn dequantize_row(src: &[$t], dst: &mut [f32]) {
                check_row::<$t>(dst.len(), src.len());
                for (d, &s) in dst.iter_mut().zip(src) {
                    *d = $to(s);
                }
            }
        }
    };
}

element_format!(f32, "f32", F32, from_f32: |s: f32| s, to_f32: |s: f32| s);
element_format!(f16, "f16", F16, from_f32: f16::from_f32, to_f32: f16::to_f32);
