//! Block formats decoded straight from their little-endian bytes, as `shared/FORMATS.md` lays
//! them out, into exact f64 values; and the one quantizer the harness needs to check (Q8_K).
//!
//! Nothing here reads the `kernels` structs: every field is located by its byte offset in the
//! block, so a wrong `#[repr(C)]` layout or a misread bit in `kernels` shows up as a mismatch
//! instead of being reproduced.
//!
//! Why the decoded values are exact in f64: a value is one product of integers and an f16 or
//! f32 scale, or (Q4_K, Q4_1) the sum of two such products. The widest product is an f32 scale
//! (24-bit significand) times an i8 quant: 32 bits; Q6_K's f16 * i8 scale * 6-bit quant needs
//! 11 + 8 + 6 = 25. For the sums, every f16 is an integer multiple of 2^-24 and both terms stay
//! below 65504 * 63 * 15 < 2^26, so the sum is a multiple of 2^-24 below 2^27: 51 bits. All of
//! it fits the 53-bit f64 significand, so the decode below never rounds.

use half::f16;
use std::fmt;

/// Values per super-block of the K-quant formats.
pub const QK_K: usize = 256;

/// The block formats the reference can decode. F32 and F16 are "blocks" of one value.
#[allow(non_camel_case_types)] // the ggml names (Q4_0, Q4_K) are what every reader knows
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    F32,
    F16,
    Q4_0,
    Q4_1,
    Q5_0,
    Q8_0,
    Q8_1,
    Q4K,
    Q6K,
    Q8K,
}

impl Format {
    /// Every format, for tests and CLI listings.
    pub const ALL: [Format; 10] = [
        Format::F32,
        Format::F16,
        Format::Q4_0,
        Format::Q4_1,
        Format::Q5_0,
        Format::Q8_0,
        Format::Q8_1,
        Format::Q4K,
        Format::Q6K,
        Format::Q8K,
    ];

    /// Values held by one block.
    pub fn block_values(self) -> usize {
        match self {
            Format::F32 | Format::F16 => 1,
            Format::Q4_0 | Format::Q4_1 | Format::Q5_0 | Format::Q8_0 | Format::Q8_1 => 32,
            Format::Q4K | Format::Q6K | Format::Q8K => QK_K,
        }
    }

    /// Bytes of one block.
    pub fn block_bytes(self) -> usize {
        match self {
            Format::F32 => 4,
            Format::F16 => 2,
            Format::Q4_0 => 18,
            Format::Q4_1 => 20,
            Format::Q5_0 => 22,
            Format::Q8_0 => 34,
            Format::Q8_1 => 36,
            Format::Q4K => 144,
            Format::Q6K => 210,
            Format::Q8K => 292,
        }
    }

