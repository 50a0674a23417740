//! `harness verify --model`: the forward pass the kernels make, against the reference's.
//!
//! Both run the same tokens. The reference (`reference::model`, f64, its own GGUF reader and
//! dequantization) runs them one at a time; the kernels' [`Session`] prefills the first half in
//! batches with a batch boundary inside the prompt, then decodes the rest one token at a time,
//! so a RoPE position that is wrong after a prefill batch, a KV cache row off by one or a batch
//! boundary that drops a token's attention all change the logits it is compared on: the last
//! prefill position and every decode position.
//!
//! Per design x ISA x thread count, over those positions (p = softmax of the reference's
//! logits, q = ours):
//! - top-1 agreement, `KL(p || q)` (mean and max), the largest logit error (absolute and
//!   relative to the spread of the reference's logits at that position);
//! - the figures `llama-perplexity --kl-divergence` prints: mean KLD, the RMS of the change in
//!   the probability of the sequence's next token (`Δp`), and the same-top-token fraction.
//!
//! # Bounds
//! What the kernels change against exact arithmetic, per layer: in the `q8` design every matmul
//! input is quantized to 8 bits (relative error up to `1/254` of each block's largest value,
//! about 0.3-0.7% RMS per value; Q8_1's f16 block sum saturates for very large blocks), K and V
//! are rounded to f16 in the default cache (`2^-11` relative), and f32 accumulation adds
//! `gamma(k)` per dot product. Through a residual network each layer adds its own error and
//! passes the earlier ones on about unchanged, so the logit error grows with the layer count
//! and is largest on a deep trained model with outlier activations. Measured with
//! `harness verify --model FILE --isa native --tokens 24` (both designs, 1 and 2 threads; Zen 3,
//! AVX2 and scalar):
//!
//! | model | design, KV | mean KLD | max KLD | RMS logit error / spread | top-1 |
//! |---|---|---|---|---|---|
//! | SmolLM2-135M Q4_1 (30 layers) | f32, f16 | 8.1e-7 | 1.3e-6 | 0.0010 | 1.000 |
//! | SmolLM2-135M Q4_1 | q8, f16 | 7.9e-3 | 1.5e-2 | 0.129 | 0.846 |
//! | TinyLlama Q4_K_M, 2 layers, random | f32, f16 | 7.1e-8 | 8.6e-8 | 0.0004 | 1.000 |
//! | TinyLlama Q4_K_M, 2 layers, random | f32, f32 | 2.3e-13 | 3.0e-13 | 1e-6 | 1.000 |
//! | TinyLlama Q4_K_M, 2 layers, random | q8, f16 | 3.6e-4 | 4.0e-4 | 0.030 | 1.000 |
//!
//! [`Bounds::for_run`] allows about 2.5x the worst measured `q8` row (SmolLM2) and 10x the `f32`
//! ones, and for `f32` with an f32 cache, where only f32 rounding remains, 100x. The self-test
//! (`--self-test`) plants six model bugs into the `f32`/f32-cache session: on SmolLM2 the
//! weakest (a batch boundary that drops a token) moves the mean KLD to 3.6e-2 and the RMS logit
//! error to 0.21 of the spread, far beyond that design's bounds; most planted bugs would also
//! exceed the looser `q8` bounds.

use anyhow::{anyhow, bail, Context, Result};
use kernels::attention::KvFormat;
use kernels::gguf::GgufFile;
use kernels::model::{Design, Model, PlantedBug, Session, SessionOptions};
use kernels::tokenizer::Tokenizer;
use kernels::Isa;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The bounds one design is held to (see the module docs for where they come from).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Bounds {
    /// Largest mean `KL(reference || ours)` over the compared positions.
    pub mean_kld: f64,
    /// Largest `KL(reference || ours)` at any compared position.
    pub max_kld: f64,
    /// Largest RMS logit error over the compared positions, relative to the RMS spread of the
    /// reference's logits about their mean (so a near-uniform output of a random-weight model
    /// and a peaked one of a trained model are judged alike).
    pub rms_rel_logit_err: f64,
    /// Smallest top-1 agreement. Positions whose two best reference logits are closer than
    /// the logit error may legitimately swap, so this is below 1.
    pub top1: f64,
}

