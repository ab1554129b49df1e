/* fuzz_pairs.c: fuzz target for the supervised fine-tuning pairs reader (ref/pairs.h).
 *
 * The input is a JSONL file's bytes. They are read three times by pairs_parse, under three sets
 * of options that reach different checks (BOS and EOS with a long row; neither, with a short row,
 * so "longer than seq_len" and "nothing to predict" are reached; a vocabulary of 300 below the
 * tokenizer's, so "outside the model's vocabulary" is), with the shipped tokenizer
 * tiny-models/seek-v3-mini/tokenizer.json ($SEEK_FUZZ_TOKENIZER overrides it; paths are relative
 * to the repository root). Besides the sanitizers, the target checks:
 *   - an error is one line of printable text (no control bytes);
 *   - an accepted file's examples respect the options (0 <= P, max(P,1) < len <= T, ids < vocab)
 *     and the counts add up;
 *   - every row the loader gives is the example then pad_id, and its targets follow the rule
 *     (predicted exactly where P <= t+1 < len, with ids[t+1]);
 *   - restoring a saved (epoch, pos, rng) continues with the same rows.
 * A failed check aborts, so libFuzzer (make fuzz) and the replay driver (tests/fuzz/replay.c,
 * run by tests/cli_fuzz.sh) both report it.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_check.h"
#include "pairs.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static Tokenizer *tokenizer(void) {
    static Tokenizer *tok;
    if (!tok) {
        const char *path = getenv("SEEK_FUZZ_TOKENIZER");
        SeekErr e;
        if (tokenizer_load(&tok, path ? path : "tiny-models/seek-v3-mini/tokenizer.json", &e)) {
            fprintf(stderr, "fuzz_pairs: %s (run from the repository root)\n", e.msg);
            exit(2);
        }
    }
    return tok;
}

static void check_message(const SeekErr *e) {
    size_t n = strnlen(e->msg, sizeof e->msg);
    CHECK(n > 0 && n < sizeof e->msg);
    for (size_t i = 0; i < n; i++) CHECK((unsigned char)e->msg[i] >= 0x20 && e->msg[i] != 0x7f);
}

static void check_data(const PairData *d, const PairOpts *o) {
    CHECK(d->n >= 1 && d->start[0] == 0 && d->start[d->n] == d->n_tokens);
    size_t pred = 0;
    int longest = 0;
    for (size_t i = 0; i < d->n; i++) {
        int P = d->prompt_len[i], len = (int)(d->start[i + 1] - d->start[i]);
        CHECK(d->start[i + 1] > d->start[i] && len <= o->T);
        CHECK(P >= 0 && (P > 1 ? P : 1) < len);
        if (o->add_bos) CHECK(d->ids[d->start[i]] == tokenizer_bos_id(tokenizer()));
        if (o->eos_id >= 0) CHECK(d->ids[d->start[i + 1] - 1] == o->eos_id);
        if (i) CHECK(d->line[i] > d->line[i - 1]);
        pred += (size_t)(len - (P > 1 ? P : 1));
        if (len > longest) longest = len;
    }
    for (size_t k = 0; k < d->n_tokens; k++) CHECK(d->ids[k] >= 0 && d->ids[k] < o->vocab);
    CHECK(pred == d->n_predicted && longest == d->longest);
}

/* A row (T) of the loader against example e. */
static void check_row(const PairData *d, size_t e, const int *ids, const int *tg, int T) {
    int P = d->prompt_len[e], len = (int)(d->start[e + 1] - d->start[e]);
    for (int t = 0; t < T; t++) {
        CHECK(ids[t] == (t < len ? d->ids[d->start[e] + t] : d->o.pad_id));
        CHECK(tg[t] == ((t + 1 >= P && t + 1 < len) ? ids[t + 1] : -1));
    }
}

static void exercise(const PairData *d, uint64_t seed) {
    PairLoader L, R;
    SeekErr e;
    if (pairs_loader_init(&L, d, 0.25, seed, &e)) {
        check_message(&e);
        CHECK(d->n < 2);
        return;
    }
    CHECK(L.n_train >= 1 && L.n_val >= 1 && L.n_train + L.n_val == d->n);
    const int B = 3, T = L.T;
    int *ids = malloc((size_t)B * T * sizeof(int)), *tg = malloc((size_t)B * T * sizeof(int));
    int *ids2 = malloc((size_t)B * T * sizeof(int)), *tg2 = malloc((size_t)B * T * sizeof(int));
    CHECK(ids && tg && ids2 && tg2);
    for (size_t v = 0; v < L.n_val; v++) {
        pairs_val(&L, v, ids, tg);
        check_row(d, L.n_train + v, ids, tg, T);
    }
    /* a little over one epoch, row by row, each against the example the order names */
    size_t rows = L.n_train + 3 < 200 ? L.n_train + 3 : 200;
    for (size_t k = 0; k < rows; k++) {
        pairs_next(&L, 1, ids, tg);
        CHECK(L.pos >= 1 && L.pos <= L.n_train);
        check_row(d, L.order[L.pos - 1], ids, tg, T);
    }
    /* restore: the same next batch */
    if (pairs_loader_init(&R, d, 0.25, seed, &e) == 0) {
        CHECK(pairs_restore(&R, L.epoch, L.pos, L.rng.state, &e) == 0);
        pairs_next(&L, B, ids, tg);
        pairs_next(&R, B, ids2, tg2);
        CHECK(memcmp(ids, ids2, (size_t)B * T * sizeof(int)) == 0);
        CHECK(memcmp(tg, tg2, (size_t)B * T * sizeof(int)) == 0);
        /* a wrong state is refused and leaves R usable */
        CHECK(pairs_restore(&R, L.epoch + 1, 0, L.rng.state ^ 1, &e) == -1);
        check_message(&e);
        pairs_loader_free(&R);
    }
    free(ids);
    free(tg);
    free(ids2);
    free(tg2);
    pairs_loader_free(&L);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static const PairOpts cfg[3] = {
        {64, 1, 1, 1, 4096},   /* T, add_bos, eos_id, pad_id, vocab */
        {12, 0, -1, 0, 4096},
        {24, 1, 1, 2, 300},
    };
    Tokenizer *tok = tokenizer();
    for (int c = 0; c < 3; c++) {
        PairData d;
        SeekErr e;
        if (pairs_parse(&d, (const char *)data, size, "fuzz.jsonl", tok, &cfg[c], &e)) {
            check_message(&e);
            CHECK(d.ids == NULL && d.n == 0);
            continue;
        }
        check_data(&d, &cfg[c]);
        exercise(&d, size + (uint64_t)c);
        pairs_free(&d);
    }
    return 0;
}
