/* image.c: RGB raster, drawing primitives, PNG through libpng. See image.h. */
#include "image.h"

#include <stdlib.h>
#include <string.h>

#ifdef SEEK_HAVE_PNG
#include <png.h>
#endif

int image_init(Image *im, int w, int h, Rgb fill, SeekErr *err) {
    memset(im, 0, sizeof *im);
    if (w < 1 || h < 1 || w > IMAGE_MAX_SIDE || h > IMAGE_MAX_SIDE)
        return seek_fail(err, "image: size %dx%d is out of range [1, %d]", w, h, IMAGE_MAX_SIDE);
    im->px = malloc((size_t)w * h * 3);
    if (!im->px) return seek_fail(err, "image: out of memory for %dx%d pixels", w, h);
    im->w = w;
    im->h = h;
    /* the first row pixel by pixel, then every other row a copy of it (a 1920-wide picture has
     * two million pixels: one loop over them all was most of the rllog fuzz target's time) */
    for (int x = 0; x < w; x++) {
        im->px[3 * x] = fill.r;
        im->px[3 * x + 1] = fill.g;
        im->px[3 * x + 2] = fill.b;
    }
    for (int y = 1; y < h; y++) memcpy(im->px + (size_t)y * w * 3, im->px, (size_t)w * 3);
    return 0;
}

void image_free(Image *im) {
    free(im->px);
    memset(im, 0, sizeof *im);
}

void image_set(Image *im, int x, int y, Rgb c) {
    if (x < 0 || y < 0 || x >= im->w || y >= im->h) return;
    unsigned char *p = im->px + ((size_t)y * im->w + x) * 3;
    p[0] = c.r;
    p[1] = c.g;
    p[2] = c.b;
}

Rgb image_get(const Image *im, int x, int y) {
    Rgb c = {0, 0, 0};
    if (x < 0 || y < 0 || x >= im->w || y >= im->h) return c;
    const unsigned char *p = im->px + ((size_t)y * im->w + x) * 3;
    c.r = p[0];
    c.g = p[1];
    c.b = p[2];
    return c;
}

void image_fill_rect(Image *im, int x, int y, int w, int h, Rgb c) {
    int x0 = x < 0 ? 0 : x, y0 = y < 0 ? 0 : y;
    int x1 = x + w > im->w ? im->w : x + w, y1 = y + h > im->h ? im->h : y + h;
    for (int yy = y0; yy < y1; yy++)
        for (int xx = x0; xx < x1; xx++) image_set(im, xx, yy, c);
}

void image_hline(Image *im, int x0, int x1, int y, Rgb c) {
    if (x0 > x1) { int t = x0; x0 = x1; x1 = t; }
    for (int x = x0; x <= x1; x++) image_set(im, x, y, c);
}

void image_vline(Image *im, int x, int y0, int y1, Rgb c) {
    if (y0 > y1) { int t = y0; y0 = y1; y1 = t; }
    for (int y = y0; y <= y1; y++) image_set(im, x, y, c);
}

void image_rect_outline(Image *im, int x, int y, int w, int h, Rgb c) {
    if (w < 1 || h < 1) return;
    image_hline(im, x, x + w - 1, y, c);
    image_hline(im, x, x + w - 1, y + h - 1, c);
    image_vline(im, x, y, y + h - 1, c);
    image_vline(im, x + w - 1, y, y + h - 1, c);
}

void image_line(Image *im, int x0, int y0, int x1, int y1, Rgb c) {
    int dx = abs(x1 - x0), sx = x0 < x1 ? 1 : -1;
    int dy = -abs(y1 - y0), sy = y0 < y1 ? 1 : -1;
    int e = dx + dy;
    for (;;) {
        image_set(im, x0, y0, c);
        if (x0 == x1 && y0 == y1) break;
        int e2 = 2 * e;
        if (e2 >= dy) { e += dy; x0 += sx; }
        if (e2 <= dx) { e += dx; y0 += sy; }
    }
}

void image_blit(Image *dst, const Image *src, int x, int y) {
    for (int yy = 0; yy < src->h; yy++)
        for (int xx = 0; xx < src->w; xx++) image_set(dst, x + xx, y + yy, image_get(src, xx, yy));
}

#ifdef SEEK_HAVE_PNG
/* Encoded in memory first, then written by write_file_atomic: a failed write (a full disk) leaves
 * an existing picture whole, and a device such as /dev/null is written in place, never replaced
 * (libpng's own png_image_write_to_file removes the file when a write fails). */
int png_write(const char *path, const Image *im, SeekErr *err) {
    png_image p;
    memset(&p, 0, sizeof p);
    p.version = PNG_IMAGE_VERSION;
    p.width = (png_uint_32)im->w;
    p.height = (png_uint_32)im->h;
    p.format = PNG_FORMAT_RGB;
    png_alloc_size_t size = 0;
    if (!png_image_write_get_memory_size(p, size, 0, im->px, 0, NULL)) {
        int rc = seek_fail(err, "png: cannot write '%s': %s", path, p.message);
        png_image_free(&p);
        return rc;
    }
    void *buf = malloc(size ? size : 1);
    if (!buf) return seek_fail(err, "png: cannot write '%s': out of memory for %zu bytes", path, (size_t)size);
    if (!png_image_write_to_memory(&p, buf, &size, 0, im->px, 0, NULL)) {
        int rc = seek_fail(err, "png: cannot write '%s': %s", path, p.message);
        png_image_free(&p);
        free(buf);
        return rc;
    }
    int rc = write_file_atomic(path, buf, (size_t)size, err);
    free(buf);
    return rc ? seek_fail_prefix(err, "png") : 0;
}

int png_read(const char *path, Image *im, SeekErr *err) {
    png_image p;
    memset(&p, 0, sizeof p);
    memset(im, 0, sizeof *im);
    p.version = PNG_IMAGE_VERSION;
    if (!png_image_begin_read_from_file(&p, path)) return seek_fail(err, "png: cannot read '%s': %s", path, p.message);
    if (p.width < 1 || p.height < 1 || p.width > IMAGE_MAX_SIDE || p.height > IMAGE_MAX_SIDE) {
        png_image_free(&p);
        return seek_fail(err, "png: '%s' is %ux%u, outside [1, %d]", path, p.width, p.height, IMAGE_MAX_SIDE);
    }
    p.format = PNG_FORMAT_RGB;
    Rgb black = {0, 0, 0};
    if (image_init(im, (int)p.width, (int)p.height, black, err)) {
        png_image_free(&p);
        return -1;
    }
    if (!png_image_finish_read(&p, NULL, im->px, 0, NULL)) {
        image_free(im);
        return seek_fail(err, "png: cannot decode '%s': %s", path, p.message);
    }
    return 0;
}
#else
int png_write(const char *path, const Image *im, SeekErr *err) {
    (void)im;
    return seek_fail(err, "png: cannot write '%s': seek was built without libpng (install libpng-dev and rebuild)", path);
}
int png_read(const char *path, Image *im, SeekErr *err) {
    (void)im;
    return seek_fail(err, "png: cannot read '%s': seek was built without libpng", path);
}
#endif
