//! `harness e2e`: end-to-end timing of a GGUF model in llama-bench's manner and language.
//!
//! Integer flags take comma lists and the runs are their product (tests x threads). Per test:
//! one untimed warm-up (the prompt in full and one generated token, as llama-bench), then `-r`
//! repetitions, each starting from an empty KV cache, prefilling `-d` random tokens untimed, then
//! timing the prompt (one batched prefill) and/or the generation (one token at a time, each
//! fed the greedy choice of the previous logits; a `tg` test starts from a random token). Prompt
//! and depth tokens are random valid ids (BOS first when the file has one), as llama-bench's.
//! t/s is the mean of the per-repetition rates, stddev with n - 1; raw samples are kept.
//!
//! Rows carry llama-bench's fields in its order (so `scripts/compare-llama-bench.py` and
//! `harness compare` read them), then ours: ISA, design, load time, peak RSS, the roofline
//! fraction of generation, and where the time goes (the session's profile, see
//! `kernels::model::Profile`).
//!
//! Without `--model` this is the main job: the TinyLlama-1.1B Q4_K_M model is synthesized once
//! into the cache and the default tests run with 1 and 2 threads; rows and the report go to
//! `reports/`.

use crate::bench::probes;
use crate::host::{utc_now, Host};
use crate::run::{parse_prefetch, peak_rss_bytes, session_flags, HugePages};
use crate::synth::{self, ArchName, Preset, SynthArgs};
use anyhow::{anyhow, bail, Context, Result};
use kernels::gguf::GgufFile;
use kernels::model::{Model, Phase, Sampler, SamplerOptions, Session, SessionOptions};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Deserialize;
use serde_json::Value;
use std::fmt::Write as _;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The main job's tests: pp40 and pp512 (a chat turn and llama-bench's prompt), tg128, at 1 and
/// 2 threads, 3 repetitions. See the README for the time this takes on the 2-core machine.
pub const MAIN_PROMPTS: &[usize] = &[40, 512];
pub const MAIN_GENS: &[usize] = &[128];
pub const MAIN_THREADS: &[usize] = &[1, 2];
pub const MAIN_REPS: usize = 3;

#[derive(clap::Args, Debug, Clone)]
pub struct E2eArgs {
    /// GGUF model (Llama architecture). Without it: the main job on a synthesized TinyLlama-1.1B
    /// Q4_K_M (cached in ${KERNELBENCH_CACHE:-$HOME/.cache/kernelbench}), reports in `reports/`.
    #[arg(long, short = 'm')]
    pub model: Option<PathBuf>,
    /// Prompt lengths (pp tests), comma-separated; 0 for none.
    #[arg(short = 'p', long = "n-prompt", value_delimiter = ',')]
    pub n_prompt: Vec<usize>,
    /// Generation lengths (tg tests), comma-separated; 0 for none.
    #[arg(short = 'n', long = "n-gen", value_delimiter = ',')]
    pub n_gen: Vec<usize>,
    /// Prompt then generation in one test (`pp512+tg128`): `P,N`; repeatable (`-pg` also works).
    #[arg(long = "pg")]
    pub pg: Vec<String>,
    /// Depths: tokens prefilled untimed before each repetition, comma-separated.
    #[arg(short = 'd', long = "n-depth", value_delimiter = ',')]
    pub n_depth: Vec<usize>,
    /// Thread counts, comma-separated.
    #[arg(short = 't', long = "threads", value_delimiter = ',')]
    pub threads: Vec<usize>,
    /// Repetitions per test.
    #[arg(short = 'r', long = "repetitions")]
    pub reps: Option<usize>,
    /// ISA of the kernels: scalar, avx2, avx512, neon (default: the best this CPU runs).
    #[arg(long)]
    pub isa: Option<String>,
    /// Matmul design: q8 (default) or f32.
    #[arg(long, default_value = "q8")]
    pub design: String,
    /// KV cache element: f16 (default) or f32.
    #[arg(long, default_value = "f16")]
    pub kv: String,
    /// Huge pages (2 MiB, advised) for the weights copied at load: `on` (default) for faster
    /// decode, `off` for a faster first load on a VM whose host has not yet backed fresh memory.
    #[arg(long, value_enum, default_value_t = HugePages::On)]
    pub huge_pages: HugePages,
    /// Bytes ahead of their reads at which the x86 decode kernels prefetch weights (0: none).
    #[arg(long, value_name = "BYTES", default_value_t = kernels::mem::DEFAULT_DECODE_PREFETCH, value_parser = parse_prefetch)]
    pub prefetch: usize,
    /// Most prompt tokens per prefill step.
    #[arg(long, default_value_t = 512)]
    pub batch: usize,
    /// Output format of the rows: md (llama-bench's table), csv or jsonl.
    #[arg(short = 'o', long = "output", default_value = "md")]
    pub output: String,
    /// Write the rows here instead of stdout.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Also write e2e.csv, e2e.jsonl and the report (REPORT.md/html, plots) into this directory
    /// (the main job: `reports`).
    #[arg(long)]
    pub reports: Option<PathBuf>,
    /// Skip the untimed warm-up run of each test.
    #[arg(long)]
    pub no_warmup: bool,
    /// Seed of the random prompt tokens.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

/// One test: `n_prompt` tokens prefilled then `n_gen` generated, after `n_depth` untimed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Test {
    pub n_prompt: usize,
    pub n_gen: usize,
    pub n_depth: usize,
}

