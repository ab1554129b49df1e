/* cmd_lesson.c: `seek lesson` — the lessons in lessons/ (lesson.h; docs/contributing.md).
 *
 *   seek lesson                     lists them: number, file, title
 *   seek lesson NN|FILE [--restart] steps through one at a terminal (lesson_step.c): prose, the
 *                                   cell, Enter runs it; back, quit; resumes where it was left
 *   seek lesson NN|FILE --check     runs every cell in one REPL (repl.h), in order, with one
 *                                   OpenMP thread (the numbers the lessons pin), and checks that
 *                                   every line of each ```expect block is a whole line of its
 *                                   cell's output; a failing cell is named by file and line with
 *                                   what was expected and what it printed.
 *   seek lesson NN|FILE --html OUT  runs it as --check does and writes one self-contained page
 *                                   (lesson_html.c): prose, cells, outputs, pictures embedded.
 * A cell's `png NAME` goes into a picture folder of the lesson's own (Repl.pic_dir): a temporary
 * one for --check and --html (removed after), the learner's state folder when stepping.
 * Program tier: exit 0 ok, 1 a lesson that fails or cannot be read or written, 2 usage. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "commands.h"
#include "lesson.h"
#include "repl.h"

#define LESSON_USAGE "seek lesson [NN|FILE [--check | --html OUT.html | --restart]]"
#define LESSON_DIR "lessons"

static int usage(const char *msg, const char *arg) {
    char a[48];
    fprintf(stderr, "seek lesson: %s%s%s (usage: " LESSON_USAGE ")\n", msg, arg ? " " : "", arg_for_message(a, arg));
    return 2;
}

static int name_cmp(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* the lesson files lessons/NN-*.md, sorted; returns the count or -1 */
static int list_files(char ***out, SeekErr *err) {
    DIR *d = opendir(LESSON_DIR);
    if (!d) return seek_fail(err, "%s/: cannot open (run seek from the repository's root)", LESSON_DIR);
    char **v = NULL;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        const char *s = e->d_name;
        size_t k = strlen(s);
        if (k < 7 || s[0] < '0' || s[0] > '9' || s[1] < '0' || s[1] > '9' || s[2] != '-' || strcmp(s + k - 3, ".md")) continue;
        char **nv = realloc(v, (size_t)(n + 1) * sizeof *nv);
        char *p = nv ? malloc(strlen(LESSON_DIR) + k + 2) : NULL;
        if (!p) {
            free(nv ? nv : v);
            closedir(d);
            return seek_fail(err, "out of memory");
        }
        v = nv;
        sprintf(p, "%s/%s", LESSON_DIR, s);
        v[n++] = p;
    }
    closedir(d);
    if (n) qsort(v, (size_t)n, sizeof *v, name_cmp);
    *out = v;
    return n;
}

static void free_files(char **v, int n) {
    for (int i = 0; i < n; i++) free(v[i]);
    free(v);
}

static int read_lesson(const char *path, Lesson *l, SeekErr *err) {
    char *text;
    size_t len;
    if (read_text_file(path, LESSON_MAX_BYTES, &text, &len, err)) return -1;
    int rc = lesson_parse(l, text, len, path, err);
    free(text);
    return rc;
}

static int list(void) {
    SeekErr err;
    char **v;
    int n = list_files(&v, &err);
    if (n < 0) {
        cli_fail("lesson", err.msg);
        return 1;
    }
    for (int i = 0; i < n; i++) {
        Lesson l;
        if (read_lesson(v[i], &l, &err)) printf("%.2s  %-28s (%s)\n", v[i] + strlen(LESSON_DIR) + 1, v[i], err.msg);
        else {
            printf("%.2s  %-28s %s (%d cells)\n", v[i] + strlen(LESSON_DIR) + 1, v[i], l.title, l.cells);
            lesson_free(&l);
        }
    }
    if (!n) printf("no lessons in %s/\n", LESSON_DIR);
    else printf("seek lesson NN steps through one; seek lesson NN --html OUT.html renders it as a page\n");
    free_files(v, n);
    return 0;
}

/* NN (two digits) or a path */
static int resolve(const char *arg, char *path, size_t cap, SeekErr *err) {
    if (strlen(arg) == 2 && arg[0] >= '0' && arg[0] <= '9' && arg[1] >= '0' && arg[1] <= '9') {
        char **v;
        int n = list_files(&v, err), hit = -1;
        if (n < 0) return -1;
        for (int i = 0; i < n; i++)
            if (!strncmp(v[i] + strlen(LESSON_DIR) + 1, arg, 2)) hit = i;
        if (hit >= 0) snprintf(path, cap, "%s", v[hit]);
        free_files(v, n);
        if (hit < 0) return seek_fail(err, "no lesson %s in %s/ (seek lesson lists them)", arg, LESSON_DIR);
        return 0;
    }
    if ((size_t)snprintf(path, cap, "%s", arg) >= cap) return seek_fail(err, "%.60s...: path too long", arg);
    return 0;
}

