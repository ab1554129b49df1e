/* mtp.c: Multi-Token Prediction forward and backward. See mtp.h and docs/model.md §8 for the equations.
 * Each depth owns a one-block RunState/KVCache/GradState sized for its Tk positions; the block
 * code is the main model's (block_forward / block_backward), the embedding and the output head
 * are the main model's tensors, so their gradients accumulate into the same places. */
#include "mtp.h"

#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "ops.h"

static int zalloc(float **p, size_t n, SeekErr *err) {
    *p = calloc(n ? n : 1, sizeof(float));
    return *p ? 0 : seek_fail(err, "mtp: out of memory for %zu floats", n);
}

static void depth_free(MtpDepth *d) {
    runstate_free(&d->s);
    kvcache_free(&d->kv);
    gradstate_free(&d->g);
    float **f[] = {&d->emb, &d->en, &d->en_rstd, &d->hin, &d->hn, &d->hn_rstd, &d->cat, &d->hout, &d->ho_n,
                   &d->ho_rstd, &d->logits, &d->probs, &d->dh, &d->dcat, &d->tmp};
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++) free(*f[i]);
    free(d->ids_e);
    free(d->targets);
}

int mtp_init(MtpState *ms, const Config *cfg, int D, int B, int T, SeekErr *err) {
    memset(ms, 0, sizeof *ms);
    if (D < 1) return seek_fail(err, "mtp: depth %d must be at least 1", D);
    if (T - D < 2) return seek_fail(err, "mtp: sequences of %d tokens are too short for %d MTP depth(s) (need T - D >= 2)", T, D);
    ms->D = D;
    ms->B = B;
    ms->T = T;
    ms->d = calloc((size_t)D, sizeof(MtpDepth));
    if (!ms->d) return seek_fail(err, "mtp: out of memory");
    for (int k = 1; k <= D; k++) {
        MtpDepth *d = &ms->d[k - 1];
        d->T = T - k;
        d->one = *cfg;
        d->one.L = 1;
        size_t N = (size_t)B * d->T, C = cfg->C, V = cfg->V;
        int rc = runstate_init_train(&d->s, &d->one, B, d->T, err) || kvcache_init(&d->kv, &d->one, B, d->T, err) ||
                 gradstate_init(&d->g, &d->one, B, d->T, err);
        rc = rc || zalloc(&d->emb, N * C, err) || zalloc(&d->en, N * C, err) || zalloc(&d->en_rstd, N, err) ||
             zalloc(&d->hin, N * C, err) || zalloc(&d->hn, N * C, err) || zalloc(&d->hn_rstd, N, err) ||
             zalloc(&d->cat, 2 * N * C, err) || zalloc(&d->hout, N * C, err) || zalloc(&d->ho_n, N * C, err) ||
             zalloc(&d->ho_rstd, N, err) || zalloc(&d->logits, N * V, err) || zalloc(&d->probs, N * V, err) ||
             zalloc(&d->dh, N * C, err) || zalloc(&d->dcat, 2 * N * C, err) || zalloc(&d->tmp, N * C, err);
        if (!rc) {
            d->ids_e = calloc(N, sizeof(int));
            d->targets = calloc(N, sizeof(int));
            if (!d->ids_e || !d->targets) rc = seek_fail(err, "mtp: out of memory");
        }
        if (rc) {
            mtp_free(ms);
            return -1;
        }
    }
    return 0;
}

void mtp_free(MtpState *ms) {
    for (int k = 0; ms->d && k < ms->D; k++) depth_free(&ms->d[k]);
    free(ms->d);
    memset(ms, 0, sizeof *ms);
}

int mtp_forward(const Model *m, MtpState *ms, const int *ids, const int *targets, const float *h0, SeekErr *err) {
    const Config *c = &m->cfg;
    const int B = ms->B, T = ms->T, C = c->C;
    if (!m->has_mtp || c->mtp_depth < ms->D)
        return seek_fail(err, "mtp: the model has %d MTP module(s), %d requested", m->has_mtp ? c->mtp_depth : 0, ms->D);
    for (int k = 1; k <= ms->D; k++) {
        MtpDepth *d = &ms->d[k - 1];
        const MtpWeights *mw = &m->mtp[k - 1];
        const int Tk = d->T, N = B * Tk;
        /* the previous depth's hidden state, at the first Tk positions of each sequence */
        const float *prev = k == 1 ? h0 : ms->d[k - 2].hout;
        int Tprev = k == 1 ? T : ms->d[k - 2].T;
        for (int b = 0; b < B; b++)
            for (int i = 0; i < Tk; i++) {
                memcpy(d->hin + ((size_t)b * Tk + i) * C, prev + ((size_t)b * Tprev + i) * C, (size_t)C * sizeof(float));
                d->ids_e[b * Tk + i] = ids[b * T + i + k];
                d->targets[b * Tk + i] = targets ? targets[b * T + i + k] : i + k + 1 < T ? ids[b * T + i + k + 1] : -1;
            }
        /* h' = eh_proj([enorm(Emb(t_{i+k})) ; hnorm(h^{k-1}_i)]) */
        embedding_forward(d->emb, d->ids_e, m->wte, N, C);
        rmsnorm_forward_on(ms->be, d->en, d->en_rstd, d->emb, mw->enorm, N, C, c->eps);
        rmsnorm_forward_on(ms->be, d->hn, d->hn_rstd, d->hin, mw->hnorm, N, C, c->eps);
        for (int n = 0; n < N; n++) {
            memcpy(d->cat + (size_t)n * 2 * C, d->en + (size_t)n * C, (size_t)C * sizeof(float));
            memcpy(d->cat + (size_t)n * 2 * C + C, d->hn + (size_t)n * C, (size_t)C * sizeof(float));
        }
        matmul_forward_on(ms->be, d->s.x, d->cat, mw->eh_proj, N, 2 * C, C);
        /* the module's decoder block, then the shared head */
        char px[32];
        snprintf(px, sizeof px, "mtp.%d", k - 1);
        for (int i = 0; i < N; i++) d->s.ids[i] = d->ids_e[i];
        d->kv.len = 0;
        d->s.be = ms->be;
        block_forward(m, &d->s, &d->kv, &m->layers[c->L + k - 1], &d->s.layer[0], 0, px, B, Tk, 0, ATTN_NAIVE, NULL);
        d->kv.len = Tk;
        memcpy(d->hout, d->s.x, (size_t)N * C * sizeof(float));
        rmsnorm_forward_on(ms->be, d->ho_n, d->ho_rstd, d->hout, mw->head_norm, N, C, c->eps);
        matmul_forward_on(ms->be, d->logits, d->ho_n, m->lm_head, N, C, c->V);
        d->loss = crossentropy_forward_on(ms->be, d->probs, d->logits, d->targets, NULL, N, c->V, &d->count);
    }
    return 0;
}

