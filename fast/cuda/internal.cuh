/* internal.cuh: what the fast/cuda files share: the two contexts (the device's and each model's),
 * the sticky error record, the cuBLAS handle, launch checks and block reductions. Not part of the
 * twin interface (that is cuda.h). */
#ifndef SEEK_FAST_CUDA_INTERNAL_CUH
#define SEEK_FAST_CUDA_INTERNAL_CUH

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <math.h>
#include <stdint.h>

#include "cuda/cuda.h"

/* ---- the device context (common.cu) ----
 * What every model and every twin on the GPU share: one per process (one GPU), the object
 * cuda_device() returns and nothing else holds. The stream, the cuBLAS handle (pedantic fp32) and
 * the workspace are created on first use and freed by cuda_release; the sticky error is the first
 * failure since cuda_check_error last cleared it. `models` lists the live model contexts without
 * owning them (each belongs to its Model, freed by model_free): cuda_release empties their device
 * memory, a context's own release takes it off the list. Single-threaded host code, like the rest
 * of the library tier. */
typedef struct CudaModelCtx CudaModelCtx;
typedef struct {
    int probed, usable;   /* cuda_backend_check asked the driver; a device can be used */
    char why[256];        /* why not, in one line */
    cudaStream_t stream;  /* blocking: ordered after the legacy default stream's copies */
    cublasHandle_t blas;  /* CUBLAS_PEDANTIC_MATH */
    int err_set;
    char err[SEEK_ERR_LEN]; /* the first failure: "cuda: file:line: call: reason" */
    void *ws;             /* the grow-only workspace (cuda_workspace) */
    size_t ws_bytes;
    CudaModelCtx *models; /* the live model contexts (a list through CudaModelCtx.next) */
} CudaDevice;
CudaDevice *cuda_device(void);

/* Records the first failure (file:line, the call, CUDA's reason); cuda_check_error reports it. */
void cuda_note_error(const char *file, int line, const char *what, const char *reason);
/* The device context's cuBLAS handle (pedantic fp32 math), bound to stream st. NULL after a failure. */
cublasHandle_t cuda_cublas(cudaStream_t st);

#define CU_CHECK(call)                                                                   \
    do {                                                                                 \
        cudaError_t e_ = (call);                                                         \
        if (e_ != cudaSuccess) cuda_note_error(__FILE__, __LINE__, #call, cudaGetErrorString(e_)); \
    } while (0)
#define CUBLAS_CHECK(call)                                                               \
    do {                                                                                 \
        cublasStatus_t s_ = (call);                                                      \
        if (s_ != CUBLAS_STATUS_SUCCESS) cuda_note_error(__FILE__, __LINE__, #call, cublasGetStatusString(s_)); \
    } while (0)
/* The state allocations of forward.cu, backward.cu and mtp.cu: n floats (at least one), zeroed;
 * after a failure (*rc set) nothing more is allocated and NULL comes back. cuda_dfree takes NULL. */
float *cuda_dalloc(size_t n, int *rc);
void cuda_dfree(void *p);
/* A host Model's weight tables moved onto a device copy of its arena (or of an arena laid out
 * like it: a gradient Model's): every LayerWeights (main layers, then the MTP modules' blocks),
 * the MTP modules' own tensors, and wte / final_norm / lm_head, each pointer at the same offset of
 * d_arena. 0, or -1 (recorded; nothing kept) when out of host memory or a pointer lies outside
 * the arena. Free the host tables with cuda_free_model_tables. */
typedef struct {
    LayerWeights *layers; /* (L + mtp_depth) */
    MtpWeights *mtp;      /* (mtp_depth) */
    float *wte, *final_norm, *lm_head;
} CudaModelTables;
int cuda_rebase_model(const Model *host, float *d_arena, CudaModelTables *t);
void cuda_free_model_tables(CudaModelTables *t);
/* after every launch */
#define LAUNCH_CHECK(what) CU_CHECK(cudaGetLastError())

static inline unsigned cdiv(size_t a, size_t b) { return (unsigned)((a + b - 1) / b); }

/* ---- block reductions (blockDim.x a multiple of 32, at most 1024) ---- */

__device__ inline double warp_sum_d(double v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
    return v;
}
__device__ inline float warp_max_f(float v) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_down_sync(0xffffffffu, v, o));
    return v;
}
/* Sum over the block, in double, returned to every thread. sh: 32 doubles of shared memory. */
__device__ inline double block_sum_d(double v, double *sh) {
    int lane = threadIdx.x & 31, wid = threadIdx.x >> 5, nw = (blockDim.x + 31) >> 5;
    v = warp_sum_d(v);
    __syncthreads(); /* sh may still be read by a previous reduction */
    if (lane == 0) sh[wid] = v;
    __syncthreads();
    double t = 0.0;
    if (wid == 0) {
        t = lane < nw ? sh[lane] : 0.0;
        t = warp_sum_d(t);
        if (lane == 0) sh[0] = t;
    }
    __syncthreads();
    return sh[0];
}
/* Max over the block (exact in any order; NaN-free inputs: fmaxf drops NaN, the caller decides). */
__device__ inline float block_max_f(float v, float *sh) {
    int lane = threadIdx.x & 31, wid = threadIdx.x >> 5, nw = (blockDim.x + 31) >> 5;
    v = warp_max_f(v);
    __syncthreads();
    if (lane == 0) sh[wid] = v;
    __syncthreads();
    float t = -INFINITY;
    if (wid == 0) {
        t = lane < nw ? sh[lane] : -INFINITY;
        t = warp_max_f(t);
        if (lane == 0) sh[0] = t;
    }
    __syncthreads();
    return sh[0];
}

