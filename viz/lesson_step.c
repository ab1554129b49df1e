/* lesson_step.c: `seek lesson NN` — a lesson stepped through at a terminal (lesson.h).
 *
 * The learner reads the prose before a cell and the cell's commands; Enter runs the cell in one
 * REPL kept for the whole lesson (its output, its terminal pictures and where each PNG went),
 * then the prose after it and the next cell. `back` goes to the previous cell, `quit` (or EOF,
 * or Ctrl-C at the prompt) leaves; any other line is a REPL command run on the lesson's model, to
 * try things. Off a terminal the same lines are read from stdin, each echoed after the prompt, so
 * a here-doc steps through a lesson and its transcript reads like a session.
 *
 * Going back, or resuming, runs the cells before the one shown again, quietly, into a fresh REPL:
 * a cell may depend on everything before it (a group sampled, an update taken), and replaying them
 * is the one way to put the REPL where it was. Seeds are set by the cells, so the replay is exact.
 *
 * Progress: one small file a lesson, $XDG_STATE_HOME/seek/lessons/KEY.progress (else
 * ~/.local/state/seek/lessons/), KEY the lesson file's name without .md, written with
 * write_file_atomic after every move:
 *     seek lesson progress 1
 *     file 13-grpo.md
 *     next 3                  (the cell shown next; cells + 1 once the lesson was finished)
 * A file that does not read exactly so gets a one-line warning and the lesson starts at the top.
 * Pictures (`png NAME`) go into $XDG_STATE_HOME/seek/lessons/KEY/, kept for the learner to open.
 * With no state folder (no HOME, a read-only one) the lesson still runs: a warning, no resume,
 * pictures in a temporary folder that is kept. */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#ifdef SEEK_HAVE_EDIT
#include <editline/readline.h>
#endif

#include "lesson.h"
#include "repl.h"

#define PROGRESS_MAGIC "seek lesson progress 1"

typedef struct {
    const char *path;
    const Lesson *l;
    Repl r;
    int tty_in;              /* stdin is a terminal: libedit, no echo */
    int style;               /* ANSI bold/colour on stdout */
    int width;               /* stdout's columns */
    char key[200];           /* the file name without .md */
    char call[64];           /* how to name it again: "13" for lessons/13-*.md, else the path */
    char state[4096];        /* the progress file, "" when there is no state folder */
    char pic_dir[4096];
    int save_warned;
    int quiet;               /* replaying: pictures are not announced */
    char **pics;             /* the PNGs the running cell wrote */
    int n_pics;
} Step;

static volatile sig_atomic_t step_sigint;

static void on_sigint(int sig) {
    (void)sig;
    repl_interrupt = 1; /* stops a `gen` inside a cell */
    step_sigint = 1;
}

static const char *sty(const Step *s, const char *code) { return s->style ? code : ""; }
#define BOLD "\033[1m"
#define DIM "\033[2m"
#define CYAN "\033[36m"
#define RESET "\033[0m"

/* ---- the state folder and the progress file ---- */

/* mkdir -p, each new folder 0700 (progress is the learner's own) */
static int make_dirs(char *p, SeekErr *err) {
    for (char *q = p + 1;; q++) {
        if (*q != '/' && *q) continue;
        char c = *q;
        *q = '\0';
        int rc = mkdir(p, 0700);
        int e = errno;
        struct stat st;
        if (rc != 0 && !(e == EEXIST && stat(p, &st) == 0 && S_ISDIR(st.st_mode))) {
            seek_fail(err, "%s: cannot make the folder: %s", p, e == EEXIST ? "a file is in the way" : strerror(e));
            *q = c;
            return -1;
        }
        *q = c;
        if (!c) return 0;
    }
}

static int state_folder(char *out, size_t cap, SeekErr *err) {
    const char *x = getenv("XDG_STATE_HOME"), *h = getenv("HOME");
    int n;
    if (x && x[0] == '/') n = snprintf(out, cap, "%s/seek/lessons", x);
    else if (h && h[0] == '/') n = snprintf(out, cap, "%s/.local/state/seek/lessons", h);
    else return seek_fail(err, "neither XDG_STATE_HOME nor HOME names a folder");
    if (n < 0 || (size_t)n >= cap) return seek_fail(err, "the state folder's path is too long");
    return make_dirs(out, err);
}

