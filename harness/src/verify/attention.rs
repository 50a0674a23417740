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

use super::{
    gamma_f32, row, run_fixed_then_property, Memo, Metrics, PropertyOutcome, Row, Status,
    VerifyConfig,
};
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
use std::sync::Arc;

/// One property case.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
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
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
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
    /// Every key points against its query heads' shared direction: all scores of a row lie
    /// between about -150 and -600, so a running max that starts at 0 instead of -inf (or any
    /// exp of an unshifted score) underflows every weight to zero.
    FarNegativeLogits,
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

/// TinyLlama (32 query heads over 4 KV heads) and SmolLM2-135M (9 over 3, a ratio that is not a
/// power of two), head size 64: decode at the start, mid-context and across a tile edge, and a
/// prefill block. Every `verify` runs them.
pub fn model_cases() -> Vec<AttentionCase> {
    let mut cases = Vec::new();
    for (n_head_kv, group) in [(4, 8), (3, 3)] {
        for (n_q, pos0) in [(1, 0), (1, TILE), (1, 700), (TILE + 5, 0), (3, 130)] {
            for content in [
                AttentionContent::Gaussian,
                AttentionContent::FarNegativeLogits,
            ] {
                cases.push(AttentionCase {
                    n_q,
                    pos0,
                    n_head_kv,
                    group,
                    head_dim: 64,
                    extra_kv: 1,
                    head_subset: false,
                    content,
                    seed: (n_q * 1000 + pos0 + group) as u64,
                });
            }
        }
    }
    cases
}

/// kv_len = pos0 + n_q covers 1, tile-1, tile, tile+1 and long; n_q = 1, 3, one tile, a tile plus
/// a remainder; GQA ratios 1, 3, 4, 8 over 1 to 3 KV heads; positions far from 0.
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
    let n_head_kv = prop_oneof![Just(1usize), Just(2usize), Just(3usize)];
    // 3 is SmolLM2's ratio: head mappings that only work for powers of two fail there.
    let group = prop_oneof![Just(1usize), Just(3usize), Just(4usize), Just(8usize)];
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
        1 => Just(AttentionContent::FarNegativeLogits),
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
pub trait CacheElem: KvElem + bytemuck::Pod + Debug {
    const DESIGN: Design;
    fn from_f32(x: f32) -> Self;
    /// The value the reference sees, widened by the `half` crate rather than by the kernels'
    /// own conversion (`KvElem::to_f32`), so a conversion bug cannot hide in both.
    fn to_reference(&self) -> f64;
}

use std::fmt::Debug;

impl CacheElem for f32 {
    const DESIGN: Design = Design::FlashF32Kv;
    fn from_f32(x: f32) -> Self {
        x
    }
    fn to_reference(&self) -> f64 {
        f64::from(*self)
    }
}

