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

/* ---- attention.cu ----
 * z = causal softmax attention (ref/attention.c's contract, bf16 operands: the file's header) for
 * B sequences at once: query t of head h at q + b·q_b + t·q_t + h·DQ; key j of kv head
 * g = h / (NH/NKV) at k + b·k_b + j·k_j + g·DQ, its value at v + b·v_b + j·v_j + g·DV; z at
 * z + b·z_b + t·z_t + h·DV (strides in floats). Query t sees keys 0..pos0 + t (Tk in all).
 * 0, or -1 (nothing launched) when the heads are too wide for the GPU's shared memory:
 * flash_attention_fits(DQ, DV) says so beforehand. */
int flash_attention_fits(int DQ, int DV);
int flash_attention_bf16(float *z, const float *q, const float *k, const float *v, int B, int T, int pos0, int Tk,
                         int NH, int NKV, int DQ, int DV, size_t q_b, size_t q_t, size_t k_b, size_t k_j, size_t v_b,
                         size_t v_j, size_t z_b, size_t z_t, float scale, cudaStream_t st);

/* ---- moe.cu: the routed experts' products, grouped (the file's header) ----
 * X (NK, C) bf16 rows sorted by expert, off (E + 1) the device offsets (moe_sort_bf16); the
 * weights (E, Hm, C) and (E, C, Hm) bf16. act (NK, Hm) bf16 = silu(X·W_gateᵀ)·(X·W_upᵀ) per
 * expert; out (NK, C) fp32 = act·W_downᵀ per expert. No host synchronisation. */
/* The (token, slot) pairs of idx (NK) sorted by expert: off (E + 1) row offsets, perm[pos] = nk,
 * inv[nk] = pos (-1 for an id outside [0, E)); cnt (2·E ints) scratch. The order inside an
 * expert's rows is not fixed (atomics), which no output depends on. No host synchronisation. */
void moe_sort_bf16(int *off, int *perm, int *inv, int *cnt, const int *idx, size_t NK, int E, cudaStream_t st);
void grouped_swiglu_bf16(bf16 *act, const bf16 *X, const bf16 *w_gate, const bf16 *w_up, const int *off, size_t NK, int E,
                         int C, int Hm, cudaStream_t st);
void grouped_down_bf16(float *out, const bf16 *act, const bf16 *w_down, const int *off, size_t NK, int E, int C, int Hm,
                       cudaStream_t st);

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
    float *eo;            /* (N·K, C) routed experts' outputs, sorted */
    int *off, *perm, *inv;/* (E + 1), (N·K), (N·K) the sort by expert (moe_sort_bf16) */
    int *cnt;             /* (2·E) its counts and cursors */
};

#endif
