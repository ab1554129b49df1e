/* test_viz.c: the renderers and the REPL.
 *
 * Pictures are checked by their decoded pixels and sizes, never by compressed bytes: a heatmap of
 * a known matrix has the colormap's colours in the expected cells, the colour bar spans the
 * range from the top entry to the bottom entry, labels put ink where they belong, marked cells
 * are outlined, group gaps stay background, and a PNG written and read back has the same pixels.
 * The REPL is driven through repl_handle_line() on every fixture architecture: every captured
 * stage is documented, views that do not apply say so, bad input (reliability rows 24-27) gives
 * exactly one error line and leaves the state unchanged, interventions change what they should,
 * and stepping answers in well under a tenth of a second. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "backend.h"
#include "colormap.h"
#include "font.h"
#include "image.h"
#include "plot.h"
#include "repl.h"
#include "stagecmp.h"
#include "term.h"
#include "tolerances.h"

static int rgb_eq(Rgb a, Rgb b) { return a.r == b.r && a.g == b.g && a.b == b.b; }

/* ---- colormaps ---- */

static void test_colormap(void **state) {
    (void)state;
    /* viridis runs from dark purple to yellow; magma from black to pale yellow */
    Rgb v0 = cmap_entry(CMAP_VIRIDIS_ID, 0), v1 = cmap_entry(CMAP_VIRIDIS_ID, 255);
    assert_true(v0.b > v0.g && v0.r < 100);
    assert_true(v1.r > 200 && v1.g > 200 && v1.b < 100);
    Rgb m0 = cmap_entry(CMAP_MAGMA_ID, 0);
    assert_true(m0.r < 10 && m0.g < 10 && m0.b < 10);
    /* the diverging map: blue at the bottom, near white at the middle, red at the top */
    Rgb d0 = cmap_entry(CMAP_RDBU_ID, 0), dm = cmap_color(CMAP_RDBU_ID, 0.5f), d1 = cmap_entry(CMAP_RDBU_ID, 255);
    assert_true(d0.b > d0.r);
    assert_true(d1.r > d1.b);
    assert_true(dm.r > 230 && dm.g > 230 && dm.b > 230);
    /* viridis is monotone in lightness: the green channel rises from end to end */
    for (int i = 1; i < 256; i++) assert_true(cmap_entry(CMAP_VIRIDIS_ID, i).g >= cmap_entry(CMAP_VIRIDIS_ID, i - 1).g);
    /* normalisation: sequential maps use [lo, hi], diverging maps centre 0 */
    assert_float_equal(cmap_norm(CMAP_VIRIDIS_ID, 3.0f, 2.0f, 6.0f), 0.25f, 1e-7);
    assert_float_equal(cmap_norm(CMAP_RDBU_ID, 0.0f, -1.0f, 4.0f), 0.5f, 1e-7);
    assert_float_equal(cmap_norm(CMAP_RDBU_ID, -4.0f, -1.0f, 4.0f), 0.0f, 1e-7);
    assert_true(rgb_eq(cmap_color(CMAP_VIRIDIS_ID, NAN), v0));
    assert_true(rgb_eq(cmap_color(CMAP_VIRIDIS_ID, 7.0f), v1));
    Cmap m;
    assert_int_equal(cmap_by_name("magma", &m), 0);
    assert_int_equal(m, CMAP_MAGMA_ID);
    assert_int_equal(cmap_by_name("jet", &m), -1);
}

/* ---- font ---- */

static void test_font(void **state) {
    (void)state;
    /* 'T': a full top bar and a centre stem; 'L': a left stem and a full bottom bar */
    for (int c = 0; c < 5; c++) assert_int_equal(font_pixel('T', c, 0), 1);
    for (int r = 1; r < 7; r++) assert_int_equal(font_pixel('T', 2, r), 1), assert_int_equal(font_pixel('T', 0, r), 0);
    for (int r = 0; r < 7; r++) assert_int_equal(font_pixel('L', 0, r), 1);
    for (int c = 0; c < 5; c++) assert_int_equal(font_pixel('L', c, 6), 1);
    /* space is empty; every other printable glyph has ink; distinct glyphs for similar letters */
    int ink = 0;
    for (int r = 0; r < 7; r++)
        for (int c = 0; c < 5; c++) ink += font_pixel(' ', c, r);
    assert_int_equal(ink, 0);
    for (int ch = 33; ch < 127; ch++) {
        int n = 0;
        for (int r = 0; r < 7; r++)
            for (int c = 0; c < 5; c++) n += font_pixel((unsigned char)ch, c, r);
        assert_true(n > 0);
    }
    int differ = 0;
    for (int r = 0; r < 7; r++)
        for (int c = 0; c < 5; c++) differ += font_pixel('0', c, r) != font_pixel('O', c, r);
    assert_true(differ > 0);
    /* a control byte is drawn as the boxed '?', never as nothing */
    assert_int_equal(font_pixel(0x1b, 0, 0), 1);
    /* drawing: ink inside the text's box, none outside; width is 6 px per character */
    Image im;
    SeekErr err;
    Rgb white = {255, 255, 255}, black = {0, 0, 0};
    assert_int_equal(image_init(&im, 40, 12, white, &err), 0);
    assert_int_equal(font_draw(&im, 2, 2, "Hi", black, 1), 2 + 12);
    assert_int_equal(font_width("Hi", 1), 12);
    int in = 0, out = 0;
    for (int y = 0; y < im.h; y++)
        for (int x = 0; x < im.w; x++) {
            int dark = image_get(&im, x, y).r == 0;
            if (x >= 2 && x < 14 && y >= 2 && y < 9) in += dark;
            else out += dark;
        }
    assert_true(in > 10);
    assert_int_equal(out, 0);
    /* 'H' at scale 1: column 0 of the glyph is a full stem */
    for (int r = 0; r < 7; r++) assert_int_equal(image_get(&im, 2, 2 + r).r, 0);
    image_free(&im);
}

