#!/usr/bin/env bash
# cli_tiny.sh: the shipped models from the command line: `make demo`'s scripted tour runs on
# seek-v3-mini and shows what the tour promises (a prompt, one layer stepped through, an attention
# heatmap, a routing heatmap, generated text); the default model is used when no folder is given;
# `seek eval` reports MTP acceptance and expert specialisation; the prompt generates readable text.
# (Numbers against transformers are in tests/test_tiny_models.c.)
set -u
cd "$(dirname "$0")/.."
. tests/lib.sh
V3=tiny-models/seek-v3-mini
V1=tiny-models/seek-v1-mini

# `make demo` as a user runs it, MAKE=true standing in for the package installation and the build
# (the suite has built seek; scripts/demo.sh runs $SEEK). What they print goes to a log that one
# line names, so the first screen is the model and the start of the tour (it was the apt and
# compiler output).
SEEK="$SEEK" make --no-print-directory demo B="$TMP/b" MAKE=true </dev/null >"$TMP/demo" 2>"$TMP/demo.err"
rc=$?
[ $rc -eq 0 ] && ok || bad "make demo: exit $rc ($(head -c 300 "$TMP/demo.err"))"
head -1 "$TMP/demo" | grep -q "^make demo: installing missing Debian packages and building ./seek (their output goes to $TMP/b/demo.log)$" &&
  [ -f "$TMP/b/demo.log" ] && ok || bad "make demo: first line '$(head -1 "$TMP/demo")'"
head -24 "$TMP/demo" | grep -q '^== seek repl .*the scripted tour' && head -24 "$TMP/demo" | grep -q '^seek> where$' &&
  ok || bad "make demo: the tour does not start on the first screen: $(head -24 "$TMP/demo" | cut -c1-60)"
SEEK="$SEEK" make --no-print-directory demo B="$TMP/b2" MAKE=false </dev/null >"$TMP/demo2" 2>&1
rc=$?
[ $rc -ne 0 ] && grep -q "^make demo: the build failed; the end of $TMP/b2/demo.log:$" "$TMP/demo2" && ! grep -q '^== seek' "$TMP/demo2" &&
  ok || bad "make demo, failing build: exit $rc, $(head -c 300 "$TMP/demo2")"
grep -q "^model        deepseek_v3: DeepSeek-V3" "$TMP/demo" && ok || bad "demo: no seek info of the V3 model"
grep -q "^seek> prompt And God said" "$TMP/demo" && ok || bad "demo: no prompt"
[ "$(grep -c '^\[[0-9]*/[0-9]*\] blocks\.1\.' "$TMP/demo")" -ge 20 ] && ok || bad "demo: did not step through layer 1"
grep -q "attention" "$TMP/demo" && grep -q "^seek> attn 1" "$TMP/demo" && ok || bad "demo: no attention heatmap"
grep -q "^seek> route 1" "$TMP/demo" && grep -q "tokens per expert" "$TMP/demo" && ok || bad "demo: no routing heatmap"
grep -q "^seek> gen 40" "$TMP/demo" && ok || bad "demo: no generation"
grep -q "^== seek rl --init tiny-models/seek-r1-zero" "$TMP/demo" && grep -q '^  greedy  (43 tokens with EOS, format 1, accuracy 1):  5+4=9, 7+5=12' "$TMP/demo" \
  && ok || bad "demo: no R1-Zero reasoner answering a held-out addition"
! grep -q "^error" "$TMP/demo.err" && ok || bad "demo: errors: $(head -c 300 "$TMP/demo.err")"

# the default model: no folder given
expect_ok "info without DIR" "$SEEK" info
grep -q "^model        deepseek_v3" "$TMP/out" && ok || bad "info without DIR did not use seek-v3-mini"
SEEK_MODEL=$V1 "$SEEK" info >"$TMP/out" 2>&1 && grep -q "^model        llama" "$TMP/out" && ok || bad "SEEK_MODEL is not honoured"

# readable text: the greedy continuation is made of the corpus's words
expect_ok "generate v1" "$SEEK" generate $V1 --prompt "And God said" -n 24
grep -q "unto" "$TMP/out" && ok || bad "v1 text: $(cat "$TMP/out")"
expect_ok "generate v3" "$SEEK" generate $V3 --prompt "And God said" -n 24
grep -q "unto\|LORD\|the" "$TMP/out" && ok || bad "v3 text: $(cat "$TMP/out")"

# eval: MTP acceptance and the experts (numbers recorded in the model card; here only their form)
expect_ok "eval v3" "$SEEK" eval $V3 --text tests/fixtures/tiny_models/heldout.txt --experts 3
grep -q "^mtp acceptance of the second token: 0\.[0-9]*" "$TMP/out" && ok || bad "eval: no acceptance line"
[ "$(grep -c '^layer [123]: 8 routed experts' "$TMP/out")" = 3 ] && ok || bad "eval: expected 3 MoE layers: $(grep '^layer' "$TMP/out")"
expect_ok "eval v1" "$SEEK" eval $V1 --text tests/fixtures/tiny_models/heldout.txt
grep -q "^mtp" "$TMP/out" && bad "eval: MTP lines for a model without MTP" || ok

finish
