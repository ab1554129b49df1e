/* solve.c: test-time compute — the majority vote, the thinking budget and s1's budget forcing, and
 * one problem's greedy and sampled completions (solve.h). Library tier. */
#include "solve.h"

#include <stdlib.h>
#include <string.h>

#include "rl.h"

/* ---- the vote ---- */

int solve_vote(const TaskReward *r, int n, int64_t *value) {
    int best = 0;   /* votes of the winner so far; the winner is the first value to reach them */
    *value = 0;
    for (int i = 0; i < n; i++) {
        if (r[i].kind != TASK_ANSWER_INT) continue;
        int seen = 0, votes = 0;   /* a value is counted at its first vote only */
        for (int j = 0; j < n && !seen; j++) {
            if (r[j].kind != TASK_ANSWER_INT || r[j].value != r[i].value) continue;
            if (j < i) seen = 1;
            else votes++;
        }
        if (!seen && votes > best) {   /* strictly more: a tie keeps the earlier first vote */
            best = votes;
            *value = r[i].value;
        }
    }
    return best;
}

double solve_maj_at_k(const TaskReward *r, int n, int k, int64_t answer) {
    if (k < 1 || k > n) return 0.0;
    int blocks = n / k, right = 0;
    for (int j = 0; j < blocks; j++) {
        int64_t v;
        right += solve_vote(r + (size_t)j * k, k, &v) > 0 && v == answer;
    }
    return (double)right / blocks;
}

int solve_ks(int n, int ks[SOLVE_MAX_KS]) {
    int nk = 0;
    for (int k = 1; k <= n && nk < SOLVE_MAX_KS - 1; k *= 2) ks[nk++] = k;
    if (ks[nk - 1] != n) ks[nk++] = n;
    return nk;
}

/* ---- the thinking budget ---- */

