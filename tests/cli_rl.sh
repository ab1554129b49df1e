#!/usr/bin/env bash
# cli_rl.sh: `seek rl` (GRPO with rule-based rewards) from the command line, on the shipped
# seek-r1-base (the R1-Zero base model, small and quick): the loop runs and logs every measure, a
# resume draws the same samples and trains bitwise the same weights, and bad flags are one line.
# (With 6 new tokens at most the completions are cut short and the rewards mostly 0: these are tests
# of the loop's mechanics; what it learns is tests/cli_r1.sh's, and the GRPO loss and gradients
# themselves are checked against PyTorch in tests/test_grad.c.)
set -u
cd "$(dirname "$0")/.."
. tests/lib.sh
MINI=tiny-models/seek-r1-base
ARGS=(--init $MINI --steps 4 --prompts 2 --group 2 --max-new 6 --eval 1 --eval-samples 2 --pass-k 2 --seed 7)
expect_ok "rl" "$SEEK" rl "${ARGS[@]}" --out "$TMP/a" --checkpoint-interval 2
grep -q "^rl: .*2 tasks x 2 samples a step" "$TMP/out" && ok || bad "rl: start line '$(head -1 "$TMP/out")'"
[ "$(grep -c '^rl step=' "$TMP/a/rl.log")" = 4 ] && ok || bad "rl: expected 4 'rl step=' lines in rl.log"
grep -q '^rl step=4 update=4 reward=[0-9.]* accuracy=[0-9.]* format=[0-9.]* length=[0-9.]* kl=[-0-9.e]* clip_frac=[0-9.]* entropy=[0-9.]* ratio=1.000000 flat_groups=[0-9]* loss=' "$TMP/a/rl.log" \
  && ok || bad "rl: the step line lacks a measure: $(grep '^rl step=4' "$TMP/a/rl.log")"
[ "$(grep -c '^eval step=' "$TMP/a/rl.log")" = 2 ] && ok || bad "rl: pass@1 not evaluated before and after"
grep -q '^eval step=4 pass1=[0-9.]* pass2=[0-9.]* greedy=[0-9.]* format=[0-9.]* greedy_format=[0-9.]* length=[0-9.]* n=1 samples=2$' "$TMP/a/rl.log" \
  && ok || bad "rl: the eval line lacks a measure: $(grep '^eval step=4' "$TMP/a/rl.log")"
# entropy: between 0 and log(V) = log(320) = 5.77 nats
awk '/^rl step=/ { for (i = 1; i <= NF; i++) if ($i ~ /^entropy=/) { v = substr($i, 9) + 0; if (v <= 0.001 || v >= 5.77) bad = 1 } } END { exit bad }' "$TMP/a/rl.log" \
  && ok || bad "rl: entropy outside (0.001, log V)"
