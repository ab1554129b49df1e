/* cpu.h: the fast CPU twins of the reference (OpenBLAS for matrix products, OpenMP over the two
 * cores for the loops BLAS does not cover).
 *
 * Every function here has a twin in ref/ with the same stem and the same argument list, and a
 * backend suffix: `_blas` for the matrix product itself, `_cpu` for everything built on it.
 * tests/test_fast_cpu.c checks each one against its twin (nice and awkward shapes, NaN/Inf
 * positions first, guard bytes around outputs); `seek verify` checks the whole forward stage by
 * stage through the hook names. Cheap ops (embedding, RoPE, routing selection, sampling) are not
 * duplicated: the CPU forward calls the ref/ functions. RMSNorm has a twin only to spread its rows
 * over the threads (bit-identical to the reference).
 *
 * What differs from the reference, by design (docs/fast-cpu.md):
 *   - sums run in BLAS's order (blocked, vectorised), not strictly left to right;
 *   - attention is one pass over blocks of ATT_BLOCK keys with an online softmax (running max and
 *     rescaled sum, denominator still in double), so it needs no score buffer: the `row` scratch
 *     of the reference's argument list is accepted and unused;
 *   - routed experts run one GEMM per expert over the tokens that chose it;
 *   - with two or more threads, attention heads (forward with a pattern, and backward) and
 *     routed experts run whole on every thread at once rather than one after another with each
 *     small product split. That needs per-thread room beyond the reference's one-thread scratch:
 *     a named workspace slot (workspace.c) grown on first use and kept, so a training loop
 *     allocates it once. Without it (one thread, or out of memory) the twins fall back to their
 *     one-at-a-time paths, which need only the reference's scratch: moe_forward_cpu then borrows
 *     buffers it writes last as the gather space (see moe.c).
 * Training twins (backward of every op above, cross-entropy, AdamW) follow the same rules; each
 * backward ACCUMULATES into its gradients as the reference does.
 * There is no orchestration here: the model forward, backward, MTP, the training step and
 * generation are ref/'s own code, which calls these twins through the switch of ref/backend.h
 * (fast/backend.c) when the run state says BACKEND_CPU.
 * Shapes and argument order are the reference's (ref/ops.h, ref/mla.h, ref/moe.h). Built only
 * with OpenBLAS (SEEK_HAVE_BLAS); without it the CPU backend is absent and the CLI says so.
 */
#ifndef SEEK_FAST_CPU_H
#define SEEK_FAST_CPU_H

#include "forward.h"
#include "model.h"
#include "train.h"
#include "train_parts.h"

#ifdef SEEK_HAVE_BLAS

/* Keys per block in the online-softmax attention (a stack array of this many scores per thread). */
#define ATT_BLOCK 256

/* matmul.c: out (N, OC) = inp (N, IC) · weight (OC, IC)ᵀ through cblas_sgemm (sgemv when N = 1). */
void matmul_forward_blas(float *out, const float *inp, const float *weight, int N, int IC, int OC);

/* attention.c: twin of attention_forward (ref/attention.c). OpenMP over (head, query row). */
void attention_forward_cpu(float *z, float *scores, float *pattern, const float *q, const float *k, const float *v,
                           int T, int pos0, int Tk, int NH, int NKV, int DQ, int DV, size_t k_stride, size_t v_stride,
                           float scale, float *row);

/* rmsnorm.c: twins of ref/rmsnorm.c, rows over the threads, bit-identical to the reference. */
void rmsnorm_forward_cpu(float *out, float *rstd, const float *inp, const float *weight, int N, int C, float eps);
void rmsnorm_backward_cpu(float *dinp, float *dweight, const float *dout, const float *inp, const float *weight,
                          const float *rstd, int N, int C);

/* mlp.c: twin of swiglu_forward (ref/mlp.c). */
void swiglu_forward_cpu(float *out, float *gate, float *up, float *act, const float *inp, const float *w_gate,
                        const float *w_up, const float *w_down, int N, int C, int H);

/* mla.c: twins of ref/mla.c. The absorbed form runs W_UK and W_UV as one GEMM per head. */
void mla_q_forward_cpu(float *q, float *q_a, float *q_latent, float *q_rstd, const float *x, const LayerWeights *w,
                       const Config *cfg, int N);
