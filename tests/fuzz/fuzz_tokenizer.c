/* fuzz_tokenizer.c: fuzz target for tokenizer.json loading, encoding and decoding
 * (ref/tokenizer.h: tokenizer_load_json, tokenizer_encode, tokenizer_decode,
 * tokenizer_pretokenize and the token lookups).
 *
 * The input is split on "\n#part\n": one part is text only; two parts are a tokenizer.json and a
 * text; three parts a tokenizer.json, its tokenizer_config.json and a text. The text is encoded
 * and decoded with the shipped tokenizer tiny-models/seek-v3-mini/tokenizer.json (loaded once,
 * with its tokenizer_config.json; $SEEK_FUZZ_TOKENIZER overrides the path; paths are relative to
 * the repository root) and, when the input has a tokenizer.json that loads, with that one too.
 * Besides the sanitizers, the target checks:
 *   - a refusal (load, encode, decode) gives a reason of one printable line (check_message), and a
 *     refused load no tokenizer;
 *   - a loaded tokenizer's facts agree: n_ids >= n_vocab >= 1, BOS and EOS in range (BOS known
 *     when add_bos_token), every id has a string and bytes, tokenizer_token_id finds each id back
 *     from its string, ids out of range have none;
 *   - every encoded id is in range; encoding again (from the word cache) gives the same ids, with
 *     add_bos the BOS id first and nothing else changed (add_bos is refused when no BOS is known);
 *     decoding the ids succeeds and gives each id's bytes (tokenizer_token_bytes) in order;
 *   - decode(encode(text)) == text whenever the tokenizer keeps every byte, as tokenizer.h
 *     promises for byte-level BPE: no NFC normalizer, no Split with behavior Removed, ByteLevel
 *     without add_prefix_space, a token for each of the 256 bytes, and added tokens without
 *     lstrip/rstrip that decode to their own text. The shipped tokenizer is such a tokenizer (the
 *     target stops at start-up if it is not), so for it the round trip is checked on every input;
 *   - the input's bytes read as int32 ids decode exactly when every id is in range.
 * A failed check aborts, so libFuzzer (make fuzz) and the replay driver (tests/fuzz/replay.c, run
 * by tests/cli_fuzz.sh) both report it.
 */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "tokenizer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define SEP "\n#part\n"
#define MAX_ID_CHECKS 20000   /* ids whose string/bytes/lookup are checked, at most */

/* ---- the round-trip promise, read from the tokenizer.json itself ---- */

static int is_type(const json_t *o, const char *ty) {
    const json_t *t = json_object_get(o, "type");
    return json_is_string(t) && !strcmp(json_string_value(t), ty);
}

/* No NFC anywhere in the normalizer (null, or Sequences of nothing). */
static int normalizer_is_identity(const json_t *n) {
    if (!n || json_is_null(n)) return 1;
    if (!is_type(n, "Sequence")) return 0;
    size_t i;
    json_t *e;
    json_array_foreach(json_object_get(n, "normalizers"), i, e) if (!normalizer_is_identity(e)) return 0;
    return 1;
}

/* ByteLevel's add_prefix_space (true when absent or null). */
static int prefix_space(const json_t *bl) {
    const json_t *v = json_object_get(bl, "add_prefix_space");
    return !v || json_is_null(v) || json_is_true(v);
}

