/* tasks.h: verifiable tasks for reinforcement learning with rule-based rewards (ref/tasks.c), as
 * DeepSeek-R1-Zero trains on (DeepSeek-R1 paper, section 2.2: a template that asks for the
 * reasoning in <think> </think> and the answer in <answer> </answer>, and two rule-based rewards,
 * format and accuracy, with no learned reward model). docs/rl.md, "Tasks and rewards".
 *
 * The family: multi-digit integer arithmetic, a + b and a − b.
 *
 * Operands. Each operand first gets a digit count d drawn uniformly from min_digits..max_digits
 * (1 <= min <= max <= TASK_MAX_DIGITS), then a value drawn uniformly from the d-digit numbers:
 * 0..9 for d = 1, 10^(d−1)..10^d − 1 otherwise (a leading digit 1..9, every other digit 0..9,
 * each uniform and independent). So in a column of two non-leading digits, with no carry coming
 * in, an addition carries with probability 45/100 (x + y >= 10); the share of problems with at
 * least one carry (or borrow) follows from the digit range: 2..2 digits 76% of additions carry
 * and 40% of subtractions borrow, 2..3 77% and 63%, 3..3 87% and 66%. tests/test_tasks.c checks
 * the per-column rate and the whole-problem rates against an enumeration of every operand pair.
 * Operations: TASK_OP_ADD, TASK_OP_SUB or both (then each with probability 1/2). Subtraction
 * without allow_negative swaps the operands when a < b, so a − b >= 0 and both operands still
 * have their drawn digit counts; with allow_negative the answer may be negative. Operands are
 * never negative. Every answer fits int64: |a ± b| < 2·10^18.
 *
 * Splits. Whether a problem is held out (TASK_TEST) is a property of the problem alone, never of
 * the seed, the index or the options, so no held-out problem can appear in the train split under
 * any setting. The key of a problem is (op, x, y) with (x, y) = (min(a, b), max(a, b)) for '+'
 * (a + b and b + a are the same problem) and (a, b) for '−'. With mix the splitmix64 finalizer
 *     mix(z) = z ^= z >> 30, z *= 0xbf58476d1ce4e5b9, z ^= z >> 27, z *= 0x94d049bb133111eb, z ^ z >> 31
 *     h = mix(mix(mix(op) ^ x) ^ y)          (op the byte '+' or '-', x and y as uint64)
 * the problem is held out when h % TASK_TEST_ONE_IN == 0 (one problem in 8), else it is train.
 * Task i of a split under seed s is the first draw (a, op, b) of the Rng
 *     rng_seed(&r, s ^ mix(2·i + split))
 * whose split is the one asked for (rejection; at most TASK_MAX_DRAWS draws, then an error: only
 * the 1-digit families are small enough for that to be possible). Every draw is a uniform pick
 * by rejection (no modulo bias). Same (seed, split, index, options): the same task, bit for bit.
 *
 * The template (TASK_PROMPT_FORMAT, after R1-Zero's, kept short so prompt and completion fit a
 * tiny model's context): the question "What is 347 + 86?" (ASCII '-' for minus, no spaces inside
 * a number, no thousands separators) between "User: " and an instruction, then "Assistant: <think>",
 * so the completion starts inside the reasoning.
 *
 * The checker (task_check) reads the completion: the bytes the model generated after the prompt,
 * untrusted, of a given length (not NUL-terminated, possibly with NUL bytes or invalid UTF-8,
 * possibly huge). It never reads outside them, allocates nothing and is linear in their length.
 * Tags are the exact ASCII strings "<think>", "</think>", "<answer>", "</answer>" (case
 * sensitive); whitespace is ' ', '\t', '\n', '\r'. When eos is given and the completion ends with
 * it, that one EOS text is removed first (generation stops at EOS; a completion decoded with its
 * EOS token ends with the EOS text).
 *   Format reward: 1 when what remains is exactly
 *       THINK "</think>" WS* "<answer>" ANSWER "</answer>" WS*
 *   where THINK and ANSWER contain no tag (THINK may be empty; its bytes are not inspected
 *   otherwise: NUL or invalid UTF-8 there does not cost the format reward). So the completion
 *   holds exactly one "</think>", one "<answer>", one "</answer>", in that order, no "<think>",
 *   and nothing but whitespace between "</think>" and "<answer>" and after "</answer>".
 *   0 otherwise.
 *   The extracted answer: the bytes between the first "<answer>" anywhere in the completion and
 *   the next tag after it, when that tag is "</answer>" (a well-delimited answer); none otherwise.
 *   When the format reward is 1 it is the grammar's ANSWER.
 *   The integer rule: ANSWER = WS* [+|-] DIGIT+ WS* (ASCII digits; leading zeros allowed, so
 *   "0433" is 433 and "-0" is 0: the reward is for the value). A number outside int64 is an
 *   integer that equals no answer (TASK_ANSWER_OUT_OF_RANGE), found without overflow.
 *   Accuracy reward: 1 when the extracted answer is an integer equal to the task's answer, else
 *   0. It does not require the format reward (R1-Zero scores the two separately; a trainer that
 *   wants both can multiply them).
 *
 * Errors: library tier (common.h): bad options return -1 with a one-line reason.
 */
