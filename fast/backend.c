/* backend.c: the --backend switch (ref/backend.h): the model-level entry points, and each heavy op
 * on a host backend (the reference op, or its fast CPU twin when the run state says cpu). */
#include "backend.h"

#include <string.h>

#include "cpu/cpu.h"
#include "cuda-fast/cuda_fast.h"
#include "cuda/cuda.h"
#include "mla.h"
#include "moe.h"
#include "ops.h"

const char *backend_name(Backend b) {
    return b == BACKEND_CPU ? "cpu" : b == BACKEND_CUDA ? "cuda" : b == BACKEND_CUDA_FAST ? "cuda-fast" : "ref";
}

int backend_check(Backend b, SeekErr *err) {
    switch (b) {
    case BACKEND_REF: return 0;
    case BACKEND_CPU:
#ifdef SEEK_HAVE_BLAS
        return 0;
#else
        return seek_fail(err, "--backend cpu: this seek was built without OpenBLAS (NO_BLAS=1 or libopenblas-dev "
                              "missing; 'bash scripts/install-deps.sh' then 'make')");
#endif
    case BACKEND_CUDA:
#ifdef SEEK_HAVE_CUDA
        return cuda_backend_check(err); /* built: is there a GPU to run it? */
#else
        return seek_fail(err, "--backend cuda: the CUDA backend is not built into this seek (nvcc not found, or "
                              "NO_CUDA=1); use --backend cpu or ref");
#endif
    case BACKEND_CUDA_FAST:
#ifdef SEEK_HAVE_CUDA
        return cuda_fast_check(err); /* built: is there a GPU with bf16 tensor cores? */
#else
        return seek_fail(err, "--backend cuda-fast: the CUDA backends are not built into this seek (nvcc not found, "
                              "or NO_CUDA=1); use --backend cpu or ref");
#endif
    }
    return seek_fail(err, "backend: unknown backend %d", (int)b);
}

Backend backend_default(void) {
#ifdef SEEK_HAVE_BLAS
    return BACKEND_CPU;
#else
    return BACKEND_REF;
#endif
}

int backend_parse(const char *s, Backend *b, SeekErr *err) {
    if (!strcmp(s, "ref")) *b = BACKEND_REF;
    else if (!strcmp(s, "cpu")) *b = BACKEND_CPU;
    else if (!strcmp(s, "cuda")) *b = BACKEND_CUDA;
    else if (!strcmp(s, "cuda-fast")) *b = BACKEND_CUDA_FAST;
    else return seek_fail(err, "--backend: '%s' is not a backend (expected ref, cpu, cuda or cuda-fast)", s);
    return backend_check(*b, err);
}

/* ---- the model ---- */

/* The host backends run ref/'s orchestration with the backend in the run state. */

/* Training on the bf16 path is not built yet (docs/cuda-fast.md, "Status"): its entry points say
 * so in one line rather than run something else under its name. */
static int no_training(Backend b, SeekErr *err) {
    if (b != BACKEND_CUDA_FAST) return 0;
    return seek_fail(err, "--backend cuda-fast: training is not built yet on the bf16 path (it runs the forward: "
                          "verify, forward, generate, bench); train with --backend cuda or cpu");
}
static Backend host(Backend b) { return b == BACKEND_CPU ? BACKEND_CPU : BACKEND_REF; }

int model_forward_on(Backend b, const Model *m, RunState *s, KVCache *kv, const int *ids, int B, int T, AttnMode mode,
                     ActCache *hooks, float *hidden, float *logits, SeekErr *err) {
    if (backend_check(b, err)) return -1;
#ifdef SEEK_HAVE_CUDA
    if (b == BACKEND_CUDA) return model_forward_cuda(m, s, kv, ids, B, T, mode, hooks, hidden, logits, err);
    if (b == BACKEND_CUDA_FAST) return model_forward_cuda_fast(m, s, kv, ids, B, T, mode, hooks, hidden, logits, err);
#endif
    s->be = host(b);
    return model_forward(m, s, kv, ids, B, T, mode, hooks, hidden, logits, err);
}

