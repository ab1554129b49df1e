/* test_ops.c: unit tests of the reference ops against hand-computed values.
 * Expected values come from the equations (worked here in double or by hand), never from the
 * function under test. Routing uses tie-free inputs and compares chosen experts as sorted sets. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "balance.h"
#include "config.h"
#include "forward.h"
#include "mla.h"
#include "moe.h"
#include "ops.h"
#include "precision.h"
#include "tolerances.h"

#define NEAR(a, b, tol) assert_true(fabs((double)(a) - (double)(b)) <= (tol))

static int parse(Config *c, const char *json) {
    SeekErr e;
    int rc = config_parse(c, json, strlen(json), "test.json", &e);
    if (rc) fprintf(stderr, "config: %s\n", e.msg);
    return rc;
}

static void test_matmul(void **st) {
    (void)st;
    /* x (2,3) · W (2,3)ᵀ */
    float x[6] = {1, 2, 3, 4, 5, 6}, w[6] = {1, 0, -1, 0.5f, 0.5f, 0.5f}, y[4];
    matmul_forward(y, x, w, 2, 3, 2);
    NEAR(y[0], -2.0, TOL_HAND_ABS); /* 1 - 3 */
    NEAR(y[1], 3.0, TOL_HAND_ABS);  /* (1+2+3)/2 */
    NEAR(y[2], -2.0, TOL_HAND_ABS); /* 4 - 6 */
    NEAR(y[3], 7.5, TOL_HAND_ABS);  /* 15/2 */
}

/* round_bf16 against values worked by hand: bf16 keeps 7 mantissa bits, so near 1 its spacing
 * is 2^-7 and a tie sits at an odd multiple of 2^-8 */
static void test_round_bf16(void **st) {
    (void)st;
    const float u = ldexpf(1.0f, -8);
    assert_true(round_bf16(1.0f) == 1.0f);
    assert_true(round_bf16(1.0f + u) == 1.0f);                              /* tie: to the even 1.0 */
    assert_true(round_bf16(1.0f + 3 * u) == 1.0f + 4 * u);                  /* tie: 1+2^-7 is odd, up */
    assert_true(round_bf16(1.0f + u + ldexpf(1.0f, -20)) == 1.0f + 2 * u);   /* past the tie: up */
    assert_true(round_bf16(1.0f + u - ldexpf(1.0f, -20)) == 1.0f);          /* short of it: down */
    assert_true(round_bf16(-(1.0f + 3 * u)) == -(1.0f + 4 * u));            /* symmetric */
    const float bf_max = ldexpf(2.0f - ldexpf(1.0f, -7), 127);              /* the largest bf16 */
    assert_true(round_bf16(bf_max) == bf_max);
    assert_true(isinf(round_bf16(3.4e38f)) && round_bf16(3.4e38f) > 0);     /* past its last tie: Inf */
    assert_true(isinf(round_bf16(-INFINITY)) && round_bf16(-INFINITY) < 0);
    assert_true(isnan(round_bf16(NAN)));
    /* subnormals: bf16's spacing there is 2^-133 */
    assert_true(round_bf16(ldexpf(1.0f, -133) + ldexpf(1.0f, -140)) == ldexpf(1.0f, -133));
    assert_true(round_bf16(0.0f) == 0.0f);
}

/* matmul_forward under the bf16 emulation rounds both operands before the products */
static void test_matmul_bf16(void **st) {
    (void)st;
    const float x[2] = {1.0f + ldexpf(1.0f, -9), 3.0f}, w[2] = {1.0f, 1.0f + ldexpf(1.0f, -7) + ldexpf(1.0f, -9)};
    float y;
    ref_precision = PRECISION_BF16;
    matmul_forward(&y, x, w, 1, 2, 1);
    ref_precision = PRECISION_FP32;
    NEAR(y, 4.0 + 3.0 / 128.0, 0.0); /* 1·1 + 3·(1 + 2^-7): both 2^-9 parts rounded away */
    matmul_forward(&y, x, w, 1, 2, 1);
    NEAR(y, 4.0 + 3.0 / 128.0 + 4.0 / 512.0, 0.0); /* fp32: exact here */
    /* the router's product stays fp32 under the emulation (precision.h) */
    Config c;
    memset(&c, 0, sizeof c);
    c.C = 2;
    c.E = 1;
    c.K = 1;
    c.scoring = SCORE_SIGMOID;
    float lg, sc, ch;
    ref_precision = PRECISION_BF16;
    moe_router_scores(&lg, &sc, &ch, x, w, NULL, 1, &c);
    ref_precision = PRECISION_FP32;
    NEAR(lg, 4.0 + 3.0 / 128.0 + 4.0 / 512.0, 0.0);
}

