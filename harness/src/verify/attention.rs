//! Flash attention variants against scalar and against the f64 `reference` attention.
//!
//! Error bound (u = 2^-24, gamma(m) = m u / (1 - m u)), per output (t, h, d). Let
//! s_j be the exact scores, S = (1/sqrt(hd)) max_j sum_i |q_i k_ji| and E = 4u the larger of the
//! scalar (`f32::exp`, < 1 ulp) and SIMD exp relative errors.
//! - Scores: the dot product, the (rounded) scale and its product give
//!   |s~_j - s_j| <= D0 = gamma(hd+3) S; subtracting the running max rounds once more,
//!   |error| <= u (2 max|s| + D0). So every exponent carries an absolute error
//!   D <= D0 + 2u (max|s| + D0).
//! - Weights: each unnormalised weight exp(s~_j - m) differs from the exact exp(s_j - m) by a
//!   factor within [e^-D (1-E), e^D (1+E)], and the online softmax's T+1 rescalings (T tiles) and
//!   the running-sum additions add at most (1+E)^(T+1) (1+gamma(kv+T)). With eta the resulting
//!   relative error of each unnormalised weight, the normalised weights satisfy
//!   |p~_j - p_j| <= p_j * 2 eta / (1 - eta).
//! - Output: a convex combination of V rows, accumulated with error gamma(kv+T+2) sum p~|v|, so
//!   |out~ - out| <= (2 eta / (1 - eta) + (1 + 2eta/(1-eta)) gamma(kv+T+2)) * max_j |v_jd|.
//!   f16 caches are widened exactly, so the same bound holds with the f16 values as reference.
//! - Flushing: an exp whose argument is below -87.3 may return 0 instead of a value < 2^-126;
//!   with the running sum >= 1 that moves an output by at most visible * 2^-126 * max_j |v_jd|.
//!
//! Two variants within that bound differ by at most twice it.

use super::{gamma_f32, row, run_property, Metrics, Row, Status, VerifyConfig};
use crate::registry::{Design, Kernel};
use anyhow::Result;
use half::f16;
use kernels::attention::{self, AttentionDims, KvElem, TILE};
use kernels::Isa;
use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, StandardNormal};
use std::ops::Range;

/// One property case.
#[derive(Clone, Debug)]
pub struct AttentionCase {
    pub n_q: usize,
    pub pos0: usize,
    pub n_head_kv: usize,
    /// Query heads per KV head (GQA ratio).
    pub group: usize,
    pub head_dim: usize,
    /// Cache positions beyond pos0 + n_q (never visible; must never be read).
    pub extra_kv: usize,
    /// Compute only a sub-range of the query heads (threads split a layer that way).
    pub head_subset: bool,
    /// What the q, K and V values look like.
    pub content: AttentionContent,
    pub seed: u64,
}

/// Contents of q, K and V.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum AttentionContent {
    /// N(0,1) everywhere.
    Gaussian,
    /// q and k scaled by 5.5 so the scores reach +/-80 (softmax stability).
    LargeLogits,
    /// All query heads of a KV head share a direction u and one to three visible keys are 10u,
    /// so those scores lead the rest by > 100: a tile max that misses a lane overflows exp.
    /// Half of these keys sit in lane 15 of a 16-lane group.
    DominantKeys,
    /// K around 1e-5 and V around 1e-6: f16 subnormals, which must widen exactly.
    TinyValues,
    /// V up to +/-65000, near the f16 maximum.
    HugeValues,
    /// Some K rows and V entries are -0.0 and +0.0.
    SignedZeros,
}

impl AttentionCase {
    pub fn dims(&self) -> AttentionDims {
        AttentionDims {
            n_q: self.n_q,
            n_head: self.n_head_kv * self.group,
            n_head_kv: self.n_head_kv,
            head_dim: self.head_dim,
            pos0: self.pos0,
        }
    }

    fn heads(&self, rng: &mut StdRng) -> Range<usize> {
        let n_head = self.n_head_kv * self.group;
        if self.head_subset && n_head > 1 {
            let a = rng.gen_range(0..n_head);
            let b = rng.gen_range(a + 1..=n_head);
            a..b
        } else {
            0..n_head
        }
    }
}