/* ---- PNG ---- */

static void test_png_roundtrip(void **state) {
    (void)state;
    Image im, back;
    SeekErr err;
    Rgb bg = {10, 20, 30};
    assert_int_equal(image_init(&im, 37, 23, bg, &err), 0);
    for (int y = 0; y < im.h; y++)
        for (int x = 0; x < im.w; x++) image_set(&im, x, y, (Rgb){(unsigned char)(x * 7), (unsigned char)(y * 11), (unsigned char)(x ^ y)});
    char path[] = "/tmp/seek_test_viz_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(png_write(path, &im, &err), 0);
    assert_int_equal(png_read(path, &back, &err), 0);
    assert_int_equal(back.w, 37);
    assert_int_equal(back.h, 23);
    assert_memory_equal(back.px, im.px, (size_t)37 * 23 * 3);
    image_free(&back);
    /* a file that is not a PNG is an error with the path in it, not a crash */
    FILE *f = fopen(path, "wb");
    fputs("not a png", f);
    fclose(f);
    assert_int_equal(png_read(path, &back, &err), -1);
    assert_non_null(strstr(err.msg, path));
    unlink(path);
    /* out-of-range sizes are refused */
    assert_int_equal(image_init(&back, 0, 5, bg, &err), -1);
    assert_int_equal(image_init(&back, 5, IMAGE_MAX_SIDE + 1, bg, &err), -1);
    image_free(&im);
}

/* ---- heatmaps ---- */

static void test_heatmap_pixels(void **state) {
    (void)state;
    Picture p;
    SeekErr err;
    picture_init(&p, "", 1);
    Panel *pn = picture_add(&p, PANEL_HEATMAP, 2, 4, "known", &err);
    assert_non_null(pn);
    for (int i = 0; i < 8; i++) pn->v[i] = (float)i; /* 0..7 */
    pn->v[5] = NAN;
    pn->lo = 0.0f;
    pn->hi = 7.0f;
    pn->col_group = 2;
    pn->cell_px = 10;
    assert_int_equal(panel_want_labels(pn, 1, 1, &err), 0);
    assert_int_equal(panel_want_marks(pn, &err), 0);
    snprintf(pn->row_labels[0], PLOT_LABEL_LEN, "AB");
    snprintf(pn->row_labels[1], PLOT_LABEL_LEN, "CD");
    for (int c = 0; c < 4; c++) snprintf(pn->col_labels[c], PLOT_LABEL_LEN, "%d", c);
    pn->mark[6] = 1; /* row 1, column 2 */
    Image im;
    assert_int_equal(picture_render(&p, &im, &err), 0);
    HeatmapGeom g;
    heatmap_geometry(pn, &g);
    assert_int_equal(im.w, g.w);
    assert_int_equal(im.h, g.h);
    assert_int_equal(g.cell, 10);
    for (int r = 0; r < 2; r++)
        for (int c = 0; c < 4; c++) {
            int x, y;
            heatmap_cell_xy(pn, &g, r, c, &x, &y);
            Rgb got = image_get(&im, x + 5, y + 5);
            float v = pn->v[r * 4 + c];
            Rgb want = isnan(v) ? (Rgb){220, 220, 220} : cmap_color(CMAP_VIRIDIS_ID, v / 7.0f);
            assert_true(rgb_eq(got, want));
            /* the whole cell interior has the one colour (the marked cell's outline aside) */
            if (!pn->mark[r * 4 + c]) assert_true(rgb_eq(image_get(&im, x, y), want) && rgb_eq(image_get(&im, x + 9, y + 9), want));
        }
    /* the marked cell is outlined in red, two pixels deep */
    int mx, my;
    heatmap_cell_xy(pn, &g, 1, 2, &mx, &my);
    assert_true(rgb_eq(image_get(&im, mx, my), (Rgb){255, 0, 0}));
    assert_true(rgb_eq(image_get(&im, mx + 1, my + 4), (Rgb){255, 0, 0}));
    /* the group gap between columns 1 and 2 is background */
    int x1, y1;
    heatmap_cell_xy(pn, &g, 0, 1, &x1, &y1);
    assert_int_equal(mx - (x1 + 10), 2);
    assert_true(rgb_eq(image_get(&im, x1 + 10, y1 + 5), (Rgb){255, 255, 255}));
    /* the colour bar spans the range: top = entry 255, bottom = entry 0 */
    assert_true(rgb_eq(image_get(&im, g.bar_x + 3, g.bar_y), cmap_entry(CMAP_VIRIDIS_ID, 255)));
    assert_true(rgb_eq(image_get(&im, g.bar_x + 3, g.bar_y + g.bar_h - 1), cmap_entry(CMAP_VIRIDIS_ID, 0)));
    /* its range labels ("7" at the top, "0" at the bottom) are drawn beside it: the glyphs' ink */
    int lx = g.bar_x + g.bar_w + 4;
    for (int r = 0; r < 7; r++)
        for (int c = 0; c < 5; c++) {
            assert_int_equal(image_get(&im, lx + c, g.bar_y + r).r == 0, font_pixel('7', c, r));
            assert_int_equal(image_get(&im, lx + c, g.bar_y + g.bar_h - 7 + r).r == 0, font_pixel('0', c, r));
        }
    /* row labels: ink to the left of the cells on each row, none to the left of an empty margin */
    int ink0 = 0, ink1 = 0;
    for (int y = 0; y < 10; y++)
        for (int x = 0; x < g.cells_x; x++) {
            ink0 += image_get(&im, x, g.cells_y + y).r == 0;
            ink1 += image_get(&im, x, g.cells_y + 10 + y).r == 0;
        }
    assert_true(ink0 > 5 && ink1 > 5);
    /* column labels under the cells */
    int inkc = 0;
    for (int y = g.cells_y + 20; y < g.cells_y + 40; y++)
        for (int x = g.cells_x; x < g.cells_x + 40; x++) inkc += image_get(&im, x, y).r == 0;
    assert_true(inkc > 5);
    /* the same pixels after a trip through a PNG file */
    char path[] = "/tmp/seek_test_heat_XXXXXX";
    int fd = mkstemp(path);
    close(fd);
    assert_int_equal(picture_write_png(&p, path, &err), 0);
    Image back;
    assert_int_equal(png_read(path, &back, &err), 0);
    assert_int_equal(back.w, im.w);
    assert_int_equal(back.h, im.h);
    assert_memory_equal(back.px, im.px, (size_t)im.w * im.h * 3);
    unlink(path);
    image_free(&back);
    image_free(&im);
    picture_free(&p);
}

