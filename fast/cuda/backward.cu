/* backward.cu (CUDA twin of ref/backward.c and ref/train.c's step): the model backward pass, the
 * next-token loss with its gradient, and a training step's gradients, on the GPU.
 *
 *   logits = xnf·W_headᵀ,  xnf = RMSNorm_final(xf)
 *   for l = L-1 .. 0:
 *       x_out = resid_mid + FFN(RMSNorm_post(resid_mid))     -> d resid_mid = dx + (norm, FFN path)
 *       resid_mid = resid + z·W_oᵀ,  z = Attn(RMSNorm_in(resid)) -> d resid = dx + (norm, attention path)
 *   x_0 = Emb[ids]
 * Stage for stage ref/backward.c's block_backward and model_backward with every op renamed to its
 * `_cuda` twin, on a device GradState with the reference's field names and sizes
 * (gradstate_scratch) and a device gradient arena laid out like the model's. The forward is
 * model_forward_cuda on a training run state (every layer's saved values kept on the device);
 * cuda_forward_state hands them over. Every gradient ACCUMULATES, as in the reference.
 *
 * The caller's gradients are host Models, as the reference's: model_loss_grad_cuda uploads them,
 * adds this call's gradient on the device and brings them back (accumulating, like the
 * reference); train_step_grads_cuda starts from zero, as the reference's step does. Each MoE
 * layer's routing (r_scores, e_idx) is copied into the host run state for the balance loss and
 * the bias update, which stay the reference's; the balance loss's score gradients go back up.
 * With MTP depths (lw->mtp_depth > 0) the step runs as ref/train.c's: mtp.cu's forward reads the
 * final norm's output on the device, its backward adds into the same device gradients (before the
 * main backward, the reference's order) and into a device dh0, which the main backward adds to
 * the gradient of that output (model_backward's dxnf_extra). The losses come back to the host
 * (StepLosses, each depth's loss in tb->mtp); tb->dh0 is not filled.
 *
 * State kept between calls, per model (the backward part of the model's context, CudaGradCtx in
 * internal.cuh, on Model.dev): the device GradState, gradient arena, per-layer score gradients and
 * MTP dh0, rebuilt when the model's size or B, T change. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda/internal.cuh"
extern "C" {
#include "backward.h"
#include "balance.h"
}

/* the model's backward context (CudaGradCtx, internal.cuh): G below is always x->grad */


void cuda_gradstate_free(GradState *g) {
    float **f[] = {&g->dx, &g->dxn, &g->dz, &g->dq, &g->dk, &g->dv, &g->dlatent, &g->dkpe, &g->dlogits, &g->probs, &g->scratch};
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++) cuda_dfree(*f[i]);
    cuda_dfree(g->targets);
    memset(g, 0, sizeof *g);
}

static void free_grad(CudaGradCtx *G) {
    cuda_gradstate_free(&G->g);
    if (G->dscores)
        for (int l = 0; l < G->L; l++) cuda_dfree(G->dscores[l]);
    free(G->dscores);
    cuda_dfree(G->arena);
    cuda_dfree(G->dh0);
    cuda_dfree(G->weights);
    free(G->gl);
    free(G->gmtp);
    memset(G, 0, sizeof *G);
}

/* a pointer into the host gradient arena, moved to the same offset of the device one */
/* a device GradState of gradstate_init's sizes (the logits stay the forward's) */
int cuda_gradstate_alloc(GradState *g, const Config *c, int B, int T) {
    size_t N = (size_t)B * T, qk = config_qk_dim(c), dv = config_v_dim(c);
    int rc = 0;
    memset(g, 0, sizeof *g);
    g->B = B;
    g->T = T;
    g->dx = cuda_dalloc(N * c->C, &rc);
    g->dxn = cuda_dalloc(N * c->C, &rc);
    g->dz = cuda_dalloc(N * c->NH * dv, &rc);
    g->dq = cuda_dalloc(N * c->NH * qk, &rc);
    g->dlogits = cuda_dalloc(N * c->V, &rc);
    g->probs = cuda_dalloc(N * c->V, &rc);
    g->scratch = cuda_dalloc(gradstate_scratch(c, B, T), &rc);
    if (!c->mla) {
        g->dk = cuda_dalloc(N * c->NKV * c->HS, &rc);
        g->dv = cuda_dalloc(N * c->NKV * c->HS, &rc);
    } else {
        g->dlatent = cuda_dalloc(N * c->kv_lora_rank, &rc);
        g->dkpe = cuda_dalloc(N * c->dr, &rc);
    }
    g->targets = (int *)cuda_dalloc(N, &rc); /* ints: same size as floats */
    if (rc) cuda_gradstate_free(g);
    return rc;
}

