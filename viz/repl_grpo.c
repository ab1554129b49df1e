/* repl_grpo.c: the REPL's views of one GRPO group and one GRPO update (repl_grpo.h; docs/repl.md,
 * "One GRPO group and one update"; the objective is docs/training.md's, the loop docs/rl.md's).
 *
 *   group N [G]  rl_rollouts (ref/rl.h) with one prompt: G completions of train task N sampled
 *                from the loaded model (π_old) at the REPL's temperature and top-p, each scored by
 *                the rule-based rewards r = accuracy + 0.1·format, the group's advantages
 *                A_i = (r_i − mean r)/(std r + 1e-4) (TRL's), and π_ref's log-probabilities of
 *                every completion token from a frozen copy of the model as loaded. rl_old_logprobs
 *                then fixes π_old: the log-probabilities of the policy that sampled the group.
 *   update [LR]  one trainer_step (ref/trainer.h; an in-memory trainer, seek rl's settings:
 *                constant LR, AdamW (0.9, 0.99, 1e-8, no decay), clipping at norm 1, no MTP or
 *                balance loss) on the kept group's TrainBatch, minimising
 *                  L = (1/G) Σ_i (1/|o_i|) Σ_t −[min(ρ_t·A_i, clip(ρ_t, 1−ε, 1+ε)·A_i) − β·KL_t],
 *                  ρ_t = π(o_t)/π_old(o_t),  KL_t = π_ref/π − log(π_ref/π) − 1  (k3)
 *                with β = 0.04, ε = 0.2; then a forward of the updated policy over the same rows
 *                gives each completion's new summed log-probability Σ_t log π(o_t). A second
 *                update on the group keeps π_old (the sampling policy) and the optimizer's
 *                moments, as `seek rl --updates 2` does, so ρ moves further from 1 and the clip
 *                starts to act.
 *   tokens K     completion K token by token: ρ_t against π_old, KL_t against π_ref, A_K.
 *
 * Memory: the state (ReplGrpo) is the kept group (RlStep: its rows, rewards, advantages, π_ref's
 * and π_old's log-probabilities, the forward's buffers), the current policy's log-probabilities
 * of the rows, the frozen reference and the trainer (gradients and AdamW moments). A new group
 * replaces the old one and its trainer only once it has been drawn, so a failed `group` leaves
 * the state as it was; `load` frees everything (repl_grpo_free).
 */
#include "repl_grpo.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backward.h"
#include "rl.h"
#include "tasks.h"
#include "tokenizer.h"
#include "trainer.h"

#define GRPO_BETA 0.04f
#define GRPO_CLIP 0.2f
#define GRPO_W_FORMAT 0.1f
#define GRPO_LR 3e-4
#define GRPO_DIGITS_MIN 2
#define GRPO_DIGITS_MAX 3

typedef struct ReplGrpo {
    Model ref;          /* π_ref: a frozen copy of the model as loaded (made by the first `group`) */
    int have_ref;
    RlStep *x;          /* the kept group (one prompt, G rows of T positions); NULL: none. On the
                           heap, never copied: its TrainBatch points at its own PolicyTerms */
    Task task;
    long long index;    /* the task's number in the train split */
    float temperature;  /* what the group was sampled at */
    float *lp;          /* (G, T) the current policy's log π(target): π_old until an update */
    Trainer tr;         /* the group's optimizer state (made by its first `update`) */
    int have_tr;
    int updates;        /* updates on this group */
    int model_updates;  /* updates since the model was loaded */
} ReplGrpo;

static void drop_group(ReplGrpo *g) {
    if (g->have_tr) trainer_free(&g->tr);
    if (g->x) rl_step_free(g->x);
    free(g->x);
    free(g->lp);
    g->x = NULL;
    g->lp = NULL;
    g->have_tr = 0;
    g->updates = 0;
}

void repl_grpo_free(Repl *r) {
    ReplGrpo *g = r->grpo;
    if (!g) return;
    drop_group(g);
    if (g->have_ref) model_free(&g->ref);
    free(g);
    r->grpo = NULL;
}

static int need_group(Repl *r, const char *cmd) {
    if (!r->grpo || !r->grpo->x) return repl_fail(r, "%s: no group yet (group N [G] first)", cmd);
    return 0;
}

