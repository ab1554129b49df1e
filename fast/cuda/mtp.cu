/* mtp.cu (CUDA twin of ref/mtp.c): Multi-Token Prediction forward and backward on the GPU.
 * Depth k = 1..D, over the Tk = T − k positions of each sequence (ref/mtp.h has the equations):
 *   h'_i = eh_proj([enorm(Emb(t_{i+k})) ; hnorm(h^{k−1}_i)]);  h^k = TRM_k(h');
 *   logits^k = shared_head.norm(h^k)·W_headᵀ;  L^k = cross-entropy against t_{i+k+1}
 * Stage for stage ref/mtp.c with every op its `_cuda` twin. The module's decoder block runs through
 * forward.cu's block_forward_cuda and backward.cu's block_backward_cuda on a one-layer device
 * RunState, KVCache and GradState per depth (the reference's d->s, d->kv, d->g with its config
 * `one`, L = 1, the block in slot 0); every other buffer is a device mirror of the MtpDepth field
 * of the same name. The weights are forward.cu's device copy (the module's block is
 * layers[L + k − 1], its norms and eh_proj the rebased MtpWeights), the gradients backward.cu's
 * device arena; the embedding and the head are the main model's, so their gradients accumulate
 * into the same places, as in the reference.
 *
 * The host MtpState stays the reference's (mtp_init / mtp_free): a forward fills each depth's
 * ids_e, targets, s.ids, kv.len, logits, count and loss as the reference's does (the logits come
 * back, as model_forward_cuda's do); the other saved values (the block's, its cache rows included)
 * stay on the device for the backward, which must follow a forward of the same MtpState. The gathers and the concatenation are copies
 * (bitwise), d h^{k−1} is added one float add per element as the reference's loop: no float
 * atomics, two runs are bitwise identical.
 *
 * State kept between calls, per model (the MTP part of the model's context, CudaMtpCtx in
 * internal.cuh, on Model.dev): the device depths and the h0/dh0 staging of the public twins,
 * rebuilt when the config, D, B or T change. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda/internal.cuh"
extern "C" {
#include "backward.h"
#include "mtp.h"
}

/* the model's MTP context (CudaMtpCtx, internal.cuh): M below is always x->mtp */


static void zero(float *p, size_t n, cudaStream_t st) { CU_CHECK(cudaMemsetAsync(p, 0, n * sizeof(float), st)); }

static void free_depth(MtpDepth *d) {
    cuda_runstate_free(&d->s);
    float **f[] = {&d->kv.k, &d->kv.v, &d->kv.latent, &d->kv.k_pe, &d->emb, &d->en, &d->en_rstd, &d->hin, &d->hn,
                   &d->hn_rstd, &d->cat, &d->hout, &d->ho_n, &d->ho_rstd, &d->logits, &d->probs, &d->dh, &d->dcat,
                   &d->tmp};
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++) cuda_dfree(*f[i]);
    cuda_gradstate_free(&d->g);
    cuda_dfree(d->ids_e);
    cuda_dfree(d->targets);
    memset(d, 0, sizeof *d);
}

static void free_depths(CudaMtpCtx *M) {
    for (int k = 0; M->d && k < M->D; k++) free_depth(&M->d[k]);
    free(M->d);
    cuda_dfree(M->h0);
    cuda_dfree(M->dh0);
    memset(M, 0, sizeof *M);
}

void cuda_mtp_empty(CudaModelCtx *x) { free_depths(&x->mtp); }

/* ref/mtp.c's mtp_init on the device: each depth's one-block state and buffers, the shapes of the
 * host MtpState's (which mtp_init made) */
