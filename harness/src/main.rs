//! `harness`: the command line of the kernel verification and benchmarking harness.

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use harness::verify::{self, select::IsaSelection, Status, VerifyConfig};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "harness",
    version,
    about = "Verify and benchmark CPU LLM inference kernels"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The correctness gate: every kernel variant against scalar and the f64 reference.
    Verify(VerifyArgs),
    /// Show a GGUF file: metadata, tensor table, totals by type, parameters, bits per weight.
    Inspect(harness::inspect::InspectArgs),
    /// Write a model-shaped GGUF with random weights in a llama-quantize tensor mix.
    Synth(harness::synth::SynthArgs),
    /// Text to token ids with the tokenizer of a GGUF file (SentencePiece or byte-level BPE).
    Tokenize(harness::tokenize::TokenizeArgs),
    /// Generate text with a GGUF model (Llama architecture).
    Run(harness::run::RunArgs),
    /// Time every kernel variant side by side on model shapes, against the machine's limits.
    Bench(harness::bench::cli::BenchArgs),
    /// Plots and tables (REPORT.md, REPORT.html) from bench rows of one or more machines.
    Report(harness::report::ReportArgs),
    /// Speedup of NEW over BASE per row with bootstrap intervals; non-zero exit on a regression.
    Compare(harness::compare::CompareArgs),
    /// End-to-end model timing in llama-bench's manner (pp/tg tests, its CSV/JSONL fields);
    /// without --model the main job on a synthesized TinyLlama-1.1B Q4_K_M.
    E2e(harness::e2e::E2eArgs),
    /// Perplexity of a text file, by llama-perplexity's method (chunks of --ctx, second half scored).
    Perplexity(harness::perplexity::PerplexityArgs),
    /// The kernel server `verify` runs under qemu-aarch64 for its NEON rows (internal).
    #[command(hide = true)]
    NeonServe,
}

#[derive(clap::Args)]
struct VerifyArgs {
    /// Kernel families to check, comma-separated (default: all). Use `--list` to see them.
    #[arg(long, value_delimiter = ',')]
    kernel: Vec<String>,
    /// ISAs to check, comma-separated: scalar, avx2, avx512, neon, or `native` (every ISA of this
    /// build's architecture: those this CPU runs must pass, the others are reported SKIPPED with
    /// the reason). A level named explicitly must run, or verify fails; NEON runs under
    /// qemu-aarch64 on x86_64. Default: all, none required. CI uses `--isa native,neon`.
    #[arg(long, value_delimiter = ',')]
    isa: Vec<String>,
    /// Property cases per variant.
    #[arg(long, default_value_t = 200)]
    cases: u32,
    /// Seed of the case generator (a failure prints the seed that reproduces it).
    #[arg(long, default_value_t = 0x5eed)]
    seed: u64,
    /// Also write the rows as CSV to this file.
    #[arg(long)]
    csv: Option<PathBuf>,
    /// Plant known bugs in test-only kernel copies and show that the gate catches each.
    #[arg(long, conflicts_with_all = ["kernel", "isa", "csv"])]
    self_test: bool,
    /// List the kernel families and exit.
    #[arg(long)]
    list: bool,
    /// Verify a whole model instead of the kernels: this GGUF file's forward pass against the
    /// reference's (f64), per design x ISA x thread count; rows go to --csv.
    #[arg(long, conflicts_with_all = ["kernel", "list"])]
    model: Option<PathBuf>,
    /// With --model: the text whose tokens both forward passes run.
    #[arg(long, requires = "model", conflicts_with = "tokens")]
    prompt: Option<String>,
    /// With --model: run this many seeded random tokens instead of a prompt (default 24).
    #[arg(long, requires = "model")]
    tokens: Option<usize>,
    /// With --model: designs, comma-separated (q8, f32; default both).
    #[arg(long, value_delimiter = ',', requires = "model")]
    design: Vec<String>,
    /// With --model: thread counts, comma-separated (default 1,2).
    #[arg(long, value_delimiter = ',', requires = "model")]
    threads: Vec<usize>,
    /// With --model: the KV cache format (f16 or f32).
    #[arg(long, default_value = "f16", requires = "model")]
    kv: String,
}

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("harness: error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run() -> Result<ExitCode> {
    // llama-bench spells the prompt+generation flag `-pg`; clap's short flags are one letter.
    let argv: Vec<std::ffi::OsString> = std::env::args_os()
        .enumerate()
        .map(|(i, a)| {
            if i > 1 && a == "-pg" {
                "--pg".into()
            } else {
                a
            }
        })
        .collect();
    let cli = Cli::parse_from(argv);
    match cli.command {
        Command::Verify(args) => verify_cmd(args),
        Command::NeonServe => verify::qemu::serve().map(|()| ExitCode::SUCCESS),
        Command::Perplexity(args) => {
            harness::perplexity::run(&args, &mut std::io::stdout()).map(|_| ExitCode::SUCCESS)
        }
        Command::Inspect(args) => harness::inspect::run(args).map(|()| ExitCode::SUCCESS),
        Command::Synth(args) => harness::synth::run(args).map(|()| ExitCode::SUCCESS),
        Command::Tokenize(args) => {
            harness::tokenize::run(&args, &mut std::io::stdout().lock()).map(|()| ExitCode::SUCCESS)
        }
        Command::Run(args) => {
            harness::run::run(&args, &mut std::io::stdout().lock()).map(|_| ExitCode::SUCCESS)
        }
        Command::Bench(args) => harness::bench::cli::run(args),
        Command::Report(args) => harness::report::run(args),
        Command::Compare(args) => harness::compare::run(args),
        Command::E2e(args) => harness::e2e::run(&args).map(|()| ExitCode::SUCCESS),
    }
}

