/* term.h: terminal output: colour modes, escaping of untrusted bytes, and text renderings of
 * pictures (plot.h).
 *
 * Colour (the NO_COLOR convention, no-color.org): NO_COLOR (set and non-empty) turns colour off; otherwise a
 * terminal gets truecolor when COLORTERM says "truecolor" or "24bit", else the 256-colour
 * cube; anything that is not a terminal gets plain shade characters (" .:-=+*#%@", ASCII only; a masked cell, NaN, is "//", which no shade uses)
 * unless the user asks for colour (`set colour 256|truecolor`).
 * Heatmaps are drawn as labelled two-character cells when they fit the width ("detail") and
 * as half-block rows otherwise ("overview": two rows per character line in colour, one in plain).
 * Bars are one labelled line each (up to 16) or a sparkline; lines are sparklines.
 * Every byte that comes from a model or the user passes through escape_bytes before it is
 * printed, so no ESC or other control byte ever reaches the terminal raw.
 */
#ifndef SEEK_TERM_H
#define SEEK_TERM_H

#include <stdio.h>

#include "plot.h"

typedef enum { TERM_PLAIN, TERM_256, TERM_TRUECOLOR } TermColor;

/* The mode for output to fd from the environment (NO_COLOR, COLORTERM) and isatty(fd). */
TermColor term_detect(int fd);
const char *term_color_name(TermColor c);
/* Columns of the terminal on fd (ioctl, then $COLUMNS), or 120 when it is not a terminal. */
int term_width(int fd);

/* Writes a printable rendering of in[0..n) into out (NUL-terminated, at most cap-1 bytes):
 * printable ASCII as is, backslash as \\, \n \t \r, every other byte as \xHH, except that with
 * keep_utf8 a well-formed UTF-8 sequence of a printable code point (no C1 controls, no
 * surrogates, no overlongs) is kept. A result that does not fit ends in "...".
 * Returns the length written. */
size_t escape_bytes(char *out, size_t cap, const void *in, size_t n, int keep_utf8);

/* The shade character for t in [0, 1] (plain mode). */
char term_shade(float t);
/* Prints the picture. width: the terminal's columns. */
void term_print_picture(FILE *f, const Picture *p, TermColor mode, int width);
/* One line of n values as a sparkline (plain: the shade characters). */
void term_sparkline(FILE *f, const float *v, int n, float lo, float hi, TermColor mode);

#endif
