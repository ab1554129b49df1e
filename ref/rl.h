/* rl.h: reinforcement learning with rule-based rewards — one GRPO step's rollouts (DeepSeekMath
 * §4.1; DeepSeek-R1-Zero's recipe at tiny scale): for each of `prompts` tasks (tasks.h), G
 * completions sampled from the current policy, their rewards from the rule-based checker, the
 * group's advantages, and the policy TrainBatch (backward.h: PolicyTerms) that trainer_step
 * (trainer.h) minimises, with π_ref's log-probabilities from a frozen reference model.
 *
 * Rows: prompt_i ++ completion ++ padding, B = prompts·G rows of T = (the longest prompt the
 * task options allow, in bytes, + BOS) + max_new positions. A completion is the sampled tokens up
 * to and including the first EOS (all max_new when none comes); its tokens are predicted, nothing
 * else. Rewards: r = w_acc·accuracy + w_fmt·format (tasks.h's two rule-based rewards, scored
 * separately and reported separately). Advantages per group as grpo.h (TRL's), weights so the
 * loss is (1/(prompts·G)) Σ_i (1/|o_i|) Σ_t ℓ_{i,t} (length_norm; else 1/max_new). One update per
 * batch of samples has π_old = π (ρ = 1 in value, old_logprobs NULL); for several (DeepSeekMath's
 * μ), rl_old_logprobs fixes π_old as the sampling policy's log-probabilities of the batch.
 * Determinism: task k of step s is tasks.h's task `s·prompts + k` of the train split, and its
 * sampling seed is derived from (seed, s, k), so a run and its resume draw the same samples.
 */
#ifndef SEEK_RL_H
#define SEEK_RL_H

#include <stdio.h>

#include "backend.h"
#include "tasks.h"
#include "tokenizer.h"

typedef struct {
    int prompts;          /* groups (tasks) per step */
    int G;                /* completions per task */
    int max_new;          /* tokens sampled per completion at most */
    float temperature, top_p;
    uint64_t seed;        /* sampling and task stream */
    float beta, clip;     /* the KL weight and the ratio's clip */
    int scale_rewards, length_norm;
    float w_acc, w_fmt;   /* r = w_acc·accuracy + w_fmt·format */
    TaskOpts task;
} RlOpts;

/* What one step's rollouts measured (means over its prompts·G completions). */
typedef struct {
    double reward, accuracy, format, length;
    int groups_all_equal;  /* groups whose rewards were all equal (zero advantages) */
} RlStats;

typedef struct {
    RlOpts o;
    int B, T, Pmax;
    int *ids, *targets;       /* (B, T) */
    float *weights, *adv;     /* (B, T) */
    float *ref_lp;            /* (B, T) */
    float *old_lp;            /* (B, T) π_old, for several updates per batch */
    float *logits;            /* (B·T, V) the reference's forward */
    int *prompt, *out;        /* (G, Pmax), (G, max_new) one group's generation */
    int *len;                 /* (B) each row's completion length */
    int *acc, *fmt;           /* (B) each row's accuracy and format rewards */
    double *reward;           /* (B) each row's reward */
    float *row_adv;           /* (B) each row's advantage (its group's, grpo.h) */
    int *prompt_len;          /* (prompts) each task's prompt tokens (BOS included) */
    RunState s;               /* the reference's forward */
    KVCache kv;
    PolicyTerms pt;
    TrainBatch batch;         /* points at the arrays above */
    RlStats st;
} RlStep;

/* A bound on the prompts' tokens (BOS included) under tok: the template's text before and after
 * the question encoded apart, plus the longest question's bytes (a byte-level token covers at
 * least one byte) and 2 for merges across the joins; never above the prompt's bytes + 1. A prompt
 * that still exceeded it would be refused by rl_rollouts and rl_eval, never written past. */
int rl_prompt_bound(Tokenizer *tok, const TaskOpts *o, int *bound, SeekErr *err);
/* Sizes the buffers for o, the model config c and the prompts' bound under tok (T = bound +
 * max_new must fit max_position_embeddings). */
int rl_step_init(RlStep *x, const RlOpts *o, const Config *c, Tokenizer *tok, SeekErr *err);
void rl_step_free(RlStep *x);
/* Step `step`'s rollouts on backend be: sample, decode with tok, reward, advantages, and π_ref's
 * log-probabilities (ref on be; NULL: no KL term). Fills x->batch and x->st. */
int rl_rollouts(RlStep *x, Backend be, const Model *policy, const Model *ref, Tokenizer *tok, uint64_t step,
                SeekErr *err);
/* π_old := the policy's log-probabilities of the batch rl_rollouts built (a forward of policy on
 * be), so that several updates on the batch clip the ratio π/π_old (x->pt.old_logprobs). */
int rl_old_logprobs(RlStep *x, Backend be, const Model *policy, SeekErr *err);

/* The held-out evaluation, as the DeepSeek-R1 paper reports pass@1: for each of the first n tasks
 * of the test split, `samples` completions at (temperature, top_p) and one greedy completion.
 * pass@1 is the mean share of correct samples; pass@k the unbiased estimate of "at least one of k
 * samples is correct" from c correct of s (Chen et al. 2021, the Codex paper):
 *     pass@k = 1 − C(s − c, k) / C(s, k)      (1 when s − c < k),
 * averaged over the tasks. The samples of task i are seeded by (seed, i) alone, so two models are
 * compared on the same tasks and the same random streams. */
typedef struct {
    int n, samples, k;
    float temperature, top_p;
    uint64_t seed;
    int show;        /* the first `show` tasks' greedy completion and first sample are written to show_to */
    FILE *show_to;
} RlEvalOpts;

typedef struct {
    double pass1, passk, greedy;   /* accuracy: sampled pass@1, pass@k, greedy pass@1 */
    double format, greedy_format;  /* format rates of the samples and of the greedy completions */
    double length;                 /* mean completion tokens of the samples */
} RlEval;

/* The sampling seed of test task i under seed: its samples are one model_generate_stop_on call
 * seeded with it (seek solve draws the same samples as this evaluation). */
uint64_t rl_eval_seed(uint64_t seed, uint64_t i);
/* pass@k from c correct of s samples (the formula above); k <= s. */
double rl_pass_at_k(int s, int c, int k);
/* Errors: n < 1, samples < 1, k outside 1..samples; a prompt that does not fit. */
int rl_eval(Backend be, const Model *m, Tokenizer *tok, const RlOpts *o, const RlEvalOpts *e, RlEval *out,
            SeekErr *err);

#endif
