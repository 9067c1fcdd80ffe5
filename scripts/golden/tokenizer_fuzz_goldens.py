#!/usr/bin/env python3
"""Randomised tokenizer goldens from llama.cpp: many short texts drawn from a
pool of the characters tokenizers get wrong (exotic whitespace, non-ASCII
digits, combining marks, emoji, apostrophes in every case, special-token
spellings and their fragments, control and unassigned code points).

Writes Tests/Fixtures/tokenizer/fuzz.json: the texts once, and for each
pre-tokenizer the ids llama.cpp gives on SmolLM2's vocabulary with
tokenizer.ggml.pre set to it (vocab-only copies in a temporary directory,
never committed), plus the ids for spm-tiny.gguf (SentencePiece, add_bos).
Every third text is tokenized with special=True.

Usage: python3 scripts/golden/tokenizer_fuzz_goldens.py [--model PATH] [--count N] [--seed S]
"""

from __future__ import annotations

import argparse
import os
import random
import tempfile

import golden_common as gc

PRE_TOKENIZERS = ["smollm", "llama-bpe", "qwen2", "gpt-2", "default", "stablelm2"]

POOL = (
    list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") * 3
    + list("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~") * 2
    + [" "] * 30
    + ["  ", "\t", "\n", "\n\n", "\r\n", "\r", "\v", "\f", "\u0085", "\u00a0", "\u2003", "\u3000", "\u200b", "\u1680"]
    + ["'s", "'S", "'t", "'T", "'ll", "'LL", "'lL", "'re", "'Re", "'ve", "'VE", "'m", "'d", "'D", "'x"]
    + ["٣", "²", "½", "Ⅻ", "٤٥٦", "１２"]
    + ["é", "ß", "Ω", "ж", "東", "京", "ﾀ", "e\u0301", "\u0301", "ｱ", "한", "ى", "ก"]
    + ["😀", "👍🏽", "\u200d", "🇫🇷", "€", "∑", "→", "©", "°", "\u00ad"]
    + ["<|im_start|>", "<|im_end|>", "<|endoftext|>", "<reponame>", "<|im", "|>", "<s>", "</s>", "<unk>",
       "\u2581", "<0x41>", "<|im_start|><|im_end|>", "<<|endoftext|>>"]
    + ["\x00", "\x01", "\x1f", "\x7f", "\u0378", "\ue000", "\ufffd", "\U0001F9D1", "\U00020000"]
    + ["hello", " world", "The", " the", "ing", " 123", "1,000", "3.14", "don't", "I'M"]
)


def tokenize(path: str, texts: list[str], add_bos: bool) -> list[list[int]]:
    llm = gc.quiet_llama(model_path=path, vocab_only=True)
    return [list(llm.tokenize(t.encode("utf-8"), add_bos=add_bos, special=(i % 3 == 0))) for i, t in enumerate(texts)]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=None)
    ap.add_argument("--count", type=int, default=250)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    model = args.model or gc.default_model_path()
    rng = random.Random(args.seed)
    texts = ["".join(rng.choice(POOL) for _ in range(rng.randint(1, 60))) for _ in range(args.count)]

    ids = {}
    with tempfile.TemporaryDirectory(prefix="loom-fuzz-") as tmpdir:
        for pre in PRE_TOKENIZERS:
            variant = os.path.join(tmpdir, f"smollm2-vocab-pre-{pre}.gguf")
            gc.copy_gguf_metadata(model, variant, {"tokenizer.ggml.pre": pre})
            ids[pre] = tokenize(variant, texts, add_bos=False)
    ids["spm-tiny"] = tokenize(str(gc.FIXTURES / "spm" / "spm-tiny.gguf"), texts, add_bos=True)

    gc.write_json(gc.FIXTURES / "tokenizer" / "fuzz.json", {
        "generator": gc.generator_info(script="scripts/golden/tokenizer_fuzz_goldens.py", seed=args.seed),
        "model_file": gc.MODEL_FILE_NAME,
        "note": "ids[pre][i] = Llama(vocab_only=True).tokenize(texts[i], add_bos, special=(i % 3 == 0)) on SmolLM2's "
                "vocabulary with tokenizer.ggml.pre = pre (add_bos false), or on spm-tiny.gguf for 'spm-tiny' (add_bos true).",
        "texts": texts,
        "ids": ids,
    })


if __name__ == "__main__":
    main()
