/* fuzz_repl.c: fuzz target for the REPL's line handler (viz/repl.h: repl_init, repl_load,
 * repl_handle_line), the commands of `seek repl`.
 *
 * Once per process the target makes a small model of tiny-models/seek-r1-base's architecture (the
 * smallest shipped model with a tokenizer: DeepSeek-V3 layout, MLA, 8 routed experts in 4 groups,
 * a dense first layer, MTP, vocabulary 320, 192 positions; $SEEK_FUZZ_REPL_MODEL names another
 * folder; paths are relative to the repository root): its config.json with the widths cut to 4 a
 * head (hidden size 16; the layers, heads, experts, vocabulary, positions, latent width and every
 * other field kept), seeded weights, and its tokenizer files, saved in the target's private folder
 * (fuzz_util.h) and loaded with repl_load into a template REPL. The commands take the same paths
 * as on the shipped model (their views come from the same layers, heads, experts, latent width and
 * vocabulary), while a forward does about a thirtieth of the multiply-adds: with seek-r1-base's
 * own widths the model's runs were nine tenths of the target's time. $SEEK_FUZZ_REPL_AS_IS=1
 * loads the folder itself instead. Each input gets a fresh Repl (repl_init) that borrows the
 * template's model and tokenizer, so inputs are independent: nothing of one input's sequence,
 * captured run, cursor, settings, ablations or picture reaches the next. The input is split on
 * '\n' and its first 64 lines are handed to repl_handle_line one by one, results to a memory
 * stream, errors to another; a line resolving to `quit` ends the input, as in `seek repl`.
 *
 * Screen: a line is skipped (not run) when its command word, resolved as the REPL does (aliases,
 * then the exact name, then a unique prefix), is
 *   - png (writes a file at a path from the input) or load (reads any folder and replaces the
 *     shared model);
 *   - group or update: sampling a GRPO group takes over a second in a release build (8 answers
 *     of up to 48 tokens), several under ASan, and update works on a group (and is the one command
 *     that changes the model); `tokens` still runs (and refuses: no group);
 *   - a command that would run the model long: gen N taking the input's generated tokens past 8
 *     or the sequence past 64 tokens (a decode step a token, then the whole sequence again with
 *     every stage captured: on seek-r1-base's widths gen 8 took half a second under ASan), ids
 *     with 49 to 192 ids, prompt with more than 64 bytes of text, and any command that runs the
 *     model (ids, prompt, gen, compare, ablate, set attn, set backend) after the first 6 of the
 *     input. What the REPL refuses before running anything still runs: ids with more than the
 *     model's 192 positions, gen past them, counts that are not numbers;
 *   - set backend cuda (a GPU where there is one; CUDA is not built into the libFuzzer build).
 * Everything else runs: help, prompt, ids, step, back, goto, where, stages, show, attn, route,
 * path, latent, top, gen, ablate, compare (ref against cpu), set (every other key and value),
 * tokens, quit, comments, blank lines, NUL bytes and unknown commands.
 * Besides the sanitizers, the target checks:
 *   - every line on the error stream is one "error: ..." line with no control byte, and there is
 *     exactly one such line for each error the REPL counted (n_errors);
 *   - the result stream holds no ESC byte unless a `set colour`/`set color` line ran (the REPL
 *     escapes token text and input it echoes);
 *   - no command changes the model's parameters (the only one that may, update, is screened).
 * A failed check aborts, so libFuzzer (make fuzz) and the replay driver (tests/fuzz/replay.c, run
 * by tests/cli_fuzz.sh) both report it.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "fuzz_util.h"
#include "model.h"
#include "repl.h"
#include "safetensors.h"
#include "tokenizer.h"
#include "train_parts.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_LINES 64
#define MAX_GEN 8           /* tokens generated per input */
#define MAX_IDS 48          /* ids run with at most this many ids (or more than the positions: refused) */
#define MAX_SEQ 64          /* gen runs while the sequence stays at most this long */
#define MAX_PROMPT 64       /* bytes of prompt text */
#define MAX_RUNS 6          /* commands that run the model, per input */

