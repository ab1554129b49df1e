/* loss.c: cross-entropy of next-token prediction, each prediction optionally weighted.
 *   loss = (1/count) Σ_{n with a target} w_n · −log softmax(logits_n)[target_n]
 * count is the number of rows with a target (target >= 0); w_n = weights[n], or 1 when weights
 * is NULL (then this is the plain mean). Weights carry an objective's per-token factor (train.h).
 * Softmax with the running max subtracted; the log-sum-exp and the mean accumulate in double.
 * transformers' causal-LM loss with labels = input_ids is this with targets = ids shifted left
 * (the last position of each sequence has no target), averaged over B·(T−1) predictions.
 * Backward: d logits_n = dloss · w_n · (softmax_n − onehot(target_n)) / count. */
#include "ops.h"

double crossentropy_forward(float *probs, const float *logits, const int *targets, const float *weights, int N, int V,
                            int *count) {
    double total = 0.0;
    int cnt = 0;
    for (int n = 0; n < N; n++) {
        const float *lg = logits + (size_t)n * V;
        float *p = probs + (size_t)n * V;
        float maxv = -INFINITY;
        for (int i = 0; i < V; i++) if (lg[i] > maxv) maxv = lg[i];
        double sum = 0.0;
        for (int i = 0; i < V; i++) sum += exp((double)(lg[i] - maxv));
        for (int i = 0; i < V; i++) p[i] = (float)(exp((double)(lg[i] - maxv)) / sum);
        if (targets[n] < 0) continue;
        total += crossentropy_term(-((double)(lg[targets[n]] - maxv) - log(sum)), weights, n);
        cnt++;
    }
    if (count) *count = cnt;
    return cnt ? total / cnt : 0.0;
}

void crossentropy_backward(float *dlogits, float dloss, const float *probs, const int *targets, const float *weights,
                           int N, int V, int count) {
    if (count == 0) return;
    float scale = dloss / (float)count;
    for (int n = 0; n < N; n++) {
        if (targets[n] < 0) continue;
        const float *p = probs + (size_t)n * V;
        float *d = dlogits + (size_t)n * V;
        float sn = weights ? scale * weights[n] : scale;
        for (int i = 0; i < V; i++) d[i] += sn * (p[i] - (i == targets[n] ? 1.0f : 0.0f));
    }
}