[ "$(head -c 8 "$TMP/a/curves.png" | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a ] && ok || bad "rl: no curves.png (a PNG) in the run folder"
[ -s "$TMP/a/step-00000004/model.safetensors" ] && [ -s "$TMP/a/step-00000004/tokenizer.json" ] && ok || bad "rl: no final checkpoint with its tokenizer"
# resume from step 2: the same samples (seeded by step), the same updates, the same weights
expect_ok "rl resume" "$SEEK" rl "${ARGS[@]}" --out "$TMP/b" --resume "$TMP/a/step-00000002"
cmp -s "$TMP/a/step-00000004/model.safetensors" "$TMP/b/step-00000004/model.safetensors" && ok || bad "rl resume: weights differ from the straight run"
diff <(grep '^rl step=[34] ' "$TMP/a/rl.log") <(grep '^rl step=' "$TMP/b/rl.log") >/dev/null && ok || bad "rl resume: the rollouts' measures differ"
# several updates per batch (pi_old != pi): the first update of a batch has ratio 1 exactly, a later
# one has moved away from it; the batch's samples repeat across its updates
expect_ok "rl updates" "$SEEK" rl --init $MINI --steps 2 --prompts 2 --group 2 --max-new 6 --eval 0 --seed 7 --updates 3 \
  --lr 1e-3 --out "$TMP/u" --checkpoint-interval 1
[ "$(grep -c '^rl step=' "$TMP/u/rl.log")" = 6 ] && ok || bad "rl updates: expected 6 update lines"
grep -q '^rl step=1 update=1 .* ratio=1.000000 ' "$TMP/u/rl.log" && ok || bad "rl updates: the first ratio is not 1"
grep '^rl step=1 update=3 ' "$TMP/u/rl.log" | grep -qv ' ratio=1.000000 ' && ok || bad "rl updates: the third ratio is still 1"
[ "$(grep '^rl step=2 ' "$TMP/u/rl.log" | sed 's/ kl=.*//; s/update=[0-9]* //' | sort -u | wc -l)" = 1 ] && ok || bad "rl updates: the batch's samples changed between its updates"
[ -d "$TMP/u/step-00000003" ] && [ -d "$TMP/u/step-00000006" ] && ok || bad "rl updates: checkpoints not at batch ends"
expect_ok "rl updates resume" "$SEEK" rl --init $MINI --steps 2 --prompts 2 --group 2 --max-new 6 --eval 0 --seed 7 --updates 3 \
  --lr 1e-3 --out "$TMP/u2" --resume "$TMP/u/step-00000003"
cmp -s "$TMP/u/step-00000006/model.safetensors" "$TMP/u2/step-00000006/model.safetensors" && ok || bad "rl updates resume: weights differ"
expect_fail "rl resume inside a batch" "inside a batch of 2 updates" "$SEEK" rl --init $MINI --steps 2 --prompts 2 --group 2 \
  --max-new 6 --eval 0 --updates 2 --out "$TMP/u3" --resume "$TMP/u/step-00000003"
[ ! -e "$TMP/u3" ] && ok || bad "rl: a refused resume created its folder"
expect_fail "rl pass-k" "--pass-k 9" "$SEEK" rl --init $MINI --out "$TMP/x" --eval-samples 8 --pass-k 9
# the trained checkpoint is a model folder
expect_ok "rl generate" "$SEEK" generate "$TMP/a" --prompt "What is 12 + 30?" -n 4
# bad input: one line, no run folder
# --steps 0: the held-out evaluation alone, nothing written
expect_ok "rl eval only" "$SEEK" rl --init $MINI --steps 0 --eval 2 --eval-samples 3 --max-new 6 --seed 7
grep -q '^held-out (2 test tasks, 3 samples each at temperature 0.6, top-p 0.95): pass@1 [0-9.]*, pass@3 [0-9.]*, greedy [0-9.]*, format [0-9.]*, length 6.0$' "$TMP/out" \
  && ok || bad "rl eval only: '$(cat "$TMP/out")'"
expect_ok "rl eval only --show" "$SEEK" rl --init $MINI --steps 0 --eval 2 --eval-samples 3 --max-new 6 --seed 7 --show 2
[ "$(grep -c '^test task [01]: [0-9]* + [0-9]* = [0-9]*$' "$TMP/out")" = 2 ] && [ "$(grep -c '^  \(greedy\|sample\)  ([0-9]* tokens' "$TMP/out")" = 4 ] \
  && ok || bad "rl --show: '$(head -c 400 "$TMP/out")'"
expect_ok "rl --eval-interval" "$SEEK" rl "${ARGS[@]}" --out "$TMP/ei" --eval-interval 2
[ "$(grep -c '^eval step=[024] ' "$TMP/ei/rl.log")" = 3 ] && ok || bad "rl --eval-interval: expected evals at steps 0, 2, 4"
expect_fail "rl eval only with --out" "--steps 0 only evaluates" "$SEEK" rl --init $MINI --steps 0 --out "$TMP/x"
expect_fail "rl eval only, no eval" "--eval must be at least 1" "$SEEK" rl --init $MINI --steps 0 --eval 0
expect_fail "rl no out" "--out is required" "$SEEK" rl --init $MINI
expect_fail "rl no init" "--init is required" "$SEEK" rl --out "$TMP/x"
expect_fail "rl group 1" "--group" "$SEEK" rl --init $MINI --out "$TMP/x" --group 1
expect_fail "rl digits" "digits" "$SEEK" rl --init $MINI --out "$TMP/x" --digits 0..3
expect_fail "rl family" "family" "$SEEK" rl --init $MINI --out "$TMP/x" --family mul
expect_fail "rl too long" "max_position_embeddings" "$SEEK" rl --init $MINI --out "$TMP/x" --max-new 400
expect_fail "rl unknown" "unknown option" "$SEEK" rl --init $MINI --out "$TMP/x" --lernrate 1
expect_fail "rl unknown last" "unknown option '--lernrate'" "$SEEK" rl --init $MINI --out "$TMP/x" --lernrate
expect_fail "rl missing value" "needs a value: --steps" "$SEEK" rl --init $MINI --out "$TMP/x" --steps
expect_fail "rl init" "config.json" "$SEEK" rl --init "$TMP/none" --out "$TMP/x"
[ ! -e "$TMP/x" ] && ok || bad "rl: a refused run created its folder"
finish