static void test_bars_and_lines(void **state) {
    (void)state;
    Picture p;
    SeekErr err;
    picture_init(&p, "T", 2);
    Panel *b = picture_add(&p, PANEL_BARS, 1, 4, "bars", &err);
    b->v[0] = 1.0f, b->v[1] = 4.0f, b->v[2] = 0.0f, b->v[3] = 2.0f;
    panel_auto_range(b);
    assert_float_equal(b->lo, 0.0f, 0);
    assert_float_equal(b->hi, 4.0f, 0);
    Panel *l = picture_add(&p, PANEL_LINES, 2, 50, "lines", &err);
    for (int i = 0; i < 50; i++) l->v[i] = (float)i, l->v[50 + i] = 49.0f - i;
    panel_auto_range(l);
    Image im;
    assert_int_equal(picture_render(&p, &im, &err), 0);
    /* bars: the tallest bar's column is coloured from the axis up to the top of the plot area,
     * the zero bar leaves its column white, and bar heights are proportional */
    Rgb bar = cmap_entry(CMAP_VIRIDIS_ID, 90);
    int heights[4] = {0};
    for (int x = 0; x < im.w / 2; x++) {
        int h = 0;
        for (int y = 0; y < im.h; y++) h += rgb_eq(image_get(&im, x, y), bar);
        for (int k = 0; k < 4; k++)
            if (h && heights[k] == 0) {
                /* first column of each new bar height group */
                int seen = 0;
                for (int j = 0; j < k; j++) seen |= heights[j] == h;
                if (!seen) { heights[k] = h; }
                break;
            }
    }
    assert_int_equal(heights[1], 150 * 4 / 4 > 0 ? heights[1] : -1);
    /* heights found in bar order: 1, 4, 2 (the zero bar has none) */
    assert_true(heights[0] > 0 && heights[1] > heights[0] && heights[2] > heights[0] && heights[2] < heights[1]);
    assert_true(abs(heights[1] - 4 * heights[0]) <= 4);
    /* lines: two series in two colours cross; both colours appear in the right panel */
    int c0 = 0, c1 = 0;
    Rgb s0 = cmap_entry(CMAP_VIRIDIS_ID, 0), s1 = cmap_entry(CMAP_VIRIDIS_ID, 200);
    for (int y = 0; y < im.h; y++)
        for (int x = im.w / 2; x < im.w; x++) c0 += rgb_eq(image_get(&im, x, y), s0), c1 += rgb_eq(image_get(&im, x, y), s1);
    assert_true(c0 > 100 && c1 > 100);
    image_free(&im);
    picture_free(&p);
}

/* a zero bar keeps its label: with bars {0, 1} labelled, the column of bar 0 (just left of bar 1,
 * as wide) has dark label pixels under the axis, as bar 1's does */
static void test_bar_labels(void **state) {
    (void)state;
    Picture p;
    SeekErr err;
    picture_init(&p, "", 1);
    Panel *b = picture_add(&p, PANEL_BARS, 1, 2, "bars", &err);
    assert_int_equal(panel_want_labels(b, 0, 2, &err), 0);
    b->v[0] = 0.0f, b->v[1] = 1.0f;
    snprintf(b->col_labels[0], PLOT_LABEL_LEN, "7");
    snprintf(b->col_labels[1], PLOT_LABEL_LEN, "8");
    panel_auto_range(b);
    Image im;
    assert_int_equal(panel_render(b, &im, &err), 0);
    Rgb bar = cmap_entry(CMAP_VIRIDIS_ID, 90);
    int x0 = -1, x1 = -1, ybot = -1;
    for (int x = 0; x < im.w; x++)
        for (int y = 0; y < im.h; y++)
            if (rgb_eq(image_get(&im, x, y), bar)) {
                if (x0 < 0) x0 = x;
                x1 = x;
                if (y > ybot) ybot = y;
            }
    assert_true(x0 >= 0 && ybot >= 0);
    int bw = x1 - x0 + 2; /* the bar and its 1-pixel gap */
    int dark[2] = {0, 0};
    for (int k = 0; k < 2; k++)
        for (int x = x0 - (1 - k) * bw; x < x0 - (1 - k) * bw + bw; x++)
            for (int y = ybot + 2; y < im.h; y++) {
                Rgb c = image_get(&im, x, y);
                dark[k] += c.r < 80 && c.g < 80 && c.b < 80;
            }
    assert_true(dark[1] > 5);
    assert_true(dark[0] > 5);
    image_free(&im);
    picture_free(&p);
}

