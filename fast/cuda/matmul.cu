/* matmul.cu (CUDA twin of ref/matmul.c): out (N, OC) = inp (N, IC) · weight (OC, IC)ᵀ through
 * cuBLAS sgemm in pedantic fp32 (no TF32). Row-major C = A·Bᵀ is column-major Cᵀ = B·Aᵀ, so the
 * call is sgemm(T, N, OC, N, IC, W, IC, X, IC, out, OC). cuBLAS sums each dot product in its own
 * blocked order; the reference sums left to right (docs/cuda.md has the measured difference).
 * Backward (ACCUMULATES, as every backward): dinp (N, IC) += dout·W and dW (OC, IC) += doutᵀ·inp,
 * two sgemm with beta = 1 (cuda_sgemm_acc). */
#include "cuda/internal.cuh"

void cuda_sgemm(cudaStream_t st, int b_trans, int M, int N, int K, const float *A, size_t lda, long long sa,
                const float *Bm, size_t ldb, long long sb, float *Cm, size_t ldc, long long sc, int batch) {
    if (M <= 0 || N <= 0 || batch <= 0) return;
    cublasHandle_t h = cuda_cublas(st);
    if (!h) return;
    const float one = 1.0f, zero = 0.0f;
    cublasOperation_t ob = b_trans ? CUBLAS_OP_T : CUBLAS_OP_N;
    /* row-major C (M, N) = A · op(B)  <=>  column-major Cᵀ (N, M) = op(B)ᵀ · Aᵀ */
    if (batch == 1)
        CUBLAS_CHECK(cublasSgemm(h, ob, CUBLAS_OP_N, N, M, K, &one, Bm, (int)ldb, A, (int)lda, &zero, Cm, (int)ldc));
    else
        CUBLAS_CHECK(cublasSgemmStridedBatched(h, ob, CUBLAS_OP_N, N, M, K, &one, Bm, (int)ldb, sb, A, (int)lda, sa, &zero,
                                               Cm, (int)ldc, sc, batch));
}

extern "C" void matmul_forward_cuda(float *out, const float *inp, const float *weight, int N, int IC, int OC,
                                    cudaStream_t st) {
    cuda_sgemm(st, 1, N, OC, IC, inp, (size_t)IC, 0, weight, (size_t)IC, 0, out, (size_t)OC, 0, 1);
}

void cuda_sgemm_acc(cudaStream_t st, int a_trans, int b_trans, int M, int N, int K, const float *A, size_t lda,
                    const float *Bm, size_t ldb, float *Cm, size_t ldc) {
    if (M <= 0 || N <= 0 || K <= 0) return;
    cublasHandle_t h = cuda_cublas(st);
    if (!h) return;
    const float one = 1.0f;
    /* row-major C (M, N) += op(A)·op(B)  <=>  column-major Cᵀ += op(B)ᵀ·op(A)ᵀ; the column-major
     * view of a row-major operand is its transpose, so each op flag carries over unchanged */
    CUBLAS_CHECK(cublasSgemm(h, b_trans ? CUBLAS_OP_T : CUBLAS_OP_N, a_trans ? CUBLAS_OP_T : CUBLAS_OP_N, N, M, K, &one,
                             Bm, (int)ldb, A, (int)lda, &one, Cm, (int)ldc));
}

extern "C" void matmul_backward_cuda(float *dinp, float *dweight, const float *dout, const float *inp, const float *weight,
                                     int N, int IC, int OC, cudaStream_t st) {
    /* dinp (N, IC) += dout (N, OC) · W (OC, IC) */
    if (dinp) cuda_sgemm_acc(st, 0, 0, N, IC, OC, dout, (size_t)OC, weight, (size_t)IC, dinp, (size_t)IC);
    /* dW (OC, IC) += doutᵀ (OC, N) · inp (N, IC) */
    if (dweight) cuda_sgemm_acc(st, 1, 0, OC, IC, N, dout, (size_t)OC, inp, (size_t)IC, dweight, (size_t)IC);
}