impl Bounds {
    /// The bounds of `design` with a KV cache in `kv`.
    pub fn for_run(design: Design, kv: KvFormat) -> Bounds {
        match (design, kv) {
            // Nothing but f32 rounding (accumulation, the f32 dequantized weights are exact):
            // gamma(k) relative per dot product, a few 1e-6 relative after the layers.
            (Design::F32, KvFormat::F32) => Bounds {
                mean_kld: 1e-8,
                max_kld: 1e-7,
                rms_rel_logit_err: 1e-4,
                top1: 0.9,
            },
            _ => Bounds::for_design(design),
        }
    }

    /// The bounds of `design` with the default f16 KV cache.
    pub fn for_design(design: Design) -> Bounds {
        match design {
            // f32 activations: what differs from the reference is f32 accumulation and the f16
            // KV cache (2^-11 relative per K and V value).
            Design::F32 => Bounds {
                mean_kld: 1e-4,
                max_kld: 1e-3,
                rms_rel_logit_err: 0.01,
                top1: 0.9,
            },
            // 8-bit activations before every matmul on top of that.
            Design::Int8 => Bounds {
                mean_kld: 2e-2,
                max_kld: 5e-2,
                rms_rel_logit_err: 0.3,
                top1: 0.6,
            },
        }
    }
}

/// Where the tokens come from.
#[derive(Clone, Debug)]
pub enum Tokens {
    /// This text, through the file's tokenizer (with BOS where the file asks for it).
    Prompt(String),
    /// This many seeded random token ids (BOS first where the file has one).
    Random(usize),
}

/// What `verify --model` runs.
#[derive(Clone, Debug)]
pub struct ModelCheck {
    pub path: PathBuf,
    pub tokens: Tokens,
    pub isas: Vec<Isa>,
    pub designs: Vec<Design>,
    pub threads: Vec<usize>,
    pub kv: KvFormat,
    pub seed: u64,
}

/// One row of the report: a design x ISA x thread-count run of the model.
#[derive(Clone, Debug, Serialize)]
pub struct ModelRow {
    pub model: String,
    pub design: String,
    pub isa: String,
    pub threads: usize,
    pub kv: String,
    pub tokens: usize,
    /// Positions whose logits were compared.
    pub positions: usize,
    pub top1_agreement: f64,
    pub mean_kld: f64,
    pub max_kld: f64,
    pub max_abs_logit_err: f64,
    pub max_rel_logit_err: f64,
    pub rms_rel_logit_err: f64,
    pub rms_dp: f64,
    pub same_top_p: f64,
    pub status: String,
    pub note: String,
}

/// The comparison of one run against the reference.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Agreement {
    pub positions: usize,
    pub top1_agreement: f64,
    pub mean_kld: f64,
    pub max_kld: f64,
    pub max_abs_logit_err: f64,
    pub max_rel_logit_err: f64,
    pub rms_rel_logit_err: f64,
    pub rms_dp: f64,
}

impl Agreement {
    /// Why this agreement fails `b`, if it does. (Written so that NaN fails.)
    pub fn violation(&self, b: &Bounds) -> Option<String> {
        let mut why = Vec::new();
        let exceeds = |x: f64, max: f64| x.is_nan() || x > max;
        if exceeds(self.mean_kld, b.mean_kld) {
            why.push(format!("mean KLD {:.3e} > {:e}", self.mean_kld, b.mean_kld));
        }
        if exceeds(self.max_kld, b.max_kld) {
            why.push(format!("max KLD {:.3e} > {:e}", self.max_kld, b.max_kld));
        }
        if exceeds(self.rms_rel_logit_err, b.rms_rel_logit_err) {
            why.push(format!(
                "RMS logit error {:.4} of the logit spread > {}",
                self.rms_rel_logit_err, b.rms_rel_logit_err
            ));
        }
        if self.top1_agreement.is_nan() || self.top1_agreement < b.top1 {
            why.push(format!(
                "top-1 agreement {:.3} < {}",
                self.top1_agreement, b.top1
            ));
        }
        (!why.is_empty()).then(|| why.join("; "))
    }
}