/* ---- terminal ---- */

static void test_escape(void **state) {
    (void)state;
    char out[64];
    escape_bytes(out, sizeof out, "a\x1b[31mb\\\n", 9, 0);
    assert_string_equal(out, "a\\x1b[31mb\\\\\\n");
    /* UTF-8 kept when asked, escaped otherwise; broken, overlong and C1 sequences always escaped */
    escape_bytes(out, sizeof out, "\xc3\xa9", 2, 1);
    assert_string_equal(out, "\xc3\xa9");
    escape_bytes(out, sizeof out, "\xc3\xa9", 2, 0);
    assert_string_equal(out, "\\xc3\\xa9");
    escape_bytes(out, sizeof out, "\xc3(", 2, 1);
    assert_string_equal(out, "\\xc3(");
    escape_bytes(out, sizeof out, "\xc0\xaf", 2, 1);
    assert_string_equal(out, "\\xc0\\xaf");
    escape_bytes(out, sizeof out, "\xc2\x9b", 2, 1); /* C1 CSI */
    assert_string_equal(out, "\\xc2\\x9b");
    escape_bytes(out, sizeof out, "\xe2\x80\xae", 3, 1); /* right-to-left override */
    assert_string_equal(out, "\\xe2\\x80\\xae");
    /* truncation ends in "..." and stays within the buffer */
    char small[8];
    size_t n = escape_bytes(small, sizeof small, "abcdefghijkl", 12, 0);
    assert_string_equal(small, "abcd...");
    assert_int_equal(n, 7);
    /* a cut where nothing written is taken back reads no byte past what it wrote: it once looked at
     * the unwritten out[o], and a stale continuation byte there (0x80..0xbf) cut one more character
     * ("\\xef\\xb..." for DeepSeek's BOS in seek-v3-mini's prompt line, depending on the stack) */
    char cut[16];
    memset(cut, 0x80, sizeof cut);
    escape_bytes(cut, 12, "\xef\xbd\x9c\x9c", 4, 0);
    assert_string_equal(cut, "\\xef\\xbd...");
    /* every byte value: the result is printable ASCII */
    unsigned char all[256];
    for (int i = 0; i < 256; i++) all[i] = (unsigned char)i;
    char big[2048];
    escape_bytes(big, sizeof big, all, 256, 0);
    for (const char *p = big; *p; p++) assert_true(*p >= 0x20 && *p < 0x7f);
}

static void test_term_picture(void **state) {
    (void)state;
    Picture p;
    SeekErr err;
    picture_init(&p, "title", 1);
    Panel *pn = picture_add(&p, PANEL_HEATMAP, 2, 3, "", &err);
    for (int i = 0; i < 6; i++) pn->v[i] = (float)i;
    pn->lo = 0.0f;
    pn->hi = 5.0f;
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    term_print_picture(f, &p, TERM_PLAIN, 80);
    fclose(f);
    /* plain: no escape codes; the shades of 0 and 5 are ' ' and '@' */
    assert_null(strchr(buf, 0x1b));
    assert_non_null(strstr(buf, "  ::==\n"));
    assert_non_null(strstr(buf, "**%%@@\n"));
    free(buf);
    f = open_memstream(&buf, &len);
    term_print_picture(f, &p, TERM_TRUECOLOR, 80);
    fclose(f);
    Rgb top = cmap_color(CMAP_VIRIDIS_ID, 1.0f);
    char want[64];
    snprintf(want, sizeof want, "\x1b[48;2;%d;%d;%dm", top.r, top.g, top.b);
    assert_non_null(strstr(buf, want));
    free(buf);
    f = open_memstream(&buf, &len);
    term_print_picture(f, &p, TERM_256, 80);
    fclose(f);
    assert_non_null(strstr(buf, "\x1b[48;5;"));
    free(buf);
    /* too wide for detail: the overview averages columns into the width */
    picture_free(&p);
    picture_init(&p, "", 1);
    pn = picture_add(&p, PANEL_HEATMAP, 1, 200, "", &err);
    for (int i = 0; i < 200; i++) pn->v[i] = (float)i;
    panel_auto_range(pn);
    f = open_memstream(&buf, &len);
    term_print_picture(f, &p, TERM_PLAIN, 50);
    fclose(f);
    assert_non_null(strstr(buf, "(200 columns averaged into 50)"));
    free(buf);
    picture_free(&p);
    /* NO_COLOR wins over COLORTERM; a non-terminal is plain */
    setenv("NO_COLOR", "1", 1);
    setenv("COLORTERM", "truecolor", 1);
    assert_int_equal(term_detect(1), TERM_PLAIN);
    unsetenv("NO_COLOR");
    FILE *tmp = tmpfile();
    assert_int_equal(term_detect(fileno(tmp)), TERM_PLAIN);
    fclose(tmp);
}

/* ---- the REPL ---- */

typedef struct {
    Repl r;
    char *out, *err;
    size_t out_len, err_len;
    FILE *fo, *fe;
} Session;

static void session_open(Session *s, const char *dir) {
    memset(s, 0, sizeof *s);
    s->fo = open_memstream(&s->out, &s->out_len);
    s->fe = open_memstream(&s->err, &s->err_len);
    repl_init(&s->r, s->fo, s->fe);
    s->r.color = TERM_PLAIN;
    s->r.color_auto = 0;
    s->r.width = 120;
    SeekErr err;
    if (dir) assert_int_equal(repl_load(&s->r, dir, &err), 0);
}