static void test_embedding(void **st) {
    (void)st;
    float wte[6] = {0, 1, 10, 11, 20, 21}, out[4];
    int ids[2] = {2, 0};
    embedding_forward(out, ids, wte, 2, 2);
    assert_true(out[0] == 20 && out[1] == 21 && out[2] == 0 && out[3] == 1);
}

static void test_rmsnorm(void **st) {
    (void)st;
    /* mean(x²) = (1+4+9+16)/4 = 7.5 */
    float x[4] = {1, 2, 3, 4}, w[4] = {1, 2, 0.5f, -1}, y[4], rstd;
    rmsnorm_forward(y, &rstd, x, w, 1, 4, 1e-6f);
    double r = 1.0 / sqrt(7.5 + 1e-6);
    NEAR(rstd, r, TOL_HAND_ABS);
    NEAR(y[0], 1 * r, TOL_HAND_ABS);
    NEAR(y[1], 2 * 2 * r, TOL_HAND_ABS);
    NEAR(y[2], 0.5 * 3 * r, TOL_HAND_ABS);
    NEAR(y[3], -1 * 4 * r, TOL_HAND_ABS);
}

static void test_swiglu(void **st) {
    (void)st;
    /* C = 2, H = 1: gate = x0 + x1, up = x0 - x1, out = W_down · silu(gate)·up */
    float x[2] = {1.0f, 0.5f}, wg[2] = {1, 1}, wu[2] = {1, -1}, wd[2] = {2, -1};
    float g, u, a, out[2];
    swiglu_forward(out, &g, &u, &a, x, wg, wu, wd, 1, 2, 1);
    double gate = 1.5, up = 0.5, act = gate / (1 + exp(-gate)) * up;
    NEAR(out[0], 2 * act, TOL_HAND_ABS);
    NEAR(out[1], -act, TOL_HAND_ABS);
}

static void test_rope_default(void **st) {
    (void)st;
    Config c;
    assert_int_equal(parse(&c, "{\"model_type\":\"llama\",\"hidden_size\":8,\"num_attention_heads\":2,"
                               "\"rope_theta\":100.0}"), 0);
    assert_int_equal(c.rope_dim, 4);
    float inv[2], af;
    rope_inv_freq(inv, &af, &c);
    NEAR(inv[0], 1.0, 0);
    NEAR(inv[1], 0.1, TOL_HAND_ABS); /* 100^(-2/4) */
    NEAR(af, 1.0, 0);
    /* half layout, d = 4: pairs (x0, x2) at freq 1 and (x1, x3) at freq 0.1; position 3 */
    float x[4] = {1, 0, 0, 1}, y[4];
    rope_forward(y, x, 1, 4, 3, inv, af, 4, ROPE_LAYOUT_HALF);
    NEAR(y[0], cos(3.0), TOL_HAND_ABS);
    NEAR(y[2], sin(3.0), TOL_HAND_ABS);
    NEAR(y[1], -sin(0.3), TOL_HAND_ABS);
    NEAR(y[3], cos(0.3), TOL_HAND_ABS);
    /* interleaved: pairs (x0, x1) freq 1, (x2, x3) freq 0.1 */
    rope_forward(y, x, 1, 4, 3, inv, af, 4, ROPE_LAYOUT_INTERLEAVED);
    NEAR(y[0], cos(3.0), TOL_HAND_ABS);
    NEAR(y[1], sin(3.0), TOL_HAND_ABS);
    NEAR(y[2], -sin(0.3), TOL_HAND_ABS);
    NEAR(y[3], cos(0.3), TOL_HAND_ABS);
}

