/* safetensors.c: the strict safetensors reader, the writer, and model folders (one
 * `model.safetensors` or shards listed in `model.safetensors.index.json`). The format and the
 * rules are in safetensors.h; this file says how they are enforced.
 *
 * Policies:
 *   - Untrusted input. Every length, count and offset taken from a file is checked before it is
 *     used: the header length N against ST_MAX_HEADER and the file size before anything larger
 *     than the 8-byte length is allocated; shape products and byte counts with ck_mul/ck_add;
 *     the tensors' byte ranges must tile the data buffer exactly.
 *   - I/O. fstat for the size, pread_exact for the bytes, never mmap, so a file that shrinks
 *     under us gives an error and not SIGBUS. Conversions to float32 go through one bounded
 *     chunk buffer (ST_CHUNK bytes) and decode every element from its little-endian bytes, so
 *     the data's alignment and the host's byte order do not matter, and converting a tensor
 *     never holds a second full-size copy.
 *   - Errors. Library tier: -1 and one line in SeekErr naming the file, the tensor or field,
 *     and what was expected. Control characters that come from file or tensor names are
 *     replaced by '?' so the reason stays on one line. Nothing is printed, nothing exits, every
 *     path frees what it allocated, and a failed open leaves a closed, zeroed struct.
 *   - Folders. Shard names from the index are checked as plain file names and resolved with
 *     realpath() to a file inside the folder, all of them before the first shard is opened.
 *     Each distinct shard is opened once. A tensor may live in one shard only.
 *   - Compatibility with the reference (Python/Rust) reader: whitespace around the header JSON
 *     and unknown keys inside a tensor entry are accepted as it does; duplicate keys, a
 *     `__metadata__` that is not an object of strings (null included) and floats in shapes or
 *     offsets are rejected.
 */
#include "safetensors.h"
#include "jsonutil.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

_Static_assert(sizeof(size_t) == sizeof(uint64_t), "seek.c indexes tensors with a 64-bit size_t");

#define ST_CHUNK ((size_t)1 << 20)          /* conversion buffer: 1 MiB, a multiple of every dtype size */
#define ST_MAX_INDEX ((size_t)64 << 20)     /* model.safetensors.index.json cap: 64 MiB */
#define ST_PATH_MAX 4096

typedef unsigned long long ull;             /* for printf */

/* ---- dtypes ---- */

static const struct { const char *name; size_t size; } dtype_table[ST_NUM_DTYPES] = {
    [ST_BOOL] = {"BOOL", 1},    [ST_U8] = {"U8", 1},     [ST_I8] = {"I8", 1},
    [ST_I16] = {"I16", 2},      [ST_U16] = {"U16", 2},   [ST_I32] = {"I32", 4},
    [ST_U32] = {"U32", 4},      [ST_I64] = {"I64", 8},   [ST_U64] = {"U64", 8},
    [ST_F16] = {"F16", 2},      [ST_BF16] = {"BF16", 2}, [ST_F32] = {"F32", 4},
    [ST_F64] = {"F64", 8},      [ST_F8_E4M3] = {"F8_E4M3", 1}, [ST_F8_E5M2] = {"F8_E5M2", 1},
};
#define ST_DTYPE_LIST "BOOL, U8, I8, I16, U16, I32, U32, I64, U64, F16, BF16, F32, F64, F8_E4M3, F8_E5M2"

const char *st_dtype_name(StDtype d) {
    return ((unsigned)d < ST_NUM_DTYPES) ? dtype_table[d].name : "?";
}

size_t st_dtype_size(StDtype d) {
    return ((unsigned)d < ST_NUM_DTYPES) ? dtype_table[d].size : 0;
}

int st_dtype_parse(const char *s, StDtype *out) {
    if (!s) return -1;
    for (int d = 0; d < ST_NUM_DTYPES; d++) {
        if (strcmp(s, dtype_table[d].name) == 0) {
            *out = (StDtype)d;
            return 0;
        }
    }
    return -1;
}

/* ---- small helpers ---- */

static uint16_t le16(const unsigned char *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static uint32_t le32(const unsigned char *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}
static uint64_t le64(const unsigned char *p) { return (uint64_t)le32(p) | ((uint64_t)le32(p + 4) << 32); }
static void put_le64(unsigned char *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i));
}

/* float8_e5m2 is the top byte of an IEEE half (1 sign, 5 exponent, 2 mantissa bits), with
 * infinities and NaNs, so the half conversion is exact for it. */
static float e5m2_to_f32(uint8_t b) { return f16_to_f32((uint16_t)(b << 8)); }

/* Offset of the first byte that does not start a well-formed UTF-8 sequence (RFC 3629: no
 * overlong forms, no surrogates, nothing above U+10FFFF), or n when the whole buffer is valid. */
static size_t utf8_invalid_at(const unsigned char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        unsigned char c = s[i];
        size_t len;
        unsigned char lo = 0x80, hi = 0xbf; /* allowed range of the second byte */
        if (c < 0x80) { i++; continue; }
        if (c >= 0xc2 && c <= 0xdf) len = 2;
        else if (c >= 0xe0 && c <= 0xef) {
            len = 3;
            if (c == 0xe0) lo = 0xa0;       /* overlong */
            if (c == 0xed) hi = 0x9f;       /* UTF-16 surrogates */
        } else if (c >= 0xf0 && c <= 0xf4) {
            len = 4;
            if (c == 0xf0) lo = 0x90;       /* overlong */
            if (c == 0xf4) hi = 0x8f;       /* above U+10FFFF */
        } else return i;
        if (n - i < len || s[i + 1] < lo || s[i + 1] > hi) return i;
        for (size_t k = 2; k < len; k++)
            if ((s[i + k] & 0xc0) != 0x80) return i;
        i += len;
    }
    return n;
}

