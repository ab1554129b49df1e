/* test_tasks.c: verifiable arithmetic tasks and their rule-based rewards (ref/tasks.h).
 *
 * Expected values come from outside the code under test: answers are recomputed by schoolbook
 * arithmetic on the decimal strings read back out of the prompt text (not from Task.a/b and not
 * by the generator's routine); the split rule is re-implemented here from its description in
 * tasks.h and checked on every 1- and 2-digit problem and on thousands of drawn ones; carry and
 * borrow rates are compared with exact rates enumerated over every operand pair; the checker's
 * expectations are written by hand from the grammar in tasks.h. Every completion is passed in a
 * buffer of exactly its length, so under ASan a read past it fails the test.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rl.h"
#include "solve.h"
#include "tasks.h"

/* ---- independent helpers ---- */

#define TEMPLATE_HEAD "User: What is "
#define TEMPLATE_TAIL "? Think in <think> </think>, then answer in <answer> </answer>.\nAssistant: <think>"

/* The operands and the operation, read back out of the prompt's text. */
static void read_question(const char *prompt, char *a, char *op, char *b) {
    size_t h = strlen(TEMPLATE_HEAD), t = strlen(TEMPLATE_TAIL), n = strlen(prompt);
    if (n < h + t || strncmp(prompt, TEMPLATE_HEAD, h) || strcmp(prompt + n - t, TEMPLATE_TAIL))
        fail_msg("prompt does not follow the template: %s", prompt);
    char q[64];
    if (n - h - t >= sizeof q) fail_msg("question too long in %s", prompt);
    memcpy(q, prompt + h, n - h - t);
    q[n - h - t] = 0;
    char *s1 = strchr(q, ' ');
    if (!s1 || (s1[1] != '+' && s1[1] != '-') || s1[2] != ' ') fail_msg("question '%s' is not 'A op B'", q);
    *s1 = 0;
    strcpy(a, q);
    *op = s1[1];
    strcpy(b, s1 + 3);
    for (const char *p = a; *p; p++) assert_true(*p >= '0' && *p <= '9');
    for (const char *p = b; *p; p++) assert_true(*p >= '0' && *p <= '9');
    assert_true(a[0] && b[0]);
    if (strlen(a) > 1) assert_true(a[0] != '0');   /* no leading zeros in the question */
    if (strlen(b) > 1) assert_true(b[0] != '0');
}

/* Decimal strings without leading zeros: compare, add, subtract (a >= b). */
static int cmp_str(const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b);
    if (la != lb) return la < lb ? -1 : 1;
    return strcmp(a, b);
}

static void strip_zeros(char *s) {
    size_t z = 0, n = strlen(s);
    while (z + 1 < n && s[z] == '0') z++;
    memmove(s, s + z, n - z + 1);
}

/* out = a + b; returns the number of columns that carried */
static int add_str(const char *a, const char *b, char *out) {
    char tmp[64];
    int la = (int)strlen(a), lb = (int)strlen(b), k = 0, carry = 0, carries = 0;
    for (int i = 0; i < la || i < lb || carry; i++) {
        int d = carry + (i < la ? a[la - 1 - i] - '0' : 0) + (i < lb ? b[lb - 1 - i] - '0' : 0);
        carry = d >= 10;
        carries += carry;
        tmp[k++] = (char)('0' + d % 10);
    }
    for (int i = 0; i < k; i++) out[i] = tmp[k - 1 - i];
    out[k] = 0;
    return carries;
}

/* out = a − b for a >= b; returns the number of columns that borrowed */
static int sub_str(const char *a, const char *b, char *out) {
    char tmp[64];
    int la = (int)strlen(a), lb = (int)strlen(b), borrow = 0, borrows = 0;
    for (int i = 0; i < la; i++) {
        int d = (a[la - 1 - i] - '0') - borrow - (i < lb ? b[lb - 1 - i] - '0' : 0);
        borrow = d < 0;
        borrows += borrow;
        tmp[i] = (char)('0' + (d + 10) % 10);
    }
    for (int i = 0; i < la; i++) out[i] = tmp[la - 1 - i];
    out[la] = 0;
    strip_zeros(out);
    return borrows;
}

/* The answer of the question in prompt, as a decimal string with its sign. */
static void answer_of(const char *prompt, char *out) {
    char a[32], b[32], op;
    read_question(prompt, a, &op, b);
    if (op == '+') add_str(a, b, out);
    else if (cmp_str(a, b) >= 0) sub_str(a, b, out);
    else {
        out[0] = '-';
        sub_str(b, a, out + 1);
    }
}

