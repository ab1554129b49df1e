/* backend.c: the --backend switch (see backend.h). */
#include "backend.h"

#include <string.h>

#include "cpu/cpu.h"
#include "cuda/cuda.h"

const char *backend_name(Backend b) { return b == BACKEND_CPU ? "cpu" : b == BACKEND_CUDA ? "cuda" : "ref"; }

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
    else return seek_fail(err, "--backend: '%s' is not a backend (expected ref, cpu or cuda)", s);
    return backend_check(*b, err);
}

int model_forward_on(Backend b, const Model *m, RunState *s, KVCache *kv, const int *ids, int B, int T, AttnMode mode,
                     ActCache *hooks, float *hidden, float *logits, SeekErr *err) {
    if (backend_check(b, err)) return -1;
#ifdef SEEK_HAVE_CUDA
    if (b == BACKEND_CUDA) return model_forward_cuda(m, s, kv, ids, B, T, mode, hooks, hidden, logits, err);
#endif
#ifdef SEEK_HAVE_BLAS
    if (b == BACKEND_CPU) return model_forward_cpu(m, s, kv, ids, B, T, mode, hooks, hidden, logits, err);
#endif
    return model_forward(m, s, kv, ids, B, T, mode, hooks, hidden, logits, err);
}

int model_generate_on(Backend b, const Model *m, const int *ids, int B, int T, int n, AttnMode mode,
                      const SampleParams *sp, ActCache *hooks, int *out, float *logits_out, SeekErr *err) {
    if (backend_check(b, err)) return -1;
#ifdef SEEK_HAVE_CUDA
    if (b == BACKEND_CUDA) return model_generate_cuda(m, ids, B, T, n, mode, sp, hooks, out, logits_out, err);
#endif
#ifdef SEEK_HAVE_BLAS
    if (b == BACKEND_CPU) return model_generate_cpu(m, ids, B, T, n, mode, sp, hooks, out, logits_out, err);
#endif
    return model_generate(m, ids, B, T, n, mode, sp, hooks, out, logits_out, err);
}

int model_loss_grad_on(Backend b, const Model *m, Model *grads, const int *ids, int B, int T, double *loss, SeekErr *err) {
    if (backend_check(b, err)) return -1;
#ifdef SEEK_HAVE_CUDA
    if (b == BACKEND_CUDA) return model_loss_grad_cuda(m, grads, ids, B, T, loss, err);
#endif
#ifdef SEEK_HAVE_BLAS
    if (b == BACKEND_CPU) return model_loss_grad_cpu(m, grads, ids, B, T, loss, err);
#endif
    return model_loss_grad(m, grads, ids, B, T, loss, err);
}

int train_step_grads_on(Backend b, const Model *m, Model *grads, TrainBuffers *tb, const int *ids, const LossWeights *lw,
                        StepLosses *out, SeekErr *err) {
    if (backend_check(b, err)) return -1;
#ifdef SEEK_HAVE_CUDA
    if (b == BACKEND_CUDA) return train_step_grads_cuda(m, grads, tb, ids, lw, out, err);
#endif
#ifdef SEEK_HAVE_BLAS
    if (b == BACKEND_CPU) return train_step_grads_cpu(m, grads, tb, ids, lw, out, err);
#endif
    return train_step_grads(m, grads, tb, ids, lw, out, err);
}

int eval_main_loss_on(Backend b, const Model *m, TrainBuffers *tb, const int *ids, double *loss, SeekErr *err) {
    if (backend_check(b, err)) return -1;
#ifdef SEEK_HAVE_CUDA
    if (b == BACKEND_CUDA) return eval_main_loss_cuda(m, tb, ids, loss, err);
#endif
#ifdef SEEK_HAVE_BLAS
    if (b == BACKEND_CPU) return eval_main_loss_cpu(m, tb, ids, loss, err);
#endif
    return eval_main_loss(m, tb, ids, loss, err);
}

int mtp_forward_on(Backend b, const Model *m, MtpState *ms, const int *ids, const float *h0, SeekErr *err) {
    if (backend_check(b, err)) return -1;
#ifdef SEEK_HAVE_CUDA
    if (b == BACKEND_CUDA) return mtp_forward_cuda(m, ms, ids, h0, err); /* h0 a host array, as here */
#endif
#ifdef SEEK_HAVE_BLAS
    if (b == BACKEND_CPU) return mtp_forward_cpu(m, ms, ids, h0, err);
#endif
    return mtp_forward(m, ms, ids, h0, err);
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
