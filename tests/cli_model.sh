#!/usr/bin/env bash
# cli_model.sh: `seek info`, `seek forward` and `seek generate` from the command line, and the bad
# input they must survive (one-line error naming the file/field, non-zero exit, no crash; the
# same script runs against the ASan/UBSan build). Run by tests/run.sh with SEEK set.
set -u
cd "$(dirname "$0")/.."
. tests/lib.sh
FX=tests/fixtures

# ---- info: figures from the DeepSeek-V3 paper and docs/model.md, not from our code ----
expect_ok "info v3-671b" "$SEEK" info tests/configs/deepseek-v3-671b
grep -q "total 671.0" "$TMP/out" && ok || bad "info: V3 total parameters should be 671B: $(grep parameters "$TMP/out")"
grep -q "active per token 37.[0-9]" "$TMP/out" && ok || bad "info: V3 active parameters should be ~37B"
grep -q "70272 B/token in bf16" "$TMP/out" && ok || bad "info: V3 MLA cache should be 70,272 B/token (docs/model.md §5.6)"
grep -q "(71.1[0-9]x)" "$TMP/out" && ok || bad "info: V3 MLA vs MHA ratio should be 71.1x (docs/model.md §5.6)"
grep -q "scale 0.1352338" "$TMP/out" && ok || bad "info: V3 softmax scale should be 0.1352338 (docs/model.md §4.6)"
expect_ok "info llama" "$SEEK" info $FX/llama_gqa
grep -q "grouped-query: 4 query heads, 2 kv heads, head_dim 16" "$TMP/out" && ok || bad "info llama: $(sed -n 3p "$TMP/out")"

# ---- forward: output sizes are exactly [B, T, V] and [L+1, B, T, C] floats ----
expect_ok "forward v3" "$SEEK" forward $FX/v3 --backend ref --ids "5,6,7;8,9,10" --logits "$TMP/l.f32" --hidden "$TMP/h.f32"
[ "$(stat -c %s "$TMP/l.f32")" = $((2 * 3 * 256 * 4)) ] && ok || bad "forward: logits file size"
[ "$(stat -c %s "$TMP/h.f32")" = $((4 * 2 * 3 * 48 * 4)) ] && ok || bad "forward: hidden file size"
expect_ok "forward absorb" "$SEEK" forward $FX/v3 --ids "5,6,7;8,9,10" --logits "$TMP/l2.f32" --attn absorb
expect_ok "forward sharded" "$SEEK" forward $FX/v3_yarn --ids "1 2 3" --logits "$TMP/l3.f32"
# the first sequence of a batch gives the same logits as running it alone (no cross-talk;
# bitwise in the reference, whose row results do not depend on the batch size)
expect_ok "forward single" "$SEEK" forward $FX/v3 --backend ref --ids "5,6,7" --logits "$TMP/l1.f32"
cmp -s "$TMP/l1.f32" <(head -c $((3 * 256 * 4)) "$TMP/l.f32") && ok || bad "forward: batch row 0 differs from the same sequence alone"

# ---- generate: naive and absorbed attention give the same tokens; seeded sampling repeats ----
expect_ok "generate naive" "$SEEK" generate $FX/v3 --ids "5,6,7;8,9,10" -n 6
cp "$TMP/out" "$TMP/gen_naive"
expect_ok "generate absorb" "$SEEK" generate $FX/v3 --ids "5,6,7;8,9,10" -n 6 --attn absorb
cmp -s "$TMP/out" "$TMP/gen_naive" && ok || bad "generate: naive and absorbed tokens differ"
[ "$(wc -l <"$TMP/gen_naive")" = 2 ] && [ "$(head -1 "$TMP/gen_naive" | wc -w)" = 6 ] && ok || bad "generate: expected 2 lines of 6 ids"
expect_ok "sample 1" "$SEEK" generate $FX/llama_gqa --ids "3,4" -n 10 --temp 10.0 --top-k 50 --top-p 0.9 --seed 42
cp "$TMP/out" "$TMP/s1"
expect_ok "sample 2" "$SEEK" generate $FX/llama_gqa --ids "3,4" -n 10 --temp 10.0 --top-k 50 --top-p 0.9 --seed 42
cmp -s "$TMP/out" "$TMP/s1" && ok || bad "generate: same seed gave different samples"
expect_ok "sample 3" "$SEEK" generate $FX/llama_gqa --ids "3,4" -n 10 --temp 10.0 --top-k 50 --top-p 0.9 --seed 43
cmp -s "$TMP/out" "$TMP/s1" && bad "generate: different seeds gave identical 10-token samples" || ok

