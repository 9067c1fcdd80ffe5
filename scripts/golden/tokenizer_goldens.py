#!/usr/bin/env python3
"""Tokenizer goldens from llama.cpp for SmolLM2's BPE vocabulary.

Writes:
  Tests/Fixtures/tokenizer/smollm2.json        the real model (pre "smollm")
  Tests/Fixtures/tokenizer/pre-llama-bpe.json  same vocab, pre "llama-bpe"
  Tests/Fixtures/tokenizer/pre-qwen2.json      same vocab, pre "qwen2"
  Tests/Fixtures/tokenizer/pre-gpt2.json       same vocab, pre "gpt-2"

The pre-tokenizer variants are vocab-only copies of the model made in a
temporary directory (never committed): every metadata key is copied and only
tokenizer.ggml.pre is changed. (llama.cpp spells GPT-2's pre-tokenizer
"gpt-2" and rejects "gpt2".)

Usage: python3 scripts/golden/tokenizer_goldens.py [--model PATH] [--tmp DIR]
"""

from __future__ import annotations

import argparse
import os
import tempfile

import golden_common as gc

LONG_PARAGRAPH = (
    "The lighthouse keeper climbed the spiral stairs every evening at dusk, "
    "counting all 117 steps out loud as his father had done before him. "
    "He didn't mind the wind, which rattled the windows and whistled through "
    "the gaps in the old brickwork; he'd long since learned to sleep through "
    "it. What he minded were the ships that ignored the light: in 1987 alone, "
    "three of them ran aground on the reef, and one (the \"Marianne\") was "
    "never recovered. Now, decades later, the lamp is automated, the keeper's "
    "cottage is a museum, and visitors pay $4.50 to climb those same stairs."
)

# (name, text, special)
CASES: list[tuple[str, str, bool]] = [
    ("empty", "", False),
    ("hello_world", "Hello world", False),
    ("sentence", "The quick brown fox jumps over the lazy dog.", False),
    ("punctuation", "Wait... what?! No way -- really? (Yes; really.) \"Quoted\", 'single'.", False),
    ("contractions_lower", "It's what they're saying: we'll see, I've done it, you'd know, I'm sure, don't.", False),
    ("contractions_upper", "IT'S WHAT THEY'RE SAYING: WE'LL SEE, I'VE DONE IT, YOU'D KNOW, I'M SURE, DON'T.", False),
    ("contractions_mixed_case", "John'S car and Mary'Re friends We'Ll go", False),
    ("possessive_plural", "the dogs' bowls and James's hat", False),
    ("code_python", "def fibonacci(n):\n    if n < 2:\n        return n\n    return fibonacci(n - 1) + fibonacci(n - 2)\n", False),
    ("code_json", "{\"name\": \"Loom\", \"version\": [1, 2, 3], \"ok\": true, \"nested\": {\"x\": null}}", False),
    ("code_c", "int main(void) {\n\tfor (int i = 0; i < 10; ++i) {\n\t\tprintf(\"%d\\n\", i);\n\t}\n\treturn 0;\n}\n", False),
    ("number_1", "1", False),
    ("number_12", "12", False),
    ("number_123", "123", False),
    ("number_1234567", "1234567", False),
    ("number_pi", "3.14159", False),
    ("number_million_commas", "1,000,000", False),
    ("numbers_in_text", "In 2024 we sold 1234567 units at $19.99 each, up 12% from 123 in 1999.", False),
    ("spaces_2", "a  b", False),
    ("spaces_3", "a   b", False),
    ("spaces_10", "a          b", False),
    ("leading_space", " leading", False),
    ("leading_spaces_3", "   three leading", False),
    ("trailing_space", "trailing ", False),
    ("trailing_spaces_3", "trailing   ", False),
    ("only_spaces", "     ", False),
    ("tabs", "col1\tcol2\t\tcol3\t", False),
    ("newline_single", "line one\nline two", False),
    ("newlines_mixed", "para one\n\n\npara two\n\nend\n", False),
    ("crlf", "first\r\nsecond\r\n", False),
    ("space_newline_mix", "a \n b  \n\n  c", False),
    ("indent_after_blank_line", "x = 1\n\n    y = 2  \n  \n", False),
    ("accents", "café naïve Zürich résumé façade", False),
    ("accents_upper", "CAFÉ NAÏVE ZÜRICH", False),
    ("emoji_single", "I love it 😀", False),
    ("emoji_zwj_family", "family: 👨‍👩‍👧‍👦", False),
    ("emoji_flags", "flags 🇫🇷🇯🇵🇺🇸", False),
    ("emoji_skin_tones", "👍🏽 👋🏿 👌🏻", False),
    ("chinese", "我爱自然语言处理。今天天气很好！", False),
    ("japanese", "こんにちは、世界。東京はカタカナとひらがなを使います。", False),
    ("korean", "안녕하세요, 세계! 한국어 문장입니다.", False),
    ("arabic", "مرحبا بالعالم، كيف حالك؟", False),
    ("cyrillic", "Привет, мир! Как дела?", False),
    ("greek_math", "∑ αβγ ≤ ∞ → π ≈ 3.14", False),
    ("chat_special_true", "<|im_start|>user\nHi<|im_end|>\n", True),
    ("chat_special_false", "<|im_start|>user\nHi<|im_end|>\n", False),
    ("chat_full_special_true",
     "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
     "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n", True),
    ("endoftext_special_true", "Hello<|endoftext|>World", True),
    ("endoftext_special_false", "Hello<|endoftext|>World", False),
    ("special_adjacent_text_true", " <|im_end|> x<|im_start|>", True),
    ("url_email", "See https://example.com/path?q=1&r=two or mail me@example.org.", False),
    ("markdown", "# Title\n\n- item *one*\n- item **two**\n\n```sh\nls -la\n```\n", False),
    ("mixed_scripts", "Loom работает 很好 😀 and naïvely!", False),
    ("repeated_chars", "aaaaaaaaaaaaaaaa!!!!!!!!???", False),
    ("long_paragraph", LONG_PARAGRAPH, False),
]


