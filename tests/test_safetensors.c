/* test_safetensors.c: the strict safetensors reader, the writer and model folders
 * (ref/safetensors.c), against rows 1-6, 8 and 11 of the reliability checklist.
 *
 * Every fixture is built here, from C, in a mkdtemp() folder that the group teardown removes;
 * no binary fixture is committed. Tensor data is written from host arrays, so the tests assume
 * a little-endian host, as the format does. Error checks look at the message (one line, naming
 * the file and the tensor or field), not only at the return code.
 *
 * `open` is wrapped below (it records the path and forwards to the openat system call), so the
 * folder tests can assert that nothing outside the model folder is ever opened (row 8).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "rm_tree.h"
#include "safetensors.h"

/* ---- the open() wrapper: every path the library opens ---- */

#define MAX_OPENS 64
static int n_opens;
static char opened[MAX_OPENS][4096];

int open(const char *path, int flags, ...) {
    mode_t mode = 0;
    if (flags & O_CREAT) {
        va_list ap;
        va_start(ap, flags);
        mode = va_arg(ap, mode_t);
        va_end(ap);
    }
    if (n_opens < MAX_OPENS) snprintf(opened[n_opens], sizeof opened[0], "%s", path);
    n_opens++;
    return (int)syscall(SYS_openat, AT_FDCWD, path, flags, mode);
}

/* ---- fixtures ---- */

static char root[4096];  /* the mkdtemp folder */
static int counter;      /* unique file names */

/* printf into one of 16 rotating buffers (enough for the arguments of one call) */
static const char *fmt(const char *f, ...) {
    static char bufs[16][4096];
    static int k;
    char *b = bufs[k++ % 16];
    va_list ap;
    va_start(ap, f);
    vsnprintf(b, sizeof bufs[0], f, ap);
    va_end(ap);
    return b;
}

/* a fresh path in the temp folder */
static const char *fresh(const char *stem) { return fmt("%s/%s-%d.safetensors", root, stem, counter++); }

static void write_bytes(const char *path, const void *data, size_t n) {
    FILE *fp = fopen(path, "wb");
    if (!fp) fail_msg("cannot create %s: %s", path, strerror(errno));
    if (n && fwrite(data, 1, n, fp) != n) fail_msg("cannot write %s", path);
    if (fclose(fp) != 0) fail_msg("cannot close %s", path);
}

static void write_text(const char *path, const char *text) { write_bytes(path, text, strlen(text)); }

/* 8-byte little-endian N, then hl header bytes, then nd data bytes */
static void write_st_raw(const char *path, uint64_t n, const void *hdr, size_t hl, const void *data, size_t nd) {
    unsigned char *buf = malloc(8 + hl + nd);
    assert_non_null(buf);
    for (int i = 0; i < 8; i++) buf[i] = (unsigned char)(n >> (8 * i));
    if (hl) memcpy(buf + 8, hdr, hl);
    if (nd) memcpy(buf + 8 + hl, data, nd);
    write_bytes(path, buf, 8 + hl + nd);
    free(buf);
}

static void write_st(const char *path, const char *hdr, const void *data, size_t nd) {
    write_st_raw(path, strlen(hdr), hdr, strlen(hdr), data, nd);
}

static unsigned char *read_all(const char *path, size_t *n) {
    FILE *fp = fopen(path, "rb");
    if (!fp) fail_msg("cannot open %s", path);
    fseek(fp, 0, SEEK_END);
    long len = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    unsigned char *buf = malloc((size_t)len + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)len, fp), (size_t)len);
    fclose(fp);
    *n = (size_t)len;
    return buf;
}

static void must_write(const char *path, const StWriteTensor *ts, size_t n, const char *const *kv, size_t nm) {
    SeekErr e = {{0}};
    if (st_write(path, ts, n, kv, nm, &e) != 0) fail_msg("st_write %s: %s", path, e.msg);
}

static void must_open(StFile *f, const char *path) {
    SeekErr e = {{0}};
    if (st_open(f, path, &e) != 0) fail_msg("st_open %s: %s", path, e.msg);
}

/* The reason is one non-empty line and contains every word given (NULLs are skipped). */
static void check_msg(const SeekErr *e, const char *w1, const char *w2, const char *w3) {
    if (!e->msg[0]) fail_msg("empty error message");
    if (strchr(e->msg, '\n')) fail_msg("error is not one line: '%s'", e->msg);
    const char *w[3] = {w1, w2, w3};
    for (int i = 0; i < 3; i++)
        if (w[i] && !strstr(e->msg, w[i])) fail_msg("error '%s' does not mention '%s'", e->msg, w[i]);
}

/* st_open must fail with a one-line reason naming the file and the given words, and leave a
 * closed, zeroed struct. */
static void open_fails(const char *path, const char *w1, const char *w2) {
    StFile f;
    SeekErr e = {{0}};
    if (st_open(&f, path, &e) == 0) {
        st_close(&f);
        fail_msg("%s: opened, expected an error mentioning '%s'", path, w1 ? w1 : "");
    }
    check_msg(&e, path, w1, w2);
    assert_int_equal(f.fd, -1);
    assert_null(f.tensors);
    assert_null(f.path);
}

static void header_fails(const char *hdr, const void *data, size_t nd, const char *w1, const char *w2) {
    const char *p = fresh("hdr");
    write_st(p, hdr, data, nd);
    open_fails(p, w1, w2);
}

static void header_opens(const char *hdr, const void *data, size_t nd, StFile *f) {
    const char *p = fresh("hdr");
    write_st(p, hdr, data, nd);
    SeekErr e = {{0}};
    if (st_open(f, p, &e) != 0) fail_msg("header %s: expected it to open, got: %s", hdr, e.msg);
}

static const unsigned char zeros[64];

static void make_dir(const char *path) {
    if (mkdir(path, 0755) != 0) fail_msg("mkdir %s: %s", path, strerror(errno));
}

/* a shard of F32 [2] tensors, values {i + 1, -(i + 1)} */
static void write_f32_shard(const char *path, const char *const *names, size_t n) {
    StWriteTensor ts[8];
    float vals[8][2];
    assert_true(n <= 8);
    for (size_t i = 0; i < n; i++) {
        vals[i][0] = (float)i + 1;
        vals[i][1] = -((float)i + 1);
        ts[i] = (StWriteTensor){names[i], ST_F32, 1, {2}, vals[i]};
    }
    must_write(path, ts, n, NULL, 0);
}

/* Every path opened since n_opens was reset lies inside dir (symlinks resolved). */
static void check_opens_inside(const char *dir) {
    char *rdir = realpath(dir, NULL);
    assert_non_null(rdir);
    size_t n = strlen(rdir);
    for (int i = 0; i < n_opens && i < MAX_OPENS; i++) {
        char *rp = realpath(opened[i], NULL);
        bool inside;
        if (rp) inside = strncmp(rp, rdir, n) == 0 && rp[n] == '/';
        else inside = strncmp(opened[i], dir, strlen(dir)) == 0 && opened[i][strlen(dir)] == '/';
        if (!inside) fail_msg("opened %s (%s), outside %s", opened[i], rp ? rp : "unresolved", rdir);
        free(rp);
    }
    free(rdir);
}

static int group_setup(void **state) {
    const char *t = getenv("TMPDIR");
    snprintf(root, sizeof root, "%s/seek-st-XXXXXX", t && *t ? t : "/tmp");
    return mkdtemp(root) ? 0 : -1;
}

static int group_teardown(void **state) {
    rm_tree(root);
    return 0;
}

static uint32_t f32_bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }

/* exact float comparison: same bits, or both NaN */
static void assert_same_float(float got, float want, const char *what, size_t i) {
    if (isnan(want) && isnan(got)) return;
    if (f32_bits(got) != f32_bits(want))
        fail_msg("%s[%zu]: got %.9g (0x%08x), expected %.9g (0x%08x)", what, i, got, f32_bits(got), want, f32_bits(want));
}

/* ---- dtypes ---- */

static void test_dtype_names(void **state) {
    for (int d = 0; d < ST_NUM_DTYPES; d++) {
        StDtype back;
        assert_int_equal(st_dtype_parse(st_dtype_name((StDtype)d), &back), 0);
        assert_int_equal(back, d);
        assert_true(st_dtype_size((StDtype)d) >= 1);
    }
    assert_int_equal(st_dtype_size(ST_F32), 4);
    assert_int_equal(st_dtype_size(ST_BF16), 2);
    assert_int_equal(st_dtype_size(ST_F64), 8);
    assert_int_equal(st_dtype_size(ST_F8_E4M3), 1);
    assert_int_equal(st_dtype_size(ST_I64), 8);
    assert_int_equal(st_dtype_size(ST_BOOL), 1);
    StDtype d;
    const char *bad[] = {"f32", "F4", "", "F8_E8M0", "F32 ", "FLOAT"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) assert_int_equal(st_dtype_parse(bad[i], &d), -1);
    assert_int_equal(st_dtype_parse(NULL, &d), -1);
}

/* ---- row 1 and 2: the header length ---- */

static void test_files_shorter_than_8_bytes(void **state) {
    const unsigned char bytes[8] = {2, 0, 0, 0, 0, 0, 0, 0};
    for (size_t len = 0; len < 8; len++) {
        const char *p = fresh("short");
        write_bytes(p, bytes, len);
        open_fails(p, "header too small", NULL);
    }
}