/* A JSON integer >= 0 (shape entries, offsets); reals, negatives and other types are refused. */
static bool json_u64(const json_t *v, uint64_t *out) {
    if (!json_is_integer(v) || json_integer_value(v) < 0) return false;
    *out = (uint64_t)json_integer_value(v);
    return true;
}

/* "[3, 4]" into buf (truncated to cap). */
static const char *fmt_shape(char *buf, size_t cap, const uint64_t *shape, int ndim) {
    size_t at = 0;
    buf[0] = '\0';
    at += (size_t)snprintf(buf, cap, "[");
    for (int i = 0; i < ndim && at < cap; i++)
        at += (size_t)snprintf(buf + at, cap - at, i ? ", %llu" : "%llu", (ull)shape[i]);
    if (at < cap) snprintf(buf + at, cap - at, "]");
    return buf;
}

/* ---- the reader ---- */

static int parse_metadata(StFile *f, const json_t *meta, SeekErr *err) {
    if (!json_is_object(meta))
        return seek_fail(err, "%s: __metadata__: expected an object of string to string, got %s",
                         f->path, json_type_word(meta));
    size_t nm = json_object_size(meta);
    f->meta_keys = calloc(nm ? nm : 1, sizeof *f->meta_keys);
    f->meta_values = calloc(nm ? nm : 1, sizeof *f->meta_values);
    if (!f->meta_keys || !f->meta_values)
        return seek_fail(err, "%s: out of memory for %zu metadata entries", f->path, nm);
    const char *key;
    json_t *val;
    json_object_foreach((json_t *)meta, key, val) {
        if (!json_is_string(val))
            return seek_fail(err, "%s: __metadata__ '%s': expected a string value, got %s",
                             f->path, key, json_type_word(val));
        size_t i = f->n_meta++;
        f->meta_keys[i] = strdup(key);
        f->meta_values[i] = strdup(json_string_value(val));
        if (!f->meta_keys[i] || !f->meta_values[i])
            return seek_fail(err, "%s: out of memory for metadata '%s'", f->path, key);
    }
    return 0;
}

/* One tensor entry {"dtype": .., "shape": [..], "data_offsets": [begin, end]}: known dtype,
 * non-negative integer shape, bytes = prod(shape) * size without overflow, begin <= end <=
 * buffer length and end - begin == bytes. Unknown extra keys are ignored, as the reference
 * reader does. */
static int parse_tensor(const StFile *f, StTensor *t, const json_t *v, uint64_t buf_len, SeekErr *err) {
    const char *path = f->path, *name = t->name;
    if (!json_is_object(v))
        return seek_fail(err, "%s: tensor '%s': expected an object {dtype, shape, data_offsets}, got %s",
                         path, name, json_type_word(v));

    const json_t *jd = json_object_get(v, "dtype");
    if (!jd) return seek_fail(err, "%s: tensor '%s': missing dtype", path, name);
    if (!json_is_string(jd) || st_dtype_parse(json_string_value(jd), &t->dtype) != 0)
        return seek_fail(err, "%s: tensor '%s': unknown dtype %s%s%s, expected one of " ST_DTYPE_LIST,
                         path, name, json_is_string(jd) ? "'" : "(",
                         json_is_string(jd) ? json_string_value(jd) : json_type_word(jd),
                         json_is_string(jd) ? "'" : ")");

    const json_t *js = json_object_get(v, "shape");
    if (!json_is_array(js))
        return seek_fail(err, "%s: tensor '%s': shape: expected an array of non-negative integers, got %s",
                         path, name, js ? json_type_word(js) : "nothing");
    size_t nd = json_array_size(js);
    if (nd > ST_MAX_DIMS)
        return seek_fail(err, "%s: tensor '%s': shape has %zu dimensions, at most %d are supported",
                         path, name, nd, ST_MAX_DIMS);
    t->ndim = (int)nd;
    size_t numel = 1;
    for (size_t i = 0; i < nd; i++) {
        const json_t *e = json_array_get(js, i);
        uint64_t d;
        if (!json_u64(e, &d))
            return seek_fail(err, "%s: tensor '%s': shape[%zu]: expected a non-negative integer, got %s",
                             path, name, i, json_type_word(e));
        t->shape[i] = d;
        if (!ck_mul(numel, d, &numel))
            return seek_fail(err, "%s: tensor '%s': shape: element count overflows 64 bits at dimension %zu",
                             path, name, i);
    }
    t->numel = numel;
    size_t bytes;
    if (!ck_mul(numel, st_dtype_size(t->dtype), &bytes))
        return seek_fail(err, "%s: tensor '%s': shape: %llu elements of %s overflow 64 bits of bytes",
                         path, name, (ull)numel, st_dtype_name(t->dtype));

    const json_t *jo = json_object_get(v, "data_offsets");
    uint64_t b, e;
    if (!json_is_array(jo) || json_array_size(jo) != 2 || !json_u64(json_array_get(jo, 0), &b) ||
        !json_u64(json_array_get(jo, 1), &e))
        return seek_fail(err, "%s: tensor '%s': data_offsets: expected [begin, end], two non-negative integers",
                         path, name);
    if (b > e)
        return seek_fail(err, "%s: tensor '%s': data_offsets [%llu, %llu]: begin is after end",
                         path, name, (ull)b, (ull)e);
    if (e > buf_len)
        return seek_fail(err, "%s: tensor '%s': data_offsets [%llu, %llu] run past the data buffer of %llu bytes (truncated file?)",
                         path, name, (ull)b, (ull)e, (ull)buf_len);
    if (e - b != bytes) {
        char sh[256];
        return seek_fail(err, "%s: tensor '%s': data_offsets [%llu, %llu] hold %llu bytes, expected %llu (%s shape %s)",
                         path, name, (ull)b, (ull)e, (ull)(e - b), (ull)bytes, st_dtype_name(t->dtype),
                         fmt_shape(sh, sizeof sh, t->shape, t->ndim));
    }
    t->begin = b;
    t->end = e;
    return 0;
}

