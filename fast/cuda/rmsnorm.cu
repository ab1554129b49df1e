/* rmsnorm.cu (CUDA twin of ref/rmsnorm.c): y = w ⊙ (x · rsqrt(mean(x²) + eps)), as transformers
 * computes it in fp32. One block per row: the mean of squares accumulates in double (a tree over
 * the block instead of the reference's left-to-right loop: the double sum's rounding is far below
 * the float r formed from it, so r almost always matches bit for bit); then
 * r = (float)(1 / sqrt(ss / C + eps)) in double and y = w·(x·r) in float, the reference's order.
 * Shapes: inp/out (N, C) (out may equal inp), weight (C), rstd (N) or NULL. */
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