static void test_header_length_out_of_range(void **state) {
    const char *p;
    /* N = 2^64 - 1 */
    write_st_raw(p = fresh("n"), UINT64_MAX, "{}", 2, NULL, 0);
    open_fails(p, "header length out of range", NULL);
    /* N = 2^63 */
    write_st_raw(p = fresh("n"), (uint64_t)1 << 63, "{}", 2, NULL, 0);
    open_fails(p, "header length out of range", NULL);
    /* N one byte past the end of the file */
    write_st_raw(p = fresh("n"), 3, "{}", 2, NULL, 0);
    open_fails(p, "header length out of range", NULL);
    /* N above the cap, and N exactly at the cap with a tiny file */
    write_st_raw(p = fresh("n"), (uint64_t)ST_MAX_HEADER + 1, "{}", 2, NULL, 0);
    open_fails(p, "header length out of range", "cap");
    write_st_raw(p = fresh("n"), ST_MAX_HEADER, "{}", 2, NULL, 0);
    open_fails(p, "header length out of range", "only 2 bytes");
    /* N = 0: an empty header is not JSON */
    write_st_raw(p = fresh("n"), 0, "", 0, NULL, 0);
    open_fails(p, "JSON", NULL);
    /* the control: N exactly the rest of the file */
    StFile f;
    write_st_raw(p = fresh("n"), 2, "{}", 2, NULL, 0);
    must_open(&f, p);
    assert_int_equal(f.n_tensors, 0);
    assert_int_equal(f.data_start, 10);
    st_close(&f);
    st_close(&f); /* closing twice is harmless */
}

/* Row 1: nothing bigger than the length is allocated before N is checked against the file
 * size. In a child with an address-space limit that makes a 100 MB malloc fail, a file that
 * claims a 100 MB header must still give the "out of range" error (not "out of memory").
 * Skipped under ASan, whose shadow memory needs a huge address space. */
static void test_no_large_allocation_before_checks(void **state) {
#if defined(__SANITIZE_ADDRESS__)
    skip();
#else
    const char *p = fresh("alloc");
    write_st_raw(p, ST_MAX_HEADER, "{}", 2, NULL, 0);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        long pages = 0;
        FILE *fp = fopen("/proc/self/statm", "r");
        if (!fp || fscanf(fp, "%ld", &pages) != 1) _exit(3);
        fclose(fp);
        struct rlimit rl;
        getrlimit(RLIMIT_AS, &rl);
        rl.rlim_cur = (rlim_t)pages * (rlim_t)sysconf(_SC_PAGESIZE) + ((rlim_t)48 << 20);
        if (setrlimit(RLIMIT_AS, &rl) != 0) _exit(3);
        static void *volatile alloc_probe;   /* volatile, so the probe malloc is not optimised away */
        alloc_probe = malloc(ST_MAX_HEADER);
        if (alloc_probe) _exit(2); /* the limit does not bite: the test would prove nothing */
        StFile f;
        SeekErr e = {{0}};
        int rc = st_open(&f, p, &e);
        _exit(rc != 0 && strstr(e.msg, "header length out of range") ? 0 : 1);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    if (WEXITSTATUS(status) != 0)
        fail_msg("child exited %d (1: wrong error or allocation before the check, 2: limit ineffective, 3: setup)",
                 WEXITSTATUS(status));
#endif
}

/* ---- row 3: the header JSON ---- */

static void test_header_not_utf8(void **state) {
    const char *bad[] = {
        "\xff", "\xfe", "\x80", "\xc0\xaf", "\xc1\xbf", "\xe0\x80\xaf", "\xed\xa0\x80", "\xed\xbf\xbf",
        "\xf0\x8f\xbf\xbf", "\xf4\x90\x80\x80", "\xf5\x80\x80\x80", "\xe2\x82", "\xc3",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char hdr[256];
        snprintf(hdr, sizeof hdr, "{\"w%s\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[0,2]}}", bad[i]);
        header_fails(hdr, zeros, 2, "UTF-8", NULL);
        snprintf(hdr, sizeof hdr, "{\"__metadata__\":{\"k\":\"v%s\"}}", bad[i]);
        header_fails(hdr, NULL, 0, "UTF-8", NULL);
    }
    /* valid multi-byte names open and can be found */
    const char *good[] = {"\xc3\xa9", "\xe6\x97\xa5\xe6\x9c\xac", "\xf0\x9f\x98\x80", "\xf4\x8f\xbf\xbf", "\xef\xbf\xbd"};
    for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
        char hdr[256], name[32];
        snprintf(name, sizeof name, "w%s", good[i]);
        snprintf(hdr, sizeof hdr, "{\"%s\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[0,2]}}", name);
        StFile f;
        header_opens(hdr, zeros, 2, &f);
        assert_non_null(st_find(&f, name));
        st_close(&f);
    }
}

static void test_header_invalid_json(void **state) {
    const char *bad[] = {
        "{", "}", "{]", "[]", "null", "\"x\"", "42", "{\"a\":}", "{'a':1}", "{}}", "{} x", "{}{}",
        "{\"a\" 1}", "{,}", "{}\v", "\f{}", "\xef\xbb\xbf{}", "{\"a\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[0,0]},}",
        "{\"a\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[0,0]}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) header_fails(bad[i], NULL, 0, "JSON", NULL);
    /* NUL bytes before, after and inside the JSON */
    const char *p;
    write_st_raw(p = fresh("nul"), 3, "{}\0", 3, NULL, 0);
    open_fails(p, "JSON", NULL);
    write_st_raw(p = fresh("nul"), 3, "\0{}", 3, NULL, 0);
    open_fails(p, "JSON", NULL);
    static const char in_string[] = "{\"__metadata__\":{\"k\":\"a\0b\"}}";
    write_st_raw(p = fresh("nul"), sizeof in_string - 1, in_string, sizeof in_string - 1, NULL, 0);
    open_fails(p, "JSON", NULL);
    /* nesting 100,000 deep: rejected with bounded stack (arrays and objects) */
    size_t deep = 100000;
    char *h = malloc(5 * deep + 1);
    assert_non_null(h);
    memset(h, '[', deep);
    write_st_raw(p = fresh("deep"), deep, h, deep, NULL, 0);
    open_fails(p, "JSON", NULL);
    for (size_t i = 0; i < deep; i++) memcpy(h + 5 * i, "{\"a\":", 5);
    write_st_raw(p = fresh("deep"), 5 * deep, h, 5 * deep, NULL, 0);
    open_fails(p, "JSON", NULL);
    free(h);
}

static void test_header_duplicate_keys(void **state) {
    header_fails("{\"w\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]},"
                 "\"w\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[1,2]}}",
                 zeros, 2, "JSON", "duplicate");
    header_fails("{\"w\":{\"dtype\":\"U8\",\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}", zeros, 1,
                 "JSON", "duplicate");
    header_fails("{\"__metadata__\":{\"a\":\"1\",\"a\":\"2\"}}", NULL, 0, "JSON", "duplicate");
    header_fails("{\"__metadata__\":{},\"__metadata__\":{}}", NULL, 0, "JSON", "duplicate");
}

static void test_header_metadata(void **state) {
    const char *bad_values[] = {"1", "null", "{}", "[\"a\"]", "true", "1.5"};
    for (size_t i = 0; i < sizeof bad_values / sizeof *bad_values; i++) {
        char hdr[128];
        snprintf(hdr, sizeof hdr, "{\"__metadata__\":{\"ok\":\"v\",\"key7\":%s}}", bad_values[i]);
        header_fails(hdr, NULL, 0, "__metadata__", "'key7'");
    }
    const char *bad_meta[] = {"\"x\"", "[]", "null", "3", "[[\"k\",\"v\"]]"};
    for (size_t i = 0; i < sizeof bad_meta / sizeof *bad_meta; i++) {
        char hdr[128];
        snprintf(hdr, sizeof hdr, "{\"__metadata__\":%s}", bad_meta[i]);
        header_fails(hdr, NULL, 0, "__metadata__", "expected an object");
    }
    StFile f;
    header_opens("{\"__metadata__\":{\"format\":\"pt\",\"empty\":\"\"},"
                 "\"w\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[0,2]}}", zeros, 2, &f);
    assert_int_equal(f.n_meta, 2);
    assert_int_equal(f.n_tensors, 1);
    assert_string_equal(st_meta(&f, "format"), "pt");
    assert_string_equal(st_meta(&f, "empty"), "");
    assert_null(st_meta(&f, "nope"));
    assert_null(st_find(&f, "__metadata__"));
    st_close(&f);
}

static void test_header_whitespace_padding(void **state) {
    const char *body = "{\"w\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[0,2]}}";
    const char *pads[][2] = {{"", "        "}, {"   ", ""}, {" \t\r\n", "\n\t \r "}, {"\n", "\n"}};
    for (size_t i = 0; i < sizeof pads / sizeof *pads; i++) {
        char hdr[256];
        snprintf(hdr, sizeof hdr, "%s%s%s", pads[i][0], body, pads[i][1]);
        StFile f;
        header_opens(hdr, "ab", 2, &f);
        const StTensor *t = st_find(&f, "w");
        assert_non_null(t);
        char got[2];
        SeekErr e = {{0}};
        assert_int_equal(st_read_raw(&f, t, got, &e), 0);
        assert_memory_equal(got, "ab", 2);
        assert_int_equal(f.data_start, 8 + strlen(hdr));
        st_close(&f);
    }
    /* compatibility with the reference reader: unknown keys inside a tensor entry are ignored,
     * empty headers and empty metadata are fine */
    StFile f;
    header_opens("{\"w\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[0,2],\"extra\":[1]}}", "ab", 2, &f);
    assert_int_equal(f.n_tensors, 1);
    st_close(&f);
    header_opens("{\"__metadata__\":{}}", NULL, 0, &f);
    assert_int_equal(f.n_tensors, 0);
    assert_int_equal(f.n_meta, 0);
    assert_null(st_find(&f, "w"));
    st_close(&f);
}

/* ---- row 4: dtypes and shapes ---- */

static void test_header_unknown_dtype(void **state) {
    const char *bad[] = {"\"F4\"", "\"f32\"", "\"\"", "\"F8_E8M0\"", "\"F6_E2M3\"", "4", "null", "[\"F32\"]"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char hdr[128];
        snprintf(hdr, sizeof hdr, "{\"wq\":{\"dtype\":%s,\"shape\":[2],\"data_offsets\":[0,2]}}", bad[i]);
        header_fails(hdr, zeros, 2, "tensor 'wq'", "dtype");
    }
    header_fails("{\"wq\":{\"shape\":[2],\"data_offsets\":[0,2]}}", zeros, 2, "tensor 'wq'", "missing dtype");
    header_fails("{\"wq\":[1,2]}", NULL, 0, "tensor 'wq'", "expected an object");
    header_fails("{\"wq\":\"F32\"}", NULL, 0, "tensor 'wq'", "expected an object");
}

static void test_header_bad_shape(void **state) {
    const char *bad[] = {"[-1]", "[2,-1]", "[2.0]", "[1e2]", "[\"2\"]", "[[2]]", "2", "null", "{}", "[true]",
                         "[2,-0.0]"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char hdr[128];
        snprintf(hdr, sizeof hdr, "{\"wk\":{\"dtype\":\"U8\",\"shape\":%s,\"data_offsets\":[0,2]}}", bad[i]);
        header_fails(hdr, zeros, 2, "tensor 'wk': shape", "non-negative integer");
    }
    header_fails("{\"wk\":{\"dtype\":\"U8\",\"data_offsets\":[0,2]}}", zeros, 2, "tensor 'wk': shape", "got nothing");
    header_fails("{\"wk\":{\"dtype\":\"U8\",\"shape\":[1,1,1,1,1,1,1,1,2],\"data_offsets\":[0,2]}}", zeros, 2,
                 "tensor 'wk'", "9 dimensions, at most 8");
    /* beyond int64: jansson refuses the number itself */
    header_fails("{\"wk\":{\"dtype\":\"U8\",\"shape\":[18446744073709551615],\"data_offsets\":[0,2]}}", zeros, 2,
                 "JSON", NULL);
    /* the controls: 8 dimensions, a scalar, a zero dimension */
    StFile f;
    header_opens("{\"wk\":{\"dtype\":\"U8\",\"shape\":[1,1,1,1,1,1,1,2],\"data_offsets\":[0,2]}}", zeros, 2, &f);
    assert_int_equal(st_find(&f, "wk")->ndim, 8);
    assert_int_equal(st_find(&f, "wk")->numel, 2);
    st_close(&f);
    header_opens("{\"s\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4]}}", zeros, 4, &f);
    assert_int_equal(st_find(&f, "s")->ndim, 0);
    assert_int_equal(st_find(&f, "s")->numel, 1);
    st_close(&f);
}

static void test_header_shape_overflow(void **state) {
    header_fails("{\"big\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,2],\"data_offsets\":[0,0]}}", NULL, 0,
                 "tensor 'big'", "overflow");
    header_fails("{\"big\":{\"dtype\":\"U8\",\"shape\":[4294967296,4294967296,2],\"data_offsets\":[0,0]}}", NULL, 0,
                 "tensor 'big'", "overflow");
    header_fails("{\"big\":{\"dtype\":\"U8\",\"shape\":[4294967296,4294967296,0],\"data_offsets\":[0,0]}}", NULL, 0,
                 "tensor 'big'", "overflow");
    /* the element count fits, the byte count does not */
    header_fails("{\"big\":{\"dtype\":\"F32\",\"shape\":[4611686018427387904],\"data_offsets\":[0,0]}}", NULL, 0,
                 "tensor 'big'", "overflow");
    header_fails("{\"big\":{\"dtype\":\"F64\",\"shape\":[3,768614336404564651],\"data_offsets\":[0,8]}}", zeros, 8,
                 "tensor 'big'", "overflow");
    /* a huge dimension times zero is zero bytes: fine */
    StFile f;
    header_opens("{\"z\":{\"dtype\":\"F32\",\"shape\":[4611686018427387904,0],\"data_offsets\":[0,0]}}", NULL, 0, &f);
    assert_int_equal(st_find(&f, "z")->numel, 0);
    st_close(&f);
}

/* ---- row 5: offsets ---- */

static void test_header_data_offsets_malformed(void **state) {
    const char *bad[] = {"[0]", "[0,4,4]", "[]", "[0,\"4\"]", "[0,4.0]", "[-1,3]", "\"0,4\"", "null", "{}",
                         "[0,-4]", "[[0],[4]]"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char hdr[128];
        snprintf(hdr, sizeof hdr, "{\"wv\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":%s}}", bad[i]);
        header_fails(hdr, zeros, 4, "tensor 'wv': data_offsets", "two non-negative integers");
    }
    header_fails("{\"wv\":{\"dtype\":\"U8\",\"shape\":[4]}}", zeros, 4, "tensor 'wv'", "data_offsets");
    header_fails("{\"wv\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[4,0]}}", zeros, 4, "tensor 'wv'",
                 "begin is after end");
    header_fails("{\"wv\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,5]}}", zeros, 4, "tensor 'wv'",
                 "past the data buffer");
    header_fails("{\"wv\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,3]}}", zeros, 4, "tensor 'wv'",
                 "expected 4");
    header_fails("{\"wv\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,15]}}", zeros, 15, "tensor 'wv'",
                 "expected 16");
}

