/* fuzz_rllog.c: fuzz target for the reader of seek rl's log and the curves renderer (viz/rl_plot.h).
 *
 * The input is the log's bytes. Besides the sanitizers, the target checks:
 *   - an error is one line of printable text naming the file, and leaves the log empty;
 *   - an accepted log has a record; its series have distinct valid keys, increasing x in
 *     [-1, 10^15], values finite with magnitude at most 1e100 or NaN (counted as gaps), no more
 *     points than records of their kind (rl: the kept (step, update) records; eval: the `eval`
 *     lines, as RlLog counts eval steps, not records, and a step's eval lines with different
 *     updates are points of their own);
 *   - every series equals a naive oracle written from the rules in rl_plot.h: split the lines, read
 *     each `rl`/`eval` line's KEY=VALUE pairs with strtod, keep the last line of each (kind, step,
 *     update), and place a step's n kept lines at step - 1 + i/n by update (inputs up to 64 KiB);
 *   - the log (inputs up to 16 KiB) renders, overlaid with itself under a hostile label, into a
 *     picture 640, 1280 or 1920 pixels wide, or is refused with "nothing to plot" exactly when no
 *     run has a plotted key.
 * A failed check aborts, so libFuzzer (make fuzz) and the replay driver (tests/cli_fuzz.sh) report it.
 */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_check.h"
#include "rl_plot.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *PLOTTED[] = {"reward", "accuracy", "format", "length", "kl", "clip_frac", "entropy", "loss"};
static const char *PLOTTED_EVAL[] = {"pass1", "greedy"}; /* and pass<k> */

/* the oracle's view of one record line */
typedef struct {
    int kind;
    double step, update; /* update -1 when absent */
    int n;
    char key[RLLOG_MAX_KEYS + 1][RLLOG_KEY_LEN];
    double v[RLLOG_MAX_KEYS + 1];
} Line;

static int same(double a, double b) { return (isnan(a) && isnan(b)) || a == b; }

/* Lines whose first word (after spaces and tabs) is `word`: a bound on the records of that kind. */
static long long count_lines(const char *text, size_t size, const char *word) {
    size_t m = strlen(word);
    long long n = 0;
    for (size_t pos = 0; pos < size;) {
        const char *s = text + pos, *nl = memchr(s, '\n', size - pos);
        size_t len = nl ? (size_t)(nl - s) : size - pos, i = 0;
        pos += len + (nl != NULL);
        while (i < len && (s[i] == ' ' || s[i] == '\t')) i++;
        if (len - i < m || memcmp(s + i, word, m)) continue;
        n += len - i == m || s[i + m] == ' ' || s[i + m] == '\t' || s[i + m] == '\r';
    }
    return n;
}

