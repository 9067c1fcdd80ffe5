#!/usr/bin/env python3
"""A tiny SentencePiece ("llama" tokenizer model) vocabulary and its goldens.

No real Llama-2/Mistral style SPM model is available, so this trains a small
BPE SentencePiece model (byte_fallback, identity normalisation, dummy prefix,
digits split -- the options Llama 2 uses) on a short corpus written here, and
writes it as a vocab-only GGUF that llama.cpp loads:

  Tests/Fixtures/spm/spm-tiny.gguf   (committed; small)
  Tests/Fixtures/spm/spm-tiny.json   (cases tokenized by llama.cpp)

The GGUF is only rebuilt with --rebuild-model (or when it is missing), so the
committed model stays stable; the JSON is always regenerated from it.

Usage: python3 scripts/golden/spm_goldens.py [--rebuild-model]
"""

from __future__ import annotations

import argparse
import os
import tempfile

import golden_common as gc

GGUF_PATH = gc.FIXTURES / "spm" / "spm-tiny.gguf"
JSON_PATH = gc.FIXTURES / "spm" / "spm-tiny.json"
VOCAB_SIZE = 800

CORPUS_EN = """\
Once upon a time there was a small village at the edge of a great forest.
The people of the village were farmers, weavers and bakers, and every morning
the smell of fresh bread drifted through the narrow streets.
A young girl named Lina lived with her grandmother in a house with a green door.
Every day she walked to the river to fetch water, and every day she counted the
stones on the path: one, two, three, four, five, six, seven, eight, nine, ten.
One winter the river froze and the village ran short of food.
Lina decided that she would cross the forest to reach the town on the other side.
Her grandmother gave her a warm coat, a loaf of bread and an old brass lantern.
"Keep the light burning," she said, "and you will always find your way home."
The forest was dark and quiet, and the snow was deep between the trees.
Lina walked for hours, listening to the wind and the creaking of the branches.
When night came she lit the lantern and sat beneath a tall pine tree.
A fox came out of the shadows and looked at her with bright curious eyes.
"Where are you going?" asked the fox. "To the town," answered Lina.
"The town is far away, but I know a shorter path," said the fox.
They walked together through the night, and by morning they reached the hill
above the town. The market was already open, and the merchants were shouting.
Lina traded her lantern for three sacks of flour and a basket of apples.
She thanked the fox, who smiled and disappeared back into the forest.
When she returned, the whole village came out to meet her.
They baked bread together, and nobody went hungry that winter.
Years later, Lina became the mayor of the village, and she always kept
a small brass lantern in the window of the house with the green door.
The computer program reads the input file, splits it into tokens and counts
how often each token appears. Then it prints the results in a table.
We tested the model on 1234 examples and measured an accuracy of 87.5 percent.
The meeting is scheduled for Monday, March 3rd, at 10:30 in room 204.
Please send your questions to the team before Friday so that we can prepare.
It's not what you say, it's how you say it. They're here, we'll see, I've got it.
Water boils at 100 degrees Celsius and freezes at 0 degrees at sea level.
The quick brown fox jumps over the lazy dog while the cat sleeps in the sun.
Learning a new language takes time, patience and a lot of practice.
Reading books, listening to music and talking with friends all help.
The history of the city goes back more than two thousand years.
Scientists study the stars, the planets and the galaxies far beyond our own.
def add(a, b):
    return a + b
for i in range(10):
    print(i, add(i, i))
if (x > 0) { return x; } else { return -x; }
"""

CORPUS_INTL = """\
Le café est délicieux et la crème brûlée aussi. Où est la gare, s'il vous plaît?
Der Zürcher Bahnhof ist groß, und die Brücke über die Limmat ist schön.
El niño comió una manzana en la mañana. ¿Cómo estás? Muy bien, gracias.
Ich möchte einen Kaffee, bitte. Naïve résumé façade déjà vu.
我爱学习。今天天气很好。我们一起去公园吧。
東京は日本の首都です。こんにちは、世界。ありがとうございます。
"""


