/* rl_plot.c: the reader of seek rl's log and the small-multiples renderer. See rl_plot.h for what
 * the reader accepts and what the picture holds.
 *
 * Reading is two passes. Pass 1 walks the lines (bounded by the buffer's length, never by a NUL)
 * and appends, per kind, one record (step, update, line) a line and, per (kind, key), points
 * (value, record). Pass 2 sorts a copy of the records by (step, update, line): the last line of
 * each (step, update) is kept (a resumed run appends lines for what it redoes), and the n kept
 * records of a step get their x, step - 1 + i/n for the i-th by update (x = step when n = 1).
 * Each series then keeps the points of kept records, sorted by x. Memory is a constant times the
 * input: a point costs 16 bytes and takes at least 4 bytes of text ("a=1 "), a record 56 bytes
 * (with its sort key) and at least 10 ("rl step=1\n").
 *
 * Drawing uses image.h's primitives and font.h's 5x7 font; plot.h's Picture is not used because
 * its line panels place points at equal spacing and have no step axis, ticks, markers or legend.
 */
#include "rl_plot.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "font.h"

/* ---- reading ---------------------------------------------------------------------------------- */

typedef struct {
    double v;
    uint32_t rec; /* its line's record, an index into Reader.rec[kind] (records are in line order) */
} Pt;

typedef struct {
    double step, update; /* update: -1 when the line has none */
    double x;            /* pass 2 */
    int kept;            /* pass 2: no later line has the same (step, update) */
} Rec;

typedef struct { /* a record's place in the (step, update, line) order */
    double step, update;
    uint32_t idx;
} Ord;

typedef struct {
    RlKind kind;
    char key[RLLOG_KEY_LEN];
    Pt *p;
    size_t n, cap;
} Acc;

typedef struct {
    Acc acc[RLLOG_MAX_KEYS];
    int n_acc;
    Rec *rec[2];
    size_t n_rec[2], cap_rec[2];
} Reader;

/* grows *buf (elements of size sz) so that one more fits */
static int grow(void **buf, size_t *cap, size_t n, size_t sz) {
    if (n < *cap) return 0;
    size_t c = *cap ? *cap : 64, bytes;
    while (c <= n)
        if (!ck_mul(c, 2, &c)) return -1;
    if (!ck_mul(c, sz, &bytes)) return -1;
    void *p = realloc(*buf, bytes);
    if (!p) return -1;
    *buf = p;
    *cap = c;
    return 0;
}

/* s (n bytes) for an error message: printable ASCII kept, other bytes as \xHH, cut after 40
 * input bytes with "..." */
static void shown(char *out, size_t cap, const char *s, size_t n) {
    size_t o = 0;
    for (size_t i = 0; i < n && o + 8 < cap; i++) {
        unsigned char c = (unsigned char)s[i];
        if (i == 40) {
            memcpy(out + o, "...", 3);
            o += 3;
            break;
        }
        if (c >= 0x20 && c < 0x7f && c != '\\') out[o++] = (char)c;
        else o += (size_t)snprintf(out + o, cap - o, "\\x%02x", c);
    }
    out[o] = '\0';
}

static int is_ws(char c) { return c == ' ' || c == '\t'; }

static int key_ok(const char *k, size_t n) {
    if (n < 1 || n >= RLLOG_KEY_LEN) return 0;
    for (size_t i = 0; i < n; i++) {
        char c = k[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '.')) return 0;
    }
    return 1;
}

/* a step or an update: decimal digits only, at most RLLOG_MAX_STEP */
static int parse_step(const char *s, size_t n, double *out) {
    if (n < 1 || n > 16) return -1;
    double v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return -1;
        v = v * 10 + (s[i] - '0');
    }
    if (v > RLLOG_MAX_STEP) return -1;
    *out = v;
    return 0;
}

/* a value: what strtod reads wholly; nan/inf words give NaN (a gap); 1 = overflow or too large,
 * -1 = not a number. buf is a NUL-terminated copy. */
static int parse_value(const char *buf, size_t n, double *out) {
    if (n < 1) return -1;
    char *end;
    errno = 0;
    double v = strtod(buf, &end);
    if (end != buf + n || is_ws(buf[0])) return -1;
    if (!isfinite(v)) {
        if (errno == ERANGE) return 1;
        *out = NAN;
        return 0;
    }
    if (fabs(v) > RLLOG_MAX_ABS) return 1;
    if (errno == ERANGE) v = 0.0; /* underflow: as good as zero */
    *out = v;
    return 0;
}

static int find_acc(Reader *r, RlKind kind, const char *key, size_t n) {
    for (int i = 0; i < r->n_acc; i++)
        if (r->acc[i].kind == kind && strlen(r->acc[i].key) == n && !memcmp(r->acc[i].key, key, n)) return i;
    if (r->n_acc == RLLOG_MAX_KEYS) return -1;
    Acc *a = &r->acc[r->n_acc];
    memset(a, 0, sizeof *a);
    a->kind = kind;
    memcpy(a->key, key, n);
    a->key[n] = '\0';
    return r->n_acc++;
}

static void reader_free(Reader *r) {
    for (int i = 0; i < r->n_acc; i++) free(r->acc[i].p);
    free(r->rec[0]);
    free(r->rec[1]);
    memset(r, 0, sizeof *r);
}

typedef struct {
    int acc;
    double v;
} Field;

/* Parses one record line held NUL-terminated in buf (after the first word, at `at`). Returns 0,
 * or -1 with the reason in msg (without the file and line). The line's points are added only when
 * the whole line parsed. */
