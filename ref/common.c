/* common.c: errors, checked I/O, strict number parsing, float formats and the RNG.
 * See common.h for the policies. */
#define _GNU_SOURCE
#include "common.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* An error is one printable line, whatever a file put into the names and values it quotes: control
 * bytes (a newline, ESC, DEL) become \xNN. Cut at the buffer's end, never inside an escape. */
static void escape_controls(char *msg, size_t cap) {
    size_t n = strnlen(msg, cap), i = 0;
    while (i < n && (unsigned char)msg[i] >= 0x20 && msg[i] != 0x7f) i++;
    if (i == n) return;
    char out[SEEK_ERR_LEN];
    size_t o = 0;
    for (size_t k = 0; k < n && o + 1 < sizeof out; k++) {
        unsigned char ch = (unsigned char)msg[k];
        if (ch >= 0x20 && ch != 0x7f) out[o++] = (char)ch;
        else if (o + 5 < sizeof out) o += (size_t)snprintf(out + o, sizeof out - o, "\\x%02x", ch);
        else break;
    }
    out[o] = '\0';
    snprintf(msg, cap, "%s", out);
}

int seek_fail(SeekErr *err, const char *fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
        escape_controls(err->msg, sizeof err->msg);
    }
    return -1;
}

int seek_fail_prefix(SeekErr *err, const char *fmt, ...) {
    if (err) {
        char prefix[SEEK_ERR_LEN], old[SEEK_ERR_LEN];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(prefix, sizeof prefix, fmt, ap);
        va_end(ap);
        memcpy(old, err->msg, sizeof old);
        snprintf(err->msg, sizeof err->msg, "%.200s: %.300s", prefix, old);
        escape_controls(err->msg, sizeof err->msg);
    }
    return -1;
}

void seek_die(const char *file, int line, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "seek: fatal (%s:%d): ", file, line);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

void *xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) SEEK_DIE("out of memory allocating %zu bytes", n);
    return p;
}

void *xcalloc(size_t count, size_t size) {
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (!p) SEEK_DIE("out of memory allocating %zu x %zu bytes", count, size);
    return p;
}

char *xstrdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *p = xmalloc(n);
    memcpy(p, s, n);
    return p;
}

int pread_exact(int fd, void *buf, size_t n, uint64_t offset, const char *path, SeekErr *err) {
    unsigned char *p = buf;
    size_t done = 0;
    while (done < n) {
        ssize_t r = pread(fd, p + done, n - done, (off_t)(offset + done));
        if (r < 0) {
            if (errno == EINTR) continue;
            return seek_fail(err, "%s: read failed at byte %llu: %s", path,
                             (unsigned long long)(offset + done), strerror(errno));
        }
        if (r == 0)
            return seek_fail(err, "%s: file ends at byte %llu, expected %zu more bytes (truncated?)",
                             path, (unsigned long long)(offset + done), n - done);
        done += (size_t)r;
    }
    return 0;
}

int read_text_file(const char *path, size_t max_bytes, char **out, size_t *out_len, SeekErr *err) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return seek_fail(err, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        close(fd);
        return seek_fail(err, "%s: cannot stat: %s", path, strerror(errno));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return seek_fail(err, "%s: not a regular file", path);
    }
    if ((uint64_t)st.st_size > max_bytes) {
        close(fd);
        return seek_fail(err, "%s: file is %lld bytes, more than the %zu allowed", path,
                         (long long)st.st_size, max_bytes);
    }
    size_t n = (size_t)st.st_size;
    char *buf = malloc(n + 1);
    if (!buf) {
        close(fd);
        return seek_fail(err, "%s: out of memory for %zu bytes", path, n);
    }
    if (pread_exact(fd, buf, n, 0, path, err) != 0) {
        free(buf);
        close(fd);
        return -1;
    }
    close(fd);
    buf[n] = '\0';
    *out = buf;
    if (out_len) *out_len = n;
    return 0;
}

