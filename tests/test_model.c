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
 * And precision as data (ParamInfo.dtype, LoadOpts.keep_stored, model_save_stored): every row
 * reports the dtype its file held; the kept stored bytes and F8 scales equal the file's and
 * dequantise to exactly the fp32 arena; F32 models keep no second arena; writing each row in its
 * stored dtype gives back the file's tensors bit for bit; a scale of the wrong shape for the block
 * size is a one-line error naming it.
 * The fixture list is explicit: a missing fixture is a failure, not a skip. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "forward.h"
#include "backend.h"
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

/* Stopping at EOS (model_generate_stop_on) on the v3 fixture: each row's tokens up to its first
 * stop equal the unstopped generation's. Sampled at temperature 1 on 6 different rows, with stop
 * the token the most rows sample, rows stop at different steps (or never); greedy on 6 copies of
 * one prompt, with stop the greedy continuation's token at step N/2, every row stops at that
 * token's first step, and every position after it is stop. */
static void test_generate_stop(void **st) {
    (void)st;
    Fixture fx;
    memset(&fx, 0, sizeof fx);
    open_fixture(&fx, "v3");
    enum { B = 6, N = 24 };
    int ids[B * 8], full[B * N], cut[B * N];
    const int T = fx.T < 8 ? fx.T : 8;
    SeekErr e;
    for (int pass = 0; pass < 2; pass++) {
        for (int b = 0; b < B; b++)
            for (int t = 0; t < T; t++) ids[b * T + t] = fx.ids[(pass ? 0 : b % fx.B) * fx.T + t] ^ (pass ? 0 : b / fx.B);
        SampleParams sp = {pass ? 0.0f : 1.0f, 0, 1.0f, 1234};
        if (model_generate_on(BACKEND_REF, &fx.m, ids, B, T, N, ATTN_NAIVE, &sp, NULL, full, NULL, &e)) fail_msg("%s", e.msg);
        int stop = full[N / 2], rows_best = 0;
        if (!pass)
            for (int cand = 0; cand < fx.m.cfg.V; cand++) {
                int rows = 0;
                for (int b = 0; b < B; b++)
                    for (int t = 0; t < N; t++)
                        if (full[b * N + t] == cand) { rows++; break; }
                if (rows > rows_best) { rows_best = rows; stop = cand; }
            }
        if (model_generate_stop_on(BACKEND_REF, &fx.m, ids, B, T, N, ATTN_NAIVE, &sp, stop, cut, &e)) fail_msg("%s", e.msg);
        int last = -1;
        for (int b = 0; b < B; b++) {
            int t = 0;
            for (; t < N; t++) {
                assert_int_equal(cut[b * N + t], full[b * N + t]);
                if (full[b * N + t] == stop) break;
            }
            if (t > last) last = t;
        }
        if (pass) {
            assert_true(last <= N / 2);
            for (int b = 0; b < B; b++)
                for (int t = last + 1; t < N; t++) assert_int_equal(cut[b * N + t], stop);
        } else {
            assert_true(rows_best >= 2);
        }
        print_message("%s: stop token %d, %s\n", pass ? "greedy" : "sampled", stop, pass ? "rows cut after it" : "prefixes equal");
    }
    close_fixture(&fx);
}

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

/* ---- precision as data ---- */

/* A fresh temporary folder (removed by rm_folder). */
static void tmp_folder(char *dir, size_t cap) {
    snprintf(dir, cap, "/tmp/seek_prec_XXXXXX");
    if (!mkdtemp(dir)) fail_msg("mkdtemp failed");
}

static void rm_folder(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    char p[4096];
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
            snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
            unlink(p);
        }
    closedir(d);
    rmdir(dir);
}

static void load_opts(Model *m, const char *dir, int keep) {
    SeekErr e;
    LoadOpts o = {.keep_stored = keep};
    if (model_load_opts(m, dir, &o, &e)) fail_msg("%s", e.msg);
}

static void open_weights(StSet *s, const char *dir) {
    SeekErr e;
    if (stset_open_dir(s, dir, &e)) fail_msg("%s", e.msg);
}

/* Every loaded row of m against the files in dir: the reported dtype is the file's; kept bytes
 * equal the file's bytes and decode to exactly the arena value (F8: float(q) * scale_inv per
 * block, scales equal to the file's); F32 rows keep nothing. Counts rows per dtype into n. */
