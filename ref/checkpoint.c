/* checkpoint.c: training checkpoints, written so that a crash at any point leaves the previous
 * one intact (train_parts.h; reliability rows 13, 14 and 16).
 *
 * Layout. ROOT/step-NNNNNNNN/ holds
 *   config.json                the text the caller gives, as it is
 *   model.safetensors          every table tensor as F32 under its Hugging Face name, in table
 *                              order, __metadata__ {format: pt, producer: seek.c}: transformers
 *                              (and model_load) load the folder unchanged
 *   train_state.safetensors    adam.m1, adam.m2  F32 (n_floats)   laid out like the arena
 *                              state             U64 (8)          TrainState's fields in order
 *                              spike             F64 (SPIKE_WINDOW) and spike.count U64 (1)
 *                              __metadata__ {magic: seek-train-state, version: 1,
 *                                            config_hash: 16 hex digits, n_floats: decimal}
 * and ROOT/latest holds the step folder's name and a newline.
 *
 * Save protocol (every write, fsync and rename is one counted operation, for checkpoint_fail_at):
 *   0. refuse non-finite parameters or moments (a non-finite state is never saved); remove the
 *      temporaries an earlier crash left (ROOT/.tmp-*, ROOT/latest.tmp)
 *   1. write the three files into ROOT/.tmp-step-N, each written in CKPT_CHUNK pieces and fsynced,
 *      then fsync the folder
 *   2. if ROOT/step-N exists: when `latest` names it, move it aside to ROOT/.old-step-N (resolve
 *      falls back to it until the new folder is in place); otherwise nothing refers to it (a crash
 *      came between steps 3 and 4 of an earlier save) and it is removed
 *   3. rename ROOT/.tmp-step-N to ROOT/step-N, fsync ROOT
 *   4. write ROOT/latest.tmp, fsync, rename it to ROOT/latest, fsync ROOT; remove ROOT/.old-*
 * `latest` only ever names a complete folder; a crash before 4's rename leaves the previous one
 * named. A real error (ENOSPC, EIO, a read-only folder) returns -1 naming the path and removes
 * this save's temporaries; an injected one returns at once, leaving the disk as a crash would.
 * One writer per ROOT at a time.
 *
 * Load. The folder is resolved first; then everything is read into temporaries and checked —
 * config.json's canonical hash, the state file's magic, version, config_hash and n_floats, every
 * tensor's dtype and shape — and only when all of it has been read is the caller's memory
 * overwritten, so a refused load leaves m, the moments and the state untouched. Errors name the
 * file and the field or tensor. Files are read with pread through the strict safetensors reader.
 * The integers and doubles of the state file are little-endian, decoded byte by byte.
 */
#include "train_parts.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "safetensors.h"

#define CKPT_CHUNK ((size_t)1 << 18)   /* bytes per write(): 256 KiB */
#define CKPT_MAGIC "seek-train-state"
#define CKPT_VERSION "1"
#define CKPT_PATH 4096
#define N_STATE 8                      /* TrainState's fields */

_Static_assert(sizeof(TrainState) == N_STATE * sizeof(uint64_t), "TrainState is eight uint64 fields");

int checkpoint_fail_at = 0;
static int ck_ops;      /* operations performed by the save in progress */
static int ck_crashed;  /* the injected failure fired: leave the disk as it is */

/* Counts one write/fsync/rename; true (with a reason in err) when it is the one to fail. */
static int injected(const char *what, const char *path, SeekErr *err) {
    ck_ops++;
    if (checkpoint_fail_at > 0 && ck_ops == checkpoint_fail_at) {
        ck_crashed = 1;
        seek_fail(err, "%s: injected failure at checkpoint operation %d (%s)", path, ck_ops, what);
        return 1;
    }
    return 0;
}

/* ---- config hash ---- */

typedef struct { uint64_t h; } Fnv;
static void fnv_u64(Fnv *f, uint64_t v) {
    for (int i = 0; i < 8; i++) {
        f->h ^= (uint8_t)(v >> (8 * i));
        f->h *= 0x100000001b3ull;
    }
}
static void fnv_int(Fnv *f, long long v) { fnv_u64(f, (uint64_t)v); }
static void fnv_dbl(Fnv *f, double v) {
    uint64_t u;
    v += 0.0;   /* -0 and +0 hash alike */
    memcpy(&u, &v, 8);
    fnv_u64(f, u);
}

