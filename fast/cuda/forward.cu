/* forward.cu (CUDA twin of ref/forward.c): the model forward and generation on the GPU.
 *
 * The structure is the reference's, stage for stage: the same LayerState/RunState fields (a
 * device copy of the caller's RunState, same names, same shapes), the same KV cache layout, the
 * same hook_point calls with the same names, shapes and order. Only the ops change to their
 * `_cuda` twins; a diff against ref/forward.c's block_forward shows exactly what the GPU path
 * changes. Layer code never allocates: the device run state, cache and workspace are sized when
 * the shapes change, before the layers run.
 *
 * Hooks. cuda_hook_dev() is the bridge: when the ActCache wants a stage, or has an edit callback, the
 * device tensor is copied into the host RunState buffer of the same name, hook_bt() runs there
 * (edit, then capture), and an edit is copied back before the forward goes on; with neither,
 * nothing leaves the GPU. Attention scores/patterns (replaced per call, used by nothing after
 * their hook) are copied and compacted on the host as the reference does. Logits always come back.
 *
 * State kept between calls, per model: each Model carries its own context (CudaModelCtx on
 * Model.dev, internal.cuh; freed by model_free), so models used in turn never evict each other.
 * This file fills its forward part (CudaFwdCtx):
 *   - the weights: one device arena, uploaded on the model's first use; a fingerprint (its size and
 *     4096 sampled values) notices new host values (a training step, an edit), which are copied
 *     into the same arena, the run state and cache kept; a changed arena or config uploads anew;
 *     the MTP modules' blocks and norms are rebased with the rest (mtp.cu runs them);
 *   - the run state: rebuilt when B, T, Tmax, attention capture or the model change;
 *   - the KV cache: after each call the new rows go back into the caller's host KVCache, so the
 *     host cache always holds what the device's does; a call with another cache, or one whose
 *     length does not match what the device holds, uploads the host rows first (len 0: none).
 * The stream, cuBLAS handle, sticky error and workspace are the device context's (common.cu).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda/internal.cuh"
extern "C" {
#include "mla.h"
#include "moe.h"
}

/* ---- the model's forward context (CudaFwdCtx, internal.cuh): X below is always x->fwd ---- */

static void free_runstate(CudaFwdCtx *X);
static void free_kv(CudaFwdCtx *X);

/* forward.cu records failures through the sticky error; this turns it into the call's result */
static int fail_if_error(SeekErr *err) {
    if (cuda_check_error(err)) return seek_fail_prefix(err, "forward (cuda)");
    return 0;
}


/* ---- weights ---- */

static uint64_t fingerprint(const Model *m) {
    uint64_t h = 1469598103934665603ull ^ (uint64_t)m->n_floats;
    size_t step = m->n_floats / 4096 + 1;
    for (size_t i = 0; i < m->n_floats; i += step) {
        uint32_t bits;
        memcpy(&bits, m->arena + i, 4);
        h = (h ^ bits) * 1099511628211ull;
    }
    return h;
}

static void free_weights(CudaFwdCtx *X) {
    cuda_dfree(X->d_arena);
    free(X->layers);
    free(X->mtp);
    X->d_arena = NULL;
    X->layers = NULL;
    X->mtp = NULL;
    X->arena = NULL;
}

/* m's weights into its context x (X = x->fwd): nothing when the device copy is current */
static int upload_weights(CudaModelCtx *x, const Model *m) {
    CudaFwdCtx *X = &x->fwd;
    uint64_t fp = fingerprint(m);
    if (X->arena == m->arena && X->n_floats == m->n_floats && X->fp == fp && X->d_arena) return 0;
    if (X->arena == m->arena && X->n_floats == m->n_floats && X->d_arena && !memcmp(&X->cfg, &m->cfg, sizeof X->cfg)) {
        /* the same model with new values (a training step, an edit): the device copy is refreshed,
         * the run state and cache (sized by the config, which has not changed) are kept */
        CU_CHECK(cudaMemcpy(X->d_arena, m->arena, m->n_floats * sizeof(float), cudaMemcpyHostToDevice));
        CU_CHECK(cudaDeviceSynchronize());
        X->fp = fp;
        x->uploads++;
        return 0;
    }
    /* a first use, or the model's arena or config changed: the run state and cache sized for
     * what was there go too */
    free_weights(X);
    free_runstate(X);
    free_kv(X);
    int rc = 0;
    X->d_arena = cuda_dalloc(m->n_floats, &rc);
    if (rc) return -1;
    CU_CHECK(cudaMemcpy(X->d_arena, m->arena, m->n_floats * sizeof(float), cudaMemcpyHostToDevice));
    CU_CHECK(cudaDeviceSynchronize()); /* a pageable upload may still be in flight when cudaMemcpy returns */
    x->uploads++;
    /* the MTP modules' weights live in the arena too (model_init lays them out whether or not a
     * checkpoint held them): their blocks follow the main layers, as in Model.layers */
    CudaModelTables t;
    rc = cuda_rebase_model(m, X->d_arena, &t);
    X->n_layers = m->cfg.L + m->cfg.mtp_depth;
    X->layers = t.layers;
    X->mtp = t.mtp;
    X->wte = t.wte;
    X->final_norm = t.final_norm;
    X->lm_head = t.lm_head;
    if (rc) {
        free_weights(X);
        return -1;
    }
    X->arena = m->arena;
    X->n_floats = m->n_floats;
    X->cfg = m->cfg;
    X->fp = fp;
    return 0;
}

