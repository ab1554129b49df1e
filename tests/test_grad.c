/* test_grad.c: gradients.
 *
 * 1. Whole model against transformers' autograd: for each fixture with grads.safetensors
 *    (scripts/gen_grad_goldens.py), the loss for labels = input_ids and the gradient of every
 *    parameter, compared tensor by tensor: max|ours − theirs| <= rtol·max|theirs| + atol·(the largest
 *    golden gradient of the model).
 * 2. Finite differences for every op on tiny shapes: the scalar L = Σ r_i·out_i (fixed random r)
 *    is differentiated numerically with the 4-point stencil (f(x−2h) − 8f(x−h) + 8f(x+h) −
 *    f(x+2h)) / 12h, L summed in double, and compared with the backward's gradient by the
 *    normwise relative error ‖g_fd − g‖ / ‖g‖.
 * Gradient buffers are pre-filled with non-zero values and the fill is subtracted afterwards,
 * so a backward that assigns instead of accumulating fails. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backward.h"
#include "mla.h"
#include "moe.h"
#include "ops.h"
#include "safetensors.h"
#include "balance.h"
#include "train.h"
#include "backend.h"
#include "grpo.h"
#include "pairs.h"
#include "tolerances.h"

/* ---- 1. whole model vs transformers ---- */

#include "hf_grads.h"

static void check_model_grads(const char *name) { check_model_grads_on(name, OBJ_NEXT, BACKEND_REF); }

/* SFT and the weighted loss against their goldens on ref, and on cpu where it is built (the
 * cuda backend: tests/test_cuda.c) */
static void check_objective(const char *name, GoldenObjective obj) {
    check_model_grads_on(name, obj, BACKEND_REF);
    SeekErr e;
    if (backend_check(BACKEND_CPU, &e) == 0) check_model_grads_on(name, obj, BACKEND_CPU);
}
static void test_sft_v3(void **st) { (void)st; check_objective("v3", OBJ_SFT); }
static void test_sft_v3_noq(void **st) { (void)st; check_objective("v3_noq", OBJ_SFT); }
static void test_sft_v2_greedy(void **st) { (void)st; check_objective("v2_greedy", OBJ_SFT); }
static void test_sft_v2_group(void **st) { (void)st; check_objective("v2_group", OBJ_SFT); }
static void test_sft_llama_gqa(void **st) { (void)st; check_objective("llama_gqa", OBJ_SFT); }
static void test_weighted_v3(void **st) { (void)st; check_objective("v3", OBJ_WEIGHTED); }
static void test_weighted_llama_gqa(void **st) { (void)st; check_objective("llama_gqa", OBJ_WEIGHTED); }
static void test_grpo_v3(void **st) { (void)st; check_objective("v3", OBJ_GRPO); }
static void test_grpo_llama_gqa(void **st) { (void)st; check_objective("llama_gqa", OBJ_GRPO); }

static void test_hf_v3(void **st) { (void)st; check_model_grads("v3"); }
static void test_hf_v3_noq(void **st) { (void)st; check_model_grads("v3_noq"); }
static void test_hf_v2_greedy(void **st) { (void)st; check_model_grads("v2_greedy"); }
static void test_hf_v2_group(void **st) { (void)st; check_model_grads("v2_group"); }
static void test_hf_llama_gqa(void **st) { (void)st; check_model_grads("llama_gqa"); }

/* ---- 2. finite differences, op by op ---- */

#define FD_H 0.03125 /* 2^-5: x ± h, x ± 2h are exact for inputs on the 2^-16 grid below */
typedef double (*LossFn)(void *ctx);

static Rng fd_rng;
/* random values on the 2^-16 grid, so the perturbed points are exact in float */
static void fill(float *x, size_t n, float scale) {
    for (size_t i = 0; i < n; i++) x[i] = roundf(rng_normal(&fd_rng) * scale * 65536.0f) / 65536.0f;
}
static float *vec(size_t n, float scale) {
    float *x = malloc(n * sizeof(float) + 4);
    fill(x, n, scale);
    return x;
}
static double dot_r(const float *out, const float *r, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)out[i] * r[i];
    return s;
}

/* Normwise relative error of the analytic gradient g of x against central differences of f,
 * over up to max_checks elements of x spread evenly. */
static double fd_error(LossFn f, void *ctx, float *x, size_t n, const float *g, size_t max_checks) {
    size_t step = n > max_checks ? n / max_checks : 1;
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i += step) {
        float v = x[i];
        x[i] = v + (float)FD_H;       double p1 = f(ctx);
        x[i] = v - (float)FD_H;       double m1 = f(ctx);
        x[i] = v + 2 * (float)FD_H;   double p2 = f(ctx);
        x[i] = v - 2 * (float)FD_H;   double m2 = f(ctx);
        x[i] = v;
        double fdv = (m2 - 8 * m1 + 8 * p1 - p2) / (12 * FD_H);
        num += (fdv - g[i]) * (fdv - g[i]);
        den += (double)g[i] * g[i];
    }
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

/* gradient buffer pre-filled with 0.5; after the backward, subtract it (catches `=` for `+=`) */
static float *gbuf(size_t n) {
    float *g = malloc(n * sizeof(float) + 4);
    for (size_t i = 0; i < n; i++) g[i] = 0.5f;
    return g;
}
static void unfill(float *g, size_t n) { for (size_t i = 0; i < n; i++) g[i] -= 0.5f; }

#define CHECK_FD(label, f, ctx, x, n, g)                                                  \
    do {                                                                                \
        double fd_e_ = fd_error(f, ctx, x, n, g, 60);                                   \
        if (fd_e_ > TOL_FD_REL) fail_msg("%s: finite-difference error %.2e", label, fd_e_); \
    } while (0)

