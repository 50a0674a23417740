use super::*;
#[cfg(target_arch = "x86_64")]
use crate::quant::QK_K;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Random bytes everywhere (every bit pattern is a valid block), with some blocks' scales at
/// the f16 extremes (largest finite, subnormal, zero).
pub(crate) fn q4k_blocks(rng: &mut ChaCha8Rng, count: usize) -> Vec<BlockQ4K> {
    (0..count)
        .map(|i| {
            let mut b = BlockQ4K::zeroed();
            rng.fill(&mut b.scales[..]);
            rng.fill(&mut b.qs[..]);
            if i % 7 == 3 {
                // The largest nibbles and 6-bit scales and mins: with the all -128 activation
                // blocks of `q8k_blocks`, the i16 partial sums reach their stated bound.
                b.qs = [0xFF; 128];
                b.scales = [0xFF; 12];
            }
            let (d, dmin) = match i % 5 {
                0 => (f16::MAX, f16::from_bits(0x0001)),
                1 => (f16::ZERO, f16::MAX),
                _ => (
                    f16::from_f32(rng.gen_range(-0.01..0.01)),
                    f16::from_f32(rng.gen_range(-0.01..0.01)),
                ),
            };
            (b.d, b.dmin) = (d, dmin);
            b
        })
        .collect()
}

pub(crate) fn q6k_blocks(rng: &mut ChaCha8Rng, count: usize) -> Vec<BlockQ6K> {
    (0..count)
        .map(|i| {
            let mut b = BlockQ6K::zeroed();
            rng.fill(&mut b.ql[..]);
            rng.fill(&mut b.qh[..]);
            for s in &mut b.scales {
                *s = rng.gen();
            }
            if i % 4 == 0 {
                b.scales = [-128; 16];
            }
            b.d = match i % 5 {
                0 => f16::MAX,
                1 => f16::from_bits(0x0001),
                _ => f16::from_f32(rng.gen_range(-0.01..0.01)),
            };
            b
        })
        .collect()
}

#[cfg(target_arch = "x86_64")]
/// Activations with random `qs` (some blocks all -128 or all 127) and consistent `bsums`.
pub(crate) fn q8k_blocks(rng: &mut ChaCha8Rng, count: usize) -> Vec<BlockQ8K> {
    (0..count)
        .map(|i| {
            let mut b = BlockQ8K::zeroed();
            match i % 6 {
                0 => b.qs = [-128; QK_K],
                1 => b.qs = [127; QK_K],
                _ => {
                    for q in &mut b.qs {
                        *q = rng.gen();
                    }
                }
            }
            b.d = rng.gen_range(-2.0..2.0);
            b.fill_bsums();
            b
        })
        .collect()
}

#[test]
fn repack_round_trips() {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    for (rows, nb) in [(8, 1), (16, 3), (24, 8)] {
        let w = q4k_blocks(&mut rng, rows * nb);
        for (threads, isa) in [(1, Isa::Avx2), (2, Isa::Avx512), (3, Isa::Avx2)] {
            let x8 = repack_q4k(&w, rows, threads, isa).unwrap();
            assert_eq!(unpack_q4k(&x8, nb, isa), w, "q4k {isa} rows {rows} nb {nb}");
        }
        let w = q6k_blocks(&mut rng, rows * nb);
        let x8 = repack_q6k(&w, rows, 2).unwrap();
        assert_eq!(unpack_q6k(&x8, nb), w, "q6k rows {rows} nb {nb}");
    }
}

#[test]
fn repack_refuses_ragged_rows() {
    let w = vec![BlockQ4K::zeroed(); 12];
    assert_eq!(
        repack_q4k(&w, 12, 1, Isa::Avx2).err(),
        Some(RepackError::Rows { rows: 12, panel: 8 })
    );
    let w = vec![BlockQ6K::zeroed(); 12];
    assert_eq!(
        repack_q6k(&w, 8, 1).err(),
        Some(RepackError::Blocks {
            blocks: 12,
            rows: 8
        })
    );
}

#[cfg(target_arch = "x86_64")]
#[test]
fn kernels_match_scalar_bit_for_bit() {
    for isa in [Isa::Avx2, Isa::Avx512] {
        if crate::isa::runs_here(isa, "x8::kernels_match_scalar_bit_for_bit") {
            kernels_match_scalar(isa);
        }
    }
}

#[cfg(target_arch = "x86_64")]
fn kernels_match_scalar(isa: Isa) {
    use crate::matmul::{q4k, q6k};
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    // n covers every tile size and a chunk tail; y_stride > rows checks strided stores.
    for (n, rows, nb, extra) in [
        (1, 8, 1, 0),
        (3, 8, 2, 1),
        (5, 16, 2, 3),
        (8, 16, 1, 0),
        (11, 24, 3, 0),
        (40, 32, 8, 8),
    ] {
        let x = q8k_blocks(&mut rng, n * nb);
        let dims = MatmulDims {
            n,
            k: nb * QK_K,
            rows,
            y_stride: rows + extra,
        };
        let len = (n - 1) * dims.y_stride + rows;
        let w = q4k_blocks(&mut rng, rows * nb);
        let (mut want, mut have) = (vec![0f32; len], vec![0f32; len]);
        q4k::scalar::matmul_q8k(&x, &w, &mut want, dims);
        let x8 = repack_q4k(&w, rows, 1, isa).unwrap();
        matmul_q4kx8_q8k(isa, &x, &x8, &mut have, dims);
        let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
        assert_eq!(
            bits(&have),
            bits(&want),
            "{isa} q4k n {n} rows {rows} nb {nb}"
        );
        let w = q6k_blocks(&mut rng, rows * nb);
        q6k::scalar::matmul_q8k(&x, &w, &mut want, dims);
        let x8 = repack_q6k(&w, rows, 1).unwrap();
        matmul_q6kx8_q8k(isa, &x, &x8, &mut have, dims);
        assert_eq!(
            bits(&have),
            bits(&want),
            "{isa} q6k n {n} rows {rows} nb {nb}"
        );
    }
}
