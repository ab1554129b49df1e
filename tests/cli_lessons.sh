#!/usr/bin/env bash
# cli_lessons.sh: `seek lesson` (viz/cmd_lesson.c, viz/lesson.h; docs/contributing.md, "Adding a
# lesson"): it lists the lessons, every lesson passes `seek lesson NN --check` (its cells run in one
# REPL, each ```expect line a whole line of its cell's output), and broken lessons fail with one
# line naming the file and line: an unclosed block, an expect block before any cell, a NUL byte,
# no cell, a cell that fails in the REPL, an expected line the cell does not print.
# Stepping (viz/lesson_step.c), with a here-doc as the learner: Enter, back, quit, EOF, resume
# (the REPL put back), junk input, corrupt progress files, no state folder. --html
# (viz/lesson_html.c): the page's blocks, no script or outside reference, the embedded picture
# byte for byte, odd and hostile picture names, output paths that cannot be written.
set -u
cd "$(dirname "$0")/.."
. tests/lib.sh
export TMPDIR=$TMP   # the lessons' picture folders, checked for removal at the end

expect_ok "lesson list" "$SEEK" lesson
grep -q '^13  lessons/13-grpo.md .*GRPO.*(5 cells)$' "$TMP/out" && ok || bad "lesson list: $(head -c 300 "$TMP/out")"
# the course through the architecture, 01-12, each listed with its title and cell count
for nn in 01 02 03 04 05 06 07 08 09 10 11 12; do
  grep -q "^$nn  lessons/$nn-[a-z0-9-]*\.md  *$nn — .* ([4-8] cells)$" "$TMP/out" && ok || bad "lesson list: $nn missing: $(head -c 600 "$TMP/out")"
done
# Every lesson is checked once per build: rendered as a page where this seek has --html (the
# render runs the cells and checks every expect line exactly as --check does, and writes no page
# when one fails), which also proves each picture a lesson draws reaches its page (one embedded
# PNG per png command); with --check where it has not (built without libcmark).
printf '# probe\n\n```seek\nhelp\n```\n' >"$TMP/probe.md"
if "$SEEK" lesson "$TMP/probe.md" --html "$TMP/probe.html" >/dev/null 2>&1; then HAVE_HTML=1; else HAVE_HTML=0; fi
[ $HAVE_HTML = 1 ] || echo "SKIP: lesson pages not checked (this seek has no --html: built without libcmark); --check instead"
n=0
for L in lessons/[0-9][0-9]-*.md; do
  [ -e "$L" ] || continue
  n=$((n + 1))
  nn=$(basename "$L" | cut -c1-2)
  if [ $HAVE_HTML = 1 ]; then
    want=$(grep -c '^png [^ ]*\.png$' "$L")
    expect_ok "lesson $nn --html" "$SEEK" lesson "$nn" --html "$TMP/$nn.html"
    grep -q "^wrote $TMP/$nn.html ([0-9]* KiB): $nn — .*, [0-9]* cells, $want pictures\?$" "$TMP/out" && ok || bad "lesson $nn: $(head -c 300 "$TMP/out")"
    got=$(grep -o 'src="data:image/png;base64,' "$TMP/$nn.html" | wc -l)
    [ "$want" -ge 1 ] && [ "$got" = "$want" ] && ok || bad "lesson $nn: $got pictures on its page, $want png commands"
  else
    expect_ok "lesson $nn --check" "$SEEK" lesson "$nn" --check
    grep -q "^$L: .*: [0-9]* cells ran, [0-9]* expected lines shown$" "$TMP/out" && ok || bad "lesson $nn: $(head -c 300 "$TMP/out")"
  fi
done
[ $n -ge 13 ] && ok || bad "expected lessons 01-13 in lessons/, found $n"
# --check itself, on one lesson (the page path above runs the same cells and checks)
expect_ok "lesson 08 --check" "$SEEK" lesson 08 --check
grep -q "^lessons/08-mtp.md: .*: [0-9]* cells ran, [0-9]* expected lines shown$" "$TMP/out" && ok || bad "lesson 08 --check: $(head -c 300 "$TMP/out")"

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
expect_code "unknown flag" 2 "unknown option '--htm' (did you mean '--html'?)" "$SEEK" lesson 13 --htm x.html
expect_code "--check alone" 2 "--check needs a lesson" "$SEEK" lesson --check
expect_code "--html alone" 2 "--html needs a lesson" "$SEEK" lesson --html "$TMP/x.html"
expect_code "--html without a file" 2 "--html needs an output file" "$SEEK" lesson 13 --html
expect_code "--check and --html" 2 "one of --check, --html and --restart" "$SEEK" lesson 13 --check --html "$TMP/x.html"
expect_code "stepping: no such lesson" 1 "no lesson 99 in lessons/" "$SEEK" lesson 99 </dev/null
expect_code "stepping: an unclosed cell" 1 "unclosed.md:2: the \`\`\`seek opened here is not closed" "$SEEK" lesson "$B/unclosed.md" </dev/null