/* the device GradState (gradstate_init's sizes), gradient arena and score gradients */
static int alloc_grad(CudaGradCtx *G, const Model *m, const Model *grads, int B, int T) {
    const Config *c = &m->cfg;
    if (G->have && G->B == B && G->T == T && G->n_floats == grads->n_floats && !memcmp(&G->cfg, c, sizeof *c)) return 0;
    free_grad(G);
    size_t N = (size_t)B * T;
    int rc = cuda_gradstate_alloc(&G->g, c, B, T);
    G->cfg = *c;
    G->L = c->L;
    G->have = 1; /* so free_grad releases a partial allocation */
    G->dscores = (float **)calloc((size_t)c->L, sizeof(float *));
    if (!G->dscores) {
        cuda_note_error(__FILE__, __LINE__, "gradients", "out of host memory");
        rc = -1;
    }
    for (int l = 0; !rc && l < c->L; l++)
        if (config_layer_is_moe(c, l)) G->dscores[l] = cuda_dalloc(N * c->E, &rc);
    G->arena = cuda_dalloc(grads->n_floats, &rc);
    G->dh0 = cuda_dalloc(N * c->C, &rc);
    G->weights = cuda_dalloc(N, &rc);
    if (!rc) { /* the MTP modules' gradients (their blocks after the main layers) are in the arena too */
        CudaModelTables t;
        rc = cuda_rebase_model(grads, G->arena, &t);
        G->gl = t.layers;
        G->gmtp = t.mtp;
        G->wte = t.wte;
        G->final_norm = t.final_norm;
        G->lm_head = t.lm_head;
    }
    if (rc) {
        free_grad(G);
        return -1;
    }
    G->B = B;
    G->T = T;
    G->n_floats = grads->n_floats;
    return 0;
}

static void zero(float *p, size_t n, cudaStream_t st) { CU_CHECK(cudaMemsetAsync(p, 0, n * sizeof(float), st)); }

/* LLaMA attention: z = softmax(RoPE(q)·RoPE(k)ᵀ·s)·v with q, k, v = xn1·W_{q,k,v}ᵀ */
static void llama_attention_backward_cuda(LayerWeights *gw, GradState *g, const Config *c, const RunState *s,
                                          const KVCache *kv, const LayerWeights *w, const LayerState *a, int l, int B,
                                          int T, float *dxn1, cudaStream_t st) {
    const int N = B * T, NH = c->NH, NKV = c->NKV, HS = c->HS;
    const size_t kvw = (size_t)NKV * HS;
    zero(g->dq, (size_t)N * NH * HS, st);
    zero(g->dk, (size_t)N * kvw, st);
    zero(g->dv, (size_t)N * kvw, st);
    for (int b = 0; b < B; b++) {
        size_t base = ((size_t)l * kv->B + b) * kv->Tmax;
        attention_backward_cuda(g->dq + (size_t)b * T * NH * HS, g->dk + (size_t)b * T * kvw, g->dv + (size_t)b * T * kvw,
                                g->dz + (size_t)b * T * NH * HS, a->pattern + (size_t)b * NH * T * s->Tmax,
                                a->q + (size_t)b * T * NH * HS, kv->k + base * kvw, kv->v + base * kvw, T, NH, NKV, HS,
                                HS, kvw, kvw, c->attn_scale, g->scratch, st);
    }
    /* rotate the gradients of the rotated q and k back */
    cuda_rope_rows_backward(g->dq, N, T, 0, NH, (size_t)NH * HS, HS, s->inv_freq, s->rope_attn_factor, HS, c->rope_layout, st);
    cuda_rope_rows_backward(g->dk, N, T, 0, NKV, kvw, HS, s->inv_freq, s->rope_attn_factor, HS, c->rope_layout, st);
    matmul_backward_cuda(dxn1, gw->wq, g->dq, a->xn1, w->wq, N, c->C, NH * HS, st);
    matmul_backward_cuda(dxn1, gw->wk, g->dk, a->xn1, w->wk, N, c->C, NKV * HS, st);
    matmul_backward_cuda(dxn1, gw->wv, g->dv, a->xn1, w->wv, N, c->C, NKV * HS, st);
}

