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

/* Experts run whole on every thread at once when there are enough of them to share out (at
 * least two per thread, dealt largest first) and the workspace has room; otherwise one after
 * another with each product split over the threads. */
static int experts_spread(int E, int nt, double macs) { return nt > 1 && E >= 2 * nt && macs >= 131072.0; }

/* Each expert's slots in token order: slots[off[e] .. off[e+1]) are the (token, slot) indices
 * n·K + k with idx = e, and order[] the experts by decreasing token count (ties by index), the
 * order they are dealt to the threads. Returns the largest count; a count over N (a token that
 * chose an expert twice, which moe_select never does) makes the caller take its serial path. */
static int group_slots(int *off, int *slots, int *order, const int *idx, size_t NK, int E) {
    int count[CFG_MAX_EXPERTS];
    memset(count, 0, (size_t)E * sizeof(int));
    for (size_t i = 0; i < NK; i++) count[idx[i]]++;
    off[0] = 0;
    for (int e = 0; e < E; e++) off[e + 1] = off[e] + count[e];
    int fill[CFG_MAX_EXPERTS], most = 0;
    memcpy(fill, off, (size_t)E * sizeof(int));
    for (size_t i = 0; i < NK; i++) slots[fill[idx[i]]++] = (int)i;
    for (int e = 0; e < E; e++) {
        int j = e;
        while (j > 0 && count[order[j - 1]] < count[e]) { /* insertion, stable */
            order[j] = order[j - 1];
            j--;
        }
        order[j] = e;
        if (count[e] > most) most = count[e];
    }
    return most;
}

/* The workspace of the parallel paths: off (E + 1) and slots (NK) ints, then `floats_each`
 * floats per thread (64-byte aligned) and `floats_shared` more; NULL when out of memory. */
typedef struct {
    int *off, *slots, order[CFG_MAX_EXPERTS];
    float *room, *shared;
    size_t each;
} ExpertRoom;

static int expert_room(ExpertRoom *r, const int *idx, int N, int K, int E, int nt, size_t floats_each,
                       size_t floats_shared) {
    const size_t NK = (size_t)N * K, ints = ((size_t)E + 1 + NK + 15) / 16 * 16;
    r->each = (floats_each + 15) / 16 * 16;
    char *p = cpu_workspace(CPU_WS_MOE, (ints + (size_t)nt * r->each + floats_shared) * 4);
    if (!p) return 0;
    r->off = (int *)p;
    r->slots = r->off + E + 1;
    r->room = (float *)(p + ints * 4);
    r->shared = r->room + (size_t)nt * r->each;
    return group_slots(r->off, r->slots, r->order, idx, NK, E) <= N;
}

/* Expert e's forward on its n_e gathered rows, in this thread's part of the room: X, Y (N, C),
 * G, U, A (N, Hm); each row then scattered to its (token, slot) place in eg, eu, ea, eo. */
static void expert_forward(float *eg, float *eu, float *ea, float *eo, const float *inp, const int *slots, int ne, int e,
                           const LayerWeights *w, int N, int C, int Hm, int K, float *room) {
    const size_t per = (size_t)Hm * C;
    float *X = room, *Y = X + (size_t)N * C, *G = Y + (size_t)N * C, *U = G + (size_t)N * Hm, *A = U + (size_t)N * Hm;
    for (int r = 0; r < ne; r++) memcpy(X + (size_t)r * C, inp + (size_t)(slots[r] / K) * C, (size_t)C * sizeof(float));
    cpu_sgemm(1, ne, Hm, C, X, (size_t)C, w->exp_gate + e * per, (size_t)C, G, (size_t)Hm);
    cpu_sgemm(1, ne, Hm, C, X, (size_t)C, w->exp_up + e * per, (size_t)C, U, (size_t)Hm);
    for (size_t i = 0; i < (size_t)ne * Hm; i++) A[i] = silu(G[i]) * U[i];
    cpu_sgemm(1, ne, C, Hm, A, (size_t)Hm, w->exp_down + e * per, (size_t)Hm, Y, (size_t)C);
    for (int r = 0; r < ne; r++) {
        const size_t nk = (size_t)slots[r];
        memcpy(eg + nk * Hm, G + (size_t)r * Hm, (size_t)Hm * sizeof(float));
        memcpy(eu + nk * Hm, U + (size_t)r * Hm, (size_t)Hm * sizeof(float));
        memcpy(ea + nk * Hm, A + (size_t)r * Hm, (size_t)Hm * sizeof(float));
        memcpy(eo + nk * C, Y + (size_t)r * C, (size_t)C * sizeof(float));
    }
}

