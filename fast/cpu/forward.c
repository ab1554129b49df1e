/* forward.c (CPU twin of ref/forward.c): the model forward and generation on the fast CPU ops.
 *
 * The structure is the reference's, stage for stage: the same RunState/LayerState and KVCache
 * buffers, the same hook_point calls with the same names, shapes and order, so an ActCache
 * captures the same tensors and an edit callback changes the run at the same points (an edit of
 * blocks.L.mlp.hook_router_choice steers selection, of blocks.L.attn.hook_z the output
 * projection, ...). Only the heavy ops change: matrix products through OpenBLAS
 * (matmul_forward_blas), attention with an online softmax split over the cores, MLA's absorbed
 * products per head, the routed experts one GEMM per expert, RMSNorm's rows over the threads.
 * Embedding, RoPE, routing selection, sampling and the residual adds are the reference's code.
 * Layer code allocates nothing per call (the workspace of cpu.h is grown once and kept).
 *
 * This file is ref/forward.c's hooks, attention blocks, model_forward and model_generate with
 * the ops renamed to their twins (the hook helpers hook_bt, hook_attn and compact_attn are
 * ref/forward.c's own, exported). A diff against ref/forward.c
 * shows exactly what the fast path changes.
 */
#ifdef SEEK_HAVE_BLAS
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cpu/cpu.h"
#include "mla.h"
#include "moe.h"
#include "ops.h"

/* ---- attention blocks ---- */

static void llama_attention_cpu(const Model *m, RunState *s, KVCache *kv, const LayerWeights *w, LayerState *a, int l,
                                const char *px, int B, int T, int pos0, ActCache *hooks) {
    const Config *c = &m->cfg;
    const int N = B * T, NH = c->NH, NKV = c->NKV, HS = c->HS, Tk = pos0 + T;
    matmul_forward_blas(a->q, a->xn1, w->wq, N, c->C, NH * HS);
    matmul_forward_blas(a->k_new, a->xn1, w->wk, N, c->C, NKV * HS);
    matmul_forward_blas(a->v_new, a->xn1, w->wv, N, c->C, NKV * HS);
    hook_bt(hooks, a->q, B, T, NH, HS, px, "attn.hook_q");
    hook_bt(hooks, a->k_new, B, T, NKV, HS, px, "attn.hook_k");
    hook_bt(hooks, a->v_new, B, T, NKV, HS, px, "attn.hook_v");
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            size_t r = (size_t)b * T + t;
            rope_forward(a->q + r * NH * HS, a->q + r * NH * HS, NH, HS, pos0 + t, s->inv_freq, s->rope_attn_factor, HS, c->rope_layout);
            rope_forward(a->k_new + r * NKV * HS, a->k_new + r * NKV * HS, NKV, HS, pos0 + t, s->inv_freq, s->rope_attn_factor, HS, c->rope_layout);
        }
    hook_bt(hooks, a->q, B, T, NH, HS, px, "attn.hook_rot_q");
    hook_bt(hooks, a->k_new, B, T, NKV, HS, px, "attn.hook_rot_k");
    /* append the new keys and values to the cache */
    size_t kvw = (size_t)NKV * HS;
    for (int b = 0; b < B; b++) {
        size_t base = ((size_t)l * kv->B + b) * kv->Tmax;
        memcpy(kv->k + (base + pos0) * kvw, a->k_new + (size_t)b * T * kvw, (size_t)T * kvw * sizeof(float));
        memcpy(kv->v + (base + pos0) * kvw, a->v_new + (size_t)b * T * kvw, (size_t)T * kvw * sizeof(float));
    }
    for (int b = 0; b < B; b++) {
        size_t base = ((size_t)l * kv->B + b) * kv->Tmax;
        size_t att = (size_t)b * NH * T * s->Tmax;
        attention_forward_cpu(a->z + (size_t)b * T * NH * HS, a->scores ? a->scores + att : NULL,
                          a->pattern ? a->pattern + att : NULL, a->q + (size_t)b * T * NH * HS, kv->k + base * kvw,
                          kv->v + base * kvw, T, pos0, s->with_attn ? s->Tmax : Tk, NH, NKV, HS, HS, kvw, kvw,
                          c->attn_scale, s->row);
    }
}

