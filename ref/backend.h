/* backend.h: which implementation runs a model — the reference (ref/), the fast CPU twins
 * (fast/cpu/, OpenBLAS + OpenMP) or CUDA (fast/cuda/, cuBLAS + kernels written here) — chosen with
 * `--backend ref|cpu|cuda` on the commands that run a model. Direct calls through one switch
 * (fast/backend.c); no tables of function pointers.
 *
 * Two levels:
 *   - the ops. The orchestration that is the same on every host backend is written once, in
 *     ref/: the forward (ref/forward.c), the backward (ref/backward.c), Multi-Token Prediction
 *     (ref/mtp.c), the loss composition of a training step (ref/train.c), generation and the
 *     training loop (ref/trainer.c). It calls each heavy op through `<op>_on(be, ...)`, the op's
 *     own arguments after the backend, and the switch runs the reference op or its twin
 *     (matmul_forward or matmul_forward_blas, ...). With BACKEND_REF every call is the reference
 *     op itself, so the reference reads top to bottom as before. The backend rides in the run
 *     state (RunState.be, MtpState.be): the model-level entry points below set it.
 *   - the model. `model_forward_on`, `train_step_grads_on`, ... run a whole forward or training
 *     step. ref and cpu run the shared orchestration above; cuda runs its own device-resident
 *     orchestration (fast/cuda/forward.cu, backward.cu, mtp.cu: the tensors stay on the GPU
 *     between ops, so it cannot call host ops one by one), held to the reference stage by stage
 *     by `seek verify --backend cuda` through the same hook names.
 * The optimizer (norm, clipping, AdamW) runs on the host for every backend (the cuda training
 * step brings its gradients back to the host Model).
 */
#ifndef SEEK_BACKEND_H
#define SEEK_BACKEND_H

#include "forward.h"
#include "train.h"
#include "train_parts.h"

const char *backend_name(Backend b);
/* Is it compiled into this binary (and, for cuda, is there a GPU)? If not, err says why. */
int backend_check(Backend b, SeekErr *err);
/* The fastest backend present without asking a GPU: cpu, then ref. */
Backend backend_default(void);
/* "ref", "cpu" or "cuda", present in this build; else a one-line reason. */
int backend_parse(const char *s, Backend *b, SeekErr *err);

/* ---- the model on a backend ---- */

/* model_forward (ref/forward.h) on backend b. On the GPU backends (cuda, cuda-fast) logits may
 * be NULL: they stay on the device (what a benchmark's forward measures); the host backends need
 * them. */
int model_forward_on(Backend b, const Model *m, RunState *s, KVCache *kv, const int *ids, int B, int T, AttnMode mode,
                     ActCache *hooks, float *hidden, float *logits, SeekErr *err);
/* Generation (ref/forward.c, written once): prefill and decode through model_forward_on. */
int model_generate_on(Backend b, const Model *m, const int *ids, int B, int T, int n, AttnMode mode,
                      const SampleParams *sp, ActCache *hooks, int *out, float *logits_out, SeekErr *err);
/* The same, stopping once every row has sampled `stop` (an EOS id): each row's tokens up to and
 * including its first `stop` are exactly model_generate_on's (the same random draws), and every
 * position after the last decode step is `stop`. */
int model_generate_stop_on(Backend b, const Model *m, const int *ids, int B, int T, int n, AttnMode mode,
                           const SampleParams *sp, int stop, int *out, SeekErr *err);

/* Training entry points (ref/backward.h, ref/train.h, ref/mtp.h) on backend b. */
int model_loss_grad_on(Backend b, const Model *m, Model *grads, const TrainBatch *batch, int B, int T, double *loss,
                       SeekErr *err);
int train_step_grads_on(Backend b, const Model *m, Model *grads, TrainBuffers *tb, const TrainBatch *batch,
                        const LossWeights *lw, StepLosses *out, SeekErr *err);
int eval_main_loss_on(Backend b, const Model *m, TrainBuffers *tb, const TrainBatch *batch, double *loss, SeekErr *err);
/* mtp_forward / mtp_backward on backend b: every depth's logits and loss from the main model's
 * final-norm output h0 (host arrays). */
int mtp_forward_on(Backend b, const Model *m, MtpState *ms, const int *ids, const int *targets, const float *h0,
                   SeekErr *err);
void mtp_backward_on(Backend b, Model *grads, const Model *m, MtpState *ms, float scale, float *dh0);
/* backend_check must have passed for these three (they cannot fail). */
double grad_global_norm_on(Backend b, const Model *grads);
float grad_clip_on(Backend b, Model *grads, double norm, double max_norm);
void adamw_step_on(Backend b, Model *m, const Model *grads, float *mom1, float *mom2, const AdamWConfig *c, float lr, int t);

