# tests/cli_tokenizer.sh: `seek tokenize`, `detokenize`, `bpe-train`, `tokenize-corpus` from the
# command line, with DeepSeek-V3's own tokenizer.json (fetched by scripts/fetch_deepseek_tokenizer.sh
# into the git-ignored build-data/; if it cannot be fetched, these tests FAIL, they do not skip)
# and the tokenizer trained by seek.c that tests/fixtures/tokenizer/ holds.
. tests/lib.sh
FIX=tests/fixtures/tokenizer
DS=build-data/deepseek-v3/tokenizer.json

expect_ok "fetch DeepSeek-V3 tokenizer" bash scripts/fetch_deepseek_tokenizer.sh

# expect_out NAME WANT CMD...: the command exits 0 and prints exactly WANT (trailing newlines aside)
expect_out() {
  local name=$1 want=$2; shift 2
  local got
  if ! got=$("$@" 2>"$TMP/err"); then bad "$name: exit non-zero ($(head -c 300 "$TMP/err"))"; return; fi
  if [ "$got" != "$want" ]; then bad "$name: got '$got', want '$want'"; return; fi
  ok
}

# Known ids (Hugging Face tokenizers 0.23 on the same file).
expect_out "tokenize" "19923 2058" $SEEK tokenize --tokenizer $DS --text "Hello world"
expect_out "tokenize --bos" "0 19923 2058" $SEEK tokenize --tokenizer $DS --text "Hello world" --bos
expect_out "tokenize a folder" "19923 2058" $SEEK tokenize --tokenizer build-data/deepseek-v3 --text "Hello world"
expect_out "special tokens in text" "0 19923 1" $SEEK tokenize --tokenizer $DS --text "<｜begin▁of▁sentence｜>Hello<｜end▁of▁sentence｜>"
expect_out "detokenize" "Hello world" $SEEK detokenize --tokenizer $DS --ids "19923 2058"
expect_out "detokenize commas" "Hello world" $SEEK detokenize --tokenizer $DS --ids "19923,2058"
expect_out "empty text" "" $SEEK tokenize --tokenizer $DS --text ""

# --lines: one output line per input line, the newline not encoded
printf 'Hello world\n\nHello world' >"$TMP/lines.txt"
expect_out "tokenize --lines" "$(printf '19923 2058\n\n19923 2058')" $SEEK tokenize --tokenizer $DS --file "$TMP/lines.txt" --lines
expect_out "tokenize --lines --bos" "$(printf '0 19923 2058\n0\n0 19923 2058')" $SEEK tokenize --tokenizer $DS --file "$TMP/lines.txt" --lines --bos
expect_out "tokenize stdin" "19923 2058" sh -c "printf 'Hello world' | $SEEK tokenize --tokenizer $DS --file -"

# Round trip, byte for byte, of multi-script text and of invalid UTF-8
printf 'Ünïcödé 你好 👨‍👩‍👧 \t  x=1;\r\n<think>ok</think>\n\n' >"$TMP/rt.txt"
printf 'bad \377\376 utf8 \303( end \360\237\230' >>"$TMP/rt.txt"
roundtrip() { # tokenizer file
  local ids
  ids=$($SEEK tokenize --tokenizer "$1" --file "$TMP/rt.txt") || return 1
  $SEEK detokenize --tokenizer "$1" --ids "$ids" >"$TMP/rt.out" || return 1
  printf '\n' | cat "$TMP/rt.txt" - | cmp -s - "$TMP/rt.out"
}
expect_ok "round trip (DeepSeek-V3)" roundtrip $DS
expect_ok "round trip (trained)" roundtrip $FIX/trained/tokenizer.json

# Training reproduces the committed trained tokenizer byte for byte
mkdir -p "$TMP/tr"
expect_ok "bpe-train" $SEEK bpe-train --corpus $FIX/corpus.txt --vocab 600 -o "$TMP/tr/tokenizer.json"
expect_ok "bpe-train is deterministic" cmp "$TMP/tr/tokenizer.json" $FIX/trained/tokenizer.json
expect_ok "bpe-train writes tokenizer_config.json" cmp "$TMP/tr/tokenizer_config.json" $FIX/trained/tokenizer_config.json
expect_out "trained tokenizer adds BOS" "0 79 108 115 345 298 268 115 107" $SEEK tokenize --tokenizer "$TMP/tr" --text "Hello world" --bos
expect_ok "bpe-train --special" $SEEK bpe-train --corpus $FIX/corpus.txt --vocab 300 --no-default-special --special "<s>" --special "</s>" -o "$TMP/tr/small.json"
expect_out "custom special tokens" "0 1" $SEEK tokenize --tokenizer "$TMP/tr/small.json" --text "<s></s>"

