#!/usr/bin/env bash
# cli_reliability.sh: promises of docs/reliability.md from the outside, among them the faults that
# hostile testing found (each of those fails on the code before its fix):
#   - resume: a corrupt train_state (step 2^64-1, NaN or negative second moments) is refused with a
#     one-line error naming the tensor (a step past 2^63 once wrote before the loss curve); a
#     finished run says it has nothing to do; a checkpoint past --steps is refused.
#   - loss spikes: skipped and logged, and a resume across them skips the same steps (row 18).
#   - FP8: a tensor of the other 8-bit format than quantization_config.fmt is refused.
#   - writers: a failed write (the file-size limit, standing in for a full disk) leaves an existing
#     file whole (the REPL's `png` once deleted it); a FIFO or device is written in place, never
#     replaced by a regular file (`--logits` once replaced /dev/full when run as root); a folder is
#     refused; every write error is reported with a non-zero exit.
#   - the training log: after kill -9, the log holds the step line of every checkpointed step (it
#     was flushed only at the end).
set -u
cd "$(dirname "$0")/.." || exit 1
. tests/lib.sh
CORPUS=tests/fixtures/tokenizer/corpus.txt
V3=tests/fixtures/v3

# the byte offset of tensor NAME's data in safetensors FILE
tensor_offset() {
  local n begin
  n=$(head -c 8 "$1" | od -An -tu8 | tr -d ' ')
  begin=$(head -c $((8 + n)) "$1" | grep -ao "\"$2\":{[^}]*}" | sed -n 's/.*"data_offsets":\[\([0-9]*\),.*/\1/p')
  echo $((8 + n + begin))
}
# poke FILE OFFSET HEXBYTES: overwrite bytes in place
poke() { printf "$(echo "$3" | sed 's/\(..\)/\\x\1/g')" | dd of="$1" bs=1 seek="$2" conv=notrunc status=none; }

train2() { # OUT: a 2-step run with a checkpoint at each step
  "$SEEK" train --model tiny-llama --data "$CORPUS" --data-format bytes --out "$1" --steps 2 --batch 2 --seq-len 16 \
    --eval-interval 0 --checkpoint-interval 1 >/dev/null 2>&1
}

# ---- resume refuses what no save writes ----
if train2 "$TMP/run"; then ok; else bad "train 2 steps failed"; fi
S=$TMP/run/step-00000002/train_state.safetensors
cp "$S" "$TMP/state.orig"
poke "$S" "$(tensor_offset "$S" state)" ffffffffffffffff
expect_fail "resume: step 2^64-1" "tensor 'state': step 18446744073709551615 is impossible" \
  "$SEEK" train --model tiny-llama --data "$CORPUS" --data-format bytes --out "$TMP/run" --steps 4 --batch 2 --seq-len 16 --resume "$TMP/run"
cp "$TMP/state.orig" "$S"
poke "$S" $(($(tensor_offset "$S" adam.m2) + 40)) 0000c07f   # a NaN
expect_fail "resume: NaN in adam.m2" "tensor 'adam.m2' element 10 (of '.*') is nan" \
  "$SEEK" train --model tiny-llama --data "$CORPUS" --data-format bytes --out "$TMP/run" --steps 4 --batch 2 --seq-len 16 --resume "$TMP/run"
cp "$TMP/state.orig" "$S"
poke "$S" "$(tensor_offset "$S" adam.m2)" 000080bf            # -1.0
expect_fail "resume: negative adam.m2" "tensor 'adam.m2' element 0 (of '.*') is -1: a second moment is finite and >= 0" \
  "$SEEK" train --model tiny-llama --data "$CORPUS" --data-format bytes --out "$TMP/run" --steps 4 --batch 2 --seq-len 16 --resume "$TMP/run"
cp "$TMP/state.orig" "$S"
M=$TMP/run/step-00000002/model.safetensors
cp "$M" "$TMP/model.orig"
poke "$M" "$(tensor_offset "$M" model.norm.weight)" 0000807f    # +Inf
expect_fail "resume: Inf parameter" "tensor 'model.norm.weight' element 0 is inf" \
  "$SEEK" train --model tiny-llama --data "$CORPUS" --data-format bytes --out "$TMP/run" --steps 4 --batch 2 --seq-len 16 --resume "$TMP/run"
cp "$TMP/model.orig" "$M"
expect_fail "resume: finished run" "at step 2, the last of --steps 2: the run is finished, nothing to do" \
  "$SEEK" train --model tiny-llama --data "$CORPUS" --data-format bytes --out "$TMP/run" --steps 2 --batch 2 --seq-len 16 --resume "$TMP/run"
