/* speculative.c: greedy generation drafted by the MTP module (speculative.h). */
#include "speculative.h"

#include <stdlib.h>
#include <string.h>

#include "mtp.h"
#include "ops.h"

/* The MTP module at inference: depth 1's decoder block on a cache of its own, fed position by
 * position as tokens are accepted (mtp_forward's equations, ref/mtp.c, one step at a time). */
typedef struct {
    Config one;              /* the config with L = 1: the module's block in slot 0 */
    RunState s;
    KVCache kv;
    int cap;                 /* positions one call can take */
    float *emb, *en, *hn, *cat, *rstd; /* (cap, C), (cap, C), (cap, C), (cap, 2C), (cap) */
    float *ho_n, *logits;    /* (C), (V): the last position's head */
} MtpDecoder;

static void mtpdec_free(MtpDecoder *d) {
    runstate_free(&d->s);
    kvcache_free(&d->kv);
    free(d->emb);
    free(d->en);
    free(d->hn);
    free(d->cat);
    free(d->rstd);
    free(d->ho_n);
    free(d->logits);
    memset(d, 0, sizeof *d);
}

static int mtpdec_init(MtpDecoder *d, const Config *c, int cap, int Tmax, SeekErr *err) {
    memset(d, 0, sizeof *d);
    d->one = *c;
    d->one.L = 1;
    d->cap = cap;
    if (runstate_init(&d->s, &d->one, 1, cap, Tmax, 0, err) || kvcache_init(&d->kv, &d->one, 1, Tmax, err)) {
        mtpdec_free(d);
        return -1;
    }
    size_t C = (size_t)c->C;
    d->emb = malloc((size_t)cap * C * sizeof(float));
    d->en = malloc((size_t)cap * C * sizeof(float));
    d->hn = malloc((size_t)cap * C * sizeof(float));
    d->cat = malloc((size_t)cap * 2 * C * sizeof(float));
    d->rstd = malloc((size_t)cap * sizeof(float));
    d->ho_n = malloc(C * sizeof(float));
    d->logits = malloc((size_t)c->V * sizeof(float));
    if (!d->emb || !d->en || !d->hn || !d->cat || !d->rstd || !d->ho_n || !d->logits) {
        mtpdec_free(d);
        return seek_fail(err, "--draft mtp: out of memory");
    }
    return 0;
}

/* n new positions of the module: h (n, C) the main model's final-norm outputs at those positions,
 * next (n) the token after each; leaves the last position's logits (the draft's) in d->logits */
static void mtpdec_step(MtpDecoder *d, Backend be, const Model *m, const float *h, const int *next, int n) {
    const Config *c = &m->cfg;
    const int C = c->C;
    const MtpWeights *mw = &m->mtp[0];
    /* h' = eh_proj([enorm(Emb(next)) ; hnorm(h)]) */
    embedding_forward(d->emb, next, m->wte, n, C);
    rmsnorm_forward_on(be, d->en, d->rstd, d->emb, mw->enorm, n, C, c->eps);
    rmsnorm_forward_on(be, d->hn, d->rstd, h, mw->hnorm, n, C, c->eps);
    for (int i = 0; i < n; i++) {
        memcpy(d->cat + (size_t)i * 2 * C, d->en + (size_t)i * C, (size_t)C * sizeof(float));
        memcpy(d->cat + (size_t)i * 2 * C + C, d->hn + (size_t)i * C, (size_t)C * sizeof(float));
    }
    matmul_forward_on(be, d->s.x, d->cat, mw->eh_proj, n, 2 * C, C);
    /* the module's block over its own cache, then the shared head at the last position */
    for (int i = 0; i < n; i++) d->s.ids[i] = next[i];
    d->s.be = be;
    block_forward(m, &d->s, &d->kv, &m->layers[c->L], &d->s.layer[0], 0, "mtp.0", 1, n, d->kv.len, ATTN_NAIVE, NULL);
    d->kv.len += n;
    rmsnorm_forward_on(be, d->ho_n, d->rstd, d->s.x + (size_t)(n - 1) * C, mw->head_norm, 1, C, c->eps);
    matmul_forward_on(be, d->logits, d->ho_n, m->lm_head, 1, C, c->V);
}

