/* test_pairs.c: prompt/response pairs for supervised fine-tuning (ref/pairs.h).
 *
 * Expected values come from outside the code under test: the targets rows are written out by hand
 * from the rule "position t predicts ids[t+1] when P <= t+1 < len" (transformers' labels with
 * -100 on the prompt and the padding, shifted), and the token ids of the example texts are the
 * shipped tokenizer's (tiny-models/seek-v3-mini/tokenizer.json; `seek tokenize --tokenizer ...
 * --text "Hi"` prints 79 112, BOS is 0, EOS 1, "<｜▁pad▁｜>" 2). The loader is checked for its
 * split, its per-epoch shuffle by seed and a bitwise restore; every hostile input must give a
 * one-line error naming the file and the line. Paths are relative to the repository root.
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

#include "pairs.h"

#define TOKENIZER "tiny-models/seek-v3-mini/tokenizer.json"
enum { BOS = 0, EOS = 1, PAD = 2, V = 4096 };

static Tokenizer *g_tok;
static char g_tmp[256];

static int group_setup(void **state) {
    SeekErr e;
    if (tokenizer_load(&g_tok, TOKENIZER, &e)) {
        fprintf(stderr, "%s\n", e.msg);
        return -1;
    }
    snprintf(g_tmp, sizeof g_tmp, "/tmp/seek-pairs-XXXXXX");
    return mkdtemp(g_tmp) ? 0 : -1;
}

static int group_teardown(void **state) {
    tokenizer_free(g_tok);
    char p[512];
    snprintf(p, sizeof p, "%s/pairs.jsonl", g_tmp);
    unlink(p);
    rmdir(g_tmp);
    return 0;
}

static PairOpts opts(int T, int add_bos, int eos, int pad) { return (PairOpts){T, add_bos, eos, pad, V}; }

static void parse_ok(PairData *d, const char *text, const PairOpts *o) {
    SeekErr e;
    if (pairs_parse(d, text, strlen(text), "t.jsonl", g_tok, o, &e)) fail_msg("%s", e.msg);
}

static void assert_ints(const int *got, const int *want, int n, const char *what) {
    for (int i = 0; i < n; i++)
        if (got[i] != want[i]) fail_msg("%s: position %d is %d, expected %d", what, i, got[i], want[i]);
}

/* A one-line message that says each of the given pieces. */
static void assert_msg(const SeekErr *e, const char *a, const char *b) {
    if (a && !strstr(e->msg, a)) fail_msg("error '%s' does not say '%s'", e->msg, a);
    if (b && !strstr(e->msg, b)) fail_msg("error '%s' does not say '%s'", e->msg, b);
    if (strchr(e->msg, '\n') || strchr(e->msg, '\r')) fail_msg("error '%s' is not one line", e->msg);
}

/* ---- the targets rule, by hand ---- */

