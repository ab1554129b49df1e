/* grpo.h: one GRPO group (DeepSeekMath §4.1; docs/model.md §9.8) — a prompt, G sampled
 * completions and their rewards — read from a GROUP.json file and turned into a policy
 * TrainBatch (backward.h: PolicyTerms), so `seek grad --grpo` can print one group's loss and
 * every parameter's gradient for checking against other implementations.
 *
 * GROUP.json:
 *   {"prompt": [ids], "completions": [[ids], ...], "rewards": [r, ...],
 *    "beta": β, "clip": ε, "ref": "DIR", "scale_rewards": true, "length_norm": true}
 * prompt: at least one id; completions: G >= 2 non-empty id lists; rewards: G numbers within ±1e9;
 * beta in [0, 1e6] (default 0.04), clip in [1e-6, 1) (default 0.2); ref: a model folder for π_ref, relative
 * to the JSON file's folder unless absolute (absent: the policy itself, so the KL term is 0);
 * scale_rewards (default true): divide by the group's standard deviation; length_norm (default
 * true): average each completion over its own tokens. Both false is Dr. GRPO (Liu et al. 2025).
 * Every other key is refused, as train.json's are.
 *
 * Advantages (as TRL's GRPOTrainer): A_i = (r_i − mean(r)) / (std(r) + 1e-4) with the group's
 * unbiased (n − 1) standard deviation; without scale_rewards, A_i = r_i − mean(r). All-equal
 * rewards give zero advantages: no policy gradient, the KL term alone (documented, not an error).
 *
 * The batch: row i is prompt ++ completion_i, padded to T = P + max|o_i| with pad_id; position t
 * of row i predicts ids[t+1] for P <= t+1 < P + |o_i| (the completion's tokens), with advantage
 * A_i, π_old = π (the first step on fresh samples: ρ = 1 in value), and the weight that makes the
 * step's (1/count)·Σ w·ℓ the GRPO objective's average:
 *   length_norm:    w = count / (G·|o_i|)     →  L = (1/G) Σ_i (1/|o_i|) Σ_t ℓ_{i,t}
 *   no length_norm: w = count / (G·max|o_i|)  →  L = (1/G) Σ_i (1/max|o|) Σ_t ℓ_{i,t}
 * Errors are one line naming the file and the field (and the index), before any work.
 */
#ifndef SEEK_GRPO_H
#define SEEK_GRPO_H

#include "backend.h"
#include "common.h"

#define GRPO_MAX_FILE_BYTES ((size_t)64 << 20)
/* |reward| at most this: advantages are float, and r − mean(r) must stay far inside its range */
#define GRPO_MAX_REWARD 1e9

typedef struct {
    int *prompt;           /* (P) */
    int P;
    int **completions;     /* (G) each (len[i]) */
    int *len;              /* (G) */
    int G;
    double *rewards;       /* (G) */
    float beta, clip;
    int scale_rewards, length_norm;
    char *ref;             /* the reference model's folder, resolved against the file's folder, or NULL */
    char *path;            /* the file, for messages */
} GrpoGroup;

/* Reads GROUP.json (at most GRPO_MAX_FILE_BYTES); every id must be below vocab. */
int grpo_group_load(GrpoGroup *g, const char *path, int vocab, SeekErr *err);
/* The same from text in memory (need not be NUL-terminated); path names it in messages and
 * anchors a relative "ref". */
int grpo_group_parse(GrpoGroup *g, const char *text, size_t len, const char *path, int vocab, SeekErr *err);
void grpo_group_free(GrpoGroup *g);

/* A (G) from r (G): (r − mean) / (std_unbiased + 1e-4), or r − mean without scaling. */
void grpo_advantages(float *A, const double *r, int G, int scale_by_std);

/* The batch's row length T = P + max|o_i|. */
int grpo_group_T(const GrpoGroup *g);
/* Fills ids, targets, weights and advantages, each (G, T) with T = grpo_group_T(g). */
int grpo_group_batch(const GrpoGroup *g, int pad_id, int *ids, int *targets, float *weights, float *adv, SeekErr *err);

/* The inputs of one GRPO group for model m: GROUP.json (grpo.h) read against m's vocabulary, the
 * batch (ids, targets, weights, advantages: (G, T)), and π_ref's log-probabilities of the targets
 * from the group's "ref" folder run on backend be (NULL without one: the KL term is 0). The ref
 * must be the same architecture and size (config_hash). All outputs are malloc'd. */
typedef struct {
    int B, T;
    int *ids, *targets;
    float *weights, *adv, *ref_lp;
    PolicyTerms pt;
} GrpoInputs;
int grpo_inputs_load(Backend be, const Model *m, const char *path, GrpoInputs *x, SeekErr *err);
void grpo_inputs_free(GrpoInputs *x);

#endif
