#!/usr/bin/env python3
"""Regenerate the dequantization fixtures in Tests/Fixtures/dequant/.

For each ggml type below this writes <TYPE>.gguf: a GGUF v3 file (written with
gguf.GGUFWriter) holding one tensor "t" with dims [512, 2] (ggml order: 512
elements per row, 2 rows) whose bytes are seeded random EXCEPT the fp16 scale
fields (d, m, dmin), which are set to finite values with magnitude in
[0.02, 0.5] and a random sign. F16/BF16 tensors hold finite random values plus
a few special values (zeros, subnormals, large magnitudes).

The expected values are computed by the gguf package itself,
gguf.quants.dequantize(raw_bytes, type), not by this script, and are stored in
expected.json as {"TYPE": {"dims": [512, 2], "ggml_type": N, "values": [...]}}
with values in row-major order (row 0 elements 0..511, then row 1), each float
written with repr() of the exact float32 value.

<TYPE>-quantize.json (Q8_0, Q4_0, Q4_1, Q5_0, Q5_1: the 32-element block types
gguf.quants can quantize) holds 64 seeded random float32 inputs, the bytes of
gguf.quants.quantize(x, TYPE) and their dequantization.

Usage: python3 scripts/golden/dequant_goldens.py   (from anywhere)
Requires: gguf (0.19), numpy.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np

import gguf
from gguf import GGMLQuantizationType as T
from gguf.constants import GGML_QUANT_SIZES

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "Tests" / "Fixtures" / "dequant"

ROWS = 2
COLS = 512  # a multiple of both 32 and QK_K (256)
SEED = 20240607

TYPES = ["F16", "BF16", "Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q4_K", "Q5_K", "Q6_K"]
QUANTIZE_TYPES = ["Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1"]

# Byte offsets of the fp16 scale fields inside one block (ggml's block layouts):
#   Q4_0 (18 B): d f16 @0, qs[16]
#   Q4_1 (20 B): d f16 @0, m f16 @2, qs[16]
#   Q5_0 (22 B): d f16 @0, qh[4] @2, qs[16] @6
#   Q5_1 (24 B): d f16 @0, m f16 @2, qh[4] @4, qs[16] @8
#   Q8_0 (34 B): d f16 @0, qs[32] int8 @2
#   Q4_K (144 B): d f16 @0, dmin f16 @2, scales[12] @4, qs[128] @16
#   Q5_K (176 B): d f16 @0, dmin f16 @2, scales[12] @4, qh[32] @16, qs[128] @48
#   Q6_K (210 B): ql[128] @0, qh[64] @128, scales[16] int8 @192, d f16 @208
FP16_FIELDS = {
    "Q4_0": [0],
    "Q4_1": [0, 2],
    "Q5_0": [0],
    "Q5_1": [0, 2],
    "Q8_0": [0],
    "Q4_K": [0, 2],
    "Q5_K": [0, 2],
    "Q6_K": [208],
}


def f32_list(a: np.ndarray) -> list[float]:
    """Exact float32 values as Python floats (json writes them with repr)."""
    a = np.asarray(a, dtype=np.float32).ravel()
    out = []
    for v in a.tolist():
        if not np.isfinite(v):
            raise ValueError("non-finite value in fixture")
        out.append(float(v))
    return out


def sane_f16(rng: np.random.Generator, n: int) -> np.ndarray:
    mag = rng.uniform(0.02, 0.5, size=n)
    sign = np.where(rng.integers(0, 2, size=n) == 1, -1.0, 1.0)
    return (mag * sign).astype(np.float16)


def make_quant_bytes(name: str, rng: np.random.Generator) -> np.ndarray:
    qtype = T[name]
    block_size, type_size = GGML_QUANT_SIZES[qtype]
    n_blocks = ROWS * COLS // block_size
    blocks = rng.integers(0, 256, size=(n_blocks, type_size), dtype=np.uint8)
    for off in FP16_FIELDS[name]:
        blocks[:, off:off + 2] = sane_f16(rng, n_blocks).reshape(n_blocks, 1).view(np.uint8)
    return blocks.reshape(ROWS, COLS // block_size * type_size)


def make_f16_bytes(rng: np.random.Generator) -> np.ndarray:
    vals = (rng.standard_normal(ROWS * COLS) * 2.0).astype(np.float16)
    special = np.array([
        0x0000,  # +0
        0x8000,  # -0
        0x0001,  # smallest subnormal
        0x83FF,  # largest negative subnormal
        0x0400,  # smallest normal
        0x7BFF,  # 65504, largest finite
        0xFBFF,  # -65504
        0x3C00,  # 1.0
        0x3555,  # ~0.333
    ], dtype=np.uint16)
    bits = vals.view(np.uint16)
    bits[:len(special)] = special
    return bits.view(np.uint8).reshape(ROWS, COLS * 2)


def make_bf16_bytes(rng: np.random.Generator) -> np.ndarray:
    # Random bf16 bit patterns with a sane exponent range (|x| ~ 2^-27 .. 2^13),
    # plus some special but finite values.
    sign = rng.integers(0, 2, size=ROWS * COLS, dtype=np.uint16) << 15
    exp = rng.integers(100, 140, size=ROWS * COLS, dtype=np.uint16) << 7
    mant = rng.integers(0, 128, size=ROWS * COLS, dtype=np.uint16)
    bits = (sign | exp | mant).astype(np.uint16)
    special = np.array([
        0x0000,  # +0
        0x8000,  # -0
        0x0001,  # smallest subnormal
        0x807F,  # negative subnormal
        0x0080,  # smallest normal
        0x7F7F,  # largest finite (~3.39e38)
        0xFF7F,  # most negative finite
        0x3F80,  # 1.0
        0xC049,  # -3.140625
    ], dtype=np.uint16)
    bits[:len(special)] = special
    return bits.view(np.uint8).reshape(ROWS, COLS * 2)


def write_gguf(path: Path, name: str, data: np.ndarray) -> None:
    qtype = T[name]
    w = gguf.GGUFWriter(str(path), arch="loom-test")
    w.add_name(f"dequant fixture {name}")
    if qtype == T.F16:
        w.add_tensor("t", data.view(np.float16).reshape(ROWS, COLS))
    else:
        w.add_tensor("t", data, raw_dtype=qtype)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def check_gguf(path: Path, name: str, data: np.ndarray, expected: np.ndarray) -> None:
    r = gguf.GGUFReader(str(path))
    assert len(r.tensors) == 1
    t = r.tensors[0]
    assert t.name == "t"
    assert t.tensor_type == T[name], (t.tensor_type, name)
    assert t.shape.tolist() == [COLS, ROWS], t.shape
    raw = np.asarray(t.data).view(np.uint8).reshape(-1)
    assert raw.tobytes() == data.tobytes(), f"{name}: tensor bytes differ after read-back"
    again = gguf.quants.dequantize(np.asarray(t.data).view(np.uint8).reshape(data.shape), T[name])
    assert np.array_equal(again.view(np.uint32), expected.view(np.uint32))


def main() -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(SEED)
    expected_all: dict[str, dict] = {}
    for name in TYPES:
        qtype = T[name]
        if name == "F16":
            data = make_f16_bytes(rng)
        elif name == "BF16":
            data = make_bf16_bytes(rng)
        else:
            data = make_quant_bytes(name, rng)
        deq = gguf.quants.dequantize(data, qtype)
        deq = np.asarray(deq, dtype=np.float32).reshape(ROWS, COLS)
        if not np.all(np.isfinite(deq)):
            raise SystemExit(f"{name}: non-finite dequantized values")
        path = OUT / f"{name}.gguf"
        write_gguf(path, name, data)
        check_gguf(path, name, data, deq)
        expected_all[name] = {
            "dims": [COLS, ROWS],
            "ggml_type": int(qtype),
            "values": f32_list(deq),
        }
        print(f"{name}: {path.stat().st_size} bytes, |max| {float(np.abs(deq).max()):.6g}")

    with open(OUT / "expected.json", "w", encoding="utf-8") as f:
        json.dump(expected_all, f, separators=(",", ":"))
        f.write("\n")

    # Quantization round trips. The same 64 inputs for every type: two blocks
    # of 32, roughly N(0, 1) scaled per block.
    qrng = np.random.default_rng(SEED + 1)
    x = qrng.standard_normal(64).astype(np.float32)
    x[32:] *= np.float32(0.01)
    for name in QUANTIZE_TYPES:
        qtype = T[name]
        block_size, type_size = GGML_QUANT_SIZES[qtype]
        q = gguf.quants.quantize(x.reshape(1, 64), qtype)
        q = np.asarray(q, dtype=np.uint8).reshape(-1)
        assert q.size == 64 // block_size * type_size
        deq = gguf.quants.dequantize(q.reshape(1, -1), qtype).reshape(-1)
        doc = {
            "type": name,
            "ggml_type": int(qtype),
            "block_size": block_size,
            "type_size": type_size,
            "input": f32_list(x),
            "quantized": [int(b) for b in q.tolist()],
            "dequantized": f32_list(deq),
        }
        with open(OUT / f"{name}-quantize.json", "w", encoding="utf-8") as f:
            json.dump(doc, f, separators=(",", ":"))
            f.write("\n")
        err = float(np.abs(deq - x).max())
        print(f"{name}-quantize: {q.size} bytes, max abs error {err:.4g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
