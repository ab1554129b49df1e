/* test_fast_cpu.c: every fast CPU twin (fast/cpu) against its reference (ref/), op by op.
 *
 * Each op runs on a "nice" shape and on awkward ones: T = 1 (decoding), sizes that are no
 * multiple of any block or vector width, K = 1 and K = E for routing, attention over more keys
 * than one online-softmax block (ATT_BLOCK), GQA, strided caches. Both implementations write into
 * buffers poisoned with NaN and framed by guard words; after the call:
 *   1. the guard words are intact (no write outside the output);
 *   2. NaN/Inf sit at the same positions (so an unwritten or extra-written element shows);
 *   3. every element is within TOL_CPU_OP_ATOL + TOL_CPU_OP_RTOL·|ref| and the tensor's nmse
 *      within TOL_CPU_OP_NMSE (tests/tolerances.h).
 * Then the model: model_forward_cpu with an edit callback (ablate an expert, zero a head) agrees
 * with model_forward under the same edit, and greedy generation on the cpu backend equals the
 * greedy continuation transformers computed for every fixture (goldens not produced by seek.c).
 * Stage-by-stage agreement of whole models is tests/cli_verify.sh (`seek verify`). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "forward.h"
#include "mla.h"
#include "model.h"
#include "moe.h"
#include "ops.h"
#include "safetensors.h"
#include "tolerances.h"

#ifdef SEEK_HAVE_BLAS
#include "cpu/cpu.h"

/* ---- guarded, poisoned buffers ---- */

#define GUARD 16
static const uint32_t GUARD_BITS = 0x7fa5a5a5u; /* a signalling-NaN pattern nothing computes */

typedef struct {
    float *base, *p;
    size_t n;
} Buf;

static Buf buf_new(size_t n) {
    Buf b = {malloc((n + 2 * GUARD) * sizeof(float)), NULL, n};
    assert_non_null(b.base);
    b.p = b.base + GUARD;
    for (size_t i = 0; i < n + 2 * GUARD; i++) memcpy(b.base + i, &GUARD_BITS, 4);
    for (size_t i = 0; i < n; i++) b.p[i] = NAN; /* poison: an element never written stays NaN */
    return b;
}

static void buf_check_free(Buf *b, const char *what) {
    for (size_t i = 0; i < GUARD; i++) {
        uint32_t lo, hi;
        memcpy(&lo, b->base + i, 4);
        memcpy(&hi, b->p + b->n + i, 4);
        if (lo != GUARD_BITS) fail_msg("%s: guard word %zu before the output was overwritten", what, GUARD - i);
        if (hi != GUARD_BITS) fail_msg("%s: guard word %zu after the output was overwritten", what, i);
    }
    free(b->base);
    b->base = b->p = NULL;
}

static Rng g_rng;

/* n values uniform in [-scale, scale) */
static float *rnd(size_t n, float scale) {
    float *x = malloc((n ? n : 1) * sizeof(float));
    assert_non_null(x);
    for (size_t i = 0; i < n; i++) x[i] = scale * (2.0f * rng_uniform(&g_rng) - 1.0f);
    return x;
}

/* got vs want: NaN/Inf positions first, then the elementwise limit, then nmse */
static void expect_close(const char *what, const float *got, const float *want, size_t n) {
    double md = 0, sd = 0, sw = 0;
    for (size_t i = 0; i < n; i++) {
        float a = want[i], b = got[i];
        int same = isnan(a) ? isnan(b) : isinf(a) ? (isinf(b) && (a > 0) == (b > 0)) : isfinite(b);
        if (!same) fail_msg("%s: element %zu is %g, the reference has %g (NaN/Inf positions differ)", what, i, b, a);
    }
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(want[i])) continue;
        double d = fabs((double)got[i] - want[i]);
        if (d > TOL_CPU_OP_ATOL + TOL_CPU_OP_RTOL * fabs((double)want[i]))
            fail_msg("%s: element %zu: %.9g vs reference %.9g (|diff| %.3g)", what, i, got[i], want[i], d);
        md = fmax(md, d);
        sd += d * d;
        sw += (double)want[i] * want[i];
    }
    double nmse = sw > 0 ? sd / sw : sd;
    if (nmse > TOL_CPU_OP_NMSE) fail_msg("%s: nmse %.3g over %g", what, nmse, TOL_CPU_OP_NMSE);
    print_message("  %-44s max|diff| %.2e  nmse %.2e\n", what, md, nmse);
}

