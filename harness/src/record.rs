//! The one record type of a bench measurement ([`BenchRow`]), and its three forms: a markdown
//! table people read, CSV and JSON lines. `report` and `compare` read rows back through the same
//! type, by column name, so a column added here cannot be misread by position.

use crate::host::Host;
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Deserializer, Serialize};
use std::io::{BufRead, Write};
use std::path::Path;

/// One measurement: a kernel variant on one shape, thread count and cache mode.
///
/// Units: times in nanoseconds per call; `bytes` the distinct bytes a call must move (weights,
/// activations, outputs; the KV cache for attention); `flops` the nominal arithmetic (`2 n k
/// rows` for a matmul, integer multiply-adds counted the same way for the `q8k` design).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BenchRow {
    pub kernel: String,
    /// Storage format of the operand that dominates the traffic (weights; the KV cache).
    pub format: String,
    pub design: String,
    pub isa: String,
    /// Where the shape comes from (`tinyllama.ffn_down`, `custom`, ...).
    pub shape: String,
    /// Matmul: weight rows, k, activation rows. Attention: kv_len, head_dim, query rows.
    /// Ops: 1, the row length, 1.
    pub rows: usize,
    pub k: usize,
    pub n: usize,
    pub threads: usize,
    /// `cold`: every call reads a different copy of the weights (memory-bound, as a decode is);
    /// `hot`: one copy, cache-resident when it fits.
    pub cache: String,
    /// Samples taken (each the mean of a batch of calls).
    pub reps: usize,
    pub median_ns: f64,
    pub min_ns: f64,
    pub mean_ns: f64,
    pub stddev_ns: f64,
    pub ci95_lo_ns: f64,
    pub ci95_hi_ns: f64,
    /// Samples outside the Tukey fences (kept in `samples_ns`; flagged, never dropped).
    pub outliers: usize,
    #[serde(deserialize_with = "samples_from_any")]
    pub samples_ns: Vec<f64>,
    pub bytes: u64,
    pub flops: u64,
    pub gb_per_s: f64,
    pub gflop_per_s: f64,
    /// The memory roof this row is held to (GB/s at its thread count: DRAM for cold rows and
    /// working sets beyond the last-level cache, the cache bandwidth otherwise).
    pub mem_roof_gb_per_s: f64,
    /// The peak rate of the instructions the design lives on, at this ISA and thread count.
    pub compute_roof_gflop_per_s: f64,
    /// Achieved GFLOP/s over `min(compute roof, memory roof x arithmetic intensity)`.
    pub roofline_fraction: f64,
    /// Which roof is lower at this arithmetic intensity: `memory` or `compute`.
    pub bound: String,
    /// Median of the scalar variant of the same design and shape over this one's; empty when
    /// scalar was not run.
    pub speedup_vs_scalar: Option<f64>,
    /// As `speedup_vs_scalar`, against the family's baseline (scalar, first design: for the
    /// matmuls scalar `f32`), so design and ISA gains show together.
    pub speedup_vs_reference: Option<f64>,
    pub cpu: String,
    pub features: String,
    pub cores: usize,
    pub rustc: String,
    pub git_commit: String,
    pub git_dirty: bool,
    pub date: String,
}

impl BenchRow {
    /// The host columns as a [`Host`].
    pub fn host(&self) -> Host {
        Host {
            cpu: self.cpu.clone(),
            features: self.features.clone(),
            cores: self.cores,
            rustc: self.rustc.clone(),
            git_commit: self.git_commit.clone(),
            git_dirty: self.git_dirty,
            date: self.date.clone(),
        }
    }

    /// The columns that name what was measured (not how fast, not where): `compare` joins on
    /// these.
    pub fn key(&self) -> String {
        format!(
            "{} {} {} {} {} {}x{}x{} t{} {}",
            self.kernel,
            self.format,
            self.design,
            self.isa,
            self.shape,
            self.rows,
            self.k,
            self.n,
            self.threads,
            self.cache
        )
    }
}

/// Output forms of the rows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    Md,
    Csv,
    Jsonl,
}

