/* mlp.c: the SwiGLU feed-forward block used by dense layers, routed experts and shared experts
 * (Shazeer 2020; docs/model.md §2.3): MLP(x) = down( silu(gate(x)) ⊙ up(x) ), silu(z) = z·σ(z).
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

/* backward of out = act·W_downᵀ, act = silu(gate)·up, gate = x·W_gateᵀ, up = x·W_upᵀ:
 *   dact = dout·W_down;  dgate = dact·up·silu'(gate);  dup = dact·silu(gate)
 *   silu'(z) = σ(z)·(1 + z·(1 − σ(z))) */
void swiglu_backward(float *dinp, float *dw_gate, float *dw_up, float *dw_down, const float *dout, const float *inp,
                     const float *gate, const float *up, const float *act, const float *w_gate, const float *w_up,
                     const float *w_down, int N, int C, int H, float *scratch) {
    size_t NH = (size_t)N * H;
    float *dact = scratch, *dgate = scratch + NH, *dup = scratch + 2 * NH;
    for (size_t i = 0; i < NH; i++) dact[i] = 0.0f;
    matmul_backward(dact, dw_down, dout, act, w_down, N, H, C);
    for (size_t i = 0; i < NH; i++) {
        float g = gate[i], sg = 1.0f / (1.0f + expf(-g));
        dgate[i] = dact[i] * up[i] * sg * (1.0f + g * (1.0f - sg));
        dup[i] = dact[i] * g * sg;
    }
    matmul_backward(dinp, dw_gate, dgate, inp, w_gate, N, C, H);
    matmul_backward(dinp, dw_up, dup, inp, w_up, N, C, H);
}