static size_t check_stored(const Model *m, const char *dir, int kept, size_t n[ST_NUM_DTYPES]) {
    StSet set;
    open_weights(&set, dir);
    memset(n, 0, ST_NUM_DTYPES * sizeof *n);
    size_t loaded = 0;
    for (size_t i = 0; i < m->n_params; i++) {
        const ParamInfo *p = &m->params[i];
        if (p->mtp && !m->has_mtp) {
            assert_int_equal(p->dtype, ST_F32);
            continue;
        }
        const StTensor *t = stset_find(&set, p->name, NULL);
        assert_non_null(t);
        if (p->dtype != t->dtype) fail_msg("%s: reports %s, the file holds %s", p->name, st_dtype_name(p->dtype), st_dtype_name(t->dtype));
        n[p->dtype]++;
        loaded++;
        int f8 = p->dtype == ST_F8_E4M3;
        if (p->dtype == ST_F32 || !kept) {
            assert_null(p->stored);
            assert_null(p->scale_inv);
        }
        if (!f8) assert_int_equal(p->block[0] + p->block[1], 0);
        if (p->dtype == ST_F32 || !kept) continue;
        assert_non_null(p->stored);
        assert_int_equal((uintptr_t)p->stored % 64, 0);
        void *raw = xload(&set, p->name, p->dtype, NULL);
        if (memcmp(p->stored, raw, p->numel * st_dtype_size(p->dtype)))
            fail_msg("%s: stored bytes differ from the file's", p->name);
        free(raw);
        if (!f8) {
            assert_null(p->scale_inv);
            const uint16_t *h = p->stored;
            for (size_t k = 0; k < p->numel; k++) {
                float v = p->dtype == ST_BF16 ? bf16_to_f32(h[k]) : f16_to_f32(h[k]);
                if (memcmp(&v, &p->ptr[k], sizeof v)) fail_msg("%s[%zu]: stored decodes to %g, arena %g", p->name, k, v, p->ptr[k]);
            }
            continue;
        }
        /* F8: scales equal the file's F32 scales; dequantising gives the arena bit for bit */
        char sname[160];
        snprintf(sname, sizeof sname, "%s_scale_inv", p->name);
        uint64_t ns;
        float *fs = xload(&set, sname, ST_F32, &ns);
        assert_non_null(p->scale_inv);
        assert_int_equal((uintptr_t)p->scale_inv % 64, 0);
        if (memcmp(p->scale_inv, fs, ns * sizeof(float))) fail_msg("%s: kept scales differ from the file's", sname);
        free(fs);
        size_t rows = p->shape[0], cols = p->numel / rows, br = p->block[0], bc = p->block[1];
        size_t sc = (cols + bc - 1) / bc;
        assert_int_equal(ns, ((rows + br - 1) / br) * sc);
        const uint8_t *q = p->stored;
        for (size_t r = 0; r < rows; r++)
            for (size_t c = 0; c < cols; c++) {
                float w = e4m3_to_f32(q[r * cols + c]) * p->scale_inv[(r / br) * sc + c / bc];
                if (memcmp(&w, &p->ptr[r * cols + c], sizeof w))
                    fail_msg("%s[%zu, %zu]: stored * scale = %g, arena %g", p->name, r, c, w, p->ptr[r * cols + c]);
            }
    }
    stset_close(&set);
    return loaded;
}

/* v3_fp8: 216 projections report F8_E4M3 with block 16x16; the stored bytes, the scales and their
 * dequantisation are the file's; the arena is bitwise the arena of a plain model_load. */
static void test_stored_fp8(void **st) {
    (void)st;
    const char *dir = "tests/fixtures/v3_fp8";
    Model a, b;
    load_opts(&a, dir, 1);
    SeekErr e;
    if (model_load(&b, dir, &e)) fail_msg("%s", e.msg);
    size_t n[ST_NUM_DTYPES];
    size_t loaded = check_stored(&a, dir, 1, n);
    assert_int_equal(n[ST_F8_E4M3], 216);
    assert_true(n[ST_F32] > 0);
    assert_int_equal(n[ST_F8_E4M3] + n[ST_F32], loaded);
    const ParamInfo *kvb = model_param(&a, "model.layers.0.self_attn.kv_b_proj.weight");
    assert_int_equal(kvb->dtype, ST_F8_E4M3);
    assert_int_equal(kvb->block[0], 16);
    assert_int_equal(kvb->block[1], 16);
    assert_non_null(a.stored);
    assert_true(a.stored_bytes >= 216 * 48 * 8);
    assert_int_equal(a.n_floats, b.n_floats);
    assert_memory_equal(a.arena, b.arena, a.n_floats * sizeof(float)); /* keeping changes no bit */
    /* a plain load records the dtypes and block too, and keeps nothing */
    check_stored(&b, dir, 0, n);
    assert_int_equal(n[ST_F8_E4M3], 216);
    assert_null(b.stored);
    assert_int_equal(b.stored_bytes, 0);
    model_free(&a);
    model_free(&b);
    assert_null(a.stored); /* model_free clears the Model */
}

