/* test_model.c: whole-model checks against Hugging Face transformers goldens.
 *
 * Each fixture under tests/fixtures/<name>/ is a tiny random checkpoint made by
 * scripts/gen_fixtures.py with transformers (see tests/fixtures/README.md) plus golden.safetensors:
 * input_ids (B, T), logits (B, T, V), hidden_states (L+1, B, T, C), greedy_ids (B, 8) and, per MoE
 * layer, the router's chosen experts and gate weights. Checked here:
 *   - logits and every hidden-state layer within TOL_HF_*_REL of the golden's largest value;
 *   - MoE routing: the chosen experts of every token as a sorted set, and their gate weights;
 *   - MLA: absorbed attention against naive within TOL_NAIVE_ABSORB_REL;
 *   - greedy generation with the KV cache (naive and absorbed) equal to transformers' greedy
 *     continuation token for token.
 * The fixture list is explicit: a missing fixture is a failure, not a skip. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "forward.h"
#include "model.h"
#include "safetensors.h"
#include "golden.h"
#include "tolerances.h"

#define N_GEN 8

typedef struct {
    Model m;
    StSet golden;
    int B, T;
    int *ids;
    float *logits, *hidden; /* goldens */
} Fixture;

static void open_fixture(Fixture *fx, const char *name) {
    char dir[256], gpath[300];
    snprintf(dir, sizeof dir, "tests/fixtures/%s", name);
    snprintf(gpath, sizeof gpath, "%s/golden.safetensors", dir);
    SeekErr e;
    if (model_load(&fx->m, dir, &e)) fail_msg("%s", e.msg);
    if (stset_open_file(&fx->golden, gpath, &e)) fail_msg("%s", e.msg);
    uint64_t n, b, t;
    fx->ids = load_ids(&fx->golden, "input_ids", &n, &b, &t);
    fx->B = (int)b;
    fx->T = (int)t;
    uint64_t nl, nh;
    fx->logits = xload(&fx->golden, "logits", ST_F32, &nl);
    fx->hidden = xload(&fx->golden, "hidden_states", ST_F32, &nh);
    const Config *c = &fx->m.cfg;
    assert_int_equal(nl, (uint64_t)fx->B * fx->T * c->V);
    assert_int_equal(nh, (uint64_t)(c->L + 1) * fx->B * fx->T * c->C);
}

static void close_fixture(Fixture *fx) {
    model_free(&fx->m);
    stset_close(&fx->golden);
    free(fx->ids);
    free(fx->logits);
    free(fx->hidden);
}

static void run_forward(Fixture *fx, AttnMode mode, ActCache *hooks, float *logits, float *hidden) {
    const Config *c = &fx->m.cfg;
    KVCache kv;
    RunState s;
    SeekErr e;
    if (kvcache_init(&kv, c, fx->B, fx->T, &e) || runstate_init(&s, c, fx->B, fx->T, fx->T, hooks != NULL, &e))
        fail_msg("%s", e.msg);
    if (model_forward(&fx->m, &s, &kv, fx->ids, fx->B, fx->T, mode, hooks, hidden, logits, &e)) fail_msg("%s", e.msg);
    runstate_free(&s);
    kvcache_free(&kv);
}

static int cmp_pair(const void *a, const void *b) {
    const float *x = a, *y = b;
    return (x[0] > y[0]) - (x[0] < y[0]);
}