#ifndef SEEK_TASKS_H
#define SEEK_TASKS_H

#include "common.h"

#define TASK_MAX_DIGITS 18   /* 10^18 − 1 + 10^18 − 1 < 2^63: every answer fits int64 */
#define TASK_TEST_ONE_IN 8   /* one problem in 8 is held out (the split rule above) */
#define TASK_MAX_DRAWS 100000

#define TASK_OP_ADD 1
#define TASK_OP_SUB 2

/* The R1-Zero-style template; %s is the question ("347 + 86"). */
#define TASK_PROMPT_FORMAT \
    "User: What is %s? Think in <think> </think>, then answer in <answer> </answer>.\nAssistant: <think>"
/* The longest question is two TASK_MAX_DIGITS operands and " + ": 39 bytes; the prompt is the
 * template's 96 bytes besides %s plus the question, so at most 135 bytes; task_prompt_max_len
 * gives the bound for given options. Buffers include the NUL. */
#define TASK_QUESTION_MAX 48
#define TASK_PROMPT_MAX 160

typedef enum { TASK_TRAIN = 0, TASK_TEST = 1 } TaskSplit;

typedef struct {
    int min_digits, max_digits;   /* digits of each operand, 1 <= min <= max <= TASK_MAX_DIGITS */
    int ops;                      /* TASK_OP_ADD, TASK_OP_SUB or both (bitwise or) */
    int allow_negative;           /* 0: a − b with a >= b (operands swapped); 1: a − b may be < 0 */
} TaskOpts;

typedef struct {
    int64_t a, b;                     /* the operands as they appear, 0 <= a, b < 10^max_digits */
    char op;                          /* '+' or '-' */
    int64_t answer;                   /* a + b or a − b, exactly */
    TaskSplit split;                  /* task_split_of(a, op, b) */
    char question[TASK_QUESTION_MAX]; /* "347 + 86" */
    char prompt[TASK_PROMPT_MAX];     /* TASK_PROMPT_FORMAT around the question, NUL-terminated */
    int prompt_len;                   /* strlen(prompt) */
} Task;

/* Options of a family name: "add" (TASK_OP_ADD), "sub" (TASK_OP_SUB), "addsub" (both); sets
 * o->ops, leaves the rest. */
int task_parse_family(TaskOpts *o, const char *family, SeekErr *err);
/* Digit range "N" or "A..B" into o->min_digits, o->max_digits (checked as task_opts_check does). */
int task_parse_digits(TaskOpts *o, const char *s, SeekErr *err);
/* Errors: digits outside 1..TASK_MAX_DIGITS or min > max; ops not a non-empty set of
 * TASK_OP_ADD | TASK_OP_SUB; allow_negative not 0 or 1. */
int task_opts_check(const TaskOpts *o, SeekErr *err);
/* The longest prompt the options can give (bytes, without the NUL). Needs valid options. */
int task_prompt_max_len(const TaskOpts *o);

/* The split of a problem (the rule above). */
TaskSplit task_split_of(int64_t a, char op, int64_t b);
/* The problem a op b as a task: the answer, split, question and prompt. Errors: op not '+' or
 * '-', an operand outside 0..10^TASK_MAX_DIGITS − 1. */
