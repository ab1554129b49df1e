/* attention.c: causal scaled dot-product attention over a key/value cache (docs/model.md §3).
 *   score(i, j) = (q_i · k_j) · scale   for j <= pos0 + i, -inf otherwise
 *   P = softmax_j(score);  z_i = Σ_j P(i, j) · v_j
 * Used by LLaMA attention (MHA, and GQA where query head h reads kv head h / (NH/NKV)) and by
 * the naive form of MLA (NKV = NH, DQ = dn + dr, DV = dv).
 * Shapes: q (T, NH, DQ); k rows of (NKV, DQ) and v rows of (NKV, DV), one per position 0..Tk-1,
 * k_stride / v_stride floats apart; z (T, NH, DV); scores and pattern (NH, T, Tk) or NULL.
 * row (Tk) is scratch for one row of scores.
 * Softmax: pass 1 finds the running max (for numerical stability), pass 2 sums exp in double.
 * ref_precision = PRECISION_BF16 (precision.h) runs attention_forward_bf16 below instead. */
#include "ops.h"
#include "precision.h"

/* Under ref_precision = PRECISION_BF16 (precision.h): the rounding a bf16 flash-attention kernel
 * does, emulated. The scores from bf16 q and k (fp32 sums); the weighted sum from the bf16
 * unnormalised weights e_j = exp(s_j - max) and bf16 values, divided by Σ e_j (in double) at the
 * end, as an online softmax divides once. The pattern (what the hooks see) stays e_j / Σ e_j. */
static void attention_forward_bf16(float *z, float *scores, float *pattern, const float *q, const float *k,
                                   const float *v, int T, int pos0, int Tk, int NH, int NKV, int DQ, int DV,
                                   size_t k_stride, size_t v_stride, float scale, float *row) {
    int group = NH / NKV;
    for (int h = 0; h < NH; h++) {
        int kvh = h / group;
        for (int t = 0; t < T; t++) {
            int last = pos0 + t;
            const float *qv = q + ((size_t)t * NH + h) * DQ;
            float maxv = -INFINITY;
            for (int j = 0; j <= last; j++) {
                const float *kv = k + (size_t)j * k_stride + (size_t)kvh * DQ;
                float s = 0.0f;
                for (int d = 0; d < DQ; d++) s += round_bf16(qv[d]) * round_bf16(kv[d]);
                s *= scale;
                row[j] = s;
                if (s > maxv) maxv = s;
            }
            double sum = 0.0;
            for (int j = 0; j <= last; j++) sum += exp((double)(row[j] - maxv));
            float *zv = z + ((size_t)t * NH + h) * DV;
            for (int d = 0; d < DV; d++) zv[d] = 0.0f;
            for (int j = 0; j <= last; j++) {
                float e = round_bf16((float)exp((double)(row[j] - maxv)));
                const float *vv = v + (size_t)j * v_stride + (size_t)kvh * DV;
                for (int d = 0; d < DV; d++) zv[d] += e * round_bf16(vv[d]);
                if (pattern) pattern[((size_t)h * T + t) * Tk + j] = (float)(exp((double)(row[j] - maxv)) / sum);
            }
            for (int d = 0; d < DV; d++) zv[d] = (float)(zv[d] / sum);
            if (scores) {
                float *srow = scores + ((size_t)h * T + t) * Tk;
                for (int j = 0; j < Tk; j++) srow[j] = j <= last ? row[j] : -INFINITY;
            }
            if (pattern)
                for (int j = last + 1; j < Tk; j++) pattern[((size_t)h * T + t) * Tk + j] = 0.0f;
        }
    }
}

