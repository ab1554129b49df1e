/* cmd_tokenize.c: `seek tokenize`, `seek detokenize`, `seek bpe-train`, `seek tokenize-corpus`.
 *
 *   seek tokenize [DIR] [--tokenizer FILE] (--text "..." | --file F) [--lines] [--bos] [--strings]
 *       prints the ids separated by spaces; with --lines, one output line per input line (the
 *       newline itself not encoded). FILE is a tokenizer.json or a folder holding one; without it
 *       the model folder DIR's (a run folder: its latest checkpoint's), or the default model's
 *       (model_dir_or_default). F may be "-" for standard input. --bos puts the BOS id first
 *       (each line's, with --lines). --strings, and any output to a terminal, shows each token's
 *       text beside its id as the REPL does, 325'And' 438' God' (escaped; UTF-8 kept).
 *   seek detokenize [DIR] [--tokenizer FILE] --ids "1 2 3"
 *       prints the text (the decoded bytes exactly, then a newline).
 *   seek bpe-train --corpus F --vocab N [--special TOK]... [--no-default-special] [--split-digits]
 *                  -o tokenizer.json
 *       trains byte-level BPE; writes tokenizer.json and tokenizer_config.json beside it.
 *       --split-digits makes every digit its own pre-token (Digits, individual_digits), so numbers
 *       are one token per digit.
 *   seek tokenize-corpus --tokenizer FILE --corpus F -o tokens.bin [--bos]
 *       writes a token file (header: magic, version, vocab size, dtype; see ref/tokenizer.h).
 *
 * Program tier: errors are one line on stderr starting with "seek <command>: "; exit status 0
 * ok, 1 bad input or failure, 2 usage.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "commands.h"
#include "common.h"
#include "term.h"
#include "tokenizer.h"

#define MAX_INPUT_BYTES ((size_t)4 << 30)

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Reads a whole file, or standard input for "-". */
static int read_input(const char *path, char **out, size_t *n, SeekErr *err) {
    if (strcmp(path, "-")) return read_text_file(path, MAX_INPUT_BYTES, out, n, err);
    TokBytes b = {0};
    char buf[1 << 16];
    size_t r;
    while ((r = fread(buf, 1, sizeof buf, stdin)) > 0)
        if (tokbytes_append(&b, buf, r, err)) { free(b.data); return -1; }
    if (ferror(stdin)) { free(b.data); return seek_fail(err, "standard input: read error"); }
    if (tokbytes_append(&b, "", 0, err)) { free(b.data); return -1; }
    *out = (char *)b.data;
    *n = b.n;
    return 0;
}

/* Progress: a bar on a terminal, one plain line per 10% otherwise (on stderr). */
typedef struct { const char *what; int last; bool tty; double t0; } Progress;

static void progress_cb(void *ctx, size_t done, size_t total) {
    Progress *p = ctx;
    int pct = total ? (int)((double)done * 100.0 / (double)total) : 100;
    if (pct > 100) pct = 100;
    if (p->tty) {
        if (pct == p->last) return;
        int w = 40, fill = pct * w / 100;
        fprintf(stderr, "\r%s [", p->what);
        for (int i = 0; i < w; i++) fputc(i < fill ? '#' : '.', stderr);
        fprintf(stderr, "] %3d%% %.1fs", pct, now_s() - p->t0);
        if (pct == 100) fputc('\n', stderr);
    } else {
        if (pct / 10 == p->last / 10 && p->last >= 0) return;
        fprintf(stderr, "%s: %d%% (%.1fs)\n", p->what, pct / 10 * 10, now_s() - p->t0);
    }
    p->last = pct;
    fflush(stderr);
}

static int flush_stdout(const char *cmd) {
    if (fflush(stdout) != 0 || ferror(stdout)) {
        if (errno == EPIPE) return 0;
        fprintf(stderr, "seek %s: cannot write the output: %s\n", cmd, strerror(errno));
        return 1;
    }
    return 0;
}

static void print_ids(const Tokenizer *t, const int32_t *ids, size_t n, bool strings) {
    for (size_t i = 0; i < n; i++) {
        printf(i ? " %d" : "%d", ids[i]);
        if (!strings) continue;
        size_t len = 0;
        const uint8_t *b = tokenizer_token_bytes(t, ids[i], &len);
        char esc[256];
        escape_bytes(esc, sizeof esc, b ? b : (const uint8_t *)"", b ? len : 0, 1);
        printf("'%s'", esc);
    }
    putchar('\n');
}

/* The tokenizer a command uses: --tokenizer FILE when given, else the model folder dir's (a run
 * folder: its latest checkpoint's), else the default model's. Writes the path into buf. */
