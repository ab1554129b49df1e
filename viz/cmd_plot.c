/* cmd_plot.c: `seek plot`, the curves of seek rl runs in one PNG for a slide (viz/rl_plot.h,
 * docs/rl.md "Curves").
 *
 *   seek plot LOG [LOG...] [--label NAME]... [--title TEXT] -o OUT.png
 *
 * LOG is a run's rl.log, or the run's folder (then FOLDER/rl.log). Up to 8 logs are overlaid in
 * the same panels, one colour each; the i-th --label names the i-th LOG, and a log without one is
 * named after its folder. The title defaults to the labels joined by " vs ". Prints one line a
 * log (steps, updates, evaluations, resumes, replaced lines, gaps) and the picture's size.
 *
 * Program tier: errors are one line on stderr starting with "seek plot: "; exit status 0 ok, 1 a
 * bad or unreadable log or an unwritable OUT, 2 usage. OUT is written atomically (OUT.tmp, then
 * rename): a failed run leaves OUT as it was, or absent.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "commands.h"
#include "rl_plot.h"

#define PLOT_USAGE "seek plot LOG [LOG...] [--label NAME]... [--title TEXT] -o OUT.png"

/* msg, then the argument (at most 40 bytes, control bytes as '?', so the error stays one line) */
static int usage(const char *msg, const char *arg) {
    char a[48];
    fprintf(stderr, "seek plot: %s%s%s (usage: " PLOT_USAGE ")\n", msg, arg ? " " : "", arg_for_message(a, arg));
    return 2;
}

/* The log's path (a folder means FOLDER/rl.log) and its default label, the folder's name. */
static int log_path(const char *arg, char *path, size_t cap, char *label, size_t lcap, SeekErr *err) {
    struct stat st;
    int dir = stat(arg, &st) == 0 && S_ISDIR(st.st_mode);
    if (dir) {
        if (path_join(path, cap, arg, "rl.log", err)) return -1;
    } else if ((size_t)snprintf(path, cap, "%s", arg) >= cap) return seek_fail(err, "%s: path too long", arg);
    char real[PATH_MAX];
    const char *name = NULL;
    if (realpath(path, real)) { /* the folder holding the log: its last component */
        char *slash = strrchr(real, '/');
        if (slash && slash != real) {
            *slash = '\0';
            slash = strrchr(real, '/');
            name = slash ? slash + 1 : real;
        }
    }
    if (!name || !*name) { /* unreadable (reported when it is read) or at the root: the file's name */
        const char *slash = strrchr(path, '/');
        name = slash ? slash + 1 : path;
    }
    size_t k = strlen(name) < lcap ? strlen(name) : lcap - 1; /* cut (the legend shows 40 characters) */
    memcpy(label, name, k);
    label[k] = '\0';
    return 0;
}

/* control bytes as '?', so what is printed stays on its line */
static void printable(char *s) {
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f) *s = '?';
}

/* Is b the same file as a (both existing), or the same string? */
static int same_file(const char *a, const char *b) {
    struct stat sa, sb;
    if (!strcmp(a, b)) return 1;
    return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

int cmd_plot(int argc, char **argv) {
    const char *args[RLPLOT_MAX_RUNS], *given[RLPLOT_MAX_RUNS], *out = NULL, *title = NULL;
    int n = 0, n_labels = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (a[0] != '-' || !a[1]) {
            if (n == RLPLOT_MAX_RUNS) return usage("too many logs, at most 8:", a);
            args[n++] = a;
            continue;
        }
        if (strcmp(a, "-o") && strcmp(a, "--out") && strcmp(a, "--label") && strcmp(a, "--title"))
            return cli_bad_option("plot", a);
        if (i + 1 >= argc) return usage("needs a value:", a);
        const char *v = argv[++i];
        if (!strcmp(a, "--label")) {
            if (!*v) return usage("--label needs a name", NULL);
            if (n_labels == RLPLOT_MAX_RUNS) return usage("too many --label, at most 8:", v);
            given[n_labels++] = v;
        } else if (!strcmp(a, "--title")) {
            title = v;
        } else {
            if (out) return usage("-o given twice:", v);
            if (!*v) return usage("-o needs a file name", NULL);
            out = v;
        }
    }
    if (n == 0) return usage("no LOG given", NULL);
    if (!out) return usage("no -o OUT.png given", NULL);
    if (n_labels > n) return usage("more --label than logs:", given[n]);

    char paths[RLPLOT_MAX_RUNS][4096], labels[RLPLOT_MAX_RUNS][RLPLOT_LABEL_LEN];
    SeekErr err;
    for (int i = 0; i < n; i++) {
        if (log_path(args[i], paths[i], sizeof paths[i], labels[i], sizeof labels[i], &err)) {
            printable(err.msg);
            cli_fail("plot", err.msg);
            return 1;
        }
        if (i < n_labels) snprintf(labels[i], sizeof labels[i], "%s", given[i]);
        if (same_file(paths[i], out)) return usage("-o OUT.png would overwrite the log", out);
    }

    RlLog logs[RLPLOT_MAX_RUNS];
    const RlLog *lp[RLPLOT_MAX_RUNS];
    const char *lab[RLPLOT_MAX_RUNS];
    int have = 0, rc = 0;
    for (; have < n && !rc; have++) {
        rc = rllog_read(&logs[have], paths[have], &err);
        lp[have] = &logs[have];
        lab[have] = labels[have];
    }
    Image im = {0};
    RlPlotInfo info;
    if (!rc) rc = rlplot_render(lp, lab, n, title, &im, &info, &err);
    if (!rc) rc = png_write(out, &im, &err);
    if (rc) {
        printable(err.msg); /* a path with a newline in it must not break the line */
        cli_fail("plot", err.msg);
    } else {
        for (int i = 0; i < n; i++) {
            const RlLog *l = &logs[i];
            printable(labels[i]);
            printable(paths[i]);
            printf("%s: %s: %lld rl steps", labels[i], paths[i], l->rl_steps);
            if (l->rl_updates != l->rl_steps) printf(" (%lld updates)", l->rl_updates);
            printf(", %lld evaluations", l->eval_steps);
            if (l->starts > 1) printf(", %lld starts (resumed)", l->starts);
            if (l->replaced) printf(", %lld line%s replaced by later ones (steps taken again)", l->replaced, l->replaced > 1 ? "s" : "");
            if (l->gaps) printf(", %lld nan/inf value%s left as gaps", l->gaps, l->gaps > 1 ? "s" : "");
            if (l->dropped_tail) printf(", an unfinished last line dropped");
            printf("\n");
        }
        char shown_out[4096];
        snprintf(shown_out, sizeof shown_out, "%s", out);
        printable(shown_out);
        printf("wrote %s (%dx%d, %d panel%s%s%s)\n", shown_out, im.w, im.h, info.panels, info.panels > 1 ? "s" : "",
               info.missing[0] ? "; not in these logs: " : "", info.missing);
    }
    image_free(&im);
    for (int i = 0; i < have; i++) rllog_free(&logs[i]);
    return rc ? 1 : 0;
}
