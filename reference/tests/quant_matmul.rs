//! Hand-built blocks with values worked out by hand from `docs/FORMATS.md`, the error cases,
//! and matmul on small exact integer cases. Expected values are exact (every decode is exact in
//! f64, see `quant.rs`), so comparisons are `==` unless a bound is written beside them.

use reference::matmul::{matmul, matmul_abs};
use reference::quant::{
    dequantize, q4k_sub_block_scale_min, quantize_q8k, term_magnitudes, Format, RefError, QK_K,
};

// f16 bit patterns, little-endian bytes.
const F16_ONE: [u8; 2] = [0x00, 0x3C];
const F16_HALF: [u8; 2] = [0x00, 0x38];
const F16_QUARTER: [u8; 2] = [0x00, 0x34];
const F16_TWO: [u8; 2] = [0x00, 0x40];
const F16_MINUS_ONE: [u8; 2] = [0x00, 0xBC];

fn assert_values(format: Format, bytes: &[u8], expected: &[f64]) {
    let got = dequantize(format, bytes).expect("valid block");
    assert_eq!(got.len(), expected.len(), "{format}: value count");
    for (i, (&g, &e)) in got.iter().zip(expected).enumerate() {
        assert_eq!(g, e, "{format}: value {i}");
    }
}

#[test]
fn format_table_matches_formats_md() {
    let table = [
        (Format::F32, 1, 4, 0, "f32"),
        (Format::F16, 1, 2, 1, "f16"),
        (Format::Q4_0, 32, 18, 2, "q4_0"),
        (Format::Q4_1, 32, 20, 3, "q4_1"),
        (Format::Q5_0, 32, 22, 6, "q5_0"),
        (Format::Q8_0, 32, 34, 8, "q8_0"),
        (Format::Q8_1, 32, 36, 9, "q8_1"),
        (Format::Q4K, 256, 144, 12, "q4_K"),
        (Format::Q6K, 256, 210, 14, "q6_K"),
        (Format::Q8K, 256, 292, 15, "q8_K"),
    ];
    assert_eq!(table.len(), Format::ALL.len());
    for (format, values, bytes, ggml_type, name) in table {
        assert_eq!(format.block_values(), values, "{format:?}");
        assert_eq!(format.block_bytes(), bytes, "{format:?}");
        assert_eq!(format.ggml_type(), ggml_type, "{format:?}");
        assert_eq!(format.name(), name, "{format:?}");
        assert_eq!(Format::from_ggml_type(ggml_type), Some(format));
    }
    assert_eq!(Format::from_ggml_type(7), None, "Q5_1 is not supported");
}

#[test]
fn f32_and_f16_decode_exactly() {
    let mut bytes = Vec::new();
    bytes.extend_from_slice(&1.5f32.to_le_bytes());
    bytes.extend_from_slice(&(-0.1f32).to_le_bytes());
    assert_values(Format::F32, &bytes, &[1.5, f64::from(-0.1f32)]);

    // 0x0001 is the smallest f16 subnormal, 2^-24; 0xC000 is -2.
    let bytes = [0x00, 0x3C, 0x00, 0xC0, 0x01, 0x00];
    assert_values(Format::F16, &bytes, &[1.0, -2.0, 2f64.powi(-24)]);
}

#[test]
fn q4_0_nibble_order() {
    // d = 0.5; value = d*(q-8). qs[0] = 0x9F: value 0 is 15, value 16 is 9.
    // qs[15] = 0x08: value 15 is 8, value 31 is 0. All other quants are 0.
    let mut block = vec![0u8; 18];
    block[0..2].copy_from_slice(&F16_HALF);
    block[2] = 0x9F;
    block[2 + 15] = 0x08;
    let mut expected = vec![-4.0; 32];
    expected[0] = 3.5;
    expected[16] = 0.5;
    expected[15] = 0.0;
    expected[31] = -4.0;
    assert_values(Format::Q4_0, &block, &expected);
    let magnitudes = term_magnitudes(Format::Q4_0, &block).unwrap();
    let abs: Vec<f64> = expected.iter().map(|v| v.abs()).collect();
    assert_eq!(magnitudes, abs);
}

