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
# --prompt-len (supervised fine-tuning's loss): one length a sequence, each leaving a token to predict
V3IDS="165,89,225,163,150,124,225;227,37,180,69,221,161,148"
expect_ok "grad sft" "$SEEK" grad $FX/v3 --ids "$V3IDS" --prompt-len "3;1" -o "$TMP/gs.safetensors"
# transformers' loss with labels -100 on the first 3 and 1 tokens: tests/fixtures/v3/sft_grads.safetensors, 6.165530
grep -q "^loss 6.16553[01]$" "$TMP/out" && ok || bad "grad sft: loss line '$(cat "$TMP/out")', transformers says 6.165530"
expect_fail "grad sft count" "more than 1 length(s) for 1 sequence" "$SEEK" grad $FX/v3 --ids "1,2,3" --prompt-len "1;1" -o "$TMP/x"
expect_fail "grad sft count low" "1 length(s) for 2 sequence" "$SEEK" grad $FX/v3 --ids "1,2,3;4,5,6" --prompt-len "1" -o "$TMP/x"
expect_fail "grad sft nothing left" "prompt length 3 leaves nothing to predict in 3 tokens" "$SEEK" grad $FX/v3 --ids "1,2,3" --prompt-len "3" -o "$TMP/x"
expect_fail "grad sft negative" "prompt length -1" "$SEEK" grad $FX/v3 --ids "1,2,3" --prompt-len "-1" -o "$TMP/x"
expect_fail "grad sft garbage" "is not a list of lengths" "$SEEK" grad $FX/v3 --ids "1,2,3" --prompt-len "2x" -o "$TMP/x"
[ ! -e "$TMP/x" ] && ok || bad "grad sft: a refused command wrote $TMP/x"
# --grpo GROUP.json: one GRPO group's loss and gradients; at pi_old = pi with the model as its own
# reference the loss is -mean(A) = 0 (advantages sum to zero); with v3_fp8 (same architecture,
# other weights) as the reference it is beta times the KL term, above 0
G='{"prompt": [5, 17, 33], "completions": [[40, 41, 42, 1], [50, 51], [60, 61, 62, 63, 64], [70, 1]], "rewards": [1, 0, 0.5, 1]'
printf '%s}' "$G" >"$TMP/g0.json"
expect_ok "grad grpo" "$SEEK" grad $FX/v3 --grpo "$TMP/g0.json" -o "$TMP/gg.safetensors"
grep -q "^loss -\?0.000000$" "$TMP/out" && ok || bad "grad grpo: loss line '$(cat "$TMP/out")', expected 0 (sum of advantages)"
printf '%s, "ref": "%s/%s"}' "$G" "$PWD" $FX/v3_fp8 >"$TMP/g1.json"
expect_ok "grad grpo ref" "$SEEK" grad $FX/v3 --grpo "$TMP/g1.json" -o "$TMP/gg.safetensors"
awk '/^loss /{ exit !($2 > 0) }' "$TMP/out" && ok || bad "grad grpo ref: loss '$(cat "$TMP/out")' should be beta*KL > 0"
printf '{"prompt": [5], "completions": [[40], [41]], "rewards": [0.5, 0.5]}' >"$TMP/g2.json"
expect_ok "grad grpo equal rewards" "$SEEK" grad $FX/v3 --grpo "$TMP/g2.json" -o "$TMP/gg.safetensors"
# bad groups: one line naming the field, nothing written
bad_group() { printf '%s' "$2" >"$TMP/gb.json"; expect_fail "grad grpo $1" "$3" "$SEEK" grad $FX/v3 --grpo "$TMP/gb.json" -o "$TMP/x"; }
bad_group "count" '{"prompt": [5], "completions": [[40], [41]], "rewards": [1]}' "1 rewards for 2 completions"
bad_group "id range" '{"prompt": [5], "completions": [[40], [4100]], "rewards": [1, 0]}' '"completions"\[1\]\[0\]: token id 4100 is out of range'
bad_group "empty completion" '{"prompt": [5], "completions": [[40], []], "rewards": [1, 0]}' '"completions"\[1\] is empty'
bad_group "G=1" '{"prompt": [5], "completions": [[40]], "rewards": [1]}' "at least 2"
bad_group "reward type" '{"prompt": [5], "completions": [[40], [41]], "rewards": [1, "x"]}' '"rewards"\[1\] is a string'
bad_group "reward overflow" '{"prompt": [5], "completions": [[40], [41]], "rewards": [1, 1e999]}' "invalid JSON"
bad_group "unknown key" '{"prompt": [5], "completions": [[40], [41]], "rewards": [1, 0], "temperature": 1}' "unknown key 'temperature'"
bad_group "clip" '{"prompt": [5], "completions": [[40], [41]], "rewards": [1, 0], "clip": 1.5}' '"clip" = 1.5 is out of range'
bad_group "no prompt" '{"completions": [[40], [41]], "rewards": [1, 0]}' '"prompt" is missing'
bad_group "not json" '{"prompt": [5], ' "invalid JSON"
printf '{"prompt": [5], "completions": [[40], [41]], "rewards": [1, 0], "ref": "%s/%s"}' "$PWD" $FX/llama_gqa >"$TMP/gb.json"
expect_fail "grad grpo ref arch" "another architecture" "$SEEK" grad $FX/v3 --grpo "$TMP/gb.json" -o "$TMP/x"
expect_fail "grad grpo and ids" "expected: seek grad" "$SEEK" grad $FX/v3 --grpo "$TMP/g0.json" --ids "1,2" -o "$TMP/x"
[ ! -e "$TMP/x" ] && ok || bad "grad grpo: a refused command wrote $TMP/x"

