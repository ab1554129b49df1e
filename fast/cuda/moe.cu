/* moe.cu (CUDA twin of ref/moe.c): DeepSeekMoE routing and the expert mixture.
 *
 * moe_router_scores_cuda: logits = x·W_gateᵀ (cuBLAS, pedantic fp32), then one block per token:
 *   V3 s = 1 / (1 + expf(−logit));  V2 s = softmax (max, Σ exp in double, as the reference);
 *   choice = s + bias (V3) or s (V2).
 * moe_select_cuda: the reference's selection verbatim (greedy, or group-limited: V3 group score =
 *   the sum of its top-2 choices, dropped groups −inf; V2 group score = its max, dropped groups 0),
 *   top-k with ties to the lower index by the same strictly-greater scan, gate weights from the
 *   unbiased scores, renormalised (+1e-20) in float in slot order when norm_topk_prob, times the
 *   scaling factor. One thread per token on shared memory: given the same scores it returns the
 *   same experts and bit-identical weights (no fused multiply-add, the same float operations).
 * moe_forward_cuda, dispatch and combine:
 *   1. a one-warp kernel sorts the N·K (token, slot) pairs by expert, stably (pairs of one expert
 *      keep their (token, slot) order), giving each expert a contiguous row range;
 *   2. the expert offsets go to the host (one small copy) to size one cuBLAS product per expert
 *      for gate, up and down; inputs are gathered into the sorted order first;
 *   3. every row goes back to its (token, slot) place in the saved eg, eu, ea, eo;
 *   4. routed[n] = Σ_k g_k·eo[n, k] in slot order (the reference's float sum), the shared experts
 *      one SwiGLU over all tokens, out = routed + shared.
 * The sorted rows live in the context workspace: N·K·(C + 3·Hm) floats and 2·N·K + E + 1 ints
 * (the forward reserves it up front). */
#include <string.h>

#include "cuda/internal.cuh"
extern "C" {
#include "moe.h"
}

/* ---- router scores ---- */

#define ROUTER_THREADS 128

__global__ static void router_scores_kernel(float *scores, float *choice, const float *logits, const float *bias,
                                            int E, int sigmoid) {
    __shared__ double shd[32];
    __shared__ float shf[32];
    const float *lg = logits + (size_t)blockIdx.x * E;
    float *s = scores + (size_t)blockIdx.x * E, *sb = choice + (size_t)blockIdx.x * E;
    if (sigmoid) {
        for (int e = threadIdx.x; e < E; e += blockDim.x) s[e] = 1.0f / (1.0f + expf(-lg[e]));
    } else {
        float m = -INFINITY;
        for (int e = threadIdx.x; e < E; e += blockDim.x)
            if (lg[e] > m) m = lg[e];
        m = block_max_f(m, shf);
        double sum = 0.0;
        for (int e = threadIdx.x; e < E; e += blockDim.x) sum += exp((double)(lg[e] - m));
        sum = block_sum_d(sum, shd);
        for (int e = threadIdx.x; e < E; e += blockDim.x) s[e] = (float)(exp((double)(lg[e] - m)) / sum);
    }
    /* what selection sees: the bias-corrected scores (V3) or the scores (V2); same thread wrote s[e] */
    for (int e = threadIdx.x; e < E; e += blockDim.x) sb[e] = bias ? s[e] + bias[e] : s[e];
}

extern "C" void moe_router_scores_cuda(float *logits, float *scores, float *choice, const float *inp,
                                       const float *router, const float *bias, int N, const Config *cfg,
                                       cudaStream_t st) {
    const int E = cfg->E;
    if (N <= 0) return;
    matmul_forward_cuda(logits, inp, router, N, cfg->C, E, st);
    router_scores_kernel<<<N, ROUTER_THREADS, 0, st>>>(scores, choice, logits, bias, E, cfg->scoring == SCORE_SIGMOID);
    LAUNCH_CHECK("router_scores");
}

