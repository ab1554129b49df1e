/* mlp.cu (CUDA twin of ref/mlp.c): SwiGLU, out = (silu(x·W_gateᵀ) ⊙ (x·W_upᵀ)) · W_downᵀ.
 * Three cuBLAS products (pedantic fp32) and one elementwise kernel act = silu(gate)·up with
 * silu(z) = z / (1 + expf(−z)), the reference's expression (CUDA's expf within 2 ulp of glibc's).
 * Shapes: inp (N, C); w_gate, w_up (H, C); w_down (C, H); gate, up, act (N, H) saved; out (N, C).
 * Backward (ACCUMULATES into dinp and the three weight gradients), the reference's equations:
 *   dact = dout·W_down;  dW_down += doutᵀ·act;  dgate = dact·up·silu'(gate);  dup = dact·silu(gate)
 *   dinp += dgate·W_gate + dup·W_up;  dW_gate += dgateᵀ·inp;  dW_up += dupᵀ·inp
 * six cuBLAS products around one elementwise kernel; scratch 3·N·H floats (dact, dgate, dup). */
#include "cuda/internal.cuh"

__global__ static void swiglu_act_kernel(float *act, const float *gate, const float *up, size_t n) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    float g = gate[i];
    act[i] = g / (1.0f + expf(-g)) * up[i];
}

void cuda_swiglu_act(float *act, const float *gate, const float *up, size_t n, cudaStream_t st) {
    if (!n) return;
    swiglu_act_kernel<<<cdiv(n, 256), 256, 0, st>>>(act, gate, up, n);
    LAUNCH_CHECK("swiglu_act");
}

extern "C" void swiglu_forward_cuda(float *out, float *gate, float *up, float *act, const float *inp, const float *w_gate,
                                    const float *w_up, const float *w_down, int N, int C, int H, cudaStream_t st) {
    matmul_forward_cuda(gate, inp, w_gate, N, C, H, st);
    matmul_forward_cuda(up, inp, w_up, N, C, H, st);
    cuda_swiglu_act(act, gate, up, (size_t)N * H, st);
    matmul_forward_cuda(out, act, w_down, N, H, C, st);
}

__global__ static void swiglu_backward_act_kernel(float *dgate, float *dup, const float *dact, const float *gate,
                                                  const float *up, size_t n) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    float g = gate[i], sg = 1.0f / (1.0f + expf(-g));
    dgate[i] = dact[i] * up[i] * sg * (1.0f + g * (1.0f - sg));
    dup[i] = dact[i] * g * sg;
}

extern "C" void swiglu_backward_cuda(float *dinp, float *dw_gate, float *dw_up, float *dw_down, const float *dout,
                                     const float *inp, const float *gate, const float *up, const float *act,
                                     const float *w_gate, const float *w_up, const float *w_down, int N, int C, int H,
                                     float *scratch, cudaStream_t st) {
    const size_t n = (size_t)N * H;
    if (!n) return;
    float *dact = scratch, *dgate = scratch + n, *dup = scratch + 2 * n;
    CU_CHECK(cudaMemsetAsync(dact, 0, n * sizeof(float), st));
    matmul_backward_cuda(dact, dw_down, dout, act, w_down, N, H, C, st);
    swiglu_backward_act_kernel<<<cdiv(n, 256), 256, 0, st>>>(dgate, dup, dact, gate, up, n);
    LAUNCH_CHECK("swiglu_backward_act");
    matmul_backward_cuda(dinp, dw_gate, dgate, inp, w_gate, N, C, H, st);
    matmul_backward_cuda(dinp, dw_up, dup, inp, w_up, N, C, H, st);
}
