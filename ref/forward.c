/* forward.c: the model forward pass (docs/model.md §2.1), the KV cache, and generation.
 *
 *   h = Emb[t]
 *   for each layer: h = h + Attn(RMSNorm_in(h));  h = h + FFN(RMSNorm_post(h))
 *       Attn is LLaMA attention (MHA/GQA) or MLA; FFN is SwiGLU or DeepSeekMoE
 *   logits = RMSNorm_final(h) · W_headᵀ
 *
 * Every stage calls hook_point() with its TransformerLens-style name (docs/conventions.md) so
 * the REPL, verification and tests can capture it. Tensors given to hooks are (B, T, ...) with
 * the token axis 1, except attention scores and patterns (B, NH, T, Tk), replaced per call.
 * Layer code never allocates: every buffer is a named field of RunState or KVCache.
 */
#include "forward.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "mla.h"
#include "moe.h"
#include "ops.h"

/* ---- allocation ---- */

static int alloc_floats(float **p, size_t a, size_t b, size_t c, size_t d, SeekErr *err) {
    size_t n = 1;
    if (!ck_mul(n, a, &n) || !ck_mul(n, b, &n) || !ck_mul(n, c, &n) || !ck_mul(n, d, &n) || n > (SIZE_MAX / 8))
        return seek_fail(err, "forward: buffer size overflows");
    *p = calloc(n ? n : 1, sizeof(float));
    if (!*p) return seek_fail(err, "forward: out of memory for %zu floats", n);
    return 0;
}

int kvcache_init(KVCache *kv, const Config *c, int B, int Tmax, SeekErr *err) {
    memset(kv, 0, sizeof *kv);
    kv->B = B;
    kv->Tmax = Tmax;
    size_t rows = (size_t)c->L * B * Tmax;
    int rc = 0;
    if (c->mla) {
        rc |= alloc_floats(&kv->latent, rows, c->kv_lora_rank, 1, 1, err);
        if (!rc) rc |= alloc_floats(&kv->k_pe, rows, c->dr, 1, 1, err);
    } else {
        rc |= alloc_floats(&kv->k, rows, c->NKV, c->HS, 1, err);
        if (!rc) rc |= alloc_floats(&kv->v, rows, c->NKV, c->HS, 1, err);
    }
    if (rc) kvcache_free(kv);
    return rc ? -1 : 0;
}

void kvcache_free(KVCache *kv) {
    free(kv->k);
    free(kv->v);
    free(kv->latent);
    free(kv->k_pe);
    memset(kv, 0, sizeof *kv);
}

/* Allocates one LayerState's buffers (N = B*T rows). */
static int layerstate_alloc(LayerState *a, const Config *c, int B, int T, int Tmax, int with_attn, SeekErr *err) {
    memset(a, 0, sizeof *a);
    size_t N = (size_t)B * T;
    int qk = config_qk_dim(c), dv = config_v_dim(c);
    int ffn = c->I_ffn;
    if (c->E > 0 && c->Es * c->Hm > ffn) ffn = c->Es * c->Hm;
    int rc = 0;
#define A(field, ...) if (!rc) rc |= alloc_floats(&a->field, __VA_ARGS__, err)
    A(resid, N, c->C, 1, 1);
    A(xn1, N, c->C, 1, 1);
    A(rstd1, N, 1, 1, 1);
    A(q, N, c->NH, qk, 1);
    A(z, N, c->NH, dv, 1);
    A(attn_out, N, c->C, 1, 1);
    A(resid_mid, N, c->C, 1, 1);
    A(xn2, N, c->C, 1, 1);
    A(rstd2, N, 1, 1, 1);
    A(mlp_out, N, c->C, 1, 1);
    A(gate, N, ffn, 1, 1);
    A(up, N, ffn, 1, 1);
    A(act, N, ffn, 1, 1);
    if (with_attn) {
        A(scores, B, c->NH, T, Tmax);
        A(pattern, B, c->NH, T, Tmax);
    }
    if (!c->mla) {
        A(k_new, N, c->NKV, c->HS, 1);
        A(v_new, N, c->NKV, c->HS, 1);
    } else {
        if (c->q_lora_rank) {
            A(q_a, N, c->q_lora_rank, 1, 1);
            A(q_latent, N, c->q_lora_rank, 1, 1);
            A(q_rstd, N, 1, 1, 1);
        }
        A(kv_a, N, (size_t)c->kv_lora_rank + c->dr, 1, 1);
        A(kv_rstd, N, 1, 1, 1);
        A(latent_new, N, c->kv_lora_rank, 1, 1);
        A(kpe_new, N, c->dr, 1, 1);
        A(kv_exp, (size_t)B * Tmax, c->NH, (size_t)c->dn + c->dv, 1);
        A(k_full, (size_t)B * Tmax, c->NH, qk, 1);
        A(v_full, (size_t)B * Tmax, c->NH, c->dv, 1);
        A(q_abs, N, c->NH, c->kv_lora_rank, 1);
        A(o_lat, N, c->NH, c->kv_lora_rank, 1);
        if (c->E > 0) {
            A(r_logits, N, c->E, 1, 1);
            A(r_scores, N, c->E, 1, 1);
            A(r_choice, N, c->E, 1, 1);
            A(e_w, N, c->K, 1, 1);
            A(e_idx_f, N, c->K, 1, 1);
            A(eg, N, c->K, c->Hm, 1);
            A(eu, N, c->K, c->Hm, 1);
            A(ea, N, c->K, c->Hm, 1);
            A(eo, N, c->K, c->C, 1);
            A(routed, N, c->C, 1, 1);
            A(shared, N, c->C, 1, 1);
        }
    }
#undef A
    if (!rc && c->E > 0 && c->mla) {
        a->e_idx = calloc(N * c->K, sizeof(int));
        if (!a->e_idx) rc = seek_fail(err, "forward: out of memory");
    }
    return rc ? -1 : 0;
}

