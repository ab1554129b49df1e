/* cmd_bench.c: `seek bench [DIR...] [--quick]` (what `make bench-cpu` runs), and
 * `seek bench --profile-train N [--batch B]` (cpu training steps only, for a profiler).
 *
 * For each model — by default the tiny fixtures tests/fixtures/v3 and tests/fixtures/llama_gqa and
 * bench-40m, a DeepSeek-V3-shaped config defined below with random weights — it measures, side by
 * side in the same run:
 *   prefill   forward tokens/s of one call over B x T tokens (naive attention, as `seek forward`),
 *   decode    tokens/s of T = 1 calls through the KV cache after a prompt (absorbed MLA, the decode
 *             form; LLaMA attention for llama),
 * with --backend ref and --backend cpu, and their ratio; the median of several runs of each. For
 * the cpu prefill it also sums the time and flops of every sgemm/sgemv the backend issued
 * (cpu_gemm_stats) and reports the matrix-product GFLOP/s reached, their share of the forward
 * time, and that rate against OpenBLAS's own sgemm peak measured first in the same run (the best
 * of several 2048^3 products). The logits of both backends are compared, so what is timed is
 * also checked (max |cpu - ref| / max |ref|).
 * Then training (bench-40m twice: 1 x 256 tokens and a 4 x 256 batch): tokens/s of a whole training step as `seek train` runs it — the forward, the
 * losses (next-token, plus the balance loss for MoE models), the backward, the gradient norm,
 * clipping and AdamW — with ref and cpu side by side and their ratio, the cpu step's matrix
 * products in GFLOP/s against the peak and as a share of the step, and the two backends' first
 * step compared (loss, and max |cpu - ref| / max |ref| over all gradients). Both start from the
 * same weights and optimizer state.
 * Speed is measured here, never in tests (docs/fast-cpu.md, "Benchmark"): machines are shared and
 * noisy, so quote medians and ratios measured side by side.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend.h"
#include "commands.h"
#include "config.h"
#include "forward.h"
#include "model.h"
#include "train.h"
#include "train_parts.h"

/* --backend cuda or cuda-fast: the GPU bench (cmd_bench_cuda); any other --backend is refused
 * (the CPU bench always runs ref and cpu side by side). Returns -1 when there is no --backend. */
static int bench_backend(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--backend")) continue;
        if (i + 1 < argc && (!strcmp(argv[i + 1], "cuda") || !strcmp(argv[i + 1], "cuda-fast"))) return cmd_bench_cuda(argc, argv);
        char a[48];
        if (i + 1 >= argc) fprintf(stderr, "seek bench: --backend needs a value (cuda or cuda-fast)\n");
        else fprintf(stderr, "seek bench: --backend %s: expected cuda or cuda-fast (without --backend the bench runs ref and cpu side by side)\n",
                     arg_for_message(a, argv[i + 1]));
        return 2;
    }
    return -1;
}

#ifdef SEEK_HAVE_BLAS
#include <cblas.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "cpu/cpu.h"

/* bench-40m: DeepSeek-V3 layout (MLA with q compression, sigmoid routing with bias and groups,
 * one dense layer then MoE) at a size where the reference takes seconds, not hours. */
static const char BENCH_40M[] =
    "{\"model_type\": \"deepseek_v3\", \"vocab_size\": 8192, \"hidden_size\": 512, \"intermediate_size\": 1536,"
    " \"moe_intermediate_size\": 192, \"num_hidden_layers\": 6, \"num_attention_heads\": 8, \"num_key_value_heads\": 8,"
    " \"n_routed_experts\": 16, \"n_shared_experts\": 1, \"num_experts_per_tok\": 4, \"n_group\": 4, \"topk_group\": 2,"
    " \"first_k_dense_replace\": 1, \"moe_layer_freq\": 1, \"q_lora_rank\": 256, \"kv_lora_rank\": 128,"
    " \"qk_nope_head_dim\": 64, \"qk_rope_head_dim\": 32, \"v_head_dim\": 64, \"max_position_embeddings\": 4096,"
    " \"rms_norm_eps\": 1e-6, \"rope_theta\": 10000.0, \"routed_scaling_factor\": 2.5, \"norm_topk_prob\": true,"
    " \"scoring_func\": \"sigmoid\", \"topk_method\": \"noaux_tc\", \"tie_word_embeddings\": false,"
    " \"bos_token_id\": 0, \"eos_token_id\": 1}";

