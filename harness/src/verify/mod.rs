//! `harness verify`: the correctness gate.
//!
//! Every kernel variant is checked against two oracles on property-generated cases:
//! 1. each SIMD variant against `scalar` on identical inputs (bit-exact where the math is integer,
//!    else within twice the floating-point error bound);
//! 2. every variant, `scalar` included, against the `reference` crate's f64 computation within an
//!    error bound derived and written beside each check.
//!
//! Cases are small descriptors (shape, content style, content seed) from which the inputs are
//! generated deterministically, so proptest shrinks a failure to the smallest descriptor and the
//! printed case reproduces it exactly.

pub mod attention;
pub mod block32;
pub mod bounds;
pub mod matmul;
pub mod model;
pub mod ops;
pub mod oracle;
pub mod planted32;
pub mod qemu;
pub mod quantizers;
pub mod select;
pub mod selftest;

use crate::registry::{Design, Kernel};
use anyhow::{bail, Result};
use indicatif::{ProgressBar, ProgressStyle};
use kernels::Isa;
use proptest::strategy::Strategy;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestError, TestRng, TestRunner};
use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt::Debug;
use std::hash::Hash;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// What to run.
#[derive(Clone, Debug)]
pub struct VerifyConfig {
    /// Kernel families to run (`matmul_q4k`, ...); empty = all.
    pub kernels: Vec<String>,
    /// ISAs to run; empty = all (those this CPU lacks are reported SKIPPED).
    pub isas: Vec<Isa>,
    /// Property cases per variant.
    pub cases: u32,
    /// Seed of the case generator; the same seed gives the same cases.
    pub seed: u64,
    /// On x86_64, check the NEON rows with their kernel calls run by the aarch64 build under
    /// qemu (see [`qemu`]).
    pub neon_under_qemu: bool,
}

impl VerifyConfig {
    pub fn wants_kernel(&self, name: &str) -> bool {
        self.kernels.is_empty() || self.kernels.iter().any(|k| k == name)
    }

    pub fn wants(&self, kernel: Kernel) -> bool {
        self.wants_kernel(kernel.name())
    }

    pub fn wants_isa(&self, isa: Isa) -> bool {
        self.isas.is_empty() || self.isas.contains(&isa)
    }
}

/// Every kernel family `verify` knows, for `--kernel` validation and listing.
pub const KERNELS: [Kernel; 19] = Kernel::ALL;

/// This build's id: the commit and a hash of the sources (see `build.rs`). Every CSV row
/// carries it; the NEON rows of the aarch64 build are trusted only with the same id.
pub const BUILD_ID: &str = env!("HARNESS_BUILD_ID");

/// Error statistics of one variant against the reference, over all its cases.
#[derive(Clone, Debug, Default)]
pub struct Metrics {
    pub max_abs: f64,
    /// Max of |err| / scale, where scale is the output's condition magnitude (for a dot product,
    /// sum |w_i x_i|), so that outputs near zero through cancellation do not read as huge errors.
    pub max_rel: f64,
    /// Largest |err| / bound seen: how close the variant came to failing (must stay <= 1).
    pub max_bound_use: f64,
    sum_sq_err: f64,
    sum_sq_ref: f64,
    dot: f64,
    sum_sq_got: f64,
    pub outputs: u64,
}

impl Metrics {
    /// Records one output. Returns an error description when |err| exceeds `bound`.
    pub fn record(&mut self, got: f64, want: f64, scale: f64, bound: f64) -> Result<(), String> {
        let err = (got - want).abs();
        if !got.is_finite() || err > bound {
            return Err(format!(
                "got {got:e}, reference {want:e}, |err| {err:e} > bound {bound:e}"
            ));
        }
        self.max_abs = self.max_abs.max(err);
        if scale > 0.0 {
            self.max_rel = self.max_rel.max(err / scale);
        }
        if bound > 0.0 {
            self.max_bound_use = self.max_bound_use.max(err / bound);
        }
        self.sum_sq_err += err * err;
        self.sum_sq_ref += want * want;
        self.sum_sq_got += got * got;
        self.dot += got * want;
        self.outputs += 1;
        Ok(())
    }