/* C (M, N) = A (M, K) · op(B), row-major with leading dimensions in floats: op(B) = Bᵀ with B
 * (N, K) when b_trans, else B (K, N); `batch` products with element strides sa, sb, sc between
 * them (cublasSgemmStridedBatched). Pedantic fp32. */
void cuda_sgemm(cudaStream_t st, int b_trans, int M, int N, int K, const float *A, size_t lda, long long sa,
                const float *Bm, size_t ldb, long long sb, float *Cm, size_t ldc, long long sc, int batch);

/* C (M, N) += op(A)·op(B) (beta = 1), row-major: op(A) = Aᵀ with A (K, M) when a_trans, else A
 * (M, K); op(B) = Bᵀ with B (N, K) when b_trans, else B (K, N). Pedantic fp32. */
void cuda_sgemm_acc(cudaStream_t st, int a_trans, int b_trans, int M, int N, int K, const float *A, size_t lda,
                    const float *Bm, size_t ldb, float *Cm, size_t ldc);

/* rmsnorm.cu: N rows at strides in_stride / out_stride floats. */
void cuda_rmsnorm_rows(float *out, size_t out_stride, float *rstd, const float *inp, size_t in_stride,
                       const float *weight, int N, int C, float eps, cudaStream_t st);
/* rmsnorm.cu: the backward of N rows at strides (floats); dinp may be NULL. */
void cuda_rmsnorm_backward_rows(float *dinp, size_t dinp_stride, float *dweight, const float *dout, size_t dout_stride,
                                const float *inp, size_t inp_stride, const float *weight, const float *rstd, int N,
                                int C, cudaStream_t st);
/* mlp.cu: act = silu(gate)·up over n floats. */
void cuda_swiglu_act(float *act, const float *gate, const float *up, size_t n, cudaStream_t st);

/* The attention row kernel's operands (attention.cu), shared with absorbed MLA: for query row
 * (t, h) and key j <= pos0 + t:
 *   s_j = (q1·k1_j [+ q2·k2_j]) · scale   (each dot product a left-to-right float sum)
 *   z = Σ_j softmax(s)_j · v_j            (a left-to-right float sum per output element)
 * q1 = q1 + t·q1_t + h·q1_h (D1), q2 likewise (D2, may be 0); key j of kv head g = h / group:
 * k1 + j·k1_j + g·k1_g, k2 + j·k2_j + g·k2_g, v + j·v_j + g·v_g (DV); z + t·z_t + h·z_h. */