# ---- train: a short run lowers the loss; resume is bitwise identical ----
CORPUS=tests/fixtures/tokenizer/corpus.txt
printf '{"model": "tiny-v3", "data": "%s", "data_format": "bytes", "out": "%s/run", "batch": 4, "seq_len": 32,
 "steps": 24, "warmup": 4, "lr": 3e-3, "lr_min": 3e-4, "mtp_depth": 1, "eval_interval": 12, "eval_batches": 2,
 "checkpoint_interval": 12, "seed": 5}' "$CORPUS" "$TMP" >"$TMP/t.json"
expect_ok "train" "$SEEK" train --config "$TMP/t.json"
# the progress lines name what they show (it was "load 3.66 idle 0.50"): the experts' load in words
grep -q '^step 1/24 loss [0-9.]* main [0-9.]* mtp [0-9.]* bal [0-9.]* lr [0-9.e+-]* norm [0-9.]*; experts: busiest [0-9.]*x mean, [0-9]*% idle; [0-9]* tok/s' "$TMP/out" &&
  ! grep -q ' load [0-9]\| idle [0-9]' "$TMP/out" && ok || bad "train: progress line '$(grep -m1 '^step 1/' "$TMP/out")'"
grep -q '^step 12/24 .* | val [0-9.]*$' "$TMP/out" && grep -q '^done: 24 steps, final train loss [0-9.]*, validation loss [0-9.]*, 0 skipped' "$TMP/out" &&
  ok || bad "train: validation in the progress and done lines: $(grep '^done' "$TMP/out")"
