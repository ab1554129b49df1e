/* balance.cu (CUDA twin of ref/balance.c): the expert load, DeepSeek-V2/V3's sequence-wise balance
 * loss with its gradient on the router scores, and V3's auxiliary-loss-free bias update.
 *   f_i = E/(K·T) · #{t, k : idx[t, k] = i}                        per sequence
 *   L = α/B · Σ_b Σ_i f_i · P_i,   P_i = (1/T) Σ_t s'_{t,i}        (s' = s/Σ_j s_j for sigmoid scores)
 *   bias_i += γ if load_i < mean, −= γ if load_i > mean             (mean = N·K/E)
 * Every sum keeps the reference's order (one owner thread per sum, the per-token terms added in
 * token order, the sequences in order on the host), so the loss, the gradient and the bias are
 * bit for bit the reference's. The load counts with integer atomics: integer addition is exact in
 * any order. Shapes: scores, dscores (B·T, E); idx (B·T, K) device ints; load (E) device ints;
 * bias (E). */
#include <stdlib.h>

#include "cuda/internal.cuh"

__global__ static void expert_load_kernel(int *load, const int *idx, size_t n) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) atomicAdd(&load[idx[i]], 1);
}

extern "C" void expert_load_cuda(int *load, const int *idx, int N, const Config *cfg, cudaStream_t st) {
    CU_CHECK(cudaMemsetAsync(load, 0, (size_t)cfg->E * sizeof(int), st));
    size_t n = (size_t)N * cfg->K;
    if (!n) return;
    expert_load_kernel<<<cdiv(n, 256), 256, 0, st>>>(load, idx, n);
    LAUNCH_CHECK("expert_load");
}

/* one block per sequence: f by thread 0 in (t, k) order; then a thread per token, the sums over
 * experts in expert order, the gradient row; then thread 0 adds the tokens' terms in order */
__global__ static void balance_loss_kernel(float *dscores, double *seq_loss, double *term, const float *scores,
                                           const int *idx, int B, int T, int E, int K, int sigmoid, float alpha) {
    extern __shared__ double f[]; /* (E) */
    const int b = blockIdx.x;
    if (threadIdx.x == 0) {
        for (int i = 0; i < E; i++) f[i] = 0.0;
        for (int t = 0; t < T; t++)
            for (int k = 0; k < K; k++) f[idx[((size_t)b * T + t) * K + k]] += (double)E / ((double)K * T);
    }
    __syncthreads();
    for (int t = threadIdx.x; t < T; t += blockDim.x) {
        const float *s = scores + ((size_t)b * T + t) * E;
        float *ds = dscores ? dscores + ((size_t)b * T + t) * E : NULL;
        if (sigmoid) {
            double S = 0.0, fs = 0.0;
            for (int i = 0; i < E; i++) {
                S += s[i];
                fs += f[i] * s[i];
            }
            term[(size_t)b * T + t] = fs / S / T;
            if (ds)
                for (int j = 0; j < E; j++) ds[j] += (float)(alpha / (T * (double)B) * (f[j] / S - fs / (S * S)));
        } else {
            if (ds)
                for (int j = 0; j < E; j++) ds[j] += (float)(alpha / (T * (double)B) * f[j]);
        }
    }
    __syncthreads();
    if (threadIdx.x == 0) {
        double seq = 0.0;
        if (sigmoid) {
            for (int t = 0; t < T; t++) seq += term[(size_t)b * T + t];
        } else { /* the reference adds f_i·s_i/T straight into the sequence's sum, (t, i) in order */
            for (int t = 0; t < T; t++)
                for (int i = 0; i < E; i++) seq += f[i] * scores[((size_t)b * T + t) * E + i] / T;
        }
        seq_loss[b] = alpha * seq;
    }
}

extern "C" double balance_loss_cuda(float *dscores, const float *scores, const int *idx, int B, int T, const Config *cfg,
                                    float alpha, cudaStream_t st) {
    if (B <= 0 || T <= 0) return 0.0;
    double *ws = (double *)cuda_workspace(((size_t)B + (size_t)B * T) * sizeof(double));
    double *host = (double *)malloc((size_t)B * sizeof(double));
    if (!ws || !host) {
        if (ws) cuda_note_error(__FILE__, __LINE__, "balance_loss", "out of host memory");
        free(host);
        return 0.0;
    }
    /* f: E doubles, padded by two: nvcc reads the row two doubles at a time (16-byte loads),
     * and compute-sanitizer saw the last pair of an odd E reach past the end */
    balance_loss_kernel<<<B, 128, ((size_t)cfg->E + 2) * sizeof(double), st>>>(dscores, ws, ws + B, scores, idx, B, T, cfg->E,
                                                                        cfg->K, cfg->scoring == SCORE_SIGMOID, alpha);
    LAUNCH_CHECK("balance_loss");
    CU_CHECK(cudaMemcpyAsync(host, ws, (size_t)B * sizeof(double), cudaMemcpyDeviceToHost, st));
    CU_CHECK(cudaStreamSynchronize(st));
    double total = 0.0;
    for (int b = 0; b < B; b++) total += host[b];
    free(host);
    return total / B;
}

__global__ static void bias_update_kernel(float *bias, const int *load, int N, int E, int K, float gamma) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= E) return;
    double mean = (double)N * K / E;
    if (load[i] < mean) bias[i] += gamma;      /* underloaded: more likely to be chosen */
    else if (load[i] > mean) bias[i] -= gamma; /* overloaded: less */
}

extern "C" void bias_update_cuda(float *bias, const int *load, int N, const Config *cfg, float gamma, cudaStream_t st) {
    if (cfg->E <= 0) return;
    bias_update_kernel<<<cdiv((size_t)cfg->E, 128), 128, 0, st>>>(bias, load, N, cfg->E, cfg->K, gamma);
    LAUNCH_CHECK("bias_update");
}