/* compares and frees a pair of guarded outputs */
static void expect_pair(const char *what, Buf *got, Buf *want) {
    expect_close(what, got->p, want->p, want->n);
    buf_check_free(got, what);
    buf_check_free(want, what);
}

/* ---- matmul ---- */

static void check_matmul(int N, int IC, int OC, int nan_row) {
    float *x = rnd((size_t)N * IC, 1.0f), *w = rnd((size_t)OC * IC, 1.0f / sqrtf((float)IC));
    if (nan_row >= 0) x[(size_t)nan_row * IC + IC / 2] = NAN; /* must poison exactly that output row */
    Buf a = buf_new((size_t)N * OC), b = buf_new((size_t)N * OC);
    matmul_forward_blas(a.p, x, w, N, IC, OC);
    matmul_forward(b.p, x, w, N, IC, OC);
    char what[80];
    snprintf(what, sizeof what, "matmul N=%d IC=%d OC=%d%s", N, IC, OC, nan_row >= 0 ? " (a NaN input)" : "");
    if (nan_row >= 0)
        for (int o = 0; o < OC; o++) assert_true(isnan(b.p[(size_t)nan_row * OC + o])); /* the check has teeth */
    expect_pair(what, &a, &b);
    free(x);
    free(w);
}

static void test_matmul(void **st) {
    (void)st;
    check_matmul(64, 128, 96, -1); /* nice */
    check_matmul(1, 37, 53, -1);   /* one row: the sgemv path */
    check_matmul(13, 129, 67, -1); /* nothing a multiple of a block */
    check_matmul(5, 1, 3, -1);     /* IC = 1 */
    check_matmul(9, 33, 17, 4);    /* NaN propagates to the same row */
}

/* ---- attention ---- */

/* q (T, NH, DQ); k/v rows padded by `pad` floats to test the strides; Tbuf >= pos0 + T columns
 * of scores/pattern (the forward passes its Tmax). */
static void check_attention(int T, int pos0, int Tbuf, int NH, int NKV, int DQ, int DV, int pad, int with_attn) {
    int Tk = pos0 + T;
    size_t ks = (size_t)NKV * DQ + pad, vs = (size_t)NKV * DV + pad;
    float *q = rnd((size_t)T * NH * DQ, 1.0f), *k = rnd((size_t)Tk * ks, 1.0f), *v = rnd((size_t)Tk * vs, 1.0f);
    float *row = malloc((size_t)Tbuf * sizeof(float));
    float scale = 1.0f / sqrtf((float)DQ);
    Buf za = buf_new((size_t)T * NH * DV), zb = buf_new((size_t)T * NH * DV);
    size_t na = with_attn ? (size_t)NH * T * Tbuf : 0;
    Buf sa = buf_new(na), sb = buf_new(na), pa = buf_new(na), pb = buf_new(na);
    attention_forward_cpu(za.p, with_attn ? sa.p : NULL, with_attn ? pa.p : NULL, q, k, v, T, pos0, Tbuf, NH, NKV, DQ, DV, ks,
                          vs, scale, row);
    attention_forward(zb.p, with_attn ? sb.p : NULL, with_attn ? pb.p : NULL, q, k, v, T, pos0, Tbuf, NH, NKV, DQ, DV, ks, vs,
                      scale, row);
    char what[96];
    snprintf(what, sizeof what, "attention T=%d pos0=%d Tk=%d NH=%d NKV=%d DQ=%d DV=%d z", T, pos0, Tbuf, NH, NKV, DQ, DV);
    expect_pair(what, &za, &zb);
    snprintf(what, sizeof what, "  ... scores (masked -inf)");
    expect_pair(what, &sa, &sb);
    snprintf(what, sizeof what, "  ... pattern");
    expect_pair(what, &pa, &pb);
    free(q);
    free(k);
    free(v);
    free(row);
}

static void test_attention(void **st) {
    (void)st;
    check_attention(16, 0, 16, 4, 4, 32, 32, 0, 1);   /* nice: prefill, MHA */
    check_attention(1, 9, 10, 4, 2, 16, 16, 0, 1);    /* T = 1 decode, GQA */
    check_attention(7, 3, 12, 3, 1, 13, 11, 5, 1);    /* MQA, odd widths, strided rows, Tbuf > Tk */
    check_attention(3, 300, 303, 2, 2, 8, 5, 0, 1);   /* more keys than one ATT_BLOCK */
    check_attention(40, 0, 40, 5, 5, 24, 12, 0, 0);   /* no scores/pattern buffers */
}

