//! The block layouts against the formulas of `docs/FORMATS.md`, written out again here
//! independently of `kernels::quant` (which must agree with them bit for bit).

use bytemuck::Zeroable;
use half::f16;
use kernels::quant::{
    q4k_scale_min, BlockQ4K, BlockQ4_0, BlockQ4_1, BlockQ5_0, BlockQ6K, BlockQ8K, BlockQ8_0,
    QuantBlock, QK_K,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Normal};

const SEED: u64 = 0x1a70_0751;
const CASES: usize = 200;

fn random_bytes<const N: usize>(rng: &mut StdRng) -> [u8; N] {
    std::array::from_fn(|_| rng.gen())
}

/// A random finite f16 of moderate size, so that `d * integer` stays exact in f32.
fn random_f16(rng: &mut StdRng) -> f16 {
    f16::from_f32(rng.gen_range(-2.0f32..2.0))
}

/// FORMATS.md, Q4_K: the 6-bit scale and min of sub-block j.
fn formats_q4k_scale_min(j: usize, s: &[u8; 12]) -> (u8, u8) {
    if j < 4 {
        (s[j] & 63, s[j + 4] & 63)
    } else {
        (
            (s[j + 4] & 0xF) | ((s[j - 4] >> 6) << 4),
            (s[j + 4] >> 4) | ((s[j] >> 6) << 4),
        )
    }
}

/// FORMATS.md, Q4_K: value = d*sc*q - dmin*m; chunk c holds sub-block 2c in its low nibbles
/// (values 64c..64c+31) and 2c+1 in its high nibbles (values 64c+32..64c+63).
fn formats_q4k_dequantize(b: &BlockQ4K) -> [f32; QK_K] {
    let (d, dmin) = (b.d.to_f32(), b.dmin.to_f32());
    let mut out = [0f32; QK_K];
    for c in 0..4 {
        for (half, shift) in [(0, 0), (1, 4)] {
            let (sc, m) = formats_q4k_scale_min(2 * c + half, &b.scales);
            for l in 0..32 {
                let q = (b.qs[32 * c + l] >> shift) & 0xF;
                out[64 * c + 32 * half + l] = d * sc as f32 * q as f32 - dmin * m as f32;
            }
        }
    }
    out
}

/// FORMATS.md, Q6_K: (6-bit value, scale index) of all 256 positions, half by half.
fn formats_q6k_values(b: &BlockQ6K) -> [(u8, usize); QK_K] {
    let mut out = [(0u8, 0usize); QK_K];
    for h in 0..2 {
        let (ql, qh) = (&b.ql[64 * h..], &b.qh[32 * h..]);
        for l in 0..32 {
            let is = 8 * h + l / 16;
            let base = 128 * h;
            out[base + l] = ((ql[l] & 0xF) | ((qh[l] & 3) << 4), is);
            out[base + l + 32] = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4), is + 2);
            out[base + l + 64] = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4), is + 4);
            out[base + l + 96] = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4), is + 6);
        }
    }
    out
}

#[test]
fn q4k_scale_min_matches_formats_md() {
    let mut rng = StdRng::seed_from_u64(SEED);
    for case in 0..CASES * 10 {
        let scales: [u8; 12] = random_bytes(&mut rng);
        for j in 0..8 {
            assert_eq!(
                q4k_scale_min(j, &scales),
                formats_q4k_scale_min(j, &scales),
                "seed {SEED:#x} case {case} sub-block {j} scales {scales:?}"
            );
        }
    }
}

#[test]
fn q4k_dequantize_matches_formats_md() {
    let mut rng = StdRng::seed_from_u64(SEED);
    for case in 0..CASES {
        let block = BlockQ4K {
            d: random_f16(&mut rng),
            dmin: random_f16(&mut rng),
            scales: random_bytes(&mut rng),
            qs: random_bytes(&mut rng),
        };
        let mut ours = [0f32; QK_K];
        BlockQ4K::dequantize_row(&[block], &mut ours);
        // Both sides compute d*sc*q - dmin*m in f32 in the same order: bit-identical.
        assert_eq!(
            ours,
            formats_q4k_dequantize(&block),
            "seed {SEED:#x} case {case}"
        );
    }
}

