/* cmd_eval.c: `seek eval [DIR] (--text FILE | --data TOKENS.bin | --bytes FILE) [--seq-len T]
 *                        [--windows N] [--backend ref|cpu|cuda]`
 *
 * Held-out evaluation of a model folder. The text is encoded with the folder's tokenizer.json (no
 * BOS: the windows are cut from running text, as training cuts them), or a token file written by
 * `seek tokenize-corpus` is read as it is, or (--bytes) a file's raw bytes are the ids 0..255, as
 * `seek train`'s "data_format": "bytes" reads them; the stream is cut into consecutive, non-overlapping
 * windows of T tokens (default: max_position_embeddings, at most 128), the last partial window
 * dropped, at most N windows (default all). With --val-fraction F only the last floor(W·F) windows
 * (at least one) are used: exactly the validation windows `seek train --val-fraction F` held out of
 * the same token file and sequence length. Each window is one forward from position 0, exactly as
 * training's validation runs it (eval_main_loss), and its T − 1 next-token targets are scored.
 *
 * Prints the mean next-token loss over every scored token (in nats, summed in double) and its
 * perplexity, and, for a model with Multi-Token Prediction modules, for each depth k its loss and
 * top-1 accuracy on the token k + 1 ahead, and for depth 1 the acceptance rate of the drafted
 * second token: the share of positions i where the MTP module's greedy token for i + 2 (fed the
 * true token i + 1) equals the main model's own greedy token at position i + 1, which is what
 * self-speculative decoding would accept (DeepSeek-V3 §5.4.3 reports 85–90%).
 *
 * With --experts K (MoE models): what the routing learned. For every MoE layer, each routed
 * expert's share of the routed slots (uniform routing gives each 1/E), then its K most specific tokens: among tokens seen at least EXPERT_MIN_COUNT times, those
 * with the largest share of their occurrences routed to this expert (its "p(expert | token)"),
 * each shown decoded with that share and its count.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend.h"
#include "commands.h"
#include "forward.h"
#include "model.h"
#include "mtp.h"
#include "tokenizer.h"
#include "train.h"
#include "train_parts.h"
#include "term.h"

/* a token must be seen this often to be listed as specific to an expert */
#define EXPERT_MIN_COUNT 20

static int usage_eval(const char *msg) {
    fprintf(stderr, "seek eval: %s (usage: seek eval [DIR] (--text FILE | --data TOKENS.bin | --bytes FILE) [--seq-len T] [--windows N] [--experts K] [--backend ref|cpu|cuda])\n", msg);
    return 2;
}

/* greedy choice, exactly as generation makes it (sample_token at temperature 0: argmax, ties to
 * the lower id; it touches neither rng nor the scratch) */
static int greedy(const float *logits, int V) {
    static const SampleParams g = {0.0f, 0, 1.0f, 0};
    return sample_token(logits, V, &g, NULL, NULL, NULL);
}

/* The token stream: encoded text or a token file. */
static int load_stream(const char *dir, const char *text_path, const char *data_path, int raw_bytes, int V,
                       int32_t **toks, size_t *n, SeekErr *err) {
    if (data_path) {
        TokenData d;
        if (data_load(&d, data_path, raw_bytes, err)) return -1;
        for (size_t i = 0; i < d.n; i++)
            if (d.tokens[i] < 0 || d.tokens[i] >= V) {
                int bad = d.tokens[i];
                data_free(&d);
                return seek_fail(err, "%s: token id %d at index %zu is out of range [0, %d) (the model's vocab_size)", data_path,
                                 bad, i, V);
            }
        *toks = d.tokens;
        *n = d.n;
        d.tokens = NULL;
        data_free(&d);
        return 0;
    }
    char tpath[4096];
    if (path_join(tpath, sizeof tpath, dir, "tokenizer.json", err)) return -1;
    Tokenizer *tok = NULL;
    if (tokenizer_load(&tok, tpath, err)) return seek_fail_prefix(err, "--text needs the model's tokenizer");
    char *text = NULL;
    size_t len = 0;
    TokIds t = {0};
    int rc = read_text_file(text_path, (size_t)1 << 30, &text, &len, err);
    if (!rc) rc = tokenizer_encode(tok, text, len, false, &t, err);
    for (size_t i = 0; !rc && i < t.n; i++)
        if (t.ids[i] >= V) rc = seek_fail(err, "%s: the tokenizer gives id %d, beyond the model's vocab_size %d", tpath, t.ids[i], V);
    free(text);
    tokenizer_free(tok);
    if (rc) {
        free(t.ids);
        return -1;
    }
    *toks = t.ids;
    *n = t.n;
    return 0;
}