fn verify_model_cmd(
    args: &VerifyArgs,
    path: &std::path::Path,
    selection: &IsaSelection,
) -> Result<ExitCode> {
    use harness::verify::model::{self, ModelCheck, Tokens};
    use kernels::model::Design;
    if let Some(csv) = &args.csv {
        std::fs::File::create(csv).with_context(|| format!("cannot write {}", csv.display()))?;
    }
    let designs = if args.design.is_empty() {
        Design::ALL.to_vec()
    } else {
        args.design
            .iter()
            .map(|d| {
                Design::from_name(d)
                    .ok_or_else(|| anyhow::anyhow!("--design {d}: not a design (q8, f32)"))
            })
            .collect::<Result<_>>()?
    };
    let threads = if args.threads.is_empty() {
        vec![1, 2]
    } else {
        args.threads.clone()
    };
    if let Some(t) = threads
        .iter()
        .find(|&&t| t == 0 || t > kernels::model::split::MAX_PARTS)
    {
        bail!(
            "--threads {t}: must be 1 to {}",
            kernels::model::split::MAX_PARTS
        );
    }
    let kv = match args.kv.as_str() {
        "f16" => kernels::attention::KvFormat::F16,
        "f32" => kernels::attention::KvFormat::F32,
        other => bail!("--kv {other}: not a KV cache format (f16, f32)"),
    };
    let isas = if selection.rows.is_empty() {
        kernels::Isa::of_target_arch().collect()
    } else {
        selection.rows.clone()
    };
    let check = ModelCheck {
        path: path.to_path_buf(),
        tokens: match (&args.prompt, args.tokens) {
            (Some(p), _) => Tokens::Prompt(p.clone()),
            (None, n) => Tokens::Random(n.unwrap_or(24)),
        },
        isas,
        designs,
        threads,
        kv,
        seed: args.seed,
    };
    if args.self_test {
        let results = model::self_test(&check, &mut std::io::stdout())?;
        let missed = results.iter().filter(|r| r.applies && !r.caught).count();
        let applicable = results.iter().filter(|r| r.applies).count();
        println!(
            "verify --model --self-test: {} of {applicable} planted model bugs caught",
            applicable - missed
        );
        return Ok(if missed == 0 {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        });
    }
    let started = std::time::Instant::now();
    let rows = model::run(&check, &mut std::io::stdout())?;
    if let Some(csv) = &args.csv {
        model::write_csv(&rows, csv).with_context(|| format!("writing {}", csv.display()))?;
    }
    let failed = rows.iter().filter(|r| r.status == "FAIL").count();
    let skipped: Vec<_> = rows.iter().filter(|r| r.status == "SKIPPED").collect();
    println!(
        "verify --model: {} passed, {failed} failed, {} skipped ({:.1} s)",
        rows.len() - failed - skipped.len(),
        skipped.len(),
        started.elapsed().as_secs_f64()
    );
    if let Some(row) = skipped
        .iter()
        .find(|r| kernels::Isa::from_name(&r.isa).is_some_and(|i| selection.requires(i)))
    {
        eprintln!(
            "harness: error: --isa {} was asked for but cannot run here: {}",
            row.isa, row.note
        );
        return Ok(ExitCode::FAILURE);
    }
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn verify_cmd(args: VerifyArgs) -> Result<ExitCode> {
    if args.list {
        for k in verify::KERNELS {
            println!("{k}");
        }
        return Ok(ExitCode::SUCCESS);
    }
    if args.cases == 0 {
        bail!("--cases must be at least 1");
    }
    let selection = IsaSelection::parse(&args.isa)?;
    let mut stdout = std::io::stdout();
    if let Some(path) = &args.model {
        return verify_model_cmd(&args, path, &selection);
    }
    if args.self_test {
        let results = verify::selftest::run(args.cases, args.seed, &mut stdout)?;
        let missed = results.iter().filter(|r| !r.caught).count();
        println!(
            "self-test: {} of {} planted bugs caught",
            results.len() - missed,
            results.len()
        );
        return Ok(if missed == 0 {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        });
    }
    // Refuse an unwritable CSV path now, not after the whole run.
    if let Some(path) = &args.csv {
        std::fs::File::create(path).with_context(|| format!("cannot write {}", path.display()))?;
    }
    let config = VerifyConfig {
        kernels: args.kernel,
        isas: selection.rows.clone(),
        cases: args.cases,
        seed: args.seed,
        neon_under_qemu: true,
    };
    let started = std::time::Instant::now();
    let rows = verify::run(&config, &mut stdout)?;
    if let Some(path) = &args.csv {
        verify::write_csv(&rows, path).with_context(|| format!("writing {}", path.display()))?;
    }
    let failed = rows.iter().filter(|r| r.status == Status::Fail).count();
    let skipped = rows
        .iter()
        .filter(|r| matches!(r.status, Status::Skipped(_)))
        .count();
    let passed = rows.len() - failed - skipped;
    println!(
        "verify: {passed} passed, {failed} failed, {skipped} skipped ({:.1} s, seed {})",
        started.elapsed().as_secs_f64(),
        config.seed
    );
    // An ISA that must run (named, or `native` and run by this CPU) must not be skipped: a gate
    // that skips what it was asked to check must not pass. A variant that does not exist for an
    // ISA (the x8 layout has no scalar or NEON kernel) is not something it was asked to check.
    if let Some(row) = selection.first_missing(&rows) {
        eprintln!(
            "harness: error: --isa {} was asked for but cannot run here: {}",
            row.isa, row.note
        );
        return Ok(ExitCode::FAILURE);
    }
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
