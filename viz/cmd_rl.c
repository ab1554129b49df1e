/* cmd_rl.c: `seek rl` — GRPO with rule-based rewards (docs/rl.md): from a model folder, sample
 * groups on verifiable tasks, reward them, and update the policy with trainer_step (ref/trainer.h)
 * against a frozen copy of the starting model as the KL reference. Errors: one line, exit 1 (bad
 * value) or 2 (usage). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend.h"
#include "commands.h"
#include "rl.h"
#include "rl_plot.h"
#include "trainer.h"

#define RL_USAGE                                                                                                        \
    "seek rl --init DIR --out RUN [--steps N] [--prompts P] [--group G] [--max-new N] [--temperature T] [--top-p P] "  \
    "[--beta B] [--clip E] [--lr LR] [--family add|sub|addsub] [--digits A..B] [--w-format W] [--no-scale-rewards] "   \
    "[--no-length-norm] [--updates U] [--eval N] [--eval-interval N] [--eval-samples S] [--pass-k K] [--eval-temperature T] [--eval-top-p P] [--show N] " \
    "[--checkpoint-interval N] [--seed S] [--backend ref|cpu|cuda] [--resume DIR]"

static int usage(const char *msg, const char *arg) {
    fprintf(stderr, "seek rl: %s%s%s (usage: %s)\n", msg, arg ? " " : "", arg ? arg : "", RL_USAGE);
    return 2;
}

/* RUN/curves.png from RUN/rl.log (seek plot's picture); a failure is a warning, not the run's */
static void write_curves(const char *out, const char *logpath) {
    char png[4096];
    SeekErr e;
    RlLog lg;
    Image im;
    if (path_join(png, sizeof png, out, "curves.png", &e) || rllog_read(&lg, logpath, &e)) {
        fprintf(stderr, "seek rl: warning: no curves.png: %s\n", e.msg);
        return;
    }
    const RlLog *logs[1] = {&lg};
    const char *labels[1] = {out};
    int rc = rlplot_render(logs, labels, 1, NULL, &im, NULL, &e);
    if (!rc) {
        rc = png_write(png, &im, &e);
        image_free(&im);
    }
    if (rc) fprintf(stderr, "seek rl: warning: no curves.png: %s\n", e.msg);
    rllog_free(&lg);
}

/* one evaluation: a line on stdout and an "eval" line in rl.log (step = batches of samples done) */
static void print_eval(FILE *out, FILE *log, const RlEvalOpts *eo, const RlEval *e, uint64_t step) {
    fprintf(out, "held-out (%d test tasks, %d samples each at temperature %g, top-p %g): pass@1 %.3f, pass@%d %.3f, "
                 "greedy %.3f, format %.3f, length %.1f\n",
            eo->n, eo->samples, eo->temperature, eo->top_p, e->pass1, eo->k, e->passk, e->greedy, e->format, e->length);
    if (log)
        fprintf(log, "eval step=%llu pass1=%.4f pass%d=%.4f greedy=%.4f format=%.4f greedy_format=%.4f length=%.2f n=%d "
                 "samples=%d\n",
            (unsigned long long)step, e->pass1, eo->k, e->passk, e->greedy, e->format, e->greedy_format, e->length,
            eo->n, eo->samples);
}

