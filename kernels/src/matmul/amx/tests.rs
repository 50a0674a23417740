use super::*;
use crate::matmul::x8::tests::{q4k_blocks, q6k_blocks, q8k_blocks};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

#[test]
fn repack_round_trips() {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    for (rows, nb) in [(16, 1), (32, 3), (48, 2)] {
        let w = q4k_blocks(&mut rng, rows * nb);
        for threads in [1, 2, 5] {
            let x16 = repack_q4k(&w, rows, threads).unwrap();
            assert_eq!(unpack_q4k(&x16, nb), w, "q4k rows {rows} nb {nb}");
        }
        let w = q6k_blocks(&mut rng, rows * nb);
        let x16 = repack_q6k(&w, rows, 2).unwrap();
        assert_eq!(unpack_q6k(&x16, nb), w, "q6k rows {rows} nb {nb}");
    }
}

#[test]
fn repack_refuses_rows_off_the_panel() {
    let w = vec![BlockQ4K::zeroed(); 24];
    assert_eq!(
        repack_q4k(&w, 24, 1).err(),
        Some(RepackError::Rows {
            rows: 24,
            panel: 16
        })
    );
    let w = vec![BlockQ6K::zeroed(); 40];
    assert_eq!(
        repack_q6k(&w, 16, 1).err(),
        Some(RepackError::Blocks {
            blocks: 40,
            rows: 16
        })
    );
}

#[test]
fn detection_gives_a_reason_or_none() {
    // Whatever the machine, the answer is stable and `available` agrees with it.
    assert_eq!(available(), unavailable_reason().is_none());
    assert_eq!(unavailable_reason(), unavailable_reason());
}

/// The AMX kernels against scalar's, bit for bit: `n` below 16 (one short tile), 16, and past
/// it (whole tiles, then a short one under another tile configuration), a run past one L2 chunk
/// (224 rows at 8 blocks a row), and a `y_stride` wider than `rows` (strided stores).
#[test]
fn kernels_match_scalar_bit_for_bit() {
    use crate::matmul::{q4k, q6k};
    if let Some(why) = unavailable_reason() {
        eprintln!("SKIPPED amx::kernels_match_scalar_bit_for_bit: {why}");
        return;
    }
    let mut rng = ChaCha8Rng::seed_from_u64(12);
    let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
    for (n, rows, nb, extra) in [
        (1, 16, 1, 0),
        (3, 16, 2, 1),
        (15, 32, 2, 0),
        (16, 16, 3, 0),
        (17, 32, 1, 5),
        (40, 48, 2, 0),
        (240, 32, 8, 16),
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
        matmul_q4kx16_q8k(&x, &repack_q4k(&w, rows, 1).unwrap(), &mut have, dims);
        assert_eq!(bits(&have), bits(&want), "q4k n {n} rows {rows} nb {nb}");
        let w = q6k_blocks(&mut rng, rows * nb);
        q6k::scalar::matmul_q8k(&x, &w, &mut want, dims);
        matmul_q6kx16_q8k(&x, &repack_q6k(&w, rows, 1).unwrap(), &mut have, dims);
        assert_eq!(bits(&have), bits(&want), "q6k n {n} rows {rows} nb {nb}");
    }
}

/// Two threads at once: each has its own tile state and nibble buffer.
#[test]
fn kernels_run_on_several_threads() {
    use crate::matmul::q4k;
    if unavailable_reason().is_some() {
        return;
    }
    let mut rng = ChaCha8Rng::seed_from_u64(13);
    let (n, rows, nb) = (20, 32, 4);
    let x = q8k_blocks(&mut rng, n * nb);
    let w = q4k_blocks(&mut rng, rows * nb);
    let dims = MatmulDims {
        n,
        k: nb * QK_K,
        rows,
        y_stride: rows,
    };
    let mut want = vec![0f32; n * rows];
    q4k::scalar::matmul_q8k(&x, &w, &mut want, dims);
    let x16 = repack_q4k(&w, rows, 1).unwrap();
    std::thread::scope(|s| {
        for _ in 0..3 {
            s.spawn(|| {
                for _ in 0..20 {
                    let mut have = vec![0f32; n * rows];
                    matmul_q4kx16_q8k(&x, &x16, &mut have, dims);
                    assert!(have
                        .iter()
                        .zip(&want)
                        .all(|(a, b)| a.to_bits() == b.to_bits()));
                }
            });
        }
    });
}