expect_fail "resume: past --steps" "at step 2, past --steps 1" \
  "$SEEK" train --model tiny-llama --data "$CORPUS" --data-format bytes --out "$TMP/run" --steps 1 --batch 2 --seq-len 16 --resume "$TMP/run"
# the refusals changed nothing: the run resumes and finishes
expect_ok "resume after the refusals" \
  "$SEEK" train --model tiny-llama --data "$CORPUS" --data-format bytes --out "$TMP/run" --steps 3 --batch 2 --seq-len 16 --eval-interval 0 --resume "$TMP/run"
[ "$(cat "$TMP/run/latest")" = step-00000003 ] && ok || bad "resume: latest is $(cat "$TMP/run/latest"), expected step 3"

# ---- loss spikes: skipped and logged; the detector's window is saved, so a resume skips the same steps ----
SP=(--model tiny-llama --data "$CORPUS" --data-format bytes --batch 2 --seq-len 16 --eval-interval 0 --checkpoint-interval 1
    --spike-z 0.1 --lr 0.03 --steps 40)
expect_ok "spikes: straight run" "$SEEK" train "${SP[@]}" --out "$TMP/sp1"
n=$(grep -c '^skip step=\(2[1-9]\|3[0-9]\|40\) reason=spike' "$TMP/sp1/train.log")
[ "$n" -ge 1 ] && ok || bad "spikes: no spike skipped after step 20 (the test needs one): $(grep -c '^skip' "$TMP/sp1/train.log") in all"
expect_ok "spikes: resume from step 20" "$SEEK" train "${SP[@]}" --out "$TMP/sp2" --resume "$TMP/sp1/step-00000020"
diff <(grep '^skip step=\(2[1-9]\|3[0-9]\|40\) ' "$TMP/sp1/train.log") <(grep '^skip' "$TMP/sp2/train.log") >/dev/null \
  && ok || bad "spikes: the resumed run skipped other steps: $(grep '^skip' "$TMP/sp2/train.log" | tr '\n' ' ')"
cmp -s "$TMP/sp1/step-00000040/model.safetensors" "$TMP/sp2/step-00000040/model.safetensors" && ok || bad "spikes: the resumed weights differ"

# ---- FP8: a tensor of the other 8-bit format than config.json's quantization_config.fmt ----
cp -r tests/fixtures/v3_fp8 "$TMP/e5m2"
hdr=$(head -c 8 "$TMP/e5m2/model.safetensors" | od -An -tu8 | tr -d ' ')
off=$(head -c $((8 + hdr)) "$TMP/e5m2/model.safetensors" | grep -abo 'F8_E4M3' | head -1 | cut -d: -f1)
name=$(head -c "$off" "$TMP/e5m2/model.safetensors" | grep -ao '"[a-z_.0-9]*":{"dtype":"$' | tail -1 | cut -d'"' -f2)
printf 'F8_E5M2' | dd of="$TMP/e5m2/model.safetensors" bs=1 seek="$off" conv=notrunc status=none
expect_fail "fp8: E5M2 tensor, e4m3 config" "tensor '$name' is F8_E5M2, but config.json's quantization_config.fmt is 'e4m3'" \
  "$SEEK" forward "$TMP/e5m2" --ids "5,6,7" --logits "$TMP/x.f32"
sed -i 's/"fmt": *"e4m3"/"fmt": "e3m4"/' "$TMP/e5m2/config.json"
expect_fail "fp8: unknown fmt" "quantization_config.fmt': 'e3m4', expected e4m3 or e5m2" "$SEEK" info "$TMP/e5m2"

# ---- writers: a failed write leaves the old file; devices and FIFOs are written in place ----
# forward --logits over an existing file, with a file-size limit of 1 KiB (the logits are 2.3 KiB)
printf 'keep me' >"$TMP/logits.f32"
( trap '' XFSZ; ulimit -f 1; "$SEEK" forward $V3 --ids "5,6,7" --logits "$TMP/logits.f32" ) >/dev/null 2>"$TMP/err"
rc=$?
[ $rc -ne 0 ] && [ $rc -lt 128 ] && [ "$(wc -l <"$TMP/err")" = 1 ] && grep -q "write failed: File too large (the file was left as it was)" "$TMP/err" \
  && ok || bad "forward, write fails: exit $rc, $(head -c 300 "$TMP/err")"