/* bench-40m with its seeded random weights. */
static int bench40m_model(Model *m, SeekErr *err) {
    Config c;
    if (config_parse(&c, BENCH_40M, sizeof BENCH_40M - 1, "bench-40m", err) || model_init(m, &c, err)) return -1;
    bench_random_weights(m, 1234);
    return 0;
}

/* The benchmark's fixed token ids, spread over the vocabulary past the first three. */
static void bench_ids(int *ids, int n, int V) {
    for (int i = 0; i < n; i++) ids[i] = 3 + (17 * i + 5) % (V - 3);
}

/* The threads the cpu backend uses: OpenMP's (matmul.c splits every product over them). */
static int bench_threads(void) {
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return openblas_get_num_threads();
#endif
}

/* OpenBLAS's own sgemm rate: the best of `reps` n^3 products (GFLOP/s), threaded by OpenBLAS
 * itself over the backend's threads. */
static double sgemm_peak(int n, int reps) {
    cpu_blas_init();
    int own = openblas_get_num_threads();
    openblas_set_num_threads(bench_threads());
    float *a = malloc((size_t)n * n * sizeof(float)), *b = malloc((size_t)n * n * sizeof(float)),
          *c = malloc((size_t)n * n * sizeof(float));
    if (!a || !b || !c) SEEK_DIE("bench: out of memory");
    Rng r;
    rng_seed(&r, 7);
    for (size_t i = 0; i < (size_t)n * n; i++) a[i] = rng_uniform(&r) - 0.5f, b[i] = rng_uniform(&r) - 0.5f;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n); /* warm-up */
    double best = 0;
    for (int i = 0; i < reps; i++) {
        double t0 = bench_now_s();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
        double g = 2.0 * n * n * (double)n / (bench_now_s() - t0) / 1e9;
        if (g > best) best = g;
    }
    free(a);
    free(b);
    free(c);
    openblas_set_num_threads(own);
    return best;
}

typedef struct {
    double prefill_tps, decode_tps; /* medians */
    double gemm_gflops, gemm_share; /* cpu only */
    double phase_ms[4];             /* training: median ms of the gradients, norm, clipping, AdamW */
    double gemm_gflop_step;         /* training: GFLOP of matrix products per step */
} Result;

/* Median prefill and decode rates of one backend. logits (B·T·V) keeps the prefill's output. */
static int measure(Backend be, const Model *m, const int *ids, int B, int T, int n_dec, int reps, float *logits, Result *res,
                   SeekErr *err) {
    const Config *c = &m->cfg;
    AttnMode dec_mode = c->mla ? ATTN_ABSORB : ATTN_NAIVE;
    double pre[16], dec[16], gemm_s = 0, gemm_f = 0, fwd_s = 0;
    KVCache kv;
    RunState s;
    if (kvcache_init(&kv, c, B, T + n_dec, err)) return -1;
    if (runstate_init(&s, c, B, T, T + n_dec, 0, err)) {
        kvcache_free(&kv);
        return -1;
    }
    int *step = calloc((size_t)B, sizeof(int));
    int rc = step ? 0 : seek_fail(err, "bench: out of memory");
    for (int r = 0; !rc && r < reps; r++) {
        /* prefill */
        CpuGemmStats st = {0};
        if (be == BACKEND_CPU) cpu_gemm_stats = &st;
        kv.len = 0;
        double t0 = bench_now_s();
        rc = model_forward_on(be, m, &s, &kv, ids, B, T, ATTN_NAIVE, NULL, NULL, logits, err);
        double dt = bench_now_s() - t0;
        cpu_gemm_stats = NULL;
        pre[r] = (double)B * T / dt;
        gemm_s += st.seconds;
        gemm_f += st.flops;
        fwd_s += dt;
        /* decode: the prompt through the cache (not timed), then n_dec single-token steps */
        kv.len = 0;
        if (!rc) rc = model_forward_on(be, m, &s, &kv, ids, B, T, dec_mode, NULL, NULL, logits, err);
        t0 = bench_now_s();
        for (int d = 0; !rc && d < n_dec; d++) {
            for (int b = 0; b < B; b++) step[b] = 3 + (5 * d + b) % (c->V - 3);
            rc = model_forward_on(be, m, &s, &kv, step, B, 1, dec_mode, NULL, NULL, logits + (size_t)B * c->V, err);
        }
        dec[r] = (double)B * n_dec / (bench_now_s() - t0);
    }
    /* the prefill logits again, for the comparison (the decode steps wrote past them) */
    kv.len = 0;
    if (!rc) rc = model_forward_on(be, m, &s, &kv, ids, B, T, ATTN_NAIVE, NULL, NULL, logits, err);
    if (!rc) {
        res->prefill_tps = bench_median(pre, reps);
        res->decode_tps = bench_median(dec, reps);
        res->gemm_gflops = gemm_s > 0 ? gemm_f / gemm_s / 1e9 : 0;
        res->gemm_share = fwd_s > 0 ? gemm_s / fwd_s : 0;
    }
    free(step);
    runstate_free(&s);
    kvcache_free(&kv);
    return rc;
}

