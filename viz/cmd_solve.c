/* cmd_solve.c: `seek solve`, test-time compute on the verifiable tasks (ref/solve.h, docs/rl.md
 * "Test-time compute"): for each held-out problem one greedy completion and N samples, each answer
 * extracted by the task's checker, and per problem and in total greedy accuracy, pass@1, maj@N
 * (self-consistency), best-of-N with the rule verifier (= pass@N) and the tokens spent; with
 * --budget, the same under a thinking budget, and with --force, s1's budget forcing.
 *
 *   seek solve MODEL [--family add|sub|addsub] [--digits A..B] [--split test|train] [--problems P]
 *              [--samples N] [--max-new M] [--temperature T] [--top-p P] [--seed S]
 *              [--budget B[,B...]] [--force F[,F...]] [--budget-samples M] [--show K]
 *              [--backend ref|cpu|cuda] [--plot OUT.png] [--json OUT.json]
 *
 * Runs: first the one without a budget (N samples a problem), then one for each budget B and force
 * setting F in the lists' order (M samples a problem, N unless --budget-samples says otherwise). Program tier: errors are one line on stderr starting with "seek solve: "; exit
 * status 0 ok, 1 a bad value, an unloadable model or an unwritable output, 2 usage. The outputs
 * are checked for a writable folder before any work and written whole or not at all
 * (png_write, write_file_atomic).
 */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backend.h"
#include "commands.h"
#include "rl.h"
#include "rl_plot.h"
#include "solve.h"

#define SOLVE_USAGE                                                                                                     \
    "seek solve MODEL [--family add|sub|addsub] [--digits A..B] [--split test|train] [--problems P] [--samples N] "    \
    "[--max-new M] [--temperature T] [--top-p P] [--seed S] [--budget B[,B...]] [--force F[,F...]] [--budget-samples M] "    \
    "[--show K] "        \
    "[--backend ref|cpu|cuda] [--plot OUT.png] [--json OUT.json]"

#define MAX_LIST 16          /* budgets, force settings */
#define DEFAULT_MAX_NEW 48   /* the evaluation's (docs/rl.md): a 3-digit worked solution is about 43 tokens */
#define ANSWER_ROOM 32       /* default --max-new with a budget: the largest budget + this, for the close and the answer */

static int usage(const char *msg, const char *arg) {
    char a[48];
    fprintf(stderr, "seek solve: %s%s%s (usage: %s)\n", msg, arg ? " " : "", arg ? arg_for_message(a, arg) : "",
            SOLVE_USAGE);
    return 2;
}

static int fail(const char *msg) {
    fprintf(stderr, "seek solve: %s\n", msg);
    return 1;
}

/* "8,16,32" into v[MAX_LIST], each in [lo, hi] */
static int parse_list(const char *s, long long lo, long long hi, int *v, int *n, const char *flag, SeekErr *err) {
    char buf[256], a[48];
    if (strlen(s) >= sizeof buf) return seek_fail(err, "%s %s: the list is too long", flag, arg_for_message(a, s));
    snprintf(buf, sizeof buf, "%s", s);
    *n = 0;
    char *p = buf;
    for (;;) {
        char *comma = strchr(p, ',');
        if (comma) *comma = '\0';
        long long x;
        if (*n == MAX_LIST) return seek_fail(err, "%s: at most %d values", flag, MAX_LIST);
        if (parse_i64(p, lo, hi, &x, flag, err)) return -1;
        v[(*n)++] = (int)x;
        if (!comma) break;
        p = comma + 1;
    }
    return 0;
}

/* An output we will write at the end: refused now, before any work, when its folder is missing or
 * not writable or the path is a folder. */
static int check_output(const char *flag, const char *path, SeekErr *err) {
    struct stat st;
    if (!*path) return seek_fail(err, "%s: an empty path", flag);
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) return seek_fail(err, "%s %s: is a folder", flag, path);
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (!slash) snprintf(dir, sizeof dir, ".");
    else if (slash == dir) dir[1] = '\0';
    else *slash = '\0';
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return seek_fail(err, "%s %s: cannot be written: no folder %s", flag, path, dir);
    if (access(dir, W_OK) != 0) return seek_fail(err, "%s %s: cannot be written: %s", flag, path, strerror(errno));
    return 0;
}