int lesson_run_cell(Repl *r, const LessonBlock *cell, int echo) {
    int errors = r->n_errors;
    for (const char *p = cell->text; *p;) {
        const char *nl = strchr(p, '\n');
        size_t n = nl ? (size_t)(nl - p) : strlen(p);
        if (echo) {
            char esc[1024];
            escape_bytes(esc, sizeof esc, p, n, 1);
            fprintf(r->out, "seek> %s\n", esc);
        }
        repl_interrupt = 0;
        if (repl_handle_line(r, p, n) == REPL_QUIT) break;
        p += n + (nl ? 1 : 0);
    }
    fflush(r->out);
    fflush(r->err);
    return r->n_errors - errors;
}

/* is want (a line, no newline) a whole line of out[0, len)? */
static int has_line(const char *out, size_t len, const char *want, size_t wn) {
    for (const char *p = out, *end = out + len; p < end;) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
        if (n == wn && !memcmp(p, want, wn)) return 1;
        if (!nl) break;
        p = nl + 1;
    }
    return 0;
}

/* ---- a run of every cell (--check, --html) ---- */

typedef struct {
    size_t out0, out1, err0, err1;   /* what the cell printed: [out0, out1) of the output, ... */
    LessonPicture *pics;
    int n_pics;
} CellRec;

typedef struct {
    CellRec *rec;        /* (cells) */
    int cur;             /* the cell running, from 1 */
    int failed;          /* a picture could not be read back */
    SeekErr err;
} RunCtx;

static int png_size(const unsigned char *p, size_t n, int *w, int *h) {
    static const unsigned char magic[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    if (n < 24 || memcmp(p, magic, 8) || memcmp(p + 12, "IHDR", 4)) return -1;
    unsigned long W = (unsigned long)p[16] << 24 | (unsigned long)p[17] << 16 | (unsigned long)p[18] << 8 | p[19];
    unsigned long H = (unsigned long)p[20] << 24 | (unsigned long)p[21] << 16 | (unsigned long)p[22] << 8 | p[23];
    if (W == 0 || H == 0 || W > 1000000 || H > 1000000) return -1;
    *w = (int)W;
    *h = (int)H;
    return 0;
}

/* Repl.on_png: read the picture back at once (a later cell may write the same name again) */
static void keep_picture(void *vctx, const char *path) {
    RunCtx *c = vctx;
    if (c->failed || c->cur < 1) return;
    CellRec *rec = &c->rec[c->cur - 1];
    char *data;
    size_t len;
    if (read_text_file(path, LESSON_MAX_PICTURE, &data, &len, &c->err)) {
        c->failed = 1;
        return;
    }
    LessonPicture p = {(unsigned char *)data, len, 0, 0, ""};
    if (png_size(p.png, len, &p.w, &p.h)) {
        free(data);
        c->failed = 1;
        seek_fail(&c->err, "%s: not a PNG file", path);
        return;
    }
    const char *base = strrchr(path, '/');
    snprintf(p.name, sizeof p.name, "%s", base ? base + 1 : path);
    LessonPicture *np = realloc(rec->pics, (size_t)(rec->n_pics + 1) * sizeof *np);
    if (!np) {
        free(data);
        c->failed = 1;
        seek_fail(&c->err, "out of memory");
        return;
    }
    rec->pics = np;
    rec->pics[rec->n_pics++] = p;
}

/* A folder of its own for the pictures of one run; removed (with what the cells put in it) after. */
static int make_pic_dir(char *dir, size_t cap, SeekErr *err) {
    const char *t = getenv("TMPDIR");
    if (!t || !*t) t = "/tmp";
    if ((size_t)snprintf(dir, cap, "%s/seek-lesson-XXXXXX", t) >= cap) return seek_fail(err, "TMPDIR: path too long");
    if (!mkdtemp(dir)) return seek_fail(err, "%s: cannot make a folder for the lesson's pictures: %s", dir, strerror(errno));
    return 0;
}

static void remove_pic_dir(const char *dir) {
    DIR *d = opendir(dir);
    if (d) { /* flat: png NAME takes no folder */
        struct dirent *e;
        char p[4096 + 256];
        while ((e = readdir(d)))
            if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
                snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
                unlink(p);
            }
        closedir(d);
    }
    rmdir(dir);
}

