#!/usr/bin/env bash
# cli_verify.sh: `seek verify` (the fast CPU backend against the reference, stage by stage) over
# every model fixture in tests/fixtures/, in both attention forms for MLA models, with prefill and
# decode steps; `seek verify --grad` (one training step, every parameter gradient) over every
# fixture; `--backend` on forward/generate/grad/train, with 20 training steps on cpu and ref
# agreeing within TOL_CPU_TRAIN_LOSS_REL; and the twin rule of docs/contributing.md:
# every fast/cpu function has a reference twin in ref/ and a test in tests/test_fast_cpu.c.
# Run by tests/run.sh with SEEK set (release, then the ASan/UBSan build).
set -u
cd "$(dirname "$0")/.."
. tests/lib.sh
FX=tests/fixtures

# ---- every fixture: all stages pass, and the table names them ----
n_fx=0
for d in $FX/*/; do
  d=${d%/}
  [ -f "$d/config.json" ] || continue
  n_fx=$((n_fx + 1))
  name=$(basename "$d")
  expect_ok "verify $name" "$SEEK" verify "$d"
  grep -q "^unembed.hook_out .* pass$" "$TMP/out" && ok || bad "verify $name: no passing logits row: $(tail -3 "$TMP/out")"
  [ "$(grep -c ' FAIL' "$TMP/out")" = 0 ] && ok || bad "verify $name: FAIL rows"
  if grep -q '"kv_lora_rank"' "$d/config.json"; then
    [ "$(grep -c '^verify (\(naive\|absorb\)): all [0-9]* stages pass' "$TMP/out")" = 2 ] && ok || bad "verify $name: expected both attention forms to pass"
    grep -q "^blocks.1.mlp.hook_expert_indices .*sets [0-9]*/[0-9]* .*pass" "$TMP/out" && ok || bad "verify $name: no routing row"
  fi
  # the golden's own prompt with more decode steps (T = 1 calls through the cache)
  expect_ok "verify $name decode" "$SEEK" verify "$d" --ids "5,6,7,8,9;10,11,12,13,14" --decode 6 --attn naive
done
[ $n_fx -ge 7 ] && ok || bad "expected at least 7 model fixtures, found $n_fx"

