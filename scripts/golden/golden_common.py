"""Shared helpers for the golden-fixture scripts (see README.md beside this file).

Nothing here is imported by Loom itself; these scripts only produce JSON
fixtures under Tests/Fixtures/ from llama.cpp (through llama-cpp-python).
"""

from __future__ import annotations

import json
import os
import platform
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
FIXTURES = REPO_ROOT / "Tests" / "Fixtures"
MODEL_FILE_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"


def default_model_path() -> str:
    """$LOOM_MODEL, else the place scripts/fetch-model.sh puts it, else /tmp/models."""
    candidates = []
    if os.environ.get("LOOM_MODEL"):
        candidates.append(Path(os.environ["LOOM_MODEL"]))
    candidates.append(Path.home() / ".cache" / "loom" / "models" / MODEL_FILE_NAME)
    candidates.append(Path("/tmp/models") / MODEL_FILE_NAME)
    for c in candidates:
        if c.is_file():
            return str(c)
    sys.exit(
        "model not found; pass --model PATH, set LOOM_MODEL, or run scripts/fetch-model.sh"
    )


def generator_info(**extra) -> dict:
    import llama_cpp

    info = {
        "tool": "llama-cpp-python",
        "llama_cpp_version": llama_cpp.__version__,
        "python": platform.python_version(),
        "script": None,
    }
    info.update(extra)
    return info


def _is_scalar(x) -> bool:
    return x is None or isinstance(x, (bool, int, float, str))


def _dumps(obj, level: int) -> str:
    """JSON with sorted keys, one-space indent, and lists of scalars
    (ids, piece bytes, [id, logprob] pairs) kept on one line."""
    pad, inner = " " * level, " " * (level + 1)
    if _is_scalar(obj):
        return json.dumps(obj, ensure_ascii=False)
    if isinstance(obj, dict):
        if not obj:
            return "{}"
        items = [f"{inner}{json.dumps(str(k), ensure_ascii=False)}: {_dumps(obj[k], level + 1)}"
                 for k in sorted(obj)]
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    if isinstance(obj, (list, tuple)):
        if all(_is_scalar(x) for x in obj):
            return "[" + ", ".join(json.dumps(x, ensure_ascii=False) for x in obj) + "]"
        return "[\n" + ",\n".join(inner + _dumps(x, level + 1) for x in obj) + "\n" + pad + "]"
    raise TypeError(f"not JSON-serialisable: {type(obj)}")


def write_json(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = _dumps(obj, 0)
    assert json.loads(text) == json.loads(json.dumps(obj))
    path.write_text(text + "\n", encoding="utf-8")
    print(f"wrote {path.relative_to(REPO_ROOT)} ({len(text.encode('utf-8'))} bytes)")


def quiet_llama(**kwargs):
    """Builds a llama_cpp.Llama with its logging silenced."""
    import llama_cpp

    kwargs.setdefault("verbose", False)
    return llama_cpp.Llama(**kwargs)


def copy_gguf_metadata(src: str, dst: str, overrides: dict, drop_tensors: bool = True) -> None:
    """Writes dst with every metadata key of src (values from `overrides`
    replacing same-named string keys) and, unless drop_tensors, every tensor.

    Used to make vocab-only variants of the real model with another
    tokenizer.ggml.pre; such copies live in /tmp and are never committed.
    """
    import gguf

    reader = gguf.GGUFReader(src)
    arch = reader.fields["general.architecture"].contents()
    writer = gguf.GGUFWriter(dst, arch)
    for key, field in reader.fields.items():
        if key.startswith("GGUF.") or key == "general.architecture":
            continue
        vtype = field.types[0]
        sub_type = field.types[1] if vtype == gguf.GGUFValueType.ARRAY else None
        value = overrides.get(key, field.contents())
        writer.add_key_value(key, value, vtype, sub_type)
    if not drop_tensors:
        for t in reader.tensors:
            writer.add_tensor(
                t.name, t.data, raw_shape=t.data.shape, raw_dtype=t.tensor_type
            )
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def token_piece(llm, token: int, special: bool) -> bytes:
    """llama_token_to_piece(vocab, token, lstrip=0, special) with a buffer
    large enough for any token (Llama.detokenize uses a fixed 32-byte one)."""
    import ctypes

    import llama_cpp

    vocab = llm._model.vocab
    size = 64
    while True:
        buf = (ctypes.c_char * size)()
        n = llama_cpp.llama_token_to_piece(vocab, llama_cpp.llama_token(token), buf, size, 0, special)
        if n >= 0:
            return bytes(buf[:n])
        size = -n + 1


def pieces(llm, ids, special: bool) -> list[list[int]]:
    """Per-id piece bytes as lists of ints (JSON has no byte strings)."""
    return [list(token_piece(llm, i, special)) for i in ids]


def detokenize(llm, ids, special: bool) -> bytes:
    return b"".join(token_piece(llm, i, special) for i in ids)
