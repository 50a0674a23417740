//! `harness compare BASE NEW`: joins the rows of two result files on the columns that name what
//! was measured, and gives per row the speedup of NEW over BASE (`median(base) / median(new)`,
//! above 1 = faster) with a 95% bootstrap interval and p-value from the raw samples.
//!
//! A change is *significant* when its Holm-adjusted p-value (over all joined rows, so a file of
//! a hundred rows does not raise a false alarm by chance alone) is below `--alpha` and its
//! interval excludes 1. A *regression* is a significant slowdown whose time ratio exceeds
//! `1 + threshold`: the threshold absorbs what the bootstrap cannot see, the drift between two
//! runs on a shared machine (each run's samples are alternated within the run, not across).
//! The exit status is 1 when any row regressed, so CI can gate on it.
//!
//! Files read: our bench CSV / JSON lines (joined on kernel, format, design, isa, shape, sizes,
//! threads, cache), any CSV / JSON lines with a `samples_ns` column (e2e rows; joined on the
//! non-measurement columns), and llama-bench's CSV, JSON and JSON lines (joined on model type
//! and size, n_prompt, n_gen, n_depth, threads, batch sizes, KV types, flash_attn, backends).
//! llama-bench's CSV carries no samples, only `avg_ns` and `stddev_ns`: its interval treats
//! the standard deviation as the standard error of the mean, which makes it wider than the
//! truth (conservative), and its p-value comes from the normal approximation of the log ratio.

use crate::record::fmt_ns;
use crate::stats::{median_of, speedup_bootstrap};
use anyhow::{bail, Context, Result};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct CompareArgs {
    /// The baseline results (bench CSV/JSONL, e2e rows, or llama-bench CSV/JSON/JSONL).
    pub base: PathBuf,
    /// The results to judge against the baseline.
    pub new: PathBuf,
    /// A significant slowdown counts as a regression when new time / base time exceeds
    /// 1 + PCT/100.
    #[arg(long, default_value_t = 10.0)]
    pub threshold: f64,
    /// Family-wise significance level (Holm over all joined rows).
    #[arg(long, default_value_t = 0.05)]
    pub alpha: f64,
    /// Columns to leave out of the join key, comma-separated (e.g. `threads` to compare a
    /// 1-thread run against a 2-thread run of the same kernels).
    #[arg(long, value_delimiter = ',')]
    pub ignore: Vec<String>,
    /// Print only significant rows.
    #[arg(long)]
    pub changed_only: bool,
}

/// One measurement read from a file: its join key and its times (ns, lower is better).
#[derive(Clone, Debug, PartialEq)]
pub struct Measurement {
    pub key: String,
    pub times: Times,
}

/// Raw samples, or (for llama-bench CSV) only a mean and standard deviation.
#[derive(Clone, Debug, PartialEq)]
pub enum Times {
    Samples(Vec<f64>),
    MeanStddev { mean: f64, stddev: f64 },
}

impl Times {
    fn centre(&self) -> f64 {
        match self {
            Times::Samples(s) => median_of(s),
            Times::MeanStddev { mean, .. } => *mean,
        }
    }
}

/// Which kind of file the rows came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    Bench,
    LlamaBench,
    Generic,
}

const BENCH_KEY: &[&str] = &[
    "kernel", "format", "design", "isa", "shape", "rows", "k", "n", "threads", "cache",
];
const LLAMA_KEY: &[&str] = &[
    "model_type",
    "model_size",
    "model_n_params",
    "n_prompt",
    "n_gen",
    "n_depth",
    "n_threads",
    "n_batch",
    "n_ubatch",
    "type_k",
    "type_v",
    "flash_attn",
    "backends",
    "n_gpu_layers",
];
/// Columns of a generic row that say how fast, where or when, not what.
const NOT_KEY: &[&str] = &[
    "samples_ns",
    "samples_ts",
    "reps",
    "cpu",
    "features",
    "cores",
    "rustc",
    "git_commit",
    "git_dirty",
    "date",
    "note",
];