/* ---- the heavy ops on a host backend (ref or cpu; the arguments of ref/ops.h, mla.h, moe.h) ---- */

void zero_on(Backend b, float *p, size_t n);
void matmul_forward_on(Backend b, float *out, const float *inp, const float *weight, int N, int IC, int OC);
void matmul_backward_on(Backend b, float *dinp, float *dweight, const float *dout, const float *inp,
                        const float *weight, int N, int IC, int OC);
void rmsnorm_forward_on(Backend b, float *out, float *rstd, const float *inp, const float *weight, int N, int C,
                        float eps);
void rmsnorm_backward_on(Backend b, float *dinp, float *dweight, const float *dout, const float *inp,
                         const float *weight, const float *rstd, int N, int C);
void attention_forward_on(Backend b, float *z, float *scores, float *pattern, const float *q, const float *k,
                          const float *v, int T, int pos0, int Tk, int NH, int NKV, int DQ, int DV, size_t k_stride,
                          size_t v_stride, float scale, float *row);
void attention_backward_on(Backend b, float *dq, float *dk, float *dv, const float *dz, const float *pattern,
                           const float *q, const float *k, const float *v, int T, int NH, int NKV, int DQ, int DV,
                           size_t k_stride, size_t v_stride, float scale, float *row);
void swiglu_forward_on(Backend b, float *out, float *gate, float *up, float *act, const float *inp,
                       const float *w_gate, const float *w_up, const float *w_down, int N, int C, int H);
void swiglu_backward_on(Backend b, float *dinp, float *dw_gate, float *dw_up, float *dw_down, const float *dout,
                        const float *inp, const float *gate, const float *up, const float *act, const float *w_gate,
                        const float *w_up, const float *w_down, int N, int C, int H, float *scratch);
void mla_q_forward_on(Backend b, float *q, float *q_a, float *q_latent, float *q_rstd, const float *x,
                      const LayerWeights *w, const Config *cfg, int N);
void mla_kv_forward_on(Backend b, float *latent, float *k_pe, float *kv_a, float *kv_rstd, const float *x,
                       const LayerWeights *w, const Config *cfg, int N);
void mla_attend_naive_on(Backend b, float *z, float *scores, float *pattern, float *kv, float *k, float *v,
                         const float *q, const float *latent, const float *k_pe, const LayerWeights *w,
                         const Config *cfg, int T, int pos0, int Tk, float *row);
void mla_attend_absorb_on(Backend b, float *z, float *scores, float *pattern, float *q_abs, float *o_lat,
                          const float *q, const float *latent, const float *k_pe, const LayerWeights *w,
                          const Config *cfg, int T, int pos0, int Tk, float *row);
void mla_attend_naive_backward_on(Backend b, float *dq, float *dlatent, float *dk_pe, float *dw_kvb, const float *dz,
                                  const float *pattern, const float *q, const float *latent, const float *k,
                                  const float *v, const LayerWeights *w, const Config *cfg, int T, float *scratch);
void mla_kv_backward_on(Backend b, float *dx, LayerWeights *g, const float *dlatent, const float *dk_pe,
                        const float *x, const float *kv_a, const float *kv_rstd, const LayerWeights *w,
                        const Config *cfg, int N, float *scratch);
void mla_q_backward_on(Backend b, float *dx, LayerWeights *g, const float *dq, const float *x, const float *q_a,
                       const float *q_latent, const float *q_rstd, const LayerWeights *w, const Config *cfg, int N,
                       float *scratch);
void moe_router_scores_on(Backend b, float *logits, float *scores, float *choice, const float *inp,
                          const float *router, const float *bias, int N, const Config *cfg);
void moe_forward_on(Backend b, float *out, float *routed, float *shared, float *eg, float *eu, float *ea, float *eo,
                    float *sg, float *su, float *sa, const float *inp, const int *idx, const float *weights,
                    const LayerWeights *w, int N, const Config *cfg);
void moe_backward_on(Backend b, float *dinp, LayerWeights *g, const float *dout, const float *dscores,
                     const float *inp, const int *idx, const float *weights, const float *scores, const float *eg,
                     const float *eu, const float *ea, const float *eo, const float *sg, const float *su,
                     const float *sa, const LayerWeights *w, int N, const Config *cfg, float *scratch);
double crossentropy_forward_on(Backend b, float *probs, const float *logits, const int *targets,
                               const float *weights, int N, int V, int *count);
void crossentropy_backward_on(Backend b, float *dlogits, float dloss, const float *probs, const int *targets,
                              const float *weights, int N, int V, int count);

#endif