/* matmul */
typedef struct { float *out, *x, *w, *r; int N, IC, OC; } MatCtx;
static double mat_loss(void *p) {
    MatCtx *c = p;
    matmul_forward(c->out, c->x, c->w, c->N, c->IC, c->OC);
    return dot_r(c->out, c->r, (size_t)c->N * c->OC);
}
static void test_fd_matmul(void **st) {
    (void)st;
    MatCtx c = {NULL, vec(3 * 5, 1), vec(4 * 5, 1), vec(3 * 4, 1), 3, 5, 4};
    c.out = vec(12, 0);
    float *dx = gbuf(15), *dw = gbuf(20);
    matmul_backward(dx, dw, c.r, c.x, c.w, 3, 5, 4);
    unfill(dx, 15);
    unfill(dw, 20);
    CHECK_FD("matmul dinp", mat_loss, &c, c.x, 15, dx);
    CHECK_FD("matmul dweight", mat_loss, &c, c.w, 20, dw);
    free(c.out); free(c.x); free(c.w); free(c.r); free(dx); free(dw);
}

/* RMSNorm */
typedef struct { float *out, *x, *w, *r, rstd[4]; int N, C; } NormCtx;
static double norm_loss(void *p) {
    NormCtx *c = p;
    rmsnorm_forward(c->out, c->rstd, c->x, c->w, c->N, c->C, 1e-6f);
    return dot_r(c->out, c->r, (size_t)c->N * c->C);
}
static void test_fd_rmsnorm(void **st) {
    (void)st;
    NormCtx c = {vec(21, 0), vec(21, 1), vec(7, 1), vec(21, 1), {0}, 3, 7};
    norm_loss(&c);
    float *dx = gbuf(21), *dw = gbuf(7);
    rmsnorm_backward(dx, dw, c.r, c.x, c.w, c.rstd, 3, 7);
    unfill(dx, 21);
    unfill(dw, 7);
    CHECK_FD("rmsnorm dinp", norm_loss, &c, c.x, 21, dx);
    CHECK_FD("rmsnorm dweight", norm_loss, &c, c.w, 7, dw);
    free(c.out); free(c.x); free(c.w); free(c.r); free(dx); free(dw);
}

/* embedding (a repeated id accumulates) */
typedef struct { float *out, *wte, *r; int ids[4]; } EmbCtx;
static double emb_loss(void *p) {
    EmbCtx *c = p;
    embedding_forward(c->out, c->ids, c->wte, 4, 3);
    return dot_r(c->out, c->r, 12);
}
static void test_fd_embedding(void **st) {
    (void)st;
    EmbCtx c = {vec(12, 0), vec(15, 1), vec(12, 1), {2, 0, 2, 4}};
    float *dw = gbuf(15);
    embedding_backward(dw, c.r, c.ids, 4, 3);
    unfill(dw, 15);
    CHECK_FD("embedding", emb_loss, &c, c.wte, 15, dw);
    free(c.out); free(c.wte); free(c.r); free(dw);
}

/* RoPE, both layouts, default and YaRN (with an attention factor != 1) */
typedef struct { float *out, *x, *r, inv[4], af; RopeLayout lay; } RopeCtx;
static double rope_loss(void *p) {
    RopeCtx *c = p;
    memcpy(c->out, c->x, 30 * sizeof(float)); /* in place, as the model uses it */
    rope_forward(c->out, c->out, 3, 10, 5, c->inv, c->af, 8, c->lay);
    return dot_r(c->out, c->r, 30);
}
static void test_fd_rope(void **st) {
    (void)st;
    const char *cfgs[2] = {"{\"model_type\":\"llama\",\"hidden_size\":16,\"num_attention_heads\":2}",
                           "{\"model_type\":\"llama\",\"hidden_size\":16,\"num_attention_heads\":2,\"max_position_embeddings\":512,"
                           "\"rope_scaling\":{\"rope_type\":\"yarn\",\"factor\":8.0,\"original_max_position_embeddings\":64}}"};
    for (int k = 0; k < 4; k++) {
        Config cfg;
        SeekErr e;
        if (config_parse(&cfg, cfgs[k / 2], strlen(cfgs[k / 2]), "t", &e)) fail_msg("%s", e.msg);
        RopeCtx c = {vec(30, 0), vec(30, 1), vec(30, 1), {0}, 1, k % 2 ? ROPE_LAYOUT_INTERLEAVED : ROPE_LAYOUT_HALF};
        rope_inv_freq(c.inv, &c.af, &cfg);
        if (k / 2) assert_true(c.af > 1.0f); /* YaRN's attention factor is exercised */
        /* 3 vectors of stride 10 rotating the first 8 values; the last 2 of each are untouched */
        float *dx = malloc(30 * sizeof(float));
        for (int i = 0; i < 30; i++) dx[i] = c.r[i];
        rope_backward(dx, dx, 3, 10, 5, c.inv, c.af, 8, c.lay);
        CHECK_FD(k % 2 ? "rope interleaved" : "rope half", rope_loss, &c, c.x, 30, dx);
        free(c.out); free(c.x); free(c.r); free(dx);
    }
}

