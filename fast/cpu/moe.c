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
 * experts one by one as the reference does, each product an sgemv.
 *
 * Backward (ACCUMULATES into dinp and every expert, shared-expert and router gradient), the
 * reference's equations:
 *   routing, per token (OpenMP over tokens): dg_k = dout·o_k (double), the normalisation and
 *     scaling back to the chosen scores, plus dscores, then sigmoid'/softmax' to dlogits (N, E);
 *   experts, per expert e over its n_e tokens (gathered in token order, as the forward):
 *     dO_e = g·dout rows;  dA = dO_e·W_down;  dW_down += dO_eᵀ·A_e;  dG, dU elementwise;
 *     dW_gate += dGᵀ·X_e;  dW_up += dUᵀ·X_e;  dX_e = dG·W_gate + dU·W_up, added to dinp's rows;
 *   router: dinp += dlogits·W_gate_r, dW_router += dlogitsᵀ·x;  shared experts: swiglu_backward_cpu.
 * Scratch is the reference's moe_backward_scratch(cfg, N): after dlogits (N·E) the rest (the
 * reference's per-token and shared-expert areas, used by the shared experts only afterwards)
 * holds X_e, dO_e (R, C) and dA, A_e (R, Hm) for R = rest / (2C + 2Hm) rows; an expert with more
 * tokens runs in chunks of R (one chunk in the configurations benchmarked: n_e ≈ N·K/E). If not
 * even one row fits, each token runs its experts one by one as the reference does. */
#ifdef SEEK_HAVE_BLAS
#include <math.h>
#include <string.h>

#include "cpu/cpu.h"
#include "moe.h"
#include "ops.h"