uint64_t config_hash(const Config *c) {
    Fnv f = {0xcbf29ce484222325ull};
    /* the fields that decide the parameters and the forward pass, in a fixed order */
    fnv_int(&f, c->arch);
    fnv_int(&f, c->V); fnv_int(&f, c->C); fnv_int(&f, c->I_ffn); fnv_int(&f, c->L);
    fnv_int(&f, c->NH); fnv_int(&f, c->NKV); fnv_int(&f, c->HS);
    fnv_dbl(&f, c->eps); fnv_int(&f, c->tie_embeddings);
    fnv_int(&f, c->rope_type); fnv_int(&f, c->rope_layout); fnv_dbl(&f, c->rope_theta); fnv_dbl(&f, c->rope_factor);
    fnv_int(&f, c->rope_orig_max_pos); fnv_dbl(&f, c->beta_fast); fnv_dbl(&f, c->beta_slow);
    fnv_dbl(&f, c->mscale); fnv_dbl(&f, c->mscale_all_dim); fnv_dbl(&f, c->attention_factor);
    fnv_int(&f, c->yarn_truncate);
    fnv_int(&f, c->mla); fnv_int(&f, c->q_lora_rank); fnv_int(&f, c->kv_lora_rank);
    fnv_int(&f, c->dn); fnv_int(&f, c->dr); fnv_int(&f, c->dv);
    fnv_int(&f, c->E); fnv_int(&f, c->K); fnv_int(&f, c->Es); fnv_int(&f, c->Hm);
    fnv_int(&f, c->G); fnv_int(&f, c->TG); fnv_int(&f, c->first_k_dense); fnv_int(&f, c->moe_layer_freq);
    fnv_int(&f, c->norm_topk_prob); fnv_dbl(&f, c->routed_scaling); fnv_int(&f, c->scoring);
    fnv_int(&f, c->topk_method); fnv_int(&f, c->mtp_depth);
    return f.h;
}

/* ---- a buffered file writer with counted writes and fsync ---- */

typedef struct {
    int fd;
    const char *path;
    unsigned char *buf;   /* (CKPT_CHUNK) */
    size_t len;
    int failed;
} Writer;

static int w_open(Writer *w, const char *path, SeekErr *err) {
    memset(w, 0, sizeof *w);
    w->path = path;
    w->fd = -1;
    w->buf = malloc(CKPT_CHUNK);
    if (!w->buf) return seek_fail(err, "%s: out of memory", path);
    w->fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (w->fd < 0) {
        free(w->buf);
        w->buf = NULL;
        return seek_fail(err, "%s: cannot create: %s", path, strerror(errno));
    }
    return 0;
}

static int w_flush(Writer *w, SeekErr *err) {
    if (w->failed) return -1;
    if (w->len == 0) return 0;
    if (injected("write", w->path, err)) return w->failed = -1;
    size_t done = 0;
    while (done < w->len) {
        ssize_t k = write(w->fd, w->buf + done, w->len - done);
        if (k < 0) {
            if (errno == EINTR) continue;
            seek_fail(err, "%s: write failed: %s", w->path, strerror(errno));
            return w->failed = -1;
        }
        done += (size_t)k;
    }
    w->len = 0;
    return 0;
}

static int w_put(Writer *w, const void *data, size_t n, SeekErr *err) {
    const unsigned char *p = data;
    while (n > 0) {
        if (w->failed) return -1;
        size_t k = CKPT_CHUNK - w->len < n ? CKPT_CHUNK - w->len : n;
        memcpy(w->buf + w->len, p, k);
        w->len += k;
        p += k;
        n -= k;
        if (w->len == CKPT_CHUNK && w_flush(w, err)) return -1;
    }
    return w->failed;
}

/* Little-endian elements, 4 or 8 bytes each, from host values. */
static int w_put_u32s(Writer *w, const uint32_t *v, size_t n, SeekErr *err) {
    unsigned char b[4];
    for (size_t i = 0; i < n; i++) {
        for (int k = 0; k < 4; k++) b[k] = (unsigned char)(v[i] >> (8 * k));
        if (w_put(w, b, 4, err)) return -1;
    }
    return 0;
}
static int w_put_u64s(Writer *w, const uint64_t *v, size_t n, SeekErr *err) {
    unsigned char b[8];
    for (size_t i = 0; i < n; i++) {
        for (int k = 0; k < 8; k++) b[k] = (unsigned char)(v[i] >> (8 * k));
        if (w_put(w, b, 8, err)) return -1;
    }
    return 0;
}