/// `log softmax(x)` in f64.
fn log_softmax(x: impl Iterator<Item = f64> + Clone) -> Vec<f64> {
    let max = x.clone().fold(f64::NEG_INFINITY, f64::max);
    let lse = max + x.clone().map(|v| (v - max).exp()).sum::<f64>().ln();
    x.map(|v| v - lse).collect()
}

fn argmax(x: &[f64]) -> usize {
    (0..x.len())
        .max_by(|&a, &b| x[a].total_cmp(&x[b]))
        .unwrap_or(0)
}

/// Compares our logits with the reference's at the same positions. `next[i]` is the token
/// that follows position `i` in the sequence (for `Δp`), when there is one.
pub fn compare(reference: &[Vec<f64>], ours: &[Vec<f32>], next: &[Option<u32>]) -> Agreement {
    let mut a = Agreement {
        positions: reference.len(),
        ..Agreement::default()
    };
    let (mut top1, mut kld_sum, mut dp_sq, mut dp_n) = (0usize, 0f64, 0f64, 0usize);
    let (mut err_sq, mut spread_sq) = (0f64, 0f64);
    for ((r, o), nx) in reference.iter().zip(ours).zip(next) {
        let lp = log_softmax(r.iter().copied());
        let lq = log_softmax(o.iter().map(|&v| v as f64));
        let kld: f64 = lp
            .iter()
            .zip(&lq)
            .map(|(&p, &q)| {
                if p.is_finite() {
                    p.exp() * (p - q)
                } else {
                    0.0
                }
            })
            .sum();
        let kld = if kld.is_nan() {
            f64::INFINITY
        } else {
            kld.max(0.0)
        };
        kld_sum += kld;
        a.max_kld = a.max_kld.max(kld);
        let of: Vec<f64> = o.iter().map(|&v| v as f64).collect();
        if argmax(r) == argmax(&of) {
            top1 += 1;
        }
        let mean = r.iter().sum::<f64>() / r.len() as f64;
        let spread = (r.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / r.len() as f64).sqrt();
        let err = r
            .iter()
            .zip(&of)
            .map(|(x, y)| {
                if y.is_finite() {
                    (x - y).abs()
                } else {
                    f64::INFINITY
                }
            })
            .fold(0f64, f64::max);
        err_sq += r.iter().zip(&of).map(|(x, y)| (x - y).powi(2)).sum::<f64>();
        spread_sq += spread * spread * r.len() as f64;
        a.max_abs_logit_err = a.max_abs_logit_err.max(err);
        a.max_rel_logit_err = a.max_rel_logit_err.max(err / spread.max(f64::MIN_POSITIVE));
        if let Some(t) = nx {
            let t = *t as usize;
            let dp = lq[t].exp() - lp[t].exp();
            dp_sq += dp * dp;
            dp_n += 1;
        }
    }
    let n = reference.len().max(1) as f64;
    a.top1_agreement = top1 as f64 / n;
    a.mean_kld = kld_sum / n;
    a.rms_dp = if dp_n > 0 {
        (dp_sq / dp_n as f64).sqrt()
    } else {
        0.0
    };
    a.rms_rel_logit_err = (err_sq / spread_sq.max(f64::MIN_POSITIVE)).sqrt();
    if a.rms_rel_logit_err.is_nan() {
        a.rms_rel_logit_err = f64::INFINITY;
    }
    a
}

/// The tokens of a check.
pub fn tokens_for(tok: &Tokenizer, n_vocab: usize, source: &Tokens, seed: u64) -> Result<Vec<u32>> {
    let tokens = match source {
        Tokens::Prompt(text) => tok.encode(text, true, false)?,
        Tokens::Random(n) => {
            let mut rng = StdRng::seed_from_u64(seed);
            let bos = tok.vocab().bos.filter(|_| tok.vocab().add_bos);
            let limit = n_vocab.min(tok.n_tokens()).max(1) as u32;
            bos.into_iter()
                .chain((0..*n).map(|_| rng.gen_range(0..limit)))
                .take((*n).max(1))
                .collect()
        }
    };
    if tokens.len() < 4 {
        bail!(
            "{} tokens: verify --model needs at least 4 (a prefill with a batch boundary and a decode step)",
            tokens.len()
        );
    }
    Ok(tokens)
}

