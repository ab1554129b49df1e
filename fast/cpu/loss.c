/* loss.c (CPU twin of ref/loss.c): cross-entropy of next-token prediction over rows of logits.
 *   loss = (1/count) Σ_{n with a target} w_n · −log softmax(logits_n)[target_n]
 *   backward: dlogits_n += dloss · w_n · (softmax_n − onehot(target_n)) / count   (ACCUMULATES)
 * Shapes: logits, probs, dlogits (N, V); targets (N), −1 = no target; weights (N) or NULL (1).
 * What changes: rows are split over the cores (OpenMP), and each exponential is computed once,
 * in float (expf), instead of twice in double: p_i = expf(l_i − max) · (1 / Σ_j expf(l_j − max)),
 * the sum still in double. The loss sums over rows in double through an OpenMP reduction, so
 * its order of addition differs from the reference's left to right. With V = 8192 the
 * reference's 2·N·V double exponentials are the largest non-GEMM cost of a training step.
 * The LM head product itself is matmul_forward_blas / matmul_backward_blas; fusing it with the
 * softmax would save the (N, V) buffers, not arithmetic, so the two stay separate as in ref/. */
#ifdef SEEK_HAVE_BLAS
#include <math.h>

#include "cpu/cpu.h"
#include "ops.h"

double crossentropy_forward_cpu(float *probs, const float *logits, const int *targets, const float *weights, int N, int V,
                                int *count) {
    double total = 0.0;
    int cnt = 0;
#pragma omp parallel for schedule(static) reduction(+ : total, cnt) if ((size_t)N * V > 32768)
    for (int n = 0; n < N; n++) {
        const float *lg = logits + (size_t)n * V;
        float *p = probs + (size_t)n * V;
        float maxv = -INFINITY; /* pass 1: the max, for numerical stability */
        for (int i = 0; i < V; i++)
            if (lg[i] > maxv) maxv = lg[i];
        double sum = 0.0; /* pass 2: one exponential per logit, summed in double */
        for (int i = 0; i < V; i++) {
            p[i] = expf(lg[i] - maxv);
            sum += p[i];
        }
        const float inv = (float)(1.0 / sum);
        for (int i = 0; i < V; i++) p[i] *= inv;
        if (targets[n] < 0) continue;
        total += crossentropy_term(-((double)(lg[targets[n]] - maxv) - log(sum)), weights, n);
        cnt++;
    }
    if (count) *count = cnt;
    return cnt ? total / cnt : 0.0;
}

void crossentropy_backward_cpu(float *dlogits, float dloss, const float *probs, const int *targets,
                               const float *weights, int N, int V, int count) {
    if (count == 0) return;
    const float scale = dloss / (float)count;
#pragma omp parallel for schedule(static) if ((size_t)N * V > 32768)
    for (int n = 0; n < N; n++) {
        if (targets[n] < 0) continue;
        const float *p = probs + (size_t)n * V;
        float *d = dlogits + (size_t)n * V;
        const int t = targets[n];
        const float dt = d[t], sn = weights ? scale * weights[n] : scale;
        for (int i = 0; i < V; i++) d[i] += sn * p[i];
        d[t] = dt + sn * (p[t] - 1.0f); /* the target's entry exactly as the reference computes it */
    }
}
#endif
