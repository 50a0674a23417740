#!/usr/bin/env bash
# Loads and runs synthesized GGUF files in llama.cpp (not part of the tests: llama.cpp is built
# outside the repo). Usage: scripts/llama_cpp_check.sh LLAMA_CPP_BIN_DIR [WORK_DIR]
# Makes a TinyLlama Q4_K_M with the real Llama vocab and a SmolLM2 Q4_K_M with the generated
# one, then runs llama-bench and llama-simple on each and prints their output.
set -euo pipefail
cd "$(dirname "$0")/.."
bin="${1:?usage: $0 LLAMA_CPP_BIN_DIR [WORK_DIR]}"
work="${2:-$(mktemp -d)}"
cargo build --quiet --release -p harness
harness=target/release/harness
tiny="$work/tinyllama-q4_k_m.gguf"
small="$work/smollm2-q4_k_m.gguf"
[ -f "$tiny" ] || "$harness" synth --arch tinyllama-1.1b --quant q4_k_m \
    --vocab ../shared/assets/llama-spm-vocab.gguf --out "$tiny"
[ -f "$small" ] || "$harness" synth --arch smollm2-135m --quant q4_k_m --out "$small"
for model in "$tiny" "$small"; do
    echo "== llama-bench -m $model -p 16 -n 4 -r 1"
    "$bin/llama-bench" -m "$model" -p 16 -n 4 -r 1
    echo "== llama-simple -m $model -n 8 \"Hello\""
    "$bin/llama-simple" -m "$model" -n 8 "Hello"
done
