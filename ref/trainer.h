/* trainer.h: the training loop as a library — the optimizer step with its schedule, clipping,
 * non-finite skipping and spike detection, the bias update, validation, checkpoints, the log and
 * the progress line — for every objective and every backend.
 *
 * Two ways to drive it:
 *   - trainer_run(tr, data): the whole loop for objectives whose batches come from a dataset
 *     (pretraining on token windows, supervised fine-tuning on prompt/response pairs); `seek
 *     train` calls it.
 *   - trainer_step(tr, batch) and trainer_checkpoint(tr, ...): one optimizer step on a batch the
 *     caller built, for trainers that make their batches themselves (reinforcement learning
 *     builds each batch from rollouts and rewards; distillation from a teacher's outputs). Every
 *     rule of the step (skipping, spikes, clipping, AdamW, the bias update, the log line) is
 *     trainer_step's, so no trainer copies it.
 *
 * One step (trainer_step):
 *   losses, grads = train_step_grads_on(be, batch)          (train.h: the objective is the batch)
 *   norm = ‖grads‖; lr = schedule(step)
 *   skip when the loss or the norm is not finite, or the norm would overflow AdamW's float32
 *     second moment (no clipping and norm > 1.8e19): "non-finite"; max_bad_steps in a row stop
 *     the run with the last checkpoint intact;
 *   skip when spike_z > 0, at least 16 losses are in the window and the loss is more than
 *     spike_z standard deviations above the window's mean (the last SPIKE_WINDOW kept losses);
 *   else clip to grad_clip, AdamW (t counts the steps taken, not the skipped ones), the V3
 *     bias update from this step's expert loads, and the loss enters the spike window.
 * Resume is bitwise: the checkpoint holds the weights, both moments, the step, the data
 * position (epoch, position, Rng state) and the spike window (train_parts.h).
 */
#ifndef SEEK_TRAINER_H
#define SEEK_TRAINER_H

#include <stdio.h>

#include "backend.h"
#include "pairs.h"
#include "train.h"
#include "train_parts.h"

typedef struct {
    int B, T;                 /* batch: B sequences × T positions */
    long long steps;          /* total optimizer steps (a resumed run continues to it) */
    Schedule sched;
    AdamWConfig adamw;
    double grad_clip;         /* max global norm; <= 0: none */
    LossWeights lw;           /* MTP depth and λ, balance α */
    float bias_gamma;         /* V3 auxiliary-loss-free bias step γ (0: off; other models ignore it) */
    long long max_bad_steps;  /* non-finite steps in a row that stop the run */
    double spike_z;           /* 0: no spike detection */
    long long eval_interval;  /* 0: no validation */
    long long eval_batches;   /* validation batches of B per evaluation, at most */
    long long checkpoint_interval; /* 0: only at the end */
    long long resume_multiple;     /* > 1: a resumed step must be a multiple of it (seek rl's updates per batch) */
    const char *out;          /* checkpoint root (created); NULL: an in-memory trainer (the REPL's
                                 one GRPO update) that writes nothing and cannot checkpoint */
    const char *config_json;  /* the config.json text each checkpoint carries */
    const char *tokenizer;    /* tokenizer.json copied into each checkpoint, or NULL */
    Backend be;
    FILE *log;                /* the machine-readable log (key=value lines), or NULL */
    FILE *progress;           /* the human progress line (stdout), or NULL */
    int tty;                  /* progress redraws one line (a terminal) rather than a line a step */
} TrainerOpts;

/* Where the batches of trainer_run come from: token windows (pretraining) or prompt/response
 * pairs (SFT). Each saves and restores its position through TrainState's data fields. */
typedef enum { DATA_WINDOWS, DATA_PAIRS } TrainDataKind;
typedef struct {
    TrainDataKind kind;
    Loader *windows;          /* DATA_WINDOWS */
    PairLoader *pairs;        /* DATA_PAIRS */
} TrainData;

/* What one step did, for callers that drive trainer_step themselves. */
typedef struct {
    StepLosses loss;
    double norm;
    float lr;
    int skipped;              /* 0, 1 non-finite, 2 spike */
    double max_load, idle;    /* MoE balance of the step (max load / mean, idle fraction) */
    double ms;
} StepReport;

typedef struct {
    TrainerOpts o;
    Model *m;                 /* the trained model (the caller's) */
    Model g;                  /* gradients */
    float *mom1, *mom2;       /* AdamW moments, laid out like m->arena */
    TrainBuffers tb;
    TrainState st;
    SpikeState sp;
    float *curve, *vcurve;    /* (steps) main loss per step; validation loss where evaluated, else NaN */
    double last_val;
    LoadStats layer_load[CFG_MAX_LAYERS];
} Trainer;

/* Allocates gradients, moments and step buffers for m (already initialised or loaded); when
 * resume is not NULL, loads that checkpoint (weights, moments, step, spike window) and leaves the
 * data position in tr->st for the caller's loader. Creates o->out. Nothing is trained. A checkpoint
 * already at (or past) o->steps is refused: the run is finished and there is nothing to do. */
int trainer_init(Trainer *tr, const TrainerOpts *o, Model *m, const char *resume, SeekErr *err);
void trainer_free(Trainer *tr);

/* One optimizer step on batch (B × T); fills rep; writes the step's log line and progress.
 * Returns -1 on an error, or when max_bad_steps non-finite steps came in a row. */
int trainer_step(Trainer *tr, const TrainBatch *batch, StepReport *rep, SeekErr *err);
/* Mean main loss over up to eval_batches validation batches of data; records it for the step
 * just taken (log line "eval", the curve). */
int trainer_validate(Trainer *tr, const TrainData *data, double *loss, SeekErr *err);
/* Writes a checkpoint of the current step (and its data position, taken from data) into o->out. */
int trainer_checkpoint(Trainer *tr, const TrainData *data, SeekErr *err);

/* The whole loop on a dataset, from tr->st.step to o->steps: batch, step, validation and
 * checkpoints at their intervals (and at the last step), then the loss plot's data in curve. */
int trainer_run(Trainer *tr, const TrainData *data, SeekErr *err);

#endif
