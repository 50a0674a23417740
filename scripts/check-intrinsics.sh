#!/usr/bin/env bash
# Fails when a binary holds an out-of-line SIMD intrinsic: a `core::arch` function that was not
# inlined into its caller. That happens when an intrinsic is called from code that neither is
# `#[inline(always)]` into a `#[target_feature]` function nor carries the features itself (a
# closure, `array::map`): every vector operation then becomes a function call. One such closure
# in the AVX-512 attention cost a third of a pp512 prompt on Zen 4 (0a4e406 -> its fix).
#
# Usage: scripts/check-intrinsics.sh BINARY...
# Allowed: `_xgetbv`, read once by the CPU feature detection.
set -euo pipefail
allowed='_xgetbv$'
status=0
for bin in "$@"; do
    found=$(nm -C "$bin" | awk '{ $1 = ""; $2 = ""; print substr($0, 3) }' \
        | grep -E '^core::core_arch::' | grep -Ev "$allowed" | sort -u || true)
    if [ -n "$found" ]; then
        echo "$bin: out-of-line SIMD intrinsics (called, not inlined):" >&2
        echo "$found" | sed 's/^/  /' >&2
        status=1
    else
        echo "$bin: every SIMD intrinsic inlined"
    fi
done
exit $status
