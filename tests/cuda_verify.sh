#!/usr/bin/env bash
# cuda_verify.sh: `seek verify --backend cuda` (the CUDA backend against the reference, stage by
# stage) over every model fixture in tests/fixtures/, both attention forms for MLA models, with a
# prefill and decode steps through the device KV cache; cuda greedy generation equal to ref's;
# training on the GPU (verify --grad over every fixture, seek grad, 20 steps of seek train against
# ref and twice bitwise);
# and the twin rule of docs/contributing.md for fast/cuda: every `_cuda` twin has a reference
# twin in ref/ and a test in tests/test_cuda.c. Needs a GPU: run by tests/cuda_run.sh (make
# test-cuda), not by make test. With VERIFY_LOG=FILE every verify table is appended to FILE.
set -u
cd "$(dirname "$0")/.."
. tests/lib.sh
FX=tests/fixtures
LOG=${VERIFY_LOG:-/dev/null}

n_fx=0
for d in $FX/*/; do
  d=${d%/}
  [ -f "$d/config.json" ] || continue
  n_fx=$((n_fx + 1))
  name=$(basename "$d")
  expect_ok "verify cuda $name" "$SEEK" verify "$d" --backend cuda
  { echo "\$ seek verify $d --backend cuda"; cat "$TMP/out"; } >>"$LOG"
  grep -q "^unembed.hook_out .* pass$" "$TMP/out" && ok || bad "verify cuda $name: no passing logits row: $(tail -3 "$TMP/out")"
  [ "$(grep -c ' FAIL' "$TMP/out")" = 0 ] && ok || bad "verify cuda $name: FAIL rows: $(grep ' FAIL' "$TMP/out" | head -3)"
  grep -q "backend cuda against ref" "$TMP/out" && ok || bad "verify cuda $name: the table does not name the cuda backend"
  if grep -q '"kv_lora_rank"' "$d/config.json"; then
    [ "$(grep -c '^verify (\(naive\|absorb\)): all [0-9]* stages pass' "$TMP/out")" = 2 ] && ok || bad "verify cuda $name: expected both attention forms to pass"
    grep -q "^blocks.1.mlp.hook_expert_indices .*sets [0-9]*/[0-9]* .*pass" "$TMP/out" && ok || bad "verify cuda $name: no routing row"
  fi
  # the golden's own prompt with more decode steps (T = 1 calls through the device cache), both forms
  expect_ok "verify cuda $name decode" "$SEEK" verify "$d" --backend cuda --ids "5,6,7,8,9;10,11,12,13,14" --decode 6
  { echo "\$ seek verify $d --backend cuda --ids \"5,6,7,8,9;10,11,12,13,14\" --decode 6"; cat "$TMP/out"; } >>"$LOG"
  grep "^verify (" "$TMP/out" | sed "s|^|  $name decode: |"
done
[ $n_fx -ge 7 ] && ok || bad "expected at least 7 model fixtures, found $n_fx"

# ---- generate and forward on the GPU: greedy tokens equal ref's; forward's logits file written ----
expect_ok "generate ref" "$SEEK" generate $FX/v2_group --ids "5,6,7;8,9,10" -n 8 --attn absorb --backend ref
cp "$TMP/out" "$TMP/gen_ref"
expect_ok "generate cuda" "$SEEK" generate $FX/v2_group --ids "5,6,7;8,9,10" -n 8 --attn absorb --backend cuda
cmp -s "$TMP/out" "$TMP/gen_ref" && ok || bad "generate: cuda and ref greedy tokens differ"
expect_ok "forward cuda" "$SEEK" forward $FX/v3 --ids "5,6,7;8,9,10" --logits "$TMP/cuda.f32" --backend cuda
[ -s "$TMP/cuda.f32" ] && ok || bad "forward cuda: no logits written"