typedef struct {
    float *z, *scores, *pattern;
    const float *q1, *q2, *k1, *k2, *v;
    size_t q1_t, q1_h, q2_t, q2_h, k1_j, k1_g, k2_j, k2_g, v_j, v_g, z_t, z_h;
    int D1, D2, DV, T, pos0, Tk, NH, group;
    float scale;
} AttnRows;
void cuda_attend_rows(const AttnRows *a, cudaStream_t st);

/* mla.cu: the naive form's keys and values from the expanded latent kv (Tk, NH, dn + dv) and the
 * rope keys k_pe (Tk, dr): k (Tk, NH, dn + dr) = [kv[:, h, :dn] ; k_pe], v (Tk, NH, dv) = kv[:, h, dn:] */
void cuda_mla_assemble(float *k, float *v, const float *kv, const float *k_pe, int Tk, int NH, int dn, int dr, int dv,
                       cudaStream_t st);

/* ---- a model's context: its device copy and what runs on it ----
 * One per Model, hung on Model.dev by cuda_model_ctx on the model's first use on the GPU (with
 * Model.dev_free = cuda_model_ctx_free, which model_free calls), so two models keep their own
 * weights, run state, cache, gradients and MTP state side by side. Each part belongs to the file
 * that fills it; an empty part (all zero, as calloc makes it) is rebuilt on the next call. */

/* forward.cu: the device weights, run state and KV cache */
typedef struct {
    /* weights: a copy of the host arena, with the tables moved onto it */
    const float *arena;   /* the host arena the copy came from */
    size_t n_floats;
    Config cfg;           /* the config the run state and cache were sized for (a byte-wise copy) */
    uint64_t fp;          /* fingerprint of the host values (size and 4096 samples) at the last upload */
    float *d_arena;       /* (n_floats) device */
    float *wte, *final_norm, *lm_head;
    LayerWeights *layers; /* host array (L + D) of device pointers: the main layers, then each MTP module's block */
    MtpWeights *mtp;      /* host array (D) of device pointers: each MTP module's norms and eh_proj */
    int n_layers;
    /* run state */
    int have_rs, B, T, Tmax, with_attn, per_layer;
    RunState d;           /* device buffers, the reference's field names */
    float *logits;        /* (B·T, V) */
    /* cache */
    int have_kv;
    KVCache dkv;          /* device, the reference's layout */
    const KVCache *host_kv; /* the host cache it mirrors */
    int kv_len;           /* rows the device holds (-1: suspect, upload again) */
} CudaFwdCtx;

/* backward.cu: the device GradState, gradient arena and score gradients */
typedef struct {
    int have, B, T, L;
    size_t n_floats;
    Config cfg;         /* the config the buffers were sized for (a byte-wise copy) */
    GradState g;        /* device buffers, the reference's names */
    float *arena;       /* (n_floats) device gradients, laid out like the model */
    LayerWeights *gl;   /* host array (L + D) of device pointers into arena (the MTP blocks last) */
    MtpWeights *gmtp;   /* host array (D) of device pointers into arena */
    float *wte, *final_norm, *lm_head;
    float **dscores;    /* (L) device (N, E) for MoE layers, else NULL */
    float *dh0;         /* (N, C) the MTP loss's gradient on the final norm's output (TrainBuffers.dh0) */
    float *weights;     /* (N) the batch's per-position loss weights (TrainBatch.weights), when it has them */
} CudaGradCtx;