#[test]
fn q6k_q_and_scale_index_match_formats_md() {
    let mut rng = StdRng::seed_from_u64(SEED);
    for case in 0..CASES {
        let mut block = BlockQ6K::zeroed();
        block.ql = random_bytes(&mut rng);
        block.qh = random_bytes(&mut rng);
        block.scales = random_bytes::<16>(&mut rng).map(|b| b as i8);
        block.d = random_f16(&mut rng);
        let expected = formats_q6k_values(&block);
        for (i, &(q, is)) in expected.iter().enumerate() {
            assert_eq!(block.q(i), q, "seed {SEED:#x} case {case} value {i}");
            assert_eq!(BlockQ6K::scale_index(i), is, "value {i}");
        }
        let mut ours = [0f32; QK_K];
        BlockQ6K::dequantize_row(&[block], &mut ours);
        let d = block.d.to_f32();
        for (i, &(q, is)) in expected.iter().enumerate() {
            let v = d * block.scales[is] as f32 * (q as i32 - 32) as f32;
            assert_eq!(ours[i], v, "seed {SEED:#x} case {case} value {i}");
        }
    }
}

/// The quantizer relies on groups being contiguous runs of 16 values.
#[test]
fn q6k_scale_index_is_contiguous_groups_of_16() {
    for i in 0..QK_K {
        assert_eq!(BlockQ6K::scale_index(i), i / 16, "value {i}");
    }
}

#[test]
fn q8k_bsums_and_range() {
    let mut rng = StdRng::seed_from_u64(SEED);
    let normal = Normal::new(0.0f32, 1.0).expect("valid N(0,1)");
    for case in 0..CASES {
        // Mix magnitudes so that both signs of the extreme value and tiny blocks occur.
        let magnitude = 10f32.powi(rng.gen_range(-30..30));
        let mut x: Vec<f32> = (0..QK_K)
            .map(|_| magnitude * normal.sample(&mut rng))
            .collect();
        if case % 7 == 0 {
            x[case % QK_K] = -magnitude * 8.0;
        }
        let mut block = [BlockQ8K::zeroed()];
        BlockQ8K::quantize_row(&x, &mut block);
        let b = &block[0];
        for g in 0..16 {
            let sum: i32 = b.qs[16 * g..16 * g + 16].iter().map(|&q| q as i32).sum();
            assert_eq!(
                b.bsums[g] as i32, sum,
                "seed {SEED:#x} case {case} group {g}"
            );
        }
        assert!(
            b.qs.iter().all(|&q| q >= -127),
            "seed {SEED:#x} case {case}: -128 in qs"
        );
        // The extreme value maps to exactly -127 (FORMATS.md: scale = -127/max).
        assert!(b.qs.contains(&-127), "seed {SEED:#x} case {case}");
        // Round to nearest: |x - q/scale| <= |1/scale|/2. In units of |d|, the f32 rounding of
        // scale*x adds <= 128*2^-24 and that of d = 1/scale adds <= 127*2^-24: < 2^-16 together.
        let d = b.d;
        for (i, (&v, &q)) in x.iter().zip(&b.qs).enumerate() {
            let err = (v as f64 - d as f64 * q as f64).abs();
            assert!(
                err <= d.abs() as f64 * (0.5 + 1.0 / 65536.0),
                "seed {SEED:#x} case {case} value {i}: x {v} q {q} d {d}"
            );
        }
    }
    let mut zero = [BlockQ8K::zeroed()];
    BlockQ8K::quantize_row(&[0.0; QK_K], &mut zero);
    assert_eq!(zero[0], BlockQ8K::zeroed());
}

/// A subnormal extreme value: 127/max overflows f32, which must not poison q or bsums.
#[test]
fn q8k_subnormal_block() {
    let max = f32::from_bits(0x0001_0000); // 2^-133, subnormal
    let quarter = f32::from_bits(0x0000_4000); // 2^-135, exactly max/4
    let mut x = [0f32; QK_K];
    x[3] = -max;
    x[200] = quarter;
    let mut block = [BlockQ8K::zeroed()];
    BlockQ8K::quantize_row(&x, &mut block);
    let b = &block[0];
    assert_eq!(b.qs[3], -127);
    assert_eq!(b.qs[200], 32); // -127 * (-1/4) = 31.75
    assert!(b
        .qs
        .iter()
        .enumerate()
        .all(|(i, &q)| q == 0 || i == 3 || i == 200));
    assert_eq!(b.bsums[0], -127);
    assert_eq!(b.bsums[12], 32);
    // d = max/127 is representable as a subnormal f32 (within its absolute spacing 2^-149).
    assert!(
        (b.d as f64 - max as f64 / 127.0).abs() <= 2f64.powi(-149),
        "d {}",
        b.d
    );
}