int model_loss_grad_on(Backend b, const Model *m, Model *grads, const TrainBatch *batch, int B, int T, double *loss,
                       SeekErr *err) {
    if (backend_check(b, err) || no_training(b, err)) return -1;
#ifdef SEEK_HAVE_CUDA
    if (b == BACKEND_CUDA)
        return model_loss_grad_cuda(m, grads, batch, B, T, loss, err);
#endif
    return model_loss_grad_be(host(b), m, grads, batch, B, T, loss, err);
}

int train_step_grads_on(Backend b, const Model *m, Model *grads, TrainBuffers *tb, const TrainBatch *batch,
                        const LossWeights *lw, StepLosses *out, SeekErr *err) {
    if (backend_check(b, err) || no_training(b, err)) return -1;
#ifdef SEEK_HAVE_CUDA
    if (b == BACKEND_CUDA)
        return train_step_grads_cuda(m, grads, tb, batch, lw, out, err);
#endif
    tb->be = host(b);
    return train_step_grads(m, grads, tb, batch, lw, out, err);
}

int eval_main_loss_on(Backend b, const Model *m, TrainBuffers *tb, const TrainBatch *batch, double *loss, SeekErr *err) {
    if (backend_check(b, err) || no_training(b, err)) return -1;
#ifdef SEEK_HAVE_CUDA
    if (b == BACKEND_CUDA)
        return eval_main_loss_cuda(m, tb, batch, loss, err);
#endif
    tb->be = host(b);
    return eval_main_loss(m, tb, batch, loss, err);
}

int mtp_forward_on(Backend b, const Model *m, MtpState *ms, const int *ids, const int *targets, const float *h0,
                   SeekErr *err) {
    if (backend_check(b, err) || no_training(b, err)) return -1;
#ifdef SEEK_HAVE_CUDA
    if (b == BACKEND_CUDA) return mtp_forward_cuda(m, ms, ids, targets, h0, err); /* h0 a host array, as here */
#endif
    ms->be = host(b);
    return mtp_forward(m, ms, ids, targets, h0, err);
}

void mtp_backward_on(Backend b, Model *grads, const Model *m, MtpState *ms, float scale, float *dh0) {
#ifdef SEEK_HAVE_CUDA
    if (b == BACKEND_CUDA) {
        mtp_backward_cuda(grads, m, ms, scale, dh0);
        return;
    }
#endif
    ms->be = host(b);
    mtp_backward(grads, m, ms, scale, dh0);
}

/* The optimizer runs on the host for every backend (the cuda training step brings its gradients
 * back to the host Model); with OpenBLAS built, cuda uses the cpu twins, which are bit-identical
 * to the reference for clipping and AdamW. */
double grad_global_norm_on(Backend b, const Model *grads) {
#ifdef SEEK_HAVE_BLAS
    if (b == BACKEND_CPU || b == BACKEND_CUDA) return grad_global_norm_cpu(grads);
#endif
    (void)b;
    return grad_global_norm(grads);
}

float grad_clip_on(Backend b, Model *grads, double norm, double max_norm) {
#ifdef SEEK_HAVE_BLAS
    if (b == BACKEND_CPU || b == BACKEND_CUDA) return grad_clip_cpu(grads, norm, max_norm);
#endif
    (void)b;
    return grad_clip(grads, norm, max_norm);
}

void adamw_step_on(Backend b, Model *m, const Model *grads, float *mom1, float *mom2, const AdamWConfig *c, float lr, int t) {
#ifdef SEEK_HAVE_BLAS
    if (b == BACKEND_CPU || b == BACKEND_CUDA) {
        adamw_step_cpu(m, grads, mom1, mom2, c, lr, t);
        return;
    }
#endif
    (void)b;
    adamw_step(m, grads, mom1, mom2, c, lr, t);
}

/* ---- the ops: the reference op, or its CPU twin (same arguments) ---- */

#ifdef SEEK_HAVE_BLAS
#define TWIN(b, ref_op, cpu_op, ...) ((b) == BACKEND_CPU ? cpu_op(__VA_ARGS__) : ref_op(__VA_ARGS__))
#else
#define TWIN(b, ref_op, cpu_op, ...) ((void)(b), ref_op(__VA_ARGS__))
#endif