# ---- verify --grad: every fixture, losses and every parameter gradient pass ----
for d in $FX/*/; do
  d=${d%/}
  [ -f "$d/config.json" ] || continue
  name=$(basename "$d")
  expect_ok "verify --grad $name" "$SEEK" verify "$d" --grad
  grep -q '^verify (grad): all [0-9]* rows pass' "$TMP/out" && ok || bad "verify --grad $name: $(tail -1 "$TMP/out")"
  grep -q '^model.embed_tokens.weight .* pass$' "$TMP/out" && ok || bad "verify --grad $name: no embedding row"
  grep -q '^loss.main .* pass$' "$TMP/out" && ok || bad "verify --grad $name: no loss row"
  [ "$(grep -c ' FAIL' "$TMP/out")" = 0 ] && ok || bad "verify --grad $name: FAIL rows"
  cp "$TMP/out" "$TMP/vg_$name"
done
# the MTP module of trained_v3 is trained and compared too
grep -q '^loss.mtp .* pass$' "$TMP/vg_trained_v3" && ok || bad "verify --grad: the MTP loss of trained_v3 is not compared"
# the SFT loss (a prompt per sequence not predicted), MTP depths included, on every row
expect_ok "verify --grad --prompt-len" "$SEEK" verify $FX/trained_v3 --grad --ids "5,6,7,8,9,10,11;12,13,14,15,16,17,18" --prompt-len "3;1"
grep -q '^verify (grad): all [0-9]* rows pass' "$TMP/out" && ok || bad "verify --grad --prompt-len: $(tail -1 "$TMP/out")"
expect_fail "verify --prompt-len alone" "goes with --grad" "$SEEK" verify $FX/v3 --prompt-len "1;1"
grep -q '^model.layers.2.eh_proj.weight .* pass$' "$TMP/vg_trained_v3" && ok || bad "verify --grad: no MTP module gradient row"
# one row per parameter tensor: the names `seek grad` writes (fp8 scales and MTP modules included or not as loaded)
for name in trained_v3 v3_fp8; do
  n_rows=$(grep -c '^\(model\.\|lm_head\)' "$TMP/vg_$name")
  "$SEEK" grad $FX/$name --ids "3,4,5;6,7,8" -o "$TMP/names.safetensors" --backend ref >/dev/null 2>&1
  n_params=$(head -c 200000 "$TMP/names.safetensors" | grep -ao '"model\.[^"]*"\|"lm_head[^"]*"' | sort -u | wc -l)
  [ "$n_rows" = "$n_params" ] && ok || bad "verify --grad $name: $n_rows gradient rows for $n_params tensors"
done
expect_ok "verify --grad ids" "$SEEK" verify $FX/v2_group --grad --ids "5,6,7,8,9;10,11,12,13,14;3,4,5,6,7"
expect_fail "verify --grad attn" "drop --attn and --decode" "$SEEK" verify $FX/v3 --grad --attn naive
expect_fail "verify --grad decode" "drop --attn and --decode" "$SEEK" verify $FX/v3 --grad --decode 3
expect_fail "verify --grad one token" "at least 2 tokens" "$SEEK" verify $FX/v3 --grad --ids "1;2"

# ---- bad requests: one line, non-zero exit ----
expect_fail "verify backend ref" "verify compares a fast backend against ref" "$SEEK" verify $FX/v3 --backend ref
# --backend cuda is refused clearly where there is no CUDA GPU (and checked by make test-cuda where there is)
if "$SEEK" forward $FX/v3 --ids "1,2" --logits "$TMP/probe" --backend cuda >/dev/null 2>&1; then HAVE_GPU=1; else HAVE_GPU=0; fi
if [ $HAVE_GPU = 0 ]; then
  expect_fail "verify backend cuda" "backend cuda" "$SEEK" verify $FX/v3 --backend cuda
  # the bf16 backend names itself in its refusal (not the strict backend's name)
  expect_fail "verify backend cuda-fast" "^seek verify: --backend cuda-fast: " "$SEEK" verify $FX/v3 --backend cuda-fast
  expect_fail "forward cuda-fast" "^seek forward: --backend cuda-fast: " "$SEEK" forward $FX/v3 --ids "1,2" --logits "$TMP/x" --backend cuda-fast
  expect_fail "bench cuda-fast" "^seek bench: --backend cuda-fast: " "$SEEK" bench --backend cuda-fast --profile
fi
expect_fail "bench profile strict" "--profile times the phases of --backend cuda-fast" "$SEEK" bench --backend cuda --profile
expect_fail "verify backend junk" "'gpu' is not a backend" "$SEEK" verify $FX/v3 --backend gpu
expect_fail "verify absorb llama" "needs an MLA model" "$SEEK" verify $FX/llama_gqa --attn absorb
expect_fail "verify ids range" "token id 300 is out of range" "$SEEK" verify $FX/v3 --ids "1,300"
expect_fail "verify missing dir" "config.json" "$SEEK" verify $FX/no_such_model

# ---- --backend on forward and generate: cpu and ref agree; cuda is refused clearly ----
expect_ok "forward ref" "$SEEK" forward $FX/v3 --ids "5,6,7;8,9,10" --logits "$TMP/ref.f32" --backend ref
expect_ok "forward cpu" "$SEEK" forward $FX/v3 --ids "5,6,7;8,9,10" --logits "$TMP/cpu.f32" --backend cpu
expect_ok "forward default" "$SEEK" forward $FX/v3 --ids "5,6,7;8,9,10" --logits "$TMP/def.f32"
cmp -s "$TMP/def.f32" "$TMP/cpu.f32" && ok || bad "forward: the default backend should be cpu (the fastest present)"
cmp -s "$TMP/ref.f32" "$TMP/cpu.f32" && bad "forward: cpu logits bit-identical to ref: is --backend ignored?" || ok
expect_ok "generate ref" "$SEEK" generate $FX/v2_group --ids "5,6,7;8,9,10" -n 8 --attn absorb --backend ref
cp "$TMP/out" "$TMP/gen_ref"
expect_ok "generate cpu" "$SEEK" generate $FX/v2_group --ids "5,6,7;8,9,10" -n 8 --attn absorb --backend cpu
cmp -s "$TMP/out" "$TMP/gen_ref" && ok || bad "generate: cpu and ref greedy tokens differ"
if [ $HAVE_GPU = 0 ]; then
  expect_fail "forward cuda" "backend cuda" "$SEEK" forward $FX/v3 --ids "1,2" --logits "$TMP/x" --backend cuda
fi
expect_fail "generate junk" "'blas' is not a backend" "$SEEK" generate $FX/v3 --ids "1,2" -n 2 --backend blas

# ---- --backend on grad: cpu and ref gradients agree (verify --grad compares them tensor by tensor) ----
GIDS="165,89,225,163,150,124,225;227,37,180,69,221,161,148"
expect_ok "grad ref" "$SEEK" grad $FX/v3 --ids "$GIDS" -o "$TMP/gr.safetensors" --backend ref
lr=$(sed -n 's/^loss //p' "$TMP/out")
expect_ok "grad cpu" "$SEEK" grad $FX/v3 --ids "$GIDS" -o "$TMP/gc.safetensors" --backend cpu
lc=$(sed -n 's/^loss //p' "$TMP/out")
awk -v a="$lr" -v b="$lc" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(a != "" && d <= 2e-6) }' && ok || bad "grad: loss ref $lr vs cpu $lc"
[ "$(stat -c %s "$TMP/gr.safetensors")" = "$(stat -c %s "$TMP/gc.safetensors")" ] && ok || bad "grad: cpu and ref files differ in size"
cmp -s "$TMP/gr.safetensors" "$TMP/gc.safetensors" && bad "grad: cpu gradients bit-identical to ref: is --backend ignored?" || ok
expect_fail "grad backend junk" "'gpu' is not a backend" "$SEEK" grad $FX/v3 --ids "1,2" -o "$TMP/x" --backend gpu

# ---- --backend on train: 20 steps (tiny-v3 with MTP and the balance loss) agree within the table's limit ----
tol=$(sed -n 's/^#define TOL_CPU_TRAIN_LOSS_REL //p' ref/tolerances.h)
[ -n "$tol" ] && ok || bad "train: TOL_CPU_TRAIN_LOSS_REL missing from ref/tolerances.h"
for be in ref cpu; do
  expect_ok "train $be" "$SEEK" train --model tiny-v3 --data tests/fixtures/tokenizer/corpus.txt --data-format bytes \
    --out "$TMP/tr_$be" --steps 20 --batch 4 --seq-len 32 --mtp-depth 1 --warmup 4 --eval-interval 10 --eval-batches 2 \
    --seed 5 --backend $be
  grep -q "^start .* backend=$be\$" "$TMP/tr_$be/train.log" && ok || bad "train $be: the log does not name the backend"
done
n=$(paste -d' ' <(grep '^step=' "$TMP/tr_ref/train.log" | sed 's/.* loss=\([0-9.]*\) main=\([0-9.]*\) mtp=\([0-9.]*\).*/\1 \2 \3/') \
                 <(grep '^step=' "$TMP/tr_cpu/train.log" | sed 's/.* loss=\([0-9.]*\) main=\([0-9.]*\) mtp=\([0-9.]*\).*/\1 \2 \3/') |
    awk -v tol="$tol" '{ for (i = 1; i <= 3; i++) { d = $i - $(i + 3); if (d < 0) d = -d; if (d > tol * $i + 1e-6) bad++ } n++ }
                       END { print (n == 20 ? bad + 0 : "steps:" n) }')
