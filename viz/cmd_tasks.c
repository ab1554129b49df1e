/* cmd_tasks.c: `seek tasks`, the verifiable tasks and their rule-based rewards (ref/tasks.h,
 * docs/rl.md).
 *
 *   seek tasks [--family add|sub|addsub] [--digits A..B] [--negative] [--split train|test]
 *              [--n N] [--seed S] [--jsonl]
 *       prints tasks 0..N−1 of the split under the seed (defaults: add, 2..3, train, 10, 1): for
 *       each a line "# task I (SPLIT): QUESTION = ANSWER" and then its prompt; with --jsonl one
 *       object a line, {"prompt": "...", "answer": 433} (written by jansson).
 *   seek tasks --documents [--family add] [--digits A..B] [--n N] [--seed S] [--worked P] [--tagged P]
 *              [--slip-worked P] [--slip-direct P] [--bos TEXT] [--eos TEXT]
 *       writes N pretraining documents (tasks.h, "documents"), tasks 0..N−1 of the train split:
 *       each BOS, the prompt, a completion, EOS and a newline (defaults: worked 0.5, tagged 0.75,
 *       slips 0.25 and 0.5; BOS and EOS DeepSeek's texts, which seek bpe-train makes ids 0 and 1);
 *       a summary on stderr (the share of right answers, styles, slips).
 *   seek tasks --check --answer A (--completion TEXT | --completion-file F) [--eos TEXT]
 *       scores a completion (the text after the prompt) against the answer A and prints
 *           format 1                       or   format 0 (REASON)
 *           accuracy 1
 *           answer "433" (integer 433)     or   answer none / answer "4x3" (not an integer) / ...
 *       the answer's bytes shown with non-printable bytes as \xHH.
 *
 * Program tier: errors are one line on stderr starting with "seek tasks: "; exit status 0 ok,
 * 1 a bad value or an unreadable file, 2 usage.
 */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "common.h"
#include "tasks.h"

#define COMPLETION_FILE_MAX ((size_t)64 << 20)
#define USAGE_TASKS                                                                                     \
    "seek tasks [--family add|sub|addsub] [--digits A..B] [--negative] [--split train|test] [--n N] " \
    "[--seed S] [--jsonl] | seek tasks --documents [--digits A..B] [--n N] [--seed S] [--worked P] "     \
    "[--tagged P] [--slip-worked P] [--slip-direct P] [--bos TEXT] [--eos TEXT] | seek tasks --check --answer A (--completion TEXT | --completion-file F) [--eos TEXT]"

/* msg, then the argument (at most 40 bytes, control bytes as '?', so the error stays one line) */
static int usage_tasks(const char *msg, const char *arg) {
    char a[48];
    fprintf(stderr, "seek tasks: %s%s%s (usage: " USAGE_TASKS ")\n", msg, arg ? " " : "", arg_for_message(a, arg));
    return 2;
}

static int bad_value(const SeekErr *e) {
    cli_fail("tasks", e->msg);
    return 1;
}

static int flush_out(void) {
    if (fflush(stdout) != 0 || ferror(stdout)) {
        if (errno == EPIPE) return 0;
        fprintf(stderr, "seek tasks: cannot write the output: %s\n", strerror(errno));
        return 1;
    }
    return 0;
}

static int print_tasks(const TaskOpts *o, TaskSplit split, long long n, uint64_t seed, int jsonl) {
    SeekErr err = {{0}};
    for (long long i = 0; i < n; i++) {
        Task t;
        if (task_make(&t, o, seed, split, (uint64_t)i, &err)) return bad_value(&err);
        if (!jsonl) {
            printf("# task %lld (%s): %s = %lld\n%s\n", i, split == TASK_TEST ? "test" : "train", t.question,
                   (long long)t.answer, t.prompt);
            continue;
        }
        json_t *obj = json_object();
        if (!obj || json_object_set_new(obj, "prompt", json_string(t.prompt)) ||
            json_object_set_new(obj, "answer", json_integer((json_int_t)t.answer))) {
            json_decref(obj);
            fprintf(stderr, "seek tasks: out of memory writing JSON\n");
            return 1;
        }
        char *line = json_dumps(obj, JSON_PRESERVE_ORDER);
        json_decref(obj);
        if (!line) {
            fprintf(stderr, "seek tasks: out of memory writing JSON\n");
            return 1;
        }
        puts(line);
        free(line);
        if (ferror(stdout)) break;
    }
    return flush_out();
}

