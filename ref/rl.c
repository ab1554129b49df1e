/* rl.c: one GRPO step's rollouts and the held-out evaluation (rl.h). Library tier. */
#include "rl.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "grpo.h"
#include "pairs.h"

/* a splitmix64 step (mix64 of x plus the golden increment): independent seeds from (seed, step, task) */
static uint64_t seed_mix(uint64_t x) { return mix64(x + 0x9E3779B97F4A7C15ull); }

void rl_step_free(RlStep *x) {
    free(x->ids);
    free(x->targets);
    free(x->weights);
    free(x->adv);
    free(x->ref_lp);
    free(x->old_lp);
    free(x->logits);
    free(x->prompt);
    free(x->out);
    free(x->len);
    free(x->acc);
    free(x->fmt);
    free(x->reward);
    free(x->row_adv);
    free(x->prompt_len);
    if (x->s.B) runstate_free(&x->s);
    if (x->kv.B) kvcache_free(&x->kv);
    memset(x, 0, sizeof *x);
}

int rl_prompt_bound(Tokenizer *tok, const TaskOpts *o, int *bound, SeekErr *err) {
    if (task_opts_check(o, err)) return -1;
    const char *fmt = TASK_PROMPT_FORMAT, *q = strstr(fmt, "%s");
    TokIds pre = {0}, post = {0};
    if (tokenizer_encode(tok, fmt, (size_t)(q - fmt), 0, &pre, err) ||
        tokenizer_encode(tok, q + 2, strlen(q + 2), 0, &post, err)) {
        free(pre.ids);
        return -1;
    }
    const int bytes = task_prompt_max_len(o) + 1, question = 2 * o->max_digits + 3;
    const int b = 1 + (int)pre.n + (int)post.n + question + 2;
    free(pre.ids);
    free(post.ids);
    *bound = b < bytes ? b : bytes;
    return 0;
}

int rl_step_init(RlStep *x, const RlOpts *o, const Config *c, Tokenizer *tok, SeekErr *err) {
    memset(x, 0, sizeof *x);
    x->o = *o;
    if (o->prompts < 1 || o->G < 2 || o->max_new < 1)
        return seek_fail(err, "rl: prompts %d, group %d, max_new %d (expected >= 1, >= 2, >= 1)", o->prompts, o->G, o->max_new);
    if (rl_prompt_bound(tok, &o->task, &x->Pmax, err)) return -1;
    x->B = o->prompts * o->G;
    x->T = x->Pmax + o->max_new;
    if (x->T > c->max_pos)
        return seek_fail(err, "rl: prompts of up to %d tokens + max_new %d exceed max_position_embeddings %d", x->Pmax,
                         o->max_new, c->max_pos);
    const size_t N = (size_t)x->B * x->T;
    x->ids = malloc(N * sizeof(int));
    x->targets = malloc(N * sizeof(int));
    x->weights = malloc(N * sizeof(float));
    x->adv = malloc(N * sizeof(float));
    x->ref_lp = malloc(N * sizeof(float));
    x->old_lp = malloc(N * sizeof(float));
    x->logits = malloc(N * (size_t)c->V * sizeof(float));
    x->prompt = malloc((size_t)o->G * x->Pmax * sizeof(int));
    x->out = malloc((size_t)o->G * o->max_new * sizeof(int));
    x->len = malloc((size_t)x->B * sizeof(int));
    x->acc = malloc((size_t)x->B * sizeof(int));
    x->fmt = malloc((size_t)x->B * sizeof(int));
    x->reward = malloc((size_t)x->B * sizeof(double));
    x->row_adv = malloc((size_t)x->B * sizeof(float));
    x->prompt_len = malloc((size_t)o->prompts * sizeof(int));
    if (!x->ids || !x->targets || !x->weights || !x->adv || !x->ref_lp || !x->old_lp || !x->logits || !x->prompt || !x->out ||
        !x->len || !x->acc || !x->fmt || !x->reward || !x->row_adv || !x->prompt_len) {
        rl_step_free(x);
        return seek_fail(err, "rl: out of memory");
    }
    if (runstate_init(&x->s, c, x->B, x->T, x->T, 0, err) || kvcache_init(&x->kv, c, x->B, x->T, err)) {
        rl_step_free(x);
        return -1;
    }
    return 0;
}