# ---- training on the GPU: verify --grad over every fixture (every loss and every parameter
# gradient), seek grad, and 20 steps of seek train (MTP and the balance loss) against ref within
# TOL_CUDA_TRAIN_LOSS_REL, two cuda runs with identical logs ----
for d in $FX/*/; do
  d=${d%/}
  [ -f "$d/config.json" ] || continue
  name=$(basename "$d")
  expect_ok "verify --grad cuda $name" "$SEEK" verify "$d" --grad --backend cuda
  { echo "\$ seek verify $d --grad --backend cuda"; cat "$TMP/out"; } >>"$LOG"
  grep -q '^verify (grad): all [0-9]* rows pass' "$TMP/out" && ok || bad "verify --grad cuda $name: $(tail -1 "$TMP/out")"
  grep -q '^model.embed_tokens.weight .* pass$' "$TMP/out" && ok || bad "verify --grad cuda $name: no embedding row"
  [ "$(grep -c ' FAIL' "$TMP/out")" = 0 ] && ok || bad "verify --grad cuda $name: FAIL rows: $(grep ' FAIL' "$TMP/out" | head -3)"
  grep "^verify (grad)" "$TMP/out" | sed "s|^|  $name: |"
done
expect_ok "verify --grad --prompt-len cuda" "$SEEK" verify $FX/trained_v3 --grad --backend cuda --ids "5,6,7,8,9,10,11;12,13,14,15,16,17,18" --prompt-len "3;1"
grep -q '^verify (grad): all [0-9]* rows pass' "$TMP/out" && ok || bad "verify --grad --prompt-len cuda: $(tail -1 "$TMP/out")"
# SFT on the GPU from a shipped model: the same losses as ref within the training tolerance
for i in $(seq 0 39); do printf '{"prompt": "Question: what follows %d?\\nAnswer: ", "response": "%d"}\n' $i $((i + 1)); done >"$TMP/pairs.jsonl"
tol=$(sed -n 's/^#define TOL_CUDA_TRAIN_LOSS_REL //p' ref/tolerances.h)
for be in ref cuda; do
  expect_ok "sft $be" "$SEEK" train --init tiny-models/seek-v3-mini --objective sft --data "$TMP/pairs.jsonl" --out "$TMP/sft_$be" \
    --steps 6 --batch 4 --seq-len 32 --lr 1e-3 --warmup 1 --eval-interval 3 --eval-batches 2 --backend $be
done
n=$(paste -d' ' <(grep '^step=' "$TMP/sft_ref/train.log" | sed 's/.* main=\([0-9.]*\).*/\1/') <(grep '^step=' "$TMP/sft_cuda/train.log" | sed 's/.* main=\([0-9.]*\).*/\1/') |
    awk -v tol="$tol" '{ d = $1 - $2; if (d < 0) d = -d; if (d > tol * $1 + 1e-6) bad++; n++ } END { print (n == 6 ? bad + 0 : "steps:" n) }')
[ "$n" = 0 ] && ok || bad "sft: cuda and ref response losses differ ($n)"
paste -d' ' <(grep '^step=6' "$TMP/sft_ref/train.log") <(grep '^step=6' "$TMP/sft_cuda/train.log") | sed 's/^/  sft ref | cuda: /'
expect_ok "grad cuda" "$SEEK" grad $FX/v3 --ids "5,6,7;8,9,10" -o "$TMP/g.safetensors" --backend cuda
[ -s "$TMP/g.safetensors" ] && ok || bad "grad cuda: no gradients written"
tol=$(sed -n 's/^#define TOL_CUDA_TRAIN_LOSS_REL //p' ref/tolerances.h)
[ -n "$tol" ] && ok || bad "train: TOL_CUDA_TRAIN_LOSS_REL missing from ref/tolerances.h"
for run in ref cuda cuda2; do
  be=${run%2}
  expect_ok "train $run" "$SEEK" train --model tiny-v3 --data tests/fixtures/tokenizer/corpus.txt --data-format bytes \
    --out "$TMP/tr_$run" --steps 20 --batch 4 --seq-len 32 --mtp-depth 1 --warmup 4 --eval-interval 10 --eval-batches 2 \
    --seed 5 --backend $be
