#!/usr/bin/env python3
"""Greedy-generation goldens from llama.cpp on SmolLM2-135M-Instruct Q4_1.

Writes Tests/Fixtures/generation/smollm2-greedy.json: for each prompt the
prompt ids and 32 greedy steps. Each step's log-probabilities are the
float64 log_softmax of llama.cpp's logits for the last position; the step's
token is their argmax. Generation never stops at EOS: all 32 steps are kept.
No sampler is involved: the script drives Llama.eval() itself.

Usage: python3 scripts/golden/generation_goldens.py [--model PATH]
"""

from __future__ import annotations

import argparse
import os

import numpy as np

import golden_common as gc

N_STEPS = 32
TOP_K = 5
N_THREADS = 2
N_CTX = 2048
N_BATCH = 512
SEED = 0

SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"

LONG_PROMPT = (
    "The history of the printing press begins long before Johannes Gutenberg. "
    "In China, craftsmen carved entire pages of text into wooden blocks as early "
    "as the seventh century, and by the eleventh century an inventor named Bi Sheng "
    "had experimented with movable type made of baked clay. Korean printers later "
    "cast movable type in bronze, producing books more than seventy years before "
    "the famous Bible was printed in Mainz. What made Gutenberg's contribution so "
    "important was not a single invention but a combination of several: a hand mould "
    "that allowed metal type to be cast quickly and precisely, an oil-based ink that "
    "stuck to metal, and a screw press adapted from the presses used to make wine and "
    "olive oil. Together these allowed a small workshop to produce hundreds of copies "
    "of a book in the time it had once taken a scribe to copy one. Within fifty years, "
    "printing shops had opened in more than two hundred European cities, and millions "
    "of books were in circulation. The consequences of this change were enormous, and "
    "historians still argue about which of them mattered most. In summary, the printing press"
)

RAW_PROMPTS = [
    ("capital_france", "The capital of France is"),
    ("fibonacci", "def fibonacci(n):"),
    ("counting", "1, 2, 3, 4,"),
    ("story", "Once upon a time, in a small village,"),
    ("json", "{\"name\": \"Alice\", \"age\":"),
    ("long_paragraph", LONG_PROMPT),
]

CHAT_QUESTIONS = [
    ("chat_capital", "What is the capital of France?"),
    ("chat_math", "What is 12 times 7?"),
    ("chat_haiku", "Write a haiku about the ocean."),
    ("chat_python", "Write a Python function that reverses a string."),
    ("chat_explain", "Explain photosynthesis in one sentence."),
    ("chat_hello", "Hi! How are you today?"),
]


def chatml(question: str) -> str:
    return (
        f"<|im_start|>system\n{SYSTEM}<|im_end|>\n"
        f"<|im_start|>user\n{question}<|im_end|>\n"
        f"<|im_start|>assistant\n"
    )


def log_softmax64(logits) -> np.ndarray:
    x = np.asarray(logits, dtype=np.float64)
    m = x.max()
    return x - (m + np.log(np.exp(x - m).sum()))


def greedy(llm, prompt_ids: list[int]) -> dict:
    llm.reset()
    llm.eval(prompt_ids)
    tokens, top5 = [], []
    for step in range(N_STEPS):
        logits = llm.scores[llm.n_tokens - 1]  # float32 row for the last position
        lp = log_softmax64(logits)
        # argmax with ties broken toward the lower id (np.argmax does that)
        tok = int(np.argmax(lp))
        order = np.argsort(-lp, kind="stable")[:TOP_K]
        assert int(order[0]) == tok
        tokens.append(tok)
        top5.append([[int(i), float(lp[i])] for i in order])
        if step + 1 < N_STEPS:
            llm.eval([tok])
    return {
        "tokens": tokens,
        "top5": top5,
        "text": gc.detokenize(llm, tokens, special=False).decode("utf-8", errors="replace"),
        "text_special": gc.detokenize(llm, tokens, special=True).decode("utf-8", errors="replace"),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=None)
    args = ap.parse_args()
    model = args.model or gc.default_model_path()

    llm = gc.quiet_llama(
        model_path=model,
        n_ctx=N_CTX,
        n_threads=N_THREADS,
        n_batch=N_BATCH,
        logits_all=True,
        seed=SEED,
    )
    cases = []
    prompts = [(n, p, "raw") for n, p in RAW_PROMPTS] + [
        (n, chatml(q), "chat") for n, q in CHAT_QUESTIONS
    ]
    for name, prompt, kind in prompts:
        ids = [int(t) for t in llm.tokenize(prompt.encode("utf-8"), add_bos=False, special=True)]
        res = greedy(llm, ids)
        case = {"name": name, "kind": kind, "prompt": prompt, "prompt_ids": ids}
        case.update(res)
        margin = res["top5"][0][0][1] - res["top5"][0][1][1]
        print(f"{name}: {len(ids)} prompt tokens, first-step margin {margin:.3f}: {res['text']!r}")
        cases.append(case)

    gc.write_json(
        gc.FIXTURES / "generation" / "smollm2-greedy.json",
        {
            "generator": gc.generator_info(
                script="scripts/golden/generation_goldens.py",
                n_threads=N_THREADS,
                n_ctx=N_CTX,
                n_batch=N_BATCH,
                seed=SEED,
                logits_all=True,
            ),
            "model_file": os.path.basename(model),
            "n_steps": N_STEPS,
            "top_k": TOP_K,
            "add_bos": False,
            "system_prompt": SYSTEM,
            "note": "tokens[i] = argmax of log_softmax (float64) of llama.cpp's logits after evaluating "
                    "prompt_ids + tokens[:i]; top5[i] = [[id, logprob], ...] descending. "
                    "Does not stop at EOS. text = detokenize(tokens) (special tokens render empty), "
                    "text_special = same with special tokens rendered.",
            "cases": cases,
        },
    )


if __name__ == "__main__":
    main()