first=$(grep -m1 '^step=1 ' "$TMP/run/train.log" | sed 's/.* main=\([0-9.]*\).*/\1/')
last=$(grep '^eval step=24 ' "$TMP/run/train.log" | sed 's/.*val_loss=//')
awk -v a="$first" -v b="$last" 'BEGIN { exit !(b + 0 < a - 0.5) }' && ok || bad "train: validation loss '$last' is not well below the first loss '$first'"
[ -f "$TMP/run/loss.png" ] && ok || bad "train: no loss.png"
[ "$(cat "$TMP/run/latest" 2>/dev/null)" = "step-00000024" ] && ok || bad "train: latest is '$(cat "$TMP/run/latest" 2>/dev/null)'"
sed "s|$TMP/run|$TMP/res|" "$TMP/t.json" >"$TMP/r.json"
expect_ok "resume" "$SEEK" train --config "$TMP/r.json" --resume "$TMP/run/step-00000012"
cmp -s "$TMP/run/step-00000024/model.safetensors" "$TMP/res/step-00000024/model.safetensors" && ok || bad "resume: parameters differ from the straight run"
cmp -s "$TMP/run/step-00000024/train_state.safetensors" "$TMP/res/step-00000024/train_state.safetensors" && ok || bad "resume: optimizer state differs"
diff <(grep '^step=' "$TMP/run/train.log" | tail -12 | sed 's/ tok_s.*//') <(grep '^step=' "$TMP/res/train.log" | sed 's/ tok_s.*//') >/dev/null && ok || bad "resume: losses differ"
# the checkpoint is a model folder: it generates, with naive and absorbed attention alike
expect_ok "generate from checkpoint" "$SEEK" generate "$TMP/run" --ids "72,101,108" -n 8 --backend ref
cp "$TMP/out" "$TMP/g1"
expect_ok "generate absorb" "$SEEK" generate "$TMP/run" --ids "72,101,108" -n 8 --backend ref --attn absorb
cmp -s "$TMP/out" "$TMP/g1" && ok || bad "generate: naive and absorbed differ on the trained model"

# ---- text end to end: a tokenizer, a token file, training on it, then generate --prompt ----
expect_ok "bpe-train" "$SEEK" bpe-train --corpus "$CORPUS" --vocab 300 -o "$TMP/tok.json"
expect_ok "tokenize-corpus" "$SEEK" tokenize-corpus --tokenizer "$TMP/tok.json" --corpus "$CORPUS" -o "$TMP/tokens.bin"
printf '{"model": {"model_type": "llama", "vocab_size": 300, "hidden_size": 32, "intermediate_size": 64,
 "num_hidden_layers": 1, "num_attention_heads": 2, "max_position_embeddings": 64},
 "data": "%s/tokens.bin", "tokenizer": "%s/tok.json", "out": "%s/tt", "batch": 4, "seq_len": 16,
 "steps": 6, "eval_interval": 0, "checkpoint_interval": 6}' "$TMP" "$TMP" "$TMP" >"$TMP/tt.json"
expect_ok "train on tokens" "$SEEK" train --config "$TMP/tt.json"
expect_ok "generate --prompt" "$SEEK" generate "$TMP/tt" --prompt "the" -n 6 --temp 0
[ -s "$TMP/out" ] && ok || bad "generate --prompt printed nothing"
# a run folder converts to a model folder (its latest checkpoint, with the tokenizer beside it)
expect_ok "convert a run folder" "$SEEK" convert "$TMP/tt" "$TMP/ttc" --dtype bf16
[ -s "$TMP/ttc/tokenizer.json" ] && [ -s "$TMP/ttc/tokenizer_config.json" ] && ok || bad "convert: the run's tokenizer was not copied"
expect_ok "generate converted" "$SEEK" generate "$TMP/ttc" --prompt "the" -n 6 --temp 0

