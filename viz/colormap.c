/* colormap.c: colormap lookup. See colormap.h. */
#include "colormap.h"

#include <math.h>
#include <string.h>

#include "colormap_data.h"

static const unsigned char (*table(Cmap m))[3] {
    switch (m) {
    case CMAP_MAGMA_ID: return CMAP_MAGMA;
    case CMAP_CIVIDIS_ID: return CMAP_CIVIDIS;
    case CMAP_RDBU_ID: return CMAP_RDBU;
    default: return CMAP_VIRIDIS;
    }
}

Rgb cmap_entry(Cmap m, int i) {
    if (i < 0) i = 0;
    if (i > 255) i = 255;
    const unsigned char *e = table(m)[i];
    Rgb c = {e[0], e[1], e[2]};
    return c;
}

Rgb cmap_color(Cmap m, float t) {
    if (!(t > 0.0f)) t = 0.0f; /* NaN too */
    if (t > 1.0f) t = 1.0f;
    return cmap_entry(m, (int)lrintf(t * 255.0f));
}

int cmap_is_diverging(Cmap m) { return m == CMAP_RDBU_ID; }

float cmap_norm(Cmap m, float v, float lo, float hi) {
    if (cmap_is_diverging(m)) {
        float a = fmaxf(fabsf(lo), fabsf(hi));
        return a > 0.0f ? 0.5f + 0.5f * v / a : 0.5f;
    }
    return hi > lo ? (v - lo) / (hi - lo) : 0.5f;
}

static const char *NAMES[CMAP_COUNT] = {"viridis", "magma", "cividis", "rdbu"};

const char *cmap_name(Cmap m) { return m >= 0 && m < CMAP_COUNT ? NAMES[m] : "?"; }

int cmap_by_name(const char *name, Cmap *out) {
    for (int i = 0; i < CMAP_COUNT; i++)
        if (!strcmp(name, NAMES[i])) {
            *out = (Cmap)i;
            return 0;
        }
    return -1;
}