static void test_header_tiling(void **state) {
    const char *u2 = "\"dtype\":\"U8\",\"shape\":[2]", *u3 = "\"dtype\":\"U8\",\"shape\":[3]";
    char hdr[512];
    snprintf(hdr, sizeof hdr, "{\"a\":{%s,\"data_offsets\":[0,2]},\"b\":{%s,\"data_offsets\":[1,4]}}", u2, u3);
    header_fails(hdr, zeros, 4, "tensor 'b'", "overlap");
    snprintf(hdr, sizeof hdr, "{\"a\":{%s,\"data_offsets\":[0,2]},\"b\":{%s,\"data_offsets\":[3,6]}}", u2, u3);
    header_fails(hdr, zeros, 6, "tensor 'b'", "gap");
    snprintf(hdr, sizeof hdr, "{\"a\":{%s,\"data_offsets\":[1,3]},\"b\":{%s,\"data_offsets\":[3,6]}}", u2, u3);
    header_fails(hdr, zeros, 6, "tensor 'a'", "begin at 0");
    snprintf(hdr, sizeof hdr, "{\"a\":{%s,\"data_offsets\":[0,2]},\"b\":{%s,\"data_offsets\":[2,5]}}", u2, u3);
    header_fails(hdr, zeros, 6, "1 trailing bytes", NULL);
    header_fails(hdr, zeros, 4, "tensor 'b'", "past the data buffer");
    /* the same range twice */
    snprintf(hdr, sizeof hdr, "{\"a\":{%s,\"data_offsets\":[0,2]},\"b\":{%s,\"data_offsets\":[0,2]}}", u2, u2);
    header_fails(hdr, zeros, 4, "overlap", NULL);
    /* a zero-byte tensor inside another one, and beyond the buffer */
    snprintf(hdr, sizeof hdr, "{\"a\":{%s,\"data_offsets\":[0,2]},\"z\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[1,1]}}", u2);
    header_fails(hdr, zeros, 2, "tensor 'z'", "overlap");
    snprintf(hdr, sizeof hdr, "{\"a\":{%s,\"data_offsets\":[0,2]},\"z\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[3,3]}}", u2);
    header_fails(hdr, zeros, 2, "tensor 'z'", "past the data buffer");
    /* no tensors but data bytes */
    header_fails("{}", zeros, 1, "trailing", NULL);

    /* valid: declared out of order, and zero-byte tensors at the start, middle and end */
    StFile f;
    snprintf(hdr, sizeof hdr, "{\"b\":{%s,\"data_offsets\":[2,5]},\"a\":{%s,\"data_offsets\":[0,2]}}", u3, u2);
    header_opens(hdr, "ABcde", 5, &f);
    char got[3];
    SeekErr e = {{0}};
    assert_int_equal(st_read_raw(&f, st_find(&f, "b"), got, &e), 0);
    assert_memory_equal(got, "cde", 3);
    assert_int_equal(st_read_raw(&f, st_find(&f, "a"), got, &e), 0);
    assert_memory_equal(got, "AB", 2);
    st_close(&f);
    snprintf(hdr, sizeof hdr,
             "{\"z2\":{\"dtype\":\"F32\",\"shape\":[0,7],\"data_offsets\":[5,5]},\"b\":{%s,\"data_offsets\":[2,5]},"
             "\"z1\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[2,2]},\"a\":{%s,\"data_offsets\":[0,2]},"
             "\"z0\":{\"dtype\":\"BF16\",\"shape\":[3,0],\"data_offsets\":[0,0]}}", u3, u2);
    header_opens(hdr, "ABcde", 5, &f);
    assert_int_equal(f.n_tensors, 5);
    for (size_t i = 1; i < f.n_tensors; i++) assert_true(strcmp(f.tensors[i - 1].name, f.tensors[i].name) < 0);
    float none[1];
    assert_int_equal(st_read_f32(&f, st_find(&f, "z1"), none, &e), 0);
    st_close(&f);
}

/* The generator: a valid 3-tensor file (a: F32 [2], b: U8 [3], c: F16 [5]; 21 data bytes).
 * Moving any single offset by +-1, shifting any tensor by +-1 and swapping the ranges of any
 * two tensors must each be rejected; declaring the tensors in any order must not. */
static const char *const gen_names[3] = {"a", "b", "c"};
static const char *const gen_types[3] = {"\"dtype\":\"F32\",\"shape\":[2]", "\"dtype\":\"U8\",\"shape\":[3]",
                                         "\"dtype\":\"F16\",\"shape\":[5]"};

static void gen_header(char *buf, size_t cap, long long o[3][2], const int order[3]) {
    size_t at = (size_t)snprintf(buf, cap, "{");
    for (int k = 0; k < 3; k++) {
        int i = order[k];
        at += (size_t)snprintf(buf + at, cap - at, "%s\"%s\":{%s,\"data_offsets\":[%lld,%lld]}", k ? "," : "",
                               gen_names[i], gen_types[i], o[i][0], o[i][1]);
    }
    snprintf(buf + at, cap - at, "}");
}