/// The reference's logits at every position of `tokens`.
pub fn reference_logits(path: &Path, tokens: &[u32]) -> Result<Vec<Vec<f64>>> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let mut reference = reference::model::Transformer::from_gguf(&bytes, tokens.len())
        .map_err(|e| anyhow!("{}: reference: {e}", path.display()))?;
    drop(bytes);
    let bar = indicatif::ProgressBar::new(tokens.len() as u64).with_style(
        indicatif::ProgressStyle::with_template(
            "reference forward (f64): {pos}/{len} tokens ({elapsed})",
        )
        .expect("static template"),
    );
    let mut out = Vec::with_capacity(tokens.len());
    for (pos, &t) in tokens.iter().enumerate() {
        out.push(reference.forward(t as usize, pos).to_vec());
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok(out)
}

/// How one session runs the tokens: the first `prefill` tokens in batches of `batch`, the rest
/// one at a time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Schedule {
    pub prefill: usize,
    pub batch: usize,
}

impl Schedule {
    /// Half the tokens prefilled in two or more batches (a boundary inside the prompt), the
    /// other half decoded.
    pub fn for_len(n: usize) -> Schedule {
        let prefill = (n / 2).max(2);
        Schedule {
            prefill,
            batch: prefill.div_ceil(2).max(1),
        }
    }

    /// The positions whose logits a session following this schedule returns.
    pub fn positions(&self, n: usize) -> std::ops::Range<usize> {
        self.prefill - 1..n
    }
}

/// Our logits at `schedule.positions(tokens.len())`.
pub fn session_logits(
    model: &Model,
    tokens: &[u32],
    opts: SessionOptions,
    schedule: Schedule,
    planted: Option<PlantedBug>,
) -> Result<Vec<Vec<f32>>> {
    let mut session = Session::new(
        model,
        SessionOptions {
            n_ctx: tokens.len(),
            n_batch: schedule.batch,
            ..opts
        },
    )?;
    if let Some(bug) = planted {
        session.plant(bug);
    }
    let mut out = vec![session.prefill(&tokens[..schedule.prefill])?.to_vec()];
    for &t in &tokens[schedule.prefill..] {
        out.push(session.decode(t)?.to_vec());
    }
    Ok(out)
}

