#!/usr/bin/env python3
"""A second, independent reader of our GGUF files: llama.cpp's own `gguf` Python package.

For a small synthesized model of every quant preset (and SmolLM2's shape at one layer, whose
576-wide rows take the Q5_0/Q8_0 fallbacks) at two layers, this reads the file with `gguf.GGUFReader`,
decodes every tensor with `gguf.quants.dequantize`, and compares against what our harness
reports (`harness inspect --json --dump-values N`: names, shapes, types, offsets, metadata,
the first N values and the sum and sum of squares of every tensor as `kernels::quant`
decodes it).

Usage: gguf_py_check.py HARNESS_BINARY WORK_DIR
"""

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
from gguf import GGUFReader, GGUFValueType
from gguf.quants import dequantize

HEAD = 64
# f32 unit roundoff.
U = 2.0**-24

CASES = [
    ("test-tiny", preset, [])
    for preset in ["q4_k_m", "q4_0", "q4_1", "q8_0", "f16"]
] + [("smollm2-135m", "q4_k_m", ["--layers", "2"])]


def check(cond, msg):
    if not cond:
        raise AssertionError(msg)


def scalar(field):
    return field.contents()


def compare_metadata(reader, ours, path):
    fields = {k: f for k, f in reader.fields.items() if not k.startswith("GGUF.")}
    check(list(fields) == [m["key"] for m in ours["metadata"]],
          f"{path}: metadata keys differ: {list(fields)} vs ours")
    for m in ours["metadata"]:
        f = fields[m["key"]]
        value = m["value"]
        if f.types[0] == GGUFValueType.ARRAY:
            contents = f.contents()
            check(len(contents) == value["len"], f"{path}: {m['key']}: length")
            head = contents[: len(value["head"])]
            for a, b in zip(head, value["head"]):
                check(a == b or (isinstance(a, float) and math.isclose(a, b, rel_tol=U)),
                      f"{path}: {m['key']}: {a!r} != {b!r}")
        else:
            a = f.contents()
            check(a == value or (isinstance(a, float) and math.isclose(a, value, rel_tol=U)),
                  f"{path}: {m['key']}: {a!r} != {value!r}")


def compare_tensors(reader, ours, path):
    """Returns the largest difference between a value of ours and gguf-py's."""
    worst = 0.0
    check(len(reader.tensors) == len(ours["tensors"]), f"{path}: tensor count")
    for t, o in zip(reader.tensors, ours["tensors"]):
        where = f"{path}: tensor {o['name']}"
        check(t.name == o["name"], f"{where}: name {t.name}")
        check(t.tensor_type.name == o["type"], f"{where}: type {t.tensor_type.name} vs {o['type']}")
        check([int(d) for d in t.shape] == o["dims"], f"{where}: shape {list(t.shape)} vs {o['dims']}")
        check(int(t.n_bytes) == o["bytes"], f"{where}: bytes {t.n_bytes} vs {o['bytes']}")
        check(int(t.data_offset) == o["file_offset"], f"{where}: offset {t.data_offset}")
        x = dequantize(t.data, t.tensor_type).astype(np.float32).ravel()
        check(x.size == int(np.prod(o["dims"])), f"{where}: {x.size} values")
        # Both decoders evaluate the same block formula in f32 (at most two products and one
        # sum per value, FORMATS.md), possibly in another order: each value may differ by a few
        # roundings of terms no larger than the tensor's largest decoded value plus its largest
        # min term; 8u of twice the largest value bounds that generously for these files, whose
        # min terms stay below the largest value.
        amax = float(np.max(np.abs(x))) if x.size else 0.0
        tol = 8 * U * 2 * amax
        ours_head = np.array(o["values"], dtype=np.float64)
        diff = np.max(np.abs(x[: ours_head.size].astype(np.float64) - ours_head), initial=0.0)
        check(diff <= tol, f"{where}: first values differ by {diff} > {tol}")
        worst = max(worst, diff)
        x64 = x.astype(np.float64)
        s, s2 = float(np.sum(x64)), float(np.sum(x64 * x64))
        check(abs(s - o["sum"]) <= x.size * tol + 1e-9 * abs(s),
              f"{where}: sum {s} vs {o['sum']}")
        check(abs(s2 - o["sum_sq"]) <= x.size * tol * 2 * amax + 1e-9 * s2,
              f"{where}: sum of squares {s2} vs {o['sum_sq']}")
    return worst


def main():
    harness, work = Path(sys.argv[1]), Path(sys.argv[2])
    work.mkdir(parents=True, exist_ok=True)
    for arch, preset, extra in CASES:
        path = work / f"{arch}-{preset}.gguf"
        subprocess.run([str(harness), "synth", "--arch", arch, "--quant", preset, "--seed", "7",
                        "--out", str(path), *extra], check=True)
        ours = json.loads(subprocess.run(
            [str(harness), "inspect", "--json", "--dump-values", str(HEAD), str(path)],
            check=True, capture_output=True, text=True).stdout)
        reader = GGUFReader(path)
        compare_metadata(reader, ours, path)
        worst = compare_tensors(reader, ours, path)
        types = sorted({t["type"] for t in ours["tensors"]})
        print(f"gguf-py agrees: {path.name}: {len(ours['tensors'])} tensors ({', '.join(types)}), "
              f"{len(ours['metadata'])} metadata keys, largest value difference {worst:.3g}")


if __name__ == "__main__":
    main()