static void test_offsets_perturbed(void **state) {
    const long long valid[3][2] = {{0, 8}, {8, 11}, {11, 21}};
    const int order[3] = {0, 1, 2};
    unsigned char data[21];
    for (int i = 0; i < 21; i++) data[i] = (unsigned char)(i * 7);
    char hdr[512];
    long long o[3][2];
    int rejected = 0;

    memcpy(o, valid, sizeof o);
    StFile f;
    gen_header(hdr, sizeof hdr, o, order);
    header_opens(hdr, data, sizeof data, &f);
    st_close(&f);

    for (int t = 0; t < 3; t++)
        for (int k = 0; k < 2; k++)
            for (int d = -1; d <= 1; d += 2) {
                memcpy(o, valid, sizeof o);
                o[t][k] += d;
                gen_header(hdr, sizeof hdr, o, order);
                header_fails(hdr, data, sizeof data, fmt("tensor '%s'", gen_names[t]), NULL);
                rejected++;
            }
    for (int t = 0; t < 3; t++)
        for (int d = -1; d <= 1; d += 2) {
            memcpy(o, valid, sizeof o);
            o[t][0] += d;
            o[t][1] += d;
            gen_header(hdr, sizeof hdr, o, order);
            header_fails(hdr, data, sizeof data, "data_offsets", NULL);
            rejected++;
        }
    for (int t = 0; t < 3; t++)
        for (int u = t + 1; u < 3; u++) {
            memcpy(o, valid, sizeof o);
            for (int k = 0; k < 2; k++) {
                long long x = o[t][k];
                o[t][k] = o[u][k];
                o[u][k] = x;
            }
            gen_header(hdr, sizeof hdr, o, order);
            header_fails(hdr, data, sizeof data, "data_offsets", NULL);
            rejected++;
        }
    assert_int_equal(rejected, 12 + 6 + 3);

    const int perms[6][3] = {{0, 1, 2}, {0, 2, 1}, {1, 0, 2}, {1, 2, 0}, {2, 0, 1}, {2, 1, 0}};
    memcpy(o, valid, sizeof o);
    for (int p = 0; p < 6; p++) {
        gen_header(hdr, sizeof hdr, o, perms[p]);
        header_opens(hdr, data, sizeof data, &f);
        const StTensor *c = st_find(&f, "c");
        assert_non_null(c);
        assert_int_equal(c->begin, 11);
        assert_int_equal(c->end, 21);
        st_close(&f);
    }
}

/* ---- row 11: truncation ---- */

/* a valid file with metadata and three tensors, written by st_write */
static void write_small_model(const char *path) {
    static const float w[6] = {1, 2, 3, 4, 5, 6};
    static const uint16_t h[5] = {0x3f80, 0x4000, 0x4040, 0x4080, 0x40a0};
    static const uint8_t u[3] = {7, 8, 9};
    const StWriteTensor ts[3] = {
        {"w", ST_F32, 2, {2, 3}, w},
        {"h", ST_BF16, 1, {5}, h},
        {"u", ST_U8, 1, {3}, u},
    };
    const char *kv[] = {"format", "pt"};
    must_write(path, ts, 3, kv, 1);
}

static void test_truncated_at_every_offset(void **state) {
    const char *full = fresh("full");
    write_small_model(full);
    size_t n;
    unsigned char *bytes = read_all(full, &n);
    const char *p = fresh("cut");
    for (size_t len = 0; len < n; len++) {
        write_bytes(p, bytes, len);
        open_fails(p, NULL, NULL);
    }
    write_bytes(p, bytes, n);
    StFile f;
    must_open(&f, p);
    assert_int_equal(f.n_tensors, 3);
    st_close(&f);
    free(bytes);
}

static void test_file_shrinks_after_open(void **state) {
    const char *p = fresh("shrink");
    write_small_model(p);
    StFile f;
    must_open(&f, p);
    assert_int_equal(truncate(p, (off_t)(f.data_start + 2)), 0);
    SeekErr e = {{0}};
    float dst[6];
    uint8_t raw[24];
    assert_int_equal(st_read_f32(&f, st_find(&f, "w"), dst, &e), -1);
    check_msg(&e, p, "tensor 'w'", "truncated");
    assert_int_equal(st_read_raw(&f, st_find(&f, "u"), raw, &e), -1);
    check_msg(&e, p, "tensor 'u'", "truncated");
    st_close(&f);
}

/* ---- row 6: misaligned data; row 7 (load part): non-finite values ---- */

static void test_misaligned_data(void **state) {
    /* u: U8 [3] first, so every later tensor starts at an odd or unaligned file offset */
    unsigned char data[47];
    const uint8_t u[3] = {1, 2, 3};
    const uint16_t h[3] = {0x3c00, 0xc000, 0x0001};
    const float f32[4] = {1.5f, -2.25f, 3.0e-38f, 65504.0f};
    const double f64[2] = {0.1, -1e-3};
    const uint16_t b[3] = {0x3f80, 0x4049, 0x8000};
    memcpy(data, u, 3);
    memcpy(data + 3, h, 6);
    memcpy(data + 9, f32, 16);
    memcpy(data + 25, f64, 16);
    memcpy(data + 41, b, 6);
    char hdr[512];
    int len = snprintf(hdr, sizeof hdr,
                       "{\"u\":{\"dtype\":\"U8\",\"shape\":[3],\"data_offsets\":[0,3]},"
                       "\"h\":{\"dtype\":\"F16\",\"shape\":[3],\"data_offsets\":[3,9]},"
                       "\"f\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[9,25]},"
                       "\"d\":{\"dtype\":\"F64\",\"shape\":[2],\"data_offsets\":[25,41]},"
                       "\"b\":{\"dtype\":\"BF16\",\"shape\":[3],\"data_offsets\":[41,47]}}");
    while ((8 + len) % 8 != 3) hdr[len++] = ' ';   /* the data buffer itself starts at an odd offset */
    hdr[len] = '\0';
    StFile f;
    header_opens(hdr, data, sizeof data, &f);
    assert_int_equal(f.data_start % 8, 3);
    SeekErr e = {{0}};
    float got[4];
    assert_int_equal(st_read_f32(&f, st_find(&f, "f"), got, &e), 0);
    for (size_t i = 0; i < 4; i++) assert_same_float(got[i], f32[i], "f", i);
    assert_int_equal(st_read_f32(&f, st_find(&f, "h"), got, &e), 0);
    assert_same_float(got[0], 1.0f, "h", 0);
    assert_same_float(got[1], -2.0f, "h", 1);
    assert_same_float(got[2], ldexpf(1.0f, -24), "h", 2);
    assert_int_equal(st_read_f32(&f, st_find(&f, "d"), got, &e), 0);
    assert_same_float(got[0], (float)0.1, "d", 0);
    assert_same_float(got[1], (float)-1e-3, "d", 1);
    assert_int_equal(st_read_f32(&f, st_find(&f, "b"), got, &e), 0);
    assert_same_float(got[0], 1.0f, "b", 0);
    assert_same_float(got[1], 3.140625f, "b", 1);
    assert_same_float(got[2], -0.0f, "b", 2);
    /* raw bytes into a misaligned destination */
    unsigned char raw[17];
    assert_int_equal(st_read_raw(&f, st_find(&f, "f"), raw + 1, &e), 0);
    assert_memory_equal(raw + 1, f32, 16);
    st_close(&f);
}

static void test_nonfinite_values_load(void **state) {
    const float f32[4] = {NAN, INFINITY, -INFINITY, 1.0f};
    const uint16_t b16[3] = {0x7fc0, 0x7f80, 0xff80};
    const uint16_t h16[3] = {0x7e00, 0x7c00, 0xfc00};
    const StWriteTensor ts[3] = {
        {"f", ST_F32, 1, {4}, f32}, {"b", ST_BF16, 1, {3}, b16}, {"h", ST_F16, 1, {3}, h16}};
    const char *p = fresh("nonfinite");
    must_write(p, ts, 3, NULL, 0);
    StSet s;
    SeekErr e = {{0}};
    if (stset_open_file(&s, p, &e) != 0) fail_msg("%s", e.msg);
    float got[4];
    const uint64_t s4[1] = {4}, s3[1] = {3};
    assert_int_equal(stset_load_f32(&s, "f", got, 1, s4, 0, 0, &e), 0);
    assert_true(isnan(got[0]));
    assert_true(isinf(got[1]) && got[1] > 0);
    assert_true(isinf(got[2]) && got[2] < 0);
    assert_same_float(got[3], 1.0f, "f", 3);
    const char *names[2] = {"b", "h"};
    for (int k = 0; k < 2; k++) {
        assert_int_equal(stset_load_f32(&s, names[k], got, 1, s3, 0, 0, &e), 0);
        assert_true(isnan(got[0]));
        assert_true(isinf(got[1]) && got[1] > 0);
        assert_true(isinf(got[2]) && got[2] < 0);
    }
    stset_close(&s);
}

/* ---- conversions ---- */

