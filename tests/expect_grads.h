/* expect_grads.h: the model-level gradient comparison the CPU and CUDA tests share (include after
 * cmocka.h and model.h). Two Models' gradients, tensor by tensor in the parameter table's order:
 * NaN positions equal, and max|got − want| <= rel·max|tensor| + abs·max|all gradients| (a tensor
 * with a tiny gradient of its own, an expert one token chose, is held to the model's scale, as
 * TOL_HF_GRAD_* does against transformers). Prints the worst tensor's share of its limit. */
#ifndef SEEK_TESTS_EXPECT_GRADS_H
#define SEEK_TESTS_EXPECT_GRADS_H

#include <math.h>

static inline void expect_grads_within(const char *what, const Model *got, const Model *want, double rel, double abs_) {
    double gmax = 0, worst = 0;
    const char *worst_name = "";
    for (size_t i = 0; i < want->n_floats; i++) gmax = fmax(gmax, fabs((double)want->arena[i]));
    for (size_t i = 0; i < want->n_params; i++) {
        const ParamInfo *a = &want->params[i], *b = &got->params[i];
        assert_string_equal(a->name, b->name);
        double mw = 0, md = 0;
        for (size_t k = 0; k < a->numel; k++) {
            if (isnan(a->ptr[k]) != isnan(b->ptr[k])) fail_msg("%s: %s[%zu] NaN positions differ", what, a->name, k);
            mw = fmax(mw, fabs((double)a->ptr[k]));
            md = fmax(md, fabs((double)b->ptr[k] - a->ptr[k]));
        }
        double lim = rel * mw + abs_ * gmax;
        if (md > lim) fail_msg("%s: %s: max|diff| %.3g over %.3g", what, a->name, md, lim);
        if (lim > 0 && md / lim > worst) worst = md / lim, worst_name = a->name;
    }
    print_message("  %-50s every gradient within its limit (worst %.0f%% of it: %s)\n", what, 100 * worst, worst_name);
}

#endif
