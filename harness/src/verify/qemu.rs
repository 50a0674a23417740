//! The NEON rows on an x86_64 machine: the aarch64 build of this harness, run under
//! `qemu-aarch64`, checks them while the x86 rows run, and its rows join the report.
//!
//! The aarch64 binary is the one `scripts/neon.sh` builds next to this one
//! (`target/aarch64-unknown-linux-gnu/<profile>/harness`, or `$HARNESS_AARCH64_BIN`). Its rows
//! are used only when they carry this binary's build id (commit and source hash, `build.rs`):
//! a build of other sources would vouch for code this one does not contain.

use super::{Row, RowRecord, Status, VerifyConfig, BUILD_ID};
use crate::registry::{Design, Kernel};
use kernels::Isa;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// The aarch64 sysroot qemu loads the dynamic linker and libc from.
const SYSROOT: &str = "/usr/aarch64-linux-gnu";

/// The NEON rows of one `verify` run, fetched from qemu once and handed out per variant.
pub enum NeonRun {
    /// Nothing to do: NEON not asked for, or this is an aarch64 build (NEON runs natively).
    NotNeeded,
    /// Why NEON cannot be checked from here.
    Unavailable(String),
    /// One qemu process per share of the kernel families (two: this machine class has two
    /// cores, and the x86 rows finish long before the emulated ones).
    Running(Vec<(Child, PathBuf)>),
    Done(Result<HashMap<(Kernel, Design), Row>, String>),
}

impl NeonRun {
    /// Starts the qemu run in the background when the config wants NEON and this is x86_64.
    pub fn start(config: &VerifyConfig) -> NeonRun {
        if !config.neon_under_qemu || !config.wants_isa(Isa::Neon) || Isa::Neon.is_available() {
            return NeonRun::NotNeeded;
        }
        let wanted: Vec<String> = if config.kernels.is_empty() {
            super::KERNELS
                .iter()
                .map(|k| k.name().to_string())
                .collect()
        } else {
            config.kernels.clone()
        };
        // The matmuls are about half of the emulated work.
        let (matmuls, rest): (Vec<String>, Vec<String>) =
            wanted.into_iter().partition(|k| k.starts_with("matmul"));
        let mut children = Vec::new();
        for (i, share) in [matmuls, rest].into_iter().enumerate() {
            if share.is_empty() {
                continue;
            }
            match spawn(config, &share, i) {
                Ok(child) => children.push(child),
                Err(reason) => {
                    for (mut child, csv) in children {
                        let _ = child.kill();
                        let _ = child.wait();
                        let _ = std::fs::remove_file(csv);
                    }
                    return NeonRun::Unavailable(reason);
                }
            }
        }
        NeonRun::Running(children)
    }

    /// Whether qemu processes were started whose rows are still to be collected.
    pub fn is_running(&self) -> bool {
        matches!(self, NeonRun::Running(_))
    }

    /// The row for `skipped` (a NEON row this process could not run): the qemu result when
    /// there is one, else `skipped` with the reason qemu could not provide it.
    pub fn row_for(&mut self, skipped: Row) -> Row {
        if let NeonRun::Running(children) = self {
            let mut all = HashMap::new();
            let mut failure = None;
            for (child, csv) in children.iter_mut() {
                match finish(child, csv) {
                    Ok(rows) => all.extend(rows),
                    Err(reason) => failure = Some(reason),
                }
            }
            *self = NeonRun::Done(match failure {
                None => Ok(all),
                Some(reason) => Err(reason),
            });
        }
        let reason = match self {
            NeonRun::NotNeeded => return skipped,
            NeonRun::Unavailable(reason) => reason.clone(),
            NeonRun::Done(Ok(rows)) => match rows.get(&(skipped.kernel, skipped.design)) {
                Some(row) => return row.clone(),
                None => "the aarch64 run produced no such row".into(),
            },
            NeonRun::Done(Err(reason)) => reason.clone(),
            NeonRun::Running(_) => unreachable!("finished above"),
        };
        let mut row = skipped;
        row.note = format!("{}; {reason}", row.note);
        row.status = Status::Skipped(row.note.clone());
        row
    }
}