static void test_dtype_conversions(void **state) {
    static const uint16_t bf[8] = {0x3f80, 0xc040, 0x0001, 0x0080, 0x7f7f, 0x7f80, 0x7fc0, 0x8000};
    const float bf_want[8] = {1.0f, -3.0f, ldexpf(1, -133), ldexpf(1, -126), 3.38953139e38f, INFINITY, NAN, -0.0f};
    static const uint16_t hf[10] = {0x0001, 0x03ff, 0x0400, 0x3c00, 0x3555, 0x7bff, 0x7c00, 0xfc00, 0x7e00, 0x8000};
    const float hf_want[10] = {ldexpf(1, -24), 1023 * ldexpf(1, -24), ldexpf(1, -14), 1.0f, 0.333251953125f,
                               65504.0f, INFINITY, -INFINITY, NAN, -0.0f};
    static const uint8_t e4[12] = {0x00, 0x01, 0x07, 0x08, 0x38, 0x3c, 0x77, 0x7e, 0x7f, 0xff, 0xfe, 0x80};
    const float e4_want[12] = {0.0f, ldexpf(1, -9), 7 * ldexpf(1, -9), ldexpf(1, -6), 1.0f, 1.5f, 240.0f, 448.0f,
                               NAN, NAN, -448.0f, -0.0f};
    static const uint8_t e5[10] = {0x3c, 0x01, 0x03, 0x04, 0x7b, 0x7c, 0xfc, 0x7d, 0x7f, 0x80};
    const float e5_want[10] = {1.0f, ldexpf(1, -16), 3 * ldexpf(1, -16), ldexpf(1, -14), 57344.0f, INFINITY,
                               -INFINITY, NAN, NAN, -0.0f};
    static const double d[5] = {0.1, 1.0 / 3.0, 1e-50, 1e300, -1e300};
    const float d_want[5] = {(float)0.1, (float)(1.0 / 3.0), 0.0f, INFINITY, -INFINITY};
    static const int32_t ints[2] = {1, -1};
    const StWriteTensor ts[6] = {
        {"bf", ST_BF16, 1, {8}, bf},   {"hf", ST_F16, 1, {10}, hf}, {"e4", ST_F8_E4M3, 1, {12}, e4},
        {"e5", ST_F8_E5M2, 1, {10}, e5}, {"d", ST_F64, 1, {5}, d},   {"i", ST_I32, 1, {2}, ints},
    };
    const char *p = fresh("conv");
    must_write(p, ts, 6, NULL, 0);
    StFile f;
    must_open(&f, p);
    SeekErr e = {{0}};
    float got[12];
    struct { const char *name; const float *want; size_t n; } cases[] = {
        {"bf", bf_want, 8}, {"hf", hf_want, 10}, {"e4", e4_want, 12}, {"e5", e5_want, 10}, {"d", d_want, 5}};
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        if (st_read_f32(&f, st_find(&f, cases[c].name), got, &e) != 0) fail_msg("%s", e.msg);
        for (size_t i = 0; i < cases[c].n; i++) assert_same_float(got[i], cases[c].want[i], cases[c].name, i);
    }
    assert_true(signbit(got[4]) && isinf(got[4]));
    /* integers are not converted */
    assert_int_equal(st_read_f32(&f, st_find(&f, "i"), got, &e), -1);
    check_msg(&e, p, "tensor 'i'", "I32");
    int32_t back[2];
    assert_int_equal(st_read_raw(&f, st_find(&f, "i"), back, &e), 0);
    assert_memory_equal(back, ints, sizeof ints);
    st_close(&f);
}

/* A tensor bigger than the conversion chunk (1 MiB) converts correctly across chunk borders. */
static void test_read_f32_in_chunks(void **state) {
    size_t n = (3u << 20) / 2 + 3;   /* BF16: 3 MiB + 6 bytes */
    uint16_t *h = malloc(n * sizeof *h);
    float *got = malloc(n * sizeof *got);
    assert_non_null(h);
    assert_non_null(got);
    for (size_t i = 0; i < n; i++) h[i] = (uint16_t)(0x3f80 + (i % 1000));
    const StWriteTensor ts[2] = {{"pad", ST_U8, 1, {1}, "x"}, {"big", ST_BF16, 1, {n}, h}};
    const char *p = fresh("chunks");
    must_write(p, ts, 2, NULL, 0);
    StFile f;
    must_open(&f, p);
    SeekErr e = {{0}};
    assert_int_equal(st_read_f32(&f, st_find(&f, "big"), got, &e), 0);
    for (size_t i = 0; i < n; i++)
        if (f32_bits(got[i]) != (uint32_t)h[i] << 16) fail_msg("big[%zu] = %g", i, got[i]);
    st_close(&f);
    free(h);
    free(got);
}

/* ---- the writer ---- */

static void test_write_read_roundtrip(void **state) {
    const float w[12] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, -12};
    const uint16_t nrm[5] = {0x3f80, 0x3f81, 0xbf80, 0x0000, 0x7f80};
    const uint8_t odd[3] = {0xaa, 0xbb, 0xcc};
    const double sc[1] = {2.5};
    const int64_t i64[2] = {-1, INT64_MAX};
    const StWriteTensor ts[6] = {
        {"embed.weight", ST_F32, 2, {3, 4}, w}, {"norm", ST_BF16, 1, {5}, nrm}, {"odd", ST_U8, 1, {3}, odd},
        {"empty", ST_F32, 2, {0, 4}, NULL},     {"scalar", ST_F64, 0, {0}, sc}, {"ids", ST_I64, 1, {2}, i64},
    };
    const char *kv[] = {"format", "pt", "note", "h\xc3\xa9llo \"quoted\""};
    const char *p = fresh("rt");
    must_write(p, ts, 6, kv, 2);
    must_write(p, ts, 6, kv, 2); /* overwriting is fine */
    assert_int_equal(access(fmt("%s.tmp", p), F_OK), -1);

    size_t n;
    unsigned char *bytes = read_all(p, &n);
    uint64_t hn = 0;
    for (int i = 0; i < 8; i++) hn |= (uint64_t)bytes[i] << (8 * i);
    assert_int_equal((8 + hn) % 8, 0);
    assert_int_equal(bytes[8], '{');
    char *hdr = strndup((const char *)bytes + 8, hn);
    assert_non_null(hdr);
    char *brace = strrchr(hdr, '}');
    assert_non_null(brace);
    for (char *q = brace + 1; *q; q++) assert_int_equal(*q, ' ');
    /* insertion order: __metadata__ first, then the tensors as given */
    const char *order[] = {"\"__metadata__\"", "\"embed.weight\"", "\"norm\"", "\"odd\"", "\"empty\"", "\"scalar\"", "\"ids\""};
    const char *prev = hdr;
    for (size_t i = 0; i < 7; i++) {
        const char *at = strstr(hdr, order[i]);
        if (!at || at < prev) fail_msg("%s out of order in header %s", order[i], hdr);
        prev = at;
    }
    free(hdr);

    StFile f;
    must_open(&f, p);
    assert_int_equal(f.data_start, 8 + hn);
    assert_int_equal(f.file_size, n);
    assert_int_equal(f.n_tensors, 6);
    assert_int_equal(f.n_meta, 2);
    assert_string_equal(st_meta(&f, "format"), "pt");
    assert_string_equal(st_meta(&f, "note"), "h\xc3\xa9llo \"quoted\"");
    uint64_t off = 0;
    for (size_t i = 0; i < 6; i++) {
        const StTensor *t = st_find(&f, ts[i].name);
        assert_non_null(t);
        assert_int_equal(t->dtype, ts[i].dtype);
        assert_int_equal(t->ndim, ts[i].ndim);
        uint64_t numel = 1;
        for (int d = 0; d < t->ndim; d++) {
            assert_int_equal(t->shape[d], ts[i].shape[d]);
            numel *= ts[i].shape[d];
        }
        assert_int_equal(t->numel, numel);
        assert_int_equal(t->begin, off); /* back to back, in the given order */
        size_t nb = (size_t)numel * st_dtype_size(ts[i].dtype);
        assert_int_equal(t->end - t->begin, nb);
        off = t->end;
        unsigned char got[64];
        SeekErr e = {{0}};
        assert_int_equal(st_read_raw(&f, t, got, &e), 0);
        if (nb) assert_memory_equal(got, ts[i].data, nb);
        assert_memory_equal(bytes + f.data_start + t->begin, got, nb);
    }
    assert_int_equal(off, n - f.data_start);
    st_close(&f);
    free(bytes);

    /* no metadata: no __metadata__ key; no tensors at all: "{}" padded */
    must_write(p, ts, 1, NULL, 0);
    bytes = read_all(p, &n);
    assert_null(strstr((const char *)bytes + 8, "__metadata__"));
    free(bytes);
    must_write(p, NULL, 0, NULL, 0);
    bytes = read_all(p, &n);
    assert_int_equal(n, 16);
    assert_memory_equal(bytes + 8, "{}      ", 8);
    free(bytes);
}

static void write_fails(const StWriteTensor *ts, size_t n, const char *const *kv, size_t nm, const char *w1,
                        const char *w2) {
    const char *p = fresh("wfail");
    SeekErr e = {{0}};
    assert_int_equal(st_write(p, ts, n, kv, nm, &e), -1);
    check_msg(&e, p, w1, w2);
    assert_int_equal(access(p, F_OK), -1);
    assert_int_equal(access(fmt("%s.tmp", p), F_OK), -1);
}

