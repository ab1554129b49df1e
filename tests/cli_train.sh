#!/usr/bin/env bash
# cli_train.sh: `seek grad` (and, with the training loop, `seek train`) from the command line.
set -u
cd "$(dirname "$0")/.."
. tests/lib.sh
FX=tests/fixtures

# grad: the ids of tests/fixtures/v3/golden.safetensors; transformers' loss for them is the
# "loss" tensor of tests/fixtures/v3/grads.safetensors, 6.198052 (scripts/gen_grad_goldens.py)
expect_ok "grad v3" "$SEEK" grad $FX/v3 --ids "165,89,225,163,150,124,225;227,37,180,69,221,161,148" -o "$TMP/g.safetensors"
grep -q "^loss 6.19805[12]$" "$TMP/out" && ok || bad "grad: loss line '$(cat "$TMP/out")', transformers says 6.198052"
[ -s "$TMP/g.safetensors" ] && ok || bad "grad: no gradient file"
# the file holds one gradient per parameter tensor, under the checkpoint's names
n_params=$(head -c 200000 $FX/v3/model.safetensors | grep -ao '"model\.[^"]*"\|"lm_head[^"]*"' | sort -u | wc -l)
n_grads=$(head -c 200000 "$TMP/g.safetensors" | grep -ao '"model\.[^"]*"\|"lm_head[^"]*"' | sort -u | wc -l)
[ "$n_params" = "$n_grads" ] && ok || bad "grad: $n_grads gradient tensors for $n_params parameters"
expect_fail "grad one token" "at least 2 tokens" "$SEEK" grad $FX/v3 --ids "1;2" -o "$TMP/x"
expect_fail "grad id range" "token id 999 is out of range" "$SEEK" grad $FX/v3 --ids "1,999" -o "$TMP/x"
expect_fail "grad no -o" "expected: seek grad" "$SEEK" grad $FX/v3 --ids "1,2"
expect_fail "grad bad dir" "config.json" "$SEEK" grad "$TMP/none" --ids "1,2" -o "$TMP/x"

finish