#define DOC_BOS "<\xef\xbd\x9c" "begin\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c>"   /* <｜begin▁of▁sentence｜> */
#define DOC_EOS "<\xef\xbd\x9c" "end\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c>"     /* <｜end▁of▁sentence｜> */

/* N documents of the train split; each from its own Rng, seeded like its task, so document i is
 * the same whatever N is */
static int print_documents(const TaskOpts *o, const TaskDocOpts *d, long long n, uint64_t seed, const char *bos,
                           const char *eos) {
    SeekErr err = {{0}};
    if (task_doc_opts_check(d, &err)) return bad_value(&err);
    if (o->ops != TASK_OP_ADD) {
        fprintf(stderr, "seek tasks: --documents: documents are written for --family add only\n");
        return 1;
    }
    long long right = 0, worked = 0, tagged = 0, carries = 0, slips = 0;
    char comp[TASK_COMPLETION_MAX];
    for (long long i = 0; i < n; i++) {
        Task t;
        TaskDocInfo info;
        Rng r;
        if (task_make(&t, o, seed, TASK_TRAIN, (uint64_t)i, &err)) return bad_value(&err);
        rng_seed(&r, mix64(seed ^ mix64(0x646f63ull + (uint64_t)i)));   /* "doc": apart from the task draws */
        if (task_completion(comp, sizeof comp, &t, d, &r, &info, &err) < 0) return bad_value(&err);
        printf("%s%s%s%s\n", bos, t.prompt, comp, eos);
        if (ferror(stdout)) break;
        right += info.written == t.answer;
        worked += info.worked;
        tagged += info.tagged;
        carries += info.carries;
        slips += info.slips;
    }
    int rc = flush_out();
    if (!rc)
        fprintf(stderr, "seek tasks: %lld documents: %.1f%% right answers, %.1f%% worked, %.1f%% tagged, %lld of %lld carries "
                        "forgotten\n", n, 100.0 * right / n, 100.0 * worked / n, 100.0 * tagged / n, slips, carries);
    return rc;
}

static int check(const char *answer_s, const char *text, const char *file, const char *eos) {
    SeekErr err = {{0}};
    long long answer;
    if (parse_i64(answer_s, INT64_MIN, INT64_MAX, &answer, "--answer", &err)) return bad_value(&err);
    char *buf = NULL;
    size_t n;
    if (file) {
        if (read_text_file(file, COMPLETION_FILE_MAX, &buf, &n, &err)) return bad_value(&err);
        text = buf;
    } else {
        n = strlen(text);
    }
    TaskReward r = task_check(text, n, (int64_t)answer, eos);
    free(buf);
    if (r.format) printf("format 1\n");
    else printf("format 0 (%s)\n", r.why);
    printf("accuracy %d\n", r.accuracy);
    if (r.kind == TASK_ANSWER_NONE) printf("answer none\n");
    else if (r.kind == TASK_ANSWER_INT) printf("answer \"%s\" (integer %lld)\n", r.shown, (long long)r.value);
    else printf("answer \"%s\" (%s)\n", r.shown, task_answer_kind_name(r.kind));
    return flush_out();
}

