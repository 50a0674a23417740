//! What machine and build a measurement came from: every bench row carries this, so rows from
//! several machines (a CI matrix) can be merged into one report and told apart.

use kernels::Isa;
use serde::{Deserialize, Serialize};
use std::process::Command;

/// The host and build a bench run measured.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Host {
    /// CPU model name as the OS reports it (`/proc/cpuinfo`).
    pub cpu: String,
    /// The SIMD features this build detected, space-separated (`avx2 fma f16c`, ...).
    pub features: String,
    /// Logical CPUs the process may run on.
    pub cores: usize,
    /// The rustc that compiled this harness (`rustc -V` at build time).
    pub rustc: String,
    /// Git commit of the source tree the bench ran from, `unknown` outside a checkout.
    pub git_commit: String,
    /// Whether that tree had uncommitted changes to tracked files.
    pub git_dirty: bool,
    /// When the run started, UTC, RFC 3339.
    pub date: String,
}

impl Host {
    /// Detects the current host. Never fails: what cannot be found reads `unknown`.
    pub fn detect() -> Host {
        Host {
            cpu: cpu_model().unwrap_or_else(|| "unknown".into()),
            features: features(),
            cores: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            rustc: env!("HARNESS_RUSTC_VERSION").to_string(),
            git_commit: git(&["rev-parse", "--short=12", "HEAD"])
                .unwrap_or_else(|| "unknown".into()),
            git_dirty: git(&["status", "--porcelain", "--untracked-files=no"])
                .is_some_and(|s| !s.is_empty()),
            date: utc_now(),
        }
    }

    /// A short label that tells machines apart in plots and tables.
    pub fn label(&self) -> String {
        format!("{} ({} cores)", self.cpu, self.cores)
    }
}

fn cpu_model() -> Option<String> {
    let info = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    let line = info.lines().find(|l| {
        l.starts_with("model name") || l.starts_with("Model") || l.starts_with("CPU part")
    })?;
    Some(line.split_once(':')?.1.trim().to_string())
}

fn features() -> String {
    let mut f: Vec<&str> = Vec::new();
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::is_x86_feature_detected as has;
        for (name, on) in [
            ("sse4.2", has!("sse4.2")),
            ("avx", has!("avx")),
            ("avx2", has!("avx2")),
            ("fma", has!("fma")),
            ("f16c", has!("f16c")),
            ("avx512f", has!("avx512f")),
            ("avx512bw", has!("avx512bw")),
            ("avx512vl", has!("avx512vl")),
            ("avx512vnni", has!("avx512vnni")),
        ] {
            if on {
                f.push(name);
            }
        }
    }
    #[cfg(target_arch = "aarch64")]
    {
        use std::arch::is_aarch64_feature_detected as has;
        for (name, on) in [
            ("neon", has!("neon")),
            ("dotprod", has!("dotprod")),
            ("fp16", has!("fp16")),
            ("i8mm", has!("i8mm")),
            ("sve", has!("sve")),
        ] {
            if on {
                f.push(name);
            }
        }
    }
    let isas: Vec<&str> = Isa::available().map(|i| i.name()).collect();
    format!("{} [variants: {}]", f.join(" "), isas.join(","))
}

/// Runs git in the current directory (the checkout the bench is started from).
fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// The current UTC time in RFC 3339, to the second.
pub fn utc_now() -> String {
    let now = time::OffsetDateTime::now_utc();
    now.replace_nanosecond(0)
        .unwrap_or(now)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| "unknown".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn date_is_rfc3339_utc() {
        let d = utc_now();
        assert_eq!(d.len(), 20, "{d}");
        assert!(d.ends_with('Z') && d.as_bytes()[10] == b'T', "{d}");
        assert!(d.as_str() > "2024-01-01", "{d}");
    }
}