static int alloc_depths(CudaMtpCtx *M, const Config *c, const MtpState *ms) {
    if (M->have && M->D == ms->D && M->B == ms->B && M->T == ms->T && !memcmp(&M->cfg, c, sizeof *c)) return 0;
    free_depths(M);
    M->d = (MtpDepth *)calloc((size_t)ms->D, sizeof(MtpDepth));
    if (!M->d) {
        cuda_note_error(__FILE__, __LINE__, "mtp", "out of host memory");
        return -1;
    }
    M->have = 1; /* so free_depths releases a partial allocation */
    M->D = ms->D;
    int rc = 0;
    const int B = ms->B;
    const size_t C = c->C, V = c->V;
    for (int k = 1; !rc && k <= ms->D; k++) {
        const MtpDepth *h = &ms->d[k - 1];
        MtpDepth *d = &M->d[k - 1];
        d->T = h->T;
        d->one = *c;
        d->one.L = 1;
        const size_t N = (size_t)B * d->T;
        /* the block's saved values (the host RunState's shapes: B × Tk, Tmax = Tk, per layer) */
        if (cuda_runstate_alloc(&d->s, &d->one, &h->s) || cuda_gradstate_alloc(&d->g, &d->one, B, d->T)) rc = -1;
        /* its cache: one layer of B × Tk rows */
        d->kv.B = B;
        d->kv.Tmax = d->T;
        if (c->mla) {
            d->kv.latent = cuda_dalloc(N * c->kv_lora_rank, &rc);
            d->kv.k_pe = cuda_dalloc(N * c->dr, &rc);
        } else {
            d->kv.k = cuda_dalloc(N * c->NKV * c->HS, &rc);
            d->kv.v = cuda_dalloc(N * c->NKV * c->HS, &rc);
        }
        d->emb = cuda_dalloc(N * C, &rc);
        d->en = cuda_dalloc(N * C, &rc);
        d->en_rstd = cuda_dalloc(N, &rc);
        d->hin = cuda_dalloc(N * C, &rc);
        d->hn = cuda_dalloc(N * C, &rc);
        d->hn_rstd = cuda_dalloc(N, &rc);
        d->cat = cuda_dalloc(2 * N * C, &rc);
        d->hout = cuda_dalloc(N * C, &rc);
        d->ho_n = cuda_dalloc(N * C, &rc);
        d->ho_rstd = cuda_dalloc(N, &rc);
        d->logits = cuda_dalloc(N * V, &rc);
        d->probs = cuda_dalloc(N * V, &rc);
        d->dh = cuda_dalloc(N * C, &rc);
        d->dcat = cuda_dalloc(2 * N * C, &rc);
        d->tmp = cuda_dalloc(N * C, &rc);
        d->ids_e = (int *)cuda_dalloc(N, &rc); /* ints: same size as floats */
        d->targets = (int *)cuda_dalloc(N, &rc);
    }
    M->h0 = cuda_dalloc((size_t)B * ms->T * C, &rc);
    M->dh0 = cuda_dalloc((size_t)B * ms->T * C, &rc);
    if (rc) {
        free_depths(M);
        return -1;
    }
    M->B = B;
    M->T = ms->T;
    M->cfg = *c;
    return 0;
}

static int fail_if_error(SeekErr *err) {
    if (cuda_check_error(err)) return seek_fail_prefix(err, "mtp (cuda)");
    return 0;
}

