/* term.c: terminal colour, escaping and text renderings. See term.h. */
#include "term.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

static const char SHADES[] = " .:-=+*#%@";
#define N_SHADES 10

TermColor term_detect(int fd) {
    const char *nc = getenv("NO_COLOR");
    if (nc && nc[0]) return TERM_PLAIN;
    if (!isatty(fd)) return TERM_PLAIN;
    const char *ct = getenv("COLORTERM");
    if (ct && (strstr(ct, "truecolor") || strstr(ct, "24bit"))) return TERM_TRUECOLOR;
    return TERM_256;
}

const char *term_color_name(TermColor c) {
    return c == TERM_TRUECOLOR ? "truecolor" : c == TERM_256 ? "256" : "none";
}

int term_width(int fd) {
    if (!isatty(fd)) return 120;
    struct winsize ws;
    if (ioctl(fd, TIOCGWINSZ, &ws) == 0 && ws.ws_col >= 20) return ws.ws_col;
    const char *c = getenv("COLUMNS");
    int w = c ? atoi(c) : 0;
    return w >= 20 && w <= 1000 ? w : 80;
}

/* Length of a well-formed UTF-8 sequence of a printable code point at s (n bytes left), or 0. */
static size_t utf8_printable(const unsigned char *s, size_t n) {
    unsigned c = s[0];
    size_t len;
    unsigned cp;
    if (c >= 0xc2 && c <= 0xdf) { len = 2; cp = c & 0x1f; }
    else if (c >= 0xe0 && c <= 0xef) { len = 3; cp = c & 0x0f; }
    else if (c >= 0xf0 && c <= 0xf4) { len = 4; cp = c & 0x07; }
    else return 0;
    if (n < len) return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80) return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff))) return 0; /* overlong / too big */
    if (cp >= 0xd800 && cp <= 0xdfff) return 0;    /* surrogates */
    if (cp >= 0x80 && cp <= 0x9f) return 0;        /* C1 controls */
    if (cp == 0x2028 || cp == 0x2029 || cp == 0x200e || cp == 0x200f || (cp >= 0x202a && cp <= 0x202e) ||
        (cp >= 0x2066 && cp <= 0x2069))
        return 0; /* line separators and bidirectional overrides */
    return len;
}

size_t escape_bytes(char *out, size_t cap, const void *in, size_t n, int keep_utf8) {
    const unsigned char *s = in;
    size_t o = 0;
    if (cap == 0) return 0;
    for (size_t i = 0; i < n;) {
        char piece[8];
        size_t plen = 0, adv = 1;
        unsigned c = s[i];
        size_t u = keep_utf8 && c >= 0x80 ? utf8_printable(s + i, n - i) : 0;
        if (u) {
            memcpy(piece, s + i, u);
            plen = u;
            adv = u;
        } else if (c == '\\') plen = (size_t)snprintf(piece, sizeof piece, "\\\\");
        else if (c == '\n') plen = (size_t)snprintf(piece, sizeof piece, "\\n");
        else if (c == '\t') plen = (size_t)snprintf(piece, sizeof piece, "\\t");
        else if (c == '\r') plen = (size_t)snprintf(piece, sizeof piece, "\\r");
        else if (c >= 0x20 && c < 0x7f) {
            piece[0] = (char)c;
            plen = 1;
        } else plen = (size_t)snprintf(piece, sizeof piece, "\\x%02x", c);
        if (o + plen + 1 > cap || (i + adv < n && o + plen + 4 > cap)) {
            /* no room for this piece and an ellipsis after it: end with "..." */
            size_t k = cap >= 4 ? cap - 4 : 0, written = o;
            if (o > k) o = k;
            /* do not cut a kept UTF-8 sequence in half (out[written] and on were never written) */
            while (o > 0 && o < written && ((unsigned char)out[o] & 0xc0) == 0x80) o--;
            for (int d = 0; d < 3 && o + 1 < cap; d++) out[o++] = '.';
            out[o] = '\0';
            return o;
        }
        memcpy(out + o, piece, plen);
        o += plen;
        i += adv;
    }
    out[o] = '\0';
    return o;
}

