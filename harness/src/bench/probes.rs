//! The machine's limits, measured once per run: read bandwidth from DRAM and from the
//! last-level cache, and the peak rate of the instructions each design lives on (f32 FMA for the
//! `f32` designs, attention and the ops; the int8 multiply-add chain of the `q8k` design), per ISA
//! and thread count. Every bench row is held against these roofs.
//!
//! Each probe is a tight loop with enough independent accumulators to hide the instruction
//! latency; the best of several passes is the limit (a limit is what the machine can do, so the
//! fastest pass is the honest estimate; interference only makes passes slower).
//!
//! Counting: an FMA lane is 2 flops; an int8 product-and-accumulate is 2 ops (as the `q8k`
//! rows count `2 n k rows`). The scalar kernels are portable Rust that the compiler is free to
//! vectorise with the baseline target's vector unit, and it does (the scalar RoPE runs at
//! several flops per cycle), so on x86_64 the scalar f32 roof is the baseline SSE2 unit's
//! mul + add rate, not one scalar lane's; elsewhere, and for int8, it is a portable loop.

use kernels::Isa;
use rayon::ThreadPool;
use std::hint::black_box;
use std::time::Instant;

/// Which instruction mix a design's inner loop lives on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ComputeKind {
    /// f32 fused multiply-add (mul + add in the scalar code).
    FmaF32,
    /// u8 x i8 products: AVX2/AVX-512 `maddubs` summed in i16 lanes (the kernels' inner step;
    /// they widen with `madd` only once per group of products), NEON `smull`+`smlal2`+`sadalp`.
    Int8Dot,
}

impl ComputeKind {
    pub fn name(self) -> &'static str {
        match self {
            ComputeKind::FmaF32 => "f32 FMA",
            ComputeKind::Int8Dot => "int8 dot",
        }
    }
}

/// Inner iterations of one compute-probe pass: a few milliseconds on any of the ISAs.
const COMPUTE_ITERS: usize = 200_000;
/// Passes per probe; the best one counts.
const PASSES: usize = 5;

/// Operations one compute pass performs on one thread.
fn ops_per_pass(kind: ComputeKind, isa: Isa) -> f64 {
    let lanes = match (kind, isa) {
        (ComputeKind::FmaF32, Isa::Scalar) if cfg!(target_arch = "x86_64") => (ACC * 4) as f64,
        (_, Isa::Scalar) => ACC as f64,
        (ComputeKind::FmaF32, Isa::Avx2) => (ACC * 8) as f64,
        (ComputeKind::FmaF32, Isa::Avx512) => (ACC * 16) as f64,
        (ComputeKind::FmaF32, Isa::Neon) => (ACC * 4) as f64,
        (ComputeKind::Int8Dot, Isa::Avx2) => (ACC * 32) as f64,
        (ComputeKind::Int8Dot, Isa::Avx512) => (ACC * 64) as f64,
        (ComputeKind::Int8Dot, Isa::Neon) => (ACC * 16) as f64,
    };
    2.0 * lanes * COMPUTE_ITERS as f64
}

/// Independent accumulators per probe: more than latency x issue width on every ISA here
/// (Zen 3: FMA latency 4, two FMA pipes = 8).
const ACC: usize = 12;

/// One pass of the compute probe for `kind` on `isa`; returns a value the optimiser must keep.
fn compute_pass(kind: ComputeKind, isa: Isa) -> f32 {
    isa.assert_available();
    match (kind, isa) {
        (ComputeKind::FmaF32, Isa::Scalar) => scalar::fma(COMPUTE_ITERS),
        (ComputeKind::Int8Dot, Isa::Scalar) => scalar::int8(COMPUTE_ITERS) as f32,
        // SAFETY: `assert_available` checked that the CPU has the target features.
        #[cfg(target_arch = "x86_64")]
        (ComputeKind::FmaF32, Isa::Avx2) => unsafe { x86::fma_avx2(COMPUTE_ITERS) },
        // SAFETY: as above.
        #[cfg(target_arch = "x86_64")]
        (ComputeKind::Int8Dot, Isa::Avx2) => unsafe { x86::int8_avx2(COMPUTE_ITERS) as f32 },
        // SAFETY: as above.
        #[cfg(target_arch = "x86_64")]
        (ComputeKind::FmaF32, Isa::Avx512) => unsafe { x86::fma_avx512(COMPUTE_ITERS) },
        // SAFETY: as above.
        #[cfg(target_arch = "x86_64")]
        (ComputeKind::Int8Dot, Isa::Avx512) => unsafe { x86::int8_avx512(COMPUTE_ITERS) as f32 },
        // SAFETY: as above.
        #[cfg(target_arch = "aarch64")]
        (ComputeKind::FmaF32, Isa::Neon) => unsafe { arm::fma_neon(COMPUTE_ITERS) },
        // SAFETY: as above.
        #[cfg(target_arch = "aarch64")]
        (ComputeKind::Int8Dot, Isa::Neon) => unsafe { arm::int8_neon(COMPUTE_ITERS) as f32 },
        #[allow(unreachable_patterns)]
        _ => unreachable!("assert_available admits no ISA of another architecture"),
    }
}

