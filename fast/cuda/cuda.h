/* cuda.h: the CUDA twins of the reference (fp32, strict): every function has a twin in ref/ with
 * the same stem and the same argument list plus a trailing cudaStream_t, and the suffix `_cuda`.
 *
 * Memory: every tensor argument of a twin is a DEVICE pointer (cudaMalloc'd), shaped exactly as
 * the reference's (ref/ops.h, ref/mla.h, ref/moe.h); a `const LayerWeights *w` argument is a host
 * struct whose fields point into device memory (cuda_model_weights builds one), and `const Config *`
 * stays a host struct. The reference's one-row `row` scratch (attention) is accepted and unused,
 * as in the CPU twins. Twins that need more room than their arguments give (MoE dispatch, the
 * routing selection) take it from one grow-only device workspace owned by the device context
 * (cuda_workspace), reserved up front by the model forward, never freed in layer code.
 *
 * Contexts (fast/cuda/internal.cuh). The device context, one per process (one GPU): the stream,
 * the cuBLAS handle, the sticky error and the workspace, created on first use, freed by
 * cuda_release. And one context per model: the model-level calls (model_forward_cuda, the training
 * steps, the MTP twins, cuda_model_layers) keep a model's device weights, run state, KV cache,
 * gradient and MTP state on the Model itself (Model.dev, created on the model's first use on the
 * GPU, freed by model_free through Model.dev_free), so two models run side by side, each uploaded
 * once, neither evicting the other.
 *
 * Numbers (docs/cuda.md): strict fp32. Matrix products go through cuBLAS with
 * CUBLAS_PEDANTIC_MATH (no TF32, no reduced-precision reductions); every other op is a kernel
 * written here that keeps the reference's arithmetic: the same float operations in the same order
 * where one thread owns a sum (attention's dot products and P·V sums, the expert combine, the
 * routing selection), the long reductions (RMSNorm statistics, softmax denominators) in double,
 * and no fused multiply-add (nvcc -fmad=false), so x*y+z rounds twice as it does in the reference
 * built for plain x86-64. The differences left are cuBLAS's summation order and the CUDA
 * libdevice transcendentals (expf, cosf, sinf within 2 ulp of glibc's).
 *
 * Errors: twins are void like the reference. A failed launch or CUDA/cuBLAS call is recorded in
 * the device context's sticky error (the first one, with file:line and the CUDA reason);
 * cuda_check_error() reports it and clears it. The model forward returns it as a SeekErr.
 *
 * Built when the Makefile finds nvcc (SEEK_HAVE_CUDA); at run time cuda_backend_check() says in
 * one line why a machine without a usable GPU cannot run it.
 */
#ifndef SEEK_FAST_CUDA_H
#define SEEK_FAST_CUDA_H

#ifdef __cplusplus
extern "C" { /* the reference's headers are C */
#endif
#include "forward.h"
#include "model.h"
#include "train.h"
#include "train_parts.h"
#ifdef __cplusplus
}
#endif

#ifdef SEEK_HAVE_CUDA
#include <cuda_runtime_api.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- the device context (common.cu) ---- */

/* 0 when a CUDA device can be used; else -1 and a one-line reason ("no CUDA device", driver). */
int cuda_backend_check(SeekErr *err);
/* The device context's stream (created on first use; every model-level call runs on it). */
cudaStream_t cuda_stream(void);
/* First recorded CUDA/cuBLAS error since the last call, or 0; clears it. */
int cuda_check_error(SeekErr *err);
/* A device workspace of at least `bytes` (grow-only; growing synchronises the device). */
void *cuda_workspace(size_t bytes);
/* Frees everything on the device: every live model context's device memory (weights, run state,
 * cache, gradients, MTP state: the contexts stay with their Models, empty, for model_free to free;
 * a later call uploads again), then the workspace, the cuBLAS handle and the stream. */
void cuda_release(void);
/* For tests: how many times m's weights went to the device (the first upload, and each refresh
 * after its host values changed); 0 before its first use on the GPU. */
long cuda_model_uploads(const Model *m);
/* For tests: the model contexts alive (created, not yet freed by model_free). */
int cuda_live_models(void);

/* ---- the twins (device pointers; shapes as ref/) ---- */

/* embedding.cu */
void embedding_forward_cuda(float *out, const int *ids, const float *wte, int N, int C, cudaStream_t st);
/* rmsnorm.cu */
void rmsnorm_forward_cuda(float *out, float *rstd, const float *inp, const float *weight, int N, int C, float eps,
                          cudaStream_t st);
