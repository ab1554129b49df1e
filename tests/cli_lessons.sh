#!/usr/bin/env bash
# cli_lessons.sh: every lesson (lessons/NN-topic.md) runs and shows what its prose says, until a
# lesson runner exists (docs/contributing.md, "Adding a lesson"): its ```seek cells, in order,
# become one REPL script (`seek repl --script`, one thread, so the numbers are the cpu backend's
# single-thread ones); every line of its ```expect blocks must appear in the output as a whole
# line; the REPL must report no error. A lesson without a cell or with an unclosed block fails.
set -u
cd "$(dirname "$0")/.."
. tests/lib.sh
n=0
for L in lessons/[0-9][0-9]-*.md; do
  [ -e "$L" ] || continue
  n=$((n + 1))
  name=$(basename "$L" .md)
  # the cells and the expected lines; an unclosed fence is an error
  if ! awk -v cmd="$TMP/$name.cmd" -v want="$TMP/$name.exp" '
      /^```seek$/ && !f { f = 1; k = "c"; next }
      /^```expect$/ && !f { f = 1; k = "e"; next }
      /^```/ && f && $0 == "```" { f = 0; next }
      f && k == "c" { print > cmd }
      f && k == "e" { print > want }
      END { exit f }' "$L"; then
    bad "$name: a \`\`\`seek or \`\`\`expect block is not closed"
    continue
  fi
  [ -s "$TMP/$name.cmd" ] && ok || { bad "$name: no \`\`\`seek cell"; continue; }
  OMP_NUM_THREADS=1 "$SEEK" repl --script "$TMP/$name.cmd" >"$TMP/$name.out" 2>"$TMP/$name.err"
  rc=$?
  [ $rc -eq 0 ] && ! grep -q '^error' "$TMP/$name.err" && ok || bad "$name: the REPL failed (exit $rc): $(head -c 300 "$TMP/$name.err")"
  missing=0
  while IFS= read -r want; do
    grep -qxF -- "$want" "$TMP/$name.out" || { missing=$((missing + 1)); [ $missing -le 3 ] && echo "  $name: expected line not shown: $want"; }
  done < <(cat "$TMP/$name.exp" 2>/dev/null)
  [ -s "$TMP/$name.exp" ] && [ $missing -eq 0 ] && ok || bad "$name: $missing expected line(s) not in the output (or no \`\`\`expect block)"
done
[ $n -ge 1 ] && ok || bad "no lesson found in lessons/"
# the checker itself fails on a broken lesson: an unclosed cell, an expected line that is not shown
# (run on a copy holding only the broken lesson; the copy does not test itself again)
if [ -n "${LESSONS_INNER:-}" ]; then finish; exit; fi
mkdir -p "$TMP/broken/lessons"
printf '# x\n```seek\nwhere\n' > "$TMP/broken/lessons/01-x.md"
out=$(cd "$TMP/broken" && mkdir -p tests && cp "$OLDPWD/tests/lib.sh" tests/ && cp "$OLDPWD/tests/cli_lessons.sh" tests/ && LESSONS_INNER=1 SEEK="$SEEK" bash tests/cli_lessons.sh 2>&1 | tail -n 1)
[ "${out#RESULT: passed=* failed=}" != 0 ] && ok || bad "an unclosed cell was not reported: $out"
printf '# x\n```seek\nwhere\n```\n```expect\nthis line is never printed\n```\n' > "$TMP/broken/lessons/01-x.md"
out=$(cd "$TMP/broken" && LESSONS_INNER=1 SEEK="$SEEK" bash tests/cli_lessons.sh 2>&1 | tail -n 1)
[ "${out#RESULT: passed=* failed=}" != 0 ] && ok || bad "a missing expected line was not reported: $out"
finish