/* an extracted answer for a reader: the integer, "none", or the bytes shown in quotes */
static void answer_text(char *out, size_t cap, const TaskReward *r) {
    if (r->kind == TASK_ANSWER_INT) snprintf(out, cap, "%lld", (long long)r->value);
    else if (r->kind == TASK_ANSWER_NONE) snprintf(out, cap, "none");
    else snprintf(out, cap, "\"%s\"", r->shown);
}

static void run_name(char *out, size_t cap, int budget, int force) {
    if (!budget) snprintf(out, cap, "no budget");
    else if (!force) snprintf(out, cap, "budget %d", budget);
    else snprintf(out, cap, "budget %d, force %d", budget, force);
}

static json_t *problem_json(const SolveProblem *p, int index) {
    json_t *o = json_object(), *g = json_object(), *ks = json_array();
    char a[96];
    answer_text(a, sizeof a, &p->greedy);
    json_object_set_new(g, "answer", json_string(a));
    json_object_set_new(g, "correct", json_boolean(p->greedy.accuracy));
    json_object_set_new(g, "format", json_boolean(p->greedy.format));
    json_object_set_new(g, "tokens", json_integer(p->greedy_tokens));
    json_object_set_new(g, "thinking", json_integer(p->greedy_think));
    json_object_set_new(g, "waits", json_integer(p->greedy_waits));
    json_object_set_new(g, "capped", json_boolean(p->greedy_capped));
    json_object_set_new(o, "index", json_integer(index));
    json_object_set_new(o, "question", json_string(p->task.question));
    json_object_set_new(o, "answer", json_integer((json_int_t)p->task.answer));
    json_object_set_new(o, "greedy", g);
    json_object_set_new(o, "correct", json_integer(p->correct));
    json_object_set_new(o, "formatted", json_integer(p->formatted));
    json_object_set_new(o, "abstained", json_integer(p->abstained));
    json_object_set_new(o, "vote", p->votes ? json_integer((json_int_t)p->vote) : json_null());
    json_object_set_new(o, "votes", json_integer(p->votes));
    json_object_set_new(o, "maj_correct", json_boolean(p->maj_correct));
    json_object_set_new(o, "best_of_n_correct", json_boolean(p->correct > 0));
    json_object_set_new(o, "tokens", json_integer(p->tokens));
    json_object_set_new(o, "thinking", json_integer(p->think));
    json_object_set_new(o, "waits", json_integer(p->waits));
    json_object_set_new(o, "capped", json_integer(p->capped));
    for (int j = 0; j < p->nk; j++) {
        json_t *k = json_object();
        json_object_set_new(k, "n", json_integer(p->ks[j]));
        json_object_set_new(k, "maj", json_real(p->maj_k[j]));
        json_object_set_new(k, "pass", json_real(p->pass_k[j]));
        json_array_append_new(ks, k);
    }
    json_object_set_new(o, "by_n", ks);
    return o;
}

static json_t *totals_json(const SolveTotals *t, int budget, int force) {
    json_t *o = json_object(), *ks = json_array();
    json_object_set_new(o, "budget", budget ? json_integer(budget) : json_null());
    json_object_set_new(o, "force", json_integer(force));
    json_object_set_new(o, "problems", json_integer(t->problems));
    json_object_set_new(o, "samples", json_integer(t->samples));
    json_object_set_new(o, "greedy", json_real(t->greedy));
    json_object_set_new(o, "pass1", json_real(t->pass1));
    json_object_set_new(o, "maj", json_real(t->maj));
    json_object_set_new(o, "pass_n", json_real(t->passn));
    json_object_set_new(o, "format", json_real(t->format));
    json_object_set_new(o, "greedy_format", json_real(t->greedy_format));
    json_object_set_new(o, "abstain", json_real(t->abstain));
    json_object_set_new(o, "tokens", json_integer(t->tokens));
    json_object_set_new(o, "greedy_tokens", json_integer(t->greedy_tokens));
    json_object_set_new(o, "thinking", json_real(t->think));
    json_object_set_new(o, "greedy_thinking", json_real(t->greedy_think));
    json_object_set_new(o, "waits", json_real(t->waits));
    json_object_set_new(o, "capped", json_real(t->capped));
    for (int j = 0; j < t->nk; j++) {
        json_t *k = json_object();
        json_object_set_new(k, "n", json_integer(t->ks[j]));
        json_object_set_new(k, "maj", json_real(t->maj_k[j]));
        json_object_set_new(k, "pass", json_real(t->pass_k[j]));
        json_array_append_new(ks, k);
    }
    json_object_set_new(o, "by_n", ks);
    return o;
}

