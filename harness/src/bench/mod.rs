//! `harness bench`: every kernel variant side by side on the model shapes, alternated within each
//! repetition after a warm-up ([`timing`]), held against the machine's measured limits
//! ([`probes`]), one tidy [`BenchRow`] per measurement.
//!
//! This module owns the run: which groups exist (family x workload x threads x cache mode), the
//! limits measured once per run, and the derived columns (bandwidth, roofline fraction, bound,
//! speedups). Data goes to the caller's writer; progress and skips go to stderr.

pub mod cli;
pub mod probes;
pub mod timing;
pub mod variants;
pub mod workloads;

use crate::host::Host;
use crate::record::BenchRow;
use crate::stats::Summary;
use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use kernels::Isa;
use probes::ComputeKind;
use rayon::ThreadPool;
use std::collections::HashMap;
use std::time::Duration;
use timing::TimingConfig;
use variants::{FamilyKind, Kernel, Variant};
use workloads::{GroupInputs, Workload};

/// Whether matmul weights are re-read from DRAM each call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum CacheMode {
    Hot,
    Cold,
}

impl CacheMode {
    pub fn name(self) -> &'static str {
        match self {
            CacheMode::Hot => "hot",
            CacheMode::Cold => "cold",
        }
    }
}

/// What to run.
#[derive(Clone, Debug)]
pub struct BenchConfig {
    /// Families by name; empty = all. `matmul` and `ops` name groups of families.
    pub kernels: Vec<String>,
    /// ISAs; empty = every one this CPU runs.
    pub isas: Vec<Isa>,
    /// Designs (`f32`, `q8k`, `flash`); empty = all.
    pub designs: Vec<String>,
    pub workloads: Vec<Workload>,
    /// Thread counts for the matmuls (attention and ops run on one thread).
    pub threads: Vec<usize>,
    pub timing: TimingConfig,
    /// `None`: cold for n = 1 matmuls, hot otherwise.
    pub cache: Option<CacheMode>,
    pub seed: u64,
}

/// The limits measured once per run.
#[derive(Clone, Debug, Default)]
pub struct Limits {
    /// Last-level cache size in bytes (from sysfs; 32 MiB if unknown).
    pub llc_bytes: usize,
    /// DRAM read bandwidth (GB/s) per thread count.
    pub dram: HashMap<usize, f64>,
    /// Read bandwidth of a buffer half the size of the last-level cache, per thread count.
    pub cache: HashMap<usize, f64>,
    /// Peak GFLOP/s (GOP/s) per (kind, ISA, threads).
    pub compute: HashMap<(ComputeKind, Isa, usize), f64>,
}

impl Limits {
    /// Lines for the log and the report header.
    pub fn describe(&self) -> Vec<String> {
        let mut lines = Vec::new();
        let mut t: Vec<_> = self.dram.keys().copied().collect();
        t.sort();
        for t in t {
            lines.push(format!(
                "read bandwidth, {t} thread(s): DRAM {:.1} GB/s, last-level cache {:.1} GB/s",
                self.dram[&t],
                self.cache.get(&t).copied().unwrap_or(f64::NAN)
            ));
        }
        let mut c: Vec<_> = self.compute.iter().collect();
        c.sort_by_key(|((k, i, t), _)| (k.name(), *i, *t));
        for ((k, i, t), v) in c {
            lines.push(format!("peak {} {i}, {t} thread(s): {v:.1} G/s", k.name()));
        }
        lines
    }
}

fn llc_bytes() -> usize {
    let parse = |s: &str| -> Option<usize> {
        let s = s.trim();
        let (num, mul) = match s.strip_suffix('K') {
            Some(n) => (n, 1 << 10),
            None => match s.strip_suffix('M') {
                Some(n) => (n, 1 << 20),
                None => (s, 1),
            },
        };
        num.parse::<usize>().ok().map(|n| n * mul)
    };
    (0..8)
        .filter_map(|i| {
            let dir = format!("/sys/devices/system/cpu/cpu0/cache/index{i}");
            let level = std::fs::read_to_string(format!("{dir}/level")).ok()?;
            let size = std::fs::read_to_string(format!("{dir}/size")).ok()?;
            Some((level.trim().parse::<u32>().ok()?, parse(&size)?))
        })
        .max()
        .map_or(32 << 20, |(_, s)| s)
}