void moe_router_scores_cpu(float *logits, float *scores, float *choice, const float *inp, const float *router,
                           const float *bias, int N, const Config *cfg) {
    matmul_forward_blas(logits, inp, router, N, cfg->C, cfg->E);
    moe_scores_from_logits(scores, choice, logits, bias, N, cfg); /* the reference's arithmetic */
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

void moe_backward_cpu(float *dinp, LayerWeights *g, const float *dout, const float *dscores, const float *inp,
                      const int *idx, const float *weights, const float *scores, const float *eg, const float *eu,
                      const float *ea, const float *eo, const float *sg, const float *su, const float *sa,
                      const LayerWeights *w, int N, const Config *cfg, float *scratch) {
    const int C = cfg->C, Hm = cfg->Hm, K = cfg->K, E = cfg->E;
    const size_t per = (size_t)Hm * C, NK = (size_t)N * K;
    const float S = (float)cfg->routed_scaling;
    float *dlogits = scratch;                                   /* (N, E) */
    float *rest = dlogits + (size_t)N * E;                      /* the remainder of the reference's scratch */
    const size_t n_rest = moe_backward_scratch(cfg, N) - (size_t)N * E;

    /* routing: gate weights -> chosen scores -> router logits, token by token */
#pragma omp parallel for schedule(static) if ((size_t)N * (K * C + E) > 65536)
    for (int n = 0; n < N; n++) {
        const float *d = dout + (size_t)n * C, *s = scores + (size_t)n * E;
        const int *id = idx + (size_t)n * K;
        float ds[CFG_MAX_EXPERTS], dg[CFG_MAX_EXPERTS];
        for (int k = 0; k < K; k++) {
            const float *o = eo + ((size_t)n * K + k) * C;
            double acc = 0.0;
            for (int c = 0; c < C; c++) acc += (double)d[c] * o[c];
            dg[k] = (float)acc;
        }
        for (int e = 0; e < E; e++) ds[e] = dscores ? dscores[(size_t)n * E + e] : 0.0f;
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
        float *dl = dlogits + (size_t)n * E;
        if (cfg->scoring == SCORE_SIGMOID) {
            for (int e = 0; e < E; e++) dl[e] = ds[e] * s[e] * (1.0f - s[e]);
        } else {
            double dot = 0.0;
            for (int e = 0; e < E; e++) dot += (double)s[e] * ds[e];
            for (int e = 0; e < E; e++) dl[e] = s[e] * (ds[e] - (float)dot);
        }
    }

    /* routed experts: one set of products per expert (in chunks of R gathered rows) */
    const size_t R = n_rest / (2 * (size_t)C + 2 * (size_t)Hm);
    if (R >= 1) {
        float *X = rest, *dO = X + R * C, *dA = dO + R * C, *A = dA + R * Hm;
        for (int e = 0; e < E; e++) {
            float *dWg = g->exp_gate + e * per, *dWu = g->exp_up + e * per, *dWd = g->exp_down + e * per;
            const float *Wg = w->exp_gate + e * per, *Wu = w->exp_up + e * per, *Wd = w->exp_down + e * per;
            size_t cursor = 0;
            while (cursor < NK) {
                /* gather up to R rows of this expert from slot `cursor` on, in token order */
                size_t start = cursor, r = 0;
                for (; cursor < NK && r < R; cursor++) {
                    if (idx[cursor] != e) continue;
                    const size_t n = cursor / K;
                    const float gw = weights[cursor], *d = dout + n * C;
                    memcpy(X + r * C, inp + n * C, (size_t)C * sizeof(float));
                    for (int c = 0; c < C; c++) dO[r * C + c] = gw * d[c];
                    memcpy(A + r * Hm, ea + cursor * Hm, (size_t)Hm * sizeof(float));
                    r++;
                }
                if (r == 0) break;
                const int m = (int)r;
                /* out = act·W_downᵀ: dact = dO·W_down; dW_down += dOᵀ·act */
                cpu_sgemm(0, m, Hm, C, dO, (size_t)C, Wd, (size_t)Hm, dA, (size_t)Hm);
                cpu_sgemm_acc(1, 0, C, Hm, m, dO, (size_t)C, A, (size_t)Hm, dWd, (size_t)Hm);
                /* act = silu(gate)·up: dgate into dA, dup into A (the reference's arithmetic) */
                r = 0;
                for (size_t nk = start; nk < cursor; nk++) {
                    if (idx[nk] != e) continue;
                    const float *gg = eg + nk * Hm, *uu = eu + nk * Hm;
                    float *da = dA + r * Hm, *du = A + r * Hm;
                    for (int i = 0; i < Hm; i++) {
                        float gv = gg[i], sgv = 1.0f / (1.0f + expf(-gv));
                        float dact = da[i];
                        da[i] = dact * uu[i] * sgv * (1.0f + gv * (1.0f - sgv));
                        du[i] = dact * gv * sgv;
                    }
                    r++;
                }
                /* gate = x·W_gateᵀ, up = x·W_upᵀ */
                cpu_sgemm_acc(1, 0, Hm, C, m, dA, (size_t)Hm, X, (size_t)C, dWg, (size_t)C);
                cpu_sgemm_acc(1, 0, Hm, C, m, A, (size_t)Hm, X, (size_t)C, dWu, (size_t)C);
                cpu_sgemm(0, m, C, Hm, dA, (size_t)Hm, Wg, (size_t)C, dO, (size_t)C);
                cpu_sgemm_acc(0, 0, m, C, Hm, A, (size_t)Hm, Wu, (size_t)C, dO, (size_t)C);
                /* scatter-add each row's input gradient to its token */
                r = 0;
                for (size_t nk = start; nk < cursor; nk++) {
                    if (idx[nk] != e) continue;
                    float *dx = dinp + (nk / K) * C;
                    const float *src = dO + r * C;
                    for (int c = 0; c < C; c++) dx[c] += src[c];
                    r++;
                }
            }
        }
    } else {
        /* no room for even one gathered row: token by token, as the reference */
        float *sw = rest, *dov = sw + 3 * (size_t)Hm;
        for (size_t nk = 0; nk < NK; nk++) {
            const int e = idx[nk];
            const size_t n = nk / K;
            for (int c = 0; c < C; c++) dov[c] = weights[nk] * dout[n * C + c];
            swiglu_backward_cpu(dinp + n * C, g->exp_gate + e * per, g->exp_up + e * per, g->exp_down + e * per, dov,
                                inp + n * C, eg + nk * Hm, eu + nk * Hm, ea + nk * Hm, w->exp_gate + e * per,
                                w->exp_up + e * per, w->exp_down + e * per, 1, C, Hm, sw);
        }
    }
    /* logits = x·W_routerᵀ, then the shared experts (the reference's scratch layout) */
    matmul_backward_blas(dinp, g->router, dlogits, inp, w->router, N, C, E);
    if (cfg->Es > 0)
        swiglu_backward_cpu(dinp, g->sh_gate, g->sh_up, g->sh_down, dout, inp, sg, su, sa, w->sh_gate, w->sh_up, w->sh_down,
                            N, C, cfg->Es * Hm, rest + E + K + 3 * (size_t)Hm + C);
}
#endif
