/* pairs.c: prompt/response pairs for supervised fine-tuning (pairs.h): the JSONL reader, the
 * targets rule (transformers' labels with -100 on the prompt and the padding, shifted) and the
 * loader that pads each example to its own row of T tokens.
 *
 * Reading. The file is read whole (read_text_file: fstat size check, pread, at most
 * PAIRS_MAX_FILE_BYTES) and cut at '\n'; each line is at most PAIRS_MAX_LINE_BYTES and is parsed
 * on its own by jansson (json_loadb with JSON_REJECT_DUPLICATES | JSON_DECODE_ANY: a duplicate key
 * is an error, and a line holding a bare string or number is reported as "not an object" rather
 * than as bad JSON). jansson refuses invalid UTF-8 and "\u0000" in strings. Every line is read,
 * checked and tokenized before the function returns, so a bad line 90,000 stops the run before
 * its first step. Text from the file that goes into a message (a key, jansson's "near '...'") has
 * its control bytes replaced by '?', so every message stays one line.
 *
 * Memory: the ids of all examples back to back (int32, grown by doubling with checked sizes),
 * three per-example arrays; the loader holds one order array (n_train). Nothing else is kept.
 *
 * Order. The same rule as data.c's loader (its functions are static there): epoch e's order is a
 * Fisher-Yates shuffle of 0..n_train−1 by an Rng seeded with seed + e · 0x9E3779B97F4A7C15, whose
 * draws are uniform by rejection, so any epoch is recomputed from (seed, e) alone and a restore
 * checks that recomputing reaches the saved Rng state.
 */
#include "pairs.h"

#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "jsonutil.h"
#include "train_parts.h"

/* ---- the targets rule ---- */

void sft_targets_row(int *targets, const int *ids, int P, int len, int T) {
    for (int t = 0; t < T; t++) targets[t] = (t + 1 >= P && t + 1 < len) ? ids[t + 1] : -1;
}

int sft_targets(int *targets, const int *ids, int B, int T, const int *prompt_len, const int *len, SeekErr *err) {
    if (B < 1 || T < 1) return seek_fail(err, "SFT targets: batch %d x %d tokens, expected at least 1 x 1", B, T);
    /* check every row before writing any */
    for (int b = 0; b < B; b++) {
        int P = prompt_len[b], n = len[b];
        if (n < 1 || n > T)
            return seek_fail(err, "sequence %d: length %d, expected 1..%d (the row length)", b, n, T);
        if (P < 0) return seek_fail(err, "sequence %d: prompt length %d is negative (expected 0..%d)", b, P, n - 1);
        if ((P > 1 ? P : 1) >= n)
            return seek_fail(err, "sequence %d: prompt length %d leaves nothing to predict in %d tokens (expected 0..%d)", b,
                             P, n, n - 2 > 0 ? n - 2 : 0);
    }
    for (int b = 0; b < B; b++)
        sft_targets_row(targets + (size_t)b * T, ids + (size_t)b * T, prompt_len[b], len[b], T);
    return 0;
}

/* ---- the reader ---- */

/* Copies text from the file into buf for a message: at most cap−4 bytes (then "..."), control
 * bytes as '?', and bytes >= 0x80 as '?' unless utf8 (valid UTF-8, cut only at a character start). */
static const char *printable(char *buf, size_t cap, const char *s, size_t n, int utf8) {
    size_t keep = n, o = 0;
    int cut = 0;
    if (keep > cap - 4) {
        keep = cap - 4;
        if (utf8)
            while (keep > 0 && ((unsigned char)s[keep] & 0xC0) == 0x80) keep--;
        cut = 1;
    }
    for (size_t i = 0; i < keep; i++) {
        unsigned char c = (unsigned char)s[i];
        buf[o++] = (c < 0x20 || c == 0x7f || (c >= 0x80 && !utf8)) ? '?' : (char)c;
    }
    if (cut) buf[o++] = '.', buf[o++] = '.', buf[o++] = '.';
    buf[o] = '\0';
    return buf;
}

/* Growable storage while reading. */
typedef struct {
    int32_t *ids;
    size_t n_ids, cap_ids;
    size_t *start, *line;
    int *P;
    size_t n, cap;
} Grow;