/// Whether `bench` times the family. The RoPE table is built once per model in f64 with no ISA
/// variants: `verify` checks it, there is nothing per token to time.
pub fn is_benched(kernel: Kernel) -> bool {
    kernel != Kernel::RopeTable
}

/// Families `--kernel` names (`matmul`, `ops` and `quantize` name groups).
pub fn select_families(names: &[String]) -> Result<Vec<Kernel>> {
    if names.is_empty() {
        return Ok(Kernel::ALL.into_iter().filter(|k| is_benched(*k)).collect());
    }
    let mut out = Vec::new();
    for n in names {
        let add: Vec<Kernel> = match n.as_str() {
            "matmul" => Kernel::ALL.into_iter().filter(|k| k.is_matmul()).collect(),
            "quantize" => Kernel::ALL
                .into_iter()
                .filter(|k| k.name().starts_with("quantize"))
                .collect(),
            "ops" => Kernel::ALL
                .into_iter()
                .filter(|k| {
                    variants::kind(*k) == FamilyKind::Op
                        && !k.name().starts_with("quantize")
                        && is_benched(*k)
                })
                .collect(),
            name => match Kernel::from_name(name) {
                Some(f) if !is_benched(f) => bail!(
                    "`{name}` is built once per model (f64 angles, no ISA variants): `harness \
                     verify --kernel {name}` checks it, bench has nothing per token to time"
                ),
                Some(f) => vec![f],
                None => bail!(
                    "unknown kernel `{name}`; known: matmul, ops, quantize, {}",
                    Kernel::ALL.map(|f| f.name()).join(", ")
                ),
            },
        };
        for f in add {
            if !out.contains(&f) {
                out.push(f);
            }
        }
    }
    Ok(out)
}

/// One group: the variants timed against each other.
struct Group {
    family: Kernel,
    workload: Workload,
    threads: usize,
    cache: CacheMode,
    variants: Vec<Variant>,
}

fn plan(config: &BenchConfig, families: &[Kernel], log: &mut dyn FnMut(String)) -> Vec<Group> {
    let mut groups = Vec::new();
    for &family in families {
        let variants: Vec<Variant> = variants::variants_of(family)
            .into_iter()
            .filter(|v| config.isas.is_empty() || config.isas.contains(&v.isa))
            .filter(|v| {
                config.designs.is_empty() || config.designs.iter().any(|d| d == v.design.name())
            })
            .filter(|v| match v.unavailable_reason() {
                None => true,
                Some(reason) => {
                    if !config.isas.is_empty() {
                        log(format!("skipped {} {}: {reason}", family.name(), v.isa));
                    }
                    false
                }
            })
            .collect();
        if variants.is_empty() {
            continue;
        }
        for w in &config.workloads {
            if w.kind() != variants::kind(family) {
                continue;
            }
            if let Some(why) = workloads::unsupported(family, w) {
                log(format!(
                    "skipped {} on {} {:?}: {why}",
                    family.name(),
                    w.shape(),
                    w.rkn()
                ));
                continue;
            }
            let (_, _, n) = w.rkn();
            let threads: Vec<usize> = if family.is_matmul() {
                config.threads.clone()
            } else {
                vec![1]
            };
            let cache = match (variants::kind(family), config.cache) {
                (FamilyKind::Matmul, Some(c)) => c,
                (FamilyKind::Matmul, None) if n == 1 => CacheMode::Cold,
                _ => CacheMode::Hot,
            };
            for t in threads {
                groups.push(Group {
                    family,
                    workload: w.clone(),
                    threads: t,
                    cache,
                    variants: variants.clone(),
                });
            }
        }
    }
    groups
}