# --split-digits: every digit its own pre-token, so no vocabulary entry holds two digits
awk 'BEGIN { x = 7; for (i = 0; i < 2000; i++) { x = (x * 1103 + 12345) % 65536; a = x % 1000;
       x = (x * 1103 + 12345) % 65536; b = x % 100; printf "What is %d + %d? It is %d.\n", a, b, a + b } }' >"$TMP/digits.txt"
mkdir -p "$TMP/sd" "$TMP/nd"
expect_ok "bpe-train --split-digits" $SEEK bpe-train --corpus "$TMP/digits.txt" --vocab 400 --split-digits -o "$TMP/sd/tokenizer.json"
expect_ok "bpe-train without --split-digits" $SEEK bpe-train --corpus "$TMP/digits.txt" --vocab 400 -o "$TMP/nd/tokenizer.json"
# vocabulary entries are the lines '    "TOKEN": ID,' of the indented file; digits spell themselves
two_digit_tokens() { grep -cE '^ *"[^"]*[0-9][^"]*[0-9][^"]*": [0-9]+,?$' "$1" || true; }
expect_out "--split-digits: no token with two digits" "0" two_digit_tokens "$TMP/sd/tokenizer.json"
expect_ok "without it: some token with two digits" test "$(two_digit_tokens "$TMP/nd/tokenizer.json")" -gt 0
pretok_json() { grep -c "$2" "$1" || true; }
digits_step() { grep -A2 '"type": "Digits",$' "$1" | tr -d ' \n'; }
expect_out "--split-digits writes HF's Digits pre-tokenizer" '"type":"Digits","individual_digits":true},' digits_step "$TMP/sd/tokenizer.json"
expect_out "--split-digits drops the \\p{N}{1,3} split" "0" pretok_json "$TMP/sd/tokenizer.json" 'p{N}{1,3}'
expect_out "without it the \\p{N}{1,3} split stays" "1" pretok_json "$TMP/nd/tokenizer.json" 'p{N}{1,3}'
expect_ok "--split-digits: the same tokenizer_config.json" cmp "$TMP/sd/tokenizer_config.json" "$TMP/nd/tokenizer_config.json"
# each id of "What is 347 + 86?" decoded on its own, one per line: the digits come one per token
per_token() {
  local ids id
  ids=$($SEEK tokenize --tokenizer "$1" --text "What is 347 + 86?") || return 1
  for id in $ids; do $SEEK detokenize --tokenizer "$1" --ids "$id" || return 1; done
}
digit_tokens() { per_token "$1" >"$TMP/pt" && grep -E '[0-9]' "$TMP/pt" | tr '\n' ' '; }
expect_out "--split-digits: one token per digit" "3 4 7 8 6 " digit_tokens "$TMP/sd"
expect_out "--split-digits: round trip" "What is 347 + 86?" sh -c "$SEEK detokenize --tokenizer '$TMP/sd' --ids \"\$($SEEK tokenize --tokenizer '$TMP/sd' --text 'What is 347 + 86?')\""

# Token files: header magic, version, vocab size, dtype
expect_ok "tokenize-corpus" $SEEK tokenize-corpus --tokenizer $FIX/trained/tokenizer.json --corpus $FIX/corpus.txt -o "$TMP/tok.bin"
expect_out "token file header" "SEEKTOK" sh -c "head -c 7 '$TMP/tok.bin'"
expect_out "token file dtype uint16" "1 600 2" sh -c "od -An -tu4 -j8 -N12 '$TMP/tok.bin' | tr -s ' ' | sed 's/^ //'"
expect_ok "tokenize-corpus (DeepSeek-V3, uint32)" $SEEK tokenize-corpus --tokenizer $DS --corpus $FIX/corpus.txt -o "$TMP/tok32.bin"
expect_out "token file dtype uint32" "1 128815 4" sh -c "od -An -tu4 -j8 -N12 '$TMP/tok32.bin' | tr -s ' ' | sed 's/^ //'"