int cuda_mtp_forward_dev(CudaModelCtx *x, const Model *m, const CudaForwardState *f, MtpState *ms, const int *ids,
                         const int *targets, const float *h0, SeekErr *err) {
    CudaMtpCtx *M = &x->mtp;
    const Config *c = &m->cfg;
    const int B = ms->B, T = ms->T, C = c->C;
    if (!m->has_mtp || c->mtp_depth < ms->D)
        return seek_fail(err, "mtp: the model has %d MTP module(s), %d requested", m->has_mtp ? c->mtp_depth : 0, ms->D);
    for (int i = 0; i < B * T; i++)
        if (ids[i] < 0 || ids[i] >= c->V)
            return seek_fail(err, "mtp: token id %d at index %d is out of range [0, %d)", ids[i], i, c->V);
    if (alloc_depths(M, c, ms)) return fail_if_error(err) ? -1 : seek_fail(err, "mtp (cuda): setup failed");
    M->fwd = NULL;
    cudaStream_t st = cuda_stream();
    for (int k = 1; k <= ms->D; k++) {
        MtpDepth *h = &ms->d[k - 1], *d = &M->d[k - 1];
        const MtpWeights *mw = &f->mtp[k - 1];
        const int Tk = d->T, N = B * Tk;
        const size_t NC = (size_t)N * C;
        /* the previous depth's hidden state, at the first Tk positions of each sequence */
        const float *prev = k == 1 ? h0 : M->d[k - 2].hout;
        int Tprev = k == 1 ? T : M->d[k - 2].T;
        CU_CHECK(cudaMemcpy2DAsync(d->hin, (size_t)Tk * C * sizeof(float), prev, (size_t)Tprev * C * sizeof(float),
                                   (size_t)Tk * C * sizeof(float), (size_t)B, cudaMemcpyDeviceToDevice, st));
        for (int b = 0; b < B; b++)
            for (int i = 0; i < Tk; i++) {
                h->ids_e[b * Tk + i] = ids[b * T + i + k];
                h->targets[b * Tk + i] = targets ? targets[b * T + i + k] : i + k + 1 < T ? ids[b * T + i + k + 1] : -1;
            }
        CU_CHECK(cudaMemcpyAsync(d->ids_e, h->ids_e, (size_t)N * sizeof(int), cudaMemcpyHostToDevice, st));
        CU_CHECK(cudaMemcpyAsync(d->targets, h->targets, (size_t)N * sizeof(int), cudaMemcpyHostToDevice, st));
        /* h' = eh_proj([enorm(Emb(t_{i+k})) ; hnorm(h^{k-1}_i)]) */
        embedding_forward_cuda(d->emb, d->ids_e, f->wte, N, C, st);
        rmsnorm_forward_cuda(d->en, d->en_rstd, d->emb, mw->enorm, N, C, c->eps, st);
        rmsnorm_forward_cuda(d->hn, d->hn_rstd, d->hin, mw->hnorm, N, C, c->eps, st);
        CU_CHECK(cudaMemcpy2DAsync(d->cat, 2 * (size_t)C * sizeof(float), d->en, (size_t)C * sizeof(float),
                                   (size_t)C * sizeof(float), (size_t)N, cudaMemcpyDeviceToDevice, st));
        CU_CHECK(cudaMemcpy2DAsync(d->cat + C, 2 * (size_t)C * sizeof(float), d->hn, (size_t)C * sizeof(float),
                                   (size_t)C * sizeof(float), (size_t)N, cudaMemcpyDeviceToDevice, st));
        matmul_forward_cuda(d->s.x, d->cat, mw->eh_proj, N, 2 * C, C, st);
        /* the module's decoder block, then the shared head */
        char px[32];
        snprintf(px, sizeof px, "mtp.%d", k - 1);
        for (int i = 0; i < N; i++) h->s.ids[i] = h->ids_e[i];
        CU_CHECK(cudaMemcpyAsync(d->s.ids, d->ids_e, (size_t)N * sizeof(int), cudaMemcpyDeviceToDevice, st));
        d->kv.len = 0;
        block_forward_cuda(m, &d->s, &h->s, &d->kv, &f->layers[c->L + k - 1], &d->s.layer[0], &h->s.layer[0], 0, px, B,
                           Tk, 0, ATTN_NAIVE, NULL, st);
        d->kv.len = Tk;
        h->kv.len = Tk;
        CU_CHECK(cudaMemcpyAsync(d->hout, d->s.x, NC * sizeof(float), cudaMemcpyDeviceToDevice, st));
        rmsnorm_forward_cuda(d->ho_n, d->ho_rstd, d->hout, mw->head_norm, N, C, c->eps, st);
        matmul_forward_cuda(d->logits, d->ho_n, f->lm_head, N, C, c->V, st);
        d->loss = crossentropy_forward_cuda(d->probs, d->logits, d->targets, NULL, N, c->V, &d->count, st);
        h->loss = d->loss;
        h->count = d->count;
        CU_CHECK(cudaMemcpyAsync(h->logits, d->logits, (size_t)N * c->V * sizeof(float), cudaMemcpyDeviceToHost, st));
    }
    CU_CHECK(cudaStreamSynchronize(st));
    if (fail_if_error(err)) return -1;
    M->fwd = ms;
    return 0;
}