static void mla_attention_cpu(const Model *m, RunState *s, KVCache *kv, const LayerWeights *w, LayerState *a, int l,
                              const char *px, int B, int T, int pos0, AttnMode mode, ActCache *hooks) {
    const Config *c = &m->cfg;
    const int N = B * T, NH = c->NH, dn = c->dn, dr = c->dr, dv = c->dv, dq = dn + dr, dkv = c->kv_lora_rank;
    const int Tk = pos0 + T;
    mla_q_forward_cpu(a->q, a->q_a, a->q_latent, a->q_rstd, a->xn1, w, c, N);
    if (c->q_lora_rank) hook_bt(hooks, a->q_latent, B, T, c->q_lora_rank, 0, px, "attn.hook_q_latent");
    hook_bt(hooks, a->q, B, T, NH, dq, px, "attn.hook_q");
    mla_kv_forward_cpu(a->latent_new, a->kpe_new, a->kv_a, a->kv_rstd, a->xn1, w, c, N);
    hook_bt(hooks, a->latent_new, B, T, dkv, 0, px, "attn.hook_kv_latent");
    /* decoupled RoPE: the rope slice of every query head, and the one shared rope key */
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            size_t r = (size_t)b * T + t;
            float *qp = a->q + r * NH * dq + dn;
            rope_forward(qp, qp, NH, dq, pos0 + t, s->inv_freq, s->rope_attn_factor, dr, c->rope_layout);
            float *kp = a->kpe_new + r * dr;
            rope_forward(kp, kp, 1, dr, pos0 + t, s->inv_freq, s->rope_attn_factor, dr, c->rope_layout);
        }
    char name[HOOK_NAME_LEN];
    snprintf(name, sizeof name, "%s.attn.hook_rot_q", px);
    if (hook_wants(hooks, name)) { /* gather the rope slices into (N, NH, dr) */
        for (size_t r = 0; r < (size_t)N * NH; r++) memcpy(s->tmp + r * dr, a->q + r * dq + dn, (size_t)dr * sizeof(float));
        hook_bt(hooks, s->tmp, B, T, NH, dr, px, "attn.hook_rot_q");
    }
    hook_bt(hooks, a->kpe_new, B, T, dr, 0, px, "attn.hook_rot_k");
    /* the cache keeps only the latent and the rotated rope key */
    for (int b = 0; b < B; b++) {
        size_t base = ((size_t)l * kv->B + b) * kv->Tmax + pos0;
        memcpy(kv->latent + base * dkv, a->latent_new + (size_t)b * T * dkv, (size_t)T * dkv * sizeof(float));
        memcpy(kv->k_pe + base * dr, a->kpe_new + (size_t)b * T * dr, (size_t)T * dr * sizeof(float));
    }
    int Tbuf = s->with_attn ? s->Tmax : Tk;
    for (int b = 0; b < B; b++) {
        size_t base = ((size_t)l * kv->B + b) * kv->Tmax;
        size_t att = (size_t)b * NH * T * s->Tmax;
        float *sc = a->scores ? a->scores + att : NULL, *pt = a->pattern ? a->pattern + att : NULL;
        float *z = a->z + (size_t)b * T * NH * dv;
        const float *q = a->q + (size_t)b * T * NH * dq;
        if (mode == ATTN_NAIVE) {
            mla_attend_naive_cpu(z, sc, pt, a->kv_exp + (size_t)b * Tk * NH * (dn + dv), a->k_full + (size_t)b * Tk * NH * dq,
                             a->v_full + (size_t)b * Tk * NH * dv, q, kv->latent + base * dkv, kv->k_pe + base * dr, w, c,
                             T, pos0, Tbuf, s->row);
        } else {
            mla_attend_absorb_cpu(z, sc, pt, a->q_abs + (size_t)b * T * NH * dkv, a->o_lat + (size_t)b * T * NH * dkv, q,
                              kv->latent + base * dkv, kv->k_pe + base * dr, w, c, T, pos0, Tbuf, s->row);
        }
    }
    if (mode == ATTN_NAIVE && hooks) { /* the expanded keys/values cover every position: replaced per call */
        size_t ks[4] = {(size_t)B, (size_t)Tk, (size_t)NH, (size_t)dq}, vs[4] = {(size_t)B, (size_t)Tk, (size_t)NH, (size_t)dv};
        snprintf(name, sizeof name, "%s.attn.hook_k", px);
        hook_point(hooks, name, a->k_full, 4, ks, -1);
        snprintf(name, sizeof name, "%s.attn.hook_v", px);
        hook_point(hooks, name, a->v_full, 4, vs, -1);
    }
}

/* ---- the model ---- */