impl Test {
    /// llama-bench's name: `pp512`, `tg128`, `pp512+tg128`, with ` @ d512` at depth.
    pub fn name(&self) -> String {
        test_name(self.n_prompt, self.n_gen, self.n_depth)
    }

    fn tokens(&self) -> usize {
        self.n_prompt + self.n_gen
    }
}

pub fn test_name(p: usize, n: usize, d: usize) -> String {
    let mut s = match (p, n) {
        (p, 0) => format!("pp{p}"),
        (0, n) => format!("tg{n}"),
        (p, n) => format!("pp{p}+tg{n}"),
    };
    if d > 0 {
        let _ = write!(s, " @ d{d}");
    }
    s
}

/// The tests the flags ask for, in llama-bench's order: pp, then tg, then pg, each per depth.
pub fn tests_of(args: &E2eArgs, main_job: bool) -> Result<Vec<Test>> {
    let given = !(args.n_prompt.is_empty() && args.n_gen.is_empty() && args.pg.is_empty());
    let (prompts, gens): (Vec<usize>, Vec<usize>) = if given {
        (args.n_prompt.clone(), args.n_gen.clone())
    } else if main_job {
        (MAIN_PROMPTS.to_vec(), MAIN_GENS.to_vec())
    } else {
        (vec![512], vec![128])
    };
    let mut pgs = Vec::new();
    for s in &args.pg {
        let parts: Vec<&str> = s.split(',').collect();
        let pair = match parts.as_slice() {
            [p, n] => p
                .trim()
                .parse::<usize>()
                .ok()
                .zip(n.trim().parse::<usize>().ok()),
            _ => None,
        };
        match pair {
            Some((p, n)) if p > 0 && n > 0 => pgs.push((p, n)),
            _ => bail!("-pg {s}: expected two positive integers P,N (prompt, generation)"),
        }
    }
    let depths = if args.n_depth.is_empty() {
        vec![0]
    } else {
        args.n_depth.clone()
    };
    let mut tests = Vec::new();
    for &d in &depths {
        for &p in prompts.iter().filter(|&&p| p > 0) {
            tests.push(Test {
                n_prompt: p,
                n_gen: 0,
                n_depth: d,
            });
        }
        for &n in gens.iter().filter(|&&n| n > 0) {
            tests.push(Test {
                n_prompt: 0,
                n_gen: n,
                n_depth: d,
            });
        }
        for &(p, n) in &pgs {
            tests.push(Test {
                n_prompt: p,
                n_gen: n,
                n_depth: d,
            });
        }
    }
    if tests.is_empty() {
        bail!("no tests: every -p and -n is 0 and there is no -pg");
    }
    Ok(tests)
}

/// The breakdown categories, in column order: the forward pass's phases bar `other`, then
/// sampling, then everything else (`other`: embedding, SwiGLU, residual adds, loop overhead).
pub const BREAKDOWN: [&str; 10] = [
    "attn_qkv",
    "attn_output",
    "ffn_gate_up",
    "ffn_down",
    "output",
    "attention",
    "norms",
    "rope",
    "sampling",
    "other",
];

/// What one repetition measured.
#[derive(Clone, Debug, Default)]
struct Rep {
    total_ns: u64,
    prompt_ns: u64,
    gen_ns: u64,
    ttft_ns: u64,
    breakdown: [u64; 10],
}

/// The measurements of one test at one thread count.
#[derive(Clone, Debug)]
pub struct E2eResult {
    pub test: Test,
    pub threads: usize,
    pub test_time: String,
    pub samples_ns: Vec<u64>,
    /// Mean ns per repetition per [`BREAKDOWN`] category (sums to `avg_ns` up to rounding).
    pub breakdown_ns: [u64; 10],
    pub prompt_ts: Option<f64>,
    pub gen_ts: Option<f64>,
    pub ttft_ms: Option<f64>,
    pub peak_rss_bytes: Option<u64>,
    /// Bytes one generated token streams (weights plus the KV cache read at the mean position).
    pub bytes_per_token: Option<u64>,
    pub read_bw_gb_s: f64,
}

