/* grpo.c: GROUP.json and the GRPO group's batch (grpo.h). Library tier: one-line SeekErr. */
#include "grpo.h"

#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "jsonutil.h"
#include "pairs.h"

void grpo_group_free(GrpoGroup *g) {
    if (g->completions)
        for (int i = 0; i < g->G; i++) free(g->completions[i]);
    free(g->completions);
    free(g->len);
    free(g->prompt);
    free(g->rewards);
    free(g->ref);
    free(g->path);
    memset(g, 0, sizeof *g);
}

/* an array of token ids into a malloc'd int array; what names it in messages */
static int read_ids(const json_t *a, const char *name, const char *what, int vocab, int **out, int *n, SeekErr *err) {
    if (!json_is_array(a)) return seek_fail(err, "%s: %s is %s, expected an array of token ids", name, what, json_type_word(a));
    size_t k = json_array_size(a);
    if (k == 0) return seek_fail(err, "%s: %s is empty (expected at least one token id)", name, what);
    if (k > (1u << 20)) return seek_fail(err, "%s: %s has %zu ids (at most %u)", name, what, k, 1u << 20);
    int *ids = malloc(k * sizeof(int));
    if (!ids) return seek_fail(err, "%s: out of memory", name);
    for (size_t i = 0; i < k; i++) {
        const json_t *v = json_array_get(a, i);
        if (!json_is_integer(v)) {
            free(ids);
            return seek_fail(err, "%s: %s[%zu] is %s, expected a token id", name, what, i, json_type_word(v));
        }
        json_int_t id = json_integer_value(v);
        if (id < 0 || id >= vocab) {
            free(ids);
            return seek_fail(err, "%s: %s[%zu]: token id %lld is out of range [0, %d) (vocab_size)", name, what, i,
                             (long long)id, vocab);
        }
        ids[i] = (int)id;
    }
    *out = ids;
    *n = (int)k;
    return 0;
}

static int get_number(const json_t *root, const char *key, double lo, double hi, int lo_open, double *out, const char *name,
                      SeekErr *err) {
    const json_t *v = json_object_get(root, key);
    if (!v) return 0;
    if (!json_is_number(v)) return seek_fail(err, "%s: \"%s\" is %s, expected a number", name, key, json_type_word(v));
    double d = json_number_value(v);
    if (!isfinite(d) || d < lo || d > hi || (lo_open && d == lo))
        return seek_fail(err, "%s: \"%s\" = %g is out of range %s%g, %g]", name, key, d, lo_open ? "(" : "[", lo, hi);
    *out = d;
    return 0;
}

static int get_bool(const json_t *root, const char *key, int *out, const char *name, SeekErr *err) {
    const json_t *v = json_object_get(root, key);
    if (!v) return 0;
    if (!json_is_boolean(v)) return seek_fail(err, "%s: \"%s\" is %s, expected true or false", name, key, json_type_word(v));
    *out = json_is_true(v);
    return 0;
}

/* the message quotes the file (a key, jansson's context): keep it one printable line */
static void printable(SeekErr *err) {
    for (char *c = err ? err->msg : NULL; c && *c; c++)
        if ((unsigned char)*c < 0x20 || *c == 0x7f) *c = '?';
}

