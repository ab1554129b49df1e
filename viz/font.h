/* font.h: the project's 5x7 bitmap font for labels in PNG pictures.
 *
 * Printable ASCII (32..126) only: callers escape everything else first (escape_bytes in
 * term.h turns control bytes, ESC and non-ASCII into \xHH), and any other byte that reaches the
 * font is drawn as a boxed '?'. A glyph occupies a cell of FONT_CW x FONT_CH pixels at scale 1
 * (one column and one row of spacing included); scale s multiplies both.
 */
#ifndef SEEK_FONT_H
#define SEEK_FONT_H

#include "image.h"

#define FONT_CW 6
#define FONT_CH 8

/* Draws text with its top-left corner at (x, y); returns the x after the last glyph. */
int font_draw(Image *im, int x, int y, const char *text, Rgb c, int scale);
/* Draws text rotated 90 degrees counter-clockwise (reading bottom to top), its bottom-left
 * corner at (x, y). */
void font_draw_up(Image *im, int x, int y, const char *text, Rgb c, int scale);
int font_width(const char *text, int scale);
/* Is pixel (col, row) of the glyph for byte ch set? (tests) */
int font_pixel(unsigned char ch, int col, int row);

#endif
