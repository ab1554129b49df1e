/* cmd_bench_cuda.c: `seek bench --backend cuda|cuda-fast [CONFIG.json | DIR] [--batch B] [--seq-len T]
 * [--steps N] [--peak-tflops P]`, the GPU backends on a real-sized model: by default the bench-460m
 * config (tests/configs/bench-460m: DeepSeek-V3 layout, 463M parameters) with seeded random
 * weights, batch 8 × 1024 tokens, the shape scripts/bench_hf.py runs transformers at (in the same
 * device call: docs/cuda-fast.md, "Speed"). It measures, medians after one warm-up, and prints
 * the model FLOPs utilisation (MFU: model FLOPs a token × tokens/s ÷ the GPU's dense bf16 peak):
 *   forward   tokens/s of one forward over B × T tokens (naive attention, no attention capture),
 *             the logits left on the device (as a PyTorch forward leaves them);
 *   decode    tokens/s of batch-1 decoding through the KV cache after a 16-token prefill, one
 *             token a call, the logits back on the host each step (what generation needs);
 *   training  tokens/s of a whole step as `seek train --backend cuda` runs it: the forward, the
 *             next-token and balance losses and the backward on the GPU with the gradients copied
 *             back, then the gradient norm, clipping and AdamW on the host; and the two parts'
 *             times.
 * (training on --backend cuda only, so far). The strict cuda backend is the fp32 proof mirror, not
 * built for speed; cuda-fast is the one measured against the peer.
 * Also here, shared with cmd_bench.c: bench_random_weights (the seeded weights every benchmark model
 * gets), bench_now_s and bench_median. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend.h"
#include "commands.h"
#include "cuda-fast/cuda_fast.h"
#include "config.h"
#include "forward.h"
#include "model.h"
#include "train.h"
#include "train_parts.h"

/* decode runs the absorbed MLA form (the latent cache, as DeepSeek serves) where the model has it */
#define ATTN_ABSORB_OR_NAIVE(c) ((c)->mla ? ATTN_ABSORB : ATTN_NAIVE)

/* Random weights: linear layers N(0, 1/fan_in), embeddings N(0, 1), norms 1 + 0.1·N(0, 1),
 * the routing bias 0.01·N(0, 1); one seeded RNG. */
void bench_random_weights(Model *m, uint64_t seed) {
    Rng r;
    rng_seed(&r, seed);
    for (size_t i = 0; i < m->n_params; i++) {
        const ParamInfo *p = &m->params[i];
        const char *n = p->name;
        int is_norm = strstr(n, "norm") != NULL, is_bias = strstr(n, "bias") != NULL, is_emb = strstr(n, "embed") != NULL;
        float scale = is_emb ? 1.0f : is_bias ? 0.01f : is_norm ? 0.1f : 1.0f / sqrtf((float)p->shape[p->ndim - 1]);
        for (size_t k = 0; k < p->numel; k++) p->ptr[k] = (is_norm && !is_bias ? 1.0f : 0.0f) + scale * rng_normal(&r);
    }
}

