/* train.h: one training step's losses and gradients, validation and the bias update (the loop
 * that calls them is ref/trainer.h).
 *
 * An objective is data: a TrainBatch carries, per position, the token to predict and the weight
 * of that prediction, so pretraining, supervised fine-tuning and weighted policy-gradient losses
 * are one forward and one backward with different inputs:
 *   pretraining   targets = the next token within the window (NULL: ids shifted left), weights 1;
 *   SFT           targets −1 on the prompt and on padding (transformers' labels = −100);
 *   weighted      weights w_n scale each position's term (an advantage, a sequence-length
 *                 normalisation): L_main = (1/count) Σ_{n with a target} w_n · −log p_n(target_n),
 *                 count = the number of positions with a target.
 *
 * loss = L_main + λ/D · Σ_k L_MTP^k + L_balance
 *   L_main: the weighted cross-entropy above (with no targets or weights given, transformers'
 *           loss for labels = input_ids);
 *   L_MTP^k: depth k of Multi-Token Prediction (mtp.h), when D > 0;
 *   L_balance: the sequence-wise balance loss of every MoE layer (balance.h; V3's α or V2's α1).
 * After the optimizer step the auxiliary-loss-free bias update moves each MoE layer's
 * e_score_correction_bias by ±γ from that step's expert loads (V3 only).
 */
#ifndef SEEK_TRAIN_H
#define SEEK_TRAIN_H

#include "mtp.h"

typedef struct {
    int mtp_depth;        /* D (0: no MTP loss) */
    float mtp_lambda;     /* λ */
    float balance_alpha;  /* α (V3 sequence-wise) or α1 (V2 expert-level); 0: off */
} LossWeights;

#define MAX_MTP_DEPTH 8
typedef struct {
    double total, main, mtp, balance;
    double mtp_depth[MAX_MTP_DEPTH]; /* L^k before weighting */
} StepLosses;

typedef struct {
    int B, T, D;
    Backend be;           /* which backend the step's ops run on (set by train_step_grads_on) */
    RunState s;
    KVCache kv;
    GradState g;
    MtpState mtp;         /* when D > 0 */
    float **dscores;      /* (L): (N, E) for MoE layers, NULL otherwise */
    float *dh0;           /* (N, C) MTP's gradient on the final norm's output */
    float *w_eff;         /* (N) a policy objective's per-row backward factor (policy_loss_weights) */
    PolicyStats policy;   /* what the last policy step measured */
    int *load;            /* (E) */
} TrainBuffers;

int trainbuf_init(TrainBuffers *tb, const Config *cfg, int B, int T, int mtp_depth, SeekErr *err);
void trainbuf_free(TrainBuffers *tb);

/* Zeroes grads, runs the forward and every loss, and back-propagates into grads; on backend be
 * (ref or cpu: the ops of backend.h; the cuda backend has its own, fast/cuda/backward.cu). The
 * MTP depths predict, at position i, what the main loss predicts at i + k (their targets are the
 * batch's, shifted), unweighted. */
int train_step_grads(const Model *m, Model *grads, TrainBuffers *tb, const TrainBatch *batch, const LossWeights *lw,
                     StepLosses *out, SeekErr *err);
/* The main loss only (no gradients): validation. */
int eval_main_loss(const Model *m, TrainBuffers *tb, const TrainBatch *batch, double *loss, SeekErr *err);

/* After a step: each V3 MoE layer's bias moves by ±γ from the loads of the step just run
 * (tb holds its routing). Fills worst (max load / mean, over layers), idle (mean fraction of
 * experts with no token) and, when per_layer is not NULL, each layer's LoadStats (L entries;
 * dense layers get zeros). */
#include "balance.h"
void train_update_bias(Model *m, TrainBuffers *tb, float gamma, double *worst, double *idle, LoadStats *per_layer);

#endif