/* greedy: argmax, ties to the lower id (sample_token's rule) */
static int argmax(const float *x, int V) {
    int best = 0;
    for (int i = 1; i < V; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

int model_generate_draft_on(Backend be, const Model *m, const int *ids, int T, int n, AttnMode mode, int *out,
                            DraftStats *st, SeekErr *err) {
    const Config *c = &m->cfg;
    memset(st, 0, sizeof *st);
    if (c->mtp_depth < 1)
        return seek_fail(err, "--draft mtp: this model has no MTP module (num_nextn_predict_layers is 0)");
    if (!m->has_mtp)
        return seek_fail(err, "--draft mtp: the config has %d MTP module(s) but the checkpoint holds no MTP weights",
                         c->mtp_depth);
    if (be != BACKEND_REF && be != BACKEND_CPU)
        return seek_fail(err, "--draft mtp: runs on the host backends (ref, cpu) so far, not %s", backend_name(be));
    if (n < 1) return seek_fail(err, "generate: -n must be at least 1");
    if (T < 1) return seek_fail(err, "generate: the prompt is empty");
    if ((long long)T + n + 1 > c->max_pos)
        return seek_fail(err, "generate: prompt %d + %d new tokens (+1 for the draft) exceeds max_position_embeddings %d", T,
                         n, c->max_pos);
    const int Tmax = T + n + 1, C = c->C;
    RunState s;
    KVCache kv;
    MtpDecoder d;
    if (kvcache_init(&kv, c, 1, Tmax, err)) return -1;
    if (runstate_init(&s, c, 1, T > 2 ? T : 2, Tmax, 0, err)) {
        kvcache_free(&kv);
        return -1;
    }
    if (mtpdec_init(&d, c, T > 2 ? T : 2, Tmax, err)) {
        runstate_free(&s);
        kvcache_free(&kv);
        return -1;
    }
    float *logits = malloc((size_t)(T > 2 ? T : 2) * c->V * sizeof(float));
    int *next = malloc((size_t)(T > 2 ? T : 2) * sizeof(int));
    int rc = logits && next ? 0 : seek_fail(err, "--draft mtp: out of memory");
    /* prefill, the first token, and the module over every prompt position */
    if (!rc) rc = model_forward_on(be, m, &s, &kv, ids, 1, T, mode, NULL, NULL, logits, err);
    int produced = 0, x = 0, draft = 0;
    if (!rc) {
        x = argmax(logits + (size_t)(T - 1) * c->V, c->V);
        out[produced++] = x;
        for (int i = 0; i < T; i++) next[i] = i + 1 < T ? ids[i + 1] : x;
        if (produced < n) {
            mtpdec_step(&d, be, m, s.xnf, next, T);
            draft = argmax(d.logits, c->V);
        }
    }
    while (!rc && produced < n) {
        int feed[2] = {x, draft}, nf = produced + 1 < n ? 2 : 1; /* the last token needs no draft */
        rc = model_forward_on(be, m, &s, &kv, feed, 1, nf, mode, NULL, NULL, logits, err);
        if (rc) break;
        st->calls++;
        int y0 = argmax(logits, c->V);
        if (nf == 1) {
            out[produced++] = y0;
            break;
        }
        st->drafted++;
        int nm;
        if (y0 == draft) { /* accepted: draft is the next token, and the one after it comes free */
            st->accepted++;
            out[produced++] = draft;
            x = argmax(logits + c->V, c->V);
            if (produced < n) out[produced++] = x;
            next[0] = draft;
            next[1] = x;
            nm = 2;
        } else { /* rejected: the main model's own token; the draft's cache row goes */
            out[produced++] = y0;
            kv.len -= 1;
            x = y0;
            next[0] = y0;
            nm = 1;
        }
        if (produced < n) {
            mtpdec_step(&d, be, m, s.xnf, next, nm);
            draft = argmax(d.logits, c->V);
        }
    }
    (void)C;
    free(logits);
    free(next);
    mtpdec_free(&d);
    runstate_free(&s);
    kvcache_free(&kv);
    return rc;
}
