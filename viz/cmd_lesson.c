/* cmd_lesson.c: `seek lesson` — the lessons in lessons/ (lesson.h; docs/contributing.md).
 *
 *   seek lesson                    lists them: number, file, title
 *   seek lesson NN|FILE --check    runs every cell in one REPL (repl.h), in order, with one
 *                                  OpenMP thread (the numbers the lessons pin), and checks that
 *                                  every line of each ```expect block is a whole line of its
 *                                  cell's output; a failing cell is named by file and line with
 *                                  what was expected and what it printed.
 * Stepping through a lesson at a terminal and rendering it as a page are not built yet (issue 20).
 * Program tier: exit 0 ok, 1 a lesson that fails or cannot be read, 2 usage. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "lesson.h"
#include "repl.h"

#define LESSON_USAGE "seek lesson [NN|FILE --check]"
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
        fprintf(stderr, "seek lesson: %s\n", err.msg);
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
    snprintf(path, cap, "%s", arg);
    return 0;
}

/* is want (a line, no newline) a whole line of out? */
static int has_line(const char *out, const char *want, size_t wn) {
    for (const char *p = out; *p;) {
        const char *nl = strchr(p, '\n');
        size_t n = nl ? (size_t)(nl - p) : strlen(p);
        if (n == wn && !memcmp(p, want, wn)) return 1;
        if (!nl) break;
        p = nl + 1;
    }
    return 0;
}

static int check(const char *path) {
    SeekErr err;
    Lesson l;
    if (read_lesson(path, &l, &err)) {
        fprintf(stderr, "seek lesson: %s\n", err.msg);
        return 1;
    }
    setenv("OMP_NUM_THREADS", "1", 1);   /* before the first parallel region: the pinned numbers are one thread's */
    char *obuf = NULL, *ebuf = NULL;
    size_t on = 0, en = 0;
    FILE *out = open_memstream(&obuf, &on), *errf = out ? open_memstream(&ebuf, &en) : NULL;
    if (!out || !errf) {
        if (out) fclose(out);
        free(obuf);
        lesson_free(&l);
        fprintf(stderr, "seek lesson: out of memory\n");
        return 1;
    }
    Repl r;
    repl_init(&r, out, errf);
    int rc = 0, expected = 0;
    size_t cell_start = 0;
    for (int i = 0; i < l.n && !rc; i++) {
        const LessonBlock *b = &l.b[i];
        if (b->kind == LESSON_CELL) {
            fflush(out);
            cell_start = on;
            int errors = r.n_errors;
            for (const char *p = b->text; *p;) {
                const char *nl = strchr(p, '\n');
                size_t n = nl ? (size_t)(nl - p) : strlen(p);
                if (repl_handle_line(&r, p, n) == REPL_QUIT) break;
                p += n + (nl ? 1 : 0);
            }
            fflush(out);
            fflush(errf);
            if (r.n_errors != errors) {
                const char *e = ebuf ? ebuf : "";
                const char *last = e, *q = e;
                while ((q = strstr(q, "error:"))) last = q++;
                fprintf(stderr, "seek lesson: %s:%d: cell %d failed: %.*s\n", path, b->line, b->cell,
                        (int)strcspn(last, "\n"), last);
                rc = 1;
            }
            continue;
        }
        /* an expect block: each line a whole line of its cell's output */
        const char *cell_out = obuf ? obuf + cell_start : "";
        for (const char *p = b->text; *p && !rc;) {
            const char *nl = strchr(p, '\n');
            size_t n = nl ? (size_t)(nl - p) : strlen(p);
            expected++;
            if (!has_line(cell_out, p, n)) {
                fprintf(stderr, "seek lesson: %s:%d: cell %d: expected line not shown: %.*s\n", path, b->line, b->cell,
                        (int)n, p);
                fprintf(stderr, "  the cell printed:\n");
                int shown = 0;
                for (const char *s = cell_out; *s && shown < 40; shown++) {
                    const char *e = strchr(s, '\n');
                    size_t k = e ? (size_t)(e - s) : strlen(s);
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
    free(obuf);
    free(ebuf);
    if (!rc) printf("%s: %s: %d cells ran, %d expected lines shown\n", path, l.title, l.cells, expected);
    lesson_free(&l);
    return rc;
}

int cmd_lesson(int argc, char **argv) {
    const char *which = NULL;
    int check_mode = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--check")) check_mode = 1;
        else if (!strncmp(argv[i], "--", 2)) return usage("unknown option", argv[i]);
        else if (which) return usage("one lesson at a time; also got", argv[i]);
        else which = argv[i];
    }
    if (!which) return check_mode ? usage("--check needs a lesson", NULL) : list();
    if (!check_mode)
        return usage("stepping through a lesson at a terminal is not built yet: type its ```seek cells into seek repl, or "
                     "check it with --check; lesson", which);
    char path[4096];
    SeekErr err;
    if (resolve(which, path, sizeof path, &err)) {
        fprintf(stderr, "seek lesson: %s\n", err.msg);
        return 1;
    }
    return check(path);
}