size_t layerstate_floats(LayerState *a, float **fields[LAYERSTATE_FLOATS]) {
    float **all[] = {&a->resid, &a->xn1, &a->rstd1, &a->q, &a->k_new, &a->v_new, &a->q_a, &a->q_latent,
                     &a->q_rstd, &a->kv_a, &a->kv_rstd, &a->latent_new, &a->kpe_new, &a->kv_exp, &a->k_full,
                     &a->v_full, &a->q_abs, &a->o_lat, &a->z, &a->scores, &a->pattern, &a->attn_out,
                     &a->resid_mid, &a->xn2, &a->rstd2, &a->mlp_out, &a->gate, &a->up, &a->act, &a->r_logits,
                     &a->r_scores, &a->r_choice, &a->e_w, &a->e_idx_f, &a->eg, &a->eu, &a->ea, &a->eo,
                     &a->routed, &a->shared};
    _Static_assert(sizeof all / sizeof all[0] == LAYERSTATE_FLOATS, "LAYERSTATE_FLOATS: one entry a float field");
    memcpy(fields, all, sizeof all);
    return LAYERSTATE_FLOATS;
}

static void layerstate_free(LayerState *a) {
    float **fields[LAYERSTATE_FLOATS];
    for (size_t i = 0, n = layerstate_floats(a, fields); i < n; i++) free(*fields[i]);
    free(a->e_idx);
    memset(a, 0, sizeof *a);
}

static int runstate_alloc(RunState *s, const Config *c, int B, int T, int Tmax, int with_attn, int per_layer,
                          SeekErr *err) {
    memset(s, 0, sizeof *s);
    s->B = B;
    s->T = T;
    s->Tmax = Tmax;
    s->nL = c->L;
    s->with_attn = with_attn;
    s->per_layer = per_layer;
    size_t N = (size_t)B * T;
    size_t tmp_w = (size_t)c->NH * (c->mla ? c->dr : c->HS);
    if (tmp_w < (size_t)c->C) tmp_w = (size_t)c->C;
    int rc = 0;
    s->layer = calloc((size_t)c->L, sizeof(LayerState));
    if (!s->layer) return seek_fail(err, "forward: out of memory");
#define A(field, ...) if (!rc) rc |= alloc_floats(&s->field, __VA_ARGS__, err)
    A(inv_freq, (size_t)c->rope_dim / 2 + 1, 1, 1, 1);
    A(x, N, c->C, 1, 1);
    A(xf, N, c->C, 1, 1);
    A(xnf, N, c->C, 1, 1);
    A(rstdf, N, 1, 1, 1);
    A(row, Tmax, 1, 1, 1);
    A(tmp, N, tmp_w, 1, 1);
    if (c->E > 0) A(route_scratch, (size_t)c->E + c->G + 1, 1, 1, 1);
#undef A
    if (!rc) {
        s->ids = calloc(N, sizeof(int));
        if (!s->ids) rc = seek_fail(err, "forward: out of memory");
    }
    /* inference: one set of layer buffers shared by every layer; training: one set per layer */
    for (int l = 0; !rc && l < c->L; l++) {
        if (per_layer || l == 0) rc = layerstate_alloc(&s->layer[l], c, B, T, Tmax, with_attn, err);
        else s->layer[l] = s->layer[0];
    }
    if (rc) {
        runstate_free(s);
        return -1;
    }
    rope_inv_freq(s->inv_freq, &s->rope_attn_factor, c);
    return 0;
}

