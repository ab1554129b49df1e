/* test_fast_cpu.c: every fast CPU twin (fast/cpu) against its reference (ref/), op by op.
 *
 * Each op runs on a "nice" shape and on awkward ones: T = 1 (decoding), sizes that are no
 * multiple of any block or vector width, K = 1 and K = E for routing, attention over more keys
 * than one online-softmax block (ATT_BLOCK), GQA, strided caches. Both implementations write into
 * buffers poisoned with NaN and framed by guard words; after the call:
 *   1. the guard words are intact (no write outside the output);
 *   2. NaN/Inf sit at the same positions (so an unwritten or extra-written element shows);
 *   3. every element is within TOL_CPU_OP_ATOL + TOL_CPU_OP_RTOL·|ref| and the tensor's nmse
 *      within TOL_CPU_OP_NMSE (ref/tolerances.h).
 * Then the model: the shared forward (ref/forward.c) on the cpu backend with an edit callback (ablate an expert, zero a head) agrees
 * with model_forward under the same edit, and greedy generation on the cpu backend equals the
 * greedy continuation transformers computed for every fixture (goldens not produced by seek.c).
 * Stage-by-stage agreement of whole models is tests/cli_verify.sh (`seek verify`).
 *
 * Training: every backward twin the same way, with the gradient buffers PRE-FILLED with non-zero
 * values (so a `=` where the reference accumulates with `+=` shows) and guard words around them;
 * cross-entropy; AdamW and clipping bit for bit; then the shared orchestration on the cpu ops
 * (block_backward and model_backward with RunState.be = BACKEND_CPU, the MTP module and whole
 * training steps through train_step_grads_on / model_loss_grad_on / eval_main_loss_on with MTP
 * and the balance loss), every parameter gradient by name within
 * TOL_CPU_GRAD_REL·max|tensor| + TOL_CPU_GRAD_ABS·max|all gradients| (ref/tolerances.h). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "forward.h"
#include "mla.h"
#include "model.h"
#include "moe.h"
#include "ops.h"
#include "safetensors.h"
#include "golden.h"
#include "tolerances.h"
#include "expect_grads.h"
#include "train.h"
#include "train_parts.h"

#ifdef SEEK_HAVE_BLAS
#include "cpu/cpu.h"
#ifdef _OPENMP
#include <omp.h>
#endif

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

static Buf buf_rnd(size_t n, float scale) {
    Buf b = buf_new(n);
    for (size_t i = 0; i < n; i++) b.p[i] = scale * (2.0f * rng_uniform(&g_rng) - 1.0f);
    return b;
}

static Buf buf_dup(const Buf *a) {
    Buf b = buf_new(a->n);
    memcpy(b.p, a->p, a->n * sizeof(float));
    return b;
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

/* Sets the OpenMP thread count (the products' split, fast/cpu/matmul.c); returns the old one. */
static int set_threads(int n) {
#ifdef _OPENMP
    int old = omp_get_max_threads();
    omp_set_num_threads(n);
    return old;
#else
    (void)n;
    return 1;
#endif
}

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
    /* products large enough to be split over the threads (matmul.c), blocks of unequal size;
     * three threads whatever the machine has, so the split runs and its blocks are uneven */
    int nt = set_threads(3);
    check_matmul(70, 257, 131, -1);  /* split over the output columns */
    check_matmul(300, 64, 45, 250);  /* split over the rows; the NaN row in the last block */
    check_matmul(1, 515, 1031, -1);  /* one row, the sgemv split over the outputs */
    set_threads(nt);
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
    check_attention(16, 0, 16, 4, 4, 32, 32, 0, 1);   /* nice: prefill, MHA (with a pattern: the GEMM form) */
    check_attention(1, 0, 4, 4, 2, 16, 16, 0, 1);     /* GEMM form, T = 1, Tbuf > T */
    check_attention(13, 0, 20, 6, 2, 13, 11, 3, 1);   /* GEMM form: GQA, odd widths, strided rows, Tbuf > T */
    check_attention(300, 0, 300, 2, 1, 8, 5, 0, 1);   /* GEMM form, MQA, softmax rows over the cores */
    check_attention(1, 9, 10, 4, 2, 16, 16, 0, 1);    /* T = 1 decode, GQA */
    check_attention(7, 3, 12, 3, 1, 13, 11, 5, 1);    /* MQA, odd widths, strided rows, Tbuf > Tk */
    check_attention(3, 300, 303, 2, 2, 8, 5, 0, 1);   /* more keys than one ATT_BLOCK */
    check_attention(40, 0, 40, 5, 5, 24, 12, 0, 0);   /* no scores/pattern buffers */
    /* the GEMM form with whole heads on each thread (attention.c), and alone with one thread */
    for (int pass = 0; pass < 2; pass++) {
        int nt = set_threads(pass ? 3 : 1);
        print_message("  (%d thread%s)\n", pass ? 3 : 1, pass ? "s" : "");
        check_attention(70, 0, 75, 6, 2, 40, 24, 3, 1); /* GQA, 2 heads per thread, odd widths, Tbuf > T */
        check_attention(33, 0, 33, 13, 13, 16, 8, 0, 1); /* 13 heads dealt to 3 threads */
        set_threads(nt);
    }
}

/* ---- RMSNorm: the twin is bit-identical, so the comparison is exact ---- */

static void expect_same_bits(const char *what, Buf *got, Buf *want) {
    if (memcmp(got->p, want->p, want->n * sizeof(float)) != 0) {
        size_t i = 0;
        while (i < want->n && memcmp(got->p + i, want->p + i, sizeof(float)) == 0) i++;
        fail_msg("%s: element %zu is %.9g, the reference has %.9g (the twin is meant to be bit-identical)", what, i,
                 (double)got->p[i], (double)want->p[i]);
    }
    print_message("  %-44s bit-identical\n", what);
    buf_check_free(got, what);
    buf_check_free(want, what);
}

