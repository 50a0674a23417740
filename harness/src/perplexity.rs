//! `harness perplexity`: perplexity of a text under a model, by llama-perplexity's method, so the
//! two figures can be put side by side.
//!
//! The method (llama.cpp's `perplexity` tool, default mode): the whole text is tokenized once
//! (with BOS where the file's `add_bos_token` asks for it) and cut into non-overlapping chunks of
//! `n_ctx` tokens; a remainder shorter than a chunk is not used. Each chunk is evaluated from an
//! empty KV cache, its first token replaced by BOS when the model adds one; only the second
//! half of each chunk is scored (token `j + 1` under the logits after token `j`, for
//! `n_ctx/2 <= j < n_ctx - 1`), so every scored token has at least `n_ctx/2` tokens of context.
//! PPL = exp(mean NLL) over every scored token so far, printed after each chunk as
//! `[chunk]ppl`; the final estimate carries the standard error `PPL * sqrt(var(NLL) / (N - 1))`
//! (the delta method on exp of the mean), as llama.cpp reports it.

use crate::run::HugePages;
use anyhow::{anyhow, bail, Context, Result};
use kernels::gguf::GgufFile;
use kernels::model::{Model, Session, SessionOptions};
use kernels::tokenizer::Tokenizer;
use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

#[derive(clap::Args, Debug, Clone)]
pub struct PerplexityArgs {
    /// The GGUF model.
    #[arg(long)]
    pub model: PathBuf,
    /// The text file (UTF-8).
    #[arg(long)]
    pub file: PathBuf,
    /// Tokens per chunk (the context each chunk is evaluated in).
    #[arg(long, default_value_t = 512)]
    pub ctx: usize,
    /// Tokens per prefill batch.
    #[arg(long, default_value_t = 512)]
    pub batch: usize,
    /// Worker threads (default: the cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Score at most this many chunks (default: all).
    #[arg(long)]
    pub chunks: Option<usize>,
    /// ISA (default: the best this CPU runs).
    #[arg(long)]
    pub isa: Option<String>,
    /// Matmul design: q8 (default) or f32.
    #[arg(long, default_value = "q8")]
    pub design: String,
    /// KV cache: f16 (default) or f32.
    #[arg(long, default_value = "f16")]
    pub kv: String,
    /// Huge pages (2 MiB, advised) for the weights copied at load: `on` (default) for faster
    /// decode, `off` for a faster first load on a VM whose host has not yet backed fresh memory.
    #[arg(long, value_enum, default_value_t = HugePages::On)]
    pub huge_pages: HugePages,
}

/// The result of a run.
#[derive(Clone, Debug, PartialEq)]
pub struct Perplexity {
    pub chunks: usize,
    pub scored: usize,
    pub ppl: f64,
    pub ppl_err: f64,
}

/// Running NLL statistics over scored tokens.
#[derive(Clone, Debug, Default)]
pub struct NllStats {
    sum: f64,
    sum_sq: f64,
    count: usize,
}

impl NllStats {
    pub fn add(&mut self, nll: f64) {
        self.sum += nll;
        self.sum_sq += nll * nll;
        self.count += 1;
    }

    pub fn ppl(&self) -> f64 {
        (self.sum / self.count.max(1) as f64).exp()
    }

    /// The standard error of [`NllStats::ppl`].
    pub fn ppl_err(&self) -> f64 {
        if self.count < 2 {
            return f64::NAN;
        }
        let n = self.count as f64;
        let mean = self.sum / n;
        let var = (self.sum_sq / n - mean * mean).max(0.0);
        self.ppl() * (var / (n - 1.0)).sqrt()
    }
}

/// `-log softmax(logits)[target]`, in f64.
pub fn nll(logits: &[f32], target: usize) -> f64 {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let sum: f64 = logits.iter().map(|&l| (l as f64 - max).exp()).sum();
    max + sum.ln() - logits[target] as f64
}

