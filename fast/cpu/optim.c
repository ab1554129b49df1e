/* optim.c (CPU twin of ref/optim.c): AdamW, the gradient's global norm and clipping over every
 * trained parameter, split over the cores.
 *   m1 = β1·m1 + (1−β1)·g;  m2 = β2·m2 + (1−β2)·g²
 *   p −= lr · ( (m1/(1−β1^t)) / (sqrt(m2/(1−β2^t)) + eps) + wd·p )
 * Element by element the arithmetic is the reference's, in the same order, so adamw_step_cpu and
 * grad_clip_cpu give bit-identical results (the tests compare them exactly); only the elements
 * are shared out between threads (OpenMP, static schedule). The norm's double sum is an OpenMP
 * reduction, so its order of addition differs (TOL_DOUBLE_SUM_REL). Which tensors are trained and
 * decayed is the reference's rule (param_trained, param_decays). Shapes: params, grads, mom1 and
 * mom2 all laid out like m->arena.
 * Speed: the loops are `omp simd` as well, and this file is compiled with -fno-math-errno (a
 * target-specific flag in the Makefile): with errno, each sqrtf keeps a scalar call for the
 * negative-input case and the update cannot be vectorised. sqrtf's value is IEEE-exact either way (m2 >= 0), so
 * the results stay bit-identical to the reference; only errno is no longer set. The norm's sum
 * runs in vector lanes of doubles (another order of addition, within TOL_DOUBLE_SUM_REL). */
#ifdef SEEK_HAVE_BLAS
#include <math.h>

#include "cpu/cpu.h"
#include "train_parts.h"

/* below this many elements a tensor is updated on one core (a parallel region costs ~µs) */
#define OPTIM_PAR_MIN 32768

void adamw_step_cpu(Model *m, const Model *grads, float *mom1, float *mom2, const AdamWConfig *c, float lr, int t) {
    const float b1 = c->beta1, b2 = c->beta2, eps = c->eps;
    const float bc1 = (float)(1.0 - pow((double)b1, (double)t));
    const float bc2 = (float)(1.0 - pow((double)b2, (double)t));
    for (size_t i = 0; i < m->n_params; i++) {
        const ParamInfo *pi = &m->params[i];
        if (!param_trained(pi->name)) continue;
        size_t off = (size_t)(pi->ptr - m->arena);
        float *p = m->arena + off, *m1 = mom1 + off, *m2 = mom2 + off;
        const float *g = grads->arena + off;
        const float wd = param_decays(pi->name, pi->ndim) ? c->weight_decay : 0.0f;
        const long n = (long)pi->numel;
#pragma omp parallel for simd schedule(static) if (n > OPTIM_PAR_MIN)
        for (long k = 0; k < n; k++) {
            m1[k] = b1 * m1[k] + (1.0f - b1) * g[k];
            m2[k] = b2 * m2[k] + (1.0f - b2) * g[k] * g[k];
            float mhat = m1[k] / bc1, vhat = m2[k] / bc2;
            p[k] -= lr * (mhat / (sqrtf(vhat) + eps) + wd * p[k]);
        }
    }
}

double grad_global_norm_cpu(const Model *grads) {
    double sum = 0.0;
    for (size_t i = 0; i < grads->n_params; i++) {
        const ParamInfo *pi = &grads->params[i];
        if (!param_trained(pi->name)) continue;
        const float *g = pi->ptr;
        const long n = (long)pi->numel;
        double s = 0.0;
#pragma omp parallel for simd schedule(static) reduction(+ : s) if (n > OPTIM_PAR_MIN)
        for (long k = 0; k < n; k++) s += (double)g[k] * (double)g[k];
        sum += s;
    }
    return sqrt(sum);
}

float grad_clip_cpu(Model *grads, double norm, double max_norm) {
    if (!(max_norm > 0.0) || !(norm > max_norm)) return 1.0f;
    const float factor = (float)(max_norm / norm);
    for (size_t i = 0; i < grads->n_params; i++) {
        const ParamInfo *pi = &grads->params[i];
        if (!param_trained(pi->name)) continue;
        float *g = pi->ptr;
        const long n = (long)pi->numel;
#pragma omp parallel for simd schedule(static) if (n > OPTIM_PAR_MIN)
        for (long k = 0; k < n; k++) g[k] *= factor;
    }
    return factor;
}
#endif