static int bench_model(const char *label, const Model *m, int B, int T, int n_dec, int reps_ref, int reps_cpu, double peak,
                       SeekErr *err) {
    const Config *c = &m->cfg;
    if (T + n_dec > c->max_pos) T = c->max_pos - n_dec;
    size_t nl = (size_t)B * (T + 1) * c->V;
    int *ids = malloc((size_t)B * T * sizeof(int));
    float *l_ref = malloc(nl * sizeof(float)), *l_cpu = malloc(nl * sizeof(float));
    if (!ids || !l_ref || !l_cpu) SEEK_DIE("bench: out of memory");
    bench_ids(ids, B * T, c->V);
    ModelCounts mc;
    model_counts(c, &mc);
    Result rr, rc_;
    int rc = measure(BACKEND_REF, m, ids, B, T, n_dec, reps_ref, l_ref, &rr, err);
    if (!rc) rc = measure(BACKEND_CPU, m, ids, B, T, n_dec, reps_cpu, l_cpu, &rc_, err);
    if (!rc) {
        double md = 0, mw = 0;
        for (size_t i = 0; i < (size_t)B * T * c->V; i++) {
            md = fmax(md, fabs((double)l_cpu[i] - l_ref[i]));
            mw = fmax(mw, fabs((double)l_ref[i]));
        }
        printf("%-10s %6.1fM %6.1fM  prefill %dx%-4d ref %9.1f  cpu %9.1f  x%6.1f | decode %s ref %8.1f  cpu %8.1f  x%5.1f"
               " | sgemm %5.1f GFLOP/s = %3.0f%% of peak, %3.0f%% of cpu time | logits rel %.1e\n",
               label, mc.total / 1e6, mc.active / 1e6, B, T, rr.prefill_tps, rc_.prefill_tps, rc_.prefill_tps / rr.prefill_tps,
               c->mla ? "absorb" : "llama ", rr.decode_tps, rc_.decode_tps, rc_.decode_tps / rr.decode_tps, rc_.gemm_gflops,
               100.0 * rc_.gemm_gflops / peak, 100.0 * rc_.gemm_share, mw > 0 ? md / mw : md);
        fflush(stdout);
    }
    free(ids);
    free(l_ref);
    free(l_cpu);
    return rc;
}

/* Median training-step tokens/s of one backend over `reps` steps from the weights in m (restored
 * afterwards). grads gets the first step's gradients, *loss its loss. */
static int measure_train(Backend be, Model *m, const int *ids, int B, int T, int reps, Model *grads, double *loss,
                         Result *res, SeekErr *err) {
    const Config *c = &m->cfg;
    LossWeights lw = {0, 0.3f, c->E > 0 ? 1e-4f : 0.0f};
    AdamWConfig ac = {0.9f, 0.95f, 1e-8f, 0.1f};
    TrainBuffers tb;
    if (trainbuf_init(&tb, c, B, T, 0, err)) return -1;
    float *saved = malloc(m->n_floats * sizeof(float)), *mom1 = calloc(m->n_floats, sizeof(float)),
          *mom2 = calloc(m->n_floats, sizeof(float)), *first = malloc(m->n_floats * sizeof(float));
    int rc = (!saved || !mom1 || !mom2 || !first) ? seek_fail(err, "bench: out of memory") : 0;
    if (!rc) memcpy(saved, m->arena, m->n_floats * sizeof(float));
    double tps[16], phase[4][16] = {{0}}, gemm_s = 0, gemm_f = 0, step_s = 0;
    for (int r = 0; !rc && r < reps; r++) {
        CpuGemmStats st = {0};
        if (be == BACKEND_CPU) cpu_gemm_stats = &st;
        StepLosses sl;
        double t0 = bench_now_s(), t1, t2, t3;
        rc = train_step_grads_on(be, m, grads, &tb, &(TrainBatch){.ids = ids}, &lw, &sl, err);
        t1 = t2 = t3 = bench_now_s();
        if (!rc) {
            double norm = grad_global_norm_on(be, grads);
            t2 = bench_now_s();
            if (r == 0) {
                memcpy(first, grads->arena, m->n_floats * sizeof(float));
                *loss = sl.total;
            }
            grad_clip_on(be, grads, norm, 1.0);
            t3 = bench_now_s();
            adamw_step_on(be, m, grads, mom1, mom2, &ac, 1e-3f, r + 1);
        }
        double dt = bench_now_s() - t0;
        phase[0][r] = 1e3 * (t1 - t0);
        phase[1][r] = 1e3 * (t2 - t1);
        phase[2][r] = 1e3 * (t3 - t2);
        phase[3][r] = 1e3 * (t0 + dt - t3);
        cpu_gemm_stats = NULL;
        tps[r] = (double)B * T / dt;
        if (r > 0 || reps == 1) { /* the first step touches fresh optimizer state: warm-up */
            gemm_s += st.seconds;
            gemm_f += st.flops;
            step_s += dt;
            res->gemm_gflop_step = st.flops / 1e9;
        }
    }
    if (!rc) {
        memcpy(grads->arena, first, m->n_floats * sizeof(float));
        res->prefill_tps = bench_median(tps, reps);
        res->gemm_gflops = gemm_s > 0 ? gemm_f / gemm_s / 1e9 : 0;
        res->gemm_share = step_s > 0 ? gemm_s / step_s : 0;
        for (int k = 0; k < 4; k++) res->phase_ms[k] = bench_median(phase[k], reps);
    }
    if (saved) memcpy(m->arena, saved, m->n_floats * sizeof(float));
    free(saved);
    free(mom1);
    free(mom2);
    free(first);
    trainbuf_free(&tb);
    return rc;
}

