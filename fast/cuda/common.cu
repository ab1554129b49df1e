/* common.cu: the CUDA context every twin shares: the device check, one stream, one cuBLAS handle
 * in pedantic fp32 mode, the sticky error record and the grow-only workspace.
 *
 * Strict fp32 matrix products: CUBLAS_PEDANTIC_MATH forbids TF32 tensor-core products and any
 * reduced-precision internal reduction; cuBLAS's own order of additions remains (see
 * docs/cuda.md). One handle and one stream per process; everything here is single-threaded
 * host code, like the rest of the library tier. */
#include <stdio.h>
#include <string.h>

#include "cuda/internal.cuh"

static struct {
    int probed, usable;
    char why[256];
    cudaStream_t stream;
    cublasHandle_t blas;
    int err_set;
    char err[SEEK_ERR_LEN];
    void *ws;
    size_t ws_bytes;
} g;

extern "C" void cuda_forward_release(void); /* forward.cu */
extern "C" void cuda_backward_release(void); /* backward.cu */

void cuda_note_error(const char *file, int line, const char *what, const char *reason) {
    if (g.err_set) return;
    g.err_set = 1;
    snprintf(g.err, sizeof g.err, "cuda: %s:%d: %s: %s", file, line, what, reason);
}

extern "C" int cuda_backend_check(SeekErr *err) {
    if (!g.probed) {
        g.probed = 1;
        int n = 0;
        cudaError_t e = cudaGetDeviceCount(&n);
        if (e == cudaErrorInsufficientDriver || e == cudaErrorNoDevice)
            snprintf(g.why, sizeof g.why, "no CUDA GPU or driver on this machine (cudaGetDeviceCount: %s)", cudaGetErrorString(e));
        else if (e != cudaSuccess)
            snprintf(g.why, sizeof g.why, "no usable CUDA device here (cudaGetDeviceCount: %s)", cudaGetErrorString(e));
        else if (n == 0)
            snprintf(g.why, sizeof g.why, "no CUDA device here");
        else {
            cudaDeviceProp p;
            e = cudaGetDeviceProperties(&p, 0);
            if (e != cudaSuccess) snprintf(g.why, sizeof g.why, "CUDA device 0: %s", cudaGetErrorString(e));
            else g.usable = 1;
        }
        cudaGetLastError(); /* the probe's failure is reported here, not by the next launch */
    }
    if (g.usable) return 0;
    return seek_fail(err, "--backend cuda: %s; use --backend cpu or ref (make test-cuda runs on a GPU machine)", g.why);
}

extern "C" cudaStream_t cuda_stream(void) {
    /* a blocking stream: it orders itself after work on the legacy default stream (the setup's
     * cudaMemcpy/cudaMemset and the tests' calls), so nothing races with an upload */
    if (!g.stream) CU_CHECK(cudaStreamCreateWithFlags(&g.stream, cudaStreamDefault));
    return g.stream;
}

cublasHandle_t cuda_cublas(cudaStream_t st) {
    if (!g.blas) {
        cublasStatus_t s = cublasCreate(&g.blas);
        if (s != CUBLAS_STATUS_SUCCESS) {
            cuda_note_error(__FILE__, __LINE__, "cublasCreate", cublasGetStatusString(s));
            g.blas = NULL;
            return NULL;
        }
        /* strict fp32: no TF32, no reduced-precision reductions */
        CUBLAS_CHECK(cublasSetMathMode(g.blas, CUBLAS_PEDANTIC_MATH));
    }
    CUBLAS_CHECK(cublasSetStream(g.blas, st));
    return g.blas;
}

extern "C" int cuda_check_error(SeekErr *err) {
    if (!g.err_set) return 0;
    g.err_set = 0;
    return seek_fail(err, "%s", g.err);
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

extern "C" void *cuda_workspace(size_t bytes) {
    if (bytes <= g.ws_bytes) return g.ws;
    /* grow: the old space may still be in use by queued work */
    CU_CHECK(cudaDeviceSynchronize());
    if (g.ws) CU_CHECK(cudaFree(g.ws));
    g.ws = NULL;
    g.ws_bytes = 0;
    size_t want = bytes < ((size_t)1 << 20) ? ((size_t)1 << 20) : bytes;
    if (cudaMalloc(&g.ws, want) != cudaSuccess) {
        cudaGetLastError();
        cuda_note_error(__FILE__, __LINE__, "cudaMalloc(workspace)", "out of device memory");
        g.ws = NULL;
        return NULL;
    }
    g.ws_bytes = want;
    return g.ws;
}

extern "C" void cuda_release(void) {
    if (!g.usable) return;
    cuda_backward_release();
    cuda_forward_release();
    if (g.stream) CU_CHECK(cudaStreamSynchronize(g.stream));
    if (g.ws) CU_CHECK(cudaFree(g.ws));
    g.ws = NULL;
    g.ws_bytes = 0;
    if (g.blas) cublasDestroy(g.blas);
    g.blas = NULL;
    if (g.stream) CU_CHECK(cudaStreamDestroy(g.stream));
    g.stream = NULL;
}