/* completion g's tokens: row g from the prompt's end, len of them (the last may be EOS) */
static const int *completion(const RlStep *x, int g) { return x->ids + (size_t)g * x->T + x->prompt_len[0]; }
/* the position whose target is completion token j */
static size_t target_at(const RlStep *x, int g, int j) { return (size_t)g * x->T + (size_t)(x->prompt_len[0] - 1 + j); }

/* The completion's text (its tokens before EOS) escaped into out (cap bytes, "..." when cut). */
static void completion_text(const Repl *r, const RlStep *x, int g, char *out, size_t cap) {
    const int *c = completion(x, g);
    int n = x->len[g];
    if (n > 0 && c[n - 1] == r->model.cfg.eos_id) n--;
    out[0] = '\0';
    int32_t ids[REPL_GRPO_MAX_NEW];
    for (int i = 0; i < n; i++) ids[i] = c[i];
    TokBytes b = {0};
    SeekErr e;
    if (tokenizer_decode(r->tok, ids, (size_t)n, &b, &e)) snprintf(out, cap, "(%s)", e.msg);
    else escape_bytes(out, cap, b.data, b.n, 0);
    free(b.data);
}

/* a token's text, escaped and quoted ('7', ' The'); EOS as <eos> */
static void token_text(const Repl *r, int id, char *out, size_t cap) {
    if (id == r->model.cfg.eos_id) {
        snprintf(out, cap, "<eos>");
        return;
    }
    char t[64];
    size_t n = 0;
    const uint8_t *b = tokenizer_token_bytes(r->tok, id, &n);
    if (b) escape_bytes(t, cap > 2 && cap - 2 < sizeof t ? cap - 2 : sizeof t, b, n, 0);
    else snprintf(t, sizeof t, "#%d", id);
    snprintf(out, cap, "'%.*s'", cap > 3 ? (int)cap - 3 : 0, t);
}

/* v, or 0 when it is below half the last printed digit (so it never prints as -0.0000) */
static double zero(double v, double half) { return fabs(v) < half ? 0.0 : v; }

/* ---- group N [G] ---- */

