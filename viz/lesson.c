/* lesson.c: lesson files into blocks (lesson.h). One pass over the lines; each block's text is
 * copied out, so the Lesson owns everything it points at. */
#include "lesson.h"

#include <stdlib.h>
#include <string.h>

void lesson_free(Lesson *l) {
    for (int i = 0; i < l->n; i++) free(l->b[i].text);
    free(l->b);
    memset(l, 0, sizeof *l);
}

static int add_block(Lesson *l, LessonKind kind, int line, int cell, const char *text, size_t len, SeekErr *err) {
    LessonBlock *nb = realloc(l->b, (size_t)(l->n + 1) * sizeof *nb);
    if (!nb) return seek_fail(err, "out of memory");
    l->b = nb;
    char *t = malloc(len + 1);
    if (!t) return seek_fail(err, "out of memory");
    memcpy(t, text, len);
    t[len] = '\0';
    l->b[l->n++] = (LessonBlock){kind, line, cell, t, len};
    return 0;
}

static int is_line(const char *s, size_t n, const char *want) { return n == strlen(want) && memcmp(s, want, n) == 0; }

int lesson_parse(Lesson *l, const char *text, size_t len, const char *name, SeekErr *err) {
    memset(l, 0, sizeof *l);
    if (len > LESSON_MAX_BYTES) return seek_fail(err, "%s: %zu bytes (a lesson is at most %d)", name, len, LESSON_MAX_BYTES);
    enum { PROSE, CELL, EXPECT, OTHER } state = PROSE;
    int lineno = 0, open_line = 0;
    size_t body = 0;   /* where the open block's lines start */
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
                LessonBlock *b = &l->b[l->n - 1];
                size_t w = 0;
                for (size_t r = 0; r < b->len; r++)
                    if (!(b->text[r] == '\r' && r + 1 < b->len && b->text[r + 1] == '\n')) b->text[w++] = b->text[r];
                b->text[w] = '\0';
                b->len = w;
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
    return 0;
}
