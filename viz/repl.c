/* repl.c: the REPL's state and commands. See repl.h and docs/repl.md. */
#include "repl.h"

#include <ctype.h>
#include <errno.h>
#include <fnmatch.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "moe.h"
#include "precision.h"
#include "repl_grpo.h"
#include "stagecmp.h"
#include "tolerances.h"
#include "tokenizer.h"

volatile sig_atomic_t repl_interrupt = 0;

/* ---- hook vocabulary (docs/hooks.md reproduces this table; change both together) ---- */

typedef struct {
    const char *name;   /* "L" stands for a layer number */
    const char *shape;
    const char *meaning;
} HookDoc;

static const HookDoc HOOK_DOCS[] = {
    {"hook_embed", "(B, T, C)", "token embeddings"},
    {"blocks.L.hook_resid_pre", "(B, T, C)", "residual stream entering the layer"},
    {"blocks.L.ln1.hook_normalized", "(B, T, C)", "attention input (after input_layernorm)"},
    {"blocks.L.attn.hook_q_latent", "(B, T, dq')", "MLA query latent after q_a_layernorm"},
    {"blocks.L.attn.hook_q", "(B, T, NH, qk)", "queries before RoPE (qk = dn+dr or HS)"},
    {"blocks.L.attn.hook_k", "(B, T, NKV, HS) | (B, Tk, NH, dn+dr)", "keys before RoPE (LLaMA) / expanded keys with the rope key (naive MLA)"},
    {"blocks.L.attn.hook_v", "(B, T, NKV, HS) | (B, Tk, NH, dv)", "values (LLaMA new rows / naive MLA every position)"},
    {"blocks.L.attn.hook_kv_latent", "(B, T, dkv)", "MLA KV latent after kv_a_layernorm (what the cache holds)"},
    {"blocks.L.attn.hook_rot_q", "(B, T, NH, HS) | (B, T, NH, dr)", "rotated queries (MLA: the rope slice)"},
    {"blocks.L.attn.hook_rot_k", "(B, T, NKV, HS) | (B, T, dr)", "rotated keys (MLA: the one shared rope key)"},
    {"blocks.L.attn.hook_attn_scores", "(B, NH, T, Tk)", "scaled scores before softmax, masked -inf"},
    {"blocks.L.attn.hook_pattern", "(B, NH, T, Tk)", "attention probabilities (softmax), masked 0"},
    {"blocks.L.attn.hook_z", "(B, T, NH, dv)", "per-head attention output before W_O"},
    {"blocks.L.hook_attn_out", "(B, T, C)", "attention output after W_O"},
    {"blocks.L.hook_resid_mid", "(B, T, C)", "residual after attention"},
    {"blocks.L.ln2.hook_normalized", "(B, T, C)", "FFN input (after post_attention_layernorm)"},
    {"blocks.L.mlp.hook_router_logits", "(B, T, E)", "router logits x W_gate^T"},
    {"blocks.L.mlp.hook_router_scores", "(B, T, E)", "router affinities: sigmoid (V3) or softmax (V2)"},
    {"blocks.L.mlp.hook_router_choice", "(B, T, E)", "what selection sees: scores + bias (V3), scores (V2)"},
    {"blocks.L.mlp.hook_expert_indices", "(B, T, K)", "chosen experts, largest choice first"},
    {"blocks.L.mlp.hook_expert_weights", "(B, T, K)", "final gate weights (renormalised, scaled)"},
    {"blocks.L.mlp.hook_routed_out", "(B, T, C)", "routed experts' weighted sum"},
    {"blocks.L.mlp.hook_shared_out", "(B, T, C)", "shared experts' output"},
    {"blocks.L.hook_mlp_out", "(B, T, C)", "FFN output (dense SwiGLU or MoE)"},
    {"blocks.L.hook_resid_post", "(B, T, C)", "residual leaving the layer"},
    {"ln_final.hook_normalized", "(B, T, C)", "after the final norm"},
    {"unembed.hook_out", "(B, T, V)", "logits"},
};
#define N_HOOK_DOCS (sizeof HOOK_DOCS / sizeof HOOK_DOCS[0])

const char *hook_doc(const char *name, const char **shape) {
    char gen[HOOK_NAME_LEN];
    /* "blocks.12.attn.hook_z" -> "blocks.L.attn.hook_z" */
    if (!strncmp(name, "blocks.", 7) && isdigit((unsigned char)name[7])) {
        const char *p = name + 7;
        while (isdigit((unsigned char)*p)) p++;
        snprintf(gen, sizeof gen, "blocks.L%s", p);
    } else snprintf(gen, sizeof gen, "%s", name);
    for (size_t i = 0; i < N_HOOK_DOCS; i++)
        if (!strcmp(gen, HOOK_DOCS[i].name)) {
            if (shape) *shape = HOOK_DOCS[i].shape;
            return HOOK_DOCS[i].meaning;
        }
    return NULL;
}

/* ---- output ----
 * say, fail, arg_int, new_picture and show_picture are also the REPL's command files' (repl.h,
 * "internal"), as repl_say, repl_fail, ...; this file calls them by their short names. */

#define say repl_say
#define fail repl_fail
#define arg_int repl_arg_int
#define new_picture repl_new_picture
#define show_picture repl_show_picture

void say(Repl *r, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vfprintf(r->out, fmt, ap);
    va_end(ap);
}