int repl_cmd_group(Repl *r, int argc, char **argv, const char *rest) {
    const char *usage = "group N [G]";
    if (!r->loaded) return repl_fail(r, "group: no model loaded (load DIR first)");
    if (!r->tok) return repl_fail(r, "group: %s (the task's prompt and the rewards need the model's tokenizer)", r->tok_note);
    const Config *c = &r->model.cfg;
    long long N, G = 8;
    if (repl_arg_int(r, argv[1], 0, REPL_GRPO_TASKS, "task", usage, &N)) return -1;
    if (argc > 2 && repl_arg_int(r, argv[2], 2, 65, "group size", usage, &G)) return -1;
    if (tokenizer_n_ids(r->tok) > c->V)
        return repl_fail(r, "group: the tokenizer has %d ids, more than the model's vocab_size %d", tokenizer_n_ids(r->tok), c->V);
    ReplGrpo *g = r->grpo;
    if (!g && !(g = r->grpo = calloc(1, sizeof *g))) return repl_fail(r, "group: out of memory");
    SeekErr err;
    /* π_ref: the model as loaded, frozen before any update can change the policy */
    if (!g->have_ref) {
        if (model_init(&g->ref, c, &err)) return repl_fail(r, "group: the reference model: %s", err.msg);
        memcpy(g->ref.arena, r->model.arena, r->model.n_floats * sizeof(float));
        g->have_ref = 1;
    }
    const float temp = r->sp.temperature > 0 ? r->sp.temperature : 1.0f;
    RlOpts o = {.prompts = 1, .G = (int)G, .max_new = REPL_GRPO_MAX_NEW, .temperature = temp, .top_p = r->sp.top_p,
                .seed = r->sp.seed, .beta = GRPO_BETA, .clip = GRPO_CLIP, .scale_rewards = 1, .length_norm = 1,
                .w_acc = 1.0f, .w_fmt = GRPO_W_FORMAT,
                .task = {GRPO_DIGITS_MIN, GRPO_DIGITS_MAX, TASK_OP_ADD, 0}};
    Task task;
    if (task_make(&task, &o.task, o.seed, TASK_TRAIN, (uint64_t)N, &err)) return repl_fail(r, "group: %s", err.msg);
    RlStep *x = calloc(1, sizeof *x);
    if (!x) return repl_fail(r, "group: out of memory");
    if (rl_step_init(x, &o, c, r->tok, &err)) {
        free(x);
        return repl_fail(r, "group: %s", err.msg);
    }
    float *lp = malloc((size_t)x->B * x->T * sizeof(float));
    int rc = lp ? 0 : seek_fail(&err, "out of memory");
    if (!rc) rc = rl_rollouts(x, r->backend, &r->model, &g->ref, r->tok, (uint64_t)N, &err);
    if (!rc) rc = rl_old_logprobs(x, r->backend, &r->model, &err);
    if (rc) {
        free(lp);
        rl_step_free(x);
        free(x);
        return repl_fail(r, "group: %s", err.msg);
    }
    memcpy(lp, x->old_lp, (size_t)x->B * x->T * sizeof(float));
    /* the new group replaces the kept one (and its optimizer state) */
    drop_group(g);
    g->x = x;
    g->lp = lp;
    g->task = task;
    g->index = N;
    g->temperature = temp;

    const RlStep *xs = g->x;
    repl_say(r, "task %lld (train split, seed %llu): %s = %lld\n", N, (unsigned long long)o.seed, task.question,
             (long long)task.answer);
    if (r->sp.temperature <= 0)
        repl_say(r, "temperature is 0 (greedy), and %d greedy samples would be identical, with no spread to learn from: "
                    "sampling at temperature 1\n", (int)G);
    repl_say(r, "%d samples at temperature %g, top_p %g, %d new tokens at most%s; backend %s\n", (int)G, temp, r->sp.top_p,
             REPL_GRPO_MAX_NEW, r->sp.top_k ? " (top_k is not used: seek rl samples with temperature and top_p)" : "",
             backend_name(r->backend));
    repl_say(r, "   #  reward  acc  fmt  advantage  tokens  completion\n");
    const int head = 43;
    int room = r->width - head;
    if (room < 24) room = 24;
    if (room > 400) room = 400;
    for (int i = 0; i < G; i++) {
        char text[1600];
        completion_text(r, xs, i, text, sizeof text);
        if ((int)strlen(text) > room) snprintf(text + room - 3, 4, "...");
        repl_say(r, "  %2d  %6.3f  %3d  %3d  %+9.3f  %6d  %s\n", i, xs->reward[i], xs->acc[i], xs->fmt[i], xs->row_adv[i],
                 xs->len[i], text);
    }
    double mean = xs->st.reward, var = 0;
    for (int i = 0; i < G; i++) var += (xs->reward[i] - mean) * (xs->reward[i] - mean);
    const double sd = sqrt(var / (double)(G - 1));
    repl_say(r, "mean reward %.3f (accuracy %.3f, format %.3f), mean length %.1f tokens; reward = accuracy + %g x format\n",
             mean, xs->st.accuracy, xs->st.format, xs->st.length, GRPO_W_FORMAT);
    if (xs->st.groups_all_equal)
        repl_say(r, "all %d rewards are equal (%.3f): every advantage is 0, so the group teaches nothing (an update moves "
                    "the policy only through the KL term)\n", (int)G, xs->reward[0]);
    else
        repl_say(r, "advantage = (reward - mean) / (std + 1e-4), std %.4f (unbiased): above the mean pushes up, below "
                    "pushes down\n", sd);
    /* the picture: reward and advantage per sample */
    char title[PLOT_TITLE_LEN];
    snprintf(title, sizeof title, "task %lld: %s = %lld, %d samples at temperature %g", N, task.question,
             (long long)task.answer, (int)G, temp);
    repl_new_picture(r, title, 2);
    Panel *pr = picture_add(&r->pic, PANEL_BARS, 1, (int)G, "reward (accuracy + 0.1 x format)", &err);
    Panel *pa = pr ? picture_add(&r->pic, PANEL_BARS, 1, (int)G, "advantage", &err) : NULL;
    pr = pa ? &r->pic.panels[0] : NULL; /* the panel array may have moved */
    if (!pa || panel_want_labels(pr, 0, 1, &err) || panel_want_labels(pa, 0, 1, &err))
        return repl_fail(r, "group: the picture: %s", err.msg);
    float amax = 0;
    for (int i = 0; i < G; i++) {
        pr->v[i] = (float)xs->reward[i];
        pa->v[i] = xs->row_adv[i];
        amax = fmaxf(amax, fabsf(xs->row_adv[i]));
        snprintf(pr->col_labels[i], PLOT_LABEL_LEN, "%d", i);
        snprintf(pa->col_labels[i], PLOT_LABEL_LEN, "%d", i);
    }
    pr->cmap = pa->cmap = r->cmap;
    pr->lo = 0.0f;
    pr->hi = 1.0f + GRPO_W_FORMAT;
    pa->lo = amax > 0 ? -amax : -1.0f;
    pa->hi = -pa->lo;
    snprintf(pr->xlabel, sizeof pr->xlabel, "sample");
    snprintf(pa->xlabel, sizeof pa->xlabel, "sample");
    r->have_pic = 1; /* the table is the terminal view; `png` draws the bars */
    return 0;
}

