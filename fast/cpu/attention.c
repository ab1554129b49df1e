/* attention.c (CPU twin of ref/attention.c): causal scaled dot-product attention over a cache.
 *   score(i, j) = (q_i · k_j) · scale  for j <= pos0 + i;  P = softmax_j(score);  z_i = Σ_j P(i, j)·v_j
 * Shapes as the reference: q (T, NH, DQ); k rows (NKV, DQ), v rows (NKV, DV), k_stride / v_stride
 * floats apart; z (T, NH, DV); scores and pattern (NH, T, Tk) or NULL; query head h reads kv head
 * h / (NH/NKV).
 *
 * One pass over the keys in blocks of ATT_BLOCK with an online softmax (Milakov & Gimelshein
 * 2018, the form FlashAttention uses): keep the running max m and the running sum l (double);
 * when a block raises m, rescale l and the partial output by exp(m_old - m_new); divide by l at
 * the end. A block's scores live in a stack array, so no score buffer is needed: the `row`
 * argument is kept for the reference's argument list and unused. Rows (head, query) are
 * independent, so OpenMP splits them over the cores (dynamic schedule: causal rows grow).
 * Dot products are `omp simd` reductions (reassociated; the reference sums left to right).
 *
 * With a pattern to fill and a whole sequence (pos0 = 0: training, hook capture) the forward is
 * instead two sgemm per head around the reference's row softmax (attention_forward_gemm below).
 *
 * Backward (whole sequences, pos0 = 0; ACCUMULATES into dq, dk, dv), the reference's equations
 *   dv_j += Σ_i P_ij·dz_i;  dP_ij = dz_i·v_j;  dS_ij = P_ij·(dP_ij − Σ_j' P_ij'·dP_ij')
 *   dq_i += scale·Σ_j dS_ij·k_j;  dk_j += scale·Σ_i dS_ij·q_i
 * as four matrix products per query head (dP = dZ·Vᵀ, dV += Pᵀ·dZ, dQ += dS·K, dK += dSᵀ·Q) around
 * the softmax step. The whole (T, T) dP of one head lives in `row`, which the reference's argument
 * list sizes T·T for this (ref/ops.h), or, when KV heads run on every thread at once, in each
 * thread's own part of the workspace (workspace.c). GQA heads sharing a KV head add into its
 * dk/dv one after another (beta = 1) on one thread, so there are no races.
 *
 * Threads: with several heads (KV heads for the backward) the heads run whole on every thread at
 * once, each product on one thread: two cores would otherwise fork and join for each of a head's
 * small products and between them. With one head, or inside a parallel region, heads run one
 * after another and their products and softmax rows are split over the threads instead.
 */
#ifdef SEEK_HAVE_BLAS
#include <math.h>
#include <string.h>

#include "cpu/cpu.h"

void cpu_attend_row(float *z, float *srow, float *prow, const float *q1, const float *k1, size_t s1, int D1,
                    const float *q2, const float *k2, size_t s2, int D2, const float *v, size_t sv, int DV, int n, int Tk,
                    float scale) {
    float blk[ATT_BLOCK];
    float m = -INFINITY; /* running max: -inf, never a finite sentinel */
    double l = 0.0;      /* running denominator, in double as in the reference */
    for (int d = 0; d < DV; d++) z[d] = 0.0f;
    for (int j0 = 0; j0 < n; j0 += ATT_BLOCK) {
        int nb = n - j0 < ATT_BLOCK ? n - j0 : ATT_BLOCK;
        /* scores of this block, and its max */
        float bm = -INFINITY;
        for (int j = 0; j < nb; j++) {
            const float *a = k1 + (size_t)(j0 + j) * s1;
            float s = 0.0f, t = 0.0f;
#pragma omp simd reduction(+ : s)
            for (int d = 0; d < D1; d++) s += q1[d] * a[d];
            if (D2) {
                const float *b = k2 + (size_t)(j0 + j) * s2;
#pragma omp simd reduction(+ : t)
                for (int d = 0; d < D2; d++) t += q2[d] * b[d];
            }
            s = (s + t) * scale;
            blk[j] = s;
            if (s > bm) bm = s;
        }
        if (srow) memcpy(srow + j0, blk, (size_t)nb * sizeof(float));
        if (prow) memcpy(prow + j0, blk, (size_t)nb * sizeof(float)); /* turned into probabilities below */
        /* a larger max: rescale what has been accumulated so far */
        if (bm > m) {
            double corr = exp((double)m - (double)bm); /* 0 on the first block (m = -inf) */
            l *= corr;
            for (int d = 0; d < DV; d++) z[d] *= (float)corr;
            m = bm;
        }
        for (int j = 0; j < nb; j++) {
            float p = expf(blk[j] - m);
            l += p;
            const float *vv = v + (size_t)(j0 + j) * sv;
#pragma omp simd
            for (int d = 0; d < DV; d++) z[d] += p * vv[d];
        }
    }
    float inv = (float)(1.0 / l);
    for (int d = 0; d < DV; d++) z[d] *= inv;
    if (srow)
        for (int j = n; j < Tk; j++) srow[j] = -INFINITY;
    if (prow) {
        for (int j = 0; j < n; j++) prow[j] = (float)(exp((double)(prow[j] - m)) / l);
        for (int j = n; j < Tk; j++) prow[j] = 0.0f;
    }
}