int task_from(Task *t, int64_t a, char op, int64_t b, SeekErr *err);
/* Task `index` of `split` under `seed` (the rule above). Errors: bad options; split not
 * TASK_TRAIN or TASK_TEST; no problem of the split in TASK_MAX_DRAWS draws. */
int task_make(Task *t, const TaskOpts *o, uint64_t seed, TaskSplit split, uint64_t index, SeekErr *err);

/* What task_check found between <answer> and </answer>. */
typedef enum {
    TASK_ANSWER_NONE,          /* no well-delimited answer */
    TASK_ANSWER_NOT_INT,       /* there is one, but it is not an integer by the rule (empty included) */
    TASK_ANSWER_OUT_OF_RANGE,  /* an integer outside int64 */
    TASK_ANSWER_INT,           /* an integer: value */
} TaskAnswerKind;

#define TASK_SHOWN_MAX 72

typedef struct {
    int format;                  /* format reward, 0 or 1 */
    int accuracy;                /* accuracy reward, 0 or 1 */
    const char *why;             /* format 0: why, a short static phrase ("no </think>"); "" when 1 */
    TaskAnswerKind kind;
    int64_t value;               /* kind TASK_ANSWER_INT: the integer; else 0 */
    size_t answer_off, answer_len;   /* kind != NONE: the answer's bytes in the completion */
    char shown[TASK_SHOWN_MAX];  /* those bytes for a log or the REPL, NUL-terminated: printable
                                    ASCII kept, '\\' and every other byte as \xHH, cut with "..."
                                    when longer; "" when kind is NONE */
} TaskReward;

/* Scores a completion of n bytes (the rules above) against the task's answer. eos: the EOS
 * token's text, or NULL. Pure; never fails. */
TaskReward task_check(const char *completion, size_t n, int64_t answer, const char *eos);

/* ---- documents: text to pretrain a base model on (docs/rl.md, "The base model") ----
 *
 * A document is a task's prompt and a completion as a careless student would write it. The
 * completion continues the prompt (which ends inside <think>) in one of two styles:
 *   worked  the columns from the right, each "x+y=s" or, with a carry in, "x+y+1=s", the shorter
 *           operand padded with 0 and one more column "0+0+1=1" when a carry is left (none when
 *           that last carry is forgotten), joined by
 *           ", ":  " 7+6=13, 4+8+1=13, 3+0+1=4 </think> "
 *   direct  no reasoning:  " </think> "
 * then the answer, tagged "<answer>433</answer>" or untagged "The answer is 433." (format reward 0),
 * its digits the columns' last digits, highest first.
 * The written answer is the sum the columns give, with slips: every carry is forgotten (dropped
 * from the next column, and in a worked solution from its text) with probability slip_worked or
 * slip_direct, each carry drawn on its own. So the documents hold both right and wrong answers,
 * wrong in the way carry slips make them, and a model trained on them learns the procedure and
 * the slips, and the two styles and the two endings in their proportions.
 * Draw order per document (one Rng): worked (u < worked), tagged (u < tagged), then one draw per
 * carry in column order. Additions only (TASK_OP_ADD). */
typedef struct {
    double worked;                  /* share of worked solutions (else direct), in [0, 1] */
    double tagged;                  /* share of tagged answers (else untagged), in [0, 1] */
    double slip_worked, slip_direct;/* probability that a carry is forgotten, in [0, 1] */
} TaskDocOpts;

typedef struct {
    int worked, tagged;     /* the styles drawn */
    int carries, slips;     /* carries the columns produced, and how many were forgotten */
    int64_t written;        /* the answer the document gives */
} TaskDocInfo;

/* Errors: a share or a probability outside [0, 1] or not finite. */
int task_doc_opts_check(const TaskDocOpts *d, SeekErr *err);
/* Writes t's completion (the text after the prompt, without EOS) into out[cap], NUL-terminated,
 * drawing from r; returns its length. Errors: bad options; t not an addition; cap too small
 * (TASK_COMPLETION_MAX always suffices). */
#define TASK_COMPLETION_MAX 512
int task_completion(char *out, size_t cap, const Task *t, const TaskDocOpts *d, Rng *r, TaskDocInfo *info,
                    SeekErr *err);

/* The name of an answer kind, for messages: "none", "not an integer", "integer out of range",
 * "integer". */
const char *task_answer_kind_name(TaskAnswerKind k);

#endif
