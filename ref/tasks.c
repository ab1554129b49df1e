/* tasks.c: verifiable arithmetic tasks and their rule-based rewards (tasks.h has the rules:
 * operand draws, the split, the template, the format and accuracy rewards; docs/rl.md).
 *
 * Generation is pure integer work on one Rng per task, seeded from (seed, split, index), so any
 * task is recomputed from those alone. The checker is one left-to-right scan of the completion
 * (memchr for '<', then the four tags compared in place), then the integer rule on the answer's
 * bytes; it reads only completion[0, n), allocates nothing and keeps no state.
 */
#include "tasks.h"

#include <string.h>

/* ---- the split rule ---- */

/* mix64 (common.h) is splitmix64's finalizer, the one rng_seed uses. */

TaskSplit task_split_of(int64_t a, char op, int64_t b) {
    uint64_t x = (uint64_t)a, y = (uint64_t)b;
    if (op == '+' && x > y) {   /* a + b and b + a are one problem */
        uint64_t t = x;
        x = y;
        y = t;
    }
    uint64_t h = mix64(mix64(mix64((uint64_t)(unsigned char)op) ^ x) ^ y);
    return h % TASK_TEST_ONE_IN == 0 ? TASK_TEST : TASK_TRAIN;
}

/* ---- options ---- */

int task_opts_check(const TaskOpts *o, SeekErr *err) {
    if (o->min_digits < 1 || o->min_digits > TASK_MAX_DIGITS || o->max_digits < 1 || o->max_digits > TASK_MAX_DIGITS)
        return seek_fail(err, "digits %d..%d: each bound must be in 1..%d", o->min_digits, o->max_digits,
                         TASK_MAX_DIGITS);
    if (o->min_digits > o->max_digits)
        return seek_fail(err, "digits %d..%d: the minimum is above the maximum", o->min_digits, o->max_digits);
    if (o->ops < 1 || (o->ops & ~(TASK_OP_ADD | TASK_OP_SUB)))
        return seek_fail(err, "operations %d: expected %d (+), %d (-) or %d (both)", o->ops, TASK_OP_ADD,
                         TASK_OP_SUB, TASK_OP_ADD | TASK_OP_SUB);
    if (o->allow_negative != 0 && o->allow_negative != 1)
        return seek_fail(err, "allow_negative %d: expected 0 or 1", o->allow_negative);
    return 0;
}

/* A user's string for a message: at most 40 bytes, control bytes and bytes >= 0x7f as '?', so the
 * message stays one printable line. */
static const char *quoted(char buf[48], const char *s) {
    size_t i = 0;
    for (; s[i] && i < 40; i++) buf[i] = (unsigned char)s[i] < 0x20 || (unsigned char)s[i] >= 0x7f ? '?' : s[i];
    if (s[i]) buf[i++] = '.', buf[i++] = '.', buf[i++] = '.';
    buf[i] = '\0';
    return buf;
}

int task_parse_family(TaskOpts *o, const char *family, SeekErr *err) {
    char q[48];
    if (!strcmp(family, "add")) o->ops = TASK_OP_ADD;
    else if (!strcmp(family, "sub")) o->ops = TASK_OP_SUB;
    else if (!strcmp(family, "addsub")) o->ops = TASK_OP_ADD | TASK_OP_SUB;
    else return seek_fail(err, "family '%s' is not known (expected add, sub or addsub)", quoted(q, family));
    return 0;
}