# ---- eval: held-out loss; the same tokens by --text and --data; ref and cpu; MTP accuracy and acceptance ----
expect_ok "eval --text" "$SEEK" eval "$TMP/tt" --text "$CORPUS" --seq-len 16 --windows 8 --backend ref
grep '^loss ' "$TMP/out" >"$TMP/e1"
expect_ok "eval --data" "$SEEK" eval "$TMP/tt" --data "$TMP/tokens.bin" --seq-len 16 --windows 8 --backend ref
grep '^loss ' "$TMP/out" >"$TMP/e2"
[ -s "$TMP/e1" ] && cmp -s "$TMP/e1" "$TMP/e2" && ok || bad "eval: --text '$(cat "$TMP/e1")' and --data '$(cat "$TMP/e2")' differ"
grep -q '^eval .*: 8 window(s) x 16 tokens, 120 targets, backend ref$' "$TMP/out" && ok || bad "eval: header '$(head -1 "$TMP/out")'"
# one window is one `seek grad` batch (labels = ids): the same mean loss through model_loss_grad
ids=$(od -An -tu1 -N24 "$CORPUS" | tr -s ' \n' ',' | sed 's/^,//; s/,$//')
expect_ok "grad one window" "$SEEK" grad "$TMP/run" --ids "$ids" -o "$TMP/g1.safetensors" --backend ref
gl=$(sed -n 's/^loss //p' "$TMP/out")
expect_ok "eval one window" "$SEEK" eval "$TMP/run" --bytes "$CORPUS" --seq-len 24 --windows 1 --backend ref
el=$(sed -n 's/^loss \([0-9.]*\) .*/\1/p' "$TMP/out")
awk -v a="$gl" -v b="$el" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(a != "" && d <= 2e-6 * a) }' && ok || bad "eval: one window's loss $el, seek grad says $gl"
grep -q '^mtp depth 1: loss [0-9.]*  top-1 accuracy 0\.[0-9]* on the token 2 ahead$' "$TMP/out" && ok || bad "eval: no MTP line for an MTP model: $(cat "$TMP/out")"
grep -q '^mtp acceptance of the second token: [01]\.[0-9]* ([0-9]* of 22 drafts' "$TMP/out" && ok || bad "eval: acceptance line: $(grep acceptance "$TMP/out")"
expect_ok "eval ref" "$SEEK" eval "$TMP/run" --bytes "$CORPUS" --seq-len 32 --windows 6 --backend ref
cp "$TMP/out" "$TMP/er"
expect_ok "eval cpu" "$SEEK" eval "$TMP/run" --bytes "$CORPUS" --seq-len 32 --windows 6 --backend cpu
paste -d' ' <(sed -n 's/^loss \([0-9.]*\) .*/\1/p' "$TMP/er") <(sed -n 's/^loss \([0-9.]*\) .*/\1/p' "$TMP/out") |
  awk '{ d = $1 - $2; if (d < 0) d = -d; exit !(NF == 2 && d <= 1e-5 * $1) }' && ok || bad "eval: ref and cpu losses differ"
# --val-fraction: the training run's own validation windows (its default 0.1; 2 batches of 4 = the
# first 8 of them) give exactly the validation loss its log recorded at the last step
vl=$(sed -n 's/^eval step=24 val_loss=//p' "$TMP/run/train.log")
expect_ok "eval val windows" "$SEEK" eval "$TMP/run" --bytes "$CORPUS" --seq-len 32 --val-fraction 0.1 --windows 8 --backend ref
el=$(sed -n 's/^loss \([0-9.]*\) .*/\1/p' "$TMP/out")
[ -n "$vl" ] && [ "$el" = "$vl" ] && ok || bad "eval: validation windows give $el, the training log says $vl"
expect_fail "eval val-fraction range" "out of range (0, 1)" "$SEEK" eval "$TMP/run" --bytes "$CORPUS" --val-fraction 1
expect_fail "eval experts on dense" "has no routed experts" "$SEEK" eval "$TMP/tt" --text "$CORPUS" --seq-len 16 --experts 3
expect_ok "eval experts" "$SEEK" eval "$TMP/run" --bytes "$CORPUS" --seq-len 32 --windows 8 --experts 3
[ "$(grep -c '^  expert ' "$TMP/out")" -gt 0 ] && grep -q '^layer 1: ' "$TMP/out" && ok || bad "eval --experts: $(head -c 300 "$TMP/out")"
expect_fail "eval no source" "exactly one of --text" "$SEEK" eval "$TMP/tt"
expect_fail "eval two sources" "exactly one of --text" "$SEEK" eval "$TMP/tt" --text "$CORPUS" --bytes "$CORPUS"
expect_fail "eval seq-len" "seq-len" "$SEEK" eval "$TMP/tt" --text "$CORPUS" --seq-len 1
head -c 20 "$CORPUS" >"$TMP/b20"
expect_fail "eval too short" "20 tokens, fewer than one window of --seq-len 24" "$SEEK" eval "$TMP/run" --bytes "$TMP/b20" --seq-len 24
printf 'hi' >"$TMP/short.txt"
expect_fail "eval short text" "fewer than one window of --seq-len 16" "$SEEK" eval "$TMP/tt" --text "$TMP/short.txt" --seq-len 16
expect_fail "eval ids beyond vocab" "out of range \[0, 256)" "$SEEK" eval "$TMP/run" --data "$TMP/tokens.bin"
expect_fail "eval no tokenizer" "needs the model's tokenizer" "$SEEK" eval "$TMP/run" --text "$CORPUS"

