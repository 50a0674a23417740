#!/usr/bin/env bash
# Compares `harness tokenize` with llama.cpp's `llama-tokenize` (built outside this repo; never a
# test dependency) on text files, and times both on each file, alternating runs.
# Usage: bash scripts/compare-llama-tokenize.sh LLAMA_BIN_DIR MODEL.gguf [--repeat N] FILE...
# Prints, per file: identical / the first differing position, then the median wall times.
set -euo pipefail
cd "$(dirname "$0")/.."
bin="$1"; model="$2"; shift 2
repeat=0
if [[ "${1:-}" == "--repeat" ]]; then repeat="$2"; shift 2; fi
harness=target/release/harness
[[ -x "$harness" ]] || cargo build --quiet --release -p harness
tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT

theirs() { "$bin/llama-tokenize" -m "$model" -f "$1" --ids --log-disable --no-escape 2>/dev/null | tr -d '[],' ; }
ours() { "$harness" tokenize --model "$model" --file "$1"; }
now() { date +%s%N; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

status=0
for f in "$@"; do
    theirs "$f" > "$tmp/theirs"
    ours "$f" > "$tmp/ours"
    n=$(wc -w < "$tmp/theirs")
    if diff -q <(tr ' ' '\n' < "$tmp/theirs" | grep .) <(tr ' ' '\n' < "$tmp/ours" | grep .) > /dev/null; then
        echo "$f: identical ($n tokens, $(wc -c < "$f") bytes)"
    else
        status=1
        first=$(cmp <(tr ' ' '\n' < "$tmp/theirs" | grep .) <(tr ' ' '\n' < "$tmp/ours" | grep .) | awk '{print $NF}')
        echo "$f: DIFFERENT (llama.cpp $n tokens, ours $(wc -w < "$tmp/ours")), first difference at token line $first"
    fi
    if (( repeat > 0 )); then
        : > "$tmp/t_theirs"; : > "$tmp/t_ours"
        for ((i = 0; i < repeat; i++)); do
            a=$(now); theirs "$f" > /dev/null; b=$(now); echo $(( (b - a) / 1000000 )) >> "$tmp/t_theirs"
            a=$(now); ours "$f" > /dev/null; b=$(now); echo $(( (b - a) / 1000000 )) >> "$tmp/t_ours"
        done
        echo "  wall ms over $repeat alternating runs: llama-tokenize median $(median < "$tmp/t_theirs") (all: $(tr '\n' ' ' < "$tmp/t_theirs")), harness tokenize median $(median < "$tmp/t_ours") (all: $(tr '\n' ' ' < "$tmp/t_ours"))"
    fi
done
exit $status