/* the completion's length: up to and including the first EOS, or all n */
static int completion_len(const int *tok, int n, int eos) {
    for (int i = 0; i < n; i++)
        if (tok[i] == eos) return i + 1;
    return n;
}

/* a completion's text (its tokens before EOS; the caller frees text->data) and its rewards for t */
static int score(const Tokenizer *tok, const int *c, int len, int eos, const Task *t, TokBytes *text, TaskReward *r,
                 SeekErr *err) {
    int n = len > 0 && c[len - 1] == eos ? len - 1 : len;
    memset(text, 0, sizeof *text);
    if (tokenizer_decode(tok, c, (size_t)n, text, err)) return -1;
    *r = task_check((const char *)text->data, text->n, t->answer, NULL);
    return 0;
}

/* a completion for a reader: its text before EOS, its rewards; bytes outside printable ASCII as \xHH
 * except newline */
static void show_completion(FILE *f, const char *what, const Tokenizer *tok, const int *c, int len, int eos,
                            const Task *t) {
    TokBytes text;
    TaskReward r;
    SeekErr e;
    if (score(tok, c, len, eos, t, &text, &r, &e)) return;
    const int with_eos = len > 0 && c[len - 1] == eos;
    fprintf(f, "  %-7s (%d tokens%s, format %d, accuracy %d): ", what, len, with_eos ? " with EOS" : ", no EOS", r.format,
            r.accuracy);
    for (size_t i = 0; i < text.n; i++) {
        unsigned char ch = text.data[i];
        if ((ch >= 0x20 && ch < 0x7f) || ch == '\n') fputc(ch, f);
        else fprintf(f, "\\x%02x", ch);
    }
    fputc('\n', f);
    free(text.data);
}

/* the reward of a completion (the text before its EOS) for task t */
static int reward(const Tokenizer *tok, const int *c, int len, int eos, const Task *t, const RlOpts *o, double *r,
                  int *acc, int *fmt, SeekErr *err) {
    TokBytes text;
    TaskReward tr;
    if (score(tok, c, len, eos, t, &text, &tr, err)) return -1;
    free(text.data);
    *acc = tr.accuracy;
    *fmt = tr.format;
    *r = o->w_acc * tr.accuracy + o->w_fmt * tr.format;
    return 0;
}

