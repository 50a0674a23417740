//! Q8_K: the activation format of the integer (`q8k`) matmul design. Never stored in files.

use super::{check_row, GgmlType, QuantBlock, QK_K};
use bytemuck::{Pod, Zeroable};

/// One Q8_K block (292 bytes): value = `d * qs[i]`; `bsums[g]` = sum of `qs[16g..16g+16]`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
pub struct BlockQ8K {
    pub d: f32,
    pub qs: [i8; QK_K],
    pub bsums: [i16; 16],
}

const _: () = assert!(std::mem::size_of::<BlockQ8K>() == 292);

impl Default for BlockQ8K {
    fn default() -> Self {
        Self::zeroed()
    }
}

impl BlockQ8K {
    /// Recomputes `bsums` from `qs`.
    pub fn fill_bsums(&mut self) {
        for (g, s) in self.bsums.iter_mut().enumerate() {
            *s = self.qs[16 * g..16 * g + 16].iter().map(|&q| q as i16).sum();
        }
    }
}

impl QuantBlock for BlockQ8K {
    const NAME: &'static str = "q8_K";
    const TYPE: GgmlType = GgmlType::Q8K;
    const VALUES: usize = QK_K;

    /// The value with the largest magnitude (sign kept) maps to -127: `scale = -127/max`,
    /// `q = min(127, round(scale*x))` with ties to even as ggml rounds, `d = 1/scale`. An all-zero
    /// block gets `d = 0`. On x86 CPUs with AVX2 the blocks go through [`x86::quantize_row`],
    /// which gives the same bytes.
    fn quantize_row(src: &[f32], dst: &mut [Self]) {
        check_row::<Self>(src.len(), dst.len());
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: AVX2 is present; the lengths were checked.
            unsafe { x86::quantize_row(src, dst) };
            return;
        }
        quantize_row_scalar(src, dst);
    }

    fn dequantize_row(src: &[Self], dst: &mut [f32]) {
        check_row::<Self>(dst.len(), src.len());
        for (block, out) in src.iter().zip(dst.chunks_exact_mut(QK_K)) {
            for (o, &q) in out.iter_mut().zip(&block.qs) {
                *o = block.d * q as f32;
            }
        }
    }
}

/// [`BlockQ8K::quantize_row`] on the code of `isa`: the scalar rule for `Scalar` and `Neon`,
/// the AVX2 path for `Avx2` and `Avx512` (the same bytes; `harness verify` checks both against
/// the spec).
///
/// # Panics
/// If `isa` cannot run here, or the lengths do not match.
pub fn quantize_q8k(isa: crate::Isa, src: &[f32], dst: &mut [BlockQ8K]) {
    check_row::<BlockQ8K>(src.len(), dst.len());
    isa.assert_available();
    match isa {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `assert_available` checked the ISA; `Isa::Avx512` is only available with AVX2.
        crate::Isa::Avx2 | crate::Isa::Avx512 => unsafe { x86::quantize_row(src, dst) },
        _ => quantize_row_scalar(src, dst),
    }
}

/// The rule of [`BlockQ8K::quantize_row`], one value at a time: the definition the x86 path
/// is tested against.
pub(crate) fn quantize_row_scalar(src: &[f32], dst: &mut [BlockQ8K]) {
    for (x, block) in src.chunks_exact(QK_K).zip(dst.iter_mut()) {
        quantize_block(x, block);
    }
}

fn quantize_block(x: &[f32], block: &mut BlockQ8K) {
    let mut max = 0f32;
    for &v in x {
        if v.abs() > max.abs() {
            max = v;
        }
    }
    if max == 0.0 {
        *block = BlockQ8K::zeroed();
        return;
    }
    let iscale = -127.0 / max;
    if iscale.is_finite() {
        for (q, &v) in block.qs.iter_mut().zip(x) {
            *q = (iscale * v).round_ties_even().min(127.0) as i8;
        }
        block.d = 1.0 / iscale;
    } else {
        // A subnormal max: 127/max overflows f32 (and inf*0 would be NaN), but f64 holds
        // it, and d = max/-127 is still a (subnormal) f32.
        let iscale = -127.0 / max as f64;
        for (q, &v) in block.qs.iter_mut().zip(x) {
            *q = (iscale * v as f64).round_ties_even().min(127.0) as i8;
        }
        block.d = (1.0 / iscale) as f32;
    }
    finish_block(block);
}

