//! Block formats as they are stored in GGUF files (see `docs/FORMATS.md`): the `#[repr(C)]`
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
mod q8_1;
mod q8k;

pub use q4_0::BlockQ4_0;
pub use q4_1::BlockQ4_1;
pub use q4k::{
    pack_scale_min as q4k_pack_scales_mins, q4k_scale_min, q4k_unpack_scales_mins, BlockQ4K,
};
pub use q5_0::BlockQ5_0;
pub use q6k::BlockQ6K;
pub use q8_0::BlockQ8_0;
pub use q8_1::BlockQ8_1;
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

/// `round_i32` for `x >= 0` only, without the `roundf` call: truncating `x + 0.5` rounds ties
/// upwards, which for non-negative `x` is the same rule. The scale searches run it tens of
/// times per value, so it is worth the restriction.
#[inline(always)]
pub(crate) fn round_nonneg_i32(x: f32) -> i32 {
    debug_assert!(x >= 0.0 || x.is_nan(), "round_nonneg_i32({x})");
    (x + 0.5) as i32
}

/// The nearest finite f16: a block scale beyond the f16 range saturates at +-65504 instead of
/// becoming infinite (which would turn every zero value of the block into NaN on dequantize).
#[inline]
pub fn f16_saturating(x: f32) -> half::f16 {
    let max = half::f16::MAX.to_f32();
    half::f16::from_f32(x.clamp(-max, max))
}

/// The block divided by a power of two `2^e` that brings its largest magnitude into about [1, 2),
/// and `e`; `None` for an all-zero block.
///
/// The scale searches work on this copy: the division is exact (barring values that become
/// subnormal, far below anything a 4- or 6-bit code resolves), and their sums of squares and
/// products of sums can then neither overflow nor underflow f32, whatever the input's magnitude.
/// The caller multiplies the fitted scales back by `2^e` (see [`scale_up_pow2`]).
pub(crate) fn normalized_block<const N: usize>(x: &[f32; N]) -> Option<([f32; N], i32)> {
    let amax = x.iter().fold(0f32, |a, v| a.max(v.abs()));
    if amax == 0.0 {
        return None;
    }
    debug_assert!(amax.is_finite(), "finite input expected");
    // f64 holds 2^-e for every f32 exponent, subnormals included.
    let e = (amax as f64).log2().floor() as i32;
    let inv = 2f64.powi(-e);
    Some((x.map(|v| (v as f64 * inv) as f32), e))
}

/// `x * 2^e` as f32 (infinite if out of range; callers saturate when storing as f16).
#[inline]
pub(crate) fn scale_up_pow2(x: f32, e: i32) -> f32 {
    (x as f64 * 2f64.powi(e)) as f32
}