    /// Metrics carried over from a report (another process's CSV row): the aggregates are set so
    /// that `nmse()` and `cosine()` return the given values.
    pub fn from_summary(
        max_abs: f64,
        max_rel: f64,
        nmse: f64,
        cosine: f64,
        bound_use: f64,
    ) -> Self {
        Metrics {
            max_abs,
            max_rel,
            max_bound_use: bound_use,
            sum_sq_err: nmse,
            sum_sq_ref: 1.0,
            dot: cosine,
            sum_sq_got: 1.0,
            outputs: 0,
        }
    }

    pub fn merge(&mut self, other: &Metrics) {
        self.max_abs = self.max_abs.max(other.max_abs);
        self.max_rel = self.max_rel.max(other.max_rel);
        self.max_bound_use = self.max_bound_use.max(other.max_bound_use);
        self.sum_sq_err += other.sum_sq_err;
        self.sum_sq_ref += other.sum_sq_ref;
        self.sum_sq_got += other.sum_sq_got;
        self.dot += other.dot;
        self.outputs += other.outputs;
    }

    /// Normalised mean squared error: sum err^2 / sum ref^2.
    pub fn nmse(&self) -> f64 {
        if self.sum_sq_ref > 0.0 {
            self.sum_sq_err / self.sum_sq_ref
        } else {
            self.sum_sq_err
        }
    }

    /// Cosine similarity between all outputs and all reference values.
    pub fn cosine(&self) -> f64 {
        let denom = (self.sum_sq_got * self.sum_sq_ref).sqrt();
        if denom > 0.0 {
            self.dot / denom
        } else {
            1.0
        }
    }
}

/// Outcome of one variant.
#[derive(Clone, Debug, PartialEq)]
pub enum Status {
    Pass,
    Fail,
    Skipped(String),
}

/// One line of the report: a kernel x design x ISA variant.
#[derive(Clone, Debug)]
pub struct Row {
    pub kernel: Kernel,
    pub design: Design,
    pub isa: Isa,
    pub cases: u32,
    pub metrics: Metrics,
    pub status: Status,
    /// The failure (seed, shrunk case, first mismatch) or the skip reason.
    pub note: String,
    /// Wall time the row took, in seconds (for a NEON row from qemu, the emulated run's own).
    pub secs: f64,
}

impl Row {
    /// The kernel x design x ISA this row checked.
    pub fn variant(&self) -> crate::registry::Variant {
        crate::registry::Variant {
            kernel: self.kernel,
            design: self.design,
            isa: self.isa,
        }
    }

    pub fn skipped(kernel: Kernel, design: Design, isa: Isa, reason: &str) -> Row {
        Row {
            kernel,
            design,
            isa,
            cases: 0,
            metrics: Metrics::default(),
            status: Status::Skipped(reason.into()),
            note: reason.into(),
            secs: 0.0,
        }
    }

    pub fn status_str(&self) -> &'static str {
        match self.status {
            Status::Pass => "PASS",
            Status::Fail => "FAIL",
            Status::Skipped(_) => "SKIPPED",
        }
    }
}

thread_local! {
    /// The progress bar of the variant being checked (hidden when stderr is not a terminal).
    static PROGRESS: RefCell<Option<ProgressBar>> = const { RefCell::new(None) };
}

fn tick_progress() {
    PROGRESS.with(|p| {
        if let Some(bar) = p.borrow().as_ref() {
            bar.inc(1);
        }
    });
}

/// The report row of a variant that ran: PASS with the oracles it was held to, or FAIL with
/// the seed and the shrunk case.
pub(crate) fn row(
    kernel: Kernel,
    design: Design,
    isa: Isa,
    cases: u32,
    outcome: PropertyOutcome,
) -> Row {
    row_with_note(kernel, design, isa, cases, outcome, |isa| {
        if isa == Isa::Scalar {
            "vs reference"
        } else {
            "vs reference and scalar"
        }
    })
}