/* Whether tokenizer.h's decode(encode(s)) == s holds for t, loaded from the JSON root. */
static int keeps_every_byte(const json_t *root, const Tokenizer *t) {
    if (!normalizer_is_identity(json_object_get(root, "normalizer"))) return 0;
    const json_t *p = json_object_get(root, "pre_tokenizer");
    if (is_type(p, "ByteLevel")) {
        if (prefix_space(p)) return 0;
    } else {
        size_t i;
        json_t *e;
        json_array_foreach(json_object_get(p, "pretokenizers"), i, e) {
            if (is_type(e, "ByteLevel") && prefix_space(e)) return 0;
            const json_t *b = json_object_get(e, "behavior");
            if (is_type(e, "Split") && json_is_string(b) && !strcmp(json_string_value(b), "Removed")) return 0;
        }
    }
    const json_t *vocab = json_object_get(json_object_get(root, "model"), "vocab");
    for (int b = 0; b < 256; b++) {
        /* GPT-2's alphabet: printable Latin-1 bytes spell themselves, the others U+0100 + k */
        char u[4] = {0};
        uint32_t c = byte_level_char((uint8_t)b);
        if (c < 0x80) u[0] = (char)c;
        else {
            u[0] = (char)(0xc0 | (c >> 6));
            u[1] = (char)(0x80 | (c & 0x3f));
        }
        if (!json_object_get(vocab, u)) return 0;
    }
    size_t i;
    json_t *a;
    json_array_foreach(json_object_get(root, "added_tokens"), i, a) {
        if (json_is_true(json_object_get(a, "lstrip")) || json_is_true(json_object_get(a, "rstrip"))) return 0;
        const json_t *c = json_object_get(a, "content");
        size_t len;
        const uint8_t *b = tokenizer_token_bytes(t, (int32_t)json_integer_value(json_object_get(a, "id")), &len);
        if (!b || len != json_string_length(c) || memcmp(b, json_string_value(c), len)) return 0;
    }
    return 1;
}

/* ---- checks ---- */

static void check_facts(const Tokenizer *t) {
    int32_t n = tokenizer_n_ids(t);
    CHECK(tokenizer_n_vocab(t) >= 1 && n >= tokenizer_n_vocab(t));
    CHECK(tokenizer_n_merges(t) >= 0 && tokenizer_n_added(t) >= 0);
    CHECK(tokenizer_bos_id(t) >= -1 && tokenizer_bos_id(t) < n && tokenizer_eos_id(t) >= -1 && tokenizer_eos_id(t) < n);
    if (tokenizer_add_bos(t)) CHECK(tokenizer_bos_id(t) >= 0);
    size_t len;
    CHECK(tokenizer_token_bytes(t, -1, &len) == NULL && tokenizer_token_bytes(t, n, &len) == NULL);
    CHECK(tokenizer_token_str(t, -1, &len) == NULL && tokenizer_token_str(t, n, &len) == NULL);
    CHECK(!tokenizer_is_special(t, -1) && !tokenizer_is_special(t, n));
    for (int32_t id = 0; id < n && id < MAX_ID_CHECKS; id++) {
        const char *s = tokenizer_token_str(t, id, &len);
        CHECK(s != NULL && len > 0);
        CHECK(tokenizer_token_id(t, s, len) == id);
        CHECK(tokenizer_token_bytes(t, id, &len) != NULL);
    }
}

/* decode(ids) is each id's bytes in order. */
static void check_decode(const Tokenizer *t, const int32_t *ids, size_t n, const TokBytes *out) {
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        size_t len;
        const uint8_t *b = tokenizer_token_bytes(t, ids[i], &len);
        CHECK(b && at + len <= out->n && memcmp(out->data + at, b, len) == 0);
        at += len;
    }
    CHECK(at == out->n);
}

static int count_word(void *ctx, const uint8_t *w, size_t n) {
    *(size_t *)ctx += n;
    return 0;
}

static void check_text(Tokenizer *t, const char *text, size_t len, int round_trip) {
    TokIds a = {0}, b = {0}, c = {0};
    TokBytes out = {0};
    SeekErr e;
    if (tokenizer_encode(t, text, len, false, &a, &e)) {
        fuzz_note("encode refused: %s", e.msg);
        check_message(&e);
        free(a.ids);
        return;
    }
    int32_t n = tokenizer_n_ids(t);
    for (size_t i = 0; i < a.n; i++) CHECK(a.ids[i] >= 0 && a.ids[i] < n);
    /* again, the words now from the cache: with BOS when there is one (BOS first, then the same
     * ids: one encoding checks both, a text's encoding being most of this target's time), else
     * without, and with BOS refused */
    if (tokenizer_bos_id(t) < 0) {
        CHECK(tokenizer_encode(t, text, len, false, &b, &e) == 0);
        CHECK(a.n == b.n && (a.n == 0 || memcmp(a.ids, b.ids, a.n * sizeof *a.ids) == 0));
        CHECK(tokenizer_encode(t, text, len, true, &c, &e) == -1);
        check_message(&e);
    } else {
        CHECK(tokenizer_encode(t, text, len, true, &c, &e) == 0);
        CHECK(c.n == a.n + 1 && c.ids[0] == tokenizer_bos_id(t));
        CHECK(a.n == 0 || memcmp(c.ids + 1, a.ids, a.n * sizeof *a.ids) == 0);
    }
    CHECK(tokenizer_decode(t, a.ids, a.n, &out, &e) == 0);
    check_decode(t, a.ids, a.n, &out);
    if (round_trip) CHECK(out.n == len && (len == 0 || memcmp(out.data, text, len) == 0));
    fuzz_note("encoded %zu bytes into %zu ids%s", len, a.n, round_trip ? ", round trip checked" : "");
    /* the words the pre-tokenizer cuts are at most the text (added tokens are cut out first) */
    size_t words = 0;
    if (tokenizer_pretokenize(t, text, len, count_word, &words, &e) == 0) CHECK(words <= len || !round_trip);
    else check_message(&e);
    free(a.ids);
    free(b.ids);
    free(c.ids);
    free(out.data);
}