/* SwiGLU */
typedef struct { float *out, *x, *wg, *wu, *wd, *r, *g, *u, *a; int N, C, H; } SwiCtx;
static double swi_loss(void *p) {
    SwiCtx *c = p;
    swiglu_forward(c->out, c->g, c->u, c->a, c->x, c->wg, c->wu, c->wd, c->N, c->C, c->H);
    return dot_r(c->out, c->r, (size_t)c->N * c->C);
}
static void test_fd_swiglu(void **st) {
    (void)st;
    int N = 3, C = 5, H = 6;
    SwiCtx c = {vec(N * C, 0), vec(N * C, 1), vec(H * C, 0.5f), vec(H * C, 0.5f), vec(C * H, 0.5f), vec(N * C, 1),
                vec(N * H, 0), vec(N * H, 0), vec(N * H, 0), N, C, H};
    swi_loss(&c);
    float *dx = gbuf(N * C), *dg = gbuf(H * C), *du = gbuf(H * C), *dd = gbuf(C * H), *scr = malloc(3 * N * H * 4);
    swiglu_backward(dx, dg, du, dd, c.r, c.x, c.g, c.u, c.a, c.wg, c.wu, c.wd, N, C, H, scr);
    unfill(dx, N * C); unfill(dg, H * C); unfill(du, H * C); unfill(dd, C * H);
    CHECK_FD("swiglu dinp", swi_loss, &c, c.x, N * C, dx);
    CHECK_FD("swiglu dw_gate", swi_loss, &c, c.wg, H * C, dg);
    CHECK_FD("swiglu dw_up", swi_loss, &c, c.wu, H * C, du);
    CHECK_FD("swiglu dw_down", swi_loss, &c, c.wd, C * H, dd);
    free(c.out); free(c.x); free(c.wg); free(c.wu); free(c.wd); free(c.r); free(c.g); free(c.u); free(c.a);
    free(dx); free(dg); free(du); free(dd); free(scr);
}

/* attention, GQA (4 query heads on 2 kv heads) */
typedef struct { float *z, *pat, *q, *k, *v, *r, row[8]; } AttCtx;
enum { AT = 5, ANH = 4, ANKV = 2, ADQ = 3, ADV = 2 };
static double att_loss(void *p) {
    AttCtx *c = p;
    attention_forward(c->z, NULL, c->pat, c->q, c->k, c->v, AT, 0, AT, ANH, ANKV, ADQ, ADV, ANKV * ADQ, ANKV * ADV, 0.7f, c->row);
    return dot_r(c->z, c->r, AT * ANH * ADV);
}
static void test_fd_attention(void **st) {
    (void)st;
    AttCtx c = {vec(AT * ANH * ADV, 0), vec(ANH * AT * AT, 0), vec(AT * ANH * ADQ, 1), vec(AT * ANKV * ADQ, 1),
                vec(AT * ANKV * ADV, 1), vec(AT * ANH * ADV, 1), {0}};
    att_loss(&c);
    float *dq = gbuf(AT * ANH * ADQ), *dk = gbuf(AT * ANKV * ADQ), *dv = gbuf(AT * ANKV * ADV), row[8];
    attention_backward(dq, dk, dv, c.r, c.pat, c.q, c.k, c.v, AT, ANH, ANKV, ADQ, ADV, ANKV * ADQ, ANKV * ADV, 0.7f, row);
    unfill(dq, AT * ANH * ADQ); unfill(dk, AT * ANKV * ADQ); unfill(dv, AT * ANKV * ADV);
    CHECK_FD("attention dq", att_loss, &c, c.q, AT * ANH * ADQ, dq);
    CHECK_FD("attention dk", att_loss, &c, c.k, AT * ANKV * ADQ, dk);
    CHECK_FD("attention dv", att_loss, &c, c.v, AT * ANKV * ADV, dv);
    free(c.z); free(c.pat); free(c.q); free(c.k); free(c.v); free(c.r); free(dq); free(dk); free(dv);
}

/* cross-entropy (one row without a target) */
typedef struct { float *lg, *probs; int tg[3]; } CeCtx;
static double ce_loss(void *p) {
    CeCtx *c = p;
    return crossentropy_forward(c->probs, c->lg, c->tg, NULL, 3, 6, NULL);
}
static void test_fd_crossentropy(void **st) {
    (void)st;
    CeCtx c = {vec(18, 2), vec(18, 0), {4, -1, 0}};
    int count;
    double l = crossentropy_forward(c.probs, c.lg, c.tg, NULL, 3, 6, &count);
    assert_int_equal(count, 2);
    assert_true(l > 0);
    float *dl = gbuf(18);
    crossentropy_backward(dl, 1.0f, c.probs, c.tg, NULL, 3, 6, count);
    unfill(dl, 18);
    for (int i = 6; i < 12; i++) assert_true(fabsf(dl[i]) < 1e-7f); /* no target, no gradient */
    CHECK_FD("crossentropy", ce_loss, &c, c.lg, 18, dl);
    free(c.lg); free(c.probs); free(dl);
}

/* The policy objective (GRPO's clipped ratio and k3 KL, backward.h) as a function of the logits:
 * its gradient, the cross-entropy backward with policy_loss_weights' factors, against finite
 * differences. π_old is set so that some ratios sit inside [1−ε, 1+ε] and some well outside on
 * either side, with advantages of both signs, so both branches of the min carry (or block) the
 * gradient; no perturbation crosses a clip boundary. */
