/* common.cu: the CUDA contexts. The device context (CudaDevice, internal.cuh), one per process:
 * the device check, one stream, one cuBLAS handle in pedantic fp32 mode, the sticky error record,
 * the grow-only workspace and the list of live model contexts. And each model's context
 * (CudaModelCtx): created on the model's first use and hung on Model.dev, freed by model_free
 * through Model.dev_free.
 *
 * Strict fp32 matrix products: CUBLAS_PEDANTIC_MATH forbids TF32 tensor-core products and any
 * reduced-precision internal reduction; cuBLAS's own order of additions remains (see
 * docs/cuda.md). Everything here is single-threaded host code, like the rest of the library tier. */
#include <stdio.h>
#include <string.h>

#include "cuda/internal.cuh"

/* the one device context: every function reaches it through cuda_device() */
static CudaDevice the_device;

CudaDevice *cuda_device(void) { return &the_device; }

void cuda_note_error(const char *file, int line, const char *what, const char *reason) {
    CudaDevice *g = cuda_device();
    if (g->err_set) return;
    g->err_set = 1;
    snprintf(g->err, sizeof g->err, "cuda: %s:%d: %s: %s", file, line, what, reason);
}

extern "C" int cuda_backend_check(SeekErr *err) {
    CudaDevice *g = cuda_device();
    if (!g->probed) {
        g->probed = 1;
        int n = 0;
        cudaError_t e = cudaGetDeviceCount(&n);
        if (e == cudaErrorInsufficientDriver || e == cudaErrorNoDevice)
            snprintf(g->why, sizeof g->why, "no CUDA GPU or driver on this machine (cudaGetDeviceCount: %s)", cudaGetErrorString(e));
        else if (e != cudaSuccess)
            snprintf(g->why, sizeof g->why, "no usable CUDA device here (cudaGetDeviceCount: %s)", cudaGetErrorString(e));
        else if (n == 0)
            snprintf(g->why, sizeof g->why, "no CUDA device here");
        else {
            cudaDeviceProp p;
            e = cudaGetDeviceProperties(&p, 0);
            if (e != cudaSuccess) snprintf(g->why, sizeof g->why, "CUDA device 0: %s", cudaGetErrorString(e));
            else g->usable = 1;
        }
        cudaGetLastError(); /* the probe's failure is reported here, not by the next launch */
    }
    if (g->usable) return 0;
    return seek_fail(err, "--backend cuda: %s; use --backend cpu or ref (make test-cuda runs on a GPU machine)", g->why);
}

extern "C" cudaStream_t cuda_stream(void) {
    CudaDevice *g = cuda_device();
    /* a blocking stream: it orders itself after work on the legacy default stream (the setup's
     * cudaMemcpy/cudaMemset and the tests' calls), so nothing races with an upload */
    if (!g->stream) CU_CHECK(cudaStreamCreateWithFlags(&g->stream, cudaStreamDefault));
    return g->stream;
}

cublasHandle_t cuda_cublas(cudaStream_t st) {
    CudaDevice *g = cuda_device();
    if (!g->blas) {
        cublasStatus_t s = cublasCreate(&g->blas);
        if (s != CUBLAS_STATUS_SUCCESS) {
            cuda_note_error(__FILE__, __LINE__, "cublasCreate", cublasGetStatusString(s));
            g->blas = NULL;
            return NULL;
        }
        /* strict fp32: no TF32, no reduced-precision reductions */
        CUBLAS_CHECK(cublasSetMathMode(g->blas, CUBLAS_PEDANTIC_MATH));
    }
    CUBLAS_CHECK(cublasSetStream(g->blas, st));
    return g->blas;
}

extern "C" int cuda_check_error(SeekErr *err) {
    CudaDevice *g = cuda_device();
    if (!g->err_set) return 0;
    g->err_set = 0;
    return seek_fail(err, "%s", g->err);
}

float *cuda_dalloc(size_t n, int *rc) {
    void *p = NULL;
    if (*rc) return NULL;
    if (cudaMalloc(&p, (n ? n : 1) * sizeof(float)) != cudaSuccess) {
        cudaGetLastError();
        cuda_note_error(__FILE__, __LINE__, "cudaMalloc", "out of device memory");
        *rc = -1;
        return NULL;
    }
    CU_CHECK(cudaMemset(p, 0, (n ? n : 1) * sizeof(float)));
    return (float *)p;
}

void cuda_dfree(void *p) {
    if (p) CU_CHECK(cudaFree(p));
}

/* p, a pointer into the host model's arena, moved to the same offset of d_arena */
static float *rebase_one(const Model *host, float *d_arena, const float *p, int *rc) {
    if (!p || *rc) return NULL;
    if (p < host->arena || p >= host->arena + host->n_floats) {
        cuda_note_error(__FILE__, __LINE__, "device tables", "a tensor lies outside the model's arena");
        *rc = -1;
        return NULL;
    }
    return d_arena + (p - host->arena);
}

