#!/usr/bin/env bash
# Every test: formatting and lints, the workspace tests (scalar, AVX2, AVX-512 on this x86_64
# machine), the quantizer quality figures, the verification gate and its self-test, and the
# NEON variants under qemu. Installs what it needs first; safe to run again.
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

mkdir -p reports
echo "== harness verify (x86_64: scalar, avx2, avx512)"
cargo run --quiet --release -p harness -- verify --isa scalar,avx2,avx512 --csv reports/verify-x86_64.csv
echo "== harness verify --self-test"
cargo run --quiet --release -p harness -- verify --self-test

echo "== NEON under qemu-aarch64"
bash scripts/neon.sh --csv reports/verify-aarch64.csv
{ cat reports/verify-x86_64.csv; tail -n +2 reports/verify-aarch64.csv; } > reports/verify.csv
echo "== all checks passed; gate rows in reports/verify.csv"