/// Runs the bench; returns the rows (in plan order) and the limits they were held to.
pub fn run(config: &BenchConfig) -> Result<(Vec<BenchRow>, Limits)> {
    if config.threads.is_empty() || config.threads.contains(&0) {
        bail!("--threads needs positive thread counts");
    }
    for isa in &config.isas {
        if let Some(reason) = isa.unavailable_reason() {
            bail!("--isa {isa} cannot run here: {reason}");
        }
    }
    let families = select_families(&config.kernels)?;
    let mut log = |s: String| eprintln!("bench: {s}");
    let groups = plan(config, &families, &mut log);
    if groups.is_empty() {
        bail!("nothing to run: no kernel variant of the selection runs on the chosen shapes");
    }
    let host = Host::detect();
    eprintln!(
        "bench: {} groups, {} variants in all; {} ({} cores), commit {}{}",
        groups.len(),
        groups.iter().map(|g| g.variants.len()).sum::<usize>(),
        host.cpu,
        host.cores,
        host.git_commit,
        if host.git_dirty { " (dirty)" } else { "" }
    );
    if let Some(&t) = config.threads.iter().find(|&&t| t > host.cores) {
        eprintln!(
            "bench: warning: {t} threads on {} cores; those rows measure oversubscription",
            host.cores
        );
    }
    let mut pools: HashMap<usize, ThreadPool> = HashMap::new();
    for &t in &config.threads {
        if t > 1 && !pools.contains_key(&t) {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(t)
                .thread_name(|i| format!("bench-{i}"))
                .build()
                .context("starting the thread pool")?;
            pools.insert(t, pool);
        }
    }
    let limits = measure_limits(&groups, &pools);
    for line in limits.describe() {
        eprintln!("bench: {line}");
    }

    let bar = ProgressBar::new(groups.len() as u64).with_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} groups ({elapsed}, ~{eta} left) {msg}")
            .expect("static template"),
    );
    let mut rows = Vec::new();
    for (gi, g) in groups.iter().enumerate() {
        let (r, k, n) = g.workload.rkn();
        bar.set_message(format!(
            "{} {} {r}x{k}x{n} t{} {}",
            g.family.name(),
            g.workload.shape(),
            g.threads,
            g.cache.name()
        ));
        let cold = (g.cache == CacheMode::Cold).then_some(8 * limits.llc_bytes);
        let inputs = GroupInputs::new(g.family, &g.workload, cold, config.seed ^ gi as u64);
        let pool = pools.get(&g.threads);
        let mut calls: Vec<timing::Call> = g
            .variants
            .iter()
            .map(|&v| inputs.call(v, g.threads, pool))
            .collect();
        let measured = timing::measure_group(&mut calls, &config.timing);
        drop(calls);
        let mut group_rows: Vec<BenchRow> = g
            .variants
            .iter()
            .zip(measured)
            .filter_map(|(v, m)| make_row(g, v, &m.samples_ns, &limits, &host))
            .collect();
        fill_speedups(&mut group_rows);
        rows.extend(group_rows);
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok((rows, limits))
}

/// The thread counts and (kind, ISA) pairs the groups need, each probed once.
fn measure_limits(groups: &[Group], pools: &HashMap<usize, ThreadPool>) -> Limits {
    let mut limits = Limits {
        llc_bytes: llc_bytes(),
        ..Limits::default()
    };
    let mut threads: Vec<usize> = groups.iter().map(|g| g.threads).collect();
    threads.sort();
    threads.dedup();
    let dram_bytes = (8 * limits.llc_bytes).max(256 << 20);
    for &t in &threads {
        let pool = pools.get(&t);
        eprintln!("bench: measuring read bandwidth with {t} thread(s)");
        limits
            .dram
            .insert(t, probes::read_bandwidth(dram_bytes, t, pool));
        limits
            .cache
            .insert(t, probes::read_bandwidth(limits.llc_bytes / 2, t, pool));
    }
    for g in groups {
        for v in &g.variants {
            let key = (variants::compute_kind(v.design), v.isa, g.threads);
            if let std::collections::hash_map::Entry::Vacant(e) = limits.compute.entry(key) {
                e.insert(probes::peak_compute(key.0, key.1, key.2, pools.get(&key.2)));
            }
        }
    }
    limits
}

