/* moe.c (CPU twin of ref/moe.c): the router's scores with a BLAS product, and the expert mixture
 * with one GEMM per expert over the tokens that chose it.
 *
 * Router: logits = x·W_gateᵀ (sgemm), then the reference's scoring arithmetic operation for
 * operation (sigmoid, or softmax with the denominator in double; choice = scores + bias), so the
 * scores are bit-identical whenever the logits are. Selection (moe_select) is the reference's.
 *
 * Experts: out = Σ_k g_k · Expert_{e_k}(x) + Shared(x). For each expert e with n_e > 0 tokens:
 *   gather   X_e (n_e, C)  = the rows of x that chose e, in token order
 *   G, U     (n_e, Hm)     = X_e · W_gate,eᵀ, X_e · W_up,eᵀ;   A = silu(G) ⊙ U
 *   Y_e      (n_e, C)      = A · W_down,eᵀ
 * and each row is scattered to its (token, slot) place in the saved eg, eu, ea (N, K, Hm) and
 * eo (N, K, C), which end laid out exactly as the reference leaves them. Then, as the reference,
 * routed[n] = Σ_k g_{n,k} · eo[n, k] in slot order. No allocation: the contiguous per-expert
 * space is borrowed from buffers written later anyway — X_e in `shared` and Y_e in `out` (N, C),
 * G, U, A in the shared experts' saved sg, su, sa (N, Es·Hm), which the shared experts then
 * overwrite. With no shared experts (Es = 0) that room is missing, and each token runs its K
 * experts one by one as the reference does, each product an sgemv. */
#ifdef SEEK_HAVE_BLAS
#include <math.h>
#include <string.h>

#include "cpu/cpu.h"
#include "moe.h"
#include "ops.h"

void moe_router_scores_cpu(float *logits, float *scores, float *choice, const float *inp, const float *router,
                           const float *bias, int N, const Config *cfg) {
    const int E = cfg->E;
    matmul_forward_blas(logits, inp, router, N, cfg->C, E);
    for (int n = 0; n < N; n++) {
        const float *lg = logits + (size_t)n * E;
        float *s = scores + (size_t)n * E, *sb = choice + (size_t)n * E;
        /* affinities (the reference's arithmetic) */
        if (cfg->scoring == SCORE_SIGMOID) {
            for (int e = 0; e < E; e++) s[e] = 1.0f / (1.0f + expf(-lg[e]));
        } else {
            float maxv = -INFINITY;
            for (int e = 0; e < E; e++)
                if (lg[e] > maxv) maxv = lg[e];
            double sum = 0.0;
            for (int e = 0; e < E; e++) sum += exp((double)(lg[e] - maxv));
            for (int e = 0; e < E; e++) s[e] = (float)(exp((double)(lg[e] - maxv)) / sum);
        }
        /* what selection sees: the bias-corrected scores (V3) or the scores (V2) */
        for (int e = 0; e < E; e++) sb[e] = bias ? s[e] + bias[e] : s[e];
    }
}

void moe_forward_cpu(float *out, float *routed, float *shared, float *eg, float *eu, float *ea, float *eo, float *sg,
                     float *su, float *sa, const float *inp, const int *idx, const float *weights, const LayerWeights *w,
                     int N, const Config *cfg) {
    const int C = cfg->C, Hm = cfg->Hm, K = cfg->K, E = cfg->E;
    const size_t per = (size_t)Hm * C;
    if (cfg->Es > 0) {
        /* tokens per expert (a token picks an expert at most once, so n_e <= N) */
        int count[CFG_MAX_EXPERTS];
        memset(count, 0, (size_t)E * sizeof(int));
        for (size_t i = 0; i < (size_t)N * K; i++) count[idx[i]]++;
        float *X = shared, *Y = out; /* borrowed, (n_e, C) each: see the file header */
        for (int e = 0; e < E; e++) {
            int ne = count[e];
            if (!ne) continue;
            /* gather the rows that chose e, in token order */
            int r = 0;
            for (size_t nk = 0; nk < (size_t)N * K; nk++)
                if (idx[nk] == e) memcpy(X + (size_t)r++ * C, inp + (nk / K) * C, (size_t)C * sizeof(float));
            /* the expert's SwiGLU on all of them: three products (silu from ref/ops.h) */
            cpu_sgemm(1, ne, Hm, C, X, (size_t)C, w->exp_gate + e * per, (size_t)C, sg, (size_t)Hm);
            cpu_sgemm(1, ne, Hm, C, X, (size_t)C, w->exp_up + e * per, (size_t)C, su, (size_t)Hm);
            for (size_t i = 0; i < (size_t)ne * Hm; i++) sa[i] = silu(sg[i]) * su[i];
            cpu_sgemm(1, ne, C, Hm, sa, (size_t)Hm, w->exp_down + e * per, (size_t)Hm, Y, (size_t)C);
            /* scatter every row to its (token, slot) place */
            r = 0;
            for (size_t nk = 0; nk < (size_t)N * K; nk++)
                if (idx[nk] == e) {
                    memcpy(eg + nk * Hm, sg + (size_t)r * Hm, (size_t)Hm * sizeof(float));
                    memcpy(eu + nk * Hm, su + (size_t)r * Hm, (size_t)Hm * sizeof(float));
                    memcpy(ea + nk * Hm, sa + (size_t)r * Hm, (size_t)Hm * sizeof(float));
                    memcpy(eo + nk * C, Y + (size_t)r * C, (size_t)C * sizeof(float));
                    r++;
                }
        }
    } else {
        /* no shared experts, so no room to borrow: token by token, as the reference */
        for (size_t nk = 0; nk < (size_t)N * K; nk++) {
            int e = idx[nk];
            swiglu_forward_cpu(eo + nk * C, eg + nk * Hm, eu + nk * Hm, ea + nk * Hm, inp + (nk / K) * C,
                               w->exp_gate + e * per, w->exp_up + e * per, w->exp_down + e * per, 1, C, Hm);
        }
    }
    /* each token's weighted sum over its slots, in slot order (the reference's arithmetic) */
    for (int n = 0; n < N; n++) {
        float *rt = routed + (size_t)n * C;
        for (int c = 0; c < C; c++) rt[c] = 0.0f;
        for (int k = 0; k < K; k++) {
            size_t nk = (size_t)n * K + k;
            float g = weights[nk];
            const float *o = eo + nk * C;
            for (int c = 0; c < C; c++) rt[c] += g * o[c];
        }
    }
    /* shared experts: one SwiGLU of width Es·Hm over all tokens (overwrites the borrowed space) */
    if (cfg->Es > 0) swiglu_forward_cpu(shared, sg, su, sa, inp, w->sh_gate, w->sh_up, w->sh_down, N, C, cfg->Es * Hm);
    else memset(shared, 0, (size_t)N * C * sizeof(float));
    for (size_t i = 0; i < (size_t)N * C; i++) out[i] = routed[i] + shared[i];
}
#endif
