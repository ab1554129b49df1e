/* init.c: seeded initialisation of a model's parameters (train_parts.h; docs/model.md §9.7).
 *
 * The distributions are those of transformers' `_init_weights` with initializer_range σ:
 *   every linear weight (attention, dense FFN, experts, shared experts), the token embeddings,
 *   an untied lm_head and the router (mlp.gate.weight):            W ~ N(0, σ²)
 *   every RMSNorm weight (input/post-attention, q_a/kv_a latent norms, model.norm):  1
 *   the V3 balancing bias mlp.gate.e_score_correction_bias:         0
 * A parameter is classified by its table row: 2-D tensors are matrices (normal), the 1-D
 * balancing bias is 0, every other 1-D tensor is a norm weight (1). This also covers MTP's
 * enorm/hnorm/shared_head.norm (1-D) and eh_proj (2-D) when they join the table.
 *
 * Determinism: one Rng (common.h, xorshift64*) seeded with `seed` draws every value, tensor by
 * tensor in table order and element by element in memory order, so a seed gives the same bits
 * on every machine. Routed experts are one table row each, so each expert's slice is drawn in
 * turn; a tied lm_head has no row of its own and shares wte. Normal draws use rng_normal
 * (Box-Muller, two uniforms per value). Norms and the bias draw nothing.
 */
#include "train_parts.h"

#include <string.h>

static int is_balancing_bias(const char *name) { return strstr(name, "e_score_correction_bias") != NULL; }

void model_init_weights(Model *m, uint64_t seed, float sigma) {
    Rng rng;
    rng_seed(&rng, seed);
    for (size_t i = 0; i < m->n_params; i++) {
        const ParamInfo *p = &m->params[i];
        float *w = p->ptr;
        if (p->ndim >= 2) {
            for (size_t k = 0; k < p->numel; k++) w[k] = sigma * rng_normal(&rng);
        } else if (is_balancing_bias(p->name)) {
            for (size_t k = 0; k < p->numel; k++) w[k] = 0.0f;
        } else {
            for (size_t k = 0; k < p->numel; k++) w[k] = 1.0f;
        }
    }
}
