/* matmul.cu (CUDA twin of ref/matmul.c): out (N, OC) = inp (N, IC) · weight (OC, IC)ᵀ through
 * cuBLAS sgemm in pedantic fp32 (no TF32). Row-major C = A·Bᵀ is column-major Cᵀ = B·Aᵀ, so the
 * call is sgemm(T, N, OC, N, IC, W, IC, X, IC, out, OC). cuBLAS sums each dot product in its own
 * blocked order; the reference sums left to right (docs/cuda.md has the measured difference). */
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