char term_shade(float t) {
    if (!(t > 0.0f)) return SHADES[0];
    if (t >= 1.0f) return SHADES[N_SHADES - 1];
    int i = (int)(t * N_SHADES);
    return SHADES[i > N_SHADES - 1 ? N_SHADES - 1 : i];
}

/* ---- colour escapes ---- */

static int cube6(unsigned char v) { return v < 48 ? 0 : v < 115 ? 1 : (v - 35) / 40; }

static int rgb_to_256(Rgb c) { return 16 + 36 * cube6(c.r) + 6 * cube6(c.g) + cube6(c.b); }

static void set_bg(FILE *f, Rgb c, TermColor mode) {
    if (mode == TERM_TRUECOLOR) fprintf(f, "\x1b[48;2;%d;%d;%dm", c.r, c.g, c.b);
    else fprintf(f, "\x1b[48;5;%dm", rgb_to_256(c));
}

static void set_fg(FILE *f, Rgb c, TermColor mode) {
    if (mode == TERM_TRUECOLOR) fprintf(f, "\x1b[38;2;%d;%d;%dm", c.r, c.g, c.b);
    else fprintf(f, "\x1b[38;5;%dm", rgb_to_256(c));
}

static void reset(FILE *f) { fputs("\x1b[0m", f); }

static float norm_of(const Panel *pn, float v) { return cmap_norm(pn->cmap, v, pn->lo, pn->hi); }

/* ---- heatmaps ---- */

static int label_width(const Panel *pn) {
    int m = 0;
    for (int r = 0; pn->row_labels && r < pn->rows; r++) {
        int l = (int)strlen(pn->row_labels[r]);
        if (l > m) m = l;
    }
    return m > 14 ? 14 : m;
}

/* A label (escape_bytes' output) in lw columns, right-aligned; a longer one is cut whole pieces
 * at a time (never inside a \xNN escape or a UTF-8 character) and ends in "...". */
static void print_row_label(FILE *f, const Panel *pn, int r, int lw) {
    if (lw == 0) return;
    const char *l = pn->row_labels ? pn->row_labels[r] : "";
    int n = (int)strlen(l);
    if (n <= lw) {
        fprintf(f, "%*s ", lw, l);
        return;
    }
    int keep = 0;
    while (keep < n) {
        unsigned char c = (unsigned char)l[keep];
        int piece = c == '\\' ? (l[keep + 1] == 'x' ? 4 : 2) : c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 1;
        if (keep + piece > lw - 3) break;
        keep += piece;
    }
    fprintf(f, "%*s%.*s... ", lw - 3 - keep, "", keep, l);
}

static void print_scale(FILE *f, const Panel *pn, TermColor mode) {
    char lo[32], hi[32];
    float a = fmaxf(fabsf(pn->lo), fabsf(pn->hi));
    plot_fmt(lo, sizeof lo, cmap_is_diverging(pn->cmap) ? -a : pn->lo);
    plot_fmt(hi, sizeof hi, cmap_is_diverging(pn->cmap) ? a : pn->hi);
    fprintf(f, "  scale %s [", lo);
    for (int i = 0; i < N_SHADES; i++) {
        float t = (float)i / (N_SHADES - 1);
        if (mode == TERM_PLAIN) fputc(SHADES[i], f);
        else {
            set_bg(f, cmap_color(pn->cmap, t), mode);
            fputc(' ', f);
            reset(f);
        }
    }
    fprintf(f, "] %s (%s)\n", hi, cmap_name(pn->cmap));
}

