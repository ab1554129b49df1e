/* fuzz_safetensors.c: fuzz target for the safetensors reader (ref/safetensors.h) and the model
 * loader's use of it (ref/model.h: model_load_opts, FP8 block dequantisation).
 *
 * The reader takes paths, so the input's files are written into a private temporary folder
 * (fuzz_util.h) and rewritten for each input. Three kinds of input, by their first line:
 *   - anything else: the input is one safetensors file, read by st_open, st_find, st_meta,
 *     st_read_raw, st_read_f32, stset_open_file and stset_load_f32 (each tensor under its own
 *     shape with FP8 blocks of 2 x 3, and under a wrong shape);
 *   - "#index\n": the rest is split on "\n#file\n" into model.safetensors.index.json and up to
 *     four shards s1.safetensors .. s4.safetensors of a folder, opened by stset_open_dir; the folder
 *     also holds out.safetensors, a symbolic link to a valid file outside it;
 *   - "#model\n": config.json, then "\n#file\n", then model.safetensors: a whole model folder,
 *     loaded by model_load_opts with and without keep_stored (FP8 checkpoints: F8_E4M3 rows with
 *     weight_scale_inv block scales, quantization_config.weight_block_size). Configs whose model
 *     would exceed 2^20 floats or 20,000 table rows are parsed but not loaded (the loader would
 *     allocate them; the caps keep one input's work small).
 * Besides the sanitizers, the target checks:
 *   - a refusal's reason is one printable line (check_message), and a refused open leaves the
 *     StFile closed and zeroed, a refused folder a zeroed StSet;
 *   - an accepted file is what its bytes say: data_start = 8 + N, every tensor's numel is the
 *     product of its shape and its byte range holds numel x dtype size bytes inside the data
 *     buffer, the ranges tile the buffer (header rule), names are sorted and unique, st_find and
 *     st_meta find every name and key; st_read_raw gives the input's bytes of the tensor;
 *     st_read_f32 gives each element as decoded here from the input bytes (F32, F64, F16, BF16,
 *     F8_E4M3, F8_E5M2 decoders written in this file) and refuses integer dtypes;
 *   - stset_open_file accepts exactly what st_open does; stset_load_f32 refuses a wrong shape, and
 *     under the right one gives the st_read_f32 values, or for F8 q * scale_inv[r/2][c/3] when the
 *     companion "<name>_scale_inv" is F32 or BF16 of shape [ceil(rows/2), ceil(cols/3)] and refuses
 *     otherwise;
 *   - an accepted folder has every weight_map tensor in the shard the map names, no shard named
 *     by a path or resolving outside the folder (out.safetensors), each shard once, and every
 *     tensor of the set in one shard only (entries sorted, unique);
 *   - an accepted model has the config.json's Config, every table row (MTP rows all or none) with
 *     the file's dtype and shape and the values decoded here (F8 rows: of quantization_config.fmt's
 *     kind when it is given, q x scale_inv with the config's block size, 128 x 128 by default);
 *     keep_stored keeps exactly the file's bytes (and
 *     the scales as float32) and changes no bit of the arena.
 * A failed check aborts, so libFuzzer (make fuzz) and the replay driver (tests/fuzz/replay.c, run
 * by tests/cli_fuzz.sh) both report it.
 */
#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define SEP "\n#file\n"
#define BLOCK_R 2               /* FP8 blocks of the single-file mode */
#define BLOCK_C 3
#define MAX_LOAD_ELEMS 65536    /* stset_load_f32 is called for tensors up to this size */
#define MAX_MODEL_FLOATS (1 << 20)
#define MAX_MODEL_ROWS 20000

typedef unsigned long long ull;

/* ---- decoders written here, from the formats' definitions ---- */

