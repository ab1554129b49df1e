/* matmul.c: the linear layer without bias, y = x · Wᵀ (PyTorch's F.linear convention, so
 * Hugging Face weights load as stored). Shapes: inp (N, IC), weight (OC, IC), out (N, OC).
 * Plain dot products in float, one output at a time: the readable version. The fast twins
 * (fast/) replace it with BLAS and CUDA. */
#include "ops.h"

void matmul_forward(float *out, const float *inp, const float *weight, int N, int IC, int OC) {
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
    for (int n = 0; n < N; n++) {
        const float *d = dout + (size_t)n * OC, *x = inp + (size_t)n * IC;
        if (dinp) {
            float *dx = dinp + (size_t)n * IC;
            for (int o = 0; o < OC; o++) {
                const float *w = weight + (size_t)o * IC;
                float g = d[o];
                for (int i = 0; i < IC; i++) dx[i] += g * w[i];
            }
        }
        if (dweight)
            for (int o = 0; o < OC; o++) {
                float *dw = dweight + (size_t)o * IC;
                float g = d[o];
                for (int i = 0; i < IC; i++) dw[i] += g * x[i];
            }
    }
}
