/* moe.c: DeepSeekMoE routing and the expert mixture.
 *
 * V3 (spec §1.6, V3 paper eq. 12-16), for one token u:
 *   logits = u·W_gateᵀ;  s = sigmoid(logits);  s_b = s + b   (b only chooses experts)
 *   group score = sum of the top-2 s_b in each of G groups; keep the TG best groups;
 *   experts of the other groups are masked to -inf; pick the K largest masked s_b;
 *   g_k = s_{e_k} / (Σ s_{e_k'} + 1e-20) if norm_topk_prob, then g_k *= routed_scaling_factor.
 * V2 (spec §1.7): s = softmax(logits); greedy: the K largest s; group_limited_greedy: group
 *   score = max s in the group, keep TG groups, mask the rest to 0; g_k = s_{e_k} · scaling
 *   (never renormalised).
 * FFN(u) = Σ_k g_k · Expert_{e_k}(u) + SharedExperts(u); the residual add is the block's.
 * Router arithmetic is float32 (transformers casts the router GEMM to fp32); the softmax
 * denominator accumulates in double. Ties in every top-k go to the lower index, so selection is
 * deterministic and the CUDA twin can match it exactly.
 */
#include "moe.h"

#include <math.h>
#include <string.h>

#include "ops.h"

/* Value given to experts of groups that were not kept. */
#define V3_MASKED_FILL (-INFINITY)
#define V2_MASKED_FILL 0.0f

void topk_indices(int *out, const float *x, int n, int k, unsigned char *taken) {
    memset(taken, 0, (size_t)n);
    for (int j = 0; j < k; j++) {
        int best = -1;
        for (int i = 0; i < n; i++) {
            if (taken[i]) continue;
            /* strictly greater: on a tie the lower index (found first) stays */
            if (best < 0 || x[i] > x[best]) best = i;
        }
        out[j] = best;
        taken[best] = 1;
    }
}

void moe_router_scores(float *logits, float *scores, float *choice, const float *inp, const float *router,
                       const float *bias, int N, const Config *cfg) {
    const int E = cfg->E;
    matmul_forward(logits, inp, router, N, cfg->C, E);
    for (int n = 0; n < N; n++) {
        const float *lg = logits + (size_t)n * E;
        float *s = scores + (size_t)n * E, *sb = choice + (size_t)n * E;
        /* affinities */
        if (cfg->scoring == SCORE_SIGMOID) {
            for (int e = 0; e < E; e++) s[e] = 1.0f / (1.0f + expf(-lg[e]));
        } else {
            float maxv = -INFINITY;
            for (int e = 0; e < E; e++) if (lg[e] > maxv) maxv = lg[e];
            double sum = 0.0;
            for (int e = 0; e < E; e++) sum += exp((double)(lg[e] - maxv));
            for (int e = 0; e < E; e++) s[e] = (float)(exp((double)(lg[e] - maxv)) / sum);
        }
        /* what selection sees: the bias-corrected scores (V3) or the scores (V2) */
        for (int e = 0; e < E; e++) sb[e] = bias ? s[e] + bias[e] : s[e];
    }
}

void moe_select(int *idx, float *weights, const float *scores, const float *choice, int N, const Config *cfg,
                float *scratch) {
    const int E = cfg->E, K = cfg->K, G = cfg->G;
    float *masked = scratch;          /* (E) */
    float *group_score = scratch + E; /* (G) */
    unsigned char taken[CFG_MAX_EXPERTS];
    int kept[CFG_MAX_EXPERTS];
    for (int n = 0; n < N; n++) {
        const float *s = scores + (size_t)n * E, *sb = choice + (size_t)n * E;
        int *id = idx + (size_t)n * K;
        float *g = weights + (size_t)n * K;

        if (cfg->topk_method == TOPK_GREEDY) {
            topk_indices(id, sb, E, K, taken);
        } else {
            /* group-limited: score each group, keep the TG best, mask the rest */
            int per = E / G;
            for (int gi = 0; gi < G; gi++) {
                const float *grp = sb + (size_t)gi * per;
                if (cfg->topk_method == TOPK_NOAUX_TC) {
                    int top2[2];
                    topk_indices(top2, grp, per, 2, taken);
                    group_score[gi] = grp[top2[0]] + grp[top2[1]];
                } else {
                    float m = grp[0];
                    for (int e = 1; e < per; e++) if (grp[e] > m) m = grp[e];
                    group_score[gi] = m;
                }
            }
            topk_indices(kept, group_score, G, cfg->TG, taken);
            float fill = cfg->topk_method == TOPK_NOAUX_TC ? V3_MASKED_FILL : V2_MASKED_FILL;
            for (int e = 0; e < E; e++) masked[e] = fill;
            for (int j = 0; j < cfg->TG; j++)
                for (int e = kept[j] * per; e < (kept[j] + 1) * per; e++) masked[e] = sb[e];
            topk_indices(id, masked, E, K, taken);
        }

        /* gate weights from the unbiased scores */
        for (int k = 0; k < K; k++) g[k] = s[id[k]];
        if (cfg->norm_topk_prob) {
            float denom = 0.0f;
            for (int k = 0; k < K; k++) denom += g[k];
            denom += 1e-20f;
            for (int k = 0; k < K; k++) g[k] /= denom;
        }
        for (int k = 0; k < K; k++) g[k] *= (float)cfg->routed_scaling;
    }
}

void moe_route(int *idx, float *weights, float *logits, float *scores, float *choice, const float *inp,
               const float *router, const float *bias, int N, const Config *cfg, float *scratch) {
    moe_router_scores(logits, scores, choice, inp, router, bias, N, cfg);
    moe_select(idx, weights, scores, choice, N, cfg, scratch);
}

void moe_forward(float *out, float *routed, float *shared, float *eg, float *eu, float *ea, float *eo, float *sg,
                 float *su, float *sa, const float *inp, const int *idx, const float *weights, const LayerWeights *w,
                 int N, const Config *cfg) {
    const int C = cfg->C, Hm = cfg->Hm, K = cfg->K;
    const size_t per = (size_t)Hm * C;
    /* routed experts, token by token: each chosen expert's SwiGLU, weighted by its gate */
    for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)n * C;
        float *r = routed + (size_t)n * C;
        for (int c = 0; c < C; c++) r[c] = 0.0f;
        for (int k = 0; k < K; k++) {
            size_t nk = (size_t)n * K + k;
            int e = idx[nk];
            float *o = eo + nk * C;
            swiglu_forward(o, eg + nk * Hm, eu + nk * Hm, ea + nk * Hm, x, w->exp_gate + e * per, w->exp_up + e * per,
                           w->exp_down + e * per, 1, C, Hm);
            float g = weights[nk];
            for (int c = 0; c < C; c++) r[c] += g * o[c];
        }
    }
    /* shared experts: one SwiGLU of width Es*Hm over all tokens */
    if (cfg->Es > 0) swiglu_forward(shared, sg, su, sa, inp, w->sh_gate, w->sh_up, w->sh_down, N, C, cfg->Es * Hm);
    else memset(shared, 0, (size_t)N * C * sizeof(float));
    for (size_t i = 0; i < (size_t)N * C; i++) out[i] = routed[i] + shared[i];
}