static Repl tmpl;          /* the template: the loaded model and tokenizer */
static float *pristine;    /* its parameters as loaded */

/* The widths of the target's model: 4 per attention head (hidden_size 16 for seek-r1-base's 4
 * heads), every other field of the folder's config.json as it is, kv_lora_rank included: the
 * `latent` view draws that many columns, and 64 of them are too wide for the 120 columns the REPL
 * gets (not a terminal), so the view takes the path that bins columns, as with seek-r1-base. */
static const struct {
    const char *key;
    int value; /* 0: 4 per head */
} SMALL[] = {{"hidden_size", 0},      {"intermediate_size", 32}, {"moe_intermediate_size", 8},
             {"q_lora_rank", 8},      {"qk_nope_head_dim", 4},   {"qk_rope_head_dim", 4},
             {"v_head_dim", 4},       {"head_dim", 4}};

static void die(const char *what, const SeekErr *e) {
    fprintf(stderr, "fuzz_repl: %s: %s\n", what, e->msg);
    exit(2);
}

/* SRC's architecture made small: its config.json with the SMALL widths (a key the config has, and
 * not null), seeded weights, saved with SRC's tokenizer files as a model folder in the target's
 * private folder, whose path goes to out. */
static void make_small(const char *src, char *out, size_t cap) {
    char path[4096], dir[4096];
    SeekErr e;
    fuzz_path(path, sizeof path, src, "config.json");
    json_error_t je;
    json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
    if (!root) {
        fprintf(stderr, "fuzz_repl: %s: %s (run from the repository root)\n", path, je.text);
        exit(2);
    }
    const json_t *heads = json_object_get(root, "num_attention_heads");
    json_int_t per_head = json_is_integer(heads) && json_integer_value(heads) > 0 ? json_integer_value(heads) : 4;
    for (size_t i = 0; i < sizeof SMALL / sizeof SMALL[0]; i++) {
        const json_t *v = json_object_get(root, SMALL[i].key);
        if (v && !json_is_null(v))
            json_object_set_new(root, SMALL[i].key, json_integer(SMALL[i].value ? SMALL[i].value : 4 * per_head));
    }
    char *text = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(root);
    CHECK(text != NULL);
    /* DIR/src: the small config.json beside copies of the tokenizer files */
    fuzz_path(dir, sizeof dir, fuzz_tmpdir(), "src");
    CHECK(mkdir(dir, 0700) == 0);
    fuzz_path(path, sizeof path, dir, "config.json");
    fuzz_write(path, text, strlen(text));
    static const char *const tok_files[] = {"tokenizer.json", "tokenizer_config.json"};
    for (size_t i = 0; i < sizeof tok_files / sizeof tok_files[0]; i++) {
        char from[4096], to[4096];
        fuzz_path(from, sizeof from, src, tok_files[i]);
        fuzz_path(to, sizeof to, dir, tok_files[i]);
        if (access(from, F_OK) == 0 && copy_file_atomic(from, to, &e)) die("copying the tokenizer", &e);
    }
    Config cfg;
    Model m;
    if (config_parse(&cfg, text, strlen(text), path, &e)) die("the small config", &e);
    free(text);
    if (model_init(&m, &cfg, &e)) die("the small model", &e);
    /* transformers' initialisation (init.c), and a balancing bias that is not all zeros */
    model_init_weights(&m, 23, 0.15f);
    Rng rng;
    rng_seed(&rng, 29);
    for (size_t i = 0; i < m.n_params; i++)
        if (strstr(m.params[i].name, "e_score_correction_bias"))
            for (size_t k = 0; k < m.params[i].numel; k++) m.params[i].ptr[k] = 0.1f * rng_normal(&rng);
    fuzz_path(out, cap, fuzz_tmpdir(), "model");
    if (model_save(&m, dir, out, ST_BF16, &e)) die("saving the small model", &e);
    model_free(&m);
}

