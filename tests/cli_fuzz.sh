#!/usr/bin/env bash
# cli_fuzz.sh: replays every fuzz target's seed corpus (tests/fuzz/corpus/NAME/) through the target,
# built with plain gcc and tests/fuzz/replay.c's main (the Makefile's fuzz block): the release
# build when SEEK is ./seek, the ASan/UBSan build when it is ./seek-debug (tests/run.sh runs this
# script once with each). A crash, a sanitizer report or a target's failed check fails the input's
# test. `make fuzz` runs the same targets under libFuzzer (docs/fuzzing.md).
cd "$(dirname "$0")/.."
. tests/lib.sh
mode=rel
case "$SEEK" in *debug*) mode=dbg ;; esac

for dir in tests/fuzz/corpus/*/; do
  name=$(basename "$dir")
  bin=${B:-build}/$mode/fuzz/$name
  if [ ! -x "$bin" ]; then
    bad "fuzz $name: $bin is not built (make test builds it; or make $bin)"
    continue
  fi
  files=("$dir"*)
  # one run over the whole corpus (the tokenizer loads once); on a failure, each file on its own
  # to name the inputs that fail
  if "$bin" "$dir" >"$TMP/out" 2>"$TMP/err" && ! grep -q 'Sanitizer\|runtime error' "$TMP/err"; then
    for f in "${files[@]}"; do [ -f "$f" ] && ok; done
    continue
  fi
  for f in "${files[@]}"; do
    [ -f "$f" ] || continue
    if "$bin" "$f" >"$TMP/out" 2>"$TMP/err" && ! grep -q 'Sanitizer\|runtime error' "$TMP/err"; then ok
    else bad "fuzz $name $(basename "$f"): $(head -c 400 "$TMP/err")"; fi
  done
done
finish
