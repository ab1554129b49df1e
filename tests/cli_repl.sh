#!/usr/bin/env bash
# cli_repl.sh: `seek repl` from the outside (reliability rows 24-28).
#   - transcripts: every tests/repl/NAME.cmd piped through `seek repl` (stdout and stderr
#     together, not a terminal, so no colour) must equal tests/repl/NAME.out byte for byte;
#     numbers are printed with fixed precision. Regenerate after an intended change with
#     `for f in tests/repl/*.cmd; do ./seek repl <$f >${f%.cmd}.out 2>&1; done` and review the diff.
#   - hostile input: 10 MB of random bytes, NUL bytes, a 10 MB line, EOF mid-line, /dev/null,
#     stdout closed early, SIGINT while waiting for input: no crash, no sanitizer report, no raw
#     ESC byte in the output, exit 0.
#   - --script: exit 1 when a command failed, 0 otherwise; PNG files written by `png`.
#   - GRPO views (group, update, tokens) on tiny-models/seek-r1-base: rewards, advantages, the
#     update's direction and per-token ratios checked against values computed here; bad input.
cd "$(dirname "$0")/.." || exit 1
source tests/lib.sh
V3=tests/fixtures/v3

no_sanitizer() { ! grep -q 'Sanitizer\|runtime error' "$1"; }

