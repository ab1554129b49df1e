#!/usr/bin/env bash
# cli_draft.sh: `seek generate --draft mtp` (ref/speculative.c; docs/training.md, "Speculative
# decoding"): greedy generation drafted by the model's MTP module gives exactly plain greedy's
# tokens, token for token, on every model with MTP weights (the trained_v3 fixture and the three
# shipped tiny models) on ref, where each position's logits do not depend on how many positions a
# call holds, and on cpu; it reports its drafts and acceptance; bad requests get one line.
set -u
cd "$(dirname "$0")/.."
. tests/lib.sh

# model|prompt ids|new tokens|backends
cases="tests/fixtures/trained_v3|5,6,7,8|20|ref cpu
tiny-models/seek-v3-mini|1,100,200,300,400|40|ref cpu
tiny-models/seek-r1-base|1,100,200,30,40|40|cpu
tiny-models/seek-r1-zero|1,100,200,30,40|40|ref
tiny-models/seek-v3-mini|7|1|ref
tiny-models/seek-v3-mini|7|2|ref"
while IFS='|' read -r model ids n bes; do
  for be in $bes; do
    expect_ok "plain $model $be" "$SEEK" generate "$model" --ids "$ids" -n "$n" --backend "$be"
    cp "$TMP/out" "$TMP/plain"
    expect_ok "draft $model $be" "$SEEK" generate "$model" --ids "$ids" -n "$n" --backend "$be" --draft mtp
    cmp -s "$TMP/out" "$TMP/plain" && ok || bad "draft $model $be -n $n: tokens differ from plain greedy: $(head -c 200 "$TMP/out") | $(head -c 200 "$TMP/plain")"
    [ "$(wc -w <"$TMP/out")" = "$n" ] && ok || bad "draft $model $be: expected $n tokens, got $(wc -w <"$TMP/out")"
    grep -q "^draft mtp: [0-9]* of [0-9]* drafts accepted ([0-9.]*%), $n tokens in [0-9]* calls after the prefill" "$TMP/err" && ok ||
      bad "draft $model $be: no stats line: $(head -c 200 "$TMP/err")"
  done
done <<<"$cases"
# the shipped reasoner drafts well: more than one token a call on its own arithmetic
expect_ok "draft r1-zero rate" "$SEEK" generate tiny-models/seek-r1-zero --ids "1,100,200,30,40" -n 40 --backend cpu --draft mtp
calls=$(sed -n 's/.* tokens in \([0-9]*\) calls.*/\1/p' "$TMP/err")
[ -n "$calls" ] && [ "$calls" -lt 30 ] && ok || bad "draft r1-zero: $calls calls for 40 tokens (fewer than a third of the drafts accepted?)"

# bad requests: one line, non-zero exit
expect_fail "draft junk" "'eagle' is not a draft (expected mtp" "$SEEK" generate tiny-models/seek-v3-mini --ids 7 -n 4 --draft eagle
expect_fail "draft sampling" "decodes greedily (--temp 0)" "$SEEK" generate tiny-models/seek-v3-mini --ids 7 -n 4 --draft mtp --temp 0.8
expect_fail "draft batch" "one sequence at a time (got 2)" "$SEEK" generate tiny-models/seek-v3-mini --ids "7;8" -n 4 --draft mtp
expect_fail "draft no weights" "the checkpoint holds no MTP weights" "$SEEK" generate tests/fixtures/v3 --ids 7 -n 4 --draft mtp
expect_fail "draft no module" "has no MTP module" "$SEEK" generate tiny-models/seek-v1-mini --ids 7 -n 4 --draft mtp
expect_fail "draft positions" "+1 for the draft" "$SEEK" generate tiny-models/seek-v3-mini --ids 7 -n 255 --draft mtp
finish