static float from_bits(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* One element of dtype d at p (little-endian) as float32; *ok = 0 for integer dtypes. */
static float decode(StDtype d, const unsigned char *p, int *ok) {
    *ok = 1;
    switch (d) {
    case ST_F32: return from_bits(fuzz_le32(p));
    case ST_F64: {
        uint64_t u = fuzz_le64(p);
        double x;
        memcpy(&x, &u, 8);
        return (float)x;
    }
    case ST_BF16: return from_bits((uint32_t)(p[0] | (p[1] << 8)) << 16);
    case ST_F16: {          /* 1 sign, 5 exponent (bias 15), 10 mantissa bits */
        unsigned h = p[0] | (p[1] << 8), e = (h >> 10) & 31, m = h & 1023;
        float v = e == 31 ? (m ? NAN : INFINITY) : e == 0 ? ldexpf((float)m, -24) : ldexpf((float)(1024 + m), (int)e - 25);
        return (h & 0x8000) ? -v : v;
    }
    case ST_F8_E4M3: {      /* 1 sign, 4 exponent (bias 7), 3 mantissa bits; no infinities, S.1111.111 is NaN */
        unsigned b = p[0], e = (b >> 3) & 15, m = b & 7;
        float v = (e == 15 && m == 7) ? NAN : e == 0 ? ldexpf((float)m, -9) : ldexpf((float)(8 + m), (int)e - 10);
        return (b & 0x80) ? -v : v;
    }
    case ST_F8_E5M2: {      /* 1 sign, 5 exponent (bias 15), 2 mantissa bits, IEEE-like */
        unsigned b = p[0], e = (b >> 2) & 31, m = b & 3;
        float v = e == 31 ? (m ? NAN : INFINITY) : e == 0 ? ldexpf((float)m, -16) : ldexpf((float)(4 + m), (int)e - 17);
        return (b & 0x80) ? -v : v;
    }
    default: *ok = 0; return 0;
    }
}

/* Equal bits, or both NaN (payloads are not part of the contract). */
static int same(float a, float b) {
    if (isnan(a) || isnan(b)) return isnan(a) && isnan(b);
    return memcmp(&a, &b, 4) == 0;
}

static int is_float(StDtype d) {
    return d == ST_F32 || d == ST_F64 || d == ST_F16 || d == ST_BF16 || d == ST_F8_E4M3 || d == ST_F8_E5M2;
}
static int is_f8(StDtype d) { return d == ST_F8_E4M3 || d == ST_F8_E5M2; }

/* ---- one file ---- */

static int cmp_range(const void *a, const void *b) {
    const uint64_t *x = a, *y = b;
    if (x[0] != y[0]) return x[0] < y[0] ? -1 : 1;
    return x[1] < y[1] ? -1 : x[1] > y[1];
}

static void check_closed(const StFile *f) {
    CHECK(f->fd == -1 && f->path == NULL && f->tensors == NULL && f->n_tensors == 0 && f->meta_keys == NULL &&
          f->meta_values == NULL && f->n_meta == 0 && f->file_size == 0 && f->data_start == 0);
}

/* An opened file against its bytes. */
static void check_file(const StFile *f, const unsigned char *data, size_t size) {
    CHECK(f->fd >= 0 && f->file_size == size && size >= 8);
    uint64_t n = fuzz_le64(data);
    CHECK(n <= ST_MAX_HEADER && f->data_start == 8 + n && f->data_start <= size);
    uint64_t buf = size - f->data_start;
    uint64_t(*ranges)[2] = malloc((f->n_tensors + 1) * sizeof *ranges);
    CHECK(ranges != NULL);
    for (size_t i = 0; i < f->n_tensors; i++) {
        const StTensor *t = &f->tensors[i];
        CHECK(t->name && (i == 0 || strcmp(f->tensors[i - 1].name, t->name) < 0));
        CHECK(strcmp(t->name, "__metadata__") != 0);
        CHECK((unsigned)t->dtype < ST_NUM_DTYPES && t->ndim >= 0 && t->ndim <= ST_MAX_DIMS);
        uint64_t numel = 1, bytes;
        int ovf = 0;
        for (int d = 0; d < t->ndim; d++) ovf |= __builtin_mul_overflow(numel, t->shape[d], &numel);
        CHECK(!ovf && numel == t->numel);
        CHECK(!__builtin_mul_overflow(numel, (uint64_t)st_dtype_size(t->dtype), &bytes));
        CHECK(t->begin <= t->end && t->end <= buf && t->end - t->begin == bytes);
        CHECK(st_find(f, t->name) == t);
        ranges[i][0] = t->begin;
        ranges[i][1] = t->end;
    }
    /* the ranges tile [0, buf): sorted by (begin, end), each begins where the previous ends */
    qsort(ranges, f->n_tensors, sizeof *ranges, cmp_range);
    uint64_t at = 0;
    for (size_t i = 0; i < f->n_tensors; i++) {
        CHECK(ranges[i][0] == at);
        at = ranges[i][1];
    }
    CHECK(at == buf);
    free(ranges);
    for (size_t i = 0; i < f->n_meta; i++) {
        CHECK(f->meta_keys[i] && f->meta_values[i]);
        CHECK(st_meta(f, f->meta_keys[i]) == f->meta_values[i]); /* keys are unique */
    }
}

/* st_read_raw and st_read_f32 of every tensor against the input's bytes. */
static void check_reads(const StFile *f, const unsigned char *data) {
    for (size_t i = 0; i < f->n_tensors; i++) {
        const StTensor *t = &f->tensors[i];
        size_t bytes = (size_t)(t->end - t->begin), es = st_dtype_size(t->dtype);
        const unsigned char *src = data + f->data_start + t->begin;
        unsigned char *raw = malloc(bytes + 1);
        float *x = malloc((size_t)t->numel * sizeof(float) + 1);
        CHECK(raw && x);
        SeekErr e;
        CHECK(st_read_raw(f, t, raw, &e) == 0);
        CHECK(memcmp(raw, src, bytes) == 0);
        if (!is_float(t->dtype)) {
            CHECK(st_read_f32(f, t, x, &e) == -1);
            check_message(&e);
        } else {
            CHECK(st_read_f32(f, t, x, &e) == 0);
            for (size_t k = 0; k < t->numel; k++) {
                int ok;
                CHECK(same(x[k], decode(t->dtype, src + k * es, &ok)) && ok);
            }
        }
        free(raw);
        free(x);
    }
}

/* ceil(a / b) without overflow (a near 2^64: cols of a zero-row tensor wrap around). */
static uint64_t ceil_div(uint64_t a, uint64_t b) { return a / b + (a % b != 0); }

/* rows = shape[0] (1 for a scalar), cols = the product of the others (modulo 2^64, as the
 * loader computes it: a tensor with a zero dimension may multiply the rest past 64 bits). */
static void rows_cols(const StTensor *t, uint64_t *rows, uint64_t *cols) {
    *rows = t->ndim >= 1 ? t->shape[0] : 1;
    *cols = 1;
    for (int d = 1; d < t->ndim; d++) *cols *= t->shape[d];
}

/* stset_load_f32 of one tensor of set s (whose file f has the bytes data), with blocks br x bc. */
static void check_load(const StSet *s, const StFile *f, const StTensor *t, const unsigned char *data, int br, int bc) {
    uint64_t rows, cols;
    rows_cols(t, &rows, &cols);
    if (t->numel > MAX_LOAD_ELEMS || rows > MAX_LOAD_ELEMS) return;
    float *x = malloc((size_t)t->numel * sizeof(float) + 1);
    CHECK(x != NULL);
    SeekErr e;
    /* a wrong shape is refused */
    uint64_t wrong[ST_MAX_DIMS];
    memcpy(wrong, t->shape, sizeof wrong);
    if (t->ndim >= 1) {
        wrong[0]++;
        CHECK(stset_load_f32(s, t->name, x, t->ndim, wrong, br, bc, &e) == -1);
        check_message(&e);
        wrong[0]--;
    }
    if (t->ndim < ST_MAX_DIMS) {
        wrong[t->ndim] = 1;
        CHECK(stset_load_f32(s, t->name, x, t->ndim + 1, wrong, br, bc, &e) == -1);
        check_message(&e);
    }
    /* the right one: what should come out, or a refusal */
    int want_ok = is_float(t->dtype);
    const StTensor *sc = NULL;
    const StFile *sf = NULL;
    uint64_t sr = 0, scols = 0;
    if (want_ok && is_f8(t->dtype)) {
        size_t len = strlen(t->name) + sizeof "_scale_inv";
        char *name = malloc(len);
        CHECK(name != NULL);
        snprintf(name, len, "%s_scale_inv", t->name);
        sc = stset_find(s, name, &sf);
        free(name);
        sr = ceil_div(rows, (uint64_t)br);
        scols = ceil_div(cols, (uint64_t)bc);
        want_ok = sc && (sc->dtype == ST_F32 || sc->dtype == ST_BF16) && sc->ndim == 2 && sc->shape[0] == sr &&
                  sc->shape[1] == scols;
    }
    int rc = stset_load_f32(s, t->name, x, t->ndim, t->shape, br, bc, &e);
    if (!want_ok) {
        CHECK(rc == -1);
        check_message(&e);
        free(x);
        return;
    }
    CHECK(rc == 0);
    const unsigned char *src = data + f->data_start + t->begin;
    size_t es = st_dtype_size(t->dtype);
    if (!sc) {
        for (size_t k = 0; k < t->numel; k++) {
            int ok;
            CHECK(same(x[k], decode(t->dtype, src + k * es, &ok)));
        }
    } else {
        fuzz_note("tensor '%s': dequantised with its %llu x %llu block scales", t->name, (ull)sr, (ull)scols);
        /* the scales come from their own file: read them here through st_read_f32 (checked above
         * against the bytes, in check_reads) */
        float *scale = malloc((size_t)(sr * scols) * sizeof(float) + 1);
        CHECK(scale != NULL && st_read_f32(sf, sc, scale, &e) == 0);
        for (uint64_t r = 0; r < rows; r++)
            for (uint64_t c = 0; c < cols; c++) {
                int ok;
                float q = decode(t->dtype, src + (size_t)(r * cols + c), &ok);
                CHECK(same(x[r * cols + c], q * scale[(r / (uint64_t)br) * scols + c / (uint64_t)bc]));
            }
        free(scale);
    }
    free(x);
}

static void one_file(const char *dir, const unsigned char *data, size_t size) {
    char path[4096];
    fuzz_path(path, sizeof path, dir, "one.safetensors");
    fuzz_write(path, data, size);
    StFile f;
    StSet s;
    SeekErr e, es;
    int rc = st_open(&f, path, &e);
    int rs = stset_open_file(&s, path, &es);
    CHECK(rc == rs);
    if (rc) {
        fuzz_note("file refused: %s", e.msg);
        check_message(&e);
        check_message(&es);
        check_closed(&f);
        CHECK(s.files == NULL && s.n_files == 0 && s.entries == NULL && s.dir == NULL);
        return;
    }
    fuzz_note("file accepted: %zu tensors, %zu metadata", f.n_tensors, f.n_meta);
    check_file(&f, data, size);
    check_reads(&f, data);
    CHECK(s.n_files == 1 && s.n_entries == f.n_tensors);
    for (size_t i = 0; i < f.n_tensors; i++) {
        const StFile *sf;
        const StTensor *t = stset_find(&s, f.tensors[i].name, &sf);
        CHECK(t && sf == &s.files[0] && !strcmp(t->name, f.tensors[i].name));
        check_load(&s, sf, t, data, BLOCK_R, BLOCK_C);
    }
    stset_close(&s);
    st_close(&f);
    check_closed(&f);
}

/* ---- a sharded folder ---- */

/* Empties the model folder d (keeping the link out.safetensors) and makes it when needed. */
static void reset_folder(const char *root, char *d, size_t cap) {
    fuzz_path(d, cap, root, "model");
    static int made;
    if (!made) {
        char out[4096], link[4096];
        rm_tree(d);
        CHECK(mkdir(d, 0700) == 0);
        /* out.safetensors -> ../outside.safetensors, a valid file outside the folder */
        static const char valid[] = "\x30\0\0\0\0\0\0\0{\"a\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[0,2]}}   xy";
        fuzz_path(out, sizeof out, root, "outside.safetensors");
        fuzz_write(out, valid, sizeof valid - 1);
        fuzz_path(link, sizeof link, d, "out.safetensors");
        CHECK(symlink("../outside.safetensors", link) == 0);
        made = 1;
    }
    static const char *const files[] = {"model.safetensors.index.json", "model.safetensors", "config.json",
                                        "s1.safetensors", "s2.safetensors", "s3.safetensors", "s4.safetensors"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char p[4096];
        fuzz_path(p, sizeof p, d, files[i]);
        unlink(p);
    }
}

static void check_set_closed(const StSet *s) {
    CHECK(s->files == NULL && s->n_files == 0 && s->entries == NULL && s->n_entries == 0 && s->dir == NULL);
}

static void index_folder(const char *root, const unsigned char *data, size_t size) {
    char d[4096], p[4096];
    reset_folder(root, d, sizeof d);
    FuzzPart part[5];
    int np = fuzz_split(data, size, SEP, part, 5);
    fuzz_path(p, sizeof p, d, "model.safetensors.index.json");
    fuzz_write(p, part[0].p, part[0].n);
    for (int k = 1; k < np; k++) {
        char name[32];
        snprintf(name, sizeof name, "s%d.safetensors", k);
        fuzz_path(p, sizeof p, d, name);
        fuzz_write(p, part[k].p, part[k].n);
    }
    StSet s;
    SeekErr e;
    if (stset_open_dir(&s, d, &e)) {
        fuzz_note("folder refused: %s", e.msg);
        check_message(&e);
        check_set_closed(&s);
        return;
    }
    fuzz_note("folder accepted: %zu shards, %zu tensors", s.n_files, s.n_entries);
    /* the index as written: an object with a weight_map of plain shard names */
    json_error_t je;
    json_t *root_j = json_loadb((const char *)part[0].p, part[0].n, JSON_REJECT_DUPLICATES, &je);
    CHECK(json_is_object(root_j));
    json_t *wm = json_object_get(root_j, "weight_map");
    CHECK(json_is_object(wm));
    const char *key;
    json_t *val;
    size_t total = 0;
    json_object_foreach(wm, key, val) {
        CHECK(json_is_string(val));
        const char *shard = json_string_value(val);
        CHECK(shard[0] && !strchr(shard, '/') && strcmp(shard, ".") && strcmp(shard, ".."));
        CHECK(strcmp(shard, "out.safetensors") != 0); /* resolves outside the folder */
        const StFile *sf;
        const StTensor *t = stset_find(&s, key, &sf);
        CHECK(t != NULL);
        size_t ls = strlen(sf->path), ln = strlen(shard);
        CHECK(ls > ln && sf->path[ls - ln - 1] == '/' && !strcmp(sf->path + ls - ln, shard));
    }
    /* each shard once, each one what its bytes say; every tensor in one shard only */
    for (size_t i = 0; i < s.n_files; i++) {
        const char *slash = strrchr(s.files[i].path, '/');
        int k = 0;
        CHECK(slash && sscanf(slash + 1, "s%d.safetensors", &k) == 1 && k >= 1 && k < np);
        for (size_t j = 0; j < i; j++) CHECK(strcmp(s.files[i].path, s.files[j].path) != 0);
        check_file(&s.files[i], part[k].p, part[k].n);
        check_reads(&s.files[i], part[k].p);
        total += s.files[i].n_tensors;
    }
    CHECK(s.n_entries == total);
    for (size_t i = 0; i < s.n_entries; i++) {
        CHECK(i == 0 || strcmp(s.entries[i - 1].t->name, s.entries[i].t->name) < 0);
        CHECK(s.entries[i].file < s.n_files);
        const StFile *sf;
        CHECK(stset_find(&s, s.entries[i].t->name, &sf) == s.entries[i].t && sf == &s.files[s.entries[i].file]);
    }
    json_decref(root_j);
    stset_close(&s);
    check_set_closed(&s);
}

/* ---- a whole model ---- */

/* Every loaded row of m against the file's tensors (f: model.safetensors, opened here). */
static void check_model(const Model *m, const Config *cfg, const StFile *f, const unsigned char *data, int kept) {
    CHECK(memcmp(&m->cfg, cfg, sizeof *cfg) == 0);
    int br = cfg->fp8_block_r ? cfg->fp8_block_r : 128, bc = cfg->fp8_block_c ? cfg->fp8_block_c : 128;
    size_t mtp_rows = 0, mtp_found = 0;
    for (size_t i = 0; i < m->n_params; i++)
        if (m->params[i].mtp) {
            mtp_rows++;
            mtp_found += st_find(f, m->params[i].name) != NULL;
        }
    CHECK(mtp_found == 0 || mtp_found == mtp_rows);
    CHECK(m->has_mtp == (mtp_rows > 0 && mtp_found == mtp_rows));
    for (size_t i = 0; i < m->n_params; i++) {
        const ParamInfo *p = &m->params[i];
        const StTensor *t = st_find(f, p->name);
        if (p->mtp && !m->has_mtp) {
            CHECK(p->dtype == ST_F32 && p->stored == NULL && p->scale_inv == NULL);
            continue;
        }
        CHECK(t != NULL && t->dtype == p->dtype && is_float(t->dtype) && t->ndim == p->ndim);
        for (int d = 0; d < p->ndim; d++) CHECK(t->shape[d] == p->shape[d]);
        CHECK(t->numel == p->numel);
        const unsigned char *src = data + f->data_start + t->begin;
        size_t es = st_dtype_size(t->dtype);
        if (kept && t->dtype != ST_F32) CHECK(p->stored && memcmp(p->stored, src, (size_t)(t->end - t->begin)) == 0);
        else CHECK(p->stored == NULL);
        if (!is_f8(t->dtype)) {
            CHECK(p->scale_inv == NULL && p->block[0] == 0 && p->block[1] == 0);
            for (size_t k = 0; k < p->numel; k++) {
                int ok;
                CHECK(same(p->ptr[k], decode(t->dtype, src + k * es, &ok)));
            }
            continue;
        }
        CHECK(p->block[0] == br && p->block[1] == bc);
        if (cfg->fp8_fmt) CHECK(t->dtype == (cfg->fp8_fmt == 5 ? ST_F8_E5M2 : ST_F8_E4M3));
        uint64_t rows, cols;
        rows_cols(t, &rows, &cols);
        uint64_t sr = ceil_div(rows, (uint64_t)br), scols = ceil_div(cols, (uint64_t)bc);
        char sname[sizeof p->name + 16];
        snprintf(sname, sizeof sname, "%s_scale_inv", p->name);
        const StTensor *st = st_find(f, sname);
        CHECK(st && (st->dtype == ST_F32 || st->dtype == ST_BF16) && st->ndim == 2 && st->shape[0] == sr &&
              st->shape[1] == scols);
        const unsigned char *ssrc = data + f->data_start + st->begin;
        size_t ses = st_dtype_size(st->dtype);
        if (kept) CHECK(p->scale_inv != NULL);
        else CHECK(p->scale_inv == NULL);
        for (uint64_t r = 0; r < rows; r++)
            for (uint64_t c = 0; c < cols; c++) {
                int ok;
                size_t si = (size_t)((r / br) * scols + c / bc);
                float s = decode(st->dtype, ssrc + si * ses, &ok);
                if (kept) CHECK(same(p->scale_inv[si], s));
                CHECK(same(p->ptr[r * cols + c], decode(t->dtype, src + (size_t)(r * cols + c), &ok) * s));
            }
    }
}

static void model_folder(const char *root, const unsigned char *data, size_t size) {
    char d[4096], p[4096];
    reset_folder(root, d, sizeof d);
    FuzzPart part[2];
    if (fuzz_split(data, size, SEP, part, 2) < 2) part[1] = (FuzzPart){data + size, 0};
    fuzz_path(p, sizeof p, d, "config.json");
    fuzz_write(p, part[0].p, part[0].n);
    fuzz_path(p, sizeof p, d, "model.safetensors");
    fuzz_write(p, part[1].p, part[1].n);
    Config cfg;
    SeekErr e;
    int cfg_ok = config_parse(&cfg, (const char *)part[0].p, part[0].n, "config.json", &e) == 0;
    if (cfg_ok && !fuzz_model_small(&cfg, MAX_MODEL_FLOATS, MAX_MODEL_ROWS)) {
        fuzz_note("model not loaded: the config is above the size caps");
        return;
    }
    Model m[2];
    int rc[2];
    for (int kept = 0; kept < 2; kept++) {
        LoadOpts o = {.keep_stored = kept};
        rc[kept] = model_load_opts(&m[kept], d, &o, &e);
        if (rc[kept]) {
            fuzz_note("model refused: %s", e.msg);
            check_message(&e);
        }
    }
    CHECK(rc[0] == rc[1]);
    if (rc[0] == 0) {
        fuzz_note("model accepted: %zu rows, %zu floats, mtp %d", m[0].n_params, m[0].n_floats, m[0].has_mtp);
        CHECK(cfg_ok);
        StFile f;
        CHECK(st_open(&f, p, &e) == 0);
        check_file(&f, part[1].p, part[1].n);
        for (int kept = 0; kept < 2; kept++) check_model(&m[kept], &cfg, &f, part[1].p, kept);
        CHECK(m[0].n_floats == m[1].n_floats && memcmp(m[0].arena, m[1].arena, m[0].n_floats * sizeof(float)) == 0);
        st_close(&f);
        model_free(&m[0]);
        model_free(&m[1]);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *root = fuzz_tmpdir();
    if (size >= 7 && !memcmp(data, "#index\n", 7)) index_folder(root, data + 7, size - 7);
    else if (size >= 7 && !memcmp(data, "#model\n", 7)) model_folder(root, data + 7, size - 7);
    else one_file(root, data, size);
    return 0;
}
