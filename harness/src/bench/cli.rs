//! The `harness bench` command line: flags to a [`BenchConfig`], rows to stdout or files.

use super::{workloads, BenchConfig, CacheMode};
use crate::record::{self, OutputFormat};
use anyhow::{bail, Context, Result};
use kernels::Isa;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    /// Kernel families, comma-separated (`harness bench --list` shows them); `matmul`, `ops`
    /// and `quantize` name groups (default: all).
    #[arg(long, value_delimiter = ',')]
    pub kernel: Vec<String>,
    /// ISAs, comma-separated: scalar, avx2, avx512, neon (default: every one this CPU runs).
    #[arg(long, value_delimiter = ',')]
    pub isa: Vec<String>,
    /// Designs, comma-separated: f32, q8k, q8k-x8, q8k-amx, q8_0, q8_1 (matmuls), flash-f32kv, flash-f16kv
    /// (attention), adjacent, neox (RoPE) (default: all).
    #[arg(long, value_delimiter = ',')]
    pub design: Vec<String>,
    /// Shapes: tinyllama, smollm2, all, or matmuls as ROWSxKxN (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "tinyllama")]
    pub shapes: Vec<String>,
    /// Activation rows of the model matmul shapes (default 1, 40, 512).
    #[arg(long, value_delimiter = ',')]
    pub n: Vec<usize>,
    /// Thread counts for the matmuls, comma-separated (attention and ops run on one).
    #[arg(long, value_delimiter = ',', default_value = "1")]
    pub threads: Vec<usize>,
    /// Samples per variant (slow variants take fewer within --max-time, at least 3).
    #[arg(long, default_value_t = 10)]
    pub reps: usize,
    /// Least duration of one sample in seconds; fast calls are batched to reach it.
    #[arg(long, default_value_t = 0.01)]
    pub min_time: f64,
    /// Warm-up per variant in seconds (at least one call).
    #[arg(long, default_value_t = 0.2)]
    pub warmup: f64,
    /// Sampling budget per variant in seconds.
    #[arg(long, default_value_t = 5.0)]
    pub max_time: f64,
    /// Matmul weights: `cold` reads a different copy each call (DRAM-bound, like a decode),
    /// `hot` reuses one. Default: cold for n = 1, hot otherwise.
    #[arg(long, value_enum)]
    pub cache: Option<CacheMode>,
    /// Bytes ahead of their reads at which the x86 kernels prefetch weights at n = 1 (0: none).
    #[arg(long, value_name = "BYTES", default_value_t = kernels::mem::DEFAULT_DECODE_PREFETCH, value_parser = crate::run::parse_prefetch)]
    pub prefetch: usize,
    /// Output forms, comma-separated: md (a table), csv, jsonl.
    #[arg(
        short = 'o',
        long = "output",
        value_enum,
        value_delimiter = ',',
        default_value = "md"
    )]
    pub output: Vec<OutputFormat>,
    /// Write to this file instead of stdout. With several forms it is a stem: FILE.md, FILE.csv, ...
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// List every kernel x design x ISA variant and exit.
    #[arg(long)]
    pub list: bool,
    /// Seed of the generated weights and activations.
    #[arg(long, default_value_t = 0x5eed)]
    pub seed: u64,
}

fn seconds(name: &str, s: f64) -> Result<Duration> {
    if !(s.is_finite() && s >= 0.0) {
        bail!("--{name} must be a non-negative number of seconds, got {s}");
    }
    Ok(Duration::from_secs_f64(s))
}

pub fn run(args: BenchArgs) -> Result<ExitCode> {
    let mut isas = Vec::new();
    for name in &args.isa {
        match Isa::from_name(name) {
            Some(isa) => isas.push(isa),
            None => bail!("unknown ISA `{name}`; known: scalar, avx2, avx512, neon"),
        }
    }
    if args.list {
        for v in crate::registry::variants() {
            println!("{} {} {}", v.kernel, v.design, v.isa);
        }
        return Ok(ExitCode::SUCCESS);
    }
    for d in &args.design {
        if crate::registry::Design::from_name(d).is_none() {
            bail!(
                "unknown design `{d}`; known: {}",
                crate::registry::Design::ALL.map(|d| d.name()).join(", ")
            );
        }
    }
    if args.reps == 0 {
        bail!("--reps must be at least 1");
    }
    let ns = if args.n.is_empty() {
        workloads::DEFAULT_NS.to_vec()
    } else {
        if args.n.contains(&0) {
            bail!("--n needs positive row counts");
        }
        args.n.clone()
    };
    kernels::mem::set_decode_prefetch(args.prefetch);
    let config = BenchConfig {
        kernels: args.kernel.clone(),
        isas,
        designs: args.design.clone(),
        workloads: workloads::parse_shapes(&args.shapes, &ns)?,
        threads: args.threads.clone(),
        timing: super::timing::TimingConfig {
            reps: args.reps,
            min_time: seconds("min-time", args.min_time)?,
            warmup: seconds("warmup", args.warmup)?,
            max_time: seconds("max-time", args.max_time)?,
        },
        cache: args.cache,
        seed: args.seed,
    };
    let mut outputs = args.output.clone();
    outputs.dedup();
    // Refuse an unwritable output now, not after the whole run.
    let paths: Vec<Option<PathBuf>> = outputs
        .iter()
        .map(|f| match &args.out {
            None => None,
            Some(p) if outputs.len() == 1 => Some(p.clone()),
            Some(p) => Some(p.with_extension(f.extension())),
        })
        .collect();
    for p in paths.iter().flatten() {
        std::fs::File::create(p).with_context(|| format!("cannot write {}", p.display()))?;
    }
    let started = std::time::Instant::now();
    let (rows, limits) = super::run(&config)?;
    for (f, p) in outputs.iter().zip(&paths) {
        match p {
            Some(p) => {
                let mut file = std::io::BufWriter::new(
                    std::fs::File::create(p)
                        .with_context(|| format!("cannot write {}", p.display()))?,
                );
                if *f == OutputFormat::Md {
                    write_limits_md(&limits, &mut file)?;
                }
                record::write_rows(&rows, *f, &mut file)?;
                std::io::Write::flush(&mut file)?;
                eprintln!("bench: wrote {}", p.display());
            }
            None => {
                let mut out = std::io::stdout().lock();
                if *f == OutputFormat::Md {
                    write_limits_md(&limits, &mut out)?;
                }
                record::write_rows(&rows, *f, &mut out)?;
            }
        }
    }
    eprintln!(
        "bench: {} rows in {:.1} s",
        rows.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(ExitCode::SUCCESS)
}

fn write_limits_md(limits: &super::Limits, out: &mut dyn std::io::Write) -> Result<()> {
    writeln!(out, "Machine limits measured in this run:\n")?;
    for l in limits.describe() {
        writeln!(out, "- {l}")?;
    }
    writeln!(out)?;
    Ok(())
}
