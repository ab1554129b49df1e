/* rmsnorm.c: RMSNorm (Zhang & Sennrich 2019; docs/model.md §2.2) as transformers computes it in fp32:
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

/* backward of y_i = w_i · x_i · r, r = (mean(x²) + eps)^-1/2:
 *   dw_i += dy_i · x_i · r
 *   dx_i += r · w_i · dy_i − (r³ / C) · x_i · Σ_j w_j · dy_j · x_j      (r³/C = ∂r/∂(x_i) / (−x_i)) */
void rmsnorm_backward(float *dinp, float *dweight, const float *dout, const float *inp, const float *weight,
                      const float *rstd, int N, int C) {
    for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)n * C, *dy = dout + (size_t)n * C;
        double r = rstd[n], dot = 0.0;
        for (int i = 0; i < C; i++) dot += (double)weight[i] * dy[i] * x[i];
        for (int i = 0; i < C; i++) dweight[i] += (float)(dy[i] * x[i] * r);
        if (!dinp) continue;
        float *dx = dinp + (size_t)n * C;
        double k = r * r * r / C * dot;
        for (int i = 0; i < C; i++) dx[i] += (float)(r * weight[i] * dy[i] - k * x[i]);
    }
}