typedef struct { float *lg; int tg[5]; float adv[5], old[5], ref[5], w[5]; PolicyTerms p; } PgCtx;
static double pg_loss(void *q) {
    PgCtx *c = q;
    float we[5];
    return policy_loss_weights(we, c->lg, c->tg, c->w, &c->p, 5, 7, NULL);
}
static void test_fd_policy(void **st) {
    (void)st;
    /* logits from a fixed formula, not the shared stream: the tests after this one keep their inputs */
    float *lg = malloc(35 * sizeof(float));
    for (int i = 0; i < 35; i++) lg[i] = 2.0f * sinf(1.7f * i + 0.3f);
    PgCtx c = {lg, {3, -1, 0, 6, 2}, {1.5f, 0, -0.8f, 0.9f, -1.2f}, {0}, {0}, {1, 1, 0.5f, 2, 1}, {0}};
    float lp[5];
    target_logprobs(lp, c.lg, c.tg, 5, 7);
    const float delta[5] = {0.05f, 0, 0.6f, 0.7f, -0.5f}, dref[5] = {0.3f, 0, -0.4f, 0.2f, 0.5f};
    for (int n = 0; n < 5; n++) c.old[n] = lp[n] - delta[n], c.ref[n] = lp[n] + dref[n];
    c.p = (PolicyTerms){c.adv, c.old, c.ref, 0.2f, 0.1f};
    float we[5], *probs = calloc(35, sizeof(float));
    PolicyStats ps;
    double l = policy_loss_weights(we, c.lg, c.tg, c.w, &c.p, 5, 7, &ps);
    assert_int_equal(ps.count, 4);
    /* row 0: ρ = e^0.05, inside; row 2: ρ = e^0.6 > 1.2 with A < 0: the unclipped branch is the
     * min, its gradient flows; row 3: ρ = e^0.7 > 1.2 with A > 0, and row 4: ρ = e^−0.5 < 0.8
     * with A < 0: clipped, only the KL term is left */
    assert_true(ps.clip_frac == 0.5);
    assert_true(isfinite(l) && ps.kl > 0);
    int count;
    crossentropy_forward(probs, c.lg, c.tg, NULL, 5, 7, &count);
    float *dl = gbuf(35);
    crossentropy_backward(dl, 1.0f, probs, c.tg, we, 5, 7, count);
    unfill(dl, 35);
    for (int i = 7; i < 14; i++) assert_true(fabsf(dl[i]) < 1e-7f); /* no target, no gradient */
    CHECK_FD("policy (clip, k3 KL)", pg_loss, &c, c.lg, 35, dl);
    /* β = 0 on the clipped row leaves nothing: its factor is exactly 0 */
    c.p.beta = 0;
    policy_loss_weights(we, c.lg, c.tg, c.w, &c.p, 5, 7, NULL);
    assert_true(we[3] == 0.0f && we[4] == 0.0f && we[2] != 0.0f && we[0] != 0.0f);
    free(c.lg); free(probs); free(dl);
}

/* fd_error variant for piecewise functions: the loss sets fd_invalid when a perturbation
 * changes a discrete choice (expert selection); such elements are skipped and counted. */
static int fd_invalid, fd_skipped;
static double fd_last_rms_g, fd_last_rms_err; /* RMS over the checked elements, of g and of g_fd − g */
static double fd_error_piecewise_h(LossFn f, void *ctx, float *x, size_t n, const float *g, size_t max_checks, float H) {
    size_t step = n > max_checks ? n / max_checks : 1, used = 0;
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i += step) {
        float v = x[i];
        fd_invalid = 0;
        x[i] = v + H;       double p1 = f(ctx);
        x[i] = v - H;       double m1 = f(ctx);
        x[i] = v + 2 * H;   double p2 = f(ctx);
        x[i] = v - 2 * H;   double m2 = f(ctx);
        x[i] = v;
        if (fd_invalid) { fd_skipped++; continue; }
        double fdv = (m2 - 8 * m1 + 8 * p1 - p2) / (12 * (double)H);
        num += (fdv - g[i]) * (fdv - g[i]);
        den += (double)g[i] * g[i];
        used++;
    }
    fd_last_rms_g = used ? sqrt(den / used) : 0;
    fd_last_rms_err = used ? sqrt(num / used) : 0;
    return den > 0 ? sqrt(num / den) : sqrt(num);
}
static double fd_error_piecewise(LossFn f, void *ctx, float *x, size_t n, const float *g, size_t max_checks) {
    return fd_error_piecewise_h(f, ctx, x, n, g, max_checks, (float)FD_H);
}

/* A model's parameters filled with seeded values (norm weights near 1, others N(0, scale²)). */
static void random_model_scaled(Model *m, const char *json, float scale) {
    Config c;
    SeekErr e;
    if (config_parse(&c, json, strlen(json), "t", &e) || model_init(m, &c, &e)) fail_msg("%s", e.msg);
    for (size_t i = 0; i < m->n_params; i++) {
        ParamInfo *p = &m->params[i];
        int is_norm = strstr(p->name, "norm") != NULL;
        fill(p->ptr, p->numel, is_norm ? 0.2f : scale);
        if (is_norm) for (size_t k = 0; k < p->numel; k++) p->ptr[k] += 1.0f;
    }
}
static void random_model(Model *m, const char *json) { random_model_scaled(m, json, 0.5f); }

/* MLA block: x -> q, latent, rope key -> naive attention -> z; L = r·z */
enum { MT = 4 };
typedef struct {
    Model m;
    float *x, *r, *z, *q, *qa, *ql, *qr, *lat, *kpe, *kva, *kvr, *kvexp, *kf, *vf, *pat, row[MT], inv[8], af;
} MlaCtx;
static double mla_loss(void *p) {
    MlaCtx *c = p;
    const Config *cfg = &c->m.cfg;
    const LayerWeights *w = &c->m.layers[0];
    int NH = cfg->NH, dn = cfg->dn, dr = cfg->dr, dq = dn + dr;
    mla_q_forward(c->q, c->qa, c->ql, c->qr, c->x, w, cfg, MT);
    mla_kv_forward(c->lat, c->kpe, c->kva, c->kvr, c->x, w, cfg, MT);
    for (int t = 0; t < MT; t++) {
        rope_forward(c->q + (size_t)t * NH * dq + dn, c->q + (size_t)t * NH * dq + dn, NH, dq, t, c->inv, c->af, dr, cfg->rope_layout);
        rope_forward(c->kpe + (size_t)t * dr, c->kpe + (size_t)t * dr, 1, dr, t, c->inv, c->af, dr, cfg->rope_layout);
    }
    mla_attend_naive(c->z, NULL, c->pat, c->kvexp, c->kf, c->vf, c->q, c->lat, c->kpe, w, cfg, MT, 0, MT, c->row);
    return dot_r(c->z, c->r, (size_t)MT * NH * cfg->dv);
}

