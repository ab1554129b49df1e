/* stagecmp.c: the error measures and limits of one hook stage (stagecmp.h). */
#include "stagecmp.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "moe.h"
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

size_t routing_near_ties(const Activation *want, const Activation *got, const ActCache *gotc, const Config *cfg,
                         size_t *differ) {
    size_t K = want->shape[want->ndim - 1], rows = K ? want->numel / K : 0, near = 0;
    const size_t E = (size_t)cfg->E;
    char name[HOOK_NAME_LEN];
    size_t plen = strlen(want->name) - strlen("hook_expert_indices");
    snprintf(name, sizeof name, "%.*shook_router_scores", (int)plen, want->name);
    const Activation *sc = actcache_get(gotc, name);
    snprintf(name, sizeof name, "%.*shook_router_choice", (int)plen, want->name);
    const Activation *ch = actcache_get(gotc, name);
    int usable = sc && ch && sc->numel == rows * E && ch->numel == rows * E && K == (size_t)cfg->K &&
                 E <= CFG_MAX_EXPERTS && cfg->G <= CFG_MAX_EXPERTS;
    *differ = 0;
    for (size_t r = 0; r < rows; r++) {
        const float *a = want->data + r * K, *b = got->data + r * K;
        int same = 1;
        for (size_t i = 0; i < K; i++) {
            int found = 0;
            for (size_t j = 0; j < K; j++) found |= a[i] == b[j];
            same &= found;
        }
        if (same) continue;
        (*differ)++;
        if (!usable) continue;
        /* the reference's selection on the backend's own values for this token */
        int idx[CFG_MAX_EXPERTS];
        float wts[CFG_MAX_EXPERTS], scratch[2 * CFG_MAX_EXPERTS];
        moe_select(idx, wts, sc->data + r * E, ch->data + r * E, 1, cfg, scratch);
        int match = 1;
        for (size_t i = 0; i < K; i++) {
            int found = 0;
            for (size_t j = 0; j < K; j++) found |= (float)idx[i] == b[j];
            match &= found;
        }
        near += match;
    }
    return near;
}
