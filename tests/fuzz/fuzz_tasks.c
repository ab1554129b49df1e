/* fuzz_tasks.c: fuzz target for the rule-based reward checker (ref/tasks.h: task_check), which
 * reads untrusted model text, and for task generation from arbitrary options.
 *
 * The input is a completion's bytes. task_check reads them (in libFuzzer's buffer of exactly their
 * size, so ASan reports any read past them) as they are, against the answers 433 and 0, and
 * wrapped in a well-formed "r</think><answer>" ... "</answer>", each without and with an EOS text. Each result is compared
 * with a naive oracle written here from the grammar in tasks.h (every tag found by comparing at
 * every offset; the integer rule by its text: sign, digits, leading zeros stripped, then the digit
 * string compared with int64's bounds, then strtoll), field by field: format, accuracy, the
 * answer's kind, value and place, and what is shown (one printable line, the answer's bytes when
 * they are short and plain). The first bytes also choose generation options, a seed and a first
 * index: each of the eight tasks made from there must follow the options and the split rule, its answer must be its
 * question's (recomputed from the text with strtoll), and a correct completion for it must earn
 * both rewards; an option set that is refused must say why in one printable line.
 * A failed check aborts, so libFuzzer (make fuzz) and the replay driver (tests/fuzz/replay.c, run
 * by tests/cli_fuzz.sh) both report it.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_check.h"
#include "tasks.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define EOS "<\xef\xbd\x9c" "end\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c>"

/* ---- the oracle ---- */

static const char *const TAGS[4] = {"<think>", "</think>", "<answer>", "</answer>"};

static int tag_here(const char *s, size_t n, size_t i) {
    for (int t = 0; t < 4; t++) {
        size_t l = strlen(TAGS[t]);
        if (i + l <= n && memcmp(s + i, TAGS[t], l) == 0) return t;
    }
    return -1;
}

static int ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

typedef struct {
    int format, accuracy;
    TaskAnswerKind kind;
    int64_t value;
    size_t off, len;
} Want;

static TaskAnswerKind integer_rule(const char *s, size_t n, int64_t *value) {
    while (n && ws(*s)) s++, n--;
    while (n && ws(s[n - 1])) n--;
    int neg = 0;
    if (n && (*s == '+' || *s == '-')) neg = *s == '-', s++, n--;
    if (!n) return TASK_ANSWER_NOT_INT;
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9') return TASK_ANSWER_NOT_INT;
    while (n > 1 && *s == '0') s++, n--;
    const char *lim = neg ? "9223372036854775808" : "9223372036854775807";
    if (n > 19 || (n == 19 && memcmp(s, lim, 19) > 0)) return TASK_ANSWER_OUT_OF_RANGE;
    char buf[24];
    buf[0] = neg ? '-' : '+';
    memcpy(buf + 1, s, n);
    buf[n + 1] = '\0';
    errno = 0;
    long long v = strtoll(buf, NULL, 10);
    CHECK(errno == 0);
    *value = v;
    return TASK_ANSWER_INT;
}

static Want oracle(const char *s, size_t n, int64_t answer, const char *eos) {
    Want w = {0};
    if (eos) {
        size_t e = strlen(eos);
        if (e <= n && memcmp(s + n - e, eos, e) == 0) n -= e;
    }
    int count[4] = {0};
    size_t first[4] = {0};
    for (size_t i = 0; i < n; i++) {
        int t = tag_here(s, n, i);
        if (t >= 0 && count[t]++ == 0) first[t] = i;
    }
    if (count[0] == 0 && count[1] == 1 && count[2] == 1 && count[3] == 1 && first[1] < first[2] && first[2] < first[3]) {
        w.format = 1;
        for (size_t i = first[1] + 8; i < first[2]; i++) w.format &= ws(s[i]);
        for (size_t i = first[3] + 9; i < n; i++) w.format &= ws(s[i]);
    }
    if (count[2]) {
        size_t open = first[2] + 8, k = open;
        while (k < n && tag_here(s, n, k) < 0) k++;
        if (k < n && tag_here(s, n, k) == 3) {
            w.off = open;
            w.len = k - open;
            w.kind = integer_rule(s + open, w.len, &w.value);
            w.accuracy = w.kind == TASK_ANSWER_INT && w.value == answer;
        }
    }
    return w;
}

