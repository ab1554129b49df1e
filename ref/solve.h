/* solve.h: test-time compute on the verifiable tasks (tasks.h): more tokens spent at inference for
 * more accuracy, with no training (docs/rl.md, "Test-time compute"; `seek solve`, viz/cmd_solve.c).
 *
 *   - Self-consistency (Wang et al. 2022): N samples of one problem, the answer of each extracted
 *     by the task's own checker (task_check), and the majority vote of the answers: maj@N.
 *   - Best-of-N with the rule verifier: a problem counts as solved when any of its N samples is
 *     right. The verifier is task_check against the known answer, so best-of-N is pass@N, an upper
 *     bound that no selector without the answer reaches, not a method one could deploy.
 *   - A thinking budget: at most B tokens inside <think> ... </think>. When the budget runs out the
 *     close is forced and the model answers. And s1's budget forcing (Muennighoff et al. 2025,
 *     "s1: Simple test-time scaling"): when the model closes the thinking before it has spent B
 *     tokens, the close is replaced by "Wait" and the model goes on thinking, at most F times a
 *     completion.
 *
 * The vote. Every sample whose extracted answer is an integer (TASK_ANSWER_INT) casts one vote for
 * its value (so "0433" and "433" are one answer). Every other sample abstains: no well-delimited
 * answer, not an integer, or an integer outside int64 (which equals no answer). The value with the
 * most votes wins. A tie goes to the tied value whose first vote came first (the lowest sample
 * index), so the vote is a function of the samples in order. When every sample abstains there is
 * no answer, and the problem counts as wrong.
 * maj@k for k < N: the mean over the floor(N/k) disjoint blocks of k consecutive samples (samples
 * 0..k−1, k..2k−1, ...) of "the block's vote is right". So maj@1 is pass@1 and maj@N one vote of
 * all N samples. pass@k is rl.h's unbiased estimate from c correct of N.
 *
 * The budget, token by token (think_step). The completion starts inside the thinking (the prompt
 * ends with "<think>"). "</think>" must be one token of the model's tokenizer (it is an added token
 * in the shipped ones), so the close is seen the moment it is sampled, before it is fed. A row is
 * thinking until "</think>" is fed; the tokens fed while it thinks are its thinking tokens, the
 * forced "Wait"s included. At each step the model samples a token for every row, and then:
 *   - when forced tokens are queued, the next of them is fed instead of the sample;
 *   - when the row is thinking and the sample is "</think>": if fewer than F "Wait"s were forced
 *     and the "Wait" fits, thinking + |Wait| < B (room is left to think after it), the "Wait"
 *     tokens are queued and fed instead; else the close is taken;
 *   - when the row is thinking, has spent B tokens and the sample is neither "</think>" nor EOS:
 *     "</think>" is queued and fed instead (the budget's close; its tokens are not thinking);
 *   - otherwise the sample is fed.
 * A forced string is the tokenizer's encoding of "Wait" or "</think>" when the last token fed ends
 * in whitespace, and of " Wait" or " </think>" when it does not (the model's text puts a space
 * before "</think>"). So a row thinks at most B tokens, and with B = 0 (no budget) nothing is
 * forced and the tokens are model_generate_stop_on's, draw for draw.
 *
 * Errors: library tier (common.h), -1 with a one-line reason.
 */
#ifndef SEEK_SOLVE_H
#define SEEK_SOLVE_H

#include <stdio.h>

#include "backend.h"
#include "tasks.h"
#include "tokenizer.h"

/* ---- the vote ---- */

/* The majority vote of the n extracted answers r (the rule above): returns the winner's votes and
 * sets *value to it, or returns 0 (every sample abstained) and sets *value to 0. */
int solve_vote(const TaskReward *r, int n, int64_t *value);
/* maj@k from n samples against answer (the rule above); 1 <= k <= n. */
double solve_maj_at_k(const TaskReward *r, int n, int k, int64_t answer);

/* The sample counts reported: 1, 2, 4, ... up to n, and n itself when it is not a power of two. */
#define SOLVE_MAX_KS 12
int solve_ks(int n, int ks[SOLVE_MAX_KS]);

/* ---- the thinking budget ---- */

#define THINK_FORCED_MAX 16   /* tokens of a forced string at most */
#define THINK_CLOSE "</think>"
#define THINK_WAIT "Wait"

typedef struct {
    int budget;            /* thinking tokens at most, >= 1; 0: no budget (force must be 0) */
    int force;             /* "Wait"s forced a completion at most */
    int close_id;          /* the token "</think>"; -1 when it is not one token (allowed only without a budget) */
    int eos;               /* the EOS id */
    int V;                 /* ids below V have an entry in ws_end */
    int close[2][THINK_FORCED_MAX], n_close[2];  /* the forced close: [0] "</think>" after whitespace, [1] " </think>" */
    int wait[2][THINK_FORCED_MAX], n_wait[2];    /* [0] "Wait", [1] " Wait" */
    unsigned char *ws_end; /* (V) 1 when the token's text ends in whitespace */
} ThinkBudget;

/* The strings above under tok, for a model of vocabulary V and EOS id eos. Errors: budget < 0,
 * force < 0, force without a budget; with a budget, "</think>" not one token or a forced string of
 * more than THINK_FORCED_MAX tokens. Without one nothing is forced, and a "</think>" of several
 * tokens only means that no thinking is seen to close (every token counts as thinking). */
