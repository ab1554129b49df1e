/* common.h: the small shared vocabulary of seek.c.
 *
 * Error handling in two tiers (docs/conventions.md):
 *   - library tier (everything the REPL can call): functions return 0 on success and -1 on
 *     failure, having written a one-line reason into a SeekErr. The reason names the file, the
 *     field or the value, and what was expected. Nothing is printed and nothing exits.
 *   - program tier (the `seek` command line, tests): *_check helpers print file:line and exit.
 * Checked size arithmetic for every count, length or offset that comes from a file.
 * Files are read with pread() after an fstat() size check, never mmapped, so a file that shrinks
 * under us gives an error and not a SIGBUS.
 */
#ifndef SEEK_COMMON_H
#define SEEK_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include <stdio.h>

#define SEEK_ERR_LEN 512

typedef struct {
    char msg[SEEK_ERR_LEN];
} SeekErr;

/* Which implementation runs the heavy ops (backend.h): the reference itself, the fast CPU twins
 * (fast/cpu/) or CUDA (fast/cuda/). The orchestration in ref/ carries it in its run state. */
typedef enum { BACKEND_REF, BACKEND_CPU, BACKEND_CUDA, BACKEND_CUDA_FAST } Backend;

/* Writes a printf-style reason into err (if err is not NULL) and returns -1, so that library
 * code can say `return seek_fail(err, "%s: field '%s': expected ...", path, key);`. The reason is
 * one printable line whatever it quotes: control bytes (newline, ESC, DEL) become \xNN. */
int seek_fail(SeekErr *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Prefixes an existing reason: "prefix: old reason". Returns -1. */
int seek_fail_prefix(SeekErr *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Checked size_t arithmetic: return false on overflow (and leave *out untouched). */
static inline bool ck_mul(size_t a, size_t b, size_t *out) { return !__builtin_mul_overflow(a, b, out); }
static inline bool ck_add(size_t a, size_t b, size_t *out) { return !__builtin_add_overflow(a, b, out); }

/* Program tier: allocation that cannot fail silently (prints and exits on failure). */
void *xmalloc(size_t n);
void *xcalloc(size_t count, size_t size);
char *xstrdup(const char *s);
#define SEEK_DIE(...) seek_die(__FILE__, __LINE__, __VA_ARGS__)
void seek_die(const char *file, int line, const char *fmt, ...) __attribute__((format(printf, 3, 4), noreturn));

/* Library tier file reading. */
/* Reads a whole small text file (at most max_bytes) into a NUL-terminated malloc'd buffer. */
int read_text_file(const char *path, size_t max_bytes, char **out, size_t *out_len, SeekErr *err);
/* Reads exactly n bytes at offset from fd, looping over short reads; EOF is an error. */
int pread_exact(int fd, void *buf, size_t n, uint64_t offset, const char *path, SeekErr *err);
/* Writes a whole buffer to path. A regular file (or none) is replaced atomically: a new temporary
 * beside it, fsync, rename; a failure leaves the old file whole. A device or FIFO (/dev/null, a
 * pipe) is written in place with every error reported, never replaced; a folder is refused. */
int write_file_atomic(const char *path, const void *data, size_t n, SeekErr *err);
/* Copies a small file (at most 256 MiB) to dst atomically (read_text_file, write_file_atomic). */
int copy_file_atomic(const char *src, const char *dst, SeekErr *err);

/* Joins dir and name with a '/' into out (of size cap). Returns -1 if it does not fit. */
int path_join(char *out, size_t cap, const char *dir, const char *name, SeekErr *err);

/* Number parsing for command lines: the whole string must be a number in range. */
int parse_i64(const char *s, long long lo, long long hi, long long *out, const char *what, SeekErr *err);
/* A command-line argument for a one-line message: at most 40 bytes, then "..."; control bytes and
 * DEL as '?' (UTF-8 kept). arg NULL gives "". Returns out. */
const char *arg_for_message(char out[48], const char *arg);
int parse_f64(const char *s, double lo, double hi, double *out, const char *what, SeekErr *err);

/* Float conversions used by the file formats (exact, no rounding surprises). */
float bf16_to_f32(uint16_t h);
uint16_t f32_to_bf16(float f);           /* round to nearest even; NaN stays NaN */
float f16_to_f32(uint16_t h);
uint16_t f32_to_f16(float f);            /* round to nearest even */
float e4m3_to_f32(uint8_t b);            /* float8_e4m3fn: no infinities, 0x7f/0xff are NaN */
uint8_t f32_to_e4m3(float f);            /* round to nearest even, saturating at +-448 */

/* One seeded RNG for init, sampling and rollouts: xorshift64* (state must be non-zero). */
typedef struct { uint64_t state; } Rng;
/* splitmix64's finalizer: a 64-bit mix where every input bit affects every output bit (rng_seed,
 * the task split, seeds derived from several numbers). */
uint64_t mix64(uint64_t z);
void rng_seed(Rng *r, uint64_t seed);
uint32_t rng_u32(Rng *r);
float rng_uniform(Rng *r);               /* [0, 1) with 24 bits */
float rng_normal(Rng *r);                /* Box-Muller */

#endif