/* mtp.cu: the device depths and the public twins' h0/dh0 staging */
typedef struct {
    int have, D, B, T;
    Config cfg;          /* the config the depths were sized for (a byte-wise copy) */
    MtpDepth *d;         /* (D) device mirrors: host structs, device pointers, the reference's names */
    const MtpState *fwd; /* the host MtpState of the last forward (its saved values are here) */
    float *h0, *dh0;     /* (B, T, C) staging for the public twins' host h0 and dh0 */
} CudaMtpCtx;

/* fast/cuda-fast: the bf16 backend's part (its weights in bf16, its scratch), defined there */
typedef struct CudaFastCtx CudaFastCtx;

struct CudaModelCtx {
    CudaFwdCtx fwd;     /* also the bf16 backend's: the fp32 weights, run state and KV cache */
    CudaGradCtx grad;
    CudaMtpCtx mtp;
    CudaFastCtx *fast;  /* the bf16 backend's own part (fast/cuda-fast/internal.cuh); NULL until it runs */
    long uploads;        /* copies of the host weights to the device: first uploads and refreshes (tests) */
    CudaModelCtx *next;  /* CudaDevice.models */
};
/* common.cu: m's context (m->dev), created and listed on first use; NULL when out of host memory
 * or when m->dev belongs to another backend (recorded in the sticky error). */
CudaModelCtx *cuda_model_ctx(const Model *m);
/* common.cu: Model.dev_free: empties the context's device memory, takes it off the list, frees it. */
extern "C" void cuda_model_ctx_free(void *dev);
/* each file empties its part (device memory and host tables freed, the part zeroed: rebuilt on the
 * next call); cuda_release and cuda_model_ctx_free call them, MTP first, the weights last */
void cuda_forward_empty(CudaModelCtx *x);
void cuda_backward_empty(CudaModelCtx *x);
void cuda_mtp_empty(CudaModelCtx *x);
void cuda_fast_empty(CudaModelCtx *x); /* fast/cuda-fast/forward.cu: frees x->fast */
void cuda_fast_release(void);          /* fast/cuda-fast/gemm.cu: the cuBLASLt handle, plans, workspace */

/* forward.cu: m's context with its weights on the device (uploaded, or refreshed when the host
 * values changed); NULL on failure (recorded in the sticky error). */
CudaModelCtx *cuda_model_upload(const Model *m);

/* forward.cu: what the last model_forward_cuda of x's model left on the device, for backward.cu
 * and mtp.cu: the device run state (every layer's saved values when it ran a training run state),
 * the device cache, the device weights and logits (B·T, V). */
typedef struct {
    RunState *d;
    KVCache *kv;
    const LayerWeights *layers; /* (L + D): the main layers, then each MTP module's block */
    const float *wte, *final_norm, *lm_head;
    const MtpWeights *mtp;      /* (D) each MTP module's norms and eh_proj */
    float *logits;
} CudaForwardState;
void cuda_forward_state(CudaModelCtx *x, CudaForwardState *f);
/* forward.cu, for the bf16 backend's forward (fast/cuda-fast), which shares the fp32 weights, the
 * run state and the device cache: m's context with its weights current, its device run state
 * sized like s and its device cache holding kv's rows (NULL on failure, recorded in the sticky
 * error). */
CudaModelCtx *cuda_forward_setup(const Model *m, const RunState *s, KVCache *kv, cudaStream_t st);
/* forward.cu: the hook bridge (the file's header): a (B, T, d1[, d2]) device tensor, or a
 * (B, NH, T, Tk) attention tensor held in rows of Tmax, copied to the host RunState buffer of the
 * same name only when the cache wants the stage or edits; an edit goes back to the device. */
void cuda_hook_dev(ActCache *h, float *dev, float *host, int B, int T, size_t d1, size_t d2, const char *px,
                   const char *stage, cudaStream_t st);
void cuda_hook_attn_dev(ActCache *h, const float *dev, float *host, int B, int NH, int T, int Tk, int Tmax,
                        const char *px, const char *stage, cudaStream_t st);
/* forward.cu: the attention blocks' steps between the projections and attention's core (RoPE,
 * the hooks of the rotated q and k, the new rows appended to the device cache), for both backends */