static int parse_record(Reader *r, RlKind kind, char *buf, size_t len, size_t at, char *msg, size_t cap) {
    Field f[RLLOG_MAX_KEYS];
    int nf = 0, have_step = 0, have_update = 0;
    double step = 0, update = -1;
    char sh[200];
    size_t i = at;
    while (i < len) {
        while (i < len && is_ws(buf[i])) i++;
        if (i == len) break;
        size_t t0 = i;
        while (i < len && !is_ws(buf[i])) i++;
        size_t tn = i - t0;
        char *tok = buf + t0;
        char *eq = memchr(tok, '=', tn);
        if (!eq || eq == tok) {
            shown(sh, sizeof sh, tok, tn);
            snprintf(msg, cap, "'%s': expected KEY=VALUE", sh);
            return -1;
        }
        size_t kn = (size_t)(eq - tok), vn = tn - kn - 1;
        if (!key_ok(tok, kn)) {
            shown(sh, sizeof sh, tok, kn);
            snprintf(msg, cap, "key '%s': expected 1 to %d letters, digits, '_' or '.'", sh, RLLOG_KEY_LEN - 1);
            return -1;
        }
        if (i < len) buf[i++] = '\0'; /* the token ends at the space or tab after it (buf[len] is a NUL) */
        const char *val = eq + 1;
        int is_step = kn == 4 && !memcmp(tok, "step", 4), is_update = kn == 6 && !memcmp(tok, "update", 6);
        if (is_step || is_update) { /* the record's identity, not a series */
            const char *k = is_step ? "step" : "update";
            if (is_step ? have_step : have_update) {
                snprintf(msg, cap, "key '%s' appears twice", k);
                return -1;
            }
            if (parse_step(val, vn, is_step ? &step : &update)) {
                shown(sh, sizeof sh, val, vn);
                snprintf(msg, cap, "'%s=%s': expected an integer in [0, 10^15]", k, sh);
                return -1;
            }
            if (is_step) have_step = 1;
            else have_update = 1;
            continue;
        }
        double v;
        int rc = parse_value(val, vn, &v);
        if (rc) {
            char k[RLLOG_KEY_LEN];
            memcpy(k, tok, kn);
            k[kn] = '\0';
            shown(sh, sizeof sh, val, vn);
            if (rc > 0) snprintf(msg, cap, "'%s=%s': out of range (magnitude at most 1e100)", k, sh);
            else snprintf(msg, cap, "'%s=%s': expected a number", k, sh);
            return -1;
        }
        int a = find_acc(r, kind, tok, kn);
        if (a < 0) {
            snprintf(msg, cap, "more than %d distinct keys", RLLOG_MAX_KEYS);
            return -1;
        }
        for (int j = 0; j < nf; j++)
            if (f[j].acc == a) {
                snprintf(msg, cap, "key '%s' appears twice", r->acc[a].key);
                return -1;
            }
        f[nf].acc = a; /* nf < RLLOG_MAX_KEYS: the keys of a line are distinct accumulators */
        f[nf++].v = v;
    }
    if (!have_step) {
        snprintf(msg, cap, "expected step=N on an '%s' line", kind == RLLOG_RL ? "rl" : "eval");
        return -1;
    }
    if (grow((void **)&r->rec[kind], &r->cap_rec[kind], r->n_rec[kind], sizeof(Rec))) goto oom;
    const uint32_t ri = (uint32_t)r->n_rec[kind]; /* fewer records than lines, and lines fit 32 bits */
    for (int j = 0; j < nf; j++) {
        Acc *a = &r->acc[f[j].acc];
        if (grow((void **)&a->p, &a->cap, a->n, sizeof *a->p)) goto oom;
        a->p[a->n++] = (Pt){f[j].v, ri};
    }
    r->rec[kind][r->n_rec[kind]++] = (Rec){step, update, 0, 0};
    return 0;
oom:
    snprintf(msg, cap, "out of memory");
    return -2;
}

static int cmp_ord(const void *pa, const void *pb) {
    const Ord *a = pa, *b = pb;
    if (a->step != b->step) return a->step < b->step ? -1 : 1;
    if (a->update != b->update) return a->update < b->update ? -1 : 1;
    return a->idx < b->idx ? -1 : a->idx > b->idx;
}

static int cmp_xy(const void *pa, const void *pb) {
    const double *a = pa, *b = pb;
    return a[0] < b[0] ? -1 : a[0] > b[0];
}

/* pass 2, one kind: which records are kept, and their x; the distinct steps and kept records */
static int place_records(Rec *rec, size_t n, long long *steps, long long *kept, long long *replaced) {
    Ord *o = malloc((n ? n : 1) * sizeof *o);
    if (!o) return -1;
    for (size_t i = 0; i < n; i++) o[i] = (Ord){rec[i].step, rec[i].update, (uint32_t)i};
    if (n > 1) qsort(o, n, sizeof *o, cmp_ord);
    *steps = *kept = 0;
    for (size_t i = 0; i < n;) { /* one step: o[i..j) */
        size_t j = i, m = 0;
        while (j < n && o[j].step == o[i].step) j++;
        for (size_t k = i; k < j; k++) /* the last line of each (step, update) */
            if (k + 1 == j || o[k + 1].update != o[k].update) {
                rec[o[k].idx].kept = 1;
                m++;
            }
        for (size_t k = i, c = 0; k < j; k++)
            if (rec[o[k].idx].kept) {
                c++;
                rec[o[k].idx].x = m == 1 ? o[k].step : o[k].step - 1 + (double)c / (double)m;
            }
        *steps += 1;
        *kept += (long long)m;
        *replaced += (long long)(j - i - m);
        i = j;
    }
    free(o);
    return 0;
}

static int finish(Reader *r, RlLog *log, const char *name, SeekErr *err) {
    long long kept[2];
    for (int k = 0; k < 2; k++)
        if (place_records(r->rec[k], r->n_rec[k], k == RLLOG_RL ? &log->rl_steps : &log->eval_steps, &kept[k], &log->replaced))
            return seek_fail(err, "%s: out of memory", name);
    log->rl_updates = kept[RLLOG_RL];
    if (log->rl_steps + log->eval_steps == 0)
        return seek_fail(err, "%s: %s (expected the rl.log of seek rl, with 'rl step=N ...' or 'eval step=N ...' lines)", name,
                         log->lines ? "no 'rl' or 'eval' line" : "empty file");
    log->series = calloc(r->n_acc ? (size_t)r->n_acc : 1, sizeof *log->series);
    if (!log->series) return seek_fail(err, "%s: out of memory", name);
    for (int i = 0; i < r->n_acc; i++) {
        Acc *a = &r->acc[i];
        const Rec *rec = r->rec[a->kind];
        size_t m = 0;
        for (size_t j = 0; j < a->n; j++) m += rec[a->p[j].rec].kept;
        if (m == 0) continue; /* only on a dropped last line, or every line with the key replaced by one without */
        double *xy = malloc(m * 2 * sizeof *xy); /* (m, 2): x, value */
        RlSeries *s = &log->series[log->n_series];
        s->kind = a->kind;
        memcpy(s->key, a->key, sizeof s->key);
        s->x = malloc(m * sizeof *s->x);
        s->v = malloc(m * sizeof *s->v);
        log->n_series++; /* counted now, so rllog_free frees what was allocated */
        if (!xy || !s->x || !s->v) {
            free(xy);
            return seek_fail(err, "%s: out of memory", name);
        }
        for (size_t j = 0, o = 0; j < a->n; j++)
            if (rec[a->p[j].rec].kept) {
                xy[2 * o] = rec[a->p[j].rec].x;
                xy[2 * o++ + 1] = a->p[j].v;
            }
        qsort(xy, m, 2 * sizeof *xy, cmp_xy);
        for (size_t j = 0; j < m; j++) {
            s->x[j] = xy[2 * j];
            s->v[j] = xy[2 * j + 1];
            log->gaps += isnan(s->v[j]) != 0;
        }
        s->n = (int)m;
        free(xy);
    }
    return 0;
}

