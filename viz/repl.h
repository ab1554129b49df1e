/* repl.h: the notebook-style REPL (`seek repl`): load a model, run a prompt with every stage
 * captured, walk through the stages, and look at attention, expert routing, the MLA latent and
 * the next-token distribution, on the terminal or as PNG (docs/repl.md).
 *
 * The REPL is a library-tier object: repl_handle_line() takes one line, prints to r->out (results)
 * and r->err (one-line errors with a hint, "error: ..."), and never exits or aborts on bad input;
 * a failed command leaves the state as it was. Line reading, history, completion and signals
 * live in viz/cmd_repl.c.
 *
 * A run is one model_forward over the whole sequence with an ActCache capturing every stage,
 * so stepping (`step`, `back`, `goto`) only moves a cursor over captured tensors and answers at
 * once. `gen N` decodes with the KV cache and then re-runs the whole sequence once so every view
 * covers every position. Interventions (`ablate`) are an edit callback on the cache (hooks.h).
 * The GRPO views (`group`, `update`, `tokens`: one group of sampled answers and one update of the
 * loaded model on it) are viz/repl_grpo.c's, rows of the same command table.
 */
#ifndef SEEK_REPL_H
#define SEEK_REPL_H

#include <signal.h>
#include <stdio.h>

#include "backend.h"
#include "forward.h"
#include "hooks.h"
#include "model.h"
#include "plot.h"
#include "term.h"

#define REPL_MAX_LINE (64 * 1024)   /* longer lines are refused ("line too long") */
#define REPL_MAX_ABLATIONS 256
#define REPL_MAX_TOKENS 4096

typedef enum { REPL_CONTINUE = 0, REPL_QUIT = 1 } ReplStatus;

typedef struct {
    int kind;       /* 0: head, 1: expert */
    int layer, index;
    char hook[HOOK_NAME_LEN];
} Ablation;

struct Tokenizer;

typedef struct Repl {
    FILE *out, *err;
    TermColor color;
    int color_auto;         /* colour follows term_detect(out) */
    int width;              /* terminal columns */
    int interactive;        /* Enter repeats `step`; labels keep UTF-8 */

    /* the model */
    int loaded;
    char dir[1024];
    Model model;
    struct Tokenizer *tok;  /* NULL when the folder has none */
    char tok_note[256];     /* why there is no tokenizer */

    /* the sequence and its captured run */
    int *ids;               /* (T) */
    int T;
    int have_run;
    ActCache cache;         /* every stage of the last run, in forward order */
    size_t cur;             /* the stage cursor */
    float *logits;          /* (T, V) of the last run */

    /* settings */
    SampleParams sp;
    AttnMode attn;
    Backend backend;        /* what runs the model: ref (default) or a fast twin */
    Cmap cmap;

    /* interventions */
    Ablation abl[REPL_MAX_ABLATIONS];
    int n_abl;

    /* the last picture, for `png FILE` */
    Picture pic;
    int have_pic;
    /* Lessons (viz/cmd_lesson.c): when pic_dir is set, `png FILE` takes a bare file name (no '/')
     * and writes it into pic_dir, so a lesson never writes into the folder it runs from; on_png,
     * when set, is told each PNG written (its path), so the lesson can show or embed it. */
    const char *pic_dir;
    void (*on_png)(void *ctx, const char *path);
    void *on_png_ctx;

    /* GRPO views (viz/repl_grpo.c): the kept group, the frozen reference π_ref (the model as
     * loaded) and the optimizer state of `update`; NULL until the first `group`, freed on `load` */
    struct ReplGrpo *grpo;

    int last_was_step;      /* an empty line repeats `step` (interactive only) */
    int n_errors;
} Repl;

/* Set by the SIGINT handler; `gen` stops before the next token when it is set and clears it.
 * The line reader clears it before each command. */
extern volatile sig_atomic_t repl_interrupt;

void repl_init(Repl *r, FILE *out, FILE *err);
void repl_free(Repl *r);
/* Loads DIR (and DIR/tokenizer.json when present); prints one summary line. */
int repl_load(Repl *r, const char *dir, SeekErr *err);
/* Handles one line of input (len bytes, NUL bytes included). */
ReplStatus repl_handle_line(Repl *r, const char *line, size_t len);

/* Reads one line of plain input into *buf (malloc'd, *cap bytes, grown up to REPL_MAX_LINE + 2).
 * Returns its length (the '\n' included, NUL bytes kept), or -1 at EOF with nothing read, -2 when
 * interrupted (EINTR), -3 when the line was too long (the rest of it read and discarded). */
long repl_read_line(FILE *in, char **buf, size_t *cap);

/* Prints a one-line error ("error: msg", escaped) and counts it. */
void repl_error(Repl *r, const char *msg);

/* Completion: the i-th command name (NULL past the end), and candidate words for an argument
 * (stage names of the last run, parameter names, keywords): calls fn for each. */
const char *repl_command_name(int i);
void repl_each_word(const Repl *r, void (*fn)(void *ctx, const char *word), void *ctx);

/* The documented shape and meaning of a hook name (docs/hooks.md), or NULL when undocumented. */
const char *hook_doc(const char *name, const char **shape);

/* ---- internal: for the REPL's command files (viz/repl_grpo.c) ---- */

/* Prints to r->out. */
void repl_say(Repl *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* One error line "error: ..." on r->err, escaped, counted; returns -1. */
int repl_fail(Repl *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A strict integer in [lo, hi) into *out, or an error naming `what`, the range and the usage. */
int repl_arg_int(Repl *r, const char *s, long long lo, long long hi, const char *what, const char *usage, long long *out);
/* Starts the picture `png FILE` writes (the last one is dropped); show_picture prints it and
 * marks it written-able. A command whose terminal view is a table sets r->have_pic itself. */
void repl_new_picture(Repl *r, const char *title, int grid_cols);
void repl_show_picture(Repl *r);
/* Runs the kept sequence again (after the model changed) so every view shows the model as it
 * is now; nothing when nothing has run. */
int repl_rerun(Repl *r);

#endif