static void test_write_rejects(void **state) {
    const float x[4] = {0};
    StWriteTensor two[2] = {{"dup", ST_F32, 1, {2}, x}, {"dup", ST_F32, 1, {2}, x}};
    write_fails(two, 2, NULL, 0, "tensor 'dup'", "twice");
    StWriteTensor t = {"__metadata__", ST_F32, 1, {1}, x};
    write_fails(&t, 1, NULL, 0, "__metadata__", "reserved");
    t = (StWriteTensor){"big", ST_F32, 3, {4294967296ull, 4294967296ull, 2}, x};
    write_fails(&t, 1, NULL, 0, "tensor 'big'", "overflow");
    t = (StWriteTensor){"big", ST_F32, 1, {(uint64_t)1 << 62}, x};
    write_fails(&t, 1, NULL, 0, "tensor 'big'", "overflow");
    t = (StWriteTensor){"big", ST_U8, 1, {UINT64_MAX}, x};
    write_fails(&t, 1, NULL, 0, "tensor 'big'", "overflow");
    t = (StWriteTensor){"bad", (StDtype)99, 1, {1}, x};
    write_fails(&t, 1, NULL, 0, "tensor 'bad'", "dtype");
    t = (StWriteTensor){"bad", ST_F32, 9, {1}, x};
    write_fails(&t, 1, NULL, 0, "tensor 'bad'", "dimensions");
    t = (StWriteTensor){"bad", ST_F32, -1, {1}, x};
    write_fails(&t, 1, NULL, 0, "tensor 'bad'", "dimensions");
    t = (StWriteTensor){"bad", ST_F32, 1, {1}, NULL};
    write_fails(&t, 1, NULL, 0, "tensor 'bad'", "NULL");
    t = (StWriteTensor){NULL, ST_F32, 1, {1}, x};
    write_fails(&t, 1, NULL, 0, "tensor 0", "name");
    t = (StWriteTensor){"bad\xff", ST_F32, 1, {1}, x};
    write_fails(&t, 1, NULL, 0, "UTF-8", NULL);
    t = (StWriteTensor){"ok", ST_F32, 1, {1}, x};
    const char *kv_dup[] = {"k", "1", "k", "2"};
    write_fails(&t, 1, kv_dup, 2, "__metadata__ 'k'", "twice");
    const char *kv_null[] = {"k", NULL};
    write_fails(&t, 1, kv_null, 1, "__metadata__", "NULL");
    const char *kv_utf[] = {"k", "\xc0\xaf"};
    write_fails(&t, 1, kv_utf, 1, "__metadata__ 'k'", "UTF-8");
    /* a missing folder: the atomic write reports the path */
    SeekErr e = {{0}};
    const char *p = fmt("%s/no/such/dir/x.safetensors", root);
    assert_int_equal(st_write(p, &t, 1, NULL, 0, &e), -1);
    check_msg(&e, "no/such/dir", NULL, NULL);
}

/* ---- FP8 block dequantisation ---- */

/* float8_e4m3fn decoded from the definition, independent of the library's table:
 * normal (1 + m/8) * 2^(e - 7) = (8 + m) * 2^(e - 10), subnormal m * 2^-9. */
static float ref_e4m3(uint8_t b) {
    int e = (b >> 3) & 15, m = b & 7;
    double v = e ? ldexp(8 + m, e - 10) : ldexp(m, -9);
    return (float)((b & 0x80) ? -v : v);
}

/* q codes avoiding NaN (0x7f/0xff), both signs, every exponent */
static uint8_t code_at(size_t i) {
    uint8_t c = (uint8_t)((i * 37) % 0x7f);   /* 0 .. 0x7e */
    return (i & 1) ? (uint8_t)(c | 0x80) : c;
}

static void test_fp8_block_dequant(void **state) {
    enum { R = 40, C = 24, BR = 16, BC = 16, SR = 3, SC = 2 };   /* partial blocks both ways */
    uint8_t q[R * C];
    for (size_t i = 0; i < R * C; i++) q[i] = code_at(i);
    const float s32[SR * SC] = {0.5f, 0.75f, 1.5f, 1.75f, 2.5f, 1e-3f};
    const uint16_t s16[SR * SC] = {0x3f00, 0x4040, 0x3c00, 0xc000, 0x4120, 0x3f80};   /* bf16 */
    const float s16_val[SR * SC] = {0.5f, 3.0f, 0.0078125f, -2.0f, 10.0f, 1.0f};
    /* 3-D weight (4, 3, 8): rows 4, cols 24; block 2 x 16 -> scale [2, 2] */
    const float s3d[4] = {2.0f, 4.0f, 0.25f, -1.0f};
    /* 1-D weight (40): rows 40, cols 1; block 16 x 16 -> scale [3, 1] */
    const float s1d[3] = {8.0f, 0.125f, 3.0f};
    /* F8_E5M2 weight with one block */
    const uint8_t q5[4] = {0x3c, 0x40, 0xbc, 0x01};
    const float s5[1] = {2.0f};
    const StWriteTensor ts[10] = {
        {"w", ST_F8_E4M3, 2, {R, C}, q},        {"w_scale_inv", ST_F32, 2, {SR, SC}, s32},
        {"v", ST_F8_E4M3, 2, {R, C}, q},        {"v_scale_inv", ST_BF16, 2, {SR, SC}, s16},
        {"t3", ST_F8_E4M3, 3, {4, 3, 8}, q},    {"t3_scale_inv", ST_F32, 2, {2, 2}, s3d},
        {"t1", ST_F8_E4M3, 1, {R}, q},          {"t1_scale_inv", ST_F32, 2, {3, 1}, s1d},
        {"e5", ST_F8_E5M2, 2, {2, 2}, q5},      {"e5_scale_inv", ST_F32, 2, {1, 1}, s5},
    };
    const char *p = fresh("fp8");
    must_write(p, ts, 10, NULL, 0);
    StSet s;
    SeekErr e = {{0}};
    if (stset_open_file(&s, p, &e) != 0) fail_msg("%s", e.msg);
    static float got[R * C];
    const uint64_t shape[2] = {R, C};

    if (stset_load_f32(&s, "w", got, 2, shape, BR, BC, &e) != 0) fail_msg("%s", e.msg);
    for (size_t r = 0; r < R; r++)
        for (size_t c = 0; c < C; c++)
            assert_same_float(got[r * C + c], ref_e4m3(q[r * C + c]) * s32[(r / BR) * SC + c / BC], "w", r * C + c);

    if (stset_load_f32(&s, "v", got, 2, shape, BR, BC, &e) != 0) fail_msg("%s", e.msg);
    for (size_t r = 0; r < R; r++)
        for (size_t c = 0; c < C; c++)
            assert_same_float(got[r * C + c], ref_e4m3(q[r * C + c]) * s16_val[(r / BR) * SC + c / BC], "v", r * C + c);

    const uint64_t shape3[3] = {4, 3, 8};
    if (stset_load_f32(&s, "t3", got, 3, shape3, 2, 16, &e) != 0) fail_msg("%s", e.msg);
    for (size_t r = 0; r < 4; r++)
        for (size_t c = 0; c < 24; c++)
            assert_same_float(got[r * 24 + c], ref_e4m3(q[r * 24 + c]) * s3d[(r / 2) * 2 + c / 16], "t3", r * 24 + c);

    const uint64_t shape1[1] = {R};
    if (stset_load_f32(&s, "t1", got, 1, shape1, BR, BC, &e) != 0) fail_msg("%s", e.msg);
    for (size_t r = 0; r < R; r++) assert_same_float(got[r], ref_e4m3(q[r]) * s1d[r / BR], "t1", r);

    const uint64_t shape5[2] = {2, 2};
    if (stset_load_f32(&s, "e5", got, 2, shape5, 128, 128, &e) != 0) fail_msg("%s", e.msg);
    const float e5_want[4] = {2.0f, 4.0f, -2.0f, ldexpf(1, -15)};
    for (size_t i = 0; i < 4; i++) assert_same_float(got[i], e5_want[i], "e5", i);
    stset_close(&s);
}

static void test_fp8_scale_errors(void **state) {
    uint8_t q[40 * 24];
    for (size_t i = 0; i < sizeof q; i++) q[i] = code_at(i);
    const float s[6] = {1, 1, 1, 1, 1, 1};
    const StWriteTensor ts[8] = {
        {"nos", ST_F8_E4M3, 2, {40, 24}, q},
        {"wrong", ST_F8_E4M3, 2, {40, 24}, q}, {"wrong_scale_inv", ST_F32, 2, {3, 1}, s},
        {"flat", ST_F8_E4M3, 2, {40, 24}, q},  {"flat_scale_inv", ST_F32, 1, {6}, s},
        {"half", ST_F8_E4M3, 2, {40, 24}, q},  {"half_scale_inv", ST_F16, 2, {3, 2}, s},
        {"ok", ST_F8_E4M3, 2, {40, 24}, q},
    };
    StWriteTensor all[9];
    memcpy(all, ts, sizeof ts);
    all[8] = (StWriteTensor){"ok_scale_inv", ST_F32, 2, {3, 2}, s};
    const char *p = fresh("fp8err");
    must_write(p, all, 9, NULL, 0);
    StSet set;
    SeekErr e = {{0}};
    if (stset_open_file(&set, p, &e) != 0) fail_msg("%s", e.msg);
    static float got[40 * 24];
    const uint64_t shape[2] = {40, 24};
    assert_int_equal(stset_load_f32(&set, "nos", got, 2, shape, 16, 16, &e), -1);
    check_msg(&e, "tensor 'nos'", "'nos_scale_inv' is missing", p);
    assert_int_equal(stset_load_f32(&set, "wrong", got, 2, shape, 16, 16, &e), -1);
    check_msg(&e, "'wrong_scale_inv'", "shape [3, 1], expected [3, 2]", p);
    assert_int_equal(stset_load_f32(&set, "flat", got, 2, shape, 16, 16, &e), -1);
    check_msg(&e, "'flat_scale_inv'", "expected [3, 2]", NULL);
    assert_int_equal(stset_load_f32(&set, "half", got, 2, shape, 16, 16, &e), -1);
    check_msg(&e, "'half_scale_inv'", "F32 or BF16", NULL);
    assert_int_equal(stset_load_f32(&set, "ok", got, 2, shape, 0, 16, &e), -1);
    check_msg(&e, "tensor 'ok'", "block", NULL);
    assert_int_equal(stset_load_f32(&set, "ok", got, 2, shape, 16, -1, &e), -1);
    check_msg(&e, "tensor 'ok'", "block", NULL);
    /* the same weight with block 8 x 8 needs a [5, 3] scale */
    assert_int_equal(stset_load_f32(&set, "ok", got, 2, shape, 8, 8, &e), -1);
    check_msg(&e, "'ok_scale_inv'", "expected [5, 3]", NULL);
    assert_int_equal(stset_load_f32(&set, "ok", got, 2, shape, 16, 16, &e), 0);
    stset_close(&set);
}

/* ---- stset_load_f32: shapes and names ---- */