static int grow_ids(Grow *g, size_t need, const char *name, SeekErr *err) {
    if (need <= g->cap_ids) return 0;
    size_t cap = g->cap_ids ? g->cap_ids : 4096, bytes;
    while (cap < need)
        if (!ck_mul(cap, 2, &cap)) return seek_fail(err, "%s: too many tokens", name);
    if (!ck_mul(cap, sizeof(int32_t), &bytes)) return seek_fail(err, "%s: too many tokens", name);
    int32_t *p = realloc(g->ids, bytes);
    if (!p) return seek_fail(err, "%s: out of memory for %zu tokens", name, cap);
    g->ids = p;
    g->cap_ids = cap;
    return 0;
}

/* room for example n (and start[n + 1]) */
static int grow_examples(Grow *g, const char *name, SeekErr *err) {
    if (g->n + 1 < g->cap) return 0;
    size_t cap = g->cap ? 2 * g->cap : 256, b1, b2;
    if (!ck_mul(cap, sizeof(size_t), &b1) || !ck_mul(cap, sizeof(int), &b2))
        return seek_fail(err, "%s: too many examples", name);
    size_t *s = realloc(g->start, b1);
    if (s) g->start = s;
    size_t *l = realloc(g->line, b1);
    if (l) g->line = l;
    int *P = realloc(g->P, b2);
    if (P) g->P = P;
    if (!s || !l || !P) return seek_fail(err, "%s: out of memory for %zu examples", name, cap);
    g->cap = cap;
    return 0;
}

static int is_blank(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r') return 0;
    return 1;
}

#define EXPECTED_LINE "{\"prompt\": \"...\", \"response\": \"...\"}"

/* The string value of key in the object of line ln (one of "prompt", "response"). */
static int get_text(const json_t *root, const char *key, const char **s, size_t *n, const char *name, size_t ln,
                    SeekErr *err) {
    const json_t *v = json_object_get(root, key);
    if (!v) return seek_fail(err, "%s: line %zu: no \"%s\" (expected %s)", name, ln, key, EXPECTED_LINE);
    if (!json_is_string(v))
        return seek_fail(err, "%s: line %zu: \"%s\" is %s, expected a string", name, ln, key, json_type_word(v));
    *s = json_string_value(v);
    *n = json_string_length(v);
    return 0;
}

/* Parses, checks and tokenizes line ln (text[0..n), no '\n') into tk; *P gets the prompt length. */
static int read_line(const char *text, size_t n, size_t ln, const char *name, Tokenizer *tok, const PairOpts *o,
                     TokIds *tk, int *P, SeekErr *err) {
    char shown[128];
    json_error_t je;
    json_t *root = json_loadb(text, n, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &je);
    if (!root)
        return seek_fail(err, "%s: line %zu: not valid JSON: %s (column %d)", name, ln,
                         printable(shown, sizeof shown, je.text, strlen(je.text), 0), je.column);
    int rc = 0;
    if (!json_is_object(root)) {
        rc = seek_fail(err, "%s: line %zu: %s, expected an object %s", name, ln, json_type_word(root), EXPECTED_LINE);
        goto done;
    }
    const char *key;
    json_t *val;
    json_object_foreach(root, key, val) {
        if (strcmp(key, "prompt") && strcmp(key, "response") && strcmp(key, "id")) {
            rc = seek_fail(err, "%s: line %zu: unknown key \"%s\" (expected \"prompt\", \"response\" and, optionally, \"id\")",
                           name, ln, printable(shown, sizeof shown, key, strlen(key), 1));
            goto done;
        }
    }
    const char *ps, *rs;
    size_t pn, rn;
    if ((rc = get_text(root, "prompt", &ps, &pn, name, ln, err)) || (rc = get_text(root, "response", &rs, &rn, name, ln, err)))
        goto done;
    if (rn == 0) {
        rc = seek_fail(err, "%s: line %zu: \"response\" is empty (nothing to learn)", name, ln);
        goto done;
    }
    tk->n = 0;
    if (tokenizer_encode(tok, ps, pn, o->add_bos != 0, tk, err)) {
        rc = seek_fail_prefix(err, "%s: line %zu: prompt", name, ln);
        goto done;
    }
    size_t np = tk->n;
    if (tokenizer_encode(tok, rs, rn, false, tk, err)) {
        rc = seek_fail_prefix(err, "%s: line %zu: response", name, ln);
        goto done;
    }
    if (tk->n == np) {
        rc = seek_fail(err, "%s: line %zu: the response (%zu bytes) encodes to no tokens", name, ln, rn);
        goto done;
    }
    if (o->eos_id >= 0 && tokids_push(tk, o->eos_id, err)) {
        rc = seek_fail_prefix(err, "%s: line %zu", name, ln);
        goto done;
    }
    if (tk->n > (size_t)o->T) {
        rc = seek_fail(err, "%s: line %zu: prompt + response is %zu tokens (prompt %zu%s), longer than seq_len %d", name, ln,
                       tk->n, np,
                       o->add_bos && o->eos_id >= 0 ? ", BOS and EOS included" : o->add_bos ? ", BOS included"
                       : o->eos_id >= 0 ? ", EOS included" : "",
                       o->T);
        goto done;
    }
    /* np <= tk->n <= T fits an int */
    if ((np > 1 ? np : 1) >= tk->n) {
        rc = seek_fail(err, "%s: line %zu: nothing to predict: %zu tokens, the first %zu the prompt (each token is predicted "
                            "from the one before it)", name, ln, tk->n, np);
        goto done;
    }
    for (size_t i = 0; i < tk->n; i++)
        if (tk->ids[i] < 0 || tk->ids[i] >= o->vocab) {
            rc = seek_fail(err, "%s: line %zu: token id %d (position %zu, %s) is outside the model's vocabulary of %d", name, ln,
                           tk->ids[i], i, i < np ? "prompt" : "response", o->vocab);
            goto done;
        }
    *P = (int)np;
done:
    json_decref(root);
    return rc;
}