int grpo_group_parse(GrpoGroup *g, const char *text, size_t len, const char *path, int vocab, SeekErr *err) {
    memset(g, 0, sizeof *g);
    const char *name = path ? path : "(group)";
    json_error_t je;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    if (!root) {
        json_parse_fail(err, name, &je);
        printable(err);
        return -1;
    }
    int rc = 0;
    if (!json_is_object(root)) rc = seek_fail(err, "%s: %s, expected an object", name, json_type_word(root));
    static const char *known[] = {"prompt", "completions", "rewards", "beta", "clip", "ref", "scale_rewards", "length_norm"};
    const char *key;
    json_t *val;
    if (!rc)
        json_object_foreach(root, key, val) {
            size_t k = 0;
            while (k < sizeof known / sizeof known[0] && strcmp(known[k], key)) k++;
            if (k == sizeof known / sizeof known[0]) {
                rc = seek_fail(err, "%s: unknown key '%.64s' (expected prompt, completions, rewards, beta, clip, ref, "
                                    "scale_rewards, length_norm)", name, key);
                break;
            }
        }
    const json_t *jc = rc ? NULL : json_object_get(root, "completions"), *jr = rc ? NULL : json_object_get(root, "rewards");
    if (!rc && !json_object_get(root, "prompt")) rc = seek_fail(err, "%s: \"prompt\" is missing (the prompt's token ids)", name);
    if (!rc && !jc) rc = seek_fail(err, "%s: \"completions\" is missing (G lists of token ids)", name);
    if (!rc && !jr) rc = seek_fail(err, "%s: \"rewards\" is missing (one number a completion)", name);
    if (!rc && !json_is_array(jc)) rc = seek_fail(err, "%s: \"completions\" is %s, expected an array of id lists", name, json_type_word(jc));
    if (!rc && !json_is_array(jr)) rc = seek_fail(err, "%s: \"rewards\" is %s, expected an array of numbers", name, json_type_word(jr));
    if (!rc && json_array_size(jc) < 2)
        rc = seek_fail(err, "%s: \"completions\" has %zu completion(s); a group needs at least 2 (its statistics)", name,
                       json_array_size(jc));
    if (!rc && json_array_size(jc) > 4096) rc = seek_fail(err, "%s: \"completions\" has %zu completions (at most 4096)", name, json_array_size(jc));
    if (!rc && json_array_size(jr) != json_array_size(jc))
        rc = seek_fail(err, "%s: %zu rewards for %zu completions (expected one a completion)", name, json_array_size(jr),
                       json_array_size(jc));
    if (!rc) rc = read_ids(json_object_get(root, "prompt"), name, "\"prompt\"", vocab, &g->prompt, &g->P, err);
    if (!rc) {
        g->G = (int)json_array_size(jc);
        g->completions = calloc((size_t)g->G, sizeof(int *));
        g->len = calloc((size_t)g->G, sizeof(int));
        g->rewards = calloc((size_t)g->G, sizeof(double));
        if (!g->completions || !g->len || !g->rewards) rc = seek_fail(err, "%s: out of memory", name);
    }
    for (int i = 0; !rc && i < g->G; i++) {
        char what[48];
        snprintf(what, sizeof what, "\"completions\"[%d]", i);
        rc = read_ids(json_array_get(jc, (size_t)i), name, what, vocab, &g->completions[i], &g->len[i], err);
        if (!rc && (long long)g->P + g->len[i] > (1 << 20))
            rc = seek_fail(err, "%s: %s: prompt + completion is %lld tokens (at most %d)", name, what, (long long)g->P + g->len[i], 1 << 20);
        const json_t *r = json_array_get(jr, (size_t)i);
        if (!rc && !json_is_number(r)) rc = seek_fail(err, "%s: \"rewards\"[%d] is %s, expected a number", name, i, json_type_word(r));
        if (!rc && !(fabs(json_number_value(r)) <= GRPO_MAX_REWARD))
            rc = seek_fail(err, "%s: \"rewards\"[%d] = %g is out of range [-%g, %g]", name, i, json_number_value(r),
                           GRPO_MAX_REWARD, GRPO_MAX_REWARD);
        if (!rc) g->rewards[i] = json_number_value(r);
    }
    double beta = 0.04, clip = 0.2;
    g->scale_rewards = g->length_norm = 1;
    if (!rc) rc = get_number(root, "beta", 0, 1e6, 0, &beta, name, err);
    if (!rc) rc = get_number(root, "clip", 1e-6, 1, 0, &clip, name, err);
    if (!rc && clip >= 1) rc = seek_fail(err, "%s: \"clip\" = %g is out of range [1e-06, 1)", name, clip);
    if (!rc) rc = get_bool(root, "scale_rewards", &g->scale_rewards, name, err);
    if (!rc) rc = get_bool(root, "length_norm", &g->length_norm, name, err);
    g->beta = (float)beta;
    g->clip = (float)clip;
    const json_t *jref = rc ? NULL : json_object_get(root, "ref");
    if (jref) {
        if (!json_is_string(jref) || json_string_length(jref) == 0 || strlen(json_string_value(jref)) != json_string_length(jref))
            rc = seek_fail(err, "%s: \"ref\" is %s, expected a model folder's path", name, json_is_string(jref) ? "not a path" : json_type_word(jref));
        else {
            /* relative to the JSON file's folder */
            const char *r = json_string_value(jref);
            const char *slash = path ? strrchr(path, '/') : NULL;
            size_t dl = r[0] != '/' && slash ? (size_t)(slash - path) + 1 : 0, rl = strlen(r);
            if (dl + rl > 4000) rc = seek_fail(err, "%s: \"ref\" path too long", name);
            else if (!(g->ref = malloc(dl + rl + 1))) rc = seek_fail(err, "%s: out of memory", name);
            else {
                memcpy(g->ref, path, dl);
                memcpy(g->ref + dl, r, rl + 1);
            }
        }
    }
    if (!rc && path && !(g->path = strdup(path))) rc = seek_fail(err, "out of memory");
    json_decref(root);
    if (rc) {
        grpo_group_free(g);
        printable(err);
    }
    return rc;
}

