#!/usr/bin/env bash
# cuda_verify.sh: `seek verify --backend cuda` (the CUDA backend against the reference, stage by
# stage) over every model fixture in tests/fixtures/, both attention forms for MLA models, with a
# prefill and decode steps through the device KV cache; cuda greedy generation equal to ref's;
# and the twin rule of ../shared/docs/style.md for fast/cuda: every `_cuda` twin has a reference
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
expect_fail "train cuda refused" "training on the GPU is not built yet" "$SEEK" grad $FX/v3 --ids "5,6,7" -o "$TMP/g.safetensors" --backend cuda

# ---- the twin rule: each fast/cuda twin has a ref/ twin and a test ----
twins=$(sed -n 's/^extern "C" [a-z][a-z ]* \**\([a-z_0-9]*_cuda\)(.*/\1/p' fast/cuda/*.cu | sort -u)
[ "$(echo "$twins" | wc -w)" -ge 14 ] && ok || bad "twin rule: expected at least 14 fast/cuda twins, found: $twins"
for f in $twins; do
  stem=${f%_cuda}
  grep -q "^[a-z].* \*\?$stem(" ref/*.c && ok || bad "twin rule: $f has no reference twin $stem in ref/"
  grep -q "$f(" tests/test_cuda.c && ok || bad "twin rule: $f is not tested in tests/test_cuda.c"
done

finish
