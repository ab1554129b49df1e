#!/usr/bin/env bash
# Runs every test binary (tests/test_*.c, built by make) and every command-line test script
# (tests/cli_*.sh) against the release build and against the ASan/UBSan build (the two halves side
# by side, one core each; see run_mode below), and ends with the plain summary line
# "tests: N passed, N failed".
# Each cmocka binary reports "[  PASSED  ] N test(s)." / "[  FAILED  ] N test(s)"; each script
# reports "RESULT: passed=N failed=M" through tests/lib.sh. A binary that crashes or exits
# non-zero without a summary counts as one failure. Each line also gives the suite's seconds, so
# the 10-minute budget of `make test` can be watched.
set -u
cd "$(dirname "$0")/.."
total_pass=0
total_fail=0
failed_names=()
skipped_names=()

run_one() { # label, command...
  local label=$1; shift
  local out rc p f t0=$SECONDS
  out=$("$@" 2>&1); rc=$?
  local secs=$((SECONDS - t0))
  # exit 77 with a "SKIP <reason>" line: could not run here (test_cuda without a GPU); neither
  # passed nor failed, and said so on its own line
  if [ $rc -eq 77 ] && printf '%s\n' "$out" | grep -q '^SKIP '; then
    skipped_names+=("$label")
    printf '%-44s SKIPPED, not counted as passed: %s\n' "$label" "$(printf '%s\n' "$out" | grep -m1 '^SKIP ' | cut -c6-)"
    return
  fi
  p=$(printf '%s\n' "$out" | sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p; s/^RESULT: passed=\([0-9]*\) failed=[0-9]*$/\1/p' | tail -n 1)
  f=$(printf '%s\n' "$out" | sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p; s/^RESULT: passed=[0-9]* failed=\([0-9]*\)$/\1/p' | tail -n 1)
  p=${p:-0}; f=${f:-0}
  if [ $rc -ne 0 ] && [ "$f" = 0 ]; then f=1; fi
  total_pass=$((total_pass + p)); total_fail=$((total_fail + f))
  if [ "$f" != 0 ]; then
    failed_names+=("$label")
    printf '%s\n' "$out" | grep -v '^\[ \(RUN\|       OK\) ' | sed "s|^|  $label: |"
  fi
  printf '%-44s %4d passed %4d failed %5ds\n' "$label" "$p" "$f" "$secs"
}

# The release and the sanitizer halves run side by side, one core each (OMP_NUM_THREADS=1, so
# neither half's OpenMP threads wait on a core the other holds); the release half's lines are
# printed as they come, the sanitizer half's when it is done. SEEK_TEST_SERIAL=1 runs them one after the other instead.
run_mode() { # rel|dbg: every test binary and script of that build
  local mode=$1 seek=./seek
  [ "$mode" = dbg ] && seek=./seek-debug
  echo "== $mode build ($seek)"
  for t in ${B:-build}/$mode/tests/test_*; do
    [ -x "$t" ] || continue
    case "$t" in *.o|*.d) continue ;; esac
    run_one "$mode/$(basename "$t")" "$t"
  done
  for s in tests/cli_*.sh; do
    [ -f "$s" ] || continue
    run_one "$mode/$(basename "$s" .sh)" env SEEK="$seek" bash "$s"
  done
  # the counts, for the parent to add up
  echo "@@counts $total_pass $total_fail"
  echo "@@failed ${failed_names[*]}"
  echo "@@skipped ${skipped_names[*]}"
}

half=$(mktemp -d)
if [ "${SEEK_TEST_SERIAL:-0}" = 1 ]; then
  (run_mode rel) >"$half/rel"
  (run_mode dbg) >"$half/dbg"
else
  export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
  (run_mode dbg) >"$half/dbg" &
  dbg_pid=$!
  (run_mode rel) | tee "$half/rel" | grep --line-buffered -v '^@@'   # the release half's lines as they come
  wait $dbg_pid
fi
for mode in rel dbg; do
  [ "${SEEK_TEST_SERIAL:-0}" = 1 ] || [ $mode = dbg ] && grep -v '^@@' "$half/$mode"
  read -r _ p f < <(grep '^@@counts ' "$half/$mode")
  total_pass=$((total_pass + ${p:-0})); total_fail=$((total_fail + ${f:-1}))
  for n in $(sed -n 's/^@@failed //p' "$half/$mode"); do failed_names+=("$n"); done
  for n in $(sed -n 's/^@@skipped //p' "$half/$mode"); do skipped_names+=("$n"); done
done
rm -rf "$half"

if [ ${#failed_names[@]} -gt 0 ]; then
  echo "failing: ${failed_names[*]}"
fi
if [ ${#skipped_names[@]} -gt 0 ]; then
  echo "skipped (not run, not passed): ${skipped_names[*]}; the GPU tests run with 'make test-cuda' on a machine with a CUDA GPU"
fi
echo "tests: $total_pass passed, $total_fail failed"
[ $total_fail -eq 0 ]
