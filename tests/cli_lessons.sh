#!/usr/bin/env bash
# cli_lessons.sh: `seek lesson` (viz/cmd_lesson.c, viz/lesson.h; docs/contributing.md, "Adding a
# lesson"): it lists the lessons, every lesson passes `seek lesson NN --check` (its cells run in one
# REPL, each ```expect line a whole line of its cell's output), and broken lessons fail with one
# line naming the file and line: an unclosed block, an expect block before any cell, a NUL byte,
# no cell, a cell that fails in the REPL, an expected line the cell does not print.
set -u
cd "$(dirname "$0")/.."
. tests/lib.sh

expect_ok "lesson list" "$SEEK" lesson
grep -q '^13  lessons/13-grpo.md .*GRPO.*(5 cells)$' "$TMP/out" && ok || bad "lesson list: $(head -c 300 "$TMP/out")"
# the course through the architecture, 01-06, each listed with its title and cell count
for nn in 01 02 03 04 05 06; do
  grep -q "^$nn  lessons/$nn-[a-z]*\.md  *$nn — .* ([4-8] cells)$" "$TMP/out" && ok || bad "lesson list: $nn missing: $(head -c 600 "$TMP/out")"
done
# Lessons write their pictures to out/ (png out/NN-name.png) beside lessons/ and tiny-models/;
# they run in a folder of their own that links to those, so --check writes nothing into the
# repository and the release and ASan halves never write the same file.
W=$TMP/work
mkdir -p "$W/out"
for d in lessons tiny-models tests; do ln -s "$PWD/$d" "$W/$d"; done
case $SEEK in /*) SEEK_ABS=$SEEK ;; *) SEEK_ABS=$PWD/$SEEK ;; esac
n=0
for L in lessons/[0-9][0-9]-*.md; do
  [ -e "$L" ] || continue
  n=$((n + 1))
  nn=$(basename "$L" | cut -c1-2)
  expect_ok "lesson $nn --check" sh -c 'cd "$1" && exec "$2" lesson "$3" --check' sh "$W" "$SEEK_ABS" "$nn"
  grep -q "^$L: .*: [0-9]* cells ran, [0-9]* expected lines shown$" "$TMP/out" && ok || bad "lesson $nn: $(head -c 300 "$TMP/out")"
  # every picture a lesson names was written (and is a PNG)
  for f in $(sed -n 's/^png \(out\/[^ ]*\.png\)$/\1/p' "$L"); do
    [ "$(head -c 4 "$W/$f" 2>/dev/null | od -An -c | tr -d ' ')" = '211PNG' ] && ok || bad "lesson $nn: $f was not written"
  done
done
[ $n -ge 1 ] && ok || bad "no lesson found in lessons/"
[ ! -e out ] || [ -z "$(find out -newer "$W" -name '*.png' 2>/dev/null)" ] && ok || bad "a lesson --check wrote pictures into the repository's out/"

# broken lessons: exit 1, one line with the file and line
B=$TMP/broken
# expect_report NAME PATTERN CMD...: exit 1, the first stderr line matches (a failed expectation
# then shows what the cell printed, one "  | " line each)
expect_report() {
  local name=$1 pat=$2; shift 2
  "$@" >"$TMP/out" 2>"$TMP/err"
  local rc=$?
  [ $rc -eq 1 ] && head -n 1 "$TMP/err" | grep -q -- "$pat" && ! tail -n +2 "$TMP/err" | grep -vq '^  ' \
    && ok || bad "$name: exit $rc, stderr '$(head -c 300 "$TMP/err")'"
}
mkdir -p "$B"
printf '# x\n```seek\nwhere\n' >"$B/unclosed.md"
expect_code "unclosed cell" 1 "unclosed.md:2: the \`\`\`seek opened here is not closed" "$SEEK" lesson "$B/unclosed.md" --check
printf '# x\n\n```expect\nloaded\n```\n' >"$B/expect_first.md"
expect_code "expect before a cell" 1 "expect_first.md:3: an \`\`\`expect block before any \`\`\`seek cell" "$SEEK" lesson "$B/expect_first.md" --check
printf '# x\n```seek\nwh\0ere\n```\n' >"$B/nul.md"
expect_code "NUL byte" 1 "nul.md:3: a NUL byte" "$SEEK" lesson "$B/nul.md" --check
printf '# x\nprose only\n```c\nint x;\n```\n' >"$B/nocell.md"
expect_code "no cell" 1 "nocell.md: no \`\`\`seek cell" "$SEEK" lesson "$B/nocell.md" --check
printf '# x\n```seek\nload tiny-models/seek-r1-base\n```\n\n```seek\nattn 99\n```\n' >"$B/failing.md"
expect_code "a failing cell" 1 "failing.md:6: cell 2 failed: error: attn" "$SEEK" lesson "$B/failing.md" --check
printf '# x\n```seek\nload tiny-models/seek-r1-base\n```\n```expect\nthis line is never printed\n```\n' >"$B/missing.md"
expect_report "an expected line not shown" "missing.md:5: cell 1: expected line not shown: this line is never printed" \
  "$SEEK" lesson "$B/missing.md" --check
grep -q '^  | loaded tiny-models/seek-r1-base: deepseek_v3' "$TMP/err" && ok || bad "a failing expect does not show what the cell printed"
# the expected line must be a whole line of its own cell's output, not of another cell's
printf '# x\n```seek\nload tiny-models/seek-r1-base\n```\n```seek\nwhere\n```\n```expect\nloaded tiny-models/seek-r1-base: deepseek_v3, 4 layers, hidden 128, vocab 320, MLA attention, 8 routed experts top-2; tokenizer 299 ids\n```\n' >"$B/othercell.md"
expect_report "an expected line from another cell" "othercell.md:8: cell 2: expected line not shown" "$SEEK" lesson "$B/othercell.md" --check
printf '# x\r\n```seek\r\nload tiny-models/seek-r1-base\r\n```\r\n```expect\r\nloaded tiny-models/seek-r1-base: deepseek_v3, 4 layers, hidden 128, vocab 320, MLA attention, 8 routed experts top-2; tokenizer 299 ids\r\n```\r\n' >"$B/crlf.md"
expect_ok "a CRLF lesson" "$SEEK" lesson "$B/crlf.md" --check
# usage
expect_code "no such lesson" 1 "no lesson 99 in lessons/" "$SEEK" lesson 99 --check
expect_code "unreadable file" 1 "cannot open" "$SEEK" lesson "$B/none.md" --check
expect_code "unknown flag" 2 "unknown option --html" "$SEEK" lesson 13 --html x.html
expect_code "stepping is not built yet" 2 "not built yet" "$SEEK" lesson 13
expect_code "--check alone" 2 "--check needs a lesson" "$SEEK" lesson --check
finish