/* --experts: each MoE layer's expert shares and each expert's most specific tokens. */
static int print_experts(const Model *m, const char *dir, const int *xcount, const int *tcount, int X, SeekErr *err) {
    const Config *c = &m->cfg;
    char tpath[4096];
    Tokenizer *tok = NULL;
    if (!path_join(tpath, sizeof tpath, dir, "tokenizer.json", err) && access(tpath, R_OK) == 0 && tokenizer_load(&tok, tpath, err))
        return -1;
    int *best = malloc((size_t)X * sizeof(int));
    if (!best) return seek_fail(err, "out of memory");
    for (int l = 0; l < c->L; l++) {
        if (!m->layers[l].is_moe) continue;
        const int *xl = xcount + (size_t)l * c->E * c->V;
        long long total = 0;
        for (size_t i = 0; i < (size_t)c->E * c->V; i++) total += xl[i];
        printf("layer %d: %d routed experts, top-%d; share of the %lld routed slots (uniform %.1f%%) and the most specific tokens (seen >= %d times: share of their occurrences routed here)\n",
               l, c->E, c->K, total, 100.0 / c->E, EXPERT_MIN_COUNT);
        for (int e = 0; e < c->E; e++) {
            const int *xe = xl + (size_t)e * c->V;
            long long n_e = 0;
            for (int v = 0; v < c->V; v++) n_e += xe[v];
            int nb = 0;
            for (int v = 0; v < c->V; v++) { /* insertion into the X best by share, then count */
                if (tcount[v] < EXPERT_MIN_COUNT || xe[v] == 0) continue;
                double sv = (double)xe[v] / tcount[v];
                int pos = nb < X ? nb++ : X;
                while (pos > 0) {
                    int u = best[pos - 1];
                    double su = (double)xe[u] / tcount[u];
                    if (su > sv || (su == sv && xe[u] >= xe[v])) break;
                    if (pos < X) best[pos] = u;
                    pos--;
                }
                if (pos < X) best[pos] = v;
            }
            printf("  expert %2d %5.1f%% ", e, total ? 100.0 * (double)n_e / (double)total : 0.0);
            for (int i = 0; i < nb; i++) {
                char shown[64];
                size_t len = 0;
                const uint8_t *b = tok ? tokenizer_token_bytes(tok, best[i], &len) : NULL;
                if (b) escape_bytes(shown, sizeof shown, b, len, 1);
                else snprintf(shown, sizeof shown, "#%d", best[i]);
                printf(" '%s' %.0f%% (%d)", shown, 100.0 * xe[best[i]] / tcount[best[i]], tcount[best[i]]);
            }
            printf("\n");
        }
    }
    free(best);
    tokenizer_free(tok);
    return 0;
}