/// Reads the rows of `path` (CSV, JSON array or JSON lines).
pub fn read_measurements(path: &Path, ignore: &[String]) -> Result<(Source, Vec<Measurement>)> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    parse_measurements(&text, ignore).with_context(|| format!("in {}", path.display()))
}

/// Parses rows from text (see [`read_measurements`]).
pub fn parse_measurements(text: &str, ignore: &[String]) -> Result<(Source, Vec<Measurement>)> {
    let objects = parse_objects(text)?;
    let Some(first) = objects.first() else {
        bail!("no rows");
    };
    let source = if first.contains_key("kernel") && first.contains_key("samples_ns") {
        Source::Bench
    } else if first.contains_key("avg_ns") && first.contains_key("n_prompt") {
        Source::LlamaBench
    } else if first.contains_key("samples_ns") {
        Source::Generic
    } else {
        bail!("neither bench rows (`kernel`, `samples_ns`), llama-bench rows (`avg_ns`, `n_prompt`) nor rows with `samples_ns`");
    };
    let mut out = Vec::new();
    for (i, obj) in objects.iter().enumerate() {
        let cols: Vec<&str> = match source {
            Source::Bench => BENCH_KEY.to_vec(),
            Source::LlamaBench => LLAMA_KEY.to_vec(),
            Source::Generic => obj
                .keys()
                .map(String::as_str)
                .filter(|k| !NOT_KEY.contains(k) && !is_measurement_column(k))
                .collect(),
        };
        let key = cols
            .iter()
            .filter(|c| !ignore.iter().any(|i| i == *c))
            .filter_map(|c| obj.get(*c).map(|v| format!("{c}={}", cell(v))))
            .collect::<Vec<_>>()
            .join(" ");
        let times = times_of(obj).with_context(|| format!("row {}", i + 1))?;
        out.push(Measurement { key, times });
    }
    Ok((source, out))
}

/// Measurement columns of our rows (`*_ns`, `*_per_s`, ...), never part of a key.
fn is_measurement_column(k: &str) -> bool {
    k.ends_with("_ns")
        || k.ends_with("_ts")
        || k.ends_with("_per_s")
        || k.starts_with("speedup")
        || k.starts_with("roofline")
        || k.starts_with("tokens_per")
        || ["bytes", "flops", "outliers", "bound"].contains(&k)
}