/* The bytes as little-endian int32 ids: decoded when all are in range, refused otherwise. */
static void check_raw_ids(const Tokenizer *t, const uint8_t *data, size_t size) {
    size_t n = size / 4;
    int32_t *ids = calloc(n ? n : 1, sizeof *ids);
    CHECK(ids != NULL);
    int all_in = 1;
    for (size_t i = 0; i < n; i++) {
        ids[i] = (int32_t)fuzz_le32(data + 4 * i);
        all_in &= ids[i] >= 0 && ids[i] < tokenizer_n_ids(t);
    }
    TokBytes out = {0};
    SeekErr e;
    int rc = tokenizer_decode(t, ids, n, &out, &e);
    if (all_in) {
        CHECK(rc == 0);
        check_decode(t, ids, n, &out);
    } else {
        CHECK(rc == -1);
        check_message(&e);
    }
    free(out.data);
    free(ids);
}

/* ---- the shipped tokenizer ---- */

static Tokenizer *shipped(void) {
    static Tokenizer *tok;
    if (!tok) {
        const char *path = getenv("SEEK_FUZZ_TOKENIZER");
        if (!path) path = "tiny-models/seek-v3-mini/tokenizer.json";
        SeekErr e;
        if (tokenizer_load(&tok, path, &e)) {
            fprintf(stderr, "fuzz_tokenizer: %s (run from the repository root)\n", e.msg);
            exit(2);
        }
        json_error_t je;
        json_t *root = json_load_file(path, 0, &je);
        if (!root || !keeps_every_byte(root, tok)) {
            fprintf(stderr, "fuzz_tokenizer: %s does not keep every byte; the target checks the round trip with it\n", path);
            exit(2);
        }
        json_decref(root);
        check_facts(tok);
    }
    return tok;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    Tokenizer *ship = shipped();
    FuzzPart part[3];
    int np = fuzz_split(data, size, SEP, part, 3);
    const FuzzPart *text = &part[np - 1];
    check_text(ship, (const char *)text->p, text->n, 1);
    check_raw_ids(ship, text->p, text->n);
    if (np == 1) return 0;

    Tokenizer *t = (Tokenizer *)1;
    SeekErr e;
    if (tokenizer_load_json(&t, (const char *)part[0].p, part[0].n, np == 3 ? (const char *)part[1].p : NULL,
                            np == 3 ? part[1].n : 0, "tokenizer.json", &e)) {
        fuzz_note("load refused: %s", e.msg);
        check_message(&e);
        CHECK(t == NULL);
        return 0;
    }
    CHECK(t != NULL);
    check_facts(t);
    json_error_t je;
    json_t *root = json_loadb((const char *)part[0].p, part[0].n, JSON_REJECT_DUPLICATES, &je);
    CHECK(root != NULL);
    int rt = keeps_every_byte(root, t);
    json_decref(root);
    fuzz_note("loaded: %d ids, %d merges, %d added%s", tokenizer_n_ids(t), tokenizer_n_merges(t), tokenizer_n_added(t),
              rt ? ", keeps every byte" : "");
    check_text(t, (const char *)text->p, text->n, rt);
    check_raw_ids(t, text->p, text->n);
    tokenizer_free(t);
    return 0;
}