static int tokenizer_path(const char *cmd, const char *tok_path, const char *dir, char *buf, size_t cap, const char **out) {
    SeekErr err;
    if (tok_path && dir) {
        fprintf(stderr, "seek %s: give a model folder or --tokenizer, not both ('%s' and --tokenizer %s)\n", cmd, dir, tok_path);
        return 2;
    }
    if (tok_path) {
        *out = tok_path;
        return 0;
    }
    char dbuf[4096];
    if (model_dir_or_default(&dir, dbuf, sizeof dbuf, &err) || model_resolve_dir(dir, buf, cap, &err)) return cli_fail(cmd, err.msg);
    *out = buf;
    return 0;
}

/* Flag parsing shared by the four commands: --name VALUE pairs and bare switches. */
static const char *take(int argc, char **argv, int *i, const char *cmd) {
    if (*i + 1 >= argc) {
        fprintf(stderr, "seek %s: %s needs a value (see 'seek %s --help')\n", cmd, argv[*i], cmd);
        return NULL;
    }
    return argv[++*i];
}

int cmd_tokenize(int argc, char **argv) {
    const char *tok_path = NULL, *text = NULL, *file = NULL, *dir = NULL;
    bool lines = false, bos = false, strings = isatty(STDOUT_FILENO);
    for (int i = 1; i < argc; i++) {
        const char **dst = NULL;
        if (!strcmp(argv[i], "--tokenizer")) dst = &tok_path;
        else if (!strcmp(argv[i], "--text")) dst = &text;
        else if (!strcmp(argv[i], "--file")) dst = &file;
        else if (!strcmp(argv[i], "--lines")) { lines = true; continue; }
        else if (!strcmp(argv[i], "--bos")) { bos = true; continue; }
        else if (!strcmp(argv[i], "--strings")) { strings = true; continue; }
        else if (argv[i][0] == '-') return cli_bad_option("tokenize", argv[i]);
        else if (!dir) { dir = argv[i]; continue; }
        else {
            fprintf(stderr, "seek tokenize: unexpected argument '%s' (one model folder at most; see 'seek tokenize --help')\n", argv[i]);
            return 2;
        }
        if (!(*dst = take(argc, argv, &i, "tokenize"))) return 2;
    }
    if ((!text) == (!file)) {
        fprintf(stderr, "seek tokenize: usage: seek tokenize [DIR] [--tokenizer FILE] (--text \"...\" | --file F) [--lines] [--bos] [--strings]\n");
        return 2;
    }
    char tbuf[4096];
    int prc = tokenizer_path("tokenize", tok_path, dir, tbuf, sizeof tbuf, &tok_path);
    if (prc) return prc;
    SeekErr err = {{0}};
    Tokenizer *t = NULL;
    char *buf = NULL;
    size_t n = 0;
    if (tokenizer_load(&t, tok_path, &err)) {
        cli_fail("tokenize", err.msg);
        return 1;
    }
    if (file) {
        if (read_input(file, &buf, &n, &err)) {
            cli_fail("tokenize", err.msg);
            tokenizer_free(t);
            return 1;
        }
    } else {
        n = strlen(text);
    }
    const char *s = file ? buf : text;
    TokIds ids = {0};
    int rc = 0;
    if (lines) {
        size_t start = 0;
        while (start < n) {
            const char *nl = memchr(s + start, '\n', n - start);
            size_t end = nl ? (size_t)(nl - s) : n;
            ids.n = 0;
            if (tokenizer_encode(t, s + start, end - start, bos, &ids, &err)) { rc = 1; break; }
            print_ids(t, ids.ids, ids.n, strings);
            start = end + 1;
        }
    } else if (tokenizer_encode(t, s, n, bos, &ids, &err)) rc = 1;
    else print_ids(t, ids.ids, ids.n, strings);
    if (rc) cli_fail("tokenize", err.msg);
    else rc = flush_stdout("tokenize");
    free(ids.ids);
    free(buf);
    tokenizer_free(t);
    return rc;
}

/* Ids separated by spaces, commas or newlines; each must be an integer in [0, n_ids). */
static int parse_ids(const char *s, int32_t n_ids, TokIds *out, SeekErr *err) {
    const char *p = s;
    for (;;) {
        while (*p == ' ' || *p == ',' || *p == '\n' || *p == '\t' || *p == '\r') p++;
        if (!*p) return 0;
        const char *q = p;
        while (*q && !strchr(" ,\n\t\r", *q)) q++;
        char tokbuf[32];
        size_t l = (size_t)(q - p);
        if (l >= sizeof tokbuf) return seek_fail(err, "--ids: '%.20s...' is not a token id", p);
        memcpy(tokbuf, p, l);
        tokbuf[l] = 0;
        long long v;
        if (parse_i64(tokbuf, 0, (long long)n_ids - 1, &v, "--ids", err)) return -1;
        if (tokids_push(out, (int32_t)v, err)) return -1;
        p = q;
    }
}