static int cmp_by_offsets(const void *pa, const void *pb) {
    const StTensor *a = pa, *b = pb;
    if (a->begin != b->begin) return a->begin < b->begin ? -1 : 1;
    if (a->end != b->end) return a->end < b->end ? -1 : 1;
    return strcmp(a->name, b->name);
}

static int cmp_by_name(const void *pa, const void *pb) {
    return strcmp(((const StTensor *)pa)->name, ((const StTensor *)pb)->name);
}

/* Sorted by (begin, end) the ranges must start at 0, each begin where the previous one ends,
 * and the last end at the end of the buffer: no overlap, no gap, no trailing bytes. Zero-byte
 * tensors sort before a non-empty one at the same offset, so they fit anywhere. */
static int check_tiling(const StFile *f, StTensor *ts, size_t n, uint64_t buf_len, SeekErr *err) {
    if (n > 0) qsort(ts, n, sizeof *ts, cmp_by_offsets);
    uint64_t at = 0;
    for (size_t i = 0; i < n; i++) {
        if (ts[i].begin == at) {
            at = ts[i].end;
            continue;
        }
        if (i == 0)
            return seek_fail(err, "%s: tensor '%s': data_offsets [%llu, %llu]: the first tensor must begin at 0",
                             f->path, ts[i].name, (ull)ts[i].begin, (ull)ts[i].end);
        if (ts[i].begin < at)
            return seek_fail(err, "%s: tensor '%s': data_offsets [%llu, %llu] overlap tensor '%s', which ends at %llu",
                             f->path, ts[i].name, (ull)ts[i].begin, (ull)ts[i].end, ts[i - 1].name, (ull)at);
        return seek_fail(err, "%s: tensor '%s': data_offsets [%llu, %llu] leave a gap after tensor '%s', which ends at %llu",
                         f->path, ts[i].name, (ull)ts[i].begin, (ull)ts[i].end, ts[i - 1].name, (ull)at);
    }
    if (at != buf_len)
        return seek_fail(err, "%s: the tensors end at byte %llu of a %llu-byte data buffer: %llu trailing bytes",
                         f->path, (ull)at, (ull)buf_len, (ull)(buf_len - at));
    return 0;
}

static int parse_header(StFile *f, const char *hdr, size_t n, SeekErr *err) {
    size_t bad = utf8_invalid_at((const unsigned char *)hdr, n);
    if (bad < n)
        return seek_fail(err, "%s: header is not valid UTF-8 (header byte %zu)", f->path, bad);
    json_error_t je;
    json_t *root = json_loadb(hdr, n, JSON_REJECT_DUPLICATES, &je);
    if (!root)
        return seek_fail(err, "%s: header is not valid JSON: %s (header byte %d)", f->path, je.text, je.position);

    int rc = -1;
    uint64_t buf_len = f->file_size - f->data_start;
    if (!json_is_object(root)) {
        seek_fail(err, "%s: header: expected a JSON object, got %s", f->path, json_type_word(root));
        goto done;
    }
    const json_t *meta = json_object_get(root, "__metadata__");
    if (meta && parse_metadata(f, meta, err) != 0) goto done;
    size_t nt = json_object_size(root) - (meta ? 1 : 0);
    f->tensors = calloc(nt ? nt : 1, sizeof *f->tensors);
    if (!f->tensors) {
        seek_fail(err, "%s: out of memory for %zu tensors", f->path, nt);
        goto done;
    }
    const char *key;
    json_t *val;
    json_object_foreach(root, key, val) {
        if (strcmp(key, "__metadata__") == 0) continue;
        StTensor *t = &f->tensors[f->n_tensors];
        t->name = strdup(key);
        if (!t->name) {
            seek_fail(err, "%s: out of memory for tensor names", f->path);
            goto done;
        }
        f->n_tensors++;
        if (parse_tensor(f, t, val, buf_len, err) != 0) goto done;
    }
    if (check_tiling(f, f->tensors, f->n_tensors, buf_len, err) != 0) goto done;
    if (f->n_tensors > 0) qsort(f->tensors, f->n_tensors, sizeof *f->tensors, cmp_by_name);
    rc = 0;
done:
    json_decref(root);
    return rc;
}