/* Heads run whole on every thread at once when they share out evenly enough over the team
 * (units % nt == 0, or at least 4 per thread); otherwise one head after another, each product
 * split over the threads (matmul.c). */
static int heads_spread(int units, int nt, double macs) {
    return nt > 1 && units >= nt && (units % nt == 0 || units >= 4 * nt) && macs >= 131072.0;
}

/* The backward of query head h, its dP (T, T) in dp. */
static void attention_head_backward(float *dq, float *dk, float *dv, const float *dz, const float *pattern,
                                    const float *q, const float *k, const float *v, int h, int T, int NH, int NKV,
                                    int DQ, int DV, size_t k_stride, size_t v_stride, float scale, float *dp) {
    const int kvh = h / (NH / NKV);
    const float *p = pattern + (size_t)h * T * T, *dzh = dz + (size_t)h * DV, *qh = q + (size_t)h * DQ;
    const float *kh = k + (size_t)kvh * DQ, *vh = v + (size_t)kvh * DV;
    /* dP = dZ_h·V_hᵀ (T, T);  dV_h += Pᵀ·dZ_h (P is 0 above the diagonal, so only j <= i add) */
    cpu_sgemm(1, T, T, DV, dzh, (size_t)NH * DV, vh, v_stride, dp, (size_t)T);
    cpu_sgemm_acc(1, 0, T, DV, T, p, (size_t)T, dzh, (size_t)NH * DV, dv + (size_t)kvh * DV, v_stride);
    /* dS_ij = P_ij·(dP_ij − Σ_j' P_ij'·dP_ij')·scale for j <= i (the sum in double), 0 above;
     * rows over the threads when this head runs alone */
#pragma omp parallel for schedule(static) if ((double)T * T > 65536.0 && cpu_team() > 1)
    for (int i = 0; i < T; i++) {
        const float *pi = p + (size_t)i * T;
        float *di = dp + (size_t)i * T;
        double pdp = 0.0;
        for (int j = 0; j <= i; j++) pdp += (double)pi[j] * di[j];
        const float fpdp = (float)pdp;
        for (int j = 0; j <= i; j++) di[j] = pi[j] * (di[j] - fpdp) * scale;
        for (int j = i + 1; j < T; j++) di[j] = 0.0f;
    }
    /* dQ_h += dS·K_h;  dK_h += dSᵀ·Q_h */
    cpu_sgemm_acc(0, 0, T, DQ, T, dp, (size_t)T, kh, k_stride, dq + (size_t)h * DQ, (size_t)NH * DQ);
    cpu_sgemm_acc(1, 0, T, DQ, T, dp, (size_t)T, qh, (size_t)NH * DQ, dk + (size_t)kvh * DQ, k_stride);
}

/* KV heads run whole on every thread at once, a thread owning a KV head and the query heads that
 * share it (so GQA's shared dk/dv rows see no race), each thread with its own dP from the
 * workspace; otherwise (one KV head, one thread, no workspace) head after head with dP in `row`
 * and each product split over the threads. Heads sharing a KV head add into its dk/dv one after
 * another (beta = 1), in head order either way. */
void attention_backward_cpu(float *dq, float *dk, float *dv, const float *dz, const float *pattern, const float *q,
                            const float *k, const float *v, int T, int NH, int NKV, int DQ, int DV, size_t k_stride,
                            size_t v_stride, float scale, float *row) {
    const int group = NH / NKV, nt = cpu_team();
    const size_t TT = (size_t)T * T;
    float *room = heads_spread(NKV, nt, 2.0 * NH * TT * (DQ + DV))
                      ? cpu_workspace(CPU_WS_ATTENTION, (size_t)nt * TT * sizeof(float))
                      : NULL;
    if (room) {
#pragma omp parallel for num_threads(nt) schedule(dynamic, 1)
        for (int kvh = 0; kvh < NKV; kvh++)
            for (int h = kvh * group; h < (kvh + 1) * group; h++)
                attention_head_backward(dq, dk, dv, dz, pattern, q, k, v, h, T, NH, NKV, DQ, DV, k_stride, v_stride,
                                        scale, room + (size_t)cpu_thread() * TT);
    } else {
        for (int h = 0; h < NH; h++)
            attention_head_backward(dq, dk, dv, dz, pattern, q, k, v, h, T, NH, NKV, DQ, DV, k_stride, v_stride, scale,
                                    row);
    }
}