# ---- stepping (viz/lesson_step.c): a here-doc is the learner; progress goes to $XDG_STATE_HOME ----
# step.md: cell 3 shows the sequence cell 2 ran, so it tells a REPL put back by replaying the
# cells before it from a fresh one; cell 2 also writes a picture
S=$TMP/state
export XDG_STATE_HOME=$S
printf '# Stepping\n\nThe first prose.\n\n```seek\nload tiny-models/seek-r1-base\n```\n\nThe second prose.\n\n```seek\nids 5 6 7\nattn 1\npng attn.png\n```\n```expect\nran 3 tokens through 4 layers: 92 stages captured (101.1 KiB)\n```\n\nThe third prose.\n\n```seek\nwhere\n```\n\nThe last prose.\n' >"$B/step.md"
P=$S/seek/lessons/step.progress
# step NAME INPUT: seek lesson step.md with INPUT on stdin; exit 0, no stderr but what the test expects
step() {
  local name=$1 input=$2; shift 2
  printf '%b' "$input" | "$SEEK" lesson "$B/step.md" "$@" >"$TMP/out" 2>"$TMP/err"
  local rc=$?
  [ $rc -eq 0 ] && ! grep -q 'Sanitizer\|runtime error' "$TMP/err" && ok || bad "$name: exit $rc, $(head -c 400 "$TMP/err")"
}
step "step: Enter three times runs the lesson" '\n\n\n'
grep -q '^-- cell 1 of 3 (.*step.md:5) --$' "$TMP/out" && grep -q '^    load tiny-models/seek-r1-base$' "$TMP/out" \
  && grep -q '^seek> load tiny-models/seek-r1-base$' "$TMP/out" && grep -q '^loaded tiny-models/seek-r1-base' "$TMP/out" \
  && grep -q '^sequence 3 tokens' "$TMP/out" && grep -q '^End of the lesson: all 3 cells ran' "$TMP/out" \
  && ok || bad "step: the cells did not run in order: $(head -c 600 "$TMP/out")"
# the prose in order, each before its cell, the last after the last cell
order=$(grep -n '^The first prose\.$\|^-- cell 1 \|^The second prose\.$\|^-- cell 2 \|^The third prose\.$\|^-- cell 3 \|^The last prose\.$' "$TMP/out" | cut -d: -f2- | cut -c1-12 | tr '\n' '|')
[ "$order" = "The first pr|-- cell 1 of|The second p|-- cell 2 of|The third pr|-- cell 3 of|The last pro|" ] && ok || bad "step: prose and cells out of order: $order"
grep -q "^the picture: $S/seek/lessons/step/attn.png$" "$TMP/out" && [ "$(head -c 4 "$S/seek/lessons/step/attn.png" | od -An -c | tr -d ' ')" = '211PNG' ] \
  && ok || bad "step: the picture's path not said or not a PNG: $(grep picture "$TMP/out")"
[ "$(cat "$P")" = "$(printf 'seek lesson progress 1\nfile step.md\nnext 4')" ] && ok || bad "step: progress after the last cell: $(cat "$P")"
ls "$S/seek/lessons/" | grep -q tmp && bad "step: a temporary file left in the state folder" || ok
# a finished lesson starts again at the top
step "step: a finished lesson" 'quit\n'
grep -q '^You finished this lesson before: starting at the beginning\.$' "$TMP/out" && grep -q '^Left at cell 1 of 3' "$TMP/out" \
  && ok || bad "step: finished lesson: $(head -c 300 "$TMP/out")"
# quit at cell 3, then resume: cell 3 shows the sequence cell 2 ran (the REPL was put back)
step "step: quit" '\n\nquit\n'
grep -q "^Left at cell 3 of 3: seek lesson $B/step.md resumes there\.$" "$TMP/out" && grep -q '^next 3$' "$P" \
  && ! grep -q '^sequence 3 tokens' "$TMP/out" && ok || bad "step: quit at cell 3: $(tail -n 3 "$TMP/out"); $(cat "$P")"
