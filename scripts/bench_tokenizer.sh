#!/usr/bin/env bash
# `make bench` (tokenizer part): encode speed of DeepSeek-V3's tokenizer on ~4 MB of text
# (build-data/bench.txt: half this repository's sources and docs, half seeded multi-script random
# strings; see scripts/tokenizer_fixtures.py), through ./seek and, where the Python package
# `tokenizers` is installed, through Hugging Face tokenizers on one thread. Prints MB/s for both.
set -euo pipefail
cd "$(dirname "$0")/.."
SEEK=${SEEK:-./seek}
bash scripts/fetch_deepseek_tokenizer.sh
[ -f build-data/bench.txt ] || python3 scripts/tokenizer_fixtures.py bench build-data/bench.txt
for i in 1 2 3; do
  "$SEEK" tokenize-corpus --tokenizer build-data/deepseek-v3 --corpus build-data/bench.txt -o build-data/bench.tok 2>/dev/null
done | sed 's/^/seek.c: /'
if python3 -c 'import tokenizers' 2>/dev/null; then
  RAYON_NUM_THREADS=1 TOKENIZERS_PARALLELISM=false python3 - <<'PY'
import time, tokenizers
tok = tokenizers.Tokenizer.from_file("build-data/deepseek-v3/tokenizer.json")
raw = open("build-data/bench.txt", "rb").read()
text = raw.decode("utf-8")
best = min((lambda t0: (tok.encode(text, add_special_tokens=False), time.perf_counter() - t0)[1])(time.perf_counter()) for _ in range(3))
print("HF tokenizers %s (one thread): %d bytes in %.3f s, %.2f MB/s" % (tokenizers.__version__, len(raw), best, len(raw) / best / 1e6))
PY
else
  echo "HF tokenizers: not installed here (pip install tokenizers to compare)"
fi
