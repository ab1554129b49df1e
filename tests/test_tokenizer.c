/* test_tokenizer.c: the byte-level BPE tokenizer against Hugging Face `tokenizers` goldens.
 *
 *   - goldens: tests/fixtures/tokenizer/goldens.json holds, for a varied text set, the ids that
 *     HF `tokenizers` gives with DeepSeek-V3's own tokenizer.json (fetched by
 *     scripts/fetch_deepseek_tokenizer.sh into build-data/, never committed), with a tokenizer
 *     trained by seek.c, and with variants of it that exercise every supported component. Exact
 *     equality is required. A missing DeepSeek file is a failure, not a skip.
 *   - round trip decode(encode(s)) == s on random bytes and random UTF-8;
 *   - both merge spellings ("a b" and ["a","b"]) give the same tokenizer;
 *   - hostile tokenizer.json files are rejected with an error naming the component;
 *   - training is deterministic (reproduces the committed trained tokenizer.json byte for byte);
 *   - training with split_digits writes HF's Digits pre-tokenizer and learns no multi-digit token;
 *   - token files: header written and checked.
 * Paths are relative to the repository root (tests/run.sh runs from there); SEEK_DEEPSEEK_TOKENIZER
 * overrides the DeepSeek file's location.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "common.h"
#include "tokenizer.h"

#define FIX "tests/fixtures/tokenizer/"

static const char *deepseek_path(void) {
    const char *p = getenv("SEEK_DEEPSEEK_TOKENIZER");
    return p ? p : "build-data/deepseek-v3/tokenizer.json";
}

static Tokenizer *load_or_fail(const char *path) {
    SeekErr err = {{0}};
    Tokenizer *t = NULL;
    if (tokenizer_load(&t, path, &err)) fail_msg("%s (for the DeepSeek-V3 file run: bash scripts/fetch_deepseek_tokenizer.sh)", err.msg);
    return t;
}

static char *read_all(const char *path, size_t *n) {
    SeekErr err = {{0}};
    char *s = NULL;
    if (read_text_file(path, 64u << 20, &s, n, &err)) fail_msg("%s", err.msg);
    return s;
}

/* Byte-level alphabet: a bijection, with GPT-2's well-known values. */
static void test_byte_level_map(void **state) {
    (void)state;
    assert_int_equal(byte_level_char(' '), 0x120);    /* 'Ġ' */
    assert_int_equal(byte_level_char('\n'), 0x10a);   /* 'Ċ' */
    assert_int_equal(byte_level_char('!'), '!');
    assert_int_equal(byte_level_char(0xad), 0x143);
    int seen[512] = {0};
    for (int b = 0; b < 256; b++) {
        uint32_t c = byte_level_char((uint8_t)b);
        assert_true(c < 512);
        assert_int_equal(seen[c]++, 0);
        assert_int_equal(byte_level_byte(c), b);
    }
    assert_int_equal(byte_level_byte(0x20), -1);
    assert_int_equal(byte_level_byte(0x144), -1);
}

/* The path of a golden tokenizer by name. */
static void golden_path(const char *name, char *out, size_t cap) {
    if (!strcmp(name, "deepseek-v3")) snprintf(out, cap, "%s", deepseek_path());
    else if (!strcmp(name, "trained")) snprintf(out, cap, FIX "trained/tokenizer.json");
    else snprintf(out, cap, FIX "%s.json", name);
}

