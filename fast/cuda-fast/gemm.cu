/* gemm.cu (fast/cuda-fast): matrix products on the tensor cores through cuBLASLt, bf16 operands
 * and fp32 accumulation (CUBLAS_COMPUTE_32F), and the fp32 -> bf16 conversion.
 *
 * Row-major y (N, OC) = x (N, IC) · Wᵀ, W (OC, IC), is column-major yᵀ (OC, N) = Wᵀ·xᵀ where the
 * row-major W is read as a column-major (IC, OC) matrix and transposed: transa = T, transb = N,
 * m = OC, n = N, k = IC, lda = ldb = IC, ldc = OC (the strict backend's cublasSgemm call, in
 * cuBLASLt's terms).
 *
 * Plans. cuBLASLt separates describing a product (an operation descriptor and three matrix
 * layouts) from choosing how to run it (the heuristic's algorithm), and asking the heuristic
 * costs tens of microseconds: each distinct (m, n, k, beta, operand alignment) gets one plan,
 * built on first use and kept (a small table, least recently built replaced when full). The
 * heuristic is told each pointer's real alignment (it assumes 256 bytes otherwise, and an
 * algorithm chosen for that may refuse a row offset into an expert's block).
 *
 * The handle, the plans and a 32 MiB workspace belong to the process (one GPU, like the device
 * context of fast/cuda) and are freed by cuda_release through cuda_fast_release. */
#include <cublasLt.h>
#include <stdint.h>
#include <string.h>

#include "cuda-fast/internal.cuh"

#define PLAN_MAX 256
#define LT_WORKSPACE (32u << 20)

typedef struct {
    int m, n, k, beta1, align; /* the key: the shape, beta != 0, the operands' common alignment */
    cublasLtMatmulDesc_t op;
    cublasLtMatrixLayout_t a, b, c;
    cublasLtMatmulAlgo_t algo;
} Plan;

static struct {
    cublasLtHandle_t lt;
    void *ws;
    Plan plan[PLAN_MAX];
    int n, next; /* plans held; the slot the next new plan replaces when full */
} G;