    /// ggml's lower-case name ("q4_K"), as llama.cpp prints it.
    pub fn name(self) -> &'static str {
        match self {
            Format::F32 => "f32",
            Format::F16 => "f16",
            Format::Q4_0 => "q4_0",
            Format::Q4_1 => "q4_1",
            Format::Q5_0 => "q5_0",
            Format::Q8_0 => "q8_0",
            Format::Q8_1 => "q8_1",
            Format::Q4K => "q4_K",
            Format::Q6K => "q6_K",
            Format::Q8K => "q8_K",
        }
    }

    /// The ggml type id written in GGUF tensor infos.
    pub fn ggml_type(self) -> u32 {
        match self {
            Format::F32 => 0,
            Format::F16 => 1,
            Format::Q4_0 => 2,
            Format::Q4_1 => 3,
            Format::Q5_0 => 6,
            Format::Q8_0 => 8,
            Format::Q8_1 => 9,
            Format::Q4K => 12,
            Format::Q6K => 14,
            Format::Q8K => 15,
        }
    }

    /// The format with this ggml type id, if the reference knows it.
    pub fn from_ggml_type(id: u32) -> Option<Format> {
        Format::ALL.into_iter().find(|f| f.ggml_type() == id)
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why the reference refused its input.
#[derive(Debug, Clone, PartialEq)]
pub enum RefError {
    /// A byte row that is not a whole number of blocks.
    NotWholeBlocks { format: Format, bytes: usize },
    /// A value count the quantizer cannot split into whole blocks.
    NotWholeBlockValues { format: Format, values: usize },
    /// A Q8_K block whose stored `bsums[group]` is not the sum of its 16 quants.
    Q8KBsumMismatch {
        block: usize,
        group: usize,
        stored: i16,
        actual: i32,
    },
    /// A NaN or infinity given to a quantizer (the format has no way to represent it).
    NonFiniteInput { index: usize, value: f32 },
    /// A quant that does not fit the format's integer type (cannot happen for finite input,
    /// reported rather than wrapped so that a violated assumption is visible).
    QuantOutOfRange { index: usize, quant: f32 },
}

impl fmt::Display for RefError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RefError::NotWholeBlocks { format, bytes } => write!(
                f,
                "{bytes} bytes is not a whole number of {format} blocks ({} bytes each)",
                format.block_bytes()
            ),
            RefError::NotWholeBlockValues { format, values } => write!(
                f,
                "{values} values is not a whole number of {format} blocks ({} values each)",
                format.block_values()
            ),
            RefError::Q8KBsumMismatch {
                block,
                group,
                stored,
                actual,
            } => write!(
                f,
                "q8_K block {block}: bsums[{group}] = {stored} but its 16 quants sum to {actual}"
            ),
            RefError::NonFiniteInput { index, value } => {
                write!(
                    f,
                    "input value {index} is {value}, which cannot be quantized"
                )
            }
            RefError::QuantOutOfRange { index, quant } => {
                write!(f, "quant of value {index} is {quant}, outside the i8 range")
            }
        }
    }
}

impl std::error::Error for RefError {}

/// Every value of a row of blocks, exactly, in f64.
pub fn dequantize(format: Format, bytes: &[u8]) -> Result<Vec<f64>, RefError> {
    Ok(decode_row(format, bytes)?.values)
}

/// Per value, the sum of the magnitudes of the terms the format adds to form it: for Q4_K
/// |d*sc*q| + |dmin*m|, for Q4_1 |d*q| + |m|, for the others |value|. Used by the harness to
/// bound floating-point cancellation error.
pub fn term_magnitudes(format: Format, bytes: &[u8]) -> Result<Vec<f64>, RefError> {
    Ok(decode_row(format, bytes)?.term_magnitudes)
}

/// The values of a row and, beside each, the summed magnitudes of the terms that formed it.
/// One decoder fills both so the two can never disagree about the layout.
struct DecodedRow {
    values: Vec<f64>,
    term_magnitudes: Vec<f64>,
}

impl DecodedRow {
    /// A value that is a single product (no cancellation inside it).
    fn push_product(&mut self, value: f64) {
        self.values.push(value);
        self.term_magnitudes.push(value.abs());
    }

    /// A value formed as `scaled + offset`.
    fn push_sum(&mut self, scaled: f64, offset: f64) {
        self.values.push(scaled + offset);
        self.term_magnitudes.push(scaled.abs() + offset.abs());
    }
}

fn decode_row(format: Format, bytes: &[u8]) -> Result<DecodedRow, RefError> {
    let block_bytes = format.block_bytes();
    if !bytes.len().is_multiple_of(block_bytes) {
        return Err(RefError::NotWholeBlocks {
            format,
            bytes: bytes.len(),
        });
    }
    let n_values = bytes.len() / block_bytes * format.block_values();
    let mut row = DecodedRow {
        values: Vec::with_capacity(n_values),
        term_magnitudes: Vec::with_capacity(n_values),
    };
    for (block_index, block) in bytes.chunks_exact(block_bytes).enumerate() {
        match format {
            Format::F32 => row.push_product(f32_at(block, 0)),
            Format::F16 => row.push_product(f16_at(block, 0)),
            Format::Q4_0 => decode_q4_0(block, &mut row),
            Format::Q4_1 => decode_q4_1(block, &mut row),
            Format::Q5_0 => decode_q5_0(block, &mut row),
            Format::Q8_0 => decode_q8_0(block, &mut row),
            Format::Q8_1 => decode_q8_1(block, &mut row),
            Format::Q4K => decode_q4k(block, &mut row),
            Format::Q6K => decode_q6k(block, &mut row),
            Format::Q8K => decode_q8k(block, block_index, &mut row)?,
        }
        debug_assert_eq!(row.values.len(), (block_index + 1) * format.block_values());
    }
    Ok(row)
}

