/* backward.c: the model backward pass, the forward read from the bottom up.
 *
 *   logits = xnf·W_headᵀ,  xnf = RMSNorm_final(xf)
 *   for l = L-1 .. 0:
 *       x_out = resid_mid + FFN(RMSNorm_post(resid_mid))     -> d resid_mid = dx + (norm, FFN path)
 *       resid_mid = resid + z·W_oᵀ,  z = Attn(RMSNorm_in(resid)) -> d resid = dx + (norm, attention path)
 *   x_0 = Emb[ids]
 * Every function called accumulates into its gradients (ops.h), so the residual stream's
 * gradient dx simply collects both branches. Attention backward needs the rotated q, k and the
 * pattern; RoPE backward then rotates the gradients back. The MoE router gets gradient only
 * through the chosen experts' gate weights.
 */
#include "backward.h"

#include <stdlib.h>
#include <string.h>

#include "mla.h"
#include "moe.h"
#include "backend.h"
#include "ops.h"

static int zalloc(float **p, size_t n, SeekErr *err) {
    *p = calloc(n ? n : 1, sizeof(float));
    return *p ? 0 : seek_fail(err, "backward: out of memory for %zu floats", n);
}

size_t gradstate_scratch(const Config *c, int B, int T) {
    size_t N = (size_t)B * T, qk = config_qk_dim(c);
    size_t ffn = c->I_ffn;
    if (c->E > 0 && (size_t)c->Es * c->Hm > ffn) ffn = (size_t)c->Es * c->Hm;
    /* the largest scratch any op below asks for */
    size_t sc = 3 * N * ffn;
    if (c->mla) {
        size_t TH = (size_t)T * c->NH;
        size_t naive = TH * (2 * qk + 2 * (size_t)c->dv + c->dn) + ATTN_BWD_SCRATCH(T);
        size_t kv = N * ((size_t)c->kv_lora_rank + c->dr), q = 2 * N * (size_t)c->q_lora_rank;
        if (naive > sc) sc = naive;
        if (kv > sc) sc = kv;
        if (q > sc) sc = q;
        if (c->E > 0 && moe_backward_scratch(c, (int)N) > sc) sc = moe_backward_scratch(c, (int)N);
    }
    if (ATTN_BWD_SCRATCH(T) > sc) sc = ATTN_BWD_SCRATCH(T);
    return sc;
}

int gradstate_init(GradState *g, const Config *c, int B, int T, SeekErr *err) {
    memset(g, 0, sizeof *g);
    g->B = B;
    g->T = T;
    size_t N = (size_t)B * T, qk = config_qk_dim(c), dv = config_v_dim(c);
    size_t sc = gradstate_scratch(c, B, T);
    int rc = zalloc(&g->dx, N * c->C, err) || zalloc(&g->dxn, N * c->C, err) || zalloc(&g->dz, N * c->NH * dv, err) ||
             zalloc(&g->dq, N * c->NH * qk, err) || zalloc(&g->dlogits, N * c->V, err) ||
             zalloc(&g->probs, N * c->V, err) || zalloc(&g->logits, N * c->V, err) || zalloc(&g->scratch, sc, err);
    if (!rc && !c->mla) rc = zalloc(&g->dk, N * c->NKV * c->HS, err) || zalloc(&g->dv, N * c->NKV * c->HS, err);
    if (!rc && c->mla) rc = zalloc(&g->dlatent, N * c->kv_lora_rank, err) || zalloc(&g->dkpe, N * c->dr, err);
    if (!rc) {
        g->targets = calloc(N, sizeof(int));
        if (!g->targets) rc = seek_fail(err, "backward: out of memory");
    }
    if (rc) gradstate_free(g);
    return rc ? -1 : 0;
}

void gradstate_free(GradState *g) {
    float **f[] = {&g->dx, &g->dxn, &g->dz, &g->dq, &g->dk, &g->dv, &g->dlatent, &g->dkpe, &g->dlogits,
                   &g->probs, &g->logits, &g->scratch};
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++) free(*f[i]);
    free(g->targets);
    memset(g, 0, sizeof *g);
}