/* MLA (naive form, as trained): queries, the latent and the shared rope key */
static void mla_attention_backward_cuda(LayerWeights *gw, GradState *g, const Config *c, const RunState *s,
                                        const KVCache *kv, const LayerWeights *w, const LayerState *a, int l, int B,
                                        int T, float *dxn1, cudaStream_t st) {
    const int N = B * T, NH = c->NH, dn = c->dn, dr = c->dr, dv = c->dv, dq = dn + dr, dkv = c->kv_lora_rank;
    zero(g->dq, (size_t)N * NH * dq, st);
    zero(g->dlatent, (size_t)N * dkv, st);
    zero(g->dkpe, (size_t)N * dr, st);
    for (int b = 0; b < B; b++) {
        size_t base = ((size_t)l * kv->B + b) * kv->Tmax;
        mla_attend_naive_backward_cuda(g->dq + (size_t)b * T * NH * dq, g->dlatent + (size_t)b * T * dkv,
                                       g->dkpe + (size_t)b * T * dr, gw->wkv_b, g->dz + (size_t)b * T * NH * dv,
                                       a->pattern + (size_t)b * NH * T * s->Tmax, a->q + (size_t)b * T * NH * dq,
                                       kv->latent + base * dkv, a->k_full + (size_t)b * T * NH * dq,
                                       a->v_full + (size_t)b * T * NH * dv, w, c, T, g->scratch, st);
    }
    cuda_rope_rows_backward(g->dq + dn, N, T, 0, NH, (size_t)NH * dq, dq, s->inv_freq, s->rope_attn_factor, dr,
                            c->rope_layout, st);
    cuda_rope_rows_backward(g->dkpe, N, T, 0, 1, dr, dr, s->inv_freq, s->rope_attn_factor, dr, c->rope_layout, st);
    mla_kv_backward_cuda(dxn1, gw, g->dlatent, g->dkpe, a->xn1, a->kv_a, a->kv_rstd, w, c, N, g->scratch, st);
    mla_q_backward_cuda(dxn1, gw, g->dq, a->xn1, a->q_a, a->q_latent, a->q_rstd, w, c, N, g->scratch, st);
}

/* ref's block_backward; also an MTP module's block (mtp.cu), on that depth's device state */
void block_backward_cuda(LayerWeights *gw, GradState *g, const Config *c, const RunState *s, const KVCache *kv,
                         const LayerWeights *w, const LayerState *a, int kv_layer, const float *dscores, int B, int T,
                         cudaStream_t st) {
    const int N = B * T, C = c->C, dv = config_v_dim(c);
    const size_t NC = (size_t)N * C;
    /* x_out = resid_mid + FFN(RMSNorm_post(resid_mid)): dx flows to both */
    zero(g->dxn, NC, st);
    if (!w->is_moe)
        swiglu_backward_cuda(g->dxn, gw->w_gate, gw->w_up, gw->w_down, g->dx, a->xn2, a->gate, a->up, a->act, w->w_gate,
                             w->w_up, w->w_down, N, C, c->I_ffn, g->scratch, st);
    else
        moe_backward_cuda(g->dxn, gw, g->dx, dscores, a->xn2, a->e_idx, a->e_w, a->r_scores, a->eg, a->eu, a->ea, a->eo,
                          a->gate, a->up, a->act, w, N, c, g->scratch, st);
    rmsnorm_backward_cuda(g->dx, gw->mlp_norm, g->dxn, a->resid_mid, w->mlp_norm, a->rstd2, N, C, st);

    /* resid_mid = resid + z·W_oᵀ,  z = Attn(RMSNorm_in(resid)) */
    zero(g->dz, (size_t)N * c->NH * dv, st);
    matmul_backward_cuda(g->dz, gw->wo, g->dx, a->z, w->wo, N, c->NH * dv, C, st);
    zero(g->dxn, NC, st);
    if (c->mla) mla_attention_backward_cuda(gw, g, c, s, kv, w, a, kv_layer, B, T, g->dxn, st);
    else llama_attention_backward_cuda(gw, g, c, s, kv, w, a, kv_layer, B, T, g->dxn, st);
    rmsnorm_backward_cuda(g->dx, gw->attn_norm, g->dxn, a->resid, w->attn_norm, a->rstd1, N, C, st);
}