void mla_kv_forward_cpu(float *latent, float *k_pe, float *kv_a, float *kv_rstd, const float *x, const LayerWeights *w,
                        const Config *cfg, int N);
void mla_attend_naive_cpu(float *z, float *scores, float *pattern, float *kv, float *k, float *v, const float *q,
                          const float *latent, const float *k_pe, const LayerWeights *w, const Config *cfg, int T,
                          int pos0, int Tk, float *row);
void mla_attend_absorb_cpu(float *z, float *scores, float *pattern, float *q_abs, float *o_lat, const float *q,
                           const float *latent, const float *k_pe, const LayerWeights *w, const Config *cfg, int T,
                           int pos0, int Tk, float *row);

/* moe.c: twins of ref/moe.c. The router's scoring arithmetic is the reference's, operation for
 * operation (only the logits GEMM differs); selection is ref's moe_select itself. */
void moe_router_scores_cpu(float *logits, float *scores, float *choice, const float *inp, const float *router,
                           const float *bias, int N, const Config *cfg);
/* Needs out, routed and shared distinct from inp (they are in the forward). */
void moe_forward_cpu(float *out, float *routed, float *shared, float *eg, float *eu, float *ea, float *eo, float *sg,
                     float *su, float *sa, const float *inp, const int *idx, const float *weights, const LayerWeights *w,
                     int N, const Config *cfg);

/* ---- training: backward twins (every one ACCUMULATES into its gradients, as ref/) ---- */

/* matmul.c: dinp (N, IC) += dout·W and dW (OC, IC) += doutᵀ·inp as two sgemm with beta = 1
 * (sgemv and sger for one row); either gradient may be NULL. */
void matmul_backward_blas(float *dinp, float *dweight, const float *dout, const float *inp, const float *weight, int N,
                          int IC, int OC);
/* attention.c: twin of attention_backward. With two or more threads, KV heads over the threads
 * (a thread owns a KV head and the query heads that share it, so GQA's shared dk/dv rows see no
 * race), each thread's dP in the workspace; otherwise head after head with dP in `row`. */
void attention_backward_cpu(float *dq, float *dk, float *dv, const float *dz, const float *pattern, const float *q,
                            const float *k, const float *v, int T, int NH, int NKV, int DQ, int DV, size_t k_stride,
                            size_t v_stride, float scale, float *row);
/* mlp.c: twin of swiglu_backward (six BLAS products; scratch 3·N·H as the reference). */
void swiglu_backward_cpu(float *dinp, float *dw_gate, float *dw_up, float *dw_down, const float *dout, const float *inp,
                         const float *gate, const float *up, const float *act, const float *w_gate, const float *w_up,
                         const float *w_down, int N, int C, int H, float *scratch);
/* mla.c: twins of the MLA backward pieces (ref/mla.h; the same scratch sizes). */
void mla_attend_naive_backward_cpu(float *dq, float *dlatent, float *dk_pe, float *dw_kvb, const float *dz,
                                   const float *pattern, const float *q, const float *latent, const float *k,
                                   const float *v, const LayerWeights *w, const Config *cfg, int T, float *scratch);
void mla_kv_backward_cpu(float *dx, LayerWeights *g, const float *dlatent, const float *dk_pe, const float *x,
                         const float *kv_a, const float *kv_rstd, const LayerWeights *w, const Config *cfg, int N,
                         float *scratch);
void mla_q_backward_cpu(float *dx, LayerWeights *g, const float *dq, const float *x, const float *q_a,
                        const float *q_latent, const float *q_rstd, const LayerWeights *w, const Config *cfg, int N,
                        float *scratch);
/* moe.c: twin of moe_backward: tokens gathered per expert, the expert's backward as GEMMs
 * (scratch: the reference's moe_backward_scratch(cfg, N)). */
void moe_backward_cpu(float *dinp, LayerWeights *g, const float *dout, const float *dscores, const float *inp,
                      const int *idx, const float *weights, const float *scores, const float *eg, const float *eu,
                      const float *ea, const float *eo, const float *sg, const float *su, const float *sa,
                      const LayerWeights *w, int N, const Config *cfg, float *scratch);
