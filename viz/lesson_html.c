/* lesson_html.c: a lesson as one self-contained HTML page (`seek lesson NN --html OUT`, lesson.h).
 *
 * The page needs nothing but itself: the prose is Markdown rendered by libcmark (CommonMark, its
 * safe mode: raw HTML in a lesson is left out), each cell is its commands, what it printed and
 * the PNGs it wrote, embedded as base64 data: URIs; the CSS is inline and there is no script. The
 * lines an ```expect block pins are marked in the output, so a reader sees which lines the lesson
 * is held to. Every byte of a cell's output or a file name is HTML-escaped, and control bytes
 * become U+FFFD. The page has no date in it: the same lesson gives the same page.
 * Without libcmark (no -DSEEK_HAVE_CMARK) lesson_html says so and writes nothing. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef SEEK_HAVE_CMARK
#include <cmark.h>
#endif

#include "lesson.h"

int lesson_html_available(void) {
#ifdef SEEK_HAVE_CMARK
    return 1;
#else
    return 0;
#endif
}

#ifndef SEEK_HAVE_CMARK
int lesson_html(FILE *f, const Lesson *l, const char *path, const LessonCellOut *cells, SeekErr *err) {
    (void)f, (void)l, (void)path, (void)cells;
    return seek_fail(err, "--html needs libcmark, and this seek was built without it");
}
#else

/* Text as HTML: & < > " escaped, control bytes (but newline and tab) as U+FFFD. */
static void put_text(FILE *f, const char *s, size_t n) {
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '&') fputs("&amp;", f);
        else if (c == '<') fputs("&lt;", f);
        else if (c == '>') fputs("&gt;", f);
        else if (c == '"') fputs("&quot;", f);
        else if ((c < 0x20 && c != '\n' && c != '\t') || c == 0x7f) fputs("&#xfffd;", f);
        else fputc(c, f);
    }
}

static void put_str(FILE *f, const char *s) { put_text(f, s, strlen(s)); }