static void setup(void) {
    const char *src = getenv("SEEK_FUZZ_REPL_MODEL");
    if (!src) src = "tiny-models/seek-r1-base";
    char dir[4096];
    if (getenv("SEEK_FUZZ_REPL_AS_IS")) snprintf(dir, sizeof dir, "%s", src);
    else make_small(src, dir, sizeof dir);
    FILE *null = fopen("/dev/null", "w");
    CHECK(null != NULL);
    repl_init(&tmpl, null, null);
    SeekErr e;
    if (repl_load(&tmpl, dir, &e)) die("loading the model (run from the repository root)", &e);
    pristine = malloc(tmpl.model.n_floats * sizeof(float));
    CHECK(pristine != NULL);
    memcpy(pristine, tmpl.model.arena, tmpl.model.n_floats * sizeof(float));
}

/* The command a line resolves to, as repl_handle_line resolves it (NULL: none, or not a command
 * line); argv gets the words after it (at most cap), *argc their number, *rest the text after it. */
static const char *resolve(char *buf, char **argv, int cap, int *argc, const char **rest) {
    size_t len = strlen(buf);
    while (len && (buf[len - 1] == '\n' || buf[len - 1] == '\r' || buf[len - 1] == ' ' || buf[len - 1] == '\t'))
        buf[--len] = '\0';
    char *p = buf;
    while (*p == ' ' || *p == '\t') p++;
    if (*p == '\0' || *p == '#') return NULL;
    char *word = p;
    while (*p && *p != ' ' && *p != '\t') p++;
    if (*p) *p++ = '\0';
    while (*p == ' ' || *p == '\t') p++;
    *rest = p;
    *argc = 0;
    while (*p) {
        char *a = p;
        while (*p && *p != ' ' && *p != '\t') p++;
        if (*p) *p++ = '\0';
        while (*p == ' ' || *p == '\t') p++;
        if (*argc < cap) argv[*argc] = a;
        (*argc)++;
    }
    static const char *const alias[][2] = {{"s", "step"}, {"b", "back"}, {"q", "quit"},
                                           {"exit", "quit"}, {"?", "help"}, {"h", "help"}};
    for (size_t i = 0; i < sizeof alias / sizeof alias[0]; i++)
        if (!strcmp(word, alias[i][0])) word = (char *)alias[i][1];
    const char *hit = NULL;
    int n = 0;
    for (int i = 0; repl_command_name(i); i++) {
        const char *c = repl_command_name(i);
        if (!strcmp(c, word)) return c;
        if (!strncmp(c, word, strlen(word))) {
            hit = c;
            n++;
        }
    }
    return n == 1 ? hit : NULL;
}

/* 1 when the line runs, 0 when the screen skips it; *colour when it is a `set colour` line,
 * *quit when it is `quit`; *runs counts the lines that run the model, *gen the tokens generated. */