int rllog_parse(RlLog *log, const char *text, size_t len, const char *name, SeekErr *err) {
    memset(log, 0, sizeof *log);
    if (len > RLLOG_MAX_BYTES)
        return seek_fail(err, "%s: %zu bytes, more than the %zu allowed", name, len, (size_t)RLLOG_MAX_BYTES);
    Reader *r = calloc(1, sizeof *r);
    char *buf = malloc(RLLOG_MAX_LINE + 1);
    if (!r || !buf) {
        free(r);
        free(buf);
        return seek_fail(err, "%s: out of memory", name);
    }
    int rc = 0;
    size_t pos = 0;
    char msg[300];
    while (pos < len && !rc) {
        const char *s = text + pos;
        const char *nl = memchr(s, '\n', len - pos);
        size_t n = nl ? (size_t)(nl - s) : len - pos;
        pos += n + (nl ? 1 : 0);
        long long ln = ++log->lines;
        if (n > RLLOG_MAX_LINE) {
            rc = seek_fail(err, "%s:%lld: the line is longer than %d bytes (expected a text log of short lines)", name, ln, RLLOG_MAX_LINE);
            break;
        }
        if (n && s[n - 1] == '\r') n--;
        for (size_t i = 0; i < n; i++) {
            unsigned char c = (unsigned char)s[i];
            if ((c < 0x20 && c != '\t') || c == 0x7f) {
                rc = seek_fail(err, "%s:%lld: control byte 0x%02x at column %zu (expected a text log)", name, ln, c, i + 1);
                break;
            }
        }
        if (rc) break;
        memcpy(buf, s, n);
        buf[n] = '\0';
        size_t i = 0;
        while (i < n && is_ws(buf[i])) i++;
        size_t w0 = i;
        while (i < n && !is_ws(buf[i])) i++;
        size_t wn = i - w0;
        RlKind kind;
        if (wn == 2 && !memcmp(buf + w0, "rl", 2)) kind = RLLOG_RL;
        else if (wn == 4 && !memcmp(buf + w0, "eval", 4)) kind = RLLOG_EVAL;
        else {
            if (wn == 5 && !memcmp(buf + w0, "start", 5)) log->starts++;
            continue; /* blank, a comment, the trainer's lines, words added later */
        }
        int prc = parse_record(r, kind, buf, n, i, msg, sizeof msg);
        if (prc == -1 && !nl) { /* a last line cut short: the run was killed while writing it */
            log->dropped_tail = 1;
            break;
        }
        if (prc) rc = seek_fail(err, "%s:%lld: %s", name, ln, msg);
    }
    if (!rc) rc = finish(r, log, name, err);
    reader_free(r);
    free(r);
    free(buf);
    if (rc) rllog_free(log);
    return rc;
}

int rllog_read(RlLog *log, const char *path, SeekErr *err) {
    memset(log, 0, sizeof *log);
    char *text = NULL;
    size_t len = 0;
    if (read_text_file(path, RLLOG_MAX_BYTES, &text, &len, err)) return -1;
    int rc = rllog_parse(log, text, len, path, err);
    free(text);
    return rc;
}

void rllog_free(RlLog *log) {
    for (int i = 0; i < log->n_series; i++) {
        free(log->series[i].x);
        free(log->series[i].v);
    }
    free(log->series);
    memset(log, 0, sizeof *log);
}

const RlSeries *rllog_series(const RlLog *log, RlKind kind, const char *key) {
    for (int i = 0; i < log->n_series; i++)
        if (log->series[i].kind == kind && !strcmp(log->series[i].key, key)) return &log->series[i];
    return NULL;
}

/* ---- drawing ---------------------------------------------------------------------------------- */

#define TS 2                       /* text scale: 12x16 pixel glyph cells */
#define TW (FONT_CW * TS)
#define TH (FONT_CH * TS)
#define PANEL_W 640
#define PANEL_H 332
#define TITLE_S 3                  /* the picture's title */
#define PAD 24
#define LEGEND_Y 52                /* first legend row; one row makes the header 84 pixels */
#define LEGEND_ROW 26
#define PLOT_TOP 34                /* panel title above the plot area */
#define PLOT_RIGHT 40              /* room for the last x tick label */
#define PLOT_BOTTOM 56             /* x tick labels and "step" under the plot area */
#define MAX_TICK_CHARS 12

static const Rgb WHITE = {255, 255, 255}, BLACK = {0, 0, 0}, TEXT_GREY = {90, 90, 90}, FRAME = {150, 150, 150},
                 GRID = {228, 228, 228};
/* Okabe and Ito's colour-blind-safe palette (yellow swapped for grey, which reads on white) */
static const Rgb RUN_COLORS[RLPLOT_MAX_RUNS] = {{0, 114, 178},  {213, 94, 0},    {0, 158, 115}, {204, 121, 167},
                                                {230, 159, 0},  {86, 180, 233},  {0, 0, 0},     {128, 128, 128}};

typedef enum { Y_FROM0, Y_UNIT, Y_FREE } YRange;
typedef enum { MARK_SQUARE, MARK_UP, MARK_DOWN, MARK_DIAMOND } Marker;

#define PANEL_KEYS 4
typedef struct {
    const char *title;
    RlKind kind;
    int n_keys;
    const char *keys[PANEL_KEYS], *names[PANEL_KEYS]; /* names: in the panel's own key (eval) */
    Marker mark[PANEL_KEYS];
    YRange y;
} PanelSpec;

/* the panels in order; the evaluation's keys are filled in by eval_spec */
static const PanelSpec PANELS[] = {
    {"reward", RLLOG_RL, 1, {"reward"}, {0}, {0}, Y_FROM0},
    {"accuracy", RLLOG_RL, 1, {"accuracy"}, {0}, {0}, Y_UNIT},
    {"format rate", RLLOG_RL, 1, {"format"}, {0}, {0}, Y_UNIT},
    {"completion length (tokens)", RLLOG_RL, 1, {"length"}, {0}, {0}, Y_FROM0},
    {"KL to reference (k3)", RLLOG_RL, 1, {"kl"}, {0}, {0}, Y_FROM0},
    {"clip fraction", RLLOG_RL, 1, {"clip_frac"}, {0}, {0}, Y_FROM0},
    {"entropy", RLLOG_RL, 1, {"entropy"}, {0}, {0}, Y_FROM0},
    {"loss", RLLOG_RL, 1, {"loss"}, {0}, {0}, Y_FREE},
    {"held-out eval", RLLOG_EVAL, 0, {0}, {0}, {0}, Y_UNIT},
};
#define N_PANELS ((int)(sizeof PANELS / sizeof PANELS[0]))