/// Peak GFLOP/s (or GOP/s) of `kind` on `isa` with `threads` threads of `pool` running it at
/// once (`pool` = `None` for one thread on the caller).
pub fn peak_compute(kind: ComputeKind, isa: Isa, threads: usize, pool: Option<&ThreadPool>) -> f64 {
    let mut best = f64::INFINITY;
    for _ in 0..PASSES {
        let t = Instant::now();
        match pool {
            Some(pool) if threads > 1 => {
                pool.broadcast(|_| black_box(compute_pass(kind, isa)));
            }
            _ => {
                black_box(compute_pass(kind, isa));
            }
        }
        best = best.min(t.elapsed().as_secs_f64());
    }
    ops_per_pass(kind, isa) * threads as f64 / best / 1e9
}

/// Read bandwidth in GB/s over a buffer of `bytes`, split across `threads` threads: the best
/// pass of two ways of reading, the plain loop and (on x86_64) the same loop asking for the lines
/// [`kernels::mem::DEFAULT_DECODE_PREFETCH`] bytes ahead, as the decode kernels do. Where the
/// hardware prefetchers alone leave the memory idle (one core of an Intel Xeon VM: 13 GB/s plain),
/// the second way is what the machine can do, and the roof the decode kernels are held to,
/// whatever distance `--prefetch` gives them (0 included). The buffer is in huge pages where the
/// weights are ([`kernels::mem::huge_pages`]).
pub fn read_bandwidth(bytes: usize, threads: usize, pool: Option<&ThreadPool>) -> f64 {
    let words = (bytes / 8).max(64);
    // In the memory the weights live in: huge pages as the process's policy says (`PageBuf`), a
    // `Vec` only if the OS refuses the mapping.
    let mut buf: Box<dyn std::ops::DerefMut<Target = [u64]>> =
        match kernels::mem::PageBuf::<u64>::zeroed(words) {
            Ok(b) => Box::new(b),
            Err(_) => Box::new(vec![0u64; words]),
        };
    for (i, w) in buf.iter_mut().enumerate() {
        *w = i as u64;
    }
    let part = words.div_ceil(threads.max(1));
    let chunks: Vec<&[u64]> = buf.chunks(part).collect();
    // A small buffer is read many times per pass so that a pass lasts long enough to time.
    let passes_inside = (64 << 20) / (words * 8).min(64 << 20);
    let read_all = |c: &[u64], prefetch: bool| {
        let mut s = 0u64;
        for _ in 0..passes_inside {
            s = s.wrapping_add(sum_words(black_box(c), prefetch));
        }
        s
    };
    let mut best = f64::INFINITY;
    for _ in 0..PASSES {
        for prefetch in [false, true] {
            let t = Instant::now();
            match pool {
                Some(pool) if threads > 1 => {
                    pool.broadcast(|ctx| {
                        black_box(chunks.get(ctx.index()).map_or(0, |c| read_all(c, prefetch)))
                    });
                }
                _ => {
                    black_box(read_all(&buf, prefetch));
                }
            }
            best = best.min(t.elapsed().as_secs_f64());
        }
    }
    (words * 8 * passes_inside) as f64 / best / 1e9
}

/// Sums a buffer with the widest loads this CPU has (the loop is the same; the target feature
/// lets the compiler use 32-byte loads), with `prefetch`, on x86_64, asking for each line
/// [`kernels::mem::DEFAULT_DECODE_PREFETCH`] bytes ahead of its reads.
fn sum_words(c: &[u64], prefetch: bool) -> u64 {
    #[cfg(target_arch = "x86_64")]
    if Isa::Avx2.is_available() {
        // SAFETY: the CPU has AVX2 (checked on the line above).
        return unsafe {
            if prefetch {
                x86::sum_words_avx2::<true>(c)
            } else {
                x86::sum_words_avx2::<false>(c)
            }
        };
    }
    #[cfg(target_arch = "x86_64")]
    if prefetch {
        return sum_words_portable::<true>(c);
    }
    let _ = prefetch;
    sum_words_portable::<false>(c)
}