impl CacheElem for f16 {
    const DESIGN: Design = Design::FlashF16Kv;
    fn from_f32(x: f32) -> Self {
        f16::from_f32(x)
    }
    fn to_reference(&self) -> f64 {
        self.to_f64()
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
        Gaussian | DominantKeys | SignedZeros | FarNegativeLogits => (1.0, 1.0, 1.0),
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
        FarNegativeLogits => {
            // q = a u + noise and k_j = -b_j u + noise with |u|^2 ~ hd: scores ~ -a b_j sqrt(hd).
            let target = 150.0 + 450.0 * rng.gen::<f32>();
            let a = 5.0f32;
            for g in 0..dims.n_head_kv {
                let u: Vec<f32> = (0..hd).map(|_| gaussian(rng)).collect();
                let norm2: f32 = u.iter().map(|x| x * x).sum();
                for t in 0..dims.n_q {
                    for h in g * dims.group()..(g + 1) * dims.group() {
                        let row = &mut q[(t * dims.n_head + h) * hd..][..hd];
                        for (qi, ui) in row.iter_mut().zip(&u) {
                            *qi = a * ui + 0.05 * *qi;
                        }
                    }
                }
                for j in 0..kv_len {
                    let b =
                        target * (0.8 + 0.4 * rng.gen::<f32>()) * (hd as f32).sqrt() / (a * norm2);
                    let row = &mut k[j * kv_stride + g * hd..][..hd];
                    for (ki, ui) in row.iter_mut().zip(&u) {
                        *ki = -b * ui + 0.05 * *ki;
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

/// A case, generated, with the reference output and each output's bound and scale.
pub struct Prepared<KV> {
    heads: Range<usize>,
    q: Vec<f32>,
    k: Vec<KV>,
    v: Vec<KV>,
    want: Vec<f64>,
    /// Per output of `heads`: the error bound (module docs).
    bound: Vec<f64>,
    /// Per output of `heads`: max_j |v_jd|, the output's scale.
    vmax: Vec<f64>,
}

/// Generates a case's inputs and computes the reference and the bounds.
fn prepare<KV: CacheElem>(case: &AttentionCase) -> Prepared<KV> {
    let dims = case.dims();
    let mut rng = StdRng::seed_from_u64(case.seed);
    let heads = case.heads(&mut rng);
    let hd = dims.head_dim;
    let kv_len = dims.kv_len_needed() + case.extra_kv;
    let kv_stride = dims.kv_stride();
    let (q, k, v) = generate::<KV>(case, &dims, kv_len, &mut rng);

    // Reference on exactly the values the kernel sees.
    let qf: Vec<f64> = q.iter().map(|&x| x as f64).collect();
    let kf: Vec<f64> = k.iter().map(CacheElem::to_reference).collect();
    let vf: Vec<f64> = v.iter().map(CacheElem::to_reference).collect();
    let mut want = vec![f64::NAN; dims.q_len()];
    let rdims = reference::attention::AttnDims {
        n_q: dims.n_q,
        n_head: dims.n_head,
        n_head_kv: dims.n_head_kv,
        head_dim: hd,
        pos0: dims.pos0,
    };
    reference::attention::attention(&qf, &kf, &vf, &mut want, rdims, heads.clone());

    let u = f64::powi(2.0, -24);
    let eps_exp = 4.0 * u;
    let group = dims.group();
    let mut bound = vec![f64::NAN; dims.q_len()];
    let mut vmax = vec![f64::NAN; dims.q_len()];
    for t in 0..dims.n_q {
        let visible = dims.pos0 + t + 1;
        let tiles = visible.div_ceil(TILE);
        // max_j |v_jd| over the visible rows, per KV head: shared by its query heads.
        let mut vmax_of_group: Vec<Option<Vec<f64>>> = vec![None; dims.n_head_kv];
        for h in heads.clone() {
            let base = (t * dims.n_head + h) * hd;
            let g = h / group;
            let qh = &qf[base..base + hd];
            let (mut s_abs, mut s_max) = (0f64, 0f64);
            for j in 0..visible {
                let kj = &kf[j * kv_stride + g * hd..][..hd];
                // One product per term for both sums (|a*b| is the product's own magnitude).
                let (mut dot, mut dot_abs) = (0f64, 0f64);
                for (a, b) in qh.iter().zip(kj) {
                    let p = a * b;
                    dot += p;
                    dot_abs += p.abs();
                }
                s_abs = s_abs.max(dot_abs);
                s_max = s_max.max(dot.abs());
            }
            let scale = 1.0 / (hd as f64).sqrt();
            let d0 = gamma_f32(hd + 3) * scale * s_abs;
            let d = d0 + 2.0 * u * (scale * s_max + d0);
            let eta = (d + (tiles as f64 + 1.0) * eps_exp + gamma_f32(visible + tiles)).exp_m1();
            let wrel = 2.0 * eta / (1.0 - eta);
            let acc = gamma_f32(visible + tiles + 2);
            let vmax_g = vmax_of_group[g].get_or_insert_with(|| {
                (0..hd)
                    .map(|dd| {
                        (0..visible)
                            .map(|j| vf[j * kv_stride + g * hd + dd].abs())
                            .fold(0f64, f64::max)
                    })
                    .collect()
            });
            for (dd, &vm) in vmax_g.iter().enumerate() {
                // Weights whose exponent is below -87.3 may be flushed to 0: each stood for
                // less than 2^-126 of the (>= 1) running sum.
                let flushed = visible as f64 * f64::powi(2.0, -126) * vm;
                bound[base + dd] = (wrel + (1.0 + wrel) * acc) * vm + flushed;
                vmax[base + dd] = vm;
            }
        }
    }
    Prepared {
        heads,
        q,
        k,
        v,
        want,
        bound,
        vmax,
    }
}

/// Runs `kernel` (and `scalar`, when given) on one case and checks both oracles.
pub fn check_case<KV: CacheElem>(
    case: &AttentionCase,
    kernel: AttentionKernel<KV>,
    scalar: Option<AttentionKernel<KV>>,
) -> Result<Metrics, String> {
    check_prepared(case, &prepare(case), kernel, scalar)
}

fn check_prepared<KV: CacheElem>(
    case: &AttentionCase,
    p: &Prepared<KV>,
    kernel: AttentionKernel<KV>,
    scalar: Option<AttentionKernel<KV>>,
) -> Result<Metrics, String> {
    let dims = case.dims();
    let hd = dims.head_dim;
    let heads = &p.heads;
    let mut scratch = vec![0f32; attention::scratch_len(&dims)];
    let mut out = vec![f32::NAN; dims.q_len()];
    kernel(
        &p.q,
        &p.k,
        &p.v,
        &mut out,
        &mut scratch,
        dims,
        heads.clone(),
    );
    let mut out_scalar = None;
    if let Some(scalar) = scalar {
        let mut o = vec![f32::NAN; dims.q_len()];
        scalar(&p.q, &p.k, &p.v, &mut o, &mut scratch, dims, heads.clone());
        out_scalar = Some(o);
    }

    let mut metrics = Metrics::default();
    for t in 0..dims.n_q {
        for h in 0..dims.n_head {
            let base = (t * dims.n_head + h) * hd;
            if !heads.contains(&h) {
                if out[base..base + hd].iter().any(|x| !x.is_nan()) {
                    return Err(format!("wrote head {h} outside heads {heads:?}"));
                }
                continue;
            }
            for dd in 0..hd {
                let o = base + dd;
                let bound = p.bound[o];
                metrics
                    .record(out[o] as f64, p.want[o], p.vmax[o], bound)
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

/// Every check `verify` applies to an attention kernel: the model cases, then the property cases.
pub fn run_checks<KV: CacheElem>(
    kernel: AttentionKernel<KV>,
    scalar: Option<AttentionKernel<KV>>,
    cases: u32,
    seed: u64,
) -> PropertyOutcome {
    run_checks_memo(kernel, scalar, cases, seed, &Memo::default())
}

/// As [`run_checks`], taking each case's preparation from `memo` (shared by the ISA rows).
fn run_checks_memo<KV: CacheElem>(
    kernel: AttentionKernel<KV>,
    scalar: Option<AttentionKernel<KV>>,
    cases: u32,
    seed: u64,
    memo: &Memo<AttentionCase, Prepared<KV>>,
) -> PropertyOutcome {
    run_fixed_then_property(&model_cases(), case_strategy(), cases, seed, |case| {
        let p = memo.get_or_try(case, || Ok(prepare(case)))?;
        check_prepared::<KV>(case, &p, kernel, scalar)
    })
}

/// The dispatching kernel for `isa`, with the signature under test.
fn kernel_for<KV: CacheElem>(isa: Isa) -> Box<AttentionFn<KV>> {
    Box::new(move |q, k, v, o, s, d, h| {
        super::qemu::flash_attention(KV::DESIGN, isa, q, k, v, o, s, d, h)
    })
}

fn variant<KV: CacheElem>(
    isa: Isa,
    cases: u32,
    seed: u64,
    memo: &Memo<AttentionCase, Prepared<KV>>,
) -> Row {
    if let Some(reason) = super::qemu::unavailable_reason(isa) {
        return Row::skipped(Kernel::Attention, KV::DESIGN, isa, reason);
    }
    let kernel = kernel_for::<KV>(isa);
    let scalar = kernel_for::<KV>(Isa::Scalar);
    let oracle: Option<AttentionKernel<KV>> = (isa != Isa::Scalar).then_some(&*scalar);
    let outcome = run_checks_memo::<KV>(&*kernel, oracle, cases, seed, memo);
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

/// This family's rows, as deferred jobs; each cache design's rows share one [`Memo`].
pub fn families(config: &VerifyConfig) -> Vec<super::Job> {
    let mut jobs: Vec<super::Job> = Vec::new();
    if !config.wants_kernel("attention") {
        return jobs;
    }
    design_jobs::<f32>(config, &mut jobs);
    design_jobs::<f16>(config, &mut jobs);
    jobs
}

fn design_jobs<KV: CacheElem + Send + Sync + 'static>(
    config: &VerifyConfig,
    jobs: &mut Vec<super::Job>,
) {
    let (cases, seed) = (config.cases, config.seed);
    let memo = Arc::new(Memo::<AttentionCase, Prepared<KV>>::default());
    for isa in Isa::ALL.into_iter().filter(|&i| config.wants_isa(i)) {
        let memo = memo.clone();
        jobs.push(super::Job::new(isa, move || {
            Ok(variant::<KV>(isa, cases, seed, &memo))
        }));
    }
}