/* k of a key "pass<k>" (k >= 2, no leading zero, at most 6 digits), or 0 */
static int pass_k(const char *key) {
    if (strncmp(key, "pass", 4) || key[4] < '1' || key[4] > '9' || strlen(key + 4) > 6) return 0;
    int k = 0;
    for (const char *c = key + 4; *c; c++) {
        if (*c < '0' || *c > '9') return 0;
        k = 10 * k + (*c - '0');
    }
    return k >= 2 ? k : 0;
}

/* The evaluation panel: pass@1, pass@k for the two smallest k any log has (seek rl --pass-k),
 * greedy. The names live in names (4 x 16 bytes). Returns how many k there are. */
static int eval_spec(PanelSpec *ps, char (*names)[16], const RlLog *const *logs, int n) {
    int ks[2] = {0, 0}, nk = 0;
    for (int r = 0; r < n; r++)
        for (int i = 0; i < logs[r]->n_series; i++) {
            int k = logs[r]->series[i].kind == RLLOG_EVAL ? pass_k(logs[r]->series[i].key) : 0;
            if (!k || k == ks[0] || k == ks[1]) continue;
            if (nk < 2) ks[nk++] = k;
            else if (k < ks[1]) ks[1] = k;
            if (nk == 2 && ks[1] < ks[0]) {
                int t = ks[0];
                ks[0] = ks[1];
                ks[1] = t;
            }
        }
    ps->n_keys = 0;
    ps->keys[0] = "pass1";
    ps->names[0] = "pass@1";
    ps->mark[ps->n_keys++] = MARK_SQUARE;
    for (int j = 0; j < nk; j++) {
        snprintf(names[j], 16, "pass%d", ks[j]); /* the key, then after it its name */
        snprintf(names[2 + j], 16, "pass@%d", ks[j]);
        ps->keys[ps->n_keys] = names[j];
        ps->names[ps->n_keys] = names[2 + j];
        ps->mark[ps->n_keys++] = j ? MARK_DOWN : MARK_UP;
    }
    ps->keys[ps->n_keys] = "greedy";
    ps->names[ps->n_keys] = "greedy";
    ps->mark[ps->n_keys++] = MARK_DIAMOND;
    return nk;
}

/* an axis with "nice" ticks: lo + k*step for k in [0, n) */
typedef struct {
    double lo, hi, step;
    int n, decimals;
} Axis;

/* Widens [lo, hi] (finite, lo < hi) to multiples of a step of 1, 2 or 5 times a power of ten,
 * giving 3 to 9 ticks; integer axes have steps of at least 1. Without a usable step (spans at the
 * edge of double's range) the axis keeps lo and hi and only those are labelled. */
static void axis_nice(Axis *a, double lo, double hi, int integer) {
    memset(a, 0, sizeof *a);
    a->lo = lo;
    a->hi = hi;
    double raw = (hi - lo) / 4.0;
    if (!(raw > 0) || !isfinite(raw)) return;
    double mag = pow(10.0, floor(log10(raw)));
    double step = raw > 5 * mag ? 10 * mag : raw > 2 * mag ? 5 * mag : raw > mag ? 2 * mag : mag;
    if (integer && step < 1) step = 1;
    if (!(step > 0) || !isfinite(step)) return;
    double l = floor(lo / step) * step, h = ceil(hi / step) * step, cnt = (h - l) / step;
    if (!isfinite(l) || !isfinite(h) || !(cnt >= 1) || cnt > 12) return;
    a->lo = l;
    a->hi = h;
    a->step = step;
    a->n = (int)lround(cnt) + 1;
    double d = step >= 1 ? 0 : ceil(-log10(step) - 1e-9);
    a->decimals = d > 12 ? 12 : (int)d;
}

/* A tick label: fixed decimals while that stays short, else %g with the digits the step needs. */
static void fmt_tick(char *out, size_t cap, double v, const Axis *a) {
    double big = fmax(fabs(a->lo), fabs(a->hi));
    if (a->n && fabs(v) < a->step * 1e-6) v = 0.0; /* 0 tick computed as 1e-17 */
    if (a->n && a->decimals <= 4 && big < 1e6) snprintf(out, cap, "%.*f", a->decimals, v);
    else {
        int prec = a->n ? (int)(floor(log10(big)) - floor(log10(a->step))) + 1 : 3;
        prec = prec < 1 ? 1 : prec > 10 ? 10 : prec;
        snprintf(out, cap, "%.*g", prec, v);
    }
    if (!strcmp(out, "-0")) snprintf(out, cap, "0");
    if (strlen(out) > MAX_TICK_CHARS) out[MAX_TICK_CHARS] = '\0';
}

static double tick_at(const Axis *a, int k) { return a->n ? a->lo + k * a->step : (k ? a->hi : a->lo); }
static int ticks_of(const Axis *a) { return a->n ? a->n : 2; }

/* printable ASCII, cut to max characters with "..." */
static void clean_text(char *out, size_t cap, const char *s, int max) {
    size_t o = 0, n = strlen(s);
    for (size_t i = 0; i < n && o + 1 < cap; i++) {
        if ((int)o == max - 3 && n - i > 3) {
            snprintf(out + o, cap - o, "...");
            return;
        }
        unsigned char c = (unsigned char)s[i];
        out[o++] = c >= 0x20 && c < 0x7f ? (char)c : '?';
    }
    out[o] = '\0';
}

typedef struct {
    int x, y, w, h; /* plot area */
} Area;

/* v on an axis [lo, hi] drawn over len pixels from p0 (flip: upwards), INSET pixels in from each
 * end so that a curve at the axis' end stays clear of the frame */
#define INSET 6
static int to_px(double v, double lo, double hi, int p0, int len, int flip) {
    double t = hi > lo ? (v - lo) / (hi - lo) : 0.5;
    if (!(t >= 0)) t = 0; /* NaN too */
    if (t > 1) t = 1;
    int o = INSET + (int)lround(t * (len - 1 - 2 * INSET));
    return flip ? p0 + len - 1 - o : p0 + o;
}

static void thick_line(Image *im, int x0, int y0, int x1, int y1, Rgb c) {
    for (int d = 0; d < 4; d++) image_line(im, x0 + (d & 1), y0 + (d >> 1), x1 + (d & 1), y1 + (d >> 1), c);
}