#[test]
fn q4_1_values_and_term_magnitudes() {
    // d = 0.5, m = -1; value = d*q + m. qs[0] = 0x3C: value 0 has q = 12, value 16 has q = 3.
    let mut block = vec![0u8; 20];
    block[0..2].copy_from_slice(&F16_HALF);
    block[2..4].copy_from_slice(&F16_MINUS_ONE);
    block[4] = 0x3C;
    let mut expected = vec![-1.0; 32];
    expected[0] = 5.0; // 0.5*12 - 1
    expected[16] = 0.5; // 0.5*3 - 1
    assert_values(Format::Q4_1, &block, &expected);
    // |d*q| + |m|: the cancellation in value 16 (1.5 - 1) must show as 2.5, not 0.5.
    let mut magnitudes = vec![1.0; 32];
    magnitudes[0] = 7.0;
    magnitudes[16] = 2.5;
    assert_eq!(term_magnitudes(Format::Q4_1, &block).unwrap(), magnitudes);
}

#[test]
fn q5_0_high_bits_from_each_qh_byte() {
    // d = 2; value = d*((q | h<<4) - 16). qh as a little-endian u32: bit 0 (byte 0), bit 8
    // (byte 1), bit 17 (byte 2) and bit 31 (byte 3) set.
    let mut block = vec![0u8; 22];
    block[0..2].copy_from_slice(&F16_TWO);
    block[2..6].copy_from_slice(&[0x01, 0x01, 0x02, 0x80]);
    block[6] = 0x3F; // value 0 low nibble 15, value 16 high nibble 3
    block[6 + 15] = 0xA2; // value 15 low nibble 2, value 31 high nibble 10
    let mut expected = vec![-32.0; 32]; // q = 0, h = 0
    expected[0] = 30.0; // (15 | 16) - 16 = 15
    expected[8] = 0.0; // (0 | 16) - 16
    expected[15] = -28.0; // 2 - 16, no high bit
    expected[16] = -26.0; // 3 - 16
    expected[17] = 0.0; // (0 | 16) - 16
    expected[31] = 20.0; // (10 | 16) - 16 = 10
    assert_values(Format::Q5_0, &block, &expected);
}

#[test]
fn q8_0_signed_quants() {
    // d = 0.25; qs are i8: 127, -128, -1, 5, then zeros.
    let mut block = vec![0u8; 34];
    block[0..2].copy_from_slice(&F16_QUARTER);
    block[2..6].copy_from_slice(&[127, 0x80, 0xFF, 5]);
    let mut expected = vec![0.0; 32];
    expected[0..4].copy_from_slice(&[31.75, -32.0, -0.25, 1.25]);
    assert_values(Format::Q8_0, &block, &expected);
}

/// Packed scales where sub-blocks 4..7 need the top bits of bytes 0..7:
/// sc = [1, 2, 3, 4, 17, 34, 51, 63], m = [5, 6, 7, 8, 20, 40, 60, 33].
/// Bytes 0..3 = sc_j | (sc_{j+4} >> 4) << 6, bytes 4..7 = m_j | (m_{j+4} >> 4) << 6,
/// bytes 8..11 = (sc_{j+4} & 15) | (m_{j+4} & 15) << 4, worked out by hand.
const Q4K_SCALES: [u8; 12] = [
    0x41, 0x82, 0xC3, 0xC4, 0x45, 0x86, 0xC7, 0x88, 0x41, 0x82, 0xC3, 0x1F,
];
const Q4K_SC: [f64; 8] = [1.0, 2.0, 3.0, 4.0, 17.0, 34.0, 51.0, 63.0];
const Q4K_M: [f64; 8] = [5.0, 6.0, 7.0, 8.0, 20.0, 40.0, 60.0, 33.0];

#[test]
fn q4k_packed_scales_unpack_by_hand() {
    for j in 0..8 {
        let (sc, m) = q4k_sub_block_scale_min(&Q4K_SCALES, j);
        assert_eq!(
            (f64::from(sc), f64::from(m)),
            (Q4K_SC[j], Q4K_M[j]),
            "sub-block {j}"
        );
    }
}