static int st_open_impl(StFile *f, const char *path, SeekErr *err) {
    f->path = strdup(path);
    if (!f->path) return seek_fail(err, "%s: out of memory", path);
    f->fd = open(path, O_RDONLY | O_CLOEXEC);
    if (f->fd < 0) return seek_fail(err, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(f->fd, &st) != 0) return seek_fail(err, "%s: cannot stat: %s", path, strerror(errno));
    if (!S_ISREG(st.st_mode)) return seek_fail(err, "%s: not a regular file", path);
    f->file_size = (uint64_t)st.st_size;

    /* step 1: the 8-byte header length N, checked before anything else is allocated */
    if (f->file_size < 8)
        return seek_fail(err, "%s: header too small: the file has %llu bytes, expected at least the 8-byte header length",
                         path, (ull)f->file_size);
    unsigned char len8[8];
    if (pread_exact(f->fd, len8, 8, 0, path, err) != 0) return -1;
    uint64_t n = le64(len8);
    if (n > ST_MAX_HEADER)
        return seek_fail(err, "%s: header length out of range: N = %llu, more than the %u-byte cap",
                         path, (ull)n, ST_MAX_HEADER);
    if (n > f->file_size - 8)
        return seek_fail(err, "%s: header length out of range: N = %llu, but only %llu bytes follow the 8-byte length",
                         path, (ull)n, (ull)(f->file_size - 8));
    f->data_start = 8 + n;

    /* step 2: the JSON header (at most ST_MAX_HEADER bytes, and no more than the file holds) */
    char *hdr = malloc((size_t)n + 1);
    if (!hdr) return seek_fail(err, "%s: out of memory for a %llu-byte header", path, (ull)n);
    int rc = pread_exact(f->fd, hdr, (size_t)n, 8, path, err);
    if (rc == 0) rc = parse_header(f, hdr, (size_t)n, err);
    free(hdr);
    return rc;
}

int st_open(StFile *f, const char *path, SeekErr *err) {
    memset(f, 0, sizeof *f);
    f->fd = -1;
    if (st_open_impl(f, path, err) != 0) {
        st_close(f);
        return -1;
    }
    return 0;
}

void st_close(StFile *f) {
    if (!f) return;
    for (size_t i = 0; i < f->n_tensors; i++) free(f->tensors[i].name);
    for (size_t i = 0; i < f->n_meta; i++) {
        free(f->meta_keys[i]);
        free(f->meta_values[i]);
    }
    free(f->tensors);
    free(f->meta_keys);
    free(f->meta_values);
    free(f->path);
    if (f->fd >= 0) close(f->fd);
    memset(f, 0, sizeof *f);
    f->fd = -1;
}

static int cmp_name_key(const void *key, const void *elem) {
    return strcmp((const char *)key, ((const StTensor *)elem)->name);
}

const StTensor *st_find(const StFile *f, const char *name) {
    if (f->n_tensors == 0) return NULL;
    return bsearch(name, f->tensors, f->n_tensors, sizeof *f->tensors, cmp_name_key);
}

const char *st_meta(const StFile *f, const char *key) {
    for (size_t i = 0; i < f->n_meta; i++)
        if (strcmp(f->meta_keys[i], key) == 0) return f->meta_values[i];
    return NULL;
}

int st_read_raw(const StFile *f, const StTensor *t, void *dst, SeekErr *err) {
    char where[SEEK_ERR_LEN];
    snprintf(where, sizeof where, "%s: tensor '%s'", f->path, t->name);
    if (pread_exact(f->fd, dst, (size_t)(t->end - t->begin), f->data_start + t->begin, where, err) != 0)
        return -1;
    return 0;
}

/* Decodes n little-endian elements of dtype d from src into dst. */
static void convert_to_f32(float *dst, const unsigned char *src, size_t n, StDtype d) {
    switch (d) {
    case ST_F32:
        for (size_t i = 0; i < n; i++) {
            uint32_t u = le32(src + 4 * i);
            memcpy(&dst[i], &u, 4);
        }
        break;
    case ST_F64:
        /* double -> float rounds to nearest; out-of-range values become +-inf (IEC 60559) */
        for (size_t i = 0; i < n; i++) {
            uint64_t u = le64(src + 8 * i);
            double x;
            memcpy(&x, &u, 8);
            dst[i] = (float)x;
        }
        break;
    case ST_F16: for (size_t i = 0; i < n; i++) dst[i] = f16_to_f32(le16(src + 2 * i)); break;
    case ST_BF16: for (size_t i = 0; i < n; i++) dst[i] = bf16_to_f32(le16(src + 2 * i)); break;
    case ST_F8_E4M3: for (size_t i = 0; i < n; i++) dst[i] = e4m3_to_f32(src[i]); break;
    case ST_F8_E5M2: for (size_t i = 0; i < n; i++) dst[i] = e5m2_to_f32(src[i]); break;
    default: break; /* rejected by st_read_f32 */
    }
}

int st_read_f32(const StFile *f, const StTensor *t, float *dst, SeekErr *err) {
    switch (t->dtype) {
    case ST_F32: case ST_F64: case ST_F16: case ST_BF16: case ST_F8_E4M3: case ST_F8_E5M2: break;
    default:
        seek_fail(err, "%s: tensor '%s': dtype %s does not convert to F32 (expected a float dtype; read integers with st_read_raw)",
                  f->path, t->name, st_dtype_name(t->dtype));
        return -1;
    }
    size_t es = st_dtype_size(t->dtype);
    size_t bytes = (size_t)(t->end - t->begin);
    if (bytes == 0) return 0;
    size_t cap = bytes < ST_CHUNK ? bytes : ST_CHUNK;
    unsigned char *buf = malloc(cap);
    if (!buf) {
        seek_fail(err, "%s: tensor '%s': out of memory for a %zu-byte read buffer", f->path, t->name, cap);
        return -1;
    }
    char where[SEEK_ERR_LEN];
    snprintf(where, sizeof where, "%s: tensor '%s'", f->path, t->name);
    for (size_t done = 0; done < bytes;) {
        size_t k = bytes - done < cap ? bytes - done : cap;
        if (pread_exact(f->fd, buf, k, f->data_start + t->begin + done, where, err) != 0) {
            free(buf);
            return -1;
        }
        convert_to_f32(dst + done / es, buf, k / es, t->dtype);
        done += k;
    }
    free(buf);
    return 0;
}