/* write(2) until done, through EINTR and short writes */
static int write_all(int fd, const void *data, size_t n) {
    const unsigned char *p = data;
    size_t done = 0;
    while (done < n) {
        ssize_t w = write(fd, p + done, n - done);
        if (w < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        done += (size_t)w;
    }
    return 0;
}

/* What is at `path` decides how it is written:
 *   - nothing, or a regular file (through any symlinks): a temporary beside the file it names,
 *     written, fsynced and renamed over it; the old file stays whole until the rename, and a
 *     failure removes only the temporary. The temporary's name is new (O_EXCL), so no other
 *     file is ever truncated.
 *   - a device, FIFO or socket (/dev/null, /dev/stdout, a pipe): written in place, every error
 *     reported; it is never replaced by a regular file.
 *   - a folder: refused. */
int write_file_atomic(const char *path, const void *data, size_t n, SeekErr *err) {
    struct stat st;
    char target[4096];
    if (stat(path, &st) == 0) {
        if (S_ISDIR(st.st_mode)) return seek_fail(err, "%s: is a folder, not a file: refusing to write over it", path);
        if (!S_ISREG(st.st_mode)) {
            int fd = open(path, O_WRONLY | O_CLOEXEC | O_NOCTTY);
            if (fd < 0) return seek_fail(err, "%s: cannot open for writing: %s", path, strerror(errno));
            if (write_all(fd, data, n) != 0) {
                int e = errno;
                close(fd);
                return seek_fail(err, "%s: write failed: %s", path, strerror(e));
            }
            if (close(fd) != 0) return seek_fail(err, "%s: write failed: %s", path, strerror(errno));
            return 0;
        }
        /* a symlink to a regular file: replace the file it names, keep the link */
        if (!realpath(path, target)) return seek_fail(err, "%s: cannot resolve: %s", path, strerror(errno));
    } else if (errno != ENOENT) {
        return seek_fail(err, "%s: cannot write: %s", path, strerror(errno));
    } else if ((size_t)snprintf(target, sizeof target, "%s", path) >= sizeof target) {
        return seek_fail(err, "%s: path too long", path);
    }
    char tmp[4096 + 64];
    int fd = -1;
    for (unsigned k = 0; fd < 0 && k < 100; k++) {
        if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp-%ld-%u", target, (long)getpid(), k) >= sizeof tmp)
            return seek_fail(err, "%s: path too long", path);
        fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        if (fd < 0 && errno != EEXIST) return seek_fail(err, "%s: cannot create: %s", path, strerror(errno));
    }
    if (fd < 0) return seek_fail(err, "%s: cannot create a temporary beside it (100 names taken)", path);
    if (write_all(fd, data, n) != 0) {
        int e = errno;
        close(fd);
        unlink(tmp);
        return seek_fail(err, "%s: write failed: %s (the file was left as it was)", path, strerror(e));
    }
    if (fsync(fd) != 0 || close(fd) != 0) {
        int e = errno;
        unlink(tmp);
        return seek_fail(err, "%s: flush failed: %s (the file was left as it was)", path, strerror(e));
    }
    if (rename(tmp, target) != 0) {
        int e = errno;
        unlink(tmp);
        return seek_fail(err, "%s: cannot rename into place: %s", path, strerror(e));
    }
    return 0;
}

int path_join(char *out, size_t cap, const char *dir, const char *name, SeekErr *err) {
    int n = snprintf(out, cap, "%s/%s", dir, name);
    if (n < 0 || (size_t)n >= cap) return seek_fail(err, "%s/%s: path too long", dir, name);
    return 0;
}

int parse_i64(const char *s, long long lo, long long hi, long long *out, const char *what, SeekErr *err) {
    if (!s || !*s) return seek_fail(err, "%s: expected an integer, got an empty string", what);
    errno = 0;
    char *end = NULL;
    long long v = strtoll(s, &end, 10);
    if (end == s || *end != '\0')
        return seek_fail(err, "%s: '%s' is not an integer", what, s);
    if (errno == ERANGE || v < lo || v > hi)
        return seek_fail(err, "%s: %s is out of range [%lld, %lld]", what, s, lo, hi);
    *out = v;
    return 0;
}

int parse_f64(const char *s, double lo, double hi, double *out, const char *what, SeekErr *err) {
    if (!s || !*s) return seek_fail(err, "%s: expected a number, got an empty string", what);
    errno = 0;
    char *end = NULL;
    double v = strtod(s, &end);
    if (end == s || *end != '\0') return seek_fail(err, "%s: '%s' is not a number", what, s);
    if (errno == ERANGE || !isfinite(v) || v < lo || v > hi)
        return seek_fail(err, "%s: %s is out of range [%g, %g]", what, s, lo, hi);
    *out = v;
    return 0;
}

/* ---- float formats ---- */

static float u32_as_f32(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }
static uint32_t f32_as_u32(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }

float bf16_to_f32(uint16_t h) { return u32_as_f32((uint32_t)h << 16); }

uint16_t f32_to_bf16(float f) {
    uint32_t u = f32_as_u32(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40); /* quiet NaN */
    uint32_t rounding = 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)((u + rounding) >> 16);
}

