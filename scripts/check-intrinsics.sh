#!/usr/bin/env bash
# Fails when a binary holds an out-of-line SIMD intrinsic: a `core::arch` function that was not
# inlined into its caller. That happens when an intrinsic is called from code that neither is
# `#[inline(always)]` into a `#[target_feature]` function nor carries the features itself (a
# closure, `array::map`): every vector operation then becomes a function call. One such closure
# in the AVX-512 attention (0a4e406) made a pp512 prompt take 1.6 times as long on Zen 4.
#
# Usage: scripts/check-intrinsics.sh BINARY...
# Allowed: `_xgetbv`, read once by the CPU feature detection. A binary nm cannot read, or whose
# symbols are stripped (no `kernels::` function left to look at), fails too: the check would
# otherwise pass without having looked.
set -euo pipefail
if [ "$#" -eq 0 ]; then
    echo "usage: $0 BINARY..." >&2
    exit 2
fi
allowed='_xgetbv$'
status=0
for bin in "$@"; do
    if ! symbols=$(nm -C "$bin" 2>&1); then
        echo "$bin: nm cannot read it: $symbols" >&2
        status=1
        continue
    fi
    # Names only: nm -C prints `ADDRESS TYPE NAME`, and a demangled name may hold spaces.
    names=$(sed -E 's/^[0-9a-fA-F]* *[A-Za-z] //' <<<"$symbols")
    if ! grep -q '^kernels::' <<<"$names"; then
        echo "$bin: no kernels:: symbol (stripped, or not a harness build): nothing to check" >&2
        status=1
        continue
    fi
    found=$(grep -E '^core::core_arch::' <<<"$names" | grep -Ev "$allowed" | sort -u || true)
    if [ -n "$found" ]; then
        echo "$bin: out-of-line SIMD intrinsics (called, not inlined):" >&2
        sed 's/^/  /' <<<"$found" >&2
        status=1
    else
        echo "$bin: every SIMD intrinsic inlined"
    fi
done
exit $status