/// As [`row`], with the PASS note chosen by `oracles`.
pub(crate) fn row_with_note(
    kernel: Kernel,
    design: Design,
    isa: Isa,
    cases: u32,
    outcome: PropertyOutcome,
    oracles: impl Fn(Isa) -> &'static str,
) -> Row {
    let (status, note) = match outcome.failure {
        None => (Status::Pass, oracles(isa).to_string()),
        Some(f) => (Status::Fail, f),
    };
    Row {
        kernel,
        design,
        isa,
        cases,
        metrics: outcome.metrics,
        status,
        note,
        secs: 0.0,
    }
}

/// The outcome of running one property over its cases.
pub struct PropertyOutcome {
    pub metrics: Metrics,
    /// `Some(description)` when a case failed: seed, shrunk case and what went wrong.
    pub failure: Option<String>,
}

/// Runs `check` on `cases` cases drawn from `strategy` with a runner seeded from `seed`;
/// on failure proptest shrinks to a minimal case, which is returned with the reason.
pub fn run_property<S>(
    strategy: S,
    cases: u32,
    seed: u64,
    check: impl Fn(&S::Value) -> Result<Metrics, String>,
) -> PropertyOutcome
where
    S: Strategy,
    S::Value: Debug,
{
    let config = Config {
        cases,
        failure_persistence: None,
        // Shrinking re-runs the check; bound the effort so a failing variant reports quickly.
        max_shrink_iters: 2048,
        ..Config::default()
    };
    let mut seed_bytes = [0u8; 32];
    seed_bytes[..8].copy_from_slice(&seed.to_le_bytes());
    let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &seed_bytes);
    let mut runner = TestRunner::new_with_rng(config, rng);
    let total = RefCell::new(Metrics::default());
    let result = runner.run(&strategy, |case| {
        tick_progress();
        let m = check(&case).map_err(TestCaseError::fail)?;
        total.borrow_mut().merge(&m);
        Ok(())
    });
    let failure = match result {
        Ok(()) => None,
        Err(TestError::Fail(reason, case)) => Some(format!(
            "seed {seed}: smallest failing case {case:?}: {reason}"
        )),
        Err(TestError::Abort(reason)) => Some(format!("seed {seed}: aborted: {reason}")),
    };
    PropertyOutcome {
        metrics: total.into_inner(),
        failure,
    }
}

/// NEON worker threads on x86_64, each with its own kernel server under qemu: two, as this
/// machine class has two cores and the emulated kernel calls are the longest part of the run.
const NEON_WORKERS: usize = 2;

