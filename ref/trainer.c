/* trainer.c: the training loop (trainer.h). Library tier: every failure is a one-line SeekErr;
 * the only output is the log and progress streams the caller hands in. */
#include "trainer.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "balance.h"
#include "pairs.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

int trainer_init(Trainer *tr, const TrainerOpts *o, Model *m, const char *resume, SeekErr *err) {
    memset(tr, 0, sizeof *tr);
    tr->o = *o;
    tr->m = m;
    tr->last_val = NAN;
    const Config *cfg = &m->cfg;
    int have_g = 0;
    int rc = backend_check(o->be, err);
    if (!rc && (rc = model_init(&tr->g, cfg, err)) == 0) have_g = 1;
    if (!rc) {
        tr->mom1 = calloc(m->n_floats, sizeof(float));
        tr->mom2 = calloc(m->n_floats, sizeof(float));
        tr->curve = calloc((size_t)o->steps + 1, sizeof(float));
        tr->vcurve = malloc(((size_t)o->steps + 1) * sizeof(float));
        if (!tr->mom1 || !tr->mom2 || !tr->curve || !tr->vcurve) rc = seek_fail(err, "out of memory for the optimizer state");
    }
    for (long long i = 0; !rc && i <= o->steps; i++) tr->vcurve[i] = NAN;
    if (!rc && resume) {
        rc = checkpoint_load(resume, m, tr->mom1, tr->mom2, &tr->st, &tr->sp, err);
        if (rc) seek_fail_prefix(err, "--resume %s", resume);
        else if (tr->st.step >= (uint64_t)o->steps) {
            const unsigned long long at = (unsigned long long)tr->st.step;
            const int done = at == (unsigned long long)o->steps;
            const char *where = done ? "the last of" : "past";
            const char *what = done ? "the run is finished, nothing to do (raise --steps to go on)"
                                    : "resume with --steps that reach past it";
            if (o->resume_multiple > 1)
                rc = seek_fail(err, "--resume %s: the checkpoint is at update %llu, %s this run's %lld updates (--steps %lld): %s",
                               resume, at, where, o->steps, o->steps / o->resume_multiple, what);
            else
                rc = seek_fail(err, "--resume %s: the checkpoint is at step %llu, %s --steps %lld: %s", resume, at, where,
                               o->steps, what);
        } else if (o->resume_multiple > 1 && tr->st.step % (uint64_t)o->resume_multiple)
            rc = seek_fail(err, "--resume %s: update %llu is inside a batch of %lld updates (resume with the run's --updates)",
                           resume, (unsigned long long)tr->st.step, o->resume_multiple);
    }
    if (!rc) rc = trainbuf_init(&tr->tb, cfg, o->B, o->T, o->lw.mtp_depth, err); /* zeroed on failure */
    if (!rc && o->out && mkdir(o->out, 0755) != 0 && errno != EEXIST) rc = seek_fail(err, "%s: cannot create: %s", o->out, strerror(errno));
    if (rc) {
        free(tr->mom1);
        free(tr->mom2);
        free(tr->curve);
        free(tr->vcurve);
        if (have_g) model_free(&tr->g);
        memset(tr, 0, sizeof *tr);
        return -1;
    }
    return 0;
}

void trainer_free(Trainer *tr) {
    if (tr->tb.B) trainbuf_free(&tr->tb);
    free(tr->mom1);
    free(tr->mom2);
    free(tr->curve);
    free(tr->vcurve);
    if (tr->g.arena) model_free(&tr->g);
    memset(tr, 0, sizeof *tr);
}

/* the spike detector: is loss more than z standard deviations above the window's mean? */
static int is_spike(const SpikeState *sp, double loss, double z) {
    if (z <= 0 || sp->count < 16) return 0;
    size_t w = sp->count < SPIKE_WINDOW ? sp->count : SPIKE_WINDOW;
    double mu = 0, var = 0;
    for (size_t i = 0; i < w; i++) mu += sp->values[i];
    mu /= w;
    for (size_t i = 0; i < w; i++) var += (sp->values[i] - mu) * (sp->values[i] - mu);
    double sd = sqrt(var / w);
    return sd > 0 && (loss - mu) / sd > z;
}

