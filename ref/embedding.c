/* embedding.c: token embedding lookup, h = Emb[t] (docs/model.md §2.1).
 * Shapes: ids (N), wte (V, C), out (N, C). Ids are validated by the caller. */
#include <string.h>

#include "ops.h"

void embedding_forward(float *out, const int *ids, const float *wte, int N, int C) {
    for (int n = 0; n < N; n++)
        memcpy(out + (size_t)n * C, wte + (size_t)ids[n] * C, (size_t)C * sizeof(float));
}

/* backward of out[n] = wte[ids[n]]: dwte[ids[n]] += dout[n] (a token used twice gets both). */
void embedding_backward(float *dwte, const float *dout, const int *ids, int N, int C) {
    for (int n = 0; n < N; n++) {
        float *dw = dwte + (size_t)ids[n] * C;
        const float *d = dout + (size_t)n * C;
        for (int i = 0; i < C; i++) dw[i] += d[i];
    }
}