step "step: resume" '\n'
grep -q '^Resuming at cell 3 of 3 (--restart starts at the top): cells 1-2 ran again quietly' "$TMP/out" \
  && ! grep -q '^-- cell [12] ' "$TMP/out" && grep -q '^sequence 3 tokens' "$TMP/out" && ! grep -q '^seek> load' "$TMP/out" \
  && ok || bad "step: resume did not put the REPL back: $(head -c 600 "$TMP/out")"
# back: from cell 3 to cell 2, whose cell runs again on the REPL as it was after cell 1
step "step: back" '\n\nback\n\n\n' --restart
[ "$(grep -c '^-- cell 2 of 3 ' "$TMP/out")" = 2 ] && grep -q '^Back to cell 2: cell 1 ran again quietly' "$TMP/out" \
  && [ "$(grep -c '^ran 3 tokens through' "$TMP/out")" = 2 ] && grep -q '^End of the lesson' "$TMP/out" \
  && ok || bad "step: back: $(grep -n 'cell\|Back' "$TMP/out" | head -c 600)"
step "step: back at the first cell" 'back\nquit\n' --restart
grep -q '^This is the first cell\.$' "$TMP/out" && ok || bad "step: back at cell 1: $(head -c 300 "$TMP/out")"
# EOF leaves as quit does
step "step: EOF" '\n' --restart
grep -q '^Left at cell 2 of 3' "$TMP/out" && grep -q '^next 2$' "$P" && ok || bad "step: EOF: $(tail -n 2 "$TMP/out"); $(cat "$P")"
# other lines are REPL commands on the lesson's model; junk gets the REPL's one-line errors, escaped
step "step: junk input" '\nfrobnicate\n\033[31mred\000nul\nwhere\nback 3 junk\n\n\nquit\n' --restart
grep -q "^error: unknown command 'frobnicate'" "$TMP/err" && grep -q '^model tiny-models/seek-r1-base' "$TMP/out" \
  && ! grep -q "$(printf '\033')" "$TMP/out" "$TMP/err" && grep -q '^End of the lesson' "$TMP/out" \
  && ok || bad "step: junk input: $(head -c 400 "$TMP/err")"
head -c 70000 /dev/zero | tr '\0' 'x' >"$TMP/long"; printf '\nquit\n' >>"$TMP/long"
"$SEEK" lesson "$B/step.md" --restart <"$TMP/long" >"$TMP/out" 2>"$TMP/err"
[ $? -eq 0 ] && grep -q 'line too long' "$TMP/err" && grep -q '^Left at cell 1 of 3' "$TMP/out" && ok || bad "step: a 70000-byte line: $(head -c 300 "$TMP/err")"
head -c 20000 /dev/urandom >"$TMP/noise"
"$SEEK" lesson "$B/step.md" --restart <"$TMP/noise" >"$TMP/out" 2>"$TMP/err"
rc=$?; [ $rc -eq 0 ] && ! grep -q 'Sanitizer\|runtime error' "$TMP/err" && ! grep -q "$(printf '\033')" "$TMP/out" "$TMP/err" \
  && ok || bad "step: random bytes on stdin: exit $rc $(head -c 300 "$TMP/err")"