void mtp_backward(Model *grads, const Model *m, MtpState *ms, float scale, float *dh0) {
    const Config *c = &m->cfg;
    const int B = ms->B, T = ms->T, C = c->C;
    for (int k = 1; k <= ms->D; k++) memset(ms->d[k - 1].dh, 0, (size_t)B * ms->d[k - 1].T * C * sizeof(float));
    for (int k = ms->D; k >= 1; k--) {
        MtpDepth *d = &ms->d[k - 1];
        const MtpWeights *mw = &m->mtp[k - 1];
        MtpWeights *gmw = &grads->mtp[k - 1];
        const int Tk = d->T, N = B * Tk;
        const size_t NC = (size_t)N * C;
        /* logits = ho_n·W_headᵀ, ho_n = shared_head.norm(h^k) */
        float *dlogits = d->g.dlogits;
        memset(dlogits, 0, (size_t)N * c->V * sizeof(float));
        crossentropy_backward_on(ms->be, dlogits, scale, d->probs, d->targets, NULL, N, c->V, d->count);
        memset(d->tmp, 0, NC * sizeof(float));
        matmul_backward_on(ms->be, d->tmp, grads->lm_head, dlogits, d->ho_n, m->lm_head, N, C, c->V);
        rmsnorm_backward_on(ms->be, d->dh, gmw->head_norm, d->tmp, d->hout, mw->head_norm, d->ho_rstd, N, C);
        /* the block: g.dx holds d h^k on entry, d h' on return */
        memcpy(d->g.dx, d->dh, NC * sizeof(float));
        block_backward(&grads->layers[c->L + k - 1], &d->g, m, &d->s, &d->kv, &m->layers[c->L + k - 1], &d->s.layer[0], 0,
                       NULL, B, Tk);
        /* h' = cat·W_ehᵀ; cat = [enorm(emb) ; hnorm(h^{k-1})] */
        memset(d->dcat, 0, 2 * NC * sizeof(float));
        matmul_backward_on(ms->be, d->dcat, gmw->eh_proj, d->g.dx, d->cat, mw->eh_proj, N, 2 * C, C);
        float *d_en = d->en, *d_hn = d->hn; /* reuse the forward buffers as contiguous halves of dcat */
        for (int n = 0; n < N; n++) {
            memcpy(d_en + (size_t)n * C, d->dcat + (size_t)n * 2 * C, (size_t)C * sizeof(float));
            memcpy(d_hn + (size_t)n * C, d->dcat + (size_t)n * 2 * C + C, (size_t)C * sizeof(float));
        }
        memset(d->tmp, 0, NC * sizeof(float));
        rmsnorm_backward_on(ms->be, d->tmp, gmw->enorm, d_en, d->emb, mw->enorm, d->en_rstd, N, C);
        embedding_backward(grads->wte, d->tmp, d->ids_e, N, C);
        memset(d->tmp, 0, NC * sizeof(float));
        rmsnorm_backward_on(ms->be, d->tmp, gmw->hnorm, d_hn, d->hin, mw->hnorm, d->hn_rstd, N, C);
        /* d h^{k-1} at the Tk positions: into the previous depth, or the main model */
        float *dprev = k == 1 ? dh0 : ms->d[k - 2].dh;
        int Tprev = k == 1 ? T : ms->d[k - 2].T;
        for (int b = 0; b < B; b++)
            for (int i = 0; i < Tk; i++) {
                float *dst = dprev + ((size_t)b * Tprev + i) * C;
                const float *src = d->tmp + ((size_t)b * Tk + i) * C;
                for (int j = 0; j < C; j++) dst[j] += src[j];
            }
    }
}