/* RFC 4648 base64, with padding, on one line (a data: URI). */
static void put_base64(FILE *f, const unsigned char *p, size_t n) {
    static const char A[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t i = 0;
    for (; i + 3 <= n; i += 3) {
        unsigned v = (unsigned)p[i] << 16 | (unsigned)p[i + 1] << 8 | p[i + 2];
        fputc(A[v >> 18], f);
        fputc(A[v >> 12 & 63], f);
        fputc(A[v >> 6 & 63], f);
        fputc(A[v & 63], f);
    }
    if (n - i == 1) {
        unsigned v = (unsigned)p[i] << 16;
        fputc(A[v >> 18], f);
        fputc(A[v >> 12 & 63], f);
        fputs("==", f);
    } else if (n - i == 2) {
        unsigned v = (unsigned)p[i] << 16 | (unsigned)p[i + 1] << 8;
        fputc(A[v >> 18], f);
        fputc(A[v >> 12 & 63], f);
        fputc(A[v >> 6 & 63], f);
        fputc('=', f);
    }
}

/* Light and dark, one column of prose about 46rem wide, cells wider for the REPL's tables. */
static const char CSS[] =
    ":root{--fg:#1f2328;--muted:#59636e;--bg:#fff;--code-bg:#f6f8fa;--out-bg:#fcfcfa;--border:#d1d9e0;"
    "--accent:#0969da;--pin:#fff1b8;--err:#b42318}\n"
    "@media (prefers-color-scheme:dark){:root{--fg:#e6edf3;--muted:#9198a1;--bg:#0d1117;--code-bg:#151b23;"
    "--out-bg:#10151c;--border:#3d444d;--accent:#4493f8;--pin:#4a3b00;--err:#ff8182}}\n"
    "*{box-sizing:border-box}\n"
    "body{margin:0;background:var(--bg);color:var(--fg);"
    "font:16px/1.6 system-ui,-apple-system,\"Segoe UI\",Roboto,\"Noto Sans\",\"DejaVu Sans\",sans-serif}\n"
    "main{max-width:64rem;margin:0 auto;padding:1.5rem 1.25rem 4rem}\n"
    ".prose{max-width:46rem}\n"
    "header.page,footer.page{color:var(--muted);font-size:.85rem}\n"
    "header.page{border-bottom:1px solid var(--border);padding-bottom:.5rem;margin-bottom:1rem}\n"
    "footer.page{border-top:1px solid var(--border);padding-top:.75rem;margin-top:3rem}\n"
    "h1{font-size:1.9rem;line-height:1.25;margin:.4em 0 .7em}\n"
    "h2{font-size:1.35rem;line-height:1.3;margin:2.2em 0 .6em;padding-bottom:.25em;border-bottom:1px solid var(--border)}\n"
    "h3{font-size:1.1rem;margin:1.6em 0 .5em}\n"
    "p,ul,ol,blockquote{margin:.75em 0}\n"
    "li+li{margin-top:.3em}\n"
    "a{color:var(--accent)}\n"
    "blockquote{margin-left:0;padding-left:1em;border-left:3px solid var(--border);color:var(--muted)}\n"
    "code,pre{font-family:ui-monospace,SFMono-Regular,\"DejaVu Sans Mono\",Menlo,Consolas,monospace;font-size:.875em}\n"
    ":not(pre)>code{background:var(--code-bg);padding:.1em .35em;border-radius:4px}\n"
    "pre{overflow-x:auto;padding:.75rem 1rem;border-radius:6px;background:var(--code-bg);line-height:1.45}\n"
    "pre code{font-size:inherit}\n"
    ".cell{margin:1.5rem 0;border:1px solid var(--border);border-radius:8px;overflow:hidden}\n"
    ".cell-head{display:flex;justify-content:space-between;gap:1rem;font-size:.78rem;color:var(--muted);"
    "padding:.3rem .9rem;background:var(--code-bg);border-bottom:1px solid var(--border)}\n"
    ".cell pre{margin:0;border-radius:0}\n"
    ".cell pre.code{border-left:3px solid var(--accent)}\n"
    ".prompt{color:var(--muted);user-select:none}\n"
    ".cell pre.out,.cell pre.err{background:var(--out-bg);font-size:.8rem}\n"
    ".cell pre.code+pre{border-top:1px solid var(--border)}\n"
    ".cell pre.err{color:var(--err)}\n"
    "mark.pin{display:inline-block;min-width:100%;background:var(--pin);color:inherit}\n"
    "figure{margin:0;padding:1rem;border-top:1px solid var(--border);text-align:center}\n"
    "figure img{max-width:100%;height:auto}\n"
    "figcaption{font-size:.8rem;color:var(--muted);margin-top:.35rem}\n";

static int put_markdown(FILE *f, const char *md, size_t n, SeekErr *err) {
    char *h = cmark_markdown_to_html(md, n, CMARK_OPT_DEFAULT);
    if (!h) return seek_fail(err, "out of memory rendering Markdown");
    fputs("<div class=\"prose\">\n", f);
    fputs(h, f);
    fputs("</div>\n", f);
    free(h);
    return 0;
}

/* Is the line s[0, n) one of the lines the cell's expect blocks pin? */
static int pinned(const Lesson *l, int cell, const char *s, size_t n) {
    for (int i = 0; i < l->n; i++) {
        const LessonBlock *b = &l->b[i];
        if (b->kind != LESSON_EXPECT || b->cell != cell) continue;
        for (const char *p = b->text; *p;) {
            const char *nl = strchr(p, '\n');
            size_t k = nl ? (size_t)(nl - p) : strlen(p);
            if (k == n && !memcmp(p, s, n)) return 1;
            p += k + (nl ? 1 : 0);
        }
    }
    return 0;
}

static void put_output(FILE *f, const Lesson *l, int cell, const char *s, size_t n, const char *cls) {
    if (!n) return;
    fprintf(f, "<pre class=\"%s\">", cls);
    for (const char *p = s, *end = s + n; p < end;) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t k = nl ? (size_t)(nl - p) : (size_t)(end - p);
        int pin = cls[0] == 'o' && pinned(l, cell, p, k);
        if (pin) fputs("<mark class=\"pin\" title=\"checked by seek lesson --check\">", f);
        put_text(f, p, k);
        if (pin) fputs("</mark>", f);
        if (nl) fputc('\n', f);
        p += k + (nl ? 1 : 0);
    }
    fputs("</pre>\n", f);
}