/* ---- SwiGLU ---- */

static void check_swiglu(int N, int C, int H) {
    float *x = rnd((size_t)N * C, 1.0f), *wg = rnd((size_t)H * C, 1.0f / sqrtf((float)C)),
          *wu = rnd((size_t)H * C, 1.0f / sqrtf((float)C)), *wd = rnd((size_t)C * H, 1.0f / sqrtf((float)H));
    Buf o[2], g[2], u[2], a[2];
    for (int i = 0; i < 2; i++) {
        o[i] = buf_new((size_t)N * C);
        g[i] = buf_new((size_t)N * H);
        u[i] = buf_new((size_t)N * H);
        a[i] = buf_new((size_t)N * H);
    }
    swiglu_forward_cpu(o[0].p, g[0].p, u[0].p, a[0].p, x, wg, wu, wd, N, C, H);
    swiglu_forward(o[1].p, g[1].p, u[1].p, a[1].p, x, wg, wu, wd, N, C, H);
    char what[80];
    snprintf(what, sizeof what, "swiglu N=%d C=%d H=%d out", N, C, H);
    expect_pair(what, &o[0], &o[1]);
    expect_pair("  ... gate (saved)", &g[0], &g[1]);
    expect_pair("  ... up (saved)", &u[0], &u[1]);
    expect_pair("  ... act (saved)", &a[0], &a[1]);
    free(x);
    free(wg);
    free(wu);
    free(wd);
}

static void test_swiglu(void **st) {
    (void)st;
    check_swiglu(32, 64, 128);
    check_swiglu(1, 37, 53);
    check_swiglu(600, 17, 130); /* N·H > the OpenMP threshold */
}

/* ---- MLA ---- */

typedef struct {
    Config c;
    LayerWeights w;
    float *mem[8];
} MlaCase;

static MlaCase mla_case(int C, int NH, int qr, int dkv, int dn, int dr, int dv) {
    MlaCase m;
    memset(&m, 0, sizeof m);
    m.c.C = C;
    m.c.NH = NH;
    m.c.q_lora_rank = qr;
    m.c.kv_lora_rank = dkv;
    m.c.dn = dn;
    m.c.dr = dr;
    m.c.dv = dv;
    m.c.mla = 1;
    m.c.attn_scale = 1.0f / sqrtf((float)(dn + dr));
    int qdim = NH * (dn + dr);
    m.w.wq_a = m.mem[0] = rnd((size_t)(qr ? qr : 1) * C, 1.0f / sqrtf((float)C));
    m.w.q_a_norm = m.mem[1] = rnd((size_t)(qr ? qr : 1), 1.0f);
    m.w.wq_b = m.mem[2] = rnd((size_t)qdim * (qr ? qr : 1), 1.0f / sqrtf((float)(qr ? qr : 1)));
    m.w.wq = m.mem[3] = rnd((size_t)qdim * C, 1.0f / sqrtf((float)C));
    m.w.wkv_a = m.mem[4] = rnd((size_t)(dkv + dr) * C, 1.0f / sqrtf((float)C));
    m.w.kv_a_norm = m.mem[5] = rnd((size_t)dkv, 1.0f);
    m.w.wkv_b = m.mem[6] = rnd((size_t)NH * (dn + dv) * dkv, 1.0f / sqrtf((float)dkv));
    return m;
}

static void mla_case_free(MlaCase *m) {
    for (int i = 0; i < 8; i++) free(m->mem[i]);
}

