/* matmul.c (CPU twin of ref/matmul.c): the linear layer y = x · Wᵀ through OpenBLAS.
 *   out (N, OC) = inp (N, IC) · weight (OC, IC)ᵀ   as cblas_sgemm(RowMajor, NoTrans, Trans)
 * Backward (ACCUMULATES, as every backward): two products with beta = 1,
 *   dinp (N, IC) += dout (N, OC) · W (OC, IC)        sgemm(NoTrans, NoTrans)
 *   dW (OC, IC)  += doutᵀ (OC, N) · inp (N, IC)      sgemm(Trans, NoTrans)
 * and for one row a matrix-vector product (sgemv) and a rank-1 update (sger).
 * With one row (decoding one token) the product is a matrix-vector product, out = W · x, and
 * goes to cblas_sgemv: OpenBLAS 0.3.21 does not forward M = 1 GEMMs to its GEMV kernels itself.
 * Summation order is BLAS's (blocked, vectorised); the reference sums strictly left to right.
 * Every product here is split over the OpenMP threads, OpenBLAS running single-threaded inside
 * each block (one thread pool; see cpu_blas_init below). */
#ifdef SEEK_HAVE_BLAS
#include <cblas.h>
#include <pthread.h>
#include <time.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "cpu/cpu.h"

CpuGemmStats *cpu_gemm_stats = NULL;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Time in products is counted in core-seconds over the team size, so that the rate it gives is
 * comparable with OpenBLAS's own threaded peak: a product split over p of nt threads counts its
 * wall time p/nt, a product run whole on one thread (alone, or beside others inside a parallel
 * region over heads or experts) counts its time 1/nt. Threads inside such a region add at once,
 * hence the atomics. */
static void stats_add(double t0, double flops, int cores) {
    if (!cpu_gemm_stats) return;
    double dt = (now_s() - t0) * cores;
#ifdef _OPENMP
    dt /= omp_in_parallel() ? omp_get_team_size(omp_get_level()) : omp_get_max_threads();
#endif
#pragma omp atomic
    cpu_gemm_stats->seconds += dt;
#pragma omp atomic
    cpu_gemm_stats->flops += flops;
#pragma omp atomic
    cpu_gemm_stats->calls++;
}

/* One thread pool. OpenBLAS's pthreads build runs its own threads inside each product, and
 * OpenMP runs the elementwise loops and attention rows: on two cores the pools take turns, each
 * spinning or yielding while the other works. When OpenMP is present the backend therefore runs
 * OpenBLAS single-threaded (cpu_blas_init) and splits each product itself into one block of
 * C per OpenMP thread (rows or columns, whichever dimension is larger, in multiples of 16), every
 * block a single-threaded sgemm called from its thread. Each element of C is still computed by
 * one kernel call over the whole K, so results do not depend on the thread count beyond BLAS's
 * own blocking. Inside an OpenMP region (a caller already parallel over heads or experts) the
 * product runs whole on the calling thread. */
static pthread_once_t blas_once = PTHREAD_ONCE_INIT;

static void blas_init_once(void) {
#ifdef _OPENMP
    openblas_set_num_threads(1);
#endif
}

void cpu_blas_init(void) { pthread_once(&blas_once, blas_init_once); }

/* products below this many multiply-adds run on one thread: splitting costs more than it saves.
 * A matrix-vector product is bound by reading the matrix, not by arithmetic, so it gains from a
 * second core sooner (bench-40m decode: 2^15 gave 373-407 tokens/s, 2^17 322-334). */
#define SPLIT_MIN_MACS (1 << 17)
#define SPLIT_MIN_MACS_GEMV (1 << 15)

/* How many blocks a dimension of D is split into for nt threads (1 when not worth it), and the
 * block size, a multiple of 16. */
static int split_parts(int D, double macs, double min_macs, int *chunk) {
    int nt = 1;
#ifdef _OPENMP
    if (!omp_in_parallel() && macs >= min_macs) nt = omp_get_max_threads();
#else
    (void)macs;
    (void)min_macs;
#endif
    int c = (D + nt - 1) / nt;
    c = (c + 15) / 16 * 16;
    *chunk = c;
    return (D + c - 1) / c;
}

/* Block [d0, d0 + nd) of C (M, N) = beta·C + op(A)·op(B): columns when by_cols, else rows.
 * op(A) = Aᵀ (A is K x M) when a_trans, op(B) = Bᵀ (B is N x K) when b_trans. */
static void gemm_part(int by_cols, int a_trans, int b_trans, int M, int N, int K, const float *A, size_t lda,
                      const float *Bm, size_t ldb, float beta, float *Cm, size_t ldc, int d0, int nd) {
    if (by_cols) {
        Bm += b_trans ? (size_t)d0 * ldb : (size_t)d0;
        Cm += d0;
        N = nd;
    } else {
        A += a_trans ? (size_t)d0 : (size_t)d0 * lda;
        Cm += (size_t)d0 * ldc;
        M = nd;
    }
    cblas_sgemm(CblasRowMajor, a_trans ? CblasTrans : CblasNoTrans, b_trans ? CblasTrans : CblasNoTrans, M, N, K, 1.0f, A,
                (int)lda, Bm, (int)ldb, beta, Cm, (int)ldc);
}