int cuda_rebase_model(const Model *host, float *d_arena, CudaModelTables *t) {
    int rc = 0;
    const int nl = host->cfg.L + host->cfg.mtp_depth, D = host->cfg.mtp_depth;
    t->layers = (LayerWeights *)calloc((size_t)nl, sizeof(LayerWeights));
    t->mtp = (MtpWeights *)calloc((size_t)D + 1, sizeof(MtpWeights));
    if (!t->layers || !t->mtp) {
        cuda_note_error(__FILE__, __LINE__, "device tables", "out of host memory");
        rc = -1;
    }
    for (int l = 0; !rc && l < nl; l++) {
        LayerWeights *d = &t->layers[l];
        *d = host->layers[l];
        float **f[] = {&d->attn_norm, &d->wq, &d->wk, &d->wv, &d->wq_a, &d->q_a_norm, &d->wq_b, &d->wkv_a,
                       &d->kv_a_norm, &d->wkv_b, &d->wo, &d->mlp_norm, &d->w_gate, &d->w_up, &d->w_down,
                       &d->router, &d->router_bias, &d->exp_gate, &d->exp_up, &d->exp_down, &d->sh_gate,
                       &d->sh_up, &d->sh_down};
        for (size_t i = 0; i < sizeof f / sizeof f[0]; i++) *f[i] = rebase_one(host, d_arena, *f[i], &rc);
    }
    for (int k = 0; !rc && k < D; k++) {
        const MtpWeights *h = &host->mtp[k];
        MtpWeights *d = &t->mtp[k];
        d->enorm = rebase_one(host, d_arena, h->enorm, &rc);
        d->hnorm = rebase_one(host, d_arena, h->hnorm, &rc);
        d->eh_proj = rebase_one(host, d_arena, h->eh_proj, &rc);
        d->head_norm = rebase_one(host, d_arena, h->head_norm, &rc);
    }
    t->wte = rebase_one(host, d_arena, host->wte, &rc);
    t->final_norm = rebase_one(host, d_arena, host->final_norm, &rc);
    t->lm_head = rebase_one(host, d_arena, host->lm_head, &rc);
    if (rc) cuda_free_model_tables(t);
    return rc;
}

void cuda_free_model_tables(CudaModelTables *t) {
    free(t->layers);
    free(t->mtp);
    memset(t, 0, sizeof *t);
}

extern "C" void *cuda_workspace(size_t bytes) {
    CudaDevice *g = cuda_device();
    if (bytes <= g->ws_bytes) return g->ws;
    /* grow: the old space may still be in use by queued work */
    CU_CHECK(cudaDeviceSynchronize());
    if (g->ws) CU_CHECK(cudaFree(g->ws));
    g->ws = NULL;
    g->ws_bytes = 0;
    size_t want = bytes < ((size_t)1 << 20) ? ((size_t)1 << 20) : bytes;
    if (cudaMalloc(&g->ws, want) != cudaSuccess) {
        cudaGetLastError();
        cuda_note_error(__FILE__, __LINE__, "cudaMalloc(workspace)", "out of device memory");
        g->ws = NULL;
        return NULL;
    }
    g->ws_bytes = want;
    return g->ws;
}

/* ---- model contexts ---- */

CudaModelCtx *cuda_model_ctx(const Model *m) {
    if (m->dev) {
        if (m->dev_free == cuda_model_ctx_free) return (CudaModelCtx *)m->dev;
        cuda_note_error(__FILE__, __LINE__, "model context", "the model's backend slot holds another backend's copy");
        return NULL;
    }
    CudaModelCtx *x = (CudaModelCtx *)calloc(1, sizeof *x);
    if (!x) {
        cuda_note_error(__FILE__, __LINE__, "model context", "out of host memory");
        return NULL;
    }
    CudaDevice *g = cuda_device();
    x->next = g->models;
    g->models = x;
    /* const cast: the slot is the backend's cache, not the model's values (its weights stay as they are) */
    Model *owner = (Model *)m;
    owner->dev = x;
    owner->dev_free = cuda_model_ctx_free;
    return x;
}

/* a context's device memory, MTP first, the weights last (what each part was built on) */
static void model_ctx_empty(CudaModelCtx *x) {
    cuda_fast_empty(x);
    cuda_mtp_empty(x);
    cuda_backward_empty(x);
    cuda_forward_empty(x);
}

extern "C" void cuda_model_ctx_free(void *dev) {
    CudaModelCtx *x = (CudaModelCtx *)dev;
    CudaDevice *g = cuda_device();
    if (!x) return;
    if (g->stream) CU_CHECK(cudaStreamSynchronize(g->stream)); /* queued work may still read it */
    model_ctx_empty(x);
    for (CudaModelCtx **p = &g->models; *p; p = &(*p)->next)
        if (*p == x) {
            *p = x->next;
            break;
        }
    free(x);
}

extern "C" long cuda_model_uploads(const Model *m) {
    return m->dev && m->dev_free == cuda_model_ctx_free ? ((const CudaModelCtx *)m->dev)->uploads : 0;
}

extern "C" int cuda_live_models(void) {
    int n = 0;
    for (const CudaModelCtx *x = cuda_device()->models; x; x = x->next) n++;
    return n;
}

/* Frees everything the device holds: every live model's device copy (the contexts stay with their
 * Models, empty, so model_free still frees each once and a later call uploads again), the
 * workspace, the cuBLAS handle and the stream. */
extern "C" void cuda_release(void) {
    CudaDevice *g = cuda_device();
    if (!g->usable) return;
    if (g->stream) CU_CHECK(cudaStreamSynchronize(g->stream));
    for (CudaModelCtx *x = g->models; x; x = x->next) model_ctx_empty(x);
    if (g->ws) CU_CHECK(cudaFree(g->ws));
    g->ws = NULL;
    g->ws_bytes = 0;
    cuda_fast_release();
    if (g->blas) cublasDestroy(g->blas);
    g->blas = NULL;
    if (g->stream) CU_CHECK(cudaStreamDestroy(g->stream));
    g->stream = NULL;
}
