/* loss.cu (CUDA twin of ref/loss.c): next-token cross-entropy over rows of logits, each row's
 * term weighted by w_n (weights (N) device floats, or NULL: 1).
 *   loss = (1/count) Σ_{n with a target} w_n · −log softmax(logits_n)[target_n]
 * Forward, one block per row, the reference's arithmetic: the row max (exact in any order), the
 * log-sum-exp Σ exp((double)(l − max)) in double (a tree over the block instead of left to right:
 * rounding far below float), P_i = (float)(exp((double)(l_i − max)) / sum). Each row's loss term
 * −((double)(l_t − max) − log(sum)) goes to the context workspace; the host adds the terms in row
 * order, as the reference does (one copy back and synchronisation per call: the loss is returned
 * to the host like the reference's).
 * Backward (ACCUMULATES): dlogits_n += dloss·w_n·(P_n − onehot(t_n))/count for rows with a
 * target, one thread per element, the reference's float expressions ((dloss/count)·w_n first).
 * Shapes: logits, probs, dlogits (N, V); targets (N) device ints, −1 = no target. */
#include <stdlib.h>

#include "cuda/internal.cuh"

#define CE_THREADS 256

__global__ static void crossentropy_forward_kernel(float *probs, double *row_loss, const float *logits,
                                                   const int *targets, const float *weights, int V) {
    __shared__ double shd[32];
    __shared__ float shf[32];
    const float *lg = logits + (size_t)blockIdx.x * V;
    float *p = probs + (size_t)blockIdx.x * V;
    /* the max, skipping NaN as the reference's `lg[i] > maxv` does */
    float m = -INFINITY;
    for (int i = threadIdx.x; i < V; i += blockDim.x)
        if (lg[i] > m) m = lg[i];
    const float maxv = block_max_f(m, shf);
    double sum = 0.0;
    for (int i = threadIdx.x; i < V; i += blockDim.x) sum += exp((double)(lg[i] - maxv));
    sum = block_sum_d(sum, shd);
    for (int i = threadIdx.x; i < V; i += blockDim.x) p[i] = (float)(exp((double)(lg[i] - maxv)) / sum);
    if (threadIdx.x == 0) {
        const int t = targets[blockIdx.x];
        const double nll = t < 0 ? 0.0 : -((double)(lg[t] - maxv) - log(sum));
        row_loss[blockIdx.x] = weights ? (double)weights[blockIdx.x] * nll : nll;
    }
}

extern "C" double crossentropy_forward_cuda(float *probs, const float *logits, const int *targets, const float *weights,
                                            int N, int V, int *count, cudaStream_t st) {
    if (count) *count = 0;
    if (N <= 0) return 0.0;
    double *row_loss = (double *)cuda_workspace((size_t)N * sizeof(double));
    double *host = (double *)malloc((size_t)N * sizeof(double));
    int *tg = (int *)malloc((size_t)N * sizeof(int));
    if (!row_loss || !host || !tg) {
        if (row_loss) cuda_note_error(__FILE__, __LINE__, "malloc", "out of host memory");
        free(host);
        free(tg);
        return 0.0;
    }
    crossentropy_forward_kernel<<<N, CE_THREADS, 0, st>>>(probs, row_loss, logits, targets, weights, V);
    LAUNCH_CHECK("crossentropy_forward");
    CU_CHECK(cudaMemcpyAsync(host, row_loss, (size_t)N * sizeof(double), cudaMemcpyDeviceToHost, st));
    CU_CHECK(cudaMemcpyAsync(tg, targets, (size_t)N * sizeof(int), cudaMemcpyDeviceToHost, st));
    CU_CHECK(cudaStreamSynchronize(st));
    /* the reference's sum: the rows with a target, in row order */
    double total = 0.0;
    int cnt = 0;
    for (int n = 0; n < N; n++) {
        if (tg[n] < 0) continue;
        total += host[n];
        cnt++;
    }
    free(host);
    free(tg);
    if (count) *count = cnt;
    return cnt ? total / cnt : 0.0;
}

__global__ static void crossentropy_backward_kernel(float *dlogits, float scale, const float *probs, const int *targets,
                                                    const float *weights, int N, int V) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (size_t)N * V) return;
    const int n = (int)(i / V), c = (int)(i % V), t = targets[n];
    if (t < 0) return;
    const float sn = weights ? scale * weights[n] : scale;
    dlogits[i] += sn * (probs[i] - (c == t ? 1.0f : 0.0f));
}

extern "C" void crossentropy_backward_cuda(float *dlogits, float dloss, const float *probs, const int *targets,
                                           const float *weights, int N, int V, int count, cudaStream_t st) {
    if (count == 0 || N <= 0) return;
    const size_t n = (size_t)N * V;
    crossentropy_backward_kernel<<<cdiv(n, 256), 256, 0, st>>>(dlogits, dloss / (float)count, probs, targets, weights, N, V);
    LAUNCH_CHECK("crossentropy_backward");
}
