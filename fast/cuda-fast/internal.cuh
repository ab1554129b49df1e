/* internal.cuh (fast/cuda-fast): what the bf16 backend's files share: the bf16 type, the GEMM on
 * the tensor cores, the conversions, and the backend's part of a model's CUDA context. */
#ifndef SEEK_FAST_CUDA_FAST_INTERNAL_CUH
#define SEEK_FAST_CUDA_FAST_INTERNAL_CUH

#include <cuda_bf16.h>

#include "cuda/internal.cuh"
#include "cuda-fast/cuda_fast.h"

typedef __nv_bfloat16 bf16;

/* ---- gemm.cu ---- */

/* out (N, OC) fp32 = inp (N, IC) · weight (OC, IC)ᵀ + beta·out, inp and weight bf16 (row-major,
 * leading dimensions IC), fp32 accumulation: one cuBLASLt matmul on the tensor cores, its plan
 * (descriptors and the heuristic's algorithm) cached per shape, beta and operand alignment.
 * beta = 1 adds into out (the residual add fused into the product). */
void matmul_forward_bf16(float *out, const bf16 *inp, const bf16 *weight, int N, int IC, int OC, float beta,
                         cudaStream_t st);
/* dst[i] = bf16(src[i]) (round to nearest even), n values */
void cuda_to_bf16(bf16 *dst, const float *src, size_t n, cudaStream_t st);

/* ---- the model's bf16 part (forward.cu) ---- */
struct CudaFastCtx {
    /* the bf16 weights: the fp32 device arena (CudaFwdCtx.d_arena) rounded, element for element,
     * so a weight's bf16 copy sits at the same offset as its fp32 one */
    bf16 *w16;
    size_t n_floats;
    const float *src;     /* the fp32 device arena it was made from */
    long uploads;         /* CudaModelCtx.uploads when it was made (a refresh makes it anew) */
    /* scratch, sized for N tokens (grown when a call needs more) */
    size_t N, xb_n;
    bf16 *xb;             /* (xb_n): the next product's input in bf16: N rows of the widest input,
                           * or a sequence's cached latents (Tmax, dkv) for the naive MLA form */
    bf16 *ex;             /* (N·K, C) routed experts' inputs, sorted by expert */
    bf16 *ea;             /* (N·K, Hm) routed experts' activations, sorted */
    float *eg, *eu, *eo;  /* (N·K, Hm), (N·K, Hm), (N·K, C) sorted gate, up and output rows */
    int *off, *perm, *inv;/* (E + 1), (N·K), (N·K) the sort by expert (cuda_moe_sort) */
    int off_h[CFG_MAX_EXPERTS + 1];
};

#endif
