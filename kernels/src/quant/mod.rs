//! Block formats as they are stored in GGUF files (see `shared/FORMATS.md`): the `#[repr(C)]`
//! layouts with compile-time size checks, and quantize / dequantize of whole rows.
//!
//! This module owns the storage layouts and the quantizers. It must not contain matmul or
//! attention code; those live in `matmul` and `attention` and only read these structs.

mod f16;
mod q4_0;
mod q4_1;
mod q4k;
mod q5_0;
mod q6k;
mod q8_0;
mod q8k;

pub use q4_0::BlockQ4_0;
pub use q4_1::BlockQ4_1;
pub use q4k::{q4k_scale_min, BlockQ4K};
pub use q5_0::BlockQ5_0;
pub use q6k::BlockQ6K;
pub use q8_0::BlockQ8_0;
pub use q8k::BlockQ8K;

/// Values per super-block of the K-quant formats.
pub const QK_K: usize = 256;

/// ggml's tensor type ids, as written in GGUF tensor infos.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum GgmlType {
    F32 = 0,
    F16 = 1,
    Q4_0 = 2,
    Q4_1 = 3,
    Q5_0 = 6,
    Q5_1 = 7,
    Q8_0 = 8,
    Q8_1 = 9,
    Q2K = 10,
    Q3K = 11,
    Q4K = 12,
    Q5K = 13,
    Q6K = 14,
    Q8K = 15,
    BF16 = 30,
}

impl GgmlType {
    /// The type for a GGUF type id, or `None` for an id this crate does not know.
    pub fn from_id(id: u32) -> Option<GgmlType> {
        use GgmlType::*;
        Some(match id {
            0 => F32,
            1 => F16,
            2 => Q4_0,
            3 => Q4_1,
            6 => Q5_0,
            7 => Q5_1,
            8 => Q8_0,
            9 => Q8_1,
            10 => Q2K,
            11 => Q3K,
            12 => Q4K,
            13 => Q5K,
            14 => Q6K,
            15 => Q8K,
            30 => BF16,
            _ => return None,
        })
    }

    /// (values per block, bytes per block).
    pub fn block_layout(self) -> (usize, usize) {
        use GgmlType::*;
        match self {
            F32 => (1, 4),
            F16 | BF16 => (1, 2),
            Q4_0 => (32, 18),
            Q4_1 => (32, 20),
            Q5_0 => (32, 22),
            Q5_1 => (32, 24),
            Q8_0 => (32, 34),
            Q8_1 => (32, 36),
            Q2K => (256, 84),
            Q3K => (256, 110),
            Q4K => (256, 144),
            Q5K => (256, 176),
            Q6K => (256, 210),
            Q8K => (256, 292),
        }
    }
}

/// A storage format: a fixed-size block of `VALUES` quantized numbers.
///
/// `bytemuck::Pod` lets tensors be viewed straight out of a (suitably aligned) file mapping.
pub trait QuantBlock: bytemuck::Pod {
    /// Short name as in llama.cpp (`q4_K`, `q8_0`, `f16`, ...).
    const NAME: &'static str;
    /// The GGUF type id.
    const TYPE: GgmlType;
    /// Number of values one block holds.
    const VALUES: usize;

    /// Quantizes `src` (length `dst.len() * VALUES`) into `dst`.
    fn quantize_row(src: &[f32], dst: &mut [Self]);

    /// Dequantizes `src` into `dst` (length `src.len() * VALUES`).
    fn dequantize_row(src: &[Self], dst: &mut [f32]);
}

/// Panics unless a row of `values` f32s matches `blocks` blocks of `B`.
#[track_caller]
pub(crate) fn check_row<B: QuantBlock>(values: usize, blocks: usize) {
    assert_eq!(
        values,
        blocks * B::VALUES,
        "{}: a row of {values} values needs {} blocks, got {blocks}",
        B::NAME,
        values.div_ceil(B::VALUES)
    );
}

/// Nearest integer, ties away from zero, as an `i32`. The one rounding rule every quantizer uses.
#[inline]
pub(crate) fn round_i32(x: f32) -> i32 {
    x.round() as i32
}