#define LT_CHECK(call)                                                                                  \
    do {                                                                                                \
        cublasStatus_t s_ = (call);                                                                     \
        if (s_ != CUBLAS_STATUS_SUCCESS) cuda_note_error(__FILE__, __LINE__, #call, cublasGetStatusString(s_)); \
    } while (0)

static void plan_free(Plan *p) {
    if (p->op) cublasLtMatmulDescDestroy(p->op);
    if (p->a) cublasLtMatrixLayoutDestroy(p->a);
    if (p->b) cublasLtMatrixLayoutDestroy(p->b);
    if (p->c) cublasLtMatrixLayoutDestroy(p->c);
    memset(p, 0, sizeof *p);
}

void cuda_fast_release(void) {
    for (int i = 0; i < G.n; i++) plan_free(&G.plan[i]);
    if (G.ws) cudaFree(G.ws);
    if (G.lt) cublasLtDestroy(G.lt);
    memset(&G, 0, sizeof G);
}

/* the largest power of two, up to 256, dividing every address (bytes) */
static int alignment(const void *a, const void *b, const void *c) {
    uintptr_t u = (uintptr_t)a | (uintptr_t)b | (uintptr_t)c;
    int al = 256;
    while (al > 1 && (u & (uintptr_t)(al - 1))) al >>= 1;
    return al;
}

/* the plan for (m, n, k, beta, align): found, or built; NULL after a failure (recorded) */
static Plan *plan_get(int m, int n, int k, int beta1, int align) {
    for (int i = 0; i < G.n; i++) {
        Plan *p = &G.plan[i];
        if (p->m == m && p->n == n && p->k == k && p->beta1 == beta1 && p->align == align) return p;
    }
    if (!G.lt) {
        LT_CHECK(cublasLtCreate(&G.lt));
        CU_CHECK(cudaMalloc(&G.ws, LT_WORKSPACE));
        if (!G.lt || !G.ws) return NULL;
    }
    Plan *p;
    if (G.n < PLAN_MAX) p = &G.plan[G.n++];
    else {
        p = &G.plan[G.next];
        G.next = (G.next + 1) % PLAN_MAX;
        plan_free(p);
    }
    cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
    int bad = 0;
#define TRY(call)                                                \
    do {                                                         \
        cublasStatus_t s_ = (call);                              \
        if (s_ != CUBLAS_STATUS_SUCCESS) {                       \
            cuda_note_error(__FILE__, __LINE__, #call, cublasGetStatusString(s_)); \
            bad = 1;                                             \
        }                                                        \
    } while (0)
    TRY(cublasLtMatmulDescCreate(&p->op, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    if (!bad) TRY(cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta));
    if (!bad) TRY(cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb));
    if (!bad) TRY(cublasLtMatrixLayoutCreate(&p->a, CUDA_R_16BF, k, m, k)); /* W as (IC, OC) column-major */
    if (!bad) TRY(cublasLtMatrixLayoutCreate(&p->b, CUDA_R_16BF, k, n, k)); /* x as (IC, N) */
    if (!bad) TRY(cublasLtMatrixLayoutCreate(&p->c, CUDA_R_32F, m, n, m));  /* y as (OC, N) */
    cublasLtMatmulPreference_t pref = NULL;
    size_t ws = LT_WORKSPACE;
    uint32_t al = (uint32_t)align;
    if (!bad) TRY(cublasLtMatmulPreferenceCreate(&pref));
    if (!bad) TRY(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws));
    const cublasLtMatmulPreferenceAttributes_t aligns[4] = {
        CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
        CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES};
    for (int i = 0; i < 4 && !bad; i++) TRY(cublasLtMatmulPreferenceSetAttribute(pref, aligns[i], &al, sizeof al));
    cublasLtMatmulHeuristicResult_t res;
    int found = 0;
    if (!bad) TRY(cublasLtMatmulAlgoGetHeuristic(G.lt, p->op, p->a, p->b, p->c, p->c, pref, 1, &res, &found));
    if (pref) cublasLtMatmulPreferenceDestroy(pref);
#undef TRY
    if (!bad && found < 1) {
        char what[96];
        snprintf(what, sizeof what, "cuBLASLt has no bf16 algorithm for m=%d n=%d k=%d (alignment %d)", m, n, k, align);
        cuda_note_error(__FILE__, __LINE__, what, "no heuristic result");
        bad = 1;
    }
    if (bad) {
        plan_free(p);
        if (p == &G.plan[G.n - 1]) G.n--;
        return NULL;
    }
    p->algo = res.algo;
    p->m = m;
    p->n = n;
    p->k = k;
    p->beta1 = beta1;
    p->align = align;
    return p;
}

void matmul_forward_bf16(float *out, const bf16 *inp, const bf16 *weight, int N, int IC, int OC, float beta,
                         cudaStream_t st) {
    if (N <= 0 || OC <= 0) return;
    if (IC <= 0) { /* an empty sum */
        if (beta == 0.0f) CU_CHECK(cudaMemsetAsync(out, 0, (size_t)N * OC * sizeof(float), st));
        return;
    }
    Plan *p = plan_get(OC, N, IC, beta != 0.0f, alignment(inp, weight, out));
    if (!p) return;
    const float alpha = 1.0f;
    LT_CHECK(cublasLtMatmul(G.lt, p->op, &alpha, weight, p->a, inp, p->b, &beta, out, p->c, out, p->c, &p->algo, G.ws,
                            LT_WORKSPACE, st));
}

__global__ static void to_bf16_kernel(bf16 *dst, const float *src, size_t n) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) dst[i] = __float2bfloat16_rn(src[i]);
}

void cuda_to_bf16(bf16 *dst, const float *src, size_t n, cudaStream_t st) {
    if (!n) return;
    to_bf16_kernel<<<cdiv(n, 256), 256, 0, st>>>(dst, src, n);
    LAUNCH_CHECK("to_bf16");
}

/* ---- the tests' entry point ---- */

extern "C" int matmul_forward_cuda_fast(float *out, const float *inp, const float *weight, int N, int IC, int OC,
                                        SeekErr *err) {
    if (cuda_fast_check(err)) return -1;
    cudaStream_t st = cuda_stream();
    cuda_check_error(NULL);
    bf16 *x = NULL, *w = NULL;
    CU_CHECK(cudaMalloc(&x, ((size_t)N * IC + 1) * sizeof(bf16)));
    CU_CHECK(cudaMalloc(&w, ((size_t)OC * IC + 1) * sizeof(bf16)));
    if (x && w) {
        cuda_to_bf16(x, inp, (size_t)N * IC, st);
        cuda_to_bf16(w, weight, (size_t)OC * IC, st);
        matmul_forward_bf16(out, x, w, N, IC, OC, 0.0f, st);
        CU_CHECK(cudaStreamSynchronize(st));
    }
    cudaFree(x);
    cudaFree(w);
    if (cuda_check_error(err)) return seek_fail_prefix(err, "matmul (cuda-fast)");
    return 0;
}