/// What describes the model and run in every row.
#[derive(Clone, Debug)]
pub struct RunInfo {
    pub build_commit: String,
    pub build_number: u64,
    pub cpu_info: String,
    pub model_filename: String,
    pub model_type: String,
    pub model_size: u64,
    pub model_n_params: u64,
    pub n_batch: usize,
    pub type_kv: &'static str,
    pub isa: String,
    pub design: String,
    /// `on` or `off`: the huge-page policy of the weights copied at load (`--huge-pages`).
    pub huge_pages: &'static str,
    /// The decode prefetch distance in bytes (`--prefetch`).
    pub prefetch: usize,
    pub load_ms: f64,
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

/// Sample standard deviation (n - 1), 0 for fewer than two samples, as llama-bench.
fn stddev(v: &[f64]) -> f64 {
    if v.len() < 2 {
        return 0.0;
    }
    let m = mean(v);
    (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (v.len() - 1) as f64).sqrt()
}

impl E2eResult {
    pub fn samples_ts(&self) -> Vec<f64> {
        let n = self.test.tokens() as f64;
        self.samples_ns
            .iter()
            .map(|&ns| 1e9 * n / ns as f64)
            .collect()
    }
    pub fn avg_ns(&self) -> f64 {
        mean(
            &self
                .samples_ns
                .iter()
                .map(|&n| n as f64)
                .collect::<Vec<_>>(),
        )
    }
    pub fn stddev_ns(&self) -> f64 {
        stddev(
            &self
                .samples_ns
                .iter()
                .map(|&n| n as f64)
                .collect::<Vec<_>>(),
        )
    }
    pub fn avg_ts(&self) -> f64 {
        mean(&self.samples_ts())
    }
    pub fn stddev_ts(&self) -> f64 {
        stddev(&self.samples_ts())
    }
    /// Bytes streamed per generated token x generated tokens/s over the read bandwidth.
    pub fn roofline_fraction(&self) -> Option<f64> {
        let (b, ts) = (self.bytes_per_token?, self.gen_ts?);
        (self.read_bw_gb_s > 0.0).then(|| b as f64 * ts / (self.read_bw_gb_s * 1e9))
    }
}

/// llama-bench's fields, in its order (tools/llama-bench/llama-bench.cpp, `test::get_fields`).
pub const LLAMA_BENCH_FIELDS: [&str; 42] = [
    "build_commit",
    "build_number",
    "cpu_info",
    "gpu_info",
    "backends",
    "model_filename",
    "model_type",
    "model_size",
    "model_n_params",
    "n_batch",
    "n_ubatch",
    "n_threads",
    "cpu_mask",
    "cpu_strict",
    "poll",
    "type_k",
    "type_v",
    "n_gpu_layers",
    "n_cpu_moe",
    "split_mode",
    "main_gpu",
    "no_kv_offload",
    "flash_attn",
    "devices",
    "tensor_split",
    "tensor_buft_overrides",
    "load_mode",
    "lazy_mode",
    "embeddings",
    "no_op_offload",
    "no_host",
    "repack",
    "fit_target",
    "fit_min_ctx",
    "n_prompt",
    "n_gen",
    "n_depth",
    "test_time",
    "avg_ns",
    "stddev_ns",
    "avg_ts",
    "stddev_ts",
];

/// Our fields after llama-bench's (and its JSONL's `samples_ns`, `samples_ts`).
pub const OUR_FIELDS: [&str; 25] = [
    "samples_ns",
    "samples_ts",
    "test",
    "isa",
    "design",
    "huge_pages",
    "prefetch_bytes",
    "load_ms",
    "peak_rss_bytes",
    "bytes_per_token",
    "read_bw_gb_s",
    "roofline_fraction",
    "prompt_ts",
    "gen_ts",
    "ttft_ms",
    "t_attn_qkv_ns",
    "t_attn_output_ns",
    "t_ffn_gate_up_ns",
    "t_ffn_down_ns",
    "t_output_ns",
    "t_attention_ns",
    "t_norms_ns",
    "t_rope_ns",
    "t_sampling_ns",
    "t_other_ns",
];

fn opt_f(v: Option<f64>) -> Value {
    v.map_or(Value::Null, |x| {
        serde_json::Number::from_f64((x * 1e6).round() / 1e6).map_or(Value::Null, Value::Number)
    })
}

/// One row's fields in order, as JSON values (strings, integers, floats, arrays).
pub fn row_fields(info: &RunInfo, r: &E2eResult) -> Vec<(&'static str, Value)> {
    use serde_json::json;
    let s = |x: &str| Value::String(x.to_string());
    let llama: Vec<Value> = vec![
        s(&info.build_commit),
        json!(info.build_number),
        s(&info.cpu_info),
        s(""),
        s("CPU"),
        s(&info.model_filename),
        s(&info.model_type),
        json!(info.model_size),
        json!(info.model_n_params),
        json!(info.n_batch),
        json!(info.n_batch),
        json!(r.threads),
        s("0x0"),
        json!(false),
        json!(0),
        s(info.type_kv),
        s(info.type_kv),
        json!(0),
        json!(0),
        s("none"),
        json!(0),
        json!(false),
        json!(1),
        s("none"),
        s("0.00"),
        s("none"),
        s("mmap"),
        s("none"),
        json!(false),
        json!(0),
        json!(false),
        json!(false),
        json!(0),
        json!(0),
        json!(r.test.n_prompt),
        json!(r.test.n_gen),
        json!(r.test.n_depth),
        s(&r.test_time),
        json!(r.avg_ns().round() as u64),
        json!(r.stddev_ns().round() as u64),
        opt_f(Some(r.avg_ts())),
        opt_f(Some(r.stddev_ts())),
    ];
    let ts: Vec<Value> = r.samples_ts().into_iter().map(|t| opt_f(Some(t))).collect();
    let mut ours: Vec<Value> = vec![
        json!(r.samples_ns),
        Value::Array(ts),
        s(&r.test.name()),
        s(&info.isa),
        s(&info.design),
        s(info.huge_pages),
        json!(info.prefetch),
        opt_f(Some(info.load_ms)),
        r.peak_rss_bytes.map_or(Value::Null, |b| json!(b)),
        r.bytes_per_token.map_or(Value::Null, |b| json!(b)),
        opt_f(Some(r.read_bw_gb_s)),
        opt_f(r.roofline_fraction()),
        opt_f(r.prompt_ts),
        opt_f(r.gen_ts),
        opt_f(r.ttft_ms),
    ];
    ours.extend(r.breakdown_ns.iter().map(|&ns| json!(ns)));
    LLAMA_BENCH_FIELDS
        .iter()
        .chain(OUR_FIELDS.iter())
        .copied()
        .zip(llama.into_iter().chain(ours))
        .collect()
}

/// A CSV cell: llama-bench writes booleans as 0/1 and every cell quoted; lists space-separated.
fn csv_cell(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Bool(b) => u8::from(*b).to_string(),
        Value::Null => String::new(),
        Value::Array(a) => a.iter().map(csv_cell).collect::<Vec<_>>().join(" "),
        other => other.to_string(),
    }
}