int cmd_detokenize(int argc, char **argv) {
    const char *tok_path = NULL, *ids_s = NULL, *dir = NULL;
    for (int i = 1; i < argc; i++) {
        const char **dst = NULL;
        if (!strcmp(argv[i], "--tokenizer")) dst = &tok_path;
        else if (!strcmp(argv[i], "--ids")) dst = &ids_s;
        else if (argv[i][0] == '-') return cli_bad_option("detokenize", argv[i]);
        else if (!dir) { dir = argv[i]; continue; }
        else {
            fprintf(stderr, "seek detokenize: unexpected argument '%s' (one model folder at most; see 'seek detokenize --help')\n", argv[i]);
            return 2;
        }
        if (!(*dst = take(argc, argv, &i, "detokenize"))) return 2;
    }
    if (!ids_s) {
        fprintf(stderr, "seek detokenize: usage: seek detokenize [DIR] [--tokenizer FILE] --ids \"1 2 3\"\n");
        return 2;
    }
    char tbuf[4096];
    int prc = tokenizer_path("detokenize", tok_path, dir, tbuf, sizeof tbuf, &tok_path);
    if (prc) return prc;
    SeekErr err = {{0}};
    Tokenizer *t = NULL;
    if (tokenizer_load(&t, tok_path, &err)) {
        cli_fail("detokenize", err.msg);
        return 1;
    }
    TokIds ids = {0};
    TokBytes out = {0};
    int rc = 0;
    if (parse_ids(ids_s, tokenizer_n_ids(t), &ids, &err) || tokenizer_decode(t, ids.ids, ids.n, &out, &err)) {
        cli_fail("detokenize", err.msg);
        rc = 1;
    } else {
        fwrite(out.data, 1, out.n, stdout);
        putchar('\n');
        rc = flush_stdout("detokenize");
    }
    free(ids.ids);
    free(out.data);
    tokenizer_free(t);
    return rc;
}

/* The special tokens of DeepSeek-V3 that tiny models' chat and reasoning formats use. The first
 * three are "special" (skipped by HF's skip_special_tokens); the others are ordinary added
 * tokens, as in DeepSeek-V3's own file. */
static const char *const DEFAULT_SPECIAL[] = {
    "<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>", "<｜▁pad▁｜>",
    "<｜User｜>", "<｜Assistant｜>", "<think>", "</think>",
};
#define N_DEFAULT_SPECIAL 7
#define N_DEFAULT_IS_SPECIAL 3
#define MAX_SPECIAL 256