# a progress file that does not read exactly: one warning line, the lesson starts at the top
corrupt() {
  local name=$1 pat=$2
  printf '\n' | "$SEEK" lesson "$B/step.md" >"$TMP/out" 2>"$TMP/err"
  local rc=$?
  [ $rc -eq 0 ] && [ "$(wc -l <"$TMP/err")" -eq 1 ] && grep -q -- "$pat" "$TMP/err" && grep -q '^Left at cell 2 of 3' "$TMP/out" \
    && ok || bad "$name: exit $rc, $(head -c 300 "$TMP/err")"
}
rm -f "$P"; printf 'garbage\n' >"$P"
corrupt "progress: garbage" "step.progress: not a progress file of this lesson; starting at the beginning"
printf 'seek lesson progress 1\nfile step.md\nnext 99\n' >"$P"
corrupt "progress: a cell out of range" "step.progress: its cell number is not one of this lesson's cells; starting at the beginning"
printf 'seek lesson progress 1\nfile step.md\nnext two\n' >"$P"
corrupt "progress: not a number" "step.progress: its cell number is not one of this lesson's cells"
printf 'seek lesson progress 1\nfile step.md\nnext 2' >"$P"
corrupt "progress: cut short" "step.progress: its cell number is not one line"
printf 'seek lesson progress 1\nfile other.md\nnext 2\n' >"$P"
corrupt "progress: another lesson's" "not a progress file of this lesson"
head -c 3000 /dev/urandom >"$P"
corrupt "progress: random bytes" "step.progress: "
: >"$P"
corrupt "progress: empty" "not a progress file of this lesson"
head -c 10000 /dev/zero >"$P"
corrupt "progress: too big" "more than the 4096 allowed"
rm -f "$P"; mkdir "$P"   # read and written: a warning for each, and still no crash
printf '\n' | "$SEEK" lesson "$B/step.md" >"$TMP/out" 2>"$TMP/err"
[ $? -eq 0 ] && head -n 1 "$TMP/err" | grep -q 'step.progress: not a regular file; starting at the beginning' \
  && tail -n 1 "$TMP/err" | grep -q 'cannot keep your progress: .*step.progress: is a folder' && [ "$(wc -l <"$TMP/err")" -eq 2 ] \
  && grep -q '^Left at cell 2 of 3' "$TMP/out" && ok || bad "progress: a folder: $(head -c 400 "$TMP/err")"
rmdir "$P"
# no state folder to be had (a file where it would go): a warning, and the lesson still runs
: >"$TMP/afile"
printf '\n\n\n' | XDG_STATE_HOME=$TMP/afile "$SEEK" lesson "$B/step.md" >"$TMP/out" 2>"$TMP/err"
[ $? -eq 0 ] && [ "$(wc -l <"$TMP/err")" -eq 1 ] && grep -q '^seek lesson: cannot keep your progress (.*afile: cannot make the folder: a file is in the way); pictures go to ' "$TMP/err" \
  && grep -q '^End of the lesson' "$TMP/out" && ok || bad "step: no state folder: $(head -c 300 "$TMP/err")"
rm -rf "$(sed -n 's/.*pictures go to \(.*\)$/\1/p' "$TMP/err")"

# ---- --html (viz/lesson_html.c): one self-contained page ----
H=$TMP/html
mkdir -p "$H"
if "$SEEK" lesson "$B/step.md" --html "$H/probe.html" 2>&1 | grep -q 'needs libcmark'; then
  expect_code "--html without libcmark" 1 "--html needs libcmark" "$SEEK" lesson "$B/step.md" --html "$H/x.html"
  echo "lessons: this seek has no libcmark: the --html tests were not run"