static int is_ws(unsigned char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

/* text's tokens under tok into ids[THINK_FORCED_MAX] */
static int forced_ids(Tokenizer *tok, const char *text, int *ids, int *n, SeekErr *err) {
    TokIds t = {0};
    if (tokenizer_encode(tok, text, strlen(text), false, &t, err)) return -1;
    if (t.n < 1 || t.n > THINK_FORCED_MAX) {
        free(t.ids);
        return seek_fail(err, "thinking budget: \"%s\" is %zu tokens (expected 1..%d)", text, t.n, THINK_FORCED_MAX);
    }
    for (size_t i = 0; i < t.n; i++) ids[i] = t.ids[i];
    *n = (int)t.n;
    free(t.ids);
    return 0;
}

int think_budget_init(ThinkBudget *b, Tokenizer *tok, int budget, int force, int eos, int V, SeekErr *err) {
    memset(b, 0, sizeof *b);
    if (budget < 0 || force < 0 || (force > 0 && budget == 0))
        return seek_fail(err, "thinking budget %d, force %d (expected budget >= 1, or 0 with force 0)", budget, force);
    b->budget = budget;
    b->force = force;
    b->eos = eos;
    b->V = V;
    b->close_id = -1;
    if (forced_ids(tok, THINK_CLOSE, b->close[0], &b->n_close[0], err)) return -1;
    if (b->n_close[0] == 1) b->close_id = b->close[0][0];
    else if (budget > 0)   /* without a budget only the thinking tokens' count needs it: none counted as closed */
        return seek_fail(err, "thinking budget: the tokenizer has no single token for " THINK_CLOSE " (%d tokens)",
                         b->n_close[0]);
    if (budget > 0) {
        if (forced_ids(tok, " " THINK_CLOSE, b->close[1], &b->n_close[1], err) ||
            forced_ids(tok, THINK_WAIT, b->wait[0], &b->n_wait[0], err) ||
            forced_ids(tok, " " THINK_WAIT, b->wait[1], &b->n_wait[1], err))
            return -1;
        if (b->close[1][b->n_close[1] - 1] != b->close_id)
            return seek_fail(err, "thinking budget: \" " THINK_CLOSE "\" does not end with the token " THINK_CLOSE);
    }
    b->ws_end = calloc((size_t)(V > 0 ? V : 1), 1);
    if (!b->ws_end) return seek_fail(err, "thinking budget: out of memory");
    const int32_t nid = tokenizer_n_ids(tok);
    for (int id = 0; id < V && id < nid; id++) {
        size_t len = 0;
        const uint8_t *bytes = tokenizer_token_bytes(tok, id, &len);
        b->ws_end[id] = bytes && len > 0 && is_ws(bytes[len - 1]);
    }
    return 0;
}

void think_budget_free(ThinkBudget *b) {
    free(b->ws_end);
    memset(b, 0, sizeof *b);
}

static int ends_ws(const ThinkBudget *b, int id) { return id >= 0 && id < b->V && b->ws_end[id]; }

void think_row_init(ThinkRow *r, const ThinkBudget *b, int last) {
    memset(r, 0, sizeof *r);
    r->phase = THINK_OPEN;
    r->last_ws = ends_ws(b, last);
}

static void enqueue(ThinkRow *r, const int *ids, int n) {
    memcpy(r->q, ids, (size_t)n * sizeof(int));
    r->nq = n;
    r->iq = 0;
}

int think_step(ThinkRow *r, const ThinkBudget *b, int sampled, int *forced) {
    *forced = 0;
    if (r->phase == THINK_ENDED) return sampled;
    int tok = sampled, budget_close = 0;
    if (r->iq < r->nq) {   /* a forced string being fed */
        tok = r->q[r->iq++];
        *forced = 1;
        budget_close = r->capped;
    } else if (r->phase == THINK_OPEN && b->budget > 0) {
        const int sp = !r->last_ws;   /* [1]: the string with a space before it */
        if (sampled == b->close_id) {
            if (r->waits < b->force && r->think + b->n_wait[sp] < b->budget) {   /* s1: "Wait" for the close */
                enqueue(r, b->wait[sp], b->n_wait[sp]);
                r->waits++;
                tok = r->q[r->iq++];
                *forced = 1;
            }
        } else if (sampled != b->eos && r->think >= b->budget) {   /* the budget is spent: close */
            enqueue(r, b->close[sp], b->n_close[sp]);
            r->capped = 1;
            tok = r->q[r->iq++];
            *forced = 1;
            budget_close = 1;
        }
    }
    /* the fed token's effect */
    if (tok == b->eos) r->phase = THINK_ENDED;
    else if (r->phase == THINK_OPEN) {
        if (tok == b->close_id) r->phase = THINK_CLOSED;
        else if (!budget_close) r->think++;
    }
    r->last_ws = ends_ws(b, tok);
    return tok;
}

int think_generate_on(Backend be, const Model *m, const int *ids, int B, int T, int n, const SampleParams *sp,
                      const ThinkBudget *b, int *out, unsigned char *forced, ThinkRow *rows, SeekErr *err) {
    const Config *c = &m->cfg;
    if (n < 1) return seek_fail(err, "generate: -n must be at least 1");
    if (B < 1 || T < 1) return seek_fail(err, "generate: %d prompts of %d tokens", B, T);
    if ((long long)T + n > c->max_pos)
        return seek_fail(err, "generate: prompt %d + %d new tokens exceeds max_position_embeddings %d", T, n, c->max_pos);
    const int Tmax = T + n;
    KVCache kv;
    RunState s;
    if (kvcache_init(&kv, c, B, Tmax, err)) return -1;
    if (runstate_init(&s, c, B, T, Tmax, 0, err)) {
        kvcache_free(&kv);
        return -1;
    }
    float *logits = malloc((size_t)B * T * c->V * sizeof(float));
    float *probs = malloc((size_t)c->V * sizeof(float));
    int *order = malloc((size_t)c->V * sizeof(int));
    int *step_ids = malloc((size_t)B * sizeof(int));
    ThinkRow *st = malloc((size_t)B * sizeof(ThinkRow));
    int rc = 0;
    if (!logits || !probs || !order || !step_ids || !st) rc = seek_fail(err, "generate: out of memory");
    for (int r = 0; !rc && r < B; r++) think_row_init(&st[r], b, ids[(size_t)r * T + T - 1]);
    if (forced) memset(forced, 0, (size_t)B * n);
    Rng rng;
    rng_seed(&rng, sp->seed);
    if (!rc) rc = model_forward_on(be, m, &s, &kv, ids, B, T, ATTN_NAIVE, NULL, NULL, logits, err);
    for (int step = 0; !rc && step < n; step++) {
        const int Tl = step == 0 ? T : 1;   /* rows per sequence in the last call */
        int all_done = 1;
        for (int r = 0; r < B; r++) {
            const float *row = logits + ((size_t)r * Tl + Tl - 1) * c->V;
            int f, tok = think_step(&st[r], b, sample_token(row, c->V, sp, &rng, probs, order), &f);
            out[(size_t)r * n + step] = tok;
            if (forced) forced[(size_t)r * n + step] = (unsigned char)f;
            step_ids[r] = tok;
            all_done &= st[r].phase == THINK_ENDED;
        }
        if (all_done) {   /* every row has ended: the rest is EOS */
            for (int r = 0; r < B; r++)
                for (int t = step + 1; t < n; t++) out[(size_t)r * n + t] = b->eos;
            break;
        }
        if (step + 1 < n) rc = model_forward_on(be, m, &s, &kv, step_ids, B, 1, ATTN_NAIVE, NULL, NULL, logits, err);
    }
    if (!rc && rows) memcpy(rows, st, (size_t)B * sizeof(ThinkRow));
    free(st);
    free(logits);
    free(probs);
    free(order);
    free(step_ids);
    runstate_free(&s);
    kvcache_free(&kv);
    return rc;
}

/* ---- one problem ---- */

void solver_free(Solver *s) {
    free(s->prompt);
    free(s->out);
    free(s->forced);
    free(s->rows);
    free(s->rewards);
    memset(s, 0, sizeof *s);
}

int solver_init(Solver *s, const SolveOpts *o, const Config *c, Tokenizer *tok, SeekErr *err) {
    memset(s, 0, sizeof *s);
    s->o = *o;
    if (o->problems < 1 || o->samples < 1 || o->samples > 1024 || o->max_new < 1)
        return seek_fail(err, "solve: %d problems, %d samples, max_new %d (expected >= 1, 1..1024, >= 1)", o->problems,
                         o->samples, o->max_new);
    if (rl_prompt_bound(tok, &o->task, &s->Pmax, err)) return -1;
    if ((long long)s->Pmax + o->max_new > c->max_pos)
        return seek_fail(err, "solve: prompts of up to %d tokens + max_new %d exceed max_position_embeddings %d", s->Pmax,
                         o->max_new, c->max_pos);
    const size_t rows = (size_t)o->samples + 1;
    s->prompt = malloc((size_t)o->samples * s->Pmax * sizeof(int));
    s->out = malloc(rows * o->max_new * sizeof(int));
    s->forced = malloc(rows * o->max_new);
    s->rows = malloc(rows * sizeof(ThinkRow));
    s->rewards = malloc((size_t)o->samples * sizeof(TaskReward));
    if (!s->prompt || !s->out || !s->forced || !s->rows || !s->rewards) {
        solver_free(s);
        return seek_fail(err, "solve: out of memory");
    }
    return 0;
}

/* the completion's length: up to and including the first EOS, or all n */
static int completion_len(const int *t, int n, int eos) {
    for (int i = 0; i < n; i++)
        if (t[i] == eos) return i + 1;
    return n;
}

/* the rewards of a completion: the text of its tokens before EOS, scored as rl.c scores it */
static int score(const Tokenizer *tok, const int *c, int len, int eos, int64_t answer, TaskReward *r, SeekErr *err) {
    const int n = len > 0 && c[len - 1] == eos ? len - 1 : len;
    TokBytes text = {0};
    if (tokenizer_decode(tok, c, (size_t)n, &text, err)) return -1;
    *r = task_check((const char *)text.data, text.n, answer, NULL);
    free(text.data);
    return 0;
}

int solve_problem(Solver *s, Backend be, const Model *m, Tokenizer *tok, const ThinkBudget *b, int i, SolveProblem *p,
                  SeekErr *err) {
    const SolveOpts *o = &s->o;
    const int S = o->samples, n = o->max_new, eos = m->cfg.eos_id;
    const int add_bos = tokenizer_add_bos(tok) && tokenizer_bos_id(tok) >= 0;
    memset(p, 0, sizeof *p);
    if (task_make(&p->task, &o->task, o->seed, o->split, (uint64_t)i, err)) return -1;
    TokIds pid = {0};
    if (tokenizer_encode(tok, p->task.prompt, (size_t)p->task.prompt_len, add_bos, &pid, err)) return -1;
    const int P = (int)pid.n;
    if (P < 1 || P > s->Pmax) {
        free(pid.ids);
        return seek_fail(err, "solve: a prompt of %d tokens (bound %d)", P, s->Pmax);
    }
    for (int g = 0; g < S; g++) memcpy(s->prompt + (size_t)g * P, pid.ids, (size_t)P * sizeof(int));
    /* the greedy row alone, then the samples in one batch: rl_eval's calls, so its numbers */
    const SampleParams greedy = {0, 0, 1.0f, 0};
    const SampleParams sp = {o->temperature, 0, o->top_p, rl_eval_seed(o->seed, (uint64_t)i)};
    int *gout = s->out + (size_t)S * n;
    int rc = think_generate_on(be, m, pid.ids, 1, P, n, &greedy, b, gout, s->forced + (size_t)S * n, s->rows + S, err);
    free(pid.ids);
    if (!rc) rc = think_generate_on(be, m, s->prompt, S, P, n, &sp, b, s->out, s->forced, s->rows, err);
    if (rc) return seek_fail_prefix(err, "solve: problem %d", i);
    const int64_t answer = p->task.answer;
    p->greedy_tokens = completion_len(gout, n, eos);
    if (score(tok, gout, p->greedy_tokens, eos, answer, &p->greedy, err)) return -1;
    p->greedy_think = s->rows[S].think;
    p->greedy_waits = s->rows[S].waits;
    p->greedy_capped = s->rows[S].capped;
    for (int g = 0; g < S; g++) {
        const int *cg = s->out + (size_t)g * n;
        const int len = completion_len(cg, n, eos);
        TaskReward *r = &s->rewards[g];
        if (score(tok, cg, len, eos, answer, r, err)) return -1;
        p->correct += r->accuracy;
        p->formatted += r->format;
        p->abstained += r->kind != TASK_ANSWER_INT;
        p->tokens += len;
        p->think += s->rows[g].think;
        p->waits += s->rows[g].waits;
        p->capped += s->rows[g].capped;
    }
    p->votes = solve_vote(s->rewards, S, &p->vote);
    p->maj_correct = p->votes > 0 && p->vote == answer;
    p->nk = solve_ks(S, p->ks);
    for (int j = 0; j < p->nk; j++) {
        p->maj_k[j] = solve_maj_at_k(s->rewards, S, p->ks[j], answer);
        p->pass_k[j] = rl_pass_at_k(S, p->correct, p->ks[j]);
    }
    return 0;
}

void solve_show(FILE *f, const Solver *s, const Tokenizer *tok, int row, int eos) {
    const int n = s->o.max_new;
    const int *c = s->out + (size_t)row * n;
    const unsigned char *fz = s->forced + (size_t)row * n;
    const int len = completion_len(c, n, eos), end = len > 0 && c[len - 1] == eos ? len - 1 : len;
    int in_forced = 0;
    for (int t = 0; t < end; t++) {
        if (fz[t] != in_forced) fputc(fz[t] ? '[' : ']', f);
        in_forced = fz[t];
        TokBytes text = {0};
        SeekErr e;
        if (tokenizer_decode(tok, &c[t], 1, &text, &e)) {
            fprintf(f, "<id %d>", c[t]);
            continue;
        }
        for (size_t i = 0; i < text.n; i++) {
            unsigned char ch = text.data[i];
            if (ch >= 0x20 && ch < 0x7f) fputc(ch, f);
            else fprintf(f, "\\x%02x", ch);
        }
        free(text.data);
    }
    if (in_forced) fputc(']', f);
    fputc('\n', f);
}

/* ---- totals ---- */

void solve_totals_init(SolveTotals *t, int samples) {
    memset(t, 0, sizeof *t);
    t->samples = samples;
    t->nk = solve_ks(samples, t->ks);
}

void solve_totals_add(SolveTotals *t, const SolveProblem *p) {
    t->problems++;
    t->greedy += p->greedy.accuracy;
    t->greedy_format += p->greedy.format;
    t->pass1 += (double)p->correct / t->samples;
    t->maj += p->maj_correct;
    t->passn += p->correct > 0;
    for (int j = 0; j < t->nk; j++) {
        t->maj_k[j] += p->maj_k[j];
        t->pass_k[j] += p->pass_k[j];
    }
    t->format += p->formatted;
    t->abstain += p->abstained;
    t->tokens += p->tokens;
    t->greedy_tokens += p->greedy_tokens;
    t->think += p->think;
    t->greedy_think += p->greedy_think;
    t->waits += p->waits;
    t->capped += p->capped;
}

void solve_totals_finish(SolveTotals *t) {
    if (t->problems < 1) return;
    const double P = t->problems, PS = P * t->samples;
    t->greedy /= P;
    t->greedy_format /= P;
    t->pass1 /= P;
    t->maj /= P;
    t->passn /= P;
    for (int j = 0; j < t->nk; j++) {
        t->maj_k[j] /= P;
        t->pass_k[j] /= P;
    }
    t->format /= PS;
    t->abstain /= PS;
    t->think /= PS;
    t->greedy_think /= P;
    t->waits /= PS;
    t->capped /= PS;
}