CudaModelCtx *cuda_model_upload(const Model *m) {
    CudaModelCtx *x = cuda_model_ctx(m);
    if (!x || upload_weights(x, m)) return NULL;
    return x;
}

extern "C" const LayerWeights *cuda_model_layers(const Model *m, SeekErr *err) {
    if (cuda_backend_check(err)) return NULL;
    CudaModelCtx *x = cuda_model_upload(m);
    if (!x) {
        fail_if_error(err);
        return NULL;
    }
    return x->fwd.layers;
}

/* ---- the device run state: ref/forward.c's layerstate_alloc/runstate_alloc, inference form ---- */

static void free_layer(LayerState *a) {
    float **fields[LAYERSTATE_FLOATS];
    for (size_t i = 0, n = layerstate_floats(a, fields); i < n; i++) cuda_dfree(*fields[i]);
    cuda_dfree(a->e_idx);
}

void cuda_runstate_free(RunState *d) {
    if (d->layer)
        for (int l = 0; l < d->nL; l++)
            if (d->per_layer || l == 0) free_layer(&d->layer[l]);
    free(d->layer);
    float **sf[] = {&d->inv_freq, &d->x, &d->xf, &d->xnf, &d->rstdf, &d->tmp};
    for (size_t i = 0; i < sizeof sf / sizeof sf[0]; i++) cuda_dfree(*sf[i]);
    cuda_dfree(d->ids);
    memset(d, 0, sizeof *d);
}

static void free_runstate(CudaFwdCtx *X) {
    if (!X->have_rs) return;
    cuda_runstate_free(&X->d);
    cuda_dfree(X->logits);
    X->logits = NULL;
    X->have_rs = 0;
}

/* one layer's buffers, ref/forward.c's layerstate_alloc (ffn: the widest FFN activation) */
static void alloc_layer(LayerState *a, const Config *c, int B, int T, int Tmax, int with_attn, int ffn, int *rc) {
    size_t N = (size_t)B * T;
    int qk = config_qk_dim(c), dv = config_v_dim(c);
    a->resid = cuda_dalloc(N * c->C, rc);
    a->xn1 = cuda_dalloc(N * c->C, rc);
    a->rstd1 = cuda_dalloc(N, rc);
    a->q = cuda_dalloc(N * c->NH * qk, rc);
    a->z = cuda_dalloc(N * c->NH * dv, rc);
    a->attn_out = cuda_dalloc(N * c->C, rc);
    a->resid_mid = cuda_dalloc(N * c->C, rc);
    a->xn2 = cuda_dalloc(N * c->C, rc);
    a->rstd2 = cuda_dalloc(N, rc);
    a->mlp_out = cuda_dalloc(N * c->C, rc);
    a->gate = cuda_dalloc(N * ffn, rc);
    a->up = cuda_dalloc(N * ffn, rc);
    a->act = cuda_dalloc(N * ffn, rc);
    if (with_attn) {
        a->scores = cuda_dalloc((size_t)B * c->NH * T * Tmax, rc);
        a->pattern = cuda_dalloc((size_t)B * c->NH * T * Tmax, rc);
    }
    if (!c->mla) {
        a->k_new = cuda_dalloc(N * c->NKV * c->HS, rc);
        a->v_new = cuda_dalloc(N * c->NKV * c->HS, rc);
    } else {
        if (c->q_lora_rank) {
            a->q_a = cuda_dalloc(N * c->q_lora_rank, rc);
            a->q_latent = cuda_dalloc(N * c->q_lora_rank, rc);
            a->q_rstd = cuda_dalloc(N, rc);
        }
        a->kv_a = cuda_dalloc(N * ((size_t)c->kv_lora_rank + c->dr), rc);
        a->kv_rstd = cuda_dalloc(N, rc);
        a->latent_new = cuda_dalloc(N * c->kv_lora_rank, rc);
        a->kpe_new = cuda_dalloc(N * c->dr, rc);
        a->kv_exp = cuda_dalloc((size_t)B * Tmax * c->NH * ((size_t)c->dn + c->dv), rc);
        a->k_full = cuda_dalloc((size_t)B * Tmax * c->NH * qk, rc);
        a->v_full = cuda_dalloc((size_t)B * Tmax * c->NH * c->dv, rc);
        a->q_abs = cuda_dalloc(N * c->NH * c->kv_lora_rank, rc);
        a->o_lat = cuda_dalloc(N * c->NH * c->kv_lora_rank, rc);
    }
    if (c->E > 0) {
        a->r_logits = cuda_dalloc(N * c->E, rc);
        a->r_scores = cuda_dalloc(N * c->E, rc);
        a->r_choice = cuda_dalloc(N * c->E, rc);
        a->e_w = cuda_dalloc(N * c->K, rc);
        a->e_idx_f = cuda_dalloc(N * c->K, rc);
        a->eg = cuda_dalloc(N * c->K * c->Hm, rc);
        a->eu = cuda_dalloc(N * c->K * c->Hm, rc);
        a->ea = cuda_dalloc(N * c->K * c->Hm, rc);
        a->eo = cuda_dalloc(N * c->K * c->C, rc);
        a->routed = cuda_dalloc(N * c->C, rc);
        a->shared = cuda_dalloc(N * c->C, rc);
        a->e_idx = (int *)cuda_dalloc(N * c->K, rc); /* ints: same size as floats */
    }
}

