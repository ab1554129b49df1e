/* grpo_inputs.c: one GRPO group's inputs for a model (grpo.h: grpo_inputs_load): the batch from
 * GROUP.json, and the reference model's log-probabilities of its targets. Kept apart from grpo.c
 * (the file format alone) so the reader's fuzz target links without the model. */
#include <stdlib.h>
#include <string.h>

#include "grpo.h"
#include "train_parts.h"

void grpo_inputs_free(GrpoInputs *x) {
    free(x->ids);
    free(x->targets);
    free(x->weights);
    free(x->adv);
    free(x->ref_lp);
    memset(x, 0, sizeof *x);
}

int grpo_inputs_load(Backend be, const Model *m, const char *path, GrpoInputs *x, SeekErr *err) {
    memset(x, 0, sizeof *x);
    GrpoGroup grp;
    if (grpo_group_load(&grp, path, m->cfg.V, err)) return -1;
    int rc = 0;
    const int B = grp.G, T = grpo_group_T(&grp);
    const size_t N = (size_t)B * T;
    if (T > m->cfg.max_pos) rc = seek_fail(err, "%s: prompt + longest completion is %d tokens, beyond max_position_embeddings %d", path, T, m->cfg.max_pos);
    if (!rc) {
        x->B = B;
        x->T = T;
        x->ids = malloc(N * sizeof(int));
        x->targets = malloc(N * sizeof(int));
        x->weights = malloc(N * sizeof(float));
        x->adv = malloc(N * sizeof(float));
        if (!x->ids || !x->targets || !x->weights || !x->adv) rc = seek_fail(err, "out of memory");
    }
    if (!rc) rc = grpo_group_batch(&grp, m->cfg.eos_id >= 0 ? m->cfg.eos_id : 0, x->ids, x->targets, x->weights, x->adv, err);
    if (!rc && grp.ref) { /* π_ref: the reference model's log-probabilities of the same targets */
        Model ref;
        if (model_load(&ref, grp.ref, err)) rc = seek_fail_prefix(err, "%s: \"ref\"", path);
        else {
            if (config_hash(&ref.cfg) != config_hash(&m->cfg))
                rc = seek_fail(err, "%s: \"ref\" %s is another architecture or size than the model (config differs: %s, vocab %d vs %s, vocab %d)",
                               path, grp.ref, ref.cfg.model_type, ref.cfg.V, m->cfg.model_type, m->cfg.V);
            RunState s;
            KVCache kv;
            float *logits = rc ? NULL : malloc(N * (size_t)m->cfg.V * sizeof(float));
            if (!rc && !logits) rc = seek_fail(err, "out of memory");
            if (!rc && !(x->ref_lp = malloc(N * sizeof(float)))) rc = seek_fail(err, "out of memory");
            if (!rc && (rc = runstate_init(&s, &ref.cfg, B, T, T, 0, err)) == 0) {
                if ((rc = kvcache_init(&kv, &ref.cfg, B, T, err)) == 0) {
                    rc = model_forward_on(be, &ref, &s, &kv, x->ids, B, T, ATTN_NAIVE, NULL, NULL, logits, err);
                    if (!rc) target_logprobs(x->ref_lp, logits, x->targets, (int)N, m->cfg.V);
                    kvcache_free(&kv);
                }
                runstate_free(&s);
            }
            free(logits);
            model_free(&ref);
        }
    }
    x->pt = (PolicyTerms){x->adv, NULL, x->ref_lp, grp.clip, grp.beta};
    grpo_group_free(&grp);
    if (rc) grpo_inputs_free(x);
    return rc;
}