/// Runs every selected family; rows are printed as they complete (the progress of a long run).
/// On x86_64 the NEON rows run on worker threads whose NEON kernel calls go to the aarch64
/// build under qemu ([`qemu`]), beside the native rows; the returned rows (and so the CSV)
/// keep the families' order.
pub fn run(config: &VerifyConfig, out: &mut dyn Write) -> Result<Vec<Row>> {
    for k in &config.kernels {
        if Kernel::from_name(k).is_none() {
            let known: Vec<&str> = KERNELS.iter().map(|k| k.name()).collect();
            bail!("unknown kernel `{k}`; known: {}", known.join(", "));
        }
    }
    writeln!(out, "{}", header())?;
    let mut emit = |row: &Row| -> Result<()> {
        writeln!(out, "{}", format_row(row))?;
        out.flush()?;
        Ok(())
    };
    let jobs: Vec<Job> = matmul::families(config)
        .into_iter()
        .chain(block32::families(config))
        .chain(attention::families(config))
        .chain(ops::families(config))
        .chain(quantizers::families(config))
        .collect();
    let wants_emulated_neon = config.neon_under_qemu
        && !Isa::Neon.is_available()
        && jobs.iter().any(|j| j.isa == Isa::Neon);
    let (servers, qemu_unavailable) = if wants_emulated_neon {
        start_servers()
    } else {
        (Vec::new(), None)
    };
    let mut rows: Vec<Option<Row>> = vec![None; jobs.len()];
    let mut native = Vec::new();
    let mut emulated = std::collections::VecDeque::new();
    for (i, job) in jobs.into_iter().enumerate() {
        if job.isa == Isa::Neon && !servers.is_empty() {
            emulated.push_back((i, job));
        } else {
            native.push((i, job));
        }
    }
    let pending = emulated.len();
    let queue = Mutex::new(emulated);
    let (done, finished) = std::sync::mpsc::channel::<(usize, Result<Row>)>();
    std::thread::scope(|scope| -> Result<()> {
        for server in servers {
            let (queue, done) = (&queue, done.clone());
            scope.spawn(move || {
                qemu::with_server(Some(server), || loop {
                    let next = queue.lock().unwrap_or_else(|e| e.into_inner()).pop_front();
                    let Some((i, job)) = next else { break };
                    let started = Instant::now();
                    let row = job.run().map(|mut row| {
                        row.secs = started.elapsed().as_secs_f64();
                        if !matches!(row.status, Status::Skipped(_)) {
                            row.note = format!("qemu-aarch64: {}", row.note);
                        }
                        row
                    });
                    if done.send((i, row)).is_err() {
                        break;
                    }
                })
            });
        }
        drop(done);
        // On an error, the workers stop after their current row.
        let abandon = || queue.lock().unwrap_or_else(|e| e.into_inner()).clear();
        let style =
            ProgressStyle::with_template("{spinner} verify: {pos} cases checked ({elapsed}) {msg}")
                .expect("static template");
        let mut received = 0;
        for (i, job) in native {
            let bar = ProgressBar::new_spinner().with_style(style.clone());
            PROGRESS.with(|p| *p.borrow_mut() = Some(bar.clone()));
            let started = Instant::now();
            let result = job.run();
            bar.finish_and_clear();
            PROGRESS.with(|p| *p.borrow_mut() = None);
            let mut row = result.inspect_err(|_| abandon())?;
            row.secs = started.elapsed().as_secs_f64();
            if let (Some(reason), Isa::Neon, Status::Skipped(_)) =
                (&qemu_unavailable, row.isa, &row.status)
            {
                row.note = format!("{}; {reason}", row.note);
                row.status = Status::Skipped(row.note.clone());
            }
            emit(&row)?;
            rows[i] = Some(row);
            while let Ok((i, row)) = finished.try_recv() {
                let row = row.inspect_err(|_| abandon())?;
                emit(&row)?;
                rows[i] = Some(row);
                received += 1;
            }
        }
        if received < pending {
            let bar = ProgressBar::new_spinner()
                .with_style(
                    ProgressStyle::with_template("{spinner} verify: {msg} ({elapsed})")
                        .expect("static template"),
                )
                .with_message(format!(
                    "{} NEON rows to go (kernels under qemu-aarch64)",
                    pending - received
                ));
            bar.enable_steady_tick(std::time::Duration::from_millis(200));
            for (i, row) in finished.iter() {
                let row = row.inspect_err(|_| abandon())?;
                bar.suspend(|| emit(&row))?;
                rows[i] = Some(row);
                received += 1;
                bar.set_message(format!(
                    "{} NEON rows to go (kernels under qemu-aarch64)",
                    pending - received
                ));
            }
            bar.finish_and_clear();
        }
        Ok(())
    })?;
    rows.into_iter()
        .map(|r| {
            r.ok_or_else(|| anyhow::anyhow!("a NEON worker stopped before its rows were done"))
        })
        .collect()
}