# ---- convert: folders seek.c writes load back with the same numbers ----
expect_ok "convert fp8->f32" "$SEEK" convert $FX/v3_fp8 "$TMP/c32" --dtype f32
"$SEEK" forward $FX/v3_fp8 --ids "5,6,7;8,9,10" --logits "$TMP/a.f32" && "$SEEK" forward "$TMP/c32" --ids "5,6,7;8,9,10" --logits "$TMP/b.f32"
cmp -s "$TMP/a.f32" "$TMP/b.f32" && ok || bad "convert: dequantised f32 copy gives different logits"
grep -q quantization_config "$TMP/c32/config.json" && bad "convert: quantization_config kept" || ok
expect_ok "convert bf16->bf16" "$SEEK" convert $FX/v3_noq "$TMP/cb" --dtype bf16
"$SEEK" forward $FX/v3_noq --ids "5,6,7" --logits "$TMP/a.f32" && "$SEEK" forward "$TMP/cb" --ids "5,6,7" --logits "$TMP/b.f32"
cmp -s "$TMP/a.f32" "$TMP/b.f32" && ok || bad "convert: bf16 weights written as bf16 changed the logits"
expect_ok "convert sharded->f16" "$SEEK" convert $FX/v3_yarn "$TMP/ch" --dtype f16
expect_ok "load f16 copy" "$SEEK" generate "$TMP/ch" --ids "5,6,7" -n 3
expect_fail "convert dtype" "'f8' is not supported" "$SEEK" convert $FX/v3 "$TMP/cx" --dtype f8

# ---- bad command lines ----
expect_fail "ids out of range" "token id 256 is out of range \[0, 256)" "$SEEK" forward $FX/v3 --ids "1,256" --logits "$TMP/x"
expect_fail "ids negative" "not an integer\|out of range" "$SEEK" forward $FX/v3 --ids "1,-2" --logits "$TMP/x"
expect_fail "ids junk" "'12abc' is not an integer" "$SEEK" forward $FX/v3 --ids "1,12abc" --logits "$TMP/x"
expect_fail "ids ragged" "sequence 2 has 1 ids, sequence 1 has 2" "$SEEK" forward $FX/v3 --ids "1,2;3" --logits "$TMP/x"
expect_fail "ids empty" "sequence 1 is empty" "$SEEK" forward $FX/v3 --ids "" --logits "$TMP/x"
expect_fail "attn mode" "'fast' is not a mode" "$SEEK" forward $FX/v3 --ids "1" --logits "$TMP/x" --attn fast
expect_fail "absorb llama" "absorb needs an MLA model" "$SEEK" forward $FX/llama_gqa --ids "1" --logits "$TMP/x" --attn absorb
expect_fail "n zero" "-n: 0 is out of range" "$SEEK" generate $FX/v3 --ids "1" -n 0
expect_fail "temp nan" "--temp: 'nan' is not a number\|--temp: nan is out of range" "$SEEK" generate $FX/v3 --ids "1" -n 2 --temp nan
expect_fail "too long" "exceeds max_position_embeddings 128" "$SEEK" generate $FX/v3 --ids "1,2" -n 200
expect_fail "prompt no tokenizer" "no tokenizer.json (needed for --prompt" "$SEEK" generate $FX/v3 --prompt "hi" -n 2
expect_fail "ids and prompt" "expected: seek generate" "$SEEK" generate $FX/v3 --prompt "hi" --ids "1" -n 2
rm -rf "$TMP/tk"; cp -r $FX/v3 "$TMP/tk"; cp tests/fixtures/tokenizer/trained/tokenizer.json tests/fixtures/tokenizer/trained/tokenizer_config.json "$TMP/tk/"
expect_fail "prompt ids beyond vocab" "from the tokenizer is out of range \[0, 256)" "$SEEK" generate "$TMP/tk" --prompt "the quick brown fox jumps" -n 2
expect_fail "no dir" "config.json: cannot open" "$SEEK" forward "$TMP/nothing" --ids "1" --logits "$TMP/x"