static void check_mla_projections(MlaCase *m, int N) {
    const Config *c = &m->c;
    int qr = c->q_lora_rank, dq = c->dn + c->dr, dkv = c->kv_lora_rank, dr = c->dr;
    float *x = rnd((size_t)N * c->C, 1.0f);
    Buf q[2], qa[2], ql[2], qs[2], lat[2], kpe[2], kva[2], kvs[2];
    for (int i = 0; i < 2; i++) {
        q[i] = buf_new((size_t)N * c->NH * dq);
        qa[i] = buf_new((size_t)N * qr);
        ql[i] = buf_new((size_t)N * qr);
        qs[i] = buf_new(qr ? (size_t)N : 0);
        lat[i] = buf_new((size_t)N * dkv);
        kpe[i] = buf_new((size_t)N * dr);
        kva[i] = buf_new((size_t)N * (dkv + dr));
        kvs[i] = buf_new((size_t)N);
    }
    mla_q_forward_cpu(q[0].p, qa[0].p, ql[0].p, qs[0].p, x, &m->w, c, N);
    mla_q_forward(q[1].p, qa[1].p, ql[1].p, qs[1].p, x, &m->w, c, N);
    mla_kv_forward_cpu(lat[0].p, kpe[0].p, kva[0].p, kvs[0].p, x, &m->w, c, N);
    mla_kv_forward(lat[1].p, kpe[1].p, kva[1].p, kvs[1].p, x, &m->w, c, N);
    char what[80];
    snprintf(what, sizeof what, "mla_q N=%d q_lora=%d q", N, qr);
    expect_pair(what, &q[0], &q[1]);
    expect_pair("  ... q_a", &qa[0], &qa[1]);
    expect_pair("  ... q_latent", &ql[0], &ql[1]);
    expect_pair("  ... q_rstd", &qs[0], &qs[1]);
    snprintf(what, sizeof what, "mla_kv N=%d dkv=%d latent", N, dkv);
    expect_pair(what, &lat[0], &lat[1]);
    expect_pair("  ... k_pe", &kpe[0], &kpe[1]);
    expect_pair("  ... kv_a", &kva[0], &kva[1]);
    expect_pair("  ... kv_rstd", &kvs[0], &kvs[1]);
    free(x);
}

/* attention over a cache of Tk latents, the T new queries at pos0.. (both forms) */
static void check_mla_attend(MlaCase *m, int T, int pos0, int Tbuf) {
    const Config *c = &m->c;
    int NH = c->NH, dn = c->dn, dr = c->dr, dv = c->dv, dq = dn + dr, dkv = c->kv_lora_rank;
    /* the reference expands (naive) every one of the Tbuf cached rows, as in the forward where the
     * cache holds Tmax positions; the rows past Tk are never attended */
    float *q = rnd((size_t)T * NH * dq, 1.0f), *lat = rnd((size_t)Tbuf * dkv, 1.0f), *kpe = rnd((size_t)Tbuf * dr, 1.0f);
    float *row = malloc((size_t)Tbuf * sizeof(float));
    char what[96];
    for (int form = 0; form < 2; form++) {
        Buf z[2], sc[2], pt[2], s1[2], s2[2], s3[2];
        for (int i = 0; i < 2; i++) {
            z[i] = buf_new((size_t)T * NH * dv);
            sc[i] = buf_new((size_t)NH * T * Tbuf);
            pt[i] = buf_new((size_t)NH * T * Tbuf);
            if (form == 0) { /* naive: kv (Tbuf, NH, dn+dv), k (Tbuf, NH, dq), v (Tbuf, NH, dv) */
                s1[i] = buf_new((size_t)Tbuf * NH * (dn + dv));
                s2[i] = buf_new((size_t)Tbuf * NH * dq);
                s3[i] = buf_new((size_t)Tbuf * NH * dv);
            } else { /* absorbed: q_abs, o_lat (T, NH, dkv) */
                s1[i] = buf_new((size_t)T * NH * dkv);
                s2[i] = buf_new((size_t)T * NH * dkv);
                s3[i] = buf_new(0);
            }
        }
        if (form == 0) {
            mla_attend_naive_cpu(z[0].p, sc[0].p, pt[0].p, s1[0].p, s2[0].p, s3[0].p, q, lat, kpe, &m->w, c, T, pos0, Tbuf, row);
            mla_attend_naive(z[1].p, sc[1].p, pt[1].p, s1[1].p, s2[1].p, s3[1].p, q, lat, kpe, &m->w, c, T, pos0, Tbuf, row);
        } else {
            mla_attend_absorb_cpu(z[0].p, sc[0].p, pt[0].p, s1[0].p, s2[0].p, q, lat, kpe, &m->w, c, T, pos0, Tbuf, row);
            mla_attend_absorb(z[1].p, sc[1].p, pt[1].p, s1[1].p, s2[1].p, q, lat, kpe, &m->w, c, T, pos0, Tbuf, row);
        }
        snprintf(what, sizeof what, "mla %s T=%d pos0=%d NH=%d dkv=%d dn=%d dr=%d dv=%d z", form ? "absorb" : "naive", T, pos0,
                 NH, dkv, dn, dr, dv);
        expect_pair(what, &z[0], &z[1]);
        expect_pair("  ... scores", &sc[0], &sc[1]);
        expect_pair("  ... pattern", &pt[0], &pt[1]);
        expect_pair(form ? "  ... q_abs" : "  ... kv (expanded)", &s1[0], &s1[1]);
        expect_pair(form ? "  ... o_lat" : "  ... k (with the rope key)", &s2[0], &s2[1]);
        expect_pair(form ? "  ... (none)" : "  ... v", &s3[0], &s3[1]);
    }
    free(q);
    free(lat);
    free(kpe);
    free(row);
}