static int bench_train(const char *label, Model *m, int B, int T, int reps_ref, int reps_cpu, double peak, SeekErr *err) {
    const Config *c = &m->cfg;
    if (T > c->max_pos) T = c->max_pos;
    int *ids = malloc((size_t)B * T * sizeof(int));
    Model gr, gc;
    if (!ids) SEEK_DIE("bench: out of memory");
    bench_ids(ids, B * T, c->V);
    if (model_init(&gr, c, err)) {
        free(ids);
        return -1;
    }
    if (model_init(&gc, c, err)) {
        model_free(&gr);
        free(ids);
        return -1;
    }
    Result rr = {0}, rc_ = {0};
    double loss_r = 0, loss_c = 0;
    int rc = measure_train(BACKEND_REF, m, ids, B, T, reps_ref, &gr, &loss_r, &rr, err);
    if (!rc) rc = measure_train(BACKEND_CPU, m, ids, B, T, reps_cpu, &gc, &loss_c, &rc_, err);
    if (!rc) {
        double md = 0, mw = 0;
        for (size_t i = 0; i < gr.n_floats; i++) {
            md = fmax(md, fabs((double)gc.arena[i] - gr.arena[i]));
            mw = fmax(mw, fabs((double)gr.arena[i]));
        }
        printf("%-10s %15s train   %dx%-4d ref %9.1f  cpu %9.1f  x%6.1f | sgemm %5.1f GFLOP/s = %3.0f%% of peak, %3.0f%% of cpu step"
               " | loss rel %.1e, grads rel %.1e\n",
               label, "", B, T, rr.prefill_tps, rc_.prefill_tps, rc_.prefill_tps / rr.prefill_tps, rc_.gemm_gflops,
               100.0 * rc_.gemm_gflops / peak, 100.0 * rc_.gemm_share, fabs(loss_c - loss_r) / fabs(loss_r),
               mw > 0 ? md / mw : md);
        fflush(stdout);
    }
    model_free(&gr);
    model_free(&gc);
    free(ids);
    return rc;
}

/* `seek bench --profile-train N [--batch B]`: N cpu training steps of bench-40m on B x 256 tokens
 * and nothing else, so that a profiler (perf record) sees only the fast path. Prints the median
 * tokens/s. */
static int profile_train(int steps, int B, SeekErr *err) {
    Model m, g;
    if (bench40m_model(&m, err)) return -1;
    if (model_init(&g, &m.cfg, err)) {
        model_free(&m);
        return -1;
    }
    int T = 256, *ids = malloc((size_t)B * T * sizeof(int));
    if (!ids) SEEK_DIE("bench: out of memory");
    bench_ids(ids, B * T, m.cfg.V);
    Result r = {0};
    double loss = 0;
    int rc = measure_train(BACKEND_CPU, &m, ids, B, T, steps, &g, &loss, &r, err);
    if (!rc)
        printf("bench-40m train %dx%d, cpu, %d steps: %.1f tokens/s (median), sgemm %.1f GFLOP/s (%.1f GFLOP a step), %.0f%% of"
               " the step; median ms: gradients %.1f, norm %.1f, clip %.1f, AdamW %.1f\n",
               B, T, steps, r.prefill_tps, r.gemm_gflops, r.gemm_gflop_step, 100.0 * r.gemm_share, r.phase_ms[0], r.phase_ms[1], r.phase_ms[2],
               r.phase_ms[3]);
    free(ids);
    model_free(&g);
    model_free(&m);
    return rc;
}