static void check_mla(const char *json, const char *label) {
    MlaCtx c;
    memset(&c, 0, sizeof c);
    random_model(&c.m, json);
    const Config *cfg = &c.m.cfg;
    int NH = cfg->NH, dn = cfg->dn, dr = cfg->dr, dv = cfg->dv, dq = dn + dr, dkv = cfg->kv_lora_rank, C = cfg->C;
    int ql = cfg->q_lora_rank ? cfg->q_lora_rank : 1;
    rope_inv_freq(c.inv, &c.af, cfg);
    c.x = vec(MT * C, 1); c.r = vec(MT * NH * dv, 1); c.z = vec(MT * NH * dv, 0); c.q = vec(MT * NH * dq, 0);
    c.qa = vec(MT * ql, 0); c.ql = vec(MT * ql, 0); c.qr = vec(MT, 0); c.lat = vec(MT * dkv, 0); c.kpe = vec(MT * dr, 0);
    c.kva = vec(MT * (dkv + dr), 0); c.kvr = vec(MT, 0); c.kvexp = vec(MT * NH * (dn + dv), 0);
    c.kf = vec(MT * NH * dq, 0); c.vf = vec(MT * NH * dv, 0); c.pat = vec(NH * MT * MT, 0);
    mla_loss(&c);
    /* backward */
    Model g;
    SeekErr e;
    if (model_init(&g, cfg, &e)) fail_msg("%s", e.msg);
    for (size_t i = 0; i < g.n_floats; i++) g.arena[i] = 0.5f;
    float *dx = gbuf(MT * C), *dqv = calloc(MT * NH * dq, 4), *dlat = calloc(MT * dkv, 4), *dkpe = calloc(MT * dr, 4);
    float *scr = calloc(4096, 4);
    mla_attend_naive_backward(dqv, dlat, dkpe, g.layers[0].wkv_b, c.r, c.pat, c.q, c.lat, c.kf, c.vf, &c.m.layers[0], cfg, MT, scr);
    for (int t = 0; t < MT; t++) {
        rope_backward(dqv + (size_t)t * NH * dq + dn, dqv + (size_t)t * NH * dq + dn, NH, dq, t, c.inv, c.af, dr, cfg->rope_layout);
        rope_backward(dkpe + (size_t)t * dr, dkpe + (size_t)t * dr, 1, dr, t, c.inv, c.af, dr, cfg->rope_layout);
    }
    mla_kv_backward(dx, &g.layers[0], dlat, dkpe, c.x, c.kva, c.kvr, &c.m.layers[0], cfg, MT, scr);
    mla_q_backward(dx, &g.layers[0], dqv, c.x, c.qa, c.ql, c.qr, &c.m.layers[0], cfg, MT, scr);
    unfill(dx, MT * C);
    for (size_t i = 0; i < g.n_floats; i++) g.arena[i] -= 0.5f;
    char what[160];
    snprintf(what, sizeof what, "%s dx", label);
    CHECK_FD(what, mla_loss, &c, c.x, MT * C, dx);
    int n_checked = 0;
    for (size_t i = 0; i < c.m.n_params; i++) {
        const char *nm = c.m.params[i].name;
        if (!strstr(nm, "self_attn")) continue; /* the block's own parameters */
        snprintf(what, sizeof what, "%s %s", label, nm);
        CHECK_FD(what, mla_loss, &c, c.m.params[i].ptr, c.m.params[i].numel, g.params[i].ptr);
        n_checked++;
    }
    assert_true(n_checked >= (cfg->q_lora_rank ? 6 : 4));
    model_free(&c.m);
    model_free(&g);
    float *bufs[] = {c.x, c.r, c.z, c.q, c.qa, c.ql, c.qr, c.lat, c.kpe, c.kva, c.kvr, c.kvexp, c.kf, c.vf, c.pat,
                     dx, dqv, dlat, dkpe, scr};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) free(bufs[i]);
}

#define MLA_CFG(q) "{\"model_type\":\"deepseek_v3\",\"num_hidden_layers\":1,\"vocab_size\":8,\"hidden_size\":8," \
    "\"intermediate_size\":4,\"num_attention_heads\":2,\"q_lora_rank\":" q ",\"kv_lora_rank\":5,"         \
    "\"qk_nope_head_dim\":3,\"qk_rope_head_dim\":4,\"v_head_dim\":3,\"n_routed_experts\":0,"                \
    "\"max_position_embeddings\":64,\"rope_scaling\":{\"type\":\"yarn\",\"factor\":4.0,"                     \
    "\"original_max_position_embeddings\":16,\"mscale\":1.0,\"mscale_all_dim\":0.8}}"

static void test_fd_mla(void **st) {
    (void)st;
    check_mla(MLA_CFG("6"), "MLA (q compression, YaRN)");
    check_mla(MLA_CFG("null"), "MLA (no q compression, YaRN)");
}

/* MoE block: route + experts + shared; L = r·out. Routing flips are skipped (fd_invalid). */
enum { ET = 5 };
typedef struct {
    Model m;
    float *x, *r, *out, *lg, *sc, *ch, *w, *routed, *shared, *eg, *eu, *ea, *eo, *sg, *su, *sa, *scr;
    int idx[64], base_idx[64];
    float alpha; /* balance loss weight (sequences of ET tokens, B = 1) */
} MoeCtx;
static double moe_loss(void *p) {
    MoeCtx *c = p;
    const Config *cfg = &c->m.cfg;
    const LayerWeights *w = &c->m.layers[0];
    moe_route(c->idx, c->w, c->lg, c->sc, c->ch, c->x, w->router, w->router_bias, ET, cfg, c->scr);
    for (int i = 0; i < ET * cfg->K; i++)
        if (c->idx[i] != c->base_idx[i]) fd_invalid = 1;
    moe_forward(c->out, c->routed, c->shared, c->eg, c->eu, c->ea, c->eo, c->sg, c->su, c->sa, c->x, c->idx, c->w, w, ET, cfg);
    return dot_r(c->out, c->r, (size_t)ET * cfg->C) + balance_loss(NULL, c->sc, c->idx, 1, ET, cfg, c->alpha);
}