/* ---- model folders ---- */

void stset_close(StSet *s) {
    if (!s) return;
    for (size_t i = 0; i < s->n_files; i++) st_close(&s->files[i]);
    free(s->files);
    free(s->entries);
    free(s->dir);
    memset(s, 0, sizeof *s);
}

static int cmp_entry(const void *pa, const void *pb) {
    const struct StEntry *a = pa, *b = pb;
    int c = strcmp(a->t->name, b->t->name);
    if (c != 0) return c;
    return a->file < b->file ? -1 : a->file > b->file;
}

static int cmp_entry_key(const void *key, const void *elem) {
    return strcmp((const char *)key, ((const struct StEntry *)elem)->t->name);
}

/* Every tensor of every file, sorted by name; a name in two files is an error. */
static int build_entries(StSet *s, SeekErr *err) {
    size_t n = 0;
    for (size_t i = 0; i < s->n_files; i++) n += s->files[i].n_tensors;
    s->entries = malloc((n ? n : 1) * sizeof *s->entries);
    if (!s->entries) return seek_fail(err, "%s: out of memory for %zu tensor entries", s->dir, n);
    for (size_t i = 0; i < s->n_files; i++)
        for (size_t j = 0; j < s->files[i].n_tensors; j++)
            s->entries[s->n_entries++] = (struct StEntry){&s->files[i].tensors[j], i};
    if (n > 0) qsort(s->entries, n, sizeof *s->entries, cmp_entry);
    for (size_t i = 1; i < n; i++)
        if (strcmp(s->entries[i - 1].t->name, s->entries[i].t->name) == 0)
            return seek_fail(err, "%s: tensor '%s' is in two shards, %s and %s; expected exactly one",
                             s->dir, s->entries[i].t->name, s->files[s->entries[i - 1].file].path,
                             s->files[s->entries[i].file].path);
    return 0;
}

const StTensor *stset_find(const StSet *s, const char *name, const StFile **file) {
    const struct StEntry *e = NULL;
    if (s->n_entries > 0) e = bsearch(name, s->entries, s->n_entries, sizeof *s->entries, cmp_entry_key);
    if (file) *file = e ? &s->files[e->file] : NULL;
    return e ? e->t : NULL;
}

/* Allocates s->files for n files, each closed (fd -1), so stset_close is safe at any point. */
static int alloc_files(StSet *s, size_t n, SeekErr *err) {
    s->files = calloc(n ? n : 1, sizeof *s->files);
    if (!s->files) return seek_fail(err, "%s: out of memory for %zu shards", s->dir, n);
    for (size_t i = 0; i < n; i++) s->files[i].fd = -1;
    s->n_files = n;
    return 0;
}

int stset_open_file(StSet *s, const char *path, SeekErr *err) {
    memset(s, 0, sizeof *s);
    /* dir: the folder part of the path, for messages */
    const char *slash = strrchr(path, '/');
    if (!slash) s->dir = strdup(".");
    else if (slash == path) s->dir = strdup("/");
    else s->dir = strndup(path, (size_t)(slash - path));
    int rc = s->dir ? 0 : seek_fail(err, "%s: out of memory", path);
    if (rc == 0) rc = alloc_files(s, 1, err);
    if (rc == 0) rc = st_open(&s->files[0], path, err);
    if (rc == 0) rc = build_entries(s, err);
    if (rc != 0) {
        stset_close(s);
        return -1;
    }
    return 0;
}