/* ---- selection: ref/moe.c's moe_select, one thread per token ---- */

/* ref/moe.c's topk_indices: k indices of the largest x, largest first, ties to the lower index */
__device__ static void topk_dev(int *out, const float *x, int n, int k, unsigned char *taken) {
    for (int i = 0; i < n; i++) taken[i] = 0;
    for (int j = 0; j < k; j++) {
        int best = -1;
        for (int i = 0; i < n; i++) {
            if (taken[i]) continue;
            if (best < 0 || x[i] > x[best]) best = i; /* strictly greater: on a tie the lower index stays */
        }
        out[j] = best;
        taken[best] = 1;
    }
}

typedef struct {
    int E, K, G, TG, method, norm;
    float scaling;
} SelectArgs;

__global__ static void moe_select_kernel(int *idx, float *weights, const float *scores, const float *choice,
                                         SelectArgs a) {
    extern __shared__ float sh[];
    if (threadIdx.x != 0) return;
    const int E = a.E, K = a.K, G = a.G;
    float *masked = sh;                                   /* (E) */
    float *group_score = masked + E;                      /* (G) */
    int *kept = (int *)(group_score + G);                 /* (G) */
    unsigned char *taken = (unsigned char *)(kept + G);   /* (E) */
    const size_t n = blockIdx.x;
    const float *s = scores + n * E, *sb = choice + n * E;
    int *id = idx + n * K;
    float *g = weights + n * K;
    if (a.method == TOPK_GREEDY) {
        topk_dev(id, sb, E, K, taken);
    } else {
        /* group-limited: score each group, keep the TG best, mask the rest */
        int per = E / G;
        for (int gi = 0; gi < G; gi++) {
            const float *grp = sb + (size_t)gi * per;
            if (a.method == TOPK_NOAUX_TC) {
                int top2[2];
                topk_dev(top2, grp, per, 2, taken);
                group_score[gi] = grp[top2[0]] + grp[top2[1]];
            } else {
                float m = grp[0];
                for (int e = 1; e < per; e++)
                    if (grp[e] > m) m = grp[e];
                group_score[gi] = m;
            }
        }
        topk_dev(kept, group_score, G, a.TG, taken);
        float fill = a.method == TOPK_NOAUX_TC ? -INFINITY : 0.0f;
        for (int e = 0; e < E; e++) masked[e] = fill;
        for (int j = 0; j < a.TG; j++)
            for (int e = kept[j] * per; e < (kept[j] + 1) * per; e++) masked[e] = sb[e];
        topk_dev(id, masked, E, K, taken);
    }
    /* gate weights from the unbiased scores */
    for (int k = 0; k < K; k++) g[k] = s[id[k]];
    if (a.norm) {
        float denom = 0.0f;
        for (int k = 0; k < K; k++) denom += g[k];
        denom += 1e-20f;
        for (int k = 0; k < K; k++) g[k] /= denom;
    }
    for (int k = 0; k < K; k++) g[k] *= a.scaling;
}

extern "C" void moe_select_cuda(int *idx, float *weights, const float *scores, const float *choice, int N,
                                const Config *cfg, float *scratch, cudaStream_t st) {
    (void)scratch;
    if (N <= 0) return;
    SelectArgs a = {cfg->E, cfg->K, cfg->topk_method == TOPK_GREEDY ? 1 : cfg->G, cfg->TG, (int)cfg->topk_method,
                    cfg->norm_topk_prob, (float)cfg->routed_scaling};
    size_t bytes = (size_t)a.E * sizeof(float) + 2 * (size_t)a.G * sizeof(float) + (size_t)a.E;
    moe_select_kernel<<<N, 32, bytes, st>>>(idx, weights, scores, choice, a);
    LAUNCH_CHECK("moe_select");
}

/* ---- dispatch and combine ---- */

