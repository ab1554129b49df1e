/* plot.h: pictures as data, rendered to PNG (here) or to the terminal (term.h).
 *
 * A Picture is a title and a grid of panels. A panel is
 *   - a heatmap: (rows, cols) values, NaN for an empty cell, optional row/column labels, an
 *     optional mark per cell (outlined: "bias flip" in `route`), optional boundary lines every
 *     col_group columns / row_group rows, a colormap and its range, shown by a colour bar;
 *   - bars: cols values with optional labels (expert load, next-token probabilities);
 *   - lines: rows series of cols points (loss curves).
 * The REPL keeps the last Picture so `png FILE` writes what was just shown.
 *
 * PNG layout of a heatmap panel (all sizes in pixels, font scale 1 = 6x8 per glyph):
 *   title row, then [row labels | cells | gap | colour bar | range labels], then column labels
 *   written bottom-to-top under the cells. Cell size is chosen from the grid size (panel_cell_px).
 */
#ifndef SEEK_PLOT_H
#define SEEK_PLOT_H

#include "colormap.h"
#include "image.h"

typedef enum { PANEL_HEATMAP, PANEL_BARS, PANEL_LINES } PanelKind;

#define PLOT_TITLE_LEN 160
#define PLOT_LABEL_LEN 40

typedef struct {
    PanelKind kind;
    char title[PLOT_TITLE_LEN];
    char xlabel[PLOT_LABEL_LEN], ylabel[PLOT_LABEL_LEN];
    int rows, cols;         /* heatmap (rows, cols); bars: rows = 1, cols bars; lines: rows series x cols points */
    float *v;               /* (rows, cols), NaN = empty */
    unsigned char *mark;    /* (rows, cols) or NULL */
    char (*row_labels)[PLOT_LABEL_LEN]; /* (rows) or NULL; already escaped, printable ASCII */
    char (*col_labels)[PLOT_LABEL_LEN]; /* (cols) or NULL */
    Cmap cmap;
    float lo, hi;           /* colour range (heatmap) or value axis (bars, lines) */
    int col_group, row_group;
    int cell_px;            /* heatmap cell size in the PNG; 0 = chosen by panel_cell_px */
} Panel;

typedef struct {
    char title[PLOT_TITLE_LEN];
    Panel *panels;
    int n, cap;
    int grid_cols;          /* panels per row in the PNG (and in the terminal overview) */
} Picture;

void picture_init(Picture *p, const char *title, int grid_cols);
void picture_free(Picture *p);
/* Adds an empty panel (values zeroed, labels empty) and returns it, or NULL with err set. */
Panel *picture_add(Picture *p, PanelKind kind, int rows, int cols, const char *title, SeekErr *err);
/* Allocates the optional parts. */
int panel_want_labels(Panel *pn, int rows, int cols, SeekErr *err);
int panel_want_marks(Panel *pn, SeekErr *err);
/* Sets lo/hi to the finite min/max of the values (bars and lines: lo = min(0, min)). */
void panel_auto_range(Panel *pn);
int panel_cell_px(const Panel *pn);

/* Renders the picture; out is initialised here (free with image_free). */
int picture_render(const Picture *p, Image *out, SeekErr *err);
int picture_write_png(const Picture *p, const char *path, SeekErr *err);

/* Geometry of a rendered heatmap panel, for tests: where cell (r, c) starts, relative to the
 * panel's top-left corner, and where the colour bar is. */
typedef struct {
    int w, h;               /* panel size */
    int cells_x, cells_y, cell;
    int bar_x, bar_y, bar_w, bar_h;
} HeatmapGeom;
void heatmap_geometry(const Panel *pn, HeatmapGeom *g);
/* Top-left pixel of cell (r, c) within the panel (a 2-pixel gap separates groups). */
void heatmap_cell_xy(const Panel *pn, const HeatmapGeom *g, int r, int c, int *x, int *y);
/* Renders one panel on its own (initialises out). */
int panel_render(const Panel *pn, Image *out, SeekErr *err);

/* Formats a value compactly for axis labels ("%.3g", "-0" shown as "0"). */
void plot_fmt(char *out, size_t cap, float v);

#endif
