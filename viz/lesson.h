/* lesson.h: a lesson file (lessons/NN-topic.md) read into its blocks (docs/contributing.md,
 * "Adding a lesson"). Library tier: never exits; a bad file is a one-line error naming the file
 * and line.
 *
 * The format: Markdown. A line that is exactly "```seek" opens a cell (REPL commands, one a line);
 * exactly "```expect" opens the expected lines of the cell before it; any other line starting with
 * "```" opens a block that is kept as prose; exactly "```" closes the open block. The title is the
 * first line starting with "# ". Refused: a block not closed by the end of the file, an expect block
 * with no cell before it, no cell at all, a NUL byte, a line over LESSON_MAX_LINE bytes, a file
 * over LESSON_MAX_BYTES. */
#ifndef SEEK_LESSON_H
#define SEEK_LESSON_H

#include "common.h"

#define LESSON_MAX_BYTES (1 << 20)
#define LESSON_MAX_LINE (64 * 1024)
#define LESSON_TITLE_LEN 160

typedef enum { LESSON_CELL, LESSON_EXPECT } LessonKind;

typedef struct {
    LessonKind kind;
    int line;      /* the opening fence's line (1-based) */
    int cell;      /* the cell it is (LESSON_CELL) or belongs to (LESSON_EXPECT), from 1 */
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

#endif
