#!/usr/bin/env bash
# cuda_run.sh: what `make test-cuda` runs, on a machine with a CUDA GPU:
#   1. test_cuda: every CUDA twin against its reference, op by op, and the model (tests/test_cuda.c);
#   2. cuda_verify.sh: `seek verify --backend cuda` over every fixture, stage by stage;
#   3. compute-sanitizer memcheck and racecheck on the op tests, memcheck on one verify run and
#      on one training step (verify --grad);
#   4. the kernel lab's programs (fast/lab/), when built: every version validated, then timed;
#   5. the ASan/UBSan build of test_cuda's op tests, when built (ASAN_OPTIONS=protect_shadow_gap=0:
#      the CUDA driver maps memory where ASan's shadow gap would be, google/sanitizers#629).
# Ends with "test-cuda: N passed, N failed"; a step that cannot run (no GPU, no
# compute-sanitizer) counts as failed, never as passed. LOGDIR=DIR keeps every step's output.
set -u
cd "$(dirname "$0")/.."
B=${B:-build}
SEEK=${SEEK:-./seek}
LOGDIR=${LOGDIR:-$(mktemp -d)}
mkdir -p "$LOGDIR"
pass=0
fail=0
step() { # name, command...
  local name=$1; shift
  local t0=$SECONDS
  timeout "${STEP_TIMEOUT:-3600}" "$@" >"$LOGDIR/$name.log" 2>&1
  local rc=$?
  if [ $rc -eq 0 ]; then pass=$((pass + 1)); r=pass; else fail=$((fail + 1)); r="FAIL (exit $rc)"; fi
  printf '%-34s %s  (%ds, log %s)\n' "$name" "$r" $((SECONDS - t0)) "$LOGDIR/$name.log"
  if [ $rc -ne 0 ]; then tail -n 25 "$LOGDIR/$name.log" | sed 's/^/    /'; fi
}

t=$B/rel/tests/test_cuda
step test_cuda "$t"
grep -E "^  (largest|.* cuda vs ref logits|.*greedy|edited)" "$LOGDIR/test_cuda.log" | sed 's/^/    /'
step cuda_verify env SEEK="$SEEK" VERIFY_LOG="$LOGDIR/verify_tables.txt" bash tests/cuda_verify.sh
if command -v compute-sanitizer >/dev/null 2>&1; then
  step memcheck_ops compute-sanitizer --tool memcheck --leak-check full --error-exitcode 3 "$t" --ops
  step racecheck_ops compute-sanitizer --tool racecheck --racecheck-report all --error-exitcode 3 "$t" --ops
  step memcheck_verify compute-sanitizer --tool memcheck --error-exitcode 3 "$SEEK" verify tests/fixtures/v3 --backend cuda --decode 2
  step memcheck_fast compute-sanitizer --tool memcheck --error-exitcode 3 "$SEEK" verify tests/fixtures/v3 --backend cuda-fast --decode 2
  step memcheck_grad compute-sanitizer --tool memcheck --error-exitcode 3 "$SEEK" verify tests/fixtures/v3 --grad --backend cuda
  for s in memcheck_ops racecheck_ops memcheck_verify memcheck_fast memcheck_grad; do grep -h "ERROR SUMMARY\|RACECHECK SUMMARY\|LEAK SUMMARY" "$LOGDIR/$s.log" | sed "s/^/    $s: /"; done
else
  echo "compute-sanitizer not found: the sanitizer steps did NOT run"
  fail=$((fail + 1))
fi
# the kernel lab (fast/lab/): every version of every kernel must validate against the reference
for lab in attention mla_decode moe_dispatch; do
  if [ -x "$B/lab/$lab" ]; then
    step "lab_$lab" "$B/lab/$lab"
    grep -E "^v[0-9]" "$LOGDIR/lab_$lab.log" | sed "s/^/    $lab /"
  fi
done
if [ -x "$B/dbg/tests/test_cuda" ]; then
  step asan_ops env ASAN_OPTIONS=protect_shadow_gap=0 "$B/dbg/tests/test_cuda" --ops
fi
echo "test-cuda: $pass passed, $fail failed"
[ $fail -eq 0 ]
