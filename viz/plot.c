/* plot.c: PNG rendering of pictures (heatmaps with colour bars, bars, lines). See plot.h. */
#include "plot.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "font.h"

static const Rgb WHITE = {255, 255, 255}, BLACK = {0, 0, 0}, GREY = {128, 128, 128}, EMPTY = {220, 220, 220};
static const Rgb MARK = {255, 0, 0};

#define MARGIN 6
#define GROUP_GAP 2
#define MAX_LABEL_CHARS 16

void picture_init(Picture *p, const char *title, int grid_cols) {
    memset(p, 0, sizeof *p);
    snprintf(p->title, sizeof p->title, "%s", title ? title : "");
    p->grid_cols = grid_cols > 0 ? grid_cols : 1;
}

static void panel_free(Panel *pn) {
    free(pn->v);
    free(pn->mark);
    free(pn->row_labels);
    free(pn->col_labels);
}

void picture_free(Picture *p) {
    for (int i = 0; i < p->n; i++) panel_free(&p->panels[i]);
    free(p->panels);
    memset(p, 0, sizeof *p);
}

Panel *picture_add(Picture *p, PanelKind kind, int rows, int cols, const char *title, SeekErr *err) {
    if (rows < 1 || cols < 1 || rows > 4096 || cols > 4096) {
        seek_fail(err, "plot: panel size %dx%d is out of range [1, 4096]", rows, cols);
        return NULL;
    }
    if (p->n == p->cap) {
        int cap = p->cap ? 2 * p->cap : 4;
        Panel *np = realloc(p->panels, (size_t)cap * sizeof *np);
        if (!np) {
            seek_fail(err, "plot: out of memory");
            return NULL;
        }
        p->panels = np;
        p->cap = cap;
    }
    Panel *pn = &p->panels[p->n];
    memset(pn, 0, sizeof *pn);
    pn->v = calloc((size_t)rows * cols, sizeof(float));
    if (!pn->v) {
        seek_fail(err, "plot: out of memory");
        return NULL;
    }
    pn->kind = kind;
    pn->rows = rows;
    pn->cols = cols;
    snprintf(pn->title, sizeof pn->title, "%s", title ? title : "");
    pn->cmap = CMAP_VIRIDIS_ID;
    p->n++;
    return pn;
}

int panel_want_labels(Panel *pn, int rows, int cols, SeekErr *err) {
    if (rows && !pn->row_labels) pn->row_labels = calloc((size_t)pn->rows, sizeof *pn->row_labels);
    if (cols && !pn->col_labels) pn->col_labels = calloc((size_t)pn->cols, sizeof *pn->col_labels);
    if ((rows && !pn->row_labels) || (cols && !pn->col_labels)) return seek_fail(err, "plot: out of memory");
    return 0;
}

int panel_want_marks(Panel *pn, SeekErr *err) {
    if (!pn->mark) pn->mark = calloc((size_t)pn->rows * pn->cols, 1);
    return pn->mark ? 0 : seek_fail(err, "plot: out of memory");
}

void panel_auto_range(Panel *pn) {
    float lo = INFINITY, hi = -INFINITY;
    for (size_t i = 0; i < (size_t)pn->rows * pn->cols; i++) {
        float v = pn->v[i];
        if (!isfinite(v)) continue;
        if (v < lo) lo = v;
        if (v > hi) hi = v;
    }
    if (lo > hi) lo = hi = 0.0f;
    if (pn->kind != PANEL_HEATMAP && lo > 0.0f) lo = 0.0f;
    pn->lo = lo;
    pn->hi = hi;
}

void plot_fmt(char *out, size_t cap, float v) {
    if (v == 0.0f) v = 0.0f; /* no "-0" */
    snprintf(out, cap, "%.3g", v);
}

int panel_cell_px(const Panel *pn) {
    if (pn->cell_px > 0) return pn->cell_px;
    int n = pn->rows > pn->cols ? pn->rows : pn->cols;
    int c = 480 / (n ? n : 1);
    return c < 3 ? 3 : c > 24 ? 24 : c;
}

static int label_chars(const char (*labels)[PLOT_LABEL_LEN], int n) {
    int m = 0;
    for (int i = 0; labels && i < n; i++) {
        int l = (int)strlen(labels[i]);
        if (l > m) m = l;
    }
    return m > MAX_LABEL_CHARS ? MAX_LABEL_CHARS : m;
}

