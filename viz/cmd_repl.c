/* cmd_repl.c: `seek repl [DIR] [--script FILE]`: the REPL's input side.
 *
 * On a terminal: libedit line editing with history (~/.seek_history) and Tab completion of
 * commands, stage names, parameter names and keywords. Otherwise (a pipe, a file, --script):
 * plain reading, each line echoed after the prompt so the output reads as a transcript.
 * Lines are capped at REPL_MAX_LINE bytes ("line too long", the rest of the line discarded).
 * Without DIR the default model is loaded (model_dir_or_default: $SEEK_MODEL, else
 * tiny-models/seek-v3-mini beside the binary), whatever the input; when there is none the session
 * starts with no model and says so on stderr.
 * EOF ends the session with status 0 (a last line without a newline still runs); with --script
 * the status is 1 when any command failed, so lessons double as tests.
 * Signals: Ctrl-C during `gen` stops the generation; at an interactive prompt the first Ctrl-C
 * prints a hint and the second one leaves; a script or pipe is left at once. SIGPIPE is ignored
 * and a closed stdout ends the session quietly.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifdef SEEK_HAVE_EDIT
#include <editline/readline.h>
#endif

#include "commands.h"
#include "repl.h"

static volatile sig_atomic_t sigints = 0;

static void on_sigint(int sig) {
    (void)sig;
    repl_interrupt = 1;
    sigints++;
}

static Repl *g_repl; /* for completion callbacks */

/* After each command: a closed stdout (EPIPE) ends the session quietly. */
static int out_closed(Repl *r) {
    if (fflush(r->out) == 0 && !ferror(r->out)) return 0;
    return 1;
}

static void echo_line(Repl *r, const char *line, size_t len) {
    char esc[512];
    while (len && (line[len - 1] == '\n' || line[len - 1] == '\r')) len--;
    escape_bytes(esc, sizeof esc, line, len, 0);
    fprintf(r->out, "seek> %s\n", esc);
}

/* ---- plain reading ---- */

/* repl.h: one line of plain input, capped (also `seek lesson`'s reader off a terminal) */
long repl_read_line(FILE *in, char **buf, size_t *cap) {
    size_t n = 0;
    int too_long = 0;
    for (;;) {
        int ch = getc(in);
        if (ch == EOF) {
            if (ferror(in) && errno == EINTR) {
                clearerr(in);
                return -2;
            }
            if (too_long) return -3;
            return n ? (long)n : -1;
        }
        if (too_long) {
            if (ch == '\n') return -3;
            continue;
        }
        if (n + 1 >= *cap) {
            if (*cap > REPL_MAX_LINE) {
                too_long = 1;
                if (ch == '\n') return -3;
                continue;
            }
            size_t nc = *cap * 2;
            if (nc > REPL_MAX_LINE + 2) nc = REPL_MAX_LINE + 2;
            char *nb = realloc(*buf, nc);
            if (!nb) return -1;
            *buf = nb;
            *cap = nc;
        }
        (*buf)[n++] = (char)ch;
        if (ch == '\n') return (long)n;
    }
}

static int run_plain(Repl *r, FILE *in) {
    size_t cap = 256;
    char *buf = malloc(cap);
    if (!buf) return 1;
    for (;;) {
        long n = repl_read_line(in, &buf, &cap);
        if (n == -1) break;
        if (n == -2) break; /* Ctrl-C while a script or pipe waits for input: leave */
        if (n == -3) {
            fprintf(r->out, "seek> <a line longer than %d bytes>\n", REPL_MAX_LINE);
            char msg[96];
            snprintf(msg, sizeof msg, "line too long (the limit is %d bytes); the line was discarded", REPL_MAX_LINE);
            repl_error(r, msg);
            if (out_closed(r)) break;
            continue;
        }
        echo_line(r, buf, (size_t)n);
        repl_interrupt = 0;
        ReplStatus st = repl_handle_line(r, buf, (size_t)n);
        if (out_closed(r) || st == REPL_QUIT) break;
    }
    free(buf);
    return 0;
}

/* ---- libedit ---- */

#ifdef SEEK_HAVE_EDIT
typedef struct {
    const char *prefix;
    size_t plen;
    char **words;
    size_t n, cap;
} Matches;

static void collect(void *ctx, const char *w) {
    Matches *m = ctx;
    if (strncmp(w, m->prefix, m->plen)) return;
    for (size_t i = 0; i < m->n; i++)
        if (!strcmp(m->words[i], w)) return;
    if (m->n == m->cap) {
        size_t nc = m->cap ? 2 * m->cap : 64;
        char **nw = realloc(m->words, nc * sizeof *nw);
        if (!nw) return;
        m->words = nw;
        m->cap = nc;
    }
    m->words[m->n] = strdup(w);
    if (m->words[m->n]) m->n++;
}

static Matches g_matches;

static void matches_clear(void) {
    for (size_t i = 0; i < g_matches.n; i++) free(g_matches.words[i]);
    free(g_matches.words);
    memset(&g_matches, 0, sizeof g_matches);
}