# ---- non-finite steps are skipped and reported; K in a row stop training; nothing non-finite is saved ----
SEEK_FAULT_NAN_FROM_STEP=5 "$SEEK" train --model tiny-llama --data "$CORPUS" --data-format bytes --out "$TMP/nan" \
  --steps 20 --batch 2 --seq-len 16 --checkpoint-interval 1 --max-bad-steps 3 --eval-interval 0 >"$TMP/out" 2>"$TMP/err"
rc=$?
[ $rc -eq 1 ] && ok || bad "non-finite: exit $rc, expected 1"
grep -q "3 non-finite steps in a row (max_bad_steps 3): stopping" "$TMP/err" && ok || bad "non-finite: $(cat "$TMP/err")"
[ "$(grep -c '^skip step=' "$TMP/nan/train.log")" = 3 ] && ok || bad "non-finite: expected 3 skip lines in the log"
# steps 5 and 6 were skipped (saved, parameters untouched); step 7 made three in a row and stopped unsaved
[ "$(cat "$TMP/nan/latest")" = "step-00000006" ] && ok || bad "non-finite: latest is $(cat "$TMP/nan/latest"), expected step 6"
cmp -s "$TMP/nan/step-00000004/model.safetensors" "$TMP/nan/step-00000006/model.safetensors" && ok || bad "non-finite: a skipped step changed the parameters"
expect_ok "non-finite: saved weights are finite" "$SEEK" info "$TMP/nan" --check-finite
# flags instead of (or over) a train.json
expect_ok "train with flags" "$SEEK" train --model tiny-llama --data "$CORPUS" --data-format bytes --out "$TMP/fl" --steps 2 --batch 2 --seq-len 16 --eval-interval 0
# --eval-interval 0: the summary says validation was not run (it said "validation loss nan"); a
# dense model's progress has no experts
grep -q '^done: 2 steps, final train loss [0-9.]*, validation not run (eval_interval 0), 0 skipped' "$TMP/out" && ! grep -qi nan "$TMP/out" &&
  ok || bad "train --eval-interval 0: $(grep '^done' "$TMP/out")"
grep -q '^step 1/2 .*norm [0-9.]*; [0-9]* tok/s' "$TMP/out" && ! grep -q experts "$TMP/out" && ok || bad "train dense: progress '$(grep -m1 '^step 1/' "$TMP/out")'"
expect_code "unknown flag" 2 "^seek train: unknown option '--lernrate' (see 'seek train --help')$" "$SEEK" train --model tiny-llama --data x --out y --lernrate 3
expect_code "mistyped flag" 2 "^seek train: unknown option '--eval-intervl' (did you mean '--eval-interval'?)$" "$SEEK" train --model tiny-llama --eval-intervl 0
expect_code "mistyped flag with underscores" 2 "^seek train: unknown option '--seq_lem' (did you mean '--seq-len'?)$" "$SEEK" train --seq_lem 8
# a model that is neither a preset nor a file: the presets, the nearest one, and never jansson's
# "(line -1)" (it was "tiny-v4: unable to open tiny-v4: No such file or directory (line -1)")
expect_fail "no such preset" "^seek train: model 'tiny-v4' is neither a preset (tiny-v3, tiny-llama) nor a config.json file (did you mean 'tiny-v3'?)$" \
  "$SEEK" train --model tiny-v4 --data "$CORPUS" --data-format bytes --out "$TMP/nx"
expect_fail "no such config" "^seek train: $TMP/none.json: cannot open: No such file or directory$" "$SEEK" train --config "$TMP/none.json"
mkdir -p "$TMP/emptydir"
expect_fail "init without config" "^seek train: init: $TMP/emptydir/config.json: cannot open: No such file or directory$" \
  "$SEEK" train --init "$TMP/emptydir" --data "$CORPUS" --data-format bytes --out "$TMP/nx"