static void check_fixture(const char *name) {
    Fixture fx;
    memset(&fx, 0, sizeof fx);
    open_fixture(&fx, name);
    const Config *c = &fx.m.cfg;
    size_t nl = (size_t)fx.B * fx.T * c->V, nh = (size_t)(c->L + 1) * fx.B * fx.T * c->C, layer = (size_t)fx.B * fx.T * c->C;
    float *logits = malloc(nl * sizeof(float)), *hidden = malloc(nh * sizeof(float));
    ActCache hooks;
    actcache_init(&hooks);
    actcache_add_pattern(&hooks, "blocks.*.mlp.hook_expert_*");
    run_forward(&fx, ATTN_NAIVE, &hooks, logits, hidden);

    /* logits and hidden states against transformers */
    double el = rel_err(logits, fx.logits, nl);
    print_message("  %-10s logits rel err %.2e", name, el);
    assert_true(el <= TOL_HF_LOGITS_REL);
    double eh_max = 0;
    for (int l = 0; l <= c->L; l++) {
        double eh = rel_err(hidden + l * layer, fx.hidden + l * layer, layer);
        if (eh > TOL_HF_HIDDEN_REL) fail_msg("%s: hidden_states[%d] rel err %.3e", name, l, eh);
        eh_max = fmax(eh_max, eh);
    }
    print_message(", hidden %.2e", eh_max);

    /* routing: chosen experts as sorted sets, gate weights matched by expert */
    int n_moe = 0;
    for (int l = 0; l < c->L; l++) {
        if (!config_layer_is_moe(c, l)) continue;
        n_moe++;
        char ni[96], nw[96];
        snprintf(ni, sizeof ni, "blocks.%d.mlp.hook_expert_indices", l);
        snprintf(nw, sizeof nw, "blocks.%d.mlp.hook_expert_weights", l);
        const Activation *ai = actcache_get(&hooks, ni), *aw = actcache_get(&hooks, nw);
        assert_non_null(ai);
        assert_non_null(aw);
        uint64_t n;
        int *gi = load_ids(&fx.golden, ni, &n, NULL, NULL);
        float *gw = xload(&fx.golden, nw, ST_F32, NULL);
        assert_int_equal(n, ai->numel);
        int K = c->K;
        for (size_t tok = 0; tok < n / K; tok++) {
            float ours[64][2];
            for (int k = 0; k < K; k++) {
                ours[k][0] = ai->data[tok * K + k];
                ours[k][1] = aw->data[tok * K + k];
            }
            qsort(ours, (size_t)K, sizeof ours[0], cmp_pair); /* golden is sorted ascending by expert */
            for (int k = 0; k < K; k++) {
                if ((int)ours[k][0] != gi[tok * K + k])
                    fail_msg("%s: layer %d token %zu: expert set differs at slot %d (%d vs transformers %d)", name, l, tok, k,
                             (int)ours[k][0], gi[tok * K + k]);
                if (fabs(ours[k][1] - gw[tok * K + k]) > TOL_HF_GATE_ABS)
                    fail_msg("%s: layer %d token %zu: gate weight %g vs %g", name, l, tok, ours[k][1], gw[tok * K + k]);
            }
        }
        free(gi);
        free(gw);
    }
    if (n_moe) print_message(", routing equal in %d MoE layer(s)", n_moe);

    /* absorbed MLA equals naive */
    if (c->mla) {
        float *logits2 = malloc(nl * sizeof(float));
        run_forward(&fx, ATTN_ABSORB, NULL, logits2, NULL);
        double ea = rel_err(logits2, logits, nl);
        print_message(", absorb vs naive %.2e", ea);
        assert_true(ea <= TOL_NAIVE_ABSORB_REL);
        free(logits2);
    }

    /* greedy generation with the cache equals transformers' greedy continuation */
    uint64_t ng;
    int *want = load_ids(&fx.golden, "greedy_ids", &ng, NULL, NULL);
    assert_int_equal(ng, (uint64_t)fx.B * N_GEN);
    int out[64];
    SampleParams greedy = {0.0f, 0, 1.0f, 0};
    for (int mode = 0; mode < (c->mla ? 2 : 1); mode++) {
        SeekErr e;
        if (model_generate(&fx.m, fx.ids, fx.B, fx.T, N_GEN, (AttnMode)mode, &greedy, NULL, out, NULL, &e))
            fail_msg("%s", e.msg);
        for (int i = 0; i < fx.B * N_GEN; i++)
            if (out[i] != want[i])
                fail_msg("%s: greedy token %d of sequence %d is %d, transformers says %d (%s attention)", name, i % N_GEN,
                         i / N_GEN, out[i], want[i], mode ? "absorbed" : "naive");
    }
    print_message(", greedy %d tokens x %d equal\n", N_GEN, fx.B);
    free(want);
    free(logits);
    free(hidden);
    actcache_free(&hooks);
    close_fixture(&fx);
}

