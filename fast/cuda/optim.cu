/* optim.cu (CUDA twin of ref/optim.c): AdamW, the gradient's global norm and clipping over every
 * trained parameter, on device arenas.
 *   m1 = β1·m1 + (1−β1)·g;  m2 = β2·m2 + (1−β2)·g²
 *   p −= lr · ( (m1/(1−β1^t)) / (sqrt(m2/(1−β2^t)) + eps) + wd·p )
 * The arguments are the reference's; `m` and `grads` are device views of Models
 * (cuda_model_view: the host parameter table with every pointer moved into a device arena), and
 * mom1, mom2 are device arrays laid out like the arena. Which tensors are trained and decayed is
 * the reference's rule (param_trained, param_decays), decided on the host; the trained tensors
 * become runs of (offset, count, decay) that one kernel walks, one thread per element.
 * AdamW and clipping are the reference's arithmetic element for element (no fused multiply-add,
 * IEEE division and square root: CUDA's defaults), so they are bit-identical to it. The norm adds
 * Σ g² per block in double (a fixed tree), then the blocks in order on the host: the same sum
 * every run, in another order than the reference's (TOL_DOUBLE_SUM_REL). */
#include <stdlib.h>
#include <string.h>

#include "cuda/internal.cuh"
extern "C" {
#include "train_parts.h"
}

#define OPT_THREADS 256

/* the trained tensors as runs of the arena: off, n, decays (device copies, rebuilt per call:
 * a few hundred entries) */
typedef struct {
    size_t off, n;
    int decays;
} Run;

/* the runs of the trained tensors, uploaded into the workspace; returns their count (0 on failure
 * or when none) and the total element count in *total. `prefix` gets each run's first element
 * index in the concatenation (so a thread finds its run by binary search); `extra` bytes after
 * them (16-byte aligned) are the caller's. */
static int upload_runs(const Model *m, Run **d_runs, size_t **d_prefix, size_t *total, size_t extra_bytes, void **extra,
                       cudaStream_t st) {
    int n = 0;
    for (size_t i = 0; i < m->n_params; i++) n += param_trained(m->params[i].name) != 0;
    *total = 0;
    if (!n) return 0;
    Run *h = (Run *)malloc((size_t)n * sizeof(Run));
    size_t *pre = (size_t *)malloc(((size_t)n + 1) * sizeof(size_t));
    size_t front = ((size_t)n * sizeof(Run) + ((size_t)n + 1) * sizeof(size_t) + 15) / 16 * 16;
    void *ws = cuda_workspace(front + extra_bytes);
    if (!h || !pre || !ws) {
        if (ws) cuda_note_error(__FILE__, __LINE__, "optimizer", "out of host memory");
        free(h);
        free(pre);
        return 0;
    }
    int k = 0;
    pre[0] = 0;
    for (size_t i = 0; i < m->n_params; i++) {
        const ParamInfo *pi = &m->params[i];
        if (!param_trained(pi->name)) continue;
        h[k].off = (size_t)(pi->ptr - m->arena);
        h[k].n = pi->numel;
        h[k].decays = param_decays(pi->name, pi->ndim);
        pre[k + 1] = pre[k] + pi->numel;
        k++;
    }
    *total = pre[n];
    *d_runs = (Run *)ws;
    *d_prefix = (size_t *)((Run *)ws + n);
    if (extra) *extra = (char *)ws + front;
    CU_CHECK(cudaMemcpyAsync(*d_runs, h, (size_t)n * sizeof(Run), cudaMemcpyHostToDevice, st));
    CU_CHECK(cudaMemcpyAsync(*d_prefix, pre, ((size_t)n + 1) * sizeof(size_t), cudaMemcpyHostToDevice, st));
    CU_CHECK(cudaStreamSynchronize(st)); /* the host arrays go now */
    free(h);
    free(pre);
    return n;
}

/* element e of the concatenation: its run (binary search over the prefix sums) and arena index */
__device__ static size_t run_index(const Run *runs, const size_t *pre, int n, size_t e, int *r) {
    int lo = 0, hi = n - 1;
    while (lo < hi) {
        int mid = (lo + hi + 1) / 2;
        if (pre[mid] <= e) lo = mid;
        else hi = mid - 1;
    }
    *r = lo;
    return runs[lo].off + (e - pre[lo]);
}

__global__ static void adamw_kernel(float *p, const float *g, float *m1, float *m2, const Run *runs, const size_t *pre,
                                    int n_runs, size_t total, float b1, float b2, float eps, float wd_all, float lr,
                                    float bc1, float bc2) {
    size_t e = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (e >= total) return;
    int r;
    size_t k = run_index(runs, pre, n_runs, e, &r);
    const float wd = runs[r].decays ? wd_all : 0.0f;
    m1[k] = b1 * m1[k] + (1.0f - b1) * g[k];
    m2[k] = b2 * m2[k] + (1.0f - b2) * g[k] * g[k];
    float mhat = m1[k] / bc1, vhat = m2[k] / bc2;
    p[k] -= lr * (mhat / (sqrtf(vhat) + eps) + wd * p[k]);
}