static void heatmap_detail(FILE *f, const Panel *pn, TermColor mode, int lw) {
    /* header: column numbers, two characters per cell, a separator between groups */
    fprintf(f, "%*s", lw ? lw + 1 : 0, "");
    for (int c = 0; c < pn->cols; c++) {
        if (c && pn->col_group && c % pn->col_group == 0) fputc(' ', f);
        fprintf(f, "%2d", c % 100);
    }
    fputc('\n', f);
    for (int r = 0; r < pn->rows; r++) {
        if (r && pn->row_group && r % pn->row_group == 0) fputc('\n', f);
        print_row_label(f, pn, r, lw);
        for (int c = 0; c < pn->cols; c++) {
            if (c && pn->col_group && c % pn->col_group == 0) fputc('|', f);
            float v = pn->v[(size_t)r * pn->cols + c];
            int marked = pn->mark && pn->mark[(size_t)r * pn->cols + c];
            if (isnan(v)) { /* masked (not attended): a glyph no shade uses */
                fputs("//", f);
                continue;
            }
            float t = norm_of(pn, v);
            if (mode == TERM_PLAIN) {
                fputc(term_shade(t), f);
                fputc(marked ? '!' : term_shade(t), f);
            } else {
                Rgb bg = cmap_color(pn->cmap, t);
                set_bg(f, bg, mode);
                if (marked) {
                    int lum = (299 * bg.r + 587 * bg.g + 114 * bg.b) / 1000;
                    Rgb fg = lum > 128 ? (Rgb){0, 0, 0} : (Rgb){255, 255, 255};
                    set_fg(f, fg, mode);
                    fputs("<>", f);
                } else fputs("  ", f);
                reset(f);
            }
        }
        fputc('\n', f);
    }
}

/* Averages of columns c0..c1 of row r, skipping NaN (NaN when all are). */
static float bin_mean(const Panel *pn, int r, int c0, int c1) {
    double s = 0.0;
    int n = 0;
    for (int c = c0; c < c1; c++) {
        float v = pn->v[(size_t)r * pn->cols + c];
        if (!isnan(v)) { s += v; n++; }
    }
    return n ? (float)(s / n) : NAN;
}

static void heatmap_overview(FILE *f, const Panel *pn, TermColor mode, int lw, int width) {
    int room = width - (lw ? lw + 1 : 0);
    int bins = pn->cols < room ? pn->cols : room;
    if (bins < 1) bins = 1;
    if (mode == TERM_PLAIN) {
        for (int r = 0; r < pn->rows; r++) {
            print_row_label(f, pn, r, lw);
            for (int b = 0; b < bins; b++) {
                float v = bin_mean(pn, r, b * pn->cols / bins, (b + 1) * pn->cols / bins);
                fputc(isnan(v) ? '/' : term_shade(norm_of(pn, v)), f);
            }
            fputc('\n', f);
        }
    } else {
        /* two rows per line: upper half block in the foreground colour, lower in the background */
        for (int r = 0; r < pn->rows; r += 2) {
            print_row_label(f, pn, r, lw);
            for (int b = 0; b < bins; b++) {
                int c0 = b * pn->cols / bins, c1 = (b + 1) * pn->cols / bins;
                float top = bin_mean(pn, r, c0, c1), bot = r + 1 < pn->rows ? bin_mean(pn, r + 1, c0, c1) : NAN;
                Rgb empty = {40, 40, 40};
                set_fg(f, isnan(top) ? empty : cmap_color(pn->cmap, norm_of(pn, top)), mode);
                if (r + 1 < pn->rows) set_bg(f, isnan(bot) ? empty : cmap_color(pn->cmap, norm_of(pn, bot)), mode);
                fputs("\xe2\x96\x80", f); /* U+2580 upper half block */
                reset(f);
            }
            fputc('\n', f);
        }
    }
    if (bins < pn->cols) fprintf(f, "  (%d columns averaged into %d)\n", pn->cols, bins);
}

