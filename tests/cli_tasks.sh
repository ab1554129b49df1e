#!/usr/bin/env bash
# tests/cli_tasks.sh: `seek tasks` (ref/tasks.h, docs/rl.md): the tasks it prints (answers checked
# here by the shell's own 64-bit arithmetic on the question read out of each prompt), determinism,
# disjoint splits, the reward checker on completions given as text and as files (NUL bytes,
# invalid UTF-8, EOS), and every bad flag: one stderr line, exit 2 for usage, 1 for a bad value.
cd "$(dirname "$0")/.."
. tests/lib.sh

# expect_out NAME WANT CMD...: the command exits 0 and prints exactly WANT (trailing newlines aside)
expect_out() {
  local name=$1 want=$2; shift 2
  local got
  if ! got=$("$@" 2>"$TMP/err"); then bad "$name: exit non-zero ($(head -c 300 "$TMP/err"))"; return; fi
  if [ "$got" != "$want" ]; then bad "$name: got '$got', want '$want'"; return; fi
  ok
}


PROMPT_TAIL='? Think in <think> </think>, then answer in <answer> </answer>.'

# ---- generation ----
expect_out "one task, pinned" "$(printf '# task 0 (train): 446 - 26 = 420\nUser: What is 446 - 26%s\nAssistant: <think>' "$PROMPT_TAIL")" \
  $SEEK tasks --family addsub --digits 2..3 --n 1 --seed 1
expect_out "test split, pinned" "# task 0 (test): 72 + 927 = 999" \
  sh -c "$SEEK tasks --family addsub --digits 2..3 --split test --n 1 --seed 1 | head -n 1"
expect_out "jsonl line" "{\"prompt\": \"User: What is 446 - 26$PROMPT_TAIL\\nAssistant: <think>\", \"answer\": 420}" \
  $SEEK tasks --family addsub --digits 2..3 --n 1 --seed 1 --jsonl
expect_out "defaults: 10 tasks" "10" sh -c "$SEEK tasks | grep -c '^# task [0-9]* (train): [0-9]* + [0-9]* = [0-9]*$'"
expect_out "--n 1000 --jsonl" "1000" sh -c "$SEEK tasks --n 1000 --jsonl | wc -l | tr -d ' '"