/* DeepSeek-V3's released YaRN settings: d = 64, theta 1e4, factor 40, L0 4096, beta 32/1.
 * docs/model.md §4.6: low = floor(10.47) = 10, high = ceil(22.51) = 23, attention factor 1,
 * softmax scale 192^-0.5 · (0.1·ln 40 + 1)² = 0.1352338. */
static const char *V3_YARN =
    "{\"model_type\":\"deepseek_v3\",\"max_position_embeddings\":163840,\"rope_theta\":10000,"
    "\"rope_scaling\":{\"type\":\"yarn\",\"factor\":40,\"original_max_position_embeddings\":4096,"
    "\"beta_fast\":32,\"beta_slow\":1,\"mscale\":1.0,\"mscale_all_dim\":1.0}}";

static void test_rope_yarn_v3(void **st) {
    (void)st;
    Config c;
    assert_int_equal(parse(&c, V3_YARN), 0);
    assert_int_equal(c.rope_type, ROPE_YARN);
    NEAR(c.attn_scale, 0.1352338, 5e-7); /* docs/model.md §4.6 quotes 7 digits */
    float inv[32], af;
    rope_inv_freq(inv, &af, &c);
    NEAR(af, 1.0, TOL_HAND_ABS);
    for (int i = 0; i < 32; i++) {
        double f = pow(10000.0, -2.0 * i / 64.0), expect;
        if (i <= 10) expect = f;                 /* extrapolation: original frequency */
        else if (i >= 23) expect = f / 40.0;     /* interpolation: divided by the factor */
        else {
            double ramp = (i - 10) / 13.0;
            expect = f / 40.0 * ramp + f * (1 - ramp);
        }
        assert_true(fabs(inv[i] - expect) <= TOL_ROPE_FREQ_REL * expect);
    }
}

/* V2-Lite: mscale = mscale_all_dim = 0.707 -> attention factor 1; softmax scale
 * 192^-0.5 · (0.0707·ln 40 + 1)². A config with mscale 1, mscale_all_dim 0.5 gives the cos/sin
 * factor (0.1 ln 40 + 1)/(0.05 ln 40 + 1). Without mscale keys, llama-style YaRN uses 0.1 ln s + 1. */
static void test_yarn_factors(void **st) {
    (void)st;
    Config c;
    assert_int_equal(parse(&c, "{\"model_type\":\"deepseek_v2\",\"max_position_embeddings\":163840,"
                               "\"rope_scaling\":{\"type\":\"yarn\",\"factor\":40,\"original_max_position_embeddings\":4096,"
                               "\"mscale\":0.707,\"mscale_all_dim\":0.707}}"), 0);
    double m = 0.0707 * log(40.0) + 1.0;
    NEAR(c.attn_scale, m * m / sqrt(192.0), TOL_HAND_ABS);
    NEAR(c.attention_factor, 1.0, 1e-12); /* double */
    assert_int_equal(parse(&c, "{\"model_type\":\"deepseek_v3\",\"max_position_embeddings\":163840,"
                               "\"rope_parameters\":{\"rope_type\":\"yarn\",\"rope_theta\":10000,\"factor\":40,"
                               "\"original_max_position_embeddings\":4096,\"mscale\":1.0,\"mscale_all_dim\":0.5}}"), 0);
    NEAR(c.attention_factor, (0.1 * log(40.0) + 1) / (0.05 * log(40.0) + 1), 1e-9); /* double arithmetic on both sides */
    assert_int_equal(parse(&c, "{\"model_type\":\"llama\",\"hidden_size\":64,\"num_attention_heads\":4,"
                               "\"max_position_embeddings\":8192,\"rope_scaling\":{\"rope_type\":\"yarn\",\"factor\":4.0,"
                               "\"original_max_position_embeddings\":2048}}"), 0);
    NEAR(c.attention_factor, 0.1 * log(4.0) + 1, 1e-9); /* double arithmetic on both sides */
    NEAR(c.attn_scale, 0.25, TOL_HAND_ABS); /* LLaMA: head_dim^-0.5 only */
}