/* The split rule of tasks.h, written again from its description. */
static uint64_t splitmix(uint64_t z) {
    z ^= z >> 30;
    z *= 0xbf58476d1ce4e5b9ull;
    z ^= z >> 27;
    z *= 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static int held_out(uint64_t a, char op, uint64_t b) {
    uint64_t x = a, y = b;
    if (op == '+' && a > b) x = b, y = a;
    return splitmix(splitmix(splitmix((uint64_t)op) ^ x) ^ y) % 8 == 0;
}

static Task make(const TaskOpts *o, uint64_t seed, TaskSplit split, uint64_t index) {
    Task t;
    SeekErr e;
    if (task_make(&t, o, seed, split, index, &e)) fail_msg("task_make: %s", e.msg);
    return t;
}

static int same_task(const Task *x, const Task *y) {
    return x->a == y->a && x->b == y->b && x->op == y->op && x->answer == y->answer && x->split == y->split &&
           !strcmp(x->question, y->question) && !strcmp(x->prompt, y->prompt) && x->prompt_len == y->prompt_len;
}

static int n_digits(int64_t v) {
    int d = 1;
    while (v >= 10) v /= 10, d++;
    return d;
}

/* ---- options ---- */

static void test_options(void **state) {
    static const struct { TaskOpts o; const char *want; } bad[] = {
        {{0, 3, TASK_OP_ADD, 0}, "each bound must be in 1..18"},
        {{1, 19, TASK_OP_ADD, 0}, "each bound must be in 1..18"},
        {{-1, 3, TASK_OP_ADD, 0}, "each bound must be in 1..18"},
        {{4, 3, TASK_OP_ADD, 0}, "minimum is above the maximum"},
        {{1, 3, 0, 0}, "operations 0"},
        {{1, 3, 4, 0}, "operations 4"},
        {{1, 3, TASK_OP_ADD, 2}, "allow_negative 2"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        SeekErr e = {{0}};
        Task t;
        assert_int_equal(task_opts_check(&bad[i].o, &e), -1);
        if (!strstr(e.msg, bad[i].want)) fail_msg("case %zu: '%s' lacks '%s'", i, e.msg, bad[i].want);
        assert_int_equal(task_make(&t, &bad[i].o, 1, TASK_TRAIN, 0, &e), -1);
    }
    TaskOpts o = {1, 1, TASK_OP_ADD, 0};
    SeekErr e;
    Task t;
    assert_int_equal(task_make(&t, &o, 1, (TaskSplit)2, 0, &e), -1);
    assert_non_null(strstr(e.msg, "split 2"));

    static const struct { const char *s; int ok, lo, hi; } dig[] = {
        {"2..3", 1, 2, 3}, {"5", 1, 5, 5}, {"1..18", 1, 1, 18}, {"18..18", 1, 18, 18}, {"0..3", 0, 0, 0},
        {"3..2", 0, 0, 0}, {"1..19", 0, 0, 0}, {"", 0, 0, 0},     {"..3", 0, 0, 0},       {"2..", 0, 0, 0},
        {"a..b", 0, 0, 0}, {"2-3", 0, 0, 0},   {" 2..3", 0, 0, 0}, {"2..3..4", 0, 0, 0},  {"-1..3", 0, 0, 0},
        {"100", 0, 0, 0},
    };
    for (size_t i = 0; i < sizeof dig / sizeof dig[0]; i++) {
        TaskOpts d = {7, 7, TASK_OP_ADD, 0};
        int rc = task_parse_digits(&d, dig[i].s, &e);
        if (dig[i].ok) {
            if (rc) fail_msg("digits '%s': %s", dig[i].s, e.msg);
            assert_int_equal(d.min_digits, dig[i].lo);
            assert_int_equal(d.max_digits, dig[i].hi);
        } else {
            if (rc != -1) fail_msg("digits '%s' accepted", dig[i].s);
            assert_int_equal(d.min_digits, 7);   /* untouched on error */
        }
    }
    TaskOpts f = {1, 1, 0, 0};
    assert_int_equal(task_parse_family(&f, "add", &e), 0);
    assert_int_equal(f.ops, TASK_OP_ADD);
    assert_int_equal(task_parse_family(&f, "sub", &e), 0);
    assert_int_equal(f.ops, TASK_OP_SUB);
    assert_int_equal(task_parse_family(&f, "addsub", &e), 0);
    assert_int_equal(f.ops, TASK_OP_ADD | TASK_OP_SUB);
    assert_int_equal(task_parse_family(&f, "mul", &e), -1);
    assert_non_null(strstr(e.msg, "'mul'"));

    assert_int_equal(task_from(&t, 1, '*', 2, &e), -1);
    assert_int_equal(task_from(&t, -1, '+', 2, &e), -1);
    assert_int_equal(task_from(&t, 1000000000000000000ll, '+', 2, &e), -1);
    assert_int_equal(task_from(&t, 999999999999999999ll, '+', 999999999999999999ll, &e), 0);
    assert_true(t.answer == 1999999999999999998ll);
}

/* ---- generation ---- */

static void test_template(void **state) {
    Task t;
    SeekErr e;
    assert_int_equal(task_from(&t, 347, '+', 86, &e), 0);
    assert_string_equal(t.question, "347 + 86");
    assert_string_equal(t.prompt, "User: What is 347 + 86? Think in <think> </think>, then answer in <answer> "
                                  "</answer>.\nAssistant: <think>");
    assert_int_equal(t.prompt_len, (int)strlen(t.prompt));
    assert_true(t.answer == 433);
    assert_int_equal(task_from(&t, 86, '-', 347, &e), 0);
    assert_string_equal(t.question, "86 - 347");
    assert_true(t.answer == -261);
    assert_int_equal(t.split, held_out(86, '-', 347) ? TASK_TEST : TASK_TRAIN);
}

static void test_determinism(void **state) {
    TaskOpts o = {2, 4, TASK_OP_ADD | TASK_OP_SUB, 0};
    int same_seed_diff = 0, other_seed_same = 0, neighbour_same = 0;
    for (uint64_t i = 0; i < 500; i++) {
        for (int s = 0; s < 2; s++) {
            Task x = make(&o, 42, (TaskSplit)s, i), y = make(&o, 42, (TaskSplit)s, i), z = make(&o, 43, (TaskSplit)s, i);
            Task w = make(&o, 42, (TaskSplit)s, i + 1);
            same_seed_diff += !same_task(&x, &y);
            other_seed_same += same_task(&x, &z);
            neighbour_same += same_task(&x, &w);
        }
    }
    assert_int_equal(same_seed_diff, 0);
    /* about 1.4e6 problems: coincidences are rare */
    if (other_seed_same > 3 || neighbour_same > 3) fail_msg("seeds/indices collide: %d, %d", other_seed_same, neighbour_same);
    /* a seed is a stream: seed 0 works and differs from seed 1 */
    Task a = make(&o, 0, TASK_TRAIN, 0), b = make(&o, 1, TASK_TRAIN, 0), c = make(&o, 0, TASK_TRAIN, 0);
    assert_true(same_task(&a, &c));
    assert_false(same_task(&a, &b));

    /* Pinned streams (recorded from this implementation, not derived): a data set is named by
     * (seed, split, index, options), so changing the stream renames every data set and must be a
     * deliberate change of these lines. */
    static const struct { TaskOpts o; uint64_t seed; int split, index; const char *q; long long ans; } pin[] = {
        {{2, 3, TASK_OP_ADD | TASK_OP_SUB, 0}, 1, TASK_TRAIN, 0, "446 - 26", 420},
        {{2, 3, TASK_OP_ADD | TASK_OP_SUB, 0}, 1, TASK_TRAIN, 2, "196 + 298", 494},
        {{2, 3, TASK_OP_ADD | TASK_OP_SUB, 0}, 1, TASK_TEST, 0, "72 + 927", 999},
        {{2, 3, TASK_OP_ADD | TASK_OP_SUB, 0}, 1, TASK_TEST, 1, "970 - 327", 643},
        {{1, 18, TASK_OP_ADD | TASK_OP_SUB, 1}, 12345, TASK_TRAIN, 1, "71978710505863 + 261234920387607412",
         261306899098113275ll},
        {{1, 18, TASK_OP_ADD | TASK_OP_SUB, 1}, 12345, TASK_TEST, 0, "9097 - 362303031", -362293934},
    };
    for (size_t i = 0; i < sizeof pin / sizeof pin[0]; i++) {
        Task t = make(&pin[i].o, pin[i].seed, (TaskSplit)pin[i].split, (uint64_t)pin[i].index);
        assert_string_equal(t.question, pin[i].q);
        assert_true(t.answer == pin[i].ans);
    }
}

static void test_answers_and_digits(void **state) {
    static const TaskOpts cases[] = {
        {1, 1, TASK_OP_ADD, 0},
        {2, 3, TASK_OP_ADD, 0},
        {1, 18, TASK_OP_ADD | TASK_OP_SUB, 0},
        {1, 18, TASK_OP_ADD | TASK_OP_SUB, 1},
        {18, 18, TASK_OP_ADD | TASK_OP_SUB, 1},
        {3, 5, TASK_OP_SUB, 0},
        {3, 5, TASK_OP_SUB, 1},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const TaskOpts *o = &cases[c];
        int seen_digits[TASK_MAX_DIGITS + 1] = {0}, negatives = 0, ops[2] = {0}, max_len = 0;
        for (int s = 0; s < 2; s++)
            for (uint64_t i = 0; i < 3000; i++) {
                Task t = make(o, 7 + c, (TaskSplit)s, i);
                char want[64], got[64];
                answer_of(t.prompt, want);
                snprintf(got, sizeof got, "%lld", (long long)t.answer);
                if (strcmp(want, got)) fail_msg("case %zu: %s: answer %s, schoolbook %s", c, t.question, got, want);
                /* the fields agree with the text */
                char q[64];
                snprintf(q, sizeof q, "%lld %c %lld", (long long)t.a, t.op, (long long)t.b);
                assert_string_equal(q, t.question);
                assert_int_equal(t.split, s);
                int da = n_digits(t.a), db = n_digits(t.b);
                assert_true(da >= o->min_digits && da <= o->max_digits);
                assert_true(db >= o->min_digits && db <= o->max_digits);
                seen_digits[da]++;
                negatives += t.answer < 0;
                ops[t.op == '-']++;
                assert_true(t.op == '+' ? (o->ops & TASK_OP_ADD) : (o->ops & TASK_OP_SUB));
                assert_int_equal(t.prompt_len, (int)strlen(t.prompt));
                assert_true(t.prompt_len <= task_prompt_max_len(o) && t.prompt_len < TASK_PROMPT_MAX);
                if (t.prompt_len > max_len) max_len = t.prompt_len;
            }
        for (int d = o->min_digits; d <= o->max_digits; d++)
            if (!seen_digits[d]) fail_msg("case %zu: no operand with %d digits", c, d);
        if (o->allow_negative && (o->ops & TASK_OP_SUB)) assert_true(negatives > 0);
        else assert_int_equal(negatives, 0);
        if (o->ops == (TASK_OP_ADD | TASK_OP_SUB)) {
            /* each with probability 1/2: 6000 draws, 5 sigma is about 200 */
            assert_true(abs(ops[0] - ops[1]) < 400);
        }
        /* the stated bound is reached: both operands of max_digits with " + " */
        if (o->ops & TASK_OP_ADD) assert_int_equal(max_len, task_prompt_max_len(o));
    }
    /* the largest prompt of all: the stated constants */
    TaskOpts big = {18, 18, TASK_OP_ADD, 0};
    assert_int_equal(task_prompt_max_len(&big), 135);
    assert_true(135 < TASK_PROMPT_MAX);
}

/* Every 1- and 2-digit problem: the rule, commutativity of '+', about one in eight held out. */
static void test_split_rule(void **state) {
    int test = 0, total = 0;
    for (int a = 0; a < 100; a++)
        for (int b = 0; b < 100; b++)
            for (int k = 0; k < 2; k++) {
                char op = k ? '-' : '+';
                TaskSplit s = task_split_of(a, op, b);
                if ((s == TASK_TEST) != held_out((uint64_t)a, op, (uint64_t)b))
                    fail_msg("%d %c %d: split %d against the documented rule", a, op, b, s);
                if (op == '+') assert_int_equal(s, task_split_of(b, '+', a));
                test += s == TASK_TEST;
                total++;
            }
    double f = (double)test / total;   /* 20000 problems: sigma 0.0023 */
    if (fabs(f - 1.0 / 8) > 0.012) fail_msg("held-out fraction %.4f, expected 1/8", f);
    /* large operands too */
    Rng r;
    rng_seed(&r, 99);
    for (int i = 0; i < 20000; i++) {
        int64_t a = (int64_t)(((uint64_t)rng_u32(&r) << 32 | rng_u32(&r)) % 1000000000000000000ull);
        int64_t b = (int64_t)(((uint64_t)rng_u32(&r) << 32 | rng_u32(&r)) % 1000000000000000000ull);
        char op = (i & 1) ? '-' : '+';
        assert_int_equal(task_split_of(a, op, b) == TASK_TEST, held_out((uint64_t)a, op, (uint64_t)b));
    }
}

typedef struct { uint64_t x, y; char op; } Key;

static Key key_of(const Task *t) {
    Key k = {(uint64_t)t->a, (uint64_t)t->b, t->op};
    if (t->op == '+' && k.x > k.y) k.x = (uint64_t)t->b, k.y = (uint64_t)t->a;
    return k;
}

static int key_cmp(const void *p, const void *q) {
    const Key *a = p, *b = q;
    if (a->op != b->op) return a->op < b->op ? -1 : 1;
    if (a->x != b->x) return a->x < b->x ? -1 : 1;
    if (a->y != b->y) return a->y < b->y ? -1 : 1;
    return 0;
}

/* Thousands of drawn train and test problems from small families (where a problem recurs often,
 * so a leak would show): no held-out problem is ever drawn for train, under any seed. */
static void test_splits_disjoint(void **state) {
    static const TaskOpts cases[] = {
        {1, 2, TASK_OP_ADD, 0},
        {1, 2, TASK_OP_ADD | TASK_OP_SUB, 0},
        {1, 2, TASK_OP_SUB, 1},
        {2, 2, TASK_OP_ADD | TASK_OP_SUB, 1},
    };
    enum { N = 6000 };
    Key *tr = malloc(3 * N * sizeof *tr), *te = malloc(3 * N * sizeof *te);
    assert_non_null(tr);
    assert_non_null(te);
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        size_t ntr = 0, nte = 0;
        for (uint64_t seed = 1; seed <= 3; seed++)
            for (uint64_t i = 0; i < N; i++) {
                Task a = make(&cases[c], seed, TASK_TRAIN, i), b = make(&cases[c], seed, TASK_TEST, i);
                assert_int_equal(held_out((uint64_t)a.a, a.op, (uint64_t)a.b), 0);
                assert_int_equal(held_out((uint64_t)b.a, b.op, (uint64_t)b.b), 1);
                tr[ntr++] = key_of(&a);
                te[nte++] = key_of(&b);
            }
        qsort(tr, ntr, sizeof *tr, key_cmp);
        qsort(te, nte, sizeof *te, key_cmp);
        size_t i = 0, j = 0, repeats = 0;
        for (size_t k = 1; k < ntr; k++) repeats += key_cmp(&tr[k - 1], &tr[k]) == 0;
        while (i < ntr && j < nte) {
            int d = key_cmp(&tr[i], &te[j]);
            if (d == 0) fail_msg("case %zu: %llu %c %llu is in both splits", c, (unsigned long long)tr[i].x, tr[i].op,
                                 (unsigned long long)tr[i].y);
            if (d < 0) i++;
            else j++;
        }
        assert_true(repeats > ntr / 4);   /* the families are small: the comparison had teeth */
    }
    free(tr);
    free(te);

    /* the smallest family: the test split either has problems or says it has none */
    TaskOpts one = {1, 1, TASK_OP_ADD, 0};
    Task t;
    SeekErr e;
    for (uint64_t i = 0; i < 50; i++) {
        if (task_make(&t, &one, 5, TASK_TEST, i, &e)) {
            assert_non_null(strstr(e.msg, "no test problem"));
            break;
        }
        assert_int_equal(t.split, TASK_TEST);
    }
}

/* Carries and borrows: the per-column rate of tasks.h and the whole-problem rate, against an
 * enumeration of every operand pair of the digit range. */
static double exact_rate(int lo, int hi, char op) {
    double sum = 0;
    int combos = 0;
    char sa[16], sb[16], out[24];
    for (int da = lo; da <= hi; da++)
        for (int db = lo; db <= hi; db++) {
            int a0 = da == 1 ? 0 : (int)pow(10, da - 1), a1 = (int)pow(10, da);
            int b0 = db == 1 ? 0 : (int)pow(10, db - 1), b1 = (int)pow(10, db);
            long hit = 0, all = 0;
            for (int a = a0; a < a1; a++)
                for (int b = b0; b < b1; b++) {
                    int x = a, y = b;
                    if (op == '-' && x < y) x = b, y = a;
                    snprintf(sa, sizeof sa, "%d", x);
                    snprintf(sb, sizeof sb, "%d", y);
                    hit += (op == '+' ? add_str(sa, sb, out) : sub_str(sa, sb, out)) > 0;
                    all++;
                }
            sum += (double)hit / (double)all;
            combos++;
        }
    return sum / combos;   /* digit counts are uniform and independent */
}

static void test_carry_rates(void **state) {
    enum { N = 40000 };
    for (int k = 0; k < 2; k++) {
        char op = k ? '-' : '+';
        TaskOpts o = {2, 3, k ? TASK_OP_SUB : TASK_OP_ADD, 0};
        long problems_with = 0, cols = 0, col_hits = 0;
        for (uint64_t i = 0; i < N; i++) {
            Task t = make(&o, 11, TASK_TRAIN, i);
            char a[32], b[32], oop, out[64];
            read_question(t.prompt, a, &oop, b);
            problems_with += (op == '+' ? add_str(a, b, out) : sub_str(a, b, out)) > 0;
            if (op == '+') {
                /* columns of two non-leading digits with no carry coming in */
                int la = (int)strlen(a), lb = (int)strlen(b), carry = 0;
                for (int c = 0; c < la || c < lb; c++) {
                    int x = c < la ? a[la - 1 - c] - '0' : 0, y = c < lb ? b[lb - 1 - c] - '0' : 0;
                    if (!carry && c < la - 1 && c < lb - 1) cols++, col_hits += x + y >= 10;
                    carry = x + y + carry >= 10;
                }
            }
        }
        double p = exact_rate(2, 3, op), got = (double)problems_with / N, sigma = sqrt(p * (1 - p) / N);
        if (fabs(got - p) > 5 * sigma + 0.003)
            fail_msg("'%c': %.4f of problems %s, the enumeration says %.4f", op, got, k ? "borrow" : "carry", p);
        if (op == '+') {
            double pc = (double)col_hits / cols, sc = sqrt(0.45 * 0.55 / cols);
            if (fabs(pc - 0.45) > 5 * sc + 0.003) fail_msg("per-column carry rate %.4f over %ld columns, expected 0.45", pc, cols);
        }
    }
    /* the rates tasks.h and docs/rl.md quote */
    assert_true(fabs(exact_rate(2, 2, '+') - (1 - 0.55 * 36.0 / 81)) < 1e-12);
    assert_true(fabs(exact_rate(3, 3, '+') - (1 - 0.55 * 0.55 * 36.0 / 81)) < 1e-12);
    static const struct { int lo, hi; char op; double pct; } quoted[] = {
        {2, 2, '+', 76}, {2, 2, '-', 40}, {2, 3, '+', 77}, {2, 3, '-', 63}, {3, 3, '+', 87}, {3, 3, '-', 66},
    };
    for (size_t i = 0; i < sizeof quoted / sizeof quoted[0]; i++) {
        double p = 100 * exact_rate(quoted[i].lo, quoted[i].hi, quoted[i].op);
        if (fabs(p - quoted[i].pct) > 0.5) fail_msg("%d..%d '%c': %.2f%%, quoted %.0f%%", quoted[i].lo, quoted[i].hi, quoted[i].op, p, quoted[i].pct);
    }
}

/* ---- the checker ---- */

/* task_check on a copy of exactly n bytes (no NUL after it: a read past the end shows under ASan) */
static TaskReward check_n(const char *s, size_t n, int64_t answer, const char *eos) {
    char *buf = malloc(n ? n : 1);
    assert_non_null(buf);
    memcpy(buf, s, n);
    TaskReward r = task_check(buf, n, answer, eos), again = task_check(buf, n, answer, eos);
    free(buf);
    /* pure: the same answer twice */
    assert_int_equal(r.format, again.format);
    assert_int_equal(r.accuracy, again.accuracy);
    assert_int_equal(r.kind, again.kind);
    assert_string_equal(r.shown, again.shown);
    /* invariants of every result */
    assert_true(r.format == 0 || r.format == 1);
    assert_true(r.accuracy == 0 || r.accuracy == 1);
    assert_true(r.format == (r.why[0] == 0));
    assert_true(strlen(r.shown) < TASK_SHOWN_MAX);
    if (r.format) assert_true(r.kind != TASK_ANSWER_NONE);
    if (r.accuracy) assert_true(r.kind == TASK_ANSWER_INT && r.value == answer);
    if (r.kind == TASK_ANSWER_NONE) assert_true(r.shown[0] == 0 && r.answer_off == 0 && r.answer_len == 0);
    else assert_true(r.answer_off >= 8 && r.answer_off + r.answer_len <= n);
    return r;
}

#define EOS_TEXT "<\xef\xbd\x9c" "end\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c>"

typedef struct {
    const char *text;
    size_t len;         /* 0: strlen(text) */
    const char *eos;
    int format, accuracy;
    TaskAnswerKind kind;
    long long value;
    const char *why;    /* a part of the reason when format is 0 */
} Case;

#define INT_ TASK_ANSWER_INT
#define NOT_ TASK_ANSWER_NOT_INT
#define OOR_ TASK_ANSWER_OUT_OF_RANGE
#define NONE TASK_ANSWER_NONE

static const Case CASES[] = {
    /* well formed */
    {"7 + 6 = 13, carry 1; 4 + 8 + 1 = 13.</think> <answer>433</answer>", 0, NULL, 1, 1, INT_, 433, ""},
    {"x</think><answer>434</answer>", 0, NULL, 1, 0, INT_, 434, ""},
    {"</think><answer>433</answer>", 0, NULL, 1, 1, INT_, 433, ""},                /* empty reasoning */
    {"x</think>\n\n<answer> 433 </answer>\n", 0, NULL, 1, 1, INT_, 433, ""},      /* spaces */
    {"x</think>\r\n<answer>\t+433\r\n</answer> \t", 0, NULL, 1, 1, INT_, 433, ""},
    {"x</think><answer>-433</answer>", 0, NULL, 1, 0, INT_, -433, ""},             /* sign */
    {"x</think><answer>0433</answer>", 0, NULL, 1, 1, INT_, 433, ""},              /* leading zeros */
    {"x</think><answer>00000000000000000000000000000433</answer>", 0, NULL, 1, 1, INT_, 433, ""},
    {"x</think><answer>-0</answer>", 0, NULL, 1, 0, INT_, 0, ""},
    /* not an integer (format still 1) */
    {"x</think><answer>4 33</answer>", 0, NULL, 1, 0, NOT_, 0, ""},
    {"x</think><answer>433.</answer>", 0, NULL, 1, 0, NOT_, 0, ""},
    {"x</think><answer>433.0</answer>", 0, NULL, 1, 0, NOT_, 0, ""},
    {"x</think><answer>4,33</answer>", 0, NULL, 1, 0, NOT_, 0, ""},
    {"x</think><answer>433abc</answer>", 0, NULL, 1, 0, NOT_, 0, ""},
    {"x</think><answer>The answer is 433</answer>", 0, NULL, 1, 0, NOT_, 0, ""},
    {"x</think><answer>0x1b1</answer>", 0, NULL, 1, 0, NOT_, 0, ""},
    {"x</think><answer>+-433</answer>", 0, NULL, 1, 0, NOT_, 0, ""},
    {"x</think><answer>- 433</answer>", 0, NULL, 1, 0, NOT_, 0, ""},
    {"x</think><answer>+</answer>", 0, NULL, 1, 0, NOT_, 0, ""},
    {"x</think><answer></answer>", 0, NULL, 1, 0, NOT_, 0, ""},                   /* empty */
    {"x</think><answer>  \n </answer>", 0, NULL, 1, 0, NOT_, 0, ""},
    {"x</think><answer>\xef\xbc\x94\xef\xbc\x93\xef\xbc\x93</answer>", 0, NULL, 1, 0, NOT_, 0, ""},   /* fullwidth digits */
    {"x</think><answer>\v433</answer>", 0, NULL, 1, 0, NOT_, 0, ""},              /* \v is not whitespace */
    /* huge numbers: integers, but outside int64 */
    {"x</think><answer>99999999999999999999</answer>", 0, NULL, 1, 0, OOR_, 0, ""},
    {"x</think><answer>9223372036854775807</answer>", 0, NULL, 1, 0, INT_, INT64_MAX, ""},
    {"x</think><answer>9223372036854775808</answer>", 0, NULL, 1, 0, OOR_, 0, ""},
    {"x</think><answer>-9223372036854775808</answer>", 0, NULL, 1, 0, INT_, INT64_MIN, ""},
    {"x</think><answer>-9223372036854775809</answer>", 0, NULL, 1, 0, OOR_, 0, ""},
    {"x</think><answer>18446744073709551616433</answer>", 0, NULL, 1, 0, OOR_, 0, ""},
    /* missing tags */
    {"433", 0, NULL, 0, 0, NONE, 0, "no </think>"},
    {"", 0, NULL, 0, 0, NONE, 0, "no </think>"},
    {"x</think>433", 0, NULL, 0, 0, NONE, 0, "no <answer>"},
    {"x</think><answer>433", 0, NULL, 0, 0, NONE, 0, "no </answer>"},
    {"x</think>433</answer>", 0, NULL, 0, 0, NONE, 0, "no <answer>"},
    {"x<answer>433</answer>", 0, NULL, 0, 1, INT_, 433, "no </think>"},            /* accuracy without format */
    /* nested and duplicated tags */
    {"x</think><answer><answer>433</answer></answer>", 0, NULL, 0, 0, NONE, 0, "more than one <answer>"},
    {"x</think><answer>433</answer><answer>5</answer>", 0, NULL, 0, 1, INT_, 433, "more than one <answer>"},
    {"x</think><answer>5</answer><answer>433</answer>", 0, NULL, 0, 0, INT_, 5, "more than one <answer>"},
    {"x</think><answer>433</answer></answer>", 0, NULL, 0, 1, INT_, 433, "more than one </answer>"},
    {"<think>x</think><answer>433</answer>", 0, NULL, 0, 1, INT_, 433, "a <think>"},
    {"a</think>b</think><answer>433</answer>", 0, NULL, 0, 1, INT_, 433, "more than one </think>"},
    {"x</think><answer>4</think>33</answer>", 0, NULL, 0, 0, NONE, 0, "more than one </think>"},
    {"x</think><answer>4<think>33</answer>", 0, NULL, 0, 0, NONE, 0, "a <think>"},
    {"<answer>433</answer></think>", 0, NULL, 0, 1, INT_, 433, "out of order"},
    {"x<answer></think>433</answer>", 0, NULL, 0, 0, NONE, 0, "out of order"},
    {"</answer>x</think><answer>433", 0, NULL, 0, 0, NONE, 0, "out of order"},
    /* text where only whitespace may be */
    {"x</think> so <answer>433</answer>", 0, NULL, 0, 1, INT_, 433, "between </think> and <answer>"},
    {"x</think>\v<answer>433</answer>", 0, NULL, 0, 1, INT_, 433, "between </think> and <answer>"},
    {"x</think><answer>433</answer> done", 0, NULL, 0, 1, INT_, 433, "after </answer>"},
    {"x</think><answer>433</answer>.", 0, NULL, 0, 1, INT_, 433, "after </answer>"},
    /* tags are exact bytes */
    {"x</THINK><answer>433</answer>", 0, NULL, 0, 1, INT_, 433, "no </think>"},
    {"x</think><answer>433</answer >", 0, NULL, 0, 0, NONE, 0, "no </answer>"},
    {"x</think>< answer>433</answer>", 0, NULL, 0, 0, NONE, 0, "no <answer>"},
    /* EOS: one EOS text at the very end is not part of the completion */
    {"x</think><answer>433</answer>" EOS_TEXT, 0, EOS_TEXT, 1, 1, INT_, 433, ""},
    {"x</think><answer>433</answer>\n" EOS_TEXT, 0, EOS_TEXT, 1, 1, INT_, 433, ""},
    {"x</think><answer>433</answer>" EOS_TEXT, 0, NULL, 0, 1, INT_, 433, "after </answer>"},
    {"x</think><answer>433</answer>" EOS_TEXT EOS_TEXT, 0, EOS_TEXT, 0, 1, INT_, 433, "after </answer>"},
    {"x</think><answer>433</answer>" EOS_TEXT "\n", 0, EOS_TEXT, 0, 1, INT_, 433, "after </answer>"},
    {"x</think><answer>433" EOS_TEXT, 0, EOS_TEXT, 0, 0, NONE, 0, "no </answer>"},
    {EOS_TEXT, 0, EOS_TEXT, 0, 0, NONE, 0, "no </think>"},
    {"x</think><answer>433</answer>", 0, "", 1, 1, INT_, 433, ""},
    /* cut mid-tag */
    {"x</thi", 0, NULL, 0, 0, NONE, 0, "no </think>"},
    {"x</think><ans", 0, NULL, 0, 0, NONE, 0, "no <answer>"},
    {"x</think><answer>43", 0, NULL, 0, 0, NONE, 0, "no </answer>"},
    {"x</think><answer>433</ans", 0, NULL, 0, 0, NONE, 0, "no </answer>"},
    {"x</think><answer>433</answer", 0, NULL, 0, 0, NONE, 0, "no </answer>"},
    {"<", 0, NULL, 0, 0, NONE, 0, "no </think>"},
    /* NUL bytes and invalid UTF-8: reasoning bytes are not inspected; an answer must be digits */
    {"x\0y</think><answer>433</answer>", 31, NULL, 1, 1, INT_, 433, ""},
    {"x</think><answer>43\0 3</answer>", 31, NULL, 1, 0, NOT_, 0, ""},
    {"x</think><answer>433\0</answer>", 30, NULL, 1, 0, NOT_, 0, ""},
    {"x</think><answer>433</answer>\0", 30, NULL, 0, 1, INT_, 433, "after </answer>"},
    {"\0</think><answer>433</answer>", 29, NULL, 1, 1, INT_, 433, ""},
    {"\xff\xfe\xc3(</think><answer>433</answer>", 0, NULL, 1, 1, INT_, 433, ""},
    {"x</think><answer>\xc3(433</answer>", 0, NULL, 1, 0, NOT_, 0, ""},
    {"x</think><answer>433\xed\xa0\x80</answer>", 0, NULL, 1, 0, NOT_, 0, ""},
};

static void test_check_cases(void **state) {
    for (size_t i = 0; i < sizeof CASES / sizeof CASES[0]; i++) {
        const Case *c = &CASES[i];
        size_t n = c->len ? c->len : strlen(c->text);
        TaskReward r = check_n(c->text, n, 433, c->eos);
        if (r.format != c->format || r.accuracy != c->accuracy || r.kind != c->kind ||
            (c->kind == TASK_ANSWER_INT && r.value != c->value))
            fail_msg("case %zu (%.60s): format %d accuracy %d kind %s value %lld (%s), expected %d %d %s %lld", i, c->text,
                     r.format, r.accuracy, task_answer_kind_name(r.kind), (long long)r.value, r.why, c->format,
                     c->accuracy, task_answer_kind_name(c->kind), c->value);
        if (!strstr(r.why, c->why)) fail_msg("case %zu: reason '%s' lacks '%s'", i, r.why, c->why);
    }
    /* the extreme answers are matched exactly */
    static const char lo[] = "x</think><answer>-9223372036854775808</answer>";
    assert_int_equal(check_n(lo, strlen(lo), INT64_MIN, NULL).accuracy, 1);
    assert_int_equal(check_n(lo, strlen(lo), INT64_MAX, NULL).accuracy, 0);
    /* answer 0: an empty or non-integer answer is still wrong (nothing defaults to 0) */
    static const char z1[] = "x</think><answer></answer>", z2[] = "x</think><answer>zero</answer>",
                      z3[] = "x</think><answer>99999999999999999999</answer>", z4[] = "x</think>0";
    assert_int_equal(check_n(z1, strlen(z1), 0, NULL).accuracy, 0);
    assert_int_equal(check_n(z2, strlen(z2), 0, NULL).accuracy, 0);
    assert_int_equal(check_n(z3, strlen(z3), 0, NULL).accuracy, 0);
    assert_int_equal(check_n(z4, strlen(z4), 0, NULL).accuracy, 0);
    /* a NULL completion is an empty one */
    TaskReward r = task_check(NULL, 5, 433, NULL);
    assert_int_equal(r.format, 0);
    assert_int_equal(r.kind, TASK_ANSWER_NONE);
}

static void test_check_extracted(void **state) {
    static const char s1[] = "ab</think><answer> 0433 </answer>";
    TaskReward r = check_n(s1, strlen(s1), 433, NULL);
    assert_int_equal(r.answer_off, 18);
    assert_int_equal(r.answer_len, 6);
    assert_string_equal(r.shown, " 0433 ");
    static const char s2[] = "x</think><answer>4\\3\x01\n\xff\x7f</answer>";
    r = check_n(s2, strlen(s2), 433, NULL);
    assert_string_equal(r.shown, "4\\x5c3\\x01\\x0a\\xff\\x7f");
    static const char s3[] = "x</think><answer>43\0 3</answer>";
    r = check_n(s3, sizeof s3 - 1, 433, NULL);
    assert_string_equal(r.shown, "43\\x00 3");
    /* a long answer is cut: at most TASK_SHOWN_MAX − 1 bytes, ending in "..." */
    char big[400];
    strcpy(big, "x</think><answer>");
    memset(big + 17, 'z', 300);
    strcpy(big + 317, "</answer>");
    r = check_n(big, strlen(big), 433, NULL);
    assert_int_equal(r.answer_len, 300);
    size_t l = strlen(r.shown);
    assert_true(l > 40 && l < TASK_SHOWN_MAX);
    assert_string_equal(r.shown + l - 3, "...");
    memset(big + 17, '\xee', 300);
    r = check_n(big, strlen(big), 433, NULL);
    l = strlen(r.shown);
    assert_true(l > 40 && l < TASK_SHOWN_MAX);
    assert_string_equal(r.shown + l - 3, "...");
    assert_int_equal((l - 3) % 4, 0);   /* escapes are never cut in half */
    big[17] = 'z';   /* one plain byte, then escapes: the cut falls where an escape no longer fits */
    r = check_n(big, strlen(big), 433, NULL);
    l = strlen(r.shown);
    assert_true(l > 40 && l < TASK_SHOWN_MAX);
    assert_int_equal((l - 4) % 4, 0);
}

/* Every prefix of a well-formed completion (a completion cut at any byte): only the whole one
 * has the format reward, and accuracy appears exactly once </answer> is complete. */
static void test_check_prefixes(void **state) {
    static const char s[] = "I add 7 and 6: 13, carry 1.</think>\n<answer>433</answer>\n";
    size_t n = strlen(s), closed = strstr(s, "</answer>") - s + 9;
    for (size_t k = 0; k <= n; k++) {
        TaskReward r = check_n(s, k, 433, NULL);
        assert_int_equal(r.format, k >= closed);
        assert_int_equal(r.accuracy, k >= closed);
    }
}

/* Huge completions: linear time, no overflow, nothing read outside them. */
static void test_check_huge(void **state) {
    size_t n = (size_t)16 << 20;
    char *s = malloc(n);
    assert_non_null(s);
    /* 16 MB of digits inside a well-formed answer */
    memcpy(s, "x</think><answer>", 17);
    memset(s + 17, '9', n - 26);
    memcpy(s + n - 9, "</answer>", 9);
    TaskReward r = task_check(s, n, 433, NULL);
    assert_int_equal(r.format, 1);
    assert_int_equal(r.kind, TASK_ANSWER_OUT_OF_RANGE);
    assert_int_equal(r.accuracy, 0);
    /* leading zeros before the answer: still the value */
    memset(s + 17, '0', n - 29);
    memcpy(s + n - 12, "433", 3);
    r = task_check(s, n, 433, NULL);
    assert_int_equal(r.kind, TASK_ANSWER_INT);
    assert_int_equal(r.accuracy, 1);
    /* 16 MB of '<', of tags, of reasoning */
    memset(s, '<', n);
    r = task_check(s, n, 433, NULL);
    assert_int_equal(r.format, 0);
    assert_int_equal(r.kind, TASK_ANSWER_NONE);
    for (size_t i = 0; i + 8 <= n; i += 8) memcpy(s + i, "<answer>", 8);
    r = task_check(s, n, 433, NULL);
    assert_int_equal(r.format, 0);
    assert_int_equal(r.kind, TASK_ANSWER_NONE);
    memset(s, 'a', n);
    memcpy(s + n - 28, "</think><answer>433</answer>", 28);
    r = task_check(s, n, 433, NULL);
    assert_int_equal(r.format, 1);
    assert_int_equal(r.accuracy, 1);
    free(s);
}

/* ---- documents ---- */

static int doc_text(char *out, int64_t a, int64_t b, TaskDocOpts d, uint64_t seed, TaskDocInfo *info) {
    Task t;
    SeekErr err;
    Rng r;
    assert_int_equal(task_from(&t, a, '+', b, &err), 0);
    rng_seed(&r, seed);
    return task_completion(out, TASK_COMPLETION_MAX, &t, &d, &r, info, &err);
}

/* the texts, written out by hand */
static void test_documents_exact(void **state) {
    (void)state;
    char out[TASK_COMPLETION_MAX];
    TaskDocInfo in;
    const TaskDocOpts worked = {1, 1, 0, 0}, direct = {0, 1, 0, 0}, untagged = {1, 0, 0, 0}, sloppy = {1, 1, 1, 1};
    assert_true(doc_text(out, 347, 86, worked, 1, &in) > 0);
    assert_string_equal(out, " 7+6=13, 4+8+1=13, 3+0+1=4 </think> <answer>433</answer>");
    assert_int_equal(in.carries, 2);
    assert_int_equal(in.slips, 0);
    assert_true(in.written == 433);
    assert_true(doc_text(out, 95, 17, worked, 1, &in) > 0);
    assert_string_equal(out, " 5+7=12, 9+1+1=11, 0+0+1=1 </think> <answer>112</answer>");
    assert_true(doc_text(out, 0, 0, worked, 1, &in) > 0);
    assert_string_equal(out, " 0+0=0 </think> <answer>0</answer>");
    assert_true(doc_text(out, 347, 86, direct, 1, &in) > 0);
    assert_string_equal(out, " </think> <answer>433</answer>");
    assert_true(doc_text(out, 347, 86, untagged, 1, &in) > 0);
    assert_string_equal(out, " 7+6=13, 4+8+1=13, 3+0+1=4 </think> The answer is 433.");
    /* every carry forgotten: 95 + 17 reads 12, 10 and stops; the answer keeps the column's 0 */
    assert_true(doc_text(out, 95, 17, sloppy, 1, &in) > 0);
    assert_string_equal(out, " 5+7=12, 9+1=10 </think> <answer>02</answer>");
    assert_int_equal(in.carries, 2);
    assert_int_equal(in.slips, 2);
    assert_true(in.written == 2);
    /* the longest: 19 columns */
    int64_t nines = 999999999999999999ll;
    int n = doc_text(out, nines, nines, worked, 1, &in);
    assert_true(n > 0 && n < TASK_COMPLETION_MAX && (size_t)n == strlen(out));
    assert_non_null(strstr(out, "0+0+1=1 </think> <answer>1999999999999999998</answer>"));
    assert_int_equal(in.carries, 18);
}

/* a worked solution read back by its own parser: each column's digits are the operands', each
 * sum is right for what the column says, "+1" appears only after a column of 10 or more, and the
 * answer is the columns' last digits; a missing "+1" after such a column is a slip */
static void test_documents_replayed(void **state) {
    (void)state;
    TaskOpts o = {1, 6, TASK_OP_ADD, 0};
    const TaskDocOpts d = {0.5, 0.75, 0.3, 0.6};
    long long carries[2] = {0, 0}, slips[2] = {0, 0};
    for (int i = 0; i < 4000; i++) {
        Task t;
        SeekErr err;
        Rng r;
        TaskDocInfo in;
        char out[TASK_COMPLETION_MAX];
        assert_int_equal(task_make(&t, &o, 11, TASK_TRAIN, (uint64_t)i, &err), 0);
        rng_seed(&r, (uint64_t)i * 7919u);
        int n = task_completion(out, sizeof out, &t, &d, &r, &in, &err);
        assert_true(n > 0 && (size_t)n == strlen(out));
        carries[in.worked] += in.carries;
        slips[in.worked] += in.slips;
        /* the rewards agree with what the document claims */
        TaskReward rw = task_check(out, (size_t)n, t.answer, NULL);
        assert_int_equal(rw.format, in.tagged);
        assert_int_equal(rw.accuracy, in.tagged && in.slips == 0);
        assert_int_equal(in.written == t.answer, in.slips == 0);
        if (!in.worked) {
            assert_memory_equal(out, " </think> ", 10);
            continue;
        }
        const char *p = out + 1;
        int64_t a = t.a, b = t.b;
        int prev = 0, cols = 0, seen_slips = 0;
        char dig[32];
        for (;;) {
            int x, y, s, used = 0, k = 0;
            assert_int_equal(sscanf(p, "%d+%d%n", &x, &y, &k), 2);
            p += k;
            if (!strncmp(p, "+1", 2)) {
                used = 1;
                p += 2;
            }
            assert_int_equal(sscanf(p, "=%d%n", &s, &k), 1);
            p += k;
            assert_int_equal(x, (int)(a % 10));
            assert_int_equal(y, (int)(b % 10));
            assert_int_equal(s, x + y + used);
            if (used) assert_true(prev >= 10);
            if (prev >= 10 && !used) seen_slips++;
            dig[cols++] = (char)('0' + s % 10);
            prev = s;
            a /= 10;
            b /= 10;
            if (strncmp(p, ", ", 2)) break;
            p += 2;
        }
        assert_true(a == 0 && b == 0);
        if (prev >= 10) seen_slips++;   /* the last carry forgotten: no column for it */
        assert_int_equal(seen_slips, in.slips);
        char want[64];
        int w = 0;
        while (cols > 0) want[w++] = dig[--cols];
        want[w] = '\0';
        char tail[96];
        snprintf(tail, sizeof tail, in.tagged ? " </think> <answer>%s</answer>" : " </think> The answer is %s.", want);
        assert_string_equal(p, tail);
    }
    /* the forgotten share of carries is each style's slip probability (within 4 sigma) */
    const double pw[2] = {d.slip_direct, d.slip_worked};
    for (int k = 0; k < 2; k++) {
        assert_true(carries[k] > 1000);
        double f = (double)slips[k] / carries[k], sd = sqrt(pw[k] * (1 - pw[k]) / carries[k]);
        assert_true(fabs(f - pw[k]) < 4 * sd);
    }
}

static void test_documents_errors(void **state) {
    (void)state;
    Task t;
    SeekErr err;
    Rng r;
    char out[TASK_COMPLETION_MAX];
    rng_seed(&r, 1);
    const TaskDocOpts ok = {0.5, 0.5, 0.1, 0.1};
    assert_int_equal(task_from(&t, 5, '-', 3, &err), 0);
    assert_int_equal(task_completion(out, sizeof out, &t, &ok, &r, NULL, &err), -1);
    assert_non_null(strstr(err.msg, "additions only"));
    assert_int_equal(task_from(&t, 5, '+', 3, &err), 0);
    assert_int_equal(task_completion(out, 100, &t, &ok, &r, NULL, &err), -1);
    const TaskDocOpts bad[] = {{-0.1, 0, 0, 0}, {0, 1.5, 0, 0}, {0, 0, NAN, 0}, {0, 0, 0, INFINITY}};
    const char *names[] = {"worked", "tagged", "slip_worked", "slip_direct"};
    for (int i = 0; i < 4; i++) {
        assert_int_equal(task_completion(out, sizeof out, &t, &bad[i], &r, NULL, &err), -1);
        assert_non_null(strstr(err.msg, names[i]));
    }
    /* the same Rng state, the same document */
    char again[TASK_COMPLETION_MAX];
    Rng r1, r2;
    rng_seed(&r1, 99);
    rng_seed(&r2, 99);
    const TaskDocOpts mid = {0.5, 0.5, 0.5, 0.5};
    assert_int_equal(task_from(&t, 98765, '+', 56789, &err), 0);
    assert_true(task_completion(out, sizeof out, &t, &mid, &r1, NULL, &err) > 0);
    assert_true(task_completion(again, sizeof again, &t, &mid, &r2, NULL, &err) > 0);
    assert_string_equal(out, again);
}

/* pass@k (rl.h) against counting: of all k-subsets of s samples, c of them correct (the first c
 * bits), the share holding a correct one */
static void test_pass_at_k(void **state) {
    (void)state;
    for (int S = 1; S <= 12; S++)
        for (int c = 0; c <= S; c++)
            for (int k = 1; k <= S; k++) {
                long long hit = 0, all = 0;
                for (unsigned m = 0; m < (1u << S); m++) {
                    if (__builtin_popcount(m) != k) continue;
                    all++;
                    hit += (m & ((1u << c) - 1)) != 0;
                }
                assert_true(fabs(rl_pass_at_k(S, c, k) - (double)hit / all) < 1e-12);
            }
    assert_true(rl_pass_at_k(16, 4, 1) == 0.25);
}

/* ---- test-time compute (solve.h): the vote, maj@k, the thinking budget ---- */

/* each completion scored by the task's own checker (a buffer of exactly its length), answer 433 */
static void rewards_of(TaskReward *r, const char *const *completions, int n) {
    for (int i = 0; i < n; i++) {
        size_t len = strlen(completions[i]);
        char *buf = malloc(len ? len : 1);
        memcpy(buf, completions[i], len);
        r[i] = task_check(buf, len, 433, NULL);
        free(buf);
    }
}

static void test_vote(void **state) {
    (void)state;
    TaskReward r[8];
    int64_t v = -1;
    /* 433 and 432 two votes each ("0433" is 433); the rest abstain: not an integer, no answer, out
     * of int64, cut before </answer>. The tie goes to 433, whose first vote came first. */
    const char *tie[] = {"<answer>433</answer>", "x</think> <answer>432</answer>", "<answer>4 33</answer>",
                         "no answer at all", "</think> <answer> 0433 </answer>", "<answer>99999999999999999999</answer>",
                         "<answer>432</answer>", "<answer>433"};
    rewards_of(r, tie, 8);
    assert_int_equal(solve_vote(r, 8, &v), 2);
    assert_true(v == 433);
    /* the same votes with 432's first: 432 wins the tie */
    const char *tie2[] = {"<answer>432</answer>", "<answer>433</answer>", "<answer>433</answer>", "<answer>432</answer>"};
    rewards_of(r, tie2, 4);
    assert_int_equal(solve_vote(r, 4, &v), 2);
    assert_true(v == 432);
    /* more votes beat an earlier first vote; "-0" and "+0" are one answer, 0 */
    const char *maj[] = {"<answer>5</answer>", "<answer>-0</answer>", "<answer>7</answer>", "<answer>+0</answer>",
                         "<answer>7</answer>", "<answer>0</answer>"};
    rewards_of(r, maj, 6);
    assert_int_equal(solve_vote(r, 6, &v), 3);
    assert_true(v == 0);
    /* everyone abstains: no answer, and 0 in *value */
    const char *none[] = {"<answer>x</answer>", "", "<answer>99999999999999999999</answer>", "<answer></answer>"};
    rewards_of(r, none, 4);
    v = 77;
    assert_int_equal(solve_vote(r, 4, &v), 0);
    assert_true(v == 0);
    assert_int_equal(solve_vote(r, 0, &v), 0);
    /* against counting: values 0..3 or an abstention at random; the winner by a count table and a
     * scan for the first value reaching the most votes */
    Rng g;
    rng_seed(&g, 18);
    TaskReward rr[16];
    for (int trial = 0; trial < 2000; trial++) {
        int n = 1 + (int)(rng_u32(&g) % 16), count[4] = {0}, first[4] = {-1, -1, -1, -1};
        for (int i = 0; i < n; i++) {
            memset(&rr[i], 0, sizeof rr[i]);
            int x = (int)(rng_u32(&g) % 5);
            rr[i].kind = x == 4 ? TASK_ANSWER_NOT_INT : TASK_ANSWER_INT;
            rr[i].value = x == 4 ? 0 : x;
            if (x == 4) continue;
            count[x]++;
            if (first[x] < 0) first[x] = i;
        }
        int best = -1;
        for (int x = 0; x < 4; x++)
            if (count[x] && (best < 0 || count[x] > count[best] || (count[x] == count[best] && first[x] < first[best])))
                best = x;
        assert_int_equal(solve_vote(rr, n, &v), best < 0 ? 0 : count[best]);
        assert_true(v == (best < 0 ? 0 : best));
    }
}

static void test_maj_at_k(void **state) {
    (void)state;
    TaskReward r[7];
    /* right, wrong, right, right, none, wrong(432), right: blocks of 2 are (R,W) (R,R) (none,W);
     * (R,W) ties and goes to the first vote, right; (none, 432) votes 432, wrong */
    const char *c[] = {"<answer>433</answer>", "<answer>5</answer>", "<answer>433</answer>", "<answer>433</answer>",
                       "none", "<answer>432</answer>", "<answer>433</answer>"};
    rewards_of(r, c, 7);
    assert_true(fabs(solve_maj_at_k(r, 7, 1, 433) - 4.0 / 7) < 1e-15);   /* maj@1 = pass@1 */
    assert_true(fabs(solve_maj_at_k(r, 7, 2, 433) - 2.0 / 3) < 1e-15);   /* 3 blocks, sample 6 left out */
    assert_true(solve_maj_at_k(r, 7, 4, 433) == 1.0);                    /* 433 433 433 vs 5 */
    assert_true(solve_maj_at_k(r, 7, 7, 433) == 1.0);
    assert_true(solve_maj_at_k(r + 4, 2, 2, 433) == 0.0);                 /* none and 432: 432 */
    assert_true(solve_maj_at_k(r, 7, 8, 433) == 0.0);                     /* k outside 1..n */
    int ks[SOLVE_MAX_KS];
    assert_int_equal(solve_ks(64, ks), 7);
    assert_int_equal(ks[0], 1);
    assert_int_equal(ks[6], 64);
    assert_int_equal(solve_ks(12, ks), 5);
    assert_int_equal(ks[3], 8);
    assert_int_equal(ks[4], 12);
    assert_int_equal(solve_ks(1, ks), 1);
    assert_int_equal(solve_ks(1024, ks), 11);
}

/* A budget by hand over a made-up vocabulary: 1 EOS, 2 'a', 3 'b', 4 ' ', 5 'W', 6 "</think>";
 * "Wait" is 5 5 and " Wait" 4 5 5; " </think>" is 4 6. */
static ThinkBudget toy_budget(int budget, int force, unsigned char *ws) {
    ThinkBudget b;
    memset(&b, 0, sizeof b);
    b.budget = budget;
    b.force = force;
    b.close_id = 6;
    b.eos = 1;
    b.V = 7;
    memset(ws, 0, 7);
    ws[4] = 1;
    b.ws_end = ws;
    b.close[0][0] = 6, b.n_close[0] = 1;
    b.close[1][0] = 4, b.close[1][1] = 6, b.n_close[1] = 2;
    b.wait[0][0] = 5, b.wait[0][1] = 5, b.n_wait[0] = 2;
    b.wait[1][0] = 4, b.wait[1][1] = 5, b.wait[1][2] = 5, b.n_wait[1] = 3;
    return b;
}

/* feeds sampled[0..n) through think_step after a prompt ending in last; checks the fed tokens and forced flags */
static void run_steps(const ThinkBudget *b, int last, const int *sampled, const int *fed, const int *forced, int n,
                      ThinkRow *r) {
    think_row_init(r, b, last);
    for (int i = 0; i < n; i++) {
        int f, t = think_step(r, b, sampled[i], &f);
        if (t != fed[i] || f != forced[i]) fail_msg("step %d: fed %d (forced %d), expected %d (%d)", i, t, f, fed[i], forced[i]);
    }
}

static void test_think_budget(void **state) {
    (void)state;
    unsigned char ws[7];
    ThinkRow r;
    {   /* s1: the close at 1 thinking token becomes " Wait" (the prompt did not end in a space); the
         * samples drawn while it is fed are dropped; the second close is taken (force 1) */
        ThinkBudget b = toy_budget(6, 1, ws);
        const int sm[] = {2, 6, 3, 3, 2, 6, 2, 1, 2}, f[] = {2, 4, 5, 5, 2, 6, 2, 1, 2},
                  z[] = {0, 1, 1, 1, 0, 0, 0, 0, 0};
        run_steps(&b, 2, sm, f, z, 9, &r);
        assert_int_equal(r.phase, THINK_ENDED);
        assert_int_equal(r.think, 5);   /* 'a', " Wait" (3), 'a' */
        assert_int_equal(r.waits, 1);
        assert_int_equal(r.capped, 0);
    }
    {   /* after whitespace the forced string is "Wait" */
        ThinkBudget b = toy_budget(6, 1, ws);
        const int sm[] = {4, 6, 2, 2}, f[] = {4, 5, 5, 2}, z[] = {0, 1, 1, 0};
        run_steps(&b, 2, sm, f, z, 4, &r);
        assert_int_equal(r.think, 4);
    }
    {   /* the budget spent: " </think>" forced in place of the next sample, not counted as thinking */
        ThinkBudget b = toy_budget(3, 0, ws);
        const int sm[] = {2, 3, 2, 3, 3, 2, 1}, f[] = {2, 3, 2, 4, 6, 2, 1}, z[] = {0, 0, 0, 1, 1, 0, 0};
        run_steps(&b, 2, sm, f, z, 7, &r);
        assert_int_equal(r.think, 3);
        assert_int_equal(r.capped, 1);
        assert_int_equal(r.phase, THINK_ENDED);
    }
    {   /* "Wait" does not fit (2 + 3 >= 5): the close is taken; a close sampled at the budget is taken */
        ThinkBudget b = toy_budget(5, 2, ws);
        const int sm[] = {2, 2, 6, 2}, f[] = {2, 2, 6, 2}, z[] = {0, 0, 0, 0};
        run_steps(&b, 2, sm, f, z, 4, &r);
        assert_int_equal(r.waits, 0);
        assert_int_equal(r.phase, THINK_CLOSED);
        ThinkBudget b2 = toy_budget(2, 0, ws);
        const int sm2[] = {2, 2, 6}, f2[] = {2, 2, 6};
        run_steps(&b2, 2, sm2, f2, z, 3, &r);
        assert_int_equal(r.capped, 0);
    }
    {   /* EOS at the budget ends the row; after EOS samples pass through */
        ThinkBudget b = toy_budget(2, 0, ws);
        const int sm[] = {2, 2, 1, 3, 6}, f[] = {2, 2, 1, 3, 6}, z[] = {0, 0, 0, 0, 0};
        run_steps(&b, 2, sm, f, z, 5, &r);
        assert_int_equal(r.phase, THINK_ENDED);
        assert_int_equal(r.think, 2);
    }
    /* random streams: no budget passes every sample through; a budget is never exceeded, never
     * more than `force` Waits, and every forced token is one of the forced strings' */
    Rng g;
    rng_seed(&g, 1818);
    for (int trial = 0; trial < 3000; trial++) {
        const int budget = (int)(rng_u32(&g) % 12), force = budget ? (int)(rng_u32(&g) % 4) : 0;
        ThinkBudget b = toy_budget(budget, force, ws);
        think_row_init(&r, &b, 2 + (int)(rng_u32(&g) % 3));
        for (int i = 0; i < 40; i++) {
            int f, smp = 2 + (int)(rng_u32(&g) % 6);   /* 2..7: 6 often, EOS never */
            if (smp == 7) smp = 6;
            int t = think_step(&r, &b, smp, &f);
            if (!budget) assert_true(t == smp && !f);
            if (f) assert_true(t >= 4 && t <= 6);
            assert_true(r.think <= (budget ? budget : 1 << 30));
            assert_true(r.waits <= force);
        }
    }
}

/* the forced strings under the shipped reasoner's tokenizer, and the refusals */
static void test_think_budget_tokens(void **state) {
    (void)state;
    Tokenizer *tok = NULL;
    SeekErr err;
    if (tokenizer_load(&tok, "tiny-models/seek-r1-zero/tokenizer.json", &err)) fail_msg("%s", err.msg);
    ThinkBudget b;
    assert_int_equal(think_budget_init(&b, tok, 16, 2, 1, 320, &err), 0);
    assert_int_equal(b.close_id, tokenizer_token_id(tok, "</think>", 8));
    assert_int_equal(b.n_close[0], 1);
    assert_int_equal(b.n_close[1], 2);   /* ' ' then </think> */
    for (int s = 0; s < 2; s++) {        /* the forced strings decode back to their text */
        TokBytes t = {0};
        int32_t ids[THINK_FORCED_MAX];
        for (int i = 0; i < b.n_wait[s]; i++) ids[i] = b.wait[s][i];
        assert_int_equal(tokenizer_decode(tok, ids, (size_t)b.n_wait[s], &t, &err), 0);
        assert_true(t.n == (size_t)(4 + s) && !memcmp(t.data, s ? " Wait" : "Wait", t.n));
        free(t.data);
    }
    int space = tokenizer_token_id(tok, "\xc4\xa0", 2);   /* byte-level ' ' */
    assert_true(space >= 0 && b.ws_end[space] && !b.ws_end[b.close_id]);
    think_budget_free(&b);
    assert_int_equal(think_budget_init(&b, tok, 0, 1, 1, 320, &err), -1);   /* forcing without a budget */
    assert_int_equal(think_budget_init(&b, tok, -1, 0, 1, 320, &err), -1);
    assert_int_equal(think_budget_init(&b, tok, 0, 0, 1, 320, &err), 0);    /* no budget */
    think_budget_free(&b);
    tokenizer_free(tok);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_options),
        cmocka_unit_test(test_template),
        cmocka_unit_test(test_determinism),
        cmocka_unit_test(test_answers_and_digits),
        cmocka_unit_test(test_split_rule),
        cmocka_unit_test(test_splits_disjoint),
        cmocka_unit_test(test_carry_rates),
        cmocka_unit_test(test_check_cases),
        cmocka_unit_test(test_check_extracted),
        cmocka_unit_test(test_check_prefixes),
        cmocka_unit_test(test_check_huge),
        cmocka_unit_test(test_documents_exact),
        cmocka_unit_test(test_documents_replayed),
        cmocka_unit_test(test_documents_errors),
        cmocka_unit_test(test_pass_at_k),
        cmocka_unit_test(test_vote),
        cmocka_unit_test(test_maj_at_k),
        cmocka_unit_test(test_think_budget),
        cmocka_unit_test(test_think_budget_tokens),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