/* ref/backward.c's model_backward on the device state of the last forward, into G's gradients;
 * dxnf_extra (N, C) device or NULL: more gradient on the final norm's output (the MTP modules
 * read it) */
static void model_backward_dev(CudaGradCtx *G, const Config *c, const CudaForwardState *f, const float *dxnf_extra,
                               const float *const *dscores, int B, int T, cudaStream_t st) {
    const int N = B * T, C = c->C;
    const size_t NC = (size_t)N * C;
    GradState *g = &G->g;
    const RunState *s = f->d;
    /* logits = xnf·W_headᵀ;  xnf = RMSNorm_final(xf); MTP's first depth also reads xnf */
    zero(g->dxn, NC, st);
    matmul_backward_cuda(g->dxn, G->lm_head, g->dlogits, s->xnf, f->lm_head, N, C, c->V, st);
    if (dxnf_extra) cuda_residual_add(g->dxn, dxnf_extra, NC, st); /* the reference's g->dxn[i] += dxnf_extra[i] */
    zero(g->dx, NC, st);
    rmsnorm_backward_cuda(g->dx, G->final_norm, g->dxn, s->xf, f->final_norm, s->rstdf, N, C, st);
    for (int l = c->L - 1; l >= 0; l--)
        block_backward_cuda(&G->gl[l], g, c, s, f->kv, &f->layers[l], &s->layer[l], l, dscores ? dscores[l] : NULL, B, T, st);
    /* x_0 = Emb[ids] */
    embedding_backward_cuda(G->wte, g->dx, s->ids, N, C, st);
}

static int fail_if_error(SeekErr *err, const char *what) {
    if (cuda_check_error(err)) return seek_fail_prefix(err, what);
    return 0;
}

/* forward on the device + the next-token loss into the gradient state (probs, targets) of m's
 * context, returned in *ctx; `targets` is host room */
static int main_forward_cuda(const Model *m, const Model *grads_layout, RunState *s, KVCache *kv, float *logits,
                             int *targets, const TrainBatch *batch, int B, int T, double *loss, int *count,
                             PolicyStats *policy_stats, CudaModelCtx **ctx, SeekErr *err) {
    const Config *c = &m->cfg;
    kv->len = 0;
    if (model_forward_cuda(m, s, kv, batch->ids, B, T, ATTN_NAIVE, NULL, NULL, logits, err)) return -1;
    CudaModelCtx *x = cuda_model_ctx(m); /* the forward made it */
    if (!x || alloc_grad(&x->grad, m, grads_layout, B, T))
        return fail_if_error(err, "backward (cuda)") ? -1 : seek_fail(err, "backward (cuda): setup failed");
    CudaGradCtx *G = &x->grad;
    *ctx = x;
    cudaStream_t st = cuda_stream();
    batch_targets(targets, batch, B, T);
    CU_CHECK(cudaMemcpyAsync(G->g.targets, targets, (size_t)B * T * sizeof(int), cudaMemcpyHostToDevice, st));
    if (batch->weights)
        CU_CHECK(cudaMemcpyAsync(G->weights, batch->weights, (size_t)B * T * sizeof(float), cudaMemcpyHostToDevice, st));
    CudaForwardState f;
    cuda_forward_state(x, &f);
    *loss = crossentropy_forward_cuda(G->g.probs, f.logits, G->g.targets, batch->weights ? G->weights : NULL, B * T, c->V,
                                      count, st);
    if (fail_if_error(err, "loss (cuda)")) return -1;
    if (*count == 0) return seek_fail(err, "loss: no position of the batch has a target (nothing to predict)");
    if (batch->policy) {
        /* the policy objective from the logits the forward brought back (ref/loss.c, on the host):
         * its loss, and the per-row factors of its gradient in place of the weights */
        float *w_eff = (float *)malloc((size_t)B * T * sizeof(float));
        if (!w_eff) return seek_fail(err, "loss (cuda): out of memory");
        *loss = policy_loss_weights(w_eff, logits, targets, batch->weights, batch->policy, B * T, c->V, policy_stats);
        CU_CHECK(cudaMemcpy(G->weights, w_eff, (size_t)B * T * sizeof(float), cudaMemcpyHostToDevice));
        free(w_eff);
        if (fail_if_error(err, "loss (cuda)")) return -1;
    }
    return 0;
}