/* One error line, escaped (user input and token bytes never reach the terminal raw). Returns -1. */
int fail(Repl *r, const char *fmt, ...) {
    char msg[1024], esc[1200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    escape_bytes(esc, sizeof esc, msg, strlen(msg), 0);
    fflush(r->out);
    fprintf(r->err, "error: %s\n", esc);
    fflush(r->err);
    r->n_errors++;
    return -1;
}

void repl_error(Repl *r, const char *msg) { fail(r, "%s", msg); }

/* ---- token labels ---- */

/* The token's text, escaped for the terminal (utf8 kept when asked) or for the PNG font. */
static void token_text(const Repl *r, int id, char *out, size_t cap, int keep_utf8) {
    size_t n = 0;
    const uint8_t *b = r->tok ? tokenizer_token_bytes(r->tok, id, &n) : NULL;
    if (b) escape_bytes(out, cap, b, n, keep_utf8);
    else snprintf(out, cap, "#%d", id);
}

/* "pos:text"; the tokenizer's BOS and EOS read <bos> and <eos> (DeepSeek's are long and
 * non-ASCII: escaped, they filled a label with half an escape). */
static void token_label(const Repl *r, int pos, char *out, size_t cap, int keep_utf8) {
    char t[28];
    const int id = r->ids[pos];
    if (r->tok && id >= 0 && id == tokenizer_bos_id(r->tok)) snprintf(t, sizeof t, "<bos>");
    else if (r->tok && id >= 0 && id == tokenizer_eos_id(r->tok)) snprintf(t, sizeof t, "<eos>");
    else token_text(r, id, t, sizeof t, keep_utf8);
    snprintf(out, cap, "%d:%.27s", pos, t);
}

static int term_utf8(const Repl *r) { return r->interactive && r->color != TERM_PLAIN; }

/* ---- numbers (reliability rows 25, 26) ---- */

/* An integer in [lo, hi): strict (no trailing bytes, no overflow), the range named on error. */
int arg_int(Repl *r, const char *s, long long lo, long long hi, const char *what, const char *usage, long long *out) {
    char esc[48]; /* fail() escapes the message as a whole */
    snprintf(esc, sizeof esc, "%s", s);
    errno = 0;
    char *end = NULL;
    long long v = strtoll(s, &end, 10);
    if (end == s || *end != '\0' || isspace((unsigned char)s[0]))
        return fail(r, "%s: '%s' is not an integer (usage: %s)", what, esc, usage);
    if (errno == ERANGE || v < lo || v >= hi)
        return fail(r, "%s %s is out of range [%lld, %lld) (usage: %s)", what, esc, lo, hi, usage);
    *out = v;
    return 0;
}

static int arg_float(Repl *r, const char *s, double lo, double hi, const char *what, double *out) {
    SeekErr e;
    if (parse_f64(s, lo, hi, out, what, &e)) return fail(r, "%s (usage: set %s VALUE)", e.msg, what);
    return 0;
}

/* ---- running the model ---- */

static void ablation_edit(void *ctx, const char *name, float *x, int ndim, const size_t *shape) {
    Repl *r = ctx;
    for (int i = 0; i < r->n_abl; i++) {
        const Ablation *a = &r->abl[i];
        if (strcmp(a->hook, name)) continue;
        size_t rows = 1;
        for (int d = 0; d < ndim - (a->kind == 0 ? 2 : 1); d++) rows *= shape[d];
        if (a->kind == 0) { /* hook_z (B, T, NH, dv): zero head `index` */
            size_t NH = shape[ndim - 2], dv = shape[ndim - 1];
            for (size_t row = 0; row < rows; row++) memset(x + (row * NH + (size_t)a->index) * dv, 0, dv * sizeof(float));
        } else { /* hook_router_choice (B, T, E): selection never picks `index` */
            size_t E = shape[ndim - 1];
            for (size_t row = 0; row < rows; row++) x[row * E + (size_t)a->index] = -INFINITY;
        }
    }
}

/* Runs the whole sequence with every stage captured. On failure the previous run is gone but
 * the sequence is kept, and have_run is 0. */
static int run_forward(Repl *r) {
    const Config *c = &r->model.cfg;
    SeekErr err;
    actcache_clear(&r->cache);
    r->have_run = 0;
    r->cache.edit = r->n_abl ? ablation_edit : NULL;
    r->cache.edit_ctx = r;
    float *logits = malloc((size_t)r->T * c->V * sizeof(float));
    if (!logits) return fail(r, "run: out of memory for %d x %d logits", r->T, c->V);
    KVCache kv;
    RunState s;
    int rc = kvcache_init(&kv, c, 1, r->T, &err);
    if (!rc) {
        rc = runstate_init(&s, c, 1, r->T, r->T, 1, &err);
        if (!rc) {
            rc = model_forward_on(r->backend, &r->model, &s, &kv, r->ids, 1, r->T, r->attn, &r->cache, NULL, logits, &err);
            runstate_free(&s);
        }
        kvcache_free(&kv);
    }
    if (rc) {
        free(logits);
        actcache_clear(&r->cache);
        return fail(r, "run: %s", err.msg);
    }
    free(r->logits);
    r->logits = logits;
    r->have_run = 1;
    r->cur = 0;
    return 0;
}

/* softmax of one row of logits into p (V), in double for the denominator */
static void softmax_row(const float *x, int V, float *p) {
    float m = -INFINITY;
    for (int i = 0; i < V; i++) if (x[i] > m) m = x[i];
    double s = 0.0;
    for (int i = 0; i < V; i++) s += exp((double)x[i] - m);
    for (int i = 0; i < V; i++) p[i] = (float)(exp((double)x[i] - m) / s);
}

static int argmax(const float *x, int n) {
    int b = 0;
    for (int i = 1; i < n; i++) if (x[i] > x[b]) b = i;
    return b;
}

/* "next token after position T-1: #17 'x' p=0.2500" */
static void say_next(Repl *r, const char *lead) {
    const Config *c = &r->model.cfg;
    float *p = malloc((size_t)c->V * sizeof(float));
    if (!p) return;
    const float *row = r->logits + (size_t)(r->T - 1) * c->V;
    softmax_row(row, c->V, p);
    int b = argmax(row, c->V);
    char t[64];
    token_text(r, b, t, sizeof t, term_utf8(r));
    say(r, "%snext token: %d '%s' p=%.4f\n", lead, b, t, p[b]);
    free(p);
}

static size_t cache_bytes(const ActCache *c) {
    size_t n = 0;
    for (size_t i = 0; i < c->n; i++) n += c->items[i].numel * sizeof(float);
    return n;
}

static void say_run(Repl *r) {
    say(r, "ran %d token%s through %d layers: %zu stages captured (%.1f KiB)%s\n", r->T, r->T == 1 ? "" : "s",
        r->model.cfg.L, r->cache.n, cache_bytes(&r->cache) / 1024.0, r->n_abl ? ", with ablations" : "");
    say_next(r, "");
}

int repl_rerun(Repl *r) {
    if (!r->have_run) return 0;
    if (run_forward(r)) return -1;
    say(r, "the sequence ran again with the model as it is now: ");
    say_run(r);
    return 0;
}

static int need_model(Repl *r, const char *cmd) {
    if (!r->loaded) return fail(r, "%s: no model loaded (load DIR first)", cmd);
    return 0;
}

static int need_run(Repl *r, const char *cmd) {
    if (need_model(r, cmd)) return -1;
    if (!r->have_run) return fail(r, "%s: nothing has run yet (ids 1 2 3 or prompt TEXT first)", cmd);
    return 0;
}

static const Activation *get_act(Repl *r, const char *cmd, const char *fmt, int layer) {
    char name[HOOK_NAME_LEN];
    snprintf(name, sizeof name, fmt, layer);
    const Activation *a = actcache_get(&r->cache, name);
    if (!a) fail(r, "%s: stage %s was not captured", cmd, name);
    return a;
}

/* ---- picture bookkeeping ---- */

void new_picture(Repl *r, const char *title, int grid_cols) {
    picture_free(&r->pic);
    picture_init(&r->pic, title, grid_cols);
    r->have_pic = 0;
}

void show_picture(Repl *r) {
    r->have_pic = 1;
    term_print_picture(r->out, &r->pic, r->color, r->width);
}

/* ---- statistics and stage summaries ---- */

typedef struct {
    double min, max, mean, std, norm;
    size_t n, n_nan, n_posinf, n_neginf;
} Stats;

static void stats_of(const float *x, size_t n, size_t stride_unused, Stats *s) {
    (void)stride_unused;
    memset(s, 0, sizeof *s);
    s->min = INFINITY;
    s->max = -INFINITY;
    double sum = 0.0, sq = 0.0;
    for (size_t i = 0; i < n; i++) {
        float v = x[i];
        if (isnan(v)) { s->n_nan++; continue; }
        if (isinf(v)) { if (v > 0) s->n_posinf++; else s->n_neginf++; continue; }
        s->n++;
        sum += v;
        sq += (double)v * v;
        if (v < s->min) s->min = v;
        if (v > s->max) s->max = v;
    }
    if (s->n) {
        s->mean = sum / (double)s->n;
        double var = sq / (double)s->n - s->mean * s->mean;
        s->std = var > 0 ? sqrt(var) : 0.0;
        s->norm = sqrt(sq);
    } else s->min = s->max = 0.0;
}

static void say_stats(Repl *r, const Stats *s) {
    say(r, "min %.4f  max %.4f  mean %.4f  std %.4f  norm %.4f", s->min, s->max, s->mean, s->std, s->norm);
    if (s->n_nan || s->n_posinf || s->n_neginf) {
        say(r, "  (not finite:");
        if (s->n_nan) say(r, " %zu NaN", s->n_nan);
        if (s->n_posinf) say(r, " %zu +inf", s->n_posinf);
        if (s->n_neginf) say(r, " %zu -inf", s->n_neginf);
        say(r, ")");
    }
    say(r, "\n");
}

static void shape_str(char *out, size_t cap, int ndim, const size_t *shape) {
    size_t o = (size_t)snprintf(out, cap, "(");
    for (int d = 0; d < ndim && o < cap; d++) o += (size_t)snprintf(out + o, cap - o, d ? ", %zu" : "%zu", shape[d]);
    if (o < cap) snprintf(out + o, cap - o, ")");
}

static void say_stage(Repl *r, size_t i) {
    const Activation *a = &r->cache.items[i];
    char sh[96];
    shape_str(sh, sizeof sh, a->ndim, a->shape);
    const char *m = hook_doc(a->name, NULL);
    say(r, "[%zu/%zu] %s %s  %s\n", i, r->cache.n, a->name, sh, m ? m : "");
    Stats s;
    stats_of(a->data, a->numel, 1, &s);
    say(r, "        ");
    say_stats(r, &s);
}

/* Resolves a stage: an index, an exact name, a glob, or a unique substring. -1 with an error. */
static long find_stage(Repl *r, const char *cmd, const char *q) {
    long long idx;
    SeekErr e;
    if (isdigit((unsigned char)q[0]) && parse_i64(q, 0, LLONG_MAX, &idx, "stage", &e) == 0) {
        if ((size_t)idx >= r->cache.n) return fail(r, "%s: stage %lld is out of range [0, %zu)", cmd, idx, r->cache.n);
        return (long)idx;
    }
    for (size_t i = 0; i < r->cache.n; i++)
        if (!strcmp(r->cache.items[i].name, q)) return (long)i;
    int glob = strpbrk(q, "*?[") != NULL;
    long hit = -1;
    int n = 0;
    char some[256] = "";
    for (size_t i = 0; i < r->cache.n; i++) {
        const char *nm = r->cache.items[i].name;
        if (glob ? fnmatch(q, nm, 0) == 0 : strstr(nm, q) != NULL) {
            if (n < 3) {
                size_t o = strlen(some);
                snprintf(some + o, sizeof some - o, "%s%s", n ? ", " : "", nm);
            }
            hit = (long)i;
            n++;
        }
    }
    if (n == 1) return hit;
    if (n == 0) return fail(r, "%s: no stage matches '%s' (see 'stages')", cmd, q);
    return fail(r, "%s: '%s' matches %d stages (%s%s); be more specific", cmd, q, n, some, n > 3 ? ", ..." : "");
}

/* ---- commands ---- */

typedef struct Cmd {
    const char *name;
    int min_args, max_args;     /* words after the command; -1: the rest of the line is one argument */
    int (*fn)(Repl *r, int argc, char **argv, const char *rest);
    const char *usage;
    const char *help;
    const char *more;           /* what `help CMD` adds (lines starting "  "), or NULL */
} Cmd;

static const Cmd *find_cmd(const char *name, char *why, size_t cap);

static int cmd_load(Repl *r, int argc, char **argv, const char *rest) {
    SeekErr err;
    if (repl_load(r, argv[1], &err)) return fail(r, "load: %s", err.msg);
    return 0;
}

static int set_sequence(Repl *r, const int *ids, int T) {
    int *copy = malloc((size_t)T * sizeof(int));
    if (!copy) return fail(r, "out of memory");
    memcpy(copy, ids, (size_t)T * sizeof(int));
    int *old = r->ids, oldT = r->T;
    r->ids = copy;
    r->T = T;
    if (run_forward(r)) {
        free(copy);
        r->ids = old;
        r->T = oldT;
        if (old) run_forward(r); /* restore the previous state's captures */
        return -1;
    }
    free(old);
    say_run(r);
    return 0;
}

static int max_tokens(const Repl *r) {
    int m = r->model.cfg.max_pos;
    return m < REPL_MAX_TOKENS ? m : REPL_MAX_TOKENS;
}

static int cmd_ids(Repl *r, int argc, char **argv, const char *rest) {
    if (need_model(r, "ids")) return -1;
    int n = argc - 1;
    if (n > max_tokens(r)) return fail(r, "ids: %d tokens exceed the limit %d (max_position_embeddings %d)", n, max_tokens(r), r->model.cfg.max_pos);
    int *ids = malloc((size_t)n * sizeof(int));
    if (!ids) return fail(r, "out of memory");
    for (int i = 0; i < n; i++) {
        long long v;
        if (arg_int(r, argv[i + 1], 0, r->model.cfg.V, "token id", "ids ID ...", &v)) {
            free(ids);
            return -1;
        }
        ids[i] = (int)v;
    }
    int rc = set_sequence(r, ids, n);
    free(ids);
    return rc;
}

static int cmd_prompt(Repl *r, int argc, char **argv, const char *rest) {
    if (need_model(r, "prompt")) return -1;
    if (!r->tok) return fail(r, "prompt: %s (use 'ids 1 2 3' instead)", r->tok_note);
    SeekErr err;
    TokIds ids = {0};
    if (tokenizer_encode(r->tok, rest, strlen(rest), tokenizer_add_bos(r->tok), &ids, &err)) {
        free(ids.ids);
        return fail(r, "prompt: %s", err.msg);
    }
    int rc = 0;
    if (ids.n == 0) rc = fail(r, "prompt: the text gives no tokens");
    else if (ids.n > (size_t)max_tokens(r)) rc = fail(r, "prompt: %zu tokens exceed the limit %d", ids.n, max_tokens(r));
    for (size_t i = 0; !rc && i < ids.n; i++)
        if (ids.ids[i] < 0 || ids.ids[i] >= r->model.cfg.V)
            rc = fail(r, "prompt: token id %d from the tokenizer is out of range [0, %d) of the model's vocab_size", ids.ids[i], r->model.cfg.V);
    if (!rc) {
        int *v = malloc(ids.n * sizeof(int));
        if (!v) rc = fail(r, "out of memory");
        for (size_t i = 0; !rc && i < ids.n; i++) v[i] = ids.ids[i];
        if (!rc) {
            say(r, "%zu tokens:", ids.n);
            for (size_t i = 0; i < ids.n; i++) {
                char t[64];
                token_text(r, v[i], t, sizeof t, term_utf8(r));
                say(r, " %d'%s'", v[i], t);
            }
            say(r, "\n");
            rc = set_sequence(r, v, (int)ids.n);
        }
        free(v);
    }
    free(ids.ids);
    return rc;
}

static int cmd_step(Repl *r, int argc, char **argv, const char *rest) {
    if (need_run(r, argv[0])) return -1;
    long long n = 1;
    int back = argv[0][0] == 'b';
    if (argc > 1 && arg_int(r, argv[1], 1, (long long)r->cache.n, "count", back ? "back [n]" : "step [n]", &n)) return -1;
    if (!back && r->cur + 1 >= r->cache.n) return fail(r, "step: already at the last stage (%zu); use back or goto", r->cur);
    if (back && r->cur == 0) return fail(r, "back: already at the first stage; use step or goto");
    if (back) r->cur = (size_t)n > r->cur ? 0 : r->cur - (size_t)n;
    else r->cur = r->cur + (size_t)n >= r->cache.n ? r->cache.n - 1 : r->cur + (size_t)n;
    say_stage(r, r->cur);
    return 0;
}

static int cmd_goto(Repl *r, int argc, char **argv, const char *rest) {
    if (need_run(r, "goto")) return -1;
    long i = find_stage(r, "goto", argv[1]);
    if (i < 0) return -1;
    r->cur = (size_t)i;
    say_stage(r, r->cur);
    return 0;
}

static int cmd_where(Repl *r, int argc, char **argv, const char *rest) {
    if (need_model(r, "where")) return -1;
    say(r, "model %s (%s)\n", r->dir, r->model.cfg.model_type);
    if (!r->have_run) {
        say(r, "nothing has run yet\n");
        return 0;
    }
    say(r, "sequence %d tokens:", r->T);
    for (int t = 0; t < r->T; t++) {
        char l[64];
        token_label(r, t, l, sizeof l, term_utf8(r));
        say(r, " %s", l);
    }
    say(r, "\n");
    for (int i = 0; i < r->n_abl; i++)
        say(r, "ablated %s %d in layer %d\n", r->abl[i].kind ? "expert" : "head", r->abl[i].index, r->abl[i].layer);
    say_stage(r, r->cur);
    return 0;
}

static int cmd_stages(Repl *r, int argc, char **argv, const char *rest) {
    if (need_run(r, "stages")) return -1;
    int shown = 0;
    for (size_t i = 0; i < r->cache.n; i++) {
        const Activation *a = &r->cache.items[i];
        if (argc > 1 && fnmatch(argv[1], a->name, 0) != 0 && !strstr(a->name, argv[1])) continue;
        char sh[96];
        shape_str(sh, sizeof sh, a->ndim, a->shape);
        say(r, "%c%4zu %-38s %s\n", i == r->cur ? '>' : ' ', i, a->name, sh);
        shown++;
    }
    if (!shown) return fail(r, "stages: no stage matches '%s'", argv[1]);
    return 0;
}

/* ---- show ---- */

typedef struct {
    size_t lo[HOOK_MAX_DIMS], hi[HOOK_MAX_DIMS];
} Slice;

/* "[0, 2:5, :]" (brackets optional); trailing axes default to ':' */
static int parse_slice(Repl *r, const char *s, int ndim, const size_t *shape, Slice *sl) {
    for (int d = 0; d < ndim; d++) {
        sl->lo[d] = 0;
        sl->hi[d] = shape[d];
    }
    char buf[256];
    snprintf(buf, sizeof buf, "%s", s);
    char *p = buf;
    while (*p == ' ') p++;
    if (*p == '[') p++;
    char *end = p + strlen(p);
    while (end > p && end[-1] == ' ') end--;
    if (end > p && end[-1] == ']') end--;
    *end = '\0';
    int d = 0;
    for (char *item = p; item; d++) {
        char *comma = strchr(item, ',');
        if (comma) *comma = '\0';
        if (d >= ndim) return fail(r, "show: the slice has more than %d axes", ndim);
        while (*item == ' ') item++;
        char *e = item + strlen(item);
        while (e > item && e[-1] == ' ') *--e = '\0';
        char *colon = strchr(item, ':');
        long long a = 0, b = (long long)shape[d];
        char what[32];
        snprintf(what, sizeof what, "index of axis %d", d);
        if (colon) {
            *colon = '\0';
            if (*item && arg_int(r, item, 0, (long long)shape[d] + 1, what, "show NAME [i, a:b, :]", &a)) return -1;
            if (colon[1] && arg_int(r, colon + 1, 0, (long long)shape[d] + 1, what, "show NAME [i, a:b, :]", &b)) return -1;
            if (b <= a) return fail(r, "show: empty range %lld:%lld on axis %d", a, b, d);
        } else {
            if (arg_int(r, item, 0, (long long)shape[d], what, "show NAME [i, a:b, :]", &a)) return -1;
            b = a + 1;
        }
        sl->lo[d] = (size_t)a;
        sl->hi[d] = (size_t)b;
        item = comma ? comma + 1 : NULL;
    }
    return 0;
}

/* Copies the slice of x (ndim, shape) into a new buffer; *n gets its size. */
static float *gather(const float *x, int ndim, const size_t *shape, const Slice *sl, size_t *n) {
    size_t cnt = 1;
    for (int d = 0; d < ndim; d++) cnt *= sl->hi[d] - sl->lo[d];
    float *o = malloc((cnt ? cnt : 1) * sizeof(float));
    if (!o) return NULL;
    size_t idx[HOOK_MAX_DIMS];
    for (int d = 0; d < ndim; d++) idx[d] = sl->lo[d];
    for (size_t k = 0; k < cnt; k++) {
        size_t off = 0;
        for (int d = 0; d < ndim; d++) off = off * shape[d] + idx[d];
        o[k] = x[off];
        for (int d = ndim - 1; d >= 0; d--) {
            if (++idx[d] < sl->hi[d]) break;
            idx[d] = sl->lo[d];
        }
    }
    *n = cnt;
    return o;
}

static void say_value(Repl *r, float v) {
    if (isnan(v)) say(r, " %9s", "nan");
    else if (isinf(v)) say(r, " %9s", v > 0 ? "inf" : "-inf");
    else say(r, " %9.4f", v);
}

/* Prints values as rows of the last axis (at most 8 rows x 10 columns, then "..."). */
static void say_values(Repl *r, const float *v, int ndim, const size_t *dims) {
    size_t cols = ndim ? dims[ndim - 1] : 1, rows = 1;
    for (int d = 0; d + 1 < ndim; d++) rows *= dims[d];
    size_t maxr = 8, maxc = 10;
    for (size_t i = 0; i < rows && i < maxr; i++) {
        say(r, "  ");
        /* the row's index in the leading axes */
        size_t ix[HOOK_MAX_DIMS] = {0}, rem = i;
        for (int d = ndim - 2; d >= 0; d--) {
            ix[d] = rem % dims[d];
            rem /= dims[d];
        }
        char at[64] = "";
        for (int d = 0; d + 1 < ndim; d++) {
            size_t o = strlen(at);
            snprintf(at + o, sizeof at - o, "%s%zu", d ? "," : "", ix[d]);
        }
        if (ndim > 1) say(r, "[%s]", at);
        for (size_t j = 0; j < cols && j < maxc; j++) say_value(r, v[i * cols + j]);
        if (cols > maxc) say(r, " ... (%zu more)", cols - maxc);
        say(r, "\n");
    }
    if (rows > maxr) say(r, "  ... (%zu more rows)\n", rows - maxr);
}

static int cmd_show(Repl *r, int argc, char **argv, const char *rest) {
    if (need_model(r, "show")) return -1;
    const char *name = NULL;
    const float *data;
    int ndim;
    size_t shape[HOOK_MAX_DIMS];
    char title[160];
    /* NAME may be omitted: the current stage, and a slice may follow */
    int slice_from = 1;
    if (argc > 1 && argv[1][0] != '[' && !isdigit((unsigned char)argv[1][0]) && argv[1][0] != ':') {
        name = argv[1];
        slice_from = 2;
    }
    const ParamInfo *pi = name ? model_param(&r->model, name) : NULL;
    if (pi) {
        ndim = pi->ndim;
        for (int d = 0; d < ndim; d++) shape[d] = (size_t)pi->shape[d];
        data = pi->ptr;
        snprintf(title, sizeof title, "%s (parameter)", pi->name);
    } else {
        if (need_run(r, "show")) return -1;
        long i = name ? find_stage(r, "show", name) : (long)r->cur;
        if (i < 0) return -1;
        const Activation *a = &r->cache.items[i];
        ndim = a->ndim;
        memcpy(shape, a->shape, sizeof shape);
        data = a->data;
        const char *m = hook_doc(a->name, NULL);
        snprintf(title, sizeof title, "%s  %s", a->name, m ? m : "");
    }
    char sbuf[256] = "";
    for (int k = slice_from; k < argc; k++) {
        size_t o = strlen(sbuf);
        snprintf(sbuf + o, sizeof sbuf - o, "%s%s", k > slice_from ? " " : "", argv[k]);
    }
    Slice sl;
    for (int d = 0; d < ndim; d++) {
        sl.lo[d] = 0;
        sl.hi[d] = shape[d];
    }
    if (sbuf[0] && parse_slice(r, sbuf, ndim, shape, &sl)) return -1;
    size_t n;
    float *v = gather(data, ndim, shape, &sl, &n);
    if (!v) return fail(r, "show: out of memory");
    size_t dims[HOOK_MAX_DIMS] = {0};
    int nd = 0;
    for (int d = 0; d < ndim; d++)
        if (sl.hi[d] - sl.lo[d] > 1 || (d == ndim - 1 && nd == 0)) dims[nd++] = sl.hi[d] - sl.lo[d];
    char sh[96], ssh[96];
    shape_str(sh, sizeof sh, ndim, shape);
    shape_str(ssh, sizeof ssh, nd, dims);
    say(r, "%s\nshape %s", title, sh);
    if (sbuf[0]) {
        say(r, ", slice [");
        for (int d = 0; d < ndim; d++) {
            if (sl.hi[d] - sl.lo[d] == 1 && !(sl.lo[d] == 0 && shape[d] == 1)) say(r, "%s%zu", d ? ", " : "", sl.lo[d]);
            else say(r, "%s%zu:%zu", d ? ", " : "", sl.lo[d], sl.hi[d]);
        }
        say(r, "] -> %s", ssh);
    }
    say(r, "\n");
    Stats s;
    stats_of(v, n, 1, &s);
    say_stats(r, &s);
    say_values(r, v, nd, dims);
    free(v);
    return 0;
}

/* ---- attention ---- */

static void label_tokens(Repl *r, Panel *pn, int rows, int cols, int keep_utf8) {
    SeekErr e;
    if (panel_want_labels(pn, rows, cols, &e)) return;
    for (int t = 0; rows && t < pn->rows; t++) token_label(r, t, pn->row_labels[t], PLOT_LABEL_LEN, keep_utf8);
    for (int t = 0; cols && t < pn->cols; t++) token_label(r, t, pn->col_labels[t], PLOT_LABEL_LEN, keep_utf8);
}

static int cmd_attn(Repl *r, int argc, char **argv, const char *rest) {
    if (need_run(r, "attn")) return -1;
    const Config *c = &r->model.cfg;
    long long L, H = -1;
    if (arg_int(r, argv[1], 0, c->L, "layer", "attn L [H]", &L)) return -1;
    if (argc > 2 && arg_int(r, argv[2], 0, c->NH, "head", "attn L [H]", &H)) return -1;
    const Activation *a = get_act(r, "attn", "blocks.%d.attn.hook_pattern", (int)L);
    if (!a) return -1;
    int NH = (int)a->shape[1], T = (int)a->shape[2], Tk = (int)a->shape[3];
    char title[128];
    snprintf(title, sizeof title, "layer %lld attention (%s)", L, c->mla ? "MLA" : "LLaMA");
    new_picture(r, title, H >= 0 ? 1 : (NH < 4 ? NH : 4));
    SeekErr err;
    for (int h = 0; h < NH; h++) {
        if (H >= 0 && h != H) continue;
        char pt[64];
        snprintf(pt, sizeof pt, "head %d: query (rows) x key (columns)", h);
        Panel *pn = picture_add(&r->pic, PANEL_HEATMAP, T, Tk, pt, &err);
        if (!pn) return fail(r, "attn: %s", err.msg);
        memcpy(pn->v, a->data + (size_t)h * T * Tk, (size_t)T * Tk * sizeof(float));
        for (int q = 0; q < T; q++)
            for (int k = q + 1 + (Tk - T); k < Tk; k++) pn->v[(size_t)q * Tk + k] = NAN; /* masked: not attended */
        pn->cmap = r->cmap;
        pn->lo = 0.0f;
        pn->hi = 1.0f;
        label_tokens(r, pn, 1, 1, 0);
        snprintf(pn->xlabel, sizeof pn->xlabel, "key position");
    }
    show_picture(r);
    /* the strongest keys per query, as numbers */
    for (int h = 0; h < NH; h++) {
        if (H >= 0 && h != H) continue;
        say(r, "head %d, top keys per query:\n", h);
        for (int q = 0; q < T; q++) {
            const float *row = a->data + ((size_t)h * T + q) * Tk;
            char l[64];
            token_label(r, q, l, sizeof l, term_utf8(r));
            say(r, "  %-14s", l);
            unsigned char used[REPL_MAX_TOKENS] = {0};
            for (int k = 0; k < 3 && k < Tk; k++) {
                int b = -1;
                for (int j = 0; j < Tk; j++)
                    if (!used[j] && (b < 0 || row[j] > row[b])) b = j;
                if (row[b] <= 0.0f) break;
                used[b] = 1;
                say(r, " %d(%.3f)", b, row[b]);
            }
            say(r, "\n");
        }
    }
    return 0;
}

/* ---- routing ---- */

static int check_moe_layer(Repl *r, const char *cmd, int L) {
    const Config *c = &r->model.cfg;
    if (c->E == 0 || !c->mla) return fail(r, "%s: this model (%s) has no MoE layers: every FFN is a dense SwiGLU", cmd, c->model_type);
    if (!config_layer_is_moe(c, L)) {
        int first = -1;
        for (int l = 0; l < c->L && first < 0; l++) if (config_layer_is_moe(c, l)) first = l;
        return fail(r, "%s: layer %d is a dense FFN (first_k_dense_replace %d, moe_layer_freq %d); the first MoE layer is %d",
                    cmd, L, c->first_k_dense, c->moe_layer_freq, first);
    }
    return 0;
}

/* The surviving groups of one token (kept[TG]); returns TG, 0 without group limiting. */
static int surviving_groups(const Config *c, const float *scores, const float *choice, int *kept) {
    if (c->topk_method == TOPK_GREEDY || c->G <= 1) return 0;
    int per = c->E / c->G;
    float gs[CFG_MAX_EXPERTS];
    unsigned char taken[CFG_MAX_EXPERTS];
    for (int g = 0; g < c->G; g++) {
        const float *grp = choice + (size_t)g * per;
        if (c->topk_method == TOPK_NOAUX_TC) {
            int t2[2];
            topk_indices(t2, grp, per, per >= 2 ? 2 : 1, taken);
            gs[g] = grp[t2[0]] + (per >= 2 ? grp[t2[1]] : 0.0f);
        } else {
            float m = grp[0];
            for (int e = 1; e < per; e++) if (grp[e] > m) m = grp[e];
            gs[g] = m;
        }
    }
    (void)scores;
    topk_indices(kept, gs, c->G, c->TG, taken);
    return c->TG;
}

static int cmp_int(const void *a, const void *b) { return *(const int *)a - *(const int *)b; }

static int cmd_route(Repl *r, int argc, char **argv, const char *rest) {
    if (need_run(r, "route")) return -1;
    const Config *c = &r->model.cfg;
    long long L;
    if (arg_int(r, argv[1], 0, c->L, "layer", "route L", &L)) return -1;
    if (check_moe_layer(r, "route", (int)L)) return -1;
    const Activation *sc = get_act(r, "route", "blocks.%d.mlp.hook_router_scores", (int)L);
    const Activation *ch = sc ? get_act(r, "route", "blocks.%d.mlp.hook_router_choice", (int)L) : NULL;
    const Activation *ix = ch ? get_act(r, "route", "blocks.%d.mlp.hook_expert_indices", (int)L) : NULL;
    const Activation *wt = ix ? get_act(r, "route", "blocks.%d.mlp.hook_expert_weights", (int)L) : NULL;
    if (!wt) return -1;
    const int T = r->T, E = c->E, K = c->K;
    const int has_bias = c->topk_method == TOPK_NOAUX_TC;
    char title[160];
    snprintf(title, sizeof title, "layer %lld routing: %d experts, top-%d%s", L, E, K, has_bias ? ", bias flips outlined" : "");
    new_picture(r, title, 1);
    SeekErr err;
    Panel *hm = picture_add(&r->pic, PANEL_HEATMAP, T, E, "gate weight per token (rows) and expert (columns)", &err);
    Panel *load = hm ? picture_add(&r->pic, PANEL_BARS, 1, E, "tokens per expert", &err) : NULL;
    hm = load ? &r->pic.panels[0] : NULL; /* the panel array may have moved */
    if (!hm || panel_want_marks(hm, &err) || panel_want_labels(load, 0, 1, &err) || panel_want_labels(hm, 1, 1, &err))
        return fail(r, "route: %s", err.msg);
    label_tokens(r, hm, 1, 0, 0);
    for (int e = 0; e < E; e++) {
        snprintf(hm->col_labels[e], PLOT_LABEL_LEN, "%d", e);
        snprintf(load->col_labels[e], PLOT_LABEL_LEN, "%d", e);
    }
    hm->col_group = c->G > 1 ? E / c->G : 0;
    hm->cmap = r->cmap;
    snprintf(hm->xlabel, sizeof hm->xlabel, "expert");
    snprintf(load->xlabel, sizeof load->xlabel, "expert");
    float *unb = malloc((size_t)E * sizeof(float) * 2 + (size_t)(E + c->G + 1) * sizeof(float));
    int *idx0 = malloc((size_t)K * sizeof(int) * 2);
    if (!unb || !idx0) {
        free(unb);
        free(idx0);
        return fail(r, "route: out of memory");
    }
    float *w0 = unb + E, *scratch = unb + 2 * E;
    int flips = 0;
    for (int t = 0; t < T; t++) {
        const float *s = sc->data + (size_t)t * E, *cc = ch->data + (size_t)t * E;
        /* what selection would pick without the balancing bias (ablated experts stay excluded) */
        for (int e = 0; e < E; e++) unb[e] = isinf(cc[e]) && cc[e] < 0 ? cc[e] : s[e];
        moe_select(idx0, w0, s, unb, 1, c, scratch);
        for (int k = 0; k < K; k++) {
            int e = (int)ix->data[(size_t)t * K + k];
            hm->v[(size_t)t * E + e] = wt->data[(size_t)t * K + k];
            load->v[e] += 1.0f;
            int in0 = 0;
            for (int j = 0; j < K; j++) in0 |= idx0[j] == e;
            if (!in0) {
                hm->mark[(size_t)t * E + e] = 1;
                flips++;
            }
        }
    }
    panel_auto_range(hm);
    hm->lo = 0.0f;
    panel_auto_range(load);
    show_picture(r);
    /* numbers: each token's experts (selection order), surviving groups and flips */
    for (int t = 0; t < T; t++) {
        char l[64];
        token_label(r, t, l, sizeof l, term_utf8(r));
        say(r, "  %-14s", l);
        for (int k = 0; k < K; k++) {
            int e = (int)ix->data[(size_t)t * K + k];
            say(r, " e%d %.3f%s", e, wt->data[(size_t)t * K + k], hm->mark[(size_t)t * E + e] ? "!" : "");
        }
        int kept[CFG_MAX_EXPERTS];
        int ng = surviving_groups(c, sc->data + (size_t)t * E, ch->data + (size_t)t * E, kept);
        if (ng) {
            qsort(kept, (size_t)ng, sizeof(int), cmp_int);
            say(r, "  groups {");
            for (int g = 0; g < ng; g++) say(r, g ? ",%d" : "%d", kept[g]);
            say(r, "}");
        }
        say(r, "\n");
    }
    for (int i = 0; i < r->n_abl; i++)
        if (r->abl[i].kind == 1 && r->abl[i].layer == L) say(r, "expert %d is ablated (never chosen)\n", r->abl[i].index);
    if (has_bias) say(r, "bias flips (chosen only because of e_score_correction_bias, marked !): %d of %d choices\n", flips, T * K);
    else say(r, "no balancing bias in %s routing (softmax scores select directly)\n", c->model_type);
    int unused = 0;
    for (int e = 0; e < E; e++) unused += load->v[e] == 0.0f;
    say(r, "load: %d of %d experts used by %d tokens; busiest expert %d (%d tokens)\n", E - unused, E, T,
        argmax(load->v, E), (int)load->v[argmax(load->v, E)]);
    free(unb);
    free(idx0);
    return 0;
}

static int cmd_path(Repl *r, int argc, char **argv, const char *rest) {
    if (need_run(r, "path")) return -1;
    const Config *c = &r->model.cfg;
    long long P;
    if (arg_int(r, argv[1], 0, r->T, "position", "path POS", &P)) return -1;
    if (c->E == 0 || !c->mla) return fail(r, "path: this model (%s) has no MoE layers: every FFN is a dense SwiGLU", c->model_type);
    char l[64], title[160];
    token_label(r, (int)P, l, sizeof l, 0);
    snprintf(title, sizeof title, "token %s: experts per layer", l);
    new_picture(r, title, 1);
    SeekErr err;
    Panel *pn = picture_add(&r->pic, PANEL_HEATMAP, c->L, c->E, "gate weight per layer (rows) and expert (columns)", &err);
    if (!pn || panel_want_labels(pn, 1, 1, &err)) return fail(r, "path: %s", err.msg);
    for (int e = 0; e < c->E; e++) snprintf(pn->col_labels[e], PLOT_LABEL_LEN, "%d", e);
    pn->col_group = c->G > 1 ? c->E / c->G : 0;
    pn->cmap = r->cmap;
    snprintf(pn->xlabel, sizeof pn->xlabel, "expert (empty row: dense layer)");
    for (int L = 0; L < c->L; L++) {
        snprintf(pn->row_labels[L], PLOT_LABEL_LEN, "layer %d", L);
        float *row = pn->v + (size_t)L * c->E;
        if (!config_layer_is_moe(c, L)) {
            for (int e = 0; e < c->E; e++) row[e] = NAN;
            continue;
        }
        const Activation *ix = get_act(r, "path", "blocks.%d.mlp.hook_expert_indices", L);
        const Activation *wt = ix ? get_act(r, "path", "blocks.%d.mlp.hook_expert_weights", L) : NULL;
        if (!wt) return -1;
        for (int k = 0; k < c->K; k++) row[(int)ix->data[(size_t)P * c->K + k]] = wt->data[(size_t)P * c->K + k];
    }
    panel_auto_range(pn);
    pn->lo = 0.0f;
    show_picture(r);
    token_label(r, (int)P, l, sizeof l, term_utf8(r));
    say(r, "token %s\n", l);
    for (int L = 0; L < c->L; L++) {
        say(r, "  layer %d:", L);
        if (!config_layer_is_moe(c, L)) {
            say(r, " dense FFN\n");
            continue;
        }
        const Activation *ix = get_act(r, "path", "blocks.%d.mlp.hook_expert_indices", L);
        const Activation *wt = get_act(r, "path", "blocks.%d.mlp.hook_expert_weights", L);
        const Activation *ro = get_act(r, "path", "blocks.%d.mlp.hook_routed_out", L);
        const Activation *sh = get_act(r, "path", "blocks.%d.mlp.hook_shared_out", L);
        if (!ix || !wt || !ro || !sh) return -1;
        for (int k = 0; k < c->K; k++)
            say(r, " e%d %.3f", (int)ix->data[(size_t)P * c->K + k], wt->data[(size_t)P * c->K + k]);
        Stats a, b;
        stats_of(ro->data + (size_t)P * c->C, (size_t)c->C, 1, &a);
        stats_of(sh->data + (size_t)P * c->C, (size_t)c->C, 1, &b);
        say(r, "  |routed| %.4f |shared| %.4f\n", a.norm, b.norm);
    }
    return 0;
}

/* ---- the MLA latent ---- */

static int cmd_latent(Repl *r, int argc, char **argv, const char *rest) {
    if (need_model(r, "latent")) return -1;
    const Config *c = &r->model.cfg;
    long long L;
    if (arg_int(r, argv[1], 0, c->L, "layer", "latent L", &L)) return -1;
    if (!c->mla) {
        /* not an error (a script comparing models goes on): what this model caches instead */
        long kv = 2L * c->NKV * c->HS, mha = 2L * c->NH * c->HS;
        if (c->NKV == c->NH)
            say(r, "no latent cache: %s uses multi-head attention, so its cache holds K and V: %d heads x (%d + %d) = %ld values "
                   "= %ld B per token per layer in bf16\n", c->model_type, c->NH, c->HS, c->HS, kv, 2 * kv);
        else
            say(r, "no latent cache: %s uses grouped-query attention, so its cache holds K and V of %d kv heads (for %d query "
                   "heads): %d x (%d + %d) = %ld values = %ld B per token per layer in bf16 (multi-head attention: %ld values)\n",
                c->model_type, c->NKV, c->NH, c->NKV, c->HS, c->HS, kv, 2 * kv, mha);
        return 0;
    }
    if (need_run(r, "latent")) return -1;
    const Activation *a = get_act(r, "latent", "blocks.%d.attn.hook_kv_latent", (int)L);
    if (!a) return -1;
    int T = (int)a->shape[1], dkv = (int)a->shape[2];
    char title[160];
    snprintf(title, sizeof title, "layer %lld KV latent: what the MLA cache holds per token (with a %d-value rope key)", L, c->dr);
    new_picture(r, title, 1);
    SeekErr err;
    Panel *pn = picture_add(&r->pic, PANEL_HEATMAP, T, dkv, "latent c_kv per token (rows), dkv channels (columns)", &err);
    if (!pn) return fail(r, "latent: %s", err.msg);
    memcpy(pn->v, a->data, (size_t)T * dkv * sizeof(float));
    pn->cmap = CMAP_RDBU_ID;
    panel_auto_range(pn);
    label_tokens(r, pn, 1, 0, 0);
    snprintf(pn->xlabel, sizeof pn->xlabel, "latent channel");
    show_picture(r);
    long mla = (long)c->kv_lora_rank + c->dr, mha = (long)c->NH * (c->dn + c->dr) + (long)c->NH * c->dv;
    say(r, "cache per token per layer: latent %d + rope key %d = %ld values = %ld B in bf16\n", c->kv_lora_rank, c->dr, mla, 2 * mla);
    say(r, "multi-head attention with the same heads: %d x (%d + %d) keys + %d x %d values = %ld values = %ld B in bf16 (%.2fx)\n",
        c->NH, c->dn, c->dr, c->NH, c->dv, mha, 2 * mha, (double)mha / (double)mla);
    say(r, "all %d layers, %d tokens: MLA %ld B, MHA %ld B (bf16)\n", c->L, T, 2 * mla * c->L * T, 2 * mha * c->L * T);
    return 0;
}

/* ---- next-token view and generation ---- */

static int cmd_top(Repl *r, int argc, char **argv, const char *rest) {
    if (need_run(r, "top")) return -1;
    const Config *c = &r->model.cfg;
    long long k = 10, P = r->T - 1;
    if (argc > 1 && arg_int(r, argv[1], 1, (long long)c->V + 1, "k", "top [k] [POS]", &k)) return -1;
    if (argc > 2 && arg_int(r, argv[2], 0, r->T, "position", "top [k] [POS]", &P)) return -1;
    if (k > 64) k = 64;
    float *p = malloc((size_t)c->V * sizeof(float));
    if (!p) return fail(r, "top: out of memory");
    const float *row = r->logits + (size_t)P * c->V;
    softmax_row(row, c->V, p);
    char l[64], title[160];
    token_label(r, (int)P, l, sizeof l, 0);
    snprintf(title, sizeof title, "next token after %s", l);
    new_picture(r, title, 1);
    SeekErr err;
    Panel *pn = picture_add(&r->pic, PANEL_BARS, 1, (int)k, "probability", &err);
    if (!pn || panel_want_labels(pn, 0, 1, &err)) {
        free(p);
        return fail(r, "top: %s", err.msg);
    }
    unsigned char *used = calloc((size_t)c->V, 1);
    if (!used) {
        free(p);
        return fail(r, "top: out of memory");
    }
    int order[64];
    for (int i = 0; i < k; i++) { /* ties go to the lower id */
        int b = -1;
        for (int j = 0; j < c->V; j++)
            if (!used[j] && (b < 0 || row[j] > row[b])) b = j;
        used[b] = 1;
        order[i] = b;
        pn->v[i] = p[b];
        char t[32];
        token_text(r, b, t, 20, 0);
        snprintf(pn->col_labels[i], PLOT_LABEL_LEN, "%s", t);
    }
    panel_auto_range(pn);
    say(r, "%s\n", title);
    say(r, "  rank     id  token            prob    logit\n");
    for (int i = 0; i < k; i++) {
        char t[64];
        token_text(r, order[i], t, 17, term_utf8(r));
        say(r, "  %4d %6d  %-14s %7.4f %8.4f\n", i + 1, order[i], t, p[order[i]], row[order[i]]);
    }
    r->have_pic = 1; /* the table is the terminal view; `png` draws the bars */
    free(used);
    free(p);
    return 0;
}

static int cmd_gen(Repl *r, int argc, char **argv, const char *rest) {
    if (need_run(r, "gen")) return -1;
    const Config *c = &r->model.cfg;
    long long n;
    int room = max_tokens(r) - r->T;
    if (room < 1) return fail(r, "gen: the sequence already holds %d tokens, the limit", r->T);
    if (arg_int(r, argv[1], 1, (long long)room + 1, "count", "gen N", &n)) return -1;
    SeekErr err;
    int T0 = r->T, Tmax = T0 + (int)n;
    int *seq = malloc((size_t)Tmax * sizeof(int));
    float *logits = malloc((size_t)T0 * c->V * sizeof(float));
    float *probs = malloc((size_t)c->V * sizeof(float));
    int *order = malloc((size_t)c->V * sizeof(int));
    if (!seq || !logits || !probs || !order) {
        free(seq); free(logits); free(probs); free(order);
        return fail(r, "gen: out of memory");
    }
    memcpy(seq, r->ids, (size_t)T0 * sizeof(int));
    /* decode with the cache; interventions apply, nothing is captured */
    ActCache dc;
    actcache_init(&dc);
    actcache_add_pattern(&dc, "-"); /* no hook is named "-": capture nothing */
    dc.edit = r->n_abl ? ablation_edit : NULL;
    dc.edit_ctx = r;
    KVCache kv;
    RunState s;
    int rc = kvcache_init(&kv, c, 1, Tmax, &err), made = 0, stopped = 0;
    if (!rc) {
        rc = runstate_init(&s, c, 1, T0, Tmax, 0, &err);
        if (rc) kvcache_free(&kv);
    }
    Rng rng;
    rng_seed(&rng, r->sp.seed);
    if (!rc) {
        rc = model_forward_on(r->backend, &r->model, &s, &kv, seq, 1, T0, r->attn, &dc, NULL, logits, &err);
        const float *last = logits + (size_t)(T0 - 1) * c->V;
        while (!rc && made < n) {
            if (repl_interrupt) {
                stopped = 1;
                break;
            }
            int tok = sample_token(last, c->V, &r->sp, &rng, probs, order);
            seq[T0 + made++] = tok;
            if (made < n) {
                rc = model_forward_on(r->backend, &r->model, &s, &kv, &seq[T0 + made - 1], 1, 1, r->attn, &dc, NULL, logits, &err);
                last = logits;
            }
        }
        repl_interrupt = 0;
        runstate_free(&s);
        kvcache_free(&kv);
    }
    actcache_free(&dc);
    free(logits);
    free(probs);
    free(order);
    if (rc) {
        free(seq);
        return fail(r, "gen: %s", err.msg);
    }
    if (stopped) say(r, "interrupted after %d of %lld tokens\n", made, n);
    say(r, "generated %d token%s:", made, made == 1 ? "" : "s");
    for (int i = 0; i < made; i++) say(r, " %d", seq[T0 + i]);
    say(r, "\n");
    if (r->tok && made) {
        TokBytes b = {0};
        int32_t *ids32 = malloc((size_t)made * sizeof(int32_t));
        if (ids32) {
            for (int i = 0; i < made; i++) ids32[i] = seq[T0 + i];
            if (!tokenizer_decode(r->tok, ids32, (size_t)made, &b, &err)) {
                char *esc = malloc(b.n * 4 + 4);
                if (esc) {
                    escape_bytes(esc, b.n * 4 + 4, b.data, b.n, term_utf8(r));
                    say(r, "text: %s\n", esc);
                    free(esc);
                }
            }
            free(ids32);
            free(b.data);
        }
    }
    if (made == 0) {
        free(seq);
        return 0;
    }
    int rc2 = set_sequence(r, seq, T0 + made);
    free(seq);
    return rc2;
}

/* ---- interventions ---- */

static int cmd_ablate(Repl *r, int argc, char **argv, const char *rest) {
    if (need_model(r, "ablate")) return -1;
    const Config *c = &r->model.cfg;
    const char *usage = "ablate head L H | ablate expert L E | ablate off";
    if (argc == 1) {
        if (!r->n_abl) say(r, "no ablations\n");
        for (int i = 0; i < r->n_abl; i++)
            say(r, "ablated %s %d in layer %d (%s)\n", r->abl[i].kind ? "expert" : "head", r->abl[i].index, r->abl[i].layer, r->abl[i].hook);
        return 0;
    }
    Ablation a = {0};
    if (!strcmp(argv[1], "off")) {
        if (argc != 2) return fail(r, "ablate off takes no arguments (usage: %s)", usage);
        if (!r->n_abl) return fail(r, "ablate off: no ablations are active");
        r->n_abl = 0;
        say(r, "ablations cleared\n");
    } else if (!strcmp(argv[1], "head") || !strcmp(argv[1], "expert")) {
        if (argc != 4) return fail(r, "ablate %s needs a layer and an index (usage: %s)", argv[1], usage);
        long long L, i = 0;
        a.kind = argv[1][0] == 'e';
        if (arg_int(r, argv[2], 0, c->L, "layer", usage, &L)) return -1;
        if (a.kind == 0 && arg_int(r, argv[3], 0, c->NH, "head", usage, &i)) return -1;
        if (a.kind == 1) {
            if (check_moe_layer(r, "ablate expert", (int)L)) return -1;
            if (arg_int(r, argv[3], 0, c->E, "expert", usage, &i)) return -1;
            int in_layer = 0;
            for (int k = 0; k < r->n_abl; k++) in_layer += r->abl[k].kind == 1 && r->abl[k].layer == L;
            if (in_layer + 1 > c->E - c->K)
                return fail(r, "ablate expert: layer %lld would keep fewer than top-k = %d experts", L, c->K);
        }
        a.layer = (int)L;
        a.index = (int)i;
        snprintf(a.hook, sizeof a.hook, a.kind ? "blocks.%d.mlp.hook_router_choice" : "blocks.%d.attn.hook_z", a.layer);
        for (int k = 0; k < r->n_abl; k++)
            if (r->abl[k].kind == a.kind && r->abl[k].layer == a.layer && r->abl[k].index == a.index)
                return fail(r, "ablate: %s %d in layer %d is already ablated", argv[1], a.index, a.layer);
        if (r->n_abl == REPL_MAX_ABLATIONS) return fail(r, "ablate: at most %d ablations", REPL_MAX_ABLATIONS);
        r->abl[r->n_abl++] = a;
        say(r, "ablating %s %d in layer %d (%s%s)\n", argv[1], a.index, a.layer, a.hook, a.kind ? " = -inf" : " = 0");
    } else return fail(r, "ablate: '%s' is not head, expert or off (usage: %s)", argv[1], usage);
    if (!r->have_run) return 0;
    /* re-run and say what changed at the last position */
    const float *before = r->logits;
    int V = c->V, b0 = argmax(before + (size_t)(r->T - 1) * V, V);
    float *keep = malloc((size_t)V * sizeof(float));
    if (keep) memcpy(keep, before + (size_t)(r->T - 1) * V, (size_t)V * sizeof(float));
    if (run_forward(r)) {
        free(keep);
        /* undo the change so the state stays what it was */
        if (a.hook[0]) r->n_abl--;
        run_forward(r);
        return -1;
    }
    say_run(r);
    float *p0 = keep ? malloc((size_t)V * sizeof(float)) : NULL, *p1 = p0 ? malloc((size_t)V * sizeof(float)) : NULL;
    if (p1) {
        /* the top-1 token before and after, by id and text, with its probability then and now */
        const float *now = r->logits + (size_t)(r->T - 1) * V;
        double d = 0.0;
        for (int i = 0; i < V; i++) d = fmax(d, fabs((double)now[i] - keep[i]));
        softmax_row(keep, V, p0);
        softmax_row(now, V, p1);
        int b1 = argmax(now, V);
        char t0[64], t1[64];
        token_text(r, b0, t0, sizeof t0, term_utf8(r));
        token_text(r, b1, t1, sizeof t1, term_utf8(r));
        if (b1 == b0)
            say(r, "last position: top-1 still %d '%s', p %.4f -> %.4f; max |change| of a logit %.4f\n", b0, t0, p0[b0], p1[b0], d);
        else
            say(r, "last position: top-1 was %d '%s' (p %.4f -> %.4f), now %d '%s' (p %.4f -> %.4f); max |change| of a logit %.4f\n",
                b0, t0, p0[b0], p1[b0], b1, t1, p0[b1], p1[b1], d);
    }
    free(p0);
    free(p1);
    free(keep);
    return 0;
}

/* Runs the sequence on backend b with every stage captured into cap (initialised here). */
static int capture_on(Repl *r, Backend b, ActCache *cap, SeekErr *err) {
    const Config *c = &r->model.cfg;
    actcache_init(cap);
    cap->edit = r->n_abl ? ablation_edit : NULL;
    cap->edit_ctx = r;
    float *logits = malloc((size_t)r->T * c->V * sizeof(float));
    if (!logits) return seek_fail(err, "out of memory");
    KVCache kv;
    RunState s;
    int rc = kvcache_init(&kv, c, 1, r->T, err);
    if (!rc) {
        rc = runstate_init(&s, c, 1, r->T, r->T, 1, err);
        if (!rc) {
            rc = model_forward_on(b, &r->model, &s, &kv, r->ids, 1, r->T, r->attn, cap, NULL, logits, err);
            runstate_free(&s);
        }
        kvcache_free(&kv);
    }
    free(logits);
    return rc;
}

/* The fast backend against the reference at every stage, by the rule of `seek verify`
 * (viz/stagecmp.h): NaN/Inf at the same positions, max|got - want| / max|want| and the normalised
 * MSE within the stage's limits, equal expert sets. The fp32 backends' limits are fixed
 * (TOL_CPU_STAGE_*); a bf16 backend's are twice a baseline measured here (the reference again with
 * bf16 products, ref/precision.h), and its routing may differ at near ties, which are counted. */
static int cmd_compare(Repl *r, int argc, char **argv, const char *rest) {
    if (need_run(r, "compare")) return -1;
    Backend fast = r->backend != BACKEND_REF ? r->backend : backend_default();
    SeekErr err;
    if (fast == BACKEND_REF) {
        backend_check(BACKEND_CPU, &err);
        return fail(r, "compare: no fast backend is built into this seek (%s)", err.msg);
    }
    const int bf16 = fast == BACKEND_CUDA_FAST;
    ActCache want, got, base;
    actcache_init(&base);
    int rc = capture_on(r, BACKEND_REF, &want, &err);
    if (!rc && bf16) {
        ref_precision = PRECISION_BF16;
        rc = capture_on(r, BACKEND_REF, &base, &err);
        ref_precision = PRECISION_FP32;
    }
    if (rc || capture_on(r, fast, &got, &err)) {
        actcache_free(&want);
        actcache_free(&got);
        actcache_free(&base);
        return fail(r, "compare: %s", err.msg);
    }
    char title[160];
    snprintf(title, sizeof title, "%s against ref, %d tokens, %s attention", backend_name(fast), r->T,
             r->attn == ATTN_ABSORB ? "absorbed" : "naive");
    new_picture(r, title, 1);
    Panel *pn = picture_add(&r->pic, PANEL_LINES, 1, (int)want.n, "log10 of the relative error per stage (forward order)", &err);
    if (pn) snprintf(pn->xlabel, sizeof pn->xlabel, "stage");
    say(r, "%s\n%-5s %-38s %9s %9s %9s  %s\n", title, "stage", "name", "max abs", "max rel", bf16 ? "base rel" : "nmse",
        "result");
    size_t n_fail = 0, n_near = 0;
    long first = -1;
    for (size_t i = 0; i < want.n; i++) {
        const Activation *a = &want.items[i], *b = actcache_get(&got, a->name);
        int pass = b && same_shape(a, b);
        StageErr e = {0};
        Limits lim = stage_limits(a, bf16 ? &base : NULL);
        if (pass) e = stage_error(a, b);
        const char *why = !b ? "missing" : !pass ? "shape" : e.bad_pos ? "NaN/Inf positions" : "";
        int indices = strstr(a->name, "hook_expert_indices") != NULL;
        if (pass && (e.bad_pos || (!(indices && bf16) && (e.rel > lim.rel || e.nmse > lim.nmse)))) {
            pass = 0;
            if (!why[0]) why = "over the limit";
        }
        if (pass && indices) { /* discrete: sorted sets per token (a bf16 backend: or near ties) */
            size_t differ = 0, near = 0;
            if (bf16) near = routing_near_ties(a, b, &got, &r->model.cfg, &differ);
            else {
                size_t last = a->shape[a->ndim - 1];
                for (size_t row = 0; row < a->numel / last; row++) {
                    int same = 1;
                    for (size_t j = 0; j < last; j++) {
                        int found = 0;
                        for (size_t k2 = 0; k2 < last; k2++) found |= a->data[row * last + j] == b->data[row * last + k2];
                        same &= found;
                    }
                    differ += !same;
                }
            }
            n_near += near;
            if (differ > near) {
                pass = 0;
                why = "expert sets differ";
            } else if (near) {
                why = "near tie";
            }
        }
        if (pn) pn->v[i] = (float)log10(e.rel > 1e-12 ? e.rel : 1e-12);
        if (!pass) {
            n_fail++;
            if (first < 0) first = (long)i;
        }
        say(r, "%5zu %-38s %9.2e %9.2e %9.2e  %s%s%s\n", i, a->name, e.max_abs, e.rel, bf16 ? lim.base_rel : e.nmse,
            pass ? "pass" : "FAIL", why[0] ? " " : "", why);
    }
    if (pn) panel_auto_range(pn);
    r->have_pic = pn != NULL;
    if (first >= 0) say(r, "%zu of %zu stages FAIL; first divergence at stage %ld, %s\n", n_fail, want.n, first, want.items[first].name);
    else if (bf16)
        say(r, "all %zu stages pass (within %g x the bf16 baseline + relative %g; %zu routing near tie(s))\n", want.n,
            TOL_BF16_BASELINE_FACTOR, TOL_CUDA_STAGE_REL, n_near);
    else say(r, "all %zu stages pass (relative error <= %g, nmse <= %g)\n", want.n, TOL_CPU_STAGE_REL, TOL_CPU_STAGE_NMSE);
    actcache_free(&want);
    actcache_free(&got);
    actcache_free(&base);
    return 0;
}

/* ---- settings, files, help ---- */

static int cmd_set(Repl *r, int argc, char **argv, const char *rest) {
    if (argc == 1) {
        say(r, "temperature %g\ntop_k %d\ntop_p %g\nseed %llu\nattn %s\ncolour %s%s\ncmap %s\nbackend %s\n",
            r->sp.temperature, r->sp.top_k, r->sp.top_p, (unsigned long long)r->sp.seed,
            r->attn == ATTN_ABSORB ? "absorb" : "naive", term_color_name(r->color), r->color_auto ? " (auto)" : "",
            cmap_name(r->cmap), backend_name(r->backend));
        return 0;
    }
    if (argc != 3) return fail(r, "set needs a key and a value (usage: set KEY VALUE; 'set' lists them)");
    const char *k = argv[1], *v = argv[2];
    double d;
    long long i;
    if (!strcmp(k, "temperature") || !strcmp(k, "temp")) {
        if (arg_float(r, v, 0.0, 100.0, "temperature", &d)) return -1;
        r->sp.temperature = (float)d;
    } else if (!strcmp(k, "top_k")) {
        if (arg_int(r, v, 0, r->loaded ? (long long)r->model.cfg.V + 1 : CFG_MAX_VOCAB + 1LL, "top_k", "set top_k K (0 = off)", &i)) return -1;
        r->sp.top_k = (int)i;
    } else if (!strcmp(k, "top_p")) {
        if (arg_float(r, v, 0.0, 1.0, "top_p", &d)) return -1;
        if (d <= 0.0) return fail(r, "top_p: %s is out of range (0, 1]", v);
        r->sp.top_p = (float)d;
    } else if (!strcmp(k, "seed")) {
        if (arg_int(r, v, 0, LLONG_MAX, "seed", "set seed N", &i)) return -1;
        r->sp.seed = (uint64_t)i;
    } else if (!strcmp(k, "attn")) {
        AttnMode m;
        if (!strcmp(v, "naive")) m = ATTN_NAIVE;
        else if (!strcmp(v, "absorb")) m = ATTN_ABSORB;
        else return fail(r, "attn: '%s' is not naive or absorb", v);
        if (m == ATTN_ABSORB && r->loaded && !r->model.cfg.mla)
            return fail(r, "attn absorb needs an MLA model (this is %s)", r->model.cfg.model_type);
        AttnMode old = r->attn;
        r->attn = m;
        if (r->have_run && m != old) {
            if (run_forward(r)) {
                r->attn = old;
                run_forward(r);
                return -1;
            }
            say_run(r);
        }
    } else if (!strcmp(k, "colour") || !strcmp(k, "color")) {
        if (!strcmp(v, "auto")) {
            r->color_auto = 1;
            r->color = term_detect(fileno(r->out));
        } else if (!strcmp(v, "none") || !strcmp(v, "off")) {
            r->color_auto = 0;
            r->color = TERM_PLAIN;
        } else if (!strcmp(v, "256")) {
            r->color_auto = 0;
            r->color = TERM_256;
        } else if (!strcmp(v, "truecolor") || !strcmp(v, "24bit")) {
            r->color_auto = 0;
            r->color = TERM_TRUECOLOR;
        } else return fail(r, "colour: '%s' is not auto, none, 256 or truecolor", v);
    } else if (!strcmp(k, "cmap")) {
        Cmap m;
        if (cmap_by_name(v, &m) || cmap_is_diverging(m)) return fail(r, "cmap: '%s' is not viridis, magma or cividis", v);
        r->cmap = m;
    } else if (!strcmp(k, "backend")) {
        Backend b;
        SeekErr e;
        if (backend_parse(v, &b, &e)) return fail(r, "%s", e.msg);
        Backend old = r->backend;
        r->backend = b;
        if (r->have_run && b != old) {
            if (run_forward(r)) {
                r->backend = old;
                run_forward(r);
                return -1;
            }
            say_run(r);
        }
    } else return fail(r, "set: unknown key '%s' (keys: temperature, top_k, top_p, seed, attn, colour, cmap, backend)", k);
    say(r, "%s = %s\n", k, v);
    return 0;
}

static int cmd_png(Repl *r, int argc, char **argv, const char *rest) {
    if (!r->have_pic) return fail(r, "png: no picture yet (run attn, route, path, latent, top, compare, group or tokens first)");
    char path[4096];
    const char *file = argv[1];
    if (r->pic_dir) { /* a lesson: a bare name, into the lesson's picture folder */
        if (!file[0] || strchr(file, '/') || !strcmp(file, ".") || !strcmp(file, ".."))
            return fail(r, "png: in a lesson, FILE is a file name without a folder (it goes into the lesson's picture folder)");
        SeekErr perr;
        if (path_join(path, sizeof path, r->pic_dir, file, &perr)) return fail(r, "png: %s", perr.msg);
        file = path;
    }
    SeekErr err;
    Image im;
    if (picture_render(&r->pic, &im, &err)) return fail(r, "png: %s", err.msg);
    int rc = png_write(file, &im, &err);
    if (!rc) { /* the name as given (a lesson says where its folder is), escaped as every byte from the user */
        char esc[4096 * 4 + 8];
        escape_bytes(esc, sizeof esc, argv[1], strlen(argv[1]), 1);
        say(r, "wrote %s (%dx%d)\n", esc, im.w, im.h);
    }
    image_free(&im);
    if (rc) return fail(r, "%s", err.msg);
    if (r->on_png) r->on_png(r->on_png_ctx, file);
    return 0;
}

static int cmd_help(Repl *r, int argc, char **argv, const char *rest);

static int cmd_quit(Repl *r, int argc, char **argv, const char *rest) { return 0; }

static const Cmd CMDS[] = {
    {"help", 0, 1, cmd_help, "help [COMMAND]", "list the commands, or explain one"},
    {"load", 1, 1, cmd_load, "load DIR", "load a Hugging Face model folder (config.json, safetensors, tokenizer.json if present)"},
    {"prompt", 1, -1, cmd_prompt, "prompt TEXT", "tokenize TEXT (needs DIR/tokenizer.json) and run it, capturing every stage"},
    {"ids", 1, REPL_MAX_TOKENS, cmd_ids, "ids ID ...", "run these token ids, capturing every stage"},
    {"step", 0, 1, cmd_step, "step [n]", "move the stage cursor n stages forward (Enter repeats it on a terminal)"},
    {"back", 0, 1, cmd_step, "back [n]", "move the stage cursor n stages back"},
    {"goto", 1, 1, cmd_goto, "goto STAGE", "jump to a stage: its number, full name, a glob, or a unique part of its name"},
    {"where", 0, 0, cmd_where, "where", "the model, the sequence, the ablations and the current stage"},
    {"stages", 0, 1, cmd_stages, "stages [PATTERN]", "list the captured stages (> marks the cursor)"},
    {"show", 0, 8, cmd_show, "show [NAME] [SLICE]", "a stage or parameter: shape, min/max/mean/std/norm and values; SLICE like [0, 2:5, :]"},
    {"attn", 1, 2, cmd_attn, "attn L [H]", "attention pattern of layer L: one head, or all heads"},
    {"route", 1, 1, cmd_route, "route L", "token x expert gate weights of MoE layer L, groups, bias flips (!) and load"},
    {"path", 1, 1, cmd_path, "path POS", "one token's experts through every layer, routed vs shared size"},
    {"latent", 1, 1, cmd_latent, "latent L", "the MLA latent cache of layer L and its bytes per token against MHA"},
    {"top", 0, 2, cmd_top, "top [k] [POS]", "the k most likely next tokens after position POS (default: the last)"},
    {"gen", 1, 1, cmd_gen, "gen N", "generate N tokens (set temperature/top_k/top_p/seed), then re-run the whole sequence"},
    {"ablate", 0, 3, cmd_ablate, "ablate head L H | expert L E | off", "zero a head's output (hook_z) or never route to an expert (hook_router_choice = -inf), then re-run"},
    {"compare", 0, 0, cmd_compare, "compare", "the fast backend (set backend, else the default) against the reference at every stage"},
    {"set", 0, 2, cmd_set, "set [KEY VALUE]", "temperature, top_k, top_p, seed, attn naive|absorb, colour auto|none|256|truecolor, cmap, backend"},
    {"group", 1, 2, repl_cmd_group, "group N [G]", "GRPO: G (8) completions of train task N (2..3-digit addition) sampled from the model, rewards, advantages; kept for update and tokens",
     "  Task N of seek rl's train split under `set seed`, sampled at `set temperature` (0, greedy, samples at 1) and top_p,\n"
     "  48 new tokens at most, on `set backend` (cpu is much faster than ref). reward = accuracy + 0.1 x format;\n"
     "  advantage = (reward - mean) / (std + 1e-4). pi_ref is a frozen copy of the model as loaded (made by the first group)."},
    {"update", 0, 1, repl_cmd_update, "update [LR]", "GRPO: one update on the kept group (lr 3e-4, beta 0.04, clip 0.2; changes the model, load restores it): each completion's log-prob change vs its advantage",
     "  One AdamW step (0.9, 0.99, no decay; gradient clipped at norm 1) on the group's GRPO loss, as seek rl takes it;\n"
     "  pi_old is the policy that sampled the group, so a second update sees ratios away from 1 and the clip acts.\n"
     "  Then: each completion's summed log-prob before and after, whether it moved the way its advantage asks."},
    {"tokens", 1, 1, repl_cmd_tokens, "tokens K", "GRPO: completion K of the kept group token by token: ratio pi/pi_old, KL k3 against pi_ref, advantage (a heatmap for png)",
     "  ratio = pi/pi_old (1 everywhere before an update); KL = pi_ref/pi - log(pi_ref/pi) - 1; 'clipped': the clipped\n"
     "  branch of min(ratio A, clip(ratio, 0.8, 1.2) A) wins, so that token gets no push from its advantage."},
    {"png", 1, 1, cmd_png, "png FILE", "write the last picture as a PNG file"},
    {"quit", 0, 0, cmd_quit, "quit", "leave (also: exit, Ctrl-D)"},
};
#define N_CMDS (sizeof CMDS / sizeof CMDS[0])

static const struct { const char *alias, *name; } ALIASES[] = {
    {"s", "step"}, {"b", "back"}, {"q", "quit"}, {"exit", "quit"}, {"?", "help"}, {"h", "help"},
};

const char *repl_command_name(int i) {
    if (i < 0 || (size_t)i >= N_CMDS) return NULL;
    return CMDS[i].name;
}

static const Cmd *find_cmd(const char *name, char *why, size_t cap) {
    for (size_t i = 0; i < sizeof ALIASES / sizeof ALIASES[0]; i++)
        if (!strcmp(name, ALIASES[i].alias)) name = ALIASES[i].name;
    const Cmd *hit = NULL;
    int n = 0;
    char list[256] = "";
    for (size_t i = 0; i < N_CMDS; i++) {
        if (!strcmp(CMDS[i].name, name)) return &CMDS[i];
        if (!strncmp(CMDS[i].name, name, strlen(name))) {
            hit = &CMDS[i];
            size_t o = strlen(list);
            snprintf(list + o, sizeof list - o, "%s%s", n ? ", " : "", CMDS[i].name);
            n++;
        }
    }
    if (n == 1) return hit;
    if (why) { /* fail() escapes the message as a whole */
        if (n == 0) snprintf(why, cap, "unknown command '%.60s' (try 'help')", name);
        else snprintf(why, cap, "'%.60s' is ambiguous: %s", name, list);
    }
    return NULL;
}

static int cmd_help(Repl *r, int argc, char **argv, const char *rest) {
    if (argc > 1) {
        char why[300];
        const Cmd *c = find_cmd(argv[1], why, sizeof why);
        if (!c) return fail(r, "help: %s", why);
        say(r, "%s\n  %s\n%s%s", c->usage, c->help, c->more ? c->more : "", c->more ? "\n" : "");
        return 0;
    }
    say(r, "commands (unique prefixes work; s = step, b = back, q = quit; # starts a comment):\n");
    for (size_t i = 0; i < N_CMDS; i++) say(r, "  %-36s %s\n", CMDS[i].usage, CMDS[i].help);
    return 0;
}

/* ---- lines ---- */

#define MAX_ARGS 4100

ReplStatus repl_handle_line(Repl *r, const char *line, size_t len) {
    if (len > REPL_MAX_LINE) {
        fail(r, "line too long (%zu bytes; the limit is %d)", len, REPL_MAX_LINE);
        return REPL_CONTINUE;
    }
    if (memchr(line, '\0', len)) {
        fail(r, "the line holds a NUL byte; nothing was run");
        return REPL_CONTINUE;
    }
    char *buf = malloc(len + 1);
    char **argv = malloc(MAX_ARGS * sizeof(char *));
    if (!buf || !argv) {
        free(buf);
        free(argv);
        fail(r, "out of memory");
        return REPL_CONTINUE;
    }
    memcpy(buf, line, len);
    buf[len] = '\0';
    /* strip the line end and surrounding blanks */
    while (len && (buf[len - 1] == '\n' || buf[len - 1] == '\r' || buf[len - 1] == ' ' || buf[len - 1] == '\t')) buf[--len] = '\0';
    char *p = buf;
    while (*p == ' ' || *p == '\t') p++;
    ReplStatus st = REPL_CONTINUE;
    if (*p == '\0') {
        if (r->interactive && r->last_was_step) {
            char *av[1] = {"step"};
            cmd_step(r, 1, av, "");
        }
        goto done;
    }
    if (*p == '#') goto done;
    /* the command word; `prompt` keeps the rest of the line as it is */
    char *word = p;
    while (*p && *p != ' ' && *p != '\t') p++;
    if (*p) *p++ = '\0';
    while (*p == ' ' || *p == '\t') p++;
    char why[300];
    const Cmd *c = find_cmd(word, why, sizeof why);
    r->last_was_step = 0;
    if (!c) {
        fail(r, "%s", why);
        goto done;
    }
    int argc = 1;
    argv[0] = (char *)c->name;
    const char *rest = p;
    if (c->max_args < 0) {
        if (*p) argv[argc++] = p;
    } else {
        while (*p) {
            if (argc == MAX_ARGS) {
                fail(r, "%s: too many arguments", c->name);
                goto done;
            }
            argv[argc++] = p;
            while (*p && *p != ' ' && *p != '\t') p++;
            if (*p) *p++ = '\0';
            while (*p == ' ' || *p == '\t') p++;
        }
    }
    int nargs = argc - 1, maxa = c->max_args < 0 ? 1 : c->max_args;
    if (nargs < c->min_args) {
        fail(r, "%s: missing argument (usage: %s)", c->name, c->usage);
        goto done;
    }
    if (nargs > maxa) {
        fail(r, "%s: too many arguments (usage: %s)", c->name, c->usage);
        goto done;
    }
    if (c->fn == cmd_quit) st = REPL_QUIT;
    else if (c->fn(r, argc, argv, rest) == 0 && c->fn == cmd_step) r->last_was_step = argv[0][0] == 's';
done:
    free(buf);
    free(argv);
    return st;
}

/* ---- life cycle ---- */

void repl_init(Repl *r, FILE *out, FILE *err) {
    memset(r, 0, sizeof *r);
    r->out = out;
    r->err = err;
    r->color_auto = 1;
    r->color = term_detect(fileno(out));
    r->width = term_width(fileno(out));
    r->sp.temperature = 0.0f;
    r->sp.top_p = 1.0f;
    r->attn = ATTN_NAIVE;
    r->cmap = CMAP_VIRIDIS_ID;
    actcache_init(&r->cache);
    picture_init(&r->pic, "", 1);
    snprintf(r->tok_note, sizeof r->tok_note, "no model loaded");
}

static void unload(Repl *r) {
    repl_grpo_free(r);
    if (r->loaded) model_free(&r->model);
    if (r->tok) tokenizer_free(r->tok);
    r->tok = NULL;
    r->loaded = 0;
    free(r->ids);
    r->ids = NULL;
    r->T = 0;
    free(r->logits);
    r->logits = NULL;
    actcache_clear(&r->cache);
    r->have_run = 0;
    r->cur = 0;
    r->n_abl = 0;
}

void repl_free(Repl *r) {
    unload(r);
    actcache_free(&r->cache);
    picture_free(&r->pic);
}

int repl_load(Repl *r, const char *dir, SeekErr *err) {
    Model m;
    if (model_load(&m, dir, err)) return -1; /* the old model stays */
    unload(r);
    r->model = m;
    r->loaded = 1;
    snprintf(r->dir, sizeof r->dir, "%s", dir);
    if (r->attn == ATTN_ABSORB && !m.cfg.mla) r->attn = ATTN_NAIVE;
    char path[1200];
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    FILE *f = fopen(path, "rb");
    SeekErr terr;
    if (!f) snprintf(r->tok_note, sizeof r->tok_note, "%s has no tokenizer.json", dir);
    else {
        fclose(f);
        if (tokenizer_load(&r->tok, path, &terr)) {
            r->tok = NULL;
            snprintf(r->tok_note, sizeof r->tok_note, "the tokenizer did not load: %.200s", terr.msg);
        }
    }
    const Config *c = &m.cfg;
    say(r, "loaded %s: %s, %d layers, hidden %d, vocab %d, %s attention", dir, c->model_type, c->L, c->C, c->V,
        c->mla ? "MLA" : c->NKV == c->NH ? "multi-head" : "grouped-query");
    if (c->E && c->mla) say(r, ", %d routed experts top-%d", c->E, c->K);
    else say(r, ", dense FFN");
    if (r->tok) say(r, "; tokenizer %d ids\n", tokenizer_n_ids(r->tok));
    else say(r, "; no tokenizer (%s)\n", r->tok_note);
    return 0;
}

/* ---- completion ---- */

static const char *const KEYWORDS[] = {"head", "expert", "off", "temperature", "top_k", "top_p", "seed", "attn", "colour",
                                       "cmap", "backend", "naive", "absorb", "auto", "none", "256", "truecolor",
                                       "viridis", "magma", "cividis", "ref", "cpu", "cuda", "cuda-fast"};

void repl_each_word(const Repl *r, void (*fn)(void *ctx, const char *word), void *ctx) {
    for (size_t i = 0; i < sizeof KEYWORDS / sizeof KEYWORDS[0]; i++) fn(ctx, KEYWORDS[i]);
    for (size_t i = 0; i < r->cache.n; i++) fn(ctx, r->cache.items[i].name);
    if (r->loaded)
        for (size_t i = 0; i < r->model.n_params; i++) fn(ctx, r->model.params[i].name);
}