/* The whole product, split over the OpenMP threads along its larger output dimension. */
static int gemm_split(int a_trans, int b_trans, int M, int N, int K, const float *A, size_t lda, const float *Bm,
                      size_t ldb, float beta, float *Cm, size_t ldc) {
    cpu_blas_init();
    int by_cols = N >= M, D = by_cols ? N : M, chunk;
    int parts = split_parts(D, (double)M * N * K, SPLIT_MIN_MACS, &chunk);
    if (parts < 2) { /* no OpenMP construct at all: many products are tiny */
        gemm_part(by_cols, a_trans, b_trans, M, N, K, A, lda, Bm, ldb, beta, Cm, ldc, 0, D);
        return 1;
    }
#pragma omp parallel for num_threads(parts) schedule(static, 1)
    for (int p = 0; p < parts; p++) {
        int d0 = p * chunk;
        gemm_part(by_cols, a_trans, b_trans, M, N, K, A, lda, Bm, ldb, beta, Cm, ldc, d0, D - d0 < chunk ? D - d0 : chunk);
    }
    return parts;
}

/* y (n) = beta·y + op(W)·x for W (rows, cols) row-major with leading dimension ldw, op = W when
 * !trans (n = rows), Wᵀ when trans (n = cols); split over the outputs. */
static void gemv_part(int trans, int rows, int cols, const float *W, size_t ldw, const float *x, float beta, float *y, int d0,
                      int nd) {
    if (trans) cblas_sgemv(CblasRowMajor, CblasTrans, rows, nd, 1.0f, W + d0, (int)ldw, x, 1, beta, y + d0, 1);
    else cblas_sgemv(CblasRowMajor, CblasNoTrans, nd, cols, 1.0f, W + (size_t)d0 * ldw, (int)ldw, x, 1, beta, y + d0, 1);
}

static int gemv_split(int trans, int rows, int cols, const float *W, size_t ldw, const float *x, float beta, float *y) {
    cpu_blas_init();
    int n = trans ? cols : rows, chunk;
    int parts = split_parts(n, (double)rows * cols, SPLIT_MIN_MACS_GEMV, &chunk);
    if (parts < 2) { /* no OpenMP construct at all: decode issues many tiny products */
        gemv_part(trans, rows, cols, W, ldw, x, beta, y, 0, n);
        return 1;
    }
#pragma omp parallel for num_threads(parts) schedule(static, 1)
    for (int p = 0; p < parts; p++) {
        int d0 = p * chunk;
        gemv_part(trans, rows, cols, W, ldw, x, beta, y, d0, n - d0 < chunk ? n - d0 : chunk);
    }
    return parts;
}

/* W (rows, cols) += x ⊗ y (a rank-1 update), split over the rows. */
static int sger_split(int rows, int cols, const float *x, const float *y, float *W) {
    cpu_blas_init();
    int chunk, parts = split_parts(rows, (double)rows * cols, SPLIT_MIN_MACS_GEMV, &chunk);
    if (parts < 2) {
        cblas_sger(CblasRowMajor, rows, cols, 1.0f, x, 1, y, 1, W, cols);
        return 1;
    }
#pragma omp parallel for num_threads(parts) schedule(static, 1)
    for (int p = 0; p < parts; p++) {
        int d0 = p * chunk, nd = rows - d0 < chunk ? rows - d0 : chunk;
        cblas_sger(CblasRowMajor, nd, cols, 1.0f, x + d0, 1, y, 1, W + (size_t)d0 * cols, cols);
    }
    return parts;
}

void cpu_sgemm(int b_trans, int M, int N, int K, const float *A, size_t lda, const float *Bm, size_t ldb, float *Cm,
               size_t ldc) {
    if (M <= 0 || N <= 0) return;
    double t0 = cpu_gemm_stats ? now_s() : 0.0;
    /* one row: c = op(B)·a as a matrix-vector product */
    int cores = M == 1 ? gemv_split(!b_trans, b_trans ? N : K, b_trans ? K : N, Bm, ldb, A, 0.0f, Cm)
                       : gemm_split(0, b_trans, M, N, K, A, lda, Bm, ldb, 0.0f, Cm, ldc);
    stats_add(t0, 2.0 * M * N * K, cores);
}

void cpu_sgemm_acc(int a_trans, int b_trans, int M, int N, int K, const float *A, size_t lda, const float *Bm,
                   size_t ldb, float *Cm, size_t ldc) {
    if (M <= 0 || N <= 0 || K <= 0) return;
    double t0 = cpu_gemm_stats ? now_s() : 0.0;
    int cores = gemm_split(a_trans, b_trans, M, N, K, A, lda, Bm, ldb, 1.0f, Cm, ldc);
    stats_add(t0, 2.0 * M * N * K, cores);
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
        int cores = 1;
        if (dinp) cores = gemv_split(1, OC, IC, weight, (size_t)IC, dout, 1.0f, dinp);
        if (dweight) {
            int c2 = sger_split(OC, IC, dout, inp, dweight);
            cores = c2 > cores ? c2 : cores;
        }
        stats_add(t0, 2.0 * IC * OC * ((dinp != NULL) + (dweight != NULL)), cores);
        return;
    }
    if (dinp) cpu_sgemm_acc(0, 0, N, IC, OC, dout, (size_t)OC, weight, (size_t)IC, dinp, (size_t)IC);
    if (dweight) cpu_sgemm_acc(1, 0, OC, IC, N, dout, (size_t)OC, inp, (size_t)IC, dweight, (size_t)IC);
}
#endif