# Every answer against the shell's own arithmetic on the question in the prompt; digit bounds.
check_answers() { # flags...
  "$SEEK" tasks --jsonl "$@" >"$TMP/tasks.jsonl" || return 1
  local line q a op b want got n=0
  while IFS= read -r line; do
    q=${line#*What is }; q=${q%%\?*}
    a=${q%% *}; op=${q#* }; op=${op%% *}; b=${q##* }
    got=${line##*\"answer\": }; got=${got%\}}
    if [ "$op" = + ]; then want=$((10#$a + 10#$b)); else want=$((10#$a - 10#$b)); fi
    if [ "$want" != "$got" ]; then echo "$q = $got, expected $want" >&2; return 1; fi
    n=$((n + 1))
  done <"$TMP/tasks.jsonl"
  [ $n -gt 0 ]
}
expect_ok "answers: add 1..3" check_answers --family add --digits 1..3 --n 300
expect_ok "answers: addsub 1..18" check_answers --family addsub --digits 1..18 --n 300 --seed 9
expect_ok "answers: sub negative, test split" check_answers --family sub --digits 4..6 --negative --split test --n 300
expect_out "sub without --negative: no negative answer" "0" \
  sh -c "$SEEK tasks --family sub --digits 1..3 --n 500 --jsonl | grep -c '\"answer\": -' || true"
expect_ok "sub --negative: some negative answers" \
  sh -c "$SEEK tasks --family sub --digits 1..3 --n 500 --negative --jsonl | grep -q '\"answer\": -'"
expect_out "18 digits: the longest prompt is 135 bytes" "135" \
  sh -c "$SEEK tasks --digits 18 --n 1 | sed -n 2,3p | head -c -1 | wc -c | tr -d ' '"

# Determinism, and seeds that differ
expect_ok "same seed, same tasks" bash -c "cmp -s <($SEEK tasks --n 200 --seed 3) <($SEEK tasks --n 200 --seed 3)"
expect_ok "--seed 3 and 4 differ" bash -c "! cmp -s <($SEEK tasks --n 200 --seed 3) <($SEEK tasks --n 200 --seed 4)"
expect_ok "first N of more are the same N" \
  bash -c "cmp -s <($SEEK tasks --n 50 --seed 3) <($SEEK tasks --n 500 --seed 3 | head -n 150)"

# Disjoint splits on a small family (problems recur): no train question is a test question, with
# a + b and b + a one problem
questions() { # split
  "$SEEK" tasks --family addsub --digits 1..2 --n 3000 --split "$1" --seed 2 |
    sed -n 's/^# task [0-9]* ([a-z]*): \([0-9]*\) \([-+]\) \([0-9]*\) = .*/\1 \2 \3/p' |
    awk '{ if ($2 == "+" && $1 + 0 > $3 + 0) print $3, $2, $1; else print $1, $2, $3 }' | sort -u
}
disjoint() {
  questions train >"$TMP/train.q" && questions test >"$TMP/test.q" || return 1
  [ "$(wc -l <"$TMP/train.q")" -gt 500 ] && [ "$(wc -l <"$TMP/test.q")" -gt 50 ] || return 1
  [ -z "$(comm -12 "$TMP/train.q" "$TMP/test.q")" ]
}
expect_ok "train and test disjoint" disjoint

# ---- the checker ----
expect_out "check: well formed, correct" "$(printf 'format 1\naccuracy 1\nanswer "433" (integer 433)')" \
  $SEEK tasks --check --answer 433 --completion "7 + 6 = 13, carry 1.</think> <answer>433</answer>"
expect_out "check: well formed, wrong" "$(printf 'format 1\naccuracy 0\nanswer " 434 " (integer 434)')" \
  $SEEK tasks --check --answer 433 --completion "x</think>
<answer> 434 </answer>
"
expect_out "check: leading zeros and sign" "$(printf 'format 1\naccuracy 1\nanswer "+0433" (integer 433)')" \
  $SEEK tasks --check --answer 433 --completion "x</think><answer>+0433</answer>"
expect_out "check: negative answer" "$(printf 'format 1\naccuracy 1\nanswer "-261" (integer -261)')" \
  $SEEK tasks --check --answer -261 --completion "x</think><answer>-261</answer>"
expect_out "check: no tags" "$(printf 'format 0 (no </think>)\naccuracy 0\nanswer none')" \
  $SEEK tasks --check --answer 433 --completion "433"
expect_out "check: accuracy without format" "$(printf 'format 0 (no </think>)\naccuracy 1\nanswer "433" (integer 433)')" \
  $SEEK tasks --check --answer 433 --completion "<answer>433</answer>"
expect_out "check: text after </answer>" "$(printf 'format 0 (text after </answer>)\naccuracy 1\nanswer "433" (integer 433)')" \
  $SEEK tasks --check --answer 433 --completion "x</think><answer>433</answer> so 433"
expect_out "check: nested tags" "$(printf 'format 0 (more than one <answer>)\naccuracy 0\nanswer none')" \
  $SEEK tasks --check --answer 433 --completion "x</think><answer><answer>433</answer></answer>"
expect_out "check: not an integer" "$(printf 'format 1\naccuracy 0\nanswer "4,33" (not an integer)')" \
  $SEEK tasks --check --answer 433 --completion "x</think><answer>4,33</answer>"
expect_out "check: huge number" "$(printf 'format 1\naccuracy 0\nanswer "123456789012345678901234567890" (integer out of range)')" \
  $SEEK tasks --check --answer 433 --completion "x</think><answer>123456789012345678901234567890</answer>"
expect_out "check: empty answer" "$(printf 'format 1\naccuracy 0\nanswer "" (not an integer)')" \
  $SEEK tasks --check --answer 433 --completion "x</think><answer></answer>"
expect_out "check: cut mid-tag" "$(printf 'format 0 (no </answer>)\naccuracy 0\nanswer none')" \
  $SEEK tasks --check --answer 433 --completion "x</think><answer>433</ans"
EOS=$(printf '<\357\275\234end\342\226\201of\342\226\201sentence\357\275\234>')
expect_out "check: --eos at the end" "$(printf 'format 1\naccuracy 1\nanswer "433" (integer 433)')" \
  $SEEK tasks --check --answer 433 --eos "$EOS" --completion "x</think><answer>433</answer>$EOS"
expect_out "check: EOS text without --eos" "$(printf 'format 0 (text after </answer>)\naccuracy 1\nanswer "433" (integer 433)')" \
  $SEEK tasks --check --answer 433 --completion "x</think><answer>433</answer>$EOS"

# Files: NUL bytes and invalid UTF-8 in the reasoning do not matter; in the answer they are shown
printf 'a\000b\377\376</think><answer>433</answer>\n' >"$TMP/nul-think.txt"
{ printf 'x</think><answer>43'; printf '\000'; printf '3\303(</answer>'; } >"$TMP/nul-answer.txt"
: >"$TMP/empty.txt"
expect_out "check file: NUL and bad UTF-8 in the reasoning" "$(printf 'format 1\naccuracy 1\nanswer "433" (integer 433)')" \
  $SEEK tasks --check --answer 433 --completion-file "$TMP/nul-think.txt"
expect_out "check file: NUL in the answer" "$(printf 'format 1\naccuracy 0\nanswer "43\\x003\\xc3(" (not an integer)')" \
  $SEEK tasks --check --answer 433 --completion-file "$TMP/nul-answer.txt"
expect_out "check file: empty" "$(printf 'format 0 (no </think>)\naccuracy 0\nanswer none')" \
  $SEEK tasks --check --answer 433 --completion-file "$TMP/empty.txt"
head -c 3000000 /dev/zero | tr '\0' '9' | { printf 'x</think><answer>'; cat; printf '</answer>'; } >"$TMP/huge.txt"
expect_ok "check file: 3 MB answer" sh -c "$SEEK tasks --check --answer 433 --completion-file '$TMP/huge.txt' | grep -q 'integer out of range'"

# ---- bad flags: one line, exit 2 for usage, 1 for a bad value ----
expect_code "unknown flag" 2 "unknown option '--bogus' (see 'seek tasks --help')" $SEEK tasks --bogus
expect_code "flag without value" 2 "a value is missing after --n" $SEEK tasks --n
expect_code "flag twice" 2 "given twice" $SEEK tasks --n 1 --n 2
expect_code "--check without --answer" 2 "needs --answer" $SEEK tasks --check --completion x
expect_code "--check without completion" 2 "one of --completion" $SEEK tasks --check --answer 1
expect_code "--check with both completions" 2 "one of --completion" $SEEK tasks --check --answer 1 --completion x --completion-file y
expect_code "--check with --n" 2 "takes only" $SEEK tasks --check --answer 1 --completion x --n 3
expect_code "--answer without --check" 2 "go with --check" $SEEK tasks --answer 1
expect_code "control bytes in a bad flag" 2 "unknown option '--a?b'" $SEEK tasks "$(printf -- '--a\nb')"
expect_code "--digits 0..3" 1 "each bound must be in 1..18" $SEEK tasks --digits 0..3
expect_code "--digits 19" 1 "each bound must be in 1..18" $SEEK tasks --digits 19
expect_code "--digits 3..2" 1 "minimum is above the maximum" $SEEK tasks --digits 3..2
expect_code "--digits x" 1 "expected N or A..B" $SEEK tasks --digits x
expect_code "--digits with a newline" 1 "digits '2?3'" $SEEK tasks --digits "$(printf '2\n3')"
expect_code "--family mul" 1 "family 'mul' is not known" $SEEK tasks --family mul
expect_code "--split dev" 1 "expected train or test" $SEEK tasks --split dev
expect_code "--n 0" 1 "out of range" $SEEK tasks --n 0
expect_code "--n abc" 1 "not an integer" $SEEK tasks --n abc
expect_code "--seed -1" 1 "out of range" $SEEK tasks --seed -1
expect_code "--answer 12abc" 1 "not an integer" $SEEK tasks --check --answer 12abc --completion x
expect_code "--answer beyond int64" 1 "out of range" $SEEK tasks --check --answer 99999999999999999999 --completion x
expect_code "--completion-file missing" 1 "cannot open" $SEEK tasks --check --answer 1 --completion-file "$TMP/nope.txt"
expect_code "--completion-file a folder" 1 "not a regular file" $SEEK tasks --check --answer 1 --completion-file "$TMP"

# ---- pretraining documents ----
BOS='<｜begin▁of▁sentence｜>'; EOS='<｜end▁of▁sentence｜>'
expect_out "one document, pinned" "$(printf '%sUser: What is 74 + 39%s\nAssistant: <think> 4+9=13, 7+3+1=11, 0+0+1=1 </think> <answer>113</answer>%s' "$BOS" "$PROMPT_TAIL" "$EOS")" \
  $SEEK tasks --documents --n 1 --seed 3 --worked 1 --tagged 1 --slip-worked 0
expect_out "documents: BOS/EOS texts" "[s]User: W" sh -c "$SEEK tasks --documents --n 2 --bos '[s]' --eos '[/s]' | head -n 1 | cut -c1-10"
expect_out "document i does not depend on N" "$($SEEK tasks --documents --n 3 --seed 5 2>/dev/null | sed -n 5,6p)" \
  sh -c "$SEEK tasks --documents --n 50 --seed 5 2>/dev/null | sed -n 5,6p"
# every document's answer against the shell's arithmetic: right exactly when no carry was forgotten
# (slip 0: all right; the summary's share follows)
docs_all_right() {
  $SEEK tasks --documents --n 300 --seed 9 --slip-worked 0 --slip-direct 0 --tagged 1 2>/dev/null | grep -o 'What is [0-9]* + [0-9]*\|<answer>[0-9]*<' |
    paste - - | sed 's/What is \([0-9]*\) + \([0-9]*\)\t<answer>\([0-9]*\)</\1 \2 \3/' |
    while read -r a b c; do [ $((a + b)) = "$c" ] || echo "$a + $b = $c"; done | wc -l | tr -d ' '
}
expect_out "documents without slips: every answer right" "0" docs_all_right
expect_out "documents summary" "seek tasks: 1000 documents: 100.0% right answers, 0.0% worked, 100.0% tagged, 0 of" \
  sh -c "$SEEK tasks --documents --n 1000 --worked 0 --tagged 1 --slip-direct 0 2>&1 >/dev/null | cut -c1-82"
expect_code "documents: --worked 1.5" 1 "--worked" $SEEK tasks --documents --worked 1.5
expect_code "documents: --slip-direct nan" 1 "--slip-direct" $SEEK tasks --documents --slip-direct nan
expect_code "documents: subtraction" 1 "--family add only" $SEEK tasks --documents --family sub
expect_code "documents: --jsonl" 2 "do not go with it" $SEEK tasks --documents --jsonl
expect_code "documents and --check" 2 "two modes" $SEEK tasks --documents --check --answer 1 --completion x
expect_code "--worked without --documents" 2 "go with --documents" $SEEK tasks --worked 0.5

finish