extern "C" int model_loss_grad_cuda(const Model *m, Model *grads, const TrainBatch *batch, int B, int T, double *loss,
                                    SeekErr *err) {
    const Config *c = &m->cfg;
    if (cuda_backend_check(err)) return -1;
    if (T < 2) return seek_fail(err, "loss: sequences need at least 2 tokens (got %d)", T);
    if (grads && grads->n_floats != m->n_floats)
        return seek_fail(err, "backward (cuda): the gradient model has %zu floats, the model %zu", grads->n_floats, m->n_floats);
    RunState s;
    KVCache kv;
    if (runstate_init_train(&s, c, B, T, err)) return -1;
    if (kvcache_init(&kv, c, B, T, err)) {
        runstate_free(&s);
        return -1;
    }
    const size_t N = (size_t)B * T;
    float *logits = (float *)malloc(N * c->V * sizeof(float));
    int *targets = (int *)malloc(N * sizeof(int));
    int rc = logits && targets ? 0 : seek_fail(err, "loss (cuda): out of memory");
    int count = 0;
    CudaModelCtx *x = NULL;
    cuda_check_error(NULL); /* a stale failure of an earlier call is not this call's */
    if (!rc) rc = main_forward_cuda(m, grads ? grads : m, &s, &kv, logits, targets, batch, B, T, loss, &count, NULL, &x, err);
    if (!rc && grads) {
        CudaGradCtx *G = &x->grad;
        cudaStream_t st = cuda_stream();
        CudaForwardState f;
        cuda_forward_state(x, &f);
        /* the reference accumulates into grads: start the device arena from them */
        CU_CHECK(cudaMemcpyAsync(G->arena, grads->arena, grads->n_floats * sizeof(float), cudaMemcpyHostToDevice, st));
        zero(G->g.dlogits, N * c->V, st);
        crossentropy_backward_cuda(G->g.dlogits, 1.0f, G->g.probs, G->g.targets,
                                   batch->weights || batch->policy ? G->weights : NULL, (int)N, c->V, count, st);
        model_backward_dev(G, c, &f, NULL, NULL, B, T, st);
        CU_CHECK(cudaMemcpyAsync(grads->arena, G->arena, grads->n_floats * sizeof(float), cudaMemcpyDeviceToHost, st));
        CU_CHECK(cudaStreamSynchronize(st));
        rc = fail_if_error(err, "backward (cuda)");
    }
    free(logits);
    free(targets);
    runstate_free(&s);
    kvcache_free(&kv);
    return rc;
}

