/* tolerances.h: the one table of numeric limits the tests use, each with its reason.
 * docs/conventions.md reproduces this table; change both together. Relative limits are
 * max|got - want| / max|want| over the whole tensor unless said otherwise. */
#ifndef SEEK_TOLERANCES_H
#define SEEK_TOLERANCES_H

/* seek.c fp32 vs transformers fp32 on CPU: same math, different summation order and
 * libm/SLEEF transcendental rounding; the contract is 1e-4 of the largest logit. */
#define TOL_HF_LOGITS_REL 1e-4
/* Hidden states vs transformers: the same reasons; each layer's slice against its own max. */
#define TOL_HF_HIDDEN_REL 1e-4
/* Router gate weights vs transformers, per element, absolute (weights are O(1)). */
#define TOL_HF_GATE_ABS 1e-5
/* Naive vs absorbed MLA: the same sums reassociated in fp32 (issue 2's contract). */
#define TOL_NAIVE_ABSORB_REL 1e-5
/* Hand-computed values of small ops (a few fp32 roundings of O(1) numbers). */
#define TOL_HAND_ABS 1e-6
/* Frequencies computed with powf in fp32 vs pow in double. */
#define TOL_ROPE_FREQ_REL 2e-6
/* Seeded sampling: empirical frequency over >= 8000 draws vs the intended probability; above
 * four binomial standard deviations for every case tested (largest: p = 0.625, n = 8000, 4σ = 0.022). */
#define TOL_SAMPLE_FREQ_ABS 0.025

#endif