int pairs_parse(PairData *d, const char *text, size_t len, const char *name, Tokenizer *tok, const PairOpts *o,
                SeekErr *err) {
    memset(d, 0, sizeof *d);
    if (!name) name = "(pairs)";
    if (!tok) return seek_fail(err, "%s: no tokenizer to encode the pairs with", name);
    if (o->T < 2) return seek_fail(err, "%s: seq_len %d, expected at least 2", name, o->T);
    if (o->vocab < 1) return seek_fail(err, "%s: vocab size %d, expected a positive number", name, o->vocab);
    if (o->pad_id < 0 || o->pad_id >= o->vocab)
        return seek_fail(err, "%s: pad id %d is outside the model's vocabulary of %d", name, o->pad_id, o->vocab);
    if (o->eos_id < -1 || o->eos_id >= o->vocab)
        return seek_fail(err, "%s: eos id %d, expected -1 (none) or an id below the vocabulary of %d", name, o->eos_id, o->vocab);
    if (o->add_bos && tokenizer_bos_id(tok) < 0)
        return seek_fail(err, "%s: a BOS token is asked for but the tokenizer has none", name);

    Grow g = {0};
    TokIds tk = {0};
    int rc = grow_examples(&g, name, err);
    if (!rc) g.start[0] = 0;
    const char *p = text, *end = text + len;
    size_t ln = 0;
    while (!rc && p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
        ln++;
        if (n > PAIRS_MAX_LINE_BYTES)
            rc = seek_fail(err, "%s: line %zu: %zu bytes, longer than the limit of %zu for one example", name, ln, n,
                           PAIRS_MAX_LINE_BYTES);
        else if (!is_blank(p, n)) {
            int P = 0;
            if (!(rc = read_line(p, n, ln, name, tok, o, &tk, &P, err)) && !(rc = grow_examples(&g, name, err)) &&
                !(rc = grow_ids(&g, g.n_ids + tk.n, name, err))) {
                memcpy(g.ids + g.n_ids, tk.ids, tk.n * sizeof(int32_t));
                g.n_ids += tk.n;
                g.P[g.n] = P;
                g.line[g.n] = ln;
                g.start[++g.n] = g.n_ids;
                d->n_predicted += tk.n - (size_t)(P > 1 ? P : 1);
                if ((int)tk.n > d->longest) d->longest = (int)tk.n;
            }
        }
        p += n + (nl ? 1 : 0);
    }
    free(tk.ids);
    if (!rc && g.n == 0)
        rc = seek_fail(err, "%s: no examples (%s; expected one JSON object a line, %s)", name,
                       len == 0 ? "the file is empty" : "only blank lines", EXPECTED_LINE);
    if (!rc && !(d->path = strdup(name))) rc = seek_fail(err, "%s: out of memory", name);
    if (rc) {
        free(g.ids);
        free(g.start);
        free(g.line);
        free(g.P);
        memset(d, 0, sizeof *d);
        return -1;
    }
    d->ids = g.ids;
    d->start = g.start;
    d->line = g.line;
    d->prompt_len = g.P;
    d->n = g.n;
    d->n_tokens = g.n_ids;
    d->o = *o;
    return 0;
}

