/* fuzz_lesson.c: fuzz target for the lesson reader (viz/lesson.h: lesson_parse), which reads files
 * a learner or contributor writes. The input is a lesson's bytes, in libFuzzer's buffer of exactly
 * their size (ASan reports any read past them). On success the result is checked against the
 * format: at least one cell; cells numbered 1, 2, ... in order; every expect block belongs to the
 * cell before it; each prose block counts the cells before it, is not all blank and starts and
 * ends with a non-blank line; each block's text is NUL-terminated at its length, ends in '\n',
 * holds no NUL, and appears in the input line by line (CR before LF dropped); a cell or expect
 * block holds no "```" line; the opening lines increase; no two prose blocks are adjacent; the
 * title is one line. On failure the error is one printable line naming the input. A failed
 * check aborts, so libFuzzer (make fuzz) and the replay driver (tests/cli_fuzz.sh) report it.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_check.h"
#include "lesson.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* does the input hold the line, as a whole line of the input (CR-less: a CR before LF or at the
 * end of the input is not part of a line)? */
static int in_input(const uint8_t *d, size_t n, const char *line, size_t k) {
    for (size_t i = 0; i + k <= n; i++)
        if ((i == 0 || d[i - 1] == '\n') && memcmp(d + i, line, k) == 0 &&
            (i + k == n || d[i + k] == '\n' || (d[i + k] == '\r' && (i + k + 1 == n || d[i + k + 1] == '\n'))))
            return 1;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    Lesson l;
    SeekErr err;
    if (lesson_parse(&l, (const char *)data, size, "fuzz.md", &err)) {
        size_t n = strlen(err.msg);
        CHECK(n > 0 && strncmp(err.msg, "fuzz.md", 7) == 0);
        for (size_t i = 0; i < n; i++) CHECK((unsigned char)err.msg[i] >= 0x20 && err.msg[i] != 0x7f);
        return 0;
    }
    CHECK(l.cells >= 1 && l.n >= l.cells);
    CHECK(memchr(l.title, '\n', strlen(l.title)) == NULL);
    int cells = 0, last_line = 0;
    for (int i = 0; i < l.n; i++) {
        const LessonBlock *b = &l.b[i];
        CHECK(b->line > last_line);
        last_line = b->line;
        if (b->kind == LESSON_CELL) CHECK(b->cell == ++cells);
        else if (b->kind == LESSON_PROSE) {
            CHECK(b->cell == cells && b->len > 0);
            CHECK(i == 0 || l.b[i - 1].kind != LESSON_PROSE);
        } else CHECK(b->kind == LESSON_EXPECT && b->cell == cells && cells >= 1);
        CHECK(strlen(b->text) == b->len);
        CHECK(b->len == 0 || b->text[b->len - 1] == '\n');
        int first = 1, last_blank = 0;
        for (const char *p = b->text; *p;) {
            const char *nl = strchr(p, '\n');
            CHECK(nl != NULL);
            size_t k = (size_t)(nl - p);
            if (b->kind != LESSON_PROSE) CHECK(!(k == 3 && memcmp(p, "```", 3) == 0));
            CHECK(in_input(data, size, p, k));
            last_blank = strspn(p, " \t\r") >= k;
            if (b->kind == LESSON_PROSE && first) CHECK(!last_blank);
            first = 0;
            p = nl + 1;
        }
        if (b->kind == LESSON_PROSE) CHECK(!last_blank);
    }
    CHECK(cells == l.cells);
    lesson_free(&l);
    return 0;
}