/* One warp: off (E+1) expert row offsets; perm[pos] = nk and inv[nk] = pos, stable within an
 * expert (pairs taken 32 at a time in nk order, ranked inside the warp with __match_any_sync). */
__global__ static void moe_sort_kernel(int *off, int *perm, int *inv, const int *idx, int NK, int E) {
    extern __shared__ int cur[];
    const int lane = threadIdx.x;
    for (int e = lane; e < E; e += 32) cur[e] = 0;
    __syncwarp();
    for (int base = 0; base < NK; base += 32) {
        int nk = base + lane;
        int e = nk < NK ? idx[nk] : -1;
        if (e >= 0 && e < E) atomicAdd(&cur[e], 1); /* integer counts: exact in any order */
    }
    __syncwarp();
    if (lane == 0) {
        int acc = 0;
        for (int e = 0; e < E; e++) {
            int c = cur[e];
            off[e] = acc;
            cur[e] = acc;
            acc += c;
        }
        off[E] = acc;
    }
    __syncwarp();
    for (int base = 0; base < NK; base += 32) {
        int nk = base + lane;
        int e = nk < NK ? idx[nk] : -1;
        int valid = e >= 0 && e < E;
        if (!valid) e = -1 - lane; /* out of range: a group of its own, never placed */
        unsigned mask = __match_any_sync(0xffffffffu, e);
        int rank = __popc(mask & ((1u << lane) - 1u));
        if (valid) {
            int pos = cur[e] + rank;
            perm[pos] = nk;
            inv[nk] = pos;
        } else if (nk < NK) {
            inv[nk] = -1;
        }
        __syncwarp();
        if (valid && lane == __ffs(mask) - 1) cur[e] += __popc(mask);
        __syncwarp();
    }
}

__global__ static void moe_gather_kernel(float *X, const float *inp, const int *perm, int rows, int K, int C) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (size_t)rows * C) return;
    size_t pos = i / C, c = i % C;
    X[i] = inp[(size_t)(perm[pos] / K) * C + c];
}

/* eg/eu/ea (NK, Hm) and eo (NK, C) in (token, slot) order from the sorted rows */
__global__ static void moe_scatter_kernel(float *eg, float *eu, float *ea, float *eo, const float *G, const float *U,
                                          const float *A, const float *O, const int *inv, int NK, int Hm, int C) {
    size_t nk = blockIdx.x;
    if (nk >= (size_t)NK) return;
    int pos = inv[nk];
    for (int i = threadIdx.x; i < Hm; i += blockDim.x) {
        eg[nk * Hm + i] = pos >= 0 ? G[(size_t)pos * Hm + i] : NAN;
        eu[nk * Hm + i] = pos >= 0 ? U[(size_t)pos * Hm + i] : NAN;
        ea[nk * Hm + i] = pos >= 0 ? A[(size_t)pos * Hm + i] : NAN;
    }
    for (int c = threadIdx.x; c < C; c += blockDim.x) eo[nk * C + c] = pos >= 0 ? O[(size_t)pos * C + c] : NAN;
}

/* routed[n, c] = Σ_k g[n, k]·eo[n, k, c] in slot order, from 0 (the reference's loop) */
__global__ static void moe_combine_kernel(float *routed, const float *eo, const float *weights, int N, int K, int C) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (size_t)N * C) return;
    size_t n = i / C, c = i % C;
    float r = 0.0f;
    for (int k = 0; k < K; k++) r += weights[n * K + k] * eo[(n * K + k) * C + c];
    routed[i] = r;
}

__global__ static void add2_kernel(float *out, const float *a, const float *b, size_t n) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) out[i] = a[i] + b[i];
}

/* The (token, slot) pairs sorted by expert (moe_sort_kernel, stable), and the expert offsets
 * brought to the host (off_h, E + 1 ints: the per-expert products are sized there; one
 * synchronisation). Returns the number of pairs with a valid expert. */
