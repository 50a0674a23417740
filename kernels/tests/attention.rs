//! Flash attention: every available ISA against an in-test naive f64 attention (full score row,
//! max-subtracted softmax) with a per-row tolerance from the error bound below, and every SIMD
//! variant against scalar with the sum of the two bounds. Variants this CPU lacks are reported as
//! skipped. `cargo test --release -p kernels --test attention -- --nocapture` prints the measured
//! errors; `-- --ignored --nocapture bench` prints timings.
//!
//! # Error bound (per output row `(t, h)`; `u = 2^-24`, `gamma_n = n u / (1 - n u)`)
//! The exact output is `o = sum_j w_j v_j`, `w_j = e^{s_j} / sum_i e^{s_i}`, a convex combination
//! of V rows. The kernel computes (in f32, any summation order, f16 widening exact):
//! 1. Scores: `|s^_j - s_j| <= gamma_{d+2} A`, with `A = max_j scale * sum_i |q_i k_ji|`
//!    (`d` products and sums, the product by `scale`, and `scale` itself rounded once).
//! 2. Weights `p^_j = exp(fl(s^_j - m^)) (1 + e)`: the common shift `m^` cancels on normalising;
//!    the subtraction adds `u |s_j - m| <= 2 u A` to the exponent; `|e| <= E` with `E = 2u` for
//!    `f32::exp` (< 1 ulp) and `ops::EXP_MAX_REL_ERROR` for the vectorised exp. Each rescale by
//!    `alpha` multiplies every earlier weight by `(1 + e_alpha)(1 + u)` (the same `alpha` goes into
//!    the accumulator and the running sum, so only its rounding relative to later weights
//!    matters), at most once per tile: `n_tiles (2u + u)` more (`alpha` is always `f32::exp`).
//!    So every unnormalised weight carries a factor `e^{eta_j}` with
//!    `|eta_j| <= eta = (gamma_{d+2} + 2u) A + E + 3u n_tiles`, and the normalised weights satisfy
//!    `sum_j |w^_j - w_j| <= e^{2 eta} - 1`, moving the output by at most that times `max|V|`.
//! 3. Accumulation: `sum_j p^_j v_j` (products and `kv` additions) and the running sum each
//!    carry at most `gamma_{kv+1}` relative error in terms of `sum p^_j |v_j| <= L max|V|`, and
//!    the final `* (1/L)` two more roundings.
//!
//! `|o^ - o| <= max|V| * (e^{2 eta} - 1 + 2 gamma_{kv+1} + 2u)`, `kv = pos0 + t + 1`.

use std::ops::Range;
use std::time::Instant;

use half::f16;
use kernels::attention::{flash_attention, scratch_len, AttentionDims, KvElem, TILE};
use kernels::ops::EXP_MAX_REL_ERROR;
use kernels::Isa;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Normal};

const U: f64 = f32::EPSILON as f64 / 2.0;

use kernels::bounds::gamma;

/// What the naive computation returns besides the output: the per-row bound's inputs.
struct Naive {
    out: Vec<f64>,
    /// `A` of the bound, per output row `[t][h]`.
    abs_score: Vec<f64>,
    /// Largest `|s_j|` over all rows.
    max_abs_logit: f64,
}

fn naive(q: &[f64], k: &[f64], v: &[f64], dims: AttentionDims) -> Naive {
    let (d, kv_stride) = (dims.head_dim, dims.kv_stride());
    let group = dims.n_head / dims.n_head_kv;
    let scale = 1.0 / (d as f64).sqrt();
    let mut out = vec![0.0; dims.q_len()];
    let mut abs_score = vec![0.0; dims.n_q * dims.n_head];
    let mut max_abs_logit = 0.0f64;
    for t in 0..dims.n_q {
        for h in 0..dims.n_head {
            let row = (t * dims.n_head + h) * d;
            let g = h / group;
            let q_row = &q[row..row + d];
            let visible = dims.pos0 + t + 1;
            let mut scores = Vec::with_capacity(visible);
            let mut a_max = 0.0f64;
            for j in 0..visible {
                let k_row = &k[j * kv_stride + g * d..][..d];
                scores.push(q_row.iter().zip(k_row).map(|(a, b)| a * b).sum::<f64>() * scale);
                let a: f64 = q_row.iter().zip(k_row).map(|(a, b)| (a * b).abs()).sum();
                a_max = a_max.max(a * scale);
            }
            abs_score[t * dims.n_head + h] = a_max;
            let m = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            max_abs_logit = scores.iter().fold(max_abs_logit, |a, s| a.max(s.abs()));
            let w: Vec<f64> = scores.iter().map(|s| (s - m).exp()).collect();
            let sum: f64 = w.iter().sum();
            for (j, wj) in w.iter().enumerate() {
                let v_row = &v[j * kv_stride + g * d..][..d];
                for (o, x) in out[row..row + d].iter_mut().zip(v_row) {
                    *o += wj / sum * x;
                }
            }
        }
    }
    Naive {
        out,
        abs_score,
        max_abs_logit,
    }
}