int cmd_tasks(int argc, char **argv) {
    const char *family = NULL, *digits = NULL, *split_s = NULL, *n_s = NULL, *seed_s = NULL;
    const char *answer = NULL, *completion = NULL, *completion_file = NULL, *eos = NULL, *bos = NULL;
    const char *worked_s = NULL, *tagged_s = NULL, *slip_w_s = NULL, *slip_d_s = NULL;
    int jsonl = 0, negative = 0, check_mode = 0, docs_mode = 0;
    for (int i = 1; i < argc; i++) {
        const char **dst = NULL;
        if (!strcmp(argv[i], "--family")) dst = &family;
        else if (!strcmp(argv[i], "--digits")) dst = &digits;
        else if (!strcmp(argv[i], "--split")) dst = &split_s;
        else if (!strcmp(argv[i], "--n")) dst = &n_s;
        else if (!strcmp(argv[i], "--seed")) dst = &seed_s;
        else if (!strcmp(argv[i], "--answer")) dst = &answer;
        else if (!strcmp(argv[i], "--completion")) dst = &completion;
        else if (!strcmp(argv[i], "--completion-file")) dst = &completion_file;
        else if (!strcmp(argv[i], "--eos")) dst = &eos;
        else if (!strcmp(argv[i], "--bos")) dst = &bos;
        else if (!strcmp(argv[i], "--worked")) dst = &worked_s;
        else if (!strcmp(argv[i], "--tagged")) dst = &tagged_s;
        else if (!strcmp(argv[i], "--slip-worked")) dst = &slip_w_s;
        else if (!strcmp(argv[i], "--slip-direct")) dst = &slip_d_s;
        else if (!strcmp(argv[i], "--documents")) { docs_mode = 1; continue; }
        else if (!strcmp(argv[i], "--jsonl")) { jsonl = 1; continue; }
        else if (!strcmp(argv[i], "--negative")) { negative = 1; continue; }
        else if (!strcmp(argv[i], "--check")) { check_mode = 1; continue; }
        else if (argv[i][0] == '-') return cli_bad_option("tasks", argv[i]);
        else return usage_tasks("unexpected argument", argv[i]);
        if (i + 1 >= argc) return usage_tasks("a value is missing after", argv[i]);
        if (*dst) return usage_tasks("given twice:", argv[i]);
        *dst = argv[++i];
    }

    const int doc_flags = bos || worked_s || tagged_s || slip_w_s || slip_d_s;
    if (check_mode && docs_mode) return usage_tasks("--check and --documents are two modes; give one", NULL);
    if (doc_flags && !docs_mode)
        return usage_tasks("--bos, --worked, --tagged, --slip-worked and --slip-direct go with --documents", NULL);
    if (check_mode) {
        if (family || digits || split_s || n_s || seed_s || jsonl || negative)
            return usage_tasks("--check takes only --answer, --completion or --completion-file, and --eos", NULL);
        if (!answer) return usage_tasks("--check needs --answer", NULL);
        if (!completion == !completion_file)
            return usage_tasks("--check needs one of --completion and --completion-file", NULL);
        return check(answer, completion, completion_file, eos);
    }
    if (docs_mode && (answer || completion || completion_file || split_s || jsonl || negative))
        return usage_tasks("--documents writes the train split as text; --answer, --completion, --split, --jsonl and "
                           "--negative do not go with it", NULL);
    if (answer || completion || completion_file || (eos && !docs_mode))
        return usage_tasks("--answer, --completion, --completion-file and --eos go with --check", NULL);

    SeekErr err = {{0}};
    TaskOpts o = {2, 3, TASK_OP_ADD, negative};
    if (family && task_parse_family(&o, family, &err)) return bad_value(&err);
    if (digits && task_parse_digits(&o, digits, &err)) return bad_value(&err);
    TaskSplit split = TASK_TRAIN;
    if (split_s) {
        if (!strcmp(split_s, "test")) split = TASK_TEST;
        else if (strcmp(split_s, "train")) {
            fprintf(stderr, "seek tasks: --split: expected train or test\n");
            return 1;
        }
    }
    long long n = 10, seed = 1;
    if (n_s && parse_i64(n_s, 1, 10000000, &n, "--n", &err)) return bad_value(&err);
    if (seed_s && parse_i64(seed_s, 0, INT64_MAX, &seed, "--seed", &err)) return bad_value(&err);
    if (task_opts_check(&o, &err)) return bad_value(&err);
    if (docs_mode) {
        double v[4] = {0.5, 0.75, 0.25, 0.5};
        const char *const vs[4] = {worked_s, tagged_s, slip_w_s, slip_d_s};
        static const char *const names[4] = {"--worked", "--tagged", "--slip-worked", "--slip-direct"};
        for (int k = 0; k < 4; k++)
            if (vs[k] && parse_f64(vs[k], 0, 1, &v[k], names[k], &err)) return bad_value(&err);
        TaskDocOpts d = {v[0], v[1], v[2], v[3]};
        return print_documents(&o, &d, n, (uint64_t)seed, bos ? bos : DOC_BOS, eos ? eos : DOC_EOS);
    }
    return print_tasks(&o, split, n, (uint64_t)seed, jsonl);
}