fn cell(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        // llama-bench writes booleans as 0/1 in CSV and false/true in JSON.
        Value::Bool(b) => u8::from(*b).to_string(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn times_of(obj: &Map<String, Value>) -> Result<Times> {
    if let Some(s) = obj.get("samples_ns") {
        let samples: Vec<f64> = match s {
            Value::Array(a) => a
                .iter()
                .map(|v| number(v).context("a sample is not a number"))
                .collect::<Result<_>>()?,
            Value::String(t) => t
                .split(|c: char| c.is_whitespace() || c == ',' || c == ';' || c == '[' || c == ']')
                .filter(|t| !t.is_empty())
                .map(|t| t.parse::<f64>().with_context(|| format!("sample `{t}`")))
                .collect::<Result<_>>()?,
            _ => bail!("samples_ns is neither a list nor text"),
        };
        if samples.is_empty() || samples.iter().any(|s| !(s.is_finite() && *s > 0.0)) {
            bail!("samples_ns must hold positive finite times");
        }
        return Ok(Times::Samples(samples));
    }
    let mean = obj
        .get("avg_ns")
        .and_then(number)
        .context("no samples_ns and no avg_ns")?;
    let stddev = obj.get("stddev_ns").and_then(number).unwrap_or(0.0);
    if !(mean.is_finite() && mean > 0.0 && stddev.is_finite() && stddev >= 0.0) {
        bail!("avg_ns {mean} / stddev_ns {stddev} are not valid times");
    }
    Ok(Times::MeanStddev { mean, stddev })
}

/// Rows of a CSV (cells as strings), a JSON array, or JSON lines, as JSON objects.
fn parse_objects(text: &str) -> Result<Vec<Map<String, Value>>> {
    let t = text.trim_start();
    let as_object = |v: Value| -> Result<Map<String, Value>> {
        match v {
            Value::Object(m) => Ok(m),
            _ => bail!("a row is not a JSON object"),
        }
    };
    if t.starts_with('[') {
        let v: Vec<Value> = serde_json::from_str(t).context("not a JSON array of rows")?;
        return v.into_iter().map(as_object).collect();
    }
    if t.starts_with('{') {
        return t
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
            .map(|(i, l)| {
                as_object(serde_json::from_str(l).with_context(|| format!("line {}", i + 1))?)
            })
            .collect();
    }
    let mut r = csv::Reader::from_reader(t.as_bytes());
    let header = r.headers().context("not CSV")?.clone();
    let mut rows = Vec::new();
    for (i, rec) in r.records().enumerate() {
        let rec = rec.with_context(|| format!("CSV record {}", i + 1))?;
        rows.push(
            header
                .iter()
                .zip(rec.iter())
                .map(|(h, v)| (h.to_string(), Value::String(v.to_string())))
                .collect(),
        );
    }
    Ok(rows)
}

/// The comparison of one joined row.
#[derive(Clone, Debug)]
pub struct Change {
    pub key: String,
    pub base: f64,
    pub new: f64,
    pub speedup: f64,
    pub ci_lo: f64,
    pub ci_hi: f64,
    pub p_value: f64,
    /// Holm-adjusted p-value over all joined rows.
    pub p_adjusted: f64,
    pub significant: bool,
    pub regression: bool,
}

/// Compares two sets of measurements.
pub fn compare(
    base: &[Measurement],
    new: &[Measurement],
    threshold_pct: f64,
    alpha: f64,
) -> Result<(Vec<Change>, Vec<String>)> {
    let mut base_by: BTreeMap<&str, &Measurement> = BTreeMap::new();
    for m in base {
        if base_by.insert(&m.key, m).is_some() {
            bail!("BASE holds two rows with the key `{}`: use --ignore to drop fewer columns, or split the file", m.key);
        }
    }
    let mut unmatched = Vec::new();
    let mut changes = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for (i, m) in new.iter().enumerate() {
        if !seen.insert(m.key.as_str()) {
            bail!("NEW holds two rows with the key `{}`", m.key);
        }
        let Some(b) = base_by.get(m.key.as_str()) else {
            unmatched.push(format!("only in NEW: {}", m.key));
            continue;
        };
        let (speedup, ci_lo, ci_hi, p_value) = estimate(&b.times, &m.times, i as u64);
        changes.push(Change {
            key: m.key.clone(),
            base: b.times.centre(),
            new: m.times.centre(),
            speedup,
            ci_lo,
            ci_hi,
            p_value,
            p_adjusted: p_value,
            significant: false,
            regression: false,
        });
    }
    for k in base_by.keys() {
        if !seen.contains(k) {
            unmatched.push(format!("only in BASE: {k}"));
        }
    }
    // Holm: the i-th smallest p-value (0-based) is multiplied by (m - i), made monotone.
    let m = changes.len();
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by(|&a, &b| changes[a].p_value.total_cmp(&changes[b].p_value));
    let mut running = 0f64;
    for (rank, &i) in order.iter().enumerate() {
        running = running.max(((m - rank) as f64 * changes[i].p_value).min(1.0));
        changes[i].p_adjusted = running;
    }
    for c in &mut changes {
        c.significant = c.p_adjusted < alpha && (c.ci_hi < 1.0 || c.ci_lo > 1.0);
        c.regression = c.significant && 1.0 / c.speedup > 1.0 + threshold_pct / 100.0;
    }
    Ok((changes, unmatched))
}

fn estimate(base: &Times, new: &Times, seed: u64) -> (f64, f64, f64, f64) {
    match (base, new) {
        (Times::Samples(b), Times::Samples(n)) => {
            let e = speedup_bootstrap(b, n, 0.95, seed);
            (e.speedup, e.ci_lo, e.ci_hi, e.p_value)
        }
        _ => {
            // Log-normal approximation: ln(speedup) has standard error sqrt(cv_b^2 + cv_n^2).
            let mc = |t: &Times| match t {
                Times::MeanStddev { mean, stddev } => (*mean, stddev / mean),
                Times::Samples(s) => {
                    let m = s.iter().sum::<f64>() / s.len() as f64;
                    let var = s.iter().map(|x| (x - m).powi(2)).sum::<f64>()
                        / (s.len().max(2) - 1) as f64;
                    (m, var.sqrt() / m / (s.len() as f64).sqrt())
                }
            };
            let (mb, cb) = mc(base);
            let (mn, cn) = mc(new);
            let speedup = mb / mn;
            let se = (cb * cb + cn * cn).sqrt();
            if se == 0.0 {
                let p = if speedup == 1.0 { 1.0 } else { 0.0 };
                return (speedup, speedup, speedup, p);
            }
            let z = speedup.ln() / se;
            let p = 2.0 * (1.0 - normal_cdf(z.abs()));
            (
                speedup,
                (speedup.ln() - 1.96 * se).exp(),
                (speedup.ln() + 1.96 * se).exp(),
                p,
            )
        }
    }
}

fn normal_cdf(z: f64) -> f64 {
    0.5 * (1.0 + libm::erf(z / std::f64::consts::SQRT_2))
}

pub fn run(args: CompareArgs) -> Result<ExitCode> {
    if !(args.alpha > 0.0 && args.alpha < 1.0) {
        bail!("--alpha must lie in (0, 1), got {}", args.alpha);
    }
    if !(args.threshold.is_finite() && args.threshold >= 0.0) {
        bail!(
            "--threshold must be a non-negative percentage, got {}",
            args.threshold
        );
    }
    let (sb, base) = read_measurements(&args.base, &args.ignore)?;
    let (sn, new) = read_measurements(&args.new, &args.ignore)?;
    if sb != sn {
        bail!("BASE holds {sb:?} rows and NEW {sn:?} rows: compare files of the same kind");
    }
    let (changes, unmatched) = compare(&base, &new, args.threshold, args.alpha)?;
    if changes.is_empty() {
        bail!(
            "no row of NEW matches a row of BASE ({} unmatched)",
            unmatched.len()
        );
    }
    for u in &unmatched {
        eprintln!("compare: {u}");
    }
    println!(
        "| row | base | new | speedup | 95% CI | p (Holm) | |\n|---|---:|---:|---:|---|---:|---|"
    );
    for c in &changes {
        if args.changed_only && !c.significant {
            continue;
        }
        let mark = match (c.regression, c.significant, c.speedup > 1.0) {
            (true, _, _) => "REGRESSION",
            (false, true, true) => "faster",
            (false, true, false) => "slower (within threshold)",
            _ => "",
        };
        println!(
            "| {} | {} | {} | {:.3} | {:.3}..{:.3} | {:.2e} | {mark} |",
            c.key,
            fmt_ns(c.base),
            fmt_ns(c.new),
            c.speedup,
            c.ci_lo,
            c.ci_hi,
            c.p_adjusted
        );
    }
    let regressions = changes.iter().filter(|c| c.regression).count();
    let faster = changes
        .iter()
        .filter(|c| c.significant && c.speedup > 1.0)
        .count();
    let slower = changes
        .iter()
        .filter(|c| c.significant && c.speedup < 1.0)
        .count();
    eprintln!(
        "compare: {} rows joined: {faster} significantly faster, {slower} significantly slower, {regressions} regressions beyond {}% (alpha {}, Holm)",
        changes.len(),
        args.threshold,
        args.alpha
    );
    Ok(if regressions > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const LLAMA_CSV: &str = include_str!("../tests/fixtures/llama-bench.csv");
    const LLAMA_JSON: &str = include_str!("../tests/fixtures/llama-bench.json");

    #[test]
    fn llama_bench_csv_and_json_join_on_the_test_columns() {
        let (s, csv_rows) = parse_measurements(LLAMA_CSV, &[]).unwrap();
        assert_eq!(s, Source::LlamaBench);
        let (s, json_rows) = parse_measurements(LLAMA_JSON, &[]).unwrap();
        assert_eq!(s, Source::LlamaBench);
        assert_eq!(csv_rows.len(), 2);
        // Same tests in both files: the keys agree (booleans 0/1 vs false/true included).
        let ck: Vec<_> = csv_rows.iter().map(|m| &m.key).collect();
        let jk: Vec<_> = json_rows.iter().map(|m| &m.key).collect();
        assert_eq!(ck, jk);
        assert!(matches!(csv_rows[0].times, Times::MeanStddev { .. }));
        assert!(matches!(&json_rows[0].times, Times::Samples(s) if s.len() == 5));
        let (changes, unmatched) = compare(&json_rows, &json_rows, 10.0, 0.05).unwrap();
        assert!(unmatched.is_empty());
        assert!(changes.iter().all(|c| !c.significant && c.speedup == 1.0));
    }

    fn bench_rows(scale: f64, seed: u64) -> Vec<Measurement> {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        (0..20)
            .map(|i| Measurement {
                key: format!("row{i}"),
                times: Times::Samples(
                    (0..10)
                        .map(|_| scale * 1000.0 * (1.0 + 0.03 * rng.gen::<f64>()))
                        .collect(),
                ),
            })
            .collect()
    }

    /// A 20% slowdown of every row is flagged on each; the same distribution is not, and a
    /// 20% slowdown under a 25% threshold is significant but not a regression.
    #[test]
    fn flags_a_real_slowdown_and_not_noise() {
        let base = bench_rows(1.0, 1);
        let (c, _) = compare(&base, &bench_rows(1.2, 2), 10.0, 0.05).unwrap();
        assert!(c.iter().all(|c| c.regression), "{c:?}");
        let (c, _) = compare(&base, &bench_rows(1.0, 3), 10.0, 0.05).unwrap();
        assert!(c.iter().all(|c| !c.regression), "{c:?}");
        let (c, _) = compare(&base, &bench_rows(1.2, 2), 25.0, 0.05).unwrap();
        assert!(c.iter().all(|c| c.significant && !c.regression), "{c:?}");
    }

    #[test]
    fn bench_rows_join_and_ignore_drops_a_column() {
        let mut a = crate::record::sample_row();
        let mut text = Vec::new();
        crate::record::write_csv(std::slice::from_ref(&a), &mut text).unwrap();
        let (s, rows) = parse_measurements(std::str::from_utf8(&text).unwrap(), &[]).unwrap();
        assert_eq!(s, Source::Bench);
        assert!(rows[0].key.contains("threads=1"), "{}", rows[0].key);
        a.threads = 2;
        let mut text2 = Vec::new();
        crate::record::write_jsonl(&[a], &mut text2).unwrap();
        let (_, rows2) = parse_measurements(std::str::from_utf8(&text2).unwrap(), &[]).unwrap();
        assert_ne!(rows[0].key, rows2[0].key);
        let ig = ["threads".to_string()];
        let (_, r1) = parse_measurements(std::str::from_utf8(&text).unwrap(), &ig).unwrap();
        let (_, r2) = parse_measurements(std::str::from_utf8(&text2).unwrap(), &ig).unwrap();
        assert_eq!(r1[0].key, r2[0].key);
    }

    #[test]
    fn bad_files_are_clear_errors() {
        assert!(parse_measurements("a,b\n1,2\n", &[]).is_err());
        assert!(parse_measurements("", &[]).is_err());
        let e = parse_measurements("{\"samples_ns\": [1, -2]}\n", &[]).unwrap_err();
        assert!(format!("{e:#}").contains("positive"), "{e:#}");
    }

    #[test]
    fn normal_cdf_is_right() {
        assert!((normal_cdf(0.0) - 0.5).abs() < 1e-7);
        assert!((normal_cdf(1.96) - 0.975).abs() < 1e-4);
    }
}