# Bad input: one line on stderr, non-zero exit, no crash
printf '{"pre_tokenizer":{"type":"ByteLevel"},"model":{"vocab":{"a":0,"b":0}}}' >"$TMP/dup.json"
printf '{"pre_tokenizer":{"type":"ByteLevel"},"model":{"vocab":{"a":0,"b":1},"merges":["a c"]}}' >"$TMP/merge.json"
printf '{"pre_tokenizer":{"type":"Metaspace"},"model":{"vocab":{"a":0}}}' >"$TMP/meta.json"
head -c 1000 $FIX/trained/tokenizer.json >"$TMP/trunc.json"
expect_fail "missing tokenizer" "cannot open" $SEEK tokenize --tokenizer "$TMP/nope.json" --text hi
expect_fail "duplicated ids" "given to two tokens" $SEEK tokenize --tokenizer "$TMP/dup.json" --text hi
expect_fail "merge of unknown token" '"c" is not in the vocabulary' $SEEK tokenize --tokenizer "$TMP/merge.json" --text hi
expect_fail "unsupported pre-tokenizer" 'pre_tokenizer: type "Metaspace" is not supported' $SEEK tokenize --tokenizer "$TMP/meta.json" --text hi
expect_fail "truncated tokenizer.json" "invalid JSON" $SEEK tokenize --tokenizer "$TMP/trunc.json" --text hi
expect_fail "id out of range" "out of range" $SEEK detokenize --tokenizer $DS --ids "1 128815"
expect_fail "negative id" "out of range" $SEEK detokenize --tokenizer $DS --ids "-1"
expect_fail "id not a number" "not an integer" $SEEK detokenize --tokenizer $DS --ids "12abc"
expect_fail "text and file" "usage" $SEEK tokenize --tokenizer $DS --text a --file b
expect_fail "unknown flag" "^seek tokenize: unknown option '--txt' (did you mean '--text'?)$" $SEEK tokenize --tokenizer $DS --txt a
expect_fail "flag without value" "needs a value" $SEEK tokenize --tokenizer
expect_fail "no BOS known" "no BOS token" $SEEK tokenize --tokenizer $FIX/variant_llama3.json --text a --bos
expect_fail "vocab too small" "too small" $SEEK bpe-train --corpus $FIX/corpus.txt --vocab 100 -o "$TMP/x.json"
expect_fail "vocab not a number" "not an integer" $SEEK bpe-train --corpus $FIX/corpus.txt --vocab 1e3 -o "$TMP/x.json"
expect_fail "bpe-train unknown flag" "unknown option '--split-digit' (did you mean '--split-digits'?)" $SEEK bpe-train --corpus $FIX/corpus.txt --vocab 300 --split-digit -o "$TMP/x.json"
expect_fail "bpe-train usage names --split-digits" "usage: .*\\[--split-digits\\]" $SEEK bpe-train --corpus $FIX/corpus.txt --split-digits
expect_fail "missing corpus" "cannot open" $SEEK tokenize-corpus --tokenizer $DS --corpus "$TMP/nope.txt" -o "$TMP/x.bin"

# a model folder or the default model's tokenizer (it was "--tokenizer FILE" or a usage error),
# and each token's text beside its id with --strings (and at a terminal)
MINI=tiny-models/seek-v3-mini
expect_out "tokenize the default model's" "325 438 428" env -u SEEK_MODEL $SEEK tokenize --text "And God said"
expect_out "tokenize a model folder" "325 438 428" $SEEK tokenize tiny-models/seek-v1-mini --text "And God said"
expect_out "tokenize SEEK_MODEL's" "325 438 428" env SEEK_MODEL=$MINI $SEEK tokenize --text "And God said"
expect_out "tokenize --strings" "325'And' 438' God' 428' said'" $SEEK tokenize --text "And God said" --strings
expect_out "tokenize --strings --bos" "0'<｜begin▁of▁sentence｜>' 325'And'" $SEEK tokenize $MINI --text "And" --bos --strings
expect_out "tokenize --strings escapes" "201'\\n'" $SEEK tokenize --tokenizer $DS --text $'\n' --strings
expect_out "tokenize --strings --lines" "$(printf "325'And'\n438' God'")" sh -c "printf 'And\n God' | $SEEK tokenize --file - --lines --strings"
expect_out "detokenize the default model's" "And God said" $SEEK detokenize --ids "325 438 428"
expect_out "detokenize a model folder" "And God said" $SEEK detokenize $MINI --ids "325 438 428"
expect_code "tokenize folder and --tokenizer" 2 "give a model folder or --tokenizer, not both" $SEEK tokenize $MINI --tokenizer $DS --text a
expect_fail "tokenize a folder without a tokenizer" "tests/fixtures/v3/tokenizer.json: cannot open" $SEEK tokenize tests/fixtures/v3 --text a
if command -v script >/dev/null; then   # at a terminal the strings come without asking
  script -qec "$SEEK tokenize --text 'And God said'" /dev/null </dev/null | tr -d '\r' >"$TMP/tty.out"
  grep -q "^325'And' 438' God' 428' said'$" "$TMP/tty.out" && ok || bad "tokenize at a terminal: '$(cat "$TMP/tty.out")'"
fi

finish