/// The bound of the module doc for row `(t, h)`, given the exp error `exp_err`.
fn row_bound(dims: AttentionDims, t: usize, abs_score: f64, max_v: f64, exp_err: f64) -> f64 {
    let kv = dims.pos0 + t + 1;
    let n_tiles = kv.div_ceil(TILE) as f64;
    let eta = (gamma(dims.head_dim + 2) + 2.0 * U) * abs_score + exp_err + 3.0 * U * n_tiles;
    max_v * ((2.0 * eta).exp_m1() + 2.0 * gamma(kv + 1) + 2.0 * U)
}

fn exp_error(isa: Isa) -> f64 {
    match isa {
        Isa::Scalar => 2.0 * U,
        _ => EXP_MAX_REL_ERROR,
    }
}

#[derive(Clone, Debug)]
struct Case {
    name: &'static str,
    dims: AttentionDims,
    /// Cached positions (`>= pos0 + n_q`); the excess holds huge values no row may read.
    kv_len: usize,
    heads: Range<usize>,
    /// Standard deviations of q and k; their product is about the score's.
    q_sigma: f32,
    k_sigma: f32,
    f16_kv: bool,
    seed: u64,
}

fn dims(
    n_q: usize,
    n_head: usize,
    n_head_kv: usize,
    head_dim: usize,
    pos0: usize,
) -> AttentionDims {
    AttentionDims {
        n_q,
        n_head,
        n_head_kv,
        head_dim,
        pos0,
    }
}

fn case(name: &'static str, dims: AttentionDims) -> Case {
    Case {
        name,
        dims,
        kv_len: dims.kv_len_needed(),
        heads: 0..dims.n_head,
        q_sigma: 1.0,
        k_sigma: 1.0,
        f16_kv: false,
        seed: 0,
    }
}

fn cases() -> Vec<Case> {
    let mut cases = vec![
        case("kv_len 1", dims(1, 4, 4, 64, 0)),
        case("kv_len tile-1", dims(1, 4, 4, 64, TILE - 2)),
        case("kv_len tile", dims(1, 4, 4, 64, TILE - 1)),
        case("kv_len tile+1", dims(1, 4, 4, 64, TILE)),
        case("kv_len 1000", dims(1, 8, 2, 64, 999)),
        case("n_q 3", dims(3, 4, 1, 64, 0)),
        case("n_q tile", dims(TILE, 4, 4, 64, 0)),
        case("n_q tile+5", dims(TILE + 5, 4, 2, 64, 0)),
        case("n_q 3 pos0 far", dims(3, 8, 1, 128, 900)),
        case("prefill pos0 far", dims(TILE + 3, 4, 1, 64, 700)),
        case("gqa 1", dims(2, 4, 4, 128, 100)),
        case("gqa 4", dims(2, 8, 2, 128, 100)),
        case("gqa 8", dims(2, 16, 2, 64, 100)),
        case("head_dim 16", dims(5, 4, 2, 16, 70)),
        case("head_dim 48", dims(5, 4, 2, 48, 70)),
        case("head_dim 80", dims(5, 4, 2, 80, 70)),
    ];
    let mut big = case("logits +-80", dims(4, 8, 2, 64, 300));
    (big.q_sigma, big.k_sigma) = (5.5, 5.5);
    cases.push(big);
    let mut big128 = case("logits +-80 hd128", dims(1, 4, 1, 128, 999));
    (big128.q_sigma, big128.k_sigma) = (5.5, 5.5);
    cases.push(big128);
    let mut longer = case("cache longer than needed", dims(3, 4, 2, 64, 150));
    longer.kv_len = 400;
    cases.push(longer);
    let mut sub = case("heads 3..6 only", dims(3, 8, 2, 64, 80));
    sub.heads = 3..6;
    cases.push(sub);
    let f16_cases: Vec<Case> = cases
        .iter()
        .map(|c| Case {
            f16_kv: true,
            ..c.clone()
        })
        .collect();
    cases.extend(f16_cases);
    for (i, c) in cases.iter_mut().enumerate() {
        c.seed = 0xA77E_0000 + i as u64;
    }
    cases
}