/* v3_noq (BF16, the routing bias F32) and v2_group (F16) report their dtypes and keep their bits. */
static void test_stored_half(void **st) {
    (void)st;
    struct { const char *dir; StDtype d; } cases[] = {{"tests/fixtures/v3_noq", ST_BF16}, {"tests/fixtures/v2_group", ST_F16}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        Model m;
        load_opts(&m, cases[i].dir, 1);
        size_t n[ST_NUM_DTYPES];
        size_t loaded = check_stored(&m, cases[i].dir, 1, n);
        print_message("  %s: %zu %s rows, %zu F32 rows, %zu stored bytes\n", cases[i].dir, n[cases[i].d], st_dtype_name(cases[i].d),
                      n[ST_F32], m.stored_bytes);
        assert_true(n[cases[i].d] > 0);
        assert_int_equal(n[cases[i].d] + n[ST_F32], loaded);
        assert_non_null(m.stored);
        const ParamInfo *emb = model_param(&m, "model.embed_tokens.weight");
        assert_int_equal(emb->dtype, cases[i].d);
        if (cases[i].d == ST_BF16) assert_int_equal(model_param(&m, "model.layers.1.mlp.gate.e_score_correction_bias")->dtype, ST_F32);
        model_free(&m);
    }
}

/* F32 models report F32 everywhere and keep no second arena; model_init's rows are F32. */
static void test_stored_f32(void **st) {
    (void)st;
    Model m;
    load_opts(&m, "tests/fixtures/v3", 1);
    size_t n[ST_NUM_DTYPES];
    size_t loaded = check_stored(&m, "tests/fixtures/v3", 1, n);
    assert_true(loaded > 0);
    assert_int_equal(n[ST_F32], loaded);
    assert_null(m.stored);
    assert_int_equal(m.stored_bytes, 0);
    Model g;
    SeekErr e;
    if (model_init(&g, &m.cfg, &e)) fail_msg("%s", e.msg);
    for (size_t i = 0; i < g.n_params; i++) {
        assert_int_equal(g.params[i].dtype, ST_F32);
        assert_null(g.params[i].stored);
    }
    model_free(&g);
    model_free(&m);
}

/* model_save_stored writes every row in its stored dtype: the folder's tensors (F8 scales
 * included) come back bit for bit, and it loads to the same arena. Without keep_stored an F8
 * model cannot be written that way (one line naming the tensor). */
static void test_save_stored(void **st) {
    (void)st;
    const char *dirs[] = {"tests/fixtures/v3_fp8", "tests/fixtures/v3_noq", "tests/fixtures/v3"};
    for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
        Model m, back;
        load_opts(&m, dirs[i], 1);
        char out[64];
        tmp_folder(out, sizeof out);
        SeekErr e;
        if (model_save_stored(&m, dirs[i], out, &e)) fail_msg("%s", e.msg);
        StSet a, b;
        open_weights(&a, dirs[i]);
        open_weights(&b, out);
        assert_int_equal(a.n_entries, b.n_entries);
        size_t nt = a.n_entries;
        for (size_t k = 0; k < a.n_entries; k++) {
            const StTensor *ta = a.entries[k].t, *tb = stset_find(&b, ta->name, NULL);
            if (!tb) fail_msg("%s: '%s' not written", dirs[i], ta->name);
            assert_int_equal(ta->dtype, tb->dtype);
            assert_int_equal(ta->ndim, tb->ndim);
            assert_memory_equal(ta->shape, tb->shape, sizeof ta->shape);
            void *ra = xload(&a, ta->name, ta->dtype, NULL), *rb = xload(&b, ta->name, ta->dtype, NULL);
            if (memcmp(ra, rb, (size_t)(ta->end - ta->begin))) fail_msg("%s: '%s' written with other bytes", dirs[i], ta->name);
            free(ra);
            free(rb);
        }
        stset_close(&a);
        stset_close(&b);
        load_opts(&back, out, 0);
        assert_memory_equal(back.arena, m.arena, m.n_floats * sizeof(float));
        print_message("  %s: %zu tensors written in their stored dtypes, bit-identical\n", dirs[i], nt);
        model_free(&back);
        model_free(&m);
        rm_folder(out);
    }
    Model m;
    SeekErr e;
    char out[64];
    tmp_folder(out, sizeof out);
    load_opts(&m, "tests/fixtures/v3_fp8", 0);
    assert_int_equal(model_save_stored(&m, "tests/fixtures/v3_fp8", out, &e), -1);
    assert_null(strchr(e.msg, '\n'));
    assert_non_null(strstr(e.msg, "'model.layers.0.self_attn.q_a_proj.weight'")); /* the first F8 row */
    assert_non_null(strstr(e.msg, "keep_stored"));
    model_free(&m);
    rm_folder(out);
}