int rl_rollouts(RlStep *x, Backend be, const Model *policy, const Model *ref, Tokenizer *tok, uint64_t step,
                SeekErr *err) {
    const RlOpts *o = &x->o;
    const Config *c = &policy->cfg;
    const int G = o->G, T = x->T, eos = c->eos_id;
    const int add_bos = tokenizer_add_bos(tok) && tokenizer_bos_id(tok) >= 0;
    memset(&x->st, 0, sizeof x->st);
    long long count = 0;
    for (int k = 0; k < o->prompts; k++) {
        Task task;
        if (task_make(&task, &o->task, o->seed, TASK_TRAIN, step * (uint64_t)o->prompts + (uint64_t)k, err)) return -1;
        TokIds pid = {0};
        if (tokenizer_encode(tok, task.prompt, (size_t)task.prompt_len, add_bos, &pid, err)) return -1;
        const int P = (int)pid.n;
        x->prompt_len[k] = P;
        if (P > x->Pmax || P < 1) {
            free(pid.ids);
            return seek_fail(err, "rl: a prompt of %d tokens (bound %d)", P, x->Pmax);
        }
        for (int g = 0; g < G; g++) memcpy(x->prompt + (size_t)g * P, pid.ids, (size_t)P * sizeof(int));
        free(pid.ids);
        /* G samples of the current policy, each its own stream of the step's seed */
        SampleParams sp = {o->temperature, 0, o->top_p, seed_mix(o->seed ^ seed_mix(step * 65537 + (uint64_t)k))};
        if (model_generate_stop_on(be, policy, x->prompt, G, P, o->max_new, ATTN_NAIVE, &sp, eos, x->out, err))
            return seek_fail_prefix(err, "rl: sampling");
        int distinct = 0;
        for (int g = 0; g < G; g++) {
            const int *cg = x->out + (size_t)g * o->max_new;
            const int len = completion_len(cg, o->max_new, eos), row = k * G + g;
            if (reward(tok, cg, len, eos, &task, o, &x->reward[row], &x->acc[row], &x->fmt[row], err)) return -1;
            x->st.accuracy += x->acc[row];
            x->st.format += x->fmt[row];
            x->st.reward += x->reward[row];
            x->st.length += len;
            distinct |= x->reward[row] != x->reward[k * G];
            x->len[row] = len;
            count += len;
            int *ids = x->ids + (size_t)row * T;
            memcpy(ids, x->prompt + (size_t)g * P, (size_t)P * sizeof(int));
            memcpy(ids + P, cg, (size_t)len * sizeof(int));
            for (int t = P + len; t < T; t++) ids[t] = eos >= 0 ? eos : 0;
            sft_targets_row(x->targets + (size_t)row * T, ids, P, P + len, T);
        }
        x->st.groups_all_equal += !distinct;
        grpo_advantages(x->row_adv + (size_t)k * G, x->reward + (size_t)k * G, G, o->scale_rewards);
        for (int g = 0; g < G; g++)
            for (int t = 0; t < T; t++) x->adv[(size_t)(k * G + g) * T + t] = x->row_adv[k * G + g];
    }
    /* weights: the loss is the mean over completions of each one's mean over its tokens */
    const double n_comp = (double)x->B;
    for (int row = 0; row < x->B; row++) {
        const float w = (float)((double)count / (n_comp * (o->length_norm ? x->len[row] : o->max_new)));
        for (int t = 0; t < T; t++) x->weights[(size_t)row * T + t] = w;
    }
    x->st.reward /= n_comp;
    x->st.accuracy /= n_comp;
    x->st.format /= n_comp;
    x->st.length /= n_comp;
    /* π_ref: the frozen reference's log-probabilities of the same targets */
    const float *ref_lp = NULL;
    if (ref && o->beta > 0) {
        x->kv.len = 0;
        if (model_forward_on(be, ref, &x->s, &x->kv, x->ids, x->B, T, ATTN_NAIVE, NULL, NULL, x->logits, err))
            return seek_fail_prefix(err, "rl: reference");
        target_logprobs(x->ref_lp, x->logits, x->targets, x->B * T, c->V);
        ref_lp = x->ref_lp;
    }
    x->pt = (PolicyTerms){x->adv, NULL, ref_lp, o->clip, o->beta};
    x->batch = (TrainBatch){x->ids, x->targets, x->weights, &x->pt};
    return 0;
}

int rl_old_logprobs(RlStep *x, Backend be, const Model *policy, SeekErr *err) {
    x->kv.len = 0;
    if (model_forward_on(be, policy, &x->s, &x->kv, x->ids, x->B, x->T, ATTN_NAIVE, NULL, NULL, x->logits, err))
        return seek_fail_prefix(err, "rl: pi_old");
    target_logprobs(x->old_lp, x->logits, x->targets, x->B * x->T, policy->cfg.V);
    x->pt.old_logprobs = x->old_lp;
    return 0;
}

double rl_pass_at_k(int s, int c, int k) {
    if (s - c < k) return 1.0;
    double miss = 1.0;   /* C(s−c, k)/C(s, k) = Π_{j=s−c+1}^{s} (1 − k/j) */
    for (int j = s - c + 1; j <= s; j++) miss *= 1.0 - (double)k / j;
    return 1.0 - miss;
}

uint64_t rl_eval_seed(uint64_t seed, uint64_t i) { return seed_mix(seed ^ seed_mix(0x6576616cull + i)); }

