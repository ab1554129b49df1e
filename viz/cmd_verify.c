/* cmd_verify.c: `seek verify DIR [--backend cpu|cuda] [--ids …] [--attn naive|absorb] [--decode N]`.
 *
 * Runs the reference and a fast backend on the same tokens — a prefill of the ids, then N decode
 * steps with fixed tokens through the KV cache — capturing every hook stage (docs/conventions.md),
 * and compares the two stage by stage in forward order. One table row per stage:
 *   max abs error, max relative error (max|got - want| / max|want|), normalised MSE
 *   (Σ(got - want)² / Σ want²), a check column (argmax agreement for the logits, equal expert
 *   sets for the routing), and pass/fail.
 * A stage passes when NaN/Inf sit at the same positions (compared first: masked attention scores
 * are -inf in both), the shapes agree, rel <= TOL_CPU_STAGE_REL and nmse <= TOL_CPU_STAGE_NMSE
 * (ref/tolerances.h), expert sets are equal token by token, and every logits row whose
 * reference top-1 margin is clear of the tolerance has the same argmax. The first failing stage is
 * named at the end; the exit status is 1 on any failure, 2 on a usage error.
 * Without --attn an MLA model is verified in both attention modes (two tables).
 *
 * With --grad it verifies training instead: one training step's losses and gradients
 * (train_step_grads: the next-token loss, the model's MTP depths with λ = 0.3 when it has MTP
 * modules, the balance loss with α = 1e-4 when it has experts) on the reference and the backend,
 * then every parameter gradient by name through the parameter table, in table order. A loss row
 * passes within TOL_CPU_LOSS_REL; a gradient passes when NaN/Inf positions agree and
 * max|got − want| <= TOL_CPU_GRAD_REL·max|want| + TOL_CPU_GRAD_ABS·(largest |gradient| of the
 * model): a tensor whose own gradient is tiny (an expert chosen by one token) is held to the
 * model's scale, as TOL_HF_GRAD_* does against transformers.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend.h"
#include "commands.h"
#include "forward.h"
#include "model.h"
#include "precision.h"
#include "stagecmp.h"
#include "train.h"
#include "tolerances.h"

static int vfail(const SeekErr *e) {
    cli_fail("verify", e->msg);
    return 1;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* prefill ids (B, T), then n_dec decode steps with fixed tokens; every stage captured */
static int run_capture(Backend be, const Model *m, const int *ids, int B, int T, int n_dec, AttnMode mode, ActCache *cap,
                       double *secs, SeekErr *err) {
    const Config *c = &m->cfg;
    KVCache kv;
    RunState s;
    if (kvcache_init(&kv, c, B, T + n_dec, err)) return -1;
    if (runstate_init(&s, c, B, T, T + n_dec, 1, err)) {
        kvcache_free(&kv);
        return -1;
    }
    float *logits = malloc((size_t)B * T * c->V * sizeof(float));
    int *step = malloc((size_t)B * sizeof(int));
    int rc = (!logits || !step) ? seek_fail(err, "out of memory") : 0;
    double t0 = now_s();
    if (!rc) rc = model_forward_on(be, m, &s, &kv, ids, B, T, mode, cap, NULL, logits, err);
    for (int d = 0; !rc && d < n_dec; d++) {
        for (int b = 0; b < B; b++) step[b] = 3 + (11 * d + 7 * b + ids[(size_t)b * T + T - 1]) % (c->V - 3);
        rc = model_forward_on(be, m, &s, &kv, step, B, 1, mode, cap, NULL, logits, err);
    }
    *secs = now_s() - t0;
    free(logits);
    free(step);
    runstate_free(&s);
    kvcache_free(&kv);
    return rc;
}

static int ends_with(const char *s, const char *suffix) {
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && !strcmp(s + a - b, suffix);
}