static void save(Step *s, int next) {
    if (!s->state[0]) return;
    char text[512];
    int n = snprintf(text, sizeof text, PROGRESS_MAGIC "\nfile %s.md\nnext %d\n", s->key, next);
    SeekErr err;
    if (write_file_atomic(s->state, text, (size_t)n, &err) && !s->save_warned) {
        fprintf(stderr, "seek lesson: cannot keep your progress: %s\n", err.msg);
        s->save_warned = 1;
    }
}

/* The cell to show first: the saved one, or 1 (with a one-line warning when the file is bad). */
static int load_progress(Step *s) {
    char *text;
    size_t len;
    SeekErr err;
    struct stat st;
    if (!s->state[0] || (stat(s->state, &st) != 0 && errno == ENOENT)) return 1;
    if (read_text_file(s->state, 4096, &text, &len, &err)) {
        fprintf(stderr, "seek lesson: %s; starting at the beginning\n", err.msg);
        return 1;
    }
    char want[300];
    snprintf(want, sizeof want, PROGRESS_MAGIC "\nfile %s.md\nnext ", s->key);
    size_t wn = strlen(want);
    long long next = 0;
    const char *why = NULL;
    if (len < wn || memcmp(text, want, wn)) why = "not a progress file of this lesson";
    else {
        char num[32];
        size_t k = len - wn;
        if (k == 0 || k >= sizeof num || text[len - 1] != '\n') why = "its cell number is not one line";
        else {
            memcpy(num, text + wn, k - 1);
            num[k - 1] = '\0';
            if (parse_i64(num, 1, (long long)s->l->cells + 1, &next, "next", &err)) why = "its cell number is not one of this lesson's cells";
        }
    }
    free(text);
    if (why) {
        fprintf(stderr, "seek lesson: %s: %s; starting at the beginning\n", s->state, why);
        return 1;
    }
    return (int)next;
}

/* ---- showing the lesson ---- */

/* display columns of s[0, n): UTF-8 continuation bytes take none */
static int columns(const char *s, size_t n) {
    int c = 0;
    for (size_t i = 0; i < n; i++) c += ((unsigned char)s[i] & 0xc0) != 0x80;
    return c;
}

/* One prose line, wrapped at the terminal's width; continuation lines hang under the text of a
 * list item or the line's own indentation. */
static void put_wrapped(const Step *s, const char *p, size_t n) {
    int w = s->width < 40 ? 40 : s->width - 1;
    if (columns(p, n) <= w) {
        printf("%.*s\n", (int)n, p);
        return;
    }
    size_t ind = 0;
    while (ind < n && p[ind] == ' ') ind++;
    size_t hang = ind;
    if (ind + 1 < n && (p[ind] == '-' || p[ind] == '*') && p[ind + 1] == ' ') hang = ind + 2;
    else {
        size_t d = ind;
        while (d < n && p[d] >= '0' && p[d] <= '9') d++;
        if (d > ind && d + 1 < n && p[d] == '.' && p[d + 1] == ' ') hang = d + 2;
    }
    if ((int)hang > w / 2) hang = 0;
    size_t at = 0;
    int first = 1;
    while (at < n) {
        int room = w - (first ? 0 : (int)hang);
        size_t end = at, brk = 0;
        int col = 0;
        while (end < n && col < room) col += ((unsigned char)p[end++] & 0xc0) != 0x80;
        while (end < n && ((unsigned char)p[end] & 0xc0) == 0x80) end++;
        if (end >= n) brk = n;
        else {
            for (size_t j = end; j > at; j--)
                if (p[j] == ' ') {
                    brk = j;
                    break;
                }
            if (!brk || brk <= at + (first ? ind : 0)) brk = end; /* one long word: cut it */
        }
        printf("%*s%.*s\n", first ? 0 : (int)hang, "", (int)(brk - at), p + at);
        at = brk;
        while (at < n && p[at] == ' ') at++;
        first = 0;
    }
}

