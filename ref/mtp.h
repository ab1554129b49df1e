/* mtp.h: Multi-Token Prediction (DeepSeek-V3 §2.2, docs/model.md §8), forward and backward for training.
 *
 * Depth k = 1..D predicts the token k+1 positions ahead. For position i of each sequence
 * (i = 0 .. T−k−1, so depth k runs over Tk = T − k positions):
 *   h'_i = eh_proj( [ enorm(Emb(t_{i+k})) ; hnorm(h^{k−1}_i) ] )     (embedding first, as released)
 *   h^k  = TRM_k(h')                                                 (causal, over the Tk positions)
 *   logits^k_i = shared_head.head( shared_head.norm(h^k_i) )        (head = the main lm_head)
 *   L^k = mean over i with i+k+1 < T of −log softmax(logits^k_i)[t_{i+k+1}]
 * h^0 is the main model's final-norm output (the convention of vLLM and SGLang for the released
 * weights). The training loss adds λ/D · Σ_k L^k to the main next-token loss.
 */
#ifndef SEEK_MTP_H
#define SEEK_MTP_H

#include "backward.h"

typedef struct {
    int T;              /* positions of this depth: T_main − k */
    Config one;         /* the config with L = 1: its block lives in slot 0 of s and kv */
    RunState s;
    KVCache kv;
    GradState g;
    int *ids_e;         /* (B, Tk) the token whose embedding feeds position i: t_{i+k} */
    int *targets;       /* (B, Tk) t_{i+k+1}, or −1 */
    float *emb, *en, *en_rstd;  /* (N, C) embeddings, enorm output, (N) */
    float *hin, *hn, *hn_rstd;  /* (N, C) h^{k−1} at the Tk positions, hnorm output, (N) */
    float *cat;                 /* (N, 2C) [en ; hn] */
    float *hout;                /* (N, C) h^k, the block's output */
    float *ho_n, *ho_rstd;      /* (N, C) shared_head.norm(h^k), (N) */
    float *logits, *probs;      /* (N, V) */
    float *dh;                  /* (N, C) gradient of h^k (from this depth's head and depth k+1) */
    float *dcat;                /* (N, 2C) */
    float *tmp;                 /* (N, C) */
    int count;
    double loss;
} MtpDepth;

typedef struct {
    int D, B, T;
    Backend be;         /* which backend runs the ops (backend.h; BACKEND_REF after mtp_init) */
    MtpDepth *d;        /* (D) */
} MtpState;

/* Needs T − D >= 2 (every depth has a position with a target). */
int mtp_init(MtpState *ms, const Config *cfg, int D, int B, int T, SeekErr *err);
void mtp_free(MtpState *ms);
/* h0 (B, T, C): the main model's final-norm output (RunState.xnf). Fills each depth's loss.
 * targets (B, T) or NULL: the main loss's targets (TrainBatch); depth k at position i predicts
 * targets[b, i + k] (NULL: t_{i+k+1} within the window, as above), so a position the main loss
 * does not predict (a prompt, padding) is not predicted at any depth either. */
int mtp_forward(const Model *m, MtpState *ms, const int *ids, const int *targets, const float *h0, SeekErr *err);
/* Accumulates the gradient of scale · Σ_k L^k into grads and into dh0 (B, T, C). */
void mtp_backward(Model *grads, const Model *m, MtpState *ms, float scale, float *dh0);

#endif
