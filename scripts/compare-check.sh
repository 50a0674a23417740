#!/usr/bin/env bash
# How often does `harness compare` flag a change that is not there, and does it flag one that is?
# Runs PAIRS pairs of identical bench runs (same build, same flags) and counts the pairs and rows
# flagged as regressions; then a real 20% slowdown: the same kernels on 20% more weight rows
# (2464 instead of 2048, joined with --ignore rows), and 1 thread against 2. Writes a summary to
# stdout. Takes a few minutes; not part of scripts/test.sh (timings are not tests).
set -euo pipefail
cd "$(dirname "$0")/.."
PAIRS=${PAIRS:-10}
H=target/release/harness
cargo build --quiet --release -p harness
dir=$(mktemp -d)
flags=(--kernel matmul_q4k --reps 10 --max-time 0.5 --warmup 0.1 -o jsonl)
shapes=2048x2048x1,2048x2048x40
run() { "$H" bench "${flags[@]}" "$@" 2>/dev/null; }
false_pairs=0; false_rows=0; total_rows=0
for i in $(seq 1 "$PAIRS"); do
  run --shapes "$shapes" --out "$dir/a$i.jsonl"
  run --shapes "$shapes" --out "$dir/b$i.jsonl"
  set +e
  out=$("$H" compare "$dir/a$i.jsonl" "$dir/b$i.jsonl" 2>&1); rc=$?
  set -e
  n=$(grep -c 'REGRESSION' <<<"$out" || true)
  rows=$(grep -o '[0-9]* rows joined' <<<"$out" | grep -o '^[0-9]*')
  total_rows=$((total_rows + rows))
  false_rows=$((false_rows + n))
  [ "$rc" -ne 0 ] && false_pairs=$((false_pairs + 1))
  echo "same-build pair $i: exit $rc, $n of $rows rows flagged as regressions"
done
echo "same-build pairs flagged: $false_pairs of $PAIRS ($false_rows of $total_rows rows)"

run --shapes "$shapes" --out "$dir/base.jsonl"
run --shapes 2464x2048x1,2464x2048x40 --out "$dir/rows20.jsonl"
set +e
"$H" compare "$dir/base.jsonl" "$dir/rows20.jsonl" --ignore rows; rc=$?
set -e
echo "20% more rows: exit $rc"

"$H" bench --kernel matmul_q4k --shapes "$shapes" --threads 2 --reps 10 --max-time 0.5 -o jsonl --out "$dir/t2.jsonl" 2>/dev/null
"$H" bench --kernel matmul_q4k --shapes "$shapes" --threads 1 --reps 10 --max-time 0.5 -o jsonl --out "$dir/t1.jsonl" 2>/dev/null
set +e
"$H" compare "$dir/t2.jsonl" "$dir/t1.jsonl" --ignore threads; rc=$?
set -e
echo "2 threads -> 1 thread: exit $rc"
rm -rf "$dir"