/* matmul.cu: cuBLAS sgemm, pedantic fp32 */
void matmul_forward_cuda(float *out, const float *inp, const float *weight, int N, int IC, int OC, cudaStream_t st);
/* rope.cu: inv_freq (rd/2) is a device copy of rope_inv_freq's table (YaRN included). */
void rope_forward_cuda(float *out, const float *inp, int n_vec, size_t stride, int pos, const float *inv_freq,
                       float attn_factor, int rd, RopeLayout layout, cudaStream_t st);
/* attention.cu */
void attention_forward_cuda(float *z, float *scores, float *pattern, const float *q, const float *k, const float *v,
                            int T, int pos0, int Tk, int NH, int NKV, int DQ, int DV, size_t k_stride, size_t v_stride,
                            float scale, float *row, cudaStream_t st);
/* mlp.cu */
void swiglu_forward_cuda(float *out, float *gate, float *up, float *act, const float *inp, const float *w_gate,
                         const float *w_up, const float *w_down, int N, int C, int H, cudaStream_t st);
/* mla.cu */
void mla_q_forward_cuda(float *q, float *q_a, float *q_latent, float *q_rstd, const float *x, const LayerWeights *w,
                        const Config *cfg, int N, cudaStream_t st);
void mla_kv_forward_cuda(float *latent, float *k_pe, float *kv_a, float *kv_rstd, const float *x, const LayerWeights *w,
                         const Config *cfg, int N, cudaStream_t st);
void mla_attend_naive_cuda(float *z, float *scores, float *pattern, float *kv, float *k, float *v, const float *q,
                           const float *latent, const float *k_pe, const LayerWeights *w, const Config *cfg, int T,
                           int pos0, int Tk, float *row, cudaStream_t st);
void mla_attend_absorb_cuda(float *z, float *scores, float *pattern, float *q_abs, float *o_lat, const float *q,
                            const float *latent, const float *k_pe, const LayerWeights *w, const Config *cfg, int T,
                            int pos0, int Tk, float *row, cudaStream_t st);
/* moe.cu. moe_select_cuda's scratch (the reference's E + G floats for one token) is unused: each
 * token's selection runs in one thread on shared memory. idx/weights are device arrays. */
void moe_router_scores_cuda(float *logits, float *scores, float *choice, const float *inp, const float *router,
                            const float *bias, int N, const Config *cfg, cudaStream_t st);
void moe_select_cuda(int *idx, float *weights, const float *scores, const float *choice, int N, const Config *cfg,
                     float *scratch, cudaStream_t st);
void moe_forward_cuda(float *out, float *routed, float *shared, float *eg, float *eu, float *ea, float *eo, float *sg,
                      float *su, float *sa, const float *inp, const int *idx, const float *weights, const LayerWeights *w,
                      int N, const Config *cfg, cudaStream_t st);

/* ---- backward twins (device pointers; every one ACCUMULATES into its gradients, as ref/) ----
 * Scratch arguments are device buffers of the sizes the reference states. No float atomics:
 * every sum has one owner thread or a fixed reduction tree, so two runs are bitwise identical. */

/* embedding.cu: dwte[ids[n]] += dout[n], each row of dwte summed over its tokens in token order. */
void embedding_backward_cuda(float *dwte, const float *dout, const int *ids, int N, int C, cudaStream_t st);
/* rmsnorm.cu: the row dot in double; dweight summed over the rows in row order, one thread a column. */
void rmsnorm_backward_cuda(float *dinp, float *dweight, const float *dout, const float *inp, const float *weight,
                           const float *rstd, int N, int C, cudaStream_t st);
/* matmul.cu: dinp += dout·W and dweight += doutᵀ·inp, two pedantic sgemm with beta = 1 (either may be NULL). */
void matmul_backward_cuda(float *dinp, float *dweight, const float *dout, const float *inp, const float *weight, int N,
                          int IC, int OC, cudaStream_t st);
/* rope.cu: the transpose of the rotation, in place when dinp == dout (not accumulating, as ref/). */
void rope_backward_cuda(float *dinp, const float *dout, int n_vec, size_t stride, int pos, const float *inv_freq,
                        float attn_factor, int rd, RopeLayout layout, cudaStream_t st);