# transcripts
for cmd in tests/repl/*.cmd; do
  name=$(basename "$cmd" .cmd)
  "$SEEK" repl <"$cmd" >"$TMP/$name.out" 2>&1
  rc=$?
  if [ $rc -ne 0 ]; then bad "transcript $name: exit $rc"; continue; fi
  if cmp -s "$TMP/$name.out" "tests/repl/$name.out"; then ok; else
    bad "transcript $name differs: $(diff "tests/repl/$name.out" "$TMP/$name.out" | head -8)"
  fi
done

# 10 MB of random bytes (NUL, ESC, invalid UTF-8, very long lines): survives, escapes, exits 0
head -c 10000000 /dev/urandom >"$TMP/random.bin"
"$SEEK" repl "$V3" <"$TMP/random.bin" >"$TMP/rnd.out" 2>"$TMP/rnd.err"
rc=$?
if [ $rc -eq 0 ] && no_sanitizer "$TMP/rnd.err"; then ok; else bad "random bytes: exit $rc $(head -c 300 "$TMP/rnd.err")"; fi
if LC_ALL=C grep -q $'\x1b' "$TMP/rnd.out" "$TMP/rnd.err"; then bad "random bytes: a raw ESC reached the output"; else ok; fi
if grep -q '^error: ' "$TMP/rnd.err"; then ok; else bad "random bytes: no error lines"; fi

# one 10 MB line without a newline, then a command: "line too long", then the command runs
{ head -c 10000000 /dev/zero | tr '\0' 'a'; printf '\nids 1 2 3\n'; } >"$TMP/long.txt"
"$SEEK" repl "$V3" <"$TMP/long.txt" >"$TMP/long.out" 2>"$TMP/long.err"
rc=$?
if [ $rc -eq 0 ] && grep -q 'error: line too long' "$TMP/long.err" && grep -q '^ran 3 tokens' "$TMP/long.out" &&
   [ "$(wc -l <"$TMP/long.err")" -eq 1 ]; then ok; else bad "long line: exit $rc, $(head -c 300 "$TMP/long.err")"; fi

# EOF mid-line: the last line still runs
printf 'ids 1 2 3' | "$SEEK" repl "$V3" >"$TMP/eof.out" 2>&1
rc=$?
if [ $rc -eq 0 ] && grep -q '^ran 3 tokens' "$TMP/eof.out"; then ok; else bad "EOF mid-line: exit $rc"; fi

# stdin /dev/null: exit 0, nothing on stderr
"$SEEK" repl "$V3" </dev/null >"$TMP/null.out" 2>"$TMP/null.err"
rc=$?
if [ $rc -eq 0 ] && [ ! -s "$TMP/null.err" ]; then ok; else bad "/dev/null: exit $rc $(head -c 200 "$TMP/null.err")"; fi

# stdout closed early: quiet exit 0
"$SEEK" repl <tests/repl/v3_tour.cmd 2>"$TMP/pipe.err" | head -1 >/dev/null
rc=${PIPESTATUS[0]}
if [ "$rc" -eq 0 ] && [ ! -s "$TMP/pipe.err" ]; then ok; else bad "stdout closed: exit $rc $(head -c 200 "$TMP/pipe.err")"; fi

# SIGINT while a pipe waits for input: leave cleanly with status 0
mkfifo "$TMP/fifo"
"$SEEK" repl "$V3" <"$TMP/fifo" >"$TMP/int.out" 2>"$TMP/int.err" &
pid=$!
exec 7>"$TMP/fifo"
echo "ids 1 2 3" >&7
for _ in $(seq 100); do grep -q '^ran 3 tokens' "$TMP/int.out" 2>/dev/null && break; sleep 0.1; done
kill -INT $pid
wait $pid
rc=$?
exec 7>&-
if [ $rc -eq 0 ] && grep -q '^ran 3 tokens' "$TMP/int.out" && no_sanitizer "$TMP/int.err"; then ok; else bad "SIGINT: exit $rc"; fi

# --script: the exit status says whether a command failed; png writes a real PNG
printf 'ids 5 17 42 99\nroute 1\npng %s/route.png\nattn 0\npng %s/attn.png\n' "$TMP" "$TMP" >"$TMP/good.cmd"
expect_ok "script ok" "$SEEK" repl "$V3" --script "$TMP/good.cmd"
for f in route attn; do
  if [ "$(head -c 8 "$TMP/$f.png" | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a ]; then ok; else bad "$f.png is not a PNG"; fi
done
printf 'ids 5 17\nattn 9\n' >"$TMP/bad.cmd"
"$SEEK" repl "$V3" --script "$TMP/bad.cmd" >/dev/null 2>&1
rc=$?
if [ $rc -eq 1 ]; then ok; else bad "script with an error: exit $rc, expected 1"; fi

# GRPO views (docs/repl.md, "One GRPO group and one update") on the shipped base model, with a
# fixed seed. What is expected is computed here from the printed numbers (the reward rule, TRL's
# advantage formula, new - old), not taken from the code under test. One OpenMP thread: the cpu
# backend is then fast and does not spin against other jobs; without BLAS `set backend cpu`
# fails and the views run on ref (slower; the same checks, one more error line).
R1=tiny-models/seek-r1-base
cat >"$TMP/grpo.cmd" <<CMDS
load $R1
update
tokens 0
set backend cpu
set seed 1
ids 5 6 7
group 3
tokens 0
update
tokens 0
png $TMP/tokens.png
group 3 1
group 3 65
group -1
group 1000000000
group 3x
tokens 8
tokens -1
update nan
update inf
update 0
update 12abc
tokens 0
group 5 4
load $R1
tokens 0
group 3
load tests/fixtures/v3
group 3
CMDS
OMP_NUM_THREADS=1 "$SEEK" repl <"$TMP/grpo.cmd" >"$TMP/grpo.out" 2>"$TMP/grpo.err"
rc=$?
if [ $rc -eq 0 ] && no_sanitizer "$TMP/grpo.err"; then ok; else bad "grpo: exit $rc $(head -c 400 "$TMP/grpo.err")"; fi
# the output of the n-th command CMD: its lines after "seek> CMD" up to the next prompt
section() { awk -v c="seek> $1" -v n="${2:-1}" '/^seek> /{on = ($0 == c && ++k == n); next} on' "$TMP/grpo.out"; }
# (the script's first `update` and `tokens 0` were errors: the views are their later ones)
# the rows of the n-th `group N`: #, reward, accuracy, format, advantage, tokens
group_rows() { section "group $1" "$2" | awk '$1 ~ /^[0-9]+$/ && $2 ~ /^[0-9]+[.][0-9]+$/ {print $1, $2, $3, $4, $5, $6}'; }
group_rows 3 1 >"$TMP/g1.txt"
awk '{ n++; r[n] = $2; a[n] = $5; s += $2
       if (($2 - $3 - 0.1 * $4) ^ 2 > 1e-6) { print "row " $1 ": reward " $2 " is not accuracy + 0.1 x format"; e++ }
       if ($2 != "0.000" && $2 != "0.100" && $2 != "1.000" && $2 != "1.100") { print "row " $1 ": reward " $2; e++ } }
     END { if (n != 8) { print n " rows, expected 8"; exit 1 }
       m = s / n; for (i = 1; i <= n; i++) v += (r[i] - m) ^ 2; sd = sqrt(v / (n - 1))
       if (sd == 0) { print "all rewards are equal: the test needs a seed whose group is mixed"; e++ }
       for (i = 1; i <= n; i++) { want = (r[i] - m) / (sd + 1e-4); sa += a[i]
         if ((a[i] - want) ^ 2 > 4e-6) { print "advantage " a[i] ", expected " want; e++ }
         if ((r[i] > m && a[i] <= 0) || (r[i] < m && a[i] >= 0)) { print "advantage " a[i] " has the wrong sign"; e++ } }
       if (sa ^ 2 > 1e-4) { print "the advantages sum to " sa; e++ }
       exit e > 0 }' "$TMP/g1.txt" >"$TMP/g1.why" && ok || bad "grpo group: $(head -3 "$TMP/g1.why")"
# the rows of the n-th `tokens K` without the token: j, logp, ratio, ratio-1, KL, advantage, clipped 0/1
token_rows() {
  section "tokens $1" "$2" | awk '/^ +[0-9]+  .* [-+][0-9]+[.][0-9][0-9][0-9]( +clipped)?$/ {
    c = sub(/ +clipped$/, ""); print $1, $(NF-4), $(NF-3), $(NF-2), $(NF-1), $NF, c }'
}
n0=$(awk 'NR == 1 {print $6}' "$TMP/g1.txt")
token_rows 0 2 | awk '{print $3, $5}' >"$TMP/t1.txt"
if [ "$(wc -l <"$TMP/t1.txt")" -eq "$n0" ] && ! grep -qv '^1.0000 0.00000$' "$TMP/t1.txt"; then ok; else
  bad "grpo tokens before update: expected $n0 rows of ratio 1.0000 and KL 0: $(grep -v '^1.0000 0.00000$' "$TMP/t1.txt" | head -3)"; fi
# update: each completion's change is new - old, and most move the way their advantage asks
section update 2 | awk '$1 ~ /^[0-9]+$/ && $2 ~ /^[-+][0-9]/ {print $1, $2, $3, $4, $5}' >"$TMP/u1.txt"
awk 'NR == FNR { adv[$1] = $5; next }
     { n++; if ($2 != adv[$1]) { print "row " $1 ": advantage " $2 ", the group said " adv[$1]; e++ }
       if (($5 - ($4 - $3)) ^ 2 > 4e-6) { print "row " $1 ": change " $5 " is not " $4 " - " $3; e++ }
       if ($2 != 0) { nz++; if ($2 * $5 > 0) moved++ } }
     END { if (n != 8) { print n " rows, expected 8"; e++ }
       if (2 * moved <= nz) { print moved " of " nz " moved in the direction of their advantage"; e++ }
       print moved + 0, nz + 0 >"/dev/stderr"; exit e > 0 }' "$TMP/g1.txt" "$TMP/u1.txt" >"$TMP/u1.why" 2>"$TMP/u1.cnt" &&
  ok || bad "grpo update: $(head -3 "$TMP/u1.why")"
read -r moved nz <"$TMP/u1.cnt"
if section update 2 | grep -q "^moved in the direction of their advantage: $moved of the $nz completions"; then ok; else
  bad "grpo update: the summary does not say $moved of $nz"; fi
if section update 2 | grep -q "^the loaded model changed (1 update since load)" &&
   section update 2 | grep -q "^the sequence ran again"; then ok; else bad "grpo update: no note of the changed model"; fi
token_rows 0 3 >"$TMP/t2.txt"
if [ "$(wc -l <"$TMP/t2.txt")" -eq "$n0" ] && awk '$3 != "1.0000" {d++} END {exit !d}' "$TMP/t2.txt"; then ok; else
  bad "grpo tokens after update: every ratio is still 1"; fi
# the bad input left the state as it was: the same view of completion 0
token_rows 0 4 >"$TMP/t3.txt"
if cmp -s "$TMP/t2.txt" "$TMP/t3.txt"; then ok; else bad "grpo: bad input changed the kept group"; fi
if [ "$(group_rows "5 4" 1 | wc -l)" -eq 4 ]; then ok; else bad "grpo: group 5 4 did not give 4 rows"; fi
# load restores the model: the same seed draws the same group as before the update
group_rows 3 2 >"$TMP/g2.txt"
if cmp -s "$TMP/g1.txt" "$TMP/g2.txt"; then ok; else bad "grpo: after load, group 3 differs: $(diff "$TMP/g1.txt" "$TMP/g2.txt" | head -4)"; fi
if [ "$(head -c 8 "$TMP/tokens.png" | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a ] &&
   [ "$(od -An -tu1 -j 20 -N 4 "$TMP/tokens.png" | awk '{print $1 * 16777216 + $2 * 65536 + $3 * 256 + $4}')" -gt 200 ]; then ok; else
  bad "grpo: tokens.png is not a PNG of the heatmap"; fi
# every bad input: one error line each, in order
cat >"$TMP/grpo.want" <<ERRS
error: update: no group yet (group N [G] first)
error: tokens: no group yet (group N [G] first)
error: group size 1 is out of range [2, 65) (usage: group N [G])
error: group size 65 is out of range [2, 65) (usage: group N [G])
error: task -1 is out of range [0, 1000000000) (usage: group N [G])
error: task 1000000000 is out of range [0, 1000000000) (usage: group N [G])
error: task: '3x' is not an integer (usage: group N [G])
error: completion 8 is out of range [0, 8) (usage: tokens K)
error: completion -1 is out of range [0, 8) (usage: tokens K)
error: update: learning rate 'nan': expected a finite number in (0, 1] (usage: update [LR])
error: update: learning rate 'inf': expected a finite number in (0, 1] (usage: update [LR])
error: update: learning rate '0': expected a finite number in (0, 1] (usage: update [LR])
error: update: learning rate '12abc': expected a finite number in (0, 1] (usage: update [LR])
error: tokens: no group yet (group N [G] first)
error: group: tests/fixtures/v3 has no tokenizer.json (the task's prompt and the rewards need the model's tokenizer)
ERRS
grep -v '^error: --backend cpu:' "$TMP/grpo.err" >"$TMP/grpo.got"
if diff "$TMP/grpo.want" "$TMP/grpo.got" >"$TMP/grpo.diff"; then ok; else bad "grpo errors: $(head -6 "$TMP/grpo.diff")"; fi

# command-line errors
expect_fail "no such model" "seek repl: /nonexistent/config.json" "$SEEK" repl /nonexistent
expect_fail "two dirs" "unexpected argument" "$SEEK" repl "$V3" "$V3"
expect_fail "bad option" "unknown option" "$SEEK" repl --bogus
expect_fail "no script" "cannot open" "$SEEK" repl --script /nonexistent.cmd

# heatmap row labels: BOS reads <bos> (it was half an escape, "0:<\xef\xbd\x9"); a label longer
# than its 14 columns is cut whole pieces at a time and ends in "..." (it was cut mid-word, no mark)
printf 'prompt And he said unto them, keep my commandments and my statutes\nattn 0 0\n' |
  "$SEEK" repl tiny-models/seek-v3-mini >"$TMP/lab.out" 2>&1
grep -q '^ *0:<bos> @@//' "$TMP/lab.out" && ok || bad "labels: no '0:<bos>' row: $(grep -m1 '^ *0:' "$TMP/lab.out")"
grep -q '^9: commandm\.\.\. ' "$TMP/lab.out" && ok || bad "labels: the long label is not cut with '...': $(grep -m1 '^ *9:' "$TMP/lab.out")"
grep -q 'xef' <(grep '^ *[0-9]*:.* [ .:=+*#%@/-]*$' "$TMP/lab.out") && bad "labels: an escaped byte in a heatmap label" || ok

# no DIR: the default model, piped or with --script as at a terminal (it was "error: prompt: no
# model loaded" off a terminal)
printf 'prompt And God said\n' >"$TMP/default.cmd"
"$SEEK" repl --script "$TMP/default.cmd" >"$TMP/default.out" 2>&1
rc=$?
[ $rc -eq 0 ] && grep -q '^loaded tiny-models/seek-v3-mini: deepseek_v3' "$TMP/default.out" && grep -q "^next token: 355 ' unto'" "$TMP/default.out" \
  && ok || bad "script without DIR: exit $rc: $(head -c 300 "$TMP/default.out")"
"$SEEK" repl <"$TMP/default.cmd" >"$TMP/default.out" 2>&1
rc=$?
[ $rc -eq 0 ] && grep -q "^next token: 355 ' unto'" "$TMP/default.out" && ok || bad "piped without DIR: exit $rc: $(head -c 300 "$TMP/default.out")"
# no default model (a seek away from tiny-models/, no SEEK_MODEL): one note, then every command
# that needs a model says so and changes nothing
mkdir -p "$TMP/bin" && cp "$SEEK" "$TMP/bin/seek"
printf 'step\nroute 1\nprompt hello\ngroup 1\nupdate\ntokens 0\nlatent 0\n' | env -u SEEK_MODEL "$TMP/bin/seek" repl >/dev/null 2>"$TMP/nomodel.err"
rc=$?
cat >"$TMP/nomodel.want" <<ERRS
seek repl: no model folder given, and the default model $TMP/bin/tiny-models/seek-v3-mini is missing (give DIR or set SEEK_MODEL); starting with no model ('load DIR' loads one)
error: step: no model loaded (load DIR first)
error: route: no model loaded (load DIR first)
error: prompt: no model loaded (load DIR first)
error: group: no model loaded (load DIR first)
error: update: no model loaded (load DIR first)
error: tokens: no model loaded (load DIR first)
error: latent: no model loaded (load DIR first)
ERRS
[ $rc -eq 0 ] && diff "$TMP/nomodel.want" "$TMP/nomodel.err" >"$TMP/nomodel.diff" && ok || bad "no default model: exit $rc: $(head -6 "$TMP/nomodel.diff")"
# SEEK_MODEL names the default; one that does not load is an error naming it
printf 'where\n' | SEEK_MODEL=tests/fixtures/v3 "$SEEK" repl 2>&1 | grep -q '^loaded tests/fixtures/v3: ' && ok || bad "SEEK_MODEL: not loaded"
expect_code "SEEK_MODEL broken" 1 'seek repl: the default model (\$SEEK_MODEL) did not load: /nonexistent/config.json: cannot open' \
  env SEEK_MODEL=/nonexistent "$SEEK" repl </dev/null

# latent on a model without MLA: one line on what its cache holds instead, not an error (a script
# comparing models goes on); it was "error: latent: ... (MHA; MHA: 384)"
printf 'latent 1\n' >"$TMP/latent.cmd"
"$SEEK" repl tiny-models/seek-v1-mini --script "$TMP/latent.cmd" >"$TMP/latent.out" 2>"$TMP/latent.err"
rc=$?
[ $rc -eq 0 ] && [ ! -s "$TMP/latent.err" ] && grep -q '^no latent cache: llama uses multi-head attention, so its cache holds K and V: 6 heads x (32 + 32) = 384 values = 768 B per token per layer in bf16$' "$TMP/latent.out" \
  && ok || bad "latent on MHA: exit $rc: $(cat "$TMP/latent.out" "$TMP/latent.err" | tail -2)"
printf 'latent 9\n' | "$SEEK" repl tiny-models/seek-v1-mini 2>&1 | grep -q '^error: layer 9 is out of range \[0, 4)' && ok || bad "latent on MHA: layer out of range not refused"

# ablate says which token was top-1 and which is now, with probabilities (it was "top-1 was 282, now 51")
printf 'prompt In the beginning\nablate head 0 3\n' | "$SEEK" repl tiny-models/seek-v3-mini >"$TMP/abl.out" 2>&1
grep -q "^last position: top-1 was 275 ' of' (p 0\.4682 -> 0\.1828), now 51 ',' (p 0\.1944 -> 0\.3530); max |change| of a logit 2\.5353$" "$TMP/abl.out" \
  && ok || bad "ablate: $(grep 'last position' "$TMP/abl.out")"
finish