/* LLaMA attention: z = softmax(RoPE(q)·RoPE(k)ᵀ·s)·v with q, k, v = xn1·W_{q,k,v}ᵀ */
static void llama_attention_backward(LayerWeights *gw, GradState *g, const Model *m, const RunState *s,
                                     const KVCache *kv, const LayerWeights *w, const LayerState *a, int l, int B,
                                     int T, float *dxn1) {
    const Config *c = &m->cfg;
    const int N = B * T, NH = c->NH, NKV = c->NKV, HS = c->HS;
    const size_t kvw = (size_t)NKV * HS;
    zero_on(s->be, g->dq, (size_t)N * NH * HS);
    zero_on(s->be, g->dk, (size_t)N * kvw);
    zero_on(s->be, g->dv, (size_t)N * kvw);
    for (int b = 0; b < B; b++) {
        size_t base = ((size_t)l * kv->B + b) * kv->Tmax;
        attention_backward_on(s->be, g->dq + (size_t)b * T * NH * HS, g->dk + (size_t)b * T * kvw, g->dv + (size_t)b * T * kvw,
                           g->dz + (size_t)b * T * NH * HS, a->pattern + (size_t)b * NH * T * s->Tmax,
                           a->q + (size_t)b * T * NH * HS, kv->k + base * kvw, kv->v + base * kvw, T, NH, NKV, HS, HS,
                           kvw, kvw, c->attn_scale, g->scratch);
    }
    /* rotate the gradients of the rotated q and k back */
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            size_t r = (size_t)b * T + t;
            rope_backward(g->dq + r * NH * HS, g->dq + r * NH * HS, NH, HS, t, s->inv_freq, s->rope_attn_factor, HS, c->rope_layout);
            rope_backward(g->dk + r * kvw, g->dk + r * kvw, NKV, HS, t, s->inv_freq, s->rope_attn_factor, HS, c->rope_layout);
        }
    matmul_backward_on(s->be, dxn1, gw->wq, g->dq, a->xn1, w->wq, N, c->C, NH * HS);
    matmul_backward_on(s->be, dxn1, gw->wk, g->dk, a->xn1, w->wk, N, c->C, NKV * HS);
    matmul_backward_on(s->be, dxn1, gw->wv, g->dv, a->xn1, w->wv, N, c->C, NKV * HS);
}

/* MLA (naive form, as trained): queries, the latent and the shared rope key */
static void mla_attention_backward(LayerWeights *gw, GradState *g, const Model *m, const RunState *s,
                                   const KVCache *kv, const LayerWeights *w, const LayerState *a, int l, int B, int T,
                                   float *dxn1) {
    const Config *c = &m->cfg;
    const int N = B * T, NH = c->NH, dn = c->dn, dr = c->dr, dv = c->dv, dq = dn + dr, dkv = c->kv_lora_rank;
    zero_on(s->be, g->dq, (size_t)N * NH * dq);
    zero_on(s->be, g->dlatent, (size_t)N * dkv);
    zero_on(s->be, g->dkpe, (size_t)N * dr);
    for (int b = 0; b < B; b++) {
        size_t base = ((size_t)l * kv->B + b) * kv->Tmax;
        mla_attend_naive_backward_on(s->be, g->dq + (size_t)b * T * NH * dq, g->dlatent + (size_t)b * T * dkv,
                                  g->dkpe + (size_t)b * T * dr, gw->wkv_b, g->dz + (size_t)b * T * NH * dv,
                                  a->pattern + (size_t)b * NH * T * s->Tmax, a->q + (size_t)b * T * NH * dq,
                                  kv->latent + base * dkv, a->k_full + (size_t)b * T * NH * dq,
                                  a->v_full + (size_t)b * T * NH * dv, w, c, T, g->scratch);
    }
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            size_t r = (size_t)b * T + t;
            float *dqp = g->dq + r * NH * dq + dn;
            rope_backward(dqp, dqp, NH, dq, t, s->inv_freq, s->rope_attn_factor, dr, c->rope_layout);
            float *dkp = g->dkpe + r * dr;
            rope_backward(dkp, dkp, 1, dr, t, s->inv_freq, s->rope_attn_factor, dr, c->rope_layout);
        }
    mla_kv_backward_on(s->be, dxn1, gw, g->dlatent, g->dkpe, a->xn1, a->kv_a, a->kv_rstd, w, c, N, g->scratch);
    mla_q_backward_on(s->be, dxn1, gw, g->dq, a->xn1, a->q_a, a->q_latent, a->q_rstd, w, c, N, g->scratch);
}

void block_backward(LayerWeights *gw, GradState *g, const Model *m, const RunState *s, const KVCache *kv,
                    const LayerWeights *w, const LayerState *a, int kv_layer, const float *dscores, int B, int T) {
    const Config *c = &m->cfg;
    const int N = B * T, C = c->C, dv = config_v_dim(c);
    const size_t NC = (size_t)N * C;
    /* x_out = resid_mid + FFN(RMSNorm_post(resid_mid)): dx flows to both */
    zero_on(s->be, g->dxn, NC);
    if (!w->is_moe)
        swiglu_backward_on(s->be, g->dxn, gw->w_gate, gw->w_up, gw->w_down, g->dx, a->xn2, a->gate, a->up, a->act, w->w_gate,
                        w->w_up, w->w_down, N, C, c->I_ffn, g->scratch);
    else
        moe_backward_on(s->be, g->dxn, gw, g->dx, dscores, a->xn2, a->e_idx, a->e_w, a->r_scores, a->eg, a->eu, a->ea, a->eo,
                     a->gate, a->up, a->act, w, N, c, g->scratch);
    rmsnorm_backward_on(s->be, g->dx, gw->mlp_norm, g->dxn, a->resid_mid, w->mlp_norm, a->rstd2, N, C);

    /* resid_mid = resid + z·W_oᵀ,  z = Attn(RMSNorm_in(resid)) */
    zero_on(s->be, g->dz, (size_t)N * c->NH * dv);
    matmul_backward_on(s->be, g->dz, gw->wo, g->dx, a->z, w->wo, N, c->NH * dv, C);
    zero_on(s->be, g->dxn, NC);
    if (c->mla) mla_attention_backward(gw, g, m, s, kv, w, a, kv_layer, B, T, g->dxn);
    else llama_attention_backward(gw, g, m, s, kv, w, a, kv_layer, B, T, g->dxn);
    rmsnorm_backward_on(s->be, g->dx, gw->attn_norm, g->dxn, a->resid, w->attn_norm, a->rstd1, N, C);
}