/// The wrapping sum of `c`, eight words (one cache line when aligned) a step; with `PREFETCH`
/// (x86_64 only) each step first asks for the line [`kernels::mem::DEFAULT_DECODE_PREFETCH`]
/// bytes ahead.
#[inline(always)]
fn sum_words_portable<const PREFETCH: bool>(c: &[u64]) -> u64 {
    let mut acc = [0u64; 8];
    let mut chunks = c.chunks_exact(8);
    for ch in &mut chunks {
        #[cfg(target_arch = "x86_64")]
        if PREFETCH {
            let ahead = ch
                .as_ptr()
                .cast::<i8>()
                .wrapping_add(kernels::mem::DEFAULT_DECODE_PREFETCH);
            // SAFETY: a prefetch never faults, whatever the address; SSE is part of x86_64.
            unsafe { std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(ahead) };
        }
        for i in 0..8 {
            acc[i] = acc[i].wrapping_add(ch[i]);
        }
    }
    chunks
        .remainder()
        .iter()
        .fold(acc.iter().fold(0u64, |a, b| a.wrapping_add(*b)), |a, b| {
            a.wrapping_add(*b)
        })
}

mod scalar {
    use super::ACC;
    use std::hint::black_box;

    /// The baseline vector unit's mul + add (SSE2 is part of x86_64): 12 chains of a 6-cycle
    /// mul-then-add fill both multipliers.
    #[cfg(target_arch = "x86_64")]
    pub fn fma(iters: usize) -> f32 {
        use std::arch::x86_64::*;
        // SAFETY: SSE2 is part of the x86_64 baseline; these intrinsics need nothing more.
        unsafe {
            let m = _mm_set1_ps(black_box(0.999_999f32));
            let a = _mm_set1_ps(black_box(1e-7f32));
            let mut acc = [_mm_set1_ps(1.0); ACC];
            for _ in 0..iters {
                for v in acc.iter_mut() {
                    *v = _mm_add_ps(_mm_mul_ps(*v, m), a);
                }
            }
            let mut s = _mm_setzero_ps();
            for v in acc {
                s = _mm_add_ps(s, v);
            }
            _mm_cvtss_f32(s)
        }
    }

    #[cfg(not(target_arch = "x86_64"))]
    pub fn fma(iters: usize) -> f32 {
        let m = black_box(0.999_999f32);
        let a = black_box(1e-7f32);
        let mut acc = [1.0f32; ACC];
        for _ in 0..iters {
            for v in acc.iter_mut() {
                *v = *v * m + a;
            }
        }
        acc.iter().sum()
    }

