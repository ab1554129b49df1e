/* loss.c: cross-entropy of next-token prediction, each prediction optionally weighted
 * (docs/model.md §9.1), and the GRPO policy term (§9.8).
 *   loss = (1/count) Σ_{n with a target} w_n · −log softmax(logits_n)[target_n]
 * count is the number of rows with a target (target >= 0); w_n = weights[n], or 1 when weights
 * is NULL (then this is the plain mean). Weights carry an objective's per-token factor (train.h).
 * Softmax with the running max subtracted; the log-sum-exp and the mean accumulate in double.
 * transformers' causal-LM loss with labels = input_ids is this with targets = ids shifted left
 * (the last position of each sequence has no target), averaged over B·(T−1) predictions.
 * Backward: d logits_n = dloss · w_n · (softmax_n − onehot(target_n)) / count. */
#include "backward.h"
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

/* ---- the policy objective (backward.h: PolicyTerms) ---- */

/* log softmax(logits_row)[t] in double: l_t − max − log Σ exp(l − max) */
static double row_logprob(const float *lg, int V, int t) {
    float maxv = -INFINITY;
    for (int i = 0; i < V; i++) if (lg[i] > maxv) maxv = lg[i];
    double sum = 0.0;
    for (int i = 0; i < V; i++) sum += exp((double)(lg[i] - maxv));
    return (double)(lg[t] - maxv) - log(sum);
}

/* −Σ_i π_i log π_i of the row's softmax, in double */
static double row_entropy(const float *lg, int V) {
    float maxv = -INFINITY;
    for (int i = 0; i < V; i++) if (lg[i] > maxv) maxv = lg[i];
    double sum = 0.0, dot = 0.0;
    for (int i = 0; i < V; i++) {
        const double z = (double)(lg[i] - maxv), e = exp(z);
        sum += e;
        dot += e * z;
    }
    return log(sum) - dot / sum;   /* log Σe^z − Σ π z, with π = e^z / Σe^z */
}

void target_logprobs(float *lp, const float *logits, const int *targets, int N, int V) {
    for (int n = 0; n < N; n++) lp[n] = targets[n] < 0 ? 0.0f : (float)row_logprob(logits + (size_t)n * V, V, targets[n]);
}

double policy_loss_weights(float *w_eff, const float *logits, const int *targets, const float *weights,
                           const PolicyTerms *p, int N, int V, PolicyStats *st) {
    double total = 0.0, kl_sum = 0.0, ratio_sum = 0.0, ent_sum = 0.0;
    int cnt = 0, clipped = 0;
    for (int n = 0; n < N; n++) {
        w_eff[n] = 0.0f;
        if (targets[n] < 0) continue;
        const double lp = row_logprob(logits + (size_t)n * V, V, targets[n]);
        const double A = p->advantages[n];
        /* ρ = π/π_old; π_old = π gives exactly 1 */
        const double rho = p->old_logprobs ? exp(lp - (double)p->old_logprobs[n]) : 1.0;
        const double lo = 1.0 - p->clip_eps, hi = 1.0 + p->clip_eps;
        const double rho_c = rho < lo ? lo : rho > hi ? hi : rho;
        /* −min(ρA, clip(ρ)A): the unclipped branch carries the gradient when it is the smaller */
        const int unclipped = rho * A <= rho_c * A;
        const double pg = unclipped ? rho * A : rho_c * A;
        double dl = unclipped ? -rho * A : 0.0; /* ∂ℓ/∂lp */
        /* k3: π_ref/π − log(π_ref/π) − 1, with d/dlp = 1 − π_ref/π */
        double kl = 0.0;
        if (p->ref_logprobs) {
            const double x = (double)p->ref_logprobs[n] - lp;
            kl = exp(x) - x - 1.0;
            dl += p->beta * (1.0 - exp(x));
        }
        const double w = weights ? (double)weights[n] : 1.0;
        total += w * (-pg + p->beta * kl);
        w_eff[n] = (float)(w * -dl);
        kl_sum += kl;
        ratio_sum += rho;
        if (st) ent_sum += row_entropy(logits + (size_t)n * V, V);
        clipped += !unclipped;
        cnt++;
    }
    if (st) {
        st->count = cnt;
        st->kl = cnt ? kl_sum / cnt : 0.0;
        st->ratio = cnt ? ratio_sum / cnt : 0.0;
        st->clip_frac = cnt ? (double)clipped / cnt : 0.0;
        st->entropy = cnt ? ent_sum / cnt : 0.0;
    }
    return cnt ? total / cnt : 0.0;
}