/* mlp.cu: scratch 3·N·H floats (dact, dgate, dup), as the reference. */
void swiglu_backward_cuda(float *dinp, float *dw_gate, float *dw_up, float *dw_down, const float *dout, const float *inp,
                          const float *gate, const float *up, const float *act, const float *w_gate, const float *w_up,
                          const float *w_down, int N, int C, int H, float *scratch, cudaStream_t st);
/* attention.cu: whole sequences (pos0 = 0); row is ATTN_BWD_SCRATCH(T) floats. dq by one block per
 * query row, dk/dv by one block per key row (GQA heads summed in head order): no atomics. */
void attention_backward_cuda(float *dq, float *dk, float *dv, const float *dz, const float *pattern, const float *q,
                             const float *k, const float *v, int T, int NH, int NKV, int DQ, int DV, size_t k_stride,
                             size_t v_stride, float scale, float *row, cudaStream_t st);
/* loss.cu: probs (N, V) and the mean loss over rows with a target (summed in double, returned to
 * the host: one synchronisation); targets is a device array. */
double crossentropy_forward_cuda(float *probs, const float *logits, const int *targets, const float *weights, int N,
                                 int V, int *count, cudaStream_t st);
void crossentropy_backward_cuda(float *dlogits, float dloss, const float *probs, const int *targets,
                                const float *weights, int N, int V, int count, cudaStream_t st);
/* mla.cu: the MLA backward pieces, scratch as ref/mla.h states (device). */
void mla_attend_naive_backward_cuda(float *dq, float *dlatent, float *dk_pe, float *dw_kvb, const float *dz,
                                    const float *pattern, const float *q, const float *latent, const float *k,
                                    const float *v, const LayerWeights *w, const Config *cfg, int T, float *scratch,
                                    cudaStream_t st);
void mla_kv_backward_cuda(float *dx, LayerWeights *g, const float *dlatent, const float *dk_pe, const float *x,
                          const float *kv_a, const float *kv_rstd, const LayerWeights *w, const Config *cfg, int N,
                          float *scratch, cudaStream_t st);
void mla_q_backward_cuda(float *dx, LayerWeights *g, const float *dq, const float *x, const float *q_a,
                         const float *q_latent, const float *q_rstd, const LayerWeights *w, const Config *cfg, int N,
                         float *scratch, cudaStream_t st);
/* moe.cu: scratch moe_backward_scratch(cfg, N) floats (device); idx, weights, scores device arrays. */
void moe_backward_cuda(float *dinp, LayerWeights *g, const float *dout, const float *dscores, const float *inp,
                       const int *idx, const float *weights, const float *scores, const float *eg, const float *eu,
                       const float *ea, const float *eo, const float *sg, const float *su, const float *sa,
                       const LayerWeights *w, int N, const Config *cfg, float *scratch, cudaStream_t st);

/* optim.cu: twins of ref/optim.c on device arenas: `m` and `grads` are device views
 * (cuda_model_view), mom1/mom2 device arrays laid out like the arena. AdamW and clipping are
 * bit-identical to the reference; the norm is the same every run (TOL_DOUBLE_SUM_REL from ref's). */
void adamw_step_cuda(Model *m, const Model *grads, float *mom1, float *mom2, const AdamWConfig *c, float lr, int t,
                     cudaStream_t st);
double grad_global_norm_cuda(const Model *grads, cudaStream_t st);
float grad_clip_cuda(Model *grads, double norm, double max_norm, cudaStream_t st);
/* A device view of a host Model: the same parameter table, every pointer moved to the same offset
 * of d_arena (n_floats floats on the device); only params, n_params, arena, n_floats and cfg are
 * set. 0, or -1 when out of memory. Free with cuda_model_view_free (d_arena stays the caller's). */
int cuda_model_view(Model *view, const Model *host, float *d_arena);
void cuda_model_view_free(Model *view);
/* balance.cu: twins of ref/balance.c (bit-identical to it); idx and load device ints. */
void expert_load_cuda(int *load, const int *idx, int N, const Config *cfg, cudaStream_t st);
double balance_loss_cuda(float *dscores, const float *scores, const int *idx, int B, int T, const Config *cfg,
                         float alpha, cudaStream_t st);
void bias_update_cuda(float *bias, const int *load, int N, const Config *cfg, float gamma, cudaStream_t st);

/* ---- batched helpers the forward uses (tested against loops of the reference op) ---- */

/* RoPE on `rows` rows of one call: row r = b·T + t sits at position pos0 + t; its n_vec vectors
 * start at x + r·row_stride + i·vec_stride; the first rd values of each rotate as rope_forward. */