/* Expert e's backward on its n_e gathered rows, in this thread's part of the room: X, dO (N, C),
 * dA, A (N, Hm). Its weight gradients are its own; each row's input gradient goes to its
 * (token, slot) row of dxs (N·K, C), summed per token afterwards. */
static void expert_backward(LayerWeights *g, float *dxs, const float *dout, const float *inp, const float *weights,
                            const float *eg, const float *eu, const float *ea, const int *slots, int ne, int e,
                            const LayerWeights *w, int N, int C, int Hm, int K, float *room) {
    const size_t per = (size_t)Hm * C;
    float *dWg = g->exp_gate + e * per, *dWu = g->exp_up + e * per, *dWd = g->exp_down + e * per;
    const float *Wg = w->exp_gate + e * per, *Wu = w->exp_up + e * per, *Wd = w->exp_down + e * per;
    float *X = room, *dO = X + (size_t)N * C, *dA = dO + (size_t)N * C, *A = dA + (size_t)N * Hm;
    /* gather: the rows' inputs, their output gradients scaled by the gate weight, their act */
    for (int r = 0; r < ne; r++) {
        const size_t nk = (size_t)slots[r], n = nk / K;
        const float gw = weights[nk], *d = dout + n * C;
        float *o = dO + (size_t)r * C;
        memcpy(X + (size_t)r * C, inp + n * C, (size_t)C * sizeof(float));
        for (int c = 0; c < C; c++) o[c] = gw * d[c];
        memcpy(A + (size_t)r * Hm, ea + nk * Hm, (size_t)Hm * sizeof(float));
    }
    /* out = act·W_downᵀ: dact = dO·W_down; dW_down += dOᵀ·act */
    cpu_sgemm(0, ne, Hm, C, dO, (size_t)C, Wd, (size_t)Hm, dA, (size_t)Hm);
    cpu_sgemm_acc(1, 0, C, Hm, ne, dO, (size_t)C, A, (size_t)Hm, dWd, (size_t)Hm);
    /* act = silu(gate)·up: dgate into dA, dup into A (the reference's arithmetic) */
    for (int r = 0; r < ne; r++) {
        const size_t nk = (size_t)slots[r];
        const float *gg = eg + nk * Hm, *uu = eu + nk * Hm;
        float *da = dA + (size_t)r * Hm, *du = A + (size_t)r * Hm;
        for (int i = 0; i < Hm; i++) {
            float gv = gg[i], sgv = 1.0f / (1.0f + expf(-gv));
            float dact = da[i];
            da[i] = dact * uu[i] * sgv * (1.0f + gv * (1.0f - sgv));
            du[i] = dact * gv * sgv;
        }
    }
    /* gate = x·W_gateᵀ, up = x·W_upᵀ */
    cpu_sgemm_acc(1, 0, Hm, C, ne, dA, (size_t)Hm, X, (size_t)C, dWg, (size_t)C);
    cpu_sgemm_acc(1, 0, Hm, C, ne, A, (size_t)Hm, X, (size_t)C, dWu, (size_t)C);
    cpu_sgemm(0, ne, C, Hm, dA, (size_t)Hm, Wg, (size_t)C, dO, (size_t)C);
    cpu_sgemm_acc(0, 0, ne, C, Hm, A, (size_t)Hm, Wu, (size_t)C, dO, (size_t)C);
    for (int r = 0; r < ne; r++) memcpy(dxs + (size_t)slots[r] * C, dO + (size_t)r * C, (size_t)C * sizeof(float));
}