#[test]
fn simple_formats_dequantize_match_formats_md() {
    let mut rng = StdRng::seed_from_u64(SEED);
    for case in 0..CASES {
        let ctx = format!("seed {SEED:#x} case {case}");
        let (d, m) = (random_f16(&mut rng), random_f16(&mut rng));
        let (df, mf) = (d.to_f32(), m.to_f32());
        let qs: [u8; 16] = random_bytes(&mut rng);
        let nib = |i: usize| if i < 16 { qs[i] & 0xF } else { qs[i - 16] >> 4 } as f32;
        let mut out = [0f32; 32];

        BlockQ4_0::dequantize_row(&[BlockQ4_0 { d, qs }], &mut out);
        let expected: [f32; 32] = std::array::from_fn(|i| df * (nib(i) - 8.0));
        assert_eq!(out, expected, "q4_0 {ctx}");

        BlockQ4_1::dequantize_row(&[BlockQ4_1 { d, m, qs }], &mut out);
        let expected: [f32; 32] = std::array::from_fn(|i| df * nib(i) + mf);
        assert_eq!(out, expected, "q4_1 {ctx}");

        let qh: [u8; 4] = random_bytes(&mut rng);
        BlockQ5_0::dequantize_row(&[BlockQ5_0 { d, qh, qs }], &mut out);
        let expected: [f32; 32] = std::array::from_fn(|i| {
            let h = (u32::from_le_bytes(qh) >> i) & 1;
            df * ((nib(i) as u32 | (h << 4)) as f32 - 16.0)
        });
        assert_eq!(out, expected, "q5_0 {ctx}");

        let q8: [i8; 32] = random_bytes::<32>(&mut rng).map(|b| b as i8);
        BlockQ8_0::dequantize_row(&[BlockQ8_0 { d, qs: q8 }], &mut out);
        let expected: [f32; 32] = std::array::from_fn(|i| df * q8[i] as f32);
        assert_eq!(out, expected, "q8_0 {ctx}");
    }
}

#[test]
fn f16_round_trip() {
    // Every finite f16 survives f32 -> f16 -> f32 exactly (f16 -> f32 is exact, and the
    // conversion back rounds to nearest, so it returns the same f16).
    let finite: Vec<f32> = (0..=u16::MAX)
        .map(f16::from_bits)
        .filter(|h| h.is_finite())
        .map(f16::to_f32)
        .collect();
    let mut blocks = vec![f16::ZERO; finite.len()];
    f16::quantize_row(&finite, &mut blocks);
    let mut back = vec![0f32; finite.len()];
    f16::dequantize_row(&blocks, &mut back);
    for (a, b) in finite.iter().zip(&back) {
        assert_eq!(a.to_bits(), b.to_bits(), "{a} came back as {b}");
    }
    // Values in the normal f16 range come back within half an ulp: relative error <= 2^-11.
    let mut rng = StdRng::seed_from_u64(SEED);
    let x: Vec<f32> = (0..4096)
        .map(|_| rng.gen_range(6.2e-5f32..65000.0) * if rng.gen() { 1.0 } else { -1.0 })
        .collect();
    let mut blocks = vec![f16::ZERO; x.len()];
    f16::quantize_row(&x, &mut blocks);
    let mut back = vec![0f32; x.len()];
    f16::dequantize_row(&blocks, &mut back);
    for (a, b) in x.iter().zip(&back) {
        assert!(
            ((a - b) / a).abs() <= 1.0 / 2048.0,
            "seed {SEED:#x}: {a} came back as {b}"
        );
    }
    // f32 is the identity.
    let mut same = vec![0f32; x.len()];
    f32::quantize_row(&x, &mut same);
    assert_eq!(same, x);
}