static void test_mla(void **st) {
    (void)st;
    MlaCase nice = mla_case(64, 4, 32, 32, 16, 8, 16);
    check_mla_projections(&nice, 16);
    check_mla_attend(&nice, 16, 0, 16);  /* prefill */
    check_mla_attend(&nice, 1, 20, 24);  /* T = 1: absorbed decode, Tbuf > Tk */
    mla_case_free(&nice);
    MlaCase odd = mla_case(37, 3, 0, 13, 5, 4, 7); /* no q compression, odd widths */
    check_mla_projections(&odd, 1);
    check_mla_projections(&odd, 9);
    check_mla_attend(&odd, 5, 0, 5);
    check_mla_attend(&odd, 2, 270, 272); /* more keys than one ATT_BLOCK */
    mla_case_free(&odd);
}

/* ---- MoE ---- */

static void check_router(int N, int E, ScoringFunc sf, int with_bias) {
    Config c;
    memset(&c, 0, sizeof c);
    c.C = 29;
    c.E = E;
    c.scoring = sf;
    float *x = rnd((size_t)N * c.C, 1.0f), *r = rnd((size_t)E * c.C, 0.5f), *bias = with_bias ? rnd((size_t)E, 0.1f) : NULL;
    Buf lg[2], sc[2], ch[2];
    for (int i = 0; i < 2; i++) lg[i] = buf_new((size_t)N * E), sc[i] = buf_new((size_t)N * E), ch[i] = buf_new((size_t)N * E);
    moe_router_scores_cpu(lg[0].p, sc[0].p, ch[0].p, x, r, bias, N, &c);
    moe_router_scores(lg[1].p, sc[1].p, ch[1].p, x, r, bias, N, &c);
    char what[80];
    snprintf(what, sizeof what, "router N=%d E=%d %s%s logits", N, E, sf == SCORE_SIGMOID ? "sigmoid" : "softmax",
             with_bias ? "+bias" : "");
    expect_pair(what, &lg[0], &lg[1]);
    expect_pair("  ... scores", &sc[0], &sc[1]);
    expect_pair("  ... choice", &ch[0], &ch[1]);
    free(x);
    free(r);
    free(bias);
}

