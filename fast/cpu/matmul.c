/* matmul.c (CPU twin of ref/matmul.c): the linear layer y = x · Wᵀ through OpenBLAS.
 *   out (N, OC) = inp (N, IC) · weight (OC, IC)ᵀ   as cblas_sgemm(RowMajor, NoTrans, Trans)
 * With one row (decoding one token) the product is a matrix-vector product, out = W · x, and
 * goes to cblas_sgemv: OpenBLAS 0.3.21 does not forward M = 1 GEMMs to its GEMV kernels itself.
 * Summation order is BLAS's (blocked, vectorised); the reference sums strictly left to right.
 * BLAS threads itself (OpenBLAS's pthreads); nothing here runs inside an OpenMP region. */
#ifdef SEEK_HAVE_BLAS
#include <cblas.h>
#include <time.h>

#include "cpu/cpu.h"

CpuGemmStats *cpu_gemm_stats = NULL;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void cpu_sgemm(int b_trans, int M, int N, int K, const float *A, size_t lda, const float *Bm, size_t ldb, float *Cm,
               size_t ldc) {
    if (M <= 0 || N <= 0) return;
    double t0 = cpu_gemm_stats ? now_s() : 0.0;
    if (M == 1) {
        /* one row: c = op(B)·a as a matrix-vector product */
        if (b_trans) cblas_sgemv(CblasRowMajor, CblasNoTrans, N, K, 1.0f, Bm, (int)ldb, A, 1, 0.0f, Cm, 1);
        else cblas_sgemv(CblasRowMajor, CblasTrans, K, N, 1.0f, Bm, (int)ldb, A, 1, 0.0f, Cm, 1);
    } else {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, b_trans ? CblasTrans : CblasNoTrans, M, N, K, 1.0f, A, (int)lda, Bm,
                    (int)ldb, 0.0f, Cm, (int)ldc);
    }
    if (cpu_gemm_stats) {
        cpu_gemm_stats->seconds += now_s() - t0;
        cpu_gemm_stats->flops += 2.0 * M * N * K;
        cpu_gemm_stats->calls++;
    }
}

void matmul_forward_blas(float *out, const float *inp, const float *weight, int N, int IC, int OC) {
    cpu_sgemm(1, N, OC, IC, inp, (size_t)IC, weight, (size_t)IC, out, (size_t)OC);
}
#endif