static void test_topk_ties(void **st) {
    (void)st;
    float x[5] = {1, 3, 3, 2, 3};
    int out[3];
    unsigned char taken[5];
    topk_indices(out, x, 5, 3, taken);
    assert_int_equal(out[0], 1); /* ties go to the lower index */
    assert_int_equal(out[1], 2);
    assert_int_equal(out[2], 4);
}

static int cmp_int(const void *a, const void *b) { return *(const int *)a - *(const int *)b; }

/* Router with an identity gate (C = E), so logits = x. E = 8 in 4 groups of 2. */
static void route(const char *cfg_json, const float *logits, const float *bias, int *idx, float *w) {
    Config c;
    assert_int_equal(parse(&c, cfg_json), 0);
    float router[64] = {0}, lg[8], s[8], ch[8], scratch[16];
    for (int e = 0; e < 8; e++) router[e * 8 + e] = 1.0f;
    moe_route(idx, w, lg, s, ch, logits, router, bias, 1, &c, scratch);
}

#define V3_ROUTE_CFG "{\"model_type\":\"deepseek_v3\",\"hidden_size\":8,\"n_routed_experts\":8,\"n_group\":4,"   \
                     "\"topk_group\":2,\"num_experts_per_tok\":2,\"routed_scaling_factor\":2.5}"

static void test_route_v3_groups(void **st) {
    (void)st;
    /* sigmoid scores ≈ [.881 .269 | .622 .599 | .818 .802 | .119 .047]; group scores (sum of
     * both) 1.150, 1.221, 1.620, 0.166 -> keep groups 2 and 1 -> best two: experts 4 and 5.
     * Expert 0 has the highest score of all but its group is dropped. */
    float x[8] = {2.0f, -1.0f, 0.5f, 0.4f, 1.5f, 1.4f, -2.0f, -3.0f}, bias[8] = {0};
    int idx[2];
    float w[2];
    route(V3_ROUTE_CFG, x, bias, idx, w);
    qsort(idx, 2, sizeof(int), cmp_int);
    assert_int_equal(idx[0], 4);
    assert_int_equal(idx[1], 5);
    double s4 = 1 / (1 + exp(-1.5)), s5 = 1 / (1 + exp(-1.4));
    NEAR(w[0] + w[1], 2.5, TOL_HAND_ABS);                     /* renormalised, times 2.5 */
    NEAR(fmax(w[0], w[1]), 2.5 * s4 / (s4 + s5), TOL_HAND_ABS);
}

static void test_route_v3_bias_flip(void **st) {
    (void)st;
    /* bias 1.2 on expert 7: group 3 scores .119 + 1.247 = 1.366 > 1.221, so groups 2 and 3 are
     * kept; biased choice picks 7 (1.247) and 4 (.818). The gate weights still use the unbiased
     * scores: w7 ∝ σ(-3) = .047, w4 ∝ σ(1.5) = .818. */
    float x[8] = {2.0f, -1.0f, 0.5f, 0.4f, 1.5f, 1.4f, -2.0f, -3.0f}, bias[8] = {0, 0, 0, 0, 0, 0, 0, 1.2f};
    int idx[2];
    float w[2];
    route(V3_ROUTE_CFG, x, bias, idx, w);
    int k7 = idx[0] == 7 ? 0 : 1;
    assert_int_equal(idx[k7], 7);
    assert_int_equal(idx[1 - k7], 4);
    double s7 = 1 / (1 + exp(3.0)), s4 = 1 / (1 + exp(-1.5));
    NEAR(w[k7], 2.5 * s7 / (s7 + s4), TOL_HAND_ABS);
    NEAR(w[1 - k7], 2.5 * s4 / (s7 + s4), TOL_HAND_ABS);
}