/* ref/forward.c's runstate_alloc on the device, with the shapes of the host RunState s (B, T,
 * Tmax, with_attn, per_layer) for config c (its L layers), the frequency table copied from s */
int cuda_runstate_alloc(RunState *d, const Config *c, const RunState *s) {
    const int B = s->B, T = s->T, Tmax = s->Tmax;
    size_t N = (size_t)B * T;
    int ffn = c->I_ffn;
    if (c->E > 0 && c->Es * c->Hm > ffn) ffn = c->Es * c->Hm;
    int rc = 0;
    memset(d, 0, sizeof *d);
    d->B = B;
    d->T = T;
    d->Tmax = Tmax;
    d->nL = c->L;
    d->with_attn = s->with_attn;
    d->per_layer = s->per_layer;
    d->layer = (LayerState *)calloc((size_t)c->L, sizeof(LayerState));
    if (!d->layer) {
        cuda_note_error(__FILE__, __LINE__, "run state", "out of host memory");
        memset(d, 0, sizeof *d);
        return -1;
    }
    /* inference: every layer shares one set of buffers, as in the reference; training (per_layer,
     * ref's runstate_init_train) keeps every layer's saved values for the backward */
    for (int l = 0; l < (s->per_layer ? c->L : 1); l++) alloc_layer(&d->layer[l], c, B, T, Tmax, s->with_attn, ffn, &rc);
    if (!s->per_layer)
        for (int l = 1; l < c->L; l++) d->layer[l] = d->layer[0];
    size_t tmp_w = (size_t)c->NH * (c->mla ? c->dr : c->HS);
    if (tmp_w < (size_t)c->C) tmp_w = (size_t)c->C;
    d->inv_freq = cuda_dalloc((size_t)c->rope_dim / 2 + 1, &rc);
    d->x = cuda_dalloc(N * c->C, &rc);
    d->xf = cuda_dalloc(N * c->C, &rc);
    d->xnf = cuda_dalloc(N * c->C, &rc);
    d->rstdf = cuda_dalloc(N, &rc);
    d->tmp = cuda_dalloc(N * tmp_w, &rc);
    d->ids = (int *)cuda_dalloc(N, &rc);
    if (rc) {
        cuda_runstate_free(d); /* a partial allocation */
        return -1;
    }
    /* the reference's frequency table, computed once on the host (YaRN included) */
    CU_CHECK(cudaMemcpy(d->inv_freq, s->inv_freq, ((size_t)c->rope_dim / 2 + 1) * sizeof(float), cudaMemcpyHostToDevice));
    CU_CHECK(cudaDeviceSynchronize()); /* the zeroing and the table are in place before any layer runs */
    d->rope_attn_factor = s->rope_attn_factor;
    /* the workspace the MoE dispatch and long attention rows take, reserved before the layers run */
    if (c->E > 0) {
        size_t NK = N * c->K;
        cuda_workspace(NK * ((size_t)c->C + 3 * (size_t)c->Hm) * sizeof(float) + ((size_t)c->E + 1 + 2 * NK) * sizeof(int));
    }
    return 0;
}

static int alloc_runstate(CudaFwdCtx *X, const Config *c, const RunState *s) {
    if (X->have_rs && X->B == s->B && X->T == s->T && X->Tmax == s->Tmax && X->with_attn == s->with_attn &&
        X->per_layer == s->per_layer)
        return 0;
    free_runstate(X);
    int rc = 0;
    if (cuda_runstate_alloc(&X->d, c, s)) return -1;
    X->logits = cuda_dalloc((size_t)s->B * s->T * c->V, &rc);
    X->have_rs = 1; /* so free_runstate releases a partial allocation */
    if (rc) {
        free_runstate(X);
        return -1;
    }
    X->per_layer = s->per_layer;
    X->B = s->B;
    X->T = s->T;
    X->Tmax = s->Tmax;
    X->with_attn = s->with_attn;
    return 0;
}

/* ---- the device KV cache, kept equal to the caller's host cache ---- */

static void free_kv(CudaFwdCtx *X) {
    cuda_dfree(X->dkv.k);
    cuda_dfree(X->dkv.v);
    cuda_dfree(X->dkv.latent);
    cuda_dfree(X->dkv.k_pe);
    memset(&X->dkv, 0, sizeof X->dkv);
    X->have_kv = 0;
    X->host_kv = NULL;
    X->kv_len = -1;
}

/* copies rows [r0, r0 + n) of every (layer, sequence) block of width w floats between caches */
static void kv_copy_rows(float *dst, const float *src, const Config *c, int B, int Tmax, int r0, int n, size_t w,
                         cudaMemcpyKind kind, cudaStream_t st) {
    if (!dst || !src || n <= 0 || !w) return;
    size_t pitch = (size_t)Tmax * w * sizeof(float), off = (size_t)r0 * w;
    CU_CHECK(cudaMemcpy2DAsync(dst + off, pitch, src + off, pitch, (size_t)n * w * sizeof(float), (size_t)c->L * B, kind, st));
}