fn aarch64_binary() -> Result<PathBuf, String> {
    let this = std::env::current_exe().map_err(|e| format!("cannot locate this binary: {e}"))?;
    if let Some(path) = std::env::var_os("HARNESS_AARCH64_BIN") {
        return Ok(PathBuf::from(path));
    }
    let profile_dir = this.parent().ok_or("this binary has no parent folder")?;
    let profile = profile_dir.file_name().ok_or("no profile folder")?;
    let target_dir = profile_dir.parent().ok_or("no target folder")?;
    Ok(target_dir
        .join("aarch64-unknown-linux-gnu")
        .join(profile)
        .join("harness"))
}

fn spawn(
    config: &VerifyConfig,
    kernels: &[String],
    share: usize,
) -> Result<(Child, PathBuf), String> {
    let bin = aarch64_binary()?;
    if !bin.exists() {
        return Err(format!(
            "no aarch64 build at {} (build it: scripts/neon.sh)",
            bin.display()
        ));
    }
    let csv = std::env::temp_dir().join(format!("harness-neon-{}-{share}.csv", std::process::id()));
    let mut cmd = Command::new("qemu-aarch64");
    cmd.arg("-L")
        .arg(SYSROOT)
        .arg(&bin)
        .args(["verify", "--isa", "neon", "--cases"])
        .arg(config.cases.to_string())
        .arg("--seed")
        .arg(config.seed.to_string())
        .arg("--csv")
        .arg(&csv)
        .arg("--kernel")
        .arg(kernels.join(","))
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let child = cmd.spawn().map_err(|e| {
        format!("cannot run qemu-aarch64 ({e}); install qemu-user: scripts/setup.sh")
    })?;
    Ok((child, csv))
}

fn finish(child: &mut Child, csv: &Path) -> Result<HashMap<(Kernel, Design), Row>, String> {
    let mut stderr = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        use std::io::Read;
        let _ = pipe.read_to_string(&mut stderr);
    }
    let status = child.wait().map_err(|e| format!("qemu-aarch64: {e}"))?;
    let rows = read_rows(csv);
    let _ = std::fs::remove_file(csv);
    match rows {
        Ok(rows) if !rows.is_empty() => Ok(rows),
        Ok(_) | Err(_) => Err(format!(
            "qemu-aarch64 run failed ({status}): {}",
            stderr.lines().last().unwrap_or("no output")
        )),
    }
}

/// The NEON rows of the aarch64 run's CSV. Each row must carry this build's id: the aarch64
/// binary was built from exactly these sources (and commit), or its rows vouch for nothing.
fn read_rows(csv: &Path) -> Result<HashMap<(Kernel, Design), Row>, String> {
    let mut reader = csv::Reader::from_path(csv).map_err(|e| e.to_string())?;
    let mut rows = HashMap::new();
    for record in reader.deserialize::<RowRecord>() {
        let record = record.map_err(|e| format!("unreadable NEON row: {e}"))?;
        if record.isa != Isa::Neon.name() {
            continue;
        }
        if record.build != BUILD_ID {
            return Err(format!(
                "the aarch64 build is of other sources (build {}, this one {BUILD_ID}; rebuild: scripts/neon.sh)",
                record.build
            ));
        }
        let mut row = record.to_row()?;
        row.note = format!("qemu-aarch64: {}", row.note);
        rows.insert((row.kernel, row.design), row);
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::{write_csv, Metrics};

    #[test]
    fn rows_survive_the_csv_round_trip() {
        let mut metrics = Metrics::default();
        metrics.record(1.0, 1.0 + 1e-6, 2.0, 1e-5).unwrap();
        metrics.record(-3.0, -3.0, 3.0, 1e-5).unwrap();
        let row = Row {
            kernel: Kernel::Softmax,
            design: Design::F32,
            isa: Isa::Neon,
            cases: 7,
            metrics: metrics.clone(),
            status: Status::Pass,
            note: "vs reference and scalar".into(),
            secs: 1.5,
        };
        let path = std::env::temp_dir().join(format!("qemu-rt-{}.csv", std::process::id()));
        write_csv(std::slice::from_ref(&row), &path).unwrap();
        let rows = read_rows(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        let back = &rows[&(Kernel::Softmax, Design::F32)];
        assert_eq!(back.cases, 7);
        assert_eq!(back.secs, 1.5);
        assert_eq!(back.status, Status::Pass);
        assert!(back.note.starts_with("qemu-aarch64: "));
        let close = |a: f64, b: f64| (a - b).abs() <= 1e-9 * b.abs().max(1e-300);
        assert!(close(back.metrics.nmse(), metrics.nmse()));
        assert!(close(back.metrics.cosine(), metrics.cosine()));
        assert!(close(back.metrics.max_abs, metrics.max_abs));
    }
}
