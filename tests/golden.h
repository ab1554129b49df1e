/* golden.h: helpers shared by the test programs that compare against goldens (safetensors files
 * written by transformers scripts) or against another backend. Include after <cmocka.h>: a
 * missing tensor or a wrong dtype fails the running test. */
#ifndef SEEK_TESTS_GOLDEN_H
#define SEEK_TESTS_GOLDEN_H

#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "safetensors.h"

/* The raw bytes of tensor `name` (malloc'd), which must have dtype `want`; *numel when not NULL. */
static inline void *xload(const StSet *s, const char *name, StDtype want, uint64_t *numel) {
    const StFile *f;
    const StTensor *t = stset_find(s, name, &f);
    if (!t) fail_msg("golden tensor '%s' missing", name);
    assert_int_equal(t->dtype, want);
    void *buf = malloc((size_t)(t->end - t->begin) + 8);
    SeekErr e;
    if (st_read_raw(f, t, buf, &e)) fail_msg("%s", e.msg);
    if (numel) *numel = t->numel;
    return buf;
}

/* An I64 tensor of token ids as ints (malloc'd); its first two dimensions when d0/d1 are not NULL. */
static inline int *load_ids(const StSet *s, const char *name, uint64_t *numel, uint64_t *d0, uint64_t *d1) {
    const StTensor *t = stset_find(s, name, NULL);
    if (!t) fail_msg("golden tensor '%s' missing", name);
    int64_t *raw = xload(s, name, ST_I64, numel);
    int *ids = malloc((*numel + 1) * sizeof(int));
    for (uint64_t i = 0; i < *numel; i++) ids[i] = (int)raw[i];
    free(raw);
    if (d0) *d0 = t->shape[0];
    if (d1) *d1 = t->shape[1];
    return ids;
}

/* max|a − b| / max|b|, infinite when NaN positions differ */
static inline double rel_err(const float *a, const float *b, size_t n) {
    double md = 0, mb = 0;
    for (size_t i = 0; i < n; i++) {
        if (isnan(a[i]) != isnan(b[i])) return INFINITY;
        md = fmax(md, fabs((double)a[i] - b[i]));
        mb = fmax(mb, fabs((double)b[i]));
    }
    return mb > 0 ? md / mb : md;
}

#endif
