/* matmul.c: the linear layer without bias, y = x · Wᵀ (PyTorch's F.linear convention, so
 * Hugging Face weights load as stored). Shapes: inp (N, IC), weight (OC, IC), out (N, OC).
 * Plain dot products in float, one output at a time: the readable version. The fast twins
 * (fast/) replace it with BLAS and CUDA. The OpenMP pragmas split independent outputs over the
 * cores; every output is still summed by one thread in the same order, so results do not depend
 * on the number of threads. Under ref_precision = PRECISION_BF16 (precision.h) both operands are
 * rounded to bfloat16 as they are read: the precision baseline of the bf16 backend. */
#include "ops.h"
#include "precision.h"

/* The product with both operands rounded to bfloat16 first (precision.h: the baseline a bf16
 * backend is measured against), summed in float in the same order as below. */
static void matmul_forward_bf16(float *out, const float *inp, const float *weight, int N, int IC, int OC) {
#pragma omp parallel for if ((size_t)N * IC * OC > 65536)
    for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)n * IC;
        for (int o = 0; o < OC; o++) {
            const float *w = weight + (size_t)o * IC;
            float sum = 0.0f;
            for (int i = 0; i < IC; i++) sum += round_bf16(x[i]) * round_bf16(w[i]);
            out[(size_t)n * OC + o] = sum;
        }
    }
}

void matmul_forward(float *out, const float *inp, const float *weight, int N, int IC, int OC) {
    if (ref_precision == PRECISION_BF16) {
        matmul_forward_bf16(out, inp, weight, N, IC, OC);
        return;
    }
#pragma omp parallel for if ((size_t)N * IC * OC > 65536)
    for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)n * IC;
        for (int o = 0; o < OC; o++) {
            const float *w = weight + (size_t)o * IC;
            float sum = 0.0f;
            for (int i = 0; i < IC; i++) sum += x[i] * w[i];
            out[(size_t)n * OC + o] = sum;
        }
    }
}

/* backward of out = inp · Wᵀ:  dinp += dout · W  and  dW += doutᵀ · inp. */
void matmul_backward(float *dinp, float *dweight, const float *dout, const float *inp, const float *weight, int N,
                     int IC, int OC) {
    int big = (size_t)N * IC * OC > 65536;
    /* dinp[n] += Σ_o dout[n, o]·W[o]: rows of dinp are independent */
    if (dinp) {
#pragma omp parallel for if (big)
        for (int n = 0; n < N; n++) {
            const float *d = dout + (size_t)n * OC;
            float *dx = dinp + (size_t)n * IC;
            for (int o = 0; o < OC; o++) {
                const float *w = weight + (size_t)o * IC;
                float g = d[o];
                for (int i = 0; i < IC; i++) dx[i] += g * w[i];
            }
        }
    }
    /* dW[o] += Σ_n dout[n, o]·inp[n]: rows of dW are independent, each summed over n in order */
    if (dweight) {
#pragma omp parallel for if (big)
        for (int o = 0; o < OC; o++) {
            float *dw = dweight + (size_t)o * IC;
            for (int n = 0; n < N; n++) {
                float g = dout[(size_t)n * OC + o];
                const float *x = inp + (size_t)n * IC;
                for (int i = 0; i < IC; i++) dw[i] += g * x[i];
            }
        }
    }
}