static int g_first_word;

static char *generator(const char *text, int state) {
    static size_t next;
    if (state == 0) {
        matches_clear();
        g_matches.prefix = text;
        g_matches.plen = strlen(text);
        if (g_first_word) {
            for (int i = 0; repl_command_name(i); i++) collect(&g_matches, repl_command_name(i));
        } else repl_each_word(g_repl, collect, &g_matches);
        next = 0;
    }
    if (next < g_matches.n) return strdup(g_matches.words[next++]);
    return NULL;
}

static char **complete(const char *text, int start, int end) {
    (void)end;
    int first = 1;
    for (int i = 0; i < start; i++)
        if (rl_line_buffer[i] != ' ' && rl_line_buffer[i] != '\t') first = 0;
    g_first_word = first;
    rl_attempted_completion_over = 1;
    return rl_completion_matches(text, generator);
}

static int run_edit(Repl *r) {
    char hist[1024] = "";
    const char *home = getenv("HOME");
    if (home) snprintf(hist, sizeof hist, "%s/.seek_history", home);
    using_history();
    if (hist[0]) read_history(hist);
    rl_attempted_completion_function = complete;
    int last_sigints = sigints;
    int hinted = 0;
    for (;;) {
        char *line = readline("seek> ");
        if (!line) {
            if (sigints != last_sigints) { /* Ctrl-C at the prompt */
                last_sigints = sigints;
                if (hinted) break;
                fprintf(r->out, "\n(Ctrl-C again, quit or Ctrl-D to leave)\n");
                hinted = 1;
                continue;
            }
            fprintf(r->out, "\n");
            break;
        }
        hinted = 0;
        last_sigints = sigints;
        size_t len = strlen(line);
        if (len > REPL_MAX_LINE) {
            repl_error(r, "line too long; the line was discarded");
            free(line);
            continue;
        }
        if (len && line[0] != ' ') add_history(line);
        repl_interrupt = 0;
        ReplStatus st = repl_handle_line(r, line, len);
        free(line);
        last_sigints = sigints;
        if (out_closed(r) || st == REPL_QUIT) break;
    }
    if (hist[0]) write_history(hist);
    matches_clear();
    return 0;
}
#endif

int cmd_repl(int argc, char **argv) {
    const char *dir = NULL, *script = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--script")) {
            if (i + 1 >= argc) {
                fprintf(stderr, "seek repl: --script needs a file\n");
                return 2;
            }
            script = argv[++i];
        } else if (argv[i][0] == '-') {
            return cli_bad_option("repl", argv[i]);
        } else if (!dir) dir = argv[i];
        else {
            fprintf(stderr, "seek repl: unexpected argument '%s' (expected: seek repl [DIR] [--script FILE])\n", argv[i]);
            return 2;
        }
    }
    FILE *in = stdin;
    if (script && !(in = fopen(script, "rb"))) {
        fprintf(stderr, "seek repl: cannot open '%s': %s\n", script, strerror(errno));
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0; /* no SA_RESTART: a blocking read returns EINTR */
    sigaction(SIGINT, &sa, NULL);

    Repl r;
    repl_init(&r, stdout, stderr);
    g_repl = &r;
    int interactive = !script && isatty(STDIN_FILENO);
    r.interactive = interactive;
    /* no DIR: the default model, at a terminal, from a pipe or with --script alike; shown relative
     * to the working folder when it lies below it (tiny-models/seek-v3-mini from the repository) */
    char dbuf[4096], cwd[4096];
    SeekErr derr;
    const int given = dir != NULL;
    if (!given && model_dir_or_default(&dir, dbuf, sizeof dbuf, &derr))
        fprintf(stderr, "seek repl: %s; starting with no model ('load DIR' loads one)\n", derr.msg);
    if (!given && dir && getcwd(cwd, sizeof cwd)) {
        size_t n = strlen(cwd);
        if (n > 1 && !strncmp(dir, cwd, n) && dir[n] == '/' && dir[n + 1]) dir += n + 1;
    }
    if (dir) {
        SeekErr err;
        if (repl_load(&r, dir, &err)) {
            fprintf(stderr, "seek repl: %s%s\n",
                    given ? "" : getenv("SEEK_MODEL") && *getenv("SEEK_MODEL") ? "the default model ($SEEK_MODEL) did not load: "
                                                                              : "the default model did not load: ", err.msg);
            repl_free(&r);
            if (script) fclose(in);
            return 1;
        }
    }
    if (interactive) fprintf(stdout, "seek repl: 'help' lists the commands, Tab completes, Ctrl-D leaves\n");
    int rc = 0;
#ifdef SEEK_HAVE_EDIT
    if (interactive) rc = run_edit(&r);
    else rc = run_plain(&r, in);
#else
    rc = run_plain(&r, in);
#endif
    fflush(stdout);
    int failed = r.n_errors > 0;
    repl_free(&r);
    if (script) fclose(in);
    if (rc) return rc;
    return script && failed ? 1 : 0;
}
