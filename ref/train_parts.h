/* train_parts.h: the pieces of training that surround the model: seeded initialisation, AdamW,
 * gradient clipping, learning-rate schedules, the token data loader, and checkpoints.
 * (ref/train.c, the training loop, puts them together.)
 *
 * Implementations: ref/init.c, ref/optim.c, ref/data.c, ref/checkpoint.c. Library tier: every
 * function that can fail returns 0 / -1 with a one-line SeekErr.
 */
#ifndef SEEK_TRAIN_PARTS_H
#define SEEK_TRAIN_PARTS_H

#include "model.h"

/* ---- init.c: seeded initialisation ----
 * Documented distributions (transformers' _init_weights with initializer_range σ):
 *   every linear weight, embeddings and the router: N(0, σ²);
 *   RMSNorm weights: 1;  e_score_correction_bias: 0.
 * Values are drawn from one Rng seeded with `seed`, tensor by tensor in table order, so a seed
 * gives the same model on every machine. */
void model_init_weights(Model *m, uint64_t seed, float sigma);

/* ---- optim.c: AdamW, clipping, schedules ---- */
typedef struct {
    float beta1, beta2, eps, weight_decay;
} AdamWConfig;

/* Does parameter `name` (shape ndim) get weight decay? Not norms, biases or any 1-D tensor. */
int param_decays(const char *name, int ndim);
/* Is it trained by the optimizer at all? Not the balancing bias (updated by its own rule). */
int param_trained(const char *name);

/* One AdamW step (Loshchilov & Hutter 2019) for every trained parameter of m, t = 1, 2, ...:
 *   m1 = β1·m1 + (1−β1)·g;  m2 = β2·m2 + (1−β2)·g²
 *   p −= lr · ( m1/(1−β1^t) / (sqrt(m2/(1−β2^t)) + eps) + wd·p )     (wd only where param_decays)
 * mom1, mom2 are laid out like m->arena (n_floats). */
void adamw_step(Model *m, const Model *grads, float *mom1, float *mom2, const AdamWConfig *c, float lr, int t);

/* sqrt(Σ g²) over the trained parameters, accumulated in double. */
double grad_global_norm(const Model *grads);
/* Scales every trained gradient (those the norm counts) by max_norm / norm when norm > max_norm
 * (max_norm <= 0: no clipping). Returns the factor applied (1 when none). */
float grad_clip(Model *grads, double norm, double max_norm);

typedef enum { SCHED_CONSTANT, SCHED_COSINE, SCHED_WSD } SchedKind;
typedef struct {
    SchedKind kind;
    float lr_max, lr_min;
    int warmup;       /* linear warmup steps from 0 to lr_max */
    int total;        /* total steps */
    int decay_steps;  /* WSD: the final decay phase's length (linear to lr_min) */
} Schedule;
/* Learning rate at step (0-based). Warmup (step < warmup): lr_max·(step+1)/warmup. Cosine: then
 * lr_min + (lr_max−lr_min)·(1+cos(π·p))/2, p = (step−warmup)/(total−1−warmup) clamped to [0, 1];
 * WSD: stable at lr_max, then linear decay over the last decay_steps; both reach lr_min exactly at
 * the last step, total−1. Constant: warmup then lr_max. */
float schedule_lr(const Schedule *s, int step);

/* ---- data.c: token data ----
 * A token file written by the tokenizer (tokfile_write: magic, version, vocab size, dtype), or,
 * until a tokenizer exists, raw bytes (every byte a token id 0..255). The stream is cut into
 * non-overlapping windows of T tokens; the last val_fraction of the windows (at least one) is the
 * validation set, the rest are shuffled with the loader's own Rng at every epoch. */
typedef struct {
    int32_t *tokens;  /* (n) */
    size_t n;
    uint32_t vocab;   /* vocab size the file declares (256 for raw bytes) */
    char *path;       /* the file's path, for the loader's messages (owned) */
} TokenData;

int data_load(TokenData *d, const char *path, int raw_bytes, SeekErr *err);
/* Epoch e's order of n items: 0..n−1 by a Fisher-Yates shuffle driven by an Rng seeded from
 * (seed, e) alone, rng_seed(r, seed + e · 0x9E3779B97F4A7C15), uniform draws by rejection (no
 * modulo bias); leaves the stream in *r. The token windows and the SFT pairs (pairs.c) share it. */
void epoch_order(size_t *order, size_t n, uint64_t seed, uint64_t epoch, Rng *r);
/* A saved position (epoch, pos, rng_state) of a loader over n shuffled items restored into its
 * order and cur_* fields: the epoch's order is recomputed from (seed, epoch) and must reproduce
 * rng_state, and pos must be within n; else a one-line error naming the file, the items
 * ("windows", "examples") and the likely cause (hint), and the loader keeps its own epoch.
 * loader_restore and pairs_restore are this. */