int think_budget_init(ThinkBudget *b, Tokenizer *tok, int budget, int force, int eos, int V, SeekErr *err);
void think_budget_free(ThinkBudget *b);

typedef enum { THINK_OPEN, THINK_CLOSED, THINK_ENDED } ThinkPhase;

/* One row's state. */
typedef struct {
    ThinkPhase phase;      /* thinking, answering, or ended (EOS fed) */
    int think;             /* thinking tokens fed (the model's and the forced "Wait"s) */
    int waits;             /* "Wait"s forced */
    int capped;            /* 1 when the budget closed the thinking */
    int last_ws;           /* the last token fed ends in whitespace */
    int q[THINK_FORCED_MAX], nq, iq;   /* forced tokens; q[iq..nq) still to feed */
} ThinkRow;

/* A row after a prompt whose last token is last (its whitespace decides the first forced string). */
void think_row_init(ThinkRow *r, const ThinkBudget *b, int last);
/* One step (the rules above): the model sampled `sampled`; returns the token fed (and written to
 * the completion), *forced = 1 when it is not the sample. After EOS the sample passes through. */
int think_step(ThinkRow *r, const ThinkBudget *b, int sampled, int *forced);

/* Generation under a budget on backend be: model_generate_stop_on's loop (one prefill, then one
 * decode call a step; every row samples at every step, ended rows too, so the random draws are
 * its draws) with each sample passed through think_step. ids (B, T) the prompts; out (B, n) the
 * completions, every position after the step at which the last row ended is eos; forced (B, n) 1
 * where a token was forced, or NULL; rows (B) each row's final state, or NULL. */
int think_generate_on(Backend be, const Model *m, const int *ids, int B, int T, int n, const SampleParams *sp,
                      const ThinkBudget *b, int *out, unsigned char *forced, ThinkRow *rows, SeekErr *err);

/* ---- one problem ---- */

typedef struct {
    TaskOpts task;
    TaskSplit split;
    uint64_t seed;         /* the problems (tasks.h) and the samples' streams (rl_eval_seed) */
    int problems, samples, max_new;
    float temperature, top_p;
} SolveOpts;

/* One problem's results (under one budget). */
typedef struct {
    Task task;
    TaskReward greedy;                 /* the greedy completion's rewards and extracted answer */
    int greedy_tokens, greedy_think;   /* its generated tokens (EOS included) and thinking tokens */
    int greedy_waits, greedy_capped;
    int correct, formatted;            /* samples right, samples with the format reward */
    int abstained;                     /* samples without an integer answer */
    int votes;                         /* the winner's votes, 0: every sample abstained */
    int64_t vote;                      /* the majority answer (when votes > 0) */
    int maj_correct;                   /* the vote of all samples is right */
    int tokens, think, waits, capped;  /* sums over the samples: generated and thinking tokens, "Wait"s, capped rows */
    int nk, ks[SOLVE_MAX_KS];
    double maj_k[SOLVE_MAX_KS], pass_k[SOLVE_MAX_KS];
} SolveProblem;

/* Buffers for one problem's generation, sized once. */
typedef struct {
    SolveOpts o;
    int Pmax;              /* the prompts' token bound (rl_prompt_bound) */
    int *prompt;           /* (samples, Pmax) */
    int *out;              /* (samples + 1, max_new): the samples, then the greedy row */
    unsigned char *forced; /* (samples + 1, max_new) */
    ThinkRow *rows;        /* (samples + 1) */
    TaskReward *rewards;   /* (samples) */
} Solver;

/* Errors: problems < 1, samples outside 1..1024, max_new < 1, a prompt bound + max_new over the
 * model's context, bad task options. */
int solver_init(Solver *s, const SolveOpts *o, const Config *c, Tokenizer *tok, SeekErr *err);
void solver_free(Solver *s);
/* Problem i of the split under the budget b: one greedy completion, then `samples` sampled in one
 * batch with seed rl_eval_seed(seed, i), as rl_eval draws them; each scored by task_check. */
int solve_problem(Solver *s, Backend be, const Model *m, Tokenizer *tok, const ThinkBudget *b, int i, SolveProblem *p,
                  SeekErr *err);
/* A completion for a reader, one line: its text (bytes outside printable ASCII as \xHH), forced
 * tokens in [brackets]. row: 0..samples−1 a sample, samples the greedy row. */
void solve_show(FILE *f, const Solver *s, const Tokenizer *tok, int row, int eos);

/* ---- totals ---- */

typedef struct {
    int problems, samples;
    double greedy, pass1, maj, passn;  /* accuracies at N = samples: greedy, mean share right, maj@N, pass@N */
    int nk, ks[SOLVE_MAX_KS];
    double maj_k[SOLVE_MAX_KS], pass_k[SOLVE_MAX_KS];
    double format, greedy_format, abstain;   /* shares of samples with the format reward, without an answer */
    long long tokens, greedy_tokens;   /* generated tokens, all samples and all greedy completions */
    double think, greedy_think;        /* mean thinking tokens a sample, a greedy completion */
    double waits, capped;              /* mean "Wait"s a sample; share of samples the budget closed */
} SolveTotals;

void solve_totals_init(SolveTotals *t, int samples);
void solve_totals_add(SolveTotals *t, const SolveProblem *p);
/* means from sums; call once, after the last add */
void solve_totals_finish(SolveTotals *t);

#endif
