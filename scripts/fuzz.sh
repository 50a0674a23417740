#!/usr/bin/env bash
# Fuzzes the GGUF reader (fuzz/fuzz_targets/gguf_parse.rs) for SECONDS (default 60) with
# cargo-fuzz on nightly, starting from the committed seeds in fuzz/corpus/gguf_parse. New
# inputs go to fuzz/target/corpus (not committed); a crash is saved under fuzz/artifacts and
# fails the run. Installs cargo-fuzz and the nightly toolchain if they are missing.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-60}"

if ! rustup toolchain list | grep -q '^nightly'; then
    rustup toolchain install nightly --profile minimal
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi

mkdir -p fuzz/target/corpus
# -malloc_limit_mb: a single allocation beyond 512 MiB (no seed-sized input can need it) is a
# crash, which is how an unchecked count would show; -timeout: one input taking over 10 s is a
# hang.
cargo +nightly fuzz run --fuzz-dir fuzz gguf_parse fuzz/target/corpus fuzz/corpus/gguf_parse -- \
    -max_total_time="$seconds" -max_len=65536 -malloc_limit_mb=512 -rss_limit_mb=2048 \
    -timeout=10 -print_final_stats=1