extern "C" void adamw_step_cuda(Model *m, const Model *grads, float *mom1, float *mom2, const AdamWConfig *c, float lr,
                                int t, cudaStream_t st) {
    const float bc1 = (float)(1.0 - pow((double)c->beta1, (double)t));
    const float bc2 = (float)(1.0 - pow((double)c->beta2, (double)t));
    Run *runs;
    size_t *pre, total;
    int n = upload_runs(m, &runs, &pre, &total, 0, NULL, st);
    if (!n || !total) return;
    adamw_kernel<<<cdiv(total, OPT_THREADS), OPT_THREADS, 0, st>>>(m->arena, grads->arena, mom1, mom2, runs, pre, n, total,
                                                                   c->beta1, c->beta2, c->eps, c->weight_decay, lr, bc1,
                                                                   bc2);
    LAUNCH_CHECK("adamw");
}

__global__ static void sumsq_kernel(double *part, const float *g, const Run *runs, const size_t *pre, int n_runs,
                                    size_t total) {
    __shared__ double sh[32];
    double s = 0.0;
    for (size_t e = (size_t)blockIdx.x * blockDim.x + threadIdx.x; e < total; e += (size_t)gridDim.x * blockDim.x) {
        int r;
        float v = g[run_index(runs, pre, n_runs, e, &r)];
        s += (double)v * (double)v;
    }
    s = block_sum_d(s, sh);
    if (threadIdx.x == 0) part[blockIdx.x] = s;
}

/* a fixed grid, so the tree and the block order (and the sum) are the same every run */
#define NORM_BLOCKS 264

extern "C" double grad_global_norm_cuda(const Model *grads, cudaStream_t st) {
    Run *runs;
    size_t *pre, total;
    void *extra = NULL;
    int n = upload_runs(grads, &runs, &pre, &total, NORM_BLOCKS * sizeof(double), &extra, st);
    if (!n || !total) return 0.0;
    double *part = (double *)extra, host[NORM_BLOCKS];
    sumsq_kernel<<<NORM_BLOCKS, OPT_THREADS, 0, st>>>(part, grads->arena, runs, pre, n, total);
    LAUNCH_CHECK("grad_norm");
    CU_CHECK(cudaMemcpyAsync(host, part, sizeof host, cudaMemcpyDeviceToHost, st));
    CU_CHECK(cudaStreamSynchronize(st));
    double sum = 0.0;
    for (int b = 0; b < NORM_BLOCKS; b++) sum += host[b]; /* the blocks in order */
    return sqrt(sum);
}

__global__ static void scale_kernel(float *g, const Run *runs, const size_t *pre, int n_runs, size_t total, float factor) {
    size_t e = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (e >= total) return;
    int r;
    g[run_index(runs, pre, n_runs, e, &r)] *= factor;
}

extern "C" float grad_clip_cuda(Model *grads, double norm, double max_norm, cudaStream_t st) {
    if (!(max_norm > 0.0) || !(norm > max_norm)) return 1.0f;
    const float factor = (float)(max_norm / norm);
    Run *runs;
    size_t *pre, total;
    int n = upload_runs(grads, &runs, &pre, &total, 0, NULL, st);
    if (!n || !total) return factor;
    scale_kernel<<<cdiv(total, OPT_THREADS), OPT_THREADS, 0, st>>>(grads->arena, runs, pre, n, total, factor);
    LAUNCH_CHECK("grad_clip");
    return factor;
}

/* ---- device views of Models ---- */

extern "C" int cuda_model_view(Model *view, const Model *host, float *d_arena) {
    /* everything not copied below stays zero: in particular the backend slot (dev, dev_free), so a
     * view never shares the host model's device context and nothing frees that context twice */
    memset(view, 0, sizeof *view);
    view->params = (ParamInfo *)malloc((host->n_params ? host->n_params : 1) * sizeof(ParamInfo));
    if (!view->params) return -1;
    for (size_t i = 0; i < host->n_params; i++) {
        view->params[i] = host->params[i];
        view->params[i].ptr = d_arena + (host->params[i].ptr - host->arena);
    }
    view->n_params = host->n_params;
    view->arena = d_arena;
    view->n_floats = host->n_floats;
    view->cfg = host->cfg;
    return 0;
}

extern "C" void cuda_model_view_free(Model *view) {
    free(view->params);
    memset(view, 0, sizeof *view);
}