def corpus_lines() -> list[str]:
    en = [l for l in CORPUS_EN.splitlines() if l.strip()]
    intl = [l for l in CORPUS_INTL.splitlines() if l.strip()]
    # The English text a few times (lowercased and title-cased too) so BPE has
    # enough pair statistics for ~800 pieces; the rest once or twice.
    lines = en + [l.lower() for l in en] + [l.title() for l in en] + intl * 2
    return lines


def train(workdir: str) -> str:
    import sentencepiece as spm

    corpus = os.path.join(workdir, "corpus.txt")
    with open(corpus, "w", encoding="utf-8") as f:
        f.write("\n".join(corpus_lines()) + "\n")
    prefix = os.path.join(workdir, "spm-tiny")
    spm.SentencePieceTrainer.train(
        input=corpus,
        model_prefix=prefix,
        model_type="bpe",
        vocab_size=VOCAB_SIZE,
        character_coverage=1.0,
        byte_fallback=True,
        split_digits=True,
        normalization_rule_name="identity",
        remove_extra_whitespaces=False,
        add_dummy_prefix=True,
        allow_whitespace_only_pieces=True,
        split_by_whitespace=True,
        max_sentence_length=4192,
        unk_id=0,
        bos_id=1,
        eos_id=2,
        pad_id=-1,
        num_threads=1,
        input_sentence_size=0,
        shuffle_input_sentence=False,
        minloglevel=2,
    )
    return prefix + ".model"


def write_gguf(sp_model: str, dst: str) -> None:
    import gguf
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_file=sp_model)
    tokens, scores, types = [], [], []
    for i in range(sp.get_piece_size()):
        tokens.append(sp.id_to_piece(i))
        scores.append(sp.get_score(i))
        # llama.cpp's token types: 1 normal, 2 unknown, 3 control, 5 unused, 6 byte.
        if sp.is_unknown(i):
            types.append(2)
        elif sp.is_control(i):
            types.append(3)
        elif sp.is_byte(i):
            types.append(6)
        elif sp.is_unused(i):
            types.append(5)
        else:
            types.append(1)
    assert sp.unk_id() == 0 and sp.bos_id() == 1 and sp.eos_id() == 2

    w = gguf.GGUFWriter(dst, "llama")
    w.add_name("spm-tiny (Loom test vocabulary)")
    w.add_context_length(512)
    w.add_embedding_length(64)
    w.add_block_count(1)
    w.add_feed_forward_length(128)
    w.add_head_count(4)
    w.add_head_count_kv(4)
    w.add_rope_dimension_count(16)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_vocab_size(len(tokens))
    w.add_tokenizer_model("llama")
    w.add_tokenizer_pre("default")
    w.add_token_list(tokens)
    w.add_token_scores(scores)
    w.add_token_types(types)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_unk_token_id(0)
    w.add_add_bos_token(True)
    w.add_add_eos_token(False)
    w.add_add_space_prefix(True)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