static void test_route_v2(void **st) {
    (void)st;
    /* softmax routing, K = 3. Greedy: the three largest logits 2.0, 1.5, 1.45 -> {0, 2, 4}.
     * Group-limited (group score = max): groups 2.0, 1.45, 1.5, -2 -> keep groups 0 and 2 ->
     * candidates 0, 1, 4, 5 -> {0, 1, 4}. Weights = softmax probability x 2.0, not renormalised. */
    float x[8] = {2.0f, -1.0f, 1.45f, 0.4f, 1.5f, -1.4f, -2.0f, -3.0f};
    double z = 0;
    for (int e = 0; e < 8; e++) z += exp(x[e]);
    int idx[3];
    float w[3];
    route("{\"model_type\":\"deepseek_v2\",\"hidden_size\":8,\"n_routed_experts\":8,\"num_experts_per_tok\":3,"
          "\"routed_scaling_factor\":2.0,\"topk_method\":\"greedy\"}", x, NULL, idx, w);
    for (int k = 0; k < 3; k++) NEAR(w[k], 2.0 * exp(x[idx[k]]) / z, TOL_HAND_ABS);
    qsort(idx, 3, sizeof(int), cmp_int);
    assert_true(idx[0] == 0 && idx[1] == 2 && idx[2] == 4);
    route("{\"model_type\":\"deepseek_v2\",\"hidden_size\":8,\"n_routed_experts\":8,\"num_experts_per_tok\":3,"
          "\"routed_scaling_factor\":2.0,\"topk_method\":\"group_limited_greedy\",\"n_group\":4,\"topk_group\":2}",
          x, NULL, idx, w);
    qsort(idx, 3, sizeof(int), cmp_int);
    assert_true(idx[0] == 0 && idx[1] == 1 && idx[2] == 4);
}

static void test_attention_hand(void **st) {
    (void)st;
    /* One head, DQ = DV = 1, scale 1, two positions: q1 = 1, k = [0, ln 3], v = [1, 5].
     * Position 0 sees only itself: z0 = 1. Position 1: weights ∝ [e^0, e^ln3] = [1/4, 3/4]:
     * z1 = 1/4 + 15/4 = 4. */
    float q[2] = {7.0f, 1.0f}, k[2] = {0.0f, (float)log(3.0)}, v[2] = {1.0f, 5.0f}, z[2], sc[4], pt[4], row[2];
    attention_forward(z, sc, pt, q, k, v, 2, 0, 2, 1, 1, 1, 1, 1, 1, 1.0f, row);
    NEAR(z[0], 1.0, TOL_HAND_ABS);
    NEAR(z[1], 4.0, 10 * TOL_HAND_ABS); /* a 4-term sum of products */
    assert_true(isinf(sc[1]) && sc[1] < 0); /* masked future position */
    NEAR(pt[0], 1.0, TOL_HAND_ABS);
    assert_true(pt[1] == 0.0f);
    NEAR(pt[2], 0.25, TOL_HAND_ABS);
    NEAR(pt[3], 0.75, TOL_HAND_ABS);
}

static void test_attention_gqa(void **st) {
    (void)st;
    /* NH = 4 query heads share NKV = 2 kv heads: heads 0,1 read kv head 0, heads 2,3 kv head 1.
     * With one position every head's output is its kv head's value. */
    float q[4] = {1, 2, 3, 4}, k[2] = {1, 1}, v[2] = {10, 20}, z[4], row[1];
    attention_forward(z, NULL, NULL, q, k, v, 1, 0, 1, 4, 2, 1, 1, 2, 2, 1.0f, row);
    assert_true(z[0] == 10 && z[1] == 10 && z[2] == 20 && z[3] == 20);
}