/// kv_len = pos0 + n_q covers 1, tile-1, tile, tile+1 and long; n_q = 1, 3, one tile, a tile plus
/// a remainder; GQA ratios 1, 4, 8; positions far from 0.
pub fn case_strategy() -> impl Strategy<Value = AttentionCase> {
    let n_q = prop_oneof![
        4 => Just(1usize),
        2 => Just(3usize),
        1 => Just(TILE),
        1 => (1usize..=7).prop_map(|r| TILE + r),
    ];
    let pos0 = prop_oneof![
        Just(0usize),
        Just(TILE - 2),
        Just(TILE - 1),
        Just(TILE),
        1usize..=200,
        1000usize..=1100,
    ];
    let n_head_kv = prop_oneof![Just(1usize), Just(2usize)];
    let group = prop_oneof![Just(1usize), Just(4usize), Just(8usize)];
    // 64 and 128 are the models'; 16, 48, 80, 112 reach the partial-vector paths.
    let head_dim = prop_oneof![
        6 => Just(64usize),
        2 => Just(128usize),
        1 => Just(16usize),
        1 => Just(48usize),
        1 => Just(80usize),
        1 => Just(112usize),
    ];
    let content = prop_oneof![
        4 => Just(AttentionContent::Gaussian),
        2 => Just(AttentionContent::LargeLogits),
        2 => Just(AttentionContent::DominantKeys),
        1 => Just(AttentionContent::TinyValues),
        1 => Just(AttentionContent::HugeValues),
        1 => Just(AttentionContent::SignedZeros),
    ];
    (
        n_q,
        pos0,
        n_head_kv,
        group,
        head_dim,
        0usize..=3,
        any::<bool>(),
        content,
        any::<u64>(),
    )
        .prop_map(
            |(n_q, pos0, n_head_kv, group, head_dim, extra_kv, head_subset, content, seed)| {
                AttentionCase {
                    n_q,
                    // Keep long contexts to decode-sized query blocks: the f64 reference is
                    // O(n_q * kv * heads * hd) and long prefill adds no new path.
                    pos0: if n_q > 3 { pos0.min(300) } else { pos0 },
                    n_head_kv,
                    group,
                    head_dim,
                    extra_kv,
                    head_subset,
                    content,
                    seed,
                }
            },
        )
}

/// The kernel signature under test, generic over the cache element.
pub type AttentionFn<KV> =
    dyn Fn(&[f32], &[KV], &[KV], &mut [f32], &mut [f32], AttentionDims, Range<usize>);
/// A borrowed kernel under test.
pub type AttentionKernel<'a, KV> = &'a AttentionFn<KV>;

/// A cache element the gate checks.
pub trait CacheElem: KvElem + Debug {
    const DESIGN: Design;
    fn from_f32(x: f32) -> Self;
}

use std::fmt::Debug;

impl CacheElem for f32 {
    const DESIGN: Design = Design::FlashF32Kv;
    fn from_f32(x: f32) -> Self {
        x
    }
}

impl CacheElem for f16 {
    const DESIGN: Design = Design::FlashF16Kv;
    fn from_f32(x: f32) -> Self {
        f16::from_f32(x)
    }
}

fn gaussian(rng: &mut StdRng) -> f32 {
    StandardNormal.sample(rng)
}