/* One head of the forward with a pattern to fill and a whole sequence (pos0 = 0), as training
 * and hook capture run it: S = Q_h·K_hᵀ straight into the pattern rows (one sgemm), then each
 * row's softmax in place (scale, causal mask, max, one expf per score, the sum in double), then
 * Z_h = P·V_h (one sgemm). Work above the diagonal is wasted on zeros: at these sizes a GEMM at
 * full speed beats a triangle at loop speed. */
static void attention_head_gemm(float *z, float *scores, float *pattern, const float *q, const float *k,
                                const float *v, int h, int T, int Tk, int NH, int NKV, int DQ, int DV, size_t k_stride,
                                size_t v_stride, float scale) {
    const int kvh = h / (NH / NKV);
    float *ph = pattern + (size_t)h * T * Tk;
    cpu_sgemm(1, T, T, DQ, q + (size_t)h * DQ, (size_t)NH * DQ, k + (size_t)kvh * DQ, k_stride, ph, (size_t)Tk);
    /* rows over the threads when this head runs alone (inside a parallel region: one thread) */
#pragma omp parallel for schedule(static) if ((double)T * T > 65536.0 && cpu_team() > 1)
    for (int t = 0; t < T; t++) {
        float *pr = ph + (size_t)t * Tk;
        float maxv = -INFINITY;
        for (int j = 0; j <= t; j++) {
            pr[j] *= scale;
            if (pr[j] > maxv) maxv = pr[j];
        }
        if (scores) {
            float *sr = scores + ((size_t)h * T + t) * Tk;
            memcpy(sr, pr, (size_t)(t + 1) * sizeof(float));
            for (int j = t + 1; j < Tk; j++) sr[j] = -INFINITY;
        }
        /* one expf per score, kept in place (the reference takes exp twice, in double); the
         * denominator is summed in double as in the reference */
        double sum = 0.0;
        for (int j = 0; j <= t; j++) {
            pr[j] = expf(pr[j] - maxv);
            sum += pr[j];
        }
        const double inv = 1.0 / sum;
        for (int j = 0; j <= t; j++) pr[j] = (float)(pr[j] * inv);
        for (int j = t + 1; j < Tk; j++) pr[j] = 0.0f;
    }
    cpu_sgemm(0, T, DV, T, ph, (size_t)Tk, v + (size_t)kvh * DV, v_stride, z + (size_t)h * DV, (size_t)NH * DV);
}

/* every head writes only its own pattern, scores and z columns: heads run in parallel freely */
static void attention_forward_gemm(float *z, float *scores, float *pattern, const float *q, const float *k,
                                   const float *v, int T, int Tk, int NH, int NKV, int DQ, int DV, size_t k_stride,
                                   size_t v_stride, float scale) {
    const int nt = cpu_team();
    if (heads_spread(NH, nt, (double)NH * T * T * (DQ + DV))) {
#pragma omp parallel for num_threads(nt) schedule(dynamic, 1)
        for (int h = 0; h < NH; h++)
            attention_head_gemm(z, scores, pattern, q, k, v, h, T, Tk, NH, NKV, DQ, DV, k_stride, v_stride, scale);
    } else {
        for (int h = 0; h < NH; h++)
            attention_head_gemm(z, scores, pattern, q, k, v, h, T, Tk, NH, NKV, DQ, DV, k_stride, v_stride, scale);
    }
}

void attention_forward_cpu(float *z, float *scores, float *pattern, const float *q, const float *k, const float *v,
                           int T, int pos0, int Tk, int NH, int NKV, int DQ, int DV, size_t k_stride, size_t v_stride,
                           float scale, float *row) {
    (void)row; /* the online softmax keeps its scores on the stack */
    if (pattern && pos0 == 0) {
        attention_forward_gemm(z, scores, pattern, q, k, v, T, Tk, NH, NKV, DQ, DV, k_stride, v_stride, scale);
        return;
    }
    const int group = NH / NKV;
    const double work = (double)NH * T * (pos0 + T) * (DQ + DV);
#pragma omp parallel for collapse(2) schedule(dynamic, 1) if (work > 65536.0)
    for (int h = 0; h < NH; h++)
        for (int t = 0; t < T; t++) {
            int kvh = h / group;
            size_t r = (size_t)h * T + t;
            cpu_attend_row(z + ((size_t)t * NH + h) * DV, scores ? scores + r * Tk : NULL, pattern ? pattern + r * Tk : NULL,
                           q + ((size_t)t * NH + h) * DQ, k + (size_t)kvh * DQ, k_stride, DQ, NULL, NULL, 0, 0,
                           v + (size_t)kvh * DV, v_stride, DV, pos0 + t + 1, Tk, scale);
        }
}
#endif
