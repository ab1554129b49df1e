/* mlp.c (CPU twin of ref/mlp.c): SwiGLU, out = (silu(x·W_gateᵀ) ⊙ (x·W_upᵀ)) · W_downᵀ.
 * Shapes: inp (N, C), w_gate/w_up (H, C), w_down (C, H); gate, up, act (N, H) saved as in the
 * reference; out (N, C). Three sgemm calls; the elementwise product is the reference's
 * arithmetic (silu from ref/ops.h), split over the cores when it is large enough to pay. */
#ifdef SEEK_HAVE_BLAS
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
#endif
