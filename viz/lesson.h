/* lesson.h: a lesson file (lessons/NN-topic.md) read into its blocks (docs/contributing.md,
 * "Adding a lesson"). Library tier: never exits; a bad file is a one-line error naming the file
 * and line.
 *
 * The format: Markdown. A line that is exactly "```seek" opens a cell (REPL commands, one a line);
 * exactly "```expect" opens the expected lines of the cell before it; any other line starting with
 * "```" opens a block that is kept as prose; exactly "```" closes the open block. The title is the
 * first line starting with "# ". Refused: a block not closed by the end of the file, an expect block
 * with no cell before it, no cell at all, a NUL byte, a line over LESSON_MAX_LINE bytes, a file
 * over LESSON_MAX_BYTES.
 *
 * The blocks come in file order: prose (the Markdown between cells, other fenced blocks included
 * with their fences, blank lines at either end dropped, none when it is only blank lines), cells,
 * and expect blocks. So a page or a terminal can show the lesson as it reads, and the stepper knows
 * which prose comes before which cell. */
#ifndef SEEK_LESSON_H
#define SEEK_LESSON_H

#include "common.h"

#define LESSON_MAX_BYTES (1 << 20)
#define LESSON_MAX_LINE (64 * 1024)
#define LESSON_TITLE_LEN 160

typedef enum { LESSON_CELL, LESSON_EXPECT, LESSON_PROSE } LessonKind;

typedef struct {
    LessonKind kind;
    int line;      /* the opening fence's line (1-based); a prose block's first line */
    int cell;      /* the cell it is (LESSON_CELL) or belongs to (LESSON_EXPECT), from 1; for prose,
                      the number of cells before it (0: before the first cell) */
    char *text;    /* the block's lines, each ending in '\n'; NUL-terminated */
    size_t len;
} LessonBlock;

typedef struct {
    char title[LESSON_TITLE_LEN];   /* printable ASCII and UTF-8 of the "# " line, "" when none */
    LessonBlock *b;
    int n, cells;
} Lesson;

int lesson_parse(Lesson *l, const char *text, size_t len, const char *name, SeekErr *err);
void lesson_free(Lesson *l);

/* ---- the parts of `seek lesson` (program tier: viz/cmd_lesson.c, lesson_step.c, lesson_html.c) ---- */

#define LESSON_MAX_PICTURE (32u << 20)   /* a PNG a cell writes, read back to embed in a page */

struct Repl;

/* Runs a cell's lines in the REPL in order (a line that quits the REPL ends the cell); with echo,
 * each line is printed first after "seek> ", as a transcript. Returns the errors it reported. */
int lesson_run_cell(struct Repl *r, const LessonBlock *cell, int echo);

/* A PNG a cell wrote, read back: its bytes, size in pixels and file name. */
typedef struct {
    unsigned char *png;
    size_t len;
    int w, h;
    char name[256];
} LessonPicture;

/* What one cell printed (out, err) and drew, for a page. */
typedef struct {
    const char *out, *err;
    size_t out_len, err_len;
    LessonPicture *pics;
    int n_pics;
} LessonCellOut;

/* Does this seek render pages (built with libcmark)? */
int lesson_html_available(void);
/* Writes the lesson read from `path` as one self-contained HTML page into f: its prose rendered
 * from Markdown by libcmark, each cell's commands, what it printed (the lines an expect block pins
 * marked) and its pictures as data: URIs. cells[c - 1] is cell c's. -1 with a reason when built
 * without libcmark or out of memory. */
int lesson_html(FILE *f, const Lesson *l, const char *path, const LessonCellOut *cells, SeekErr *err);

/* Steps through the lesson at a terminal (or from lines on stdin): prose, the cell, Enter runs it;
 * `back`, `quit`; progress kept under the user's state folder (key: the file's name without .md),
 * resumed unless `restart`. Returns the exit status. */
int lesson_step(const char *path, const Lesson *l, int restart);

#endif