/* ---- update [LR] ---- */

/* Σ over completion g's tokens of lp, and the mean ratio exp(lp − old) over them */
static void row_sums(const RlStep *x, const float *lp, int g, double *sum_new, double *sum_old, double *ratio) {
    double a = 0, b = 0, q = 0;
    for (int j = 0; j < x->len[g]; j++) {
        const size_t t = target_at(x, g, j);
        a += lp[t];
        b += x->old_lp[t];
        q += exp((double)lp[t] - x->old_lp[t]);
    }
    *sum_new = a;
    *sum_old = b;
    *ratio = x->len[g] ? q / x->len[g] : 1.0;
}

/* the clipped branch of min(ρA, clip(ρ)A) wins: the token gets no gradient from the advantage */
static int clipped(double ratio, float A) {
    return (A > 0 && ratio > 1.0 + GRPO_CLIP) || (A < 0 && ratio < 1.0 - GRPO_CLIP);
}

int repl_cmd_update(Repl *r, int argc, char **argv, const char *rest) {
    const char *usage = "update [LR]";
    if (!r->loaded) return repl_fail(r, "update: no model loaded (load DIR first)");
    if (need_group(r, "update")) return -1;
    double lr = GRPO_LR;
    SeekErr err;
    if (argc > 1 && (parse_f64(argv[1], 0.0, 1.0, &lr, "learning rate", &err) || lr <= 0))
        return repl_fail(r, "update: learning rate '%s': expected a finite number in (0, 1] (usage: %s)", argv[1], usage);
    ReplGrpo *g = r->grpo;
    RlStep *x = g->x;
    const int G = x->B, T = x->T, V = r->model.cfg.V;
    float *lp = malloc((size_t)G * T * sizeof(float));
    if (!lp) return repl_fail(r, "update: out of memory");
    if (!g->have_tr) {
        TrainerOpts to = {.B = G, .T = T, .steps = 1 << 16,
                          .sched = {SCHED_CONSTANT, (float)lr, (float)lr, 0, 1 << 16, 0},
                          .adamw = {0.9f, 0.99f, 1e-8f, 0.0f}, .grad_clip = 1.0, .lw = {0, 0, 0}, .bias_gamma = 0,
                          .max_bad_steps = 1 << 30, .out = NULL, .be = r->backend};
        if (trainer_init(&g->tr, &to, &r->model, NULL, &err)) {
            free(lp);
            return repl_fail(r, "update: %s", err.msg);
        }
        g->have_tr = 1;
    }
    g->tr.o.sched.lr_max = g->tr.o.sched.lr_min = (float)lr;
    g->tr.o.be = r->backend;
    StepReport rep;
    if (trainer_step(&g->tr, &x->batch, &rep, &err)) {
        free(lp);
        return repl_fail(r, "update: %s", err.msg);
    }
    if (rep.skipped) {
        free(lp);
        return repl_fail(r, "update: a non-finite loss (%g) or gradient norm (%g): the update was skipped, the model is "
                            "unchanged", rep.loss.main, rep.norm);
    }
    g->updates++;
    g->model_updates++;
    /* the updated policy over the same rows */
    x->kv.len = 0;
    if (model_forward_on(r->backend, &r->model, &x->s, &x->kv, x->ids, G, T, ATTN_NAIVE, NULL, NULL, x->logits, &err)) {
        free(lp);
        return repl_fail(r, "update: the model was updated, but its forward failed: %s", err.msg);
    }
    target_logprobs(lp, x->logits, x->targets, G * T, V);
    free(g->lp);
    g->lp = lp;

    const PolicyStats *ps = &g->tr.tb.policy;
    repl_say(r, "update %d on the group of task %lld (%s): lr %g, beta %g, clip %g, AdamW (0.9, 0.99), gradient norm "
                "%.4g%s\n", g->updates, g->index, g->task.question, lr, GRPO_BETA, GRPO_CLIP, rep.norm,
             rep.norm > 1.0 ? " (clipped to 1)" : "");
    repl_say(r, "loss %.6f; at the policy before this update: mean ratio %.4f, clipped %.1f%% of tokens, KL %.3g\n",
             zero(rep.loss.main, 5e-7), ps->ratio, 100.0 * ps->clip_frac, zero(ps->kl, 5e-10));
    repl_say(r, "   #  advantage  logp old   logp new    change  mean ratio  moved\n");
    int moved = 0, nonzero = 0, up = 0, down = 0;
    long long ntok = 0, nclip = 0, nout = 0;
    double rsum = 0;
    for (int i = 0; i < G; i++) {
        double a, b, q;
        row_sums(x, lp, i, &a, &b, &q);
        const float A = x->row_adv[i];
        const double d = a - b;
        const char *how = "-";
        if (A != 0) {
            nonzero++;
            int ok = (A > 0 && d > 0) || (A < 0 && d < 0);
            moved += ok;
            up += A > 0;
            down += A < 0;
            how = ok ? (A > 0 ? "up, as A > 0 asks" : "down, as A < 0 asks") : (d > 0 ? "up, against A < 0" : "down, against A > 0");
        }
        repl_say(r, "  %2d  %+9.3f  %9.3f  %9.3f  %+8.4f  %10.4f  %s\n", i, A, b, a, zero(d, 5e-5), q, how);
        for (int j = 0; j < x->len[i]; j++) {
            const size_t t = target_at(x, i, j);
            const double rho = exp((double)lp[t] - x->old_lp[t]);
            rsum += rho;
            nout += fabs(rho - 1.0) > GRPO_CLIP;
            nclip += clipped(rho, A);
            ntok++;
        }
    }
    if (nonzero)
        repl_say(r, "moved in the direction of their advantage: %d of the %d completions with A != 0 (%d to rise, %d to "
                    "fall)\n", moved, nonzero, up, down);
    else
        repl_say(r, "every advantage is 0: no completion was pushed either way; what moved came from the KL term and "
                    "from AdamW, whose step m/(sqrt(v) + eps) is up to lr per weight however small the gradient\n");
    repl_say(r, "after the update: mean ratio pi/pi_old %.4f over %lld tokens; %.1f%% outside [%g, %g], %.1f%% where the "
                "clip would cut the next update\n", ntok ? rsum / ntok : 1.0, ntok, ntok ? 100.0 * nout / ntok : 0.0,
             1 - GRPO_CLIP, 1 + GRPO_CLIP, ntok ? 100.0 * nclip / ntok : 0.0);
    repl_say(r, "the loaded model changed (%d update%s since load); 'load' restores it\n", g->model_updates,
             g->model_updates == 1 ? "" : "s");
    if (repl_rerun(r)) return -1;
    return 0;
}

