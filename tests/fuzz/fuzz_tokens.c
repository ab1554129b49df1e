/* fuzz_tokens.c: fuzz target for the training data reader (ref/train_parts.h: data_load of a token
 * file, tokfile_read_header, and the window loader over what it reads: loader_init, loader_next,
 * loader_val, loader_restore).
 *
 * The input's bytes are written to a file (fuzz_util.h's private folder) and read by data_load as
 * a token file (tokenizer.h's format: magic "SEEKTOK\0", u32 version 1, u32 vocab size, u32 bytes
 * per token 2 or 4, u32 reserved, u64 token count, then the little-endian tokens) and as raw bytes.
 * The input's size picks the loader's window length T = 1 + size mod 16 and validation fraction
 * ((size / 16) mod 16) / 16.
 * Besides the sanitizers, the target checks:
 *   - the token file is accepted exactly when the format (checked here from the bytes) says so:
 *     the magic, version 1, 2 or 4 bytes a token (2 only for a vocabulary of at most 65536), a
 *     token count that fills the file exactly, a vocabulary of 1 .. INT32_MAX, and every token
 *     below it; then the tokens and vocabulary are the file's, and tokfile_read_header gives the
 *     header's fields; a refusal's reason is one printable line (check_message);
 *   - raw bytes are always accepted, one token a byte, vocabulary 256;
 *   - the loader (a model vocabulary of 200, below some files' ids) refuses exactly when there are
 *     fewer than 2 windows of T or a token of the windows is outside the vocabulary; otherwise
 *     n_val = max(1, floor(W x fraction)) (at most W - 1) and n_train = W - n_val; every epoch
 *     visits each training window once; loader_next gives the windows in that order and loader_val
 *     the last n_val windows; loader_restore of a saved (epoch, pos, rng) continues with the same
 *     windows, and a wrong rng state or position is refused and leaves the loader where it was.
 * A failed check aborts, so libFuzzer (make fuzz) and the replay driver (tests/fuzz/replay.c, run
 * by tests/cli_fuzz.sh) both report it.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "tokenizer.h"
#include "train_parts.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define VOCAB_LIMIT 200   /* the model's vocabulary the loader checks against */
#define MAX_STEPS 512     /* loader_next calls per input, at most */

/* The format's verdict on the bytes, from tokenizer.h's description. */
static int valid_tokfile(const uint8_t *d, size_t n, uint32_t *vocab, unsigned *width, uint64_t *count) {
    if (n < TOKFILE_HEADER_BYTES || memcmp(d, "SEEKTOK\0", 8)) return 0;
    uint32_t version = fuzz_le32(d + 8);
    *vocab = fuzz_le32(d + 12);
    *width = fuzz_le32(d + 16);
    *count = fuzz_le64(d + 24);
    if (version != 1 || (*width != 2 && *width != 4)) return 0;
    if (*width == 2 && *vocab > 65536) return 0;
    if (*vocab == 0 || *vocab > (uint32_t)INT32_MAX) return 0;
    uint64_t body = n - TOKFILE_HEADER_BYTES;
    if (body % *width || body / *width != *count) return 0;
    for (uint64_t i = 0; i < *count; i++) {
        const uint8_t *q = d + TOKFILE_HEADER_BYTES + i * *width;
        uint32_t id = *width == 2 ? (uint32_t)(q[0] | (q[1] << 8)) : fuzz_le32(q);
        if (id >= *vocab) return 0;
    }
    return 1;
}

static void check_window(const TokenData *d, int T, size_t w, const int *ids) {
    for (int t = 0; t < T; t++) CHECK(ids[t] == d->tokens[w * (size_t)T + (size_t)t]);
}

/* The row loader_next gave is window order[pos], a training window. */
static size_t row_window(const TokenData *d, int T, const Loader *L, const int *ids) {
    size_t w = L->order[L->pos - 1];
    CHECK(w < L->n_train);
    check_window(d, T, w, ids);
    return w;
}