static void check_moe(int N, int C, int E, int K, int Es, int Hm) {
    Config c;
    memset(&c, 0, sizeof c);
    c.C = C;
    c.E = E;
    c.K = K;
    c.Es = Es;
    c.Hm = Hm;
    LayerWeights w;
    memset(&w, 0, sizeof w);
    float s_in = 1.0f / sqrtf((float)C), s_h = 1.0f / sqrtf((float)Hm);
    w.exp_gate = rnd((size_t)E * Hm * C, s_in);
    w.exp_up = rnd((size_t)E * Hm * C, s_in);
    w.exp_down = rnd((size_t)E * C * Hm, s_h);
    w.sh_gate = rnd((size_t)Es * Hm * C, s_in);
    w.sh_up = rnd((size_t)Es * Hm * C, s_in);
    w.sh_down = rnd((size_t)C * Es * Hm, Es ? 1.0f / sqrtf((float)(Es * Hm)) : 1.0f);
    float *x = rnd((size_t)N * C, 1.0f), *gw = rnd((size_t)N * K, 1.0f);
    /* K distinct experts per token: a seeded shuffle's first K */
    int *idx = malloc((size_t)N * K * sizeof(int)), perm[64];
    assert_true(E <= 64);
    for (int n = 0; n < N; n++) {
        for (int e = 0; e < E; e++) perm[e] = e;
        for (int e = E - 1; e > 0; e--) {
            int j = (int)(rng_u32(&g_rng) % (uint32_t)(e + 1)), t = perm[e];
            perm[e] = perm[j];
            perm[j] = t;
        }
        memcpy(idx + (size_t)n * K, perm, (size_t)K * sizeof(int));
    }
    Buf out[2], rt[2], sh[2], eg[2], eu[2], ea[2], eo[2], sg[2], su[2], sa[2];
    size_t nkh = (size_t)N * K * Hm, nsh = (size_t)N * Es * Hm;
    for (int i = 0; i < 2; i++) {
        out[i] = buf_new((size_t)N * C), rt[i] = buf_new((size_t)N * C), sh[i] = buf_new((size_t)N * C);
        eg[i] = buf_new(nkh), eu[i] = buf_new(nkh), ea[i] = buf_new(nkh), eo[i] = buf_new((size_t)N * K * C);
        sg[i] = buf_new(nsh), su[i] = buf_new(nsh), sa[i] = buf_new(nsh);
    }
    moe_forward_cpu(out[0].p, rt[0].p, sh[0].p, eg[0].p, eu[0].p, ea[0].p, eo[0].p, sg[0].p, su[0].p, sa[0].p, x, idx, gw, &w,
                    N, &c);
    moe_forward(out[1].p, rt[1].p, sh[1].p, eg[1].p, eu[1].p, ea[1].p, eo[1].p, sg[1].p, su[1].p, sa[1].p, x, idx, gw, &w, N,
                &c);
    char what[80];
    snprintf(what, sizeof what, "moe N=%d C=%d E=%d K=%d Es=%d Hm=%d out", N, C, E, K, Es, Hm);
    expect_pair(what, &out[0], &out[1]);
    expect_pair("  ... routed", &rt[0], &rt[1]);
    expect_pair("  ... shared", &sh[0], &sh[1]);
    expect_pair("  ... expert gate (saved)", &eg[0], &eg[1]);
    expect_pair("  ... expert up (saved)", &eu[0], &eu[1]);
    expect_pair("  ... expert act (saved)", &ea[0], &ea[1]);
    expect_pair("  ... expert out (saved)", &eo[0], &eo[1]);
    expect_pair("  ... shared gate (saved)", &sg[0], &sg[1]);
    expect_pair("  ... shared up (saved)", &su[0], &su[1]);
    expect_pair("  ... shared act (saved)", &sa[0], &sa[1]);
    free(w.exp_gate);
    free(w.exp_up);
    free(w.exp_down);
    free(w.sh_gate);
    free(w.sh_up);
    free(w.sh_down);
    free(x);
    free(gw);
    free(idx);
}

static void test_moe(void **st) {
    (void)st;
    check_router(16, 32, SCORE_SIGMOID, 1);
    check_router(1, 7, SCORE_SOFTMAX, 0);
    check_moe(32, 64, 16, 4, 1, 32); /* nice */
    check_moe(1, 37, 9, 1, 2, 13);   /* T = 1, K = 1 */
    check_moe(13, 29, 6, 6, 1, 11);  /* K = E: every expert for every token */
    check_moe(11, 24, 5, 2, 0, 7);   /* no shared experts: the token-by-token path */
}

/* ---- the model: edits honoured identically, and greedy tokens equal transformers' ---- */

static void edit_fn(void *ctx, const char *name, float *x, int ndim, const size_t *shape) {
    (void)ctx;
    if (!strcmp(name, "blocks.1.mlp.hook_router_choice")) { /* ablate expert 5 */
        size_t E = shape[ndim - 1], rows = 1;
        for (int d = 0; d < ndim - 1; d++) rows *= shape[d];
        for (size_t r = 0; r < rows; r++) x[r * E + 5] = -INFINITY;
    } else if (!strcmp(name, "blocks.0.attn.hook_z")) { /* zero head 0 */
        size_t NH = shape[2], dv = shape[3], rows = shape[0] * shape[1];
        for (size_t r = 0; r < rows; r++)
            for (size_t d = 0; d < dv; d++) x[(r * NH + 0) * dv + d] = 0.0f;
    }
}

