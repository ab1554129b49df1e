#!/usr/bin/env bash
# `make demo`: the main job on a shipped model. Until the tiny-models issue ships trained models,
# this uses the tiny random DeepSeek-V3 test checkpoint in tests/fixtures/v3 (made with
# transformers; its continuations are random tokens, but they are exactly the ones transformers
# generates).
set -euo pipefail
cd "$(dirname "$0")/.."
M=tests/fixtures/v3
echo "== seek info $M"
./seek info "$M"
echo
echo "== seek generate $M --ids \"5,6,7;8,9,10\" -n 12   (greedy, MLA naive attention)"
./seek generate "$M" --ids "5,6,7;8,9,10" -n 12 | tee /tmp/seek-demo-naive.txt
echo "== the same with --attn absorb (W_UK folded into the query, attention over the latent cache)"
./seek generate "$M" --ids "5,6,7;8,9,10" -n 12 --attn absorb | tee /tmp/seek-demo-absorb.txt
if cmp -s /tmp/seek-demo-naive.txt /tmp/seek-demo-absorb.txt; then
  echo "naive and absorbed attention generate the same tokens"
else
  echo "naive and absorbed attention differ" >&2
  exit 1
fi
echo
echo "== sampling: --temp 0.8 --top-p 0.95 --seed 1"
./seek generate "$M" --ids "5,6,7" -n 12 --temp 0.8 --top-p 0.95 --seed 1
rm -f /tmp/seek-demo-naive.txt /tmp/seek-demo-absorb.txt