static int sort_by_expert(int *off, int *perm, int *inv, int *off_h, const int *idx, size_t NK, int E, cudaStream_t st) {
    moe_sort_kernel<<<1, 32, (size_t)E * sizeof(int), st>>>(off, perm, inv, idx, (int)NK, E);
    LAUNCH_CHECK("moe_sort");
    CU_CHECK(cudaMemcpyAsync(off_h, off, ((size_t)E + 1) * sizeof(int), cudaMemcpyDeviceToHost, st));
    CU_CHECK(cudaStreamSynchronize(st));
    return off_h[E];
}

extern "C" void moe_forward_cuda(float *out, float *routed, float *shared, float *eg, float *eu, float *ea, float *eo,
                                 float *sg, float *su, float *sa, const float *inp, const int *idx, const float *weights,
                                 const LayerWeights *w, int N, const Config *cfg, cudaStream_t st) {
    static int off_h[CFG_MAX_EXPERTS + 1]; /* host copy of the expert offsets (program state, not layer scratch) */
    const int C = cfg->C, Hm = cfg->Hm, K = cfg->K, E = cfg->E;
    const size_t per = (size_t)Hm * C, NK = (size_t)N * K;
    if (N <= 0) return;
    /* workspace: X/O (NK, C), G, U, A (NK, Hm), then off (E+1), perm (NK), inv (NK) */
    size_t nf = NK * ((size_t)C + 3 * (size_t)Hm);
    float *X = (float *)cuda_workspace(nf * sizeof(float) + ((size_t)E + 1 + 2 * NK) * sizeof(int));
    if (!X) return;
    float *G = X + NK * C, *U = G + NK * Hm, *A = U + NK * Hm;
    int *off = (int *)(A + NK * Hm), *perm = off + E + 1, *inv = perm + NK;

    int rows = sort_by_expert(off, perm, inv, off_h, idx, NK, E, st); /* pairs with a valid expert */
    if (rows > 0) {
        moe_gather_kernel<<<cdiv((size_t)rows * C, 256), 256, 0, st>>>(X, inp, perm, rows, K, C);
        LAUNCH_CHECK("moe_gather");
    }
    /* gate and up for every expert first: X is dead afterwards and its space takes the outputs */
    for (int e = 0; e < E; e++) {
        int o = off_h[e], cnt = off_h[e + 1] - o;
        if (cnt <= 0) continue;
        matmul_forward_cuda(G + (size_t)o * Hm, X + (size_t)o * C, w->exp_gate + e * per, cnt, C, Hm, st);
        matmul_forward_cuda(U + (size_t)o * Hm, X + (size_t)o * C, w->exp_up + e * per, cnt, C, Hm, st);
    }
    cuda_swiglu_act(A, G, U, (size_t)rows * Hm, st);
    float *O = X;
    for (int e = 0; e < E; e++) {
        int o = off_h[e], cnt = off_h[e + 1] - o;
        if (cnt <= 0) continue;
        matmul_forward_cuda(O + (size_t)o * C, A + (size_t)o * Hm, w->exp_down + e * per, cnt, Hm, C, st);
    }
    moe_scatter_kernel<<<(unsigned)NK, 128, 0, st>>>(eg, eu, ea, eo, G, U, A, O, inv, (int)NK, Hm, C);
    LAUNCH_CHECK("moe_scatter");
    moe_combine_kernel<<<cdiv((size_t)N * C, 256), 256, 0, st>>>(routed, eo, weights, N, K, C);
    LAUNCH_CHECK("moe_combine");
    /* shared experts: one SwiGLU of width Es*Hm over all tokens */
    if (cfg->Es > 0) swiglu_forward_cuda(shared, sg, su, sa, inp, w->sh_gate, w->sh_up, w->sh_down, N, C, cfg->Es * Hm, st);
    else CU_CHECK(cudaMemsetAsync(shared, 0, (size_t)N * C * sizeof(float), st));
    add2_kernel<<<cdiv((size_t)N * C, 256), 256, 0, st>>>(out, routed, shared, (size_t)N * C);
    LAUNCH_CHECK("moe_add");
}

