#!/usr/bin/env bash
# llama.cpp's llama-bench on the same GGUF, tests and threads as the main job (`harness e2e`),
# its rows written beside ours (reports/e2e-llamacpp.csv) and the report regenerated, so that
# REPORT.md shows both and their ratio. Flash attention on (-fa 1), as our engine always runs.
#
#   bash scripts/peer-llamacpp.sh [LLAMA_BENCH]      (default: llama-bench on PATH)
#   MODEL=file.gguf TESTS="-p 40,512 -n 128" THREADS=1,2 REPS=3 OUT=reports/e2e-llamacpp.csv
#
# It never builds llama.cpp. Without a binary it says how to get one and exits 0.
set -euo pipefail
cd "$(dirname "$0")/.."
bench=${1:-$(command -v llama-bench || true)}
if [[ -z "$bench" || ! -x "$bench" ]]; then
    cat <<'MSG'
peer-llamacpp: no llama-bench binary given (or not executable); nothing run.
To get one (outside this repository), from llama.cpp's sources as PyPI ships them:
    pip download --no-deps --no-binary :all: llama-cpp-python==0.3.36 -d /tmp/lcp
    tar xzf /tmp/lcp/llama_cpp_python-0.3.36.tar.gz -C /tmp/lcp
    cmake -S /tmp/lcp/llama_cpp_python-0.3.36/vendor/llama.cpp -B /tmp/lcp/build \
        -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON -DLLAMA_CURL=OFF
    cmake --build /tmp/lcp/build --target llama-bench -j 2
then: bash scripts/peer-llamacpp.sh /tmp/lcp/build/bin/llama-bench
MSG
    exit 0
fi
cache=${KERNELBENCH_CACHE:-$HOME/.cache/kernelbench}
model=${MODEL:-$cache/tinyllama-1.1b-q4_k_m-seed0.gguf}
if [[ ! -f "$model" ]]; then
    echo "peer-llamacpp: $model is missing: run the main job first (cargo run --release -p harness -- e2e)" >&2
    exit 1
fi
# The main job's defaults (harness/src/e2e.rs: MAIN_PROMPTS, MAIN_GENS, MAIN_THREADS, MAIN_REPS).
tests=${TESTS:--p 40,512 -n 128}
threads=${THREADS:-1,2}
reps=${REPS:-3}
out=${OUT:-reports/e2e-llamacpp.csv}
# shellcheck disable=SC2086
"$bench" -m "$model" $tests -t "$threads" -r "$reps" -fa 1 -o csv > "$out.tmp"
mv "$out.tmp" "$out"
echo "peer-llamacpp: wrote $out ($(($(wc -l < "$out") - 1)) rows) with $bench"
if [[ "${NO_REPORT:-0}" != 1 ]]; then
    nice cargo run --release -q -p harness -- report --in reports --out reports
fi