/* Naively re-reads text (accepted by the reader) and compares every series with it. */
static void oracle(const RlLog *log, const char *text, size_t size) {
    size_t cap = 16, n = 0;
    Line *L = malloc(cap * sizeof *L);
    CHECK(L);
    char *copy = malloc(size + 1);
    CHECK(copy);
    memcpy(copy, text, size);
    copy[size] = '\0';
    size_t pos = 0;
    while (pos < size) {
        char *s = copy + pos, *nl = memchr(s, '\n', size - pos);
        size_t len = nl ? (size_t)(nl - s) : size - pos;
        pos += len + (nl ? 1 : 0);
        if (!nl && log->dropped_tail) break;
        s[len] = '\0';
        if (len && s[len - 1] == '\r') s[len - 1] = '\0';
        char *save = NULL, *w = strtok_r(s, " \t", &save);
        if (!w || (strcmp(w, "rl") && strcmp(w, "eval"))) continue;
        if (n == cap) {
            L = realloc(L, (cap *= 2) * sizeof *L);
            CHECK(L);
        }
        Line *l = &L[n++];
        l->kind = strcmp(w, "rl") ? RLLOG_EVAL : RLLOG_RL;
        l->n = 0;
        l->update = -1;
        int have_step = 0;
        for (char *t; (t = strtok_r(NULL, " \t", &save));) {
            char *eq = strchr(t, '=');
            CHECK(eq && eq > t && (size_t)(eq - t) < RLLOG_KEY_LEN);
            *eq = '\0';
            errno = 0;
            double v = strtod(eq + 1, NULL);
            if (errno == ERANGE && isfinite(v)) v = 0.0; /* the reader: an underflow is 0 */
            if (!strcmp(t, "step")) {
                l->step = v;
                have_step = 1;
                continue;
            }
            if (!strcmp(t, "update")) {
                l->update = v;
                continue;
            }
            CHECK(l->n <= RLLOG_MAX_KEYS);
            snprintf(l->key[l->n], RLLOG_KEY_LEN, "%s", t);
            l->v[l->n++] = isfinite(v) ? v : NAN;
        }
        CHECK(have_step);
    }
    /* the last line of each (kind, step, update) is kept */
    int *kept = calloc(n ? n : 1, sizeof *kept);
    CHECK(kept);
    for (size_t i = 0; i < n; i++) {
        kept[i] = 1;
        for (size_t j = i + 1; j < n && kept[i]; j++)
            kept[i] = !(L[j].kind == L[i].kind && L[j].step == L[i].step && L[j].update == L[i].update);
    }
    long long points = 0;
    for (size_t i = 0; i < n; i++) {
        if (!kept[i]) continue;
        int m = 0, c = 1; /* kept lines of this step, and this one's rank among them by update */
        for (size_t j = 0; j < n; j++)
            if (kept[j] && L[j].kind == L[i].kind && L[j].step == L[i].step) {
                m++;
                c += L[j].update < L[i].update;
            }
        double x = m == 1 ? L[i].step : L[i].step - 1 + (double)c / (double)m;
        for (int k = 0; k < L[i].n; k++) {
            points++;
            const RlSeries *s = rllog_series(log, (RlKind)L[i].kind, L[i].key[k]);
            CHECK(s);
            int found = 0; /* x may repeat where doubles cannot separate a step's updates */
            for (int p = 0; p < s->n && !found; p++) found = s->x[p] == x && same(s->v[p], L[i].v[k]);
            CHECK(found);
        }
    }
    free(kept);
    long long total = 0;
    for (int i = 0; i < log->n_series; i++) total += log->series[i].n;
    CHECK(total == points);
    free(L);
    free(copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    RlLog log;
    SeekErr e;
    if (rllog_parse(&log, (const char *)data, size, "fuzz/rl.log", &e)) {
        size_t n = strnlen(e.msg, sizeof e.msg);
        CHECK(n > 0 && n < sizeof e.msg && !strncmp(e.msg, "fuzz/rl.log", 11));
        for (size_t i = 0; i < n; i++) CHECK((unsigned char)e.msg[i] >= 0x20 && (unsigned char)e.msg[i] < 0x7f);
        CHECK(log.n_series == 0 && !log.series);
        rllog_free(&log);
        return 0;
    }
    CHECK(log.rl_steps + log.eval_steps >= 1 && log.rl_steps <= log.rl_updates && log.n_series <= RLLOG_MAX_KEYS);
    long long gaps = 0, eval_lines = -1;
    for (int i = 0; i < log.n_series; i++) {
        const RlSeries *s = &log.series[i];
        size_t kn = strlen(s->key);
        CHECK(kn >= 1 && kn < RLLOG_KEY_LEN && strcmp(s->key, "step"));
        for (int j = 0; j < i; j++) CHECK(log.series[j].kind != s->kind || strcmp(log.series[j].key, s->key));
        if (s->kind == RLLOG_EVAL && eval_lines < 0) eval_lines = count_lines((const char *)data, size, "eval");
        CHECK(s->n >= 1 && s->n <= (s->kind == RLLOG_RL ? log.rl_updates : eval_lines));
        for (int j = 0; j < s->n; j++) {
            CHECK(s->x[j] >= -1 && s->x[j] <= RLLOG_MAX_STEP);
            if (j) CHECK(s->x[j] >= s->x[j - 1]);
            CHECK(isnan(s->v[j]) || (isfinite(s->v[j]) && fabs(s->v[j]) <= RLLOG_MAX_ABS));
            gaps += isnan(s->v[j]);
        }
    }
    CHECK(gaps == log.gaps);
    if (size <= 65536) oracle(&log, (const char *)data, size);

    if (size > 16384) { /* rendering costs ~5 ms a picture: short inputs carry its edge cases */
        rllog_free(&log);
        return 0;
    }
    int plotted = 0;
    for (size_t k = 0; k < sizeof PLOTTED / sizeof *PLOTTED; k++) plotted |= rllog_series(&log, RLLOG_RL, PLOTTED[k]) != NULL;
    for (size_t k = 0; k < sizeof PLOTTED_EVAL / sizeof *PLOTTED_EVAL; k++)
        plotted |= rllog_series(&log, RLLOG_EVAL, PLOTTED_EVAL[k]) != NULL;
    for (int i = 0; i < log.n_series; i++) { /* pass<k>, k >= 2 without a leading zero, at most 6 digits */
        const char *key = log.series[i].key;
        size_t d = strspn(key + (strncmp(key, "pass", 4) ? 0 : 4), "0123456789");
        if (log.series[i].kind == RLLOG_EVAL && !strncmp(key, "pass", 4) && key[4] >= '1' && key[4] <= '9' && d <= 6 &&
            !key[4 + d] && strcmp(key, "pass1"))
            plotted = 1;
    }
    const RlLog *logs[2] = {&log, &log};
    const char *labels[2] = {"run", "b\x01\x1b[31m\xff a label longer than forty characters, cut"};
    Image im;
    RlPlotInfo info;
    int rc = rlplot_render(logs, labels, 2, NULL, &im, &info, &e);
    CHECK(rc == 0 ? plotted : !plotted);
    if (rc == 0) {
        CHECK(im.w == 640 || im.w == 1280 || im.w == 1920);
        CHECK(im.h >= 84 + 332 && im.h <= 84 + 7 * 26 + 3 * 332 && info.panels >= 1 && info.panels <= 9);
        image_free(&im);
    } else {
        CHECK(strstr(e.msg, "nothing to plot"));
    }
    rllog_free(&log);
    return 0;
}