static void marker(Image *im, int x, int y, Marker m, Rgb c) {
    for (int r = -4; r <= 4; r++) {
        int hw = m == MARK_SQUARE ? 4 : m == MARK_DIAMOND ? 4 - abs(r) : m == MARK_UP ? (r + 4) / 2 : (4 - r) / 2;
        image_hline(im, x - hw, x + hw, y + r, c);
    }
}

/* the finite range of a panel's series over every run */
static int panel_range(const PanelSpec *ps, const RlLog *const *logs, int n, double *lo, double *hi) {
    int any = 0;
    *lo = INFINITY;
    *hi = -INFINITY;
    for (int r = 0; r < n; r++)
        for (int k = 0; k < ps->n_keys; k++) {
            const RlSeries *s = rllog_series(logs[r], ps->kind, ps->keys[k]);
            for (int j = 0; s && j < s->n; j++) {
                any = 1;
                if (!isfinite(s->v[j])) continue;
                *lo = fmin(*lo, s->v[j]);
                *hi = fmax(*hi, s->v[j]);
            }
        }
    return any;
}

static void y_axis_of(const PanelSpec *ps, const RlLog *const *logs, int n, Axis *a) {
    double lo, hi;
    panel_range(ps, logs, n, &lo, &hi);
    if (lo > hi) lo = hi = 0; /* every value a gap */
    if (ps->y != Y_FREE) lo = fmin(lo, 0);
    if (ps->y == Y_UNIT) hi = fmax(hi, 1);
    if (hi <= lo) {
        if (lo == 0) hi = 1;
        else {
            double d = fabs(lo) * 0.1;
            lo -= d;
            hi += d;
        }
    }
    axis_nice(a, lo, hi, 0);
}

static void draw_panel(Image *im, int x0, int y0, int left, const PanelSpec *ps, const RlLog *const *logs, int n,
                       const Axis *xa) {
    Area A = {x0 + left, y0 + PLOT_TOP, PANEL_W - left - PLOT_RIGHT, PANEL_H - PLOT_TOP - PLOT_BOTTOM};
    Axis ya;
    y_axis_of(ps, logs, n, &ya);
    const char *title = ps->title;
    if (ps->n_keys > 1) { /* the panel's own key: one marker a metric some log has, right-aligned */
        int w = 0, has[PANEL_KEYS] = {0}, ks = TS;
        for (int pass = 0; pass < 3; pass++) { /* shorter title, then smaller key, until they fit */
            if (pass == 1) title = "eval";
            if (pass == 2) ks = 1;
            w = 0;
            for (int k = 0; k < ps->n_keys; k++) {
                has[k] = 0;
                for (int r = 0; r < n; r++) has[k] |= rllog_series(logs[r], ps->kind, ps->keys[k]) != NULL;
                if (has[k]) w += 10 + 6 + font_width(ps->names[k], ks) + 16;
            }
            if (font_width(title, TS) + 16 + w - 16 <= A.w) break;
        }
        int x = A.x + A.w - w + 16;
        for (int k = 0; k < ps->n_keys; k++) {
            if (!has[k]) continue;
            marker(im, x + 4, y0 + 8 + 7, ps->mark[k], TEXT_GREY);
            x = font_draw(im, x + 16, y0 + 8 + (ks < TS ? 4 : 0), ps->names[k], TEXT_GREY, ks) + 16;
        }
    }
    font_draw(im, A.x, y0 + 8, title, BLACK, TS);
    char s[32];
    /* grid and tick labels */
    for (int k = 0; k < ticks_of(&ya); k++) {
        double v = tick_at(&ya, k);
        int y = to_px(v, ya.lo, ya.hi, A.y, A.h, 1);
        image_hline(im, A.x, A.x + A.w - 1, y, GRID);
        image_hline(im, A.x - 5, A.x - 1, y, FRAME);
        fmt_tick(s, sizeof s, v, &ya);
        font_draw(im, A.x - 8 - font_width(s, TS), y - TH / 2 + 1, s, BLACK, TS);
    }
    for (int k = 0; k < ticks_of(xa); k++) {
        double v = tick_at(xa, k);
        int x = to_px(v, xa->lo, xa->hi, A.x, A.w, 0);
        image_vline(im, x, A.y, A.y + A.h - 1, GRID);
        image_vline(im, x, A.y + A.h, A.y + A.h + 4, FRAME);
        fmt_tick(s, sizeof s, v, xa);
        font_draw(im, x - font_width(s, TS) / 2, A.y + A.h + 8, s, BLACK, TS);
    }
    font_draw(im, A.x + A.w / 2 - font_width("step", TS) / 2, A.y + A.h + 8 + TH + 6, "step", TEXT_GREY, TS);
    image_rect_outline(im, A.x - 1, A.y - 1, A.w + 2, A.h + 2, FRAME);
    /* the runs, in order (the last on top) */
    for (int r = 0; r < n; r++) {
        Rgb c = RUN_COLORS[r];
        for (int k = 0; k < ps->n_keys; k++) {
            const RlSeries *sr = rllog_series(logs[r], ps->kind, ps->keys[k]);
            if (!sr) continue;
            int px = 0, py = 0, prev = 0;
            for (int j = 0; j < sr->n; j++) {
                if (!isfinite(sr->v[j])) {
                    prev = 0;
                    continue;
                }
                int x = to_px(sr->x[j], xa->lo, xa->hi, A.x, A.w, 0), y = to_px(sr->v[j], ya.lo, ya.hi, A.y, A.h, 1);
                if (ps->n_keys > 1) {
                    if (prev) image_line(im, px, py, x, y, c);
                } else if (prev) thick_line(im, px, py, x, y, c);
                else if (j + 1 >= sr->n || !isfinite(sr->v[j + 1])) image_fill_rect(im, x - 2, y - 2, 5, 5, c); /* alone */
                px = x, py = y, prev = 1;
            }
            if (ps->n_keys > 1) /* markers over the joining lines */
                for (int j = 0; j < sr->n; j++)
                    if (isfinite(sr->v[j]))
                        marker(im, to_px(sr->x[j], xa->lo, xa->hi, A.x, A.w, 0), to_px(sr->v[j], ya.lo, ya.hi, A.y, A.h, 1),
                               ps->mark[k], c);
        }
    }
}

/* lays out the legend from y = LEGEND_Y in a picture W wide; draws it when im is not NULL;
 * returns the number of rows */
static int legend(Image *im, int W, char (*labels)[RLPLOT_LABEL_LEN], int n) {
    int x = PAD, rows = 1;
    for (int r = 0; r < n; r++) {
        int w = 40 + font_width(labels[r], TS);
        if (x > PAD && x + w > W - PAD) {
            x = PAD;
            rows++;
        }
        int y = LEGEND_Y + (rows - 1) * LEGEND_ROW;
        if (im) {
            image_fill_rect(im, x, y + 6, 32, 4, RUN_COLORS[r]);
            font_draw(im, x + 40, y, labels[r], BLACK, TS);
        }
        x += w + 32;
    }
    return rows;
}