int runstate_init(RunState *s, const Config *c, int B, int T, int Tmax, int with_attn, SeekErr *err) {
    return runstate_alloc(s, c, B, T, Tmax, with_attn, 0, err);
}

int runstate_init_train(RunState *s, const Config *c, int B, int T, SeekErr *err) {
    return runstate_alloc(s, c, B, T, T, 1, 1, err);
}

void runstate_free(RunState *s) {
    if (s->layer)
        for (int l = 0; l < s->nL; l++)
            if (s->per_layer || l == 0) layerstate_free(&s->layer[l]);
    free(s->layer);
    float **fields[] = {&s->inv_freq, &s->x, &s->xf, &s->xnf, &s->rstdf, &s->row, &s->route_scratch, &s->tmp};
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) free(*fields[i]);
    free(s->ids);
    memset(s, 0, sizeof *s);
}

/* ---- hooks ---- */

/* hook for a (B, T, d1[, d2]) tensor, token axis 1; the name is "<prefix>.<stage>" or "<stage>" */
void hook_bt(ActCache *h, float *x, int B, int T, size_t d1, size_t d2, const char *prefix, const char *stage) {
    if (!h) return;
    char name[HOOK_NAME_LEN];
    if (prefix && *prefix) snprintf(name, sizeof name, "%s.%s", prefix, stage);
    else snprintf(name, sizeof name, "%s", stage);
    size_t shape[4] = {(size_t)B, (size_t)T, d1, d2};
    hook_point(h, name, x, d2 ? 4 : 3, shape, 1);
}

/* hook for a (B, NH, T, Tk) attention tensor, replaced per call */
void hook_attn(ActCache *h, float *x, int B, int NH, int T, int Tk, const char *prefix, const char *stage) {
    if (!h || !x) return;
    char name[HOOK_NAME_LEN];
    snprintf(name, sizeof name, "%s.%s", prefix, stage);
    size_t shape[4] = {(size_t)B, (size_t)NH, (size_t)T, (size_t)Tk};
    hook_point(h, name, x, 4, shape, -1);
}

/* The attention buffers hold (NH, T, Tmax) per sequence; hooks want (B, NH, T, Tk) contiguous.
 * Compact in place (Tk <= Tmax, so moving forward never overwrites unread data). */
void compact_attn(float *buf, int B, int NH, int T, int Tk, int Tmax) {
    if (!buf || Tk == Tmax) return;
    for (size_t r = 0; r < (size_t)B * NH * T; r++) memmove(buf + r * Tk, buf + r * Tmax, (size_t)Tk * sizeof(float));
}

/* ---- attention blocks ---- */

static void llama_attention(const Model *m, RunState *s, KVCache *kv, const LayerWeights *w, LayerState *a, int l,
                            const char *px, int B, int T, int pos0, ActCache *hooks) {
    const Config *c = &m->cfg;
    const int N = B * T, NH = c->NH, NKV = c->NKV, HS = c->HS, Tk = pos0 + T;
    matmul_forward_on(s->be, a->q, a->xn1, w->wq, N, c->C, NH * HS);
    matmul_forward_on(s->be, a->k_new, a->xn1, w->wk, N, c->C, NKV * HS);
    matmul_forward_on(s->be, a->v_new, a->xn1, w->wv, N, c->C, NKV * HS);
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
        attention_forward_on(s->be, a->z + (size_t)b * T * NH * HS, a->scores ? a->scores + att : NULL,
                          a->pattern ? a->pattern + att : NULL, a->q + (size_t)b * T * NH * HS, kv->k + base * kvw,
                          kv->v + base * kvw, T, pos0, s->with_attn ? s->Tmax : Tk, NH, NKV, HS, HS, kvw, kvw,
                          c->attn_scale, s->row);
    }
}