printf '{"model": "tiny-v3",\n "data": x}' >"$TMP/badjson.json"
expect_fail "bad train.json" "^seek train: $TMP/badjson.json: invalid JSON at line 2 column [0-9]*: " "$SEEK" train --config "$TMP/badjson.json"
printf '{"model_type": "llama",' >"$TMP/badcfg.json"
expect_fail "bad model config" "badcfg.json: invalid JSON at line 1 column [0-9]*: " \
  "$SEEK" train --model "$TMP/badcfg.json" --data "$CORPUS" --data-format bytes --out "$TMP/nx"
grep -q 'line -1' "$TMP/err" && bad "jansson's (line -1) reached a message: $(cat "$TMP/err")" || ok

# ---- bad train configs and data: one-line errors before any work ----
bad_cfg() { # name pattern json
  printf '%s' "$3" >"$TMP/bad.json"
  expect_fail "$1" "$2" "$SEEK" train --config "$TMP/bad.json"
}
bad_cfg "unknown key" "unknown key 'lerning_rate' (see docs/training.md for the keys)" '{"model": "tiny-v3", "data": "x", "out": "y", "lerning_rate": 1}'
bad_cfg "mistyped key" "unknown key 'eval_intervl' (did you mean 'eval_interval'?)" '{"model": "tiny-v3", "data": "x", "out": "y", "eval_intervl": 1}'
bad_cfg "batch 0" "'batch' = 0 is out of range" '{"model": "tiny-v3", "data": "x", "out": "y", "batch": 0}'
bad_cfg "negative lr" "'lr' = -1 is out of range" '{"model": "tiny-v3", "data": "x", "out": "y", "lr": -1}'
bad_cfg "seq_len too long" "seq_len 1000 exceeds the model's max_position_embeddings 256" "{\"model\": \"tiny-v3\", \"data\": \"$CORPUS\", \"data_format\": \"bytes\", \"out\": \"$TMP/y\", \"seq_len\": 1000}"
bad_cfg "no model" "'model' is missing" '{"data": "x", "out": "y"}'
bad_cfg "impossible shape" "num_attention_heads" "{\"model\": {\"model_type\": \"llama\", \"hidden_size\": 30, \"num_attention_heads\": 4}, \"data\": \"$CORPUS\", \"data_format\": \"bytes\", \"out\": \"$TMP/y\"}"
bad_cfg "mtp on llama" "needs a deepseek_v3 model" "{\"model\": \"tiny-llama\", \"data\": \"$CORPUS\", \"data_format\": \"bytes\", \"out\": \"$TMP/y\", \"mtp_depth\": 1}"
bad_cfg "data format" "'data_format' is 'text'" '{"model": "tiny-v3", "data": "x", "out": "y", "data_format": "text"}'
bad_cfg "data wrong header" "corpus.txt" "{\"model\": \"tiny-v3\", \"data\": \"$CORPUS\", \"out\": \"$TMP/y\"}"
bad_cfg "ids beyond vocab" "tokens.bin" "{\"model\": \"tiny-v3\", \"data\": \"$TMP/tokens.bin\", \"out\": \"$TMP/y\"}"
printf '{"model": "tiny-llama", "data": "%s", "data_format": "bytes", "out": "%s/z", "steps": 30}' "$CORPUS" "$TMP" >"$TMP/other.json"
expect_fail "resume other config" "config_hash" "$SEEK" train --config "$TMP/other.json" --resume "$TMP/run"
[ ! -e "$TMP/z" ] && ok || bad "resume other config: work started ($TMP/z exists)"
[ ! -e "$TMP/y" ] && ok || bad "a bad config started work ($TMP/y exists)"


# ---- supervised fine-tuning: prompt/response pairs on a shipped model ----
MINI=tiny-models/seek-v3-mini
for i in $(seq 0 39); do printf '{"prompt": "Question: what follows %d?\\nAnswer: ", "response": "%d"}\n' $i $((i + 1)); done >"$TMP/pairs.jsonl"
printf '{"init": "%s", "objective": "sft", "data": "%s/pairs.jsonl", "out": "%s/sft", "steps": 8, "batch": 4,
 "seq_len": 32, "lr": 1e-3, "warmup": 1, "checkpoint_interval": 4, "eval_interval": 4, "eval_batches": 2}' "$MINI" "$TMP" "$TMP" >"$TMP/sft.json"