pub fn run(args: &PerplexityArgs, out: &mut impl Write) -> Result<Perplexity> {
    let (isa, design, kv) = crate::run::session_flags(args.isa.as_deref(), &args.design, &args.kv)?;
    if args.ctx < 4 {
        bail!("--ctx {}: a chunk needs at least 4 tokens", args.ctx);
    }
    if args.batch == 0 {
        bail!("--batch must be at least 1");
    }
    let threads = args.threads.unwrap_or_else(crate::run::default_threads);
    let bytes =
        std::fs::read(&args.file).with_context(|| format!("reading {}", args.file.display()))?;
    let text = String::from_utf8(bytes)
        .map_err(|e| anyhow!("{}: not UTF-8 text ({e})", args.file.display()))?;

    let file = GgufFile::open(&args.model).map_err(|e| anyhow!("{e}"))?;
    let g = file.gguf();
    let name = args.model.display().to_string();
    args.huge_pages.apply();
    let model = Model::load(&file, isa, design, threads).with_context(|| name.clone())?;
    let tok = Tokenizer::from_gguf(g).with_context(|| name.clone())?;
    let n_vocab = model.config.n_vocab;
    let tokens = tok.encode(&text, true, false)?;
    let n_ctx = args.ctx;
    let mut n_chunks = tokens.len() / n_ctx;
    if let Some(limit) = args.chunks {
        n_chunks = n_chunks.min(limit);
    }
    if n_chunks == 0 {
        bail!(
            "{}: {} tokens, fewer than one chunk of --ctx {n_ctx}",
            args.file.display(),
            tokens.len()
        );
    }
    let bos = tok.vocab().bos.filter(|_| tok.vocab().add_bos);
    eprintln!(
        "perplexity: {} tokens, {n_chunks} chunks of {n_ctx}, scoring the second half of each; {} {} {threads} threads",
        tokens.len(),
        design.name(),
        isa
    );
    let mut session = Session::new(
        &model,
        SessionOptions {
            isa,
            design,
            threads,
            n_ctx,
            n_batch: args.batch,
            kv,
        },
    )?;
    let mut logits = vec![0f32; n_ctx * n_vocab];
    let mut chunk = vec![0u32; n_ctx];
    let mut stats = NllStats::default();
    let started = Instant::now();
    for c in 0..n_chunks {
        chunk.copy_from_slice(&tokens[c * n_ctx..(c + 1) * n_ctx]);
        if let Some(b) = bos {
            chunk[0] = b;
        }
        session.reset();
        session.prefill_all_logits(&chunk, &mut logits)?;
        for j in n_ctx / 2..n_ctx - 1 {
            stats.add(nll(
                &logits[j * n_vocab..(j + 1) * n_vocab],
                chunk[j + 1] as usize,
            ));
        }
        write!(out, "[{}]{:.4},", c + 1, stats.ppl())?;
        out.flush()?;
        if c == 0 {
            let per = started.elapsed().as_secs_f64();
            eprintln!(
                "perplexity: {per:.2} s per chunk, about {:.1} s in all",
                per * n_chunks as f64
            );
        }
    }
    writeln!(out)?;
    let result = Perplexity {
        chunks: n_chunks,
        scored: stats.count,
        ppl: stats.ppl(),
        ppl_err: stats.ppl_err(),
    };
    writeln!(
        out,
        "Final estimate: PPL = {:.4} +/- {:.5}",
        result.ppl, result.ppl_err
    )?;
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nll_of_a_uniform_distribution_is_log_n() {
        let l = vec![0.5f32; 8];
        assert!((nll(&l, 3) - 8f64.ln()).abs() < 1e-12);
    }

    #[test]
    fn ppl_of_constant_nll_has_no_spread() {
        let mut s = NllStats::default();
        for _ in 0..10 {
            s.add(2.0);
        }
        assert!((s.ppl() - 2f64.exp()).abs() < 1e-12);
        assert!(s.ppl_err().abs() < 1e-9);
    }
}