float f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t man = h & 0x3ffu;
    if (exp == 0) {
        /* zero or subnormal: value = man * 2^-24 */
        float v = (float)man * 5.9604644775390625e-08f;
        return sign ? -v : v;
    }
    if (exp == 31) return u32_as_f32(sign | 0x7f800000u | (man << 13));
    return u32_as_f32(sign | ((exp + 112u) << 23) | (man << 13));
}

uint16_t f32_to_f16(float f) {
    uint32_t u = f32_as_u32(f);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
    uint32_t au = u & 0x7fffffffu;
    if (au > 0x7f800000u) return (uint16_t)(sign | 0x7e00u);
    if (au >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u); /* rounds to >= 65520: inf */
    if (au < 0x38800000u) {
        /* subnormal f16 (or zero): round(|f| / 2^-24) to nearest even */
        float a = u32_as_f32(au);
        float q = a * 16777216.0f;                 /* exact scaling by 2^24 */
        float r = nearbyintf(q);                   /* default rounding mode: ties to even */
        return (uint16_t)(sign | (uint16_t)r);
    }
    uint32_t exp = (au >> 23) - 112u;
    uint32_t man = au & 0x7fffffu;
    uint32_t half = (exp << 10) | (man >> 13);
    uint32_t rest = man & 0x1fffu;
    if (rest > 0x1000u || (rest == 0x1000u && (half & 1u))) half++;
    return (uint16_t)(sign | half);
}

float e4m3_to_f32(uint8_t b) {
    uint32_t sign = (b & 0x80u) ? 1u : 0u;
    uint32_t exp = (b >> 3) & 0xfu;
    uint32_t man = b & 0x7u;
    float v;
    if (exp == 15 && man == 7) return NAN;
    if (exp == 0) v = (float)man * 0.001953125f;   /* subnormal: man/8 * 2^-6 */
    else v = ldexpf(1.0f + (float)man / 8.0f, (int)exp - 7);
    return sign ? -v : v;
}

uint8_t f32_to_e4m3(float f) {
    if (isnan(f)) return 0x7f;
    uint8_t sign = signbit(f) ? 0x80 : 0;
    float a = fabsf(f);
    if (a >= 448.0f) return (uint8_t)(sign | 0x7e);      /* saturate to the largest finite */
    /* search the 127 non-negative finite codes for the nearest, ties to even code */
    uint8_t best = 0;
    float bestd = INFINITY;
    for (uint8_t c = 0; c <= 0x7e; c++) {
        float d = fabsf(e4m3_to_f32(c) - a);
        if (d < bestd || (d == bestd && (c & 1u) == 0)) { bestd = d; best = c; }
    }
    return (uint8_t)(sign | best);
}

/* ---- RNG ---- */

uint64_t mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void rng_seed(Rng *r, uint64_t seed) {
    /* splitmix64 of the seed, so nearby seeds give unrelated streams; never zero */
    uint64_t z = mix64(seed + 0x9e3779b97f4a7c15ull);
    r->state = z ? z : 0x2545f4914f6cdd1dull;
}

uint32_t rng_u32(Rng *r) {
    r->state ^= r->state >> 12;
    r->state ^= r->state << 25;
    r->state ^= r->state >> 27;
    return (uint32_t)((r->state * 0x2545f4914f6cdd1dull) >> 32);
}

float rng_uniform(Rng *r) { return (float)(rng_u32(r) >> 8) / 16777216.0f; }

float rng_normal(Rng *r) {
    float u1 = rng_uniform(r), u2 = rng_uniform(r);
    if (u1 < 1e-12f) u1 = 1e-12f;
    return sqrtf(-2.0f * logf(u1)) * cosf(6.2831853071795864f * u2);
}

int copy_file_atomic(const char *src, const char *dst, SeekErr *err) {
    char *text = NULL;
    size_t len = 0;
    if (read_text_file(src, 256u << 20, &text, &len, err)) return -1;
    int rc = write_file_atomic(dst, text, len, err);
    free(text);
    return rc;
}

const char *arg_for_message(char out[48], const char *arg) {
    size_t i = 0;
    for (; arg && arg[i] && i < 40; i++) out[i] = (unsigned char)arg[i] < 0x20 || arg[i] == 0x7f ? '?' : arg[i];
    if (arg && arg[i]) memcpy(out + i, "...", 4);
    else out[i] = '\0';
    return out;
}