/* Flushes, fsyncs (one counted operation) and closes; on failure closes and returns -1. */
static int w_close(Writer *w, SeekErr *err) {
    int rc = w_flush(w, err);
    if (!rc && injected("fsync", w->path, err)) rc = -1;
    if (!rc && fsync(w->fd) != 0) rc = seek_fail(err, "%s: fsync failed: %s", w->path, strerror(errno));
    if (close(w->fd) != 0 && !rc) rc = seek_fail(err, "%s: close failed: %s", w->path, strerror(errno));
    w->fd = -1;
    free(w->buf);
    w->buf = NULL;
    return rc;
}

static void w_abort(Writer *w) {
    if (w->fd >= 0) close(w->fd);
    free(w->buf);
    w->fd = -1;
    w->buf = NULL;
}

/* ---- safetensors, streamed through a Writer ---- */

typedef struct {
    const char *name;
    StDtype dtype;       /* F32 (data: float), U64 (uint64_t) or F64 (double) */
    int ndim;
    uint64_t shape[3];
    uint64_t numel;
    const void *data;
} CkTensor;

/* Header JSON (compact, __metadata__ first, tensors back to back in order, padded with spaces
 * so the data starts on 8 bytes, as st_write does), then the data, little-endian. */
static int write_safetensors(const char *path, const CkTensor *ts, size_t n, const char *const *meta, size_t n_meta,
                             SeekErr *err) {
    json_t *root = json_object(), *md = json_object();
    int rc = (root && md) ? 0 : -1;
    for (size_t i = 0; !rc && i < n_meta; i++) rc = json_object_set_new(md, meta[2 * i], json_string(meta[2 * i + 1]));
    if (!rc) rc = json_object_set(root, "__metadata__", md);
    json_decref(md);
    uint64_t off = 0;
    for (size_t i = 0; !rc && i < n; i++) {
        uint64_t bytes = ts[i].numel * st_dtype_size(ts[i].dtype);   /* in memory already, so no overflow */
        json_t *e = json_pack("{s:s, s:[], s:[I, I]}", "dtype", st_dtype_name(ts[i].dtype), "shape", "data_offsets",
                              (json_int_t)off, (json_int_t)(off + bytes));
        json_t *shape = e ? json_object_get(e, "shape") : NULL;
        if (!shape) rc = -1;
        for (int d = 0; !rc && d < ts[i].ndim; d++) rc = json_array_append_new(shape, json_integer((json_int_t)ts[i].shape[d]));
        if (!rc) rc = json_object_set_new(root, ts[i].name, e);
        else json_decref(e);
        off += bytes;
    }
    char *hdr = rc ? NULL : json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(root);
    if (!hdr) return seek_fail(err, "%s: out of memory building the header", path);
    size_t hl = strlen(hdr), pad = (8 - (8 + hl) % 8) % 8;
    uint64_t hn = hl + pad;

    Writer w;
    if (w_open(&w, path, err)) {
        free(hdr);
        return -1;
    }
    rc = w_put_u64s(&w, &hn, 1, err);
    if (!rc) rc = w_put(&w, hdr, hl, err);
    for (size_t i = 0; !rc && i < pad; i++) rc = w_put(&w, " ", 1, err);
    free(hdr);
    for (size_t i = 0; !rc && i < n; i++) {
        if (ts[i].dtype == ST_F32) {
            const float *f = ts[i].data;
            for (uint64_t k = 0; !rc && k < ts[i].numel; k++) {
                uint32_t u;
                memcpy(&u, &f[k], 4);
                rc = w_put_u32s(&w, &u, 1, err);
            }
        } else if (ts[i].dtype == ST_F64) {
            const double *d = ts[i].data;
            for (uint64_t k = 0; !rc && k < ts[i].numel; k++) {
                uint64_t u;
                memcpy(&u, &d[k], 8);
                rc = w_put_u64s(&w, &u, 1, err);
            }
        } else {
            rc = w_put_u64s(&w, ts[i].data, ts[i].numel, err);
        }
    }
    if (rc) {
        w_abort(&w);
        return -1;
    }
    return w_close(&w, err);
}

