#!/usr/bin/env bash
# `make demo`: the main job on the shipped DeepSeek-V3-style model tiny-models/seek-v3-mini
# (MLA, DeepSeekMoE with sigmoid routing and bias balancing, one MTP module; trained by seek.c,
# tiny-models/README.md). At a terminal it opens the REPL on the model; otherwise (CI, a pipe) it
# runs a short scripted tour: the model in words, a prompt stepped through one layer, an attention
# heatmap, a routing heatmap, the latent cache and generated text (tiny-models/tour.cmd); then the
# R1-Zero pair (tiny-models/seek-r1-base and seek-r1-zero) answering two held-out additions.
set -euo pipefail
cd "$(dirname "$0")/.."
M=tiny-models/seek-v3-mini
SEEK=${SEEK:-./seek}
echo "== seek info $M"
"$SEEK" info "$M"
echo
if [ -t 0 ] && [ -t 1 ]; then
  echo "== seek repl $M   (try: prompt And God said, step, attn 1, route 1, gen 20, help; Ctrl-D leaves)"
  exec "$SEEK" repl "$M"
fi
echo "== seek repl $M --script tiny-models/tour.cmd   (stdin is not a terminal: the scripted tour)"
"$SEEK" repl "$M" --script tiny-models/tour.cmd
echo
echo "== seek generate $M --prompt \"In the beginning\" -n 30 --temp 0.8 --top-p 0.95 --seed 1"
"$SEEK" generate "$M" --prompt "In the beginning" -n 30 --temp 0.8 --top-p 0.95 --seed 1
echo
echo "== R1-Zero at tiny scale (docs/rl.md): the base model and the reasoner GRPO made of it, on held-out additions"
for R in tiny-models/seek-r1-base tiny-models/seek-r1-zero; do
  echo "== seek rl --init $R --steps 0 --eval 2 --eval-samples 8 --show 2"
  "$SEEK" rl --init "$R" --steps 0 --eval 2 --eval-samples 8 --max-new 48 --show 2
done