/// Low nibble of qs chunk c, byte l: (l + c) % 16; high nibble: (3l + c) % 16.
fn q4k_test_block() -> Vec<u8> {
    let mut block = vec![0u8; 144];
    block[0..2].copy_from_slice(&F16_ONE); // d
    block[2..4].copy_from_slice(&F16_HALF); // dmin
    block[4..16].copy_from_slice(&Q4K_SCALES);
    for c in 0..4 {
        for l in 0..32 {
            let low = (l + c) % 16;
            let high = (3 * l + c) % 16;
            block[16 + 32 * c + l] = (low | (high << 4)) as u8;
        }
    }
    block
}

#[test]
fn q4k_values_by_hand() {
    let values = dequantize(Format::Q4K, &q4k_test_block()).unwrap();
    // value = 1*sc*q - 0.5*m; (n: sub-block j, chunk c, byte l, nibble) worked by hand.
    let spot_checks = [
        (0, -2.5),    // j0 c0 l0 low q=0: 0 - 2.5
        (32, -3.0),   // j1 c0 l0 high q=0: 0 - 3
        (127, 52.0),  // j3 c1 l31 high q=(93+1)%16=14: 4*14 - 4
        (133, 109.0), // j4 c2 l5 low q=7: 17*7 - 10
        (170, -20.0), // j5 c2 l10 high q=(30+2)%16=0: 0 - 20
        (226, 550.5), // j7 c3 l2 high q=9: 63*9 - 16.5
        (255, -16.5), // j7 c3 l31 high q=(93+3)%16=0: 0 - 16.5
    ];
    for (n, expected) in spot_checks {
        assert_eq!(values[n], expected, "value {n}");
    }
    // Every value, from the layout sentence of FORMATS.md.
    for (n, &value) in values.iter().enumerate() {
        let (j, l) = (n / 32, n % 32);
        let c = j / 2;
        let q = if j % 2 == 0 {
            (l + c) % 16
        } else {
            (3 * l + c) % 16
        };
        let expected = Q4K_SC[j] * q as f64 - 0.5 * Q4K_M[j];
        assert_eq!(value, expected, "value {n} (sub-block {j}, byte {l})");
    }
    let magnitudes = term_magnitudes(Format::Q4K, &q4k_test_block()).unwrap();
    assert_eq!(magnitudes[226], 567.0 + 16.5);
    assert_eq!(magnitudes[0], 2.5);
    for (n, (&m, &v)) in magnitudes.iter().zip(&values).enumerate() {
        assert!(m >= v.abs(), "value {n}: magnitude {m} < |{v}|");
    }
}

#[test]
fn q4k_decode_is_exact_where_f32_would_round() {
    // d = 65504 (largest f16), dmin = 2^-24 (smallest subnormal), sub-block 0 has sc = 63,
    // m = 1 and q = 15: 65504*63*15 - 2^-24 needs 50 significant bits, which f64 holds and
    // f32 (24) does not.
    let mut block = vec![0u8; 144];
    block[0..2].copy_from_slice(&[0xFF, 0x7B]);
    block[2..4].copy_from_slice(&[0x01, 0x00]);
    block[4] = 63;
    block[8] = 1;
    block[16] = 0x0F;
    let values = dequantize(Format::Q4K, &block).unwrap();
    let big = 65504.0 * 63.0 * 15.0;
    assert_eq!(values[0], big - 2f64.powi(-24));
    assert_ne!(values[0], big);
}