/* Copies v3_fp8 into a temporary folder, giving tensor `bad` (if not NULL) a transposed shape
 * (same bytes) and config.json the block size (br, bc). */
static void write_fp8_variant(const char *out, const char *bad, int br, int bc) {
    const char *src = "tests/fixtures/v3_fp8";
    StSet s;
    open_weights(&s, src);
    StWriteTensor *ts = calloc(s.n_entries, sizeof *ts);
    for (size_t i = 0; i < s.n_entries; i++) {
        const StTensor *t = s.entries[i].t;
        ts[i] = (StWriteTensor){t->name, t->dtype, t->ndim, {0}, xload(&s, t->name, t->dtype, NULL)};
        memcpy(ts[i].shape, t->shape, sizeof t->shape);
        if (bad && !strcmp(t->name, bad)) {
            assert_int_equal(t->ndim, 2);
            ts[i].shape[0] = t->shape[1];
            ts[i].shape[1] = t->shape[0];
        }
    }
    char p[4096];
    SeekErr e;
    snprintf(p, sizeof p, "%s/model.safetensors", out);
    if (st_write(p, ts, s.n_entries, NULL, 0, &e)) fail_msg("%s", e.msg);
    for (size_t i = 0; i < s.n_entries; i++) free((void *)ts[i].data);
    free(ts);
    stset_close(&s);
    json_error_t je;
    json_t *cfg = json_load_file("tests/fixtures/v3_fp8/config.json", 0, &je);
    assert_non_null(cfg);
    json_t *q = json_object_get(cfg, "quantization_config");
    json_object_set_new(q, "weight_block_size", json_pack("[ii]", br, bc));
    snprintf(p, sizeof p, "%s/config.json", out);
    assert_int_equal(json_dump_file(cfg, p, JSON_INDENT(2)), 0);
    json_decref(cfg);
}

static void expect_load_error(const char *dir, const char *needle1, const char *needle2) {
    for (int keep = 0; keep < 2; keep++) {
        Model m;
        SeekErr e;
        LoadOpts o = {.keep_stored = keep};
        if (model_load_opts(&m, dir, &o, &e) == 0) fail_msg("%s loaded; expected an error naming %s", dir, needle1);
        if (strchr(e.msg, '\n') || !strstr(e.msg, needle1) || !strstr(e.msg, needle2))
            fail_msg("error '%s' should be one line naming '%s' and '%s'", e.msg, needle1, needle2);
        if (keep) print_message("  refused: %s\n", e.msg);
    }
}

/* Hostile: a scale tensor whose shape does not fit the block grid, and a config block size that
 * does not fit the file's scales, are one-line errors naming the scale tensor (the loader checks
 * the grid before reading, with or without keep_stored). */
static void test_stored_bad_scale(void **st) {
    (void)st;
    char out[64];
    tmp_folder(out, sizeof out);
    write_fp8_variant(out, "model.layers.0.self_attn.kv_b_proj.weight_scale_inv", 16, 16);
    expect_load_error(out, "'model.layers.0.self_attn.kv_b_proj.weight_scale_inv'", "shape [2, 7], expected [7, 2]");
    write_fp8_variant(out, NULL, 32, 16); /* q_a_proj [32, 48] has scales [2, 3]; 32-row blocks want [1, 3] */
    expect_load_error(out, "'model.layers.0.self_attn.q_a_proj.weight_scale_inv'", "shape [2, 3], expected [1, 3]");
    write_fp8_variant(out, NULL, 16, 16); /* the unedited copy loads and keeps its stored form */
    Model m;
    load_opts(&m, out, 1);
    assert_int_equal(model_param(&m, "model.layers.0.mlp.down_proj.weight")->dtype, ST_F8_E4M3);
    model_free(&m);
    rm_folder(out);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_v3),        cmocka_unit_test(test_v3_yarn),   cmocka_unit_test(test_v3_noq),
        cmocka_unit_test(test_v3_fp8),    cmocka_unit_test(test_v2_greedy), cmocka_unit_test(test_v2_group),
        cmocka_unit_test(test_llama_gqa), cmocka_unit_test(test_hooks_decode_append), cmocka_unit_test(test_interventions), cmocka_unit_test(test_trained_checkpoint), cmocka_unit_test(test_generate_stop),
        cmocka_unit_test(test_stored_fp8),  cmocka_unit_test(test_stored_half), cmocka_unit_test(test_stored_f32),
        cmocka_unit_test(test_save_stored), cmocka_unit_test(test_stored_bad_scale),
    };
    return cmocka_run_group_tests_name("model vs transformers", tests, NULL, NULL);
}
