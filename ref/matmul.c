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
