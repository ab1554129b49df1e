/* embedding.cu (CUDA twin of ref/embedding.c): out[n] = wte[ids[n]], h = Emb[t]
 * (docs/model.md §2.1). Shapes: ids (N) device ints, validated by the caller; wte (V, C); out (N, C).
 * A copy: bitwise equal to the reference.
 * Backward (ACCUMULATES): dwte[ids[n]] += dout[n]. One block per token position n; the block of a
 * token's first occurrence sums every occurrence's row in token order (the reference's order,
 * bit for bit), the others do nothing: no two threads add into the same row, no atomics. */
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

__global__ static void embedding_backward_kernel(float *dwte, const float *dout, const int *ids, int N, int C) {
    __shared__ int first;
    const int n = blockIdx.x, id = ids[n];
    if (threadIdx.x == 0) {
        first = 1;
        for (int m = 0; m < n; m++)
            if (ids[m] == id) {
                first = 0;
                break;
            }
    }
    __syncthreads();
    if (!first) return;
    for (int c = threadIdx.x; c < C; c += blockDim.x) {
        float acc = dwte[(size_t)id * C + c];
        for (int m = n; m < N; m++)
            if (ids[m] == id) acc += dout[(size_t)m * C + c];
        dwte[(size_t)id * C + c] = acc;
    }
}

extern "C" void embedding_backward_cuda(float *dwte, const float *dout, const int *ids, int N, int C, cudaStream_t st) {
    if (N <= 0 || C <= 0) return;
    embedding_backward_kernel<<<N, 256, 0, st>>>(dwte, dout, ids, N, C);
    LAUNCH_CHECK("embedding_backward");
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