struct Inputs {
    q: Vec<f32>,
    k32: Vec<f32>,
    v32: Vec<f32>,
    k16: Vec<f16>,
    v16: Vec<f16>,
    /// The exact values the kernel sees, widened.
    q64: Vec<f64>,
    k64: Vec<f64>,
    v64: Vec<f64>,
}

fn inputs(c: &Case) -> Inputs {
    let mut rng = StdRng::seed_from_u64(c.seed);
    let d = c.dims;
    let normal = |sigma: f32| Normal::new(0.0f32, sigma).expect("positive sigma");
    let (nq, nk, nv) = (normal(c.q_sigma), normal(c.k_sigma), normal(1.0));
    let q: Vec<f32> = (0..d.q_len()).map(|_| nq.sample(&mut rng)).collect();
    let needed = d.kv_len_needed() * d.kv_stride();
    let cache = |rng: &mut StdRng, dist: Normal<f32>| -> Vec<f32> {
        (0..c.kv_len * d.kv_stride())
            .map(|i| if i < needed { dist.sample(rng) } else { 3.0e4 })
            .collect()
    };
    let mut k32 = cache(&mut rng, nk);
    let mut v32 = cache(&mut rng, nv);
    let k16: Vec<f16> = k32.iter().map(|&x| f16::from_f32(x)).collect();
    let v16: Vec<f16> = v32.iter().map(|&x| f16::from_f32(x)).collect();
    if c.f16_kv {
        // The naive side must see exactly what the kernel reads.
        k32 = k16.iter().map(|x| x.to_f32()).collect();
        v32 = v16.iter().map(|x| x.to_f32()).collect();
    }
    let wide = |x: &[f32]| x.iter().map(|&x| x as f64).collect::<Vec<f64>>();
    Inputs {
        q64: wide(&q),
        k64: wide(&k32),
        v64: wide(&v32),
        q,
        k32,
        v32,
        k16,
        v16,
    }
}

const UNTOUCHED: f32 = -7.25;

fn run(isa: Isa, c: &Case, x: &Inputs) -> Vec<f32> {
    let mut out = vec![UNTOUCHED; c.dims.q_len()];
    let mut scratch = vec![f32::NAN; scratch_len(&c.dims)];
    if c.f16_kv {
        flash_attention::<f16>(
            isa,
            &x.q,
            &x.k16,
            &x.v16,
            &mut out,
            &mut scratch,
            c.dims,
            c.heads.clone(),
        );
    } else {
        flash_attention::<f32>(
            isa,
            &x.q,
            &x.k32,
            &x.v32,
            &mut out,
            &mut scratch,
            c.dims,
            c.heads.clone(),
        );
    }
    out
}

struct Metrics {
    max_abs: f64,
    /// Largest `error / bound` over the rows.
    worst_ratio: f64,
    nmse: f64,
    cosine: f64,
}

/// Compares `got` with `want` over the case's heads, row by row against `bound(t, h)`.
fn compare(
    c: &Case,
    got: &[f32],
    want: &[f64],
    bound: impl Fn(usize, usize) -> f64,
) -> Result<Metrics, String> {
    let d = c.dims.head_dim;
    let (mut max_abs, mut worst_ratio) = (0.0f64, 0.0f64);
    let (mut err2, mut want2, mut dot, mut got2) = (0.0, 0.0, 0.0, 0.0);
    for t in 0..c.dims.n_q {
        for h in 0..c.dims.n_head {
            let row = (t * c.dims.n_head + h) * d;
            if !c.heads.contains(&h) {
                if got[row..row + d].iter().any(|&g| g != UNTOUCHED) {
                    return Err(format!("case {c:?}: wrote head {h} outside {:?}", c.heads));
                }
                continue;
            }
            let b = bound(t, h);
            for i in row..row + d {
                let (g, w) = (got[i] as f64, want[i]);
                let e = (g - w).abs();
                // A NaN error must fail too, hence not `e > b`.
                if e.is_nan() || e > b {
                    return Err(format!(
                        "case {c:?}: out[t={t}][h={h}][{}] = {g}, want {w}, |err| {e:e} > bound {b:e}",
                        i - row
                    ));
                }
                max_abs = max_abs.max(e);
                worst_ratio = worst_ratio.max(e / b);
                err2 += e * e;
                want2 += w * w;
                dot += g * w;
                got2 += g * g;
            }
        }
    }
    Ok(Metrics {
        max_abs,
        worst_ratio,
        nmse: err2 / want2.max(f64::MIN_POSITIVE),
        cosine: dot / (want2.sqrt() * got2.sqrt()).max(f64::MIN_POSITIVE),
    })
}

