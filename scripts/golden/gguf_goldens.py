#!/usr/bin/env python3
"""Regenerate the GGUF container fixtures in Tests/Fixtures/gguf/.

Writes
  all-types.gguf     GGUF v3 (gguf.GGUFWriter), one metadata key per value type,
                     general.alignment = 64 and three small tensors;
  all-types-v2.gguf  the same bytes with the version field (bytes 4..7) set to 2
                     (v2 and v3 share the little-endian layout);
  all-types.json     what a reader must find in all-types.gguf (for the v2 file
                     everything is identical except "version": 2).

all-types.json:
  {
    "version": 3,
    "alignment": 64,
    "tensor_count": 3,
    "kv_count": N,
    "metadata_keys": [keys in file order],
    "metadata": {
      key: {"type": "uint8"|"int8"|"uint16"|"int16"|"uint32"|"int32"|"float32"|
                    "bool"|"string"|"uint64"|"int64"|"float64"|"array",
            "value": <scalar>}                       for scalars
      key: {"type": "array", "element_type": "<type>", "value": [<scalars>]}
      key: {"type": "array", "element_type": "array",
            "value": [{"element_type": "<type>", "value": [...]}, ...]}   nested
    },
    "tensors": [{"name", "dims" (innermost first, ggml order), "type" (ggml type
                 number), "type_name", "offset" (relative to the data section),
                 "n_bytes", "values" (floats, dequantized, row-major)}],
    "data_offset": absolute byte offset of the data section
  }
Floats are the exact stored values (float32 values widened to double, written
with repr). 64-bit integers are written as exact JSON integers and some exceed
2^53, so parse them as UInt64/Int64, not through Double.

The expected JSON is built from the values this script asked GGUFWriter to
write, then checked against two readers: gguf.GGUFReader and a small
independent parser in this file (which also understands nested arrays, which
GGUFReader flattens).

Usage: python3 scripts/golden/gguf_goldens.py
"""
from __future__ import annotations

import json
import struct
import sys
from pathlib import Path
from typing import Any

import numpy as np

import gguf
from gguf import GGMLQuantizationType as T
from gguf import GGUFValueType as V
from gguf.constants import GGML_QUANT_SIZES

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "Tests" / "Fixtures" / "gguf"
ALIGNMENT = 64

TYPE_NAMES = {
    V.UINT8: "uint8", V.INT8: "int8", V.UINT16: "uint16", V.INT16: "int16",
    V.UINT32: "uint32", V.INT32: "int32", V.FLOAT32: "float32", V.BOOL: "bool",
    V.STRING: "string", V.ARRAY: "array", V.UINT64: "uint64", V.INT64: "int64",
    V.FLOAT64: "float64",
}


class FixtureWriter(gguf.GGUFWriter):
    """GGUFWriter that can also write an empty array (GGUFWriter refuses them)."""

    def _pack_val(self, val: Any, vtype: V, add_vtype: bool, sub_type: V | None = None) -> bytes:
        if vtype == V.ARRAY and isinstance(val, (list, tuple)) and len(val) == 0:
            out = bytearray()
            if add_vtype:
                out += self._pack("I", vtype)
            out += self._pack("I", sub_type if sub_type is not None else V.INT32)
            out += self._pack("Q", 0)
            return bytes(out)
        return super()._pack_val(val, vtype, add_vtype, sub_type)


def f32(x: float) -> float:
    return float(np.float32(x))


# (key, gguf value type, value written, element type for arrays, expected JSON value)
# general.architecture is added first by GGUFWriter itself; general.alignment by
# add_custom_alignment.
def metadata_plan() -> list[tuple[str, V, Any, V | None]]:
    return [
        ("test.uint8", V.UINT8, 200, None),
        ("test.int8", V.INT8, -100, None),
        ("test.uint16", V.UINT16, 60000, None),
        ("test.int16", V.INT16, -30000, None),
        ("test.uint32", V.UINT32, 4000000000, None),
        ("test.int32", V.INT32, -2000000000, None),
        ("test.float32", V.FLOAT32, 3.14159, None),
        ("test.bool_true", V.BOOL, True, None),
        ("test.bool_false", V.BOOL, False, None),
        ("test.string_ascii", V.STRING, "hello, loom", None),
        ("test.string_utf8", V.STRING, "h\u00e9llo w\u00f6rld \U0001F999 \u2014 \u65e5\u672c\u8a9e \U0001F600", None),
        ("test.string_empty", V.STRING, "", None),
        ("test.uint64", V.UINT64, 0xFEDCBA9876543210, None),
        ("test.int64", V.INT64, -0x123456789ABCDEF0, None),
        ("test.float64", V.FLOAT64, 2.718281828459045, None),
        ("test.array_int32", V.ARRAY, [1, -2, 3, 2147483647, -2147483648], V.INT32),
        ("test.array_string", V.ARRAY, ["a", "", "\u00fcn\u00efc\u00f6d\u00e9", "\U0001F999 llama"], V.STRING),
        ("test.array_float32", V.ARRAY, [0.5, -1.25, 1e-3], V.FLOAT32),
        ("test.array_bool", V.ARRAY, [True, False, True], V.BOOL),
        ("test.array_uint8", V.ARRAY, [0, 1, 255], V.UINT8),
        ("test.array_empty", V.ARRAY, [], V.INT32),
        ("test.array_nested", V.ARRAY, [[1, 2], [], [3, 4, 5]], V.ARRAY),
    ]


