/* rl_plot.h: the curves of `seek rl` runs. A reader of RUN/rl.log into one series per key, and a
 * renderer of small multiples (one panel per metric, several runs overlaid with a legend) into an
 * Image, written as a PNG by `seek plot` (viz/cmd_plot.c, docs/rl.md "Curves").
 *
 * The log (written by viz/cmd_rl.c and the trainer it drives) is text, one record a line:
 *     start init=DIR steps=20 ...                                   (one per run or resume)
 *     rl step=7 update=21 reward=0.45 accuracy=0.4 format=0.8 length=31.25 kl=0.00123 ...
 *     eval step=20 pass1=0.41 pass8=0.9 greedy=0.45 format=0.81 ... n=64 samples=16
 *     step=7 loss=... load.1=0.5/0.1 ...    skip step=...    checkpoint step=...   (the trainer's)
 * What the reader takes and what it refuses (library tier: 0, or -1 with a one-line SeekErr that
 * names the file, the line and what was expected; no input makes it read out of bounds):
 *   - Lines whose first word is `rl` or `eval` are records; every other first word (`start`, the
 *     trainer's `step=`, `skip`, `checkpoint`, words added later), blank lines and `#` comments are
 *     skipped. Fields are separated by spaces or tabs; a line may end in "\r\n".
 *   - A record's fields are KEY=VALUE: KEY of 1..31 letters, digits, '_' or '.', each at most once
 *     a line. `step` (the batch) is required and `update` (the optimizer step; several a batch with
 *     seek rl --updates) optional, integers in [0, 10^15]: they identify the record. Other keys are
 *     not fixed: a new key becomes a new series and a key an older log lacks is simply absent.
 *   - A VALUE is a decimal number (what strtod reads, wholly) of magnitude at most 1e100. The words
 *     printf writes for non-finite numbers (nan, -nan, inf, -inf) are kept as gaps: seek rl writes
 *     loss=nan for a step the trainer skipped. A number that overflows (1e999) is an error.
 *   - The same (step, update) twice in records of one kind (a resumed run appends): the later line
 *     wins whole (keys only the earlier line had are dropped). A step's n updates are drawn across
 *     it: the i-th (by update) at x = step - 1 + i/n, so the batch's last update sits at its step,
 *     where the evaluation after that batch is.
 *   - Refused: a NUL or another control byte (except tab and a final '\r'), a line longer than
 *     RLLOG_MAX_LINE bytes, a file over RLLOG_MAX_BYTES, more than RLLOG_MAX_KEYS distinct keys, and
 *     a log with no record at all. A last line without its newline (a run killed while writing)
 *     that does not parse is dropped, and counted.
 *
 * Picture (rlplot_render): a title and a legend (one colour a run) above a grid of three panels a
 * row, each with its x axis in steps (shared by every panel) and "nice" ticks: reward, accuracy,
 * format, completion length, KL, clip fraction, entropy, loss, and held-out evaluation (pass@1,
 * pass@k for the two smallest k found, and greedy accuracy as markers). A panel none of the runs has
 * data for is left out.
 * Nine or eight panels make 1920x1080 (one legend row); text is the 5x7 font at scale 2 and 3.
 */
#ifndef SEEK_RL_PLOT_H
#define SEEK_RL_PLOT_H

#include "common.h"
#include "image.h"
#include "solve.h"

#define RLLOG_MAX_BYTES ((size_t)256 << 20)
#define RLLOG_MAX_LINE 65536
#define RLLOG_MAX_KEYS 64
#define RLLOG_KEY_LEN 32
#define RLLOG_MAX_STEP 1e15
#define RLLOG_MAX_ABS 1e100

typedef enum { RLLOG_RL, RLLOG_EVAL } RlKind;

typedef struct {
    RlKind kind;             /* from `rl` or `eval` lines */
    char key[RLLOG_KEY_LEN]; /* "reward", "pass1", ... */
    int n;                   /* points */
    double *x;               /* (n) increasing: the step, or within a step of n updates, step - 1 + i/n */
    double *v;               /* (n) finite, or NaN where the log wrote nan/inf */
} RlSeries;

typedef struct {
    RlSeries *series;        /* (n_series), in the order keys first appear */
    int n_series;
    long long lines;         /* lines in the file */
    long long rl_steps, eval_steps; /* distinct steps with a record of each kind */
    long long rl_updates;    /* rl records kept: distinct (step, update) */
    long long starts;        /* `start` lines: 1 + resumes */
    long long replaced;      /* records replaced by a later line for the same step */
    long long gaps;          /* nan/inf values */
    int dropped_tail;        /* 1 when an unterminated, unparsable last line was dropped */
} RlLog;

/* Parses a log held in memory (len bytes, not necessarily NUL-terminated); name is used in
 * errors. On failure the log is left empty (rllog_free is harmless). */
int rllog_parse(RlLog *log, const char *text, size_t len, const char *name, SeekErr *err);
/* Reads and parses a file (pread after an fstat size check). */
int rllog_read(RlLog *log, const char *path, SeekErr *err);
void rllog_free(RlLog *log);
/* The series of that kind and key, or NULL. */
const RlSeries *rllog_series(const RlLog *log, RlKind kind, const char *key);

#define RLPLOT_MAX_RUNS 8
#define RLPLOT_LABEL_LEN 48 /* a label is cut to 40 characters (then "...") */

typedef struct {
    int panels;              /* panels drawn */
    char missing[256];       /* the metrics none of the runs has, "entropy, pass@8", or "" */
} RlPlotInfo;

/* Renders n (1..RLPLOT_MAX_RUNS) logs overlaid, labels[i] naming logs[i] in the legend (bytes
 * outside printable ASCII are drawn as '?'); title NULL or "" gives the labels joined by " vs ".
 * out is initialised here (free with image_free). Fails when no panel has data. */
int rlplot_render(const RlLog *const *logs, const char *const *labels, int n, const char *title, Image *out,
                  RlPlotInfo *info, SeekErr *err);

/* seek solve's picture (docs/rl.md, "Test-time compute"): held-out accuracy against the samples N
 * (maj@N, pass@N, pass@1 at 1, 2, 4, ... N; greedy as a dashed level), with the tokens N samples
 * spend on a problem under each N; and, when there are budgeted runs, accuracy (maj@N, pass@1,
 * greedy) and tokens a sample (all, thinking) against the thinking budget, the run without a
 * budget as dotted levels (its maj@M at the budgeted runs' M samples), one line style a force
 * setting (the first two settings: solid, dashed). runs[0] is the run without a budget
 * (budget[0] = 0), runs[1..n) the budgeted ones. One panel 640 + 48 wide without budgeted runs,
 * three 640 wide with them, 440 high under the title and legend. out is initialised here (free
 * with image_free). */
int solveplot_render(const char *title, const SolveTotals *runs, const int *budget, const int *force, int n, Image *out,
                     SeekErr *err);

#endif
