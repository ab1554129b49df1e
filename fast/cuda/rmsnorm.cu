/* rmsnorm.cu (CUDA twin of ref/rmsnorm.c): y = w ⊙ (x · rsqrt(mean(x²) + eps)), as transformers
 * computes it in fp32. One block per row: the mean of squares accumulates in double (a tree over
 * the block instead of the reference's left-to-right loop: the double sum's rounding is far below
 * the float r formed from it, so r almost always matches bit for bit); then
 * r = (float)(1 / sqrt(ss / C + eps)) in double and y = w·(x·r) in float, the reference's order.
 * Shapes: inp/out (N, C) (out may equal inp), weight (C), rstd (N) or NULL.
 * Backward (ACCUMULATES into dinp and dweight), ref/rmsnorm.c's equations:
 *   dw_i += dy_i·x_i·r;  dx_i += r·w_i·dy_i − (r³/C)·x_i·Σ_j w_j·dy_j·x_j
 * dinp one block per row (the dot in double, a tree); dweight one thread per column summing the
 * rows in row order, the reference's order: bit for bit its float sum, with no atomics. */
#include "cuda/internal.cuh"

#define NORM_THREADS 256

__global__ static void rmsnorm_kernel(float *out, size_t out_stride, float *rstd, const float *inp, size_t in_stride,
                                      const float *weight, int C, float eps) {
    __shared__ double sh[32];
    const float *x = inp + (size_t)blockIdx.x * in_stride;
    float *y = out + (size_t)blockIdx.x * out_stride;
    double ss = 0.0;
    for (int i = threadIdx.x; i < C; i += blockDim.x) ss += (double)x[i] * x[i];
    ss = block_sum_d(ss, sh);
    float r = (float)(1.0 / sqrt(ss / C + (double)eps));
    for (int i = threadIdx.x; i < C; i += blockDim.x) y[i] = weight[i] * (x[i] * r);
    if (rstd && threadIdx.x == 0) rstd[blockIdx.x] = r;
}

/* N rows at strides in_stride / out_stride floats (mla.cu normalises the latent slice of kv_a). */
void cuda_rmsnorm_rows(float *out, size_t out_stride, float *rstd, const float *inp, size_t in_stride,
                       const float *weight, int N, int C, float eps, cudaStream_t st) {
    if (N <= 0) return;
    rmsnorm_kernel<<<N, NORM_THREADS, 0, st>>>(out, out_stride, rstd, inp, in_stride, weight, C, eps);
    LAUNCH_CHECK("rmsnorm");
}

extern "C" void rmsnorm_forward_cuda(float *out, float *rstd, const float *inp, const float *weight, int N, int C,
                                     float eps, cudaStream_t st) {
    cuda_rmsnorm_rows(out, (size_t)C, rstd, inp, (size_t)C, weight, N, C, eps, st);
}

/* dinp rows, one block per row, rows at strides (floats): the dot in double (a tree), the
 * reference's expression per element */
__global__ static void rmsnorm_backward_rows_kernel(float *dinp, size_t dinp_stride, const float *dout,
                                                    size_t dout_stride, const float *inp, size_t inp_stride,
                                                    const float *weight, const float *rstd, int C) {
    __shared__ double sh[32];
    const float *x = inp + (size_t)blockIdx.x * inp_stride, *dy = dout + (size_t)blockIdx.x * dout_stride;
    double r = rstd[blockIdx.x], dot = 0.0;
    for (int i = threadIdx.x; i < C; i += blockDim.x) dot += (double)weight[i] * dy[i] * x[i];
    dot = block_sum_d(dot, sh);
    double k = r * r * r / C * dot;
    float *dx = dinp + (size_t)blockIdx.x * dinp_stride;
    for (int i = threadIdx.x; i < C; i += blockDim.x) dx[i] += (float)(r * weight[i] * dy[i] - k * x[i]);
}

/* dweight: one thread per column adding the rows in row order */
__global__ static void rmsnorm_backward_weight_kernel(float *dweight, const float *dout, size_t dout_stride,
                                                      const float *inp, size_t inp_stride, const float *rstd, int N,
                                                      int C) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= C) return;
    float acc = dweight[i];
    for (int n = 0; n < N; n++) {
        double r = rstd[n];
        acc += (float)(dout[(size_t)n * dout_stride + i] * inp[(size_t)n * inp_stride + i] * r);
    }
    dweight[i] = acc;
}

/* N rows at strides dinp_stride / dout_stride / inp_stride floats (mla.cu's latent slice of kv_a);
 * dinp may be NULL. */
void cuda_rmsnorm_backward_rows(float *dinp, size_t dinp_stride, float *dweight, const float *dout, size_t dout_stride,
                                const float *inp, size_t inp_stride, const float *weight, const float *rstd, int N,
                                int C, cudaStream_t st) {
    if (N <= 0 || C <= 0) return;
    if (dinp) {
        rmsnorm_backward_rows_kernel<<<N, NORM_THREADS, 0, st>>>(dinp, dinp_stride, dout, dout_stride, inp, inp_stride,
                                                                 weight, rstd, C);
        LAUNCH_CHECK("rmsnorm_backward_rows");
    }
    rmsnorm_backward_weight_kernel<<<cdiv(C, 128), 128, 0, st>>>(dweight, dout, dout_stride, inp, inp_stride, rstd, N, C);
    LAUNCH_CHECK("rmsnorm_backward_weight");
}

extern "C" void rmsnorm_backward_cuda(float *dinp, float *dweight, const float *dout, const float *inp,
                                      const float *weight, const float *rstd, int N, int C, cudaStream_t st) {
    cuda_rmsnorm_backward_rows(dinp, (size_t)C, dweight, dout, (size_t)C, inp, (size_t)C, weight, rstd, N, C, st);
}