static void kv_sync_rows(CudaFwdCtx *X, const Config *c, KVCache *h, int r0, int n, cudaMemcpyKind kind,
                         cudaStream_t st) {
    int up = kind == cudaMemcpyHostToDevice;
    KVCache *dst = up ? &X->dkv : h, *src = up ? h : &X->dkv;
    if (c->mla) {
        kv_copy_rows(dst->latent, src->latent, c, h->B, h->Tmax, r0, n, (size_t)c->kv_lora_rank, kind, st);
        kv_copy_rows(dst->k_pe, src->k_pe, c, h->B, h->Tmax, r0, n, (size_t)c->dr, kind, st);
    } else {
        kv_copy_rows(dst->k, src->k, c, h->B, h->Tmax, r0, n, (size_t)c->NKV * c->HS, kind, st);
        kv_copy_rows(dst->v, src->v, c, h->B, h->Tmax, r0, n, (size_t)c->NKV * c->HS, kind, st);
    }
}

static int attach_kv(CudaFwdCtx *X, const Config *c, KVCache *kv, cudaStream_t st) {
    if (X->have_kv && X->host_kv == kv && X->dkv.B == kv->B && X->dkv.Tmax == kv->Tmax && X->kv_len == kv->len) return 0;
    if (!X->have_kv || X->dkv.B != kv->B || X->dkv.Tmax != kv->Tmax) {
        free_kv(X);
        int rc = 0;
        size_t rows = (size_t)c->L * kv->B * kv->Tmax;
        if (c->mla) {
            X->dkv.latent = cuda_dalloc(rows * c->kv_lora_rank, &rc);
            X->dkv.k_pe = cuda_dalloc(rows * c->dr, &rc);
        } else {
            X->dkv.k = cuda_dalloc(rows * c->NKV * c->HS, &rc);
            X->dkv.v = cuda_dalloc(rows * c->NKV * c->HS, &rc);
        }
        X->have_kv = 1;
        if (rc) {
            free_kv(X);
            return -1;
        }
        X->dkv.B = kv->B;
        X->dkv.Tmax = kv->Tmax;
    }
    /* the host cache is the truth: bring what it holds */
    kv_sync_rows(X, c, kv, 0, kv->len, cudaMemcpyHostToDevice, st);
    X->host_kv = kv;
    X->kv_len = kv->len;
    return 0;
}

CudaModelCtx *cuda_forward_setup(const Model *m, const RunState *s, KVCache *kv, cudaStream_t st) {
    CudaModelCtx *x = cuda_model_upload(m);
    if (!x || alloc_runstate(&x->fwd, &m->cfg, s) || attach_kv(&x->fwd, &m->cfg, kv, st)) return NULL;
    return x;
}

void cuda_forward_state(CudaModelCtx *x, CudaForwardState *f) {
    CudaFwdCtx *X = &x->fwd;
    f->d = &X->d;
    f->kv = &X->dkv;
    f->layers = X->layers;
    f->wte = X->wte;
    f->final_norm = X->final_norm;
    f->lm_head = X->lm_head;
    f->mtp = X->mtp;
    f->logits = X->logits;
}

void cuda_forward_empty(CudaModelCtx *x) {
    CudaFwdCtx *X = &x->fwd;
    free_runstate(X);
    free_kv(X);
    free_weights(X);
    memset(X, 0, sizeof *X);
}

/* ---- hooks ---- */

/* The hook point of a (B, T, d1[, d2]) device tensor: copied to `host` (the RunState buffer of
 * the same name) only when the cache wants the stage or edits; an edit goes back to the device. */
void cuda_hook_dev(ActCache *h, float *dev, float *host, int B, int T, size_t d1, size_t d2, const char *px,
                   const char *stage, cudaStream_t st) {
    if (!h) return;
    char name[HOOK_NAME_LEN];
    if (px && *px) snprintf(name, sizeof name, "%s.%s", px, stage);
    else snprintf(name, sizeof name, "%s", stage);
    if (!h->edit && !hook_wants(h, name)) return;
    size_t n = (size_t)B * T * d1 * (d2 ? d2 : 1);
    CU_CHECK(cudaMemcpyAsync(host, dev, n * sizeof(float), cudaMemcpyDeviceToHost, st));
    CU_CHECK(cudaStreamSynchronize(st));
    hook_bt(h, host, B, T, d1, d2, px, stage);
    if (h->edit) CU_CHECK(cudaMemcpyAsync(dev, host, n * sizeof(float), cudaMemcpyHostToDevice, st));
}

/* A (B, NH, T, Tk) attention tensor: the device holds rows of Tmax; compacted on the host */
void cuda_hook_attn_dev(ActCache *h, const float *dev, float *host, int B, int NH, int T, int Tk, int Tmax,
                        const char *px, const char *stage, cudaStream_t st) {
    if (!h || !dev) return;
    char name[HOOK_NAME_LEN];
    snprintf(name, sizeof name, "%s.%s", px, stage);
    if (!h->edit && !hook_wants(h, name)) return;
    CU_CHECK(cudaMemcpyAsync(host, dev, (size_t)B * NH * T * Tmax * sizeof(float), cudaMemcpyDeviceToHost, st));
    CU_CHECK(cudaStreamSynchronize(st));
    compact_attn(host, B, NH, T, Tk, Tmax);
    hook_attn(h, host, B, NH, T, Tk, px, stage);
}

__global__ static void int_to_float_kernel(float *y, const int *x, size_t n) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) y[i] = (float)x[i];
}