static void test_goldens(void **state) {
    (void)state;
    json_error_t je;
    json_t *g = json_load_file(FIX "goldens.json", JSON_ALLOW_NUL, &je);
    if (!g) fail_msg("%sgoldens.json: %s (generate with scripts/tokenizer_goldens.py)", FIX, je.text);
    json_t *texts = json_object_get(g, "texts"), *ids = json_object_get(g, "ids");
    assert_true(json_is_array(texts) && json_is_object(ids));
    assert_true(json_object_size(ids) >= 7);
    const char *name;
    json_t *per;
    int bad_total = 0;
    json_object_foreach(ids, name, per) {
        char path[512];
        golden_path(name, path, sizeof path);
        Tokenizer *t = load_or_fail(path);
        size_t n = json_array_size(per), good = 0;   /* ids for the first n texts */
        assert_true(n > 0 && n <= json_array_size(texts));
        for (size_t i = 0; i < n; i++) {
            json_t *tx = json_array_get(texts, i), *want = json_array_get(per, i);
            TokIds got = {0};
            SeekErr err = {{0}};
            if (tokenizer_encode(t, json_string_value(tx), json_string_length(tx), false, &got, &err))
                fail_msg("%s: text %zu: %s", name, i, err.msg);
            bool same = got.n == json_array_size(want);
            for (size_t k = 0; same && k < got.n; k++)
                same = got.ids[k] == json_integer_value(json_array_get(want, k));
            if (same) good++;
            else if (bad_total++ < 10) {
                fprintf(stderr, "MISMATCH %s text %zu \"%.60s\": got", name, i, json_string_value(tx));
                for (size_t k = 0; k < got.n && k < 24; k++) fprintf(stderr, " %d", got.ids[k]);
                fprintf(stderr, " | want");
                for (size_t k = 0; k < json_array_size(want) && k < 24; k++)
                    fprintf(stderr, " %lld", (long long)json_integer_value(json_array_get(want, k)));
                fprintf(stderr, "\n");
            }
            free(got.ids);
        }
        printf("goldens %-22s %zu/%zu texts equal to Hugging Face tokenizers\n", name, good, n);
        tokenizer_free(t);
    }
    json_decref(g);
    assert_int_equal(bad_total, 0);
}

/* transformers with add_bos_token gives BOS + ids; tokenizer_encode(add_bos) must agree. */
static void test_bos(void **state) {
    (void)state;
    Tokenizer *t = load_or_fail(deepseek_path());
    assert_true(tokenizer_add_bos(t));
    assert_false(tokenizer_add_eos(t));
    assert_int_equal(tokenizer_bos_id(t), 0);
    assert_int_equal(tokenizer_eos_id(t), 1);
    assert_int_equal(tokenizer_n_ids(t), 128815);
    assert_int_equal(tokenizer_n_vocab(t), 128000);
    assert_int_equal(tokenizer_n_merges(t), 127741);
    assert_int_equal(tokenizer_n_added(t), 818);
    assert_true(tokenizer_is_special(t, 0));
    assert_false(tokenizer_is_special(t, 128803));   /* <｜User｜> is an ordinary added token */
    TokIds a = {0};
    SeekErr err = {{0}};
    assert_int_equal(tokenizer_encode(t, "Hi", 2, true, &a, &err), 0);
    assert_true(a.n >= 2);
    assert_int_equal(a.ids[0], 0);
    free(a.ids);
    tokenizer_free(t);
    /* a tokenizer without tokenizer_config.json knows no BOS */
    t = load_or_fail(FIX "variant_llama3.json");
    a = (TokIds){0};
    assert_int_equal(tokenizer_encode(t, "Hi", 2, true, &a, &err), -1);
    assert_non_null(strstr(err.msg, "BOS"));
    free(a.ids);
    tokenizer_free(t);
}

/* decode(encode(s)) == s for random bytes and random UTF-8 (tokenizers that keep every byte). */
static void put_utf8(uint8_t *p, size_t *n, uint32_t c) {
    if (c < 0x80) p[(*n)++] = (uint8_t)c;
    else if (c < 0x800) { p[(*n)++] = (uint8_t)(0xc0 | (c >> 6)); p[(*n)++] = (uint8_t)(0x80 | (c & 0x3f)); }
    else if (c < 0x10000) {
        p[(*n)++] = (uint8_t)(0xe0 | (c >> 12)); p[(*n)++] = (uint8_t)(0x80 | ((c >> 6) & 0x3f));
        p[(*n)++] = (uint8_t)(0x80 | (c & 0x3f));
    } else {
        p[(*n)++] = (uint8_t)(0xf0 | (c >> 18)); p[(*n)++] = (uint8_t)(0x80 | ((c >> 12) & 0x3f));
        p[(*n)++] = (uint8_t)(0x80 | ((c >> 6) & 0x3f)); p[(*n)++] = (uint8_t)(0x80 | (c & 0x3f));
    }
}

static void roundtrip_one(Tokenizer *t, const uint8_t *s, size_t n, const char *what) {
    TokIds ids = {0};
    TokBytes out = {0};
    SeekErr err = {{0}};
    if (tokenizer_encode(t, (const char *)s, n, false, &ids, &err)) fail_msg("%s: encode: %s", what, err.msg);
    if (tokenizer_decode(t, ids.ids, ids.n, &out, &err)) fail_msg("%s: decode: %s", what, err.msg);
    if (out.n != n || memcmp(out.data, s, n)) fail_msg("%s: decode(encode(s)) != s (%zu bytes in, %zu out)", what, n, out.n);
    free(ids.ids);
    free(out.data);
}