/* A whole decimal number 0..99 (the digit bounds), or -1. */
static int small_number(const char *s, size_t n) {
    if (n < 1 || n > 2) return -1;
    int v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

int task_parse_digits(TaskOpts *o, const char *s, SeekErr *err) {
    const char *dots = strstr(s, "..");
    int lo, hi;
    if (dots) {
        lo = small_number(s, (size_t)(dots - s));
        hi = small_number(dots + 2, strlen(dots + 2));
    } else {
        lo = hi = small_number(s, strlen(s));
    }
    char q[48];
    if (lo < 0 || hi < 0)
        return seek_fail(err, "digits '%s': expected N or A..B (whole numbers in 1..%d)", quoted(q, s), TASK_MAX_DIGITS);
    TaskOpts t = *o;
    t.min_digits = lo;
    t.max_digits = hi;
    if (task_opts_check(&t, err)) return -1;
    *o = t;
    return 0;
}

int task_prompt_max_len(const TaskOpts *o) {
    /* the template without "%s", two operands of max_digits and " + " */
    return (int)(sizeof TASK_PROMPT_FORMAT - 1 - 2) + 2 * o->max_digits + 3;
}

/* ---- generation ---- */

#define OPERAND_LIMIT 1000000000000000000ll   /* 10^TASK_MAX_DIGITS */

int task_from(Task *t, int64_t a, char op, int64_t b, SeekErr *err) {
    if (op != '+' && op != '-') return seek_fail(err, "operation 0x%02x: expected '+' or '-'", (unsigned char)op);
    if (a < 0 || a >= OPERAND_LIMIT || b < 0 || b >= OPERAND_LIMIT)
        return seek_fail(err, "operands %lld and %lld: each must be in 0..10^%d - 1", (long long)a, (long long)b,
                         TASK_MAX_DIGITS);
    memset(t, 0, sizeof *t);
    t->a = a;
    t->b = b;
    t->op = op;
    t->answer = op == '+' ? a + b : a - b;   /* |a ± b| < 2·10^18 < 2^63 */
    t->split = task_split_of(a, op, b);
    snprintf(t->question, sizeof t->question, "%lld %c %lld", (long long)a, op, (long long)b);
    t->prompt_len = snprintf(t->prompt, sizeof t->prompt, TASK_PROMPT_FORMAT, t->question);
    return 0;
}

/* Uniform in 0..n−1 (n >= 1) by rejection: the 2^32 mod n lowest values are redrawn, so each
 * residue is equally likely. */
static uint32_t rng_below(Rng *r, uint32_t n) {
    uint32_t threshold = (uint32_t)(-n) % n;
    for (;;) {
        uint32_t x = rng_u32(r);
        if (x >= threshold) return x % n;
    }
}

/* A digit count uniform in min..max, then a uniform number with that many digits. */
static int64_t draw_operand(Rng *r, const TaskOpts *o) {
    int d = o->min_digits + (int)rng_below(r, (uint32_t)(o->max_digits - o->min_digits + 1));
    int64_t v = d == 1 ? (int64_t)rng_below(r, 10) : 1 + (int64_t)rng_below(r, 9);   /* leading digit */
    for (int k = 1; k < d; k++) v = v * 10 + (int64_t)rng_below(r, 10);
    return v;
}

int task_make(Task *t, const TaskOpts *o, uint64_t seed, TaskSplit split, uint64_t index, SeekErr *err) {
    if (task_opts_check(o, err)) return -1;
    if (split != TASK_TRAIN && split != TASK_TEST)
        return seek_fail(err, "split %d: expected %d (train) or %d (test)", (int)split, TASK_TRAIN, TASK_TEST);
    Rng r;
    rng_seed(&r, seed ^ mix64(2 * index + (uint64_t)split));
    for (int draw = 0; draw < TASK_MAX_DRAWS; draw++) {
        char op = o->ops == TASK_OP_ADD ? '+' : o->ops == TASK_OP_SUB ? '-' : rng_below(&r, 2) ? '-' : '+';
        int64_t a = draw_operand(&r, o), b = draw_operand(&r, o);
        if (op == '-' && !o->allow_negative && a < b) {   /* keep a − b >= 0 */
            int64_t s = a;
            a = b;
            b = s;
        }
        if (task_split_of(a, op, b) == split) return task_from(t, a, op, b, err);
    }
    return seek_fail(err, "no %s problem with %d..%d digits in %d draws (too few problems in the family)",
                     split == TASK_TEST ? "test" : "train", o->min_digits, o->max_digits, TASK_MAX_DRAWS);
}

/* ---- the checker ---- */

enum { TAG_THINK, TAG_THINK_END, TAG_ANSWER, TAG_ANSWER_END, N_TAGS };
static const char *const TAG_TEXT[N_TAGS] = {"<think>", "</think>", "<answer>", "</answer>"};
static const size_t TAG_LEN[N_TAGS] = {7, 8, 8, 9};

/* The tag starting at s[i] (s[i] == '<'), or -1. */
static int tag_at(const char *s, size_t n, size_t i) {
    for (int t = 0; t < N_TAGS; t++)
        if (n - i >= TAG_LEN[t] && memcmp(s + i, TAG_TEXT[t], TAG_LEN[t]) == 0) return t;
    return -1;
}

static int is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

static int only_ws(const char *s, size_t from, size_t to) {
    for (size_t i = from; i < to; i++)
        if (!is_ws(s[i])) return 0;
    return 1;
}

/* The integer rule on s[0, n): WS* [+|-] DIGIT+ WS*; the magnitude is checked against int64
 * before each step, so nothing overflows. */
static TaskAnswerKind parse_answer(const char *s, size_t n, int64_t *value) {
    size_t i = 0, j = n;
    while (i < j && is_ws(s[i])) i++;
    while (j > i && is_ws(s[j - 1])) j--;
    int neg = 0;
    if (i < j && (s[i] == '+' || s[i] == '-')) neg = s[i++] == '-';
    if (i == j) return TASK_ANSWER_NOT_INT;
    for (size_t k = i; k < j; k++)
        if (s[k] < '0' || s[k] > '9') return TASK_ANSWER_NOT_INT;
    uint64_t limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX, mag = 0;
    for (size_t k = i; k < j; k++) {
        uint64_t d = (uint64_t)(s[k] - '0');
        if (mag > (limit - d) / 10) return TASK_ANSWER_OUT_OF_RANGE;
        mag = mag * 10 + d;
    }
    *value = !neg ? (int64_t)mag : mag == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)mag;
    return TASK_ANSWER_INT;
}

