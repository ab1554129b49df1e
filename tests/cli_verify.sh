#!/usr/bin/env bash
# cli_verify.sh: `seek verify` (the fast CPU backend against the reference, stage by stage) over
# every model fixture in tests/fixtures/, in both attention forms for MLA models, with prefill and
# decode steps; `--backend` on forward/generate; and the twin rule of ../shared/docs/style.md:
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

# ---- bad requests: one line, non-zero exit ----
expect_fail "verify backend ref" "verify compares a fast backend against ref" "$SEEK" verify $FX/v3 --backend ref
expect_fail "verify backend cuda" "CUDA backend is not built yet" "$SEEK" verify $FX/v3 --backend cuda
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
expect_fail "forward cuda" "CUDA backend is not built yet" "$SEEK" forward $FX/v3 --ids "1,2" --logits "$TMP/x" --backend cuda
expect_fail "generate junk" "'blas' is not a backend" "$SEEK" generate $FX/v3 --ids "1,2" -n 2 --backend blas

# ---- the twin rule: each fast/cpu function has a ref/ twin and a test ----
twins=$(grep -h -v '^static' fast/cpu/*.c | sed -n 's/^[a-z][a-z ]* \**\([a-z_0-9]*_\(cpu\|blas\)\)(.*/\1/p' | sort -u)
[ "$(echo "$twins" | wc -w)" -ge 10 ] && ok || bad "twin rule: expected at least 10 fast/cpu twins, found: $twins"
for f in $twins; do
  stem=${f%_cpu}; stem=${stem%_blas}
  grep -q "^[a-z].* \*\?$stem(" ref/*.c && ok || bad "twin rule: $f has no reference twin $stem in ref/"
  grep -q "$f(" tests/test_fast_cpu.c && ok || bad "twin rule: $f is not tested in tests/test_fast_cpu.c"
done

finish