CASES: list[tuple[str, str, bool]] = [
    ("empty", "", False),
    ("hello", "Hello world", False),
    ("sentence", "The quick brown fox jumps over the lazy dog.", False),
    ("in_corpus", "Once upon a time there was a small village.", False),
    ("lowercase", "the forest was dark and quiet", False),
    ("punctuation", "Wait... what?! \"Yes,\" she said; (really).", False),
    ("contractions", "It's what they're saying: we'll see.", False),
    ("digits", "1234567 and 3.14159 and 1,000,000", False),
    ("leading_space", " leading", False),
    ("leading_spaces_3", "   three", False),
    ("spaces_2", "a  b", False),
    ("spaces_5", "a     b", False),
    ("trailing_space", "end ", False),
    ("only_spaces", "    ", False),
    ("newline", "line one\nline two", False),
    ("newlines_multi", "a\n\n\nb\n", False),
    ("crlf", "first\r\nsecond", False),
    ("tab", "col1\tcol2", False),
    ("code", "def add(a, b):\n    return a + b\n", False),
    ("braces", "if (x > 0) { return x; }", False),
    ("accents_known", "café crème brûlée Zürich", False),
    ("accents_unknown", "Ångström São Paulo Øresund", False),
    ("cjk_known", "我爱学习。東京", False),
    ("cjk_unknown", "龍 鬱 韓國語 한국어", False),
    ("emoji_byte_fallback", "I love it 😀", False),
    ("emoji_zwj", "👨‍👩‍👧", False),
    ("cyrillic_byte_fallback", "Привет мир", False),
    ("arabic_byte_fallback", "مرحبا", False),
    ("mixed", "Lina says: Привет! 😀 café 123", False),
    ("eos_special_true", "Hello</s>", True),
    ("eos_special_false", "Hello</s>", False),
    ("bos_eos_special_true", "<s>Hi</s> there", True),
    ("unk_text_special_true", "a<unk>b", True),
    ("byte_token_text", "<0x41> literal", False),
    ("underscore_meta_char", "a▁b ▁", False),
    ("long", "The market was already open, and the merchants were shouting. "
             "Lina traded her lantern for three sacks of flour and a basket of apples. "
             "Years later, Lina became the mayor of the village.", False),
]


def tokenize_cases(gguf_path: str, sp_model: str | None) -> list[dict]:
    llm = gc.quiet_llama(model_path=gguf_path, vocab_only=True)
    sp = None
    if sp_model:
        import sentencepiece as spm

        sp = spm.SentencePieceProcessor(model_file=sp_model)
    out = []
    for name, text, special in CASES:
        ids = [int(t) for t in llm.tokenize(text.encode("utf-8"), add_bos=True, special=special)]
        case = {
            "name": name,
            "text": text,
            "special": special,
            "ids": ids,
            "pieces": gc.pieces(llm, ids, special=False),
            "pieces_special": gc.pieces(llm, ids, special=True),
        }
        if sp is not None and not special:
            ref = [1] + sp.encode(text)
            if ref != ids:
                print(f"  note: sentencepiece differs from llama.cpp on {name!r}: sp={ref} llama={ids}")
        out.append(case)
    del llm
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rebuild-model", action="store_true")
    args = ap.parse_args()

    sp_model = None
    with tempfile.TemporaryDirectory(prefix="loom-spm-") as work:
        if args.rebuild_model or not GGUF_PATH.exists():
            sp_model = train(work)
            GGUF_PATH.parent.mkdir(parents=True, exist_ok=True)
            write_gguf(sp_model, str(GGUF_PATH))
            print(f"wrote {GGUF_PATH.relative_to(gc.REPO_ROOT)} ({GGUF_PATH.stat().st_size} bytes)")
        cases = tokenize_cases(str(GGUF_PATH), sp_model)

    import gguf

    r = gguf.GGUFReader(str(GGUF_PATH))
    n_vocab = len(r.fields["tokenizer.ggml.tokens"].data)
    gc.write_json(
        JSON_PATH,
        {
            "generator": gc.generator_info(script="scripts/golden/spm_goldens.py"),
            "model_file": GGUF_PATH.name,
            "tokenizer_model": "llama",
            "n_vocab": n_vocab,
            "bos_id": 1,
            "eos_id": 2,
            "unk_id": 0,
            "add_bos": True,
            "add_space_prefix": True,
            "note": "ids = Llama(vocab_only=True).tokenize(text, add_bos=True, special=special) on spm-tiny.gguf. "
                    "pieces[i] = bytes of llama_token_to_piece(ids[i], lstrip=0, special=False) (so a leading U+2581 renders as a space, byte tokens <0xXX> as that one raw byte, control tokens empty); pieces_special[i] = same with special=True.",
            "cases": cases,
        },
    )


if __name__ == "__main__":
    main()