static void test_v3(void **st) { (void)st; check_fixture("v3"); }
static void test_v3_yarn(void **st) { (void)st; check_fixture("v3_yarn"); }
static void test_v3_noq(void **st) { (void)st; check_fixture("v3_noq"); }
static void test_v3_fp8(void **st) { (void)st; check_fixture("v3_fp8"); }
static void test_v2_greedy(void **st) { (void)st; check_fixture("v2_greedy"); }
static void test_v2_group(void **st) { (void)st; check_fixture("v2_group"); }
static void test_llama_gqa(void **st) { (void)st; check_fixture("llama_gqa"); }

/* Hooks: a prefill followed by decode steps appends along the token axis, so the cache holds
 * one tensor per stage covering every position; and the residual stream stages chain. */
static void test_hooks_decode_append(void **st) {
    (void)st;
    Fixture fx;
    memset(&fx, 0, sizeof fx);
    open_fixture(&fx, "v3");
    ActCache hooks;
    actcache_init(&hooks);
    int out[2 * 3];
    SampleParams greedy = {0.0f, 0, 1.0f, 0};
    SeekErr e;
    if (model_generate(&fx.m, fx.ids, fx.B, fx.T, 3, ATTN_ABSORB, &greedy, &hooks, out, NULL, &e)) fail_msg("%s", e.msg);
    const Activation *a = actcache_get(&hooks, "blocks.0.hook_resid_post");
    assert_non_null(a);
    assert_int_equal(a->ndim, 3);
    assert_int_equal(a->shape[0], (size_t)fx.B);
    assert_int_equal(a->shape[1], (size_t)fx.T + 2); /* prompt + 2 decode steps (the 3rd token is not fed back) */
    const Activation *pre = actcache_get(&hooks, "blocks.1.hook_resid_pre");
    assert_non_null(pre);
    assert_memory_equal(pre->data, a->data, a->numel * sizeof(float));
    const Activation *lat = actcache_get(&hooks, "blocks.1.attn.hook_kv_latent");
    assert_non_null(lat);
    assert_int_equal(lat->shape[2], (size_t)fx.m.cfg.kv_lora_rank);
    assert_non_null(actcache_get(&hooks, "blocks.1.mlp.hook_router_choice"));
    assert_non_null(actcache_get(&hooks, "blocks.0.attn.hook_pattern"));
    assert_non_null(actcache_get(&hooks, "unembed.hook_out"));
    actcache_free(&hooks);
    close_fixture(&fx);
}

/* Interventions through the edit callback: ablating expert 5 of layer 1 (choice -inf) means no
 * token selects it; zeroing head 0 of layer 0 (hook_z) changes the logits. */
static void edit_fn(void *ctx, const char *name, float *x, int ndim, const size_t *shape) {
    (void)ctx;
    if (!strcmp(name, "blocks.1.mlp.hook_router_choice")) {
        size_t E = shape[ndim - 1], rows = 1;
        for (int d = 0; d < ndim - 1; d++) rows *= shape[d];
        for (size_t r = 0; r < rows; r++) x[r * E + 5] = -INFINITY;
    } else if (!strcmp(name, "blocks.0.attn.hook_z")) {
        size_t NH = shape[2], dv = shape[3], rows = shape[0] * shape[1];
        for (size_t r = 0; r < rows; r++)
            for (size_t d = 0; d < dv; d++) x[(r * NH + 0) * dv + d] = 0.0f;
    }
}