/// Runs the check: one row per design x ISA x thread count, printed as it completes.
pub fn run(check: &ModelCheck, out: &mut dyn Write) -> Result<Vec<ModelRow>> {
    let file = GgufFile::open(&check.path).map_err(|e| anyhow!("{e}"))?;
    let g = file.gguf();
    let name = check
        .path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    // Repacked for the best ISA's `q8` rows (the x8 kernels where they run); the other rows
    // read the original blocks or their huge-page copies (the same bytes).
    let model = Model::load(&file, Isa::best(), Design::Int8, 2)
        .with_context(|| check.path.display().to_string())?;
    let tok = Tokenizer::from_gguf(g).with_context(|| check.path.display().to_string())?;
    let tokens = tokens_for(&tok, model.config.n_vocab, &check.tokens, check.seed)?;
    let want = reference_logits(&check.path, &tokens)?;
    let schedule = Schedule::for_len(tokens.len());
    let positions = schedule.positions(tokens.len());
    let want = &want[positions.clone()];
    let next: Vec<Option<u32>> = positions
        .clone()
        .map(|p| tokens.get(p + 1).copied())
        .collect();
    writeln!(
        out,
        "model {name}: {} tokens; prefill {} in batches of {}, then {} decode steps; compared at positions {}..{}",
        tokens.len(),
        schedule.prefill,
        schedule.batch,
        tokens.len() - schedule.prefill,
        positions.start,
        positions.end - 1
    )?;
    writeln!(out, "{}", header())?;
    let kv = match check.kv {
        KvFormat::F16 => "f16",
        KvFormat::F32 => "f32",
    };
    let mut rows = Vec::new();
    for &design in &check.designs {
        for &isa in &check.isas {
            for &threads in &check.threads {
                let mut row = ModelRow {
                    model: name.clone(),
                    design: design.name().into(),
                    isa: isa.name().into(),
                    threads,
                    kv: kv.into(),
                    tokens: tokens.len(),
                    positions: 0,
                    top1_agreement: 0.0,
                    mean_kld: 0.0,
                    max_kld: 0.0,
                    max_abs_logit_err: 0.0,
                    max_rel_logit_err: 0.0,
                    rms_rel_logit_err: 0.0,
                    rms_dp: 0.0,
                    same_top_p: 0.0,
                    status: "SKIPPED".into(),
                    note: String::new(),
                };
                if let Some(reason) = isa.unavailable_reason() {
                    row.note = reason.into();
                } else {
                    let opts = SessionOptions {
                        isa,
                        design,
                        threads,
                        kv: check.kv,
                        ..SessionOptions::new(threads, tokens.len())
                    };
                    let got = session_logits(&model, &tokens, opts, schedule, None)?;
                    let a = compare(want, &got, &next);
                    row.positions = a.positions;
                    row.top1_agreement = a.top1_agreement;
                    row.mean_kld = a.mean_kld;
                    row.max_kld = a.max_kld;
                    row.max_abs_logit_err = a.max_abs_logit_err;
                    row.max_rel_logit_err = a.max_rel_logit_err;
                    row.rms_rel_logit_err = a.rms_rel_logit_err;
                    row.rms_dp = a.rms_dp;
                    row.same_top_p = a.top1_agreement;
                    match a.violation(&Bounds::for_run(design, check.kv)) {
                        None => {
                            row.status = "PASS".into();
                            row.note = "vs reference forward (f64)".into();
                        }
                        Some(why) => {
                            row.status = "FAIL".into();
                            row.note = why;
                        }
                    }
                }
                writeln!(out, "{}", format_row(&row))?;
                out.flush()?;
                rows.push(row);
            }
        }
    }
    Ok(rows)
}

/// One planted model bug and whether the check caught it.
#[derive(Clone, Debug)]
pub struct PlantedResult {
    pub bug: PlantedBug,
    /// False when the bug cannot show in this model (a tied output in a file that has its own).
    pub applies: bool,
    pub caught: bool,
    pub detail: String,
}

/// `verify --model FILE --self-test`: every [`PlantedBug`] planted in turn into a session of the
/// tightest design (f32 activations, f32 KV cache, the best ISA, 2 threads) must fail the check
/// that the same session passes without it.
pub fn self_test(check: &ModelCheck, out: &mut dyn Write) -> Result<Vec<PlantedResult>> {
    let file = GgufFile::open(&check.path).map_err(|e| anyhow!("{e}"))?;
    let g = file.gguf();
    // Repacked for the best ISA's `q8` rows (the x8 kernels where they run); the other rows
    // read the original blocks or their huge-page copies (the same bytes).
    let model = Model::load(&file, Isa::best(), Design::Int8, 2)
        .with_context(|| check.path.display().to_string())?;
    let tok = Tokenizer::from_gguf(g).with_context(|| check.path.display().to_string())?;
    let tokens = tokens_for(&tok, model.config.n_vocab, &check.tokens, check.seed)?;
    let want = reference_logits(&check.path, &tokens)?;
    let schedule = Schedule::for_len(tokens.len());
    let positions = schedule.positions(tokens.len());
    let want = &want[positions.clone()];
    let next: Vec<Option<u32>> = positions.map(|p| tokens.get(p + 1).copied()).collect();
    let opts = SessionOptions {
        design: Design::F32,
        kv: KvFormat::F32,
        ..SessionOptions::new(2, tokens.len())
    };
    let bounds = Bounds::for_run(Design::F32, KvFormat::F32);
    let clean = compare(
        want,
        &session_logits(&model, &tokens, opts, schedule, None)?,
        &next,
    );
    if let Some(why) = clean.violation(&bounds) {
        bail!("the unplanted forward pass already fails: {why}");
    }
    let mut results = Vec::new();
    for bug in PlantedBug::ALL {
        let applies = bug != PlantedBug::TiedOutputIgnored || model.weights.output_tied;
        let got = session_logits(&model, &tokens, opts, schedule, Some(bug))?;
        let a = compare(want, &got, &next);
        let violation = a.violation(&bounds);
        let r = PlantedResult {
            bug,
            applies,
            caught: violation.is_some(),
            detail: violation.unwrap_or_else(|| {
                format!(
                    "mean KLD {:.2e}, RMS logit error {:.2e} of the spread",
                    a.mean_kld, a.rms_rel_logit_err
                )
            }),
        };
        let verdict = match (r.applies, r.caught) {
            (_, true) => "CAUGHT",
            (true, false) => "MISSED",
            (false, false) => "N/A",
        };
        writeln!(out, "{:<26} {verdict:<7} {}", format!("{bug:?}"), r.detail)?;
        results.push(r);
    }
    Ok(results)
}