[ "$n" = 0 ] && ok || bad "train: cpu and ref losses differ beyond $tol relative ($n values)"
vr=$(sed -n 's/^eval step=20 val_loss=//p' "$TMP/tr_ref/train.log"); vc=$(sed -n 's/^eval step=20 val_loss=//p' "$TMP/tr_cpu/train.log")
awk -v a="$vr" -v b="$vc" -v tol="$tol" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(a != "" && d <= tol * a + 1e-6) }' && ok || bad "train: validation loss ref $vr vs cpu $vc"
expect_fail "train backend junk" "'gpu' is not a backend" "$SEEK" train --model tiny-llama --data x --out y --backend gpu

# ---- the twin rule: each fast/cpu function has a ref/ twin and a test ----
twins=$(grep -h -v '^static' fast/cpu/*.c | sed -n 's/^[a-z][a-z ]* \**\([a-z_0-9]*_\(cpu\|blas\)\)(.*/\1/p' | sort -u)
[ "$(echo "$twins" | wc -w)" -ge 10 ] && ok || bad "twin rule: expected at least 10 fast/cpu twins, found: $twins"
for f in $twins; do
  stem=${f%_cpu}; stem=${stem%_blas}
  grep -q "^[a-z].* \*\?$stem(" ref/*.c && ok || bad "twin rule: $f has no reference twin $stem in ref/"
  grep -q "$f(" tests/test_fast_cpu.c && ok || bad "twin rule: $f is not tested in tests/test_fast_cpu.c"
done

finish
