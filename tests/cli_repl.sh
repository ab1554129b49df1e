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

# command-line errors
expect_fail "no such model" "seek repl: /nonexistent/config.json" "$SEEK" repl /nonexistent
expect_fail "two dirs" "unexpected argument" "$SEEK" repl "$V3" "$V3"
expect_fail "bad option" "unknown option" "$SEEK" repl --bogus
expect_fail "no script" "cannot open" "$SEEK" repl --script /nonexistent.cmd

finish