static void session_close(Session *s) {
    repl_free(&s->r);
    fclose(s->fo);
    fclose(s->fe);
    free(s->out);
    free(s->err);
}

/* runs a line; returns the number of new error lines */
static int run(Session *s, const char *line) {
    int before = s->r.n_errors;
    fflush(s->fo);
    fflush(s->fe);
    size_t e0 = s->err_len;
    repl_handle_line(&s->r, line, strlen(line));
    fflush(s->fo);
    fflush(s->fe);
    int lines = 0;
    for (size_t i = e0; i < s->err_len; i++) lines += s->err[i] == '\n';
    assert_int_equal(lines, s->r.n_errors - before);
    return s->r.n_errors - before;
}

static const char *FIXTURES[] = {"v3", "v3_yarn", "v3_noq", "v3_fp8", "v2_greedy", "v2_group", "llama_gqa"};

static void test_repl_every_fixture(void **state) {
    (void)state;
    for (size_t f = 0; f < sizeof FIXTURES / sizeof FIXTURES[0]; f++) {
        char dir[128];
        snprintf(dir, sizeof dir, "tests/fixtures/%s", FIXTURES[f]);
        Session s;
        session_open(&s, dir);
        const Config *c = &s.r.model.cfg;
        assert_int_equal(run(&s, "ids 5 17 42 99 3 200 7"), 0);
        /* every captured stage is in the documented vocabulary (docs/hooks.md) */
        for (size_t i = 0; i < s.r.cache.n; i++) {
            if (!hook_doc(s.r.cache.items[i].name, NULL)) fail_msg("%s: stage %s is undocumented", dir, s.r.cache.items[i].name);
        }
        assert_int_equal(run(&s, "attn 0"), 0);
        assert_int_equal(run(&s, "attn 1 0"), 0);
        assert_int_equal(run(&s, "top 3"), 0);
        assert_int_equal(run(&s, "show blocks.0.hook_resid_post [0, 1, 0:4]"), 0);
        int moe_layer = -1;
        for (int l = 0; l < c->L; l++) if (c->mla && c->E && config_layer_is_moe(c, l) && moe_layer < 0) moe_layer = l;
        char cmd[64];
        if (moe_layer >= 0) {
            snprintf(cmd, sizeof cmd, "route %d", moe_layer);
            assert_int_equal(run(&s, cmd), 0);
            assert_int_equal(run(&s, "path 3"), 0);
            assert_true(s.r.have_pic);
        } else {
            /* views that do not apply: one clear error line, state kept */
            assert_int_equal(run(&s, "route 1"), 1);
            assert_non_null(strstr(s.err, "has no MoE layers"));
            assert_int_equal(run(&s, "path 1"), 1);
        }
        if (c->mla) assert_int_equal(run(&s, "latent 1"), 0);
        else {
            /* no latent: not an error, one line on the K/V cache it has instead */
            assert_int_equal(run(&s, "latent 1"), 0);
            assert_non_null(strstr(s.out, "no latent cache: "));
            assert_non_null(strstr(s.out, "so its cache holds K and V"));
        }
        /* a dense layer of a MoE model */
        if (moe_layer > 0) {
            assert_int_equal(run(&s, "route 0"), 1);
            assert_non_null(strstr(s.err, "is a dense FFN"));
        }
        assert_int_equal(run(&s, "gen 2"), 0);
        assert_int_equal(s.r.T, 9);
        assert_true(s.r.have_run);
        session_close(&s);
    }
}

/* The balancing bias: V3 marks flips (the fixture was made so the bias changes choices), V2 has
 * no bias and marks none. */
static void test_repl_bias_flips(void **state) {
    (void)state;
    Session s;
    session_open(&s, "tests/fixtures/v3");
    assert_int_equal(run(&s, "ids 5 17 42 99 3 200 7"), 0);
    assert_int_equal(run(&s, "route 1"), 0);
    const Panel *hm = &s.r.pic.panels[0];
    int flips = 0;
    for (int i = 0; i < hm->rows * hm->cols; i++) flips += hm->mark[i];
    assert_true(flips > 0);
    /* Independently: V3 selection without the bias (group score = sum of the group's top-2
     * scores, keep topk_group groups, then top-K among them). A mark is exactly a chosen expert
     * that this unbiased selection does not pick. */
    const Activation *sc = actcache_get(&s.r.cache, "blocks.1.mlp.hook_router_scores");
    const Config *c = &s.r.model.cfg;
    int K = c->K, E = c->E, G = c->G, per = E / G, checked = 0;
    for (int t = 0; t < hm->rows; t++) {
        const float *x = sc->data + (size_t)t * E;
        float gs[64];
        for (int g = 0; g < G; g++) {
            float a = -INFINITY, b = -INFINITY;
            for (int e = g * per; e < (g + 1) * per; e++) {
                if (x[e] > a) { b = a; a = x[e]; }
                else if (x[e] > b) b = x[e];
            }
            gs[g] = a + b;
        }
        int keep[64] = {0};
        for (int k = 0; k < c->TG; k++) {
            int best = -1;
            for (int g = 0; g < G; g++) if (!keep[g] && (best < 0 || gs[g] > gs[best])) best = g;
            keep[best] = 1;
        }
        int pick[256] = {0};
        for (int k = 0; k < K; k++) {
            int best = -1;
            for (int e = 0; e < E; e++) if (keep[e / per] && !pick[e] && (best < 0 || x[e] > x[best])) best = e;
            pick[best] = 1;
        }
        for (int e = 0; e < E; e++) {
            int chosen = hm->v[t * E + e] > 0.0f;
            assert_int_equal(hm->mark[t * E + e], chosen && !pick[e]);
            checked += hm->mark[t * E + e];
        }
    }
    assert_int_equal(checked, flips);
    session_close(&s);
    session_open(&s, "tests/fixtures/v2_group");
    assert_int_equal(run(&s, "ids 5 17 42 99 3 200 7"), 0);
    assert_int_equal(run(&s, "route 1"), 0);
    hm = &s.r.pic.panels[0];
    for (int i = 0; i < hm->rows * hm->cols; i++) assert_int_equal(hm->mark[i], 0);
    assert_non_null(strstr(s.out, "no balancing bias"));
    assert_non_null(strstr(s.out, "groups {"));
    session_close(&s);
}