int grpo_group_load(GrpoGroup *g, const char *path, int vocab, SeekErr *err) {
    char *text = NULL;
    size_t len = 0;
    memset(g, 0, sizeof *g);
    if (read_text_file(path, GRPO_MAX_FILE_BYTES, &text, &len, err)) return -1;
    int rc = grpo_group_parse(g, text, len, path, vocab, err);
    free(text);
    return rc;
}

void grpo_advantages(float *A, const double *r, int G, int scale_by_std) {
    double mean = 0, var = 0;
    for (int i = 0; i < G; i++) mean += r[i];
    mean /= G;
    for (int i = 0; i < G; i++) var += (r[i] - mean) * (r[i] - mean);
    double sd = G > 1 ? sqrt(var / (G - 1)) : 0.0; /* unbiased, as torch.std */
    for (int i = 0; i < G; i++) A[i] = (float)(scale_by_std ? (r[i] - mean) / (sd + 1e-4) : r[i] - mean);
}

int grpo_group_T(const GrpoGroup *g) {
    int mx = 0;
    for (int i = 0; i < g->G; i++) mx = g->len[i] > mx ? g->len[i] : mx;
    return g->P + mx;
}

int grpo_group_batch(const GrpoGroup *g, int pad_id, int *ids, int *targets, float *weights, float *adv, SeekErr *err) {
    const int T = grpo_group_T(g), G = g->G;
    float *A = malloc((size_t)G * sizeof(float));
    if (!A) return seek_fail(err, "grpo: out of memory");
    int count = 0, maxlen = T - g->P;
    for (int i = 0; i < G; i++) count += g->len[i];
    grpo_advantages(A, g->rewards, G, g->scale_rewards);
    for (int i = 0; i < G; i++) {
        int *row = ids + (size_t)i * T;
        memcpy(row, g->prompt, (size_t)g->P * sizeof(int));
        memcpy(row + g->P, g->completions[i], (size_t)g->len[i] * sizeof(int));
        for (int t = g->P + g->len[i]; t < T; t++) row[t] = pad_id;
        sft_targets_row(targets + (size_t)i * T, row, g->P, g->P + g->len[i], T);
        /* (1/count)·Σ w·ℓ = (1/G) Σ_i (1/|o_i| or 1/max|o|) Σ_t ℓ */
        const float w = (float)((double)count / ((double)G * (g->length_norm ? g->len[i] : maxlen)));
        for (int t = 0; t < T; t++) {
            weights[(size_t)i * T + t] = w;
            adv[(size_t)i * T + t] = A[i];
        }
    }
    free(A);
    return 0;
}