static double rel_err(const float *a, const float *b, size_t n) {
    double md = 0, mb = 0;
    for (size_t i = 0; i < n; i++) {
        if (isnan(a[i]) != isnan(b[i])) return INFINITY;
        md = fmax(md, fabs((double)a[i] - b[i]));
        mb = fmax(mb, fabs((double)b[i]));
    }
    return mb > 0 ? md / mb : md;
}

static void forward_with(int cpu, const Model *m, const int *ids, int B, int T, ActCache *hooks, float *logits) {
    KVCache kv;
    RunState s;
    SeekErr e;
    if (kvcache_init(&kv, &m->cfg, B, T, &e) || runstate_init(&s, &m->cfg, B, T, T, hooks != NULL, &e)) fail_msg("%s", e.msg);
    int rc = cpu ? model_forward_cpu(m, &s, &kv, ids, B, T, ATTN_ABSORB, hooks, NULL, logits, &e)
                 : model_forward(m, &s, &kv, ids, B, T, ATTN_ABSORB, hooks, NULL, logits, &e);
    if (rc) fail_msg("%s", e.msg);
    runstate_free(&s);
    kvcache_free(&kv);
}

/* block_forward_cpu vs block_forward: one decoder block (MLA + MoE, layer 1 of the v3 fixture;
 * MHA + dense, layer 0 of llama_gqa) on the same random residual stream and KV cache. */
static void check_block(const char *dir, int l) {
    Model m;
    SeekErr e;
    if (model_load(&m, dir, &e)) fail_msg("%s", e.msg);
    const Config *c = &m.cfg;
    int B = 2, T = 5;
    RunState sr, sc;
    KVCache kr, kc;
    if (runstate_init(&sr, c, B, T, T, 1, &e) || runstate_init(&sc, c, B, T, T, 1, &e) ||
        kvcache_init(&kr, c, B, T, &e) || kvcache_init(&kc, c, B, T, &e))
        fail_msg("%s", e.msg);
    float *x = rnd((size_t)B * T * c->C, 1.0f);
    memcpy(sr.x, x, (size_t)B * T * c->C * sizeof(float));
    memcpy(sc.x, x, (size_t)B * T * c->C * sizeof(float));
    block_forward(&m, &sr, &kr, &m.layers[l], &sr.layer[l], l, "blocks.x", B, T, 0, ATTN_NAIVE, NULL);
    block_forward_cpu(&m, &sc, &kc, &m.layers[l], &sc.layer[l], l, "blocks.x", B, T, 0, ATTN_NAIVE, NULL);
    char what[96];
    snprintf(what, sizeof what, "block_forward_cpu %s layer %d", dir + 15, l);
    expect_close(what, sc.x, sr.x, (size_t)B * T * c->C);
    free(x);
    runstate_free(&sr);
    runstate_free(&sc);
    kvcache_free(&kr);
    kvcache_free(&kc);
    model_free(&m);
}

static void test_block(void **st) {
    (void)st;
    check_block("tests/fixtures/v3", 1);
    check_block("tests/fixtures/llama_gqa", 0);
}

static void test_model_edits(void **st) {
    (void)st;
    Model m;
    SeekErr e;
    if (model_load(&m, "tests/fixtures/v3", &e)) fail_msg("%s", e.msg);
    int B = 2, T = 9, ids[18];
    for (int i = 0; i < B * T; i++) ids[i] = 3 + (31 * i + 7) % 250;
    size_t nl = (size_t)B * T * m.cfg.V;
    float *plain = malloc(nl * sizeof(float)), *lr = malloc(nl * sizeof(float)), *lc = malloc(nl * sizeof(float));
    ActCache hr, hc;
    actcache_init(&hr);
    actcache_init(&hc);
    actcache_add_pattern(&hr, "blocks.1.mlp.hook_expert_indices");
    actcache_add_pattern(&hc, "blocks.1.mlp.hook_expert_indices");
    forward_with(1, &m, ids, B, T, &hc, plain); /* unedited cpu run: expert 5 must be chosen somewhere */
    const Activation *a = actcache_get(&hc, "blocks.1.mlp.hook_expert_indices");
    int chose5 = 0;
    for (size_t i = 0; i < a->numel; i++) chose5 += a->data[i] == 5.0f;
    assert_true(chose5 > 0);
    actcache_clear(&hc);
    hr.edit = hc.edit = edit_fn;
    forward_with(0, &m, ids, B, T, &hr, lr);
    forward_with(1, &m, ids, B, T, &hc, lc);
    a = actcache_get(&hc, "blocks.1.mlp.hook_expert_indices");
    for (size_t i = 0; i < a->numel; i++) assert_true(a->data[i] != 5.0f);
    double edited_vs_ref = rel_err(lc, lr, nl), edit_effect = rel_err(lc, plain, nl);
    print_message("  edited cpu vs edited ref %.2e (limit %g); edit changed the cpu logits by %.2e\n", edited_vs_ref,
                  TOL_CPU_STAGE_REL, edit_effect);
    assert_true(edited_vs_ref <= TOL_CPU_STAGE_REL);
    assert_true(edit_effect > 1e-3);
    free(plain);
    free(lr);
    free(lc);
    actcache_free(&hr);
    actcache_free(&hc);
    model_free(&m);
}