void cuda_int_to_float(float *y, const int *x, size_t n, cudaStream_t st) {
    if (!n) return;
    int_to_float_kernel<<<cdiv(n, 256), 256, 0, st>>>(y, x, n);
    LAUNCH_CHECK("int_to_float");
}

/* ---- attention blocks ---- */

/* LLaMA attention after its projections: RoPE on q and k, their hooks, the new keys and values
 * appended to the cache (B blocks of T rows). Shared with the bf16 backend (fast/cuda-fast). */
void cuda_llama_rope_append(RunState *s, KVCache *kv, LayerState *a, LayerState *ha, const Config *c, int l,
                            const char *px, int B, int T, int pos0, ActCache *hooks, cudaStream_t st) {
    const int N = B * T, NH = c->NH, NKV = c->NKV, HS = c->HS;
    cuda_rope_rows(a->q, N, T, pos0, NH, (size_t)NH * HS, HS, s->inv_freq, s->rope_attn_factor, HS, c->rope_layout, st);
    cuda_rope_rows(a->k_new, N, T, pos0, NKV, (size_t)NKV * HS, HS, s->inv_freq, s->rope_attn_factor, HS,
                   c->rope_layout, st);
    cuda_hook_dev(hooks, a->q, ha->q, B, T, NH, HS, px, "attn.hook_rot_q", st);
    cuda_hook_dev(hooks, a->k_new, ha->k_new, B, T, NKV, HS, px, "attn.hook_rot_k", st);
    size_t kvw = (size_t)NKV * HS;
    size_t dpitch = (size_t)kv->Tmax * kvw * sizeof(float), spitch = (size_t)T * kvw * sizeof(float);
    size_t base0 = ((size_t)l * kv->B) * kv->Tmax + pos0;
    CU_CHECK(cudaMemcpy2DAsync(kv->k + base0 * kvw, dpitch, a->k_new, spitch, spitch, (size_t)B, cudaMemcpyDeviceToDevice, st));
    CU_CHECK(cudaMemcpy2DAsync(kv->v + base0 * kvw, dpitch, a->v_new, spitch, spitch, (size_t)B, cudaMemcpyDeviceToDevice, st));
}


/* MLA after its projections: the decoupled RoPE (the rope slice of every query head, and the one
 * shared rope key), their hooks, the latent and the rotated rope key appended to the cache (B
 * blocks of T rows). Shared with the bf16 backend (fast/cuda-fast). */
void cuda_mla_rope_append(RunState *s, RunState *hs, KVCache *kv, LayerState *a, LayerState *ha, const Config *c,
                          int l, const char *px, int B, int T, int pos0, ActCache *hooks, cudaStream_t st) {
    const int N = B * T, NH = c->NH, dn = c->dn, dr = c->dr, dq = dn + dr, dkv = c->kv_lora_rank;
    cuda_rope_rows(a->q + dn, N, T, pos0, NH, (size_t)NH * dq, dq, s->inv_freq, s->rope_attn_factor, dr, c->rope_layout, st);
    cuda_rope_rows(a->kpe_new, N, T, pos0, 1, dr, dr, s->inv_freq, s->rope_attn_factor, dr, c->rope_layout, st);
    char name[HOOK_NAME_LEN];
    snprintf(name, sizeof name, "%s.attn.hook_rot_q", px);
    if (hook_wants(hooks, name)) { /* gather the rope slices into (N, NH, dr) */
        CU_CHECK(cudaMemcpy2DAsync(s->tmp, (size_t)dr * sizeof(float), a->q + dn, (size_t)dq * sizeof(float),
                                   (size_t)dr * sizeof(float), (size_t)N * NH, cudaMemcpyDeviceToDevice, st));
        cuda_hook_dev(hooks, s->tmp, hs->tmp, B, T, NH, dr, px, "attn.hook_rot_q", st);
    }
    cuda_hook_dev(hooks, a->kpe_new, ha->kpe_new, B, T, dr, 0, px, "attn.hook_rot_k", st);
    /* the cache keeps only the latent and the rotated rope key: B blocks of T rows */
    size_t base0 = ((size_t)l * kv->B) * kv->Tmax + pos0;
    CU_CHECK(cudaMemcpy2DAsync(kv->latent + base0 * dkv, (size_t)kv->Tmax * dkv * sizeof(float), a->latent_new,
                               (size_t)T * dkv * sizeof(float), (size_t)T * dkv * sizeof(float), (size_t)B,
                               cudaMemcpyDeviceToDevice, st));
    CU_CHECK(cudaMemcpy2DAsync(kv->k_pe + base0 * dr, (size_t)kv->Tmax * dr * sizeof(float), a->kpe_new,
                               (size_t)T * dr * sizeof(float), (size_t)T * dr * sizeof(float), (size_t)B,
                               cudaMemcpyDeviceToDevice, st));
}

/* The naive MLA form's expanded keys and values (B, Tk, NH, dq) and (B, Tk, NH, dv) for their hooks
 * (they cover every position: replaced per call). Shared with the bf16 backend. */
