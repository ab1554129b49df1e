/* backend.h: which implementation runs a model — the reference (ref/), the fast CPU twins
 * (fast/cpu/, OpenBLAS + OpenMP) or CUDA (fast/cuda/, cuBLAS + kernels written here) — chosen with
 * `--backend ref|cpu|cuda` on the commands that run a model. Direct calls through one switch;
 * no tables of function pointers.
 *
 * Training (`seek grad`, `seek train`, `seek verify --grad`) goes through the same switch: the
 * loss and gradients, the training step, validation, the gradient norm, clipping and AdamW (on
 * the host for cuda, whose step brings its gradients back; MTP on cuda is refused in one line).
 */
#ifndef SEEK_BACKEND_H
#define SEEK_BACKEND_H

#include "forward.h"
#include "train.h"
#include "train_parts.h"

typedef enum { BACKEND_REF, BACKEND_CPU, BACKEND_CUDA } Backend;

const char *backend_name(Backend b);
/* Is it compiled into this binary? If not, err says why and how to get it. */
int backend_check(Backend b, SeekErr *err);
/* The fastest backend present: cuda, then cpu, then ref. */
Backend backend_default(void);
/* "ref", "cpu" or "cuda", present in this build; else a one-line reason. */
int backend_parse(const char *s, Backend *b, SeekErr *err);

/* model_forward / model_generate (ref/forward.h) on the chosen backend. */
int model_forward_on(Backend b, const Model *m, RunState *s, KVCache *kv, const int *ids, int B, int T, AttnMode mode,
                     ActCache *hooks, float *hidden, float *logits, SeekErr *err);
int model_generate_on(Backend b, const Model *m, const int *ids, int B, int T, int n, AttnMode mode,
                      const SampleParams *sp, ActCache *hooks, int *out, float *logits_out, SeekErr *err);

/* Training entry points (ref/backward.h, ref/train.h, ref/train_parts.h) on the chosen backend. */
int model_loss_grad_on(Backend b, const Model *m, Model *grads, const int *ids, int B, int T, double *loss, SeekErr *err);
int train_step_grads_on(Backend b, const Model *m, Model *grads, TrainBuffers *tb, const int *ids, const LossWeights *lw,
                        StepLosses *out, SeekErr *err);
/* mtp_forward (ref/mtp.h) on backend b: every depth's logits and loss from the main model's
 * final-norm output h0. */
int mtp_forward_on(Backend b, const Model *m, MtpState *ms, const int *ids, const float *h0, SeekErr *err);
int eval_main_loss_on(Backend b, const Model *m, TrainBuffers *tb, const int *ids, double *loss, SeekErr *err);
/* backend_check must have passed for these three (they cannot fail). */
double grad_global_norm_on(Backend b, const Model *grads);
float grad_clip_on(Backend b, Model *grads, double norm, double max_norm);
void adamw_step_on(Backend b, Model *m, const Model *grads, float *mom1, float *mom2, const AdamWConfig *c, float lr, int t);

#endif
