/* rope.cu (CUDA twin of ref/rope.c's rope_forward): rotary position embedding in both layouts,
 * with the frequency table rope_inv_freq computed on the host (default, linear or YaRN, the same
 * float table the reference uses) and copied to the device, so YaRN costs nothing here.
 * Pair i of a vector at position p turns by φ = p·inv_freq[i]:
 *   c = cosf(φ)·f, s = sinf(φ)·f  (f the attention factor);  a' = a·c − b·s,  b' = b·c + a·s
 * HALF pairs (x[i], x[i + rd/2]); INTERLEAVED pairs (x[2i], x[2i+1]). One thread per pair;
 * without fused multiply-add the arithmetic is the reference's, and the only difference left is
 * CUDA's cosf/sinf (within 2 ulp of glibc's). out may equal inp.
 * Backward: the transpose, a rotation by −φ times the factor (da' = da·c + db·s, db' = db·c − da·s),
 * in place like the reference (it transforms, it does not accumulate). */
#include "cuda/internal.cuh"

__device__ static inline void rope_pair(float *y, const float *x, int i, int half, float c, float s, RopeLayout layout) {
    size_t ia = layout == ROPE_LAYOUT_HALF ? (size_t)i : 2 * (size_t)i;
    size_t ib = layout == ROPE_LAYOUT_HALF ? (size_t)(i + half) : 2 * (size_t)i + 1;
    float a = x[ia], b = x[ib];
    y[ia] = a * c - b * s;
    y[ib] = b * c + a * s;
}

/* sign +1 turns by φ (the forward), −1 by −φ (the backward: a·c − b·(−s) is a·c + b·s exactly, so
 * the reference's backward formulas come out bit for bit) */
__global__ static void rope_kernel(float *out, const float *inp, int n_vec, size_t stride, int pos,
                                   const float *inv_freq, float attn_factor, int half, RopeLayout layout, float sign) {
    size_t id = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (id >= (size_t)n_vec * half) return;
    int v = (int)(id / half), i = (int)(id % half);
    float angle = (float)pos * inv_freq[i];
    float c = cosf(angle) * attn_factor, s = sign * (sinf(angle) * attn_factor);
    rope_pair(out + (size_t)v * stride, inp + (size_t)v * stride, i, half, c, s, layout);
}

extern "C" void rope_forward_cuda(float *out, const float *inp, int n_vec, size_t stride, int pos,
                                  const float *inv_freq, float attn_factor, int rd, RopeLayout layout, cudaStream_t st) {
    int half = rd / 2;
    size_t n = (size_t)n_vec * half;
    if (!n) return;
    rope_kernel<<<cdiv(n, 128), 128, 0, st>>>(out, inp, n_vec, stride, pos, inv_freq, attn_factor, half, layout, 1.0f);
    LAUNCH_CHECK("rope");
}

__global__ static void rope_rows_kernel(float *x, int rows, int T, int pos0, int n_vec, size_t row_stride,
                                        size_t vec_stride, const float *inv_freq, float attn_factor, int half,
                                        RopeLayout layout, float sign) {
    size_t id = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    size_t per_row = (size_t)n_vec * half;
    if (id >= (size_t)rows * per_row) return;
    int r = (int)(id / per_row), rem = (int)(id % per_row), v = rem / half, i = rem % half;
    float angle = (float)(pos0 + r % T) * inv_freq[i];
    float c = cosf(angle) * attn_factor, s = sign * (sinf(angle) * attn_factor);
    float *y = x + (size_t)r * row_stride + (size_t)v * vec_stride;
    rope_pair(y, y, i, half, c, s, layout);
}

extern "C" void cuda_rope_rows(float *x, int rows, int T, int pos0, int n_vec, size_t row_stride, size_t vec_stride,
                               const float *inv_freq, float attn_factor, int rd, RopeLayout layout, cudaStream_t st) {
    int half = rd / 2;
    size_t n = (size_t)rows * n_vec * half;
    if (!n) return;
    rope_rows_kernel<<<cdiv(n, 128), 128, 0, st>>>(x, rows, T, pos0, n_vec, row_stride, vec_stride, inv_freq,
                                                   attn_factor, half, layout, 1.0f);
    LAUNCH_CHECK("rope_rows");
}

extern "C" void rope_backward_cuda(float *dinp, const float *dout, int n_vec, size_t stride, int pos,
                                   const float *inv_freq, float attn_factor, int rd, RopeLayout layout, cudaStream_t st) {
    int half = rd / 2;
    size_t n = (size_t)n_vec * half;
    if (!n) return;
    rope_kernel<<<cdiv(n, 128), 128, 0, st>>>(dinp, dout, n_vec, stride, pos, inv_freq, attn_factor, half, layout, -1.0f);
    LAUNCH_CHECK("rope_backward");
}

/* the backward of cuda_rope_rows: every row's vectors turned back (rope_backward per row) */
extern "C" void cuda_rope_rows_backward(float *x, int rows, int T, int pos0, int n_vec, size_t row_stride,
                                        size_t vec_stride, const float *inv_freq, float attn_factor, int rd,
                                        RopeLayout layout, cudaStream_t st) {
    int half = rd / 2;
    size_t n = (size_t)rows * n_vec * half;
    if (!n) return;
    rope_rows_kernel<<<cdiv(n, 128), 128, 0, st>>>(x, rows, T, pos0, n_vec, row_stride, vec_stride, inv_freq,
                                                   attn_factor, half, layout, -1.0f);
    LAUNCH_CHECK("rope_rows_backward");
}