int trainer_step(Trainer *tr, const TrainBatch *batch, StepReport *rep, SeekErr *err) {
    const TrainerOpts *o = &tr->o;
    const Config *cfg = &tr->m->cfg;
    const long long step = (long long)tr->st.step; /* 0-based index of this step */
    const int B = o->B, T = o->T;
    memset(rep, 0, sizeof *rep);
    double t0 = now_s();
    StepLosses *sl = &rep->loss;
    if (train_step_grads_on(o->be, tr->m, &tr->g, &tr->tb, batch, &o->lw, sl, err))
        return seek_fail_prefix(err, "step %lld", step);
    /* fault injection for tests: every loss from this step on is NaN */
    const char *fault = getenv("SEEK_FAULT_NAN_FROM_STEP");
    if (fault && step + 1 >= atoll(fault)) sl->total = NAN;
    double norm = grad_global_norm_on(o->be, &tr->g);
    float lr = schedule_lr(&o->sched, (int)step);
    /* a gradient whose norm passes sqrt(FLT_MAX) would overflow AdamW's float32 second moment:
     * such a step is as non-finite as a NaN loss */
    int skip = !isfinite(sl->total) || !isfinite(norm) || (o->grad_clip <= 0 && norm > 1.8e19);
    if (!skip && is_spike(&tr->sp, sl->total, o->spike_z)) skip = 2;
    double worst = 0, idle = 0;
    tr->st.tokens_seen += (uint64_t)B * T;
    if (skip) {
        tr->st.skipped_steps++;
        tr->st.bad_in_a_row++;
        if (o->log) fprintf(o->log, "skip step=%lld reason=%s loss=%g norm=%g\n", step + 1, skip == 1 ? "non-finite" : "spike", sl->total, norm);
        if (o->progress)
            fprintf(o->progress, "%sstep %lld: %s: loss %g, grad norm %g: update skipped (%llu in a row)\n", o->tty ? "\n" : "", step + 1,
                    skip == 1 ? "non-finite or overflowing loss or gradient" : "loss spike", sl->total, norm,
                    (unsigned long long)tr->st.bad_in_a_row);
        if (skip == 1 && (long long)tr->st.bad_in_a_row >= o->max_bad_steps)
            return seek_fail(err, "%llu non-finite steps in a row (max_bad_steps %lld): stopping; the last checkpoint is intact",
                             (unsigned long long)tr->st.bad_in_a_row, o->max_bad_steps);
    } else {
        tr->st.bad_in_a_row = 0;
        grad_clip_on(o->be, &tr->g, norm, o->grad_clip);
        adamw_step_on(o->be, tr->m, &tr->g, tr->mom1, tr->mom2, &o->adamw, lr, (int)(step + 1 - (long long)tr->st.skipped_steps));
        train_update_bias(tr->m, &tr->tb, cfg->arch == ARCH_DEEPSEEK_V3 ? o->bias_gamma : 0.0f, &worst, &idle, tr->layer_load);
        tr->sp.values[tr->sp.count % SPIKE_WINDOW] = sl->total;
        tr->sp.count++;
    }
    tr->st.step = (uint64_t)step + 1;
    if (step < o->steps) tr->curve[step] = (float)sl->main;
    double ms = (now_s() - t0) * 1000;
    rep->norm = norm;
    rep->lr = lr;
    rep->skipped = skip;
    rep->max_load = worst;
    rep->idle = idle;
    rep->ms = ms;
    if (o->log) {
        fprintf(o->log, "step=%lld loss=%.6f main=%.6f mtp=%.6f balance=%.6f lr=%.6g grad_norm=%.6g max_load=%.4f idle=%.4f",
                step + 1, sl->total, sl->main, sl->mtp, sl->balance, lr, norm, worst, idle);
        for (int l = 0; l < cfg->L; l++) /* per MoE layer: max/mean load and the fraction of idle experts */
            if (config_layer_is_moe(cfg, l))
                fprintf(o->log, " load.%d=%.4f/%.4f", l, tr->layer_load[l].max_over_mean, tr->layer_load[l].frac_idle);
        fprintf(o->log, " tok_s=%.1f ms=%.2f\n", B * T / (ms / 1000), ms);
    }
    return 0;
}