/* A message of ours, wrapped as prose is. */
static void say(const Step *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(const Step *s, const char *fmt, ...) {
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    put_wrapped(s, buf, strlen(buf));
}

static void put_prose(const Step *s, const char *text) {
    int code = 0;
    for (const char *p = text; *p;) {
        const char *nl = strchr(p, '\n');
        size_t n = nl ? (size_t)(nl - p) : strlen(p);
        if (n >= 3 && !memcmp(p, "```", 3)) {
            code = !code;
            printf("%s%.*s%s\n", sty(s, DIM), (int)n, p, sty(s, RESET));
        } else if (code) printf("%s%.*s%s\n", sty(s, CYAN), (int)n, p, sty(s, RESET));
        else if (p[0] == '#') printf("%s%.*s%s\n", sty(s, BOLD), (int)n, p, sty(s, RESET));
        else put_wrapped(s, p, n);
        p += n + (nl ? 1 : 0);
    }
}

static const LessonBlock *cell_block(const Lesson *l, int k) {
    for (int i = 0; i < l->n; i++)
        if (l->b[i].kind == LESSON_CELL && l->b[i].cell == k) return &l->b[i];
    return NULL;
}

/* the prose before cell k (k = cells + 1: the prose after the last cell), then cell k */
static void show(const Step *s, int k) {
    for (int i = 0; i < s->l->n; i++)
        if (s->l->b[i].kind == LESSON_PROSE && s->l->b[i].cell == k - 1) {
            printf("\n");
            put_prose(s, s->l->b[i].text);
        }
    const LessonBlock *b = cell_block(s->l, k);
    if (!b) return;
    printf("\n%s-- cell %d of %d (%s:%d) --%s\n", sty(s, BOLD), k, s->l->cells, s->path, b->line, sty(s, RESET));
    for (const char *p = b->text; *p;) {
        const char *nl = strchr(p, '\n');
        size_t n = nl ? (size_t)(nl - p) : strlen(p);
        char esc[1024];
        escape_bytes(esc, sizeof esc, p, n, 1);
        printf("    %s%s%s\n", sty(s, CYAN), esc, sty(s, RESET));
        p += n + (nl ? 1 : 0);
    }
}

/* Repl.on_png: note the picture, to say where it is once the cell is done */
static void note_picture(void *ctx, const char *path) {
    Step *s = ctx;
    if (s->quiet) return;
    char **np = realloc(s->pics, (size_t)(s->n_pics + 1) * sizeof *np);
    if (!np) return;
    s->pics = np;
    if ((s->pics[s->n_pics] = strdup(path))) s->n_pics++;
}

static void forget_pictures(Step *s) {
    for (int i = 0; i < s->n_pics; i++) free(s->pics[i]);
    free(s->pics);
    s->pics = NULL;
    s->n_pics = 0;
}

static void repl_start(Step *s) {
    repl_init(&s->r, stdout, stderr);
    s->r.interactive = s->tty_in;
    s->r.pic_dir = s->pic_dir;
    s->r.on_png = note_picture;
    s->r.on_png_ctx = s;
}

/* A fresh REPL with cells 1..upto run again into nothing; a cell that fails now is said. */
static void replay(Step *s, int upto) {
    repl_free(&s->r);
    repl_start(s);
    if (upto < 1) return;
    char *ob = NULL, *eb = NULL;
    size_t on = 0, en = 0;
    FILE *o = open_memstream(&ob, &on), *e = o ? open_memstream(&eb, &en) : NULL;
    if (!o || !e) {
        if (o) fclose(o);
        fprintf(stderr, "seek lesson: out of memory running the cells before this one again\n");
        return;
    }
    s->r.out = o;
    s->r.err = e;
    s->quiet = 1;
    for (int k = 1; k <= upto; k++) {
        size_t e0 = en;
        if (lesson_run_cell(&s->r, cell_block(s->l, k), 0)) {
            const char *m = eb + e0;
            fprintf(stderr, "seek lesson: cell %d failed when run again: %.*s\n", k, (int)strcspn(m, "\n"), m);
        }
    }
    s->quiet = 0;
    s->r.out = stdout;
    s->r.err = stderr;
    fclose(o);
    fclose(e);
    free(ob);
    free(eb);
}

/* ---- input ---- */

#ifdef SEEK_HAVE_EDIT
/* the i-th word Tab offers: the lesson's own, then the REPL's commands */
static const char *word(int i) { return i == 0 ? "back" : i == 1 ? "quit" : repl_command_name(i - 2); }

static char *complete_word(const char *text, int state) {
    static int i;
    if (!state) i = 0;
    for (const char *w; (w = word(i)); i++)
        if (!strncmp(w, text, strlen(text))) {
            i++;
            return strdup(w);
        }
    return NULL;
}

static char **complete(const char *text, int start, int end) {
    (void)start, (void)end;
    rl_attempted_completion_over = 1; /* no file names */
    return rl_completion_matches(text, complete_word);
}
#endif

/* The next line into *buf (no newline): 0, or -1 at EOF or Ctrl-C. */
static int read_input(Step *s, const char *prompt, char **buf, size_t *cap, size_t *len) {
#ifdef SEEK_HAVE_EDIT
    if (s->tty_in) {
        step_sigint = 0;
        char *line = readline(prompt);
        if (!line) {
            printf("\n");
            return -1;
        }
        size_t n = strlen(line);
        if (n + 1 > *cap) {
            char *nb = realloc(*buf, n + 1);
            if (!nb) {
                free(line);
                return -1;
            }
            *buf = nb;
            *cap = n + 1;
        }
        memcpy(*buf, line, n + 1);
        *len = n;
        free(line);
        return 0;
    }
#endif
    for (;;) {
        fputs(prompt, stdout);
        fflush(stdout);
        long n = repl_read_line(stdin, buf, cap);
        if (n == -1 || n == -2) {
            printf("\n");
            return -1;
        }
        if (n == -3) {
            printf("<a line longer than %d bytes>\n", REPL_MAX_LINE);
            fprintf(stderr, "seek lesson: line too long (the limit is %d bytes); the line was discarded\n", REPL_MAX_LINE);
            continue;
        }
        size_t k = (size_t)n;
        while (k && ((*buf)[k - 1] == '\n' || (*buf)[k - 1] == '\r')) k--;
        char esc[1024];
        escape_bytes(esc, sizeof esc, *buf, k, 1);
        printf("%s\n", esc); /* the transcript shows what was typed */
        *len = k;
        return 0;
    }
}

/* "cell 1" or "cells 1-4": the cells before cell k */
static const char *before(int k, char *buf, size_t cap) {
    if (k == 2) snprintf(buf, cap, "cell 1");
    else snprintf(buf, cap, "cells 1-%d", k - 1);
    return buf;
}

static int is_word(const char *s, size_t n, const char *w) { return n == strlen(w) && !memcmp(s, w, n); }

/* ---- the loop ---- */

int lesson_step(const char *path, const Lesson *l, int restart) {
    Step s;
    memset(&s, 0, sizeof s);
    s.path = path;
    s.l = l;
    s.tty_in = isatty(STDIN_FILENO);
    s.style = isatty(STDOUT_FILENO) && term_detect(STDOUT_FILENO) != TERM_PLAIN;
    s.width = term_width(STDOUT_FILENO);
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    size_t bn = strlen(base);
    if (bn > 3 && !strcmp(base + bn - 3, ".md")) bn -= 3;
    if (bn >= sizeof s.key) bn = sizeof s.key - 1;
    for (size_t i = 0; i < bn; i++) { /* the key names files: nothing but a plain name */
        char c = base[i];
        s.key[i] = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.' ? c : '_';
    }
    if (!bn || s.key[0] == '.') s.key[0] = '_';

    if (!strncmp(path, "lessons/", 8) && bn > 2 && base[0] >= '0' && base[0] <= '9' && base[1] >= '0' && base[1] <= '9' &&
        base[2] == '-')
        snprintf(s.call, sizeof s.call, "%.2s", base);
    else snprintf(s.call, sizeof s.call, "%.60s", path);

    char dir[4096];
    SeekErr err;
    if (state_folder(dir, sizeof dir, &err) == 0 &&
        (size_t)snprintf(s.state, sizeof s.state, "%s/%s.progress", dir, s.key) < sizeof s.state &&
        (size_t)snprintf(s.pic_dir, sizeof s.pic_dir, "%s/%s", dir, s.key) < sizeof s.pic_dir && make_dirs(s.pic_dir, &err) == 0) {
    } else {
        s.state[0] = '\0';
        const char *t = getenv("TMPDIR");
        snprintf(s.pic_dir, sizeof s.pic_dir, "%s/seek-lesson-XXXXXX", t && *t ? t : "/tmp");
        if (!mkdtemp(s.pic_dir)) snprintf(s.pic_dir, sizeof s.pic_dir, ".");
        fprintf(stderr, "seek lesson: cannot keep your progress (%s); pictures go to %s\n", err.msg, s.pic_dir);
    }

    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL); /* no SA_RESTART: a read at the prompt returns, and we leave */
#ifdef SEEK_HAVE_EDIT
    if (s.tty_in) rl_attempted_completion_function = complete;
#endif

    char rb[48];
    int k = restart ? 1 : load_progress(&s);
    printf("%s%s%s (%d cells)\n", sty(&s, BOLD), path, sty(&s, RESET), l->cells);
    say(&s, "Enter runs a cell; back goes to the one before; quit leaves, and the lesson resumes there next time; any "
            "other line is a REPL command.");
    if (k > l->cells) {
        printf("You finished this lesson before: starting at the beginning.\n");
        k = 1;
    }
    repl_start(&s);
    if (k > 1) {
        replay(&s, k - 1);
        say(&s, "Resuming at cell %d of %d (--restart starts at the top): %s ran again quietly, so the REPL is where you "
                "left it.",
            k, l->cells, before(k, rb, sizeof rb));
    }
    save(&s, k);
    show(&s, k);

    size_t cap = 256, len = 0; /* repl_read_line grows a buffer it was given */
    char *buf = malloc(cap);
    if (!buf) {
        repl_free(&s.r);
        fprintf(stderr, "seek lesson: out of memory\n");
        return 1;
    }
    for (;;) {
        char prompt[96];
        /* plain: libedit counts an escape sequence in a prompt as printed columns */
        snprintf(prompt, sizeof prompt, "cell %d/%d [Enter runs it, back, quit]> ", k, l->cells);
        if (ferror(stdout) || read_input(&s, prompt, &buf, &cap, &len)) {
            save(&s, k);
            if (!ferror(stdout)) printf("Left at cell %d of %d: seek lesson %s resumes there.\n", k, l->cells, s.call);
            break;
        }
        size_t a = 0, n = len;
        while (a < n && (buf[a] == ' ' || buf[a] == '\t')) a++;
        while (n > a && (buf[n - 1] == ' ' || buf[n - 1] == '\t')) n--;
        const char *w = buf + a;
        size_t wn = n - a;
        if (wn == 0) { /* Enter: run the cell */
            printf("\n");
            int errors = lesson_run_cell(&s.r, cell_block(l, k), 1);
            for (int i = 0; i < s.n_pics; i++)
                printf("%sthe picture:%s %s\n", sty(&s, BOLD), sty(&s, RESET), s.pics[i]);
            forget_pictures(&s);
            if (errors) printf("(cell %d reported %s; back runs the cells again from the top)\n", k, errors == 1 ? "an error" : "errors");
            k++;
            save(&s, k);
            show(&s, k);
            if (k > l->cells) {
                printf("\n%sEnd of the lesson:%s all %d cells ran. seek lesson lists the others.\n", sty(&s, BOLD),
                       sty(&s, RESET), l->cells);
                break;
            }
        } else if (is_word(w, wn, "back") || is_word(w, wn, "b")) {
            if (k == 1) {
                printf("This is the first cell.\n");
                continue;
            }
            k--;
            replay(&s, k - 1);
            save(&s, k);
            if (k > 1) say(&s, "Back to cell %d: %s ran again quietly, so the REPL is as it was then.", k, before(k, rb, sizeof rb));
            else printf("Back to cell 1, with a fresh REPL.\n");
            show(&s, k);
        } else if (is_word(w, wn, "quit") || is_word(w, wn, "q") || is_word(w, wn, "exit")) {
            save(&s, k);
            printf("Left at cell %d of %d: seek lesson %s resumes there.\n", k, l->cells, s.call);
            break;
        } else {
            repl_interrupt = 0;
            if (repl_handle_line(&s.r, buf, len) == REPL_QUIT) {
                save(&s, k);
                printf("Left at cell %d of %d: seek lesson %s resumes there.\n", k, l->cells, s.call);
                break;
            }
            fflush(stdout);
            for (int i = 0; i < s.n_pics; i++) printf("the picture: %s\n", s.pics[i]);
            forget_pictures(&s);
        }
    }
    free(buf);
    forget_pictures(&s);
    repl_free(&s.r);
    fflush(stdout);
    return 0;
}
