#!/usr/bin/env bash
# cli_solve.sh: seek solve, test-time compute on the held-out problems (docs/rl.md, "Test-time
# compute"; ref/solve.h). Its greedy and sampled figures are seek rl's evaluation of the same
# problems; a seeded run gives the same numbers twice; the totals are the per-problem lines'; the
# thinking budget closes the thinking and budget forcing puts "Wait" where the model closed it
# (transcripts of seek-r1-zero's greedy answer); the JSON and the PNG are written; bad input is one
# line naming the flag or file, and destroys nothing. The vote and the budget's rules by hand are
# tests/test_tasks.c's.
set -u
cd "$(dirname "$0")/.."
. tests/lib.sh
BASE=tiny-models/seek-r1-base
ZERO=tiny-models/seek-r1-zero
png_size() {   # "WxH" from the IHDR chunk, or "not a PNG"
  [ "$(head -c 16 "$1" 2>/dev/null | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a0000000d49484452 ] || { echo "not a PNG"; return; }
  od -An -tu1 -j16 -N8 "$1" | awk '{ printf "%dx%d\n", (($1*256+$2)*256+$3)*256+$4, (($5*256+$6)*256+$7)*256+$8 }'
}
# total FIELD: the number after FIELD in the last "total" line of $TMP/out
total() { sed -n "s/^total .*[(:,] $1 \\([0-9.]*\\).*/\\1/p" "$TMP/out" | tail -n 1; }

# 1. the same problems and samples as seek rl --steps 0: greedy, pass@1 and pass@4 to the digit
expect_ok "rl eval" "$SEEK" rl --init $BASE --steps 0 --eval 12 --eval-samples 4 --pass-k 4 --max-new 48 --backend cpu
read -r r_p1 r_pk r_g < <(sed -n 's/^held-out .*pass@1 \([0-9.]*\), pass@4 \([0-9.]*\), greedy \([0-9.]*\),.*/\1 \2 \3/p' "$TMP/out")
expect_ok "solve base" "$SEEK" solve $BASE --problems 12 --samples 4 --backend cpu --json "$TMP/a.json"
cp "$TMP/out" "$TMP/a.out"
[ -n "${r_g:-}" ] && [ "$(total greedy)" = "$r_g" ] && [ "$(total pass@1)" = "$r_p1" ] && [ "$(total best-of-4)" = "$r_pk" ] \
  && ok || bad "solve vs rl eval: greedy $(total greedy) / ${r_g:-?}, pass@1 $(total pass@1) / ${r_p1:-?}, pass@4 $(total best-of-4) / ${r_pk:-?}"
# the base is where voting pays: maj@4 above greedy on these 12 problems
awk -v m="$(total maj@4)" -v g="$(total greedy)" 'BEGIN { exit !(m > g) }' && ok \
  || bad "maj@4 $(total maj@4) not above greedy $(total greedy)"

# 2. the totals are the per-problem lines' (greedy, vote, best-of-N, tokens), and maj@1 is pass@1
awk -v P=12 -v g="$(total greedy)" -v m="$(total maj@4)" -v b="$(total best-of-4)" '
  /^problem / { n++; if ($0 ~ / greedy [^ ]* right /) gr++; if ($0 ~ / vote [^ ]* [0-9]+\/4 right /) vr++
                if ($0 ~ / best-of-4 right /) br++; for (i = 1; i <= NF; i++) if ($i == "tokens") t += $(i + 1) }
  /^  tokens: / { tt = $2 }
  END { exit !(n == P && sprintf("%.3f", gr / P) == g && sprintf("%.3f", vr / P) == m && sprintf("%.3f", br / P) == b && t == tt) }' \
  "$TMP/out" && ok || bad "the totals are not the sums of the problem lines"
read -r m1 < <(sed -n 's/^    maj@N: *\([0-9.]*\).*/\1/p' "$TMP/out")
[ "${m1:-x}" = "$(total pass@1)" ] && ok || bad "maj@1 ${m1:-?} is not pass@1 $(total pass@1)"

# 3. seeded: the same command, the same output and JSON; another seed, other samples
expect_ok "solve again" "$SEEK" solve $BASE --problems 12 --samples 4 --backend cpu --json "$TMP/b.json"
cmp -s <(grep -v '^json: ' "$TMP/a.out") <(grep -v '^json: ' "$TMP/out") && ok || bad "two seeded runs printed different results"
sed 's/"model": .*//' "$TMP/a.json" >"$TMP/a.j"; sed 's/"model": .*//' "$TMP/b.json" >"$TMP/b.j"
cmp -s "$TMP/a.j" "$TMP/b.j" && ok || bad "two seeded runs wrote different JSON"
grep -q '"pass_n": ' "$TMP/a.json" && grep -q '"budget": null' "$TMP/a.json" && grep -q '"problems_detail": ' "$TMP/a.json" \
  && ok || bad "the JSON lacks its fields"
expect_ok "solve seed 2" "$SEEK" solve $BASE --problems 12 --samples 4 --backend cpu --seed 2
cmp -s <(grep '^problem ' "$TMP/a.out") <(grep '^problem ' "$TMP/out") && bad "--seed 2 gave seed 1's results" || ok

# 4. the budget and budget forcing, on seek-r1-zero's greedy answer to 75 + 954 (34 thinking tokens)
expect_ok "solve budgets" "$SEEK" solve $ZERO --problems 1 --samples 2 --budget 16,40 --force 0,1 --show 1 --backend cpu \
  --plot "$TMP/b.png"
g() { awk -v run="$1" '/^== / { r = substr($0, 4) } r == run && /^  greedy  / { print; exit }' "$TMP/out"; }
[ "$(g 'no budget')" = '  greedy  (43 tokens, thinking 34, Wait 0):  5+4=9, 7+5=12, 0+9+1=10, 0+0+1=1 </think> <answer>1029</answer>' ] \
  && ok || bad "no budget: $(g 'no budget')"
# the budget of 16 closes the thinking after two columns ([...] marks forced tokens)
[ "$(g 'budget 16')" = '  greedy  (23 tokens, thinking 16, Wait 0, capped):  5+4=9, 7+5=12, [</think>] <answer>19</answer>' ] \
  && ok || bad "budget 16: $(g 'budget 16')"
# a budget above what the model spends changes nothing; with force 1, "Wait" where it closed at 34
[ "$(g 'budget 40')" = "$(g 'no budget')" ] && ok || bad "budget 40 changed the answer: $(g 'budget 40')"
[ "$(g 'budget 40, force 1')" = '  greedy  (49 tokens, thinking 40, Wait 1, capped):  5+4=9, 7+5=12, 0+9+1=10, 0+0+1=1 [Wait]0+[ </think>] <answer>020</answer>' ] \
  && ok || bad "budget 40, force 1: $(g 'budget 40, force 1')"
grep -q '^40  *1  *2 ' "$TMP/out" && grep -q '^none  *0  *2  *1.000' "$TMP/out" && ok || bad "the summary table is missing"
# --budget-samples: the budgeted runs' own N, the run without a budget keeps --samples
expect_ok "budget samples" "$SEEK" solve $ZERO --problems 1 --samples 4 --budget 40 --budget-samples 2 --backend cpu
grep -q '^none  *0  *4 ' "$TMP/out" && grep -q '^40  *0  *2 ' "$TMP/out" && grep -q '^total (budget 40, 1 problems x 2 samples)' "$TMP/out" \
  && ok || bad "--budget-samples 2: $(grep '^total' "$TMP/out")"
[ "$(png_size "$TMP/b.png")" = 1920x550 ] && ok || bad "the budget picture: $(png_size "$TMP/b.png")"

# 5. bad input: one line naming the flag or file, exit 1 (a value) or 2 (usage), nothing written
printf 'precious' >"$TMP/keep.png"
expect_code "samples 0" 1 '^seek solve: --samples: 0 is out of range' "$SEEK" solve $ZERO --samples 0 --plot "$TMP/keep.png"
expect_code "budget 0" 1 '^seek solve: --budget: 0 is out of range' "$SEEK" solve $ZERO --budget 0 --plot "$TMP/keep.png"
expect_code "budget -4" 1 '^seek solve: --budget: -4 is out of range' "$SEEK" solve $ZERO --budget 8,-4
expect_code "budget text" 1 "^seek solve: --budget: 'x' is not an integer" "$SEEK" solve $ZERO --budget 8,x
expect_code "budget samples alone" 1 '^seek solve: --budget-samples: .*need --budget' "$SEEK" solve $ZERO --budget-samples 4
expect_code "budget samples 0" 1 '^seek solve: --budget-samples: 0 is out of range' "$SEEK" solve $ZERO --budget 8 --budget-samples 0
expect_code "force alone" 1 '^seek solve: --force: .*needs a thinking budget' "$SEEK" solve $ZERO --force 2
expect_code "budget room" 1 '^seek solve: --budget 60 leaves no room to answer within --max-new 48' "$SEEK" solve $ZERO --budget 60 --max-new 48
expect_code "budget past the context" 1 '^seek solve: --max-new 232 (the largest --budget + 32): .*max_position_embeddings 192' \
  "$SEEK" solve $ZERO --budget 200
expect_code "unknown task" 1 "^seek solve: .*mul" "$SEEK" solve $ZERO --family mul
expect_code "unknown task alias" 1 "^seek solve: .*mul" "$SEEK" solve $ZERO --task mul
expect_code "bad split" 1 '^seek solve: --split dev: expected test or train' "$SEEK" solve $ZERO --split dev
mkdir "$TMP/notok"; ln -s "$PWD/$ZERO/config.json" "$PWD/$ZERO/model.safetensors" "$TMP/notok/"
expect_code "no tokenizer" 1 "^seek solve: $TMP/notok needs its tokenizer: .*tokenizer.json" "$SEEK" solve "$TMP/notok" --problems 1 --samples 1
expect_code "no model" 1 "^seek solve: .*$TMP/none" "$SEEK" solve "$TMP/none"
expect_code "plot folder missing" 1 "^seek solve: --plot $TMP/nodir/x.png: cannot be written: no folder $TMP/nodir" \
  "$SEEK" solve $ZERO --problems 1 --samples 1 --plot "$TMP/nodir/x.png"
expect_code "plot is a folder" 1 "^seek solve: --plot $TMP: is a folder" "$SEEK" solve $ZERO --problems 1 --samples 1 --plot "$TMP"
expect_code "json under a file" 1 "^seek solve: --json $TMP/keep.png/x.json: cannot be written" \
  "$SEEK" solve $ZERO --problems 1 --samples 1 --json "$TMP/keep.png/x.json"
expect_code "unknown flag" 2 '^seek solve: unknown option --bogus' "$SEEK" solve $ZERO --bogus 1
expect_code "no model given" 2 '^seek solve: a model folder is required' "$SEEK" solve --samples 2
expect_code "missing value" 2 '^seek solve: needs a value: --budget' "$SEEK" solve $ZERO --budget
[ "$(cat "$TMP/keep.png")" = precious ] && ok || bad "a refused run touched an existing --plot file"
[ ! -e "$TMP/nodir" ] && [ -z "$(ls "$TMP" | grep -v '^\(a\|b\)\.\(out\|json\|j\|png\)$\|^keep.png$\|^notok$\|^out$\|^err$')" ] \
  && ok || bad "a refused run left files: $(ls "$TMP")"
# a run that succeeds replaces the file whole: a PNG of one panel (no budget)
expect_ok "plot replaces" "$SEEK" solve $ZERO --problems 1 --samples 2 --plot "$TMP/keep.png"
[ "$(png_size "$TMP/keep.png")" = 688x576 ] && ok || bad "the picture without budgets: $(png_size "$TMP/keep.png")"
finish
