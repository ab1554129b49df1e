/* moe.c: DeepSeekMoE routing and the expert mixture.
 *
 * V3 (docs/model.md §6.4, DeepSeek-V3 eq. 12-16), for one token u:
 *   logits = u·W_gateᵀ;  s = sigmoid(logits);  s_b = s + b   (b only chooses experts)
 *   group score = sum of the top-2 s_b in each of G groups; keep the TG best groups;
 *   experts of the other groups are masked to -inf; pick the K largest masked s_b;
 *   g_k = s_{e_k} / (Σ s_{e_k'} + 1e-20) if norm_topk_prob, then g_k *= routed_scaling_factor.
 * V2 (docs/model.md §6.3): s = softmax(logits); greedy: the K largest s; group_limited_greedy: group
 *   score = max s in the group, keep TG groups, mask the rest to 0; g_k = s_{e_k} · scaling
 *   (never renormalised).
 * FFN(u) = Σ_k g_k · Expert_{e_k}(u) + SharedExperts(u); the residual add is the block's.
 * Router arithmetic is float32 (transformers casts the router GEMM to fp32); the softmax
 * denominator accumulates in double. Ties in every top-k go to the lower index, so selection is
 * deterministic and the CUDA twin can match it exactly.
 */
#include "moe.h"
#include "precision.h"

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

void moe_scores_from_logits(float *scores, float *choice, const float *logits, const float *bias, int N,
                            const Config *cfg) {
    const int E = cfg->E;
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

void moe_router_scores(float *logits, float *scores, float *choice, const float *inp, const float *router,
                       const float *bias, int N, const Config *cfg) {
    /* the gate's product stays fp32 under every precision (precision.h): routing is discrete */
    Precision p = ref_precision;
    ref_precision = PRECISION_FP32;
    matmul_forward(logits, inp, router, N, cfg->C, cfg->E);
    ref_precision = p;
    moe_scores_from_logits(scores, choice, logits, bias, N, cfg);
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

size_t moe_backward_scratch(const Config *cfg, int N) {
    size_t sh = 3 * (size_t)N * cfg->Es * cfg->Hm;
    return (size_t)N * cfg->E + cfg->E + cfg->K + 3 * (size_t)cfg->Hm + cfg->C + sh;
}

/* backward of, per token:  out = Σ_k g_k·o_k + shared,  o_k = Expert_{e_k}(x),
 *   g_k = S·s_k / (Σ_k' s_k' + 1e-20)  (normalised)  or  S·s_k,
 *   s = sigmoid(logits) or softmax(logits),  logits = x·W_gateᵀ
 * so  dg_k = dout·o_k,  do_k = g_k·dout,
 *     normalised: ds_j = S·(dg_j / D − Σ_k dg_k·s_k / D²) for the chosen j (D = Σ s + 1e-20),
 *     sigmoid: dlogit_e = ds_e·s_e·(1 − s_e);  softmax: dlogit_e = s_e·(ds_e − Σ_j s_j·ds_j). */
void moe_router_backward_row(float *dl, float *ds, const float *dg, const float *s, const int *id, const float *dscores,
                             const Config *cfg) {
    const int K = cfg->K, E = cfg->E;
    const float S = (float)cfg->routed_scaling;
    /* gate weights -> scores of the chosen experts: g_k = S·s_k / (Σ_j s_j + 1e-20) when
     * normalised, else S·s_k */
    for (int e = 0; e < E; e++) ds[e] = dscores ? dscores[e] : 0.0f;
    if (cfg->norm_topk_prob) {
        float D = 0.0f;
        for (int k = 0; k < K; k++) D += s[id[k]];
        D += 1e-20f;
        double dot = 0.0;
        for (int k = 0; k < K; k++) dot += (double)dg[k] * s[id[k]];
        for (int k = 0; k < K; k++) ds[id[k]] += S * (float)(dg[k] / D - dot / ((double)D * D));
    } else {
        for (int k = 0; k < K; k++) ds[id[k]] += S * dg[k];
    }
    /* scores -> router logits: sigmoid (V3) or softmax (V2) */
    if (cfg->scoring == SCORE_SIGMOID) {
        for (int e = 0; e < E; e++) dl[e] = ds[e] * s[e] * (1.0f - s[e]);
    } else {
        double dot = 0.0;
        for (int e = 0; e < E; e++) dot += (double)s[e] * ds[e];
        for (int e = 0; e < E; e++) dl[e] = s[e] * (ds[e] - (float)dot);
    }
}

void moe_backward(float *dinp, LayerWeights *g, const float *dout, const float *dscores, const float *inp,
                  const int *idx, const float *weights, const float *scores, const float *eg, const float *eu,
                  const float *ea, const float *eo, const float *sg, const float *su, const float *sa,
                  const LayerWeights *w, int N, const Config *cfg, float *scratch) {
    const int C = cfg->C, Hm = cfg->Hm, K = cfg->K, E = cfg->E;
    const size_t per = (size_t)Hm * C;
    float *dlogits = scratch;                 /* (N, E) */
    float *ds = dlogits + (size_t)N * E;      /* (E) */
    float *dg = ds + E;                       /* (K) */
    float *sw = dg + K;                       /* (3·Hm) one expert's SwiGLU scratch */
    float *dov = sw + 3 * (size_t)Hm;         /* (C) */
    float *shs = dov + C;                     /* (3·N·Es·Hm) shared experts' scratch */
    for (size_t i = 0; i < (size_t)N * E; i++) dlogits[i] = 0.0f;
    for (int n = 0; n < N; n++) {
        const float *d = dout + (size_t)n * C, *s = scores + (size_t)n * E;
        /* experts: dg_k and the expert's own backward with do_k = g_k·dout */
        for (int k = 0; k < K; k++) {
            size_t nk = (size_t)n * K + k;
            int e = idx[nk];
            const float *o = eo + nk * C;
            double acc = 0.0;
            for (int c = 0; c < C; c++) acc += (double)d[c] * o[c];
            dg[k] = (float)acc;
            for (int c = 0; c < C; c++) dov[c] = weights[nk] * d[c];
            swiglu_backward(dinp + (size_t)n * C, g->exp_gate + e * per, g->exp_up + e * per, g->exp_down + e * per, dov,
                            inp + (size_t)n * C, eg + nk * Hm, eu + nk * Hm, ea + nk * Hm, w->exp_gate + e * per,
                            w->exp_up + e * per, w->exp_down + e * per, 1, C, Hm, sw);
        }
        moe_router_backward_row(dlogits + (size_t)n * E, ds, dg, s, idx + (size_t)n * K,
                                dscores ? dscores + (size_t)n * E : NULL, cfg);
    }
    matmul_backward(dinp, g->router, dlogits, inp, w->router, N, C, E);
    if (cfg->Es > 0)
        swiglu_backward(dinp, g->sh_gate, g->sh_up, g->sh_down, dout, inp, sg, su, sa, w->sh_gate, w->sh_up, w->sh_down,
                        N, C, cfg->Es * Hm, shs);
}