static void compare(const char *s, size_t n, int64_t answer, const char *eos) {
    TaskReward r = task_check(s, n, answer, eos);
    Want w = oracle(s, n, answer, eos);
    CHECK(r.format == w.format);
    CHECK(r.accuracy == w.accuracy);
    CHECK(r.kind == w.kind);
    CHECK(r.format == (r.why[0] == '\0'));
    if (r.kind == TASK_ANSWER_INT) CHECK(r.value == w.value);
    if (r.kind != TASK_ANSWER_NONE) CHECK(r.answer_off == w.off && r.answer_len == w.len);
    size_t l = strnlen(r.shown, sizeof r.shown);
    CHECK(l < sizeof r.shown);
    for (size_t i = 0; i < l; i++) CHECK((unsigned char)r.shown[i] >= 0x20 && (unsigned char)r.shown[i] < 0x7f);
    if (r.kind == TASK_ANSWER_NONE) CHECK(l == 0);
    int plain = 1;
    for (size_t i = 0; r.kind != TASK_ANSWER_NONE && i < r.answer_len; i++) {
        unsigned char c = (unsigned char)s[r.answer_off + i];
        plain &= c >= 0x20 && c < 0x7f && c != '\\';
    }
    if (r.kind != TASK_ANSWER_NONE && plain && r.answer_len <= TASK_SHOWN_MAX - 4)
        CHECK(l == r.answer_len && memcmp(r.shown, s + r.answer_off, l) == 0);
}

/* ---- generation ---- */

static void check_message(const SeekErr *e) {
    size_t n = strnlen(e->msg, sizeof e->msg);
    CHECK(n > 0 && n < sizeof e->msg);
    for (size_t i = 0; i < n; i++) CHECK((unsigned char)e->msg[i] >= 0x20 && e->msg[i] != 0x7f);
}

static int digits_of(int64_t v) {
    int d = 1;
    while (v >= 10) v /= 10, d++;
    return d;
}

static void generate_one(const uint8_t *d, uint64_t k) {
    TaskOpts o = {d[0] % 20, d[1] % 20, d[2] % 4, d[3] % 3 == 2 ? 2 : d[3] % 2};   /* invalid ones too */
    uint64_t seed = 0, index = ((uint64_t)d[12] | (uint64_t)d[13] << 8) + k;
    for (int i = 0; i < 8; i++) seed = seed << 8 | d[4 + i];
    TaskSplit split = (TaskSplit)(d[14] & 1);
    Task t;
    SeekErr e;
    int valid = o.min_digits >= 1 && o.max_digits <= TASK_MAX_DIGITS && o.min_digits <= o.max_digits && o.ops >= 1 &&
                o.allow_negative <= 1;
    if (task_make(&t, &o, seed, split, index, &e)) {
        check_message(&e);
        CHECK(!valid || (o.min_digits == 1 && o.max_digits == 1));   /* only 1-digit families can run dry */
        return;
    }
    CHECK(valid);
    CHECK(t.split == split && task_split_of(t.a, t.op, t.b) == split);
    CHECK(t.op == '+' ? (o.ops & TASK_OP_ADD) : (t.op == '-' && (o.ops & TASK_OP_SUB)));
    CHECK(t.a >= 0 && t.b >= 0);
    CHECK(digits_of(t.a) >= o.min_digits && digits_of(t.a) <= o.max_digits);
    CHECK(digits_of(t.b) >= o.min_digits && digits_of(t.b) <= o.max_digits);
    CHECK(t.prompt_len == (int)strlen(t.prompt) && t.prompt_len <= task_prompt_max_len(&o));
    /* the answer from the question's text */
    const char *q = strstr(t.prompt, "What is ");
    CHECK(q != NULL);
    char *end;
    long long a = strtoll(q + 8, &end, 10);
    CHECK(end[0] == ' ' && (end[1] == '+' || end[1] == '-') && end[2] == ' ');
    char op = end[1];
    long long b = strtoll(end + 3, &end, 10);
    CHECK(*end == '?');
    long long want = op == '+' ? a + b : a - b;
    CHECK(want == t.answer);
    if (op == '-' && !o.allow_negative) CHECK(want >= 0);
    /* a correct completion earns both rewards */
    char c[96];
    int n = snprintf(c, sizeof c, "ok</think> <answer>%lld</answer>\n" EOS, want);
    TaskReward r = task_check(c, (size_t)n, t.answer, EOS);
    CHECK(r.format == 1 && r.accuracy == 1);
}

/* eight consecutive tasks of the options, seed and split the bytes choose */
static void generate(const uint8_t *d) {
    for (uint64_t k = 0; k < 8; k++) generate_one(d, k);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *s = (const char *)data;
    compare(s, size, 433, NULL);
    compare(s, size, 433, EOS);
    compare(s, size, 0, NULL);   /* 0: a default value must never pass for an answer */
    /* the input as an answer */
    static const char head[] = "r</think><answer>", tail[] = "</answer>";
    size_t n = sizeof head - 1 + size + sizeof tail - 1;
    char *w = malloc(n);
    CHECK(w != NULL);
    memcpy(w, head, sizeof head - 1);
    if (size) memcpy(w + sizeof head - 1, data, size);
    memcpy(w + sizeof head - 1 + size, tail, sizeof tail - 1);
    int64_t v = 0;
    TaskAnswerKind k = integer_rule(s, size, &v);
    compare(w, n, k == TASK_ANSWER_INT ? v : 433, NULL);
    compare(w, n, k == TASK_ANSWER_INT ? v : 433, EOS);
    free(w);
    if (size >= 15) generate(data);
    return 0;
}