int rlplot_render(const RlLog *const *logs, const char *const *labels, int n, const char *title, Image *out,
                  RlPlotInfo *info, SeekErr *err) {
    memset(out, 0, sizeof *out);
    if (info) memset(info, 0, sizeof *info);
    if (n < 1 || n > RLPLOT_MAX_RUNS) return seek_fail(err, "plot: %d runs, expected 1 to %d", n, RLPLOT_MAX_RUNS);
    /* which panels and which eval keys have data; the missing ones named */
    PanelSpec panels[N_PANELS];
    char names[4][16];
    memcpy(panels, PANELS, sizeof panels);
    int nk = eval_spec(&panels[N_PANELS - 1], names, logs, n);
    int show[N_PANELS], np = 0;
    char missing[256] = "";
    for (int p = 0; p < N_PANELS; p++) {
        double lo, hi;
        show[p] = panel_range(&panels[p], logs, n, &lo, &hi);
        np += show[p];
        for (int k = 0; k < panels[p].n_keys; k++) {
            int any = 0;
            for (int r = 0; r < n; r++) any |= rllog_series(logs[r], panels[p].kind, panels[p].keys[k]) != NULL;
            size_t m = strlen(missing);
            if (!any) snprintf(missing + m, sizeof missing - m, "%s%s", m ? ", " : "", panels[p].keys[k]);
            if (panels[p].kind == RLLOG_EVAL && k == 0 && nk == 0) { /* no pass@k at all */
                m = strlen(missing);
                snprintf(missing + m, sizeof missing - m, "%spassK", m ? ", " : "");
            }
        }
    }
    if (info) snprintf(info->missing, sizeof info->missing, "%s", missing);
    if (np == 0) return seek_fail(err, "nothing to plot: no log has any of %s", missing);
    /* the step axis, shared by every panel */
    double xlo = INFINITY, xhi = -INFINITY;
    for (int r = 0; r < n; r++)
        for (int i = 0; i < logs[r]->n_series; i++)
            for (int j = 0; j < logs[r]->series[i].n; j++) {
                xlo = fmin(xlo, logs[r]->series[i].x[j]);
                xhi = fmax(xhi, logs[r]->series[i].x[j]);
            }
    if (xlo > xhi) xlo = xhi = 0;
    if (xhi <= xlo) {
        xlo = xlo >= 1 ? xlo - 1 : 0;
        xhi = xhi + 1;
    }
    Axis xa;
    axis_nice(&xa, xlo, xhi, 1);
    /* the widest y tick label sets one left margin for every panel, so the plots line up */
    int chars = 4;
    char s[32];
    for (int p = 0; p < N_PANELS; p++) {
        if (!show[p]) continue;
        Axis ya;
        y_axis_of(&panels[p], logs, n, &ya);
        for (int k = 0; k < ticks_of(&ya); k++) {
            fmt_tick(s, sizeof s, tick_at(&ya, k), &ya);
            if ((int)strlen(s) > chars) chars = (int)strlen(s);
        }
    }
    int left = 12 + chars * TW + 8;
    int cols = np < 3 ? np : 3, rows = (np + cols - 1) / cols, W = cols * PANEL_W;
    char lab[RLPLOT_MAX_RUNS][RLPLOT_LABEL_LEN], ttl[256];
    for (int r = 0; r < n; r++) clean_text(lab[r], sizeof lab[r], labels[r] ? labels[r] : "", 40);
    if (title && title[0]) clean_text(ttl, sizeof ttl, title, (W - 2 * PAD) / (FONT_CW * TITLE_S));
    else {
        char joined[RLPLOT_MAX_RUNS * (RLPLOT_LABEL_LEN + 4)] = "";
        for (int r = 0; r < n; r++) {
            size_t m = strlen(joined);
            snprintf(joined + m, sizeof joined - m, "%s%s", r ? " vs " : "", lab[r]);
        }
        clean_text(ttl, sizeof ttl, joined, (W - 2 * PAD) / (FONT_CW * TITLE_S));
    }
    int header = LEGEND_Y + legend(NULL, W, lab, n) * LEGEND_ROW + 6;
    if (image_init(out, W, header + rows * PANEL_H, WHITE, err)) return -1;
    font_draw(out, PAD, 14, ttl, BLACK, TITLE_S);
    legend(out, W, lab, n);
    for (int p = 0, i = 0; p < N_PANELS; p++) {
        if (!show[p]) continue;
        draw_panel(out, (i % cols) * PANEL_W, header + (i / cols) * PANEL_H, left, &panels[p], logs, n, &xa);
        i++;
    }
    if (info) info->panels = np;
    return 0;
}


/* ---- test-time compute: seek solve's picture ---------------------------------------------------- */

#define SP_PANEL_H 440
#define SP_BOTTOM 90                /* tick labels, the tokens under them (panel 1), the axis name */

typedef enum { LINE_SOLID, LINE_DASHED, LINE_DOTTED } LineStyle;

/* the metrics' colours (Okabe and Ito), the same in every panel */
static const Rgb C_PASSN = {0, 114, 178}, C_MAJ = {213, 94, 0}, C_PASS1 = {0, 158, 115}, C_GREEDY = {0, 0, 0},
                 C_TOKENS = {204, 121, 167}, C_THINK = {86, 180, 233}, C_REF = {128, 128, 128};

/* a 2-pixel line, solid, dashed (8 on, 6 off) or dotted (3 on, 5 off), stepped one pixel at a time */
static void styled_line(Image *im, int x0, int y0, int x1, int y1, Rgb c, LineStyle st) {
    int steps = abs(x1 - x0) > abs(y1 - y0) ? abs(x1 - x0) : abs(y1 - y0);
    const int on = st == LINE_DASHED ? 8 : 3, period = st == LINE_DASHED ? 14 : 8;
    for (int i = 0; i <= steps; i++) {
        if (st != LINE_SOLID && i % period >= on) continue;
        int x = steps ? x0 + (int)lround((double)(x1 - x0) * i / steps) : x0;
        int y = steps ? y0 + (int)lround((double)(y1 - y0) * i / steps) : y0;
        image_fill_rect(im, x, y, 2, 2, c);
    }
}