#[test]
fn q6k_spot_values_by_hand() {
    // d = 1, scales[i] = i + 1 except scales[14] = -3. All ql/qh zero (q = 0, value
    // -32*sc) except two bytes per half chosen to hit all four parts.
    let mut block = vec![0u8; 210];
    for i in 0..16 {
        block[192 + i] = (i + 1) as u8;
    }
    block[192 + 14] = (-3i8) as u8;
    block[208..210].copy_from_slice(&F16_ONE);
    // Half 0, l = 3: ql[3] = 0x7C, qh[3] = 0b00_01_10_11.
    block[3] = 0x7C;
    block[128 + 3] = 0x1B;
    // Half 1, l = 8: ql[64 + 8 + 32] = 0xA5 (ql[64+8] stays 0), qh[32 + 8] = 0b11_10_01_00.
    block[64 + 40] = 0xA5;
    block[128 + 32 + 8] = 0xE4;

    let mut expected: Vec<f64> = (0..256)
        .map(|n| {
            let sc = if n / 16 == 14 {
                -3.0
            } else {
                (n / 16 + 1) as f64
            };
            -32.0 * sc
        })
        .collect();
    expected[3] = 28.0; // q = 0xC | 3<<4 = 60; sc 1
    expected[35] = 0.0; // q = 0 | 2<<4 = 32; sc 3
    expected[67] = -45.0; // q = 7 | 1<<4 = 23; sc 5
    expected[99] = -224.0; // q = 0 | 0<<4; sc 7
    expected[136] = -288.0; // q = 0 | 0<<4; sc 9
    expected[168] = -121.0; // q = 5 | 1<<4 = 21; sc 11
    expected[200] = 0.0; // q = 0 | 2<<4 = 32; sc 13
    expected[232] = -78.0; // q = 10 | 3<<4 = 58; sc -3
    assert_values(Format::Q6K, &block, &expected);
}

#[test]
fn q6k_every_position_from_packed_pattern() {
    // Pack 6-bit quants q[n] = (37n + 11) % 64 with the inverse of the FORMATS.md layout
    // (value p of half h: part p/32, byte l = p%32), then decode. d = 0.25,
    // scales[i] = 3*(i - 8) so both signs occur.
    let q6 = |n: usize| ((37 * n + 11) % 64) as u8;
    let mut block = vec![0u8; 210];
    for h in 0..2 {
        for p in 0..128 {
            let q = q6(128 * h + p);
            let (low4, high2) = (q & 0xF, q >> 4);
            let (part, l) = (p / 32, p % 32);
            let ql_index = 64 * h + l + if part % 2 == 1 { 32 } else { 0 };
            let ql_shift = if part >= 2 { 4 } else { 0 };
            block[ql_index] |= low4 << ql_shift;
            block[128 + 32 * h + l] |= high2 << (2 * part);
        }
    }
    for i in 0..16 {
        block[192 + i] = (3 * (i as i8 - 8)) as u8;
    }
    block[208..210].copy_from_slice(&F16_QUARTER);
    let expected: Vec<f64> = (0..256)
        .map(|n| 0.25 * (3.0 * (n as f64 / 16.0).floor() - 24.0) * (f64::from(q6(n)) - 32.0))
        .collect();
    assert_values(Format::Q6K, &block, &expected);
}

/// Q8_K block bytes with d and quants given, bsums computed.
fn q8k_block(d: f32, qs: &[i8; 256]) -> Vec<u8> {
    let mut block = Vec::with_capacity(292);
    block.extend_from_slice(&d.to_le_bytes());
    block.extend(qs.iter().map(|&q| q as u8));
    for g in 0..16 {
        let sum: i16 = qs[16 * g..16 * g + 16].iter().map(|&q| i16::from(q)).sum();
        block.extend_from_slice(&sum.to_le_bytes());
    }
    block
}

#[test]
fn q8k_decode_and_bsum_validation() {
    let mut qs = [0i8; 256];
    for (n, q) in qs.iter_mut().enumerate() {
        *q = (n % 7) as i8 - 3;
    }
    qs[17] = -128;
    qs[200] = 127;
    let mut row = q8k_block(0.5, &qs);
    row.extend(q8k_block(-2.0, &qs));
    let expected: Vec<f64> = [0.5, -2.0]
        .iter()
        .flat_map(|&d| qs.iter().map(move |&q| d * f64::from(q)))
        .collect();
    assert_values(Format::Q8K, &row, &expected);

    // Block 1, bsums[5] one too large.
    let bsum_offset = 292 + 260 + 2 * 5;
    let actual = i16::from_le_bytes([row[bsum_offset], row[bsum_offset + 1]]);
    row[bsum_offset..bsum_offset + 2].copy_from_slice(&(actual + 1).to_le_bytes());
    let expected_error = RefError::Q8KBsumMismatch {
        block: 1,
        group: 5,
        stored: actual + 1,
        actual: i32::from(actual),
    };
    assert_eq!(dequantize(Format::Q8K, &row), Err(expected_error.clone()));
    assert_eq!(term_magnitudes(Format::Q8K, &row), Err(expected_error));
}