void cuda_mla_hook_expanded(ActCache *hooks, LayerState *a, LayerState *ha, const char *px, int B, int Tk,
                            const Config *c, cudaStream_t st) {
    if (!hooks) return;
    char name[HOOK_NAME_LEN];
    const int NH = c->NH, dq = c->dn + c->dr, dv = c->dv;
    size_t ks[4] = {(size_t)B, (size_t)Tk, (size_t)NH, (size_t)dq}, vs[4] = {(size_t)B, (size_t)Tk, (size_t)NH, (size_t)dv};
    const char *stage[2] = {"attn.hook_k", "attn.hook_v"};
    float *dev[2] = {a->k_full, a->v_full}, *host[2] = {ha->k_full, ha->v_full};
    size_t *shape[2] = {ks, vs};
    for (int i = 0; i < 2; i++) {
        snprintf(name, sizeof name, "%s.%s", px, stage[i]);
        if (!hooks->edit && !hook_wants(hooks, name)) continue;
        size_t n = shape[i][0] * shape[i][1] * shape[i][2] * shape[i][3];
        CU_CHECK(cudaMemcpyAsync(host[i], dev[i], n * sizeof(float), cudaMemcpyDeviceToHost, st));
        CU_CHECK(cudaStreamSynchronize(st));
        hook_point(hooks, name, host[i], 4, shape[i], -1);
    }
}

static void llama_attention_cuda(const Model *m, RunState *s, KVCache *kv, const LayerWeights *w, LayerState *a,
                                 LayerState *ha, int l, const char *px, int B, int T, int pos0, ActCache *hooks,
                                 cudaStream_t st) {
    const Config *c = &m->cfg;
    const int N = B * T, NH = c->NH, NKV = c->NKV, HS = c->HS, Tk = pos0 + T;
    matmul_forward_cuda(a->q, a->xn1, w->wq, N, c->C, NH * HS, st);
    matmul_forward_cuda(a->k_new, a->xn1, w->wk, N, c->C, NKV * HS, st);
    matmul_forward_cuda(a->v_new, a->xn1, w->wv, N, c->C, NKV * HS, st);
    cuda_hook_dev(hooks, a->q, ha->q, B, T, NH, HS, px, "attn.hook_q", st);
    cuda_hook_dev(hooks, a->k_new, ha->k_new, B, T, NKV, HS, px, "attn.hook_k", st);
    cuda_hook_dev(hooks, a->v_new, ha->v_new, B, T, NKV, HS, px, "attn.hook_v", st);
    cuda_llama_rope_append(s, kv, a, ha, c, l, px, B, T, pos0, hooks, st);
    size_t kvw = (size_t)NKV * HS;
    for (int b = 0; b < B; b++) {
        size_t base = ((size_t)l * kv->B + b) * kv->Tmax;
        size_t att = (size_t)b * NH * T * s->Tmax;
        attention_forward_cuda(a->z + (size_t)b * T * NH * HS, a->scores ? a->scores + att : NULL,
                               a->pattern ? a->pattern + att : NULL, a->q + (size_t)b * T * NH * HS, kv->k + base * kvw,
                               kv->v + base * kvw, T, pos0, s->with_attn ? s->Tmax : Tk, NH, NKV, HS, HS, kvw, kvw,
                               c->attn_scale, NULL, st);
    }
}

static void mla_attention_cuda(const Model *m, RunState *s, RunState *hs, KVCache *kv, const LayerWeights *w,
                               LayerState *a, LayerState *ha, int l, const char *px, int B, int T, int pos0,
                               AttnMode mode, ActCache *hooks, cudaStream_t st) {
    const Config *c = &m->cfg;
    const int N = B * T, NH = c->NH, dn = c->dn, dr = c->dr, dv = c->dv, dq = dn + dr, dkv = c->kv_lora_rank;
    const int Tk = pos0 + T;
    mla_q_forward_cuda(a->q, a->q_a, a->q_latent, a->q_rstd, a->xn1, w, c, N, st);
    if (c->q_lora_rank) cuda_hook_dev(hooks, a->q_latent, ha->q_latent, B, T, c->q_lora_rank, 0, px, "attn.hook_q_latent", st);
    cuda_hook_dev(hooks, a->q, ha->q, B, T, NH, dq, px, "attn.hook_q", st);
    mla_kv_forward_cuda(a->latent_new, a->kpe_new, a->kv_a, a->kv_rstd, a->xn1, w, c, N, st);
    cuda_hook_dev(hooks, a->latent_new, ha->latent_new, B, T, dkv, 0, px, "attn.hook_kv_latent", st);
    cuda_mla_rope_append(s, hs, kv, a, ha, c, l, px, B, T, pos0, hooks, st);
    int Tbuf = s->with_attn ? s->Tmax : Tk;
    for (int b = 0; b < B; b++) {
        size_t base = ((size_t)l * kv->B + b) * kv->Tmax;
        size_t att = (size_t)b * NH * T * s->Tmax;
        float *sc = a->scores ? a->scores + att : NULL, *pt = a->pattern ? a->pattern + att : NULL;
        float *z = a->z + (size_t)b * T * NH * dv;
        const float *q = a->q + (size_t)b * T * NH * dq;
        if (mode == ATTN_NAIVE) {
            mla_attend_naive_cuda(z, sc, pt, a->kv_exp + (size_t)b * Tk * NH * (dn + dv), a->k_full + (size_t)b * Tk * NH * dq,
                                  a->v_full + (size_t)b * Tk * NH * dv, q, kv->latent + base * dkv, kv->k_pe + base * dr,
                                  w, c, T, pos0, Tbuf, NULL, st);
        } else {
            mla_attend_absorb_cuda(z, sc, pt, a->q_abs + (size_t)b * T * NH * dkv, a->o_lat + (size_t)b * T * NH * dkv, q,
                                   kv->latent + base * dkv, kv->k_pe + base * dr, w, c, T, pos0, Tbuf, NULL, st);
        }
    }
    if (mode == ATTN_NAIVE) cuda_mla_hook_expanded(hooks, a, ha, px, B, Tk, c, st);
}

