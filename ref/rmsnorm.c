/* rmsnorm.c: RMSNorm (Zhang & Sennrich 2019) as transformers computes it in fp32:
 *   y = w ⊙ (x · rsqrt(mean(x²) + eps))
 * The mean of squares accumulates in double; the normalised value is formed first, then scaled
 * by the weight (the order transformers uses). Shapes: inp/out (N, C), weight (C), rstd (N)
 * saved for backward (may be NULL). out may equal inp. */
#include "ops.h"

void rmsnorm_forward(float *out, float *rstd, const float *inp, const float *weight, int N, int C, float eps) {
    for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)n * C;
        float *y = out + (size_t)n * C;
        double ss = 0.0;
        for (int i = 0; i < C; i++) ss += (double)x[i] * x[i];
        float r = (float)(1.0 / sqrt(ss / C + (double)eps));
        for (int i = 0; i < C; i++) y[i] = weight[i] * (x[i] * r);
        if (rstd) rstd[n] = r;
    }
}
