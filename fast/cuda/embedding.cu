/* embedding.cu (CUDA twin of ref/embedding.c): out[n] = wte[ids[n]], h = Emb[t] (spec §1.3
 * step 1). Shapes: ids (N) device ints, validated by the caller; wte (V, C); out (N, C).
 * A copy: bitwise equal to the reference. */
#include "cuda/internal.cuh"

__global__ static void embedding_kernel(float *out, const int *ids, const float *wte, int N, int C) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (size_t)N * C) return;
    size_t n = i / C, c = i % C;
    out[i] = wte[(size_t)ids[n] * C + c];
}

extern "C" void embedding_forward_cuda(float *out, const int *ids, const float *wte, int N, int C, cudaStream_t st) {
    size_t n = (size_t)N * C;
    if (!n) return;
    embedding_kernel<<<cdiv(n, 256), 256, 0, st>>>(out, ids, wte, N, C);
    LAUNCH_CHECK("embedding");
}

/* the residual add y += x (ref/forward.c's `s->x[i] += a->attn_out[i]`): one float add each */
__global__ static void residual_add_kernel(float *y, const float *x, size_t n) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) y[i] += x[i];
}

extern "C" void cuda_residual_add(float *y, const float *x, size_t n, cudaStream_t st) {
    if (!n) return;
    residual_add_kernel<<<cdiv(n, 256), 256, 0, st>>>(y, x, n);
    LAUNCH_CHECK("residual_add");
}