int lesson_html(FILE *f, const Lesson *l, const char *path, const LessonCellOut *cells, SeekErr *err) {
    fputs("<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
          "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>",
          f);
    put_str(f, l->title[0] ? l->title : path);
    fputs("</title>\n<style>\n", f);
    fputs(CSS, f);
    fputs("</style>\n</head>\n<body>\n<main>\n<header class=\"page\">seek.c lesson &middot; <code>", f);
    put_str(f, path);
    fprintf(f, "</code> &middot; %d cell%s</header>\n", l->cells, l->cells == 1 ? "" : "s");
    for (int i = 0; i < l->n; i++) {
        const LessonBlock *b = &l->b[i];
        if (b->kind == LESSON_PROSE) {
            if (put_markdown(f, b->text, b->len, err)) return -1;
            continue;
        }
        if (b->kind != LESSON_CELL) continue; /* expect blocks: their lines are marked in the output */
        const LessonCellOut *c = &cells[b->cell - 1];
        fprintf(f, "<section class=\"cell\" id=\"cell-%d\">\n<div class=\"cell-head\"><span>cell %d</span><span>", b->cell,
                b->cell);
        put_str(f, path);
        fprintf(f, ":%d</span></div>\n<pre class=\"code\"><code>", b->line);
        for (const char *p = b->text; *p;) {
            const char *nl = strchr(p, '\n');
            size_t k = nl ? (size_t)(nl - p) : strlen(p);
            fputs("<span class=\"prompt\">seek&gt; </span>", f);
            put_text(f, p, k);
            if (nl && nl[1]) fputc('\n', f);
            p += k + (nl ? 1 : 0);
        }
        fputs("</code></pre>\n", f);
        put_output(f, l, b->cell, c->out, c->out_len, "out");
        put_output(f, l, b->cell, c->err, c->err_len, "err");
        for (int k = 0; k < c->n_pics; k++) {
            const LessonPicture *p = &c->pics[k];
            fprintf(f, "<figure><img width=\"%d\" height=\"%d\" alt=\"", p->w, p->h);
            put_str(f, p->name);
            fputs("\" src=\"data:image/png;base64,", f);
            put_base64(f, p->png, p->len);
            fputs("\"><figcaption>", f);
            put_str(f, p->name);
            fprintf(f, " &middot; %d&times;%d</figcaption></figure>\n", p->w, p->h);
        }
        fputs("</section>\n", f);
    }
    fputs("<footer class=\"page\">Made by <code>seek lesson --html</code> from <code>", f);
    put_str(f, path);
    fputs("</code>: every output and picture above is what the cell printed and drew when the page was made. "
          "Highlighted lines are the ones <code>seek lesson --check</code> holds the lesson to. "
          "To step through it at a terminal: <code>seek lesson ",
          f);
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    if (!strncmp(path, "lessons/", 8) && base[0] >= '0' && base[0] <= '9' && base[1] >= '0' && base[1] <= '9' && base[2] == '-')
        fprintf(f, "%.2s", base); /* a lesson of the course: by its number */
    else put_str(f, path);
    fputs("</code>.</footer>\n</main>\n</body>\n</html>\n", f);
    if (ferror(f)) return seek_fail(err, "out of memory writing the page");
    return 0;
}
#endif /* SEEK_HAVE_CMARK */