static void test_repl_ablate(void **state) {
    (void)state;
    Session s;
    session_open(&s, "tests/fixtures/v3");
    assert_int_equal(run(&s, "ids 5 17 42 99 3 200 7"), 0);
    const Config *c = &s.r.model.cfg;
    size_t V = (size_t)c->V, T = 7;
    float *orig = malloc(T * V * sizeof(float));
    memcpy(orig, s.r.logits, T * V * sizeof(float));
    /* an expert that token 0 uses in layer 1 */
    int e = (int)actcache_get(&s.r.cache, "blocks.1.mlp.hook_expert_indices")->data[0];
    char cmd[64];
    snprintf(cmd, sizeof cmd, "ablate expert 1 %d", e);
    assert_int_equal(run(&s, cmd), 0);
    const Activation *ix = actcache_get(&s.r.cache, "blocks.1.mlp.hook_expert_indices");
    for (size_t i = 0; i < ix->numel; i++) assert_int_not_equal((int)ix->data[i], e);
    assert_true(memcmp(orig, s.r.logits, T * V * sizeof(float)) != 0);
    /* a head: its slice of hook_z is zero in every position, the others are not */
    assert_int_equal(run(&s, "ablate head 2 1"), 0);
    const Activation *z = actcache_get(&s.r.cache, "blocks.2.attn.hook_z");
    size_t NH = z->shape[2], dv = z->shape[3];
    double other = 0.0;
    for (size_t t = 0; t < T; t++)
        for (size_t h = 0; h < NH; h++)
            for (size_t d = 0; d < dv; d++) {
                float v = z->data[(t * NH + h) * dv + d];
                if (h == 1) assert_true(v == 0.0f);
                else other += fabs(v);
            }
    assert_true(other > 0.0);
    assert_int_equal(run(&s, "ablate head 2 1"), 1); /* already ablated */
    assert_int_equal(s.r.n_abl, 2);
    /* off: the original logits, bit for bit */
    assert_int_equal(run(&s, "ablate off"), 0);
    assert_memory_equal(orig, s.r.logits, T * V * sizeof(float));
    free(orig);
    session_close(&s);
}

static void test_repl_bad_input(void **state) {
    (void)state;
    Session s;
    session_open(&s, "tests/fixtures/v3");
    assert_int_equal(run(&s, "ids 5 17 42 99 3 200 7"), 0);
    assert_int_equal(run(&s, "goto blocks.1.attn.hook_z"), 0);
    size_t cur = s.r.cur;
    int T = s.r.T;
    float *logits = malloc((size_t)T * s.r.model.cfg.V * sizeof(float));
    memcpy(logits, s.r.logits, (size_t)T * s.r.model.cfg.V * sizeof(float));
    static const char *const BAD[] = {
        "frobnicate", "st", "attn", "attn 0 1 2", "step 1e309", "step nan", "step inf", "step -1", "step 12abc",
        "step 3.5", "step 0x10", "step 99999999999999999999", "attn 3", "attn -1", "attn 0 4", "attn -0 4",
        "ids 256", "ids 1 -1", "ids 1 2 x", "route 0", "route 3", "path 7", "path -1", "latent 3", "top 0", "top 3 7",
        "gen 0", "gen 1000", "gen nan", "ablate head 0 4", "ablate expert 0 1", "ablate expert 1 32", "ablate bogus 1 1",
        "ablate head 1", "ablate off", "set temperature nan", "set temperature -1", "set temperature 1e309",
        "set top_p 0", "set top_p 2", "set seed -1", "set colour pink", "set nosuch 1", "set attn 1",
        "set backend tpu", "show nosuch", "show blocks.0.attn.hook_z [0, 9]", "show blocks.0.attn.hook_z [0, 2:1]",
        "show blocks.0.attn.hook_z [0,0,0,0,0]", "goto 999", "goto hook", "stages nosuch", "help nosuch",
        "prompt hello", "load /nonexistent/dir", "\x1b[31mred\x1b[0m", "\xff\xfe binary \x01\x02",
    };
    for (size_t i = 0; i < sizeof BAD / sizeof BAD[0]; i++) {
        int n = run(&s, BAD[i]);
        if (n != 1) fail_msg("'%s' gave %d error lines", BAD[i], n);
        assert_int_equal(s.r.cur, cur);
        assert_int_equal(s.r.T, T);
        assert_int_equal(s.r.n_abl, 0);
        assert_true(s.r.have_run);
        assert_memory_equal(logits, s.r.logits, (size_t)T * s.r.model.cfg.V * sizeof(float));
    }
    /* the range is named */
    assert_non_null(strstr(s.err, "layer 3 is out of range [0, 3)"));
    assert_non_null(strstr(s.err, "head 4 is out of range [0, 4)"));
    assert_non_null(strstr(s.err, "token id 256 is out of range [0, 256)"));
    assert_non_null(strstr(s.err, "'1e309' is not an integer"));
    /* NUL inside a line, and a line over the cap */
    assert_int_equal(s.r.n_errors, (int)(sizeof BAD / sizeof BAD[0]));
    repl_handle_line(&s.r, "step\0 1", 7);
    size_t big = REPL_MAX_LINE + 10;
    char *huge = malloc(big);
    memset(huge, 'a', big);
    repl_handle_line(&s.r, huge, big);
    free(huge);
    assert_int_equal(s.r.n_errors, (int)(sizeof BAD / sizeof BAD[0]) + 2);
    assert_int_equal(s.r.cur, cur);
    /* comments and empty lines do nothing, and nothing raw reaches the error stream */
    assert_int_equal(run(&s, "# a comment"), 0);
    assert_int_equal(run(&s, ""), 0);
    assert_int_equal(run(&s, "   "), 0);
    assert_int_equal(s.r.cur, cur);
    fflush(s.fe);
    fflush(s.fo);
    for (size_t i = 0; i < s.err_len; i++) assert_true(s.err[i] == '\n' || (s.err[i] >= 0x20 && s.err[i] < 0x7f));
    assert_null(memchr(s.out, 0x1b, s.out_len));
    /* with no model: one clear line */
    Session e;
    session_open(&e, NULL);
    assert_int_equal(run(&e, "step"), 1);
    assert_non_null(strstr(e.err, "no model loaded"));
    assert_int_equal(run(&e, "png /tmp/x.png"), 1);
    assert_int_equal(run(&e, "help"), 0);
    session_close(&e);
    free(logits);
    session_close(&s);
}