static void test_roundtrip(void **state) {
    (void)state;
    char path[512];
    const char *names[] = {"deepseek-v3", "trained", "variant_llama3", "variant_merged_next"};
    static const uint32_t ranges[][2] = {
        {0x00, 0x7f}, {0x20, 0x7e}, {0x80, 0x7ff}, {0x300, 0x36f}, {0x3040, 0x30ff}, {0x4e00, 0x9fff},
        {0xac00, 0xd7a3}, {0xe000, 0xfffd}, {0x10000, 0x10ffff}, {0x1f300, 0x1faff}, {0x2000, 0x206f}};
    for (int k = 0; k < 4; k++) {
        golden_path(names[k], path, sizeof path);
        Tokenizer *t = load_or_fail(path);
        Rng r;
        rng_seed(&r, 42 + (uint64_t)k);
        uint8_t buf[1024];
        for (int it = 0; it < 300; it++) {
            size_t n = rng_u32(&r) % 200;
            for (size_t i = 0; i < n; i++) buf[i] = (uint8_t)rng_u32(&r);   /* random bytes */
            roundtrip_one(t, buf, n, names[k]);
            n = 0;                                                          /* random UTF-8 */
            size_t m = rng_u32(&r) % 120;
            for (size_t i = 0; i < m; i++) {
                const uint32_t *rg = ranges[rng_u32(&r) % (sizeof ranges / sizeof ranges[0])];
                uint32_t c = rg[0] + rng_u32(&r) % (rg[1] - rg[0] + 1);
                if (c >= 0xd800 && c <= 0xdfff) c = 0xfffd;
                put_utf8(buf, &n, c);
            }
            roundtrip_one(t, buf, n, names[k]);
        }
        /* added tokens, invalid UTF-8 and NUL bytes mixed in */
        const char mixed[] = "a\xff<\xef\xbd\x9c" "begin\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c>\xc3\x28\0z\xf0\x9f\x98";
        roundtrip_one(t, (const uint8_t *)mixed, sizeof mixed - 1, names[k]);
        tokenizer_free(t);
    }
}

/* "a b" strings and ["a","b"] pairs are the same merges. */
static void test_merge_spellings(void **state) {
    (void)state;
    json_error_t je;
    json_t *j = json_load_file(FIX "trained/tokenizer.json", 0, &je);
    assert_non_null(j);
    json_t *merges = json_object_get(json_object_get(j, "model"), "merges");
    size_t i;
    json_t *m;
    json_array_foreach(merges, i, m) {
        char buf[512];
        snprintf(buf, sizeof buf, "%s %s", json_string_value(json_array_get(m, 0)), json_string_value(json_array_get(m, 1)));
        json_array_set_new(merges, i, json_string(buf));
    }
    char *s = json_dumps(j, 0);
    json_decref(j);
    SeekErr err = {{0}};
    Tokenizer *a = load_or_fail(FIX "trained/tokenizer.json"), *b = NULL;
    if (tokenizer_load_json(&b, s, strlen(s), NULL, 0, "strings", &err)) fail_msg("%s", err.msg);
    free(s);
    size_t n;
    char *corpus = read_all(FIX "corpus.txt", &n);
    TokIds x = {0}, y = {0};
    assert_int_equal(tokenizer_encode(a, corpus, n, false, &x, &err), 0);
    assert_int_equal(tokenizer_encode(b, corpus, n, false, &y, &err), 0);
    assert_int_equal(x.n, y.n);
    assert_memory_equal(x.ids, y.ids, x.n * sizeof *x.ids);
    assert_true(x.n < n * 3 / 4);   /* the merges do compress */
    free(x.ids); free(y.ids); free(corpus);
    tokenizer_free(a); tokenizer_free(b);
}

