/* backend.c: the --backend switch (see backend.h). */
#include "backend.h"

#include <string.h>

#include "cpu/cpu.h"

const char *backend_name(Backend b) { return b == BACKEND_CPU ? "cpu" : b == BACKEND_CUDA ? "cuda" : "ref"; }

int backend_check(Backend b, SeekErr *err) {
    switch (b) {
    case BACKEND_REF: return 0;
    case BACKEND_CPU:
#ifdef SEEK_HAVE_BLAS
        return 0;
#else
        return seek_fail(err, "--backend cpu: this seek was built without OpenBLAS (NO_BLAS=1 or libopenblas-dev "
                              "missing; 'bash scripts/install-deps.sh' then 'make')");
#endif
    case BACKEND_CUDA:
        return seek_fail(err, "--backend cuda: the CUDA backend is not built yet (issue \"CUDA mirror\"); "
                              "use --backend cpu or ref");
    }
    return seek_fail(err, "backend: unknown backend %d", (int)b);
}

Backend backend_default(void) {
#ifdef SEEK_HAVE_BLAS
    return BACKEND_CPU;
#else
    return BACKEND_REF;
#endif
}

int backend_parse(const char *s, Backend *b, SeekErr *err) {
    if (!strcmp(s, "ref")) *b = BACKEND_REF;
    else if (!strcmp(s, "cpu")) *b = BACKEND_CPU;
    else if (!strcmp(s, "cuda")) *b = BACKEND_CUDA;
    else return seek_fail(err, "--backend: '%s' is not a backend (expected ref, cpu or cuda)", s);
    return backend_check(*b, err);
}

int model_forward_on(Backend b, const Model *m, RunState *s, KVCache *kv, const int *ids, int B, int T, AttnMode mode,
                     ActCache *hooks, float *hidden, float *logits, SeekErr *err) {
    if (backend_check(b, err)) return -1;
#ifdef SEEK_HAVE_BLAS
    if (b == BACKEND_CPU) return model_forward_cpu(m, s, kv, ids, B, T, mode, hooks, hidden, logits, err);
#endif
    return model_forward(m, s, kv, ids, B, T, mode, hooks, hidden, logits, err);
}

int model_generate_on(Backend b, const Model *m, const int *ids, int B, int T, int n, AttnMode mode,
                      const SampleParams *sp, ActCache *hooks, int *out, float *logits_out, SeekErr *err) {
    if (backend_check(b, err)) return -1;
#ifdef SEEK_HAVE_BLAS
    if (b == BACKEND_CPU) return model_generate_cpu(m, ids, B, T, n, mode, sp, hooks, out, logits_out, err);
#endif
    return model_generate(m, ids, B, T, n, mode, sp, hooks, out, logits_out, err);
}