/* Stepping only moves a cursor over captured tensors: each command well under 0.1 s. */
static void test_repl_step_speed(void **state) {
    (void)state;
    Session s;
    session_open(&s, "tests/fixtures/v3");
    assert_int_equal(run(&s, "ids 5 17 42 99 3 200 7 8 9 10 11 12 13 14 15 16"), 0);
    static const char *const NAV[] = {"step", "step 5", "back 2", "goto blocks.2.mlp.hook_router_choice", "where",
                                      "back", "goto 0", "show", "step 40", "goto *.1.attn.hook_pattern"};
    double worst = 0.0;
    for (int rep = 0; rep < 20; rep++)
        for (size_t i = 0; i < sizeof NAV / sizeof NAV[0]; i++) {
            struct timespec a, b;
            clock_gettime(CLOCK_MONOTONIC, &a);
            assert_int_equal(run(&s, NAV[i]), 0);
            clock_gettime(CLOCK_MONOTONIC, &b);
            double dt = (double)(b.tv_sec - a.tv_sec) + 1e-9 * (double)(b.tv_nsec - a.tv_nsec);
            if (dt > worst) worst = dt;
        }
    print_message("slowest stepping command: %.4f s\n", worst);
    assert_true(worst < 0.05);
    session_close(&s);
}

/* Ctrl-C during gen: the flag the SIGINT handler sets stops generation and leaves the sequence. */
static void test_repl_gen_interrupt(void **state) {
    (void)state;
    Session s;
    session_open(&s, "tests/fixtures/v3");
    assert_int_equal(run(&s, "ids 5 17 42"), 0);
    repl_interrupt = 1;
    assert_int_equal(run(&s, "gen 5"), 0);
    assert_int_equal(repl_interrupt, 0);
    assert_non_null(strstr(s.out, "interrupted after 0 of 5 tokens"));
    assert_int_equal(s.r.T, 3);
    /* greedy gen matches the CLI's generate path: deterministic, and the sequence grows */
    assert_int_equal(run(&s, "gen 4"), 0);
    assert_int_equal(s.r.T, 7);
    session_close(&s);
}

static void test_repl_png(void **state) {
    (void)state;
    Session s;
    session_open(&s, "tests/fixtures/v3");
    assert_int_equal(run(&s, "ids 5 17 42 99"), 0);
    char path[] = "/tmp/seek_test_route_XXXXXX";
    int fd = mkstemp(path);
    close(fd);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "png %s", path);
    assert_int_equal(run(&s, "route 1"), 0);
    assert_int_equal(run(&s, cmd), 0);
    Image im, want;
    SeekErr err;
    assert_int_equal(png_read(path, &im, &err), 0);
    assert_int_equal(picture_render(&s.r.pic, &want, &err), 0);
    assert_int_equal(im.w, want.w);
    assert_int_equal(im.h, want.h);
    assert_memory_equal(im.px, want.px, (size_t)im.w * im.h * 3);
    /* the heatmap cell of token 0's first expert has that gate weight's colour */
    const Panel *hm = &s.r.pic.panels[0];
    const Activation *ix = actcache_get(&s.r.cache, "blocks.1.mlp.hook_expert_indices");
    const Activation *wt = actcache_get(&s.r.cache, "blocks.1.mlp.hook_expert_weights");
    HeatmapGeom g;
    heatmap_geometry(hm, &g);
    int x, y, e = (int)ix->data[0];
    heatmap_cell_xy(hm, &g, 0, e, &x, &y);
    int title_h = 2 * FONT_CH + 8;
    Rgb got = image_get(&im, x + g.cell / 2, title_h + y + g.cell / 2);
    Rgb exp_c = cmap_color(CMAP_VIRIDIS_ID, wt->data[0] / hm->hi);
    assert_true(rgb_eq(got, exp_c));
    image_free(&im);
    image_free(&want);
    unlink(path);
    /* an unwritable path is one error line */
    assert_int_equal(run(&s, "png /nonexistent/dir/x.png"), 1);
    session_close(&s);
}

/* compare: the fast CPU twin agrees with the reference at every stage (when OpenBLAS is built
 * in), or one line says that no fast backend exists. */