fn header() -> String {
    format!(
        "{:<6} {:<7} {:>3} {:>5} {:>6} {:>10} {:>10} {:>11} {:>9} {:>9} {:>9} {:<7} note",
        "design",
        "isa",
        "thr",
        "pos",
        "top1",
        "mean_kld",
        "max_kld",
        "max_logit",
        "max_rel",
        "rms_rel",
        "rms_dp",
        "status"
    )
}

pub fn format_row(r: &ModelRow) -> String {
    format!(
        "{:<6} {:<7} {:>3} {:>5} {:>6.3} {:>10.3e} {:>10.3e} {:>11.3e} {:>9.4} {:>9.4} {:>9.2e} {:<7} {}",
        r.design,
        r.isa,
        r.threads,
        r.positions,
        r.top1_agreement,
        r.mean_kld,
        r.max_kld,
        r.max_abs_logit_err,
        r.max_rel_logit_err,
        r.rms_rel_logit_err,
        r.rms_dp,
        r.status,
        r.note
    )
}

/// Writes the rows as CSV.
pub fn write_csv(rows: &[ModelRow], path: &Path) -> Result<()> {
    let mut w = csv::Writer::from_path(path)?;
    for r in rows {
        w.serialize(r)?;
    }
    w.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_logits_agree_perfectly() {
        let r = vec![vec![1.0, 2.0, 3.0], vec![0.5, -1.0, 0.0]];
        let o: Vec<Vec<f32>> = r
            .iter()
            .map(|v| v.iter().map(|&x| x as f32).collect())
            .collect();
        let a = compare(&r, &o, &[Some(2), None]);
        assert_eq!(a.top1_agreement, 1.0);
        assert!(a.mean_kld.abs() < 1e-12 && a.max_abs_logit_err == 0.0);
        assert!(a.violation(&Bounds::for_design(Design::F32)).is_none());
    }

    #[test]
    fn a_different_distribution_is_a_violation() {
        let r = vec![vec![5.0, 0.0, 0.0]];
        let o = vec![vec![0.0f32, 5.0, 0.0]];
        let a = compare(&r, &o, &[Some(0)]);
        assert_eq!(a.top1_agreement, 0.0);
        assert!(a.mean_kld > 1.0);
        assert!(a.violation(&Bounds::for_design(Design::Int8)).is_some());
    }

    #[test]
    fn nan_logits_fail() {
        let r = vec![vec![1.0, 2.0]];
        let o = vec![vec![f32::NAN, 2.0]];
        assert!(compare(&r, &o, &[None])
            .violation(&Bounds::for_design(Design::Int8))
            .is_some());
    }

    #[test]
    fn schedule_has_a_batch_boundary_inside_the_prefill() {
        for n in 4..40 {
            let s = Schedule::for_len(n);
            assert!(s.batch < s.prefill, "{n}: {s:?}");
            assert!(s.prefill < n);
            assert_eq!(s.positions(n).len(), n - s.prefill + 1);
        }
    }
}