def expected_scalar(vtype: V, value: Any) -> Any:
    if vtype == V.FLOAT32:
        return f32(value)
    if vtype == V.FLOAT64:
        return float(value)
    if vtype == V.BOOL:
        return bool(value)
    return value


def expected_entry(vtype: V, value: Any, sub: V | None) -> dict:
    if vtype != V.ARRAY:
        return {"type": TYPE_NAMES[vtype], "value": expected_scalar(vtype, value)}
    assert sub is not None
    if sub == V.ARRAY:
        inner = []
        for item in value:
            inner.append({"element_type": "int32", "value": list(item)})
        return {"type": "array", "element_type": "array", "value": inner}
    return {"type": "array", "element_type": TYPE_NAMES[sub],
            "value": [expected_scalar(sub, v) for v in value]}


def tensor_plan() -> list[tuple[str, T, np.ndarray, np.ndarray]]:
    """(name, type, array to write, expected dequantized values (row-major))."""
    # F32, numpy shape (3, 4) -> ggml dims [4, 3]
    a = (np.arange(12, dtype=np.float32) * np.float32(0.5) - np.float32(2.0)).reshape(3, 4)
    # F16, dims [8]
    b = np.array([0.0, 1.0, -1.0, 0.5, 65504.0, -2.5, 1e-4, 3.14159], dtype=np.float16)
    # Q8_0, ggml dims [32, 2]: two rows of one block each
    src = np.concatenate([
        np.linspace(-1.0, 1.0, 32, dtype=np.float32),
        np.linspace(0.0, 0.3, 32, dtype=np.float32) ** 2,
    ]).reshape(2, 32).astype(np.float32)
    c = np.asarray(gguf.quants.quantize(src, T.Q8_0), dtype=np.uint8)  # (2, 34)
    c_vals = gguf.quants.dequantize(c, T.Q8_0)
    return [
        ("tensor_f32", T.F32, a, a.astype(np.float32)),
        ("tensor_f16", T.F16, b, b.astype(np.float32)),
        ("tensor_q8_0", T.Q8_0, c, np.asarray(c_vals, dtype=np.float32)),
    ]


# --- an independent minimal reader, used to check the fixture --------------------------

class MiniReader:
    SCALARS = {
        V.UINT8: "<B", V.INT8: "<b", V.UINT16: "<H", V.INT16: "<h", V.UINT32: "<I",
        V.INT32: "<i", V.FLOAT32: "<f", V.BOOL: "<?", V.UINT64: "<Q", V.INT64: "<q",
        V.FLOAT64: "<d",
    }

    def __init__(self, data: bytes):
        self.b = data
        self.p = 0

    def take(self, fmt: str) -> Any:
        (v,) = struct.unpack_from(fmt, self.b, self.p)
        self.p += struct.calcsize(fmt)
        return v

    def string(self) -> str:
        n = self.take("<Q")
        s = self.b[self.p:self.p + n].decode("utf-8")
        self.p += n
        return s

    def value(self, vtype: V) -> dict | Any:
        if vtype in self.SCALARS:
            return self.take(self.SCALARS[vtype])
        if vtype == V.STRING:
            return self.string()
        if vtype == V.ARRAY:
            et = V(self.take("<I"))
            n = self.take("<Q")
            items = [self.value(et) for _ in range(n)]
            return {"element_type": TYPE_NAMES[et], "value": items}
        raise ValueError(vtype)

    def parse(self) -> dict:
        assert self.b[:4] == b"GGUF"
        self.p = 4
        version = self.take("<I")
        n_tensors = self.take("<Q")
        n_kv = self.take("<Q")
        meta: dict[str, dict] = {}
        for _ in range(n_kv):
            key = self.string()
            vt = V(self.take("<I"))
            v = self.value(vt)
            if vt == V.ARRAY:
                meta[key] = {"type": "array", **v}
            else:
                meta[key] = {"type": TYPE_NAMES[vt], "value": v}
        tensors = []
        for _ in range(n_tensors):
            name = self.string()
            nd = self.take("<I")
            dims = [self.take("<Q") for _ in range(nd)]
            ttype = self.take("<I")
            off = self.take("<Q")
            tensors.append({"name": name, "dims": dims, "type": ttype, "offset": off})
        align = meta.get("general.alignment", {}).get("value", 32)
        data_offset = (self.p + align - 1) // align * align
        return {"version": version, "alignment": align, "metadata": meta,
                "tensors": tensors, "data_offset": data_offset}


def nested_to_plain(entry: dict) -> dict:
    """MiniReader returns nested arrays as {"element_type","value"} dicts already."""
    return entry