/* Runs every cell of the lesson and checks its expect blocks; with cells_out (--html), fills
 * cells_out[c - 1] for each cell c, pointing into *obuf and *ebuf (the caller frees those and
 * each cell's pictures). Returns 0 or 1 (the lesson fails; said on stderr). */
static int run_lesson(const char *path, const Lesson *l, LessonCellOut *cells_out, char **obuf_out, char **ebuf_out) {
    setenv("OMP_NUM_THREADS", "1", 1);   /* before the first parallel region: the pinned numbers are one thread's */
    char *obuf = NULL, *ebuf = NULL, pic_dir[4096];
    size_t on = 0, en = 0;
    SeekErr err;
    if (make_pic_dir(pic_dir, sizeof pic_dir, &err)) {
        cli_fail("lesson", err.msg);
        return 1;
    }
    FILE *out = open_memstream(&obuf, &on), *errf = out ? open_memstream(&ebuf, &en) : NULL;
    RunCtx ctx = {calloc((size_t)l->cells, sizeof(CellRec)), 0, 0, {""}};
    if (!out || !errf || !ctx.rec) {
        if (out) fclose(out);
        if (errf) fclose(errf);
        free(obuf);
        free(ebuf);
        free(ctx.rec);
        remove_pic_dir(pic_dir);
        fprintf(stderr, "seek lesson: out of memory\n");
        return 1;
    }
    Repl r;
    repl_init(&r, out, errf);
    r.pic_dir = pic_dir;
    r.on_png = keep_picture;
    r.on_png_ctx = &ctx;
    int rc = 0, expected = 0;
    for (int i = 0; i < l->n && !rc; i++) {
        const LessonBlock *b = &l->b[i];
        if (b->kind == LESSON_PROSE) continue;
        if (b->kind == LESSON_CELL) {
            CellRec *rec = &ctx.rec[b->cell - 1];
            fflush(out);
            fflush(errf);
            rec->out0 = on;
            rec->err0 = en;
            ctx.cur = b->cell;
            int errors = lesson_run_cell(&r, b, 0);
            rec->out1 = on;
            rec->err1 = en;
            if (errors) {
                const char *e = ebuf ? ebuf + rec->err0 : "";
                const char *last = e, *q = e;
                while ((q = strstr(q, "error:"))) last = q++;
                fprintf(stderr, "seek lesson: %s:%d: cell %d failed: %.*s\n", path, b->line, b->cell,
                        (int)strcspn(last, "\n"), last);
                rc = 1;
            } else if (ctx.failed) {
                fprintf(stderr, "seek lesson: %s:%d: cell %d: its picture cannot be read back: %s\n", path, b->line, b->cell,
                        ctx.err.msg);
                rc = 1;
            }
            continue;
        }
        /* an expect block: each line a whole line of its cell's output */
        const CellRec *rec = &ctx.rec[b->cell - 1];
        const char *cell_out = obuf ? obuf + rec->out0 : "";
        size_t cell_len = rec->out1 - rec->out0;
        for (const char *p = b->text; *p && !rc;) {
            const char *nl = strchr(p, '\n');
            size_t n = nl ? (size_t)(nl - p) : strlen(p);
            expected++;
            if (!has_line(cell_out, cell_len, p, n)) {
                fprintf(stderr, "seek lesson: %s:%d: cell %d: expected line not shown: %.*s\n", path, b->line, b->cell,
                        (int)n, p);
                fprintf(stderr, "  the cell printed:\n");
                int shown = 0;
                for (const char *s = cell_out, *end = cell_out + cell_len; s < end && shown < 40; shown++) {
                    const char *e = memchr(s, '\n', (size_t)(end - s));
                    size_t k = e ? (size_t)(e - s) : (size_t)(end - s);
                    fprintf(stderr, "  | %.*s\n", (int)k, s);
                    s += k + (e ? 1 : 0);
                }
                rc = 1;
            }
            p += n + (nl ? 1 : 0);
        }
    }
    repl_free(&r);
    fclose(out);
    fclose(errf);
    remove_pic_dir(pic_dir);
    if (!rc && !cells_out) printf("%s: %s: %d cells ran, %d expected lines shown\n", path, l->title, l->cells, expected);
    for (int c = 0; c < l->cells; c++) {
        CellRec *rec = &ctx.rec[c];
        if (cells_out && !rc) {
            cells_out[c] = (LessonCellOut){obuf ? obuf + rec->out0 : "", ebuf ? ebuf + rec->err0 : "",
                                           rec->out1 - rec->out0, rec->err1 - rec->err0, rec->pics, rec->n_pics};
            continue;
        }
        for (int k = 0; k < rec->n_pics; k++) free(rec->pics[k].png);
        free(rec->pics);
    }
    free(ctx.rec);
    if (cells_out && !rc) {
        *obuf_out = obuf;
        *ebuf_out = ebuf;
    } else {
        free(obuf);
        free(ebuf);
    }
    return rc;
}

