/* data.c: the token data loader (train_parts.h): token files or raw bytes, cut into windows,
 * split into training and validation, and shuffled per epoch.
 *
 * Input. A token file (tokenizer.h: magic "SEEKTOK", version, vocab size, 2- or 4-byte
 * little-endian ids, its header checked by tokfile_read_header, which also matches the file size
 * against the token count), or raw bytes where every byte is a token id 0..255 (vocab 256).
 * The file is read with pread after an fstat size check (never mmapped); sizes go through checked
 * arithmetic; every id must be below the vocabulary the file declares. Errors name the file.
 *
 * Windows. The stream of n tokens is cut into W = floor(n / T) non-overlapping windows of T
 * tokens; window w is tokens[w·T .. w·T + T) (the trailing n mod T tokens are unused). The last
 *   n_val = max(1, floor(W · val_fraction))
 * windows are the validation set, windows 0 .. n_train−1 (n_train = W − n_val >= 1) are training.
 *
 * Order. Epoch e visits every training window exactly once, in the order of a Fisher-Yates
 * shuffle of 0..n_train−1 driven by an Rng seeded from (seed, e) alone:
 *   rng_seed(&r, seed + e · 0x9E3779B97F4A7C15)
 * so any epoch's order can be recomputed without replaying the earlier ones. L->rng holds that
 * stream's state after the shuffle; loader_restore recomputes the epoch's order and checks that it
 * arrives at the saved state (a different seed, T or data gives another state and is refused).
 * loader_next takes windows order[pos], order[pos+1], ...; when pos reaches n_train the next
 * call starts epoch e+1 (so a saved (epoch, pos = n_train) resumes exactly there).
 */
#include "train_parts.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tokenizer.h"

#define DATA_CHUNK ((size_t)1 << 20)   /* bytes read and decoded at a time */

static uint32_t le32(const unsigned char *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

/* Reads `count` tokens of `width` bytes (1, 2 or 4, little-endian) from fd at `offset` into dst,
 * checking each id against vocab. */
static int read_ids(int fd, const char *path, uint64_t offset, size_t count, unsigned width, uint32_t vocab,
                    int32_t *dst, SeekErr *err) {
    unsigned char *buf = malloc(DATA_CHUNK);
    if (!buf) return seek_fail(err, "%s: out of memory", path);
    size_t per = DATA_CHUNK / width, done = 0;
    while (done < count) {
        size_t k = count - done < per ? count - done : per;
        if (pread_exact(fd, buf, k * width, offset + (uint64_t)done * width, path, err)) {
            free(buf);
            return -1;
        }
        for (size_t i = 0; i < k; i++) {
            const unsigned char *q = buf + i * width;
            uint32_t id = width == 1 ? q[0] : width == 2 ? (uint32_t)(q[0] | (q[1] << 8)) : le32(q);
            if (id >= vocab) {
                free(buf);
                return seek_fail(err, "%s: token %u at position %zu is outside the file's vocabulary of %u", path, id,
                                 done + i, vocab);
            }
            dst[done + i] = (int32_t)id;
        }
        done += k;
    }
    free(buf);
    return 0;
}

int data_load(TokenData *d, const char *path, int raw_bytes, SeekErr *err) {
    memset(d, 0, sizeof *d);
    uint64_t offset = 0, count;
    unsigned width = 1;
    uint32_t vocab = 256;
    if (!raw_bytes) {
        TokFileHeader h;
        if (tokfile_read_header(path, &h, err)) return -1;
        if (h.vocab_size == 0 || h.vocab_size > (uint32_t)INT32_MAX)
            return seek_fail(err, "%s: vocab size %u, expected 1 to %d", path, h.vocab_size, INT32_MAX);
        offset = TOKFILE_HEADER_BYTES;
        count = h.n_tokens;
        width = h.dtype_bytes;
        vocab = h.vocab_size;
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return seek_fail(err, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return seek_fail(err, "%s: not a regular file", path);
    }
    size_t bytes;
    if (raw_bytes) count = (uint64_t)st.st_size;
    /* the header was checked against the size; check again in case the file changed since */
    if (!ck_mul((size_t)count, width, &bytes) || !ck_add(bytes, (size_t)offset, &bytes) || bytes != (uint64_t)st.st_size) {
        close(fd);
        return seek_fail(err, "%s: %llu tokens of %u bytes do not match the file size of %lld bytes", path,
                         (unsigned long long)count, width, (long long)st.st_size);
    }
    size_t alloc;
    if (!ck_mul((size_t)count ? (size_t)count : 1, sizeof(int32_t), &alloc)) {
        close(fd);
        return seek_fail(err, "%s: %llu tokens is too many", path, (unsigned long long)count);
    }
    d->tokens = malloc(alloc);
    d->path = strdup(path);
    if (!d->tokens || !d->path) {
        close(fd);
        data_free(d);
        return seek_fail(err, "%s: out of memory for %llu tokens", path, (unsigned long long)count);
    }
    if (read_ids(fd, path, offset, (size_t)count, width, vocab, d->tokens, err)) {
        close(fd);
        data_free(d);
        return -1;
    }
    close(fd);
    d->n = (size_t)count;
    d->vocab = vocab;
    return 0;
}

void data_free(TokenData *d) {
    free(d->tokens);
    free(d->path);
    memset(d, 0, sizeof *d);
}

/* A uniform integer in [0, n), n >= 1, by rejection on 64 bits drawn as two u32 (no modulo bias). */
static uint64_t rng_below(Rng *r, uint64_t n) {
    uint64_t limit = UINT64_MAX - UINT64_MAX % n;   /* accept x < limit: a multiple of n values */
    for (;;) {
        uint64_t x = ((uint64_t)rng_u32(r) << 32) | rng_u32(r);
        if (x < limit) return x % n;
    }
}

/* Epoch e's order: 0..n_train−1 shuffled by the (seed, e) stream; leaves the stream in *r. */
void epoch_order(size_t *order, size_t n, uint64_t seed, uint64_t epoch, Rng *r) {
    rng_seed(r, seed + epoch * 0x9E3779B97F4A7C15ull);
    for (size_t i = 0; i < n; i++) order[i] = i;
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)rng_below(r, i);
        size_t tmp = order[i - 1];
        order[i - 1] = order[j];
        order[j] = tmp;
    }
}