/* the progress line of the step just taken (evaluated: with its validation loss) */
static void progress_line(const Trainer *tr, const StepReport *r, int evaluated) {
    const TrainerOpts *o = &tr->o;
    if (!o->progress) return;
    long long done = (long long)tr->st.step;
    double tok_s = o->B * o->T / (r->ms / 1000);
    const StepLosses *sl = &r->loss;
    char val[32];
    if (isnan(tr->last_val)) snprintf(val, sizeof val, "-");
    else snprintf(val, sizeof val, "%.4f", tr->last_val);
    if (o->tty) {
        int width = 30, done_w = (int)(width * done / o->steps);
        fprintf(o->progress, "\r[%.*s%*s] %lld/%lld loss %.4f mtp %.4f val %s lr %.2e %.0f tok/s ", done_w,
                "##############################", width - done_w, "", done, o->steps, sl->main, sl->mtp, val, r->lr, tok_s);
        if (evaluated) fprintf(o->progress, "\n");
    } else {
        /* the experts' load in this step's batch (MoE models): the busiest expert's tokens against
         * the mean (1.00 = even; max over the MoE layers) and the share of experts given no token
         * (mean over the MoE layers) */
        char experts[80] = "";
        if (tr->m->cfg.E > 0)
            snprintf(experts, sizeof experts, " experts: busiest %.2fx mean, %.0f%% idle;", r->max_load, 100.0 * r->idle);
        fprintf(o->progress, "step %lld/%lld loss %.4f main %.4f mtp %.4f bal %.5f lr %.3e norm %.3f;%s %.0f tok/s %.1f ms%s",
                done, o->steps, sl->total, sl->main, sl->mtp, sl->balance, r->lr, r->norm, experts, tok_s, r->ms,
                evaluated ? "" : "\n");
        if (evaluated) fprintf(o->progress, " | val %s\n", val);
    }
    fflush(o->progress);
}

/* ---- the data ---- */

static void data_next(const TrainData *d, int B, int *ids, int *targets) {
    if (d->kind == DATA_PAIRS) pairs_next(d->pairs, B, ids, targets);
    else loader_next(d->windows, B, ids);
}

static size_t data_n_val(const TrainData *d) { return d->kind == DATA_PAIRS ? d->pairs->n_val : d->windows->n_val; }

static void data_val(const TrainData *d, size_t i, int *ids, int *targets) {
    if (d->kind == DATA_PAIRS) pairs_val(d->pairs, i, ids, targets);
    else loader_val(d->windows, i, ids);
}

/* the data position into the TrainState a checkpoint saves */
static void data_position(const TrainData *d, TrainState *st) {
    if (d->kind == DATA_PAIRS) {
        st->data_epoch = d->pairs->epoch;
        st->data_pos = d->pairs->pos;
        st->data_rng = d->pairs->rng.state;
    } else {
        st->data_epoch = d->windows->epoch;
        st->data_pos = d->windows->pos;
        st->data_rng = d->windows->rng.state;
    }
}

int trainer_validate(Trainer *tr, const TrainData *data, double *out, SeekErr *err) {
    const int B = tr->o.B, T = tr->o.T;
    const int with_targets = data->kind == DATA_PAIRS;
    int *ids = malloc((size_t)B * T * sizeof(int)), *targets = malloc((size_t)B * T * sizeof(int));
    if (!ids || !targets) {
        free(ids);
        free(targets);
        return seek_fail(err, "out of memory");
    }
    size_t w = 0, n_val = data_n_val(data);
    double sum = 0;
    int n = 0, rc = 0;
    for (long long b = 0; b < tr->o.eval_batches && w < n_val; b++) {
        for (int i = 0; i < B; i++) data_val(data, (w + i) % n_val, ids + (size_t)i * T, targets + (size_t)i * T);
        w += B;
        double loss;
        TrainBatch batch = {ids, with_targets ? targets : NULL, NULL};
        if ((rc = eval_main_loss_on(tr->o.be, tr->m, &tr->tb, &batch, &loss, err))) break;
        sum += loss;
        n++;
    }
    free(ids);
    free(targets);
    if (rc) return seek_fail_prefix(err, "validation");
    *out = n ? sum / n : NAN;
    tr->last_val = *out;
    long long step = (long long)tr->st.step;
    if (step >= 1 && step <= tr->o.steps) tr->vcurve[step - 1] = (float)*out;
    if (tr->o.log) fprintf(tr->o.log, "eval step=%lld val_loss=%.6f\n", step, *out);
    return 0;
}