/* draws at most MAX_LABEL_CHARS characters of s */
static void draw_label(Image *im, int x, int y, const char *s, Rgb c, int up) {
    char buf[MAX_LABEL_CHARS + 1];
    snprintf(buf, sizeof buf, "%s", s);
    if (up) font_draw_up(im, x, y, buf, c, 1);
    else font_draw(im, x, y, buf, c, 1);
}

static int groups_before(int i, int group) { return group > 0 ? i / group : 0; }

void heatmap_geometry(const Panel *pn, HeatmapGeom *g) {
    memset(g, 0, sizeof *g);
    g->cell = panel_cell_px(pn);
    int title_h = pn->title[0] ? FONT_CH + 4 : 0;
    int rl = label_chars((const char (*)[PLOT_LABEL_LEN])pn->row_labels, pn->rows);
    int cl = label_chars((const char (*)[PLOT_LABEL_LEN])pn->col_labels, pn->cols);
    g->cells_x = MARGIN + (rl ? rl * FONT_CW + 4 : 0);
    g->cells_y = MARGIN + title_h;
    int gw = pn->cols * g->cell + groups_before(pn->cols - 1, pn->col_group) * GROUP_GAP;
    int gh = pn->rows * g->cell + groups_before(pn->rows - 1, pn->row_group) * GROUP_GAP;
    g->bar_x = g->cells_x + gw + 10;
    g->bar_y = g->cells_y;
    g->bar_w = 12;
    g->bar_h = gh > 64 ? gh : 64;
    char lo[32], hi[32];
    plot_fmt(lo, sizeof lo, pn->lo);
    plot_fmt(hi, sizeof hi, pn->hi);
    int rw = (int)(strlen(lo) > strlen(hi) ? strlen(lo) : strlen(hi)) + 1; /* room for a '-' in the diverging case */
    g->w = g->bar_x + g->bar_w + 4 + rw * FONT_CW + MARGIN;
    int below = cl ? cl * FONT_CW + 6 : 0;
    if (pn->xlabel[0]) below += FONT_CH + 4;
    int h1 = g->cells_y + gh + below, h2 = g->bar_y + g->bar_h + FONT_CH;
    g->h = (h1 > h2 ? h1 : h2) + MARGIN;
    int tw = MARGIN + font_width(pn->title, 1) + MARGIN;
    if (tw > g->w) g->w = tw;
}

void heatmap_cell_xy(const Panel *pn, const HeatmapGeom *g, int r, int c, int *x, int *y) {
    *x = g->cells_x + c * g->cell + groups_before(c, pn->col_group) * GROUP_GAP;
    *y = g->cells_y + r * g->cell + groups_before(r, pn->row_group) * GROUP_GAP;
}

static void range_of(const Panel *pn, float *lo, float *hi) {
    *lo = pn->lo;
    *hi = pn->hi;
    if (cmap_is_diverging(pn->cmap)) {
        float a = fmaxf(fabsf(pn->lo), fabsf(pn->hi));
        *lo = -a;
        *hi = a;
    }
}