/* ---- backward: twin of ref/moe.c's moe_backward; every gradient ACCUMULATES ----
 * Per token:  out = Σ_k g_k·o_k + shared,  o_k = Expert_{e_k}(x),
 *   g_k = S·s_k / (Σ_k' s_k' + 1e-20)  (normalised)  or  S·s_k,  s = sigmoid or softmax(x·W_gateᵀ)
 *   dg_k = dout·o_k (double);  do_k = g_k·dout;  ds, dlogits exactly as the reference.
 * 1. routing, one block per token: dg_k as block sums in double, the renormalisation's and the
 *    scores' backward in the reference's float/double operations (slot-order sums by thread 0);
 *    dlogits (N, E) in the reference's scratch;
 * 2. routed experts: the forward's stable sort by expert, inputs, g_k·dout and the saved act
 *    gathered into expert order; per expert, cuBLAS: dact = dO·W_down, dW_down += dOᵀ·act; the
 *    SwiGLU derivative elementwise (the reference's expression); dW_gate += dGᵀ·X,
 *    dW_up += dUᵀ·X and each (token, slot)'s dx = dG·W_gate + dU·W_up into its own row;
 * 3. dinp[n] += dx of its slots, in slot order (one thread per element, no atomics);
 * 4. the router's matmul_backward_cuda, then the shared experts' swiglu_backward_cuda (the
 *    reference's order of additions into dinp, and its scratch layout).
 * Workspace: N·K·(2·C + 2·Hm) floats and 2·N·K + E + 1 ints. */

#define MOE_BWD_THREADS 128

typedef struct {
    int C, E, K, norm, sigmoid;
    float S;
} MoeBwdArgs;

/* dynamic shared memory: ds (E) floats, dg (K) floats */
__global__ static void moe_router_backward_kernel(float *dlogits, const float *dout, const float *dscores,
                                                  const int *idx, const float *scores, const float *eo, MoeBwdArgs a) {
    extern __shared__ float shm[];
    __shared__ double shd[32];
    float *ds = shm, *dg = shm + a.E;
    const int C = a.C, E = a.E, K = a.K;
    const size_t n = blockIdx.x;
    const float *d = dout + n * C, *s = scores + n * E;
    const int *id = idx + n * K;
    /* dg_k = dout·o_k in double */
    for (int k = 0; k < K; k++) {
        const float *o = eo + (n * K + k) * C;
        double acc = 0.0;
        for (int c = threadIdx.x; c < C; c += blockDim.x) acc += (double)d[c] * o[c];
        acc = block_sum_d(acc, shd);
        if (threadIdx.x == 0) dg[k] = (float)acc;
    }
    for (int e = threadIdx.x; e < E; e += blockDim.x) ds[e] = dscores ? dscores[n * E + e] : 0.0f;
    __syncthreads();
    /* gate weights -> scores of the chosen experts: slot-order sums, one thread */
    if (threadIdx.x == 0) {
        if (a.norm) {
            float D = 0.0f;
            for (int k = 0; k < K; k++) D += s[id[k]];
            D += 1e-20f;
            double dot = 0.0;
            for (int k = 0; k < K; k++) dot += (double)dg[k] * s[id[k]];
            for (int k = 0; k < K; k++) ds[id[k]] += a.S * (float)(dg[k] / D - dot / ((double)D * D));
        } else {
            for (int k = 0; k < K; k++) ds[id[k]] += a.S * dg[k];
        }
    }
    __syncthreads();
    /* scores -> router logits */
    float *dl = dlogits + n * E;
    if (a.sigmoid) {
        for (int e = threadIdx.x; e < E; e += blockDim.x) dl[e] = ds[e] * s[e] * (1.0f - s[e]);
    } else {
        double dot = 0.0;
        for (int e = threadIdx.x; e < E; e += blockDim.x) dot += (double)s[e] * ds[e];
        dot = block_sum_d(dot, shd);
        for (int e = threadIdx.x; e < E; e += blockDim.x) dl[e] = s[e] * (ds[e] - (float)dot);
    }
}

