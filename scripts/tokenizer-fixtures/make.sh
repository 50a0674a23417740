#!/usr/bin/env bash
# Regenerates the tokenizer fixtures in kernels/tests/fixtures/tokenizer/ from implementations
# that are not ours: npm's llama-tokenizer-js for the Llama SentencePiece vocab, PyPI's
# `tokenizers` for SmolLM2's byte-level BPE vocab (read out of the GGUF with PyPI's `gguf`),
# and SmolLM2's vocab-only GGUF. Needs python3, node/npm and the registries; fetches SmolLM2
# into the cache with scripts/fetch-smollm2.sh. Not part of the tests: run it when texts.json
# changes, then commit the outputs.
set -euo pipefail
cd "$(dirname "$0")/../.."
here=scripts/tokenizer-fixtures
out=kernels/tests/fixtures/tokenizer
mkdir -p "$out"
smollm="$(bash scripts/fetch-smollm2.sh)"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
echo "make.sh: installing gguf, tokenizers (PyPI) and llama-tokenizer-js (npm) into $tmp" >&2
python3 -m venv "$tmp/venv"
"$tmp/venv/bin/pip" install --quiet gguf==0.19.0 tokenizers==0.23.3
npm install --silent --no-save --prefix "$tmp/js" llama-tokenizer-js@1.2.2
# An ES module finds its packages next to itself, so the script runs from the install folder.
cp "$here/llama-spm.mjs" "$tmp/js/"
"$tmp/venv/bin/python" "$here/dump-tokens.py" ../shared/assets/llama-spm-vocab.gguf "$tmp/llama-tokens.json"
node "$tmp/js/llama-spm.mjs" "$tmp/llama-tokens.json" "$here/texts.json" "$out/llama-spm.json"
"$tmp/venv/bin/python" "$here/smollm2.py" "$smollm" "$here/texts.json" "$out"