static void zero_ref(float *p, size_t n) { memset(p, 0, n * sizeof(float)); }

void zero_on(Backend b, float *p, size_t n) { TWIN(b, zero_ref, cpu_zero, p, n); }

void matmul_forward_on(Backend b, float *out, const float *inp, const float *weight, int N, int IC, int OC) {
    TWIN(b, matmul_forward, matmul_forward_blas, out, inp, weight, N, IC, OC);
}

void matmul_backward_on(Backend b, float *dinp, float *dweight, const float *dout, const float *inp,
                        const float *weight, int N, int IC, int OC) {
    TWIN(b, matmul_backward, matmul_backward_blas, dinp, dweight, dout, inp, weight, N, IC, OC);
}

void rmsnorm_forward_on(Backend b, float *out, float *rstd, const float *inp, const float *weight, int N, int C,
                        float eps) {
    TWIN(b, rmsnorm_forward, rmsnorm_forward_cpu, out, rstd, inp, weight, N, C, eps);
}

void rmsnorm_backward_on(Backend b, float *dinp, float *dweight, const float *dout, const float *inp,
                         const float *weight, const float *rstd, int N, int C) {
    TWIN(b, rmsnorm_backward, rmsnorm_backward_cpu, dinp, dweight, dout, inp, weight, rstd, N, C);
}

void attention_forward_on(Backend b, float *z, float *scores, float *pattern, const float *q, const float *k,
                          const float *v, int T, int pos0, int Tk, int NH, int NKV, int DQ, int DV, size_t k_stride,
                          size_t v_stride, float scale, float *row) {
    TWIN(b, attention_forward, attention_forward_cpu, z, scores, pattern, q, k, v, T, pos0, Tk, NH, NKV, DQ, DV,
         k_stride, v_stride, scale, row);
}

void attention_backward_on(Backend b, float *dq, float *dk, float *dv, const float *dz, const float *pattern,
                           const float *q, const float *k, const float *v, int T, int NH, int NKV, int DQ, int DV,
                           size_t k_stride, size_t v_stride, float scale, float *row) {
    TWIN(b, attention_backward, attention_backward_cpu, dq, dk, dv, dz, pattern, q, k, v, T, NH, NKV, DQ, DV,
         k_stride, v_stride, scale, row);
}

void swiglu_forward_on(Backend b, float *out, float *gate, float *up, float *act, const float *inp,
                       const float *w_gate, const float *w_up, const float *w_down, int N, int C, int H) {
    TWIN(b, swiglu_forward, swiglu_forward_cpu, out, gate, up, act, inp, w_gate, w_up, w_down, N, C, H);
}

void swiglu_backward_on(Backend b, float *dinp, float *dw_gate, float *dw_up, float *dw_down, const float *dout,
                        const float *inp, const float *gate, const float *up, const float *act, const float *w_gate,
                        const float *w_up, const float *w_down, int N, int C, int H, float *scratch) {
    TWIN(b, swiglu_backward, swiglu_backward_cpu, dinp, dw_gate, dw_up, dw_down, dout, inp, gate, up, act, w_gate,
         w_up, w_down, N, C, H, scratch);
}

void mla_q_forward_on(Backend b, float *q, float *q_a, float *q_latent, float *q_rstd, const float *x,
                      const LayerWeights *w, const Config *cfg, int N) {
    TWIN(b, mla_q_forward, mla_q_forward_cpu, q, q_a, q_latent, q_rstd, x, w, cfg, N);
}

void mla_kv_forward_on(Backend b, float *latent, float *k_pe, float *kv_a, float *kv_rstd, const float *x,
                       const LayerWeights *w, const Config *cfg, int N) {
    TWIN(b, mla_kv_forward, mla_kv_forward_cpu, latent, k_pe, kv_a, kv_rstd, x, w, cfg, N);
}

