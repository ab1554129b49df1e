/* colormap.h: perceptually uniform colormaps (viridis, magma, cividis) and a diverging map
 * (rdbu: blue below the middle, white at it, red above) as 256-entry tables generated from
 * matplotlib by scripts/gen_colormaps.py (viz/colormap_data.h). */
#ifndef SEEK_COLORMAP_H
#define SEEK_COLORMAP_H

#include "image.h"

typedef enum { CMAP_VIRIDIS_ID, CMAP_MAGMA_ID, CMAP_CIVIDIS_ID, CMAP_RDBU_ID, CMAP_COUNT } Cmap;

/* t in [0, 1] (clamped; NaN gives the lowest colour) to a colour. */
Rgb cmap_color(Cmap m, float t);
/* Table entry i (0..255). */
Rgb cmap_entry(Cmap m, int i);
/* Maps v within [lo, hi] to [0, 1]; a diverging map is centred on 0 (range [-a, a], a = max|lo|,|hi|). */
float cmap_norm(Cmap m, float v, float lo, float hi);
int cmap_is_diverging(Cmap m);
const char *cmap_name(Cmap m);
int cmap_by_name(const char *name, Cmap *out);   /* 0, or -1 for an unknown name */

#endif