/* ---- folder helpers ---- */

static int fsync_dir(const char *dir, SeekErr *err) {
    if (injected("fsync", dir, err)) return -1;
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return seek_fail(err, "%s: cannot open the folder to fsync it: %s", dir, strerror(errno));
    int rc = fsync(fd) == 0 ? 0 : seek_fail(err, "%s: fsync of the folder failed: %s", dir, strerror(errno));
    close(fd);
    return rc;
}

static int do_rename(const char *from, const char *to, SeekErr *err) {
    if (injected("rename", to, err)) return -1;
    if (rename(from, to) != 0) return seek_fail(err, "%s: cannot rename %s into place: %s", to, from, strerror(errno));
    return 0;
}

/* Removes a folder of plain files (what a save creates). */
static int remove_tree(const char *dir, SeekErr *err) {
    DIR *d = opendir(dir);
    if (!d) return errno == ENOENT ? 0 : seek_fail(err, "%s: cannot open: %s", dir, strerror(errno));
    struct dirent *e;
    int rc = 0;
    while ((e = readdir(d)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        if (unlinkat(dirfd(d), e->d_name, 0) != 0 && errno != ENOENT && !rc)
            rc = seek_fail(err, "%s/%s: cannot remove: %s", dir, e->d_name, strerror(errno));
    }
    closedir(d);
    if (!rc && rmdir(dir) != 0 && errno != ENOENT) rc = seek_fail(err, "%s: cannot remove: %s", dir, strerror(errno));
    return rc;
}

/* Removes ROOT's entries whose names start with `prefix` (folders) or equal `file` (a file). */
static int remove_entries(const char *root, const char *prefix, const char *file, SeekErr *err) {
    DIR *d = opendir(root);
    if (!d) return seek_fail(err, "%s: cannot open: %s", root, strerror(errno));
    struct dirent *e;
    int rc = 0;
    char p[CKPT_PATH];
    while (!rc && (e = readdir(d)) != NULL) {
        if (prefix && !strncmp(e->d_name, prefix, strlen(prefix))) {
            rc = path_join(p, sizeof p, root, e->d_name, err);
            if (!rc) rc = remove_tree(p, err);
        } else if (file && !strcmp(e->d_name, file)) {
            if (unlinkat(dirfd(d), e->d_name, 0) != 0 && errno != ENOENT)
                rc = seek_fail(err, "%s/%s: cannot remove: %s", root, e->d_name, strerror(errno));
        }
    }
    closedir(d);
    return rc;
}

static int is_dir(const char *p) {
    struct stat s;
    return stat(p, &s) == 0 && S_ISDIR(s.st_mode);
}

/* A step folder's name as `latest` may hold it: [A-Za-z0-9_-] and '.', not starting with '.'. */
static int valid_name(const char *s) {
    if (!*s || *s == '.' || strlen(s) > 255) return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') || *s == '-' ||
              *s == '_' || *s == '.'))
            return 0;
    return 1;
}

/* Reads ROOT/latest into name (cap bytes). Returns 1 when there is none, 0 when read, -1 on error. */
static int read_latest(const char *root, char *name, size_t cap, SeekErr *err) {
    char p[CKPT_PATH];
    if (path_join(p, sizeof p, root, "latest", err)) return -1;
    struct stat s;
    if (lstat(p, &s) != 0) {
        if (errno == ENOENT) return 1;
        return seek_fail(err, "%s: cannot stat: %s", p, strerror(errno));
    }
    char *text;
    size_t len;
    if (read_text_file(p, 4096, &text, &len, err)) return -1;
    while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == '\r' || text[len - 1] == ' ')) text[--len] = '\0';
    int rc = 0;
    if (!valid_name(text) || len >= cap) rc = seek_fail(err, "%s: expected a step folder's name, got '%.64s'", p, text);
    else memcpy(name, text, len + 1);
    free(text);
    return rc;
}