static int screen(const Repl *r, const char *line, size_t len, int *colour, int *quit, int *runs, long long *gen) {
    if (len > REPL_MAX_LINE || memchr(line, '\0', len)) return 1; /* refused before parsing */
    char *buf = malloc(len + 1);
    CHECK(buf != NULL);
    memcpy(buf, line, len);
    buf[len] = '\0';
    char *argv[4];
    int argc;
    const char *rest = "";
    const char *c = resolve(buf, argv, 4, &argc, &rest);
    int run = 1;
    if (c) {
        if (!strcmp(c, "png") || !strcmp(c, "load") || !strcmp(c, "group") || !strcmp(c, "update")) run = 0;
        else if (!strcmp(c, "gen") && argc >= 1) {
            char *end;
            long long n = strtoll(argv[0], &end, 10);
            int refused = n > (long long)r->model.cfg.max_pos - r->T; /* past the positions: refused at once */
            if (end != argv[0] && *end == '\0' && !refused && n >= 1) {
                if (*gen + n > MAX_GEN || r->T + n > MAX_SEQ) run = 0;
                else *gen += n;
            }
        } else if (!strcmp(c, "ids") && argc > MAX_IDS && argc <= r->model.cfg.max_pos) run = 0;
        else if (!strcmp(c, "prompt") && strlen(rest) > MAX_PROMPT) run = 0;
        else if (!strcmp(c, "set") && argc >= 2 && !strcmp(argv[0], "backend") && !strcmp(argv[1], "cuda")) run = 0;
        int heavy = !strcmp(c, "ids") || !strcmp(c, "prompt") || !strcmp(c, "gen") || !strcmp(c, "compare") ||
                    !strcmp(c, "ablate") ||
                    (!strcmp(c, "set") && argc >= 1 && (!strcmp(argv[0], "attn") || !strcmp(argv[0], "backend")));
        if (run && heavy && ++*runs > MAX_RUNS) run = 0;
        if (run && !strcmp(c, "set") && argc >= 1 && (!strcmp(argv[0], "colour") || !strcmp(argv[0], "color")))
            *colour = 1;
        if (run && !strcmp(c, "quit") && argc == 0) *quit = 1;
    }
    free(buf);
    return run;
}

/* Every line of the error stream: "error: " and no control byte; one per counted error. */
static void check_errors(const char *s, size_t n, int n_errors) {
    int lines = 0;
    for (size_t i = 0; i < n;) {
        const char *nl = memchr(s + i, '\n', n - i);
        CHECK(nl != NULL); /* every error ends its line */
        size_t len = (size_t)(nl - (s + i));
        CHECK(len >= 7 && !memcmp(s + i, "error: ", 7));
        for (size_t k = 0; k < len; k++) CHECK((unsigned char)s[i + k] >= 0x20 && s[i + k] != 0x7f);
        lines++;
        i += len + 1;
    }
    CHECK(lines == n_errors);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!pristine) setup();
    char *obuf = NULL, *ebuf = NULL;
    size_t olen = 0, elen = 0;
    FILE *out = open_memstream(&obuf, &olen), *err = open_memstream(&ebuf, &elen);
    CHECK(out && err);
    Repl r;
    repl_init(&r, out, err);
    /* borrow the template's model and tokenizer */
    r.model = tmpl.model;
    r.loaded = 1;
    r.tok = tmpl.tok;
    snprintf(r.dir, sizeof r.dir, "%s", tmpl.dir);
    snprintf(r.tok_note, sizeof r.tok_note, "%s", tmpl.tok_note);

    int colour = 0, quit = 0, ran = 0, runs = 0;
    long long gen = 0;
    const char *p = (const char *)data, *end = p + size;
    for (int k = 0; k < MAX_LINES && p < end && !quit; k++) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
        if (screen(&r, p, len, &colour, &quit, &runs, &gen)) {
            ReplStatus st = repl_handle_line(&r, p, len);
            CHECK(st == (quit ? REPL_QUIT : REPL_CONTINUE));
            ran++;
        }
        p += len + (nl != NULL);
    }
    int n_errors = r.n_errors;
    /* give the borrowed model and tokenizer back before freeing the rest */
    CHECK(r.model.arena == tmpl.model.arena && r.tok == tmpl.tok);
    r.loaded = 0;
    r.tok = NULL;
    repl_free(&r);
    fclose(out);
    fclose(err);
    fuzz_note("%d lines run, %d errors", ran, n_errors);
    check_errors(ebuf, elen, n_errors);
    if (!colour) CHECK(memchr(obuf, 0x1b, olen) == NULL);
    CHECK(memcmp(tmpl.model.arena, pristine, tmpl.model.n_floats * sizeof(float)) == 0);
    free(obuf);
    free(ebuf);
    return 0;
}