/* Hostile or unsupported tokenizer.json: rejected, the message names the component. */
#define TOK_HEAD "{\"normalizer\":null,\"pre_tokenizer\":{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"use_regex\":true},"
static void test_bad_json(void **state) {
    (void)state;
    static const struct { const char *json, *want; } cases[] = {
        {"not json", "invalid JSON"},
        {"[]", "JSON object"},
        {"{\"a\":1,\"a\":2}", "invalid JSON"},
        {"{\"model\":{\"vocab\":{\"a\":0},\"merges\":[]}}", "pre_tokenizer"},
        {TOK_HEAD "\"model\":{\"type\":\"WordPiece\",\"vocab\":{\"a\":0}}}", "model: type \"WordPiece\" is not supported"},
        {TOK_HEAD "\"model\":{\"vocab\":{\"a\":0,\"b\":5},\"merges\":[]}}", "out of range"},
        {TOK_HEAD "\"model\":{\"vocab\":{\"a\":0,\"b\":-1},\"merges\":[]}}", "out of range"},
        {TOK_HEAD "\"model\":{\"vocab\":{\"a\":0,\"b\":0},\"merges\":[]}}", "given to two tokens"},
        {TOK_HEAD "\"model\":{\"vocab\":{\"a\":0,\"b\":\"1\"},\"merges\":[]}}", "expected an integer id"},
        {TOK_HEAD "\"model\":{\"vocab\":{\"a\":0,\"\":1},\"merges\":[]}}", "empty token"},
        {TOK_HEAD "\"model\":{\"vocab\":{},\"merges\":[]}}", "model.vocab: empty"},
        {TOK_HEAD "\"model\":{\"vocab\":{\"a\":0,\"b\":1,\"ab\":2},\"merges\":[\"a c\"]}}", "\"c\" is not in the vocabulary"},
        {TOK_HEAD "\"model\":{\"vocab\":{\"a\":0,\"b\":1},\"merges\":[\"a b\"]}}", "merged token \"ab\""},
        {TOK_HEAD "\"model\":{\"vocab\":{\"a\":0,\"b\":1,\"ab\":2},\"merges\":[\"ab\"]}}", "expected \"left right\""},
        {TOK_HEAD "\"model\":{\"vocab\":{\"a\":0,\"b\":1,\"ab\":2},\"merges\":[[\"a\"]]}}", "model.merges[0]"},
        {TOK_HEAD "\"model\":{\"vocab\":{\"a\":0},\"merges\":[],\"byte_fallback\":true}}", "byte_fallback"},
        {TOK_HEAD "\"model\":{\"vocab\":{\"a\":0},\"merges\":[],\"dropout\":0.1}}", "dropout"},
        {TOK_HEAD "\"model\":{\"vocab\":{\"a\":0},\"merges\":[],\"continuing_subword_prefix\":\"##\"}}", "continuing_subword_prefix"},
        {TOK_HEAD "\"model\":{\"vocab\":{\"a\":0},\"merges\":[],\"unk_token\":\"<unk>\"}}", "unk_token"},
        {TOK_HEAD "\"added_tokens\":[{\"id\":5,\"content\":\"<s>\"}],\"model\":{\"vocab\":{\"a\":0},\"merges\":[]}}", "would give it id 1"},
        {TOK_HEAD "\"added_tokens\":[{\"id\":1,\"content\":\"\"}],\"model\":{\"vocab\":{\"a\":0},\"merges\":[]}}", "non-empty"},
        {TOK_HEAD "\"added_tokens\":[{\"id\":1,\"content\":\"x\"},{\"id\":2,\"content\":\"x\"}],\"model\":{\"vocab\":{\"a\":0},\"merges\":[]}}", "listed twice"},
        {TOK_HEAD "\"added_tokens\":[{\"id\":1,\"content\":\"x\",\"special\":\"yes\"}],\"model\":{\"vocab\":{\"a\":0},\"merges\":[]}}", "special: expected a boolean"},
        {TOK_HEAD "\"added_tokens\":{},\"model\":{\"vocab\":{\"a\":0},\"merges\":[]}}", "added_tokens: expected an array"},
        {"{\"normalizer\":{\"type\":\"Lowercase\"},\"pre_tokenizer\":{\"type\":\"ByteLevel\"},\"model\":{\"vocab\":{\"a\":0}}}", "normalizer: type \"Lowercase\""},
        {"{\"pre_tokenizer\":{\"type\":\"Whitespace\"},\"model\":{\"vocab\":{\"a\":0}}}", "pre_tokenizer: type \"Whitespace\""},
        {"{\"pre_tokenizer\":{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"Split\",\"pattern\":{\"Regex\":\"(\"},\"behavior\":\"Isolated\"},{\"type\":\"ByteLevel\"}]},\"model\":{\"vocab\":{\"a\":0}}}", "does not compile"},
        {"{\"pre_tokenizer\":{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"Split\",\"pattern\":{\"Regex\":\"a\"},\"behavior\":\"Sideways\"},{\"type\":\"ByteLevel\"}]},\"model\":{\"vocab\":{\"a\":0}}}", "behavior: \"Sideways\""},
        {"{\"pre_tokenizer\":{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"Split\",\"pattern\":{\"Regex\":\"a\"},\"behavior\":\"Isolated\"}]},\"model\":{\"vocab\":{\"a\":0}}}", "does not end in ByteLevel"},
        {"{\"pre_tokenizer\":{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"ByteLevel\"},{\"type\":\"Split\",\"pattern\":{\"Regex\":\"a\"},\"behavior\":\"Isolated\"}]},\"model\":{\"vocab\":{\"a\":0}}}", "must be the last"},
        {TOK_HEAD "\"decoder\":{\"type\":\"WordPiece\"},\"model\":{\"vocab\":{\"a\":0}}}", "decoder: type \"WordPiece\""},
        {TOK_HEAD "\"truncation\":{\"max_length\":5},\"model\":{\"vocab\":{\"a\":0}}}", "truncation"},
        {TOK_HEAD "\"model\":{\"vocab\":{\"\\u0000\":0}}}", "invalid JSON"},
        {TOK_HEAD "\"model\":{\"vocab\":{\"\\ud800\":0}}}", "invalid JSON"},
        {TOK_HEAD "\"model\":{\"vocab\":{\"\xff\":0}}}", "invalid JSON"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        SeekErr err = {{0}};
        Tokenizer *t = NULL;
        int r = tokenizer_load_json(&t, cases[i].json, strlen(cases[i].json), NULL, 0, "bad.json", &err);
        if (r != -1 || t) fail_msg("case %zu was accepted: %s", i, cases[i].json);
        if (!strstr(err.msg, cases[i].want)) fail_msg("case %zu: error '%s' does not say '%s'", i, err.msg, cases[i].want);
        if (strchr(err.msg, '\n')) fail_msg("case %zu: error is not one line", i);
    }
    /* tokens that look like SentencePiece byte tokens are ordinary strings here */
    const char *ok = TOK_HEAD "\"model\":{\"vocab\":{\"<0x-1>\":0,\"<0xZZ>\":1,\"a\":2}}}";
    SeekErr err = {{0}};
    Tokenizer *t = NULL;
    assert_int_equal(tokenizer_load_json(&t, ok, strlen(ok), NULL, 0, "ok.json", &err), 0);
    /* decoding never reads out of bounds: ids outside [0, n) are errors */
    int32_t bad[] = {2, 3}, neg[] = {-1};
    TokBytes out = {0};
    assert_int_equal(tokenizer_decode(t, bad, 2, &out, &err), -1);
    assert_non_null(strstr(err.msg, "out of range [0, 3)"));
    assert_int_equal(tokenizer_decode(t, neg, 1, &out, &err), -1);
    /* bytes with no vocabulary entry are dropped, as HF does without an unk token */
    TokIds ids = {0};
    assert_int_equal(tokenizer_encode(t, "abc", 3, false, &ids, &err), 0);
    assert_int_equal(ids.n, 1);
    assert_int_equal(ids.ids[0], 2);
    free(ids.ids);
    free(out.data);
    tokenizer_free(t);
    /* a bad tokenizer_config.json */
    assert_int_equal(tokenizer_load_json(&t, ok, strlen(ok), "{\"bos_token\":\"<s>\"}", 19, "cfg", &err), -1);
    assert_non_null(strstr(err.msg, "bos_token"));
}

/* A valid file truncated anywhere fails cleanly. */
static void test_truncated(void **state) {
    (void)state;
    size_t n;
    char *s = read_all(FIX "variant_gpt2.json", &n);
    for (size_t cut = 0; cut < n; cut += n / 97 + 1) {
        SeekErr err = {{0}};
        Tokenizer *t = NULL;
        assert_int_equal(tokenizer_load_json(&t, s, cut, NULL, 0, "cut.json", &err), -1);
        assert_null(t);
    }
    free(s);
}

/* Training reproduces the committed trained tokenizer byte for byte. */
static void test_train_deterministic(void **state) {
    (void)state;
    static const char *const special[] = {
        "<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>", "<｜▁pad▁｜>", "<｜User｜>", "<｜Assistant｜>", "<think>", "</think>"};
    static const bool is_special[] = {true, true, true, false, false, false, false};
    BpeTrainConfig cfg = {.vocab_size = 600, .special = special, .special_is_special = is_special, .n_special = 7};
    size_t n, m;
    char *corpus = read_all(FIX "corpus.txt", &n);
    char *want = read_all(FIX "trained/tokenizer.json", &m);
    char *json = NULL;
    SeekErr err = {{0}};
    if (bpe_train(corpus, n, &cfg, &json, NULL, NULL, &err)) fail_msg("%s", err.msg);
    assert_int_equal(strlen(json), m);
    assert_memory_equal(json, want, m);
    /* too small a vocabulary is an error */
    cfg.vocab_size = 100;
    char *j2 = NULL;
    assert_int_equal(bpe_train(corpus, n, &cfg, &j2, NULL, NULL, &err), -1);
    assert_non_null(strstr(err.msg, "too small"));
    free(json); free(corpus); free(want);
}

/* --split-digits: a digit-heavy corpus, trained with and without. */
static char *digit_corpus(size_t *n) {
    size_t cap = 1u << 20, len = 0;
    char *s = malloc(cap);
    assert_non_null(s);
    uint32_t x = 12345;
    for (int i = 0; i < 3000; i++) {
        int v[3];
        for (int k = 0; k < 3; k++) { x = x * 1664525u + 1013904223u; v[k] = (int)(x >> 8) % (k == 1 ? 100 : 1000); }
        len += (size_t)snprintf(s + len, cap - len, "What is %d + %d? It is %d. Then %d.\n", v[0], v[1], v[0] + v[1], v[2]);
    }
    *n = len;
    return s;
}

static Tokenizer *train_digits(const char *corpus, size_t n, bool split, char **json) {
    static const char *const special[] = {"<s>", "</s>"};
    BpeTrainConfig cfg = {.vocab_size = 400, .special = special, .n_special = 2, .split_digits = split};
    SeekErr err = {{0}};
    Tokenizer *t = NULL;
    if (bpe_train(corpus, n, &cfg, json, NULL, NULL, &err)) fail_msg("%s", err.msg);
    if (tokenizer_load_json(&t, *json, strlen(*json), NULL, 0, "trained", &err)) fail_msg("%s", err.msg);
    return t;
}

/* The most ASCII digits any one vocabulary entry holds. */
static int max_digits_per_token(const Tokenizer *t) {
    int most = 0;
    for (int32_t id = 0; id < tokenizer_n_ids(t); id++) {
        size_t n;
        const uint8_t *b = tokenizer_token_bytes(t, id, &n);
        int d = 0;
        for (size_t i = 0; i < n; i++) d += b[i] >= '0' && b[i] <= '9';
        if (d > most) most = d;
    }
    return most;
}

typedef struct { char w[16][16]; int n; } Words;
static int collect_word(void *ctx, const uint8_t *w, size_t n) {
    Words *ws = ctx;
    if (ws->n >= 16 || n >= 16) return -1;
    memcpy(ws->w[ws->n], w, n);
    ws->w[ws->n++][n] = 0;
    return 0;
}

static void test_train_split_digits(void **state) {
    (void)state;
    size_t n;
    char *corpus = digit_corpus(&n);
    char *js = NULL, *jd = NULL;
    Tokenizer *ts = train_digits(corpus, n, true, &js);
    Tokenizer *td = train_digits(corpus, n, false, &jd);
    /* the file: Hugging Face's Digits in place of the \p{N}{1,3} split, the rest as before */
    json_error_t je;
    json_t *rs = json_loads(js, 0, &je), *rd = json_loads(jd, 0, &je);
    assert_non_null(rs);
    assert_non_null(rd);
    json_t *ps = json_object_get(json_object_get(rs, "pre_tokenizer"), "pretokenizers");
    json_t *pd = json_object_get(json_object_get(rd, "pre_tokenizer"), "pretokenizers");
    assert_int_equal(json_array_size(ps), 4);
    assert_int_equal(json_array_size(pd), 4);
    json_t *want = json_pack("{s:s, s:b}", "type", "Digits", "individual_digits", 1);
    assert_true(json_equal(json_array_get(ps, 0), want));
    assert_string_equal(json_string_value(json_object_get(json_object_get(json_array_get(pd, 0), "pattern"), "Regex")), "\\p{N}{1,3}");
    for (size_t i = 1; i < 4; i++) assert_true(json_equal(json_array_get(ps, i), json_array_get(pd, i)));
    json_decref(want); json_decref(rs); json_decref(rd);

    /* pre-tokenization: every \p{N} character alone (Nd, No, Nl, not only ASCII), as HF's
     * char::is_numeric split with Isolated; without the flag, runs of up to three */
    const char *txt = "12³٤٥ x7Ⅻ";
    static const char *const want_s[] = {"1", "2", "³", "٤", "٥", " x", "7", "Ⅻ"};
    static const char *const want_d[] = {"12³", "٤٥", " x", "7Ⅻ"};
    Words w = {0};
    SeekErr err = {{0}};
    assert_int_equal(tokenizer_pretokenize(ts, txt, strlen(txt), collect_word, &w, &err), 0);
    assert_int_equal(w.n, 8);
    for (int i = 0; i < 8; i++) assert_string_equal(w.w[i], want_s[i]);
    w.n = 0;
    assert_int_equal(tokenizer_pretokenize(td, txt, strlen(txt), collect_word, &w, &err), 0);
    assert_int_equal(w.n, 4);
    for (int i = 0; i < 4; i++) assert_string_equal(w.w[i], want_d[i]);

    /* the vocabulary: no entry with two digits; without the flag the corpus teaches some */
    assert_int_equal(max_digits_per_token(ts), 1);
    assert_true(max_digits_per_token(td) >= 2);
    /* training stops when no pair is left: the corpus's few words are whole tokens by then */
    assert_true(tokenizer_n_merges(ts) > 0 && tokenizer_n_ids(ts) < 400);
    assert_int_equal(tokenizer_n_ids(td), 400);

    /* encoding: one token per digit, and the round trip */
    const char *q = "What is 347 + 86?";
    TokIds ids = {0};
    TokBytes out = {0};
    assert_int_equal(tokenizer_encode(ts, q, strlen(q), false, &ids, &err), 0);
    char digits[16];
    int nd = 0;
    for (size_t i = 0; i < ids.n; i++) {
        size_t l;
        const uint8_t *b = tokenizer_token_bytes(ts, ids.ids[i], &l);
        if (l == 1 && b[0] >= '0' && b[0] <= '9') digits[nd++] = (char)b[0];
    }
    digits[nd] = 0;
    assert_string_equal(digits, "34786");
    assert_int_equal(tokenizer_decode(ts, ids.ids, ids.n, &out, &err), 0);
    assert_int_equal(out.n, strlen(q));
    assert_memory_equal(out.data, q, out.n);
    free(ids.ids); free(out.data);
    tokenizer_free(ts); tokenizer_free(td);
    free(js); free(jd); free(corpus);
}

static void test_tokfile(void **state) {
    (void)state;
    char path[] = "/tmp/seek_tokfile_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    int32_t ids[] = {0, 1, 599, 7};
    SeekErr err = {{0}};
    TokFileHeader h;
    assert_int_equal(tokfile_write(path, ids, 4, 600, &err), 0);
    assert_int_equal(tokfile_read_header(path, &h, &err), 0);
    assert_int_equal(h.version, 1);
    assert_int_equal(h.vocab_size, 600);
    assert_int_equal(h.dtype_bytes, 2);
    assert_int_equal(h.n_tokens, 4);
    assert_int_equal(tokfile_write(path, ids, 4, 129280, &err), 0);
    assert_int_equal(tokfile_read_header(path, &h, &err), 0);
    assert_int_equal(h.dtype_bytes, 4);
    assert_int_equal(tokfile_write(path, ids, 4, 500, &err), -1);   /* 599 >= 500 */
    FILE *f = fopen(path, "ab");
    fputc(0, f);
    fclose(f);
    assert_int_equal(tokfile_read_header(path, &h, &err), -1);
    assert_non_null(strstr(err.msg, "header says 4 tokens"));
    f = fopen(path, "wb");
    fputs("garbage", f);
    fclose(f);
    assert_int_equal(tokfile_read_header(path, &h, &err), -1);
    unlink(path);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_byte_level_map),
        cmocka_unit_test(test_goldens),
        cmocka_unit_test(test_bos),
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_merge_spellings),
        cmocka_unit_test(test_bad_json),
        cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_train_deterministic),
        cmocka_unit_test(test_train_split_digits),
        cmocka_unit_test(test_tokfile),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