/* Twin of block_forward: one decoder block on s->x in place. */
void block_forward_cpu(const Model *m, RunState *s, KVCache *kv, const LayerWeights *w, LayerState *a, int kv_layer,
                   const char *px, int B, int T, int pos0, AttnMode mode, ActCache *hooks) {
    const Config *c = &m->cfg;
    const int N = B * T, C = c->C, Tk = pos0 + T;
    const size_t NC = (size_t)N * C;
    const int l = kv_layer;
    hook_bt(hooks, s->x, B, T, C, 0, px, "hook_resid_pre");
    memcpy(a->resid, s->x, NC * sizeof(float));

    /* attention sub-block */
    rmsnorm_forward_cpu(a->xn1, a->rstd1, a->resid, w->attn_norm, N, C, c->eps);
    hook_bt(hooks, a->xn1, B, T, C, 0, px, "ln1.hook_normalized");
    if (c->mla) mla_attention_cpu(m, s, kv, w, a, l, px, B, T, pos0, mode, hooks);
    else llama_attention_cpu(m, s, kv, w, a, l, px, B, T, pos0, hooks);
    if (s->with_attn && hooks) {
        compact_attn(a->scores, B, c->NH, T, Tk, s->Tmax);
        compact_attn(a->pattern, B, c->NH, T, Tk, s->Tmax);
        hook_attn(hooks, a->scores, B, c->NH, T, Tk, px, "attn.hook_attn_scores");
        hook_attn(hooks, a->pattern, B, c->NH, T, Tk, px, "attn.hook_pattern");
    }
    int dv = config_v_dim(c);
    hook_bt(hooks, a->z, B, T, c->NH, dv, px, "attn.hook_z");
    matmul_forward_blas(a->attn_out, a->z, w->wo, N, c->NH * dv, C);
    hook_bt(hooks, a->attn_out, B, T, C, 0, px, "hook_attn_out");
    for (size_t i = 0; i < NC; i++) s->x[i] += a->attn_out[i];
    hook_bt(hooks, s->x, B, T, C, 0, px, "hook_resid_mid");
    memcpy(a->resid_mid, s->x, NC * sizeof(float));

    /* feed-forward sub-block */
    rmsnorm_forward_cpu(a->xn2, a->rstd2, a->resid_mid, w->mlp_norm, N, C, c->eps);
    hook_bt(hooks, a->xn2, B, T, C, 0, px, "ln2.hook_normalized");
    if (!w->is_moe) {
        swiglu_forward_cpu(a->mlp_out, a->gate, a->up, a->act, a->xn2, w->w_gate, w->w_up, w->w_down, N, C, c->I_ffn);
    } else {
        moe_router_scores_cpu(a->r_logits, a->r_scores, a->r_choice, a->xn2, w->router, w->router_bias, N, c);
        hook_bt(hooks, a->r_logits, B, T, c->E, 0, px, "mlp.hook_router_logits");
        hook_bt(hooks, a->r_scores, B, T, c->E, 0, px, "mlp.hook_router_scores");
        hook_bt(hooks, a->r_choice, B, T, c->E, 0, px, "mlp.hook_router_choice"); /* edits steer selection */
        moe_select(a->e_idx, a->e_w, a->r_scores, a->r_choice, N, c, s->route_scratch);
        for (size_t i = 0; i < (size_t)N * c->K; i++) a->e_idx_f[i] = (float)a->e_idx[i];
        hook_bt(hooks, a->e_idx_f, B, T, c->K, 0, px, "mlp.hook_expert_indices");
        hook_bt(hooks, a->e_w, B, T, c->K, 0, px, "mlp.hook_expert_weights");
        moe_forward_cpu(a->mlp_out, a->routed, a->shared, a->eg, a->eu, a->ea, a->eo, a->gate, a->up, a->act, a->xn2,
                    a->e_idx, a->e_w, w, N, c);
        hook_bt(hooks, a->routed, B, T, C, 0, px, "mlp.hook_routed_out");
        hook_bt(hooks, a->shared, B, T, C, 0, px, "mlp.hook_shared_out");
    }
    hook_bt(hooks, a->mlp_out, B, T, C, 0, px, "hook_mlp_out");
    for (size_t i = 0; i < NC; i++) s->x[i] += a->mlp_out[i];
    hook_bt(hooks, s->x, B, T, C, 0, px, "hook_resid_post");
}