static void print_totals(const SolveTotals *t, int budget, int force) {
    char name[64];
    run_name(name, sizeof name, budget, force);
    const double per = (double)t->tokens / t->problems, each = per / t->samples;
    printf("total (%s, %d problems x %d samples): greedy %.3f, pass@1 %.3f, maj@%d %.3f, best-of-%d %.3f (= pass@%d: the "
           "verifier knows the answer)\n",
           name, t->problems, t->samples, t->greedy, t->pass1, t->samples, t->maj, t->samples, t->passn, t->samples);
    printf("  tokens: %lld for the samples (%.1f a problem, %.1f a sample), %lld greedy (%.1f a problem); thinking %.1f "
           "a sample, %.1f greedy; format %.3f, no answer %.3f",
           t->tokens, per, each, t->greedy_tokens, (double)t->greedy_tokens / t->problems, t->think, t->greedy_think,
           t->format, t->abstain);
    if (budget) printf("; Wait %.2f a sample, capped %.3f", t->waits, t->capped);
    printf("\n  by N:");
    for (int j = 0; j < t->nk; j++) printf(" %d", t->ks[j]);
    printf("\n    maj@N: ");
    for (int j = 0; j < t->nk; j++) printf(" %.3f", t->maj_k[j]);
    printf("\n    pass@N:");
    for (int j = 0; j < t->nk; j++) printf(" %.3f", t->pass_k[j]);
    printf("\n");
}