static void check_loader(const TokenData *d, int T, double frac, uint64_t seed) {
    Loader L;
    SeekErr e;
    size_t W = d->n / (size_t)T;
    int in_vocab = 1;
    for (size_t i = 0; i < W * (size_t)T; i++) in_vocab &= d->tokens[i] >= 0 && d->tokens[i] < VOCAB_LIMIT;
    int rc = loader_init(&L, d, T, frac, seed, VOCAB_LIMIT, &e);
    if (W < 2 || !in_vocab) {
        CHECK(rc == -1);
        check_message(&e);
        return;
    }
    CHECK(rc == 0);
    size_t nv = (size_t)((double)W * frac);
    if (nv < 1) nv = 1;
    if (nv > W - 1) nv = W - 1;
    CHECK(L.n_val == nv && L.n_train == W - nv && L.T == T);
    int *ids = malloc((size_t)T * sizeof(int)), *ids2 = malloc((size_t)T * sizeof(int));
    char *seen = calloc(L.n_train, 1);
    CHECK(ids && ids2 && seen);
    for (size_t v = 0; v < L.n_val; v++) {
        loader_val(&L, v, ids);
        check_window(d, T, L.n_train + v, ids);
    }
    /* epoch 0 and the start of epoch 1, one window a call; each epoch visits every window once */
    size_t steps = L.n_train + 3 < MAX_STEPS ? L.n_train + 3 : MAX_STEPS;
    uint64_t epoch = 0;
    size_t in_epoch = 0;
    for (size_t k = 0; k < steps; k++) {
        loader_next(&L, 1, ids);
        CHECK(L.pos >= 1 && L.pos <= L.n_train);
        if (L.epoch != epoch) {
            CHECK(L.epoch == epoch + 1 && in_epoch == L.n_train && L.pos == 1);
            epoch = L.epoch;
            in_epoch = 0;
            memset(seen, 0, L.n_train);
        }
        size_t w = row_window(d, T, &L, ids);
        CHECK(!seen[w]);
        seen[w] = 1;
        in_epoch++;
    }
    /* a saved position continues identically; a wrong one is refused and changes nothing */
    Loader R, F;
    CHECK(loader_init(&R, d, T, frac, seed, VOCAB_LIMIT, &e) == 0);
    CHECK(loader_init(&F, d, T, frac, seed, VOCAB_LIMIT, &e) == 0);
    CHECK(loader_restore(&R, L.epoch, L.pos, L.rng.state ^ 1, &e) == -1);
    check_message(&e);
    CHECK(loader_restore(&R, L.epoch, L.n_train + 1, L.rng.state, &e) == -1);
    check_message(&e);
    CHECK(R.epoch == 0 && R.pos == 0 && R.rng.state == F.rng.state);
    CHECK(memcmp(R.order, F.order, R.n_train * sizeof *R.order) == 0);
    loader_free(&F);
    CHECK(loader_restore(&R, L.epoch, L.pos, L.rng.state, &e) == 0);
    for (int k = 0; k < 3; k++) {
        loader_next(&L, 1, ids);
        loader_next(&R, 1, ids2);
        CHECK(memcmp(ids, ids2, (size_t)T * sizeof(int)) == 0 && L.epoch == R.epoch && L.pos == R.pos);
    }
    loader_free(&R);
    free(ids);
    free(ids2);
    free(seen);
    loader_free(&L);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char path[4096];
    fuzz_path(path, sizeof path, fuzz_tmpdir(), "tokens.bin");
    fuzz_write(path, data, size);
    int T = 1 + (int)(size % 16);
    double frac = (double)((size / 16) % 16) / 16.0;   /* 0 .. 15/16 */
    uint64_t seed = size;

    /* as a token file */
    uint32_t vocab = 0;
    unsigned width = 0;
    uint64_t count = 0;
    int valid = valid_tokfile(data, size, &vocab, &width, &count);
    TokenData d;
    SeekErr e;
    int rc = data_load(&d, path, 0, &e);
    CHECK(rc == (valid ? 0 : -1));
    if (rc) {
        fuzz_note("token file refused: %s", e.msg);
        check_message(&e);
    } else {
        fuzz_note("token file accepted: %zu tokens, vocab %u, T %d", d.n, d.vocab, T);
        CHECK(d.n == count && d.vocab == vocab);
        for (size_t i = 0; i < d.n; i++) {
            const uint8_t *q = data + TOKFILE_HEADER_BYTES + i * width;
            CHECK((uint32_t)d.tokens[i] == (width == 2 ? (uint32_t)(q[0] | (q[1] << 8)) : fuzz_le32(q)));
        }
        TokFileHeader h;
        CHECK(tokfile_read_header(path, &h, &e) == 0);
        CHECK(h.version == 1 && h.vocab_size == vocab && h.dtype_bytes == width && h.n_tokens == count);
        check_loader(&d, T, frac, seed);
        data_free(&d);
    }

    /* as raw bytes */
    CHECK(data_load(&d, path, 1, &e) == 0);
    CHECK(d.n == size && d.vocab == 256);
    for (size_t i = 0; i < size; i++) CHECK(d.tokens[i] == data[i]);
    check_loader(&d, T, frac, seed);
    data_free(&d);
    return 0;
}