static void check_rmsnorm(int N, int C, int nan_row) {
    float *x = rnd((size_t)N * C, 2.0f), *w = rnd((size_t)C, 1.0f), *dy = rnd((size_t)N * C, 1.0f);
    if (nan_row >= 0) x[(size_t)nan_row * C + C / 3] = NAN;
    Buf y[2], r[2], dx[2], dw[2], dw2[2];
    for (int i = 0; i < 2; i++) y[i] = buf_new((size_t)N * C), r[i] = buf_new((size_t)N);
    rmsnorm_forward_cpu(y[0].p, r[0].p, x, w, N, C, 1e-6f);
    rmsnorm_forward(y[1].p, r[1].p, x, w, N, C, 1e-6f);
    /* backward into pre-filled gradients (it accumulates), once with dinp and once without */
    dx[1] = buf_rnd((size_t)N * C, 1.0f), dx[0] = buf_dup(&dx[1]);
    dw[1] = buf_rnd((size_t)C, 1.0f), dw[0] = buf_dup(&dw[1]);
    dw2[1] = buf_rnd((size_t)C, 1.0f), dw2[0] = buf_dup(&dw2[1]);
    rmsnorm_backward_cpu(dx[0].p, dw[0].p, dy, x, w, r[1].p, N, C);
    rmsnorm_backward(dx[1].p, dw[1].p, dy, x, w, r[1].p, N, C);
    rmsnorm_backward_cpu(NULL, dw2[0].p, dy, x, w, r[1].p, N, C);
    rmsnorm_backward(NULL, dw2[1].p, dy, x, w, r[1].p, N, C);
    if (nan_row >= 0) assert_true(isnan(y[1].p[(size_t)nan_row * C]) && isnan(dw[1].p[0])); /* the check has teeth */
    char what[80];
    snprintf(what, sizeof what, "rmsnorm N=%d C=%d%s out", N, C, nan_row >= 0 ? " (a NaN input)" : "");
    expect_same_bits(what, &y[0], &y[1]);
    expect_same_bits("  ... rstd", &r[0], &r[1]);
    expect_same_bits("  ... backward dinp", &dx[0], &dx[1]);
    expect_same_bits("  ... backward dweight", &dw[0], &dw[1]);
    expect_same_bits("  ... backward dweight (no dinp)", &dw2[0], &dw2[1]);
    free(x), free(w), free(dy);
}