/* the frame, y grid and y tick labels of a plot area; the x ticks are the caller's */
static void sp_frame(Image *im, const Area *A, const Axis *ya, const char *title, int x0, int y0) {
    char s[32];
    font_draw(im, A->x, y0 + 8, title, BLACK, TS);
    for (int k = 0; k < ticks_of(ya); k++) {
        double v = tick_at(ya, k);
        int y = to_px(v, ya->lo, ya->hi, A->y, A->h, 1);
        image_hline(im, A->x, A->x + A->w - 1, y, GRID);
        image_hline(im, A->x - 5, A->x - 1, y, FRAME);
        fmt_tick(s, sizeof s, v, ya);
        font_draw(im, A->x - 8 - font_width(s, TS), y - TH / 2 + 1, s, BLACK, TS);
    }
    (void)x0;
}

static void sp_xtick(Image *im, const Area *A, int x, const char *label, const char *below) {
    image_vline(im, x, A->y, A->y + A->h - 1, GRID);
    image_vline(im, x, A->y + A->h, A->y + A->h + 4, FRAME);
    font_draw(im, x - font_width(label, TS) / 2, A->y + A->h + 8, label, BLACK, TS);
    if (below) font_draw(im, x - font_width(below, TS) / 2, A->y + A->h + 8 + TH + 4, below, TEXT_GREY, TS);
}

static void sp_xname(Image *im, const Area *A, const char *name) {
    font_draw(im, A->x + A->w / 2 - font_width(name, TS) / 2, A->y + A->h + SP_BOTTOM - TH - 10, name, TEXT_GREY, TS);
}

/* a series: points (px) joined in style st, a marker at each */
static void sp_series(Image *im, const int *x, const int *y, int n, Rgb c, LineStyle st, Marker m, int markers) {
    for (int j = 0; j + 1 < n; j++) styled_line(im, x[j], y[j], x[j + 1], y[j + 1], c, st);
    for (int j = 0; markers && j < n; j++) marker(im, x[j], y[j], m, c);
}

/* "2048" -> "2048", 53120 -> "53.1k" */
static void fmt_count(char *out, size_t cap, double v) {
    if (v < 9999.5) snprintf(out, cap, "%.0f", v);
    else if (v < 999950) snprintf(out, cap, "%.1fk", v / 1e3);
    else snprintf(out, cap, "%.1fM", v / 1e6);
}

typedef struct {
    Rgb c;
    LineStyle st;
    int mark; /* -1: none */
    char label[64];
} LegendItem;

/* lays out the items from y0 in a picture W wide (draws them when im is not NULL); returns the rows */
static int sp_legend(Image *im, int W, int y0, const LegendItem *it, int n) {
    int x = PAD, rows = 1;
    for (int i = 0; i < n; i++) {
        int w = 44 + font_width(it[i].label, TS);
        if (x > PAD && x + w > W - PAD) {
            x = PAD;
            rows++;
        }
        int y = y0 + (rows - 1) * LEGEND_ROW;
        if (im) {
            styled_line(im, x, y + 7, x + 32, y + 7, it[i].c, it[i].st);
            if (it[i].mark >= 0) marker(im, x + 16, y + 8, (Marker)it[i].mark, it[i].c);
            font_draw(im, x + 40, y, it[i].label, BLACK, TS);
        }
        x += w + 28;
    }
    return rows;
}

