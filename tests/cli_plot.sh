#!/usr/bin/env bash
# tests/cli_plot.sh: `seek plot` (viz/rl_plot.h, docs/rl.md "Curves"): PNGs from handwritten rl.logs
# (one run, overlays, older logs missing keys, resumed runs whose steps repeat, nan gaps, a last
# line cut short) and from a real `seek rl` run and its resume, each checked by the size in its PNG
# header; every bad log, bad flag and unwritable output: one stderr line, exit 1 for bad data and 2
# for usage, and no OUT.png (an existing one left as it was, no OUT.png.tmp).
cd "$(dirname "$0")/.."
. tests/lib.sh

# png_size FILE: "WxH" from the IHDR chunk, or "not a PNG"
png_size() {
  [ "$(head -c 16 "$1" 2>/dev/null | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a0000000d49484452 ] || { echo "not a PNG"; return; }
  od -An -tu1 -j16 -N8 "$1" | awk '{ printf "%dx%d\n", (($1*256+$2)*256+$3)*256+$4, (($5*256+$6)*256+$7)*256+$8 }'
}
# expect_png NAME FILE WxH: FILE is a PNG of that size and no FILE.tmp is left beside it
expect_png() {
  local got; got=$(png_size "$2")
  if [ "$got" != "$3" ]; then bad "$1: $2 is '$got', expected $3"; return; fi
  if [ -e "$2.tmp" ]; then bad "$1: $2.tmp left behind"; return; fi
  ok
}
# expect_stdout NAME PATTERN: the last command's stdout matches PATTERN (grep)
expect_stdout() { if grep -q -- "$2" "$TMP/out"; then ok; else bad "$1: stdout '$(head -c 400 "$TMP/out")' lacks '$2'"; fi; }
# expect_refused NAME CODE PATTERN ARGS...: seek plot ARGS -o $TMP/no.png fails so, and writes nothing
expect_refused() {
  local name=$1 code=$2 pat=$3; shift 3
  expect_code "$name" "$code" "$pat" "$SEEK" plot "$@" -o "$TMP/no.png"
  if [ -e "$TMP/no.png" ] || [ -e "$TMP/no.png.tmp" ]; then bad "$name: a refused command wrote $TMP/no.png"; rm -f "$TMP/no.png" "$TMP/no.png.tmp"; else ok; fi
}

# a run of N steps as seek rl writes it (the trainer's lines between), values from a seed;
# "old" leaves out update, entropy, ratio, pass8 and greedy (logs from before they existed)
make_log() { # FILE N SEED [old]
  mkdir -p "$(dirname "$1")"
  awk -v n="$2" -v seed="$3" -v old="${4:-}" 'BEGIN {
    srand(seed)
    printf "start init=tiny-models/seek-v3-mini steps=%d prompts=4 group=8 max_new=32 beta=0.04 resume=- backend=cpu\n", n
    printf "eval step=0 pass1=0.0900%s format=0.2000 n=64\n", old ? "" : " pass8=0.3500 greedy=0.1000 greedy_format=0.3 length=31.5"
    for (s = 1; s <= n; s++) {
      acc = 0.1 + 0.6 * (1 - exp(-s / 10)) + (rand() - 0.5) / 10; fmt = 0.2 + 0.75 * (1 - exp(-s / 6))
      printf "step=%d loss=0.5 main=0.5 mtp=0 balance=0 lr=0.0001 grad_norm=0.4 max_load=1.2 idle=0 load.1=1.2000/0.0000 tok_s=9 ms=3\n", s
      printf "rl step=%d%s reward=%.4f accuracy=%.4f format=%.4f length=%.2f kl=%.6g clip_frac=%.4f", s, old ? "" : " update=" s,
        acc + 0.1 * fmt, acc, fmt, 32 - s / 4, 0.002 * s, rand() / 50
      if (!old) printf " entropy=%.5f ratio=1.000000", 1.2 * exp(-s / 30)
      printf " flat_groups=%d loss=%.6g grad_norm=%.4g\n", int(rand() * 4), (rand() - 0.5) / 10, rand()
    }
    printf "eval step=%d pass1=0.6100%s format=0.9100 n=64\n", n, old ? "" : " pass8=0.9200 greedy=0.6500"
  }' >"$1"
}