static void check_moe(const char *json, const char *label) {
    MoeCtx c;
    memset(&c, 0, sizeof c);
    random_model(&c.m, json);
    c.alpha = 0.5f; /* large, so the balance loss's gradient is a visible part of the router's */
    const Config *cfg = &c.m.cfg;
    int C = cfg->C, E = cfg->E, K = cfg->K, Hm = cfg->Hm, Sh = cfg->Es * Hm;
    if (c.m.layers[0].router_bias) fill(c.m.layers[0].router_bias, E, 0.1f);
    c.x = vec(ET * C, 1); c.r = vec(ET * C, 1); c.out = vec(ET * C, 0); c.lg = vec(ET * E, 0); c.sc = vec(ET * E, 0);
    c.ch = vec(ET * E, 0); c.w = vec(ET * K, 0); c.routed = vec(ET * C, 0); c.shared = vec(ET * C, 0);
    c.eg = vec(ET * K * Hm, 0); c.eu = vec(ET * K * Hm, 0); c.ea = vec(ET * K * Hm, 0); c.eo = vec(ET * K * C, 0);
    c.sg = vec(ET * Sh + 1, 0); c.su = vec(ET * Sh + 1, 0); c.sa = vec(ET * Sh + 1, 0); c.scr = vec(E + cfg->G + 1, 0);
    moe_route(c.base_idx, c.w, c.lg, c.sc, c.ch, c.x, c.m.layers[0].router, c.m.layers[0].router_bias, ET, cfg, c.scr);
    moe_loss(&c);
    Model g;
    SeekErr e;
    if (model_init(&g, cfg, &e)) fail_msg("%s", e.msg);
    for (size_t i = 0; i < g.n_floats; i++) g.arena[i] = 0.5f;
    float *dx = gbuf(ET * C), *scr = calloc(moe_backward_scratch(cfg, ET), 4), *dsc = calloc((size_t)ET * E, 4);
    assert_true(balance_loss(dsc, c.sc, c.idx, 1, ET, cfg, c.alpha) > 0);
    moe_backward(dx, &g.layers[0], c.r, dsc, c.x, c.idx, c.w, c.sc, c.eg, c.eu, c.ea, c.eo, c.sg, c.su, c.sa,
                 &c.m.layers[0], ET, cfg, scr);
    free(dsc);
    unfill(dx, ET * C);
    for (size_t i = 0; i < g.n_floats; i++) g.arena[i] -= 0.5f;
    fd_skipped = 0;
    int checked = 0;
    char what[160];
    double err = fd_error_piecewise(moe_loss, &c, c.x, ET * C, dx, 60);
    if (err > TOL_FD_REL) fail_msg("%s dx: finite-difference error %.2e", label, err);
    for (size_t i = 0; i < c.m.n_params; i++) {
        const char *nm = c.m.params[i].name;
        if (!strstr(nm, ".mlp.") || strstr(nm, "e_score_correction_bias")) continue;
        /* experts no token chose have zero gradient and FD zero too; check the others */
        snprintf(what, sizeof what, "%s %s", label, nm);
        err = fd_error_piecewise(moe_loss, &c, c.m.params[i].ptr, c.m.params[i].numel, g.params[i].ptr, 40);
        if (err > TOL_FD_REL) fail_msg("%s: finite-difference error %.2e", what, err);
        checked++;
    }
    /* the bias gets no gradient: selection is not differentiated */
    for (size_t i = 0; i < g.n_params; i++)
        if (strstr(g.params[i].name, "e_score_correction_bias"))
            for (size_t k = 0; k < g.params[i].numel; k++) assert_true(g.params[i].ptr[k] == 0.0f);
    print_message("  %s: %d tensors checked, %d perturbations skipped (routing changed)\n", label, checked, fd_skipped);
    assert_true(checked >= 3 * E);
    model_free(&c.m);
    model_free(&g);
    float *bufs[] = {c.x, c.r, c.out, c.lg, c.sc, c.ch, c.w, c.routed, c.shared, c.eg, c.eu, c.ea, c.eo, c.sg, c.su,
                     c.sa, c.scr, dx, scr};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) free(bufs[i]);
}

#define MOE_CFG(extra) "{\"num_hidden_layers\":1,\"vocab_size\":8,\"hidden_size\":6,\"intermediate_size\":4," \
    "\"num_attention_heads\":1,\"q_lora_rank\":null,\"kv_lora_rank\":2,\"qk_nope_head_dim\":2,"                \
    "\"qk_rope_head_dim\":2,\"v_head_dim\":2,\"moe_intermediate_size\":3,\"first_k_dense_replace\":0,"          \
    "\"n_routed_experts\":8,\"num_experts_per_tok\":2,\"n_shared_experts\":1," extra "}"

/* MoE blocks; the loss includes the sequence-wise balance loss (V3: renormalised sigmoid
 * scores; V2: softmax scores, the expert-level auxiliary loss), whose gradient reaches the router
 * through moe_backward's dscores. */
static void test_fd_moe(void **st) {
    (void)st;
    check_moe(MOE_CFG("\"model_type\":\"deepseek_v3\",\"n_group\":4,\"topk_group\":2,\"routed_scaling_factor\":2.5"),
              "MoE V3 (sigmoid, bias, groups, renormalised)");
    check_moe(MOE_CFG("\"model_type\":\"deepseek_v2\",\"topk_method\":\"greedy\",\"routed_scaling_factor\":1.5"),
              "MoE V2 (softmax, greedy)");
}