static void render_heatmap(const Panel *pn, Image *im) {
    HeatmapGeom g;
    heatmap_geometry(pn, &g);
    if (pn->title[0]) font_draw(im, MARGIN, MARGIN, pn->title, BLACK, 1);
    for (int r = 0; r < pn->rows; r++) {
        int x, y;
        heatmap_cell_xy(pn, &g, r, 0, &x, &y);
        if (pn->row_labels) {
            int l = (int)strlen(pn->row_labels[r]);
            if (l > MAX_LABEL_CHARS) l = MAX_LABEL_CHARS;
            draw_label(im, g.cells_x - 4 - l * FONT_CW, y + (g.cell - 7) / 2, pn->row_labels[r], BLACK, 0);
        }
        for (int c = 0; c < pn->cols; c++) {
            heatmap_cell_xy(pn, &g, r, c, &x, &y);
            float v = pn->v[(size_t)r * pn->cols + c];
            Rgb col = isnan(v) ? EMPTY : cmap_color(pn->cmap, cmap_norm(pn->cmap, v, pn->lo, pn->hi));
            image_fill_rect(im, x, y, g.cell, g.cell, col);
            if (pn->mark && pn->mark[(size_t)r * pn->cols + c]) {
                image_rect_outline(im, x, y, g.cell, g.cell, MARK);
                if (g.cell >= 8) image_rect_outline(im, x + 1, y + 1, g.cell - 2, g.cell - 2, MARK);
            }
        }
    }
    int x_end, y_end;
    heatmap_cell_xy(pn, &g, pn->rows - 1, pn->cols - 1, &x_end, &y_end);
    y_end += g.cell;
    if (pn->col_labels)
        for (int c = 0; c < pn->cols; c++) {
            int x, y;
            heatmap_cell_xy(pn, &g, 0, c, &x, &y);
            int n = (int)strlen(pn->col_labels[c]);
            if (n > MAX_LABEL_CHARS) n = MAX_LABEL_CHARS;
            /* written bottom to top, so the label's end sits just under its column */
            if (g.cell >= 7) draw_label(im, x + (g.cell - 7) / 2, y_end + 3 + n * FONT_CW, pn->col_labels[c], BLACK, 1);
        }
    if (pn->xlabel[0]) {
        int cl = label_chars((const char (*)[PLOT_LABEL_LEN])pn->col_labels, pn->cols);
        font_draw(im, g.cells_x, y_end + (cl ? cl * FONT_CW + 6 : 0) + 2, pn->xlabel, GREY, 1);
    }
    /* colour bar: hi at the top, lo at the bottom, with its range written beside it */
    float lo, hi;
    range_of(pn, &lo, &hi);
    for (int y = 0; y < g.bar_h; y++) {
        float t = g.bar_h > 1 ? 1.0f - (float)y / (float)(g.bar_h - 1) : 0.5f;
        image_hline(im, g.bar_x, g.bar_x + g.bar_w - 1, g.bar_y + y, cmap_color(pn->cmap, t));
    }
    image_rect_outline(im, g.bar_x - 1, g.bar_y - 1, g.bar_w + 2, g.bar_h + 2, GREY);
    char s[32];
    plot_fmt(s, sizeof s, hi);
    font_draw(im, g.bar_x + g.bar_w + 4, g.bar_y, s, BLACK, 1);
    plot_fmt(s, sizeof s, lo);
    font_draw(im, g.bar_x + g.bar_w + 4, g.bar_y + g.bar_h - 7, s, BLACK, 1);
}

/* ---- bars and lines ---- */

#define PLOT_H 150

typedef struct {
    int w, h, ax, ay, aw, ah; /* panel size and the plot area */
} AxesGeom;

static void axes_geometry(const Panel *pn, AxesGeom *g) {
    char lo[32], hi[32];
    plot_fmt(lo, sizeof lo, pn->lo);
    plot_fmt(hi, sizeof hi, pn->hi);
    int yl = (int)(strlen(lo) > strlen(hi) ? strlen(lo) : strlen(hi));
    int title_h = pn->title[0] ? FONT_CH + 4 : 0;
    g->ax = MARGIN + yl * FONT_CW + 4;
    g->ay = MARGIN + title_h;
    if (pn->kind == PANEL_BARS) {
        int bw = 400 / pn->cols;
        bw = bw < 3 ? 3 : bw > 24 ? 24 : bw;
        g->aw = bw * pn->cols;
    } else {
        g->aw = 400;
    }
    g->ah = PLOT_H;
    int cl = pn->kind == PANEL_BARS ? label_chars((const char (*)[PLOT_LABEL_LEN])pn->col_labels, pn->cols) : 0;
    g->w = g->ax + g->aw + MARGIN + 2;
    int tw = MARGIN + font_width(pn->title, 1) + MARGIN;
    if (tw > g->w) g->w = tw;
    g->h = g->ay + g->ah + 4 + (cl ? cl * FONT_CW + 4 : 0) + (pn->xlabel[0] ? FONT_CH + 4 : 0) + MARGIN;
}

static int value_y(const Panel *pn, const AxesGeom *g, float v) {
    float t = pn->hi > pn->lo ? (v - pn->lo) / (pn->hi - pn->lo) : 0.0f;
    if (t < 0.0f) t = 0.0f;
    if (t > 1.0f) t = 1.0f;
    return g->ay + g->ah - 1 - (int)lrintf(t * (float)(g->ah - 1));
}