static void test_targets_rule(void **state) {
    const int ids[5] = {10, 11, 12, 13, 14};
    int tg[5];
    /* P = 2, len = 5: t+1 in [2, 5) -> t = 1, 2, 3 */
    sft_targets_row(tg, ids, 2, 5, 5);
    assert_ints(tg, (int[]){-1, 12, 13, 14, -1}, 5, "P 2 len 5");
    /* P = 0 is P = 1: position 0 has nothing before it, so token 0 is never a target */
    sft_targets_row(tg, ids, 0, 5, 5);
    assert_ints(tg, (int[]){11, 12, 13, 14, -1}, 5, "P 0");
    sft_targets_row(tg, ids, 1, 5, 5);
    assert_ints(tg, (int[]){11, 12, 13, 14, -1}, 5, "P 1");
    /* a row of 3 real tokens and 2 padded: nothing at or after the last real token predicts */
    sft_targets_row(tg, ids, 2, 3, 5);
    assert_ints(tg, (int[]){-1, 12, -1, -1, -1}, 5, "len 3");
    sft_targets_row(tg, ids, 4, 5, 5);
    assert_ints(tg, (int[]){-1, -1, -1, 14, -1}, 5, "P 4");

    /* a batch (2, 4): row 0 P 1 len 4, row 1 P 2 len 3 */
    const int bids[8] = {5, 6, 7, 8, 20, 21, 22, 9};
    int btg[8], P[2] = {1, 2}, len[2] = {4, 3};
    SeekErr e;
    if (sft_targets(btg, bids, 2, 4, P, len, &e)) fail_msg("%s", e.msg);
    assert_ints(btg, (int[]){6, 7, 8, -1, -1, 22, -1, -1}, 8, "batch");

    /* refusals name the row and the value; nothing is written */
    struct { int P1, len1; const char *a, *b; } bad[] = {
        {3, 3, "sequence 1", "prompt length 3 leaves nothing to predict in 3 tokens"},
        {-1, 4, "sequence 1", "prompt length -1"},
        {0, 1, "sequence 1", "nothing to predict in 1 tokens"},
        {1, 1, "sequence 1", "nothing to predict"},
        {0, 0, "sequence 1", "length 0"},
        {0, 5, "sequence 1", "length 5, expected 1..4"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int pp[2] = {1, bad[i].P1}, ll[2] = {4, bad[i].len1};
        for (int j = 0; j < 8; j++) btg[j] = 777;
        assert_int_equal(sft_targets(btg, bids, 2, 4, pp, ll, &e), -1);
        assert_msg(&e, bad[i].a, bad[i].b);
        for (int j = 0; j < 8; j++) assert_int_equal(btg[j], 777);
    }
}

/* ---- tokens, BOS, EOS, padding ---- */

/* The rows of a two-example file: the first is the only training example, the second validation. */
static void two_rows(const char *text, const PairOpts *o, int *ids0, int *tg0, int *ids1, int *tg1, PairData *d) {
    PairLoader L;
    SeekErr e;
    parse_ok(d, text, o);
    assert_int_equal(d->n, 2);
    if (pairs_loader_init(&L, d, 0.5, 1, &e)) fail_msg("%s", e.msg);
    assert_int_equal(L.n_train, 1);
    assert_int_equal(L.n_val, 1);
    pairs_next(&L, 1, ids0, tg0);
    pairs_val(&L, 0, ids1, tg1);
    pairs_loader_free(&L);
}

static void test_bos_eos_padding(void **state) {
    int ids0[8], tg0[8], ids1[8], tg1[8];
    PairData d;

    /* BOS and EOS, T 8, pad 2: [BOS Hi( 79 112 ) there(417) EOS pad pad pad]; P 3, len 5 */
    PairOpts o = opts(8, 1, EOS, PAD);
    two_rows("{\"prompt\": \"Hi\", \"response\": \" there\"}\n"
             "{\"prompt\": \"\", \"response\": \"Hello world\", \"id\": 7}\n",
             &o, ids0, tg0, ids1, tg1, &d);
    assert_ints(ids0, (int[]){BOS, 79, 112, 417, EOS, PAD, PAD, PAD}, 8, "ids BOS/EOS");
    assert_ints(tg0, (int[]){-1, -1, 417, EOS, -1, -1, -1, -1}, 8, "targets BOS/EOS");
    /* an empty prompt with BOS: P 1, every response token and EOS predicted */
    assert_ints(ids1, (int[]){BOS, 79, 541, 118, 912, EOS, PAD, PAD}, 8, "ids empty prompt");
    assert_ints(tg1, (int[]){79, 541, 118, 912, EOS, -1, -1, -1}, 8, "targets empty prompt");
    assert_int_equal(d.prompt_len[0], 3);
    assert_int_equal(d.prompt_len[1], 1);
    assert_int_equal(d.n_tokens, 5 + 6);
    assert_int_equal(d.n_predicted, 2 + 5);
    assert_int_equal(d.longest, 6);
    assert_int_equal(d.line[0], 1);
    assert_int_equal(d.line[1], 2);
    pairs_free(&d);

    /* neither BOS nor EOS, T 6, pad 0: "The cat" 348 2989, " sat." 1431 53; P 2, len 4 */
    o = opts(6, 0, -1, 0);
    two_rows("{\"prompt\": \"The cat\", \"response\": \" sat.\"}\n"
             "{\"response\": \"Hello world\", \"prompt\": \"\"}",   /* no final newline; keys in any order */
             &o, ids0, tg0, ids1, tg1, &d);
    assert_ints(ids0, (int[]){348, 2989, 1431, 53, 0, 0}, 6, "ids plain");
    assert_ints(tg0, (int[]){-1, 1431, 53, -1, -1, -1}, 6, "targets plain");
    /* an empty prompt without BOS: P 0, the first token has nothing to be predicted from */
    assert_ints(ids1, (int[]){79, 541, 118, 912, 0, 0}, 6, "ids P 0");
    assert_ints(tg1, (int[]){541, 118, 912, -1, -1, -1}, 6, "targets P 0");
    assert_int_equal(d.prompt_len[1], 0);
    assert_int_equal(d.n_predicted, 2 + 3);
    pairs_free(&d);

    /* EOS only, an example exactly T long (no padding), added tokens in the text, CRLF lines,
     * blank lines skipped but counted */
    o = opts(5, 0, EOS, PAD);
    two_rows("\r\n{\"prompt\": \"Why?\", \"response\": \" Because.\"}\r\n\n  \t\n"
             "{\"prompt\": \"x\", \"response\": \"<｜Assistant｜>Sure\"}\r\n",
             &o, ids0, tg0, ids1, tg1, &d);
    assert_ints(ids0, (int[]){2201, 70, 2978, 53, EOS}, 5, "ids full row");
    assert_ints(tg0, (int[]){-1, 2978, 53, EOS, -1}, 5, "targets full row");
    assert_ints(ids1, (int[]){127, 4, 90, 531, EOS}, 5, "ids added token");
    assert_ints(tg1, (int[]){4, 90, 531, EOS, -1}, 5, "targets added token");
    assert_int_equal(d.line[0], 2);
    assert_int_equal(d.line[1], 5);
    pairs_free(&d);
}

/* ---- the loader: split, shuffle, padding and prompt never predicted ---- */

/* n examples "question i" / "answer i, ..." of varied lengths */
static char *many(int n) {
    size_t cap = (size_t)n * 128 + 1, o = 0;
    char *s = malloc(cap);
    for (int i = 0; i < n; i++)
        o += (size_t)snprintf(s + o, cap - o, "{\"prompt\": \"question %d%s\", \"response\": \"answer %d%s\"}\n", i,
                              i % 3 ? " please" : "", i, i % 4 ? ", and more" : "");
    return s;
}

/* Which example row (T) is: the one whose tokens it starts with, followed only by padding. */
static size_t which(const PairData *d, const int *row, int T) {
    size_t found = (size_t)-1;
    for (size_t e = 0; e < d->n; e++) {
        int len = (int)(d->start[e + 1] - d->start[e]), same = 1;
        for (int t = 0; t < T && same; t++) same = row[t] == (t < len ? d->ids[d->start[e] + t] : d->o.pad_id);
        if (same) {
            if (found != (size_t)-1) fail_msg("row matches examples %zu and %zu", found, e);
            found = e;
        }
    }
    if (found == (size_t)-1) fail_msg("row matches no example");
    return found;
}

/* Every position of a row: predicted exactly inside the response (and EOS), never on the prompt
 * or the padding, and then with the next token. */
static void check_row(const PairData *d, size_t e, const int *ids, const int *tg, int T) {
    int P = d->prompt_len[e], len = (int)(d->start[e + 1] - d->start[e]);
    for (int t = 0; t < T; t++) {
        if (t >= len) assert_int_equal(ids[t], d->o.pad_id);
        if (t + 1 < P || t + 1 >= len) assert_int_equal(tg[t], -1);   /* prompt, or padding */
        else assert_int_equal(tg[t], ids[t + 1]);
    }
}

static void take(PairLoader *L, int nb, int B, size_t *out) {
    int T = L->T;
    int *ids = malloc((size_t)B * T * sizeof(int)), *tg = malloc((size_t)B * T * sizeof(int));
    for (int b = 0; b < nb; b++) {
        pairs_next(L, B, ids, tg);
        for (int j = 0; j < B; j++) {
            size_t e = which(L->data, ids + (size_t)j * T, T);
            check_row(L->data, e, ids + (size_t)j * T, tg + (size_t)j * T, T);
            out[b * B + j] = e;
        }
    }
    free(ids);
    free(tg);
}

static void test_split_and_shuffle(void **state) {
    char *text = many(50);
    PairOpts o = opts(24, 1, EOS, PAD);
    PairData d;
    parse_ok(&d, text, &o);
    free(text);
    assert_int_equal(d.n, 50);
    PairLoader L, L2, L3;
    SeekErr e;
    if (pairs_loader_init(&L, &d, 0.1, 11, &e) || pairs_loader_init(&L2, &d, 0.1, 11, &e) ||
        pairs_loader_init(&L3, &d, 0.1, 12, &e))
        fail_msg("%s", e.msg);
    assert_int_equal(L.n_train, 45);
    assert_int_equal(L.n_val, 5);
    assert_int_equal(L.T, 24);
    /* validation: the last five examples, in file order */
    int ids[24], tg[24];
    for (size_t v = 0; v < L.n_val; v++) {
        pairs_val(&L, v, ids, tg);
        assert_int_equal(which(&d, ids, 24), 45 + v);
        check_row(&d, 45 + v, ids, tg, 24);
    }
    enum { B = 7, NB = 20 };   /* 140 rows: three epochs of 45 and 5 more */
    size_t a[NB * B], b[NB * B], c[NB * B];
    take(&L, NB, B, a);
    take(&L2, NB, B, b);
    take(&L3, NB, B, c);
    assert_memory_equal(a, b, sizeof a);         /* same seed, same stream */
    assert_true(memcmp(a, c, sizeof a) != 0);    /* another seed, another order */
    for (int ep = 0; ep < 3; ep++) {
        int seen[45] = {0};
        for (int i = 0; i < 45; i++) {
            size_t x = a[ep * 45 + i];
            assert_true(x < 45);                 /* never a validation example */
            seen[x]++;
        }
        for (int x = 0; x < 45; x++) assert_int_equal(seen[x], 1);   /* each once an epoch */
    }
    assert_true(memcmp(a, a + 45, 45 * sizeof(size_t)) != 0);   /* reshuffled */
    int sorted = 1;
    for (int i = 0; i < 45; i++) sorted &= a[i] == (size_t)i;
    assert_false(sorted);
    assert_int_equal(L.epoch, 3);
    assert_int_equal(L.pos, 5);
    /* the counts the trainer's start line gives */
    size_t pred = 0;
    for (size_t x = 0; x < 45; x++) pred += d.start[x + 1] - d.start[x] - (size_t)d.prompt_len[x];
    assert_int_equal(L.n_predicted_train, pred);
    pairs_loader_free(&L);
    pairs_loader_free(&L2);
    pairs_loader_free(&L3);

    /* the split's edges: at least one of each */
    struct { double vf; size_t n_val; } sp[] = {{0.0, 1}, {0.5, 25}, {0.99, 49}, {0.03, 1}};
    for (size_t i = 0; i < sizeof sp / sizeof sp[0]; i++) {
        if (pairs_loader_init(&L, &d, sp[i].vf, 1, &e)) fail_msg("%s", e.msg);
        assert_int_equal(L.n_val, sp[i].n_val);
        assert_int_equal(L.n_train, 50 - sp[i].n_val);
        pairs_loader_free(&L);
    }
    assert_int_equal(pairs_loader_init(&L, &d, 1.0, 1, &e), -1);
    assert_msg(&e, "t.jsonl", "validation fraction 1");
    pairs_free(&d);
}

static void test_restore(void **state) {
    char *text = many(30);
    PairOpts o = opts(24, 1, EOS, PAD);
    PairData d;
    parse_ok(&d, text, &o);
    free(text);
    SeekErr e;
    const int Bs[2] = {4, 9};   /* 9 divides the 27 training examples: a save exactly at an epoch's end */
    for (int bi = 0; bi < 2; bi++) {
        int B = Bs[bi], N = 20;
        size_t *straight = malloc((size_t)N * B * sizeof(size_t)), *split = malloc((size_t)N * B * sizeof(size_t));
        PairLoader L;
        if (pairs_loader_init(&L, &d, 0.1, 3, &e)) fail_msg("%s", e.msg);
        assert_int_equal(L.n_train, 27);
        take(&L, N, B, straight);
        pairs_loader_free(&L);
        const int ks[] = {0, 1, 3, 6, 7, 13, 19, 20};
        for (size_t ki = 0; ki < sizeof ks / sizeof ks[0]; ki++) {
            int k = ks[ki];
            PairLoader A, C;
            if (pairs_loader_init(&A, &d, 0.1, 3, &e)) fail_msg("%s", e.msg);
            take(&A, k, B, split);
            uint64_t ep = A.epoch, st = A.rng.state;
            size_t pos = A.pos;
            pairs_loader_free(&A);
            if (pairs_loader_init(&C, &d, 0.1, 3, &e)) fail_msg("%s", e.msg);
            if (pairs_restore(&C, ep, pos, st, &e)) fail_msg("B %d k %d: %s", B, k, e.msg);
            take(&C, N - k, B, split + (size_t)k * B);
            pairs_loader_free(&C);
            if (memcmp(straight, split, (size_t)N * B * sizeof(size_t)))
                fail_msg("B %d: %d batches, restore, %d more differ from %d straight", B, k, N - k, N);
        }
        free(straight);
        free(split);
    }
    /* a saved state from another seed, or a position past the data, is refused */
    PairLoader A, C;
    if (pairs_loader_init(&A, &d, 0.1, 3, &e) || pairs_loader_init(&C, &d, 0.1, 4, &e)) fail_msg("%s", e.msg);
    size_t buf[200];
    take(&A, 50, 4, buf);
    assert_int_equal(pairs_restore(&C, A.epoch, A.pos, A.rng.state, &e), -1);
    assert_msg(&e, "t.jsonl", "seed");
    assert_int_equal(pairs_restore(&C, 0, 28, C.rng.state, &e), -1);
    assert_msg(&e, "t.jsonl", "position 28");
    /* C is still usable after the refusals: it continues its own stream */
    PairLoader D;
    if (pairs_loader_init(&D, &d, 0.1, 4, &e)) fail_msg("%s", e.msg);
    size_t x[12], y[12];
    take(&C, 3, 4, x);
    take(&D, 3, 4, y);
    assert_memory_equal(x, y, sizeof x);
    pairs_loader_free(&A);
    pairs_loader_free(&C);
    pairs_loader_free(&D);
    pairs_free(&d);
}

/* ---- hostile input ---- */

#define GOOD "{\"prompt\": \"Hi\", \"response\": \" there\"}\n"

static void test_hostile(void **state) {
    /* the long line: a 1 MiB + 1 byte prompt on line 2 */
    size_t big_n = PAIRS_MAX_LINE_BYTES + 64;
    char *big = malloc(big_n + 1);
    size_t o = (size_t)snprintf(big, big_n, GOOD "{\"prompt\": \"");
    while (o < big_n - 40) big[o++] = 'a';
    snprintf(big + o, big_n + 1 - o, "\", \"response\": \"b\"}\n");
    /* line 12 too long for seq_len 16: eleven good lines first */
    char twelve[2048] = "";
    for (int i = 0; i < 11; i++) strcat(twelve, GOOD);
    strcat(twelve, "{\"prompt\": \" a a a a a a a a a a\", \"response\": \" a a a a a a\"}\n");

    struct {
        const char *text;
        size_t len;     /* 0: strlen */
        PairOpts o;
        const char *a, *b;
    } cases[] = {
        {GOOD "{oops}\n", 0, opts(16, 1, EOS, PAD), "t.jsonl: line 2: not valid JSON", NULL},
        {GOOD "{\"prompt\": \"a\", \"response\": \"b\"", 0, opts(16, 1, EOS, PAD), "line 2: not valid JSON", NULL},
        {GOOD "{\"prompt\": \"a\", \"response\": \"b\"} x\n", 0, opts(16, 1, EOS, PAD), "line 2: not valid JSON", NULL},
        {GOOD GOOD "[\"a\", \"b\"]\n", 0, opts(16, 1, EOS, PAD), "line 3: an array, expected an object", NULL},
        {"\"hi\"\n" GOOD, 0, opts(16, 1, EOS, PAD), "line 1: a string, expected an object", NULL},
        {"42\n", 0, opts(16, 1, EOS, PAD), "line 1: an integer, expected an object", NULL},
        {"null\n", 0, opts(16, 1, EOS, PAD), "line 1: null, expected an object", NULL},
        {GOOD "{\"response\": \"b\"}\n", 0, opts(16, 1, EOS, PAD), "line 2: no \"prompt\"", NULL},
        {GOOD "{\"prompt\": \"b\"}\n", 0, opts(16, 1, EOS, PAD), "line 2: no \"response\"", NULL},
        {"{}\n", 0, opts(16, 1, EOS, PAD), "line 1: no \"prompt\"", NULL},
        {GOOD "{\"prompt\": 3, \"response\": \"b\"}\n", 0, opts(16, 1, EOS, PAD), "line 2: \"prompt\" is an integer, expected a string", NULL},
        {GOOD "{\"prompt\": \"a\", \"response\": null}\n", 0, opts(16, 1, EOS, PAD), "line 2: \"response\" is null", NULL},
        {GOOD "{\"prompt\": \"a\", \"response\": [\"b\"]}\n", 0, opts(16, 1, EOS, PAD), "line 2: \"response\" is an array", NULL},
        {GOOD "{\"prompt\": \"a\", \"response\": \"\"}\n", 0, opts(16, 1, EOS, PAD), "line 2: \"response\" is empty", NULL},
        {GOOD "{\"prompt\": \"a\", \"response\": \"b\", \"weight\": 1}\n", 0, opts(16, 1, EOS, PAD), "line 2: unknown key \"weight\"", NULL},
        {GOOD "{\"prompt\": \"a\", \"prompt\": \"c\", \"response\": \"b\"}\n", 0, opts(16, 1, EOS, PAD), "line 2: not valid JSON", "duplicate"},
        /* a key with a newline and an escape sequence in it: the message stays one line */
        {GOOD "{\"a\\nb\\u001b[31m\": 1, \"prompt\": \"a\", \"response\": \"b\"}\n", 0, opts(16, 1, EOS, PAD), "line 2: unknown key \"a?b?[31m\"", NULL},
        {twelve, 0, opts(16, 1, EOS, PAD), "line 12: prompt + response is 18 tokens (prompt 11, BOS and EOS included), longer than seq_len 16", NULL},
        {twelve, 0, opts(16, 0, -1, PAD), "line 12: prompt + response is 16 tokens", NULL},  /* exactly T: fits */
        {GOOD "{\"prompt\": \"What\", \"response\": \" there\"}\n", 0, (PairOpts){16, 1, EOS, PAD, 1000}, "line 2: token id 1193 (position 1, prompt) is outside the model's vocabulary of 1000", NULL},
        {GOOD "{\"prompt\": \"a\", \"response\": \"What\"}\n", 0, (PairOpts){16, 1, EOS, PAD, 1000}, "line 2: token id 1193 (position 2, response)", NULL},
        {"", 0, opts(16, 1, EOS, PAD), "t.jsonl: no examples (the file is empty", NULL},
        {"\n \n\t\r\n\n", 0, opts(16, 1, EOS, PAD), "t.jsonl: no examples (only blank lines", NULL},
        {GOOD "{\"prompt\": \"\xff\xfe\", \"response\": \"b\"}\n", 0, opts(16, 1, EOS, PAD), "line 2: not valid JSON", NULL},
        {GOOD "{\"prompt\": \"\xc3\", \"response\": \"b\"}\n", 0, opts(16, 1, EOS, PAD), "line 2: not valid JSON", NULL},
        {GOOD "{\"prompt\": \"a\\u0000b\", \"response\": \"b\"}\n", 0, opts(16, 1, EOS, PAD), "line 2: not valid JSON", NULL},
        {GOOD "{\"prompt\": \"a\", \"response\": \"b\"}\0\n", sizeof(GOOD "{\"prompt\": \"a\", \"response\": \"b\"}\0\n") - 1,
         opts(16, 1, EOS, PAD), "line 2: not valid JSON", NULL},
        /* empty prompt, no BOS, one response token, no EOS: nothing to predict */
        {GOOD "{\"prompt\": \"\", \"response\": \"a\"}\n", 0, opts(16, 0, -1, PAD), "line 2: nothing to predict", NULL},
        /* blank lines count */
        {"\n\n" GOOD "\r\n{bad\n", 0, opts(16, 1, EOS, PAD), "line 5: not valid JSON", NULL},
        {big, 0, opts(16, 1, EOS, PAD), "line 2: ", "bytes, longer than the limit of 1048576"},
        /* options */
        {GOOD GOOD, 0, opts(1, 1, EOS, PAD), "seq_len 1, expected at least 2", NULL},
        {GOOD GOOD, 0, (PairOpts){16, 1, EOS, 5000, V}, "pad id 5000 is outside the model's vocabulary of 4096", NULL},
        {GOOD GOOD, 0, (PairOpts){16, 1, 4096, PAD, V}, "eos id 4096", NULL},
        {GOOD GOOD, 0, (PairOpts){16, 1, -2, PAD, V}, "eos id -2", NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        PairData d;
        SeekErr e = {{0}};
        size_t len = cases[i].len ? cases[i].len : strlen(cases[i].text);
        int rc = pairs_parse(&d, cases[i].text, len, "t.jsonl", g_tok, &cases[i].o, &e);
        if (cases[i].o.T == 16 && !cases[i].o.add_bos && cases[i].o.eos_id < 0 && cases[i].text == twelve) {
            /* the control: 10 + 6 tokens with neither BOS nor EOS is exactly seq_len */
            if (rc) fail_msg("case %zu: %s", i, e.msg);
            assert_int_equal(d.n, 12);
            assert_int_equal(d.longest, 16);
            pairs_free(&d);
            continue;
        }
        if (rc != -1) fail_msg("case %zu (%s): accepted", i, cases[i].a);
        assert_msg(&e, cases[i].a, cases[i].b);
        assert_null(d.ids);   /* nothing half-built is left */
        assert_int_equal(d.n, 0);
    }
    free(big);

    /* one example parses, but a run needs two */
    PairData d;
    PairLoader L;
    SeekErr e;
    PairOpts po = opts(16, 1, EOS, PAD);
    parse_ok(&d, "\n" GOOD "\n", &po);
    assert_int_equal(d.n, 1);
    assert_int_equal(pairs_loader_init(&L, &d, 0.1, 1, &e), -1);
    assert_msg(&e, "t.jsonl: 1 example;", "at least 2");
    pairs_free(&d);
}

/* ---- files ---- */

static void test_load_file(void **state) {
    char path[512];
    snprintf(path, sizeof path, "%s/pairs.jsonl", g_tmp);
    FILE *f = fopen(path, "w");
    fputs(GOOD "{\"prompt\": \"The cat\", \"response\": \" sat.\", \"id\": \"x\"}\n", f);
    fclose(f);
    PairData d;
    SeekErr e;
    PairOpts o = opts(8, 1, EOS, PAD);
    if (pairs_load(&d, path, g_tok, &o, &e)) fail_msg("%s", e.msg);
    assert_int_equal(d.n, 2);
    assert_string_equal(d.path, path);
    /* [0 79 112 417 1] P 3 and [0 348 2989 1431 53 1] P 3: 5 + 6 tokens, 2 + 3 predicted */
    assert_int_equal(d.n_tokens, 11);
    assert_int_equal(d.n_predicted, 5);
    assert_int_equal(d.longest, 6);
    assert_ints(d.ids, (int[]){0, 79, 112, 417, 1, 0, 348, 2989, 1431, 53, 1}, 11, "file ids");
    pairs_free(&d);

    f = fopen(path, "w");
    fputs(GOOD GOOD GOOD "{\"prompt\": \"a\"}\n", f);
    fclose(f);
    assert_int_equal(pairs_load(&d, path, g_tok, &o, &e), -1);
    assert_msg(&e, path, ": line 4: no \"response\"");

    assert_int_equal(pairs_load(&d, "/nonexistent/pairs.jsonl", g_tok, &o, &e), -1);
    assert_msg(&e, "/nonexistent/pairs.jsonl", "cannot open");
    assert_int_equal(pairs_load(&d, g_tmp, g_tok, &o, &e), -1);
    assert_msg(&e, g_tmp, "not a regular file");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_targets_rule),
        cmocka_unit_test(test_bos_eos_padding),
        cmocka_unit_test(test_split_and_shuffle),
        cmocka_unit_test(test_restore),
        cmocka_unit_test(test_hostile),
        cmocka_unit_test(test_load_file),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