double bench_now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double bench_median(double *v, int n) {
    qsort(v, (size_t)n, sizeof(double), cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* the config: a config.json file, or a model folder's */
static int load_config(Config *c, const char *path, SeekErr *err) {
    size_t n = strlen(path);
    return n >= 5 && !strcmp(path + n - 5, ".json") ? config_load_file(c, path, err) : config_load(c, path, err);
}

/* Model FLOPs per token of a forward (the MFU numerator, as llm.c and PaLM count them): 2 per
 * multiply-add of every matrix product a token goes through (its active parameters, the embedding
 * lookup excluded), plus attention's scores and weighted sums over the T/2 keys a causal token
 * sees on average: 2·2·NH·(qk + v)·T/2 per layer. A training step is three times that. */
static double flops_per_token(const Config *c, const ModelCounts *mc, double T) {
    double lin = mc->active - (double)c->V * c->C; /* the embedding table is read, not multiplied */
    return 2.0 * lin + 2.0 * c->L * c->NH * (double)(config_qk_dim(c) + config_v_dim(c)) * T;
}

/* batch-1 greedy-style decode: a prefill of P tokens, then n steps of one token each through the
 * KV cache (fixed ids: the model's time, not the sampler's); seconds per step, median of 3 */
static int bench_decode(Backend be, const Model *m, int P, int n, double *sec_per_tok, SeekErr *err) {
    const Config *c = &m->cfg;
    RunState s;
    KVCache kv;
    if (runstate_init(&s, c, 1, P, P + n, 0, err)) return -1;
    if (kvcache_init(&kv, c, 1, P + n, err)) {
        runstate_free(&s);
        return -1;
    }
    int *ids = malloc((size_t)P * sizeof(int));
    float *logits = malloc((size_t)P * c->V * sizeof(float));
    int rc = ids && logits ? 0 : seek_fail(err, "bench: out of memory");
    double t[3];
    for (int r = 0; !rc && r < 4; r++) { /* a warm-up, then three */
        kv.len = 0;
        for (int i = 0; i < P; i++) ids[i] = 3 + (13 * i + 7 * r) % (c->V - 3);
        rc = model_forward_on(be, m, &s, &kv, ids, 1, P, ATTN_ABSORB_OR_NAIVE(c), NULL, NULL, logits, err);
        double t0 = bench_now_s();
        for (int k = 0; !rc && k < n; k++) {
            int id = 3 + (31 * k + r) % (c->V - 3);
            rc = model_forward_on(be, m, &s, &kv, &id, 1, 1, ATTN_ABSORB_OR_NAIVE(c), NULL, NULL, logits, err);
        }
        if (r > 0) t[r - 1] = (bench_now_s() - t0) / n;
    }
    if (!rc) *sec_per_tok = bench_median(t, 3);
    free(ids);
    free(logits);
    kvcache_free(&kv);
    runstate_free(&s);
    return rc;
}

/* one more forward of the bf16 backend, timed phase by phase with CUDA events */
static int bench_profile(Backend be, const Model *m, const int *ids, int B, int T, SeekErr *err) {
#ifdef SEEK_HAVE_CUDA
    RunState s;
    KVCache kv;
    if (runstate_init(&s, &m->cfg, B, T, T, 0, err)) return -1;
    if (kvcache_init(&kv, &m->cfg, B, T, err)) {
        runstate_free(&s);
        return -1;
    }
    cuda_fast_profile(1);
    int rc = model_forward_on(be, m, &s, &kv, ids, B, T, ATTN_NAIVE, NULL, NULL, NULL, err);
    cuda_fast_profile(0);
    kvcache_free(&kv);
    runstate_free(&s);
    if (rc) return -1;
    double ms[32], total = 0;
    const char *names[32];
    int np = cuda_fast_profile_get(ms, names, 32);
    for (int i = 0; i < np; i++) total += ms[i];
    printf("profile of one more forward (CUDA events between its phases: %.1f ms in all)\n", total);
    for (int i = 0; i < np; i++)
        if (ms[i] > 0) printf("  %-26s %8.2f ms  %5.1f%%\n", names[i], ms[i], 100.0 * ms[i] / total);
    return 0;
#else
    (void)be, (void)m, (void)ids, (void)B, (void)T;
    return seek_fail(err, "--profile: this seek has no CUDA backend");
#endif
}

int cmd_bench_cuda(int argc, char **argv) {
    const char *src = NULL;
    long long B = 8, T = 1024, steps = 3;
    double peak = 989.0; /* TFLOP/s: dense bf16 of an H100/H200 SXM (NVIDIA's datasheets) */
    Backend be = BACKEND_CUDA;
    int profile = 0;
    SeekErr err;
    for (int i = 1; i < argc; i++) {
        long long *dst = !strcmp(argv[i], "--batch") ? &B : !strcmp(argv[i], "--seq-len") ? &T : !strcmp(argv[i], "--steps") ? &steps : NULL;
        if (!strcmp(argv[i], "--backend")) {
            i++; /* cmd_bench sent us here on --backend cuda or cuda-fast */
            if (i < argc && !strcmp(argv[i], "cuda-fast")) be = BACKEND_CUDA_FAST;
        } else if (!strcmp(argv[i], "--profile")) {
            profile = 1;
        } else if (!strcmp(argv[i], "--peak-tflops")) {
            char *end = NULL;
            peak = i + 1 < argc ? strtod(argv[i + 1], &end) : 0;
            if (i + 1 >= argc || !end || *end || !(peak > 0 && peak < 1e6)) {
                fprintf(stderr, "seek bench: --peak-tflops needs the GPU's dense bf16 TFLOP/s (a positive number)\n");
                return 2;
            }
            i++;
        } else if (dst) {
            long long hi = dst == &steps ? 16 : dst == &B ? 256 : 65536;
            if (i + 1 >= argc || parse_i64(argv[i + 1], 1, hi, dst, argv[i], &err)) {
                fprintf(stderr, "seek bench: %s needs a number from 1 to %lld\n", argv[i], hi);
                return 2;
            }
            i++;
        } else if (argv[i][0] == '-') {
            return cli_bad_option("bench", argv[i]);
        } else if (!src) src = argv[i];
        else {
            fprintf(stderr, "seek bench: --backend %s measures one config at a time ('%s' and '%s')\n", backend_name(be), src,
                    argv[i]);
            return 2;
        }
    }
    if (!src) src = "tests/configs/bench-460m";
    if (profile && be != BACKEND_CUDA_FAST) {
        fprintf(stderr, "seek bench: --profile times the phases of --backend cuda-fast\n");
        return 2;
    }
    if (backend_check(be, &err)) {
        cli_fail("bench", err.msg);
        return 1;
    }
    Config c;
    Model m, g;
    if (load_config(&c, src, &err) || model_init(&m, &c, &err)) {
        cli_fail("bench", err.msg);
        return 1;
    }
    if (T > c.max_pos) T = c.max_pos;
    if (model_init(&g, &c, &err)) {
        model_free(&m);
        cli_fail("bench", err.msg);
        return 1;
    }
    bench_random_weights(&m, 1234);
    ModelCounts mc;
    model_counts(&c, &mc);
    const int N = (int)(B * T);
    const double fpt = flops_per_token(&c, &mc, (double)T);
    printf("seek bench --backend %s: %s (%s, %.1fM parameters, %.1fM active), batch %lld x %lld, median of %lld steps "
           "after a warm-up; MFU against %.0f TFLOP/s dense bf16 (--peak-tflops), %.2f GFLOP a token forward\n",
           backend_name(be), src, c.model_type, mc.total / 1e6, mc.active / 1e6, B, T, steps, peak, fpt / 1e9);
    int *ids = malloc((size_t)N * sizeof(int));
    float *logits = malloc((size_t)N * c.V * sizeof(float)), *mom1 = calloc(m.n_floats, sizeof(float)),
          *mom2 = calloc(m.n_floats, sizeof(float));
    int rc = ids && logits && mom1 && mom2 ? 0 : seek_fail(&err, "bench: out of memory");
    for (int i = 0; ids && i < N; i++) ids[i] = 3 + (17 * i + 5) % (c.V - 3);
    double fw[17], st[17], gr[17], op[17];
    /* forward */
    RunState s;
    KVCache kv;
    if (!rc && (rc = runstate_init(&s, &c, (int)B, (int)T, (int)T, 0, &err)) == 0) {
        if ((rc = kvcache_init(&kv, &c, (int)B, (int)T, &err)) == 0) {
            for (int r = 0; !rc && r <= steps; r++) {
                kv.len = 0;
                double t0 = bench_now_s();
                rc = model_forward_on(be, &m, &s, &kv, ids, (int)B, (int)T, ATTN_NAIVE, NULL, NULL, NULL, &err);
                if (r > 0) fw[r - 1] = bench_now_s() - t0;
            }
            kvcache_free(&kv);
        }
        runstate_free(&s);
    }
    if (!rc) {
        double tps = N / bench_median(fw, (int)steps);
        printf("forward   %10.1f tokens/s  (%.1f ms a call; MFU %.1f%%)\n", tps, 1e3 * bench_median(fw, (int)steps),
               100.0 * tps * fpt / (peak * 1e12));
    }
    if (!rc && profile && be == BACKEND_CUDA_FAST) rc = bench_profile(be, &m, ids, (int)B, (int)T, &err);
    /* decode, batch 1 */
    double spt = 0;
    if (!rc) rc = bench_decode(be, &m, 16, 64, &spt, &err);
    if (!rc) printf("decode    %10.1f tokens/s  (batch 1, %s attention, after a 16-token prefill: %.3f ms a token)\n",
                    1.0 / spt, c.mla ? "absorbed" : "cached", 1e3 * spt);
    if (!rc && be == BACKEND_CUDA_FAST) {
        printf("training  not built yet on --backend cuda-fast (docs/cuda-fast.md, \"Status\")\n");
        steps = 0;
    }
    /* training steps */
    TrainBuffers tb;
    if (!rc && steps > 0 && (rc = trainbuf_init(&tb, &c, (int)B, (int)T, 0, &err)) == 0) {
        LossWeights lw = {0, 0.3f, c.E > 0 ? 1e-4f : 0.0f};
        AdamWConfig ac = {0.9f, 0.95f, 1e-8f, 0.1f};
        double first = 0, last = 0;
        for (int r = 0; !rc && r <= steps; r++) {
            StepLosses sl;
            double t0 = bench_now_s();
            rc = train_step_grads_on(BACKEND_CUDA, &m, &g, &tb, &(TrainBatch){.ids = ids}, &lw, &sl, &err);
            double t1 = bench_now_s();
            if (!rc) {
                double norm = grad_global_norm_on(BACKEND_CUDA, &g);
                grad_clip_on(BACKEND_CUDA, &g, norm, 1.0);
                adamw_step_on(BACKEND_CUDA, &m, &g, mom1, mom2, &ac, 1e-4f, r + 1);
            }
            double t2 = bench_now_s();
            if (r == 0) first = sl.total;
            last = sl.total;
            if (r > 0) st[r - 1] = t2 - t0, gr[r - 1] = t1 - t0, op[r - 1] = t2 - t1;
        }
        if (!rc)
            printf("training  %10.1f tokens/s  (%.1f ms a step: forward + losses + backward on the GPU with the gradients "
                   "copied back %.1f, norm + clipping + AdamW on the host %.1f; MFU %.1f%%); loss %.4f -> %.4f\n",
                   N / bench_median(st, (int)steps), 1e3 * bench_median(st, (int)steps), 1e3 * bench_median(gr, (int)steps),
                   1e3 * bench_median(op, (int)steps), 100.0 * 3.0 * fpt * N / bench_median(st, (int)steps) / (peak * 1e12),
                   first, last);
        trainbuf_free(&tb);
    }
    if (rc) cli_fail("bench", err.msg);
    free(ids);
    free(logits);
    free(mom1);
    free(mom2);
    model_free(&g);
    model_free(&m);
    return rc ? 1 : 0;
}
