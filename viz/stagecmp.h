/* stagecmp.h: one hook stage of a backend against the reference's: the error measures and limits
 * `seek verify` and the REPL's `compare` both judge by (ref/tolerances.h).
 *
 * The fp32 backends (cpu, cuda) are held to fixed limits (TOL_CPU_STAGE_*). A bf16 backend
 * (cuda-fast) is held to a measured baseline: the reference run again on the same tokens with the
 * same values rounded to bf16 at the same points (ref/precision.h); each stage may be at most
 * TOL_BF16_BASELINE_FACTOR times as far from the fp32 reference as that run is, plus the fp32
 * limits for the order of sums (docs/cuda-fast.md, "Numbers"). */
#ifndef SEEK_STAGECMP_H
#define SEEK_STAGECMP_H

#include <stddef.h>

#include "config.h"
#include "hooks.h"

/* The error of one stage against the reference: NaN/Inf positions that differ (compared first:
 * masked attention scores are -inf in both), then over the finite entries the largest absolute
 * difference, rel = max|got - want| / max|want| and nmse = Σ(got - want)² / Σ want². got has
 * want's shape (same_shape). */
typedef struct {
    size_t bad_pos, first_bad;
    double max_abs, max_want, rel, nmse;
} StageErr;
StageErr stage_error(const Activation *want, const Activation *got);
int same_shape(const Activation *a, const Activation *b);

/* A stage's limits: the fixed fp32 ones (base == NULL), or TOL_BF16_BASELINE_FACTOR times the
 * baseline capture's own error at this stage (rel; its square times the nmse) plus
 * TOL_CUDA_STAGE_*. base_rel is the baseline's rel, or -1 without one. */
typedef struct {
    double rel, nmse, base_rel;
} Limits;
Limits stage_limits(const Activation *want, const ActCache *base);

/* A bf16 backend's routing. Among the tokens (rows of a hook_expert_indices stage) whose expert
 * set differs from the reference's (*differ), the near ties: those for which the reference's own
 * selection (moe_select, config cfg), run on the backend's routing values for that token (its
 * hook_router_scores and hook_router_choice in gotc, which their own rows hold within the stage
 * limits), picks exactly the backend's experts. The difference then comes from values that moved
 * within the bf16 rounding across a tie in the selection (between experts, or between groups'
 * scores), not from the routing; any other difference is a failure. */
size_t routing_near_ties(const Activation *want, const Activation *got, const ActCache *gotc, const Config *cfg,
                         size_t *differ);

#endif