void attention_forward(float *z, float *scores, float *pattern, const float *q, const float *k, const float *v,
                       int T, int pos0, int Tk, int NH, int NKV, int DQ, int DV, size_t k_stride, size_t v_stride,
                       float scale, float *row) {
    if (ref_precision == PRECISION_BF16) {
        attention_forward_bf16(z, scores, pattern, q, k, v, T, pos0, Tk, NH, NKV, DQ, DV, k_stride, v_stride, scale, row);
        return;
    }
    int group = NH / NKV;
    for (int h = 0; h < NH; h++) {
        int kvh = h / group;
        for (int t = 0; t < T; t++) {
            int last = pos0 + t; /* causal: attend to positions 0..last */
            const float *qv = q + ((size_t)t * NH + h) * DQ;
            float maxv = -INFINITY;
            for (int j = 0; j <= last; j++) {
                const float *kv = k + (size_t)j * k_stride + (size_t)kvh * DQ;
                float s = 0.0f;
                for (int d = 0; d < DQ; d++) s += qv[d] * kv[d];
                s *= scale;
                row[j] = s;
                if (s > maxv) maxv = s;
            }
            double sum = 0.0;
            for (int j = 0; j <= last; j++) sum += exp((double)(row[j] - maxv));
            float *zv = z + ((size_t)t * NH + h) * DV;
            for (int d = 0; d < DV; d++) zv[d] = 0.0f;
            for (int j = 0; j <= last; j++) {
                float p = (float)(exp((double)(row[j] - maxv)) / sum);
                const float *vv = v + (size_t)j * v_stride + (size_t)kvh * DV;
                for (int d = 0; d < DV; d++) zv[d] += p * vv[d];
                if (pattern) pattern[((size_t)h * T + t) * Tk + j] = p;
            }
            if (scores) {
                float *srow = scores + ((size_t)h * T + t) * Tk;
                for (int j = 0; j < Tk; j++) srow[j] = j <= last ? row[j] : -INFINITY;
            }
            if (pattern)
                for (int j = last + 1; j < Tk; j++) pattern[((size_t)h * T + t) * Tk + j] = 0.0f;
        }
    }
}

/* backward for whole sequences (pos0 = 0): with P the saved pattern and S the scaled scores,
 *   dv_j += Σ_i P_ij · dz_i
 *   dP_ij = dz_i · v_j
 *   dS_ij = P_ij · (dP_ij − Σ_j' P_ij' · dP_ij')          (softmax backward)
 *   dq_i += scale · Σ_j dS_ij · k_j;   dk_j += scale · Σ_i dS_ij · q_i */
void attention_backward(float *dq, float *dk, float *dv, const float *dz, const float *pattern, const float *q,
                        const float *k, const float *v, int T, int NH, int NKV, int DQ, int DV, size_t k_stride,
                        size_t v_stride, float scale, float *row) {
    int group = NH / NKV;
    for (int h = 0; h < NH; h++) {
        int kvh = h / group;
        for (int t = 0; t < T; t++) {
            const float *p = pattern + ((size_t)h * T + t) * T;
            const float *dzv = dz + ((size_t)t * NH + h) * DV;
            const float *qv = q + ((size_t)t * NH + h) * DQ;
            float *dqv = dq + ((size_t)t * NH + h) * DQ;
            double pdp = 0.0;
            for (int j = 0; j <= t; j++) {
                const float *vv = v + (size_t)j * v_stride + (size_t)kvh * DV;
                float *dvv = dv + (size_t)j * v_stride + (size_t)kvh * DV;
                float dp = 0.0f;
                for (int d = 0; d < DV; d++) {
                    dp += dzv[d] * vv[d];
                    dvv[d] += p[j] * dzv[d];
                }
                row[j] = dp;
                pdp += (double)p[j] * dp;
            }
            for (int j = 0; j <= t; j++) {
                float ds = p[j] * (row[j] - (float)pdp) * scale;
                const float *kv = k + (size_t)j * k_stride + (size_t)kvh * DQ;
                float *dkv = dk + (size_t)j * k_stride + (size_t)kvh * DQ;
                for (int d = 0; d < DQ; d++) {
                    dqv[d] += ds * kv[d];
                    dkv[d] += ds * qv[d];
                }
            }
        }
    }
}