int rl_eval(Backend be, const Model *m, Tokenizer *tok, const RlOpts *o, const RlEvalOpts *e, RlEval *out,
            SeekErr *err) {
    memset(out, 0, sizeof *out);
    if (e->n < 1 || e->samples < 1 || e->k < 1 || e->k > e->samples)
        return seek_fail(err, "rl eval: %d tasks, %d samples, pass@%d (expected >= 1, >= 1, 1..samples)", e->n,
                         e->samples, e->k);
    const int eos = m->cfg.eos_id, add_bos = tokenizer_add_bos(tok) && tokenizer_bos_id(tok) >= 0, S = e->samples;
    const int rows = S + 1;   /* the samples, then the greedy row */
    int *out_ids = malloc((size_t)rows * o->max_new * sizeof(int));
    int bound;
    if (rl_prompt_bound(tok, &o->task, &bound, err)) return -1;
    int *prompt = malloc((size_t)S * bound * sizeof(int));
    if (!out_ids || !prompt) {
        free(out_ids);
        free(prompt);
        return seek_fail(err, "rl: out of memory");
    }
    int rc = 0;
    long long len_sum = 0, fmt_sum = 0, gacc = 0, gfmt = 0;
    double p1 = 0, pk = 0;
    for (int i = 0; !rc && i < e->n; i++) {
        Task task;
        TokIds pid = {0};
        if ((rc = task_make(&task, &o->task, o->seed, TASK_TEST, (uint64_t)i, err))) break;
        if ((rc = tokenizer_encode(tok, task.prompt, (size_t)task.prompt_len, add_bos, &pid, err))) break;
        const int P = (int)pid.n;
        if (P > bound || P + o->max_new > m->cfg.max_pos)
            rc = seek_fail(err, "rl: a prompt of %d tokens + max_new %d exceed max_position_embeddings %d", P, o->max_new,
                           m->cfg.max_pos);
        for (int g = 0; !rc && g < S; g++) memcpy(prompt + (size_t)g * P, pid.ids, (size_t)P * sizeof(int));
        SampleParams sp = {e->temperature, 0, e->top_p, rl_eval_seed(e->seed, (uint64_t)i)};
        SampleParams greedy = {0, 0, 1.0f, 0};
        if (!rc) rc = model_generate_stop_on(be, m, prompt, S, P, o->max_new, ATTN_NAIVE, &sp, eos, out_ids, err);
        if (!rc)
            rc = model_generate_stop_on(be, m, pid.ids, 1, P, o->max_new, ATTN_NAIVE, &greedy, eos,
                                        out_ids + (size_t)S * o->max_new, err);
        free(pid.ids);
        int correct = 0;
        for (int g = 0; !rc && g < rows; g++) {
            const int *cg = out_ids + (size_t)g * o->max_new;
            int len = completion_len(cg, o->max_new, eos), a, f;
            double r;
            if ((rc = reward(tok, cg, len, eos, &task, o, &r, &a, &f, err))) break;
            if (g == S) {
                gacc += a;
                gfmt += f;
            } else {
                correct += a;
                fmt_sum += f;
                len_sum += len;
            }
        }
        if (rc) break;
        if (i < e->show && e->show_to) {
            fprintf(e->show_to, "test task %d: %s = %lld\n", i, task.question, (long long)task.answer);
            const int *gr = out_ids + (size_t)S * o->max_new, *s0 = out_ids;
            show_completion(e->show_to, "greedy", tok, gr, completion_len(gr, o->max_new, eos), eos, &task);
            show_completion(e->show_to, "sample", tok, s0, completion_len(s0, o->max_new, eos), eos, &task);
        }
        p1 += (double)correct / S;
        pk += rl_pass_at_k(S, correct, e->k);
    }
    free(out_ids);
    free(prompt);
    if (rc) return -1;
    out->pass1 = p1 / e->n;
    out->passk = pk / e->n;
    out->greedy = (double)gacc / e->n;
    out->format = (double)fmt_sum / ((double)e->n * S);
    out->greedy_format = (double)gfmt / e->n;
    out->length = (double)len_sum / ((double)e->n * S);
    return 0;
}