int checkpoint_resolve(const char *path, char *out, size_t cap, SeekErr *err) {
    struct stat sb;
    if (stat(path, &sb) != 0) return seek_fail(err, "%s: cannot open the checkpoint: %s", path, strerror(errno));
    if (!S_ISDIR(sb.st_mode)) return seek_fail(err, "%s: not a checkpoint folder", path);
    char name[256], p[CKPT_PATH];
    int r = read_latest(path, name, sizeof name, err);
    if (r < 0) return -1;
    if (r == 0) {
        char old[300];
        snprintf(old, sizeof old, ".old-%s", name);
        if (path_join(p, sizeof p, path, name, err)) return -1;
        if (!is_dir(p)) {
            /* a crash while a checkpoint of the same step was being replaced: the previous one */
            if (path_join(p, sizeof p, path, old, err)) return -1;
            if (!is_dir(p)) return seek_fail(err, "%s/latest: names '%s', which does not exist", path, name);
        }
    } else {
        if (path_join(p, sizeof p, path, "train_state.safetensors", err)) return -1;
        if (access(p, F_OK) != 0)
            return seek_fail(err, "%s: not a checkpoint: no 'latest' file and no train_state.safetensors", path);
        if ((size_t)snprintf(p, sizeof p, "%s", path) >= sizeof p) return seek_fail(err, "%s: path too long", path);
    }
    if (strlen(p) >= cap) return seek_fail(err, "%s: path too long", p);
    memcpy(out, p, strlen(p) + 1);
    return 0;
}

/* ---- save ---- */

static int check_finite(const float *x, size_t n, const char *what, SeekErr *err) {
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i]))
            return seek_fail(err, "checkpoint: %s holds a non-finite value (%g) at element %zu; a non-finite state is never saved",
                             what, (double)x[i], i);
    return 0;
}

static int write_text(const char *path, const char *text, SeekErr *err) {
    Writer w;
    if (w_open(&w, path, err)) return -1;
    if (w_put(&w, text, strlen(text), err)) {
        w_abort(&w);
        return -1;
    }
    return w_close(&w, err);
}

static int write_model(const char *path, const Model *m, SeekErr *err) {
    CkTensor *ts = calloc(m->n_params ? m->n_params : 1, sizeof *ts);
    if (!ts) return seek_fail(err, "%s: out of memory", path);
    for (size_t i = 0; i < m->n_params; i++) {
        const ParamInfo *p = &m->params[i];
        ts[i] = (CkTensor){p->name, ST_F32, p->ndim, {p->shape[0], p->shape[1], p->shape[2]}, p->numel, p->ptr};
    }
    const char *meta[] = {"format", "pt", "producer", "seek.c"};
    int rc = write_safetensors(path, ts, m->n_params, meta, 2, err);
    free(ts);
    return rc;
}

static int write_state(const char *path, const Model *m, const float *mom1, const float *mom2, const TrainState *st,
                       const SpikeState *sp, SeekErr *err) {
    uint64_t state[N_STATE] = {st->step, st->rng_state, st->data_epoch, st->data_pos,
                               st->data_rng, st->tokens_seen, st->skipped_steps, st->bad_in_a_row};
    CkTensor ts[] = {
        {"adam.m1", ST_F32, 1, {m->n_floats}, m->n_floats, mom1},
        {"adam.m2", ST_F32, 1, {m->n_floats}, m->n_floats, mom2},
        {"state", ST_U64, 1, {N_STATE}, N_STATE, state},
        {"spike", ST_F64, 1, {SPIKE_WINDOW}, SPIKE_WINDOW, sp->values},
        {"spike.count", ST_U64, 1, {1}, 1, &sp->count},
    };
    char hash[32], nf[32];
    snprintf(hash, sizeof hash, "%016llx", (unsigned long long)config_hash(&m->cfg));
    snprintf(nf, sizeof nf, "%zu", m->n_floats);
    const char *meta[] = {"magic", CKPT_MAGIC, "version", CKPT_VERSION, "config_hash", hash, "n_floats", nf};
    return write_safetensors(path, ts, sizeof ts / sizeof ts[0], meta, 4, err);
}