/// q (`[n_q][n_head][hd]`), K and V (`[kv_len][n_head_kv][hd]`) for a case.
fn generate<KV: CacheElem>(
    case: &AttentionCase,
    dims: &AttentionDims,
    kv_len: usize,
    rng: &mut StdRng,
) -> (Vec<f32>, Vec<KV>, Vec<KV>) {
    use AttentionContent::*;
    let hd = dims.head_dim;
    let kv_stride = dims.kv_stride();
    let (q_scale, k_scale, v_scale) = match case.content {
        Gaussian | DominantKeys | SignedZeros => (1.0, 1.0, 1.0),
        LargeLogits => (5.5, 5.5, 1.0),
        TinyValues => (1.0, 1e-5, 1e-6),
        HugeValues => (1.0, 1.0, 2.0e4),
    };
    let mut q: Vec<f32> = (0..dims.q_len()).map(|_| q_scale * gaussian(rng)).collect();
    let mut k: Vec<f32> = (0..kv_len * kv_stride)
        .map(|_| k_scale * gaussian(rng))
        .collect();
    let mut v: Vec<f32> = (0..kv_len * kv_stride)
        .map(|_| (v_scale * gaussian(rng)).clamp(-65000.0, 65000.0))
        .collect();
    match case.content {
        DominantKeys => {
            let visible_to_all = dims.pos0 + 1;
            for g in 0..dims.n_head_kv {
                let u: Vec<f32> = (0..hd).map(|_| gaussian(rng)).collect();
                for t in 0..dims.n_q {
                    for h in g * dims.group()..(g + 1) * dims.group() {
                        let row = &mut q[(t * dims.n_head + h) * hd..][..hd];
                        for (qi, ui) in row.iter_mut().zip(&u) {
                            *qi = 2.0 * ui + 0.1 * *qi;
                        }
                    }
                }
                for _ in 0..rng.gen_range(1..=3) {
                    // Half the time in the last lane of a 16-lane group, where horizontal
                    // reductions and tails most often go wrong.
                    let j = if rng.gen_bool(0.5) && visible_to_all >= 16 {
                        16 * rng.gen_range(0..visible_to_all / 16) + 15
                    } else {
                        rng.gen_range(0..visible_to_all)
                    };
                    let row = &mut k[j * kv_stride + g * hd..][..hd];
                    for (ki, ui) in row.iter_mut().zip(&u) {
                        *ki = 10.0 * ui;
                    }
                }
            }
        }
        SignedZeros => {
            for j in 0..kv_len {
                if rng.gen_bool(0.2) {
                    k[j * kv_stride..][..kv_stride].fill(-0.0);
                }
            }
            for x in v.iter_mut() {
                if rng.gen_bool(0.3) {
                    *x = if rng.gen() { 0.0 } else { -0.0 };
                }
            }
        }
        _ => {}
    }
    let k = k.into_iter().map(KV::from_f32).collect();
    let v = v.into_iter().map(KV::from_f32).collect();
    (q, k, v)
}

/// Runs `kernel` (and `scalar`, when given) on one case and checks both oracles.
pub fn check_case<KV: CacheElem>(
    case: &AttentionCase,
    kernel: AttentionKernel<KV>,
    scalar: Option<AttentionKernel<KV>>,
) -> Result<Metrics, String> {
    let dims = case.dims();
    let mut rng = StdRng::seed_from_u64(case.seed);
    let heads = case.heads(&mut rng);
    let hd = dims.head_dim;
    let kv_len = dims.kv_len_needed() + case.extra_kv;
    let kv_stride = dims.kv_stride();
    let (q, k, v) = generate::<KV>(case, &dims, kv_len, &mut rng);

    // Reference on exactly the values the kernel sees.
    let qf: Vec<f64> = q.iter().map(|&x| x as f64).collect();
    let kf: Vec<f64> = k.iter().map(|x| x.to_f32() as f64).collect();
    let vf: Vec<f64> = v.iter().map(|x| x.to_f32() as f64).collect();
    let mut want = vec![f64::NAN; dims.q_len()];
    let rdims = reference::attention::AttnDims {
        n_q: dims.n_q,
        n_head: dims.n_head,
        n_head_kv: dims.n_head_kv,
        head_dim: hd,
        pos0: dims.pos0,
    };
    reference::attention::attention(&qf, &kf, &vf, &mut want, rdims, heads.clone());

    let mut scratch = vec![0f32; attention::scratch_len(&dims)];
    let mut out = vec![f32::NAN; dims.q_len()];
    kernel(&q, &k, &v, &mut out, &mut scratch, dims, heads.clone());
    let mut out_scalar = None;
    if let Some(scalar) = scalar {
        let mut o = vec![f32::NAN; dims.q_len()];
        scalar(&q, &k, &v, &mut o, &mut scratch, dims, heads.clone());
        out_scalar = Some(o);
    }

    let u = f64::powi(2.0, -24);
    let eps_exp = 4.0 * u;
    let group = dims.group();
    let mut metrics = Metrics::default();
    for t in 0..dims.n_q {
        let visible = dims.pos0 + t + 1;
        let tiles = visible.div_ceil(TILE);
        for h in 0..dims.n_head {
            let base = (t * dims.n_head + h) * hd;
            if !heads.contains(&h) {
                if out[base..base + hd].iter().any(|x| !x.is_nan()) {
                    return Err(format!("wrote head {h} outside heads {heads:?}"));
                }
                continue;
            }
            let g = h / group;
            let qh = &qf[base..base + hd];
            let (mut s_abs, mut s_max) = (0f64, 0f64);
            for j in 0..visible {
                let kj = &kf[j * kv_stride + g * hd..][..hd];
                let dot_abs: f64 = qh.iter().zip(kj).map(|(a, b)| (a * b).abs()).sum();
                let dot: f64 = qh.iter().zip(kj).map(|(a, b)| a * b).sum();
                s_abs = s_abs.max(dot_abs);
                s_max = s_max.max(dot.abs());
            }
            let scale = 1.0 / (hd as f64).sqrt();
            let d0 = gamma_f32(hd + 3) * scale * s_abs;
            let d = d0 + 2.0 * u * (scale * s_max + d0);
            let eta = (d + (tiles as f64 + 1.0) * eps_exp + gamma_f32(visible + tiles)).exp_m1();
            let wrel = 2.0 * eta / (1.0 - eta);
            let acc = gamma_f32(visible + tiles + 2);
            for dd in 0..hd {
                let vmax = (0..visible)
                    .map(|j| vf[j * kv_stride + g * hd + dd].abs())
                    .fold(0f64, f64::max);
                // Weights whose exponent is below -87.3 may be flushed to 0: each stood for
                // less than 2^-126 of the (>= 1) running sum.
                let flushed = visible as f64 * f64::powi(2.0, -126) * vmax;
                let bound = (wrel + (1.0 + wrel) * acc) * vmax + flushed;
                let o = base + dd;
                metrics
                    .record(out[o] as f64, want[o], vmax, bound)
                    .map_err(|e| format!("out[t={t}][h={h}][{dd}]: {e}"))?;
                if let Some(os) = &out_scalar {
                    let diff = (out[o] as f64 - os[o] as f64).abs();
                    if diff.is_nan() || diff > 2.0 * bound {
                        return Err(format!(
                            "out[t={t}][h={h}][{dd}] differs from scalar: {} vs {} > {:e}",
                            out[o],
                            os[o],
                            2.0 * bound
                        ));
                    }
                }
            }
        }
    }
    Ok(metrics)
}