void cuda_rope_rows(float *x, int rows, int T, int pos0, int n_vec, size_t row_stride, size_t vec_stride,
                    const float *inv_freq, float attn_factor, int rd, RopeLayout layout, cudaStream_t st);
/* The backward of cuda_rope_rows (rope_backward on every row at its position, in place). */
void cuda_rope_rows_backward(float *x, int rows, int T, int pos0, int n_vec, size_t row_stride, size_t vec_stride,
                             const float *inv_freq, float attn_factor, int rd, RopeLayout layout, cudaStream_t st);
/* y[i] += x[i] (the residual add), n floats. */
void cuda_residual_add(float *y, const float *x, size_t n, cudaStream_t st);

/* ---- the model (forward.cu): twins of model_forward / model_generate, stage for stage ----
 * Same arguments as ref/forward.h, host pointers as there (ids, logits, hidden, the RunState and
 * KVCache). Each model's context (Model.dev) holds its device weights, uploaded on the model's
 * first use and refreshed in place when a sampled fingerprint sees new host values (a training
 * step, an edit), and its own device run state and KV cache. After every call the host KVCache
 * holds the same rows as the device's (the new rows are copied back), so a host cache stays the
 * truth and a call with another cache re-uploads it. A hook point copies its
 * tensor to the host RunState's buffer of the same name only when the ActCache wants it or has an
 * edit callback; an edit is copied back to the device before the forward goes on. */
int model_forward_cuda(const Model *m, RunState *s, KVCache *kv, const int *ids, int B, int T, AttnMode mode,
                       ActCache *hooks, float *hidden, float *logits, SeekErr *err);
/* backward.cu: twins of ref/backward.c's model_loss_grad and ref/train.c's training step and
 * validation, with the reference's arguments (host pointers, as there). The forward runs on the
 * GPU with every layer's saved values kept on the device, the cross-entropy and the backward run
 * there too; the gradients are added into the caller's host `grads` (model_loss_grad: they
 * accumulate, as the reference's; train_step_grads: zeroed first, as the reference's), and each
 * MoE layer's routing (r_scores, e_idx) comes back into tb->s for the balance loss and the bias
 * update, which stay the reference's (host). With MTP depths (lw->mtp_depth > 0) the step runs
 * mtp.cu on the device's final-norm output, as ref/train.c combines the losses; out->mtp_depth,
 * out->mtp and each depth's loss in tb->mtp come back (tb->dh0 stays on the device).
 * eval_main_loss_cuda also brings the final norm's output back into tb->s.xnf, as the reference
 * leaves it (the MTP depths of seek eval read it). The batch's targets (batch_targets: its own,
 * or the next token) and weights are uploaded with the ids: every objective of ref/train.h. */
int model_loss_grad_cuda(const Model *m, Model *grads, const TrainBatch *batch, int B, int T, double *loss, SeekErr *err);
int train_step_grads_cuda(const Model *m, Model *grads, TrainBuffers *tb, const TrainBatch *batch, const LossWeights *lw,
                          StepLosses *out, SeekErr *err);
int eval_main_loss_cuda(const Model *m, TrainBuffers *tb, const TrainBatch *batch, double *loss, SeekErr *err);

/* mtp.cu: twins of ref/mtp.h's mtp_forward / mtp_backward, the reference's arguments with host
 * pointers as there: h0 and dh0 are HOST (B, T, C) arrays (uploaded, and dh0 brought back), ms is
 * the reference's host MtpState (mtp_init). The forward fills each depth's ids_e, targets, logits,
 * count and loss in ms as the reference's does and keeps the saved values on the device (in the
 * model's context, sized by the config, D, B and T); the backward needs a forward of the same ms
 * on the same model before it, uploads grads and dh0, ACCUMULATES the gradient of
 * scale · Σ_k L^k into both on the device and brings them back. It is void like the reference's:
 * a failure is recorded in the sticky error (cuda_check_error). train_step_grads_cuda runs the
 * same code on device h0/dh0. */
int mtp_forward_cuda(const Model *m, MtpState *ms, const int *ids, const int *targets, const float *h0, SeekErr *err);
void mtp_backward_cuda(Model *grads, const Model *m, MtpState *ms, float scale, float *dh0);

/* The device copy of the model's weights: layers[l] with device pointers (for tests). */
const LayerWeights *cuda_model_layers(const Model *m, SeekErr *err);

#ifdef __cplusplus
}
#endif

#endif /* SEEK_HAVE_CUDA */
#endif
