/* image.h: an RGB raster, drawing primitives, and PNG files through libpng.
 *
 * Pixels are 8-bit RGB, row-major, (h, w, 3). Coordinates are (x, y) from the top-left corner;
 * drawing outside the image is clipped, never an error. PNG writing and reading use libpng's
 * simplified API (png_image_*); without libpng (no -DSEEK_HAVE_PNG) they return an error.
 * Library tier: functions that can fail return 0 or -1 with a reason in a SeekErr.
 */
#ifndef SEEK_IMAGE_H
#define SEEK_IMAGE_H

#include "common.h"

typedef struct {
    int w, h;
    unsigned char *px;  /* (h, w, 3) */
} Image;

typedef struct { unsigned char r, g, b; } Rgb;

#define IMAGE_MAX_SIDE 16384

int image_init(Image *im, int w, int h, Rgb fill, SeekErr *err);
void image_free(Image *im);
void image_set(Image *im, int x, int y, Rgb c);
Rgb image_get(const Image *im, int x, int y);   /* black outside */
void image_fill_rect(Image *im, int x, int y, int w, int h, Rgb c);
void image_rect_outline(Image *im, int x, int y, int w, int h, Rgb c);
void image_hline(Image *im, int x0, int x1, int y, Rgb c);
void image_vline(Image *im, int x, int y0, int y1, Rgb c);
void image_line(Image *im, int x0, int y0, int x1, int y1, Rgb c);   /* Bresenham */
/* Copies src into dst with its top-left corner at (x, y), clipped. */
void image_blit(Image *dst, const Image *src, int x, int y);

/* PNG files (8-bit RGB). png_write encodes in memory, then writes with write_file_atomic (common.h):
 * an existing file is replaced whole or left as it was; a device or pipe is written in place. */
int png_write(const char *path, const Image *im, SeekErr *err);
int png_read(const char *path, Image *im, SeekErr *err);

#endif
