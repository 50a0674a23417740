#!/usr/bin/env bash
# The NEON variants, cross-compiled for aarch64 and run under qemu-aarch64 (the runner and
# linker are set in .cargo/config.toml): the kernels' and reference's tests, then the aarch64
# build of the harness, which `harness verify` on x86_64 uses for its NEON rows.
# Usage: scripts/neon.sh [--no-verify] [extra `harness verify` args, e.g. --cases 50]
#   --no-verify   stop after the tests and the build (scripts/test.sh takes the NEON rows from
#                 the x86_64 `harness verify`, which runs this build under qemu).
set -euo pipefail
cd "$(dirname "$0")/.."
verify=1
if [ "${1:-}" = "--no-verify" ]; then
  verify=0
  shift
fi
bash scripts/setup.sh
target=aarch64-unknown-linux-gnu
echo "== aarch64 (qemu): cargo test -p kernels -p reference"
cargo test --quiet --target "$target" -p kernels -p reference
echo "== aarch64: build the harness"
cargo build --quiet --release --target "$target" -p harness
if [ "$verify" = 1 ]; then
  echo "== aarch64 (qemu): harness verify --isa neon"
  qemu-aarch64 -L /usr/aarch64-linux-gnu "target/$target/release/harness" verify --isa neon "$@"
fi