def main() -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / "all-types.gguf"

    w = FixtureWriter(str(path), arch="loom-test")
    w.add_custom_alignment(ALIGNMENT)
    plan = metadata_plan()
    for key, vtype, value, sub in plan:
        if vtype == V.ARRAY:
            w.add_key_value(key, value, V.ARRAY, sub_type=sub)
        else:
            w.add_key_value(key, value, vtype)
    tensors = tensor_plan()
    for name, ttype, arr, _ in tensors:
        if ttype in (T.F32, T.F16):
            w.add_tensor(name, arr)
        else:
            w.add_tensor(name, arr, raw_dtype=ttype)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()

    raw = path.read_bytes()
    assert raw[4:8] == struct.pack("<I", 3)
    v2 = bytearray(raw)
    v2[4:8] = struct.pack("<I", 2)
    (OUT / "all-types-v2.gguf").write_bytes(bytes(v2))

    # ---- expected document, from what was written
    metadata: dict[str, dict] = {
        "general.architecture": {"type": "string", "value": "loom-test"},
        "general.alignment": {"type": "uint32", "value": ALIGNMENT},
    }
    for key, vtype, value, sub in plan:
        metadata[key] = expected_entry(vtype, value, sub)

    mini = MiniReader(raw).parse()
    # key order in the file
    keys_in_file = list(mini["metadata"].keys())
    assert set(keys_in_file) == set(metadata.keys()), (keys_in_file, list(metadata))
    metadata = {k: metadata[k] for k in keys_in_file}

    tensor_docs = []
    offset = 0
    for (name, ttype, arr, vals), ti in zip(tensors, mini["tensors"]):
        block, tsize = GGML_QUANT_SIZES[ttype]
        if ttype in (T.F32, T.F16):
            dims = list(reversed(arr.shape))
        else:
            dims = list(reversed(gguf.quants.quant_shape_from_byte_shape(arr.shape, ttype)))
        n_el = int(np.prod(dims))
        n_bytes = n_el // block * tsize
        tensor_docs.append({
            "name": name,
            "dims": [int(d) for d in dims],
            "type": int(ttype),
            "type_name": ttype.name,
            "offset": offset,
            "n_bytes": n_bytes,
            "values": [float(v) for v in np.asarray(vals, dtype=np.float32).ravel().tolist()],
        })
        offset += (n_bytes + ALIGNMENT - 1) // ALIGNMENT * ALIGNMENT

    doc = {
        "version": 3,
        "alignment": ALIGNMENT,
        "tensor_count": len(tensor_docs),
        "kv_count": len(metadata),
        "metadata_keys": keys_in_file,
        "metadata": metadata,
        "tensors": tensor_docs,
        "data_offset": mini["data_offset"],
    }

    # ---- check against the independent mini reader
    assert mini["version"] == 3 and mini["alignment"] == ALIGNMENT
    for k, exp in metadata.items():
        got = mini["metadata"][k]
        assert got == exp, (k, got, exp)
    for exp, got in zip(tensor_docs, mini["tensors"]):
        for f in ("name", "dims", "type", "offset"):
            assert exp[f] == got[f], (f, exp, got)
    assert doc["data_offset"] % ALIGNMENT == 0
    assert len(raw) == doc["data_offset"] + tensor_docs[-1]["offset"] + tensor_docs[-1]["n_bytes"] + \
        ((-tensor_docs[-1]["n_bytes"]) % ALIGNMENT)

    # ---- check against gguf.GGUFReader (both files)
    for fname, version in (("all-types.gguf", 3), ("all-types-v2.gguf", 2)):
        r = gguf.GGUFReader(str(OUT / fname))
        assert int(r.fields["GGUF.version"].contents()) == version
        assert r.alignment == ALIGNMENT
        assert r.data_offset == doc["data_offset"], (r.data_offset, doc["data_offset"])
        user_keys = [k for k in r.fields if not k.startswith("GGUF.")]
        assert user_keys == keys_in_file, user_keys
        for k, exp in metadata.items():
            f = r.fields[k]
            assert TYPE_NAMES[f.types[0]] == exp["type"], k
            got = f.contents()
            if exp["type"] != "array":
                assert got == exp["value"], (k, got, exp["value"])
            elif exp["element_type"] == "array":
                flat = [x for item in exp["value"] for x in item["value"]]
                assert got == flat, (k, got, flat)  # GGUFReader flattens nested arrays
            else:
                if exp["element_type"] == "float32":
                    got = [float(np.float32(x)) for x in got]
                assert got == exp["value"], (k, got, exp["value"])
        for exp, t in zip(tensor_docs, r.tensors):
            assert t.name == exp["name"]
            assert int(t.tensor_type) == exp["type"]
            assert t.shape.tolist() == exp["dims"]
            assert t.data_offset == doc["data_offset"] + exp["offset"]
            vals = gguf.quants.dequantize(np.asarray(t.data), t.tensor_type)
            assert [float(v) for v in np.asarray(vals, dtype=np.float32).ravel()] == exp["values"], exp["name"]

    with open(OUT / "all-types.json", "w", encoding="utf-8") as f:
        json.dump(doc, f, indent=1, ensure_ascii=False)
        f.write("\n")
    print(f"all-types.gguf: {len(raw)} bytes, {len(metadata)} keys, data_offset {doc['data_offset']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