int cmd_eval(int argc, char **argv) {
    const char *dir = NULL, *text_path = NULL, *data_path = NULL, *bytes_path = NULL, *backend_s = NULL, *T_s = NULL,
               *W_s = NULL, *X_s = NULL, *F_s = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char **slot = !strcmp(a, "--text") ? &text_path : !strcmp(a, "--data") ? &data_path
                          : !strcmp(a, "--bytes") ? &bytes_path
                          : !strcmp(a, "--backend") ? &backend_s : !strcmp(a, "--seq-len") ? &T_s
                          : !strcmp(a, "--windows") ? &W_s : !strcmp(a, "--experts") ? &X_s
                          : !strcmp(a, "--val-fraction") ? &F_s : NULL;
        if (slot) {
            if (i + 1 >= argc) {
                fprintf(stderr, "seek eval: %s needs a value\n", a);
                return 2;
            }
            *slot = argv[++i];
        } else if (a[0] == '-') {
            return cli_bad_option("eval", a);
        } else if (!dir) dir = a;
        else {
            fprintf(stderr, "seek eval: unexpected argument '%s'\n", a);
            return 2;
        }
    }
    if ((text_path != NULL) + (data_path != NULL) + (bytes_path != NULL) != 1)
        return usage_eval("give exactly one of --text FILE, --data TOKENS.bin and --bytes FILE");
    const int raw_bytes = bytes_path != NULL;
    if (raw_bytes) data_path = bytes_path;
    SeekErr err;
    char dbuf[4096];
    if (model_dir_or_default(&dir, dbuf, sizeof dbuf, &err)) {
        cli_fail("eval", err.msg);
        return 1;
    }
    Backend be = backend_default();
    if (backend_s && backend_parse(backend_s, &be, &err)) {
        cli_fail("eval", err.msg);
        return 1;
    }
    Model m;
    if (model_load(&m, dir, &err)) {
        cli_fail("eval", err.msg);
        return 1;
    }
    char mdir[4096];
    if (model_resolve_dir(dir, mdir, sizeof mdir, &err)) {
        model_free(&m);
        cli_fail("eval", err.msg);
        return 1;
    }
    const Config *c = &m.cfg;
    long long T = c->max_pos < 128 ? c->max_pos : 128, W = 0;
    int rc = 0;
    if (T_s && parse_i64(T_s, 2, c->max_pos, &T, "--seq-len", &err)) rc = -1;
    if (!rc && W_s && parse_i64(W_s, 1, 1000000000LL, &W, "--windows", &err)) rc = -1;
    double F = 0;
    if (!rc && F_s) {
        if (parse_f64(F_s, 0.0, 1.0, &F, "--val-fraction", &err)) rc = -1;
        else if (!(F > 0.0 && F < 1.0)) rc = seek_fail(&err, "--val-fraction: %s is out of range (0, 1)", F_s);
    }
    long long X = 0;
    if (!rc && X_s && parse_i64(X_s, 1, 100, &X, "--experts", &err)) rc = -1;
    if (!rc && X && c->E == 0) rc = seek_fail(&err, "--experts: %s has no routed experts (model_type %s)", mdir, c->model_type);
    /* routing counts: (L, E, V) token-by-expert, (V) token occurrences */
    int *xcount = NULL, *tcount = NULL;
    if (!rc && X) {
        xcount = calloc((size_t)c->L * c->E * c->V, sizeof(int));
        tcount = calloc((size_t)c->V, sizeof(int));
        if (!xcount || !tcount) rc = seek_fail(&err, "out of memory");
    }
    int32_t *toks = NULL;
    size_t n = 0;
    if (!rc) rc = load_stream(mdir, text_path, data_path, raw_bytes, c->V, &toks, &n, &err);
    size_t n_win = rc ? 0 : n / (size_t)T;
    if (!rc && n_win == 0)
        rc = seek_fail(&err, "%s: %zu tokens, fewer than one window of --seq-len %lld", text_path ? text_path : data_path, n, T);
    size_t first = 0; /* the first window evaluated */
    if (!rc && F > 0.0) {
        size_t nv = (size_t)floor((double)n_win * F);
        if (nv < 1) nv = 1;
        first = n_win - nv;
        n_win = nv;
    }
    if (!rc && W && (size_t)W < n_win) n_win = (size_t)W;
    const int D = m.has_mtp ? c->mtp_depth : 0;
    TrainBuffers tb;
    int tb_ok = 0;
    if (!rc && (rc = trainbuf_init(&tb, c, 1, (int)T, D, &err)) == 0) tb_ok = 1;
    int *ids = rc ? NULL : malloc((size_t)T * sizeof(int));
    if (!rc && !ids) rc = seek_fail(&err, "out of memory");
    double sum = 0, mtp_sum[MAX_MTP_DEPTH] = {0};
    long long count = 0, mtp_count[MAX_MTP_DEPTH] = {0}, mtp_hit[MAX_MTP_DEPTH] = {0}, acc_n = 0, acc_hit = 0;
    for (size_t w = 0; !rc && w < n_win; w++) {
        for (int t = 0; t < T; t++) ids[t] = toks[(first + w) * (size_t)T + (size_t)t];
        double loss;
        if ((rc = eval_main_loss_on(be, &m, &tb, &(TrainBatch){.ids = ids}, &loss, &err))) break;
        sum += loss * (double)(T - 1); /* the window's mean over its T − 1 targets */
        count += T - 1;
        if (X) {
            for (int t = 0; t < T; t++) tcount[ids[t]]++;
            for (int l = 0; l < c->L; l++) {
                if (!m.layers[l].is_moe) continue;
                const int *e_idx = tb.s.layer[l].e_idx;
                for (int t = 0; t < T; t++)
                    for (int k = 0; k < c->K; k++) xcount[((size_t)l * c->E + e_idx[t * c->K + k]) * c->V + ids[t]]++;
            }
        }
        if (D == 0) continue;
        if ((rc = mtp_forward_on(be, &m, &tb.mtp, ids, NULL, tb.s.xnf, &err))) break;
        for (int k = 0; k < D; k++) {
            const MtpDepth *d = &tb.mtp.d[k];
            mtp_sum[k] += d->loss * (double)d->count;
            mtp_count[k] += d->count;
            for (int i = 0; i < d->T; i++) {
                if (d->targets[i] < 0) continue;
                int draft = greedy(d->logits + (size_t)i * c->V, c->V);
                mtp_hit[k] += draft == d->targets[i];
                if (k == 0) { /* the main model's own greedy token at position i + 1 */
                    acc_hit += draft == greedy(tb.g.logits + (size_t)(i + 1) * c->V, c->V);
                    acc_n++;
                }
            }
        }
    }
    if (!rc) {
        double L = sum / (double)count;
        printf("eval %s: %zu window(s) x %lld tokens, %lld targets, backend %s\n", mdir, n_win, T, count, backend_name(be));
        printf("loss %.6f  perplexity %.3f\n", L, exp(L));
        for (int k = 0; k < D; k++)
            printf("mtp depth %d: loss %.6f  top-1 accuracy %.4f on the token %d ahead\n", k + 1,
                   mtp_count[k] ? mtp_sum[k] / (double)mtp_count[k] : 0.0,
                   mtp_count[k] ? (double)mtp_hit[k] / (double)mtp_count[k] : 0.0, k + 2);
        if (D > 0)
            printf("mtp acceptance of the second token: %.4f (%lld of %lld drafts equal the main model's greedy token)\n",
                   acc_n ? (double)acc_hit / (double)acc_n : 0.0, acc_hit, acc_n);
    }
    if (!rc && X) rc = print_experts(&m, mdir, xcount, tcount, (int)X, &err);
    free(xcount);
    free(tcount);
    free(ids);
    free(toks);
    if (tb_ok) trainbuf_free(&tb);
    model_free(&m);
    if (rc) {
        cli_fail("eval", err.msg);
        return 1;
    }
    return 0;
}