void mla_attend_naive_on(Backend b, float *z, float *scores, float *pattern, float *kv, float *k, float *v,
                         const float *q, const float *latent, const float *k_pe, const LayerWeights *w,
                         const Config *cfg, int T, int pos0, int Tk, float *row) {
    TWIN(b, mla_attend_naive, mla_attend_naive_cpu, z, scores, pattern, kv, k, v, q, latent, k_pe, w, cfg, T, pos0,
         Tk, row);
}

void mla_attend_absorb_on(Backend b, float *z, float *scores, float *pattern, float *q_abs, float *o_lat,
                          const float *q, const float *latent, const float *k_pe, const LayerWeights *w,
                          const Config *cfg, int T, int pos0, int Tk, float *row) {
    TWIN(b, mla_attend_absorb, mla_attend_absorb_cpu, z, scores, pattern, q_abs, o_lat, q, latent, k_pe, w, cfg, T,
         pos0, Tk, row);
}

void mla_attend_naive_backward_on(Backend b, float *dq, float *dlatent, float *dk_pe, float *dw_kvb, const float *dz,
                                  const float *pattern, const float *q, const float *latent, const float *k,
                                  const float *v, const LayerWeights *w, const Config *cfg, int T, float *scratch) {
    TWIN(b, mla_attend_naive_backward, mla_attend_naive_backward_cpu, dq, dlatent, dk_pe, dw_kvb, dz, pattern, q,
         latent, k, v, w, cfg, T, scratch);
}

void mla_kv_backward_on(Backend b, float *dx, LayerWeights *g, const float *dlatent, const float *dk_pe,
                        const float *x, const float *kv_a, const float *kv_rstd, const LayerWeights *w,
                        const Config *cfg, int N, float *scratch) {
    TWIN(b, mla_kv_backward, mla_kv_backward_cpu, dx, g, dlatent, dk_pe, x, kv_a, kv_rstd, w, cfg, N, scratch);
}

void mla_q_backward_on(Backend b, float *dx, LayerWeights *g, const float *dq, const float *x, const float *q_a,
                       const float *q_latent, const float *q_rstd, const LayerWeights *w, const Config *cfg, int N,
                       float *scratch) {
    TWIN(b, mla_q_backward, mla_q_backward_cpu, dx, g, dq, x, q_a, q_latent, q_rstd, w, cfg, N, scratch);
}

void moe_router_scores_on(Backend b, float *logits, float *scores, float *choice, const float *inp,
                          const float *router, const float *bias, int N, const Config *cfg) {
    TWIN(b, moe_router_scores, moe_router_scores_cpu, logits, scores, choice, inp, router, bias, N, cfg);
}

void moe_forward_on(Backend b, float *out, float *routed, float *shared, float *eg, float *eu, float *ea, float *eo,
                    float *sg, float *su, float *sa, const float *inp, const int *idx, const float *weights,
                    const LayerWeights *w, int N, const Config *cfg) {
    TWIN(b, moe_forward, moe_forward_cpu, out, routed, shared, eg, eu, ea, eo, sg, su, sa, inp, idx, weights, w, N,
         cfg);
}

void moe_backward_on(Backend b, float *dinp, LayerWeights *g, const float *dout, const float *dscores,
                     const float *inp, const int *idx, const float *weights, const float *scores, const float *eg,
                     const float *eu, const float *ea, const float *eo, const float *sg, const float *su,
                     const float *sa, const LayerWeights *w, int N, const Config *cfg, float *scratch) {
    TWIN(b, moe_backward, moe_backward_cpu, dinp, g, dout, dscores, inp, idx, weights, scores, eg, eu, ea, eo, sg, su,
         sa, w, N, cfg, scratch);
}

double crossentropy_forward_on(Backend b, float *probs, const float *logits, const int *targets,
                               const float *weights, int N, int V, int *count) {
    return TWIN(b, crossentropy_forward, crossentropy_forward_cpu, probs, logits, targets, weights, N, V, count);
}

void crossentropy_backward_on(Backend b, float *dlogits, float dloss, const float *probs, const int *targets,
                              const float *weights, int N, int V, int count) {
    TWIN(b, crossentropy_backward, crossentropy_backward_cpu, dlogits, dloss, probs, targets, weights, N, V, count);
}
