/* lesson.c: lesson files into blocks (lesson.h). One pass over the lines; each block's text is
 * copied out, so the Lesson owns everything it points at. The prose between cells is cut where a
 * cell or expect block opens and once more at the end of the file. */
#include "lesson.h"

#include <stdlib.h>
#include <string.h>

void lesson_free(Lesson *l) {
    for (int i = 0; i < l->n; i++) free(l->b[i].text);
    free(l->b);
    memset(l, 0, sizeof *l);
}

/* Appends a block holding text[0, len) and `extra` more bytes (set by the caller), NUL-terminated. */
static int add_block_extra(Lesson *l, LessonKind kind, int line, int cell, const char *text, size_t len, size_t extra,
                           SeekErr *err) {
    LessonBlock *nb = realloc(l->b, (size_t)(l->n + 1) * sizeof *nb);
    if (!nb) return seek_fail(err, "out of memory");
    l->b = nb;
    char *t = malloc(len + extra + 1);
    if (!t) return seek_fail(err, "out of memory");
    memcpy(t, text, len);
    memset(t + len, 0, extra + 1);
    l->b[l->n++] = (LessonBlock){kind, line, cell, t, len + extra};
    return 0;
}

static int add_block(Lesson *l, LessonKind kind, int line, int cell, const char *text, size_t len, SeekErr *err) {
    return add_block_extra(l, kind, line, cell, text, len, 0, err);
}

static int is_line(const char *s, size_t n, const char *want) { return n == strlen(want) && memcmp(s, want, n) == 0; }

/* Drops the CR of every CRLF in the last block's text (CRLF files read as LF). */
static void drop_cr(LessonBlock *b) {
    size_t w = 0;
    for (size_t r = 0; r < b->len; r++)
        if (!(b->text[r] == '\r' && r + 1 < b->len && b->text[r + 1] == '\n')) b->text[w++] = b->text[r];
    b->text[w] = '\0';
    b->len = w;
}

static int blank_line(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r') return 0;
    return 1;
}

/* The prose text[from, to) starting at line `line`, as a block: blank lines at either end dropped,
 * nothing added when it is all blank; the last line gets its '\n' when the file had none. */
static int add_prose(Lesson *l, const char *text, size_t from, size_t to, int line, SeekErr *err) {
    for (;;) { /* leading blank lines */
        const char *nl = memchr(text + from, '\n', to - from);
        if (!nl || !blank_line(text + from, (size_t)(nl - (text + from)))) break;
        from = (size_t)(nl - text) + 1;
        line++;
    }
    size_t end = to; /* trailing blank lines: cut back to the end of the last non-blank line */
    while (end > from) {
        size_t k = end;
        if (text[k - 1] == '\n') k--;
        size_t start = k;
        while (start > from && text[start - 1] != '\n') start--;
        if (!blank_line(text + start, k - start)) break;
        end = start;
    }
    if (end <= from || blank_line(text + from, end - from)) return 0;
    int nl_missing = text[end - 1] != '\n';
    if (add_block_extra(l, LESSON_PROSE, line, l->cells, text + from, end - from, (size_t)nl_missing, err)) return -1;
    LessonBlock *b = &l->b[l->n - 1];
    if (nl_missing) b->text[b->len - 1] = '\n'; /* so a last line "...\r" reads as "...\r\n" does */
    drop_cr(b);
    return 0;
}

int lesson_parse(Lesson *l, const char *text, size_t len, const char *name, SeekErr *err) {
    memset(l, 0, sizeof *l);
    if (len > LESSON_MAX_BYTES) return seek_fail(err, "%s: %zu bytes (a lesson is at most %d)", name, len, LESSON_MAX_BYTES);
    enum { PROSE, CELL, EXPECT, OTHER } state = PROSE;
    int lineno = 0, open_line = 0, prose_line = 1;
    size_t body = 0;   /* where the open block's lines start */
    size_t prose = 0;  /* where the prose since the last cell or expect block starts */
    for (size_t i = 0; i < len;) {
        const char *s = text + i;
        const char *nl = memchr(s, '\n', len - i);
        size_t n = nl ? (size_t)(nl - s) : len - i, next = i + n + (nl ? 1 : 0);
        lineno++;
        if (memchr(s, '\0', n)) {
            lesson_free(l);
            return seek_fail(err, "%s:%d: a NUL byte (a lesson is text)", name, lineno);
        }
        if (n > LESSON_MAX_LINE) {
            lesson_free(l);
            return seek_fail(err, "%s:%d: a line of %zu bytes (at most %d)", name, lineno, n, LESSON_MAX_LINE);
        }
        size_t m = n > 0 && s[n - 1] == '\r' ? n - 1 : n;   /* CRLF files read as LF */
        if (state == PROSE) {
            if (!l->title[0] && m > 2 && s[0] == '#' && s[1] == ' ') {
                size_t k = 0;
                for (size_t j = 2; j < m && k + 1 < LESSON_TITLE_LEN; j++)
                    l->title[k++] = (unsigned char)s[j] < 0x20 || s[j] == 0x7f ? '?' : s[j];
                l->title[k] = '\0';
            }
            if (m >= 3 && memcmp(s, "```", 3) == 0) {
                state = is_line(s, m, "```seek") ? CELL : is_line(s, m, "```expect") ? EXPECT : OTHER;
                if (state == EXPECT && l->cells == 0) {
                    lesson_free(l);
                    return seek_fail(err, "%s:%d: an ```expect block before any ```seek cell (it checks the cell before it)", name, lineno);
                }
                if (state != OTHER && add_prose(l, text, prose, i, prose_line, err)) {
                    lesson_free(l);
                    return -1;
                }
                open_line = lineno;
                body = next;
            }
        } else if (is_line(s, m, "```")) {
            if (state == CELL || state == EXPECT) {
                if (state == CELL) l->cells++;
                /* the lines, CR dropped: copy, then strip each "\r\n" */
                if (add_block(l, state == CELL ? LESSON_CELL : LESSON_EXPECT, open_line, l->cells, text + body, i - body, err)) {
                    lesson_free(l);
                    return -1;
                }
                drop_cr(&l->b[l->n - 1]);
                prose = next;
                prose_line = lineno + 1;
            }
            state = PROSE;
        }
        i = next;
    }
    if (state != PROSE) {
        const char *what = state == CELL ? "```seek" : state == EXPECT ? "```expect" : "``` block";
        lesson_free(l);
        return seek_fail(err, "%s:%d: the %s opened here is not closed", name, open_line, what);
    }
    if (l->cells == 0) {
        lesson_free(l);
        return seek_fail(err, "%s: no ```seek cell (a lesson runs at least one)", name);
    }
    if (add_prose(l, text, prose, len, prose_line, err)) {
        lesson_free(l);
        return -1;
    }
    return 0;
}
