#!/usr/bin/env bash
# Every test: formatting and lints, the workspace tests (scalar, AVX2, AVX-512 on this x86_64
# machine), the quantizer quality figures, the NEON tests under qemu, the verification gate on
# all four ISAs (NEON rows from the aarch64 build under qemu) and its self-test. Installs what
# it needs first; safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy (x86_64 and aarch64)"
cargo clippy --quiet --workspace --all-targets -- -D warnings
cargo clippy --quiet --workspace --all-targets --target aarch64-unknown-linux-gnu -- -D warnings

echo "== cargo test (x86_64)"
cargo test --workspace

echo "== quantizer round-trip RMSE (1M N(0,1) values)"
cargo test --quiet -p kernels --test quant_rmse -- --nocapture

# Both harness builds from the same sources: verify only trusts the NEON rows of an aarch64
# build that carries its own build id (commit and source hash, harness/build.rs).
cargo build --quiet --release -p harness
echo "== NEON under qemu-aarch64: tests and the aarch64 harness"
bash scripts/neon.sh --no-verify

mkdir -p reports
echo "== harness verify (scalar, avx2, avx512; neon under qemu)"
target/release/harness verify --isa scalar,avx2,avx512,neon --csv reports/verify.csv
echo "== harness verify --self-test"
target/release/harness verify --self-test
echo "== all checks passed; gate rows in reports/verify.csv"
