/* fuzz_util.h: what the file-reading fuzz targets share: the check that a refusal is one
 * printable line, a private temporary folder (made once per process under $TMPDIR or /tmp and
 * removed at exit) to write an input's files into, splitting an input on a separator, and
 * fuzz_model_small: whether a config's model stays under caps before anything allocates it, and
 * fuzz_note: a line on stderr when $SEEK_FUZZ_VERBOSE is set (what each seed did: accepted, or the
 * reason it was refused), silent otherwise.
 * Everything is static inline, so a target that uses a part only does not warn about the rest. */
#ifndef SEEK_FUZZ_UTIL_H
#define SEEK_FUZZ_UTIL_H

#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common.h"
#include "config.h"
#include "fuzz_check.h"
#include "../rm_tree.h"

/* A refusal's reason: not empty, NUL-terminated inside the buffer, no control byte or DEL (so
 * one line; bytes >= 0x80, UTF-8, are allowed). */
static inline void check_message(const SeekErr *e) {
    size_t n = strnlen(e->msg, sizeof e->msg);
    CHECK(n > 0 && n < sizeof e->msg);
    for (size_t i = 0; i < n; i++) CHECK((unsigned char)e->msg[i] >= 0x20 && e->msg[i] != 0x7f);
}

static inline void fuzz_note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static inline void fuzz_note(const char *fmt, ...) {
    static int verbose = -1;
    if (verbose < 0) verbose = getenv("SEEK_FUZZ_VERBOSE") != NULL;
    if (!verbose) return;
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

static char fuzz_tmp_root[4096];

static inline void fuzz_tmp_cleanup(void) {
    if (fuzz_tmp_root[0]) rm_tree(fuzz_tmp_root);
}

/* The process's private temporary folder (created on the first call; exits on failure). */
static inline const char *fuzz_tmpdir(void) {
    if (!fuzz_tmp_root[0]) {
        const char *t = getenv("TMPDIR");
        if (!t || !*t) t = "/tmp";
        snprintf(fuzz_tmp_root, sizeof fuzz_tmp_root, "%s/seek-fuzz-XXXXXX", t);
        if (!mkdtemp(fuzz_tmp_root)) {
            fprintf(stderr, "fuzz: cannot create a folder in %s: %s\n", t, strerror(errno));
            exit(2);
        }
        atexit(fuzz_tmp_cleanup);
    }
    return fuzz_tmp_root;
}

/* DIR/NAME into out (exits when it does not fit: the names are the target's own). */
static inline void fuzz_path(char *out, size_t cap, const char *dir, const char *name) {
    if ((size_t)snprintf(out, cap, "%s/%s", dir, name) >= cap) {
        fprintf(stderr, "fuzz: path too long: %s/%s\n", dir, name);
        exit(2);
    }
}

/* Writes n bytes to path, replacing what was there (exits on an I/O error: the folder is ours). */
static inline void fuzz_write(const char *path, const void *data, size_t n) {
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        fprintf(stderr, "fuzz: cannot write %s: %s\n", path, strerror(errno));
        exit(2);
    }
    const unsigned char *p = data;
    while (n > 0) {
        ssize_t k = write(fd, p, n);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) {
            fprintf(stderr, "fuzz: cannot write %s: %s\n", path, strerror(errno));
            exit(2);
        }
        p += k;
        n -= (size_t)k;
    }
    close(fd);
}

/* The first occurrence of sep (m > 0 bytes) in s[0..n), or NULL. */
static inline const unsigned char *fuzz_find(const unsigned char *s, size_t n, const char *sep, size_t m) {
    for (size_t i = 0; i + m <= n; i++)
        if (s[i] == (unsigned char)sep[0] && !memcmp(s + i, sep, m)) return s + i;
    return NULL;
}

/* Splits data[0..size) on sep into at most max parts (the last part keeps any further separators).
 * Returns the number of parts (>= 1). */
typedef struct {
    const unsigned char *p;
    size_t n;
} FuzzPart;

static inline int fuzz_split(const unsigned char *data, size_t size, const char *sep, FuzzPart *parts, int max) {
    size_t m = strlen(sep);
    int k = 0;
    while (k + 1 < max) {
        const unsigned char *at = fuzz_find(data, size, sep, m);
        if (!at) break;
        parts[k].p = data;
        parts[k].n = (size_t)(at - data);
        k++;
        size -= (size_t)(at - data) + m;
        data = at + m;
    }
    parts[k].p = data;
    parts[k].n = size;
    return k + 1;
}

/* Little-endian reads from the input's bytes. */
static inline uint64_t fuzz_le64(const unsigned char *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}
static inline uint32_t fuzz_le32(const unsigned char *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

/* An upper bound of the floats and table rows model_init would allocate for c, computed in double
 * (no overflow) from the table ref/model.c builds: embeddings, head, norms, attention, FFN and MoE
 * for every layer and MTP module. 1 when both stay under the caps. */
static inline int fuzz_model_small(const Config *c, double max_floats, double max_rows) {
    double C = c->C, fl = (double)c->V * C * 2 + C, rows = 3;
    int layers = c->L + c->mtp_depth;
    for (int l = 0; l < layers; l++) {
        double p = 2 * C;
        if (!c->mla) p += C * c->NH * c->HS * 2 + C * c->NKV * c->HS * 2;
        else {
            double q = (double)c->NH * (c->dn + c->dr);
            p += (double)c->q_lora_rank * C + c->q_lora_rank + q * (c->q_lora_rank ? c->q_lora_rank : C);
            p += ((double)c->kv_lora_rank + c->dr) * C + c->kv_lora_rank;
            p += (double)c->NH * (c->dn + c->dv) * c->kv_lora_rank + C * c->NH * c->dv;
        }
        p += 3 * C * c->I_ffn + (double)c->E * C * (1 + 3.0 * c->Hm) + c->E + 3 * C * c->Hm * c->Es;
        fl += p;
        rows += 12 + 3.0 * c->E + 4;
    }
    fl += (double)c->mtp_depth * (2 * C + 2 * C * C + C);
    return fl <= max_floats && rows <= max_rows;
}

#endif
