# tests/lib.sh: a tiny harness for command-line tests, sourced by tests/cli_*.sh.
# expect_ok NAME CMD...            the command exits 0
# expect_fail NAME PATTERN CMD...  the command exits non-zero (not by a signal or a sanitizer
#                                  report) and prints exactly one stderr line matching PATTERN
# finish                            prints "RESULT: passed=N failed=M" and sets the exit status
SEEK=${SEEK:-./seek}
_pass=0
_fail=0
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

ok()   { _pass=$((_pass + 1)); }
bad()  { _fail=$((_fail + 1)); echo "FAIL: $*"; }

expect_ok() {
  local name=$1; shift
  if "$@" >"$TMP/out" 2>"$TMP/err"; then ok; else bad "$name: exit $? ($(head -c 300 "$TMP/err"))"; fi
}

expect_fail() {
  local name=$1 pat=$2; shift 2
  "$@" >"$TMP/out" 2>"$TMP/err"
  local rc=$?
  if [ $rc -eq 0 ]; then bad "$name: expected failure, got exit 0"; return; fi
  if [ $rc -ge 128 ]; then bad "$name: killed by signal $((rc - 128))"; return; fi
  if grep -q 'Sanitizer\|runtime error' "$TMP/err"; then bad "$name: sanitizer report: $(head -c 400 "$TMP/err")"; return; fi
  local lines; lines=$(wc -l <"$TMP/err")
  if [ "$lines" -ne 1 ]; then bad "$name: expected one error line, got $lines: $(head -c 300 "$TMP/err")"; return; fi
  if ! grep -q -- "$pat" "$TMP/err"; then bad "$name: error '$(cat "$TMP/err")' does not match '$pat'"; return; fi
  ok
}

# expect_code NAME CODE PATTERN CMD...: exit status CODE and one stderr line matching PATTERN
expect_code() {
  local name=$1 code=$2 pat=$3; shift 3
  "$@" >"$TMP/out" 2>"$TMP/err"
  local rc=$?
  if [ $rc -ne "$code" ]; then bad "$name: exit $rc, expected $code ($(head -c 300 "$TMP/err"))"; return; fi
  expect_fail "$name" "$pat" "$@"
}

finish() {
  echo "RESULT: passed=$_pass failed=$_fail"
  [ $_fail -eq 0 ]
}