expect_ok "sft train" "$SEEK" train --config "$TMP/sft.json"
grep -q "^train (sft): deepseek_v3.* 40 pairs, 36 train / 4 val" "$TMP/out" && ok || bad "sft: start line '$(head -1 "$TMP/out")'"
first=$(grep '^step=1 ' "$TMP/sft/train.log" | sed 's/.* main=\([^ ]*\).*/\1/'); last=$(grep '^step=8 ' "$TMP/sft/train.log" | sed 's/.* main=\([^ ]*\).*/\1/')
awk -v a="$first" -v b="$last" 'BEGIN { exit !(b < a) }' && ok || bad "sft: the response loss did not fall ($first -> $last)"
[ -s "$TMP/sft/step-00000008/tokenizer.json" ] && ok || bad "sft: the init folder's tokenizer was not copied into the checkpoint"
expect_ok "sft resume" "$SEEK" train --config "$TMP/sft.json" --out "$TMP/sft2" --resume "$TMP/sft/step-00000004"
cmp -s "$TMP/sft/step-00000008/model.safetensors" "$TMP/sft2/step-00000008/model.safetensors" && ok || bad "sft resume: parameters differ from the straight run"
cmp -s "$TMP/sft/step-00000008/train_state.safetensors" "$TMP/sft2/step-00000008/train_state.safetensors" && ok || bad "sft resume: optimizer or data state differs"
expect_ok "sft generate" "$SEEK" generate "$TMP/sft" --prompt "Question: what follows 3?" -n 4
# bad SFT input: one line naming the line or the key, before any work (no output folder)
printf '{"prompt": "a", "response": "b"}\n[1, 2]\n' >"$TMP/bad1.jsonl"
printf '{"prompt": "a", "response": "b"}\n{"prompt": "a"}\n' >"$TMP/bad2.jsonl"
printf '{"prompt": "a", "response": ""}\n{"prompt": "a", "response": "b"}\n' >"$TMP/bad3.jsonl"
printf '{"prompt": "a", "response": "b"}\n{"prompt": "%s", "response": "b"}\n' "$(printf 'x%.0s' $(seq 1 200))" >"$TMP/bad4.jsonl"
printf '{"prompt": "a", "response": "b"}\n{"prompt": "a", "response": "b"\n' >"$TMP/bad5.jsonl"
expect_fail "sft not an object" "bad1.jsonl: line 2" "$SEEK" train --config "$TMP/sft.json" --data "$TMP/bad1.jsonl" --out "$TMP/nx"
expect_fail "sft no response" "bad2.jsonl: line 2.*response" "$SEEK" train --config "$TMP/sft.json" --data "$TMP/bad2.jsonl" --out "$TMP/nx"
expect_fail "sft empty response" "bad3.jsonl: line 1" "$SEEK" train --config "$TMP/sft.json" --data "$TMP/bad3.jsonl" --out "$TMP/nx"
expect_fail "sft too long" "bad4.jsonl: line 2.*seq_len 32" "$SEEK" train --config "$TMP/sft.json" --data "$TMP/bad4.jsonl" --out "$TMP/nx"
expect_fail "sft bad json" "bad5.jsonl: line 2" "$SEEK" train --config "$TMP/sft.json" --data "$TMP/bad5.jsonl" --out "$TMP/nx"
expect_fail "sft objective" "'objective' is 'rl'" "$SEEK" train --config "$TMP/sft.json" --objective rl --out "$TMP/nx"
expect_fail "sft no tokenizer" "needs the model's tokenizer" "$SEEK" train --model tiny-v3 --objective sft --data "$TMP/pairs.jsonl" --out "$TMP/nx"
expect_fail "sft init and model" "exclude each other" "$SEEK" train --config "$TMP/sft.json" --model tiny-v3 --out "$TMP/nx"
expect_fail "sft init missing" "init" "$SEEK" train --config "$TMP/sft.json" --init "$TMP/none" --out "$TMP/nx"
[ ! -e "$TMP/nx" ] && ok || bad "sft: a refused run created its output folder"

finish
