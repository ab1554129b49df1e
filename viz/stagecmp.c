/* stagecmp.c: the error measures and limits of one hook stage (stagecmp.h). */
#include "stagecmp.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "tolerances.h"

StageErr stage_error(const Activation *want, const Activation *got) {
    StageErr e = {0};
    size_t n = want->numel;
    for (size_t i = 0; i < n; i++) {
        float a = want->data[i], b = got->data[i];
        int same = isnan(a) ? isnan(b) : isinf(a) ? (isinf(b) && (a > 0) == (b > 0)) : isfinite(b);
        if (!same && e.bad_pos++ == 0) e.first_bad = i;
    }
    double sd = 0, sw = 0;
    for (size_t i = 0; i < n; i++) {
        double a = want->data[i], b = got->data[i];
        if (!isfinite(a) || !isfinite(b)) continue;
        double d = fabs(b - a);
        if (d > e.max_abs) e.max_abs = d;
        if (fabs(a) > e.max_want) e.max_want = fabs(a);
        sd += d * d;
        sw += a * a;
    }
    e.rel = e.max_want > 0 ? e.max_abs / e.max_want : e.max_abs;
    e.nmse = sw > 0 ? sd / sw : sd;
    return e;
}

int same_shape(const Activation *a, const Activation *b) {
    if (a->ndim != b->ndim) return 0;
    for (int d = 0; d < a->ndim; d++)
        if (a->shape[d] != b->shape[d]) return 0;
    return 1;
}

Limits stage_limits(const Activation *want, const ActCache *base) {
    Limits l = {TOL_CPU_STAGE_REL, TOL_CPU_STAGE_NMSE, -1.0};
    if (!base) return l;
    const Activation *b = actcache_get(base, want->name);
    if (!b || !same_shape(b, want)) return l; /* cannot happen: the same code on the same tokens */
    StageErr e = stage_error(want, b);
    const double k = TOL_BF16_BASELINE_FACTOR;
    l.rel = k * e.rel + TOL_CUDA_STAGE_REL;
    l.nmse = k * k * e.nmse + TOL_CUDA_STAGE_NMSE;
    l.base_rel = e.rel;
    return l;
}

size_t routing_near_ties(const Activation *want, const Activation *got, const ActCache *wantc,
                                const ActCache *basec, size_t *differ) {
    size_t last = want->shape[want->ndim - 1], rows = last ? want->numel / last : 0, near = 0;
    char name[HOOK_NAME_LEN];
    size_t plen = strlen(want->name) - strlen("hook_expert_indices");
    snprintf(name, sizeof name, "%.*shook_router_choice", (int)plen, want->name);
    const Activation *ch = actcache_get(wantc, name), *chb = basec ? actcache_get(basec, name) : NULL;
    double thr = 0;
    if (ch && chb && chb->numel == ch->numel)
        for (size_t i = 0; i < ch->numel; i++) {
            double d = fabs((double)chb->data[i] - ch->data[i]);
            if (isfinite(d) && d > thr) thr = d;
        }
    thr *= TOL_BF16_BASELINE_FACTOR;
    size_t E = ch ? ch->shape[ch->ndim - 1] : 0;
    *differ = 0;
    for (size_t r = 0; r < rows; r++) {
        const float *a = want->data + r * last, *b = got->data + r * last;
        int ok = 1, same = 1;
        for (size_t i = 0; i < last; i++) {
            int in_b = 0;
            for (size_t j = 0; j < last; j++) in_b |= a[i] == b[j];
            if (in_b) continue;
            same = 0;
            /* a[i] was dropped: is some expert taken in its place (in b, not in a) as good? */
            int matched = 0;
            for (size_t j = 0; j < last && ch && ch->numel == rows * E; j++) {
                int in_a = 0;
                for (size_t k = 0; k < last; k++) in_a |= b[j] == a[k];
                size_t ea = (size_t)a[i], eb = (size_t)b[j];
                if (in_a || ea >= E || eb >= E) continue;
                matched |= fabs((double)ch->data[r * E + ea] - ch->data[r * E + eb]) <= thr;
            }
            ok &= matched;
        }
        if (!same) {
            (*differ)++;
            near += ok;
        }
    }
    return near;
}

