/* common.cuh: what the kernel-lab programs (fast/lab/<op>.cu) share, after llm.c's dev/cuda/common.h:
 * checked CUDA and cuBLAS calls (a failure ends the program with file:line), the SKIP exit without
 * a GPU, a seeded generator, the comparison with the reference under the project's CUDA op
 * tolerances (ref/tolerances.h), cudaEvent timing (the median of several runs), and the warp
 * and block reductions the kernels use. Header-only: each lab program is one translation unit. */
#ifndef SEEK_LAB_COMMON_CUH
#define SEEK_LAB_COMMON_CUH

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "../../ref/tolerances.h"

#define CUDA_CHECK(call)                                                                             \
    do {                                                                                             \
        cudaError_t e_ = (call);                                                                     \
        if (e_ != cudaSuccess) {                                                                     \
            fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #call, cudaGetErrorString(e_));   \
            exit(1);                                                                                 \
        }                                                                                            \
    } while (0)
#define CUBLAS_CHECK(call)                                                                           \
    do {                                                                                             \
        cublasStatus_t s_ = (call);                                                                  \
        if (s_ != CUBLAS_STATUS_SUCCESS) {                                                           \
            fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #call, cublasGetStatusString(s_)); \
            exit(1);                                                                                 \
        }                                                                                            \
    } while (0)
/* after every launch */
#define LAUNCH_CHECK() CUDA_CHECK(cudaGetLastError())

static inline unsigned cdiv(size_t a, size_t b) { return (unsigned)((a + b - 1) / b); }

/* Without a usable GPU: one SKIP line and exit 77 (as tests/test_cuda.c). */
static inline void lab_require_gpu(const char *prog) {
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess || n == 0) {
        printf("SKIP %s: %s\n", prog, e != cudaSuccess ? cudaGetErrorString(e) : "no CUDA device");
        exit(77);
    }
    cudaDeviceProp p;
    CUDA_CHECK(cudaGetDeviceProperties(&p, 0));
    printf("%s: %s, sm_%d%d, %d SMs, %.0f GiB; tolerances: |diff| <= %g + %g|ref|, nmse <= %g\n", prog, p.name,
           p.major, p.minor, p.multiProcessorCount, p.totalGlobalMem / 1073741824.0, TOL_CUDA_OP_ATOL,
           TOL_CUDA_OP_RTOL, TOL_CUDA_OP_NMSE);
}

/* ---- data ---- */

static uint64_t lab_rng = 0x5eec0ffee1234567ull;
/* uniform in [-1, 1) (xorshift64*, 24 bits) */
static inline float lab_uniform(void) {
    lab_rng ^= lab_rng >> 12;
    lab_rng ^= lab_rng << 25;
    lab_rng ^= lab_rng >> 27;
    uint32_t r = (uint32_t)((lab_rng * 0x2545F4914F6CDD1Dull) >> 40);
    return (float)r / 8388608.0f - 1.0f;
}
static inline float *lab_host_uniform(size_t n) {
    float *h = (float *)malloc(n * sizeof(float));
    if (!h) {
        fprintf(stderr, "out of host memory (%zu floats)\n", n);
        exit(1);
    }
    for (size_t i = 0; i < n; i++) h[i] = lab_uniform();
    return h;
}
/* a device buffer of n floats filled with NaN (0xFF bytes), so an element a kernel forgets shows */
static inline float *lab_device_nan(size_t n) {
    float *d = NULL;
    CUDA_CHECK(cudaMalloc(&d, n * sizeof(float) + 1));
    CUDA_CHECK(cudaMemset(d, 0xFF, n * sizeof(float)));
    return d;
}
static inline float *lab_upload(const float *h, size_t n) {
    float *d = NULL;
    CUDA_CHECK(cudaMalloc(&d, n * sizeof(float) + 1));
    CUDA_CHECK(cudaMemcpy(d, h, n * sizeof(float), cudaMemcpyHostToDevice));
    return d;
}