/* Absorbed and naive MLA agree on random weights (different order of the same sums). */
static void test_mla_absorb_equals_naive(void **st) {
    (void)st;
    Config c;
    assert_int_equal(parse(&c, "{\"model_type\":\"deepseek_v3\",\"hidden_size\":16,\"num_attention_heads\":3,"
                               "\"q_lora_rank\":null,\"kv_lora_rank\":10,\"qk_nope_head_dim\":6,\"qk_rope_head_dim\":4,"
                               "\"v_head_dim\":5,\"n_routed_experts\":0}"), 0);
    const int NH = 3, dn = 6, dr = 4, dv = 5, dkv = 10, T = 5, dq = dn + dr;
    Rng r;
    rng_seed(&r, 7);
    float wkv_b[3 * 11 * 10];
    for (size_t i = 0; i < sizeof wkv_b / 4; i++) wkv_b[i] = rng_normal(&r) * 0.5f;
    LayerWeights w = {0};
    w.wkv_b = wkv_b;
    float q[5 * 3 * 10], lat[5 * 10], kpe[5 * 4];
    for (size_t i = 0; i < sizeof q / 4; i++) q[i] = rng_normal(&r);
    for (size_t i = 0; i < sizeof lat / 4; i++) lat[i] = rng_normal(&r);
    for (size_t i = 0; i < sizeof kpe / 4; i++) kpe[i] = rng_normal(&r);
    float z1[5 * 3 * 5], z2[5 * 3 * 5], kv[5 * 3 * 11], k[5 * 3 * 10], v[5 * 3 * 5], qa[5 * 3 * 10], ol[5 * 3 * 10];
    float p1[3 * 5 * 5], p2[3 * 5 * 5], row[5];
    mla_attend_naive(z1, NULL, p1, kv, k, v, q, lat, kpe, &w, &c, T, 0, T, row);
    mla_attend_absorb(z2, NULL, p2, qa, ol, q, lat, kpe, &w, &c, T, 0, T, row);
    double maxabs = 0, maxdiff = 0;
    for (int i = 0; i < T * NH * dv; i++) {
        maxabs = fmax(maxabs, fabs(z1[i]));
        maxdiff = fmax(maxdiff, fabs(z1[i] - z2[i]));
    }
    assert_true(maxdiff <= TOL_NAIVE_ABSORB_REL * maxabs);
    for (int i = 0; i < 3 * 5 * 5; i++) NEAR(p1[i], p2[i], TOL_HAND_ABS);
    (void)dq;
    (void)dkv;
}

/* Sampling. logits ln([0.5, 0.3, 0.15, 0.05]) give those probabilities at temperature 1. */
static void test_sample(void **st) {
    (void)st;
    float lg[4] = {logf(0.5f), logf(0.3f), logf(0.15f), logf(0.05f)}, probs[4];
    int order[4], count[4] = {0};
    Rng r;
    rng_seed(&r, 1);
    SampleParams greedy = {0.0f, 0, 1.0f, 0};
    float tie[3] = {1.0f, 2.0f, 2.0f};
    assert_int_equal(sample_token(tie, 3, &greedy, &r, probs, order), 1); /* ties: lower id */
    /* top-k 2: only ids 0 and 1, in proportion 5:3 */
    SampleParams k2 = {1.0f, 2, 1.0f, 0};
    for (int i = 0; i < 8000; i++) count[sample_token(lg, 4, &k2, &r, probs, order)]++;
    assert_int_equal(count[2] + count[3], 0);
    NEAR(count[0] / 8000.0, 0.625, TOL_SAMPLE_FREQ_ABS);
    /* top-p 0.7: the smallest prefix reaching 0.7 is {0, 1} (0.8) */
    memset(count, 0, sizeof count);
    SampleParams p7 = {1.0f, 0, 0.7f, 0};
    for (int i = 0; i < 4000; i++) count[sample_token(lg, 4, &p7, &r, probs, order)]++;
    assert_int_equal(count[2] + count[3], 0);
    /* full distribution: frequencies near 0.5, 0.3, 0.15, 0.05 */
    memset(count, 0, sizeof count);
    SampleParams full = {1.0f, 0, 1.0f, 0};
    for (int i = 0; i < 20000; i++) count[sample_token(lg, 4, &full, &r, probs, order)]++;
    NEAR(count[0] / 20000.0, 0.5, TOL_SAMPLE_FREQ_ABS);
    NEAR(count[1] / 20000.0, 0.3, TOL_SAMPLE_FREQ_ABS);
    NEAR(count[3] / 20000.0, 0.05, TOL_SAMPLE_FREQ_ABS);
    /* temperature 0.5 squares the odds: p ∝ [.25, .09, .0225, .0025] */
    memset(count, 0, sizeof count);
    SampleParams cold = {0.5f, 0, 1.0f, 0};
    for (int i = 0; i < 20000; i++) count[sample_token(lg, 4, &cold, &r, probs, order)]++;
    NEAR(count[0] / 20000.0, 0.25 / 0.365, TOL_SAMPLE_FREQ_ABS);
}