# ---- one run, overlays, folders ----
make_log "$TMP/grpo-a/rl.log" 40 1
make_log "$TMP/grpo-b/rl.log" 40 2
expect_ok "one log" "$SEEK" plot "$TMP/grpo-a/rl.log" -o "$TMP/a.png"
expect_png "one log" "$TMP/a.png" 1920x1080
expect_stdout "one log: its label and counts" "^grpo-a: .*: 40 rl steps, 2 evaluations$"
expect_stdout "one log: nine panels" "^wrote $TMP/a.png (1920x1080, 9 panels)$"
expect_ok "a run's folder" "$SEEK" plot "$TMP/grpo-a" -o "$TMP/f.png"
expect_png "a run's folder" "$TMP/f.png" 1920x1080
expect_stdout "a run's folder: its rl.log" "^grpo-a: $TMP/grpo-a/rl.log: 40 rl steps"
expect_ok "overlay" "$SEEK" plot "$TMP/grpo-a/rl.log" "$TMP/grpo-b" --label "beta 0.04" --label "beta 0" --title "GRPO: KL or not" -o "$TMP/ab.png"
expect_png "overlay" "$TMP/ab.png" 1920x1080
expect_stdout "overlay: first label" "^beta 0.04: $TMP/grpo-a/rl.log: 40 rl steps"
expect_stdout "overlay: second label" "^beta 0: $TMP/grpo-b/rl.log: 40 rl steps"
expect_ok "overlay, one label" "$SEEK" plot "$TMP/grpo-a" "$TMP/grpo-b" --label first -o "$TMP/ab1.png"
expect_stdout "overlay, one label: the other is the folder's name" "^grpo-b: "
expect_ok "overwrites an older picture" "$SEEK" plot "$TMP/grpo-a" -o "$TMP/ab.png"
# eight runs with 40-character labels: three a legend row, so three rows (1080 + 2 x 26)
eight=(); labels=()
for i in 1 2 3 4 5 6 7 8; do eight+=("$TMP/grpo-a"); labels+=(--label "run $i with a label of forty characters.."); done
expect_ok "eight runs" "$SEEK" plot "${eight[@]}" "${labels[@]}" -o "$TMP/eight.png"
expect_png "eight runs: the legend wraps" "$TMP/eight.png" 1920x1132

# ---- logs missing keys: their panels are left out ----
make_log "$TMP/old/rl.log" 12 3 old
expect_ok "older log" "$SEEK" plot "$TMP/old/rl.log" -o "$TMP/old.png"
expect_png "older log" "$TMP/old.png" 1920x1080
expect_stdout "older log: eight panels, what is missing" "(1920x1080, 8 panels; not in these logs: entropy, passK, greedy)$"
expect_ok "older and newer overlaid" "$SEEK" plot "$TMP/old" "$TMP/grpo-a" -o "$TMP/on.png"
expect_stdout "older and newer overlaid: nine panels" "(1920x1080, 9 panels)$"
printf 'rl step=1 reward=0.1\nrl step=2 reward=0.3\n' >"$TMP/r1.log"
expect_ok "one key" "$SEEK" plot "$TMP/r1.log" -o "$TMP/r1.png"
expect_png "one key: one panel" "$TMP/r1.png" 640x416
printf 'eval step=0 pass1=0.1\neval step=9 pass1=0.2 pass16=0.5 pass4=0.4 pass32=0.6\nrl step=1 accuracy=0.2\n' >"$TMP/r2.log"
expect_ok "two panels" "$SEEK" plot "$TMP/r2.log" -o "$TMP/r2.png"
expect_png "two panels" "$TMP/r2.png" 1280x416

# ---- resumed runs: steps repeat, the later line wins whole ----
printf '%s\n' "start init=m steps=3" "eval step=0 pass1=0.1" "rl step=1 reward=0.1" "rl step=2 reward=0.2 entropy=1.5" \
  "checkpoint step=2 dir=x" "start init=m steps=3 resume=x" "eval step=1 pass1=0.2" "rl step=2 reward=0.25" \
  "rl step=3 reward=0.3" "eval step=3 pass1=0.5" "eval step=3 pass1=0.6" >"$TMP/res.log"