void cuda_mtp_backward_dev(CudaModelCtx *x, const CudaGrads *g, const CudaForwardState *f, const Model *m,
                           const MtpState *ms, float scale, float *dh0, cudaStream_t st) {
    CudaMtpCtx *M = &x->mtp;
    const Config *c = &m->cfg;
    const int B = ms->B, T = ms->T, C = c->C;
    if (!M->have || M->fwd != ms || M->D != ms->D || M->B != B || M->T != T) {
        cuda_note_error(__FILE__, __LINE__, "mtp_backward_cuda", "no forward of this MtpState on the device");
        return;
    }
    for (int k = 1; k <= ms->D; k++) zero(M->d[k - 1].dh, (size_t)B * M->d[k - 1].T * C, st);
    for (int k = ms->D; k >= 1; k--) {
        MtpDepth *d = &M->d[k - 1];
        const MtpWeights *mw = &f->mtp[k - 1];
        const MtpWeights *gmw = &g->mtp[k - 1];
        const int Tk = d->T, N = B * Tk;
        const size_t NC = (size_t)N * C;
        /* logits = ho_n·W_headᵀ, ho_n = shared_head.norm(h^k) */
        float *dlogits = d->g.dlogits;
        zero(dlogits, (size_t)N * c->V, st);
        crossentropy_backward_cuda(dlogits, scale, d->probs, d->targets, NULL, N, c->V, d->count, st);
        zero(d->tmp, NC, st);
        matmul_backward_cuda(d->tmp, g->lm_head, dlogits, d->ho_n, f->lm_head, N, C, c->V, st);
        rmsnorm_backward_cuda(d->dh, gmw->head_norm, d->tmp, d->hout, mw->head_norm, d->ho_rstd, N, C, st);
        /* the block: g.dx holds d h^k on entry, d h' on return */
        CU_CHECK(cudaMemcpyAsync(d->g.dx, d->dh, NC * sizeof(float), cudaMemcpyDeviceToDevice, st));
        block_backward_cuda(&g->layers[c->L + k - 1], &d->g, c, &d->s, &d->kv, &f->layers[c->L + k - 1], &d->s.layer[0],
                            0, NULL, B, Tk, st);
        /* h' = cat·W_ehᵀ; cat = [enorm(emb) ; hnorm(h^{k-1})] */
        zero(d->dcat, 2 * NC, st);
        matmul_backward_cuda(d->dcat, gmw->eh_proj, d->g.dx, d->cat, mw->eh_proj, N, 2 * C, C, st);
        float *d_en = d->en, *d_hn = d->hn; /* reuse the forward buffers as contiguous halves of dcat */
        CU_CHECK(cudaMemcpy2DAsync(d_en, (size_t)C * sizeof(float), d->dcat, 2 * (size_t)C * sizeof(float),
                                   (size_t)C * sizeof(float), (size_t)N, cudaMemcpyDeviceToDevice, st));
        CU_CHECK(cudaMemcpy2DAsync(d_hn, (size_t)C * sizeof(float), d->dcat + C, 2 * (size_t)C * sizeof(float),
                                   (size_t)C * sizeof(float), (size_t)N, cudaMemcpyDeviceToDevice, st));
        zero(d->tmp, NC, st);
        rmsnorm_backward_cuda(d->tmp, gmw->enorm, d_en, d->emb, mw->enorm, d->en_rstd, N, C, st);
        embedding_backward_cuda(g->wte, d->tmp, d->ids_e, N, C, st);
        zero(d->tmp, NC, st);
        rmsnorm_backward_cuda(d->tmp, gmw->hnorm, d_hn, d->hin, mw->hnorm, d->hn_rstd, N, C, st);
        /* d h^{k-1} at the Tk positions: into the previous depth, or the main model */
        float *dprev = k == 1 ? dh0 : M->d[k - 2].dh;
        int Tprev = k == 1 ? T : M->d[k - 2].T;
        for (int b = 0; b < B; b++)
            cuda_residual_add(dprev + (size_t)b * Tprev * C, d->tmp + (size_t)b * Tk * C, (size_t)Tk * C, st);
    }
}

