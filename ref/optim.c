/* optim.c: AdamW, gradient clipping by global norm, and learning-rate schedules (train_parts.h;
 * docs/model.md §9.4, §9.5, §9.6).
 *
 * AdamW (Loshchilov & Hutter 2019, decoupled weight decay), step t = 1, 2, ... for every
 * trained parameter element p with gradient g:
 *   m1 = β1·m1 + (1−β1)·g
 *   m2 = β2·m2 + (1−β2)·g²
 *   p -= lr · ( (m1 / (1−β1^t)) / (sqrt(m2 / (1−β2^t)) + eps) + wd·p )
 * wd is applied only where param_decays (2-D weights: linear layers, embeddings, the router);
 * norms and biases (1-D) get none. The balancing bias e_score_correction_bias is not trained
 * here at all (param_trained = 0): it has its own update rule in the trainer, and its moments
 * and value are left as they are even when its gradient slot holds non-zero values.
 * Shapes: params, grads, mom1 and mom2 are all laid out like m->arena (n_floats); each table row
 * is visited once (routed experts are one row each; a tied lm_head has no row of its own).
 * Precision: the element update is fp32 as in llm.c; the bias corrections 1−β^t are computed in
 * double from the float β (t can be large, and 1−β2 is small) and rounded once.
 *
 * Global norm: sqrt(Σ g²) over the trained parameters, accumulated in double in table order.
 * Clipping multiplies exactly those gradients by factor = (float)(max_norm / norm) when
 * norm > max_norm > 0 (NaN norms compare false and are never "clipped": the trainer skips such
 * steps), and returns the factor (1 when nothing was done).
 *
 * Schedules (lr at 0-based step s; all arithmetic in double):
 *   warmup, s < warmup:      lr_max · (s+1) / warmup     (ramps up from lr_max/warmup; step
 *                                                          warmup−1 is the first at lr_max)
 *   constant:                lr_max
 *   cosine:                  p = (s − warmup) / (total − 1 − warmup), clamped to [0, 1],
 *                            lr_min + (lr_max − lr_min)·(1 + cos(π·p))/2
 *                            (the last step, total−1, is at lr_min)
 *   WSD (warmup-stable-decay): lr_max until the last decay_steps steps, then linear:
 *                            lr_max + (lr_min − lr_max)·(s − (total − decay_steps) + 1)/decay_steps
 *                            (the last step, total−1, is at lr_min; later steps stay there)
 */
#include "train_parts.h"

#include <math.h>
#include <string.h>

int param_decays(const char *name, int ndim) {
    if (ndim < 2) return 0;
    if (strstr(name, "norm") || strstr(name, "bias")) return 0;
    return 1;
}

int param_trained(const char *name) { return strstr(name, "e_score_correction_bias") == NULL; }

void adamw_step(Model *m, const Model *grads, float *mom1, float *mom2, const AdamWConfig *c, float lr, int t) {
    const float b1 = c->beta1, b2 = c->beta2, eps = c->eps;
    /* bias corrections, in double: 1 − β^t */
    const float bc1 = (float)(1.0 - pow((double)b1, (double)t));
    const float bc2 = (float)(1.0 - pow((double)b2, (double)t));
    for (size_t i = 0; i < m->n_params; i++) {
        const ParamInfo *pi = &m->params[i];
        if (!param_trained(pi->name)) continue;
        size_t off = (size_t)(pi->ptr - m->arena);
        float *p = m->arena + off, *m1 = mom1 + off, *m2 = mom2 + off;
        const float *g = grads->arena + off;
        const float wd = param_decays(pi->name, pi->ndim) ? c->weight_decay : 0.0f;
        for (size_t k = 0; k < pi->numel; k++) {
            m1[k] = b1 * m1[k] + (1.0f - b1) * g[k];
            m2[k] = b2 * m2[k] + (1.0f - b2) * g[k] * g[k];
            float mhat = m1[k] / bc1, vhat = m2[k] / bc2;
            p[k] -= lr * (mhat / (sqrtf(vhat) + eps) + wd * p[k]);
        }
    }
}

double grad_global_norm(const Model *grads) {
    double sum = 0.0;
    for (size_t i = 0; i < grads->n_params; i++) {
        const ParamInfo *pi = &grads->params[i];
        if (!param_trained(pi->name)) continue;
        for (size_t k = 0; k < pi->numel; k++) sum += (double)pi->ptr[k] * (double)pi->ptr[k];
    }
    return sqrt(sum);
}

float grad_clip(Model *grads, double norm, double max_norm) {
    if (!(max_norm > 0.0) || !(norm > max_norm)) return 1.0f;
    float factor = (float)(max_norm / norm);
    for (size_t i = 0; i < grads->n_params; i++) {
        const ParamInfo *pi = &grads->params[i];
        if (!param_trained(pi->name)) continue;
        for (size_t k = 0; k < pi->numel; k++) pi->ptr[k] *= factor;
    }
    return factor;
}

float schedule_lr(const Schedule *s, int step) {
    double lr_max = s->lr_max, lr_min = s->lr_min;
    if (step < 0) step = 0;
    if (s->warmup > 0 && step < s->warmup) return (float)(lr_max * (double)(step + 1) / (double)s->warmup);
    switch (s->kind) {
    case SCHED_COSINE: {
        double span = (double)s->total - 1.0 - (double)s->warmup;
        double p = span > 0 ? ((double)step - (double)s->warmup) / span : 1.0;
        if (p < 0) p = 0;
        if (p > 1) p = 1;
        return (float)(lr_min + (lr_max - lr_min) * 0.5 * (1.0 + cos(M_PI * p)));
    }
    case SCHED_WSD: {
        if (s->decay_steps <= 0) return (float)lr_max;
        long long start = (long long)s->total - s->decay_steps;  /* first decay step */
        if (step < start) return (float)lr_max;
        double f = (double)(step - start + 1) / (double)s->decay_steps;
        if (f > 1) f = 1;
        return (float)(lr_max + (lr_min - lr_max) * f);
    }
    case SCHED_CONSTANT:
    default:
        return (float)lr_max;
    }
}
