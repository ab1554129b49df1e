/* mlp.c: the SwiGLU feed-forward block used by dense layers, routed experts and shared experts
 * (spec §1.3): MLP(x) = down( silu(gate(x)) ⊙ up(x) ), silu(z) = z·σ(z).
 * Shapes: inp (N, C), w_gate/w_up (H, C), w_down (C, H); gate, up, act (N, H) saved for
 * backward; out (N, C). */
#include "ops.h"

void swiglu_forward(float *out, float *gate, float *up, float *act, const float *inp, const float *w_gate,
                    const float *w_up, const float *w_down, int N, int C, int H) {
    matmul_forward(gate, inp, w_gate, N, C, H);
    matmul_forward(up, inp, w_up, N, C, H);
    for (size_t i = 0; i < (size_t)N * H; i++) act[i] = silu(gate[i]) * up[i];
    matmul_forward(out, act, w_down, N, H, C);
}