done
grep -q "^start .* backend=cuda\$" "$TMP/tr_cuda/train.log" && ok || bad "train cuda: the log does not name the backend"
n=$(paste -d' ' <(grep '^step=' "$TMP/tr_ref/train.log" | sed 's/.* loss=\([0-9.]*\) main=\([0-9.]*\) mtp=\([0-9.]*\).*/\1 \2 \3/') \
                 <(grep '^step=' "$TMP/tr_cuda/train.log" | sed 's/.* loss=\([0-9.]*\) main=\([0-9.]*\) mtp=\([0-9.]*\).*/\1 \2 \3/') |
    awk -v tol="$tol" '{ for (i = 1; i <= 3; i++) { d = $i - $(i + 3); if (d < 0) d = -d; if (d > tol * $i + 1e-6) bad++ } n++ }
                       END { print (n == 20 ? bad + 0 : "steps:" n) }')
[ "$n" = 0 ] && ok || bad "train: cuda and ref losses differ beyond $tol relative ($n values)"
cmp -s <(grep -E '^(step|eval)' "$TMP/tr_cuda/train.log" | sed 's/ ms=[0-9.]*//; s/ tok_s=[0-9.]*//') \
       <(grep -E '^(step|eval)' "$TMP/tr_cuda2/train.log" | sed 's/ ms=[0-9.]*//; s/ tok_s=[0-9.]*//') && ok ||
  bad "train: two cuda runs logged different losses"
paste -d' ' <(grep '^step=20' "$TMP/tr_ref/train.log") <(grep '^step=20' "$TMP/tr_cuda/train.log") | sed 's/^/  train ref | cuda: /'

# ---- the bf16 backend (fast/cuda-fast): every fixture's stages within twice the bf16 baseline
# (the reference with the same values rounded to bf16: ref/precision.h), both attention forms, a
# prefill and decode steps; routing differences only at near ties, and reported ----
for d in $FX/*/; do
  d=${d%/}
  [ -f "$d/config.json" ] || continue
  name=$(basename "$d")
  expect_ok "verify cuda-fast $name" "$SEEK" verify "$d" --backend cuda-fast
  { echo "\$ seek verify $d --backend cuda-fast"; cat "$TMP/out"; } >>"$LOG"
  grep -q "backend cuda-fast against ref.* the bf16 baseline" "$TMP/out" && ok || bad "verify cuda-fast $name: the table does not name the backend and its baseline"
  grep -q "^unembed.hook_out .* pass$" "$TMP/out" && ok || bad "verify cuda-fast $name: no passing logits row: $(tail -3 "$TMP/out")"
  [ "$(grep -c ' FAIL' "$TMP/out")" = 0 ] && ok || bad "verify cuda-fast $name: FAIL rows: $(grep ' FAIL' "$TMP/out" | head -3)"
  grep "^verify (" "$TMP/out" | sed "s|^|  cuda-fast $name: |"
  grep "near tie" "$TMP/out" | sed "s|^|    $name: |"
  expect_ok "verify cuda-fast $name decode" "$SEEK" verify "$d" --backend cuda-fast --ids "5,6,7,8,9;10,11,12,13,14" --decode 6
  { echo "\$ seek verify $d --backend cuda-fast --ids \"5,6,7,8,9;10,11,12,13,14\" --decode 6"; cat "$TMP/out"; } >>"$LOG"
done
# a baseline that is really there: a bf16 stage's "base rel" column is not zero everywhere
grep -A200 'backend cuda-fast' "$LOG" | awk '$1 ~ /hook_attn_out$/ && $5 + 0 > 1e-4 { n++ } END { exit !(n > 0) }' && ok ||
  bad "verify cuda-fast: no stage has a bf16 baseline error above 1e-4 (is the emulation rounding?)"
expect_ok "forward cuda-fast" "$SEEK" forward $FX/v3 --ids "5,6,7;8,9,10" --logits "$TMP/fast.f32" --backend cuda-fast
[ -s "$TMP/fast.f32" ] && ok || bad "forward cuda-fast: no logits written"
expect_ok "generate cuda-fast" "$SEEK" generate $FX/v2_group --ids "5,6,7;8,9,10" -n 8 --attn absorb --backend cuda-fast
expect_fail "train cuda-fast" "training is not built yet on the bf16 path" "$SEEK" train --model tiny-v3 \
  --data tests/fixtures/tokenizer/corpus.txt --data-format bytes --out "$TMP/tr_fast" --steps 2 --batch 2 --seq-len 16 --backend cuda-fast

# ---- the twin rule: each fast/cuda twin has a ref/ twin and a test ----
twins=$(sed -n 's/^extern "C" [a-z][a-z ]* \**\([a-z_0-9]*_cuda\)(.*/\1/p' fast/cuda/*.cu | sort -u)
[ "$(echo "$twins" | wc -w)" -ge 14 ] && ok || bad "twin rule: expected at least 14 fast/cuda twins, found: $twins"
for f in $twins; do
  stem=${f%_cuda}
  grep -q "^[a-z].* \*\?$stem(" ref/*.c && ok || bad "twin rule: $f has no reference twin $stem in ref/"
  grep -q "$f(" tests/test_cuda.c && ok || bad "twin rule: $f is not tested in tests/test_cuda.c"
done

# the same rule for the bf16 backend: each `_cuda_fast` twin has a ref/ twin and a test
twins=$(sed -n 's/^extern "C" [a-z][a-z ]* \**\([a-z_0-9]*_cuda_fast\)(.*/\1/p' fast/cuda-fast/*.cu | sort -u)
[ "$(echo "$twins" | wc -w)" -ge 3 ] && ok || bad "twin rule: expected at least 3 fast/cuda-fast twins, found: $twins"
for f in $twins; do
  stem=${f%_cuda_fast}
  grep -q "^[a-z].* \*\?$stem(" ref/*.c && ok || bad "twin rule: $f has no reference twin $stem in ref/"
  grep -q "$f(" tests/test_cuda.c && ok || bad "twin rule: $f is not tested in tests/test_cuda.c"
done

finish