static void test_interventions(void **st) {
    (void)st;
    Fixture fx;
    memset(&fx, 0, sizeof fx);
    open_fixture(&fx, "v3");
    const Config *c = &fx.m.cfg;
    size_t nl = (size_t)fx.B * fx.T * c->V;
    float *base = malloc(nl * sizeof(float)), *edited = malloc(nl * sizeof(float));
    ActCache plain, hooks;
    actcache_init(&plain);
    actcache_add_pattern(&plain, "blocks.1.mlp.hook_expert_indices");
    run_forward(&fx, ATTN_NAIVE, &plain, base, NULL);
    const Activation *before = actcache_get(&plain, "blocks.1.mlp.hook_expert_indices");
    int chose5 = 0;
    for (size_t i = 0; i < before->numel; i++) chose5 += before->data[i] == 5.0f;
    assert_true(chose5 > 0); /* the ablation must have something to remove */
    actcache_init(&hooks);
    actcache_add_pattern(&hooks, "blocks.1.mlp.hook_expert_indices");
    hooks.edit = edit_fn;
    run_forward(&fx, ATTN_NAIVE, &hooks, edited, NULL);
    const Activation *after = actcache_get(&hooks, "blocks.1.mlp.hook_expert_indices");
    for (size_t i = 0; i < after->numel; i++) assert_true(after->data[i] != 5.0f);
    assert_true(rel_err(edited, base, nl) > 1e-3);
    free(base);
    free(edited);
    actcache_free(&plain);
    actcache_free(&hooks);
    close_fixture(&fx);
}

/* A checkpoint written by `seek train` (tests/fixtures/trained_v3: a DeepSeek-V3-style model with
 * an MTP module, trained 60 steps on bytes) loads in transformers, whose logits for its golden ids
 * are committed: seek.c's logits for the same file agree (scripts/check_hf_roundtrip.py made them). */
static void test_trained_checkpoint(void **st) {
    (void)st;
    SeekErr e;
    Model m;
    StSet gold;
    if (model_load(&m, "tests/fixtures/trained_v3", &e)) fail_msg("%s", e.msg);
    assert_true(m.has_mtp); /* the MTP weights seek.c wrote are loaded back */
    if (stset_open_file(&gold, "tests/fixtures/trained_v3/golden.safetensors", &e)) fail_msg("%s", e.msg);
    uint64_t n, b, t;
    int *ids = load_ids(&gold, "input_ids", &n, &b, &t);
    uint64_t nl;
    float *want = xload(&gold, "logits", ST_F32, &nl);
    int B = (int)b, T = (int)t;
    assert_int_equal(nl, (uint64_t)B * T * m.cfg.V);
    float *got = malloc(nl * sizeof(float));
    KVCache kv;
    RunState s;
    if (kvcache_init(&kv, &m.cfg, B, T, &e) || runstate_init(&s, &m.cfg, B, T, T, 0, &e)) fail_msg("%s", e.msg);
    if (model_forward(&m, &s, &kv, ids, B, T, ATTN_NAIVE, NULL, NULL, got, &e)) fail_msg("%s", e.msg);
    double err = rel_err(got, want, nl);
    print_message("  trained_v3 logits vs transformers: rel err %.2e\n", err);
    assert_true(err <= TOL_HF_LOGITS_REL);
    runstate_free(&s);
    kvcache_free(&kv);
    free(got);
    free(want);
    free(ids);
    stset_close(&gold);
    model_free(&m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_v3),        cmocka_unit_test(test_v3_yarn),   cmocka_unit_test(test_v3_noq),
        cmocka_unit_test(test_v3_fp8),    cmocka_unit_test(test_v2_greedy), cmocka_unit_test(test_v2_group),
        cmocka_unit_test(test_llama_gqa), cmocka_unit_test(test_hooks_decode_append), cmocka_unit_test(test_interventions), cmocka_unit_test(test_trained_checkpoint),
    };
    return cmocka_run_group_tests_name("model vs transformers", tests, NULL, NULL);
}