/* tokenizer.json (and tokenizer_config.json beside it) into a checkpoint folder */
static int copy_tokenizer(const char *tok, const char *dir, SeekErr *err) {
    char dst[4096], cfg[4096];
    if (path_join(dst, sizeof dst, dir, "tokenizer.json", err) || copy_file_atomic(tok, dst, err)) return -1;
    snprintf(cfg, sizeof cfg, "%s", tok);
    char *slash = strrchr(cfg, '/');
    size_t room = sizeof cfg - (slash ? (size_t)(slash + 1 - cfg) : 0);
    if (slash) snprintf(slash + 1, room, "tokenizer_config.json");
    else snprintf(cfg, sizeof cfg, "tokenizer_config.json");
    if (access(cfg, R_OK) == 0) {
        if (path_join(dst, sizeof dst, dir, "tokenizer_config.json", err) || copy_file_atomic(cfg, dst, err)) return -1;
    }
    return 0;
}

int trainer_checkpoint(Trainer *tr, const TrainData *data, SeekErr *err) {
    if (!tr->o.out) return seek_fail(err, "checkpoint: this trainer has no run folder");
    if (data) data_position(data, &tr->st);
    /* the log reaches the disk before `latest` moves: every step a checkpoint holds is in the log */
    if (tr->o.log && (fflush(tr->o.log) != 0 || fsync(fileno(tr->o.log)) != 0))
        return seek_fail(err, "checkpoint: the training log cannot be written: %s", strerror(errno));
    if (checkpoint_save(tr->o.out, tr->m, tr->o.config_json, tr->mom1, tr->mom2, &tr->st, &tr->sp, err))
        return seek_fail_prefix(err, "checkpoint");
    char dir[4096];
    if (checkpoint_resolve(tr->o.out, dir, sizeof dir, err)) return seek_fail_prefix(err, "checkpoint");
    if (tr->o.tokenizer && copy_tokenizer(tr->o.tokenizer, dir, err)) return seek_fail_prefix(err, "tokenizer copy");
    if (tr->o.log) fprintf(tr->o.log, "checkpoint step=%llu dir=%s\n", (unsigned long long)tr->st.step, dir);
    return 0;
}

int trainer_run(Trainer *tr, const TrainData *data, SeekErr *err) {
    const TrainerOpts *o = &tr->o;
    const int B = o->B, T = o->T;
    const int with_targets = data->kind == DATA_PAIRS;
    int *ids = malloc((size_t)B * T * sizeof(int)), *targets = malloc((size_t)B * T * sizeof(int));
    int rc = 0;
    if (!ids || !targets) rc = seek_fail(err, "out of memory");
    while (!rc && (long long)tr->st.step < o->steps) {
        data_next(data, B, ids, targets);
        TrainBatch batch = {ids, with_targets ? targets : NULL, NULL};
        StepReport rep;
        if ((rc = trainer_step(tr, &batch, &rep, err))) break;
        long long done = (long long)tr->st.step;
        int eval_now = o->eval_interval > 0 && (done % o->eval_interval == 0 || done == o->steps);
        double val;
        if (eval_now && (rc = trainer_validate(tr, data, &val, err))) break;
        progress_line(tr, &rep, eval_now);
        int ckpt_now = (o->checkpoint_interval > 0 && done % o->checkpoint_interval == 0) || done == o->steps;
        if (ckpt_now && (rc = trainer_checkpoint(tr, data, err))) break;
    }
    if (o->log) fflush(o->log);
    free(ids);
    free(targets);
    return rc;
}
