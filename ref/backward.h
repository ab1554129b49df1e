/* backward.h: the whole-model backward pass and the next-token loss.
 *
 * Gradients live in a second Model built by model_init on the same config, so they have the
 * same {name, shape} table (checkpoint names, one row per expert) as the parameters; a tied head
 * shares its gradient with the embedding exactly as it shares its weights.
 */
#ifndef SEEK_BACKWARD_H
#define SEEK_BACKWARD_H

#include "forward.h"

/* A policy-gradient objective's per-position inputs (GRPO, DeepSeekMath §4.1). With them the
 * term of a position with a target (lp = log π(target), the model's, differentiated) is
 *   ℓ = −min(ρ·A, clip(ρ, 1−ε, 1+ε)·A) + β·(π_ref/π − log(π_ref/π) − 1),   ρ = π/π_old,
 * the k3 estimator of KL(π ‖ π_ref) (Schulman) as the KL term; π_old and π_ref are constants. */
typedef struct {
    const float *advantages;   /* (B, T) A of each position (its completion's advantage) */
    const float *old_logprobs; /* (B, T) log π_old(target); NULL: π_old = π (ρ = 1, the first step on fresh samples) */
    const float *ref_logprobs; /* (B, T) log π_ref(target); NULL: π_ref = π (no KL term) */
    float clip_eps;            /* ε */
    float beta;                /* β */
} PolicyTerms;

/* What a policy step measured, over the positions with a target. */
typedef struct {
    double kl;            /* mean k3 KL estimate */
    double clip_frac;     /* share of positions whose ratio was clipped (the clipped branch won) */
    double ratio;         /* mean ρ */
    double entropy;       /* mean entropy of π (nats) at those positions, the whole distribution's */
    int count;            /* positions with a target */
} PolicyStats;

/* One batch of B sequences × T positions and what each position is trained toward. */
typedef struct {
    const int *ids;       /* (B, T) input tokens */
    const int *targets;   /* (B, T) the token position t predicts, −1: none; NULL: ids[b, t+1] (none at T−1) */
    const float *weights; /* (B, T) each prediction's weight; NULL: 1 */
    const PolicyTerms *policy; /* NULL: the likelihood objective (cross-entropy); else the policy terms above */
} TrainBatch;

/* The policy objective of a batch from its logits (N, V), host memory, as every backend keeps
 * them: returns L = (1/count) Σ_n w_n·ℓ_n over the count positions with a target, and writes
 * w_eff (N), the per-row factor that makes the cross-entropy backward (ops.h) the gradient of L:
 * d ℓ_n / d logits_n = (−∂ℓ_n/∂lp_n)·(softmax_n − onehot), so w_eff_n = w_n·(−∂ℓ_n/∂lp_n),
 *   ∂ℓ/∂lp = −ρ·A (where the unclipped branch is the min; 0 where the clipped one is) + β·(1 − π_ref/π).
 * log π in double from the logits (max-subtracted log-sum-exp). st may be NULL. */
double policy_loss_weights(float *w_eff, const float *logits, const int *targets, const float *weights,
                           const PolicyTerms *p, int N, int V, PolicyStats *st);
/* log π(target) of every row with a target (else 0), in double from the logits (N, V). */
void target_logprobs(float *lp, const float *logits, const int *targets, int N, int V);

/* targets (B, T) for a batch: batch->targets copied, or the next token within each window. */
void batch_targets(int *targets, const TrainBatch *batch, int B, int T);

/* Scratch for one backward of B sequences × T tokens. */
typedef struct {
    int B, T;
    float *dx;      /* (N, C) gradient of the residual stream */
    float *dxn;     /* (N, C) gradient of a norm's output */
    float *dz;      /* (N, NH, dv) */
    float *dq;      /* (N, NH, qk) */
    float *dk, *dv; /* LLaMA: (B, T, NKV, HS) */
    float *dlatent; /* MLA: (N, dkv) */
    float *dkpe;    /* MLA: (N, dr) */
    float *dlogits; /* (N, V) */
    float *probs;   /* (N, V) softmax of the logits (loss) */
    float *logits;  /* (N, V) */
    int *targets;   /* (N) next-token targets, -1 where none */
    float *scratch; /* the largest op scratch (swiglu, MoE, MLA) */
} GradState;

int gradstate_init(GradState *g, const Config *cfg, int B, int T, SeekErr *err);
/* floats of GradState.scratch: the largest scratch any backward op asks for (B × T tokens) */
size_t gradstate_scratch(const Config *cfg, int B, int T);
void gradstate_free(GradState *g);

/* Accumulates d loss / d parameter into grads, from dlogits (N, V) and the activations the
 * training forward saved in s (runstate_init_train) and kv (the cache holds each layer's K/V or
 * latent and rope key). dxnf_extra (N, C) or NULL: more gradient on the final norm's output (from
 * the MTP modules, which read it). dscores (L pointers, each (N, E) or NULL) or NULL: gradient on
 * each MoE layer's router scores (from the balance loss). */
void model_backward(Model *grads, GradState *g, const Model *m, const RunState *s, const KVCache *kv,
                    const float *dlogits, const float *dxnf_extra, float *const *dscores, int B, int T);
/* One decoder block backward, g->dx in place: on entry the gradient of the block's output, on
 * return that of its input. w/a/kv_layer as in block_forward. */
void block_backward(LayerWeights *gw, GradState *g, const Model *m, const RunState *s, const KVCache *kv,
                    const LayerWeights *w, const LayerState *a, int kv_layer, const float *dscores, int B, int T);

/* The main loss of a batch (train.h: the weighted cross-entropy over the positions with a
 * target; with no targets or weights, the loss transformers computes for labels = input_ids,
 * the mean over B·(T−1) predictions; with targets −1 on prompts, its loss for labels = −100
 * there). Runs the forward, and when grads is not NULL the backward (accumulating into grads),
 * on backend be (ref or cpu). Returns 0 and the loss in *loss. */
int model_loss_grad(const Model *m, Model *grads, const TrainBatch *batch, int B, int T, double *loss, SeekErr *err);
int model_loss_grad_be(Backend be, const Model *m, Model *grads, const TrainBatch *batch, int B, int T, double *loss,
                       SeekErr *err);

#endif