static void test_load_shape_mismatch(void **state) {
    const char *dir = fmt("%s/plain", root);
    make_dir(dir);
    const float x[12] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
    const StWriteTensor t = {"x", ST_F32, 2, {3, 4}, x};
    const char *file = fmt("%s/model.safetensors", dir);
    must_write(file, &t, 1, NULL, 0);
    StSet s;
    SeekErr e = {{0}};
    n_opens = 0;
    if (stset_open_dir(&s, dir, &e) != 0) fail_msg("%s", e.msg);
    assert_int_equal(n_opens, 1);
    assert_int_equal(s.n_files, 1);
    float got[16];
    const uint64_t want44[2] = {4, 4}, want12[1] = {12}, want34[2] = {3, 4}, want341[3] = {3, 4, 1};
    assert_int_equal(stset_load_f32(&s, "x", got, 2, want44, 0, 0, &e), -1);
    check_msg(&e, file, "tensor 'x': shape [3, 4], expected [4, 4] from config", NULL);
    assert_int_equal(stset_load_f32(&s, "x", got, 1, want12, 0, 0, &e), -1);
    check_msg(&e, "tensor 'x'", "expected [12]", NULL);
    assert_int_equal(stset_load_f32(&s, "x", got, 3, want341, 0, 0, &e), -1);
    check_msg(&e, "tensor 'x'", "expected [3, 4, 1]", NULL);
    assert_int_equal(stset_load_f32(&s, "x", got, 1, want34, 0, 0, &e), -1);   /* a prefix of the shape */
    check_msg(&e, "tensor 'x'", "shape [3, 4], expected [3] from config", NULL);
    const uint64_t want340[3] = {3, 4, 0};
    assert_int_equal(stset_load_f32(&s, "x", got, 3, want340, 0, 0, &e), -1);
    check_msg(&e, "tensor 'x'", "expected [3, 4, 0]", NULL);
    assert_int_equal(stset_load_f32(&s, "nope", got, 2, want34, 0, 0, &e), -1);
    check_msg(&e, dir, "tensor 'nope' not found", NULL);
    assert_int_equal(stset_load_f32(&s, "x", got, 2, want34, 0, 0, &e), 0);
    for (size_t i = 0; i < 12; i++) assert_same_float(got[i], x[i], "x", i);
    const StFile *file_of = NULL;
    assert_null(stset_find(&s, "nope", &file_of));
    assert_null(file_of);
    assert_non_null(stset_find(&s, "x", &file_of));
    assert_string_equal(file_of->path, file);
    stset_close(&s);
    stset_close(&s);
}

static void test_find_many(void **state) {
    enum { N = 200 };
    StWriteTensor ts[N];
    char names[N][16];
    uint8_t v[N];
    for (size_t i = 0; i < N; i++) {
        size_t k = (i * 73) % N;   /* a permutation: written out of name order */
        snprintf(names[i], sizeof names[i], "t%03zu", k);
        v[i] = (uint8_t)k;
        ts[i] = (StWriteTensor){names[i], ST_U8, 1, {1}, &v[i]};
    }
    const char *p = fresh("many");
    must_write(p, ts, N, NULL, 0);
    StSet s;
    SeekErr e = {{0}};
    if (stset_open_file(&s, p, &e) != 0) fail_msg("%s", e.msg);
    assert_int_equal(s.n_entries, N);
    const StFile *fl;
    for (size_t k = 0; k < N; k++) {
        const StTensor *t = stset_find(&s, fmt("t%03zu", k), &fl);
        assert_non_null(t);
        assert_ptr_equal(t, st_find(fl, t->name));
        uint8_t b;
        assert_int_equal(st_read_raw(fl, t, &b, &e), 0);
        assert_int_equal(b, k);
    }
    assert_null(stset_find(&s, "t200", NULL));
    assert_null(stset_find(&s, "", NULL));
    assert_null(st_find(&s.files[0], "t0"));
    assert_int_equal(strcmp(s.dir, root), 0);
    stset_close(&s);
}

/* ---- row 8: model folders ---- */

static void test_open_dir_errors(void **state) {
    StSet s;
    SeekErr e = {{0}};
    const char *missing = fmt("%s/does-not-exist", root);
    assert_int_equal(stset_open_dir(&s, missing, &e), -1);
    check_msg(&e, missing, NULL, NULL);
    const char *empty = fmt("%s/empty", root);
    make_dir(empty);
    assert_int_equal(stset_open_dir(&s, empty, &e), -1);
    check_msg(&e, empty, "model.safetensors.index.json", "model.safetensors in this folder");
    assert_null(s.files);
    assert_null(s.dir);
    const char *file = fresh("notdir");
    write_small_model(file);
    assert_int_equal(stset_open_dir(&s, file, &e), -1);
    check_msg(&e, file, "not a folder", NULL);
    /* a broken model.safetensors: the error is the file's */
    const char *broken = fmt("%s/broken", root);
    make_dir(broken);
    write_bytes(fmt("%s/model.safetensors", broken), "abc", 3);
    assert_int_equal(stset_open_dir(&s, broken, &e), -1);
    check_msg(&e, fmt("%s/model.safetensors", broken), "header too small", NULL);
    assert_int_equal(stset_open_file(&s, fmt("%s/model.safetensors", broken), &e), -1);
    check_msg(&e, "header too small", NULL, NULL);
}

/* a folder with two shards and an index; returns the folder */
static const char *make_sharded(const char *name, const char *index_json) {
    const char *dir = fmt("%s/%s", root, name);
    make_dir(dir);
    const char *s1[] = {"a", "b"}, *s2[] = {"c", "extra"};
    write_f32_shard(fmt("%s/model-00001-of-00002.safetensors", dir), s1, 2);
    write_f32_shard(fmt("%s/model-00002-of-00002.safetensors", dir), s2, 2);
    write_text(fmt("%s/model.safetensors.index.json", dir), index_json);
    return dir;
}

static void test_sharded_happy_path(void **state) {
    const char *dir = make_sharded("sharded",
        "{\"metadata\": {\"total_size\": 32},\n \"weight_map\": {\n"
        "  \"a\": \"model-00001-of-00002.safetensors\",\n  \"b\": \"model-00001-of-00002.safetensors\",\n"
        "  \"c\": \"model-00002-of-00002.safetensors\"}}\n");
    StSet s;
    SeekErr e = {{0}};
    n_opens = 0;
    if (stset_open_dir(&s, dir, &e) != 0) fail_msg("%s", e.msg);
    assert_int_equal(n_opens, 3);   /* the index, then each shard once */
    check_opens_inside(dir);
    assert_int_equal(s.n_files, 2);
    assert_int_equal(s.n_entries, 4);
    const char *want[4][2] = {{"a", "00001"}, {"b", "00001"}, {"c", "00002"}, {"extra", "00002"}};
    for (size_t i = 0; i < 4; i++) {
        const StFile *fl;
        assert_non_null(stset_find(&s, want[i][0], &fl));
        assert_non_null(strstr(fl->path, want[i][1]));
    }
    float got[2];
    const uint64_t shape[1] = {2};
    assert_int_equal(stset_load_f32(&s, "extra", got, 1, shape, 0, 0, &e), 0);
    assert_same_float(got[0], 2.0f, "extra", 0);
    assert_same_float(got[1], -2.0f, "extra", 1);
    stset_close(&s);

    /* a symlink that stays inside the folder is fine */
    const char *dir2 = fmt("%s/linked", root);
    make_dir(dir2);
    const char *names[] = {"w"};
    write_f32_shard(fmt("%s/real.safetensors", dir2), names, 1);
    assert_int_equal(symlink("real.safetensors", fmt("%s/link.safetensors", dir2)), 0);
    write_text(fmt("%s/model.safetensors.index.json", dir2), "{\"weight_map\":{\"w\":\"link.safetensors\"}}");
    if (stset_open_dir(&s, dir2, &e) != 0) fail_msg("%s", e.msg);
    assert_non_null(stset_find(&s, "w", NULL));
    stset_close(&s);
}

/* The index maps tensor 'w' to `shard` (and 'a' to a good shard): rejected before any shard is
 * opened, with a message naming the index and the bad name. */
static void bad_shard_name(const char *name, const char *shard, const char *word) {
    const char *dir = fmt("%s/%s", root, name);
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) fail_msg("mkdir %s: %s", dir, strerror(errno));
    const char *names[] = {"a"};
    write_f32_shard(fmt("%s/good.safetensors", dir), names, 1);
    char index[512];
    snprintf(index, sizeof index, "{\"weight_map\":{\"a\":\"good.safetensors\",\"w\":\"%s\"}}", shard);
    const char *ipath = fmt("%s/model.safetensors.index.json", dir);
    write_text(ipath, index);
    StSet s;
    SeekErr e = {{0}};
    n_opens = 0;
    if (stset_open_dir(&s, dir, &e) == 0) {
        stset_close(&s);
        fail_msg("shard name '%s' accepted", shard);
    }
    check_msg(&e, ipath, fmt("shard '%s'", shard), word);
    assert_int_equal(n_opens, 1);   /* only the index */
    assert_string_equal(opened[0], ipath);
    check_opens_inside(dir);
    assert_null(s.files);
}

static void test_shard_names_rejected(void **state) {
    /* files the bad names would reach, so that only the name check can stop them */
    const char *names[] = {"w"};
    write_f32_shard(fmt("%s/outside.safetensors", root), names, 1);
    bad_shard_name("dotdot", "../outside.safetensors", "out of the folder");
    bad_shard_name("abs", "/etc/passwd", "absolute");
    bad_shard_name("abs2", fmt("%s/outside.safetensors", root), "absolute");
    make_dir(fmt("%s/subdir", root));
    make_dir(fmt("%s/subdir/a", root));
    write_f32_shard(fmt("%s/subdir/a/b.safetensors", root), names, 1);
    bad_shard_name("subdir", "a/b.safetensors", "'/'");
    bad_shard_name("empty-name", "", "empty");
    bad_shard_name("dot", ".", "out of the folder");
    bad_shard_name("dot2", "..", "out of the folder");
    bad_shard_name("dotslash", "./good.safetensors", "'/'");
}