/* Load balancing, by hand. E = 4, K = 1, N = 8 tokens: mean load 2. */
static void test_balance(void **st) {
    (void)st;
    Config c;
    assert_int_equal(parse(&c, "{\"model_type\":\"deepseek_v3\",\"hidden_size\":8,\"n_routed_experts\":4,"
                               "\"num_experts_per_tok\":1,\"n_group\":2,\"topk_group\":1}"), 0);
    int idx[8] = {0, 0, 0, 0, 1, 1, 2, 3}, load[4];
    expert_load(load, idx, 8, &c);
    assert_true(load[0] == 4 && load[1] == 2 && load[2] == 1 && load[3] == 1);
    LoadStats ls = load_stats(load, 8, &c);
    NEAR(ls.max_over_mean, 2.0, TOL_HAND_ABS);
    NEAR(ls.frac_idle, 0.0, TOL_HAND_ABS);
    /* b_i += γ·sign(mean − load_i): overloaded down, balanced unchanged, underloaded up */
    float bias[4] = {0.5f, 0.5f, 0.5f, 0.5f};
    bias_update(bias, load, 8, &c, 0.25f);
    assert_true(bias[0] == 0.25f && bias[1] == 0.5f && bias[2] == 0.75f && bias[3] == 0.75f);
    /* V3 sequence loss, one sequence of T = 2, K = 1: tokens chose experts 0 and 0, so
     * f = (E/(K·T))·count = [4, 0, 0, 0]; with scores s_t, P_0 = mean_t s_{0,t}/Σ_j s_{j,t};
     * scores [.5 .1 .2 .2] and [.25 .25 .25 .25]: P_0 = (0.5 + 0.25)/2 = 0.375, L = α·4·0.375 */
    float sc[8] = {0.5f, 0.1f, 0.2f, 0.2f, 0.25f, 0.25f, 0.25f, 0.25f}, ds[8] = {0};
    int id2[2] = {0, 0};
    double L = balance_loss(ds, sc, id2, 1, 2, &c, 0.1f);
    NEAR(L, 0.1 * 4 * 0.375, TOL_HAND_ABS);
    /* dL/ds_{j,t} = (α/T)(f_j/S_t − Σ_i f_i s_{i,t}/S_t²), S_t = 1: token 0: j=0: .05·(4 − 2) = 0.1,
     * j≠0: .05·(0 − 2) = −0.1 */
    NEAR(ds[0], 0.1, TOL_HAND_ABS);
    NEAR(ds[1], -0.1, TOL_HAND_ABS);
    /* V2 (softmax scores, no renormalisation): dL/ds_{j,t} = (α/T)·f_j */
    assert_int_equal(parse(&c, "{\"model_type\":\"deepseek_v2\",\"hidden_size\":8,\"n_routed_experts\":4,"
                               "\"num_experts_per_tok\":1}"), 0);
    memset(ds, 0, sizeof ds);
    L = balance_loss(ds, sc, id2, 1, 2, &c, 0.1f);
    NEAR(L, 0.1 * 4 * 0.375, TOL_HAND_ABS);
    NEAR(ds[0], 0.05 * 4, TOL_HAND_ABS);
    NEAR(ds[5], 0.0, TOL_HAND_ABS);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matmul),         cmocka_unit_test(test_embedding),
        cmocka_unit_test(test_round_bf16),     cmocka_unit_test(test_matmul_bf16),
        cmocka_unit_test(test_rmsnorm),        cmocka_unit_test(test_swiglu),
        cmocka_unit_test(test_rope_default),   cmocka_unit_test(test_rope_yarn_v3),
        cmocka_unit_test(test_yarn_factors),   cmocka_unit_test(test_topk_ties),
        cmocka_unit_test(test_route_v3_groups), cmocka_unit_test(test_route_v3_bias_flip),
        cmocka_unit_test(test_route_v2),       cmocka_unit_test(test_attention_hand),
        cmocka_unit_test(test_attention_gqa),  cmocka_unit_test(test_mla_absorb_equals_naive), cmocka_unit_test(test_sample), cmocka_unit_test(test_balance),
    };
    return cmocka_run_group_tests_name("ops", tests, NULL, NULL);
}