/* Twin of block_forward: one decoder block on the device residual stream d->x, in place.
 * d/a: device run state and layer state; hs/ha: the caller's host ones (hook staging). Also an
 * MTP module's block (mtp.cu), on that depth's one-layer device state. */
void block_forward_cuda(const Model *m, RunState *d, RunState *hs, KVCache *kv, const LayerWeights *w, LayerState *a,
                        LayerState *ha, int kv_layer, const char *px, int B, int T, int pos0, AttnMode mode,
                        ActCache *hooks, cudaStream_t st) {
    const Config *c = &m->cfg;
    const int N = B * T, C = c->C, Tk = pos0 + T;
    const size_t NC = (size_t)N * C;
    const int l = kv_layer;
    cuda_hook_dev(hooks, d->x, hs->x, B, T, C, 0, px, "hook_resid_pre", st);
    CU_CHECK(cudaMemcpyAsync(a->resid, d->x, NC * sizeof(float), cudaMemcpyDeviceToDevice, st));

    /* attention sub-block */
    rmsnorm_forward_cuda(a->xn1, a->rstd1, a->resid, w->attn_norm, N, C, c->eps, st);
    cuda_hook_dev(hooks, a->xn1, ha->xn1, B, T, C, 0, px, "ln1.hook_normalized", st);
    if (c->mla) mla_attention_cuda(m, d, hs, kv, w, a, ha, l, px, B, T, pos0, mode, hooks, st);
    else llama_attention_cuda(m, d, kv, w, a, ha, l, px, B, T, pos0, hooks, st);
    if (d->with_attn && hooks) {
        cuda_hook_attn_dev(hooks, a->scores, ha->scores, B, c->NH, T, Tk, d->Tmax, px, "attn.hook_attn_scores", st);
        cuda_hook_attn_dev(hooks, a->pattern, ha->pattern, B, c->NH, T, Tk, d->Tmax, px, "attn.hook_pattern", st);
    }
    int dv = config_v_dim(c);
    cuda_hook_dev(hooks, a->z, ha->z, B, T, c->NH, dv, px, "attn.hook_z", st);
    matmul_forward_cuda(a->attn_out, a->z, w->wo, N, c->NH * dv, C, st);
    cuda_hook_dev(hooks, a->attn_out, ha->attn_out, B, T, C, 0, px, "hook_attn_out", st);
    cuda_residual_add(d->x, a->attn_out, NC, st);
    cuda_hook_dev(hooks, d->x, hs->x, B, T, C, 0, px, "hook_resid_mid", st);
    CU_CHECK(cudaMemcpyAsync(a->resid_mid, d->x, NC * sizeof(float), cudaMemcpyDeviceToDevice, st));

    /* feed-forward sub-block */
    rmsnorm_forward_cuda(a->xn2, a->rstd2, a->resid_mid, w->mlp_norm, N, C, c->eps, st);
    cuda_hook_dev(hooks, a->xn2, ha->xn2, B, T, C, 0, px, "ln2.hook_normalized", st);
    if (!w->is_moe) {
        swiglu_forward_cuda(a->mlp_out, a->gate, a->up, a->act, a->xn2, w->w_gate, w->w_up, w->w_down, N, C, c->I_ffn, st);
    } else {
        moe_router_scores_cuda(a->r_logits, a->r_scores, a->r_choice, a->xn2, w->router, w->router_bias, N, c, st);
        cuda_hook_dev(hooks, a->r_logits, ha->r_logits, B, T, c->E, 0, px, "mlp.hook_router_logits", st);
        cuda_hook_dev(hooks, a->r_scores, ha->r_scores, B, T, c->E, 0, px, "mlp.hook_router_scores", st);
        cuda_hook_dev(hooks, a->r_choice, ha->r_choice, B, T, c->E, 0, px, "mlp.hook_router_choice", st); /* edits steer selection */
        moe_select_cuda(a->e_idx, a->e_w, a->r_scores, a->r_choice, N, c, NULL, st);
        if (hooks) cuda_int_to_float(a->e_idx_f, a->e_idx, (size_t)N * c->K, st);
        cuda_hook_dev(hooks, a->e_idx_f, ha->e_idx_f, B, T, c->K, 0, px, "mlp.hook_expert_indices", st);
        cuda_hook_dev(hooks, a->e_w, ha->e_w, B, T, c->K, 0, px, "mlp.hook_expert_weights", st);
        moe_forward_cuda(a->mlp_out, a->routed, a->shared, a->eg, a->eu, a->ea, a->eo, a->gate, a->up, a->act, a->xn2,
                         a->e_idx, a->e_w, w, N, c, st);
        cuda_hook_dev(hooks, a->routed, ha->routed, B, T, C, 0, px, "mlp.hook_routed_out", st);
        cuda_hook_dev(hooks, a->shared, ha->shared, B, T, C, 0, px, "mlp.hook_shared_out", st);
    }
    cuda_hook_dev(hooks, a->mlp_out, ha->mlp_out, B, T, C, 0, px, "hook_mlp_out", st);
    cuda_residual_add(d->x, a->mlp_out, NC, st);
    cuda_hook_dev(hooks, d->x, hs->x, B, T, C, 0, px, "hook_resid_post", st);
}