#[test]
fn rows_that_are_not_whole_blocks_are_refused() {
    for format in Format::ALL {
        let bytes = vec![0u8; 2 * format.block_bytes() + 1];
        let error = RefError::NotWholeBlocks {
            format,
            bytes: bytes.len(),
        };
        assert_eq!(dequantize(format, &bytes), Err(error.clone()), "{format}");
        assert_eq!(term_magnitudes(format, &bytes), Err(error), "{format}");
        assert_eq!(dequantize(format, &[]), Ok(vec![]), "{format}");
    }
}

fn q8k_fields(block: &[u8]) -> (f32, Vec<i8>, Vec<i16>) {
    let d = f32::from_le_bytes([block[0], block[1], block[2], block[3]]);
    let qs = block[4..260].iter().map(|&b| b as i8).collect();
    let bsums = block[260..292]
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect();
    (d, qs, bsums)
}

#[test]
fn quantize_q8k_rounds_ties_to_even() {
    // max = 127 so scale = -1 exactly and scale*x is exact: ties land on .5.
    let mut x = vec![0.0f32; 256];
    x[..5].copy_from_slice(&[127.0, 2.5, -0.5, 1.5, -127.0]);
    let bytes = quantize_q8k(&x).unwrap();
    assert_eq!(bytes.len(), 292);
    let (d, qs, bsums) = q8k_fields(&bytes);
    assert_eq!(d, -1.0);
    // -2.5 -> -2 and 0.5 -> 0 (ties to even; ties away would give -3 and 1); -1.5 -> -2.
    assert_eq!(&qs[..5], &[-127, -2, 0, -2, 127]);
    assert!(qs[5..].iter().all(|&q| q == 0));
    assert_eq!(bsums[0], -4);
    assert!(bsums[1..].iter().all(|&s| s == 0));
}

#[test]
fn quantize_q8k_keeps_sign_of_first_largest_magnitude() {
    let mut x = vec![1.0f32; 256];
    x[10] = -3.0;
    x[20] = 3.0;
    let (d, qs, _) = q8k_fields(&quantize_q8k(&x).unwrap());
    let scale = -127.0f32 / -3.0f32;
    assert_eq!(d, 1.0 / scale);
    assert_eq!(qs[10], -127, "the first of -3, 3 is max and maps to -127");
    assert_eq!(qs[20], 127);
    assert_eq!(qs[0], (scale * 1.0).round_ties_even() as i8);
}

#[test]
fn quantize_q8k_zero_block_and_independent_blocks() {
    let mut x = vec![0.0f32; 512];
    x[256 + 7] = 0.5;
    let bytes = quantize_q8k(&x).unwrap();
    assert_eq!(bytes.len(), 584);
    assert!(
        bytes[..292].iter().all(|&b| b == 0),
        "all-zero block: d = 0, quants 0"
    );
    let (d, qs, bsums) = q8k_fields(&bytes[292..]);
    assert_eq!(d, 1.0 / (-127.0f32 / 0.5));
    assert_eq!(qs[7], -127);
    assert_eq!(bsums[0], -127);
}

/// Small deterministic generator so the reference crate needs no dev-dependencies.
struct SplitMix64(u64);
impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [-1, 1).
    fn next_f32(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }
}