/// The clamp of `d` and the bsums, shared by both paths.
fn finish_block(block: &mut BlockQ8K) {
    // At the very top of the f32 range, d*127 can round past f32::MAX (so can MAX/127 times
    // 127); MAX/128 is exact and keeps every d*q finite, for |max| > MAX*127/128 only.
    let d_max = f32::MAX / 128.0;
    block.d = block.d.clamp(-d_max, d_max);
    block.fill_bsums();
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{finish_block, quantize_block, BlockQ8K, QK_K};
    use std::arch::x86_64::*;

    /// [`BlockQ8K::quantize_row`] with AVX2: the same operations on eight values at a time
    /// (`max_ps` of magnitudes, which skips NaN as the scalar `>` does; the first value of the
    /// largest magnitude; one f32 multiply, round to nearest even, `min` with 127 (NaN gives
    /// 127 in both), conversion), so the same bytes. Blocks whose largest magnitude is zero,
    /// infinite or subnormal-small take the scalar code.
    ///
    /// # Safety
    /// AVX2 present; `src.len() == QK_K * dst.len()`.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn quantize_row(src: &[f32], dst: &mut [BlockQ8K]) {
        for (x, block) in src.chunks_exact(QK_K).zip(dst.iter_mut()) {
            // SAFETY: `x` holds QK_K values; AVX2 as the caller guarantees.
            unsafe { quantize_block_avx2(x, block) };
        }
    }

    /// # Safety
    /// AVX2 enabled; `x.len() == QK_K`.
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn quantize_block_avx2(x: &[f32], block: &mut BlockQ8K) {
        debug_assert_eq!(x.len(), QK_K);
        let p = x.as_ptr();
        // SAFETY: every load reads 8 values at `p + 8c`, c < 32, inside `x`; the stores write
        // 32 bytes at `qs + 32c`, c < 8, inside `qs`.
        unsafe {
            let sign = _mm256_set1_ps(-0.0);
            let mut amax = _mm256_setzero_ps();
            for c in 0..QK_K / 8 {
                let a = _mm256_andnot_ps(sign, _mm256_loadu_ps(p.add(8 * c)));
                // A NaN in `a` returns `amax` (the second operand).
                amax = _mm256_max_ps(a, amax);
            }
            let m = _mm_max_ps(
                _mm256_castps256_ps128(amax),
                _mm256_extractf128_ps::<1>(amax),
            );
            let m = _mm_max_ps(m, _mm_movehl_ps(m, m));
            let m = _mm_max_ss(m, _mm_shuffle_ps::<1>(m, m));
            let amax = _mm_cvtss_f32(m);
            if !(amax > 0.0 && amax.is_finite()) {
                return quantize_block(x, block);
            }
            // The scalar loop keeps the first value of the largest magnitude.
            let target = _mm256_set1_ps(amax);
            let mut max = amax;
            for c in 0..QK_K / 8 {
                let a = _mm256_andnot_ps(sign, _mm256_loadu_ps(p.add(8 * c)));
                let hit = _mm256_movemask_ps(_mm256_cmp_ps::<_CMP_EQ_OQ>(a, target));
                if hit != 0 {
                    max = x[8 * c + hit.trailing_zeros() as usize];
                    break;
                }
            }
            let iscale = -127.0 / max;
            if !iscale.is_finite() {
                return quantize_block(x, block);
            }
            let scale = _mm256_set1_ps(iscale);
            let top = _mm256_set1_ps(127.0);
            let q = |o: usize| {
                let v = _mm256_mul_ps(scale, _mm256_loadu_ps(p.add(o)));
                let r = _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(v);
                // `min_ps` returns `top` for a NaN `r`, as `f32::min` does.
                _mm256_cvtps_epi32(_mm256_min_ps(r, top))
            };
            // The packs interleave 128-bit lanes; the permute puts the dwords back in order.
            let order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
            for c in 0..QK_K / 32 {
                let o = 32 * c;
                let ab = _mm256_packs_epi32(q(o), q(o + 8));
                let cd = _mm256_packs_epi32(q(o + 16), q(o + 24));
                let bytes = _mm256_permutevar8x32_epi32(_mm256_packs_epi16(ab, cd), order);
                _mm256_storeu_si256(block.qs.as_mut_ptr().add(o).cast(), bytes);
            }
            block.d = 1.0 / iscale;
        }
        finish_block(block);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// Blocks that reach every branch: random magnitudes from tiny to huge, ties of the largest
    /// magnitude with both signs, values that scale to exact halves, zeros, NaN, infinities,
    /// subnormals and values near f32::MAX.
    fn blocks(seed: u64, count: usize) -> Vec<f32> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut x = Vec::with_capacity(count * QK_K);
        for b in 0..count {
            let scale = [1e-40f32, 1e-30, 1e-3, 1.0, 1e3, 1e30, 3e38][b % 7];
            let mut v: Vec<f32> = (0..QK_K)
                .map(|_| rng.gen_range(-1.0f32..1.0) * scale)
                .collect();
            match b % 11 {
                0 => v.fill(0.0),
                1 => v[rng.gen_range(0..QK_K)] = f32::NAN,
                2 => v[rng.gen_range(0..QK_K)] = f32::INFINITY,
                3 => {
                    // The largest magnitude twice, opposite signs, in different vectors and in
                    // the same one (every other value is below `scale`): the first one's sign
                    // wins.
                    let (i, j) = if b % 2 == 0 {
                        (rng.gen_range(0..128), rng.gen_range(128..QK_K))
                    } else {
                        let base = 8 * rng.gen_range(0..QK_K / 8);
                        (base + 2, base + 5)
                    };
                    let s = if rng.gen() { 1.0 } else { -1.0 };
                    v[i] = -s * scale;
                    v[j] = s * scale;
                }
                4 => {
                    // The max -127 gives scale 1, and every other value is an odd multiple of
                    // 0.5: each one a round-to-even tie.
                    for (k, e) in v.iter_mut().enumerate() {
                        *e = (k % 253) as f32 - 126.0 + 0.5;
                    }
                    v[rng.gen_range(0..QK_K)] = -127.0;
                }
                5 => v.fill(-0.0),
                6 => {
                    v.fill(f32::from_bits(1));
                    v[7] = -f32::from_bits(3);
                }
                7 => v[0] = f32::MAX,
                8 => v.fill(f32::NAN),
                _ => {}
            }
            x.extend(v);
        }
        x
    }

    #[test]
    fn every_path_gives_the_scalar_bytes() {
        for seed in 0..8 {
            let x = blocks(seed, 77);
            let mut want = vec![BlockQ8K::zeroed(); 77];
            let mut have = want.clone();
            quantize_row_scalar(&x, &mut want);
            BlockQ8K::quantize_row(&x, &mut have);
            for (b, (h, w)) in have.iter().zip(&want).enumerate() {
                assert_eq!(
                    bytemuck::bytes_of(h),
                    bytemuck::bytes_of(w),
                    "seed {seed} block {b}: {:?}",
                    &x[b * QK_K..(b + 1) * QK_K]
                );
            }
        }
    }
}