def tokenize_all(model_path: str) -> list[dict]:
    llm = gc.quiet_llama(model_path=model_path, vocab_only=True)
    cases = []
    for name, text, special in CASES:
        ids = llm.tokenize(text.encode("utf-8"), add_bos=False, special=special)
        ids = [int(t) for t in ids]
        joined = gc.detokenize(llm, ids, special=True)
        cases.append(
            {
                "name": name,
                "text": text,
                "special": special,
                "ids": ids,
                "pieces": gc.pieces(llm, ids, special=False),
                "pieces_special": gc.pieces(llm, ids, special=True),
                "roundtrip": joined == text.encode("utf-8"),
            }
        )
    del llm
    return cases


def document(model_path: str, pre: str, cases: list[dict], note: str) -> dict:
    return {
        "generator": gc.generator_info(script="scripts/golden/tokenizer_goldens.py"),
        "model_file": os.path.basename(model_path),
        "tokenizer_model": "gpt2",
        "pre": pre,
        "add_bos": False,
        "note": note,
        "cases": cases,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=None)
    ap.add_argument("--tmp", default=None, help="where to put the vocab-only variants")
    args = ap.parse_args()
    model = args.model or gc.default_model_path()
    out_dir = gc.FIXTURES / "tokenizer"

    base = tokenize_all(model)
    gc.write_json(
        out_dir / "smollm2.json",
        document(model, "smollm", base,
                 "Real model. ids = Llama(vocab_only=True).tokenize(text, add_bos=False, special=special). "
                 "pieces[i] = bytes of llama_token_to_piece(ids[i], lstrip=0, special=False) (control tokens render empty); "
                 "pieces_special[i] = same with special=True (control tokens render as their text). "
                 "roundtrip = concatenated pieces_special == UTF-8 of text."),
    )

    with tempfile.TemporaryDirectory(prefix="loom-golden-", dir=args.tmp) as tmpdir:
        variants(model, tmpdir, out_dir, base)


def variants(model: str, tmpdir: str, out_dir, base: list[dict]) -> None:
    # llama.cpp spells GPT-2's pre-tokenizer "gpt-2"; it rejects "gpt2"
    # ("unknown pre-tokenizer type").
    for stem, pre in (("llama-bpe", "llama-bpe"), ("qwen2", "qwen2"), ("gpt2", "gpt-2")):
        variant = os.path.join(tmpdir, f"smollm2-vocab-pre-{stem}.gguf")
        gc.copy_gguf_metadata(model, variant, {"tokenizer.ggml.pre": pre})
        cases = tokenize_all(variant)
        differ = [c["name"] for b, c in zip(base, cases) if b["ids"] != c["ids"]]
        doc = document(model, pre, cases,
                       f"SmolLM2's vocabulary and merges with tokenizer.ggml.pre changed to {pre!r} "
                       "(vocab-only copy of the real model, not committed). Same fields as smollm2.json; "
                       "differs_from_smollm2 names the cases whose ids differ from smollm2.json.")
        doc["differs_from_smollm2"] = differ
        gc.write_json(out_dir / f"pre-{stem}.json", doc)
        print(f"pre={pre}: {len(differ)}/{len(cases)} cases differ from smollm: {', '.join(differ)}")
        os.remove(variant)


if __name__ == "__main__":
    main()