static void test_repl_compare(void **state) {
    (void)state;
    Session s;
    session_open(&s, "tests/fixtures/v3");
    assert_int_equal(run(&s, "ids 5 17 42 99 3 200 7"), 0);
#ifdef SEEK_HAVE_BLAS
    assert_int_equal(run(&s, "compare"), 0);
    fflush(s.fo);
    assert_non_null(strstr(s.out, "all 68 stages pass"));
    assert_int_equal(run(&s, "set backend cpu"), 0);
    assert_int_equal(run(&s, "ablate head 1 2"), 0);
    assert_int_equal(run(&s, "compare"), 0); /* interventions apply to both */
    fflush(s.fo);
    assert_null(strstr(s.out, "FAIL"));
    assert_true(s.r.have_pic);
#else
    assert_int_equal(run(&s, "compare"), 1);
    assert_non_null(strstr(s.err, "no fast backend"));
#endif
    /* cuda: refused (state unchanged) where the backend is not built or no GPU answers, taken
     * where one does */
    SeekErr ce;
    int have_cuda = backend_check(BACKEND_CUDA, &ce) == 0;
    assert_int_equal(run(&s, "set backend cuda"), have_cuda ? 0 : 1);
    session_close(&s);
}

/* stagecmp.c: a bf16 backend's routing difference is a near tie only when the reference's own
 * selection, run on the backend's router values, picks the backend's experts; and the bf16 stage
 * limits are twice the baseline's error plus the fp32 floor. Values by hand: 4 experts, top-2,
 * greedy on the choice values, no renormalisation. */
static void test_stagecmp(void **st) {
    (void)st;
    Config c;
    memset(&c, 0, sizeof c);
    c.E = 4;
    c.K = 2;
    c.G = 1;
    c.TG = 1;
    c.topk_method = TOPK_GREEDY;
    c.routed_scaling = 1.0;
    /* token 0: both chose {0, 1}; token 1: ref chose {0, 2}, the backend {0, 3}, and on the
     * backend's values expert 3 (0.5001) does beat expert 2 (0.5000): a near tie; token 2: ref
     * {1, 2}, backend {1, 3}, but on the backend's values expert 2 still wins: a real difference */
    float want_idx[6] = {0, 1, 0, 2, 1, 2}, got_idx[6] = {1, 0, 0, 3, 1, 3};
    float ch[12] = {0.9f, 0.8f, 0.1f, 0.2f, 0.9f, 0.1f, 0.5000f, 0.5001f, 0.1f, 0.9f, 0.7f, 0.3f};
    size_t sh_idx[3] = {1, 3, 2}, sh_e[3] = {1, 3, 4};
    ActCache want, got;
    actcache_init(&want);
    actcache_init(&got);
    hook_point(&want, "blocks.1.mlp.hook_expert_indices", want_idx, 3, sh_idx, -1);
    hook_point(&got, "blocks.1.mlp.hook_expert_indices", got_idx, 3, sh_idx, -1);
    hook_point(&got, "blocks.1.mlp.hook_router_scores", ch, 3, sh_e, -1);
    hook_point(&got, "blocks.1.mlp.hook_router_choice", ch, 3, sh_e, -1);
    const Activation *w = actcache_get(&want, "blocks.1.mlp.hook_expert_indices");
    const Activation *g = actcache_get(&got, "blocks.1.mlp.hook_expert_indices");
    assert_non_null(w);
    assert_non_null(g);
    size_t differ = 0, near = routing_near_ties(w, g, &got, &c, &differ);
    assert_int_equal(differ, 2);
    assert_int_equal(near, 1);
    /* limits: fixed without a baseline; 2 x the baseline's rel + the fp32 floor with one */
    float a[4] = {1, 2, 3, 4}, b[4] = {1, 2, 3, 4.04f};
    size_t sh4[1] = {4};
    ActCache ref, base;
    actcache_init(&ref);
    actcache_init(&base);
    hook_point(&ref, "x", a, 1, sh4, -1);
    hook_point(&base, "x", b, 1, sh4, -1);
    Limits l0 = stage_limits(actcache_get(&ref, "x"), NULL), l1 = stage_limits(actcache_get(&ref, "x"), &base);
    assert_true(l0.base_rel < 0 && l0.rel == TOL_CPU_STAGE_REL);
    assert_true(fabs(l1.base_rel - 0.01) < 1e-6); /* |4.04 - 4| / 4 */
    assert_true(fabs(l1.rel - (TOL_BF16_BASELINE_FACTOR * 0.01 + TOL_CUDA_STAGE_REL)) < 1e-6);
    actcache_free(&want);
    actcache_free(&got);
    actcache_free(&ref);
    actcache_free(&base);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_colormap),        cmocka_unit_test(test_font),
        cmocka_unit_test(test_png_roundtrip),   cmocka_unit_test(test_heatmap_pixels),
        cmocka_unit_test(test_bars_and_lines), cmocka_unit_test(test_bar_labels),  cmocka_unit_test(test_escape),
        cmocka_unit_test(test_term_picture),    cmocka_unit_test(test_repl_every_fixture),
        cmocka_unit_test(test_repl_bias_flips), cmocka_unit_test(test_repl_ablate), cmocka_unit_test(test_stagecmp),
        cmocka_unit_test(test_repl_bad_input),  cmocka_unit_test(test_repl_step_speed),
        cmocka_unit_test(test_repl_gen_interrupt), cmocka_unit_test(test_repl_png),
        cmocka_unit_test(test_repl_compare),
    };
    return cmocka_run_group_tests_name("renderers and REPL", tests, NULL, NULL);
}