int cmd_solve(int argc, char **argv) {
    const char *model = NULL, *backend_s = NULL, *digits = "2..3", *family = "add", *split_s = "test";
    const char *plot = NULL, *json_path = NULL, *budget_s = NULL, *force_s = NULL;
    long long problems = 32, samples = 16, bsamples = -1, max_new = -1, seed = 1, show = 0;
    double temperature = 0.6, top_p = 0.95;
    SeekErr err;
    int rc = 0;
    for (int i = 1; i < argc && !rc; i++) {
        const char *a = argv[i];
        if (strncmp(a, "--", 2)) {
            if (model) return usage("unexpected argument", a);
            model = a;
            continue;
        }
        const int missing = i + 1 >= argc;   /* a flag last on the line: "" stands in, and it is refused below */
        const char *v = missing ? "" : argv[++i];
        if (!strcmp(a, "--family") || !strcmp(a, "--task")) family = v;
        else if (!strcmp(a, "--digits")) digits = v;
        else if (!strcmp(a, "--split")) split_s = v;
        else if (!strcmp(a, "--backend")) backend_s = v;
        else if (!strcmp(a, "--plot")) plot = v;
        else if (!strcmp(a, "--json")) json_path = v;
        else if (!strcmp(a, "--budget")) budget_s = v;
        else if (!strcmp(a, "--force")) force_s = v;
        else if (!strcmp(a, "--problems")) rc = parse_i64(v, 1, 1 << 20, &problems, "--problems", &err);
        else if (!strcmp(a, "--samples")) rc = parse_i64(v, 1, 1024, &samples, "--samples", &err);
        else if (!strcmp(a, "--budget-samples")) rc = parse_i64(v, 1, 1024, &bsamples, "--budget-samples", &err);
        else if (!strcmp(a, "--max-new")) rc = parse_i64(v, 1, 4096, &max_new, "--max-new", &err);
        else if (!strcmp(a, "--seed")) rc = parse_i64(v, 0, 0x7fffffffffffffffLL, &seed, "--seed", &err);
        else if (!strcmp(a, "--show")) rc = parse_i64(v, 0, 1 << 20, &show, "--show", &err);
        else if (!strcmp(a, "--temperature")) rc = parse_f64(v, 0, 100, &temperature, "--temperature", &err);
        else if (!strcmp(a, "--top-p")) rc = parse_f64(v, 1e-6, 1, &top_p, "--top-p", &err);
        else return usage("unknown option", a);
        if (missing) return usage("needs a value:", a);
    }
    if (rc) return fail(err.msg);
    if (!model) return usage("a model folder is required", NULL);
    int budgets[MAX_LIST], forces[MAX_LIST], nb = 0, nf = 1;
    forces[0] = 0;
    if (budget_s && parse_list(budget_s, 1, 1 << 20, budgets, &nb, "--budget", &err)) return fail(err.msg);
    if (force_s && parse_list(force_s, 0, 1 << 20, forces, &nf, "--force", &err)) return fail(err.msg);
    if (force_s && !budget_s) return fail("--force: budget forcing needs a thinking budget (--budget B)");
    if (bsamples > 0 && !budget_s) return fail("--budget-samples: the samples of the budgeted runs need --budget B");
    if (bsamples < 0) bsamples = samples;
    int bmax = 0;
    for (int j = 0; j < nb; j++) bmax = budgets[j] > bmax ? budgets[j] : bmax;
    const int max_new_default = max_new < 0;
    if (max_new < 0) max_new = nb && bmax + ANSWER_ROOM > DEFAULT_MAX_NEW ? bmax + ANSWER_ROOM : DEFAULT_MAX_NEW;
    else if (nb && bmax >= max_new) {
        fprintf(stderr, "seek solve: --budget %d leaves no room to answer within --max-new %lld\n", bmax, max_new);
        return 1;
    }
    SolveOpts so = {{0}, TASK_TEST, (uint64_t)seed, (int)problems, (int)samples, (int)max_new, (float)temperature,
                    (float)top_p};
    if (!strcmp(split_s, "test")) so.split = TASK_TEST;
    else if (!strcmp(split_s, "train")) so.split = TASK_TRAIN;
    else {
        char a[48];
        fprintf(stderr, "seek solve: --split %s: expected test or train\n", arg_for_message(a, split_s));
        return 1;
    }
    if (task_parse_family(&so.task, family, &err) || task_parse_digits(&so.task, digits, &err)) return fail(err.msg);
    Backend be = backend_default();
    if (backend_s && backend_parse(backend_s, &be, &err)) return fail(err.msg);
    if ((plot && check_output("--plot", plot, &err)) || (json_path && check_output("--json", json_path, &err)))
        return fail(err.msg);
#ifndef SEEK_HAVE_PNG
    if (plot) return fail("--plot: this build has no libpng");
#endif

    /* the model, its tokenizer and the budgets, all checked before any work */
    const int n_runs = 1 + nb * nf;
    Model m = {0};
    Tokenizer *tok = NULL;
    Solver sv = {0}, svb = {0};   /* N samples (no budget), M samples (the budgeted runs) */
    ThinkBudget tb[1 + MAX_LIST * MAX_LIST];
    int rb[1 + MAX_LIST * MAX_LIST], rf[1 + MAX_LIST * MAX_LIST], n_tb = 0, have_m = 0, have_sv = 0, have_svb = 0;
    SolveTotals *tot = calloc((size_t)n_runs, sizeof *tot);
    json_t *runs_json = json_path ? json_array() : NULL;
    char dir[4096], tokpath[4096];
    if (!tot || (json_path && !runs_json)) rc = seek_fail(&err, "out of memory");
    if (!rc) rc = model_resolve_dir(model, dir, sizeof dir, &err);
    if (!rc && (rc = model_load(&m, dir, &err)) == 0) have_m = 1;
    if (!rc) rc = path_join(tokpath, sizeof tokpath, dir, "tokenizer.json", &err);
    if (!rc && (rc = tokenizer_load(&tok, tokpath, &err))) seek_fail_prefix(&err, "%s needs its tokenizer", model);
    rb[0] = rf[0] = 0;
    for (int j = 0; j < nb; j++)
        for (int k = 0; k < nf; k++) rb[1 + j * nf + k] = budgets[j], rf[1 + j * nf + k] = forces[k];
    for (int r = 0; !rc && r < n_runs; r++) {
        if ((rc = think_budget_init(&tb[r], tok, rb[r], rf[r], m.cfg.eos_id, m.cfg.V, &err))) {
            char a[48];
            seek_fail_prefix(&err, "--budget %s", arg_for_message(a, budget_s ? budget_s : "none"));
        } else n_tb++;
    }
    if (!rc && (rc = solver_init(&sv, &so, &m.cfg, tok, &err)) == 0) have_sv = 1;
    SolveOpts sob = so;
    sob.samples = (int)bsamples;
    if (!rc && nb && bsamples != samples && (rc = solver_init(&svb, &sob, &m.cfg, tok, &err)) == 0) have_svb = 1;
    if (have_m && tok && n_tb == n_runs && rc)   /* the solver's sizes: name the flag that set them */
        seek_fail_prefix(&err, "--max-new %lld%s", max_new,
                         max_new_default && nb && bmax + ANSWER_ROOM > DEFAULT_MAX_NEW ? " (the largest --budget + 32)" : "");
    if (rc) {
        fprintf(stderr, "seek solve: %s\n", err.msg);
        goto done;
    }
    printf("solve: %s (%s), %d %s problems of %s %s, %d samples each at temperature %g, top-p %g, greedy besides; "
           "max-new %d, seed %lld, backend %s",
           dir, m.cfg.model_type, so.problems, split_s, family, digits, so.samples, temperature, top_p, so.max_new, seed,
           backend_name(be));
    if (nb) printf("; %d budgeted runs of %lld samples", n_runs - 1, bsamples);
    printf("\n");
    for (int r = 0; r < n_runs && !rc; r++) {
        char name[64];
        run_name(name, sizeof name, rb[r], rf[r]);
        printf("== %s\n", name);
        json_t *probs = json_path ? json_array() : NULL;
        Solver *s = r > 0 && have_svb ? &svb : &sv;
        const int S = s->o.samples;
        solve_totals_init(&tot[r], S);
        for (int i = 0; i < so.problems; i++) {
            SolveProblem p;
            if ((rc = solve_problem(s, be, &m, tok, &tb[r], i, &p, &err))) break;
            solve_totals_add(&tot[r], &p);
            char ga[96], va[32];
            answer_text(ga, sizeof ga, &p.greedy);
            if (p.votes) snprintf(va, sizeof va, "%lld", (long long)p.vote);
            else snprintf(va, sizeof va, "none");
            printf("problem %d: %s = %lld  greedy %s %s  samples right %d/%d  vote %s %d/%d %s  best-of-%d %s  tokens %d "
                   "(%.1f a sample)",
                   i, p.task.question, (long long)p.task.answer, ga, p.greedy.accuracy ? "right" : "wrong", p.correct, S,
                   va, p.votes, S, p.maj_correct ? "right" : "wrong", S, p.correct ? "right" : "wrong", p.tokens,
                   (double)p.tokens / S);
            if (rb[r]) printf(" Wait %d capped %d", p.waits, p.capped);
            printf("\n");
            if (i < show) {
                printf("  greedy  (%d tokens, thinking %d, Wait %d%s): ", p.greedy_tokens, p.greedy_think, p.greedy_waits,
                       p.greedy_capped ? ", capped" : "");
                solve_show(stdout, s, tok, S, m.cfg.eos_id);
                printf("  sample  (thinking %d, Wait %d%s): ", s->rows[0].think, s->rows[0].waits,
                       s->rows[0].capped ? ", capped" : "");
                solve_show(stdout, s, tok, 0, m.cfg.eos_id);
            }
            fflush(stdout);
            if (probs) json_array_append_new(probs, problem_json(&p, i));
        }
        if (rc) {
            json_decref(probs);
            break;
        }
        solve_totals_finish(&tot[r]);
        print_totals(&tot[r], rb[r], rf[r]);
        if (runs_json) {
            json_t *o = totals_json(&tot[r], rb[r], rf[r]);
            json_object_set_new(o, "problems_detail", probs);
            json_array_append_new(runs_json, o);
        }
        fflush(stdout);
    }
    if (rc) {
        fprintf(stderr, "seek solve: %s\n", err.msg);
        goto done;
    }
    if (n_runs > 1) {
        printf("\n%-8s %5s %7s %7s %7s %7s %8s %14s %16s %6s %7s\n", "budget", "force", "N", "greedy", "pass@1", "maj@N",
               "pass@N", "tokens/sample", "thinking/sample", "Wait", "capped");
        for (int r = 0; r < n_runs; r++) {
            char b[16];
            if (rb[r]) snprintf(b, sizeof b, "%d", rb[r]);
            else snprintf(b, sizeof b, "none");
            printf("%-8s %5d %7d %7.3f %7.3f %7.3f %8.3f %14.1f %16.1f %6.2f %7.3f\n", b, rf[r], tot[r].samples, tot[r].greedy,
                   tot[r].pass1,
                   tot[r].maj, tot[r].passn, (double)tot[r].tokens / ((double)tot[r].problems * tot[r].samples),
                   tot[r].think, tot[r].waits, tot[r].capped);
        }
    }
    if (json_path) {
        json_t *doc = json_object();
        json_object_set_new(doc, "model", json_string(dir));
        json_object_set_new(doc, "family", json_string(family));
        json_object_set_new(doc, "digits", json_string(digits));
        json_object_set_new(doc, "split", json_string(split_s));
        json_object_set_new(doc, "problems", json_integer(so.problems));
        json_object_set_new(doc, "samples", json_integer(so.samples));
        json_object_set_new(doc, "temperature", json_real(temperature));
        json_object_set_new(doc, "top_p", json_real(top_p));
        json_object_set_new(doc, "max_new", json_integer(so.max_new));
        json_object_set_new(doc, "seed", json_integer(seed));
        json_object_set_new(doc, "backend", json_string(backend_name(be)));
        json_object_set_new(doc, "runs", runs_json);
        runs_json = NULL;
        char *text = json_dumps(doc, JSON_INDENT(1) | JSON_PRESERVE_ORDER);
        json_decref(doc);
        if (!text) rc = seek_fail(&err, "--json %s: out of memory", json_path);
        else {
            const size_t n = strlen(text);
            char *line = malloc(n + 1);   /* the document and its newline */
            if (!line) rc = seek_fail(&err, "--json %s: out of memory", json_path);
            else {
                memcpy(line, text, n);
                line[n] = '\n';
                if ((rc = write_file_atomic(json_path, line, n + 1, &err))) seek_fail_prefix(&err, "--json");
            }
            free(line);
            free(text);
        }
        if (!rc) printf("json: %s\n", json_path);
    }
    if (!rc && plot) {
        char title[256];
        snprintf(title, sizeof title, "seek solve %s: %s %s, %d %s problems, T %g", model, family, digits, so.problems,
                 split_s, temperature);
        Image im;
        if ((rc = solveplot_render(title, tot, rb, rf, n_runs, &im, &err)) == 0) {
            if ((rc = png_write(plot, &im, &err))) seek_fail_prefix(&err, "--plot");
            else printf("plot: %s (%dx%d)\n", plot, im.w, im.h);
            image_free(&im);
        }
    }
    if (rc) fprintf(stderr, "seek solve: %s\n", err.msg);
done:
    json_decref(runs_json);
    if (have_sv) solver_free(&sv);
    if (have_svb) solver_free(&svb);
    for (int r = 0; r < n_tb; r++) think_budget_free(&tb[r]);
    if (tok) tokenizer_free(tok);
    if (have_m) model_free(&m);
    free(tot);
    return rc ? 1 : 0;
}
