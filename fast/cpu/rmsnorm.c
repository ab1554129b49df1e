/* rmsnorm.c (CPU twin of ref/rmsnorm.c): RMSNorm, y = w ⊙ (x · rsqrt(mean(x²) + eps)), with the
 * rows over the threads. Bit-identical to the reference: every row's arithmetic is the
 * reference's, in its order, and the backward's weight gradient, the one sum across rows, is
 * split by columns instead, each column summed over the rows in row order as the reference does.
 * Shapes as the reference: inp/out (N, C), weight (C), rstd (N) (may be NULL); out may equal inp.
 * Backward ACCUMULATES into dinp (may be NULL) and dweight. Small calls (a decode step's rows)
 * run on the calling thread with no OpenMP construct at all: even an inactive parallel region per
 * call would cost a tiny model's decode more than its norms do. */
#ifdef SEEK_HAVE_BLAS
#include <math.h>

#include "cpu/cpu.h"
#include "ops.h"

/* below this many elements one thread does it all */
#define RMSNORM_SPLIT 32768

void rmsnorm_forward_cpu(float *out, float *rstd, const float *inp, const float *weight, int N, int C, float eps) {
    if ((size_t)N * C < RMSNORM_SPLIT || cpu_team() < 2) {
        rmsnorm_forward(out, rstd, inp, weight, N, C, eps);
        return;
    }
    /* each row is the reference's own function on that row */
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++)
        rmsnorm_forward(out + (size_t)n * C, rstd ? rstd + n : NULL, inp + (size_t)n * C, weight, 1, C, eps);
}

/* backward of y_i = w_i · x_i · r (ref/rmsnorm.c has the derivation):
 *   dw_i += dy_i · x_i · r                     (columns over the threads, rows in order)
 *   dx_i += r · w_i · dy_i − (r³ / C) · x_i · Σ_j w_j · dy_j · x_j      (rows over the threads) */
void rmsnorm_backward_cpu(float *dinp, float *dweight, const float *dout, const float *inp, const float *weight,
                          const float *rstd, int N, int C) {
    if ((size_t)N * C < RMSNORM_SPLIT || cpu_team() < 2) {
        rmsnorm_backward(dinp, dweight, dout, inp, weight, rstd, N, C);
        return;
    }
#pragma omp parallel
    {
        if (dinp) {
#pragma omp for schedule(static) nowait
            for (int n = 0; n < N; n++) {
                const float *x = inp + (size_t)n * C, *dy = dout + (size_t)n * C;
                double r = rstd[n], dot = 0.0;
                for (int i = 0; i < C; i++) dot += (double)weight[i] * dy[i] * x[i];
                float *dx = dinp + (size_t)n * C;
                double k = r * r * r / C * dot;
                for (int i = 0; i < C; i++) dx[i] += (float)(r * weight[i] * dy[i] - k * x[i]);
            }
        }
        /* blocks of 16 columns (one cache line of dweight), each summed over the rows in order */
#pragma omp for schedule(static)
        for (int i0 = 0; i0 < C; i0 += 16) {
            const int i1 = i0 + 16 < C ? i0 + 16 : C;
            for (int n = 0; n < N; n++) {
                const float *x = inp + (size_t)n * C, *dy = dout + (size_t)n * C;
                double r = rstd[n];
                for (int i = i0; i < i1; i++) dweight[i] += (float)(dy[i] * x[i] * r);
            }
        }
    }
}
#endif