/* The answer's bytes for a log: printable ASCII as is, '\\' and other bytes as \xHH, then "..."
 * if they do not all fit. */
static void show_bytes(char *out, const char *s, size_t n) {
    static const char hex[] = "0123456789abcdef";
    size_t o = 0, room = TASK_SHOWN_MAX - 4;   /* "..." and the NUL */
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        int plain = c >= 0x20 && c < 0x7f && c != '\\';
        if (o + (plain ? 1 : 4) > room) {
            memcpy(out + o, "...", 3);
            o += 3;
            break;
        }
        if (plain) {
            out[o++] = (char)c;
        } else {
            out[o++] = '\\', out[o++] = 'x', out[o++] = hex[c >> 4], out[o++] = hex[c & 15];
        }
    }
    out[o] = '\0';
}

TaskReward task_check(const char *c, size_t n, int64_t answer, const char *eos) {
    TaskReward r;
    memset(&r, 0, sizeof r);
    r.why = "";
    if (!c) n = 0;
    if (eos && *eos) {   /* the one EOS text the completion ends with */
        size_t e = strlen(eos);
        if (e <= n && memcmp(c + n - e, eos, e) == 0) n -= e;
    }

    /* one scan: how often each tag occurs (counts stop at 2), where each first occurs, and the
     * first <answer> with the tag that follows it */
    int count[N_TAGS] = {0};
    size_t first[N_TAGS] = {0};
    size_t open_end = 0;          /* just after the first <answer> */
    int answer_state = 0;         /* 0: no <answer> yet; 1: inside the first one; 2: decided */
    size_t i = 0;
    while (i < n) {
        const char *p = memchr(c + i, '<', n - i);
        if (!p) break;
        size_t k = (size_t)(p - c);
        int t = tag_at(c, n, k);
        if (t < 0) {
            i = k + 1;
            continue;
        }
        if (count[t] == 0) first[t] = k;
        if (count[t] < 2) count[t]++;
        if (answer_state == 1) {
            if (t == TAG_ANSWER_END) {
                r.answer_off = open_end;
                r.answer_len = k - open_end;
                r.kind = TASK_ANSWER_NOT_INT;   /* refined below */
            }
            answer_state = 2;
        } else if (answer_state == 0 && t == TAG_ANSWER) {
            open_end = k + TAG_LEN[TAG_ANSWER];
            answer_state = 1;
        }
        i = k + TAG_LEN[t];
    }

    /* the format reward: the grammar, its first failing rule as the reason */
    if (count[TAG_THINK]) r.why = "a <think> in the completion";
    else if (count[TAG_THINK_END] != 1) r.why = count[TAG_THINK_END] ? "more than one </think>" : "no </think>";
    else if (count[TAG_ANSWER] != 1) r.why = count[TAG_ANSWER] ? "more than one <answer>" : "no <answer>";
    else if (count[TAG_ANSWER_END] != 1) r.why = count[TAG_ANSWER_END] ? "more than one </answer>" : "no </answer>";
    else if (!(first[TAG_THINK_END] < first[TAG_ANSWER] && first[TAG_ANSWER] < first[TAG_ANSWER_END]))
        r.why = "tags out of order (expected </think> <answer> </answer>)";
    else if (!only_ws(c, first[TAG_THINK_END] + TAG_LEN[TAG_THINK_END], first[TAG_ANSWER]))
        r.why = "text between </think> and <answer>";
    else if (!only_ws(c, first[TAG_ANSWER_END] + TAG_LEN[TAG_ANSWER_END], n))
        r.why = "text after </answer>";
    r.format = r.why[0] == '\0';

    /* the accuracy reward: the first well-delimited answer, by the integer rule */
    if (r.kind != TASK_ANSWER_NONE) {
        int64_t v = 0;
        r.kind = parse_answer(c + r.answer_off, r.answer_len, &v);
        if (r.kind == TASK_ANSWER_INT) r.value = v;
        r.accuracy = r.kind == TASK_ANSWER_INT && v == answer;
        show_bytes(r.shown, c + r.answer_off, r.answer_len);
    }
    return r;
}