int epoch_restore(size_t *order, size_t n, uint64_t seed, uint64_t *cur_epoch, size_t *cur_pos, Rng *cur_rng,
                  uint64_t epoch, size_t pos, uint64_t rng_state, const char *name, const char *items, const char *hint,
                  SeekErr *err);
void data_free(TokenData *d);

typedef struct {
    const TokenData *data;
    int T;
    size_t n_train, n_val;    /* windows */
    size_t *order;            /* (n_train) this epoch's shuffled window order */
    size_t pos;               /* next index into order */
    uint64_t epoch;
    Rng rng;                  /* the shuffle stream (saved in checkpoints) */
    uint64_t seed;
} Loader;

/* Errors: fewer than two windows, a token id >= vocab_limit (the model's vocab). */
int loader_init(Loader *L, const TokenData *d, int T, double val_fraction, uint64_t seed, int vocab_limit,
                SeekErr *err);
void loader_free(Loader *L);
/* Next B training windows into ids (B, T), reshuffling at epoch ends. */
void loader_next(Loader *L, int B, int *ids);
/* Validation window i (0 <= i < n_val) into ids (T). */
void loader_val(const Loader *L, size_t i, int *ids);
/* Restores the position of a saved loader (same data, T, seed): epoch, pos and the Rng state;
 * the epoch's order is recomputed from (seed, epoch), so the stream continues identically. A
 * rng_state that recomputing does not reproduce (other data, T or seed) is refused. */
int loader_restore(Loader *L, uint64_t epoch, size_t pos, uint64_t rng_state, SeekErr *err);

/* ---- checkpoint.c: checkpoints ----
 * A checkpoint is a folder ROOT/step-NNNNNNNN/ holding a Hugging Face model (config.json,
 * model.safetensors: transformers loads it) and train_state.safetensors:
 *   tensors "adam.m1", "adam.m2" (F32, n_floats each, laid out like the arena), "state" (U64: the
 *   fields of TrainState below, in order), "spike" (F64: the spike detector's window),
 *   "spike.count" (U64 [1]);
 *   __metadata__: magic "seek-train-state", version "1", config_hash (hex), n_floats.
 * It is written into ROOT/.tmp-step-NNNNNNNN, every file fsynced, the folder renamed into place and
 * ROOT fsynced; then ROOT/latest (the folder's name) is replaced the same way. A crash at any
 * point leaves the previous checkpoint and `latest` intact; a half-written folder is never named
 * by `latest` and is removed by the next save. */
typedef struct {
    uint64_t step;            /* completed optimizer steps */
    uint64_t rng_state;       /* training Rng (init, sampling) */
    uint64_t data_epoch, data_pos, data_rng;
    uint64_t tokens_seen;
    uint64_t skipped_steps;   /* non-finite steps skipped */
    uint64_t bad_in_a_row;
} TrainState;

#define SPIKE_WINDOW 64
typedef struct {
    double values[SPIKE_WINDOW];  /* last losses, ring buffer */
    uint64_t count;
} SpikeState;

/* FNV-1a 64 of the model config's canonical fields (not the file's spelling), so a resume with
 * another architecture or size is refused. */
uint64_t config_hash(const Config *cfg);

/* Saves m (as F32), its config (config_json: the config.json text to write, e.g. from the model
 * folder or built by the trainer), the optimizer moments and the state into
 * ROOT/step-<st->step, 8 digits>. Refuses (before writing anything) non-finite parameters or
 * moments. A step folder of the same name is replaced safely. */
int checkpoint_save(const char *root, const Model *m, const char *config_json, const float *mom1, const float *mom2,
                    const TrainState *st, const SpikeState *sp, SeekErr *err);
/* Finds ROOT/latest (or takes DIR itself when it is a step folder) and loads it into m (which
 * must already be initialised for the same config: config_hash and n_floats are checked),
 * mom1, mom2, st, sp (each of these four may be NULL: not loaded). Errors name the file and the
 * field that does not match; on any error nothing is written to m or the outputs. */
int checkpoint_load(const char *path, Model *m, float *mom1, float *mom2, TrainState *st, SpikeState *sp,
                    SeekErr *err);
/* The step folder that ROOT/latest names (or DIR itself), for messages and resume. */
int checkpoint_resolve(const char *path, char *out, size_t cap, SeekErr *err);

/* Test hook for crash injection: when > 0, the n-th write/fsync/rename performed by
 * checkpoint_save fails as if the process died there (the function returns -1 immediately,
 * leaving whatever is on disk). */
extern int checkpoint_fail_at;

#endif