/* ---- the twins: host h0 / dh0 and host gradients, as the reference's ---- */

extern "C" int mtp_forward_cuda(const Model *m, MtpState *ms, const int *ids, const int *targets, const float *h0,
                                SeekErr *err) {
    const Config *c = &m->cfg;
    if (cuda_backend_check(err)) return -1;
    if (!m->has_mtp || c->mtp_depth < ms->D)
        return seek_fail(err, "mtp: the model has %d MTP module(s), %d requested", m->has_mtp ? c->mtp_depth : 0, ms->D);
    cuda_check_error(NULL); /* a stale failure of an earlier call is not this call's */
    CudaModelCtx *x = cuda_model_upload(m); /* m's context, its device weights uploaded when needed */
    if (!x) return fail_if_error(err) ? -1 : seek_fail(err, "mtp (cuda): setup failed");
    CudaMtpCtx *M = &x->mtp;
    if (alloc_depths(M, c, ms)) return fail_if_error(err) ? -1 : seek_fail(err, "mtp (cuda): setup failed");
    CudaForwardState f;
    cuda_forward_state(x, &f);
    cudaStream_t st = cuda_stream();
    CU_CHECK(cudaMemcpyAsync(M->h0, h0, (size_t)ms->B * ms->T * c->C * sizeof(float), cudaMemcpyHostToDevice, st));
    return cuda_mtp_forward_dev(x, m, &f, ms, ids, targets, M->h0, err);
}

extern "C" void mtp_backward_cuda(Model *grads, const Model *m, MtpState *ms, float scale, float *dh0) {
    const Config *c = &m->cfg;
    if (cuda_backend_check(NULL)) return;
    if (grads->n_floats != m->n_floats) {
        cuda_note_error(__FILE__, __LINE__, "mtp_backward_cuda", "the gradient model's size is not the model's");
        return;
    }
    const CudaModelCtx *had = (const CudaModelCtx *)m->dev;
    if (!had || m->dev_free != cuda_model_ctx_free || !had->mtp.have || had->mtp.fwd != ms) {
        cuda_note_error(__FILE__, __LINE__, "mtp_backward_cuda", "no forward of this MtpState on the device");
        return;
    }
    CudaModelCtx *x = cuda_model_upload(m); /* the forward's weights (uploaded again only if they changed) */
    if (!x) {
        cuda_note_error(__FILE__, __LINE__, "mtp_backward_cuda", "uploading the weights failed");
        return;
    }
    CudaMtpCtx *M = &x->mtp;
    CudaGrads g;
    if (cuda_grads(x, m, grads, ms->B, ms->T, &g)) return;
    CudaForwardState f;
    cuda_forward_state(x, &f);
    cudaStream_t st = cuda_stream();
    const size_t nh = (size_t)ms->B * ms->T * c->C;
    /* the reference accumulates into grads and dh0: start the device copies from them */
    CU_CHECK(cudaMemcpyAsync(g.arena, grads->arena, grads->n_floats * sizeof(float), cudaMemcpyHostToDevice, st));
    CU_CHECK(cudaMemcpyAsync(M->dh0, dh0, nh * sizeof(float), cudaMemcpyHostToDevice, st));
    cuda_mtp_backward_dev(x, &g, &f, m, ms, scale, M->dh0, st);
    CU_CHECK(cudaMemcpyAsync(grads->arena, g.arena, grads->n_floats * sizeof(float), cudaMemcpyDeviceToHost, st));
    CU_CHECK(cudaMemcpyAsync(dh0, M->dh0, nh * sizeof(float), cudaMemcpyDeviceToHost, st));
    CU_CHECK(cudaStreamSynchronize(st));
}
