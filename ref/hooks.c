/* hooks.c: the activation cache. See hooks.h. */
#include "hooks.h"

#include <fnmatch.h>
#include <stdlib.h>
#include <string.h>

void actcache_init(ActCache *c) { memset(c, 0, sizeof *c); }

void actcache_add_pattern(ActCache *c, const char *glob) {
    char **p = realloc(c->patterns, (c->n_patterns + 1) * sizeof *p);
    if (!p) { c->failed = 1; return; }
    c->patterns = p;
    c->patterns[c->n_patterns] = strdup(glob);
    if (!c->patterns[c->n_patterns]) { c->failed = 1; return; }
    c->n_patterns++;
}

void actcache_clear(ActCache *c) {
    for (size_t i = 0; i < c->n; i++) free(c->items[i].data);
    c->n = 0;
    c->failed = 0;
}

void actcache_free(ActCache *c) {
    actcache_clear(c);
    free(c->items);
    for (size_t i = 0; i < c->n_patterns; i++) free(c->patterns[i]);
    free(c->patterns);
    memset(c, 0, sizeof *c);
}

const Activation *actcache_get(const ActCache *c, const char *name) {
    for (size_t i = 0; c && i < c->n; i++)
        if (!strcmp(c->items[i].name, name)) return &c->items[i];
    return NULL;
}

int hook_wants(const ActCache *c, const char *name) {
    if (!c) return 0;
    if (c->n_patterns == 0) return 1;
    for (size_t i = 0; i < c->n_patterns; i++)
        if (fnmatch(c->patterns[i], name, 0) == 0) return 1;
    return 0;
}

/* Appends `add` (shape s, same as a's except along tdim) to activation a along axis tdim:
 * the tensor is viewed as (outer, a_t * inner) and (outer, add_t * inner). */
static int append_along(Activation *a, const float *add, const size_t *s) {
    int td = a->tdim;
    size_t outer = 1, inner = 1;
    for (int i = 0; i < td; i++) outer *= a->shape[i];
    for (int i = td + 1; i < a->ndim; i++) inner *= a->shape[i];
    size_t old_t = a->shape[td], add_t = s[td], new_t = old_t + add_t;
    float *d = malloc(outer * new_t * inner * sizeof(float) + sizeof(float));
    if (!d) return -1;
    for (size_t o = 0; o < outer; o++) {
        memcpy(d + o * new_t * inner, a->data + o * old_t * inner, old_t * inner * sizeof(float));
        memcpy(d + (o * new_t + old_t) * inner, add + o * add_t * inner, add_t * inner * sizeof(float));
    }
    free(a->data);
    a->data = d;
    a->shape[td] = new_t;
    a->numel = outer * new_t * inner;
    return 0;
}

void hook_point(ActCache *c, const char *name, float *x, int ndim, const size_t *shape, int tdim) {
    if (c && c->edit) c->edit(c->edit_ctx, name, x, ndim, shape);
    if (!hook_wants(c, name)) return;
    size_t numel = 1;
    for (int i = 0; i < ndim; i++) numel *= shape[i];
    for (size_t i = 0; i < c->n; i++) {
        Activation *a = &c->items[i];
        if (strcmp(a->name, name)) continue;
        /* Same stage again: append along the token axis when the other axes agree. */
        int same = a->ndim == ndim && tdim >= 0 && a->tdim == tdim;
        for (int d = 0; same && d < ndim; d++)
            if (d != tdim && a->shape[d] != shape[d]) same = 0;
        if (same) {
            if (append_along(a, x, shape)) c->failed = 1;
            return;
        }
        float *d = malloc(numel * sizeof(float) + sizeof(float));
        if (!d) { c->failed = 1; return; }
        memcpy(d, x, numel * sizeof(float));
        free(a->data);
        a->data = d;
        a->ndim = ndim;
        for (int k = 0; k < ndim; k++) a->shape[k] = shape[k];
        a->tdim = tdim;
        a->numel = numel;
        return;
    }
    if (c->n == c->cap) {
        size_t cap = c->cap ? 2 * c->cap : 64;
        Activation *it = realloc(c->items, cap * sizeof *it);
        if (!it) { c->failed = 1; return; }
        c->items = it;
        c->cap = cap;
    }
    Activation *a = &c->items[c->n];
    memset(a, 0, sizeof *a);
    snprintf(a->name, sizeof a->name, "%s", name);
    a->ndim = ndim;
    for (int k = 0; k < ndim; k++) a->shape[k] = shape[k];
    a->tdim = tdim;
    a->numel = numel;
    a->data = malloc(numel * sizeof(float) + sizeof(float));
    if (!a->data) { c->failed = 1; return; }
    memcpy(a->data, x, numel * sizeof(float));
    c->n++;
}