static void mla_attention(const Model *m, RunState *s, KVCache *kv, const LayerWeights *w, LayerState *a, int l,
                          const char *px, int B, int T, int pos0, AttnMode mode, ActCache *hooks) {
    const Config *c = &m->cfg;
    const int N = B * T, NH = c->NH, dn = c->dn, dr = c->dr, dv = c->dv, dq = dn + dr, dkv = c->kv_lora_rank;
    const int Tk = pos0 + T;
    mla_q_forward_on(s->be, a->q, a->q_a, a->q_latent, a->q_rstd, a->xn1, w, c, N);
    if (c->q_lora_rank) hook_bt(hooks, a->q_latent, B, T, c->q_lora_rank, 0, px, "attn.hook_q_latent");
    hook_bt(hooks, a->q, B, T, NH, dq, px, "attn.hook_q");
    mla_kv_forward_on(s->be, a->latent_new, a->kpe_new, a->kv_a, a->kv_rstd, a->xn1, w, c, N);
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
            mla_attend_naive_on(s->be, z, sc, pt, a->kv_exp + (size_t)b * Tk * NH * (dn + dv), a->k_full + (size_t)b * Tk * NH * dq,
                             a->v_full + (size_t)b * Tk * NH * dv, q, kv->latent + base * dkv, kv->k_pe + base * dr, w, c,
                             T, pos0, Tbuf, s->row);
        } else {
            mla_attend_absorb_on(s->be, z, sc, pt, a->q_abs + (size_t)b * T * NH * dkv, a->o_lat + (size_t)b * T * NH * dkv, q,
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

/* One decoder block on the residual stream s->x, in place (docs/model.md §2.1):
 *   x = x + Attn(RMSNorm_in(x));  x = x + FFN(RMSNorm_post(x))
 * w the block's weights, a its LayerState, kv_layer its slot in the cache, px the hook-name
 * prefix ("blocks.L", or "mtp.K" for an MTP module's block). */
void block_forward(const Model *m, RunState *s, KVCache *kv, const LayerWeights *w, LayerState *a, int kv_layer,
               const char *px, int B, int T, int pos0, AttnMode mode, ActCache *hooks) {
    const Config *c = &m->cfg;
    const int N = B * T, C = c->C, Tk = pos0 + T;
    const size_t NC = (size_t)N * C;
    const int l = kv_layer;
    hook_bt(hooks, s->x, B, T, C, 0, px, "hook_resid_pre");
    memcpy(a->resid, s->x, NC * sizeof(float));

    /* attention sub-block */
    rmsnorm_forward_on(s->be, a->xn1, a->rstd1, a->resid, w->attn_norm, N, C, c->eps);
    hook_bt(hooks, a->xn1, B, T, C, 0, px, "ln1.hook_normalized");
    if (c->mla) mla_attention(m, s, kv, w, a, l, px, B, T, pos0, mode, hooks);
    else llama_attention(m, s, kv, w, a, l, px, B, T, pos0, hooks);
    if (s->with_attn && hooks) {
        compact_attn(a->scores, B, c->NH, T, Tk, s->Tmax);
        compact_attn(a->pattern, B, c->NH, T, Tk, s->Tmax);
        hook_attn(hooks, a->scores, B, c->NH, T, Tk, px, "attn.hook_attn_scores");
        hook_attn(hooks, a->pattern, B, c->NH, T, Tk, px, "attn.hook_pattern");
    }
    int dv = config_v_dim(c);
    hook_bt(hooks, a->z, B, T, c->NH, dv, px, "attn.hook_z");
    matmul_forward_on(s->be, a->attn_out, a->z, w->wo, N, c->NH * dv, C);
    hook_bt(hooks, a->attn_out, B, T, C, 0, px, "hook_attn_out");
    for (size_t i = 0; i < NC; i++) s->x[i] += a->attn_out[i];
    hook_bt(hooks, s->x, B, T, C, 0, px, "hook_resid_mid");
    memcpy(a->resid_mid, s->x, NC * sizeof(float));

    /* feed-forward sub-block */
    rmsnorm_forward_on(s->be, a->xn2, a->rstd2, a->resid_mid, w->mlp_norm, N, C, c->eps);
    hook_bt(hooks, a->xn2, B, T, C, 0, px, "ln2.hook_normalized");
    if (!w->is_moe) {
        swiglu_forward_on(s->be, a->mlp_out, a->gate, a->up, a->act, a->xn2, w->w_gate, w->w_up, w->w_down, N, C, c->I_ffn);
    } else {
        moe_router_scores_on(s->be, a->r_logits, a->r_scores, a->r_choice, a->xn2, w->router, w->router_bias, N, c);
        hook_bt(hooks, a->r_logits, B, T, c->E, 0, px, "mlp.hook_router_logits");
        hook_bt(hooks, a->r_scores, B, T, c->E, 0, px, "mlp.hook_router_scores");
        hook_bt(hooks, a->r_choice, B, T, c->E, 0, px, "mlp.hook_router_choice"); /* edits steer selection */
        moe_select(a->e_idx, a->e_w, a->r_scores, a->r_choice, N, c, s->route_scratch);
        for (size_t i = 0; i < (size_t)N * c->K; i++) a->e_idx_f[i] = (float)a->e_idx[i];
        hook_bt(hooks, a->e_idx_f, B, T, c->K, 0, px, "mlp.hook_expert_indices");
        hook_bt(hooks, a->e_w, B, T, c->K, 0, px, "mlp.hook_expert_weights");
        moe_forward_on(s->be, a->mlp_out, a->routed, a->shared, a->eg, a->eu, a->ea, a->eo, a->gate, a->up, a->act, a->xn2,
                    a->e_idx, a->e_w, w, N, c);
        hook_bt(hooks, a->routed, B, T, C, 0, px, "mlp.hook_routed_out");
        hook_bt(hooks, a->shared, B, T, C, 0, px, "mlp.hook_shared_out");
    }
    hook_bt(hooks, a->mlp_out, B, T, C, 0, px, "hook_mlp_out");
    for (size_t i = 0; i < NC; i++) s->x[i] += a->mlp_out[i];
    hook_bt(hooks, s->x, B, T, C, 0, px, "hook_resid_post");
}

/* ---- the model ---- */

int model_forward(const Model *m, RunState *s, KVCache *kv, const int *ids, int B, int T, AttnMode mode,
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
    if (kv->on_device && pos0 > 0)
        return seek_fail(err, "forward: this cache's %d positions are on the GPU (--backend cuda-fast): continue there, or "
                              "start over", pos0);
    kv->on_device = 0;
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
        block_forward(m, s, kv, &m->layers[l], &s->layer[l], l, px, B, T, pos0, mode, hooks);
        if (hidden && l < c->L - 1) memcpy(hidden + (size_t)(l + 1) * layer_stride, s->x, layer_stride * sizeof(float));
    }

    memcpy(s->xf, s->x, NC * sizeof(float));
    rmsnorm_forward_on(s->be, s->xnf, s->rstdf, s->xf, m->final_norm, N, C, c->eps);
    hook_bt(hooks, s->xnf, B, T, C, 0, NULL, "ln_final.hook_normalized");
    if (hidden) memcpy(hidden + (size_t)c->L * layer_stride, s->xnf, layer_stride * sizeof(float));
    matmul_forward_on(s->be, logits, s->xnf, m->lm_head, N, C, c->V);
    hook_bt(hooks, logits, B, T, c->V, 0, NULL, "unembed.hook_out");
    kv->len = Tk;
    if (hooks && hooks->failed) return seek_fail(err, "forward: out of memory capturing activations");
    return 0;
}

/* ---- sampling and generation ---- */

int sample_token(const float *logits, int V, const SampleParams *sp, Rng *rng, float *probs, int *order) {
    int best = 0;
    for (int i = 1; i < V; i++)
        if (logits[i] > logits[best]) best = i;
    if (sp->temperature <= 0.0f) return best;
    /* softmax of logits / temperature (max-subtracted, denominator in double) */
    double sum = 0.0;
    for (int i = 0; i < V; i++) {
        probs[i] = (float)exp((double)(logits[i] - logits[best]) / sp->temperature);
        sum += probs[i];
    }
    for (int i = 0; i < V; i++) {
        probs[i] = (float)(probs[i] / sum);
        order[i] = i;
    }
    /* sort ids by probability, descending (ties: lower id first); insertion sort keeps it simple */
    for (int i = 1; i < V; i++) {
        int id = order[i], j = i - 1;
        while (j >= 0 && (probs[order[j]] < probs[id] || (probs[order[j]] == probs[id] && order[j] > id))) {
            order[j + 1] = order[j];
            j--;
        }
        order[j + 1] = id;
    }
    int keep = V;
    if (sp->top_k > 0 && sp->top_k < keep) keep = sp->top_k;
    if (sp->top_p < 1.0f) {
        double cum = 0.0;
        for (int i = 0; i < keep; i++) {
            cum += probs[order[i]];
            if (cum >= sp->top_p) { keep = i + 1; break; }
        }
    }
    double mass = 0.0;
    for (int i = 0; i < keep; i++) mass += probs[order[i]];
    double u = (double)rng_uniform(rng) * mass, acc = 0.0;
    for (int i = 0; i < keep; i++) {
        acc += probs[order[i]];
        if (u < acc) return order[i];
    }
    return order[keep - 1];
}

int model_generate(const Model *m, const int *ids, int B, int T, int n, AttnMode mode, const SampleParams *sp,
                   ActCache *hooks, int *out, float *logits_out, SeekErr *err) {
    return model_generate_on(BACKEND_REF, m, ids, B, T, n, mode, sp, hooks, out, logits_out, err);
}

/* Generation on any backend: one prefill of the prompts, then n − 1 decode calls of one token
 * per sequence through the cache, each token drawn by sample_token on the host. */
/* stop < 0: all n steps */
static int generate(Backend be, const Model *m, const int *ids, int B, int T, int n, AttnMode mode, const SampleParams *sp,
                    ActCache *hooks, int *out, float *logits_out, int stop, SeekErr *err) {
    const Config *c = &m->cfg;
    if (n < 1) return seek_fail(err, "generate: -n must be at least 1");
    if ((long long)T + n > c->max_pos)
        return seek_fail(err, "generate: prompt %d + %d new tokens exceeds max_position_embeddings %d (at most %d new after this prompt)",
                         T, n, c->max_pos, T < c->max_pos ? c->max_pos - T : 0);
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
    unsigned char *done = stop >= 0 ? calloc((size_t)B, 1) : NULL;
    if (!rc && stop >= 0 && !done) rc = seek_fail(err, "generate: out of memory");
    if (!rc) rc = model_forward_on(be, m, &s, &kv, ids, B, T, mode, hooks, NULL, logits, err);
    for (int step = 0; !rc && step < n; step++) {
        int Tl = step == 0 ? T : 1; /* rows per sequence in the last call */
        int all_done = done != NULL;
        for (int b = 0; b < B; b++) {
            const float *row = logits + ((size_t)b * Tl + Tl - 1) * c->V;
            int tok = sample_token(row, c->V, sp, &rng, probs, order);
            out[(size_t)b * n + step] = tok;
            step_ids[b] = tok;
            if (logits_out) memcpy(logits_out + ((size_t)b * n + step) * c->V, row, (size_t)c->V * sizeof(float));
            if (done) {
                done[b] |= tok == stop;
                all_done &= done[b];
            }
        }
        if (all_done) { /* every row has ended: the rest is `stop` */
            for (int b = 0; b < B; b++)
                for (int t = step + 1; t < n; t++) out[(size_t)b * n + t] = stop;
            break;
        }
        if (step + 1 < n) rc = model_forward_on(be, m, &s, &kv, step_ids, B, 1, mode, hooks, NULL, logits, err);
    }
    free(done);
    free(logits);
    free(probs);
    free(order);
    free(step_ids);
    runstate_free(&s);
    kvcache_free(&kv);
    return rc;
}

int model_generate_on(Backend be, const Model *m, const int *ids, int B, int T, int n, AttnMode mode,
                      const SampleParams *sp, ActCache *hooks, int *out, float *logits_out, SeekErr *err) {
    return generate(be, m, ids, B, T, n, mode, sp, hooks, out, logits_out, -1, err);
}

int model_generate_stop_on(Backend be, const Model *m, const int *ids, int B, int T, int n, AttnMode mode,
                           const SampleParams *sp, int stop, int *out, SeekErr *err) {
    return generate(be, m, ids, B, T, n, mode, sp, NULL, out, NULL, stop < 0 ? -1 : stop, err);
}