[ "$(cat "$TMP/logits.f32")" = "keep me" ] && ok || bad "forward, write fails: the existing file was changed"
ls "$TMP" | grep -q '\.tmp' && bad "forward, write fails: a temporary was left: $(ls "$TMP")" || ok
# a FIFO stays a FIFO and its reader gets the whole file
mkfifo "$TMP/fifo"
timeout 30 cat "$TMP/fifo" >"$TMP/fromfifo" &   # (a timeout: a writer that replaces the FIFO never opens it)
reader=$!
expect_ok "forward into a FIFO" "$SEEK" forward $V3 --ids "5,6,7" --logits "$TMP/fifo"
wait $reader
[ -p "$TMP/fifo" ] && ok || bad "forward: the FIFO was replaced"
[ "$(stat -c %s "$TMP/fromfifo")" = $((3 * 256 * 4)) ] && ok || bad "forward: the FIFO's reader got $(stat -c %s "$TMP/fromfifo") bytes"
expect_fail "forward into a folder" "is a folder, not a file" "$SEEK" forward $V3 --ids "5,6,7" --logits "$TMP"
# /dev/full: only once the FIFO showed that devices are written in place (as root, a writer that
# renames would replace the device node)
if [ -p "$TMP/fifo" ] && [ -c /dev/full ]; then
  expect_fail "forward into /dev/full" "/dev/full: write failed: No space left on device" "$SEEK" forward $V3 --ids "5,6,7" --logits /dev/full
  [ -c /dev/full ] && ok || bad "/dev/full is no longer a device"
fi

# the REPL's png: a failed write keeps the existing picture; a FIFO stays a FIFO
printf 'ids 5 17 42 99\nroute 1\npng %s/pic.png\n' "$TMP" >"$TMP/png.cmd"
expect_ok "repl png" "$SEEK" repl "$V3" --script "$TMP/png.cmd"
cp "$TMP/pic.png" "$TMP/pic.orig"
[ "$(stat -c %s "$TMP/pic.png")" -gt 1024 ] && ok || bad "repl png: the picture is too small for the size-limit test"
printf 'ids 5 17 42 99\nattn 0\npng %s/pic.png\n' "$TMP" >"$TMP/png2.cmd"
# (stdout to /dev/null: the limit applies to every file the process writes)
( trap '' XFSZ; ulimit -f 1; "$SEEK" repl "$V3" --script "$TMP/png2.cmd" ) >/dev/null 2>"$TMP/err"
rc=$?
[ $rc = 1 ] && grep -q "png: .*pic.png: write failed: File too large (the file was left as it was)" "$TMP/err" && ok || bad "repl png, write fails: exit $rc, $(head -c 300 "$TMP/err")"
cmp -s "$TMP/pic.png" "$TMP/pic.orig" && ok || bad "repl png, write fails: the existing picture was changed or deleted"
timeout 30 cat "$TMP/fifo" >"$TMP/pngfifo" &
reader=$!
printf 'ids 5 17 42 99\nroute 1\npng %s/fifo\n' "$TMP" >"$TMP/png3.cmd"
expect_ok "repl png into a FIFO" "$SEEK" repl "$V3" --script "$TMP/png3.cmd"
wait $reader
[ -p "$TMP/fifo" ] && cmp -s "$TMP/pngfifo" "$TMP/pic.orig" && ok || bad "repl png into a FIFO: replaced, or other bytes"

# ---- the training log after kill -9: every checkpointed step's line is there ----
"$SEEK" train --model tiny-llama --data "$CORPUS" --data-format bytes --out "$TMP/k" --steps 100000 --batch 2 --seq-len 16 \
  --eval-interval 0 --checkpoint-interval 1 >/dev/null 2>&1 &
pid=$!
for _ in $(seq 600); do   # up to 60 s for 5 checkpoints
  s=$(sed -n 's/^step-0*\([0-9][0-9]*\)$/\1/p' "$TMP/k/latest" 2>/dev/null)
  [ -n "$s" ] && [ "$s" -ge 5 ] && break
  sleep 0.1
done
kill -9 $pid 2>/dev/null
wait $pid 2>/dev/null
s=$(sed -n 's/^step-0*\([0-9][0-9]*\)$/\1/p' "$TMP/k/latest")
if [ -z "$s" ] || [ "$s" -lt 5 ]; then bad "kill -9: the run did not reach 5 checkpoints"; else
  miss=0
  for i in $(seq 1 "$s"); do grep -q "^step=$i " "$TMP/k/train.log" || miss=$((miss + 1)); done
  [ $miss = 0 ] && ok || bad "kill -9: latest is step $s, the log lacks $miss of its steps ($(grep -c '^step=' "$TMP/k/train.log") step lines)"
fi
finish