static void render_axes(const Panel *pn, Image *im) {
    AxesGeom g;
    axes_geometry(pn, &g);
    if (pn->title[0]) font_draw(im, MARGIN, MARGIN, pn->title, BLACK, 1);
    image_vline(im, g.ax - 1, g.ay, g.ay + g.ah, GREY);
    image_hline(im, g.ax - 1, g.ax + g.aw, g.ay + g.ah, GREY);
    char s[32];
    plot_fmt(s, sizeof s, pn->hi);
    font_draw(im, g.ax - 3 - font_width(s, 1), g.ay, s, BLACK, 1);
    plot_fmt(s, sizeof s, pn->lo);
    font_draw(im, g.ax - 3 - font_width(s, 1), g.ay + g.ah - 7, s, BLACK, 1);
    if (pn->kind == PANEL_BARS) {
        int bw = g.aw / pn->cols;
        int y0 = value_y(pn, &g, pn->lo > 0 ? pn->lo : 0.0f);
        for (int c = 0; c < pn->cols; c++) {
            float v = pn->v[c];
            if (isfinite(v) && v != 0.0f) { /* a bar; an empty or zero one keeps its label */
                int y1 = value_y(pn, &g, v);
                int gap = bw >= 4 ? 1 : 0;
                image_fill_rect(im, g.ax + c * bw, y1 < y0 ? y1 : y0, bw - gap, abs(y0 - y1) + 1, cmap_entry(pn->cmap, 90));
            }
            if (pn->col_labels && bw >= 7) {
                const char *l = pn->col_labels[c];
                int n = (int)strlen(l) > MAX_LABEL_CHARS ? MAX_LABEL_CHARS : (int)strlen(l);
                draw_label(im, g.ax + c * bw + (bw - 7) / 2, g.ay + g.ah + 4 + n * FONT_CW, l, BLACK, 1);
            }
        }
    } else {
        for (int r = 0; r < pn->rows; r++) {
            Rgb col = cmap_entry(pn->cmap, pn->rows > 1 ? r * 200 / (pn->rows - 1) : 60);
            int px = -1, py = -1;
            for (int c = 0; c < pn->cols; c++) {
                float v = pn->v[(size_t)r * pn->cols + c];
                if (!isfinite(v)) { px = -1; continue; }
                int x = g.ax + (pn->cols > 1 ? c * (g.aw - 1) / (pn->cols - 1) : g.aw / 2);
                int y = value_y(pn, &g, v);
                if (px >= 0) image_line(im, px, py, x, y, col);
                else image_set(im, x, y, col);
                px = x;
                py = y;
            }
        }
    }
    if (pn->xlabel[0]) font_draw(im, g.ax, g.h - MARGIN - 8, pn->xlabel, GREY, 1);
}

int panel_render(const Panel *pn, Image *out, SeekErr *err) {
    int w, h;
    if (pn->kind == PANEL_HEATMAP) {
        HeatmapGeom g;
        heatmap_geometry(pn, &g);
        w = g.w;
        h = g.h;
    } else {
        AxesGeom g;
        axes_geometry(pn, &g);
        w = g.w;
        h = g.h;
    }
    if (image_init(out, w, h, WHITE, err)) return -1;
    if (pn->kind == PANEL_HEATMAP) render_heatmap(pn, out);
    else render_axes(pn, out);
    return 0;
}

int picture_render(const Picture *p, Image *out, SeekErr *err) {
    memset(out, 0, sizeof *out);
    if (p->n == 0) return seek_fail(err, "plot: the picture is empty");
    Image *imgs = calloc((size_t)p->n, sizeof *imgs);
    if (!imgs) return seek_fail(err, "plot: out of memory");
    int rc = 0;
    for (int i = 0; i < p->n && !rc; i++) rc = panel_render(&p->panels[i], &imgs[i], err);
    int gc = p->grid_cols, gr = (p->n + gc - 1) / gc;
    int cw = 0, ch = 0; /* one cell size for the whole grid keeps panels aligned */
    for (int i = 0; i < p->n && !rc; i++) {
        if (imgs[i].w > cw) cw = imgs[i].w;
        if (imgs[i].h > ch) ch = imgs[i].h;
    }
    int title_h = p->title[0] ? 2 * FONT_CH + 8 : 0;
    int W = gc * cw, H = title_h + gr * ch;
    int tw = font_width(p->title, 2) + 2 * MARGIN;
    if (tw > W) W = tw;
    if (!rc) rc = image_init(out, W, H, WHITE, err);
    if (!rc) {
        if (p->title[0]) font_draw(out, MARGIN, MARGIN, p->title, BLACK, 2);
        for (int i = 0; i < p->n; i++) image_blit(out, &imgs[i], (i % gc) * cw, title_h + (i / gc) * ch);
    }
    for (int i = 0; i < p->n; i++) image_free(&imgs[i]);
    free(imgs);
    return rc;
}

int picture_write_png(const Picture *p, const char *path, SeekErr *err) {
    Image im;
    if (picture_render(p, &im, err)) return -1;
    int rc = png_write(path, &im, err);
    image_free(&im);
    return rc;
}