int checkpoint_save(const char *root, const Model *m, const char *config_json, const float *mom1, const float *mom2,
                    const TrainState *st, const SpikeState *sp, SeekErr *err) {
    ck_ops = 0;
    ck_crashed = 0;
    for (size_t i = 0; i < m->n_params; i++)
        if (check_finite(m->params[i].ptr, m->params[i].numel, m->params[i].name, err)) return -1;
    if (check_finite(mom1, m->n_floats, "adam.m1", err) || check_finite(mom2, m->n_floats, "adam.m2", err)) return -1;

    if (mkdir(root, 0755) != 0 && errno != EEXIST)
        return seek_fail(err, "%s: cannot create the checkpoint folder: %s", root, strerror(errno));
    if (!is_dir(root)) return seek_fail(err, "%s: not a folder", root);
    /* step 0: what an earlier crash left */
    if (remove_entries(root, ".tmp-", "latest.tmp", err)) return -1;

    char name[64], tmp[CKPT_PATH], fin[CKPT_PATH], old[CKPT_PATH], p[CKPT_PATH], latest[CKPT_PATH],
        latest_tmp[CKPT_PATH], cur[256];
    snprintf(name, sizeof name, "step-%08llu", (unsigned long long)st->step);
    if ((size_t)snprintf(tmp, sizeof tmp, "%s/.tmp-%s", root, name) >= sizeof tmp ||
        (size_t)snprintf(old, sizeof old, "%s/.old-%s", root, name) >= sizeof old ||
        path_join(fin, sizeof fin, root, name, err) || path_join(latest, sizeof latest, root, "latest", err) ||
        path_join(latest_tmp, sizeof latest_tmp, root, "latest.tmp", err))
        return seek_fail(err, "%s: path too long", root);
    int moved_old = 0, renamed = 0;

    if (mkdir(tmp, 0755) != 0) return seek_fail(err, "%s: cannot create: %s", tmp, strerror(errno));
    /* step 1: the three files, each fsynced, then the folder */
    int rc = path_join(p, sizeof p, tmp, "config.json", err);
    if (!rc) rc = write_text(p, config_json, err);
    if (!rc) rc = path_join(p, sizeof p, tmp, "model.safetensors", err);
    if (!rc) rc = write_model(p, m, err);
    if (!rc) rc = path_join(p, sizeof p, tmp, "train_state.safetensors", err);
    if (!rc) rc = write_state(p, m, mom1, mom2, st, sp, err);
    if (!rc) rc = fsync_dir(tmp, err);
    /* step 2: an existing folder of this step */
    if (!rc && is_dir(fin)) {
        int r = read_latest(root, cur, sizeof cur, err);
        if (r < 0) rc = -1;
        else if (r == 0 && !strcmp(cur, name)) {
            rc = remove_tree(old, err);
            if (!rc) rc = do_rename(fin, old, err);
            if (!rc) moved_old = 1;
        } else {
            rc = remove_tree(fin, err);
        }
    }
    /* step 3: the folder into place */
    if (!rc) rc = do_rename(tmp, fin, err);
    if (!rc) renamed = 1;
    if (!rc) rc = fsync_dir(root, err);
    /* step 4: latest */
    char line[80];
    snprintf(line, sizeof line, "%s\n", name);
    if (!rc) rc = write_text(latest_tmp, line, err);
    if (!rc) rc = do_rename(latest_tmp, latest, err);
    if (!rc) rc = fsync_dir(root, err);
    if (!rc) {
        SeekErr ignore;   /* a leftover .old folder is harmless: the next save removes it */
        remove_entries(root, ".old-", NULL, &ignore);
        return 0;
    }

    if (ck_crashed) return -1;   /* injected: leave everything as a crash would */
    /* a real error: remove this save's temporaries; put a moved-aside checkpoint back */
    SeekErr ignore;
    remove_tree(tmp, &ignore);
    unlink(latest_tmp);
    if (moved_old && !renamed) rename(old, fin);
    return -1;
}

/* ---- load ---- */

static uint64_t get_le64(const unsigned char *b) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | b[i];
    return v;
}

/* The tensor `name` of f with this dtype and the 1-D length n, or NULL with a reason. */
static const StTensor *want_tensor(const StFile *f, const char *name, StDtype dt, uint64_t n, SeekErr *err) {
    const StTensor *t = st_find(f, name);
    if (!t) {
        seek_fail(err, "%s: tensor '%s' is missing", f->path, name);
        return NULL;
    }
    if (t->dtype != dt || t->ndim != 1 || t->shape[0] != n) {
        seek_fail(err, "%s: tensor '%s': %s with %d dimension(s) and %llu elements, expected %s [%llu]", f->path, name,
                  st_dtype_name(t->dtype), t->ndim, (unsigned long long)t->numel, st_dtype_name(dt),
                  (unsigned long long)n);
        return NULL;
    }
    return t;
}