# ---- bad model folders ----
mk() { rm -rf "$TMP/m"; cp -r "$FX/$1" "$TMP/m"; }
run_fwd() { "$SEEK" forward "$TMP/m" --ids "1,2" --logits "$TMP/x"; }

mk v3; sed -i 's/"hidden_size": 48/"hidden_size": 64/' "$TMP/m/config.json"
expect_fail "config/shape mismatch" "model.embed_tokens.weight.*shape.*expected" run_fwd
mk v3; sed -i 's/"num_hidden_layers": 3/"num_hidden_layers": 4/' "$TMP/m/config.json"
expect_fail "missing tensor" "model.layers.3.*not found" run_fwd
mk v3; sed -i 's/"vocab_size": 256/"vocab_size": 300/' "$TMP/m/config.json"
expect_fail "vocab mismatch" "embed_tokens.weight.*shape" run_fwd
mk v3; sed -i 's/"num_hidden_layers": 3/"num_hidden_layers": 1000000000/' "$TMP/m/config.json"
expect_fail "layers huge" "num_hidden_layers.*out of range" run_fwd
mk v3; sed -i 's/"num_hidden_layers": 3/"num_hidden_layers": 0/' "$TMP/m/config.json"
expect_fail "layers zero" "num_hidden_layers.*out of range" run_fwd
mk v3; sed -i 's/"hidden_size": 48/"hidden_size": "48"/' "$TMP/m/config.json"
expect_fail "wrong type" "field 'hidden_size': expected an integer, got a string" run_fwd
mk llama_gqa; sed -i 's/"num_key_value_heads": 2/"num_key_value_heads": 3/' "$TMP/m/config.json"
expect_fail "heads % kv" "num_key_value_heads" run_fwd
mk v3; sed -i 's/"model_type": "deepseek_v3"/"model_type": "gpt2"/' "$TMP/m/config.json"
expect_fail "model_type" "'gpt2' is not supported" run_fwd
mk v3; sed -i 's/"rope_theta": 10000.0/"rope_theta": -1.0/' "$TMP/m/config.json"
expect_fail "rope_theta negative" "field 'rope_theta'.*must be positive" run_fwd
mk v3; sed -i 's/"rope_type": "default"/"rope_type": "dynamic"/' "$TMP/m/config.json"
expect_fail "rope type" "'dynamic' is not supported" run_fwd
mk v3; sed -i 's/"max_position_embeddings": 128/"max_position_embeddings": 100000000000/' "$TMP/m/config.json"
expect_fail "max positions" "max_position_embeddings.*out of range" run_fwd
mk v3; sed -i 's/"topk_group": 4/"topk_group": 1/; s/"num_experts_per_tok": 4/"num_experts_per_tok": 5/' "$TMP/m/config.json"
expect_fail "topk_group too small" "cannot hold num_experts_per_tok" run_fwd
mk v3; sed -i 's/"n_group": 8/"n_group": 5/' "$TMP/m/config.json"
expect_fail "n_group divides" "field 'n_group'" run_fwd
mk v3_yarn; sed -i 's/"factor": 4.0/"factor": 0.5/' "$TMP/m/config.json"
expect_fail "yarn factor" "factor.*out of range" run_fwd
mk v3; printf '{"model_type": "llama",' >"$TMP/m/config.json"
expect_fail "config json" "config.json: invalid JSON" run_fwd
mk v3; rm "$TMP/m/model.safetensors"
expect_fail "no weights" "model.safetensors" run_fwd

# safetensors: truncated at many offsets (the header, its end, the data, the last byte)
mk v3
size=$(stat -c %s "$FX/v3/model.safetensors")
hlen=$(od -An -t u8 -N 8 "$FX/v3/model.safetensors" | tr -d ' ')
for off in 0 1 4 7 8 9 100 $((hlen + 7)) $((hlen + 8)) $((hlen + 9)) $((size / 2)) $((size - 4)) $((size - 1)); do
  head -c "$off" "$FX/v3/model.safetensors" >"$TMP/m/model.safetensors"
  expect_fail "truncated at $off" "model.safetensors" run_fwd