extern "C" int train_step_grads_cuda(const Model *m, Model *grads, TrainBuffers *tb, const TrainBatch *batch,
                                     const LossWeights *lw, StepLosses *out, SeekErr *err) {
    const Config *c = &m->cfg;
    const int B = tb->B, T = tb->T, N = B * T;
    memset(out, 0, sizeof *out);
    if (cuda_backend_check(err)) return -1;
    if (lw->mtp_depth != tb->D)
        return seek_fail(err, "train: buffers made for MTP depth %d, the loss asks for %d", tb->D, lw->mtp_depth);
    if (grads->n_floats != m->n_floats)
        return seek_fail(err, "train (cuda): the gradient model has %zu floats, the model %zu", grads->n_floats, m->n_floats);
    cuda_check_error(NULL);
    int count;
    CudaModelCtx *x = NULL;
    if (main_forward_cuda(m, grads, &tb->s, &tb->kv, tb->g.logits, tb->g.targets, batch, B, T, &out->main, &count,
                          &tb->policy, &x, err))
        return -1;
    CudaGradCtx *G = &x->grad;
    cudaStream_t st = cuda_stream();
    CudaForwardState f;
    cuda_forward_state(x, &f);
    zero(G->arena, grads->n_floats, st);
    zero(G->g.dlogits, (size_t)N * c->V, st);
    crossentropy_backward_cuda(G->g.dlogits, 1.0f, G->g.probs, G->g.targets,
                               batch->weights || batch->policy ? G->weights : NULL, N, c->V, count, st);

    /* Multi-Token Prediction: λ/D · Σ_k L^k, reading the final norm's output on the device; its
     * gradient on that output goes into the main backward's (ref/train.c's dh0) */
    const float *dh0 = NULL;
    if (lw->mtp_depth > 0) {
        if (cuda_mtp_forward_dev(x, m, &f, &tb->mtp, batch->ids, batch->targets, f.d->xnf, err)) return -1;
        float scale = lw->mtp_lambda / (float)lw->mtp_depth;
        for (int k = 0; k < lw->mtp_depth; k++) {
            out->mtp_depth[k] = tb->mtp.d[k].loss;
            out->mtp += scale * tb->mtp.d[k].loss;
        }
        CudaGrads gr;
        if (cuda_grads(x, m, grads, B, T, &gr))
            return fail_if_error(err, "train (cuda)") ? -1 : seek_fail(err, "train (cuda): setup failed");
        zero(G->dh0, (size_t)N * c->C, st);
        cuda_mtp_backward_dev(x, &gr, &f, m, &tb->mtp, scale, G->dh0, st);
        dh0 = G->dh0;
    }

    /* each MoE layer's routing back to the host run state (the balance loss and the bias update
     * are the reference's), and the balance loss's gradient on the router scores back up */
    for (int l = 0; l < c->L; l++) {
        if (!config_layer_is_moe(c, l)) continue;
        const LayerState *a = &f.d->layer[l];
        LayerState *h = &tb->s.layer[l];
        CU_CHECK(cudaMemcpyAsync(h->r_scores, a->r_scores, (size_t)N * c->E * sizeof(float), cudaMemcpyDeviceToHost, st));
        CU_CHECK(cudaMemcpyAsync(h->e_idx, a->e_idx, (size_t)N * c->K * sizeof(int), cudaMemcpyDeviceToHost, st));
    }
    CU_CHECK(cudaStreamSynchronize(st));
    const float *const *dscores = NULL;
    if (lw->balance_alpha > 0 && c->E > 0) {
        for (int l = 0; l < c->L; l++) {
            if (!tb->dscores[l] || !G->dscores[l]) continue;
            memset(tb->dscores[l], 0, (size_t)N * c->E * sizeof(float));
            const LayerState *h = &tb->s.layer[l];
            out->balance += balance_loss(tb->dscores[l], h->r_scores, h->e_idx, B, T, c, lw->balance_alpha);
            CU_CHECK(cudaMemcpyAsync(G->dscores[l], tb->dscores[l], (size_t)N * c->E * sizeof(float),
                                     cudaMemcpyHostToDevice, st));
        }
        dscores = G->dscores;
    }
    model_backward_dev(G, c, &f, dh0, dscores, B, T, st);
    CU_CHECK(cudaMemcpyAsync(grads->arena, G->arena, grads->n_floats * sizeof(float), cudaMemcpyDeviceToHost, st));
    CU_CHECK(cudaStreamSynchronize(st));
    if (fail_if_error(err, "train (cuda)")) return -1;
    out->total = out->main + out->mtp + out->balance;
    return 0;
}

extern "C" int eval_main_loss_cuda(const Model *m, TrainBuffers *tb, const TrainBatch *batch, double *loss, SeekErr *err) {
    if (cuda_backend_check(err)) return -1;
    cuda_check_error(NULL);
    int count;
    CudaModelCtx *x = NULL;
    if (main_forward_cuda(m, m, &tb->s, &tb->kv, tb->g.logits, tb->g.targets, batch, tb->B, tb->T, loss, &count, &tb->policy,
                          &x, err))
        return -1;
    /* the final norm's output into the host run state, as the reference leaves it: the MTP
     * depths read it next (seek eval's draft acceptance, mtp_forward_on with a host h0) */
    CudaForwardState f;
    cuda_forward_state(x, &f);
    cudaStream_t st = cuda_stream();
    CU_CHECK(cudaMemcpyAsync(tb->s.xnf, f.d->xnf, (size_t)tb->B * tb->T * m->cfg.C * sizeof(float), cudaMemcpyDeviceToHost,
                             st));
    CU_CHECK(cudaStreamSynchronize(st));
    return fail_if_error(err, "eval (cuda)");
}

/* the gradient arena and its named views, for mtp.cu */
int cuda_grads(CudaModelCtx *x, const Model *m, const Model *grads, int B, int T, CudaGrads *g) {
    CudaGradCtx *G = &x->grad;
    if (alloc_grad(G, m, grads, B, T)) return -1;
    g->arena = G->arena;
    g->layers = G->gl;
    g->mtp = G->gmtp;
    g->wte = G->wte;
    g->final_norm = G->final_norm;
    g->lm_head = G->lm_head;
    return 0;
}

void cuda_backward_empty(CudaModelCtx *x) { free_grad(&x->grad); }