static void test_shard_symlink_escape(void **state) {
    const char *names[] = {"w"};
    const char *outside = fmt("%s/outside2.safetensors", root);
    write_f32_shard(outside, names, 1);
    const char *targets[2] = {"../outside2.safetensors", outside};
    for (int k = 0; k < 2; k++) {
        const char *dir = fmt("%s/symlink%d", root, k);
        make_dir(dir);
        const char *a[] = {"a"};
        write_f32_shard(fmt("%s/good.safetensors", dir), a, 1);
        assert_int_equal(symlink(targets[k], fmt("%s/evil.safetensors", dir)), 0);
        const char *ipath = fmt("%s/model.safetensors.index.json", dir);
        write_text(ipath, "{\"weight_map\":{\"a\":\"good.safetensors\",\"w\":\"evil.safetensors\"}}");
        StSet s;
        SeekErr e = {{0}};
        n_opens = 0;
        if (stset_open_dir(&s, dir, &e) == 0) {
            stset_close(&s);
            fail_msg("symlink to %s accepted", targets[k]);
        }
        check_msg(&e, ipath, "'evil.safetensors'", "outside the model folder");
        assert_int_equal(n_opens, 1);
        check_opens_inside(dir);
    }
    /* a symlinked folder: the model folder itself may be reached through a link */
    const char *real = make_sharded("realdir",
        "{\"weight_map\":{\"a\":\"model-00001-of-00002.safetensors\",\"c\":\"model-00002-of-00002.safetensors\"}}");
    const char *link = fmt("%s/linkdir", root);
    assert_int_equal(symlink(real, link), 0);
    StSet s;
    SeekErr e = {{0}};
    if (stset_open_dir(&s, link, &e) != 0) fail_msg("%s", e.msg);
    stset_close(&s);
}

static void test_shard_missing_file(void **state) {
    const char *dir = fmt("%s/missing", root);
    make_dir(dir);
    const char *a[] = {"a"};
    write_f32_shard(fmt("%s/model-00001-of-00002.safetensors", dir), a, 1);
    const char *ipath = fmt("%s/model.safetensors.index.json", dir);
    write_text(ipath, "{\"weight_map\":{\"a\":\"model-00001-of-00002.safetensors\","
                      "\"b\":\"model-00002-of-00002.safetensors\"}}");
    StSet s;
    SeekErr e = {{0}};
    n_opens = 0;
    assert_int_equal(stset_open_dir(&s, dir, &e), -1);
    check_msg(&e, ipath, "'model-00002-of-00002.safetensors'", "does not exist");
    assert_int_equal(n_opens, 1);
}

static void test_shard_tensor_missing(void **state) {
    const char *ipath;
    const char *dir = make_sharded("tmissing",
        "{\"weight_map\":{\"a\":\"model-00001-of-00002.safetensors\",\"zz\":\"model-00002-of-00002.safetensors\"}}");
    ipath = fmt("%s/model.safetensors.index.json", dir);
    StSet s;
    SeekErr e = {{0}};
    assert_int_equal(stset_open_dir(&s, dir, &e), -1);
    check_msg(&e, ipath, "tensor 'zz' not found", "model-00002-of-00002.safetensors");
    /* in the other shard than the map says */
    dir = make_sharded("tmoved",
        "{\"weight_map\":{\"b\":\"model-00001-of-00002.safetensors\",\"a\":\"model-00002-of-00002.safetensors\","
        "\"c\":\"model-00002-of-00002.safetensors\"}}");
    assert_int_equal(stset_open_dir(&s, dir, &e), -1);
    check_msg(&e, "tensor 'a'", "model-00002-of-00002.safetensors", "model-00001-of-00002.safetensors");
}

static void test_shard_duplicate_tensor(void **state) {
    const char *dir = fmt("%s/dup", root);
    make_dir(dir);
    const char *s1[] = {"a", "w"}, *s2[] = {"w", "c"};
    write_f32_shard(fmt("%s/one.safetensors", dir), s1, 2);
    write_f32_shard(fmt("%s/two.safetensors", dir), s2, 2);
    write_text(fmt("%s/model.safetensors.index.json", dir),
               "{\"weight_map\":{\"a\":\"one.safetensors\",\"w\":\"one.safetensors\",\"c\":\"two.safetensors\"}}");
    StSet s;
    SeekErr e = {{0}};
    assert_int_equal(stset_open_dir(&s, dir, &e), -1);
    check_msg(&e, "tensor 'w'", "one.safetensors", "two.safetensors");
    assert_non_null(strstr(e.msg, "two shards"));
}

static void test_index_malformed(void **state) {
    struct { const char *json; const char *w1, *w2; } cases[] = {
        {"not json", "not valid JSON", NULL},
        {"[]", "expected a JSON object", NULL},
        {"{}", "weight_map", "nothing"},
        {"{\"weight_map\": []}", "weight_map", "an array"},
        {"{\"weight_map\": {\"a\": 3}}", "weight_map 'a'", "an integer"},
        {"{\"weight_map\": {\"a\": null}}", "weight_map 'a'", "null"},
        {"{\"weight_map\": {\"a\": \"x.safetensors\", \"a\": \"y.safetensors\"}}", "not valid JSON", "duplicate"},
        {"{\"weight_map\": {\"a\": \"x.safetensors\"}} {}", "not valid JSON", NULL},
        {"{\"weight_map\": {\"a\": \"\xff.safetensors\"}}", "UTF-8", NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        const char *dir = fmt("%s/index%zu", root, i);
        make_dir(dir);
        const char *ipath = fmt("%s/model.safetensors.index.json", dir);
        write_text(ipath, cases[i].json);
        StSet s;
        SeekErr e = {{0}};
        n_opens = 0;
        assert_int_equal(stset_open_dir(&s, dir, &e), -1);
        check_msg(&e, ipath, cases[i].w1, cases[i].w2);
        assert_int_equal(n_opens, 1);
    }
    /* a broken shard: its own error, naming the shard */
    const char *dir = fmt("%s/badshard", root);
    make_dir(dir);
    const char *shard = fmt("%s/s.safetensors", dir);
    write_st(shard, "{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,7]}}", zeros, 7);
    write_text(fmt("%s/model.safetensors.index.json", dir), "{\"weight_map\":{\"w\":\"s.safetensors\"}}");
    StSet s;
    SeekErr e = {{0}};
    assert_int_equal(stset_open_dir(&s, dir, &e), -1);
    check_msg(&e, shard, "tensor 'w'", "expected 8");
    /* an empty weight_map is an empty model */
    dir = fmt("%s/emptymap", root);
    make_dir(dir);
    write_text(fmt("%s/model.safetensors.index.json", dir), "{\"metadata\":{},\"weight_map\":{}}");
    if (stset_open_dir(&s, dir, &e) != 0) fail_msg("%s", e.msg);
    assert_int_equal(s.n_files, 0);
    assert_null(stset_find(&s, "w", NULL));
    stset_close(&s);
}

/* ---- messages ---- */

static void test_errors_are_one_line(void **state) {
    /* a tensor name with a newline (JSON escape) and a path with one */
    header_fails("{\"a\\nb\\r\\u001b[31m\":{\"dtype\":\"Q\",\"shape\":[2],\"data_offsets\":[0,2]}}", zeros, 2,
                 "tensor 'a\\x0ab\\x0d\\x1b[31m'", "dtype");
    const char *p = fmt("%s/bad\nname.safetensors", root);
    write_bytes(p, "abc", 3);
    StFile f;
    SeekErr e = {{0}};
    assert_int_equal(st_open(&f, p, &e), -1);
    check_msg(&e, "bad\\x0aname.safetensors", "header too small", NULL);
    assert_int_equal(stset_load_f32(&(StSet){.dir = "d\ne"}, "x\ny", NULL, 0, NULL, 0, 0, &e), -1);
    check_msg(&e, "d\\x0ae", "tensor 'x\\x0ay' not found", NULL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dtype_names),
        cmocka_unit_test(test_files_shorter_than_8_bytes),
        cmocka_unit_test(test_header_length_out_of_range),
        cmocka_unit_test(test_no_large_allocation_before_checks),
        cmocka_unit_test(test_header_not_utf8),
        cmocka_unit_test(test_header_invalid_json),
        cmocka_unit_test(test_header_duplicate_keys),
        cmocka_unit_test(test_header_metadata),
        cmocka_unit_test(test_header_whitespace_padding),
        cmocka_unit_test(test_header_unknown_dtype),
        cmocka_unit_test(test_header_bad_shape),
        cmocka_unit_test(test_header_shape_overflow),
        cmocka_unit_test(test_header_data_offsets_malformed),
        cmocka_unit_test(test_header_tiling),
        cmocka_unit_test(test_offsets_perturbed),
        cmocka_unit_test(test_truncated_at_every_offset),
        cmocka_unit_test(test_file_shrinks_after_open),
        cmocka_unit_test(test_misaligned_data),
        cmocka_unit_test(test_nonfinite_values_load),
        cmocka_unit_test(test_dtype_conversions),
        cmocka_unit_test(test_read_f32_in_chunks),
        cmocka_unit_test(test_write_read_roundtrip),
        cmocka_unit_test(test_write_rejects),
        cmocka_unit_test(test_fp8_block_dequant),
        cmocka_unit_test(test_fp8_scale_errors),
        cmocka_unit_test(test_load_shape_mismatch),
        cmocka_unit_test(test_find_many),
        cmocka_unit_test(test_open_dir_errors),
        cmocka_unit_test(test_sharded_happy_path),
        cmocka_unit_test(test_shard_names_rejected),
        cmocka_unit_test(test_shard_symlink_escape),
        cmocka_unit_test(test_shard_missing_file),
        cmocka_unit_test(test_shard_tensor_missing),
        cmocka_unit_test(test_shard_duplicate_tensor),
        cmocka_unit_test(test_index_malformed),
        cmocka_unit_test(test_errors_are_one_line),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