done
# header length past the end of the file, and 2^63
printf '\x00\x00\x00\x00\x00\x01\x00\x00{}' >"$TMP/m/model.safetensors"
expect_fail "header past file" "header length" run_fwd
printf '\xff\xff\xff\xff\xff\xff\xff\x7f{}' >"$TMP/m/model.safetensors"
expect_fail "header 2^63" "header length" run_fwd
# unknown dtype (same length, so the header stays well-formed)
mk v3; LC_ALL=C sed -i '1s/"F32"/"F33"/' "$TMP/m/model.safetensors"
expect_fail "unknown dtype" "F33" run_fwd
# trailing bytes after the last tensor
mk v3; printf 'xx' >>"$TMP/m/model.safetensors"
expect_fail "trailing bytes" "model.safetensors" run_fwd

# a NaN in the weights loads (the format allows it); --check-finite names the tensor and fails
mk v3
hlen=$(od -An -t u8 -N 8 "$TMP/m/model.safetensors" | tr -d ' ')
printf '\x00\x00\xc0\x7f' | dd of="$TMP/m/model.safetensors" bs=1 seek=$((8 + hlen)) conv=notrunc status=none
expect_ok "nan loads" "$SEEK" forward "$TMP/m" --ids "1,2" --logits "$TMP/x"
"$SEEK" info "$TMP/m" --check-finite >"$TMP/out" 2>&1 && bad "check-finite: exit 0 with a NaN" || ok
grep -q "non-finite    [a-z_.]*weight: 1 NaN, 0 Inf" "$TMP/out" && ok || bad "check-finite: $(grep -i finite "$TMP/out")"
expect_ok "check-finite clean" "$SEEK" info $FX/v3 --check-finite
grep -q "all finite" "$TMP/out" && ok || bad "check-finite clean: $(tail -1 "$TMP/out")"

# sharded folders: a shard name that escapes the folder, a missing shard
mk v3_yarn
first=$(grep -o '"model-[^"]*\.safetensors"' "$TMP/m/model.safetensors.index.json" | head -1 | tr -d '"')
sed -i "s|\"$first\"|\"../$first\"|" "$TMP/m/model.safetensors.index.json"
expect_fail "shard escape" "\.\./$first" run_fwd
mk v3_yarn; sed -i "s|\"$first\"|\"/etc/passwd\"|" "$TMP/m/model.safetensors.index.json"
expect_fail "shard absolute" "/etc/passwd" run_fwd
mk v3_yarn; rm "$TMP/m/$first"
expect_fail "shard missing" "$first" run_fwd

# ---- the command line itself: --help, did you mean, one prefix (ux.md) ----
cmds=$("$SEEK" help | sed -n 's/^  seek \([a-z-]*\).*/\1/p')
[ "$(echo "$cmds" | wc -l)" -ge 18 ] && ok || bad "seek help lists $(echo "$cmds" | wc -l) commands"
for c in $cmds; do
  # --help (and -h, and seek help CMD) on every command: its usage on stdout, exit 0, nothing on stderr
  "$SEEK" "$c" --help >"$TMP/help" 2>"$TMP/help.err"
  rc=$?
  [ $rc -eq 0 ] && [ ! -s "$TMP/help.err" ] && head -1 "$TMP/help" | grep -q "^usage: seek $c\( \|$\)" && ok ||
    bad "seek $c --help: exit $rc, $(head -c 200 "$TMP/help.err" "$TMP/help")"
  "$SEEK" help "$c" | cmp -s - "$TMP/help" && "$SEEK" "$c" -h | cmp -s - "$TMP/help" && ok || bad "seek help $c / seek $c -h differ from --help"
  # every flag the help names is one the command accepts (the help is the list did-you-mean uses)
  for f in $(grep -o '[[ (|]-\{1,2\}[a-z][-a-z0-9]*' "$TMP/help" | cut -c2- | sort -u); do
    extra=(); [ "$c" = bench ] && [[ " --seq-len --steps --peak-tflops --profile " == *" $f "* ]] && extra=(--backend cuda)
    timeout 60 "$SEEK" "$c" "${extra[@]}" "$f" --zzz-bogus </dev/null >/dev/null 2>"$TMP/flag.err"
    grep -q "unknown option '$f'" "$TMP/flag.err" && bad "seek $c --help names $f, which seek $c refuses: $(cat "$TMP/flag.err")" || ok
  done
