/* moe.h: DeepSeekMoE, the router (V2 softmax greedy / group-limited greedy, V3 sigmoid with
 * bias-corrected group-limited top-k) and the expert mixture (routed + shared experts). */
#ifndef SEEK_MOE_H
#define SEEK_MOE_H

#include "config.h"
#include "model.h"

/* Router scores for N tokens (docs/model.md §6.3, §6.4): logits = x·W_gateᵀ, scores (sigmoid or
 * softmax) and choice (what selection sees: scores + bias for V3, scores for V2), all (N, E). */
void moe_router_scores(float *logits, float *scores, float *choice, const float *inp, const float *router,
                       const float *bias, int N, const Config *cfg);
/* The second half of moe_router_scores, shared with the fast twins: scores and choice from logits. */
void moe_scores_from_logits(float *scores, float *choice, const float *logits, const float *bias, int N,
                            const Config *cfg);
/* Selection: idx (N, K) the chosen experts in selection order (largest choice first; ties go to
 * the lower index) with group limiting, and weights (N, K), the final gate weights from the
 * unbiased scores (normalised for V3 when norm_topk_prob, times routed_scaling_factor).
 * scratch: (E + G) floats. */
void moe_select(int *idx, float *weights, const float *scores, const float *choice, int N, const Config *cfg,
                float *scratch);
/* Both steps. */
void moe_route(int *idx, float *weights, float *logits, float *scores, float *choice, const float *inp,
               const float *router, const float *bias, int N, const Config *cfg, float *scratch);

/* out (N, C) = Σ_k weights[k] · Expert_{idx[k]}(x) + SharedExperts(x). Saved for backward:
 * routed and shared (N, C), each chosen expert's eg, eu, ea (N, K, Hm) and output eo (N, K, C)
 * before weighting, and the shared experts' sg, su, sa (N, Es*Hm). */
void moe_forward(float *out, float *routed, float *shared, float *eg, float *eu, float *ea, float *eo, float *sg,
                 float *su, float *sa, const float *inp, const int *idx, const float *weights, const LayerWeights *w,
                 int N, const Config *cfg);

/* Backward of moe_route's gate weights and moe_forward. Gradients flow through the chosen
 * experts, the shared experts, and the router through the selected gate weights (including
 * their renormalisation and scaling); the selection itself and the balancing bias get none.
 * Accumulates dinp (N, C) and the expert, shared-expert and router grads in g. dscores (N, E),
 * when not NULL, is added to the router's score gradient first (the balance loss uses it).
 * scratch: moe_backward_scratch(cfg, N) floats. */
void moe_backward(float *dinp, LayerWeights *g, const float *dout, const float *dscores, const float *inp,
                  const int *idx, const float *weights, const float *scores, const float *eg, const float *eu,
                  const float *ea, const float *eo, const float *sg, const float *su, const float *sa,
                  const LayerWeights *w, int N, const Config *cfg, float *scratch);
size_t moe_backward_scratch(const Config *cfg, int N);
/* One token's routing backward (the CPU twin shares it): from dg (K), the gradient of the
 * chosen experts' gate weights, through the normalisation and routed scaling to the scores,
 * ds (E) = dscores (E, or NULL: 0) + that, then through the sigmoid or softmax to the router
 * logits, dl (E) (written, not accumulated). s (E) the token's scores, id (K) its experts. */
void moe_router_backward_row(float *dl, float *ds, const float *dg, const float *s, const int *id, const float *dscores,
                             const Config *cfg);

/* Top-k of x (n values) with ties to the lower index: writes k indices, largest first.
 * taken (n) is scratch. Exposed for tests. */
void topk_indices(int *out, const float *x, int n, int k, unsigned char *taken);

#endif
