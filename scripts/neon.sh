#!/usr/bin/env bash
# The NEON variants, cross-compiled for aarch64 and run under qemu-aarch64 (the runner and
# linker are set in .cargo/config.toml): the kernels' unit tests, then the gate's NEON rows.
# Usage: scripts/neon.sh [extra `harness verify` args, e.g. --cases 50]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
target=aarch64-unknown-linux-gnu
echo "== aarch64 (qemu): cargo test -p kernels -p reference"
cargo test --quiet --target "$target" -p kernels -p reference
echo "== aarch64 (qemu): harness verify --isa neon"
cargo run --quiet --release --target "$target" -p harness -- verify --isa neon "$@"