/* sorted row pos (pair nk = perm[pos], token n = nk / K): X = inp[n], dO = g_nk·dout[n] */
__global__ static void moe_bwd_gather_c_kernel(float *X, float *dO, const float *inp, const float *dout,
                                               const float *weights, const int *perm, int rows, int K, int C) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (size_t)rows * C) return;
    size_t pos = i / C, c = i % C;
    int nk = perm[pos];
    size_t src = (size_t)(nk / K) * C + c;
    X[i] = inp[src];
    dO[i] = weights[nk] * dout[src];
}

/* A = ea in sorted order */
__global__ static void moe_bwd_gather_h_kernel(float *A, const float *ea, const int *perm, int rows, int Hm) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (size_t)rows * Hm) return;
    size_t pos = i / Hm, j = i % Hm;
    A[i] = ea[(size_t)perm[pos] * Hm + j];
}

/* act = silu(gate)·up backward, ref/mlp.c's arithmetic: dgate into dA, dup into A (act is dead) */
__global__ static void moe_bwd_swiglu_kernel(float *dA, float *A, const float *eg, const float *eu, const int *perm,
                                             int rows, int Hm) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (size_t)rows * Hm) return;
    size_t pos = i / Hm, j = i % Hm, src = (size_t)perm[pos] * Hm + j;
    float gv = eg[src], sgv = 1.0f / (1.0f + expf(-gv));
    float dact = dA[i];
    dA[i] = dact * eu[src] * sgv * (1.0f + gv * (1.0f - sgv));
    A[i] = dact * gv * sgv;
}

/* dinp[n, c] += Σ_k dX[inv[n, k], c] in slot order */
__global__ static void moe_bwd_combine_kernel(float *dinp, const float *dX, const int *inv, int N, int K, int C) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (size_t)N * C) return;
    size_t n = i / C, c = i % C;
    float acc = dinp[i];
    for (int k = 0; k < K; k++) {
        int pos = inv[n * K + k];
        if (pos >= 0) acc += dX[(size_t)pos * C + c];
    }
    dinp[i] = acc;
}