    pub fn int8(iters: usize) -> i32 {
        let w: [i8; ACC] = black_box(core::array::from_fn(|i| i as i8 - 6));
        // Activations come from memory, as in the kernels, so the products cannot be hoisted.
        let xs: [i8; 64] = black_box(core::array::from_fn(|i| (i as i8).wrapping_mul(37)));
        let mut acc = [0i32; ACC];
        for t in 0..iters {
            let x = i32::from(xs[t & 63]);
            for (a, &w) in acc.iter_mut().zip(&w) {
                *a = a.wrapping_add(i32::from(w) * x);
            }
        }
        acc.iter().fold(0, |a, b| a.wrapping_add(*b))
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::ACC;
    use std::arch::x86_64::*;

    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn fma_avx2(iters: usize) -> f32 {
        let m = _mm256_set1_ps(0.999_999);
        let a = _mm256_set1_ps(1e-7);
        let mut acc = [_mm256_set1_ps(1.0); ACC];
        for _ in 0..iters {
            for v in acc.iter_mut() {
                *v = _mm256_fmadd_ps(*v, m, a);
            }
        }
        let mut s = _mm256_setzero_ps();
        for v in acc {
            s = _mm256_add_ps(s, v);
        }
        _mm256_cvtss_f32(s)
    }

    #[target_feature(enable = "avx2")]
    pub unsafe fn int8_avx2(iters: usize) -> i32 {
        let mut w = _mm256_set1_epi8(7);
        let x = _mm256_set1_epi8(-3);
        let mut acc = [_mm256_setzero_si256(); ACC];
        for _ in 0..iters {
            for v in acc.iter_mut() {
                // An empty asm that "changes" `w` keeps the compiler from hoisting or merging
                // the products, which would otherwise be loop-invariant; it emits nothing.
                // SAFETY: the asm is an empty comment: it reads and writes only `w`'s register.
                unsafe {
                    core::arch::asm!("/* {0} */", inout(ymm_reg) w, options(pure, nomem, nostack))
                };
                // The kernels' inner step: `maddubs` products summed in i16 lanes (wrapping
                // here; the kernels stay in range). The multiply pipes run only `maddubs`.
                *v = _mm256_add_epi16(*v, _mm256_maddubs_epi16(w, x));
            }
        }
        let mut s = _mm256_setzero_si256();
        for v in acc {
            s = _mm256_add_epi16(s, v);
        }
        _mm256_cvtsi256_si32(s)
    }

    #[target_feature(enable = "avx512f")]
    pub unsafe fn fma_avx512(iters: usize) -> f32 {
        let m = _mm512_set1_ps(0.999_999);
        let a = _mm512_set1_ps(1e-7);
        let mut acc = [_mm512_set1_ps(1.0); ACC];
        for _ in 0..iters {
            for v in acc.iter_mut() {
                *v = _mm512_fmadd_ps(*v, m, a);
            }
        }
        let mut s = _mm512_setzero_ps();
        for v in acc {
            s = _mm512_add_ps(s, v);
        }
        _mm512_reduce_add_ps(s)
    }

    #[target_feature(enable = "avx512f,avx512bw")]
    pub unsafe fn int8_avx512(iters: usize) -> i32 {
        let mut w = _mm512_set1_epi8(7);
        let x = _mm512_set1_epi8(-3);
        let mut acc = [_mm512_setzero_si512(); ACC];
        for _ in 0..iters {
            for v in acc.iter_mut() {
                // As in `int8_avx2`: keeps the products in the loop, emits nothing.
                // SAFETY: the asm is an empty comment: it reads and writes only `w`'s register.
                unsafe {
                    core::arch::asm!("/* {0} */", inout(zmm_reg) w, options(pure, nomem, nostack))
                };
                // The kernels' inner step: `maddubs` products summed in i16 lanes (wrapping
                // here; the kernels stay in range). The multiply pipes run only `maddubs`.
                *v = _mm512_add_epi16(*v, _mm512_maddubs_epi16(w, x));
            }
        }
        let mut s = _mm512_setzero_si512();
        for v in acc {
            s = _mm512_add_epi16(s, v);
        }
        _mm512_reduce_add_epi32(s)
    }

    #[target_feature(enable = "avx2")]
    pub unsafe fn sum_words_avx2<const PREFETCH: bool>(c: &[u64]) -> u64 {
        super::sum_words_portable::<PREFETCH>(c)
    }
}

#[cfg(target_arch = "aarch64")]
mod arm {
    use super::ACC;
    use std::arch::aarch64::*;

    #[target_feature(enable = "neon")]
    pub unsafe fn fma_neon(iters: usize) -> f32 {
        let m = vdupq_n_f32(0.999_999);
        let a = vdupq_n_f32(1e-7);
        let mut acc = [vdupq_n_f32(1.0); ACC];
        for _ in 0..iters {
            for v in acc.iter_mut() {
                *v = vfmaq_f32(a, *v, m);
            }
        }
        let mut s = vdupq_n_f32(0.0);
        for v in acc {
            s = vaddq_f32(s, v);
        }
        vaddvq_f32(s)
    }

    #[target_feature(enable = "neon")]
    pub unsafe fn int8_neon(iters: usize) -> i32 {
        let mut w = vdupq_n_s8(7);
        let x = vdupq_n_s8(-3);
        let mut acc = [vdupq_n_s32(0); ACC];
        for _ in 0..iters {
            for v in acc.iter_mut() {
                // As in the x86 probes: keeps the products in the loop, emits nothing.
                // SAFETY: the asm is an empty comment: it reads and writes only `w`'s register.
                unsafe {
                    core::arch::asm!("/* {0:v} */", inout(vreg) w, options(pure, nomem, nostack))
                };
                let p = vmlal_high_s8(vmull_s8(vget_low_s8(w), vget_low_s8(x)), w, x);
                *v = vpadalq_s16(*v, p);
            }
        }
        let mut s = vdupq_n_s32(0);
        for v in acc {
            s = vaddq_s32(s, v);
        }
        vaddvq_s32(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probes_give_finite_positive_rates() {
        for isa in Isa::available() {
            for kind in [ComputeKind::FmaF32, ComputeKind::Int8Dot] {
                let r = peak_compute(kind, isa, 1, None);
                assert!(r.is_finite() && r > 0.0, "{isa} {kind:?}: {r}");
            }
        }
        let bw = read_bandwidth(1 << 20, 1, None);
        assert!(bw.is_finite() && bw > 0.0, "{bw}");
    }
}
