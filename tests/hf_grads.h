/* hf_grads.h: a model's loss and every parameter gradient on a backend against the transformers
 * (or PyTorch) goldens of a fixture, for each objective a golden file holds (include after
 * cmocka.h, backend.h, pairs.h, safetensors.h and tolerances.h). tests/test_grad.c runs it on ref
 * and cpu, tests/test_cuda.c on cuda. The goldens are scripts/gen_grad_goldens.py's grads and
 * scripts/gen_objective_goldens.py's sft_grads / weighted_grads; the objective's inputs (prompt
 * lengths, weights) are read from the golden file, never computed by the code under test. */
#ifndef SEEK_TESTS_HF_GRADS_H
#define SEEK_TESTS_HF_GRADS_H

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* The objective a golden file holds: next-token (grads.safetensors), SFT (sft_grads, its
 * prompt_len tensor), or the weighted cross-entropy (weighted_grads, its weights tensor). */
typedef enum { OBJ_NEXT, OBJ_SFT, OBJ_WEIGHTED, OBJ_GRPO } GoldenObjective;

static inline void check_model_grads_on(const char *name, GoldenObjective obj, Backend be) {
    char dir[256], gpath[300];
    static const char *files[] = {"grads", "sft_grads", "weighted_grads", "grpo_grads"};
    snprintf(dir, sizeof dir, "tests/fixtures/%s", name);
    snprintf(gpath, sizeof gpath, "%s/%s.safetensors", dir, files[obj]);
    SeekErr e;
    Model m, g;
    StSet gold, golden_in;
    if (model_load(&m, dir, &e)) fail_msg("%s", e.msg);
    if (model_init(&g, &m.cfg, &e)) fail_msg("%s", e.msg);
    if (stset_open_file(&gold, gpath, &e)) fail_msg("%s", e.msg);
    snprintf(gpath, sizeof gpath, "%s/golden.safetensors", dir);
    if (stset_open_file(&golden_in, gpath, &e)) fail_msg("%s", e.msg);
    const StFile *f;
    const StTensor *t = stset_find(&golden_in, "input_ids", &f);
    assert_non_null(t);
    int64_t raw[64];
    assert_true(t->numel <= 64);
    if (st_read_raw(f, t, raw, &e)) fail_msg("%s", e.msg);
    int B = (int)t->shape[0], T = (int)t->shape[1], ids[64];
    for (int i = 0; i < B * T; i++) ids[i] = (int)raw[i];

    /* the objective's inputs, as the golden file states them */
    int *targets = NULL;
    float *weights = NULL;
    if (obj == OBJ_SFT) {
        t = stset_find(&gold, "prompt_len", &f);
        assert_non_null(t);
        assert_int_equal(t->numel, B);
        int64_t P64[64];
        int P[64], len[64];
        if (st_read_raw(f, t, P64, &e)) fail_msg("%s", e.msg);
        for (int b = 0; b < B; b++) P[b] = (int)P64[b], len[b] = T;
        targets = malloc((size_t)B * T * sizeof(int));
        if (sft_targets(targets, ids, B, T, P, len, &e)) fail_msg("%s", e.msg);
    } else if (obj == OBJ_WEIGHTED) {
        t = stset_find(&gold, "weights", &f);
        assert_non_null(t);
        assert_int_equal(t->numel, (size_t)B * T);
        weights = malloc((size_t)B * T * sizeof(float));
        if (st_read_f32(f, t, weights, &e)) fail_msg("%s", e.msg);
    }

    /* GRPO: the group file next to the golden, its batch and π_ref built by the code under test
     * from the file's ids and rewards (the golden's formula is PyTorch's) */
    GrpoInputs gi = {0};
    TrainBatch batch = {ids, targets, weights, NULL};
    if (obj == OBJ_GRPO) {
        char gj[300];
        snprintf(gj, sizeof gj, "%s/grpo_group.json", dir);
        if (grpo_inputs_load(be, &m, gj, &gi, &e)) fail_msg("%s", e.msg);
        B = gi.B, T = gi.T;
        batch = (TrainBatch){gi.ids, gi.targets, gi.weights, &gi.pt};
    }

    /* pre-fill the gradients with 0.25 so a `=` instead of `+=` shows */
    for (size_t i = 0; i < g.n_floats; i++) g.arena[i] = 0.25f;
    double loss;
    if (model_loss_grad_on(be, &m, &g, &batch, B, T, &loss, &e)) fail_msg("%s", e.msg);
    grpo_inputs_free(&gi);
    for (size_t i = 0; i < g.n_floats; i++) g.arena[i] -= 0.25f;
    free(targets);
    free(weights);

    float want_loss;
    t = stset_find(&gold, "loss", &f);
    assert_non_null(t);
    if (st_read_f32(f, t, &want_loss, &e)) fail_msg("%s", e.msg);
    double el = fabs(loss - want_loss) / fabs(want_loss);
    print_message("  %-10s %-8s %-4s loss %.6f (transformers %.6f, rel %.1e)", name, files[obj], backend_name(be), loss,
                  want_loss, el);
    if (obj == OBJ_GRPO) assert_true(fabs(loss - want_loss) <= TOL_HF_POLICY_LOSS_ABS);
    else assert_true(el <= TOL_HF_LOSS_REL);

    /* the largest golden gradient anywhere: the scale of the absolute part of the tolerance */
    double gmax = 0;
    for (size_t i = 0; i < gold.n_entries; i++) {
        const StTensor *gt = gold.entries[i].t;
        if (!strcmp(gt->name, "loss") || !strcmp(gt->name, "prompt_len") || !strcmp(gt->name, "weights")) continue;
        float *buf = malloc(gt->numel * sizeof(float));
        if (st_read_f32(&gold.files[gold.entries[i].file], gt, buf, &e)) fail_msg("%s", e.msg);
        for (size_t k = 0; k < gt->numel; k++) gmax = fmax(gmax, fabs((double)buf[k]));
        free(buf);
    }
    double worst = 0;
    const char *worst_name = "";
    size_t checked = 0;
    for (size_t i = 0; i < g.n_params; i++) {
        const ParamInfo *p = &g.params[i];
        t = stset_find(&gold, p->name, &f);
        if (p->mtp) { /* MTP modules are not part of transformers' model: untouched by this loss */
            assert_null(t);
            for (size_t k = 0; k < p->numel; k++) assert_true(p->ptr[k] == 0.0f);
            continue;
        }
        if (!t) {
            /* only the balancing bias has no gradient in transformers */
            if (!strstr(p->name, "e_score_correction_bias")) fail_msg("%s: no golden gradient for %s", name, p->name);
            for (size_t k = 0; k < p->numel; k++) assert_true(p->ptr[k] == 0.0f);
            continue;
        }
        assert_int_equal(t->numel, p->numel);
        float *want = malloc(p->numel * sizeof(float));
        if (st_read_f32(f, t, want, &e)) fail_msg("%s", e.msg);
        double md = 0, mw = 0;
        for (size_t k = 0; k < p->numel; k++) {
            md = fmax(md, fabs((double)p->ptr[k] - want[k]));
            mw = fmax(mw, fabs((double)want[k]));
        }
        /* |diff| <= rtol·max|this tensor| + atol·max|any gradient| (tolerances.h says why) */
        double limit = TOL_HF_GRAD_REL * mw + TOL_HF_GRAD_ABS * gmax;
        double ratio = md / limit;
        if (ratio > worst) { worst = ratio; worst_name = p->name; }
        if (md > limit)
            fail_msg("%s: gradient of %s: max abs diff %.3e, max |golden| %.3e, limit %.3e", name, p->name, md, mw, limit);
        free(want);
        checked++;
    }
    print_message(", %zu gradient tensors, worst at %.0f%% of its limit (%s)\n", checked, 100 * worst, worst_name);
    stset_close(&gold);
    stset_close(&golden_in);
    model_free(&m);
    model_free(&g);
}

#endif