int solveplot_render(const char *title, const SolveTotals *runs, const int *budget, const int *force, int n, Image *out,
                     SeekErr *err) {
    memset(out, 0, sizeof *out);
    if (n < 1 || budget[0] != 0) return seek_fail(err, "solve plot: the first run must be the one without a budget");
    const SolveTotals *t0 = &runs[0];
    const int nb = n - 1, W = (nb > 0 ? 3 : 1) * PANEL_W + (nb > 0 ? 0 : 2 * PAD);
    /* the force settings among the budgeted runs, in order of appearance (one line style each) */
    int forces[2], nf = 0;   /* the first two force settings are drawn (solid, dashed); the rest only in the table */
    for (int r = 1; r < n; r++) {
        int seen = 0;
        for (int j = 0; j < nf; j++) seen |= forces[j] == force[r];
        if (!seen && nf < 2) forces[nf++] = force[r];
    }
    LegendItem it[16];
    int ni = 0;
    char kN[16];
    snprintf(kN, sizeof kN, "%d", t0->samples);
    it[ni++] = (LegendItem){C_MAJ, LINE_SOLID, MARK_SQUARE, "maj@N (majority vote)"};
    it[ni++] = (LegendItem){C_PASSN, LINE_SOLID, MARK_UP, "pass@N = best-of-N (verifier knows the answer)"};
    it[ni++] = (LegendItem){C_PASS1, LINE_SOLID, MARK_DOWN, "pass@1 (mean sample)"};
    it[ni++] = (LegendItem){C_GREEDY, LINE_DASHED, MARK_DIAMOND, "greedy"};
    if (nb > 0) {
        it[ni++] = (LegendItem){C_TOKENS, LINE_SOLID, -1, "tokens a sample"};
        it[ni++] = (LegendItem){C_THINK, LINE_SOLID, -1, "thinking tokens a sample"};
        it[ni++] = (LegendItem){C_REF, LINE_DOTTED, -1, "no budget"};
        for (int j = 0; j < nf && ni < 16; j++) {
            it[ni] = (LegendItem){C_REF, j == 0 ? LINE_SOLID : LINE_DASHED, -1, {0}};
            if (forces[j] == 0) snprintf(it[ni].label, sizeof it[ni].label, "budget only");
            else snprintf(it[ni].label, sizeof it[ni].label, "budget + up to %d Wait", forces[j]);
            ni++;
        }
    }
    char ttl[256];
    clean_text(ttl, sizeof ttl, title ? title : "", (W - 2 * PAD) / (FONT_CW * TITLE_S));
    const int header = LEGEND_Y + sp_legend(NULL, W, LEGEND_Y, it, ni) * LEGEND_ROW + 6;
    if (image_init(out, W, header + SP_PANEL_H, WHITE, err)) return -1;
    font_draw(out, PAD, 14, ttl, BLACK, TITLE_S);
    sp_legend(out, W, LEGEND_Y, it, ni);
    Axis unit;
    axis_nice(&unit, 0, 1, 0);
    const int left = 12 + 6 * TW + 8;
    char s[32], below[32];
    /* panel 1: accuracy against N, from the run without a budget */
    {
        const int x0 = nb > 0 ? 0 : PAD;
        Area A = {x0 + left, header + PLOT_TOP, PANEL_W - left - PLOT_RIGHT, SP_PANEL_H - PLOT_TOP - SP_BOTTOM};
        sp_frame(out, &A, &unit, "held-out accuracy vs samples N", x0, header);
        const double lmax = log2((double)t0->ks[t0->nk - 1]);
        const double xlo = lmax > 0 ? 0 : -0.5, xhi = lmax > 0 ? lmax : 0.5;
        int xs[SOLVE_MAX_KS], ym[SOLVE_MAX_KS], yp[SOLVE_MAX_KS], y1[SOLVE_MAX_KS];
        for (int j = 0; j < t0->nk; j++) {
            xs[j] = to_px(log2((double)t0->ks[j]), xlo, xhi, A.x, A.w, 0);
            ym[j] = to_px(t0->maj_k[j], 0, 1, A.y, A.h, 1);
            yp[j] = to_px(t0->pass_k[j], 0, 1, A.y, A.h, 1);
            y1[j] = to_px(t0->pass1, 0, 1, A.y, A.h, 1);
            snprintf(s, sizeof s, "%d", t0->ks[j]);
            /* the tokens N samples spend on a problem, at the run's mean a sample */
            fmt_count(below, sizeof below, (double)t0->tokens / (t0->problems * (double)t0->samples) * t0->ks[j]);
            sp_xtick(out, &A, xs[j], s, below);
        }
        image_rect_outline(out, A.x - 1, A.y - 1, A.w + 2, A.h + 2, FRAME);
        const int yg = to_px(t0->greedy, 0, 1, A.y, A.h, 1);
        styled_line(out, A.x, yg, A.x + A.w - 2, yg, C_GREEDY, LINE_DASHED);
        marker(out, A.x + A.w - 8, yg, MARK_DIAMOND, C_GREEDY);
        sp_series(out, xs, y1, t0->nk, C_PASS1, LINE_SOLID, MARK_DOWN, 1);
        sp_series(out, xs, yp, t0->nk, C_PASSN, LINE_SOLID, MARK_UP, 1);
        sp_series(out, xs, ym, t0->nk, C_MAJ, LINE_SOLID, MARK_SQUARE, 1);
        sp_xname(out, &A, "samples N (grey: tokens a problem)");
    }
    if (nb == 0) return 0;
    /* the budget axis, shared by panels 2 and 3 */
    double blo = INFINITY, bhi = -INFINITY, tmax = (double)t0->tokens / (t0->problems * (double)t0->samples);
    for (int r = 1; r < n; r++) {
        blo = fmin(blo, budget[r]);
        bhi = fmax(bhi, budget[r]);
        tmax = fmax(tmax, (double)runs[r].tokens / (runs[r].problems * (double)runs[r].samples));
    }
    Axis xa, ta;
    if (bhi <= blo) {
        blo = blo >= 1 ? blo - 1 : 0;
        bhi += 1;
    }
    axis_nice(&xa, fmin(blo, 0), bhi, 1);
    axis_nice(&ta, 0, tmax, 0);
    for (int p = 0; p < 2; p++) {
        const int x0 = (p + 1) * PANEL_W;
        Area A = {x0 + left, header + PLOT_TOP, PANEL_W - left - PLOT_RIGHT, SP_PANEL_H - PLOT_TOP - SP_BOTTOM};
        const Axis *ya = p == 0 ? &unit : &ta;
        char pt[64];
        if (p == 0) snprintf(pt, sizeof pt, "accuracy vs thinking budget (N %d)", runs[1].samples);
        else snprintf(pt, sizeof pt, "tokens a sample vs thinking budget");
        sp_frame(out, &A, ya, pt, x0, header);
        for (int k = 0; k < ticks_of(&xa); k++) {
            double v = tick_at(&xa, k);
            fmt_tick(s, sizeof s, v, &xa);
            sp_xtick(out, &A, to_px(v, xa.lo, xa.hi, A.x, A.w, 0), s, NULL);
        }
        image_rect_outline(out, A.x - 1, A.y - 1, A.w + 2, A.h + 2, FRAME);
        /* the run without a budget, for reference: a dotted line at its value; its maj@M at the
         * budgeted runs' M samples (from its N sweep), none when M is not among its k */
        double maj_ref = NAN;
        for (int j = 0; j < t0->nk; j++)
            if (t0->ks[j] == runs[1].samples) maj_ref = t0->maj_k[j];
        const double ref[2][3] = {{maj_ref, t0->pass1, t0->greedy},
                                  {(double)t0->tokens / (t0->problems * (double)t0->samples), t0->think, NAN}};
        const Rgb rc[2][3] = {{C_MAJ, C_PASS1, C_GREEDY}, {C_TOKENS, C_THINK, C_REF}};
        for (int k = 0; k < 3; k++) {
            if (!isfinite(ref[p][k])) continue;
            int y = to_px(ref[p][k], ya->lo, ya->hi, A.y, A.h, 1);
            styled_line(out, A.x, y, A.x + A.w - 2, y, rc[p][k], LINE_DOTTED);
        }
        for (int j = 0; j < nf; j++) {
            int xs[64], yv[3][64], m = 0;
            for (int r = 1; r < n && m < 64; r++) {
                if (force[r] != forces[j]) continue;
                const SolveTotals *t = &runs[r];
                double v[3] = {t->maj, t->pass1, t->greedy};
                if (p == 1) {
                    v[0] = (double)t->tokens / (t->problems * (double)t->samples);
                    v[1] = t->think;
                    v[2] = NAN;
                }
                xs[m] = to_px(budget[r], xa.lo, xa.hi, A.x, A.w, 0);
                for (int k = 0; k < 3; k++) yv[k][m] = isfinite(v[k]) ? to_px(v[k], ya->lo, ya->hi, A.y, A.h, 1) : -1;
                m++;
            }
            /* budgets in increasing order (a run's list may be unsorted): sort the points by x */
            for (int a = 1; a < m; a++)
                for (int b = a; b > 0 && xs[b - 1] > xs[b]; b--) {
                    int t = xs[b];
                    xs[b] = xs[b - 1];
                    xs[b - 1] = t;
                    for (int k = 0; k < 3; k++) {
                        t = yv[k][b];
                        yv[k][b] = yv[k][b - 1];
                        yv[k][b - 1] = t;
                    }
                }
            const LineStyle st = j == 0 ? LINE_SOLID : LINE_DASHED;
            if (p == 0) {
                sp_series(out, xs, yv[2], m, C_GREEDY, st, MARK_DIAMOND, 1);
                sp_series(out, xs, yv[1], m, C_PASS1, st, MARK_DOWN, 1);
                sp_series(out, xs, yv[0], m, C_MAJ, st, MARK_SQUARE, 1);
            } else {
                sp_series(out, xs, yv[1], m, C_THINK, st, MARK_DOWN, 1);
                sp_series(out, xs, yv[0], m, C_TOKENS, st, MARK_SQUARE, 1);
            }
        }
        sp_xname(out, &A, "thinking budget B (tokens)");
    }
    return 0;
}