int cmd_rl(int argc, char **argv) {
    const char *init = NULL, *out = NULL, *resume = NULL, *backend_s = NULL, *digits = "2..3", *family = "add";
    long long steps = 20, prompts = 4, group = 8, max_new = 32, eval_n = 32, ckpt = 0, seed = 1, updates = 1;
    long long eval_s = 16, pass_k = -1, eval_every = 0, show = 0;   /* -1: min(8, eval_s) */
    double temperature = 1.0, top_p = 1.0, beta = 0.04, clip = 0.2, lr = 1e-4, w_fmt = 0.1, eval_t = 0.6, eval_p = 0.95;
    int scale = 1, lnorm = 1;
    SeekErr err;
    int rc = 0;
    for (int i = 1; i < argc && !rc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--no-scale-rewards")) { scale = 0; continue; }
        if (!strcmp(a, "--no-length-norm")) { lnorm = 0; continue; }
        if (a[0] != '-') return usage("unexpected argument", a);
        if (strncmp(a, "--", 2) || !strcmp(a, "--help")) return cli_bad_option("rl", a);
        /* a flag last on the line has no value: "" stands in, and a known flag says so below */
        const int missing = i + 1 >= argc;
        const char *v = missing ? "" : argv[++i];
        if (!strcmp(a, "--init")) init = v;
        else if (!strcmp(a, "--out")) out = v;
        else if (!strcmp(a, "--resume")) resume = v;
        else if (!strcmp(a, "--backend")) backend_s = v;
        else if (!strcmp(a, "--digits")) digits = v;
        else if (!strcmp(a, "--family")) family = v;
        else if (!strcmp(a, "--steps")) rc = parse_i64(v, 0, 1 << 30, &steps, "--steps", &err);
        else if (!strcmp(a, "--prompts")) rc = parse_i64(v, 1, 1024, &prompts, "--prompts", &err);
        else if (!strcmp(a, "--group")) rc = parse_i64(v, 2, 1024, &group, "--group", &err);
        else if (!strcmp(a, "--max-new")) rc = parse_i64(v, 1, 4096, &max_new, "--max-new", &err);
        else if (!strcmp(a, "--eval")) rc = parse_i64(v, 0, 1 << 20, &eval_n, "--eval", &err);
        else if (!strcmp(a, "--eval-samples")) rc = parse_i64(v, 1, 1024, &eval_s, "--eval-samples", &err);
        else if (!strcmp(a, "--pass-k")) rc = parse_i64(v, 1, 1024, &pass_k, "--pass-k", &err);
        else if (!strcmp(a, "--eval-temperature")) rc = parse_f64(v, 0, 100, &eval_t, "--eval-temperature", &err);
        else if (!strcmp(a, "--eval-top-p")) rc = parse_f64(v, 1e-6, 1, &eval_p, "--eval-top-p", &err);
        else if (!strcmp(a, "--eval-interval")) rc = parse_i64(v, 0, 1 << 30, &eval_every, "--eval-interval", &err);
        else if (!strcmp(a, "--show")) rc = parse_i64(v, 0, 1 << 20, &show, "--show", &err);
        else if (!strcmp(a, "--updates")) rc = parse_i64(v, 1, 64, &updates, "--updates", &err);
        else if (!strcmp(a, "--checkpoint-interval")) rc = parse_i64(v, 0, 1 << 30, &ckpt, "--checkpoint-interval", &err);
        else if (!strcmp(a, "--seed")) rc = parse_i64(v, 0, 0x7fffffffffffffffLL, &seed, "--seed", &err);
        else if (!strcmp(a, "--temperature")) rc = parse_f64(v, 0, 100, &temperature, "--temperature", &err);
        else if (!strcmp(a, "--top-p")) rc = parse_f64(v, 1e-6, 1, &top_p, "--top-p", &err);
        else if (!strcmp(a, "--beta")) rc = parse_f64(v, 0, 1e6, &beta, "--beta", &err);
        else if (!strcmp(a, "--clip")) rc = parse_f64(v, 1e-6, 0.999999, &clip, "--clip", &err);
        else if (!strcmp(a, "--lr")) rc = parse_f64(v, 0, 10, &lr, "--lr", &err);
        else if (!strcmp(a, "--w-format")) rc = parse_f64(v, 0, 100, &w_fmt, "--w-format", &err);
        else return cli_bad_option("rl", a);
        if (missing) return usage("needs a value:", a);
    }
    if (rc) {
        cli_fail("rl", err.msg);
        return 1;
    }
    if (!init) return usage("--init is required", NULL);
    if (steps > 0 && !out) return usage("--out is required (or --steps 0: only the held-out evaluation)", NULL);
    if (steps == 0 && (out || resume)) return usage("--steps 0 only evaluates: --out and --resume do not go with it", NULL);
    if (steps == 0 && eval_n == 0) return usage("--steps 0 evaluates: --eval must be at least 1", NULL);
    if (steps * updates > 0x7fffffff) {
        fprintf(stderr, "seek rl: --steps %lld x --updates %lld: more than 2^31 - 1 updates\n", steps, updates);
        return 1;
    }
    if (pass_k < 0) pass_k = eval_s < 8 ? eval_s : 8;
    if (pass_k > eval_s) {
        fprintf(stderr, "seek rl: --pass-k %lld: expected at most --eval-samples (%lld)\n", pass_k, eval_s);
        return 1;
    }
    Backend be = backend_default();
    if (backend_s && backend_parse(backend_s, &be, &err)) {
        cli_fail("rl", err.msg);
        return 1;
    }
    RlOpts o = {(int)prompts, (int)group, (int)max_new, (float)temperature, (float)top_p, (uint64_t)seed, (float)beta,
                (float)clip, scale, lnorm, 1.0f, (float)w_fmt, {0}};
    o.task.allow_negative = 0;
    if (task_parse_family(&o.task, family, &err) || task_parse_digits(&o.task, digits, &err)) {
        cli_fail("rl", err.msg);
        return 1;
    }
    /* everything checked before any work: the policy, its frozen reference, the tokenizer */
    Model m = {0}, ref = {0};
    Tokenizer *tok = NULL;
    RlStep x = {0};
    Trainer tr;
    memset(&tr, 0, sizeof tr);
    int have_m = 0, have_ref = 0, have_x = 0, have_tr = 0;
    char dir[4096], tokpath[4096], logpath[4096];
    FILE *log = NULL;
    rc = model_resolve_dir(init, dir, sizeof dir, &err);
    if (!rc && (rc = model_load(&m, dir, &err)) == 0) have_m = 1;
    if (!rc && beta > 0 && (rc = model_load(&ref, dir, &err)) == 0) have_ref = 1;
    if (!rc) rc = path_join(tokpath, sizeof tokpath, dir, "tokenizer.json", &err);
    if (!rc && (rc = tokenizer_load(&tok, tokpath, &err))) seek_fail_prefix(&err, "--init %s needs its tokenizer", init);
    char *config_text = NULL; /* before the first goto done: freed there */
    if (!rc && steps == 0) {   /* the held-out evaluation alone */
        RlEvalOpts eo = {(int)eval_n, (int)eval_s, (int)pass_k, (float)eval_t, (float)eval_p, (uint64_t)seed, (int)show, stdout};
        RlEval e;
        if ((rc = rl_eval(be, &m, tok, &o, &eo, &e, &err)) == 0) print_eval(stdout, NULL, &eo, &e, 0);
        if (rc) cli_fail("rl", err.msg);
        goto done;
    }
    if (!rc && (rc = rl_step_init(&x, &o, &m.cfg, tok, &err)) == 0) have_x = 1;
    size_t cl;
    char cfgpath[4096];
    if (!rc) rc = path_join(cfgpath, sizeof cfgpath, dir, "config.json", &err);
    if (!rc) rc = read_text_file(cfgpath, 1 << 20, &config_text, &cl, &err);
    /* the trainer counts updates: `updates` per batch of samples */
    const long long total = steps * updates;
    TrainerOpts to = {.B = x.B, .T = x.T, .steps = total, .sched = {SCHED_CONSTANT, (float)lr, (float)lr, 0, (int)total, 0},
                      .adamw = {0.9f, 0.99f, 1e-8f, 0.0f}, .grad_clip = 1.0, .lw = {0, 0, 0}, .bias_gamma = 0,
                      .max_bad_steps = 5, .checkpoint_interval = ckpt, .out = out, .config_json = config_text,
                      .tokenizer = tokpath, .be = be, .resume_multiple = updates};
    if (!rc && (rc = trainer_init(&tr, &to, &m, resume, &err)) == 0) have_tr = 1;
    if (!rc && path_join(logpath, sizeof logpath, out, "rl.log", &err) == 0 && !(log = fopen(logpath, resume ? "a" : "w")))
        rc = seek_fail(&err, "%s: cannot open: %s", logpath, strerror(errno));
    if (log) setvbuf(log, NULL, _IOLBF, 0); /* each line reaches the file as it is written: a kill loses none */
    if (rc) {
        cli_fail("rl", err.msg);
        goto done;
    }
    tr.o.log = log;
    printf("rl: %s (%s), %d tasks x %d samples a step, %lld update%s each, %d new tokens at most, rows of %d; beta %g, "
           "clip %g; backend %s\n",
           dir, m.cfg.model_type, o.prompts, o.G, updates, updates > 1 ? "s" : "", o.max_new, x.T, beta, clip,
           backend_name(be));
    fprintf(log, "start init=%s steps=%lld updates=%lld prompts=%d group=%d max_new=%d temperature=%g top_p=%g beta=%g "
                 "clip=%g lr=%g family=%s digits=%s seed=%lld resume=%s backend=%s\n",
            dir, steps, updates, o.prompts, o.G, o.max_new, temperature, top_p, beta, clip, lr, family, digits, seed,
            resume ? resume : "-", backend_name(be));
    RlEvalOpts eo = {(int)eval_n, (int)eval_s, (int)pass_k, (float)eval_t, (float)eval_p, (uint64_t)seed, (int)show, stdout};
    RlEval e0 = {0}, e1 = {0}, ei;
    if (eval_n > 0) {
        if ((rc = rl_eval(be, &m, tok, &o, &eo, &e0, &err))) goto fail;
        print_eval(stdout, log, &eo, &e0, tr.st.step / updates);
    }
    while ((long long)tr.st.step < total) {
        const uint64_t batch = tr.st.step / (uint64_t)updates;
        if ((rc = rl_rollouts(&x, be, &m, have_ref ? &ref : NULL, tok, batch, &err))) goto fail;
        if (updates > 1 && (rc = rl_old_logprobs(&x, be, &m, &err))) goto fail;
        for (long long u = 0; u < updates; u++) {
            StepReport rep;
            if ((rc = trainer_step(&tr, &x.batch, &rep, &err))) goto fail;
            const PolicyStats *ps = &tr.tb.policy;
            fprintf(log, "rl step=%llu update=%llu reward=%.4f accuracy=%.4f format=%.4f length=%.2f kl=%.6g "
                         "clip_frac=%.4f entropy=%.5f ratio=%.6f flat_groups=%d loss=%.6g grad_norm=%.4g\n",
                    (unsigned long long)batch + 1, (unsigned long long)tr.st.step, x.st.reward, x.st.accuracy,
                    x.st.format, x.st.length, ps->kl, ps->clip_frac, ps->entropy, ps->ratio, x.st.groups_all_equal,
                    rep.loss.main, rep.norm);
            printf("step %llu/%lld%s reward %.3f accuracy %.3f format %.3f length %.1f kl %.2e entropy %.3f loss %.4f "
                   "norm %.3f %.0f ms\n",
                   (unsigned long long)batch + 1, steps, updates > 1 ? (u ? "+" : " ") : "", x.st.reward,
                   x.st.accuracy, x.st.format, x.st.length, ps->kl, ps->entropy, rep.loss.main, rep.norm, rep.ms);
            fflush(stdout);
        }
        long long done = (long long)batch + 1;
        if (((ckpt > 0 && done % ckpt == 0) || done == steps) && (rc = trainer_checkpoint(&tr, NULL, &err))) goto fail;
        if ((ckpt > 0 && done % ckpt == 0) || done == steps) {
            fflush(log);
            write_curves(out, logpath);
        }
        if (eval_n > 0 && eval_every > 0 && done % eval_every == 0 && done < steps) {
            RlEvalOpts quiet = eo;
            quiet.show = 0;
            if ((rc = rl_eval(be, &m, tok, &o, &quiet, &ei, &err))) goto fail;
            print_eval(stdout, log, &eo, &ei, (uint64_t)done);
        }
    }
    if (eval_n > 0) {
        if ((rc = rl_eval(be, &m, tok, &o, &eo, &e1, &err))) goto fail;
        print_eval(stdout, log, &eo, &e1, steps);
        printf("held-out pass@1 %.3f -> %.3f, pass@%d %.3f -> %.3f, greedy %.3f -> %.3f\n", e0.pass1, e1.pass1, eo.k,
               e0.passk, e1.passk, e0.greedy, e1.greedy);
        fflush(log);
        write_curves(out, logpath);
    }
    printf("done: %lld steps; checkpoint in %s/latest, log %s, curves %s/curves.png\n", steps, out, logpath, out);
fail:
    if (rc) cli_fail("rl", err.msg);
done:
    if (log) fclose(log);
    if (have_tr) trainer_free(&tr);
    if (have_x) rl_step_free(&x);
    if (tok) tokenizer_free(tok);
    if (have_ref) model_free(&ref);
    if (have_m) model_free(&m);
    free(config_text);
    return rc ? 1 : 0;
}