static void print_heatmap(FILE *f, const Panel *pn, TermColor mode, int width) {
    int lw = label_width(pn);
    int groups = pn->col_group ? (pn->cols - 1) / pn->col_group : 0;
    int detail_w = (lw ? lw + 1 : 0) + 2 * pn->cols + groups;
    if (detail_w <= width) heatmap_detail(f, pn, mode, lw);
    else heatmap_overview(f, pn, mode, lw, width);
    print_scale(f, pn, mode);
}

/* ---- bars and lines ---- */

void term_sparkline(FILE *f, const float *v, int n, float lo, float hi, TermColor mode) {
    static const char *const BLOCKS[8] = {"\xe2\x96\x81", "\xe2\x96\x82", "\xe2\x96\x83", "\xe2\x96\x84",
                                          "\xe2\x96\x85", "\xe2\x96\x86", "\xe2\x96\x87", "\xe2\x96\x88"};
    for (int i = 0; i < n; i++) {
        float t = hi > lo ? (v[i] - lo) / (hi - lo) : 0.0f;
        if (isnan(v[i])) { fputc(' ', f); continue; }
        if (mode == TERM_PLAIN) fputc(term_shade(t), f);
        else {
            int k = (int)(t * 8);
            fputs(BLOCKS[k < 0 ? 0 : k > 7 ? 7 : k], f);
        }
    }
}

static void print_bars(FILE *f, const Panel *pn, TermColor mode, int width) {
    if (pn->cols <= 16) {
        int lw = 0;
        for (int c = 0; pn->col_labels && c < pn->cols; c++) {
            int l = (int)strlen(pn->col_labels[c]);
            if (l > lw) lw = l;
        }
        if (lw > 16) lw = 16;
        int room = width - lw - 14;
        if (room > 40) room = 40;
        if (room < 5) room = 5;
        for (int c = 0; c < pn->cols; c++) {
            float v = pn->v[c];
            int n = pn->hi > 0 && isfinite(v) && v > 0 ? (int)lrintf(v / pn->hi * (float)room) : 0;
            fprintf(f, "  %-*.*s ", lw, lw, pn->col_labels ? pn->col_labels[c] : "");
            if (mode != TERM_PLAIN) set_fg(f, cmap_entry(pn->cmap, 90), mode);
            for (int i = 0; i < n; i++) fputs(mode == TERM_PLAIN ? "#" : "\xe2\x96\x88", f);
            if (mode != TERM_PLAIN) reset(f);
            fprintf(f, "%*s %.4f\n", room - n, "", v);
        }
        return;
    }
    char lo[32], hi[32];
    plot_fmt(lo, sizeof lo, pn->lo);
    plot_fmt(hi, sizeof hi, pn->hi);
    fprintf(f, "  %s [", lo);
    term_sparkline(f, pn->v, pn->cols, pn->lo, pn->hi, mode);
    fprintf(f, "] %s\n", hi);
}

static void print_lines(FILE *f, const Panel *pn, TermColor mode) {
    char lo[32], hi[32];
    plot_fmt(lo, sizeof lo, pn->lo);
    plot_fmt(hi, sizeof hi, pn->hi);
    for (int r = 0; r < pn->rows; r++) {
        fprintf(f, "  %s [", lo);
        term_sparkline(f, pn->v + (size_t)r * pn->cols, pn->cols, pn->lo, pn->hi, mode);
        fprintf(f, "] %s\n", hi);
    }
}

void term_print_picture(FILE *f, const Picture *p, TermColor mode, int width) {
    if (p->title[0]) fprintf(f, "%s\n", p->title);
    for (int i = 0; i < p->n; i++) {
        const Panel *pn = &p->panels[i];
        if (pn->title[0]) fprintf(f, "%s\n", pn->title);
        if (pn->kind == PANEL_HEATMAP) print_heatmap(f, pn, mode, width);
        else if (pn->kind == PANEL_BARS) print_bars(f, pn, mode, width);
        else print_lines(f, pn, mode);
    }
}