int model_forward_cpu(const Model *m, RunState *s, KVCache *kv, const int *ids, int B, int T, AttnMode mode,
                  ActCache *hooks, float *hidden, float *logits, SeekErr *err) {
    const Config *c = &m->cfg;
    const int N = B * T, C = c->C, pos0 = kv->len, Tk = pos0 + T;
    if (B != s->B || B != kv->B || T > s->T || T < 1)
        return seek_fail(err, "forward: batch %dx%d does not fit the run state %dx%d", B, T, s->B, s->T);
    if (Tk > kv->Tmax || Tk > s->Tmax)
        return seek_fail(err, "forward: %d positions exceed the cache's %d", Tk, kv->Tmax);
    if (Tk > c->max_pos)
        return seek_fail(err, "forward: position %d is beyond max_position_embeddings %d", Tk - 1, c->max_pos);
    if (mode == ATTN_ABSORB && !c->mla) return seek_fail(err, "forward: --attn absorb needs an MLA model (this is %s)", c->model_type);
    if (s->per_layer && (pos0 != 0 || mode != ATTN_NAIVE))
        return seek_fail(err, "forward: a training run state takes whole sequences with naive attention");
    for (int i = 0; i < N; i++) {
        if (ids[i] < 0 || ids[i] >= c->V)
            return seek_fail(err, "forward: token id %d at index %d is out of range [0, %d)", ids[i], i, c->V);
        s->ids[i] = ids[i];
    }
    const size_t layer_stride = (size_t)N * C; /* hidden (L+1, B, T, C) */
    const size_t NC = (size_t)N * C;

    embedding_forward(s->x, s->ids, m->wte, N, C);
    hook_bt(hooks, s->x, B, T, C, 0, NULL, "hook_embed");
    if (hidden) memcpy(hidden, s->x, layer_stride * sizeof(float));

    for (int l = 0; l < c->L; l++) {
        char px[32];
        snprintf(px, sizeof px, "blocks.%d", l);
        block_forward_cpu(m, s, kv, &m->layers[l], &s->layer[l], l, px, B, T, pos0, mode, hooks);
        if (hidden && l < c->L - 1) memcpy(hidden + (size_t)(l + 1) * layer_stride, s->x, layer_stride * sizeof(float));
    }

    memcpy(s->xf, s->x, NC * sizeof(float));
    rmsnorm_forward_cpu(s->xnf, s->rstdf, s->xf, m->final_norm, N, C, c->eps);
    hook_bt(hooks, s->xnf, B, T, C, 0, NULL, "ln_final.hook_normalized");
    if (hidden) memcpy(hidden + (size_t)c->L * layer_stride, s->xnf, layer_stride * sizeof(float));
    matmul_forward_blas(logits, s->xnf, m->lm_head, N, C, c->V);
    hook_bt(hooks, logits, B, T, c->V, 0, NULL, "unembed.hook_out");
    kv->len = Tk;
    if (hooks && hooks->failed) return seek_fail(err, "forward: out of memory capturing activations");
    return 0;
}

/* ---- generation (ref/forward.c's model_generate on model_forward_cpu) ---- */

int model_generate_cpu(const Model *m, const int *ids, int B, int T, int n, AttnMode mode, const SampleParams *sp,
                   ActCache *hooks, int *out, float *logits_out, SeekErr *err) {
    const Config *c = &m->cfg;
    if (n < 1) return seek_fail(err, "generate: -n must be at least 1");
    if ((long long)T + n > c->max_pos)
        return seek_fail(err, "generate: prompt %d + %d new tokens exceeds max_position_embeddings %d", T, n, c->max_pos);
    int Tmax = T + n;
    KVCache kv;
    RunState s;
    if (kvcache_init(&kv, c, B, Tmax, err)) return -1;
    if (runstate_init(&s, c, B, T, Tmax, hooks != NULL, err)) {
        kvcache_free(&kv);
        return -1;
    }
    float *logits = malloc((size_t)B * T * c->V * sizeof(float));
    float *probs = malloc((size_t)c->V * sizeof(float));
    int *order = malloc((size_t)c->V * sizeof(int));
    int *step_ids = malloc((size_t)B * sizeof(int));
    int rc = 0;
    if (!logits || !probs || !order || !step_ids) rc = seek_fail(err, "generate: out of memory");
    Rng rng;
    rng_seed(&rng, sp->seed);
    if (!rc) rc = model_forward_cpu(m, &s, &kv, ids, B, T, mode, hooks, NULL, logits, err);
    for (int step = 0; !rc && step < n; step++) {
        int Tl = step == 0 ? T : 1; /* rows per sequence in the last call */
        for (int b = 0; b < B; b++) {
            const float *row = logits + ((size_t)b * Tl + Tl - 1) * c->V;
            int tok = sample_token(row, c->V, sp, &rng, probs, order);
            out[(size_t)b * n + step] = tok;
            step_ids[b] = tok;
            if (logits_out) memcpy(logits_out + ((size_t)b * n + step) * c->V, row, (size_t)c->V * sizeof(float));
        }
        if (step + 1 < n) rc = model_forward_cpu(m, &s, &kv, step_ids, B, 1, mode, hooks, NULL, logits, err);
    }
    free(logits);
    free(probs);
    free(order);
    free(step_ids);
    runstate_free(&s);
    kvcache_free(&kv);
    return rc;
}
#endif