else
  # step.md: the page holds every block in order, the picture as a data: URI, the pinned line marked
  printf 'raw <script>alert(1)</script> & <b>bold</b>\n' >>"$B/step.md"
  expect_ok "--html" "$SEEK" lesson "$B/step.md" --html "$H/step.html"
  grep -q "^wrote $H/step.html ([0-9]* KiB): Stepping, 3 cells, 1 picture$" "$TMP/out" && ok || bad "--html: $(cat "$TMP/out")"
  f=$H/step.html
  grep -q '^<h1>Stepping</h1>$' "$f" && grep -q '^<p>The first prose.</p>$' "$f" && grep -q '<section class="cell" id="cell-3">' "$f" \
    && grep -q '<span class="prompt">seek&gt; </span>png attn.png</code></pre>' "$f" && grep -q '<mark class="pin"[^>]*>ran 3 tokens through 4 layers' "$f" \
    && ok || bad "--html: the page lacks a block"
  # self-contained and safe: no script, no outside reference; raw HTML in the prose left out, & escaped
  ! grep -qi '<script\|<link\|src="http\|href="http\|@import' "$f" && grep -q 'raw .*alert(1).* &amp; .*bold' "$f" \
    && ok || bad "--html: the page is not self-contained or not escaped: $(grep -i 'script\|alert' "$f" | head -c 300)"
  # the embedded picture is byte for byte the PNG the REPL writes
  printf 'load tiny-models/seek-r1-base\nids 5 6 7\nattn 1\npng %s\n' "$H/attn.png" | "$SEEK" repl >/dev/null 2>&1
  sed -n 's/.*src="data:image\/png;base64,\([^"]*\)".*/\1/p' "$f" | base64 -d >"$H/embedded.png" 2>/dev/null
  [ -s "$H/attn.png" ] && cmp -s "$H/attn.png" "$H/embedded.png" && grep -q '<figcaption>attn.png &middot; [0-9]*&times;[0-9]*</figcaption>' "$f" \
    && ok || bad "--html: the embedded picture is not the PNG the cell wrote"
  # the same lesson gives the same page
  expect_ok "--html again" "$SEEK" lesson "$B/step.md" --html "$H/again.html"
  cmp -s "$f" "$H/again.html" && ok || bad "--html: two renderings of one lesson differ"
  # odd and hostile picture names: escaped in the page, never outside the picture folder
  printf '# x\n```seek\nload tiny-models/seek-r1-base\nids 5 6 7\nattn 1\npng a<b>&"c.png\n```\n' >"$B/oddname.md"
  expect_ok "--html: an odd picture name" "$SEEK" lesson "$B/oddname.md" --html "$H/odd.html"
  grep -q '<figcaption>a&lt;b&gt;&amp;&quot;c.png &middot;' "$H/odd.html" && ! grep -q 'a<b>' "$H/odd.html" && ok || bad "--html: the picture name not escaped"
  printf '# x\n```seek\nload tiny-models/seek-r1-base\nids 5 6 7\nattn 1\n```\n```seek\npng ../escape.png\n```\n' >"$B/escape.md"
  expect_code "--html: png ../NAME" 1 "escape.md:7: cell 2 failed: error: png: in a lesson, FILE is a file name without a folder" \
    "$SEEK" lesson "$B/escape.md" --html "$H/esc.html"
  [ ! -e "$H/esc.html" ] && [ ! -e "$TMP/escape.png" ] && [ ! -e escape.png ] && ok || bad "--html: png ../NAME wrote something"
  printf '# x\n```seek\nload tiny-models/seek-r1-base\nids 5 6 7\nattn 1\npng /%s.png\n```\n' "${TMP#/}/abs" >"$B/abs.md"
  expect_code "png /ABSOLUTE" 1 "abs.md:2: cell 1 failed: error: png: in a lesson, FILE is a file name without a folder" "$SEEK" lesson "$B/abs.md" --check
  [ ! -e "$TMP/abs.png" ] && ok || bad "png /ABSOLUTE wrote outside the picture folder"
  printf '# x\n```seek\nload tiny-models/seek-r1-base\nids 5 6 7\nattn 1\npng %s.png\n```\n' "$(head -c 5000 /dev/zero | tr '\0' 'p')" >"$B/longname.md"
  expect_code "png with a 5000-byte name" 1 "longname.md:2: cell 1 failed: error: png: " "$SEEK" lesson "$B/longname.md" --html "$H/long.html"
  # an output path that cannot be written: one line naming it, exit 1, nothing left behind
  expect_code "--html into a missing folder" 1 "$H/none/x.html: cannot write: folder $H/none: No such file or directory" \
    "$SEEK" lesson "$B/step.md" --html "$H/none/x.html"
  expect_code "--html onto a folder" 1 "$H: is a folder, not a file" "$SEEK" lesson "$B/step.md" --html "$H"
  expect_code "--html under a file" 1 "afile/x.html: cannot write: $TMP/afile is not a folder" "$SEEK" lesson "$B/step.md" --html "$TMP/afile/x.html"
  expect_code "--html to a full device" 1 "/dev/full: write failed: No space left on device" "$SEEK" lesson "$B/step.md" --html /dev/full
  expect_code "--html: an empty path" 1 "--html: an empty output path" "$SEEK" lesson "$B/step.md" --html ''
  expect_code "--html of a failing lesson" 1 "failing.md:6: cell 2 failed: error: attn" "$SEEK" lesson "$B/failing.md" --html "$H/failing.html"
  expect_report "--html of a lesson whose expect fails" "missing.md:5: cell 1: expected line not shown" "$SEEK" lesson "$B/missing.md" --html "$H/missing.html"
  [ ! -e "$H/failing.html" ] && [ ! -e "$H/missing.html" ] && [ -z "$(ls "$H" | grep tmp)" ] && ok || bad "--html left files behind: $(ls "$H")"
  # an old page is left whole when the new one cannot be made
  cp "$f" "$H/keep.html"
  expect_code "--html over a page, failing" 1 "failing.md:6: cell 2 failed" "$SEEK" lesson "$B/failing.md" --html "$H/keep.html"
  cmp -s "$f" "$H/keep.html" && ok || bad "--html: a failing lesson changed the page it would replace"
fi
# the picture folders of --check and --html are removed after
[ -z "$(ls "$TMP" | grep '^seek-lesson-')" ] && ok || bad "a lesson's picture folder was left in TMPDIR"
finish