/* A shard name must be a plain file name: not empty, not absolute, no '/', not "." or "..". */
static int check_shard_name(const char *index, const char *tensor, const char *shard, SeekErr *err) {
    const char *why = NULL;
    if (shard[0] == '\0') why = "empty";
    else if (shard[0] == '/') why = "an absolute path";
    else if (strcmp(shard, ".") == 0 || strcmp(shard, "..") == 0 || strncmp(shard, "../", 3) == 0)
        why = "a path out of the folder";
    else if (strchr(shard, '/')) why = "a path with '/'";
    if (why)
        return seek_fail(err, "%s: weight_map '%s': shard '%s' is %s; expected a plain file name inside the model folder",
                         index, tensor, shard, why);
    return 0;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Is the resolved path rp inside the resolved folder rdir? */
static bool path_inside(const char *rdir, const char *rp) {
    size_t n = strlen(rdir);
    if (n == 1 && rdir[0] == '/') return rp[0] == '/' && rp[1] != '\0';
    return strncmp(rp, rdir, n) == 0 && rp[n] == '/';
}

/* The shards named by weight_map, checked then opened. `names` (borrowed from the JSON) gets
 * the distinct shard names, sorted, in the order of s->files. */
static int open_shards(StSet *s, const char *index, const json_t *wm, const char **names, SeekErr *err) {
    const char *dir = s->dir;
    const char *key;
    json_t *val;
    size_t nn = 0;

    /* pass 1: every value is a plain file name */
    json_object_foreach((json_t *)wm, key, val) {
        if (!json_is_string(val))
            return seek_fail(err, "%s: weight_map '%s': expected a shard file name (a string), got %s",
                             index, key, json_type_word(val));
        if (check_shard_name(index, key, json_string_value(val), err) != 0) return -1;
        names[nn++] = json_string_value(val);
    }
    if (nn > 0) qsort(names, nn, sizeof *names, cmp_str);
    size_t nu = 0;
    for (size_t i = 0; i < nn; i++)
        if (nu == 0 || strcmp(names[nu - 1], names[i]) != 0) names[nu++] = names[i];

    /* pass 2: every shard resolves (symlinks followed) to a file inside the folder; nothing
     * has been opened yet */
    char *rdir = realpath(dir, NULL);
    if (!rdir) return seek_fail(err, "%s: cannot resolve the model folder: %s", dir, strerror(errno));
    char p[ST_PATH_MAX];
    for (size_t i = 0; i < nu; i++) {
        if (path_join(p, sizeof p, dir, names[i], err) != 0) {
            free(rdir);
            return -1;
        }
        char *rp = realpath(p, NULL);
        if (!rp) {
            int e = errno;
            free(rdir);
            if (e == ENOENT)
                return seek_fail(err, "%s: shard '%s' named by weight_map does not exist (%s)", index, names[i], p);
            return seek_fail(err, "%s: cannot resolve shard '%s': %s", index, p, strerror(e));
        }
        bool inside = path_inside(rdir, rp);
        if (!inside)
            seek_fail(err, "%s: shard '%s' resolves to %s, outside the model folder %s", index, names[i], rp, rdir);
        free(rp);
        if (!inside) {
            free(rdir);
            return -1;
        }
    }
    free(rdir);

    /* pass 3: open each distinct shard once */
    if (alloc_files(s, nu, err) != 0) return -1;
    for (size_t i = 0; i < nu; i++) {
        if (path_join(p, sizeof p, dir, names[i], err) != 0) return -1;
        if (st_open(&s->files[i], p, err) != 0) return -1;
    }
    if (build_entries(s, err) != 0) return -1;

    /* pass 4: every tensor of the map is in the shard the map names */
    json_object_foreach((json_t *)wm, key, val) {
        const char *shard = json_string_value(val);
        const char **hit = bsearch(&shard, names, nu, sizeof *names, cmp_str);
        const StFile *want = &s->files[hit - names], *got;
        if (!stset_find(s, key, &got))
            return seek_fail(err, "%s: weight_map tensor '%s' not found in its shard %s", index, key, want->path);
        if (got != want)
            return seek_fail(err, "%s: weight_map puts tensor '%s' in %s, but it is in %s", index, key,
                             want->path, got->path);
    }
    return 0;
}

static int open_index(StSet *s, const char *index, SeekErr *err) {
    char *text = NULL;
    size_t len = 0;
    if (read_text_file(index, ST_MAX_INDEX, &text, &len, err) != 0) return -1;
    size_t bad = utf8_invalid_at((const unsigned char *)text, len);
    if (bad < len) {
        free(text);
        return seek_fail(err, "%s: not valid UTF-8 (byte %zu)", index, bad);
    }
    json_error_t je;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    free(text);
    if (!root && je.line > 0)
        return seek_fail(err, "%s: not valid JSON: %s (line %d, column %d)", index, je.text, je.line, je.column);
    if (!root) return seek_fail(err, "%s: not valid JSON: %s", index, je.text);
    int rc = -1;
    const char **names = NULL;
    const json_t *wm = json_object_get(root, "weight_map");
    if (!json_is_object(root)) {
        seek_fail(err, "%s: expected a JSON object, got %s", index, json_type_word(root));
    } else if (!json_is_object(wm)) {
        seek_fail(err, "%s: weight_map: expected an object of tensor name to shard file name, got %s",
                  index, wm ? json_type_word(wm) : "nothing");
    } else if (!(names = malloc((json_object_size(wm) ? json_object_size(wm) : 1) * sizeof *names))) {
        seek_fail(err, "%s: out of memory for weight_map", index);
    } else {
        rc = open_shards(s, index, wm, names, err);
    }
    free(names);
    json_decref(root);
    return rc;
}

static int stset_open_dir_impl(StSet *s, const char *dir, SeekErr *err) {
    s->dir = strdup(dir);
    if (!s->dir) return seek_fail(err, "%s: out of memory", dir);
    struct stat st;
    if (stat(dir, &st) != 0) return seek_fail(err, "%s: cannot open the model folder: %s", dir, strerror(errno));
    if (!S_ISDIR(st.st_mode)) return seek_fail(err, "%s: not a folder", dir);
    char p[ST_PATH_MAX];
    if (path_join(p, sizeof p, dir, "model.safetensors.index.json", err) != 0) return -1;
    if (stat(p, &st) == 0) return open_index(s, p, err);
    if (errno != ENOENT) return seek_fail(err, "%s: cannot stat: %s", p, strerror(errno));
    if (path_join(p, sizeof p, dir, "model.safetensors", err) != 0) return -1;
    if (stat(p, &st) != 0) {
        if (errno == ENOENT)
            return seek_fail(err, "%s: no model.safetensors.index.json or model.safetensors in this folder", dir);
        return seek_fail(err, "%s: cannot stat: %s", p, strerror(errno));
    }
    if (alloc_files(s, 1, err) != 0 || st_open(&s->files[0], p, err) != 0) return -1;
    return build_entries(s, err);
}

int stset_open_dir(StSet *s, const char *dir, SeekErr *err) {
    memset(s, 0, sizeof *s);
    if (stset_open_dir_impl(s, dir, err) != 0) {
        stset_close(s);
        return -1;
    }
    return 0;
}

/* ---- loading with shape checks and FP8 block dequantisation ---- */

/* F8 weight W (rows, cols) with block scales S (ceil(rows/br), ceil(cols/bc)) (docs/model.md §11.2):
 *   W[r, c] = float(q[r, c]) * S[r / br, c / bc]
 * A weight of other rank counts as rows = shape[0] and cols = the product of the rest. */
static int load_fp8(const StSet *s, const StFile *f, const StTensor *t, float *dst, int block_r,
                    int block_c, SeekErr *err) {
    if (block_r <= 0 || block_c <= 0)
        return seek_fail(err, "%s: tensor '%s': dtype %s needs positive block sizes, got %d x %d",
                         f->path, t->name, st_dtype_name(t->dtype), block_r, block_c);
    size_t rows = t->ndim >= 1 ? (size_t)t->shape[0] : 1, cols = 1;
    for (int d = 1; d < t->ndim; d++) cols *= (size_t)t->shape[d];   /* <= numel: no overflow */
    size_t br = (size_t)block_r, bc = (size_t)block_c;
    size_t sr = rows / br + (rows % br != 0), sc = cols / bc + (cols % bc != 0);

    size_t nlen = strlen(t->name);
    char *sname = malloc(nlen + sizeof "_scale_inv");
    if (!sname) return seek_fail(err, "%s: tensor '%s': out of memory", f->path, t->name);
    memcpy(sname, t->name, nlen);
    memcpy(sname + nlen, "_scale_inv", sizeof "_scale_inv");
    const StFile *sf;
    const StTensor *st = stset_find(s, sname, &sf);
    int rc = -1;
    float *scale = NULL;
    if (!st) {
        seek_fail(err, "%s: tensor '%s' is %s but its block scale '%s' is missing", f->path, t->name,
                  st_dtype_name(t->dtype), sname);
        goto done;
    }
    if (st->dtype != ST_F32 && st->dtype != ST_BF16) {
        seek_fail(err, "%s: tensor '%s': dtype %s, expected F32 or BF16", sf->path, sname, st_dtype_name(st->dtype));
        goto done;
    }
    if (st->ndim != 2 || st->shape[0] != sr || st->shape[1] != sc) {
        char sh[256];
        seek_fail(err, "%s: tensor '%s': shape %s, expected [%zu, %zu] = ceil([%zu, %zu] / [%zu, %zu] blocks) for '%s'",
                  sf->path, sname, fmt_shape(sh, sizeof sh, st->shape, st->ndim), sr, sc, rows, cols, br, bc, t->name);
        goto done;
    }
    size_t ns = sr * sc;   /* <= rows * cols: no overflow */
    scale = malloc((ns ? ns : 1) * sizeof *scale);
    if (!scale) {
        seek_fail(err, "%s: tensor '%s': out of memory", sf->path, sname);
        goto done;
    }
    if (st_read_f32(sf, st, scale, err) != 0 || st_read_f32(f, t, dst, err) != 0) goto done;
    for (size_t r = 0; r < rows; r++) {
        const float *srow = scale + (r / br) * sc;
        float *w = dst + r * cols;
        for (size_t c = 0; c < cols; c++) w[c] *= srow[c / bc];
    }
    rc = 0;
done:
    free(scale);
    free(sname);
    return rc;
}

int stset_load_f32(const StSet *s, const char *name, float *dst, int ndim, const uint64_t *shape,
                   int block_r, int block_c, SeekErr *err) {
    const StFile *f;
    const StTensor *t = stset_find(s, name, &f);
    if (!t) {
        seek_fail(err, "%s: tensor '%s' not found", s->dir, name);
        return -1;
    }
    char have[256], want[256];
    if (ndim < 0 || ndim > ST_MAX_DIMS) {
        seek_fail(err, "%s: tensor '%s': asked for %d dimensions, expected 0 to %d", f->path, name, ndim, ST_MAX_DIMS);
        return -1;
    }
    bool same = t->ndim == ndim;
    for (int i = 0; same && i < ndim; i++) same = t->shape[i] == shape[i];
    if (!same) {
        seek_fail(err, "%s: tensor '%s': shape %s, expected %s from config", f->path, name,
                  fmt_shape(have, sizeof have, t->shape, t->ndim), fmt_shape(want, sizeof want, shape, ndim));
        return -1;
    }
    int rc;
    if (t->dtype == ST_F8_E4M3 || t->dtype == ST_F8_E5M2) rc = load_fp8(s, f, t, dst, block_r, block_c, err);
    else rc = st_read_f32(f, t, dst, err);
    return rc;
}

/* ---- the writer ---- */

/* {"dtype": .., "shape": [..], "data_offsets": [begin, end]} */
static json_t *tensor_entry(const StWriteTensor *w, uint64_t begin, uint64_t end) {
    json_t *o = json_object(), *shape = json_array(), *offs = json_array();
    bool ok = o && shape && offs;
    for (int i = 0; ok && i < w->ndim; i++) ok = json_array_append_new(shape, json_integer((json_int_t)w->shape[i])) == 0;
    ok = ok && json_array_append_new(offs, json_integer((json_int_t)begin)) == 0 &&
         json_array_append_new(offs, json_integer((json_int_t)end)) == 0;
    ok = ok && json_object_set_new(o, "dtype", json_string(st_dtype_name(w->dtype))) == 0;
    if (ok) {
        ok = json_object_set_new(o, "shape", shape) == 0;
        shape = NULL;
    }
    if (ok) {
        ok = json_object_set_new(o, "data_offsets", offs) == 0;
        offs = NULL;
    }
    json_decref(shape);
    json_decref(offs);
    if (!ok) {
        json_decref(o);
        return NULL;
    }
    return o;
}

static int st_write_impl(const char *path, const StWriteTensor *ts, size_t n, const char *const *meta_kv,
                         size_t n_meta, json_t *root, SeekErr *err) {
    /* __metadata__ first, then the tensors in the given order, back to back */
    if (n_meta > 0) {
        json_t *m = json_object();
        if (!m || json_object_set_new(root, "__metadata__", m) != 0)
            return seek_fail(err, "%s: out of memory building the header", path);
        for (size_t i = 0; i < n_meta; i++) {
            const char *k = meta_kv[2 * i], *v = meta_kv[2 * i + 1];
            if (!k || !v) return seek_fail(err, "%s: __metadata__ entry %zu: expected a key and a value, got NULL", path, i);
            if (json_object_get(m, k))
                return seek_fail(err, "%s: __metadata__ '%s' appears twice; expected unique keys", path, k);
            json_t *js = json_string(v);
            if (!js || json_object_set_new(m, k, js) != 0)
                return seek_fail(err, "%s: __metadata__ '%s': key and value must be valid UTF-8", path, k);
        }
    }
    size_t off = 0;
    for (size_t i = 0; i < n; i++) {
        const StWriteTensor *w = &ts[i];
        if (!w->name) return seek_fail(err, "%s: tensor %zu: expected a name, got NULL", path, i);
        if (strcmp(w->name, "__metadata__") == 0)
            return seek_fail(err, "%s: tensor %zu: the name '__metadata__' is reserved", path, i);
        if (json_object_get(root, w->name))
            return seek_fail(err, "%s: tensor '%s' appears twice; expected unique names", path, w->name);
        if ((unsigned)w->dtype >= ST_NUM_DTYPES)
            return seek_fail(err, "%s: tensor '%s': dtype %d is not one of " ST_DTYPE_LIST, path, w->name, (int)w->dtype);
        if (w->ndim < 0 || w->ndim > ST_MAX_DIMS)
            return seek_fail(err, "%s: tensor '%s': %d dimensions, expected 0 to %d", path, w->name, w->ndim, ST_MAX_DIMS);
        size_t numel = 1, bytes, end;
        for (int d = 0; d < w->ndim; d++) {
            if (w->shape[d] > (uint64_t)INT64_MAX || !ck_mul(numel, w->shape[d], &numel))
                return seek_fail(err, "%s: tensor '%s': shape overflows 64 bits at dimension %d", path, w->name, d);
        }
        if (!ck_mul(numel, st_dtype_size(w->dtype), &bytes) || !ck_add(off, bytes, &end) || end > (uint64_t)INT64_MAX)
            return seek_fail(err, "%s: tensor '%s': byte size overflows 64 bits", path, w->name);
        if (bytes > 0 && !w->data) return seek_fail(err, "%s: tensor '%s': data is NULL", path, w->name);
        json_t *e = tensor_entry(w, off, end);
        if (!e) return seek_fail(err, "%s: tensor '%s': out of memory building the header", path, w->name);
        if (json_object_set_new(root, w->name, e) != 0)
            return seek_fail(err, "%s: tensor '%s': the name must be valid UTF-8", path, w->name);
        off = end;
    }

    char *hdr = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (!hdr) return seek_fail(err, "%s: out of memory serialising the header", path);
    /* pad with spaces so the data buffer starts at a multiple of 8 */
    size_t hl = strlen(hdr), pad = (8 - (8 + hl) % 8) % 8, hn = hl + pad, total;
    if (!ck_add(8 + hn, off, &total)) {
        free(hdr);
        return seek_fail(err, "%s: file size overflows 64 bits", path);
    }
    unsigned char *file = malloc(total);
    if (!file) {
        free(hdr);
        return seek_fail(err, "%s: out of memory for a %zu-byte file", path, total);
    }
    put_le64(file, hn);
    memcpy(file + 8, hdr, hl);
    memset(file + 8 + hl, ' ', pad);
    free(hdr);
    unsigned char *p = file + 8 + hn;
    for (size_t i = 0; i < n; i++) {
        size_t bytes = 1;   /* the same products as checked above, in the same order */
        for (int d = 0; d < ts[i].ndim; d++) bytes *= (size_t)ts[i].shape[d];
        bytes *= st_dtype_size(ts[i].dtype);
        if (bytes > 0) memcpy(p, ts[i].data, bytes);
        p += bytes;
    }
    int rc = write_file_atomic(path, file, total, err);
    free(file);
    return rc;
}

int st_write(const char *path, const StWriteTensor *ts, size_t n, const char *const *meta_kv, size_t n_meta,
             SeekErr *err) {
    json_t *root = json_object();
    if (!root) {
        seek_fail(err, "%s: out of memory building the header", path);
        return -1;
    }
    int rc = st_write_impl(path, ts, n, meta_kv, n_meta, root, err);
    json_decref(root);
    return rc;
}