fn max_abs_v(c: &Case, x: &Inputs) -> f64 {
    let needed = c.dims.kv_len_needed() * c.dims.kv_stride();
    x.v64[..needed].iter().fold(0.0f64, |m, v| m.max(v.abs()))
}

#[test]
fn every_isa_matches_naive_f64_and_scalar_within_the_bound() {
    for c in cases() {
        let x = inputs(&c);
        let want = naive(&x.q64, &x.k64, &x.v64, c.dims);
        let max_v = max_abs_v(&c, &x);
        if c.q_sigma > 1.0 {
            // The stability cases must really reach the logits they are named after.
            assert!(
                want.max_abs_logit >= 80.0,
                "case {c:?}: logits only reach {}",
                want.max_abs_logit
            );
        }
        let bound_for = |isa: Isa| {
            let (dims, want) = (c.dims, &want);
            move |t: usize, h: usize| {
                row_bound(
                    dims,
                    t,
                    want.abs_score[t * dims.n_head + h],
                    max_v,
                    exp_error(isa),
                )
            }
        };
        let scalar = run(Isa::Scalar, &c, &x);
        for isa in Isa::ALL {
            if let Some(why) = isa.unavailable_reason() {
                eprintln!("{isa}: skipped ({why})");
                continue;
            }
            let got = run(isa, &c, &x);
            let m = compare(&c, &got, &want.out, bound_for(isa))
                .unwrap_or_else(|e| panic!("{isa} vs naive f64: {e}"));
            eprintln!(
                "{:<26} kv={:<5} {isa:<7} max|err| {:.2e}  err/bound {:.3}  nmse {:.2e}  cos-1 {:.1e}  (seed {:#x})",
                format!("{}{}", c.name, if c.f16_kv { " f16" } else { "" }),
                c.dims.kv_len_needed(),
                m.max_abs,
                m.worst_ratio,
                m.nmse,
                m.cosine - 1.0,
                c.seed
            );
            if isa != Isa::Scalar {
                // Both sit within their bound of the same exact value.
                let scalar64: Vec<f64> = scalar.iter().map(|&s| s as f64).collect();
                let (b_isa, b_scalar) = (bound_for(isa), bound_for(Isa::Scalar));
                compare(&c, &got, &scalar64, |t, h| b_isa(t, h) + b_scalar(t, h))
                    .unwrap_or_else(|e| panic!("{isa} vs scalar: {e}"));
            }
        }
    }
}

/// The tolerance is tight enough to matter: attending one position too few (the causal edge off
/// by one) must break it, on a short and on a long row.
#[test]
fn the_bound_rejects_an_off_by_one_causal_edge() {
    for (pos0, seed) in [(5usize, 11u64), (200, 12)] {
        let mut c = case("off by one", dims(1, 4, 2, 64, pos0));
        c.seed = seed;
        let x = inputs(&c);
        let want = naive(&x.q64, &x.k64, &x.v64, c.dims);
        let max_v = max_abs_v(&c, &x);
        let short = AttentionDims {
            pos0: pos0 - 1,
            ..c.dims
        };
        let mut got = vec![0.0f32; c.dims.q_len()];
        let mut scratch = vec![0.0f32; scratch_len(&short)];
        flash_attention(
            Isa::Scalar,
            &x.q,
            &x.k32,
            &x.v32,
            &mut got,
            &mut scratch,
            short,
            0..4,
        );
        let verdict = compare(&c, &got, &want.out, |t, h| {
            row_bound(
                c.dims,
                t,
                want.abs_score[t * 4 + h],
                max_v,
                exp_error(Isa::Scalar),
            )
        });
        assert!(
            verdict.is_err(),
            "pos0 {pos0}, seed {seed}: off-by-one slipped through"
        );
    }
}