/* ---- the model ---- */

extern "C" int model_forward_cuda(const Model *m, RunState *s, KVCache *kv, const int *ids, int B, int T, AttnMode mode,
                                  ActCache *hooks, float *hidden, float *logits, SeekErr *err) {
    const Config *c = &m->cfg;
    const int N = B * T, C = c->C, pos0 = kv->len, Tk = pos0 + T;
    if (cuda_backend_check(err)) return -1;
    if (B != s->B || B != kv->B || T > s->T || T < 1)
        return seek_fail(err, "forward: batch %dx%d does not fit the run state %dx%d", B, T, s->B, s->T);
    if (Tk > kv->Tmax || Tk > s->Tmax)
        return seek_fail(err, "forward: %d positions exceed the cache's %d", Tk, kv->Tmax);
    if (Tk > c->max_pos)
        return seek_fail(err, "forward: position %d is beyond max_position_embeddings %d", Tk - 1, c->max_pos);
    if (mode == ATTN_ABSORB && !c->mla) return seek_fail(err, "forward: --attn absorb needs an MLA model (this is %s)", c->model_type);
    if (kv->on_device && pos0 > 0)
        return seek_fail(err, "forward: this cache's %d positions are on the GPU (--backend cuda-fast): continue there, or "
                              "start over", pos0);
    for (int i = 0; i < N; i++) {
        if (ids[i] < 0 || ids[i] >= c->V)
            return seek_fail(err, "forward: token id %d at index %d is out of range [0, %d)", ids[i], i, c->V);
        s->ids[i] = ids[i];
    }
    cudaStream_t st = cuda_stream();
    cuda_check_error(NULL); /* a stale failure of an earlier call is not this call's */
    CudaModelCtx *x = cuda_forward_setup(m, s, kv, st); /* m's own context: its weights, run state and cache */
    if (!x) return fail_if_error(err) ? -1 : seek_fail(err, "forward (cuda): setup failed");
    CudaFwdCtx *X = &x->fwd;
    RunState *d = &X->d;
    KVCache *dkv = &X->dkv;
    const size_t layer_stride = (size_t)N * C; /* hidden (L+1, B, T, C) */
    const size_t NC = (size_t)N * C;

    CU_CHECK(cudaMemcpyAsync(d->ids, s->ids, (size_t)N * sizeof(int), cudaMemcpyHostToDevice, st));
    embedding_forward_cuda(d->x, d->ids, X->wte, N, C, st);
    cuda_hook_dev(hooks, d->x, s->x, B, T, C, 0, NULL, "hook_embed", st);
    if (hidden) CU_CHECK(cudaMemcpyAsync(hidden, d->x, layer_stride * sizeof(float), cudaMemcpyDeviceToHost, st));

    for (int l = 0; l < c->L; l++) {
        char px[32];
        snprintf(px, sizeof px, "blocks.%d", l);
        block_forward_cuda(m, d, s, dkv, &X->layers[l], &d->layer[l], &s->layer[l], l, px, B, T, pos0, mode, hooks, st);
        if (hidden && l < c->L - 1)
            CU_CHECK(cudaMemcpyAsync(hidden + (size_t)(l + 1) * layer_stride, d->x, layer_stride * sizeof(float),
                                     cudaMemcpyDeviceToHost, st));
    }

    CU_CHECK(cudaMemcpyAsync(d->xf, d->x, NC * sizeof(float), cudaMemcpyDeviceToDevice, st));
    rmsnorm_forward_cuda(d->xnf, d->rstdf, d->xf, X->final_norm, N, C, c->eps, st);
    cuda_hook_dev(hooks, d->xnf, s->xnf, B, T, C, 0, NULL, "ln_final.hook_normalized", st);
    if (hidden)
        CU_CHECK(cudaMemcpyAsync(hidden + (size_t)c->L * layer_stride, d->xnf, layer_stride * sizeof(float),
                                 cudaMemcpyDeviceToHost, st));
    matmul_forward_cuda(X->logits, d->xnf, X->lm_head, N, C, c->V, st);
    if (logits) /* NULL: left on the device (a benchmark's forward) */
        CU_CHECK(cudaMemcpyAsync(logits, X->logits, (size_t)N * c->V * sizeof(float), cudaMemcpyDeviceToHost, st));
    /* the new cache rows back into the caller's cache, which stays the truth */
    kv_sync_rows(X, c, kv, pos0, T, cudaMemcpyDeviceToHost, st);
    CU_CHECK(cudaStreamSynchronize(st));
    if (logits) hook_bt(hooks, logits, B, T, c->V, 0, NULL, "unembed.hook_out");
    if (fail_if_error(err)) {
        X->kv_len = -1; /* the device cache is suspect: upload it again next time */
        return -1;
    }
    kv->len = Tk;
    kv->on_device = 0;
    X->kv_len = Tk;
    if (hooks && hooks->failed) return seek_fail(err, "forward: out of memory capturing activations");
    return 0;
}