static void test_rmsnorm(void **st) {
    (void)st;
    for (int pass = 0; pass < 2; pass++) {
        int nt = set_threads(pass ? 3 : 1);
        print_message("  (%d thread%s)\n", pass ? 3 : 1, pass ? "s" : "");
        check_rmsnorm(128, 512, -1); /* nice: rows and columns over the threads */
        check_rmsnorm(1, 37, -1);    /* T = 1: the reference's own function */
        check_rmsnorm(300, 129, 77); /* columns not a multiple of 16, a NaN row */
        set_threads(nt);
    }
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
    /* whole experts on each thread (moe.c), and the one-thread path borrowing the saved buffers */
    for (int pass = 0; pass < 2; pass++) {
        int nt = set_threads(pass ? 3 : 1);
        print_message("  (%d thread%s)\n", pass ? 3 : 1, pass ? "s" : "");
        check_moe(64, 48, 16, 4, 1, 40); /* nice */
        check_moe(40, 29, 6, 6, 1, 37);  /* K = E: every expert for every token, 2 per thread */
        check_moe(37, 33, 7, 2, 0, 23);  /* no shared experts, 7 experts dealt to 3 threads */
        set_threads(nt);
    }
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

static void forward_with(int cpu, const Model *m, const int *ids, int B, int T, ActCache *hooks, float *logits) {
    KVCache kv;
    RunState s;
    SeekErr e;
    if (kvcache_init(&kv, &m->cfg, B, T, &e) || runstate_init(&s, &m->cfg, B, T, T, hooks != NULL, &e)) fail_msg("%s", e.msg);
    int rc = cpu ? model_forward_on(BACKEND_CPU, m, &s, &kv, ids, B, T, ATTN_ABSORB, hooks, NULL, logits, &e)
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
    sc.be = BACKEND_CPU; /* the shared block on the cpu twins */
    block_forward(&m, &sc, &kc, &m.layers[l], &sc.layer[l], l, "blocks.x", B, T, 0, ATTN_NAIVE, NULL);
    char what[96];
    snprintf(what, sizeof what, "block_forward on cpu %s layer %d", dir + 15, l);
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
        int *ids = load_ids(&g, "input_ids", &n_in, NULL, &T), *want = load_ids(&g, "greedy_ids", &n_want, NULL, &n_gen);
        int B = (int)(n_in / T), out[256];
        assert_true(n_want <= 256);
        SampleParams greedy = {0.0f, 0, 1.0f, 0};
        for (int mode = 0; mode < (m.cfg.mla ? 2 : 1); mode++) {
            if (model_generate_on(BACKEND_CPU, &m, ids, B, (int)T, (int)n_gen, (AttnMode)mode, &greedy, NULL, out, NULL, &e)) fail_msg("%s", e.msg);
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

/* ---- backward twins: gradient buffers PRE-FILLED with non-zero values (a `=` where `+=` is
 * due shows), both implementations on identical copies, guard words around every gradient ---- */

/* a guarded buffer holding n values uniform in [-scale, scale) */

static void check_matmul_backward(int N, int IC, int OC, int with_dinp, int nan_row) {
    float *x = rnd((size_t)N * IC, 1.0f), *w = rnd((size_t)OC * IC, 1.0f / sqrtf((float)IC)), *d = rnd((size_t)N * OC, 1.0f);
    if (nan_row >= 0) x[(size_t)nan_row * IC] = NAN; /* poisons column 0 of every dW row */
    Buf di[2], dw[2];
    di[1] = buf_rnd(with_dinp ? (size_t)N * IC : 0, 1.0f), di[0] = buf_dup(&di[1]);
    dw[1] = buf_rnd((size_t)OC * IC, 1.0f), dw[0] = buf_dup(&dw[1]);
    matmul_backward_blas(with_dinp ? di[0].p : NULL, dw[0].p, d, x, w, N, IC, OC);
    matmul_backward(with_dinp ? di[1].p : NULL, dw[1].p, d, x, w, N, IC, OC);
    char what[96];
    snprintf(what, sizeof what, "matmul_backward N=%d IC=%d OC=%d%s dinp", N, IC, OC, nan_row >= 0 ? " (a NaN input)" : "");
    expect_pair(what, &di[0], &di[1]);
    if (nan_row >= 0) assert_true(isnan(dw[1].p[0]));
    expect_pair("  ... dweight", &dw[0], &dw[1]);
    free(x);
    free(w);
    free(d);
}

static void test_matmul_backward(void **st) {
    (void)st;
    check_matmul_backward(64, 128, 96, 1, -1); /* nice */
    check_matmul_backward(1, 37, 53, 1, -1);   /* one row: sgemv + sger */
    check_matmul_backward(13, 129, 67, 1, -1); /* nothing a multiple of a block */
    check_matmul_backward(7, 5, 1, 0, -1);     /* OC = 1, no input gradient */
    check_matmul_backward(9, 33, 17, 1, 4);    /* NaN propagates to the same places */
    /* split over three threads (matmul.c): by columns, by rows of a transposed operand, one row */
    int nt = set_threads(3);
    check_matmul_backward(70, 257, 131, 1, -1);
    check_matmul_backward(40, 67, 300, 1, 33);
    check_matmul_backward(1, 515, 1031, 1, -1);
    set_threads(nt);
}

/* pattern from the reference forward, then both backward on pre-filled dq, dk, dv */
static void check_attention_backward(int T, int NH, int NKV, int DQ, int DV, int pad) {
    size_t ks = (size_t)NKV * DQ + pad, vs = (size_t)NKV * DV + pad;
    float *q = rnd((size_t)T * NH * DQ, 1.0f), *k = rnd((size_t)T * ks, 1.0f), *v = rnd((size_t)T * vs, 1.0f);
    float *dz = rnd((size_t)T * NH * DV, 1.0f), *row = malloc(ATTN_BWD_SCRATCH(T) * sizeof(float));
    float *z = malloc((size_t)T * NH * DV * sizeof(float)), *pat = malloc((size_t)NH * T * T * sizeof(float));
    float scale = 1.0f / sqrtf((float)DQ);
    attention_forward(z, NULL, pat, q, k, v, T, 0, T, NH, NKV, DQ, DV, ks, vs, scale, row);
    Buf dq[2], dk[2], dv[2];
    dq[1] = buf_rnd((size_t)T * NH * DQ, 1.0f), dq[0] = buf_dup(&dq[1]);
    dk[1] = buf_rnd((size_t)T * ks, 1.0f), dk[0] = buf_dup(&dk[1]);
    dv[1] = buf_rnd((size_t)T * vs, 1.0f), dv[0] = buf_dup(&dv[1]);
    attention_backward_cpu(dq[0].p, dk[0].p, dv[0].p, dz, pat, q, k, v, T, NH, NKV, DQ, DV, ks, vs, scale, row);
    attention_backward(dq[1].p, dk[1].p, dv[1].p, dz, pat, q, k, v, T, NH, NKV, DQ, DV, ks, vs, scale, row);
    char what[96];
    snprintf(what, sizeof what, "attention_backward T=%d NH=%d NKV=%d DQ=%d DV=%d dq", T, NH, NKV, DQ, DV);
    expect_pair(what, &dq[0], &dq[1]);
    expect_pair("  ... dk (strided rows)", &dk[0], &dk[1]);
    expect_pair("  ... dv (strided rows)", &dv[0], &dv[1]);
    free(q), free(k), free(v), free(dz), free(row), free(z), free(pat);
}

static void test_attention_backward(void **st) {
    (void)st;
    check_attention_backward(16, 4, 4, 32, 32, 0); /* nice: MHA */
    check_attention_backward(1, 4, 2, 16, 16, 0);  /* T = 1, GQA */
    check_attention_backward(7, 6, 2, 13, 11, 5);  /* GQA, odd widths, padded rows */
    check_attention_backward(9, 3, 1, 8, 5, 3);    /* MQA: one KV head, one thread */
    check_attention_backward(1100, 2, 2, 3, 2, 0); /* long rows, the softmax step split over the cores */
    /* whole KV heads on each thread, each with its own dP (attention.c), and one thread */
    for (int pass = 0; pass < 2; pass++) {
        int nt = set_threads(pass ? 3 : 1);
        print_message("  (%d thread%s)\n", pass ? 3 : 1, pass ? "s" : "");
        check_attention_backward(50, 6, 3, 21, 13, 5);  /* GQA: a thread owns a KV head and its 2 query heads */
        check_attention_backward(40, 13, 13, 16, 8, 0); /* 13 heads dealt to 3 threads */
        set_threads(nt);
    }
}

static void check_swiglu_backward(int N, int C, int H) {
    float *x = rnd((size_t)N * C, 1.0f), *wg = rnd((size_t)H * C, 1.0f / sqrtf((float)C)),
          *wu = rnd((size_t)H * C, 1.0f / sqrtf((float)C)), *wd = rnd((size_t)C * H, 1.0f / sqrtf((float)H));
    float *out = malloc((size_t)N * C * sizeof(float)), *g = malloc((size_t)N * H * sizeof(float)),
          *u = malloc((size_t)N * H * sizeof(float)), *a = malloc((size_t)N * H * sizeof(float));
    float *d = rnd((size_t)N * C, 1.0f), *scratch = malloc(3 * (size_t)N * H * sizeof(float));
    swiglu_forward(out, g, u, a, x, wg, wu, wd, N, C, H);
    Buf di[2], dg[2], du[2], dd[2];
    di[1] = buf_rnd((size_t)N * C, 1.0f), di[0] = buf_dup(&di[1]);
    dg[1] = buf_rnd((size_t)H * C, 1.0f), dg[0] = buf_dup(&dg[1]);
    du[1] = buf_rnd((size_t)H * C, 1.0f), du[0] = buf_dup(&du[1]);
    dd[1] = buf_rnd((size_t)C * H, 1.0f), dd[0] = buf_dup(&dd[1]);
    swiglu_backward_cpu(di[0].p, dg[0].p, du[0].p, dd[0].p, d, x, g, u, a, wg, wu, wd, N, C, H, scratch);
    swiglu_backward(di[1].p, dg[1].p, du[1].p, dd[1].p, d, x, g, u, a, wg, wu, wd, N, C, H, scratch);
    char what[80];
    snprintf(what, sizeof what, "swiglu_backward N=%d C=%d H=%d dinp", N, C, H);
    expect_pair(what, &di[0], &di[1]);
    expect_pair("  ... dw_gate", &dg[0], &dg[1]);
    expect_pair("  ... dw_up", &du[0], &du[1]);
    expect_pair("  ... dw_down", &dd[0], &dd[1]);
    free(x), free(wg), free(wu), free(wd), free(out), free(g), free(u), free(a), free(d), free(scratch);
}

static void test_swiglu_backward(void **st) {
    (void)st;
    check_swiglu_backward(32, 64, 128);
    check_swiglu_backward(1, 37, 53);
    check_swiglu_backward(600, 17, 130); /* N·H > the OpenMP threshold */
}

/* the MLA layer's gradient tensors, pre-filled, in two identical copies */
typedef struct {
    Buf wq_a, q_a_norm, wq_b, wq, wkv_a, kv_a_norm, wkv_b;
} MlaGrads;

static void mla_grads_new(MlaGrads *g, const Config *c) {
    int qr = c->q_lora_rank ? c->q_lora_rank : 1, qdim = c->NH * (c->dn + c->dr);
    g[1].wq_a = buf_rnd((size_t)qr * c->C, 1.0f), g[1].q_a_norm = buf_rnd((size_t)qr, 1.0f);
    g[1].wq_b = buf_rnd((size_t)qdim * qr, 1.0f), g[1].wq = buf_rnd((size_t)qdim * c->C, 1.0f);
    g[1].wkv_a = buf_rnd((size_t)(c->kv_lora_rank + c->dr) * c->C, 1.0f), g[1].kv_a_norm = buf_rnd((size_t)c->kv_lora_rank, 1.0f);
    g[1].wkv_b = buf_rnd((size_t)c->NH * (c->dn + c->dv) * c->kv_lora_rank, 1.0f);
    g[0].wq_a = buf_dup(&g[1].wq_a), g[0].q_a_norm = buf_dup(&g[1].q_a_norm), g[0].wq_b = buf_dup(&g[1].wq_b);
    g[0].wq = buf_dup(&g[1].wq), g[0].wkv_a = buf_dup(&g[1].wkv_a), g[0].kv_a_norm = buf_dup(&g[1].kv_a_norm);
    g[0].wkv_b = buf_dup(&g[1].wkv_b);
}

static LayerWeights mla_grads_view(MlaGrads *g) {
    LayerWeights w;
    memset(&w, 0, sizeof w);
    w.wq_a = g->wq_a.p, w.q_a_norm = g->q_a_norm.p, w.wq_b = g->wq_b.p, w.wq = g->wq.p;
    w.wkv_a = g->wkv_a.p, w.kv_a_norm = g->kv_a_norm.p, w.wkv_b = g->wkv_b.p;
    return w;
}

static void check_mla_backward(MlaCase *m, int T) {
    const Config *c = &m->c;
    const int N = T, NH = c->NH, dn = c->dn, dr = c->dr, dv = c->dv, dq = dn + dr, dkv = c->kv_lora_rank;
    const int qr = c->q_lora_rank;
    /* the forward's saved values, from the reference */
    float *x = rnd((size_t)N * c->C, 1.0f);
    float *q = malloc((size_t)N * NH * dq * sizeof(float)), *qa = malloc((size_t)N * (qr + 1) * sizeof(float)),
          *ql = malloc((size_t)N * (qr + 1) * sizeof(float)), *qs = malloc((size_t)N * sizeof(float));
    float *lat = malloc((size_t)N * dkv * sizeof(float)), *kpe = malloc((size_t)N * dr * sizeof(float)),
          *kva = malloc((size_t)N * (dkv + dr) * sizeof(float)), *kvs = malloc((size_t)N * sizeof(float));
    float *kv = malloc((size_t)T * NH * (dn + dv) * sizeof(float)), *k = malloc((size_t)T * NH * dq * sizeof(float)),
          *v = malloc((size_t)T * NH * dv * sizeof(float)), *z = malloc((size_t)T * NH * dv * sizeof(float)),
          *pat = malloc((size_t)NH * T * T * sizeof(float)), *row = malloc((size_t)T * sizeof(float));
    mla_q_forward(q, qa, ql, qs, x, &m->w, c, N);
    mla_kv_forward(lat, kpe, kva, kvs, x, &m->w, c, N);
    mla_attend_naive(z, NULL, pat, kv, k, v, q, lat, kpe, &m->w, c, T, 0, T, row);
    size_t TH = (size_t)T * NH, sc = TH * (2 * (size_t)dq + 2 * (size_t)dv + dn) + ATTN_BWD_SCRATCH(T);
    if (2 * (size_t)N * qr > sc) sc = 2 * (size_t)N * qr;
    if ((size_t)N * (dkv + dr) > sc) sc = (size_t)N * (dkv + dr);
    float *scratch = malloc(sc * sizeof(float));
    float *dz = rnd(TH * dv, 1.0f), *dqin = rnd((size_t)N * NH * dq, 1.0f), *dlin = rnd((size_t)N * dkv, 1.0f),
          *dkin = rnd((size_t)N * dr, 1.0f);
    MlaGrads g[2];
    mla_grads_new(g, c);
    Buf dqo[2], dl[2], dk[2], dx[2];
    dqo[1] = buf_rnd((size_t)N * NH * dq, 1.0f), dqo[0] = buf_dup(&dqo[1]);
    dl[1] = buf_rnd((size_t)N * dkv, 1.0f), dl[0] = buf_dup(&dl[1]);
    dk[1] = buf_rnd((size_t)N * dr, 1.0f), dk[0] = buf_dup(&dk[1]);
    dx[1] = buf_rnd((size_t)N * c->C, 1.0f), dx[0] = buf_dup(&dx[1]);
    LayerWeights gw[2] = {mla_grads_view(&g[0]), mla_grads_view(&g[1])};
    mla_attend_naive_backward_cpu(dqo[0].p, dl[0].p, dk[0].p, gw[0].wkv_b, dz, pat, q, lat, k, v, &m->w, c, T, scratch);
    mla_attend_naive_backward(dqo[1].p, dl[1].p, dk[1].p, gw[1].wkv_b, dz, pat, q, lat, k, v, &m->w, c, T, scratch);
    mla_kv_backward_cpu(dx[0].p, &gw[0], dlin, dkin, x, kva, kvs, &m->w, c, N, scratch);
    mla_kv_backward(dx[1].p, &gw[1], dlin, dkin, x, kva, kvs, &m->w, c, N, scratch);
    mla_q_backward_cpu(dx[0].p, &gw[0], dqin, x, qa, ql, qs, &m->w, c, N, scratch);
    mla_q_backward(dx[1].p, &gw[1], dqin, x, qa, ql, qs, &m->w, c, N, scratch);
    char what[96];
    snprintf(what, sizeof what, "mla_attend_naive_backward T=%d NH=%d dkv=%d dq", T, NH, dkv);
    expect_pair(what, &dqo[0], &dqo[1]);
    expect_pair("  ... dlatent", &dl[0], &dl[1]);
    expect_pair("  ... dk_pe (summed over heads)", &dk[0], &dk[1]);
    expect_pair("  ... dw_kvb", &g[0].wkv_b, &g[1].wkv_b);
    snprintf(what, sizeof what, "mla_kv_backward + mla_q_backward N=%d q_lora=%d dx", N, qr);
    expect_pair(what, &dx[0], &dx[1]);
    expect_pair("  ... dw_kv_a", &g[0].wkv_a, &g[1].wkv_a);
    expect_pair("  ... dkv_a_norm", &g[0].kv_a_norm, &g[1].kv_a_norm);
    expect_pair("  ... dw_q_a", &g[0].wq_a, &g[1].wq_a);
    expect_pair("  ... dq_a_norm", &g[0].q_a_norm, &g[1].q_a_norm);
    expect_pair("  ... dw_q_b", &g[0].wq_b, &g[1].wq_b);
    expect_pair("  ... dw_q", &g[0].wq, &g[1].wq);
    free(x), free(q), free(qa), free(ql), free(qs), free(lat), free(kpe), free(kva), free(kvs), free(kv), free(k), free(v);
    free(z), free(pat), free(row), free(scratch), free(dz), free(dqin), free(dlin), free(dkin);
}

static void test_mla_backward(void **st) {
    (void)st;
    MlaCase nice = mla_case(64, 4, 32, 32, 16, 8, 16);
    check_mla_backward(&nice, 16);
    check_mla_backward(&nice, 1); /* T = 1 */
    mla_case_free(&nice);
    MlaCase odd = mla_case(37, 3, 0, 13, 5, 4, 7); /* no q compression, odd widths */
    check_mla_backward(&odd, 9);
    mla_case_free(&odd);
}

/* moe_backward: saved values from the reference forward; scores in (0.05, 1); pre-filled grads */
static void check_moe_backward(int N, int C, int E, int K, int Es, int Hm, ScoringFunc sf, int norm, int with_dscores) {
    Config c;
    memset(&c, 0, sizeof c);
    c.C = C, c.E = E, c.K = K, c.Es = Es, c.Hm = Hm, c.scoring = sf, c.norm_topk_prob = norm, c.routed_scaling = 2.5;
    LayerWeights w;
    memset(&w, 0, sizeof w);
    float s_in = 1.0f / sqrtf((float)C), s_h = 1.0f / sqrtf((float)Hm);
    w.exp_gate = rnd((size_t)E * Hm * C, s_in), w.exp_up = rnd((size_t)E * Hm * C, s_in);
    w.exp_down = rnd((size_t)E * C * Hm, s_h), w.router = rnd((size_t)E * C, s_in);
    w.sh_gate = rnd((size_t)Es * Hm * C, s_in), w.sh_up = rnd((size_t)Es * Hm * C, s_in);
    w.sh_down = rnd((size_t)C * Es * Hm, Es ? 1.0f / sqrtf((float)(Es * Hm)) : 1.0f);
    float *x = rnd((size_t)N * C, 1.0f), *gw = rnd((size_t)N * K, 1.0f), *sc = rnd((size_t)N * E, 0.45f);
    for (size_t i = 0; i < (size_t)N * E; i++) sc[i] += 0.55f;
    int *idx = malloc((size_t)N * K * sizeof(int)), perm[64];
    assert_true(E <= 64);
    for (int n = 0; n < N; n++) {
        for (int e = 0; e < E; e++) perm[e] = e;
        for (int e = E - 1; e > 0; e--) {
            int j = (int)(rng_u32(&g_rng) % (uint32_t)(e + 1)), t = perm[e];
            perm[e] = perm[j], perm[j] = t;
        }
        memcpy(idx + (size_t)n * K, perm, (size_t)K * sizeof(int));
    }
    size_t nkh = (size_t)N * K * Hm, nsh = (size_t)N * Es * Hm, NC = (size_t)N * C;
    float *out = malloc(NC * 4), *rt = malloc(NC * 4), *sh = malloc(NC * 4), *eg = malloc(nkh * 4), *eu = malloc(nkh * 4),
          *ea = malloc(nkh * 4), *eo = malloc((size_t)N * K * C * 4), *sg = malloc((nsh + 1) * 4),
          *su = malloc((nsh + 1) * 4), *sa = malloc((nsh + 1) * 4);
    moe_forward(out, rt, sh, eg, eu, ea, eo, sg, su, sa, x, idx, gw, &w, N, &c);
    float *dout = rnd(NC, 1.0f), *dsc = with_dscores ? rnd((size_t)N * E, 0.1f) : NULL;
    float *scratch = malloc(moe_backward_scratch(&c, N) * sizeof(float));
    Buf di[2], g_eg[2], g_eu[2], g_ed[2], g_r[2], g_sg[2], g_su[2], g_sd[2];
    di[1] = buf_rnd(NC, 1.0f), di[0] = buf_dup(&di[1]);
    g_eg[1] = buf_rnd((size_t)E * Hm * C, 1.0f), g_eg[0] = buf_dup(&g_eg[1]);
    g_eu[1] = buf_rnd((size_t)E * Hm * C, 1.0f), g_eu[0] = buf_dup(&g_eu[1]);
    g_ed[1] = buf_rnd((size_t)E * C * Hm, 1.0f), g_ed[0] = buf_dup(&g_ed[1]);
    g_r[1] = buf_rnd((size_t)E * C, 1.0f), g_r[0] = buf_dup(&g_r[1]);
    g_sg[1] = buf_rnd((size_t)Es * Hm * C, 1.0f), g_sg[0] = buf_dup(&g_sg[1]);
    g_su[1] = buf_rnd((size_t)Es * Hm * C, 1.0f), g_su[0] = buf_dup(&g_su[1]);
    g_sd[1] = buf_rnd((size_t)C * Es * Hm, 1.0f), g_sd[0] = buf_dup(&g_sd[1]);
    LayerWeights g[2];
    for (int i = 0; i < 2; i++) {
        memset(&g[i], 0, sizeof g[i]);
        g[i].exp_gate = g_eg[i].p, g[i].exp_up = g_eu[i].p, g[i].exp_down = g_ed[i].p, g[i].router = g_r[i].p;
        g[i].sh_gate = g_sg[i].p, g[i].sh_up = g_su[i].p, g[i].sh_down = g_sd[i].p;
    }
    moe_backward_cpu(di[0].p, &g[0], dout, dsc, x, idx, gw, sc, eg, eu, ea, eo, sg, su, sa, &w, N, &c, scratch);
    moe_backward(di[1].p, &g[1], dout, dsc, x, idx, gw, sc, eg, eu, ea, eo, sg, su, sa, &w, N, &c, scratch);
    char what[112];
    snprintf(what, sizeof what, "moe_backward N=%d C=%d E=%d K=%d Es=%d Hm=%d %s%s%s dinp", N, C, E, K, Es, Hm,
             sf == SCORE_SIGMOID ? "sigmoid" : "softmax", norm ? " norm" : "", with_dscores ? " +dscores" : "");
    expect_pair(what, &di[0], &di[1]);
    expect_pair("  ... d experts gate", &g_eg[0], &g_eg[1]);
    expect_pair("  ... d experts up", &g_eu[0], &g_eu[1]);
    expect_pair("  ... d experts down", &g_ed[0], &g_ed[1]);
    expect_pair("  ... d router", &g_r[0], &g_r[1]);
    expect_pair("  ... d shared gate", &g_sg[0], &g_sg[1]);
    expect_pair("  ... d shared up", &g_su[0], &g_su[1]);
    expect_pair("  ... d shared down", &g_sd[0], &g_sd[1]);
    free(w.exp_gate), free(w.exp_up), free(w.exp_down), free(w.router), free(w.sh_gate), free(w.sh_up), free(w.sh_down);
    free(x), free(gw), free(sc), free(idx), free(out), free(rt), free(sh), free(eg), free(eu), free(ea), free(eo);
    free(sg), free(su), free(sa), free(dout), free(dsc), free(scratch);
}

static void test_moe_backward(void **st) {
    (void)st;
    check_moe_backward(32, 64, 16, 4, 1, 32, SCORE_SIGMOID, 1, 1); /* nice, V3-like, one chunk per expert */
    check_moe_backward(1, 37, 9, 1, 2, 13, SCORE_SOFTMAX, 0, 0);   /* T = 1, K = 1, V2-like */
    check_moe_backward(13, 29, 6, 6, 1, 11, SCORE_SIGMOID, 1, 1);  /* K = E: experts run in several chunks */
    check_moe_backward(11, 24, 5, 2, 0, 7, SCORE_SOFTMAX, 0, 1);   /* no shared experts: token by token */
    /* whole experts on each thread with per-slot input gradients (moe.c), and one thread */
    for (int pass = 0; pass < 2; pass++) {
        int nt = set_threads(pass ? 3 : 1);
        print_message("  (%d thread%s)\n", pass ? 3 : 1, pass ? "s" : "");
        check_moe_backward(64, 48, 16, 4, 1, 40, SCORE_SIGMOID, 1, 1); /* nice, V3-like */
        check_moe_backward(40, 29, 6, 6, 1, 37, SCORE_SIGMOID, 1, 0);  /* K = E */
        check_moe_backward(37, 33, 7, 2, 0, 23, SCORE_SOFTMAX, 0, 1);  /* no shared experts, 7 experts */
        set_threads(nt);
    }
}

static void check_crossentropy(int N, int V, int every) {
    float *lg = rnd((size_t)N * V, 4.0f);
    int *tg = malloc((size_t)N * sizeof(int));
    for (int n = 0; n < N; n++) tg[n] = every && n % every == every - 1 ? -1 : (int)(rng_u32(&g_rng) % (uint32_t)V);
    Buf p[2], d[2];
    p[0] = buf_new((size_t)N * V), p[1] = buf_new((size_t)N * V);
    int c0 = -1, c1 = -2;
    double l0 = crossentropy_forward_cpu(p[0].p, lg, tg, NULL, N, V, &c0);
    double l1 = crossentropy_forward(p[1].p, lg, tg, NULL, N, V, &c1);
    assert_int_equal(c0, c1);
    if (fabs(l0 - l1) > TOL_CPU_LOSS_REL * fabs(l1)) fail_msg("crossentropy N=%d V=%d: loss %.9g vs %.9g", N, V, l0, l1);
    d[1] = buf_rnd((size_t)N * V, 1.0f), d[0] = buf_dup(&d[1]);
    crossentropy_backward_cpu(d[0].p, 0.7f, p[1].p, tg, NULL, N, V, c1);
    crossentropy_backward(d[1].p, 0.7f, p[1].p, tg, NULL, N, V, c1);
    char what[80];
    snprintf(what, sizeof what, "crossentropy N=%d V=%d probs (loss rel %.1e)", N, V, fabs(l0 - l1) / fabs(l1));
    expect_pair(what, &p[0], &p[1]);
    expect_pair("  ... dlogits", &d[0], &d[1]);
    free(lg);
    free(tg);
}

static void test_crossentropy(void **st) {
    (void)st;
    check_crossentropy(40, 1000, 5); /* nice, some rows without a target */
    check_crossentropy(1, 7, 0);     /* one row */
    check_crossentropy(300, 257, 3); /* N·V past the OpenMP threshold, odd V */
}

/* AdamW and clipping are the reference's arithmetic element for element: compared bit for bit;
 * on one thread and on three (the trained elements cut into one span per thread, across tensors) */
static void check_optim(int threads) {
    int nt_old = set_threads(threads);
    Model m[2], g[2];
    SeekErr e;
    if (model_load(&m[1], "tests/fixtures/trained_v3", &e) || model_load(&m[0], "tests/fixtures/trained_v3", &e)) fail_msg("%s", e.msg);
    if (model_init(&g[0], &m[0].cfg, &e) || model_init(&g[1], &m[0].cfg, &e)) fail_msg("%s", e.msg);
    size_t n = m[0].n_floats;
    float *mom[2][2];
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 2; j++) mom[i][j] = malloc(n * sizeof(float));
    for (size_t k = 0; k < n; k++) {
        g[1].arena[k] = 0.05f * (2.0f * rng_uniform(&g_rng) - 1.0f);
        mom[1][0][k] = 0.01f * (2.0f * rng_uniform(&g_rng) - 1.0f);
        mom[1][1][k] = 1e-4f * rng_uniform(&g_rng);
    }
    memcpy(g[0].arena, g[1].arena, n * sizeof(float));
    memcpy(mom[0][0], mom[1][0], n * sizeof(float));
    memcpy(mom[0][1], mom[1][1], n * sizeof(float));
    double n0 = grad_global_norm_cpu(&g[0]), n1 = grad_global_norm(&g[1]);
    print_message("  (%d thread%s) grad_global_norm %.17g vs %.17g (rel %.1e)\n", threads, threads > 1 ? "s" : "", n0, n1,
                  fabs(n0 - n1) / n1);
    assert_true(fabs(n0 - n1) <= TOL_DOUBLE_SUM_REL * n1);
    assert_true(grad_global_norm_cpu(&g[0]) == n0); /* the same sum every run */
    float f0 = grad_clip_cpu(&g[0], n1, 0.5 * n1), f1 = grad_clip(&g[1], n1, 0.5 * n1);
    assert_true(f0 == f1 && f0 < 1.0f);
    assert_memory_equal(g[0].arena, g[1].arena, n * sizeof(float));
    assert_true(grad_clip_cpu(&g[0], n1, 2.0 * n1) == 1.0f); /* under the limit: untouched */
    AdamWConfig ac = {0.9f, 0.95f, 1e-8f, 0.1f};
    for (int t = 1; t <= 3; t++) {
        adamw_step_cpu(&m[0], &g[0], mom[0][0], mom[0][1], &ac, 3e-3f, t);
        adamw_step(&m[1], &g[1], mom[1][0], mom[1][1], &ac, 3e-3f, t);
    }
    assert_memory_equal(m[0].arena, m[1].arena, n * sizeof(float));
    assert_memory_equal(mom[0][0], mom[1][0], n * sizeof(float));
    assert_memory_equal(mom[0][1], mom[1][1], n * sizeof(float));
    print_message("  adamw_step_cpu x3 and grad_clip_cpu: parameters and moments bit-identical (%zu floats)\n", n);
    for (int i = 0; i < 2; i++) {
        for (int j = 0; j < 2; j++) free(mom[i][j]);
        model_free(&m[i]);
        model_free(&g[i]);
    }
    set_threads(nt_old);
}

static void test_optim(void **st) {
    (void)st;
    check_optim(1);
    check_optim(3);
}

/* gradients of two Models, tensor by tensor by name, within the verify limits */
static void expect_grads(const char *what, const Model *got, const Model *want) {
    expect_grads_within(what, got, want, TOL_CPU_GRAD_REL, TOL_CPU_GRAD_ABS);
}

/* block_backward_cpu vs block_backward after a reference training forward: pre-filled layer
 * gradients, the same incoming dx (MLA + MoE with dscores: layer 1 of v3; GQA + dense: llama_gqa) */
static void check_block_backward(const char *dir, int l) {
    Model m, g[2];
    SeekErr e;
    if (model_load(&m, dir, &e) || model_init(&g[0], &m.cfg, &e) || model_init(&g[1], &m.cfg, &e)) fail_msg("%s", e.msg);
    const Config *c = &m.cfg;
    int B = 2, T = 7, N = B * T;
    RunState s;
    KVCache kv;
    GradState gs[2];
    if (runstate_init_train(&s, c, B, T, &e) || kvcache_init(&kv, c, B, T, &e) || gradstate_init(&gs[0], c, B, T, &e) ||
        gradstate_init(&gs[1], c, B, T, &e))
        fail_msg("%s", e.msg);
    int ids[14];
    for (int i = 0; i < N; i++) ids[i] = 3 + (29 * i + 11) % (c->V - 3);
    float *logits = malloc((size_t)N * c->V * sizeof(float));
    if (model_forward(&m, &s, &kv, ids, B, T, ATTN_NAIVE, NULL, NULL, logits, &e)) fail_msg("%s", e.msg);
    for (size_t k = 0; k < g[0].n_floats; k++) g[0].arena[k] = g[1].arena[k] = 2.0f * rng_uniform(&g_rng) - 1.0f;
    float *dx = rnd((size_t)N * c->C, 1.0f), *dsc = c->E ? rnd((size_t)N * c->E, 0.1f) : NULL;
    for (int i = 0; i < 2; i++) memcpy(gs[i].dx, dx, (size_t)N * c->C * sizeof(float));
    const float *d = m.layers[l].is_moe ? dsc : NULL;
    s.be = BACKEND_CPU; /* the shared block backward on the cpu twins, then on ref */
    block_backward(&g[0].layers[l], &gs[0], &m, &s, &kv, &m.layers[l], &s.layer[l], l, d, B, T);
    s.be = BACKEND_REF;
    block_backward(&g[1].layers[l], &gs[1], &m, &s, &kv, &m.layers[l], &s.layer[l], l, d, B, T);
    char what[96];
    snprintf(what, sizeof what, "block_backward %s layer %d dx", dir + 15, l);
    expect_close(what, gs[0].dx, gs[1].dx, (size_t)N * c->C);
    snprintf(what, sizeof what, "  ... %s layer %d gradients", dir + 15, l);
    expect_grads(what, &g[0], &g[1]);
    free(logits), free(dx), free(dsc);
    gradstate_free(&gs[0]), gradstate_free(&gs[1]), kvcache_free(&kv), runstate_free(&s);
    model_free(&m), model_free(&g[0]), model_free(&g[1]);
}

static void test_block_backward(void **st) {
    (void)st;
    check_block_backward("tests/fixtures/v3", 1);
    check_block_backward("tests/fixtures/llama_gqa", 0);
    check_block_backward("tests/fixtures/v2_group", 2);
}

/* model_backward_cpu from a random dlogits with pre-filled gradients and an extra dxnf */
static void check_model_backward(const char *dir, int B, int T) {
    Model m, g[2];
    SeekErr e;
    if (model_load(&m, dir, &e) || model_init(&g[0], &m.cfg, &e) || model_init(&g[1], &m.cfg, &e)) fail_msg("%s", e.msg);
    const Config *c = &m.cfg;
    int N = B * T;
    RunState s;
    KVCache kv;
    GradState gs;
    if (runstate_init_train(&s, c, B, T, &e) || kvcache_init(&kv, c, B, T, &e) || gradstate_init(&gs, c, B, T, &e)) fail_msg("%s", e.msg);
    int *ids = malloc((size_t)N * sizeof(int));
    for (int i = 0; i < N; i++) ids[i] = 3 + (37 * i + 1) % (c->V - 3);
    if (model_forward(&m, &s, &kv, ids, B, T, ATTN_NAIVE, NULL, NULL, gs.logits, &e)) fail_msg("%s", e.msg);
    for (size_t k = 0; k < g[0].n_floats; k++) g[0].arena[k] = g[1].arena[k] = 2.0f * rng_uniform(&g_rng) - 1.0f;
    float *dl = rnd((size_t)N * c->V, 0.01f), *dxnf = rnd((size_t)N * c->C, 0.1f);
    s.be = BACKEND_CPU;
    model_backward(&g[0], &gs, &m, &s, &kv, dl, dxnf, NULL, B, T);
    s.be = BACKEND_REF;
    model_backward(&g[1], &gs, &m, &s, &kv, dl, dxnf, NULL, B, T);
    char what[96];
    snprintf(what, sizeof what, "model_backward %s %dx%d", dir + 15, B, T);
    expect_grads(what, &g[0], &g[1]);
    free(ids), free(dl), free(dxnf);
    gradstate_free(&gs), kvcache_free(&kv), runstate_free(&s);
    model_free(&m), model_free(&g[0]), model_free(&g[1]);
}

static void test_model_backward(void **st) {
    (void)st;
    check_model_backward("tests/fixtures/v3", 2, 9);
    check_model_backward("tests/fixtures/llama_gqa", 1, 2); /* T = 2: one prediction per sequence */
    check_model_backward("tests/fixtures/v3_noq", 3, 5);
}

/* MTP: forward (losses, logits) and backward (every gradient, dh0 pre-filled) on the
 * seek-trained checkpoint with its MTP module, from the reference's final-norm output */
static void test_mtp(void **st) {
    (void)st;
    Model m, g[2];
    SeekErr e;
    if (model_load(&m, "tests/fixtures/trained_v3", &e) || model_init(&g[0], &m.cfg, &e) || model_init(&g[1], &m.cfg, &e))
        fail_msg("%s", e.msg);
    const Config *c = &m.cfg;
    assert_true(m.has_mtp && c->mtp_depth >= 1);
    int B = 2, T = 10, N = B * T;
    RunState s;
    KVCache kv;
    MtpState ms[2];
    float *logits = malloc((size_t)N * c->V * sizeof(float));
    if (runstate_init_train(&s, c, B, T, &e) || kvcache_init(&kv, c, B, T, &e) || mtp_init(&ms[0], c, 1, B, T, &e) ||
        mtp_init(&ms[1], c, 1, B, T, &e))
        fail_msg("%s", e.msg);
    int ids[20];
    for (int i = 0; i < N; i++) ids[i] = 3 + (41 * i + 3) % (c->V - 3);
    if (model_forward(&m, &s, &kv, ids, B, T, ATTN_NAIVE, NULL, NULL, logits, &e)) fail_msg("%s", e.msg);
    if (mtp_forward_on(BACKEND_CPU, &m, &ms[0], ids, NULL, s.xnf, &e) || mtp_forward(&m, &ms[1], ids, NULL, s.xnf, &e)) fail_msg("%s", e.msg);
    double l0 = ms[0].d[0].loss, l1 = ms[1].d[0].loss;
    print_message("  mtp_forward loss %.9g vs %.9g\n", l0, l1);
    assert_true(fabs(l0 - l1) <= TOL_CPU_LOSS_REL * fabs(l1));
    expect_close("mtp_forward depth 1 logits", ms[0].d[0].logits, ms[1].d[0].logits, (size_t)B * (T - 1) * c->V);
    for (size_t k = 0; k < g[0].n_floats; k++) g[0].arena[k] = g[1].arena[k] = 2.0f * rng_uniform(&g_rng) - 1.0f;
    float *dh[2] = {rnd((size_t)N * c->C, 1.0f), malloc((size_t)N * c->C * sizeof(float))};
    memcpy(dh[1], dh[0], (size_t)N * c->C * sizeof(float));
    mtp_backward_on(BACKEND_CPU, &g[0], &m, &ms[0], 0.3f, dh[0]);
    mtp_backward(&g[1], &m, &ms[1], 0.3f, dh[1]);
    expect_close("mtp_backward dh0", dh[0], dh[1], (size_t)N * c->C);
    expect_grads("  ... every gradient", &g[0], &g[1]);
    free(logits), free(dh[0]), free(dh[1]);
    mtp_free(&ms[0]), mtp_free(&ms[1]), kvcache_free(&kv), runstate_free(&s);
    model_free(&m), model_free(&g[0]), model_free(&g[1]);
}

/* whole training steps: train_step_grads_cpu (with MTP and the balance loss), model_loss_grad_cpu
 * and eval_main_loss_cpu against the reference */
static void check_train_step(const char *dir, int B, int T, int D, float alpha) {
    Model m, g[2];
    SeekErr e;
    if (model_load(&m, dir, &e) || model_init(&g[0], &m.cfg, &e) || model_init(&g[1], &m.cfg, &e)) fail_msg("%s", e.msg);
    const Config *c = &m.cfg;
    TrainBuffers tb[2];
    if (trainbuf_init(&tb[0], c, B, T, D, &e) || trainbuf_init(&tb[1], c, B, T, D, &e)) fail_msg("%s", e.msg);
    int *ids = malloc((size_t)B * T * sizeof(int));
    for (int i = 0; i < B * T; i++) ids[i] = 3 + (53 * i + 7) % (c->V - 3);
    LossWeights lw = {D, 0.3f, alpha};
    StepLosses sl[2];
    for (size_t k = 0; k < g[0].n_floats; k++) g[0].arena[k] = g[1].arena[k] = NAN; /* the step zeroes them */
    if (train_step_grads_on(BACKEND_CPU, &m, &g[0], &tb[0], &(TrainBatch){.ids = ids}, &lw, &sl[0], &e) || train_step_grads(&m, &g[1], &tb[1], &(TrainBatch){.ids = ids}, &lw, &sl[1], &e))
        fail_msg("%s", e.msg);
    print_message("  train_step %s D=%d alpha=%g: loss %.9g vs %.9g (main %.9g, mtp %.9g, balance %.3g)\n", dir + 15, D,
                  (double)alpha, sl[0].total, sl[1].total, sl[1].main, sl[1].mtp, sl[1].balance);
    double parts[2][4] = {{sl[0].total, sl[0].main, sl[0].mtp, sl[0].balance}, {sl[1].total, sl[1].main, sl[1].mtp, sl[1].balance}};
    for (int i = 0; i < 4; i++) assert_true(fabs(parts[0][i] - parts[1][i]) <= TOL_CPU_LOSS_REL * fabs(parts[1][i]));
    char what[96];
    snprintf(what, sizeof what, "train_step_grads %s %dx%d", dir + 15, B, T);
    expect_grads(what, &g[0], &g[1]);
    double v0, v1;
    if (eval_main_loss_on(BACKEND_CPU, &m, &tb[0], &(TrainBatch){.ids = ids}, &v0, &e) || eval_main_loss(&m, &tb[1], &(TrainBatch){.ids = ids}, &v1, &e)) fail_msg("%s", e.msg);
    assert_true(fabs(v0 - v1) <= TOL_CPU_LOSS_REL * fabs(v1) && fabs(v1 - sl[1].main) <= 1e-12 * fabs(v1));
    /* seek grad's path: the main loss only */
    double q0, q1;
    if (model_loss_grad_on(BACKEND_CPU, &m, &g[0], &(TrainBatch){.ids = ids}, B, T, &q0, &e) || model_loss_grad(&m, &g[1], &(TrainBatch){.ids = ids}, B, T, &q1, &e)) fail_msg("%s", e.msg);
    assert_true(fabs(q0 - q1) <= TOL_CPU_LOSS_REL * fabs(q1));
    snprintf(what, sizeof what, "model_loss_grad %s (accumulated on the step's)", dir + 15);
    expect_grads(what, &g[0], &g[1]);
    free(ids);
    trainbuf_free(&tb[0]), trainbuf_free(&tb[1]);
    model_free(&m), model_free(&g[0]), model_free(&g[1]);
}

static void test_train_step(void **st) {
    (void)st;
    check_train_step("tests/fixtures/trained_v3", 2, 12, 1, 1e-3f); /* MTP + V3 balance loss */
    check_train_step("tests/fixtures/v2_greedy", 3, 6, 0, 1e-3f);   /* V2 expert-level balance loss */
    check_train_step("tests/fixtures/llama_gqa", 2, 5, 0, 0.0f);    /* dense */
}

int main(void) {
    rng_seed(&g_rng, 20250505);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matmul), cmocka_unit_test(test_rmsnorm), cmocka_unit_test(test_attention),   cmocka_unit_test(test_swiglu),
        cmocka_unit_test(test_mla),    cmocka_unit_test(test_moe),         cmocka_unit_test(test_model_edits),
        cmocka_unit_test(test_greedy_vs_transformers), cmocka_unit_test(test_block),
        cmocka_unit_test(test_matmul_backward), cmocka_unit_test(test_attention_backward),
        cmocka_unit_test(test_swiglu_backward), cmocka_unit_test(test_mla_backward),
        cmocka_unit_test(test_moe_backward), cmocka_unit_test(test_crossentropy), cmocka_unit_test(test_optim),
        cmocka_unit_test(test_block_backward), cmocka_unit_test(test_model_backward), cmocka_unit_test(test_mtp),
        cmocka_unit_test(test_train_step),
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
