/* backend.h: which implementation runs a model — the reference (ref/), the fast CPU twins
 * (fast/cpu/, OpenBLAS + OpenMP) or CUDA (fast/cuda/, not built yet) — chosen with
 * `--backend ref|cpu|cuda` on the commands that run a model. Direct calls through one switch;
 * no tables of function pointers.
 *
 * Training (grad/train) adds its entry points here the same way once the backward passes land.
 */
#ifndef SEEK_BACKEND_H
#define SEEK_BACKEND_H

#include "forward.h"

typedef enum { BACKEND_REF, BACKEND_CPU, BACKEND_CUDA } Backend;

const char *backend_name(Backend b);
/* Is it compiled into this binary? If not, err says why and how to get it. */
int backend_check(Backend b, SeekErr *err);
/* The fastest backend present: cuda, then cpu, then ref. */
Backend backend_default(void);
/* "ref", "cpu" or "cuda", present in this build; else a one-line reason. */
int backend_parse(const char *s, Backend *b, SeekErr *err);

/* model_forward / model_generate (ref/forward.h) on the chosen backend. */
int model_forward_on(Backend b, const Model *m, RunState *s, KVCache *kv, const int *ids, int B, int T, AttnMode mode,
                     ActCache *hooks, float *hidden, float *logits, SeekErr *err);
int model_generate_on(Backend b, const Model *m, const int *ids, int B, int T, int n, AttnMode mode,
                      const SampleParams *sp, ActCache *hooks, int *out, float *logits_out, SeekErr *err);

#endif