int pairs_load(PairData *d, const char *path, Tokenizer *tok, const PairOpts *o, SeekErr *err) {
    memset(d, 0, sizeof *d);
    char *text = NULL;
    size_t len = 0;
    if (read_text_file(path, PAIRS_MAX_FILE_BYTES, &text, &len, err)) return -1;
    int rc = pairs_parse(d, text, len, path, tok, o, err);
    free(text);
    return rc;
}

void pairs_free(PairData *d) {
    free(d->ids);
    free(d->start);
    free(d->line);
    free(d->prompt_len);
    free(d->path);
    memset(d, 0, sizeof *d);
}

/* ---- the loader ---- */

/* epochs are shuffled by data.c's epoch_order (train_parts.h), the windows' rule */

int pairs_loader_init(PairLoader *L, const PairData *d, double val_fraction, uint64_t seed, SeekErr *err) {
    memset(L, 0, sizeof *L);
    const char *name = d->path ? d->path : "(pairs)";
    if (!(val_fraction >= 0.0 && val_fraction < 1.0))
        return seek_fail(err, "%s: validation fraction %g, expected a number in [0, 1)", name, val_fraction);
    if (d->n < 2)
        return seek_fail(err, "%s: %zu example%s; need at least 2 (one to train on, one to validate)", name, d->n,
                         d->n == 1 ? "" : "s");
    double nv = floor((double)d->n * val_fraction);
    size_t n_val = nv < 1.0 ? 1 : (size_t)nv;
    if (n_val >= d->n) n_val = d->n - 1;   /* at least one training example */
    L->data = d;
    L->T = d->o.T;
    L->n_val = n_val;
    L->n_train = d->n - n_val;
    L->seed = seed;
    for (size_t i = 0; i < L->n_train; i++) {
        int P = d->prompt_len[i];
        L->n_predicted_train += d->start[i + 1] - d->start[i] - (size_t)(P > 1 ? P : 1);
    }
    L->order = malloc(L->n_train * sizeof *L->order);
    if (!L->order) return seek_fail(err, "%s: out of memory for %zu examples", name, L->n_train);
    epoch_order(L->order, L->n_train, seed, 0, &L->rng);
    return 0;
}

void pairs_loader_free(PairLoader *L) {
    free(L->order);
    memset(L, 0, sizeof *L);
}

/* Example e as one row: its tokens, then pad_id up to T; its targets by the rule. */
static void fill_row(const PairLoader *L, size_t e, int *ids, int *targets) {
    const PairData *d = L->data;
    const int32_t *src = d->ids + d->start[e];
    int len = (int)(d->start[e + 1] - d->start[e]);
    for (int t = 0; t < L->T; t++) ids[t] = t < len ? src[t] : d->o.pad_id;
    sft_targets_row(targets, ids, d->prompt_len[e], len, L->T);
}

void pairs_next(PairLoader *L, int B, int *ids, int *targets) {
    for (int b = 0; b < B; b++) {
        if (L->pos >= L->n_train) {   /* epoch end: the next epoch's order */
            L->epoch++;
            L->pos = 0;
            epoch_order(L->order, L->n_train, L->seed, L->epoch, &L->rng);
        }
        fill_row(L, L->order[L->pos++], ids + (size_t)b * L->T, targets + (size_t)b * L->T);
    }
}

void pairs_val(const PairLoader *L, size_t i, int *ids, int *targets) { fill_row(L, L->n_train + i, ids, targets); }

int pairs_restore(PairLoader *L, uint64_t epoch, size_t pos, uint64_t rng_state, SeekErr *err) {
    return epoch_restore(L->order, L->n_train, L->seed, &L->epoch, &L->pos, &L->rng, epoch, pos, rng_state,
                         L->data && L->data->path ? L->data->path : "(pairs)", "examples", "other data", err);
}