static int read_u64s(const StFile *f, const StTensor *t, uint64_t *dst, SeekErr *err) {
    unsigned char *b = malloc(t->numel * 8 + 1);
    if (!b) return seek_fail(err, "%s: out of memory", f->path);
    int rc = st_read_raw(f, t, b, err);
    for (uint64_t i = 0; !rc && i < t->numel; i++) dst[i] = get_le64(b + 8 * i);
    free(b);
    return rc;
}

static int check_meta(const StFile *f, const char *key, const char *want, const char *what, SeekErr *err) {
    const char *v = st_meta(f, key);
    if (!v) return seek_fail(err, "%s: __metadata__ '%s' is missing (not a seek.c training state?)", f->path, key);
    if (strcmp(v, want))
        return seek_fail(err, "%s: __metadata__ %s '%.64s', expected '%s'%s", f->path, key, v, want, what);
    return 0;
}

/* What a save can never have written is refused at load, naming the tensor: a non-finite parameter
 * or moment (checkpoint_save refuses them), a negative second moment (a mean of squares), a step
 * past 2^53 (no run gets there; a corrupt count would index the loss curve out of range), more
 * skipped steps than steps, a bad run longer than the skipped steps, or a non-finite loss in the
 * spike window (a non-finite step is skipped, never recorded). */
static int check_state(const char *sp, const char *dir, const Model *m, const float *tp, const float *t1,
                       const float *t2, const uint64_t *state, const uint64_t *spike_bits, uint64_t count,
                       SeekErr *err) {
    for (size_t i = 0; i < m->n_params; i++) {
        const ParamInfo *pi = &m->params[i];
        const size_t off = (size_t)(pi->ptr - m->arena);
        for (size_t k = 0; k < pi->numel; k++) {
            if (!isfinite(tp[off + k]))
                return seek_fail(err, "%s: tensor '%s' element %zu is %g: a checkpoint holds finite parameters only", dir,
                                 pi->name, k, tp[off + k]);
            if (!isfinite(t1[off + k]))
                return seek_fail(err, "%s: tensor 'adam.m1' element %zu (of '%s') is %g: moments are finite", sp, off + k,
                                 pi->name, t1[off + k]);
            if (!isfinite(t2[off + k]) || t2[off + k] < 0)
                return seek_fail(err, "%s: tensor 'adam.m2' element %zu (of '%s') is %g: a second moment is finite and >= 0",
                                 sp, off + k, pi->name, t2[off + k]);
        }
    }
    const uint64_t step = state[0], skipped = state[6], in_a_row = state[7];
    if (step > (1ull << 53))
        return seek_fail(err, "%s: tensor 'state': step %llu is impossible (at most 2^53)", sp, (unsigned long long)step);
    if (skipped > step)
        return seek_fail(err, "%s: tensor 'state': %llu skipped steps of %llu steps is impossible", sp,
                         (unsigned long long)skipped, (unsigned long long)step);
    if (in_a_row > skipped)
        return seek_fail(err, "%s: tensor 'state': %llu bad steps in a row but %llu skipped in all is impossible", sp,
                         (unsigned long long)in_a_row, (unsigned long long)skipped);
    for (uint64_t i = 0; i < count && i < SPIKE_WINDOW; i++) {
        double v;
        memcpy(&v, &spike_bits[i], 8);
        if (!isfinite(v))
            return seek_fail(err, "%s: tensor 'spike' element %llu is %g: the window holds the finite losses of applied steps", sp,
                             (unsigned long long)i, v);
    }
    return 0;
}