impl OutputFormat {
    pub fn extension(self) -> &'static str {
        match self {
            OutputFormat::Md => "md",
            OutputFormat::Csv => "csv",
            OutputFormat::Jsonl => "jsonl",
        }
    }
}

/// `samples_ns` is a space-separated string in CSV (one cell) and an array in JSON lines.
fn samples_from_any<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<f64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Any {
        List(Vec<f64>),
        Text(String),
    }
    match Any::deserialize(d)? {
        Any::List(v) => Ok(v),
        Any::Text(s) => s
            .split_whitespace()
            .map(|t| t.parse::<f64>().map_err(serde::de::Error::custom))
            .collect(),
    }
}

/// Writes rows in `format`.
pub fn write_rows(rows: &[BenchRow], format: OutputFormat, out: &mut dyn Write) -> Result<()> {
    match format {
        OutputFormat::Md => write_md(rows, out),
        OutputFormat::Csv => write_csv(rows, out),
        OutputFormat::Jsonl => write_jsonl(rows, out),
    }
}

/// CSV with a header; `samples_ns` as one space-separated cell.
pub fn write_csv(rows: &[BenchRow], out: &mut dyn Write) -> Result<()> {
    let mut w = csv::Writer::from_writer(out);
    for (i, r) in rows.iter().enumerate() {
        // The csv crate cannot put a sequence in one cell: go through JSON's value model (in
        // struct order) with the samples joined into text.
        let mut v = serde_json::to_value(r)?;
        v["samples_ns"] = serde_json::Value::String(join_samples(&r.samples_ns));
        let obj = v.as_object().context("a row serialises to an object")?;
        if i == 0 {
            w.write_record(obj.keys())?;
        }
        w.write_record(obj.values().map(|v| match v {
            serde_json::Value::Null => String::new(),
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        }))?;
    }
    w.flush()?;
    Ok(())
}