/* ---- validation: per element |got − want| <= ATOL + RTOL·|want|, and nmse over the tensor ---- */

typedef struct {
    double max_diff, nmse;
    int ok;
} LabDiff;

static inline LabDiff lab_compare(const float *got, const float *want, size_t n) {
    LabDiff r = {0.0, 0.0, 1};
    double num = 0.0, den = 0.0;
    for (size_t i = 0; i < n; i++) {
        double g = got[i], w = want[i], d = fabs(g - w);
        if (!isfinite(g) || !isfinite(w)) { /* the lab feeds finite data: any NaN/Inf is a bug */
            r.ok = 0;
            r.max_diff = INFINITY;
            continue;
        }
        if (d > r.max_diff) r.max_diff = d;
        if (d > TOL_CUDA_OP_ATOL + TOL_CUDA_OP_RTOL * fabs(w)) r.ok = 0;
        num += d * d;
        den += w * w;
    }
    r.nmse = den > 0.0 ? num / den : num;
    if (!(r.nmse <= TOL_CUDA_OP_NMSE)) r.ok = 0;
    return r;
}
/* the worse of two comparisons (several shapes, one verdict) */
static inline LabDiff lab_worst(LabDiff a, LabDiff b) {
    LabDiff r = {fmax(a.max_diff, b.max_diff), fmax(a.nmse, b.nmse), a.ok && b.ok};
    return r;
}
static inline float *lab_download(const float *d, size_t n) {
    float *h = (float *)malloc(n * sizeof(float));
    if (!h) exit(1);
    CUDA_CHECK(cudaMemcpy(h, d, n * sizeof(float), cudaMemcpyDeviceToHost));
    return h;
}

/* ---- timing: one warm-up run, then the median of `reps` runs, each between two cudaEvents ---- */

static int lab_cmp_float(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}
template <typename F>
static float lab_time_ms(F run, int reps = 9) {
    float t[64];
    if (reps > 64) reps = 64;
    cudaEvent_t a, b;
    CUDA_CHECK(cudaEventCreate(&a));
    CUDA_CHECK(cudaEventCreate(&b));
    run();
    CUDA_CHECK(cudaDeviceSynchronize());
    for (int r = 0; r < reps; r++) {
        CUDA_CHECK(cudaEventRecord(a));
        run();
        CUDA_CHECK(cudaEventRecord(b));
        CUDA_CHECK(cudaEventSynchronize(b));
        CUDA_CHECK(cudaEventElapsedTime(&t[r], a, b));
    }
    CUDA_CHECK(cudaEventDestroy(a));
    CUDA_CHECK(cudaEventDestroy(b));
    qsort(t, (size_t)reps, sizeof(float), lab_cmp_float);
    return t[reps / 2];
}

/* ---- reductions (blockDim.x a multiple of 32) ---- */

/* xor butterflies: every lane ends with the same value (each step adds the same two numbers) */
__device__ inline float warp_sum_f(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
__device__ inline float warp_max_f(float v) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}
__device__ inline double warp_sum_d(double v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
/* over the block, returned to every thread; sh: 32 values of shared memory */
__device__ inline double block_sum_d(double v, double *sh) {
    int lane = threadIdx.x & 31, wid = threadIdx.x >> 5, nw = blockDim.x >> 5;
    v = warp_sum_d(v);
    __syncthreads(); /* sh may still be read by a previous reduction */
    if (lane == 0) sh[wid] = v;
    __syncthreads();
    double t = 0.0;
    for (int w = 0; w < nw; w++) t += sh[w];
    return t;
}
__device__ inline float block_max_f(float v, float *sh) {
    int lane = threadIdx.x & 31, wid = threadIdx.x >> 5, nw = blockDim.x >> 5;
    v = warp_max_f(v);
    __syncthreads();
    if (lane == 0) sh[wid] = v;
    __syncthreads();
    float t = -INFINITY;
    for (int w = 0; w < nw; w++) t = fmaxf(t, sh[w]);
    return t;
}

#endif
