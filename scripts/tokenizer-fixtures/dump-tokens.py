"""Writes the token texts of a GGUF vocab as a JSON list (read with PyPI's `gguf`, llama.cpp's
Python reader). Usage: python3 dump-tokens.py FILE.gguf OUT.json"""
import json
import sys

import gguf

reader = gguf.GGUFReader(sys.argv[1])
field = reader.fields["tokenizer.ggml.tokens"]
tokens = [bytes(field.parts[i]).decode("utf-8") for i in field.data]
with open(sys.argv[2], "w", encoding="utf-8") as f:
    json.dump(tokens, f, ensure_ascii=False)
