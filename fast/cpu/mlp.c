/* mlp.c (CPU twin of ref/mlp.c): SwiGLU, out = (silu(x·W_gateᵀ) ⊙ (x·W_upᵀ)) · W_downᵀ.
 * Shapes: inp (N, C), w_gate/w_up (H, C), w_down (C, H); gate, up, act (N, H) saved as in the
 * reference; out (N, C). Three sgemm calls; the elementwise product is the reference's
 * arithmetic (silu from ref/ops.h), split over the cores when it is large enough to pay.
 * Backward (ACCUMULATES into dinp and the three weight gradients), the reference's equations:
 *   dact = dout·W_down;  dW_down += doutᵀ·act;  dgate = dact·up·silu'(gate);  dup = dact·silu(gate)
 *   dinp += dgate·W_gate + dup·W_up;  dW_gate += dgateᵀ·inp;  dW_up += dupᵀ·inp
 * as six BLAS products (matmul_backward_blas) around the reference's elementwise step.
 * scratch: 3·N·H floats (dact, dgate, dup), as the reference. */
#ifdef SEEK_HAVE_BLAS
#include <math.h>
#include <string.h>

#include "cpu/cpu.h"
#include "ops.h"

void swiglu_forward_cpu(float *out, float *gate, float *up, float *act, const float *inp, const float *w_gate,
                        const float *w_up, const float *w_down, int N, int C, int H) {
    matmul_forward_blas(gate, inp, w_gate, N, C, H);
    matmul_forward_blas(up, inp, w_up, N, C, H);
    const long n = (long)N * H;
#pragma omp parallel for schedule(static) if (n > 65536)
    for (long i = 0; i < n; i++) act[i] = silu(gate[i]) * up[i];
    matmul_forward_blas(out, act, w_down, N, H, C);
}

void swiglu_backward_cpu(float *dinp, float *dw_gate, float *dw_up, float *dw_down, const float *dout, const float *inp,
                         const float *gate, const float *up, const float *act, const float *w_gate, const float *w_up,
                         const float *w_down, int N, int C, int H, float *scratch) {
    const long n = (long)N * H;
    float *dact = scratch, *dgate = scratch + n, *dup = scratch + 2 * n;
    memset(dact, 0, (size_t)n * sizeof(float));
    matmul_backward_blas(dact, dw_down, dout, act, w_down, N, H, C);
#pragma omp parallel for schedule(static) if (n > 65536)
    for (long i = 0; i < n; i++) {
        float g = gate[i], sg = 1.0f / (1.0f + expf(-g));
        dgate[i] = dact[i] * up[i] * sg * (1.0f + g * (1.0f - sg));
        dup[i] = dact[i] * g * sg;
    }
    matmul_backward_blas(dinp, dw_gate, dgate, inp, w_gate, N, C, H);
    matmul_backward_blas(dinp, dw_up, dup, inp, w_up, N, C, H);
}
#endif