/* ---- tokens K ---- */

int repl_cmd_tokens(Repl *r, int argc, char **argv, const char *rest) {
    if (!r->loaded) return repl_fail(r, "tokens: no model loaded (load DIR first)");
    if (need_group(r, "tokens")) return -1;
    ReplGrpo *g = r->grpo;
    const RlStep *x = g->x;
    long long K;
    if (repl_arg_int(r, argv[1], 0, x->B, "completion", "tokens K", &K)) return -1;
    const int k = (int)K, n = x->len[k];
    const float A = x->row_adv[k];
    float amax = 0;
    for (int i = 0; i < x->B; i++) amax = fmaxf(amax, fabsf(x->row_adv[i]));
    char title[PLOT_TITLE_LEN];
    snprintf(title, sizeof title, "task %lld, completion %d (advantage %+.3f), after %d update%s", g->index, k, A,
             g->updates, g->updates == 1 ? "" : "s");
    repl_new_picture(r, title, 3);
    SeekErr err;
    Panel *pr = picture_add(&r->pic, PANEL_HEATMAP, n, 1, "ratio - 1", &err);
    Panel *pk = pr ? picture_add(&r->pic, PANEL_HEATMAP, n, 1, "KL k3 vs pi_ref", &err) : NULL;
    Panel *pa = pk ? picture_add(&r->pic, PANEL_HEATMAP, n, 1, "advantage", &err) : NULL;
    if (pa) {
        pr = &r->pic.panels[0]; /* the panel array may have moved */
        pk = &r->pic.panels[1];
    }
    if (!pa || panel_want_labels(pr, 1, 0, &err) || panel_want_labels(pk, 1, 0, &err) ||
        panel_want_labels(pa, 1, 0, &err) || panel_want_marks(pr, &err))
        return repl_fail(r, "tokens: %s", err.msg);
    repl_say(r, "%s\n", title);
    repl_say(r, "ratio pi/pi_old against the policy that sampled the group; KL = pi_ref/pi - log(pi_ref/pi) - 1 "
                "against the model as loaded\n");
    repl_say(r, "   j  token             logp    ratio  ratio-1   KL (k3)  advantage\n");
    double rmax = 0, kmax = 0, rsum = 0, ksum = 0;
    int nclip = 0;
    for (int j = 0; j < n; j++) {
        const size_t t = target_at(x, k, j);
        const double lp = g->lp[t], rho = exp(lp - x->old_lp[t]), d = x->ref_lp[t] - lp;
        const double kl = exp(d) - d - 1.0;
        const int cut = clipped(rho, A);
        char tok[16], lab[34];
        token_text(r, completion(x, k)[j], tok, sizeof tok);
        repl_say(r, "  %2d  %-14s %8.4f  %7.4f  %+7.4f  %8.5f  %+9.3f%s\n", j, tok, zero(lp, 5e-5), rho, zero(rho - 1.0, 5e-5), zero(kl, 5e-6), A,
                 cut ? "  clipped" : "");
        snprintf(lab, sizeof lab, "%d %s", j, tok);
        snprintf(pr->row_labels[j], PLOT_LABEL_LEN, "%s%s", cut ? "clip " : "", lab);
        snprintf(pk->row_labels[j], PLOT_LABEL_LEN, "%s", lab);
        snprintf(pa->row_labels[j], PLOT_LABEL_LEN, "%s", lab);
        pr->v[j] = (float)(rho - 1.0);
        pr->mark[j] = (unsigned char)cut;
        pk->v[j] = (float)kl;
        pa->v[j] = A;
        rmax = fmax(rmax, fabs(rho - 1.0));
        kmax = fmax(kmax, kl);
        rsum += rho;
        ksum += kl;
        nclip += cut;
    }
    repl_say(r, "%d tokens: mean ratio %.4f (max |ratio - 1| %.4f), mean KL %.5f, %d clipped (the clip range is [%g, %g])\n",
             n, n ? rsum / n : 1.0, rmax, n ? ksum / n : 0.0, nclip, 1 - GRPO_CLIP, 1 + GRPO_CLIP);
    /* diverging maps, symmetric about 0, for the signed quantities; empty ranges kept visible */
    pr->cmap = CMAP_RDBU_ID;
    pr->hi = (float)fmax(rmax, 1e-3);
    pr->lo = -pr->hi;
    pk->cmap = r->cmap;
    pk->lo = 0.0f;
    pk->hi = (float)fmax(kmax, 1e-6);
    pa->cmap = CMAP_RDBU_ID;
    pa->hi = amax > 0 ? amax : 1.0f;
    pa->lo = -pa->hi;
    snprintf(pr->xlabel, sizeof pr->xlabel, "boxed: clipped");
    r->have_pic = 1; /* the table is the terminal view; `png` draws the heatmap */
    return 0;
}