extern "C" void moe_backward_cuda(float *dinp, LayerWeights *g, const float *dout, const float *dscores,
                                  const float *inp, const int *idx, const float *weights, const float *scores,
                                  const float *eg, const float *eu, const float *ea, const float *eo, const float *sg,
                                  const float *su, const float *sa, const LayerWeights *w, int N, const Config *cfg,
                                  float *scratch, cudaStream_t st) {
    static int off_h[CFG_MAX_EXPERTS + 1]; /* host copy of the expert offsets (program state, not layer scratch) */
    const int C = cfg->C, Hm = cfg->Hm, K = cfg->K, E = cfg->E;
    const size_t per = (size_t)Hm * C, NK = (size_t)N * K;
    if (N <= 0) return;
    float *dlogits = scratch; /* (N, E), then the reference's scratch layout */
    float *shs = dlogits + (size_t)N * E + E + K + 3 * (size_t)Hm + C; /* (3·N·Es·Hm) shared experts' scratch */

    /* 1. routing: gate weights -> chosen scores -> router logits */
    MoeBwdArgs ra = {C, E, K, cfg->norm_topk_prob, cfg->scoring == SCORE_SIGMOID, (float)cfg->routed_scaling};
    moe_router_backward_kernel<<<N, MOE_BWD_THREADS, ((size_t)E + K) * sizeof(float), st>>>(dlogits, dout, dscores, idx,
                                                                                          scores, eo, ra);
    LAUNCH_CHECK("moe_router_backward");

    /* 2. routed experts on the sorted rows. workspace: X, dO/dX (NK, C), A, dA (NK, Hm), off, perm, inv */
    if (NK > 0) {
        size_t nf = NK * (2 * (size_t)C + 2 * (size_t)Hm);
        float *X = (float *)cuda_workspace(nf * sizeof(float) + ((size_t)E + 1 + 2 * NK) * sizeof(int));
        if (!X) return;
        float *dO = X + NK * C, *A = dO + NK * C, *dA = A + NK * Hm;
        int *off = (int *)(dA + NK * Hm), *perm = off + E + 1, *inv = perm + NK;
        int rows = sort_by_expert(off, perm, inv, off_h, idx, NK, E, st); /* pairs with a valid expert */
        if (rows > 0) {
            moe_bwd_gather_c_kernel<<<cdiv((size_t)rows * C, 256), 256, 0, st>>>(X, dO, inp, dout, weights, perm, rows,
                                                                                 K, C);
            LAUNCH_CHECK("moe_bwd_gather_c");
            moe_bwd_gather_h_kernel<<<cdiv((size_t)rows * Hm, 256), 256, 0, st>>>(A, ea, perm, rows, Hm);
            LAUNCH_CHECK("moe_bwd_gather_h");
            /* out = act·W_downᵀ: dact = dO·W_down (from 0); dW_down += dOᵀ·act */
            for (int e = 0; e < E; e++) {
                int o = off_h[e], cnt = off_h[e + 1] - o;
                if (cnt <= 0) continue;
                cuda_sgemm(st, 0, cnt, Hm, C, dO + (size_t)o * C, (size_t)C, 0, w->exp_down + e * per, (size_t)Hm, 0,
                           dA + (size_t)o * Hm, (size_t)Hm, 0, 1);
                matmul_backward_cuda(NULL, g->exp_down + e * per, dO + (size_t)o * C, A + (size_t)o * Hm,
                                     w->exp_down + e * per, cnt, Hm, C, st);
            }
            /* act = silu(gate)·up: dgate into dA, dup into A */
            moe_bwd_swiglu_kernel<<<cdiv((size_t)rows * Hm, 256), 256, 0, st>>>(dA, A, eg, eu, perm, rows, Hm);
            LAUNCH_CHECK("moe_bwd_swiglu");
            /* gate = x·W_gateᵀ, up = x·W_upᵀ: each sorted row's dx from 0 in dO's place (dO is dead) */
            float *dX = dO;
            CU_CHECK(cudaMemsetAsync(dX, 0, (size_t)rows * C * sizeof(float), st));
            for (int e = 0; e < E; e++) {
                int o = off_h[e], cnt = off_h[e + 1] - o;
                if (cnt <= 0) continue;
                matmul_backward_cuda(dX + (size_t)o * C, g->exp_gate + e * per, dA + (size_t)o * Hm, X + (size_t)o * C,
                                     w->exp_gate + e * per, cnt, C, Hm, st);
                matmul_backward_cuda(dX + (size_t)o * C, g->exp_up + e * per, A + (size_t)o * Hm, X + (size_t)o * C,
                                     w->exp_up + e * per, cnt, C, Hm, st);
            }
            /* 3. each token's input gradient, its slots added in slot order */
            moe_bwd_combine_kernel<<<cdiv((size_t)N * C, 256), 256, 0, st>>>(dinp, dX, inv, N, K, C);
            LAUNCH_CHECK("moe_bwd_combine");
        }
    }
    /* 4. logits = x·W_routerᵀ, then the shared experts */
    matmul_backward_cuda(dinp, g->router, dlogits, inp, w->router, N, C, E, st);
    if (cfg->Es > 0)
        swiglu_backward_cuda(dinp, g->sh_gate, g->sh_up, g->sh_down, dout, inp, sg, su, sa, w->sh_gate, w->sh_up,
                             w->sh_down, N, C, cfg->Es * Hm, shs, st);
}