/* Can OUT be written? Said before the cells run, so a typo costs no time; write_file_atomic says
 * it again if it changes meanwhile. */
static int html_target_ok(const char *out, SeekErr *err) {
    struct stat st;
    if (!*out) return seek_fail(err, "--html: an empty output path");
    if (stat(out, &st) == 0 && S_ISDIR(st.st_mode)) return seek_fail(err, "%s: is a folder, not a file", out);
    char dir[4096];
    const char *slash = strrchr(out, '/');
    if (!slash) snprintf(dir, sizeof dir, ".");
    else if (slash == out) snprintf(dir, sizeof dir, "/");
    else if ((size_t)snprintf(dir, sizeof dir, "%.*s", (int)(slash - out), out) >= sizeof dir) return seek_fail(err, "%s: path too long", out);
    if (stat(dir, &st) != 0) return seek_fail(err, "%s: cannot write: folder %s: %s", out, dir, strerror(errno));
    if (!S_ISDIR(st.st_mode)) return seek_fail(err, "%s: cannot write: %s is not a folder", out, dir);
    if (access(dir, W_OK) != 0) return seek_fail(err, "%s: cannot write into folder %s: %s", out, dir, strerror(errno));
    return 0;
}

static int html(const char *path, const Lesson *l, const char *out_path) {
    SeekErr err;
    if (!lesson_html_available()) {
        fprintf(stderr, "seek lesson: --html needs libcmark, and this seek was built without it "
                        "(install libcmark-dev: bash scripts/install-deps.sh, then make)\n");
        return 1;
    }
    if (html_target_ok(out_path, &err)) {
        cli_fail("lesson", err.msg);
        return 1;
    }
    LessonCellOut *cells = calloc((size_t)l->cells, sizeof *cells);
    char *obuf = NULL, *ebuf = NULL;
    if (!cells) {
        fprintf(stderr, "seek lesson: out of memory\n");
        return 1;
    }
    if (run_lesson(path, l, cells, &obuf, &ebuf)) {
        free(cells);
        return 1;
    }
    char *page = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&page, &n);
    int rc = f ? lesson_html(f, l, path, cells, &err) : seek_fail(&err, "out of memory");
    if (f && fclose(f) && !rc) rc = seek_fail(&err, "out of memory");
    if (!rc) rc = write_file_atomic(out_path, page, n, &err);
    int pics = 0;
    for (int c = 0; c < l->cells; c++) {
        pics += cells[c].n_pics;
        for (int k = 0; k < cells[c].n_pics; k++) free(cells[c].pics[k].png);
        free(cells[c].pics);
    }
    free(cells);
    free(obuf);
    free(ebuf);
    free(page);
    if (rc) {
        cli_fail("lesson", err.msg);
        return 1;
    }
    printf("wrote %s (%zu KiB): %s, %d cells, %d picture%s\n", out_path, (n + 1023) / 1024, l->title, l->cells, pics,
           pics == 1 ? "" : "s");
    return 0;
}

int cmd_lesson(int argc, char **argv) {
    const char *which = NULL, *html_out = NULL;
    int check_mode = 0, restart = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--check")) check_mode = 1;
        else if (!strcmp(argv[i], "--restart")) restart = 1;
        else if (!strcmp(argv[i], "--html")) {
            if (i + 1 >= argc) return usage("--html needs an output file", NULL);
            html_out = argv[++i];
        } else if (argv[i][0] == '-') return cli_bad_option("lesson", argv[i]);
        else if (which) return usage("one lesson at a time; also got", argv[i]);
        else which = argv[i];
    }
    if (check_mode + !!html_out + restart > 1) return usage("one of --check, --html and --restart at a time", NULL);
    if (!which) {
        if (check_mode) return usage("--check needs a lesson", NULL);
        if (html_out) return usage("--html needs a lesson", NULL);
        if (restart) return usage("--restart needs a lesson", NULL);
        return list();
    }
    char path[4096];
    SeekErr err;
    Lesson l;
    if (resolve(which, path, sizeof path, &err) || read_lesson(path, &l, &err)) {
        cli_fail("lesson", err.msg);
        return 1;
    }
    int rc = check_mode ? run_lesson(path, &l, NULL, NULL, NULL) : html_out ? html(path, &l, html_out) : lesson_step(path, &l, restart);
    lesson_free(&l);
    return rc;
}
