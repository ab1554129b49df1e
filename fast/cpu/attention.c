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
 * Backward (whole sequences, pos0 = 0; ACCUMULATES into dq, dk, dv), the reference's equations
 *   dv_j += Σ_i P_ij·dz_i;  dP_ij = dz_i·v_j;  dS_ij = P_ij·(dP_ij − Σ_j' P_ij'·dP_ij')
 *   dq_i += scale·Σ_j dS_ij·k_j;  dk_j += scale·Σ_i dS_ij·q_i
 * row by row as the reference, split over the cores by KV head: query heads sharing a KV head
 * (GQA) add into the same dk/dv rows, so one thread owns a KV head and all its query heads (no
 * races, no atomics; MQA runs on one core). A row's dP values stay in a stack array of
 * ATT_BWD_ROW floats (recomputed in the second pass for longer rows), so like the forward it
 * needs no `row` scratch, which is accepted and unused. */
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

/* Longest row whose dP values the backward keeps on the stack (longer rows recompute them). */
#define ATT_BWD_ROW 2048

void attention_backward_cpu(float *dq, float *dk, float *dv, const float *dz, const float *pattern, const float *q,
                            const float *k, const float *v, int T, int NH, int NKV, int DQ, int DV, size_t k_stride,
                            size_t v_stride, float scale, float *row) {
    (void)row; /* per-thread stack rows instead */
    const int group = NH / NKV;
    const double work = (double)NH * T * T * (DQ + DV);
#pragma omp parallel for schedule(static) if (work > 65536.0 && NKV > 1)
    for (int kvh = 0; kvh < NKV; kvh++) {
        float dpbuf[ATT_BWD_ROW];
        for (int h = kvh * group; h < (kvh + 1) * group; h++)
            for (int t = 0; t < T; t++) {
                const float *p = pattern + ((size_t)h * T + t) * T;
                const float *dzv = dz + ((size_t)t * NH + h) * DV;
                const float *qv = q + ((size_t)t * NH + h) * DQ;
                float *dqv = dq + ((size_t)t * NH + h) * DQ;
                const int keep = t < ATT_BWD_ROW;
                /* pass 1: dP_tj = dz_t·v_j, dv_j += P_tj·dz_t, and Σ_j P_tj·dP_tj (double) */
                double pdp = 0.0;
                for (int j = 0; j <= t; j++) {
                    const float *vv = v + (size_t)j * v_stride + (size_t)kvh * DV;
                    float *dvv = dv + (size_t)j * v_stride + (size_t)kvh * DV;
                    const float pj = p[j];
                    float dp = 0.0f;
#pragma omp simd reduction(+ : dp)
                    for (int d = 0; d < DV; d++) dp += dzv[d] * vv[d];
#pragma omp simd
                    for (int d = 0; d < DV; d++) dvv[d] += pj * dzv[d];
                    if (keep) dpbuf[j] = dp;
                    pdp += (double)pj * dp;
                }
                /* pass 2: dS_tj, then dq_t and dk_j */
                const float fpdp = (float)pdp;
                for (int j = 0; j <= t; j++) {
                    float dp;
                    if (keep) dp = dpbuf[j];
                    else {
                        const float *vv = v + (size_t)j * v_stride + (size_t)kvh * DV;
                        dp = 0.0f;
#pragma omp simd reduction(+ : dp)
                        for (int d = 0; d < DV; d++) dp += dzv[d] * vv[d];
                    }
                    const float ds = p[j] * (dp - fpdp) * scale;
                    const float *kv = k + (size_t)j * k_stride + (size_t)kvh * DQ;
                    float *dkv = dk + (size_t)j * k_stride + (size_t)kvh * DQ;
#pragma omp simd
                    for (int d = 0; d < DQ; d++) {
                        dqv[d] += ds * kv[d];
                        dkv[d] += ds * qv[d];
                    }
                }
            }
    }
}

void attention_forward_cpu(float *z, float *scores, float *pattern, const float *q, const float *k, const float *v,
                           int T, int pos0, int Tk, int NH, int NKV, int DQ, int DV, size_t k_stride, size_t v_stride,
                           float scale, float *row) {
    (void)row; /* the online softmax keeps its scores on the stack */
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