static int *golden_ids(const StSet *s, const char *name, uint64_t *numel, uint64_t *d1) {
    const StFile *f;
    const StTensor *t = stset_find(s, name, &f);
    if (!t) fail_msg("golden tensor '%s' missing", name);
    assert_int_equal(t->dtype, ST_I64);
    int64_t *raw = malloc((size_t)(t->end - t->begin) + 8);
    SeekErr e;
    if (st_read_raw(f, t, raw, &e)) fail_msg("%s", e.msg);
    int *ids = malloc(t->numel * sizeof(int));
    for (uint64_t i = 0; i < t->numel; i++) ids[i] = (int)raw[i];
    free(raw);
    *numel = t->numel;
    *d1 = t->shape[1];
    return ids;
}

static void test_greedy_vs_transformers(void **st) {
    (void)st;
    static const char *fx[] = {"v3", "v3_yarn", "v3_noq", "v3_fp8", "v2_greedy", "v2_group", "llama_gqa"};
    for (size_t f = 0; f < sizeof fx / sizeof fx[0]; f++) {
        char dir[128], gpath[160];
        snprintf(dir, sizeof dir, "tests/fixtures/%s", fx[f]);
        snprintf(gpath, sizeof gpath, "%s/golden.safetensors", dir);
        Model m;
        StSet g;
        SeekErr e;
        if (model_load(&m, dir, &e) || stset_open_file(&g, gpath, &e)) fail_msg("%s", e.msg);
        uint64_t n_in, T, n_want, n_gen;
        int *ids = golden_ids(&g, "input_ids", &n_in, &T), *want = golden_ids(&g, "greedy_ids", &n_want, &n_gen);
        int B = (int)(n_in / T), out[256];
        assert_true(n_want <= 256);
        SampleParams greedy = {0.0f, 0, 1.0f, 0};
        for (int mode = 0; mode < (m.cfg.mla ? 2 : 1); mode++) {
            if (model_generate_cpu(&m, ids, B, (int)T, (int)n_gen, (AttnMode)mode, &greedy, NULL, out, NULL, &e)) fail_msg("%s", e.msg);
            for (uint64_t i = 0; i < n_want; i++)
                if (out[i] != want[i])
                    fail_msg("%s: cpu greedy token %d of sequence %d is %d, transformers says %d (%s attention)", fx[f],
                             (int)(i % n_gen), (int)(i / n_gen), out[i], want[i], mode ? "absorbed" : "naive");
        }
        print_message("  %-10s cpu greedy %d x %d tokens equal transformers'\n", fx[f], B, (int)n_gen);
        free(ids);
        free(want);
        stset_close(&g);
        model_free(&m);
    }
}

int main(void) {
    rng_seed(&g_rng, 20250505);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matmul), cmocka_unit_test(test_attention),   cmocka_unit_test(test_swiglu),
        cmocka_unit_test(test_mla),    cmocka_unit_test(test_moe),         cmocka_unit_test(test_model_edits),
        cmocka_unit_test(test_greedy_vs_transformers), cmocka_unit_test(test_block),
    };
    return cmocka_run_group_tests_name("fast cpu twins vs ref", tests, NULL, NULL);
}

#else /* no OpenBLAS: the cpu backend is not built; say so and fail, never pass silently */
static void test_no_blas(void **st) {
    (void)st;
    fail_msg("seek.c was built without OpenBLAS (NO_BLAS=1): the fast CPU twins are absent");
}
int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_no_blas)};
    return cmocka_run_group_tests_name("fast cpu twins vs ref", tests, NULL, NULL);
}
#endif
