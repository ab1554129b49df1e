/* cuda_fast.h: the optimized CUDA backend, `--backend cuda-fast` (docs/cuda-fast.md).
 *
 * The strict `cuda` backend (fast/cuda) is the GPU's exact twin of the reference, fp32 throughout.
 * This one trades exactness for speed the way mixed-precision training does: the matrix products
 * run on the tensor cores in bfloat16 (both operands rounded to bf16, products accumulated in
 * fp32, through cuBLASLt), while the residual stream, the norms, RoPE, the softmaxes, the router
 * and every reduction stay fp32. It is not held to the reference's fp32 tolerances but to a
 * measured baseline: `seek verify --backend cuda-fast` runs the reference a second time with the
 * same values rounded to bf16 at the same points (ref/precision.h) and holds every stage to twice
 * that run's distance from the fp32 reference.
 *
 * What runs here: the forward (prefill, decode through the KV cache, every hook stage, both MLA
 * attention forms) with flash attention and grouped expert GEMMs, so `seek verify`, `forward`,
 * `generate`, `bench` and the REPL take it. Training and CUDA-graph decoding are not built
 * (docs/cuda-fast.md, "Status").
 *
 * The interface is the reference's, host pointers as in ref/forward.h; the device state lives in
 * the model's CUDA context (fast/cuda/internal.cuh: the fp32 weights, run state and cache are
 * shared with the strict backend; the bf16 weights and scratch are this backend's own part).
 */
#ifndef SEEK_FAST_CUDA_FAST_H
#define SEEK_FAST_CUDA_FAST_H

#ifdef __cplusplus
extern "C" {
#endif
#include "forward.h"
#include "model.h"

#ifdef SEEK_HAVE_CUDA
/* 0 when the GPU can run it (a CUDA device with bf16 tensor cores: compute capability 8.0 or
 * newer); else -1 and a one-line reason. */
int cuda_fast_check(SeekErr *err);
/* model_forward (ref/forward.h) on the bf16 path: the same arguments, hooks and cache contract
 * as model_forward_cuda (fast/cuda/cuda.h). */
int model_forward_cuda_fast(const Model *m, RunState *s, KVCache *kv, const int *ids, int B, int T, AttnMode mode,
                            ActCache *hooks, float *hidden, float *logits, SeekErr *err);
/* Where a forward's time goes (seek bench --profile): on (1) clears the totals and starts timing
 * each phase of every forward with CUDA events; off (0) stops. cuda_fast_profile_get fills up to
 * n phases' milliseconds (summed over the forwards since it was switched on) and names; returns
 * the number of phases. */
void cuda_fast_profile(int on);
int cuda_fast_profile_get(double *ms, const char **names, int n);
/* For tests: the twin of matmul_forward under ref_precision = PRECISION_BF16 (ref/precision.h):
 * out (N, OC) = bf16(inp) (N, IC) · bf16(weight) (OC, IC)ᵀ, fp32 accumulation, on device
 * pointers (fp32 in and out: both operands are rounded to bf16 first, as the model's products
 * see them). 0, or -1 with the reason. */
int matmul_forward_cuda_fast(float *out, const float *inp, const float *weight, int N, int IC, int OC, SeekErr *err);
/* For tests: the twin of attention_forward under the bf16 emulation (flash attention on the
 * tensor cores; fast/cuda-fast/attention.cu), one sequence, the reference's arguments on device
 * pointers (no scores or pattern). 0, or -1 with the reason. */
int attention_forward_cuda_fast(float *z, const float *q, const float *k, const float *v, int T, int pos0, int Tk,
                                int NH, int NKV, int DQ, int DV, size_t k_stride, size_t v_stride, float scale,
                                SeekErr *err);
#endif

#ifdef __cplusplus
}
#endif
#endif