expect_ok "resumed" "$SEEK" plot "$TMP/res.log" -o "$TMP/res.png"
expect_stdout "resumed: counts" ": 3 rl steps, 3 evaluations, 2 starts (resumed), 2 lines replaced by later ones (steps taken again)$"
expect_stdout "resumed: step 2's entropy went with its line" "not in these logs: .*entropy"
# several updates a batch: drawn across the step
printf 'rl step=1 update=1 kl=0\nrl step=1 update=2 kl=0.1\nrl step=2 update=3 kl=0.05\nrl step=2 update=4 kl=0.2\n' >"$TMP/upd.log"
expect_ok "updates" "$SEEK" plot "$TMP/upd.log" -o "$TMP/upd.png"
expect_stdout "updates: counted" ": 2 rl steps (4 updates), 0 evaluations$"
# a real run of two batches of two updates, and its resume after the first batch (checkpoint
# step-00000002): seek rl appends, and takes batch 2 and the final evaluation again
M=tiny-models/seek-r1-base
RL=(rl --init $M --prompts 1 --group 2 --max-new 2 --eval 1 --eval-samples 2 --pass-k 2 --updates 2
    --checkpoint-interval 1 --backend cpu --out "$TMP/real" --steps 2)
expect_ok "seek rl" "$SEEK" "${RL[@]}"
expect_ok "seek rl resume" "$SEEK" "${RL[@]}" --resume "$TMP/real/step-00000002"
expect_ok "a real run" "$SEEK" plot "$TMP/real" -o "$TMP/real.png"
expect_png "a real run" "$TMP/real.png" 1920x1080
expect_stdout "a real run: counts" "^real: $TMP/real/rl.log: 2 rl steps (4 updates), 3 evaluations, 2 starts (resumed), 3 lines replaced"
expect_stdout "a real run: nine panels" "(1920x1080, 9 panels)$"

# ---- what is tolerated ----
printf 'rl step=1 reward=0.5 loss=nan kl=inf\nrl step=2 reward=0.6 loss=-nan kl=0.1\nrl step=3 reward=0.7 loss=0.2 kl=0.2\n' >"$TMP/nan.log"
expect_ok "nan values are gaps" "$SEEK" plot "$TMP/nan.log" -o "$TMP/nan.png"
expect_stdout "nan values are gaps: counted" ": 3 rl steps, 0 evaluations, 3 nan/inf values left as gaps$"
printf 'rl step=1 reward=0.5\r\nrl step=2 reward=0.6\r\n' >"$TMP/crlf.log"
expect_ok "CRLF" "$SEEK" plot "$TMP/crlf.log" -o "$TMP/crlf.png"
printf 'rl step=1 reward=0.5 accuracy=0.5\nrl step=2 reward=0.6 accur' >"$TMP/cut.log"
expect_ok "a last line cut short" "$SEEK" plot "$TMP/cut.log" -o "$TMP/cut.png"
expect_stdout "a last line cut short: dropped" ": 1 rl steps, 0 evaluations, an unfinished last line dropped$"
printf '# notes\n\nhello world\nrl step=1 reward=0.5 new_key=3 other.key=-1e-5\n' >"$TMP/new.log"
expect_ok "unknown words and new keys" "$SEEK" plot "$TMP/new.log" -o "$TMP/new.png"