int cmd_bpe_train(int argc, char **argv) {
    const char *corpus = NULL, *vocab_s = NULL, *out_path = NULL;
    const char *special[MAX_SPECIAL];
    bool is_special[MAX_SPECIAL];
    int n_extra = 0;
    const char *extra[MAX_SPECIAL];
    bool defaults = true, split_digits = false;
    const char *usage = "usage: seek bpe-train --corpus F --vocab N [--special TOK]... [--no-default-special] [--split-digits] -o tokenizer.json";
    for (int i = 1; i < argc; i++) {
        const char **dst = NULL;
        if (!strcmp(argv[i], "--corpus")) dst = &corpus;
        else if (!strcmp(argv[i], "--vocab")) dst = &vocab_s;
        else if (!strcmp(argv[i], "-o") || !strcmp(argv[i], "--out")) dst = &out_path;
        else if (!strcmp(argv[i], "--no-default-special")) { defaults = false; continue; }
        else if (!strcmp(argv[i], "--split-digits")) { split_digits = true; continue; }
        else if (!strcmp(argv[i], "--special")) {
            if (n_extra >= MAX_SPECIAL - N_DEFAULT_SPECIAL) { fprintf(stderr, "seek bpe-train: more than %d --special tokens\n", MAX_SPECIAL - N_DEFAULT_SPECIAL); return 2; }
            if (!(extra[n_extra] = take(argc, argv, &i, "bpe-train"))) return 2;
            n_extra++;
            continue;
        } else {
            return cli_bad_option("bpe-train", argv[i]);
        }
        if (!(*dst = take(argc, argv, &i, "bpe-train"))) return 2;
    }
    if (!corpus || !vocab_s || !out_path) { fprintf(stderr, "seek bpe-train: %s\n", usage); return 2; }
    SeekErr err = {{0}};
    long long vocab;
    if (parse_i64(vocab_s, 1, (long long)TOK_MAX_VOCAB, &vocab, "--vocab", &err)) {
        cli_fail("bpe-train", err.msg);
        return 2;
    }
    int ns = 0;
    if (defaults)
        for (int i = 0; i < N_DEFAULT_SPECIAL; i++) { special[ns] = DEFAULT_SPECIAL[i]; is_special[ns++] = i < N_DEFAULT_IS_SPECIAL; }
    for (int i = 0; i < n_extra; i++) { special[ns] = extra[i]; is_special[ns++] = true; }
    char *text = NULL;
    size_t n = 0;
    if (read_input(corpus, &text, &n, &err)) { cli_fail("bpe-train", err.msg); return 1; }
    BpeTrainConfig cfg = {.vocab_size = (int32_t)vocab, .special = special, .special_is_special = is_special, .n_special = ns,
                         .split_digits = split_digits};
    Progress pr = {"bpe-train merges", -1, isatty(2), now_s()};
    char *json = NULL;
    double t0 = now_s();
    int rc = 0;
    if (bpe_train(text, n, &cfg, &json, progress_cb, &pr, &err)) {
        cli_fail("bpe-train", err.msg);
        rc = 1;
        goto done;
    }
    if (write_file_atomic(out_path, json, strlen(json), &err)) { cli_fail("bpe-train", err.msg); rc = 1; goto done; }
    char cfgpath[4096], dir[4096];
    snprintf(dir, sizeof dir, "%s", out_path);
    char *slash = strrchr(dir, '/');
    if (slash) *slash = 0; else snprintf(dir, sizeof dir, ".");
    char *cj = bpe_train_config_json(&cfg);
    if (!cj || path_join(cfgpath, sizeof cfgpath, dir, "tokenizer_config.json", &err) ||
        write_file_atomic(cfgpath, cj, strlen(cj), &err)) {
        fprintf(stderr, "seek bpe-train: %s\n", cj ? err.msg : "out of memory");
        free(cj);
        rc = 1;
        goto done;
    }
    free(cj);
    Tokenizer *t = NULL;
    if (tokenizer_load(&t, out_path, &err)) { fprintf(stderr, "seek bpe-train: the written file does not load: %s\n", err.msg); rc = 1; goto done; }
    printf("wrote %s and %s: %d ids (%d added tokens, 256 bytes, %d merges) from %zu bytes in %.2f s\n",
           out_path, cfgpath, tokenizer_n_ids(t), tokenizer_n_added(t), tokenizer_n_merges(t), n, now_s() - t0);
    tokenizer_free(t);
    rc = flush_stdout("bpe-train");
done:
    free(json);
    free(text);
    return rc;
}

int cmd_tokenize_corpus(int argc, char **argv) {
    const char *tok_path = NULL, *corpus = NULL, *out_path = NULL;
    bool bos = false;
    const char *usage = "usage: seek tokenize-corpus --tokenizer FILE --corpus F -o tokens.bin [--bos]";
    for (int i = 1; i < argc; i++) {
        const char **dst = NULL;
        if (!strcmp(argv[i], "--tokenizer")) dst = &tok_path;
        else if (!strcmp(argv[i], "--corpus")) dst = &corpus;
        else if (!strcmp(argv[i], "-o") || !strcmp(argv[i], "--out")) dst = &out_path;
        else if (!strcmp(argv[i], "--bos")) { bos = true; continue; }
        else return cli_bad_option("tokenize-corpus", argv[i]);
        if (!(*dst = take(argc, argv, &i, "tokenize-corpus"))) return 2;
    }
    if (!tok_path || !corpus || !out_path) { fprintf(stderr, "seek tokenize-corpus: %s\n", usage); return 2; }
    SeekErr err = {{0}};
    Tokenizer *t = NULL;
    char *text = NULL;
    size_t n = 0;
    TokIds ids = {0};
    int rc = 1;
    if (tokenizer_load(&t, tok_path, &err) || read_input(corpus, &text, &n, &err)) goto fail;
    Progress pr = {"tokenize-corpus", -1, isatty(2), now_s()};
    double t0 = now_s();
    if (tokenizer_encode_progress(t, text, n, bos, &ids, progress_cb, &pr, &err)) goto fail;
    double dt = now_s() - t0;
    if (tokfile_write(out_path, ids.ids, ids.n, (uint32_t)tokenizer_n_ids(t), &err)) goto fail;
    printf("wrote %s: %zu tokens (uint%d, vocab %d) from %zu bytes, %.2f bytes/token, %.1f MB/s\n",
           out_path, ids.n, tokenizer_n_ids(t) <= 65536 ? 16 : 32, tokenizer_n_ids(t), n,
           ids.n ? (double)n / (double)ids.n : 0.0, dt > 0 ? (double)n / dt / 1e6 : 0.0);
    rc = flush_stdout("tokenize-corpus");
    goto done;
fail:
    cli_fail("tokenize-corpus", err.msg);
done:
    free(ids.ids);
    free(text);
    tokenizer_free(t);
    return rc;
}
