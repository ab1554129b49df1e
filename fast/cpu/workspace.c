/* workspace.c: the room the CPU twins need beyond the reference's scratch, and the thread team
 * they spread whole heads or experts over.
 *
 * The reference's argument lists size scratch for one thread: one (T, T) block for the attention
 * backward, one gather space for the experts. Running whole attention heads or whole experts on
 * every core at once (instead of splitting each of their small products in two, with a fork and
 * a join per product) needs that room once per thread. The twins keep the reference's argument
 * lists, so the room is a named slot of this file: one buffer per slot and calling thread, grown
 * to the largest request (64-byte aligned) and kept, so a training loop allocates it once. A
 * request that cannot be met returns NULL and the twin takes its one-thread path, which needs
 * only the reference's scratch; nothing is lost. */
#ifdef SEEK_HAVE_BLAS
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "cpu/cpu.h"

typedef struct {
    void *p;
    size_t bytes;
} Slot;

/* per calling thread: two application threads running the twins never share a buffer */
static _Thread_local Slot slots[CPU_WS_SLOTS];

void *cpu_workspace(int slot, size_t bytes) {
    if (slot < 0 || slot >= CPU_WS_SLOTS) return NULL;
    Slot *s = &slots[slot];
    if (bytes <= s->bytes) return s->p;
    size_t rounded = (bytes + 63) / 64 * 64;
    if (rounded < bytes) return NULL; /* overflow */
    void *p = aligned_alloc(64, rounded);
    if (!p) return NULL;
    free(s->p);
    s->p = p;
    s->bytes = rounded;
    return p;
}

void cpu_workspace_release(void) {
    for (int i = 0; i < CPU_WS_SLOTS; i++) {
        free(slots[i].p);
        slots[i].p = NULL;
        slots[i].bytes = 0;
    }
}

int cpu_team(void) {
#ifdef _OPENMP
    return omp_in_parallel() ? 1 : omp_get_max_threads();
#else
    return 1;
#endif
}

/* blocks of 64K floats (256 KiB) over the threads, from 1M floats on: one core alone does not
 * reach the memory's write bandwidth */
void cpu_zero(float *p, size_t n) {
    const size_t block = (size_t)1 << 16;
    if (n < ((size_t)1 << 20) || cpu_team() < 2) {
        memset(p, 0, n * sizeof(float));
        return;
    }
    const long nb = (long)((n + block - 1) / block);
#pragma omp parallel for schedule(static)
    for (long b = 0; b < nb; b++) {
        size_t i0 = (size_t)b * block, len = n - i0 < block ? n - i0 : block;
        memset(p + i0, 0, len * sizeof(float));
    }
}

int cpu_thread_count(void) {
#ifdef _OPENMP
    return omp_get_num_threads();
#else
    return 1;
#endif
}

int cpu_thread(void) {
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}
#endif
