#!/usr/bin/env bash
# Reproduces tiny-models/seek-v1-mini and tiny-models/seek-v3-mini from scratch:
#   1. the corpus from Debian's registry (scripts/fetch_corpus.sh: King James Bible + fortunes),
#   2. a byte-level BPE tokenizer with 4096 ids trained on it by seek.c,
#   3. the token file,
#   4. both models trained on the same tokens with the same steps, batch and schedule
#      (about the same active parameters per token: 3.34M dense, 3.25M of 5.0M for the MoE),
#   5. the final checkpoints exported as Hugging Face folders (the V3 model in bf16 to fit 15 MB).
# Usage: bash tiny-models/recipes/train.sh [OUT_DIR] [--backend ref|cpu|cuda] [--steps N]
# Everything seeded; the same binary, backend and thread count give the same models.
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${1:-build-data/tiny-models}
shift || true
BACKEND_ARGS=()
STEPS=3000
while [ $# -gt 0 ]; do
  case "$1" in
    --backend) BACKEND_ARGS=(--backend "$2"); shift 2 ;;
    --steps) STEPS=$2; shift 2 ;;
    *) echo "train.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
R=tiny-models/recipes
mkdir -p "$OUT"
bash scripts/fetch_corpus.sh build-data/corpus
./seek bpe-train --corpus build-data/corpus/corpus.txt --vocab 4096 -o "$OUT/tokenizer.json" 2>/dev/null
./seek tokenize-corpus --tokenizer "$OUT/tokenizer.json" --corpus build-data/corpus/corpus.txt -o "$OUT/tokens.bin" 2>/dev/null
for name in seek-v1-mini seek-v3-mini; do
  mtp=0
  [ $name = seek-v3-mini ] && mtp=1
  ./seek train "${BACKEND_ARGS[@]}" --model "$R/$name.config.json" --data "$OUT/tokens.bin" --tokenizer "$OUT/tokenizer.json" \
    --out "$OUT/$name" --seed 1 --batch 16 --seq-len 128 --steps "$STEPS" --warmup 100 --lr 2e-3 --lr-min 2e-4 \
    --weight-decay 0.1 --grad-clip 1.0 --mtp-depth $mtp --mtp-lambda 0.3 --bias-gamma 0.001 --balance-alpha 1e-4 \
    --val-fraction 0.05 --eval-interval 250 --eval-batches 16 --checkpoint-interval 1000
done
mkdir -p "$OUT/export"
./seek convert "$OUT/seek-v1-mini" "$OUT/export/seek-v1-mini" --dtype f32
./seek convert "$OUT/seek-v3-mini" "$OUT/export/seek-v3-mini" --dtype bf16
echo "train.sh: models in $OUT/export (copy them to tiny-models/ with their model cards)"
