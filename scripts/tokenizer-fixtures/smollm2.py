"""Expected byte-level BPE ids for SmolLM2's vocab from PyPI's `tokenizers` (Hugging Face's Rust
implementation), assembled from the vocab and merges read out of the GGUF with PyPI's `gguf`
(llama.cpp's Python reader); and SmolLM2's vocab-only GGUF (Apache-2.0, no tensors).

Usage: python3 smollm2.py SMOLLM2.gguf TEXTS.json OUT_DIR

Writes OUT_DIR/smollm2-vocab.gguf and OUT_DIR/smollm2-<pre>.json for the file's own
pre-tokenizer (`smollm`) and, on the same vocab, for the other splits the tokenizer supports
(`gpt-2`, `llama3`, `qwen2`, `default`), each given to `tokenizers` as the published regexes
in the order llama.cpp applies them.
"""
import json
import os
import sys

import gguf
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers

src, texts_path, out_dir = sys.argv[1:]
reader = gguf.GGUFReader(src)


def field_value(field):
    """The value of a GGUF field as Python data (strings decoded, arrays as lists)."""
    vtype = field.types[0]
    if vtype == gguf.GGUFValueType.ARRAY:
        sub = field.types[1]
        if sub == gguf.GGUFValueType.STRING:
            return [bytes(field.parts[i]).decode("utf-8") for i in field.data]
        return [field.parts[i].tolist()[0] for i in field.data]
    if vtype == gguf.GGUFValueType.STRING:
        return bytes(field.parts[field.data[0]]).decode("utf-8")
    return field.parts[field.data[0]].tolist()[0]


fields = {k: f for k, f in reader.fields.items()}
tokens = field_value(fields["tokenizer.ggml.tokens"])
types = field_value(fields["tokenizer.ggml.token_type"])
merges = field_value(fields["tokenizer.ggml.merges"])
assert field_value(fields["tokenizer.ggml.model"]) == "gpt2"
assert field_value(fields["tokenizer.ggml.pre"]) == "smollm"

# --- the vocab-only GGUF: every tokenizer.* key and the general.* strings, no tensors ---------
vocab_path = os.path.join(out_dir, "smollm2-vocab.gguf")
writer = gguf.GGUFWriter(vocab_path, arch="llama")
for key in ("general.name", "general.license", "general.organization", "general.basename"):
    if key in fields:
        writer.add_string(key, field_value(fields[key]))
for key, field in fields.items():
    if not key.startswith("tokenizer."):
        continue
    vtype = field.types[0]
    sub = field.types[1] if vtype == gguf.GGUFValueType.ARRAY else None
    writer.add_key_value(key, field_value(field), vtype, sub_type=sub)
writer.write_header_to_file()
writer.write_kv_data_to_file()
writer.write_tensors_to_file()
writer.close()
print(f"smollm2.py: {vocab_path}: {os.path.getsize(vocab_path)} bytes", file=sys.stderr)

# --- the reference tokenizers ------------------------------------------------------------------
GPT2 = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"
LLAMA3 = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
          r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN2 = LLAMA3.replace(r"\p{N}{1,3}", r"\p{N}")
DEFAULT = [r"[\p{P}\$\+<=>\^~\|]+", GPT2, r"\p{N}+", r"[0-9][0-9][0-9]"]


def split(pattern):
    return pre_tokenizers.Split(Regex(pattern), behavior="isolated", invert=False)


def byte_level():
    return pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)


PRES = {
    # SmolLM2's own tokenizer.json: digits one by one, then GPT-2's byte-level regex.
    "smollm": (pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True),
                                        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)]), False),
    "gpt-2": (pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True), False),
    "llama3": (pre_tokenizers.Sequence([split(LLAMA3), byte_level()]), True),
    "qwen2": (pre_tokenizers.Sequence([split(QWEN2), byte_level()]), False),
    "default": (pre_tokenizers.Sequence([split(p) for p in DEFAULT] + [byte_level()]), False),
}

texts = json.load(open(texts_path, encoding="utf-8"))
# llama.cpp splits a merge at the first space after its first byte.
pairs = []
for m in merges:
    pos = m.find(" ", 1)
    pairs.append((m[:pos], m[pos + 1:]))
vocab = {t: i for i, t in enumerate(tokens)}
specials = [AddedToken(t, special=True, normalized=False) for t, ty in zip(tokens, types) if ty == 3]

for pre, (pre_tok, ignore_merges) in PRES.items():
    tok = Tokenizer(models.BPE(vocab=vocab, merges=pairs, ignore_merges=ignore_merges))
    tok.pre_tokenizer = pre_tok
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens(specials)
    source = (f"PyPI tokenizers {__import__('tokenizers').__version__}: BPE(vocab, merges from the GGUF, "
              f"ignore_merges={ignore_merges}), pre-tokenizer for `{pre}`, control tokens added as special")
    out = {"source": source, "pre": pre, "cases": []}
    for case in texts["common"] + texts["bpe_special"]:
        for parse in (True, False):
            if not parse and case not in texts["bpe_special"]:
                continue
            tok.encode_special_tokens = not parse
            ids = tok.encode(case["text"], add_special_tokens=False).ids
            name = case["name"] + ("" if parse else "-unparsed")
            out["cases"].append({"name": name, "text": case["text"], "parse_special": parse, "ids": ids})
    path = os.path.join(out_dir, f"smollm2-{pre}.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump(out, f, ensure_ascii=False, indent=1)
        f.write("\n")
    print(f"smollm2.py: {len(out['cases'])} cases -> {path}", file=sys.stderr)