pub fn write_csv(rows: &[Vec<(&'static str, Value)>], out: &mut dyn Write) -> Result<()> {
    let mut w = csv::WriterBuilder::new()
        .quote_style(csv::QuoteStyle::Always)
        .from_writer(out);
    let header: Vec<&str> = LLAMA_BENCH_FIELDS
        .iter()
        .chain(OUR_FIELDS.iter())
        .copied()
        .collect();
    w.write_record(&header)?;
    for r in rows {
        w.write_record(r.iter().map(|(_, v)| csv_cell(v)))?;
    }
    w.flush()?;
    Ok(())
}

pub fn write_jsonl(rows: &[Vec<(&'static str, Value)>], out: &mut dyn Write) -> Result<()> {
    for r in rows {
        let cells: Vec<String> = r.iter().map(|(k, v)| format!("\"{k}\": {v}")).collect();
        writeln!(out, "{{{}}}", cells.join(", "))?;
    }
    Ok(())
}

fn fmt_size(bytes: u64) -> String {
    let mib = bytes as f64 / (1024.0 * 1024.0);
    if mib >= 1024.0 {
        format!("{:.2} GiB", mib / 1024.0)
    } else {
        format!("{mib:.2} MiB")
    }
}

fn fmt_params(n: u64) -> String {
    if n >= 1_000_000_000 {
        format!("{:.2} B", n as f64 / 1e9)
    } else {
        format!("{:.2} M", n as f64 / 1e6)
    }
}

/// llama-bench's markdown table, with our ISA and design columns beside its backend.
pub fn md_header() -> String {
    format!(
        "| {:<30} | {:>10} | {:>10} | {:<7} | {:<6} | {:<6} | {:>7} | {:>3} | {:>16} | {:>20} |\n| {} | {}: | {}: | {} | {} | {} | {}: | {}: | {}: | {}: |",
        "model", "size", "params", "backend", "isa", "design", "threads", "fa", "test", "t/s",
        "-".repeat(30), "-".repeat(9), "-".repeat(9), "-".repeat(7), "-".repeat(6), "-".repeat(6),
        "-".repeat(6), "-".repeat(2), "-".repeat(15), "-".repeat(19)
    )
}

pub fn md_line(info: &RunInfo, r: &E2eResult) -> String {
    format!(
        "| {:<30} | {:>10} | {:>10} | {:<7} | {:<6} | {:<6} | {:>7} | {:>3} | {:>16} | {:>20} |",
        info.model_type,
        fmt_size(info.model_size),
        fmt_params(info.model_n_params),
        "CPU",
        info.isa,
        info.design,
        r.threads,
        1,
        r.test.name(),
        format!("{:.2} ± {:.2}", r.avg_ts(), r.stddev_ts())
    )
}

/// llama.cpp's names of `general.file_type` (`llama_ftype`), for `model_type`.
fn ftype_name(id: u32) -> String {
    match id {
        0 => "all F32".into(),
        1 => "F16".into(),
        2 => "Q4_0".into(),
        3 => "Q4_1".into(),
        7 => "Q8_0".into(),
        8 => "Q5_0".into(),
        9 => "Q5_1".into(),
        10 => "Q2_K - Medium".into(),
        12 => "Q3_K - Medium".into(),
        14 => "Q4_K - Small".into(),
        15 => "Q4_K - Medium".into(),
        17 => "Q5_K - Medium".into(),
        18 => "Q6_K".into(),
        other => format!("ftype {other}"),
    }
}

/// `llama 1B Q4_K - Medium`-style: architecture, parameters rounded, file type. (llama.cpp names
/// the size from a table of layer counts; ours rounds the parameter count.)
fn model_type(g: &kernels::gguf::Gguf, n_params: u64) -> String {
    let arch = g.get_str("general.architecture").unwrap_or("llama");
    let size = if n_params >= 1_000_000_000 {
        format!("{}B", (n_params as f64 / 1e9).round().max(1.0))
    } else {
        format!("{}M", (n_params as f64 / 1e6).round())
    };
    let ft = g
        .get("general.file_type")
        .and_then(|_| g.get_u32("general.file_type").ok())
        .map_or_else(|| "unknown type".to_string(), ftype_name);
    format!("{arch} {size} {ft}")
}

/// The cache directory of synthesized models: `${KERNELBENCH_CACHE:-$HOME/.cache/kernelbench}`.
pub fn cache_dir() -> Result<PathBuf> {
    if let Some(d) = std::env::var_os("KERNELBENCH_CACHE").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(d));
    }
    let home = std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .ok_or_else(|| anyhow!("neither KERNELBENCH_CACHE nor HOME is set: no cache directory for the synthesized model"))?;
    Ok(PathBuf::from(home).join(".cache/kernelbench"))
}

/// The real Llama SentencePiece vocab, `../shared/assets/llama-spm-vocab.gguf` beside the repo:
/// looked for beside every ancestor of the working directory, then beside this source tree.
pub fn find_vocab() -> Result<PathBuf> {
    const REL: &str = "shared/assets/llama-spm-vocab.gguf";
    let mut tried = Vec::new();
    let mut starts = Vec::new();
    if let Ok(cwd) = std::env::current_dir() {
        starts.push(cwd);
    }
    starts.push(PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    for s in starts {
        for dir in s.ancestors() {
            let p = dir.join(REL);
            if p.is_file() {
                return Ok(p);
            }
            tried.push(p);
        }
    }
    bail!(
        "the Llama vocab {REL} was not found beside the repository (looked in {} places, first {}); put ../shared beside the clone or pass --model",
        tried.len(),
        tried.first().map_or(String::new(), |p| p.display().to_string())
    )
}

/// The synthesized TinyLlama-1.1B Q4_K_M (seed 0, the real Llama vocab), made once: written to
/// a temporary name in the cache and renamed, so an interrupted synthesis leaves no file that
/// looks finished.
pub fn main_model() -> Result<PathBuf> {
    let dir = cache_dir()?;
    let path = dir.join("tinyllama-1.1b-q4_k_m-seed0.gguf");
    if path.is_file() {
        return Ok(path);
    }
    let vocab = find_vocab()?;
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let tmp = dir.join(format!(
        "tinyllama-1.1b-q4_k_m-seed0.gguf.tmp{}",
        std::process::id()
    ));
    eprintln!(
        "e2e: synthesizing TinyLlama-1.1B Q4_K_M (seed 0) into {}",
        path.display()
    );
    synth::run(SynthArgs {
        arch: ArchName::TinyLlama,
        quant: Preset::Q4KM,
        out: tmp.clone(),
        layers: None,
        seed: 0,
        vocab: Some(vocab),
        threads: None,
    })?;
    std::fs::rename(&tmp, &path)
        .with_context(|| format!("cannot rename {} to {}", tmp.display(), path.display()))?;
    Ok(path)
}

fn git_count() -> u64 {
    std::process::Command::new("git")
        .args(["rev-list", "--count", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(0)
}

/// Runs the command: rows to stdout (or `--out`), progress to stderr; with `--reports` (the
/// main job) also the CSV, JSONL and the report.
pub fn run(args: &E2eArgs) -> Result<()> {
    let main_job = args.model.is_none();
    let (isa, design, kv) = session_flags(args.isa.as_deref(), &args.design, &args.kv)?;
    let format = args.output.as_str();
    if !["md", "csv", "jsonl"].contains(&format) {
        bail!("-o {format}: not an output format (md, csv, jsonl)");
    }
    let tests = tests_of(args, main_job)?;
    let threads = if args.threads.is_empty() {
        if main_job {
            MAIN_THREADS.to_vec()
        } else {
            vec![crate::run::default_threads()]
        }
    } else {
        args.threads.clone()
    };
    let max_t = kernels::model::split::MAX_PARTS;
    if let Some(t) = threads.iter().find(|&&t| t == 0 || t > max_t) {
        bail!("-t {t}: threads must be 1 to {max_t}");
    }
    let reps = args.reps.unwrap_or(if main_job { MAIN_REPS } else { 5 });
    if reps == 0 {
        bail!("-r 0: at least one repetition is needed");
    }
    if args.batch == 0 {
        bail!("--batch must be at least 1");
    }
    let reports = args
        .reports
        .clone()
        .or_else(|| main_job.then(|| PathBuf::from("reports")));
    let mut out: Box<dyn Write> = match &args.out {
        Some(p) => Box::new(
            std::fs::File::create(p).with_context(|| format!("cannot write {}", p.display()))?,
        ),
        None => Box::new(std::io::stdout().lock()),
    };

    let path = match &args.model {
        Some(p) => p.clone(),
        None => main_model()?,
    };
    let load_start = Instant::now();
    let file = GgufFile::open(&path).map_err(|e| {
        let (msg, p) = (e.to_string(), path.display().to_string());
        if msg.starts_with(&p) {
            anyhow!(msg)
        } else {
            anyhow!("{p}: {msg}")
        }
    })?;
    let g = file.gguf();
    let name = path.display().to_string();
    let max_threads = args.threads.iter().copied().max().unwrap_or(1);
    args.huge_pages.apply();
    kernels::mem::set_decode_prefetch(args.prefetch);
    let model = Model::load(&file, isa, design, max_threads).with_context(|| name.clone())?;
    let load_ms = load_start.elapsed().as_secs_f64() * 1e3;
    let c = &model.config;
    for t in &tests {
        let need = t.n_depth + t.tokens();
        if need > c.n_ctx_train {
            bail!(
                "test {} needs {need} positions, more than the model's context of {}",
                t.name(),
                c.n_ctx_train
            );
        }
    }

    let n_params: u64 = g.tensors().iter().map(|t| t.n_elements()).sum();
    let model_size: u64 = g.tensors().iter().filter_map(|t| t.n_bytes()).sum();
    // A token streams every tensor but the embedding table (one row of it), unless the output
    // projection is the embedding (tied).
    let tied = g.tensor("output.weight").is_none();
    let weight_bytes: u64 = g
        .tensors()
        .iter()
        .filter(|t| tied || t.name != "token_embd.weight")
        .filter_map(|t| t.n_bytes())
        .sum();
    let kv_elem = match kv {
        kernels::attention::KvFormat::F16 => 2,
        kernels::attention::KvFormat::F32 => 4,
    };
    let kv_bytes_per_pos = (2 * c.n_layer * c.kv_dim() * kv_elem) as u64;
    let bos = g
        .get("tokenizer.ggml.bos_token_id")
        .and_then(|_| g.get_u32("tokenizer.ggml.bos_token_id").ok())
        .filter(|&b| (b as usize) < c.n_vocab);
    let host = Host::detect();
    let info = RunInfo {
        build_commit: host.git_commit.clone(),
        build_number: git_count(),
        cpu_info: host.cpu.clone(),
        model_filename: name.clone(),
        model_type: model_type(g, n_params),
        model_size,
        model_n_params: n_params,
        n_batch: args.batch,
        type_kv: if kv_elem == 2 { "f16" } else { "f32" },
        isa: isa.name().to_string(),
        design: design.name().to_string(),
        // The policy the load ran under, read back from `kernels::mem`, not the flag.
        huge_pages: HugePages::current(),
        prefetch: kernels::mem::decode_prefetch(),
        load_ms,
    };
    eprintln!(
        "e2e: {} ({}, {}), {} tests x {} thread counts x {reps} repetitions, {isa}, design {}, kv {}",
        name,
        info.model_type,
        fmt_size(model_size),
        tests.len(),
        threads.len(),
        design.name(),
        info.type_kv
    );
    if format == "md" {
        writeln!(out, "{}", md_header())?;
        out.flush()?;
    }
    let mut rng = StdRng::seed_from_u64(args.seed);
    let mut results = Vec::new();
    let mut rows = Vec::new();
    for &t in &threads {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(t)
            .build()
            .context("cannot start the bandwidth probe's threads")?;
        eprintln!("e2e: measuring read bandwidth with {t} thread(s)");
        let bw = probes::read_bandwidth(256 << 20, t, Some(&pool));
        drop(pool);
        for test in &tests {
            let n_ctx = test.n_depth + test.tokens();
            let mut session = Session::new(
                &model,
                SessionOptions {
                    isa,
                    design,
                    threads: t,
                    n_ctx,
                    n_batch: args.batch,
                    kv,
                },
            )
            .with_context(|| name.clone())?;
            let r = run_test(&mut session, *test, reps, !args.no_warmup, bos, &mut rng, t)?;
            let mean_pos = (test.n_depth + test.n_prompt) as f64 + test.n_gen as f64 / 2.0;
            let result = E2eResult {
                bytes_per_token: (test.n_gen > 0)
                    .then(|| weight_bytes + (kv_bytes_per_pos as f64 * mean_pos) as u64),
                read_bw_gb_s: bw,
                peak_rss_bytes: peak_rss_bytes(),
                ..r
            };
            if format == "md" {
                writeln!(out, "{}", md_line(&info, &result))?;
                out.flush()?;
            }
            rows.push(row_fields(&info, &result));
            results.push(result);
        }
    }
    match format {
        "csv" => write_csv(&rows, &mut out)?,
        "jsonl" => write_jsonl(&rows, &mut out)?,
        _ => writeln!(
            out,
            "\nbuild: {} ({})",
            info.build_commit, info.build_number
        )?,
    }
    out.flush()?;
    if let Some(dir) = reports {
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        let csv_path = dir.join("e2e.csv");
        let mut f = std::fs::File::create(&csv_path)
            .with_context(|| format!("cannot write {}", csv_path.display()))?;
        write_csv(&rows, &mut f)?;
        let jsonl_path = dir.join("e2e.jsonl");
        let mut f = std::fs::File::create(&jsonl_path)
            .with_context(|| format!("cannot write {}", jsonl_path.display()))?;
        write_jsonl(&rows, &mut f)?;
        eprintln!(
            "e2e: wrote {} and {}",
            csv_path.display(),
            jsonl_path.display()
        );
        let note = crate::report::existing_note(&dir);
        crate::report::run(crate::report::ReportArgs {
            inputs: vec![dir.clone()],
            out: dir,
            note,
        })?;
    }
    Ok(())
}

/// Random valid token ids, BOS first when the file has one.
fn random_tokens(rng: &mut StdRng, n: usize, n_vocab: usize, bos: Option<u32>) -> Vec<u32> {
    (0..n)
        .map(|i| match (i, bos) {
            (0, Some(b)) => b,
            _ => rng.gen_range(0..n_vocab as u32),
        })
        .collect()
}

/// One repetition (or, with `warmup`, llama-bench's warm-up: the prompt and one token).
fn one_rep(
    session: &mut Session,
    sampler: &mut Sampler,
    test: Test,
    prompt: &[u32],
    depth: &[u32],
    first_token: u32,
    warmup: bool,
) -> Result<Rep> {
    session.reset();
    if !depth.is_empty() {
        session.prefill(depth)?;
    }
    session.clear_profile();
    let mut sampling_ns = 0u64;
    let n_gen = if warmup {
        test.n_gen.min(1)
    } else {
        test.n_gen
    };
    let t0 = Instant::now();
    let mut token = first_token;
    let mut prompt_ns = 0;
    let mut ttft_ns = 0;
    if !prompt.is_empty() {
        let logits = session.prefill(prompt)?;
        prompt_ns = t0.elapsed().as_nanos() as u64;
        if n_gen > 0 {
            let s0 = Instant::now();
            token = sampler.sample(logits);
            sampling_ns += s0.elapsed().as_nanos() as u64;
            ttft_ns = t0.elapsed().as_nanos() as u64;
        }
    }
    let g0 = Instant::now();
    for i in 0..n_gen {
        let logits = session.decode(token)?;
        if i + 1 < n_gen {
            let s0 = Instant::now();
            token = sampler.sample(logits);
            sampling_ns += s0.elapsed().as_nanos() as u64;
        }
    }
    let gen_ns = if n_gen > 0 {
        g0.elapsed().as_nanos() as u64
    } else {
        0
    };
    let total_ns = t0.elapsed().as_nanos() as u64;
    let prof = session.profile();
    let mut breakdown = [0u64; 10];
    for (i, ph) in Phase::ALL.iter().take(8).enumerate() {
        breakdown[i] = prof.get(*ph);
    }
    breakdown[8] = sampling_ns;
    let accounted: u64 = breakdown[..9].iter().sum();
    breakdown[9] = total_ns.saturating_sub(accounted);
    Ok(Rep {
        total_ns,
        prompt_ns,
        gen_ns,
        ttft_ns,
        breakdown,
    })
}

fn run_test(
    session: &mut Session,
    test: Test,
    reps: usize,
    warmup: bool,
    bos: Option<u32>,
    rng: &mut StdRng,
    threads: usize,
) -> Result<E2eResult> {
    let n_vocab = session_vocab(session);
    let mut sampler = Sampler::new(SamplerOptions::greedy(), n_vocab);
    session.set_profiling(true);
    let prompt = random_tokens(rng, test.n_prompt, n_vocab, bos);
    let depth = random_tokens(rng, test.n_depth, n_vocab, bos);
    let first = rng.gen_range(0..n_vocab as u32);
    let test_time = utc_now();
    if warmup {
        eprintln!("e2e: {} t{threads}: warm-up", test.name());
        one_rep(session, &mut sampler, test, &prompt, &depth, first, true)?;
    }
    let mut done = Vec::with_capacity(reps);
    for i in 0..reps {
        let r = one_rep(session, &mut sampler, test, &prompt, &depth, first, false)?;
        eprintln!(
            "e2e: {} t{threads}: repetition {}/{reps}: {:.2} t/s",
            test.name(),
            i + 1,
            1e9 * test.tokens() as f64 / r.total_ns as f64
        );
        done.push(r);
    }
    session.set_profiling(false);
    let mut breakdown_ns = [0u64; 10];
    for (i, b) in breakdown_ns.iter_mut().enumerate() {
        *b = (done.iter().map(|r| r.breakdown[i] as f64).sum::<f64>() / reps as f64).round() as u64;
    }
    let rates = |f: &dyn Fn(&Rep) -> Option<f64>| -> Option<f64> {
        let v: Vec<f64> = done.iter().filter_map(f).collect();
        (!v.is_empty()).then(|| mean(&v))
    };
    let (p, n) = (test.n_prompt as f64, test.n_gen as f64);
    Ok(E2eResult {
        test,
        threads,
        test_time,
        samples_ns: done.iter().map(|r| r.total_ns).collect(),
        breakdown_ns,
        prompt_ts: rates(&|r| (test.n_prompt > 0).then(|| 1e9 * p / r.prompt_ns as f64)),
        gen_ts: rates(&|r| (test.n_gen > 0).then(|| 1e9 * n / r.gen_ns as f64)),
        ttft_ms: rates(&|r| (test.n_prompt > 0 && test.n_gen > 0).then(|| r.ttft_ns as f64 / 1e6)),
        peak_rss_bytes: None,
        bytes_per_token: None,
        read_bw_gb_s: 0.0,
    })
}

fn session_vocab(session: &Session) -> usize {
    session.logits().len()
}

/// An e2e row read back (ours or llama-bench's: our columns are then absent).
#[derive(Clone, Debug, Deserialize)]
pub struct E2eRecord {
    pub build_commit: String,
    pub cpu_info: String,
    pub model_filename: String,
    pub model_type: String,
    pub n_threads: usize,
    pub n_prompt: usize,
    pub n_gen: usize,
    pub n_depth: usize,
    pub flash_attn: String,
    pub test_time: String,
    pub avg_ns: f64,
    pub stddev_ns: f64,
    pub avg_ts: f64,
    pub stddev_ts: f64,
    #[serde(default)]
    pub isa: Option<String>,
    #[serde(default)]
    pub design: Option<String>,
    /// `on` / `off` (`--huge-pages`); absent in rows written before the flag.
    #[serde(default)]
    pub huge_pages: Option<String>,
    /// `--prefetch` in bytes; absent in rows written before the flag.
    #[serde(default, deserialize_with = "opt_num")]
    pub prefetch_bytes: Option<f64>,
    #[serde(default, deserialize_with = "opt_num")]
    pub roofline_fraction: Option<f64>,
    #[serde(default, deserialize_with = "opt_num")]
    pub prompt_ts: Option<f64>,
    #[serde(default, deserialize_with = "opt_num")]
    pub gen_ts: Option<f64>,
    #[serde(default, deserialize_with = "opt_num")]
    pub ttft_ms: Option<f64>,
    #[serde(default, deserialize_with = "opt_num")]
    pub peak_rss_bytes: Option<f64>,
    #[serde(default, deserialize_with = "opt_num")]
    pub load_ms: Option<f64>,
    #[serde(default, deserialize_with = "opt_num")]
    pub t_attn_qkv_ns: Option<f64>,
    #[serde(default, deserialize_with = "opt_num")]
    pub t_attn_output_ns: Option<f64>,
    #[serde(default, deserialize_with = "opt_num")]
    pub t_ffn_gate_up_ns: Option<f64>,
    #[serde(default, deserialize_with = "opt_num")]
    pub t_ffn_down_ns: Option<f64>,
    #[serde(default, deserialize_with = "opt_num")]
    pub t_output_ns: Option<f64>,
    #[serde(default, deserialize_with = "opt_num")]
    pub t_attention_ns: Option<f64>,
    #[serde(default, deserialize_with = "opt_num")]
    pub t_norms_ns: Option<f64>,
    #[serde(default, deserialize_with = "opt_num")]
    pub t_rope_ns: Option<f64>,
    #[serde(default, deserialize_with = "opt_num")]
    pub t_sampling_ns: Option<f64>,
    #[serde(default, deserialize_with = "opt_num")]
    pub t_other_ns: Option<f64>,
}

/// A number that may be empty (CSV), null or absent.
fn opt_num<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    let v = Option::<Value>::deserialize(d)?;
    Ok(match v {
        Some(Value::Number(n)) => n.as_f64(),
        Some(Value::String(s)) if s.trim().is_empty() => None,
        Some(Value::String(s)) => Some(s.trim().parse().map_err(serde::de::Error::custom)?),
        _ => None,
    })
}

impl E2eRecord {
    pub fn test_name(&self) -> String {
        test_name(self.n_prompt, self.n_gen, self.n_depth)
    }

    /// Our rows carry an ISA; llama-bench's do not.
    pub fn is_ours(&self) -> bool {
        self.isa.is_some()
    }

    /// The series a row belongs to in the report: `ours avx2 q8 t2` or `llama.cpp t2`.
    pub fn series(&self) -> String {
        match (&self.isa, &self.design) {
            (Some(i), Some(d)) => format!("ours {i} {d} t{}", self.n_threads),
            _ => format!("llama.cpp t{}", self.n_threads),
        }
    }

    /// The breakdown in [`BREAKDOWN`] order, when the row has one.
    pub fn breakdown(&self) -> Option<[f64; 10]> {
        Some([
            self.t_attn_qkv_ns?,
            self.t_attn_output_ns?,
            self.t_ffn_gate_up_ns?,
            self.t_ffn_down_ns?,
            self.t_output_ns?,
            self.t_attention_ns?,
            self.t_norms_ns?,
            self.t_rope_ns?,
            self.t_sampling_ns?,
            self.t_other_ns?,
        ])
    }
}

/// Reads e2e rows (ours or llama-bench's) from CSV or JSON lines. Errors when the file holds
/// other rows, so the report can tell the kinds of file apart.
pub fn read_records(path: &Path) -> Result<Vec<E2eRecord>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    parse_records(&text).with_context(|| format!("in {}", path.display()))
}

pub fn parse_records(text: &str) -> Result<Vec<E2eRecord>> {
    let t = text.trim_start();
    let mut out = Vec::new();
    if t.starts_with('{') {
        for (i, line) in t.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
            let mut v: Value =
                serde_json::from_str(line).with_context(|| format!("line {}", i + 1))?;
            // llama-bench writes flash_attn as a number in JSON; our reader wants text.
            if let Some(fa) = v.get_mut("flash_attn") {
                if !fa.is_string() {
                    *fa = Value::String(fa.to_string());
                }
            }
            out.push(serde_json::from_value(v).with_context(|| format!("line {}", i + 1))?);
        }
    } else {
        let mut r = csv::Reader::from_reader(t.as_bytes());
        let h = r.headers().context("not CSV")?;
        if !(h.iter().any(|c| c == "n_prompt") && h.iter().any(|c| c == "avg_ts")) {
            bail!("not e2e or llama-bench rows (no n_prompt and avg_ts columns)");
        }
        for (i, rec) in r.deserialize().enumerate() {
            out.push(rec.with_context(|| format!("CSV record {}", i + 1))?);
        }
    }
    if out.is_empty() {
        bail!("no rows");
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        e2e: E2eArgs,
    }

    fn args(a: &[&str]) -> E2eArgs {
        let mut v = vec!["e2e"];
        v.extend_from_slice(a);
        Cli::try_parse_from(v).unwrap().e2e
    }

    #[test]
    fn names_and_products_as_llama_bench() {
        assert_eq!(test_name(512, 0, 0), "pp512");
        assert_eq!(test_name(0, 128, 0), "tg128");
        assert_eq!(test_name(512, 128, 0), "pp512+tg128");
        assert_eq!(test_name(0, 128, 512), "tg128 @ d512");
        let a = args(&[
            "-p", "40,512", "-n", "128", "--pg", "512,128", "-d", "0,512",
        ]);
        let names: Vec<String> = tests_of(&a, false)
            .unwrap()
            .iter()
            .map(Test::name)
            .collect();
        assert_eq!(
            names,
            [
                "pp40",
                "pp512",
                "tg128",
                "pp512+tg128",
                "pp40 @ d512",
                "pp512 @ d512",
                "tg128 @ d512",
                "pp512+tg128 @ d512"
            ]
        );
        assert!(tests_of(&args(&["--pg", "512"]), false).is_err());
        assert!(tests_of(&args(&["-p", "0", "-n", "0"]), false).is_err());
    }

    #[test]
    fn stddev_is_sample_stddev() {
        assert_eq!(stddev(&[1.0]), 0.0);
        assert!((stddev(&[1.0, 2.0, 3.0, 4.0]) - (5.0f64 / 3.0).sqrt()).abs() < 1e-12);
    }
}
