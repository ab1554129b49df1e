/* optim.c (CPU twin of ref/optim.c): AdamW, the gradient's global norm and clipping over every
 * trained parameter, split over the cores.
 *   m1 = β1·m1 + (1−β1)·g;  m2 = β2·m2 + (1−β2)·g²
 *   p −= lr · ( (m1/(1−β1^t)) / (sqrt(m2/(1−β2^t)) + eps) + wd·p )
 * Element by element the arithmetic is the reference's, in the same order, so adamw_step_cpu and
 * grad_clip_cpu give bit-identical results (the tests compare them exactly); only the elements
 * are shared out between threads. All the trained tensors are one run of elements in parameter
 * order, cut into one equal span per thread (multiples of 16), so each function is one parallel
 * region rather than one per tensor (a region costs tens of µs on a shared 2-core machine, and a
 * model has hundreds of tensors). The norm adds each thread's partial sum in thread order: its
 * order of addition differs from the reference's (TOL_DOUBLE_SUM_REL) but not from run to run. Which tensors are trained and
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

/* below this many trained elements one thread does it all, with no OpenMP construct */
#define OPTIM_PAR_MIN 32768
#define OPTIM_MAX_THREADS 256

static size_t trained_floats(const Model *m) {
    size_t n = 0;
    for (size_t i = 0; i < m->n_params; i++)
        if (param_trained(m->params[i].name)) n += m->params[i].numel;
    return n;
}

/* The span [lo, hi) of the trained elements (counted in parameter order) that thread t of nt
 * handles. */
static void thread_span(size_t total, int t, int nt, size_t *lo, size_t *hi) {
    size_t chunk = (total + (size_t)nt - 1) / (size_t)nt;
    chunk = (chunk + 15) / 16 * 16;
    *lo = (size_t)t * chunk < total ? (size_t)t * chunk : total;
    *hi = *lo + chunk < total ? *lo + chunk : total;
}

/* The walk over the trained tensors that overlap [lo, hi): from tensor *i (at trained element
 * *pos) on, finds the next one, sets *pi, its arena offset *off and the part [*k0, *k1) of its
 * elements inside the span, and returns 1; 0 when there is none left. */
static int next_overlap(const Model *m, size_t lo, size_t hi, size_t *i, size_t *pos, const ParamInfo **pi, size_t *off,
                        long *k0, long *k1) {
    for (; *i < m->n_params; (*i)++) {
        const ParamInfo *p = &m->params[*i];
        if (!param_trained(p->name)) continue;
        const size_t start = *pos, end = start + p->numel;
        if (start >= hi) return 0;
        *pos = end;
        if (end <= lo) continue;
        *pi = p;
        *off = (size_t)(p->ptr - m->arena);
        *k0 = (long)(lo > start ? lo - start : 0);
        *k1 = (long)(hi < end ? hi - start : p->numel);
        (*i)++;
        return 1;
    }
    return 0;
}

static void adamw_span(Model *m, const Model *grads, float *mom1, float *mom2, const AdamWConfig *c, float lr,
                       float bc1, float bc2, size_t lo, size_t hi) {
    const float b1 = c->beta1, b2 = c->beta2, eps = c->eps;
    size_t i = 0, pos = 0, off;
    long k0, k1;
    const ParamInfo *pi;
    while (next_overlap(m, lo, hi, &i, &pos, &pi, &off, &k0, &k1)) {
        float *p = m->arena + off, *m1 = mom1 + off, *m2 = mom2 + off;
        const float *g = grads->arena + off;
        const float wd = param_decays(pi->name, pi->ndim) ? c->weight_decay : 0.0f;
#pragma omp simd
        for (long k = k0; k < k1; k++) {
            m1[k] = b1 * m1[k] + (1.0f - b1) * g[k];
            m2[k] = b2 * m2[k] + (1.0f - b2) * g[k] * g[k];
            float mhat = m1[k] / bc1, vhat = m2[k] / bc2;
            p[k] -= lr * (mhat / (sqrtf(vhat) + eps) + wd * p[k]);
        }
    }
}

void adamw_step_cpu(Model *m, const Model *grads, float *mom1, float *mom2, const AdamWConfig *c, float lr, int t) {
    const float bc1 = (float)(1.0 - pow((double)c->beta1, (double)t));
    const float bc2 = (float)(1.0 - pow((double)c->beta2, (double)t));
    const size_t total = trained_floats(m);
    if (total <= OPTIM_PAR_MIN || cpu_team() < 2) {
        adamw_span(m, grads, mom1, mom2, c, lr, bc1, bc2, 0, total);
        return;
    }
#pragma omp parallel
    {
        size_t lo, hi;
        thread_span(total, cpu_thread(), cpu_thread_count(), &lo, &hi);
        adamw_span(m, grads, mom1, mom2, c, lr, bc1, bc2, lo, hi);
    }
}

static double sumsq_span(const Model *grads, size_t lo, size_t hi) {
    double s = 0.0;
    size_t i = 0, pos = 0, off;
    long k0, k1;
    const ParamInfo *pi;
    while (next_overlap(grads, lo, hi, &i, &pos, &pi, &off, &k0, &k1)) {
        const float *g = grads->arena + off;
#pragma omp simd reduction(+ : s)
        for (long k = k0; k < k1; k++) s += (double)g[k] * (double)g[k];
    }
    return s;
}

double grad_global_norm_cpu(const Model *grads) {
    const size_t total = trained_floats(grads);
    int nt = cpu_team();
    if (total <= OPTIM_PAR_MIN || nt < 2) return sqrt(sumsq_span(grads, 0, total));
    if (nt > OPTIM_MAX_THREADS) nt = OPTIM_MAX_THREADS;
    double part[OPTIM_MAX_THREADS] = {0};
#pragma omp parallel num_threads(nt)
    {
        size_t lo, hi;
        thread_span(total, cpu_thread(), cpu_thread_count(), &lo, &hi);
        part[cpu_thread()] = sumsq_span(grads, lo, hi);
    }
    double sum = 0.0;
    for (int t = 0; t < nt; t++) sum += part[t]; /* thread order: the same sum every run */
    return sqrt(sum);
}

static void scale_span(Model *grads, float factor, size_t lo, size_t hi) {
    size_t i = 0, pos = 0, off;
    long k0, k1;
    const ParamInfo *pi;
    while (next_overlap(grads, lo, hi, &i, &pos, &pi, &off, &k0, &k1)) {
        float *g = grads->arena + off;
#pragma omp simd
        for (long k = k0; k < k1; k++) g[k] *= factor;
    }
}

float grad_clip_cpu(Model *grads, double norm, double max_norm) {
    if (!(max_norm > 0.0) || !(norm > max_norm)) return 1.0f;
    const float factor = (float)(max_norm / norm);
    const size_t total = trained_floats(grads);
    if (total <= OPTIM_PAR_MIN || cpu_team() < 2) {
        scale_span(grads, factor, 0, total);
        return factor;
    }
#pragma omp parallel
    {
        size_t lo, hi;
        thread_span(total, cpu_thread(), cpu_thread_count(), &lo, &hi);
        scale_span(grads, factor, lo, hi);
    }
    return factor;
}
#endif