int checkpoint_load(const char *path, Model *m, float *mom1, float *mom2, TrainState *st, SpikeState *sp,
                    SeekErr *err) {
    char dir[CKPT_PATH], p[CKPT_PATH];
    if (checkpoint_resolve(path, dir, sizeof dir, err)) return -1;
    uint64_t want_hash = config_hash(&m->cfg);

    /* config.json: the same canonical config */
    Config cfg;
    if (config_load(&cfg, dir, err)) return -1;
    if (config_hash(&cfg) != want_hash)
        return seek_fail(err, "%s/config.json: config_hash %016llx, expected %016llx: a checkpoint of another architecture or size",
                         dir, (unsigned long long)config_hash(&cfg), (unsigned long long)want_hash);

    /* the training state: header fields first */
    StFile f;
    if (path_join(p, sizeof p, dir, "train_state.safetensors", err) || st_open(&f, p, err)) return -1;
    char hash[32], nf[32];
    snprintf(hash, sizeof hash, "%016llx", (unsigned long long)want_hash);
    snprintf(nf, sizeof nf, "%zu", m->n_floats);
    float *tp = NULL, *t1 = NULL, *t2 = NULL;
    uint64_t state[N_STATE], count = 0, spike_bits[SPIKE_WINDOW];
    StSet set = {0};
    int set_open = 0;
    int rc = check_meta(&f, "magic", CKPT_MAGIC, "", err);
    if (!rc) rc = check_meta(&f, "version", CKPT_VERSION, " (a state file of another seek.c version)", err);
    if (!rc) rc = check_meta(&f, "config_hash", hash, ": a checkpoint of another architecture or size", err);
    if (!rc) rc = check_meta(&f, "n_floats", nf, ": the parameter count of this model", err);
    const StTensor *tm1 = NULL, *tm2 = NULL, *ts = NULL, *tsp = NULL, *tsc = NULL;
    if (!rc && !((tm1 = want_tensor(&f, "adam.m1", ST_F32, m->n_floats, err)) &&
                 (tm2 = want_tensor(&f, "adam.m2", ST_F32, m->n_floats, err)) &&
                 (ts = want_tensor(&f, "state", ST_U64, N_STATE, err)) &&
                 (tsp = want_tensor(&f, "spike", ST_F64, SPIKE_WINDOW, err)) &&
                 (tsc = want_tensor(&f, "spike.count", ST_U64, 1, err))))
        rc = -1;
    /* everything into temporaries */
    size_t bytes = m->n_floats * sizeof(float) + 1;   /* the arena exists, so this does not overflow */
    if (!rc) {
        tp = malloc(bytes);
        t1 = malloc(bytes);
        t2 = malloc(bytes);
        if (!tp || !t1 || !t2) rc = seek_fail(err, "%s: out of memory for %zu parameters", p, m->n_floats);
    }
    if (!rc) rc = st_read_f32(&f, tm1, t1, err);
    if (!rc) rc = st_read_f32(&f, tm2, t2, err);
    if (!rc) rc = read_u64s(&f, ts, state, err);
    if (!rc) rc = read_u64s(&f, tsp, spike_bits, err);
    if (!rc) rc = read_u64s(&f, tsc, &count, err);
    /* the model: every table tensor, F32, at its arena offset */
    if (!rc) rc = stset_open_dir(&set, dir, err);
    if (!rc) set_open = 1;
    for (size_t i = 0; !rc && i < m->n_params; i++) {
        const ParamInfo *pi = &m->params[i];
        const StFile *sf;
        const StTensor *t = stset_find(&set, pi->name, &sf);
        if (!t) rc = seek_fail(err, "%s: tensor '%s' is missing", dir, pi->name);
        else if (t->dtype != ST_F32)
            rc = seek_fail(err, "%s: tensor '%s': dtype %s, expected F32 (training checkpoints are float32)", sf->path,
                           pi->name, st_dtype_name(t->dtype));
        else rc = stset_load_f32(&set, pi->name, tp + (pi->ptr - m->arena), pi->ndim, pi->shape, 128, 128, err);
    }
    if (set_open) stset_close(&set);
    st_close(&f);
    if (!rc) rc = check_state(p, dir, m, tp, t1, t2, state, spike_bits, count, err);
    if (!rc) {
        /* all read and checked: commit */
        memcpy(m->arena, tp, m->n_floats * sizeof(float));
        if (mom1) memcpy(mom1, t1, m->n_floats * sizeof(float));
        if (mom2) memcpy(mom2, t2, m->n_floats * sizeof(float));
        if (st) *st = (TrainState){state[0], state[1], state[2], state[3], state[4], state[5], state[6], state[7]};
        if (sp) {
            for (int i = 0; i < SPIKE_WINDOW; i++) memcpy(&sp->values[i], &spike_bits[i], 8);
            sp->count = count;
        }
    }
    free(tp);
    free(t1);
    free(t2);
    return rc;
}