void cuda_llama_rope_append(RunState *s, KVCache *kv, LayerState *a, LayerState *ha, const Config *c, int l,
                            const char *px, int B, int T, int pos0, ActCache *hooks, cudaStream_t st);
void cuda_mla_rope_append(RunState *s, RunState *hs, KVCache *kv, LayerState *a, LayerState *ha, const Config *c,
                          int l, const char *px, int B, int T, int pos0, ActCache *hooks, cudaStream_t st);
void cuda_mla_hook_expanded(ActCache *hooks, LayerState *a, LayerState *ha, const char *px, int B, int Tk,
                            const Config *c, cudaStream_t st);
/* forward.cu: y[i] = (float)x[i] (expert indices for their hook) */
void cuda_int_to_float(float *y, const int *x, size_t n, cudaStream_t st);

/* ---- what the MTP module (mtp.cu) shares with forward.cu and backward.cu ---- */

/* forward.cu: a device RunState with the shapes of the host one s (B, T, Tmax, with_attn,
 * per_layer) for config c (c->L layers), ref/forward.c's runstate_alloc on the device, the
 * frequency table copied from s. 0, or -1 (recorded in the sticky error; d left empty). */
int cuda_runstate_alloc(RunState *d, const Config *c, const RunState *s);
void cuda_runstate_free(RunState *d);
/* forward.cu: twin of block_forward on the device run state d (d->x in place), device layer state
 * a, device cache kv (row kv_layer); hs/ha the host ones, read only when hooks is not NULL. */
void block_forward_cuda(const Model *m, RunState *d, RunState *hs, KVCache *kv, const LayerWeights *w, LayerState *a,
                        LayerState *ha, int kv_layer, const char *px, int B, int T, int pos0, AttnMode mode,
                        ActCache *hooks, cudaStream_t st);

/* backward.cu: the device gradient arena (laid out like the gradient Model) and its named views. */
typedef struct {
    float *arena;
    LayerWeights *layers;       /* (L + D) device pointers into arena */
    MtpWeights *mtp;            /* (D) */
    float *wte, *final_norm, *lm_head;
} CudaGrads;
/* Sizes (when the shapes change) x's device GradState for B×T and gradient arena for grads'
 * layout (m: x's model), and fills g. 0, or -1 (recorded in the sticky error). */
int cuda_grads(CudaModelCtx *x, const Model *m, const Model *grads, int B, int T, CudaGrads *g);
/* backward.cu: a device GradState of gradstate_init's sizes (no logits) for config c, B×T tokens. */
int cuda_gradstate_alloc(GradState *g, const Config *c, int B, int T);
void cuda_gradstate_free(GradState *g);
/* backward.cu: twin of block_backward (g->dx in place) on device state. */
void block_backward_cuda(LayerWeights *gw, GradState *g, const Config *c, const RunState *s, const KVCache *kv,
                         const LayerWeights *w, const LayerState *a, int kv_layer, const float *dscores, int B, int T,
                         cudaStream_t st);

/* mtp.cu: the bodies of mtp_forward_cuda / mtp_backward_cuda with h0 and dh0 (B, T, C) on the
 * device (train_step_grads_cuda passes the main forward's xnf and its own dh0), on the depths of
 * x (m's context): the forward on the device weights f, filling the host MtpState as
 * mtp_forward_cuda does; the backward accumulating into the device gradients g and dh0, after a
 * forward of the same MtpState on the same model. */
int cuda_mtp_forward_dev(CudaModelCtx *x, const Model *m, const CudaForwardState *f, MtpState *ms, const int *ids,
                         const int *targets, const float *h0, SeekErr *err);
void cuda_mtp_backward_dev(CudaModelCtx *x, const CudaGrads *g, const CudaForwardState *f, const Model *m,
                           const MtpState *ms, float scale, float *dh0, cudaStream_t st);

#endif
