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
    let cli = Cli::parse();
    match cli.command {
        Command::Verify(args) => verify_cmd(args),
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
    }
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
    // that skips what it was asked to check must not pass.
    if let Some(row) = rows
        .iter()
        .find(|r| matches!(r.status, Status::Skipped(_)) && selection.requires(r.isa))
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