void moe_router_scores_cpu(float *logits, float *scores, float *choice, const float *inp, const float *router,
                           const float *bias, int N, const Config *cfg) {
    matmul_forward_blas(logits, inp, router, N, cfg->C, cfg->E);
    moe_scores_from_logits(scores, choice, logits, bias, N, cfg); /* the reference's arithmetic */
}

void moe_forward_cpu(float *out, float *routed, float *shared, float *eg, float *eu, float *ea, float *eo, float *sg,
                     float *su, float *sa, const float *inp, const int *idx, const float *weights, const LayerWeights *w,
                     int N, const Config *cfg) {
    const int C = cfg->C, Hm = cfg->Hm, K = cfg->K, E = cfg->E, nt = cpu_team();
    const size_t per = (size_t)Hm * C;
    ExpertRoom er;
    if (experts_spread(E, nt, 3.0 * N * K * C * Hm) &&
        expert_room(&er, idx, N, K, E, nt, (size_t)N * (2 * (size_t)C + 3 * (size_t)Hm), 0)) {
        /* experts on every thread at once, each writing only its own slots' rows */
#pragma omp parallel for num_threads(nt) schedule(dynamic, 1)
        for (int i = 0; i < E; i++) {
            const int e = er.order[i], ne = er.off[e + 1] - er.off[e];
            if (ne) expert_forward(eg, eu, ea, eo, inp, er.slots + er.off[e], ne, e, w, N, C, Hm, K,
                                   er.room + (size_t)cpu_thread() * er.each);
        }
    } else if (cfg->Es > 0) {
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
#pragma omp parallel for schedule(static) if ((size_t)N * K * C > 65536 && nt > 1)
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
    const long NC = (long)N * C;
#pragma omp parallel for schedule(static) if (NC > 65536 && nt > 1)
    for (long i = 0; i < NC; i++) out[i] = routed[i] + shared[i];
}

void moe_backward_cpu(float *dinp, LayerWeights *g, const float *dout, const float *dscores, const float *inp,
                      const int *idx, const float *weights, const float *scores, const float *eg, const float *eu,
                      const float *ea, const float *eo, const float *sg, const float *su, const float *sa,
                      const LayerWeights *w, int N, const Config *cfg, float *scratch) {
    const int C = cfg->C, Hm = cfg->Hm, K = cfg->K, E = cfg->E;
    const size_t per = (size_t)Hm * C, NK = (size_t)N * K;
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
        moe_router_backward_row(dlogits + (size_t)n * E, ds, dg, s, id, dscores ? dscores + (size_t)n * E : NULL, cfg);
    }

    /* routed experts: one set of products per expert, experts on every thread at once ... */
    const int nt = cpu_team();
    const size_t R = n_rest / (2 * (size_t)C + 2 * (size_t)Hm);
    ExpertRoom er;
    if (experts_spread(E, nt, 6.0 * N * K * C * Hm) &&
        expert_room(&er, idx, N, K, E, nt, (size_t)N * (2 * (size_t)C + 2 * (size_t)Hm), NK * C)) {
        float *dxs = er.shared; /* (N·K, C): every slot's input gradient */
#pragma omp parallel for num_threads(nt) schedule(dynamic, 1)
        for (int i = 0; i < E; i++) {
            const int e = er.order[i], ne = er.off[e + 1] - er.off[e];
            if (ne) expert_backward(g, dxs, dout, inp, weights, eg, eu, ea, er.slots + er.off[e], ne, e, w, N, C, Hm, K,
                                    er.room + (size_t)cpu_thread() * er.each);
        }
        /* each token's input gradient, its slots added in slot order */
#pragma omp parallel for schedule(static) if (NK * C > 65536)
        for (int n = 0; n < N; n++) {
            float *dx = dinp + (size_t)n * C;
            for (int k = 0; k < K; k++) {
                const float *src = dxs + ((size_t)n * K + k) * C;
                for (int c = 0; c < C; c++) dx[c] += src[c];
            }
        }
    } else if (R >= 1) {
        /* ... or one after another, in chunks of R gathered rows, each product split over the threads */
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