/* ---- documents ---- */

static int unit_interval(double x) { return x >= 0.0 && x <= 1.0; }   /* false for NaN */

int task_doc_opts_check(const TaskDocOpts *d, SeekErr *err) {
    const double v[4] = {d->worked, d->tagged, d->slip_worked, d->slip_direct};
    static const char *const name[4] = {"worked", "tagged", "slip_worked", "slip_direct"};
    for (int i = 0; i < 4; i++)
        if (!unit_interval(v[i])) return seek_fail(err, "%s %g: expected a probability in [0, 1]", name[i], v[i]);
    return 0;
}

/* a uniform double in [0, 1) from the top 53 bits of two draws */
static double rng_unit(Rng *r) {
    uint64_t hi = rng_u32(r), lo = rng_u32(r);
    return (double)(((hi << 32) | lo) >> 11) * (1.0 / 9007199254740992.0);
}

int task_completion(char *out, size_t cap, const Task *t, const TaskDocOpts *d, Rng *r, TaskDocInfo *info,
                    SeekErr *err) {
    if (task_doc_opts_check(d, err)) return -1;
    if (t->op != '+') return seek_fail(err, "task %s: documents are written for additions only", t->question);
    if (cap < TASK_COMPLETION_MAX) return seek_fail(err, "completion buffer of %zu bytes (need %d)", cap, TASK_COMPLETION_MAX);
    TaskDocInfo in = {0};
    in.worked = rng_unit(r) < d->worked;
    in.tagged = rng_unit(r) < d->tagged;
    const double slip = in.worked ? d->slip_worked : d->slip_direct;
    size_t n = 0;
    out[n++] = ' ';
    int64_t a = t->a, b = t->b, carry = 0;
    uint64_t pow10 = 1;   /* 10^col; reaches 10^19 after the last of 19 columns, within uint64 */
    char digits[24];      /* the columns' last digits, lowest first */
    int nd = 0;
    for (int col = 0; a > 0 || b > 0 || carry || col == 0; col++) {
        const int x = (int)(a % 10), y = (int)(b % 10);
        int c = (int)carry;
        if (c) {
            in.carries++;
            if (rng_unit(r) < slip) {
                in.slips++;
                c = 0;
            }
        }
        if (col > 0 && a == 0 && b == 0 && !c) break;   /* the last carry forgotten: no column for it */
        const int sum = x + y + c;
        if (in.worked)
            n += (size_t)snprintf(out + n, cap - n, c ? "%s%d+%d+1=%d" : "%s%d+%d=%d", col ? ", " : "", x, y, sum);
        in.written += (int64_t)((uint64_t)(sum % 10) * pow10);
        digits[nd++] = (char)('0' + sum % 10);
        pow10 *= 10;
        carry = sum / 10;
        a /= 10;
        b /= 10;
    }
    n += (size_t)snprintf(out + n, cap - n, in.worked ? " </think> " : "</think> ");
    /* the answer as the columns give it, highest first (a forgotten last carry can leave a 0 there) */
    n += (size_t)snprintf(out + n, cap - n, in.tagged ? "<answer>" : "The answer is ");
    while (nd > 0) out[n++] = digits[--nd];
    n += (size_t)snprintf(out + n, cap - n, in.tagged ? "</answer>" : ".");
    if (info) *info = in;
    return (int)n;
}

const char *task_answer_kind_name(TaskAnswerKind k) {
    switch (k) {
    case TASK_ANSWER_NONE: return "none";
    case TASK_ANSWER_NOT_INT: return "not an integer";
    case TASK_ANSWER_OUT_OF_RANGE: return "integer out of range";
    case TASK_ANSWER_INT: return "integer";
    }
    return "?";
}