/* Config of the tiny V3 model of the MTP and training-step checks; %d = first_k_dense_replace. */
static const char *STEP_CFG =
    "{\"model_type\":\"deepseek_v3\",\"num_hidden_layers\":2,\"vocab_size\":16,\"hidden_size\":8,"
    "\"intermediate_size\":12,\"num_attention_heads\":2,\"q_lora_rank\":6,\"kv_lora_rank\":4,"
    "\"qk_nope_head_dim\":2,\"qk_rope_head_dim\":2,\"v_head_dim\":2,\"n_routed_experts\":8,"
    "\"num_experts_per_tok\":2,\"n_group\":4,\"topk_group\":2,\"n_shared_experts\":1,"
    "\"moe_intermediate_size\":3,\"first_k_dense_replace\":%d,\"num_nextn_predict_layers\":2,"
    "\"max_position_embeddings\":32}";

/* MTP as an op: the module alone (mtp_forward / mtp_backward) given h0, with two depths so the
 * gradient of depth 2 flows into depth 1 and into h0. */
typedef struct {
    Model m;
    MtpState ms;
    float *h0;
    int ids[14];
    int *base;
    size_t n_base;
} MtpCtx;

static size_t mtp_choices(MtpCtx *c, int *out) {
    size_t n = 0;
    if (c->m.cfg.E == 0) return 0;
    for (int k = 0; k < c->ms.D; k++) {
        size_t nk = (size_t)c->ms.B * c->ms.d[k].T * c->m.cfg.K;
        if (out) memcpy(out + n, c->ms.d[k].s.layer[0].e_idx, nk * sizeof(int));
        n += nk;
    }
    return n;
}

static double mtp_loss(void *p) {
    MtpCtx *c = p;
    SeekErr e;
    if (mtp_forward(&c->m, &c->ms, c->ids, NULL, c->h0, &e)) fail_msg("%s", e.msg);
    int now[1024];
    size_t n = mtp_choices(c, now);
    if (n != c->n_base || memcmp(now, c->base, n * sizeof(int))) fd_invalid = 1;
    double L = 0;
    for (int k = 0; k < c->ms.D; k++) L += c->ms.d[k].loss;
    return L;
}

static void check_mtp(int first_dense, const char *label) {
    MtpCtx c;
    memset(&c, 0, sizeof c);
    char json[1024];
    snprintf(json, sizeof json, STEP_CFG, first_dense);
    /* weights of 0.25: the module stacks a norm, a projection and a block, and with 0.5 its
     * attention is sharp enough for the stencil's h^4 truncation to show (the error then falls
     * ~16x per halving of h, so the gradient is right) */
    random_model_scaled(&c.m, json, 0.25f);
    SeekErr e;
    if (mtp_init(&c.ms, &c.m.cfg, 2, 2, 7, &e)) fail_msg("%s", e.msg);
    c.h0 = vec(14 * 8, 1);
    for (int i = 0; i < 14; i++) c.ids[i] = (int)(rng_u32(&fd_rng) % 16);
    mtp_loss(&c);
    c.n_base = mtp_choices(&c, NULL);
    c.base = malloc(c.n_base * sizeof(int) + 4);
    mtp_choices(&c, c.base);
    Model g;
    if (model_init(&g, &c.m.cfg, &e)) fail_msg("%s", e.msg);
    for (size_t i = 0; i < g.n_floats; i++) g.arena[i] = 0.5f;
    float *dh0 = gbuf(14 * 8);
    mtp_backward(&g, &c.m, &c.ms, 1.0f, dh0);
    unfill(dh0, 14 * 8);
    for (size_t i = 0; i < g.n_floats; i++) g.arena[i] -= 0.5f;
    /* finite differences of every tensor the module uses (RMS over the checked elements) */
    fd_skipped = 0;
    double rms_g[256], rms_e[256];
    const char *tname[256];
    int nt = 0;
    fd_error_piecewise(mtp_loss, &c, c.h0, 14 * 8, dh0, 60);
    tname[nt] = "d h0";
    rms_g[nt] = fd_last_rms_g;
    rms_e[nt++] = fd_last_rms_err;
    for (size_t i = 0; i < c.m.n_params; i++) {
        const char *nm = c.m.params[i].name;
        int used = c.m.params[i].mtp || !strcmp(nm, "model.embed_tokens.weight") || !strcmp(nm, "lm_head.weight");
        if (!used || strstr(nm, "e_score_correction_bias")) {
            for (size_t k = 0; k < g.params[i].numel; k++) assert_true(g.params[i].ptr[k] == 0.0f);
            continue;
        }
        /* embedding rows go through enorm: with values of 0.5, a step of 2^-5 is large enough for the
         * stencil's h^4 truncation to show (measured: the error falls ~16x per halving), so 2^-7 */
        float h = strcmp(nm, "model.embed_tokens.weight") ? (float)FD_H : (float)FD_H / 4;
        fd_error_piecewise_h(mtp_loss, &c, c.m.params[i].ptr, c.m.params[i].numel, g.params[i].ptr, 24, h);
        assert_true(nt < 256);
        tname[nt] = nm;
        rms_g[nt] = fd_last_rms_g;
        rms_e[nt++] = fd_last_rms_err;
    }
    /* the project's measure: the normwise relative error of the whole gradient (every checked
     * element of every tensor, each tensor weighted by its share of the elements checked) */
    double gmax = 0, worst = 0, sum_e = 0, sum_g = 0;
    for (int t = 0; t < nt; t++) {
        gmax = fmax(gmax, rms_g[t]);
        sum_e += rms_e[t] * rms_e[t];
        sum_g += rms_g[t] * rms_g[t];
    }
    double global = sqrt(sum_e / sum_g);
    if (global > TOL_FD_REL) fail_msg("%s: normwise finite-difference error %.2e", label, global);
    /* and no tensor may be wrong on its own: TOL_FD_TENSOR_REL of its gradient + TOL_FD_ABS of the largest */
    for (int t = 0; t < nt; t++) {
        double limit = TOL_FD_TENSOR_REL * rms_g[t] + TOL_FD_ABS * gmax;
        worst = fmax(worst, rms_e[t] / limit);
        if (rms_e[t] > limit)
            fail_msg("%s: %s: RMS finite-difference error %.2e over the limit %.2e (RMS gradient %.2e, largest %.2e)", label,
                     tname[t], rms_e[t], limit, rms_g[t], gmax);
    }
    int checked = nt - 1;
    print_message("  %s: d h0 and %d tensors, normwise error %.1e, worst tensor at %.0f%% of its limit, %d perturbations skipped\n",
                  label, checked, global, 100 * worst, fd_skipped);
    free(c.base);
    free(c.h0);
    free(dh0);
    mtp_free(&c.ms);
    model_free(&g);
    model_free(&c.m);
}