static int cmp_float(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* Compares one stage; prints its row; returns 1 if it passes. why (64) gets the reason if not.
 * gotc: the backend's whole capture on a bf16 backend (its routing near ties: stagecmp.h), else NULL. */
static int compare_stage(const Activation *want, const Activation *got, const Limits *lim, const ActCache *gotc,
                         const Config *cfg, char *why) {
    char shape[48] = "";
    for (int d = 0; d < want->ndim; d++) {
        size_t len = strlen(shape);
        snprintf(shape + len, sizeof shape - len, d ? "x%zu" : "%zu", want->shape[d]);
    }
    printf("%-40s %-16s ", want->name, shape);
    const char *pad = lim->base_rel >= 0 ? "           " : "";
    if (!got) {
        snprintf(why, 64, "missing from the backend's capture");
        printf("%-46s%s FAIL (missing)\n", "", pad);
        return 0;
    }
    if (!same_shape(got, want)) {
        snprintf(why, 64, "shape differs");
        printf("%-46s%s FAIL (shape)\n", "", pad);
        return 0;
    }
    StageErr e = stage_error(want, got);
    size_t n = want->numel, bad_pos = e.bad_pos;
    double max_abs = e.max_abs, max_want = e.max_want, rel = e.rel, nmse = e.nmse;
    int pass = bad_pos == 0 && rel <= lim->rel && nmse <= lim->nmse;
    if (bad_pos) snprintf(why, 64, "%zu NaN/Inf position(s) differ, first at %zu", bad_pos, e.first_bad);
    else if (!pass) snprintf(why, 64, "rel %.2e / nmse %.2e over the limit", rel, nmse);
    char check[40] = "";
    size_t last = want->shape[want->ndim - 1], rows = last ? n / last : 0;
    if (ends_with(want->name, "hook_expert_indices") && gotc) {
        /* discrete, on a bf16 backend: equal sets, or a near tie (routing_near_ties); the
         * indices' numeric error says nothing here */
        size_t differ = 0, near = routing_near_ties(want, got, gotc, cfg, &differ);
        pass = bad_pos == 0;
        if (differ) snprintf(check, sizeof check, "sets %zu/%zu (%zu near tie)", rows - differ, rows, near);
        else snprintf(check, sizeof check, "sets %zu/%zu", rows, rows);
        if (near != differ) {
            if (pass) snprintf(why, 64, "%zu token(s) chose other experts, no near tie", differ - near);
            pass = 0;
        }
    } else if (ends_with(want->name, "hook_expert_indices")) {
        /* discrete: the chosen experts of every token as sorted sets */
        size_t equal = 0;
        float a[CFG_MAX_EXPERTS], b[CFG_MAX_EXPERTS];
        for (size_t r = 0; r < rows; r++) {
            memcpy(a, want->data + r * last, last * sizeof(float));
            memcpy(b, got->data + r * last, last * sizeof(float));
            qsort(a, last, sizeof(float), cmp_float);
            qsort(b, last, sizeof(float), cmp_float);
            equal += !memcmp(a, b, last * sizeof(float));
        }
        snprintf(check, sizeof check, "sets %zu/%zu", equal, rows);
        if (equal != rows) {
            if (pass) snprintf(why, 64, "expert sets differ for %zu token(s)", rows - equal);
            pass = 0;
        }
    } else if (!strcmp(want->name, "unembed.hook_out")) {
        /* argmax per row; a row whose reference margin is within the tolerance is a near tie */
        size_t agree = 0, ties = 0;
        for (size_t r = 0; r < rows; r++) {
            const float *a = want->data + r * last, *b = got->data + r * last;
            size_t ia = 0, ib = 0;
            for (size_t j = 1; j < last; j++) {
                if (a[j] > a[ia]) ia = j;
                if (b[j] > b[ib]) ib = j;
            }
            if (ia == ib) agree++;
            else if (a[ia] - a[ib] <= 2.0 * lim->rel * max_want) ties++;
        }
        snprintf(check, sizeof check, ties ? "argmax %zu/%zu (%zu tie)" : "argmax %zu/%zu", agree, rows, ties);
        if (agree + ties != rows) {
            if (pass) snprintf(why, 64, "argmax differs in %zu row(s)", rows - agree - ties);
            pass = 0;
        }
    }
    if (lim->base_rel >= 0) printf("%9.2e  %9.2e  %9.2e  %9.2e  %-16s %s\n", max_abs, rel, lim->base_rel, nmse, check,
                                   pass ? "pass" : "FAIL");
    else printf("%9.2e  %9.2e  %9.2e  %-16s %s\n", max_abs, rel, nmse, check, pass ? "pass" : "FAIL");
    return pass;
}

/* ---- --grad: one training step, every parameter gradient ---- */

static int grad_step(Backend be, const Model *m, Model *g, const int *ids, const int *targets, int B, int T,
                     const LossWeights *lw, StepLosses *sl, double *secs, SeekErr *err) {
    TrainBuffers tb;
    if (trainbuf_init(&tb, &m->cfg, B, T, lw->mtp_depth, err)) return -1;
    double t0 = now_s();
    int rc = train_step_grads_on(be, m, g, &tb, &(TrainBatch){ids, targets, NULL}, lw, sl, err);
    *secs = now_s() - t0;
    trainbuf_free(&tb);
    return rc;
}

/* one loss row: relative difference */
static int compare_loss(const char *name, double want, double got) {
    double d = fabs(got - want), rel = want != 0 ? d / fabs(want) : d;
    int pass = isfinite(want) == isfinite(got) && rel <= TOL_CPU_LOSS_REL;
    printf("%-56s %-12s %9.2e  %9.2e  %9s  %-18s %s\n", name, "1", d, rel, "", "", pass ? "pass" : "FAIL");
    return pass;
}

/* one gradient row; gmax is the largest |gradient| of the reference over the model */
static int compare_grad(const ParamInfo *want, const ParamInfo *got, double gmax, char *why) {
    char shape[48] = "";
    for (int d = 0; d < want->ndim; d++) {
        size_t len = strlen(shape);
        snprintf(shape + len, sizeof shape - len, d ? "x%llu" : "%llu", (unsigned long long)want->shape[d]);
    }
    size_t n = want->numel, bad_pos = 0, first_bad = 0;
    for (size_t i = 0; i < n; i++) {
        float a = want->ptr[i], b = got->ptr[i];
        int same = isnan(a) ? isnan(b) : isinf(a) ? (isinf(b) && (a > 0) == (b > 0)) : isfinite(b);
        if (!same && bad_pos++ == 0) first_bad = i;
    }
    double max_abs = 0, max_want = 0, sd = 0, sw = 0;
    for (size_t i = 0; i < n; i++) {
        double a = want->ptr[i], b = got->ptr[i];
        if (!isfinite(a) || !isfinite(b)) continue;
        double d = fabs(b - a);
        if (d > max_abs) max_abs = d;
        if (fabs(a) > max_want) max_want = fabs(a);
        sd += d * d;
        sw += a * a;
    }
    double rel = max_want > 0 ? max_abs / max_want : max_abs, nmse = sw > 0 ? sd / sw : sd;
    double limit = TOL_CPU_GRAD_REL * max_want + TOL_CPU_GRAD_ABS * gmax;
    int pass = bad_pos == 0 && max_abs <= limit;
    if (bad_pos) snprintf(why, 64, "%zu NaN/Inf position(s) differ, first at %zu", bad_pos, first_bad);
    else if (!pass) snprintf(why, 64, "max abs %.2e over the limit %.2e", max_abs, limit);
    char check[32];
    snprintf(check, sizeof check, "limit %.2e", limit);
    printf("%-56s %-12s %9.2e  %9.2e  %9.2e  %-18s %s\n", want->name, shape, max_abs, rel, nmse, check, pass ? "pass" : "FAIL");
    return pass;
}

static int verify_grad(Backend be, const char *dir, const Model *m, const int *ids, const int *targets, int B, int T) {
    const Config *c = &m->cfg;
    SeekErr err;
    int D = m->has_mtp ? c->mtp_depth : 0;
    if (D > MAX_MTP_DEPTH) D = MAX_MTP_DEPTH;
    if (D > 0 && T - D < 2) D = 0; /* too short for the MTP depths: the main and balance losses only */
    LossWeights lw = {D, 0.3f, c->E > 0 ? 1e-4f : 0.0f};
    Model gr, gb;
    if (model_init(&gr, c, &err)) return vfail(&err);
    if (model_init(&gb, c, &err)) {
        model_free(&gr);
        return vfail(&err);
    }
    StepLosses lr_, lb;
    double t_ref = 0, t_be = 0;
    int rc = grad_step(BACKEND_REF, m, &gr, ids, targets, B, T, &lw, &lr_, &t_ref, &err);
    if (!rc) rc = grad_step(be, m, &gb, ids, targets, B, T, &lw, &lb, &t_be, &err);
    if (rc) {
        model_free(&gr);
        model_free(&gb);
        return vfail(&err);
    }
    printf("verify %s --grad: backend %s against ref, one training step on %d x %d tokens (MTP depths %d, balance alpha %g);"
           " limits: losses rel %.0e, gradients %.0e * max|tensor| + %.0e * max|all gradients|\n",
           dir, backend_name(be), B, T, D, (double)lw.balance_alpha, TOL_CPU_LOSS_REL, TOL_CPU_GRAD_REL, TOL_CPU_GRAD_ABS);
    printf("%-56s %-12s %9s  %9s  %9s  %-18s %s\n", "loss / parameter gradient", "shape", "max abs", "max rel", "nmse", "check",
           "result");
    size_t n_rows = 0, n_fail = 0;
    const char *first = NULL;
    char first_why[64] = "", why[64];
    struct { const char *name; double want, got; } losses[] = {
        {"loss.total", lr_.total, lb.total}, {"loss.main", lr_.main, lb.main}, {"loss.mtp", lr_.mtp, lb.mtp},
        {"loss.balance", lr_.balance, lb.balance}};
    for (size_t i = 0; i < sizeof losses / sizeof losses[0]; i++) {
        if (i == 2 && D == 0) continue;
        if (i == 3 && lw.balance_alpha == 0) continue;
        n_rows++;
        if (!compare_loss(losses[i].name, losses[i].want, losses[i].got)) {
            if (!first) first = losses[i].name, snprintf(first_why, sizeof first_why, "relative difference over the limit");
            n_fail++;
        }
    }
    double gmax = 0;
    for (size_t i = 0; i < gr.n_params; i++)
        for (size_t k = 0; k < gr.params[i].numel; k++)
            if (isfinite(gr.params[i].ptr[k]) && fabs(gr.params[i].ptr[k]) > gmax) gmax = fabs(gr.params[i].ptr[k]);
    for (size_t i = 0; i < gr.n_params; i++) {
        if (gr.params[i].mtp && !m->has_mtp) continue;
        n_rows++;
        why[0] = '\0';
        if (!compare_grad(&gr.params[i], &gb.params[i], gmax, why)) {
            if (!first) first = gr.params[i].name, snprintf(first_why, sizeof first_why, "%s", why);
            n_fail++;
        }
    }
    if (first) printf("verify (grad): %zu of %zu rows FAIL; first failing: %s (%s)\n", n_fail, n_rows, first, first_why);
    else printf("verify (grad): all %zu rows pass (losses and every parameter gradient); ref %.1f ms, %s %.1f ms\n", n_rows,
                1e3 * t_ref, backend_name(be), 1e3 * t_be);
    model_free(&gr);
    model_free(&gb);
    return n_fail ? 1 : 0;
}

int cmd_verify(int argc, char **argv) {
    static const char dec_default[] = "2";
    const char *dir = NULL, *ids_s = NULL, *attn_s = NULL, *backend_s = NULL, *dec_s = dec_default, *plen_s = NULL;
    int grad = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--grad")) {
            grad = 1;
            continue;
        }
        const char **dst = !strcmp(a, "--ids") ? &ids_s : !strcmp(a, "--attn") ? &attn_s : !strcmp(a, "--backend") ? &backend_s
                         : !strcmp(a, "--decode") ? &dec_s : !strcmp(a, "--prompt-len") ? &plen_s : NULL;
        if (dst) {
            if (i + 1 >= argc) {
                fprintf(stderr, "seek verify: %s needs a value\n", a);
                return 2;
            }
            *dst = argv[++i];
        } else if (a[0] == '-') {
            return cli_bad_option("verify", a);
        } else if (!dir) dir = a;
        else {
            fprintf(stderr, "seek verify: unexpected argument '%s'\n", a);
            return 2;
        }
    }
    SeekErr err;
    char dbuf[4096];
    if (model_dir_or_default(&dir, dbuf, sizeof dbuf, &err)) return vfail(&err);
    Backend be = backend_default();
    if (backend_s && backend_parse(backend_s, &be, &err)) return vfail(&err);
    if (be == BACKEND_REF) {
        if (backend_s) fprintf(stderr, "seek verify: --backend ref: verify compares a fast backend against ref (use cpu, cuda or cuda-fast)\n");
        else fprintf(stderr, "seek verify: this seek has no fast backend to verify (built without OpenBLAS)\n");
        return 1;
    }
    long long n_dec;
    if (parse_i64(dec_s, 0, 64, &n_dec, "--decode", &err)) return vfail(&err);
    int modes[2], n_modes = 0;
    if (attn_s) {
        if (!strcmp(attn_s, "naive")) modes[n_modes++] = ATTN_NAIVE;
        else if (!strcmp(attn_s, "absorb")) modes[n_modes++] = ATTN_ABSORB;
        else {
            fprintf(stderr, "seek verify: --attn: '%s' is not a mode (expected naive or absorb)\n", attn_s);
            return 1;
        }
    }
    Model m;
    if (model_load(&m, dir, &err)) return vfail(&err);
    const Config *c = &m.cfg;
    int *ids = NULL, B = 2, T = 0, rc = 0;
    if (ids_s) {
        if (parse_id_batch(ids_s, &ids, &B, &T, &err)) rc = -1;
        for (int i = 0; !rc && i < B * T; i++)
            if (ids[i] >= c->V) rc = seek_fail(&err, "--ids: token id %d is out of range [0, %d) (vocab_size)", ids[i], c->V);
    } else {
        /* default: two sequences of 12 ids spread over the vocabulary (fixed, no RNG) */
        T = 12;
        ids = malloc((size_t)B * T * sizeof(int));
        if (!ids) rc = seek_fail(&err, "out of memory");
        for (int i = 0; !rc && i < B * T; i++) ids[i] = 3 + (17 * (i % T) + 29 * (i / T) + 5) % (c->V > 3 ? c->V - 3 : 1);
    }
    if (!rc && c->V <= 3) rc = seek_fail(&err, "%s: vocab_size %d is too small to verify", dir, c->V);
    if (!rc && grad && (attn_s || dec_s != dec_default))
        rc = seek_fail(&err, "--grad verifies a training step (naive attention, no decoding): drop --attn and --decode");
    if (!rc && grad && T < 2) rc = seek_fail(&err, "--grad: sequences need at least 2 tokens (got %d)", T);
    if (!rc && plen_s && !grad) rc = seek_fail(&err, "--prompt-len goes with --grad (the SFT loss of a training step)");
    int *targets = NULL;
    if (!rc && plen_s) rc = parse_prompt_lens(plen_s, ids, B, T, &targets, &err);
    if (!rc && grad) {
        rc = verify_grad(be, dir, &m, ids, targets, B, T);
        free(ids);
        free(targets);
        model_free(&m);
        return rc;
    }
    if (!rc && T + n_dec > c->max_pos)
        rc = seek_fail(&err, "--ids: %d tokens + %lld decode steps exceed max_position_embeddings %d", T, n_dec, c->max_pos);
    if (!rc && attn_s && modes[0] == ATTN_ABSORB && !c->mla)
        rc = seek_fail(&err, "--attn absorb needs an MLA model (this is %s)", c->model_type);
    if (rc) {
        free(ids);
        model_free(&m);
        return vfail(&err);
    }
    if (!attn_s) {
        modes[n_modes++] = ATTN_NAIVE;
        if (c->mla) modes[n_modes++] = ATTN_ABSORB;
    }

    int failures = 0;
    for (int mi = 0; mi < n_modes && !rc; mi++) {
        AttnMode mode = (AttnMode)modes[mi];
        const char *mname = mode == ATTN_NAIVE ? "naive" : "absorb";
        ActCache want, got, base;
        actcache_init(&want);
        actcache_init(&got);
        actcache_init(&base);
        double t_ref = 0, t_be = 0, t_base = 0;
        /* a bf16 backend is held to the precision baseline: the reference again with the same
         * values rounded to bf16 at the same points (ref/precision.h) */
        const int bf16 = be == BACKEND_CUDA_FAST;
        rc = run_capture(BACKEND_REF, &m, ids, B, T, (int)n_dec, mode, &want, &t_ref, &err);
        if (!rc && bf16) {
            ref_precision = PRECISION_BF16;
            rc = run_capture(BACKEND_REF, &m, ids, B, T, (int)n_dec, mode, &base, &t_base, &err);
            ref_precision = PRECISION_FP32;
        }
        if (!rc) rc = run_capture(be, &m, ids, B, T, (int)n_dec, mode, &got, &t_be, &err);
        if (!rc) {
            if (bf16) {
                printf("verify %s: backend %s against ref, %s attention, %d x %d tokens + %lld decode step(s); limits "
                       "%g x the bf16 baseline's error (\"base rel\": ref with bf16 products) + rel %.0e, nmse %.0e\n",
                       dir, backend_name(be), mname, B, T, n_dec, TOL_BF16_BASELINE_FACTOR, TOL_CUDA_STAGE_REL,
                       TOL_CUDA_STAGE_NMSE);
                printf("%-40s %-16s %9s  %9s  %9s  %9s  %-16s %s\n", "stage", "shape", "max abs", "max rel", "base rel",
                       "nmse", "check", "result");
            } else {
                printf("verify %s: backend %s against ref, %s attention, %d x %d tokens + %lld decode step(s); "
                       "limits rel %.0e, nmse %.0e\n",
                       dir, backend_name(be), mname, B, T, n_dec, TOL_CPU_STAGE_REL, TOL_CPU_STAGE_NMSE);
                printf("%-40s %-16s %9s  %9s  %9s  %-16s %s\n", "stage", "shape", "max abs", "max rel", "nmse", "check",
                       "result");
            }
            const char *first = NULL;
            char first_why[64] = "", why[64];
            size_t n_fail = 0;
            for (size_t i = 0; i < want.n; i++) {
                why[0] = '\0';
                Limits lim = stage_limits(&want.items[i], bf16 ? &base : NULL);
                if (!compare_stage(&want.items[i], actcache_get(&got, want.items[i].name), &lim, bf16 ? &got : NULL, c,
                                   why)) {
                    if (!first) {
                        first = want.items[i].name;
                        snprintf(first_why, sizeof first_why, "%s", why);
                    }
                    n_fail++;
                }
            }
            for (size_t i = 0; i < got.n; i++)
                if (!actcache_get(&want, got.items[i].name)) {
                    printf("%-40s only in the backend's capture: FAIL\n", got.items[i].name);
                    if (!first) first = got.items[i].name, snprintf(first_why, sizeof first_why, "not a reference stage");
                    n_fail++;
                }
            if (first) printf("verify (%s): %zu of %zu stages FAIL; first failing stage: %s (%s)\n", mname, n_fail, want.n,
                              first, first_why);
            else printf("verify (%s): all %zu stages pass; ref %.1f ms, %s %.1f ms\n", mname, want.n, 1e3 * t_ref,
                        backend_name(be), 1e3 * t_be);
            failures += n_fail > 0;
        }
        actcache_free(&want);
        actcache_free(&got);
        actcache_free(&base);
    }
    free(ids);
    model_free(&m);
    if (rc) return vfail(&err);
    return failures ? 1 : 0;
}
