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
 * Interventions: a cache may carry one edit callback, called at every hook point (whatever the
 * capture patterns) with the live tensor before it is captured and before the forward uses it
 * further; editing it in place changes the run (TransformerLens' hook functions). The REPL's
 * `ablate head L H` zeroes a head in blocks.L.attn.hook_z; `ablate expert L E` sets the expert's
 * entry of blocks.L.mlp.hook_router_choice to -inf so selection never picks it.
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

/* Called with the stage's name and live tensor; may modify x in place. */
typedef void (*HookEdit)(void *ctx, const char *name, float *x, int ndim, const size_t *shape);

typedef struct ActCache {
    Activation *items;
    size_t n, cap;
    char **patterns;    /* globs; n_patterns == 0 captures everything */
    size_t n_patterns;
    int failed;         /* set when a capture could not be stored */
    HookEdit edit;      /* optional intervention, NULL for none */
    void *edit_ctx;
} ActCache;

void actcache_init(ActCache *c);
/* Adds a capture pattern such as "blocks.*.attn.hook_pattern". */
void actcache_add_pattern(ActCache *c, const char *glob);
void actcache_clear(ActCache *c);   /* drops the captured tensors, keeps the patterns */
void actcache_free(ActCache *c);
const Activation *actcache_get(const ActCache *c, const char *name);

/* Does the cache want this name? (cheap test before building a tensor only hooks need) */
int hook_wants(const ActCache *c, const char *name);

/* The hook point of stage `name`: runs the cache's edit callback on x (if any), then captures x
 * (shape[0..ndim)) if a pattern wants it. tdim is the axis along which a repeated capture of the
 * same name appends (the token axis), or -1 to replace. */
void hook_point(ActCache *c, const char *name, float *x, int ndim, const size_t *shape, int tdim);

#endif