#[test]
fn quantize_q8k_round_trip_error_is_half_a_step() {
    // Bound: q = round(s*x) with s*x rounded once in f32 (relative 2^-24, and |s*x| <= 127),
    // so |q - s*x_exact| <= 0.5 + 127*2^-24. Then d*q with d = 1/s rounded in f32 (relative
    // 2^-24) and the f64 product exact: |x - d*q| <= |d|*(0.5 + 127*2^-24 + 127*2^-24)
    // < |d| * 0.50002.
    for seed in 0..20u64 {
        let mut rng = SplitMix64(seed);
        let magnitude = 10f32.powi((seed % 9) as i32 - 4);
        let x: Vec<f32> = (0..3 * QK_K).map(|_| rng.next_f32() * magnitude).collect();
        let bytes = quantize_q8k(&x).unwrap();
        // Also checks the bsums: dequantize refuses inconsistent ones.
        let decoded = dequantize(Format::Q8K, &bytes).unwrap();
        for (n, (&xv, &dv)) in x.iter().zip(&decoded).enumerate() {
            let block = &bytes[292 * (n / QK_K)..];
            let d = f64::from(f32::from_le_bytes([block[0], block[1], block[2], block[3]]));
            let bound = d.abs() * 0.50002;
            let error = (f64::from(xv) - dv).abs();
            assert!(
                error <= bound,
                "seed {seed}, value {n}: x = {xv}, decoded {dv}, error {error} > {bound}"
            );
        }
    }
}

#[test]
fn quantize_q8k_refuses_bad_input() {
    assert_eq!(
        quantize_q8k(&[1.0; 255]),
        Err(RefError::NotWholeBlockValues {
            format: Format::Q8K,
            values: 255
        })
    );
    let mut x = vec![1.0f32; 512];
    x[300] = f32::INFINITY;
    assert_eq!(
        quantize_q8k(&x),
        Err(RefError::NonFiniteInput {
            index: 300,
            value: f32::INFINITY
        })
    );
    x[300] = f32::NAN;
    assert!(matches!(
        quantize_q8k(&x),
        Err(RefError::NonFiniteInput { index: 300, .. })
    ));
    assert_eq!(quantize_q8k(&[]), Ok(vec![]));
}

#[test]
fn errors_display_their_numbers() {
    let text = RefError::Q8KBsumMismatch {
        block: 3,
        group: 9,
        stored: 12,
        actual: 11,
    }
    .to_string();
    assert!(text.contains("block 3") && text.contains("bsums[9] = 12") && text.contains("11"));
    let text = RefError::NotWholeBlocks {
        format: Format::Q6K,
        bytes: 421,
    }
    .to_string();
    assert!(text.contains("421") && text.contains("q6_K") && text.contains("210"));
}

#[test]
fn matmul_small_integer_case() {
    // x: 2 rows of k = 3; w: 4 rows of k = 3.
    let x = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
    let w = [
        1.0, 0.0, -1.0, //
        2.0, 1.0, 0.0, //
        0.0, 0.0, 1.0, //
        -1.0, -1.0, -1.0,
    ];
    assert_eq!(
        matmul(&x, &w, 2, 3, 4),
        vec![-2.0, 4.0, 3.0, -6.0, -2.0, 13.0, 6.0, -15.0]
    );
    assert_eq!(
        matmul_abs(&x, &w, 2, 3, 4),
        vec![4.0, 4.0, 3.0, 6.0, 10.0, 13.0, 6.0, 15.0]
    );
}

#[test]
fn matmul_degenerate_shapes() {
    assert_eq!(matmul(&[], &[], 0, 5, 0), Vec::<f64>::new());
    assert_eq!(matmul(&[], &[], 2, 0, 3), vec![0.0; 6]);
    assert_eq!(matmul_abs(&[], &[], 2, 0, 3), vec![0.0; 6]);
}

#[test]
fn matmul_accumulates_in_f64() {
    // 2^24 + 2^-20 - 2^24: exact in f64 (45 bits), 0 if the sum were kept in f32.
    let x = [16_777_216.0, 2f64.powi(-20), -16_777_216.0];
    let w = [1.0, 1.0, 1.0];
    assert_eq!(matmul(&x, &w, 1, 3, 1), vec![2f64.powi(-20)]);
    assert_eq!(
        matmul_abs(&x, &w, 1, 3, 1),
        vec![33_554_432.0 + 2f64.powi(-20)]
    );
}

#[test]
#[should_panic(expected = "expected rows*k")]
fn matmul_rejects_mismatched_weight() {
    matmul(&[1.0, 2.0], &[1.0, 2.0, 3.0], 1, 2, 2);
}
