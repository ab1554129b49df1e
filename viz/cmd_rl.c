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
#include "trainer.h"

#define RL_USAGE                                                                                                        \
    "seek rl --init DIR --out RUN [--steps N] [--prompts P] [--group G] [--max-new N] [--temperature T] [--top-p P] "  \
    "[--beta B] [--clip E] [--lr LR] [--family add|sub|addsub] [--digits A..B] [--w-format W] [--no-scale-rewards] "   \
    "[--no-length-norm] [--eval N] [--checkpoint-interval N] [--seed S] [--backend ref|cpu|cuda] [--resume DIR]"

static int usage(const char *msg, const char *arg) {
    fprintf(stderr, "seek rl: %s%s%s (usage: %s)\n", msg, arg ? " " : "", arg ? arg : "", RL_USAGE);
    return 2;
}

int cmd_rl(int argc, char **argv) {
    const char *init = NULL, *out = NULL, *resume = NULL, *backend_s = NULL, *digits = "2..3", *family = "add";
    long long steps = 20, prompts = 4, group = 8, max_new = 32, eval_n = 32, ckpt = 0, seed = 1;
    double temperature = 1.0, top_p = 1.0, beta = 0.04, clip = 0.2, lr = 1e-4, w_fmt = 0.1;
    int scale = 1, lnorm = 1;
    SeekErr err;
    int rc = 0;
    for (int i = 1; i < argc && !rc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--no-scale-rewards")) { scale = 0; continue; }
        if (!strcmp(a, "--no-length-norm")) { lnorm = 0; continue; }
        if (strncmp(a, "--", 2)) return usage("unexpected argument", a);
        if (i + 1 >= argc) return usage("needs a value:", a);
        const char *v = argv[++i];
        if (!strcmp(a, "--init")) init = v;
        else if (!strcmp(a, "--out")) out = v;
        else if (!strcmp(a, "--resume")) resume = v;
        else if (!strcmp(a, "--backend")) backend_s = v;
        else if (!strcmp(a, "--digits")) digits = v;
        else if (!strcmp(a, "--family")) family = v;
        else if (!strcmp(a, "--steps")) rc = parse_i64(v, 1, 1 << 30, &steps, "--steps", &err);
        else if (!strcmp(a, "--prompts")) rc = parse_i64(v, 1, 1024, &prompts, "--prompts", &err);
        else if (!strcmp(a, "--group")) rc = parse_i64(v, 2, 1024, &group, "--group", &err);
        else if (!strcmp(a, "--max-new")) rc = parse_i64(v, 1, 4096, &max_new, "--max-new", &err);
        else if (!strcmp(a, "--eval")) rc = parse_i64(v, 0, 1 << 20, &eval_n, "--eval", &err);
        else if (!strcmp(a, "--checkpoint-interval")) rc = parse_i64(v, 0, 1 << 30, &ckpt, "--checkpoint-interval", &err);
        else if (!strcmp(a, "--seed")) rc = parse_i64(v, 0, 0x7fffffffffffffffLL, &seed, "--seed", &err);
        else if (!strcmp(a, "--temperature")) rc = parse_f64(v, 0, 100, &temperature, "--temperature", &err);
        else if (!strcmp(a, "--top-p")) rc = parse_f64(v, 1e-6, 1, &top_p, "--top-p", &err);
        else if (!strcmp(a, "--beta")) rc = parse_f64(v, 0, 1e6, &beta, "--beta", &err);
        else if (!strcmp(a, "--clip")) rc = parse_f64(v, 1e-6, 0.999999, &clip, "--clip", &err);
        else if (!strcmp(a, "--lr")) rc = parse_f64(v, 0, 10, &lr, "--lr", &err);
        else if (!strcmp(a, "--w-format")) rc = parse_f64(v, 0, 100, &w_fmt, "--w-format", &err);
        else return usage("unknown option", a);
    }
    if (rc) {
        fprintf(stderr, "seek rl: %s\n", err.msg);
        return 1;
    }
    if (!init || !out) return usage("--init and --out are required", NULL);
    Backend be = backend_default();
    if (backend_s && backend_parse(backend_s, &be, &err)) {
        fprintf(stderr, "seek rl: %s\n", err.msg);
        return 1;
    }
    RlOpts o = {(int)prompts, (int)group, (int)max_new, (float)temperature, (float)top_p, (uint64_t)seed, (float)beta,
                (float)clip, scale, lnorm, 1.0f, (float)w_fmt, {0}};
    o.task.allow_negative = 0;
    if (task_parse_family(&o.task, family, &err) || task_parse_digits(&o.task, digits, &err)) {
        fprintf(stderr, "seek rl: %s\n", err.msg);
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
    if (!rc && (rc = rl_step_init(&x, &o, &m.cfg, &err)) == 0) have_x = 1;
    char *config_text = NULL;
    size_t cl;
    char cfgpath[4096];
    if (!rc) rc = path_join(cfgpath, sizeof cfgpath, dir, "config.json", &err);
    if (!rc) rc = read_text_file(cfgpath, 1 << 20, &config_text, &cl, &err);
    TrainerOpts to = {.B = x.B, .T = x.T, .steps = steps, .sched = {SCHED_CONSTANT, (float)lr, (float)lr, 0, (int)steps, 0},
                      .adamw = {0.9f, 0.99f, 1e-8f, 0.0f}, .grad_clip = 1.0, .lw = {0, 0, 0}, .bias_gamma = 0,
                      .max_bad_steps = 5, .checkpoint_interval = ckpt, .out = out, .config_json = config_text,
                      .tokenizer = tokpath, .be = be};
    if (!rc && (rc = trainer_init(&tr, &to, &m, resume, &err)) == 0) have_tr = 1;
    if (!rc && path_join(logpath, sizeof logpath, out, "rl.log", &err) == 0 && !(log = fopen(logpath, resume ? "a" : "w")))
        rc = seek_fail(&err, "%s: cannot open: %s", logpath, strerror(errno));
    if (rc) {
        fprintf(stderr, "seek rl: %s\n", err.msg);
        goto done;
    }
    tr.o.log = log;
    printf("rl: %s (%s), %d tasks x %d samples a step, %d new tokens at most, rows of %d; beta %g, clip %g; backend %s\n",
           dir, m.cfg.model_type, o.prompts, o.G, o.max_new, x.T, beta, clip, backend_name(be));
    fprintf(log, "start init=%s steps=%lld prompts=%d group=%d max_new=%d temperature=%g top_p=%g beta=%g clip=%g lr=%g "
                 "family=%s digits=%s seed=%lld resume=%s backend=%s\n",
            dir, steps, o.prompts, o.G, o.max_new, temperature, top_p, beta, clip, lr, family, digits, seed,
            resume ? resume : "-", backend_name(be));
    double acc0 = 0, fmt0 = 0;
    if (eval_n > 0) {
        if ((rc = rl_eval_greedy(be, &m, tok, &o, (int)eval_n, &acc0, &fmt0, &err))) goto fail;
        printf("held-out pass@1 (greedy, %lld test tasks): %.3f, format %.3f\n", eval_n, acc0, fmt0);
        fprintf(log, "eval step=%llu pass1=%.4f format=%.4f n=%lld\n", (unsigned long long)tr.st.step, acc0, fmt0, eval_n);
    }
    while ((long long)tr.st.step < steps) {
        uint64_t step = tr.st.step;
        if ((rc = rl_rollouts(&x, be, &m, have_ref ? &ref : NULL, tok, step, &err))) goto fail;
        StepReport rep;
        if ((rc = trainer_step(&tr, &x.batch, &rep, &err))) goto fail;
        const PolicyStats *ps = &tr.tb.policy;
        fprintf(log, "rl step=%llu reward=%.4f accuracy=%.4f format=%.4f length=%.2f kl=%.6g clip_frac=%.4f flat_groups=%d "
                     "loss=%.6g grad_norm=%.4g\n",
                (unsigned long long)step + 1, x.st.reward, x.st.accuracy, x.st.format, x.st.length, ps->kl, ps->clip_frac,
                x.st.groups_all_equal, rep.loss.main, rep.norm);
        printf("step %llu/%lld reward %.3f accuracy %.3f format %.3f length %.1f kl %.2e loss %.4f norm %.3f %.0f ms\n",
               (unsigned long long)step + 1, steps, x.st.reward, x.st.accuracy, x.st.format, x.st.length, ps->kl,
               rep.loss.main, rep.norm, rep.ms);
        fflush(stdout);
        long long done = (long long)tr.st.step;
        if (((ckpt > 0 && done % ckpt == 0) || done == steps) && (rc = trainer_checkpoint(&tr, NULL, &err))) goto fail;
    }
    if (eval_n > 0) {
        double acc1, fmt1;
        if ((rc = rl_eval_greedy(be, &m, tok, &o, (int)eval_n, &acc1, &fmt1, &err))) goto fail;
        printf("held-out pass@1 (greedy, %lld test tasks): %.3f -> %.3f, format %.3f -> %.3f\n", eval_n, acc0, acc1, fmt0, fmt1);
        fprintf(log, "eval step=%llu pass1=%.4f format=%.4f n=%lld\n", (unsigned long long)tr.st.step, acc1, fmt1, eval_n);
    }
    printf("done: %lld steps; checkpoint in %s/latest, log %s\n", steps, out, logpath);
fail:
    if (rc) fprintf(stderr, "seek rl: %s\n", err.msg);
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