/// The kernel servers for the NEON workers, or why there are none.
fn start_servers() -> (Vec<qemu::Server>, Option<String>) {
    match qemu::Server::start() {
        Err(reason) => (Vec::new(), Some(reason)),
        Ok(first) => {
            let mut servers = vec![first];
            while servers.len() < NEON_WORKERS {
                match qemu::Server::start() {
                    Ok(s) => servers.push(s),
                    Err(_) => break,
                }
            }
            (servers, None)
        }
    }
}

/// One row's work, deferred so rows can be printed as they finish, tagged with its ISA (the
/// NEON rows of an x86_64 run go to the workers whose kernel calls run under qemu).
pub struct Job {
    pub isa: Isa,
    work: Box<dyn FnOnce() -> Result<Row> + Send>,
}

impl Job {
    pub fn new(isa: Isa, work: impl FnOnce() -> Result<Row> + Send + 'static) -> Job {
        Job {
            isa,
            work: Box::new(work),
        }
    }

    pub fn run(self) -> Result<Row> {
        (self.work)()
    }
}

fn header() -> String {
    format!(
        "{:<14} {:<11} {:<7} {:>6} {:>11} {:>11} {:>11} {:>10} {:>9} {:>7} {:<7} note",
        "kernel",
        "design",
        "isa",
        "cases",
        "max_abs",
        "max_rel",
        "nmse",
        "cosine",
        "bound_use",
        "secs",
        "status"
    )
}

pub fn format_row(row: &Row) -> String {
    let m = &row.metrics;
    let nums = if matches!(row.status, Status::Skipped(_)) {
        format!(
            "{:>11} {:>11} {:>11} {:>10} {:>9} {:>7}",
            "-", "-", "-", "-", "-", "-"
        )
    } else {
        format!(
            "{:>11.3e} {:>11.3e} {:>11.3e} {:>10.8} {:>9.3} {:>7.2}",
            m.max_abs,
            m.max_rel,
            m.nmse(),
            m.cosine(),
            m.max_bound_use,
            row.secs
        )
    };
    format!(
        "{:<14} {:<11} {:<7} {:>6} {} {:<7} {}",
        row.kernel.name(),
        row.design.name(),
        row.isa.name(),
        row.cases,
        nums,
        row.status_str(),
        row.note
    )
}

/// One CSV row: what `--csv` writes and what the NEON run under qemu is read back from (the
/// one record type for both directions).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RowRecord {
    pub kernel: Kernel,
    pub design: Design,
    pub isa: String,
    pub cases: u32,
    pub max_abs_err: f64,
    pub max_rel_err: f64,
    pub nmse: f64,
    pub cosine: f64,
    pub bound_use: f64,
    /// Wall time of the row in seconds (0 when SKIPPED; absent in reports from before it).
    #[serde(default)]
    pub secs: f64,
    /// PASS, FAIL or SKIPPED.
    pub status: String,
    pub note: String,
    /// The [`BUILD_ID`] of the binary that produced the row.
    pub build: String,
}

impl RowRecord {
    pub fn from_row(r: &Row) -> RowRecord {
        let m = &r.metrics;
        RowRecord {
            kernel: r.kernel,
            design: r.design,
            isa: r.isa.name().to_string(),
            cases: r.cases,
            max_abs_err: m.max_abs,
            max_rel_err: m.max_rel,
            nmse: m.nmse(),
            cosine: m.cosine(),
            bound_use: m.max_bound_use,
            secs: r.secs,
            status: r.status_str().to_string(),
            note: r.note.clone(),
            build: BUILD_ID.to_string(),
        }
    }

    /// The row this record describes, or why it cannot be one.
    pub fn to_row(&self) -> Result<Row, String> {
        let isa = Isa::from_name(&self.isa).ok_or_else(|| format!("unknown ISA `{}`", self.isa))?;
        let status = match self.status.as_str() {
            "PASS" => Status::Pass,
            "FAIL" => Status::Fail,
            "SKIPPED" => Status::Skipped(self.note.clone()),
            other => return Err(format!("unknown status `{other}`")),
        };
        Ok(Row {
            kernel: self.kernel,
            design: self.design,
            isa,
            cases: self.cases,
            metrics: Metrics::from_summary(
                self.max_abs_err,
                self.max_rel_err,
                self.nmse,
                self.cosine,
                self.bound_use,
            ),
            status,
            note: self.note.clone(),
            secs: self.secs,
        })
    }
}

