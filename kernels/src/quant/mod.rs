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
pub use q8k::{quantize_q8k, BlockQ8K};

/// Values per super-block of the K-quant formats.
pub const QK_K: usize = 256;

/// Defines [`GgmlType`] from one table: each type's GGUF id and its block layout (values,
/// bytes), so the id lookup and the layout cannot disagree on the list of types.
macro_rules! ggml_types {
    ($($name:ident = $id:literal: ($values:literal, $bytes:literal),)*) => {
        /// ggml's tensor type ids, as written in GGUF tensor infos.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[repr(u32)]
        pub enum GgmlType {
            $($name = $id,)*
        }

        impl GgmlType {
            /// The type for a GGUF type id, or `None` for an id this crate does not know.
            pub fn from_id(id: u32) -> Option<GgmlType> {
                match id {
                    $($id => Some(GgmlType::$name),)*
                    _ => None,
                }
            }

            /// (values per block, bytes per block).
            pub const fn block_layout(self) -> (usize, usize) {
                match self {
                    $(GgmlType::$name => ($values, $bytes),)*
                }
            }
        }
    };
}

ggml_types! {
    F32 = 0: (1, 4),
    F16 = 1: (1, 2),
    Q4_0 = 2: (32, 18),
    Q4_1 = 3: (32, 20),
    Q5_0 = 6: (32, 22),
    Q5_1 = 7: (32, 24),
    Q8_0 = 8: (32, 34),
    Q8_1 = 9: (32, 36),
    Q2K = 10: (256, 84),
    Q3K = 11: (256, 110),
    Q4K = 12: (256, 144),
    Q5K = 13: (256, 176),
    Q6K = 14: (256, 210),
    Q8K = 15: (256, 292),
    BF16 = 30: (1, 2),
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

/// Defines a block format: the `#[repr(C)]` struct, a compile-time check that its size is the
/// [`GgmlType::block_layout`] of `$ty`, and its [`QuantBlock`] impl, whose row loops hand each
/// block and its values to the two bodies given (`quantize |x, block| ...` gets `VALUES` input
/// values and the block to fill, `dequantize |block, out| ...` the block and `VALUES` outputs).
/// `quantize_row = path;` instead of `quantize` delegates the whole row.
macro_rules! block_format {
    (
        $(#[$meta:meta])*
        pub struct $name:ident { $($(#[$fmeta:meta])* pub $field:ident: $fty:ty,)* }
        name = $sname:literal, type = $ty:ident;
        $(#[$qmeta:meta])*
        $(quantize |$x:ident, $qb:ident| $qbody:block)?
        $(quantize_row = $qrow:path;)?
        dequantize |$db:ident, $out:ident| $dbody:block
    ) => {
        $(#[$meta])*
        #[repr(C)]
        #[derive(Clone, Copy, Debug, Default, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
        pub struct $name {
            $($(#[$fmeta])* pub $field: $fty,)*
        }

        const _: () = assert!(
            std::mem::size_of::<$name>() == $crate::quant::GgmlType::$ty.block_layout().1
        );

        impl $crate::quant::QuantBlock for $name {
            const NAME: &'static str = $sname;
            const TYPE: $crate::quant::GgmlType = $crate::quant::GgmlType::$ty;
            const VALUES: usize = $crate::quant::GgmlType::$ty.block_layout().0;

            $(#[$qmeta])*
            fn quantize_row(src: &[f32], dst: &mut [Self]) {
                $(
                    $crate::quant::check_row::<Self>(src.len(), dst.len());
                    for ($x, $qb) in src.chunks_exact(Self::VALUES).zip(dst.iter_mut()) $qbody
                )?
                $($qrow(src, dst);)?
            }

            fn dequantize_row(src: &[Self], dst: &mut [f32]) {
                $crate::quant::check_row::<Self>(dst.len(), src.len());
                for ($db, $out) in src.iter().zip(dst.chunks_exact_mut(Self::VALUES)) $dbody
            }
        }
    };
}
pub(crate) use block_format;

/// Nearest integer, ties away from zero, as an `i32`. The one rounding rule every quantizer uses.
///
/// Exactly `x.round() as i32` for every input (NaN gives 0, out-of-range values saturate), without
/// the `roundf` call that baseline x86_64 makes of `round`: the truncation is one instruction,
/// `x - trunc(x)` is exact (the fraction has no more significant bits than `x`; for
/// `|x| >= 2^23` it is 0), and the fraction alone decides whether to step away from zero.
#[inline(always)]
pub(crate) fn round_i32(x: f32) -> i32 {
    let t = x as i32;
    let frac = x - t as f32;
    t.saturating_add((frac >= 0.5) as i32)
        .saturating_sub((frac <= -0.5) as i32)
}

/// [`round_i32`] for `x >= 0`: the same result, a name that says what the caller relies on.
#[inline(always)]
pub(crate) fn round_nonneg_i32(x: f32) -> i32 {
    debug_assert!(x >= 0.0 || x.is_nan(), "round_nonneg_i32({x})");
    round_i32(x)
}

/// The nearest integer of a non-negative `x` as f32, ties to even: adding and removing `2^23`
/// rounds in the FPU's default mode. Exact for `x < 2^23`; larger values come back at least as
/// large (the callers clamp them), infinity stays infinite, NaN stays NaN. Four vector ops, no
/// integer conversion, so the fits' level assignments vectorize.
#[inline(always)]
pub(crate) fn round_small(x: f32) -> f32 {
    const SHIFT: f32 = 8_388_608.0;
    (x + SHIFT) - SHIFT
}

/// Defines `quantize_rows(src, dst)` for block type `$ty`: quantizes block by block with
/// `$block`, compiled twice, for the baseline ISA (`quantize_rows_baseline`) and, on x86_64, with
/// AVX2 (`quantize_rows_avx2`), chosen at run time. Both run the same IEEE operations in the same
/// order (Rust never contracts `a*b+c` into an FMA), so the bytes are identical on every machine
/// (a test per format checks); AVX2 only widens the vectors the fits' sums compile to. `$block`
/// and everything it calls are `#[inline(always)]`, so they compile inside each version.
macro_rules! quantize_row_multiversion {
    ($ty:ty, $block:path) => {
        #[inline(always)]
        fn quantize_rows_baseline(src: &[f32], dst: &mut [$ty]) {
            $crate::quant::check_row::<$ty>(src.len(), dst.len());
            for (x, block) in src.chunks_exact($crate::quant::QK_K).zip(dst.iter_mut()) {
                *block = $block(x.try_into().expect("chunk of QK_K"));
            }
        }

        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx2")]
        fn quantize_rows_avx2(src: &[f32], dst: &mut [$ty]) {
            quantize_rows_baseline(src, dst)
        }

        fn quantize_rows(src: &[f32], dst: &mut [$ty]) {
            #[cfg(target_arch = "x86_64")]
            if std::arch::is_x86_feature_detected!("avx2") {
                // SAFETY: the CPU has AVX2, the only feature `quantize_rows_avx2` enables.
                return unsafe { quantize_rows_avx2(src, dst) };
            }
            quantize_rows_baseline(src, dst)
        }

        /// The AVX2 build of the quantizer writes the same bytes as the baseline one.
        #[cfg(all(test, target_arch = "x86_64"))]
        #[test]
        fn avx2_and_baseline_quantizers_write_the_same_bytes() {
            if !std::arch::is_x86_feature_detected!("avx2") {
                eprintln!(
                    "SKIPPED avx2_and_baseline_quantizers_write_the_same_bytes: CPU lacks AVX2"
                );
                return;
            }
            let src = $crate::quant::multiversion_test_input();
            let mut a =
                vec![<$ty as bytemuck::Zeroable>::zeroed(); src.len() / $crate::quant::QK_K];
            let mut b = a.clone();
            quantize_rows_baseline(&src, &mut a);
            // SAFETY: the CPU has AVX2 (checked above).
            unsafe { quantize_rows_avx2(&src, &mut b) };
            assert!(bytemuck::cast_slice::<_, u8>(&a) == bytemuck::cast_slice::<_, u8>(&b));
        }
    };
}

/// The [`QuantBlock`] impl of a K-quant super-block type `$ty` (GGUF type `$ggml`): rows
/// quantized block by block with `$block` (through [`quantize_row_multiversion`]), dequantized
/// with the type's `dequantize`.
macro_rules! k_format {
    ($ty:ty, $name:literal, $ggml:ident, $block:path) => {
        $crate::quant::quantize_row_multiversion!($ty, $block);

        impl $crate::quant::QuantBlock for $ty {
            const NAME: &'static str = $name;
            const TYPE: $crate::quant::GgmlType = $crate::quant::GgmlType::$ggml;
            const VALUES: usize = $crate::quant::QK_K;

            fn quantize_row(src: &[f32], dst: &mut [Self]) {
                quantize_rows(src, dst)
            }

            fn dequantize_row(src: &[Self], dst: &mut [f32]) {
                $crate::quant::check_row::<Self>(dst.len(), src.len());
                for (block, out) in src.iter().zip(dst.chunks_exact_mut($crate::quant::QK_K)) {
                    block.dequantize(out.try_into().expect("chunk of QK_K"));
                }
            }
        }
    };
}
pub(crate) use k_format;

/// 64 blocks of uniform values of very different magnitudes (10^-3 to 10^3), some all zero.
#[cfg(all(test, target_arch = "x86_64"))]
pub(crate) fn multiversion_test_input() -> Vec<f32> {
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    (0..64 * QK_K)
        .map(|i| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let u = (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5;
            if (i / QK_K) % 9 == 4 {
                0.0
            } else {
                u * 10f32.powi((i / QK_K) as i32 % 7 - 3)
            }
        })
        .collect()
}
pub(crate) use quantize_row_multiversion;

/// `sum_i f(i)` for `i < N` (`N` a multiple of 8) in eight interleaved partial sums added by a
/// fixed tree: a fixed order, so every machine gets the same bits, and one the compiler turns
/// into vector adds instead of a chain of `N` dependent scalar ones. The quantizers' fits run
/// these sums tens of times per value.
#[inline(always)]
pub(crate) fn lane_sum<const N: usize>(f: impl Fn(usize) -> f32) -> f32 {
    let mut acc = [0f32; 8];
    for i in (0..N).step_by(8) {
        for (j, a) in acc.iter_mut().enumerate() {
            *a += f(i + j);
        }
    }
    ((acc[0] + acc[4]) + (acc[2] + acc[6])) + ((acc[1] + acc[5]) + (acc[3] + acc[7]))
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The fast rounding equals `f32::round` on ties, near-ties, huge, tiny, infinite and NaN
    /// values, and on a sweep of random bit patterns.
    #[test]
    fn round_i32_is_round_for_every_kind_of_input() {
        let mut cases = vec![
            0.0f32,
            -0.0,
            0.5,
            -0.5,
            1.5,
            -1.5,
            2.5,
            -2.5,
            0.49999997,
            -0.49999997,
            0.50000006,
            8388607.5,
            -8388607.5,
            8388608.0,
            16777217.0,
            2147483520.0,
            2147483648.0,
            -2147483648.0,
            -2147483904.0,
            1e30,
            -1e30,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NAN,
            f32::MIN_POSITIVE,
            1e-45,
        ];
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        for _ in 0..1_000_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            cases.push(f32::from_bits(state as u32));
        }
        for x in cases {
            assert_eq!(
                round_i32(x),
                x.round() as i32,
                "round_i32({x:e}) [{:#x}]",
                x.to_bits()
            );
        }
    }

    #[test]
    fn lane_sum_adds_every_term_once() {
        let v: Vec<f32> = (0..32).map(|i| (i * i) as f32).collect();
        assert_eq!(lane_sum::<32>(|i| v[i]), v.iter().sum::<f32>());
        assert_eq!(lane_sum::<16>(|i| v[i]), v[..16].iter().sum::<f32>());
    }
}