#[test]
fn scratch_does_not_grow_with_the_context() {
    let short = dims(1, 32, 4, 128, 0);
    let long = dims(1, 32, 4, 128, 100_000);
    assert_eq!(scratch_len(&short), scratch_len(&long));
}

#[test]
#[should_panic(expected = "cache holds")]
fn a_short_cache_is_refused() {
    let d = dims(2, 4, 2, 64, 10);
    let kv = vec![0.0f32; 11 * d.kv_stride()];
    let q = vec![0.0f32; d.q_len()];
    let mut out = vec![0.0f32; d.q_len()];
    let mut scratch = vec![0.0f32; scratch_len(&d)];
    flash_attention(Isa::Scalar, &q, &kv, &kv, &mut out, &mut scratch, d, 0..4);
}

fn bench_one<KV: KvElem>(isa: Isa, q: &[f32], k: &[KV], v: &[KV], d: AttentionDims) -> f64 {
    let mut out = vec![0.0f32; d.q_len()];
    let mut scratch = vec![0.0f32; scratch_len(&d)];
    let mut best = f64::INFINITY;
    for _ in 0..7 {
        let start = Instant::now();
        let reps = 20;
        for _ in 0..reps {
            flash_attention(isa, q, k, v, &mut out, &mut scratch, d, 0..d.n_head);
            std::hint::black_box(&mut out);
        }
        best = best.min(start.elapsed().as_secs_f64() / reps as f64);
    }
    best
}

/// Decode step at 1024 context, TinyLlama-like heads: `--ignored --nocapture bench`.
#[test]
#[ignore]
fn bench_decode_kv1024_32h_4kv_hd64() {
    let d = dims(1, 32, 4, 64, 1023);
    let mut rng = StdRng::seed_from_u64(1);
    let q: Vec<f32> = (0..d.q_len()).map(|_| rng.gen_range(-1.0..1.0)).collect();
    let k: Vec<f32> = (0..1024 * d.kv_stride())
        .map(|_| rng.gen_range(-1.0..1.0))
        .collect();
    let v: Vec<f32> = (0..1024 * d.kv_stride())
        .map(|_| rng.gen_range(-1.0..1.0))
        .collect();
    let k16: Vec<f16> = k.iter().map(|&x| f16::from_f32(x)).collect();
    let v16: Vec<f16> = v.iter().map(|&x| f16::from_f32(x)).collect();
    for isa in Isa::available() {
        let t32 = bench_one(isa, &q, &k, &v, d);
        let t16 = bench_one(isa, &q, &k16, &v16, d);
        eprintln!(
            "{isa:<7} f32 KV {:8.1} us   f16 KV {:8.1} us",
            t32 * 1e6,
            t16 * 1e6
        );
    }
}

/// A NaN score must surface as NaN in every variant (an upstream bug should not be averaged
/// away into plausible output).
#[test]
fn nan_in_a_query_propagates_in_every_variant() {
    use kernels::attention::{flash_attention, scratch_len, AttentionDims};
    use kernels::Isa;
    let dims = AttentionDims {
        n_q: 1,
        n_head: 2,
        n_head_kv: 1,
        head_dim: 16,
        pos0: 70,
    };
    let kv: Vec<f32> = (0..71 * 16)
        .map(|i| ((i * 7919) % 13) as f32 * 0.1 - 0.6)
        .collect();
    let mut q = vec![0.25f32; 32];
    q[3] = f32::NAN; // head 0 only
    for isa in Isa::available() {
        let mut out = vec![0f32; 32];
        let mut scratch = vec![0f32; scratch_len(&dims)];
        flash_attention(isa, &q, &kv, &kv, &mut out, &mut scratch, dims, 0..2);
        assert!(
            out[..16].iter().all(|x| x.is_nan()),
            "{isa}: head 0 {:?}",
            &out[..16]
        );
        assert!(
            out[16..].iter().all(|x| x.is_finite()),
            "{isa}: head 1 {:?}",
            &out[16..]
        );
    }
}
