#!/usr/bin/env bash
# Reproduces tiny-models/seek-r1-base and tiny-models/seek-r1-zero, R1-Zero at tiny scale
# (docs/rl.md, "R1-Zero at tiny scale"), and measures the run against its control:
#   1. pretraining text: 400,000 documents of 2..3-digit additions (`seek tasks --documents`,
#      careless worked and direct solutions, tagged or not, carries forgotten);
#   2. a byte-level BPE tokenizer trained on it with one token per digit (--split-digits) and
#      the answer tags as tokens;
#   3. the base model (DeepSeek-V3 layout: MLA, DeepSeekMoE with 8 routed experts, one MTP depth)
#      pretrained on it, exported in bf16: seek-r1-base;
#   4. GRPO from the base with the rule-based rewards alone (seek rl, 60 batches of 8 tasks x 8
#      samples), timed, with the held-out pass@1 / pass@8 before, every 20 batches and after;
#   5. the control: the same base trained on the pretraining text for 240 more steps (as long on
#      this machine as step 4's run), then the same evaluation;
#   6. the reasoner exported in bf16 (seek-r1-zero), the curves and a few samples before and after.
# Usage: bash tiny-models/recipes/r1.sh [OUT_DIR] [--base-backend ref|cpu|cuda] [--backend ref|cpu|cuda]
#                                       [--base DIR]
#   --base-backend: where step 3 runs (the shipped base was pretrained with cuda on an H200 in
#                   under 6.5 minutes, 118k tokens/s; on 2 CPU cores it takes about an hour)
#   --backend:      where steps 4 and 5 run (the measured run: cpu, 2 cores)
#   --base DIR:     skip steps 1-3 for the text and tokens and start from this base model folder
#                   (e.g. tiny-models/seek-r1-base); the text is still written for the control
# Everything seeded: the same binary, backend and thread count give the same models.
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${1:-build-data/r1}
shift || true
BASE_BE=cpu
BE=cpu
BASE=
while [ $# -gt 0 ]; do
  case "$1" in
    --base-backend) BASE_BE=$2; shift 2 ;;
    --backend) BE=$2; shift 2 ;;
    --base) BASE=$2; shift 2 ;;
    *) echo "r1.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
R=tiny-models/recipes
mkdir -p "$OUT/export"
EVAL=(--eval 100 --eval-samples 16 --max-new 48)

# 1-2. the text, the tokenizer, the tokens
./seek tasks --documents --digits 2..3 --n 400000 --seed 1 > "$OUT/corpus.txt"
if [ -z "$BASE" ]; then
  ./seek bpe-train --corpus "$OUT/corpus.txt" --vocab 512 --split-digits --special "<answer>" --special "</answer>" \
    -o "$OUT/tokenizer.json" 2>/dev/null
else
  cp "$BASE/tokenizer.json" "$OUT/tokenizer.json"
fi
./seek tokenize-corpus --tokenizer "$OUT/tokenizer.json" --corpus "$OUT/corpus.txt" -o "$OUT/tokens.bin" 2>/dev/null

# 3. the base model
if [ -z "$BASE" ]; then
  ./seek train --backend "$BASE_BE" --model "$R/seek-r1-base.config.json" --data "$OUT/tokens.bin" \
    --tokenizer "$OUT/tokenizer.json" --out "$OUT/base-run" --seed 1 --batch 32 --seq-len 128 --steps 8000 \
    --warmup 100 --lr 3e-3 --lr-min 3e-4 --weight-decay 0.1 --grad-clip 1.0 --mtp-depth 1 --mtp-lambda 0.3 \
    --bias-gamma 0.001 --balance-alpha 1e-4 --val-fraction 0.02 --eval-interval 500 --eval-batches 8 \
    --checkpoint-interval 500
  ./seek convert "$OUT/base-run" "$OUT/export/seek-r1-base" --dtype bf16
  BASE=$OUT/export/seek-r1-base
fi

# 4. R1-Zero: GRPO from the base, rule-based rewards only
t0=$(date +%s.%N)
./seek rl --backend "$BE" --init "$BASE" --out "$OUT/rl" --steps 60 --prompts 8 --group 8 --max-new 48 --lr 3e-4 \
  --beta 0.04 --clip 0.2 --temperature 1 --seed 1 --checkpoint-interval 20 --eval-interval 20 "${EVAL[@]}"
t1=$(date +%s.%N)

# 5. the control: more supervised training on the pretraining text, at the base's last learning rate
./seek train --backend "$BE" --init "$BASE" --data "$OUT/tokens.bin" --out "$OUT/control" --seed 2 --batch 32 \
  --seq-len 128 --steps 240 --warmup 0 --lr 3e-4 --lr-min 3e-4 --weight-decay 0.1 --grad-clip 1.0 --mtp-depth 1 \
  --mtp-lambda 0.3 --bias-gamma 0.001 --balance-alpha 1e-4 --val-fraction 0.02 --eval-interval 120 --eval-batches 8
t2=$(date +%s.%N)
./seek rl --backend "$BE" --init "$OUT/control" --steps 0 "${EVAL[@]}" | tee "$OUT/control.eval.txt"

# 6. the reasoner, its curves, samples before and after
./seek convert "$OUT/rl" "$OUT/export/seek-r1-zero" --dtype bf16
./seek plot "$OUT/rl/rl.log" --label "GRPO from seek-r1-base" \
  --title "R1-Zero at tiny scale: seek rl on 2..3-digit addition" -o "$OUT/export/seek-r1-zero/curves.png"
for m in "$BASE" "$OUT/export/seek-r1-zero"; do
  echo "== $m"
  ./seek rl --backend "$BE" --init "$m" --steps 0 "${EVAL[@]}" --show 4
done | tee "$OUT/samples.txt"
awk -v a="$t0" -v b="$t1" -v c="$t2" 'BEGIN { printf "r1.sh: GRPO run %.0f s, control %.0f s\n", b - a, c - b }' | tee "$OUT/times.txt"
echo "r1.sh: models in $OUT/export (copy them to tiny-models/ with their model cards)"