/* loss.c: twins of ref/loss.c, rows over the cores, one float exponential per logit. */
double crossentropy_forward_cpu(float *probs, const float *logits, const int *targets, const float *weights, int N, int V,
                                int *count);
void crossentropy_backward_cpu(float *dlogits, float dloss, const float *probs, const int *targets,
                               const float *weights, int N, int V, int count);
/* optim.c: twins of ref/optim.c over the cores; AdamW and clipping are bit-identical to ref. */
void adamw_step_cpu(Model *m, const Model *grads, float *mom1, float *mom2, const AdamWConfig *c, float lr, int t);
double grad_global_norm_cpu(const Model *grads);
float grad_clip_cpu(Model *grads, double norm, double max_norm);
/* Profiling for `seek bench` (program tier, one application thread): while cpu_gemm_stats is
 * not NULL every sgemm/sgemv issued by this backend adds 2·M·N·K flops and its time in
 * core-seconds over the team size (matmul.c: a product split over both of two threads counts its
 * wall time, one of two products running side by side on two threads half its time), so
 * flops / seconds compares with OpenBLAS's own threaded peak. */
typedef struct {
    double seconds;
    double flops;
    long calls;
} CpuGemmStats;
extern CpuGemmStats *cpu_gemm_stats;

/* Runs OpenBLAS single-threaded when OpenMP is present (matmul.c: the products are split over
 * the OpenMP threads instead, one thread pool); idempotent, called by every product. */
void cpu_blas_init(void);

/* Internal: C (M, N) = A (M, K) · op(B), op(B) = Bᵀ with B (N, K) when b_trans, else B (K, N);
 * leading dimensions in floats. Used by the twins for per-head and per-expert products. */
void cpu_sgemm(int b_trans, int M, int N, int K, const float *A, size_t lda, const float *Bm, size_t ldb, float *Cm,
               size_t ldc);
/* Internal: C (M, N) += op(A)·op(B) (beta = 1, always sgemm); op(A) = Aᵀ with A (K, M) when
 * a_trans, else A (M, K); op(B) as above. The backward twins' accumulating products. */
void cpu_sgemm_acc(int a_trans, int b_trans, int M, int N, int K, const float *A, size_t lda, const float *Bm,
                   size_t ldb, float *Cm, size_t ldc);

/* Internal (workspace.c): per-thread room for the twins that run whole heads or experts on every
 * thread at once, beyond the reference's one-thread scratch. cpu_workspace returns slot `slot`
 * of the calling thread grown to at least `bytes` (64-byte aligned; kept for the next call, so
 * contents do not survive a call from another twin of the same slot), or NULL when memory runs
 * out, and the caller then takes its one-thread path. Call it outside parallel regions: the
 * caller's OpenMP team shares the buffer, each thread its own part. cpu_workspace_release frees
 * the calling thread's slots. cpu_team is the number of threads a twin may run whole heads or
 * experts on (1 inside a parallel region), cpu_thread the calling thread's number in its team
 * and cpu_thread_count the size of that team (1 outside a parallel region). */
enum { CPU_WS_ATTENTION, CPU_WS_MOE, CPU_WS_SLOTS };
void *cpu_workspace(int slot, size_t bytes);
void cpu_workspace_release(void);
int cpu_team(void);
int cpu_thread(void);
int cpu_thread_count(void);
/* Internal (workspace.c): p[0, n) = 0, large arrays (gradients, logits) over the threads. */
void cpu_zero(float *p, size_t n);

/* Internal: one query row of causal attention with an online softmax (attention.c), shared by
 * attention_forward_cpu and the absorbed MLA twin. Keys j = 0..n-1 score
 *   s_j = (q1·k1_j + q2·k2_j) · scale      (q1, k1: D1 values; q2, k2: D2 values, D2 may be 0)
 * and z (DV) = Σ_j softmax(s)_j · v_j. k1/k2/v rows are s1/s2/sv floats apart. When not NULL,
 * srow/prow (Tk) receive the scores (-inf past n) and the probabilities (0 past n). */
void cpu_attend_row(float *z, float *srow, float *prow, const float *q1, const float *k1, size_t s1, int D1,
                    const float *q2, const float *k2, size_t s2, int D2, const float *v, size_t sv, int DV, int n, int Tk,
                    float scale);

#endif /* SEEK_HAVE_BLAS */
#endif