/// Writes the rows as CSV.
pub fn write_csv(rows: &[Row], path: &std::path::Path) -> Result<()> {
    let mut w = csv::Writer::from_path(path)?;
    for r in rows {
        w.serialize(RowRecord::from_row(r))?;
    }
    w.flush()?;
    Ok(())
}

pub use bounds::gamma_f32;

/// As [`run_property`], after first running `check` on every case of `fixed`: the real models'
/// parameters (TinyLlama's and SmolLM2's head counts, head sizes, rope bases, eps), which must be
/// among the cases every time rather than when the generator happens to draw them. A fixed case
/// that fails is reported as it stands (it is already the case of interest; nothing to shrink).
pub fn run_fixed_then_property<S>(
    fixed: &[S::Value],
    strategy: S,
    cases: u32,
    seed: u64,
    check: impl Fn(&S::Value) -> Result<Metrics, String>,
) -> PropertyOutcome
where
    S: Strategy,
    S::Value: Debug,
{
    let mut metrics = Metrics::default();
    for case in fixed {
        tick_progress();
        match check(case) {
            Ok(m) => metrics.merge(&m),
            Err(reason) => {
                return PropertyOutcome {
                    metrics,
                    failure: Some(format!("model case {case:?}: {reason}")),
                }
            }
        }
    }
    let mut outcome = run_property(strategy, cases, seed, check);
    outcome.metrics.merge(&metrics);
    outcome
}

/// One case's prepared work, filled by the first row that asks for it.
type Slot<V> = Arc<Mutex<Option<Arc<V>>>>;

/// Per-case work shared by the rows of one family and design: the generated inputs and the f64
/// reference results with their bounds. Every ISA row of a family draws the same cases from the
/// same seed, so each case is prepared once and every variant is checked against it; a case not
/// seen before (a shrunk one) is prepared when asked for. Two rows asking for the same case at
/// once share one preparation (the second waits for it). Dropped with the family's last row.
pub struct Memo<K, V> {
    map: Mutex<HashMap<K, Slot<V>>>,
}

impl<K: Hash + Eq + Clone, V> Default for Memo<K, V> {
    fn default() -> Self {
        Memo {
            map: Mutex::new(HashMap::new()),
        }
    }
}

impl<K: Hash + Eq + Clone, V> Memo<K, V> {
    /// The prepared work of `key`, made by `make` the first time. A failed preparation is not
    /// kept (the next row asking reports the same failure by making it again).
    pub fn get_or_try(
        &self,
        key: &K,
        make: impl FnOnce() -> Result<V, String>,
    ) -> Result<Arc<V>, String> {
        let slot = {
            let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
            map.entry(key.clone()).or_default().clone()
        };
        let mut slot = slot.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(v) = slot.as_ref() {
            return Ok(v.clone());
        }
        let v = Arc::new(make()?);
        *slot = Some(v.clone());
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A kernel call that panics (as a NEON call does when its server fails) fails the case
    /// and is reported with its seed, rather than ending the run.
    #[test]
    fn a_panicking_check_fails_its_row() {
        let outcome = run_property(0u32..1000, 20, 7, |&v| {
            if v > 500 {
                panic!("NEON under qemu-aarch64: lost the qemu-aarch64 server");
            }
            Ok(Metrics::default())
        });
        let failure = outcome.failure.expect("the panic fails the property");
        assert!(failure.contains("seed 7"), "{failure}");
        assert!(
            failure.contains("lost the qemu-aarch64 server"),
            "{failure}"
        );
    }
}
