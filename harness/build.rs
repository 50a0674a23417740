//! Stamps the harness with a build id: the git commit and a hash of every source the gate's
//! results depend on (the kernels, the reference, the harness itself, the manifests and the
//! lock file). `verify` on x86_64 trusts the NEON rows of the aarch64 build only when that
//! build carries the same id, so a build of other sources cannot vouch for these.
//! Also records the compiler version, so every bench row can say which rustc built the kernels.

use std::path::{Path, PathBuf};
use std::process::Command;

/// FNV-1a, 64-bit: a stable, dependency-free content hash (not a security boundary: it tells
/// builds of different sources apart, it does not resist forgery).
fn fnv1a(hash: &mut u64, bytes: &[u8]) {
    for &b in bytes {
        *hash ^= u64::from(b);
        *hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
}

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            files_under(&path, out);
        } else {
            out.push(path);
        }
    }
}

fn git(root: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(root)
        .args(args)
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let root = manifest
        .parent()
        .expect("harness sits in the workspace")
        .to_path_buf();
    let mut files = Vec::new();
    for dir in ["kernels/src", "reference/src", "harness/src"] {
        files_under(&root.join(dir), &mut files);
        println!("cargo:rerun-if-changed={}", root.join(dir).display());
    }
    for file in [
        "Cargo.toml",
        "Cargo.lock",
        "kernels/Cargo.toml",
        "reference/Cargo.toml",
        "harness/Cargo.toml",
        "harness/build.rs",
    ] {
        files.push(root.join(file));
        println!("cargo:rerun-if-changed={}", root.join(file).display());
    }
    files.sort();
    let mut hash = 0xcbf2_9ce4_8422_2325u64;
    for file in &files {
        let rel = file.strip_prefix(&root).unwrap_or(file);
        fnv1a(&mut hash, rel.to_string_lossy().as_bytes());
        fnv1a(&mut hash, &[0]);
        fnv1a(&mut hash, &std::fs::read(file).unwrap_or_default());
        fnv1a(&mut hash, &[0]);
    }
    let commit = git(&root, &["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "nogit".into());
    // A new commit changes the id even when no hashed file changed.
    if let Some(head) = git(&root, &["rev-parse", "--git-path", "HEAD"]) {
        println!("cargo:rerun-if-changed={}", root.join(head).display());
    }
    if let Some(reference) = git(&root, &["symbolic-ref", "-q", "HEAD"]) {
        if let Some(path) = git(&root, &["rev-parse", "--git-path", &reference]) {
            println!("cargo:rerun-if-changed={}", root.join(path).display());
        }
    }
    println!("cargo:rustc-env=HARNESS_BUILD_ID={commit}-{hash:016x}");
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let version = Command::new(rustc)
        .arg("-V")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=HARNESS_RUSTC_VERSION={version}");
    println!("cargo:rerun-if-env-changed=RUSTC");
}