void model_backward(Model *grads, GradState *g, const Model *m, const RunState *s, const KVCache *kv,
                    const float *dlogits, const float *dxnf_extra, float *const *dscores, int B, int T) {
    const Config *c = &m->cfg;
    const int N = B * T, C = c->C;
    const size_t NC = (size_t)N * C;

    /* logits = xnf·W_headᵀ;  xnf = RMSNorm_final(xf); MTP's first depth also reads xnf */
    zero_on(s->be, g->dxn, NC);
    matmul_backward_on(s->be, g->dxn, grads->lm_head, dlogits, s->xnf, m->lm_head, N, C, c->V);
    if (dxnf_extra)
        for (size_t i = 0; i < NC; i++) g->dxn[i] += dxnf_extra[i];
    zero_on(s->be, g->dx, NC);
    rmsnorm_backward_on(s->be, g->dx, grads->final_norm, g->dxn, s->xf, m->final_norm, s->rstdf, N, C);

    for (int l = c->L - 1; l >= 0; l--)
        block_backward(&grads->layers[l], g, m, s, kv, &m->layers[l], &s->layer[l], l, dscores ? dscores[l] : NULL, B, T);
    /* x_0 = Emb[ids] */
    embedding_backward(grads->wte, g->dx, s->ids, N, C);
}

void batch_targets(int *targets, const TrainBatch *batch, int B, int T) {
    if (batch->targets) {
        memcpy(targets, batch->targets, (size_t)B * T * sizeof(int));
        return;
    }
    /* the next token of the same sequence; none at each sequence's last position */
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) targets[b * T + t] = t + 1 < T ? batch->ids[b * T + t + 1] : -1;
}

int model_loss_grad(const Model *m, Model *grads, const TrainBatch *batch, int B, int T, double *loss, SeekErr *err) {
    return model_loss_grad_be(BACKEND_REF, m, grads, batch, B, T, loss, err);
}

int model_loss_grad_be(Backend be, const Model *m, Model *grads, const TrainBatch *batch, int B, int T, double *loss,
                       SeekErr *err) {
    const Config *c = &m->cfg;
    if (T < 2) return seek_fail(err, "loss: sequences need at least 2 tokens (got %d)", T);
    RunState s;
    KVCache kv;
    GradState g;
    if (runstate_init_train(&s, c, B, T, err)) return -1;
    s.be = be;
    if (kvcache_init(&kv, c, B, T, err)) {
        runstate_free(&s);
        return -1;
    }
    if (gradstate_init(&g, c, B, T, err)) {
        runstate_free(&s);
        kvcache_free(&kv);
        return -1;
    }
    int rc = model_forward(m, &s, &kv, batch->ids, B, T, ATTN_NAIVE, NULL, NULL, g.logits, err);
    if (!rc) {
        batch_targets(g.targets, batch, B, T);
        int count;
        *loss = crossentropy_forward_on(be, g.probs, g.logits, g.targets, batch->weights, B * T, c->V, &count);
        if (count == 0) rc = seek_fail(err, "loss: no position of the batch has a target (nothing to predict)");
        float *w_eff = NULL;
        if (!rc && batch->policy) { /* the policy objective's loss and per-row gradient factors */
            if (!(w_eff = malloc((size_t)B * T * sizeof(float)))) rc = seek_fail(err, "loss: out of memory");
            else *loss = policy_loss_weights(w_eff, g.logits, g.targets, batch->weights, batch->policy, B * T, c->V, NULL);
        }
        if (!rc && grads) {
            zero_on(be, g.dlogits, (size_t)B * T * c->V);
            crossentropy_backward_on(be, g.dlogits, 1.0f, g.probs, g.targets, w_eff ? w_eff : batch->weights, B * T, c->V,
                                     count);
            model_backward(grads, &g, m, &s, &kv, g.dlogits, NULL, NULL, B, T);
        }
        free(w_eff);
    }
    gradstate_free(&g);
    kvcache_free(&kv);
    runstate_free(&s);
    return rc;
}
