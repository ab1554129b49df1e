/* hooks.h: named stages of the forward pass and the activation cache that captures them.
 *
 * The forward calls hook_point() once per stage with the stage's hook name (TransformerLens
 * style, docs/conventions.md: "hook_embed", "blocks.3.attn.hook_pattern",
 * "blocks.3.mlp.hook_expert_indices", ...) and the tensor. With no cache (NULL) that is a no-op.
 * With a cache, the tensor is copied when its name matches one of the cache's patterns
 * (shell-style globs, fnmatch; none = everything). When the same name is hit again (decoding
 * token by token) the new rows are appended along the token axis `tdim`, so a prefill followed
 * by n decode steps leaves one tensor per stage covering every position.
 *
 * Integer-valued stages (expert indices) are stored as floats holding exact integers.
 * Library tier: capture failures (out of memory) are recorded in the cache and reported by
 * the caller, never fatal.
 */
#ifndef SEEK_HOOKS_H
#define SEEK_HOOKS_H

#include "common.h"

#define HOOK_NAME_LEN 96
#define HOOK_MAX_DIMS 4

typedef struct {
    char name[HOOK_NAME_LEN];
    int ndim;
    size_t shape[HOOK_MAX_DIMS];
    int tdim;           /* the token axis along which later captures append, -1 for none */
    float *data;
    size_t numel;
} Activation;

typedef struct ActCache {
    Activation *items;
    size_t n, cap;
    char **patterns;    /* globs; n_patterns == 0 captures everything */
    size_t n_patterns;
    int failed;         /* set when a capture could not be stored */
} ActCache;

void actcache_init(ActCache *c);
/* Adds a capture pattern such as "blocks.*.attn.hook_pattern". */
void actcache_add_pattern(ActCache *c, const char *glob);
void actcache_clear(ActCache *c);   /* drops the captured tensors, keeps the patterns */
void actcache_free(ActCache *c);
const Activation *actcache_get(const ActCache *c, const char *name);

/* Does the cache want this name? (cheap test before building a tensor only hooks need) */
int hook_wants(const ActCache *c, const char *name);

/* Captures x (shape[0..ndim)) under `name`. tdim is the axis along which a repeated capture of
 * the same name appends (the token axis), or -1 to replace. */
void hook_point(ActCache *c, const char *name, const float *x, int ndim, const size_t *shape, int tdim);

#endif