fn join_samples(s: &[f64]) -> String {
    s.iter()
        .map(|v| format!("{v:.1}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// One JSON object per line.
pub fn write_jsonl(rows: &[BenchRow], out: &mut dyn Write) -> Result<()> {
    for r in rows {
        serde_json::to_writer(&mut *out, r)?;
        writeln!(out)?;
    }
    Ok(())
}

/// A markdown table: the host once on top, then one line per row.
pub fn write_md(rows: &[BenchRow], out: &mut dyn Write) -> Result<()> {
    let mut hosts: Vec<Host> = Vec::new();
    for r in rows {
        let h = r.host();
        if !hosts
            .iter()
            .any(|x| x.cpu == h.cpu && x.git_commit == h.git_commit)
        {
            hosts.push(h);
        }
    }
    for h in &hosts {
        writeln!(
            out,
            "Host: {} | {} cores | {} | {} | commit {}{} | {}\n",
            h.cpu,
            h.cores,
            h.features,
            h.rustc,
            h.git_commit,
            if h.git_dirty { " (dirty)" } else { "" },
            h.date
        )?;
    }
    writeln!(out, "{}", md_header())?;
    for r in rows {
        writeln!(out, "{}", md_line(r))?;
    }
    Ok(())
}

pub fn md_header() -> String {
    "| kernel | format | design | isa | shape | rows x k x n | thr | cache | median | 95% CI | min | GB/s | GFLOP/s | roof | bound | x scalar | x ref | reps (outliers) |\n\
     |---|---|---|---|---|---|---:|---|---:|---|---:|---:|---:|---:|---|---:|---:|---:|"
        .to_string()
}

pub fn md_line(r: &BenchRow) -> String {
    let x = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.2}"));
    format!(
        "| {} | {} | {} | {} | {} | {}x{}x{} | {} | {} | {} | {}..{} | {} | {:.1} | {:.1} | {:.0}% | {} | {} | {} | {}{} |",
        r.kernel,
        r.format,
        r.design,
        r.isa,
        r.shape,
        r.rows,
        r.k,
        r.n,
        r.threads,
        r.cache,
        fmt_ns(r.median_ns),
        fmt_ns(r.ci95_lo_ns),
        fmt_ns(r.ci95_hi_ns),
        fmt_ns(r.min_ns),
        r.gb_per_s,
        r.gflop_per_s,
        100.0 * r.roofline_fraction,
        r.bound,
        x(r.speedup_vs_scalar),
        x(r.speedup_vs_reference),
        r.reps,
        if r.outliers > 0 {
            format!(" ({} !)", r.outliers)
        } else {
            String::new()
        }
    )
}

/// A duration in the unit that reads best.
pub fn fmt_ns(ns: f64) -> String {
    if ns >= 1e9 {
        format!("{:.2} s", ns / 1e9)
    } else if ns >= 1e6 {
        format!("{:.2} ms", ns / 1e6)
    } else if ns >= 1e3 {
        format!("{:.1} us", ns / 1e3)
    } else {
        format!("{ns:.0} ns")
    }
}

/// Reads bench rows from a CSV or JSON-lines file (by extension; content sniffed otherwise).
pub fn read_rows(path: &Path) -> Result<Vec<BenchRow>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    parse_rows(&text).with_context(|| format!("in {}", path.display()))
}

/// Parses bench rows from CSV or JSON-lines text.
pub fn parse_rows(text: &str) -> Result<Vec<BenchRow>> {
    let first = text.trim_start();
    if first.starts_with('{') {
        let mut rows = Vec::new();
        for (i, line) in text.as_bytes().lines().enumerate() {
            let line = line?;
            if line.trim().is_empty() {
                continue;
            }
            rows.push(serde_json::from_str(&line).with_context(|| format!("line {}", i + 1))?);
        }
        Ok(rows)
    } else if first.starts_with("kernel,") {
        let mut r = csv::Reader::from_reader(text.as_bytes());
        let mut rows = Vec::new();
        for (i, rec) in r.deserialize().enumerate() {
            rows.push(rec.with_context(|| format!("record {}", i + 1))?);
        }
        Ok(rows)
    } else {
        bail!("not a bench CSV (header starting `kernel,`) or JSON-lines file")
    }
}

#[cfg(test)]
pub(crate) fn sample_row() -> BenchRow {
    BenchRow {
        kernel: "matmul_q4k".into(),
        format: "q4_K".into(),
        design: "q8k".into(),
        isa: "avx2".into(),
        shape: "tinyllama.attn_q".into(),
        rows: 2048,
        k: 2048,
        n: 1,
        threads: 1,
        cache: "cold".into(),
        reps: 3,
        median_ns: 200.0,
        min_ns: 190.0,
        mean_ns: 201.0,
        stddev_ns: 5.5,
        ci95_lo_ns: 190.0,
        ci95_hi_ns: 210.5,
        outliers: 0,
        samples_ns: vec![190.0, 200.0, 213.0],
        bytes: 1000,
        flops: 8000,
        gb_per_s: 5.0,
        gflop_per_s: 40.0,
        mem_roof_gb_per_s: 20.0,
        compute_roof_gflop_per_s: 100.0,
        roofline_fraction: 0.4,
        bound: "memory".into(),
        speedup_vs_scalar: Some(4.5),
        speedup_vs_reference: None,
        cpu: "Test CPU, 3.0 GHz".into(),
        features: "avx2 fma".into(),
        cores: 2,
        rustc: "rustc 1.95.0".into(),
        git_commit: "abc".into(),
        git_dirty: true,
        date: "2026-01-01T00:00:00Z".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_and_jsonl_round_trip() {
        let rows = vec![sample_row(), {
            let mut r = sample_row();
            r.speedup_vs_reference = Some(1.25);
            r.cpu = "cpu with \"quotes\", commas".into();
            r
        }];
        for f in [OutputFormat::Csv, OutputFormat::Jsonl] {
            let mut buf = Vec::new();
            write_rows(&rows, f, &mut buf).unwrap();
            let back = parse_rows(std::str::from_utf8(&buf).unwrap()).unwrap();
            assert_eq!(back, rows, "{f:?}");
        }
    }

    #[test]
    fn garbage_is_a_clear_error() {
        let e = parse_rows("hello,world\n1,2\n").unwrap_err();
        assert!(e.to_string().contains("not a bench CSV"), "{e}");
        assert!(parse_rows("{\"kernel\": 3}\n").is_err());
    }
}
