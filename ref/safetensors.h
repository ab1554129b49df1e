/* safetensors.h: a strict reader and a writer for Hugging Face safetensors files, and model
 * folders that are either one `model.safetensors` or shards listed in
 * `model.safetensors.index.json`.
 *
 * Format: 8-byte little-endian header length N, then N bytes of UTF-8 JSON
 *   {"__metadata__": {str: str}, "<name>": {"dtype": "F32", "shape": [..], "data_offsets": [b, e]}, ...}
 * then the data buffer. Offsets are relative to the buffer start (8 + N).
 *
 * The reader is strict (docs/conventions.md, shared reliability rows 1-8 and 11):
 *   - N is checked against ST_MAX_HEADER and the file size before anything is allocated;
 *   - the header must be valid UTF-8 JSON (jansson, duplicate keys rejected), an object whose
 *     `__metadata__` (if present) maps strings to strings; whitespace padding is accepted;
 *   - every dtype is known, every shape entry a non-negative integer, bytes = prod(shape) * size
 *     computed with checked arithmetic, and end - begin == bytes;
 *   - the byte ranges tile the data buffer exactly: sorted by begin they start at 0, each begins
 *     where the previous ends, and the last ends at the end of the file (no gaps, no overlaps,
 *     no trailing bytes);
 *   - data is read with pread into caller memory (memcpy semantics, so misaligned data is fine);
 *     nothing is mmapped, so a file that shrinks gives an error, not SIGBUS.
 * Every error is one line naming the file, the tensor or field, and what was expected.
 */
#ifndef SEEK_SAFETENSORS_H
#define SEEK_SAFETENSORS_H

#include "common.h"

#define ST_MAX_HEADER (100u * 1000u * 1000u) /* 100 MB, the Python package's own cap */
#define ST_MAX_DIMS 8

typedef enum {
    ST_BOOL, ST_U8, ST_I8, ST_I16, ST_U16, ST_I32, ST_U32, ST_I64, ST_U64,
    ST_F16, ST_BF16, ST_F32, ST_F64, ST_F8_E4M3, ST_F8_E5M2,
    ST_NUM_DTYPES
} StDtype;

const char *st_dtype_name(StDtype d);            /* "F32", ... */
size_t st_dtype_size(StDtype d);                 /* bytes per element */
int st_dtype_parse(const char *s, StDtype *out); /* 0 or -1 */

typedef struct {
    char *name;
    StDtype dtype;
    int ndim;
    uint64_t shape[ST_MAX_DIMS];
    uint64_t numel;
    uint64_t begin, end;                         /* relative to the data buffer */
} StTensor;

typedef struct {
    char *path;
    int fd;
    uint64_t file_size;
    uint64_t data_start;                         /* 8 + N */
    StTensor *tensors;                           /* sorted by name */
    size_t n_tensors;
    char **meta_keys, **meta_values;             /* __metadata__ */
    size_t n_meta;
} StFile;

int st_open(StFile *f, const char *path, SeekErr *err);
void st_close(StFile *f);
const StTensor *st_find(const StFile *f, const char *name);     /* NULL if absent */
const char *st_meta(const StFile *f, const char *key);          /* NULL if absent */
/* Raw bytes of one tensor (exactly t->end - t->begin bytes into dst). */
int st_read_raw(const StFile *f, const StTensor *t, void *dst, SeekErr *err);
/* Converts F32, F64, F16, BF16 (exact) and F8_E4M3/F8_E5M2 (unscaled) to float32. Integer
 * dtypes are rejected here; use st_read_raw. */
int st_read_f32(const StFile *f, const StTensor *t, float *dst, SeekErr *err);

/* A model folder: one file or a sharded set. Shard names in the index must be plain file
 * names inside the folder: "../x", "/abs", "a/b" and symlinks resolving outside the folder are
 * rejected before any shard is opened; a missing shard, a tensor the index names but its shard
 * lacks, and a tensor present in two shards are errors. */
typedef struct {
    char *dir;
    StFile *files;
    size_t n_files;
    /* every tensor of every file, sorted by name: (file index, tensor) */
    struct StEntry { const StTensor *t; size_t file; } *entries;
    size_t n_entries;
} StSet;

int stset_open_dir(StSet *s, const char *dir, SeekErr *err);
/* Opens a single file as a set (tests, goldens). */
int stset_open_file(StSet *s, const char *path, SeekErr *err);
void stset_close(StSet *s);
const StTensor *stset_find(const StSet *s, const char *name, const StFile **file);

/* Loads tensor `name` into dst as float32 after checking that its shape is exactly
 * shape[0..ndim). F8_E4M3 weights need their companion "<name>_scale_inv" (F32, shape
 * [ceil(rows/block_r), ceil(cols/block_c)] for a 2-D weight) and are dequantised block by block:
 * W[r,c] = float(q[r,c]) * scale_inv[r / block_r, c / block_c]. */
int stset_load_f32(const StSet *s, const char *name, float *dst, int ndim, const uint64_t *shape,
                   int block_r, int block_c, SeekErr *err);

/* Writer: the header is padded with spaces so the data buffer starts at an 8-byte aligned
 * offset; tensors are written in the given order, back to back. Written atomically. */
typedef struct {
    const char *name;
    StDtype dtype;
    int ndim;
    uint64_t shape[ST_MAX_DIMS];
    const void *data;                            /* prod(shape) * size bytes */
} StWriteTensor;

int st_write(const char *path, const StWriteTensor *ts, size_t n,
             const char *const *meta_kv, size_t n_meta, SeekErr *err); /* meta_kv: k0,v0,k1,v1.. */

#endif