fn make_row(
    g: &Group,
    v: &Variant,
    samples: &[f64],
    limits: &Limits,
    host: &Host,
) -> Option<BenchRow> {
    let s = Summary::of(samples)?;
    let (rows, k, n) = g.workload.rkn();
    let bytes = g.workload.bytes(v);
    let flops = g.workload.flops(v.kernel);
    let gb_per_s = bytes as f64 / s.median;
    let gflop_per_s = flops as f64 / s.median;
    // A hot working set that fits in the last-level cache is held to the cache's bandwidth;
    // anything else to DRAM's.
    let mem_roof = if g.cache == CacheMode::Hot && (bytes as usize) <= limits.llc_bytes {
        limits.cache[&g.threads]
    } else {
        limits.dram[&g.threads]
    };
    let compute_roof = limits.compute[&(variants::compute_kind(v.design), v.isa, g.threads)];
    let intensity = flops as f64 / bytes as f64;
    let memory_limit = mem_roof * intensity;
    let attainable = memory_limit.min(compute_roof);
    Some(BenchRow {
        kernel: v.kernel.name().into(),
        format: variants::format(v.kernel, v.design).into(),
        design: v.design.name().into(),
        isa: v.isa.name().into(),
        shape: g.workload.shape().into(),
        rows,
        k,
        n,
        threads: g.threads,
        cache: g.cache.name().into(),
        reps: samples.len(),
        median_ns: s.median,
        min_ns: s.min,
        mean_ns: s.mean,
        stddev_ns: s.stddev,
        ci95_lo_ns: s.ci95_lo,
        ci95_hi_ns: s.ci95_hi,
        outliers: s.outliers,
        samples_ns: samples.to_vec(),
        bytes,
        flops,
        gb_per_s,
        gflop_per_s,
        mem_roof_gb_per_s: mem_roof,
        compute_roof_gflop_per_s: compute_roof,
        roofline_fraction: gflop_per_s / attainable,
        bound: if memory_limit < compute_roof {
            "memory"
        } else {
            "compute"
        }
        .into(),
        speedup_vs_scalar: None,
        speedup_vs_reference: None,
        cpu: host.cpu.clone(),
        features: host.features.clone(),
        cores: host.cores,
        rustc: host.rustc.clone(),
        git_commit: host.git_commit.clone(),
        git_dirty: host.git_dirty,
        date: host.date.clone(),
    })
}

/// Speedups within one group: against scalar of the same format and design, and against the
/// family's baseline (scalar, first format/design).
fn fill_speedups(rows: &mut [BenchRow]) {
    let Some(first) = rows.first() else { return };
    let baseline = Kernel::from_name(&first.kernel).and_then(|k| {
        let d = *k.designs().first()?;
        Some((variants::format(k, d), d.name()))
    });
    let scalar_of = |rows: &[BenchRow], format: &str, design: &str| {
        rows.iter()
            .find(|r| r.isa == "scalar" && r.format == format && r.design == design)
            .map(|r| r.median_ns)
    };
    let reference = baseline.and_then(|(f, d)| scalar_of(rows, f, d));
    let scalars: Vec<Option<f64>> = rows
        .iter()
        .map(|r| scalar_of(rows, &r.format, &r.design))
        .collect();
    for (r, s) in rows.iter_mut().zip(scalars) {
        r.speedup_vs_scalar = s.map(|s| s / r.median_ns);
        r.speedup_vs_reference = reference.map(|b| b / r.median_ns);
    }
}

/// The default timing: 10 samples of at least 10 ms, 0.2 s warm-up, 5 s per variant.
pub fn default_timing() -> TimingConfig {
    TimingConfig {
        reps: 10,
        min_time: Duration::from_millis(10),
        warmup: Duration::from_millis(200),
        max_time: Duration::from_secs(5),
    }
}