/// The dispatching kernel for `isa`, with the signature under test.
fn kernel_for<KV: CacheElem>(isa: Isa) -> Box<AttentionFn<KV>> {
    Box::new(move |q, k, v, o, s, d, h| attention::flash_attention(isa, q, k, v, o, s, d, h))
}

fn variant<KV: CacheElem>(isa: Isa, cases: u32, seed: u64) -> Row {
    if let Some(reason) = isa.unavailable_reason() {
        return Row::skipped(Kernel::Attention, KV::DESIGN, isa, reason);
    }
    let kernel = kernel_for::<KV>(isa);
    let scalar = kernel_for::<KV>(Isa::Scalar);
    let oracle: Option<AttentionKernel<KV>> = (isa != Isa::Scalar).then_some(&*scalar);
    let outcome = run_property(case_strategy(), cases, seed, |case| {
        check_case::<KV>(case, &*kernel, oracle)
    });
    let mut r = row(Kernel::Attention, KV::DESIGN, isa, cases, outcome);
    if r.status == Status::Pass {
        r.note = format!("{}; {}", r.note, scratch_note());
    }
    r
}

/// The scratch the kernel reports for TinyLlama's shape, at a short and a long context.
pub fn scratch_note() -> String {
    let at = |pos0| {
        attention::scratch_len(&AttentionDims {
            n_q: 1,
            n_head: 32,
            n_head_kv: 4,
            head_dim: 64,
            pos0,
        })
    };
    format!(
        "scratch {} f32 at kv_len 1 and {} at 100000 (32/4 heads)",
        at(0),
        at(99_999)
    )
}

/// This family's rows, as deferred jobs.
pub fn families(config: &VerifyConfig) -> Vec<Box<dyn FnOnce() -> Result<Row>>> {
    let mut jobs: Vec<Box<dyn FnOnce() -> Result<Row>>> = Vec::new();
    if !config.wants_kernel("attention") {
        return jobs;
    }
    let (cases, seed) = (config.cases, config.seed);
    for f16_cache in [false, true] {
        for isa in Isa::ALL.into_iter().filter(|&i| config.wants_isa(i)) {
            jobs.push(Box::new(move || {
                Ok(if f16_cache {
                    variant::<f16>(isa, cases, seed)
                } else {
                    variant::<f32>(isa, cases, seed)
                })
            }));
        }
    }
    jobs
}
