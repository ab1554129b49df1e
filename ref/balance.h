/* balance.h: DeepSeekMoE load balancing (docs/model.md §7).
 *   - auxiliary-loss-free balancing (V3): after each step, b_i += γ·sign(mean_load − load_i);
 *   - the complementary sequence-wise balance loss (V3, α) and V2's expert-level auxiliary loss
 *     (α1), both L = α Σ_i f_i·P_i per sequence, averaged over the batch's sequences;
 *   - per-layer load statistics. */
#ifndef SEEK_BALANCE_H
#define SEEK_BALANCE_H

#include "config.h"

/* Per sequence of T tokens (V3 eq. 17-20; V2 §3.1.2 for softmax scores):
 *   f_i = E/(K·T) · #{t : expert i chosen at t}       (the experts actually selected)
 *   P_i = (1/T) Σ_t s'_{i,t},  s' = s / Σ_j s_j (sigmoid, V3)  or  s' = s (softmax, V2)
 *   L = α Σ_i f_i·P_i, averaged over the B sequences.
 * Returns L; adds dL/ds (N, E) into dscores (f is a count: no gradient). */
double balance_loss(float *dscores, const float *scores, const int *idx, int B, int T, const Config *cfg, float alpha);

/* Tokens routed to each expert over N tokens: load (E). */
void expert_load(int *load, const int *idx, int N, const Config *cfg);

/* b_i += γ·sign(mean − load_i), mean = N·K/E (no change when exactly balanced). */
void bias_update(float *bias, const int *load, int N, const Config *cfg, float gamma);

typedef struct {
    double max_over_mean; /* max_i load_i / mean */
    double frac_idle;     /* fraction of experts with no token */
} LoadStats;
LoadStats load_stats(const int *load, int N, const Config *cfg);

#endif