int cmd_bench(int argc, char **argv) {
    int brc = bench_backend(argc, argv);
    if (brc >= 0) return brc;
    int quick = 0, n_dirs = 0;
    long long prof_steps = 0, prof_batch = 1;
    const char *dirs[16];
    SeekErr e;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick")) quick = 1;
        else if (!strcmp(argv[i], "--profile-train") || !strcmp(argv[i], "--batch")) {
            int steps = !strcmp(argv[i], "--profile-train");
            if (i + 1 >= argc ||
                parse_i64(argv[i + 1], 1, steps ? 16 : 64, steps ? &prof_steps : &prof_batch, argv[i], &e)) {
                fprintf(stderr, "seek bench: %s needs a number from 1 to %d\n", argv[i], steps ? 16 : 64);
                return 2;
            }
            i++;
        } else if (argv[i][0] == '-') {
            return cli_bad_option("bench", argv[i]);
        } else if (n_dirs < 16) dirs[n_dirs++] = argv[i];
        else {
            fprintf(stderr, "seek bench: at most 16 model folders\n");
            return 2;
        }
    }
    if (prof_steps) {
        if (profile_train((int)prof_steps, (int)prof_batch, &e)) {
            cli_fail("bench", e.msg);
            return 1;
        }
        return 0;
    }
    SeekErr err;
    const char *wp = getenv("OMP_WAIT_POLICY");
    cpu_blas_init();
    printf("seek bench: %s, %d thread(s) (the cpu backend splits products itself, OpenBLAS runs %d per block),"
           " OMP_WAIT_POLICY=%s; forward and training-step tokens/s (median of runs), ref vs cpu side by side\n",
           openblas_get_config(), bench_threads(), openblas_get_num_threads(), wp ? wp : "(unset)");
    double peak = sgemm_peak(quick ? 512 : 2048, quick ? 3 : 7);
    printf("OpenBLAS sgemm peak (best of %d %d^3 products): %.1f GFLOP/s\n", quick ? 3 : 7, quick ? 512 : 2048, peak);
    printf("%-10s %7s %7s  (tokens/s)\n", "model", "params", "active");
    int rc = 0;
    const int n_dirs_given = n_dirs;
    if (n_dirs == 0) {
        static const char *tiny[] = {"tests/fixtures/v3", "tests/fixtures/llama_gqa"};
        for (int i = 0; i < 2; i++) dirs[n_dirs++] = tiny[i];
    }
    for (int i = 0; !rc && i < n_dirs; i++) {
        Model m;
        if (model_load(&m, dirs[i], &err)) {
            rc = -1;
            break;
        }
        const char *label = strrchr(dirs[i], '/') ? strrchr(dirs[i], '/') + 1 : dirs[i];
        rc = bench_model(label, &m, 4, 64, 32, quick ? 3 : 5, quick ? 3 : 15, peak, &err);
        if (!rc) rc = bench_train(label, &m, 4, 64, quick ? 3 : 5, quick ? 3 : 15, peak, &err);
        model_free(&m);
    }
    if (!rc && n_dirs_given == 0) { /* the default set ends with bench-40m */
        Model m;
        if (bench40m_model(&m, &err)) rc = -1;
        else {
            rc = bench_model("bench-40m", &m, 1, quick ? 64 : 256, 32, 3, quick ? 3 : 7, peak, &err);
            if (!rc) rc = bench_train("bench-40m", &m, 1, quick ? 64 : 256, 3, quick ? 3 : 7, peak, &err);
            /* a batch as training runs it: the optimizer's fixed cost per step is shared by 4x the tokens */
            if (!rc && !quick) rc = bench_train("bench-40m", &m, 4, 256, 3, 5, peak, &err);
            model_free(&m);
        }
    }
    if (rc) {
        cli_fail("bench", err.msg);
        return 1;
    }
    return 0;
}
#else
int cmd_bench(int argc, char **argv) {
    int brc = bench_backend(argc, argv);
    if (brc >= 0) return brc;
    fprintf(stderr, "seek bench: this seek was built without OpenBLAS, so there is no cpu backend to measure\n");
    return 1;
}
#endif