static void test_fd_mtp(void **st) {
    (void)st;
    check_mtp(9, "MTP, 2 depths, dense blocks");
    check_mtp(1, "MTP, 2 depths, MoE blocks");
}

/* train_step_grads is exactly the composition of the verified parts: the main backward driven
 * by the cross-entropy gradient, MTP's gradient on the final norm's output, and the balance
 * loss's gradient on each MoE layer's scores. */
static void test_train_step_wiring(void **st) {
    (void)st;
    Model m, g1, g2;
    char json[1024];
    snprintf(json, sizeof json, STEP_CFG, 1);
    random_model(&m, json);
    SeekErr e;
    TrainBuffers t1, t2;
    if (model_init(&g1, &m.cfg, &e) || model_init(&g2, &m.cfg, &e) || trainbuf_init(&t1, &m.cfg, 2, 7, 2, &e) ||
        trainbuf_init(&t2, &m.cfg, 2, 7, 2, &e))
        fail_msg("%s", e.msg);
    int ids[14];
    for (int i = 0; i < 14; i++) ids[i] = (int)(rng_u32(&fd_rng) % 16);
    LossWeights lw = {2, 0.3f, 0.1f};
    StepLosses L;
    if (train_step_grads(&m, &g1, &t1, &(TrainBatch){.ids = ids}, &lw, &L, &e)) fail_msg("%s", e.msg);
    /* by hand */
    memset(g2.arena, 0, g2.n_floats * sizeof(float));
    t2.kv.len = 0;
    if (model_forward(&m, &t2.s, &t2.kv, ids, 2, 7, ATTN_NAIVE, NULL, NULL, t2.g.logits, &e)) fail_msg("%s", e.msg);
    for (int i = 0; i < 14; i++) t2.g.targets[i] = i % 7 < 6 ? ids[i + 1] : -1;
    int count;
    double main_loss = crossentropy_forward(t2.g.probs, t2.g.logits, t2.g.targets, NULL, 14, m.cfg.V, &count);
    memset(t2.g.dlogits, 0, (size_t)14 * m.cfg.V * sizeof(float));
    crossentropy_backward(t2.g.dlogits, 1.0f, t2.g.probs, t2.g.targets, NULL, 14, m.cfg.V, count);
    if (mtp_forward(&m, &t2.mtp, ids, NULL, t2.s.xnf, &e)) fail_msg("%s", e.msg);
    memset(t2.dh0, 0, (size_t)14 * m.cfg.C * sizeof(float));
    mtp_backward(&g2, &m, &t2.mtp, 0.3f / 2, t2.dh0);
    double bal = 0;
    for (int l = 0; l < m.cfg.L; l++)
        if (t2.dscores[l]) {
            memset(t2.dscores[l], 0, (size_t)14 * m.cfg.E * sizeof(float));
            bal += balance_loss(t2.dscores[l], t2.s.layer[l].r_scores, t2.s.layer[l].e_idx, 2, 7, &m.cfg, 0.1f);
        }
    model_backward(&g2, &t2.g, &m, &t2.s, &t2.kv, t2.g.dlogits, t2.dh0, t2.dscores, 2, 7);
    assert_true(L.main == main_loss);
    assert_true(L.balance == bal);
    double mtp = 0;
    for (int k = 0; k < 2; k++) mtp += (0.3f / (float)2) * t2.mtp.d[k].loss; /* the trainer's own order */
    assert_true(L.mtp == mtp);
    assert_memory_equal(g1.arena, g2.arena, g1.n_floats * sizeof(float));
    trainbuf_free(&t1);
    trainbuf_free(&t2);
    model_free(&g1);
    model_free(&g2);
    model_free(&m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hf_v3),        cmocka_unit_test(test_hf_v3_noq),   cmocka_unit_test(test_hf_v2_greedy),
        cmocka_unit_test(test_hf_v2_group),  cmocka_unit_test(test_hf_llama_gqa),
        cmocka_unit_test(test_sft_v3),       cmocka_unit_test(test_sft_v3_noq),  cmocka_unit_test(test_sft_v2_greedy),
        cmocka_unit_test(test_sft_v2_group), cmocka_unit_test(test_sft_llama_gqa),
        cmocka_unit_test(test_weighted_v3),  cmocka_unit_test(test_weighted_llama_gqa),
        cmocka_unit_test(test_grpo_v3),      cmocka_unit_test(test_grpo_llama_gqa),
        cmocka_unit_test(test_fd_matmul),    cmocka_unit_test(test_fd_rmsnorm),  cmocka_unit_test(test_fd_embedding),
        cmocka_unit_test(test_fd_rope),      cmocka_unit_test(test_fd_swiglu),   cmocka_unit_test(test_fd_attention),
        cmocka_unit_test(test_fd_crossentropy), cmocka_unit_test(test_fd_policy), cmocka_unit_test(test_fd_mla),  cmocka_unit_test(test_fd_moe),
        cmocka_unit_test(test_fd_mtp),       cmocka_unit_test(test_train_step_wiring),
    };
    rng_seed(&fd_rng, 1234);
    return cmocka_run_group_tests_name("gradients", tests, NULL, NULL);
}