int loader_init(Loader *L, const TokenData *d, int T, double val_fraction, uint64_t seed, int vocab_limit,
                SeekErr *err) {
    memset(L, 0, sizeof *L);
    const char *path = d->path ? d->path : "(token data)";
    if (T <= 0) return seek_fail(err, "%s: window length T = %d, expected a positive number", path, T);
    if (!(val_fraction >= 0.0 && val_fraction < 1.0))
        return seek_fail(err, "%s: validation fraction %g, expected a number in [0, 1)", path, val_fraction);
    size_t W = d->n / (size_t)T;
    if (W < 2)
        return seek_fail(err, "%s: %zu tokens make %zu windows of %d; need at least 2 (one to train on, one to validate)",
                         path, d->n, W, T);
    for (size_t i = 0; i < W * (size_t)T; i++)
        if (d->tokens[i] < 0 || d->tokens[i] >= vocab_limit)
            return seek_fail(err, "%s: token %d at position %zu is outside the model's vocabulary of %d", path,
                             d->tokens[i], i, vocab_limit);
    double nv = floor((double)W * val_fraction);
    size_t n_val = nv < 1.0 ? 1 : (size_t)nv;
    if (n_val >= W) n_val = W - 1;   /* at least one training window */
    L->data = d;
    L->T = T;
    L->n_val = n_val;
    L->n_train = W - n_val;
    L->seed = seed;
    L->order = malloc(L->n_train * sizeof *L->order);
    if (!L->order) return seek_fail(err, "%s: out of memory for %zu windows", path, L->n_train);
    epoch_order(L->order, L->n_train, seed, 0, &L->rng);
    return 0;
}

void loader_free(Loader *L) {
    free(L->order);
    memset(L, 0, sizeof *L);
}

static void copy_window(const Loader *L, size_t w, int *ids) {
    const int32_t *src = L->data->tokens + w * (size_t)L->T;
    for (int t = 0; t < L->T; t++) ids[t] = src[t];
}

void loader_next(Loader *L, int B, int *ids) {
    for (int b = 0; b < B; b++) {
        if (L->pos >= L->n_train) {   /* epoch end: the next epoch's order */
            L->epoch++;
            L->pos = 0;
            epoch_order(L->order, L->n_train, L->seed, L->epoch, &L->rng);
        }
        copy_window(L, L->order[L->pos++], ids + (size_t)b * L->T);
    }
}

void loader_val(const Loader *L, size_t i, int *ids) { copy_window(L, L->n_train + i, ids); }

int epoch_restore(size_t *order, size_t n, uint64_t seed, uint64_t *cur_epoch, size_t *cur_pos, Rng *cur_rng,
                  uint64_t epoch, size_t pos, uint64_t rng_state, const char *name, const char *items, const char *hint,
                  SeekErr *err) {
    if (pos > n) return seek_fail(err, "%s: saved loader position %zu is past the %zu training %s (%s?)", name, pos, n, items, hint);
    Rng r;
    epoch_order(order, n, seed, epoch, &r);
    if (r.state != rng_state) {
        const uint64_t expected = r.state; /* before r is reused below */
        /* leave the loader at a consistent state: its own epoch's order */
        epoch_order(order, n, seed, *cur_epoch, &r);
        return seek_fail(err, "%s: saved loader state %016llx does not match epoch %llu of these %s with seed %llu "
                              "(expected %016llx): %s or seed?",
                         name, (unsigned long long)rng_state, (unsigned long long)epoch, items, (unsigned long long)seed,
                         (unsigned long long)expected, hint);
    }
    *cur_rng = r;
    *cur_epoch = epoch;
    *cur_pos = pos;
    return 0;
}

int loader_restore(Loader *L, uint64_t epoch, size_t pos, uint64_t rng_state, SeekErr *err) {
    return epoch_restore(L->order, L->n_train, L->seed, &L->epoch, &L->pos, &L->rng, epoch, pos, rng_state,
                         L->data && L->data->path ? L->data->path : "(token data)", "windows", "other data or T", err);
}