done
"$SEEK" generate $FX/v3 --ids 1 --help >"$TMP/out" 2>&1 && head -1 "$TMP/out" | grep -q '^usage: seek generate' && ok || bad "generate DIR --help: $(head -1 "$TMP/out")"
"$SEEK" train --steps 3 --help >"$TMP/out" 2>&1 && grep -q -- '--eval-interval' "$TMP/out" && ok || bad "train --help does not list the keys"
grep -q '^-n N: how many tokens to generate (default 32)' <("$SEEK" generate --help) && ok || bad "generate --help does not say the default -n"
# did you mean: the nearest command or flag, one line, exit 2
expect_code "mistyped command" 2 "^seek: unknown command 'genrate' (did you mean 'generate'?)$" "$SEEK" genrate
expect_code "far command" 2 "^seek: unknown command 'frobnicate' (try 'seek help')$" "$SEEK" frobnicate
expect_code "help of a mistyped command" 2 "^seek: unknown command 'tokenise' (did you mean 'tokenize'?)$" "$SEEK" help tokenise
expect_code "mistyped flag" 2 "^seek generate: unknown option '--tmp' (did you mean '--temp'?)$" "$SEEK" generate --ids 1 --tmp 1
expect_code "mistyped flag, a start of two" 2 "^seek rl: unknown option '--eval-t' (did you mean '--eval-temperature' or '--eval-top-p'?)$" \
  "$SEEK" rl --init x --eval-t 1
expect_code "mistyped switch" 2 "^seek info: unknown option '--chek-finite' (did you mean '--check-finite'?)$" "$SEEK" info --chek-finite
expect_code "far flag" 2 "^seek forward: unknown option '--frobnicate' (see 'seek forward --help')$" "$SEEK" forward --frobnicate
# generate without -n: the default, 32 tokens
expect_ok "generate default -n" "$SEEK" generate $FX/v3 --ids "5,6,7"
[ "$(wc -w <"$TMP/out")" = 32 ] && ok || bad "generate without -n: $(wc -w <"$TMP/out") ids, expected the default 32"
# one "seek CMD: " prefix, never "seek generate: generate: ..." (library reasons name their step)
expect_fail "generate too long, one prefix" "^seek generate: prompt 2 + 100000 new tokens exceeds max_position_embeddings 128 (at most 126 new after this prompt)$" \
  "$SEEK" generate $FX/v3 --ids "1,2" -n 100000
expect_fail "rl too long, one prefix" "^seek rl: a prompt of 33 tokens + max_new 4000 exceed" "$SEEK" rl --init tiny-models/seek-r1-base --steps 0 --max-new 4000 --eval 1
for args in "generate $FX/v3 --ids 1,2 -n 100000" "rl --init tiny-models/seek-r1-base --steps 0 --max-new 4000 --eval 1" \
            "forward $FX/v3 --ids 1 --logits /nonexistent/x" "eval $FX/v3 --text /nonexistent" "verify $FX/v3 --ids 1,999" \
            "grad $FX/v3 --ids 1,2 -o /nonexistent/x" "convert $FX/v3 /nonexistent/x/y" "info /nonexistent" "tokenize /nonexistent --text a" \
            "train --model tiny-v3 --data /nonexistent --out $TMP/t" "plot /nonexistent -o $TMP/x.png" "lesson 99" "tasks --digits 0..3"; do
  # shellcheck disable=SC2086
  "$SEEK" $args >/dev/null 2>"$TMP/err"
  c=${args%% *}
  [ -s "$TMP/err" ] && ! grep -q "^seek $c: $c[: ]" "$TMP/err" && ok || bad "seek $args: '$(cat "$TMP/err")'"
done

finish
