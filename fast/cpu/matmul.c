/* matmul.c (CPU twin of ref/matmul.c): the linear layer y = x · Wᵀ through OpenBLAS.
 *   out (N, OC) = inp (N, IC) · weight (OC, IC)ᵀ   as cblas_sgemm(RowMajor, NoTrans, Trans)
 * Backward (ACCUMULATES, as every backward): two products with beta = 1,
 *   dinp (N, IC) += dout (N, OC) · W (OC, IC)        sgemm(NoTrans, NoTrans)
 *   dW (OC, IC)  += doutᵀ (OC, N) · inp (N, IC)      sgemm(Trans, NoTrans)
 * and for one row a matrix-vector product (sgemv) and a rank-1 update (sger).
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

void cpu_sgemm_acc(int a_trans, int b_trans, int M, int N, int K, const float *A, size_t lda, const float *Bm,
                   size_t ldb, float *Cm, size_t ldc) {
    if (M <= 0 || N <= 0 || K <= 0) return;
    double t0 = cpu_gemm_stats ? now_s() : 0.0;
    cblas_sgemm(CblasRowMajor, a_trans ? CblasTrans : CblasNoTrans, b_trans ? CblasTrans : CblasNoTrans, M, N, K, 1.0f, A,
                (int)lda, Bm, (int)ldb, 1.0f, Cm, (int)ldc);
    if (cpu_gemm_stats) {
        cpu_gemm_stats->seconds += now_s() - t0;
        cpu_gemm_stats->flops += 2.0 * M * N * K;
        cpu_gemm_stats->calls++;
    }
}

void matmul_forward_blas(float *out, const float *inp, const float *weight, int N, int IC, int OC) {
    cpu_sgemm(1, N, OC, IC, inp, (size_t)IC, weight, (size_t)IC, out, (size_t)OC);
}

/* backward of out = inp · Wᵀ:  dinp += dout · W  and  dW += doutᵀ · inp (either may be NULL). */
void matmul_backward_blas(float *dinp, float *dweight, const float *dout, const float *inp, const float *weight, int N,
                          int IC, int OC) {
    if (N <= 0 || IC <= 0 || OC <= 0) return;
    if (N == 1) {
        /* one row: dinp += Wᵀ·dout (sgemv), dW += dout ⊗ inp (rank-1 update) */
        double t0 = cpu_gemm_stats ? now_s() : 0.0;
        if (dinp) cblas_sgemv(CblasRowMajor, CblasTrans, OC, IC, 1.0f, weight, IC, dout, 1, 1.0f, dinp, 1);
        if (dweight) cblas_sger(CblasRowMajor, OC, IC, 1.0f, dout, 1, inp, 1, dweight, IC);
        if (cpu_gemm_stats) {
            cpu_gemm_stats->seconds += now_s() - t0;
            cpu_gemm_stats->flops += 2.0 * IC * OC * ((dinp != NULL) + (dweight != NULL));
            cpu_gemm_stats->calls++;
        }
        return;
    }
    if (dinp) cpu_sgemm_acc(0, 0, N, IC, OC, dout, (size_t)OC, weight, (size_t)IC, dinp, (size_t)IC);
    if (dweight) cpu_sgemm_acc(1, 0, OC, IC, N, dout, (size_t)OC, inp, (size_t)IC, dweight, (size_t)IC);
}
#endif