# ---- bad logs: exit 1, one line naming the file and line, nothing written ----
: >"$TMP/empty.log"
expect_refused "empty file" 1 "empty.log: empty file" "$TMP/empty.log"
expect_refused "binary garbage (a PNG)" 1 "a.png:2: control byte 0x1a at column 1 (expected a text log)" "$TMP/a.png"
printf 'rl step=1 reward=0.5\0\n' >"$TMP/nul.log"
expect_refused "a NUL byte" 1 "nul.log:1: control byte 0x00" "$TMP/nul.log"
{ echo "rl step=1 reward=0.5"; head -c 1048576 /dev/zero | tr '\0' a; echo; } >"$TMP/long.log"
expect_refused "a 1 MB line" 1 "long.log:2: the line is longer than 65536 bytes" "$TMP/long.log"
printf 'rl step=1 reward=0.5\nrl step=2 reward=0.5\nrl step=3 reward=abc\n' >"$TMP/bad.log"
expect_refused "not a number" 1 "bad.log:3: 'reward=abc': expected a number" "$TMP/bad.log"
printf 'rl step=nan reward=0.5\n' >"$TMP/bad.log"
expect_refused "nan step" 1 "bad.log:1: 'step=nan': expected an integer in \[0, 10^15\]" "$TMP/bad.log"
printf 'rl step=1 reward=1e999\n' >"$TMP/bad.log"
expect_refused "overflow" 1 "bad.log:1: 'reward=1e999': out of range" "$TMP/bad.log"
printf 'eval pass1=0.5\n' >"$TMP/bad.log"
expect_refused "no step" 1 "bad.log:1: expected step=N on an 'eval' line" "$TMP/bad.log"
printf 'rl step=1 update=one reward=0.5\n' >"$TMP/bad.log"
expect_refused "bad update" 1 "bad.log:1: 'update=one': expected an integer" "$TMP/bad.log"
printf 'rl step=1 step=1 reward=0.5\n' >"$TMP/bad.log"
expect_refused "step twice" 1 "bad.log:1: key 'step' appears twice" "$TMP/bad.log"
printf 'rl step=1 reward=0.5 reward=0.6\n' >"$TMP/bad.log"
expect_refused "a key twice" 1 "bad.log:1: key 'reward' appears twice" "$TMP/bad.log"
printf 'rl step=1 reward 0.5\n' >"$TMP/bad.log"
expect_refused "not KEY=VALUE" 1 "bad.log:1: 'reward': expected KEY=VALUE" "$TMP/bad.log"
printf 'rl step=1 \033[31m=1\n' >"$TMP/bad.log"
expect_refused "escape byte" 1 "bad.log:1: control byte 0x1b at column 11" "$TMP/bad.log"
printf 'start init=x\ncheckpoint step=1 dir=x\n' >"$TMP/bad.log"
expect_refused "no record" 1 "bad.log: no 'rl' or 'eval' line" "$TMP/bad.log"
printf 'step=1 loss=5.5 main=5.5 lr=0.001 load.1=1.2/0.0\neval step=1 val_loss=5.1\n' >"$TMP/train.log"
expect_refused "a seek train log" 1 "nothing to plot: no log has any of reward" "$TMP/train.log"
expect_refused "missing file" 1 "none.log: cannot open: No such file" "$TMP/none.log"
mkdir -p "$TMP/emptyrun"
expect_refused "a folder without rl.log" 1 "emptyrun/rl.log: cannot open" "$TMP/emptyrun"
expect_refused "one bad log of two" 1 "bad.log: no 'rl' or 'eval' line" "$TMP/grpo-a" "$TMP/bad.log"
# a refused command leaves an existing picture as it was
cp "$TMP/a.png" "$TMP/keep.png"
expect_code "existing OUT kept" 1 "empty file" "$SEEK" plot "$TMP/empty.log" -o "$TMP/keep.png"
cmp -s "$TMP/a.png" "$TMP/keep.png" && ok || bad "existing OUT kept: $TMP/keep.png changed"

# ---- unwritable output: exit 1, nothing left behind ----
expect_code "no such folder" 1 "png: $TMP/nodir/x.png: cannot create: No such file or directory" \
  "$SEEK" plot "$TMP/grpo-a" -o "$TMP/nodir/x.png"
mkdir -p "$TMP/outdir"
expect_code "OUT is a folder" 1 "png: $TMP/outdir: is a folder, not a file" "$SEEK" plot "$TMP/grpo-a" -o "$TMP/outdir"
[ -d "$TMP/outdir" ] && ! ls "$TMP" | grep -q '^outdir.tmp' && ok || bad "OUT is a folder: $TMP/outdir.tmp left, or the folder gone"

# ---- usage: exit 2 ----
expect_code "no arguments" 2 "seek plot: no LOG given (usage: seek plot LOG" "$SEEK" plot
expect_refused "unknown option" 2 "unknown option '--color'" "$TMP/grpo-a" --color red
expect_code "no -o" 2 "no -o OUT.png given" "$SEEK" plot "$TMP/grpo-a"
expect_code "-o without a value" 2 "needs a value: -o" "$SEEK" plot "$TMP/grpo-a" -o
expect_refused "more labels than logs" 2 "more --label than logs: b" "$TMP/grpo-a" --label a --label b
expect_refused "empty label" 2 "--label needs a name" "$TMP/grpo-a" --label ""
expect_refused "nine logs" 2 "too many logs, at most 8" "${eight[@]}" "$TMP/grpo-b"
expect_code "-o is the log" 2 "would overwrite the log" "$SEEK" plot "$TMP/grpo-a" -o "$TMP/grpo-a/rl.log"
head -n 1 "$TMP/grpo-a/rl.log" | grep -q '^start ' && ok || bad "-o is the log: the log was touched"
expect_ok "--help" "$SEEK" plot --help
expect_stdout "--help: usage" "^usage: seek plot LOG"
finish