// Field readers. Callers pass blocks cut by `chunks_exact(block_bytes)`, and every offset
// below is a constant inside that size, so the slicing cannot fail on any input.

fn f16_at(block: &[u8], offset: usize) -> f64 {
    f64::from(f16::from_le_bytes([block[offset], block[offset + 1]]).to_f32())
}

fn f32_at(block: &[u8], offset: usize) -> f64 {
    let b = &block[offset..offset + 4];
    f64::from(f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

fn i16_at(block: &[u8], offset: usize) -> i16 {
    i16::from_le_bytes([block[offset], block[offset + 1]])
}

/// The 4-bit quant of value `i` of a 32-value block whose 16 `qs` bytes hold values 0..15 in
/// their low nibbles and 16..31 in their high nibbles.
fn nibble_of_32(qs: &[u8], i: usize) -> u8 {
    if i < 16 {
        qs[i] & 0xF
    } else {
        qs[i - 16] >> 4
    }
}

/// Q4_0, 18 bytes: f16 d, u8 qs[16]; value = d*(q-8).
fn decode_q4_0(block: &[u8], row: &mut DecodedRow) {
    let d = f16_at(block, 0);
    let qs = &block[2..18];
    for i in 0..32 {
        let q = f64::from(nibble_of_32(qs, i)) - 8.0;
        row.push_product(d * q);
    }
}

/// Q4_1, 20 bytes: f16 d, f16 m, u8 qs[16]; value = d*q + m.
fn decode_q4_1(block: &[u8], row: &mut DecodedRow) {
    let d = f16_at(block, 0);
    let m = f16_at(block, 2);
    let qs = &block[4..20];
    for i in 0..32 {
        let q = f64::from(nibble_of_32(qs, i));
        row.push_sum(d * q, m);
    }
}

/// Q5_0, 22 bytes: f16 d, u8 qh[4] (bit i of the little-endian u32 is the 5th bit of value i),
/// u8 qs[16]; value = d*((q | h<<4) - 16).
fn decode_q5_0(block: &[u8], row: &mut DecodedRow) {
    let d = f16_at(block, 0);
    let qh = u32::from_le_bytes([block[2], block[3], block[4], block[5]]);
    let qs = &block[6..22];
    for i in 0..32 {
        let high_bit = ((qh >> i) & 1) as u8;
        let q = nibble_of_32(qs, i) | (high_bit << 4);
        row.push_product(d * (f64::from(q) - 16.0));
    }
}

/// Q8_0, 34 bytes: f16 d, i8 qs[32]; value = d*q.
/// Q8_1: `f16 d`, `f16 s` (= d * sum of qs, not needed for the values), `i8 qs[32]`.
fn decode_q8_1(block: &[u8], row: &mut DecodedRow) {
    let d = f16_at(block, 0);
    for &byte in &block[4..36] {
        row.push_product(d * f64::from(byte as i8));
    }
}

fn decode_q8_0(block: &[u8], row: &mut DecodedRow) {
    let d = f16_at(block, 0);
    for &byte in &block[2..34] {
        row.push_product(d * f64::from(byte as i8));
    }
}

/// The 6-bit scale and min of Q4_K sub-block `j` (0..8) from the 12 packed `scales` bytes:
/// sub-blocks 0..3 use the low 6 bits of bytes 0..7; sub-blocks 4..7 take their low 4 bits
/// from bytes 8..11 and their top 2 bits from the spare top bits of bytes 0..7.
pub fn q4k_sub_block_scale_min(scales: &[u8; 12], j: usize) -> (u8, u8) {
    assert!(j < 8, "Q4_K has 8 sub-blocks, asked for {j}");
    if j < 4 {
        (scales[j] & 63, scales[j + 4] & 63)
    } else {
        let sc = (scales[j + 4] & 0xF) | ((scales[j - 4] >> 6) << 4);
        let m = (scales[j + 4] >> 4) | ((scales[j] >> 6) << 4);
        (sc, m)
    }
}

/// Q4_K, 144 bytes: f16 d, f16 dmin, u8 scales[12], u8 qs[128]. Sub-block j (32 values) has
/// value d*sc_j*q - dmin*m_j; chunk c of 32 qs bytes holds sub-block 2c in its low nibbles and
/// sub-block 2c+1 in its high nibbles, so walking j then l visits values in order.
fn decode_q4k(block: &[u8], row: &mut DecodedRow) {
    let d = f16_at(block, 0);
    let dmin = f16_at(block, 2);
    let mut scales = [0u8; 12];
    scales.copy_from_slice(&block[4..16]);
    let qs = &block[16..144];
    for j in 0..8 {
        let (sc, m) = q4k_sub_block_scale_min(&scales, j);
        let chunk = &qs[32 * (j / 2)..32 * (j / 2) + 32];
        for &byte in chunk {
            let q = if j % 2 == 0 { byte & 0xF } else { byte >> 4 };
            let scaled = d * f64::from(sc) * f64::from(q);
            let offset = -(dmin * f64::from(m));
            row.push_sum(scaled, offset);
        }
    }
}

/// Q6_K, 210 bytes: u8 ql[128], u8 qh[64], i8 scales[16], f16 d (last). Each half of 128 values
/// has its own 64 ql bytes, 32 qh bytes and 8 scales; within a half, value p (0..128) comes
/// from part p/32: low or high nibble of ql[l] or ql[l+32] and a 2-bit field of qh[l].
/// The scale of value n is scales[n/16].
fn decode_q6k(block: &[u8], row: &mut DecodedRow) {
    let ql_all = &block[0..128];
    let qh_all = &block[128..192];
    let scales = &block[192..208];
    let d = f16_at(block, 208);
    for half in 0..2 {
        let ql = &ql_all[64 * half..64 * half + 64];
        let qh = &qh_all[32 * half..32 * half + 32];
        let mut q6 = [0u8; 128];
        for l in 0..32 {
            q6[l] = (ql[l] & 0xF) | ((qh[l] & 3) << 4);
            q6[l + 32] = (ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4);
            q6[l + 64] = (ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4);
            q6[l + 96] = (ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4);
        }
        for (p, &q) in q6.iter().enumerate() {
            let sc = scales[8 * half + p / 16] as i8;
            row.push_product(d * f64::from(sc) * (f64::from(q) - 32.0));
        }
    }
}

/// Q8_K, 292 bytes: f32 d, i8 qs[256], i16 bsums[16]; value = d*q. The bsums are not part of
/// the values, but a kernel may use them instead of the quants, so a block whose bsums
/// disagree with its quants is refused rather than decoded.
fn decode_q8k(block: &[u8], block_index: usize, row: &mut DecodedRow) -> Result<(), RefError> {
    let d = f32_at(block, 0);
    let qs = &block[4..260];
    for group in 0..16 {
        let actual: i32 = qs[16 * group..16 * group + 16]
            .iter()
            .map(|&b| i32::from(b as i8))
            .sum();
        let stored = i16_at(block, 260 + 2 * group);
        if i32::from(stored) != actual {
            return Err(RefError::Q8KBsumMismatch {
                block: block_index,
                group,
                stored,
                actual,
            });
        }
    }
    for &byte in qs {
        row.push_product(d * f64::from(byte as i8));
    }
    Ok(())
}

/// Q8_K from the spec, in f32 as the spec states, returned as raw bytes (292 per 256 values).
///
/// Per block: `max` is the first value of largest magnitude, sign kept; `scale = -127/max`;
/// `q = min(127, round(scale*x))`; `d = 1/scale`; `bsums[g]` = sum of qs[16g..16g+16].
/// "round" is round-half-to-even, as ggml's `nearest_int` (the 1.5*2^23 trick) and its SIMD
/// quantizers (`_mm256_round_ps` nearest) do; `f32::round` would send ties away from zero.
/// An all-zero block gets d = 0 and zero quants (ggml's choice; -127/0 has no meaning).
pub fn quantize_q8k(x: &[f32]) -> Result<Vec<u8>, RefError> {
    if !x.len().is_multiple_of(QK_K) {
        return Err(RefError::NotWholeBlockValues {
            format: Format::Q8K,
            values: x.len(),
        });
    }
    if let Some((index, &value)) = x.iter().enumerate().find(|(_, v)| !v.is_finite()) {
        return Err(RefError::NonFiniteInput { index, value });
    }
    let mut out = Vec::with_capacity(x.len() / QK_K * Format::Q8K.block_bytes());
    for (block_index, values) in x.chunks_exact(QK_K).enumerate() {
        let mut max = 0.0f32;
        for &v in values {
            if v.abs() > max.abs() {
                max = v;
            }
        }
        let mut qs = [0i8; QK_K];
        let d: f32 = if max == 0.0 {
            0.0
        } else {
            let scale = -127.0f32 / max;
            for (i, (&v, q)) in values.iter().zip(qs.iter_mut()).enumerate() {
                let rounded = (scale * v).round_ties_even().min(127.0);
                if rounded < -128.0 {
                    return Err(RefError::QuantOutOfRange {
                        index: block_index * QK_K + i,
                        quant: rounded,
                    });
                }
                *q = rounded as i8;
            }
            1.0 / scale
        };
        out.extend_from_slice(&d.to_le_bytes());
        out.extend(qs.iter().map(|&q| q as u8));
        for group in qs.chunks_exact(16) {
            let bsum: i16 = group.iter().map(|&q| i16::from(q)).sum();
            out.extend_from_slice(&bsum.to_le_bytes());
        }
    }
    Ok(out)
}

/// The activation quantizers of the 32-value integer designs, from their specification (ggml's
/// reference `quantize_row_q8_0` / `quantize_row_q8_1`, as `kernels::matmul::block32` states
/// it), in f32 as the specification computes, returned as raw bytes (34 / 36 per 32 values).
///
/// Per block: `amax = max |x|`; `d = amax / 127` (f32); `id = 1/d`, or 0 when that is not
/// finite (`d = 0`, or `d` so small its reciprocal overflows); `q = round(x * id)` with ties
/// **away from zero** (C `roundf`, Rust `f32::round`; not the ties-to-even of Q8_K), clamped to
/// -127..=127; stored `d` = f16(d) (nearest, ties to even, saturated at +-65504). Q8_1 adds
/// `s` = f16(f32(sum q) * d), saturated alike.
fn quantize_32(x: &[f32], format: Format) -> Result<Vec<u8>, RefError> {
    if !x.len().is_multiple_of(32) {
        return Err(RefError::NotWholeBlockValues {
            format,
            values: x.len(),
        });
    }
    if let Some((index, &value)) = x.iter().enumerate().find(|(_, v)| !v.is_finite()) {
        return Err(RefError::NonFiniteInput { index, value });
    }
    let mut out = Vec::with_capacity(x.len() / 32 * format.block_bytes());
    for values in x.chunks_exact(32) {
        let mut amax = 0.0f32;
        for &v in values {
            if v.abs() > amax {
                amax = v.abs();
            }
        }
        let d = amax / 127.0;
        let id = if d > 0.0 && (1.0 / d).is_finite() {
            1.0 / d
        } else {
            0.0
        };
        let qs: Vec<i8> = values
            .iter()
            .map(|&v| (v * id).round().clamp(-127.0, 127.0) as i8)
            .collect();
        // f16 rounding to nearest, saturating at +-65504 (ggml's would overflow to infinity).
        let to_f16 = |v: f32| {
            f16::from_f32(v.clamp(-65504.0, 65504.0))
                .to_bits()
                .to_le_bytes()
        };
        out.extend_from_slice(&to_f16(d));
        if format == Format::Q8_1 {
            let sum: i32 = qs.iter().map(|&q| i32::from(q)).sum();
            out.extend_from_slice(&to_f16(sum as f32 * d));
        }
        out.extend(qs.iter().map(|&q| q as u8));
    }
    Ok(out)
}

/// Q8_0 activations from the specification (see [`quantize_32`]'s rule), as raw bytes.
pub fn quantize_q8_0(x: &[f32]) -> Result<Vec<u8>, RefError> {
    quantize_32(x, Format::Q8_0)
}

/// Q8_1 activations from the specification, as raw bytes.
pub fn quantize_q8_1(x: &[f32]) -> Result<Vec<u8>, RefError> {
    quantize_32(x, Format::Q8_1)
}
